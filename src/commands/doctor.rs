//! `sagetrain doctor`: check every link `train` relies on, with the same settings, and name the
//! fix for each broken one. Creates nothing.
//!
//! Order and dependencies: the configuration is read first; the region and the credentials
//! come from it (no network); the identity (sts:GetCallerIdentity) needs credentials; then,
//! concurrently: the access keys' age, the execution role (then its trust policy and
//! iam:PassRole), the image, the output bucket and every input channel. A check whose
//! prerequisite failed is reported as skipped, naming it, not as a failure of its own.

use super::Context;
use crate::aws::{self, Aws, AwsSettings};
use crate::cli::TrainArgs;
use crate::config::{LoadedFile, Source, Val};
use crate::doctor::{self, id, Check, Report};
use crate::error::{Error, Kind, Reason, Result};
use crate::job::settings::TrainSettings;
use crate::job::spec::{validate_settings_at, Violation};

/// What the configuration step found.
struct Config {
    check: Check,
    settings: Option<TrainSettings>,
    violations: Vec<Violation>,
    /// The file could not be read, or flags could not be parsed: the values `train` would use
    /// for the role, image, output and channels are unknown.
    partial: bool,
}

fn configuration(ctx: &Context, args: &TrainArgs) -> Config {
    let (file, file_error) = match ctx.config_file() {
        Ok(f) => (f, None),
        Err(e) => (None, Some(e)),
    };
    let mut partial = file_error.is_some();
    let layered = TrainSettings::layer(&ctx.global, args, &*ctx.env, file.as_ref());
    let (settings, violations) = match layered {
        Ok(mut s) => {
            // With --offline, `train` needs every value a lookup would give; doctor's --offline
            // only means "make no call", so those rules do not apply to it.
            s.offline = false;
            let v = validate_settings_at(&s, &ctx.cwd);
            (Some(s), v)
        }
        Err(v) => {
            partial = true;
            // The AWS settings (profile, region, endpoint) still count: take them from the
            // layers without the flags that could not be read.
            let fallback =
                TrainSettings::layer(&ctx.global, &TrainArgs::default(), &*ctx.env, file.as_ref())
                    .ok();
            (fallback, v)
        }
    };
    let check = if let Some(e) = &file_error {
        Check::from_error(id::CONFIG, e)
    } else if !violations.is_empty() {
        let n = violations.len();
        let mut details: Vec<String> = violations.iter().map(|v| v.to_string()).collect();
        if file.is_none() {
            details.push(
                "no sagetrain.toml in this folder or its parents: `sagetrain init` writes one"
                    .into(),
            );
        }
        Check::fail(
            id::CONFIG,
            Kind::Usage,
            format!(
                "{n} invalid setting{}{}",
                if n == 1 { "" } else { "s" },
                file.as_ref()
                    .map(|f| format!(" (config file {})", f.path.display()))
                    .unwrap_or_default()
            ),
            "fix the values above (flags, environment variables or sagetrain.toml); `sagetrain config` shows where each value comes from",
        )
        .with_details(details)
    } else {
        match &file {
            Some(LoadedFile { path, .. }) => Check::pass(
                id::CONFIG,
                format!("{}: parsed, valid, no credential-like values", path.display()),
            ),
            None => Check::warn(
                id::CONFIG,
                "no sagetrain.toml in this folder or its parents: settings come from flags and environment variables only",
                "`sagetrain init` writes a commented sagetrain.toml with what it can find in your account",
            ),
        }
    };
    Config {
        check,
        settings,
        violations,
        partial,
    }
}

/// Does a violation concern the value with this source (and map entry)?
fn is_invalid(violations: &[Violation], source: &Source, entry: Option<&str>) -> bool {
    let name = source.name_for(entry);
    violations.iter().any(|v| v.what == name)
}

const SEE_CONFIG: &str = "an invalid or unreadable setting (see configuration)";

pub async fn run(ctx: &Context, args: &TrainArgs) -> Result<()> {
    let report = checks(ctx, args).await;
    if ctx.json() {
        ctx.ui.result_json(&report.to_json());
    } else {
        ctx.ui.result_text(&report.to_text());
    }
    match report.exit_code() {
        0 => Ok(()),
        code => {
            let kind = match code {
                3 => Kind::Credentials,
                2 => Kind::Usage,
                1 => Kind::Internal,
                _ => Kind::Aws,
            };
            let failed: Vec<String> = report
                .checks
                .iter()
                .filter(|c| c.status == doctor::Status::Fail)
                .map(|c| doctor::name_of(&c.id))
                .collect();
            Err(Error::new(
                kind,
                format!(
                    "{} check{} failed: {}",
                    failed.len(),
                    if failed.len() == 1 { "" } else { "s" },
                    failed.join(", ")
                ),
            )
            .with_hint(
                "apply the fix shown under each failed check, then run `sagetrain doctor` again",
            ))
        }
    }
}

