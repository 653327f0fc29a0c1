//! The pure job specification: the rules of CreateTrainingJob's fields (lengths, patterns,
//! counts and ranges of the SageMaker API), job names, image and S3 references, and
//! [`validate`], which turns layered [`TrainSettings`] into a [`JobSpec`] that carries what it
//! proved. No I/O here but checking that local data folders exist: `--dry-run`, `train` and
//! the tests all go through these functions.

use crate::aws::connection::Connection;
pub use crate::config::{violations_error, Violation};
use crate::config::{Source, Val};
use crate::job::secret::{self, SecretRef};
use crate::job::settings::TrainSettings;
use crate::refs::{
    channel_location, is_channel_name, ChannelLocation, ImageRef, ImageVersion, S3Uri,
};
use crate::secrets;
use regex::Regex;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;
use std::time::SystemTime;

fn re(p: &str) -> Regex {
    Regex::new(p).expect("valid regex")
}

pub(crate) static JOB_NAME: LazyLock<Regex> =
    LazyLock::new(|| re(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$"));
pub(crate) static ROLE_ARN: LazyLock<Regex> =
    LazyLock::new(|| re(r"^arn:aws[a-z\-]*:iam::[0-9]{12}:role/?[a-zA-Z_0-9+=,.@\-_/]+$"));
static ROLE_NAME: LazyLock<Regex> = LazyLock::new(|| re(r"^[A-Za-z0-9_+=,.@-]{1,64}$"));
pub(crate) static ENV_KEY: LazyLock<Regex> = LazyLock::new(|| re(r"^[a-zA-Z_][a-zA-Z0-9_]*$"));
pub(crate) static TAG_TEXT: LazyLock<Regex> =
    LazyLock::new(|| re(r"^[\p{L}\p{Z}\p{N}_.:/=+\-@]*$"));
pub(crate) static VPC_ID: LazyLock<Regex> = LazyLock::new(|| re(r"^[-0-9a-zA-Z]{1,32}$"));
pub(crate) static KMS_KEY: LazyLock<Regex> = LazyLock::new(|| re(r"^[a-zA-Z0-9:/_\-]{1,2048}$"));

pub const MAX_RUNTIME_SECS: u64 = 28 * 24 * 3600;
const CREDENTIAL_ENV_NAMES: &[&str] = &[
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
];

/// `<base>-<UTC timestamp with milliseconds>-<random>`, sanitized and cut so the timestamp
/// survives.
///
/// `submission` (this run's random id) gives the name a 4-character suffix after the
/// timestamp, so that runs started in the same millisecond (a CI matrix, `xargs -P`) never
/// pick the same name.
pub fn generate_job_name(base: &str, now: SystemTime, submission: &str) -> String {
    // 2026-11-29T09:14:42.123Z -> 2026-11-29-09-14-42-123
    let stamp: String = humantime::format_rfc3339_millis(now)
        .to_string()
        .trim_end_matches('Z')
        .chars()
        .map(|c| if c.is_ascii_digit() { c } else { '-' })
        .collect();
    fit_name(base, &stamp, submission, 63, "sagetrain")
}

/// `<base>-<stamp>-<suffix>` within `max` characters, the suffix being the first 4 letters or
/// digits of `submission`: the base (sanitised) is cut, never the stamp or the suffix, and
/// `fallback` stands for a base of which nothing is left.
pub fn fit_name(base: &str, stamp: &str, submission: &str, max: usize, fallback: &str) -> String {
    let suffix: String = submission
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(4)
        .collect();
    let tail = match suffix.as_str() {
        "" => stamp.to_string(),
        s => format!("{stamp}-{s}"),
    };
    let base = sanitize_base(base);
    let cut: String = base.chars().take(max - tail.len() - 1).collect();
    match cut.trim_end_matches('-') {
        "" => format!("{fallback}-{tail}"),
        cut => format!("{cut}-{tail}"),
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

/// VPC placement: subnets and security groups, given together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vpc {
    pub subnets: Vec<String>,
    pub security_groups: Vec<String>,
}

/// Validated settings: every value is of the type and within the range the API takes, and
/// what needs a lookup is marked. Built only by [`validate`].
#[derive(Debug, Clone)]
pub struct JobSpec {
    /// The settings as layered, with their sources (for `-v`).
    pub rows: Vec<crate::config::layer::Row>,
    pub config_path: Option<PathBuf>,
    pub connection: Connection,
    /// Given: an ARN or a role name (looked up); `None`: discovered.
    pub role: Option<Val<String>>,
    pub image: Val<String>,
    pub image_ref: ImageRef,
    pub pin_digest: bool,
    /// The instance type; with [`Self::instance_preferences`], the first of them.
    pub instance_type: String,
    /// Two to five types in order of preference (`--instance-type A,B`): sent as
    /// `ResourceConfig.InstancePreferences` instead of the one type. Empty for one type.
    pub instance_preferences: Vec<String>,
    /// `--max-pending`: `StoppingCondition.MaxPendingTimeInSeconds`.
    pub max_pending: Option<i32>,
    /// How many jobs of this request run at once, for the quota check: 1, or a tuning job's
    /// parallel trials (set by `tune`).
    pub concurrent_jobs: i64,
    /// Jobs of the request in all, for the worst-case cost: 1, or a tuning job's `max_jobs`.
    pub jobs: i64,
    /// `--max-cost USD`: the most the worst case may cost.
    pub max_cost: Option<f64>,
    pub instance_count: i32,
    pub volume_size: i32,
    pub max_run: i32,
    pub spot: bool,
    /// Spot only: at least `max_run` (it defaults to it).
    pub max_wait: Option<i32>,
    pub output_path: Option<Val<String>>,
    pub checkpoint_s3: Option<String>,
    pub name: Option<Val<String>>,
    pub base_name: Option<Val<String>>,
    pub kms_key: Option<String>,
    pub network_isolation: bool,
    /// `RemoteDebugConfig.EnableRemoteDebug`: the container can be reached over SSM.
    pub remote_debug: bool,
    pub vpc: Option<Vpc>,
    pub hyperparameters: BTreeMap<String, String>,
    /// S3 prefixes, or local folders until they are uploaded.
    pub channels: BTreeMap<String, Val<String>>,
    pub environment: BTreeMap<String, String>,
    /// `--secret`: each variable NAME and the Secrets Manager secret the job reads it from.
    pub secrets: BTreeMap<String, Val<SecretRef>>,
    pub tags: BTreeMap<String, String>,
    pub metrics: BTreeMap<String, String>,
    /// Code mode (`--source`): the code and the script it runs.
    pub code: Option<Code>,
    /// Warm pool: `ResourceConfig.KeepAlivePeriodInSeconds`, 0-21600.
    pub keep_alive: Option<i32>,
    /// `RetryStrategy.MaximumRetryAttempts`, 1-30.
    pub retries: Option<i32>,
    /// `TrainingInputMode` as the API spells it: File, FastFile or Pipe.
    pub input_mode: Option<String>,
    /// A channel's own `InputMode`, as the API spells it.
    pub channel_input_modes: BTreeMap<String, String>,
    /// What the user should know about accepted values (stderr, before any call).
    pub warnings: Vec<String>,
    pub dry_run: bool,
    pub offline: bool,
    /// `--local`: run here instead of creating the job.
    pub local: Option<crate::job::local::Local>,
}

/// Code mode: where the code is and which script runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Code {
    /// A local folder (uploaded first) or an S3 prefix (an earlier upload, from `--from`).
    pub source: Val<String>,
    /// The entry script, relative to the code folder.
    pub entry: String,
}

/// The API's spelling of an input mode (`file`, `fastfile`, `pipe`, any case).
pub fn input_mode_name(mode: &str) -> Option<&'static str> {
    match mode.to_ascii_lowercase().as_str() {
        "file" => Some("File"),
        "fastfile" => Some("FastFile"),
        "pipe" => Some("Pipe"),
        _ => None,
    }
}

/// The longest warm pool SageMaker keeps (`KeepAlivePeriodInSeconds`, 0-21600).
pub const MAX_KEEP_ALIVE_SECS: u64 = 21600;
/// `ResourceConfig.InstancePreferences`: 1 to 5 (the model's InstancePreferenceList).
pub const MAX_INSTANCE_PREFERENCES: usize = 5;
/// `StoppingCondition.MaxPendingTimeInSeconds`: the model's range.
pub const MIN_PENDING_SECS: u64 = 1800;
pub const MAX_PENDING_SECS: u64 = 2_419_200;
/// The most subnets and security groups of a VPC configuration.
pub const MAX_SUBNETS: usize = 16;
pub const MAX_SECURITY_GROUPS: usize = 5;
/// The most retries SageMaker makes of a job (`MaximumRetryAttempts`, 1-30).
pub const MAX_RETRIES: i64 = 30;

/// A longer keep-alive is warned about: the pool is billed while it waits.
pub const WARM_POOL_WARNING_SECS: u64 = 3600;

/// The tags sagetrain adds to a job: the submission id, and the code's digest in code mode
/// (when the code is, or will be, at a content-addressed prefix).
fn own_tag_keys(source: Option<&Val<String>>) -> Vec<&'static str> {
    let mut keys = vec![crate::job::request::SUBMISSION_TAG];
    let digest = source.is_some_and(|s| {
        !s.value.starts_with("s3://") || crate::job::code::digest_of_uri(&s.value).is_some()
    });
    if digest {
        keys.push(crate::job::code::CODE_DIGEST_TAG);
    }
    keys
}

