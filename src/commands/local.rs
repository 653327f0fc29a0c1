//! `sagetrain train --local`: the validated job, run on this machine instead of created. The
//! request is built as `train` builds it (with local stand-ins for what the cloud would look
//! up), laid out as SageMaker's `/opt/ml` in `.sagetrain/local/<job-name>/`, and run with the
//! job's image under the container engine. Nothing is created in AWS.

use super::Context;
use crate::config::{Source, Val};
use crate::data::fetch;
use crate::error::{Error, Kind, Result};
use crate::image::engine;
use crate::job::create::submission_id;
use crate::job::local::{self, placeholder, run as edge, Local, Machine, Mode};
use crate::job::request::{build_request, Resolved};
use crate::job::spec::JobSpec;
use crate::job::state;
use crate::refs::{channel_location, ChannelLocation, ImageRef, S3Uri};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// A channel of a local run: a folder here, or an S3 prefix kept in the user's cache.
enum Data {
    Folder(PathBuf),
    S3 { uri: S3Uri, dir: PathBuf },
}

pub async fn run(ctx: &Context, s: &JobSpec, local: &Local) -> Result<()> {
    let ui = &ctx.ui;
    // The channels, each named in the request by a stand-in URI: local folders are used in
    // place, S3 prefixes are fetched into the cache (once) and used from there.
    let cache_root = crate::fsutil::cache_dir(&*ctx.env);
    let cache = cache_root.as_ref().map(|c| c.join(local::CACHE_DIR));
    let mut spec = s.clone();
    let mut data: BTreeMap<String, Data> = BTreeMap::new();
    let mut sources: Vec<(String, Val<String>)> = s
        .channels
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if let Some(c) = &s.code {
        sources.push((crate::job::code::CODE_CHANNEL.to_string(), c.source.clone()));
    }
    for (name, uri) in &sources {
        let d = match channel_location(uri, &ctx.cwd) {
            Ok(ChannelLocation::Local(dir)) => Data::Folder(dir.canonicalize().unwrap_or(dir)),
            Ok(ChannelLocation::S3(u)) => {
                let Some(cache) = &cache else {
                    return Err(Error::usage(format!(
                        "{}: an S3 channel of a local run is kept in the cache folder, and this machine has none (HOME is not set)",
                        uri.source.name_for(Some(name))
                    ))
                    .with_hint("set XDG_CACHE_HOME to a folder, or give a local folder"));
                };
                let sample = (name != crate::job::code::CODE_CHANNEL)
                    .then_some(local.sample)
                    .flatten();
                let dir = cache.join(fetch::cache_key(&u.to_string(), sample));
                Data::S3 { uri: u, dir }
            }
            Err(_) => continue,
        };
        data.insert(name.clone(), d);
        let stand_in = Val::new(placeholder::channel_uri(name), uri.source.clone());
        match spec.code.as_mut() {
            Some(c) if name == crate::job::code::CODE_CHANNEL => c.source = stand_in,
            _ => {
                spec.channels.insert(name.clone(), stand_in);
            }
        }
    }
    if local.sample.is_some() && !data.values().any(|d| matches!(d, Data::S3 { .. })) {
        ui.warn("--local-sample samples S3 channels, and this run has none: every local folder is used whole");
    }
    let folders: BTreeMap<String, PathBuf> = data
        .iter()
        .map(|(k, d)| {
            let dir = match d {
                Data::Folder(dir) | Data::S3 { dir, .. } => dir.clone(),
            };
            (k.clone(), dir)
        })
        .collect();
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

    // Where it runs: the image under an engine, or this machine's python (asked for, or with
    // --source when there is no engine).
    let code_dir =
        local::code_folder(s.code.as_ref(), &ctx.cwd).map(|d| d.canonicalize().unwrap_or(d));
    let chosen = local.engine.as_ref().map(|e| e.value.as_str());
    let (mode, engine) = match local.mode {
        Mode::Host => (Mode::Host, None),
        Mode::Container => match (engine::find(chosen, &*ctx.env), &code_dir) {
            (Ok(e), _) => (Mode::Container, Some(e)),
            (Err(_), Some(_)) if chosen.is_none() => {
                ui.warn("no container engine on PATH (docker or podman): running in host mode, with this machine's python instead of the image (--local=host says so explicitly)");
                (Mode::Host, None)
            }
            (Err(e), _) => {
                return Err(e.with_hint("install docker or podman (`sudo apt-get install podman`), choose one with --engine or `engine` in sagetrain.toml, or run the entry of --source with this machine's python (--local=host)"));
            }
        },
    };
    let machine = Machine {
        engine: engine.as_ref().map(|e| e.name.clone()).unwrap_or_default(),
        gpus: edge::gpu_count(),
        cpus: edge::cpu_count(),
    };
    let project = state::project_dir(s.config_path.as_deref(), &ctx.cwd);
    let job = request.training_job_name.clone();
    let dir = local::run_dir(&project, &job);
    let image = s.image.value.clone();
    let secret_names: Vec<String> = s.secrets.keys().cloned().collect();
    let python = match mode {
        Mode::Host => Some(
            edge::find_python(
                local.python.as_ref(),
                &ctx.cwd,
                &(ctx.env)("PATH").unwrap_or_default(),
            )
            .await?,
        ),
        Mode::Container => None,
    };
    let plan = |image: &str| match (&python, &code_dir) {
        (Some((py, _)), Some(code)) => {
            let entry = s.code.as_ref().map_or("train.py", |c| c.entry.as_str());
            vec![local::host_plan(
                &request,
                &dir,
                code,
                entry,
                &folders,
                &py.display().to_string(),
                &machine,
            )]
        }
        _ => local::plan(&request, &dir, image, &folders, &secret_names, &machine),
    };
    let mut hosts = plan(&image);
    // The image the engine has by its name is used as is; another one is pulled from ECR
    // (an ECR reference) or refused.
    let in_ecr = matches!(ImageRef::parse(&image), Ok(ImageRef::Ecr { .. }));
    let present = match (&python, &engine) {
        (None, Some(e)) => Some(edge::image_present(e, &image).await),
        _ => None,
    };

    if s.dry_run {
        ui.info(
            "dry run: this local run would lay out this tree and run this command; nothing was run",
        );
        if let (Some(false), Some(e)) = (present, &engine) {
            match in_ecr {
                true => ui.info(&format!(
                    "image {image}: {} has no such image; it would be resolved in ECR and pulled if the engine lacks it (run by its image ID)",
                    e.name
                )),
                false => ui.warn(&local::ecr::not_here(e, &image).message),
            }
        }
        for (name, d) in &data {
            if let Data::S3 { uri, dir } = d {
                ui.info(&format!(
                    "channel {name}: {uri} would be fetched into {} (what the cache lacks)",
                    dir.display()
                ));
            }
        }
        if ctx.json() {
            let hosts: Vec<_> = hosts
                .iter()
                .map(|h| {
                    serde_json::json!({
                        "host": h.name,
                        "tree": h.tree,
                        "command": std::iter::once(h.program.clone()).chain(h.argv.iter().cloned()).collect::<Vec<_>>(),
                        "env": h.env.iter().cloned().collect::<BTreeMap<_, _>>(),
                        "cwd": h.cwd,
                        "dirs": h.dirs,
                        "links": h.links.iter().map(|(l, t)| (l.display().to_string(), serde_json::json!(t))).collect::<serde_json::Map<_, _>>(),
                        "files": h.files.iter().map(|(p, t)| (p.display().to_string(), serde_json::Value::String(t.clone()))).collect::<serde_json::Map<_, _>>(),
                    })
                })
                .collect();
            ui.result_json(&serde_json::json!({
                "job_name": job,
                "folder": dir,
                "mode": mode_name(mode),
                "hosts": hosts,
            }));
        } else {
            ui.result_text(local::dry_run_text(&hosts).trim_end());
        }
        return Ok(());
    }

    if let (Some(false), Some(e)) = (present, &engine) {
        if !in_ecr {
            return Err(local::ecr::not_here(e, &image));
        }
    }

    // What only AWS has: an ECR image the engine lacks, S3 channels and the values of secrets,
    // with this machine's credentials (signed in once). A run with none of them needs none.
    let pull = present == Some(false);
    let needs_aws = data.values().any(|d| matches!(d, Data::S3 { .. })) || !s.secrets.is_empty();
    let aws = match pull || needs_aws {
        true => Some(super::jobcmd::sign_in(ctx, &s.connection, true).await?),
        false => None,
    };
    if let (true, Some(e), Some(aws)) = (pull, &engine, &aws) {
        let id = local::ecr::image(ui, aws, e, &s.image, cache_root.as_deref()).await?;
        hosts = plan(&id);
    }
    let mut secrets = BTreeMap::new();
    if let (true, Some(aws)) = (needs_aws, &aws) {
        let s3 = aws.s3();
        for (name, d) in &data {
            let Data::S3 { uri, dir } = d else { continue };
            let label = format!("channel {name}");
            let sample = (name != crate::job::code::CODE_CHANNEL)
                .then_some(local.sample)
                .flatten();
            let got = fetch::channel(ui, &s3, &label, uri, dir, sample).await?;
            ui.info(&format!("{label}: {uri}: {}", got.summary()));
        }
        let client = aws.secrets();
        for (name, r) in &s.secrets {
            let value = edge::read_secret(&client, name, r).await?;
            ui.info(&format!(
                "secret {name}: read from Secrets Manager with your credentials (a job reads it with its execution role); passed as {name}, never on a command line"
            ));
            secrets.insert(name.clone(), value);
        }
    }

    match (&python, &engine) {
        (Some((py, version)), _) => {
            ui.info(&format!(
                "host mode: {} runs with {version} ({}), in {}; this is not the image: a script that hard-codes /opt/ml, or needs the image's packages, needs container mode (--local)",
                s.code.as_ref().map_or("the entry", |c| c.entry.as_str()),
                py.display(),
                code_dir.as_deref().unwrap_or(&ctx.cwd).display()
            ));
            ui.info("host mode: the training toolkit's SM_* variables point into the run's folder; requirements.txt is not installed (install it in this python)");
        }
        (None, Some(_)) => {
            if !pull {
                ui.info(&local::image_note(&s.image));
            }
            if machine.gpus > 0 {
                let args = local::gpu_args(&machine.engine, true).join(" ");
                ui.info(&format!("the container gets this machine's GPUs ({args})"));
            } else {
                ui.info("no GPU on this machine: the container runs on the CPU");
            }
        }
        (None, None) => {}
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
            "local run {job}, {}: {} (tree {})",
            h.name,
            crate::secrets::redact(&shell_words_of(h)),
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
    let runner = match &engine {
        Some(e) => edge::Runner::Engine(e),
        None => edge::Runner::Host,
    };
    // The run's record (`status --local`, `metrics --local`): InProgress now, the verdict at the end.
    let mut record = local::record::begin(
        &request,
        &dir,
        mode,
        engine.as_ref().map(|e| e.name.as_str()),
        &hosts,
    );
    local::record::write_or_warn(ui, &dir, &record);
    let outcome = edge::run(ui, runner, &hosts, &secrets, &log).await;
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

fn mode_name(m: Mode) -> &'static str {
    match m {
        Mode::Container => "container",
        Mode::Host => "host",
    }
}

/// The line said on stderr: the engine's arguments, or host mode's python and entry (its
/// variables are in `--dry-run`).
fn shell_words_of(h: &local::Host) -> String {
    format!("{} {}", h.program, local::shell_words(&h.argv))
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
