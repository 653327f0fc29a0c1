//! `train --local`: the same job on this machine. What SageMaker would hand the container is
//! laid out from the job's own CreateTrainingJob request (built by
//! [`crate::job::request::build_request`], as `--dry-run` prints it) in the project's
//! `.sagetrain/local/<job-name>/`, mounted at `/opt/ml`, and the image runs under a container
//! engine with the argument `train`.
//!
//! This file is pure: the rules of local runs, the contract files, the tree, the engine's
//! command line. [`run`] starts the processes, streams their output and packs the results.

pub mod ecr;
pub mod record;
pub mod run;

use crate::config::{Source, Val, Violation};
use crate::job::request::CreateTrainingJobRequest;
use crate::refs::{channel_location, ChannelLocation};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Under the project's state folder: one folder per local run.
pub const LOCAL_DIR: &str = "local";
/// Where SageMaker mounts the job's tree in the container.
pub const ML: &str = "/opt/ml";
/// The network interface `resourceconfig.json` names.
pub const INTERFACE: &str = "eth0";
/// Under the user's cache folder: the S3 channels of local runs.
pub const CACHE_DIR: &str = "channels";
/// The log of a run, in its folder.
pub const LOG_FILE: &str = "train.log";

/// Where a local run happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The job's image under a container engine (the default).
    Container,
    /// This machine's python, no container.
    Host,
}

/// `--local[=MODE]` and the settings of local runs, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Local {
    pub mode: Mode,
    /// `--engine`, `SAGETRAIN_ENGINE` or `engine` in sagetrain.toml; else the first on PATH.
    pub engine: Option<Val<String>>,
    /// `--python`, `SAGETRAIN_PYTHON` or `python` in sagetrain.toml (host mode); else `python3`.
    pub python: Option<Val<String>>,
    /// `--local-sample N`: only the first N objects of each S3 channel.
    pub sample: Option<u64>,
}

/// What [`check`] reads of the other settings.
pub struct Others<'a> {
    pub code: Option<&'a crate::job::spec::Code>,
    pub instance_count: Option<&'a Val<i64>>,
    pub cwd: &'a Path,
}

/// The settings of a local run as given.
pub struct Given<'a> {
    pub local: Option<&'a Val<String>>,
    pub engine: Option<&'a Val<String>>,
    pub python: Option<&'a Val<String>>,
    pub sample: Option<&'a Val<i64>>,
}

/// The engines a local run can use.
pub const LOCAL_ENGINES: [&str; 2] = ["docker", "podman"];

/// The local folder of `--source`, when it is one.
pub fn code_folder(code: Option<&crate::job::spec::Code>, cwd: &Path) -> Option<PathBuf> {
    match channel_location(&code?.source, cwd) {
        Ok(ChannelLocation::Local(dir)) => Some(dir),
        _ => None,
    }
}

/// The rules of `--local` and the settings of local runs (called by
/// [`crate::job::spec::validate`]).
pub fn check(v: &mut Vec<Violation>, given: Given, o: Others) -> Option<Local> {
    let flag_only = |v: &mut Vec<Violation>, val: Option<(&Source, &str)>, rule: &str| {
        if let Some((source @ Source::Flag(_), _)) = val {
            v.push(Violation::new(source.name_for(None), rule.to_string()));
        }
    };
    let Some(local) = given.local else {
        // These settings matter only to a local run (`image push` reads SAGETRAIN_ENGINE too,
        // and may use another engine); given as flags to a cloud job they are a mistake.
        flag_only(
            v,
            given.sample.map(|s| (&s.source, "")),
            "samples the S3 channels of a local run only: add --local, or drop it",
        );
        flag_only(
            v,
            given.python.map(|p| (&p.source, p.value.as_str())),
            "is the python of a host-mode local run only: add --local=host, or drop it",
        );
        return None;
    };
    if let Some(e) = given.engine {
        if !LOCAL_ENGINES.contains(&e.value.as_str()) {
            v.push(Violation::new(
                e.source.name_for(None),
                format!(
                    "`{}` is not an engine a local run can use: docker or podman",
                    e.value
                ),
            ));
        }
    }
    let what = local.source.name_for(None);
    let mode = match local.value.as_str() {
        "container" => Mode::Container,
        "host" => Mode::Host,
        other => {
            v.push(Violation::new(
                &what,
                format!("`{other}` is not a local mode: use --local (a container) or --local=host"),
            ));
            return None;
        }
    };
    if let Some(s) = given.sample.filter(|s| s.value < 1) {
        v.push(Violation::new(
            s.source.name_for(None),
            "must be at least 1 (the number of objects taken from each S3 channel)",
        ));
    }
    if mode == Mode::Host {
        if code_folder(o.code, o.cwd).is_none() {
            v.push(Violation::new(
                &what,
                match o.code {
                    None => "host mode runs the entry script of --source with this machine's python: give --source DIR (and --entry FILE), or run the image with --local".to_string(),
                    Some(_) => "host mode runs a local code folder: give --source DIR (a folder here, not an S3 prefix), or run the image with --local".to_string(),
                },
            ));
        }
        if let Some(c) = o.instance_count.filter(|c| c.value > 1) {
            v.push(Violation::new(
                c.source.name_for(None),
                format!(
                    "host mode runs one host, not {}: run the hosts in containers with --local (algo-1..algo-{} on this machine's network)",
                    c.value, c.value
                ),
            ));
        }
    } else {
        flag_only(
            v,
            given.python.map(|p| (&p.source, p.value.as_str())),
            "is the python of host mode, and --local runs the image's own: add --local=host, or drop it",
        );
    }
    Some(Local {
        mode,
        engine: given.engine.cloned(),
        python: given.python.cloned(),
        sample: given.sample.map(|s| s.value.max(1) as u64),
    })
}

