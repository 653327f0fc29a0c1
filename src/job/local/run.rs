//! The edge of a local run: the tree written, the containers started under the engine, their
//! output streamed to stderr (`[algo-1] ...`) and to the run's log, an interrupt passed to the
//! containers, and the model and output packed as SageMaker packs them.

use super::Host;
use crate::error::{Error, Result};
use crate::image::engine::Engine;
use crate::signals::Signal;
use crate::ui::Ui;
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
    }
    Ok(())
}

/// Whether this machine has NVIDIA GPUs to hand to the container.
pub fn has_gpus() -> bool {
    Path::new("/dev/nvidiactl").exists() || Path::new("/dev/nvidia0").exists()
}

/// Whether the engine has `image` already (`ENGINE image inspect`).
pub async fn image_present(engine: &Engine, image: &str) -> bool {
    Command::new(&engine.path)
        .args(["image", "inspect", image])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await
        .is_ok_and(|s| s.success())
}

/// `ENGINE kill --signal TERM` then, after [`GRACE`] (or at once with `now`), `ENGINE rm -f`.
async fn stop(engine: &Engine, containers: &[String], now: bool) {
    let quiet = |args: Vec<String>| {
        let mut c = Command::new(&engine.path);
        c.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        c
    };
    if !now {
        for c in containers {
            let _ = quiet(vec![
                "kill".into(),
                "--signal".into(),
                "TERM".into(),
                c.clone(),
            ])
            .status()
            .await;
        }
    }
    let gone = async {
        for c in containers {
            // `ENGINE wait` ends when the container has (or at once when it is gone).
            let _ = quiet(vec!["wait".into(), c.clone()]).status().await;
        }
    };
    if now || tokio::time::timeout(GRACE, gone).await.is_err() {
        for c in containers {
            let _ = quiet(vec!["rm".into(), "-f".into(), c.clone()])
                .status()
                .await;
        }
    }
}

/// Run every host; the first failure ends the others and is the verdict. An interrupt is
/// passed to the containers as SIGTERM, and ends the run with its exit code (130, 143).
pub async fn run(ui: &Ui, engine: &Engine, hosts: &[Host], log: &Path) -> Result<Outcome> {
    let start = Instant::now();
    let log_file = std::fs::File::create(log).map_err(|e| io_error("create", log, e))?;
    let log_file = Arc::new(Mutex::new(log_file));
    // Claimed before the containers start, so that no interrupt is lost in between.
    let mut claim = crate::signals::claim();
    let mut children = Vec::new();
    let mut readers = Vec::new();
    for h in hosts {
        let mut child = Command::new(&engine.path)
            .args(&h.argv)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| {
                Error::internal(format!("cannot run {}: {e}", engine.path.display())).with_hint(
                    "check the engine with `ENGINE info`, or choose another with --engine",
                )
            })?;
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
    let containers: Vec<String> = hosts.iter().map(|h| h.container.clone()).collect();
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
                let status = status.map_err(|e| Error::internal(format!("waiting for {}: {e}", h.container)))?;
                let code = status.code().unwrap_or(1);
                if code == 125 && first_failure.is_none() {
                    stop(engine, &containers, true).await;
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
                        stop(engine, &containers, false).await;
                    }
                }
            }
            sig = claim.recv() => {
                ui.info(&format!(
                    "{}: passing SIGTERM to the containers (they have {}s to end), then removing them",
                    sig.name(), GRACE.as_secs()
                ));
                stop(engine, &containers, false).await;
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
