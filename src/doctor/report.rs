//! The report of `sagetrain doctor`: each check's outcome, the text and JSON forms, and the exit
//! code of a run.

use crate::error::{Error, Kind};

/// The version of the JSON report's schema.
pub const SCHEMA_VERSION: u32 = 1;

/// Check ids: stable, used in the JSON report and in `blocked_by`.
pub mod id {
    pub const CONFIG: &str = "configuration";
    pub const CREDENTIALS: &str = "credentials";
    pub const IDENTITY: &str = "identity";
    pub const ACCESS_KEYS: &str = "access_keys";
    pub const REGION: &str = "region";
    pub const ROLE: &str = "execution_role";
    pub const ROLE_TRUST: &str = "role_trust";
    pub const PASS_ROLE: &str = "pass_role";
    pub const IMAGE: &str = "image";
    pub const OUTPUT: &str = "output_path";
    pub const QUOTA: &str = "instance_quota";
    /// With `remote_debug`: the Session Manager plugin, the caller's ssm:StartSession, the
    /// role's SSM channel actions.
    pub const SESSION_PLUGIN: &str = "session_plugin";
    pub const START_SESSION: &str = "start_session";
    pub const ROLE_SSM: &str = "role_ssm_channels";
    /// The container engine of `train --local` (a warning when missing: local runs are optional).
    pub const ENGINE: &str = "container_engine";
    /// No channel configured; otherwise one check `channel.NAME` per channel.
    pub const CHANNELS: &str = "channels";
    // One check `secret.NAME` per `--secret`.
}

/// The human name of a check id.
pub fn name_of(check_id: &str) -> String {
    match check_id {
        id::CONFIG => "configuration".into(),
        id::CREDENTIALS => "credentials".into(),
        id::IDENTITY => "identity".into(),
        id::ACCESS_KEYS => "access keys".into(),
        id::REGION => "region".into(),
        id::ROLE => "execution role".into(),
        id::ROLE_TRUST => "role trust".into(),
        id::PASS_ROLE => "iam:PassRole".into(),
        id::IMAGE => "image".into(),
        id::OUTPUT => "output bucket".into(),
        id::QUOTA => "instance quota".into(),
        id::SESSION_PLUGIN => "session plugin".into(),
        id::START_SESSION => "ssm:StartSession".into(),
        id::ROLE_SSM => "role SSM channels".into(),
        id::ENGINE => "container engine".into(),
        id::CHANNELS => "input channels".into(),
        other => match (
            other.strip_prefix("channel."),
            other.strip_prefix("secret."),
        ) {
            (Some(name), _) => format!("channel {name}"),
            (_, Some(name)) => format!("secret {name}"),
            _ => other.into(),
        },
    }
}

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Pass,
    Warn,
    Fail,
    Skip,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Warn => "warn",
            Status::Fail => "fail",
            Status::Skip => "skip",
        }
    }
}

/// One line of the report.
#[derive(Debug, Clone)]
pub struct Check {
    pub id: String,
    pub status: Status,
    /// What was found; for a skipped check, why it was skipped.
    pub value: String,
    /// Where the value came from (flag, environment variable, file, lookup), when it applies.
    pub source: Option<String>,
    /// For a warning or a failure: what to do, as a command or a setting.
    pub fix: Option<String>,
    pub details: Vec<String>,
    /// For a failure: its class, which decides the exit code.
    pub class: Option<Kind>,
    /// For a skipped check: the failed check it depends on, if that is why.
    pub blocked_by: Option<String>,
}

impl Check {
    fn new(check_id: &str, status: Status, value: impl Into<String>) -> Check {
        Check {
            id: check_id.to_string(),
            status,
            value: value.into(),
            source: None,
            fix: None,
            details: Vec::new(),
            class: None,
            blocked_by: None,
        }
    }
    pub fn pass(check_id: &str, value: impl Into<String>) -> Check {
        Check::new(check_id, Status::Pass, value)
    }
    pub fn warn(check_id: &str, value: impl Into<String>, fix: impl Into<String>) -> Check {
        let mut c = Check::new(check_id, Status::Warn, value);
        c.fix = Some(fix.into());
        c
    }
    pub fn fail(
        check_id: &str,
        class: Kind,
        value: impl Into<String>,
        fix: impl Into<String>,
    ) -> Check {
        let mut c = Check::new(check_id, Status::Fail, value);
        c.fix = Some(fix.into());
        c.class = Some(class);
        c
    }
    /// A failure from an error: its message, details, hint and class.
    pub fn from_error(check_id: &str, e: &Error) -> Check {
        let mut c = Check::new(check_id, Status::Fail, e.message.clone());
        c.details = e.details.clone();
        c.fix = e.hint.clone();
        c.class = Some(e.kind);
        c
    }
    /// Not run because it does not apply, or because of `--offline`.
    pub fn skip(check_id: &str, reason: impl Into<String>) -> Check {
        Check::new(check_id, Status::Skip, reason)
    }
    /// Not run because the check `on` did not pass.
    pub fn blocked(check_id: &str, on: &str, reason: impl Into<String>) -> Check {
        let mut c = Check::new(check_id, Status::Skip, reason);
        c.blocked_by = Some(on.to_string());
        c
    }
    pub fn with_source(mut self, source: impl Into<String>) -> Check {
        self.source = Some(source.into());
        self
    }
    pub fn with_details(mut self, details: Vec<String>) -> Check {
        self.details = details;
        self
    }
    pub fn passed(&self) -> bool {
        matches!(self.status, Status::Pass | Status::Warn)
    }
}

/// The JSON name of a failure class.
pub fn class_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Credentials => "credentials",
        Kind::Usage => "config",
        Kind::Aws => "aws",
        Kind::Internal => "internal",
        _ => "other",
    }
}

