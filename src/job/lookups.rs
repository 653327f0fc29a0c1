//! Read-only lookups that turn settings into the values of the request: the caller's identity,
//! the execution role, the image digest, the output bucket, and the input prefixes.

use crate::aws::{aws_error, error_code, Aws};
use crate::config::{Source, Val};
use crate::error::{Error, Kind, Result};
use crate::job::quota::Quota;
use crate::job::remembered::Remembered;
use crate::refs::{default_bucket, ecr_registry, ImageRef, ImageVersion, S3Uri};
use std::collections::BTreeMap;

/// Who the caller is.
#[derive(Debug, Clone)]
pub struct Identity {
    pub account: String,
    pub arn: String,
}

pub async fn identity(aws: &Aws) -> Result<Identity> {
    identity_with(&aws.sts()).await
}

/// [`identity`] with a given STS client.
pub async fn identity_with(sts: &aws_sdk_sts::Client) -> Result<Identity> {
    let out = sts
        .get_caller_identity()
        .send()
        .await
        .map_err(|e| aws_error("sts:GetCallerIdentity", &e))?;
    Ok(Identity {
        account: out.account().unwrap_or_default().to_string(),
        arn: out.arn().unwrap_or_default().to_string(),
    })
}

/// The trust policy an execution role needs.
pub const SAGEMAKER_TRUST: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"sagemaker.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;

/// The `Allow` statements of a (possibly URL-encoded) policy document; none if it is not JSON.
fn allow_statements(policy_document: &str) -> Vec<serde_json::Value> {
    let text = if policy_document.trim_start().starts_with('{') {
        policy_document.to_string()
    } else {
        percent_encoding::percent_decode_str(policy_document)
            .decode_utf8_lossy()
            .into_owned()
    };
    let Ok(doc) = serde_json::from_str::<serde_json::Value>(&text) else {
        return Vec::new();
    };
    let statements = match &doc["Statement"] {
        serde_json::Value::Array(a) => a.clone(),
        s @ serde_json::Value::Object(_) => vec![s.clone()],
        _ => vec![],
    };
    statements
        .into_iter()
        .filter(|st| st["Effect"].as_str() == Some("Allow"))
        .collect()
}

/// A policy value that is one string or a list of them.
fn as_list(v: &serde_json::Value) -> Vec<String> {
    match v {
        serde_json::Value::String(s) => vec![s.clone()],
        serde_json::Value::Array(a) => a
            .iter()
            .filter_map(|x| x.as_str().map(str::to_string))
            .collect(),
        _ => vec![],
    }
}

/// Does this (possibly URL-encoded) trust policy let SageMaker assume the role?
pub fn trusts_sagemaker(policy_document: &str) -> bool {
    allow_statements(policy_document).iter().any(|st| {
        as_list(&st["Action"])
            .iter()
            .any(|a| matches!(a.as_str(), "sts:AssumeRole" | "sts:*" | "*"))
            && as_list(&st["Principal"]["Service"])
                .iter()
                .any(|s| s == "sagemaker.amazonaws.com")
    })
}

/// The services a trust policy lets assume the role (`Allow` statements), for messages.
pub fn trusted_services(policy_document: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for st in allow_statements(policy_document) {
        for (kind, v) in st["Principal"].as_object().into_iter().flatten() {
            for value in as_list(v) {
                let item = if kind == "Service" {
                    value
                } else {
                    format!("{kind} {value}")
                };
                if !out.contains(&item) {
                    out.push(item);
                }
            }
        }
    }
    out
}

/// Does the role's name look like a SageMaker execution role?
pub fn looks_like_execution_role(name: &str) -> bool {
    name.to_ascii_lowercase().contains("sagemaker")
}

/// A role the account holds, for discovery.
#[derive(Debug, Clone)]
pub struct RoleInfo {
    pub name: String,
    pub arn: String,
    pub trusts_sagemaker: bool,
}

/// From the caller's ARN, the name of the role it assumed (`assumed-role/NAME/session`).
pub fn assumed_role_name(caller_arn: &str) -> Option<&str> {
    let rest = caller_arn.split(":assumed-role/").nth(1)?;
    rest.split('/').next()
}

async fn get_role(iam: &aws_sdk_iam::Client, name: &str) -> Result<Option<RoleInfo>> {
    match iam.get_role().role_name(name).send().await {
        Ok(out) => {
            let role = out.role();
            Ok(role.map(|r| RoleInfo {
                name: r.role_name().to_string(),
                arn: r.arn().to_string(),
                trusts_sagemaker: r
                    .assume_role_policy_document()
                    .map(trusts_sagemaker)
                    .unwrap_or(false),
            }))
        }
        Err(e) if error_code(&e).as_deref() == Some("NoSuchEntity") => Ok(None),
        Err(e) => Err(aws_error("iam:GetRole", &e)),
    }
}

pub const ROLE_HINT: &str = "create one with least privilege from your settings: sagetrain init --create-role (it sets `role` in sagetrain.toml)\n\
or set the execution role: --role NAME_OR_ARN, `export SAGEMAKER_ROLE=arn:aws:iam::ACCOUNT:role/NAME`, or `role = \"NAME\"` in sagetrain.toml\n\
to create one, see examples/iam/ (its trust policy must allow sagemaker.amazonaws.com)";

