//! What a described training job looks like to the user: the verdict its status means, the
//! `status` report (text and JSON), and small time and duration formatters. Pure functions.

use crate::config::durations::{format_secs, format_time as fmt_time};
use crate::error::{Error, Kind};
use aws_sdk_sagemaker::operation::describe_training_job::DescribeTrainingJobOutput;
use serde::Serialize;

/// How a job ended, from its primary and secondary status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Completed,
    Failed { reason: String },
    Stopped { why: String, secondary: String },
}

/// Is this primary status one a job never leaves?
pub fn is_terminal(status: &str) -> bool {
    matches!(status, "Completed" | "Failed" | "Stopped")
}

/// The verdict of a described job, or None while it runs (InProgress, Stopping).
pub fn verdict(d: &DescribeTrainingJobOutput) -> Option<Verdict> {
    let status = d.training_job_status().map(|s| s.as_str()).unwrap_or("");
    let secondary = d
        .secondary_status()
        .map(|s| s.as_str().to_string())
        .unwrap_or_default();
    match status {
        "Completed" => Some(Verdict::Completed),
        "Failed" => Some(Verdict::Failed {
            reason: d
                .failure_reason()
                .filter(|r| !r.is_empty())
                .unwrap_or("SageMaker gave no FailureReason")
                .to_string(),
        }),
        "Stopped" => Some(Verdict::Stopped {
            why: stop_reason(d),
            secondary,
        }),
        _ => None,
    }
}

/// Why a stopped job stopped, from its secondary status and last status message.
pub fn stop_reason(d: &DescribeTrainingJobOutput) -> String {
    let secondary = d.secondary_status().map(|s| s.as_str()).unwrap_or("");
    let message = last_message(d);
    let sc = d.stopping_condition();
    let base = match secondary {
        "MaxRuntimeExceeded" => match sc.and_then(|s| s.max_runtime_in_seconds()) {
            Some(n) => format!(
                "it reached its maximum run time (MaxRuntimeInSeconds = {n}, {})",
                format_secs(n.max(0) as u64)
            ),
            None => "it reached its maximum run time (MaxRuntimeInSeconds)".to_string(),
        },
        "MaxWaitTimeExceeded" => match sc.and_then(|s| s.max_wait_time_in_seconds()) {
            Some(n) => format!(
                "it reached its maximum wait time for spot capacity plus run time (MaxWaitTimeInSeconds = {n}, {})",
                format_secs(n.max(0) as u64)
            ),
            None => "it reached its maximum wait time for spot capacity (MaxWaitTimeInSeconds)"
                .to_string(),
        },
        "Stopped" | "Stopping" | "" => {
            "a stop was requested (sagetrain stop, the console or the StopTrainingJob API)"
                .to_string()
        }
        other => format!("secondary status {other}"),
    };
    match message {
        Some(m) if !m.is_empty() => format!("{base}: {m}"),
        _ => base,
    }
}

/// The hint that goes with a stop reason.
fn stop_hint(secondary: &str, job: &str) -> String {
    match secondary {
        "MaxRuntimeExceeded" => format!(
            "raise the limit with --max-run (e.g. --max-run 48h; at most 28 days), or make training faster; \
             a spot job resumes from its checkpoints: sagetrain train --from {job} --max-run 48h"
        ),
        "MaxWaitTimeExceeded" => format!(
            "spot capacity was short: raise --max-wait, or run without --spot; sagetrain train --from {job} --max-wait 48h"
        ),
        _ => format!("see what it did before it stopped: sagetrain logs {job}"),
    }
}

/// The error (and exit code) a verdict means; None for Completed.
pub fn verdict_error(job: &str, v: &Verdict) -> Option<Error> {
    match v {
        Verdict::Completed => None,
        Verdict::Failed { reason } => Some(
            Error::new(
                Kind::JobFailed,
                format!("training job `{job}` failed: {reason}"),
            )
            .with_hint(format!(
                "read its logs: sagetrain logs {job}; the reason is the first 1024 characters the container wrote to /opt/ml/output/failure"
            )),
        ),
        Verdict::Stopped { why, secondary } => Some(
            Error::new(
                Kind::JobStopped,
                format!("training job `{job}` was stopped: {why}"),
            )
            .with_hint(stop_hint(secondary, job)),
        ),
    }
}

