//! Creating a training job, safely under retries and concurrent runs.
//!
//! CreateTrainingJob has no client token: a retried attempt whose first attempt succeeded meets
//! `ResourceInUse`. Each run tags its job with a random submission id
//! ([`crate::job::request::SUBMISSION_TAG`]); `ResourceInUse` is this run's own job (an earlier
//! attempt created it) only when the existing job carries this run's id. Any other job of that
//! name, however alike, is a name conflict.

use crate::aws::{aws_error, error_code};
use crate::error::{Error, Result};
use crate::job::request::{to_sdk, CreateTrainingJobRequest, SUBMISSION_TAG};
use aws_sdk_sagemaker::Client;

/// The outcome of a create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Created {
    pub job_arn: String,
    /// True when the create met `ResourceInUse` and the existing job was this run's own
    /// (an earlier attempt had created it).
    pub reconciled: bool,
}

/// A random submission id: 16 hex digits from the OS's random source (through the standard
/// library's randomly keyed hasher), never derived from the time alone.
pub fn submission_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    h.write_u32(std::process::id());
    format!("{:016x}", h.finish())
}

/// Create the job (see the module's note on `ResourceInUse`).
pub async fn create(client: &Client, req: &CreateTrainingJobRequest) -> Result<Created> {
    match to_sdk(client, req).send().await {
        Ok(out) => Ok(Created {
            job_arn: out.training_job_arn().unwrap_or_default().to_string(),
            reconciled: false,
        }),
        Err(e)
            if e.as_service_error().is_some_and(|s| s.is_resource_in_use())
                || error_code(&e).as_deref() == Some("ResourceInUse") =>
        {
            let existing = client
                .describe_training_job()
                .training_job_name(&req.training_job_name)
                .send()
                .await
                .map_err(|e| aws_error("sagemaker:DescribeTrainingJob", &e))?;
            let arn = existing.training_job_arn().unwrap_or_default().to_string();
            let ours = submission_of(req);
            let theirs = job_submission(client, &arn).await?;
            if ours.is_some() && theirs.as_deref() == ours {
                Ok(Created {
                    job_arn: arn,
                    reconciled: true,
                })
            } else {
                Err(aws_error("sagemaker:CreateTrainingJob", &e))
            }
        }
        Err(e) => Err(keep_alive_hint(
            req,
            aws_error("sagemaker:CreateTrainingJob", &e),
        )),
    }
}

/// A refused warm pool may be an administrator's limit, not the service's: say so.
pub fn keep_alive_hint(req: &CreateTrainingJobRequest, e: Error) -> Error {
    let Some(k) = req
        .resource_config
        .keep_alive_period_in_seconds
        .filter(|k| *k > 0)
    else {
        return e;
    };
    let text = format!("{} {}", e.message, e.details.join(" ")).to_ascii_lowercase();
    if !(text.contains("accessdenied")
        || text.contains("not authorized")
        || text.contains("keepalive"))
    {
        return e;
    }
    let hint = format!(
        "the job asks for a warm pool of {k}s (--keep-alive); an administrator's IAM condition on `sagemaker:KeepAlivePeriod` may allow less: try a shorter --keep-alive, or none"
    );
    let hint = match &e.hint {
        Some(h) => format!("{h}; {hint}"),
        None => hint,
    };
    e.with_hint(hint)
}

/// The submission id a request tags its job with.
fn submission_of(req: &CreateTrainingJobRequest) -> Option<&str> {
    req.tags
        .iter()
        .find(|t| t.key == SUBMISSION_TAG)
        .map(|t| t.value.as_str())
}

