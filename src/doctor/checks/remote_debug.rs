//! With `remote_debug` on: what `sagetrain shell` needs. The Session Manager plugin on this
//! machine, ssm:StartSession for the caller, and the SSM channel actions for the execution role
//! (the agent in the container opens its channels with the role's credentials).

use super::role::{policy_principal, simulate_actions};
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

/// The decisions of a simulation, as (the actions denied, and how).
fn denied(decisions: &[(String, String)]) -> Vec<String> {
    decisions
        .iter()
        .filter(|(_, d)| d != "allowed")
        .map(|(a, d)| format!("{a} ({d})"))
        .collect()
}

/// ssm:StartSession and ssm:TerminateSession for the caller (iam:SimulatePrincipalPolicy).
pub async fn start_session_check(iam: &aws_sdk_iam::Client, caller: &Identity) -> Check {
    if caller.arn.ends_with(":root") {
        return Check::pass(id::START_SESSION, "the root user may start any session");
    }
    let Some(principal) = policy_principal(iam, caller).await else {
        return Check::skip(
            id::START_SESSION,
            format!(
                "cannot be simulated for {}: only IAM users and role sessions can",
                caller.arn
            ),
        );
    };
    let fix = format!(
        "allow ssm:StartSession and ssm:TerminateSession in a policy of {principal} \
         (examples/iam/developer-policy.json has them, for training jobs' targets only)"
    );
    match simulate_actions(iam, &principal, &CALLER_ACTIONS, "*", None).await {
        Ok(d) if d.is_empty() => Check::warn(
            id::START_SESSION,
            "could not be checked: iam:SimulatePrincipalPolicy returned no result",
            fix,
        ),
        Ok(d) => match denied(&d)[..] {
            [] => Check::pass(
                id::START_SESSION,
                format!("{principal} may start and end SSM sessions"),
            )
            .with_source("iam:SimulatePrincipalPolicy"),
            ref no => Check::fail(
                id::START_SESSION,
                Kind::Aws,
                format!(
                    "denied for {principal}: {}; `sagetrain shell` cannot open a session",
                    no.join(", ")
                ),
                fix,
            )
            .with_source("iam:SimulatePrincipalPolicy"),
        },
        Err(why) => Check::warn(
            id::START_SESSION,
            format!("could not be checked: {why}"),
            fix,
        ),
    }
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
    match simulate_actions(iam, role_arn, SSM_CHANNEL_ACTIONS, "*", None).await {
        Ok(d) if d.is_empty() => Check::warn(
            id::ROLE_SSM,
            "could not be checked: iam:SimulatePrincipalPolicy returned no result",
            fix,
        ),
        Ok(d) => match denied(&d)[..] {
            [] => Check::pass(
                id::ROLE_SSM,
                format!("{role_arn} may open the SSM channels"),
            )
            .with_source("iam:SimulatePrincipalPolicy"),
            ref no => Check::fail(
                id::ROLE_SSM,
                Kind::Aws,
                format!(
                    "denied for the execution role: {}; the job's SSM agent cannot connect, so no session can open",
                    no.join(", ")
                ),
                fix,
            )
            .with_source("iam:SimulatePrincipalPolicy"),
        },
        Err(why) => Check::warn(id::ROLE_SSM, format!("could not be checked: {why}"), fix),
    }
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
