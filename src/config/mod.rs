//! Settings: flags, environment variables and `sagetrain.toml`, layered in that order of
//! precedence over the defaults, each value remembering where it came from.
//!
//! Raw text is turned into typed values here; a value that cannot be parsed becomes a
//! [`Violation`] naming the flag, variable or config key, and all of them are reported together.

pub mod durations;

use crate::cli::{GlobalArgs, TrainArgs};
use crate::error::{Error, Result};
use crate::job::spec::Violation;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

pub const CONFIG_FILE_NAME: &str = "sagetrain.toml";
pub const DEFAULT_INSTANCE_TYPE: &str = "ml.g5.xlarge";
pub const DEFAULT_INSTANCE_COUNT: i64 = 1;
pub const DEFAULT_VOLUME_SIZE_GB: i64 = 30;
pub const DEFAULT_MAX_RUN_SECS: u64 = 24 * 3600;

/// Where a setting came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Flag(&'static str),
    Env(&'static str),
    File { path: PathBuf, key: String },
    Default,
    Lookup(String),
}

impl Source {
    fn file(path: &Path, key: impl Into<String>) -> Self {
        Source::File {
            path: path.to_path_buf(),
            key: key.into(),
        }
    }

    /// How to name this source in an error about `entry` (a map key, if any).
    pub fn name_for(&self, entry: Option<&str>) -> String {
        match (self, entry) {
            (Source::Flag(f), Some(k)) => format!("{f} {k}"),
            (Source::Flag(f), None) => f.to_string(),
            (Source::Env(v), _) => v.to_string(),
            (Source::File { path, key }, _) => format!("`{key}` in {}", path.display()),
            (Source::Default, _) => "default".into(),
            (Source::Lookup(how), _) => format!("lookup ({how})"),
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Flag(flag) => write!(f, "flag {flag}"),
            Source::Env(var) => write!(f, "env {var}"),
            Source::File { path, key } => write!(f, "file {} ({key})", path.display()),
            Source::Default => write!(f, "default"),
            Source::Lookup(how) => write!(f, "lookup: {how}"),
        }
    }
}

/// A value and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Val<T> {
    pub value: T,
    pub source: Source,
}

impl<T> Val<T> {
    pub fn new(value: T, source: Source) -> Self {
        Val { value, source }
    }
}

/// `sagetrain.toml`. Unknown keys and wrong types are errors.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub region: Option<String>,
    pub profile: Option<String>,
    pub role: Option<String>,
    pub image: Option<String>,
    pub pin_digest: Option<bool>,
    pub instance_type: Option<String>,
    pub instance_count: Option<i64>,
    pub volume_size: Option<i64>,
    pub max_run: Option<DurationValue>,
    pub max_wait: Option<DurationValue>,
    pub spot: Option<bool>,
    pub checkpoint_s3: Option<String>,
    pub output_path: Option<String>,
    pub base_name: Option<String>,
    pub kms_key: Option<String>,
    pub network_isolation: Option<bool>,
    pub subnets: Option<Vec<String>>,
    pub security_groups: Option<Vec<String>>,
    #[serde(default)]
    pub hyperparameters: BTreeMap<String, ScalarValue>,
    #[serde(default)]
    pub channels: BTreeMap<String, String>,
    #[serde(default)]
    pub environment: BTreeMap<String, String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    #[serde(default)]
    pub metrics: BTreeMap<String, String>,
}

/// A duration in the file: `"24h"`, `"90m"`, or a number of seconds.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum DurationValue {
    Seconds(i64),
    Text(String),
}

/// A hyperparameter in the file: TOML scalars become their plain string form.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum ScalarValue {
    String(String),
    Integer(i64),
    Float(f64),
    Boolean(bool),
}

impl ScalarValue {
    pub fn plain(&self) -> String {
        match self {
            ScalarValue::String(s) => s.clone(),
            ScalarValue::Integer(i) => i.to_string(),
            // Rust prints 0.0001 as "0.0001" and 1e-5 as "0.00001": plain, never JSON-quoted.
            ScalarValue::Float(f) => f.to_string(),
            ScalarValue::Boolean(b) => b.to_string(),
        }
    }
}

