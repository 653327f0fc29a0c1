//! The kinds of setting values, and how one setting is layered: flag > environment variable >
//! config file > default, each value keeping its [`Source`].
//!
//! A setting is declared once as a [`Setting`] (or a [`MapSetting`] for `KEY=VALUE` maps):
//! its key, flag, variables, default, example, help and how `train --from` reads it back from
//! an earlier job ([`FromJob`]). The functions here turn such a declaration and the raw inputs
//! into a [`Val`], a row of `sagetrain config`, a file check, or the job's value; the list of
//! declarations is in [`crate::job::settings`].

use super::{LoadedFile, Source, Val, Violation};
use std::collections::BTreeMap;
use std::fmt::Debug;

/// What a flag's field gave on the command line: nothing, or its texts (none for a switch).
pub trait RawFlag {
    fn given(&self) -> Option<Vec<String>>;
}

impl RawFlag for Option<String> {
    fn given(&self) -> Option<Vec<String>> {
        self.clone().map(|s| vec![s])
    }
}

impl RawFlag for bool {
    fn given(&self) -> Option<Vec<String>> {
        self.then(Vec::new)
    }
}

impl RawFlag for Vec<String> {
    fn given(&self) -> Option<Vec<String>> {
        (!self.is_empty()).then(|| self.clone())
    }
}

/// A kind of value: how it is read from a flag, a variable and the file, and shown.
pub trait Kind {
    type Value: Clone + Debug + PartialEq;
    /// The TOML type, for messages and the file check.
    const TOML: &'static str;
    /// From a flag's texts (none for a switch that was given); by default its last text.
    fn from_flag(texts: &[String]) -> Result<Self::Value, String> {
        Self::from_text(one(texts))
    }
    /// From an environment variable or a declared default.
    fn from_text(text: &str) -> Result<Self::Value, String>;
    /// From the file; `Err` names the rule.
    fn from_toml(v: &toml::Value) -> Result<Self::Value, String>;
    /// As `sagetrain config` shows it.
    fn show(v: &Self::Value) -> String;
}

fn one(texts: &[String]) -> &str {
    texts.last().map(String::as_str).unwrap_or("")
}

fn wrong_type(expected: &str, v: &toml::Value) -> String {
    format!("must be {expected} (got {})", v.type_str())
}

/// Free text.
pub struct Text;
impl Kind for Text {
    type Value = String;
    const TOML: &'static str = "a string";
    fn from_text(text: &str) -> Result<String, String> {
        Ok(text.to_string())
    }
    fn from_toml(v: &toml::Value) -> Result<String, String> {
        v.as_str()
            .map(str::to_string)
            .ok_or_else(|| wrong_type(Self::TOML, v))
    }
    fn show(v: &String) -> String {
        v.clone()
    }
}

/// A whole number.
pub struct Int;
impl Kind for Int {
    type Value = i64;
    const TOML: &'static str = "a whole number";
    fn from_text(text: &str) -> Result<i64, String> {
        text.trim()
            .parse::<i64>()
            .map_err(|_| format!("`{text}` is not a whole number"))
    }
    fn from_toml(v: &toml::Value) -> Result<i64, String> {
        v.as_integer().ok_or_else(|| wrong_type(Self::TOML, v))
    }
    fn show(v: &i64) -> String {
        v.to_string()
    }
}

fn bool_text(text: &str) -> Result<bool, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        _ => Err(format!("`{text}` is not true or false")),
    }
}

/// On or off; the flag turns it on.
pub struct Switch;
impl Kind for Switch {
    type Value = bool;
    const TOML: &'static str = "true or false";
    fn from_flag(_: &[String]) -> Result<bool, String> {
        Ok(true)
    }
    fn from_text(text: &str) -> Result<bool, String> {
        bool_text(text)
    }
    fn from_toml(v: &toml::Value) -> Result<bool, String> {
        v.as_bool().ok_or_else(|| wrong_type(Self::TOML, v))
    }
    fn show(v: &bool) -> String {
        v.to_string()
    }
}

