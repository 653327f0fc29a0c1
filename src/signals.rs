//! One signal mechanism for the whole process. SIGINT (Ctrl-C) and SIGTERM (a CI runner
//! cancelling a job, `timeout(1)`, Kubernetes, systemd) are both an interrupt; they are handled
//! once, by [`install`], and any stage may wait for one with [`claim`]:
//!
//! - a stage that knows what an interrupt means for it (a wait detaches or stops the job, an
//!   upload stops and resumes on the next run) holds a [`Claim`] and awaits [`Claim::recv`];
//!   it then ends the command with its own message and [`Signal::kind`];
//! - anywhere else (CreateTrainingJob, a lookup), [`unclaimed`] resolves and `lib::run` ends
//!   the command with a general message, so that no interrupt is ever swallowed;
//! - a second signal ends the command even while a stage handles the first (e.g. while
//!   `--stop-on-interrupt` stops the job).
//!
//! Exit codes: 130 for SIGINT, 143 for SIGTERM (128 + the signal's number, as a shell reports
//! a process killed by it). A handler that cannot be installed is logged and leaves that
//! signal's default action; it is never taken for an interrupt.

use crate::error::Kind;
#[cfg(not(test))]
use std::sync::OnceLock;
use tokio::sync::watch;

/// A signal that interrupts sagetrain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// SIGINT: Ctrl-C in a terminal.
    Interrupt,
    /// SIGTERM.
    Terminate,
}

impl Signal {
    /// How messages name it.
    pub fn name(self) -> &'static str {
        match self {
            Signal::Interrupt => "Ctrl-C",
            Signal::Terminate => "SIGTERM",
        }
    }
    /// The error kind, hence the exit code (130 or 143).
    pub fn kind(self) -> Kind {
        match self {
            Signal::Interrupt => Kind::Interrupted,
            Signal::Terminate => Kind::Terminated,
        }
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Received {
    /// Signals received so far.
    count: u32,
    /// The last one.
    last: Option<Signal>,
    /// Stages holding a [`Claim`].
    claims: u32,
    /// Children that own the terminal's keys (see [`leave_interrupts_to_child`]).
    to_child: u32,
}

#[cfg(not(test))]
fn state() -> &'static watch::Sender<Received> {
    static STATE: OnceLock<watch::Sender<Received>> = OnceLock::new();
    STATE.get_or_init(|| watch::channel(Received::default()).0)
}

// Unit tests run in parallel threads of one process: each thread gets its own state, so that a
// test's signal does not interrupt another test.
#[cfg(test)]
fn state() -> &'static watch::Sender<Received> {
    thread_local! {
        static STATE: &'static watch::Sender<Received> =
            Box::leak(Box::new(watch::channel(Received::default()).0));
    }
    STATE.with(|s| *s)
}

/// Install the handlers of SIGINT and SIGTERM. Call once, inside the runtime, before the
/// command starts.
pub fn install() {
    for sig in [Signal::Interrupt, Signal::Terminate] {
        match listener(sig) {
            Ok(next) => {
                tokio::spawn(async move {
                    let mut next = next;
                    while next.recv().await.is_some() {
                        record(sig);
                    }
                });
            }
            Err(e) => tracing::warn!(
                "cannot handle {}: {e}; it ends sagetrain without its message",
                sig.name()
            ),
        }
    }
}

#[cfg(unix)]
fn listener(sig: Signal) -> std::io::Result<tokio::signal::unix::Signal> {
    use tokio::signal::unix::{signal, SignalKind};
    signal(match sig {
        Signal::Interrupt => SignalKind::interrupt(),
        Signal::Terminate => SignalKind::terminate(),
    })
}

#[cfg(not(unix))]
fn listener(sig: Signal) -> std::io::Result<CtrlC> {
    match sig {
        Signal::Interrupt => Ok(CtrlC),
        Signal::Terminate => Err(std::io::Error::other("no SIGTERM on this platform")),
    }
}

#[cfg(not(unix))]
struct CtrlC;

#[cfg(not(unix))]
impl CtrlC {
    async fn recv(&mut self) -> Option<()> {
        tokio::signal::ctrl_c().await.ok()
    }
}

