//! 3. The execution role: found, trusting SageMaker, and passable by the caller.

use crate::aws::{aws_error, error_code};
use crate::config::Val;
use crate::doctor::report::{id, Check};
use crate::error::{Error, Kind};
use crate::job::lookups::{self, Identity};

/// The execution role as found in IAM.
#[derive(Debug, Clone)]
pub struct RoleFound {
    pub name: String,
    pub arn: String,
    /// The trust policy document, when the role could be read (it is in the caller's account).
    pub trust_policy: Option<String>,
}

/// The role name in a role ARN (the last path segment).
pub fn role_name_of_arn(arn: &str) -> Option<&str> {
    let rest = arn.split(":role/").nth(1)?;
    rest.rsplit('/').next().filter(|n| !n.is_empty())
}

/// The account in an IAM or STS ARN.
pub fn account_of_arn(arn: &str) -> Option<&str> {
    arn.split(':').nth(4).filter(|a| !a.is_empty())
}

async fn get_role_full(
    iam: &aws_sdk_iam::Client,
    name: &str,
) -> std::result::Result<Option<RoleFound>, Error> {
    match iam.get_role().role_name(name).send().await {
        Ok(out) => Ok(out.role().map(|r| RoleFound {
            name: r.role_name().to_string(),
            arn: r.arn().to_string(),
            trust_policy: r.assume_role_policy_document().map(str::to_string),
        })),
        Err(e) if error_code(&e).as_deref() == Some("NoSuchEntity") => Ok(None),
        Err(e) => Err(aws_error("iam:GetRole", &e)),
    }
}

/// The execution role check: where it came from (flag, `SAGEMAKER_ROLE`, config, lookup) and
/// that it exists.
pub async fn role_check(
    iam: &aws_sdk_iam::Client,
    role: Option<&Val<String>>,
    caller: &Identity,
) -> (Check, Option<RoleFound>) {
    let (name, given_arn, source) = match role {
        None => match lookups::role_discovered_with(iam, caller).await {
            Err(e) => return (Check::from_error(id::ROLE, &e), None),
            Ok(v) => (
                role_name_of_arn(&v.value).unwrap_or_default().to_string(),
                Some(v.value.clone()),
                v.source.to_string(),
            ),
        },
        Some(v) if v.value.starts_with("arn:") => {
            let account = account_of_arn(&v.value).unwrap_or_default();
            if account != caller.account {
                let found = RoleFound {
                    name: role_name_of_arn(&v.value).unwrap_or_default().to_string(),
                    arn: v.value.clone(),
                    trust_policy: None,
                };
                return (
                    Check::warn(
                        id::ROLE,
                        format!(
                            "{} is in account {account}, not yours ({}): sagetrain cannot read it",
                            v.value, caller.account
                        ),
                        "make sure that role trusts sagemaker.amazonaws.com and lets your account pass it; or use a role of your own account (--role)",
                    )
                    .with_source(v.source.name_for(None)),
                    Some(found),
                );
            }
            (
                role_name_of_arn(&v.value).unwrap_or_default().to_string(),
                Some(v.value.clone()),
                v.source.name_for(None),
            )
        }
        Some(v) => (v.value.clone(), None, v.source.name_for(None)),
    };
    match get_role_full(iam, &name).await {
        Ok(Some(found)) => {
            if let Some(arn) = &given_arn {
                if *arn != found.arn {
                    return (
                        Check::fail(
                            id::ROLE,
                            Kind::Aws,
                            format!(
                                "{arn} does not exist; the role named `{}` is {}",
                                found.name, found.arn
                            ),
                            format!(
                                "use the role's full ARN, with its path: --role {} (or give just its name, --role {})",
                                found.arn, found.name
                            ),
                        )
                        .with_source(source),
                        None,
                    );
                }
            }
            (
                Check::pass(id::ROLE, found.arn.clone()).with_source(source),
                Some(found),
            )
        }
        Ok(None) => (
            Check::fail(
                id::ROLE,
                Kind::Aws,
                format!(
                    "the execution role `{}` does not exist in account {}",
                    given_arn.as_deref().unwrap_or(&name),
                    caller.account
                ),
                lookups::ROLE_HINT,
            )
            .with_source(source),
            None,
        ),
        Err(e) if given_arn.is_some() && role.is_some() => {
            // Given as an ARN, `train` uses it without reading it: not being allowed to read
            // it is no failure.
            (
                Check::warn(
                    id::ROLE,
                    format!(
                        "{}: could not be read ({}); its existence and trust are not checked",
                        given_arn.clone().unwrap_or_default(),
                        e.message
                    ),
                    "ask for iam:GetRole on the role to let doctor check it, or check it in the IAM console",
                )
                .with_source(source),
                None,
            )
        }
        Err(e) => (Check::from_error(id::ROLE, &e).with_source(source), None),
    }
}