/// On or off; the flag (`--no-...`) turns it off.
pub struct NoSwitch;
impl Kind for NoSwitch {
    type Value = bool;
    const TOML: &'static str = "true or false";
    fn from_flag(_: &[String]) -> Result<bool, String> {
        Ok(false)
    }
    fn from_text(text: &str) -> Result<bool, String> {
        bool_text(text)
    }
    fn from_toml(v: &toml::Value) -> Result<bool, String> {
        Switch::from_toml(v)
    }
    fn show(v: &bool) -> String {
        v.to_string()
    }
}

/// A duration in whole seconds: `90m`, `24h`, `1h30m` or a number of seconds.
pub struct Secs;
impl Kind for Secs {
    type Value = u64;
    const TOML: &'static str = "a duration (\"90m\", \"24h\") or a number of seconds";
    fn from_text(text: &str) -> Result<u64, String> {
        super::durations::parse_whole_secs(text)
    }
    fn from_toml(v: &toml::Value) -> Result<u64, String> {
        match v {
            toml::Value::Integer(i) if *i >= 0 => Ok(*i as u64),
            toml::Value::Integer(i) => Self::from_text(&i.to_string()),
            toml::Value::String(s) => Self::from_text(s),
            other => Err(wrong_type(Self::TOML, other)),
        }
    }
    fn show(v: &u64) -> String {
        format!("{v}s")
    }
}

/// A list of texts: a repeated flag, a comma-separated variable, a TOML array of strings.
pub struct List;
impl Kind for List {
    type Value = Vec<String>;
    const TOML: &'static str = "an array of strings";
    fn from_flag(texts: &[String]) -> Result<Vec<String>, String> {
        Ok(texts.to_vec())
    }
    fn from_text(text: &str) -> Result<Vec<String>, String> {
        Ok(text
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect())
    }
    fn from_toml(v: &toml::Value) -> Result<Vec<String>, String> {
        let items = v.as_array().ok_or_else(|| wrong_type(Self::TOML, v))?;
        items
            .iter()
            .map(|i| i.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| wrong_type(Self::TOML, v))
    }
    fn show(v: &Vec<String>) -> String {
        v.join(",")
    }
}

/// How `train --from JOB` treats a setting.
pub enum FromJob<V, J> {
    /// Read back from the described job `J`; `field` names the API field, for the source.
    Copy {
        field: &'static str,
        read: fn(&J) -> Option<V>,
    },
    /// Not copied from the job, and why (the setting keeps its flag, variable or file value).
    NotCopied(&'static str),
}

/// One scalar setting, declared once.
pub struct Setting<K: Kind, J> {
    /// The key in `sagetrain.toml` and the name in `sagetrain config`.
    pub key: &'static str,
    /// The flag, as a source names it (`--kms-key`).
    pub flag: &'static str,
    /// Environment variables, first set wins.
    pub env: &'static [&'static str],
    /// Whether `sagetrain.toml` may set it.
    pub in_file: bool,
    /// The default, as text ([`Kind::from_text`]).
    pub default: Option<&'static str>,
    /// An example value as TOML, for `sagetrain init` and the tests; never the default, so
    /// that a test setting it sees a difference.
    pub example: &'static str,
    /// One line on what it is, for `sagetrain init`.
    pub help: &'static str,
    pub from_job: FromJob<K::Value, J>,
}

impl<K: Kind, J> Setting<K, J> {
    /// What a declaration leaves out: no environment variable, settable in the file, no
    /// default (the key, flag, example, help and `from_job` are always given).
    pub const DEFAULTS: Self = Setting {
        key: "",
        flag: "",
        env: &[],
        in_file: true,
        default: None,
        example: "",
        help: "",
        from_job: FromJob::NotCopied(""),
    };

    /// The default value, if any.
    pub fn default_val(&self) -> Option<Val<K::Value>> {
        let text = self.default?;
        K::from_text(text)
            .ok()
            .map(|v| Val::new(v, Source::Default))
    }

