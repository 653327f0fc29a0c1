//! `sagetrain data push DIR`: upload a folder to its content-addressed S3 prefix and print the
//! URI, for users who upload once and name the URI in `sagetrain.toml`.

use super::Context;
use crate::aws::Connection;
use crate::cli::{DataCommand, PushArgs};
use crate::data;
use crate::data::scan::ScanOptions;
use crate::data::upload::{PushOptions, Target};
use crate::error::Result;
use crate::job::spec::{violations_error, Violation};
use crate::job::{lookups, settings};
use crate::refs::{is_channel_name, S3Uri};

pub async fn run(ctx: &Context, cmd: &DataCommand) -> Result<()> {
    match cmd {
        DataCommand::Push(args) => push(ctx, args).await,
    }
}

/// The channel name: `--channel`, or the folder's own name.
fn channel_name(args: &PushArgs, dir: &std::path::Path) -> std::result::Result<String, Violation> {
    match &args.channel {
        Some(c) if is_channel_name(c) => Ok(c.clone()),
        Some(c) => Err(Violation::new(
            "--channel",
            format!("`{c}` is not a valid channel name (1-64 of letters, digits, `.`, `-`, `_`)"),
        )),
        None => {
            let name = dir
                .canonicalize()
                .ok()
                .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
                .unwrap_or_default();
            if is_channel_name(&name) {
                Ok(name)
            } else {
                Err(Violation::new(
                    "--channel",
                    format!(
                        "the folder's name `{name}` is not a valid channel name; give one with --channel NAME"
                    ),
                ))
            }
        }
    }
}

async fn push(ctx: &Context, args: &PushArgs) -> Result<()> {
    let ui = &ctx.ui;
    // Settings: region, profile and endpoint as for `train`, and the output path's bucket.
    let file = ctx.config_file()?;
    // Only what a push uses is layered and checked: the connection and the output path.
    let mut violations = Vec::new();
    let connection = Connection::layer_checked(&ctx.global.connection, &*ctx.env, file.as_ref())
        .unwrap_or_else(|v| {
            violations.extend(v);
            Connection::default()
        });
    let output_path = settings::def::output_path.layer(
        &args.output_path,
        &*ctx.env,
        file.as_ref(),
        &mut violations,
    );
    let dir = ctx.cwd.join(&args.dir);
    if !dir.is_dir() {
        violations.push(Violation::new(
            "DIR",
            format!("{} is not an existing folder", args.dir.display()),
        ));
    }
    let channel = match channel_name(args, &dir) {
        Ok(c) => Some(c),
        Err(v) => {
            violations.push(v);
            None
        }
    };
    if let Some(o) = &output_path {
        if let Err(rule) = S3Uri::parse(&o.value) {
            violations.push(Violation::new(o.source.name_for(None), rule));
        }
    }
    if !violations.is_empty() {
        return Err(violations_error(violations));
    }
    let channel = channel.expect("no violations");

    let push_opts = PushOptions::from_env(&*ctx.env)?;
    // Local work first: a credentials file is refused before anything is sent.
    let shown = args.dir.display().to_string();
    let scanned = data::scan::scan_async(
        shown,
        dir.clone(),
        ScanOptions {
            follow_symlinks: args.follow_symlinks,
            allow_credentials_files: args.allow_credentials_files,
        },
        crate::fsutil::cache_dir(&*ctx.env),
        ui.clone(),
    )
    .await?;
    ui.info(&format!(
        "data: {} files, {}, digest {}",
        scanned.files.len(),
        indicatif::DecimalBytes(scanned.bytes),
        scanned.digest
    ));
    data::warn_about(ui, &channel, &scanned);

    let aws = super::jobcmd::sign_in(ctx, &connection, true).await?;
    let region = aws.region.value.clone();
    let id = lookups::identity(&aws).await?;
    let (output, notes) = lookups::output_path(
        &aws,
        output_path.as_ref(),
        &id.account,
        &region,
        args.dry_run,
    )
    .await?;
    for n in notes {
        ui.info(&n);
    }
    let target = Target::channel(&data::bucket_of(&output.value)?, &channel, &scanned.digest);
    let (plan, outcome) =
        data::push(ui, &aws.s3(), &target, &scanned, args.dry_run, push_opts).await?;
    if args.dry_run {
        ui.info(&format!(
            "dry run: nothing was uploaded; {}",
            crate::data::upload::describe_plan(&plan, &scanned)
        ));
    }
    if ctx.json() {
        let mut v = serde_json::json!({
            "s3_uri": target.uri(),
            "files": scanned.files.len(),
            "bytes": scanned.bytes,
            "uploaded_files": outcome.uploaded_files,
            "uploaded_bytes": outcome.uploaded_bytes,
            "copied_files": outcome.copied_files,
            "digest": target.digest,
        });
        if args.dry_run {
            v["dry_run"] = serde_json::json!(true);
            v["missing_files"] = serde_json::json!(plan.uploads.len() + plan.copies.len());
            v["missing_bytes"] = serde_json::json!(
                plan.upload_bytes(&scanned.files) + plan.copy_bytes(&scanned.files)
            );
        }
        ui.result_json(&v);
    } else {
        ui.result_text(&target.uri());
    }
    Ok(())
}
