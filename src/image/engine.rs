//! Building with a container engine: `ENGINE build --platform linux/amd64`, then `ENGINE save`
//! to an archive that [`super::archive`] reads. The engine's own output goes to stderr.

use crate::error::{Error, Result};
use crate::ui::Ui;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// The engines sagetrain knows, in the order they are looked for on PATH.
pub const ENGINES: [&str; 4] = ["docker", "podman", "finch", "nerdctl"];

/// A container engine found on PATH.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Engine {
    pub name: String,
    pub path: PathBuf,
}

/// The executable `name` in the first folder of `path_var` (a PATH value) that has it.
pub fn on_path(name: &str, path_var: &str) -> Option<PathBuf> {
    std::env::split_paths(path_var)
        .map(|d| d.join(name))
        .find(|p| is_executable(p))
}

#[cfg(unix)]
fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

#[cfg(not(unix))]
fn is_executable(p: &Path) -> bool {
    p.is_file() || p.with_extension("exe").is_file()
}

/// The engine to use: `--engine`, else `SAGETRAIN_ENGINE`, else the first of [`ENGINES`] on PATH.
pub fn find(flag: Option<&str>, env: &dyn Fn(&str) -> Option<String>) -> Result<Engine> {
    let path_var = env("PATH").unwrap_or_default();
    let chosen = match flag {
        Some(f) => Some((f.to_string(), "--engine")),
        None => env("SAGETRAIN_ENGINE")
            .filter(|v| !v.is_empty())
            .map(|v| (v, "SAGETRAIN_ENGINE")),
    };
    if let Some((name, from)) = chosen {
        if !ENGINES.contains(&name.as_str()) {
            return Err(Error::usage(format!(
                "{from}: `{name}` is not a container engine sagetrain knows (docker, podman, finch, nerdctl)"
            ))
            .with_hint("choose one of docker, podman, finch, nerdctl, or push an archive with --archive FILE"));
        }
        return match on_path(&name, &path_var) {
            Some(path) => Ok(Engine { name, path }),
            None => Err(Error::usage(format!("{from}: `{name}` is not on PATH"))
                .with_hint(format!("install {name}, choose another engine, or push an archive you saved elsewhere with --archive FILE"))),
        };
    }
    ENGINES
        .iter()
        .find_map(|n| on_path(n, &path_var).map(|path| Engine { name: n.to_string(), path }))
        .ok_or_else(|| {
            Error::usage("no container engine on PATH to build the image (looked for docker, podman, finch, nerdctl)")
                .with_hint("install one (e.g. Docker Desktop, `apt-get install podman`, Finch), or build elsewhere and push the archive: sagetrain image push --archive FILE (from `docker save -o FILE IMAGE`)")
        })
}

/// Whether the engine has the image `name` (a name, or an image ID `sha256:HEX`):
/// `ENGINE image inspect NAME` succeeds.
pub async fn has_image(engine: &Engine, name: &str) -> bool {
    tokio::process::Command::new(&engine.path)
        .args(["image", "inspect", name])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await
        .is_ok_and(|s| s.success())
}

/// The commands that build `context` as `local_tag` for linux/amd64 and save it to `archive`.
pub fn commands(
    engine: &Engine,
    context: &Path,
    local_tag: &str,
    archive: &Path,
) -> [Vec<String>; 2] {
    let s = |p: &Path| p.display().to_string();
    let build = vec![
        "build".into(),
        "--platform".into(),
        "linux/amd64".into(),
        "-t".into(),
        local_tag.into(),
        s(context),
    ];
    let mut save = vec!["save".to_string()];
    if engine.name == "podman" {
        save.extend(["--format".into(), "oci-archive".into()]);
    }
    save.extend(["-o".into(), s(archive), local_tag.into()]);
    [build, save]
}

