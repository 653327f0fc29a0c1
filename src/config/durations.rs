//! Durations as users write them, parsed and shown in one way for every setting and message.
//!
//! Accepted: a number of seconds (`3600`, `1.5`), or humantime's units (`500ms`, `90m`,
//! `1h30m`, `24h`, `1h 30m`). Each setting then states its own bounds (a job's maximum run time
//! is whole seconds; a read timeout may be `1.5`).

use std::time::Duration;

/// Parse a duration; the error is the rule, for a [`crate::config::Violation`].
pub fn parse(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    if let Ok(secs) = t.parse::<f64>() {
        if !secs.is_finite() || !(0.0..=1e9).contains(&secs) {
            return Err(format!("`{text}` is not a duration"));
        }
        return Ok(Duration::from_secs_f64(secs));
    }
    humantime::parse_duration(t)
        .map_err(|e| format!("`{text}` is not a duration ({e}); use e.g. 90m, 24h or 3600"))
}

/// Parse a duration that must be a whole number of seconds (what the SageMaker API takes).
pub fn parse_whole_secs(text: &str) -> Result<u64, String> {
    let d = parse(text)?;
    if d.subsec_nanos() != 0 {
        return Err(format!(
            "`{text}` is not a whole number of seconds; use e.g. 90m, 24h or 3600"
        ));
    }
    Ok(d.as_secs())
}

/// Show a duration compactly: `5s`, `2m05s`, `1h02m03s`, `24h`, `1h30m`, `250ms`, `1.5s`.
pub fn format(d: Duration) -> String {
    let secs = d.as_secs();
    let ms = d.subsec_millis();
    if secs == 0 && ms > 0 {
        return format!("{ms}ms");
    }
    if secs < 60 && ms > 0 {
        return format!("{}s", trim_float(d.as_secs_f64()));
    }
    format_secs(secs)
}

/// [`format`] of a whole number of seconds.
pub fn format_secs(secs: u64) -> String {
    let (h, m, s) = (secs / 3600, (secs % 3600) / 60, secs % 60);
    match (h, m, s) {
        (0, 0, s) => format!("{s}s"),
        (0, m, 0) => format!("{m}m"),
        (0, m, s) => format!("{m}m{s:02}s"),
        (h, 0, 0) => format!("{h}h"),
        (h, m, 0) => format!("{h}h{m:02}m"),
        (h, m, s) => format!("{h}h{m:02}m{s:02}s"),
    }
}

fn trim_float(v: f64) -> String {
    let s = format!("{v:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// A point in time as RFC 3339 in UTC, to the second (`2026-11-29T09:14:42Z`).
pub fn format_time(t: &aws_smithy_types::DateTime) -> String {
    let secs = aws_smithy_types::DateTime::from_secs(t.secs());
    secs.fmt(aws_smithy_types::date_time::Format::DateTime)
        .unwrap_or_else(|_| t.secs().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_seconds_units_and_fractions() {
        assert_eq!(parse("3600"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse("90m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse("1h 30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse("1.5"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse("500ms"), Ok(Duration::from_millis(500)));
        assert!(parse("soon").is_err());
        assert!(parse("-1").is_err());
        assert_eq!(parse_whole_secs("24h"), Ok(86400));
        assert!(parse_whole_secs("1.5")
            .unwrap_err()
            .contains("whole number"));
    }

    #[test]
    fn formats_compactly() {
        assert_eq!(format_secs(5), "5s");
        assert_eq!(format_secs(125), "2m05s");
        assert_eq!(format_secs(3723), "1h02m03s");
        assert_eq!(format_secs(86400), "24h");
        assert_eq!(format_secs(5400), "1h30m");
        assert_eq!(format_secs(120), "2m");
        assert_eq!(format(Duration::from_millis(250)), "250ms");
        assert_eq!(format(Duration::from_millis(1500)), "1.5s");
    }
}
