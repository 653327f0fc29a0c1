//! `sagetrain init --create-role`: create the execution role with least privilege, derived from
//! the project's settings (`job::role_policy`), or bring sagetrain's own role up to date
//! (`job::role_iam`), then set `role` in sagetrain.toml (edited in place, comments kept; or
//! written as `init` writes it when there is none). A role sagetrain did not create is never
//! changed. `--dry-run` prints both documents and the calls, and changes nothing.

use super::init::{self, ImageFinding, RoleFinding};
use super::{jobcmd, Context};
use crate::cli::{InitArgs, TrainArgs};
use crate::config::{violations_error, LoadedFile, Source, Val, Violation, CONFIG_FILE_NAME};
use crate::error::{Error, Result};
use crate::fsutil;
use crate::job::role_policy::{self as rp, Plan, DEFAULT_ROLE_NAME, DEFAULT_ROLE_PATH};
use crate::job::settings::TrainSettings;
use crate::job::{lookups, role_iam, state};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// The text of a config file with `role` set to `arn`, comments and layout kept; None when it
/// already is.
pub fn with_role(text: &str, arn: &str) -> std::result::Result<Option<String>, String> {
    let mut doc: toml_edit::DocumentMut = text.parse().map_err(|e| format!("{e}"))?;
    match doc.get_mut("role").and_then(|i| i.as_value_mut()) {
        Some(v) if v.as_str() == Some(arn) => return Ok(None),
        Some(v) => {
            // The same key in the same place, with its comments (a trailing one too).
            let decor = v.decor().clone();
            *v = toml_edit::Value::from(arn);
            *v.decor_mut() = decor;
        }
        None => {
            doc.insert("role", toml_edit::value(arn));
            if let Some(mut key) = doc.as_table_mut().key_mut("role") {
                key.leaf_decor_mut()
                    .set_prefix("\n# The execution role made by `sagetrain init --create-role`.\n");
            }
        }
    }
    Ok(Some(doc.to_string()))
}

/// What happened to the config file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FileChange {
    Created,
    Updated,
    Unchanged,
}

impl FileChange {
    fn word(self, dry_run: bool) -> &'static str {
        match (self, dry_run) {
            (FileChange::Created, false) => "written",
            (FileChange::Created, true) => "would be written",
            (FileChange::Updated, false) => "role set",
            (FileChange::Updated, true) => "role would be set",
            (FileChange::Unchanged, _) => "role already set",
        }
    }
}

fn usage_checks(name: &str, path: &str) -> Vec<Violation> {
    let mut v = Vec::new();
    if let Err(rule) = rp::check_role_name(name) {
        v.push(Violation::new("--role-name", rule));
    }
    if let Err(rule) = rp::check_role_path(path) {
        v.push(Violation::new("--role-path", rule));
    }
    v
}

