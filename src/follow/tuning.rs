//! A hyperparameter tuning job as the user sees it: its state and its trials ranked best first
//! (DescribeHyperParameterTuningJob, ListTrainingJobsForHyperParameterTuningJob), waiting until
//! it ends (the verdict is the exit code, as for a training job), and stopping it.
//!
//! Everything takes the SageMaker client and a [`Clock`] as parameters; the tests drive it with
//! `aws-smithy-mocks` (the emulator has no ListTrainingJobsForHyperParameterTuningJob, and its
//! tuning jobs are Completed at once).

use super::report::fmt_secs;
use super::{status_text, Clock, PollPolicy, Poller, Step, StopOutcome, Subject, Watch};
use crate::aws::aws_error;
use crate::aws::errors::{found, is_not_found, CallError};
use crate::error::{Error, Kind, Result};
use crate::signals::Signal;
use aws_sdk_sagemaker::operation::describe_hyper_parameter_tuning_job::DescribeHyperParameterTuningJobOutput;
use aws_sdk_sagemaker::types::HyperParameterTrainingJobSummary;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::time::{Duration, SystemTime};

pub type TuningDescribe = DescribeHyperParameterTuningJobOutput;

pub fn not_found(name: &str) -> Error {
    Error::aws(format!(
        "tuning job `{name}` not found in this account and region"
    ))
    .with_hint(
        "check the name and --region; `aws sagemaker list-hyper-parameter-tuning-jobs` lists them",
    )
}

/// DescribeHyperParameterTuningJob, with "not found" made clear.
pub async fn describe(
    sm: &aws_sdk_sagemaker::Client,
    name: &str,
) -> std::result::Result<TuningDescribe, CallError> {
    let sent = sm
        .describe_hyper_parameter_tuning_job()
        .hyper_parameter_tuning_job_name(name)
        .send()
        .await;
    found(sent, "sagemaker:DescribeHyperParameterTuningJob", || {
        not_found(name)
    })
}

/// Every training job the tuner started (all pages).
pub async fn trial_summaries(
    sm: &aws_sdk_sagemaker::Client,
    name: &str,
) -> Result<Vec<HyperParameterTrainingJobSummary>> {
    sm.list_training_jobs_for_hyper_parameter_tuning_job()
        .hyper_parameter_tuning_job_name(name)
        .max_results(100)
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .map_err(|e| aws_error("sagemaker:ListTrainingJobsForHyperParameterTuningJob", &e))
}

/// One training job of a tuning job, as the leaderboard shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Trial {
    pub training_job_name: String,
    pub status: String,
    pub objective_value: Option<f32>,
    pub hyperparameters: BTreeMap<String, String>,
    pub duration_seconds: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure_reason: Option<String>,
}

impl Trial {
    pub fn from_summary(s: &HyperParameterTrainingJobSummary, now: SystemTime) -> Trial {
        let start = s.training_start_time().map(|t| t.secs());
        let end = s.training_end_time().map(|t| t.secs()).or_else(|| {
            let running = s
                .training_job_status()
                .is_some_and(|st| st.as_str() == "InProgress");
            running
                .then(|| now.duration_since(SystemTime::UNIX_EPOCH).ok())
                .flatten()
                .map(|d| d.as_secs() as i64)
        });
        Trial {
            training_job_name: s.training_job_name().unwrap_or_default().to_string(),
            status: s
                .training_job_status()
                .map(|st| st.as_str().to_string())
                .unwrap_or_default(),
            objective_value: s
                .final_hyper_parameter_tuning_job_objective_metric()
                .and_then(|m| m.value()),
            hyperparameters: s
                .tuned_hyper_parameters()
                .map(|h| h.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                .unwrap_or_default(),
            duration_seconds: start.zip(end).map(|(a, b)| (b - a).max(0)),
            failure_reason: s.failure_reason().map(str::to_string),
        }
    }
}

/// The trials, best first: those with an objective value by it (largest first unless
/// `minimize`), then the others by name.
pub fn rank(mut trials: Vec<Trial>, minimize: bool) -> Vec<Trial> {
    trials.sort_by(|a, b| match (a.objective_value, b.objective_value) {
        (Some(x), Some(y)) => {
            let o = x.total_cmp(&y);
            if minimize {
                o
            } else {
                o.reverse()
            }
        }
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => a.training_job_name.cmp(&b.training_job_name),
    });
    trials
}

/// How many trials are in each state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub completed: i32,
    pub in_progress: i32,
    pub failed: i32,
    pub stopped: i32,
}

