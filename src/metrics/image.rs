//! Metrics as an image (`--png FILE`, `--svg FILE`): the same charts as on the terminal, one
//! panel per metric stacked top to bottom, every job a coloured line with a legend. Drawn with
//! `plotters`; the PNG is encoded with the `png` crate from plotters' RGB buffer (plotters' own
//! encoder would pull in the whole `image` crate). Text uses DejaVu Sans, built in.

use super::chart::{bounds, x_axis, COLORS};
use super::{metric_names, JobMetrics};
use crate::error::{Error, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::Path;

/// Width of an image, and height per metric, when `--size` is not given.
pub const DEFAULT_WIDTH: u32 = 1000;
pub const DEFAULT_PANEL_HEIGHT: u32 = 320;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Png,
    Svg,
}

/// `WIDTHxHEIGHT` in pixels, each 100 to 10000.
pub fn parse_size(raw: &str) -> std::result::Result<(u32, u32), String> {
    let rule =
        || format!("`{raw}` is not WIDTHxHEIGHT in pixels, each 100 to 10000 (e.g. 1200x800)");
    let (w, h) = raw.trim().split_once(['x', 'X']).ok_or_else(rule)?;
    let w: u32 = w.trim().parse().map_err(|_| rule())?;
    let h: u32 = h.trim().parse().map_err(|_| rule())?;
    if !(100..=10_000).contains(&w) || !(100..=10_000).contains(&h) {
        return Err(rule());
    }
    Ok((w, h))
}

/// The metrics that have values to draw.
fn drawable(jobs: &[JobMetrics]) -> Vec<String> {
    metric_names(jobs)
        .into_iter()
        .filter(|n| {
            jobs.iter().any(|j| {
                j.metrics
                    .iter()
                    .any(|s| &s.name == n && !s.points.is_empty())
            })
        })
        .collect()
}

/// The size used when none is given: fixed width, a panel's height per metric.
pub fn default_size(jobs: &[JobMetrics]) -> (u32, u32) {
    let panels = drawable(jobs).len().max(1) as u32;
    (DEFAULT_WIDTH, (DEFAULT_PANEL_HEIGHT * panels).min(10_000))
}

fn register_font() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = plotters::style::register_font(
            "sans-serif",
            FontStyle::Normal,
            dejavu::sans::regular(),
        );
    });
}

/// A job's line in a panel: its index (its colour), its name and its points.
type JobLine<'a> = (usize, &'a str, Vec<(f64, f64)>);

fn draw<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    jobs: &[JobMetrics],
) -> std::result::Result<(), DrawingAreaErrorKind<DB::ErrorType>>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE)?;
    let names = drawable(jobs);
    if names.is_empty() {
        root.titled("no metric values in the logs", ("sans-serif", 24))?;
        return root.present();
    }
    let (unit, x_label) = x_axis(jobs);
    let panels = root.split_evenly((names.len(), 1));
    for (panel, name) in panels.iter().zip(&names) {
        let lines: Vec<JobLine> = jobs
            .iter()
            .enumerate()
            .filter_map(|(i, j)| {
                let s = j.metrics.iter().find(|s| &s.name == name)?;
                let pts: Vec<(f64, f64)> =
                    s.points.iter().map(|p| (p.x() / unit, p.value)).collect();
                (!pts.is_empty()).then_some((i, j.job_name.as_str(), pts))
            })
            .collect();
        let ((xmin, xmax), (ymin, ymax)) =
            bounds(lines.iter().flat_map(|(_, _, p)| p.iter().copied()), 0.05);
        let mut chart = ChartBuilder::on(panel)
            .caption(name, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(xmin..xmax, ymin..ymax)?;
        chart
            .configure_mesh()
            .x_desc(x_label.as_str())
            .label_style(("sans-serif", 13))
            .axis_desc_style(("sans-serif", 14))
            .light_line_style(WHITE.mix(0.0))
            .draw()?;
        for (i, job, pts) in lines {
            let (r, g, b) = COLORS[i % COLORS.len()];
            let color = RGBColor(r, g, b);
            chart
                .draw_series(LineSeries::new(pts.iter().copied(), color.stroke_width(2)))?
                .label(job)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
            if pts.len() <= 200 {
                chart.draw_series(pts.iter().map(|p| Circle::new(*p, 3, color.filled())))?;
            }
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.4))
            .label_font(("sans-serif", 13))
            .draw()?;
    }
    root.present()
}

