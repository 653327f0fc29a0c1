//! Metrics as text: a line chart per metric drawn in the terminal (braille dots, via
//! `textplots`), every job overlaid with a legend; and a table for pipes and files.

use super::{fmt_value, metric_names, JobMetrics};
use textplots::{Chart, ColorPlot, Plot, Shape};

/// Distinct colours for the jobs of a chart (as on a terminal).
pub const COLORS: [(u8, u8, u8); 6] = [
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
];

/// Without colour, jobs differ by how their points are drawn.
const SHAPES: [&str; 3] = ["lines", "points", "steps"];

/// The time axis: seconds, or minutes or hours when the runs are long.
pub fn time_unit(jobs: &[JobMetrics]) -> (f64, &'static str) {
    let longest = jobs
        .iter()
        .flat_map(|j| j.metrics.iter())
        .flat_map(|s| s.points.iter())
        .filter_map(|p| p.seconds)
        .fold(0.0f64, f64::max);
    if longest >= 3.0 * 3600.0 {
        (3600.0, "hours")
    } else if longest >= 180.0 {
        (60.0, "minutes")
    } else {
        (1.0, "seconds")
    }
}

/// The x axis: what a point's [`x`](super::Point::x) is divided by, and its label. Time since
/// the job started; for a local run, whose log has no times, the line of its log.
pub fn x_axis(jobs: &[JobMetrics]) -> (f64, String) {
    let by_line = jobs
        .iter()
        .flat_map(|j| j.metrics.iter())
        .flat_map(|s| s.points.iter())
        .any(|p| p.seconds.is_none());
    if by_line {
        return (
            1.0,
            "line of train.log (a local run's log has no times)".into(),
        );
    }
    let (unit, name) = time_unit(jobs);
    (unit, format!("{name} since the job started"))
}

/// The x and y ranges of `points`, never empty: x at least 1 wide; y widened by `pad` of its
/// span on each side, or by a tenth of its value (1 around 0) when all values are equal.
pub fn bounds(points: impl Iterator<Item = (f64, f64)>, pad: f64) -> ((f64, f64), (f64, f64)) {
    let (mut xmin, mut xmax, mut ymin, mut ymax) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for (x, y) in points {
        xmin = xmin.min(x);
        xmax = xmax.max(x);
        ymin = ymin.min(y);
        ymax = ymax.max(y);
    }
    if xmax <= xmin {
        xmax = xmin + 1.0;
    }
    let pad = if ymax > ymin {
        (ymax - ymin) * pad
    } else if ymin == 0.0 {
        1.0
    } else {
        ymin.abs() * 0.1
    };
    ((xmin, xmax), (ymin - pad, ymax + pad))
}

/// One chart per metric, with a legend; `width` in terminal columns.
pub fn render(jobs: &[JobMetrics], width: u16, color: bool) -> String {
    let (unit, x_label) = x_axis(jobs);
    // textplots counts braille dots: two per column, four per row.
    let dots_w = (u32::from(width.saturating_sub(12)) * 2).clamp(32, 400);
    let dots_h = 48;
    let mut out = String::new();
    for name in metric_names(jobs) {
        let lines: Vec<(usize, Vec<(f32, f32)>)> = jobs
            .iter()
            .enumerate()
            .filter_map(|(i, j)| {
                let s = j.metrics.iter().find(|s| s.name == name)?;
                let pts: Vec<(f32, f32)> = s
                    .points
                    .iter()
                    .map(|p| ((p.x() / unit) as f32, p.value as f32))
                    .collect();
                (!pts.is_empty()).then_some((i, pts))
            })
            .collect();
        out.push_str(&format!("{name}\n"));
        if lines.is_empty() {
            out.push_str("  (no values in the logs)\n");
        } else {
            let (x, y) = bounds(
                lines
                    .iter()
                    .flat_map(|(_, p)| p.iter())
                    .map(|(x, y)| (f64::from(*x), f64::from(*y))),
                0.0,
            );
            let (xmin, xmax, ymin, ymax) = (x.0 as f32, x.1 as f32, y.0 as f32, y.1 as f32);
            let shapes: Vec<(usize, Shape)> = lines
                .iter()
                .map(|(i, pts)| {
                    let shape = if color || pts.len() == 1 {
                        if pts.len() == 1 {
                            Shape::Points(pts)
                        } else {
                            Shape::Lines(pts)
                        }
                    } else {
                        match i % SHAPES.len() {
                            0 => Shape::Lines(pts),
                            1 => Shape::Points(pts),
                            _ => Shape::Steps(pts),
                        }
                    };
                    (*i, shape)
                })
                .collect();
            let mut chart = Chart::new_with_y_range(dots_w, dots_h, xmin, xmax, ymin, ymax);
            let mut c = &mut chart;
            for (i, shape) in &shapes {
                c = if color {
                    let (r, g, b) = COLORS[i % COLORS.len()];
                    c.linecolorplot(shape, rgb::RGB8 { r, g, b })
                } else {
                    c.lineplot(shape)
                };
            }
            c.axis();
            c.figures();
            out.push_str(&c.to_string());
            out.push_str(&format!("  x: {x_label}\n"));
        }
        // The legend: every job, with its final value.
        for (i, j) in jobs.iter().enumerate() {
            let Some(s) = j.metrics.iter().find(|s| s.name == name) else {
                continue;
            };
            let mark = if color {
                let (r, g, b) = COLORS[i % COLORS.len()];
                format!("\x1b[38;2;{r};{g};{b}m━━\x1b[0m")
            } else {
                format!("({})", SHAPES[i % SHAPES.len()])
            };
            let last = match (s.final_value, s.final_source) {
                (Some(v), Some(src)) => format!("final {} ({src})", fmt_value(v)),
                _ => "no value yet".into(),
            };
            out.push_str(&format!(
                "  {mark} {}  {} values, {last}\n",
                j.job_name,
                s.points.len()
            ));
        }
        out.push('\n');
    }
    out.trim_end().to_string() + "\n"
}

