//! Warm pools (`--keep-alive`): the account's Available pools, whether a new job will reuse one
//! (SageMaker reuses a pool only when the role, instance type and count, volume size and KMS
//! key, VPC subnets and security groups, network isolation and inter-container traffic
//! encryption all match exactly), and releasing one (UpdateTrainingJob with a keep-alive of 0).

use crate::error::Result;
use crate::job::request::CreateTrainingJobRequest;
use aws_sdk_sagemaker::operation::describe_training_job::DescribeTrainingJobOutput;
use aws_sdk_sagemaker::types::{ResourceConfigForUpdate, WarmPoolResourceStatus};
use aws_sdk_sagemaker::Client;
use serde::Serialize;

/// The most pools looked at: the list is one page.
const MAX_POOLS: i32 = 100;

/// The jobs whose warm pool is Available, described.
///
/// ListTrainingJobs filters with `WarmPoolStatusEquals=Available`; a summary that does not
/// itself say Available (an emulator that ignores the filter, a pool that just changed) is not
/// a pool, so only the jobs the list says are Available are described.
pub async fn available(sm: &Client) -> Result<Vec<DescribeTrainingJobOutput>> {
    let out = sm
        .list_training_jobs()
        .warm_pool_status_equals(WarmPoolResourceStatus::Available)
        .max_results(MAX_POOLS)
        .send()
        .await
        .map_err(|e| crate::aws::aws_error("sagemaker:ListTrainingJobs", &e))?;
    let names: Vec<String> = out
        .training_job_summaries()
        .iter()
        .filter(|s| {
            s.warm_pool_status().and_then(|w| w.status())
                == Some(&WarmPoolResourceStatus::Available)
        })
        .filter_map(|s| s.training_job_name().map(str::to_string))
        .collect();
    let described = futures::future::join_all(names.iter().map(|n| async move {
        sm.describe_training_job()
            .training_job_name(n)
            .send()
            .await
            .map_err(|e| crate::aws::aws_error("sagemaker:DescribeTrainingJob", &e))
    }))
    .await;
    let mut pools = Vec::new();
    for d in described {
        let d = d?;
        if is_available(&d) {
            pools.push(d);
        }
    }
    Ok(pools)
}

fn is_available(d: &DescribeTrainingJobOutput) -> bool {
    d.warm_pool_status().and_then(|w| w.status()) == Some(&WarmPoolResourceStatus::Available)
}

pub use crate::job::request::pool_differences as differences;

/// What `train` says about the account's Available pools and the new job.
pub fn verdict(pools: &[DescribeTrainingJobOutput], req: &CreateTrainingJobRequest) -> Vec<String> {
    if pools.is_empty() {
        return Vec::new();
    }
    if let Some(p) = pools.iter().find(|p| differences(p, req).is_empty()) {
        return vec![format!(
            "warm pool: this job will reuse the Available warm pool of job {} (same role, instances, volume and network)",
            p.training_job_name().unwrap_or_default()
        )];
    }
    pools
        .iter()
        .map(|p| {
            format!(
                "warm pool: the Available pool of job {} will not be reused: {} differ{}",
                p.training_job_name().unwrap_or_default(),
                differences(p, req).join(", "),
                if differences(p, req).len() == 1 {
                    "s"
                } else {
                    ""
                }
            )
        })
        .collect()
}

/// One pool, as `pool list` and `status` show it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PoolRow {
    pub job_name: String,
    pub status: String,
    pub instance_type: Option<String>,
    pub instance_count: Option<i32>,
    /// When the pool is released unless a job reuses it (end of training + keep-alive).
    pub expires: Option<String>,
    pub retained_billable_seconds: Option<i32>,
    pub reused_by: Option<String>,
    /// What the pool costs an hour while it waits (every instance, on demand), at the price
    /// sagetrain last found for its type; none when it never looked it up.
    pub cost_per_hour_usd: Option<f64>,
}

/// A job's warm pool, if it has one.
pub fn row(d: &DescribeTrainingJobOutput) -> Option<PoolRow> {
    let w = d.warm_pool_status()?;
    let rc = d.resource_config();
    let keep = rc.and_then(|r| r.keep_alive_period_in_seconds());
    let expires = match (d.training_end_time(), keep) {
        (Some(end), Some(k)) => Some(crate::config::durations::format_time(
            &aws_smithy_types::DateTime::from_secs(end.secs() + i64::from(k)),
        )),
        _ => None,
    };
    Some(PoolRow {
        job_name: d.training_job_name().unwrap_or_default().to_string(),
        status: w
            .status()
            .map(|s| s.as_str().to_string())
            .unwrap_or_else(|| "Unknown".into()),
        instance_type: rc
            .and_then(|r| r.instance_type())
            .map(|t| t.as_str().to_string()),
        instance_count: rc.and_then(|r| r.instance_count()),
        expires,
        retained_billable_seconds: w.resource_retained_billable_time_in_seconds(),
        reused_by: w.reused_by_job().map(str::to_string),
        cost_per_hour_usd: None,
    })
}

