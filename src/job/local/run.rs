//! The edge of a local run: the tree written, the containers started under the engine, their
//! output streamed to stderr (`[algo-1] ...`) and to the run's log, an interrupt passed to the
//! containers, and the model and output packed as SageMaker packs them.

use super::Host;
use crate::error::{Error, Result};
use crate::image::engine::Engine;
use crate::signals::Signal;
use crate::ui::Ui;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

/// How long the containers have to end after SIGTERM before they are removed.
pub const GRACE: Duration = Duration::from_secs(30);

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The entry's exit code: 0, or that of the first host that failed.
    pub exit_code: i32,
    /// The first host that failed.
    pub failed_host: Option<String>,
    /// Its `output/failure`, when it wrote one.
    pub failure: Option<String>,
    pub duration: Duration,
}

fn io_error(what: &str, path: &Path, e: std::io::Error) -> Error {
    Error::internal(format!("cannot {what} {}: {e}", path.display()))
        .with_hint("check the permissions and free space of the project folder")
}

/// Write each host's tree: its folders and contract files.
pub fn lay_out(hosts: &[Host]) -> Result<()> {
    for h in hosts {
        for d in &h.dirs {
            let p = h.tree.join(d);
            std::fs::create_dir_all(&p).map_err(|e| io_error("create", &p, e))?;
        }
        for (f, text) in &h.files {
            let p = h.tree.join(f);
            std::fs::write(&p, text).map_err(|e| io_error("write", &p, e))?;
        }
        for (l, target) in &h.links {
            let p = h.tree.join(l);
            let _ = std::fs::remove_file(&p);
            std::os::unix::fs::symlink(target, &p).map_err(|e| io_error("link", &p, e))?;
        }
    }
    Ok(())
}

/// The NVIDIA GPUs of this machine (`/dev/nvidia0`, `/dev/nvidia1`, ...).
pub fn gpu_count() -> usize {
    std::fs::read_dir("/dev")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter(|e| {
                    let n = e.file_name();
                    let n = n.to_string_lossy();
                    n.strip_prefix("nvidia")
                        .is_some_and(|k| !k.is_empty() && k.bytes().all(|b| b.is_ascii_digit()))
                })
                .count()
        })
        .unwrap_or(0)
}

/// This machine's CPUs.
pub fn cpu_count() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Whether the engine has `image` already (`ENGINE image inspect`).
pub async fn image_present(engine: &Engine, image: &str) -> bool {
    crate::image::engine::has_image(engine, image).await
}

/// What stops the processes of a run.
#[derive(Clone, Copy)]
pub enum Runner<'a> {
    /// Container mode: the engine that runs the containers.
    Engine(&'a Engine),
    /// Host mode: the processes themselves, each the leader of its own process group.
    Host,
}