/// Resolve a role given by name or ARN. A name is looked up so that its path is kept.
pub async fn role_given(aws: &Aws, role: &Val<String>) -> Result<Val<String>> {
    if role.value.starts_with("arn:") {
        return Ok(role.clone());
    }
    match get_role(&aws.iam(), &role.value).await? {
        Some(r) => {
            if !r.trusts_sagemaker {
                return Err(Error::aws(format!(
                    "the execution role `{}` ({}) does not trust SageMaker: its trust policy does not let sagemaker.amazonaws.com assume it",
                    r.name, r.arn
                ))
                .with_hint(format!(
                    "let SageMaker assume it: aws iam update-assume-role-policy --role-name {} --policy-document '{SAGEMAKER_TRUST}'\n\
                     (this replaces the trust policy: add any other principal the role needs; the same policy is examples/iam/execution-role-trust-policy.json)",
                    r.name
                )));
            }
            Ok(Val::new(
                r.arn,
                Source::Lookup(format!(
                    "iam:GetRole `{}` from {}",
                    role.value,
                    role.source.name_for(None)
                )),
            ))
        }
        None => Err(Error::aws(format!(
            "the execution role `{}` (from {}) does not exist in this account",
            role.value,
            role.source.name_for(None)
        ))
        .with_hint(ROLE_HINT)),
    }
}

/// Find the execution role when none is given.
pub async fn role_discovered(aws: &Aws, caller: &Identity) -> Result<Val<String>> {
    discover_role_with(&aws.iam(), caller).await?.into_val()
}

/// [`role_discovered`] with a given IAM client.
pub async fn role_discovered_with(
    iam: &aws_sdk_iam::Client,
    caller: &Identity,
) -> Result<Val<String>> {
    discover_role_with(iam, caller).await?.into_val()
}

/// What the execution-role discovery found (an AWS error is the `Err` of the call instead).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoleDiscovery {
    /// One role: its ARN and why it is the one.
    Found { arn: String, why: String },
    /// Several roles trust SageMaker and are named like an execution role: their ARNs.
    Several(Vec<String>),
    /// None fits: the reason, and the roles that trust SageMaker but are not named like one.
    Missing {
        reason: String,
        candidates: Vec<String>,
    },
}

impl RoleDiscovery {
    /// The role as a setting, or the usage error `train` and `doctor` show (candidates in its
    /// details, the fix in its hint).
    pub fn into_val(self) -> Result<Val<String>> {
        let candidates = |arns: &[String]| arns.iter().map(|a| format!("candidate: {a}")).collect();
        match self {
            RoleDiscovery::Found { arn, why } => Ok(Val::new(arn, Source::Lookup(why))),
            RoleDiscovery::Missing {
                reason,
                candidates: c,
            } => Err(Error::usage(reason)
                .with_details(candidates(&c))
                .with_hint(ROLE_HINT)),
            RoleDiscovery::Several(arns) => Err(Error::usage(format!(
                "no execution role given, and {} roles could be it",
                arns.len()
            ))
            .with_details(candidates(&arns))
            .with_hint(format!(
                "choose one: export SAGEMAKER_ROLE={} (or --role, or `role` in sagetrain.toml)",
                arns[0]
            ))),
        }
    }
}

/// Find the execution role: the caller's own role if it trusts SageMaker, else the only role
/// that trusts SageMaker and is named like an execution role.
pub async fn discover_role(aws: &Aws, caller: &Identity) -> Result<RoleDiscovery> {
    discover_role_with(&aws.iam(), caller).await
}

/// [`discover_role`] with a given IAM client.
pub async fn discover_role_with(
    iam: &aws_sdk_iam::Client,
    caller: &Identity,
) -> Result<RoleDiscovery> {
    // 1. The caller is itself an assumed role that SageMaker may assume (e.g. in a notebook).
    if let Some(name) = assumed_role_name(&caller.arn) {
        if let Ok(Some(r)) = get_role(iam, name).await {
            if r.trusts_sagemaker {
                return Ok(RoleDiscovery::Found {
                    arn: r.arn,
                    why: "your own role, which trusts sagemaker.amazonaws.com".into(),
                });
            }
        }
    }
    // 2. The account's roles that trust SageMaker and are named like an execution role.
    let mut trusting = Vec::new();
    let mut pages = iam.list_roles().into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| {
            let mut err = aws_error("iam:ListRoles", &e);
            if err.kind == Kind::Aws {
                err.hint = Some(format!(
                    "sagetrain could not list roles to find the execution role; {ROLE_HINT}"
                ));
            }
            err
        })?;
        for r in page.roles() {
            if r.assume_role_policy_document()
                .map(trusts_sagemaker)
                .unwrap_or(false)
            {
                trusting.push(RoleInfo {
                    name: r.role_name().to_string(),
                    arn: r.arn().to_string(),
                    trusts_sagemaker: true,
                });
            }
        }
    }
    let named: Vec<&RoleInfo> = trusting
        .iter()
        .filter(|r| looks_like_execution_role(&r.name))
        .collect();
    let arns = |roles: &[&RoleInfo]| roles.iter().map(|r| r.arn.clone()).collect();
    Ok(match named.as_slice() {
        [one] => RoleDiscovery::Found {
            arn: one.arn.clone(),
            why: "the only role in the account that trusts sagemaker.amazonaws.com and is named like an execution role".into(),
        },
        [] => RoleDiscovery::Missing {
            reason: if trusting.is_empty() {
                "no execution role given, and no role in the account trusts sagemaker.amazonaws.com".to_string()
            } else {
                "no execution role given, and none of the roles that trust sagemaker.amazonaws.com is named like a SageMaker execution role".to_string()
            },
            candidates: trusting.iter().map(|r| r.arn.clone()).collect(),
        },
        many => RoleDiscovery::Several(arns(many)),
    })
}

