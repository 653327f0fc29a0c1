//! Test harness: a hermetic environment for each spawned `sagetrain`, and a fresh AWS account
//! in the moto emulator for each test (moto maps credentials from sts:AssumeRole into the
//! role's account, so tests never see each other's roles, images or jobs).

#![allow(dead_code)]

/// The tag sagetrain puts on every job it creates.
pub const SUBMISSION_TAG: &str = "sagetrain:submission-id";

use crate::proxy::{Fault, Pick, Proxy, Rule};
use aws_credential_types::Credentials;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The documented example keys from the AWS docs: obviously fake.
pub const FAKE_KEY_ID: &str = "AKIAIOSFODNN7EXAMPLE";
pub const FAKE_SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

/// The emulator's URL. The end-to-end tests fail, never skip, without it.
pub fn moto_url() -> String {
    std::env::var("SAGETRAIN_TEST_MOTO_URL").unwrap_or_else(|_| {
        panic!(
            "SAGETRAIN_TEST_MOTO_URL is not set: the end-to-end tests need the moto emulator. \
             Run ./scripts/test, which installs and starts it."
        )
    })
}

/// A loopback URL where nothing listens: any request sent there fails at once.
pub fn dead_endpoint() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    format!("http://127.0.0.1:{port}")
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A unique number for names: account ids, buckets.
pub fn unique() -> u64 {
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64;
    (t.wrapping_mul(31) ^ (std::process::id() as u64) << 20).wrapping_add(n * 7919)
        % 1_000_000_000_000
}

/// What a finished run printed.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Run {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not one JSON document ({e}):\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }
    pub fn ok(self) -> Self {
        assert_eq!(
            self.code, 0,
            "expected success\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }
    pub fn code(self, code: i32) -> Self {
        assert_eq!(
            self.code, code,
            "expected exit {code}\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }
    pub fn stderr_has(self, needle: &str) -> Self {
        assert!(
            self.stderr.contains(needle),
            "stderr lacks {needle:?}:\n{}",
            self.stderr
        );
        self
    }
}

/// A home folder and project folder of its own for every spawned process.
pub struct Sandbox {
    pub dir: tempfile::TempDir,
    pub env: Vec<(String, String)>,
}

impl Sandbox {
    pub fn new() -> Sandbox {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("home/.aws")).unwrap();
        std::fs::create_dir_all(dir.path().join("project")).unwrap();
        let home = dir.path().join("home");
        let env = vec![
            ("PATH".into(), std::env::var("PATH").unwrap_or_default()),
            ("HOME".into(), home.display().to_string()),
            (
                "AWS_CONFIG_FILE".into(),
                home.join(".aws/config").display().to_string(),
            ),
            (
                "AWS_SHARED_CREDENTIALS_FILE".into(),
                home.join(".aws/credentials").display().to_string(),
            ),
            ("AWS_EC2_METADATA_DISABLED".into(), "true".into()),
            ("NO_COLOR".into(), "1".into()),
        ];
        Sandbox { dir, env }
    }

    pub fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }
    pub fn project(&self) -> PathBuf {
        self.dir.path().join("project")
    }

    pub fn set(&mut self, k: &str, v: &str) -> &mut Self {
        self.env.retain(|(key, _)| key != k);
        self.env.push((k.into(), v.into()));
        self
    }

    pub fn unset(&mut self, k: &str) -> &mut Self {
        self.env.retain(|(key, _)| key != k);
        self
    }

    /// Write a file relative to the sandbox root.
    pub fn write(&self, rel: &str, text: &str) -> PathBuf {
        let p = self.dir.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
        p
    }

    /// Run sagetrain in the project folder with only the sandbox's environment.
    pub fn run(&self, args: &[&str]) -> Run {
        self.run_in(&self.project(), args)
    }

    pub fn run_in(&self, dir: &Path, args: &[&str]) -> Run {
        let start = Instant::now();
        let out = Command::new(env!("CARGO_BIN_EXE_sagetrain"))
            .args(args)
            .current_dir(dir)
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(std::process::Stdio::null())
            .output()
            .expect("run sagetrain");
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            elapsed: start.elapsed(),
        }
    }
}

/// A fresh account in moto, with session credentials for it.
pub struct Account {
    pub id: String,
    pub region: String,
    pub creds: Credentials,
    pub sdk: aws_config::SdkConfig,
}

pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

fn sdk_config(creds: Credentials, region: &str) -> aws_config::SdkConfig {
    aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(region.to_string()))
        .endpoint_url(moto_url())
        .credentials_provider(aws_credential_types::provider::SharedCredentialsProvider::new(creds))
        .build()
}