/// Count a signal, unless it is a Ctrl-C while a child owns the terminal.
fn record(sig: Signal) {
    state().send_if_modified(|r| {
        if sig == Signal::Interrupt && r.to_child > 0 {
            return false;
        }
        r.count += 1;
        r.last = Some(sig);
        true
    });
}

/// While held, Ctrl-C is not an interrupt of sagetrain: it belongs to the interactive child
/// in the same terminal (which gets it from the terminal too), as `ssh` or `aws ssm
/// start-session` leave it to the remote shell. SIGTERM still is one.
pub struct ToChild(());

/// See [`ToChild`].
pub fn leave_interrupts_to_child() -> ToChild {
    state().send_modify(|r| r.to_child += 1);
    ToChild(())
}

impl Drop for ToChild {
    fn drop(&mut self) {
        state().send_modify(|r| r.to_child -= 1);
    }
}

/// A stage that handles interrupts itself: while it holds this, a first signal is left to it.
pub struct Claim {
    rx: watch::Receiver<Received>,
}

/// Claim the interrupts for a stage (see [`Claim`]).
pub fn claim() -> Claim {
    let tx = state();
    tx.send_modify(|r| r.claims += 1);
    Claim { rx: tx.subscribe() }
}

impl Claim {
    /// The signal, once one has been received (at once if one already was).
    pub async fn recv(&mut self) -> Signal {
        let got = self
            .rx
            .wait_for(|r| r.count > 0)
            .await
            .map(|r| r.last.unwrap_or(Signal::Interrupt));
        match got {
            Ok(sig) => sig,
            // The sender is static: it never goes away.
            Err(_) => std::future::pending().await,
        }
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        // A signal that came while this was held, and that the stage did not act on, is now
        // for `unclaimed` to see.
        state().send_modify(|r| r.claims -= 1);
    }
}

/// Resolves when a signal is received that no stage handles: no [`Claim`] is held, or it is
/// the second signal.
pub async fn unclaimed() -> Signal {
    let mut rx = state().subscribe();
    let got = rx
        .wait_for(|r| (r.count > 0 && r.claims == 0) || r.count > 1)
        .await
        .map(|r| r.last.unwrap_or(Signal::Interrupt));
    match got {
        Ok(sig) => sig,
        Err(_) => std::future::pending().await,
    }
}

#[cfg(test)]
pub(crate) fn deliver_for_test(sig: Signal) {
    record(sig);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_claimed_signal_goes_to_its_stage_and_an_unclaimed_one_to_the_top() {
        let mut c = claim();
        let top = tokio::spawn(unclaimed());
        deliver_for_test(Signal::Terminate);
        assert_eq!(c.recv().await, Signal::Terminate);
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!top.is_finished(), "a claimed signal is left to the stage");
        // The stage did not end the command: once it lets go, the top level sees the signal.
        drop(c);
        let got = tokio::time::timeout(Duration::from_secs(5), top).await;
        assert_eq!(got.unwrap().unwrap(), Signal::Terminate);
        assert_eq!(Signal::Terminate.kind().exit_code(), 143);
        assert_eq!(Signal::Interrupt.kind().exit_code(), 130);

        // A second signal reaches the top level even while claimed.
        let _c = claim();
        deliver_for_test(Signal::Interrupt);
        let got = tokio::time::timeout(Duration::from_secs(5), unclaimed()).await;
        assert_eq!(got.unwrap(), Signal::Interrupt);
    }

    #[tokio::test]
    async fn ctrl_c_is_the_childs_while_it_owns_the_terminal_and_sigterm_is_not() {
        let keys = leave_interrupts_to_child();
        let top = tokio::spawn(unclaimed());
        deliver_for_test(Signal::Interrupt);
        deliver_for_test(Signal::Interrupt);
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!top.is_finished(), "Ctrl-C went to the child");
        deliver_for_test(Signal::Terminate);
        let got = tokio::time::timeout(Duration::from_secs(5), top).await;
        assert_eq!(got.unwrap().unwrap(), Signal::Terminate);
        drop(keys);
        assert_eq!(state().borrow().to_child, 0);
    }
}
