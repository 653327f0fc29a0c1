//! The checks of `sagetrain doctor`: each finds one link of the chain `train` relies on and says
//! whether it holds, with the fix when it does not.
//!
//! Every check that calls AWS is a function taking the SDK client(s) it needs, so that it can be
//! tested with `aws-smithy-mocks` as well as end to end; which check needs which is declared in
//! [`runner::NEEDS`], the checks of a run are built in [`plan`], and [`runner`] runs them. The report's JSON form is a stable
//! schema, documented in the README (`schema_version` changes only when a field changes meaning
//! or disappears).

use crate::aws::{aws_error, error_code, ResolvedCredentials};
use crate::config::Val;
use crate::error::{Error, Kind};
use crate::job::lookups::{self, Identity};
use crate::refs::ImageRef;
use crate::secrets;
use aws_config::profile::ProfileSet;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

pub mod plan;
pub mod runner;

/// The version of the JSON report's schema.
pub const SCHEMA_VERSION: u32 = 1;

/// Active access keys older than this get a warning.
pub const MAX_KEY_AGE_DAYS: u64 = 90;

/// Check ids: stable, used in the JSON report and in `blocked_by`.
pub mod id {
    pub const CONFIG: &str = "configuration";
    pub const CREDENTIALS: &str = "credentials";
    pub const IDENTITY: &str = "identity";
    pub const ACCESS_KEYS: &str = "access_keys";
    pub const REGION: &str = "region";
    pub const ROLE: &str = "execution_role";
    pub const ROLE_TRUST: &str = "role_trust";
    pub const PASS_ROLE: &str = "pass_role";
    pub const IMAGE: &str = "image";
    pub const OUTPUT: &str = "output_path";
    /// No channel configured; otherwise one check `channel.NAME` per channel.
    pub const CHANNELS: &str = "channels";
}

/// The human name of a check id.
pub fn name_of(check_id: &str) -> String {
    match check_id {
        id::CONFIG => "configuration".into(),
        id::CREDENTIALS => "credentials".into(),
        id::IDENTITY => "identity".into(),
        id::ACCESS_KEYS => "access keys".into(),
        id::REGION => "region".into(),
        id::ROLE => "execution role".into(),
        id::ROLE_TRUST => "role trust".into(),
        id::PASS_ROLE => "iam:PassRole".into(),
        id::IMAGE => "image".into(),
        id::OUTPUT => "output bucket".into(),
        id::CHANNELS => "input channels".into(),
        other => match other.strip_prefix("channel.") {
            Some(name) => format!("channel {name}"),
            None => other.into(),
        },
    }
}

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Pass,
    Warn,
    Fail,
    Skip,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Warn => "warn",
            Status::Fail => "fail",
            Status::Skip => "skip",
        }
    }
}

/// One line of the report.
#[derive(Debug, Clone)]
pub struct Check {
    pub id: String,
    pub status: Status,
    /// What was found; for a skipped check, why it was skipped.
    pub value: String,
    /// Where the value came from (flag, environment variable, file, lookup), when it applies.
    pub source: Option<String>,
    /// For a warning or a failure: what to do, as a command or a setting.
    pub fix: Option<String>,
    pub details: Vec<String>,
    /// For a failure: its class, which decides the exit code.
    pub class: Option<Kind>,
    /// For a skipped check: the failed check it depends on, if that is why.
    pub blocked_by: Option<String>,
}

