//! The pure part of `sagetrain tune`: its settings (flags and the `[tune]` table of
//! `sagetrain.toml`), the range grammar, the rules of CreateHyperParameterTuningJob, the
//! tuner's 32-character names, and the request: its serde form (what `--dry-run` prints, with
//! the API's field names) and its SDK form. The training job definition is made from the
//! CreateTrainingJob request that `train` would send ([`crate::job::request`]), so the two
//! commands share every setting, lookup and rule.

use crate::config::{LoadedFile, Source, Val, Violation};
use crate::job::request::{CreateTrainingJobRequest, Tag};
use crate::job::settings::TrainSettings;
use crate::job::spec::JobSpec;
use aws_sdk_sagemaker::types as sm;
use aws_sdk_sagemaker::Client;
use regex::Regex;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::LazyLock;
use std::time::SystemTime;

/// Help heading of the tuning flags.
pub const TUNING: &str = "Tuning";
/// The tuner's name limit (the training jobs it starts get names of their own).
pub const MAX_NAME: usize = 32;
/// At most this many hyperparameters are searched, and a categorical range has at most this
/// many values.
pub const MAX_RANGES: usize = 30;
pub const MAX_VALUES: usize = 30;
/// A tuning job's training jobs take fewer environment variables than a training job
/// (`HyperParameterTrainingJobEnvironmentMap`).
pub const MAX_ENVIRONMENT: usize = 48;
pub const DEFAULT_MAX_JOBS: i64 = 10;
pub const DEFAULT_PARALLEL: i64 = 2;
/// The static hyperparameters Hyperband reads its maximum resource (epochs) from.
const HYPERBAND_EPOCH_KEYS: &[&str] =
    &["epochs", "numepochs", "n-epochs", "n_epochs", "num_epochs"];
/// The keys of the `[tune]` table.
pub const FILE_KEYS: &[&str] = &[
    "ranges",
    "objective",
    "minimize",
    "max_jobs",
    "parallel",
    "strategy",
    "early_stopping",
];

pub(crate) static TUNING_NAME: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,31}$").expect("valid regex"));

/// The flags `tune` adds to those of `train`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TuneArgs {
    /// A hyperparameter to search, KEY=SPEC (repeatable): 1e-5..1e-2 continuous, 1e-5..1e-2:log logarithmic, 2..6 integer, 8,16,32 categorical
    #[arg(long = "range", value_name = "KEY=SPEC", help_heading = TUNING)]
    pub ranges: Vec<String>,
    /// The metric to optimise: the name of a --metric definition [default: the only one]
    #[arg(long, value_name = "METRIC", help_heading = TUNING)]
    pub objective: Option<String>,
    /// Look for the largest objective value (the default)
    #[arg(long, conflicts_with = "minimize", help_heading = TUNING)]
    pub maximize: bool,
    /// Look for the smallest objective value (a loss)
    #[arg(long, help_heading = TUNING)]
    pub minimize: bool,
    /// Training jobs in all [default: 10]
    #[arg(long, value_name = "N", help_heading = TUNING)]
    pub max_jobs: Option<String>,
    /// Training jobs at a time, at most --max-jobs [default: 2]
    #[arg(long, value_name = "M", help_heading = TUNING)]
    pub parallel: Option<String>,
    /// How the next trials are chosen: bayesian, random, grid (categorical ranges only), hyperband [default: bayesian]
    #[arg(long, value_name = "STRATEGY", help_heading = TUNING)]
    pub strategy: Option<String>,
    /// Let the tuner stop trials that are unlikely to beat the best so far (not with hyperband, which has its own)
    #[arg(long, help_heading = TUNING)]
    pub early_stopping: bool,
}

// ---- Ranges. ----