/// The job's values that a local run replaces: the request is built with these where the cloud
/// would look one up, and never sent.
pub mod placeholder {
    pub const REGION: &str = "local";
    pub const ROLE_ARN: &str = "arn:aws:iam::000000000000:role/sagetrain-local";
    pub const OUTPUT_PATH: &str = "s3://sagetrain-local/output/";
    /// The image of a host-mode run without one (none runs).
    pub const HOST_IMAGE: &str = "local-host:none";
    /// A local channel folder's place in the request.
    pub fn channel_uri(name: &str) -> String {
        format!("s3://sagetrain-local/channels/{name}/")
    }
}

/// One host of a local run: its tree and the process that runs it (the engine running its
/// container, or host mode's python).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    /// `algo-1`, `algo-2`, ...
    pub name: String,
    /// Its `/opt/ml` on this machine.
    pub tree: PathBuf,
    /// The contract files, relative to the tree, and their contents.
    pub files: Vec<(PathBuf, String)>,
    /// The folders to make, relative to the tree.
    pub dirs: Vec<PathBuf>,
    /// Host mode: symbolic links to make, relative to the tree, and their targets (the channel
    /// folders, used in place).
    pub links: Vec<(PathBuf, PathBuf)>,
    /// The program: the engine's name in container mode, the python in host mode.
    pub program: String,
    /// Its arguments.
    pub argv: Vec<String>,
    /// Variables set for the process (host mode's toolkit environment and `--env`), beside
    /// this machine's own.
    pub env: Vec<(String, String)>,
    /// The folder it runs in (host mode: the code folder).
    pub cwd: Option<PathBuf>,
    /// Container mode: the container's name (for `ENGINE kill`).
    pub container: Option<String>,
}

/// What the edge found on this machine.
#[derive(Debug, Clone)]
pub struct Machine {
    /// `docker` or `podman` (container mode).
    pub engine: String,
    /// The NVIDIA GPUs of the host.
    pub gpus: usize,
    /// Its CPUs.
    pub cpus: usize,
}

/// The request's environment without the variables of `--secret` (a local run passes each
/// secret's value itself, as the variable the job would export).
fn plain_environment(req: &CreateTrainingJobRequest) -> impl Iterator<Item = (&String, &String)> {
    req.environment
        .iter()
        .filter(|(k, _)| crate::job::secret::name_of_env(k).is_none())
}

/// `hyperparameters.json`: every value a string, as SageMaker writes it.
pub fn hyperparameters_json(req: &CreateTrainingJobRequest) -> Value {
    Value::Object(
        req.hyper_parameters
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect(),
    )
}

/// `inputdataconfig.json`: each channel's input mode and distribution.
pub fn input_data_config_json(req: &CreateTrainingJobRequest) -> Value {
    Value::Object(
        req.input_data_config
            .iter()
            .map(|c| {
                let mode = c
                    .input_mode
                    .clone()
                    .unwrap_or_else(|| req.algorithm_specification.training_input_mode.clone());
                (
                    c.channel_name.clone(),
                    json!({
                        "TrainingInputMode": mode,
                        "S3DistributionType": c.data_source.s3_data_source.s3_data_distribution_type,
                        "RecordWrapperType": "None",
                    }),
                )
            })
            .collect(),
    )
}

/// `resourceconfig.json` of `current` among `hosts`.
pub fn resource_config_json(current: &str, hosts: &[String], instance_type: &str) -> Value {
    json!({
        "current_host": current,
        "current_instance_type": instance_type,
        "current_group_name": "homogeneousCluster",
        "hosts": hosts,
        "instance_groups": [{
            "instance_group_name": "homogeneousCluster",
            "instance_type": instance_type,
            "hosts": hosts,
        }],
        "network_interface_name": INTERFACE,
    })
}

