//! Errors and the exit codes they map to.
//!
//! Every error says what failed, why, and what to do next (`hint`). The exit code is derived
//! from the error's [`Kind`], so the mapping lives in one place and is documented in the README.

use std::fmt;

/// The classes of failure, each with its own exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Something unexpected on this machine (I/O, a bug). Exit 1.
    Internal,
    /// Bad usage or invalid input, rejected before any AWS call. Exit 2.
    Usage,
    /// Credentials missing, unreadable or rejected by AWS. Exit 3.
    Credentials,
    /// AWS answered with an error, or could not be reached. Exit 4.
    Aws,
    /// The training job ended in `Failed`. Exit 5.
    JobFailed,
    /// The training job ended in `Stopped` (including MaxRuntimeExceeded). Exit 6.
    JobStopped,
    /// A `--timeout` expired before the job ended. Exit 7.
    Timeout,
    /// Interrupted by Ctrl-C (SIGINT). Exit 130.
    Interrupted,
    /// Interrupted by SIGTERM (CI cancelling, `timeout`, Kubernetes, systemd). Exit 143.
    Terminated,
    /// The exit code of a command that ran elsewhere (`sagetrain shell JOB -- COMMAND`), passed
    /// through as it is.
    PassThrough(i32),
}

impl Kind {
    pub fn exit_code(self) -> i32 {
        match self {
            Kind::Internal => 1,
            Kind::Usage => 2,
            Kind::Credentials => 3,
            Kind::Aws => 4,
            Kind::JobFailed => 5,
            Kind::JobStopped => 6,
            Kind::Timeout => 7,
            Kind::Interrupted => 130,
            Kind::Terminated => 143,
            Kind::PassThrough(code) => code,
        }
    }
}

/// A typed reason, for the callers that act on one particular failure (never on the message).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// No AWS region is set anywhere (flag, environment, sagetrain.toml, profile).
    NoRegion,
    /// AWS refused the call for want of a permission (`init --create-role --dry-run` goes on).
    AccessDenied,
}

/// A failure to report to the user.
#[derive(Debug, Clone)]
pub struct Error {
    pub kind: Kind,
    /// Set for the failures a caller may handle (see [`Reason`]).
    pub reason: Option<Reason>,
    /// What failed and why, in one line.
    pub message: String,
    /// Further lines (several violations, candidate roles, ...).
    pub details: Vec<String>,
    /// What to do next: a command or a setting.
    pub hint: Option<String>,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(kind: Kind, message: impl Into<String>) -> Self {
        Error {
            kind,
            reason: None,
            message: message.into(),
            details: Vec::new(),
            hint: None,
        }
    }
    pub fn usage(message: impl Into<String>) -> Self {
        Self::new(Kind::Usage, message)
    }
    pub fn credentials(message: impl Into<String>) -> Self {
        Self::new(Kind::Credentials, message)
    }
    pub fn aws(message: impl Into<String>) -> Self {
        Self::new(Kind::Aws, message)
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(Kind::Internal, message)
    }
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
    pub fn with_reason(mut self, reason: Reason) -> Self {
        self.reason = Some(reason);
        self
    }
    pub fn with_details(mut self, details: Vec<String>) -> Self {
        self.details = details;
        self
    }
    pub fn exit_code(&self) -> i32 {
        self.kind.exit_code()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "error: {}", self.message)?;
        for d in &self.details {
            write!(f, "\n  - {d}")?;
        }
        if let Some(h) = &self.hint {
            for (i, line) in h.lines().enumerate() {
                if i == 0 {
                    write!(f, "\n  hint: {line}")?;
                } else {
                    write!(f, "\n        {line}")?;
                }
            }
        }
        Ok(())
    }
}

impl std::error::Error for Error {}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::internal(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_are_distinct() {
        let kinds = [
            Kind::Internal,
            Kind::Usage,
            Kind::Credentials,
            Kind::Aws,
            Kind::JobFailed,
            Kind::JobStopped,
            Kind::Timeout,
            Kind::Interrupted,
            Kind::Terminated,
        ];
        let mut codes: Vec<i32> = kinds.iter().map(|k| k.exit_code()).collect();
        codes.sort();
        codes.dedup();
        assert_eq!(codes.len(), kinds.len());
        assert_eq!(Kind::Usage.exit_code(), 2);
    }

    #[test]
    fn display_has_message_details_and_hint() {
        let e = Error::usage("bad")
            .with_details(vec!["one".into()])
            .with_hint("do this\nthen that");
        assert_eq!(
            e.to_string(),
            "error: bad\n  - one\n  hint: do this\n        then that"
        );
    }
}
