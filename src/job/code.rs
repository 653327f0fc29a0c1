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

/// The data channels of a job: every channel but the `code` channel of a code-mode job (its
/// code is `source`, not data).
pub fn job_data_channels(
    job: &DescribeTrainingJobOutput,
) -> impl Iterator<Item = &aws_sdk_sagemaker::types::Channel> {
    let code_mode = job_is_code_mode(job);
    job.input_data_config()
        .iter()
        .filter(move |c| !(code_mode && c.channel_name() == Some(CODE_CHANNEL)))
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
    let parsed = crate::refs::S3Uri::parse(uri).ok()?;
    let d = parsed
        .key
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
    let cache_dir = crate::fsutil::cache_dir(env);
    let mut scanned = scan::scan(shown, dir, opts, cache_dir.as_deref(), ui).map_err(|mut e| {
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
    let hash = hex::encode(manifest::sha256(LAUNCHER.as_bytes()));
    let dir = cache_dir
        .map(Path::to_path_buf)
        .unwrap_or_else(std::env::temp_dir);
    let path = dir.join(format!("launcher-{}.sh", &hash[..16]));
    if std::fs::read(&path).is_ok_and(|b| b == LAUNCHER.as_bytes()) {
        return Ok(path);
    }
    let write = || -> std::io::Result<()> {
        std::fs::create_dir_all(&dir)?;
        let tmp = dir.join(format!(
            "launcher-{}.{}.tmp",
            &hash[..16],
            std::process::id()
        ));
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
        for bad in [
            "",
            "/abs/train.py",
            "../train.py",
            "a/../../b.py",
            ".hidden.py",
            "a/.b/c.py",
        ] {
            assert!(check_entry(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_launcher_is_part_of_the_digest() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("train.py"), "print(1)\n").unwrap();
        let ui = Ui::new(crate::ui::Format::Text, true, 0, &|_| None);
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

    /// The launcher, run for real with `sh` against a temporary `/opt/ml`-like tree.
    mod launcher {
        use super::super::*;
        use std::path::Path;
        use std::process::{Command, Stdio};
        use std::time::{Duration, Instant};

        struct Ml {
            root: tempfile::TempDir,
        }

        impl Ml {
            /// A tree with the code folder (the entry and what else is given), the launcher in
            /// it, and the hyperparameters SageMaker writes.
            fn new(files: &[(&str, &str)]) -> Ml {
                let root = tempfile::tempdir().unwrap();
                let code = root.path().join("input/data/code");
                std::fs::create_dir_all(&code).unwrap();
                std::fs::create_dir_all(root.path().join("input/config")).unwrap();
                std::fs::write(
                    root.path().join("input/config/hyperparameters.json"),
                    r#"{"epochs": "3", "learning_rate": "0.001"}"#,
                )
                .unwrap();
                std::fs::write(code.join(LAUNCHER_NAME), LAUNCHER).unwrap();
                for (rel, text) in files {
                    let p = code.join(rel);
                    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
                    std::fs::write(p, text).unwrap();
                }
                Ml { root }
            }

            fn path(&self, rel: &str) -> PathBuf {
                self.root.path().join(rel)
            }

            /// `/bin/sh <launcher> ENTRY`, as the job's ContainerEntrypoint and arguments say.
            fn command(&self, entry: &str) -> Command {
                let mut c = Command::new("/bin/sh");
                c.arg(self.path(&format!("input/data/code/{LAUNCHER_NAME}")))
                    .arg(entry)
                    .env("SM_ROOT", self.root.path())
                    .env("PIP_NO_INPUT", "1")
                    .env("PIP_CONFIG_FILE", "/dev/null")
                    .env_remove("SAGEMAKER_MANAGED_WARMPOOL_CACHE_DIRECTORY")
                    .stdin(Stdio::null());
                c
            }

            /// What the entry saw (see [`ENTRY`]).
            fn seen(&self) -> serde_json::Value {
                let text = std::fs::read_to_string(self.path("model/seen.json")).unwrap();
                serde_json::from_str(&text).unwrap()
            }

            fn failure(&self) -> Option<String> {
                std::fs::read_to_string(self.path("output/failure")).ok()
            }
        }

        fn assert_success(out: &std::process::Output) {
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }

        /// An entry that reads the hyperparameters from the root, writes what it saw in the
        /// model folder, and exits with the status `EXIT` says (0 by default).
        const ENTRY: &str = r#"
import json, os, sys
root = os.environ["SM_ROOT"]
hp = json.load(open(os.path.join(root, "input/config/hyperparameters.json")))
os.makedirs(os.path.join(root, "model"), exist_ok=True)
with open(os.path.join(root, "model/seen.json"), "w") as f:
    json.dump({"hp": hp, "cwd": os.getcwd(), "pip_cache": os.environ.get("PIP_CACHE_DIR")}, f)
sys.exit(int(os.environ.get("EXIT", "0")))
"#;

        #[test]
        fn the_entry_runs_in_the_code_folder_with_the_hyperparameters() {
            let ml = Ml::new(&[("train.py", ENTRY)]);
            let out = ml.command("train.py").output().unwrap();
            assert_success(&out);
            let seen = ml.seen();
            assert_eq!(seen["hp"]["epochs"], "3");
            assert_eq!(
                std::fs::canonicalize(seen["cwd"].as_str().unwrap()).unwrap(),
                std::fs::canonicalize(ml.path("input/data/code")).unwrap()
            );
            assert_eq!(seen["pip_cache"], serde_json::Value::Null);
            assert!(ml.failure().is_none());
        }

        #[test]
        fn the_exit_code_passes_through() {
            let ml = Ml::new(&[("src/main.py", ENTRY)]);
            let out = ml.command("src/main.py").env("EXIT", "7").output().unwrap();
            assert_eq!(out.status.code(), Some(7));
            assert!(ml.path("model/seen.json").exists());
        }

        #[test]
        fn requirements_are_installed_with_the_warm_pool_cache() {
            // `--no-index` and no package: pip succeeds without any network.
            let ml = Ml::new(&[("train.py", ENTRY), ("requirements.txt", "--no-index\n")]);
            let cache = tempfile::tempdir().unwrap();
            let out = ml
                .command("train.py")
                .env("SAGEMAKER_MANAGED_WARMPOOL_CACHE_DIRECTORY", cache.path())
                .output()
                .unwrap();
            assert_success(&out);
            let seen = ml.seen();
            assert_eq!(
                seen["pip_cache"].as_str().unwrap(),
                cache.path().join("pip").to_str().unwrap()
            );
        }

        #[test]
        fn a_failing_pip_install_writes_the_failure_file_and_the_entry_never_runs() {
            let ml = Ml::new(&[
                ("train.py", ENTRY),
                (
                    "requirements.txt",
                    "--no-index\nsagetrain-no-such-package==0.0.1\n",
                ),
            ]);
            let out = ml.command("train.py").output().unwrap();
            assert_eq!(out.status.code(), Some(1));
            let f = ml.failure().expect("the failure file");
            crate::testing::assert_contains_all(
                &f,
                &[
                    "pip install -r requirements.txt failed",
                    "sagetrain-no-such-package",
                ],
            );
            assert!(!ml.path("model/seen.json").exists());
        }

        #[test]
        fn a_missing_entry_or_code_folder_is_a_failure() {
            let ml = Ml::new(&[("train.py", ENTRY)]);
            let out = ml.command("other.py").output().unwrap();
            assert_eq!(out.status.code(), Some(1));
            assert!(ml
                .failure()
                .unwrap()
                .contains("other.py is not in the code folder"));
        }

        #[test]
        fn sigterm_reaches_the_entry() {
            let entry = r#"
import os, signal, sys, time
root = os.environ["SM_ROOT"]
def stop(signum, frame):
    open(os.path.join(root, "got-sigterm"), "w").close()
    sys.exit(143)
signal.signal(signal.SIGTERM, stop)
open(os.path.join(root, "ready"), "w").close()
time.sleep(60)
"#;
            let ml = Ml::new(&[("train.py", entry)]);
            let mut child = ml
                .command("train.py")
                .stdout(Stdio::null())
                .spawn()
                .unwrap();
            let started = Instant::now();
            while !ml.path("ready").exists() {
                assert!(
                    started.elapsed() < Duration::from_secs(30),
                    "the entry did not start"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
            // The launcher exec'd Python: the process SageMaker signals is the entry itself.
            let sent = term(child.id());
            let status = child.wait().unwrap();
            assert!(sent, "kill failed");
            assert_eq!(status.code(), Some(143));
            assert!(ml.path("got-sigterm").exists());
        }

        const ARN: &str =
            "arn:aws:secretsmanager:eu-west-2:111122223333:secret:sagetrain/wandb-AbCdEf";
        const DB_ARN: &str =
            "arn:aws:secretsmanager:eu-west-2:111122223333:secret:sagetrain/db-123456";
        const TOKEN: &str = "0123456789abcdef0123456789abcdef01234567";
        const PASSWORD: &str = "it's a \"pass\" word\nwith $(two) lines";

        /// An entry that writes the variables of the two secrets where the test reads them.
        const SECRET_ENTRY: &str = r#"
import json, os
root = os.environ["SM_ROOT"]
os.makedirs(os.path.join(root, "model"), exist_ok=True)
with open(os.path.join(root, "model/secrets.json"), "w") as f:
    json.dump({k: os.environ.get(k) for k in ["WANDB_API_KEY", "DB_PASSWORD"]}, f)
"#;

        /// A folder for PYTHONPATH whose `boto3` answers from the secrets in `STUB_SECRETS`
        /// (a JSON object ARN -> SecretString) and logs each call, or (`with_boto3` false)
        /// whose `boto3` cannot be imported, as in an image without it.
        fn python_path(with_boto3: bool) -> tempfile::TempDir {
            let d = tempfile::tempdir().unwrap();
            let text = if with_boto3 {
                r#"
import json, os
class ClientError(Exception):
    def __init__(self, code):
        self.response = {"Error": {"Code": code}}
class _Client:
    def __init__(self, region):
        self.region = region
    def get_secret_value(self, SecretId):
        with open(os.environ["STUB_LOG"], "a") as log:
            log.write("boto3 %s %s\n" % (self.region, SecretId))
        secrets = json.load(open(os.environ["STUB_SECRETS"]))
        if SecretId not in secrets:
            raise ClientError("AccessDeniedException")
        return {"SecretString": secrets[SecretId]}
def client(service, region_name=None):
    assert service == "secretsmanager", service
    return _Client(region_name)
"#
            } else {
                "raise ImportError('this image has no boto3')\n"
            };
            std::fs::write(d.path().join("boto3.py"), text).unwrap();
            d
        }

        /// A `bin` folder with what the launcher runs (sh's utilities and Python) and, with
        /// `with_aws`, an `aws` that answers `secretsmanager get-secret-value` as the AWS CLI
        /// does (`--query SecretString --output json`), from `STUB_SECRETS`.
        fn bin(with_aws: bool) -> tempfile::TempDir {
            let d = tempfile::tempdir().unwrap();
            let python = Command::new("python3")
                .args(["-c", "import sys; print(sys.executable)"])
                .output()
                .unwrap();
            let python = String::from_utf8(python.stdout).unwrap();
            std::os::unix::fs::symlink(python.trim(), d.path().join("python3")).unwrap();
            for tool in ["env", "grep", "tail", "rm", "mkdir", "cat", "tr"] {
                let found = ["/usr/bin", "/bin"]
                    .iter()
                    .map(|dir| Path::new(dir).join(tool))
                    .find(|p| p.exists())
                    .unwrap_or_else(|| panic!("no {tool} in /usr/bin or /bin"));
                std::os::unix::fs::symlink(found, d.path().join(tool)).unwrap();
            }
            if with_aws {
                let aws = d.path().join("aws");
                std::fs::write(
                    &aws,
                    r#"#!/bin/sh
# get-secret-value --secret-id ARN --region R --query SecretString --output json
echo "cli $6 $4" >>"$STUB_LOG"
exec python3 -c 'import json, os, sys; s = json.load(open(os.environ["STUB_SECRETS"]))
if sys.argv[1] not in s: sys.stderr.write("An error occurred (ResourceNotFoundException)\n"); sys.exit(254)
print(json.dumps(s[sys.argv[1]]))' "$4"
"#,
                )
                .unwrap();
                std::fs::set_permissions(&aws, std::os::unix::fs::PermissionsExt::from_mode(0o755))
                    .unwrap();
            }
            d
        }

        /// The launcher with the two secrets' variables, as `train --secret WANDB_API_KEY=...
        /// --secret DB_PASSWORD=...:password` sets them, with or without boto3 and the AWS CLI
        /// (on a PATH of the launcher's tools only) answering from `secrets`.
        fn secret_run(ml: &Ml, boto3: bool, aws: bool, secrets: &str) -> std::process::Output {
            let (py, bin) = (python_path(boto3), bin(aws));
            let mut c = ml.command("train.py");
            c.env("PATH", bin.path());
            with_secrets(ml, &mut c, py.path(), secrets);
            c.output().unwrap()
        }

        /// The two secrets' variables, and the stubs' settings (`py`: their PYTHONPATH).
        fn with_secrets(ml: &Ml, c: &mut Command, py: &Path, secrets: &str) {
            let stub = ml.path("stub-secrets.json");
            std::fs::write(&stub, secrets).unwrap();
            c.env("PYTHONPATH", py)
                .env("STUB_SECRETS", &stub)
                .env("STUB_LOG", ml.path("calls.log"))
                .env("SAGETRAIN_SECRET_WANDB_API_KEY", ARN)
                .env("SAGETRAIN_SECRET_DB_PASSWORD", format!("{DB_ARN}:password"));
        }

        fn both_secrets() -> String {
            serde_json::json!({
                ARN: TOKEN,
                DB_ARN: serde_json::json!({"user": "unet", "password": PASSWORD}).to_string(),
            })
            .to_string()
        }

        fn assert_no_value_in(out: &std::process::Output, ml: &Ml) {
            let text = format!(
                "{}{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
                ml.failure().unwrap_or_default()
            );
            assert!(!text.contains(TOKEN), "{text}");
            assert!(!text.contains("pass\" word"), "{text}");
        }

        /// What the entry saw of the two secrets.
        fn exported(ml: &Ml) -> serde_json::Value {
            let text = std::fs::read_to_string(ml.path("model/secrets.json")).unwrap();
            serde_json::from_str(&text).unwrap()
        }

        /// The run succeeded, the entry got both values, each secret was read once by
        /// `reader` (`boto3`, `cli`) in the region of its ARN, and no value was printed.
        fn assert_both_exported(ml: &Ml, out: &std::process::Output, reader: &str) {
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "{stderr}");
            let seen = exported(ml);
            assert_eq!(seen["WANDB_API_KEY"], TOKEN);
            assert_eq!(seen["DB_PASSWORD"], PASSWORD);
            let calls = std::fs::read_to_string(ml.path("calls.log")).unwrap();
            assert_eq!(
                calls,
                format!("{reader} eu-west-2 {DB_ARN}\n{reader} eu-west-2 {ARN}\n")
            );
            assert!(stderr.contains(
                "sagetrain launcher: secret WANDB_API_KEY read from arn:aws:secretsmanager"
            ));
            assert_no_value_in(out, ml);
        }

        #[test]
        fn secrets_are_read_with_boto3_or_else_the_aws_cli_and_exported_under_their_names() {
            for (boto3, aws, reader) in [(true, false, "boto3"), (false, true, "cli")] {
                let ml = Ml::new(&[("train.py", SECRET_ENTRY)]);
                let out = secret_run(&ml, boto3, aws, &both_secrets());
                assert_both_exported(&ml, &out, reader);
            }
        }

        #[test]
        fn a_secret_that_cannot_be_read_is_a_failure_before_the_entry_runs() {
            // Neither boto3 nor the AWS CLI in the image.
            let ml = Ml::new(&[("train.py", SECRET_ENTRY)]);
            let out = secret_run(&ml, false, false, &both_secrets());
            assert_eq!(out.status.code(), Some(1));
            crate::testing::assert_contains_all(
                &ml.failure().expect("the failure file"),
                &["cannot read the secret", "neither boto3", "nor the AWS CLI"],
            );
            assert!(!ml.path("model/secrets.json").exists());

            // The role may not read one (boto3), and a JSON key that is not there (the CLI).
            let ml = Ml::new(&[("train.py", SECRET_ENTRY)]);
            let only_token = serde_json::json!({ ARN: TOKEN }).to_string();
            let out = secret_run(&ml, true, false, &only_token);
            assert_eq!(out.status.code(), Some(1));
            crate::testing::assert_contains_all(
                &ml.failure().unwrap(),
                &[
                    "GetSecretValue on",
                    "AccessDeniedException",
                    "the execution role needs secretsmanager:GetSecretValue",
                ],
            );
            assert_no_value_in(&out, &ml);
            let ml = Ml::new(&[("train.py", SECRET_ENTRY)]);
            let no_key =
                serde_json::json!({ ARN: TOKEN, DB_ARN: "{\"user\": \"unet\"}" }).to_string();
            let out = secret_run(&ml, false, true, &no_key);
            assert_eq!(out.status.code(), Some(1));
            assert!(ml.failure().unwrap().contains("has no JSON key password"));
            assert!(!ml.path("model/secrets.json").exists());
        }

        /// The README's lines for an image's own entrypoint (image mode) do what the launcher
        /// does: run as written, with the same boto3 stub, they set both variables.
        #[test]
        fn the_readme_lines_for_image_mode_read_the_secrets() {
            let readme = include_str!("../../README.md");
            let start = readme
                .find("- **In the job, image mode:**")
                .expect("the image-mode item in the README");
            let block = &readme[start..];
            let code_start = block.find("```python\n").unwrap() + "```python\n".len();
            let code_end = code_start + block[code_start..].find("  ```").unwrap();
            let snippet: String = block[code_start..code_end]
                .lines()
                .map(|l| l.strip_prefix("  ").unwrap_or(l))
                .collect::<Vec<_>>()
                .join("\n");
            let ml = Ml::new(&[("train.py", SECRET_ENTRY)]);
            std::fs::write(
                ml.path("entry.py"),
                format!("{snippet}\nexec(open('train.py').read())\n"),
            )
            .unwrap();
            std::fs::copy(ml.path("entry.py"), ml.path("input/data/code/entry.py")).unwrap();
            let py = python_path(true);
            let mut c = Command::new("python3");
            c.arg("entry.py")
                .current_dir(ml.path("input/data/code"))
                .env("SM_ROOT", ml.root.path());
            with_secrets(&ml, &mut c, py.path(), &both_secrets());
            let out = c.output().unwrap();
            assert_success(&out);
            let seen = exported(&ml);
            assert_eq!(seen["WANDB_API_KEY"], TOKEN);
            assert_eq!(seen["DB_PASSWORD"], PASSWORD);
        }

        /// SIGTERM to one process id, with the `kill` utility (no extra crate).
        fn term(pid: u32) -> bool {
            Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status()
                .is_ok_and(|s| s.success())
        }
    }
}
