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
//! each `KEY=VALUE` flag replaces or adds its key. The region, profile and endpoint are not
//! copied (they say where to find the job), nor the name (a new one is generated).
//! Each value copied shows its source as `lookup: --from JOB: Field`.

use crate::aws::{Aws, AwsSettings};
use crate::cli::TrainArgs;
use crate::commands::Context;
use crate::config::{Source, TrainSettings, Val};
use crate::error::{Error, Result};
use crate::follow;
use crate::job::spec::{check_job_name, validate_settings, violations_error};
use aws_sdk_sagemaker::operation::describe_training_job::DescribeTrainingJobOutput;
use std::collections::BTreeMap;

/// The settings of an existing job, in sagetrain's terms.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobSettings {
    pub image: Option<String>,
    pub role: Option<String>,
    pub hyperparameters: BTreeMap<String, String>,
    pub channels: BTreeMap<String, String>,
    pub environment: BTreeMap<String, String>,
    pub tags: BTreeMap<String, String>,
    pub metrics: BTreeMap<String, String>,
    pub instance_type: Option<String>,
    pub instance_count: Option<i64>,
    pub volume_size: Option<i64>,
    pub max_run: Option<u64>,
    pub max_wait: Option<u64>,
    pub spot: bool,
    pub output_path: Option<String>,
    pub checkpoint_s3: Option<String>,
    pub kms_key: Option<String>,
    pub network_isolation: bool,
    pub subnets: Option<Vec<String>>,
    pub security_groups: Option<Vec<String>>,
}

fn join_s3(prefix: &str, rest: &str) -> String {
    format!("{}/{}", prefix.trim_end_matches('/'), rest)
}