/// The host names of a run of `count` instances.
pub fn host_names(count: i32) -> Vec<String> {
    (1..=count.max(1)).map(|i| format!("algo-{i}")).collect()
}

/// The engine's GPU arguments when the host has GPUs.
pub fn gpu_args(engine: &str, gpus: bool) -> Vec<String> {
    match (gpus, engine) {
        (false, _) => vec![],
        (true, "podman") => vec!["--device".into(), "nvidia.com/gpu=all".into()],
        (true, _) => vec!["--gpus".into(), "all".into()],
    }
}

fn pretty(v: &Value) -> String {
    let mut t = serde_json::to_string_pretty(v).unwrap_or_default();
    t.push('\n');
    t
}

/// The container run of `req` in `run_dir`: each host's tree, contract files and engine
/// command line. `channels` are the local folders of the channels (mounted read-only in
/// place); `secrets` the names of the variables whose values the engine passes on from its
/// own environment (never on its command line).
pub fn plan(
    req: &CreateTrainingJobRequest,
    run_dir: &Path,
    image: &str,
    channels: &BTreeMap<String, PathBuf>,
    secrets: &[String],
    machine: &Machine,
) -> Vec<Host> {
    let names = host_names(req.resource_config.instance_count);
    let instance_type = req
        .resource_config
        .types()
        .first()
        .copied()
        .unwrap_or("local");
    names
        .iter()
        .map(|name| {
            // One host's tree is the run folder; several hosts each have their own in it.
            let tree = if names.len() == 1 {
                run_dir.to_path_buf()
            } else {
                run_dir.join(name)
            };
            let (mut dirs, files) = tree_of(req, name, &names, instance_type);
            dirs.extend(
                req.input_data_config
                    .iter()
                    .map(|c| Path::new("input/data").join(&c.channel_name)),
            );
            let checkpoint = req.checkpoint_config.as_ref().map(|c| c.local_path.clone());
            let container = format!("{}-{name}", req.training_job_name);
            let mut argv: Vec<String> = vec![
                "run".into(),
                "--rm".into(),
                "--name".into(),
                container.clone(),
            ];
            if req.enable_network_isolation {
                argv.push("--network=none".into());
            } else if names.len() > 1 {
                argv.push("--network=host".into());
                for other in &names {
                    argv.push(format!("--add-host={other}:127.0.0.1"));
                }
            }
            argv.extend(gpu_args(&machine.engine, machine.gpus > 0));
            argv.extend(["-v".into(), format!("{}:{ML}", tree.display())]);
            for c in &req.input_data_config {
                if let Some(dir) = channels.get(&c.channel_name) {
                    argv.extend([
                        "-v".into(),
                        format!("{}:{ML}/input/data/{}:ro", dir.display(), c.channel_name),
                    ]);
                }
            }
            if let Some(path) = checkpoint.filter(|p| p != &format!("{ML}/checkpoints")) {
                argv.extend([
                    "-v".into(),
                    format!("{}:{path}", tree.join("checkpoints").display()),
                ]);
            }
            for (k, v) in plain_environment(req) {
                argv.extend(["--env".into(), format!("{k}={v}")]);
            }
            for name in secrets {
                argv.extend(["--env".into(), name.clone()]);
            }
            match code_mode(req) {
                // Code mode: the cloud's launcher, from the tree (the code folder is mounted
                // read-only, so the launcher cannot be put beside the code).
                Some((shell, args)) => {
                    argv.extend(["--entrypoint".into(), shell, image.to_string()]);
                    argv.extend(args);
                }
                None => argv.extend([image.to_string(), "train".into()]),
            }
            Host {
                name: name.clone(),
                tree,
                files,
                dirs,
                links: vec![],
                program: machine.engine.clone(),
                argv,
                env: vec![],
                cwd: None,
                container: Some(container),
            }
        })
        .collect()
}

/// The folders and contract files of host `name`'s tree (without the channels).
fn tree_of(
    req: &CreateTrainingJobRequest,
    name: &str,
    names: &[String],
    instance_type: &str,
) -> (Vec<PathBuf>, Vec<(PathBuf, String)>) {
    let config = Path::new("input/config");
    let mut dirs: Vec<PathBuf> = ["model", "output/data", "input/config", "input/data"]
        .iter()
        .map(PathBuf::from)
        .collect();
    if req.checkpoint_config.is_some() {
        dirs.push("checkpoints".into());
    }
    let mut files = vec![
        (
            config.join("hyperparameters.json"),
            pretty(&hyperparameters_json(req)),
        ),
        (
            config.join("inputdataconfig.json"),
            pretty(&input_data_config_json(req)),
        ),
        (
            config.join("resourceconfig.json"),
            pretty(&resource_config_json(name, names, instance_type)),
        ),
    ];
    if code_mode(req).is_some() {
        files.push((
            PathBuf::from(crate::job::code::LAUNCHER_NAME),
            crate::job::code::LAUNCHER.to_string(),
        ));
    }
    (dirs, files)
}

