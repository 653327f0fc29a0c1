//! The pure job specification: validation rules (the limits of the CreateTrainingJob API, as
//! its service model states them: lengths, patterns, counts), job names, image and S3
//! references, and the CreateTrainingJob request. No I/O here: `--dry-run`, `train` and the
//! tests all go through these functions.

use crate::config::{Source, TrainSettings, Val};
use crate::secrets;
use regex::Regex;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;
use std::time::SystemTime;

/// One broken rule, naming the flag, variable or config key that holds the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub what: String,
    pub rule: String,
}

impl Violation {
    pub fn new(what: impl Into<String>, rule: impl Into<String>) -> Self {
        Violation {
            what: what.into(),
            rule: rule.into(),
        }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.what, self.rule)
    }
}

/// Turn violations into one usage error listing them all.
pub fn violations_error(v: Vec<Violation>) -> crate::error::Error {
    let n = v.len();
    crate::error::Error::usage(format!(
        "{n} invalid setting{}; nothing was sent to AWS",
        if n == 1 { "" } else { "s" }
    ))
    .with_details(v.iter().map(|v| v.to_string()).collect())
    .with_hint("fix the values above (flags, environment variables or sagetrain.toml); `sagetrain config` shows where each value comes from")
}

fn re(p: &str) -> Regex {
    Regex::new(p).expect("valid regex")
}

static JOB_NAME: LazyLock<Regex> = LazyLock::new(|| re(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$"));
static ROLE_ARN: LazyLock<Regex> =
    LazyLock::new(|| re(r"^arn:aws[a-z\-]*:iam::[0-9]{12}:role/?[a-zA-Z_0-9+=,.@\-_/]+$"));
static ROLE_NAME: LazyLock<Regex> = LazyLock::new(|| re(r"^[A-Za-z0-9_+=,.@-]{1,64}$"));
static ENV_KEY: LazyLock<Regex> = LazyLock::new(|| re(r"^[a-zA-Z_][a-zA-Z0-9_]*$"));
static CHANNEL_NAME: LazyLock<Regex> = LazyLock::new(|| re(r"^[A-Za-z0-9\.\-_]{1,64}$"));
static TAG_TEXT: LazyLock<Regex> = LazyLock::new(|| re(r"^[\p{L}\p{Z}\p{N}_.:/=+\-@]*$"));
static ECR_REPO: LazyLock<Regex> =
    LazyLock::new(|| re(r"^(?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*$"));
static IMAGE_TAG: LazyLock<Regex> = LazyLock::new(|| re(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,299}$"));
static DIGEST: LazyLock<Regex> = LazyLock::new(|| re(r"^sha256:[0-9a-f]{64}$"));
static ECR_REGISTRY: LazyLock<Regex> = LazyLock::new(|| {
    re(r"^([0-9]{12})\.dkr\.ecr(?:-fips)?\.([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?$")
});
static BUCKET: LazyLock<Regex> = LazyLock::new(|| re(r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$"));
static VPC_ID: LazyLock<Regex> = LazyLock::new(|| re(r"^[-0-9a-zA-Z]{1,32}$"));
static KMS_KEY: LazyLock<Regex> = LazyLock::new(|| re(r"^[a-zA-Z0-9:/_\-]{1,2048}$"));
static REGION: LazyLock<Regex> = LazyLock::new(|| re(r"^[a-z]{2}(-[a-z0-9]+)+-[0-9]+$"));

pub const MAX_RUNTIME_SECS: u64 = 28 * 24 * 3600;
const CREDENTIAL_ENV_NAMES: &[&str] = &[
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
];

/// An `s3://bucket/key` URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Uri {
    pub bucket: String,
    pub key: String,
}

impl S3Uri {
    pub fn parse(uri: &str) -> Result<S3Uri, String> {
        if uri.len() > 1024 {
            return Err(format!(
                "is {} characters; an S3 URI has at most 1024",
                uri.len()
            ));
        }
        let rest = uri
            .strip_prefix("s3://")
            .ok_or_else(|| format!("`{uri}` is not an S3 URI; use the form s3://BUCKET/PREFIX"))?;
        let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
        if !BUCKET.is_match(bucket) || bucket.contains("..") {
            return Err(format!(
                "`{bucket}` is not a valid bucket name (3-63 characters: lower-case letters, digits, `.` and `-`)"
            ));
        }
        Ok(S3Uri {
            bucket: bucket.to_string(),
            key: key.to_string(),
        })
    }
}

impl fmt::Display for S3Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.key)
    }
}

/// Tag or digest of an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageVersion {
    Tag(String),
    Digest(String),
}

/// What `--image` refers to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageRef {
    /// An image in ECR; `registry` is None for a bare `repo[:tag]` in the caller's own account.
    Ecr {
        account: Option<String>,
        region: Option<String>,
        repository: String,
        version: ImageVersion,
    },
    /// An image in another registry: used as is, not checked.
    Other(String),
}