fn own_tag_count(source: Option<&Val<String>>) -> usize {
    own_tag_keys(source).len()
}

/// The limits of a `KEY=VALUE` map setting, one row per map.
pub(crate) struct MapRule {
    /// Plural, for the count message.
    pub(crate) what: &'static str,
    /// Singular, for key and value messages.
    pub(crate) kind: &'static str,
    pub(crate) max_count: usize,
    pub(crate) max_key: usize,
    pub(crate) max_value: usize,
    /// Scan values for credentials.
    pub(crate) credentials: bool,
}

pub(crate) const HYPERPARAMETERS: MapRule = MapRule {
    what: "hyperparameters",
    kind: "hyperparameter",
    max_count: 100,
    max_key: 256,
    max_value: 2500,
    credentials: true,
};
pub(crate) const ENVIRONMENT: MapRule = MapRule {
    what: "environment variables",
    kind: "environment variable",
    max_count: 100,
    max_key: 512,
    max_value: 512,
    credentials: true,
};
pub(crate) const CHANNELS: MapRule = MapRule {
    what: "input channels",
    kind: "channel",
    max_count: 20,
    max_key: 64,
    max_value: 1024,
    credentials: false,
};
pub(crate) const TAGS: MapRule = MapRule {
    what: "tags",
    kind: "tag",
    max_count: 50,
    max_key: 128,
    max_value: 256,
    credentials: true,
};
pub(crate) const METRICS: MapRule = MapRule {
    what: "metric definitions",
    kind: "metric",
    max_count: 40,
    max_key: 255,
    max_value: 500,
    credentials: false,
};

/// The scan of entries for secrets, and the names `--allow-plaintext` lets through.
struct Secrets<'a> {
    allowed: &'a [String],
    used: Vec<String>,
    warnings: Vec<String>,
}

impl MapRule {
    /// The count, each key's and value's length, and credential-like values.
    fn check(
        &self,
        v: &mut Vec<Violation>,
        m: &BTreeMap<String, Val<String>>,
        plain: &mut Secrets,
    ) {
        // Tags count with sagetrain's own: checked with them.
        if m.len() > self.max_count && self.kind != "tag" {
            v_push_count(v, self.what, m.len(), self.max_count);
        }
        for (k, val) in m {
            let what = val.source.name_for(Some(k));
            if k.is_empty() || k.chars().count() > self.max_key {
                v.push(Violation::new(
                    &what,
                    format!("{} names have 1-{} characters", self.kind, self.max_key),
                ));
            }
            let n = val.value.chars().count();
            if n > self.max_value {
                v.push(Violation::new(
                    &what,
                    format!(
                        "{} values have at most {} characters (got {n})",
                        self.kind, self.max_value
                    ),
                ));
            }
            if !self.credentials {
                continue;
            }
            match secrets::scan_entry(k, &val.value) {
                Some(f) if f.is_aws() => v.push(credential_violation(&what, f, &val.value)),
                Some(f) if plain.allowed.contains(k) => {
                    plain.used.push(k.clone());
                    plain.warnings.push(format!(
                        "{what} looks like {} and is sent in plain text (--allow-plaintext {k}): anyone who may describe the job reads it",
                        f.describe()
                    ));
                }
                Some(f) => v.push(Violation::new(
                    &what,
                    format!(
                        "looks like {}; a {} is readable by anyone who may describe the job (and in CloudTrail). Keep it in AWS Secrets Manager and read it in the job with the execution role, or send it as is with --allow-plaintext {k}",
                        f.describe(),
                        self.kind
                    ),
                )),
                None => {}
            }
        }
    }
}

fn strings(m: &BTreeMap<String, Val<String>>) -> BTreeMap<String, String> {
    m.iter()
        .map(|(k, v)| (k.clone(), v.value.clone()))
        .collect()
}

fn to_i32(v: i64) -> i32 {
    v.clamp(0, i32::MAX as i64) as i32
}

/// The base of a generated name: `--base-name`, or the image repository's name.
pub fn base_name(s: &JobSpec) -> (String, Source) {
    match &s.base_name {
        Some(b) => (b.value.clone(), b.source.clone()),
        None => (
            s.image_ref.short_name(),
            Source::Lookup("the image repository's name".into()),
        ),
    }
}

#[cfg(test)]
#[path = "model_tests.rs"]
mod model_tests;

