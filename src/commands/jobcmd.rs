//! What the commands that work on an existing job share: the connection settings (region,
//! profile, endpoint: flag > environment > sagetrain.toml), the job name (given, or the last one
//! submitted from this project), and waiting with its report.

use super::Context;
use crate::aws::{Aws, Connection};
use crate::config::{durations, violations_error, Source, Val};
use crate::error::{Error, Result};
use crate::follow::report::{self, StatusReport};
use crate::follow::{
    self, Clients, LogSink, PlainReporter, Reporter, SpinnerReporter, WaitOptions,
};
use crate::job::spec::check_job_name;
use crate::job::state;
use std::path::PathBuf;

/// The connection settings and the project folder (for the state file).
pub struct Target {
    pub aws: Connection,
    pub project: PathBuf,
}

/// The connection settings of every command (one layering: [`Connection::layer_checked`]),
/// checked before any network call.
pub fn target(ctx: &Context) -> Result<Target> {
    let file = ctx.config_file()?;
    let c = Connection::layer_checked(&ctx.global.connection, &*ctx.env, file.as_ref())
        .map_err(violations_error)?;
    Ok(Target {
        aws: c,
        project: state::project_dir(file.as_ref().map(|f| f.path.as_path()), &ctx.cwd),
    })
}

/// The job to work on: the one given (checked), or the last one submitted from this project.
/// With the latter, its region is used unless one was set.
pub fn job_name(ctx: &Context, given: Option<&str>, t: &mut Target) -> Result<String> {
    let last = state::load(&t.project)?.map(|l| (l.job_name, l.region));
    given_or_last(
        ctx,
        given,
        t,
        Last {
            what: "job",
            full: "training job",
            arg: "JOB",
            check: check_job_name,
            path: state::state_path(&t.project),
            last,
            hint: "`sagetrain list` shows recent jobs",
            name_it: "sagetrain status JOB",
        },
    )
}

/// The last job of one kind recorded in the project, and how the commands name that kind.
pub struct Last {
    /// "job" or "tuning job", in messages.
    pub what: &'static str,
    /// "training job" or "tuning job".
    pub full: &'static str,
    /// The argument that names one.
    pub arg: &'static str,
    pub check: fn(&str) -> std::result::Result<(), String>,
    /// The state file it was read from.
    pub path: PathBuf,
    /// Its name and region.
    pub last: Option<(String, String)>,
    /// Where to find names.
    pub hint: &'static str,
    /// A command that names one.
    pub name_it: &'static str,
}

/// The one given (checked), or the last one recorded in this project, whose region is used
/// unless one was set.
pub fn given_or_last(
    ctx: &Context,
    given: Option<&str>,
    t: &mut Target,
    l: Last,
) -> Result<String> {
    if let Some(j) = given {
        (l.check)(j)
            .map_err(|rule| Error::usage(format!("{}: {rule}", l.arg)).with_hint(l.hint))?;
        return Ok(j.to_string());
    }
    let path = l.path.display();
    let Some((name, region)) = l.last else {
        return Err(Error::usage(format!(
            "no {} given, and none was submitted from this project yet ({path} does not exist)",
            l.what
        ))
        .with_hint(format!("name the {}: {}; {}", l.what, l.name_it, l.hint)));
    };
    ctx.ui.info(&format!(
        "{} {name} (the last one submitted from this project, {path})",
        l.full
    ));
    if t.aws.region.is_none() {
        t.aws.region = Some(Val::new(
            region,
            Source::Lookup(format!("the region of the last {}, {path}", l.what)),
        ));
    }
    Ok(name)
}

/// A local run of this project (`status --local`, `metrics --local`): the one named, else the
/// newest. The project folder is found as `train --local` finds it (beside sagetrain.toml, else
/// here); no settings are validated and nothing is looked up.
pub fn local_run(ctx: &Context, name: Option<&str>) -> Result<crate::job::local::record::LocalRun> {
    let config = crate::config::find_config(ctx.global.config.as_deref(), &*ctx.env, &ctx.cwd)?;
    let project = state::project_dir(config.as_deref(), &ctx.cwd);
    let run = crate::job::local::record::find(&project, name)?;
    if name.is_none() {
        ctx.ui.info(&format!(
            "local run {} (the newest of this project, {})",
            run.job_name,
            run.folder.display()
        ));
    }
    Ok(run)
}

/// Load the SDK configuration and check the credentials are there.
pub async fn connect(ctx: &Context, t: &Target) -> Result<Aws> {
    sign_in(ctx, &t.aws, false).await
}

/// Load the SDK configuration and check the credentials are there. Where they come from is said
/// by the commands that upload or create (`loud`); the others say it with `-v`.
pub async fn sign_in(ctx: &Context, settings: &Connection, loud: bool) -> Result<Aws> {
    let aws = Aws::load_with_env(settings, &*ctx.env).await?;
    let creds = aws.credentials().await?;
    let kind = match creds.is_session() {
        true => "temporary session",
        false => "long-lived",
    };
    let line = format!(
        "credentials: {} (key {}, {kind})",
        creds.source,
        creds.masked_key_id()
    );
    match loud {
        true => ctx.ui.info(&line),
        false => ctx.ui.detail(&line),
    }
    ctx.ui.detail(&format!(
        "region {} ({})",
        aws.region.value, aws.region.source
    ));
    Ok(aws)
}