impl Check {
    fn new(check_id: &str, status: Status, value: impl Into<String>) -> Check {
        Check {
            id: check_id.to_string(),
            status,
            value: value.into(),
            source: None,
            fix: None,
            details: Vec::new(),
            class: None,
            blocked_by: None,
        }
    }
    pub fn pass(check_id: &str, value: impl Into<String>) -> Check {
        Check::new(check_id, Status::Pass, value)
    }
    pub fn warn(check_id: &str, value: impl Into<String>, fix: impl Into<String>) -> Check {
        let mut c = Check::new(check_id, Status::Warn, value);
        c.fix = Some(fix.into());
        c
    }
    pub fn fail(
        check_id: &str,
        class: Kind,
        value: impl Into<String>,
        fix: impl Into<String>,
    ) -> Check {
        let mut c = Check::new(check_id, Status::Fail, value);
        c.fix = Some(fix.into());
        c.class = Some(class);
        c
    }
    /// A failure from an error: its message, details, hint and class.
    pub fn from_error(check_id: &str, e: &Error) -> Check {
        let mut c = Check::new(check_id, Status::Fail, e.message.clone());
        c.details = e.details.clone();
        c.fix = e.hint.clone();
        c.class = Some(e.kind);
        c
    }
    /// Not run because it does not apply, or because of `--offline`.
    pub fn skip(check_id: &str, reason: impl Into<String>) -> Check {
        Check::new(check_id, Status::Skip, reason)
    }
    /// Not run because the check `on` did not pass.
    pub fn blocked(check_id: &str, on: &str, reason: impl Into<String>) -> Check {
        let mut c = Check::new(check_id, Status::Skip, reason);
        c.blocked_by = Some(on.to_string());
        c
    }
    pub fn with_source(mut self, source: impl Into<String>) -> Check {
        self.source = Some(source.into());
        self
    }
    pub fn with_details(mut self, details: Vec<String>) -> Check {
        self.details = details;
        self
    }
    pub fn passed(&self) -> bool {
        matches!(self.status, Status::Pass | Status::Warn)
    }
}

/// The JSON name of a failure class.
pub fn class_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Credentials => "credentials",
        Kind::Usage => "config",
        Kind::Aws => "aws",
        Kind::Internal => "internal",
        _ => "other",
    }
}

/// The exit code for a set of failure classes: 0 when there is none, otherwise the most
/// fundamental one. Credentials (3) come first: without them nothing on AWS can be checked.
/// Then the local configuration (2: invalid settings, no region, no role found), which is
/// fixed before anything AWS says matters. Then what AWS answered (4: a missing role, image,
/// bucket or data, a permission). An unexpected local error (1) ranks last.
pub fn exit_code(classes: impl IntoIterator<Item = Kind>) -> i32 {
    let rank = |k: Kind| match k {
        Kind::Credentials => 0,
        Kind::Usage => 1,
        Kind::Aws => 2,
        _ => 3,
    };
    classes
        .into_iter()
        .min_by_key(|k| rank(*k))
        .map(|k| k.exit_code())
        .unwrap_or(0)
}

/// All the checks, in report order.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub checks: Vec<Check>,
}

impl Report {
    #[cfg(test)]
    pub fn get(&self, check_id: &str) -> Option<&Check> {
        self.checks.iter().find(|c| c.id == check_id)
    }

    pub fn count(&self, status: Status) -> usize {
        self.checks.iter().filter(|c| c.status == status).count()
    }

    pub fn exit_code(&self) -> i32 {
        exit_code(
            self.checks
                .iter()
                .filter(|c| c.status == Status::Fail)
                .map(|c| c.class.unwrap_or(Kind::Aws)),
        )
    }

    /// The report as JSON (schema version [`SCHEMA_VERSION`], documented in the README).
    pub fn to_json(&self) -> serde_json::Value {
        let checks: Vec<serde_json::Value> = self
            .checks
            .iter()
            .map(|c| {
                serde_json::json!({
                    "id": c.id,
                    "name": name_of(&c.id),
                    "status": c.status.as_str(),
                    "value": c.value,
                    "source": c.source,
                    "fix": c.fix,
                    "details": c.details,
                    "class": c.class.map(class_name),
                    "blocked_by": c.blocked_by,
                })
            })
            .collect();
        serde_json::json!({
            "schema_version": SCHEMA_VERSION,
            "ok": self.count(Status::Fail) == 0,
            "exit_code": self.exit_code(),
            "counts": {
                "pass": self.count(Status::Pass),
                "warn": self.count(Status::Warn),
                "fail": self.count(Status::Fail),
                "skip": self.count(Status::Skip),
            },
            "checks": checks,
        })
    }

