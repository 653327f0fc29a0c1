//! SageMaker training jobs: the request in the SDK's types, and a create that is safe to retry.

use crate::aws::{aws_error, error_code};
use crate::error::Result;
use crate::job::spec::CreateTrainingJobRequest;
use aws_sdk_sagemaker::types as sm;
use aws_sdk_sagemaker::Client;

/// The SDK call for a request. Kept next to the serde form so the two cannot drift apart
/// unnoticed: the tests compare them field by field.
pub fn to_sdk(
    client: &Client,
    r: &CreateTrainingJobRequest,
) -> aws_sdk_sagemaker::operation::create_training_job::builders::CreateTrainingJobFluentBuilder {
    let a = &r.algorithm_specification;
    let mut algo = sm::AlgorithmSpecification::builder()
        .training_image(&a.training_image)
        .training_input_mode(sm::TrainingInputMode::from(a.training_input_mode.as_str()));
    for m in &a.metric_definitions {
        algo = algo.metric_definitions(
            sm::MetricDefinition::builder()
                .name(&m.name)
                .regex(&m.regex)
                .build(),
        );
    }
    let mut b = client
        .create_training_job()
        .training_job_name(&r.training_job_name)
        .algorithm_specification(algo.build())
        .role_arn(&r.role_arn)
        .output_data_config(
            sm::OutputDataConfig::builder()
                .s3_output_path(&r.output_data_config.s3_output_path)
                .set_kms_key_id(r.output_data_config.kms_key_id.clone())
                .build(),
        )
        .resource_config(
            sm::ResourceConfig::builder()
                .instance_type(sm::TrainingInstanceType::from(
                    r.resource_config.instance_type.as_str(),
                ))
                .instance_count(r.resource_config.instance_count)
                .volume_size_in_gb(r.resource_config.volume_size_in_gb)
                .set_volume_kms_key_id(r.resource_config.volume_kms_key_id.clone())
                .build(),
        )
        .stopping_condition(
            sm::StoppingCondition::builder()
                .max_runtime_in_seconds(r.stopping_condition.max_runtime_in_seconds)
                .set_max_wait_time_in_seconds(r.stopping_condition.max_wait_time_in_seconds)
                .build(),
        );
    for (k, v) in &r.hyper_parameters {
        b = b.hyper_parameters(k, v);
    }
    for (k, v) in &r.environment {
        b = b.environment(k, v);
    }
    for c in &r.input_data_config {
        let s3 = &c.data_source.s3_data_source;
        b = b.input_data_config(
            sm::Channel::builder()
                .channel_name(&c.channel_name)
                .data_source(
                    sm::DataSource::builder()
                        .s3_data_source(
                            sm::S3DataSource::builder()
                                .s3_data_type(sm::S3DataType::from(s3.s3_data_type.as_str()))
                                .s3_uri(&s3.s3_uri)
                                .s3_data_distribution_type(sm::S3DataDistribution::from(
                                    s3.s3_data_distribution_type.as_str(),
                                ))
                                .build(),
                        )
                        .build(),
                )
                .build(),
        );
    }
    if let Some(v) = &r.vpc_config {
        b = b.vpc_config(
            sm::VpcConfig::builder()
                .set_security_group_ids(Some(v.security_group_ids.clone()))
                .set_subnets(Some(v.subnets.clone()))
                .build(),
        );
    }
    for t in &r.tags {
        b = b.tags(sm::Tag::builder().key(&t.key).value(&t.value).build());
    }
    if r.enable_network_isolation {
        b = b.enable_network_isolation(true);
    }
    if r.enable_managed_spot_training {
        b = b.enable_managed_spot_training(true);
    }
    if let Some(c) = &r.checkpoint_config {
        b = b.checkpoint_config(
            sm::CheckpointConfig::builder()
                .s3_uri(&c.s3_uri)
                .local_path(&c.local_path)
                .build(),
        );
    }
    b
}

/// The outcome of a create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Created {
    pub job_arn: String,
    /// True when the create met `ResourceInUse` and the existing job was this request's own
    /// (an earlier attempt of ours had succeeded).
    pub reconciled: bool,
}

/// Create the job. CreateTrainingJob has no client token: when a retried attempt meets
/// `ResourceInUse`, the job that exists is compared with the request and accepted if it is ours.
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
            if same_job(req, &existing) {
                Ok(Created {
                    job_arn: existing.training_job_arn().unwrap_or_default().to_string(),
                    reconciled: true,
                })
            } else {
                Err(aws_error("sagemaker:CreateTrainingJob", &e))
            }
        }
        Err(e) => Err(aws_error("sagemaker:CreateTrainingJob", &e)),
    }
}

