//! Time limits for the network: per request (connect, read) and for the whole run (`--deadline`).
//!
//! They are global options of every command, declared once below and layered flag >
//! environment > default, validated before any network call, and installed once per process so that [`crate::aws::Aws::load`]
//! builds every client with them. The retry settings (`AWS_MAX_ATTEMPTS`, `AWS_RETRY_MODE`, the
//! profile's `max_attempts` / `retry_mode`) live in [`crate::aws`], the AWS way.
//!
//! `--deadline` bounds the whole run, retries and backoff included (exit 7). It is distinct
//! from `--timeout` of the commands that wait for a job, which bounds the wait.

use crate::config::layer::{declare, Period};
use crate::config::{durations, Source, Val};
use crate::error::{Error, Kind, Result};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

pub const DEFAULT_CONNECT: Duration = Duration::from_secs(5);
pub const DEFAULT_READ: Duration = Duration::from_secs(60);

declare! {
    /// Network time limits, for every command.
    args NetArgs {}
    /// The time limits as layered (see [`Timeouts`] for those in effect).
    settings NetSettings {}
    job ();
    file_section None;
    scalars {
        /// Give up on a request whose response does not start within this long (each attempt): 30s, 2m [default: 60s] [env: SAGETRAIN_READ_TIMEOUT]
        read_timeout: Option<String> = Period [long = "read-timeout", global = true, value_name = "DURATION"] {
            env: &["SAGETRAIN_READ_TIMEOUT"],
            in_file: false,
            default: Some("60s"),
            example: "\"10s\"",
        }
        /// Give up on connecting to an AWS endpoint after this long [default: 5s] [env: SAGETRAIN_CONNECT_TIMEOUT]
        connect_timeout: Option<String> = Period [long = "connect-timeout", global = true, value_name = "DURATION"] {
            env: &["SAGETRAIN_CONNECT_TIMEOUT"],
            in_file: false,
            default: Some("5s"),
            example: "\"2s\"",
        }
        /// Stop the whole run after this long, retries included (exit 7) [env: SAGETRAIN_DEADLINE]
        deadline: Option<String> = Period [long = "deadline", global = true, value_name = "DURATION"] {
            env: &["SAGETRAIN_DEADLINE"],
            in_file: false,
            example: "\"10m\"",
        }
    }
}

/// The network time limits in effect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timeouts {
    /// Longest to wait for a TCP (and TLS) connection.
    pub connect: Val<Duration>,
    /// Longest a request may wait for its response (each attempt).
    pub read: Val<Duration>,
    /// Longest the whole run may take, if bounded.
    pub deadline: Option<Val<Duration>>,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Val::new(DEFAULT_CONNECT, Source::Default),
            read: Val::new(DEFAULT_READ, Source::Default),
            deadline: None,
        }
    }
}

/// How time limits are shown: [`durations::format`] (`aws/mod.rs` still names it `show`).
pub use crate::config::durations::format as show;

impl Timeouts {
    /// Layer the flags over the environment over the defaults, and validate. No network.
    pub fn layer(args: &NetArgs, env: &dyn Fn(&str) -> Option<String>) -> Result<Timeouts> {
        let s = NetSettings::layered(args, env, None).map_err(|v| {
            let mut problems: Vec<String> = v.iter().map(|v| v.to_string()).collect();
            let mut e = Error::usage(problems.remove(0))
                .with_hint("give a duration such as 500ms, 30s or 2m (or a number of seconds)");
            e.details = problems;
            e
        })?;
        let d = Timeouts::default();
        Ok(Timeouts {
            connect: s.connect_timeout.unwrap_or(d.connect),
            read: s.read_timeout.unwrap_or(d.read),
            deadline: s.deadline,
        })
    }

    /// Rows of `sagetrain config`.
    pub fn rows(&self) -> Vec<crate::config::layer::Row> {
        NetSettings {
            read_timeout: Some(self.read.clone()),
            connect_timeout: Some(self.connect.clone()),
            deadline: self.deadline.clone(),
        }
        .declared_rows()
    }
}

static CURRENT: OnceLock<Timeouts> = OnceLock::new();
static IN_FLIGHT: Mutex<Option<String>> = Mutex::new(None);

/// Make `t` the time limits of this process (the first call wins).
pub fn install(t: Timeouts) {
    let _ = CURRENT.set(t);
}

/// The time limits of this process: the installed ones, or the defaults.
pub fn current() -> Timeouts {
    CURRENT.get().cloned().unwrap_or_default()
}

