//! `sagetrain list`: recent training jobs, newest first, paginated up to `--max`.

use super::jobcmd;
use super::Context;
use crate::cli::ListArgs;
use crate::config::durations::format_secs;
use crate::config::durations::format_time as fmt_time;
use crate::error::{Error, Result};
use aws_sdk_sagemaker::types::{SortBy, SortOrder, TrainingJobStatus, TrainingJobSummary};
use serde::Serialize;

const STATUSES: &[&str] = &["InProgress", "Completed", "Failed", "Stopping", "Stopped"];

/// The status as the API spells it, whatever the case given.
pub fn canonical_status(s: &str) -> Option<&'static str> {
    STATUSES.iter().copied().find(|c| c.eq_ignore_ascii_case(s))
}

/// One row of the list, with a stable JSON form.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    pub job_name: String,
    pub status: String,
    pub secondary_status: Option<String>,
    #[serde(flatten)]
    pub times: Times,
    pub job_arn: String,
    #[serde(flatten)]
    pub details: Details,
    #[serde(skip)]
    created_secs: f64,
}

/// When the job was created and ended, and how long it took from creation to the end (or to
/// now, for a job still running).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Times {
    pub creation_time: Option<String>,
    pub training_end_time: Option<String>,
    pub duration_seconds: Option<i64>,
}

/// What only DescribeTrainingJob tells (all none when it could not be read): the type the job
/// runs on (the one asked for, or the one SageMaker selected from the preferences), how many,
/// the billable time at the on-demand price sagetrain last found for the type, and whether
/// remote debugging is on.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Details {
    pub instance_type: Option<String>,
    pub selected_instance_type: Option<String>,
    pub instance_count: Option<i32>,
    pub billable_seconds: Option<i64>,
    pub cost_usd: Option<f64>,
    /// Whether the job was created (or updated) with remote debugging on.
    pub remote_debug: Option<bool>,
}

impl From<&crate::follow::report::StatusReport> for Details {
    fn from(d: &crate::follow::report::StatusReport) -> Self {
        Details {
            instance_type: d.instance_type.clone(),
            selected_instance_type: d.selected_instance_type.clone(),
            instance_count: d.instance_count,
            billable_seconds: d.billable_seconds,
            cost_usd: d.cost_usd,
            remote_debug: Some(d.remote_debug),
        }
    }
}

fn row(s: &TrainingJobSummary, now: f64, details: Details) -> Row {
    let created = s.creation_time().map(|c| c.as_secs_f64());
    let end = s.training_end_time().map(|c| c.as_secs_f64());
    Row {
        job_name: s.training_job_name().unwrap_or_default().to_string(),
        status: s
            .training_job_status()
            .map(|x| x.as_str().to_string())
            .unwrap_or_default(),
        secondary_status: s.secondary_status().map(|x| x.as_str().to_string()),
        times: Times {
            creation_time: s.creation_time().map(fmt_time),
            training_end_time: s.training_end_time().map(fmt_time),
            duration_seconds: created.map(|c| (end.unwrap_or(now) - c).max(0.0) as i64),
        },
        job_arn: s.training_job_arn().unwrap_or_default().to_string(),
        details,
        created_secs: created.unwrap_or(0.0),
    }
}

/// The jobs of ListTrainingJobs (newest first), page after page (the SDK's paginator, which
/// follows empty pages and stops at the last one), until `max` jobs.
pub async fn list_jobs(
    sm: &aws_sdk_sagemaker::Client,
    status: Option<&str>,
    name_contains: Option<&str>,
    max: usize,
) -> Result<Vec<TrainingJobSummary>> {
    let mut items = sm
        .list_training_jobs()
        .sort_by(SortBy::CreationTime)
        .sort_order(SortOrder::Descending)
        .set_status_equals(status.map(TrainingJobStatus::from))
        .set_name_contains(name_contains.map(str::to_string))
        .into_paginator()
        .page_size(max.clamp(1, 100) as i32)
        .items()
        .send();
    let mut jobs = Vec::new();
    while jobs.len() < max {
        match items.next().await {
            Some(job) => {
                jobs.push(job.map_err(|e| crate::aws::aws_error("sagemaker:ListTrainingJobs", &e))?)
            }
            None => break,
        }
    }
    Ok(jobs)
}

