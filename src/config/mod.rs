//! Settings: flags, environment variables and `sagetrain.toml`, layered in that order of
//! precedence over the defaults, each value remembering where it came from.
//!
//! This module is the generic part: where a value came from ([`Source`], [`Val`]), a broken
//! rule ([`Violation`]), the config file (found, read, refused when it holds a credential),
//! the kinds of values and how each is layered ([`layer`]), durations, and the connection
//! settings every command shares ([`Connection`]). What the settings of a training job are is
//! declared once in [`crate::job::settings`].

pub mod durations;
pub mod layer;

use crate::cli::GlobalArgs;
use crate::error::{Error, Result};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

pub const CONFIG_FILE_NAME: &str = "sagetrain.toml";

/// Where a setting came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Flag(&'static str),
    Env(&'static str),
    File {
        path: PathBuf,
        key: String,
    },
    Default,
    /// Found by a lookup (an AWS call, a generated name).
    Lookup(String),
    /// Read back from an earlier job (`train --from JOB`): the job and the API field.
    Job {
        job: String,
        field: String,
    },
}

impl Source {
    pub fn file(path: &Path, key: impl Into<String>) -> Self {
        Source::File {
            path: path.to_path_buf(),
            key: key.into(),
        }
    }

    /// Is this value from the environment or the config file (the ambient layers)?
    pub fn is_ambient(&self) -> bool {
        matches!(self, Source::Env(_) | Source::File { .. })
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
            (Source::Job { job, field }, _) => format!("{field} of job {job} (--from)"),
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
            Source::Job { job, field } => write!(f, "lookup: --from {job}: {field}"),
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
pub fn violations_error(v: Vec<Violation>) -> Error {
    let n = v.len();
    Error::usage(format!(
        "{n} invalid setting{}; nothing was sent to AWS",
        if n == 1 { "" } else { "s" }
    ))
    .with_details(v.iter().map(|v| v.to_string()).collect())
    .with_hint("fix the values above (flags, environment variables or sagetrain.toml); `sagetrain config` shows where each value comes from")
}

/// Keys in a config file that must never be there: credentials belong in AWS profiles.
const CREDENTIAL_KEYS: &[&str] = &[
    "aws_access_key_id",
    "aws_secret_access_key",
    "aws_session_token",
];

/// Parse a config file's text. Errors name the file, line and key.
pub fn parse_file(path: &Path, text: &str) -> Result<toml::Table> {
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
    text.parse::<toml::Table>().map_err(|e| {
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
    LoadedFile::parse(path, &text)
}

/// A config file, parsed (not yet checked against what the settings are: see
/// [`layer::check_file`]).
#[derive(Debug, Clone)]
pub struct LoadedFile {
    pub path: PathBuf,
    pub table: toml::Table,
    text: String,
}

impl LoadedFile {
    pub fn parse(path: &Path, text: &str) -> Result<LoadedFile> {
        Ok(LoadedFile {
            path: path.to_path_buf(),
            table: parse_file(path, text)?,
            text: text.to_string(),
        })
    }

    /// A top-level value, or a key of a `[section]`.
    pub fn get(&self, section: Option<&str>, key: &str) -> Option<&toml::Value> {
        match section {
            None => self.table.get(key),
            Some(sec) => self.table.get(sec)?.as_table()?.get(key),
        }
    }

    /// The source of a file value: `key`, or `section.key`.
    pub fn source(&self, section: Option<&str>, key: &str) -> Source {
        match section {
            None => Source::file(&self.path, key),
            Some(sec) => Source::file(&self.path, format!("{sec}.{key}")),
        }
    }

    /// `path:line` of a key, for messages (the first line that assigns it in its section).
    pub fn location(&self, section: Option<&str>, key: &str) -> String {
        let mut current: Option<String> = None;
        for (i, line) in self.text.lines().enumerate() {
            let t = line.trim();
            if let Some(h) = t.strip_prefix('[') {
                current = Some(h.trim_end_matches(']').trim().to_string());
                continue;
            }
            let lhs = t.split('=').next().unwrap_or("").trim().trim_matches('"');
            if t.contains('=') && lhs == key && current.as_deref() == section {
                return format!("{}:{}", self.path.display(), i + 1);
            }
        }
        let header = format!("[{}]", section.unwrap_or(key));
        match self.text.lines().position(|l| l.trim() == header) {
            Some(i) => format!("{}:{}", self.path.display(), i + 1),
            None => self.path.display().to_string(),
        }
    }
}

static REGION: LazyLock<regex::Regex> =
    LazyLock::new(|| regex::Regex::new(r"^[a-z]{2}(-[a-z0-9]+)+-[0-9]+$").expect("valid regex"));

/// An AWS region name such as `eu-west-1`.
pub fn check_region(region: &str) -> std::result::Result<(), String> {
    if REGION.is_match(region) {
        Ok(())
    } else {
        Err(format!("`{region}` is not an AWS region (e.g. eu-west-1)"))
    }
}

/// Where and as whom AWS is called: the same for every command, layered
/// flag > environment > `sagetrain.toml` (the endpoint: flag > environment).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Connection {
    pub region: Option<Val<String>>,
    pub profile: Option<Val<String>>,
    pub endpoint_url: Option<Val<String>>,
}

/// The connection settings' keys in `sagetrain.toml`.
pub const CONNECTION_KEYS: &[&str] = &["region", "profile"];

impl Connection {
    /// Layer (a value of the wrong type in the file is a violation; the rules are in
    /// [`Connection::check`]).
    pub fn layer(
        global: &GlobalArgs,
        env: &dyn Fn(&str) -> Option<String>,
        file: Option<&LoadedFile>,
    ) -> std::result::Result<Connection, Vec<Violation>> {
        let mut v = Vec::new();
        let mut one = |flag: &Option<String>,
                       flag_name: &'static str,
                       vars: &[&'static str],
                       key: Option<&str>| {
            if let Some(f) = flag {
                return Some(Val::new(f.clone(), Source::Flag(flag_name)));
            }
            for var in vars {
                if let Some(x) = env(var).filter(|s| !s.is_empty()) {
                    return Some(Val::new(x, Source::Env(var)));
                }
            }
            let (file, key) = (file?, key?);
            match file.get(None, key)? {
                toml::Value::String(s) => Some(Val::new(s.clone(), file.source(None, key))),
                other => {
                    v.push(Violation::new(
                        format!("`{key}` in {}", file.location(None, key)),
                        format!("must be a string (got {})", other.type_str()),
                    ));
                    None
                }
            }
        };
        let region = one(
            &global.region,
            "--region",
            &["AWS_REGION", "AWS_DEFAULT_REGION"],
            Some("region"),
        );
        let profile = one(
            &global.profile,
            "--profile",
            &["AWS_PROFILE"],
            Some("profile"),
        );
        let endpoint_url = one(
            &global.endpoint_url,
            "--endpoint-url",
            &["AWS_ENDPOINT_URL"],
            None,
        );
        if v.is_empty() {
            Ok(Connection {
                region,
                profile,
                endpoint_url,
            })
        } else {
            Err(v)
        }
    }

    /// The rules of the region and the endpoint.
    pub fn check(&self) -> Vec<Violation> {
        let mut v = Vec::new();
        if let Some(r) = &self.region {
            if let Err(rule) = check_region(&r.value) {
                v.push(Violation::new(r.source.name_for(None), rule));
            }
        }
        if let Some(e) = &self.endpoint_url {
            if !(e.value.starts_with("http://") || e.value.starts_with("https://")) {
                v.push(Violation::new(
                    e.source.name_for(None),
                    format!("`{}` is not an http:// or https:// URL", e.value),
                ));
            }
        }
        v
    }

    /// [`Connection::layer`] and [`Connection::check`]: what every command runs first.
    pub fn layer_checked(
        global: &GlobalArgs,
        env: &dyn Fn(&str) -> Option<String>,
        file: Option<&LoadedFile>,
    ) -> std::result::Result<Connection, Vec<Violation>> {
        let c = Connection::layer(global, env, file)?;
        let v = c.check();
        if v.is_empty() {
            Ok(c)
        } else {
            Err(v)
        }
    }

    /// Rows of `sagetrain config`.
    pub fn rows(&self) -> Vec<layer::Row> {
        [
            ("region", &self.region),
            ("profile", &self.profile),
            ("endpoint_url", &self.endpoint_url),
        ]
        .into_iter()
        .map(|(name, v)| layer::row(name, v.as_ref().map(|v| (v.value.clone(), &v.source))))
        .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    pub(crate) fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| m.get(k).cloned()
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

    #[test]
    fn keys_are_located_by_section_and_line() {
        let f = LoadedFile::parse(
            Path::new("/p/s.toml"),
            "region = \"x\"\n[tags]\nregion = \"t\"\n[channels]\ntrain = \"s3://b/x\"\n",
        )
        .unwrap();
        assert_eq!(f.location(None, "region"), "/p/s.toml:1");
        assert_eq!(f.location(Some("tags"), "region"), "/p/s.toml:3");
        assert_eq!(f.location(Some("channels"), "train"), "/p/s.toml:5");
        assert_eq!(f.location(None, "channels"), "/p/s.toml:4");
    }

    #[test]
    fn connection_settings_layer_flag_env_file_and_are_checked() {
        let f = LoadedFile::parse(
            Path::new("/p/s.toml"),
            "region = \"eu-west-1\"\nprofile = \"p\"\n",
        )
        .unwrap();
        let g = GlobalArgs::default();
        let c = Connection::layer(&g, &env_of(&[("AWS_PROFILE", "envp")]), Some(&f)).unwrap();
        assert_eq!(
            c.region.unwrap().source,
            Source::file(Path::new("/p/s.toml"), "region")
        );
        assert_eq!(c.profile.unwrap().source, Source::Env("AWS_PROFILE"));
        let bad = Connection::layer_checked(
            &GlobalArgs {
                region: Some("Europe".into()),
                endpoint_url: Some("localhost:5000".into()),
                ..g
            },
            &env_of(&[]),
            None,
        )
        .unwrap_err();
        assert_eq!(bad.len(), 2, "{bad:?}");
        assert!(bad[0]
            .to_string()
            .starts_with("--region: `Europe` is not an AWS region"));
    }
}