/// Say what is in flight that a deadline could cut off half-way (a create, say), so that the
/// deadline's error can tell the user what to check; `None` when it is done.
pub fn in_flight(what: Option<String>) {
    if let Ok(mut g) = IN_FLIGHT.lock() {
        *g = what;
    }
}

/// The error for a run that the deadline cut off.
pub fn deadline_error(deadline: &Val<Duration>) -> Error {
    let mut e = Error::new(
        Kind::Timeout,
        format!(
            "gave up: the run did not finish within the deadline of {} ({})",
            durations::format(deadline.value),
            deadline.source.name_for(None)
        ),
    );
    let pending = IN_FLIGHT.lock().ok().and_then(|g| g.clone());
    match pending {
        Some(what) => {
            e.details.push(format!("cut off while: {what}"));
            e.with_hint("check whether it took effect before you run it again (see above); give a longer --deadline, or unset SAGETRAIN_DEADLINE")
        }
        None => e.with_hint("nothing was created; give a longer --deadline (or unset SAGETRAIN_DEADLINE), and check the network with -vv"),
    }
}

/// Mention the time limits in an error about a request that timed out.
pub fn timeout_explanation() -> String {
    let t = current();
    format!(
        "a response must start within the read timeout of {} ({}) and a connection within {} ({})",
        durations::format(t.read.value),
        t.read.source.name_for(None),
        durations::format(t.connect.value),
        t.connect.source.name_for(None)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A time limit as the declaration reads it.
    fn parse(text: &str) -> std::result::Result<Duration, String> {
        <Period as crate::config::layer::Kind>::from_text(text)
    }

    fn args(connect: Option<&str>, read: Option<&str>, deadline: Option<&str>) -> NetArgs {
        NetArgs {
            connect_timeout: connect.map(str::to_string),
            read_timeout: read.map(str::to_string),
            deadline: deadline.map(str::to_string),
        }
    }

    #[test]
    fn durations_parse_with_units_or_as_seconds() {
        assert_eq!(parse("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse("45").unwrap(), Duration::from_secs(45));
        assert_eq!(parse("1.5").unwrap(), Duration::from_millis(1500));
        assert!(parse("0").unwrap_err().contains("zero"));
        assert!(parse("-3").is_err());
        assert!(parse("soon").unwrap_err().contains("not a duration"));
        assert_eq!(durations::format(Duration::from_millis(1500)), "1.5s");
        assert_eq!(durations::format(Duration::from_secs(60)), "1m");
    }

    #[test]
    fn flags_win_over_environment_over_defaults() {
        let env = |k: &str| match k {
            "SAGETRAIN_READ_TIMEOUT" => Some("10s".to_string()),
            "SAGETRAIN_DEADLINE" => Some("5m".to_string()),
            _ => None,
        };
        let t = Timeouts::layer(&args(None, Some("2s"), None), &env).unwrap();
        assert_eq!(t.read.value, Duration::from_secs(2));
        assert_eq!(t.read.source, Source::Flag("--read-timeout"));
        assert_eq!(t.connect.value, DEFAULT_CONNECT);
        assert_eq!(t.connect.source, Source::Default);
        let d = t.deadline.unwrap();
        assert_eq!(d.value, Duration::from_secs(300));
        assert_eq!(d.source, Source::Env("SAGETRAIN_DEADLINE"));
        let none = |_: &str| None;
        assert_eq!(
            Timeouts::layer(&args(None, None, None), &none).unwrap(),
            Timeouts::default()
        );
    }

    #[test]
    fn invalid_values_are_usage_errors_naming_each_source() {
        let env = |k: &str| (k == "SAGETRAIN_CONNECT_TIMEOUT").then(|| "fast".to_string());
        let e = Timeouts::layer(&args(None, Some("0s"), Some("x")), &env).unwrap_err();
        assert_eq!(e.kind, Kind::Usage);
        let all = format!("{} {}", e.message, e.details.join(" "));
        crate::testing::assert_contains_all(
            &all,
            &["SAGETRAIN_CONNECT_TIMEOUT", "--read-timeout", "--deadline"],
        );
    }

    #[test]
    fn the_deadline_error_says_what_was_cut_off() {
        let d = Val::new(Duration::from_secs(3), Source::Flag("--deadline"));
        let e = deadline_error(&d);
        assert_eq!(e.kind, Kind::Timeout);
        assert!(e.message.contains("3s") && e.message.contains("--deadline"));
    }
}