pub async fn run(ctx: &Context, args: &InitArgs) -> Result<()> {
    let name = args
        .role_name
        .clone()
        .unwrap_or_else(|| DEFAULT_ROLE_NAME.into());
    let path = args
        .role_path
        .clone()
        .unwrap_or_else(|| DEFAULT_ROLE_PATH.into());
    let file = ctx.config_file()?;
    let mut settings = TrainSettings::layer(
        &ctx.global.connection,
        &TrainArgs::default(),
        &*ctx.env,
        file.as_ref(),
    )
    .map_err(violations_error)?;
    // Everything that can be checked without AWS, before any call.
    let mut v = usage_checks(&name, &path);
    let mut pre = crate::job::spec::validate_settings_at(&settings, &ctx.cwd);
    if settings.image.is_none() {
        pre.retain(|x| x.what != "--image");
    }
    v.extend(pre);
    if !v.is_empty() {
        return Err(violations_error(v));
    }
    let aws = jobcmd::sign_in(ctx, &settings.connection, true).await?;
    let caller = lookups::identity(&aws).await?;
    let region = aws.region.value.clone();
    // Without a sagetrain.toml, fill it in as `init` does; the image found decides the ECR
    // statement.
    let found = match &file {
        Some(_) => None,
        None => {
            let f = init::discover(ctx).await;
            if settings.image.is_none() {
                if let ImageFinding::One(img, _) = &f.image {
                    settings.image = Some(Val::new(
                        img.clone(),
                        Source::Lookup("the ECR repository init found".into()),
                    ));
                }
            }
            Some(f)
        }
    };
    let needs = rp::needs_from_settings(&settings, &ctx.cwd, &region, &caller.account)
        .map_err(violations_error)?;
    // Secrets and remote debugging have no setting yet: `needs` asks for neither.
    if needs.image == rp::ImageNeed::Unknown {
        ctx.ui.warn(&format!(
            "no image is set: the role may pull from any ECR repository of account {} in {region}; set `image` in sagetrain.toml and run `sagetrain init --create-role` again to limit it to that repository",
            caller.account
        ));
    }
    let trust = rp::trust_policy(&caller.account);
    let policy = rp::permission_policy(&needs);
    let size = rp::policy_size(&policy);
    if size > rp::MAX_INLINE_POLICY_CHARS {
        return Err(Error::usage(format!(
            "the inline policy the settings need is {size} characters; IAM takes at most {} for a role's inline policies",
            rp::MAX_INLINE_POLICY_CHARS
        ))
        .with_hint("put the channels under fewer buckets and prefixes (e.g. one data bucket with a prefix per channel)"));
    }
    let config_path = file
        .as_ref()
        .map(|f| f.path.clone())
        .unwrap_or_else(|| ctx.cwd.join(CONFIG_FILE_NAME));
    let project_dir = state::project_dir(file.as_ref().map(|f| f.path.as_path()), &ctx.cwd);
    let project = rp::project_tag_value(&project_dir);
    let tags = rp::role_tags(&project);
    let partition = rp::partition(&region);
    let wanted_arn = rp::role_arn(partition, &caller.account, &path, &name);
    let iam = aws.iam();
    let existing = match role_iam::read(&iam, &name, &wanted_arn).await {
        Ok(r) => r,
        Err(e) if args.dry_run && role_iam::is_denied(&e) => {
            ctx.ui.warn(&format!(
                "{} (the calls below assume the role does not exist yet)",
                e.message
            ));
            None
        }
        Err(e) => return Err(e),
    };
    let plan = rp::plan(existing.as_ref(), &trust, &policy, &project);
    let arn = existing
        .as_ref()
        .map(|r| r.arn.clone())
        .unwrap_or(wanted_arn);
    refuse(&plan, &name, &arn, &project)?;
    let calls = rp::calls(&plan, &name, &path, &trust, &policy, &tags);
    let dry = args.dry_run;
    if !dry {
        match &plan {
            Plan::Create => {
                let description = format!(
                    "SageMaker execution role of the sagetrain project {project} (sagetrain init --create-role)"
                );
                let made =
                    role_iam::create(&iam, &name, &path, &trust, &tags, &description, &arn).await?;
                ctx.ui.info(&format!("created role {made}"));
                role_iam::put_policy(&iam, &name, &policy, &made).await?;
            }
            Plan::Update {
                trust: t,
                policy: p,
                tag,
                ..
            } => {
                if *t {
                    role_iam::update_trust(&iam, &name, &trust, &arn).await?;
                }
                if *p {
                    role_iam::put_policy(&iam, &name, &policy, &arn).await?;
                }
                if *tag {
                    role_iam::tag(&iam, &name, &tags, &arn).await?;
                }
            }
            _ => {}
        }
    }
    let file_change = write_config(ctx, &config_path, file.as_ref(), found, &arn, dry)?;
    report(
        ctx,
        &Report {
            name: &name,
            arn: &arn,
            plan: &plan,
            trust: &trust,
            policy: &policy,
            calls: &calls,
            config_path: &config_path,
            file_change,
            dry,
        },
    );
    Ok(())
}

