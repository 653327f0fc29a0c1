//! Code mode (`train --source DIR`): the folder is uploaded like a local data channel (same
//! scan, content addressing, hash cache and resume) to `s3://BUCKET/sagetrain/code/<digest>/`,
//! with the launcher (`launcher.sh`) added to it, and given to the job as the input channel
//! `code`. The job's image is used as a base: `ContainerEntrypoint` runs the launcher with
//! `/bin/sh`, `ContainerArguments` names the entry script.

use crate::data::manifest::{self, FileEntry};
use crate::data::scan::{self, ScanOptions, Scanned};
use crate::data::upload::Target;
use crate::error::{Error, Result};
use crate::ui::Ui;
use aws_sdk_sagemaker::operation::describe_training_job::DescribeTrainingJobOutput;
use std::path::{Path, PathBuf};

/// The launcher, shipped inside the code prefix.
pub const LAUNCHER: &str = include_str!("launcher.sh");
/// Its name in the code folder: hidden, so a file of the user's folder (hidden files are never
/// uploaded) cannot take its place.
pub const LAUNCHER_NAME: &str = ".sagetrain-launcher.sh";
/// The input channel that carries the code.
pub const CODE_CHANNEL: &str = "code";
/// The job tag naming the code's digest.
pub const CODE_DIGEST_TAG: &str = "sagetrain:code-digest";
/// The entry script when none is given.
pub const DEFAULT_ENTRY: &str = "train.py";
/// Where SageMaker puts the `code` channel.
pub const CODE_DIR: &str = "/opt/ml/input/data/code";

/// `AlgorithmSpecification.ContainerEntrypoint` of a code-mode job.
pub fn entrypoint() -> Vec<String> {
    vec!["/bin/sh".into(), format!("{CODE_DIR}/{LAUNCHER_NAME}")]
}

/// `AlgorithmSpecification.ContainerArguments`: the entry script, relative to the code folder.
pub fn arguments(entry: &str) -> Vec<String> {
    vec![entry.to_string()]
}

/// Is this `ContainerEntrypoint` sagetrain's launcher?
pub fn is_launcher(given: &[String]) -> bool {
    given == entrypoint().as_slice()
}

/// Did this job run sagetrain's launcher? (`train --from` reads its code back.)
pub fn job_is_code_mode(job: &DescribeTrainingJobOutput) -> bool {
    job.algorithm_specification()
        .is_some_and(|a| is_launcher(a.container_entrypoint()))
}

/// The code prefix of a code-mode job: its `code` channel.
pub fn job_code_uri(job: &DescribeTrainingJobOutput) -> Option<String> {
    if !job_is_code_mode(job) {
        return None;
    }
    job.input_data_config()
        .iter()
        .find(|c| c.channel_name() == Some(CODE_CHANNEL))
        .and_then(|c| c.data_source()?.s3_data_source()?.s3_uri())
        .map(str::to_string)
}

/// The entry script of a code-mode job: its first container argument.
pub fn job_entry(job: &DescribeTrainingJobOutput) -> Option<String> {
    if !job_is_code_mode(job) {
        return None;
    }
    job.algorithm_specification()?
        .container_arguments()
        .first()
        .cloned()
}

/// Where a code version goes in the bucket.
pub fn target(bucket: &str, digest: &str) -> Target {
    Target {
        bucket: bucket.to_string(),
        name: CODE_CHANNEL.to_string(),
        root: manifest::CODE_ROOT.to_string(),
        digest: digest.to_string(),
    }
}

/// The digest of a code URI `s3://BUCKET/sagetrain/code/<digest>/`, if it is one.
pub fn digest_of_uri(uri: &str) -> Option<String> {
    let rest = uri.strip_prefix("s3://")?;
    let (_, key) = rest.split_once('/')?;
    let d = key
        .strip_prefix(manifest::CODE_ROOT)?
        .strip_prefix('/')?
        .strip_suffix('/')?;
    (d.len() == manifest::DIGEST_HEX_LEN && d.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| d.to_string())
}

/// Check an entry script name: a relative path inside the code folder.
pub fn check_entry(entry: &str) -> std::result::Result<(), String> {
    let p = Path::new(entry);
    if entry.is_empty() || entry.len() > 256 {
        return Err("an entry script path has 1-256 characters".into());
    }
    if p.is_absolute()
        || p.components()
            .any(|c| !matches!(c, std::path::Component::Normal(_)))
    {
        return Err(format!(
            "`{entry}` must be a path inside the code folder, like train.py or src/train.py"
        ));
    }
    if entry.starts_with('.') || entry.contains("/.") {
        return Err(format!(
            "`{entry}` is hidden, and hidden files are not uploaded; rename it"
        ));
    }
    Ok(())
}