impl ImageRef {
    pub fn parse(image: &str) -> Result<ImageRef, String> {
        if image.is_empty() {
            return Err("is empty".into());
        }
        if image.len() > 255 {
            return Err(format!(
                "is {} characters; an image URI has at most 255",
                image.len()
            ));
        }
        let (registry, path) = match image.split_once('/') {
            Some((first, rest))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (Some(first), rest)
            }
            _ => (None, image),
        };
        let (repository, version) = if let Some((repo, digest)) = path.split_once('@') {
            if !DIGEST.is_match(digest) {
                return Err(format!(
                    "`{digest}` is not an image digest (sha256: and 64 hex digits)"
                ));
            }
            (repo, ImageVersion::Digest(digest.to_string()))
        } else {
            match path.rsplit_once(':') {
                Some((repo, tag)) => {
                    if !IMAGE_TAG.is_match(tag) {
                        return Err(format!("`{tag}` is not a valid image tag"));
                    }
                    (repo, ImageVersion::Tag(tag.to_string()))
                }
                None => (path, ImageVersion::Tag("latest".into())),
            }
        };
        let registry_parts = match registry {
            Some(r) => match ECR_REGISTRY.captures(r) {
                Some(c) => Some((c[1].to_string(), c[2].to_string())),
                // Another registry: used as is.
                None => return Ok(ImageRef::Other(image.to_string())),
            },
            None => None,
        };
        if !(2..=256).contains(&repository.len()) || !ECR_REPO.is_match(repository) {
            return Err(format!(
                "`{repository}` is not a valid ECR repository name (2-256 characters: lower-case letters, digits, `.`, `_`, `-`, `/`)"
            ));
        }
        let (account, region) = registry_parts.unzip();
        Ok(ImageRef::Ecr {
            account,
            region,
            repository: repository.to_string(),
            version,
        })
    }

    /// The repository's last path component, the default job base name.
    pub fn short_name(&self) -> String {
        match self {
            ImageRef::Ecr { repository, .. } => repository
                .rsplit('/')
                .next()
                .unwrap_or(repository)
                .to_string(),
            ImageRef::Other(uri) => {
                let path = uri.split('@').next().unwrap_or(uri);
                let last = path.rsplit('/').next().unwrap_or(path);
                last.split(':').next().unwrap_or(last).to_string()
            }
        }
    }
}

/// The ECR registry host for an account and region.
pub fn ecr_registry(account: &str, region: &str) -> String {
    let suffix = if region.starts_with("cn-") {
        "amazonaws.com.cn"
    } else {
        "amazonaws.com"
    };
    format!("{account}.dkr.ecr.{region}.{suffix}")
}

/// The default output bucket, the one the SageMaker Python SDK uses.
pub fn default_bucket(region: &str, account: &str) -> String {
    format!("sagemaker-{region}-{account}")
}

/// `<base>-<UTC timestamp with milliseconds>`, sanitized and cut so the timestamp survives.
pub fn generate_job_name(base: &str, now: SystemTime) -> String {
    // 2026-11-29T09:14:42.123Z -> 2026-11-29-09-14-42-123
    let stamp: String = humantime::format_rfc3339_millis(now)
        .to_string()
        .trim_end_matches('Z')
        .chars()
        .map(|c| if c.is_ascii_digit() { c } else { '-' })
        .collect();
    let base = sanitize_base(base);
    let room = 63 - stamp.len() - 1;
    let cut: String = base.chars().take(room).collect();
    let cut = cut.trim_end_matches('-');
    if cut.is_empty() {
        format!("sagetrain-{stamp}")
    } else {
        format!("{cut}-{stamp}")
    }
}

/// Replace every character a job name cannot hold with `-`, and trim `-` at both ends.
pub fn sanitize_base(base: &str) -> String {
    let s: String = base
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    s.trim_matches('-').to_string()
}

/// Where a channel's data is: an S3 prefix, or a local folder that is uploaded first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChannelLocation {
    S3(S3Uri),
    Local(PathBuf),
}

/// Is `name` a valid channel name?
pub fn is_channel_name(name: &str) -> bool {
    CHANNEL_NAME.is_match(name)
}

/// Read a channel value: `s3://...` is an S3 prefix; anything else without a scheme is a local
/// folder, relative to the config file's folder for a value from the file, and to `cwd` for a
/// flag or an environment variable. Pure: whether the folder exists is not checked here.
pub fn channel_location(value: &Val<String>, cwd: &Path) -> Result<ChannelLocation, String> {
    let v = value.value.as_str();
    if v.starts_with("s3://") {
        return S3Uri::parse(v).map(ChannelLocation::S3);
    }
    if v.is_empty() || v.contains("://") {
        return Err(format!(
            "`{v}` is neither an S3 URI (s3://BUCKET/PREFIX) nor a local folder"
        ));
    }
    let p = Path::new(v);
    if p.is_absolute() {
        return Ok(ChannelLocation::Local(p.to_path_buf()));
    }
    let base = match &value.source {
        Source::File { path, .. } => {
            let folder = path.parent().unwrap_or(Path::new(""));
            if folder.is_absolute() {
                folder.to_path_buf()
            } else {
                cwd.join(folder)
            }
        }
        _ => cwd.to_path_buf(),
    };
    // `./data/train` joins as `base/data/train`, not `base/./data/train`.
    let tidy: PathBuf = p
        .components()
        .filter(|c| !matches!(c, std::path::Component::CurDir))
        .collect();
    Ok(ChannelLocation::Local(base.join(tidy)))
}

/// Check every value that can be checked without AWS, with relative channel folders taken from
/// the process's current folder. All violations are returned together.
pub fn validate_settings(s: &TrainSettings) -> Vec<Violation> {
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    validate_settings_at(s, &cwd)
}

