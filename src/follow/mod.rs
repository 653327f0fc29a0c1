//! Following a training job until it ends: DescribeTrainingJob polled through the one
//! [`Poller`] (the interval, `--timeout`, transient failures and interrupts are its), the status
//! transitions as they happen, the job's logs as they arrive, and the verdict.
//!
//! Everything here takes the SDK clients, a [`Clock`] and a [`Reporter`] as parameters, so the
//! tests drive it with `aws-smithy-mocks` clients and a fake clock that sleeps in no time
//! (`FakeClock` and `Recorder`, compiled for tests only).

pub mod ci;
pub mod logs;
pub mod poll;
pub mod report;
pub mod settings;
pub mod tuning;

#[cfg(test)]
pub use poll::FakeClock;
pub use poll::{Clock, PollPolicy, Poller, Step, Subject, TokioClock, Watch};

use crate::aws::aws_error;
use crate::aws::errors::CallError;
use crate::config::durations;
use crate::error::Result;
use crate::follow::logs::{LogLine, LogTail};
use crate::secrets::redact;
use crate::signals::Signal;
use report::Verdict;
use std::future::Future;
use std::io::Write;
use std::time::{Duration, SystemTime};

/// DescribeTrainingJob is a lookup of the job layer; waiting uses it here.
pub use crate::job::lookups::{describe, Describe};

/// In plain (non-terminal) mode, a line is printed at least this often, so that a CI log shows
/// the wait is alive.
const HEARTBEAT: Duration = Duration::from_secs(600);

// ---------------------------------------------------------------------------------------------
// What the user sees.

/// Where the status lines, the live line, log lines and warnings go.
pub trait Reporter {
    /// A status transition, printed as a line.
    fn status_line(&mut self, line: &str, elapsed: Duration);
    /// The current state, for a live line (or a heartbeat line now and then).
    fn live(&mut self, text: &str, elapsed: Duration);
    fn log(&mut self, line: &LogLine, prefix: bool);
    fn warn(&mut self, text: &str);
    /// The wait is over: clear the live line.
    fn finish(&mut self) {}
}

fn stderr_line(text: &str) {
    let mut e = std::io::stderr().lock();
    let _ = writeln!(e, "{}", redact(text));
}

/// Where log lines go: stderr for `wait --logs` (the result is the verdict), stdout for
/// `sagetrain logs` (they are the result), as text or as JSON lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogSink {
    Stderr,
    StdoutText,
    StdoutJson,
}

/// A line on stdout. When the reader has gone (`sagetrain logs -f | head`), there is no one
/// left to print for: end quietly, as `cat` would.
fn stdout_line(text: &str) {
    let mut o = std::io::stdout().lock();
    if let Err(e) = writeln!(o, "{}", redact(text)) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
    }
}

fn emit_log(sink: LogSink, line: &LogLine, prefix: bool) {
    match sink {
        LogSink::Stderr => stderr_line(&line.render(prefix)),
        LogSink::StdoutText => stdout_line(&line.render(prefix)),
        LogSink::StdoutJson => stdout_line(&line.to_json().to_string()),
    }
}

/// Plain lines on stderr: for CI logs and pipes.
pub struct PlainReporter {
    /// Status lines shown (not with -q).
    pub show_status: bool,
    pub logs: LogSink,
    /// When a line was last printed, and the latest time seen (job age).
    last_line_at: Option<Duration>,
    now: Duration,
    /// Where status lines go (stderr; a buffer in tests).
    out: Box<dyn FnMut(&str)>,
}

impl PlainReporter {
    pub fn new(show_status: bool, logs: LogSink) -> PlainReporter {
        Self::with_output(show_status, logs, Box::new(stderr_line))
    }

    pub fn with_output(show_status: bool, logs: LogSink, out: Box<dyn FnMut(&str)>) -> Self {
        PlainReporter {
            show_status,
            logs,
            last_line_at: None,
            now: Duration::ZERO,
            out,
        }
    }
}

impl Reporter for PlainReporter {
    fn status_line(&mut self, line: &str, elapsed: Duration) {
        if self.show_status {
            (self.out)(line);
        }
        self.now = self.now.max(elapsed);
        self.last_line_at = Some(self.now);
    }
    fn live(&mut self, text: &str, elapsed: Duration) {
        self.now = self.now.max(elapsed);
        match self.last_line_at {
            Some(at) if self.now.saturating_sub(at) >= HEARTBEAT => self.status_line(
                &format!(
                    "{:>9}  still {text}",
                    durations::format_secs(elapsed.as_secs())
                ),
                elapsed,
            ),
            Some(_) => {}
            None => self.last_line_at = Some(self.now),
        }
    }
    fn log(&mut self, line: &LogLine, prefix: bool) {
        emit_log(self.logs, line, prefix);
        if self.logs == LogSink::Stderr {
            // A log line on stderr shows the wait is alive as well as a status line does.
            self.last_line_at = Some(self.now);
        }
    }
    fn warn(&mut self, text: &str) {
        // Hidden by -q, like every warning; the error that may follow is not.
        if self.show_status {
            stderr_line(&format!("warning: {text}"));
        }
    }
}

/// A live spinner line on a terminal, with the lines printed above it.
pub struct SpinnerReporter {
    bar: Option<indicatif::ProgressBar>,
    pub logs: LogSink,
}

impl SpinnerReporter {
    pub fn new(logs: LogSink) -> SpinnerReporter {
        SpinnerReporter { bar: None, logs }
    }

