//! `--secret NAME=SECRET_ID` (`[secrets]` in `sagetrain.toml`): a third-party secret (an API
//! token, a password) that the job reads from AWS Secrets Manager with its execution role.
//! The request carries only the secret's ARN, in the environment variable
//! `SAGETRAIN_SECRET_<NAME>`; the code-mode launcher (and, in image mode, the image's own
//! entrypoint) reads the value inside the container and exports it as `NAME`. The value is
//! never read on this machine: `train` asks only `secretsmanager:DescribeSecret`.

use std::sync::LazyLock;

use regex::Regex;

/// The prefix of the environment variable that carries a secret's ARN to the job.
pub const ENV_PREFIX: &str = "SAGETRAIN_SECRET_";

/// The characters of a secret name (CreateSecret's rule): ASCII letters, digits and `/_+=.@-`.
static NAME: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[A-Za-z0-9/_+=.@-]{1,512}$").expect("a valid regex"));
static ACCOUNT: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[0-9]{12}$").expect("a valid regex"));
static REGION: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[a-z]{2}(-[a-z]+)+-[0-9]+$").expect("a valid regex"));

/// The environment variable that carries the secret `name` (`SAGETRAIN_SECRET_WANDB_API_KEY`).
pub fn env_name(name: &str) -> String {
    format!("{ENV_PREFIX}{name}")
}

/// The secret's name when `key` is the variable of one (`SAGETRAIN_SECRET_X` gives `X`).
pub fn name_of_env(key: &str) -> Option<&str> {
    key.strip_prefix(ENV_PREFIX).filter(|n| !n.is_empty())
}

/// A secret as `--secret` names it: a name or an ARN, and the key of a JSON secret to take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretRef {
    /// A secret name (`sagetrain/wandb`) or ARN, as given.
    pub id: String,
    /// With `:KEY`, the value is that key of the secret's JSON object.
    pub json_key: Option<String>,
}

impl SecretRef {
    /// Parse `NAME[:json-key]` or `arn:PARTITION:secretsmanager:REGION:ACCOUNT:secret:NAME[:json-key]`.
    pub fn parse(text: &str) -> Result<SecretRef, String> {
        if text.is_empty() {
            return Err(
                "is empty; give a Secrets Manager secret name (sagetrain/wandb) or ARN".into(),
            );
        }
        let (id, json_key) = if text.starts_with("arn:") {
            let parts: Vec<&str> = text.split(':').collect();
            if parts.len() < 7 {
                return Err(format!(
                    "`{text}` is not a secret ARN (arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME)"
                ));
            }
            if parts.len() > 8 {
                return Err(format!(
                    "`{text}` has more than one `:` after the ARN; only one `:json-key` may follow it"
                ));
            }
            let (partition, service, region, account, kind, name) =
                (parts[1], parts[2], parts[3], parts[4], parts[5], parts[6]);
            if !partition.starts_with("aws") || service != "secretsmanager" || kind != "secret" {
                return Err(format!(
                    "`{text}` is not the ARN of a Secrets Manager secret (arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME)"
                ));
            }
            if !REGION.is_match(region) {
                return Err(format!("the ARN's region `{region}` is not a region"));
            }
            if !ACCOUNT.is_match(account) {
                return Err(format!("the ARN's account `{account}` is not 12 digits"));
            }
            if !NAME.is_match(name) {
                return Err(name_rule(name));
            }
            (parts[..7].join(":"), parts.get(7).map(|k| k.to_string()))
        } else {
            let (name, key) = match text.split_once(':') {
                Some((n, k)) => (n, Some(k.to_string())),
                None => (text, None),
            };
            if !NAME.is_match(name) {
                return Err(name_rule(name));
            }
            (name.to_string(), key)
        };
        if json_key.as_deref() == Some("") {
            return Err(format!(
                "`{text}` ends in `:` without a JSON key; drop the `:` or name the key"
            ));
        }
        Ok(SecretRef { id, json_key })
    }

    pub fn is_arn(&self) -> bool {
        self.id.starts_with("arn:")
    }