/// The submission id of an existing job, from its tags.
async fn job_submission(client: &Client, arn: &str) -> Result<Option<String>> {
    let mut pages = client
        .list_tags()
        .resource_arn(arn)
        .into_paginator()
        .items()
        .send();
    while let Some(tag) = pages.next().await {
        let tag = tag.map_err(|e| aws_error("sagemaker:ListTags", &e))?;
        if tag.key() == Some(SUBMISSION_TAG) {
            return Ok(tag.value().map(str::to_string));
        }
    }
    Ok(None)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::job::request::tests::sample_request;
    use crate::job::request::*;
    use aws_sdk_sagemaker::operation::create_training_job::CreateTrainingJobError;
    use aws_sdk_sagemaker::operation::describe_training_job::DescribeTrainingJobOutput;
    use aws_sdk_sagemaker::operation::list_tags::ListTagsOutput;
    use aws_sdk_sagemaker::types as sm;
    use aws_smithy_mocks::{mock, mock_client, RuleMode};

    fn described(req: &CreateTrainingJobRequest, epochs: &str) -> DescribeTrainingJobOutput {
        DescribeTrainingJobOutput::builder()
            .training_job_name(&req.training_job_name)
            .training_job_arn("arn:aws:sagemaker:us-east-1:123456789012:training-job/unet-1")
            .role_arn(&req.role_arn)
            .hyper_parameters("epochs", epochs)
            .algorithm_specification(
                sm::AlgorithmSpecification::builder()
                    .training_image(&req.algorithm_specification.training_image)
                    .training_input_mode(sm::TrainingInputMode::File)
                    .build(),
            )
            .output_data_config(
                sm::OutputDataConfig::builder()
                    .s3_output_path("s3://b/out/")
                    .build(),
            )
            .resource_config(crate::testing::g5().build())
            .build()
    }

    const IN_USE: &str = "Training job names must be unique within an AWS account and region, and a training job with this name already exists";

    fn in_use() -> CreateTrainingJobError {
        CreateTrainingJobError::ResourceInUse(
            sm::error::ResourceInUse::builder()
                .message(IN_USE)
                .meta(
                    aws_smithy_types::error::ErrorMetadata::builder()
                        .code("ResourceInUse")
                        .message(IN_USE)
                        .build(),
                )
                .build(),
        )
    }

    fn tagged(id: &str) -> ListTagsOutput {
        ListTagsOutput::builder()
            .tags(sm::Tag::builder().key("project").value("vessels").build())
            .tags(sm::Tag::builder().key(SUBMISSION_TAG).value(id).build())
            .build()
    }

    /// `create` of the sample request when its name is taken by the job `d` with `tags`: the
    /// result, and how many times the job was described and its tags listed.
    async fn create_meeting(
        d: DescribeTrainingJobOutput,
        tags: ListTagsOutput,
    ) -> (Result<Created>, usize, usize) {
        let create_rule = mock!(Client::create_training_job).then_error(in_use);
        let describe = mock!(Client::describe_training_job).then_output(move || d.clone());
        let list = mock!(Client::list_tags).then_output(move || tags.clone());
        let client = mock_client!(
            aws_sdk_sagemaker,
            RuleMode::MatchAny,
            [&create_rule, &describe, &list]
        );
        let r = create(&client, &sample_request()).await;
        (r, describe.num_calls(), list.num_calls())
    }

    #[tokio::test]
    async fn a_retried_create_that_meets_its_own_job_is_accepted() {
        let d = described(&sample_request(), "50");
        let (created, described_calls, tag_calls) =
            create_meeting(d, tagged("0123456789abcdef")).await;
        let created = created.unwrap();
        assert!(created.reconciled);
        assert_eq!(
            created.job_arn,
            "arn:aws:sagemaker:us-east-1:123456789012:training-job/unet-1"
        );
        assert_eq!(described_calls, 1);
        assert_eq!(tag_calls, 1);
    }

    #[tokio::test]
    async fn a_name_taken_by_another_job_is_an_error_with_a_fix() {
        let d = described(&sample_request(), "10");
        let err = create_meeting(d, tagged("fedcba9876543210"))
            .await
            .0
            .unwrap_err();
        assert_eq!(err.kind, crate::error::Kind::Aws);
        assert_eq!(err.exit_code(), 4);
        assert!(err.message.contains("already exists"), "{}", err.message);
        assert!(err.hint.unwrap().contains("--name"));
    }

    /// Two runs with identical settings: the second meets the first's job, alike in every field
    /// but with another submission id, or none (created by another tool). A conflict, not ours.
    #[tokio::test]
    async fn an_identical_job_of_another_run_is_a_conflict_not_ours() {
        let d = described(&sample_request(), "50");
        for tags in [
            tagged("fedcba9876543210"),
            ListTagsOutput::builder().build(),
        ] {
            let err = create_meeting(d.clone(), tags).await.0.unwrap_err();
            assert_eq!(err.exit_code(), 4, "{}", err.message);
        }
    }

    /// A warm pool refused by the caller's policy: the hint names the administrator's
    /// `sagemaker:KeepAlivePeriod` condition; without a keep-alive it does not.
    #[tokio::test]
    async fn a_refused_keep_alive_names_the_administrators_condition() {
        const DENIED: &str = "User: arn:aws:iam::123456789012:user/u is not authorized to perform: sagemaker:CreateTrainingJob with an explicit deny";
        let denied = || {
            CreateTrainingJobError::generic(
                aws_smithy_types::error::ErrorMetadata::builder()
                    .code("AccessDeniedException")
                    .message(DENIED)
                    .build(),
            )
        };
        let rule = mock!(Client::create_training_job).then_error(denied);
        let client = mock_client!(aws_sdk_sagemaker, RuleMode::MatchAny, [&rule]);
        let mut req = sample_request();
        req.resource_config.keep_alive_period_in_seconds = Some(7200);
        let err = create(&client, &req).await.unwrap_err();
        let hint = err.hint.unwrap_or_default();
        assert!(hint.contains("`sagemaker:KeepAlivePeriod`"), "{hint}");
        assert!(hint.contains("7200s"), "{hint}");

        let rule = mock!(Client::create_training_job).then_error(denied);
        let client = mock_client!(aws_sdk_sagemaker, RuleMode::MatchAny, [&rule]);
        let err = create(&client, &sample_request()).await.unwrap_err();
        assert!(
            !err.hint.unwrap_or_default().contains("KeepAlivePeriod"),
            "no keep-alive asked, no hint about it"
        );
    }

    #[test]
    fn submission_ids_differ_between_calls() {
        let ids: std::collections::BTreeSet<String> = (0..64).map(|_| submission_id()).collect();
        assert_eq!(ids.len(), 64);
        assert!(ids.iter().all(|i| i.len() == 16));
    }
}
