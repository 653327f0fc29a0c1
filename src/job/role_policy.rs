//! The execution role `sagetrain init --create-role` makes, derived from the project's settings:
//! its trust policy (SageMaker only, for the caller's account), its one inline permission
//! policy (what the job needs and nothing broader), and the semantic comparison of those
//! documents with what IAM holds. Pure: no I/O. The IAM calls are in `job::role_iam`.
//!
//! What the inline policy grants, from the settings:
//! - read (`s3:GetObject`, and `s3:ListBucket` limited by `s3:prefix`) on each S3 channel's
//!   prefix, on the prefix a local channel folder is uploaded to, and on the code prefix
//!   `sagetrain/code/` of the output bucket;
//! - write (`s3:PutObject`) under the output path and the checkpoint prefix, and read of the
//!   checkpoints (a job resumes from them);
//! - pulling the image from its ECR repository, and `ecr:GetAuthorizationToken` (which has no
//!   resource);
//! - the CloudWatch Logs actions on `/aws/sagemaker/TrainingJobs`, `cloudwatch:PutMetricData`
//!   in SageMaker's namespace only;
//! - `kms:Decrypt` and `kms:GenerateDataKey` on the KMS key when one is set;
//! - the EC2 network-interface actions when subnets are set;
//! - `secretsmanager:GetSecretValue` on each secret, and the SSM channel actions for remote
//!   debugging, when asked for.

use crate::config::{Source, Val, Violation};
use crate::data::manifest::{CODE_ROOT, DATA_ROOT};
use crate::job::secret::SecretRef;
use crate::job::settings::TrainSettings;
use crate::job::spec::validate_settings_at;
pub use crate::job::spec::Vpc;
pub use crate::refs::S3Uri;
use crate::refs::{channel_location, default_bucket, ChannelLocation, ImageRef};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The guide's name for the execution role.
pub const DEFAULT_ROLE_NAME: &str = "SageMaker-UNetTraining-ExecutionRole";
/// Where IAM's console puts service roles.
pub const DEFAULT_ROLE_PATH: &str = "/service-role/";
/// The name of the one inline policy sagetrain manages on the role.
pub const POLICY_NAME: &str = "sagetrain-execution";
/// The tag that marks a role as sagetrain's own: only such a role is ever changed.
pub const MANAGED_TAG: &str = "sagetrain:managed";
/// The tag naming the project folder the role was made for.
pub const PROJECT_TAG: &str = "sagetrain:project";
/// The largest inline policies of a role may be, whitespace not counted (IAM's quota).
pub const MAX_INLINE_POLICY_CHARS: usize = 10_240;
/// SageMaker's log group for training jobs, and its metric namespace.
const TRAINING_LOGS: &str = "/aws/sagemaker/TrainingJobs";
/// The actions a job behind subnets needs to place its network interfaces.
const EC2_DESCRIBE: &[&str] = &[
    "ec2:DescribeDhcpOptions",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeSecurityGroups",
    "ec2:DescribeSubnets",
    "ec2:DescribeVpcs",
];
const EC2_INTERFACES: &[&str] = &[
    "ec2:CreateNetworkInterfacePermission",
    "ec2:DeleteNetworkInterface",
    "ec2:DeleteNetworkInterfacePermission",
];
/// The Session Manager channels a remote-debugging session opens from inside the container.
pub const SSM_CHANNEL_ACTIONS: &[&str] = &[
    "ssmmessages:CreateControlChannel",
    "ssmmessages:CreateDataChannel",
    "ssmmessages:OpenControlChannel",
    "ssmmessages:OpenDataChannel",
];

/// The image the job pulls, as far as the policy is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageNeed {
    /// An ECR repository: its ARN's account, region and name.
    Ecr {
        account: String,
        region: String,
        repository: String,
    },
    /// An image of another registry: no ECR permission.
    Other,
    /// No image is set yet: any repository of the account in the region (with a warning).
    Unknown,
}

/// Everything the policies are derived from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleNeeds {
    pub partition: String,
    pub region: String,
    pub account: String,
    /// Prefixes the job reads (channels, the code prefix), with what each is for.
    pub reads: Vec<(String, S3Uri)>,
    pub output: S3Uri,
    /// An explicit checkpoint location; spot jobs' default is under the output path.
    pub checkpoint: Option<S3Uri>,
    pub image: ImageNeed,
    pub kms_key: Option<String>,
    pub vpc: Option<Vpc>,
    /// Secrets Manager secrets (ARNs) the job may read.
    pub secrets: Vec<String>,
    /// Remote debugging through SSM is allowed.
    pub remote_debug: bool,
}

/// The partition of a region (`aws`, `aws-cn`, `aws-us-gov`).
pub fn partition(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else {
        "aws"
    }
}

/// The role's ARN.
pub fn role_arn(partition: &str, account: &str, path: &str, name: &str) -> String {
    format!("arn:{partition}:iam::{account}:role{path}{name}")
}

/// IAM's rule for a role name: 1-64 of letters, digits and `+=,.@_-`.
pub fn check_role_name(name: &str) -> Result<(), String> {
    let ok = (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{name}` is not a role name: 1-64 of letters, digits and + = , . @ _ -"
        ))
    }
}

/// IAM's rule for a path: `/`, or `/` + segments + `/`, at most 512 characters.
pub fn check_role_path(path: &str) -> Result<(), String> {
    let ok = path.len() <= 512
        && path.starts_with('/')
        && path.ends_with('/')
        && !path.contains("//")
        && path.chars().all(|c| c.is_ascii_graphic());
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{path}` is not a role path: it starts and ends with `/`, e.g. /service-role/ or /"
        ))
    }
}