/// [`validate_settings`], with relative channel folders (from flags and the environment) taken
/// from `cwd`.
pub fn validate_settings_at(s: &TrainSettings, cwd: &Path) -> Vec<Violation> {
    let mut v = Vec::new();
    fn bad(v: &mut Vec<Violation>, src: &Source, rule: String) {
        v.push(Violation::new(src.name_for(None), rule));
    }

    if let Some(r) = &s.region {
        if !REGION.is_match(&r.value) {
            bad(
                &mut v,
                &r.source,
                format!("`{}` is not an AWS region (e.g. eu-west-1)", r.value),
            );
        }
    }
    if let Some(e) = &s.endpoint_url {
        if !(e.value.starts_with("http://") || e.value.starts_with("https://")) {
            bad(
                &mut v,
                &e.source,
                format!("`{}` is not an http:// or https:// URL", e.value),
            );
        }
    }
    if let Some(role) = &s.role {
        let r = &role.value;
        if r.starts_with("arn:") {
            if let Err(rule) = check_role_arn(r) {
                bad(&mut v, &role.source, rule);
            }
        } else if !ROLE_NAME.is_match(r) {
            bad(&mut v, &role.source, format!(
                "`{r}` is neither a role ARN (arn:aws:iam::ACCOUNT:role/NAME) nor a role name (1-64 of letters, digits and +=,.@_-)"
            ));
        }
    }
    match &s.image {
        Some(img) => {
            if let Err(rule) = ImageRef::parse(&img.value) {
                bad(&mut v, &img.source, rule);
            }
        }
        None => v.push(Violation::new(
            "--image",
            "no image given: set --image, SAGETRAIN_IMAGE or `image` in sagetrain.toml",
        )),
    }
    if !crate::job::spec::training_instance_types().contains(&s.instance_type.value.as_str()) {
        let t = &s.instance_type.value;
        let hint = if t.starts_with("ml.") {
            "is not a SageMaker training instance type".to_string()
        } else {
            format!("is not a SageMaker training instance type (did you mean ml.{t}?)")
        };
        bad(
            &mut v,
            &s.instance_type.source,
            format!("`{t}` {hint}; e.g. ml.g5.xlarge, ml.p3.2xlarge, ml.m5.xlarge"),
        );
    }
    if s.instance_count.value < 1 {
        bad(
            &mut v,
            &s.instance_count.source,
            format!("must be at least 1 (got {})", s.instance_count.value),
        );
    }
    if s.volume_size.value < 1 {
        bad(
            &mut v,
            &s.volume_size.source,
            format!("must be at least 1 GB (got {})", s.volume_size.value),
        );
    }
    if s.max_run.value < 1 || s.max_run.value > MAX_RUNTIME_SECS {
        bad(
            &mut v,
            &s.max_run.source,
            format!(
                "must be between 1 second and 28 days (got {}s)",
                s.max_run.value
            ),
        );
    }
    match (&s.max_wait, s.spot.value) {
        (Some(w), true) if w.value < s.max_run.value => bad(
            &mut v,
            &w.source,
            format!(
                "must be at least the maximum run time ({}s; got {}s)",
                s.max_run.value, w.value
            ),
        ),
        (Some(w), false) => bad(
            &mut v,
            &w.source,
            "applies only to spot training; add --spot (or `spot = true`)".into(),
        ),
        _ => {}
    }

    // Hyperparameters.
    if s.hyperparameters.len() > 100 {
        v_push_count(&mut v, "hyperparameters", s.hyperparameters.len(), 100);
    }
    for (k, val) in &s.hyperparameters {
        check_entry(
            &mut v,
            &val.source,
            "hyperparameter",
            k,
            &val.value,
            256,
            2500,
        );
    }
    if let Some(e) = s.hyperparameters.get("epochs") {
        if !e.value.parse::<u64>().map(|n| n >= 1).unwrap_or(false) {
            v.push(Violation::new(
                e.source.name_for(Some("epochs")),
                format!("`{}` is not a positive whole number of epochs", e.value),
            ));
        }
    }
    // Environment.
    if s.environment.len() > 100 {
        v_push_count(&mut v, "environment variables", s.environment.len(), 100);
    }
    for (k, val) in &s.environment {
        check_entry(
            &mut v,
            &val.source,
            "environment variable",
            k,
            &val.value,
            512,
            512,
        );
        if !ENV_KEY.is_match(k) {
            v.push(Violation::new(
                val.source.name_for(Some(k)),
                format!("`{k}` is not a valid variable name ([a-zA-Z_][a-zA-Z0-9_]*)"),
            ));
        }
        if CREDENTIAL_ENV_NAMES.contains(&k.to_ascii_uppercase().as_str()) {
            v.push(Violation::new(val.source.name_for(Some(k)), format!(
                "`{k}` would hand your credentials to the container; the container gets the execution role's credentials from SageMaker, never yours"
            )));
        }
    }
    // Channels.
    if s.channels.len() > 20 {
        v_push_count(&mut v, "input channels", s.channels.len(), 20);
    }
    for (name, uri) in &s.channels {
        if !CHANNEL_NAME.is_match(name) {
            v.push(Violation::new(
                uri.source.name_for(Some(name)),
                format!(
                    "`{name}` is not a valid channel name (1-64 of letters, digits, `.`, `-`, `_`)"
                ),
            ));
        }
        match channel_location(uri, cwd) {
            Ok(ChannelLocation::S3(_)) => {}
            Ok(ChannelLocation::Local(dir)) => {
                if !dir.is_dir() {
                    let what = if dir.exists() {
                        "is not a folder"
                    } else {
                        "does not exist"
                    };
                    v.push(Violation::new(
                        uri.source.name_for(Some(name)),
                        format!(
                            "the local folder {} {what}; a channel is an S3 URI (s3://BUCKET/PREFIX) or a local folder to upload",
                            dir.display()
                        ),
                    ));
                }
            }
            Err(rule) => v.push(Violation::new(uri.source.name_for(Some(name)), rule)),
        }
    }
    for val in [&s.output_path, &s.checkpoint_s3].into_iter().flatten() {
        if let Err(rule) = S3Uri::parse(&val.value) {
            v.push(Violation::new(val.source.name_for(None), rule));
        }
    }
    // Name.
    if let Some(n) = &s.name {
        if let Err(rule) = check_job_name(&n.value) {
            v.push(Violation::new(n.source.name_for(None), rule));
        }
    }
    // Tags.
    if s.tags.len() > 50 {
        v_push_count(&mut v, "tags", s.tags.len(), 50);
    }
    for (k, val) in &s.tags {
        let what = val.source.name_for(Some(k));
        if k.is_empty() || k.chars().count() > 128 {
            v.push(Violation::new(&what, "a tag key has 1-128 characters"));
        }
        if val.value.chars().count() > 256 {
            v.push(Violation::new(
                &what,
                "a tag value has at most 256 characters",
            ));
        }
        if !TAG_TEXT.is_match(k) || !TAG_TEXT.is_match(&val.value) {
            v.push(Violation::new(
                &what,
                "tags may hold letters, digits, spaces and _ . : / = + - @ only",
            ));
        }
        if k.to_ascii_lowercase().starts_with("aws:") {
            v.push(Violation::new(
                &what,
                "tag keys starting with `aws:` are reserved by AWS",
            ));
        }
        if let Some(f) = secrets::scan(k).or_else(|| secrets::scan(&val.value)) {
            v.push(credential_violation(&what, f, &val.value));
        }
    }
    // Metrics.
    if s.metrics.len() > 40 {
        v_push_count(&mut v, "metric definitions", s.metrics.len(), 40);
    }
    for (name, val) in &s.metrics {
        let what = val.source.name_for(Some(name));
        if name.is_empty() || name.chars().count() > 255 {
            v.push(Violation::new(&what, "a metric name has 1-255 characters"));
        }
        if val.value.is_empty() || val.value.chars().count() > 500 {
            v.push(Violation::new(&what, "a metric regex has 1-500 characters"));
        } else if !val.value.contains('(') {
            v.push(Violation::new(
                &what,
                "the regex needs a capture group around the number, e.g. `val_dice=([0-9.]+)`",
            ));
        }
    }
    // VPC.
    let subnets = s.subnets.as_ref();
    let groups = s.security_groups.as_ref();
    match (subnets, groups) {
        (Some(sn), None) => v.push(Violation::new(
            sn.source.name_for(None),
            "subnets need at least one security group too (--security-group)",
        )),
        (None, Some(sg)) => v.push(Violation::new(
            sg.source.name_for(None),
            "security groups need at least one subnet too (--subnet)",
        )),
        (Some(sn), Some(sg)) => {
            if sn.value.is_empty() || sn.value.len() > 16 {
                v.push(Violation::new(
                    sn.source.name_for(None),
                    format!("give 1-16 subnets (got {})", sn.value.len()),
                ));
            }
            if sg.value.is_empty() || sg.value.len() > 5 {
                v.push(Violation::new(
                    sg.source.name_for(None),
                    format!("give 1-5 security groups (got {})", sg.value.len()),
                ));
            }
            for (list, src) in [(&sn.value, &sn.source), (&sg.value, &sg.source)] {
                for id in list.iter() {
                    if !VPC_ID.is_match(id) {
                        v.push(Violation::new(
                            src.name_for(None),
                            format!("`{id}` is not a valid id"),
                        ));
                    }
                }
            }
        }
        (None, None) => {}
    }
    if let Some(k) = &s.kms_key {
        if !KMS_KEY.is_match(&k.value) {
            v.push(Violation::new(
                k.source.name_for(None),
                "is not a KMS key id, alias or ARN",
            ));
        }
    }
    if s.offline {
        v.extend(offline_violations(s));
    }
    v
}