fn run(ui: &Ui, engine: &Engine, args: &[String], log: &Path, stop: &AtomicBool) -> Result<()> {
    let shown = format!("{} {}", engine.name, args.join(" "));
    ui.info(&format!("running: {shown}"));
    let mut cmd = Command::new(&engine.path);
    cmd.args(args).stdin(Stdio::null());
    // The engine's output is progress: stderr, never stdout; with -q into a file, shown only
    // on failure.
    if ui.quiet {
        let f = std::fs::File::create(log)?;
        cmd.stdout(f.try_clone()?).stderr(f);
    } else {
        cmd.stdout(std::io::stderr()).stderr(Stdio::inherit());
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| Error::internal(format!("cannot run {}: {e}", engine.path.display())))?;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if stop.load(Ordering::SeqCst) {
            // Interrupted: the engine stops with us.
            let _ = child.kill();
            let _ = child.wait();
            return Err(super::interrupted_error(crate::signals::Signal::Interrupt));
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    if status.success() {
        return Ok(());
    }
    if ui.quiet {
        eprint!(
            "{}",
            String::from_utf8_lossy(&std::fs::read(log).unwrap_or_default())
        );
    }
    Err(Error::usage(format!("`{shown}` failed ({status})")).with_hint(
        "fix the build (the engine's messages are above), or build elsewhere and push the archive with --archive FILE",
    ))
}

/// Build `context` for linux/amd64 and save it into `dir`; returns the archive's path. Setting
/// `stop` kills the engine and returns the interrupted error.
pub fn build_and_save(
    ui: &Ui,
    engine: &Engine,
    context: &Path,
    repo: &str,
    tag: &str,
    dir: &Path,
    stop: &AtomicBool,
) -> Result<PathBuf> {
    if !context.join("Dockerfile").is_file() && !context.join("Containerfile").is_file() {
        return Err(Error::usage(format!(
            "{} has no Dockerfile: it is not a build context",
            context.display()
        ))
        .with_hint("give the folder that holds the Dockerfile (sagetrain image push FOLDER), or push an archive with --archive FILE"));
    }
    let archive = dir.join("image.tar");
    let local_tag = format!("localhost/sagetrain/{repo}:{tag}");
    for args in commands(engine, context, &local_tag, &archive) {
        run(ui, engine, &args, &dir.join("engine.log"), stop)?;
    }
    Ok(archive)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_engine_on_path_is_used_unless_one_is_chosen() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path();
        for n in ["podman", "nerdctl"] {
            let p = bin.join(n);
            std::fs::write(&p, "#!/bin/sh\n").unwrap();
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let path = bin.display().to_string();
        let env = |k: &str| (k == "PATH").then(|| path.clone());
        assert_eq!(find(None, &env).unwrap().name, "podman");
        assert_eq!(find(Some("nerdctl"), &env).unwrap().name, "nerdctl");
        assert_eq!(find(Some("docker"), &env).unwrap_err().exit_code(), 2);
        assert!(find(Some("rkt"), &env)
            .unwrap_err()
            .message
            .contains("not a container engine"));
        let env2 = |k: &str| match k {
            "PATH" => Some(path.clone()),
            "SAGETRAIN_ENGINE" => Some("nerdctl".into()),
            _ => None,
        };
        assert_eq!(find(None, &env2).unwrap().name, "nerdctl");
        let empty = |_: &str| None;
        assert!(find(None, &empty)
            .unwrap_err()
            .message
            .contains("no container engine"));
    }

    fn fake_engine(dir: &Path, script: &str) -> Engine {
        use std::os::unix::fs::PermissionsExt;
        let p = dir.join("docker");
        std::fs::write(&p, format!("#!/bin/sh\n{script}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        Engine {
            name: "docker".into(),
            path: p,
        }
    }

    /// A folder with a Dockerfile, an engine that runs `script`, and a quiet `Ui`.
    fn project(script: &str) -> (tempfile::TempDir, Engine, Ui) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("Dockerfile"), "FROM scratch\n").unwrap();
        let e = fake_engine(dir.path(), script);
        let ui = Ui::new(crate::ui::Format::Text, true, 0, &|_| None);
        (dir, e, ui)
    }

    #[test]
    fn a_failed_build_is_reported_with_the_engines_output_even_when_quiet() {
        let (dir, e, ui) = project("echo 'no such base image' >&2; exit 3");
        let stop = AtomicBool::new(false);
        let err = build_and_save(&ui, &e, dir.path(), "r", "t", dir.path(), &stop).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(
            err.message.contains("docker build --platform linux/amd64"),
            "{}",
            err.message
        );
        let log = std::fs::read_to_string(dir.path().join("engine.log")).unwrap();
        assert!(log.contains("no such base image"));
    }

    #[test]
    fn an_interrupt_stops_the_engine() {
        let (dir, e, ui) = project("sleep 30");
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let s2 = stop.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            s2.store(true, Ordering::SeqCst);
        });
        let start = std::time::Instant::now();
        let err = build_and_save(&ui, &e, dir.path(), "r", "t", dir.path(), &stop).unwrap_err();
        assert_eq!(err.exit_code(), 130);
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "the engine was killed"
        );
    }

    #[test]
    fn podman_saves_an_oci_archive_and_every_engine_builds_for_amd64() {
        let e = Engine {
            name: "podman".into(),
            path: "/usr/bin/podman".into(),
        };
        let [build, save] = commands(&e, Path::new("ctx"), "t:1", Path::new("/tmp/a.tar"));
        assert_eq!(build.join(" "), "build --platform linux/amd64 -t t:1 ctx");
        assert_eq!(
            save.join(" "),
            "save --format oci-archive -o /tmp/a.tar t:1"
        );
        let d = Engine {
            name: "docker".into(),
            path: "/usr/bin/docker".into(),
        };
        assert_eq!(
            commands(&d, Path::new("ctx"), "t:1", Path::new("a.tar"))[1].join(" "),
            "save -o a.tar t:1"
        );
    }
}