/// What `tune status` and the end of `tune wait` show, with a stable JSON form.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TuningReport {
    pub tuning_job_name: String,
    pub tuning_job_arn: String,
    pub status: String,
    pub strategy: Option<String>,
    pub objective_metric: Option<String>,
    /// Maximize or Minimize.
    pub objective_type: Option<String>,
    pub max_jobs: Option<i32>,
    pub parallel: Option<i32>,
    pub trials: Counts,
    pub best_training_job: Option<Trial>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure_reason: Option<String>,
    /// The leaderboard (`tune status`), best first; `None` when not read (`tune wait`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leaderboard: Option<Vec<Trial>>,
}

impl TuningReport {
    pub fn from_describe(d: &TuningDescribe, now: SystemTime) -> TuningReport {
        let c = d.hyper_parameter_tuning_job_config();
        let o = c.and_then(|c| c.hyper_parameter_tuning_job_objective());
        let limits = c.and_then(|c| c.resource_limits());
        let n = d.training_job_status_counters();
        TuningReport {
            tuning_job_name: d
                .hyper_parameter_tuning_job_name()
                .unwrap_or_default()
                .to_string(),
            tuning_job_arn: d
                .hyper_parameter_tuning_job_arn()
                .unwrap_or_default()
                .to_string(),
            status: d
                .hyper_parameter_tuning_job_status()
                .map(|s| s.as_str().to_string())
                .unwrap_or_default(),
            strategy: c.and_then(|c| c.strategy()).map(|s| s.as_str().to_string()),
            objective_metric: o.and_then(|o| o.metric_name()).map(str::to_string),
            objective_type: o.and_then(|o| o.r#type()).map(|t| t.as_str().to_string()),
            max_jobs: limits.and_then(|l| l.max_number_of_training_jobs()),
            parallel: limits.and_then(|l| l.max_parallel_training_jobs()),
            trials: Counts {
                completed: n.and_then(|n| n.completed()).unwrap_or(0),
                in_progress: n.and_then(|n| n.in_progress()).unwrap_or(0),
                failed: n
                    .map(|n| {
                        n.retryable_error().unwrap_or(0) + n.non_retryable_error().unwrap_or(0)
                    })
                    .unwrap_or(0),
                stopped: n.and_then(|n| n.stopped()).unwrap_or(0),
            },
            best_training_job: d.best_training_job().map(|b| Trial::from_summary(b, now)),
            failure_reason: d
                .failure_reason()
                .filter(|r| !r.is_empty())
                .map(str::to_string),
            leaderboard: None,
        }
    }

    pub fn minimize(&self) -> bool {
        self.objective_type.as_deref() == Some("Minimize")
    }

    fn metric(&self) -> &str {
        self.objective_metric.as_deref().unwrap_or("objective")
    }

    /// One line of progress: the state, the trials, the best so far.
    pub fn progress(&self) -> String {
        let t = &self.trials;
        let mut s = format!(
            "{}: {} completed, {} in progress, {} failed, {} stopped",
            self.status, t.completed, t.in_progress, t.failed, t.stopped
        );
        if let Some(m) = self.max_jobs {
            s.push_str(&format!(" (of at most {m})"));
        }
        if let Some(b) = &self.best_training_job {
            if let Some(v) = b.objective_value {
                s.push_str(&format!(
                    "; best {} {v} ({})",
                    self.metric(),
                    b.training_job_name
                ));
            }
        }
        s
    }

    pub fn to_text(&self) -> String {
        let mut lines = vec![
            format!("tuning job  {}", self.tuning_job_name),
            format!("status      {}", self.status),
        ];
        if let Some(m) = &self.objective_metric {
            lines.push(format!(
                "objective   {} {m}{}",
                if self.minimize() {
                    "minimize"
                } else {
                    "maximize"
                },
                self.strategy
                    .as_ref()
                    .map(|s| format!(" ({s})"))
                    .unwrap_or_default()
            ));
        }
        let t = &self.trials;
        let mut trials = format!(
            "trials      {} completed, {} in progress, {} failed, {} stopped",
            t.completed, t.in_progress, t.failed, t.stopped
        );
        if let (Some(n), Some(p)) = (self.max_jobs, self.parallel) {
            trials.push_str(&format!("; at most {n}, {p} at a time"));
        }
        lines.push(trials);
        match &self.best_training_job {
            Some(b) => lines.push(format!(
                "best        {}{}",
                b.training_job_name,
                b.objective_value
                    .map(|v| format!("  {} {v}", self.metric()))
                    .unwrap_or_default()
            )),
            None => lines.push("best        none yet".into()),
        }
        if let Some(r) = &self.failure_reason {
            lines.push(format!("reason      {r}"));
        }
        let mut text = lines.join("\n");
        if let Some(board) = self.leaderboard.as_ref().filter(|b| !b.is_empty()) {
            text.push_str("\n\n");
            text.push_str(&leaderboard_table(board, self.metric()));
        }
        text
    }
}

/// The leaderboard as aligned columns: rank, training job, objective, status, duration, then
/// one column per tuned hyperparameter.
pub fn leaderboard_table(board: &[Trial], metric: &str) -> String {
    let keys: BTreeSet<&str> = board
        .iter()
        .flat_map(|t| t.hyperparameters.keys().map(String::as_str))
        .collect();
    let mut rows: Vec<Vec<String>> = vec![["#", "training job", metric, "status", "duration"]
        .iter()
        .map(|s| s.to_string())
        .chain(keys.iter().map(|k| k.to_string()))
        .collect()];
    for (i, t) in board.iter().enumerate() {
        let mut row = vec![
            (i + 1).to_string(),
            t.training_job_name.clone(),
            t.objective_value
                .map(|v| v.to_string())
                .unwrap_or_else(|| "-".into()),
            t.status.clone(),
            t.duration_seconds
                .map(fmt_secs)
                .unwrap_or_else(|| "-".into()),
        ];
        row.extend(keys.iter().map(|k| {
            t.hyperparameters
                .get(*k)
                .cloned()
                .unwrap_or_else(|| "-".into())
        }));
        rows.push(row);
    }
    crate::ui::columns(&rows)
}

/// The error (and exit code) of an ended tuning job; `None` for Completed or while it runs.
pub fn verdict_error(name: &str, d: &TuningDescribe) -> Option<Error> {
    let status = d
        .hyper_parameter_tuning_job_status()
        .map(|s| s.as_str())
        .unwrap_or("");
    match status {
        "Failed" => Some(
            Error::new(
                Kind::JobFailed,
                format!(
                    "tuning job `{name}` failed: {}",
                    d.failure_reason()
                        .filter(|r| !r.is_empty())
                        .unwrap_or("SageMaker gave no FailureReason")
                ),
            )
            .with_hint(format!(
                "see its trials and their failure reasons: sagetrain tune status {name}"
            )),
        ),
        "Stopped" => Some(
            Error::new(Kind::JobStopped, format!("tuning job `{name}` was stopped"))
                .with_hint(format!(
                    "the best trial so far: sagetrain tune best {name}; all of them: sagetrain tune status {name}"
                )),
        ),
        _ => None,
    }
}

fn ended(d: &TuningDescribe) -> bool {
    matches!(
        d.hyper_parameter_tuning_job_status().map(|s| s.as_str()),
        Some("Completed" | "Failed" | "Stopped")
    )
}

/// How to wait for a tuning job.
#[derive(Debug, Clone, Copy)]
pub struct TuneWait {
    pub policy: PollPolicy,
    pub timeout: Option<Duration>,
    pub stop_on_interrupt: bool,
}

/// A tuning job as [`Poller`] waits for it: each look is a DescribeHyperParameterTuningJob,
/// and a line when its state or trials changed.
struct TuningWatch<'a, C: Clock> {
    sm: &'a aws_sdk_sagemaker::Client,
    name: &'a str,
    stop_on_interrupt: bool,
    clock: &'a C,
    line: &'a mut dyn FnMut(&str),
    warn: &'a mut dyn FnMut(&str),
    shown: String,
    last: Option<TuningDescribe>,
    subject: Subject,
}

