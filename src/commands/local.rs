//! `sagetrain train --local`: the validated job, run on this machine instead of created. The
//! request is built as `train` builds it (with local stand-ins for what the cloud would look
//! up), laid out as SageMaker's `/opt/ml` in `.sagetrain/local/<job-name>/`, and run with the
//! job's image under the container engine. Nothing is created in AWS.

use super::Context;
use crate::config::{Source, Val};
use crate::error::{Error, Kind, Result};
use crate::image::engine;
use crate::job::create::submission_id;
use crate::job::local::{self, placeholder, run as edge, Local, Machine, Mode};
use crate::job::request::{build_request, Resolved};
use crate::job::spec::JobSpec;
use crate::job::state;
use crate::refs::{channel_location, ChannelLocation};
use std::collections::BTreeMap;
use std::path::PathBuf;

pub async fn run(ctx: &Context, s: &JobSpec, local: &Local) -> Result<()> {
    debug_assert_eq!(local.mode, Mode::Container, "validation refuses host mode");
    let ui = &ctx.ui;
    // Local channel folders, used in place; the request names them by a stand-in URI.
    let mut spec = s.clone();
    let mut folders = BTreeMap::new();
    for (name, uri) in &s.channels {
        if let Ok(ChannelLocation::Local(dir)) = channel_location(uri, &ctx.cwd) {
            let dir = dir.canonicalize().unwrap_or(dir);
            folders.insert(name.clone(), dir);
            spec.channels.insert(
                name.clone(),
                Val::new(placeholder::channel_uri(name), uri.source.clone()),
            );
        }
    }
    // Code mode: the code folder is the `code` channel, mounted read-only like the others.
    if let Some(c) = spec.code.as_mut() {
        if let Ok(ChannelLocation::Local(dir)) = channel_location(&c.source, &ctx.cwd) {
            let dir = dir.canonicalize().unwrap_or(dir);
            folders.insert(crate::job::code::CODE_CHANNEL.to_string(), dir);
            c.source = Val::new(
                placeholder::channel_uri(crate::job::code::CODE_CHANNEL),
                c.source.source.clone(),
            );
        }
    }
    let submission = submission_id();
    let stand_in = |v: &str| Val::new(v.to_string(), Source::Default);
    let resolved = Resolved {
        submission_id: submission.clone(),
        region: s
            .connection
            .region
            .as_ref()
            .map_or(placeholder::REGION.to_string(), |r| r.value.clone()),
        role_arn: s
            .role
            .clone()
            .filter(|r| r.value.starts_with("arn:"))
            .unwrap_or_else(|| stand_in(placeholder::ROLE_ARN)),
        training_image: s.image.clone(),
        output_path: s
            .output_path
            .clone()
            .unwrap_or_else(|| stand_in(placeholder::OUTPUT_PATH)),
        job_name: super::train::job_name(s, &submission, ui),
        secrets: BTreeMap::new(),
    };
    let request = build_request(&spec, &resolved);
    super::train::check_request(&request)?;

    let chosen = local.engine.as_ref().map(|e| e.value.as_str());
    let engine = engine::find(chosen, &*ctx.env).map_err(|e| {
        e.with_hint("install docker or podman (`apt-get install podman`), or choose one with --engine or `engine` in sagetrain.toml")
    })?;
    let machine = Machine {
        engine: engine.name.clone(),
        gpus: edge::has_gpus(),
    };
    let project = state::project_dir(s.config_path.as_deref(), &ctx.cwd);
    let job = request.training_job_name.clone();
    let dir = local::run_dir(&project, &job);
    let image = s.image.value.clone();
    let hosts = local::plan(&request, &dir, &image, &folders, &machine);

    if s.dry_run {
        ui.info(
            "dry run: this local run would lay out this tree and run this command; nothing was run",
        );
        if ctx.json() {
            let hosts: Vec<_> = hosts
                .iter()
                .map(|h| {
                    serde_json::json!({
                        "host": h.name,
                        "tree": h.tree,
                        "command": std::iter::once(engine.name.clone()).chain(h.argv.iter().cloned()).collect::<Vec<_>>(),
                        "dirs": h.dirs,
                        "files": h.files.iter().map(|(p, t)| (p.display().to_string(), serde_json::Value::String(t.clone()))).collect::<serde_json::Map<_, _>>(),
                    })
                })
                .collect();
            ui.result_json(&serde_json::json!({ "job_name": job, "folder": dir, "hosts": hosts }));
        } else {
            ui.result_text(local::dry_run_text(&engine.name, &hosts).trim_end());
        }
        return Ok(());
    }

    if !edge::image_present(&engine, &image).await {
        return Err(Error::usage(format!(
            "--image {image}: {} has no such image, and a local run uses only an image this machine's engine has",
            engine.name
        ))
        .with_hint(format!(
            "build it here (`{} build -t {image} .`) or pull it (`{} pull IMAGE`) and give that name",
            engine.name, engine.name
        )));
    }
    ui.info(&local::image_note(&s.image));
    if machine.gpus {
        let args = local::gpu_args(&engine.name, true).join(" ");
        ui.info(&format!("the container gets this machine's GPUs ({args})"));
    } else {
        ui.info("no GPU on this machine: the container runs on the CPU");
    }
    state::state_dir(&project)
        .and_then(|_| crate::fsutil::create_private_dir_all(&dir))
        .map_err(|e| {
            Error::internal(format!("cannot create {}: {e}", dir.display()))
                .with_hint("check the permissions of the project folder")
        })?;
    edge::lay_out(&hosts)?;
    let log = dir.join(local::LOG_FILE);
    for h in &hosts {
        ui.info(&format!(
            "local run {job}, {}: {} {} (tree {})",
            h.name,
            engine.name,
            local::shell_words(&h.argv),
            h.tree.display()
        ));
    }
    if hosts.len() > 1 {
        ui.info(&format!(
            "{} hosts share this machine's network: algo-1..algo-{} resolve to 127.0.0.1; the first to fail ends the others",
            hosts.len(),
            hosts.len()
        ));
    }
    ui.info(&format!("log: {}", log.display()));
    // The run's record (`status --local`, `metrics --local`): InProgress now, the verdict at the end.
    let mut record = local::record::begin(&request, &dir, local.mode, Some(&engine.name), &hosts);
    local::record::write_or_warn(ui, &dir, &record);
    let outcome = edge::run(ui, &engine, &hosts, &log).await;
    local::record::finish(&mut record, &outcome);
    local::record::write_or_warn(ui, &dir, &record);
    let outcome = outcome?;

    // Packed the way SageMaker packs them, from the first host's tree.
    let first = &hosts[0].tree;
    let mut packed = BTreeMap::new();
    for (from, to) in [("model", "model.tar.gz"), ("output/data", "output.tar.gz")] {
        let out = dir.join(to);
        let files = edge::pack(&first.join(from), &out)?;
        ui.info(&format!("{}: {files} files from {from}/", out.display()));
        packed.insert(to, out);
    }
    report(ctx, &job, &dir, &outcome, &packed)
}