    fn bar(&mut self, elapsed: Duration) -> &indicatif::ProgressBar {
        self.bar.get_or_insert_with(|| {
            let style =
                indicatif::ProgressStyle::with_template("{spinner} [{elapsed_precise}] {msg}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner());
            let bar = indicatif::ProgressBar::new_spinner()
                .with_style(style)
                .with_elapsed(elapsed);
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        })
    }
}

impl Reporter for SpinnerReporter {
    fn status_line(&mut self, line: &str, elapsed: Duration) {
        let text = redact(line);
        self.bar(elapsed).println(text);
    }
    fn live(&mut self, text: &str, elapsed: Duration) {
        let text = redact(text);
        self.bar(elapsed).set_message(text);
    }
    fn log(&mut self, line: &LogLine, prefix: bool) {
        let sink = self.logs;
        match &self.bar {
            Some(b) => b.suspend(|| emit_log(sink, line, prefix)),
            None => emit_log(sink, line, prefix),
        }
    }
    fn warn(&mut self, text: &str) {
        let t = format!("warning: {text}");
        match &self.bar {
            Some(b) => b.suspend(|| stderr_line(&t)),
            None => stderr_line(&t),
        }
    }
    fn finish(&mut self) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
    }
}

/// Records everything, for tests.
#[cfg(test)]
#[derive(Debug, Default)]
pub struct Recorder {
    pub status: Vec<String>,
    pub live: Vec<String>,
    pub logs: Vec<String>,
    pub warnings: Vec<String>,
}

#[cfg(test)]
impl Reporter for Recorder {
    fn status_line(&mut self, line: &str, _elapsed: Duration) {
        self.status.push(line.to_string());
    }
    fn live(&mut self, text: &str, _elapsed: Duration) {
        self.live.push(text.to_string());
    }
    fn log(&mut self, line: &LogLine, prefix: bool) {
        self.logs.push(line.render(prefix));
    }
    fn warn(&mut self, text: &str) {
        self.warnings.push(text.to_string());
    }
}

// ---------------------------------------------------------------------------------------------
// Status transitions.

/// The primary status a job has while in a (past) secondary status.
fn primary_during(secondary: &str) -> &'static str {
    match secondary {
        "Stopping" => "Stopping",
        "Completed" => "Completed",
        "Failed" => "Failed",
        "Stopped" | "MaxRuntimeExceeded" | "MaxWaitTimeExceeded" => "Stopped",
        _ => "InProgress",
    }
}

/// `InProgress / Training: message`, without repeating a secondary equal to the primary.
pub fn status_text(primary: &str, secondary: &str, message: Option<&str>) -> String {
    let mut s = if secondary.is_empty() || secondary == primary {
        primary.to_string()
    } else {
        format!("{primary} / {secondary}")
    };
    if let Some(m) = message.filter(|m| !m.is_empty()) {
        s.push_str(": ");
        s.push_str(m);
    }
    s
}

/// Remembers what was shown, and turns each new description into the lines to print.
#[derive(Debug, Default)]
pub struct Tracker {
    seen: usize,
    last_message: Option<String>,
    last_pair: Option<(String, String)>,
    /// The job's age when the wait began (from its CreationTime), added to the clock.
    offset: Option<Duration>,
}

impl Tracker {
    /// The job's age at `clock_elapsed`.
    pub fn age(&self, clock_elapsed: Duration) -> Duration {
        self.offset.unwrap_or_default() + clock_elapsed
    }

    /// The lines to print for this description (empty when nothing changed).
    pub fn observe(&mut self, d: &Describe, clock_elapsed: Duration) -> Vec<(Duration, String)> {
        if self.offset.is_none() {
            let age = d
                .creation_time()
                .and_then(|c| SystemTime::try_from(*c).ok())
                .and_then(|c| SystemTime::now().duration_since(c).ok())
                .unwrap_or_default();
            self.offset = Some(age.saturating_sub(clock_elapsed));
        }
        let now = self.age(clock_elapsed);
        let primary = d
            .training_job_status()
            .map(|s| s.as_str().to_string())
            .unwrap_or_default();
        let secondary = d
            .secondary_status()
            .map(|s| s.as_str().to_string())
            .unwrap_or_default();
        let transitions = d.secondary_status_transitions();
        let created = d.creation_time().map(|c| c.as_secs_f64());
        let at = |t: &aws_sdk_sagemaker::types::SecondaryStatusTransition| -> Duration {
            match (created, t.start_time()) {
                (Some(c), Some(s)) if s.as_secs_f64() >= c => {
                    Duration::from_secs_f64(s.as_secs_f64() - c)
                }
                _ => now,
            }
        };
        let mut lines = Vec::new();
        let n = transitions.len();
        if n > 0 {
            // The current transition's message changed (e.g. "Launching requested ML
            // instances" -> "Preparing the instances for training").
            if self.seen == n {
                let t = &transitions[n - 1];
                let msg = t.status_message().map(str::to_string);
                if msg != self.last_message {
                    lines.push((
                        now,
                        status_text(
                            &primary,
                            t.status().map(|s| s.as_str()).unwrap_or(""),
                            msg.as_deref(),
                        ),
                    ));
                    self.last_message = msg;
                }
            }
            for t in transitions.iter().skip(self.seen.min(n)) {
                let st = t.status().map(|s| s.as_str()).unwrap_or("");
                let p = if st == secondary {
                    primary.as_str()
                } else {
                    primary_during(st)
                };
                lines.push((at(t), status_text(p, st, t.status_message())));
                self.last_message = t.status_message().map(str::to_string);
            }
            self.seen = n;
        }
        // A status change the transitions do not show (no transitions, or the latest one is
        // not the current secondary status) gets a line of its own.
        let shown_by_transition = !lines.is_empty()
            && transitions
                .last()
                .and_then(|t| t.status())
                .map(|s| s.as_str())
                == Some(secondary.as_str());
        let pair = (primary.clone(), secondary.clone());
        if self.last_pair.as_ref() != Some(&pair) {
            if !shown_by_transition {
                lines.push((now, status_text(&primary, &secondary, None)));
            }
            self.last_pair = Some(pair);
        }
        lines
    }
}

