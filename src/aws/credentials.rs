//! The credential chain: the SDK's default order (environment, profile, web identity,
//! container, instance metadata) with each provider labelled by a [`CredentialSource`], so that
//! the tool can say which one supplied the credentials (the SDK has no getter for that). The
//! chain memoises what it found until shortly before expiry, so the up-front check and the
//! clients share one resolution.
//!
//! Also the profile files, read with the SDK's own parser (`aws_config::profile`).

use super::errors::{chain_text, find_source};
use crate::secrets;
use aws_config::profile::ProfileSet;
use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::{future, ProvideCredentials, SharedCredentialsProvider};
use aws_credential_types::Credentials;
use aws_runtime::env_config::file::{EnvConfigFileKind, EnvConfigFiles};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_types::os_shim_internal::{Env, Fs};
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

/// Reads an environment variable.
pub type Lookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The variables the SDK's profile-file loader reads.
const PROFILE_VARS: &[&str] = &[
    "HOME",
    "USERPROFILE",
    "HOMEDRIVE",
    "HOMEPATH",
    "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_PROFILE",
];

/// An SDK environment holding the variables `names` as `env` gives them, for the SDK functions
/// that take one (so that tests can inject it).
pub fn sdk_env(env: Lookup, names: &[&str]) -> Env {
    let map: HashMap<String, String> = names
        .iter()
        .filter_map(|n| env(n).map(|v| (n.to_string(), v)))
        .collect();
    Env::from(map)
}

/// What kind of credentials a profile holds (by the keys the SDK acts on).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProfileKind {
    Sso,
    /// Written by `aws login` (`login_session`).
    Login,
    CredentialProcess,
    WebIdentity,
    AssumeRole,
    AccessKeys,
    SettingsOnly,
}

impl ProfileKind {
    /// The kind of the profile `name` in `set`.
    pub fn of(set: &ProfileSet, name: &str) -> Option<ProfileKind> {
        let p = set.get_profile(name)?;
        Some(
            if p.get("sso_session").is_some() || p.get("sso_start_url").is_some() {
                ProfileKind::Sso
            } else if p.get("login_session").is_some() {
                ProfileKind::Login
            } else if p.get("credential_process").is_some() {
                ProfileKind::CredentialProcess
            } else if p.get("web_identity_token_file").is_some() {
                ProfileKind::WebIdentity
            } else if p.get("role_arn").is_some() {
                ProfileKind::AssumeRole
            } else if p.get("aws_access_key_id").is_some() {
                ProfileKind::AccessKeys
            } else {
                ProfileKind::SettingsOnly
            },
        )
    }
}

impl fmt::Display for ProfileKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ProfileKind::Sso => "SSO",
            ProfileKind::Login => "aws login",
            ProfileKind::CredentialProcess => "credential_process",
            ProfileKind::WebIdentity => "web identity",
            ProfileKind::AssumeRole => "assume role",
            ProfileKind::AccessKeys => "access keys",
            ProfileKind::SettingsOnly => "settings only",
        })
    }
}

/// Where credentials came from: one provider of the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialSource {
    Environment,
    Profile {
        name: String,
        kind: Option<ProfileKind>,
        /// The files that define the profile (the credentials file first).
        files: Vec<PathBuf>,
    },
    WebIdentity {
        role_arn: Option<String>,
    },
    Container,
    InstanceMetadata,
}

impl CredentialSource {
    /// The profile's name, for a profile source.
    pub fn profile_name(&self) -> Option<&str> {
        match self {
            CredentialSource::Profile { name, .. } => Some(name),
            _ => None,
        }
    }
}

impl fmt::Display for CredentialSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CredentialSource::Environment => f.write_str("environment variables"),
            CredentialSource::Profile { name, kind, files } => {
                write!(f, "profile `{name}`")?;
                if let Some(k) = kind {
                    write!(f, " ({k})")?;
                }
                if !files.is_empty() {
                    let shown: Vec<String> =
                        files.iter().map(|p| p.display().to_string()).collect();
                    write!(f, " from {}", shown.join(" and "))?;
                }
                Ok(())
            }
            CredentialSource::WebIdentity {
                role_arn: Some(arn),
            } => {
                write!(
                    f,
                    "web identity token (AWS_WEB_IDENTITY_TOKEN_FILE, role {arn})"
                )
            }
            CredentialSource::WebIdentity { role_arn: None } => {
                f.write_str("web identity token (AWS_WEB_IDENTITY_TOKEN_FILE)")
            }
            CredentialSource::Container => f.write_str("container credentials (ECS/EKS)"),
            CredentialSource::InstanceMetadata => f.write_str("instance metadata (IMDS)"),
        }
    }
}

