//! The account's quota for the job's instance types (Service Quotas, service code `sagemaker`,
//! one quota a type: `<type> for training job usage`, or `... for spot training job usage`),
//! and the verdict before a submit: the job fits, a preference without room is dropped, or the
//! submit is refused with the numbers and the command that asks for more. Pure: the lookups
//! are in `job::lookups`.

use std::collections::BTreeMap;

/// The Service Quotas service code of SageMaker.
pub const SERVICE_CODE: &str = "sagemaker";

/// The name of the quota that limits `instance_type` in training jobs.
pub fn quota_name(instance_type: &str, spot: bool) -> String {
    if spot {
        format!("{instance_type} for spot training job usage")
    } else {
        format!("{instance_type} for training job usage")
    }
}

/// One type's quota as found: its code and applied value.
#[derive(Debug, Clone, PartialEq)]
pub struct Quota {
    pub code: String,
    pub value: f64,
}

/// What the submit needs of each type and what the account has.
#[derive(Debug, Clone, PartialEq)]
pub struct Ask {
    /// The types in order (one, or the preferences).
    pub types: Vec<String>,
    /// Instances one job of the request holds.
    pub count: i64,
    /// Jobs that run at once (1; a tuning job's parallel trials).
    pub concurrent: i64,
    pub spot: bool,
    pub region: String,
}

/// What the quota check decided.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Verdict {
    /// Preferences without room, dropped from the request (with `notes`).
    pub dropped: Vec<String>,
    /// Said on stderr: the quota line of each type, and why a type was dropped.
    pub notes: Vec<String>,
    /// The job cannot start: what to say, and the command that asks for more.
    pub refusal: Option<(String, String)>,
}

/// Decide from the quotas found (`None`: not found, not checked) and the instances running
/// jobs and warm pools already hold (`in_use`, by type).
pub fn verdict(
    ask: &Ask,
    quotas: &BTreeMap<String, Option<Quota>>,
    in_use: &BTreeMap<String, i64>,
) -> Verdict {
    let need = ask.count * ask.concurrent;
    let mut v = Verdict::default();
    let mut short = Vec::new();
    for t in &ask.types {
        let name = quota_name(t, ask.spot);
        let Some(Some(q)) = quotas.get(t) else {
            continue;
        };
        let used = in_use.get(t).copied().unwrap_or(0);
        let room = (q.value.floor() as i64 - used).max(0);
        let held = if used > 0 {
            format!(", of which running jobs and warm pools hold {used}")
        } else {
            String::new()
        };
        v.notes.push(format!(
            "quota `{name}` in {}: {} instances{held}; this job needs {need}",
            ask.region, q.value
        ));
        if room < need {
            short.push((t.clone(), name, q.clone(), used, room));
        }
    }
    let multi = ask.types.len() > 1;
    if multi && short.len() < ask.types.len() {
        for (t, name, _, _, room) in &short {
            v.dropped.push(t.clone());
            v.notes.push(format!(
                "{t} dropped from the instance preferences: `{name}` leaves room for {room}, the job needs {need}"
            ));
        }
        return v;
    }
    if let Some((t, name, q, used, room)) = short.first() {
        let what = if multi {
            "none of the instance types has room".to_string()
        } else {
            format!("{t} has no room")
        };
        let held = if *used > 0 {
            format!(" ({used} held by running jobs and warm pools)")
        } else {
            String::new()
        };
        let message = format!(
            "{what}: the account's quota `{name}` in {} is {} instances{held}, leaving {room}; this job needs {need}",
            ask.region, q.value
        );
        let desired = (need + used).max(1);
        let hint = format!(
            "ask for more: aws service-quotas request-service-quota-increase --service-code {SERVICE_CODE} --quota-code {} --desired-value {desired} --region {}\n\
             or pick a type with room (`sagetrain doctor` shows the quota of the configured type), or wait for running jobs and warm pools (`sagetrain pool list`)",
            q.code, ask.region
        );
        v.refusal = Some((message, hint));
    }
    v
}

