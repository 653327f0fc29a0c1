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
    /// A third-party token of a well-known format: what it is.
    Token(&'static str),
    /// A long, high-entropy value under a name that says it is secret.
    NamedSecret,
}

impl Finding {
    pub fn describe(self) -> &'static str {
        match self {
            Finding::AccessKeyId => "an AWS access key id",
            Finding::SecretAccessKey => "an AWS secret access key",
            Finding::Token(what) => what,
            Finding::NamedSecret => "a secret (its name says so, and the value is long and random)",
        }
    }

    /// An AWS key: never sent, whatever the flags.
    pub fn is_aws(self) -> bool {
        matches!(self, Finding::AccessKeyId | Finding::SecretAccessKey)
    }
}

/// The well-known token formats, after gitleaks' rules: (what, pattern). A match of the
/// `sk-` prefix must also mix upper case, lower case and digits, as generated keys do
/// (`sk-learn-random-forest-classifier` is not a key).
const TOKEN_FORMATS: &[(&str, &str)] = &[
    (
        "a GitHub token",
        r"\b(?:ghp|gho|ghu|ghs|ghr)_[0-9A-Za-z]{36}\b",
    ),
    ("a GitHub token", r"\bgithub_pat_[0-9A-Za-z_]{82}\b"),
    ("a Hugging Face token", r"\bhf_[A-Za-z0-9]{34,}\b"),
    (
        "an OpenAI or Anthropic API key",
        r"\bsk-(?:proj-|svcacct-|admin-|ant-[a-z0-9]+-)?[A-Za-z0-9_\-]{32,}",
    ),
    ("a Slack token", r"\bxox[abposr]-[0-9A-Za-z\-]{10,}"),
    ("a GitLab token", r"\bglpat-[0-9A-Za-z_\-]{20,}"),
    ("a Google API key", r"\bAIza[0-9A-Za-z_\-]{35}"),
    (
        "a private key",
        r"-----BEGIN[ A-Z0-9_\-]{0,100}PRIVATE KEY(?: BLOCK)?-----",
    ),
    (
        "a JSON Web Token",
        r"\bey[A-Za-z0-9]{17,}\.ey[A-Za-z0-9/\\_\-]{17,}\.(?:[A-Za-z0-9/\\_\-]{10,}={0,2})?",
    ),
];

static TOKENS: LazyLock<Vec<(&'static str, Regex)>> = LazyLock::new(|| {
    TOKEN_FORMATS
        .iter()
        .map(|(what, p)| (*what, Regex::new(p).expect("valid regex")))
        .collect()
});

/// Words in a name that say its value is secret.
const SECRET_WORDS: &[&str] = &["KEY", "TOKEN", "SECRET", "PASSWORD", "PASSWD", "CREDENTIAL"];

/// Does `value` contain something that looks like an AWS credential? (The check of config
/// files and data files, where third-party formats are not refused.)
///
/// A secret access key is 40 characters of `[A-Za-z0-9/+=]`; to keep false alarms (hashes,
/// base64 blobs) rare it must mix upper case, lower case and digits, as generated keys do.
pub fn scan(value: &str) -> Option<Finding> {
    if ACCESS_KEY_ID.is_match(value) {
        return Some(Finding::AccessKeyId);
    }
    SECRET_KEY
        .captures_iter(value)
        .any(|c| mixes_case_and_digits(&c[1]))
        .then_some(Finding::SecretAccessKey)
}

fn mixes_case_and_digits(s: &str) -> bool {
    s.chars().any(|c| c.is_ascii_uppercase())
        && s.chars().any(|c| c.is_ascii_lowercase())
        && s.chars().any(|c| c.is_ascii_digit())
}

/// Does `value` contain a credential: an AWS key ([`scan`]) or a token of a well-known format?
pub fn scan_formats(value: &str) -> Option<Finding> {
    // A named format first: a 40-character token body also has the shape of an AWS secret key.
    let token = TOKENS.iter().find(|(what, re)| {
        re.find_iter(value)
            .any(|m| !what.starts_with("an OpenAI") || mixes_case_and_digits(m.as_str()))
    });
    match token {
        Some((what, _)) if !ACCESS_KEY_ID.is_match(value) => Some(Finding::Token(what)),
        _ => scan(value),
    }
}

/// Is the entry `name = value` (a hyperparameter, an environment variable, a tag) a secret?
/// By format (of the name or the value), or by a name that says KEY, TOKEN, SECRET, PASSWORD or
/// CREDENTIAL with a value that is long and high-entropy.
pub fn scan_entry(name: &str, value: &str) -> Option<Finding> {
    if let Some(f) = scan_formats(name).or_else(|| scan_formats(value)) {
        return Some(f);
    }
    let upper = name.to_ascii_uppercase();
    let named = SECRET_WORDS.iter().any(|w| upper.contains(w));
    (named && looks_random(value)).then_some(Finding::NamedSecret)
}

