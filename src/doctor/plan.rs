//! The checks of one `doctor` run, built from the settings `train` would use and handed to the
//! [`runner`](super::runner), which orders them by what each needs ([`super::runner::NEEDS`]).
//!
//! The configuration is read first (by the command); the region and the credentials come from
//! the SDK configuration (no network); the identity (sts:GetCallerIdentity) needs credentials;
//! then, concurrently: the access keys' age, the execution role (then its trust policy and
//! iam:PassRole), the image, the output bucket and every input channel; and, with no AWS
//! call, the container engine of local runs.

use super::checks::{
    credentials, engine, identity, quota, remote_debug, resources, role, role::RoleFound, secrets,
};
use super::runner::{self, Outcome, Step};
use super::{id, Check, Report};
use crate::aws::{Aws, Connection};
use crate::config::{Source, Val};
use crate::error::{Error, Kind, Reason};
use crate::job::lookups::Identity;
use crate::job::settings::TrainSettings;
use crate::job::spec::Violation;
use std::cell::OnceCell;

/// What reading the configuration found.
pub struct Configuration {
    pub check: Check,
    pub settings: Option<TrainSettings>,
    pub violations: Vec<Violation>,
    /// The file could not be read, or flags could not be parsed: the values `train` would use
    /// for the role, image, output and channels are unknown.
    pub partial: bool,
}

impl Configuration {
    /// Does a violation concern the value with this source (and map entry)?
    fn invalid(&self, source: &Source, entry: Option<&str>) -> bool {
        let name = source.name_for(entry);
        self.violations.iter().any(|v| v.what == name)
    }
    fn invalid_val<T>(&self, v: Option<&Val<T>>) -> bool {
        v.is_some_and(|v| self.invalid(&v.source, None))
    }
}

