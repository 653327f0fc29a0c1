//! AWS access: the one place that builds the SDK configuration and clients.
//!
//! Credentials come from [`credentials::TracedChain`], which says which provider supplied them.
//! Endpoints follow the AWS precedence: `--endpoint-url` for every service, otherwise per
//! service `AWS_ENDPOINT_URL_<SERVICE>`, then `AWS_ENDPOINT_URL`, then the profile's
//! `services` section, then the profile's `endpoint_url` (resolved with the SDK's own
//! `EnvConfigValue`, from the injectable environment). Errors are mapped in [`errors`].
//!
//! The environment is read through the lookup given to [`Aws::load_with_env`]; the SDK's own
//! providers (web identity, container, instance metadata) read the process environment, since
//! aws-config offers no public way to give them another one.

pub mod connection;
pub mod credentials;
pub mod errors;
pub mod http;
pub mod timeouts;

pub use credentials::{
    config_file_paths, load_profiles, CredentialSource, ResolvedCredentials, TracedChain,
};
pub use errors::{aws_error, error_code};

use crate::config::{Source, Val};
use crate::error::{Error, Reason, Result};
use aws_config::environment::credentials::EnvironmentVariableCredentialsProvider;
use aws_config::profile::ProfileSet;
use aws_config::provider_config::ProviderConfig;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::{future, ProvideCredentials, SharedCredentialsProvider};
use aws_runtime::env_config::EnvConfigValue;
pub use connection::Connection;
use credentials::{sdk_env, Lookup, PatientImds};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// The explanation of the two kinds of credentials, shown whenever credentials are missing.
pub const TWO_KINDS: &str = "sagetrain needs two kinds of credentials:\n\
  1. YOUR credentials, on this machine, to call AWS: access keys, an SSO session, or a CI web identity.\n\
  2. The EXECUTION ROLE, which SageMaker assumes to read your data and write your model (--role / SAGEMAKER_ROLE).\n\
The first kind is missing.";

/// How to get credentials onto this machine.
pub const CREDENTIALS_FIX: &str = "on a laptop: `aws configure sso` then `aws sso login --profile NAME` (or `aws configure` for access keys), then pass --profile NAME or set AWS_PROFILE\n\
in CI: set AWS_ROLE_ARN and AWS_WEB_IDENTITY_TOKEN_FILE (OIDC), or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY\n\
check with: sagetrain doctor";

/// The instance-metadata limits: the first attempt fails fast where there is no instance; the
/// second, made only when the first reached the service, is more patient. Both together take
/// as long as the single attempt of 1 s they replace, so that an address that accepts connections and never answers (some laptop
/// networks) still fails fast.
pub const IMDS_CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
pub const IMDS_FIRST_READ_TIMEOUT: Duration = Duration::from_millis(400);
pub const IMDS_SECOND_READ_TIMEOUT: Duration = Duration::from_millis(600);

/// The services sagetrain calls: the SDK's service id (which names `AWS_ENDPOINT_URL_<ID>` and
/// the profile's `services` key).
pub const SERVICES: &[&str] = &[
    "STS",
    "IAM",
    "ECR",
    "SageMaker",
    "S3",
    "CloudWatch Logs",
    "Secrets Manager",
    "Service Quotas",
    "Pricing",
    "SSM",
];

/// Everything needed to talk to AWS.
#[derive(Clone)]
pub struct Aws {
    pub sdk: SdkConfig,
    pub region: Val<String>,
    pub profile_name: String,
    pub chain: Arc<TracedChain>,
    /// A custom endpoint is in effect for S3 (which then needs path-style addressing).
    pub custom_endpoint: bool,
    /// The endpoint of each service that has its own (by [`SERVICES`] id).
    pub endpoints: BTreeMap<&'static str, String>,
    /// The selected profile's name and the settings that choose its account (role, SSO account,
    /// credential process...), when it has any: what the account of the profile's credentials
    /// is remembered by, since their keys change every session. Nothing secret.
    pub profile_identity: Option<String>,
}

