//! Creating a training job, safely under retries and concurrent runs.
//!
//! CreateTrainingJob has no client token: a retried attempt whose first attempt succeeded meets
//! `ResourceInUse`. Each run tags its job with a random submission id
//! ([`crate::job::request::SUBMISSION_TAG`]); `ResourceInUse` is this run's own job (an earlier
//! attempt created it) only when the existing job carries this run's id. Any other job of that
//! name, however alike, is a name conflict.

use crate::aws::{aws_error, error_code};
use crate::error::Result;
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
        Err(e) => Err(aws_error("sagemaker:CreateTrainingJob", &e)),
    }
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
    use crate::job::request::*;
    use aws_sdk_sagemaker::operation::create_training_job::CreateTrainingJobError;
    use aws_sdk_sagemaker::operation::describe_training_job::DescribeTrainingJobOutput;
    use aws_sdk_sagemaker::operation::list_tags::ListTagsOutput;
    use aws_sdk_sagemaker::types as sm;
    use aws_smithy_mocks::{mock, mock_client, RuleMode};
    use std::collections::BTreeMap;

    /// A valid request, for tests here and elsewhere.
    pub(crate) fn request() -> CreateTrainingJobRequest {
        CreateTrainingJobRequest {
            training_job_name: "unet-1".into(),
            hyper_parameters: BTreeMap::from([("epochs".to_string(), "50".to_string())]),
            algorithm_specification: AlgorithmSpecification {
                training_image: "123456789012.dkr.ecr.us-east-1.amazonaws.com/unet@sha256:ab"
                    .into(),
                training_input_mode: "File".into(),
                metric_definitions: vec![],
            },
            role_arn: "arn:aws:iam::123456789012:role/SageMakerRole".into(),
            input_data_config: vec![],
            output_data_config: OutputDataConfig {
                s3_output_path: "s3://b/out/".into(),
                kms_key_id: None,
            },
            resource_config: ResourceConfig {
                instance_type: "ml.g5.xlarge".into(),
                instance_count: 1,
                volume_size_in_gb: 30,
                volume_kms_key_id: None,
            },
            vpc_config: None,
            stopping_condition: StoppingCondition {
                max_runtime_in_seconds: 3600,
                max_wait_time_in_seconds: None,
            },
            tags: vec![Tag {
                key: SUBMISSION_TAG.into(),
                value: "0123456789abcdef".into(),
            }],
            enable_network_isolation: false,
            enable_managed_spot_training: false,
            checkpoint_config: None,
            environment: BTreeMap::new(),
        }
    }

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
            .resource_config(
                sm::ResourceConfig::builder()
                    .instance_type(sm::TrainingInstanceType::MlG5Xlarge)
                    .instance_count(1)
                    .volume_size_in_gb(30)
                    .build(),
            )
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

    #[tokio::test]
    async fn a_retried_create_that_meets_its_own_job_is_accepted() {
        let req = request();
        let d = described(&req, "50");
        let create_rule = mock!(Client::create_training_job).then_error(in_use);
        let describe = mock!(Client::describe_training_job).then_output(move || d.clone());
        let tags = mock!(Client::list_tags).then_output(|| tagged("0123456789abcdef"));
        let client = mock_client!(
            aws_sdk_sagemaker,
            RuleMode::MatchAny,
            [&create_rule, &describe, &tags]
        );
        let created = create(&client, &req).await.unwrap();
        assert!(created.reconciled);
        assert_eq!(
            created.job_arn,
            "arn:aws:sagemaker:us-east-1:123456789012:training-job/unet-1"
        );
        assert_eq!(describe.num_calls(), 1);
        assert_eq!(tags.num_calls(), 1);
    }

    #[tokio::test]
    async fn a_name_taken_by_another_job_is_an_error_with_a_fix() {
        let req = request();
        let d = described(&req, "10");
        let create_rule = mock!(Client::create_training_job).then_error(in_use);
        let describe = mock!(Client::describe_training_job).then_output(move || d.clone());
        let tags = mock!(Client::list_tags).then_output(|| tagged("fedcba9876543210"));
        let client = mock_client!(
            aws_sdk_sagemaker,
            RuleMode::MatchAny,
            [&create_rule, &describe, &tags]
        );
        let err = create(&client, &req).await.unwrap_err();
        assert_eq!(err.kind, crate::error::Kind::Aws);
        assert_eq!(err.exit_code(), 4);
        assert!(err.message.contains("already exists"), "{}", err.message);
        assert!(err.hint.unwrap().contains("--name"));
    }

    /// Two runs with identical settings: the second meets the first's job, which is alike in
    /// every field but carries another submission id. It is a conflict, not "created".
    #[tokio::test]
    async fn an_identical_job_of_another_run_is_a_conflict_not_ours() {
        let req = request();
        let d = described(&req, "50");
        let create_rule = mock!(Client::create_training_job).then_error(in_use);
        let describe = mock!(Client::describe_training_job).then_output(move || d.clone());
        let tags = mock!(Client::list_tags).then_output(|| tagged("fedcba9876543210"));
        let client = mock_client!(
            aws_sdk_sagemaker,
            RuleMode::MatchAny,
            [&create_rule, &describe, &tags]
        );
        let err = create(&client, &req).await.unwrap_err();
        assert_eq!(err.exit_code(), 4, "{}", err.message);
        // A job with no submission id at all (created by another tool) is not ours either.
        let d = described(&req, "50");
        let describe = mock!(Client::describe_training_job).then_output(move || d.clone());
        let untagged = mock!(Client::list_tags).then_output(|| ListTagsOutput::builder().build());
        let create_rule = mock!(Client::create_training_job).then_error(in_use);
        let client = mock_client!(
            aws_sdk_sagemaker,
            RuleMode::MatchAny,
            [&create_rule, &describe, &untagged]
        );
        assert_eq!(create(&client, &req).await.unwrap_err().exit_code(), 4);
    }

    #[test]
    fn submission_ids_differ_between_calls() {
        let ids: std::collections::BTreeSet<String> = (0..64).map(|_| submission_id()).collect();
        assert_eq!(ids.len(), 64);
        assert!(ids.iter().all(|i| i.len() == 16));
    }
}