/// The names of the account's ECR repositories in the region, sorted.
pub async fn ecr_repositories(ecr: &aws_sdk_ecr::Client) -> Result<Vec<String>> {
    let mut names = Vec::new();
    let mut pages = ecr.describe_repositories().into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| aws_error("ecr:DescribeRepositories", &e))?;
        names.extend(
            page.repositories()
                .iter()
                .filter_map(|r| r.repository_name().map(str::to_string)),
        );
    }
    names.sort();
    Ok(names)
}

/// The tagged images of an ECR repository: each image's tags and when it was pushed (seconds
/// since the epoch, 0 if unknown). None if the repository could not be read.
pub async fn ecr_tagged_images(
    ecr: &aws_sdk_ecr::Client,
    repo: &str,
) -> Option<Vec<(Vec<String>, i64)>> {
    let out = ecr
        .describe_images()
        .repository_name(repo)
        .filter(
            aws_sdk_ecr::types::DescribeImagesFilter::builder()
                .tag_status(aws_sdk_ecr::types::TagStatus::Tagged)
                .build(),
        )
        .send()
        .await
        .ok()?;
    Some(
        out.image_details()
            .iter()
            .map(|d| {
                (
                    d.image_tags().to_vec(),
                    d.image_pushed_at().map(|t| t.secs()).unwrap_or(0),
                )
            })
            .collect(),
    )
}

/// Resolve the image: check an ECR image exists and pin its digest.
pub async fn image(
    aws: &Aws,
    image: &Val<String>,
    pin: bool,
    region: &str,
) -> Result<(Val<String>, Vec<String>)> {
    image_with(&aws.ecr(), image, pin, region).await
}

/// [`image`] with a given ECR client.
pub async fn image_with(
    ecr: &aws_sdk_ecr::Client,
    image: &Val<String>,
    pin: bool,
    region: &str,
) -> Result<(Val<String>, Vec<String>)> {
    let (uri, notes, _) = image_found_with(ecr, image, pin, region).await?;
    Ok((uri, notes))
}

/// An ECR image as [`image_found_with`] found it: where it is, and the manifest
/// ecr:BatchGetImage gave (which a local run pulls from).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundImage {
    /// The account of the registry (empty when ECR named none).
    pub registry_id: String,
    /// `ACCOUNT.dkr.ecr.REGION.amazonaws.com`.
    pub registry: String,
    pub repository: String,
    /// The tag it was found by, if it was.
    pub tag: Option<String>,
    /// The manifest's digest (of an index, when the image is one).
    pub digest: String,
    pub manifest: String,
}