/// Container mode: `ENGINE kill --signal TERM` then, after [`GRACE`] (or at once with `now`),
/// `ENGINE rm -f`. Host mode: SIGTERM to each process group, SIGKILL after the grace.
async fn stop(runner: Runner<'_>, hosts: &[Host], pids: &[Option<u32>], now: bool) {
    let engine = match runner {
        Runner::Engine(e) => e,
        Runner::Host => {
            let signal_all = |sig: i32| {
                for pid in pids.iter().flatten() {
                    // SAFETY: kill(2) with a negative pid signals that process group; it has
                    // no memory effects.
                    unsafe {
                        libc::kill(-(*pid as i32), sig);
                    }
                }
            };
            if !now {
                signal_all(libc::SIGTERM);
                let gone = async {
                    loop {
                        // SAFETY: kill(2) with signal 0 only checks that the group exists.
                        let alive = pids
                            .iter()
                            .flatten()
                            .any(|p| unsafe { libc::kill(-(*p as i32), 0) } == 0);
                        if !alive {
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                };
                if tokio::time::timeout(GRACE, gone).await.is_ok() {
                    return;
                }
            }
            signal_all(libc::SIGKILL);
            return;
        }
    };
    let containers: Vec<&String> = hosts.iter().filter_map(|h| h.container.as_ref()).collect();
    let quiet = |args: Vec<String>| {
        let mut c = Command::new(&engine.path);
        c.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        c
    };
    if !now {
        for c in &containers {
            let _ = quiet(vec![
                "kill".into(),
                "--signal".into(),
                "TERM".into(),
                c.to_string(),
            ])
            .status()
            .await;
        }
    }
    let gone = async {
        for c in &containers {
            // `ENGINE wait` ends when the container has (or at once when it is gone).
            let _ = quiet(vec!["wait".into(), c.to_string()]).status().await;
        }
    };
    if now || tokio::time::timeout(GRACE, gone).await.is_err() {
        for c in &containers {
            let _ = quiet(vec!["rm".into(), "-f".into(), c.to_string()])
                .status()
                .await;
        }
    }
}

/// Run every host; the first failure ends the others and is the verdict. An interrupt is
/// passed to the containers (or host mode's processes) as SIGTERM, and ends the run with its
/// exit code (130, 143). `secrets` are set in each process's environment, never on a command
/// line, and are kept out of the log.
pub async fn run(
    ui: &Ui,
    runner: Runner<'_>,
    hosts: &[Host],
    secrets: &BTreeMap<String, String>,
    log: &Path,
) -> Result<Outcome> {
    let start = Instant::now();
    let log_file = std::fs::File::create(log).map_err(|e| io_error("create", log, e))?;
    let log_file = Arc::new(Mutex::new(log_file));
    // Claimed before the containers start, so that no interrupt is lost in between.
    let mut claim = crate::signals::claim();
    let mut children = Vec::new();
    let mut readers = Vec::new();
    let mut pids = Vec::new();
    for h in hosts {
        let program = match runner {
            Runner::Engine(e) => e.path.clone(),
            Runner::Host => h.program.clone().into(),
        };
        let mut cmd = Command::new(&program);
        cmd.args(&h.argv)
            .envs(h.env.iter().map(|(k, v)| (k, v)))
            .envs(secrets)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if let Some(cwd) = &h.cwd {
            cmd.current_dir(cwd);
        }
        if let Runner::Host = runner {
            // Its own process group: an interrupt reaches it (and what it starts) once, from
            // here, as SIGTERM.
            cmd.process_group(0);
        }
        let mut child = cmd.spawn().map_err(|e| {
            let hint = match runner {
                Runner::Engine(_) => {
                    "check the engine with `ENGINE info`, or choose another with --engine"
                }
                Runner::Host => {
                    "check the python with `PYTHON --version`, or give another with --python"
                }
            };
            Error::internal(format!("cannot run {}: {e}", program.display())).with_hint(hint)
        })?;
        pids.push(child.id());
        let out = child
            .stdout
            .take()
            .map(|o| Box::new(o) as Box<dyn tokio::io::AsyncRead + Unpin + Send>);
        let err = child
            .stderr
            .take()
            .map(|o| Box::new(o) as Box<dyn tokio::io::AsyncRead + Unpin + Send>);
        for stream in [out, err].into_iter().flatten() {
            let (ui, log, host) = (ui.clone(), log_file.clone(), h.name.clone());
            readers.push(tokio::spawn(async move {
                let mut lines = BufReader::new(stream).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    let line = format!("[{host}] {line}");
                    ui.info(&line);
                    if let Ok(mut f) = log.lock() {
                        let _ = writeln!(f, "{}", crate::secrets::redact(&line));
                    }
                }
            }));
        }
        children.push((h, child));
    }
    let mut waits: futures::stream::FuturesUnordered<_> = children
        .into_iter()
        .map(|(h, mut child)| async move { (h, child.wait().await) })
        .collect();
    let mut first_failure: Option<(&Host, i32)> = None;
    loop {
        use futures::StreamExt;
        tokio::select! {
            next = waits.next() => {
                let Some((h, status)) = next else { break };
                let status = status.map_err(|e| Error::internal(format!("waiting for {}: {e}", h.name)))?;
                let code = exit_code(&status);
                if let (Runner::Engine(engine), 125, None) = (runner, code, &first_failure) {
                    stop(runner, hosts, &pids, true).await;
                    return Err(Error::usage(format!(
                        "{} could not start the container of {} (exit 125; its message is above)",
                        engine.name, h.name
                    ))
                    .with_hint("check the image and the engine (`sagetrain train --local --dry-run` prints the command line to try by hand)"));
                }
                if code != 0 && first_failure.is_none() {
                    first_failure = Some((h, code));
                    if !waits.is_empty() {
                        ui.info(&format!("{} failed (exit {code}): stopping the other hosts", h.name));
                        stop(runner, hosts, &pids, false).await;
                    }
                }
            }
            sig = claim.recv() => {
                let what = match runner {
                    Runner::Engine(_) => "the containers (they have {}s to end), then removing them",
                    Runner::Host => "the entry (it has {}s to end), then killing it",
                };
                ui.info(&format!(
                    "{}: passing SIGTERM to {}",
                    sig.name(), what.replace("{}", &GRACE.as_secs().to_string())
                ));
                stop(runner, hosts, &pids, false).await;
                drain(readers).await;
                return Err(interrupted(sig, log));
            }
        }
    }
    drain(readers).await;
    let (exit_code, failed_host, failure) = match first_failure {
        None => (0, None, None),
        Some((h, code)) => (code, Some(h.name.clone()), read_failure(&h.tree)),
    };
    Ok(Outcome {
        exit_code,
        failed_host,
        failure,
        duration: start.elapsed(),
    })
}

/// A process's exit code, or 128 + N when signal N ended it (as a shell says it).
fn exit_code(status: &std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(1)
}

async fn drain(readers: Vec<tokio::task::JoinHandle<()>>) {
    for r in readers {
        let _ = tokio::time::timeout(Duration::from_secs(5), r).await;
    }
}

fn interrupted(sig: Signal, log: &Path) -> Error {
    Error::new(
        sig.kind(),
        format!("interrupted ({}): the local run was stopped", sig.name()),
    )
    .with_hint(format!(
        "its log is {}; run the same command again to start over",
        log.display()
    ))
}

/// The failure reason a host wrote to `output/failure`, trimmed.
pub fn read_failure(tree: &Path) -> Option<String> {
    let text = std::fs::read_to_string(tree.join("output/failure")).ok()?;
    let t = text.trim();
    (!t.is_empty()).then(|| t.to_string())
}

/// Pack the files under `dir` into the gzip tarball `out`, named relative to `dir` (as
/// SageMaker packs `/opt/ml/model` into model.tar.gz). Returns the number of files.
pub fn pack(dir: &Path, out: &Path) -> Result<usize> {
    let f = std::fs::File::create(out).map_err(|e| io_error("create", out, e))?;
    let gz = flate2::write::GzEncoder::new(f, flate2::Compression::default());
    let mut b = tar::Builder::new(gz);
    b.follow_symlinks(false);
    let mut count = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let mut entries: Vec<_> = std::fs::read_dir(&d)
            .map_err(|e| io_error("read", &d, e))?
            .filter_map(|e| e.ok())
            .collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let p = e.path();
            let rel = p.strip_prefix(dir).unwrap_or(&p).to_path_buf();
            let kind = e.file_type().map_err(|e| io_error("read", &p, e))?;
            if kind.is_dir() {
                b.append_dir(&rel, &p)
                    .map_err(|e| io_error("pack", &p, e))?;
                stack.push(p);
            } else {
                b.append_path_with_name(&p, &rel)
                    .map_err(|e| io_error("pack", &p, e))?;
                count += 1;
            }
        }
    }
    let gz = b.into_inner().map_err(|e| io_error("write", out, e))?;
    gz.finish().map_err(|e| io_error("write", out, e))?;
    Ok(count)
}

