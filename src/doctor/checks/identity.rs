//! 2. Identity and access keys.

use crate::aws::{aws_error, error_code};
use crate::doctor::report::{id, Check};
use crate::job::lookups::{self, Identity};
use crate::secrets;
use std::time::SystemTime;

/// Active access keys older than this get a warning.
pub const MAX_KEY_AGE_DAYS: u64 = 90;

/// The identity check: sts:GetCallerIdentity, with a warning for the root user.
pub async fn identity_check(sts: &aws_sdk_sts::Client) -> (Check, Option<Identity>) {
    match lookups::identity_with(sts).await {
        Err(e) => (Check::from_error(id::IDENTITY, &e), None),
        Ok(i) => {
            let value = format!("{} (account {})", i.arn, i.account);
            let check = if i.arn.ends_with(":root") {
                Check::warn(
                    id::IDENTITY,
                    format!("{value}: these are the account's ROOT user credentials"),
                    "never use root access keys: sign in with IAM Identity Center (`aws configure sso`) or an IAM user \
                     limited to what sagetrain needs (examples/iam/developer-policy.json),\n\
                     then delete the root access keys (console: your account > Security credentials)",
                )
            } else {
                Check::pass(id::IDENTITY, value)
            };
            (check, Some(i))
        }
    }
}

/// The IAM user name in a caller ARN (`arn:aws:iam::ACCOUNT:user/PATH/NAME`).
pub fn iam_user_name(caller_arn: &str) -> Option<&str> {
    let rest = caller_arn.split(":user/").nth(1)?;
    rest.rsplit('/').next().filter(|n| !n.is_empty())
}