/// The name of a channel's toolkit variable: `SM_CHANNEL_TRAIN` for `train`.
pub fn channel_var(channel: &str) -> String {
    format!("SM_CHANNEL_{}", var_part(channel))
}

fn var_part(name: &str) -> String {
    name.chars()
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' => c.to_ascii_uppercase(),
            _ => '_',
        })
        .collect()
}

/// A hyperparameter's value as the training toolkit decodes it: JSON when it parses, else
/// the string.
fn decoded(value: &str) -> Value {
    serde_json::from_str(value).unwrap_or_else(|_| Value::String(value.to_string()))
}

/// Host mode: the entry of the code folder run by `python` in that folder, with the training
/// toolkit's environment pointing into the tree in `run_dir` (whose `input/data/<channel>` are
/// links to the channel folders), and the hyperparameters also as `--key value` arguments.
pub fn host_plan(
    req: &CreateTrainingJobRequest,
    run_dir: &Path,
    code_dir: &Path,
    entry: &str,
    channels: &BTreeMap<String, PathBuf>,
    python: &str,
    machine: &Machine,
) -> Host {
    let name = "algo-1".to_string();
    let names = vec![name.clone()];
    let instance_type = req
        .resource_config
        .types()
        .first()
        .copied()
        .unwrap_or("local");
    let (dirs, mut files) = tree_of(req, &name, &names, instance_type);
    // The launcher is the container's: host mode runs the entry itself.
    files.retain(|(p, _)| p != Path::new(crate::job::code::LAUNCHER_NAME));
    let tree = run_dir.to_path_buf();
    let data = tree.join("input/data");
    let links: Vec<(PathBuf, PathBuf)> = req
        .input_data_config
        .iter()
        .filter_map(|c| {
            let target = channels.get(&c.channel_name)?;
            Some((
                Path::new("input/data").join(&c.channel_name),
                target.clone(),
            ))
        })
        .collect();
    let channel_names: Vec<&str> = req
        .input_data_config
        .iter()
        .map(|c| c.channel_name.as_str())
        .collect();
    let hps: serde_json::Map<String, Value> = req
        .hyper_parameters
        .iter()
        .map(|(k, v)| (k.clone(), decoded(v)))
        .collect();
    let mut user_args = Vec::new();
    for (k, v) in &req.hyper_parameters {
        user_args.push(format!("--{k}"));
        user_args.push(v.clone());
    }
    let path = |p: &Path| p.display().to_string();
    let model = tree.join("model");
    let output_data = tree.join("output/data");
    let mut env: Vec<(String, String)> = vec![
        ("SM_ROOT".into(), path(&tree)),
        ("SM_MODEL_DIR".into(), path(&model)),
        ("SM_OUTPUT_DIR".into(), path(&tree.join("output"))),
        ("SM_OUTPUT_DATA_DIR".into(), path(&output_data)),
        ("SM_INPUT_DIR".into(), path(&tree.join("input"))),
        (
            "SM_INPUT_CONFIG_DIR".into(),
            path(&tree.join("input/config")),
        ),
        ("SM_CHANNELS".into(), json!(channel_names).to_string()),
    ];
    for c in &channel_names {
        env.push((channel_var(c), path(&data.join(c))));
    }
    env.extend([
        ("SM_HPS".into(), Value::Object(hps.clone()).to_string()),
        ("SM_USER_ARGS".into(), json!(user_args).to_string()),
        ("SM_USER_ENTRY_POINT".into(), entry.to_string()),
        ("SM_MODULE_DIR".into(), path(code_dir)),
        ("SM_HOSTS".into(), json!(names).to_string()),
        ("SM_CURRENT_HOST".into(), name.clone()),
        ("SM_CURRENT_INSTANCE_TYPE".into(), instance_type.to_string()),
        ("SM_NUM_GPUS".into(), machine.gpus.to_string()),
        ("SM_NUM_CPUS".into(), machine.cpus.to_string()),
        (
            "SM_RESOURCE_CONFIG".into(),
            resource_config_json(&name, &names, instance_type).to_string(),
        ),
        (
            "SM_INPUT_DATA_CONFIG".into(),
            input_data_config_json(req).to_string(),
        ),
        ("SM_LOG_LEVEL".into(), "20".into()),
    ]);
    for (k, v) in &hps {
        env.push((
            format!("SM_HP_{}", var_part(k)),
            match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            },
        ));
    }
    // Output through a pipe is block-buffered in Python: the log would arrive late.
    env.push(("PYTHONUNBUFFERED".into(), "1".into()));
    // `--env` last, so that the job's own values win.
    for (k, v) in plain_environment(req) {
        env.retain(|(e, _)| e != k);
        env.push((k.clone(), v.clone()));
    }
    let mut argv = vec![entry.to_string()];
    argv.extend(user_args);
    Host {
        name,
        tree,
        files,
        dirs,
        links,
        program: python.to_string(),
        argv,
        env,
        cwd: Some(code_dir.to_path_buf()),
        container: None,
    }
}