// ---------------------------------------------------------------------------------------------
// Waiting.

/// How to wait.
#[derive(Debug, Clone)]
pub struct WaitOptions {
    pub policy: PollPolicy,
    pub timeout: Option<Duration>,
    pub logs: bool,
    pub stop_on_interrupt: bool,
    /// Logs only from this time (ms since the epoch), for `logs --since`.
    pub log_start: Option<i64>,
}

/// The clients a wait uses.
pub struct Clients<'a> {
    pub sagemaker: &'a aws_sdk_sagemaker::Client,
    pub logs: Option<&'a aws_sdk_cloudwatchlogs::Client>,
}

fn line_at(elapsed: Duration, text: &str) -> String {
    format!("{:>9}  {text}", durations::format_secs(elapsed.as_secs()))
}

/// Follows the logs inside a wait; turns itself off on an error that will not go away.
struct LogFollower<'a> {
    client: &'a aws_sdk_cloudwatchlogs::Client,
    tail: LogTail,
    ticks_since_discovery: u32,
    failing: bool,
}

impl LogFollower<'_> {
    /// Read what is new. Returns the number of lines, or None when logs are now off.
    async fn poll(&mut self, rep: &mut dyn Reporter, force_discovery: bool) -> Option<usize> {
        let need_discovery = force_discovery
            || (self.tail.stream_count() as i32) < self.tail.instance_count
            || self.ticks_since_discovery >= 6;
        let result = async {
            if need_discovery {
                self.ticks_since_discovery = 0;
                self.tail.discover(self.client).await?;
            } else {
                self.ticks_since_discovery += 1;
            }
            let prefix = self.tail.multi_host();
            self.tail
                .drain(self.client, &mut |l| rep.log(&l, prefix))
                .await
        }
        .await;
        match result {
            Ok(n) => {
                self.failing = false;
                Some(n)
            }
            Err(e) if e.transient => {
                if !self.failing {
                    rep.warn(&format!(
                        "reading the job's logs failed for now ({}); trying again at the next poll",
                        e.error.message
                    ));
                }
                self.failing = true;
                Some(0)
            }
            Err(e) => {
                rep.warn(&format!(
                    "cannot read the job's logs ({}); waiting without them{}",
                    e.error.message,
                    e.error
                        .hint
                        .as_ref()
                        .map(|h| format!(" ({h})"))
                        .unwrap_or_default()
                ));
                None
            }
        }
    }
}

/// Did the job end more than two minutes ago (so its logs are all in)?
fn ended_long_ago(d: &Describe) -> bool {
    d.training_end_time()
        .or(d.last_modified_time())
        .and_then(|t| SystemTime::try_from(*t).ok())
        .and_then(|t| SystemTime::now().duration_since(t).ok())
        .is_some_and(|age| age > Duration::from_secs(120))
}

/// A training job as [`Poller`] waits for it: each look is a DescribeTrainingJob, its status
/// transitions and (with `--logs`) its new log lines; it is done at its verdict.
struct JobWatch<'a, C: Clock> {
    clients: &'a Clients<'a>,
    job: &'a str,
    opts: &'a WaitOptions,
    clock: &'a C,
    rep: &'a mut dyn Reporter,
    last: &'a mut Option<Describe>,
    tracker: Tracker,
    logs: Option<LogFollower<'a>>,
    subject: Subject,
}

