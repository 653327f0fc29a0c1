//! The range grammar of `--range` and `[tune.ranges]`: `1e-5..1e-2` continuous,
//! `1e-5..1e-2:log` logarithmic, `2..6` integer, `8,16,32` categorical.

use super::MAX_VALUES;

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
    pub fn api(self) -> Option<&'static str> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::tune::tests::spec;

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
}
