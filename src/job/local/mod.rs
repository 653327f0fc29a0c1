//! `train --local`: the same job on this machine. What SageMaker would hand the container is
//! laid out from the job's own CreateTrainingJob request (built by
//! [`crate::job::request::build_request`], as `--dry-run` prints it) in the project's
//! `.sagetrain/local/<job-name>/`, mounted at `/opt/ml`, and the image runs under a container
//! engine with the argument `train`.
//!
//! This file is pure: the rules of local runs, the contract files, the tree, the engine's
//! command line. [`run`] starts the processes, streams their output and packs the results.

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

/// `--local[=MODE]` and `--engine`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Local {
    pub mode: Mode,
    /// `--engine`, `SAGETRAIN_ENGINE` or `engine` in sagetrain.toml; else the first on PATH.
    pub engine: Option<Val<String>>,
}

/// What [`check`] reads of the other settings.
pub struct Others<'a> {
    pub channels: &'a BTreeMap<String, Val<String>>,
    pub secrets: usize,
    pub cwd: &'a Path,
}

/// The engines a local run can use.
pub const LOCAL_ENGINES: [&str; 2] = ["docker", "podman"];

/// The rules of `--local` and `--engine` (called by [`crate::job::spec::validate`]).
pub fn check(
    v: &mut Vec<Violation>,
    local: Option<&Val<String>>,
    engine: Option<&Val<String>>,
    o: Others,
) -> Option<Local> {
    // The engine matters only to a local run (`image push` reads SAGETRAIN_ENGINE too, and may
    // use another engine).
    let local = local?;
    if let Some(e) = engine {
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
    let not_yet = |v: &mut Vec<Violation>, what: String, rule: &str| {
        v.push(Violation::new(what, rule.to_string()));
    };
    if mode == Mode::Host {
        not_yet(
            v,
            what.clone(),
            "host mode is not supported yet: use --local (the job's image in a container)",
        );
    }
    for (name, uri) in o.channels {
        if let Ok(ChannelLocation::S3(_)) = channel_location(uri, o.cwd) {
            not_yet(
                v,
                uri.source.name_for(Some(name)),
                "a local run reads only local folders for now: download the channel (`aws s3 sync`) and give the folder",
            );
        }
    }
    if o.secrets > 0 {
        not_yet(
            v,
            "--secret".into(),
            "a local run does not read secrets from AWS Secrets Manager: pass a test value with --env NAME=VALUE",
        );
    }
    Some(Local {
        mode,
        engine: engine.cloned(),
    })
}

/// The job's values that a local run replaces: the request is built with these where the cloud
/// would look one up, and never sent.
pub mod placeholder {
    pub const REGION: &str = "local";
    pub const ROLE_ARN: &str = "arn:aws:iam::000000000000:role/sagetrain-local";
    pub const OUTPUT_PATH: &str = "s3://sagetrain-local/output/";
    /// A local channel folder's place in the request.
    pub fn channel_uri(name: &str) -> String {
        format!("s3://sagetrain-local/channels/{name}/")
    }
}

/// One host of a local run.
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
    /// The engine's arguments (after the engine itself).
    pub argv: Vec<String>,
    /// The container's name (for `ENGINE kill`).
    pub container: String,
}