    /// The report as text: one line per check, the fix under each warning or failure.
    pub fn to_text(&self) -> String {
        let width = self
            .checks
            .iter()
            .map(|c| name_of(&c.id).chars().count())
            .max()
            .unwrap_or(0);
        let mut out = String::new();
        for c in &self.checks {
            let mut line = format!(
                "{:<4}  {:<width$}  {}",
                c.status.as_str(),
                name_of(&c.id),
                c.value
            );
            if let Some(s) = c.source.as_ref().filter(|s| !c.value.contains(s.as_str())) {
                line.push_str(&format!(" (from {s})"));
            }
            out.push_str(line.trim_end());
            out.push('\n');
            let indent = " ".repeat(width + 8);
            for d in &c.details {
                out.push_str(&format!("{indent}- {d}\n"));
            }
            if matches!(c.status, Status::Warn | Status::Fail) {
                if let Some(fix) = &c.fix {
                    for (i, l) in fix.lines().enumerate() {
                        let label = if i == 0 { "fix: " } else { "     " };
                        out.push_str(&format!("{indent}{label}{l}\n"));
                    }
                }
            }
        }
        let mut summary = vec![format!("{} passed", self.count(Status::Pass))];
        let warns = self.count(Status::Warn);
        summary.push(format!(
            "{warns} warning{}",
            if warns == 1 { "" } else { "s" }
        ));
        summary.push(format!("{} failed", self.count(Status::Fail)));
        summary.push(format!("{} skipped", self.count(Status::Skip)));
        out.push_str(&summary.join(", "));
        out
    }
}

// ---------------------------------------------------------------------------------------------
// 1. Credentials

/// A profile whose long-lived keys sit in a plaintext file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlaintextKeys {
    pub profile: String,
    pub file: PathBuf,
}

/// One shared file as the SDK's parser reads it alone: its path and its profiles.
pub struct ParsedFile<'a> {
    pub path: &'a Path,
    pub profiles: Option<&'a ProfileSet>,
}

/// Where the long-lived keys behind `profile` are stored in plaintext, following
/// `source_profile` (an assume-role profile whose source holds keys still keeps them on disk).
/// `merged` is the profiles of both files together (for `source_profile`); `files` each file
/// alone, the shared credentials file first.
pub fn plaintext_keys(
    profile: &str,
    merged: Option<&ProfileSet>,
    files: &[ParsedFile],
) -> Option<PlaintextKeys> {
    let mut name = profile.to_string();
    for _ in 0..8 {
        for f in files {
            let holds_keys = f
                .profiles
                .and_then(|set| set.get_profile(&name))
                .is_some_and(|p| p.get("aws_access_key_id").is_some());
            if holds_keys {
                return Some(PlaintextKeys {
                    profile: name,
                    file: f.path.to_path_buf(),
                });
            }
        }
        match merged
            .and_then(|set| set.get_profile(&name))
            .and_then(|p| p.get("source_profile"))
        {
            Some(next) if next != name => name = next.to_string(),
            _ => return None,
        }
    }
    None
}

/// The credentials check: found or not, from where, the masked key id, session or long-lived,
/// and a warning for long-lived keys kept in a plaintext file.
pub fn credentials_check(
    found: &std::result::Result<ResolvedCredentials, Error>,
    plaintext: Option<&PlaintextKeys>,
) -> Check {
    match found {
        Err(e) => Check::from_error(id::CREDENTIALS, e),
        Ok(c) => {
            let kind = if c.is_session() {
                "temporary session"
            } else {
                "long-lived keys"
            };
            let value = format!("{}: key {}, {kind}", c.source, c.masked_key_id());
            match plaintext.filter(|_| !c.is_session()) {
                Some(p) => Check::warn(
                    id::CREDENTIALS,
                    format!(
                        "{value}, stored in plaintext in {}{}",
                        p.file.display(),
                        if c.source.profile_name() == Some(p.profile.as_str()) {
                            String::new()
                        } else {
                            format!(" (profile `{}`)", p.profile)
                        }
                    ),
                    format!(
                        "anyone who can read that file can use these keys; prefer short-lived credentials:\n\
                         SSO: `aws configure sso --profile NAME`, then `aws sso login --profile NAME` and `profile = \"NAME\"`\n\
                         or keep the keys in your OS keychain behind a `credential_process` helper (such as aws-vault), then delete them from {}",
                        p.file.display()
                    ),
                )
                .with_source(c.source.to_string()),
                None => Check::pass(id::CREDENTIALS, value).with_source(c.source.to_string()),
            }
        }
    }
}