    /// Flag, then environment, then file, then default.
    pub fn layer(
        &self,
        flag: &impl RawFlag,
        env: &dyn Fn(&str) -> Option<String>,
        file: Option<&LoadedFile>,
        violations: &mut Vec<Violation>,
    ) -> Option<Val<K::Value>> {
        let mut bad = |what: String, rule: String| {
            violations.push(Violation::new(what, rule));
            None
        };
        if let Some(texts) = flag.given() {
            return match K::from_flag(&texts) {
                Ok(v) => Some(Val::new(v, Source::Flag(self.flag))),
                Err(rule) => bad(self.flag.to_string(), rule),
            };
        }
        for var in self.env {
            if let Some(text) = env(var).filter(|s| !s.is_empty()) {
                return match K::from_text(&text) {
                    Ok(v) => Some(Val::new(v, Source::Env(var))),
                    Err(rule) => bad(var.to_string(), rule),
                };
            }
        }
        if let Some(f) = file.filter(|_| self.in_file) {
            if let Some(raw) = f.get(None, self.key) {
                return match K::from_toml(raw) {
                    Ok(v) => Some(Val::new(v, f.source(None, self.key))),
                    Err(rule) => bad(f.source(None, self.key).name_for(None), rule),
                };
            }
        }
        self.default_val()
    }

    /// Put the job's value under the flags (`train --from`): a flag stays; otherwise the job's
    /// value, or the default when the job has none (the new job is the old one, not the old one
    /// mixed with the project's file).
    pub fn apply_job(&self, slot: &mut Option<Val<K::Value>>, job_name: &str, job: &J) {
        let FromJob::Copy { field, read } = &self.from_job else {
            return;
        };
        if slot
            .as_ref()
            .is_some_and(|v| matches!(v.source, Source::Flag(_)))
        {
            return;
        }
        *slot = read(job)
            .map(|v| {
                Val::new(
                    v,
                    Source::Job {
                        job: job_name.to_string(),
                        field: field.to_string(),
                    },
                )
            })
            .or_else(|| self.default_val());
    }

    pub fn row(&self, slot: &Option<Val<K::Value>>) -> Row {
        row(
            self.key,
            slot.as_ref().map(|v| (K::show(&v.value), &v.source)),
        )
    }

    /// Is a file value of this setting of the right type?
    pub fn check_toml(&self, v: &toml::Value) -> Result<(), String> {
        K::from_toml(v).map(|_| ())
    }
}

