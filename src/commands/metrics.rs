//! `sagetrain metrics [JOB...] [--png FILE] [--svg FILE] [--size WxH] [--follow]`: training
//! curves from the jobs' logs (see [`crate::metrics`]).

use super::jobcmd;
use super::Context;
use crate::cli::MetricsArgs;
use crate::error::{Error, Result};
use crate::follow;
use crate::follow::report::is_terminal;
use crate::metrics::image::{self, Format};
use crate::metrics::{chart, JobMetrics, Reader};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;

/// The image files asked for, checked before any network call.
fn images(ctx: &Context, args: &MetricsArgs) -> Result<Vec<(Format, PathBuf)>> {
    let mut out = Vec::new();
    for (flag, format, path) in [
        ("--png", Format::Png, &args.png),
        ("--svg", Format::Svg, &args.svg),
    ] {
        let Some(p) = path else { continue };
        let full = ctx.cwd.join(p);
        let parent = full.parent().filter(|d| !d.as_os_str().is_empty());
        if full.is_dir() || parent.is_some_and(|d| !d.is_dir()) {
            return Err(Error::usage(format!(
                "{flag}: {} is a folder, or its folder does not exist",
                p.display()
            ))
            .with_hint(format!(
                "give a file in an existing folder, e.g. {flag} curves.{}",
                &flag[2..]
            )));
        }
        out.push((format, full));
    }
    if args.size.is_some() && out.is_empty() {
        return Err(Error::usage("--size: only with --png or --svg")
            .with_hint("e.g. sagetrain metrics --png curves.png --size 1200x800"));
    }
    Ok(out)
}

fn terminal_width() -> u16 {
    console::Term::stdout()
        .size_checked()
        .map(|(_, w)| w)
        .unwrap_or(100)
}

pub async fn run(ctx: &Context, args: &MetricsArgs) -> Result<()> {
    let size = args
        .size
        .as_deref()
        .map(image::parse_size)
        .transpose()
        .map_err(|rule| Error::usage(format!("--size: {rule}")))?;
    let images = images(ctx, args)?;
    let mut t = jobcmd::target(ctx)?;
    let mut names = Vec::new();
    if args.jobs.is_empty() {
        names.push(jobcmd::job_name(ctx, None, &mut t)?);
    } else {
        for j in &args.jobs {
            let j = jobcmd::job_name(ctx, Some(j), &mut t)?;
            if !names.contains(&j) {
                names.push(j);
            }
        }
    }
    let aws = jobcmd::connect(ctx, &t).await?;
    let logs = aws.logs();
    let sm = aws.sagemaker();

    let mut readers = Vec::new();
    for job in &names {
        let d = jobcmd::describe(&aws, job).await?;
        let mut r = Reader::new(job, &d);
        for w in &r.metrics.warnings {
            ctx.ui.warn(w);
        }
        if !r.metrics.has_definitions() {
            ctx.ui.info(&format!(
                "training job {job} has no MetricDefinitions: only its FinalMetricDataList can be shown \
                 (define metrics with --metric NAME=REGEX or [metrics] in sagetrain.toml)"
            ));
        }
        r.read(&logs).await.map_err(|e| e.error)?;
        readers.push(r);
    }

    if args.follow {
        follow_jobs(ctx, &sm, &logs, &mut readers).await?;
    }

    let jobs: Vec<JobMetrics> = readers.into_iter().map(|r| r.metrics).collect();
    for (format, path) in &images {
        let size = size.unwrap_or_else(|| image::default_size(&jobs));
        image::write(&jobs, *format, size, path)?;
        ctx.ui.info(&format!(
            "wrote the charts to {} ({}x{} pixels)",
            path.display(),
            size.0,
            size.1
        ));
    }
    if ctx.json() {
        let v: Vec<serde_json::Value> = jobs.iter().map(JobMetrics::to_json).collect();
        ctx.ui.result_json(&serde_json::json!({ "jobs": v }));
    } else if std::io::stdout().is_terminal() {
        let color = (ctx.env)("NO_COLOR").is_none_or(|v| v.is_empty());
        ctx.ui
            .result_text(chart::render(&jobs, terminal_width(), color).trim_end());
    } else {
        ctx.ui.result_text(&chart::table(&jobs));
    }
    Ok(())
}

/// Poll the jobs that still run, read their new log lines, and redraw the charts on the
/// terminal (stderr), until every job has ended. Ctrl-C stops following (exit 130).
async fn follow_jobs(
    ctx: &Context,
    sm: &aws_sdk_sagemaker::Client,
    logs: &aws_sdk_cloudwatchlogs::Client,
    readers: &mut [Reader],
) -> Result<()> {
    let policy = follow::settings::policy(&Default::default(), &*ctx.env)?;
    let redraw = ctx.ui.stderr_is_terminal && !ctx.ui.quiet;
    let running = |rs: &[Reader]| {
        rs.iter()
            .filter(|r| !is_terminal(&r.metrics.status))
            .count()
    };
    if running(readers) == 0 {
        return Ok(());
    }
    ctx.ui.info(&format!(
        "following {} running job(s) until they end (Ctrl-C stops following)",
        running(readers)
    ));
    let work = async {
        let mut interval = policy.min;
        loop {
            if redraw {
                let jobs: Vec<JobMetrics> = readers.iter().map(|r| r.metrics.clone()).collect();
                let status: Vec<String> = jobs
                    .iter()
                    .map(|j| format!("{} {}", j.job_name, j.status))
                    .collect();
                let mut e = std::io::stderr().lock();
                let _ = write!(
                    e,
                    "\x1b[H\x1b[2J{}\n{}\n",
                    chart::render(&jobs, terminal_width(), ctx.ui.color),
                    status.join(", ")
                );
            }
            if running(readers) == 0 {
                return Ok::<(), Error>(());
            }
            tokio::time::sleep(interval).await;
            let mut changed = false;
            for r in readers.iter_mut() {
                if is_terminal(&r.metrics.status) {
                    continue;
                }
                let job = r.metrics.job_name.clone();
                match follow::describe(sm, &job).await {
                    Ok(d) => {
                        let before = r.metrics.status.clone();
                        r.metrics.update(&d);
                        changed |= before != r.metrics.status;
                    }
                    Err(e) if e.transient => ctx.ui.warn(&format!(
                        "{}; trying again at the next poll",
                        e.error.message
                    )),
                    Err(e) => return Err(e.error),
                }
                match r.read(logs).await {
                    Ok(n) => changed |= n > 0,
                    Err(e) if e.transient => ctx.ui.warn(&format!(
                        "reading the logs of {job} failed for now ({}); trying again at the next poll",
                        e.error.message
                    )),
                    Err(e) => return Err(e.error),
                }
            }
            interval = policy.next(interval, changed);
        }
    };
    let mut claim = crate::signals::claim();
    tokio::select! {
        biased;
        sig = claim.recv() => Err(Error::new(
            sig.kind(),
            format!("stopped following ({}); the jobs keep running", sig.name()),
        )
        .with_hint("see the curves so far: sagetrain metrics JOB")),
        r = work => r,
    }
}