fn v_push_count(v: &mut Vec<Violation>, what: &str, n: usize, max: usize) {
    v.push(Violation::new(
        what,
        format!("{n} given; at most {max} are allowed"),
    ));
}

fn credential_violation(what: &str, f: secrets::Finding, value: &str) -> Violation {
    Violation::new(
        what,
        format!(
            "the value ({}) looks like {}; credentials must never go into a job (anyone who can describe it reads them). Remove it and rotate the key",
            secrets::mask_value(value),
            f.describe()
        ),
    )
}

fn check_entry(
    v: &mut Vec<Violation>,
    src: &Source,
    kind: &str,
    key: &str,
    value: &str,
    max_key: usize,
    max_value: usize,
) {
    let what = src.name_for(Some(key));
    if key.is_empty() || key.chars().count() > max_key {
        v.push(Violation::new(
            &what,
            format!("{kind} names have 1-{max_key} characters"),
        ));
    }
    if value.chars().count() > max_value {
        v.push(Violation::new(
            &what,
            format!(
                "{kind} values have at most {max_value} characters (got {})",
                value.chars().count()
            ),
        ));
    }
    if let Some(f) = secrets::scan(value) {
        v.push(credential_violation(&what, f, value));
    }
}

/// With `--offline`, every value that would need a lookup must be given.
fn offline_violations(s: &TrainSettings) -> Vec<Violation> {
    let mut v = Vec::new();
    match &s.role {
        None => v.push(Violation::new("--offline", "no execution role given and it cannot be looked up offline: set --role ARN or SAGEMAKER_ROLE")),
        Some(r) if !r.value.starts_with("arn:") => v.push(Violation::new(r.source.name_for(None), "a role name needs a lookup (iam:GetRole); give the full role ARN with --offline")),
        _ => {}
    }
    match s.image.as_ref().map(|i| (i, ImageRef::parse(&i.value))) {
        Some((i, Ok(ImageRef::Ecr { account: None, .. }))) => v.push(Violation::new(i.source.name_for(None), "a bare repository name needs the account (a lookup); give the full URI ACCOUNT.dkr.ecr.REGION.amazonaws.com/REPO:TAG with --offline")),
        Some((i, Ok(ImageRef::Ecr { version: ImageVersion::Tag(_), .. }))) if s.pin_digest.value => v.push(Violation::new(i.source.name_for(None), "pinning the image digest needs an ECR lookup; add --no-pin-digest or give REPO@sha256:DIGEST with --offline")),
        _ => {}
    }
    if s.output_path.is_none() {
        v.push(Violation::new("--offline", "the default output bucket needs the account (a lookup): set --output-path s3://BUCKET/PREFIX"));
    }
    if s.region.is_none() {
        v.push(Violation::new(
            "--offline",
            "no region: set --region, AWS_REGION or `region` in sagetrain.toml",
        ));
    }
    v
}