/// Read a described job (and its tags). Returns the settings and notes on what could not be
/// carried over exactly.
pub fn from_describe(
    d: &DescribeTrainingJobOutput,
    tags: &[(String, String)],
) -> (JobSettings, Vec<String>) {
    let name = d.training_job_name().unwrap_or_default();
    let mut notes = Vec::new();
    let algo = d.algorithm_specification();
    let image = algo.and_then(|a| a.training_image()).map(str::to_string);
    if let Some(mode) = algo.and_then(|a| a.training_input_mode()) {
        if mode.as_str() != "File" {
            notes.push(format!(
                "job {name} used the {} input mode; the new job uses File",
                mode.as_str()
            ));
        }
    }
    let mut channels = BTreeMap::new();
    for c in d.input_data_config() {
        let cname = c.channel_name().unwrap_or_default().to_string();
        match c.data_source().and_then(|s| s.s3_data_source()) {
            Some(s3) => {
                channels.insert(cname.clone(), s3.s3_uri().unwrap_or_default().to_string());
                if let Some(t) = s3.s3_data_type() {
                    if t.as_str() != "S3Prefix" {
                        notes.push(format!("channel `{cname}` of job {name} is a {}; the new job reads it as an S3 prefix", t.as_str()));
                    }
                }
                if let Some(dist) = s3.s3_data_distribution_type() {
                    if dist.as_str() != "FullyReplicated" {
                        notes.push(format!("channel `{cname}` of job {name} was {}; the new job uses FullyReplicated", dist.as_str()));
                    }
                }
                if let Some(m) = c.input_mode() {
                    if m.as_str() != "File" {
                        notes.push(format!("channel `{cname}` of job {name} used the {} input mode; the new job uses File", m.as_str()));
                    }
                }
            }
            None => notes.push(format!(
                "channel `{cname}` of job {name} is not an S3 data source; it is not copied"
            )),
        }
    }
    let rc = d.resource_config();
    if rc.is_some_and(|r| !r.instance_groups().is_empty()) {
        notes.push(format!(
            "job {name} used instance groups; the new job uses one instance type"
        ));
    }
    let sc = d.stopping_condition();
    let spot = d.enable_managed_spot_training().unwrap_or(false);
    let output_path = d
        .output_data_config()
        .and_then(|o| o.s3_output_path())
        .map(str::to_string);
    // A checkpoint location that is the default of the old job (under its own name) is not
    // copied: the new job gets its own, rather than resuming from the old job's checkpoints.
    let checkpoint_s3 = d
        .checkpoint_config()
        .and_then(|c| c.s3_uri())
        .and_then(|uri| {
            let default = output_path
                .as_deref()
                .map(|o| join_s3(o, &format!("{name}/checkpoints/")));
            (Some(uri) != default.as_deref()).then(|| uri.to_string())
        });
    if let Some(lp) = d.checkpoint_config().and_then(|c| c.local_path()) {
        if lp.trim_end_matches('/') != "/opt/ml/checkpoints" {
            notes.push(format!(
                "job {name} synced checkpoints from {lp}; the new job uses /opt/ml/checkpoints/"
            ));
        }
    }
    let vpc = d.vpc_config();
    let map = |m: Option<&std::collections::HashMap<String, String>>| -> BTreeMap<String, String> {
        m.map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default()
    };
    let js = JobSettings {
        image,
        role: d.role_arn().map(str::to_string),
        hyperparameters: map(d.hyper_parameters()),
        channels,
        environment: map(d.environment()),
        tags: tags
            .iter()
            .filter(|(k, _)| !k.to_ascii_lowercase().starts_with("aws:"))
            .cloned()
            .collect(),
        metrics: algo
            .map(|a| {
                a.metric_definitions()
                    .iter()
                    .map(|m| {
                        (
                            m.name().unwrap_or_default().to_string(),
                            m.regex().unwrap_or_default().to_string(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default(),
        instance_type: rc
            .and_then(|r| r.instance_type())
            .map(|t| t.as_str().to_string()),
        instance_count: rc.and_then(|r| r.instance_count()).map(i64::from),
        volume_size: rc.and_then(|r| r.volume_size_in_gb()).map(i64::from),
        max_run: sc
            .and_then(|s| s.max_runtime_in_seconds())
            .map(|v| v.max(0) as u64),
        max_wait: sc
            .and_then(|s| s.max_wait_time_in_seconds())
            .filter(|_| spot)
            .map(|v| v.max(0) as u64),
        spot,
        output_path,
        checkpoint_s3,
        kms_key: d
            .output_data_config()
            .and_then(|o| o.kms_key_id())
            .map(str::to_string),
        network_isolation: d.enable_network_isolation().unwrap_or(false),
        subnets: vpc.map(|v| v.subnets().to_vec()).filter(|v| !v.is_empty()),
        security_groups: vpc
            .map(|v| v.security_group_ids().to_vec())
            .filter(|v| !v.is_empty()),
    };
    (js, notes)
}

fn is_flag(s: &Source) -> bool {
    matches!(s, Source::Flag(_))
}

/// Put the job's settings under the flags (see the module's precedence).
pub fn apply(s: &mut TrainSettings, job: &str, j: &JobSettings) {
    let src = |field: &str| Source::Lookup(format!("--from {job}: {field}"));
    fn set<T>(slot: &mut Val<T>, v: Option<T>, src: Source) {
        if let Some(v) = v {
            if !is_flag(&slot.source) {
                *slot = Val::new(v, src);
            }
        }
    }
    fn set_opt<T>(slot: &mut Option<Val<T>>, v: Option<T>, src: Source) {
        if !slot.as_ref().is_some_and(|x| is_flag(&x.source)) {
            *slot = v.map(|v| Val::new(v, src));
        }
    }
    fn set_map(
        slot: &mut BTreeMap<String, Val<String>>,
        v: &BTreeMap<String, String>,
        src: impl Fn(&str) -> Source,
    ) {
        slot.retain(|_, x| is_flag(&x.source));
        for (k, val) in v {
            slot.entry(k.clone())
                .or_insert_with(|| Val::new(val.clone(), src(k)));
        }
    }
    set_opt(
        &mut s.image,
        j.image.clone(),
        src("AlgorithmSpecification.TrainingImage"),
    );
    set_opt(&mut s.role, j.role.clone(), src("RoleArn"));
    set(
        &mut s.instance_type,
        j.instance_type.clone(),
        src("ResourceConfig.InstanceType"),
    );
    set(
        &mut s.instance_count,
        j.instance_count,
        src("ResourceConfig.InstanceCount"),
    );
    set(
        &mut s.volume_size,
        j.volume_size,
        src("ResourceConfig.VolumeSizeInGB"),
    );
    set(
        &mut s.max_run,
        j.max_run,
        src("StoppingCondition.MaxRuntimeInSeconds"),
    );
    set(&mut s.spot, Some(j.spot), src("EnableManagedSpotTraining"));
    set_opt(
        &mut s.max_wait,
        j.max_wait,
        src("StoppingCondition.MaxWaitTimeInSeconds"),
    );
    set_opt(
        &mut s.output_path,
        j.output_path.clone(),
        src("OutputDataConfig.S3OutputPath"),
    );
    set_opt(
        &mut s.checkpoint_s3,
        j.checkpoint_s3.clone(),
        src("CheckpointConfig.S3Uri"),
    );
    set_opt(
        &mut s.kms_key,
        j.kms_key.clone(),
        src("OutputDataConfig.KmsKeyId"),
    );
    set(
        &mut s.network_isolation,
        Some(j.network_isolation),
        src("EnableNetworkIsolation"),
    );
    set_opt(&mut s.subnets, j.subnets.clone(), src("VpcConfig.Subnets"));
    set_opt(
        &mut s.security_groups,
        j.security_groups.clone(),
        src("VpcConfig.SecurityGroupIds"),
    );
    set_map(&mut s.hyperparameters, &j.hyperparameters, |k| {
        src(&format!("HyperParameters.{k}"))
    });
    set_map(&mut s.channels, &j.channels, |k| {
        src(&format!("InputDataConfig.{k}"))
    });
    set_map(&mut s.environment, &j.environment, |k| {
        src(&format!("Environment.{k}"))
    });
    set_map(&mut s.tags, &j.tags, |k| src(&format!("Tags.{k}")));
    set_map(&mut s.metrics, &j.metrics, |k| {
        src(&format!("AlgorithmSpecification.MetricDefinitions.{k}"))
    });
    // The image is already what the old job ran (pinned to a digest if it was).
    if !is_flag(&s.pin_digest.source) && s.image.as_ref().is_some_and(|i| !is_flag(&i.source)) {
        s.pin_digest = Val::new(
            s.pin_digest.value,
            src("AlgorithmSpecification.TrainingImage"),
        );
    }
}

/// The settings from the environment or the file that the job's settings replaced, as
/// `name (source)`: `rows` before and after [`apply`].
pub fn replaced(
    before: &[(String, String, String)],
    after: &[(String, String, String)],
) -> Vec<String> {
    let after: BTreeMap<&str, (&str, &str)> = after
        .iter()
        .map(|(n, v, s)| (n.as_str(), (v.as_str(), s.as_str())))
        .collect();
    before
        .iter()
        .filter(|(_, _, src)| src.starts_with("env ") || src.starts_with("file "))
        .filter(|(n, v, src)| after.get(n.as_str()) != Some(&(v.as_str(), src.as_str())))
        .map(|(n, _, src)| format!("{n} ({src})"))
        .collect()
}

/// The tags of a job; a failure (say, no sagemaker:ListTags permission) is a warning.
async fn job_tags(
    ctx: &Context,
    sm: &aws_sdk_sagemaker::Client,
    arn: &str,
) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        match sm
            .list_tags()
            .resource_arn(arn)
            .set_next_token(token.clone())
            .send()
            .await
        {
            Ok(page) => {
                out.extend(page.tags().iter().map(|t| {
                    (
                        t.key().unwrap_or_default().to_string(),
                        t.value().unwrap_or_default().to_string(),
                    )
                }));
                match page.next_token() {
                    Some(t) if Some(t) != token.as_deref() && !t.is_empty() => {
                        token = Some(t.to_string())
                    }
                    _ => break,
                }
            }
            Err(e) => {
                let err = crate::aws::aws_error("sagemaker:ListTags", &e);
                ctx.ui.warn(&format!(
                    "the old job's tags are not copied: {}",
                    err.message
                ));
                break;
            }
        }
    }
    out
}

/// Settings for `train --from JOB`: flags, the job, environment, file; then validated.
pub async fn settings(ctx: &Context, args: &TrainArgs, job: &str) -> Result<TrainSettings> {
    if let Err(rule) = check_job_name(job) {
        return Err(Error::usage(format!("--from: {rule}")).with_hint(
            "give the name of an existing training job; `sagetrain list` shows recent jobs",
        ));
    }
    if args.offline {
        return Err(Error::usage(
            "--from needs to read the job from SageMaker, so it cannot be used with --offline",
        )
        .with_hint("drop --offline (--dry-run still creates nothing)"));
    }
    let file = ctx.config_file()?;
    let mut s = TrainSettings::layer(&ctx.global, args, &*ctx.env, file.as_ref())
        .map_err(violations_error)?;
    crate::commands::jobcmd::check_connection_settings(s.region.as_ref(), s.endpoint_url.as_ref())?;
    let aws = Aws::load(&AwsSettings {
        profile: s.profile.clone(),
        region: s.region.clone(),
        endpoint_url: s.endpoint_url.clone(),
    })
    .await?;
    aws.credentials().await?;
    let sm = aws.sagemaker();
    let d = follow::describe(&sm, job).await.map_err(|e| e.error)?;
    let tags = match d.training_job_arn() {
        Some(arn) => job_tags(ctx, &sm, arn).await,
        None => Vec::new(),
    };
    let (js, notes) = from_describe(&d, &tags);
    if js.image.is_none() {
        return Err(Error::usage(format!(
            "job {job} has no training image (it used an algorithm resource); --from copies image jobs only"
        ))
        .with_hint("give the image with --image"));
    }
    for n in notes {
        ctx.ui.warn(&n);
    }
    let before = s.rows();
    apply(&mut s, job, &js);
    ctx.ui.info(&format!(
        "starting from job {job} (--from): its settings, with the flags given here over them"
    ));
    let over = replaced(&before, &s.rows());
    if !over.is_empty() {
        ctx.ui.info(&format!(
            "the job's settings replace these from the environment or sagetrain.toml: {}",
            over.join(", ")
        ));
    }
    let v = validate_settings(&s);
    if !v.is_empty() {
        return Err(violations_error(v));
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{GlobalArgs, OutputFormat};
    use crate::config::parse_file;
    use aws_sdk_sagemaker::types as sm;
    use std::path::PathBuf;

    fn described() -> DescribeTrainingJobOutput {
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
                sm::ResourceConfig::builder()
                    .instance_type(sm::TrainingInstanceType::MlP32Xlarge)
                    .instance_count(2)
                    .volume_size_in_gb(50)
                    .build(),
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
            .build()
    }

    fn global() -> GlobalArgs {
        GlobalArgs {
            profile: None,
            region: Some("eu-west-1".into()),
            endpoint_url: None,
            config: None,
            output: OutputFormat::Text,
            quiet: false,
            verbose: 0,
        }
    }

    #[test]
    fn the_job_is_read_into_settings_with_notes_on_what_changes() {
        let tags = vec![
            ("project".to_string(), "vessels".to_string()),
            ("aws:sagemaker:internal".to_string(), "x".to_string()),
        ];
        let (j, notes) = from_describe(&described(), &tags);
        assert_eq!(j.instance_type.as_deref(), Some("ml.p3.2xlarge"));
        assert_eq!(j.instance_count, Some(2));
        assert_eq!(j.max_wait, Some(10800));
        assert!(j.spot);
        assert_eq!(
            j.checkpoint_s3, None,
            "the old job's default checkpoint path is not reused"
        );
        assert_eq!(j.tags.len(), 1, "aws: tags are reserved and not copied");
        assert_eq!(j.metrics["val_dice"], "val_dice=([0-9.]+)");
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(notes[0].contains("ShardedByS3Key"), "{notes:?}");
    }

    #[test]
    fn flags_beat_the_job_which_beats_env_and_file() {
        let path = PathBuf::from("/p/sagetrain.toml");
        let file = crate::config::LoadedFile {
            config: parse_file(
                &path,
                "image = \"file-image\"\ninstance_type = \"ml.m5.xlarge\"\nkms_key = \"alias/x\"\n\
                 [hyperparameters]\nepochs = 10\naugment = true\n[tags]\nteam = \"retina\"\n",
            )
            .unwrap(),
            path,
        };
        let env = |k: &str| (k == "SAGEMAKER_ROLE").then(|| "EnvRole".to_string());
        let args = TrainArgs {
            epochs: Some("80".into()),
            volume_size: Some("100".into()),
            tags: vec!["run=2".into()],
            ..Default::default()
        };
        let mut s = TrainSettings::layer(&global(), &args, &env, Some(&file)).unwrap();
        let (j, _) = from_describe(&described(), &[("project".into(), "vessels".into())]);
        let before = s.rows();
        apply(&mut s, "old-job", &j);
        assert_eq!(
            replaced(&before, &s.rows()),
            [
                "role (env SAGEMAKER_ROLE)",
                "image (file /p/sagetrain.toml (image))",
                "instance_type (file /p/sagetrain.toml (instance_type))",
                "kms_key (file /p/sagetrain.toml (kms_key))",
                "hyperparameters.augment (file /p/sagetrain.toml (hyperparameters.augment))",
                "tags.team (file /p/sagetrain.toml (tags.team))",
            ]
        );

        // The job beats the file and the environment.
        assert_eq!(
            s.image.as_ref().unwrap().value,
            "111122223333.dkr.ecr.eu-west-1.amazonaws.com/unet@sha256:abababababababababababababababababababababababababababababababab"
        );
        assert_eq!(
            s.role.as_ref().unwrap().value,
            "arn:aws:iam::111122223333:role/service-role/SageMakerRole"
        );
        assert_eq!(
            s.role.as_ref().unwrap().source.to_string(),
            "lookup: --from old-job: RoleArn"
        );
        assert_eq!(s.instance_type.value, "ml.p3.2xlarge");
        assert_eq!(s.kms_key, None, "the job had no KMS key");
        // Flags beat the job.
        assert_eq!(s.volume_size.value, 100);
        assert_eq!(s.volume_size.source, Source::Flag("--volume-size"));
        let hp: BTreeMap<&str, &str> = s
            .hyperparameters
            .iter()
            .map(|(k, v)| (k.as_str(), v.value.as_str()))
            .collect();
        assert_eq!(
            hp,
            BTreeMap::from([("epochs", "80"), ("learning_rate", "0.0001")]),
            "the job's map, with the flag's key over it; the file's keys are not mixed in"
        );
        let tags: Vec<&str> = s.tags.keys().map(String::as_str).collect();
        assert_eq!(tags, ["project", "run"]);
        assert_eq!(s.channels["train"].value, "s3://data/train/");
        assert!(s.spot.value);
        assert_eq!(s.max_wait.as_ref().unwrap().value, 10800);
        assert_eq!(s.max_run.value, 7200);
        assert!(
            validate_settings(&s).is_empty(),
            "{:?}",
            validate_settings(&s)
        );
    }
}