/// A role that is not this project's sagetrain role is left as it is.
fn refuse(plan: &Plan, name: &str, arn: &str, project: &str) -> Result<()> {
    match plan {
        Plan::Foreign {
            trust_differences,
            policy_differences,
        } => {
            let mut details: Vec<String> = trust_differences
                .iter()
                .map(|d| format!("trust policy: {d}"))
                .collect();
            details.extend(
                policy_differences
                    .iter()
                    .map(|d| format!("inline policy {}: {d}", rp::POLICY_NAME)),
            );
            Err(Error::aws(format!(
                "the role {arn} exists and was not created by sagetrain (it has no {} tag): it was left unchanged; it differs from what the settings need:",
                rp::MANAGED_TAG
            ))
            .with_details(details)
            .with_hint(format!(
                "use a role of sagetrain's own: sagetrain init --create-role --role-name OTHER_NAME\n\
                 or let sagetrain manage this one (its trust policy and inline policy {policy} will be replaced): aws iam tag-role --role-name {name} --tags Key={tag},Value=true, then run the command again\n\
                 or change it yourself: `sagetrain init --create-role --dry-run` prints both policies",
                policy = rp::POLICY_NAME,
                tag = rp::MANAGED_TAG
            )))
        }
        Plan::OtherProject { project: other } => Err(Error::aws(format!(
            "the role {arn} is sagetrain's role of the project `{other}` ({} tag), not of this one (`{project}`): it was left unchanged, as changing it would change what that project's jobs may do",
            rp::PROJECT_TAG
        ))
        .with_hint(format!(
            "give this project a role of its own: sagetrain init --create-role --role-name OTHER_NAME\n\
             or, if this is the same project under a new folder name: aws iam tag-role --role-name {name} --tags Key={},Value={project}, then run the command again",
            rp::PROJECT_TAG
        ))),
        _ => Ok(()),
    }
}

/// Set `role` in the config file, or write a new one as `init` does.
fn write_config(
    ctx: &Context,
    path: &Path,
    file: Option<&LoadedFile>,
    found: Option<init::Found>,
    arn: &str,
    dry: bool,
) -> Result<FileChange> {
    let (text, change) = match (file, found) {
        (Some(_), _) => {
            let old = std::fs::read_to_string(path)
                .map_err(|e| Error::internal(format!("cannot read {}: {e}", path.display())))?;
            match with_role(&old, arn)
                .map_err(|e| Error::usage(format!("{} could not be edited: {e}", path.display())))?
            {
                None => return Ok(FileChange::Unchanged),
                Some(t) => (t, FileChange::Updated),
            }
        }
        (None, found) => {
            let mut f = found.unwrap_or_default();
            f.role = RoleFinding::One(
                arn.to_string(),
                "made by `sagetrain init --create-role`".into(),
            );
            (init::render(&f), FileChange::Created)
        }
    };
    // The guard of every config file: it must parse and hold no credential.
    LoadedFile::parse(path, &text)
        .and_then(|f| crate::job::settings::check_file(&f))
        .map_err(|e| {
            Error::internal(format!(
                "the file would not be valid, so it was not written: {}",
                e.message
            ))
        })?;
    if !dry {
        fsutil::write_atomic(path, text.as_bytes(), None, change == FileChange::Updated)
            .map_err(|e| Error::internal(format!("cannot write {}: {e}", path.display())))?;
        ctx.ui.detail(&format!("wrote {}", path.display()));
    }
    Ok(change)
}

struct Report<'a> {
    name: &'a str,
    arn: &'a str,
    plan: &'a Plan,
    trust: &'a Value,
    policy: &'a Value,
    calls: &'a [rp::Call],
    config_path: &'a PathBuf,
    file_change: FileChange,
    dry: bool,
}