/// A loaded config file.
#[derive(Debug)]
pub struct LoadedFile {
    pub path: PathBuf,
    pub config: FileConfig,
}

/// Keys in a config file that must never be there: credentials belong in AWS profiles.
const CREDENTIAL_KEYS: &[&str] = &[
    "aws_access_key_id",
    "aws_secret_access_key",
    "aws_session_token",
];

/// Parse a config file's text. Errors name the file, line and key.
pub fn parse_file(path: &Path, text: &str) -> Result<FileConfig> {
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        if trimmed.starts_with('#') {
            continue;
        }
        let lower = trimmed.to_ascii_lowercase();
        let key_hit = CREDENTIAL_KEYS.iter().find(|k| lower.starts_with(*k));
        let finding = crate::secrets::scan(line);
        if key_hit.is_some() || finding.is_some() {
            let what = key_hit
                .map(|k| format!("the key `{k}`"))
                .unwrap_or_else(|| finding.expect("checked").describe().to_string());
            return Err(Error::usage(format!(
                "{}:{}: the config file holds {what}; credentials must never be stored there",
                path.display(),
                i + 1
            ))
            .with_hint(
                "remove it (and rotate the key if it was ever committed); keep your keys in an AWS \
                 profile (`aws configure --profile NAME` or `aws sso login`) and set `profile = \"NAME\"`",
            ));
        }
    }
    toml::from_str(text).map_err(|e| {
        let span = e
            .span()
            .map(|s| {
                let line = text[..s.start.min(text.len())].matches('\n').count() + 1;
                format!(":{line}")
            })
            .unwrap_or_default();
        Error::usage(format!(
            "{}{span}: {}",
            path.display(),
            e.message().trim_end()
        ))
        .with_hint(
            "fix the file; the README's configuration reference lists every key and its type",
        )
    })
}

/// Find the config file: `--config`, `SAGETRAIN_CONFIG`, or `sagetrain.toml` in `cwd` or a parent.
pub fn find_config(
    flag: Option<&Path>,
    env: &dyn Fn(&str) -> Option<String>,
    cwd: &Path,
) -> Result<Option<PathBuf>> {
    if let Some(p) = flag {
        return require_exists(p.to_path_buf(), "--config");
    }
    if let Some(p) = env("SAGETRAIN_CONFIG").filter(|s| !s.is_empty()) {
        return require_exists(PathBuf::from(p), "SAGETRAIN_CONFIG");
    }
    let mut dir = Some(cwd);
    while let Some(d) = dir {
        let candidate = d.join(CONFIG_FILE_NAME);
        if candidate.is_file() {
            return Ok(Some(candidate));
        }
        dir = d.parent();
    }
    Ok(None)
}

fn require_exists(p: PathBuf, from: &str) -> Result<Option<PathBuf>> {
    if p.is_file() {
        Ok(Some(p))
    } else {
        Err(Error::usage(format!(
            "{from}: config file {} does not exist",
            p.display()
        ))
        .with_hint("give the path of an existing file, or run `sagetrain init` to write one"))
    }
}

pub fn load_file(path: &Path) -> Result<LoadedFile> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::usage(format!("cannot read config file {}: {e}", path.display())))?;
    Ok(LoadedFile {
        path: path.to_path_buf(),
        config: parse_file(path, &text)?,
    })
}