/// Long (20+ characters), no spaces, letters and digits mixed, and at least 3.5 bits of
/// entropy a character (gitleaks' threshold for generic keys): a generated secret, not a word,
/// a path or a number.
pub fn looks_random(value: &str) -> bool {
    let n = value.chars().count();
    if n < 20 || value.chars().any(char::is_whitespace) || value.contains("://") {
        return false;
    }
    let letters = value.chars().any(|c| c.is_ascii_alphabetic());
    let digits = value.chars().any(|c| c.is_ascii_digit());
    letters && digits && entropy(value) >= 3.5
}

/// Shannon entropy in bits per character.
pub fn entropy(value: &str) -> f64 {
    let mut counts = std::collections::HashMap::new();
    let mut n = 0usize;
    for c in value.chars() {
        *counts.entry(c).or_insert(0usize) += 1;
        n += 1;
    }
    if n == 0 {
        return 0.0;
    }
    counts
        .values()
        .map(|&k| {
            let p = k as f64 / n as f64;
            -p * p.log2()
        })
        .sum()
}

#[cfg(test)]
pub(crate) mod tests {
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

    /// Token shapes of each format, assembled so that no literal token sits in the source.
    pub(crate) fn tokens() -> Vec<(&'static str, String)> {
        let alnum = "aB3dE5fG7hJ9kL1mN2pQ4rS6tU8vW0xY2zA4cD6eF8gH";
        vec![
            ("a GitHub token", format!("ghp_{}", &alnum[..36])),
            ("a GitHub token", format!("gho_{}", &alnum[..36])),
            ("a GitHub token", format!("ghs_{}", &alnum[..36])),
            (
                "a GitHub token",
                format!("github_pat_{}{}", alnum, &alnum[..38]),
            ),
            ("a Hugging Face token", format!("hf_{}", &alnum[..34])),
            (
                "an OpenAI or Anthropic API key",
                format!("sk-proj-{}", &alnum[..40]),
            ),
            (
                "an OpenAI or Anthropic API key",
                format!("sk-ant-api03-{}", &alnum[..40]),
            ),
            ("a Slack token", format!("xoxb-1234567890-{}", &alnum[..24])),
            ("a GitLab token", format!("glpat-{}", &alnum[..20])),
            ("a Google API key", format!("AIza{}", &alnum[..35])),
            (
                "a private key",
                "-----BEGIN RSA PRIVATE KEY-----\nMIIB".to_string(),
            ),
            (
                "a JSON Web Token",
                format!(
                    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.{}",
                    &alnum[..20]
                ),
            ),
        ]
    }

    #[test]
    fn scan_entry_finds_each_format_by_value_and_by_name() {
        for (what, token) in tokens() {
            assert_eq!(
                scan_entry("anything", &token),
                Some(Finding::Token(what)),
                "{token}"
            );
            assert!(!Finding::Token(what).is_aws());
            // In a longer value too.
            assert!(
                scan_entry("x", &format!("--token={token} more")).is_some(),
                "{token}"
            );
        }
        // AWS keys are found the same way (one mechanism).
        assert_eq!(scan_entry("id", KEY_ID), Some(Finding::AccessKeyId));
        assert!(Finding::AccessKeyId.is_aws());
        // By name: 40 hex characters under a name that says KEY (a W&B API key).
        let hex = "3f8a1c9e2b7d4f6a0c5e8b1d9f2a7c4e6b0d8f1a";
        for name in [
            "WANDB_API_KEY",
            "db_password",
            "MY_SECRET",
            "service_token",
            "Credentials",
        ] {
            assert_eq!(scan_entry(name, hex), Some(Finding::NamedSecret), "{name}");
        }
        // Not secrets: ordinary names with random values, secret names with ordinary values.
        for (name, value) in [
            ("run_id", hex),
            ("WANDB_API_KEY", "short"),
            ("tokenizer", "bert-base-uncased"),
            ("estimator", "sk-learn-random-forest-classifier-v2"),
            ("max_tokens", "512"),
            ("key_path", "s3://bucket/keys/model-2026-11-29-093012/"),
            ("SECRET_NAME", "sagetrain/wandb api key for project"),
            ("learning_rate", "0.0001"),
            ("git_sha", "da39a3ee5e6b4b0d3255bfef95601890afd80709"),
        ] {
            assert_eq!(scan_entry(name, value), None, "{name}={value}");
        }
    }
}