fn report(ctx: &Context, r: &Report) {
    let (status, trust_d, policy_d): (&str, &[String], &[String]) = match (r.plan, r.dry) {
        (Plan::Create, false) => ("created", &[], &[]),
        (Plan::Create, true) => ("would be created", &[], &[]),
        (Plan::UpToDate, _) => ("up to date", &[], &[]),
        (
            Plan::Update {
                trust_differences,
                policy_differences,
                ..
            },
            dry,
        ) => (
            if dry { "would be updated" } else { "updated" },
            trust_differences,
            policy_differences,
        ),
        _ => ("unchanged", &[], &[]),
    };
    if ctx.json() {
        ctx.ui.result_json(&json!({
            "role_name": r.name,
            "role_arn": r.arn,
            "status": status.replace(' ', "_"),
            "dry_run": r.dry,
            "trust_policy": r.trust,
            "policy_name": rp::POLICY_NAME,
            "policy": r.policy,
            "trust_policy_changes": trust_d,
            "policy_changes": policy_d,
            "calls": r.calls.iter().map(|c| json!({"operation": c.operation, "command": c.command})).collect::<Vec<_>>(),
            "config_file": r.config_path.display().to_string(),
            "config_change": r.file_change.word(r.dry).replace(' ', "_"),
        }));
        return;
    }
    let mut out = vec![
        format!("role     {}", r.arn),
        format!(
            "status   {status}{}",
            if r.dry {
                " (dry run: nothing was changed)"
            } else {
                ""
            }
        ),
        format!(
            "config   {} ({})",
            r.config_path.display(),
            r.file_change.word(r.dry)
        ),
    ];
    let changes: Vec<String> = trust_d
        .iter()
        .map(|d| format!("trust policy: {d}"))
        .chain(
            policy_d
                .iter()
                .map(|d| format!("inline policy {}: {d}", rp::POLICY_NAME)),
        )
        .collect();
    for (i, c) in changes.iter().enumerate() {
        out.push(format!(
            "{}{c}",
            if i == 0 { "changes  " } else { "         " }
        ));
    }
    if r.dry {
        let pretty = |v: &Value| serde_json::to_string_pretty(v).unwrap_or_default();
        out.push(String::new());
        out.push("trust policy:".into());
        out.push(pretty(r.trust));
        out.push(String::new());
        out.push(format!("inline policy {}:", rp::POLICY_NAME));
        out.push(pretty(r.policy));
        out.push(String::new());
        if r.calls.is_empty() {
            out.push("calls: none".into());
        } else {
            out.push("calls (as AWS CLI commands):".into());
            out.extend(r.calls.iter().map(|c| c.command.clone()));
        }
    }
    ctx.ui.result_text(&out.join("\n"));
    if !r.dry {
        ctx.ui
            .info("next: `sagetrain doctor` checks the role with the rest of the setup");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_role_is_set_in_place_and_the_comments_stay() {
        let text = "# my project\nregion = \"eu-west-1\"\n\n# the role\nrole = \"OldRole\"   # set by hand\nimage = \"unet:latest\"\n\n[channels]\n# data\ntrain = \"s3://b/t/\"\n";
        let arn = "arn:aws:iam::111122223333:role/service-role/New";
        let out = with_role(text, arn).unwrap().unwrap();
        assert_eq!(out, text.replace("\"OldRole\"", &format!("\"{arn}\"")));
        assert_eq!(with_role(&out, arn).unwrap(), None, "already set");
        // No role yet: added among the top-level keys, before the tables.
        let text = "# my project\nregion = \"eu-west-1\"\n# role = \"commented\"\n\n[channels]\ntrain = \"s3://b/t/\"\n";
        let out = with_role(text, arn).unwrap().unwrap();
        assert!(
            out.starts_with("# my project\nregion = \"eu-west-1\"\n"),
            "{out}"
        );
        assert!(
            out.contains("# role = \"commented\"\n\n[channels]\n"),
            "{out}"
        );
        let f = LoadedFile::parse(Path::new("sagetrain.toml"), &out).unwrap();
        assert_eq!(f.table["role"].as_str(), Some(arn));
        assert_eq!(f.table["channels"]["train"].as_str(), Some("s3://b/t/"));
        assert!(
            out.contains("# The execution role made by `sagetrain init --create-role`.\nrole = "),
            "{out}"
        );
        assert!(with_role("role = [", arn).is_err());
    }

    #[test]
    fn a_bad_role_name_or_path_is_refused_before_any_call() {
        let v = usage_checks("bad name", "service-role");
        assert_eq!(v.len(), 2);
        assert_eq!(v[0].what, "--role-name");
        assert_eq!(v[1].what, "--role-path");
        assert!(usage_checks(DEFAULT_ROLE_NAME, DEFAULT_ROLE_PATH).is_empty());
    }
}
