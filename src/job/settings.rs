//! Every setting of `sagetrain train`, declared once.
//!
//! One entry per setting gives its name (the `sagetrain.toml` key and the `sagetrain config`
//! row), its kind, its flag (clap's attributes, under the entry's help heading), its environment
//! variables, whether the file may set it, its default, an example, and how `train --from JOB`
//! reads it back from `DescribeTrainingJob` (or why it does not). The flags of `train`, the file
//! check, the layering with sources, the rows of `sagetrain config`, `--from` and the commented
//! examples of `sagetrain init` all follow from the list below.
//!
//! Where a setting goes in the CreateTrainingJob request is not here but in
//! [`crate::job::request::build_request`], and its rule in [`crate::job::spec::validate`]: both
//! destructure their input without `..`, so a setting added here is a compile error there until
//! it is placed and checked. Adding a setting is one entry here, its rule, and its place.

use crate::aws::connection::{Connection, ConnectionArgs};
use crate::config::layer::{
    declare, EntryProblem, FromJob, Int, List, NoSwitch, OneOrMore, Secs, Switch, Text,
};
use crate::config::{LoadedFile, Source, Val, Violation};
use crate::error::{Error, Result};
use aws_sdk_sagemaker::operation::describe_training_job::DescribeTrainingJobOutput;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

/// An earlier job as `train --from` reads it: its description and its tags.
#[derive(Debug, Clone)]
pub struct Described {
    pub job: DescribeTrainingJobOutput,
    pub tags: Vec<(String, String)>,
}

/// The settings of `train --local` only: no part of the CreateTrainingJob request.
pub const LOCAL_ONLY: &[&str] = &["local", "engine", "python", "local_sample"];

/// Help headings of `sagetrain train --help`, also the sections of `sagetrain init`.
pub const TRAINING: &str = "Training";
pub const RESOURCES: &str = "Resources";
pub const DATA: &str = "Data";
pub const JOB: &str = "Job";
pub const NETWORK: &str = "Network and encryption";

fn map_of(m: Option<&HashMap<String, String>>) -> Option<BTreeMap<String, String>> {
    m.map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
}

fn join_s3(prefix: &str, rest: &str) -> String {
    format!("{}/{}", prefix.trim_end_matches('/'), rest)
}

/// The default checkpoint location of a spot job: under its own name in its output path.
pub fn default_checkpoint(output_path: &str, job_name: &str) -> String {
    join_s3(output_path, &format!("{job_name}/checkpoints/"))
}