/// Scan the code folder like a data folder, then add the launcher, so that the digest covers
/// the code and the launcher that runs it.
pub fn prepare(
    ui: &Ui,
    env: &dyn Fn(&str) -> Option<String>,
    shown: &str,
    dir: &Path,
    opts: ScanOptions,
) -> Result<Scanned> {
    let cache_dir = crate::data::cache::cache_dir(env);
    let mut scanned = scan::scan(shown, dir, opts, cache_dir.as_deref(), ui)
        .map_err(|mut e| {
            e.message = format!("code folder (--source): {}", e.message);
            e
        })?;
    let path = write_launcher(cache_dir.as_deref())?;
    with_launcher(&mut scanned, path);
    crate::data::warn_about(ui, CODE_CHANNEL, &scanned);
    Ok(scanned)
}

/// Add the launcher at `path` to a scanned folder, and give it its new manifest and digest.
pub fn with_launcher(scanned: &mut Scanned, path: PathBuf) {
    let bytes = LAUNCHER.as_bytes();
    let entry = FileEntry {
        rel: LAUNCHER_NAME.to_string(),
        size: bytes.len() as u64,
        sha256: manifest::sha256(bytes),
    };
    let mut pairs: Vec<(FileEntry, PathBuf)> = scanned
        .files
        .drain(..)
        .zip(scanned.abs.drain(..))
        .filter(|(f, _)| f.rel != LAUNCHER_NAME)
        .collect();
    pairs.push((entry, path));
    pairs.sort_by(|a, b| a.0.rel.cmp(&b.0.rel));
    let (files, abs): (Vec<_>, Vec<_>) = pairs.into_iter().unzip();
    scanned.bytes = files.iter().map(|f| f.size).sum();
    scanned.files = files;
    scanned.abs = abs;
    scanned.manifest = manifest::render(&scanned.files);
    scanned.digest = manifest::digest_of(&scanned.manifest);
}

/// The launcher as a file to upload from: in the cache folder (or the temporary folder),
/// named by its hash, written once.
fn write_launcher(cache_dir: Option<&Path>) -> Result<PathBuf> {
    let hash = manifest::hex(&manifest::sha256(LAUNCHER.as_bytes()));
    let dir = cache_dir
        .map(Path::to_path_buf)
        .unwrap_or_else(std::env::temp_dir);
    let path = dir.join(format!("launcher-{}.sh", &hash[..16]));
    if std::fs::read(&path).is_ok_and(|b| b == LAUNCHER.as_bytes()) {
        return Ok(path);
    }
    let write = || -> std::io::Result<()> {
        std::fs::create_dir_all(&dir)?;
        let tmp = dir.join(format!("launcher-{}.{}.tmp", &hash[..16], std::process::id()));
        std::fs::write(&tmp, LAUNCHER)?;
        std::fs::rename(&tmp, &path)
    };
    write().map_err(|e| {
        Error::internal(format!(
            "cannot write the launcher to {}: {e}",
            path.display()
        ))
        .with_hint("check that the cache folder ($XDG_CACHE_HOME or ~/.cache) is writable")
    })?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entrypoint_items_fit_the_api() {
        for item in entrypoint().iter().chain(arguments("src/train.py").iter()) {
            assert!(item.len() <= 256, "{item}");
        }
        assert!(is_launcher(&entrypoint()));
        assert!(!is_launcher(&["python".to_string()]));
    }

    #[test]
    fn code_uris_name_their_digest() {
        let d = "0123456789abcdef0123456789abcdef";
        let uri = target("b-1", d).uri();
        assert_eq!(uri, format!("s3://b-1/sagetrain/code/{d}/"));
        assert_eq!(digest_of_uri(&uri).as_deref(), Some(d));
        assert_eq!(digest_of_uri("s3://b-1/sagetrain/data/train/x/"), None);
        assert_eq!(digest_of_uri("s3://b-1/elsewhere/"), None);
    }

    #[test]
    fn entries_are_paths_inside_the_folder() {
        assert!(check_entry("train.py").is_ok());
        assert!(check_entry("src/train.py").is_ok());
        for bad in ["", "/abs/train.py", "../train.py", "a/../../b.py", ".hidden.py", "a/.b/c.py"] {
            assert!(check_entry(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_launcher_is_part_of_the_digest() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("train.py"), "print(1)\n").unwrap();
        let ui = Ui::new(crate::cli::OutputFormat::Text, true, 0);
        let cache = tempfile::tempdir().unwrap();
        let home = cache.path().to_string_lossy().to_string();
        let env = move |k: &str| (k == "XDG_CACHE_HOME").then(|| home.clone());
        let s = prepare(&ui, &env, "code", d.path(), ScanOptions::default()).unwrap();
        let rels: Vec<&str> = s.files.iter().map(|f| f.rel.as_str()).collect();
        assert_eq!(rels, [LAUNCHER_NAME, "train.py"]);
        let i = rels.iter().position(|r| *r == LAUNCHER_NAME).unwrap();
        assert_eq!(std::fs::read_to_string(&s.abs[i]).unwrap(), LAUNCHER);
        // The same folder gives the same digest; the launcher changes it.
        let again = prepare(&ui, &env, "code", d.path(), ScanOptions::default()).unwrap();
        assert_eq!(s.digest, again.digest);
        let plain = scan::scan("code", d.path(), ScanOptions::default(), None, &ui).unwrap();
        assert_ne!(plain.digest, s.digest);
    }
}