impl Account {
    pub async fn new(region: &str) -> Account {
        let id = format!("{:012}", unique());
        let base = Credentials::new(FAKE_KEY_ID, FAKE_SECRET, None, None, "test");
        let sts = aws_sdk_sts::Client::new(&sdk_config(base, region));
        let out = sts
            .assume_role()
            .role_arn(format!("arn:aws:iam::{id}:role/tester"))
            .role_session_name("sagetrain-tests")
            .send()
            .await
            .expect("sts:AssumeRole in moto");
        let c = out.credentials().unwrap();
        let creds = Credentials::new(
            c.access_key_id(),
            c.secret_access_key(),
            Some(c.session_token().to_string()),
            None,
            "test",
        );
        let sdk = sdk_config(creds.clone(), region);
        Account {
            id,
            region: region.into(),
            creds,
            sdk,
        }
    }

    /// Credentials and emulator in the environment variables of `sb`.
    pub fn env(&self, sb: &mut Sandbox) {
        sb.set("AWS_ACCESS_KEY_ID", self.creds.access_key_id())
            .set("AWS_SECRET_ACCESS_KEY", self.creds.secret_access_key())
            .set("AWS_SESSION_TOKEN", self.creds.session_token().unwrap())
            .set("AWS_REGION", &self.region)
            .set("AWS_ENDPOINT_URL", &moto_url());
    }

    /// Credentials in a profile of the shared credentials file instead.
    pub fn profile(&self, sb: &mut Sandbox, name: &str) {
        sb.write(
            "home/.aws/credentials",
            &format!(
                "[{name}]\naws_access_key_id = {}\naws_secret_access_key = {}\naws_session_token = {}\n",
                self.creds.access_key_id(),
                self.creds.secret_access_key(),
                self.creds.session_token().unwrap()
            ),
        );
        sb.write(
            "home/.aws/config",
            &format!("[profile {name}]\nregion = {}\n", self.region),
        );
        sb.set("AWS_ENDPOINT_URL", &moto_url());
    }

    pub fn iam(&self) -> aws_sdk_iam::Client {
        aws_sdk_iam::Client::new(&self.sdk)
    }
    pub fn ecr(&self) -> aws_sdk_ecr::Client {
        aws_sdk_ecr::Client::new(&self.sdk)
    }
    pub fn sagemaker(&self) -> aws_sdk_sagemaker::Client {
        aws_sdk_sagemaker::Client::new(&self.sdk)
    }
    pub fn s3(&self) -> aws_sdk_s3::Client {
        aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&self.sdk)
                .force_path_style(true)
                .build(),
        )
    }

    pub async fn role(&self, name: &str, path: &str, trusts_sagemaker: bool) -> String {
        let service = if trusts_sagemaker {
            "sagemaker.amazonaws.com"
        } else {
            "ec2.amazonaws.com"
        };
        let doc = format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"Service":"{service}"}},"Action":"sts:AssumeRole"}}]}}"#
        );
        let out = self
            .iam()
            .create_role()
            .role_name(name)
            .path(path)
            .assume_role_policy_document(doc)
            .send()
            .await
            .expect("iam:CreateRole");
        out.role().unwrap().arn().to_string()
    }

    /// An image in ECR (a multi-platform index offering linux/amd64, so that its platform is
    /// known without the image config, which moto cannot hand out); returns its digest.
    pub async fn image(&self, repo: &str, tag: &str) -> String {
        let _ = self
            .ecr()
            .create_repository()
            .repository_name(repo)
            .send()
            .await;
        let manifest = format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","size":7023,"digest":"sha256:{:064x}","platform":{{"architecture":"amd64","os":"linux"}}}},{{"mediaType":"application/vnd.oci.image.manifest.v1+json","size":7023,"digest":"sha256:{:064x}","platform":{{"architecture":"arm64","os":"linux"}}}}]}}"#,
            unique(),
            unique()
        );
        let digest = {
            use sha2::Digest;
            let hash = sha2::Sha256::digest(manifest.as_bytes());
            let hex: String = hash.iter().map(|x| format!("{x:02x}")).collect();
            format!("sha256:{hex}")
        };
        let out = self
            .ecr()
            .put_image()
            .repository_name(repo)
            .image_manifest(manifest)
            .image_manifest_media_type("application/vnd.oci.image.index.v1+json")
            .image_digest(digest)
            .image_tag(tag)
            .send()
            .await
            .expect("ecr:PutImage");
        out.image()
            .unwrap()
            .image_id()
            .unwrap()
            .image_digest()
            .unwrap()
            .to_string()
    }

    pub fn registry(&self) -> String {
        format!("{}.dkr.ecr.{}.amazonaws.com", self.id, self.region)
    }

    /// A bucket of this account (the name is made unique) holding `keys`.
    pub async fn bucket(&self, base: &str, keys: &[&str]) -> String {
        let name = format!("{base}-{}", self.id);
        let mut req = self.s3().create_bucket().bucket(&name);
        if self.region != "us-east-1" {
            req = req.create_bucket_configuration(
                aws_sdk_s3::types::CreateBucketConfiguration::builder()
                    .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::from(
                        self.region.as_str(),
                    ))
                    .build(),
            );
        }
        req.send().await.expect("s3:CreateBucket");
        for k in keys {
            self.s3()
                .put_object()
                .bucket(&name)
                .key(*k)
                .body(aws_sdk_s3::primitives::ByteStream::from_static(b"data"))
                .send()
                .await
                .expect("s3:PutObject");
        }
        name
    }

    pub async fn bucket_exists(&self, name: &str) -> bool {
        self.s3().head_bucket().bucket(name).send().await.is_ok()
    }

    pub async fn describe(
        &self,
        job: &str,
    ) -> aws_sdk_sagemaker::operation::describe_training_job::DescribeTrainingJobOutput {
        self.sagemaker()
            .describe_training_job()
            .training_job_name(job)
            .send()
            .await
            .expect("sagemaker:DescribeTrainingJob")
    }

    pub async fn job_names(&self) -> Vec<String> {
        let out = self
            .sagemaker()
            .list_training_jobs()
            .max_results(100)
            .send()
            .await
            .expect("ListTrainingJobs");
        out.training_job_summaries()
            .iter()
            .map(|s| s.training_job_name().unwrap_or_default().to_string())
            .collect()
    }

    /// The job's own tags: all but the submission id that sagetrain adds to every job
    /// (see [`Account::submission_id`]).
    pub async fn tags(&self, arn: &str) -> Vec<(String, String)> {
        let mut t = self.all_tags(arn).await;
        t.retain(|(k, _)| k != SUBMISSION_TAG);
        t
    }

    /// The submission id sagetrain tagged the job with.
    pub async fn submission_id(&self, arn: &str) -> Option<String> {
        self.all_tags(arn)
            .await
            .into_iter()
            .find(|(k, _)| k == SUBMISSION_TAG)
            .map(|(_, v)| v)
    }

    pub async fn all_tags(&self, arn: &str) -> Vec<(String, String)> {
        let out = self
            .sagemaker()
            .list_tags()
            .resource_arn(arn)
            .send()
            .await
            .expect("ListTags");
        let mut t: Vec<(String, String)> = out
            .tags()
            .iter()
            .map(|t| {
                (
                    t.key().unwrap_or_default().to_string(),
                    t.value().unwrap_or_default().to_string(),
                )
            })
            .collect();
        t.sort();
        t
    }
}