/// Release a job's warm pool now: UpdateTrainingJob with a keep-alive of 0.
pub async fn release(sm: &Client, job: &str) -> Result<()> {
    sm.update_training_job()
        .training_job_name(job)
        .resource_config(
            ResourceConfigForUpdate::builder()
                .keep_alive_period_in_seconds(0)
                .build(),
        )
        .send()
        .await
        .map_err(|e| crate::aws::aws_error("sagemaker:UpdateTrainingJob", &e))?;
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use aws_sdk_sagemaker::operation::describe_training_job::DescribeTrainingJobOutput;
    use aws_sdk_sagemaker::operation::list_training_jobs::ListTrainingJobsOutput;
    use aws_sdk_sagemaker::operation::update_training_job::UpdateTrainingJobOutput;
    use aws_sdk_sagemaker::types as sm;
    use aws_smithy_mocks::{mock, mock_client, RuleMode};

    pub(crate) fn pool_job(
        name: &str,
        status: sm::WarmPoolResourceStatus,
    ) -> DescribeTrainingJobOutput {
        DescribeTrainingJobOutput::builder()
            .training_job_name(name)
            .role_arn("arn:aws:iam::123456789012:role/SageMakerRole")
            .resource_config(
                crate::testing::g5()
                    .keep_alive_period_in_seconds(1800)
                    .build(),
            )
            .training_end_time(aws_smithy_types::DateTime::from_secs(1_800_000_000))
            .warm_pool_status(
                sm::WarmPoolStatus::builder()
                    .status(status)
                    .resource_retained_billable_time_in_seconds(120)
                    .build(),
            )
            .build()
    }

    fn summary(name: &str, status: Option<sm::WarmPoolResourceStatus>) -> sm::TrainingJobSummary {
        let mut b = sm::TrainingJobSummary::builder()
            .training_job_name(name)
            .training_job_arn(format!(
                "arn:aws:sagemaker:us-east-1:123456789012:training-job/{name}"
            ))
            .creation_time(aws_smithy_types::DateTime::from_secs(1_800_000_000))
            .training_job_status(sm::TrainingJobStatus::Completed);
        if let Some(s) = status {
            b = b.warm_pool_status(sm::WarmPoolStatus::builder().status(s).build());
        }
        b.build()
    }

    fn request() -> CreateTrainingJobRequest {
        crate::job::request::tests::sample_request()
    }

    #[test]
    fn a_matching_job_reuses_the_pool_and_a_different_one_is_told_why_not() {
        let pool = pool_job("old", sm::WarmPoolResourceStatus::Available);
        let mut req = request();
        assert!(differences(&pool, &req).is_empty());
        assert!(verdict(std::slice::from_ref(&pool), &req)[0]
            .contains("will reuse the Available warm pool of job old"));
        req.resource_config.instance_type = Some("ml.p3.2xlarge".into());
        req.resource_config.volume_size_in_gb = 50;
        req.enable_network_isolation = true;
        req.vpc_config = Some(crate::job::request::VpcConfig {
            security_group_ids: vec!["sg-1".into()],
            subnets: vec!["subnet-1".into()],
        });
        assert_eq!(
            differences(&pool, &req),
            [
                "instance type",
                "volume size",
                "VPC subnets",
                "VPC security groups",
                "network isolation"
            ]
        );
        let v = verdict(&[pool], &req);
        assert!(
            v[0].contains("will not be reused: instance type, volume size"),
            "{v:?}"
        );
        assert!(verdict(&[], &req).is_empty());
    }

    /// Only the jobs the list says are Available are described (an emulator that ignores the
    /// filter returns every job, with no warm pool status).
    #[tokio::test]
    async fn only_jobs_listed_as_available_are_described() {
        let list = mock!(aws_sdk_sagemaker::Client::list_training_jobs).then_output(|| {
            ListTrainingJobsOutput::builder()
                .training_job_summaries(summary("plain", None))
                .training_job_summaries(summary(
                    "warm",
                    Some(sm::WarmPoolResourceStatus::Available),
                ))
                .training_job_summaries(summary(
                    "gone",
                    Some(sm::WarmPoolResourceStatus::Terminated),
                ))
                .build()
        });
        let describe = mock!(aws_sdk_sagemaker::Client::describe_training_job)
            .match_requests(|r| r.training_job_name() == Some("warm"))
            .then_output(|| pool_job("warm", sm::WarmPoolResourceStatus::Available));
        let client = mock_client!(aws_sdk_sagemaker, RuleMode::MatchAny, [&list, &describe]);
        let pools = available(&client).await.unwrap();
        assert_eq!(pools.len(), 1);
        assert_eq!(pools[0].training_job_name(), Some("warm"));
        assert_eq!(describe.num_calls(), 1);
        let r = row(&pools[0]).unwrap();
        assert_eq!(r.status, "Available");
        assert_eq!(r.retained_billable_seconds, Some(120));
        assert_eq!(r.expires.as_deref(), Some("2027-01-15T08:30:00Z"));
    }

    #[tokio::test]
    async fn release_sends_a_keep_alive_of_zero() {
        let update = mock!(aws_sdk_sagemaker::Client::update_training_job)
            .match_requests(|r| {
                r.training_job_name() == Some("old")
                    && r.resource_config()
                        .and_then(|c| c.keep_alive_period_in_seconds())
                        == Some(0)
            })
            .then_output(|| {
                UpdateTrainingJobOutput::builder()
                    .training_job_arn("arn:aws:sagemaker:us-east-1:123456789012:training-job/old")
                    .build()
            });
        let client = mock_client!(aws_sdk_sagemaker, [&update]);
        release(&client, "old").await.unwrap();
        assert_eq!(update.num_calls(), 1);
    }
}