/// The status message of the latest secondary status transition, when that transition is the
/// job's current secondary status.
pub fn last_message(d: &DescribeTrainingJobOutput) -> Option<String> {
    let t = d.secondary_status_transitions().last()?;
    if t.status() != d.secondary_status() {
        return None;
    }
    t.status_message().map(str::to_string)
}

/// A whole number of seconds as `2m05s` (a negative count is 0).
pub fn fmt_secs(secs: i64) -> String {
    crate::config::durations::format_secs(secs.max(0) as u64)
}

/// An elapsed time as `2m05s`.
pub fn fmt_elapsed(d: std::time::Duration) -> String {
    fmt_secs(d.as_secs() as i64)
}

/// Everything `sagetrain status` shows, with a stable JSON form.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatusReport {
    pub job_name: String,
    pub job_arn: String,
    pub status: String,
    pub secondary_status: Option<String>,
    pub status_message: Option<String>,
    pub failure_reason: Option<String>,
    pub creation_time: Option<String>,
    pub training_start_time: Option<String>,
    pub training_end_time: Option<String>,
    pub training_seconds: Option<i64>,
    pub billable_seconds: Option<i64>,
    pub spot: bool,
    /// `1 - billable / training` for a spot job that has both figures.
    pub spot_savings: Option<f64>,
    /// The on-demand price of the instance type, USD an hour, as sagetrain last found it
    /// (see [`StatusReport::priced`]); none when it never looked it up.
    pub hourly_usd: Option<f64>,
    /// The billable time at that price, for every instance (spot savings are in the billable
    /// time already).
    pub cost_usd: Option<f64>,
    /// The type the job runs on: the one asked for, or the one SageMaker selected.
    pub instance_type: Option<String>,
    pub instance_count: Option<i32>,
    /// `--instance-type A,B,...`: the types asked for, in order (empty for one type).
    pub instance_preferences: Vec<String>,
    /// The type SageMaker selected from the preferences (none before it selects).
    pub selected_instance_type: Option<String>,
    pub volume_size_gb: Option<i32>,
    pub max_runtime_seconds: Option<i32>,
    pub max_wait_seconds: Option<i32>,
    pub training_image: Option<String>,
    pub role_arn: Option<String>,
    pub output_path: Option<String>,
    pub model_artifacts: Option<String>,
    /// Code mode: the digest of the code (`sagetrain/code/<digest>/`) and the entry script.
    pub code_digest: Option<String>,
    pub entry: Option<String>,
    pub keep_alive_seconds: Option<i32>,
    pub warm_pool: Option<crate::job::pools::PoolRow>,
    pub retries: Option<i32>,
    /// `RemoteDebugConfig.EnableRemoteDebug`: the containers can be reached over SSM.
    pub remote_debug: bool,
    /// How long each secondary status lasted (Starting, Downloading, Training, ...).
    pub phases: Vec<Phase>,
}

/// One secondary status and how long it lasted (`None` while it lasts).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Phase {
    pub status: String,
    pub seconds: Option<i64>,
}

/// The phases of a job from its SecondaryStatusTransitions. A status that ends the job
/// (Completed, Failed, Stopped, ...) is not a phase; the last one, still going, has no
/// duration yet.
pub fn phases(d: &DescribeTrainingJobOutput) -> Vec<Phase> {
    let ts = d.secondary_status_transitions();
    ts.iter()
        .enumerate()
        .filter_map(|(i, t)| {
            let status = t.status()?.as_str().to_string();
            let start = t.start_time()?;
            // A phase ends at its end time, or else where the next one starts.
            let end = t
                .end_time()
                .or_else(|| ts.get(i + 1).and_then(|n| n.start_time()));
            let seconds = end.map(|e| (e.secs() - start.secs()).max(0));
            let terminal = matches!(
                status.as_str(),
                "Completed" | "Failed" | "Stopped" | "MaxRuntimeExceeded" | "MaxWaitTimeExceeded"
            );
            (!terminal).then_some(Phase { status, seconds })
        })
        .collect()
}

