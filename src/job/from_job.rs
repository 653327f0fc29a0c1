//! `sagetrain train --from JOB`: start from an earlier job's settings, the console's "clone".
//!
//! The job's settings are one more layer of [`TrainSettings`]. Precedence:
//!
//! flags > `--from JOB` > environment variables > `sagetrain.toml` > defaults
//!
//! `--from` is itself a flag, given on purpose for this one job, so the job's settings beat the
//! ambient defaults of the shell and the project file; and anything written on the command line
//! beats the job. A setting the job does not have (no KMS key, no VPC, not spot) is "not set" in
//! this layer too, so that the new job is the old one with only the flags' changes. Maps
//! (hyperparameters, channels, environment, tags, metrics) are taken whole from the job, then
//! each `KEY=VALUE` flag replaces or adds its key. How each setting is read back, or why it is
//! not (the name, the base name), is declared with the setting in [`crate::job::settings`]; the
//! region, profile and endpoint are not copied (they say where to find the job). Each value
//! copied shows its source as `lookup: --from JOB: Field`.

use crate::aws::{aws_error, Aws};
use crate::config::layer::Row;
use crate::config::{Source, Val};
use crate::error::{Error, Result};
use crate::job::settings::{Described, TrainSettings};
use crate::job::spec::check_job_name;
use std::collections::BTreeMap;

/// Notes on what the new job cannot carry over exactly.
pub fn notes(d: &Described) -> Vec<String> {
    let d = &d.job;
    let name = d.training_job_name().unwrap_or_default();
    let mut notes = Vec::new();
    let algo = d.algorithm_specification();
    if let Some(mode) = algo.and_then(|a| a.training_input_mode()) {
        if mode.as_str() != "File" {
            notes.push(format!(
                "job {name} used the {} input mode; the new job uses File",
                mode.as_str()
            ));
        }
    }
    for c in d.input_data_config() {
        let cname = c.channel_name().unwrap_or_default();
        match c.data_source().and_then(|s| s.s3_data_source()) {
            Some(s3) => {
                if let Some(t) = s3.s3_data_type().filter(|t| t.as_str() != "S3Prefix") {
                    notes.push(format!("channel `{cname}` of job {name} is a {}; the new job reads it as an S3 prefix", t.as_str()));
                }
                if let Some(dist) = s3
                    .s3_data_distribution_type()
                    .filter(|d| d.as_str() != "FullyReplicated")
                {
                    notes.push(format!(
                        "channel `{cname}` of job {name} was {}; the new job uses FullyReplicated",
                        dist.as_str()
                    ));
                }
                if let Some(m) = c.input_mode().filter(|m| m.as_str() != "File") {
                    notes.push(format!("channel `{cname}` of job {name} used the {} input mode; the new job uses File", m.as_str()));
                }
            }
            None => notes.push(format!(
                "channel `{cname}` of job {name} is not an S3 data source; it is not copied"
            )),
        }
    }
    if d.resource_config()
        .is_some_and(|r| !r.instance_groups().is_empty())
    {
        notes.push(format!(
            "job {name} used instance groups; the new job uses one instance type"
        ));
    }
    if let Some(lp) = d.checkpoint_config().and_then(|c| c.local_path()) {
        if lp.trim_end_matches('/') != "/opt/ml/checkpoints" {
            notes.push(format!(
                "job {name} synced checkpoints from {lp}; the new job uses /opt/ml/checkpoints/"
            ));
        }
    }
    notes
}

/// Put the job's settings under the flags (see the module's precedence). Returns the settings
/// from the environment or the file that the job's settings replaced, as `name (source)`.
pub fn apply(s: &mut TrainSettings, job: &str, d: &Described) -> Vec<String> {
    let before = s.rows();
    s.apply_job(job, d);
    // The image is already what the old job ran (pinned to a digest if it was).
    let image_from_job = s
        .image
        .as_ref()
        .is_some_and(|i| matches!(i.source, Source::Job { .. }));
    if let (Some(pin), true) = (&mut s.pin_digest, image_from_job) {
        if !matches!(pin.source, Source::Flag(_)) {
            *pin = Val::new(
                pin.value,
                Source::Job {
                    job: job.to_string(),
                    field: "AlgorithmSpecification.TrainingImage".into(),
                },
            );
        }
    }
    replaced(&before, &s.rows())
}

/// The rows from the environment or the file whose value or source changed.
fn replaced(before: &[Row], after: &[Row]) -> Vec<String> {
    let after: BTreeMap<&str, &Row> = after.iter().map(|r| (r.name.as_str(), r)).collect();
    before
        .iter()
        .filter(|r| r.source.as_ref().is_some_and(Source::is_ambient))
        .filter(|r| after.get(r.name.as_str()) != Some(r))
        .map(|r| format!("{} ({})", r.name, r.cells().2))
        .collect()
}

