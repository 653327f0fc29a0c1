//! `sagetrain doctor`: check every link `train` relies on, with the same settings, and name the
//! fix for each broken one. Creates nothing. The checks and their order are in
//! [`crate::doctor::plan`]; this reads the settings, runs them and prints the report.

use super::Context;
use crate::cli::TrainArgs;
use crate::config::LoadedFile;
use crate::doctor::{self, id, plan::Configuration, Check};
use crate::error::{Error, Kind, Result};
use crate::job::settings::TrainSettings;
use crate::job::spec::validate_settings_at;

/// Read the settings `train` would use and check them (the `configuration` line).
fn configuration(ctx: &Context, args: &TrainArgs) -> Configuration {
    let (file, file_error) = match ctx.config_file() {
        Ok(f) => (f, None),
        Err(e) => (None, Some(e)),
    };
    let mut partial = file_error.is_some();
    let layered = TrainSettings::layer(&ctx.global.connection, args, &*ctx.env, file.as_ref());
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
            let fallback = TrainSettings::layer(
                &ctx.global.connection,
                &TrainArgs::default(),
                &*ctx.env,
                file.as_ref(),
            )
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
    Configuration {
        check,
        settings,
        violations,
        partial,
    }
}

pub async fn run(ctx: &Context, args: &TrainArgs) -> Result<()> {
    let report = doctor::plan::run(configuration(ctx, args), args.offline, &*ctx.env).await;
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
