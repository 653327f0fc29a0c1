//! `sagetrain shell [JOB] [--host algo-N] [-- COMMAND...]`: a shell (or one command) in a
//! running job's container over remote debugging's SSM channel; `--enable` turns remote
//! debugging on for a running job.
//!
//! Everything that can be refused without AWS is refused first (the host's name, the job's
//! name, a missing plugin); then one DescribeTrainingJob says whether the job runs, has the host
//! and has remote debugging on; then StartSession, and the plugin takes the terminal.

use super::jobcmd;
use super::Context;
use crate::cli::ShellArgs;
use crate::error::{Error, Result};
use crate::job::request::remote_debug_of;
use crate::job::session;

pub async fn run(ctx: &Context, args: &ShellArgs) -> Result<()> {
    let host =
        session::parse_host(&args.host).map_err(|rule| Error::usage(format!("--host: {rule}")))?;
    let mut t = jobcmd::target(ctx)?;
    let job = jobcmd::job_name(ctx, args.job.as_deref(), &mut t)?;
    let plugin = match args.enable {
        true => None,
        false => Some(session::find_plugin(&*ctx.env)?),
    };
    let aws = jobcmd::connect(ctx, &t).await?;
    let d = jobcmd::describe(&aws, &job).await?;
    let status = d
        .training_job_status()
        .map(|s| s.as_str().to_string())
        .unwrap_or_else(|| "unknown".into());
    if status != "InProgress" {
        return Err(Error::usage(format!(
            "training job {job} is {status}: a shell needs a running job (InProgress)"
        ))
        .with_hint(format!(
            "its logs: sagetrain logs {job}; a new run with remote debugging: sagetrain train --from {job} --remote-debug"
        )));
    }
    let on = remote_debug_of(&d);

    if args.enable {
        return enable(
            ctx,
            &aws,
            &job,
            on,
            d.enable_network_isolation().unwrap_or(false),
        )
        .await;
    }
    if !on {
        return Err(Error::usage(format!(
            "training job {job} was created without remote debugging, so it has no SSM session to open"
        ))
        .with_hint(format!(
            "turn it on for the running job: sagetrain shell --enable {job} (the session is ready about a minute later); \
             for the next jobs: train --remote-debug, or `remote_debug = true` in sagetrain.toml"
        )));
    }
    session::check_host(&job, host, session::host_count(&d))?;

    let (plugin, version) = plugin.expect("found above unless --enable");
    let target = session::target(&job, host);
    let request = session::start_request(&target, &args.command);
    let ssm = aws.ssm();
    let s = session::start(&ssm, &request, &job).await?;
    ctx.ui.info(&format!(
        "session {} with algo-{host} of {job} (SSM target {target}); {}",
        s.id,
        match args.command.is_empty() {
            true => "type `exit` to leave",
            false => "running the command",
        }
    ));
    let inv = session::invocation(
        &s,
        session::reads_response_from_env(&version),
        &aws.region.value,
        t.aws.profile.as_ref().map(|p| p.value.as_str()),
        &request,
        &session::ssm_endpoint(
            &aws.region.value,
            aws.endpoints.get("SSM").map(String::as_str),
        ),
    );
    match session::run_plugin(&plugin, &inv, &ssm, &s).await? {
        0 => Ok(()),
        c => Err(session::passed_through(c)),
    }
}

async fn enable(
    ctx: &Context,
    aws: &crate::aws::Aws,
    job: &str,
    already: bool,
    isolated: bool,
) -> Result<()> {
    if isolated {
        return Err(Error::usage(format!(
            "training job {job} runs with network isolation, which remote debugging cannot be combined with"
        ))
        .with_hint(format!(
            "start a run without it: sagetrain train --from {job} --remote-debug (and network_isolation = false)"
        )));
    }
    if !already {
        session::enable(&aws.sagemaker(), job).await?;
    }
    if ctx.json() {
        ctx.ui.result_json(&serde_json::json!({
            "job_name": job,
            "remote_debug": true,
            "changed": !already,
        }));
    } else if already {
        ctx.ui.result_text(&format!(
            "remote debugging is already on for {job}: sagetrain shell {job}"
        ));
    } else {
        ctx.ui.result_text(&format!(
            "remote debugging turned on for {job}; the session may take a minute to become available: sagetrain shell {job}"
        ));
    }
    Ok(())
}