/// Where the long-lived keys of a profile sit in plaintext, if they do.
pub(crate) async fn plaintext_keys_of(
    env: &dyn Fn(&str) -> Option<String>,
    profile: &str,
) -> Option<PlaintextKeys> {
    let merged = crate::aws::load_profiles(env, Some(profile)).await;
    let files = crate::aws::credentials::shared_files(env);
    let mut sets = Vec::new();
    for (kind, _, text) in &files {
        sets.push(crate::aws::credentials::profiles_of_file(*kind, text).await);
    }
    let parsed: Vec<ParsedFile> = files
        .iter()
        .zip(&sets)
        .map(|((_, path, _), set)| ParsedFile {
            path,
            profiles: set.as_ref(),
        })
        .collect();
    plaintext_keys(profile, merged.as_ref(), &parsed)
}

// ---------------------------------------------------------------------------------------------
// 2. Identity and access keys

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

// ---------------------------------------------------------------------------------------------
// 3. Execution role

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

/// The PassRole check: iam:SimulatePrincipalPolicy for iam:PassRole on the role, with
/// iam:PassedToService = sagemaker.amazonaws.com. A caller who may not simulate (or an
/// emulator that cannot) gets a warning that it could not be checked, not a failure.
pub async fn pass_role_check(
    iam: &aws_sdk_iam::Client,
    caller: &Identity,
    role_arn: &str,
) -> Check {
    if caller.arn.ends_with(":root") {
        return Check::pass(id::PASS_ROLE, "the root user may pass any role");
    }
    let Some(principal) = policy_principal(iam, caller).await else {
        return Check::skip(
            id::PASS_ROLE,
            format!(
                "cannot be simulated for {}: only IAM users and role sessions can",
                caller.arn
            ),
        );
    };
    let entry = aws_sdk_iam::types::ContextEntry::builder()
        .context_key_name("iam:PassedToService")
        .context_key_values("sagemaker.amazonaws.com")
        .context_key_type(aws_sdk_iam::types::ContextKeyTypeEnum::String)
        .build();
    let res = iam
        .simulate_principal_policy()
        .policy_source_arn(&principal)
        .action_names("iam:PassRole")
        .resource_arns(role_arn)
        .context_entries(entry)
        .customize()
        // Best effort: a failure only means "could not check", so do not wait for retries.
        .config_override(
            aws_sdk_iam::config::Builder::default()
                .retry_config(aws_sdk_iam::config::retry::RetryConfig::disabled()),
        )
        .send()
        .await;
    let policy_fix = format!(
        "allow it in a policy of {principal}: {{\"Effect\": \"Allow\", \"Action\": \"iam:PassRole\", \"Resource\": \"{role_arn}\", \
         \"Condition\": {{\"StringEquals\": {{\"iam:PassedToService\": \"sagemaker.amazonaws.com\"}}}}}}\n\
         (examples/iam/developer-policy.json has it; without it CreateTrainingJob fails with AccessDeniedException ... iam:PassRole)"
    );
    match res {
        Ok(out) => {
            let decision = out
                .evaluation_results()
                .first()
                .map(|r| r.eval_decision().as_str().to_string());
            match decision.as_deref() {
                Some("allowed") => Check::pass(
                    id::PASS_ROLE,
                    format!("{principal} may pass {role_arn} to sagemaker.amazonaws.com"),
                )
                .with_source("iam:SimulatePrincipalPolicy"),
                Some(d) => Check::fail(
                    id::PASS_ROLE,
                    Kind::Aws,
                    format!("denied ({d}): {principal} may not pass {role_arn} to SageMaker"),
                    policy_fix,
                )
                .with_source("iam:SimulatePrincipalPolicy"),
                None => Check::warn(
                    id::PASS_ROLE,
                    "could not be checked: iam:SimulatePrincipalPolicy returned no result",
                    policy_fix,
                ),
            }
        }
        Err(e) => {
            let why = match error_code(&e) {
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
            };
            Check::warn(
                id::PASS_ROLE,
                format!("could not be checked: {why}"),
                format!("make sure your policy allows iam:PassRole on the role to SageMaker; {policy_fix}"),
            )
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 4. Image, output bucket, input channels

/// The image check: the image resolves in ECR and its tag exists; the digest is shown.
pub async fn image_check(ecr: &aws_sdk_ecr::Client, image: &Val<String>, region: &str) -> Check {
    let source = image.source.name_for(None);
    if let Ok(ImageRef::Other(uri)) = ImageRef::parse(&image.value) {
        return Check::warn(
            id::IMAGE,
            format!("{uri} is not in ECR: not checked"),
            format!("SageMaker training pulls images from ECR: push it to a repository in {region} (see examples/README.md) and use --image REPO:TAG"),
        )
        .with_source(source);
    }
    match lookups::image_with(ecr, image, true, region).await {
        Err(e) => Check::from_error(id::IMAGE, &e).with_source(source),
        Ok((resolved, notes)) => {
            let value = format!("{} -> {}", image.value, resolved.value);
            if notes.is_empty() {
                Check::pass(id::IMAGE, value).with_source(source)
            } else {
                let fix = if notes.iter().any(|n| n.contains("platform")) {
                    crate::image::platform::REBUILD.to_string()
                } else {
                    format!("push the image to ECR in {region}, or run the job where the image is (--region)")
                };
                Check::warn(id::IMAGE, format!("{value}; {}", notes.join("; ")), fix)
                    .with_source(source)
            }
        }
    }
}

/// The output bucket check: exists, is reachable, and is in the job's region. The default
/// bucket may not exist yet: `train` creates it.
pub async fn output_check(
    s3: &aws_sdk_s3::Client,
    given: Option<&Val<String>>,
    account: &str,
    region: &str,
) -> Check {
    match lookups::output_path_with(s3, given, account, region, true).await {
        Err(e) => {
            let c = Check::from_error(id::OUTPUT, &e);
            match given {
                Some(g) => c.with_source(g.source.name_for(None)),
                None => c,
            }
        }
        Ok((v, notes)) => {
            let value = if notes.is_empty() {
                format!("{} (bucket reachable, in {region})", v.value)
            } else {
                format!(
                    "{} (the default bucket does not exist yet: `train` creates it in {region})",
                    v.value
                )
            };
            let source = match given {
                Some(g) => g.source.name_for(None),
                None => "default: sagemaker-REGION-ACCOUNT".into(),
            };
            Check::pass(id::OUTPUT, value).with_source(source)
        }
    }
}

/// An input channel check: the prefix exists and is not empty.
pub async fn channel_check(
    s3: &aws_sdk_s3::Client,
    name: &str,
    uri: &Val<String>,
    region: &str,
) -> Check {
    let check_id = format!("channel.{name}");
    let source = uri.source.name_for(Some(name));
    match lookups::check_channel_with(s3, name, uri, region).await {
        Ok(()) => Check::pass(&check_id, format!("{} holds data", uri.value)).with_source(source),
        Err(e) => Check::from_error(&check_id, &e).with_source(source),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_iam::operation::get_role::{GetRoleError, GetRoleOutput};
    use aws_sdk_iam::operation::list_access_keys::{ListAccessKeysError, ListAccessKeysOutput};
    use aws_sdk_iam::operation::simulate_principal_policy::{
        SimulatePrincipalPolicyError, SimulatePrincipalPolicyOutput,
    };
    use aws_sdk_iam::types as iamt;
    use aws_smithy_mocks::{mock, mock_client, RuleMode};
    use aws_smithy_types::error::ErrorMetadata;

    const ACCOUNT: &str = "111122223333";

    fn user() -> Identity {
        Identity {
            account: ACCOUNT.into(),
            arn: format!("arn:aws:iam::{ACCOUNT}:user/alice"),
        }
    }
    fn session() -> Identity {
        Identity {
            account: ACCOUNT.into(),
            arn: format!("arn:aws:sts::{ACCOUNT}:assumed-role/Developer/alice"),
        }
    }
    const TRUSTS: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"sagemaker.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
    const EC2: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;

    fn role(name: &str, path: &str, doc: &str) -> GetRoleOutput {
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

    fn no_such_role() -> GetRoleError {
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

    fn decision(d: iamt::PolicyEvaluationDecisionType) -> SimulatePrincipalPolicyOutput {
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

    #[test]
    fn exit_code_is_the_most_fundamental_failure_class() {
        assert_eq!(exit_code([]), 0);
        assert_eq!(exit_code([Kind::Aws]), 4);
        assert_eq!(exit_code([Kind::Aws, Kind::Usage]), 2);
        assert_eq!(exit_code([Kind::Aws, Kind::Credentials, Kind::Usage]), 3);
        assert_eq!(exit_code([Kind::Internal, Kind::Aws]), 4);
    }

    #[test]
    fn the_report_has_one_line_per_check_and_the_fix_under_failures() {
        let report = Report {
            checks: vec![
                Check::pass(id::REGION, "eu-west-1").with_source("--region"),
                Check::fail(id::IMAGE, Kind::Aws, "no such tag", "push it"),
                Check::blocked(id::PASS_ROLE, id::ROLE, "needs the execution role"),
            ],
        };
        let text = report.to_text();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "pass  region        eu-west-1 (from --region)");
        assert_eq!(lines[1], "fail  image         no such tag");
        assert_eq!(lines[2], "                    fix: push it");
        assert_eq!(lines[3], "skip  iam:PassRole  needs the execution role");
        assert_eq!(lines[4], "1 passed, 0 warnings, 1 failed, 1 skipped");
        let j = report.to_json();
        assert_eq!(j["schema_version"], 1);
        assert_eq!(j["ok"], false);
        assert_eq!(j["exit_code"], 4);
        assert_eq!(j["counts"]["skip"], 1);
        assert_eq!(j["checks"][1]["class"], "aws");
        assert_eq!(j["checks"][2]["blocked_by"], "execution_role");
        assert_eq!(j["checks"][0]["fix"], serde_json::Value::Null);
    }

    #[tokio::test]
    async fn plaintext_keys_are_found_in_either_file_and_through_source_profile() {
        use crate::aws::credentials::profiles_of_file;
        use aws_runtime::env_config::file::{EnvConfigFileKind, EnvConfigFiles};
        let creds = Path::new("/h/.aws/credentials");
        let config = Path::new("/h/.aws/config");
        let ctext =
            "[base]\naws_access_key_id = AKIA...\naws_secret_access_key = x\n[other]\nregion = x\n";
        let conf = "[profile dev]\nrole_arn = arn:aws:iam::1:role/r\nsource_profile = base\n[profile sso]\nsso_session = s\n[default]\naws_access_key_id = AKIA\n";
        let cset = profiles_of_file(EnvConfigFileKind::Credentials, ctext).await;
        let fset = profiles_of_file(EnvConfigFileKind::Config, conf).await;
        let files = EnvConfigFiles::builder()
            .with_contents(EnvConfigFileKind::Config, conf)
            .with_contents(EnvConfigFileKind::Credentials, ctext)
            .build();
        let merged = aws_config::profile::parser::load(
            &aws_types::os_shim_internal::Fs::real(),
            &aws_types::os_shim_internal::Env::from_slice(&[]),
            &files,
            None,
        )
        .await
        .ok();
        let parsed = [
            ParsedFile {
                path: creds,
                profiles: cset.as_ref(),
            },
            ParsedFile {
                path: config,
                profiles: fset.as_ref(),
            },
        ];
        let keys = |p: &str| plaintext_keys(p, merged.as_ref(), &parsed);
        assert_eq!(
            keys("dev"),
            Some(PlaintextKeys {
                profile: "base".into(),
                file: creds.into()
            })
        );
        assert_eq!(keys("default").map(|p| p.file), Some(config.to_path_buf()));
        assert_eq!(keys("sso"), None);
        assert_eq!(keys("other"), None);
    }

    #[test]
    fn long_lived_keys_in_a_plaintext_file_are_a_warning_naming_sso() {
        let found = Ok(ResolvedCredentials {
            credentials: aws_credential_types::Credentials::new(
                "AKIAIOSFODNN7EXAMPLE",
                "secret",
                None,
                None,
                "t",
            ),
            source: crate::aws::CredentialSource::Profile {
                name: "dev".into(),
                kind: Some(crate::aws::credentials::ProfileKind::AccessKeys),
                files: vec!["/h/.aws/credentials".into()],
            },
        });
        let p = PlaintextKeys {
            profile: "dev".into(),
            file: "/h/.aws/credentials".into(),
        };
        let c = credentials_check(&found, Some(&p));
        assert_eq!(c.status, Status::Warn);
        assert!(c.value.contains("****************MPLE"), "{}", c.value);
        assert!(c.value.contains("plaintext"), "{}", c.value);
        assert!(c.fix.as_ref().unwrap().contains("aws configure sso"));
        assert!(c.fix.as_ref().unwrap().contains("credential_process"));
        let c = credentials_check(&found, None);
        assert_eq!(c.status, Status::Pass);
        assert!(c.value.contains("long-lived keys"));
    }

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
