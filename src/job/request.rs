//! The CreateTrainingJob request: its serde form (what `--dry-run` prints, with the API's field
//! names), built from a validated [`JobSpec`] and the values found by lookups, and its SDK form.
//! The tests compare the two forms on the wire, field for field.

use crate::config::Val;
use crate::job::spec::{check_job_name, check_role_arn, JobSpec, Violation, Vpc};
use crate::refs::S3Uri;
use aws_sdk_sagemaker::types as sm;
use aws_sdk_sagemaker::Client;
use serde::Serialize;
use std::collections::BTreeMap;

/// The tag that carries a run's submission id.
pub const SUBMISSION_TAG: &str = "sagetrain:submission-id";

/// The values found by lookups (or given), needed to build the request.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// This run's random id, tagged on the job as `sagetrain:submission-id`, so that a
    /// `ResourceInUse` on create is recognised as this run's own job, or as another's.
    pub submission_id: String,
    pub region: String,
    pub role_arn: Val<String>,
    pub training_image: Val<String>,
    pub output_path: Val<String>,
    pub job_name: Val<String>,
    /// `--secret`: each variable NAME and what its `SAGETRAIN_SECRET_<NAME>` holds (the
    /// secret's ARN, and `:KEY` of a JSON key), never the secret's value.
    pub secrets: BTreeMap<String, String>,
}

// ---- The CreateTrainingJob request, with the AWS API's field names. ----

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateTrainingJobRequest {
    pub training_job_name: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub hyper_parameters: BTreeMap<String, String>,
    pub algorithm_specification: AlgorithmSpecification,
    pub role_arn: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub input_data_config: Vec<Channel>,
    pub output_data_config: OutputDataConfig,
    pub resource_config: ResourceConfig,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vpc_config: Option<VpcConfig>,
    pub stopping_condition: StoppingCondition,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<Tag>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub enable_network_isolation: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub enable_managed_spot_training: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checkpoint_config: Option<CheckpointConfig>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub environment: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_strategy: Option<RetryStrategy>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote_debug_config: Option<RemoteDebugConfig>,
}

/// Whether a job was created (or updated) with remote debugging on.
pub fn remote_debug_of(
    d: &aws_sdk_sagemaker::operation::describe_training_job::DescribeTrainingJobOutput,
) -> bool {
    d.remote_debug_config()
        .and_then(|c| c.enable_remote_debug())
        .unwrap_or(false)
}