impl<C: Clock> TuningWatch<'_, C> {
    /// A line with the time since the wait began.
    fn timed(&mut self, text: &str) {
        (self.line)(&format!(
            "{:>9}  {text}",
            super::report::fmt_elapsed(self.clock.elapsed())
        ));
    }
}

impl<C: Clock> Watch for TuningWatch<'_, C> {
    type Output = TuningDescribe;

    fn subject(&self) -> &Subject {
        &self.subject
    }

    async fn step(&mut self) -> std::result::Result<Step<TuningDescribe>, CallError> {
        let d = describe(self.sm, self.name).await?;
        let progress = TuningReport::from_describe(&d, SystemTime::now()).progress();
        let changed = progress != self.shown;
        if changed {
            self.timed(&progress);
            self.shown = progress;
        }
        self.last = Some(d.clone());
        Ok(match (ended(&d), changed) {
            (true, _) => Step::Done(d),
            (false, true) => Step::Changed,
            (false, false) => Step::Unchanged,
        })
    }

    fn state(&self) -> Option<String> {
        self.last
            .as_ref()
            .map(|d| TuningReport::from_describe(d, SystemTime::now()).progress())
    }

    fn warn(&mut self, text: &str) {
        (self.warn)(text);
    }

    fn note(&mut self, text: &str) {
        self.timed(text);
    }

    async fn stop(&mut self) -> Result<Option<StopOutcome>> {
        match self.stop_on_interrupt {
            true => stop(self.sm, self.name).await.map(Some),
            false => Ok(None),
        }
    }
}