/// A loopback endpoint that answers every request with the "invalid token" error, as AWS does
/// for unknown or revoked access keys; nothing is forwarded.
pub fn rejecting_endpoint() -> String {
    let reject = Fault::Error {
        status: 403,
        code: "InvalidClientTokenId",
        message: "The security token included in the request is invalid.",
    };
    Proxy::with_rules("http://127.0.0.1:9", vec![Rule::new(reject, Pick::All)]).url
}

/// An account with an execution role (with a path), an image `unet-vessels:latest`, and a
/// bucket holding `data/train/` and `data/validation/`.
pub struct Seeded {
    pub acct: Account,
    pub role_arn: String,
    pub digest: String,
    pub bucket: String,
}

pub fn seeded(region: &str) -> Seeded {
    block_on(async {
        let acct = Account::new(region).await;
        let role_arn = acct.role("SageMakerRole", "/service-role/", true).await;
        let digest = acct.image("unet-vessels", "latest").await;
        let bucket = acct
            .bucket(
                "vessels",
                &["data/train/img-001.png", "data/validation/img-101.png"],
            )
            .await;
        Seeded {
            acct,
            role_arn,
            digest,
            bucket,
        }
    })
}

/// Run the AWS CLI (installed by ./scripts/test) against the emulator with the sandbox's
/// environment; its JSON output, or a panic with its stderr.
pub fn aws_cli(sb: &Sandbox, region: &str, args: &[&str]) -> serde_json::Value {
    let cli = std::env::var("SAGETRAIN_TEST_AWS_CLI").expect(
        "SAGETRAIN_TEST_AWS_CLI is not set: run ./scripts/test, which installs the AWS CLI",
    );
    let out = Command::new(cli)
        .args(args)
        .args([
            "--region",
            region,
            "--endpoint-url",
            &moto_url(),
            "--output",
            "json",
        ])
        .env_clear()
        .envs(sb.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "aws {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    if text.trim().is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_str(&text).unwrap()
    }
}

/// Is every field of `sent` in `got` with the same value (objects compared key by key, so `got`
/// may hold more)? Returns the first path that differs.
pub fn subset_mismatch(
    sent: &serde_json::Value,
    got: &serde_json::Value,
    path: &str,
) -> Option<String> {
    match (sent, got) {
        (serde_json::Value::Object(a), serde_json::Value::Object(b)) => {
            a.iter().find_map(|(k, v)| {
                let p = format!("{path}.{k}");
                match b.get(k) {
                    None => Some(format!("{p} missing")),
                    Some(w) => subset_mismatch(v, w, &p),
                }
            })
        }
        (serde_json::Value::Array(a), serde_json::Value::Array(b)) if a.len() == b.len() => a
            .iter()
            .zip(b)
            .enumerate()
            .find_map(|(i, (v, w))| subset_mismatch(v, w, &format!("{path}[{i}]"))),
        _ if sent == got => None,
        _ => Some(format!("{path}: sent {sent}, got {got}")),
    }
}