/// Code mode: the request's entrypoint with the launcher read from the tree's root instead of
/// the code channel: the shell, then its arguments (the launcher and the entry script).
pub fn code_mode(req: &CreateTrainingJobRequest) -> Option<(String, Vec<String>)> {
    let spec = &req.algorithm_specification;
    if !crate::job::code::is_launcher(&spec.container_entrypoint) {
        return None;
    }
    let shell = spec.container_entrypoint[0].clone();
    let mut args = vec![format!("{ML}/{}", crate::job::code::LAUNCHER_NAME)];
    args.extend(spec.container_arguments.iter().cloned());
    Some((shell, args))
}

/// The folder of a local run in the project.
pub fn run_dir(project: &Path, job_name: &str) -> PathBuf {
    project
        .join(crate::job::state::STATE_DIR)
        .join(LOCAL_DIR)
        .join(job_name)
}

/// Where an image reference came from, said on stderr.
pub fn image_note(image: &Val<String>) -> String {
    let from = match &image.source {
        Source::Default => "default".to_string(),
        s => s.to_string(),
    };
    format!(
        "image: {} ({from}), as this machine's engine has it",
        image.value
    )
}

/// A host's command as a shell line: the folder it runs in and its variables first.
pub fn command_line(h: &Host) -> String {
    let mut line = String::new();
    if let Some(cwd) = &h.cwd {
        line.push_str(&format!(
            "cd {} && ",
            crate::ui::shell_word(&cwd.display().to_string())
        ));
    }
    for (k, v) in &h.env {
        line.push_str(&format!("{k}={} ", crate::ui::shell_word(v)));
    }
    line.push_str(&crate::ui::shell_word(&h.program));
    if !h.argv.is_empty() {
        line.push(' ');
        line.push_str(&shell_words(&h.argv));
    }
    line
}

/// `--dry-run --local`: the command lines and the tree, as the result.
pub fn dry_run_text(hosts: &[Host]) -> String {
    let mut out = String::new();
    for h in hosts {
        out.push_str(&format!("# {}: {}\n", h.name, h.tree.display()));
        for d in &h.dirs {
            out.push_str(&format!("{}/\n", d.display()));
        }
        for (l, target) in &h.links {
            out.push_str(&format!("{} -> {}\n", l.display(), target.display()));
        }
        for (f, text) in &h.files {
            out.push_str(&format!("{}:\n", f.display()));
            for l in text.lines() {
                out.push_str(&format!("    {l}\n"));
            }
        }
        out.push_str(&command_line(h));
        out.push('\n');
    }
    out
}