/// [`image_with`], and the image found when it is in ECR.
pub async fn image_found_with(
    ecr: &aws_sdk_ecr::Client,
    image: &Val<String>,
    pin: bool,
    region: &str,
) -> Result<(Val<String>, Vec<String>, Option<FoundImage>)> {
    let parsed = ImageRef::parse(&image.value)
        .map_err(|rule| Error::usage(format!("{}: {rule}", image.source.name_for(None))))?;
    let (account, img_region, repository, version) = match parsed {
        ImageRef::Other(uri) => {
            return Ok((
                Val::new(uri, image.source.clone()),
                vec!["the image is not in ECR: it is used as given, not checked or pinned".into()],
                None,
            ))
        }
        ImageRef::Ecr {
            account,
            region: r,
            repository,
            version,
        } => (account, r, repository, version),
    };
    let mut notes = Vec::new();
    if let Some(r) = &img_region {
        if r != region {
            notes.push(format!(
                "the image is in {r} but the job runs in {region}: SageMaker pulls training images from the job's region"
            ));
        }
    }
    let id = match &version {
        ImageVersion::Tag(t) => aws_sdk_ecr::types::ImageIdentifier::builder()
            .image_tag(t)
            .build(),
        ImageVersion::Digest(d) => aws_sdk_ecr::types::ImageIdentifier::builder()
            .image_digest(d)
            .build(),
    };
    // One request gives the digest and the manifest the platform check reads.
    let mut req = ecr
        .batch_get_image()
        .repository_name(&repository)
        .image_ids(id)
        .set_accepted_media_types(Some(
            crate::image::platform::ACCEPTED
                .iter()
                .map(|s| s.to_string())
                .collect(),
        ));
    if let Some(a) = &account {
        req = req.registry_id(a);
    }
    let where_ = format!(
        "in ECR ({} in {})",
        account.as_deref().unwrap_or("your account"),
        img_region.as_deref().unwrap_or(region)
    );
    let out = match req.send().await {
        Ok(o) => o,
        Err(e) => {
            return Err(match error_code(&e).as_deref() {
                Some("RepositoryNotFoundException") => Error::aws(format!(
                    "the ECR repository `{repository}` (from {}) does not exist {where_}",
                    image.source.name_for(None)
                ))
                .with_hint(format!(
                    "push the image, which creates the repository: sagetrain image push CONTEXT --repo {repository} --region {region} (see examples/README.md)"
                )),
                _ => aws_error("ecr:BatchGetImage", &e),
            });
        }
    };
    let v = match &version {
        ImageVersion::Tag(t) => format!("tag `{t}`"),
        ImageVersion::Digest(d) => format!("digest `{d}`"),
    };
    let Some(found) = out.images().first() else {
        // A missing tag or digest is a failure of the batch, not an error of the call.
        let failure = out.failures().first();
        let code = failure
            .and_then(|f| f.failure_code())
            .map(|c| c.as_str().to_string());
        return Err(match code.as_deref() {
            None | Some("ImageNotFound") => {
                let tags = list_tags(ecr, &repository, account.as_deref()).await;
                let mut err = Error::aws(format!(
                    "the image {v} does not exist in the ECR repository `{repository}` {where_}"
                ))
                .with_hint(format!(
                    "push it (sagetrain image push CONTEXT --repo {repository} --tag TAG) or choose an existing tag with --image {repository}:TAG"
                ));
                if !tags.is_empty() {
                    err.details = vec![format!("tags in the repository: {}", tags.join(", "))];
                }
                err
            }
            Some(c) => Error::aws(format!(
                "ecr:BatchGetImage could not read the image {v} of the ECR repository `{repository}` {where_}: {c}{}",
                failure
                    .and_then(|f| f.failure_reason())
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default()
            ))
            .with_hint(format!(
                "check --image (from {}), e.g. {repository}:TAG or {repository}@sha256:DIGEST",
                image.source.name_for(None)
            )),
        });
    };
    let registry_id = found
        .registry_id()
        .map(str::to_string)
        .or(account)
        .unwrap_or_default();
    let registry = ecr_registry(&registry_id, img_region.as_deref().unwrap_or(region));
    let digest = found
        .image_id()
        .and_then(|i| i.image_digest())
        .unwrap_or_default()
        .to_string();
    // SageMaker runs linux/amd64 only: a wrong platform is an error, an unchecked one a note.
    let manifest = found.image_manifest().unwrap_or_default();
    if !digest.is_empty() {
        let registry = Some(registry_id.as_str()).filter(|r| !r.is_empty());
        notes.extend(
            crate::image::platform::verify(ecr, registry, &repository, &digest, manifest).await?,
        );
    }
    let uri = match (&version, pin) {
        (ImageVersion::Digest(d), _) => format!("{registry}/{repository}@{d}"),
        (ImageVersion::Tag(_), true) if !digest.is_empty() => {
            format!("{registry}/{repository}@{digest}")
        }
        (ImageVersion::Tag(t), _) => format!("{registry}/{repository}:{t}"),
    };
    let how = match &version {
        ImageVersion::Tag(t) if pin => {
            format!("ecr:BatchGetImage, tag `{t}` pinned to its digest")
        }
        ImageVersion::Tag(t) => format!("ecr:BatchGetImage, tag `{t}`"),
        ImageVersion::Digest(_) => "ecr:BatchGetImage".to_string(),
    };
    let found = FoundImage {
        registry_id,
        registry,
        repository,
        tag: match version {
            ImageVersion::Tag(t) => Some(t),
            ImageVersion::Digest(_) => None,
        },
        digest,
        manifest: manifest.to_string(),
    };
    Ok((Val::new(uri, Source::Lookup(how)), notes, Some(found)))
}

async fn list_tags(
    ecr: &aws_sdk_ecr::Client,
    repository: &str,
    account: Option<&str>,
) -> Vec<String> {
    let mut req = ecr
        .list_images()
        .repository_name(repository)
        .max_results(20);
    if let Some(a) = account {
        req = req.registry_id(a);
    }
    match req.send().await {
        Ok(o) => {
            let mut t: Vec<String> = o
                .image_ids()
                .iter()
                .filter_map(|i| i.image_tag().map(str::to_string))
                .collect();
            t.sort();
            t.dedup();
            t
        }
        Err(_) => Vec::new(),
    }
}

/// Where the bucket is, from a HeadBucket answer (also present on its redirect errors).
pub async fn bucket_region(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
) -> Result<Option<Option<String>>> {
    match s3.head_bucket().bucket(bucket).send().await {
        Ok(o) => Ok(Some(o.bucket_region().map(str::to_string))),
        Err(e) => {
            if let aws_smithy_runtime_api::client::result::SdkError::ServiceError(se) = &e {
                let status = se.raw().status().as_u16();
                let region = se
                    .raw()
                    .headers()
                    .get("x-amz-bucket-region")
                    .map(str::to_string);
                match status {
                    404 => return Ok(None),
                    301 | 400 if region.is_some() => return Ok(Some(region)),
                    403 => {
                        return Err(Error::aws(format!(
                            "s3:HeadBucket on `{bucket}`: access denied (the bucket belongs to another account, or your credentials may not read it)"
                        ))
                        .with_hint("use a bucket of your own account in the job's region (--output-path), or ask for s3:ListBucket on it"))
                    }
                    _ => {}
                }
            }
            Err(aws_error("s3:HeadBucket", &e))
        }
    }
}