/// The trust check: the role's trust policy lets sagemaker.amazonaws.com assume it.
pub fn role_trust_check(role: &RoleFound) -> Check {
    let Some(doc) = &role.trust_policy else {
        return Check::skip(
            id::ROLE_TRUST,
            "the role's trust policy could not be read (see execution role)",
        );
    };
    if lookups::trusts_sagemaker(doc) {
        return Check::pass(
            id::ROLE_TRUST,
            format!("sagemaker.amazonaws.com may assume {}", role.name),
        );
    }
    let who = lookups::trusted_services(doc);
    let who = if who.is_empty() {
        "no service".to_string()
    } else {
        who.join(", ")
    };
    Check::fail(
        id::ROLE_TRUST,
        Kind::Aws,
        format!(
            "the trust policy of `{}` lets {who} assume it, not sagemaker.amazonaws.com: SageMaker could not use it",
            role.name
        ),
        format!(
            "aws iam update-assume-role-policy --role-name {} --policy-document '{}'\n\
             (this replaces the trust policy: add any other principal the role needs; examples/iam/execution-role-trust-policy.json is the same policy)\n\
             or: sagetrain init --create-role (a role of sagetrain's own that trusts only SageMaker, with least privilege from your settings, set as `role` in sagetrain.toml)",
            role.name,
            lookups::SAGEMAKER_TRUST
        ),
    )
}

/// The IAM principal whose policies decide what the caller may do: the user, or the role of an
/// assumed-role session (read with iam:GetRole to keep its path). None for root and others.
pub async fn policy_principal(iam: &aws_sdk_iam::Client, caller: &Identity) -> Option<String> {
    if caller.arn.contains(":user/") {
        return Some(caller.arn.clone());
    }
    let role = lookups::assumed_role_name(&caller.arn)?;
    match iam.get_role().role_name(role).send().await {
        Ok(out) => out.role().map(|r| r.arn().to_string()),
        Err(_) => {
            let partition = caller.arn.split(':').nth(1).unwrap_or("aws");
            Some(format!(
                "arn:{partition}:iam::{}:role/{role}",
                caller.account
            ))
        }
    }
}

/// The principal a check simulates the caller's policies for; or the check's verdict without a
/// simulation: a pass for the root user (`root`), a skip for callers IAM cannot simulate.
pub async fn simulated_principal(
    iam: &aws_sdk_iam::Client,
    caller: &Identity,
    check_id: &str,
    root: &str,
) -> Result<String, Check> {
    if caller.arn.ends_with(":root") {
        return Err(Check::pass(check_id, root));
    }
    policy_principal(iam, caller).await.ok_or_else(|| {
        Check::skip(
            check_id,
            format!(
                "cannot be simulated for {}: only IAM users and role sessions can",
                caller.arn
            ),
        )
    })
}

