//! `sagetrain metrics [JOB...] [--png FILE] [--svg FILE] [--size WxH] [--follow]`: training
//! curves from the jobs' logs (see [`crate::metrics`]).

use super::jobcmd;
use super::Context;
use crate::aws::errors::CallError;
use crate::cli::MetricsArgs;
use crate::error::{Error, Result};
use crate::follow;
use crate::follow::report::is_terminal;
use crate::follow::{Poller, Step, Subject, TokioClock, Watch};
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
    if args.local {
        let jobs = local_runs(ctx, args)?;
        return show(ctx, &jobs, &images, size);
    }
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
    show(ctx, &jobs, &images, size)
}

/// The image files, then the result: JSON, the charts on a terminal, else the table.
fn show(
    ctx: &Context,
    jobs: &[JobMetrics],
    images: &[(Format, PathBuf)],
    size: Option<(u32, u32)>,
) -> Result<()> {
    for (format, path) in images {
        let size = size.unwrap_or_else(|| image::default_size(jobs));
        image::write(jobs, *format, size, path)?;
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
            .result_text(chart::render(jobs, terminal_width(), color).trim_end());
    } else {
        ctx.ui.result_text(&chart::table(jobs));
    }
    Ok(())
}

/// `metrics --local [NAME...]`: each local run's train.log parsed with its metric definitions
/// (the newest run when none is named). No AWS call.
fn local_runs(ctx: &Context, args: &MetricsArgs) -> Result<Vec<JobMetrics>> {
    if args.follow {
        return Err(Error::usage(
            "--follow: not with --local; a local run's values stream on the terminal of `sagetrain train --local` and its log is read once here",
        )
        .with_hint("run `sagetrain metrics --local` again to see the values logged so far"));
    }
    let mut names: Vec<Option<&str>> = args.jobs.iter().map(|j| Some(j.as_str())).collect();
    names.dedup();
    if names.is_empty() {
        names.push(None);
    }
    let mut jobs = Vec::new();
    for name in names {
        let run = jobcmd::local_run(ctx, name)?;
        let log_path = run.folder.join(crate::job::local::LOG_FILE);
        let log = std::fs::read_to_string(&log_path).map_err(|e| {
            Error::internal(format!("cannot read {}: {e}", log_path.display()))
                .with_hint(format!("the run's folder lost its log; run it again: sagetrain train --local (its record: sagetrain status --local {})", run.job_name))
        })?;
        let m = crate::metrics::local::from_log(&run, &log);
        for w in &m.warnings {
            ctx.ui.warn(w);
        }
        if !m.has_definitions() {
            ctx.ui.info(&format!(
                "local run {} has no metric definitions: nothing to parse in its log \
                 (define metrics with --metric NAME=REGEX or [metrics] in sagetrain.toml)",
                run.job_name
            ));
        }
        if run.hosts.len() > 1 {
            ctx.ui.info(&format!(
                "local run {}: the values of {} only (one series per run); the other hosts' lines are in {}",
                run.job_name,
                crate::metrics::local::HOST,
                log_path.display()
            ));
        }
        jobs.push(m);
    }
    Ok(jobs)
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
    let running = readers
        .iter()
        .filter(|r| !is_terminal(&r.metrics.status))
        .count();
    if running == 0 {
        return Ok(());
    }
    ctx.ui.info(&format!(
        "following {running} running job(s) until they end (Ctrl-C stops following)"
    ));
    let mut draw = |rs: &[Reader]| {
        if !redraw {
            return;
        }
        let jobs: Vec<JobMetrics> = rs.iter().map(|r| r.metrics.clone()).collect();
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
    };
    let (warn, note) = (|t: &str| ctx.ui.warn(t), |t: &str| ctx.ui.info(t));
    let out = Out {
        draw: &mut draw,
        warn: &warn,
        note: &note,
    };
    let mut f = Following::new(sm, logs, readers, out);
    let mut claim = crate::signals::claim();
    Poller::new(&TokioClock::new(), policy)
        .run(&mut f, claim.recv())
        .await
}

/// The jobs of `metrics --follow` as [`Poller`] waits for them: each look describes the jobs
/// that still run and reads their new log lines (the first look only draws what was read
/// before); done when every job has ended.
struct Following<'a> {
    sm: &'a aws_sdk_sagemaker::Client,
    logs: &'a aws_sdk_cloudwatchlogs::Client,
    readers: &'a mut [Reader],
    out: Out<'a>,
    drawn: bool,
    /// The jobs that ran when following began (the ones the messages name).
    followed: Vec<String>,
    subject: Subject,
}

