//! AWS access: the one place that builds the SDK configuration and clients.
//!
//! Credentials come from a chain that mirrors the SDK's default order (environment, profile,
//! web identity, container, instance metadata) with each provider labelled, so that the tool can
//! say which one supplied them (the SDK has no getter for that). The chain memoises what it
//! found until shortly before expiry, so the up-front check and the clients share one
//! resolution.

pub mod timeouts;

use crate::config::{Source, Val};
use crate::error::{Error, Kind, Result};
use crate::secrets;
use aws_config::environment::credentials::EnvironmentVariableCredentialsProvider;
use aws_config::profile::ProfileSet;
use aws_config::provider_config::ProviderConfig;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::{future, ProvideCredentials, SharedCredentialsProvider};
use aws_credential_types::Credentials;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use aws_types::os_shim_internal::{Env, Fs};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// The explanation of the two kinds of credentials, shown whenever credentials are missing.
pub const TWO_KINDS: &str = "sagetrain needs two kinds of credentials:\n\
  1. YOUR credentials, on this machine, to call AWS: access keys, an SSO session, or a CI web identity.\n\
  2. The EXECUTION ROLE, which SageMaker assumes to read your data and write your model (--role / SAGEMAKER_ROLE).\n\
The first kind is missing.";

/// How to get credentials onto this machine.
pub const CREDENTIALS_FIX: &str = "on a laptop: `aws configure sso` then `aws sso login --profile NAME` (or `aws configure` for access keys), then pass --profile NAME or set AWS_PROFILE\n\
in CI: set AWS_ROLE_ARN and AWS_WEB_IDENTITY_TOKEN_FILE (OIDC), or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY\n\
check with: sagetrain doctor";

/// The start of the error when no region is set anywhere.
pub const NO_REGION: &str = "no AWS region is set";

/// Credentials and where they came from.
#[derive(Debug, Clone)]
pub struct ResolvedCredentials {
    pub credentials: Credentials,
    /// "environment variables", "profile `dev` (SSO)", ...
    pub source: String,
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
    providers: Vec<(String, SharedCredentialsProvider)>,
    found: tokio::sync::Mutex<Option<ResolvedCredentials>>,
}