/// The fraction saved by spot training, when it can be computed.
pub fn spot_savings(spot: bool, training: Option<i64>, billable: Option<i64>) -> Option<f64> {
    match (spot, training, billable) {
        (true, Some(t), Some(b)) if t > 0 => {
            Some(((1.0 - b as f64 / t as f64) * 1000.0).round() / 1000.0)
        }
        _ => None,
    }
}

impl StatusReport {
    pub fn from_describe(d: &DescribeTrainingJobOutput) -> StatusReport {
        let rc = d.resource_config();
        let sc = d.stopping_condition();
        let spot = d.enable_managed_spot_training().unwrap_or(false);
        let training = d.training_time_in_seconds().map(i64::from);
        let billable = d.billable_time_in_seconds().map(i64::from);
        StatusReport {
            job_name: d.training_job_name().unwrap_or_default().to_string(),
            job_arn: d.training_job_arn().unwrap_or_default().to_string(),
            status: d
                .training_job_status()
                .map(|s| s.as_str().to_string())
                .unwrap_or_else(|| "Unknown".into()),
            secondary_status: d.secondary_status().map(|s| s.as_str().to_string()),
            status_message: last_message(d),
            failure_reason: d.failure_reason().map(str::to_string),
            creation_time: d.creation_time().map(fmt_time),
            training_start_time: d.training_start_time().map(fmt_time),
            training_end_time: d.training_end_time().map(fmt_time),
            training_seconds: training,
            billable_seconds: billable,
            spot,
            spot_savings: spot_savings(spot, training, billable),
            hourly_usd: None,
            cost_usd: None,
            instance_type: rc
                .and_then(|r| r.instance_type().or(r.selected_instance_type()))
                .map(|t| t.as_str().to_string()),
            instance_count: rc.and_then(|r| r.instance_count().or(r.selected_instance_count())),
            instance_preferences: rc
                .map(|r| {
                    r.instance_preferences()
                        .iter()
                        .filter_map(|p| p.instance_type().map(|t| t.as_str().to_string()))
                        .collect()
                })
                .unwrap_or_default(),
            selected_instance_type: rc
                .and_then(|r| r.selected_instance_type())
                .map(|t| t.as_str().to_string()),
            volume_size_gb: rc.and_then(|r| r.volume_size_in_gb()),
            max_runtime_seconds: sc.and_then(|s| s.max_runtime_in_seconds()),
            max_wait_seconds: sc.and_then(|s| s.max_wait_time_in_seconds()),
            training_image: d
                .algorithm_specification()
                .and_then(|a| a.training_image())
                .map(str::to_string),
            role_arn: d.role_arn().map(str::to_string),
            output_path: d
                .output_data_config()
                .and_then(|o| o.s3_output_path())
                .map(str::to_string),
            model_artifacts: d
                .model_artifacts()
                .and_then(|m| m.s3_model_artifacts())
                .filter(|m| !m.is_empty())
                .map(str::to_string),
            code_digest: crate::job::code::job_code_uri(d)
                .and_then(|u| crate::job::code::digest_of_uri(&u)),
            entry: crate::job::code::job_entry(d),
            keep_alive_seconds: rc
                .and_then(|r| r.keep_alive_period_in_seconds())
                .filter(|k| *k > 0),
            warm_pool: crate::job::pools::row(d),
            retries: d.retry_strategy().and_then(|r| r.maximum_retry_attempts()),
            remote_debug: crate::job::request::remote_debug_of(d),
            phases: phases(d),
        }
    }