/// The settings of a profile that choose the account of its credentials.
const IDENTITY_SETTINGS: &[&str] = &[
    "role_arn",
    "source_profile",
    "credential_source",
    "sso_account_id",
    "sso_role_name",
    "sso_session",
    "sso_start_url",
    "credential_process",
    "web_identity_token_file",
    "login_session",
];

/// See [`Aws::profile_identity`].
fn profile_identity(profiles: Option<&ProfileSet>, name: &str) -> Option<String> {
    let p = profiles?.get_profile(name)?;
    let set: Vec<String> = IDENTITY_SETTINGS
        .iter()
        .filter_map(|k| p.get(k).map(|v| format!("{k}={v}")))
        .collect();
    (!set.is_empty()).then(|| format!("{name}: {}", set.join("; ")))
}

/// The process environment, for callers without an injected one.
pub fn process_env(k: &str) -> Option<String> {
    std::env::var(k).ok()
}

/// The endpoint of each service, by the AWS precedence (see the module comment), unless
/// `AWS_IGNORE_CONFIGURED_ENDPOINT_URLS` (or the profile's `ignore_configured_endpoint_urls`)
/// is true. `--endpoint-url` is applied by the caller, over all of these.
pub fn configured_endpoints(
    env: Lookup,
    profiles: Option<&ProfileSet>,
) -> BTreeMap<&'static str, String> {
    let mut names = vec![
        "AWS_ENDPOINT_URL".to_string(),
        "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS".to_string(),
    ];
    names.extend(
        SERVICES
            .iter()
            .map(|s| format!("AWS_ENDPOINT_URL_{}", s.to_uppercase().replace(' ', "_"))),
    );
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let senv = sdk_env(&|k| env(k).filter(|v| !v.trim().is_empty()), &refs);
    let empty = ProfileSet::default();
    let sections = profiles.unwrap_or(&empty);
    let ignore = EnvConfigValue::new()
        .env("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS")
        .profile("ignore_configured_endpoint_urls")
        .load(&senv, Some(sections))
        .is_some_and(|(v, _)| v.trim().eq_ignore_ascii_case("true"));
    if ignore {
        return BTreeMap::new();
    }
    SERVICES
        .iter()
        .filter_map(|svc| {
            EnvConfigValue::new()
                .env("AWS_ENDPOINT_URL")
                .profile("endpoint_url")
                .service_id(svc)
                .load(&senv, Some(sections))
                .map(|(v, _)| (*svc, v.trim().to_string()))
        })
        .collect()
}