/// Everything `train` needs, typed and with its sources.
#[derive(Debug, Clone)]
pub struct TrainSettings {
    pub config_path: Option<PathBuf>,
    pub region: Option<Val<String>>,
    pub profile: Option<Val<String>>,
    pub endpoint_url: Option<Val<String>>,
    pub role: Option<Val<String>>,
    pub image: Option<Val<String>>,
    pub pin_digest: Val<bool>,
    pub instance_type: Val<String>,
    pub instance_count: Val<i64>,
    pub volume_size: Val<i64>,
    pub max_run: Val<u64>,
    pub spot: Val<bool>,
    pub max_wait: Option<Val<u64>>,
    pub hyperparameters: BTreeMap<String, Val<String>>,
    pub channels: BTreeMap<String, Val<String>>,
    pub environment: BTreeMap<String, Val<String>>,
    pub tags: BTreeMap<String, Val<String>>,
    pub metrics: BTreeMap<String, Val<String>>,
    pub output_path: Option<Val<String>>,
    pub checkpoint_s3: Option<Val<String>>,
    pub name: Option<Val<String>>,
    pub base_name: Option<Val<String>>,
    pub kms_key: Option<Val<String>>,
    pub network_isolation: Val<bool>,
    pub subnets: Option<Val<Vec<String>>>,
    pub security_groups: Option<Val<Vec<String>>>,
    pub dry_run: bool,
    pub offline: bool,
}

/// Parse `90m`, `24h`, `1h30m` or a plain number of seconds.
pub fn parse_duration(text: &str) -> std::result::Result<u64, String> {
    let t = text.trim();
    if let Ok(secs) = t.parse::<u64>() {
        return Ok(secs);
    }
    humantime::parse_duration(t)
        .map(|d| d.as_secs())
        .map_err(|e| format!("`{text}` is not a duration ({e}); use e.g. 90m, 24h or 3600"))
}

fn split_kv(raw: &str) -> Option<(String, String)> {
    let (k, v) = raw.split_once('=')?;
    Some((k.trim().to_string(), v.to_string()))
}