/// What the edge found on this machine.
#[derive(Debug, Clone)]
pub struct Machine {
    /// `docker` or `podman`.
    pub engine: String,
    /// The host has NVIDIA GPUs.
    pub gpus: bool,
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

/// The run of `req` in `run_dir`: each host's tree, contract files and engine command line.
/// `channels` are the local folders of the channels (mounted read-only in place).
pub fn plan(
    req: &CreateTrainingJobRequest,
    run_dir: &Path,
    image: &str,
    channels: &BTreeMap<String, PathBuf>,
    machine: &Machine,
) -> Vec<Host> {
    let names = host_names(req.resource_config.instance_count);
    let instance_type = req
        .resource_config
        .types()
        .first()
        .copied()
        .unwrap_or("local");
    let config = Path::new("input/config");
    names
        .iter()
        .map(|name| {
            // One host's tree is the run folder; several hosts each have their own in it.
            let tree = if names.len() == 1 {
                run_dir.to_path_buf()
            } else {
                run_dir.join(name)
            };
            let mut dirs: Vec<PathBuf> = ["model", "output/data", "input/config"]
                .iter()
                .map(PathBuf::from)
                .collect();
            dirs.extend(
                req.input_data_config
                    .iter()
                    .map(|c| Path::new("input/data").join(&c.channel_name)),
            );
            let checkpoint = req.checkpoint_config.as_ref().map(|c| c.local_path.clone());
            if checkpoint.is_some() {
                dirs.push("checkpoints".into());
            }
            let files = vec![
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
                    pretty(&resource_config_json(name, &names, instance_type)),
                ),
            ];
            let mut files = files;
            if code_mode(req).is_some() {
                files.push((
                    PathBuf::from(crate::job::code::LAUNCHER_NAME),
                    crate::job::code::LAUNCHER.to_string(),
                ));
            }
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
            argv.extend(gpu_args(&machine.engine, machine.gpus));
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
            for (k, v) in &req.environment {
                argv.extend(["--env".into(), format!("{k}={v}")]);
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
                argv,
                container,
            }
        })
        .collect()
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

/// `--dry-run --local`: the command lines and the tree, as the result.
pub fn dry_run_text(engine: &str, hosts: &[Host]) -> String {
    let mut out = String::new();
    for h in hosts {
        out.push_str(&format!("# {}: {}\n", h.name, h.tree.display()));
        for d in &h.dirs {
            out.push_str(&format!("{}/\n", d.display()));
        }
        for (f, text) in &h.files {
            out.push_str(&format!("{}:\n", f.display()));
            for l in text.lines() {
                out.push_str(&format!("    {l}\n"));
            }
        }
        out.push_str(&format!("{engine} {}\n", shell_words(&h.argv)));
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
            gpus,
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
        let h = &plan(&req(1), Path::new("/t"), "i", &none, &podman(true))[0];
        assert!(h.argv.contains(&"nvidia.com/gpu=all".to_string()));
        let mut isolated = req(1);
        isolated.enable_network_isolation = true;
        let h = &plan(&isolated, Path::new("/t"), "i", &none, &podman(false))[0];
        assert!(h.argv.contains(&"--network=none".to_string()));
        let hosts = plan(&req(2), Path::new("/t"), "i", &none, &podman(false));
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
        let flag = |v: &str| Val::new(v.to_string(), Source::Flag("--local"));
        let channels = BTreeMap::from([(
            "train".to_string(),
            Val::new("s3://bucket-1/t/".to_string(), Source::Flag("--channel")),
        )]);
        let none = BTreeMap::new();
        let others = |c| Others {
            channels: c,
            secrets: 0,
            cwd,
        };
        let mut v = Vec::new();
        let l = check(&mut v, Some(&flag("container")), None, others(&none)).unwrap();
        assert_eq!(l.mode, Mode::Container);
        assert!(v.is_empty());
        check(&mut v, Some(&flag("vm")), None, others(&none));
        assert!(
            v[0].to_string().contains("`vm` is not a local mode"),
            "{v:?}"
        );
        let mut v = Vec::new();
        check(&mut v, Some(&flag("container")), None, others(&channels));
        assert!(v[0].to_string().starts_with("--channel train"), "{v:?}");
        let mut v = Vec::new();
        let engine = Val::new("finch".to_string(), Source::Env("SAGETRAIN_ENGINE"));
        assert!(check(&mut v, None, Some(&engine), others(&none)).is_none());
        assert!(
            v.is_empty(),
            "the engine is checked only for a local run: {v:?}"
        );
        check(
            &mut v,
            Some(&flag("container")),
            Some(&engine),
            others(&none),
        );
        assert!(v[0].to_string().contains("docker or podman"), "{v:?}");
    }

    #[test]
    fn code_mode_runs_the_launcher_from_the_tree_with_the_code_channel_mounted() {
        let mut r = req(1);
        r.algorithm_specification.container_entrypoint = crate::job::code::entrypoint();
        r.algorithm_specification.container_arguments = crate::job::code::arguments("train.py");
        let channels = BTreeMap::from([("code".to_string(), PathBuf::from("/src"))]);
        r.input_data_config[0].channel_name = "code".into();
        let h = &plan(&r, Path::new("/t"), "img", &channels, &podman(false))[0];
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
            &podman(false),
        );
        let text = dry_run_text("podman", &hosts);
        assert!(
            text.contains("input/config/hyperparameters.json:\n    {"),
            "{text}"
        );
        assert!(text.contains("\"epochs\": \"3\""), "{text}");
        assert!(text.ends_with("unet:dev train\n"), "{text}");
        assert_eq!(shell_words(&["a b", "it's"]), "'a b' 'it'\\''s'");
    }
}