/// Poll the tuning job until it ends, the timeout passes or `interrupt` resolves (see
/// [`Poller::run`]); each change of its state or trials is passed to `line`, the poller's
/// warnings to `warn`. Returns its last description (its verdict is [`verdict_error`]).
pub async fn wait<C: Clock>(
    sm: &aws_sdk_sagemaker::Client,
    name: &str,
    how: TuneWait,
    clock: &C,
    line: &mut dyn FnMut(&str),
    warn: &mut dyn FnMut(&str),
    interrupt: impl Future<Output = Signal>,
) -> Result<TuningDescribe> {
    let mut w = TuningWatch {
        sm,
        name,
        stop_on_interrupt: how.stop_on_interrupt,
        clock,
        line,
        warn,
        shown: String::new(),
        last: None,
        subject: Subject::sagemaker(
            "tuning job",
            name,
            format!("sagetrain tune wait {name}"),
            format!("sagetrain tune stop {name}"),
        ),
    };
    Poller::new(clock, how.policy)
        .timeout(how.timeout)
        .run(&mut w, interrupt)
        .await
}

/// StopHyperParameterTuningJob. A tuning job that already ended is not an error: its status
/// is returned.
pub async fn stop(sm: &aws_sdk_sagemaker::Client, name: &str) -> Result<StopOutcome> {
    match sm
        .stop_hyper_parameter_tuning_job()
        .hyper_parameter_tuning_job_name(name)
        .send()
        .await
    {
        Ok(_) => Ok(StopOutcome::Requested),
        Err(e) => {
            if is_not_found(&e) {
                return Err(not_found(name));
            }
            if crate::aws::error_code(&e).as_deref() == Some("ValidationException") {
                let d = describe(sm, name).await.map_err(|e| e.error)?;
                let status = d
                    .hyper_parameter_tuning_job_status()
                    .map(|s| s.as_str())
                    .unwrap_or("?");
                if status != "InProgress" {
                    return Ok(StopOutcome::AlreadyEnded {
                        status: status_text(status, "", None),
                    });
                }
            }
            Err(aws_error("sagemaker:StopHyperParameterTuningJob", &e))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::follow::FakeClock;
    use aws_sdk_sagemaker::operation::describe_hyper_parameter_tuning_job::DescribeHyperParameterTuningJobError;
    use aws_sdk_sagemaker::operation::list_training_jobs_for_hyper_parameter_tuning_job::ListTrainingJobsForHyperParameterTuningJobOutput;
    use aws_sdk_sagemaker::operation::stop_hyper_parameter_tuning_job::{
        StopHyperParameterTuningJobError, StopHyperParameterTuningJobOutput,
    };
    use aws_sdk_sagemaker::types as sm;
    use aws_sdk_sagemaker::Client;
    use aws_smithy_mocks::{mock, mock_client, RuleMode};
    use aws_smithy_types::error::ErrorMetadata;
    use aws_smithy_types::DateTime;

    const NAME: &str = "unet-261130-112048-ab12";

    pub(crate) fn trial(
        n: u32,
        status: sm::TrainingJobStatus,
        value: Option<f32>,
        lr: &str,
    ) -> sm::HyperParameterTrainingJobSummary {
        let mut b = sm::HyperParameterTrainingJobSummary::builder()
            .training_job_name(format!("{NAME}-{n:03}-0a1b2c3d"))
            .training_job_arn(format!(
                "arn:aws:sagemaker:eu-west-1:111122223333:training-job/{NAME}-{n:03}"
            ))
            .creation_time(DateTime::from_secs(1_795_000_000))
            .training_start_time(DateTime::from_secs(1_795_000_000))
            .training_job_status(status.clone())
            .tuned_hyper_parameters("learning_rate", lr)
            .tuned_hyper_parameters("batch_size", "16");
        if status != sm::TrainingJobStatus::InProgress {
            b = b.training_end_time(DateTime::from_secs(1_795_000_000 + 600 + n as i64));
        }
        if let Some(v) = value {
            b = b.final_hyper_parameter_tuning_job_objective_metric(
                sm::FinalHyperParameterTuningJobObjectiveMetric::builder()
                    .metric_name("val_dice")
                    .value(v)
                    .build(),
            );
        }
        if status == sm::TrainingJobStatus::Failed {
            b = b.failure_reason("AlgorithmError: out of memory");
        }
        b.build()
    }

    fn described(
        status: sm::HyperParameterTuningJobStatus,
        counts: (i32, i32, i32),
        best: Option<sm::HyperParameterTrainingJobSummary>,
    ) -> TuningDescribe {
        TuningDescribe::builder()
            .hyper_parameter_tuning_job_name(NAME)
            .hyper_parameter_tuning_job_arn(format!(
                "arn:aws:sagemaker:eu-west-1:111122223333:hyper-parameter-tuning-job/{NAME}"
            ))
            .hyper_parameter_tuning_job_status(status)
            .hyper_parameter_tuning_job_config(
                sm::HyperParameterTuningJobConfig::builder()
                    .strategy(sm::HyperParameterTuningJobStrategyType::Bayesian)
                    .hyper_parameter_tuning_job_objective(
                        sm::HyperParameterTuningJobObjective::builder()
                            .r#type(sm::HyperParameterTuningJobObjectiveType::Maximize)
                            .metric_name("val_dice")
                            .build(),
                    )
                    .resource_limits(
                        sm::ResourceLimits::builder()
                            .max_number_of_training_jobs(10)
                            .max_parallel_training_jobs(2)
                            .build(),
                    )
                    .build(),
            )
            .training_job_status_counters(
                sm::TrainingJobStatusCounters::builder()
                    .completed(counts.0)
                    .in_progress(counts.1)
                    .non_retryable_error(counts.2)
                    .build(),
            )
            .set_best_training_job(best)
            .build()
    }

    fn now() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_000_900)
    }

    #[test]
    fn the_leaderboard_is_best_first_for_either_direction() {
        use sm::TrainingJobStatus as S;
        let all = [
            trial(1, S::Completed, Some(0.71), "0.001"),
            trial(2, S::Failed, None, "0.01"),
            trial(3, S::Completed, Some(0.87), "0.0003"),
            trial(4, S::InProgress, None, "0.0001"),
            trial(5, S::Completed, Some(0.79), "0.00005"),
        ];
        let trials: Vec<Trial> = all.iter().map(|s| Trial::from_summary(s, now())).collect();
        let names = |v: &[Trial]| -> Vec<String> {
            v.iter()
                .map(|t| t.training_job_name[NAME.len() + 1..NAME.len() + 4].to_string())
                .collect()
        };
        let best_first = rank(trials.clone(), false);
        assert_eq!(names(&best_first), ["003", "005", "001", "002", "004"]);
        let lowest_first = rank(trials, true);
        assert_eq!(names(&lowest_first), ["001", "005", "003", "002", "004"]);
        assert_eq!(best_first[0].duration_seconds, Some(603));
        assert_eq!(
            best_first[4].duration_seconds,
            Some(900),
            "a running trial: until now"
        );
        assert_eq!(
            best_first[3].failure_reason.as_deref(),
            Some("AlgorithmError: out of memory")
        );

        let mut report = TuningReport::from_describe(
            &described(
                sm::HyperParameterTuningJobStatus::InProgress,
                (3, 1, 1),
                Some(all[2].clone()),
            ),
            now(),
        );
        report.leaderboard = Some(best_first);
        let text = report.to_text();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], format!("tuning job  {NAME}"));
        assert_eq!(lines[2], "objective   maximize val_dice (Bayesian)");
        assert_eq!(
            lines[3],
            "trials      3 completed, 1 in progress, 1 failed, 0 stopped; at most 10, 2 at a time"
        );
        assert_eq!(
            lines[4],
            format!("best        {NAME}-003-0a1b2c3d  val_dice 0.87")
        );
        assert_eq!(
            lines[6].split_whitespace().collect::<Vec<_>>(),
            [
                "#",
                "training",
                "job",
                "val_dice",
                "status",
                "duration",
                "batch_size",
                "learning_rate"
            ]
        );
        assert_eq!(
            lines[7].split_whitespace().collect::<Vec<_>>(),
            [
                "1",
                &format!("{NAME}-003-0a1b2c3d"),
                "0.87",
                "Completed",
                "10m03s",
                "16",
                "0.0003"
            ]
        );
        assert!(
            lines[10].contains("Failed") && lines[10].contains(" - "),
            "{}",
            lines[10]
        );
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(
            json["leaderboard"][0]["objective_value"],
            serde_json::json!(0.87f32)
        );
        assert_eq!(
            json["leaderboard"][0]["hyperparameters"]["learning_rate"],
            "0.0003"
        );
        assert_eq!(
            json["best_training_job"]["training_job_name"],
            format!("{NAME}-003-0a1b2c3d")
        );
        assert_eq!(
            json["trials"],
            serde_json::json!({"completed": 3, "in_progress": 1, "failed": 1, "stopped": 0})
        );
    }

    #[tokio::test]
    async fn all_pages_of_trials_are_read() {
        use sm::TrainingJobStatus as S;
        let first = mock!(Client::list_training_jobs_for_hyper_parameter_tuning_job)
            .match_requests(|r| {
                r.hyper_parameter_tuning_job_name() == Some(NAME) && r.next_token().is_none()
            })
            .then_output(|| {
                ListTrainingJobsForHyperParameterTuningJobOutput::builder()
                    .training_job_summaries(trial(1, S::Completed, Some(0.5), "0.1"))
                    .next_token("page-2")
                    .build()
            });
        let second = mock!(Client::list_training_jobs_for_hyper_parameter_tuning_job)
            .match_requests(|r| r.next_token() == Some("page-2"))
            .then_output(|| {
                ListTrainingJobsForHyperParameterTuningJobOutput::builder()
                    .training_job_summaries(trial(2, S::Completed, Some(0.6), "0.2"))
                    .build()
            });
        let client = mock_client!(aws_sdk_sagemaker, RuleMode::MatchAny, [&first, &second]);
        let all = trial_summaries(&client, NAME).await.unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!((first.num_calls(), second.num_calls()), (1, 1));
    }

    fn lifecycle(states: Vec<TuningDescribe>) -> aws_smithy_mocks::Rule {
        crate::testing::in_order(
            mock!(Client::describe_hyper_parameter_tuning_job)
                .match_requests(|r| r.hyper_parameter_tuning_job_name() == Some(NAME)),
            states,
        )
    }

    async fn wait_for(
        client: &Client,
        timeout: Option<Duration>,
    ) -> (Result<TuningDescribe>, Vec<String>, Vec<String>) {
        let mut lines = Vec::new();
        let mut warnings = Vec::new();
        let how = TuneWait {
            policy: PollPolicy::default(),
            timeout,
            stop_on_interrupt: false,
        };
        let r = wait(
            client,
            NAME,
            how,
            &FakeClock::default(),
            &mut |l| lines.push(l.to_string()),
            &mut |w| warnings.push(w.to_string()),
            std::future::pending(),
        )
        .await;
        (r, lines, warnings)
    }

    #[tokio::test]
    async fn waiting_follows_the_trials_to_the_verdict() {
        use sm::HyperParameterTuningJobStatus as T;
        use sm::TrainingJobStatus as S;
        let best = trial(3, S::Completed, Some(0.87), "0.0003");
        let rule = lifecycle(vec![
            described(T::InProgress, (0, 2, 0), None),
            described(T::InProgress, (0, 2, 0), None),
            described(
                T::InProgress,
                (1, 2, 0),
                Some(trial(1, S::Completed, Some(0.7), "0.001")),
            ),
            described(T::Completed, (10, 0, 0), Some(best.clone())),
        ]);
        let client = mock_client!(aws_sdk_sagemaker, RuleMode::MatchAny, [&rule]);
        let (r, lines, _) = wait_for(&client, None).await;
        let d = r.unwrap();
        assert!(verdict_error(NAME, &d).is_none());
        assert_eq!(lines.len(), 3, "one line per change: {lines:?}");
        assert!(
            lines[0].ends_with(
                "InProgress: 0 completed, 2 in progress, 0 failed, 0 stopped (of at most 10)"
            ),
            "{lines:?}"
        );
        assert!(
            lines[1].contains(&format!("best val_dice 0.7 ({NAME}-001-0a1b2c3d)")),
            "{lines:?}"
        );
        assert!(lines[2].contains("Completed: 10 completed"), "{lines:?}");
        assert_eq!(
            d.best_training_job().unwrap().training_job_name(),
            best.training_job_name()
        );
        assert_eq!(rule.num_calls(), 4);

        for (status, code, text) in [
            (T::Failed, 5, "failed: too many trials failed"),
            (T::Stopped, 6, "was stopped"),
        ] {
            let mut d = described(status, (1, 0, 9), None);
            if code == 5 {
                d = TuningDescribe::builder()
                    .set_hyper_parameter_tuning_job_status(
                        d.hyper_parameter_tuning_job_status().cloned(),
                    )
                    .failure_reason("too many trials failed")
                    .build();
            }
            let rule = lifecycle(vec![d]);
            let client = mock_client!(aws_sdk_sagemaker, RuleMode::MatchAny, [&rule]);
            let (r, _, _) = wait_for(&client, None).await;
            let e = verdict_error(NAME, &r.unwrap()).unwrap();
            assert_eq!(e.exit_code(), code);
            assert!(e.message.contains(text), "{}", e.message);
        }
    }

    #[tokio::test]
    async fn a_timeout_exits_7_and_throttling_is_waited_out() {
        use sm::HyperParameterTuningJobStatus as T;
        let rule = lifecycle(vec![described(T::InProgress, (0, 2, 0), None)]);
        let client = mock_client!(aws_sdk_sagemaker, RuleMode::MatchAny, [&rule]);
        let (r, _, _) = wait_for(&client, Some(Duration::from_secs(120))).await;
        let e = r.unwrap_err();
        assert_eq!(e.exit_code(), 7);
        assert!(e.message.contains("keeps running"), "{}", e.message);

        let throttled = mock!(Client::describe_hyper_parameter_tuning_job)
            .sequence()
            .error(|| {
                DescribeHyperParameterTuningJobError::generic(
                    ErrorMetadata::builder()
                        .code("ThrottlingException")
                        .message("Rate exceeded")
                        .build(),
                )
            })
            .times(2)
            .output(|| described(T::Completed, (10, 0, 0), None))
            .build();
        let client = mock_client!(aws_sdk_sagemaker, RuleMode::MatchAny, [&throttled], |c| c
            .retry_config(aws_smithy_types::retry::RetryConfig::disabled()));
        let (r, _, warnings) = wait_for(&client, None).await;
        assert!(r.is_ok(), "{r:?}");
        // A warning (it was a plain line) that gives the interval, as `wait`'s does.
        assert!(warnings[0].contains("(throttled)"), "{warnings:?}");
        assert!(
            warnings[0].ends_with("; polling again in 10s"),
            "{warnings:?}"
        );
    }

    #[tokio::test]
    async fn ctrl_c_leaves_it_running_or_stops_it() {
        use sm::HyperParameterTuningJobStatus as T;
        let rule = lifecycle(vec![described(T::InProgress, (0, 2, 0), None)]);
        let stop_rule = mock!(Client::stop_hyper_parameter_tuning_job)
            .then_output(|| StopHyperParameterTuningJobOutput::builder().build());
        let client = mock_client!(aws_sdk_sagemaker, RuleMode::MatchAny, [&rule, &stop_rule]);
        for stop_it in [false, true] {
            let how = TuneWait {
                policy: PollPolicy::default(),
                timeout: None,
                stop_on_interrupt: stop_it,
            };
            let e = wait(
                &client,
                NAME,
                how,
                &FakeClock::default(),
                &mut |_| {},
                &mut |_| {},
                std::future::ready(crate::signals::Signal::Interrupt),
            )
            .await
            .unwrap_err();
            assert_eq!(e.exit_code(), 130);
            assert_eq!(
                e.message.contains("asked SageMaker to stop"),
                stop_it,
                "{}",
                e.message
            );
        }
        assert_eq!(stop_rule.num_calls(), 1);
    }

    #[tokio::test]
    async fn stopping_an_ended_tuning_job_reports_its_status() {
        use sm::HyperParameterTuningJobStatus as T;
        let refuse = mock!(Client::stop_hyper_parameter_tuning_job).then_error(|| {
            StopHyperParameterTuningJobError::generic(
                ErrorMetadata::builder()
                    .code("ValidationException")
                    .message("The request was rejected because the hyperparameter tuning job is in status Completed.")
                    .build(),
            )
        });
        let rule = lifecycle(vec![described(T::Completed, (10, 0, 0), None)]);
        let client = mock_client!(aws_sdk_sagemaker, RuleMode::MatchAny, [&refuse, &rule]);
        assert_eq!(
            stop(&client, NAME).await.unwrap(),
            StopOutcome::AlreadyEnded {
                status: "Completed".into()
            }
        );
        let missing = mock!(Client::describe_hyper_parameter_tuning_job).then_error(|| {
            DescribeHyperParameterTuningJobError::generic(
                ErrorMetadata::builder()
                    .code("ResourceNotFound")
                    .message("Amazon SageMaker can't find a tuning job with name nope")
                    .build(),
            )
        });
        let client = mock_client!(aws_sdk_sagemaker, RuleMode::MatchAny, [&missing]);
        let e = describe(&client, "nope").await.unwrap_err();
        assert_eq!(e.error.exit_code(), 4);
        assert!(
            e.error.message.contains("tuning job `nope` not found"),
            "{}",
            e.error.message
        );
    }
}
