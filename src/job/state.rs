//! The project's small local state: the last job submitted from it, so that `sagetrain status`
//! (and `wait`, `logs`, `download`) can omit the job name.
//!
//! It lives in `<project>/.sagetrain/state.json`, where the project is the folder of the
//! `sagetrain.toml` in effect, or else the current folder. The folder is made 0700 and the file
//! 0600, and it never holds anything secret: a job name, its ARN, its region, a time and its
//! keep-alive.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

pub const STATE_DIR: &str = ".sagetrain";
pub const STATE_FILE: &str = "state.json";

/// The last job submitted from a project.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastJob {
    pub job_name: String,
    pub job_arn: String,
    pub region: String,
    /// RFC 3339, UTC.
    pub submitted_at: String,
    /// The job keeps its instances this long after it ends (`--keep-alive`): the next job of
    /// the project looks for its warm pool. Absent from files written before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_alive_seconds: Option<i32>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct StateFile {
    last_job: Option<LastJob>,
}

/// The project folder: that of the config file in effect, or the current folder.
pub fn project_dir(config_file: Option<&Path>, cwd: &Path) -> PathBuf {
    config_file
        .and_then(|p| p.parent())
        .filter(|p| !p.as_os_str().is_empty())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| cwd.to_path_buf())
}

pub fn state_path(project: &Path) -> PathBuf {
    project.join(STATE_DIR).join(STATE_FILE)
}

/// Record the last job: the folder 0700, the file 0600, written atomically (`fsutil`).
pub fn record(project: &Path, job: &LastJob) -> std::io::Result<PathBuf> {
    write_state(
        project,
        STATE_FILE,
        &StateFile {
            last_job: Some(job.clone()),
        },
    )
}

/// The project's `.sagetrain/`, made 0700 and kept out of version control when missing.
pub fn state_dir(project: &Path) -> std::io::Result<PathBuf> {
    let dir = project.join(STATE_DIR);
    if !dir.is_dir() {
        crate::fsutil::create_private_dir_all(&dir)?;
        // Keep it out of version control without touching the project's .gitignore.
        crate::fsutil::write_private(&dir.join(".gitignore"), b"*\n")?;
    }
    Ok(dir)
}

/// Write one of the state files of `.sagetrain/` (made 0700 and kept out of version control).
fn write_state<T: Serialize>(project: &Path, file: &str, value: &T) -> std::io::Result<PathBuf> {
    let dir = state_dir(project)?;
    let mut text = serde_json::to_string_pretty(value).map_err(std::io::Error::other)?;
    text.push('\n');
    let path = dir.join(file);
    crate::fsutil::write_private(&path, text.as_bytes())?;
    Ok(path)
}

/// Read one of the state files; `None` when it does not exist.
fn read_state<T: serde::de::DeserializeOwned>(path: &Path, writer: &str) -> Result<Option<T>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(Error::internal(format!(
                "cannot read {}: {e}",
                path.display()
            )))
        }
    };
    serde_json::from_str(&text).map(Some).map_err(|e| {
        Error::usage(format!(
            "{} is not a sagetrain state file: {e}",
            path.display()
        ))
        .with_hint(format!(
            "delete it (rm {}); the next `{writer}` writes a new one",
            path.display()
        ))
    })
}

/// The last job recorded in this project, if any.
pub fn load(project: &Path) -> Result<Option<LastJob>> {
    let state: Option<StateFile> = read_state(&state_path(project), "sagetrain train")?;
    Ok(state.and_then(|s| s.last_job))
}

// ---- The last tuning job (`sagetrain tune`), in a file of its own. ----

pub const TUNING_FILE: &str = "tuning.json";

/// The last tuning job submitted from a project.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastTuningJob {
    pub tuning_job_name: String,
    pub tuning_job_arn: String,
    pub region: String,
    /// RFC 3339, UTC.
    pub submitted_at: String,
}

pub fn tuning_state_path(project: &Path) -> PathBuf {
    project.join(STATE_DIR).join(TUNING_FILE)
}

/// Record the last tuning job, like [`record`].
pub fn record_tuning(project: &Path, job: &LastTuningJob) -> std::io::Result<PathBuf> {
    write_state(project, TUNING_FILE, job)
}

/// The last tuning job recorded in this project, if any.
pub fn load_tuning(project: &Path) -> Result<Option<LastTuningJob>> {
    read_state(&tuning_state_path(project), "sagetrain tune")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job() -> LastJob {
        LastJob {
            job_name: "unet-2026-11-29-09-14-42-123".into(),
            job_arn:
                "arn:aws:sagemaker:eu-west-1:111122223333:training-job/unet-2026-11-29-09-14-42-123"
                    .into(),
            region: "eu-west-1".into(),
            submitted_at: "2026-11-29T09:14:42Z".into(),
            keep_alive_seconds: None,
        }
    }

    #[test]
    fn the_project_is_the_config_files_folder_or_the_current_one() {
        let cwd = Path::new("/work/project/sub");
        assert_eq!(
            project_dir(Some(Path::new("/work/project/sagetrain.toml")), cwd),
            PathBuf::from("/work/project")
        );
        assert_eq!(project_dir(None, cwd), cwd.to_path_buf());
        assert_eq!(
            project_dir(Some(Path::new("sagetrain.toml")), cwd),
            cwd.to_path_buf()
        );
    }

    #[test]
    fn record_and_load_with_private_permissions() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(load(dir.path()).unwrap(), None);
        let path = record(dir.path(), &job()).unwrap();
        assert_eq!(load(dir.path()).unwrap(), Some(job()));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&path), 0o600);
            assert_eq!(mode(&dir.path().join(STATE_DIR)), 0o700);
        }
        let mut second = job();
        second.job_name = "unet-2".into();
        record(dir.path(), &second).unwrap();
        assert_eq!(load(dir.path()).unwrap().unwrap().job_name, "unet-2");
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.to_ascii_lowercase().contains("secret"));
        assert_eq!(
            std::fs::read_to_string(dir.path().join(STATE_DIR).join(".gitignore")).unwrap(),
            "*\n"
        );
        std::fs::write(&path, "{not json").unwrap();
        assert_eq!(load(dir.path()).unwrap_err().exit_code(), 2);
    }

    #[test]
    fn the_last_tuning_job_has_a_file_of_its_own() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(load_tuning(dir.path()).unwrap(), None);
        record(dir.path(), &job()).unwrap();
        let t = LastTuningJob {
            tuning_job_name: "unet-261130-112048-ab12".into(),
            tuning_job_arn: "arn:aws:sagemaker:eu-west-1:111122223333:hyper-parameter-tuning-job/unet-261130-112048-ab12".into(),
            region: "eu-west-1".into(),
            submitted_at: "2026-11-30T11:20:48Z".into(),
        };
        let path = record_tuning(dir.path(), &t).unwrap();
        assert_eq!(path, tuning_state_path(dir.path()));
        assert_eq!(load_tuning(dir.path()).unwrap(), Some(t));
        assert_eq!(
            load(dir.path()).unwrap(),
            Some(job()),
            "the last training job is kept"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
    }
}
