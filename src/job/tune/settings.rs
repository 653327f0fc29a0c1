//! Every setting `sagetrain tune` adds to `train`'s, declared once: its flag, its key in the
//! `[tune]` section of `sagetrain.toml` (the ranges in `[tune.ranges]`), its default and an
//! example. The flags, the file check, the layering with sources, the rows of `sagetrain
//! config` and the commented `[tune]` section of `sagetrain init` follow from the list below;
//! the rules are in [`super::spec::validate`].

use super::range::RangeInput;
use super::TUNING;
use crate::config::layer::{declare, section_problems, Count, Kind, Switch, Text};
use crate::config::{LoadedFile, Source, Val, Violation};

/// The section of `sagetrain.toml` that holds them.
pub const SECTION: &str = "tune";

/// A range as given: the text of a flag or a file string, or a file array of values
/// (categorical); [`super::range::parse_range`] reads it.
pub struct RangeSpec;
impl Kind for RangeSpec {
    type Value = RangeInput;
    const TOML: &'static str = "a string such as \"1e-5..1e-2:log\" or an array of values";
    fn from_text(text: &str) -> Result<RangeInput, String> {
        Ok(RangeInput::Spec(text.to_string()))
    }
    fn from_toml(v: &toml::Value) -> Result<RangeInput, String> {
        let scalar = |v: &toml::Value| match v {
            toml::Value::Array(_) | toml::Value::Table(_) => None,
            other => crate::config::layer::plain(other),
        };
        match v {
            toml::Value::String(s) => Ok(RangeInput::Spec(s.clone())),
            toml::Value::Array(items) if items.iter().all(|i| scalar(i).is_some()) => Ok(
                RangeInput::Values(items.iter().filter_map(scalar).collect()),
            ),
            other => Err(format!("must be {} (got {})", Self::TOML, other.type_str())),
        }
    }
    fn show(v: &RangeInput) -> String {
        match v {
            RangeInput::Spec(s) => s.clone(),
            RangeInput::Values(v) => v.join(","),
        }
    }
}

declare! {
    /// The flags `tune` adds to those of `train`.
    args TuneArgs {
        /// Look for the largest objective value (the default)
        #[arg(long, conflicts_with = "minimize", help_heading = TUNING)]
        pub maximize: bool,
    }
    /// The tuning settings, layered flag > `[tune]` in sagetrain.toml > default, with sources.
    settings TuneSettings {}
    job ();
    file_section Some(SECTION);
    scalars {
        /// The metric to optimise: the name of a --metric definition [default: the only one]
        objective: Option<String> = Text [long = "objective", value_name = "METRIC"] in TUNING {
            example: "\"val_dice\"",
        }
        /// Look for the smallest objective value (a loss); --maximize for the largest (the default)
        minimize: bool = Switch [long = "minimize"] in TUNING {
            default: Some("false"),
            example: "true",
        }
        /// Training jobs in all [default: 10]
        max_jobs: Option<String> = Count [long = "max-jobs", value_name = "N"] in TUNING {
            default: Some("10"),
            example: "20",
        }
        /// Training jobs at a time, at most --max-jobs [default: 2]
        parallel: Option<String> = Count [long = "parallel", value_name = "M"] in TUNING {
            default: Some("2"),
            example: "4",
        }
        /// How the next trials are chosen: bayesian, random, grid (categorical ranges only), hyperband [default: bayesian]
        strategy: Option<String> = Text [long = "strategy", value_name = "STRATEGY"] in TUNING {
            default: Some("bayesian"),
            example: "\"random\"",
        }
        /// Let the tuner stop trials that are unlikely to beat the best so far (not with hyperband, which has its own)
        early_stopping: bool = Switch [long = "early-stopping"] in TUNING {
            default: Some("false"),
            example: "true",
        }
    }
    maps {
        /// A hyperparameter to search, KEY=SPEC (repeatable): 1e-5..1e-2 continuous, 1e-5..1e-2:log logarithmic, 2..6 integer, 8,16,32 categorical
        ranges = RangeSpec [long = "range", value_name = "KEY=SPEC"] in TUNING {
            form: "KEY=SPEC (e.g. learning_rate=1e-5..1e-2:log)",
            example: &[("learning_rate", "\"1e-5..1e-2:log\""), ("batch_size", "[8, 16, 32]")],
        }
    }
}

impl TuneSettings {
    /// Layer the flags over the `[tune]` section over the defaults (`--maximize` turns
    /// `minimize` off). Flags that are not `KEY=SPEC` are violations.
    pub fn layer(
        args: &TuneArgs,
        file: Option<&LoadedFile>,
    ) -> std::result::Result<TuneSettings, Vec<Violation>> {
        let mut s = TuneSettings::layered(args, &|_| None, file)?;
        if args.maximize {
            s.minimize = Some(Val::new(false, Source::Flag("--maximize")));
        }
        Ok(s)
    }
}

/// The file check of the `[tune]` section: its keys and their types, every problem together.
/// `Err` names the rule.
pub fn check_section(v: &toml::Value) -> Result<(), String> {
    let keys: Vec<String> = scalars()
        .iter()
        .map(|m| m.key.to_string())
        .chain(maps().iter().map(|m| m.key.to_string()))
        .collect();
    section_problems(SECTION, v, check_key, &keys)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::tune::range::Range;
    use crate::job::tune::spec::{validate, Strategy};
    use crate::job::tune::tests::{settings_of, tune, with_metric};
    use std::path::Path;

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
}
