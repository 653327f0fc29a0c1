//! The one polling loop: every wait of sagetrain (a training job, a tuning job, `metrics
//! --follow`) looks at what it waits for through a [`Watch`], and [`Poller`] does the rest: the
//! adaptive interval ([`PollPolicy`]), transient failures up to a cap, `--timeout`, the
//! interrupt, and every message about them.
//!
//! A [`Watch::step`] is any async check (a Describe call, a child process's exit, a session
//! target's availability) that answers [`Step::Changed`], [`Step::Unchanged`] or
//! [`Step::Done`]. Time is a [`Clock`], so the tests wait with [`FakeClock`], in no time.

use super::StopOutcome;
use crate::aws::errors::CallError;
use crate::config::durations;
use crate::error::{Error, Kind, Result};
use crate::signals::Signal;
use std::future::Future;
use std::time::Duration;

/// Consecutive transient failures (after the SDK's own retries) before a wait gives up.
pub const MAX_TRANSIENT_FAILURES: u32 = 10;

// ---------------------------------------------------------------------------------------------
// Time.

/// Monotonic time and sleeping, injectable for tests.
pub trait Clock {
    /// Time since the clock was made.
    fn elapsed(&self) -> Duration;
    fn sleep(&self, d: Duration) -> impl Future<Output = ()>;
}

/// The real clock.
pub struct TokioClock {
    start: tokio::time::Instant,
}

impl TokioClock {
    pub fn new() -> TokioClock {
        TokioClock {
            start: tokio::time::Instant::now(),
        }
    }
}

impl Default for TokioClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for TokioClock {
    fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }
    fn sleep(&self, d: Duration) -> impl Future<Output = ()> {
        tokio::time::sleep(d)
    }
}

/// A clock whose sleeps take no time and are recorded (tests).
#[cfg(test)]
#[derive(Debug, Default)]
pub struct FakeClock {
    now: std::sync::Mutex<Duration>,
    pub sleeps: std::sync::Mutex<Vec<Duration>>,
}

#[cfg(test)]
impl FakeClock {
    pub fn sleeps(&self) -> Vec<Duration> {
        self.sleeps.lock().unwrap().clone()
    }
}

#[cfg(test)]
impl Clock for FakeClock {
    fn elapsed(&self) -> Duration {
        *self.now.lock().unwrap()
    }
    fn sleep(&self, d: Duration) -> impl Future<Output = ()> {
        *self.now.lock().unwrap() += d;
        self.sleeps.lock().unwrap().push(d);
        // Yield once, so that an interrupt future racing this one gets polled.
        tokio::task::yield_now()
    }
}

// ---------------------------------------------------------------------------------------------
// How often.

/// How often to poll: from `min` after a change, growing by half each time nothing changes,
/// up to `max`; doubled after a transient failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PollPolicy {
    pub min: Duration,
    pub max: Duration,
}

impl Default for PollPolicy {
    /// Adaptive: 5 s after a change, up to a minute while nothing changes.
    fn default() -> Self {
        PollPolicy {
            min: Duration::from_secs(5),
            max: Duration::from_secs(60),
        }
    }
}

impl PollPolicy {
    /// A fixed interval (`--poll-interval`).
    pub fn every(interval: Duration) -> PollPolicy {
        PollPolicy {
            min: interval,
            max: interval,
        }
    }

    pub fn next(&self, current: Duration, changed: bool) -> Duration {
        if changed {
            self.min
        } else {
            (current * 3 / 2).clamp(self.min, self.max)
        }
    }

    pub fn after_throttling(&self, current: Duration) -> Duration {
        (current * 2).clamp(self.min, self.max)
    }
}

// ---------------------------------------------------------------------------------------------
// What is waited for.

/// What one look at the awaited thing found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step<T> {
    /// Something new was seen (a status, log lines): look again soon.
    Changed,
    /// Nothing new: wait longer before the next look.
    Unchanged,
    /// The wait is over, with this result.
    Done(T),
}