/// A range as given: the text of a flag or a file string, or a file array (categorical).
#[derive(Debug, Clone, PartialEq)]
pub enum RangeInput {
    Spec(String),
    Values(Vec<String>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scaling {
    Auto,
    Linear,
    Logarithmic,
    ReverseLogarithmic,
}

impl Scaling {
    fn api(self) -> Option<&'static str> {
        match self {
            Scaling::Auto => None,
            Scaling::Linear => Some("Linear"),
            Scaling::Logarithmic => Some("Logarithmic"),
            Scaling::ReverseLogarithmic => Some("ReverseLogarithmic"),
        }
    }
}

/// A parsed range.
#[derive(Debug, Clone, PartialEq)]
pub enum Range {
    Integer {
        min: i64,
        max: i64,
        scaling: Scaling,
    },
    /// The bounds as written (the API takes them as strings), and their values.
    Continuous {
        min: String,
        max: String,
        scaling: Scaling,
    },
    Categorical(Vec<String>),
}

const RANGE_FORMS: &str = "write LOW..HIGH (integer when both are whole numbers, e.g. 2..6; continuous otherwise, e.g. 1e-5..1e-2), add :log for a logarithmic scale (or :linear, :reverse-log), or list values: 8,16,32";

fn is_whole(t: &str) -> bool {
    !t.contains(['.', 'e', 'E']) && t.parse::<i64>().is_ok()
}

fn number(t: &str) -> Result<f64, String> {
    match t.parse::<f64>() {
        Ok(x) if x.is_finite() => Ok(x),
        _ => Err(format!("`{t}` is not a number; {RANGE_FORMS}")),
    }
}

fn categorical(values: Vec<String>) -> Result<Range, String> {
    if values.iter().any(String::is_empty) {
        return Err("a categorical range has an empty value".into());
    }
    if values.len() < 2 {
        return Err(format!(
            "a categorical range needs at least two values (one value is a static hyperparameter: --hyperparameter KEY=VALUE); {RANGE_FORMS}"
        ));
    }
    if values.len() > MAX_VALUES {
        return Err(format!(
            "a categorical range has at most {MAX_VALUES} values (got {})",
            values.len()
        ));
    }
    if let Some(v) = values.iter().find(|v| v.chars().count() > 256) {
        return Err(format!(
            "a categorical value has at most 256 characters (got {})",
            v.chars().count()
        ));
    }
    let mut seen = std::collections::BTreeSet::new();
    if let Some(d) = values.iter().find(|v| !seen.insert(v.as_str())) {
        return Err(format!("the value `{d}` is listed twice"));
    }
    Ok(Range::Categorical(values))
}

/// Parse a range: `1e-5..1e-2` continuous, `1e-5..1e-2:log` logarithmic, `2..6` integer,
/// `8,16,32` categorical. An empty or reversed range, and a logarithmic one that reaches 0,
/// are errors.
pub fn parse_range(input: &RangeInput) -> Result<Range, String> {
    let spec = match input {
        RangeInput::Values(v) => return categorical(v.clone()),
        RangeInput::Spec(s) => s.trim(),
    };
    let (body, scaling) = match spec.rsplit_once(':') {
        Some((body, word)) if body.contains("..") => {
            let scaling = match word.trim().to_ascii_lowercase().as_str() {
                "log" | "logarithmic" => Scaling::Logarithmic,
                "linear" => Scaling::Linear,
                "reverse-log" | "reverselog" | "reverse-logarithmic" => Scaling::ReverseLogarithmic,
                "auto" => Scaling::Auto,
                other => {
                    return Err(format!(
                        "unknown scale `:{other}`; use :log, :linear or :reverse-log"
                    ))
                }
            };
            (body.trim(), scaling)
        }
        _ => (spec, Scaling::Auto),
    };
    if let Some((lo, hi)) = body.split_once("..") {
        let (lo, hi) = (lo.trim(), hi.trim());
        if lo.is_empty() || hi.is_empty() {
            return Err(format!("`{spec}` lacks a bound; {RANGE_FORMS}"));
        }
        let (a, b) = (number(lo)?, number(hi)?);
        if a >= b {
            return Err(format!(
                "`{spec}` is an empty or reversed range: LOW must be below HIGH"
            ));
        }
        if scaling == Scaling::Logarithmic && a <= 0.0 {
            return Err(format!(
                "`{spec}`: a logarithmic range must stay above 0 (it starts at {lo}); start it at a small positive value such as 1e-6"
            ));
        }
        if is_whole(lo) && is_whole(hi) {
            if scaling == Scaling::ReverseLogarithmic {
                return Err(format!(
                    "`{spec}`: a reverse-logarithmic scale is for continuous ranges within [0, 1)"
                ));
            }
            return Ok(Range::Integer {
                min: a as i64,
                max: b as i64,
                scaling,
            });
        }
        if scaling == Scaling::ReverseLogarithmic && !(a >= 0.0 && b < 1.0) {
            return Err(format!(
                "`{spec}`: a reverse-logarithmic range must lie within [0, 1)"
            ));
        }
        return Ok(Range::Continuous {
            min: lo.to_string(),
            max: hi.to_string(),
            scaling,
        });
    }
    if body.contains(',') {
        if scaling != Scaling::Auto {
            return Err("a categorical range has no scale".into());
        }
        return categorical(body.split(',').map(|v| v.trim().to_string()).collect());
    }
    Err(format!("`{spec}` is not a range; {RANGE_FORMS}"))
}

// ---- Settings. ----

/// The tuning settings, layered flag > `[tune]` in sagetrain.toml > default, with sources.
#[derive(Debug, Clone, Default)]
pub struct TuneSettings {
    pub ranges: BTreeMap<String, Val<RangeInput>>,
    pub objective: Option<Val<String>>,
    pub minimize: Option<Val<bool>>,
    pub max_jobs: Option<Val<String>>,
    pub parallel: Option<Val<String>>,
    pub strategy: Option<Val<String>>,
    pub early_stopping: Option<Val<bool>>,
}

fn file_value<'a>(file: Option<&'a LoadedFile>, key: &str) -> Option<(&'a toml::Value, Source)> {
    let f = file?;
    let v = f.get(Some("tune"), key)?;
    Some((v, f.source(Some("tune"), key)))
}

fn scalar_text(v: &toml::Value) -> Option<String> {
    match v {
        toml::Value::Array(_) | toml::Value::Table(_) => None,
        other => crate::config::layer::plain(other),
    }
}

impl TuneSettings {
    /// Layer the flags over the `[tune]` table (whose types [`check_toml`] has checked). `KEY=`
    /// flags with no `=` are violations.
    pub fn layer(
        args: &TuneArgs,
        file: Option<&LoadedFile>,
    ) -> std::result::Result<TuneSettings, Vec<Violation>> {
        let mut v = Vec::new();
        let mut ranges = BTreeMap::new();
        if let Some(f) = file {
            if let Some(t) = f
                .get(Some("tune"), "ranges")
                .and_then(toml::Value::as_table)
            {
                for (k, val) in t {
                    let src = Source::file(&f.path, format!("tune.ranges.{k}"));
                    let input = match val {
                        toml::Value::Array(items) => {
                            RangeInput::Values(items.iter().filter_map(scalar_text).collect())
                        }
                        other => RangeInput::Spec(scalar_text(other).unwrap_or_default()),
                    };
                    ranges.insert(k.clone(), Val::new(input, src));
                }
            }
        }
        for raw in &args.ranges {
            match raw.split_once('=') {
                Some((k, spec)) if !k.trim().is_empty() => {
                    ranges.insert(
                        k.trim().to_string(),
                        Val::new(RangeInput::Spec(spec.to_string()), Source::Flag("--range")),
                    );
                }
                _ => v.push(Violation::new(
                    "--range",
                    format!("`{raw}` is not KEY=SPEC (e.g. learning_rate=1e-5..1e-2:log)"),
                )),
            }
        }
        let text = |flag: &Option<String>, name: &'static str, key: &str| -> Option<Val<String>> {
            if let Some(x) = flag {
                return Some(Val::new(x.clone(), Source::Flag(name)));
            }
            let (val, src) = file_value(file, key)?;
            Some(Val::new(scalar_text(val)?, src))
        };
        let switch = |flag: bool, name: &'static str, key: &str| -> Option<Val<bool>> {
            if flag {
                return Some(Val::new(true, Source::Flag(name)));
            }
            let (val, src) = file_value(file, key)?;
            Some(Val::new(val.as_bool()?, src))
        };
        let minimize = if args.maximize {
            Some(Val::new(false, Source::Flag("--maximize")))
        } else {
            switch(args.minimize, "--minimize", "minimize")
        };
        let s = TuneSettings {
            ranges,
            objective: text(&args.objective, "--objective", "objective"),
            minimize,
            max_jobs: text(&args.max_jobs, "--max-jobs", "max_jobs"),
            parallel: text(&args.parallel, "--parallel", "parallel"),
            strategy: text(&args.strategy, "--strategy", "strategy"),
            early_stopping: switch(args.early_stopping, "--early-stopping", "early_stopping"),
        };
        if v.is_empty() {
            Ok(s)
        } else {
            Err(v)
        }
    }
}