/// The value of the project tag: the folder's name, with what a tag value cannot hold made `-`
/// and cut to IAM's 256 characters.
pub fn project_tag_value(folder: &Path) -> String {
    let name = folder
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "project".into());
    let clean: String = name
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || c == ' ' || "_.:/=+-@".contains(c) {
                c
            } else {
                '-'
            }
        })
        .take(256)
        .collect();
    if clean.is_empty() {
        "project".into()
    } else {
        clean
    }
}

/// The role's tags.
pub fn role_tags(project: &str) -> Vec<(String, String)> {
    vec![
        (MANAGED_TAG.to_string(), "true".to_string()),
        (PROJECT_TAG.to_string(), project.to_string()),
    ]
}

/// What the settings need of the role. Every setting is checked as `train` checks it, except
/// that the image may be missing (the role is often made before the image is pushed).
pub fn needs_from_settings(
    s: &TrainSettings,
    cwd: &Path,
    region: &str,
    account: &str,
) -> Result<RoleNeeds, Vec<Violation>> {
    let mut v = validate_settings_at(s, cwd);
    if s.image.is_none() {
        v.retain(|x| x.what != "--image");
    }
    if !v.is_empty() {
        return Err(v);
    }
    let default_output = Val::new(
        format!("s3://{}/sagetrain/", default_bucket(region, account)),
        Source::Default,
    );
    let output_val = s.output_path.as_ref().unwrap_or(&default_output);
    let output = parsed(output_val)?;
    let mut reads = Vec::new();
    for (name, uri) in &s.channels {
        match channel_location(uri, cwd) {
            Ok(ChannelLocation::S3(u)) => reads.push((format!("channel {name}"), u)),
            Ok(ChannelLocation::Local(_)) => reads.push((
                format!("channel {name} (uploaded)"),
                S3Uri {
                    bucket: output.bucket.clone(),
                    key: format!("{DATA_ROOT}/{name}/"),
                },
            )),
            Err(rule) => return Err(vec![Violation::new(uri.source.name_for(Some(name)), rule)]),
        }
    }
    reads.push((
        "code".into(),
        S3Uri {
            bucket: output.bucket.clone(),
            key: format!("{CODE_ROOT}/"),
        },
    ));
    if let Some(src) = s.source.as_ref().filter(|v| v.value.starts_with("s3://")) {
        reads.push(("code (source)".into(), parsed(src)?));
    }
    let checkpoint = s.checkpoint_s3.as_ref().map(parsed).transpose()?;
    let image = match s.image.as_ref().map(|i| ImageRef::parse(&i.value)) {
        Some(Ok(ImageRef::Ecr {
            account: a,
            region: r,
            repository,
            ..
        })) => ImageNeed::Ecr {
            account: a.unwrap_or_else(|| account.to_string()),
            region: r.unwrap_or_else(|| region.to_string()),
            repository,
        },
        Some(Ok(ImageRef::Other(_))) => ImageNeed::Other,
        Some(Err(rule)) => {
            let img = s.image.as_ref().expect("parsed");
            return Err(vec![Violation::new(img.source.name_for(None), rule)]);
        }
        None => ImageNeed::Unknown,
    };
    let kms_key = match &s.kms_key {
        Some(k) if k.value.starts_with("alias/") || k.value.contains(":alias/") => {
            return Err(vec![Violation::new(
                k.source.name_for(None),
                format!(
                    "`{}` is a key alias, which cannot limit an IAM policy to its key: give the key's id or ARN (`aws kms describe-key --key-id {} --query KeyMetadata.Arn`)",
                    k.value, k.value
                ),
            )])
        }
        Some(k) => Some(k.value.clone()),
        None => None,
    };
    let mut secrets = Vec::new();
    for (name, id) in &s.secrets {
        match SecretRef::parse(&id.value) {
            Ok(r) => secrets.push(r.policy_resource(region, account)),
            Err(rule) => return Err(vec![Violation::new(id.source.name_for(Some(name)), rule)]),
        }
    }
    let vpc = match (&s.subnets, &s.security_groups) {
        (Some(sn), Some(sg)) => Some(Vpc {
            subnets: sn.value.clone(),
            security_groups: sg.value.clone(),
        }),
        _ => None,
    };
    Ok(RoleNeeds {
        partition: partition(region).to_string(),
        region: region.to_string(),
        account: account.to_string(),
        reads,
        output,
        checkpoint,
        image,
        kms_key,
        vpc,
        secrets,
        remote_debug: s.remote_debug.as_ref().is_some_and(|r| r.value),
    })
}

fn parsed(v: &Val<String>) -> Result<S3Uri, Vec<Violation>> {
    S3Uri::parse(&v.value).map_err(|rule| vec![Violation::new(v.source.name_for(None), rule)])
}

/// The trust policy: SageMaker may assume the role, for jobs of this account only (the
/// `aws:SourceAccount` condition guards against the confused deputy).
pub fn trust_policy(account: &str) -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "SageMakerAssumesThisRole",
            "Effect": "Allow",
            "Principal": {"Service": "sagemaker.amazonaws.com"},
            "Action": "sts:AssumeRole",
            "Condition": {"StringEquals": {"aws:SourceAccount": account}}
        }]
    })
}

/// A key prefix as an IAM pattern: everything under it.
fn under(key: &str) -> String {
    format!("{key}*")
}

/// The output prefix as a folder: SageMaker writes `<prefix>/<job>/...`.
fn folder(key: &str) -> String {
    if key.is_empty() || key.ends_with('/') {
        key.to_string()
    } else {
        format!("{key}/")
    }
}

/// One string, or a list when there are several (as people write policies).
fn one_or_list(items: Vec<String>) -> Value {
    if items.len() == 1 {
        Value::String(items.into_iter().next().expect("one"))
    } else {
        Value::Array(items.into_iter().map(Value::String).collect())
    }
}