/// Credentials and where they came from.
#[derive(Debug, Clone)]
pub struct ResolvedCredentials {
    pub credentials: Credentials,
    pub source: CredentialSource,
}

impl ResolvedCredentials {
    pub fn masked_key_id(&self) -> String {
        secrets::mask_key_id(self.credentials.access_key_id())
    }
    pub fn is_session(&self) -> bool {
        self.credentials.session_token().is_some()
    }
}

/// A provider chain that records which provider answered and memoises the answer.
#[derive(Debug)]
pub struct TracedChain {
    providers: Vec<(CredentialSource, SharedCredentialsProvider)>,
    found: tokio::sync::Mutex<Option<ResolvedCredentials>>,
}

impl TracedChain {
    pub fn new(providers: Vec<(CredentialSource, SharedCredentialsProvider)>) -> Self {
        TracedChain {
            providers,
            found: tokio::sync::Mutex::new(None),
        }
    }

    /// Resolve (or return the memoised) credentials and their source.
    pub async fn resolve(&self) -> std::result::Result<ResolvedCredentials, CredentialsError> {
        let mut found = self.found.lock().await;
        if let Some(f) = found.as_ref() {
            let fresh = f
                .credentials
                .expiry()
                .map(|e| e > SystemTime::now() + Duration::from_secs(300))
                .unwrap_or(true);
            if fresh {
                return Ok(f.clone());
            }
        }
        let mut tried = Vec::new();
        for (source, provider) in &self.providers {
            match provider.provide_credentials().await {
                Ok(c) => {
                    secrets::register(c.access_key_id());
                    secrets::register(c.secret_access_key());
                    if let Some(t) = c.session_token() {
                        secrets::register(t);
                    }
                    tracing::debug!(source = %source, key = %secrets::mask_key_id(c.access_key_id()), "credentials found");
                    let r = ResolvedCredentials {
                        credentials: c,
                        source: source.clone(),
                    };
                    *found = Some(r.clone());
                    return Ok(r);
                }
                Err(CredentialsError::CredentialsNotLoaded(_)) => tried.push(source.to_string()),
                Err(e) => {
                    return Err(CredentialsError::provider_error(format!(
                        "{source}: {}",
                        chain_text(&e)
                    )))
                }
            }
        }
        Err(CredentialsError::not_loaded(format!(
            "no credentials in: {}",
            tried.join(", ")
        )))
    }
}

impl ProvideCredentials for TracedChain {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::new(async move { self.resolve().await.map(|r| r.credentials) })
    }
}

/// Instance metadata with a fast failure where there is none (a laptop) but one more, more
/// patient, attempt when the first one reached it (a real instance that answered slowly or
/// with an error).
#[derive(Debug)]
pub struct PatientImds {
    pub first: SharedCredentialsProvider,
    pub second: SharedCredentialsProvider,
}

/// Did this failure get past the connection to the metadata service? A refused or timed-out
/// connection did not (nothing is there); a read timeout, a broken answer or an error answer did.
pub fn reached_the_service(e: &CredentialsError) -> bool {
    if let Some(h) = find_source::<hyper_util::client::legacy::Error>(e) {
        if h.is_connect() {
            return false;
        }
    }
    if find_source::<ConnectorError>(e).is_some() {
        return true;
    }
    matches!(
        e,
        CredentialsError::ProviderError(_) | CredentialsError::Unhandled(_)
    )
}

impl ProvideCredentials for PatientImds {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::new(async move {
            let started = Instant::now();
            match self.first.provide_credentials().await {
                Err(e) if reached_the_service(&e) => {
                    tracing::debug!(
                        after_ms = started.elapsed().as_millis() as u64,
                        error = %chain_text(&e),
                        "instance metadata reached but no credentials; one more attempt"
                    );
                    self.second.provide_credentials().await
                }
                other => other,
            }
        })
    }
}