/// The other types of `instance_type`'s family (`ml.g5` of `ml.g5.xlarge`) whose quota is at
/// least 1, with it, smallest first by name; `values` as listed (name -> (code, value)).
pub fn family_with_room(
    values: &BTreeMap<String, (String, f64)>,
    instance_type: &str,
    spot: bool,
) -> Vec<(String, f64)> {
    let family = instance_type
        .rsplit_once('.')
        .map_or(instance_type, |(f, _)| f);
    let suffix = quota_name("", spot);
    let mut out: Vec<(String, f64)> = values
        .iter()
        .filter_map(|(name, (_, v))| {
            let t = name.strip_suffix(&suffix)?;
            (t != instance_type && t.rsplit_once('.').map(|(f, _)| f) == Some(family) && *v >= 1.0)
                .then(|| (t.to_string(), *v))
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ask(types: &[&str], count: i64) -> Ask {
        Ask {
            types: types.iter().map(|t| t.to_string()).collect(),
            count,
            concurrent: 1,
            spot: false,
            region: "eu-west-1".into(),
        }
    }

    fn quotas(q: &[(&str, Option<f64>)]) -> BTreeMap<String, Option<Quota>> {
        q.iter()
            .map(|(t, v)| {
                (
                    t.to_string(),
                    v.map(|value| Quota {
                        code: format!("L-{}", t.len()),
                        value,
                    }),
                )
            })
            .collect()
    }

    #[test]
    fn quota_names_are_the_services() {
        assert_eq!(
            quota_name("ml.p3.2xlarge", false),
            "ml.p3.2xlarge for training job usage"
        );
        assert_eq!(
            quota_name("ml.g5.xlarge", true),
            "ml.g5.xlarge for spot training job usage"
        );
    }

    #[test]
    fn a_quota_of_0_refuses_with_the_numbers_and_the_increase_command() {
        let v = verdict(
            &ask(&["ml.p3.2xlarge"], 1),
            &quotas(&[("ml.p3.2xlarge", Some(0.0))]),
            &BTreeMap::new(),
        );
        let (message, hint) = v.refusal.unwrap();
        assert_eq!(
            message,
            "ml.p3.2xlarge has no room: the account's quota `ml.p3.2xlarge for training job usage` in eu-west-1 is 0 instances, leaving 0; this job needs 1"
        );
        assert!(hint.starts_with("ask for more: aws service-quotas request-service-quota-increase --service-code sagemaker --quota-code L-13 --desired-value 1 --region eu-west-1"), "{hint}");
    }

    #[test]
    fn what_running_jobs_hold_is_subtracted_and_tuning_multiplies() {
        let q = quotas(&[("ml.g5.xlarge", Some(4.0))]);
        let used = BTreeMap::from([("ml.g5.xlarge".to_string(), 3)]);
        let v = verdict(&ask(&["ml.g5.xlarge"], 2), &q, &used);
        let (message, hint) = v.refusal.unwrap();
        assert!(message.contains("is 4 instances (3 held by running jobs and warm pools), leaving 1; this job needs 2"), "{message}");
        assert!(hint.contains("--desired-value 5"), "{hint}");
        assert!(verdict(&ask(&["ml.g5.xlarge"], 1), &q, &used)
            .refusal
            .is_none());
        let mut tune = ask(&["ml.g5.xlarge"], 1);
        tune.concurrent = 5;
        assert!(verdict(&tune, &q, &BTreeMap::new()).refusal.is_some());
    }

    #[test]
    fn a_preference_without_room_is_dropped_and_all_without_room_refuses() {
        let q = quotas(&[("ml.g5.2xlarge", Some(0.0)), ("ml.g6.2xlarge", Some(2.0))]);
        let v = verdict(
            &ask(&["ml.g5.2xlarge", "ml.g6.2xlarge"], 1),
            &q,
            &BTreeMap::new(),
        );
        assert_eq!(v.dropped, ["ml.g5.2xlarge"]);
        assert!(v.refusal.is_none());
        assert!(v
            .notes
            .iter()
            .any(|n| n.starts_with("ml.g5.2xlarge dropped from the instance preferences")));
        let v = verdict(
            &ask(&["ml.g5.2xlarge", "ml.g6.2xlarge"], 3),
            &q,
            &BTreeMap::new(),
        );
        assert!(v
            .refusal
            .unwrap()
            .0
            .starts_with("none of the instance types has room"));
    }

    #[test]
    fn the_family_of_a_type_with_room() {
        let listed: BTreeMap<String, (String, f64)> = [
            ("ml.g5.xlarge for training job usage", 0.0),
            ("ml.g5.2xlarge for training job usage", 2.0),
            ("ml.g5.4xlarge for training job usage", 0.0),
            ("ml.g5.2xlarge for spot training job usage", 8.0),
            ("ml.g6.xlarge for training job usage", 4.0),
        ]
        .into_iter()
        .map(|(n, v)| (n.to_string(), ("L-1".to_string(), v)))
        .collect();
        assert_eq!(
            family_with_room(&listed, "ml.g5.xlarge", false),
            [("ml.g5.2xlarge".to_string(), 2.0)]
        );
        assert_eq!(
            family_with_room(&listed, "ml.g5.xlarge", true),
            [("ml.g5.2xlarge".to_string(), 8.0)]
        );
    }

    #[test]
    fn a_quota_not_found_is_not_checked() {
        let v = verdict(
            &ask(&["ml.g5.xlarge"], 64),
            &quotas(&[("ml.g5.xlarge", None)]),
            &BTreeMap::new(),
        );
        assert_eq!(v, Verdict::default());
    }
}
