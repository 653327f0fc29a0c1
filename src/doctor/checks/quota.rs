//! The account's instance quota of the configured type(s) (Service Quotas), and when one is 0,
//! the types of the same family that have room.

use crate::doctor::report::{id, Check};
use crate::error::Kind;
use crate::job::lookups;
use crate::job::quota::{family_with_room, quota_name, SERVICE_CODE};

/// The quota check of `types` (the configured type, or the preferences).
pub async fn quota_check(
    client: &aws_sdk_servicequotas::Client,
    types: &[String],
    spot: bool,
    count: i64,
    region: &str,
) -> Check {
    let (_, values) = match lookups::training_quotas(client).await {
        Ok(listed) => listed,
        Err(why) => {
            return Check::warn(
                id::QUOTA,
                format!("could not be read: {why}"),
                "allow servicequotas:ListServiceQuotas and servicequotas:GetServiceQuota (examples/iam/developer-policy.json) to have the quota checked before a submit",
            )
        }
    };
    let mut lines = Vec::new();
    let mut short = Vec::new();
    for t in types {
        let name = quota_name(t, spot);
        match values.get(&name) {
            Some((code, v)) => {
                lines.push(format!("{t}: {v} instances"));
                if *v < count as f64 {
                    short.push((t, name, code, *v));
                }
            }
            None => lines.push(format!("{t}: no quota `{name}` listed")),
        }
    }
    let value = lines.join("; ");
    let Some((t, name, code, v)) = short.first() else {
        return Check::pass(id::QUOTA, value).with_source("servicequotas:ListServiceQuotas");
    };
    // With preferences, one type with room is enough for the job to start.
    if short.len() < types.len() {
        return Check::warn(
            id::QUOTA,
            format!("{value}; {t} has no room and is left out of the preferences"),
            format!("aws service-quotas request-service-quota-increase --service-code {SERVICE_CODE} --quota-code {code} --desired-value {count} --region {region}"),
        );
    }
    let family = family_with_room(&values, t, spot);
    let others = if family.is_empty() {
        String::new()
    } else {
        format!(
            "\nor use a type of the same family with room: {}",
            family
                .iter()
                .map(|(t, v)| format!("{t} ({v})"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    Check::fail(
        id::QUOTA,
        Kind::Aws,
        format!("{value}: `{name}` is {v}, and the job needs {count}; train refuses it"),
        format!(
            "aws service-quotas request-service-quota-increase --service-code {SERVICE_CODE} --quota-code {code} --desired-value {count} --region {region}{others}"
        ),
    )
    .with_source("servicequotas:ListServiceQuotas")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::Status;
    use aws_sdk_servicequotas::operation::list_service_quotas::ListServiceQuotasOutput;
    use aws_sdk_servicequotas::types::ServiceQuota;
    use aws_smithy_mocks::{mock, mock_client};

    fn listed(q: &[(&str, f64)]) -> ListServiceQuotasOutput {
        let mut out = ListServiceQuotasOutput::builder();
        for (i, (name, v)) in q.iter().enumerate() {
            out = out.quotas(
                ServiceQuota::builder()
                    .service_code("sagemaker")
                    .quota_code(format!("L-{i}"))
                    .quota_name(*name)
                    .value(*v)
                    .build(),
            );
        }
        out.build()
    }

    #[tokio::test]
    async fn a_quota_of_0_fails_naming_the_family_with_room_and_room_passes() {
        let answer = || {
            listed(&[
                ("ml.g5.xlarge for training job usage", 0.0),
                ("ml.g5.2xlarge for training job usage", 2.0),
                ("ml.p3.2xlarge for training job usage", 1.0),
            ])
        };
        let list = mock!(aws_sdk_servicequotas::Client::list_service_quotas)
            .match_requests(|r| r.service_code() == Some("sagemaker"))
            .then_output(answer);
        let client = mock_client!(aws_sdk_servicequotas, [&list]);
        let c = quota_check(&client, &["ml.g5.xlarge".into()], false, 1, "eu-west-1").await;
        assert_eq!(c.status, Status::Fail, "{c:?}");
        crate::testing::assert_contains_all(
            &format!("{}\n{}", c.value, c.fix.unwrap_or_default()),
            &[
                "`ml.g5.xlarge for training job usage` is 0",
                "--quota-code L-0 --desired-value 1 --region eu-west-1",
                "same family with room: ml.g5.2xlarge (2)",
            ],
        );

        let list = mock!(aws_sdk_servicequotas::Client::list_service_quotas).then_output(answer);
        let client = mock_client!(aws_sdk_servicequotas, [&list]);
        let c = quota_check(&client, &["ml.p3.2xlarge".into()], false, 1, "eu-west-1").await;
        assert_eq!(c.status, Status::Pass, "{c:?}");
        assert_eq!(c.value, "ml.p3.2xlarge: 1 instances");
    }
}