/// The access keys check (IAM users and root only): warn for an active key older than
/// [`MAX_KEY_AGE_DAYS`]; skipped, with a note, when iam:ListAccessKeys is not permitted.
pub async fn access_keys_check(
    iam: &aws_sdk_iam::Client,
    caller: &Identity,
    now: SystemTime,
) -> Check {
    let root = caller.arn.ends_with(":root");
    let user = iam_user_name(&caller.arn);
    if user.is_none() && !root {
        return Check::skip(
            id::ACCESS_KEYS,
            "not an IAM user: your credentials are a role session or federated, with no long-lived keys of their own",
        );
    }
    let mut req = iam.list_access_keys();
    if let Some(u) = user {
        req = req.user_name(u);
    }
    let out = match req.send().await {
        Ok(o) => o,
        Err(e) => {
            let why = match error_code(&e) {
                Some(c) if c.contains("AccessDenied") => {
                    format!("you may not call iam:ListAccessKeys on yourself ({c})")
                }
                Some(c) => format!("iam:ListAccessKeys failed ({c})"),
                None => aws_error("iam:ListAccessKeys", &e).message,
            };
            return Check::skip(id::ACCESS_KEYS, format!("key ages not checked: {why}"));
        }
    };
    let now_secs = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let mut active: Vec<(String, u64)> = out
        .access_key_metadata()
        .iter()
        .filter(|k| {
            k.status()
                .map(|s| s.as_str().eq_ignore_ascii_case("Active"))
                .unwrap_or(false)
        })
        .map(|k| {
            let days = k
                .create_date()
                .map(|d| ((now_secs - d.secs()).max(0) as u64) / 86_400)
                .unwrap_or(0);
            (
                secrets::mask_key_id(k.access_key_id().unwrap_or_default()),
                days,
            )
        })
        .collect();
    active.sort_by_key(|k| std::cmp::Reverse(k.1));
    let old: Vec<&(String, u64)> = active
        .iter()
        .filter(|(_, d)| *d > MAX_KEY_AGE_DAYS)
        .collect();
    let describe = |v: &[(String, u64)]| {
        v.iter()
            .map(|(k, d)| format!("{k} {d} days"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if old.is_empty() {
        return Check::pass(
            id::ACCESS_KEYS,
            if active.is_empty() {
                "no active access keys".to_string()
            } else {
                format!(
                    "{} active, none older than {MAX_KEY_AGE_DAYS} days ({})",
                    active.len(),
                    describe(&active)
                )
            },
        );
    }
    let owned: Vec<(String, u64)> = old.iter().map(|x| (*x).clone()).collect();
    let who = user
        .map(|u| format!(" --user-name {u}"))
        .unwrap_or_default();
    Check::warn(
        id::ACCESS_KEYS,
        format!(
            "{} active key{} older than {MAX_KEY_AGE_DAYS} days: {}",
            old.len(),
            if old.len() == 1 { "" } else { "s" },
            describe(&owned)
        ),
        format!(
            "rotate: `aws iam create-access-key{who}`, use the new key, then `aws iam update-access-key{who} --access-key-id OLD_KEY_ID --status Inactive` and `aws iam delete-access-key{who} --access-key-id OLD_KEY_ID`\n\
             better: switch to short-lived SSO credentials (`aws configure sso`) and delete the keys"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::checks::fixtures::*;
    use crate::doctor::Status;
    use aws_sdk_iam::operation::list_access_keys::{ListAccessKeysError, ListAccessKeysOutput};
    use aws_sdk_iam::types as iamt;
    use aws_smithy_mocks::{mock, mock_client};
    use aws_smithy_types::error::ErrorMetadata;

    #[tokio::test]
    async fn root_credentials_are_a_warning() {
        let rule = mock!(aws_sdk_sts::Client::get_caller_identity).then_output(|| {
            aws_sdk_sts::operation::get_caller_identity::GetCallerIdentityOutput::builder()
                .account(ACCOUNT)
                .arn(format!("arn:aws:iam::{ACCOUNT}:root"))
                .user_id(ACCOUNT)
                .build()
        });
        let sts = mock_client!(aws_sdk_sts, [&rule]);
        let (c, id) = identity_check(&sts).await;
        assert_eq!(c.status, Status::Warn);
        assert!(c.value.contains("ROOT"), "{}", c.value);
        assert!(c.fix.unwrap().contains("delete the root access keys"));
        assert_eq!(id.unwrap().account, ACCOUNT);
    }

    #[tokio::test]
    async fn an_active_key_older_than_90_days_is_a_warning_with_the_rotation_commands() {
        let now = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(400 * 86_400);
        let rule = mock!(aws_sdk_iam::Client::list_access_keys)
            .match_requests(|r| r.user_name() == Some("alice"))
            .then_output(|| {
                let key = |id: &str, days: i64, status: iamt::StatusType| {
                    iamt::AccessKeyMetadata::builder()
                        .access_key_id(id)
                        .status(status)
                        .create_date(aws_smithy_types::DateTime::from_secs(days * 86_400))
                        .build()
                };
                ListAccessKeysOutput::builder()
                    .access_key_metadata(key("AKIAOLDKEYEXAMPLE222", 100, iamt::StatusType::Active))
                    .access_key_metadata(key("AKIANEWKEYEXAMPLE333", 390, iamt::StatusType::Active))
                    .access_key_metadata(key("AKIADEADKEYEXAMPLE44", 1, iamt::StatusType::Inactive))
                    .build()
                    .unwrap()
            });
        let iam = mock_client!(aws_sdk_iam, [&rule]);
        let c = access_keys_check(&iam, &user(), now).await;
        assert_eq!(c.status, Status::Warn, "{c:?}");
        assert!(
            c.value.contains("1 active key older than 90 days"),
            "{}",
            c.value
        );
        assert!(
            c.value.contains("****************E222 300 days"),
            "{}",
            c.value
        );
        assert!(!c.value.contains("AKIAOLDKEY"), "{}", c.value);
        assert!(c
            .fix
            .unwrap()
            .contains("aws iam create-access-key --user-name alice"));
    }

    #[tokio::test]
    async fn key_age_is_skipped_with_a_note_when_not_permitted_and_for_role_sessions() {
        let rule = mock!(aws_sdk_iam::Client::list_access_keys).then_error(|| {
            ListAccessKeysError::generic(
                ErrorMetadata::builder()
                    .code("AccessDenied")
                    .message("not authorized to perform: iam:ListAccessKeys")
                    .build(),
            )
        });
        let iam = mock_client!(aws_sdk_iam, [&rule]);
        let c = access_keys_check(&iam, &user(), SystemTime::now()).await;
        assert_eq!(c.status, Status::Skip);
        assert!(c.value.contains("iam:ListAccessKeys"), "{}", c.value);
        assert!(c.value.contains("AccessDenied"), "{}", c.value);
        let c = access_keys_check(&iam, &session(), SystemTime::now()).await;
        assert_eq!(c.status, Status::Skip);
        assert!(c.value.contains("not an IAM user"));
        assert_eq!(rule.num_calls(), 1);
    }
}