/// Where following shows what it has: the charts after each look, the poller's lines.
struct Out<'a> {
    draw: &'a mut dyn FnMut(&[Reader]),
    warn: &'a dyn Fn(&str),
    note: &'a dyn Fn(&str),
}

impl<'a> Following<'a> {
    fn new(
        sm: &'a aws_sdk_sagemaker::Client,
        logs: &'a aws_sdk_cloudwatchlogs::Client,
        readers: &'a mut [Reader],
        out: Out<'a>,
    ) -> Following<'a> {
        let followed: Vec<String> = readers
            .iter()
            .filter(|r| !is_terminal(&r.metrics.status))
            .map(|r| r.metrics.job_name.clone())
            .collect();
        let names: Vec<&str> = followed.iter().map(String::as_str).collect();
        let subject = match names.as_slice() {
            [one] => Subject::sagemaker(
                "training job",
                one,
                format!("sagetrain metrics --follow {one}"),
                format!("sagetrain stop {one}"),
            ),
            several => Subject {
                what: format!(
                    "training jobs {}",
                    several
                        .iter()
                        .map(|n| format!("`{n}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                plural: true,
                runner: "SageMaker",
                again: format!("sagetrain metrics --follow {}", several.join(" ")),
                stop: Some("sagetrain stop JOB".into()),
            },
        };
        Following {
            sm,
            logs,
            readers,
            out,
            drawn: false,
            followed,
            subject,
        }
    }

    fn running(&self) -> usize {
        self.readers
            .iter()
            .filter(|r| !is_terminal(&r.metrics.status))
            .count()
    }
}

impl Watch for Following<'_> {
    type Output = ();

    fn subject(&self) -> &Subject {
        &self.subject
    }

    async fn step(&mut self) -> std::result::Result<Step<()>, CallError> {
        let mut changed = !self.drawn;
        // A transient failure is said once the other jobs have been read too.
        let mut failed = None;
        if self.drawn {
            for r in self.readers.iter_mut() {
                if is_terminal(&r.metrics.status) {
                    continue;
                }
                match follow::describe(self.sm, &r.metrics.job_name).await {
                    Ok(d) => {
                        let before = r.metrics.status.clone();
                        r.metrics.update(&d);
                        changed |= before != r.metrics.status;
                    }
                    Err(e) if e.transient => {
                        failed.get_or_insert(e);
                    }
                    Err(e) => return Err(e),
                }
                match r.read(self.logs).await {
                    Ok(n) => changed |= n > 0,
                    Err(e) if e.transient => {
                        failed.get_or_insert(e);
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        self.drawn = true;
        (self.out.draw)(self.readers);
        if let Some(e) = failed {
            return Err(e);
        }
        Ok(match (self.running(), changed) {
            (0, _) => Step::Done(()),
            (_, true) => Step::Changed,
            (_, false) => Step::Unchanged,
        })
    }

    fn state(&self) -> Option<String> {
        let running: Vec<&Reader> = self
            .readers
            .iter()
            .filter(|r| self.followed.contains(&r.metrics.job_name))
            .collect();
        Some(match running.as_slice() {
            [one] => one.metrics.status.clone(),
            several => several
                .iter()
                .map(|r| format!("{} {}", r.metrics.job_name, r.metrics.status))
                .collect::<Vec<_>>()
                .join(", "),
        })
    }

    fn warn(&mut self, text: &str) {
        (self.out.warn)(text);
    }

    fn note(&mut self, text: &str) {
        (self.out.note)(text);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::follow::{Describe, FakeClock, PollPolicy};
    use crate::signals::Signal;
    use crate::testing::throttling;
    use aws_sdk_cloudwatchlogs::operation::describe_log_streams::DescribeLogStreamsOutput;
    use aws_sdk_cloudwatchlogs::operation::get_log_events::GetLogEventsOutput;
    use aws_sdk_cloudwatchlogs::types::{LogStream, OutputLogEvent};
    use aws_sdk_sagemaker::types as sm;
    use aws_smithy_mocks::{mock, mock_client, RuleMode};
    use aws_smithy_types::retry::RetryConfig;
    use std::cell::RefCell;
    use std::future::Future;
    use std::time::Duration;

    const JOB: &str = "unet-1";

    fn job(status: sm::TrainingJobStatus) -> Describe {
        let mut d = crate::metrics::tests::described(&[("loss", "loss=([0-9.]+)")], &[]);
        d.training_job_status = Some(status);
        d
    }

    fn page(events: &[&str], token: &str) -> GetLogEventsOutput {
        let mut b = GetLogEventsOutput::builder().next_forward_token(token);
        for (i, m) in events.iter().enumerate() {
            b = b.events(
                OutputLogEvent::builder()
                    .timestamp(1_700_000_000_000 + i as i64)
                    .message(*m)
                    .build(),
            );
        }
        b.build()
    }

    /// A logs client with one stream whose reads answer `pages` in order, the last forever.
    fn logs_client(pages: Vec<GetLogEventsOutput>) -> aws_sdk_cloudwatchlogs::Client {
        let list = mock!(aws_sdk_cloudwatchlogs::Client::describe_log_streams).then_output(|| {
            DescribeLogStreamsOutput::builder()
                .log_streams(
                    LogStream::builder()
                        .log_stream_name(format!("{JOB}/algo-1-1700000000"))
                        .build(),
                )
                .build()
        });
        let get =
            crate::testing::in_order(mock!(aws_sdk_cloudwatchlogs::Client::get_log_events), pages);
        mock_client!(aws_sdk_cloudwatchlogs, RuleMode::MatchAny, [&list, &get])
    }

    /// What following JOB gave.
    struct Followed {
        result: Result<()>,
        readers: Vec<Reader>,
        draws: usize,
        warnings: Vec<String>,
        notes: Vec<String>,
    }

    /// Follow JOB (running) on `clock` until its end, `timeout` or `interrupt`.
    async fn follow_job(
        sm: &aws_sdk_sagemaker::Client,
        logs: &aws_sdk_cloudwatchlogs::Client,
        clock: &FakeClock,
        timeout: Option<Duration>,
        interrupt: impl Future<Output = Signal>,
    ) -> Followed {
        let mut readers = vec![Reader::new(JOB, &job(sm::TrainingJobStatus::InProgress))];
        let mut draws = 0;
        let (warnings, notes) = (RefCell::new(vec![]), RefCell::new(vec![]));
        let warn = |t: &str| warnings.borrow_mut().push(t.to_string());
        let note = |t: &str| notes.borrow_mut().push(t.to_string());
        let mut draw = |_: &[Reader]| draws += 1;
        let result = {
            let out = Out {
                draw: &mut draw,
                warn: &warn,
                note: &note,
            };
            let mut f = Following::new(sm, logs, &mut readers, out);
            Poller::new(clock, PollPolicy::default())
                .timeout(timeout)
                .run(&mut f, interrupt)
                .await
        };
        Followed {
            result,
            readers,
            draws,
            warnings: warnings.into_inner(),
            notes: notes.into_inner(),
        }
    }

    fn secs(clock: &FakeClock) -> Vec<f64> {
        clock.sleeps().iter().map(|d| d.as_secs_f64()).collect()
    }

    #[tokio::test]
    async fn following_backs_off_while_nothing_changes_and_ends_with_the_job() {
        use sm::TrainingJobStatus as S;
        let describe = crate::testing::in_order(
            mock!(aws_sdk_sagemaker::Client::describe_training_job)
                .match_requests(|r| r.training_job_name() == Some(JOB)),
            vec![
                job(S::InProgress),
                job(S::InProgress),
                job(S::InProgress),
                job(S::Completed),
            ],
        );
        let sm = mock_client!(aws_sdk_sagemaker, RuleMode::MatchAny, [&describe]);
        let logs = logs_client(vec![
            page(&["epoch 1 loss=0.9"], "f/1"),
            page(&[], "f/1"),
            page(&[], "f/1"),
            page(&[], "f/1"),
            page(&["epoch 2 loss=0.5"], "f/2"),
            page(&[], "f/2"),
        ]);
        let clock = FakeClock::default();
        let f = follow_job(&sm, &logs, &clock, None, std::future::pending()).await;
        f.result.unwrap();
        // The first look draws what was read before; then 5 s after new lines, half as long
        // again each time nothing changes, until the job has ended.
        assert_eq!(secs(&clock), [5.0, 5.0, 7.5, 11.25]);
        assert_eq!(describe.num_calls(), 4);
        assert_eq!(f.draws, 5, "the charts after each look");
        let m = &f.readers[0].metrics;
        assert_eq!(m.status, "Completed");
        let loss: Vec<f64> = m.metrics[0].points.iter().map(|p| p.value).collect();
        assert_eq!(loss, [0.9, 0.5]);
        assert!(f.warnings.is_empty(), "{:?}", f.warnings);
    }

    #[tokio::test]
    async fn transient_failures_are_waited_out_up_to_the_cap() {
        use sm::TrainingJobStatus as S;
        let quiet = || vec![page(&[], "f/0")];
        // Throttled twice, then the job has ended.
        let rule = mock!(aws_sdk_sagemaker::Client::describe_training_job)
            .sequence()
            .error(throttling)
            .times(2)
            .output(|| job(S::Completed))
            .build();
        let sm = mock_client!(aws_sdk_sagemaker, RuleMode::Sequential, [&rule], |b| b
            .retry_config(RetryConfig::disabled()));
        let clock = FakeClock::default();
        let f = follow_job(
            &sm,
            &logs_client(quiet()),
            &clock,
            None,
            std::future::pending(),
        )
        .await;
        f.result.unwrap();
        assert_eq!(secs(&clock), [5.0, 10.0, 20.0], "doubled at each failure");
        assert_eq!(f.warnings.len(), 2, "{:?}", f.warnings);
        assert!(
            f.warnings[0].ends_with("Rate exceeded (throttled); polling again in 10s"),
            "{:?}",
            f.warnings
        );
        assert_eq!(f.notes, ["DescribeTrainingJob answers again"]);

        // Throttled forever: the wait ends, as `wait`'s does (it had no cap).
        let (rule, sm) = crate::testing::throttled_forever();
        let f = follow_job(
            &sm,
            &logs_client(quiet()),
            &FakeClock::default(),
            None,
            std::future::pending(),
        )
        .await;
        let e = f.result.unwrap_err();
        assert_eq!(e.kind, crate::error::Kind::Aws);
        assert!(
            e.message.ends_with(
                "(failed 10 times in a row; stopped waiting, training job `unet-1` keeps running)"
            ),
            "{}",
            e.message
        );
        assert!(e
            .hint
            .unwrap()
            .starts_with("wait again later: sagetrain metrics --follow unet-1; "),);
        assert_eq!(
            rule.num_calls(),
            follow::poll::MAX_TRANSIENT_FAILURES as usize
        );
    }

    /// A job that runs on, and a logs client with nothing new.
    fn running() -> (aws_smithy_mocks::Rule, aws_sdk_cloudwatchlogs::Client) {
        let rule = crate::testing::in_order(
            mock!(aws_sdk_sagemaker::Client::describe_training_job),
            vec![job(sm::TrainingJobStatus::InProgress)],
        );
        (rule, logs_client(vec![page(&[], "f/0")]))
    }

    #[tokio::test]
    async fn an_interrupt_stops_following_and_the_job_keeps_running() {
        let (rule, logs) = running();
        let sm = mock_client!(aws_sdk_sagemaker, RuleMode::MatchAny, [&rule]);
        let clock = FakeClock::default();
        let interrupt = async {
            while clock.sleeps().len() < 3 {
                tokio::task::yield_now().await;
            }
            Signal::Terminate
        };
        let f = follow_job(&sm, &logs, &clock, None, interrupt).await;
        let e = f.result.unwrap_err();
        assert_eq!(e.exit_code(), 143, "SIGTERM");
        assert_eq!(
            e.message,
            "stopped waiting (SIGTERM); training job `unet-1` keeps running (InProgress)"
        );
        assert_eq!(
            e.hint.as_deref(),
            Some("re-attach: sagetrain metrics --follow unet-1; stop it: sagetrain stop unet-1")
        );
        assert_eq!(clock.sleeps().len(), 3);
    }

    #[tokio::test]
    async fn a_deadline_ends_following_with_exit_7() {
        let (rule, logs) = running();
        let sm = mock_client!(aws_sdk_sagemaker, RuleMode::MatchAny, [&rule]);
        let clock = FakeClock::default();
        let f = follow_job(
            &sm,
            &logs,
            &clock,
            Some(Duration::from_secs(60)),
            std::future::pending(),
        )
        .await;
        let e = f.result.unwrap_err();
        assert_eq!(e.exit_code(), 7);
        assert!(
            e.message.starts_with(
                "gave up waiting for training job `unet-1` after 1m (--timeout); it is InProgress"
            ),
            "{}",
            e.message
        );
        assert_eq!(
            clock.sleeps().iter().sum::<Duration>(),
            Duration::from_secs(60)
        );
    }
}