declare! {
    /// The flags of `train`, `config` and `doctor`: one per declared setting, plus the modes.
    args TrainArgs {
        /// Follow symbolic links in local data folders (by default they are skipped)
        #[arg(long, help_heading = DATA)]
        pub follow_symlinks: bool,
        /// Upload files that look like AWS credentials instead of refusing
        #[arg(long, help_heading = DATA)]
        pub allow_credentials_files: bool,
        /// Send this hyperparameter, environment variable or tag as is although it looks like a secret (repeatable)
        #[arg(long = "allow-plaintext", value_name = "NAME", help_heading = JOB)]
        pub allow_plaintext: Vec<String>,
        /// Resolve and check everything, print the CreateTrainingJob request as JSON, create nothing
        #[arg(long)]
        pub dry_run: bool,
        /// Make no network call; every value that needs a lookup must be given
        #[arg(long)]
        pub offline: bool,
    }
    /// Every `train` setting, layered, each value with its source. `None` is "not set"
    /// (a setting with a default is always set).
    settings TrainSettings {
        pub config_path: Option<PathBuf>,
        pub connection: Connection,
        /// `--allow-plaintext`: entries sent as they are although they look like secrets.
        pub allow_plaintext: Vec<String>,
        pub dry_run: bool,
        pub offline: bool,
    }
    job Described;
    file_section None;
    scalars {
        /// Execution role SageMaker assumes: ARN or role name [env: SAGEMAKER_ROLE]
        role: Option<String> = Text [long = "role", value_name = "ROLE"] in TRAINING {
            env: &["SAGEMAKER_ROLE"],
            example: "\"SageMakerExecutionRole-unet\"",
            from_job: FromJob::Copy { field: "RoleArn", read: |j| j.job.role_arn().map(str::to_string) },
        }
        /// Image: a full URI, or repo[:tag] / repo@sha256:... in your account's ECR [env: SAGETRAIN_IMAGE]
        image: Option<String> = Text [long = "image", value_name = "IMAGE"] in TRAINING {
            env: &["SAGETRAIN_IMAGE"],
            example: "\"unet-vessels:latest\"",
            from_job: FromJob::Copy {
                field: "AlgorithmSpecification.TrainingImage",
                read: |j| j.job.algorithm_specification()?.training_image().map(str::to_string),
            },
        }
        /// Do not pin the job to the image digest resolved from the tag
        pin_digest: bool = NoSwitch [long = "no-pin-digest"] in TRAINING {
            default: Some("true"),
            example: "false",
            from_job: FromJob::NotCopied("the job's image is already what it ran, pinned if it was"),
        }
        /// Instance type, or up to 5 in order of preference (TYPE,TYPE,...: SageMaker takes the
        /// first with capacity) [default: ml.g5.xlarge]
        instance_type: Option<String> = OneOrMore [long = "instance-type", value_name = "TYPE[,TYPE...]"] in RESOURCES {
            default: Some("ml.g5.xlarge"),
            example: "\"ml.p3.2xlarge\"",
            from_job: FromJob::Copy {
                field: "ResourceConfig.InstanceType",
                read: |j| {
                    let rc = j.job.resource_config()?;
                    let preferred: Vec<String> = rc
                        .instance_preferences()
                        .iter()
                        .filter_map(|p| p.instance_type().map(|t| t.as_str().to_string()))
                        .collect();
                    if preferred.is_empty() {
                        rc.instance_type().map(|t| vec![t.as_str().to_string()])
                    } else {
                        Some(preferred)
                    }
                },
            },
        }
        /// Number of instances [default: 1]
        instance_count: Option<String> = Int [long = "instance-count", value_name = "N"] in RESOURCES {
            default: Some("1"),
            example: "2",
            from_job: FromJob::Copy {
                field: "ResourceConfig.InstanceCount",
                read: |j| j.job.resource_config()?.instance_count().map(i64::from),
            },
        }
        /// Volume size in GB [default: 30]
        volume_size: Option<String> = Int [long = "volume-size", value_name = "GB"] in RESOURCES {
            default: Some("30"),
            example: "50",
            from_job: FromJob::Copy {
                field: "ResourceConfig.VolumeSizeInGB",
                read: |j| j.job.resource_config()?.volume_size_in_gb().map(i64::from),
            },
        }
        /// Longest the job may run: 90m, 24h, 3600 [default: 24h]
        max_run: Option<String> = Secs [long = "max-run", value_name = "DURATION"] in RESOURCES {
            default: Some("24h"),
            example: "\"12h\"",
            from_job: FromJob::Copy {
                field: "StoppingCondition.MaxRuntimeInSeconds",
                read: |j| j.job.stopping_condition()?.max_runtime_in_seconds().map(|v| v.max(0) as u64),
            },
        }
        /// Use managed spot training
        spot: bool = Switch [long = "spot"] in RESOURCES {
            default: Some("false"),
            example: "true",
            from_job: FromJob::Copy {
                field: "EnableManagedSpotTraining",
                read: |j| Some(j.job.enable_managed_spot_training().unwrap_or(false)),
            },
        }
        /// Longest to wait for spot capacity plus run time (spot only; >= --max-run)
        /// Refuse the job when its worst case (every instance for the whole max run, at the
        /// on-demand price) is above this many US dollars
        max_cost: Option<String> = Text [long = "max-cost", value_name = "USD"] in RESOURCES {
            example: "\"50\"",
            from_job: FromJob::NotCopied("a budget belongs to this submit, not to the job it copies"),
        }
        /// How long the job may wait for capacity before it gives up (30m to 28 days)
        max_pending: Option<String> = Secs [long = "max-pending", value_name = "DURATION"] in RESOURCES {
            example: "\"2h\"",
            from_job: FromJob::Copy {
                field: "StoppingCondition.MaxPendingTimeInSeconds",
                read: |j| j.job.stopping_condition()?.max_pending_time_in_seconds().map(|v| v.max(0) as u64),
            },
        }
        max_wait: Option<String> = Secs [long = "max-wait", value_name = "DURATION"] in RESOURCES {
            example: "\"36h\"",
            from_job: FromJob::Copy {
                field: "StoppingCondition.MaxWaitTimeInSeconds",
                read: |j| {
                    let on_spot = j.job.enable_managed_spot_training().unwrap_or(false);
                    let w = j.job.stopping_condition()?.max_wait_time_in_seconds()?;
                    on_spot.then_some(w.max(0) as u64)
                },
            },
        }
        /// Where the model goes [default: s3://sagemaker-REGION-ACCOUNT/sagetrain/]
        output_path: Option<String> = Text [long = "output-path", value_name = "S3URI"] in DATA {
            example: "\"s3://sagemaker-REGION-ACCOUNT/sagetrain/\"",
            from_job: FromJob::Copy {
                field: "OutputDataConfig.S3OutputPath",
                read: |j| j.job.output_data_config()?.s3_output_path().map(str::to_string),
            },
        }
        /// Where checkpoints are synced (spot resume)
        checkpoint_s3: Option<String> = Text [long = "checkpoint-s3", value_name = "S3URI"] in DATA {
            example: "\"s3://sagemaker-REGION-ACCOUNT/sagetrain/checkpoints/\"",
            // The old job's default location (under its own name) is not copied: the new job
            // gets its own, rather than resuming from the old job's checkpoints.
            from_job: FromJob::Copy {
                field: "CheckpointConfig.S3Uri",
                read: |j| {
                    let uri = j.job.checkpoint_config()?.s3_uri()?;
                    let job_name = j.job.training_job_name().unwrap_or_default();
                    let default = j
                        .job
                        .output_data_config()
                        .and_then(|o| o.s3_output_path())
                        .map(|o| default_checkpoint(o, job_name));
                    (Some(uri) != default.as_deref()).then(|| uri.to_string())
                },
            },
        }
        /// Job name, used as is
        name: Option<String> = Text [long = "name", value_name = "NAME", conflicts_with = "base_name"] in JOB {
            in_file: false,
            example: "\"unet-vessels-1\"",
            from_job: FromJob::NotCopied("a new job needs a new name"),
        }
        /// Job name prefix, followed by a UTC timestamp [default: the image repository's name]
        base_name: Option<String> = Text [long = "base-name", value_name = "BASE"] in JOB {
            example: "\"unet-vessels\"",
            from_job: FromJob::NotCopied("the new name is generated from this project's base name"),
        }
        /// KMS key for the output and the volume
        kms_key: Option<String> = Text [long = "kms-key", value_name = "ID"] in NETWORK {
            example: "\"arn:aws:kms:REGION:ACCOUNT:key/KEY-ID\"",
            from_job: FromJob::Copy {
                field: "OutputDataConfig.KmsKeyId",
                read: |j| j.job.output_data_config()?.kms_key_id().map(str::to_string),
            },
        }
        /// Run the container without network access
        network_isolation: bool = Switch [long = "network-isolation"] in NETWORK {
            default: Some("false"),
            example: "true",
            from_job: FromJob::Copy {
                field: "EnableNetworkIsolation",
                read: |j| Some(j.job.enable_network_isolation().unwrap_or(false)),
            },
        }
        /// Let `sagetrain shell` reach the running container over AWS Systems Manager
        remote_debug: bool = Switch [long = "remote-debug"] in NETWORK {
            default: Some("false"),
            example: "true",
            from_job: FromJob::Copy {
                field: "RemoteDebugConfig.EnableRemoteDebug",
                read: |j| Some(crate::job::request::remote_debug_of(&j.job)),
            },
        }
        /// VPC subnet (repeatable)
        subnets: Vec<String> = List [long = "subnet", value_name = "ID"] in NETWORK {
            example: "[\"subnet-0123456789abcdef0\"]",
            from_job: FromJob::Copy {
                field: "VpcConfig.Subnets",
                read: |j| Some(j.job.vpc_config()?.subnets().to_vec()).filter(|v| !v.is_empty()),
            },
        }
        /// VPC security group (repeatable)
        security_groups: Vec<String> = List [long = "security-group", value_name = "ID"] in NETWORK {
            example: "[\"sg-0123456789abcdef0\"]",
            from_job: FromJob::Copy {
                field: "VpcConfig.SecurityGroupIds",
                read: |j| Some(j.job.vpc_config()?.security_group_ids().to_vec()).filter(|v| !v.is_empty()),
            },
        }
        /// Run the code in this folder inside the image (uploaded as the channel `code`) [env: SAGETRAIN_SOURCE]
        source: Option<String> = Text [long = "source", value_name = "DIR"] in TRAINING {
            env: &["SAGETRAIN_SOURCE"],
            example: "\"src\"",
            from_job: FromJob::Copy {
                field: "InputDataConfig.code",
                read: |j| crate::job::code::job_code_uri(&j.job),
            },
        }
        /// The script --source runs, relative to its folder [default: train.py]
        entry: Option<String> = Text [long = "entry", value_name = "FILE"] in TRAINING {
            default: Some("train.py"),
            example: "\"main.py\"",
            from_job: FromJob::Copy {
                field: "AlgorithmSpecification.ContainerArguments",
                read: |j| crate::job::code::job_entry(&j.job),
            },
        }
        /// Keep the instances this long after the job for the next one (warm pool): 30m, 1h (at most 6h)
        keep_alive: Option<String> = Secs [long = "keep-alive", value_name = "DURATION"] in RESOURCES {
            example: "\"30m\"",
            from_job: FromJob::Copy {
                field: "ResourceConfig.KeepAlivePeriodInSeconds",
                read: |j| {
                    let k = j.job.resource_config()?.keep_alive_period_in_seconds()?;
                    (k > 0).then_some(k as u64)
                },
            },
        }
        /// SageMaker's own retries of the job after an internal error (1-30)
        retries: Option<String> = Int [long = "retries", value_name = "N"] in RESOURCES {
            example: "3",
            from_job: FromJob::Copy {
                field: "RetryStrategy.MaximumRetryAttempts",
                read: |j| j.job.retry_strategy()?.maximum_retry_attempts().map(i64::from),
            },
        }
        /// How channels reach the container: file, fastfile or pipe [default: file]
        input_mode: Option<String> = Text [long = "input-mode", value_name = "MODE"] in DATA {
            example: "\"fastfile\"",
            from_job: FromJob::Copy {
                field: "AlgorithmSpecification.TrainingInputMode",
                read: |j| {
                    let m = j.job.algorithm_specification()?.training_input_mode()?.as_str();
                    (m != "File").then(|| m.to_string())
                },
            },
        }
        /// Run the job on this machine instead of creating it: in a container with the job's
        /// image (`--local`, `--local=container`) or with this machine's python (`--local=host`)
        local: Option<String> = Text [long = "local", value_name = "MODE", num_args = 0..=1, require_equals = true, default_missing_value = "container"] in TRAINING {
            in_file: false,
            example: "\"container\"",
            from_job: FromJob::NotCopied("where a run happens is chosen by this command, not copied from a job"),
        }
        /// The container engine of --local: docker or podman [default: the first on PATH] [env: SAGETRAIN_ENGINE]
        engine: Option<String> = Text [long = "engine", value_name = "ENGINE"] in TRAINING {
            env: &["SAGETRAIN_ENGINE"],
            example: "\"podman\"",
            from_job: FromJob::NotCopied("the engine is this machine's, no part of a job"),
        }
        /// The python of --local=host [default: python3 on PATH] [env: SAGETRAIN_PYTHON]
        python: Option<String> = Text [long = "python", value_name = "PATH"] in TRAINING {
            env: &["SAGETRAIN_PYTHON"],
            example: "\".venv/bin/python\"",
            from_job: FromJob::NotCopied("the python is this machine's, no part of a job"),
        }
        /// --local: only the first N objects of each S3 channel, for a quick try
        local_sample: Option<String> = Int [long = "local-sample", value_name = "N"] in DATA {
            in_file: false,
            example: "20",
            from_job: FromJob::NotCopied("a sample is chosen by this command, not copied from a job"),
        }
    }
    maps {
        /// A hyperparameter, sent as its plain string (repeatable)
        hyperparameters = Text [long = "hyperparameter", short = 'H', value_name = "KEY=VALUE"] in TRAINING {
            scalars: true,
            example: &[("epochs", "50"), ("batch_size", "8"), ("learning_rate", "0.0001")],
            from_job: FromJob::Copy { field: "HyperParameters", read: |j| map_of(j.job.hyper_parameters()) },
        }
        /// An input channel: an S3 prefix, or a local folder uploaded first (repeatable)
        channels = Text [long = "channel", value_name = "NAME=S3URI|DIR"] in DATA {
            scalars: false,
            example: &[
                ("train", "\"s3://sagemaker-REGION-ACCOUNT/sagetrain/data/train/\""),
                ("validation", "\"s3://sagemaker-REGION-ACCOUNT/sagetrain/data/validation/\""),
            ],
            table: Some(("uri", &["input_mode"])),
            from_job: FromJob::Copy {
                field: "InputDataConfig",
                read: |j| {
                    Some(
                        crate::job::code::job_data_channels(&j.job)
                            .filter_map(|c| {
                                let s3 = c.data_source()?.s3_data_source()?;
                                Some((c.channel_name()?.to_string(), s3.s3_uri()?.to_string()))
                            })
                            .collect(),
                    )
                },
            },
        }
        /// A container environment variable (repeatable)
        environment = Text [long = "env", value_name = "KEY=VALUE"] in JOB {
            scalars: false,
            example: &[("OMP_NUM_THREADS", "\"4\"")],
            // The ARNs of `--secret` are read back as secrets, not as variables.
            from_job: FromJob::Copy {
                field: "Environment",
                read: |j| {
                    map_of(j.job.environment())
                        .map(|m| m.into_iter().filter(|(k, _)| crate::job::secret::name_of_env(k).is_none()).collect())
                },
            },
        }
        /// A secret the job reads from AWS Secrets Manager, never sent as its value:
        /// NAME=SECRET_ID, a secret name or ARN with an optional `:json-key` (repeatable)
        secrets = Text [long = "secret", value_name = "NAME=SECRET_ID"] in JOB {
            scalars: false,
            example: &[("WANDB_API_KEY", "\"sagetrain/wandb\"")],
            from_job: FromJob::Copy {
                field: "Environment",
                read: |j| {
                    map_of(j.job.environment()).map(|m| {
                        m.into_iter()
                            .filter_map(|(k, v)| Some((crate::job::secret::name_of_env(&k)?.to_string(), v)))
                            .collect()
                    })
                },
            },
        }
        /// A job tag (repeatable)
        tags = Text [long = "tag", value_name = "KEY=VALUE"] in JOB {
            scalars: false,
            example: &[("project", "\"vessel-segmentation\"")],
            // Tags under `aws:` and `sagetrain:` belong to AWS and to one submission.
            from_job: FromJob::Copy {
                field: "Tags",
                read: |j| {
                    Some(
                        j.tags
                            .iter()
                            .filter(|(k, _)| {
                                let k = k.to_ascii_lowercase();
                                !k.starts_with("aws:") && !k.starts_with("sagetrain:")
                            })
                            .cloned()
                            .collect(),
                    )
                },
            },
        }
        /// A metric parsed from the logs (repeatable)
        metrics = Text [long = "metric", value_name = "NAME=REGEX"] in TRAINING {
            scalars: false,
            example: &[("val_dice", "\"val_dice=([0-9.eE+-]+)\"")],
            from_job: FromJob::Copy {
                field: "AlgorithmSpecification.MetricDefinitions",
                read: |j| {
                    Some(
                        j.job
                            .algorithm_specification()?
                            .metric_definitions()
                            .iter()
                            .map(|m| {
                                (
                                    m.name().unwrap_or_default().to_string(),
                                    m.regex().unwrap_or_default().to_string(),
                                )
                            })
                            .collect(),
                    )
                },
            },
        }
        /// A channel's input mode, over --input-mode: file, fastfile or pipe (repeatable)
        channel_input_modes = Text [long = "channel-input-mode", value_name = "NAME=MODE"] in DATA {
            example: &[("train", "\"fastfile\"")],
            in_tables_of: Some(("channels", "input_mode")),
            from_job: FromJob::Copy {
                field: "InputDataConfig.InputMode",
                read: |j| {
                    Some(
                        crate::job::code::job_data_channels(&j.job)
                            .filter_map(|c| {
                                Some((
                                    c.channel_name()?.to_string(),
                                    c.input_mode()?.as_str().to_string(),
                                ))
                            })
                            .collect(),
                    )
                },
            },
        }
    }
    shorthands {
        /// The `epochs` hyperparameter
        epochs => hyperparameters["epochs"] [long = "epochs", value_name = "N"] in TRAINING;
        /// Shorthand for --channel train=S3URI|DIR
        train => channels["train"] [long = "train", value_name = "S3URI|DIR"] in DATA;
        /// Shorthand for --channel validation=S3URI|DIR
        validation => channels["validation"] [long = "validation", value_name = "S3URI|DIR"] in DATA;
    }
}