/// The file check of the `[tune]` table: its keys and their types. `Err` names the rule.
pub fn check_toml(v: &toml::Value) -> Result<(), String> {
    let t = v
        .as_table()
        .ok_or_else(|| format!("must be a table (got {})", v.type_str()))?;
    let mut problems = Vec::new();
    for (k, val) in t {
        let ok = match k.as_str() {
            "objective" | "strategy" => val.is_str(),
            "minimize" | "early_stopping" => val.is_bool(),
            "max_jobs" | "parallel" => val.is_integer(),
            "ranges" => match val.as_table() {
                None => false,
                Some(r) => {
                    for (name, spec) in r {
                        let fine = match spec {
                            toml::Value::String(_) => true,
                            toml::Value::Array(items) => {
                                items.iter().all(|i| scalar_text(i).is_some())
                            }
                            _ => false,
                        };
                        if !fine {
                            problems.push(format!(
                                "`tune.ranges.{name}` must be a string such as \"1e-5..1e-2:log\" or an array of values (got {})",
                                spec.type_str()
                            ));
                        }
                    }
                    true
                }
            },
            _ => {
                problems.push(format!(
                    "unknown key `tune.{k}`; the keys of [tune] are {}",
                    FILE_KEYS.join(", ")
                ));
                continue;
            }
        };
        if !ok {
            let want = match k.as_str() {
                "objective" | "strategy" => "a string",
                "minimize" | "early_stopping" => "true or false",
                "max_jobs" | "parallel" => "a whole number",
                _ => "a table of KEY = \"SPEC\"",
            };
            problems.push(format!(
                "`tune.{k}` must be {want} (got {})",
                val.type_str()
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!("is invalid: {}", problems.join("; ")))
    }
}

// ---- Validation. ----

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    Bayesian,
    Random,
    Grid,
    Hyperband,
}

impl Strategy {
    pub fn api(self) -> &'static str {
        match self {
            Strategy::Bayesian => "Bayesian",
            Strategy::Random => "Random",
            Strategy::Grid => "Grid",
            Strategy::Hyperband => "Hyperband",
        }
    }
}

/// Validated tuning settings. Built only by [`validate`].
#[derive(Debug, Clone, PartialEq)]
pub struct TuneSpec {
    pub ranges: BTreeMap<String, Range>,
    pub objective: String,
    pub minimize: bool,
    pub max_jobs: i32,
    pub parallel: i32,
    pub strategy: Strategy,
    pub early_stopping: bool,
}

fn count(v: &Option<Val<String>>, default: i64, out: &mut Vec<Violation>) -> Option<i64> {
    let Some(val) = v else {
        return Some(default);
    };
    match val.value.trim().parse::<i64>() {
        Ok(n) if (1..=i32::MAX as i64).contains(&n) => Some(n),
        Ok(n) => {
            out.push(Violation::new(
                val.source.name_for(None),
                format!("must be at least 1 (got {n})"),
            ));
            None
        }
        Err(_) => {
            out.push(Violation::new(
                val.source.name_for(None),
                format!("`{}` is not a whole number", val.value),
            ));
            None
        }
    }
}

/// Check the tuning settings against each other and against the training settings they go
/// with (layered, so that both are checked before either is used); every violation together.
pub fn validate(t: &TuneSettings, job: &TrainSettings) -> Result<TuneSpec, Vec<Violation>> {
    let mut v = Vec::new();
    let mut ranges = BTreeMap::new();
    if t.ranges.is_empty() {
        v.push(Violation::new(
            "--range",
            "no hyperparameter to search: add --range KEY=SPEC (e.g. --range learning_rate=1e-5..1e-2:log) or [tune.ranges] in sagetrain.toml",
        ));
    }
    if t.ranges.len() > MAX_RANGES {
        v.push(Violation::new(
            "--range",
            format!(
                "{} hyperparameters to search; the tuner takes at most {MAX_RANGES}",
                t.ranges.len()
            ),
        ));
    }
    if job.environment.len() > MAX_ENVIRONMENT {
        v.push(Violation::new(
            "environment variables",
            format!(
                "{} given; the training jobs of a tuning job take at most {MAX_ENVIRONMENT} (a training job of `train` takes 100)",
                job.environment.len()
            ),
        ));
    }
    for (k, r) in &t.ranges {
        let what = r.source.name_for(Some(k));
        if k.chars().count() > 256 {
            v.push(Violation::new(
                &what,
                "a hyperparameter name has 1-256 characters",
            ));
        }
        if let Some(h) = job.hyperparameters.get(k) {
            v.push(Violation::new(
                &what,
                format!(
                    "`{k}` is also a static hyperparameter (set by {}); the tuner sets a searched one for each trial: remove one of the two",
                    h.source
                ),
            ));
        }
        match parse_range(&r.value) {
            Ok(range) => {
                ranges.insert(k.clone(), range);
            }
            Err(rule) => v.push(Violation::new(&what, rule)),
        }
    }

    let metrics: Vec<&str> = job.metrics.keys().map(String::as_str).collect();
    let objective = match &t.objective {
        Some(o) if job.metrics.contains_key(&o.value) => Some(o.value.clone()),
        Some(o) => {
            v.push(Violation::new(
                o.source.name_for(None),
                if metrics.is_empty() {
                    format!("`{}` is not a metric: no metric is defined; add --metric {}=REGEX (e.g. --metric 'val_dice=val_dice=([0-9.eE+-]+)')", o.value, o.value)
                } else {
                    format!(
                        "`{}` is not one of the metric definitions ({}); the objective must be a --metric name",
                        o.value,
                        metrics.join(", ")
                    )
                },
            ));
            None
        }
        None if metrics.len() == 1 => Some(metrics[0].to_string()),
        None => {
            v.push(Violation::new(
                "--objective",
                if metrics.is_empty() {
                    "no objective: define the metric with --metric NAME=REGEX (e.g. --metric 'val_dice=val_dice=([0-9.eE+-]+)') and name it with --objective NAME".to_string()
                } else {
                    format!("no objective: name one of the metrics ({}) with --objective", metrics.join(", "))
                },
            ));
            None
        }
    };

    let max_jobs = count(&t.max_jobs, DEFAULT_MAX_JOBS, &mut v);
    let parallel = count(&t.parallel, DEFAULT_PARALLEL, &mut v);
    if let (Some(n), Some(m)) = (max_jobs, parallel) {
        if m > n {
            let src = t
                .parallel
                .as_ref()
                .map(|p| p.source.name_for(None))
                .unwrap_or_else(|| "--parallel (default 2)".into());
            v.push(Violation::new(
                src,
                format!("{m} trials at a time is more than the {n} in all (--max-jobs); lower --parallel or raise --max-jobs"),
            ));
        }
    }

    let strategy = match &t.strategy {
        None => Some(Strategy::Bayesian),
        Some(s) => match s.value.trim().to_ascii_lowercase().as_str() {
            "bayesian" => Some(Strategy::Bayesian),
            "random" => Some(Strategy::Random),
            "grid" => Some(Strategy::Grid),
            "hyperband" => Some(Strategy::Hyperband),
            _ => {
                v.push(Violation::new(
                    s.source.name_for(None),
                    format!(
                        "`{}` is not a strategy: bayesian, random, grid or hyperband",
                        s.value
                    ),
                ));
                None
            }
        },
    };
    let early_stopping = t.early_stopping.as_ref().is_some_and(|e| e.value);
    if strategy == Some(Strategy::Grid) {
        for (k, r) in &ranges {
            if !matches!(r, Range::Categorical(_)) {
                let hint = match r {
                    Range::Integer { min, max, .. } if max - min < MAX_VALUES as i64 => format!(
                        "; list the values instead: {k}={}",
                        (*min..=*max).map(|i| i.to_string()).collect::<Vec<_>>().join(",")
                    ),
                    _ => "; list the values to try (e.g. 1e-4,1e-3,1e-2), or use --strategy bayesian or random".into(),
                };
                v.push(Violation::new(
                    t.ranges[k].source.name_for(Some(k)),
                    format!("grid search takes only categorical ranges (lists of values){hint}"),
                ));
            }
        }
    }
    if strategy == Some(Strategy::Hyperband) {
        if let Some(e) = &t.early_stopping {
            if e.value {
                v.push(Violation::new(
                    e.source.name_for(None),
                    "hyperband stops poor trials itself; early stopping must be off with it",
                ));
            }
        }
        if !HYPERBAND_EPOCH_KEYS
            .iter()
            .any(|k| job.hyperparameters.contains_key(*k))
        {
            v.push(Violation::new(
                "--strategy hyperband",
                "hyperband reads the most epochs a trial may run from the static hyperparameter `epochs`: set --epochs N",
            ));
        }
    }
    if let Some(n) = &job.name {
        if let Err(rule) = check_tuning_name(&n.value) {
            v.push(Violation::new(n.source.name_for(None), rule));
        }
    }
    match (objective, max_jobs, parallel, strategy, v.is_empty()) {
        (Some(objective), Some(n), Some(m), Some(strategy), true) => Ok(TuneSpec {
            ranges,
            objective,
            minimize: t.minimize.as_ref().is_some_and(|m| m.value),
            max_jobs: n as i32,
            parallel: m as i32,
            strategy,
            early_stopping,
        }),
        _ => Err(v),
    }
}

