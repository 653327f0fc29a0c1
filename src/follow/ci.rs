//! GitHub Actions: when a wait ends (`wait`, `train --wait`), a Markdown summary of the job is
//! appended to `$GITHUB_STEP_SUMMARY` (shown on the run's page) and a failed or stopped job gets
//! an `::error::` annotation. Only when `GITHUB_ACTIONS=true`; nothing of this elsewhere.
//!
//! The variables are read through the command's injectable environment lookup. The annotation
//! goes to stderr: the runner reads workflow commands from both streams, and stdout carries
//! only the command's result.

use crate::config::durations::format_time as fmt_time;
use crate::error::{Error, Kind};
use crate::follow::report::{fmt_secs, StatusReport, Verdict};
use crate::follow::Describe;
use crate::secrets::redact;
use std::io::Write;
use std::path::PathBuf;

/// Running inside GitHub Actions, and where the step summary goes (if the runner set it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitHubActions {
    pub step_summary: Option<PathBuf>,
}

impl GitHubActions {
    /// `GITHUB_ACTIONS=true` (as the runner sets it), else None.
    pub fn detect(env: &dyn Fn(&str) -> Option<String>) -> Option<GitHubActions> {
        if env("GITHUB_ACTIONS").as_deref() != Some("true") {
            return None;
        }
        Some(GitHubActions {
            step_summary: env("GITHUB_STEP_SUMMARY")
                .filter(|p| !p.is_empty())
                .map(PathBuf::from),
        })
    }

    /// Append `markdown` to the step summary. None when there is no summary file.
    pub fn append_summary(&self, markdown: &str) -> Option<std::io::Result<()>> {
        let path = self.step_summary.as_ref()?;
        Some((|| {
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .create(true)
                .open(path)?;
            f.write_all(markdown.as_bytes())?;
            f.flush()
        })())
    }
}

/// How the wait ended, as far as the summary is concerned.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Completed,
    Failed {
        reason: String,
    },
    Stopped {
        why: String,
    },
    /// The wait ended before the job did (--timeout, Ctrl-C, an error): the job keeps running.
    Unfinished {
        why: String,
    },
}

impl Outcome {
    pub fn of(result: &Result<Verdict, Error>) -> Outcome {
        match result {
            Ok(Verdict::Completed) => Outcome::Completed,
            Ok(Verdict::Failed { reason }) => Outcome::Failed {
                reason: reason.clone(),
            },
            Ok(Verdict::Stopped { why, .. }) => Outcome::Stopped { why: why.clone() },
            Err(e) => Outcome::Unfinished {
                why: match e.kind {
                    Kind::Timeout => "sagetrain stopped waiting (--timeout or --deadline)",
                    Kind::Interrupted => "sagetrain stopped waiting (interrupted)",
                    _ => "sagetrain stopped waiting (an error, see the log)",
                }
                .to_string(),
            },
        }
    }
}

/// A table cell: one line, no `|` breaking the table, no HTML.
fn cell(s: &str) -> String {
    redact(s)
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('|', "\\|")
        .replace("\r\n", " ")
        .replace(['\n', '\r'], " ")
}

/// Inline code that survives backticks inside.
fn code(s: &str) -> String {
    let s = cell(s);
    if s.contains('`') {
        format!("`` {s} ``")
    } else {
        format!("`{s}`")
    }
}

/// Seconds from creation to the end (or to the last change, while it runs).
fn wall_seconds(d: &Describe) -> Option<i64> {
    let start = d.creation_time()?.secs();
    let end = d.training_end_time().or(d.last_modified_time())?.secs();
    (end >= start).then_some(end - start)
}