/// The PassRole check: iam:SimulatePrincipalPolicy for iam:PassRole on the role, with
/// iam:PassedToService = sagemaker.amazonaws.com. A caller who may not simulate (or an
/// emulator that cannot) gets a warning that it could not be checked, not a failure.
pub async fn pass_role_check(
    iam: &aws_sdk_iam::Client,
    caller: &Identity,
    role_arn: &str,
) -> Check {
    let principal = match simulated_principal(
        iam,
        caller,
        id::PASS_ROLE,
        "the root user may pass any role",
    )
    .await
    {
        Ok(p) => p,
        Err(check) => return check,
    };
    let entry = aws_sdk_iam::types::ContextEntry::builder()
        .context_key_name("iam:PassedToService")
        .context_key_values("sagemaker.amazonaws.com")
        .context_key_type(aws_sdk_iam::types::ContextKeyTypeEnum::String)
        .build();
    let policy_fix = format!(
        "allow it in a policy of {principal}: {{\"Effect\": \"Allow\", \"Action\": \"iam:PassRole\", \"Resource\": \"{role_arn}\", \
         \"Condition\": {{\"StringEquals\": {{\"iam:PassedToService\": \"sagemaker.amazonaws.com\"}}}}}}\n\
         (examples/iam/developer-policy.json has it; without it CreateTrainingJob fails with AccessDeniedException ... iam:PassRole)"
    );
    match simulate(iam, &principal, "iam:PassRole", role_arn, Some(entry)).await {
        Ok(Some(d)) if d == "allowed" => Check::pass(
            id::PASS_ROLE,
            format!("{principal} may pass {role_arn} to sagemaker.amazonaws.com"),
        )
        .with_source("iam:SimulatePrincipalPolicy"),
        Ok(Some(d)) => Check::fail(
            id::PASS_ROLE,
            Kind::Aws,
            format!("denied ({d}): {principal} may not pass {role_arn} to SageMaker"),
            policy_fix,
        )
        .with_source("iam:SimulatePrincipalPolicy"),
        Ok(None) => Check::warn(
            id::PASS_ROLE,
            "could not be checked: iam:SimulatePrincipalPolicy returned no result",
            policy_fix,
        ),
        Err(why) => Check::warn(
            id::PASS_ROLE,
            format!("could not be checked: {why}"),
            format!(
                "make sure your policy allows iam:PassRole on the role to SageMaker; {policy_fix}"
            ),
        ),
    }
}

/// iam:SimulatePrincipalPolicy of one action on one resource for `principal`: the decision
/// (`allowed`, `implicitDeny`, `explicitDeny`; `None` without a result), or why it could not
/// be asked (an AccessDenied, an emulator that does not implement it).
pub async fn simulate(
    iam: &aws_sdk_iam::Client,
    principal: &str,
    action: &str,
    resource: &str,
    context: Option<aws_sdk_iam::types::ContextEntry>,
) -> Result<Option<String>, String> {
    simulate_actions(iam, principal, &[action], resource, context)
        .await
        .map(|all| all.into_iter().next().map(|(_, d)| d))
}

