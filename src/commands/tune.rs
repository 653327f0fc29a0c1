//! `sagetrain tune`: create a hyperparameter tuning job from the settings of `train` plus the
//! ranges to search; `tune status|wait|best|stop [NAME]` for an existing one (NAME defaults to
//! the last tuning job of this project).

use super::jobcmd::{self, Target};
use super::Context;
use crate::aws::Aws;
use crate::cli::{TuneAction, TuneCmd, TuneWaitArgs};
use crate::config::{violations_error, Source, Val};
use crate::error::{Error, Result};
use crate::follow::tuning::{self, TuningReport};
use crate::follow::StopOutcome;
use crate::job::spec::validate;
use crate::job::state;
use crate::job::tune::{
    build_tuning_request, check_tuning_name, generate_tuning_name, to_sdk, validate_tuning_request,
    TuneSettings,
};
use std::time::SystemTime;

pub async fn run(ctx: &Context, cmd: &TuneCmd) -> Result<()> {
    match &cmd.action {
        None => create(ctx, cmd).await,
        Some(TuneAction::Status(a)) => status(ctx, a.name.as_deref()).await,
        Some(TuneAction::Wait(a)) => wait(ctx, a).await,
        Some(TuneAction::Best(a)) => best(ctx, a.name.as_deref()).await,
        Some(TuneAction::Stop(a)) => stop(ctx, &a.name).await,
    }
}

async fn create(ctx: &Context, cmd: &TuneCmd) -> Result<()> {
    // Both sets of settings are checked before either is used: every violation together.
    let file = ctx.config_file()?;
    let layered = super::train::layered(ctx, &cmd.args)?;
    let mut violations = Vec::new();
    let job = validate(&layered, &ctx.cwd)
        .map_err(|v| violations.extend(v))
        .ok();
    for w in job.iter().flat_map(|j| &j.warnings) {
        ctx.ui.warn(w);
    }
    // The tuner's algorithm specification has no ContainerEntrypoint: code mode cannot run there.
    if let Some(src) = job.as_ref().and_then(|j| j.code.as_ref()) {
        violations.push(crate::config::Violation::new(
            src.source.source.name_for(None),
            "code mode (--source) is not available with `tune`: SageMaker's tuner runs the image's own entrypoint; build the code into the image (`sagetrain image push`) and tune that",
        ));
    }
    let tune = match TuneSettings::layer(&cmd.tune, file.as_ref()) {
        Ok(t) => crate::job::tune::validate(&t, &layered)
            .map_err(|v| violations.extend(v))
            .ok(),
        Err(v) => {
            violations.extend(v);
            None
        }
    };
    let (Some(mut job), Some(tune), true) = (job, tune, violations.is_empty()) else {
        return Err(violations_error(violations));
    };
    // The quota check counts every trial that runs at once.
    job.concurrent_jobs = i64::from(tune.parallel);
    job.jobs = i64::from(tune.max_jobs);
    if job.channels.is_empty() {
        ctx.ui.warn("no input channels: the trials get no data (add --train s3://... or [channels] in sagetrain.toml)");
    }
    match (&job.checkpoint_s3, job.spot) {
        (Some(c), _) => ctx.ui.warn(&format!(
            "every trial syncs the same checkpoint location ({c}); a trial resumes from whatever another left there unless the training code keeps its checkpoints apart (by $TRAINING_JOB_NAME)"
        )),
        (None, true) => ctx.ui.info(
            "spot trials get no checkpoint location (one location would be shared by every trial): an interrupted trial starts over",
        ),
        _ => {}
    }

    let staged = super::train::stage(ctx, &cmd.args, &job).await?;
    let plan = &staged.plan;
    let name = match &job.name {
        Some(n) => n.clone(),
        None => {
            let (base, src) = crate::job::spec::base_name(&job);
            Val::new(
                generate_tuning_name(&base, SystemTime::now(), &plan.resolved.submission_id),
                Source::Lookup(format!("generated from base name ({src})")),
            )
        }
    };
    let request = build_tuning_request(&job, &tune, &name.value, plan.request.clone());
    let v = validate_tuning_request(&request);
    if !v.is_empty() {
        return Err(violations_error(v));
    }
    ctx.ui.detail(&format!(
        "tuning job name: {} ({})",
        name.value, name.source
    ));
    if job.dry_run {
        return staged
            .dry_run(ctx, "CreateHyperParameterTuningJob", &request)
            .await;
    }
    let aws = plan.online("tuning job")?;
    staged.push(ctx, aws).await?;
    let n = &name.value;
    crate::aws::timeouts::in_flight(Some(format!(
        "sagemaker:CreateHyperParameterTuningJob of `{n}`, which may or may not have been created: check with `sagetrain tune status {n}`"
    )));
    let sent = to_sdk(&aws.sagemaker(), &request).send().await;
    crate::aws::timeouts::in_flight(None);
    let arn = match sent {
        Ok(out) => out
            .hyper_parameter_tuning_job_arn()
            .unwrap_or_default()
            .to_string(),
        Err(e) => {
            let mut err = crate::aws::aws_error("sagemaker:CreateHyperParameterTuningJob", &e);
            if crate::aws::error_code(&e).as_deref() == Some("ResourceInUse") {
                err = err.with_hint(format!(
                    "a tuning job named `{n}` exists already (a retried request may have created it): see it with `sagetrain tune status {n}`, or drop --name for a new name"
                ));
            }
            return Err(err);
        }
    };
    let r = &plan.resolved;
    record_last(ctx, job.config_path.as_deref(), n, &arn, &r.region);
    if ctx.json() {
        ctx.ui.result_json(&serde_json::json!({
            "tuning_job_name": n,
            "tuning_job_arn": arn,
            "region": r.region,
            "role_arn": r.role_arn.value,
            "training_image": r.training_image.value,
            "output_path": r.output_path.value,
        }));
    } else {
        ctx.ui
            .result_text(&format!("tuning job  {n}\narn         {arn}"));
    }
    ctx.ui.info(
        "follow it: sagetrain tune wait; its trials: sagetrain tune status; retrain the best: sagetrain train --from \"$(sagetrain tune best)\"",
    );
    Ok(())
}