pub fn wrong_region(bucket: &str, bucket_region: &str, region: &str, what: &str) -> Error {
    Error::aws(format!(
        "the bucket `{bucket}` ({what}) is in {bucket_region}, but the job runs in {region}; SageMaker needs the job's buckets in its own region"
    ))
    .with_hint(format!(
        "run the job in {bucket_region} (--region {bucket_region}) or use a bucket in {region}"
    ))
}

/// Resolve the output path; the default bucket is created when missing (not in a dry run).
pub async fn output_path(
    aws: &Aws,
    given: Option<&Val<String>>,
    account: &str,
    region: &str,
    dry_run: bool,
) -> Result<(Val<String>, Vec<String>)> {
    output_path_with(&aws.s3(), given, account, region, dry_run).await
}

/// [`output_path`] with a given S3 client.
pub async fn output_path_with(
    s3: &aws_sdk_s3::Client,
    given: Option<&Val<String>>,
    account: &str,
    region: &str,
    dry_run: bool,
) -> Result<(Val<String>, Vec<String>)> {
    let mut notes = Vec::new();
    if let Some(g) = given {
        let uri = S3Uri::parse(&g.value)
            .map_err(|r| Error::usage(format!("{}: {r}", g.source.name_for(None))))?;
        match bucket_region(s3, &uri.bucket).await? {
            None => {
                return Err(Error::aws(format!(
                    "the output bucket `{}` (from {}) does not exist",
                    uri.bucket,
                    g.source.name_for(None)
                ))
                .with_hint(format!(
                    "create it: aws s3 mb s3://{} --region {region}; or omit --output-path to use the default bucket",
                    uri.bucket
                )))
            }
            Some(Some(r)) if r != region => {
                return Err(wrong_region(&uri.bucket, &r, region, "output path"))
            }
            Some(_) => {}
        }
        return Ok((g.clone(), notes));
    }
    let bucket = default_bucket(region, account);
    let uri = format!("s3://{bucket}/sagetrain/");
    match bucket_region(s3, &bucket).await? {
        Some(Some(r)) if r != region => {
            return Err(wrong_region(&bucket, &r, region, "default output bucket"))
        }
        Some(_) => {}
        None if dry_run => notes.push(format!(
            "the default bucket {bucket} does not exist yet; it would be created"
        )),
        None => {
            let mut req = s3.create_bucket().bucket(&bucket);
            if region != "us-east-1" {
                req = req.create_bucket_configuration(
                    aws_sdk_s3::types::CreateBucketConfiguration::builder()
                        .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::from(
                            region,
                        ))
                        .build(),
                );
            }
            match req.send().await {
                Ok(_) => notes.push(format!("created the default bucket {bucket} in {region}")),
                Err(e) if error_code(&e).as_deref() == Some("BucketAlreadyOwnedByYou") => {}
                Err(e) => return Err(aws_error("s3:CreateBucket", &e)),
            }
        }
    }
    Ok((
        Val::new(
            uri,
            Source::Lookup("default bucket sagemaker-REGION-ACCOUNT".into()),
        ),
        notes,
    ))
}

/// [`output_path`] for `train`: the default bucket, once found or created, is remembered for
/// [`remembered::BUCKET_LIFETIME`](crate::job::remembered::BUCKET_LIFETIME) and not looked up
/// again within it. A given output path is checked every time.
pub async fn output_path_remembered(
    aws: &Aws,
    given: Option<&Val<String>>,
    account: &str,
    region: &str,
    dry_run: bool,
    memo: &crate::job::remembered::Remembered,
) -> Result<(Val<String>, Vec<String>)> {
    let bucket = default_bucket(region, account);
    if given.is_none() && memo.bucket_exists(&bucket, region) {
        return Ok((
            Val::new(
                format!("s3://{bucket}/sagetrain/"),
                Source::Lookup(
                    "default bucket sagemaker-REGION-ACCOUNT, found within the hour (--refresh checks again)"
                        .into(),
                ),
            ),
            Vec::new(),
        ));
    }
    let (path, notes) = output_path(aws, given, account, region, dry_run).await?;
    // A dry run that found no default bucket created none: a note says so.
    if given.is_none() && (!dry_run || notes.is_empty()) {
        memo.remember_bucket(&bucket, region);
    }
    Ok((path, notes))
}

/// Check that an input prefix exists and holds at least one object.
pub async fn check_channel(aws: &Aws, name: &str, uri: &Val<String>, region: &str) -> Result<()> {
    check_channel_with(&aws.s3(), name, uri, region).await
}