impl<C: Clock> Watch for JobWatch<'_, C> {
    type Output = Verdict;

    fn subject(&self) -> &Subject {
        &self.subject
    }

    async fn step(&mut self) -> std::result::Result<Step<Verdict>, CallError> {
        let d = describe(self.clients.sagemaker, self.job).await?;
        let mut changed = false;
        let now = self.clock.elapsed();
        for (at, text) in self.tracker.observe(&d, now) {
            self.rep
                .status_line(&line_at(at, &text), self.tracker.age(now));
            changed = true;
        }
        let primary = d.training_job_status().map(|s| s.as_str()).unwrap_or("");
        let secondary = d.secondary_status().map(|s| s.as_str()).unwrap_or("");
        self.rep.live(
            &status_text(primary, secondary, report::last_message(&d).as_deref()),
            self.tracker.age(now),
        );
        let verdict = report::verdict(&d);
        if let Some(f) = self.logs.as_mut() {
            if let Some(c) = d.resource_config().and_then(|r| r.instance_count()) {
                f.tail.instance_count = c;
            }
            match f.poll(&mut *self.rep, verdict.is_some()).await {
                Some(n) => changed |= n > 0,
                None => self.logs = None,
            }
        }
        let ended_recently = !ended_long_ago(&d);
        *self.last = Some(d);
        let Some(v) = verdict else {
            return Ok(if changed {
                Step::Changed
            } else {
                Step::Unchanged
            });
        };
        // The last lines reach CloudWatch a little after the job ends: read again (unless the
        // job ended long ago) until nothing more comes.
        if let (Some(f), true) = (self.logs.as_mut(), ended_recently) {
            for _ in 0..2 {
                self.clock.sleep(self.opts.policy.min).await;
                match f.poll(&mut *self.rep, true).await {
                    Some(n) if n > 0 => continue,
                    _ => break,
                }
            }
        }
        Ok(Step::Done(v))
    }

    fn state(&self) -> Option<String> {
        self.last.as_ref().map(|d| {
            status_text(
                d.training_job_status().map(|s| s.as_str()).unwrap_or("?"),
                d.secondary_status().map(|s| s.as_str()).unwrap_or(""),
                None,
            )
        })
    }

    fn warn(&mut self, text: &str) {
        self.rep.warn(text);
    }

    fn note(&mut self, text: &str) {
        let age = self.tracker.age(self.clock.elapsed());
        self.rep.status_line(&line_at(age, text), age);
    }

    fn finish(&mut self) {
        self.rep.finish();
    }

    async fn stop(&mut self) -> Result<Option<StopOutcome>> {
        match self.opts.stop_on_interrupt {
            true => stop_job(self.clients.sagemaker, self.job).await.map(Some),
            false => Ok(None),
        }
    }
}

/// Poll the job until its verdict, `opts.timeout`, or `interrupt` (Ctrl-C or SIGTERM, from
/// [`crate::signals::Claim::recv`]); see [`Poller::run`]. On an interrupt the job keeps running
/// and the error says how to re-attach or stop it; with `stop_on_interrupt` it is stopped
/// first. `last` holds the latest description (for the caller's report, however the wait
/// ends).
pub async fn watch<C: Clock>(
    clients: &Clients<'_>,
    job: &str,
    opts: &WaitOptions,
    clock: &C,
    rep: &mut dyn Reporter,
    interrupt: impl Future<Output = Signal>,
    last: &mut Option<Describe>,
) -> Result<Verdict> {
    let again = match opts.logs {
        true => format!("sagetrain wait {job} --logs"),
        false => format!("sagetrain wait {job}"),
    };
    let mut w = JobWatch {
        clients,
        job,
        opts,
        clock,
        rep,
        last,
        tracker: Tracker::default(),
        logs: match (opts.logs, clients.logs) {
            (true, Some(client)) => Some(LogFollower {
                client,
                tail: LogTail::new(job, opts.log_start),
                ticks_since_discovery: 0,
                failing: false,
            }),
            _ => None,
        },
        subject: Subject::sagemaker("training job", job, again, format!("sagetrain stop {job}")),
    };
    Poller::new(clock, opts.policy)
        .timeout(opts.timeout)
        .run(&mut w, interrupt)
        .await
}

// ---------------------------------------------------------------------------------------------
// Stopping.

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopOutcome {
    /// StopTrainingJob was accepted: the job is stopping.
    Requested,
    /// The job had already ended: its status.
    AlreadyEnded { status: String },
    /// The job was already stopping: its status.
    AlreadyStopping { status: String },
}

/// What a described job says about stopping it: nothing to do when it ended or is stopping.
fn stop_settled(d: &Describe) -> Option<StopOutcome> {
    use aws_sdk_sagemaker::types::TrainingJobStatus as S;
    let status = || {
        status_text(
            d.training_job_status().map(|s| s.as_str()).unwrap_or("?"),
            d.secondary_status().map(|s| s.as_str()).unwrap_or(""),
            None,
        )
    };
    match d.training_job_status()? {
        S::Completed | S::Failed | S::Stopped => {
            Some(StopOutcome::AlreadyEnded { status: status() })
        }
        S::Stopping => Some(StopOutcome::AlreadyStopping { status: status() }),
        _ => None,
    }
}