/// The charts as PNG or SVG bytes, `size` pixels.
pub fn render(jobs: &[JobMetrics], format: Format, size: (u32, u32)) -> Result<Vec<u8>> {
    register_font();
    let failed = |e: String| Error::internal(format!("cannot draw the charts: {e}"));
    match format {
        Format::Svg => {
            let mut svg = String::new();
            draw(
                SVGBackend::with_string(&mut svg, size).into_drawing_area(),
                jobs,
            )
            .map_err(|e| failed(e.to_string()))?;
            Ok(svg.into_bytes())
        }
        Format::Png => {
            let (w, h) = size;
            let mut rgb = vec![0u8; (w as usize) * (h as usize) * 3];
            draw(
                BitMapBackend::with_buffer(&mut rgb, size).into_drawing_area(),
                jobs,
            )
            .map_err(|e| failed(e.to_string()))?;
            let mut out = Vec::new();
            let mut enc = png::Encoder::new(&mut out, w, h);
            enc.set_color(png::ColorType::Rgb);
            enc.set_depth(png::BitDepth::Eight);
            enc.write_header()
                .and_then(|mut wr| wr.write_image_data(&rgb))
                .map_err(|e| failed(e.to_string()))?;
            Ok(out)
        }
    }
}

/// Write the charts to `path` (relative to `cwd`), whole or not at all.
pub fn write(jobs: &[JobMetrics], format: Format, size: (u32, u32), path: &Path) -> Result<()> {
    let bytes = render(jobs, format, size)?;
    crate::fsutil::write_atomic(path, &bytes, None, true).map_err(|e| {
        Error::internal(format!("cannot write {}: {e}", path.display()))
            .with_hint("choose a file in a folder you can write to")
    })
}

#[cfg(test)]
mod tests {
    use super::super::tests::{described, line};
    use super::*;

    fn jobs() -> Vec<JobMetrics> {
        let d = described(&[("loss", r"loss=(\S+)"), ("dice", r"dice=(\S+)")], &[]);
        let mut a = JobMetrics::new("job-a", &d);
        let mut b = JobMetrics::new("job-b", &d);
        for i in 0..5 {
            let v = 1.0 / (i + 1) as f64;
            a.feed(&line(
                1_000_000 + i * 30_000,
                &format!("loss={v} dice={}", 1.0 - v),
            ));
            b.feed(&line(1_000_000 + i * 45_000, &format!("loss={}", v * 0.8)));
        }
        vec![a, b]
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1200x800"), Ok((1200, 800)));
        assert_eq!(parse_size(" 640X480 "), Ok((640, 480)));
        for bad in ["1200", "0x800", "99x100", "100x10001", "axb", "12x"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
        assert_eq!(default_size(&jobs()), (1000, 640));
    }

    #[test]
    fn a_png_of_the_stated_size_and_an_svg_with_the_legend() {
        let bytes = render(&jobs(), Format::Png, (640, 480)).unwrap();
        let dec = png::Decoder::new(std::io::Cursor::new(bytes));
        let mut reader = dec.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).unwrap();
        assert_eq!((info.width, info.height), (640, 480));
        // Not a blank page: the first job's colour is drawn.
        let (r, g, b) = COLORS[0];
        assert!(buf.chunks(3).any(|p| p == [r, g, b]), "no line of job-a");
        let (r, g, b) = COLORS[1];
        assert!(buf.chunks(3).any(|p| p == [r, g, b]), "no line of job-b");

        let svg = String::from_utf8(render(&jobs(), Format::Svg, (800, 600)).unwrap()).unwrap();
        assert!(
            svg.contains(r#"width="800" height="600""#),
            "{}",
            &svg[..200]
        );
        for text in [
            "job-a",
            "job-b",
            "loss",
            "dice",
            "minutes since the job started",
        ] {
            assert!(svg.contains(text), "{text} not in the SVG");
        }
    }
}