    /// With the instance type's on-demand price: the cost of the billable time.
    pub fn priced(mut self, hourly: Option<f64>) -> Self {
        self.hourly_usd = hourly;
        self.cost_usd = match (hourly, self.billable_seconds, self.instance_count) {
            (Some(h), Some(b), Some(n)) => Some(crate::job::cost::billed(h, i64::from(n), b)),
            _ => None,
        };
        self
    }

    /// The job's region, from its ARN.
    pub fn region(&self) -> Option<&str> {
        self.job_arn.split(':').nth(3).filter(|r| !r.is_empty())
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }

    /// Aligned `key  value` lines.
    pub fn to_text(&self) -> String {
        let mut rows: Vec<(&str, String)> = vec![("job", self.job_name.clone())];
        let mut status = self.status.clone();
        if let Some(s) = &self.secondary_status {
            if s != &self.status {
                status.push_str(&format!(" / {s}"));
            }
        }
        if let Some(m) = &self.status_message {
            status.push_str(&format!(": {m}"));
        }
        rows.push(("status", status));
        if let Some(r) = &self.failure_reason {
            rows.push(("failure reason", r.clone()));
        }
        if let Some(t) = &self.creation_time {
            rows.push(("created", t.clone()));
        }
        match (&self.training_start_time, &self.training_end_time) {
            (Some(s), Some(e)) => rows.push(("ran", format!("{s} to {e}"))),
            (Some(s), None) => rows.push(("started", s.clone())),
            _ => {}
        }
        if let Some(t) = self.training_seconds {
            let mut time = format!("{} training", format_secs(t.max(0) as u64));
            if let Some(b) = self.billable_seconds {
                time.push_str(&format!(", {} billable", format_secs(b.max(0) as u64)));
            }
            if let Some(s) = self.spot_savings {
                time.push_str(&format!(", spot savings {:.0}%", s * 100.0));
            }
            rows.push(("time", time));
        }
        if !self.phases.is_empty() {
            let p: Vec<String> = self
                .phases
                .iter()
                .map(|p| match p.seconds {
                    Some(s) => format!("{} {}", p.status, fmt_secs(s)),
                    None => format!("{} (now)", p.status),
                })
                .collect();
            rows.push(("phases", p.join(", ")));
        }
        let preferred = self.instance_preferences.join(", ");
        let not_selected = match (&self.instance_type, self.instance_count) {
            (None, Some(n)) if !preferred.is_empty() => {
                Some(format!("{n} x one of {preferred} (not selected yet)"))
            }
            _ => None,
        };
        if let Some(line) = not_selected {
            rows.push(("instances", line));
        }
        if let (Some(t), Some(n)) = (&self.instance_type, self.instance_count) {
            let mut inst = format!("{n} x {t}");
            if !preferred.is_empty() {
                inst.push_str(&format!(" (selected from {preferred})"));
            }
            if let Some(v) = self.volume_size_gb {
                inst.push_str(&format!(", {v} GB volume"));
            }
            if self.spot {
                inst.push_str(", spot");
            }
            if let Some(m) = self.max_runtime_seconds {
                inst.push_str(&format!(", max run {}", format_secs(m as u64)));
            }
            if let Some(w) = self.max_wait_seconds {
                inst.push_str(&format!(", max wait {}", format_secs(w as u64)));
            }
            rows.push(("instances", inst));
        }
        if let (Some(c), Some(h), Some(b), Some(n)) = (
            self.cost_usd,
            self.hourly_usd,
            self.billable_seconds,
            self.instance_count,
        ) {
            rows.push((
                "cost",
                format!(
                    "{} ({} billable x {n} at {} an hour on demand)",
                    crate::job::cost::usd(c),
                    format_secs(b.max(0) as u64),
                    crate::job::cost::usd(h)
                ),
            ));
        }
        if let Some(r) = self.retries {
            rows.push(("retries", format!("up to {r} after an internal error")));
        }
        if let Some(i) = &self.training_image {
            rows.push(("image", i.clone()));
        }
        if let Some(d) = &self.code_digest {
            rows.push((
                "code",
                format!(
                    "{d} (entry {})",
                    self.entry
                        .as_deref()
                        .unwrap_or(crate::job::code::DEFAULT_ENTRY)
                ),
            ));
        }
        if self.remote_debug {
            rows.push((
                "debug",
                format!(
                    "remote debugging on (SSM target sagemaker-training-job:{}_algo-1)",
                    self.job_name
                ),
            ));
        }
        match (&self.warm_pool, self.keep_alive_seconds) {
            (Some(w), _) => {
                let mut t = w.status.clone();
                if let Some(b) = w.retained_billable_seconds {
                    t.push_str(&format!(", {} retained billable", fmt_secs(b.into())));
                }
                if let Some(j) = &w.reused_by {
                    t.push_str(&format!(", reused by {j}"));
                }
                if let (Some(e), "Available") = (&w.expires, w.status.as_str()) {
                    t.push_str(&format!(", released at {e} unless reused"));
                }
                rows.push(("warm pool", t));
            }
            (None, Some(k)) => rows.push((
                "warm pool",
                format!("kept {} after the job", fmt_secs(k.into())),
            )),
            (None, None) => {}
        }
        if let Some(m) = &self.model_artifacts {
            rows.push(("model", m.clone()));
        }
        rows.push(("arn", self.job_arn.clone()));
        let w = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
        rows.iter()
            .map(|(k, v)| format!("{k:w$}  {v}"))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_sagemaker::types as sm;
    use aws_smithy_types::DateTime;

    fn job(
        status: sm::TrainingJobStatus,
        secondary: sm::SecondaryStatus,
    ) -> DescribeTrainingJobOutput {
        DescribeTrainingJobOutput::builder()
            .training_job_name("unet-1")
            .training_job_arn("arn:aws:sagemaker:us-east-1:123456789012:training-job/unet-1")
            .training_job_status(status)
            .secondary_status(secondary)
            .stopping_condition(
                sm::StoppingCondition::builder()
                    .max_runtime_in_seconds(3600)
                    .max_wait_time_in_seconds(7200)
                    .build(),
            )
            .build()
    }

    #[test]
    fn verdicts_and_their_exit_codes() {
        let c = job(
            sm::TrainingJobStatus::Completed,
            sm::SecondaryStatus::Completed,
        );
        assert_eq!(verdict(&c), Some(Verdict::Completed));
        assert!(verdict_error("unet-1", &Verdict::Completed).is_none());

        let f = DescribeTrainingJobOutput::builder()
            .training_job_status(sm::TrainingJobStatus::Failed)
            .secondary_status(sm::SecondaryStatus::Failed)
            .failure_reason("AlgorithmError: CUDA out of memory")
            .build();
        let v = verdict(&f).unwrap();
        let e = verdict_error("unet-1", &v).unwrap();
        assert_eq!(e.exit_code(), 5);
        assert!(e.message.contains("CUDA out of memory"), "{}", e.message);

        let s = job(
            sm::TrainingJobStatus::Stopped,
            sm::SecondaryStatus::MaxRuntimeExceeded,
        );
        let v = verdict(&s).unwrap();
        let e = verdict_error("unet-1", &v).unwrap();
        assert_eq!(e.exit_code(), 6);
        assert!(e.message.contains("maximum run time"), "{}", e.message);
        assert!(e.message.contains("3600"), "{}", e.message);
        assert!(e.hint.unwrap().contains("--max-run"));

        let w = job(
            sm::TrainingJobStatus::Stopped,
            sm::SecondaryStatus::MaxWaitTimeExceeded,
        );
        let e = verdict_error("unet-1", &verdict(&w).unwrap()).unwrap();
        assert_eq!(e.exit_code(), 6);
        assert!(
            e.message.contains("MaxWaitTimeInSeconds = 7200"),
            "{}",
            e.message
        );

        let r = job(
            sm::TrainingJobStatus::InProgress,
            sm::SecondaryStatus::Training,
        );
        assert_eq!(verdict(&r), None);
        let r = job(
            sm::TrainingJobStatus::Stopping,
            sm::SecondaryStatus::Stopping,
        );
        assert_eq!(verdict(&r), None);
    }

    #[test]
    fn spot_savings_are_a_fraction_of_the_training_time() {
        assert_eq!(spot_savings(true, Some(1000), Some(300)), Some(0.7));
        assert_eq!(spot_savings(false, Some(1000), Some(300)), None);
        assert_eq!(spot_savings(true, Some(0), Some(0)), None);
    }

    #[test]
    fn the_report_has_timings_instances_and_the_model() {
        let d = DescribeTrainingJobOutput::builder()
            .training_job_name("unet-1")
            .training_job_arn("arn:x")
            .training_job_status(sm::TrainingJobStatus::Completed)
            .secondary_status(sm::SecondaryStatus::Completed)
            .enable_managed_spot_training(true)
            .training_time_in_seconds(1000)
            .billable_time_in_seconds(250)
            .creation_time(DateTime::from_secs(1_800_000_000))
            .resource_config(
                crate::testing::resources(sm::TrainingInstanceType::MlG5Xlarge, 2, 30).build(),
            )
            .model_artifacts(
                sm::ModelArtifacts::builder()
                    .s3_model_artifacts("s3://b/out/unet-1/output/model.tar.gz")
                    .build(),
            )
            .build();
        let r = StatusReport::from_describe(&d);
        assert_eq!(r.spot_savings, Some(0.75));
        assert_eq!(r.creation_time.as_deref(), Some("2027-01-15T08:00:00Z"));
        let text = r.to_text();
        crate::testing::assert_contains_all(
            &text,
            &[
                "16m40s training, 4m10s billable, spot savings 75%",
                "2 x ml.g5.xlarge, 30 GB volume, spot",
                "model      s3://b/out/unet-1/output/model.tar.gz",
            ],
        );
        assert!(!text.contains("warm pool"), "{text}");
        assert!(!text.contains("cost"), "no price, no cost: {text}");
        let j = r.clone().priced(Some(1.408)).to_json();
        assert_eq!(j["hourly_usd"], 1.408);
        assert!((j["cost_usd"].as_f64().unwrap() - 0.195_555).abs() < 1e-5);
        assert!(r
            .clone()
            .priced(Some(1.408))
            .to_text()
            .contains("$0.20 (4m10s billable x 2 at $1.41 an hour on demand)"));
        assert_eq!(r.region(), None, "an ARN without a region");
        let j = r.to_json();
        assert_eq!(j["billable_seconds"], 250);
        assert_eq!(
            j["model_artifacts"],
            "s3://b/out/unet-1/output/model.tar.gz"
        );
    }

    /// Instance preferences: before SageMaker selects, the types asked for; after, the one it
    /// selected (text and JSON).
    #[test]
    fn the_selected_instance_type_of_a_job_with_preferences() {
        let described = |selected: Option<sm::TrainingInstanceType>| {
            let mut rc = sm::ResourceConfig::builder()
                .instance_count(1)
                .volume_size_in_gb(30)
                .instance_preferences(
                    sm::InstancePreference::builder()
                        .instance_type(sm::TrainingInstanceType::MlG52Xlarge)
                        .build(),
                )
                .instance_preferences(
                    sm::InstancePreference::builder()
                        .instance_type(sm::TrainingInstanceType::MlG62Xlarge)
                        .build(),
                );
            if let Some(t) = selected {
                rc = rc.selected_instance_type(t).selected_instance_count(1);
            }
            DescribeTrainingJobOutput::builder()
                .training_job_name("unet-1")
                .training_job_arn("arn:x")
                .training_job_status(sm::TrainingJobStatus::InProgress)
                .resource_config(rc.build())
                .build()
        };
        let r = StatusReport::from_describe(&described(None));
        assert!(
            r.to_text()
                .contains("1 x one of ml.g5.2xlarge, ml.g6.2xlarge (not selected yet)"),
            "{}",
            r.to_text()
        );
        assert_eq!(
            r.to_json()["selected_instance_type"],
            serde_json::Value::Null
        );
        let r =
            StatusReport::from_describe(&described(Some(sm::TrainingInstanceType::MlG62Xlarge)));
        assert!(
            r.to_text().contains(
                "1 x ml.g6.2xlarge (selected from ml.g5.2xlarge, ml.g6.2xlarge), 30 GB volume"
            ),
            "{}",
            r.to_text()
        );
        let j = r.to_json();
        assert_eq!(j["selected_instance_type"], "ml.g6.2xlarge");
        assert_eq!(j["instance_type"], "ml.g6.2xlarge");
        assert_eq!(
            j["instance_preferences"],
            serde_json::json!(["ml.g5.2xlarge", "ml.g6.2xlarge"])
        );
    }

    /// Where the time went, the warm pool, the code and the retries (what the emulator does
    /// not give: phases, warm pool status, retry strategy).
    #[test]
    fn phases_warm_pool_code_and_retries() {
        use sm::SecondaryStatus as S;
        // (phase, start, end), in seconds since the epoch.
        let phases = [
            (S::Starting, 1_800_000_000, 1_800_000_130),
            (S::Downloading, 1_800_000_130, 1_800_000_165),
            (S::Training, 1_800_000_165, 1_800_000_995),
            (S::Uploading, 1_800_000_995, 1_800_001_000),
            (S::Completed, 1_800_001_000, 1_800_001_000),
        ];
        let transitions = phases.map(|(status, start, end)| {
            sm::SecondaryStatusTransition::builder()
                .status(status)
                .start_time(DateTime::from_secs(start))
                .end_time(DateTime::from_secs(end))
                .build()
        });
        let d = DescribeTrainingJobOutput::builder()
            .training_job_name("unet-2")
            .training_job_arn("arn:x")
            .training_job_status(sm::TrainingJobStatus::Completed)
            .secondary_status(sm::SecondaryStatus::Completed)
            .training_end_time(DateTime::from_secs(1_800_001_000))
            .set_secondary_status_transitions(Some(transitions.to_vec()))
            .algorithm_specification(
                sm::AlgorithmSpecification::builder()
                    .training_input_mode(sm::TrainingInputMode::File)
                    .set_container_entrypoint(Some(crate::job::code::entrypoint()))
                    .container_arguments("main.py")
                    .build(),
            )
            .input_data_config(
                crate::testing::s3_channel(
                    "code",
                    "s3://bkt/sagetrain/code/0123456789abcdef0123456789abcdef/",
                )
                .build(),
            )
            .resource_config(
                crate::testing::g5()
                    .keep_alive_period_in_seconds(1800)
                    .build(),
            )
            .warm_pool_status(
                sm::WarmPoolStatus::builder()
                    .status(sm::WarmPoolResourceStatus::Reused)
                    .resource_retained_billable_time_in_seconds(300)
                    .reused_by_job("unet-3")
                    .build(),
            )
            .retry_strategy(
                sm::RetryStrategy::builder()
                    .maximum_retry_attempts(3)
                    .build(),
            )
            .remote_debug_config(
                sm::RemoteDebugConfig::builder()
                    .enable_remote_debug(true)
                    .build(),
            )
            .build();
        let r = StatusReport::from_describe(&d);
        let text = r.to_text();
        crate::testing::assert_contains_all(
            &text,
            &[
                "phases     Starting 2m10s, Downloading 35s, Training 13m50s, Uploading 5s",
                "warm pool  Reused, 5m retained billable, reused by unet-3",
                "code       0123456789abcdef0123456789abcdef (entry main.py)",
                "retries    up to 3",
                "debug      remote debugging on (SSM target sagemaker-training-job:",
            ],
        );
        let j = r.to_json();
        assert_eq!(j["remote_debug"], true);
        assert_eq!(
            j["phases"][0],
            serde_json::json!({"status": "Starting", "seconds": 130})
        );
        assert_eq!(j["warm_pool"]["reused_by"], "unet-3");
        assert_eq!(j["code_digest"], "0123456789abcdef0123456789abcdef");
    }
}