/// A tuning job name: 1-32 letters, digits and `-`.
pub fn check_tuning_name(name: &str) -> Result<(), String> {
    const NOT: &str = "is not a valid tuning job name: letters, digits and `-` only, starting and ending with a letter or digit";
    let checked =
        crate::job::spec::check_text(name, "a tuning job name", 1..=MAX_NAME, &TUNING_NAME, NOT);
    match name.len() {
        1..=MAX_NAME => checked,
        _ => checked
            .map_err(|e| format!("{e}; --base-name keeps the timestamp and cuts the base instead")),
    }
}

/// `<base>-<yymmdd-HHMMSS>-<random>` within the tuner's 32 characters: the base is cut so
/// that the timestamp and the 4-character suffix from `submission` survive.
pub fn generate_tuning_name(base: &str, now: SystemTime, submission: &str) -> String {
    // 2026-11-30T11:20:48.123Z -> 261130-112048
    let t = humantime::format_rfc3339_seconds(now).to_string();
    let digits: String = t.chars().filter(char::is_ascii_digit).collect();
    let stamp = format!("{}-{}", &digits[2..8], &digits[8..14]);
    crate::job::spec::fit_name(base, &stamp, submission, MAX_NAME, "tune")
}

// ---- The CreateHyperParameterTuningJob request, with the AWS API's field names. ----

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateTuningJobRequest {
    pub hyper_parameter_tuning_job_name: String,
    pub hyper_parameter_tuning_job_config: TuningJobConfig,
    pub training_job_definition: TrainingJobDefinition,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<Tag>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct TuningJobConfig {
    pub strategy: String,
    pub hyper_parameter_tuning_job_objective: Objective,
    pub resource_limits: ResourceLimits,
    pub parameter_ranges: ParameterRanges,
    pub training_job_early_stopping_type: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Objective {
    #[serde(rename = "Type")]
    pub kind: String,
    pub metric_name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ResourceLimits {
    pub max_number_of_training_jobs: i32,
    pub max_parallel_training_jobs: i32,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ParameterRanges {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub integer_parameter_ranges: Vec<NumericRange>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub continuous_parameter_ranges: Vec<NumericRange>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub categorical_parameter_ranges: Vec<CategoricalRange>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct NumericRange {
    pub name: String,
    pub min_value: String,
    pub max_value: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scaling_type: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct CategoricalRange {
    pub name: String,
    pub values: Vec<String>,
}

/// The training jobs the tuner starts: the CreateTrainingJob request of `train` itself, sent
/// less its name and tags (the tuner names its jobs; the tags are the tuning job's), with its
/// hyperparameters as the static ones. Holding `train`'s request, rather than a copy of its
/// fields, a field added there reaches the tuner too (and the wire test sees it).
#[derive(Debug, Clone, PartialEq)]
pub struct TrainingJobDefinition(pub CreateTrainingJobRequest);

impl Serialize for TrainingJobDefinition {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::Error as _;
        let serde_json::Value::Object(fields) =
            serde_json::to_value(&self.0).map_err(S::Error::custom)?
        else {
            return Err(S::Error::custom("a request serialises as an object"));
        };
        let mut out = serde_json::Map::new();
        if let Some(h) = fields.get("HyperParameters") {
            out.insert("StaticHyperParameters".into(), h.clone());
        }
        for (k, v) in fields {
            if !matches!(k.as_str(), "TrainingJobName" | "HyperParameters" | "Tags") {
                out.insert(k, v);
            }
        }
        out.serialize(s)
    }
}

/// The tuning request: `train`'s request for the trials (`training`, as
/// [`crate::job::request::build_request`] made it), the tuning job's name and the settings.
///
/// Spot trials get no default checkpoint location: the tuner gives every trial the same
/// `CheckpointConfig`, so one location would let a trial resume from another's state. A
/// location given with `--checkpoint-s3` is kept as given.
pub fn build_tuning_request(
    job: &JobSpec,
    t: &TuneSpec,
    name: &str,
    mut training: CreateTrainingJobRequest,
) -> CreateTuningJobRequest {
    if job.checkpoint_s3.is_none() {
        training.checkpoint_config = None;
    }
    let tags = std::mem::take(&mut training.tags);
    let definition = TrainingJobDefinition(training);
    let mut ranges = ParameterRanges::default();
    for (k, r) in &t.ranges {
        let numeric = |min: String, max: String, scaling: &Scaling| NumericRange {
            name: k.clone(),
            min_value: min,
            max_value: max,
            scaling_type: scaling.api().map(str::to_string),
        };
        match r {
            Range::Integer { min, max, scaling } => ranges.integer_parameter_ranges.push(numeric(
                min.to_string(),
                max.to_string(),
                scaling,
            )),
            Range::Continuous { min, max, scaling } => ranges
                .continuous_parameter_ranges
                .push(numeric(min.clone(), max.clone(), scaling)),
            Range::Categorical(values) => {
                ranges.categorical_parameter_ranges.push(CategoricalRange {
                    name: k.clone(),
                    values: values.clone(),
                })
            }
        }
    }
    CreateTuningJobRequest {
        hyper_parameter_tuning_job_name: name.to_string(),
        hyper_parameter_tuning_job_config: TuningJobConfig {
            strategy: t.strategy.api().into(),
            hyper_parameter_tuning_job_objective: Objective {
                kind: if t.minimize { "Minimize" } else { "Maximize" }.into(),
                metric_name: t.objective.clone(),
            },
            resource_limits: ResourceLimits {
                max_number_of_training_jobs: t.max_jobs,
                max_parallel_training_jobs: t.parallel,
            },
            parameter_ranges: ranges,
            training_job_early_stopping_type: if t.early_stopping { "Auto" } else { "Off" }.into(),
        },
        training_job_definition: definition,
        tags,
    }
}

/// Final check of the values that came from lookups, named by their API field.
pub fn validate_tuning_request(r: &CreateTuningJobRequest) -> Vec<Violation> {
    let mut v = crate::job::request::validate_request(&r.training_job_definition.0);
    v.retain(|x| x.what != "TrainingJobName");
    if let Err(rule) = check_tuning_name(&r.hyper_parameter_tuning_job_name) {
        v.push(Violation::new("HyperParameterTuningJobName", rule));
    }
    v
}

/// The SDK call for a request; the training job definition's parts come from the SDK form of
/// `train`'s request ([`crate::job::request::to_sdk`]). A test compares the body the SDK sends
/// with the serde form, field for field.
pub fn to_sdk(
    client: &Client,
    r: &CreateTuningJobRequest,
) -> aws_sdk_sagemaker::operation::create_hyper_parameter_tuning_job::builders::CreateHyperParameterTuningJobFluentBuilder
{
    let training = crate::job::request::to_sdk(client, &r.training_job_definition.0);
    let t = training.as_input().clone();
    let a = t.get_algorithm_specification().as_ref();
    let metrics = a
        .map(|a| a.metric_definitions().to_vec())
        .unwrap_or_default();
    let algo = sm::HyperParameterAlgorithmSpecification::builder()
        .set_training_image(a.and_then(|a| a.training_image()).map(str::to_string))
        .set_training_input_mode(a.and_then(|a| a.training_input_mode()).cloned())
        .set_metric_definitions((!metrics.is_empty()).then_some(metrics))
        .build();
    let d = &r.training_job_definition.0;
    let definition = sm::HyperParameterTrainingJobDefinition::builder()
        .set_static_hyper_parameters(t.get_hyper_parameters().clone().filter(|h| !h.is_empty()))
        .algorithm_specification(algo)
        .set_role_arn(t.get_role_arn().clone())
        .set_input_data_config(t.get_input_data_config().clone().filter(|c| !c.is_empty()))
        .set_vpc_config(t.get_vpc_config().clone())
        .set_output_data_config(t.get_output_data_config().clone())
        .set_resource_config(t.get_resource_config().clone())
        .set_stopping_condition(t.get_stopping_condition().clone())
        .set_enable_network_isolation(d.enable_network_isolation.then_some(true))
        .set_enable_managed_spot_training(d.enable_managed_spot_training.then_some(true))
        .set_checkpoint_config(t.get_checkpoint_config().clone())
        .set_environment(t.get_environment().clone().filter(|e| !e.is_empty()))
        .set_retry_strategy(t.get_retry_strategy().clone())
        .build();
    let c = &r.hyper_parameter_tuning_job_config;
    let scaling = |n: &NumericRange| {
        n.scaling_type
            .as_deref()
            .map(sm::HyperParameterScalingType::from)
    };
    let mut ranges = sm::ParameterRanges::builder();
    // Integer and continuous ranges have the same fields, in types of their own.
    macro_rules! numeric {
        ($list:expr, $add:ident, $ty:ident) => {
            for n in $list {
                ranges = ranges.$add(
                    sm::$ty::builder()
                        .name(&n.name)
                        .min_value(&n.min_value)
                        .max_value(&n.max_value)
                        .set_scaling_type(scaling(n))
                        .build(),
                );
            }
        };
    }
    numeric!(
        &c.parameter_ranges.integer_parameter_ranges,
        integer_parameter_ranges,
        IntegerParameterRange
    );
    numeric!(
        &c.parameter_ranges.continuous_parameter_ranges,
        continuous_parameter_ranges,
        ContinuousParameterRange
    );
    for cat in &c.parameter_ranges.categorical_parameter_ranges {
        ranges = ranges.categorical_parameter_ranges(
            sm::CategoricalParameterRange::builder()
                .name(&cat.name)
                .set_values(Some(cat.values.clone()))
                .build(),
        );
    }
    let o = &c.hyper_parameter_tuning_job_objective;
    let config = sm::HyperParameterTuningJobConfig::builder()
        .strategy(sm::HyperParameterTuningJobStrategyType::from(
            c.strategy.as_str(),
        ))
        .hyper_parameter_tuning_job_objective(
            sm::HyperParameterTuningJobObjective::builder()
                .r#type(sm::HyperParameterTuningJobObjectiveType::from(
                    o.kind.as_str(),
                ))
                .metric_name(&o.metric_name)
                .build(),
        )
        .resource_limits(
            sm::ResourceLimits::builder()
                .max_number_of_training_jobs(c.resource_limits.max_number_of_training_jobs)
                .max_parallel_training_jobs(c.resource_limits.max_parallel_training_jobs)
                .build(),
        )
        .parameter_ranges(ranges.build())
        .training_job_early_stopping_type(sm::TrainingJobEarlyStoppingType::from(
            c.training_job_early_stopping_type.as_str(),
        ))
        .build();
    let mut b = client
        .create_hyper_parameter_tuning_job()
        .hyper_parameter_tuning_job_name(&r.hyper_parameter_tuning_job_name)
        .hyper_parameter_tuning_job_config(config)
        .training_job_definition(definition);
    for tag in &r.tags {
        b = b.tags(sm::Tag::builder().key(&tag.key).value(&tag.value).build());
    }
    b
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::job::settings::{TrainArgs, TrainSettings};
    use crate::job::spec::tests::valid_args;
    use std::path::Path;
    use std::time::{Duration, UNIX_EPOCH};

    fn settings_of(args: TrainArgs) -> TrainSettings {
        let g = crate::cli::GlobalArgs {
            region: Some("eu-west-1".into()),
            ..Default::default()
        };
        TrainSettings::layer(&g, &args, &|_| None, None).unwrap()
    }

    fn spec_of(args: TrainArgs) -> JobSpec {
        crate::job::spec::validate(&settings_of(args), Path::new("/")).unwrap()
    }

    fn with_metric() -> TrainArgs {
        let mut a = valid_args();
        a.metrics = vec!["val_dice=val_dice=([0-9.eE+-]+)".into()];
        a
    }

    fn tune(args: &[&str]) -> TuneArgs {
        #[derive(clap::Parser)]
        struct P {
            #[command(flatten)]
            t: TuneArgs,
        }
        let mut argv = vec!["x"];
        argv.extend(args);
        <P as clap::Parser>::try_parse_from(argv).unwrap().t
    }

    fn check(train: TrainArgs, args: &[&str]) -> Result<TuneSpec, Vec<String>> {
        let t = TuneSettings::layer(&tune(args), None)
            .map_err(|v| v.iter().map(|x| x.to_string()).collect::<Vec<_>>())?;
        validate(&t, &settings_of(train)).map_err(|v| v.iter().map(|x| x.to_string()).collect())
    }

    /// `check` refuses it, the first violation starting with `start`: all the violations.
    fn refused(train: TrainArgs, args: &[&str], start: &str) -> Vec<String> {
        let v = check(train, args).unwrap_err();
        assert!(v[0].starts_with(start), "{v:#?}");
        v
    }

    fn spec(s: &str) -> Result<Range, String> {
        parse_range(&RangeInput::Spec(s.into()))
    }

    #[test]
    fn the_range_forms() {
        assert_eq!(
            spec("1e-5..1e-2").unwrap(),
            Range::Continuous {
                min: "1e-5".into(),
                max: "1e-2".into(),
                scaling: Scaling::Auto
            }
        );
        assert_eq!(
            spec("1e-5..1e-2:log").unwrap(),
            Range::Continuous {
                min: "1e-5".into(),
                max: "1e-2".into(),
                scaling: Scaling::Logarithmic
            }
        );
        assert_eq!(
            spec("2..6").unwrap(),
            Range::Integer {
                min: 2,
                max: 6,
                scaling: Scaling::Auto
            }
        );
        assert_eq!(
            spec("0.0..1").unwrap(),
            Range::Continuous {
                min: "0.0".into(),
                max: "1".into(),
                scaling: Scaling::Auto
            }
        );
        assert_eq!(
            spec("8,16,32").unwrap(),
            Range::Categorical(vec!["8".into(), "16".into(), "32".into()])
        );
        assert_eq!(
            spec("adam, sgd").unwrap(),
            Range::Categorical(vec!["adam".into(), "sgd".into()])
        );
        assert_eq!(
            parse_range(&RangeInput::Values(vec!["a".into(), "b".into()])).unwrap(),
            Range::Categorical(vec!["a".into(), "b".into()])
        );
        assert_eq!(
            spec("0.5..0.99:reverse-log").unwrap(),
            Range::Continuous {
                min: "0.5".into(),
                max: "0.99".into(),
                scaling: Scaling::ReverseLogarithmic
            }
        );
    }

    #[test]
    fn empty_reversed_and_log_to_zero_ranges_are_refused() {
        assert!(spec("1e-2..1e-5")
            .unwrap_err()
            .contains("empty or reversed"));
        assert!(spec("3..3").unwrap_err().contains("empty or reversed"));
        assert!(spec("0..1e-2:log").unwrap_err().contains("above 0"));
        assert!(spec("-1..1:log").unwrap_err().contains("above 0"));
        assert!(spec("1..x").unwrap_err().contains("`x` is not a number"));
        assert!(spec("1..").unwrap_err().contains("lacks a bound"));
        assert!(spec("1..2:cubic").unwrap_err().contains("unknown scale"));
        assert!(spec("8").unwrap_err().contains("is not a range"));
        assert!(spec("8,8").unwrap_err().contains("twice"));
        assert!(spec("8,").unwrap_err().contains("empty value"));
        assert!(spec("1..5:reverse-log").unwrap_err().contains("continuous"));
        let many: Vec<String> = (0..31).map(|i| i.to_string()).collect();
        assert!(spec(&many.join(",")).unwrap_err().contains("at most 30"));
    }

    #[test]
    fn defaults_are_bayesian_maximize_ten_jobs_two_at_a_time() {
        let t = check(with_metric(), &["--range", "learning_rate=1e-5..1e-2:log"]).unwrap();
        assert_eq!(
            t.objective, "val_dice",
            "the only metric is the default objective"
        );
        assert!(!t.minimize);
        assert_eq!((t.max_jobs, t.parallel), (10, 2));
        assert_eq!(t.strategy, Strategy::Bayesian);
        assert!(!t.early_stopping);
    }

    #[test]
    fn each_rule_names_its_flag_and_all_come_together() {
        let mut train = with_metric();
        train.hyperparameters = vec!["batch_size=8".into()];
        let v = check(
            train,
            &[
                "--range",
                "learning_rate=1e-2..1e-5",
                "--range",
                "dropout=0..0.5:log",
                "--range",
                "batch_size=8,16",
                "--objective",
                "val_loss",
                "--max-jobs",
                "3",
                "--parallel",
                "4",
            ],
        )
        .unwrap_err();
        assert_eq!(v.len(), 5, "{v:#?}");
        assert!(v[0].starts_with("--range batch_size: `batch_size` is also a static hyperparameter (set by flag --hyperparameter)"), "{v:#?}");
        assert!(
            v[1].starts_with("--range dropout:") && v[1].contains("above 0"),
            "{v:#?}"
        );
        assert!(
            v[2].starts_with("--range learning_rate:") && v[2].contains("reversed"),
            "{v:#?}"
        );
        assert!(
            v[3].starts_with(
                "--objective: `val_loss` is not one of the metric definitions (val_dice)"
            ),
            "{v:#?}"
        );
        assert!(
            v[4].starts_with("--parallel: 4 trials at a time is more than the 3"),
            "{v:#?}"
        );
    }

    #[test]
    fn an_objective_needs_a_metric() {
        refused(
            valid_args(),
            &["--range", "lr=1e-5..1e-2"],
            "--objective: no objective: define the metric with --metric",
        );
        let v = check(
            valid_args(),
            &["--range", "lr=1e-5..1e-2", "--objective", "val_dice"],
        )
        .unwrap_err();
        assert!(v[0].contains("no metric is defined"), "{v:?}");
        let mut two = with_metric();
        two.metrics.push("val_loss=val_loss=([0-9.]+)".into());
        let v = check(two.clone(), &["--range", "lr=1e-5..1e-2"]).unwrap_err();
        assert!(v[0].contains("val_dice, val_loss"), "{v:?}");
        let t = check(
            two,
            &[
                "--range",
                "lr=1e-5..1e-2",
                "--objective",
                "val_loss",
                "--minimize",
            ],
        )
        .unwrap();
        assert_eq!((t.objective.as_str(), t.minimize), ("val_loss", true));
    }

    #[test]
    fn grid_takes_only_categorical_ranges() {
        let v = check(
            with_metric(),
            &[
                "--strategy",
                "grid",
                "--range",
                "lr=1e-5..1e-2",
                "--range",
                "depth=2..4",
                "--range",
                "bs=8,16",
            ],
        )
        .unwrap_err();
        assert_eq!(v.len(), 2, "{v:?}");
        assert!(
            v[0].starts_with("--range depth: grid search takes only categorical ranges")
                && v[0].contains("depth=2,3,4"),
            "{v:?}"
        );
        assert!(
            v[1].starts_with("--range lr: grid search takes only categorical ranges"),
            "{v:?}"
        );
        assert!(check(with_metric(), &["--strategy", "GRID", "--range", "bs=8,16"]).is_ok());
    }

    #[test]
    fn hyperband_needs_epochs_and_no_early_stopping() {
        let mut no_epochs = with_metric();
        no_epochs.epochs = None;
        let v = refused(
            no_epochs,
            &[
                "--strategy",
                "hyperband",
                "--early-stopping",
                "--range",
                "lr=1e-5..1e-2",
            ],
            "--early-stopping: hyperband stops poor trials itself",
        );
        assert_eq!(v.len(), 2, "{v:?}");
        assert!(v[1].contains("set --epochs N"), "{v:?}");
        assert!(check(
            with_metric(),
            &["--strategy", "hyperband", "--range", "lr=1e-5..1e-2"]
        )
        .is_ok());
        refused(
            with_metric(),
            &["--strategy", "annealing", "--range", "lr=1e-5..1e-2"],
            "--strategy: `annealing` is not a strategy",
        );
    }

    #[test]
    fn counts_no_range_and_bad_flags() {
        let v = check(
            with_metric(),
            &["--max-jobs", "0", "--parallel", "two", "--range", "nokey"],
        )
        .unwrap_err();
        assert_eq!(
            v,
            ["--range: `nokey` is not KEY=SPEC (e.g. learning_rate=1e-5..1e-2:log)"]
        );
        let v = refused(
            with_metric(),
            &["--max-jobs", "0", "--parallel", "two"],
            "--range: no hyperparameter to search",
        );
        assert_eq!(v.len(), 3, "{v:?}");
        assert_eq!(v[1], "--max-jobs: must be at least 1 (got 0)");
        assert_eq!(v[2], "--parallel: `two` is not a whole number");
        refused(
            with_metric(),
            &["--max-jobs", "1", "--range", "lr=1e-5..1e-2"],
            "--parallel (default 2): 2 trials at a time is more than the 1",
        );
    }

    #[test]
    fn the_tuner_name_limit() {
        let mut named = with_metric();
        named.name = Some("unet-vessels-learning-rate-sweep-1".into());
        refused(
            named,
            &["--range", "lr=1e-5..1e-2"],
            "--name: a tuning job name has 1-32 characters (got 34)",
        );
        let now = UNIX_EPOCH + Duration::from_millis(1_795_000_000_123);
        let n = generate_tuning_name("unetvesselssegmentation", now, "ab12cd");
        assert_eq!(n.len(), 32, "{n}");
        assert_eq!(n, "unetvesselsse-261118-110640-ab12");
        assert!(check_tuning_name(&n).is_ok());
        // A cut that ends in `-` drops it.
        let n = generate_tuning_name("unet-vessels-segmentation", now, "ab12cd");
        assert!(n.starts_with("unet-vessels-2") && n.len() == 31, "{n}");
        let short = generate_tuning_name("unet", now, "ab12cd");
        assert!(short.starts_with("unet-") && short.len() < 32, "{short}");
        let stamp = &short["unet-".len()..short.len() - "-ab12".len()];
        assert_eq!(stamp.len(), 13, "{short}");
        assert_eq!(
            generate_tuning_name("__", now, "ab12")[..5].to_string(),
            "tune-"
        );
        // Runs in the same second get different names.
        assert_ne!(
            generate_tuning_name("unet", now, "aaaa"),
            generate_tuning_name("unet", now, "bbbb")
        );
    }

    #[test]
    fn the_tune_table_is_checked_and_layered_under_the_flags() {
        let text = "[tune]\nobjective = \"val_dice\"\nmax_jobs = 20\nparallel = 4\nstrategy = \"random\"\nearly_stopping = true\nminimize = true\n[tune.ranges]\nlearning_rate = \"1e-5..1e-2:log\"\nbatch_size = [8, 16]\n";
        let f = LoadedFile::parse(Path::new("/p/sagetrain.toml"), text).unwrap();
        crate::job::settings::check_file(&f).unwrap();
        let s = TuneSettings::layer(
            &tune(&["--parallel", "5", "--maximize", "--range", "batch_size=2,4"]),
            Some(&f),
        )
        .unwrap();
        let t = validate(&s, &settings_of(with_metric())).unwrap();
        assert_eq!((t.max_jobs, t.parallel), (20, 5));
        assert!(!t.minimize, "--maximize beats the file");
        assert_eq!(t.strategy, Strategy::Random);
        assert!(t.early_stopping);
        assert_eq!(
            t.ranges["batch_size"],
            Range::Categorical(vec!["2".into(), "4".into()])
        );
        assert_eq!(
            s.ranges["learning_rate"].source,
            Source::file(Path::new("/p/sagetrain.toml"), "tune.ranges.learning_rate")
        );

        let bad = LoadedFile::parse(
            Path::new("/p/sagetrain.toml"),
            "[tune]\nmax_jobs = \"ten\"\nsweep = 1\n[tune.ranges]\nlr = 3\n",
        )
        .unwrap();
        let e = crate::job::settings::check_file(&bad).unwrap_err();
        let text = e.message;
        crate::testing::assert_contains_all(
            &text,
            &[
                "`tune.max_jobs` must be a whole number",
                "unknown key `tune.sweep`",
                "`tune.ranges.lr` must be a string",
            ],
        );
        // From the file, a violation names the file's key.
        let f = LoadedFile::parse(
            Path::new("/p/sagetrain.toml"),
            "[tune]\nparallel = 0\n[tune.ranges]\nlr = \"2..1\"\n",
        )
        .unwrap();
        let s = TuneSettings::layer(&TuneArgs::default(), Some(&f)).unwrap();
        let v: Vec<String> = validate(&s, &settings_of(with_metric()))
            .unwrap_err()
            .iter()
            .map(|x| x.to_string())
            .collect();
        assert!(
            v[0].starts_with("`tune.ranges.lr` in /p/sagetrain.toml:"),
            "{v:?}"
        );
        assert!(
            v[1].starts_with("`tune.parallel` in /p/sagetrain.toml: must be at least 1"),
            "{v:?}"
        );
    }

    /// Tuning settings at their limits over the training settings `job` (whose first metric is
    /// the objective): as many ranges as the tuner takes, of each kind, and a categorical range
    /// with as many values as allowed.
    /// The service takes 48 environment variables in a tuning job's training jobs, not 100.
    #[test]
    fn a_tuning_job_takes_at_most_48_environment_variables() {
        let with_env = |n: usize| {
            let mut a = with_metric();
            a.environment = (0..n).map(|i| format!("V{i}=x")).collect();
            check(a, &["--range", "learning_rate=1e-5..1e-2:log"])
        };
        assert!(with_env(MAX_ENVIRONMENT).is_ok());
        let v = with_env(MAX_ENVIRONMENT + 1).unwrap_err();
        assert_eq!(
            v,
            ["environment variables: 49 given; the training jobs of a tuning job take at most 48 (a training job of `train` takes 100)"]
        );
    }

    pub(crate) fn at_limits(job: &TrainSettings) -> TuneSpec {
        let mut argv: Vec<String> = Vec::new();
        let per_kind = MAX_RANGES / 3;
        for i in 0..per_kind {
            argv.extend(["--range".into(), format!("int{i}=1..{}", 1000 + i)]);
            argv.extend(["--range".into(), format!("cont{i}=1e-5..1e-1:log")]);
        }
        let values: Vec<String> = (0..MAX_VALUES).map(|v| format!("v{v}")).collect();
        argv.extend(["--range".into(), format!("cat0={}", values.join(","))]);
        for i in 1..MAX_RANGES - 2 * per_kind {
            argv.extend(["--range".into(), format!("cat{i}=a,b")]);
        }
        let objective = job.metrics.keys().next().expect("a metric").clone();
        argv.extend(["--objective".into(), objective]);
        argv.extend([
            "--max-jobs".into(),
            "500".into(),
            "--parallel".into(),
            "100".into(),
        ]);
        let args: Vec<&str> = argv.iter().map(String::as_str).collect();
        let t = TuneSettings::layer(&tune(&args), None).unwrap();
        validate(&t, job)
            .unwrap_or_else(|v| panic!("tune settings at their limits are refused: {v:#?}"))
    }

    pub(crate) fn sample() -> CreateTuningJobRequest {
        let args = crate::job::request::tests::every_field_args();
        let settings = settings_of(args.clone());
        let job = spec_of(args);
        let t = TuneSettings::layer(
            &tune(&[
                "--range",
                "weight_decay=1e-5..1e-2:log",
                "--range",
                "depth=2..6",
                "--range",
                "batch_size=8,16,32",
                "--early-stopping",
                "--minimize",
                "--max-jobs",
                "12",
                "--parallel",
                "3",
            ]),
            None,
        )
        .unwrap();
        let t = validate(&t, &settings).unwrap();
        let resolved = crate::job::request::tests::resolved(&job);
        let training = crate::job::request::build_request(&job, &resolved);
        build_tuning_request(&job, &t, "unet-261130-112048-0123", training)
    }

    #[test]
    fn the_request_has_the_api_field_names() {
        let r = sample();
        assert!(validate_tuning_request(&r).is_empty());
        let json = serde_json::to_value(&r).unwrap();
        let c = &json["HyperParameterTuningJobConfig"];
        assert_eq!(c["Strategy"], "Bayesian");
        assert_eq!(
            c["HyperParameterTuningJobObjective"],
            serde_json::json!({"Type": "Minimize", "MetricName": "val_dice"})
        );
        assert_eq!(
            c["ResourceLimits"],
            serde_json::json!({"MaxNumberOfTrainingJobs": 12, "MaxParallelTrainingJobs": 3})
        );
        assert_eq!(c["TrainingJobEarlyStoppingType"], "Auto");
        assert_eq!(
            c["ParameterRanges"],
            serde_json::json!({
                "IntegerParameterRanges": [{"Name": "depth", "MinValue": "2", "MaxValue": "6"}],
                "ContinuousParameterRanges": [{"Name": "weight_decay", "MinValue": "1e-5", "MaxValue": "1e-2", "ScalingType": "Logarithmic"}],
                "CategoricalParameterRanges": [{"Name": "batch_size", "Values": ["8", "16", "32"]}],
            })
        );
        let d = &json["TrainingJobDefinition"];
        assert_eq!(
            d["StaticHyperParameters"],
            serde_json::json!({"epochs": "50", "learning_rate": "0.0001"})
        );
        assert!(d.get("TrainingJobName").is_none() && d.get("Tags").is_none());
        assert_eq!(d["CheckpointConfig"]["S3Uri"], "s3://my-bucket/ck/");
        assert_eq!(
            json["Tags"][1],
            serde_json::json!({"Key": crate::job::request::SUBMISSION_TAG, "Value": "0123456789abcdef"})
        );
    }

    #[test]
    fn spot_trials_get_no_shared_default_checkpoint() {
        let mut args = with_metric();
        args.spot = true;
        let job = spec_of(args.clone());
        let t = validate(
            &TuneSettings::layer(&tune(&["--range", "lr=1e-5..1e-2"]), None).unwrap(),
            &settings_of(args),
        )
        .unwrap();
        let resolved = crate::job::request::tests::resolved(&job);
        let training = crate::job::request::build_request(&job, &resolved);
        assert!(training.checkpoint_config.is_some(), "train would set one");
        let r = build_tuning_request(&job, &t, "unet-1", training);
        assert_eq!(r.training_job_definition.0.checkpoint_config, None);
        assert!(r.training_job_definition.0.enable_managed_spot_training);
    }

    /// A request with every field set: the body the SDK sends is the serde form, field for field.
    #[tokio::test]
    async fn the_sdk_sends_exactly_the_serde_form() {
        let req = sample();
        let expected = serde_json::to_value(&req).unwrap();
        let (client, rx) = crate::job::request::tests::capturing_client();
        let _ = to_sdk(&client, &req).send().await;
        let body = crate::job::request::tests::sent_body(rx);
        assert_eq!(body, expected);
        let d = &body["TrainingJobDefinition"];
        for field in [
            "StaticHyperParameters",
            "Environment",
            "VpcConfig",
            "CheckpointConfig",
            "EnableNetworkIsolation",
            "EnableManagedSpotTraining",
            "InputDataConfig",
        ] {
            assert!(d.get(field).is_some(), "{field} missing from {d}");
        }
        assert_eq!(d["ResourceConfig"]["VolumeKmsKeyId"], "alias/unet");
        assert_eq!(
            d["AlgorithmSpecification"]["MetricDefinitions"][0]["Name"],
            "val_dice"
        );
    }
}