/// Run every check and return the report.
pub async fn checks(ctx: &Context, args: &TrainArgs) -> Report {
    let mut report = Report::default();
    let cfg = configuration(ctx, args);
    let mut config_check = cfg.check;
    let offline = args.offline;

    let Some(s) = cfg.settings else {
        report.checks.push(config_check);
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
            report.checks.push(Check::blocked(
                c,
                id::CONFIG,
                "needs valid settings (see configuration)",
            ));
        }
        return report;
    };
    let violations = &cfg.violations;

    // Region and credentials: the SDK configuration (no network call).
    let c = &s.connection;
    let aws_settings = AwsSettings {
        profile: c.profile.clone(),
        region: c
            .region
            .clone()
            .filter(|r| !is_invalid(violations, &r.source, None)),
        endpoint_url: c.endpoint_url.clone(),
    };
    let region_invalid = c
        .region
        .as_ref()
        .is_some_and(|r| is_invalid(violations, &r.source, None));
    let region_check: Check;
    let mut region_ok = false;
    let mut aws_res: std::result::Result<Aws, Error> =
        Aws::load_with_env(&aws_settings, &*ctx.env).await;
    match &aws_res {
        Ok(a) => {
            region_ok = !region_invalid;
            region_check = if region_invalid {
                Check::blocked(id::REGION, id::CONFIG, SEE_CONFIG)
            } else {
                Check::pass(id::REGION, a.region.value.clone())
                    .with_source(a.region.source.name_for(None))
            };
        }
        Err(e) if e.reason == Some(Reason::NoRegion) => {
            region_check = if region_invalid {
                Check::blocked(id::REGION, id::CONFIG, SEE_CONFIG)
            } else {
                Check::from_error(id::REGION, e)
            };
            // IAM and STS are global: check the credentials, identity and role anyway.
            let placeholder = AwsSettings {
                region: Some(Val::new(
                    "us-east-1".into(),
                    Source::Lookup("placeholder for the global services".into()),
                )),
                ..aws_settings.clone()
            };
            aws_res = Aws::load_with_env(&placeholder, &*ctx.env).await;
        }
        Err(e) if e.kind == Kind::Credentials => {
            region_check = match &c.region {
                Some(r) if !region_invalid => {
                    region_ok = true;
                    Check::pass(id::REGION, r.value.clone()).with_source(r.source.name_for(None))
                }
                _ => Check::blocked(
                    id::REGION,
                    id::CREDENTIALS,
                    "comes from the AWS profile, which is not usable (see credentials)",
                ),
            };
        }
        Err(_) => {
            region_check = Check::blocked(id::REGION, id::CONFIG, SEE_CONFIG);
        }
    }
    // An invalid AWS SDK setting (AWS_MAX_ATTEMPTS, ...) is a configuration failure.
    if let Err(e) = &aws_res {
        if e.kind != Kind::Credentials {
            if config_check.status == doctor::Status::Fail {
                config_check.details.push(e.message.clone());
            } else {
                config_check = Check::from_error(id::CONFIG, e);
            }
        }
    }
    report.checks.push(config_check);

    // Credentials.
    let aws = match aws_res {
        Err(e) if e.kind == Kind::Credentials => {
            report.checks.push(Check::from_error(id::CREDENTIALS, &e));
            None
        }
        Err(_) => {
            report.checks.push(Check::blocked(
                id::CREDENTIALS,
                id::CONFIG,
                "needs valid AWS SDK settings (see configuration)",
            ));
            None
        }
        Ok(_) if offline => {
            report.checks.push(Check::skip(
                id::CREDENTIALS,
                "--offline: credentials are not resolved (that may need the network)",
            ));
            None
        }
        Ok(a) => {
            let found = a.credentials().await;
            let plaintext = match &found {
                Ok(c) if !c.is_session() && c.source.profile_name().is_some() => {
                    plaintext_keys_of(ctx, &a.profile_name).await
                }
                _ => None,
            };
            let check = doctor::credentials_check(&found, plaintext.as_ref());
            let ok = check.passed();
            report.checks.push(check);
            ok.then_some(a)
        }
    };

    // Identity.
    let identity = match &aws {
        None => {
            let c = if offline {
                Check::skip(id::IDENTITY, "--offline: no AWS call")
            } else {
                Check::blocked(
                    id::IDENTITY,
                    id::CREDENTIALS,
                    "needs credentials (see credentials)",
                )
            };
            report.checks.push(c);
            None
        }
        Some(a) => {
            let (c, i) = doctor::identity_check(&a.sts()).await;
            let note = (!region_ok && c.passed())
                .then(|| "checked with the us-east-1 endpoint, since no region is set".to_string());
            let mut c = c;
            if let Some(n) = note {
                c.details.push(n);
            }
            report.checks.push(c);
            i
        }
    };
    let (blocked_on, why) = if offline {
        (None, "--offline: no AWS call".to_string())
    } else if aws.is_none() {
        (
            Some(id::CREDENTIALS),
            "needs credentials (see credentials)".to_string(),
        )
    } else {
        (
            Some(id::IDENTITY),
            "needs working credentials: sts:GetCallerIdentity failed (see identity)".to_string(),
        )
    };
    let blocked = |check_id: &str| -> Check {
        match blocked_on {
            Some(on) => Check::blocked(check_id, on, why.clone()),
            None => Check::skip(check_id, why.clone()),
        }
    };

    let (Some(a), Some(caller)) = (aws.as_ref(), identity.as_ref()) else {
        report.checks.push(blocked(id::ACCESS_KEYS));
        report.checks.push(region_check);
        for c in [
            id::ROLE,
            id::ROLE_TRUST,
            id::PASS_ROLE,
            id::IMAGE,
            id::OUTPUT,
        ] {
            report.checks.push(blocked(c));
        }
        for name in s.channels.keys() {
            report.checks.push(blocked(&format!("channel.{name}")));
        }
        return report;
    };

    // Everything that needs the identity, concurrently.
    let iam = a.iam();
    let region = a.region.value.clone();
    let now = std::time::SystemTime::now();
    let role_val = s.role.clone();
    let role_invalid = role_val
        .as_ref()
        .is_some_and(|r| is_invalid(violations, &r.source, None))
        || cfg.partial;
    let role_chain = async {
        if role_invalid {
            return vec![
                Check::blocked(id::ROLE, id::CONFIG, SEE_CONFIG),
                Check::blocked(id::ROLE_TRUST, id::CONFIG, SEE_CONFIG),
                Check::blocked(id::PASS_ROLE, id::CONFIG, SEE_CONFIG),
            ];
        }
        let (role_check, found) = doctor::role_check(&iam, role_val.as_ref(), caller).await;
        let Some(found) = found else {
            return vec![
                role_check,
                Check::blocked(
                    id::ROLE_TRUST,
                    id::ROLE,
                    "needs the execution role (see execution role)",
                ),
                Check::blocked(
                    id::PASS_ROLE,
                    id::ROLE,
                    "needs the execution role (see execution role)",
                ),
            ];
        };
        let trust = doctor::role_trust_check(&found);
        let pass = doctor::pass_role_check(&iam, caller, &found.arn).await;
        vec![role_check, trust, pass]
    };
    let image = async {
        match &s.image {
            None => Check::blocked(id::IMAGE, id::CONFIG, "no image is set (see configuration)"),
            Some(i) if is_invalid(violations, &i.source, None) || cfg.partial => {
                Check::blocked(id::IMAGE, id::CONFIG, SEE_CONFIG)
            }
            Some(_) if !region_ok => {
                Check::blocked(id::IMAGE, id::REGION, "needs the job's region (see region)")
            }
            Some(i) => doctor::image_check(&a.ecr(), i, &region).await,
        }
    };
    let s3 = a.s3();
    let output = async {
        match &s.output_path {
            _ if !region_ok => Check::blocked(
                id::OUTPUT,
                id::REGION,
                "needs the job's region (see region)",
            ),
            _ if cfg.partial => Check::blocked(id::OUTPUT, id::CONFIG, SEE_CONFIG),
            Some(o) if is_invalid(violations, &o.source, None) => {
                Check::blocked(id::OUTPUT, id::CONFIG, SEE_CONFIG)
            }
            o => doctor::output_check(&s3, o.as_ref(), &caller.account, &region).await,
        }
    };
    let channels = futures::future::join_all(s.channels.iter().map(|(name, uri)| {
        let s3 = &s3;
        let region = &region;
        let partial = cfg.partial;
        async move {
            let check_id = format!("channel.{name}");
            if partial || is_invalid(violations, &uri.source, Some(name)) {
                Check::blocked(&check_id, id::CONFIG, SEE_CONFIG)
            } else if !region_ok {
                Check::blocked(&check_id, id::REGION, "needs the job's region (see region)")
            } else {
                doctor::channel_check(s3, name, uri, region).await
            }
        }
    }));
    let (keys, role_checks, image, output, channels) = tokio::join!(
        doctor::access_keys_check(&iam, caller, now),
        role_chain,
        image,
        output,
        channels
    );
    report.checks.push(keys);
    report.checks.push(region_check);
    report.checks.extend(role_checks);
    report.checks.push(image);
    report.checks.push(output);
    if channels.is_empty() && !cfg.partial {
        report.checks.push(Check::warn(
            id::CHANNELS,
            "no input channels: the container gets no data",
            "add --train s3://BUCKET/PREFIX/ (and --validation), or a [channels] table in sagetrain.toml",
        ));
    }
    report.checks.extend(channels);
    report
}

/// Where the long-lived keys of a profile sit in plaintext, if they do.
async fn plaintext_keys_of(ctx: &Context, profile: &str) -> Option<doctor::PlaintextKeys> {
    let env = &*ctx.env;
    let merged = aws::load_profiles(env, Some(profile)).await;
    let files = aws::credentials::shared_files(env);
    let mut sets = Vec::new();
    for (kind, _, text) in &files {
        sets.push(aws::credentials::profiles_of_file(*kind, text).await);
    }
    let parsed: Vec<doctor::ParsedFile> = files
        .iter()
        .zip(&sets)
        .map(|((_, path, _), set)| doctor::ParsedFile {
            path,
            profiles: set.as_ref(),
        })
        .collect();
    doctor::plaintext_keys(profile, merged.as_ref(), &parsed)
}