/// Run every check and return the report. With `offline`, no check calls AWS.
pub async fn run(
    cfg: Configuration,
    offline: bool,
    env: &dyn Fn(&str) -> Option<String>,
) -> Report {
    let Some(s) = cfg.settings.as_ref() else {
        // Not even the AWS settings are known: every check needs the configuration.
        let mut steps = vec![Step::ready(cfg.check.clone())];
        for c in [
            id::CREDENTIALS,
            id::IDENTITY,
            id::ACCESS_KEYS,
            id::REGION,
            id::ROLE,
            id::ROLE_TRUST,
            id::PASS_ROLE,
            id::IMAGE,
            id::OUTPUT,
        ] {
            // Never run: blocked by the configuration.
            steps.push(Step::ready(Check::pass(c, "")).invalid_input(true));
        }
        return runner::run(steps, offline).await;
    };

    // The SDK configuration: region and credentials provider (no network call).
    let region_invalid = cfg.invalid_val(s.connection.region.as_ref());
    let aws_settings = Connection {
        region: s.connection.region.clone().filter(|_| !region_invalid),
        ..s.connection.clone()
    };
    let mut aws_res = Aws::load_with_env(&aws_settings, env).await;
    let mut region_step = None;
    let no_region = matches!(&aws_res, Err(e) if e.reason == Some(Reason::NoRegion));
    if no_region {
        region_step = aws_res
            .as_ref()
            .err()
            .map(|e| Check::from_error(id::REGION, e));
        // IAM and STS are global: check the credentials, identity and role anyway.
        let placeholder = Connection {
            region: Some(Val::new(
                "us-east-1".into(),
                Source::Lookup("placeholder for the global services".into()),
            )),
            ..aws_settings.clone()
        };
        aws_res = Aws::load_with_env(&placeholder, env).await;
    }
    let credentials_error = matches!(&aws_res, Err(e) if e.kind == Kind::Credentials);
    let sdk_settings_invalid = matches!(&aws_res, Err(e) if e.kind != Kind::Credentials);
    let region_check = match (&aws_res, region_step) {
        (_, Some(failed)) => failed,
        (Ok(a), None) => Check::pass(id::REGION, a.region.value.clone())
            .with_source(a.region.source.name_for(None)),
        (Err(_), None) => match &s.connection.region {
            Some(r) => {
                Check::pass(id::REGION, r.value.clone()).with_source(r.source.name_for(None))
            }
            // Unused: the step is blocked (by the credentials or the configuration).
            None => Check::pass(id::REGION, ""),
        },
    };
    let mut region =
        Step::ready(region_check).invalid_input(region_invalid || sdk_settings_invalid);
    if credentials_error && s.connection.region.is_none() {
        // The region would come from the AWS profile, which is not usable.
        region = region.also_needs(id::CREDENTIALS);
    }
    let region_ok = !no_region && !region_invalid && !sdk_settings_invalid;

    // An invalid AWS SDK setting (AWS_MAX_ATTEMPTS, ...) is a configuration failure.
    let mut config_check = cfg.check.clone();
    if let Err(e) = &aws_res {
        if e.kind != Kind::Credentials {
            if config_check.status == super::Status::Fail {
                config_check.details.push(e.message.clone());
            } else {
                config_check = Check::from_error(id::CONFIG, e);
            }
        }
    }

    // What the checks pass on to the checks that need them.
    let aws: OnceCell<Aws> = OnceCell::new();
    let caller: OnceCell<Identity> = OnceCell::new();
    let role: OnceCell<RoleFound> = OnceCell::new();

    let credentials = async {
        let a = match aws_res {
            // Not found or not usable (an invalid SDK setting blocks this step instead).
            Err(e) => return Check::from_error(id::CREDENTIALS, &e),
            Ok(_) if offline => {
                return Check::skip(
                    id::CREDENTIALS,
                    "--offline: credentials are not resolved (that may need the network)",
                )
            }
            Ok(a) => a,
        };
        let found = a.credentials().await;
        let plaintext = match &found {
            Ok(c) if !c.is_session() && c.source.profile_name().is_some() => {
                credentials::plaintext_keys_of(env, &a.profile_name).await
            }
            _ => None,
        };
        let check = credentials::credentials_check(&found, plaintext.as_ref());
        let _ = aws.set(a);
        check
    };
    let identity = async {
        let Some(a) = aws.get() else {
            return unavailable(id::IDENTITY);
        };
        let (mut c, i) = identity::identity_check(&a.sts()).await;
        if !region_ok && c.passed() {
            c.details
                .push("checked with the us-east-1 endpoint, since no region is set".into());
        }
        if let Some(i) = i {
            let _ = caller.set(i);
        }
        c
    };
    let access_keys = async {
        let (Some(a), Some(who)) = (aws.get(), caller.get()) else {
            return unavailable(id::ACCESS_KEYS);
        };
        identity::access_keys_check(&a.iam(), who, std::time::SystemTime::now()).await
    };
    let role_check = async {
        let (Some(a), Some(who)) = (aws.get(), caller.get()) else {
            return unavailable(id::ROLE).into();
        };
        let (check, found) = role::role_check(&a.iam(), s.role.as_ref(), who).await;
        let usable = check.passed() && found.is_some();
        if let Some(f) = found {
            let _ = role.set(f);
        }
        Outcome { check, usable }
    };
    let trust = async {
        match role.get() {
            Some(r) => role::role_trust_check(r),
            None => unavailable(id::ROLE_TRUST),
        }
    };
    let pass_role = async {
        let (Some(a), Some(who), Some(r)) = (aws.get(), caller.get(), role.get()) else {
            return unavailable(id::PASS_ROLE);
        };
        role::pass_role_check(&a.iam(), who, &r.arn).await
    };
    let image = async {
        let (Some(a), Some(i)) = (aws.get(), s.image.as_ref()) else {
            return unavailable(id::IMAGE);
        };
        resources::image_check(&a.ecr(), i, &a.region.value).await
    };
    let output = async {
        let (Some(a), Some(who)) = (aws.get(), caller.get()) else {
            return unavailable(id::OUTPUT);
        };
        resources::output_check(
            &a.s3(),
            s.output_path.as_ref(),
            &who.account,
            &a.region.value,
        )
        .await
    };

    let quota = async {
        let Some(a) = aws.get() else {
            return unavailable(id::QUOTA);
        };
        let types = s
            .instance_type
            .as_ref()
            .map(|t| t.value.clone())
            .unwrap_or_else(|| vec!["ml.g5.xlarge".to_string()]);
        let spot = s.spot.as_ref().is_some_and(|v| v.value);
        let count = s.instance_count.as_ref().map_or(1, |c| c.value);
        quota::quota_check(&a.quotas(), &types, spot, count, &a.region.value).await
    };

    let mut steps = vec![
        Step::ready(config_check),
        Step::new(id::CREDENTIALS, credentials).invalid_input(sdk_settings_invalid),
        Step::new(id::IDENTITY, identity).network(),
        Step::new(id::ACCESS_KEYS, access_keys).network(),
        region,
        Step::new(id::ROLE, role_check)
            .network()
            .invalid_input(cfg.partial || cfg.invalid_val(s.role.as_ref())),
        Step::new(id::ROLE_TRUST, trust).network(),
        Step::new(id::PASS_ROLE, pass_role).network(),
        Step::new(id::IMAGE, image)
            .network()
            .invalid_input(cfg.partial || s.image.is_none() || cfg.invalid_val(s.image.as_ref())),
        Step::new(id::OUTPUT, output)
            .network()
            .invalid_input(cfg.partial || cfg.invalid_val(s.output_path.as_ref())),
        Step::new(id::QUOTA, quota).network().invalid_input(
            cfg.partial
                || cfg.invalid_val(s.instance_type.as_ref())
                || cfg.invalid_val(s.instance_count.as_ref()),
        ),
        // No AWS call: run with --offline too.
        Step::new(id::ENGINE, engine::engine_check(s.engine.as_ref(), env))
            .invalid_input(cfg.invalid_val(s.engine.as_ref())),
    ];
    if s.remote_debug.as_ref().is_some_and(|v| v.value) {
        let start_session = async {
            let (Some(a), Some(who)) = (aws.get(), caller.get()) else {
                return unavailable(id::START_SESSION);
            };
            remote_debug::start_session_check(&a.iam(), who).await
        };
        let role_ssm = async {
            let (Some(a), Some(r)) = (aws.get(), role.get()) else {
                return unavailable(id::ROLE_SSM);
            };
            remote_debug::role_channels_check(&a.iam(), &r.arn).await
        };
        steps.push(Step::ready(remote_debug::plugin_check(env)));
        steps.push(Step::new(id::START_SESSION, start_session).network());
        steps.push(Step::new(id::ROLE_SSM, role_ssm).network());
    }
    if s.channels.is_empty() && !cfg.partial {
        steps.push(Step::ready(Check::warn(
            id::CHANNELS,
            "no input channels: the container gets no data",
            "add --train s3://BUCKET/PREFIX/ (and --validation), or a [channels] table in sagetrain.toml",
        )));
    }
    for (name, uri) in &s.channels {
        let check_id = format!("channel.{name}");
        let invalid = cfg.partial || cfg.invalid(&uri.source, Some(name));
        let aws = &aws;
        let run = async move {
            let Some(a) = aws.get() else {
                return unavailable(&format!("channel.{name}"));
            };
            resources::channel_check(&a.s3(), name, uri, &a.region.value).await
        };
        steps.push(Step::new(&check_id, run).network().invalid_input(invalid));
    }
    for (name, given) in &s.secrets {
        let check_id = secrets::check_id(name);
        let invalid = cfg.partial || cfg.invalid(&given.source, Some(name));
        let (aws, role) = (&aws, &role);
        let run = async move {
            let (Some(a), Some(r)) = (aws.get(), role.get()) else {
                return unavailable(&secrets::check_id(name));
            };
            secrets::secret_check(&a.secrets(), &a.iam(), name, given, &r.arn, &a.region.value)
                .await
        };
        steps.push(Step::new(&check_id, run).network().invalid_input(invalid));
    }
    runner::run(steps, offline).await
}

/// A prerequisite passed but gave nothing to use: a defect of the plan, not of the setup.
fn unavailable(check_id: &str) -> Check {
    Check::from_error(
        check_id,
        &Error::internal("a check it needs passed without giving its result"),
    )
}