/// `--secret NAME=ID` of a local run: the value, read with this machine's credentials (a job
/// reads it with its execution role), and registered so that no output shows it.
pub async fn read_secret(
    client: &aws_sdk_secretsmanager::Client,
    name: &str,
    r: &crate::config::Val<crate::job::secret::SecretRef>,
) -> Result<String> {
    let what = format!("secret {name} ({})", r.source.name_for(Some(name)));
    let id = &r.value.id;
    let got = client
        .get_secret_value()
        .secret_id(id)
        .send()
        .await
        .map_err(|e| match crate::aws::error_code(&e).as_deref() {
            Some("ResourceNotFoundException") => Error::aws(format!(
                "{what}: there is no secret `{id}` in Secrets Manager in this region"
            ))
            .with_hint(format!(
                "check the name (aws secretsmanager describe-secret --secret-id {id}), or pass a test value with --env {name}=VALUE"
            )),
            Some("AccessDeniedException") => Error::aws(format!(
                "{what}: you may not secretsmanager:GetSecretValue `{id}` (AccessDenied); a local run reads the secret with your credentials, where a job uses its execution role"
            ))
            .with_hint(format!(
                "ask for secretsmanager:GetSecretValue on it for your own identity, or pass a test value with --env {name}=VALUE"
            )),
            _ => crate::aws::aws_error("secretsmanager:GetSecretValue", &e),
        })?;
    let Some(text) = got.secret_string() else {
        return Err(Error::usage(format!(
            "{what}: `{id}` is a binary secret; a job's variable holds text"
        ))
        .with_hint("store the token as a secret string"));
    };
    let value = match &r.value.json_key {
        None => text.to_string(),
        Some(key) => {
            let parsed: serde_json::Value = serde_json::from_str(text).map_err(|_| {
                Error::usage(format!(
                    "{what}: `{id}` is not a JSON object, so it has no key `{key}`"
                ))
                .with_hint(format!("drop `:{key}` to take the whole secret"))
            })?;
            match parsed.get(key) {
                Some(serde_json::Value::String(s)) => s.clone(),
                Some(v) => v.to_string(),
                None => {
                    return Err(Error::usage(format!(
                        "{what}: the JSON of `{id}` has no key `{key}`"
                    ))
                    .with_hint("name one of its keys after the `:`"))
                }
            }
        }
    };
    crate::secrets::register(&value);
    Ok(value)
}