/// Check every value that can be checked without AWS, with relative channel folders taken from
/// the process's current folder. All violations are returned together.
#[cfg(test)]
pub fn validate_settings(s: &TrainSettings) -> Vec<Violation> {
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    validate_settings_at(s, &cwd)
}

/// The violations of [`validate`].
pub fn validate_settings_at(s: &TrainSettings, cwd: &Path) -> Vec<Violation> {
    validate(s, cwd).err().unwrap_or_default()
}

/// Check every setting (relative channel folders from flags and the environment taken from
/// `cwd`) and return the validated [`JobSpec`], or every violation together.
pub fn validate(s: &TrainSettings, cwd: &Path) -> Result<JobSpec, Vec<Violation>> {
    // No `..`: a setting declared in `job::settings` is a compile error here until it has a rule.
    let TrainSettings {
        config_path,
        connection,
        role,
        image,
        pin_digest,
        instance_type,
        max_cost,
        max_pending,
        instance_count,
        volume_size,
        max_run,
        spot,
        max_wait,
        output_path,
        checkpoint_s3,
        name,
        base_name,
        kms_key,
        network_isolation,
        remote_debug,
        subnets,
        security_groups,
        hyperparameters,
        channels,
        environment,
        tags,
        metrics,
        channel_input_modes,
        source,
        entry,
        keep_alive,
        retries,
        input_mode,
        allow_plaintext,
        secrets: secret_ids,
        dry_run,
        offline,
        local,
        engine,
        python,
        local_sample,
    } = s;
    let mut v = connection.check();
    let mut warnings = Vec::new();
    let mut secrets = Secrets {
        allowed: allow_plaintext,
        used: Vec::new(),
        warnings: Vec::new(),
    };
    fn bad(v: &mut Vec<Violation>, src: &Source, rule: String) {
        v.push(Violation::new(src.name_for(None), rule));
    }

    if let Some(role) = role {
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
    // Host mode runs no image: a run without one gets a stand-in in its request.
    let host_image =
        (image.is_none() && local.as_ref().is_some_and(|l| l.value == "host")).then(|| {
            Val::new(
                crate::job::local::placeholder::HOST_IMAGE.to_string(),
                Source::Default,
            )
        });
    let image = match &host_image {
        Some(_) => &host_image,
        None => image,
    };
    let image_ref = match image {
        Some(img) => match ImageRef::parse(&img.value) {
            Ok(r) => Some(r),
            Err(rule) => {
                bad(&mut v, &img.source, rule);
                None
            }
        },
        None => {
            v.push(Violation::new(
                "--image",
                "no image given: set --image, SAGETRAIN_IMAGE or `image` in sagetrain.toml",
            ));
            None
        }
    };
    let types = instance_type
        .clone()
        .unwrap_or_else(|| Val::new(vec![String::new()], Source::Default));
    if types.value.is_empty() {
        bad(
            &mut v,
            &types.source,
            "needs at least one instance type".into(),
        );
    }
    if types.value.len() > MAX_INSTANCE_PREFERENCES {
        bad(
            &mut v,
            &types.source,
            format!(
                "{} instance types given; SageMaker takes at most {MAX_INSTANCE_PREFERENCES} in order of preference",
                types.value.len()
            ),
        );
    }
    for (i, t) in types.value.iter().enumerate() {
        if types.value[..i].contains(t) {
            bad(
                &mut v,
                &types.source,
                format!("`{t}` is given twice; each type may appear once"),
            );
            continue;
        }
        match check_instance_type(t, training_instance_types(), MODEL_ONLY_INSTANCE_TYPES) {
            Ok(None) => {}
            Ok(Some(note)) => warnings.push(format!("{}: {note}", types.source.name_for(None))),
            Err(rule) => bad(&mut v, &types.source, rule),
        }
    }
    // Several types: the request's InstancePreferences, in the order given.
    let preferences = if types.value.len() > 1 {
        types.value.clone()
    } else {
        Vec::new()
    };
    let budget = match max_cost {
        None => None,
        Some(m) => match m.value.trim().trim_start_matches('$').parse::<f64>() {
            Ok(usd) if usd.is_finite() && usd > 0.0 => Some(usd),
            _ => {
                bad(
                    &mut v,
                    &m.source,
                    format!(
                        "`{}` is not an amount of US dollars above 0 (e.g. 50 or 12.5)",
                        m.value
                    ),
                );
                None
            }
        },
    };
    let pending = max_pending.as_ref().map(|p| p.value);
    if let Some(p) = max_pending.as_ref() {
        if !(MIN_PENDING_SECS..=MAX_PENDING_SECS).contains(&p.value) {
            bad(
                &mut v,
                &p.source,
                format!(
                    "must be between 30 minutes ({MIN_PENDING_SECS}s) and 28 days ({MAX_PENDING_SECS}s); got {}s",
                    p.value
                ),
            );
        }
    }
    let count = instance_count.as_ref().map(|c| c.value).unwrap_or(1);
    if let Some(c) = instance_count.as_ref().filter(|c| c.value < 1) {
        bad(
            &mut v,
            &c.source,
            format!("must be at least 1 (got {})", c.value),
        );
    }
    let volume = volume_size.as_ref().map(|c| c.value).unwrap_or(30);
    if let Some(c) = volume_size.as_ref().filter(|c| c.value < 1) {
        bad(
            &mut v,
            &c.source,
            format!("must be at least 1 GB (got {})", c.value),
        );
    }
    let run = max_run.as_ref().map(|m| m.value).unwrap_or(24 * 3600);
    if let Some(m) = max_run
        .as_ref()
        .filter(|m| m.value < 1 || m.value > MAX_RUNTIME_SECS)
    {
        bad(
            &mut v,
            &m.source,
            format!("must be between 1 second and 28 days (got {}s)", m.value),
        );
    }
    if let (Some(r), Some(n)) = (
        remote_debug.as_ref().filter(|r| r.value),
        network_isolation.as_ref().filter(|n| n.value),
    ) {
        bad(
            &mut v,
            &r.source,
            format!(
                "remote debugging needs the container's network, which network isolation ({}) takes away; drop one of the two",
                n.source.name_for(None)
            ),
        );
    }
    let is_spot = spot.as_ref().is_some_and(|s| s.value);
    if is_spot && !preferences.is_empty() {
        bad(
            &mut v,
            &types.source,
            "several instance types (InstancePreferences) cannot be combined with managed spot training; give one type with --spot, or drop --spot".into(),
        );
    }
    match (max_wait, is_spot) {
        (Some(w), true) if w.value < run => bad(
            &mut v,
            &w.source,
            format!(
                "must be at least the maximum run time ({run}s; got {}s)",
                w.value
            ),
        ),
        (Some(w), false) => bad(
            &mut v,
            &w.source,
            "applies only to spot training; add --spot (or `spot = true`)".into(),
        ),
        _ => {}
    }

    HYPERPARAMETERS.check(&mut v, hyperparameters, &mut secrets);
    if let Some(e) = hyperparameters.get("epochs") {
        if !e.value.parse::<u64>().map(|n| n >= 1).unwrap_or(false) {
            v.push(Violation::new(
                e.source.name_for(Some("epochs")),
                format!("`{}` is not a positive whole number of epochs", e.value),
            ));
        }
    }
    ENVIRONMENT.check(&mut v, environment, &mut secrets);
    for (k, val) in environment {
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
    let secret_refs = check_secrets(&mut v, secret_ids, environment, *offline);
    if channels.len() > CHANNELS.max_count {
        v_push_count(&mut v, CHANNELS.what, channels.len(), CHANNELS.max_count);
    }
    for (cname, uri) in channels {
        if !is_channel_name(cname) {
            v.push(Violation::new(
                uri.source.name_for(Some(cname)),
                format!(
                    "`{cname}` is not a valid channel name (1-64 of letters, digits, `.`, `-`, `_`)"
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
                        uri.source.name_for(Some(cname)),
                        format!(
                            "the local folder {} {what}; a channel is an S3 URI (s3://BUCKET/PREFIX) or a local folder to upload",
                            dir.display()
                        ),
                    ));
                }
            }
            Err(rule) => v.push(Violation::new(uri.source.name_for(Some(cname)), rule)),
        }
    }
    for val in [output_path, checkpoint_s3].into_iter().flatten() {
        if let Err(rule) = S3Uri::parse(&val.value) {
            v.push(Violation::new(val.source.name_for(None), rule));
        }
    }
    if let Some(n) = name {
        if let Err(rule) = check_job_name(&n.value) {
            v.push(Violation::new(n.source.name_for(None), rule));
        }
    }
    TAGS.check(&mut v, tags, &mut secrets);
    // The tags sagetrain adds count toward the service's limit.
    let own_tags = own_tag_count(source.as_ref());
    if tags.len() + own_tags > TAGS.max_count {
        v.push(Violation::new(
            "tags",
            format!(
                "{} given; sagetrain adds {own_tags} of its own ({}), so at most {} are left for yours (the service allows {} tags)",
                tags.len(),
                own_tag_keys(source.as_ref()).join(", "),
                TAGS.max_count - own_tags,
                TAGS.max_count
            ),
        ));
    }
    for (k, val) in tags {
        let what = val.source.name_for(Some(k));
        if !TAG_TEXT.is_match(k) || !TAG_TEXT.is_match(&val.value) {
            v.push(Violation::new(
                &what,
                "tags may hold letters, digits, spaces and _ . : / = + - @ only",
            ));
        }
        let lower = k.to_ascii_lowercase();
        if lower.starts_with("aws:") {
            v.push(Violation::new(
                &what,
                "tag keys starting with `aws:` are reserved by AWS",
            ));
        } else if lower.starts_with("sagetrain:") {
            v.push(Violation::new(
                &what,
                "tag keys starting with `sagetrain:` are set by sagetrain itself",
            ));
        }
    }
    METRICS.check(&mut v, metrics, &mut secrets);
    for (mname, val) in metrics {
        if val.value.is_empty() {
            v.push(Violation::new(
                val.source.name_for(Some(mname)),
                "a metric regex has 1-500 characters",
            ));
        } else if !val.value.contains('(') {
            v.push(Violation::new(
                val.source.name_for(Some(mname)),
                "the regex needs a capture group around the number, e.g. `val_dice=([0-9.]+)`",
            ));
        }
    }
    let vpc = match (subnets, security_groups) {
        (Some(sn), None) => {
            v.push(Violation::new(
                sn.source.name_for(None),
                "subnets need at least one security group too (--security-group)",
            ));
            None
        }
        (None, Some(sg)) => {
            v.push(Violation::new(
                sg.source.name_for(None),
                "security groups need at least one subnet too (--subnet)",
            ));
            None
        }
        (Some(sn), Some(sg)) => {
            if sn.value.is_empty() || sn.value.len() > MAX_SUBNETS {
                v.push(Violation::new(
                    sn.source.name_for(None),
                    format!("give 1-{MAX_SUBNETS} subnets (got {})", sn.value.len()),
                ));
            }
            if sg.value.is_empty() || sg.value.len() > MAX_SECURITY_GROUPS {
                v.push(Violation::new(
                    sg.source.name_for(None),
                    format!(
                        "give 1-{MAX_SECURITY_GROUPS} security groups (got {})",
                        sg.value.len()
                    ),
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
            Some(Vpc {
                subnets: sn.value.clone(),
                security_groups: sg.value.clone(),
            })
        }
        (None, None) => None,
    };
    if let Some(k) = kms_key {
        if !KMS_KEY.is_match(&k.value) {
            v.push(Violation::new(
                k.source.name_for(None),
                "is not a KMS key id, alias or ARN",
            ));
        }
    }
    warnings.append(&mut secrets.warnings);
    for name in allow_plaintext {
        if !secrets.used.contains(name) {
            v.push(Violation::new(
                format!("--allow-plaintext {name}"),
                "no hyperparameter, environment variable or tag of that name looks like a secret; drop the flag",
            ));
        }
    }
    let code = check_code(&mut v, source.as_ref(), entry.as_ref(), channels, cwd);
    if let Some(k) = keep_alive {
        if k.value > MAX_KEEP_ALIVE_SECS {
            bad(
                &mut v,
                &k.source,
                format!(
                    "a warm pool is kept at most 6 hours ({MAX_KEEP_ALIVE_SECS}s; got {}s)",
                    k.value
                ),
            );
        } else if is_spot {
            bad(
                &mut v,
                &k.source,
                "warm pools do not work with spot training; drop --spot (or `spot`) or the keep-alive".into(),
            );
        } else if k.value > WARM_POOL_WARNING_SECS {
            warnings.push(format!(
                "{}: the instances are kept (and billed) for {} after the job while they wait for the next one; release them with `sagetrain pools release` when done",
                k.source.name_for(None),
                crate::config::durations::format_secs(k.value)
            ));
        }
    }
    if let Some(r) = retries
        .as_ref()
        .filter(|r| !(1..=MAX_RETRIES).contains(&r.value))
    {
        bad(
            &mut v,
            &r.source,
            format!(
                "must be between 1 and {MAX_RETRIES} retries (got {})",
                r.value
            ),
        );
    }
    let input_mode_api = match input_mode {
        Some(m) => match input_mode_name(&m.value) {
            Some(api) => Some(api.to_string()),
            None => {
                bad(
                    &mut v,
                    &m.source,
                    format!(
                        "`{}` is not an input mode: use file, fastfile or pipe",
                        m.value
                    ),
                );
                None
            }
        },
        None => None,
    };
    let mut channel_modes = BTreeMap::new();
    for (cname, m) in channel_input_modes {
        let what = m.source.name_for(Some(cname));
        if !channels.contains_key(cname) {
            v.push(Violation::new(
                &what,
                format!("there is no channel `{cname}` to give an input mode"),
            ));
        }
        match input_mode_name(&m.value) {
            Some(api) => {
                channel_modes.insert(cname.clone(), api.to_string());
            }
            None => v.push(Violation::new(
                &what,
                format!(
                    "`{}` is not an input mode: use file, fastfile or pipe",
                    m.value
                ),
            )),
        }
    }
    let pin = pin_digest.as_ref().is_none_or(|p| p.value);
    if let (true, Some(m)) = (*offline, max_cost.as_ref()) {
        v.push(Violation::new(
            m.source.name_for(None),
            "the worst case needs the instance type's price (a lookup): drop --offline to check it",
        ));
    }
    let local = crate::job::local::check(
        &mut v,
        crate::job::local::Given {
            local: local.as_ref(),
            engine: engine.as_ref(),
            python: python.as_ref(),
            sample: local_sample.as_ref(),
        },
        crate::job::local::Others {
            code: code.as_ref(),
            instance_count: instance_count.as_ref(),
            cwd,
        },
    );
    // A local run looks nothing up: what --offline would need is not needed.
    if *offline && local.is_none() {
        v.extend(offline_violations(
            connection,
            role.as_ref(),
            image.as_ref().zip(image_ref.as_ref()),
            pin,
            output_path.as_ref(),
        ));
    }
    let (Some(image), Some(image_ref), true) = (image, image_ref, v.is_empty()) else {
        return Err(v);
    };
    Ok(JobSpec {
        rows: s.rows(),
        config_path: config_path.clone(),
        connection: connection.clone(),
        role: role.clone(),
        image: image.clone(),
        image_ref,
        pin_digest: pin,
        instance_type: types.value.first().cloned().unwrap_or_default(),
        instance_preferences: preferences,
        max_pending: pending.map(|p| p.min(i32::MAX as u64) as i32),
        concurrent_jobs: 1,
        jobs: 1,
        max_cost: budget,
        instance_count: to_i32(count),
        volume_size: to_i32(volume),
        max_run: run.min(i32::MAX as u64) as i32,
        spot: is_spot,
        max_wait: is_spot.then(|| {
            max_wait
                .as_ref()
                .map_or(run, |w| w.value)
                .min(i32::MAX as u64) as i32
        }),
        output_path: output_path.clone(),
        checkpoint_s3: checkpoint_s3.as_ref().map(|c| c.value.clone()),
        name: name.clone(),
        base_name: base_name.clone(),
        kms_key: kms_key.as_ref().map(|k| k.value.clone()),
        network_isolation: network_isolation.as_ref().is_some_and(|n| n.value),
        remote_debug: remote_debug.as_ref().is_some_and(|r| r.value),
        vpc,
        hyperparameters: strings(hyperparameters),
        channels: channels.clone(),
        environment: strings(environment),
        secrets: secret_refs,
        tags: strings(tags),
        metrics: strings(metrics),
        code,
        keep_alive: keep_alive.as_ref().map(|k| k.value as i32),
        retries: retries.as_ref().map(|r| r.value as i32),
        input_mode: input_mode_api,
        channel_input_modes: channel_modes,
        warnings,
        dry_run: *dry_run,
        offline: *offline,
        local,
    })
}

/// `--source` and `--entry`: a local folder that holds the entry script, or an S3 prefix.
fn check_code(
    v: &mut Vec<Violation>,
    source: Option<&Val<String>>,
    entry: Option<&Val<String>>,
    channels: &BTreeMap<String, Val<String>>,
    cwd: &Path,
) -> Option<Code> {
    use crate::job::code::{check_entry, CODE_CHANNEL, DEFAULT_ENTRY};
    let Some(source) = source else {
        if let Some(e) = entry.filter(|e| !matches!(e.source, Source::Default)) {
            v.push(Violation::new(
                e.source.name_for(None),
                "applies only to code mode: add --source DIR (or `source` in sagetrain.toml)",
            ));
        }
        return None;
    };
    let entry = entry
        .cloned()
        .unwrap_or_else(|| Val::new(DEFAULT_ENTRY.to_string(), Source::Default));
    let entry_ok = match check_entry(&entry.value) {
        Ok(()) => true,
        Err(rule) => {
            v.push(Violation::new(entry.source.name_for(None), rule));
            false
        }
    };
    if let Some(c) = channels.get(CODE_CHANNEL) {
        v.push(Violation::new(
            c.source.name_for(Some(CODE_CHANNEL)),
            "the channel `code` carries the code of --source; give this channel another name",
        ));
    }
    match channel_location(source, cwd) {
        Ok(ChannelLocation::S3(_)) => {}
        Ok(ChannelLocation::Local(dir)) => {
            if !dir.is_dir() {
                v.push(Violation::new(
                    source.source.name_for(None),
                    format!(
                        "the code folder {} {}",
                        dir.display(),
                        if dir.exists() {
                            "is not a folder"
                        } else {
                            "does not exist"
                        }
                    ),
                ));
            } else if entry_ok && !dir.join(&entry.value).is_file() {
                v.push(Violation::new(
                    entry.source.name_for(None),
                    format!(
                        "the entry script {} is not in the code folder {}; give the script to run with --entry FILE (default train.py)",
                        entry.value,
                        dir.display()
                    ),
                ));
            }
        }
        Err(rule) => v.push(Violation::new(source.source.name_for(None), rule)),
    }
    Some(Code {
        source: source.clone(),
        entry: entry.value,
    })
}

/// `--secret NAME=SECRET_ID`: a variable name that is not the user's credentials nor also an
/// `--env`, a secret name or ARN (an ARN with `--offline`), and room for one variable each.
fn check_secrets(
    v: &mut Vec<Violation>,
    secrets: &BTreeMap<String, Val<String>>,
    environment: &BTreeMap<String, Val<String>>,
    offline: bool,
) -> BTreeMap<String, Val<SecretRef>> {
    let mut refs = BTreeMap::new();
    for (name, id) in secrets {
        let what = id.source.name_for(Some(name));
        if !ENV_KEY.is_match(name) {
            v.push(Violation::new(&what, format!(
                "`{name}` is not a valid variable name ([a-zA-Z_][a-zA-Z0-9_]*); the job gets the secret as that variable"
            )));
        }
        if secret::env_name(name).len() > ENVIRONMENT.max_key {
            v.push(Violation::new(
                &what,
                format!(
                    "the name is too long: the job's variable {}NAME has at most {} characters",
                    secret::ENV_PREFIX,
                    ENVIRONMENT.max_key
                ),
            ));
        }
        if CREDENTIAL_ENV_NAMES.contains(&name.to_ascii_uppercase().as_str()) {
            v.push(Violation::new(&what, format!(
                "`{name}` would replace the execution role's credentials in the container; a secret is for a third-party token"
            )));
        }
        if let Some(e) = environment.get(name) {
            v.push(Violation::new(
                &what,
                format!(
                    "`{name}` is also set by {}; give it one way",
                    e.source.name_for(Some(name))
                ),
            ));
        }
        match SecretRef::parse(&id.value) {
            Ok(r) if offline && !r.is_arn() => v.push(Violation::new(&what, format!(
                "the secret name `{}` needs a lookup (secretsmanager:DescribeSecret) for its ARN; give the ARN with --offline",
                r.id
            ))),
            // The job's variable holds the ARN (and `:KEY`): it has the variables' limits.
            Ok(r) if r.is_arn() && r.env_value(&r.id).len() > ENVIRONMENT.max_value => {
                v.push(Violation::new(&what, format!(
                    "the ARN with its JSON key has {} characters; the job's variable {} takes at most {}",
                    r.env_value(&r.id).len(),
                    secret::env_name(name),
                    ENVIRONMENT.max_value
                )))
            }
            Ok(r) => {
                refs.insert(name.clone(), Val::new(r, id.source.clone()));
            }
            Err(rule) => v.push(Violation::new(&what, rule)),
        }
    }
    let total = environment.len() + secrets.len();
    if !secrets.is_empty() && total > ENVIRONMENT.max_count {
        v.push(Violation::new(
            "environment variables",
            format!(
                "{} given and {} secrets, each one variable ({}NAME): {total}; at most {} are allowed",
                environment.len(),
                secrets.len(),
                secret::ENV_PREFIX,
                ENVIRONMENT.max_count
            ),
        ));
    }
    refs
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

/// With `--offline`, every value that would need a lookup must be given.
fn offline_violations(
    connection: &Connection,
    role: Option<&Val<String>>,
    image: Option<(&Val<String>, &ImageRef)>,
    pin_digest: bool,
    output_path: Option<&Val<String>>,
) -> Vec<Violation> {
    let mut v = Vec::new();
    match role {
        None => v.push(Violation::new("--offline", "no execution role given and it cannot be looked up offline: set --role ARN or SAGEMAKER_ROLE")),
        Some(r) if !r.value.starts_with("arn:") => v.push(Violation::new(r.source.name_for(None), "a role name needs a lookup (iam:GetRole); give the full role ARN with --offline")),
        _ => {}
    }
    match image {
        Some((i, ImageRef::Ecr { account: None, .. })) => v.push(Violation::new(i.source.name_for(None), "a bare repository name needs the account (a lookup); give the full URI ACCOUNT.dkr.ecr.REGION.amazonaws.com/REPO:TAG with --offline")),
        Some((i, ImageRef::Ecr { version: ImageVersion::Tag(_), .. })) if pin_digest => v.push(Violation::new(i.source.name_for(None), "pinning the image digest needs an ECR lookup; add --no-pin-digest or give REPO@sha256:DIGEST with --offline")),
        _ => {}
    }
    if output_path.is_none() {
        v.push(Violation::new("--offline", "the default output bucket needs the account (a lookup): set --output-path s3://BUCKET/PREFIX"));
    }
    if connection.region.is_none() {
        v.push(Violation::new(
            "--offline",
            "no region: set --region, AWS_REGION or `region` in sagetrain.toml",
        ));
    }
    v
}

/// The rule of a name or an ARN: `what` has `len` characters, and matches `pattern` (else
/// the value `is_not` what it should be).
pub fn check_text(
    value: &str,
    what: &str,
    len: std::ops::RangeInclusive<usize>,
    pattern: &Regex,
    is_not: &str,
) -> Result<(), String> {
    if !len.contains(&value.len()) {
        let (min, max, got) = (len.start(), len.end(), value.len());
        return Err(format!("{what} has {min}-{max} characters (got {got})"));
    }
    match pattern.is_match(value) {
        true => Ok(()),
        false => Err(format!("`{value}` {is_not}")),
    }
}

pub fn check_role_arn(arn: &str) -> Result<(), String> {
    const NOT: &str = "is not an IAM role ARN (arn:aws:iam::123456789012:role/NAME)";
    check_text(arn, "a role ARN", 20..=2048, &ROLE_ARN, NOT)
}

pub fn check_job_name(name: &str) -> Result<(), String> {
    const NOT: &str = "is not a valid job name: letters, digits and `-` only, starting and ending with a letter or digit (no `_`)";
    check_text(name, "a job name", 1..=63, &JOB_NAME, NOT)
}

/// The SDK's enum of training instance types.
pub fn training_instance_types() -> &'static [&'static str] {
    aws_sdk_sagemaker::types::TrainingInstanceType::values()
}

/// Training instance types of the service model (botocore's `TrainingInstanceType`) that the
/// SDK release sagetrain is built with lacks: accepted with a warning. A test keeps this list
/// equal to the model's enum less the SDK's.
pub const MODEL_ONLY_INSTANCE_TYPES: &[&str] = &[];

/// An instance type of the SDK's enum is accepted; one that only the service model has is
/// accepted with a note; any other is refused.
pub fn check_instance_type(
    t: &str,
    sdk: &[&str],
    model_only: &[&str],
) -> Result<Option<String>, String> {
    if sdk.contains(&t) {
        return Ok(None);
    }
    if model_only.contains(&t) {
        return Ok(Some(format!(
            "`{t}` is a SageMaker training instance type that this sagetrain's SDK release does not list yet; it is sent as is"
        )));
    }
    let hint = if t.starts_with("ml.") {
        "is not a SageMaker training instance type".to_string()
    } else {
        format!("is not a SageMaker training instance type (did you mean ml.{t}?)")
    };
    Err(format!(
        "`{t}` {hint}; e.g. ml.g5.xlarge, ml.p3.2xlarge, ml.m5.xlarge"
    ))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::aws::connection::ConnectionArgs;
    use crate::job::settings::TrainArgs;
    use crate::job::settings::TrainSettings;
    use std::time::{Duration, UNIX_EPOCH};

    fn settings(args: TrainArgs) -> TrainSettings {
        let g = ConnectionArgs {
            region: Some("eu-west-1".into()),
            ..Default::default()
        };
        TrainSettings::layer(&g, &args, &|_| None, None).unwrap()
    }

    /// Flags of a valid job (region eu-west-1).
    pub(crate) fn valid_args() -> TrainArgs {
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

    /// The settings are refused, with (at least) these messages.
    fn assert_refused(args: TrainArgs, expected: &[&str]) {
        crate::testing::assert_contains_all(&rules(args).join("\n"), expected);
    }

    #[test]
    fn remote_debugging_is_refused_with_network_isolation() {
        assert_refused(
            TrainArgs {
                remote_debug: true,
                network_isolation: true,
                ..valid_args()
            },
            &["--remote-debug: remote debugging needs the container's network, which network isolation (--network-isolation) takes away; drop one of the two"],
        );
        let on = TrainArgs {
            remote_debug: true,
            ..valid_args()
        };
        assert!(
            validate(&settings(on), Path::new("/"))
                .unwrap()
                .remote_debug
        );
        assert!(
            !validate(&settings(valid_args()), Path::new("/"))
                .unwrap()
                .remote_debug
        );
    }

    #[test]
    fn secrets_are_refs_to_secrets_manager_and_never_a_value() {
        let arn = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:db-123456";
        let args = TrainArgs {
            secrets: vec![
                "WANDB_API_KEY=sagetrain/wandb".into(),
                format!("DB_PASSWORD={arn}:password"),
            ],
            ..valid_args()
        };
        let spec = validate(&settings(args), Path::new("/")).unwrap();
        assert_eq!(spec.secrets["WANDB_API_KEY"].value.id, "sagetrain/wandb");
        assert_eq!(spec.secrets["DB_PASSWORD"].value.id, arn);
        assert_eq!(
            spec.secrets["DB_PASSWORD"].value.json_key.as_deref(),
            Some("password")
        );
        assert!(spec.environment.is_empty());

        assert_refused(
            TrainArgs {
                secrets: vec![
                    "1BAD=sagetrain/x".into(),
                    "AWS_SECRET_ACCESS_KEY=sagetrain/x".into(),
                    "HF_TOKEN=sagetrain/hf".into(),
                    "OTHER=not a name".into(),
                    format!("{}=sagetrain/x", "L".repeat(496)),
                    format!("LONG_ARN={arn}:{}", "k".repeat(512 - arn.len())),
                ],
                environment: vec!["HF_TOKEN=x".into()],
                ..valid_args()
            },
            &[
                "--secret 1BAD: `1BAD` is not a valid variable name",
                "--secret AWS_SECRET_ACCESS_KEY: `AWS_SECRET_ACCESS_KEY` would replace the execution role's credentials",
                "--secret HF_TOKEN: `HF_TOKEN` is also set by --env HF_TOKEN",
                "--secret OTHER: `not a name` is not a Secrets Manager secret name",
                "the name is too long: the job's variable SAGETRAIN_SECRET_NAME has at most 512",
                "--secret LONG_ARN: the ARN with its JSON key has 513 characters",
            ],
        );
        assert_refused(
            TrainArgs {
                secrets: vec!["W=sagetrain/wandb".into(), format!("D={arn}")],
                offline: true,
                ..valid_args()
            },
            &["--secret W: the secret name `sagetrain/wandb` needs a lookup"],
        );
        assert_refused(
            TrainArgs {
                secrets: vec!["S=sagetrain/s".into()],
                environment: (0..100).map(|i| format!("V{i}=x")).collect(),
                ..valid_args()
            },
            &["environment variables: 100 given and 1 secrets, each one variable (SAGETRAIN_SECRET_NAME): 101; at most 100"],
        );
    }

    #[test]
    fn instance_preferences_and_max_pending_follow_the_service_rules() {
        let spec = validate(
            &settings(TrainArgs {
                instance_type: Some("ml.g5.2xlarge, ml.g6.2xlarge".into()),
                max_pending: Some("1h".into()),
                ..valid_args()
            }),
            Path::new("/"),
        )
        .unwrap();
        assert_eq!(spec.instance_type, "ml.g5.2xlarge");
        assert_eq!(
            spec.instance_preferences,
            ["ml.g5.2xlarge", "ml.g6.2xlarge"]
        );
        assert_eq!(spec.max_pending, Some(3600));
        let one = validate(&settings(valid_args()), Path::new("/")).unwrap();
        assert!(one.instance_preferences.is_empty());

        assert_refused(
            TrainArgs {
                instance_type: Some(
                    "ml.g5.xlarge,ml.g5.2xlarge,ml.g5.4xlarge,ml.g6.xlarge,ml.g6.2xlarge,ml.g5.xlarge,g5.8xlarge"
                        .into(),
                ),
                max_pending: Some("10m".into()),
                ..valid_args()
            },
            &[
                "--instance-type: 7 instance types given; SageMaker takes at most 5",
                "--instance-type: `ml.g5.xlarge` is given twice",
                "--instance-type: `g5.8xlarge` is not a SageMaker training instance type (did you mean ml.g5.8xlarge?)",
                "--max-pending: must be between 30 minutes (1800s) and 28 days (2419200s); got 600s",
            ],
        );
        assert_refused(
            TrainArgs {
                instance_type: Some("ml.g5.xlarge,ml.g6.xlarge".into()),
                spot: true,
                ..valid_args()
            },
            &["--instance-type: several instance types (InstancePreferences) cannot be combined with managed spot training"],
        );
    }

    #[test]
    fn valid_settings_pass() {
        assert_eq!(rules(valid_args()), Vec::<String>::new());
    }

    #[test]
    fn code_mode_warm_pool_retries_and_input_mode_rules() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("train.py"), "print(1)\n").unwrap();
        let dir = d.path().to_str().unwrap().to_string();
        let ok = TrainArgs {
            source: Some(dir.clone()),
            keep_alive: Some("30m".into()),
            retries: Some("30".into()),
            input_mode: Some("FastFile".into()),
            ..valid_args()
        };
        assert_eq!(rules(ok.clone()), Vec::<String>::new());
        let spec = validate(&settings(ok), Path::new("/")).unwrap();
        assert_eq!(spec.code.unwrap().entry, "train.py");
        assert_eq!(spec.keep_alive, Some(1800));
        assert_eq!(spec.input_mode.as_deref(), Some("FastFile"));

        assert_refused(
            TrainArgs {
                source: Some(dir.clone()),
                entry: Some("main.py".into()),
                keep_alive: Some("7h".into()),
                retries: Some("0".into()),
                input_mode: Some("stream".into()),
                channels: vec!["code=s3://my-bucket/code/".into()],
                ..valid_args()
            },
            &[
                "--entry: the entry script main.py is not in the code folder",
                "--keep-alive: a warm pool is kept at most 6 hours (21600s; got 25200s)",
                "--retries: must be between 1 and 30",
                "--input-mode: `stream` is not an input mode",
                "the channel `code` carries the code of --source",
            ],
        );

        let spot = rules(TrainArgs {
            keep_alive: Some("10m".into()),
            spot: true,
            ..valid_args()
        });
        assert!(
            spot.iter()
                .any(|v| v.contains("warm pools do not work with spot training")),
            "{spot:?}"
        );
        let no_source = rules(TrainArgs {
            entry: Some("main.py".into()),
            ..valid_args()
        });
        assert!(
            no_source[0].contains("applies only to code mode: add --source DIR"),
            "{no_source:?}"
        );
        let missing = rules(TrainArgs {
            source: Some(format!("{dir}/nope")),
            ..valid_args()
        });
        assert!(missing[0].contains("does not exist"), "{missing:?}");
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
        assert_refused(
            args,
            &[
                "hyperparameters: 103 given; at most 100",
                "--hyperparameter long: hyperparameter values have at most 2500",
                "--env E: environment variable values have at most 512",
                "--metric loss: the regex needs a capture group",
            ],
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

    /// Each token format, in a hyperparameter, an environment variable and a tag, and a W&B key
    /// by its name: refused naming the entry, the value absent from the message;
    /// `--allow-plaintext NAME` lets one entry through with a warning.
    #[test]
    fn third_party_tokens_are_refused_by_format_and_by_name_without_their_value() {
        for (what, token) in crate::secrets::tests::tokens() {
            let args = TrainArgs {
                hyperparameters: vec![format!("gh={token}")],
                environment: vec![format!("HF={token}")],
                tags: vec![format!("owner={}", token.replace(['\n', '-'], " "))],
                ..valid_args()
            };
            let text = rules(args).join("\n");
            assert!(
                text.contains(&format!("--hyperparameter gh: looks like {what}")),
                "{text}"
            );
            assert!(
                text.contains(&format!("--env HF: looks like {what}")),
                "{text}"
            );
            assert!(text.contains("--allow-plaintext gh"), "{text}");
            assert!(
                !text.contains(&token),
                "the value is in the message: {text}"
            );
        }
        let hex = "3f8a1c9e2b7d4f6a0c5e8b1d9f2a7c4e6b0d8f1a";
        let args = TrainArgs {
            environment: vec![format!("WANDB_API_KEY={hex}")],
            ..valid_args()
        };
        let text = rules(args.clone()).join("\n");
        assert!(
            text.contains("--env WANDB_API_KEY: looks like a secret (its name says so"),
            "{text}"
        );
        assert!(!text.contains(hex), "{text}");

        // Allowed by name: accepted with a warning that names it (not the value).
        let allowed = TrainArgs {
            allow_plaintext: vec!["WANDB_API_KEY".into()],
            ..args.clone()
        };
        let spec = validate(&settings(allowed), Path::new("/")).unwrap();
        assert_eq!(spec.environment["WANDB_API_KEY"], hex);
        let w = spec.warnings.join("\n");
        assert!(w.contains("--env WANDB_API_KEY looks like a secret"), "{w}");
        assert!(w.contains("--allow-plaintext WANDB_API_KEY"), "{w}");
        assert!(!w.contains(hex), "{w}");
        // A name that is no secret entry: refused, so that a typo is not silently ignored.
        let typo = rules(TrainArgs {
            allow_plaintext: vec!["WANDB_KEY".into()],
            ..args
        });
        assert!(
            typo.iter()
                .any(|v| v.starts_with("--allow-plaintext WANDB_KEY: no hyperparameter")),
            "{typo:?}"
        );
        // AWS keys are never let through.
        let aws = rules(TrainArgs {
            hyperparameters: vec!["key=AKIAIOSFODNN7EXAMPLE".into()],
            allow_plaintext: vec!["key".into()],
            ..valid_args()
        });
        assert!(
            aws.iter()
                .any(|v| v.contains("looks like an AWS access key id")),
            "{aws:?}"
        );
    }

    /// The tags sagetrain adds count toward the service's 50, and the message says how many
    /// are left for the user's own.
    #[test]
    fn sagetrains_own_tags_count_toward_the_limit() {
        let tags = |n: usize| (0..n).map(|i| format!("t{i}=v")).collect::<Vec<_>>();
        assert_eq!(
            rules(TrainArgs {
                tags: tags(49),
                ..valid_args()
            }),
            Vec::<String>::new()
        );
        let v = rules(TrainArgs {
            tags: tags(50),
            ..valid_args()
        });
        assert_eq!(
            v,
            ["tags: 50 given; sagetrain adds 1 of its own (sagetrain:submission-id), so at most 49 are left for yours (the service allows 50 tags)"]
        );
        // Code mode adds the code's digest.
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("train.py"), "print(1)\n").unwrap();
        let v = rules(TrainArgs {
            tags: tags(49),
            source: Some(d.path().to_str().unwrap().into()),
            ..valid_args()
        });
        assert_eq!(
            v,
            ["tags: 49 given; sagetrain adds 2 of its own (sagetrain:submission-id, sagetrain:code-digest), so at most 48 are left for yours (the service allows 50 tags)"]
        );
    }

    /// The model's 0-21600 s; above an hour a warning that the pool is billed while it waits.
    #[test]
    fn keep_alive_follows_the_model_and_warns_above_an_hour() {
        for (k, warned) in [("0", false), ("1h", false), ("6h", true)] {
            let spec = validate(
                &settings(TrainArgs {
                    keep_alive: Some(k.into()),
                    ..valid_args()
                }),
                Path::new("/"),
            )
            .unwrap_or_else(|v| panic!("{k}: {v:?}"));
            let w = spec.warnings.join("\n");
            assert_eq!(w.contains("billed"), warned, "{k}: {w}");
        }
        let v = rules(TrainArgs {
            keep_alive: Some("21601".into()),
            ..valid_args()
        });
        assert_eq!(
            v,
            ["--keep-alive: a warm pool is kept at most 6 hours (21600s; got 21601s)"]
        );
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
        crate::testing::assert_contains_all(&joined, &["--hyperparameter key: the value (****************MPLE) looks like an AWS access key id", "--env SECRET: the value (****************EKEY) looks like an AWS secret access key", "--env AWS_ACCESS_KEY_ID: `AWS_ACCESS_KEY_ID` would hand your credentials", "--tag owner"]);
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
        assert_refused(
            args,
            &[
                "--role: a role name needs a lookup",
                "--image: a bare repository name needs the account",
                "--offline: the default output bucket needs the account",
            ],
        );
        let mut ok = valid_args();
        ok.offline = true;
        assert!(rules(ok.clone())
            .join("")
            .contains("pinning the image digest needs an ECR lookup"));
        ok.pin_digest = true;
        assert!(rules(ok).is_empty());
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
    fn generated_names_keep_the_timestamp_and_are_valid() {
        let t = UNIX_EPOCH + Duration::from_millis(1_795_000_000_123);
        let n = generate_job_name("unet_vessels", t, "a1b2c3d4");
        assert_eq!(n, "unet-vessels-2026-11-18-11-06-40-123-a1b2");
        let long = generate_job_name(&"a_very_long_base_name_".repeat(5), t, "a1b2c3d4");
        assert!(long.len() <= 63, "{long}");
        assert!(long.ends_with("-2026-11-18-11-06-40-123-a1b2"), "{long}");
        check_job_name(&long).unwrap();
        assert_eq!(
            generate_job_name("___", t, "a1b2"),
            "sagetrain-2026-11-18-11-06-40-123-a1b2"
        );
        // Two runs in the same millisecond get different names.
        assert_ne!(
            generate_job_name("unet", t, "a1b2"),
            generate_job_name("unet", t, "ffff")
        );
        check_job_name(&n).unwrap();
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
        assert!(
            crate::aws::connection::check_region("eu-west-1").is_ok()
                && crate::aws::connection::check_region("eu-west-١").is_err()
        );
    }
}