fn statement(sid: &str, actions: &[&str], resources: Vec<String>) -> Map<String, Value> {
    let mut st = Map::new();
    st.insert("Sid".into(), sid.into());
    st.insert("Effect".into(), "Allow".into());
    st.insert(
        "Action".into(),
        one_or_list(actions.iter().map(|a| a.to_string()).collect()),
    );
    st.insert("Resource".into(), one_or_list(resources));
    st
}

/// The inline permission policy the settings need.
pub fn permission_policy(n: &RoleNeeds) -> Value {
    let p = &n.partition;
    let (r, a) = (&n.region, &n.account);
    let s3 = |bucket: &str, pattern: &str| format!("arn:{p}:s3:::{bucket}/{pattern}");
    // bucket -> key patterns read (objects) and listed (s3:prefix).
    let mut read: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (_, u) in &n.reads {
        read.entry(u.bucket.clone())
            .or_default()
            .insert(under(&u.key));
    }
    let out = folder(&n.output.key);
    // The checkpoints a spot job gets by default, `<output>/<job>/checkpoints/`, and an
    // explicit checkpoint location: read back when a job resumes.
    read.entry(n.output.bucket.clone())
        .or_default()
        .insert(format!("{out}*/checkpoints/*"));
    let mut write: BTreeSet<String> = BTreeSet::new();
    write.insert(s3(&n.output.bucket, &under(&out)));
    if let Some(c) = &n.checkpoint {
        read.entry(c.bucket.clone())
            .or_default()
            .insert(under(&c.key));
        write.insert(s3(&c.bucket, &under(&c.key)));
    }
    let mut statements = Vec::new();
    let objects: Vec<String> = read
        .iter()
        .flat_map(|(b, keys)| keys.iter().map(move |k| s3(b, k)))
        .collect();
    statements.push(statement("ReadInputData", &["s3:GetObject"], objects));
    for (i, (bucket, keys)) in read.iter().enumerate() {
        let mut st = statement(
            &format!("ListInputData{}", i + 1),
            &["s3:ListBucket"],
            vec![format!("arn:{p}:s3:::{bucket}")],
        );
        st.insert(
            "Condition".into(),
            json!({"StringLike": {"s3:prefix": one_or_list(keys.iter().cloned().collect())}}),
        );
        statements.push(st);
    }
    statements.push(statement(
        "WriteModelAndCheckpoints",
        &["s3:PutObject"],
        write.into_iter().collect(),
    ));
    let repository = match &n.image {
        ImageNeed::Ecr {
            account,
            region,
            repository,
        } => Some(format!(
            "arn:{p}:ecr:{region}:{account}:repository/{repository}"
        )),
        ImageNeed::Unknown => Some(format!("arn:{p}:ecr:{r}:{a}:repository/*")),
        ImageNeed::Other => None,
    };
    if let Some(repo) = repository {
        statements.push(statement(
            "PullTrainingImage",
            &[
                "ecr:BatchCheckLayerAvailability",
                "ecr:BatchGetImage",
                "ecr:GetDownloadUrlForLayer",
            ],
            vec![repo],
        ));
        statements.push(statement(
            "EcrLoginHasNoResource",
            &["ecr:GetAuthorizationToken"],
            vec!["*".into()],
        ));
    }
    statements.push(statement(
        "WriteTrainingLogs",
        &[
            "logs:CreateLogGroup",
            "logs:CreateLogStream",
            "logs:DescribeLogStreams",
            "logs:PutLogEvents",
        ],
        vec![format!("arn:{p}:logs:{r}:{a}:log-group:{TRAINING_LOGS}*")],
    ));
    let mut metrics = statement(
        "PublishTrainingMetrics",
        &["cloudwatch:PutMetricData"],
        vec!["*".into()],
    );
    metrics.insert(
        "Condition".into(),
        json!({"StringEquals": {"cloudwatch:namespace": TRAINING_LOGS}}),
    );
    statements.push(metrics);
    if let Some(key) = &n.kms_key {
        let arn = if key.starts_with("arn:") {
            key.clone()
        } else {
            format!("arn:{p}:kms:{r}:{a}:key/{key}")
        };
        statements.push(statement(
            "UseTheKmsKey",
            &["kms:Decrypt", "kms:GenerateDataKey"],
            vec![arn],
        ));
    }
    if let Some(vpc) = &n.vpc {
        let ec2 = |what: &str| format!("arn:{p}:ec2:{r}:{a}:{what}");
        statements.push(statement(
            "DescribeTheNetworkHasNoResource",
            EC2_DESCRIBE,
            vec!["*".into()],
        ));
        let mut placed: Vec<String> = vpc
            .subnets
            .iter()
            .map(|s| ec2(&format!("subnet/{s}")))
            .chain(
                vpc.security_groups
                    .iter()
                    .map(|g| ec2(&format!("security-group/{g}"))),
            )
            .collect();
        placed.push(ec2("network-interface/*"));
        statements.push(statement(
            "CreateNetworkInterfacesInTheSubnets",
            &["ec2:CreateNetworkInterface"],
            placed,
        ));
        statements.push(statement(
            "ManageTheNetworkInterfaces",
            EC2_INTERFACES,
            vec![ec2("network-interface/*")],
        ));
    }
    if !n.secrets.is_empty() {
        let mut secrets = n.secrets.clone();
        secrets.sort();
        secrets.dedup();
        statements.push(statement(
            "ReadTheJobSecrets",
            &["secretsmanager:GetSecretValue"],
            secrets,
        ));
    }
    if n.remote_debug {
        statements.push(statement(
            "RemoteDebuggingChannelsHaveNoResource",
            SSM_CHANNEL_ACTIONS,
            vec!["*".into()],
        ));
    }
    json!({
        "Version": "2012-10-17",
        "Statement": statements.into_iter().map(Value::Object).collect::<Vec<_>>(),
    })
}

