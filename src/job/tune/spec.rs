//! The rules of a tuning job: the settings checked against each other and against the
//! training settings they go with ([`validate`]), and the tuner's names.

use super::range::{parse_range, Range};
use super::settings::TuneSettings;
use super::{
    DEFAULT_MAX_JOBS, DEFAULT_PARALLEL, MAX_ENVIRONMENT, MAX_NAME, MAX_RANGES, MAX_VALUES,
};
use crate::config::{Source, Val, Violation};
use crate::job::settings::TrainSettings;
use regex::Regex;
use std::collections::BTreeMap;
use std::sync::LazyLock;
use std::time::SystemTime;

/// The static hyperparameters Hyperband reads its maximum resource (epochs) from.
const HYPERBAND_EPOCH_KEYS: &[&str] =
    &["epochs", "numepochs", "n-epochs", "n_epochs", "num_epochs"];

pub(crate) static TUNING_NAME: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,31}$").expect("valid regex"));

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
    // Each --secret is one more variable.
    let variables = job.environment.len() + job.secrets.len();
    if variables > MAX_ENVIRONMENT {
        v.push(Violation::new(
            "environment variables",
            format!(
                "{variables} given; the training jobs of a tuning job take at most {MAX_ENVIRONMENT} (a training job of `train` takes 100)"
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
                .filter(|p| p.source != Source::Default)
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

#[cfg(test)]
mod tests {
    use super::*;

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
    use crate::job::spec::tests::valid_args;
    use crate::job::tune::tests::{check, refused, with_metric};
    use std::time::{Duration, UNIX_EPOCH};

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
}