/// Stop a job: DescribeTrainingJob first, and StopTrainingJob only for a job that is running.
/// A job that ends between the two calls (SageMaker then answers ValidationException) is
/// reported like one that had ended before.
pub async fn stop_job(sm: &aws_sdk_sagemaker::Client, job: &str) -> Result<StopOutcome> {
    let d = describe(sm, job).await.map_err(|e| e.error)?;
    if let Some(settled) = stop_settled(&d) {
        return Ok(settled);
    }
    match sm.stop_training_job().training_job_name(job).send().await {
        Ok(_) => Ok(StopOutcome::Requested),
        Err(e) => {
            if crate::aws::error_code(&e).as_deref() == Some("ValidationException") {
                if let Some(settled) = describe(sm, job).await.ok().as_ref().and_then(stop_settled)
                {
                    return Ok(settled);
                }
            }
            Err(aws_error("sagemaker:StopTrainingJob", &e))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;
    use crate::error::Kind;
    use crate::testing::throttling;
    use aws_sdk_cloudwatchlogs::operation::describe_log_streams::DescribeLogStreamsOutput;
    use aws_sdk_cloudwatchlogs::operation::get_log_events::GetLogEventsOutput;
    use aws_sdk_cloudwatchlogs::types::{LogStream, OutputLogEvent};
    use aws_sdk_sagemaker::operation::stop_training_job::{
        StopTrainingJobError, StopTrainingJobOutput,
    };
    use aws_sdk_sagemaker::types as sm;
    use aws_sdk_sagemaker::Client;
    use aws_smithy_mocks::{mock, mock_client, RuleMode};
    use aws_smithy_types::error::ErrorMetadata;
    use aws_smithy_types::retry::RetryConfig;

    const JOB: &str = "unet-1";

    fn state(
        status: sm::TrainingJobStatus,
        secondary: sm::SecondaryStatus,
        transitions: &[(&str, &str)],
    ) -> Describe {
        let mut b = Describe::builder()
            .training_job_name(JOB)
            .training_job_status(status)
            .secondary_status(secondary)
            .resource_config(crate::testing::g5().build())
            .stopping_condition(
                sm::StoppingCondition::builder()
                    .max_runtime_in_seconds(3600)
                    .build(),
            );
        for (s, m) in transitions {
            b = b.secondary_status_transitions(
                sm::SecondaryStatusTransition::builder()
                    .status(sm::SecondaryStatus::from(*s))
                    .status_message(*m)
                    .build(),
            );
        }
        b.build()
    }

    fn opts(timeout: Option<Duration>) -> WaitOptions {
        WaitOptions {
            policy: PollPolicy::default(),
            timeout,
            logs: false,
            stop_on_interrupt: false,
            log_start: None,
        }
    }

    /// What a watch of JOB through the SageMaker client alone (no logs, no Ctrl-C) gave.
    struct Watched {
        result: Result<Verdict>,
        rec: Recorder,
        last: Option<Describe>,
    }

    async fn watch_alone(client: &Client, timeout: Option<Duration>, clock: &FakeClock) -> Watched {
        watch_until(client, &opts(timeout), clock, never()).await
    }

    /// Watch the job (no logs) until its verdict or `interrupt`.
    async fn watch_until(
        client: &Client,
        o: &WaitOptions,
        clock: &FakeClock,
        interrupt: impl Future<Output = Signal>,
    ) -> Watched {
        let clients = Clients {
            sagemaker: client,
            logs: None,
        };
        let mut rec = Recorder::default();
        let mut last = None;
        let result = watch(&clients, JOB, o, clock, &mut rec, interrupt, &mut last).await;
        Watched { result, rec, last }
    }

    fn never() -> impl Future<Output = Signal> {
        std::future::pending()
    }

    /// A describe rule answering these states in order, the last one forever.
    fn lifecycle(states: Vec<Describe>) -> aws_smithy_mocks::Rule {
        crate::testing::in_order(
            mock!(Client::describe_training_job)
                .match_requests(|r| r.training_job_name() == Some(JOB)),
            states,
        )
    }

    const STARTING: (&str, &str) = ("Starting", "Preparing the instances for training");
    const DOWNLOADING: (&str, &str) = ("Downloading", "Downloading input data");
    const TRAINING: (&str, &str) = (
        "Training",
        "Training image download completed. Training in progress.",
    );
    const UPLOADING: (&str, &str) = ("Uploading", "Uploading generated training model");

    #[tokio::test]
    async fn a_job_goes_through_its_secondary_statuses_to_completed() {
        use sm::SecondaryStatus as S;
        use sm::TrainingJobStatus as P;
        let launching = ("Starting", "Launching requested ML instances");
        let rule = lifecycle(vec![
            state(P::InProgress, S::Starting, &[launching]),
            state(P::InProgress, S::Starting, &[STARTING]),
            state(P::InProgress, S::Starting, &[STARTING]),
            state(P::InProgress, S::Downloading, &[STARTING, DOWNLOADING]),
            state(
                P::InProgress,
                S::Training,
                &[STARTING, DOWNLOADING, TRAINING],
            ),
            state(
                P::InProgress,
                S::Training,
                &[STARTING, DOWNLOADING, TRAINING],
            ),
            state(
                P::InProgress,
                S::Training,
                &[STARTING, DOWNLOADING, TRAINING],
            ),
            // Uploading and Completed between two polls: both are still shown.
            state(
                P::Completed,
                S::Completed,
                &[
                    STARTING,
                    DOWNLOADING,
                    TRAINING,
                    UPLOADING,
                    ("Completed", "Training job completed"),
                ],
            ),
        ]);
        let client = mock_client!(aws_sdk_sagemaker, RuleMode::MatchAny, [&rule]);
        let clock = FakeClock::default();
        let Watched { result, rec, last } = watch_alone(&client, None, &clock).await;
        let v = result.unwrap();
        assert_eq!(v, Verdict::Completed);
        assert!(report::verdict_error(JOB, &v).is_none(), "exit 0");
        let lines: Vec<&str> = rec.status.iter().map(|l| l.trim_start()).collect();
        assert_eq!(
            lines,
            [
                "0s  InProgress / Starting: Launching requested ML instances",
                "5s  InProgress / Starting: Preparing the instances for training",
                "17s  InProgress / Downloading: Downloading input data",
                "22s  InProgress / Training: Training image download completed. Training in progress.",
                "46s  InProgress / Uploading: Uploading generated training model",
                "46s  Completed: Training job completed",
            ]
        );
        assert_eq!(rule.num_calls(), 8);
        // Polling adapts: 5 s after a change, then half as long again each time nothing
        // changes (7.5 s), back to 5 s at the next change.
        let secs: Vec<f64> = clock.sleeps().iter().map(|d| d.as_secs_f64()).collect();
        assert_eq!(secs, [5.0, 5.0, 7.5, 5.0, 5.0, 7.5, 11.25]);
        assert_eq!(last.unwrap().training_job_status(), Some(&P::Completed));
    }

    #[test]
    fn a_status_the_transitions_do_not_show_gets_its_own_line() {
        // What moto answers: Completed, with one transition, Starting.
        let d = state(
            sm::TrainingJobStatus::Completed,
            sm::SecondaryStatus::Completed,
            &[STARTING],
        );
        let mut t = Tracker::default();
        let lines: Vec<String> = t
            .observe(&d, Duration::ZERO)
            .into_iter()
            .map(|(_, l)| l)
            .collect();
        assert_eq!(
            lines,
            [
                "InProgress / Starting: Preparing the instances for training",
                "Completed"
            ]
        );
        assert!(t.observe(&d, Duration::from_secs(5)).is_empty());
        assert_eq!(
            report::last_message(&d),
            None,
            "that message is not the current one"
        );
    }

    #[test]
    fn plain_mode_prints_a_heartbeat_when_nothing_changes_for_ten_minutes() {
        let seen = std::rc::Rc::new(std::cell::RefCell::new(Vec::<String>::new()));
        let s2 = seen.clone();
        let mut r = PlainReporter::with_output(
            true,
            LogSink::Stderr,
            Box::new(move |l| s2.borrow_mut().push(l.to_string())),
        );
        let min = |m: u64| Duration::from_secs(60 * m);
        r.status_line("      0s  InProgress / Training", min(0));
        for m in 1..=25 {
            r.live("InProgress / Training", min(m));
        }
        let lines = seen.borrow().clone();
        assert_eq!(
            lines,
            [
                "      0s  InProgress / Training",
                "      10m  still InProgress / Training",
                "      20m  still InProgress / Training"
            ]
        );
    }

    /// A job that trains, then ends as `end`: the error its verdict gives, and what was shown.
    async fn ends_after_training(end: Describe) -> (Error, Recorder) {
        let training = state(
            sm::TrainingJobStatus::InProgress,
            sm::SecondaryStatus::Training,
            &[TRAINING],
        );
        let rule = lifecycle(vec![training, end]);
        let client = mock_client!(aws_sdk_sagemaker, RuleMode::MatchAny, [&rule]);
        let Watched { result, rec, .. } = watch_alone(&client, None, &FakeClock::default()).await;
        let e = report::verdict_error(JOB, &result.unwrap()).unwrap();
        (e, rec)
    }

    #[tokio::test]
    async fn a_failed_job_gives_its_reason_and_exit_5() {
        let failed = Describe::builder()
            .training_job_name(JOB)
            .training_job_status(sm::TrainingJobStatus::Failed)
            .secondary_status(sm::SecondaryStatus::Failed)
            .failure_reason("AlgorithmError: ExecuteUserScriptError: CUDA out of memory")
            .build();
        let (e, rec) = ends_after_training(failed).await;
        assert_eq!(e.exit_code(), 5);
        assert!(e.message.contains("CUDA out of memory"), "{}", e.message);
        assert_eq!(rec.status.last().unwrap().trim_start(), "5s  Failed");
    }

    #[tokio::test]
    async fn a_job_stopped_by_max_runtime_exits_6_and_says_why() {
        let stopped = state(
            sm::TrainingJobStatus::Stopped,
            sm::SecondaryStatus::MaxRuntimeExceeded,
            &[
                TRAINING,
                (
                    "MaxRuntimeExceeded",
                    "Training job runtime exceeded MaxRuntimeInSeconds provided",
                ),
            ],
        );
        let (e, rec) = ends_after_training(stopped).await;
        assert_eq!(e.exit_code(), 6);
        assert!(e.message.contains("maximum run time"), "{}", e.message);
        assert!(
            e.message
                .contains("Training job runtime exceeded MaxRuntimeInSeconds provided"),
            "{}",
            e.message
        );
        assert!(rec
            .status
            .last()
            .unwrap()
            .ends_with("Stopped / MaxRuntimeExceeded: Training job runtime exceeded MaxRuntimeInSeconds provided"));
    }

    #[tokio::test]
    async fn throttling_in_the_middle_of_polling_is_survived_with_a_longer_interval() {
        let training = state(
            sm::TrainingJobStatus::InProgress,
            sm::SecondaryStatus::Training,
            &[TRAINING],
        );
        let done = state(
            sm::TrainingJobStatus::Completed,
            sm::SecondaryStatus::Completed,
            &[TRAINING, ("Completed", "Training job completed")],
        );
        let t2 = training.clone();
        let rule = mock!(Client::describe_training_job)
            .sequence()
            .output(move || training.clone())
            .error(throttling)
            .times(3)
            .output(move || t2.clone())
            .output(move || done.clone())
            .build();
        // The SDK's own retries are off here, so that the loop sees each throttling answer.
        let client = mock_client!(aws_sdk_sagemaker, RuleMode::Sequential, [&rule], |b| b
            .retry_config(RetryConfig::disabled()));
        let clock = FakeClock::default();
        let Watched { result, rec, .. } = watch_alone(&client, None, &clock).await;
        let v = result.unwrap();
        assert_eq!(v, Verdict::Completed);
        assert_eq!(rule.num_calls(), 6);
        assert_eq!(rec.warnings.len(), 3, "{:?}", rec.warnings);
        assert!(
            rec.warnings[0].contains("ThrottlingException"),
            "{:?}",
            rec.warnings
        );
        assert!(
            rec.warnings[0].contains("(throttled)"),
            "{:?}",
            rec.warnings
        );
        // 5 s after the first answer, doubled at each throttling answer, and slow after it.
        let secs: Vec<u64> = clock.sleeps().iter().map(|d| d.as_secs()).collect();
        assert_eq!(secs, [5, 10, 20, 40, 60]);
        assert!(rec.status.iter().any(|l| l.contains("answers again")));
    }

    #[tokio::test]
    async fn endless_throttling_is_not_given_up_silently() {
        let (rule, client) = crate::testing::throttled_forever();
        let Watched { result, rec, .. } = watch_alone(&client, None, &FakeClock::default()).await;
        let e = result.unwrap_err();
        assert_eq!(e.kind, Kind::Aws);
        assert!(e.message.contains("10 times in a row"), "{}", e.message);
        assert!(e.hint.unwrap().contains("sagetrain wait unet-1"));
        assert_eq!(
            rec.warnings.len(),
            poll::MAX_TRANSIENT_FAILURES as usize - 1
        );
        assert_eq!(rule.num_calls(), poll::MAX_TRANSIENT_FAILURES as usize);
    }

    #[tokio::test]
    async fn timeout_ends_the_wait_with_exit_7_and_the_job_keeps_running() {
        let rule = lifecycle(vec![state(
            sm::TrainingJobStatus::InProgress,
            sm::SecondaryStatus::Training,
            &[TRAINING],
        )]);
        let client = mock_client!(aws_sdk_sagemaker, RuleMode::MatchAny, [&rule]);
        let clock = FakeClock::default();
        let Watched { result, last, .. } =
            watch_alone(&client, Some(Duration::from_secs(30)), &clock).await;
        let e = result.unwrap_err();
        assert_eq!(e.exit_code(), 7);
        assert!(e.message.contains("after 30s"), "{}", e.message);
        assert!(e.message.contains("InProgress / Training"), "{}", e.message);
        assert!(e.hint.unwrap().contains("sagetrain stop unet-1"));
        // The last sleep is cut to end at the deadline, and the job is checked once more then.
        let total: Duration = clock.sleeps().iter().sum();
        assert_eq!(total, Duration::from_secs(30));
        assert!(last.is_some());
    }

    #[tokio::test]
    async fn ctrl_c_detaches_and_says_how_to_reattach_or_stop() {
        let rule = lifecycle(vec![state(
            sm::TrainingJobStatus::InProgress,
            sm::SecondaryStatus::Training,
            &[TRAINING],
        )]);
        let stop = mock!(Client::stop_training_job)
            .then_output(|| StopTrainingJobOutput::builder().build());
        let client = mock_client!(aws_sdk_sagemaker, RuleMode::MatchAny, [&rule, &stop]);
        // "Ctrl-C" after a few polls.
        let clock = FakeClock::default();
        let interrupt = async {
            while clock.sleeps().len() < 3 {
                tokio::task::yield_now().await;
            }
            Signal::Interrupt
        };
        let e = watch_until(&client, &opts(None), &clock, interrupt)
            .await
            .result
            .unwrap_err();
        assert_eq!(e.exit_code(), 130);
        assert!(
            e.message.contains("keeps running (InProgress / Training)"),
            "{}",
            e.message
        );
        let hint = e.hint.unwrap();
        crate::testing::assert_contains_all(
            &hint,
            &["sagetrain wait unet-1", "sagetrain stop unet-1"],
        );
        assert_eq!(stop.num_calls(), 0, "detaching does not stop the job");

        // With --stop-on-interrupt the job is stopped first.
        let mut o = opts(None);
        o.stop_on_interrupt = true;
        let sigterm = async { Signal::Terminate };
        let e = watch_until(&client, &o, &clock, sigterm)
            .await
            .result
            .unwrap_err();
        assert_eq!(e.exit_code(), 143, "SIGTERM");
        assert!(
            e.message
                .contains("interrupted (SIGTERM): asked SageMaker to stop"),
            "{}",
            e.message
        );
        assert_eq!(stop.num_calls(), 1);
    }

    #[tokio::test]
    async fn sigterm_on_a_job_already_stopping_is_named_sigterm() {
        // It was reported as "Ctrl-C" whatever the signal.
        let rule = lifecycle(vec![state(
            sm::TrainingJobStatus::Stopping,
            sm::SecondaryStatus::Stopping,
            &[],
        )]);
        let stop = mock!(Client::stop_training_job)
            .then_output(|| StopTrainingJobOutput::builder().build());
        let client = mock_client!(aws_sdk_sagemaker, RuleMode::MatchAny, [&rule, &stop]);
        let mut o = opts(None);
        o.stop_on_interrupt = true;
        let sigterm = async { Signal::Terminate };
        let e = watch_until(&client, &o, &FakeClock::default(), sigterm)
            .await
            .result
            .unwrap_err();
        assert_eq!(e.exit_code(), 143);
        assert_eq!(
            e.message,
            "interrupted (SIGTERM): training job `unet-1` was already stopping (Stopping)"
        );
        assert_eq!(stop.num_calls(), 0, "nothing to stop");
    }

    fn already(status: &'static str) -> impl Fn() -> StopTrainingJobError {
        move || {
            let msg =
                format!("The request was rejected because the training job is in status {status}.");
            StopTrainingJobError::generic(
                ErrorMetadata::builder()
                    .code("ValidationException")
                    .message(msg)
                    .build(),
            )
        }
    }

    /// DescribeTrainingJob answering a job in this state, once.
    fn describing(
        status: sm::TrainingJobStatus,
        secondary: sm::SecondaryStatus,
    ) -> aws_smithy_mocks::Rule {
        mock!(Client::describe_training_job)
            .then_output(move || state(status.clone(), secondary.clone(), &[]))
    }

    #[tokio::test]
    async fn stopping_a_finished_job_reports_its_status_without_stopping_it() {
        let stop = mock!(Client::stop_training_job).then_error(already("Completed"));
        let d = describing(
            sm::TrainingJobStatus::Completed,
            sm::SecondaryStatus::Completed,
        );
        let client = mock_client!(aws_sdk_sagemaker, RuleMode::MatchAny, [&stop, &d]);
        let out = stop_job(&client, JOB).await.unwrap();
        assert_eq!(
            out,
            StopOutcome::AlreadyEnded {
                status: "Completed".into()
            }
        );
        assert_eq!(stop.num_calls(), 0, "StopTrainingJob is not called");

        let running = describing(
            sm::TrainingJobStatus::InProgress,
            sm::SecondaryStatus::Training,
        );
        let ok = mock!(Client::stop_training_job)
            .match_requests(|r| r.training_job_name() == Some(JOB))
            .then_output(|| StopTrainingJobOutput::builder().build());
        let client = mock_client!(aws_sdk_sagemaker, RuleMode::Sequential, [&running, &ok]);
        assert_eq!(
            stop_job(&client, JOB).await.unwrap(),
            StopOutcome::Requested
        );
        assert_eq!(ok.num_calls(), 1);
    }

    #[tokio::test]
    async fn a_job_that_ends_between_describe_and_stop_is_reported_as_ended() {
        let running = describing(
            sm::TrainingJobStatus::InProgress,
            sm::SecondaryStatus::Training,
        );
        let stop = mock!(Client::stop_training_job).then_error(already("Stopped"));
        let stopped = describing(sm::TrainingJobStatus::Stopped, sm::SecondaryStatus::Stopped);
        let client = mock_client!(
            aws_sdk_sagemaker,
            RuleMode::Sequential,
            [&running, &stop, &stopped]
        );
        assert_eq!(
            stop_job(&client, JOB).await.unwrap(),
            StopOutcome::AlreadyEnded {
                status: "Stopped".into()
            }
        );
        assert_eq!(stop.num_calls(), 1);
        assert_eq!(stopped.num_calls(), 1);

        // A ValidationException for a job still running is the error it is.
        let still = describing(
            sm::TrainingJobStatus::InProgress,
            sm::SecondaryStatus::Training,
        );
        let running = describing(
            sm::TrainingJobStatus::InProgress,
            sm::SecondaryStatus::Training,
        );
        let stop = mock!(Client::stop_training_job).then_error(already("Stopped"));
        let client = mock_client!(
            aws_sdk_sagemaker,
            RuleMode::Sequential,
            [&running, &stop, &still]
        );
        let e = stop_job(&client, JOB).await.unwrap_err();
        assert!(
            e.message.contains("sagemaker:StopTrainingJob"),
            "{}",
            e.message
        );
    }

    #[tokio::test]
    async fn logs_are_followed_while_waiting_and_drained_at_the_end() {
        let rule = lifecycle(vec![
            state(
                sm::TrainingJobStatus::InProgress,
                sm::SecondaryStatus::Training,
                &[TRAINING],
            ),
            state(
                sm::TrainingJobStatus::Completed,
                sm::SecondaryStatus::Completed,
                &[TRAINING, ("Completed", "Training job completed")],
            ),
        ]);
        let sm_client = mock_client!(aws_sdk_sagemaker, RuleMode::MatchAny, [&rule]);
        let stream = "unet-1/algo-1-1700000000";
        let list =
            mock!(aws_sdk_cloudwatchlogs::Client::describe_log_streams).then_output(move || {
                DescribeLogStreamsOutput::builder()
                    .log_streams(LogStream::builder().log_stream_name(stream).build())
                    .build()
            });
        let page = |events: &[&str], first: i64, token: &str| {
            let mut b = GetLogEventsOutput::builder().next_forward_token(token);
            for (i, m) in events.iter().enumerate() {
                b = b.events(
                    OutputLogEvent::builder()
                        .timestamp(first + i as i64)
                        .message(*m)
                        .build(),
                );
            }
            b.build()
        };
        let get = mock!(aws_sdk_cloudwatchlogs::Client::get_log_events)
            .sequence()
            .output(move || page(&["epoch 1 loss=0.9"], 1, "f/1"))
            .output(move || page(&[], 0, "f/1"))
            // The final lines arrive after the job has ended.
            .output(move || page(&["epoch 2 loss=0.5", "saved model"], 2, "f/3"))
            .output(move || page(&[], 0, "f/3"))
            .repeatedly()
            .build();
        let logs_client = mock_client!(aws_sdk_cloudwatchlogs, RuleMode::MatchAny, [&list, &get]);
        let clients = Clients {
            sagemaker: &sm_client,
            logs: Some(&logs_client),
        };
        let mut o = opts(None);
        o.logs = true;
        let mut rec = Recorder::default();
        let mut last = None;
        let v = watch(
            &clients,
            JOB,
            &o,
            &FakeClock::default(),
            &mut rec,
            never(),
            &mut last,
        )
        .await
        .unwrap();
        assert_eq!(v, Verdict::Completed);
        assert_eq!(
            rec.logs,
            ["epoch 1 loss=0.9", "epoch 2 loss=0.5", "saved model"]
        );
    }
}