/// The exit code for a set of failure classes: 0 when there is none, otherwise the most
/// fundamental one. Credentials (3) come first: without them nothing on AWS can be checked.
/// Then the local configuration (2: invalid settings, no region, no role found), which is
/// fixed before anything AWS says matters. Then what AWS answered (4: a missing role, image,
/// bucket or data, a permission). An unexpected local error (1) ranks last.
pub fn exit_code(classes: impl IntoIterator<Item = Kind>) -> i32 {
    let rank = |k: Kind| match k {
        Kind::Credentials => 0,
        Kind::Usage => 1,
        Kind::Aws => 2,
        _ => 3,
    };
    classes
        .into_iter()
        .min_by_key(|k| rank(*k))
        .map(|k| k.exit_code())
        .unwrap_or(0)
}

/// All the checks, in report order.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub checks: Vec<Check>,
}

impl Report {
    #[cfg(test)]
    pub fn get(&self, check_id: &str) -> Option<&Check> {
        self.checks.iter().find(|c| c.id == check_id)
    }

    pub fn count(&self, status: Status) -> usize {
        self.checks.iter().filter(|c| c.status == status).count()
    }

    pub fn exit_code(&self) -> i32 {
        exit_code(
            self.checks
                .iter()
                .filter(|c| c.status == Status::Fail)
                .map(|c| c.class.unwrap_or(Kind::Aws)),
        )
    }

    /// The report as JSON (schema version [`SCHEMA_VERSION`], documented in the README).
    pub fn to_json(&self) -> serde_json::Value {
        let checks: Vec<serde_json::Value> = self
            .checks
            .iter()
            .map(|c| {
                serde_json::json!({
                    "id": c.id,
                    "name": name_of(&c.id),
                    "status": c.status.as_str(),
                    "value": c.value,
                    "source": c.source,
                    "fix": c.fix,
                    "details": c.details,
                    "class": c.class.map(class_name),
                    "blocked_by": c.blocked_by,
                })
            })
            .collect();
        serde_json::json!({
            "schema_version": SCHEMA_VERSION,
            "ok": self.count(Status::Fail) == 0,
            "exit_code": self.exit_code(),
            "counts": {
                "pass": self.count(Status::Pass),
                "warn": self.count(Status::Warn),
                "fail": self.count(Status::Fail),
                "skip": self.count(Status::Skip),
            },
            "checks": checks,
        })
    }

    /// The report as text: one line per check, the fix under each warning or failure.
    pub fn to_text(&self) -> String {
        let width = self
            .checks
            .iter()
            .map(|c| name_of(&c.id).chars().count())
            .max()
            .unwrap_or(0);
        let mut out = String::new();
        for c in &self.checks {
            let mut line = format!(
                "{:<4}  {:<width$}  {}",
                c.status.as_str(),
                name_of(&c.id),
                c.value
            );
            if let Some(s) = c.source.as_ref().filter(|s| !c.value.contains(s.as_str())) {
                line.push_str(&format!(" (from {s})"));
            }
            out.push_str(line.trim_end());
            out.push('\n');
            let indent = " ".repeat(width + 8);
            for d in &c.details {
                out.push_str(&format!("{indent}- {d}\n"));
            }
            if matches!(c.status, Status::Warn | Status::Fail) {
                if let Some(fix) = &c.fix {
                    for (i, l) in fix.lines().enumerate() {
                        let label = if i == 0 { "fix: " } else { "     " };
                        out.push_str(&format!("{indent}{label}{l}\n"));
                    }
                }
            }
        }
        let mut summary = vec![format!("{} passed", self.count(Status::Pass))];
        let warns = self.count(Status::Warn);
        summary.push(format!(
            "{warns} warning{}",
            if warns == 1 { "" } else { "s" }
        ));
        summary.push(format!("{} failed", self.count(Status::Fail)));
        summary.push(format!("{} skipped", self.count(Status::Skip)));
        out.push_str(&summary.join(", "));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_code_is_the_most_fundamental_failure_class() {
        assert_eq!(exit_code([]), 0);
        assert_eq!(exit_code([Kind::Aws]), 4);
        assert_eq!(exit_code([Kind::Aws, Kind::Usage]), 2);
        assert_eq!(exit_code([Kind::Aws, Kind::Credentials, Kind::Usage]), 3);
        assert_eq!(exit_code([Kind::Internal, Kind::Aws]), 4);
    }

    #[test]
    fn the_report_has_one_line_per_check_and_the_fix_under_failures() {
        let report = Report {
            checks: vec![
                Check::pass(id::REGION, "eu-west-1").with_source("--region"),
                Check::fail(id::IMAGE, Kind::Aws, "no such tag", "push it"),
                Check::blocked(id::PASS_ROLE, id::ROLE, "needs the execution role"),
            ],
        };
        let text = report.to_text();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "pass  region        eu-west-1 (from --region)");
        assert_eq!(lines[1], "fail  image         no such tag");
        assert_eq!(lines[2], "                    fix: push it");
        assert_eq!(lines[3], "skip  iam:PassRole  needs the execution role");
        assert_eq!(lines[4], "1 passed, 0 warnings, 1 failed, 1 skipped");
        let j = report.to_json();
        assert_eq!(j["schema_version"], 1);
        assert_eq!(j["ok"], false);
        assert_eq!(j["exit_code"], 4);
        assert_eq!(j["counts"]["skip"], 1);
        assert_eq!(j["checks"][1]["class"], "aws");
        assert_eq!(j["checks"][2]["blocked_by"], "execution_role");
        assert_eq!(j["checks"][0]["fix"], serde_json::Value::Null);
    }
}
