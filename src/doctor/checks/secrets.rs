//! The job's secrets (`--secret`, `[secrets]`): each exists (secretsmanager:DescribeSecret, never
//! its value) and the execution role may read it (iam:SimulatePrincipalPolicy of
//! secretsmanager:GetSecretValue with the role as the principal).

use crate::config::Val;
use crate::doctor::checks::role::simulate;
use crate::doctor::report::Check;
use crate::error::Kind;
use crate::job::lookups;
use crate::job::secret::SecretRef;

/// The check id of one secret.
pub fn check_id(name: &str) -> String {
    format!("secret.{name}")
}

/// The check of the secret `name`: found, and readable by the role `role_arn`.
pub async fn secret_check(
    sm: &aws_sdk_secretsmanager::Client,
    iam: &aws_sdk_iam::Client,
    name: &str,
    given: &Val<String>,
    role_arn: &str,
    region: &str,
) -> Check {
    let check_id = check_id(name);
    let source = given.source.name_for(Some(name));
    let r = match SecretRef::parse(&given.value) {
        Ok(r) => Val::new(r, given.source.clone()),
        Err(rule) => {
            return Check::fail(
                &check_id,
                Kind::Usage,
                format!("`{}` {rule}", given.value),
                "give NAME=SECRET_ID: a Secrets Manager secret name (sagetrain/wandb) or ARN, with an optional :json-key",
            )
            .with_source(source)
        }
    };
    let arn = match lookups::secret_with(sm, name, &r, region).await {
        Ok((_, value)) => {
            // The variable holds `ARN[:json-key]`; the policy is on the ARN.
            value.split(':').take(7).collect::<Vec<_>>().join(":")
        }
        Err(e) => return Check::from_error(&check_id, &e).with_source(source),
    };
    let fix = format!(
        "allow it in a policy of the execution role: {{\"Effect\": \"Allow\", \"Action\": \"secretsmanager:GetSecretValue\", \"Resource\": \"{arn}\"}}\n\
         (`sagetrain init --create-role` adds it; without it the job fails before training: the launcher cannot read {name})"
    );
    match simulate(iam, role_arn, "secretsmanager:GetSecretValue", &arn, None).await {
        Ok(Some(d)) if d == "allowed" => {
            Check::pass(&check_id, format!("{arn}; the execution role may read it"))
                .with_source(source)
        }
        Ok(Some(d)) => Check::fail(
            &check_id,
            Kind::Aws,
            format!("{arn} exists, but the execution role {role_arn} may not read it ({d})"),
            fix,
        )
        .with_source(source),
        Ok(None) => Check::warn(
            &check_id,
            format!("{arn} exists; whether the execution role may read it could not be checked: iam:SimulatePrincipalPolicy returned no result"),
            fix,
        )
        .with_source(source),
        Err(why) => Check::warn(
            &check_id,
            format!("{arn} exists; whether the execution role may read it could not be checked: {why}"),
            fix,
        )
        .with_source(source),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::checks::fixtures::ACCOUNT;
    use crate::doctor::Status;
    use aws_sdk_iam::operation::simulate_principal_policy::SimulatePrincipalPolicyOutput;
    use aws_sdk_iam::types as iamt;
    use aws_sdk_secretsmanager::operation::describe_secret::{
        DescribeSecretError, DescribeSecretOutput,
    };
    use aws_smithy_mocks::{mock, mock_client};
    use aws_smithy_types::error::ErrorMetadata;

    const ARN: &str = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:sagetrain/wandb-AbCdEf";

    fn role_arn() -> String {
        format!("arn:aws:iam::{ACCOUNT}:role/SageMakerRole")
    }

    fn given(v: &str) -> Val<String> {
        Val::new(v.to_string(), crate::config::Source::Flag("--secret"))
    }

    /// The check of the secret `name` given as `id`, for the role in eu-west-1.
    async fn check(
        sm: &aws_sdk_secretsmanager::Client,
        iam: &aws_sdk_iam::Client,
        name: &str,
        id: &str,
    ) -> Check {
        secret_check(sm, iam, name, &given(id), &role_arn(), "eu-west-1").await
    }

    fn simulated(d: iamt::PolicyEvaluationDecisionType) -> SimulatePrincipalPolicyOutput {
        SimulatePrincipalPolicyOutput::builder()
            .evaluation_results(
                iamt::EvaluationResult::builder()
                    .eval_action_name("secretsmanager:GetSecretValue")
                    .eval_decision(d)
                    .build()
                    .unwrap(),
            )
            .build()
    }

    /// DescribeSecret finds the name; the simulation asks for the role, the action and the
    /// ARN (not the JSON key); allowed passes, an implicit deny fails naming the statement.
    #[tokio::test]
    async fn the_role_may_read_the_secret_or_the_check_fails_with_the_statement() {
        for (decision, status) in [
            (iamt::PolicyEvaluationDecisionType::Allowed, Status::Pass),
            (
                iamt::PolicyEvaluationDecisionType::ImplicitDeny,
                Status::Fail,
            ),
        ] {
            let describe = mock!(aws_sdk_secretsmanager::Client::describe_secret)
                .match_requests(|r| r.secret_id() == Some("sagetrain/wandb"))
                .then_output(|| DescribeSecretOutput::builder().arn(ARN).build());
            let sm = mock_client!(aws_sdk_secretsmanager, [&describe]);
            let sim = mock!(aws_sdk_iam::Client::simulate_principal_policy)
                .match_requests(|r| {
                    r.policy_source_arn() == Some(role_arn().as_str())
                        && r.action_names() == ["secretsmanager:GetSecretValue"]
                        && r.resource_arns() == [ARN]
                })
                .then_output(move || simulated(decision.clone()));
            let iam = mock_client!(aws_sdk_iam, [&sim]);
            let c = check(&sm, &iam, "WANDB_API_KEY", "sagetrain/wandb:token").await;
            assert_eq!(c.status, status, "{c:?}");
            assert_eq!(c.id, "secret.WANDB_API_KEY");
            assert_eq!(c.source.as_deref(), Some("--secret WANDB_API_KEY"));
            if status == Status::Fail {
                assert!(
                    c.value.contains("may not read it (implicitDeny)"),
                    "{}",
                    c.value
                );
                let fix = c.fix.unwrap();
                assert!(fix.contains(&format!("\"Resource\": \"{ARN}\"")), "{fix}");
                assert!(fix.contains("sagetrain init --create-role"), "{fix}");
            }
        }
    }

    #[tokio::test]
    async fn a_missing_secret_fails_and_an_unsimulatable_role_is_a_warning() {
        let missing = mock!(aws_sdk_secretsmanager::Client::describe_secret)
            .match_requests(|r| r.secret_id() == Some("sagetrain/none"))
            .then_error(|| {
                DescribeSecretError::ResourceNotFoundException(
                    aws_sdk_secretsmanager::types::error::ResourceNotFoundException::builder()
                        .meta(
                            ErrorMetadata::builder()
                                .code("ResourceNotFoundException")
                                .build(),
                        )
                        .build(),
                )
            });
        let found = mock!(aws_sdk_secretsmanager::Client::describe_secret)
            .match_requests(|r| r.secret_id() == Some(ARN))
            .then_output(|| DescribeSecretOutput::builder().arn(ARN).build());
        let sm = mock_client!(
            aws_sdk_secretsmanager,
            aws_smithy_mocks::RuleMode::MatchAny,
            [&missing, &found]
        );
        let denied = mock!(aws_sdk_iam::Client::simulate_principal_policy).then_error(|| {
            aws_sdk_iam::operation::simulate_principal_policy::SimulatePrincipalPolicyError::generic(
                ErrorMetadata::builder().code("AccessDenied").build(),
            )
        });
        let iam = mock_client!(aws_sdk_iam, [&denied]);
        let c = check(&sm, &iam, "X", "sagetrain/none").await;
        assert_eq!(c.status, Status::Fail);
        assert!(
            c.value.contains("there is no secret `sagetrain/none`"),
            "{}",
            c.value
        );
        assert!(c.fix.unwrap().contains("aws secretsmanager create-secret"));

        let c = check(&sm, &iam, "X", ARN).await;
        assert_eq!(c.status, Status::Warn, "{c:?}");
        assert!(c
            .value
            .contains("you may not call iam:SimulatePrincipalPolicy"));
    }
}