/// What a wait is about, as its messages name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    /// "training job `unet-1`", "training jobs `a`, `b`".
    pub what: String,
    /// `what` names several things ("keep running").
    pub plural: bool,
    /// Who runs it, and is asked to stop it on an interrupt ("SageMaker").
    pub runner: &'static str,
    /// The command that waits again ("sagetrain wait unet-1").
    pub again: String,
    /// The command that stops it, when it runs on without sagetrain ("sagetrain stop unet-1").
    pub stop: Option<String>,
}

impl Subject {
    /// One SageMaker resource: `kind` "training job", `name` "unet-1".
    pub fn sagemaker(kind: &str, name: &str, again: String, stop: String) -> Subject {
        Subject {
            what: format!("{kind} `{name}`"),
            plural: false,
            runner: "SageMaker",
            again,
            stop: Some(stop),
        }
    }

    fn keeps_running(&self) -> &'static str {
        if self.plural {
            "keep running"
        } else {
            "keeps running"
        }
    }

    /// "; stop it: sagetrain stop unet-1", or nothing.
    fn stop_hint(&self) -> String {
        let it = if self.plural { "them" } else { "it" };
        self.stop
            .as_ref()
            .map(|s| format!("; stop {it}: {s}"))
            .unwrap_or_default()
    }
}

/// The thing a [`Poller`] waits for.
pub trait Watch {
    type Output;

    /// What the wait is about, for the poller's messages.
    fn subject(&self) -> &Subject;

    /// Look once. A transient error is tried again at the next poll (up to the cap); any other
    /// error ends the wait.
    fn step(&mut self) -> impl Future<Output = std::result::Result<Step<Self::Output>, CallError>>;

    /// The state as last seen ("InProgress / Training"), for the messages of a wait that ends
    /// early; `None` before the first answer.
    fn state(&self) -> Option<String>;

    /// A warning of the poller (a transient failure).
    fn warn(&mut self, text: &str);

    /// A line of the poller that is not a warning (a call answering again).
    fn note(&mut self, text: &str);

    /// The wait is over, however it ended (e.g. clear a live line).
    fn finish(&mut self) {}

    /// After an interrupt: stop what is waited for, when asked to (`--stop-on-interrupt`), and
    /// say how that went. `None`: it is left running.
    fn stop(&mut self) -> impl Future<Output = Result<Option<StopOutcome>>> {
        std::future::ready(Ok(None))
    }
}

// ---------------------------------------------------------------------------------------------
// The loop.

/// Polls a [`Watch`] until it is done, the timeout passes, transient failures come
/// [`MAX_TRANSIENT_FAILURES`] times in a row, or an interrupt arrives.
pub struct Poller<'c, C: Clock> {
    clock: &'c C,
    policy: PollPolicy,
    timeout: Option<Duration>,
    max_failures: u32,
}

impl<'c, C: Clock> Poller<'c, C> {
    pub fn new(clock: &'c C, policy: PollPolicy) -> Self {
        Poller {
            clock,
            policy,
            timeout: None,
            max_failures: MAX_TRANSIENT_FAILURES,
        }
    }

    /// Give up after this long (`--timeout`): exit 7, and what is waited for keeps running.
    pub fn timeout(mut self, timeout: Option<Duration>) -> Self {
        self.timeout = timeout;
        self
    }

    /// Poll `watch` until it is done, raced against `interrupt` (from
    /// [`crate::signals::Claim::recv`]). On an interrupt, what is waited for keeps running
    /// unless [`Watch::stop`] stops it, and the error (exit 130 or 143, the signal's) says how
    /// to wait again or stop it.
    pub async fn run<W: Watch>(
        &self,
        watch: &mut W,
        interrupt: impl Future<Output = Signal>,
    ) -> Result<W::Output> {
        let outcome = {
            let poll = self.poll(&mut *watch);
            tokio::select! {
                biased;
                sig = interrupt => Err(sig),
                r = poll => Ok(r),
            }
        };
        let sig = match outcome {
            Ok(r) => {
                watch.finish();
                return r;
            }
            Err(sig) => sig,
        };
        watch.finish();
        let state = state_of(watch);
        let stopped = watch.stop().await?;
        Err(interrupted(watch.subject(), sig, &state, stopped))
    }

