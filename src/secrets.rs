//! Recognising and hiding AWS secrets.
//!
//! Patterns are those of the secret scanners gitleaks and git-secrets: an access key id is
//! `AKIA`, `ASIA`, `ABIA`, `ACCA` or `A3T` and one character, then 16 of `[A-Z2-7]`; a secret
//! access key is 40 characters of `[A-Za-z0-9/+=]`. Everything this tool writes to stdout or
//! stderr passes through [`redact`], which masks any access key id and any secret registered
//! with [`register`] (the resolved secret key and session token).

use regex::Regex;
use std::sync::{LazyLock, RwLock};

static ACCESS_KEY_ID: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?-u:\b)((?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA)[A-Z2-7]{16})(?-u:\b)")
        .expect("valid regex")
});

/// 40 characters of the secret key alphabet, not part of a longer token.
static SECRET_KEY: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?:^|[^A-Za-z0-9/+=])([A-Za-z0-9/+=]{40})(?:$|[^A-Za-z0-9/+=])")
        .expect("valid regex")
});

static REGISTERED: RwLock<Vec<String>> = RwLock::new(Vec::new());

/// Remember a secret so that [`redact`] hides it wherever it appears.
pub fn register(secret: &str) {
    if secret.len() < 8 {
        return;
    }
    let mut r = REGISTERED.write().unwrap_or_else(|e| e.into_inner());
    if !r.iter().any(|s| s == secret) {
        r.push(secret.to_string());
    }
}

/// The credential keys of the environment and of AWS profiles.
const CREDENTIAL_VARS: &[&str] = &[
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
];
const PROFILE_KEYS: &[&str] = &[
    "aws_access_key_id",
    "aws_secret_access_key",
    "aws_session_token",
];

/// Register the credentials in the environment, so that nothing printed can reveal them
/// (called first thing, before any logging).
pub fn register_env(env: &dyn Fn(&str) -> Option<String>) {
    for var in CREDENTIAL_VARS {
        if let Some(v) = env(var) {
            register(v.trim());
        }
    }
}

/// Register the keys held by every profile of the shared config and credentials files.
pub fn register_profile_secrets(profiles: &aws_config::profile::ProfileSet) {
    for name in profiles.profiles() {
        if let Some(p) = profiles.get_profile(name) {
            for key in PROFILE_KEYS {
                if let Some(v) = p.get(key) {
                    register(v.trim());
                }
            }
        }
    }
}

/// Mask an access key id the way `aws configure list` does: 16 `*` and the last 4 characters.
pub fn mask_key_id(key_id: &str) -> String {
    let tail: String = key_id
        .chars()
        .rev()
        .take(4)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    format!("{}{}", "*".repeat(16), tail)
}

/// Mask any value for display: keep at most the last 4 characters.
pub fn mask_value(value: &str) -> String {
    if value.chars().count() <= 8 {
        return "*".repeat(value.chars().count().max(4));
    }
    mask_key_id(value)
}

/// Replace registered secrets and access key ids in `text`.
pub fn redact(text: &str) -> String {
    let mut out = text.to_string();
    {
        let r = REGISTERED.read().unwrap_or_else(|e| e.into_inner());
        for s in r.iter() {
            if out.contains(s.as_str()) {
                out = out.replace(s.as_str(), &mask_value(s));
            }
        }
    }
    if ACCESS_KEY_ID.is_match(&out) {
        out = ACCESS_KEY_ID
            .replace_all(&out, |c: &regex::Captures| mask_key_id(&c[1]))
            .into_owned();
    }
    out
}

/// What a value looks like, if it looks like a credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finding {
    AccessKeyId,
    SecretAccessKey,
}

impl Finding {
    pub fn describe(self) -> &'static str {
        match self {
            Finding::AccessKeyId => "an AWS access key id",
            Finding::SecretAccessKey => "an AWS secret access key",
        }
    }
}

/// Does `value` contain something that looks like an AWS credential?
///
/// A secret access key is 40 characters of `[A-Za-z0-9/+=]`; to keep false alarms (hashes,
/// base64 blobs) rare it must mix upper case, lower case and digits, as generated keys do.
pub fn scan(value: &str) -> Option<Finding> {
    if ACCESS_KEY_ID.is_match(value) {
        return Some(Finding::AccessKeyId);
    }
    for c in SECRET_KEY.captures_iter(value) {
        let s = &c[1];
        let upper = s.chars().any(|c| c.is_ascii_uppercase());
        let lower = s.chars().any(|c| c.is_ascii_lowercase());
        let digit = s.chars().any(|c| c.is_ascii_digit());
        if upper && lower && digit {
            return Some(Finding::SecretAccessKey);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    // The documented example keys from the AWS docs.
    const KEY_ID: &str = "AKIAIOSFODNN7EXAMPLE";
    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

    #[test]
    fn masks_key_ids_like_aws_configure_list() {
        assert_eq!(mask_key_id(KEY_ID), "****************MPLE");
    }

    #[test]
    fn redacts_key_ids_and_registered_secrets() {
        register(SECRET);
        let text = format!("id={KEY_ID} secret={SECRET} ok");
        let r = redact(&text);
        assert!(!r.contains(KEY_ID), "{r}");
        assert!(!r.contains(SECRET), "{r}");
        assert!(r.contains("****************MPLE"));
        assert!(r.ends_with(" ok"));
    }

    #[test]
    fn scan_finds_keys_and_spares_ordinary_values() {
        assert_eq!(scan(KEY_ID), Some(Finding::AccessKeyId));
        assert_eq!(
            scan(&format!("x {SECRET} y")),
            Some(Finding::SecretAccessKey)
        );
        for ok in [
            "50",
            "0.0001",
            "adam",
            "s3://bucket/prefix/train/",
            "arn:aws:iam::123456789012:role/SageMakerRole",
            // 40 hex chars (a git sha): no upper case, not a key.
            "da39a3ee5e6b4b0d3255bfef95601890afd80709",
        ] {
            assert_eq!(scan(ok), None, "{ok}");
        }
    }
}
