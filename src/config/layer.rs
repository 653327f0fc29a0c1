//! The kinds of setting values, and how one setting is layered: flag > environment variable >
//! config file > default, each value keeping its [`Source`].
//!
//! A setting is declared once as a [`Setting`] (or a [`MapSetting`] for `KEY=VALUE` maps):
//! its key, flag, variables, default, example, help and how `train --from` reads it back from
//! an earlier job ([`FromJob`]). The functions here turn such a declaration and the raw inputs
//! into a [`Val`], a row of `sagetrain config`, a file check, or the job's value.
//!
//! A group of settings (those of `train`, of `tune`, the connection, the time limits, ...) is
//! one [`declare!`] list, in the module of the capability it configures; the macro turns the
//! list into the group's clap flags, its layered values with sources, its file check, its rows
//! and what the docs and tests know of each setting ([`Meta`], [`MapMeta`]).

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

/// One value or several in order: `a,b,c` in a flag or a variable, a string or an array of
/// strings in the file.
pub struct OneOrMore;
impl Kind for OneOrMore {
    type Value = Vec<String>;
    const TOML: &'static str = "a string or an array of strings";
    fn from_text(text: &str) -> Result<Vec<String>, String> {
        let items: Vec<String> = text.split(',').map(|s| s.trim().to_string()).collect();
        if items.iter().any(String::is_empty) {
            return Err(format!("`{text}` has an empty entry"));
        }
        Ok(items)
    }
    fn from_toml(v: &toml::Value) -> Result<Vec<String>, String> {
        match v {
            toml::Value::String(s) => Self::from_text(s),
            toml::Value::Array(_) => List::from_toml(v),
            other => Err(wrong_type(Self::TOML, other)),
        }
    }
    fn show(v: &Vec<String>) -> String {
        v.join(",")
    }
}

/// A count kept as given, checked by the rule that uses it (which names the bounds); the file
/// gives a whole number.
pub struct Count;
impl Kind for Count {
    type Value = String;
    const TOML: &'static str = "a whole number";
    fn from_text(text: &str) -> Result<String, String> {
        Ok(text.to_string())
    }
    fn from_toml(v: &toml::Value) -> Result<String, String> {
        v.as_integer()
            .map(|i| i.to_string())
            .ok_or_else(|| wrong_type(Self::TOML, v))
    }
    fn show(v: &String) -> String {
        v.clone()
    }
}