/// Record the tuning job just created as this project's last one. A failure is only a warning.
fn record_last(
    ctx: &Context,
    config: Option<&std::path::Path>,
    name: &str,
    arn: &str,
    region: &str,
) {
    let project = state::project_dir(config, &ctx.cwd);
    let last = state::LastTuningJob {
        tuning_job_name: name.to_string(),
        tuning_job_arn: arn.to_string(),
        region: region.to_string(),
        submitted_at: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
    };
    match state::record_tuning(&project, &last) {
        Ok(p) => ctx
            .ui
            .detail(&format!("recorded as this project's last tuning job in {}", p.display())),
        Err(e) => ctx.ui.warn(&format!(
            "could not record the tuning job in {}: {e} (`sagetrain tune status` will need its name)",
            state::tuning_state_path(&project).display()
        )),
    }
}

/// The tuning job to work on: the one given (checked), or the last one of this project (whose
/// region is used unless one was set).
fn tuning_name(ctx: &Context, given: Option<&str>, t: &mut Target) -> Result<String> {
    let last = state::load_tuning(&t.project)?.map(|l| (l.tuning_job_name, l.region));
    jobcmd::given_or_last(
        ctx,
        given,
        t,
        jobcmd::Last {
            what: "tuning job",
            full: "tuning job",
            arg: "NAME",
            check: check_tuning_name,
            path: state::tuning_state_path(&t.project),
            last,
            hint: "`aws sagemaker list-hyper-parameter-tuning-jobs` lists them",
            name_it: "sagetrain tune status NAME",
        },
    )
}

async fn connect(ctx: &Context, given: Option<&str>) -> Result<(Aws, String)> {
    let mut t = jobcmd::target(ctx)?;
    let name = tuning_name(ctx, given, &mut t)?;
    let aws = jobcmd::connect(ctx, &t).await?;
    Ok((aws, name))
}