/// [`simulate`] of several actions in one call: each action's decision, in the answer's order.
pub async fn simulate_actions(
    iam: &aws_sdk_iam::Client,
    principal: &str,
    actions: &[&str],
    resource: &str,
    context: Option<aws_sdk_iam::types::ContextEntry>,
) -> Result<Vec<(String, String)>, String> {
    let res = iam
        .simulate_principal_policy()
        .policy_source_arn(principal)
        .set_action_names(Some(actions.iter().map(|a| a.to_string()).collect()))
        .resource_arns(resource)
        .set_context_entries(context.map(|c| vec![c]))
        .customize()
        // Best effort: a failure only means "could not check", so do not wait for retries.
        .config_override(
            aws_sdk_iam::config::Builder::default()
                .retry_config(aws_sdk_iam::config::retry::RetryConfig::disabled()),
        )
        .send()
        .await;
    match res {
        Ok(out) => Ok(out
            .evaluation_results()
            .iter()
            .map(|r| {
                (
                    r.eval_action_name().to_string(),
                    r.eval_decision().as_str().to_string(),
                )
            })
            .collect()),
        Err(e) => Err(match error_code(&e) {
            Some(c) if c.contains("AccessDenied") => {
                "you may not call iam:SimulatePrincipalPolicy (AccessDenied)".to_string()
            }
            Some(c) if c != "Unknown" => format!("iam:SimulatePrincipalPolicy failed ({c})"),
            _ => match e.raw_response().map(|r| r.status().as_u16()) {
                Some(status) => format!(
                    "iam:SimulatePrincipalPolicy failed (HTTP {status}; an emulator may not implement it)"
                ),
                None => aws_error("iam:SimulatePrincipalPolicy", &e).message,
            },
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::checks::fixtures::*;
    use crate::doctor::checks::identity::iam_user_name;
    use crate::doctor::Status;
    use aws_sdk_iam::operation::simulate_principal_policy::SimulatePrincipalPolicyError;
    use aws_sdk_iam::types as iamt;
    use aws_smithy_mocks::{mock, mock_client, RuleMode};
    use aws_smithy_types::error::ErrorMetadata;

    #[tokio::test]
    async fn a_missing_role_fails_and_a_role_without_sagemaker_trust_fails_the_trust_check() {
        let missing = mock!(aws_sdk_iam::Client::get_role)
            .match_requests(|r| r.role_name() == Some("NoSuchRole"))
            .then_error(no_such_role);
        let ec2 = mock!(aws_sdk_iam::Client::get_role)
            .match_requests(|r| r.role_name() == Some("Ec2Role"))
            .then_output(|| role("Ec2Role", "/", EC2));
        let iam = mock_client!(aws_sdk_iam, RuleMode::MatchAny, [&missing, &ec2]);
        let given = Val::new(
            "NoSuchRole".to_string(),
            crate::config::Source::Flag("--role"),
        );
        let (c, found) = role_check(&iam, Some(&given), &user()).await;
        assert_eq!(c.status, Status::Fail);
        assert_eq!(c.class, Some(Kind::Aws));
        assert!(c
            .value
            .contains("`NoSuchRole` does not exist in account 111122223333"));
        assert_eq!(c.source.as_deref(), Some("--role"));
        assert!(c.fix.unwrap().contains("SAGEMAKER_ROLE"));
        assert!(found.is_none());

        let given = Val::new(
            "Ec2Role".to_string(),
            crate::config::Source::Env("SAGEMAKER_ROLE"),
        );
        let (c, found) = role_check(&iam, Some(&given), &user()).await;
        assert_eq!(c.status, Status::Pass);
        assert_eq!(c.value, format!("arn:aws:iam::{ACCOUNT}:role/Ec2Role"));
        let t = role_trust_check(&found.unwrap());
        assert_eq!(t.status, Status::Fail);
        assert!(
            t.value.contains("lets ec2.amazonaws.com assume it"),
            "{}",
            t.value
        );
        let fix = t.fix.unwrap();
        assert!(fix.contains(
            "aws iam update-assume-role-policy --role-name Ec2Role --policy-document '{\"Version\""
        ), "{fix}");
        assert!(fix.contains("or: sagetrain init --create-role"), "{fix}");
        // The policy in the command is one SageMaker accepts.
        assert!(lookups::trusts_sagemaker(lookups::SAGEMAKER_TRUST));
    }

    #[tokio::test]
    async fn an_arn_without_the_roles_path_is_named_with_the_right_one() {
        let r = mock!(aws_sdk_iam::Client::get_role)
            .then_output(|| role("SageMakerRole", "/service-role/", TRUSTS));
        let iam = mock_client!(aws_sdk_iam, [&r]);
        let given = Val::new(
            format!("arn:aws:iam::{ACCOUNT}:role/SageMakerRole"),
            crate::config::Source::Flag("--role"),
        );
        let (c, _) = role_check(&iam, Some(&given), &user()).await;
        assert_eq!(c.status, Status::Fail);
        assert!(c.fix.unwrap().contains("role/service-role/SageMakerRole"));
    }

    #[tokio::test]
    async fn pass_role_denied_is_a_failure_naming_the_policy_to_add() {
        let sim = mock!(aws_sdk_iam::Client::simulate_principal_policy)
            .match_requests(|r| {
                r.policy_source_arn() == Some("arn:aws:iam::111122223333:role/dev/Developer")
                    && r.action_names() == ["iam:PassRole"]
                    && r.resource_arns() == ["arn:aws:iam::111122223333:role/SageMakerRole"]
                    && r.context_entries().iter().any(|e| {
                        e.context_key_name() == Some("iam:PassedToService")
                            && e.context_key_values() == ["sagemaker.amazonaws.com"]
                    })
            })
            .then_output(|| decision(iamt::PolicyEvaluationDecisionType::ImplicitDeny));
        let own = mock!(aws_sdk_iam::Client::get_role)
            .match_requests(|r| r.role_name() == Some("Developer"))
            .then_output(|| role("Developer", "/dev/", EC2));
        let iam = mock_client!(aws_sdk_iam, RuleMode::MatchAny, [&sim, &own]);
        let c = pass_role_check(
            &iam,
            &session(),
            "arn:aws:iam::111122223333:role/SageMakerRole",
        )
        .await;
        assert_eq!(c.status, Status::Fail, "{c:?}");
        assert_eq!(c.class, Some(Kind::Aws));
        assert!(c.value.starts_with("denied (implicitDeny)"), "{}", c.value);
        let fix = c.fix.unwrap();
        crate::testing::assert_contains_all(
            &fix,
            &[
                "\"iam:PassedToService\": \"sagemaker.amazonaws.com\"",
                "examples/iam/developer-policy.json",
            ],
        );
        assert_eq!(sim.num_calls(), 1);
    }

    #[tokio::test]
    async fn pass_role_allowed_passes_and_not_being_allowed_to_simulate_is_only_a_warning() {
        let allowed = mock!(aws_sdk_iam::Client::simulate_principal_policy)
            .then_output(|| decision(iamt::PolicyEvaluationDecisionType::Allowed));
        let iam = mock_client!(aws_sdk_iam, [&allowed]);
        let c = pass_role_check(&iam, &user(), "arn:aws:iam::111122223333:role/R").await;
        assert_eq!(c.status, Status::Pass);

        let denied = mock!(aws_sdk_iam::Client::simulate_principal_policy).then_error(|| {
            SimulatePrincipalPolicyError::generic(
                ErrorMetadata::builder()
                    .code("AccessDenied")
                    .message("not authorized to perform: iam:SimulatePrincipalPolicy")
                    .build(),
            )
        });
        let iam = mock_client!(aws_sdk_iam, [&denied]);
        let c = pass_role_check(&iam, &user(), "arn:aws:iam::111122223333:role/R").await;
        assert_eq!(c.status, Status::Warn);
        assert!(c.value.contains("could not be checked"), "{}", c.value);
        assert!(c.value.contains("AccessDenied"), "{}", c.value);
        assert!(c.class.is_none());
    }

    #[tokio::test]
    async fn train_names_a_denied_pass_role_and_its_fix() {
        // What CreateTrainingJob answers when the caller may not pass the role.
        let msg = "User: arn:aws:sts::111122223333:assumed-role/Developer/alice is not authorized to perform: iam:PassRole on resource: arn:aws:iam::111122223333:role/SageMakerRole";
        let create = mock!(aws_sdk_sagemaker::Client::create_training_job).then_error(move || {
            aws_sdk_sagemaker::operation::create_training_job::CreateTrainingJobError::generic(
                ErrorMetadata::builder()
                    .code("AccessDeniedException")
                    .message(msg)
                    .build(),
            )
        });
        let sm = mock_client!(aws_sdk_sagemaker, [&create]);
        let req = crate::job::request::tests::sample_request();
        let e = crate::job::create::create(&sm, &req).await.unwrap_err();
        assert_eq!(e.kind, Kind::Aws);
        assert_eq!(e.exit_code(), 4);
        assert!(
            e.message
                .contains("not authorized to perform: iam:PassRole"),
            "{}",
            e.message
        );
        let hint = e.hint.unwrap();
        crate::testing::assert_contains_all(
            &hint,
            &[
                "allow iam:PassRole on the role",
                "iam:PassedToService = sagemaker.amazonaws.com",
                "sagetrain doctor",
            ],
        );
    }

    #[test]
    fn arn_helpers() {
        assert_eq!(
            iam_user_name("arn:aws:iam::1:user/team/alice"),
            Some("alice")
        );
        assert_eq!(iam_user_name("arn:aws:iam::1:root"), None);
        assert_eq!(
            role_name_of_arn("arn:aws:iam::1:role/service-role/SageMakerRole"),
            Some("SageMakerRole")
        );
        assert_eq!(
            account_of_arn("arn:aws:iam::111122223333:role/x"),
            Some("111122223333")
        );
    }
}
