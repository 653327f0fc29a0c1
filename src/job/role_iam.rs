//! The IAM calls of `sagetrain init --create-role`: read the role (GetRole, GetRolePolicy),
//! create it (CreateRole with its tags), and bring its trust and inline policy to what is
//! wanted (UpdateAssumeRolePolicy, PutRolePolicy, TagRole). What to call is decided by
//! [`crate::job::role_policy::plan`]; this only calls.

use crate::aws::{aws_error, error_code};
use crate::error::{Error, Reason, Result};
use crate::job::role_policy::{decode_document, ExistingRole, POLICY_NAME};
use aws_sdk_iam::error::ProvideErrorMetadata;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use serde_json::Value;

/// Whom to ask when IAM refuses a call.
pub fn denied_hint(operation: &str, role_arn: &str) -> String {
    format!(
        "your credentials may not call {operation} on {role_arn}: an administrator can run the same command (`sagetrain init --create-role`), \
         or apply the policies that `sagetrain init --create-role --dry-run` prints (it shows the exact calls); \
         examples/iam/admin-create-role-policy.json grants these calls for this role only"
    )
}

/// The error of an IAM call, naming the denied action and the way forward when refused.
fn iam_error<E>(operation: &str, role_arn: &str, err: &SdkError<E, HttpResponse>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let e = aws_error(operation, err);
    let denied = matches!(
        error_code(err).as_deref(),
        Some("AccessDenied" | "AccessDeniedException" | "UnauthorizedOperation")
    );
    if denied {
        Error::aws(format!("{operation} was denied: {}", e.message))
            .with_hint(denied_hint(operation, role_arn))
            .with_reason(Reason::AccessDenied)
    } else {
        e
    }
}

/// Is this the refusal of a call (so that a dry run can go on without the answer)?
pub fn is_denied(e: &Error) -> bool {
    e.reason == Some(Reason::AccessDenied)
}

/// The role and its inline policy, or None when no role has this name.
pub async fn read(
    iam: &aws_sdk_iam::Client,
    name: &str,
    arn_for_messages: &str,
) -> Result<Option<ExistingRole>> {
    let role = match iam.get_role().role_name(name).send().await {
        Ok(out) => match out.role {
            Some(r) => r,
            None => return Ok(None),
        },
        Err(e) if error_code(&e).as_deref() == Some("NoSuchEntity") => return Ok(None),
        Err(e) => return Err(iam_error("iam:GetRole", arn_for_messages, &e)),
    };
    let trust = role
        .assume_role_policy_document()
        .map(decode_document)
        .transpose()
        .map_err(|why| {
            Error::aws(format!(
                "iam:GetRole: the trust policy of {} could not be read: {why}",
                role.arn()
            ))
        })?;
    let policy = match iam
        .get_role_policy()
        .role_name(name)
        .policy_name(POLICY_NAME)
        .send()
        .await
    {
        Ok(out) => Some(decode_document(out.policy_document()).map_err(|why| {
            Error::aws(format!(
                "iam:GetRolePolicy: the inline policy {POLICY_NAME} of {} could not be read: {why}",
                role.arn()
            ))
        })?),
        Err(e) if error_code(&e).as_deref() == Some("NoSuchEntity") => None,
        Err(e) => return Err(iam_error("iam:GetRolePolicy", role.arn(), &e)),
    };
    Ok(Some(ExistingRole {
        arn: role.arn().to_string(),
        trust,
        policy,
        tags: role
            .tags()
            .iter()
            .map(|t| (t.key().to_string(), t.value().to_string()))
            .collect(),
    }))
}

fn tags(tags: &[(String, String)]) -> Result<Vec<aws_sdk_iam::types::Tag>> {
    tags.iter()
        .map(|(k, v)| {
            aws_sdk_iam::types::Tag::builder()
                .key(k)
                .value(v)
                .build()
                .map_err(|e| Error::internal(format!("an IAM tag could not be built: {e}")))
        })
        .collect()
}

/// Create the role with its trust policy and tags; its ARN.
pub async fn create(
    iam: &aws_sdk_iam::Client,
    name: &str,
    path: &str,
    trust: &Value,
    role_tags: &[(String, String)],
    description: &str,
    arn_for_messages: &str,
) -> Result<String> {
    let out = iam
        .create_role()
        .role_name(name)
        .path(path)
        .description(description)
        .assume_role_policy_document(trust.to_string())
        .set_tags(Some(tags(role_tags)?))
        .send()
        .await
        .map_err(|e| iam_error("iam:CreateRole", arn_for_messages, &e))?;
    Ok(out
        .role()
        .map(|r| r.arn().to_string())
        .unwrap_or_else(|| arn_for_messages.to_string()))
}

pub async fn put_policy(
    iam: &aws_sdk_iam::Client,
    name: &str,
    policy: &Value,
    role_arn: &str,
) -> Result<()> {
    iam.put_role_policy()
        .role_name(name)
        .policy_name(POLICY_NAME)
        .policy_document(policy.to_string())
        .send()
        .await
        .map_err(|e| iam_error("iam:PutRolePolicy", role_arn, &e))?;
    Ok(())
}