pub fn table(rows: &[Row]) -> String {
    let cells: Vec<[String; 6]> = rows
        .iter()
        .map(|r| {
            let status = match &r.secondary_status {
                Some(s) if s != &r.status => format!("{} / {s}", r.status),
                _ => r.status.clone(),
            };
            [
                r.job_name.clone(),
                status,
                r.times.creation_time.clone().unwrap_or_default(),
                r.times
                    .duration_seconds
                    .map(|s| format_secs(s.max(0) as u64))
                    .unwrap_or_default(),
                match (&r.details.instance_type, r.details.instance_count) {
                    (Some(t), Some(n)) => format!("{n} x {t}"),
                    _ => String::new(),
                },
                r.details
                    .cost_usd
                    .map(crate::job::cost::usd)
                    .unwrap_or_default(),
            ]
        })
        .collect();
    let headers = ["NAME", "STATUS", "CREATED", "DURATION", "INSTANCES", "COST"];
    let w: Vec<usize> = (0..6)
        .map(|i| {
            cells
                .iter()
                .map(|c| c[i].chars().count())
                .chain([headers[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |c: [&str; 6]| {
        format!(
            "{:w0$}  {:w1$}  {:w2$}  {:w3$}  {:w4$}  {}",
            c[0],
            c[1],
            c[2],
            c[3],
            c[4],
            c[5],
            w0 = w[0],
            w1 = w[1],
            w2 = w[2],
            w3 = w[3],
            w4 = w[4]
        )
        .trim_end()
        .to_string()
    };
    let mut out = vec![line(headers)];
    for c in &cells {
        out.push(line([&c[0], &c[1], &c[2], &c[3], &c[4], &c[5]]));
    }
    out.join("\n")
}

pub async fn run(ctx: &Context, args: &ListArgs) -> Result<()> {
    let status = match &args.status {
        None => None,
        Some(s) => Some(canonical_status(s).ok_or_else(|| {
            Error::usage(format!(
                "--status: `{s}` is not a training job status; use one of {}",
                STATUSES.join(", ")
            ))
        })?),
    };
    let t = jobcmd::target(ctx)?;
    let aws = jobcmd::connect(ctx, &t).await?;
    let jobs = list_jobs(
        &aws.sagemaker(),
        status,
        args.name_contains.as_deref(),
        args.max as usize,
    )
    .await?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    // Each job's description, all at once: its instances, and its cost at the remembered price.
    // A description that cannot be read leaves those cells empty.
    let sm = aws.sagemaker();
    let described = futures::future::join_all(jobs.iter().map(|j| {
        let sm = &sm;
        async move {
            let name = j.training_job_name()?;
            crate::job::lookups::describe(sm, name).await.ok()
        }
    }))
    .await;
    let mut rows: Vec<Row> = jobs
        .iter()
        .zip(described)
        .map(|(j, d)| {
            let details = d
                .map(|d| {
                    let report = crate::follow::report::StatusReport::from_describe(&d);
                    Details::from(&jobcmd::priced(ctx, report))
                })
                .unwrap_or_default();
            row(j, now, details)
        })
        .collect();
    // Newest first, whatever order the pages came in.
    rows.sort_by(|a, b| b.created_secs.total_cmp(&a.created_secs));
    if ctx.json() {
        ctx.ui
            .result_json(&serde_json::to_value(&rows).unwrap_or_default());
    } else if rows.is_empty() {
        ctx.ui.info("no training jobs match");
    } else {
        ctx.ui.result_text(&table(&rows));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_sagemaker::operation::list_training_jobs::ListTrainingJobsOutput;
    use aws_sdk_sagemaker::Client;
    use aws_smithy_mocks::{mock, mock_client, RuleMode};
    use aws_smithy_types::DateTime;

    fn summary(name: &str, created: i64) -> TrainingJobSummary {
        TrainingJobSummary::builder()
            .training_job_name(name)
            .training_job_arn(format!("arn:aws:sagemaker:us-east-1:1:training-job/{name}"))
            .creation_time(DateTime::from_secs(created))
            .training_job_status(TrainingJobStatus::Completed)
            .build()
    }

    #[tokio::test]
    async fn pages_are_followed_through_empty_ones_up_to_max() {
        let p1 = mock!(Client::list_training_jobs)
            .match_requests(|r| {
                r.next_token().is_none()
                    && r.max_results() == Some(5)
                    && r.sort_by() == Some(&SortBy::CreationTime)
                    && r.sort_order() == Some(&SortOrder::Descending)
                    && r.status_equals() == Some(&TrainingJobStatus::Completed)
            })
            .then_output(|| {
                ListTrainingJobsOutput::builder()
                    .training_job_summaries(summary("c", 30))
                    .training_job_summaries(summary("b", 20))
                    .next_token("t1")
                    .build()
            });
        let p2 = mock!(Client::list_training_jobs)
            .match_requests(|r| r.next_token() == Some("t1") && r.max_results() == Some(5))
            .then_output(|| {
                ListTrainingJobsOutput::builder()
                    .set_training_job_summaries(Some(vec![]))
                    .next_token("t2")
                    .build()
            });
        let p3 = mock!(Client::list_training_jobs)
            .match_requests(|r| r.next_token() == Some("t2"))
            .then_output(|| {
                ListTrainingJobsOutput::builder()
                    .training_job_summaries(summary("a", 10))
                    .training_job_summaries(summary("z", 5))
                    .training_job_summaries(summary("y", 4))
                    .training_job_summaries(summary("x", 3))
                    .next_token("t3")
                    .build()
            });
        let client = mock_client!(aws_sdk_sagemaker, RuleMode::MatchAny, [&p1, &p2, &p3]);
        let jobs = list_jobs(&client, Some("Completed"), None, 5)
            .await
            .unwrap();
        let names: Vec<&str> = jobs
            .iter()
            .map(|j| j.training_job_name().unwrap())
            .collect();
        assert_eq!(names, ["c", "b", "a", "z", "y"]);
        assert_eq!((p1.num_calls(), p2.num_calls(), p3.num_calls()), (1, 1, 1));

        let rows: Vec<Row> = jobs
            .iter()
            .map(|j| row(j, 100.0, Details::default()))
            .collect();
        let t = table(&rows);
        assert!(t.starts_with("NAME  STATUS     CREATED"), "{t}");
        assert!(t.contains("c     Completed  1970-01-01T00:00:30Z"), "{t}");
    }

    #[test]
    fn statuses_are_checked_and_spelled_as_the_api_does() {
        assert_eq!(canonical_status("inprogress"), Some("InProgress"));
        assert_eq!(canonical_status("STOPPED"), Some("Stopped"));
        assert_eq!(canonical_status("done"), None);
    }
}
