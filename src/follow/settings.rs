//! How often to poll, declared once: `--poll-interval` (of `train --wait`, `wait` and `logs
//! --follow`) > `SAGETRAIN_POLL_INTERVAL` > the adaptive default of [`PollPolicy`].

use super::PollPolicy;
use crate::config::layer::{declare, Period};
use crate::error::{Error, Result};

/// The help heading of the flags of waiting.
pub const WAITING: &str = "Waiting";

declare! {
    /// The polling flag.
    args PollArgs {}
    /// The polling setting, with its source.
    settings PollSettings {}
    job ();
    file_section None;
    scalars {
        /// Poll the job this often (500ms, 10s, 1m) instead of adaptively from 5s to 60s [env: SAGETRAIN_POLL_INTERVAL]
        poll_interval: Option<String> = Period [long = "poll-interval", value_name = "DURATION"] in WAITING {
            env: &["SAGETRAIN_POLL_INTERVAL"],
            in_file: false,
            example: "\"30s\"",
        }
    }
}

impl PollSettings {
    /// Layered and checked before any network call.
    pub fn layer(args: &PollArgs, env: &dyn Fn(&str) -> Option<String>) -> Result<PollSettings> {
        PollSettings::layered(args, env, None).map_err(|v| {
            Error::usage(v[0].to_string())
                .with_hint("e.g. --poll-interval 30s, or leave it out for the adaptive default")
        })
    }

    /// The policy: every `poll_interval`, or the adaptive default.
    pub fn policy(&self) -> PollPolicy {
        match &self.poll_interval {
            Some(d) => PollPolicy::every(d.value),
            None => PollPolicy::default(),
        }
    }
}

/// The policy of these flags and this environment.
pub fn policy(args: &PollArgs, env: &dyn Fn(&str) -> Option<String>) -> Result<PollPolicy> {
    Ok(PollSettings::layer(args, env)?.policy())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_flag_beats_the_variable_beats_the_adaptive_default() {
        let env = |k: &str| (k == "SAGETRAIN_POLL_INTERVAL").then(|| "20ms".to_string());
        let t = policy(&PollArgs::default(), &env).unwrap();
        assert_eq!(
            (t.min, t.max),
            (Duration::from_millis(20), Duration::from_millis(20))
        );
        let flag = PollArgs {
            poll_interval: Some("30s".into()),
        };
        let f = policy(&flag, &env).unwrap();
        assert_eq!(
            (f.min, f.max),
            (Duration::from_secs(30), Duration::from_secs(30))
        );
        assert_eq!(
            policy(&PollArgs::default(), &|_| None).unwrap(),
            PollPolicy::default()
        );
        let zero = PollArgs {
            poll_interval: Some("0".into()),
        };
        let e = policy(&zero, &env).unwrap_err();
        assert!(
            e.message.starts_with("--poll-interval: must be more"),
            "{e}"
        );
        let bad = |k: &str| (k == "SAGETRAIN_POLL_INTERVAL").then(|| "often".to_string());
        let e = policy(&PollArgs::default(), &bad).unwrap_err();
        assert!(
            e.message.starts_with("SAGETRAIN_POLL_INTERVAL: `often`"),
            "{e}"
        );
    }
}