pub async fn update_trust(
    iam: &aws_sdk_iam::Client,
    name: &str,
    trust: &Value,
    role_arn: &str,
) -> Result<()> {
    iam.update_assume_role_policy()
        .role_name(name)
        .policy_document(trust.to_string())
        .send()
        .await
        .map_err(|e| iam_error("iam:UpdateAssumeRolePolicy", role_arn, &e))?;
    Ok(())
}

pub async fn tag(
    iam: &aws_sdk_iam::Client,
    name: &str,
    role_tags: &[(String, String)],
    role_arn: &str,
) -> Result<()> {
    iam.tag_role()
        .role_name(name)
        .set_tags(Some(tags(role_tags)?))
        .send()
        .await
        .map_err(|e| iam_error("iam:TagRole", role_arn, &e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_iam::operation::create_role::CreateRoleError;
    use aws_sdk_iam::operation::get_role::GetRoleError;
    use aws_sdk_iam::operation::get_role_policy::GetRolePolicyError;
    use aws_sdk_iam::types::error::NoSuchEntityException;
    use aws_smithy_mocks::{mock, mock_client, RuleMode};
    use aws_smithy_types::error::ErrorMetadata;

    const ARN: &str = "arn:aws:iam::111122223333:role/service-role/R";

    #[tokio::test]
    async fn a_refused_call_names_the_action_and_who_can_do_it() {
        let denied = mock!(aws_sdk_iam::Client::create_role).then_error(|| {
            CreateRoleError::generic(
                ErrorMetadata::builder()
                    .code("AccessDenied")
                    .message("User: arn:aws:sts::111122223333:assumed-role/Dev/me is not authorized to perform: iam:CreateRole")
                    .build(),
            )
        });
        let iam = mock_client!(aws_sdk_iam, RuleMode::Sequential, [&denied]);
        let e = create(
            &iam,
            "R",
            "/service-role/",
            &serde_json::json!({}),
            &[],
            "d",
            ARN,
        )
        .await
        .unwrap_err();
        assert_eq!(e.kind, crate::error::Kind::Aws);
        assert!(
            e.message.starts_with("iam:CreateRole was denied: "),
            "{}",
            e.message
        );
        assert!(is_denied(&e));
        let hint = e.hint.unwrap();
        assert!(
            hint.contains(
                "an administrator can run the same command (`sagetrain init --create-role`)"
            ),
            "{hint}"
        );
        assert!(hint.contains("--dry-run"), "{hint}");
    }

    #[tokio::test]
    async fn a_missing_role_is_none_and_a_missing_policy_is_none() {
        let missing = mock!(aws_sdk_iam::Client::get_role).then_error(|| {
            GetRoleError::NoSuchEntityException(
                NoSuchEntityException::builder()
                    .message("The role with name R cannot be found.")
                    .meta(ErrorMetadata::builder().code("NoSuchEntity").build())
                    .build(),
            )
        });
        let iam = mock_client!(aws_sdk_iam, RuleMode::Sequential, [&missing]);
        assert!(read(&iam, "R", ARN).await.unwrap().is_none());

        let trust = crate::job::role_policy::trust_policy("111122223333");
        let encoded = percent_encoding::utf8_percent_encode(
            &trust.to_string(),
            percent_encoding::NON_ALPHANUMERIC,
        )
        .to_string();
        let found = mock!(aws_sdk_iam::Client::get_role).then_output(move || {
            aws_sdk_iam::operation::get_role::GetRoleOutput::builder()
                .role(
                    aws_sdk_iam::types::Role::builder()
                        .role_name("R")
                        .path("/service-role/")
                        .role_id("AROAEXAMPLE")
                        .arn(ARN)
                        .create_date(aws_smithy_types::DateTime::from_secs(0))
                        .assume_role_policy_document(encoded.clone())
                        .tags(
                            aws_sdk_iam::types::Tag::builder()
                                .key("sagetrain:managed")
                                .value("true")
                                .build()
                                .unwrap(),
                        )
                        .build()
                        .unwrap(),
                )
                .build()
        });
        let no_policy = mock!(aws_sdk_iam::Client::get_role_policy).then_error(|| {
            GetRolePolicyError::NoSuchEntityException(
                NoSuchEntityException::builder()
                    .meta(ErrorMetadata::builder().code("NoSuchEntity").build())
                    .build(),
            )
        });
        let iam = mock_client!(aws_sdk_iam, RuleMode::Sequential, [&found, &no_policy]);
        let r = read(&iam, "R", ARN).await.unwrap().unwrap();
        assert_eq!(r.trust.as_ref(), Some(&trust));
        assert!(r.policy.is_none());
        assert_eq!(
            r.tags,
            [("sagetrain:managed".to_string(), "true".to_string())]
        );
    }
}