/// The size IAM counts for an inline policy: its JSON without whitespace.
pub fn policy_size(doc: &Value) -> usize {
    serde_json::to_string(doc).map(|s| s.len()).unwrap_or(0)
}

/// A policy document as IAM returns it (URL-encoded JSON) or as written.
pub fn decode_document(text: &str) -> Result<Value, String> {
    let decoded = if text.trim_start().starts_with('{') {
        text.to_string()
    } else {
        percent_encoding::percent_decode_str(text)
            .decode_utf8()
            .map_err(|e| format!("the policy document is not UTF-8 once decoded: {e}"))?
            .into_owned()
    };
    serde_json::from_str(&decoded).map_err(|e| format!("the policy document is not JSON: {e}"))
}

/// A value that is one item or a list of them, as a sorted set of strings.
fn string_set(v: &Value, lowercase: bool) -> Value {
    let items: Vec<&Value> = match v {
        Value::Array(a) => a.iter().collect(),
        other => vec![other],
    };
    let set: BTreeSet<String> = items
        .into_iter()
        .map(|x| match x {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .map(|s| if lowercase { s.to_ascii_lowercase() } else { s })
        .collect();
    Value::Array(set.into_iter().map(Value::String).collect())
}

/// A statement with what IAM treats as equal made equal: no Sid; actions (case-insensitive)
/// and resources as sorted sets; principal and condition values as sorted sets.
fn normalize_statement(st: &Value) -> Value {
    let Some(obj) = st.as_object() else {
        return st.clone();
    };
    let mut out = Map::new();
    for (k, v) in obj {
        let nv = match k.as_str() {
            "Sid" => continue,
            "Action" | "NotAction" => string_set(v, true),
            "Resource" | "NotResource" => string_set(v, false),
            "Principal" | "NotPrincipal" => match v.as_object() {
                Some(p) => Value::Object(
                    p.iter()
                        .map(|(kind, val)| (kind.clone(), string_set(val, false)))
                        .collect(),
                ),
                None => v.clone(),
            },
            "Condition" => match v.as_object() {
                Some(ops) => Value::Object(
                    ops.iter()
                        .map(|(op, keys)| {
                            let keys = match keys.as_object() {
                                Some(ks) => Value::Object(
                                    ks.iter()
                                        .map(|(key, val)| {
                                            (key.to_ascii_lowercase(), string_set(val, false))
                                        })
                                        .collect(),
                                ),
                                None => keys.clone(),
                            };
                            (op.to_ascii_lowercase(), keys)
                        })
                        .collect(),
                ),
                None => v.clone(),
            },
            _ => v.clone(),
        };
        out.insert(k.clone(), nv);
    }
    // serde_json keeps insertion order: sort the keys so equal statements print the same.
    let mut sorted: Vec<(String, Value)> = out.into_iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    Value::Object(sorted.into_iter().collect())
}

fn statements_of(doc: &Value) -> Vec<Value> {
    match doc.get("Statement") {
        Some(Value::Array(a)) => a.clone(),
        Some(s @ Value::Object(_)) => vec![s.clone()],
        _ => vec![],
    }
}

/// A document in a form where IAM-equal documents are equal: its version and the set of its
/// normalized statements.
pub fn normalize(doc: &Value) -> Value {
    let set: BTreeSet<String> = statements_of(doc)
        .iter()
        .map(|s| normalize_statement(s).to_string())
        .collect();
    json!({
        "Version": doc.get("Version").cloned().unwrap_or(Value::Null),
        "Statement": set
            .into_iter()
            .map(|s| serde_json::from_str::<Value>(&s).expect("JSON we printed"))
            .collect::<Vec<_>>(),
    })
}

/// Do the two documents grant the same?
pub fn same_policy(a: &Value, b: &Value) -> bool {
    normalize(a) == normalize(b)
}

fn compact(v: &Value) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

/// The differences between what IAM holds and what is wanted, one line each: `+` a statement
/// to add, `-` one to remove, `~ Sid:` what changes in a statement of the same Sid (values
/// added to or removed from its Action and Resource, other fields old -> new).
pub fn differences(existing: &Value, wanted: &Value) -> Vec<String> {
    let mut lines = Vec::new();
    let (ev, wv) = (existing.get("Version"), wanted.get("Version"));
    if ev != wv {
        lines.push(format!(
            "~ Version: {} -> {}",
            ev.map(compact).unwrap_or_else(|| "none".into()),
            wv.map(compact).unwrap_or_else(|| "none".into())
        ));
    }
    let sid = |s: &Value| s.get("Sid").and_then(Value::as_str).map(str::to_string);
    let old: Vec<Value> = statements_of(existing);
    let new: Vec<Value> = statements_of(wanted);
    let norm_old: Vec<Value> = old.iter().map(normalize_statement).collect();
    let norm_new: Vec<Value> = new.iter().map(normalize_statement).collect();
    let mut old_used = vec![false; old.len()];
    // The same statement, whatever its Sid or order: no change.
    let mut pending = Vec::new();
    for (i, n) in norm_new.iter().enumerate() {
        match (0..old.len()).find(|&j| !old_used[j] && &norm_old[j] == n) {
            Some(j) => old_used[j] = true,
            None => pending.push(i),
        }
    }
    for i in pending {
        let matching = sid(&new[i]).and_then(|s| {
            (0..old.len()).find(|&j| !old_used[j] && sid(&old[j]).as_deref() == Some(&s))
        });
        match matching {
            Some(j) => {
                old_used[j] = true;
                let name = sid(&new[i]).unwrap_or_default();
                let (o, n) = (&norm_old[j], &norm_new[i]);
                let keys: BTreeSet<&String> = o
                    .as_object()
                    .into_iter()
                    .flat_map(|m| m.keys())
                    .chain(n.as_object().into_iter().flat_map(|m| m.keys()))
                    .collect();
                for k in keys {
                    let (a, b) = (o.get(k.as_str()), n.get(k.as_str()));
                    if a == b {
                        continue;
                    }
                    match (k.as_str(), a, b) {
                        (
                            "Action" | "NotAction" | "Resource" | "NotResource",
                            Some(Value::Array(a)),
                            Some(Value::Array(b)),
                        ) => {
                            // The wanted document's own spelling of the actions.
                            let shown = |v: &Value| v.as_str().unwrap_or_default().to_string();
                            let spelled: Vec<String> = match new[i].get(k.as_str()) {
                                Some(Value::Array(x)) => x.iter().map(shown).collect(),
                                Some(x) => vec![shown(x)],
                                None => vec![],
                            };
                            let spell = |lower: &str| {
                                spelled
                                    .iter()
                                    .find(|s| s.eq_ignore_ascii_case(lower))
                                    .cloned()
                                    .unwrap_or_else(|| lower.to_string())
                            };
                            for x in b.iter().filter(|x| !a.contains(x)) {
                                lines.push(format!("~ {name}: {k} + {}", spell(&shown(x))));
                            }
                            for x in a.iter().filter(|x| !b.contains(x)) {
                                lines.push(format!("~ {name}: {k} - {}", shown(x)));
                            }
                        }
                        // Shown as written, not normalized.
                        _ => lines.push(format!(
                            "~ {name}: {k}: {} -> {}",
                            old[j]
                                .get(k.as_str())
                                .map(compact)
                                .unwrap_or_else(|| "none".into()),
                            new[i]
                                .get(k.as_str())
                                .map(compact)
                                .unwrap_or_else(|| "none".into())
                        )),
                    }
                }
            }
            None => lines.push(format!("+ {}", compact(&new[i]))),
        }
    }
    for (j, used) in old_used.iter().enumerate() {
        if !used {
            lines.push(format!("- {}", compact(&old[j])));
        }
    }
    lines
}

/// The role of that name as IAM holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct ExistingRole {
    pub arn: String,
    /// Its trust policy, decoded.
    pub trust: Option<Value>,
    /// Its inline policy [`POLICY_NAME`], decoded, if it has one.
    pub policy: Option<Value>,
    pub tags: Vec<(String, String)>,
}

impl ExistingRole {
    fn tag(&self, key: &str) -> Option<&str> {
        self.tags
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    }
}

/// What to do to make the role what the settings need.
#[derive(Debug, Clone, PartialEq)]
pub enum Plan {
    /// No role of that name: create it, then put the inline policy.
    Create,
    /// The role grants exactly what is wanted.
    UpToDate,
    /// sagetrain's own role, to bring up to date: each `true` is a call to make.
    Update {
        trust: bool,
        policy: bool,
        tag: bool,
        trust_differences: Vec<String>,
        policy_differences: Vec<String>,
    },
    /// A role sagetrain did not create: never changed.
    Foreign {
        trust_differences: Vec<String>,
        policy_differences: Vec<String>,
    },
    /// sagetrain's role of another project folder: changing it would change that project's jobs.
    OtherProject { project: String },
}

fn doc_differences(existing: Option<&Value>, wanted: &Value) -> Vec<String> {
    match existing {
        Some(e) => differences(e, wanted),
        None => vec![format!(
            "+ the whole document: there is none yet ({} statements; `--dry-run` prints it)",
            statements_of(wanted).len()
        )],
    }
}

/// Decide what to call, from the role as it is and the documents wanted.
pub fn plan(existing: Option<&ExistingRole>, trust: &Value, policy: &Value, project: &str) -> Plan {
    let Some(r) = existing else {
        return Plan::Create;
    };
    let trust_ok = r.trust.as_ref().is_some_and(|t| same_policy(t, trust));
    let policy_ok = r.policy.as_ref().is_some_and(|p| same_policy(p, policy));
    let trust_differences = if trust_ok {
        vec![]
    } else {
        doc_differences(r.trust.as_ref(), trust)
    };
    let policy_differences = if policy_ok {
        vec![]
    } else {
        doc_differences(r.policy.as_ref(), policy)
    };
    if r.tag(MANAGED_TAG) != Some("true") {
        if trust_ok && policy_ok {
            // Already exactly what is wanted: nothing to change, so nothing is refused.
            return Plan::UpToDate;
        }
        return Plan::Foreign {
            trust_differences,
            policy_differences,
        };
    }
    match r.tag(PROJECT_TAG) {
        Some(p) if p != project => {
            return Plan::OtherProject {
                project: p.to_string(),
            }
        }
        _ => {}
    }
    let tag = r.tag(PROJECT_TAG).is_none();
    if trust_ok && policy_ok && !tag {
        return Plan::UpToDate;
    }
    Plan::Update {
        trust: !trust_ok,
        policy: !policy_ok,
        tag,
        trust_differences,
        policy_differences,
    }
}

/// One IAM call, as its operation and the AWS CLI command that makes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub operation: &'static str,
    pub command: String,
}