    /// The region of an ARN.
    pub fn arn_region(&self) -> Option<&str> {
        self.is_arn().then(|| self.id.split(':').nth(3)).flatten()
    }

    /// What the job's variable holds: the ARN, and `:KEY` for a JSON key.
    pub fn env_value(&self, arn: &str) -> String {
        match &self.json_key {
            Some(k) => format!("{arn}:{k}"),
            None => arn.to_string(),
        }
    }

    /// The resource an IAM policy grants `secretsmanager:GetSecretValue` on: the ARN, or for a
    /// name every ARN of that name (Secrets Manager adds a dash and 6 random characters).
    pub fn policy_resource(&self, region: &str, account: &str) -> String {
        if self.is_arn() {
            self.id.clone()
        } else {
            format!(
                "arn:aws:secretsmanager:{region}:{account}:secret:{}-??????",
                self.id
            )
        }
    }
}

fn name_rule(name: &str) -> String {
    if name.is_empty() {
        "has no secret name; give NAME=SECRET_ID (a Secrets Manager secret name or ARN)".into()
    } else {
        format!(
            "`{name}` is not a Secrets Manager secret name (1-512 of ASCII letters, digits and /_+=.@-)"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARN: &str = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:sagetrain/wandb-AbCdEf";

    #[test]
    fn names_and_arns_with_and_without_a_json_key() {
        let r = SecretRef::parse("sagetrain/wandb").unwrap();
        assert_eq!((r.id.as_str(), r.json_key), ("sagetrain/wandb", None));
        let r = SecretRef::parse("sagetrain/db:password").unwrap();
        assert_eq!(r.id, "sagetrain/db");
        assert_eq!(r.json_key.as_deref(), Some("password"));
        assert!(!r.is_arn());
        assert_eq!(
            r.policy_resource("eu-west-1", "111122223333"),
            "arn:aws:secretsmanager:eu-west-1:111122223333:secret:sagetrain/db-??????"
        );
        assert_eq!(r.env_value(ARN), format!("{ARN}:password"));

        let r = SecretRef::parse(ARN).unwrap();
        assert_eq!((r.id.as_str(), r.json_key.as_deref()), (ARN, None));
        assert_eq!(r.arn_region(), Some("eu-west-1"));
        assert_eq!(r.policy_resource("us-east-1", "999999999999"), ARN);
        let r = SecretRef::parse(&format!("{ARN}:token")).unwrap();
        assert_eq!((r.id.as_str(), r.json_key.as_deref()), (ARN, Some("token")));
        assert_eq!(r.env_value(ARN), format!("{ARN}:token"));
    }

    #[test]
    fn what_is_not_a_secret_is_refused_by_rule() {
        for (text, rule) in [
            ("", "is empty"),
            ("has space", "is not a Secrets Manager secret name"),
            (":key", "has no secret name"),
            ("db:", "without a JSON key"),
            ("arn:aws:s3:::bucket", "is not a secret ARN"),
            (
                "arn:aws:ssm:eu-west-1:111122223333:secret:x",
                "not the ARN of a Secrets Manager secret",
            ),
            (
                "arn:aws:secretsmanager:eu-west-1:1111:secret:x",
                "is not 12 digits",
            ),
            (
                "arn:aws:secretsmanager:Europe:111122223333:secret:x",
                "is not a region",
            ),
            (&format!("{ARN}:a:b"), "more than one `:`"),
        ] {
            let e = SecretRef::parse(text).unwrap_err();
            assert!(e.contains(rule), "{text}: {e}");
        }
        let long = "x".repeat(513);
        assert!(SecretRef::parse(&long).is_err());
        assert!(SecretRef::parse(&"x".repeat(512)).is_ok());
    }

    #[test]
    fn the_variable_of_a_secret_names_it() {
        assert_eq!(env_name("HF_TOKEN"), "SAGETRAIN_SECRET_HF_TOKEN");
        assert_eq!(name_of_env("SAGETRAIN_SECRET_HF_TOKEN"), Some("HF_TOKEN"));
        assert_eq!(name_of_env("SAGETRAIN_SECRET_"), None);
        assert_eq!(name_of_env("HF_TOKEN"), None);
    }
}