fn retry_config(env: Lookup, profiles: Option<&ProfileSet>) -> Result<RetryConfig> {
    let from_env = |var: &'static str| {
        env(var)
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

/// A service's client from the shared configuration, with the service's own endpoint if it
/// has one.
macro_rules! client {
    ($aws:expr, $krate:ident, $id:literal) => {
        client!($aws, $krate, $id, |b| b)
    };
    ($aws:expr, $krate:ident, $id:literal, $extra:expr) => {{
        let mut b = $krate::config::Builder::from(&$aws.sdk);
        if let Some(url) = $aws.endpoints.get($id) {
            b = b.endpoint_url(url);
        }
        $krate::Client::from_conf(($extra)(b).build())
    }};
}

impl Aws {
    /// Build the SDK configuration, reading the environment through `env`. No network call.
    ///
    /// `settings.endpoint_url` from `--endpoint-url` is for every service; from
    /// `AWS_ENDPOINT_URL`, a service's own variable or profile setting wins over it.
    pub async fn load_with_env(settings: &Connection, env: Lookup<'_>) -> Result<Aws> {
        let profiles =
            load_profiles(env, settings.profile.as_ref().map(|p| p.value.as_str())).await;
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
                let (config, creds) = config_file_paths(env);
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
            crate::secrets::register_profile_secrets(set);
        }
        let retry = retry_config(env, profiles.as_ref())?;

        let region = match &settings.region {
            Some(r) => r.clone(),
            None => match profiles.as_ref().and_then(|p| p.get("region")) {
                Some(r) => Val::new(
                    r.to_string(),
                    Source::Lookup(format!("`region` in profile `{profile_name}`")),
                ),
                None => {
                    return Err(Error::usage("no AWS region is set")
                        .with_reason(Reason::NoRegion)
                        .with_hint(
                        "pass --region REGION, export AWS_REGION=REGION, set `region = \"REGION\"` in sagetrain.toml, or `aws configure set region REGION`",
                    ))
                }
            },
        };

        let provider_config =
            ProviderConfig::default().with_region(Some(Region::new(region.value.clone())));
        let profile_label =
            credentials::profile_source(env, profiles.as_ref(), &profile_name).await;
        let mut profile_provider = aws_config::profile::ProfileFileCredentialsProvider::builder()
            .configure(&provider_config);
        if settings.profile.is_some() {
            profile_provider = profile_provider.profile_name(&profile_name);
        }
        let imds = |read: Duration| {
            let client = aws_config::imds::Client::builder()
                .configure(&provider_config)
                .max_attempts(1)
                .connect_timeout(IMDS_CONNECT_TIMEOUT)
                .read_timeout(read)
                .build();
            SharedCredentialsProvider::new(
                aws_config::imds::credentials::ImdsCredentialsProvider::builder()
                    .configure(&provider_config)
                    .imds_client(client)
                    .build(),
            )
        };
        let role_arn = env("AWS_ROLE_ARN").filter(|a| !a.is_empty());
        let chain = Arc::new(TracedChain::new(vec![
            (
                CredentialSource::Environment,
                SharedCredentialsProvider::new(EnvironmentVariableCredentialsProvider::new()),
            ),
            (
                profile_label,
                SharedCredentialsProvider::new(profile_provider.build()),
            ),
            (
                CredentialSource::WebIdentity { role_arn },
                SharedCredentialsProvider::new(
                    aws_config::web_identity_token::WebIdentityTokenCredentialsProvider::builder()
                        .configure(&provider_config)
                        .build(),
                ),
            ),
            (
                CredentialSource::Container,
                SharedCredentialsProvider::new(
                    aws_config::ecs::EcsCredentialsProvider::builder()
                        .configure(&provider_config)
                        .build(),
                ),
            ),
            (
                CredentialSource::InstanceMetadata,
                SharedCredentialsProvider::new(PatientImds {
                    first: imds(IMDS_FIRST_READ_TIMEOUT),
                    second: imds(IMDS_SECOND_READ_TIMEOUT),
                }),
            ),
        ]));

        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(region.value.clone()))
            .credentials_provider(SharedCredentialsProvider::new(ChainRef(chain.clone())))
            .retry_config(retry)
            .timeout_config({
                let t = timeouts::current();
                TimeoutConfig::builder()
                    .connect_timeout(t.connect.value)
                    .read_timeout(t.read.value)
                    .build()
            });
        if settings.profile.is_some() {
            loader = loader.profile_name(&profile_name);
        }
        // `--endpoint-url` (or any value not from the environment) is for every service; the
        // environment's and the profile's endpoints are resolved per service.
        let explicit = settings
            .endpoint_url
            .as_ref()
            .filter(|e| !matches!(e.source, Source::Env(_)));
        let endpoints = match explicit {
            Some(e) => {
                loader = loader.endpoint_url(&e.value);
                SERVICES.iter().map(|s| (*s, e.value.clone())).collect()
            }
            None => configured_endpoints(env, profiles.as_ref()),
        };
        for (svc, url) in &endpoints {
            tracing::debug!(service = svc, endpoint = %url, "endpoint");
        }
        let sdk = loader.load().await;
        Ok(Aws {
            profile_identity: profile_identity(profiles.as_ref(), &profile_name),
            sdk,
            region,
            profile_name,
            chain,
            custom_endpoint: endpoints.contains_key("S3"),
            endpoints,
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
                errors::chain_text(&other)
            ))
            .with_hint(
                "for an SSO profile run `aws sso login --profile NAME`, for an `aws login` profile `aws login --profile NAME`; otherwise check the profile in ~/.aws/config; `sagetrain doctor` checks the whole chain",
            ),
        })
    }

    pub fn sts(&self) -> aws_sdk_sts::Client {
        client!(self, aws_sdk_sts, "STS")
    }
    pub fn iam(&self) -> aws_sdk_iam::Client {
        client!(self, aws_sdk_iam, "IAM")
    }
    pub fn ecr(&self) -> aws_sdk_ecr::Client {
        client!(self, aws_sdk_ecr, "ECR")
    }
    pub fn sagemaker(&self) -> aws_sdk_sagemaker::Client {
        client!(self, aws_sdk_sagemaker, "SageMaker")
    }
    pub fn logs(&self) -> aws_sdk_cloudwatchlogs::Client {
        client!(self, aws_sdk_cloudwatchlogs, "CloudWatch Logs")
    }
    pub fn secrets(&self) -> aws_sdk_secretsmanager::Client {
        client!(self, aws_sdk_secretsmanager, "Secrets Manager")
    }
    /// Service Quotas, best effort: one attempt and a short wait, so that a Service Quotas that
    /// cannot answer (a permission, an endpoint without it) never slows a submit.
    pub fn quotas(&self) -> aws_sdk_servicequotas::Client {
        use aws_sdk_servicequotas::config::{retry::RetryConfig, timeout::TimeoutConfig, Builder};
        client!(
            self,
            aws_sdk_servicequotas,
            "Service Quotas",
            |b: Builder| b.retry_config(RetryConfig::disabled()).timeout_config(
                TimeoutConfig::builder()
                    .operation_attempt_timeout(Duration::from_secs(5))
                    .build()
            )
        )
    }
    /// The Price List API, best effort like [`Self::quotas`]. It answers only from a few
    /// regions' endpoints, whatever region is priced: us-east-1's.
    pub fn pricing(&self) -> aws_sdk_pricing::Client {
        use aws_sdk_pricing::config::{
            retry::RetryConfig, timeout::TimeoutConfig, Builder, Region,
        };
        client!(self, aws_sdk_pricing, "Pricing", |b: Builder| b
            .region(Region::new("us-east-1"))
            .retry_config(RetryConfig::disabled())
            .timeout_config(
                TimeoutConfig::builder()
                    .operation_attempt_timeout(Duration::from_secs(5))
                    .build()
            ))
    }
    pub fn ssm(&self) -> aws_sdk_ssm::Client {
        client!(self, aws_sdk_ssm, "SSM")
    }
    pub fn s3(&self) -> aws_sdk_s3::Client {
        client!(self, aws_sdk_s3, "S3", |b: aws_sdk_s3::config::Builder| b
            .force_path_style(self.custom_endpoint))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_services_own_endpoint_wins_over_the_global_one() {
        let env = |k: &str| match k {
            "AWS_ENDPOINT_URL" => Some("http://global".to_string()),
            "AWS_ENDPOINT_URL_SAGEMAKER" => Some("http://sagemaker".to_string()),
            "AWS_ENDPOINT_URL_CLOUDWATCH_LOGS" => Some("http://logs".to_string()),
            "AWS_ENDPOINT_URL_S3" => Some(" ".to_string()),
            _ => None,
        };
        let e = configured_endpoints(&env, None);
        assert_eq!(e["SageMaker"], "http://sagemaker");
        assert_eq!(e["CloudWatch Logs"], "http://logs");
        assert_eq!(e["S3"], "http://global", "an empty variable is unset");
        assert_eq!(e["STS"], "http://global");
        let ignore = |k: &str| {
            (k == "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS")
                .then(|| "true".to_string())
                .or_else(|| env(k))
        };
        assert!(configured_endpoints(&ignore, None).is_empty());
        assert!(configured_endpoints(&|_| None, None).is_empty());
    }

    #[test]
    fn retry_settings_are_validated_not_panicked_on() {
        // Only the profile path is exercised here; the environment path is covered end to end.
        assert!(retry_config(&|_| None, None).is_ok());
        let env = |k: &str| (k == "AWS_MAX_ATTEMPTS").then(|| "zero".to_string());
        let e = retry_config(&env, None).unwrap_err();
        assert!(e.message.contains("AWS_MAX_ATTEMPTS"), "{}", e.message);
    }
}
