//! The record of a local run: `run.json` in its folder (`.sagetrain/local/<job-name>/`), written
//! when the containers start (InProgress) and again when they end (Completed, Failed or
//! Stopped). `sagetrain status --local` shows it and `sagetrain metrics --local` parses the
//! run's log with its metric definitions. Plain data and file reads and writes; no process is
//! started here.

use super::{Host, Mode, LOCAL_DIR, LOG_FILE};
use crate::error::{Error, Kind, Result};
use crate::job::request::{CreateTrainingJobRequest, MetricDefinition};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// The record's file, in the run's folder.
pub const RECORD_FILE: &str = "run.json";

/// Where a run is, in SageMaker's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Status {
    InProgress,
    Completed,
    Failed,
    Stopped,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::InProgress => "InProgress",
            Status::Completed => "Completed",
            Status::Failed => "Failed",
            Status::Stopped => "Stopped",
        }
    }
}

/// One local run, as `run.json` holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LocalRun {
    pub job_name: String,
    pub folder: PathBuf,
    /// `container` or `host`.
    pub mode: String,
    /// The image a container run used (none in host mode).
    pub image: Option<String>,
    /// The container engine (none in host mode).
    pub engine: Option<String>,
    pub hosts: Vec<String>,
    /// RFC 3339, UTC, to the millisecond.
    pub started: String,
    /// None while it runs.
    pub ended: Option<String>,
    pub status: Status,
    /// None while it runs; 0, or the exit code of the first host that failed.
    pub exit_code: Option<i32>,
    pub failed_host: Option<String>,
    pub failure_reason: Option<String>,
    pub duration_seconds: Option<f64>,
    /// As in the request's AlgorithmSpecification.MetricDefinitions.
    pub metric_definitions: Vec<MetricDefinition>,
    pub hyperparameters: BTreeMap<String, String>,
    /// The sagetrain process that runs it (to tell a run that goes on from one whose process
    /// was killed before it could record a verdict).
    pub pid: Option<u32>,
}

fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

fn secs(d: Duration) -> f64 {
    (d.as_secs_f64() * 10.0).round() / 10.0
}

/// The record of a run of `req` in `dir` that starts now (InProgress).
pub fn begin(
    req: &CreateTrainingJobRequest,
    dir: &Path,
    mode: Mode,
    engine: Option<&str>,
    hosts: &[Host],
) -> LocalRun {
    begin_at(req, dir, mode, engine, hosts, SystemTime::now())
}

fn begin_at(
    req: &CreateTrainingJobRequest,
    dir: &Path,
    mode: Mode,
    engine: Option<&str>,
    hosts: &[Host],
    now: SystemTime,
) -> LocalRun {
    let container = mode == Mode::Container;
    LocalRun {
        job_name: req.training_job_name.clone(),
        folder: dir.to_path_buf(),
        mode: if container { "container" } else { "host" }.into(),
        image: container.then(|| req.algorithm_specification.training_image.clone()),
        engine: engine.filter(|_| container).map(str::to_string),
        hosts: hosts.iter().map(|h| h.name.clone()).collect(),
        started: rfc3339(now),
        ended: None,
        status: Status::InProgress,
        exit_code: None,
        failed_host: None,
        failure_reason: None,
        duration_seconds: None,
        metric_definitions: req.algorithm_specification.metric_definitions.clone(),
        hyperparameters: req.hyper_parameters.clone(),
        pid: Some(std::process::id()),
    }
}

/// The run's end, from what [`super::run::run`] returned: Completed when the entry exited 0,
/// Failed with the first failure (or the error that ended the run), Stopped on an interrupt.
pub fn finish(run: &mut LocalRun, result: &Result<super::run::Outcome>) {
    finish_at(run, result, SystemTime::now())
}

fn finish_at(run: &mut LocalRun, result: &Result<super::run::Outcome>, now: SystemTime) {
    run.ended = Some(rfc3339(now));
    let elapsed = humantime::parse_rfc3339(&run.started)
        .ok()
        .and_then(|s| now.duration_since(s).ok());
    match result {
        Ok(o) => {
            run.status = match o.exit_code {
                0 => Status::Completed,
                _ => Status::Failed,
            };
            run.exit_code = Some(o.exit_code);
            run.failed_host = o.failed_host.clone();
            run.failure_reason = match (o.exit_code, &o.failure) {
                (0, _) => None,
                (_, Some(f)) => Some(f.clone()),
                (_, None) => Some(format!(
                    "exit {} without output/failure (see {LOG_FILE})",
                    o.exit_code
                )),
            };
            run.duration_seconds = Some(secs(o.duration));
        }
        Err(e) => {
            let stopped = matches!(e.kind, Kind::Interrupted | Kind::Terminated);
            run.status = if stopped {
                Status::Stopped
            } else {
                Status::Failed
            };
            run.exit_code = Some(e.exit_code());
            run.failure_reason = Some(e.message.clone());
            run.duration_seconds = elapsed.map(secs);
        }
    }
}