pub use crate::ui::shell_words;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::request::{
        AlgorithmSpecification, Channel, DataSource, OutputDataConfig, ResourceConfig,
        S3DataSource, StoppingCondition,
    };

    fn req(count: i32) -> CreateTrainingJobRequest {
        let channel = |name: &str, mode: Option<&str>| Channel {
            channel_name: name.into(),
            data_source: DataSource {
                s3_data_source: S3DataSource {
                    s3_data_type: "S3Prefix".into(),
                    s3_uri: placeholder::channel_uri(name),
                    s3_data_distribution_type: "FullyReplicated".into(),
                },
            },
            input_mode: mode.map(str::to_string),
        };
        CreateTrainingJobRequest {
            training_job_name: "unet-1".into(),
            hyper_parameters: BTreeMap::from([
                ("epochs".into(), "3".into()),
                ("lr".into(), "0.001".into()),
            ]),
            algorithm_specification: AlgorithmSpecification {
                training_image: "unet:dev".into(),
                training_input_mode: "File".into(),
                metric_definitions: vec![],
                container_entrypoint: vec![],
                container_arguments: vec![],
            },
            role_arn: placeholder::ROLE_ARN.into(),
            input_data_config: vec![channel("train", None), channel("val", Some("FastFile"))],
            output_data_config: OutputDataConfig {
                s3_output_path: placeholder::OUTPUT_PATH.into(),
                kms_key_id: None,
            },
            resource_config: ResourceConfig {
                instance_type: Some("ml.g5.xlarge".into()),
                instance_preferences: vec![],
                instance_count: count,
                volume_size_in_gb: 30,
                volume_kms_key_id: None,
                keep_alive_period_in_seconds: None,
            },
            vpc_config: None,
            stopping_condition: StoppingCondition {
                max_runtime_in_seconds: 60,
                max_wait_time_in_seconds: None,
                max_pending_time_in_seconds: None,
            },
            tags: vec![],
            enable_network_isolation: false,
            enable_managed_spot_training: false,
            checkpoint_config: None,
            environment: BTreeMap::from([("MODE".into(), "fast".into())]),
            retry_strategy: None,
            remote_debug_config: None,
        }
    }

    fn podman(gpus: bool) -> Machine {
        Machine {
            engine: "podman".into(),
            gpus: usize::from(gpus),
            cpus: 2,
        }
    }

    #[test]
    fn the_contract_files_hold_strings_channels_and_the_hosts() {
        let r = req(1);
        assert_eq!(
            hyperparameters_json(&r),
            json!({"epochs": "3", "lr": "0.001"})
        );
        let idc = input_data_config_json(&r);
        assert_eq!(idc["train"]["TrainingInputMode"], "File");
        assert_eq!(idc["val"]["TrainingInputMode"], "FastFile");
        assert_eq!(idc["val"]["S3DistributionType"], "FullyReplicated");
        let rc = resource_config_json("algo-2", &host_names(2), "ml.g5.xlarge");
        assert_eq!(rc["current_host"], "algo-2");
        assert_eq!(rc["hosts"], json!(["algo-1", "algo-2"]));
        assert_eq!(rc["network_interface_name"], "eth0");
    }

    #[test]
    fn one_host_runs_the_image_with_the_tree_the_channels_and_the_env_only() {
        let channels = BTreeMap::from([
            ("train".to_string(), PathBuf::from("/data/train")),
            ("val".to_string(), PathBuf::from("/data/val")),
        ]);
        let hosts = plan(
            &req(1),
            Path::new("/p/.sagetrain/local/unet-1"),
            "unet:dev",
            &channels,
            &[],
            &podman(false),
        );
        assert_eq!(hosts.len(), 1);
        let h = &hosts[0];
        assert_eq!(
            shell_words(&h.argv),
            "run --rm --name unet-1-algo-1 -v /p/.sagetrain/local/unet-1:/opt/ml \
             -v /data/train:/opt/ml/input/data/train:ro -v /data/val:/opt/ml/input/data/val:ro \
             --env MODE=fast unet:dev train"
        );
        assert!(h.dirs.contains(&PathBuf::from("input/data/train")));
        assert!(h.dirs.contains(&PathBuf::from("output/data")));
        let names: Vec<String> = h
            .files
            .iter()
            .map(|(p, _)| p.display().to_string())
            .collect();
        assert_eq!(
            names,
            [
                "input/config/hyperparameters.json",
                "input/config/inputdataconfig.json",
                "input/config/resourceconfig.json"
            ]
        );
    }

    #[test]
    fn gpus_network_isolation_and_several_hosts_change_the_command_line() {
        assert_eq!(gpu_args("podman", true), ["--device", "nvidia.com/gpu=all"]);
        assert_eq!(gpu_args("docker", true), ["--gpus", "all"]);
        assert!(gpu_args("docker", false).is_empty());
        let none = BTreeMap::new();
        let h = &plan(&req(1), Path::new("/t"), "i", &none, &[], &podman(true))[0];
        assert!(h.argv.contains(&"nvidia.com/gpu=all".to_string()));
        let mut isolated = req(1);
        isolated.enable_network_isolation = true;
        let h = &plan(&isolated, Path::new("/t"), "i", &none, &[], &podman(false))[0];
        assert!(h.argv.contains(&"--network=none".to_string()));
        let hosts = plan(&req(2), Path::new("/t"), "i", &none, &[], &podman(false));
        assert_eq!(hosts.len(), 2);
        assert!(hosts[1].argv.contains(&"--network=host".to_string()));
        assert!(hosts[1]
            .argv
            .contains(&"--add-host=algo-2:127.0.0.1".to_string()));
        assert!(hosts[1].files[2].1.contains("\"current_host\": \"algo-2\""));
    }

    #[test]
    fn local_rules_name_the_setting() {
        let cwd = Path::new("/p");
        let flag = |name, v: &str| Val::new(v.to_string(), Source::Flag(name));
        let local = |v: &str| flag("--local", v);
        let given = |l: Option<&'static Val<String>>| Given {
            local: l,
            engine: None,
            python: None,
            sample: None,
        };
        let none = Others {
            code: None,
            instance_count: None,
            cwd,
        };
        let others = || Others {
            code: None,
            instance_count: None,
            cwd,
        };
        let leak = |v: Val<String>| &*Box::leak(Box::new(v));
        let mut v = Vec::new();
        let l = check(&mut v, given(Some(leak(local("container")))), none).unwrap();
        assert_eq!(l.mode, Mode::Container);
        assert!(v.is_empty());
        check(&mut v, given(Some(leak(local("vm")))), others());
        assert!(
            v[0].to_string().contains("`vm` is not a local mode"),
            "{v:?}"
        );

        // The engine is checked only for a local run.
        let mut v = Vec::new();
        let engine = Val::new("finch".to_string(), Source::Env("SAGETRAIN_ENGINE"));
        let g = Given {
            engine: Some(&engine),
            ..given(None)
        };
        assert!(check(&mut v, g, others()).is_none());
        assert!(v.is_empty(), "{v:?}");
        let g = Given {
            engine: Some(&engine),
            ..given(Some(leak(local("container"))))
        };
        check(&mut v, g, others());
        assert!(v[0].to_string().contains("docker or podman"), "{v:?}");

        // Host mode needs a local code folder and one host; --python is host mode's.
        let mut v = Vec::new();
        let count = Val::new(2i64, Source::Flag("--instance-count"));
        let o = Others {
            instance_count: Some(&count),
            ..others()
        };
        check(&mut v, given(Some(leak(local("host")))), o);
        assert!(
            v[0].to_string()
                .starts_with("--local: host mode runs the entry script of --source"),
            "{v:?}"
        );
        assert!(
            v[1].to_string()
                .starts_with("--instance-count: host mode runs one host, not 2"),
            "{v:?}"
        );
        let code = crate::job::spec::Code {
            source: Val::new("s3://b/code/".into(), Source::Flag("--source")),
            entry: "train.py".into(),
        };
        let mut v = Vec::new();
        let o = Others {
            code: Some(&code),
            ..others()
        };
        check(&mut v, given(Some(leak(local("host")))), o);
        assert!(v[0].to_string().contains("not an S3 prefix"), "{v:?}");
        let python = flag("--python", "/usr/bin/python3");
        let mut v = Vec::new();
        let g = Given {
            python: Some(&python),
            ..given(Some(leak(local("container"))))
        };
        check(&mut v, g, others());
        assert!(
            v[0].to_string()
                .starts_with("--python: is the python of host mode"),
            "{v:?}"
        );
        let from_file = Val::new(
            "/usr/bin/python3".to_string(),
            Source::Env("SAGETRAIN_PYTHON"),
        );
        let mut v = Vec::new();
        let g = Given {
            python: Some(&from_file),
            ..given(None)
        };
        check(&mut v, g, others());
        assert!(
            v.is_empty(),
            "a python from the environment is for host mode only: {v:?}"
        );

        // --local-sample: with --local, at least 1.
        let sample = Val::new(0i64, Source::Flag("--local-sample"));
        let mut v = Vec::new();
        let g = Given {
            sample: Some(&sample),
            ..given(None)
        };
        check(&mut v, g, others());
        assert!(v[0].to_string().contains("add --local"), "{v:?}");
        let mut v = Vec::new();
        let g = Given {
            sample: Some(&sample),
            ..given(Some(leak(local("container"))))
        };
        check(&mut v, g, others());
        assert!(v[0].to_string().contains("at least 1"), "{v:?}");
    }

    #[test]
    fn host_mode_runs_the_entry_with_the_toolkit_environment_in_the_code_folder() {
        let mut r = req(1);
        r.algorithm_specification.container_entrypoint = crate::job::code::entrypoint();
        r.algorithm_specification.container_arguments = crate::job::code::arguments("train.py");
        r.environment.insert(
            "SAGETRAIN_SECRET_WANDB".into(),
            "arn:aws:secretsmanager:x".into(),
        );
        r.hyper_parameters
            .insert("name".into(), "unet small".into());
        let channels = BTreeMap::from([
            ("train".to_string(), PathBuf::from("/data/train")),
            ("val".to_string(), PathBuf::from("/data/val")),
        ]);
        let h = host_plan(
            &r,
            Path::new("/p/.sagetrain/local/unet-1"),
            Path::new("/p/src"),
            "train.py",
            &channels,
            "/usr/bin/python3",
            &podman(true),
        );
        assert_eq!(h.program, "/usr/bin/python3");
        assert_eq!(
            h.argv,
            [
                "train.py",
                "--epochs",
                "3",
                "--lr",
                "0.001",
                "--name",
                "unet small"
            ]
        );
        assert_eq!(h.cwd.as_deref(), Some(Path::new("/p/src")));
        assert_eq!(h.container, None);
        let env: BTreeMap<_, _> = h.env.iter().cloned().collect();
        let t = "/p/.sagetrain/local/unet-1";
        assert_eq!(env["SM_MODEL_DIR"], format!("{t}/model"));
        assert_eq!(env["SM_OUTPUT_DATA_DIR"], format!("{t}/output/data"));
        assert_eq!(env["SM_INPUT_CONFIG_DIR"], format!("{t}/input/config"));
        assert_eq!(env["SM_CHANNEL_TRAIN"], format!("{t}/input/data/train"));
        assert_eq!(env["SM_CHANNELS"], r#"["train","val"]"#);
        assert_eq!(
            env["SM_HPS"],
            r#"{"epochs":3,"lr":0.001,"name":"unet small"}"#
        );
        assert_eq!(env["SM_HP_EPOCHS"], "3");
        assert_eq!(env["SM_HOSTS"], r#"["algo-1"]"#);
        assert_eq!(env["SM_CURRENT_HOST"], "algo-1");
        assert_eq!(env["SM_NUM_GPUS"], "1");
        assert_eq!(env["SM_ROOT"], t);
        assert_eq!(env["MODE"], "fast", "--env is passed");
        assert!(
            !env.contains_key("SAGETRAIN_SECRET_WANDB"),
            "a secret's ARN is not passed: {env:?}"
        );
        assert_eq!(
            h.links,
            [
                (
                    PathBuf::from("input/data/train"),
                    PathBuf::from("/data/train")
                ),
                (PathBuf::from("input/data/val"), PathBuf::from("/data/val")),
            ]
        );
        assert!(!h
            .files
            .iter()
            .any(|(p, _)| p == Path::new(crate::job::code::LAUNCHER_NAME)));
        let line = command_line(&h);
        assert!(
            line.starts_with("cd /p/src && SM_ROOT=/p/.sagetrain/local/unet-1 "),
            "{line}"
        );
        assert!(
            line.ends_with(" /usr/bin/python3 train.py --epochs 3 --lr 0.001 --name 'unet small'"),
            "{line}"
        );
    }

    #[test]
    fn a_secret_reaches_the_container_by_name_only() {
        let mut r = req(1);
        r.environment.insert(
            "SAGETRAIN_SECRET_WANDB".into(),
            "arn:aws:secretsmanager:x".into(),
        );
        let h = &plan(
            &r,
            Path::new("/t"),
            "i",
            &BTreeMap::new(),
            &["WANDB".into()],
            &podman(false),
        )[0];
        let line = shell_words(&h.argv);
        assert!(
            line.contains("--env MODE=fast --env WANDB i train"),
            "{line}"
        );
        assert!(!line.contains("SAGETRAIN_SECRET"), "{line}");
    }

    #[test]
    fn code_mode_runs_the_launcher_from_the_tree_with_the_code_channel_mounted() {
        let mut r = req(1);
        r.algorithm_specification.container_entrypoint = crate::job::code::entrypoint();
        r.algorithm_specification.container_arguments = crate::job::code::arguments("train.py");
        let channels = BTreeMap::from([("code".to_string(), PathBuf::from("/src"))]);
        r.input_data_config[0].channel_name = "code".into();
        let h = &plan(&r, Path::new("/t"), "img", &channels, &[], &podman(false))[0];
        let line = shell_words(&h.argv);
        assert!(
            line.ends_with("-v /src:/opt/ml/input/data/code:ro --env MODE=fast --entrypoint /bin/sh img /opt/ml/.sagetrain-launcher.sh train.py"),
            "{line}"
        );
        assert!(h
            .files
            .iter()
            .any(|(p, t)| p == Path::new(".sagetrain-launcher.sh")
                && t == crate::job::code::LAUNCHER));
    }

    #[test]
    fn the_dry_run_shows_the_tree_and_the_command() {
        let hosts = plan(
            &req(1),
            Path::new("/t"),
            "unet:dev",
            &BTreeMap::new(),
            &[],
            &podman(false),
        );
        let text = dry_run_text(&hosts);
        assert!(
            text.contains("input/config/hyperparameters.json:\n    {"),
            "{text}"
        );
        assert!(text.contains("\"epochs\": \"3\""), "{text}");
        assert!(text.ends_with("\npodman run --rm --name unet-1-algo-1 -v /t:/opt/ml --env MODE=fast unet:dev train\n"), "{text}");
        assert_eq!(shell_words(&["a b", "it's"]), "'a b' 'it'\\''s'");
    }
}