/// [`check_channel`] with a given S3 client.
pub async fn check_channel_with(
    client: &aws_sdk_s3::Client,
    name: &str,
    uri: &Val<String>,
    region: &str,
) -> Result<()> {
    let s3 = S3Uri::parse(&uri.value)
        .map_err(|r| Error::usage(format!("{}: {r}", uri.source.name_for(Some(name)))))?;
    let res = client
        .list_objects_v2()
        .bucket(&s3.bucket)
        .prefix(&s3.key)
        .max_keys(1)
        .send()
        .await;
    match res {
        Ok(o) if o.key_count().unwrap_or(0) > 0 || !o.contents().is_empty() => Ok(()),
        Ok(_) => Err(Error::aws(format!(
            "channel `{name}`: {} holds no objects (from {})",
            uri.value,
            uri.source.name_for(Some(name))
        ))
        .with_hint(format!(
            "upload the data first: aws s3 sync ./data/{name} {}",
            uri.value
        ))),
        Err(e) => {
            if let aws_smithy_runtime_api::client::result::SdkError::ServiceError(se) = &e {
                if let Some(r) = se.raw().headers().get("x-amz-bucket-region") {
                    if r != region {
                        return Err(wrong_region(
                            &s3.bucket,
                            r,
                            region,
                            &format!("channel `{name}`"),
                        ));
                    }
                }
            }
            if error_code(&e).as_deref() == Some("NoSuchBucket") {
                return Err(Error::aws(format!(
                    "channel `{name}`: the bucket `{}` does not exist ({})",
                    s3.bucket, uri.value
                ))
                .with_hint("fix the URI, or create the bucket and upload the data"));
            }
            Err(aws_error("s3:ListObjectsV2", &e))
        }
    }
}

/// `--secret NAME=SECRET_ID`: the secret's ARN, from secretsmanager:DescribeSecret (which reads
/// the secret's metadata, never its value). Gives NAME and what the job's variable holds.
pub async fn secret(
    aws: &Aws,
    name: &str,
    r: &Val<crate::job::secret::SecretRef>,
    region: &str,
) -> Result<(String, String)> {
    secret_with(&aws.secrets(), name, r, region).await
}

/// [`secret`] with a given Secrets Manager client.
pub async fn secret_with(
    client: &aws_sdk_secretsmanager::Client,
    name: &str,
    r: &Val<crate::job::secret::SecretRef>,
    region: &str,
) -> Result<(String, String)> {
    let what = format!("secret {name} ({})", r.source.name_for(Some(name)));
    let id = &r.value.id;
    if let Some(other) = r.value.arn_region().filter(|o| *o != region) {
        return Err(Error::usage(format!(
            "{what}: `{id}` is in {other}; the job runs in {region}"
        ))
        .with_hint(format!(
            "replicate it into the job's region (aws secretsmanager replicate-secret-to-regions --secret-id {id} --add-replica-regions Region={region}) and give that ARN, or run the job in {other}"
        )));
    }
    let sent = client.describe_secret().secret_id(id).send().await;
    match sent {
        Ok(d) if d.deleted_date().is_some() => Err(Error::aws(format!(
            "{what}: `{id}` is scheduled for deletion, and a job could not read it"
        ))
        .with_hint(format!(
            "restore it (aws secretsmanager restore-secret --secret-id {id}) or name another secret"
        ))),
        Ok(d) => match d.arn() {
            Some(arn) => Ok((name.to_string(), r.value.env_value(arn))),
            None => Err(Error::aws(format!(
                "{what}: secretsmanager:DescribeSecret gave no ARN for `{id}`"
            ))),
        },
        Err(e) => match error_code(&e).as_deref() {
            Some("ResourceNotFoundException") => Err(Error::aws(format!(
                "{what}: there is no secret `{id}` in Secrets Manager in {region}"
            ))
            .with_hint(format!(
                "create it from a file that holds the token (never on the command line): aws secretsmanager create-secret --region {region} --name {id} --secret-string file://token.txt"
            ))),
            Some("AccessDeniedException") => Err(Error::aws(format!(
                "{what}: you may not secretsmanager:DescribeSecret `{id}` (AccessDenied); train checks that the secret exists without reading it"
            ))
            .with_hint(
                "ask for secretsmanager:DescribeSecret on your secrets (examples/iam/developer-policy.json grants it on sagetrain/*); the value is read only by the job's execution role",
            )),
            _ => Err(aws_error("secretsmanager:DescribeSecret", &e)),
        },
    }
}

