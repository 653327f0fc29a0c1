//! Builders and mock helpers that the unit tests of several modules share (test builds only).

use aws_sdk_sagemaker::types as sm;
use aws_smithy_mocks::{Rule, RuleBuilder};
use std::fmt::Debug;

/// The resources of a described job: `count` instances of `instance`, `volume_gb` each.
pub(crate) fn resources(
    instance: sm::TrainingInstanceType,
    count: i32,
    volume_gb: i32,
) -> sm::builders::ResourceConfigBuilder {
    sm::ResourceConfig::builder()
        .instance_type(instance)
        .instance_count(count)
        .volume_size_in_gb(volume_gb)
}

/// The resources most tests use: one ml.g5.xlarge with 30 GB.
pub(crate) fn g5() -> sm::builders::ResourceConfigBuilder {
    resources(sm::TrainingInstanceType::MlG5Xlarge, 1, 30)
}

/// A channel of a described job, reading the S3 prefix `uri`.
pub(crate) fn s3_channel(name: &str, uri: &str) -> sm::builders::ChannelBuilder {
    let s3 = sm::S3DataSource::builder()
        .s3_data_type(sm::S3DataType::S3Prefix)
        .s3_uri(uri);
    sm::Channel::builder()
        .channel_name(name)
        .data_source(sm::DataSource::builder().s3_data_source(s3.build()).build())
}

/// A mocked operation answering `outputs` in order, the last one from then on.
pub(crate) fn in_order<I, O, E>(rule: RuleBuilder<I, O, E>, outputs: Vec<O>) -> Rule
where
    I: Debug + Send + Sync + 'static,
    O: Debug + Clone + Send + Sync + 'static,
    E: Debug + Send + Sync + std::error::Error + 'static,
{
    let last = outputs.len().checked_sub(1).expect("at least one output");
    let mut seq = rule.sequence();
    for (i, o) in outputs.into_iter().enumerate() {
        seq = seq.output(move || o.clone());
        if i == last {
            return seq.repeatedly().build();
        }
    }
    unreachable!("the last output returns")
}

/// Every one of `parts` is in `text`; a failure names the part and shows the whole text.
#[track_caller]
pub(crate) fn assert_contains_all(text: &str, parts: &[&str]) {
    for part in parts {
        assert!(text.contains(part), "{part:?} not in:\n{text}");
    }
}

/// DescribeTrainingJob answering ThrottlingException.
pub(crate) fn throttling(
) -> aws_sdk_sagemaker::operation::describe_training_job::DescribeTrainingJobError {
    aws_sdk_sagemaker::operation::describe_training_job::DescribeTrainingJobError::generic(
        aws_smithy_types::error::ErrorMetadata::builder()
            .code("ThrottlingException")
            .message("Rate exceeded")
            .build(),
    )
}

/// A SageMaker client whose DescribeTrainingJob is throttled forever (the SDK's own retries
/// off, so that a poller sees each answer), and its rule.
pub(crate) fn throttled_forever() -> (Rule, aws_sdk_sagemaker::Client) {
    use aws_smithy_mocks::{mock, mock_client, RuleMode};
    let rule = mock!(aws_sdk_sagemaker::Client::describe_training_job)
        .sequence()
        .error(throttling)
        .repeatedly()
        .build();
    let client = mock_client!(aws_sdk_sagemaker, RuleMode::Sequential, [&rule], |b| b
        .retry_config(aws_smithy_types::retry::RetryConfig::disabled()));
    (rule, client)
}
