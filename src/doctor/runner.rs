//! Runs the checks of a report: each check declares the checks it needs ([`NEEDS`]); the runner
//! starts every check whose prerequisites are usable, concurrently, and reports the dependents
//! of a check that failed (or could not be run) as skipped, `blocked_by` the check that failed.

use super::{id, name_of, Check, Report, Status};
use futures::future::LocalBoxFuture;
use futures::stream::{FuturesUnordered, StreamExt};

/// What each check needs: it runs only when every one of these gave a usable result. A check
/// id of the form `channel.NAME` is looked up as [`CHANNEL`], `secret.NAME` as [`SECRET`].
pub const NEEDS: &[(&str, &[&str])] = &[
    (id::CONFIG, &[]),
    (id::CREDENTIALS, &[]),
    (id::IDENTITY, &[id::CREDENTIALS]),
    (id::ACCESS_KEYS, &[id::IDENTITY]),
    (id::REGION, &[]),
    (id::ROLE, &[id::IDENTITY]),
    (id::ROLE_TRUST, &[id::ROLE]),
    (id::PASS_ROLE, &[id::ROLE]),
    (id::IMAGE, &[id::IDENTITY, id::REGION]),
    (id::OUTPUT, &[id::IDENTITY, id::REGION]),
    (id::QUOTA, &[id::CREDENTIALS, id::REGION]),
    (id::ENGINE, &[]),
    (id::SESSION_PLUGIN, &[]),
    (id::START_SESSION, &[id::IDENTITY]),
    (id::ROLE_SSM, &[id::ROLE]),
    (id::CHANNELS, &[]),
    (CHANNEL, &[id::IDENTITY, id::REGION]),
    (SECRET, &[id::ROLE, id::REGION]),
];

/// The [`NEEDS`] entry of every `channel.NAME` check.
pub const CHANNEL: &str = "channel.*";
/// The [`NEEDS`] entry of every `secret.NAME` check.
pub const SECRET: &str = "secret.*";

/// Why a check is skipped when the check it needs gave nothing usable.
const SEE_CONFIG: &str = "an invalid or unreadable setting (see configuration)";

/// The checks `check_id` needs, from [`NEEDS`].
pub fn needs_of(check_id: &str) -> &'static [&'static str] {
    let key = if check_id.starts_with("channel.") {
        CHANNEL
    } else if check_id.starts_with("secret.") {
        SECRET
    } else {
        check_id
    };
    NEEDS
        .iter()
        .find(|(k, _)| *k == key)
        .map(|(_, n)| *n)
        .unwrap_or(&[])
}

fn reason_needing(dep: &str) -> String {
    match dep {
        id::CONFIG => SEE_CONFIG.into(),
        id::CREDENTIALS => "needs credentials (see credentials)".into(),
        id::IDENTITY => {
            "needs working credentials: sts:GetCallerIdentity failed (see identity)".into()
        }
        id::REGION => "needs the job's region (see region)".into(),
        id::ROLE => "needs the execution role (see execution role)".into(),
        other => format!("needs {0} (see {0})", name_of(other)),
    }
}

/// What a check gave: its line of the report, and whether the checks that need it may run.
pub struct Outcome {
    pub check: Check,
    pub usable: bool,
}

impl From<Check> for Outcome {
    /// Usable when it passed or warned.
    fn from(check: Check) -> Outcome {
        let usable = check.passed();
        Outcome { check, usable }
    }
}

/// One check to run.
pub struct Step<'a> {
    id: String,
    needs: Vec<&'static str>,
    network: bool,
    invalid_input: bool,
    run: LocalBoxFuture<'a, Outcome>,
}

impl<'a> Step<'a> {
    /// A check with the prerequisites [`NEEDS`] gives for its id. `run` is only polled once
    /// they are usable.
    pub fn new<F, O>(check_id: &str, run: F) -> Step<'a>
    where
        F: std::future::Future<Output = O> + 'a,
        O: Into<Outcome>,
    {
        Step {
            id: check_id.to_string(),
            needs: needs_of(check_id).to_vec(),
            network: false,
            invalid_input: false,
            run: Box::pin(async move { run.await.into() }),
        }
    }
    /// A check whose result is already known.
    pub fn ready(check: Check) -> Step<'a> {
        let check_id = check.id.clone();
        Step::new(&check_id, std::future::ready(check))
    }
    /// The check calls AWS: with `--offline` it is skipped.
    pub fn network(mut self) -> Step<'a> {
        self.network = true;
        self
    }
    /// One of the settings the check reads is invalid or unknown: skipped, blocked by the
    /// configuration.
    pub fn invalid_input(mut self, invalid: bool) -> Step<'a> {
        self.invalid_input |= invalid;
        self
    }
    /// A prerequisite that depends on the settings (e.g. a region that would come from the
    /// AWS profile needs the credentials check).
    pub fn also_needs(mut self, check_id: &'static str) -> Step<'a> {
        self.needs.push(check_id);
        self
    }
}

