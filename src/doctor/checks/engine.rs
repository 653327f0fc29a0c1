//! The container engine of `train --local`: which one a local run would use (`--engine`,
//! `SAGETRAIN_ENGINE`, `engine` in sagetrain.toml, else the first on PATH), its version, whether
//! it can run containers (`ENGINE info`), and whether this machine's NVIDIA GPUs can reach a
//! container (podman: a CDI spec for nvidia.com/gpu; docker: the nvidia runtime). Local runs
//! are optional: what is missing or broken is a warning, never a failure.

use crate::config::Val;
use crate::doctor::report::{id, Check};
use crate::image::engine::{self, Engine};
use crate::job::local::LOCAL_ENGINES;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

/// How long each engine command may take: the doctor stays fast with a hung daemon.
pub const TIMEOUT: Duration = Duration::from_secs(5);

/// Where CDI specs are looked for (podman's `--device nvidia.com/gpu=all` needs one).
pub const CDI_DIRS: [&str; 2] = ["/etc/cdi", "/var/run/cdi"];

const INSTALL: &str = "install one: sudo apt-get install podman (or Docker Desktop, https://docs.docker.com/desktop/); only `sagetrain train --local` needs it";

/// What was found of the engine on this machine.
#[derive(Debug, Clone)]
pub struct Facts {
    pub engine: Engine,
    /// Where the choice came from: `--engine`, `SAGETRAIN_ENGINE`, the file, or PATH.
    pub source: String,
    /// `ENGINE --version`: its first line, or why it gave none.
    pub version: Result<String, String>,
    /// `ENGINE info` (podman: the OCI runtime's name; docker: the runtimes as JSON), or why it
    /// failed.
    pub info: Result<String, String>,
    /// The `/dev/nvidia*` devices.
    pub gpu_devices: Vec<String>,
    /// A CDI spec names nvidia.com/gpu (podman).
    pub cdi_gpu: bool,
}

