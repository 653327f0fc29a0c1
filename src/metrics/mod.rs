//! Training curves: each metric's values over time, parsed from a job's CloudWatch logs with the
//! job's own `MetricDefinitions` (what SageMaker itself does: the first capture group of each
//! definition's regex is the value), plus the job's `FinalMetricDataList`.
//!
//! The logs are read with [`crate::follow::logs::LogTail`], the same reader as `logs` and
//! `wait --logs`, so a job followed with `--follow` is read incrementally.

pub mod chart;
pub mod image;
pub mod local;

use crate::aws::errors::CallError;
use crate::follow::logs::{LogLine, LogTail};
use crate::follow::Describe;
use regex::Regex;
use serde::Serialize;

/// One value of a metric, as logged.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Point {
    /// Milliseconds since the epoch (the log event's timestamp); null for a local run, whose
    /// log has no times.
    pub timestamp: Option<i64>,
    /// Seconds since the job's start (see [`JobMetrics::origin`]); null for a local run.
    pub seconds: Option<f64>,
    /// A local run: the line of its `train.log` (from 1), which is then the x axis.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    pub value: f64,
    pub host: String,
}

impl Point {
    /// Where the point is drawn: its seconds, else its log line.
    pub fn x(&self) -> f64 {
        self.seconds.or(self.line.map(|l| l as f64)).unwrap_or(0.0)
    }
}

/// One metric of one job.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Series {
    pub name: String,
    /// The definition's regex; None for a metric known only from FinalMetricDataList.
    pub regex: Option<String>,
    pub points: Vec<Point>,
    /// FinalMetricDataList's value when SageMaker recorded one, else the last logged value.
    pub final_value: Option<f64>,
    /// `FinalMetricDataList` or `logs`.
    pub final_source: Option<&'static str>,
}

impl Series {
    pub fn min_max(&self) -> Option<(f64, f64)> {
        self.points.iter().fold(None, |acc, p| match acc {
            None => Some((p.value, p.value)),
            Some((lo, hi)) => Some((lo.min(p.value), hi.max(p.value))),
        })
    }
}

/// A metric definition whose regex compiled.
#[derive(Debug, Clone)]
struct Definition {
    name: String,
    regex: Regex,
}

/// Every metric of one job, growing as log lines are fed in.
#[derive(Debug, Clone, Serialize)]
pub struct JobMetrics {
    pub job_name: String,
    pub status: String,
    /// Milliseconds since the epoch that `seconds` counts from: the training start time, or the
    /// first log line when that is earlier or unknown.
    pub origin: Option<i64>,
    pub metrics: Vec<Series>,
    /// Definitions that could not be used (a regex this engine rejects), said once.
    pub warnings: Vec<String>,
    #[serde(skip)]
    definitions: Vec<Definition>,
    #[serde(skip)]
    training_start: Option<i64>,
}

/// The value in a match: the first capture group (as SageMaker), or the whole match.
fn captured(re: &Regex, text: &str) -> Option<f64> {
    let caps = re.captures(text)?;
    let m = caps.get(1).or_else(|| caps.get(0))?;
    let v: f64 = m.as_str().trim().parse().ok()?;
    v.is_finite().then_some(v)
}

impl JobMetrics {
    /// The job's definitions (AlgorithmSpecification.MetricDefinitions) and status.
    pub fn new(job: &str, d: &Describe) -> JobMetrics {
        let defs = d
            .algorithm_specification()
            .map(|a| a.metric_definitions())
            .unwrap_or_default()
            .iter()
            .filter_map(|def| Some((def.name()?, def.regex()?)));
        let mut jm = JobMetrics::with_definitions(job, defs);
        jm.update(d);
        jm
    }

    /// A job with these definitions (name, regex) and no status yet.
    pub fn with_definitions<'a>(
        job: &str,
        defs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> JobMetrics {
        let mut metrics = Vec::new();
        let mut definitions = Vec::new();
        let mut warnings = Vec::new();
        for (name, raw) in defs {
            match Regex::new(raw) {
                Ok(regex) => {
                    definitions.push(Definition {
                        name: name.to_string(),
                        regex,
                    });
                    metrics.push(Series {
                        name: name.to_string(),
                        regex: Some(raw.to_string()),
                        points: Vec::new(),
                        final_value: None,
                        final_source: None,
                    });
                }
                Err(e) => warnings.push(format!(
                    "job {job}: metric `{name}`: its regex `{raw}` is not one this tool can run ({}); it is left out",
                    e.to_string().lines().last().unwrap_or("invalid")
                )),
            }
        }
        JobMetrics {
            job_name: job.to_string(),
            status: String::new(),
            origin: None,
            metrics,
            warnings,
            definitions,
            training_start: None,
        }
    }

