//! Local training data: a channel given as a local folder is uploaded to a content-addressed
//! S3 prefix in the job's output bucket, `s3://BUCKET/sagetrain/data/<channel>/<digest>/`, and
//! the job reads it from there. The same data gives the same prefix, so it is uploaded once;
//! a changed file is uploaded alone (the others are copied inside S3); an interrupted upload
//! resumes. See `manifest` (the digest), `cache` (hashes kept by size and mtime), `scan` (what
//! is uploaded and what is refused), and `upload` (the S3 side); the progress display is `ui::progress`.

pub mod archive;
pub mod cache;
pub mod fetch;
pub mod manifest;
pub mod scan;
pub mod upload;

use crate::config::{Source, Val};
use crate::error::{Error, Result};
use crate::refs::{channel_location, ChannelLocation, S3Uri};
use crate::ui::progress::Progress;
use crate::ui::Ui;
use indicatif::DecimalBytes;
use scan::{ScanOptions, Scanned};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use upload::{Outcome, PushOptions, RemotePlan, Target};

/// A channel whose value is a local folder.
#[derive(Debug, Clone)]
pub struct LocalChannel {
    pub name: String,
    /// The folder as the user gave it.
    pub given: Val<String>,
    /// The folder, resolved (relative to the config file's folder for file values, to the
    /// current folder otherwise).
    pub dir: PathBuf,
}

/// A local channel, scanned and hashed.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub channel: LocalChannel,
    pub scanned: Scanned,
}

/// The channels that are local folders.
pub fn local_channels(channels: &BTreeMap<String, Val<String>>, cwd: &Path) -> Vec<LocalChannel> {
    channels
        .iter()
        .filter_map(|(name, v)| match channel_location(v, cwd) {
            Ok(ChannelLocation::Local(dir)) => Some(LocalChannel {
                name: name.clone(),
                given: v.clone(),
                dir,
            }),
            _ => None,
        })
        .collect()
}

/// `s3://BUCKET/sagetrain/data/<channel>/<digest>/`.
pub fn data_uri(bucket: &str, channel: &str, digest: &str) -> String {
    Target::channel(bucket, channel, digest).uri()
}

/// Where the data goes: the bucket of the job's output path.
pub fn bucket_of(output_path: &str) -> Result<String> {
    S3Uri::parse(output_path)
        .map(|u| u.bucket)
        .map_err(|r| Error::usage(format!("output path: {r}")))
}

/// Warn about what the scan left out or let through.
pub fn warn_about(ui: &Ui, name: &str, s: &Scanned) {
    if !s.skipped.symlinks.is_empty() {
        let n = s.skipped.symlinks.len();
        let list: Vec<&str> = s
            .skipped
            .symlinks
            .iter()
            .take(5)
            .map(String::as_str)
            .collect();
        ui.warn(&format!(
            "{name}: {n} symlink{} not followed ({}{}); pass --follow-symlinks to upload what {} point to",
            if n == 1 { "" } else { "s" },
            list.join(", "),
            if n > 5 { ", ..." } else { "" },
            if n == 1 { "it" } else { "they" },
        ));
    }
    if !s.skipped.special.is_empty() {
        ui.warn(&format!(
            "{name}: {} special files (sockets, FIFOs, devices) left out",
            s.skipped.special.len()
        ));
    }
    for (rel, f) in &s.allowed_findings {
        ui.warn(&format!(
            "{name}: uploading {rel} although {} (--allow-credentials-files)",
            f.describe()
        ));
    }
}

/// Scan and hash every local channel. Local only: run before any AWS call, so that a
/// credentials file is refused before anything is sent.
pub async fn prepare(
    ui: &Ui,
    env: &dyn Fn(&str) -> Option<String>,
    channels: &BTreeMap<String, Val<String>>,
    cwd: &Path,
    opts: ScanOptions,
) -> Result<Vec<Prepared>> {
    let cache_dir = crate::fsutil::cache_dir(env);
    let mut out = Vec::new();
    for ch in local_channels(channels, cwd) {
        let shown = ch.given.value.clone();
        let scanned = scan::scan_async(shown, ch.dir.clone(), opts, cache_dir.clone(), ui.clone())
            .await
            .map_err(|mut e| {
                e.message = format!("channel `{}` ({}): {}", ch.name, ch.given.source, e.message);
                e
            })?;
        ui.info(&format!(
            "data: channel `{}` from {}: {} files, {}, digest {}{}",
            ch.name,
            ch.dir.display(),
            scanned.files.len(),
            DecimalBytes(scanned.bytes),
            scanned.digest,
            read_note(&scanned)
        ));
        warn_about(ui, &ch.name, &scanned);
        out.push(Prepared {
            channel: ch,
            scanned,
        });
    }
    Ok(out)
}

fn read_note(s: &Scanned) -> String {
    if s.hashed_files == 0 {
        " (hashes from the cache)".into()
    } else if s.hashed_files as usize == s.files.len() {
        String::new()
    } else {
        format!(
            " ({} changed or new files read, the rest from the cache)",
            s.hashed_files
        )
    }
}