pub fn check_role_arn(arn: &str) -> Result<(), String> {
    if arn.len() < 20 || arn.len() > 2048 {
        return Err(format!(
            "a role ARN has 20-2048 characters (got {})",
            arn.len()
        ));
    }
    if !ROLE_ARN.is_match(arn) {
        return Err(format!(
            "`{arn}` is not an IAM role ARN (arn:aws:iam::123456789012:role/NAME)"
        ));
    }
    Ok(())
}

/// An AWS region name such as `eu-west-1`.
pub fn check_region(region: &str) -> Result<(), String> {
    if REGION.is_match(region) {
        Ok(())
    } else {
        Err(format!("`{region}` is not an AWS region (e.g. eu-west-1)"))
    }
}

pub fn check_job_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 63 {
        return Err(format!(
            "a job name has 1-63 characters (got {})",
            name.len()
        ));
    }
    if !JOB_NAME.is_match(name) {
        return Err(format!(
            "`{name}` is not a valid job name: letters, digits and `-` only, starting and ending with a letter or digit (no `_`)"
        ));
    }
    Ok(())
}

/// The SDK's enum of training instance types.
pub fn training_instance_types() -> &'static [&'static str] {
    aws_sdk_sagemaker::types::TrainingInstanceType::values()
}

/// The values found by lookups (or given), needed to build the request.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub region: String,
    pub role_arn: Val<String>,
    pub training_image: Val<String>,
    pub output_path: Val<String>,
    pub job_name: Val<String>,
}