/// Record the job just created as this project's last job (and whether it keeps a warm pool,
/// which the next `train` of the project looks for). A failure is only a warning: the
/// job exists either way.
pub fn record_last_job(
    ctx: &Context,
    config_path: Option<&std::path::Path>,
    job: &str,
    arn: &str,
    region: &str,
    keep_alive_seconds: Option<i32>,
) {
    let project = state::project_dir(config_path, &ctx.cwd);
    let last = state::LastJob {
        job_name: job.to_string(),
        job_arn: arn.to_string(),
        region: region.to_string(),
        submitted_at: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        keep_alive_seconds: keep_alive_seconds.filter(|k| *k > 0),
    };
    match state::record(&project, &last) {
        Ok(p) => ctx.ui.detail(&format!(
            "recorded as this project's last job in {}",
            p.display()
        )),
        Err(e) => ctx.ui.warn(&format!(
            "could not record the job in {}: {e} (`sagetrain status` will need the job name)",
            state::state_path(&project).display()
        )),
    }
}

/// `--timeout` and friends, checked before any network call.
pub fn wait_options(ctx: &Context, f: &crate::cli::FollowArgs) -> Result<WaitOptions> {
    let timeout = match &f.timeout {
        None => None,
        Some(raw) => match durations::parse(raw) {
            Ok(d) if d.is_zero() => {
                return Err(Error::usage("--timeout: must be more than 0 seconds")
                    .with_hint("e.g. --timeout 2h"))
            }
            Ok(d) => Some(d),
            Err(rule) => return Err(Error::usage(format!("--timeout: {rule}"))),
        },
    };
    Ok(WaitOptions {
        policy: follow::settings::policy(&f.poll, &*ctx.env)?,
        timeout,
        logs: f.logs,
        stop_on_interrupt: f.stop_on_interrupt,
        log_start: None,
    })
}

/// The reporter for this terminal (a live line) or for a pipe or CI log (plain lines).
pub fn reporter(ctx: &Context, logs: LogSink) -> Box<dyn Reporter> {
    if ctx.ui.stderr_is_terminal && !ctx.ui.quiet {
        Box::new(SpinnerReporter::new(logs))
    } else {
        Box::new(PlainReporter::new(!ctx.ui.quiet, logs))
    }
}

/// Wait for the job, then print its report on stdout (with `-o json`: one object, merged into
/// `base` when given, printed however the wait ends) and return its verdict as the result.
pub async fn follow_and_report(
    ctx: &Context,
    aws: &Aws,
    job: &str,
    opts: &WaitOptions,
    base: Option<serde_json::Map<String, serde_json::Value>>,
) -> Result<()> {
    let sm = aws.sagemaker();
    let logs = aws.logs();
    let clients = Clients {
        sagemaker: &sm,
        logs: opts.logs.then_some(&logs),
    };
    let mut rep = reporter(ctx, LogSink::Stderr);
    ctx.ui.info(&format!(
        "waiting for training job {job}{} (Ctrl-C {})",
        if opts.logs { " with its logs" } else { "" },
        if opts.stop_on_interrupt {
            "stops the job"
        } else {
            "stops waiting; the job keeps running"
        }
    ));
    let mut interrupt = crate::signals::claim();
    let mut last = None;
    let result = follow::watch(
        &clients,
        job,
        opts,
        &follow::TokioClock::new(),
        rep.as_mut(),
        interrupt.recv(),
        &mut last,
    )
    .await;
    drop(rep);
    let finished = result.is_ok();
    if let Some(d) = &last {
        let r = priced(ctx, StatusReport::from_describe(d));
        if ctx.json() {
            let mut obj = base.unwrap_or_default();
            if let serde_json::Value::Object(m) = r.to_json() {
                for (k, v) in m {
                    obj.insert(k, v);
                }
            }
            ctx.ui.result_json(&serde_json::Value::Object(obj));
        } else if finished {
            ctx.ui.result_text(&r.to_text());
        }
    } else if let (true, Some(b)) = (ctx.json(), base) {
        ctx.ui.result_json(&serde_json::Value::Object(b));
    }
    follow::ci::report(&*ctx.env, &ctx.ui, job, last.as_ref(), &result);
    let verdict = result?;
    match report::verdict_error(job, &verdict) {
        None => Ok(()),
        Some(e) => Err(e),
    }
}

/// A job's description, with "not found" made clear.
pub async fn describe(aws: &Aws, job: &str) -> Result<follow::Describe> {
    follow::describe(&aws.sagemaker(), job)
        .await
        .map_err(|e| e.error)
}

/// What `stop` and `tune stop` print: the stop requested (and `after`, on what happens next), or
/// why there was nothing to do. `what` is "training job" or "tuning job"; the JSON result names
/// the job by `key`.
pub fn show_stop(
    ctx: &Context,
    (what, key): (&str, &str),
    name: &str,
    outcome: &follow::StopOutcome,
    status: &str,
    after: &str,
) {
    let requested = matches!(outcome, follow::StopOutcome::Requested);
    if ctx.json() {
        ctx.ui.result_json(&serde_json::json!({
            key: name,
            "stop_requested": requested,
            "status": status,
        }));
    } else if requested {
        ctx.ui
            .result_text(&format!("{what} {name}: stop requested ({status})"));
        ctx.ui.info(after);
    } else if let follow::StopOutcome::AlreadyStopping { .. } = outcome {
        ctx.ui.result_text(&format!(
            "{what} {name} is already stopping ({status}); nothing to do"
        ));
    } else {
        ctx.ui.result_text(&format!(
            "{what} {name} had already ended ({status}); nothing to stop"
        ));
    }
}

/// The report with its cost, at the on-demand price sagetrain last found for its instance
/// type and region (no request: a price is looked up by `train`, remembered in the cache).
pub fn priced(ctx: &Context, r: StatusReport) -> StatusReport {
    let memo = crate::job::remembered::Remembered::new(crate::fsutil::cache_dir(&*ctx.env), false);
    let hourly = match (r.region(), r.instance_type.as_deref()) {
        (Some(region), Some(t)) => memo.price_any_age(region, t),
        _ => None,
    };
    r.priced(hourly)
}
