//! With `remote_debug` on: what `sagetrain shell` needs. The Session Manager plugin on this
//! machine, ssm:StartSession for the caller, and the SSM channel actions for the execution role
//! (the agent in the container opens its channels with the role's credentials).

use super::role::{simulate_actions, simulated_principal};
use crate::doctor::report::{id, Check};
use crate::error::Kind;
use crate::job::lookups::Identity;
use crate::job::role_policy::SSM_CHANNEL_ACTIONS;
use crate::job::session;

/// What the caller needs for a session.
pub const CALLER_ACTIONS: [&str; 2] = ["ssm:StartSession", "ssm:TerminateSession"];

/// The plugin on PATH, and its version.
pub fn plugin_check(env: &dyn Fn(&str) -> Option<String>) -> Check {
    match session::find_plugin(env) {
        Ok((path, version)) => {
            Check::pass(id::SESSION_PLUGIN, format!("{} {version}", path.display()))
                .with_source("PATH")
        }
        Err(e) => Check::from_error(id::SESSION_PLUGIN, &e),
    }
}

/// The verdict of a simulation of several actions: a pass when every one is allowed, else a
/// failure naming those denied (and how); a warning when it could not be asked or answered.
fn verdict(
    check_id: &str,
    simulated: Result<Vec<(String, String)>, String>,
    allowed: String,
    denied_for: &str,
    fix: String,
) -> Check {
    let decisions = match simulated {
        Err(why) => return Check::warn(check_id, format!("could not be checked: {why}"), fix),
        Ok(d) if d.is_empty() => {
            return Check::warn(
                check_id,
                "could not be checked: iam:SimulatePrincipalPolicy returned no result",
                fix,
            )
        }
        Ok(d) => d,
    };
    let denied: Vec<String> = decisions
        .iter()
        .filter(|(_, d)| d != "allowed")
        .map(|(a, d)| format!("{a} ({d})"))
        .collect();
    let check = match denied.is_empty() {
        true => Check::pass(check_id, allowed),
        false => Check::fail(
            check_id,
            Kind::Aws,
            format!("denied for {denied_for}: {}", denied.join(", ")),
            fix,
        ),
    };
    check.with_source("iam:SimulatePrincipalPolicy")
}

/// ssm:StartSession and ssm:TerminateSession for the caller (iam:SimulatePrincipalPolicy).
pub async fn start_session_check(iam: &aws_sdk_iam::Client, caller: &Identity) -> Check {
    let root = "the root user may start any session";
    let principal = match simulated_principal(iam, caller, id::START_SESSION, root).await {
        Ok(p) => p,
        Err(check) => return check,
    };
    let fix = format!(
        "allow ssm:StartSession and ssm:TerminateSession in a policy of {principal} \
         (examples/iam/developer-policy.json has them, for training jobs' targets only)"
    );
    let simulated = simulate_actions(iam, &principal, &CALLER_ACTIONS, "*", None).await;
    let mut c = verdict(
        id::START_SESSION,
        simulated,
        format!("{principal} may start and end SSM sessions"),
        &principal,
        fix,
    );
    if c.status == crate::doctor::Status::Fail {
        c.value
            .push_str("; `sagetrain shell` cannot open a session");
    }
    c
}