impl TracedChain {
    pub fn new(providers: Vec<(String, SharedCredentialsProvider)>) -> Self {
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
        for (label, provider) in &self.providers {
            match provider.provide_credentials().await {
                Ok(c) => {
                    secrets::register(c.access_key_id());
                    secrets::register(c.secret_access_key());
                    if let Some(t) = c.session_token() {
                        secrets::register(t);
                    }
                    tracing::debug!(source = %label, key = %secrets::mask_key_id(c.access_key_id()), "credentials found");
                    let r = ResolvedCredentials {
                        credentials: c,
                        source: label.clone(),
                    };
                    *found = Some(r.clone());
                    return Ok(r);
                }
                Err(CredentialsError::CredentialsNotLoaded(_)) => tried.push(label.clone()),
                Err(e) => {
                    return Err(CredentialsError::provider_error(format!(
                        "{label}: {}",
                        DisplayErrorContext(&e)
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

/// The AWS side of the settings.
#[derive(Debug, Clone, Default)]
pub struct AwsSettings {
    pub profile: Option<Val<String>>,
    pub region: Option<Val<String>>,
    pub endpoint_url: Option<Val<String>>,
}

/// Everything needed to talk to AWS.
#[derive(Clone)]
pub struct Aws {
    pub sdk: SdkConfig,
    pub region: Val<String>,
    pub profile_name: String,
    pub chain: Arc<TracedChain>,
    /// A custom endpoint is in effect (S3 then needs path-style addressing).
    pub custom_endpoint: bool,
}

/// The profiles found in the shared config and credentials files.
/// With `selected`, that profile is the selected one (as with `--profile`).
pub async fn load_profiles(selected: Option<&str>) -> Option<ProfileSet> {
    let files = aws_runtime::env_config::file::EnvConfigFiles::default();
    aws_config::profile::parser::load(
        &Fs::real(),
        &Env::real(),
        &files,
        selected.map(|s| s.to_string().into()),
    )
    .await
    .ok()
}

/// The shared config and credentials files: (`AWS_CONFIG_FILE` or ~/.aws/config,
/// `AWS_SHARED_CREDENTIALS_FILE` or ~/.aws/credentials).
pub fn config_file_paths() -> (PathBuf, PathBuf) {
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    let config = std::env::var_os("AWS_CONFIG_FILE")
        .map(PathBuf::from)
        .unwrap_or_else(|| home.join(".aws/config"));
    let creds = std::env::var_os("AWS_SHARED_CREDENTIALS_FILE")
        .map(PathBuf::from)
        .unwrap_or_else(|| home.join(".aws/credentials"));
    (config, creds)
}

/// Describe a profile: which file defines it and what kind of credentials it holds.
pub fn describe_profile(profiles: Option<&ProfileSet>, name: &str) -> String {
    let (config, creds) = config_file_paths();
    let in_file = |p: &PathBuf, header: &[String]| {
        std::fs::read_to_string(p)
            .map(|t| {
                t.lines()
                    .any(|l| header.iter().any(|h| l.trim().replace(' ', "") == *h))
            })
            .unwrap_or(false)
    };
    let mut files = Vec::new();
    if in_file(&creds, &[format!("[{name}]")]) {
        files.push(creds.display().to_string());
    }
    if in_file(&config, &[format!("[profile{name}]"), format!("[{name}]")]) {
        files.push(config.display().to_string());
    }
    let kind = profiles.and_then(|p| p.get_profile(name)).map(|p| {
        if p.get("sso_session").is_some() || p.get("sso_start_url").is_some() {
            "SSO"
        } else if p.get("credential_process").is_some() {
            "credential_process"
        } else if p.get("web_identity_token_file").is_some() {
            "web identity"
        } else if p.get("role_arn").is_some() {
            "assume role"
        } else if p.get("aws_access_key_id").is_some() {
            "access keys"
        } else {
            "settings only"
        }
    });
    let mut s = format!("profile `{name}`");
    if let Some(k) = kind {
        s.push_str(&format!(" ({k})"));
    }
    if !files.is_empty() {
        s.push_str(&format!(" from {}", files.join(" and ")));
    }
    s
}

fn retry_config(profiles: Option<&ProfileSet>) -> Result<RetryConfig> {
    let from_env = |var: &'static str| {
        std::env::var(var)
            .ok()
            .filter(|v| !v.is_empty())
            .map(|v| (v, var.to_string()))
    };
    let from_profile = |key: &str| {
        profiles.and_then(|p| p.get(key)).map(|v| {
            (
                v.to_string(),
                format!(
                    "`{key}` in profile `{}`",
                    profiles.unwrap().selected_profile()
                ),
            )
        })
    };
    let attempts = from_env("AWS_MAX_ATTEMPTS").or_else(|| from_profile("max_attempts"));
    let mode = from_env("AWS_RETRY_MODE").or_else(|| from_profile("retry_mode"));
    let mut rc = match mode {
        None => RetryConfig::standard(),
        Some((m, _)) if m.eq_ignore_ascii_case("standard") => RetryConfig::standard(),
        Some((m, _)) if m.eq_ignore_ascii_case("adaptive") => RetryConfig::adaptive(),
        Some((m, from)) => {
            return Err(Error::usage(format!(
                "{from}: `{m}` is not a retry mode; it must be `standard` or `adaptive`"
            ))
            .with_hint("e.g. export AWS_RETRY_MODE=standard (or unset it)"))
        }
    };
    if let Some((a, from)) = attempts {
        match a.trim().parse::<u32>() {
            Ok(n) if n >= 1 => rc = rc.with_max_attempts(n),
            _ => {
                return Err(Error::usage(format!(
                    "{from}: `{a}` is not a valid number of attempts; it must be a whole number of at least 1"
                ))
                .with_hint("e.g. export AWS_MAX_ATTEMPTS=3 (or unset it)"))
            }
        }
    }
    Ok(rc)
}

impl Aws {
    /// Build the SDK configuration. Makes no network call.
    pub async fn load(settings: &AwsSettings) -> Result<Aws> {
        let profiles = load_profiles(settings.profile.as_ref().map(|p| p.value.as_str())).await;
        let profile_name = settings
            .profile
            .as_ref()
            .map(|p| p.value.clone())
            .unwrap_or_else(|| "default".to_string());

        // A profile named on purpose must exist: otherwise the SDK falls through to IMDS.
        if let Some(p) = &settings.profile {
            let exists = profiles
                .as_ref()
                .map(|s| s.get_profile(&p.value).is_some())
                .unwrap_or(false);
            if !exists {
                let mut names: Vec<String> = profiles
                    .as_ref()
                    .map(|s| s.profiles().map(str::to_string).collect())
                    .unwrap_or_default();
                names.sort();
                let (config, creds) = config_file_paths();
                let list = if names.is_empty() {
                    format!(
                        "there are no profiles in {} or {}",
                        config.display(),
                        creds.display()
                    )
                } else {
                    format!("profiles that exist: {}", names.join(", "))
                };
                return Err(Error::credentials(format!(
                    "the AWS profile `{}` (from {}) does not exist; {list}",
                    p.value,
                    p.source.name_for(None)
                ))
                .with_hint(format!(
                    "use one of the profiles above, or create it: aws configure sso --profile {0} (or aws configure --profile {0})",
                    p.value
                )));
            }
        }
        // Hide every key these files hold from all output, before any provider (or its debug
        // log) has touched them.
        if let Some(set) = &profiles {
            secrets::register_profile_secrets(set);
        }
        let profiles_for_selected = profiles;
        let retry = retry_config(profiles_for_selected.as_ref())?;

        let region = match &settings.region {
            Some(r) => r.clone(),
            None => match profiles_for_selected.as_ref().and_then(|p| p.get("region")) {
                Some(r) => Val::new(
                    r.to_string(),
                    Source::Lookup(format!("`region` in profile `{profile_name}`")),
                ),
                None => {
                    return Err(Error::usage(NO_REGION).with_hint(
                        "pass --region REGION, export AWS_REGION=REGION, set `region = \"REGION\"` in sagetrain.toml, or `aws configure set region REGION`",
                    ))
                }
            },
        };

        let provider_config =
            ProviderConfig::default().with_region(Some(Region::new(region.value.clone())));
        let profile_label = describe_profile(profiles_for_selected.as_ref(), &profile_name);
        let mut profile_provider = aws_config::profile::ProfileFileCredentialsProvider::builder()
            .configure(&provider_config);
        if settings.profile.is_some() {
            profile_provider = profile_provider.profile_name(&profile_name);
        }
        let imds_client = aws_config::imds::Client::builder()
            .configure(&provider_config)
            .max_attempts(1)
            .connect_timeout(Duration::from_millis(500))
            .read_timeout(Duration::from_secs(1))
            .build();
        let web_identity_label = match std::env::var("AWS_ROLE_ARN") {
            Ok(arn) if !arn.is_empty() => {
                format!("web identity token (AWS_WEB_IDENTITY_TOKEN_FILE, role {arn})")
            }
            _ => "web identity token (AWS_WEB_IDENTITY_TOKEN_FILE)".to_string(),
        };
        let chain = Arc::new(TracedChain::new(vec![
            (
                "environment variables".to_string(),
                SharedCredentialsProvider::new(EnvironmentVariableCredentialsProvider::new()),
            ),
            (
                profile_label,
                SharedCredentialsProvider::new(profile_provider.build()),
            ),
            (
                web_identity_label,
                SharedCredentialsProvider::new(
                    aws_config::web_identity_token::WebIdentityTokenCredentialsProvider::builder()
                        .configure(&provider_config)
                        .build(),
                ),
            ),
            (
                "container credentials (ECS/EKS)".to_string(),
                SharedCredentialsProvider::new(
                    aws_config::ecs::EcsCredentialsProvider::builder()
                        .configure(&provider_config)
                        .build(),
                ),
            ),
            (
                "instance metadata (IMDS)".to_string(),
                SharedCredentialsProvider::new(
                    aws_config::imds::credentials::ImdsCredentialsProvider::builder()
                        .configure(&provider_config)
                        .imds_client(imds_client)
                        .build(),
                ),
            ),
        ]));

        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(region.value.clone()))
            .credentials_provider(SharedCredentialsProvider::new(ChainRef(chain.clone())))
            .retry_config(retry)
            .timeout_config({
                let t = crate::aws::timeouts::current();
                TimeoutConfig::builder()
                    .connect_timeout(t.connect.value)
                    .read_timeout(t.read.value)
                    .build()
            });
        if settings.profile.is_some() {
            loader = loader.profile_name(&profile_name);
        }
        let custom_endpoint =
            settings.endpoint_url.is_some() || std::env::var_os("AWS_ENDPOINT_URL_S3").is_some();
        if let Some(e) = &settings.endpoint_url {
            loader = loader.endpoint_url(&e.value);
        }
        let sdk = loader.load().await;
        Ok(Aws {
            sdk,
            region,
            profile_name,
            chain,
            custom_endpoint,
        })
    }

    /// Resolve credentials now, so that a missing or broken setup is reported before any work.
    pub async fn credentials(&self) -> Result<ResolvedCredentials> {
        self.chain.resolve().await.map_err(|e| match e {
            CredentialsError::CredentialsNotLoaded(_) => Error::credentials(format!(
                "no AWS credentials found (looked in: environment variables, profile `{}`, web identity, container, instance metadata)",
                self.profile_name
            ))
            .with_details(TWO_KINDS.lines().map(str::to_string).collect())
            .with_hint(CREDENTIALS_FIX),
            other => Error::credentials(format!(
                "could not load AWS credentials: {}",
                DisplayErrorContext(&other)
            ))
            .with_hint(
                "for an SSO profile run `aws sso login --profile NAME`; otherwise check the profile in ~/.aws/config; `sagetrain doctor` checks the whole chain",
            ),
        })
    }

    pub fn sts(&self) -> aws_sdk_sts::Client {
        aws_sdk_sts::Client::new(&self.sdk)
    }
    pub fn iam(&self) -> aws_sdk_iam::Client {
        aws_sdk_iam::Client::new(&self.sdk)
    }
    pub fn ecr(&self) -> aws_sdk_ecr::Client {
        aws_sdk_ecr::Client::new(&self.sdk)
    }
    pub fn sagemaker(&self) -> aws_sdk_sagemaker::Client {
        aws_sdk_sagemaker::Client::new(&self.sdk)
    }
    pub fn logs(&self) -> aws_sdk_cloudwatchlogs::Client {
        aws_sdk_cloudwatchlogs::Client::new(&self.sdk)
    }
    pub fn s3(&self) -> aws_sdk_s3::Client {
        let conf = aws_sdk_s3::config::Builder::from(&self.sdk)
            .force_path_style(self.custom_endpoint)
            .build();
        aws_sdk_s3::Client::from_conf(conf)
    }
}

/// Lets the SDK share the chain (and its memo) with [`Aws::credentials`].
#[derive(Debug)]
struct ChainRef(Arc<TracedChain>);

impl ProvideCredentials for ChainRef {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        self.0.provide_credentials()
    }
}

/// Error codes that mean the caller's credentials were refused.
const CREDENTIAL_CODES: &[&str] = &[
    "InvalidClientTokenId",
    "UnrecognizedClientException",
    "SignatureDoesNotMatch",
    "IncompleteSignature",
    "ExpiredToken",
    "ExpiredTokenException",
    "InvalidAccessKeyId",
    "InvalidToken",
    "AuthFailure",
    "MissingAuthenticationToken",
];

/// Turn an SDK error into a user-facing error with a likely fix.
pub fn aws_error<E>(operation: &str, err: &SdkError<E, HttpResponse>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match err {
        SdkError::ServiceError(se) => {
            let code = se.err().code().unwrap_or("Unknown").to_string();
            let message = se.err().message().unwrap_or("").to_string();
            let status = se.raw().status().as_u16();
            service_error(operation, &code, &message, status)
        }
        SdkError::TimeoutError(_) => timeout_error(operation, ""),
        SdkError::DispatchFailure(d) => {
            let text = format!("{}", DisplayErrorContext(err));
            if text.contains("credentials") || text.contains("identity") {
                return Error::credentials(format!(
                    "{operation}: could not use your AWS credentials: {text}"
                ))
                .with_hint(CREDENTIALS_FIX);
            }
            if d.is_timeout() {
                return timeout_error(operation, &text);
            }
            let why = if d.is_io() {
                "the connection failed"
            } else {
                "the request could not be sent"
            };
            Error::aws(format!("{operation}: {why}: {text}"))
                .with_hint("check your network, the region, and --endpoint-url / AWS_ENDPOINT_URL if you use one")
        }
        SdkError::ResponseError(_) => Error::aws(format!(
            "{operation}: the response could not be read: {}",
            DisplayErrorContext(err)
        ))
        .with_hint("try again; if it persists, run with -vv and report it"),
        _ => {
            let text = format!("{}", DisplayErrorContext(err));
            if text.contains("credentials") || text.contains("identity") {
                Error::credentials(format!(
                    "{operation}: could not use your AWS credentials: {text}"
                ))
                .with_hint(CREDENTIALS_FIX)
            } else {
                Error::aws(format!("{operation}: {text}"))
            }
        }
    }
}

/// The error for a request that timed out, naming the time limit and where it was set.
fn timeout_error(operation: &str, text: &str) -> Error {
    let t = crate::aws::timeouts::current();
    let show = crate::aws::timeouts::show;
    if text.contains("HTTP read") {
        Error::aws(format!(
            "{operation}: timed out: no response within the read timeout of {} ({})",
            show(t.read.value),
            t.read.source.name_for(None)
        ))
        .with_hint("the endpoint is slow or stalled: check it (--endpoint-url, AWS_ENDPOINT_URL) and try again, or give a longer --read-timeout (SAGETRAIN_READ_TIMEOUT); each request is tried AWS_MAX_ATTEMPTS times (default 3)")
    } else if text.contains("HTTP connect") || text.contains("connect") {
        Error::aws(format!(
            "{operation}: timed out: could not connect within the connect timeout of {} ({})",
            show(t.connect.value),
            t.connect.source.name_for(None)
        ))
        .with_hint("check your network, the region and the endpoint (--endpoint-url, AWS_ENDPOINT_URL), or give a longer --connect-timeout (SAGETRAIN_CONNECT_TIMEOUT)")
    } else {
        Error::aws(format!(
            "{operation}: timed out ({})",
            crate::aws::timeouts::timeout_explanation()
        ))
        .with_hint("check your network and the endpoint (--endpoint-url, AWS_ENDPOINT_URL); the limits are --read-timeout and --connect-timeout, retries follow AWS_MAX_ATTEMPTS")
    }
}

/// The error for a service's answer, with the fix for the errors users hit.
pub fn service_error(operation: &str, code: &str, message: &str, status: u16) -> Error {
    let base = format!("{operation} failed: {code}: {message}");
    if CREDENTIAL_CODES.contains(&code) {
        return Error::credentials(format!("AWS rejected your credentials ({operation}: {code}: {message})"))
            .with_hint(format!(
                "your access key or session is invalid or expired: run `aws sso login` for an SSO profile, or replace the keys (`aws configure`); `sagetrain doctor` shows which credentials are used\n{}",
                "this is about YOUR credentials on this machine, not the execution role"
            ));
    }
    let lower = message.to_ascii_lowercase();
    let hint = if lower.contains("iam:passrole") {
        Some("your credentials may not pass the execution role to SageMaker: allow iam:PassRole on the role with the condition iam:PassedToService = sagemaker.amazonaws.com (see examples/iam/developer-policy.json); `sagetrain doctor` checks it with iam:SimulatePrincipalPolicy".to_string())
    } else if lower.contains("could not assume role") || lower.contains("unable to assume") {
        Some("the execution role must trust SageMaker: its trust policy needs Principal {\"Service\": \"sagemaker.amazonaws.com\"} with sts:AssumeRole (see examples/iam/execution-role-trust-policy.json); `sagetrain doctor` checks it".to_string())
    } else if code == "ResourceInUse" || lower.contains("already exists") {
        Some("a job with this name exists: drop --name to get a fresh timestamped name, or choose another --name".to_string())
    } else if code == "ResourceLimitExceeded" {
        Some("an account quota was reached: choose another --instance-type or request an increase in the Service Quotas console (SageMaker, \"<instance type> for training job usage\")".to_string())
    } else if code == "PermanentRedirect" || code == "AuthorizationHeaderMalformed" || status == 301
    {
        Some("the bucket is in another region: the job's buckets must be in the job's region (--region), or use a bucket there".to_string())
    } else if code == "NoSuchBucket" {
        Some("create the bucket in the job's region (aws s3 mb s3://BUCKET --region REGION) or fix the URI".to_string())
    } else if code.contains("Throttl") || code == "SlowDown" || code == "TooManyRequestsException" {
        Some("AWS is throttling requests; try again later, or raise AWS_MAX_ATTEMPTS".to_string())
    } else if code == "AccessDenied" || code == "AccessDeniedException" || status == 403 {
        Some("your credentials lack a permission named above; ask for it or use another profile (see examples/iam/developer-policy.json)".to_string())
    } else {
        None
    };
    let e = Error::new(Kind::Aws, base);
    match hint {
        Some(h) => e.with_hint(h),
        None => e,
    }
}

/// The error code of an SDK error, if the service answered.
pub fn error_code<E: ProvideErrorMetadata>(err: &SdkError<E, HttpResponse>) -> Option<String> {
    match err {
        SdkError::ServiceError(se) => se.err().code().map(str::to_string),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_codes_map_to_the_credentials_exit_code() {
        let e = service_error(
            "GetCallerIdentity",
            "InvalidClientTokenId",
            "The security token included in the request is invalid.",
            403,
        );
        assert_eq!(e.kind, Kind::Credentials);
        let e = service_error(
            "CreateTrainingJob",
            "AccessDeniedException",
            "User: x is not authorized to perform: iam:PassRole on resource: r",
            400,
        );
        assert_eq!(e.kind, Kind::Aws);
        assert!(e.hint.unwrap().contains("iam:PassedToService"));
        let e = service_error("CreateTrainingJob", "ValidationException", "Could not assume role arn:aws:iam::1:role/x. Please ensure that the role exists and allows principal 'sagemaker.amazonaws.com' to assume the role.", 400);
        assert!(e.hint.unwrap().contains("trust policy"));
        let e = service_error("CreateTrainingJob", "ResourceLimitExceeded", "quota", 400);
        assert!(e.hint.unwrap().contains("Service Quotas"));
    }

    #[test]
    fn retry_settings_are_validated_not_panicked_on() {
        // Only the profile path is exercised here; the environment path is covered end to end.
        assert!(retry_config(None).is_ok());
    }
}