fn report(
    ctx: &Context,
    job: &str,
    dir: &std::path::Path,
    o: &edge::Outcome,
    packed: &BTreeMap<&str, PathBuf>,
) -> Result<()> {
    let secs = o.duration.as_secs_f64();
    if ctx.json() {
        ctx.ui.result_json(&serde_json::json!({
            "job_name": job,
            "folder": dir,
            "exit_code": o.exit_code,
            "failed_host": o.failed_host,
            "failure_reason": o.failure,
            "duration_seconds": (secs * 10.0).round() / 10.0,
            "model": packed.get("model.tar.gz"),
            "output": packed.get("output.tar.gz"),
        }));
    } else {
        let mut text = format!(
            "local run  {job}\nfolder     {}\nexit code  {}\nduration   {:.1}s\nmodel      {}",
            dir.display(),
            o.exit_code,
            secs,
            packed
                .get("model.tar.gz")
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        );
        if let Some(f) = &o.failure {
            text.push_str(&format!("\nfailure    {f}"));
        }
        ctx.ui.result_text(&text);
    }
    if o.exit_code == 0 {
        return Ok(());
    }
    let host = o.failed_host.as_deref().unwrap_or("algo-1");
    Err(Error::new(
        Kind::JobFailed,
        format!(
            "local run {job} failed on {host} (exit {}): {}",
            o.exit_code,
            o.failure
                .as_deref()
                .unwrap_or("the entry wrote no output/failure; its output is above")
        ),
    )
    .with_hint(format!(
        "its log is {}; fix and run the same command again",
        dir.join(local::LOG_FILE).display()
    )))
}