/// Whether the sagetrain process with this pid is alive (kill(pid, 0): it exists, ours or not).
#[cfg(unix)]
pub fn process_alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    if pid <= 0 {
        return false;
    }
    // SAFETY: signal 0 only checks that the process exists and may be signalled.
    let r = unsafe { libc::kill(pid, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

#[cfg(not(unix))]
pub fn process_alive(_pid: u32) -> bool {
    true
}

impl LocalRun {
    /// Still running: InProgress, and the process that runs it is alive.
    pub fn running(&self, alive: &dyn Fn(u32) -> bool) -> bool {
        self.status == Status::InProgress && self.pid.is_none_or(alive)
    }

    /// The status as said to a person: an InProgress record whose process is gone was never
    /// finished (the process was killed hard), and says so.
    pub fn status_text(&self, alive: &dyn Fn(u32) -> bool) -> String {
        match (self.status, self.pid) {
            (Status::InProgress, Some(pid)) if !alive(pid) => format!(
                "InProgress (or ended without a verdict: no sagetrain process is running it; pid {pid} is gone)"
            ),
            (s, _) => s.as_str().to_string(),
        }
    }

    /// The record with `running` added: what `status --local -o json` prints.
    pub fn to_json(&self, alive: &dyn Fn(u32) -> bool) -> serde_json::Value {
        let mut v = serde_json::to_value(self).unwrap_or_default();
        if let Some(m) = v.as_object_mut() {
            m.insert("running".into(), self.running(alive).into());
        }
        v
    }

    /// Aligned `key  value` lines, as `sagetrain status` shows a job.
    pub fn to_text(&self, alive: &dyn Fn(u32) -> bool) -> String {
        let mut rows: Vec<(&str, String)> = vec![
            ("local run", self.job_name.clone()),
            ("status", self.status_text(alive)),
        ];
        if let Some(r) = &self.failure_reason {
            rows.push(("failure reason", r.clone()));
        }
        if let Some(c) = self.exit_code {
            let mut t = c.to_string();
            if let Some(h) = &self.failed_host {
                t.push_str(&format!(" (on {h})"));
            }
            rows.push(("exit code", t));
        }
        match &self.ended {
            Some(e) => rows.push(("ran", format!("{} to {e}", self.started))),
            None => rows.push(("started", self.started.clone())),
        }
        if let Some(d) = self.duration_seconds {
            rows.push(("duration", format!("{d:.1}s")));
        }
        let mut mode = format!("{} x {}", self.hosts.len(), self.mode);
        if let Some(e) = &self.engine {
            mode.push_str(&format!(" under {e}"));
        }
        rows.push(("hosts", format!("{} ({mode})", self.hosts.join(", "))));
        if let Some(i) = &self.image {
            rows.push(("image", i.clone()));
        }
        if !self.hyperparameters.is_empty() {
            let hp: Vec<String> = self
                .hyperparameters
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            rows.push(("hyperparameters", hp.join(" ")));
        }
        if !self.metric_definitions.is_empty() {
            let m: Vec<&str> = self
                .metric_definitions
                .iter()
                .map(|m| m.name.as_str())
                .collect();
            rows.push((
                "metrics",
                format!(
                    "{} (sagetrain metrics --local {})",
                    m.join(", "),
                    self.job_name
                ),
            ));
        }
        rows.push(("folder", self.folder.display().to_string()));
        rows.push(("log", self.folder.join(LOG_FILE).display().to_string()));
        let w = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
        rows.iter()
            .map(|(k, v)| format!("{k:w$}  {v}"))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

fn io_error(what: &str, path: &Path, e: impl std::fmt::Display) -> Error {
    Error::internal(format!("cannot {what} {}: {e}", path.display()))
}

/// Write the record into `dir`, atomically (a temporary file, then renamed), private.
pub fn write(dir: &Path, run: &LocalRun) -> Result<()> {
    let path = dir.join(RECORD_FILE);
    let mut text = serde_json::to_string_pretty(run).map_err(|e| io_error("write", &path, e))?;
    text.push('\n');
    crate::fsutil::write_private(&path, text.as_bytes())
        .map_err(|e| io_error("write", &path, e))
        .map_err(|e| e.with_hint("check the permissions and free space of the project folder"))
}

/// Write the record, or say on stderr why it could not be: the run goes on without it.
pub fn write_or_warn(ui: &crate::ui::Ui, dir: &Path, run: &LocalRun) {
    if let Err(e) = write(dir, run) {
        ui.warn(&format!(
            "{}; `sagetrain status --local` will not know this run",
            e.message
        ));
    }
}

/// Read the record of the run in `dir`.
pub fn read(dir: &Path) -> Result<LocalRun> {
    let path = dir.join(RECORD_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| {
        io_error("read", &path, e).with_hint(
            "a run started before sagetrain recorded runs has no run.json; run it again: sagetrain train --local",
        )
    })?;
    serde_json::from_str(&text).map_err(|e| {
        io_error("parse", &path, e).with_hint(
            "the file was changed by hand or cut short; run the job again: sagetrain train --local",
        )
    })
}

/// The folder that holds a project's local runs.
pub fn runs_dir(project: &Path) -> PathBuf {
    project.join(crate::job::state::STATE_DIR).join(LOCAL_DIR)
}

/// Every recorded local run of the project, newest first (by `started`, then name). Folders
/// without a readable `run.json` are left out.
pub fn list(project: &Path) -> Vec<LocalRun> {
    let Ok(entries) = std::fs::read_dir(runs_dir(project)) else {
        return Vec::new();
    };
    let mut runs: Vec<LocalRun> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .filter_map(|e| read(&e.path()).ok())
        .collect();
    let when = |r: &LocalRun| humantime::parse_rfc3339(&r.started).ok();
    runs.sort_by(|a, b| {
        (when(b), &b.started, &b.job_name).cmp(&(when(a), &a.started, &a.job_name))
    });
    runs
}

/// The newest recorded local run of the project.
pub fn latest(project: &Path) -> Option<LocalRun> {
    list(project).into_iter().next()
}

/// The run to show: the one named (its folder must hold a record), else the newest. Errors
/// (exit 2) name the runs there are.
pub fn find(project: &Path, name: Option<&str>) -> Result<LocalRun> {
    let runs = list(project);
    let known = || {
        runs.iter()
            .take(20)
            .map(|r| format!("{}  {}  {}", r.job_name, r.started, r.status.as_str()))
            .collect::<Vec<_>>()
    };
    let none_hint = "no local runs in this project: run `sagetrain train --local`";
    match name {
        None => latest(project).ok_or_else(|| {
            Error::usage(format!(
                "no local run recorded in {}",
                runs_dir(project).display()
            ))
            .with_hint(none_hint)
        }),
        Some(n) => {
            if let Err(rule) = crate::job::spec::check_job_name(n) {
                return Err(Error::usage(format!("NAME: {rule}"))
                    .with_hint("name a local run: sagetrain status --local NAME"));
            }
            let dir = super::run_dir(project, n);
            if dir.join(RECORD_FILE).is_file() {
                return read(&dir);
            }
            let why = if dir.is_dir() {
                format!("{} has no {RECORD_FILE}", dir.display())
            } else {
                format!("{} does not exist", dir.display())
            };
            let e = Error::usage(format!("no local run `{n}` in this project: {why}"));
            Err(match runs.is_empty() {
                true => e.with_hint(none_hint),
                false => e.with_details(known()).with_hint(
                    "name one of the local runs above, or leave NAME out for the newest",
                ),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::local::run::Outcome;
    use crate::job::request::{
        AlgorithmSpecification, OutputDataConfig, ResourceConfig, StoppingCondition,
    };

    fn outcome(code: i32, host: Option<&str>, failure: Option<&str>, secs: f64) -> Outcome {
        Outcome {
            exit_code: code,
            failed_host: host.map(str::to_string),
            failure: failure.map(str::to_string),
            duration: Duration::from_secs_f64(secs),
        }
    }

    fn req() -> CreateTrainingJobRequest {
        CreateTrainingJobRequest {
            training_job_name: "unet-1".into(),
            hyper_parameters: BTreeMap::from([("epochs".into(), "3".into())]),
            algorithm_specification: AlgorithmSpecification {
                training_image: "unet:dev".into(),
                training_input_mode: "File".into(),
                metric_definitions: vec![MetricDefinition {
                    name: "loss".into(),
                    regex: "loss=([0-9.]+)".into(),
                }],
                container_entrypoint: vec![],
                container_arguments: vec![],
            },
            role_arn: super::super::placeholder::ROLE_ARN.into(),
            input_data_config: vec![],
            output_data_config: OutputDataConfig {
                s3_output_path: super::super::placeholder::OUTPUT_PATH.into(),
                kms_key_id: None,
            },
            resource_config: ResourceConfig {
                instance_type: Some("ml.g5.xlarge".into()),
                instance_preferences: vec![],
                instance_count: 2,
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
            environment: BTreeMap::new(),
            retry_strategy: None,
            remote_debug_config: None,
        }
    }

    fn hosts(dir: &Path) -> Vec<Host> {
        crate::job::local::plan(
            &req(),
            dir,
            "unet:dev",
            &BTreeMap::new(),
            &[],
            &crate::job::local::Machine {
                engine: "podman".into(),
                gpus: 0,
                cpus: 2,
            },
        )
    }

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + secs)
    }

    fn started(dir: &Path, job: &str, secs: u64) -> LocalRun {
        let mut r = req();
        r.training_job_name = job.into();
        begin_at(
            &r,
            dir,
            Mode::Container,
            Some("podman"),
            &hosts(dir),
            at(secs),
        )
    }

    #[test]
    fn a_run_begins_in_progress_with_the_requests_definitions() {
        let r = started(Path::new("/p/.sagetrain/local/unet-1"), "unet-1", 0);
        assert_eq!(r.status, Status::InProgress);
        assert_eq!(r.hosts, ["algo-1", "algo-2"]);
        assert_eq!(r.image.as_deref(), Some("unet:dev"));
        assert_eq!(r.engine.as_deref(), Some("podman"));
        assert_eq!(r.started, "2027-01-15T08:00:00.000Z");
        assert_eq!(r.pid, Some(std::process::id()));
        let j = serde_json::to_value(&r).unwrap();
        assert_eq!(j["status"], "InProgress");
        assert_eq!(j["mode"], "container");
        assert_eq!(j["ended"], serde_json::Value::Null);
        assert_eq!(j["exit_code"], serde_json::Value::Null);
        assert_eq!(
            j["metric_definitions"],
            serde_json::json!([{"Name": "loss", "Regex": "loss=([0-9.]+)"}])
        );
        assert_eq!(j["hyperparameters"]["epochs"], "3");
        let host = begin_at(
            &req(),
            Path::new("/t"),
            Mode::Host,
            Some("podman"),
            &[],
            at(0),
        );
        assert_eq!((host.image, host.engine), (None, None));
    }

    #[test]
    fn the_end_is_completed_failed_or_stopped() {
        let mut r = started(Path::new("/t"), "j", 0);
        finish_at(&mut r, &Ok(outcome(0, None, None, 4.26)), at(5));
        assert_eq!(r.status, Status::Completed);
        assert_eq!(r.exit_code, Some(0));
        assert_eq!(r.failure_reason, None);
        assert_eq!(r.duration_seconds, Some(4.3));
        assert_eq!(r.ended.as_deref(), Some("2027-01-15T08:00:05.000Z"));

        let mut r = started(Path::new("/t"), "j", 0);
        let failed = outcome(3, Some("algo-2"), Some("bad lr"), 1.0);
        finish_at(&mut r, &Ok(failed), at(1));
        assert_eq!(r.status, Status::Failed);
        assert_eq!(
            (
                r.exit_code,
                r.failed_host.as_deref(),
                r.failure_reason.as_deref()
            ),
            (Some(3), Some("algo-2"), Some("bad lr"))
        );
        let mut r = started(Path::new("/t"), "j", 0);
        finish_at(&mut r, &Ok(outcome(2, Some("algo-1"), None, 1.0)), at(1));
        assert_eq!(
            r.failure_reason.as_deref(),
            Some("exit 2 without output/failure (see train.log)")
        );

        let mut r = started(Path::new("/t"), "j", 0);
        let sigterm = Error::new(
            Kind::Terminated,
            "interrupted (SIGTERM): the local run was stopped",
        );
        finish_at(&mut r, &Err(sigterm), at(7));
        assert_eq!(r.status, Status::Stopped);
        assert_eq!(r.exit_code, Some(143));
        assert_eq!(r.duration_seconds, Some(7.0));
        assert!(r.failure_reason.unwrap().contains("SIGTERM"));

        let mut r = started(Path::new("/t"), "j", 0);
        finish_at(&mut r, &Err(Error::usage("podman could not start")), at(1));
        assert_eq!((r.status, r.exit_code), (Status::Failed, Some(2)));
    }

    #[test]
    fn a_record_whose_process_is_gone_says_it_has_no_verdict() {
        let r = started(Path::new("/t"), "j", 0);
        let gone = |_: u32| false;
        let alive = |_: u32| true;
        assert!(r.status_text(&gone).starts_with(
            "InProgress (or ended without a verdict: no sagetrain process is running it"
        ));
        assert_eq!(r.status_text(&alive), "InProgress");
        assert_eq!(r.to_json(&gone)["running"], false);
        assert_eq!(r.to_json(&alive)["running"], true);
        assert_eq!(r.to_json(&gone)["status"], "InProgress");
        assert!(process_alive(std::process::id()));
        assert!(!process_alive(0));
        let mut done = r.clone();
        finish_at(&mut done, &Ok(outcome(0, None, None, 1.0)), at(1));
        assert_eq!(done.status_text(&gone), "Completed");
        assert_eq!(done.to_json(&gone)["running"], false);
        let text = done.to_text(&gone);
        crate::testing::assert_contains_all(
            &text,
            &[
                "local run        j\n",
                "status           Completed\n",
                "exit code        0\n",
                "ran              2027-01-15T08:00:00.000Z to 2027-01-15T08:00:01.000Z\n",
                "hosts            algo-1, algo-2 (2 x container under podman)\n",
                "metrics          loss (sagetrain metrics --local j)\n",
                "log              /t/train.log",
            ],
        );
    }

    #[test]
    fn records_are_written_atomically_read_back_and_listed_newest_first() {
        let d = tempfile::tempdir().unwrap();
        let project = d.path();
        assert!(list(project).is_empty());
        assert!(latest(project).is_none());
        let e = find(project, None).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert_eq!(
            e.hint.as_deref(),
            Some("no local runs in this project: run `sagetrain train --local`")
        );
        for (job, secs) in [("old", 0), ("new", 60), ("mid", 30)] {
            let dir = crate::job::local::run_dir(project, job);
            std::fs::create_dir_all(&dir).unwrap();
            let r = started(&dir, job, secs);
            write(&dir, &r).unwrap();
            assert_eq!(read(&dir).unwrap(), r);
        }
        // A folder without a record (a dry run, an older sagetrain) is not a run.
        std::fs::create_dir_all(crate::job::local::run_dir(project, "bare")).unwrap();
        let names: Vec<String> = list(project).into_iter().map(|r| r.job_name).collect();
        assert_eq!(names, ["new", "mid", "old"]);
        assert_eq!(latest(project).unwrap().job_name, "new");
        assert_eq!(find(project, None).unwrap().job_name, "new");
        assert_eq!(find(project, Some("old")).unwrap().job_name, "old");
        // Written again at the end: replaced whole, no temporary file left.
        let dir = crate::job::local::run_dir(project, "old");
        let mut r = read(&dir).unwrap();
        finish_at(&mut r, &Ok(outcome(0, None, None, 1.0)), at(1));
        write(&dir, &r).unwrap();
        assert_eq!(read(&dir).unwrap().status, Status::Completed);
        let files: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(files, [RECORD_FILE]);

        let e = find(project, Some("nope")).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(
            e.message.contains("no local run `nope` in this project"),
            "{e}"
        );
        assert_eq!(e.details.len(), 3, "{e}");
        assert!(
            e.details[0].starts_with("new  2027-01-15T08:01:00.000Z  InProgress"),
            "{e}"
        );
        let e = find(project, Some("bare")).unwrap_err();
        assert!(e.message.ends_with("has no run.json"), "{e}");
        assert_eq!(find(project, Some("a/b")).unwrap_err().exit_code(), 2);
        std::fs::write(dir.join(RECORD_FILE), "{").unwrap();
        let e = read(&dir).unwrap_err();
        assert!(e.message.starts_with("cannot parse"), "{e}");
    }
}