/// The channels with each local one replaced by its content-addressed S3 URI.
pub fn substitute(
    channels: &BTreeMap<String, Val<String>>,
    data: &[Prepared],
    bucket: &str,
) -> BTreeMap<String, Val<String>> {
    let mut channels = channels.clone();
    for p in data {
        let uri = data_uri(bucket, &p.channel.name, &p.scanned.digest);
        let how = format!(
            "local folder {} ({}), content-addressed",
            p.channel.given.value, p.channel.given.source
        );
        channels.insert(p.channel.name.clone(), Val::new(uri, Source::Lookup(how)));
    }
    channels
}

/// Push one scanned folder: read what is there, send the rest, write the manifest last.
/// With `dry_run`, only the read-only part. Ctrl-C or SIGTERM stops it (exit code 130 or 143).
pub async fn push(
    ui: &Ui,
    s3: &aws_sdk_s3::Client,
    target: &Target,
    scanned: &Scanned,
    dry_run: bool,
    opts: PushOptions,
) -> Result<(RemotePlan, Outcome)> {
    let name = &target.name;
    let plan = interruptible(name, upload::remote_plan(s3, target, scanned)).await?;
    if dry_run || plan.complete {
        let outcome = Outcome {
            already_complete: plan.complete,
            present_files: plan.present.len() as u64,
            ..Default::default()
        };
        if plan.complete {
            ui.info(&format!(
                "{name}: {} is already complete in S3: nothing to upload",
                target.uri()
            ));
        }
        return Ok((plan, outcome));
    }
    let to_send = (plan.uploads.len() + plan.copies.len()) as u64;
    ui.info(&format!(
        "{name}: uploading to {}: {}",
        target.uri(),
        upload::describe_plan(&plan, scanned)
    ));
    let progress = Progress::new(ui, name, to_send, plan.upload_bytes(&scanned.files));
    let result = interruptible(
        name,
        upload::execute(s3, target, scanned, &plan, &progress, opts),
    )
    .await;
    progress.finish();
    let outcome = result?;
    let secs = progress.elapsed().as_secs_f64().max(0.001);
    ui.info(&format!(
        "{name}: uploaded {} file{} ({}, {}/s){}{} in {:.1}s",
        outcome.uploaded_files,
        if outcome.uploaded_files == 1 { "" } else { "s" },
        DecimalBytes(outcome.uploaded_bytes),
        DecimalBytes((outcome.uploaded_bytes as f64 / secs) as u64),
        if outcome.copied_files > 0 {
            format!(", copied {} inside S3", outcome.copied_files)
        } else {
            String::new()
        },
        if outcome.present_files > 0 {
            format!(", {} were already there", outcome.present_files)
        } else {
            String::new()
        },
        secs
    ));
    Ok((plan, outcome))
}

/// Run `work` unless Ctrl-C or SIGTERM comes first (exit code 130 or 143). The interrupt is
/// claimed only while `work` runs: one that comes later (during CreateTrainingJob, say) ends
/// the command as usual.
async fn interruptible<T>(
    name: &str,
    work: impl std::future::Future<Output = Result<T>>,
) -> Result<T> {
    let mut interrupt = crate::signals::claim();
    tokio::select! {
        r = work => r,
        sig = interrupt.recv() => Err(Error::new(
            sig.kind(),
            format!("{name}: the upload was interrupted ({}); no training job is created from incomplete data", sig.name()),
        )
        .with_hint("run the same command again: the files that arrived are not sent again")),
    }
}

/// Upload every prepared channel to `bucket` (train, before the job is created).
pub async fn push_all(
    ui: &Ui,
    aws: &crate::aws::Aws,
    data: &[Prepared],
    bucket: &str,
    opts: PushOptions,
) -> Result<()> {
    let s3 = aws.s3();
    for p in data {
        let target = Target::channel(bucket, &p.channel.name, &p.scanned.digest);
        push(ui, &s3, &target, &p.scanned, false, opts).await?;
    }
    Ok(())
}

/// `train --dry-run`: say what would be uploaded, learning what is missing read-only when AWS
/// is at hand. Never fails the dry run: what cannot be learned is said.
pub async fn dry_run_report(
    ui: &Ui,
    aws: Option<&crate::aws::Aws>,
    data: &[Prepared],
    bucket: &str,
) {
    for p in data {
        let target = Target::channel(bucket, &p.channel.name, &p.scanned.digest);
        let what = format!("channel `{}`: {}", p.channel.name, p.channel.given.value);
        dry_run_one(ui, aws, &target, &p.scanned, &what).await;
    }
}

/// `--dry-run` for one folder (a channel, or the code): what would be uploaded where.
pub async fn dry_run_one(
    ui: &Ui,
    aws: Option<&crate::aws::Aws>,
    target: &Target,
    scanned: &Scanned,
    what: &str,
) {
    let head = format!(
        "dry run: {what} ({} files, {}) would be uploaded to {}",
        scanned.files.len(),
        DecimalBytes(scanned.bytes),
        target.uri()
    );
    let Some(aws) = aws else {
        ui.info(&format!(
            "{head}; offline: what is already in S3 is not checked"
        ));
        return;
    };
    match upload::remote_plan(&aws.s3(), target, scanned).await {
        Ok(plan) => ui.info(&format!(
            "{head}: {}",
            upload::describe_plan(&plan, scanned)
        )),
        Err(e) => ui.info(&format!(
            "{head}; what is already in S3 could not be learned: {}",
            e.message
        )),
    }
}
