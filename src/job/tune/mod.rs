//! The pure part of `sagetrain tune`, split the way `train`'s is: its settings, declared once
//! (the flags and the `[tune]` section of `sagetrain.toml`: [`settings`]), the range grammar
//! ([`range`]), the rules of CreateHyperParameterTuningJob and the tuner's 32-character names
//! ([`spec`]), and the request: its serde form (what `--dry-run` prints, with the API's field
//! names) and its SDK form ([`request`]). The training job definition is made from the
//! CreateTrainingJob request that `train` would send ([`crate::job::request`]), so the two
//! commands share every setting, lookup and rule.

pub mod range;
pub mod request;
pub mod settings;
pub mod spec;

pub use request::{build_tuning_request, to_sdk, validate_tuning_request};
pub use settings::{TuneArgs, TuneSettings};
pub use spec::{check_tuning_name, generate_tuning_name, validate};

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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::job::settings::{TrainArgs, TrainSettings};
    use crate::job::spec::tests::valid_args;
    use crate::job::spec::JobSpec;
    use range::{parse_range, Range, RangeInput};
    use spec::TuneSpec;
    use std::path::Path;

    pub(crate) fn settings_of(args: TrainArgs) -> TrainSettings {
        let g = crate::aws::connection::ConnectionArgs {
            region: Some("eu-west-1".into()),
            ..Default::default()
        };
        TrainSettings::layer(&g, &args, &|_| None, None).unwrap()
    }

    pub(crate) fn spec_of(args: TrainArgs) -> JobSpec {
        crate::job::spec::validate(&settings_of(args), Path::new("/")).unwrap()
    }

    pub(crate) fn with_metric() -> TrainArgs {
        let mut a = valid_args();
        a.metrics = vec!["val_dice=val_dice=([0-9.eE+-]+)".into()];
        a
    }

    pub(crate) fn tune(args: &[&str]) -> TuneArgs {
        #[derive(clap::Parser)]
        struct P {
            #[command(flatten)]
            t: TuneArgs,
        }
        let mut argv = vec!["x"];
        argv.extend(args);
        <P as clap::Parser>::try_parse_from(argv).unwrap().t
    }

    pub(crate) fn check(train: TrainArgs, args: &[&str]) -> Result<TuneSpec, Vec<String>> {
        let t = TuneSettings::layer(&tune(args), None)
            .map_err(|v| v.iter().map(|x| x.to_string()).collect::<Vec<_>>())?;
        validate(&t, &settings_of(train)).map_err(|v| v.iter().map(|x| x.to_string()).collect())
    }

    /// `check` refuses it, the first violation starting with `start`: all the violations.
    pub(crate) fn refused(train: TrainArgs, args: &[&str], start: &str) -> Vec<String> {
        let v = check(train, args).unwrap_err();
        assert!(v[0].starts_with(start), "{v:#?}");
        v
    }

    pub(crate) fn spec(s: &str) -> Result<Range, String> {
        parse_range(&RangeInput::Spec(s.into()))
    }

    /// Tuning settings at their limits over the training settings `job` (whose first metric is
    /// the objective): as many ranges as the tuner takes, of each kind, and a categorical range
    /// with as many values as allowed.
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
}