/// Read an earlier job: its description and tags. A failure to read the tags (say, no
/// sagemaker:ListTags permission) is a warning, through `warn`.
pub async fn read(aws: &Aws, job: &str, warn: &dyn Fn(&str)) -> Result<Described> {
    check_job_name(job).map_err(|rule| {
        Error::usage(format!("--from: {rule}")).with_hint(
            "give the name of an existing training job; `sagetrain list` shows recent jobs",
        )
    })?;
    let sm = aws.sagemaker();
    let d = crate::job::lookups::describe(&sm, job)
        .await
        .map_err(|e| e.error)?;
    let mut tags = Vec::new();
    if let Some(arn) = d.training_job_arn() {
        let mut pages = sm
            .list_tags()
            .resource_arn(arn)
            .into_paginator()
            .items()
            .send();
        while let Some(t) = pages.next().await {
            match t {
                Ok(t) => tags.push((
                    t.key().unwrap_or_default().to_string(),
                    t.value().unwrap_or_default().to_string(),
                )),
                Err(e) => {
                    let err = aws_error("sagemaker:ListTags", &e);
                    warn(&format!(
                        "the old job's tags are not copied: {}",
                        err.message
                    ));
                    break;
                }
            }
        }
    }
    let has_image = d
        .algorithm_specification()
        .and_then(|a| a.training_image())
        .is_some();
    if !has_image {
        return Err(Error::usage(format!(
            "job {job} has no training image (it used an algorithm resource); --from copies image jobs only"
        ))
        .with_hint("give the image with --image"));
    }
    Ok(Described { job: d, tags })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use aws_sdk_sagemaker::operation::describe_training_job::DescribeTrainingJobOutput;
    use aws_sdk_sagemaker::types as sm;

    fn val<T: Clone>(v: &Option<Val<T>>) -> T {
        v.as_ref().unwrap().value.clone()
    }

    pub(crate) fn described() -> DescribeTrainingJobOutput {
        described_builder().build()
    }

    /// An earlier job: spot, two instances, a sharded channel, a metric.
    pub(crate) fn described_builder(
    ) -> aws_sdk_sagemaker::operation::describe_training_job::builders::DescribeTrainingJobOutputBuilder
    {
        DescribeTrainingJobOutput::builder()
            .training_job_name("old-job")
            .training_job_arn("arn:aws:sagemaker:eu-west-1:111122223333:training-job/old-job")
            .role_arn("arn:aws:iam::111122223333:role/service-role/SageMakerRole")
            .algorithm_specification(
                sm::AlgorithmSpecification::builder()
                    .training_image("111122223333.dkr.ecr.eu-west-1.amazonaws.com/unet@sha256:abababababababababababababababababababababababababababababababab")
                    .training_input_mode(sm::TrainingInputMode::File)
                    .metric_definitions(
                        sm::MetricDefinition::builder()
                            .name("val_dice")
                            .regex("val_dice=([0-9.]+)")
                            .build(),
                    )
                    .build(),
            )
            .hyper_parameters("epochs", "50")
            .hyper_parameters("learning_rate", "0.0001")
            .input_data_config(
                sm::Channel::builder()
                    .channel_name("train")
                    .data_source(
                        sm::DataSource::builder()
                            .s3_data_source(
                                sm::S3DataSource::builder()
                                    .s3_data_type(sm::S3DataType::S3Prefix)
                                    .s3_uri("s3://data/train/")
                                    .s3_data_distribution_type(
                                        sm::S3DataDistribution::ShardedByS3Key,
                                    )
                                    .build(),
                            )
                            .build(),
                    )
                    .build(),
            )
            .output_data_config(
                sm::OutputDataConfig::builder()
                    .s3_output_path("s3://out/models/")
                    .build(),
            )
            .resource_config(
                crate::testing::resources(sm::TrainingInstanceType::MlP32Xlarge, 2, 50).build(),
            )
            .stopping_condition(
                sm::StoppingCondition::builder()
                    .max_runtime_in_seconds(7200)
                    .max_wait_time_in_seconds(10800)
                    .build(),
            )
            .enable_managed_spot_training(true)
            .checkpoint_config(
                sm::CheckpointConfig::builder()
                    .s3_uri("s3://out/models/old-job/checkpoints/")
                    .local_path("/opt/ml/checkpoints/")
                    .build(),
            )
    }

    #[test]
    fn the_job_is_read_into_settings_with_notes_on_what_changes() {
        let tags = vec![
            ("project".to_string(), "vessels".to_string()),
            ("aws:sagemaker:internal".to_string(), "x".to_string()),
            (
                crate::job::request::SUBMISSION_TAG.to_string(),
                "ab".to_string(),
            ),
        ];
        let d = Described {
            job: described(),
            tags,
        };
        let mut s = TrainSettings::default();
        s.apply_job("old-job", &d);
        let notes = notes(&d);
        assert_eq!(val(&s.instance_type), ["ml.p3.2xlarge"]);
        assert_eq!(val(&s.instance_count), 2);
        assert_eq!(val(&s.max_wait), 10800);
        assert!(val(&s.spot));
        assert_eq!(
            s.checkpoint_s3, None,
            "the old job's default checkpoint path is not reused"
        );
        assert_eq!(
            s.tags.len(),
            1,
            "aws: tags are reserved and sagetrain: tags belong to one submission; not copied"
        );
        assert_eq!(s.metrics["val_dice"].value, "val_dice=([0-9.]+)");
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(notes[0].contains("ShardedByS3Key"), "{notes:?}");
        assert!(!val(&s.remote_debug));
    }

    /// The emulator does not store RemoteDebugConfig: read back here instead.
    #[test]
    fn remote_debugging_is_read_back() {
        let job = described_builder()
            .remote_debug_config(
                sm::RemoteDebugConfig::builder()
                    .enable_remote_debug(true)
                    .build(),
            )
            .build();
        let d = Described {
            job,
            tags: Vec::new(),
        };
        let mut s = TrainSettings::default();
        s.apply_job("old-job", &d);
        assert!(val(&s.remote_debug));
    }
}