    async fn poll<W: Watch>(&self, watch: &mut W) -> Result<W::Output> {
        let deadline = self.timeout.map(|t| self.clock.elapsed() + t);
        let mut interval = self.policy.min;
        let mut failures = 0u32;
        // The call that failed last, for the line that says it answers again.
        let mut failed_call = String::new();
        loop {
            let changed = match watch.step().await {
                Ok(step) => {
                    if failures > 0 {
                        watch.note(&answers_again(&failed_call));
                    }
                    failures = 0;
                    match step {
                        Step::Done(v) => return Ok(v),
                        Step::Changed => true,
                        Step::Unchanged => false,
                    }
                }
                Err(e) if e.transient => {
                    failures += 1;
                    if failures >= self.max_failures {
                        return Err(gave_up_failing(watch.subject(), e, failures));
                    }
                    interval = self.policy.after_throttling(interval);
                    watch.warn(&retrying(&e, interval));
                    failed_call = e.operation;
                    false
                }
                Err(e) => return Err(e.error),
            };
            if failures == 0 {
                interval = self.policy.next(interval, changed);
            }
            let now = self.clock.elapsed();
            match deadline {
                Some(dl) if now >= dl => {
                    let timeout = self.timeout.unwrap_or_default();
                    return Err(timed_out(watch.subject(), timeout, &state_of(watch)));
                }
                Some(dl) => self.clock.sleep(interval.min(dl - now)).await,
                None => self.clock.sleep(interval).await,
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Every message about waiting.

fn state_of<W: Watch>(watch: &W) -> String {
    watch
        .state()
        .unwrap_or_else(|| "in an unknown state".into())
}

/// A transient failure, tried again after `interval`.
fn retrying(e: &CallError, interval: Duration) -> String {
    format!(
        "{}{}; polling again in {}",
        e.error.message,
        if e.throttled { " (throttled)" } else { "" },
        durations::format(interval)
    )
}

/// The call answers again after failing.
fn answers_again(operation: &str) -> String {
    match operation {
        "" => "answering again".to_string(),
        op => format!("{op} answers again"),
    }
}

/// Transient failures came too often in a row.
fn gave_up_failing(s: &Subject, e: CallError, failures: u32) -> Error {
    let mut err = e.error;
    err.message = format!(
        "{} (failed {failures} times in a row; stopped waiting, {} {})",
        err.message,
        s.what,
        s.keeps_running()
    );
    err.hint = Some(match err.hint.take() {
        Some(h) => format!("wait again later: {}; {h}", s.again),
        None => format!("wait again later: {}", s.again),
    });
    err
}

/// `--timeout` passed.
fn timed_out(s: &Subject, timeout: Duration, state: &str) -> Error {
    let is = if s.plural { "they are" } else { "it is" };
    Error::new(
        Kind::Timeout,
        format!(
            "gave up waiting for {} after {} (--timeout); {is} {state} and {}",
            s.what,
            durations::format(timeout),
            s.keeps_running()
        ),
    )
    .with_hint(format!("wait again: {}{}", s.again, s.stop_hint()))
}

/// An interrupt ended the wait; `stopped` says whether what was waited for was stopped.
fn interrupted(s: &Subject, sig: Signal, state: &str, stopped: Option<StopOutcome>) -> Error {
    let (kind, by, what) = (sig.kind(), sig.name(), &s.what);
    let stopped = match stopped {
        None => {
            return Error::new(
                kind,
                format!(
                    "stopped waiting ({by}); {what} {} ({state})",
                    s.keeps_running()
                ),
            )
            .with_hint(format!("re-attach: {}{}", s.again, s.stop_hint()))
        }
        Some(StopOutcome::Requested) => format!(
            "interrupted ({by}): asked {} to stop {what} (--stop-on-interrupt); it was {state}",
            s.runner
        ),
        Some(StopOutcome::AlreadyEnded { status }) => {
            format!("interrupted ({by}): {what} had already ended ({status}); nothing to stop")
        }
        Some(StopOutcome::AlreadyStopping { status }) => {
            format!("interrupted ({by}): {what} was already stopping ({status})")
        }
    };
    Error::new(kind, stopped).with_hint(format!("see when it has stopped: {}", s.again))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;

    type Answer = std::result::Result<Step<u32>, CallError>;

    /// A watch that answers from a script (the last answer again and again), and records
    /// what the poller told it.
    struct Scripted {
        answers: VecDeque<Answer>,
        subject: Subject,
        state: Option<String>,
        stop_outcome: Option<StopOutcome>,
        steps: usize,
        warnings: Vec<String>,
        notes: Vec<String>,
        finished: usize,
        stops: usize,
        /// `finish` had been called when `stop` was.
        finished_before_stop: bool,
    }

    fn job() -> Subject {
        Subject::sagemaker(
            "training job",
            "j",
            "sagetrain wait j".into(),
            "sagetrain stop j".into(),
        )
    }

    fn scripted(answers: Vec<Answer>) -> Scripted {
        Scripted {
            answers: answers.into(),
            subject: job(),
            state: Some("InProgress / Training".into()),
            stop_outcome: None,
            steps: 0,
            warnings: vec![],
            notes: vec![],
            finished: 0,
            stops: 0,
            finished_before_stop: false,
        }
    }

    impl Watch for Scripted {
        type Output = u32;
        fn subject(&self) -> &Subject {
            &self.subject
        }
        async fn step(&mut self) -> Answer {
            self.steps += 1;
            // Any async check, not only a call: this one yields to the runtime first.
            tokio::task::yield_now().await;
            match self.answers.len() {
                0 => Ok(Step::Unchanged),
                1 => self.answers[0].clone(),
                _ => self.answers.pop_front().unwrap(),
            }
        }
        fn state(&self) -> Option<String> {
            self.state.clone()
        }
        fn warn(&mut self, text: &str) {
            self.warnings.push(text.to_string());
        }
        fn note(&mut self, text: &str) {
            self.notes.push(text.to_string());
        }
        fn finish(&mut self) {
            self.finished += 1;
        }
        async fn stop(&mut self) -> Result<Option<StopOutcome>> {
            self.stops += 1;
            self.finished_before_stop = self.finished > 0;
            Ok(self.stop_outcome.clone())
        }
    }

    fn throttled() -> Answer {
        Err(CallError {
            error: Error::aws(
                "sagemaker:DescribeThing failed (HTTP 400): ThrottlingException: Rate exceeded",
            )
            .with_hint("AWS is throttling requests"),
            transient: true,
            throttled: true,
            operation: "DescribeThing".into(),
        })
    }

    fn unavailable() -> Answer {
        Err(CallError {
            error: Error::aws(
                "sagemaker:DescribeThing failed (HTTP 503): ServiceUnavailable: busy",
            ),
            transient: true,
            throttled: false,
            operation: "DescribeThing".into(),
        })
    }

    /// The error ends with this exit code, message and hint.
    #[track_caller]
    fn says(e: &Error, code: i32, message: &str, hint: &str) {
        assert_eq!(e.exit_code(), code, "{e}");
        assert_eq!(e.message, message);
        assert_eq!(e.hint.as_deref(), Some(hint));
    }

    fn secs(clock: &FakeClock) -> Vec<f64> {
        clock.sleeps().iter().map(|d| d.as_secs_f64()).collect()
    }

    async fn run(w: &mut Scripted, clock: &FakeClock, timeout: Option<Duration>) -> Result<u32> {
        Poller::new(clock, PollPolicy::default())
            .timeout(timeout)
            .run(w, std::future::pending())
            .await
    }

    #[test]
    fn intervals_back_off_to_the_cap_and_reset_on_change() {
        let p = PollPolicy::default();
        let mut i = p.min;
        let mut seen = vec![];
        for _ in 0..10 {
            i = p.next(i, false);
            seen.push(i.as_secs_f64());
        }
        assert_eq!(seen.last(), Some(&60.0));
        assert!(seen.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(p.next(Duration::from_secs(60), true), p.min);
        assert_eq!(
            p.after_throttling(Duration::from_secs(5)),
            Duration::from_secs(10)
        );
        assert_eq!(
            PollPolicy::every(Duration::from_millis(20)),
            PollPolicy {
                min: Duration::from_millis(20),
                max: Duration::from_millis(20)
            }
        );
    }

    #[tokio::test]
    async fn the_interval_grows_while_nothing_changes_and_resets_at_a_change() {
        let mut answers = vec![Ok(Step::Changed)];
        answers.extend((0..8).map(|_| Ok(Step::Unchanged)));
        answers.push(Ok(Step::Changed));
        answers.push(Ok(Step::Unchanged));
        answers.push(Ok(Step::Done(7)));
        let mut w = scripted(answers);
        let clock = FakeClock::default();
        assert_eq!(run(&mut w, &clock, None).await.unwrap(), 7);
        assert_eq!(
            secs(&clock),
            [5.0, 7.5, 11.25, 16.875, 25.3125, 37.96875, 56.953125, 60.0, 60.0, 5.0, 7.5]
        );
        assert_eq!(w.steps, 12, "no look after Done");
        assert_eq!(w.finished, 1);
        assert!(w.warnings.is_empty() && w.notes.is_empty());

        // A fixed interval stays fixed.
        let mut w = scripted(vec![
            Ok(Step::Unchanged),
            Ok(Step::Changed),
            Ok(Step::Done(1)),
        ]);
        let clock = FakeClock::default();
        Poller::new(&clock, PollPolicy::every(Duration::from_secs(30)))
            .run(&mut w, std::future::pending())
            .await
            .unwrap();
        assert_eq!(secs(&clock), [30.0, 30.0]);

        // Done at the first look: no sleep at all.
        let mut w = scripted(vec![Ok(Step::Done(3))]);
        let clock = FakeClock::default();
        assert_eq!(run(&mut w, &clock, None).await.unwrap(), 3);
        assert!(clock.sleeps().is_empty());
    }

    #[tokio::test]
    async fn a_transient_failure_doubles_the_interval_warns_and_the_recovery_is_said() {
        let mut w = scripted(vec![
            Ok(Step::Unchanged),
            throttled(),
            unavailable(),
            Ok(Step::Unchanged),
            Ok(Step::Done(1)),
        ]);
        let clock = FakeClock::default();
        run(&mut w, &clock, None).await.unwrap();
        // 7.5 s after nothing changed, doubled at each failure, and the failure's interval
        // kept growing after the recovery.
        assert_eq!(secs(&clock), [7.5, 15.0, 30.0, 45.0]);
        assert_eq!(
            w.warnings,
            [
                "sagemaker:DescribeThing failed (HTTP 400): ThrottlingException: Rate exceeded (throttled); polling again in 15s",
                "sagemaker:DescribeThing failed (HTTP 503): ServiceUnavailable: busy; polling again in 30s",
            ]
        );
        assert_eq!(w.notes, ["DescribeThing answers again"]);
    }

    #[tokio::test]
    async fn transient_failures_in_a_row_end_the_wait_at_the_cap() {
        let mut w = scripted(vec![Ok(Step::Changed), throttled()]);
        let clock = FakeClock::default();
        let e = run(&mut w, &clock, None).await.unwrap_err();
        assert_eq!(e.kind, Kind::Aws);
        assert!(
            e.message.ends_with(
                "Rate exceeded (failed 10 times in a row; stopped waiting, training job `j` keeps running)"
            ),
            "{}",
            e.message
        );
        assert_eq!(
            e.hint.as_deref(),
            Some("wait again later: sagetrain wait j; AWS is throttling requests")
        );
        assert_eq!(w.steps, 1 + MAX_TRANSIENT_FAILURES as usize);
        assert_eq!(w.warnings.len(), MAX_TRANSIENT_FAILURES as usize - 1);
        assert_eq!(w.finished, 1);
        assert_eq!(
            *secs(&clock).last().unwrap(),
            60.0,
            "the back-off is capped"
        );

        // Failures that are not in a row do not add up.
        let mut answers: Vec<Answer> = (0..9).map(|_| unavailable()).collect();
        answers.push(Ok(Step::Unchanged));
        answers.extend((0..9).map(|_| unavailable()));
        answers.push(Ok(Step::Done(2)));
        let mut w = scripted(answers);
        assert_eq!(run(&mut w, &FakeClock::default(), None).await.unwrap(), 2);
        assert_eq!(w.warnings.len(), 18);
        assert_eq!(w.notes.len(), 2);
    }

    #[tokio::test]
    async fn an_error_that_will_not_go_away_ends_the_wait_at_once() {
        let fatal = CallError::from(
            Error::aws("training job `j` not found in this account and region").with_hint("check"),
        );
        assert!(!fatal.transient);
        let mut w = scripted(vec![Ok(Step::Changed), Err(fatal)]);
        let clock = FakeClock::default();
        let e = run(&mut w, &clock, None).await.unwrap_err();
        assert_eq!(
            e.message,
            "training job `j` not found in this account and region"
        );
        assert_eq!(e.hint.as_deref(), Some("check"), "the error as it was");
        assert_eq!((w.steps, w.finished, clock.sleeps().len()), (2, 1, 1));
        assert!(w.warnings.is_empty());
    }

    #[tokio::test]
    async fn the_deadline_cuts_the_last_sleep_and_ends_with_exit_7() {
        let mut w = scripted(vec![Ok(Step::Unchanged)]);
        let clock = FakeClock::default();
        let e = run(&mut w, &clock, Some(Duration::from_secs(30)))
            .await
            .unwrap_err();
        says(
            &e,
            7,
            "gave up waiting for training job `j` after 30s (--timeout); it is InProgress / Training and keeps running",
            "wait again: sagetrain wait j; stop it: sagetrain stop j",
        );
        // 7.5 + 11.25, then cut to end at the deadline, and one more look then.
        assert_eq!(secs(&clock), [7.5, 11.25, 11.25]);
        assert_eq!(w.steps, 4);
        assert_eq!(w.finished, 1);

        // Several things, never answered yet.
        let mut w = scripted(vec![throttled()]);
        w.state = None;
        w.subject = Subject {
            what: "training jobs `a`, `b`".into(),
            plural: true,
            runner: "SageMaker",
            again: "sagetrain metrics --follow a b".into(),
            stop: None,
        };
        let e = run(&mut w, &FakeClock::default(), Some(Duration::from_secs(20)))
            .await
            .unwrap_err();
        says(
            &e,
            7,
            "gave up waiting for training jobs `a`, `b` after 20s (--timeout); they are in an unknown state and keep running",
            "wait again: sagetrain metrics --follow a b",
        );
    }

    #[tokio::test]
    async fn an_interrupt_detaches_or_stops_and_names_its_signal() {
        // Ctrl-C after three sleeps: detached.
        let mut w = scripted(vec![Ok(Step::Unchanged)]);
        let clock = FakeClock::default();
        let interrupt = async {
            while clock.sleeps().len() < 3 {
                tokio::task::yield_now().await;
            }
            Signal::Interrupt
        };
        let e = Poller::new(&clock, PollPolicy::default())
            .run(&mut w, interrupt)
            .await
            .unwrap_err();
        says(
            &e,
            130,
            "stopped waiting (Ctrl-C); training job `j` keeps running (InProgress / Training)",
            "re-attach: sagetrain wait j; stop it: sagetrain stop j",
        );
        assert_eq!((w.stops, w.finished), (1, 1));
        assert!(w.finished_before_stop, "the live line is cleared first");

        // SIGTERM, through the process's one signal mechanism, with each stop outcome.
        let cases = [
            (
                StopOutcome::Requested,
                "interrupted (SIGTERM): asked SageMaker to stop training job `j` (--stop-on-interrupt); it was InProgress / Training",
            ),
            (
                StopOutcome::AlreadyEnded {
                    status: "Completed".into(),
                },
                "interrupted (SIGTERM): training job `j` had already ended (Completed); nothing to stop",
            ),
            (
                StopOutcome::AlreadyStopping {
                    status: "Stopping".into(),
                },
                "interrupted (SIGTERM): training job `j` was already stopping (Stopping)",
            ),
        ];
        for (outcome, text) in cases {
            let mut w = scripted(vec![Ok(Step::Unchanged)]);
            w.stop_outcome = Some(outcome);
            let mut claim = crate::signals::claim();
            crate::signals::deliver_for_test(Signal::Terminate);
            let e = Poller::new(&FakeClock::default(), PollPolicy::default())
                .run(&mut w, claim.recv())
                .await
                .unwrap_err();
            says(&e, 143, text, "see when it has stopped: sagetrain wait j");
        }
    }
}