/// Remote debugging over SSM (`sagetrain shell`), only ever sent switched on.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct RemoteDebugConfig {
    pub enable_remote_debug: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct RetryStrategy {
    pub maximum_retry_attempts: i32,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct AlgorithmSpecification {
    pub training_image: String,
    pub training_input_mode: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub metric_definitions: Vec<MetricDefinition>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub container_entrypoint: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub container_arguments: Vec<String>,
}

/// Also read back from a local run's record (`job::local::record`).
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct MetricDefinition {
    pub name: String,
    pub regex: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Channel {
    pub channel_name: String,
    pub data_source: DataSource,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_mode: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DataSource {
    pub s3_data_source: S3DataSource,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct S3DataSource {
    pub s3_data_type: String,
    pub s3_uri: String,
    pub s3_data_distribution_type: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct OutputDataConfig {
    pub s3_output_path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kms_key_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ResourceConfig {
    /// The one type; none when [`Self::instance_preferences`] lists several.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance_type: Option<String>,
    /// Several types in order of preference (the one-count form: the count is
    /// [`Self::instance_count`], none per preference).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub instance_preferences: Vec<InstancePreference>,
    pub instance_count: i32,
    #[serde(rename = "VolumeSizeInGB")]
    pub volume_size_in_gb: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub volume_kms_key_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_alive_period_in_seconds: Option<i32>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct InstancePreference {
    pub instance_type: String,
}

impl ResourceConfig {
    /// The types the job may run on, in order: the one type, or the preferences.
    pub fn types(&self) -> Vec<&str> {
        match &self.instance_type {
            Some(t) => vec![t.as_str()],
            None => self
                .instance_preferences
                .iter()
                .map(|p| p.instance_type.as_str())
                .collect(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct VpcConfig {
    pub security_group_ids: Vec<String>,
    pub subnets: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct StoppingCondition {
    pub max_runtime_in_seconds: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_wait_time_in_seconds: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_pending_time_in_seconds: Option<i32>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Tag {
    pub key: String,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct CheckpointConfig {
    pub s3_uri: String,
    pub local_path: String,
}

/// Build the request from a validated spec and the resolved values.
pub fn build_request(s: &JobSpec, r: &Resolved) -> CreateTrainingJobRequest {
    // No `..`: a setting added to the spec is a compile error here until it is placed.
    let JobSpec {
        rows: _,
        config_path: _,
        connection: _,
        role: _,
        image: _,
        image_ref: _,
        pin_digest: _,
        instance_type,
        instance_preferences,
        max_pending,
        concurrent_jobs: _,
        jobs: _,
        max_cost: _,
        instance_count,
        volume_size,
        max_run,
        spot,
        max_wait,
        output_path: _,
        checkpoint_s3,
        name: _,
        base_name: _,
        kms_key,
        network_isolation,
        remote_debug,
        vpc,
        hyperparameters,
        channels,
        environment,
        secrets: _,
        tags,
        metrics,
        code,
        keep_alive,
        retries,
        input_mode,
        channel_input_modes,
        warnings: _,
        dry_run: _,
        offline: _,
        // Where the job runs is no part of the request.
        local: _,
    } = s;
    // A spot job gets a checkpoint location by default, so that it resumes after an interruption.
    let checkpoint = checkpoint_s3.clone().or_else(|| {
        spot.then(|| {
            crate::job::settings::default_checkpoint(&r.output_path.value, &r.job_name.value)
        })
    });
    let mut tags: Vec<Tag> = tags
        .iter()
        .map(|(k, v)| Tag {
            key: k.clone(),
            value: v.clone(),
        })
        .collect();
    tags.push(Tag {
        key: SUBMISSION_TAG.into(),
        value: r.submission_id.clone(),
    });
    if let Some(d) = code
        .as_ref()
        .and_then(|c| crate::job::code::digest_of_uri(&c.source.value))
    {
        tags.push(Tag {
            key: crate::job::code::CODE_DIGEST_TAG.into(),
            value: d,
        });
    }
    let s3_channel = |name: &str, uri: &str, input_mode: Option<String>| Channel {
        channel_name: name.to_string(),
        data_source: DataSource {
            s3_data_source: S3DataSource {
                s3_data_type: "S3Prefix".into(),
                s3_uri: uri.to_string(),
                s3_data_distribution_type: "FullyReplicated".into(),
            },
        },
        input_mode,
    };
    let mut input_data_config: Vec<Channel> = channels
        .iter()
        .map(|(name, uri)| s3_channel(name, &uri.value, channel_input_modes.get(name).cloned()))
        .collect();
    // The code is always copied to the instance, whatever the data's input mode.
    if let Some(c) = code {
        input_data_config.push(s3_channel(
            crate::job::code::CODE_CHANNEL,
            &c.source.value,
            Some("File".into()),
        ));
    }
    CreateTrainingJobRequest {
        training_job_name: r.job_name.value.clone(),
        hyper_parameters: hyperparameters.clone(),
        algorithm_specification: AlgorithmSpecification {
            training_image: r.training_image.value.clone(),
            training_input_mode: input_mode.clone().unwrap_or_else(|| "File".into()),
            metric_definitions: metrics
                .iter()
                .map(|(k, v)| MetricDefinition {
                    name: k.clone(),
                    regex: v.clone(),
                })
                .collect(),
            container_entrypoint: code
                .as_ref()
                .map(|_| crate::job::code::entrypoint())
                .unwrap_or_default(),
            container_arguments: code
                .as_ref()
                .map(|c| crate::job::code::arguments(&c.entry))
                .unwrap_or_default(),
        },
        role_arn: r.role_arn.value.clone(),
        input_data_config,
        output_data_config: OutputDataConfig {
            s3_output_path: r.output_path.value.clone(),
            kms_key_id: kms_key.clone(),
        },
        resource_config: ResourceConfig {
            instance_type: instance_preferences
                .is_empty()
                .then(|| instance_type.clone()),
            instance_preferences: instance_preferences
                .iter()
                .map(|t| InstancePreference {
                    instance_type: t.clone(),
                })
                .collect(),
            instance_count: *instance_count,
            volume_size_in_gb: *volume_size,
            volume_kms_key_id: kms_key.clone(),
            keep_alive_period_in_seconds: *keep_alive,
        },
        vpc_config: vpc.as_ref().map(
            |Vpc {
                 subnets,
                 security_groups,
             }| VpcConfig {
                security_group_ids: security_groups.clone(),
                subnets: subnets.clone(),
            },
        ),
        stopping_condition: StoppingCondition {
            max_runtime_in_seconds: *max_run,
            max_wait_time_in_seconds: *max_wait,
            max_pending_time_in_seconds: *max_pending,
        },
        tags,
        enable_network_isolation: *network_isolation,
        enable_managed_spot_training: *spot,
        checkpoint_config: checkpoint.map(|uri| CheckpointConfig {
            s3_uri: uri,
            local_path: "/opt/ml/checkpoints/".into(),
        }),
        environment: environment
            .clone()
            .into_iter()
            .chain(
                r.secrets
                    .iter()
                    .map(|(name, arn)| (crate::job::secret::env_name(name), arn.clone())),
            )
            .collect(),
        retry_strategy: retries.map(|n| RetryStrategy {
            maximum_retry_attempts: n,
        }),
        remote_debug_config: remote_debug.then_some(RemoteDebugConfig {
            enable_remote_debug: true,
        }),
    }
}

/// The SDK call for a request. Kept next to the serde form so the two cannot drift apart
/// unnoticed: a test compares the body the SDK sends with the serde form, field for field.
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
    if !a.container_entrypoint.is_empty() {
        algo = algo.set_container_entrypoint(Some(a.container_entrypoint.clone()));
    }
    if !a.container_arguments.is_empty() {
        algo = algo.set_container_arguments(Some(a.container_arguments.clone()));
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
                .set_instance_type(
                    r.resource_config
                        .instance_type
                        .as_deref()
                        .map(sm::TrainingInstanceType::from),
                )
                .set_instance_preferences(
                    Some(
                        r.resource_config
                            .instance_preferences
                            .iter()
                            .map(|p| {
                                sm::InstancePreference::builder()
                                    .instance_type(sm::TrainingInstanceType::from(
                                        p.instance_type.as_str(),
                                    ))
                                    .build()
                            })
                            .collect::<Vec<_>>(),
                    )
                    .filter(|p| !p.is_empty()),
                )
                .instance_count(r.resource_config.instance_count)
                .volume_size_in_gb(r.resource_config.volume_size_in_gb)
                .set_volume_kms_key_id(r.resource_config.volume_kms_key_id.clone())
                .set_keep_alive_period_in_seconds(r.resource_config.keep_alive_period_in_seconds)
                .build(),
        )
        .stopping_condition(
            sm::StoppingCondition::builder()
                .max_runtime_in_seconds(r.stopping_condition.max_runtime_in_seconds)
                .set_max_wait_time_in_seconds(r.stopping_condition.max_wait_time_in_seconds)
                .set_max_pending_time_in_seconds(r.stopping_condition.max_pending_time_in_seconds)
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
                .set_input_mode(c.input_mode.as_deref().map(sm::TrainingInputMode::from))
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
    if let Some(d) = &r.remote_debug_config {
        b = b.remote_debug_config(
            sm::RemoteDebugConfig::builder()
                .enable_remote_debug(d.enable_remote_debug)
                .build(),
        );
    }
    if let Some(rs) = &r.retry_strategy {
        b = b.retry_strategy(
            sm::RetryStrategy::builder()
                .maximum_retry_attempts(rs.maximum_retry_attempts)
                .build(),
        );
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

/// Final check of the values that came from lookups, named by their API field.
pub fn validate_request(req: &CreateTrainingJobRequest) -> Vec<Violation> {
    let mut v = Vec::new();
    if let Err(rule) = check_job_name(&req.training_job_name) {
        v.push(Violation::new("TrainingJobName", rule));
    }
    if let Err(rule) = check_role_arn(&req.role_arn) {
        v.push(Violation::new("RoleArn", rule));
    }
    if req.algorithm_specification.training_image.len() > 255 {
        v.push(Violation::new(
            "TrainingImage",
            "has more than 255 characters",
        ));
    }
    if let Err(rule) = S3Uri::parse(&req.output_data_config.s3_output_path) {
        v.push(Violation::new("OutputDataConfig.S3OutputPath", rule));
    }
    if let Some(c) = &req.checkpoint_config {
        if let Err(rule) = S3Uri::parse(&c.s3_uri) {
            v.push(Violation::new("CheckpointConfig.S3Uri", rule));
        }
    }
    v
}

/// The fields of a new job that differ from a warm pool's job (empty: the job reuses the pool):
/// the request's fields that SageMaker matches to reuse a pool.
pub fn pool_differences(
    pool: &aws_sdk_sagemaker::operation::describe_training_job::DescribeTrainingJobOutput,
    req: &CreateTrainingJobRequest,
) -> Vec<&'static str> {
    let rc = pool.resource_config();
    let mut d = Vec::new();
    if pool.role_arn() != Some(req.role_arn.as_str()) {
        d.push("role");
    }
    let described: Vec<&str> = match rc {
        Some(r) if !r.instance_preferences().is_empty() => r
            .instance_preferences()
            .iter()
            .filter_map(|p| p.instance_type().map(|t| t.as_str()))
            .collect(),
        Some(r) => r.instance_type().map(|t| t.as_str()).into_iter().collect(),
        None => Vec::new(),
    };
    if described != req.resource_config.types() {
        d.push("instance type");
    }
    if rc.and_then(|r| r.instance_count()) != Some(req.resource_config.instance_count) {
        d.push("instance count");
    }
    if rc.and_then(|r| r.volume_size_in_gb()) != Some(req.resource_config.volume_size_in_gb) {
        d.push("volume size");
    }
    if rc.and_then(|r| r.volume_kms_key_id()) != req.resource_config.volume_kms_key_id.as_deref() {
        d.push("volume KMS key");
    }
    let sorted = |v: &[String]| {
        let mut v = v.to_vec();
        v.sort();
        v
    };
    let vpc = pool.vpc_config();
    let (subnets, groups) = (
        sorted(vpc.map(|v| v.subnets()).unwrap_or_default()),
        sorted(vpc.map(|v| v.security_group_ids()).unwrap_or_default()),
    );
    let want = req.vpc_config.as_ref();
    if subnets != sorted(want.map(|v| v.subnets.as_slice()).unwrap_or_default()) {
        d.push("VPC subnets");
    }
    if groups
        != sorted(
            want.map(|v| v.security_group_ids.as_slice())
                .unwrap_or_default(),
        )
    {
        d.push("VPC security groups");
    }
    if pool.enable_network_isolation().unwrap_or(false) != req.enable_network_isolation {
        d.push("network isolation");
    }
    // sagetrain never turns it on.
    if pool
        .enable_inter_container_traffic_encryption()
        .unwrap_or(false)
    {
        d.push("inter-container traffic encryption");
    }
    d
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::config::Source;
    use crate::job::settings::{TrainArgs, TrainSettings};
    use crate::job::spec::tests::valid_args;
    use crate::job::spec::validate;

    /// A valid request, for tests here and elsewhere.
    pub(crate) fn sample_request() -> CreateTrainingJobRequest {
        CreateTrainingJobRequest {
            training_job_name: "unet-1".into(),
            hyper_parameters: BTreeMap::from([("epochs".to_string(), "50".to_string())]),
            algorithm_specification: AlgorithmSpecification {
                training_image: "123456789012.dkr.ecr.us-east-1.amazonaws.com/unet@sha256:ab"
                    .into(),
                training_input_mode: "File".into(),
                metric_definitions: vec![],
                container_entrypoint: vec![],
                container_arguments: vec![],
            },
            role_arn: "arn:aws:iam::123456789012:role/SageMakerRole".into(),
            input_data_config: vec![],
            output_data_config: OutputDataConfig {
                s3_output_path: "s3://b/out/".into(),
                kms_key_id: None,
            },
            resource_config: ResourceConfig {
                instance_type: Some("ml.g5.xlarge".into()),
                instance_preferences: Vec::new(),
                instance_count: 1,
                volume_size_in_gb: 30,
                volume_kms_key_id: None,
                keep_alive_period_in_seconds: None,
            },
            vpc_config: None,
            stopping_condition: StoppingCondition {
                max_runtime_in_seconds: 3600,
                max_wait_time_in_seconds: None,
                max_pending_time_in_seconds: None,
            },
            tags: vec![Tag {
                key: SUBMISSION_TAG.into(),
                value: "0123456789abcdef".into(),
            }],
            enable_network_isolation: false,
            enable_managed_spot_training: false,
            checkpoint_config: None,
            environment: BTreeMap::new(),
            retry_strategy: None,
            remote_debug_config: None,
        }
    }

    fn spec(args: TrainArgs) -> JobSpec {
        let g = crate::aws::connection::ConnectionArgs {
            region: Some("eu-west-1".into()),
            ..Default::default()
        };
        let s = TrainSettings::layer(&g, &args, &|_| None, None).unwrap();
        validate(&s, std::path::Path::new("/")).unwrap()
    }

    pub(crate) fn resolved(s: &JobSpec) -> Resolved {
        Resolved {
            submission_id: "0123456789abcdef".into(),
            region: "eu-west-1".into(),
            role_arn: s.role.clone().unwrap(),
            training_image: s.image.clone(),
            output_path: s.output_path.clone().unwrap(),
            job_name: Val::new("unet-1".into(), Source::Default),
            secrets: s
                .secrets
                .iter()
                .map(|(name, r)| (name.clone(), r.value.env_value(&r.value.id)))
                .collect(),
        }
    }

    /// A secret travels as its ARN in `SAGETRAIN_SECRET_<NAME>`, never as `NAME`; the request
    /// with it passes the checks of the final request.
    #[test]
    fn a_secret_is_its_arn_in_the_environment() {
        let arn = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:sagetrain/wandb-AbCdEf";
        let mut args = valid_args();
        args.secrets = vec![format!("WANDB_API_KEY={arn}"), format!("DB={arn}:password")];
        args.environment = vec!["MODE=fast".into()];
        let s = spec(args);
        let req = build_request(&s, &resolved(&s));
        assert!(
            validate_request(&req).is_empty(),
            "{:?}",
            validate_request(&req)
        );
        assert_eq!(
            req.environment,
            BTreeMap::from([
                ("MODE".to_string(), "fast".to_string()),
                ("SAGETRAIN_SECRET_DB".to_string(), format!("{arn}:password")),
                (
                    "SAGETRAIN_SECRET_WANDB_API_KEY".to_string(),
                    arn.to_string()
                ),
            ])
        );
    }

    #[test]
    fn request_has_plain_strings_and_api_field_names() {
        let mut args = valid_args();
        args.hyperparameters = vec!["learning_rate=0.0001".into(), "optimizer=adam".into()];
        args.spot = true;
        args.tags = vec!["project=vessels".into()];
        let s = spec(args);
        let req = build_request(&s, &resolved(&s));
        assert!(validate_request(&req).is_empty());
        let json = serde_json::to_value(&req).unwrap();
        assert_eq!(
            json["HyperParameters"],
            serde_json::json!({"epochs": "50", "learning_rate": "0.0001", "optimizer": "adam"})
        );
        assert_eq!(json["ResourceConfig"]["VolumeSizeInGB"], 30);
        assert_eq!(json["ResourceConfig"]["InstanceType"], "ml.g5.xlarge");
        assert_eq!(
            json["StoppingCondition"],
            serde_json::json!({"MaxRuntimeInSeconds": 86400, "MaxWaitTimeInSeconds": 86400})
        );
        assert_eq!(
            json["CheckpointConfig"]["S3Uri"],
            "s3://my-bucket/out/unet-1/checkpoints/"
        );
        assert_eq!(
            json["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3Uri"],
            "s3://my-bucket/data/train/"
        );
        assert_eq!(json["EnableManagedSpotTraining"], true);
        assert_eq!(
            json["Tags"][0],
            serde_json::json!({"Key": "project", "Value": "vessels"})
        );
        assert_eq!(
            json["Tags"][1],
            serde_json::json!({"Key": SUBMISSION_TAG, "Value": "0123456789abcdef"})
        );
        assert!(json.get("Environment").is_none());
        assert!(json.get("VpcConfig").is_none());
    }

    /// Settings that set every optional field of the request.
    pub(crate) fn every_field_args() -> TrainArgs {
        let mut args = valid_args();
        args.hyperparameters = vec!["learning_rate=0.0001".into()];
        args.environment = vec!["MODE=fast".into()];
        args.tags = vec!["project=vessels".into()];
        args.metrics = vec!["val_dice=val_dice=([0-9.]+)".into()];
        args.spot = true;
        args.max_wait = Some("2d".into());
        args.checkpoint_s3 = Some("s3://my-bucket/ck/".into());
        args.subnets = vec!["subnet-1".into()];
        args.security_groups = vec!["sg-1".into()];
        args.kms_key = Some("alias/unet".into());
        args.network_isolation = true;
        args.instance_count = Some("2".into());
        args.volume_size = Some("100".into());
        args.validation = Some("s3://my-bucket/data/val/".into());
        args.max_pending = Some("2h".into());
        args
    }

    /// A SageMaker client whose requests are captured, not sent.
    pub(crate) fn capturing_client() -> (
        Client,
        aws_smithy_http_client::test_util::CaptureRequestReceiver,
    ) {
        let (http, rx) = aws_smithy_http_client::test_util::capture_request(None);
        let conf = aws_sdk_sagemaker::Config::builder()
            .behavior_version(aws_sdk_sagemaker::config::BehaviorVersion::latest())
            .region(aws_sdk_sagemaker::config::Region::new("eu-west-1"))
            .credentials_provider(aws_credential_types::Credentials::new(
                "AKIDTESTTESTTEST",
                "secret",
                None,
                None,
                "test",
            ))
            .http_client(http)
            .build();
        (Client::from_conf(conf), rx)
    }

    /// The JSON body of the request a [`capturing_client`] captured.
    pub(crate) fn sent_body(
        rx: aws_smithy_http_client::test_util::CaptureRequestReceiver,
    ) -> serde_json::Value {
        let sent = rx.expect_request();
        serde_json::from_slice(sent.body().bytes().unwrap()).unwrap()
    }

    /// A request with every field set: the body the SDK sends (SageMaker's JSON protocol uses
    /// the API's field names) is the serde form, field for field.
    #[tokio::test]
    async fn the_sdk_sends_exactly_the_serde_form() {
        let s = spec(every_field_args());
        let req = build_request(&s, &resolved(&s));
        let expected = serde_json::to_value(&req).unwrap();

        let (client, rx) = capturing_client();
        let _ = to_sdk(&client, &req).send().await;
        assert_eq!(sent_body(rx), expected);
        let body = expected;
        // Every optional part is there, so the comparison covers each field.
        for field in [
            "HyperParameters",
            "Environment",
            "Tags",
            "VpcConfig",
            "CheckpointConfig",
            "EnableNetworkIsolation",
            "EnableManagedSpotTraining",
            "InputDataConfig",
        ] {
            assert!(body.get(field).is_some(), "{field} missing from {body}");
        }
        assert_eq!(body["ResourceConfig"]["VolumeKmsKeyId"], "alias/unet");
        assert_eq!(body["OutputDataConfig"]["KmsKeyId"], "alias/unet");
        assert_eq!(body["StoppingCondition"]["MaxWaitTimeInSeconds"], 172800);
        assert_eq!(body["StoppingCondition"]["MaxPendingTimeInSeconds"], 7200);
        assert_eq!(
            body["AlgorithmSpecification"]["MetricDefinitions"][0]["Name"],
            "val_dice"
        );
    }

    #[test]
    fn remote_debugging_is_sent_only_when_asked() {
        let s = spec(valid_args());
        let req = build_request(&s, &resolved(&s));
        assert!(serde_json::to_value(&req)
            .unwrap()
            .get("RemoteDebugConfig")
            .is_none());
    }

    /// Code mode, a warm pool, retries, an input mode, instance preferences (none of them with
    /// spot) and remote debugging: on the wire too.
    #[tokio::test]
    async fn code_mode_warm_pool_retries_input_mode_and_remote_debug_on_the_wire() {
        let mut args = valid_args();
        args.instance_type = Some("ml.g5.2xlarge,ml.g6.2xlarge,ml.g5.4xlarge".into());
        args.instance_count = Some("2".into());
        let code_uri = "s3://my-bucket/sagetrain/code/0123456789abcdef0123456789abcdef/";
        args.source = Some(code_uri.into());
        args.entry = Some("src/main.py".into());
        args.keep_alive = Some("30m".into());
        args.retries = Some("3".into());
        args.input_mode = Some("fastfile".into());
        args.validation = Some("s3://my-bucket/data/val/".into());
        args.channel_input_modes = vec!["validation=pipe".into()];
        args.remote_debug = true;
        let s = spec(args);
        let req = build_request(&s, &resolved(&s));
        let (client, rx) = capturing_client();
        let _ = to_sdk(&client, &req).send().await;
        let body = sent_body(rx);
        assert_eq!(body, serde_json::to_value(&req).unwrap());
        let a = &body["AlgorithmSpecification"];
        assert_eq!(a["TrainingInputMode"], "FastFile");
        assert_eq!(
            a["ContainerEntrypoint"],
            serde_json::json!(["/bin/sh", "/opt/ml/input/data/code/.sagetrain-launcher.sh"])
        );
        assert_eq!(a["ContainerArguments"], serde_json::json!(["src/main.py"]));
        assert_eq!(body["ResourceConfig"]["KeepAlivePeriodInSeconds"], 1800);
        assert_eq!(
            body["RemoteDebugConfig"],
            serde_json::json!({"EnableRemoteDebug": true})
        );
        // The one-count form: the count in ResourceConfig, none per preference, no InstanceType.
        let rc = &body["ResourceConfig"];
        assert_eq!(
            rc["InstancePreferences"],
            serde_json::json!([
                {"InstanceType": "ml.g5.2xlarge"},
                {"InstanceType": "ml.g6.2xlarge"},
                {"InstanceType": "ml.g5.4xlarge"}
            ])
        );
        assert_eq!(rc["InstanceCount"], 2);
        assert!(rc.get("InstanceType").is_none(), "{rc}");
        assert_eq!(body["RetryStrategy"]["MaximumRetryAttempts"], 3);
        let channels = body["InputDataConfig"].as_array().unwrap();
        let code = channels
            .iter()
            .find(|c| c["ChannelName"] == "code")
            .unwrap();
        assert_eq!(code["DataSource"]["S3DataSource"]["S3Uri"], code_uri);
        assert_eq!(code["InputMode"], "File", "the code is always copied");
        let train = channels
            .iter()
            .find(|c| c["ChannelName"] == "train")
            .unwrap();
        assert!(
            train.get("InputMode").is_none(),
            "data follows TrainingInputMode"
        );
        let val = channels
            .iter()
            .find(|c| c["ChannelName"] == "validation")
            .unwrap();
        assert_eq!(val["InputMode"], "Pipe", "a channel's own mode");
        assert!(body["Tags"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!({"Key": "sagetrain:code-digest", "Value": "0123456789abcdef0123456789abcdef"})));
    }
}