/// A `KEY=VALUE` map setting (hyperparameters, channels, ...), declared once.
pub struct MapSetting<J> {
    /// The `[section]` of `sagetrain.toml`, and the prefix of its rows.
    pub key: &'static str,
    /// The repeatable `KEY=VALUE` flag.
    pub flag: &'static str,
    /// Whether the file may give numbers and booleans (sent as their plain text).
    pub scalars: bool,
    /// Example entries as (key, TOML value), for `sagetrain init` and the tests.
    pub example: &'static [(&'static str, &'static str)],
    pub help: &'static str,
    /// How `--from` reads it back: the API field and the entries.
    pub from_job: FromJob<BTreeMap<String, String>, J>,
    /// A file entry may also be a table: `(value field, other fields)`; the entry's value is
    /// the value field (`train = { uri = "s3://...", input_mode = "FastFile" }`).
    pub table: Option<(&'static str, &'static [&'static str])>,
    /// The file gives this map's entries as a field of another map's table entries:
    /// `(section, field)`; it has no `[section]` of its own.
    pub in_tables_of: Option<(&'static str, &'static str)>,
}

impl<J> MapSetting<J> {
    /// What a declaration leaves out: no table entries, a section of its own.
    pub const DEFAULTS: Self = MapSetting {
        key: "",
        flag: "",
        scalars: false,
        example: &[],
        help: "",
        from_job: FromJob::NotCopied(""),
        table: None,
        in_tables_of: None,
    };
}

/// A flag that sets one key of a map (`--epochs N` is `hyperparameters.epochs`).
pub struct Shorthand {
    pub flag: &'static str,
    pub map: &'static str,
    pub key: &'static str,
}

/// The plain text of a TOML scalar: `50`, `0.0001`, `true`, `adam`; never JSON-quoted.
pub fn plain(v: &toml::Value) -> Option<String> {
    match v {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Integer(i) => Some(i.to_string()),
        // Rust prints 0.0001 as "0.0001" and 1e-5 as "0.00001": plain, never JSON-quoted.
        toml::Value::Float(f) => Some(f.to_string()),
        toml::Value::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

impl<J> MapSetting<J> {
    /// The file's entries, then the `KEY=VALUE` flags over them per key, then the shorthands.
    pub fn layer(
        &self,
        flags: &[String],
        shorthands: &[(&'static str, &'static str, Option<String>)],
        file: Option<&LoadedFile>,
        violations: &mut Vec<Violation>,
    ) -> BTreeMap<String, Val<String>> {
        let mut m = BTreeMap::new();
        let (section, field) = match self.in_tables_of {
            Some((section, field)) => (section, Some(field)),
            None => (self.key, None),
        };
        if let Some(table) = file.and_then(|f| f.get(None, section)?.as_table().map(|t| (f, t))) {
            let (f, t) = table;
            for (k, v) in t {
                let v = match field {
                    // Only table entries that have the field.
                    Some(field) => match v.as_table().and_then(|t| t.get(field)) {
                        Some(v) => v,
                        None => continue,
                    },
                    None => v,
                };
                match self.entry_text(v) {
                    Ok(text) => {
                        m.insert(k.clone(), Val::new(text, f.source(Some(section), k)));
                    }
                    Err(rule) => violations.push(Violation::new(
                        f.source(Some(section), k).name_for(None),
                        rule,
                    )),
                }
            }
        }
        for raw in flags {
            match raw.split_once('=') {
                Some((k, v)) => {
                    m.insert(
                        k.trim().to_string(),
                        Val::new(v.to_string(), Source::Flag(self.flag)),
                    );
                }
                None => violations.push(Violation::new(
                    self.flag,
                    format!("`{raw}` is not of the form KEY=VALUE"),
                )),
            }
        }
        for (flag, key, value) in shorthands {
            if let Some(v) = value {
                m.insert(
                    key.to_string(),
                    Val::new(v.trim().to_string(), Source::Flag(flag)),
                );
            }
        }
        m
    }

    fn entry_text(&self, v: &toml::Value) -> Result<String, String> {
        if let (toml::Value::Table(t), Some((value, others))) = (v, self.table) {
            if let Some(k) = t
                .keys()
                .find(|k| k.as_str() != value && !others.contains(&k.as_str()))
            {
                return Err(format!(
                    "`{k}` is not a field of an entry (it may have {})",
                    std::iter::once(value)
                        .chain(others.iter().copied())
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            return t
                .get(value)
                .ok_or_else(|| format!("a table entry needs `{value}`"))
                .and_then(|v| self.entry_text_plain(v));
        }
        self.entry_text_plain(v)
    }

    fn entry_text_plain(&self, v: &toml::Value) -> Result<String, String> {
        match (v, self.scalars) {
            (toml::Value::String(s), _) => Ok(s.clone()),
            (other, true) => {
                plain(other).ok_or_else(|| wrong_type("a string, number or boolean", other))
            }
            (other, false) => Err(wrong_type("a string", other)),
        }
    }

    /// Check the file's `[section]`.
    pub fn check_toml(&self, v: &toml::Value) -> Result<(), String> {
        if let Some((section, field)) = self.in_tables_of {
            return Err(format!(
                "is not a section of its own: give `{field}` in an entry of [{section}], e.g. train = {{ uri = \"s3://...\", {field} = \"FastFile\" }}"
            ));
        }
        let t = v
            .as_table()
            .ok_or_else(|| format!("must be a [{}] table (got {})", self.key, v.type_str()))?;
        for (k, e) in t {
            self.entry_text(e).map_err(|rule| format!("{k}: {rule}"))?;
        }
        Ok(())
    }

    /// `--from`: the flags' entries stay; the job's map replaces the rest.
    pub fn apply_job(&self, slot: &mut BTreeMap<String, Val<String>>, job_name: &str, job: &J) {
        let FromJob::Copy { field, read } = &self.from_job else {
            return;
        };
        slot.retain(|_, v| matches!(v.source, Source::Flag(_)));
        for (k, v) in read(job).unwrap_or_default() {
            slot.entry(k.clone()).or_insert_with(|| {
                Val::new(
                    v,
                    Source::Job {
                        job: job_name.to_string(),
                        field: format!("{field}.{k}"),
                    },
                )
            });
        }
    }

    pub fn rows(&self, slot: &BTreeMap<String, Val<String>>) -> Vec<Row> {
        slot.iter()
            .map(|(k, v)| {
                row(
                    &format!("{}.{k}", self.key),
                    Some((v.value.clone(), &v.source)),
                )
            })
            .collect()
    }
}

/// A row of `sagetrain config`: a setting, its value as shown, and its source (`None`: not set).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub name: String,
    pub value: String,
    pub source: Option<Source>,
}

impl Row {
    /// The three cells as shown: `(not set)` and `-` when unset; a value that looks like a
    /// secret (by its format, or by a name that says so) masked.
    pub fn cells(&self) -> (String, String, String) {
        match &self.source {
            Some(src) => {
                let key = self.name.rsplit('.').next().unwrap_or(&self.name);
                let value = match crate::secrets::scan_entry(key, &self.value) {
                    Some(_) => crate::secrets::mask_value(&self.value),
                    None => self.value.clone(),
                };
                (self.name.clone(), value, src.to_string())
            }
            None => (self.name.clone(), "(not set)".into(), "-".into()),
        }
    }
}

#[cfg(test)]
mod row_tests {
    use super::*;

    #[test]
    fn a_secret_looking_value_is_masked_in_its_row() {
        let hex = "3f8a1c9e2b7d4f6a0c5e8b1d9f2a7c4e6b0d8f1a";
        let r = row(
            "environment.WANDB_API_KEY",
            Some((hex.to_string(), &Source::Flag("--env"))),
        );
        assert_eq!(r.cells().1, "****************8f1a");
        let r = row(
            "environment.MODE",
            Some(("fast".into(), &Source::Flag("--env"))),
        );
        assert_eq!(r.cells().1, "fast");
    }
}

/// The cells of rows, for a table.
pub fn cells(rows: &[Row]) -> Vec<(String, String, String)> {
    rows.iter().map(Row::cells).collect()
}

pub fn row(name: &str, v: Option<(String, &Source)>) -> Row {
    match v {
        Some((value, source)) => Row {
            name: name.to_string(),
            value,
            source: Some(source.clone()),
        },
        None => Row {
            name: name.to_string(),
            value: String::new(),
            source: None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_read_flags_text_and_toml() {
        assert_eq!(Int::from_text(" 4 "), Ok(4));
        assert!(Int::from_text("two")
            .unwrap_err()
            .contains("not a whole number"));
        assert_eq!(Secs::from_text("90m"), Ok(5400));
        assert!(Secs::from_text("1.5").is_err());
        assert_eq!(Secs::from_toml(&toml::Value::Integer(60)), Ok(60));
        assert_eq!(Secs::from_toml(&toml::Value::String("2h".into())), Ok(7200));
        assert_eq!(
            List::from_text("a, b,,c"),
            Ok(vec!["a".into(), "b".into(), "c".into()])
        );
        assert_eq!(Switch::from_flag(&[]), Ok(true));
        assert_eq!(NoSwitch::from_flag(&[]), Ok(false));
        assert!(Text::from_toml(&toml::Value::Integer(1))
            .unwrap_err()
            .contains("must be a string (got integer)"));
        assert_eq!(plain(&toml::Value::Float(0.0001)).unwrap(), "0.0001");
    }
}