fn call(operation: &'static str, words: &[&str]) -> Call {
    Call {
        operation,
        command: words
            .iter()
            .map(|w| crate::ui::shell_word(w))
            .collect::<Vec<_>>()
            .join(" "),
    }
}

/// The calls a plan makes, as AWS CLI commands an administrator could run instead.
pub fn calls(
    plan: &Plan,
    name: &str,
    path: &str,
    trust: &Value,
    policy: &Value,
    tags: &[(String, String)],
) -> Vec<Call> {
    let (trust, policy) = (compact(trust), compact(policy));
    let tag_words: Vec<String> = tags
        .iter()
        .map(|(k, v)| format!("Key={k},Value={v}"))
        .collect();
    let put = call(
        "iam:PutRolePolicy",
        &[
            "aws",
            "iam",
            "put-role-policy",
            "--role-name",
            name,
            "--policy-name",
            POLICY_NAME,
            "--policy-document",
            &policy,
        ],
    );
    match plan {
        Plan::Create => {
            let mut words = vec![
                "aws",
                "iam",
                "create-role",
                "--role-name",
                name,
                "--path",
                path,
                "--assume-role-policy-document",
                &trust,
                "--tags",
            ];
            words.extend(tag_words.iter().map(String::as_str));
            vec![call("iam:CreateRole", &words), put]
        }
        Plan::Update {
            trust: t,
            policy: p,
            tag,
            ..
        } => {
            let mut out = Vec::new();
            if *t {
                out.push(call(
                    "iam:UpdateAssumeRolePolicy",
                    &[
                        "aws",
                        "iam",
                        "update-assume-role-policy",
                        "--role-name",
                        name,
                        "--policy-document",
                        &trust,
                    ],
                ));
            }
            if *p {
                out.push(put);
            }
            if *tag {
                let mut words = vec!["aws", "iam", "tag-role", "--role-name", name, "--tags"];
                words.extend(tag_words.iter().map(String::as_str));
                out.push(call("iam:TagRole", &words));
            }
            out
        }
        Plan::UpToDate | Plan::Foreign { .. } | Plan::OtherProject { .. } => vec![],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::settings::TrainArgs;

    const ACCOUNT: &str = "111122223333";

    fn settings(toml: &str, dir: &Path) -> TrainSettings {
        let path = dir.join("sagetrain.toml");
        let f = crate::config::LoadedFile::parse(&path, toml).unwrap();
        crate::job::settings::check_file(&f).unwrap();
        TrainSettings::layer(
            &Default::default(),
            &TrainArgs::default(),
            &|_| None,
            Some(&f),
        )
        .unwrap()
    }

    fn needs(toml: &str) -> RoleNeeds {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("data/val")).unwrap();
        needs_from_settings(
            &settings(toml, dir.path()),
            dir.path(),
            "eu-west-1",
            ACCOUNT,
        )
        .unwrap_or_else(|v| panic!("{v:?}"))
    }

    const FULL: &str = r#"
region = "eu-west-1"
image = "unet-vessels:latest"
output_path = "s3://models-bucket/unet"
kms_key = "1234abcd-12ab-34cd-56ef-1234567890ab"
subnets = ["subnet-0a1b"]
security_groups = ["sg-0c2d"]
[channels]
train = "s3://vessels-data/train/"
test = "s3://other-data/vessels/test"
val = "data/val"
"#;

    fn by_sid(doc: &Value, sid: &str) -> Value {
        statements_of(doc)
            .into_iter()
            .find(|s| s["Sid"] == sid)
            .unwrap_or_else(|| panic!("no statement {sid} in {doc:#}"))
    }

    fn list(v: &Value) -> Vec<String> {
        match v {
            Value::Array(a) => a.iter().map(|x| x.as_str().unwrap().to_string()).collect(),
            Value::String(s) => vec![s.clone()],
            _ => vec![],
        }
    }

    #[test]
    fn the_policy_grants_what_the_settings_need_and_nothing_broader() {
        let doc = permission_policy(&needs(FULL));
        assert_eq!(
            list(&by_sid(&doc, "ReadInputData")["Resource"]),
            [
                "arn:aws:s3:::models-bucket/sagetrain/code/*",
                "arn:aws:s3:::models-bucket/sagetrain/data/val/*",
                "arn:aws:s3:::models-bucket/unet/*/checkpoints/*",
                "arn:aws:s3:::other-data/vessels/test*",
                "arn:aws:s3:::vessels-data/train/*",
            ]
        );
        let list1 = by_sid(&doc, "ListInputData1");
        assert_eq!(list(&list1["Resource"]), ["arn:aws:s3:::models-bucket"]);
        assert_eq!(
            list(&list1["Condition"]["StringLike"]["s3:prefix"]),
            [
                "sagetrain/code/*",
                "sagetrain/data/val/*",
                "unet/*/checkpoints/*"
            ]
        );
        assert_eq!(
            list(&by_sid(&doc, "ListInputData2")["Condition"]["StringLike"]["s3:prefix"]),
            ["vessels/test*"]
        );
        assert_eq!(
            list(&by_sid(&doc, "WriteModelAndCheckpoints")["Resource"]),
            ["arn:aws:s3:::models-bucket/unet/*"]
        );
        assert_eq!(
            list(&by_sid(&doc, "PullTrainingImage")["Resource"]),
            ["arn:aws:ecr:eu-west-1:111122223333:repository/unet-vessels"]
        );
        assert_eq!(
            list(&by_sid(&doc, "UseTheKmsKey")["Resource"]),
            ["arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"]
        );
        assert_eq!(
            list(&by_sid(&doc, "CreateNetworkInterfacesInTheSubnets")["Resource"]),
            [
                "arn:aws:ec2:eu-west-1:111122223333:subnet/subnet-0a1b",
                "arn:aws:ec2:eu-west-1:111122223333:security-group/sg-0c2d",
                "arn:aws:ec2:eu-west-1:111122223333:network-interface/*",
            ]
        );
        // `*` only for the actions that have no resource; never on S3.
        for st in statements_of(&doc) {
            let actions = list(&st["Action"]);
            assert!(actions.iter().all(|a| a != "*" && !a.ends_with(":*")));
            if list(&st["Resource"]).contains(&"*".to_string()) {
                assert!(
                    actions.iter().all(|a| a == "ecr:GetAuthorizationToken"
                        || a == "cloudwatch:PutMetricData"
                        || a.starts_with("ec2:Describe")),
                    "{st}"
                );
            }
            if actions.iter().any(|a| a.starts_with("s3:")) {
                for r in list(&st["Resource"]) {
                    assert!(r.starts_with("arn:aws:s3:::") && r.len() > 14, "{r}");
                    assert!(!r.starts_with("arn:aws:s3:::*"), "{r}");
                }
            }
        }
        assert!(!doc.to_string().contains("AmazonSageMakerFullAccess"));
        assert!(policy_size(&doc) < MAX_INLINE_POLICY_CHARS);
    }

    #[test]
    fn without_optional_settings_there_is_no_kms_network_secret_or_ssm_statement() {
        let n = needs("region = \"eu-west-1\"\n");
        assert_eq!(n.image, ImageNeed::Unknown);
        let doc = permission_policy(&n);
        let text = doc.to_string();
        for absent in ["kms:", "ec2:", "secretsmanager:", "ssmmessages:"] {
            assert!(!text.contains(absent), "{absent} in {doc:#}");
        }
        // The default output bucket, and any repository of the account while no image is set.
        assert_eq!(
            list(&by_sid(&doc, "WriteModelAndCheckpoints")["Resource"]),
            ["arn:aws:s3:::sagemaker-eu-west-1-111122223333/sagetrain/*"]
        );
        assert_eq!(
            list(&by_sid(&doc, "PullTrainingImage")["Resource"]),
            ["arn:aws:ecr:eu-west-1:111122223333:repository/*"]
        );
    }

    #[test]
    fn each_secret_may_be_read_and_nothing_else_of_secrets_manager() {
        let mut n = needs(FULL);
        n.secrets = vec![
            "arn:aws:secretsmanager:eu-west-1:111122223333:secret:wandb-AbCdEf".into(),
            "arn:aws:secretsmanager:eu-west-1:111122223333:secret:db-123456".into(),
        ];
        let doc = permission_policy(&n);
        let st = by_sid(&doc, "ReadTheJobSecrets");
        assert_eq!(list(&st["Action"]), ["secretsmanager:GetSecretValue"]);
        assert_eq!(
            list(&st["Resource"]),
            [
                "arn:aws:secretsmanager:eu-west-1:111122223333:secret:db-123456",
                "arn:aws:secretsmanager:eu-west-1:111122223333:secret:wandb-AbCdEf",
            ]
        );
        let secret_actions: Vec<String> = statements_of(&doc)
            .iter()
            .flat_map(|s| list(&s["Action"]))
            .filter(|a| a.starts_with("secretsmanager:"))
            .collect();
        assert_eq!(secret_actions, ["secretsmanager:GetSecretValue"]);
    }

    /// `[secrets]` in the file: a name grants every ARN of that name, an ARN itself (its JSON
    /// key is not part of it).
    #[test]
    fn the_secrets_of_the_settings_are_the_ones_the_role_may_read() {
        let n = needs(&format!(
            "{FULL}\n[secrets]\nWANDB_API_KEY = \"sagetrain/wandb\"\nDB = \"arn:aws:secretsmanager:eu-west-1:111122223333:secret:db-123456:password\"\n"
        ));
        assert_eq!(
            n.secrets,
            [
                "arn:aws:secretsmanager:eu-west-1:111122223333:secret:db-123456",
                "arn:aws:secretsmanager:eu-west-1:111122223333:secret:sagetrain/wandb-??????",
            ]
        );
    }

    #[test]
    fn remote_debugging_adds_the_ssm_channel_actions() {
        let n = needs(FULL);
        assert!(!permission_policy(&n).to_string().contains("ssmmessages"));
        // `remote_debug = true` in the file is what turns them on.
        let n = needs(&format!("remote_debug = true\n{FULL}"));
        assert!(n.remote_debug);
        let st = by_sid(
            &permission_policy(&n),
            "RemoteDebuggingChannelsHaveNoResource",
        );
        assert_eq!(
            list(&st["Action"]),
            [
                "ssmmessages:CreateControlChannel",
                "ssmmessages:CreateDataChannel",
                "ssmmessages:OpenControlChannel",
                "ssmmessages:OpenDataChannel",
            ]
        );
        assert_eq!(list(&st["Resource"]), ["*"]);
    }

    #[test]
    fn the_trust_lets_only_sagemaker_assume_the_role_for_this_account() {
        let t = trust_policy(ACCOUNT);
        let st = &t["Statement"][0];
        assert_eq!(
            st["Principal"],
            json!({"Service": "sagemaker.amazonaws.com"})
        );
        assert_eq!(st["Action"], "sts:AssumeRole");
        assert_eq!(
            st["Condition"]["StringEquals"]["aws:SourceAccount"],
            ACCOUNT
        );
        assert!(crate::job::lookups::trusts_sagemaker(&t.to_string()));
    }

    #[test]
    fn an_alias_a_bad_setting_or_a_bad_name_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let s = settings("kms_key = \"alias/unet\"\n", dir.path());
        let v = needs_from_settings(&s, dir.path(), "eu-west-1", ACCOUNT).unwrap_err();
        assert!(v[0].rule.contains("alias"), "{v:?}");
        let s = settings("instance_type = \"g5.xlarge\"\n", dir.path());
        let v = needs_from_settings(&s, dir.path(), "eu-west-1", ACCOUNT).unwrap_err();
        assert!(v[0].rule.contains("ml.g5.xlarge"), "{v:?}");
        assert!(check_role_name(DEFAULT_ROLE_NAME).is_ok());
        assert!(check_role_name("bad name").is_err());
        assert!(check_role_name(&"a".repeat(65)).is_err());
        assert!(check_role_path("/service-role/").is_ok() && check_role_path("/").is_ok());
        for bad in ["service-role/", "/a", "/a//b/", ""] {
            assert!(check_role_path(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_project_tag_is_the_folder_name_made_valid() {
        assert_eq!(
            project_tag_value(Path::new("/home/me/unet-vessels")),
            "unet-vessels"
        );
        assert_eq!(project_tag_value(Path::new("/x/a#b(c)")), "a-b-c-");
        assert_eq!(project_tag_value(Path::new("/")), "project");
    }

    #[test]
    fn iam_equal_documents_are_the_same_policy() {
        let wanted = permission_policy(&needs(FULL));
        // IAM hands documents back URL-encoded, and people reorder and respell them.
        let mut reordered = wanted.clone();
        let sts = reordered["Statement"].as_array_mut().unwrap();
        sts.reverse();
        for st in sts.iter_mut() {
            if let Value::String(a) = &st["Action"] {
                st["Action"] = json!([a.to_ascii_uppercase()]);
            }
            st.as_object_mut().unwrap().remove("Sid");
        }
        let encoded = percent_encoding::utf8_percent_encode(
            &reordered.to_string(),
            percent_encoding::NON_ALPHANUMERIC,
        )
        .to_string();
        let back = decode_document(&encoded).unwrap();
        assert!(same_policy(&back, &wanted));
        assert!(differences(&back, &wanted).is_empty());
        assert!(decode_document("%7Bnot json").is_err());
    }

    #[test]
    fn a_new_channel_shows_as_the_values_it_adds() {
        let before = permission_policy(&needs(FULL));
        let after = permission_policy(&needs(&FULL.replace(
            "[channels]",
            "[channels]\nextra = \"s3://third-bucket/more/\"",
        )));
        assert!(!same_policy(&before, &after));
        let d = differences(&before, &after);
        assert!(
            d.contains(&"~ ReadInputData: Resource + arn:aws:s3:::third-bucket/more/*".to_string()),
            "{d:#?}"
        );
        // A bucket of its own: a new list statement (the buckets sort after the new one shift).
        assert!(
            d.iter()
                .any(|l| l.contains("third-bucket") && l.contains("ListInputData")),
            "{d:#?}"
        );
        // A statement that goes away, and a changed condition.
        let mut old = before.clone();
        old["Statement"].as_array_mut().unwrap().push(json!({"Sid": "Old", "Effect": "Allow", "Action": "s3:DeleteObject", "Resource": "arn:aws:s3:::x/*"}));
        let d = differences(&old, &before);
        assert_eq!(d.len(), 1);
        assert!(
            d[0].starts_with("- ") && d[0].contains("s3:DeleteObject"),
            "{d:?}"
        );
        let t1 = trust_policy("111111111111");
        let t2 = trust_policy(ACCOUNT);
        assert_eq!(
            differences(&t1, &t2),
            [
                r#"~ SageMakerAssumesThisRole: Condition: {"StringEquals":{"aws:SourceAccount":"111111111111"}} -> {"StringEquals":{"aws:SourceAccount":"111122223333"}}"#
            ]
        );
    }

    fn managed(trust: Value, policy: Value, project: &str) -> ExistingRole {
        ExistingRole {
            arn: "arn:aws:iam::111122223333:role/service-role/R".into(),
            trust: Some(trust),
            policy: Some(policy),
            tags: role_tags(project),
        }
    }

    #[test]
    fn the_plan_creates_updates_only_what_differs_and_never_touches_a_foreign_role() {
        let (t, p) = (trust_policy(ACCOUNT), permission_policy(&needs(FULL)));
        assert_eq!(plan(None, &t, &p, "unet"), Plan::Create);
        let r = managed(t.clone(), p.clone(), "unet");
        assert_eq!(plan(Some(&r), &t, &p, "unet"), Plan::UpToDate);
        let wider = permission_policy(&needs(&FULL.replace(
            "[channels]",
            "[channels]\nextra = \"s3://third-bucket/more/\"",
        )));
        match plan(Some(&r), &t, &wider, "unet") {
            Plan::Update {
                trust: false,
                policy: true,
                tag: false,
                policy_differences,
                ..
            } => {
                assert!(!policy_differences.is_empty())
            }
            other => panic!("{other:?}"),
        }
        let no_policy = ExistingRole {
            policy: None,
            ..r.clone()
        };
        assert!(matches!(
            plan(Some(&no_policy), &t, &p, "unet"),
            Plan::Update {
                policy: true,
                trust: false,
                ..
            }
        ));
        let foreign = ExistingRole {
            tags: vec![],
            ..r.clone()
        };
        match plan(Some(&foreign), &t, &wider, "unet") {
            Plan::Foreign {
                policy_differences,
                trust_differences,
            } => {
                assert!(trust_differences.is_empty() && !policy_differences.is_empty())
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            plan(Some(&r), &t, &p, "other-project"),
            Plan::OtherProject {
                project: "unet".into()
            }
        );
        let untagged_project = ExistingRole {
            tags: vec![(MANAGED_TAG.into(), "true".into())],
            ..r.clone()
        };
        assert!(matches!(
            plan(Some(&untagged_project), &t, &p, "unet"),
            Plan::Update {
                tag: true,
                trust: false,
                policy: false,
                ..
            }
        ));
    }

    #[test]
    fn the_calls_are_aws_cli_commands_with_the_documents() {
        let (t, p) = (trust_policy(ACCOUNT), permission_policy(&needs(FULL)));
        let c = calls(
            &Plan::Create,
            "R",
            "/service-role/",
            &t,
            &p,
            &role_tags("unet vessels"),
        );
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].operation, "iam:CreateRole");
        assert!(c[0].command.starts_with("aws iam create-role --role-name R --path /service-role/ --assume-role-policy-document '{"), "{}", c[0].command);
        assert!(c[0].command.ends_with("--tags Key=sagetrain:managed,Value=true 'Key=sagetrain:project,Value=unet vessels'"), "{}", c[0].command);
        assert!(c[1].command.contains(
            "put-role-policy --role-name R --policy-name sagetrain-execution --policy-document '{"
        ));
        assert!(calls(&Plan::UpToDate, "R", "/", &t, &p, &[]).is_empty());
        assert_eq!(crate::ui::shell_word("it's"), "'it'\\''s'");
    }
}