// ---- The CreateTrainingJob request, with the AWS API's field names. ----

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateTrainingJobRequest {
    pub training_job_name: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub hyper_parameters: BTreeMap<String, String>,
    pub algorithm_specification: AlgorithmSpecification,
    pub role_arn: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub input_data_config: Vec<Channel>,
    pub output_data_config: OutputDataConfig,
    pub resource_config: ResourceConfig,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vpc_config: Option<VpcConfig>,
    pub stopping_condition: StoppingCondition,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<Tag>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub enable_network_isolation: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub enable_managed_spot_training: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checkpoint_config: Option<CheckpointConfig>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub environment: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct AlgorithmSpecification {
    pub training_image: String,
    pub training_input_mode: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub metric_definitions: Vec<MetricDefinition>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct MetricDefinition {
    pub name: String,
    pub regex: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Channel {
    pub channel_name: String,
    pub data_source: DataSource,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DataSource {
    pub s3_data_source: S3DataSource,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct S3DataSource {
    pub s3_data_type: String,
    pub s3_uri: String,
    pub s3_data_distribution_type: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct OutputDataConfig {
    pub s3_output_path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kms_key_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ResourceConfig {
    pub instance_type: String,
    pub instance_count: i32,
    #[serde(rename = "VolumeSizeInGB")]
    pub volume_size_in_gb: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub volume_kms_key_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct VpcConfig {
    pub security_group_ids: Vec<String>,
    pub subnets: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct StoppingCondition {
    pub max_runtime_in_seconds: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_wait_time_in_seconds: Option<i32>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Tag {
    pub key: String,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct CheckpointConfig {
    pub s3_uri: String,
    pub local_path: String,
}

fn join_s3(prefix: &str, rest: &str) -> String {
    format!("{}/{}", prefix.trim_end_matches('/'), rest)
}

/// Build the request from validated settings and resolved values.
pub fn build_request(s: &TrainSettings, r: &Resolved) -> CreateTrainingJobRequest {
    let strings = |m: &BTreeMap<String, Val<String>>| -> BTreeMap<String, String> {
        m.iter()
            .map(|(k, v)| (k.clone(), v.value.clone()))
            .collect()
    };
    let spot = s.spot.value;
    // A spot job gets a checkpoint location by default, so that it resumes after an interruption.
    let checkpoint = s
        .checkpoint_s3
        .as_ref()
        .map(|c| c.value.clone())
        .or_else(|| {
            spot.then(|| {
                join_s3(
                    &r.output_path.value,
                    &format!("{}/checkpoints/", r.job_name.value),
                )
            })
        });
    CreateTrainingJobRequest {
        training_job_name: r.job_name.value.clone(),
        hyper_parameters: strings(&s.hyperparameters),
        algorithm_specification: AlgorithmSpecification {
            training_image: r.training_image.value.clone(),
            training_input_mode: "File".into(),
            metric_definitions: s
                .metrics
                .iter()
                .map(|(k, v)| MetricDefinition {
                    name: k.clone(),
                    regex: v.value.clone(),
                })
                .collect(),
        },
        role_arn: r.role_arn.value.clone(),
        input_data_config: s
            .channels
            .iter()
            .map(|(name, uri)| Channel {
                channel_name: name.clone(),
                data_source: DataSource {
                    s3_data_source: S3DataSource {
                        s3_data_type: "S3Prefix".into(),
                        s3_uri: uri.value.clone(),
                        s3_data_distribution_type: "FullyReplicated".into(),
                    },
                },
            })
            .collect(),
        output_data_config: OutputDataConfig {
            s3_output_path: r.output_path.value.clone(),
            kms_key_id: s.kms_key.as_ref().map(|k| k.value.clone()),
        },
        resource_config: ResourceConfig {
            instance_type: s.instance_type.value.clone(),
            instance_count: s.instance_count.value.clamp(0, i32::MAX as i64) as i32,
            volume_size_in_gb: s.volume_size.value.clamp(0, i32::MAX as i64) as i32,
            volume_kms_key_id: s.kms_key.as_ref().map(|k| k.value.clone()),
        },
        vpc_config: match (&s.subnets, &s.security_groups) {
            (Some(sn), Some(sg)) => Some(VpcConfig {
                security_group_ids: sg.value.clone(),
                subnets: sn.value.clone(),
            }),
            _ => None,
        },
        stopping_condition: StoppingCondition {
            max_runtime_in_seconds: s.max_run.value.min(i32::MAX as u64) as i32,
            max_wait_time_in_seconds: spot.then(|| {
                s.max_wait
                    .as_ref()
                    .map(|w| w.value)
                    .unwrap_or(s.max_run.value)
                    .min(i32::MAX as u64) as i32
            }),
        },
        tags: s
            .tags
            .iter()
            .map(|(k, v)| Tag {
                key: k.clone(),
                value: v.value.clone(),
            })
            .collect(),
        enable_network_isolation: s.network_isolation.value,
        enable_managed_spot_training: spot,
        checkpoint_config: checkpoint.map(|uri| CheckpointConfig {
            s3_uri: uri,
            local_path: "/opt/ml/checkpoints/".into(),
        }),
        environment: strings(&s.environment),
    }
}

/// Final check of the values that came from lookups, named by their API field.
pub fn validate_request(req: &CreateTrainingJobRequest) -> Vec<Violation> {
    let mut v = Vec::new();
    if let Err(rule) = check_job_name(&req.training_job_name) {
        v.push(Violation::new("TrainingJobName", rule));
    }
    if let Err(rule) = check_role_arn(&req.role_arn) {
        v.push(Violation::new("RoleArn", rule));
    }
    if req.algorithm_specification.training_image.len() > 255 {
        v.push(Violation::new(
            "TrainingImage",
            "has more than 255 characters",
        ));
    }
    if let Err(rule) = S3Uri::parse(&req.output_data_config.s3_output_path) {
        v.push(Violation::new("OutputDataConfig.S3OutputPath", rule));
    }
    if let Some(c) = &req.checkpoint_config {
        if let Err(rule) = S3Uri::parse(&c.s3_uri) {
            v.push(Violation::new("CheckpointConfig.S3Uri", rule));
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{GlobalArgs, OutputFormat, TrainArgs};
    use std::time::{Duration, UNIX_EPOCH};

    fn settings(args: TrainArgs) -> TrainSettings {
        let g = GlobalArgs {
            profile: None,
            region: Some("eu-west-1".into()),
            endpoint_url: None,
            config: None,
            output: OutputFormat::Text,
            quiet: false,
            verbose: 0,
        };
        TrainSettings::layer(&g, &args, &|_| None, None).unwrap()
    }

    fn valid_args() -> TrainArgs {
        TrainArgs {
            epochs: Some("50".into()),
            role: Some("arn:aws:iam::123456789012:role/service-role/SageMakerRole".into()),
            image: Some("123456789012.dkr.ecr.eu-west-1.amazonaws.com/unet:latest".into()),
            train: Some("s3://my-bucket/data/train/".into()),
            output_path: Some("s3://my-bucket/out/".into()),
            ..Default::default()
        }
    }

    fn rules(args: TrainArgs) -> Vec<String> {
        validate_settings(&settings(args))
            .iter()
            .map(|v| v.to_string())
            .collect()
    }

    #[test]
    fn valid_settings_pass() {
        assert_eq!(rules(valid_args()), Vec::<String>::new());
    }

    #[test]
    fn every_violation_is_reported_with_its_flag() {
        let args = TrainArgs {
            name: Some("my_job".into()),
            instance_type: Some("g5.xlarge".into()),
            instance_count: Some("0".into()),
            channels: vec!["bad name=s3://b/x".into(), "val=/local/path".into()],
            environment: vec!["1BAD=x".into()],
            tags: vec!["aws:owner=me".into()],
            subnets: vec!["subnet-1".into()],
            max_run: Some("30d".into()),
            ..valid_args()
        };
        let r = rules(args);
        let joined = r.join("\n");
        for needle in [
            "--name: `my_job` is not a valid job name",
            "--instance-type: `g5.xlarge` is not a SageMaker training instance type (did you mean ml.g5.xlarge?)",
            "--instance-count: must be at least 1",
            "--channel bad name: `bad name` is not a valid channel name",
            "--channel val: the local folder /local/path does not exist; a channel is an S3 URI (s3://BUCKET/PREFIX) or a local folder to upload",
            "--env 1BAD: `1BAD` is not a valid variable name",
            "--tag aws:owner: tag keys starting with `aws:` are reserved",
            "--subnet: subnets need at least one security group",
            "--max-run: must be between 1 second and 28 days",
        ] {
            assert!(joined.contains(needle), "missing {needle:?} in\n{joined}");
        }
    }

    #[test]
    fn limits_on_counts_and_lengths() {
        let mut args = valid_args();
        args.hyperparameters = (0..101).map(|i| format!("k{i}=v")).collect();
        args.hyperparameters
            .push(format!("long={}", "x".repeat(2501)));
        args.environment = vec![format!("E={}", "x".repeat(513))];
        args.metrics = vec!["loss=loss is low".into()];
        let joined = rules(args).join("\n");
        assert!(
            joined.contains("hyperparameters: 103 given; at most 100"),
            "{joined}"
        );
        assert!(
            joined.contains("--hyperparameter long: hyperparameter values have at most 2500"),
            "{joined}"
        );
        assert!(
            joined.contains("--env E: environment variable values have at most 512"),
            "{joined}"
        );
        assert!(
            joined.contains("--metric loss: the regex needs a capture group"),
            "{joined}"
        );
    }

    #[test]
    fn spot_wait_rules() {
        let mut args = valid_args();
        args.max_wait = Some("1h".into());
        assert!(rules(args.clone())
            .join("")
            .contains("--max-wait: applies only to spot"));
        args.spot = true;
        args.max_run = Some("2h".into());
        assert!(rules(args.clone())
            .join("")
            .contains("--max-wait: must be at least the maximum run time (7200s; got 3600s)"));
        args.max_wait = Some("3h".into());
        assert!(rules(args).is_empty());
    }

    #[test]
    fn credentials_in_hyperparameters_environment_and_tags_are_refused_masked() {
        let mut args = valid_args();
        args.hyperparameters = vec!["key=AKIAIOSFODNN7EXAMPLE".into()];
        args.environment = vec![
            "SECRET=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".into(),
            "AWS_ACCESS_KEY_ID=x".into(),
        ];
        args.tags = vec!["owner=AKIAIOSFODNN7EXAMPLE".into()];
        let joined = rules(args).join("\n");
        assert!(joined.contains("--hyperparameter key: the value (****************MPLE) looks like an AWS access key id"), "{joined}");
        assert!(joined.contains("--env SECRET: the value (****************EKEY) looks like an AWS secret access key"), "{joined}");
        assert!(
            joined.contains(
                "--env AWS_ACCESS_KEY_ID: `AWS_ACCESS_KEY_ID` would hand your credentials"
            ),
            "{joined}"
        );
        assert!(joined.contains("--tag owner"), "{joined}");
        assert!(!joined.contains("AKIAIOSFODNN7EXAMPLE"));
        assert!(!joined.contains("wJalrXUtnFEMI"));
    }

    #[test]
    fn offline_needs_every_lookup_value() {
        let args = TrainArgs {
            offline: true,
            role: Some("SageMakerRole".into()),
            image: Some("unet:latest".into()),
            ..Default::default()
        };
        let joined = rules(args).join("\n");
        assert!(
            joined.contains("--role: a role name needs a lookup"),
            "{joined}"
        );
        assert!(
            joined.contains("--image: a bare repository name needs the account"),
            "{joined}"
        );
        assert!(
            joined.contains("--offline: the default output bucket needs the account"),
            "{joined}"
        );
        let mut ok = valid_args();
        ok.offline = true;
        assert!(rules(ok.clone())
            .join("")
            .contains("pinning the image digest needs an ECR lookup"));
        ok.no_pin_digest = true;
        assert!(rules(ok).is_empty());
    }

    #[test]
    fn image_references() {
        assert_eq!(
            ImageRef::parse("unet-vessels").unwrap(),
            ImageRef::Ecr {
                account: None,
                region: None,
                repository: "unet-vessels".into(),
                version: ImageVersion::Tag("latest".into())
            }
        );
        assert_eq!(
            ImageRef::parse("team/unet:v2").unwrap(),
            ImageRef::Ecr {
                account: None,
                region: None,
                repository: "team/unet".into(),
                version: ImageVersion::Tag("v2".into())
            }
        );
        let digest = format!("sha256:{}", "a".repeat(64));
        assert_eq!(
            ImageRef::parse(&format!(
                "123456789012.dkr.ecr.us-east-1.amazonaws.com/unet@{digest}"
            ))
            .unwrap(),
            ImageRef::Ecr {
                account: Some("123456789012".into()),
                region: Some("us-east-1".into()),
                repository: "unet".into(),
                version: ImageVersion::Digest(digest)
            }
        );
        assert_eq!(
            ImageRef::parse("ghcr.io/org/unet:1.0").unwrap(),
            ImageRef::Other("ghcr.io/org/unet:1.0".into())
        );
        assert!(ImageRef::parse("Unet:latest").is_err());
        assert!(ImageRef::parse("unet@sha256:abc").is_err());
        assert_eq!(
            ImageRef::parse("team/unet-vessels:v2")
                .unwrap()
                .short_name(),
            "unet-vessels"
        );
    }

    #[test]
    fn channel_values_are_s3_uris_or_folders_relative_to_their_source() {
        let cwd = Path::new("/work/project");
        let flag = |v: &str| Val::new(v.to_string(), Source::Flag("--train"));
        let file = |v: &str, f: &str| {
            Val::new(
                v.to_string(),
                Source::File {
                    path: PathBuf::from(f),
                    key: "channels.train".into(),
                },
            )
        };
        let local = |p: &str| Ok(ChannelLocation::Local(PathBuf::from(p)));
        assert_eq!(
            channel_location(&flag("s3://bkt/data/"), cwd),
            Ok(ChannelLocation::S3(S3Uri {
                bucket: "bkt".into(),
                key: "data/".into()
            }))
        );
        match channel_location(&flag("./data/train"), cwd).unwrap() {
            // Compared as text: Path equality ignores a `.` in the middle.
            ChannelLocation::Local(p) => {
                assert_eq!(p.display().to_string(), "/work/project/data/train")
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            channel_location(&Val::new("d".into(), Source::Env("X")), cwd),
            local("/work/project/d")
        );
        assert_eq!(channel_location(&flag("/abs/d"), cwd), local("/abs/d"));
        // A file value is relative to the file's folder, wherever the command runs.
        assert_eq!(
            channel_location(&file("data/train", "/home/me/unet/sagetrain.toml"), cwd),
            local("/home/me/unet/data/train")
        );
        assert_eq!(
            channel_location(&file("data", "conf/sagetrain.toml"), cwd),
            local("/work/project/conf/data")
        );
        assert!(channel_location(&flag("s3://Bad_Bucket/x"), cwd).is_err());
        assert!(channel_location(&flag("https://b.s3.amazonaws.com/x"), cwd)
            .unwrap_err()
            .contains("neither an S3 URI"));
        assert!(channel_location(&flag(""), cwd).is_err());
    }

    #[test]
    fn an_existing_local_folder_is_a_valid_channel() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("file.txt"), "x").unwrap();
        let mut args = valid_args();
        args.train = Some(d.path().display().to_string());
        args.validation = Some("relative-missing".into());
        args.channels = vec![format!("test={}", d.path().join("file.txt").display())];
        let s = settings(args);
        let v: Vec<String> = validate_settings_at(&s, d.path())
            .iter()
            .map(|v| v.to_string())
            .collect();
        assert_eq!(v.len(), 2, "{v:?}");
        assert!(
            v[0].starts_with("--channel test: the local folder"),
            "{v:?}"
        );
        assert!(v[0].contains("file.txt is not a folder"), "{v:?}");
        assert!(
            v[1].contains(&format!(
                "the local folder {} does not exist",
                d.path().join("relative-missing").display()
            )),
            "{v:?}"
        );
        std::fs::create_dir(d.path().join("relative-missing")).unwrap();
        let mut ok = valid_args();
        ok.train = Some("relative-missing".into());
        assert!(validate_settings_at(&settings(ok), d.path()).is_empty());
    }

    #[test]
    fn s3_uris() {
        assert_eq!(
            S3Uri::parse("s3://b-1/a/b/").unwrap(),
            S3Uri {
                bucket: "b-1".into(),
                key: "a/b/".into()
            }
        );
        assert_eq!(S3Uri::parse("s3://bucket").unwrap().key, "");
        assert!(S3Uri::parse("s3://Bad_Bucket/x").is_err());
        assert!(S3Uri::parse("/local/dir").is_err());
        assert!(S3Uri::parse(&format!("s3://bucket/{}", "k".repeat(1020))).is_err());
    }

    #[test]
    fn generated_names_keep_the_timestamp_and_are_valid() {
        let t = UNIX_EPOCH + Duration::from_millis(1_795_000_000_123);
        let n = generate_job_name("unet_vessels", t);
        assert_eq!(n, "unet-vessels-2026-11-18-11-06-40-123");
        let long = generate_job_name(&"a_very_long_base_name_".repeat(5), t);
        assert!(long.len() <= 63, "{long}");
        assert!(long.ends_with("-2026-11-18-11-06-40-123"), "{long}");
        check_job_name(&long).unwrap();
        assert_eq!(
            generate_job_name("___", t),
            "sagetrain-2026-11-18-11-06-40-123"
        );
        check_job_name(&n).unwrap();
    }

    #[test]
    fn request_has_plain_strings_and_api_field_names() {
        let mut args = valid_args();
        args.hyperparameters = vec!["learning_rate=0.0001".into(), "optimizer=adam".into()];
        args.spot = true;
        args.tags = vec!["project=vessels".into()];
        let s = settings(args);
        let r = Resolved {
            region: "eu-west-1".into(),
            role_arn: s.role.clone().unwrap(),
            training_image: s.image.clone().unwrap(),
            output_path: s.output_path.clone().unwrap(),
            job_name: Val::new("unet-1".into(), Source::Default),
        };
        let req = build_request(&s, &r);
        assert!(validate_request(&req).is_empty());
        let json = serde_json::to_value(&req).unwrap();
        assert_eq!(
            json["HyperParameters"],
            serde_json::json!({"epochs": "50", "learning_rate": "0.0001", "optimizer": "adam"})
        );
        assert_eq!(json["ResourceConfig"]["VolumeSizeInGB"], 30);
        assert_eq!(json["ResourceConfig"]["InstanceType"], "ml.g5.xlarge");
        assert_eq!(
            json["StoppingCondition"],
            serde_json::json!({"MaxRuntimeInSeconds": 86400, "MaxWaitTimeInSeconds": 86400})
        );
        assert_eq!(
            json["CheckpointConfig"]["S3Uri"],
            "s3://my-bucket/out/unet-1/checkpoints/"
        );
        assert_eq!(
            json["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3Uri"],
            "s3://my-bucket/data/train/"
        );
        assert_eq!(json["EnableManagedSpotTraining"], true);
        assert_eq!(
            json["Tags"][0],
            serde_json::json!({"Key": "project", "Value": "vessels"})
        );
        assert!(json.get("Environment").is_none());
        assert!(json.get("VpcConfig").is_none());
    }
}

#[cfg(test)]
mod ascii_pattern_tests {
    use super::*;

    /// IAM names and ARNs are ASCII; the patterns use ASCII classes (Unicode `\w{1,64}` and
    /// `\d{12}` cost about 20 ms of regex compilation on every run that checks a role name).
    #[test]
    fn role_names_and_account_ids_are_ascii() {
        assert!(ROLE_NAME.is_match("SageMakerExecutionRole-unet_1+=,.@"));
        assert!(!ROLE_NAME.is_match("SageMakerRöle"));
        assert!(!ROLE_NAME.is_match(&"r".repeat(65)));
        assert!(ROLE_ARN.is_match("arn:aws:iam::111122223333:role/service-role/R"));
        assert!(!ROLE_ARN.is_match("arn:aws:iam::١١١١٢٢٢٢٣٣٣٣:role/R"));
        assert!(ECR_REGISTRY.is_match("111122223333.dkr.ecr.eu-west-1.amazonaws.com"));
        assert!(REGION.is_match("eu-west-1") && !REGION.is_match("eu-west-١"));
    }
}