/// A duration of more than 0: `500ms`, `30s`, `2m`, `1m30s`, or a number of seconds (`45`,
/// `1.5`).
pub struct Period;
impl Kind for Period {
    type Value = std::time::Duration;
    const TOML: &'static str = "a duration (\"500ms\", \"30s\", \"2m\") or a number of seconds";
    fn from_text(text: &str) -> Result<std::time::Duration, String> {
        let d = super::durations::parse(text)?;
        if d.is_zero() {
            return Err(format!("must be more than 0 (`{text}` is zero)"));
        }
        Ok(d)
    }
    fn from_toml(v: &toml::Value) -> Result<std::time::Duration, String> {
        match v {
            toml::Value::String(s) => Self::from_text(s),
            toml::Value::Integer(_) | toml::Value::Float(_) => {
                Self::from_text(&plain(v).unwrap_or_default())
            }
            other => Err(wrong_type(Self::TOML, other)),
        }
    }
    fn show(v: &std::time::Duration) -> String {
        super::durations::format(*v)
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
    /// The `[section]` of `sagetrain.toml` the key is in (`None`: the top level).
    pub file_section: Option<&'static str>,
    /// The flag, as a source names it (`--kms-key`); empty for a setting without one.
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
        file_section: None,
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
            if let Some(raw) = f.get(self.file_section, self.key) {
                let source = f.source(self.file_section, self.key);
                return match K::from_toml(raw) {
                    Ok(v) => Some(Val::new(v, source)),
                    Err(rule) => bad(source.name_for(None), rule),
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

    /// The name in `sagetrain config`: the key, under its section (`tune.objective`).
    pub fn name(&self) -> String {
        dotted(self.file_section, self.key)
    }

    pub fn row(&self, slot: &Option<Val<K::Value>>) -> Row {
        row(
            &self.name(),
            slot.as_ref().map(|v| (K::show(&v.value), &v.source)),
        )
    }

    /// Is a file value of this setting of the right type?
    pub fn check_toml(&self, v: &toml::Value) -> Result<(), String> {
        K::from_toml(v).map(|_| ())
    }
}

/// `section.key`, or `key` at the top level.
fn dotted(section: Option<&str>, key: &str) -> String {
    match section {
        Some(s) => format!("{s}.{key}"),
        None => key.to_string(),
    }
}

/// A `KEY=VALUE` map setting (hyperparameters, channels, ranges, ...), declared once; each
/// entry's value is of the kind `K`.
pub struct MapSetting<J, K: Kind = Text> {
    /// The `[section]` of `sagetrain.toml`, and the prefix of its rows.
    pub key: &'static str,
    /// The section of `sagetrain.toml` this map's section is in (`[tune.ranges]`).
    pub file_section: Option<&'static str>,
    /// The repeatable `KEY=VALUE` flag.
    pub flag: &'static str,
    /// What a flag's text must look like, for the message when it does not.
    pub form: &'static str,
    /// Whether the file may give numbers and booleans (sent as their plain text).
    pub scalars: bool,
    /// Example entries as (key, TOML value), for `sagetrain init` and the tests.
    pub example: &'static [(&'static str, &'static str)],
    pub help: &'static str,
    /// How `--from` reads it back: the API field and the entries.
    pub from_job: FromJob<BTreeMap<String, K::Value>, J>,
    /// A file entry may also be a table: `(value field, other fields)`; the entry's value is
    /// the value field (`train = { uri = "s3://...", input_mode = "FastFile" }`).
    pub table: Option<(&'static str, &'static [&'static str])>,
    /// The file gives this map's entries as a field of another map's table entries:
    /// `(section, field)`; it has no `[section]` of its own.
    pub in_tables_of: Option<(&'static str, &'static str)>,
}

impl<J, K: Kind> MapSetting<J, K> {
    /// What a declaration leaves out: no table entries, a section of its own.
    pub const DEFAULTS: Self = MapSetting {
        key: "",
        file_section: None,
        flag: "",
        form: "of the form KEY=VALUE",
        scalars: false,
        example: &[],
        help: "",
        from_job: FromJob::NotCopied(""),
        table: None,
        in_tables_of: None,
    };
}

/// A flag that sets one key of a map (`--epochs N` is `hyperparameters.epochs`).
#[derive(Debug, Clone)]
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

/// A problem in a map's section: of the whole section (`None`) or of one entry.
pub type EntryProblem = (Option<String>, String);

impl<J, K: Kind> MapSetting<J, K> {
    /// The name of its section and the prefix of its rows: `hyperparameters`, `tune.ranges`.
    pub fn name(&self) -> String {
        dotted(self.file_section, self.key)
    }

    /// The file's entries, then the `KEY=VALUE` flags over them per key, then the shorthands.
    pub fn layer(
        &self,
        flags: &[String],
        shorthands: &[(&'static str, &'static str, Option<String>)],
        file: Option<&LoadedFile>,
        violations: &mut Vec<Violation>,
    ) -> BTreeMap<String, Val<K::Value>> {
        let mut m = BTreeMap::new();
        let (section, field) = match self.in_tables_of {
            Some((section, field)) => (section.to_string(), Some(field)),
            None => (self.key.to_string(), None),
        };
        let table = file.and_then(|f| {
            f.get(self.file_section, &section)?
                .as_table()
                .map(|t| (f, t))
        });
        if let Some((f, t)) = table {
            let prefix = dotted(self.file_section, &section);
            for (k, v) in t {
                let v = match field {
                    // Only table entries that have the field.
                    Some(field) => match v.as_table().and_then(|t| t.get(field)) {
                        Some(v) => v,
                        None => continue,
                    },
                    None => v,
                };
                let source = f.source(Some(&prefix), k);
                match self.entry(v) {
                    Ok(value) => {
                        m.insert(k.clone(), Val::new(value, source));
                    }
                    Err(rule) => violations.push(Violation::new(source.name_for(None), rule)),
                }
            }
        }
        // The flags' entries, then the shorthands'.
        let mut given: Vec<(&str, &str, &'static str)> = Vec::new();
        for raw in flags {
            match raw.split_once('=') {
                Some((k, v)) if !k.trim().is_empty() => given.push((k.trim(), v, self.flag)),
                _ => violations.push(Violation::new(
                    self.flag,
                    format!("`{raw}` is not {}", self.form),
                )),
            }
        }
        for (flag, key, value) in shorthands {
            if let Some(v) = value {
                given.push((key, v.trim(), flag));
            }
        }
        for (key, text, flag) in given {
            match K::from_text(text) {
                Ok(v) => {
                    m.insert(key.to_string(), Val::new(v, Source::Flag(flag)));
                }
                Err(rule) => violations.push(Violation::new(format!("{flag} {key}"), rule)),
            }
        }
        m
    }

    /// A file entry's value: the value field of a table entry, the plain text of a scalar
    /// (when the map takes scalars), or what the kind reads from the TOML value.
    fn entry(&self, v: &toml::Value) -> Result<K::Value, String> {
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
                .and_then(|v| self.entry_plain(v));
        }
        self.entry_plain(v)
    }

    fn entry_plain(&self, v: &toml::Value) -> Result<K::Value, String> {
        match (v, self.scalars) {
            (toml::Value::String(s), _) => K::from_text(s),
            (other, true) => match plain(other) {
                Some(text) => K::from_text(&text),
                None => Err(wrong_type("a string, number or boolean", other)),
            },
            (other, false) => K::from_toml(other),
        }
    }

    /// Check the file's `[section]`: every problem, of the section or of an entry.
    pub fn check_entries(&self, v: &toml::Value) -> Result<(), Vec<EntryProblem>> {
        if let Some((section, field)) = self.in_tables_of {
            return Err(vec![(None, format!(
                "is not a section of its own: give `{field}` in an entry of [{section}], e.g. train = {{ uri = \"s3://...\", {field} = \"FastFile\" }}"
            ))]);
        }
        let Some(t) = v.as_table() else {
            return Err(vec![(
                None,
                format!("must be a [{}] table (got {})", self.name(), v.type_str()),
            )]);
        };
        let problems: Vec<EntryProblem> = t
            .iter()
            .filter_map(|(k, e)| self.entry(e).err().map(|rule| (Some(k.clone()), rule)))
            .collect();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }

    /// `--from`: the flags' entries stay; the job's map replaces the rest.
    pub fn apply_job(&self, slot: &mut BTreeMap<String, Val<K::Value>>, job_name: &str, job: &J) {
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

    pub fn rows(&self, slot: &BTreeMap<String, Val<K::Value>>) -> Vec<Row> {
        let name = self.name();
        slot.iter()
            .map(|(k, v)| row(&format!("{name}.{k}"), Some((K::show(&v.value), &v.source))))
            .collect()
    }
}

/// What `sagetrain init`, the docs and the tests know of a scalar setting.
#[derive(Debug, Clone)]
pub struct Meta {
    pub key: &'static str,
    /// The `[section]` of `sagetrain.toml` the key is in (`None`: the top level).
    pub file_section: Option<&'static str>,
    /// Empty for a setting without a flag.
    pub flag: &'static str,
    pub env: &'static [&'static str],
    pub in_file: bool,
    pub default: Option<&'static str>,
    pub example: &'static str,
    pub help: &'static str,
    /// The help heading of its flag, also its section in `sagetrain init` (empty: none).
    pub section: &'static str,
    /// `None` when `--from` copies it; otherwise why not.
    pub not_copied: Option<&'static str>,
}

impl Meta {
    /// The name in `sagetrain config` (`tune.objective`).
    pub fn name(&self) -> String {
        dotted(self.file_section, self.key)
    }
}

/// What `sagetrain init`, the docs and the tests know of a map setting.
#[derive(Debug, Clone)]
pub struct MapMeta {
    pub key: &'static str,
    /// The `[section]` of `sagetrain.toml` its own section is in (`[tune.ranges]`).
    pub file_section: Option<&'static str>,
    /// Given in the file as a field of another section's table entries: (section, field).
    pub in_tables_of: Option<(&'static str, &'static str)>,
    pub flag: &'static str,
    pub example: &'static [(&'static str, &'static str)],
    pub help: &'static str,
    pub not_copied: Option<&'static str>,
}

impl MapMeta {
    /// The name of its section (`tune.ranges`).
    pub fn name(&self) -> String {
        dotted(self.file_section, self.key)
    }
}

/// One declared group: its settings, as the docs and tests know them.
#[derive(Debug, Clone)]
pub struct Group {
    pub scalars: Vec<Meta>,
    pub maps: Vec<MapMeta>,
    pub shorthands: &'static [Shorthand],
}

pub fn not_copied<V, J>(f: &FromJob<V, J>) -> Option<&'static str> {
    match f {
        FromJob::Copy { .. } => None,
        FromJob::NotCopied(why) => Some(why),
    }
}

/// The check of one key of a group's file section: `None` for a key the group does not have.
pub type KeyCheck = fn(&str, &toml::Value) -> Option<Result<(), Vec<EntryProblem>>>;

/// Every problem of one group's keys in a config file, named `section.key` (and `.entry`).
pub fn section_problems(
    section: &str,
    v: &toml::Value,
    check_key: KeyCheck,
    keys: &[String],
) -> Result<(), String> {
    let t = v
        .as_table()
        .ok_or_else(|| format!("must be a table (got {})", v.type_str()))?;
    let mut problems = Vec::new();
    for (k, val) in t {
        match check_key(k, val) {
            None => problems.push(format!(
                "unknown key `{section}.{k}`; the keys of [{section}] are {}",
                keys.join(", ")
            )),
            Some(Ok(())) => {}
            Some(Err(p)) => problems.extend(p.into_iter().map(|(entry, rule)| match entry {
                Some(e) => format!("`{section}.{k}.{e}` {rule}"),
                None => format!("`{section}.{k}` {rule}"),
            })),
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!("is invalid: {}", problems.join("; ")))
    }
}

/// Declare one group of settings. An entry gives its name (the key in `sagetrain.toml`, under
/// the group's `file_section`, and the row of `sagetrain config`), its kind, its flag (clap's
/// attributes, starting with `long`, which names the flag everywhere else), the help heading,
/// and the rest of its [`Setting`] (environment variables, in the file or not, default,
/// example, how `train --from` reads it back). `unflagged` settings have no flag (environment
/// or file only); `maps` are `KEY=VALUE` maps; `shorthands` set one key of a map.
///
/// It makes `$args` (the clap flags, followed by the extra fields given), `$settings` (each
/// value layered with its source, followed by the extra fields), the declarations (`def::`),
/// `layer_declared`, `layered`, `declared_rows`, `apply_job`, `check_key`, and what the docs
/// and tests know (`scalars()`, `maps()`, `SHORTHANDS`, `group()`).
macro_rules! declare {
    (
        $(#[doc = $adoc:literal])*
        args $args:ident { $($args_extra:tt)* }
        $(#[doc = $sdoc:literal])*
        settings $settings:ident { $($settings_extra:tt)* }
        job $job:ty;
        file_section $file_section:expr;
        $(scalars {
            $(
                $(#[doc = $doc:literal])*
                $field:ident : $raw:ty = $kind:ident [long = $long:literal $($clap:tt)*]
                    $(in $section:ident)? {
                    $($prop:ident : $val:expr),* $(,)?
                }
            )*
        })?
        $(unflagged {
            $(
                $(#[doc = $udoc:literal])*
                $ufield:ident = $ukind:ident {
                    $($uprop:ident : $uval:expr),* $(,)?
                }
            )*
        })?
        $(maps {
            $(
                $(#[doc = $mdoc:literal])*
                $mfield:ident = $mkind:ident [long = $mlong:literal $($mclap:tt)*]
                    in $msection:ident {
                    $($mprop:ident : $mval:expr),* $(,)?
                }
            )*
        })?
        $(shorthands {
            $(
                $(#[doc = $shdoc:literal])*
                $sfield:ident => $smap:ident [$skey:literal] [long = $slong:literal $($sclap:tt)*]
                    in $ssection:ident;
            )*
        })?
    ) => {
        $(#[doc = $adoc])*
        #[derive(Debug, Clone, Default, clap::Args)]
        pub struct $args {
            $($(
                $(#[doc = $doc])*
                #[arg(long = $long $($clap)* $(, help_heading = $section)?)]
                pub $field: $raw,
            )*)?
            $($(
                $(#[doc = $shdoc])*
                #[arg(long = $slong $($sclap)*, help_heading = $ssection)]
                pub $sfield: Option<String>,
            )*)?
            $($(
                $(#[doc = $mdoc])*
                #[arg(long = $mlong $($mclap)*, help_heading = $msection)]
                pub $mfield: Vec<String>,
            )*)?
            $($args_extra)*
        }

        $(#[doc = $sdoc])*
        #[derive(Debug, Clone, Default)]
        pub struct $settings {
            $($( pub $field: Option<$crate::config::Val<<$kind as $crate::config::layer::Kind>::Value>>, )*)?
            $($( pub $ufield: Option<$crate::config::Val<<$ukind as $crate::config::layer::Kind>::Value>>, )*)?
            $($(
                pub $mfield: std::collections::BTreeMap<
                    String,
                    $crate::config::Val<<$mkind as $crate::config::layer::Kind>::Value>,
                >,
            )*)?
            $($settings_extra)*
        }

        /// The declarations.
        #[allow(non_upper_case_globals, dead_code)]
        pub mod def {
            use super::*;
            #[allow(unused_imports)]
            use $crate::config::layer::{MapSetting, Setting};
            $($(
                pub const $field: Setting<$kind, $job> = Setting {
                    key: stringify!($field),
                    file_section: $file_section,
                    flag: concat!("--", $long),
                    help: concat!($($doc),*),
                    $($prop: $val,)*
                    ..Setting::DEFAULTS
                };
            )*)?
            $($(
                pub const $ufield: Setting<$ukind, $job> = Setting {
                    key: stringify!($ufield),
                    file_section: $file_section,
                    help: concat!($($udoc),*),
                    $($uprop: $uval,)*
                    ..Setting::DEFAULTS
                };
            )*)?
            $($(
                pub const $mfield: MapSetting<$job, $mkind> = MapSetting {
                    key: stringify!($mfield),
                    file_section: $file_section,
                    flag: concat!("--", $mlong),
                    help: concat!($($mdoc),*),
                    $($mprop: $mval,)*
                    ..MapSetting::DEFAULTS
                };
            )*)?
        }

        /// The flags that set one key of a map.
        pub const SHORTHANDS: &[$crate::config::layer::Shorthand] = &[
            $($(
                $crate::config::layer::Shorthand {
                    flag: concat!("--", $slong),
                    map: stringify!($smap),
                    key: $skey,
                },
            )*)?
        ];

        /// The scalar settings, in declaration order.
        #[allow(clippy::vec_init_then_push)]
        pub fn scalars() -> Vec<$crate::config::layer::Meta> {
            use $crate::config::layer::{not_copied, Meta};
            #[allow(unused_mut)]
            let mut all = Vec::new();
            $($(
                all.push(Meta {
                    key: def::$field.key,
                    file_section: def::$field.file_section,
                    flag: def::$field.flag,
                    env: def::$field.env,
                    in_file: def::$field.in_file,
                    default: def::$field.default,
                    example: def::$field.example,
                    help: def::$field.help.trim(),
                    section: [$($section,)? ""][0],
                    not_copied: not_copied(&def::$field.from_job),
                });
            )*)?
            $($(
                all.push(Meta {
                    key: def::$ufield.key,
                    file_section: def::$ufield.file_section,
                    flag: "",
                    env: def::$ufield.env,
                    in_file: def::$ufield.in_file,
                    default: def::$ufield.default,
                    example: def::$ufield.example,
                    help: def::$ufield.help.trim(),
                    section: "",
                    not_copied: not_copied(&def::$ufield.from_job),
                });
            )*)?
            all
        }

        /// The map settings, in declaration order.
        pub fn maps() -> Vec<$crate::config::layer::MapMeta> {
            vec![$($(
                $crate::config::layer::MapMeta {
                    key: def::$mfield.key,
                    file_section: def::$mfield.file_section,
                    in_tables_of: def::$mfield.in_tables_of,
                    flag: def::$mfield.flag,
                    example: def::$mfield.example,
                    help: def::$mfield.help.trim(),
                    not_copied: $crate::config::layer::not_copied(&def::$mfield.from_job),
                },
            )*)?]
        }

        /// This group, as the docs and tests know it.
        #[allow(dead_code)]
        pub fn group() -> $crate::config::layer::Group {
            $crate::config::layer::Group {
                scalars: scalars(),
                maps: maps(),
                shorthands: SHORTHANDS,
            }
        }

        /// Check a key of the config file (of this group's section): `None` when the key is
        /// not one of this group's.
        #[allow(dead_code, unused_variables)]
        pub fn check_key(
            key: &str,
            value: &toml::Value,
        ) -> Option<std::result::Result<(), Vec<$crate::config::layer::EntryProblem>>> {
            match key {
                $($(
                    stringify!($field) if def::$field.in_file => {
                        Some(def::$field.check_toml(value).map_err(|rule| vec![(None, rule)]))
                    }
                )*)?
                $($(
                    stringify!($ufield) if def::$ufield.in_file => {
                        Some(def::$ufield.check_toml(value).map_err(|rule| vec![(None, rule)]))
                    }
                )*)?
                $($( stringify!($mfield) => Some(def::$mfield.check_entries(value)), )*)?
                _ => None,
            }
        }

        #[allow(dead_code)]
        impl $settings {
            /// Layer the declared settings, flag > environment > file > default, each with
            /// its source; what is invalid is added to `v`. No network.
            #[allow(unused_variables)]
            #[allow(clippy::vec_init_then_push)]
            pub fn layer_declared(
                &mut self,
                args: &$args,
                env: &dyn Fn(&str) -> Option<String>,
                file: Option<&$crate::config::LoadedFile>,
                v: &mut Vec<$crate::config::Violation>,
            ) {
                $($( self.$field = def::$field.layer(&args.$field, env, file, v); )*)?
                $($( self.$ufield = def::$ufield.layer(&None::<String>, env, file, v); )*)?
                #[allow(unused_mut)]
                let mut shorthands: Vec<(&'static str, &'static str, &'static str, Option<String>)> =
                    Vec::new();
                $($(
                    shorthands.push((
                        stringify!($smap),
                        concat!("--", $slong),
                        $skey,
                        args.$sfield.clone(),
                    ));
                )*)?
                let for_map = |map: &str| -> Vec<(&'static str, &'static str, Option<String>)> {
                    shorthands
                        .iter()
                        .filter(|s| s.0 == map)
                        .map(|s| (s.1, s.2, s.3.clone()))
                        .collect()
                };
                let _ = &for_map;
                $($(
                    self.$mfield = def::$mfield.layer(
                        &args.$mfield,
                        &for_map(stringify!($mfield)),
                        file,
                        v,
                    );
                )*)?
            }

            /// The declared settings alone, layered (the extra fields at their defaults).
            pub fn layered(
                args: &$args,
                env: &dyn Fn(&str) -> Option<String>,
                file: Option<&$crate::config::LoadedFile>,
            ) -> std::result::Result<$settings, Vec<$crate::config::Violation>> {
                let mut s = $settings::default();
                let mut v = Vec::new();
                s.layer_declared(args, env, file, &mut v);
                if v.is_empty() {
                    Ok(s)
                } else {
                    Err(v)
                }
            }

            /// The declared settings as rows of `sagetrain config`.
            #[allow(clippy::vec_init_then_push)]
            pub fn declared_rows(&self) -> Vec<$crate::config::layer::Row> {
                #[allow(unused_mut)]
                let mut rows = Vec::new();
                $($( rows.push(def::$field.row(&self.$field)); )*)?
                $($( rows.push(def::$ufield.row(&self.$ufield)); )*)?
                $($( rows.extend(def::$mfield.rows(&self.$mfield)); )*)?
                rows
            }

            /// Put an earlier job's settings under the flags (`train --from`).
            #[allow(unused_variables)]
            pub fn apply_job(&mut self, job_name: &str, job: &$job) {
                $($( def::$field.apply_job(&mut self.$field, job_name, job); )*)?
                $($( def::$ufield.apply_job(&mut self.$ufield, job_name, job); )*)?
                $($( def::$mfield.apply_job(&mut self.$mfield, job_name, job); )*)?
            }
        }
    };
}
pub(crate) use declare;

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
    fn one_or_more_values_from_a_flag_a_variable_or_the_file() {
        let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(
            OneOrMore::from_flag(&v(&["a, b,c"])),
            Ok(v(&["a", "b", "c"]))
        );
        assert_eq!(OneOrMore::from_text("a"), Ok(v(&["a"])));
        assert_eq!(
            OneOrMore::from_text("a,,b"),
            Err("`a,,b` has an empty entry".to_string())
        );
        let t: toml::Table = toml::from_str("s = \"a,b\"\nl = [\"a\", \"b\"]\nn = 1").unwrap();
        assert_eq!(OneOrMore::from_toml(&t["s"]), Ok(v(&["a", "b"])));
        assert_eq!(OneOrMore::from_toml(&t["l"]), Ok(v(&["a", "b"])));
        assert_eq!(
            OneOrMore::from_toml(&t["n"]),
            Err("must be a string or an array of strings (got integer)".to_string())
        );
        assert_eq!(OneOrMore::show(&v(&["a", "b"])), "a,b");
    }

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