/// The python of host mode: `--python` (a path, or a name looked up on PATH), else `python3`;
/// with its version (`PYTHON --version`).
pub async fn find_python(
    given: Option<&crate::config::Val<String>>,
    cwd: &Path,
    path_var: &str,
) -> Result<(std::path::PathBuf, String)> {
    let (name, what) = match given {
        Some(v) => (v.value.clone(), v.source.name_for(None)),
        None => ("python3".to_string(), "python3".to_string()),
    };
    let path = if name.contains('/') {
        let v = crate::config::Val::new(
            name.clone(),
            given.map_or(crate::config::Source::Default, |g| g.source.clone()),
        );
        match crate::refs::channel_location(&v, cwd) {
            Ok(crate::refs::ChannelLocation::Local(p)) if p.is_file() => Some(p),
            _ => None,
        }
    } else {
        crate::image::engine::on_path(&name, path_var)
    };
    let Some(path) = path else {
        return Err(Error::usage(format!(
            "{what}: there is no python `{name}` on this machine, and host mode runs the entry with it"
        ))
        .with_hint("give its path with --python PATH (or `python` in sagetrain.toml), or run the image with --local"));
    };
    let out = Command::new(&path)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|e| {
            Error::usage(format!("{what}: cannot run {}: {e}", path.display()))
                .with_hint("give a working python with --python PATH")
        })?;
    let text = String::from_utf8_lossy(if out.stdout.is_empty() {
        &out.stderr
    } else {
        &out.stdout
    })
    .trim()
    .to_string();
    if !out.status.success() || !text.starts_with("Python ") {
        return Err(Error::usage(format!(
            "{what}: {} is not a python (`--version` said `{text}`)",
            path.display()
        ))
        .with_hint("give a python with --python PATH"));
    }
    Ok((path, text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pack_names_files_relative_to_the_folder() {
        let d = tempfile::tempdir().unwrap();
        let model = d.path().join("model");
        std::fs::create_dir_all(model.join("sub")).unwrap();
        std::fs::write(model.join("model.pth"), "w").unwrap();
        std::fs::write(model.join("sub/x.json"), "{}").unwrap();
        let out = d.path().join("model.tar.gz");
        assert_eq!(pack(&model, &out).unwrap(), 2);
        let gz = flate2::read::GzDecoder::new(std::fs::File::open(&out).unwrap());
        let mut names: Vec<String> = tar::Archive::new(gz)
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        names.sort();
        assert_eq!(names, ["model.pth", "sub", "sub/x.json"]);
    }

    #[test]
    fn the_failure_reason_is_read_trimmed() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(read_failure(d.path()), None);
        std::fs::create_dir_all(d.path().join("output")).unwrap();
        std::fs::write(d.path().join("output/failure"), "bad lr\n").unwrap();
        assert_eq!(read_failure(d.path()).as_deref(), Some("bad lr"));
    }
}