    /// Status, start time and final values from a (newer) description.
    pub fn update(&mut self, d: &Describe) {
        self.status = d
            .training_job_status()
            .map(|s| s.as_str().to_string())
            .unwrap_or_else(|| "Unknown".into());
        self.training_start = d.training_start_time().and_then(|t| t.to_millis().ok());
        if let Some(s) = self.training_start {
            self.set_origin(s);
        }
        for (name, value) in crate::follow::ci::final_metrics(d) {
            match self.metrics.iter_mut().find(|s| s.name == name) {
                Some(s) => {
                    s.final_value = Some(value);
                    s.final_source = Some("FinalMetricDataList");
                }
                None => self.metrics.push(Series {
                    name,
                    regex: None,
                    points: Vec::new(),
                    final_value: Some(value),
                    final_source: Some("FinalMetricDataList"),
                }),
            }
        }
    }

    fn set_origin(&mut self, candidate: i64) {
        if self.origin.is_some_and(|o| o <= candidate) {
            return;
        }
        self.origin = Some(candidate);
        for s in &mut self.metrics {
            for p in &mut s.points {
                if let Some(t) = p.timestamp {
                    p.seconds = Some((t - candidate) as f64 / 1000.0);
                }
            }
        }
    }

    /// Parse one log line with every definition.
    pub fn feed(&mut self, line: &LogLine) {
        self.feed_at(When::Time(line.timestamp), &line.host, &line.message);
    }

    /// Parse line `number` (from 1) of a local run's log, which has no times.
    pub fn feed_numbered(&mut self, number: usize, host: &str, message: &str) {
        self.feed_at(When::Line(number), host, message);
    }

    fn feed_at(&mut self, when: When, host: &str, message: &str) {
        let mut found = Vec::new();
        for (i, def) in self.definitions.iter().enumerate() {
            if let Some(v) = captured(&def.regex, message) {
                found.push((i, v));
            }
        }
        if found.is_empty() {
            return;
        }
        let (timestamp, seconds, line) = match when {
            When::Time(t) => {
                self.set_origin(t);
                let origin = self.origin.unwrap_or(t);
                (Some(t), Some((t - origin) as f64 / 1000.0), None)
            }
            When::Line(n) => (None, None, Some(n)),
        };
        for (i, value) in found {
            let name = &self.definitions[i].name;
            let s = self
                .metrics
                .iter_mut()
                .find(|s| &s.name == name)
                .expect("a series per definition");
            s.points.push(Point {
                timestamp,
                seconds,
                line,
                value,
                host: host.to_string(),
            });
            if s.final_source != Some("FinalMetricDataList") {
                s.final_value = Some(value);
                s.final_source = Some("logs");
            }
        }
    }

    pub fn has_definitions(&self) -> bool {
        self.metrics.iter().any(|s| s.regex.is_some())
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }
}

/// Where a log line was: a time (CloudWatch), or a line of a local run's log.
#[derive(Debug, Clone, Copy)]
enum When {
    Time(i64),
    Line(usize),
}

/// A job being read: its metrics and its place in the logs.
pub struct Reader {
    pub metrics: JobMetrics,
    pub tail: LogTail,
}

impl Reader {
    pub fn new(job: &str, d: &Describe) -> Reader {
        let mut tail = LogTail::new(job, None);
        if let Some(c) = d.resource_config().and_then(|r| r.instance_count()) {
            tail.instance_count = c;
        }
        Reader {
            metrics: JobMetrics::new(job, d),
            tail,
        }
    }

    /// Read what the logs hold past the last read. Returns the number of lines read.
    pub async fn read(
        &mut self,
        logs: &aws_sdk_cloudwatchlogs::Client,
    ) -> Result<usize, CallError> {
        self.tail.discover(logs).await?;
        let metrics = &mut self.metrics;
        self.tail.drain(logs, &mut |l| metrics.feed(&l)).await
    }
}

/// The names of every metric over several jobs, in first-seen order.
pub fn metric_names(jobs: &[JobMetrics]) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for j in jobs {
        for s in &j.metrics {
            if !names.contains(&s.name) {
                names.push(s.name.clone());
            }
        }
    }
    names
}