/// The account's quota of each of `types` (by name: `<type> for [spot ]training job usage`):
/// remembered values, else GetServiceQuota for a remembered code, else one listing of the
/// SageMaker quotas (whose codes are remembered for the next types). A type without a quota in
/// the answer is `None`. `Err` says why nothing could be read (a warning, never a refusal).
pub async fn quotas(
    client: &aws_sdk_servicequotas::Client,
    memo: &Remembered,
    scope: &str,
    types: &[String],
    spot: bool,
) -> std::result::Result<BTreeMap<String, Option<Quota>>, String> {
    use crate::job::quota::{quota_name, SERVICE_CODE};
    let mut found = BTreeMap::new();
    let mut missing = Vec::new();
    for t in types {
        match memo.quota_value(scope, &quota_name(t, spot)) {
            Some((code, value)) => {
                found.insert(t.clone(), Some(Quota { code, value }));
            }
            None => missing.push(t.clone()),
        }
    }
    if missing.is_empty() {
        return Ok(found);
    }
    let why = |_op: &str, e: &dyn std::fmt::Display| e.to_string();
    let codes = match memo.quota_codes(scope) {
        Some(c) => c,
        None => {
            let (codes, values) = match training_quotas(client).await {
                Ok(listed) => listed,
                Err(e) => {
                    // Not asked again for a while: the submit goes on without it.
                    memo.remember_quota_listing(scope, &BTreeMap::new(), &BTreeMap::new());
                    return Err(why("ListServiceQuotas", &e));
                }
            };
            memo.remember_quota_listing(scope, &codes, &values);
            for t in std::mem::take(&mut missing) {
                let name = quota_name(&t, spot);
                match values.get(&name) {
                    Some((code, value)) => {
                        found.insert(
                            t,
                            Some(Quota {
                                code: code.clone(),
                                value: *value,
                            }),
                        );
                    }
                    None => {
                        found.insert(t, None);
                    }
                }
            }
            return Ok(found);
        }
    };
    let asks = missing.iter().map(|t| {
        let name = quota_name(t, spot);
        let code = codes.get(&name).cloned();
        async move {
            let Some(code) = code else {
                return Ok((t.clone(), None));
            };
            let out = client
                .get_service_quota()
                .service_code(SERVICE_CODE)
                .quota_code(&code)
                .send()
                .await
                .map_err(|e| {
                    why(
                        "GetServiceQuota",
                        &crate::aws::aws_error("servicequotas:GetServiceQuota", &e).message,
                    )
                })?;
            let value = out.quota().and_then(|q| q.value());
            if let Some(v) = value {
                memo.remember_quota_value(scope, &name, &code, v);
            }
            Ok::<_, String>((t.clone(), value.map(|value| Quota { code, value })))
        }
    });
    for r in futures::future::join_all(asks).await {
        let (t, q) = r?;
        found.insert(t, q);
    }
    Ok(found)
}

/// Every SageMaker training quota of the account, page by page (ListServiceQuotas): name ->
/// code, and name -> (code, applied value) for those with a value.
pub async fn training_quotas(
    client: &aws_sdk_servicequotas::Client,
) -> std::result::Result<(BTreeMap<String, String>, BTreeMap<String, (String, f64)>), String> {
    let mut codes = BTreeMap::new();
    let mut values = BTreeMap::new();
    let mut pages = client
        .list_service_quotas()
        .service_code(crate::job::quota::SERVICE_CODE)
        .max_results(100)
        .into_paginator()
        .items()
        .send();
    while let Some(q) = pages.next().await {
        let q = q.map_err(|e| aws_error("servicequotas:ListServiceQuotas", &e).message)?;
        if let (Some(name), Some(code)) = (q.quota_name(), q.quota_code()) {
            if name.ends_with("training job usage") {
                codes.insert(name.to_string(), code.to_string());
                if let Some(v) = q.value() {
                    values.insert(name.to_string(), (code.to_string(), v));
                }
            }
        }
    }
    Ok((codes, values))
}

/// The on-demand training price of `instance_type` in `region`, USD an hour: remembered for a
/// day, else the Price List (pricing:GetProducts). `Ok(None)`: the Price List has none.
pub async fn price(
    client: &aws_sdk_pricing::Client,
    memo: &Remembered,
    region: &str,
    instance_type: &str,
) -> std::result::Result<Option<f64>, String> {
    use aws_sdk_pricing::types::{Filter, FilterType};
    if let Some(p) = memo.price(region, instance_type) {
        return p;
    }
    let mut ask = client
        .get_products()
        .service_code(crate::job::cost::SERVICE_CODE)
        .max_results(10);
    for (field, value) in crate::job::cost::filters(region, instance_type) {
        ask = ask.filters(
            Filter::builder()
                .r#type(FilterType::TermMatch)
                .field(field)
                .value(value)
                .build()
                .map_err(|e| e.to_string())?,
        );
    }
    let out = match ask.send().await {
        Ok(out) => out,
        Err(e) => {
            let why = aws_error("pricing:GetProducts", &e).message;
            memo.remember_price(region, instance_type, Err(&why));
            return Err(why);
        }
    };
    let hourly = out
        .price_list()
        .iter()
        .find_map(|p| crate::job::cost::hourly_usd(p));
    memo.remember_price(region, instance_type, Ok(hourly));
    Ok(hourly)
}

