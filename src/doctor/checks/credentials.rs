//! 1. Credentials: where they come from, and long-lived keys in plaintext files.

use crate::aws::ResolvedCredentials;
use crate::doctor::report::{id, Check};
use crate::error::Error;
use aws_config::profile::ProfileSet;
use std::path::{Path, PathBuf};

/// A profile whose long-lived keys sit in a plaintext file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlaintextKeys {
    pub profile: String,
    pub file: PathBuf,
}

/// One shared file as the SDK's parser reads it alone: its path and its profiles.
pub struct ParsedFile<'a> {
    pub path: &'a Path,
    pub profiles: Option<&'a ProfileSet>,
}

/// Where the long-lived keys behind `profile` are stored in plaintext, following
/// `source_profile` (an assume-role profile whose source holds keys still keeps them on disk).
/// `merged` is the profiles of both files together (for `source_profile`); `files` each file
/// alone, the shared credentials file first.
pub fn plaintext_keys(
    profile: &str,
    merged: Option<&ProfileSet>,
    files: &[ParsedFile],
) -> Option<PlaintextKeys> {
    let mut name = profile.to_string();
    for _ in 0..8 {
        for f in files {
            let holds_keys = f
                .profiles
                .and_then(|set| set.get_profile(&name))
                .is_some_and(|p| p.get("aws_access_key_id").is_some());
            if holds_keys {
                return Some(PlaintextKeys {
                    profile: name,
                    file: f.path.to_path_buf(),
                });
            }
        }
        match merged
            .and_then(|set| set.get_profile(&name))
            .and_then(|p| p.get("source_profile"))
        {
            Some(next) if next != name => name = next.to_string(),
            _ => return None,
        }
    }
    None
}

/// The credentials check: found or not, from where, the masked key id, session or long-lived,
/// and a warning for long-lived keys kept in a plaintext file.
pub fn credentials_check(
    found: &std::result::Result<ResolvedCredentials, Error>,
    plaintext: Option<&PlaintextKeys>,
) -> Check {
    match found {
        Err(e) => Check::from_error(id::CREDENTIALS, e),
        Ok(c) => {
            let kind = if c.is_session() {
                "temporary session"
            } else {
                "long-lived keys"
            };
            let value = format!("{}: key {}, {kind}", c.source, c.masked_key_id());
            match plaintext.filter(|_| !c.is_session()) {
                Some(p) => Check::warn(
                    id::CREDENTIALS,
                    format!(
                        "{value}, stored in plaintext in {}{}",
                        p.file.display(),
                        if c.source.profile_name() == Some(p.profile.as_str()) {
                            String::new()
                        } else {
                            format!(" (profile `{}`)", p.profile)
                        }
                    ),
                    format!(
                        "anyone who can read that file can use these keys; prefer short-lived credentials:\n\
                         SSO: `aws configure sso --profile NAME`, then `aws sso login --profile NAME` and `profile = \"NAME\"`\n\
                         or keep the keys in your OS keychain behind a `credential_process` helper (such as aws-vault), then delete them from {}",
                        p.file.display()
                    ),
                )
                .with_source(c.source.to_string()),
                None => Check::pass(id::CREDENTIALS, value).with_source(c.source.to_string()),
            }
        }
    }
}

/// Where the long-lived keys of a profile sit in plaintext, if they do.
pub(crate) async fn plaintext_keys_of(
    env: &dyn Fn(&str) -> Option<String>,
    profile: &str,
) -> Option<PlaintextKeys> {
    let merged = crate::aws::load_profiles(env, Some(profile)).await;
    let files = crate::aws::credentials::shared_files(env);
    let mut sets = Vec::new();
    for (kind, _, text) in &files {
        sets.push(crate::aws::credentials::profiles_of_file(*kind, text).await);
    }
    let parsed: Vec<ParsedFile> = files
        .iter()
        .zip(&sets)
        .map(|((_, path, _), set)| ParsedFile {
            path,
            profiles: set.as_ref(),
        })
        .collect();
    plaintext_keys(profile, merged.as_ref(), &parsed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::Status;

    #[tokio::test]
    async fn plaintext_keys_are_found_in_either_file_and_through_source_profile() {
        use crate::aws::credentials::profiles_of_file;
        use aws_runtime::env_config::file::{EnvConfigFileKind, EnvConfigFiles};
        let creds = Path::new("/h/.aws/credentials");
        let config = Path::new("/h/.aws/config");
        let ctext =
            "[base]\naws_access_key_id = AKIA...\naws_secret_access_key = x\n[other]\nregion = x\n";
        let conf = "[profile dev]\nrole_arn = arn:aws:iam::1:role/r\nsource_profile = base\n[profile sso]\nsso_session = s\n[default]\naws_access_key_id = AKIA\n";
        let cset = profiles_of_file(EnvConfigFileKind::Credentials, ctext).await;
        let fset = profiles_of_file(EnvConfigFileKind::Config, conf).await;
        let files = EnvConfigFiles::builder()
            .with_contents(EnvConfigFileKind::Config, conf)
            .with_contents(EnvConfigFileKind::Credentials, ctext)
            .build();
        let merged = aws_config::profile::parser::load(
            &aws_types::os_shim_internal::Fs::real(),
            &aws_types::os_shim_internal::Env::from_slice(&[]),
            &files,
            None,
        )
        .await
        .ok();
        let parsed = [
            ParsedFile {
                path: creds,
                profiles: cset.as_ref(),
            },
            ParsedFile {
                path: config,
                profiles: fset.as_ref(),
            },
        ];
        let keys = |p: &str| plaintext_keys(p, merged.as_ref(), &parsed);
        assert_eq!(
            keys("dev"),
            Some(PlaintextKeys {
                profile: "base".into(),
                file: creds.into()
            })
        );
        assert_eq!(keys("default").map(|p| p.file), Some(config.to_path_buf()));
        assert_eq!(keys("sso"), None);
        assert_eq!(keys("other"), None);
    }

    #[test]
    fn long_lived_keys_in_a_plaintext_file_are_a_warning_naming_sso() {
        let found = Ok(ResolvedCredentials {
            credentials: aws_credential_types::Credentials::new(
                "AKIAIOSFODNN7EXAMPLE",
                "secret",
                None,
                None,
                "t",
            ),
            source: crate::aws::CredentialSource::Profile {
                name: "dev".into(),
                kind: Some(crate::aws::credentials::ProfileKind::AccessKeys),
                files: vec!["/h/.aws/credentials".into()],
            },
        });
        let p = PlaintextKeys {
            profile: "dev".into(),
            file: "/h/.aws/credentials".into(),
        };
        let c = credentials_check(&found, Some(&p));
        assert_eq!(c.status, Status::Warn);
        assert!(c.value.contains("****************MPLE"), "{}", c.value);
        assert!(c.value.contains("plaintext"), "{}", c.value);
        assert!(c.fix.as_ref().unwrap().contains("aws configure sso"));
        assert!(c.fix.as_ref().unwrap().contains("credential_process"));
        let c = credentials_check(&found, None);
        assert_eq!(c.status, Status::Pass);
        assert!(c.value.contains("long-lived keys"));
    }
}