/// The engine a local run would use, found without running anything; or the check that says
/// why there is none.
pub fn choose(
    setting: Option<&Val<String>>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(Engine, String), Box<Check>> {
    let path_var = env("PATH").unwrap_or_default();
    if let Some(v) = setting {
        let from = v.source.name_for(None);
        if !LOCAL_ENGINES.contains(&v.value.as_str()) {
            return Err(Box::new(Check::warn(
                id::ENGINE,
                format!(
                    "`{}` ({from}) is not an engine a local run can use: docker or podman",
                    v.value
                ),
                format!("set --engine podman or --engine docker (or remove it: {from})"),
            )));
        }
        return match engine::on_path(&v.value, &path_var) {
            Some(path) => Ok((
                Engine {
                    name: v.value.clone(),
                    path,
                },
                from,
            )),
            None => Err(Box::new(Check::warn(
                id::ENGINE,
                format!(
                    "`{}` ({from}) is not on PATH: `sagetrain train --local` cannot run",
                    v.value
                ),
                format!("{INSTALL}; or choose the other engine with --engine"),
            ))),
        };
    }
    match engine::find(None, env) {
        Ok(e) if LOCAL_ENGINES.contains(&e.name.as_str()) => Ok((e, "PATH".into())),
        Ok(e) => Err(Box::new(Check::warn(
            id::ENGINE,
            format!(
                "{} ({}) is the only container engine on PATH, and a local run can use only docker or podman",
                e.name,
                e.path.display()
            ),
            INSTALL,
        ))),
        Err(_) => Err(Box::new(Check::warn(
            id::ENGINE,
            "no container engine for local runs: neither docker nor podman is on PATH",
            INSTALL,
        ))),
    }
}

/// Run `engine args` for at most [`TIMEOUT`]: its stdout, or why it gave none.
async fn output(engine: &Engine, args: &[&str]) -> Result<String, String> {
    let shown = format!("`{} {}`", engine.name, args.join(" "));
    let run = tokio::process::Command::new(&engine.path)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .output();
    let out = match tokio::time::timeout(TIMEOUT, run).await {
        Err(_) => {
            return Err(format!(
                "{shown} gave no answer within {}s",
                TIMEOUT.as_secs()
            ))
        }
        Ok(Err(e)) => return Err(format!("{shown} could not be run: {e}")),
        Ok(Ok(o)) => o,
    };
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let first = err.lines().map(str::trim).find(|l| !l.is_empty());
        return Err(format!(
            "{shown} failed ({}){}",
            out.status,
            first.map(|l| format!(": {l}")).unwrap_or_default()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The `/dev/nvidia*` devices of this machine.
pub fn gpu_devices(dev: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dev)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("nvidia"))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Whether a CDI spec in `dirs` declares nvidia.com/gpu devices.
pub fn cdi_has_gpu(dirs: &[&Path]) -> bool {
    dirs.iter().any(|d| {
        std::fs::read_dir(d).is_ok_and(|entries| {
            entries.filter_map(|e| e.ok()).any(|e| {
                std::fs::read_to_string(e.path()).is_ok_and(|t| t.contains("nvidia.com/gpu"))
            })
        })
    })
}

/// Gather the facts and give the verdict.
pub async fn engine_check(
    setting: Option<&Val<String>>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Check {
    let (engine, source) = match choose(setting, env) {
        Ok(found) => found,
        Err(check) => return *check,
    };
    let info_args: &[&str] = match engine.name.as_str() {
        "podman" => &["info", "--format", "{{.Host.OCIRuntime.Name}}"],
        _ => &["info", "--format", "{{json .Runtimes}}"],
    };
    let (version, info) =
        futures::join!(output(&engine, &["--version"]), output(&engine, info_args));
    let dirs: Vec<&Path> = CDI_DIRS.iter().map(Path::new).collect();
    verdict(Facts {
        version: version.map(|v| v.lines().next().unwrap_or_default().to_string()),
        info,
        gpu_devices: gpu_devices(Path::new("/dev")),
        cdi_gpu: cdi_has_gpu(&dirs),
        engine,
        source,
    })
}

/// The check, from what was found (pure).
pub fn verdict(f: Facts) -> Check {
    let name = f.engine.name.as_str();
    let version = match &f.version {
        Ok(v) if !v.is_empty() => v.clone(),
        _ => name.to_string(),
    };
    let found = format!("{version} ({})", f.engine.path.display());
    let mut details = Vec::new();
    if let Err(why) = &f.version {
        details.push(why.clone());
    }
    let info = match &f.info {
        Ok(i) => i.clone(),
        Err(why) => {
            let fix = match name {
                "podman" => "run `podman info` to see what is wrong; rootless podman needs subordinate ids: sudo usermod --add-subuids 100000-165535 --add-subgids 100000-165535 $USER, then podman system migrate",
                _ => "start the Docker daemon (sudo systemctl start docker, or open Docker Desktop) and make sure you may use it: sudo usermod -aG docker $USER, then log in again",
            };
            return Check::warn(
                id::ENGINE,
                format!("{found} cannot run containers: {why}"),
                fix,
            )
            .with_source(f.source)
            .with_details(details);
        }
    };
    let mut value = format!("{found}, runs containers");
    if name == "podman" && !info.is_empty() {
        value.push_str(&format!(" (runtime {info})"));
    }
    // The same test as a local run's: it hands the GPUs over when these devices are there.
    let gpus = f
        .gpu_devices
        .iter()
        .any(|d| d == "nvidiactl" || d == "nvidia0");
    if !gpus {
        value.push_str("; no NVIDIA GPU (/dev/nvidia*): local runs use the CPU");
        return Check::pass(id::ENGINE, value)
            .with_source(f.source)
            .with_details(details);
    }
    details.push(format!(
        "GPU devices: {}",
        f.gpu_devices
            .iter()
            .map(|d| format!("/dev/{d}"))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    let (reaches, missing, fix) = match name {
        "podman" => (
            f.cdi_gpu,
            format!(
                "no CDI spec for nvidia.com/gpu in {} (a local run passes --device nvidia.com/gpu=all)",
                CDI_DIRS.join(" or ")
            ),
            "generate one with the NVIDIA Container Toolkit: sudo nvidia-ctk cdi generate --output=/etc/cdi/nvidia.yaml",
        ),
        _ => (
            info.contains("\"nvidia\""),
            "`docker info` lists no nvidia runtime (a local run passes --gpus all)".to_string(),
            "install the NVIDIA Container Toolkit, then: sudo nvidia-ctk runtime configure --runtime=docker && sudo systemctl restart docker",
        ),
    };
    if !reaches {
        return Check::warn(
            id::ENGINE,
            format!("{value}; this machine has NVIDIA GPUs but the container cannot get them: {missing}"),
            fix,
        )
        .with_source(f.source)
        .with_details(details);
    }
    value.push_str("; the container gets this machine's NVIDIA GPUs");
    Check::pass(id::ENGINE, value)
        .with_source(f.source)
        .with_details(details)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Source;
    use crate::doctor::Status;

    fn facts(name: &str) -> Facts {
        Facts {
            engine: Engine {
                name: name.into(),
                path: format!("/usr/bin/{name}").into(),
            },
            source: "PATH".into(),
            version: Ok(format!("{name} version 4.3.1")),
            info: Ok(match name {
                "podman" => "crun".into(),
                _ => r#"{"io.containerd.runc.v2":{},"runc":{}}"#.into(),
            }),
            gpu_devices: vec![],
            cdi_gpu: false,
        }
    }

    #[test]
    fn an_engine_that_runs_containers_passes_with_its_version_and_runtime() {
        let c = verdict(facts("podman"));
        assert_eq!(c.status, Status::Pass);
        assert_eq!(
            c.value,
            "podman version 4.3.1 (/usr/bin/podman), runs containers (runtime crun); no NVIDIA GPU (/dev/nvidia*): local runs use the CPU"
        );
        assert_eq!(c.source.as_deref(), Some("PATH"));
    }

    #[test]
    fn an_engine_that_cannot_run_containers_is_a_warning_with_the_fix() {
        let mut f = facts("docker");
        f.info = Err("`docker info --format {{json .Runtimes}}` failed (exit status: 1): Cannot connect to the Docker daemon".into());
        let c = verdict(f);
        assert_eq!(c.status, Status::Warn);
        assert!(
            c.value.contains("cannot run containers: `docker info"),
            "{c:?}"
        );
        assert!(c.fix.unwrap().contains("sudo systemctl start docker"));
        let mut f = facts("podman");
        f.info = Err("`podman info` gave no answer within 5s".into());
        let c = verdict(f);
        assert_eq!(c.status, Status::Warn);
        assert!(c.fix.unwrap().contains("podman system migrate"));
    }

    #[test]
    fn gpus_need_a_cdi_spec_with_podman_and_the_nvidia_runtime_with_docker() {
        let gpus = |mut f: Facts| {
            f.gpu_devices = vec!["nvidia0".into(), "nvidiactl".into()];
            f
        };
        let c = verdict(gpus(facts("podman")));
        assert_eq!(c.status, Status::Warn, "{c:?}");
        assert!(c.value.contains("no CDI spec for nvidia.com/gpu"), "{c:?}");
        assert!(c.fix.unwrap().contains("nvidia-ctk cdi generate"));
        assert_eq!(c.details, ["GPU devices: /dev/nvidia0, /dev/nvidiactl"]);
        let mut f = gpus(facts("podman"));
        f.cdi_gpu = true;
        let c = verdict(f);
        assert_eq!(c.status, Status::Pass);
        assert!(c
            .value
            .ends_with("the container gets this machine's NVIDIA GPUs"));

        let c = verdict(gpus(facts("docker")));
        assert_eq!(c.status, Status::Warn);
        assert!(c.value.contains("no nvidia runtime"), "{c:?}");
        let mut f = gpus(facts("docker"));
        f.info = Ok(r#"{"nvidia":{"path":"nvidia-container-runtime"},"runc":{}}"#.into());
        assert_eq!(verdict(f).status, Status::Pass);
        // Only the uvm device: not what a local run takes for GPUs.
        let mut f = facts("docker");
        f.gpu_devices = vec!["nvidia-uvm".into()];
        assert_eq!(verdict(f).status, Status::Pass);
    }

    #[test]
    fn the_engine_is_chosen_as_a_local_run_chooses_it_and_a_missing_one_is_a_warning() {
        let d = tempfile::tempdir().unwrap();
        let bin = d.path().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        let path = bin.display().to_string();
        let env = |k: &str| (k == "PATH").then(|| path.clone());
        let c = choose(None, &env).unwrap_err();
        assert_eq!(c.status, Status::Warn);
        assert!(c.fix.unwrap().contains("sudo apt-get install podman"));
        let podman = bin.join("podman");
        std::fs::write(&podman, "#!/bin/sh\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&podman, std::fs::Permissions::from_mode(0o755)).unwrap();
        let (e, from) = choose(None, &env).unwrap();
        assert_eq!((e.name.as_str(), from.as_str()), ("podman", "PATH"));
        let docker = Val::new("docker".to_string(), Source::Env("SAGETRAIN_ENGINE"));
        let c = choose(Some(&docker), &env).unwrap_err();
        assert!(
            c.value
                .starts_with("`docker` (SAGETRAIN_ENGINE) is not on PATH"),
            "{c:?}"
        );
        let finch = Val::new("finch".to_string(), Source::Flag("--engine"));
        assert!(choose(Some(&finch), &env)
            .unwrap_err()
            .value
            .contains("docker or podman"));
        let chosen = Val::new("podman".to_string(), Source::Flag("--engine"));
        assert_eq!(choose(Some(&chosen), &env).unwrap().1, "--engine");
    }

    #[test]
    fn gpu_devices_and_cdi_specs_are_read_from_their_folders() {
        let d = tempfile::tempdir().unwrap();
        for n in ["nvidia0", "nvidiactl", "null"] {
            std::fs::write(d.path().join(n), "").unwrap();
        }
        assert_eq!(gpu_devices(d.path()), ["nvidia0", "nvidiactl"]);
        let cdi = tempfile::tempdir().unwrap();
        assert!(!cdi_has_gpu(&[cdi.path(), Path::new("/no/such/dir")]));
        std::fs::write(
            cdi.path().join("nvidia.yaml"),
            "cdiVersion: 0.5.0\nkind: nvidia.com/gpu\n",
        )
        .unwrap();
        assert!(cdi_has_gpu(&[cdi.path()]));
    }
}