/// The instances of each type that running jobs and available warm pools hold now
/// (ListTrainingJobs of each, then DescribeTrainingJob of the jobs found).
pub async fn instances_in_use(sm: &aws_sdk_sagemaker::Client) -> Result<BTreeMap<String, i64>> {
    use aws_sdk_sagemaker::types::{TrainingJobStatus, WarmPoolResourceStatus};
    let (running, pools) = tokio::join!(
        sm.list_training_jobs()
            .status_equals(TrainingJobStatus::InProgress)
            .max_results(100)
            .send(),
        sm.list_training_jobs()
            .warm_pool_status_equals(WarmPoolResourceStatus::Available)
            .max_results(100)
            .send(),
    );
    let mut names: Vec<String> = Vec::new();
    for (out, only_pools) in [(running, false), (pools, true)] {
        let out = out.map_err(|e| aws_error("sagemaker:ListTrainingJobs", &e))?;
        for j in out.training_job_summaries() {
            let pool = j.warm_pool_status().and_then(|w| w.status())
                == Some(&WarmPoolResourceStatus::Available);
            let running = j.training_job_status() == Some(&TrainingJobStatus::InProgress);
            let wanted = if only_pools { pool } else { running };
            if wanted {
                if let Some(n) = j.training_job_name() {
                    if !names.iter().any(|x| x == n) {
                        names.push(n.to_string());
                    }
                }
            }
        }
    }
    let described = futures::future::join_all(
        names
            .iter()
            .map(|n| sm.describe_training_job().training_job_name(n).send()),
    )
    .await;
    let mut used = BTreeMap::new();
    for d in described {
        let d = d.map_err(|e| aws_error("sagemaker:DescribeTrainingJob", &e))?;
        let Some(rc) = d.resource_config() else {
            continue;
        };
        if let Some(t) = rc.instance_type().or(rc.selected_instance_type()) {
            let n = rc
                .instance_count()
                .or(rc.selected_instance_count())
                .unwrap_or(1);
            *used.entry(t.as_str().to_string()).or_insert(0) += i64::from(n);
        }
    }
    Ok(used)
}

/// A training job's description.
pub type Describe = aws_sdk_sagemaker::operation::describe_training_job::DescribeTrainingJobOutput;

/// DescribeTrainingJob, with "not found" (a ValidationException) made clear.
pub async fn describe(
    sm: &aws_sdk_sagemaker::Client,
    job: &str,
) -> std::result::Result<Describe, crate::aws::errors::CallError> {
    let sent = sm
        .describe_training_job()
        .training_job_name(job)
        .send()
        .await;
    crate::aws::errors::found(sent, "sagemaker:DescribeTrainingJob", || not_found(job))
}

pub fn not_found(job: &str) -> Error {
    Error::aws(format!(
        "training job `{job}` not found in this account and region"
    ))
    .with_hint("check the name and --region; `sagetrain list` shows recent jobs")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `init` reads the outcome; `train` and `doctor` get the same setting or error as before.
    #[test]
    fn a_role_discovery_is_a_setting_or_an_error_naming_the_candidates() {
        let found = RoleDiscovery::Found {
            arn: "arn:aws:iam::111122223333:role/R".into(),
            why: "your own role".into(),
        };
        let v = found.into_val().unwrap();
        assert_eq!(v.value, "arn:aws:iam::111122223333:role/R");
        assert_eq!(v.source.to_string(), "lookup: your own role");
        let arns = vec!["arn:a".to_string(), "arn:b".to_string()];
        let e = RoleDiscovery::Several(arns).into_val().unwrap_err();
        assert_eq!(
            e.message,
            "no execution role given, and 2 roles could be it"
        );
        assert_eq!(e.details, ["candidate: arn:a", "candidate: arn:b"]);
        assert!(e.hint.unwrap().contains("export SAGEMAKER_ROLE=arn:a"));
        let e = RoleDiscovery::Missing {
            reason: "none".into(),
            candidates: vec!["arn:c".into()],
        }
        .into_val()
        .unwrap_err();
        assert_eq!((e.message.as_str(), e.details.len()), ("none", 1));
        assert_eq!(e.hint.as_deref(), Some(ROLE_HINT));
    }

    #[test]
    fn trust_policies() {
        let doc = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"sagemaker.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
        assert!(trusts_sagemaker(doc));
        let encoded =
            percent_encoding::utf8_percent_encode(doc, percent_encoding::NON_ALPHANUMERIC)
                .to_string();
        assert!(trusts_sagemaker(&encoded));
        let list = r#"{"Statement":{"Effect":"Allow","Principal":{"Service":["ec2.amazonaws.com","sagemaker.amazonaws.com"]},"Action":["sts:AssumeRole"]}}"#;
        assert!(trusts_sagemaker(list));
        let other = r#"{"Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
        assert!(!trusts_sagemaker(other));
        let deny = r#"{"Statement":[{"Effect":"Deny","Principal":{"Service":"sagemaker.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
        assert!(!trusts_sagemaker(deny));
        assert!(!trusts_sagemaker("not json"));
        assert_eq!(
            trusted_services(other),
            vec!["ec2.amazonaws.com".to_string()]
        );
        assert_eq!(
            trusted_services(list),
            vec![
                "ec2.amazonaws.com".to_string(),
                "sagemaker.amazonaws.com".to_string()
            ]
        );
        assert!(trusted_services(deny).is_empty());
        let aws = r#"{"Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::1:root"},"Action":"sts:AssumeRole"}]}"#;
        assert_eq!(
            trusted_services(aws),
            vec!["AWS arn:aws:iam::1:root".to_string()]
        );
    }

    #[test]
    fn assumed_role_names() {
        assert_eq!(
            assumed_role_name("arn:aws:sts::123456789012:assumed-role/SageMakerRole/sess"),
            Some("SageMakerRole")
        );
        assert_eq!(
            assumed_role_name("arn:aws:iam::123456789012:user/alice"),
            None
        );
        assert!(looks_like_execution_role(
            "AmazonSageMaker-ExecutionRole-20240101"
        ));
        assert!(!looks_like_execution_role("ci-deployer"));
    }
}