enum Decision {
    Wait,
    Run,
    Skip(Check),
}

/// What to do with a step, given the outcomes so far (`done[i]` is the outcome of `ids[i]`).
fn decide(step: &Step<'_>, offline: bool, ids: &[String], done: &[Option<Outcome>]) -> Decision {
    if offline && step.network {
        return Decision::Skip(Check::skip(&step.id, "--offline: no AWS call"));
    }
    for dep in &step.needs {
        // A prerequisite that is not part of this report cannot block.
        let Some(j) = ids.iter().position(|x| x == dep) else {
            debug_assert!(false, "{} needs {dep}, which is not in the report", step.id);
            continue;
        };
        let Some(o) = &done[j] else {
            return Decision::Wait;
        };
        if o.usable {
            continue;
        }
        let c = &o.check;
        let skipped = match (&c.status, &c.blocked_by) {
            // Skipped because of another failure: name that one.
            (Status::Skip, Some(root)) => Check::blocked(&step.id, root, c.value.clone()),
            // Skipped for its own reason (--offline, does not apply): the same reason.
            (Status::Skip, None) => Check::skip(&step.id, c.value.clone()),
            _ => Check::blocked(&step.id, dep, reason_needing(dep)),
        };
        return Decision::Skip(skipped);
    }
    if step.invalid_input {
        return Decision::Skip(Check::blocked(&step.id, id::CONFIG, SEE_CONFIG));
    }
    Decision::Run
}