/// The profiles found in the shared config and credentials files (the SDK's parser).
/// With `selected`, that profile is the selected one (as with `--profile`).
pub async fn load_profiles(env: Lookup<'_>, selected: Option<&str>) -> Option<ProfileSet> {
    let files = EnvConfigFiles::default();
    aws_config::profile::parser::load(
        &Fs::real(),
        &sdk_env(env, PROFILE_VARS),
        &files,
        selected.map(|s| s.to_string().into()),
    )
    .await
    .ok()
}

/// The profiles of one file alone, parsed as a file of `kind`.
pub async fn profiles_of_file(kind: EnvConfigFileKind, text: &str) -> Option<ProfileSet> {
    let files = EnvConfigFiles::builder()
        .with_contents(kind, text.to_string())
        .build();
    aws_config::profile::parser::load(&Fs::real(), &Env::from_slice(&[]), &files, None)
        .await
        .ok()
}

/// The shared config and credentials files: (`AWS_CONFIG_FILE` or ~/.aws/config,
/// `AWS_SHARED_CREDENTIALS_FILE` or ~/.aws/credentials).
pub fn config_file_paths(env: Lookup) -> (PathBuf, PathBuf) {
    let home = env("HOME")
        .or_else(|| env("USERPROFILE"))
        .map(PathBuf::from)
        .unwrap_or_default();
    let config = env("AWS_CONFIG_FILE")
        .map(PathBuf::from)
        .unwrap_or_else(|| home.join(".aws/config"));
    let creds = env("AWS_SHARED_CREDENTIALS_FILE")
        .map(PathBuf::from)
        .unwrap_or_else(|| home.join(".aws/credentials"));
    (config, creds)
}

/// The shared files as (kind, path, text); a file that cannot be read is empty.
pub fn shared_files(env: Lookup) -> [(EnvConfigFileKind, PathBuf, String); 2] {
    let (config, creds) = config_file_paths(env);
    let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
    [
        (EnvConfigFileKind::Credentials, creds.clone(), read(&creds)),
        (EnvConfigFileKind::Config, config.clone(), read(&config)),
    ]
}

/// The profile `name` as a credentials source: its kind and the files that define it.
pub async fn profile_source(
    env: Lookup<'_>,
    profiles: Option<&ProfileSet>,
    name: &str,
) -> CredentialSource {
    let mut files = Vec::new();
    for (kind, path, text) in shared_files(env) {
        let defined = profiles_of_file(kind, &text)
            .await
            .is_some_and(|set| set.get_profile(name).is_some());
        if defined {
            files.push(path);
        }
    }
    CredentialSource::Profile {
        name: name.to_string(),
        kind: profiles.and_then(|p| ProfileKind::of(p, name)),
        files,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn profiles_are_described_by_kind_and_file_with_the_sdk_parser() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config");
        let creds = dir.path().join("credentials");
        std::fs::write(
            &config,
            "[profile web]\nlogin_session = arn:aws:iam::123456789012:user/Admin\nregion = eu-west-1\n\
             [profile sso]\nsso_session = corp\nsso_account_id = 1\n[sso-session corp]\nsso_start_url = https://x\n",
        )
        .unwrap();
        std::fs::write(
            &creds,
            "[keys]\naws_access_key_id = AKIA\naws_secret_access_key = s\n",
        )
        .unwrap();
        let vars: HashMap<&str, String> = [
            ("AWS_CONFIG_FILE", config.display().to_string()),
            ("AWS_SHARED_CREDENTIALS_FILE", creds.display().to_string()),
        ]
        .into_iter()
        .collect();
        let env = move |k: &str| vars.get(k).cloned();
        let set = load_profiles(&env, Some("web")).await.unwrap();
        let web = profile_source(&env, Some(&set), "web").await;
        assert_eq!(
            web.to_string(),
            format!("profile `web` (aws login) from {}", config.display())
        );
        assert_eq!(ProfileKind::of(&set, "sso"), Some(ProfileKind::Sso));
        let keys = profile_source(&env, Some(&set), "keys").await;
        assert_eq!(
            keys.to_string(),
            format!("profile `keys` (access keys) from {}", creds.display())
        );
        assert_eq!(keys.profile_name(), Some("keys"));
    }

    #[test]
    fn an_imds_error_answer_gets_a_second_attempt_and_nothing_there_does_not() {
        assert!(reached_the_service(&CredentialsError::provider_error(
            "IMDS answered 500"
        )));
        assert!(!reached_the_service(&CredentialsError::not_loaded(
            "IMDS is disabled"
        )));
    }
}