/// One row per job and metric: how many values, their range, the last and the final value.
pub fn table(jobs: &[JobMetrics]) -> String {
    let mut rows: Vec<[String; 7]> = vec![[
        "JOB".into(),
        "METRIC".into(),
        "VALUES".into(),
        "MIN".into(),
        "MAX".into(),
        "LAST".into(),
        "FINAL".into(),
    ]];
    for j in jobs {
        for s in &j.metrics {
            let (min, max) = s
                .min_max()
                .map(|(a, b)| (fmt_value(a), fmt_value(b)))
                .unwrap_or_else(|| ("-".into(), "-".into()));
            let last = s
                .points
                .last()
                .map(|p| fmt_value(p.value))
                .unwrap_or_else(|| "-".into());
            let fin = s.final_value.map(fmt_value).unwrap_or_else(|| "-".into());
            rows.push([
                j.job_name.clone(),
                s.name.clone(),
                s.points.len().to_string(),
                min,
                max,
                last,
                fin,
            ]);
        }
    }
    crate::ui::columns(&rows)
}

#[cfg(test)]
mod tests {
    use super::super::tests::{described, line};
    use super::*;

    fn two_jobs() -> Vec<JobMetrics> {
        let d = described(&[("loss", r"loss=(\S+)")], &[]);
        let mut a = JobMetrics::new("job-a", &d);
        let mut b = JobMetrics::new("job-b", &d);
        for (i, v) in [0.9, 0.5, 0.3, 0.2].iter().enumerate() {
            a.feed(&line(1_000_000 + i as i64 * 60_000, &format!("loss={v}")));
            b.feed(&line(
                1_000_000 + i as i64 * 90_000,
                &format!("loss={}", v * 1.5),
            ));
        }
        vec![a, b]
    }

    #[test]
    fn a_chart_per_metric_with_every_job_in_the_legend() {
        let jobs = two_jobs();
        let text = render(&jobs, 100, false);
        assert!(text.starts_with("loss\n"), "{text}");
        crate::testing::assert_contains_all(
            &text,
            &[
                "(lines) job-a  4 values, final 0.2 (logs)",
                "(points) job-b  4 values, final 0.3 (logs)",
                "x: minutes since the job started",
            ],
        );
        // Braille dots were drawn, and the y range is labelled.
        assert!(
            text.chars().any(|c| ('\u{2801}'..='\u{28ff}').contains(&c)),
            "{text}"
        );
        assert!(text.contains(" 1.4\n") && text.contains(" 0.2\n"), "{text}");
        assert!(!text.contains('\x1b'), "no colour asked: {text}");
        let colored = render(&jobs, 100, true);
        assert!(
            colored.contains("\x1b[38;2;31;119;180m━━\x1b[0m job-a"),
            "{colored}"
        );
    }

    #[test]
    fn a_table_elsewhere() {
        let t = table(&two_jobs());
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[0], "JOB    METRIC  VALUES  MIN  MAX   LAST  FINAL");
        assert_eq!(lines[1], "job-a  loss    4       0.2  0.9   0.2   0.2");
        assert_eq!(lines[2], "job-b  loss    4       0.3  1.35  0.3   0.3");
    }
}