impl TrainSettings {
    /// Layer flags over environment over file over defaults: the connection, then every
    /// declared setting. No network.
    pub fn layer(
        connection: &ConnectionArgs,
        args: &TrainArgs,
        env: &dyn Fn(&str) -> Option<String>,
        file: Option<&LoadedFile>,
    ) -> std::result::Result<TrainSettings, Vec<Violation>> {
        let mut v = Vec::new();
        let connection = Connection::layered(connection, env, file).unwrap_or_else(|e| {
            v.extend(e);
            Connection::default()
        });
        let mut s = TrainSettings {
            config_path: file.map(|f| f.path.clone()),
            connection,
            allow_plaintext: args.allow_plaintext.clone(),
            dry_run: args.dry_run,
            offline: args.offline,
            ..Default::default()
        };
        s.layer_declared(args, env, file, &mut v);
        if v.is_empty() {
            Ok(s)
        } else {
            Err(v)
        }
    }

    /// Every effective setting as (name, value, source) rows, for `sagetrain config` and `-v`.
    pub fn rows(&self) -> Vec<crate::config::layer::Row> {
        let mut rows = self.connection.declared_rows();
        rows.extend(self.declared_rows());
        rows
    }
}

/// Check a config file against the declarations of every group it may hold (the connection
/// and `train` at the top level, `tune` in its `[tune]` section): unknown keys and wrong types
/// are errors naming the file, the line and the key.
pub fn check_file(f: &LoadedFile) -> Result<()> {
    let mut problems = Vec::new();
    for (key, value) in &f.table {
        let checked = crate::aws::connection::check_key(key, value)
            .or_else(|| check_key(key, value))
            .or_else(|| {
                (key == crate::job::tune::settings::SECTION).then(|| {
                    crate::job::tune::settings::check_section(value).map_err(|r| vec![(None, r)])
                })
            })
            .unwrap_or_else(|| {
                Err(vec![(
                    None,
                    format!(
                        "unknown key `{key}`; the README's configuration reference lists every key"
                    ),
                )])
            });
        if let Err(p) = checked {
            // A map's first problem, as one line.
            let (entry, rule): &EntryProblem = &p[0];
            let rule = match entry {
                Some(e) => format!("{e}: {rule}"),
                None => rule.clone(),
            };
            problems.push(format!("{}: `{key}` {rule}", f.location(None, key)));
        }
    }
    if problems.is_empty() {
        return Ok(());
    }
    let mut e = Error::usage(problems.remove(0)).with_hint(
        "fix the file; the README's configuration reference lists every key and its type",
    );
    e.details = problems;
    Err(e)
}