/// Is the described job the one this request would create?
pub fn same_job(
    req: &CreateTrainingJobRequest,
    d: &aws_sdk_sagemaker::operation::describe_training_job::DescribeTrainingJobOutput,
) -> bool {
    let hp: std::collections::BTreeMap<String, String> = d
        .hyper_parameters()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    let image = d
        .algorithm_specification()
        .and_then(|a| a.training_image())
        .unwrap_or_default();
    let out = d
        .output_data_config()
        .and_then(|o| o.s3_output_path())
        .unwrap_or_default();
    let res = d.resource_config();
    d.training_job_name().unwrap_or_default() == req.training_job_name
        && d.role_arn().unwrap_or_default() == req.role_arn
        && image == req.algorithm_specification.training_image
        && hp == req.hyper_parameters
        && out == req.output_data_config.s3_output_path
        && res.and_then(|r| r.instance_type()).map(|t| t.as_str())
            == Some(req.resource_config.instance_type.as_str())
        && res.and_then(|r| r.instance_count()) == Some(req.resource_config.instance_count)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::job::spec::*;
    use aws_sdk_sagemaker::operation::create_training_job::{
        CreateTrainingJobError, CreateTrainingJobOutput,
    };
    use aws_sdk_sagemaker::operation::describe_training_job::DescribeTrainingJobOutput;
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
            tags: vec![],
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

    #[tokio::test]
    async fn a_retried_create_that_meets_its_own_job_is_accepted() {
        let req = request();
        let d = described(&req, "50");
        let create_rule = mock!(Client::create_training_job).then_error(in_use);
        let describe = mock!(Client::describe_training_job).then_output(move || d.clone());
        let client = mock_client!(
            aws_sdk_sagemaker,
            RuleMode::MatchAny,
            [&create_rule, &describe]
        );
        let created = create(&client, &req).await.unwrap();
        assert!(created.reconciled);
        assert_eq!(
            created.job_arn,
            "arn:aws:sagemaker:us-east-1:123456789012:training-job/unet-1"
        );
        assert_eq!(describe.num_calls(), 1);
    }

    #[tokio::test]
    async fn a_name_taken_by_another_job_is_an_error_with_a_fix() {
        let req = request();
        let d = described(&req, "10");
        let create_rule = mock!(Client::create_training_job).then_error(in_use);
        let describe = mock!(Client::describe_training_job).then_output(move || d.clone());
        let client = mock_client!(
            aws_sdk_sagemaker,
            RuleMode::MatchAny,
            [&create_rule, &describe]
        );
        let err = create(&client, &req).await.unwrap_err();
        assert_eq!(err.kind, crate::error::Kind::Aws);
        assert!(err.message.contains("already exists"), "{}", err.message);
        assert!(err.hint.unwrap().contains("--name"));
    }

    #[tokio::test]
    async fn the_sdk_call_carries_every_field_of_the_request() {
        let mut req = request();
        req.hyper_parameters
            .insert("learning_rate".into(), "0.0001".into());
        req.environment.insert("MODE".into(), "fast".into());
        req.tags.push(Tag {
            key: "project".into(),
            value: "vessels".into(),
        });
        req.enable_managed_spot_training = true;
        req.stopping_condition.max_wait_time_in_seconds = Some(7200);
        req.checkpoint_config = Some(CheckpointConfig {
            s3_uri: "s3://b/ck/".into(),
            local_path: "/opt/ml/checkpoints/".into(),
        });
        req.vpc_config = Some(VpcConfig {
            security_group_ids: vec!["sg-1".into()],
            subnets: vec!["subnet-1".into()],
        });
        req.algorithm_specification
            .metric_definitions
            .push(MetricDefinition {
                name: "val_dice".into(),
                regex: "val_dice=([0-9.]+)".into(),
            });
        let expected = req.clone();
        let create_rule = mock!(Client::create_training_job)
            .match_requests(move |r| {
                let e = &expected;
                r.training_job_name() == Some(e.training_job_name.as_str())
                    && r.hyper_parameters().map(|m| m.len()) == Some(2)
                    && r.hyper_parameters()
                        .and_then(|m| m.get("learning_rate"))
                        .map(String::as_str)
                        == Some("0.0001")
                    && r.environment()
                        .and_then(|m| m.get("MODE"))
                        .map(String::as_str)
                        == Some("fast")
                    && r.tags().len() == 1
                    && r.enable_managed_spot_training() == Some(true)
                    && r.stopping_condition()
                        .and_then(|s| s.max_wait_time_in_seconds())
                        == Some(7200)
                    && r.checkpoint_config().map(|c| c.s3_uri()) == Some(Some("s3://b/ck/"))
                    && r.vpc_config().map(|v| v.subnets().len()) == Some(1)
                    && r.algorithm_specification()
                        .map(|a| a.metric_definitions().len())
                        == Some(1)
                    && r.resource_config().and_then(|c| c.volume_size_in_gb()) == Some(30)
                    && r.output_data_config().and_then(|o| o.s3_output_path())
                        == Some("s3://b/out/")
            })
            .then_output(|| {
                CreateTrainingJobOutput::builder()
                    .training_job_arn("arn:x")
                    .build()
            });
        let client = mock_client!(aws_sdk_sagemaker, [&create_rule]);
        let created = create(&client, &req).await.unwrap();
        assert_eq!(
            created,
            Created {
                job_arn: "arn:x".into(),
                reconciled: false
            }
        );
        assert_eq!(create_rule.num_calls(), 1);
    }
}