/// Run the steps and return the report, in the order of `steps`. Independent checks run
/// concurrently; a check waits only for the checks it needs.
pub async fn run(steps: Vec<Step<'_>>, offline: bool) -> Report {
    let ids: Vec<String> = steps.iter().map(|s| s.id.clone()).collect();
    let mut done: Vec<Option<Outcome>> = steps.iter().map(|_| None).collect();
    let mut pending: Vec<Option<Step<'_>>> = steps.into_iter().map(Some).collect();
    let mut running = FuturesUnordered::new();
    loop {
        let mut progressed = true;
        while progressed {
            progressed = false;
            for i in 0..pending.len() {
                let Some(step) = &pending[i] else { continue };
                match decide(step, offline, &ids, &done) {
                    Decision::Wait => {}
                    Decision::Skip(c) => {
                        pending[i] = None;
                        done[i] = Some(Outcome {
                            check: c,
                            usable: false,
                        });
                        progressed = true;
                    }
                    Decision::Run => {
                        let step = pending[i].take().expect("present");
                        running.push(async move { (i, step.run.await) });
                    }
                }
            }
        }
        match running.next().await {
            Some((i, outcome)) => done[i] = Some(outcome),
            None => break,
        }
    }
    let checks = done
        .into_iter()
        .zip(ids)
        .map(|(o, check_id)| match o {
            Some(o) => o.check,
            // Only a cycle in the prerequisites leaves a check here.
            None => Check::fail(
                &check_id,
                crate::error::Kind::Internal,
                "not run: its prerequisites form a cycle",
                "report this as a bug of sagetrain",
            ),
        })
        .collect();
    Report { checks }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Kind;
    use std::cell::RefCell;

    fn fail(check_id: &str) -> Check {
        Check::fail(check_id, Kind::Aws, "broken", "fix it")
    }

    #[test]
    fn every_prerequisite_in_the_table_is_a_check_id() {
        let all: Vec<&str> = NEEDS.iter().map(|(k, _)| *k).collect();
        for (k, needs) in NEEDS {
            for n in *needs {
                assert!(all.contains(n), "{k} needs {n}");
                assert_ne!(k, n);
            }
        }
        assert_eq!(needs_of("channel.train"), &[id::IDENTITY, id::REGION]);
    }

    #[tokio::test]
    async fn dependents_of_a_failed_check_are_blocked_by_it_and_the_rest_runs() {
        let ran = RefCell::new(Vec::new());
        let mark = |c: Check| {
            ran.borrow_mut().push(c.id.clone());
            c
        };
        let steps = vec![
            Step::new(id::CREDENTIALS, async {
                mark(Check::pass(id::CREDENTIALS, "ok"))
            }),
            Step::new(id::IDENTITY, async {
                mark(Check::pass(id::IDENTITY, "me"))
            }),
            Step::new(id::REGION, async { mark(fail(id::REGION)) }),
            Step::new(id::ROLE, async { mark(fail(id::ROLE)) }),
            Step::new(id::ROLE_TRUST, async {
                mark(Check::pass(id::ROLE_TRUST, "x"))
            }),
            Step::new(id::IMAGE, async { mark(Check::pass(id::IMAGE, "x")) }),
            Step::new("channel.train", async {
                mark(Check::pass("channel.train", "x"))
            }),
        ];
        let report = run(steps, false).await;
        let order: Vec<&str> = report.checks.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(
            order,
            [
                "credentials",
                "identity",
                "region",
                "execution_role",
                "role_trust",
                "image",
                "channel.train"
            ],
            "report order is the order of the steps"
        );
        let trust = report.get(id::ROLE_TRUST).unwrap();
        assert_eq!(trust.status, Status::Skip);
        assert_eq!(trust.blocked_by.as_deref(), Some(id::ROLE));
        for c in [id::IMAGE, "channel.train"] {
            assert_eq!(
                report.get(c).unwrap().blocked_by.as_deref(),
                Some(id::REGION)
            );
        }
        let ran = ran.into_inner();
        assert!(!ran.contains(&id::ROLE_TRUST.to_string()), "{ran:?}");
        assert!(!ran.contains(&id::IMAGE.to_string()), "{ran:?}");
    }

    #[tokio::test]
    async fn a_skip_propagates_its_root_cause_and_offline_skips_network_checks() {
        let steps = vec![
            Step::new(id::CREDENTIALS, async { fail(id::CREDENTIALS) }),
            Step::new(id::IDENTITY, async { Check::pass(id::IDENTITY, "me") }).network(),
            Step::new(id::ROLE, async { Check::pass(id::ROLE, "r") }).network(),
            Step::new(id::PASS_ROLE, async { Check::pass(id::PASS_ROLE, "r") }).network(),
            Step::new(id::REGION, async { Check::pass(id::REGION, "eu-west-1") }),
            Step::new(id::IMAGE, async { Check::pass(id::IMAGE, "i") })
                .network()
                .invalid_input(true),
        ];
        let report = run(steps, false).await;
        for c in [id::IDENTITY, id::ROLE, id::PASS_ROLE, id::IMAGE] {
            let c = report.get(c).unwrap();
            assert_eq!(c.status, Status::Skip, "{c:?}");
            assert_eq!(c.blocked_by.as_deref(), Some(id::CREDENTIALS), "{c:?}");
        }
        assert_eq!(report.get(id::REGION).unwrap().status, Status::Pass);

        let steps = vec![
            Step::new(id::CREDENTIALS, async {
                Check::pass(id::CREDENTIALS, "ok")
            }),
            Step::new(id::IDENTITY, async { Check::pass(id::IDENTITY, "me") }).network(),
            Step::new(id::REGION, async { Check::pass(id::REGION, "r") }),
            Step::new(id::IMAGE, async { Check::pass(id::IMAGE, "i") })
                .network()
                .invalid_input(true),
            Step::new(id::OUTPUT, async { Check::pass(id::OUTPUT, "o") }).invalid_input(true),
        ];
        let offline = run(steps, true).await;
        let identity = offline.get(id::IDENTITY).unwrap();
        assert_eq!(identity.status, Status::Skip);
        assert!(identity.value.contains("--offline"));
        assert_eq!(offline.get(id::IMAGE).unwrap().blocked_by, None);
        let output = offline.get(id::OUTPUT).unwrap();
        assert_eq!(output.blocked_by, None, "{output:?}");
        assert!(output.value.contains("--offline"), "{output:?}");
    }

    #[tokio::test]
    async fn an_unusable_pass_blocks_its_dependents_and_independent_checks_overlap() {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let steps = vec![
            Step::new(id::CREDENTIALS, async {
                Check::pass(id::CREDENTIALS, "ok")
            }),
            Step::new(id::IDENTITY, async { Check::pass(id::IDENTITY, "me") }),
            // The role warns without giving a role: its dependents cannot run.
            Step::new(id::ROLE, async {
                Outcome {
                    check: Check::warn(id::ROLE, "could not be read", "ask"),
                    usable: false,
                }
            }),
            Step::new(id::PASS_ROLE, async { Check::pass(id::PASS_ROLE, "r") }),
            // These two only finish when run at the same time.
            Step::new(id::REGION, async { Check::pass(id::REGION, "r") }),
            Step::new(id::IMAGE, async move {
                rx.await.unwrap();
                Check::pass(id::IMAGE, "i")
            }),
            Step::new(id::OUTPUT, async move {
                tx.send(()).unwrap();
                Check::pass(id::OUTPUT, "o")
            }),
        ];
        let report = tokio::time::timeout(std::time::Duration::from_secs(5), run(steps, false))
            .await
            .expect("independent checks run concurrently");
        assert_eq!(report.get(id::ROLE).unwrap().status, Status::Warn);
        let pass = report.get(id::PASS_ROLE).unwrap();
        assert_eq!(pass.blocked_by.as_deref(), Some(id::ROLE));
        assert_eq!(report.get(id::IMAGE).unwrap().status, Status::Pass);
    }
}