/// The console page of the job, from its ARN (commercial partition only).
fn console_url(arn: &str, job: &str) -> Option<String> {
    let mut parts = arn.split(':');
    let (Some("arn"), Some("aws"), Some("sagemaker"), Some(region)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    (!region.is_empty()).then(|| {
        format!(
            "https://{region}.console.aws.amazon.com/sagemaker/home?region={region}#/jobs/{job}"
        )
    })
}

/// The final value of each metric SageMaker recorded (FinalMetricDataList), in its order. The
/// service sends a 32-bit float: it is widened through its shortest decimal form, so that 0.9
/// stays 0.9 (not 0.8999999761581421).
pub fn final_metrics(d: &Describe) -> Vec<(String, f64)> {
    d.final_metric_data_list()
        .iter()
        .filter_map(|m| {
            let v = m.value()?;
            let wide = v.to_string().parse::<f64>().unwrap_or(f64::from(v));
            Some((m.metric_name()?.to_string(), wide))
        })
        .collect()
}

/// The step summary: job, verdict, duration, billable time, final metrics, model URI.
/// `hourly`: the instance type's on-demand price as sagetrain last found it, for the cost row.
pub fn summary_markdown(
    job: &str,
    d: Option<&Describe>,
    outcome: &Outcome,
    hourly: Option<f64>,
) -> String {
    let (icon, verdict) = match outcome {
        Outcome::Completed => ("✅", "Completed".to_string()),
        Outcome::Failed { reason } => ("❌", format!("Failed: {reason}")),
        Outcome::Stopped { why } => ("⏹️", format!("Stopped: {why}")),
        Outcome::Unfinished { why } => {
            let state = d
                .map(|d| {
                    crate::follow::status_text(
                        d.training_job_status().map(|s| s.as_str()).unwrap_or("?"),
                        d.secondary_status().map(|s| s.as_str()).unwrap_or(""),
                        None,
                    )
                })
                .unwrap_or_else(|| "in an unknown state".into());
            (
                "⏳",
                format!("not finished: {state}; {why}; the job keeps running"),
            )
        }
    };
    let mut md = format!("### {icon} SageMaker training job {}\n\n", code(job));
    md.push_str("| | |\n| --- | --- |\n");
    let mut row = |k: &str, v: String| md.push_str(&format!("| {k} | {v} |\n"));
    let r = d.map(|d| StatusReport::from_describe(d).priced(hourly));
    let job_cell = match r.as_ref().and_then(|r| console_url(&r.job_arn, job)) {
        Some(url) => format!("[{}]({url})", code(job)),
        None => code(job),
    };
    row("Job", job_cell);
    row("Verdict", cell(&verdict));
    if let Some(d) = d {
        let r = r.as_ref().expect("report of d");
        if let Some(w) = wall_seconds(d) {
            let mut text = fmt_secs(w);
            if let (Some(c), Some(e)) = (d.creation_time(), d.training_end_time()) {
                text.push_str(&format!(" ({} to {})", fmt_time(c), fmt_time(e)));
            }
            row("Duration", text);
        }
        if let Some(t) = r.training_seconds {
            row("Training time", fmt_secs(t));
        }
        if let Some(b) = r.billable_seconds {
            let mut text = fmt_secs(b);
            if let Some(s) = r.spot_savings {
                text.push_str(&format!(" (spot, {:.0}% saved)", s * 100.0));
            }
            row("Billable time", text);
        }
        if let (Some(t), Some(n)) = (&r.instance_type, r.instance_count) {
            row("Instances", format!("{n} × {}", cell(t)));
        }
        if let (Some(c), Some(h)) = (r.cost_usd, r.hourly_usd) {
            row(
                "Cost",
                format!(
                    "{} (billable time on demand, at {} an hour)",
                    crate::job::cost::usd(c),
                    crate::job::cost::usd(h)
                ),
            );
        }
        row(
            "Model",
            r.model_artifacts
                .as_deref()
                .map(code)
                .unwrap_or_else(|| "none".into()),
        );
        let metrics = final_metrics(d);
        if !metrics.is_empty() {
            md.push_str("\n| Final metric | Value |\n| --- | ---: |\n");
            for (name, value) in metrics {
                md.push_str(&format!("| {} | {value} |\n", cell(&name)));
            }
        }
    }
    md.push('\n');
    md
}

/// Escape the message of a workflow command (`%`, CR, LF).
fn escape_data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// Escape a property of a workflow command (also `:` and `,`).
fn escape_property(s: &str) -> String {
    escape_data(s).replace(':', "%3A").replace(',', "%2C")
}

/// The `::error::` annotation for a failed or stopped job; None otherwise.
pub fn annotation(job: &str, outcome: &Outcome) -> Option<String> {
    let (title, message) = match outcome {
        Outcome::Failed { reason } => (
            format!("SageMaker training job {job} failed"),
            format!("training job `{job}` failed: {reason} (logs: sagetrain logs {job})"),
        ),
        Outcome::Stopped { why } => (
            format!("SageMaker training job {job} was stopped"),
            format!("training job `{job}` was stopped: {why}"),
        ),
        Outcome::Completed | Outcome::Unfinished { .. } => return None,
    };
    Some(format!(
        "::error title={}::{}",
        escape_property(&redact(&title)),
        escape_data(&redact(&message))
    ))
}

/// In GitHub Actions: write the summary and print the annotation. A summary that cannot be
/// written is a warning: the job's verdict stays the exit code.
pub fn report(
    env: &dyn Fn(&str) -> Option<String>,
    ui: &crate::ui::Ui,
    job: &str,
    last: Option<&Describe>,
    result: &Result<Verdict, Error>,
) {
    let Some(gh) = GitHubActions::detect(env) else {
        return;
    };
    let outcome = Outcome::of(result);
    if let Some(a) = annotation(job, &outcome) {
        let _ = writeln!(std::io::stderr().lock(), "{a}");
    }
    let memo = crate::job::remembered::Remembered::new(crate::fsutil::cache_dir(env), false);
    let hourly = last
        .map(StatusReport::from_describe)
        .and_then(|r| memo.price_any_age(r.region()?, r.instance_type.as_deref()?));
    match gh.append_summary(&summary_markdown(job, last, &outcome, hourly)) {
        None => ui.detail("GITHUB_STEP_SUMMARY is not set: no job summary written"),
        Some(Ok(())) => ui.detail("job summary appended to $GITHUB_STEP_SUMMARY"),
        Some(Err(e)) => ui.warn(&format!(
            "cannot append the job summary to $GITHUB_STEP_SUMMARY ({}): {e}",
            gh.step_summary
                .as_deref()
                .unwrap_or_else(|| "".as_ref())
                .display()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_sagemaker::types as sm;
    use aws_smithy_types::DateTime;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
    }

    fn completed() -> Describe {
        Describe::builder()
            .training_job_name("unet-1")
            .training_job_arn("arn:aws:sagemaker:eu-west-1:111122223333:training-job/unet-1")
            .training_job_status(sm::TrainingJobStatus::Completed)
            .secondary_status(sm::SecondaryStatus::Completed)
            .creation_time(DateTime::from_secs(1_800_000_000))
            .training_start_time(DateTime::from_secs(1_800_000_120))
            .training_end_time(DateTime::from_secs(1_800_002_851))
            .training_time_in_seconds(2652)
            .billable_time_in_seconds(796)
            .enable_managed_spot_training(true)
            .resource_config(crate::testing::g5().build())
            .model_artifacts(
                sm::ModelArtifacts::builder()
                    .s3_model_artifacts("s3://b/out/unet-1/output/model.tar.gz")
                    .build(),
            )
            .final_metric_data_list(
                sm::MetricData::builder()
                    .metric_name("val:dice")
                    .value(0.8125)
                    .build(),
            )
            .final_metric_data_list(
                sm::MetricData::builder()
                    .metric_name("train:loss")
                    .value(0.9)
                    .build(),
            )
            .build()
    }

    #[test]
    fn only_in_github_actions() {
        assert_eq!(GitHubActions::detect(&env(&[])), None);
        assert_eq!(
            GitHubActions::detect(&env(&[("GITHUB_ACTIONS", "false")])),
            None
        );
        assert_eq!(GitHubActions::detect(&env(&[("CI", "true")])), None);
        let gh = GitHubActions::detect(&env(&[
            ("GITHUB_ACTIONS", "true"),
            ("GITHUB_STEP_SUMMARY", "/tmp/s.md"),
        ]))
        .unwrap();
        assert_eq!(gh.step_summary, Some(PathBuf::from("/tmp/s.md")));
        let gh = GitHubActions::detect(&env(&[("GITHUB_ACTIONS", "true")])).unwrap();
        assert_eq!(gh.append_summary("x").map(|r| r.is_ok()), None);
    }

    #[test]
    fn the_summary_of_a_completed_job() {
        let md = summary_markdown(
            "unet-1",
            Some(&completed()),
            &Outcome::Completed,
            Some(1.408),
        );
        let want = "\
### ✅ SageMaker training job `unet-1`

| | |
| --- | --- |
| Job | [`unet-1`](https://eu-west-1.console.aws.amazon.com/sagemaker/home?region=eu-west-1#/jobs/unet-1) |
| Verdict | Completed |
| Duration | 47m31s (2027-01-15T08:00:00Z to 2027-01-15T08:47:31Z) |
| Training time | 44m12s |
| Billable time | 13m16s (spot, 70% saved) |
| Instances | 1 × ml.g5.xlarge |
| Cost | $0.31 (billable time on demand, at $1.41 an hour) |
| Model | `s3://b/out/unet-1/output/model.tar.gz` |

| Final metric | Value |
| --- | ---: |
| val:dice | 0.8125 |
| train:loss | 0.9 |

";
        assert_eq!(md, want);
        assert_eq!(annotation("unet-1", &Outcome::Completed), None);
    }

    #[test]
    fn a_failed_job_keeps_its_table_intact_and_gets_an_error_annotation() {
        let d = Describe::builder()
            .training_job_name("unet-2")
            .training_job_status(sm::TrainingJobStatus::Failed)
            .build();
        let reason = "AlgorithmError: x | y\nTraceback <module> 100%";
        let outcome = Outcome::of(&Ok(Verdict::Failed {
            reason: reason.into(),
        }));
        let md = summary_markdown("unet-2", Some(&d), &outcome, None);
        assert!(
            md.starts_with("### ❌ SageMaker training job `unet-2`\n"),
            "{md}"
        );
        crate::testing::assert_contains_all(
            &md,
            &[
                "| Verdict | Failed: AlgorithmError: x \\| y Traceback &lt;module&gt; 100% |\n",
                "| Model | none |\n",
            ],
        );
        assert!(!md.contains("Final metric"), "{md}");
        // Every table row has exactly the columns of its header.
        for l in md.lines().filter(|l| l.starts_with('|')) {
            assert_eq!(l.replace("\\|", "").matches('|').count(), 3, "{l}");
        }
        assert_eq!(
            annotation("unet-2", &outcome).unwrap(),
            "::error title=SageMaker training job unet-2 failed::training job `unet-2` failed: \
             AlgorithmError: x | y%0ATraceback <module> 100%25 (logs: sagetrain logs unet-2)"
        );
    }

    #[test]
    fn stopped_and_unfinished_waits() {
        let stopped = Outcome::of(&Ok(Verdict::Stopped {
            why: "it reached its maximum run time".into(),
            secondary: "MaxRuntimeExceeded".into(),
        }));
        let a = annotation("unet-3", &stopped).unwrap();
        assert!(
            a.starts_with("::error title=SageMaker training job unet-3 was stopped::"),
            "{a}"
        );
        let md = summary_markdown("unet-3", None, &stopped, None);
        assert!(md.starts_with("### ⏹️"), "{md}");
        assert!(
            md.contains("| Verdict | Stopped: it reached its maximum run time |"),
            "{md}"
        );

        let d = Describe::builder()
            .training_job_status(sm::TrainingJobStatus::InProgress)
            .secondary_status(sm::SecondaryStatus::Training)
            .build();
        let timeout = Outcome::of(&Err(Error::new(Kind::Timeout, "gave up")));
        assert_eq!(annotation("unet-4", &timeout), None);
        let md = summary_markdown("unet-4", Some(&d), &timeout, None);
        assert!(md.starts_with("### ⏳"), "{md}");
        assert!(
            md.contains("not finished: InProgress / Training; sagetrain stopped waiting (--timeout or --deadline); the job keeps running"),
            "{md}"
        );
    }

    #[test]
    fn the_summary_is_appended_not_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("summary.md");
        std::fs::write(&path, "earlier step\n").unwrap();
        let gh = GitHubActions {
            step_summary: Some(path.clone()),
        };
        gh.append_summary("one\n").unwrap().unwrap();
        gh.append_summary("two\n").unwrap().unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "earlier step\none\ntwo\n"
        );
        let bad = GitHubActions {
            step_summary: Some(dir.path().join("missing/summary.md")),
        };
        assert!(bad.append_summary("x").unwrap().is_err());
    }
}
