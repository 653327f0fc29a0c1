//! Settings: flags, environment variables and `sagetrain.toml`, layered in that order of
//! precedence over the defaults, each value remembering where it came from.
//!
//! This module is the generic part: where a value came from ([`Source`], [`Val`]), a broken
//! rule ([`Violation`]), the config file (found, read, refused when it holds a credential),
//! the kinds of values, how each is layered and how a group of settings is declared
//! ([`layer`]), and durations. The groups are declared in the modules they configure: `train`'s
//! in [`crate::job::settings`], the connection in [`crate::aws::connection`], and so on.

pub mod durations;
pub mod layer;

use crate::error::{Error, Result};
use std::fmt;
use std::path::{Path, PathBuf};

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
/// [`crate::job::settings::check_file`]).
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
}
