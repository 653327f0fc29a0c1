//! What the checks' unit tests share: identities and IAM answers.

use crate::job::lookups::Identity;
use aws_sdk_iam::operation::get_role::{GetRoleError, GetRoleOutput};
use aws_sdk_iam::operation::simulate_principal_policy::SimulatePrincipalPolicyOutput;
use aws_sdk_iam::types as iamt;
use aws_smithy_types::error::ErrorMetadata;

pub const ACCOUNT: &str = "111122223333";

pub fn user() -> Identity {
    Identity {
        account: ACCOUNT.into(),
        arn: format!("arn:aws:iam::{ACCOUNT}:user/alice"),
    }
}
pub fn session() -> Identity {
    Identity {
        account: ACCOUNT.into(),
        arn: format!("arn:aws:sts::{ACCOUNT}:assumed-role/Developer/alice"),
    }
}
pub const TRUSTS: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"sagemaker.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
pub const EC2: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;

pub fn role(name: &str, path: &str, doc: &str) -> GetRoleOutput {
    GetRoleOutput::builder()
        .role(
            iamt::Role::builder()
                .role_name(name)
                .path(path)
                .role_id("AROAEXAMPLE")
                .arn(format!("arn:aws:iam::{ACCOUNT}:role{path}{name}"))
                .create_date(aws_smithy_types::DateTime::from_secs(0))
                .assume_role_policy_document(doc)
                .build()
                .unwrap(),
        )
        .build()
}

pub fn no_such_role() -> GetRoleError {
    GetRoleError::NoSuchEntityException(
        iamt::error::NoSuchEntityException::builder()
            .message("The role with name X cannot be found.")
            .meta(
                ErrorMetadata::builder()
                    .code("NoSuchEntity")
                    .message("The role with name X cannot be found.")
                    .build(),
            )
            .build(),
    )
}

pub fn decision(d: iamt::PolicyEvaluationDecisionType) -> SimulatePrincipalPolicyOutput {
    SimulatePrincipalPolicyOutput::builder()
        .evaluation_results(
            iamt::EvaluationResult::builder()
                .eval_action_name("iam:PassRole")
                .eval_decision(d)
                .build()
                .unwrap(),
        )
        .build()
}
