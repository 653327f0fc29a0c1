//! `sagetrain logs [JOB] [--follow] [--since DURATION]`: the job's CloudWatch logs on stdout
//! (they are this command's result), every host's stream merged in time order, each line
//! prefixed with its host when there are several.

use super::jobcmd;
use super::Context;
use crate::cli::LogsArgs;
use crate::config::durations;
use crate::error::{Error, Result};
use crate::follow::logs::LogTail;
use crate::follow::{self, Clients, LogSink};
use std::time::{SystemTime, UNIX_EPOCH};

pub async fn run(ctx: &Context, args: &LogsArgs) -> Result<()> {
    let start = match &args.since {
        None => None,
        Some(raw) => {
            let since =
                durations::parse(raw).map_err(|rule| Error::usage(format!("--since: {rule}")))?;
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_millis() as i64)
                .unwrap_or(0);
            Some(now - since.as_millis() as i64)
        }
    };
    let mut t = jobcmd::target(ctx)?;
    let job = jobcmd::job_name(ctx, args.job.as_deref(), &mut t)?;
    let aws = jobcmd::connect(ctx, &t).await?;
    let sink = if ctx.json() {
        LogSink::StdoutJson
    } else {
        LogSink::StdoutText
    };
    let logs = aws.logs();

    if args.follow {
        // The job first: a wrong name is an error, not an empty log.
        jobcmd::describe(&aws, &job).await?;
        let mut opts = follow::WaitOptions {
            policy: follow::settings::policy(&args.poll, &*ctx.env)?,
            timeout: None,
            logs: true,
            stop_on_interrupt: false,
            log_start: start,
        };
        opts.logs = true;
        let sm = aws.sagemaker();
        let clients = Clients {
            sagemaker: &sm,
            logs: Some(&logs),
        };
        let mut rep = jobcmd::reporter(ctx, sink);
        let mut interrupt = crate::signals::claim();
        let mut last = None;
        let verdict = follow::watch(
            &clients,
            &job,
            &opts,
            &follow::TokioClock::new(),
            rep.as_mut(),
            interrupt.recv(),
            &mut last,
        )
        .await?;
        drop(rep);
        // The logs are the result; the verdict is told on stderr (`wait` makes it the exit code).
        match crate::follow::report::verdict_error(&job, &verdict) {
            None => ctx.ui.info(&format!("training job {job} completed")),
            Some(e) => ctx.ui.info(&format!(
                "{} (`sagetrain wait {job}` exits with the verdict)",
                e.message
            )),
        }
        return Ok(());
    }

    // The job and its streams in one round: a wrong name is still an error, not an empty log.
    let mut tail = LogTail::new(&job, start);
    let (d, found) = tokio::join!(jobcmd::describe(&aws, &job), tail.discover(&logs));
    let d = d?;
    found.map_err(|e| e.error)?;
    if let Some(c) = d.resource_config().and_then(|r| r.instance_count()) {
        tail.instance_count = c;
    }
    if tail.stream_count() == 0 {
        let status = d
            .training_job_status()
            .map(|s| s.as_str())
            .unwrap_or("unknown");
        ctx.ui.info(&format!(
            "training job {job} has no log streams in {} (yet): it is {status}{}",
            crate::follow::logs::LOG_GROUP,
            if status == "InProgress" {
                "; logs appear once its instances start (`sagetrain logs --follow` waits for them)"
            } else {
                ""
            }
        ));
        return Ok(());
    }
    let prefix = tail.multi_host();
    let mut rep = follow::PlainReporter::new(false, sink);
    let n = tail
        .drain(&logs, &mut |l| {
            follow::Reporter::log(&mut rep, &l, prefix);
        })
        .await
        .map_err(|e| e.error)?;
    ctx.ui
        .detail(&format!("{n} lines from {} streams", tail.stream_count()));
    Ok(())
}