/// First of: flag, environment variable(s), file, in that order.
fn pick<T>(
    flag: Option<(T, &'static str)>,
    envs: &[&'static str],
    env: &dyn Fn(&str) -> Option<String>,
    parse_env: impl Fn(String) -> T,
    file: Option<(T, Source)>,
) -> Option<Val<T>> {
    if let Some((v, f)) = flag {
        return Some(Val::new(v, Source::Flag(f)));
    }
    for var in envs {
        if let Some(v) = env(var).filter(|s| !s.is_empty()) {
            return Some(Val::new(parse_env(v), Source::Env(var)));
        }
    }
    file.map(|(v, s)| Val::new(v, s))
}

impl TrainSettings {
    /// Layer flags over environment over file over defaults.
    pub fn layer(
        global: &GlobalArgs,
        args: &TrainArgs,
        env: &dyn Fn(&str) -> Option<String>,
        file: Option<&LoadedFile>,
    ) -> std::result::Result<TrainSettings, Vec<Violation>> {
        let mut violations = Vec::new();
        let empty = FileConfig::default();
        let (fc, fpath) = match file {
            Some(f) => (&f.config, Some(f.path.as_path())),
            None => (&empty, None),
        };
        let fsrc = |key: &str| Source::file(fpath.unwrap_or(Path::new(CONFIG_FILE_NAME)), key);
        let from_file = |v: &Option<String>, key: &str| v.clone().map(|v| (v, fsrc(key)));
        let ident = |s: String| s;

        let region = pick(
            global.region.clone().map(|v| (v, "--region")),
            &["AWS_REGION", "AWS_DEFAULT_REGION"],
            env,
            ident,
            from_file(&fc.region, "region"),
        );
        let profile = pick(
            global.profile.clone().map(|v| (v, "--profile")),
            &["AWS_PROFILE"],
            env,
            ident,
            from_file(&fc.profile, "profile"),
        );
        let endpoint_url = pick(
            global.endpoint_url.clone().map(|v| (v, "--endpoint-url")),
            &["AWS_ENDPOINT_URL"],
            env,
            ident,
            None,
        );
        let role = pick(
            args.role.clone().map(|v| (v, "--role")),
            &["SAGEMAKER_ROLE"],
            env,
            ident,
            from_file(&fc.role, "role"),
        );
        let image = pick(
            args.image.clone().map(|v| (v, "--image")),
            &["SAGETRAIN_IMAGE"],
            env,
            ident,
            from_file(&fc.image, "image"),
        );
        let pin_digest = if args.no_pin_digest {
            Val::new(false, Source::Flag("--no-pin-digest"))
        } else if let Some(p) = fc.pin_digest {
            Val::new(p, fsrc("pin_digest"))
        } else {
            Val::new(true, Source::Default)
        };
        let instance_type = pick(
            args.instance_type.clone().map(|v| (v, "--instance-type")),
            &[],
            env,
            ident,
            from_file(&fc.instance_type, "instance_type"),
        )
        .unwrap_or_else(|| Val::new(DEFAULT_INSTANCE_TYPE.to_string(), Source::Default));

        let mut int_setting = |flag: &Option<String>,
                               flag_name: &'static str,
                               file_v: Option<i64>,
                               key: &str,
                               default: i64| {
            if let Some(raw) = flag {
                match raw.trim().parse::<i64>() {
                    Ok(v) => Val::new(v, Source::Flag(flag_name)),
                    Err(_) => {
                        violations.push(Violation::new(
                            flag_name,
                            format!("`{raw}` is not a whole number"),
                        ));
                        Val::new(default, Source::Flag(flag_name))
                    }
                }
            } else if let Some(v) = file_v {
                Val::new(v, fsrc(key))
            } else {
                Val::new(default, Source::Default)
            }
        };
        let instance_count = int_setting(
            &args.instance_count,
            "--instance-count",
            fc.instance_count,
            "instance_count",
            DEFAULT_INSTANCE_COUNT,
        );
        let volume_size = int_setting(
            &args.volume_size,
            "--volume-size",
            fc.volume_size,
            "volume_size",
            DEFAULT_VOLUME_SIZE_GB,
        );

        let mut duration_setting = |flag: &Option<String>,
                                    flag_name: &'static str,
                                    file_v: &Option<DurationValue>,
                                    key: &str| {
            let (raw, src) = if let Some(raw) = flag {
                (raw.clone(), Source::Flag(flag_name))
            } else if let Some(v) = file_v {
                match v {
                    DurationValue::Seconds(s) if *s >= 0 => {
                        return Some(Val::new(*s as u64, fsrc(key)))
                    }
                    DurationValue::Seconds(s) => (s.to_string(), fsrc(key)),
                    DurationValue::Text(t) => (t.clone(), fsrc(key)),
                }
            } else {
                return None;
            };
            match parse_duration(&raw) {
                Ok(secs) => Some(Val::new(secs, src)),
                Err(rule) => {
                    violations.push(Violation::new(src.name_for(None), rule));
                    None
                }
            }
        };
        let max_run = duration_setting(&args.max_run, "--max-run", &fc.max_run, "max_run")
            .unwrap_or_else(|| Val::new(DEFAULT_MAX_RUN_SECS, Source::Default));
        let max_wait = duration_setting(&args.max_wait, "--max-wait", &fc.max_wait, "max_wait");

        let bool_setting =
            |flag: bool, flag_name: &'static str, file_v: Option<bool>, key: &str| {
                if flag {
                    Val::new(true, Source::Flag(flag_name))
                } else if let Some(v) = file_v {
                    Val::new(v, fsrc(key))
                } else {
                    Val::new(false, Source::Default)
                }
            };
        let spot = bool_setting(args.spot, "--spot", fc.spot, "spot");
        let network_isolation = bool_setting(
            args.network_isolation,
            "--network-isolation",
            fc.network_isolation,
            "network_isolation",
        );

        // Maps: file entries first, then flags override per key.
        let mut map_setting = |file_map: BTreeMap<String, String>,
                               section: &str,
                               flags: &[String],
                               flag_name: &'static str| {
            let mut m: BTreeMap<String, Val<String>> = file_map
                .into_iter()
                .map(|(k, v)| {
                    let src = fsrc(&format!("{section}.{k}"));
                    (k, Val::new(v, src))
                })
                .collect();
            for raw in flags {
                match split_kv(raw) {
                    Some((k, v)) => {
                        m.insert(k, Val::new(v, Source::Flag(flag_name)));
                    }
                    None => violations.push(Violation::new(
                        flag_name,
                        format!("`{raw}` is not of the form KEY=VALUE"),
                    )),
                }
            }
            m
        };
        let mut hyperparameters = map_setting(
            fc.hyperparameters
                .iter()
                .map(|(k, v)| (k.clone(), v.plain()))
                .collect(),
            "hyperparameters",
            &args.hyperparameters,
            "--hyperparameter",
        );
        if let Some(e) = &args.epochs {
            hyperparameters.insert(
                "epochs".into(),
                Val::new(e.trim().to_string(), Source::Flag("--epochs")),
            );
        }
        let mut channels =
            map_setting(fc.channels.clone(), "channels", &args.channels, "--channel");
        if let Some(t) = &args.train {
            channels.insert("train".into(), Val::new(t.clone(), Source::Flag("--train")));
        }
        if let Some(v) = &args.validation {
            channels.insert(
                "validation".into(),
                Val::new(v.clone(), Source::Flag("--validation")),
            );
        }
        let environment = map_setting(
            fc.environment.clone(),
            "environment",
            &args.environment,
            "--env",
        );
        let tags = map_setting(fc.tags.clone(), "tags", &args.tags, "--tag");
        let metrics = map_setting(fc.metrics.clone(), "metrics", &args.metrics, "--metric");

        let opt =
            |flag: &Option<String>, flag_name: &'static str, file_v: &Option<String>, key: &str| {
                pick(
                    flag.clone().map(|v| (v, flag_name)),
                    &[],
                    env,
                    ident,
                    from_file(file_v, key),
                )
            };
        let output_path = opt(
            &args.output_path,
            "--output-path",
            &fc.output_path,
            "output_path",
        );
        let checkpoint_s3 = opt(
            &args.checkpoint_s3,
            "--checkpoint-s3",
            &fc.checkpoint_s3,
            "checkpoint_s3",
        );
        let name = args
            .name
            .clone()
            .map(|v| Val::new(v, Source::Flag("--name")));
        let base_name = opt(&args.base_name, "--base-name", &fc.base_name, "base_name");
        let kms_key = opt(&args.kms_key, "--kms-key", &fc.kms_key, "kms_key");
        let list_setting =
            |flags: &[String], flag_name: &'static str, file_v: &Option<Vec<String>>, key: &str| {
                if !flags.is_empty() {
                    Some(Val::new(flags.to_vec(), Source::Flag(flag_name)))
                } else {
                    file_v.clone().map(|v| Val::new(v, fsrc(key)))
                }
            };
        let subnets = list_setting(&args.subnets, "--subnet", &fc.subnets, "subnets");
        let security_groups = list_setting(
            &args.security_groups,
            "--security-group",
            &fc.security_groups,
            "security_groups",
        );

        if !violations.is_empty() {
            return Err(violations);
        }
        Ok(TrainSettings {
            config_path: fpath.map(Path::to_path_buf),
            region,
            profile,
            endpoint_url,
            role,
            image,
            pin_digest,
            instance_type,
            instance_count,
            volume_size,
            max_run,
            spot,
            max_wait,
            hyperparameters,
            channels,
            environment,
            tags,
            metrics,
            output_path,
            checkpoint_s3,
            name,
            base_name,
            kms_key,
            network_isolation,
            subnets,
            security_groups,
            dry_run: args.dry_run,
            offline: args.offline,
        })
    }

    /// Every effective setting as (name, value, source) rows, for `sagetrain config` and `-v`.
    pub fn rows(&self) -> Vec<(String, String, String)> {
        let mut rows = Vec::new();
        let mut one = |name: &str, v: Option<(String, String)>| {
            let (value, source) = v.unwrap_or_else(|| ("(not set)".into(), "-".into()));
            rows.push((name.to_string(), value, source));
        };
        let s =
            |v: &Option<Val<String>>| v.as_ref().map(|v| (v.value.clone(), v.source.to_string()));
        one("region", s(&self.region));
        one("profile", s(&self.profile));
        one("endpoint_url", s(&self.endpoint_url));
        one("role", s(&self.role));
        one("image", s(&self.image));
        one(
            "pin_digest",
            Some((
                self.pin_digest.value.to_string(),
                self.pin_digest.source.to_string(),
            )),
        );
        one(
            "instance_type",
            Some((
                self.instance_type.value.clone(),
                self.instance_type.source.to_string(),
            )),
        );
        one(
            "instance_count",
            Some((
                self.instance_count.value.to_string(),
                self.instance_count.source.to_string(),
            )),
        );
        one(
            "volume_size",
            Some((
                self.volume_size.value.to_string(),
                self.volume_size.source.to_string(),
            )),
        );
        one(
            "max_run",
            Some((
                format!("{}s", self.max_run.value),
                self.max_run.source.to_string(),
            )),
        );
        one(
            "spot",
            Some((self.spot.value.to_string(), self.spot.source.to_string())),
        );
        one(
            "max_wait",
            self.max_wait
                .as_ref()
                .map(|v| (format!("{}s", v.value), v.source.to_string())),
        );
        one("output_path", s(&self.output_path));
        one("checkpoint_s3", s(&self.checkpoint_s3));
        one("name", s(&self.name));
        one("base_name", s(&self.base_name));
        one("kms_key", s(&self.kms_key));
        one(
            "network_isolation",
            Some((
                self.network_isolation.value.to_string(),
                self.network_isolation.source.to_string(),
            )),
        );
        let l = |v: &Option<Val<Vec<String>>>| {
            v.as_ref()
                .map(|v| (v.value.join(","), v.source.to_string()))
        };
        one("subnets", l(&self.subnets));
        one("security_groups", l(&self.security_groups));
        for (section, map) in [
            ("hyperparameters", &self.hyperparameters),
            ("channels", &self.channels),
            ("environment", &self.environment),
            ("tags", &self.tags),
            ("metrics", &self.metrics),
        ] {
            for (k, v) in map {
                rows.push((
                    format!("{section}.{k}"),
                    v.value.clone(),
                    v.source.to_string(),
                ));
            }
        }
        rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| m.get(k).cloned()
    }

    fn global() -> GlobalArgs {
        GlobalArgs {
            profile: None,
            region: None,
            endpoint_url: None,
            config: None,
            output: crate::cli::OutputFormat::Text,
            quiet: false,
            verbose: 0,
        }
    }

    fn file(text: &str) -> LoadedFile {
        let path = PathBuf::from("/p/sagetrain.toml");
        LoadedFile {
            config: parse_file(&path, text).unwrap(),
            path,
        }
    }

    #[test]
    fn flags_beat_env_beat_file_beat_defaults() {
        let f = file("role = \"FileRole\"\nimage = \"file-img\"\ninstance_type = \"ml.p3.2xlarge\"\nregion = \"eu-west-1\"\n");
        let env = env_of(&[
            ("SAGEMAKER_ROLE", "EnvRole"),
            ("SAGETRAIN_IMAGE", "env-img"),
        ]);
        let args = TrainArgs {
            image: Some("flag-img".into()),
            ..Default::default()
        };
        let s = TrainSettings::layer(&global(), &args, &env, Some(&f)).unwrap();
        assert_eq!(s.image.as_ref().unwrap().value, "flag-img");
        assert_eq!(s.image.as_ref().unwrap().source, Source::Flag("--image"));
        assert_eq!(s.role.as_ref().unwrap().value, "EnvRole");
        assert_eq!(
            s.role.as_ref().unwrap().source,
            Source::Env("SAGEMAKER_ROLE")
        );
        assert_eq!(s.instance_type.value, "ml.p3.2xlarge");
        assert!(matches!(s.instance_type.source, Source::File { .. }));
        assert_eq!(s.region.as_ref().unwrap().value, "eu-west-1");
        assert_eq!(s.instance_count.value, 1);
        assert_eq!(s.instance_count.source, Source::Default);
        assert_eq!(s.max_run.value, 86400);
        assert!(s.pin_digest.value);
    }

    #[test]
    fn env_region_beats_file_region() {
        let f = file("region = \"eu-west-1\"\n");
        let env = env_of(&[("AWS_REGION", "us-west-2")]);
        let s = TrainSettings::layer(&global(), &TrainArgs::default(), &env, Some(&f)).unwrap();
        assert_eq!(s.region.unwrap().value, "us-west-2");
    }

    #[test]
    fn toml_scalars_become_plain_strings_and_flags_override_per_key() {
        let f = file("[hyperparameters]\nepochs = 10\nlearning_rate = 0.0001\naugment = true\noptimizer = \"adam\"\n");
        let args = TrainArgs {
            epochs: Some("50".into()),
            hyperparameters: vec!["batch_size=8".into()],
            ..Default::default()
        };
        let s = TrainSettings::layer(&global(), &args, &env_of(&[]), Some(&f)).unwrap();
        let hp: BTreeMap<_, _> = s
            .hyperparameters
            .iter()
            .map(|(k, v)| (k.as_str(), v.value.as_str()))
            .collect();
        assert_eq!(
            hp,
            BTreeMap::from([
                ("augment", "true"),
                ("batch_size", "8"),
                ("epochs", "50"),
                ("learning_rate", "0.0001"),
                ("optimizer", "adam"),
            ])
        );
        assert_eq!(s.hyperparameters["epochs"].source, Source::Flag("--epochs"));
    }

    #[test]
    fn bad_values_are_collected_together() {
        let args = TrainArgs {
            instance_count: Some("two".into()),
            max_run: Some("forever".into()),
            tags: vec!["novalue".into()],
            ..Default::default()
        };
        let v = TrainSettings::layer(&global(), &args, &env_of(&[]), None).unwrap_err();
        let text: Vec<String> = v.iter().map(|v| v.to_string()).collect();
        assert_eq!(v.len(), 3, "{text:?}");
        assert!(text[0].starts_with("--instance-count"));
        assert!(text[1].starts_with("--max-run"));
        assert!(text[2].starts_with("--tag"));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("3600"), Ok(3600));
        assert_eq!(parse_duration("90m"), Ok(5400));
        assert_eq!(parse_duration("24h"), Ok(86400));
        assert_eq!(parse_duration("1h 30m"), Ok(5400));
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn unknown_keys_and_wrong_types_name_file_line_and_key() {
        let p = PathBuf::from("/p/sagetrain.toml");
        let e = parse_file(&p, "region = \"x\"\ninstance_cont = 2\n").unwrap_err();
        assert!(e.message.contains("/p/sagetrain.toml:2"), "{}", e.message);
        assert!(e.message.contains("instance_cont"), "{}", e.message);
        let e = parse_file(&p, "\ninstance_count = \"two\"\n").unwrap_err();
        assert!(e.message.contains("/p/sagetrain.toml:2"), "{}", e.message);
        assert_eq!(e.kind, crate::error::Kind::Usage);
    }

    #[test]
    fn credentials_in_the_config_file_are_refused_with_the_line() {
        let p = PathBuf::from("/p/sagetrain.toml");
        let e = parse_file(&p, "region = \"x\"\n\naws_secret_access_key = \"abc\"\n").unwrap_err();
        assert!(e.message.contains("/p/sagetrain.toml:3"), "{}", e.message);
        let e = parse_file(&p, "[environment]\nKEY = \"AKIAIOSFODNN7EXAMPLE\"\n").unwrap_err();
        assert!(e.message.contains(":2"), "{}", e.message);
        assert!(!e.to_string().contains("AKIAIOSFODNN7EXAMPLE"));
    }

    #[test]
    fn finds_config_in_parent_folders() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("a/b");
        std::fs::create_dir_all(&sub).unwrap();
        std::fs::write(dir.path().join(CONFIG_FILE_NAME), "").unwrap();
        let found = find_config(None, &env_of(&[]), &sub).unwrap().unwrap();
        assert_eq!(found, dir.path().join(CONFIG_FILE_NAME));
        let err =
            find_config(Some(Path::new("/nonexistent.toml")), &env_of(&[]), &sub).unwrap_err();
        assert!(err.message.contains("--config"));
    }
}
