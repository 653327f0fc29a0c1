//! The metrics of a local run: its `train.log` (lines `[algo-N] <line>`, as
//! [`crate::job::local::run`] writes them) parsed with the run's own metric definitions, as
//! SageMaker parses a job's CloudWatch logs. The log has no times: a value's place on the x axis
//! is its line in the log.

use super::JobMetrics;
use crate::job::local::record::LocalRun;

/// The host whose values are drawn: the charts have one series per job and metric, so the
/// values of the other hosts are left out (they are in `train.log`).
pub const HOST: &str = "algo-1";

/// The host and the entry's own text of one log line, when it has the `[host] ` prefix.
pub fn split_line(line: &str) -> Option<(&str, &str)> {
    let rest = line.strip_prefix('[')?;
    let (host, text) = rest.split_once("] ")?;
    (!host.is_empty() && !host.contains(char::is_whitespace)).then_some((host, text))
}

/// The run's metrics from the text of its log: [`HOST`]'s lines only.
pub fn from_log(run: &LocalRun, log: &str) -> JobMetrics {
    let defs = run
        .metric_definitions
        .iter()
        .map(|d| (d.name.as_str(), d.regex.as_str()));
    let mut m = JobMetrics::with_definitions(&run.job_name, defs);
    m.status = run.status.as_str().to_string();
    for (i, line) in log.lines().enumerate() {
        if let Some((host, text)) = split_line(line) {
            if host == HOST {
                m.feed_numbered(i + 1, host, text);
            }
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::local::record::Status;
    use crate::job::request::MetricDefinition;

    fn run(defs: &[(&str, &str)]) -> LocalRun {
        LocalRun {
            job_name: "unet-1".into(),
            folder: "/p/.sagetrain/local/unet-1".into(),
            mode: "container".into(),
            image: Some("unet:dev".into()),
            engine: Some("podman".into()),
            hosts: vec!["algo-1".into(), "algo-2".into()],
            started: "2027-01-15T08:00:00.000Z".into(),
            ended: Some("2027-01-15T08:00:09.000Z".into()),
            status: Status::Completed,
            exit_code: Some(0),
            failed_host: None,
            failure_reason: None,
            duration_seconds: Some(9.0),
            metric_definitions: defs
                .iter()
                .map(|(n, r)| MetricDefinition {
                    name: n.to_string(),
                    regex: r.to_string(),
                })
                .collect(),
            hyperparameters: Default::default(),
            pid: None,
        }
    }

    #[test]
    fn lines_are_split_at_their_host_prefix() {
        assert_eq!(
            split_line("[algo-1] loss=0.5"),
            Some(("algo-1", "loss=0.5"))
        );
        assert_eq!(
            split_line("[algo-12] [step 3] loss=1"),
            Some(("algo-12", "[step 3] loss=1"))
        );
        assert_eq!(split_line("loss=0.5"), None);
        assert_eq!(split_line("[] loss=0.5"), None);
        assert_eq!(split_line("[a b] loss"), None);
    }

    #[test]
    fn the_first_hosts_values_are_parsed_with_the_runs_definitions_by_line() {
        let log = "[algo-1] epoch 1 loss=0.9 dice=0.1\n\
                   [algo-2] epoch 1 loss=0.8\n\
                   [algo-1] noise\n\
                   loss=7 (a line without a host prefix)\n\
                   [algo-1] epoch 2 loss=0.5 dice=0.4\n\
                   [algo-1] loss=nan\n";
        let m = from_log(
            &run(&[
                ("loss", r"loss=([0-9.]+)"),
                ("dice", r"dice=(\S+)"),
                ("bad", "("),
            ]),
            log,
        );
        assert_eq!(m.job_name, "unet-1");
        assert_eq!(m.status, "Completed");
        assert_eq!(m.warnings.len(), 1, "{:?}", m.warnings);
        let loss = &m.metrics[0];
        assert_eq!(
            loss.points.iter().map(|p| p.value).collect::<Vec<_>>(),
            [0.9, 0.5]
        );
        assert_eq!(
            loss.points.iter().map(|p| p.line).collect::<Vec<_>>(),
            [Some(1), Some(5)]
        );
        assert!(loss.points.iter().all(|p| p.host == "algo-1"));
        assert_eq!(loss.points[1].x(), 5.0);
        assert_eq!(loss.final_value, Some(0.5));
        assert_eq!(loss.final_source, Some("logs"));
        assert_eq!(m.metrics[1].points.len(), 2);
        let j = m.to_json();
        assert_eq!(j["metrics"][0]["points"][0]["line"], 1);
        assert_eq!(
            j["metrics"][0]["points"][0]["seconds"],
            serde_json::Value::Null
        );
        assert_eq!(
            j["metrics"][0]["points"][0]["timestamp"],
            serde_json::Value::Null
        );
        // Drawn against the log's lines.
        let chart = crate::metrics::chart::render(std::slice::from_ref(&m), 80, false);
        assert!(chart.contains("x: line of train.log"), "{chart}");
        assert!(
            chart.contains("unet-1  2 values, final 0.5 (logs)"),
            "{chart}"
        );
    }

    #[test]
    fn a_run_without_definitions_has_no_series() {
        let m = from_log(&run(&[]), "[algo-1] loss=0.5\n");
        assert!(m.metrics.is_empty() && !m.has_definitions());
    }
}