/// A config file, read and checked against the declarations.
pub fn load_file(path: &std::path::Path) -> Result<LoadedFile> {
    let f = crate::config::load_file(path)?;
    check_file(&f)?;
    Ok(f)
}

/// Is this value from a flag?
pub fn is_flag(v: &Option<Val<impl Sized>>) -> bool {
    v.as_ref()
        .is_some_and(|v| matches!(v.source, Source::Flag(_)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::layer::Kind;
    use std::path::Path;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| m.get(k).cloned()
    }

    fn global() -> ConnectionArgs {
        ConnectionArgs::default()
    }

    fn file(text: &str) -> LoadedFile {
        let f = LoadedFile::parse(Path::new("/p/sagetrain.toml"), text).unwrap();
        check_file(&f).unwrap();
        f
    }

    fn val<T: Clone>(v: &Option<Val<T>>) -> T {
        v.as_ref().unwrap().value.clone()
    }

    #[test]
    fn flags_beat_env_beat_file_beat_defaults() {
        let f = file("role = \"FileRole\"\nimage = \"file-img\"\ninstance_type = \"ml.p3.2xlarge\"\nregion = \"eu-west-1\"\n");
        let env = env_of(&[
            ("SAGEMAKER_ROLE", "EnvRole"),
            ("SAGETRAIN_IMAGE", "env-img"),
        ]);
        let args = TrainArgs {
            image: Some("flag-img".into()),
            ..Default::default()
        };
        let s = TrainSettings::layer(&global(), &args, &env, Some(&f)).unwrap();
        assert_eq!(s.image.as_ref().unwrap().value, "flag-img");
        assert_eq!(s.image.as_ref().unwrap().source, Source::Flag("--image"));
        assert_eq!(s.role.as_ref().unwrap().value, "EnvRole");
        assert_eq!(
            s.role.as_ref().unwrap().source,
            Source::Env("SAGEMAKER_ROLE")
        );
        assert_eq!(val(&s.instance_type), ["ml.p3.2xlarge"]);
        assert!(matches!(
            s.instance_type.as_ref().unwrap().source,
            Source::File { .. }
        ));
        assert_eq!(val(&s.connection.region), "eu-west-1");
        assert_eq!(val(&s.instance_count), 1);
        assert_eq!(s.instance_count.as_ref().unwrap().source, Source::Default);
        assert_eq!(val(&s.max_run), 86400);
        assert!(val(&s.pin_digest));
    }

    #[test]
    fn env_region_beats_file_region() {
        let f = file("region = \"eu-west-1\"\n");
        let env = env_of(&[("AWS_REGION", "us-west-2")]);
        let s = TrainSettings::layer(&global(), &TrainArgs::default(), &env, Some(&f)).unwrap();
        assert_eq!(val(&s.connection.region), "us-west-2");
    }

    #[test]
    fn toml_scalars_become_plain_strings_and_flags_override_per_key() {
        let f = file("[hyperparameters]\nepochs = 10\nlearning_rate = 0.0001\naugment = true\noptimizer = \"adam\"\n");
        let args = TrainArgs {
            epochs: Some("50".into()),
            hyperparameters: vec!["batch_size=8".into()],
            ..Default::default()
        };
        let s = TrainSettings::layer(&global(), &args, &env_of(&[]), Some(&f)).unwrap();
        let hp: BTreeMap<_, _> = s
            .hyperparameters
            .iter()
            .map(|(k, v)| (k.as_str(), v.value.as_str()))
            .collect();
        assert_eq!(
            hp,
            BTreeMap::from([
                ("augment", "true"),
                ("batch_size", "8"),
                ("epochs", "50"),
                ("learning_rate", "0.0001"),
                ("optimizer", "adam"),
            ])
        );
        assert_eq!(s.hyperparameters["epochs"].source, Source::Flag("--epochs"));
    }

    #[test]
    fn a_channel_may_be_a_table_with_its_input_mode() {
        let f = file(
            "[channels]\ntrain = { uri = \"s3://b-1/train/\", input_mode = \"FastFile\" }\nvalidation = \"s3://b-1/val/\"\n",
        );
        let s =
            TrainSettings::layer(&global(), &TrainArgs::default(), &env_of(&[]), Some(&f)).unwrap();
        assert_eq!(s.channels["train"].value, "s3://b-1/train/");
        assert_eq!(s.channels["validation"].value, "s3://b-1/val/");
        assert_eq!(s.channel_input_modes.len(), 1);
        assert_eq!(s.channel_input_modes["train"].value, "FastFile");
        assert_eq!(
            s.channel_input_modes["train"].source.name_for(None),
            "`channels.train` in /p/sagetrain.toml"
        );
        // A flag overrides the file's mode of one channel.
        let args = TrainArgs {
            channel_input_modes: vec!["train=pipe".into()],
            ..Default::default()
        };
        let s = TrainSettings::layer(&global(), &args, &env_of(&[]), Some(&f)).unwrap();
        assert_eq!(s.channel_input_modes["train"].value, "pipe");

        let check = |text: &str| {
            check_file(&LoadedFile::parse(Path::new("/p/sagetrain.toml"), text).unwrap())
        };
        let e = check("[channels]\ntrain = { uri = \"s3://b-1/t/\", mode = \"x\" }\n").unwrap_err();
        assert!(
            e.message
                .contains("`mode` is not a field of an entry (it may have uri, input_mode)"),
            "{}",
            e.message
        );
        let e = check("[channels]\ntrain = { input_mode = \"pipe\" }\n").unwrap_err();
        assert!(
            e.message.contains("a table entry needs `uri`"),
            "{}",
            e.message
        );
        let e = check("[channel_input_modes]\ntrain = \"pipe\"\n").unwrap_err();
        assert!(
            e.message
                .contains("give `input_mode` in an entry of [channels]"),
            "{}",
            e.message
        );
    }

    #[test]
    fn bad_values_are_collected_together() {
        let args = TrainArgs {
            instance_count: Some("two".into()),
            max_run: Some("forever".into()),
            tags: vec!["novalue".into()],
            ..Default::default()
        };
        let v = TrainSettings::layer(&global(), &args, &env_of(&[]), None).unwrap_err();
        let text: Vec<String> = v.iter().map(|v| v.to_string()).collect();
        assert_eq!(v.len(), 3, "{text:?}");
        assert!(text[0].starts_with("--instance-count"));
        assert!(text[1].starts_with("--max-run"));
        assert!(text[2].starts_with("--tag"));
    }

    #[test]
    fn unknown_keys_and_wrong_types_name_file_line_and_key() {
        let p = PathBuf::from("/p/sagetrain.toml");
        let parse_file = |p: &Path, text: &str| check_file(&LoadedFile::parse(p, text).unwrap());
        let e = parse_file(&p, "region = \"x\"\ninstance_cont = 2\n").unwrap_err();
        assert!(e.message.contains("/p/sagetrain.toml:2"), "{}", e.message);
        assert!(e.message.contains("instance_cont"), "{}", e.message);
        let e = parse_file(&p, "\ninstance_count = \"two\"\n").unwrap_err();
        assert!(e.message.contains("/p/sagetrain.toml:2"), "{}", e.message);
        assert_eq!(e.kind, crate::error::Kind::Usage);
    }

    #[test]
    fn every_default_and_example_is_a_valid_value_of_its_kind() {
        // A file with every example parses and passes the file check.
        let mut text = String::new();
        for m in scalars().iter().filter(|m| m.in_file) {
            text.push_str(&format!("{} = {}\n", m.key, m.example));
        }
        for m in maps().iter().filter(|m| m.in_tables_of.is_none()) {
            text.push_str(&format!("[{}]\n", m.key));
            for (k, v) in m.example {
                // A channel's input mode is a field of its entry.
                match maps()
                    .iter()
                    .find(|n| n.in_tables_of.is_some_and(|(s, _)| s == m.key))
                {
                    Some(n) => {
                        let (_, field) = n.in_tables_of.unwrap();
                        let mode = n.example[0].1;
                        text.push_str(&format!("{k} = {{ uri = {v}, {field} = {mode} }}\n"));
                    }
                    None => text.push_str(&format!("{k} = {v}\n")),
                }
            }
        }
        let f = file(&text);
        let s =
            TrainSettings::layer(&global(), &TrainArgs::default(), &env_of(&[]), Some(&f)).unwrap();
        for row in s.rows() {
            let in_file = scalars()
                .iter()
                .find(|m| m.key == row.name)
                .is_none_or(|m| m.in_file);
            if row.name != "profile"
                && row.name != "region"
                && row.name != "endpoint_url"
                && row.name != "name"
                && in_file
            {
                assert!(
                    matches!(row.source, Some(Source::File { .. })),
                    "{} is not read from the file: {row:?}",
                    row.name
                );
            }
        }
        for m in scalars() {
            if let Some(d) = m.default {
                assert_ne!(
                    m.example.trim_matches('"'),
                    d,
                    "the example of {} is its default: the tests could not see it",
                    m.key
                );
                let ok = match m.key {
                    "instance_count" | "volume_size" | "retries" => Int::from_text(d).is_ok(),
                    "max_run" => Secs::from_text(d).is_ok(),
                    "spot" | "network_isolation" | "remote_debug" | "pin_digest" => {
                        Switch::from_text(d).is_ok()
                    }
                    _ => true,
                };
                assert!(ok, "default of {} does not parse: {d}", m.key);
            }
        }
    }

    /// `--from`: flags > the job > environment > file (the tests of `from_job` read a job).
    #[test]
    fn flags_beat_the_job_which_beats_env_and_file() {
        let path = PathBuf::from("/p/sagetrain.toml");
        let file = LoadedFile::parse(
            &path,
            "image = \"file-image\"\ninstance_type = \"ml.m5.xlarge\"\nkms_key = \"alias/x\"\n\
             [hyperparameters]\nepochs = 10\naugment = true\n[tags]\nteam = \"retina\"\n",
        )
        .unwrap();
        let env = |k: &str| (k == "SAGEMAKER_ROLE").then(|| "EnvRole".to_string());
        let args = TrainArgs {
            epochs: Some("80".into()),
            volume_size: Some("100".into()),
            tags: vec!["run=2".into()],
            ..Default::default()
        };
        let mut s = TrainSettings::layer(&global(), &args, &env, Some(&file)).unwrap();
        let d = Described {
            job: crate::job::from_job::tests::described(),
            tags: vec![("project".into(), "vessels".into())],
        };
        assert_eq!(
            crate::job::from_job::apply(&mut s, "old-job", &d),
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
            val(&s.image),
            "111122223333.dkr.ecr.eu-west-1.amazonaws.com/unet@sha256:abababababababababababababababababababababababababababababababab"
        );
        assert_eq!(
            val(&s.role),
            "arn:aws:iam::111122223333:role/service-role/SageMakerRole"
        );
        assert_eq!(
            s.role.as_ref().unwrap().source.to_string(),
            "lookup: --from old-job: RoleArn"
        );
        assert_eq!(val(&s.instance_type), ["ml.p3.2xlarge"]);
        assert_eq!(s.kms_key, None, "the job had no KMS key");
        // Flags beat the job.
        assert_eq!(val(&s.volume_size), 100);
        assert_eq!(
            s.volume_size.as_ref().unwrap().source,
            Source::Flag("--volume-size")
        );
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
        assert!(val(&s.spot));
        assert_eq!(val(&s.max_wait), 10800);
        assert_eq!(val(&s.max_run), 7200);
        assert!(
            crate::job::spec::validate_settings(&s).is_empty(),
            "{:?}",
            crate::job::spec::validate_settings(&s)
        );
    }

    /// What the emulator does not store (Environment) or replaces (MetricDefinitions) is read
    /// back by `--from` all the same: the end-to-end round trip cannot show these two.
    #[test]
    fn from_reads_back_environment_and_metrics() {
        let job = crate::job::from_job::tests::described_builder()
            .environment("MODE", "fast")
            .environment(
                "SAGETRAIN_SECRET_HF_TOKEN",
                "arn:aws:secretsmanager:eu-west-1:111122223333:secret:hf-AbCdEf",
            )
            .build();
        let d = Described { job, tags: vec![] };
        let mut s = TrainSettings::default();
        s.apply_job("old-job", &d);
        assert_eq!(s.environment["MODE"].value, "fast");
        // A secret's variable comes back as the secret, not as a variable.
        assert_eq!(s.environment.len(), 1);
        assert_eq!(
            s.secrets["HF_TOKEN"].value,
            "arn:aws:secretsmanager:eu-west-1:111122223333:secret:hf-AbCdEf"
        );
        assert_eq!(
            s.environment["MODE"].source.to_string(),
            "lookup: --from old-job: Environment.MODE"
        );
        assert_eq!(s.metrics["val_dice"].value, "val_dice=([0-9.]+)");
    }
}