/// Numbers as a person reads them: up to 6 significant digits, no trailing zeros.
pub fn fmt_value(v: f64) -> String {
    if v == 0.0 {
        return "0".into();
    }
    let a = v.abs();
    if !(1e-4..1e7).contains(&a) {
        return format!("{v:.4e}");
    }
    let digits = (6 - (a.log10().floor() as i32 + 1)).clamp(0, 10) as usize;
    let s = format!("{v:.digits$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use aws_sdk_sagemaker::types as sm;
    use aws_smithy_types::DateTime;

    pub fn described(defs: &[(&str, &str)], finals: &[(&str, f32)]) -> Describe {
        let mut spec = sm::AlgorithmSpecification::builder()
            .training_image("img")
            .training_input_mode(sm::TrainingInputMode::File);
        for (n, r) in defs {
            spec =
                spec.metric_definitions(sm::MetricDefinition::builder().name(*n).regex(*r).build());
        }
        let mut d = Describe::builder()
            .training_job_status(sm::TrainingJobStatus::Completed)
            .training_start_time(DateTime::from_millis(1_000_000))
            .algorithm_specification(spec.build());
        for (n, v) in finals {
            d = d.final_metric_data_list(
                sm::MetricData::builder().metric_name(*n).value(*v).build(),
            );
        }
        d.build()
    }

    pub fn line(ts: i64, msg: &str) -> LogLine {
        LogLine {
            host: "algo-1".into(),
            stream: "j/algo-1-1".into(),
            timestamp: ts,
            message: msg.into(),
        }
    }

    #[test]
    fn lines_are_parsed_with_the_jobs_own_definitions() {
        let d = described(
            &[
                ("train:loss", r"loss=([0-9.eE+-]+)"),
                ("val:dice", r"val_dice=(\S+)"),
                ("broken", r"(?<=x)y"),
            ],
            &[("val:dice", 0.75)],
        );
        let mut m = JobMetrics::new("j", &d);
        assert_eq!(m.warnings.len(), 1, "{:?}", m.warnings);
        assert!(m.warnings[0].contains("`broken`"), "{:?}", m.warnings);
        m.feed(&line(1_001_000, "epoch 1 loss=0.9 val_dice=0.5"));
        m.feed(&line(1_002_000, "noise without numbers"));
        m.feed(&line(1_003_500, "epoch 2 loss=4e-1 val_dice=nan"));
        m.feed(&line(1_005_000, "epoch 3 loss=0.25 val_dice=0.7"));
        let loss = &m.metrics[0];
        assert_eq!(
            loss.points.iter().map(|p| p.value).collect::<Vec<_>>(),
            [0.9, 0.4, 0.25]
        );
        assert_eq!(
            loss.points.iter().map(|p| p.x()).collect::<Vec<_>>(),
            [1.0, 3.5, 5.0]
        );
        assert_eq!(loss.final_value, Some(0.25));
        assert_eq!(loss.final_source, Some("logs"));
        let dice = &m.metrics[1];
        // nan is not a value; the final value is SageMaker's own.
        assert_eq!(
            dice.points.iter().map(|p| p.value).collect::<Vec<_>>(),
            [0.5, 0.7]
        );
        assert_eq!(dice.final_value, Some(0.75));
        assert_eq!(dice.final_source, Some("FinalMetricDataList"));
        assert_eq!(m.origin, Some(1_000_000));
        assert_eq!(loss.min_max(), Some((0.25, 0.9)));
    }

    #[test]
    fn a_metric_known_only_at_the_end_and_an_origin_before_the_start() {
        let d = described(&[("acc", r"acc: ([0-9.]+)")], &[("train:progress", 100.0)]);
        let mut m = JobMetrics::new("j", &d);
        assert!(m.has_definitions());
        // A line before TrainingStartTime moves the origin back, and earlier points with it.
        m.feed(&line(1_002_000, "acc: 0.5"));
        m.feed(&line(999_000, "acc: 0.1"));
        assert_eq!(m.origin, Some(999_000));
        assert_eq!(
            m.metrics[0]
                .points
                .iter()
                .map(|p| p.x())
                .collect::<Vec<_>>(),
            [3.0, 0.0]
        );
        let progress = m
            .metrics
            .iter()
            .find(|s| s.name == "train:progress")
            .unwrap();
        assert_eq!(progress.final_value, Some(100.0));
        assert!(progress.points.is_empty() && progress.regex.is_none());
        let j = m.to_json();
        assert_eq!(j["job_name"], "j");
        assert_eq!(j["metrics"][0]["points"][0]["value"], 0.5);
        assert_eq!(j["metrics"][1]["final_source"], "FinalMetricDataList");
        assert!(j.get("definitions").is_none());
    }

    #[test]
    fn values_read_well() {
        assert_eq!(fmt_value(0.0), "0");
        assert_eq!(fmt_value(0.25), "0.25");
        assert_eq!(fmt_value(0.123456789), "0.123457");
        assert_eq!(fmt_value(1234.5), "1234.5");
        assert_eq!(fmt_value(100.0), "100");
        assert_eq!(fmt_value(-2.5), "-2.5");
        assert_eq!(fmt_value(1e-7), "1.0000e-7");
    }
}