/// The SSM channel actions for the execution role (iam:SimulatePrincipalPolicy on the role).
pub async fn role_channels_check(iam: &aws_sdk_iam::Client, role_arn: &str) -> Check {
    let fix = format!(
        "add to the role's policy: {{\"Effect\": \"Allow\", \"Action\": [{}], \"Resource\": \"*\"}}\n\
         (`sagetrain init --create-role` with remote_debug = true adds it; examples/iam/execution-role-policy.json has it)",
        SSM_CHANNEL_ACTIONS
            .iter()
            .map(|a| format!("\"{a}\""))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let simulated = simulate_actions(iam, role_arn, SSM_CHANNEL_ACTIONS, "*", None).await;
    let mut c = verdict(
        id::ROLE_SSM,
        simulated,
        format!("{role_arn} may open the SSM channels"),
        "the execution role",
        fix,
    );
    if c.status == crate::doctor::Status::Fail {
        c.value
            .push_str("; the job's SSM agent cannot connect, so no session can open");
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::checks::fixtures::*;
    use crate::doctor::Status;
    use aws_sdk_iam::operation::simulate_principal_policy::SimulatePrincipalPolicyOutput;
    use aws_sdk_iam::types as iamt;
    use aws_smithy_mocks::{mock, mock_client, RuleMode};

    fn decisions(
        d: &[(&str, iamt::PolicyEvaluationDecisionType)],
    ) -> SimulatePrincipalPolicyOutput {
        let mut out = SimulatePrincipalPolicyOutput::builder();
        for (a, d) in d {
            out = out.evaluation_results(
                iamt::EvaluationResult::builder()
                    .eval_action_name(*a)
                    .eval_decision(d.clone())
                    .build()
                    .unwrap(),
            );
        }
        out.build()
    }

    #[tokio::test]
    async fn the_role_needs_every_ssm_channel_action() {
        use iamt::PolicyEvaluationDecisionType::{Allowed, ImplicitDeny};
        let role = "arn:aws:iam::111122223333:role/R";
        let all = mock!(aws_sdk_iam::Client::simulate_principal_policy)
            .match_requests(move |r| {
                r.policy_source_arn() == Some(role) && r.action_names().len() == 4
            })
            .then_output(|| {
                let all: Vec<_> = SSM_CHANNEL_ACTIONS.iter().map(|a| (*a, Allowed)).collect();
                decisions(&all)
            });
        let iam = mock_client!(aws_sdk_iam, RuleMode::MatchAny, [&all]);
        let c = role_channels_check(&iam, role).await;
        assert_eq!(c.status, Status::Pass, "{c:?}");

        let one_missing = mock!(aws_sdk_iam::Client::simulate_principal_policy).then_output(|| {
            decisions(&[
                ("ssmmessages:CreateControlChannel", Allowed),
                ("ssmmessages:CreateDataChannel", Allowed),
                ("ssmmessages:OpenControlChannel", ImplicitDeny),
                ("ssmmessages:OpenDataChannel", Allowed),
            ])
        });
        let iam = mock_client!(aws_sdk_iam, RuleMode::MatchAny, [&one_missing]);
        let c = role_channels_check(&iam, role).await;
        assert_eq!(c.status, Status::Fail);
        assert!(
            c.value
                .contains("ssmmessages:OpenControlChannel (implicitDeny)"),
            "{}",
            c.value
        );
        assert!(!c.value.contains("CreateDataChannel"), "{}", c.value);
        assert!(c.fix.as_deref().unwrap().contains("init --create-role"));
    }

    #[tokio::test]
    async fn the_caller_needs_start_and_terminate_session() {
        use iamt::PolicyEvaluationDecisionType::{Allowed, ExplicitDeny};
        let ok = mock!(aws_sdk_iam::Client::simulate_principal_policy)
            .match_requests(|r| {
                r.action_names() == ["ssm:StartSession", "ssm:TerminateSession"]
                    && r.policy_source_arn() == Some("arn:aws:iam::111122223333:user/alice")
            })
            .then_output(|| {
                decisions(&[
                    ("ssm:StartSession", Allowed),
                    ("ssm:TerminateSession", Allowed),
                ])
            });
        let iam = mock_client!(aws_sdk_iam, RuleMode::MatchAny, [&ok]);
        assert_eq!(
            start_session_check(&iam, &user()).await.status,
            Status::Pass
        );

        let denied = mock!(aws_sdk_iam::Client::simulate_principal_policy).then_output(|| {
            decisions(&[
                ("ssm:StartSession", ExplicitDeny),
                ("ssm:TerminateSession", Allowed),
            ])
        });
        let iam = mock_client!(aws_sdk_iam, RuleMode::MatchAny, [&denied]);
        let c = start_session_check(&iam, &user()).await;
        assert_eq!(c.status, Status::Fail);
        assert!(
            c.value.contains("ssm:StartSession (explicitDeny)"),
            "{}",
            c.value
        );
        assert!(c.fix.as_deref().unwrap().contains("developer-policy.json"));
    }

    #[test]
    fn a_missing_plugin_fails_with_the_install_hint() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().display().to_string();
        let c = plugin_check(&|k| (k == "PATH").then(|| path.clone()));
        assert_eq!(c.status, Status::Fail);
        assert!(c
            .fix
            .as_deref()
            .unwrap()
            .contains("brew install --cask session-manager-plugin"));
    }
}