async fn status(ctx: &Context, given: Option<&str>) -> Result<()> {
    let (aws, name) = connect(ctx, given).await?;
    let sm = aws.sagemaker();
    let d = tuning::describe(&sm, &name).await.map_err(|e| e.error)?;
    let now = SystemTime::now();
    let mut report = TuningReport::from_describe(&d, now);
    let trials = tuning::trial_summaries(&sm, &name)
        .await?
        .iter()
        .map(|s| tuning::Trial::from_summary(s, now))
        .collect();
    report.leaderboard = Some(tuning::rank(trials, report.minimize()));
    show(ctx, &report);
    Ok(())
}

fn show(ctx: &Context, report: &TuningReport) {
    if ctx.json() {
        ctx.ui
            .result_json(&serde_json::to_value(report).unwrap_or_default());
    } else {
        ctx.ui.result_text(&report.to_text());
    }
}

async fn wait(ctx: &Context, args: &TuneWaitArgs) -> Result<()> {
    // The same --timeout rules (and poll policy) as `wait`.
    let opts = jobcmd::wait_options(
        ctx,
        &crate::cli::FollowArgs {
            logs: false,
            timeout: args.timeout.clone(),
            stop_on_interrupt: args.stop_on_interrupt,
            poll: Default::default(),
        },
    )?;
    let (aws, name) = connect(ctx, args.name.as_deref()).await?;
    ctx.ui.info(&format!(
        "waiting for tuning job {name} (Ctrl-C {})",
        if args.stop_on_interrupt {
            "stops it"
        } else {
            "stops waiting; the tuning job keeps running"
        }
    ));
    let how = tuning::TuneWait {
        policy: opts.policy,
        timeout: opts.timeout,
        stop_on_interrupt: opts.stop_on_interrupt,
    };
    let d = tuning::wait(
        &aws.sagemaker(),
        &name,
        how,
        &crate::follow::TokioClock::new(),
        &mut |line| ctx.ui.info(line),
        &mut |text| ctx.ui.warn(text),
        crate::signals::claim().recv(),
    )
    .await?;
    show(ctx, &TuningReport::from_describe(&d, SystemTime::now()));
    match tuning::verdict_error(&name, &d) {
        None => Ok(()),
        Some(e) => Err(e),
    }
}

async fn best(ctx: &Context, given: Option<&str>) -> Result<()> {
    let (aws, name) = connect(ctx, given).await?;
    let d = tuning::describe(&aws.sagemaker(), &name)
        .await
        .map_err(|e| e.error)?;
    let report = TuningReport::from_describe(&d, SystemTime::now());
    let Some(b) = &report.best_training_job else {
        return Err(Error::aws(format!(
            "tuning job `{name}` has no best training job yet ({}): no trial has reported {} yet",
            report.progress(),
            report.objective_metric.as_deref().unwrap_or("its objective")
        ))
        .with_hint(format!(
            "wait for it: sagetrain tune wait {name}; if trials end without it, check the --metric regex against their logs (sagetrain tune status {name})"
        )));
    };
    if ctx.json() {
        ctx.ui.result_json(&serde_json::json!({
            "tuning_job_name": name,
            "training_job_name": b.training_job_name,
            "objective_metric": report.objective_metric,
            "objective_value": b.objective_value,
            "hyperparameters": b.hyperparameters,
        }));
    } else {
        ctx.ui.result_text(&b.training_job_name);
    }
    Ok(())
}

async fn stop(ctx: &Context, name: &str) -> Result<()> {
    let (aws, name) = connect(ctx, Some(name)).await?;
    let outcome = tuning::stop(&aws.sagemaker(), &name).await?;
    let status = match &outcome {
        StopOutcome::Requested => "Stopping".to_string(),
        StopOutcome::AlreadyEnded { status } | StopOutcome::AlreadyStopping { status } => {
            status.clone()
        }
    };
    let after = format!(
        "SageMaker stops its running training jobs too; `sagetrain tune wait {name}` shows when it has stopped"
    );
    jobcmd::show_stop(
        ctx,
        ("tuning job", "tuning_job_name"),
        &name,
        &outcome,
        &status,
        &after,
    );
    Ok(())
}
