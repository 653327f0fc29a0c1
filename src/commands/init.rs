//! `sagetrain init`: write a commented `sagetrain.toml`, filled in with what the account holds
//! (region, account, the execution role, an ECR repository that looks like the U-Net image),
//! the rest as commented examples.
//!
//! The file is a project file meant for git: it is written with the usual permissions and never
//! holds a credential (the text is checked with the config parser's credential guard before it
//! is written). Without credentials, or with `--offline`, every value is commented out.

use super::Context;
use crate::aws::Aws;
use crate::aws::Connection;
use crate::cli::InitArgs;
use crate::config::{Source, Val, CONFIG_FILE_NAME};
use crate::error::{Error, Kind, Result};
use crate::fsutil;
use crate::job::lookups;
use crate::job::settings::{maps, scalars, DATA, JOB, NETWORK, RESOURCES};
use crate::refs::default_bucket;

/// The execution role, as far as it was found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum RoleFinding {
    /// Not looked up.
    #[default]
    Unknown,
    /// One role: its ARN and how it was found.
    One(String, String),
    /// Several candidates.
    Several(Vec<String>),
    /// None found, and why.
    Missing(String),
}

/// The image, as far as it was found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ImageFinding {
    #[default]
    Unknown,
    /// `repo:tag`, and a note (e.g. no image pushed yet).
    One(String, Option<String>),
    /// Several repositories look like the U-Net image.
    Several(Vec<String>),
    /// None looks like it; the repositories that exist.
    Missing(Vec<String>),
}

/// What `init` found to fill in.
#[derive(Debug, Clone, Default)]
pub struct Found {
    /// The region and where it came from.
    pub region: Option<(String, String)>,
    pub account: Option<String>,
    pub caller_arn: Option<String>,
    /// The profile in use, named on purpose (flag or AWS_PROFILE).
    pub profile: Option<String>,
    pub role: RoleFinding,
    pub image: ImageFinding,
    /// Why nothing (or not everything) was looked up.
    pub note: Option<String>,
}

/// Which ECR repositories look like the U-Net image: names containing `unet`, or the only one.
pub fn choose_repository(repositories: &[String]) -> ImageFinding {
    let unet: Vec<String> = repositories
        .iter()
        .filter(|r| r.to_ascii_lowercase().contains("unet"))
        .cloned()
        .collect();
    match (unet.as_slice(), repositories) {
        ([one], _) => ImageFinding::One(one.clone(), None),
        ([], [only]) => ImageFinding::One(only.clone(), None),
        ([], all) => ImageFinding::Missing(all.to_vec()),
        (several, _) => ImageFinding::Several(several.to_vec()),
    }
}

/// The tag to write: `latest` if it exists, otherwise the most recently pushed tag.
pub fn choose_tag(images: &[(Vec<String>, i64)]) -> Option<String> {
    if images
        .iter()
        .any(|(tags, _)| tags.iter().any(|t| t == "latest"))
    {
        return Some("latest".into());
    }
    images
        .iter()
        .filter(|(tags, _)| !tags.is_empty())
        .max_by_key(|(_, pushed)| *pushed)
        .and_then(|(tags, _)| tags.iter().min().cloned())
}

/// A TOML string, quoted and escaped.
fn q(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// The file's text.
pub fn render(f: &Found) -> String {
    let mut o = String::new();
    let mut line = |s: &str| {
        o.push_str(s);
        o.push('\n');
    };
    line("# sagetrain.toml: the defaults of `sagetrain train` for this project.");
    line("#");
    match (&f.account, &f.caller_arn) {
        (Some(a), Some(arn)) => {
            line(&format!(
                "# Written by `sagetrain init` from AWS account {a} (as {arn})."
            ));
        }
        _ => line("# Written by `sagetrain init`."),
    }
    if let Some(n) = &f.note {
        for l in n.lines() {
            line(&format!("# {l}"));
        }
    }
    line("# Flags override environment variables, which override this file. `sagetrain config` shows");
    line("# where each value comes from; `sagetrain doctor` checks them against your account.");
    line("# NEVER put credentials here: keep them in an AWS profile (`aws configure sso`); sagetrain");
    line("# refuses a config file that holds an access key.");
    line("");
    line("# --- AWS -----------------------------------------------------------------------------------");
    line("");
    line("# The region of the job (its image, buckets and role must be usable there).");
    match &f.region {
        Some((r, from)) => {
            line(&format!("# Found: from {from}."));
            line(&format!("region = {}", q(r)));
        }
        None => line("# region = \"eu-west-1\""),
    }
    line("");
    line("# The AWS profile for YOUR credentials (an SSO session or access keys in ~/.aws). Leave it");
    line("# out to use AWS_PROFILE or the default chain (environment, web identity in CI, ...).");
    match &f.profile {
        Some(p) => line(&format!("# profile = {}    # the profile in use now", q(p))),
        None => line("# profile = \"ml-dev\""),
    }
    line("");
    line("# The execution role SageMaker assumes to pull the image, read the data and write the model:");
    line("# a role name (looked up with iam:GetRole) or an ARN. It must trust sagemaker.amazonaws.com.");
    match &f.role {
        RoleFinding::One(arn, how) => {
            line(&format!("# Found: {how}."));
            line(&format!("role = {}", q(arn)));
        }
        RoleFinding::Several(arns) => {
            line("# Several roles could be it; uncomment the one to use:");
            for a in arns {
                line(&format!("# role = {}", q(a)));
            }
        }
        RoleFinding::Missing(why) => {
            line(&format!("# None found: {why}."));
            line("# Create one with `sagetrain init --create-role` (or examples/iam/setup.sh), then:");
            line("# role = \"SageMakerExecutionRole-unet\"");
        }
        RoleFinding::Unknown => line("# role = \"SageMakerExecutionRole-unet\""),
    }
    line("");
    line("# --- Image ---------------------------------------------------------------------------------");
    line("");
    line("# repo[:tag] or repo@sha256:... in this account's ECR in `region`, or a full image URI.");
    match &f.image {
        ImageFinding::One(img, note) => {
            line("# Found: the ECR repository that looks like the U-Net image.");
            if let Some(n) = note {
                line(&format!("# {n}"));
            }
            line(&format!("image = {}", q(img)));
        }
        ImageFinding::Several(repos) => {
            line("# Several ECR repositories look like the U-Net image; uncomment the one to use:");
            for r in repos {
                line(&format!("# image = {}", q(&format!("{r}:latest"))));
            }
        }
        ImageFinding::Missing(repos) => {
            if repos.is_empty() {
                line("# No ECR repository in this region yet: push the image (see examples/README.md), then:");
            } else {
                let mut shown: Vec<&str> = repos.iter().map(String::as_str).take(10).collect();
                if repos.len() > 10 {
                    shown.push("...");
                }
                line(&format!(
                    "# None of the ECR repositories here looks like the U-Net image ({}):",
                    shown.join(", ")
                ));
            }
            line("# image = \"unet-vessels:latest\"");
        }
        ImageFinding::Unknown => line("# image = \"unet-vessels:latest\""),
    }
    line("# The job runs the digest the tag points to when it is submitted (--no-pin-digest: the tag).");
    line("# pin_digest = true");
    line("");
    let bucket = match (&f.region, &f.account) {
        (Some((r, _)), Some(a)) => default_bucket(r, a),
        _ => "sagemaker-REGION-ACCOUNT".into(),
    };
    line(&format!(
        "# The model goes to output_path; default: s3://{bucket}/sagetrain/ (created by `train` if missing)."
    ));
    line("# Job names are <base_name>-<UTC timestamp>-<random>; base_name defaults to the image repository's name.");
    // Every other setting, from its declaration: its help and a commented example.
    let shown = ["role", "image", "pin_digest"];
    for section in [RESOURCES, DATA, JOB, NETWORK] {
        let settings: Vec<_> = scalars()
            .into_iter()
            .filter(|m| m.section == section && m.in_file && !shown.contains(&m.key))
            .collect();
        if settings.is_empty() {
            continue;
        }
        line("");
        line(&format!(
            "# --- {section} {}",
            "-".repeat(88 - section.len())
        ));
        line("");
        for m in settings {
            line(&format!(
                "# {} = {:<36} # {}",
                m.key,
                m.example.replace("sagemaker-REGION-ACCOUNT", &bucket),
                m.help
            ));
        }
    }
    for m in maps().iter().filter(|m| m.in_tables_of.is_none()) {
        line("");
        line(&format!(
            "# --- [{}] {}",
            m.key,
            "-".repeat(85 - m.key.len())
        ));
        line(&format!("# {}; {} KEY=VALUE overrides.", m.help, m.flag));
        line(&format!("[{}]", m.key));
        for (k, v) in m.example {
            line(&format!(
                "# {k} = {}",
                v.replace("sagemaker-REGION-ACCOUNT", &bucket)
            ));
        }
    }
    // `sagetrain tune`'s section, from its declaration.
    let section = crate::job::tune::settings::SECTION;
    line("");
    line(&format!(
        "# --- [{section}] {}",
        "-".repeat(85 - section.len())
    ));
    line("# The settings of `sagetrain tune` (with those above); its flags override them.");
    line(&format!("[{section}]"));
    for m in crate::job::tune::settings::scalars() {
        line(&format!("# {} = {:<36} # {}", m.key, m.example, m.help));
    }
    for m in crate::job::tune::settings::maps() {
        line(&format!("# {}; {} KEY=SPEC overrides.", m.help, m.flag));
        line(&format!("[{}]", m.name()));
        for (k, v) in m.example {
            line(&format!("# {k} = {v}"));
        }
    }
    o
}

/// Look up what can be filled in. Never fails: what cannot be found stays commented out, with
/// the reason in `note`.
pub async fn discover(ctx: &Context) -> Found {
    let mut found = Found::default();
    let s = match Connection::layer_checked(&ctx.global.connection, &*ctx.env, None) {
        Ok(s) => s,
        Err(v) => {
            found.note = Some(format!(
                "Nothing was looked up: invalid settings ({}).",
                v.iter()
                    .map(|v| v.to_string())
                    .collect::<Vec<_>>()
                    .join("; ")
            ));
            return found;
        }
    };
    found.profile = s
        .profile
        .as_ref()
        .filter(|p| !matches!(p.source, Source::File { .. }))
        .map(|p| p.value.clone());
    let mut aws_settings = s;
    let mut region_known = true;
    let aws = match Aws::load_with_env(&aws_settings, &*ctx.env).await {
        Ok(a) => a,
        Err(e) if e.reason == Some(crate::error::Reason::NoRegion) => {
            region_known = false;
            aws_settings.region = Some(Val::new(
                "us-east-1".into(),
                Source::Lookup("placeholder for the global services".into()),
            ));
            match Aws::load_with_env(&aws_settings, &*ctx.env).await {
                Ok(a) => a,
                Err(e) => return commented(found, &e),
            }
        }
        Err(e) => return commented(found, &e),
    };
    if region_known {
        found.region = Some((aws.region.value.clone(), aws.region.source.name_for(None)));
    }
    if let Err(e) = aws.credentials().await {
        return commented(found, &e);
    }
    let caller = match lookups::identity(&aws).await {
        Ok(i) => i,
        Err(e) => return commented(found, &e),
    };
    found.account = Some(caller.account.clone());
    found.caller_arn = Some(caller.arn.clone());
    ctx.ui
        .info(&format!("account {} (as {})", caller.account, caller.arn));
    let role = async {
        match lookups::discover_role(&aws, &caller).await {
            Ok(lookups::RoleDiscovery::Found { arn, why }) => RoleFinding::One(arn, why),
            Ok(lookups::RoleDiscovery::Several(arns)) => RoleFinding::Several(arns),
            Ok(lookups::RoleDiscovery::Missing { reason, .. }) => RoleFinding::Missing(reason),
            Err(e) => RoleFinding::Missing(e.message),
        }
    };
    let image = async {
        if !region_known {
            return (ImageFinding::Unknown, None);
        }
        match lookups::ecr_repositories(&aws.ecr()).await {
            Err(e) => (ImageFinding::Unknown, Some(e.message)),
            Ok(repos) => match choose_repository(&repos) {
                ImageFinding::One(repo, _) => {
                    let images = lookups::ecr_tagged_images(&aws.ecr(), &repo).await;
                    let (tag, note) = match images.as_deref().and_then(choose_tag) {
                        Some(t) => (t, None),
                        None => (
                            "latest".to_string(),
                            Some(format!(
                                "No image pushed to {repo} yet: push one (see examples/README.md)."
                            )),
                        ),
                    };
                    (ImageFinding::One(format!("{repo}:{tag}"), note), None)
                }
                other => (other, None),
            },
        }
    };
    let (role, (image, image_error)) = tokio::join!(role, image);
    found.role = role;
    found.image = image;
    let mut notes = Vec::new();
    if !region_known {
        notes.push("No region is set (--region, AWS_REGION or the profile's region): set `region` below; ECR was not searched.".to_string());
    }
    if let Some(e) = image_error {
        notes.push(format!("ECR could not be searched: {e}"));
    }
    if !notes.is_empty() {
        found.note = Some(notes.join("\n"));
    }
    found
}

fn commented(mut found: Found, e: &Error) -> Found {
    let why = match e.kind {
        Kind::Credentials => "no usable AWS credentials",
        _ => "AWS could not be asked",
    };
    found.region = None;
    found.note = Some(format!(
        "Nothing was looked up ({why}: {}), so every value is a commented example.\n\
         Once `sagetrain doctor` passes the credentials check, `sagetrain init --force` fills them in.",
        e.message
    ));
    found
}

pub async fn run(ctx: &Context, args: &InitArgs) -> Result<()> {
    if args.create_role {
        return super::init_role::run(ctx, args).await;
    }
    let path = ctx.cwd.join(CONFIG_FILE_NAME);
    let exists_error = || {
        Error::usage(format!(
            "{} already exists; it was not changed",
            path.display()
        ))
        .with_hint("`sagetrain init --force` replaces it; `sagetrain init --print` shows the new file without writing it")
    };
    if !args.print && !args.force && path.exists() {
        return Err(exists_error());
    }
    let found = if args.offline {
        Found {
            note: Some(
                "--offline: nothing was looked up, so every value is a commented example.".into(),
            ),
            ..Found::default()
        }
    } else {
        discover(ctx).await
    };
    let text = render(&found);
    // The guard of every config file: it must parse and hold no credential.
    crate::config::LoadedFile::parse(&path, &text)
        .and_then(|f| crate::job::settings::check_file(&f))
        .map_err(|e| {
            Error::internal(format!(
                "the file init would write is not valid, so it was not written: {}",
                e.message
            ))
        })?;
    report_found(ctx, &found);
    if args.print {
        ctx.ui.result_text(text.trim_end());
        return Ok(());
    }
    fsutil::write_atomic(&path, text.as_bytes(), None, args.force).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            exists_error()
        } else {
            Error::internal(format!("cannot write {}: {e}", path.display()))
        }
    })?;
    if ctx.json() {
        let role = match &found.role {
            RoleFinding::One(arn, _) => Some(arn.clone()),
            _ => None,
        };
        let image = match &found.image {
            ImageFinding::One(i, _) => Some(i.clone()),
            _ => None,
        };
        ctx.ui.result_json(&serde_json::json!({
            "path": path.display().to_string(),
            "region": found.region.as_ref().map(|r| r.0.clone()),
            "account": found.account,
            "role": role,
            "image": image,
            "note": found.note,
        }));
    } else {
        ctx.ui.result_text(&format!("wrote {}", path.display()));
    }
    ctx.ui
        .info("next: edit the commented values you need, then run `sagetrain doctor`");
    Ok(())
}

fn report_found(ctx: &Context, f: &Found) {
    let ui = &ctx.ui;
    if let Some(n) = &f.note {
        ui.warn(&n.replace('\n', " "));
    }
    if let Some((r, from)) = &f.region {
        ui.info(&format!("region: {r} (from {from})"));
    }
    match &f.role {
        RoleFinding::One(arn, how) => ui.info(&format!("execution role: {arn} ({how})")),
        RoleFinding::Several(c) => ui.info(&format!(
            "execution role: {} candidates, left commented out: {}",
            c.len(),
            c.join(", ")
        )),
        RoleFinding::Missing(why) => ui.info(&format!(
            "execution role: none found ({why}); left as an example"
        )),
        RoleFinding::Unknown => {}
    }
    match &f.image {
        ImageFinding::One(i, _) => ui.info(&format!("image: {i}")),
        ImageFinding::Several(r) => ui.info(&format!(
            "image: several repositories look like the U-Net image, left commented out: {}",
            r.join(", ")
        )),
        ImageFinding::Missing(_) => {
            ui.info("image: no ECR repository looks like the U-Net image; left as an example")
        }
        ImageFinding::Unknown => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::settings::{TrainArgs, TrainSettings};
    use std::path::Path;

    /// What `train` reads from the file (no flags, no environment); the file must pass the check.
    fn parse(path: &str, text: &str) -> TrainSettings {
        let f = crate::config::LoadedFile::parse(Path::new(path), text)
            .unwrap_or_else(|e| panic!("{}\n{text}", e.message));
        crate::job::settings::check_file(&f).unwrap_or_else(|e| panic!("{}\n{text}", e.message));
        let g = crate::aws::connection::ConnectionArgs::default();
        TrainSettings::layer(&g, &TrainArgs::default(), &|_| None, Some(&f)).unwrap()
    }

    fn val<T: Clone>(v: &Option<Val<T>>) -> Option<T> {
        v.as_ref().map(|v| v.value.clone())
    }

    fn full() -> Found {
        Found {
            region: Some(("eu-west-1".into(), "AWS_REGION".into())),
            account: Some("111122223333".into()),
            caller_arn: Some("arn:aws:sts::111122223333:assumed-role/Dev/me".into()),
            profile: Some("ml".into()),
            role: RoleFinding::One(
                "arn:aws:iam::111122223333:role/service-role/SageMakerRole".into(),
                "the only role in the account that trusts sagemaker.amazonaws.com".into(),
            ),
            image: ImageFinding::One("unet-vessels:latest".into(), None),
            note: None,
        }
    }

    #[test]
    fn a_filled_in_file_parses_and_carries_what_was_found() {
        let text = render(&full());
        let c = parse("sagetrain.toml", &text);
        assert_eq!(val(&c.connection.region).as_deref(), Some("eu-west-1"));
        assert_eq!(
            val(&c.role).as_deref(),
            Some("arn:aws:iam::111122223333:role/service-role/SageMakerRole")
        );
        assert_eq!(val(&c.image).as_deref(), Some("unet-vessels:latest"));
        assert_eq!(
            c.connection.profile, None,
            "the profile stays a comment: it is machine-specific"
        );
        assert!(c.hyperparameters.is_empty() && c.channels.is_empty());
        assert!(text.contains("account 111122223333"));
        assert!(text.contains("s3://sagemaker-eu-west-1-111122223333/sagetrain/"));
    }

    #[test]
    fn an_empty_finding_gives_a_template_with_everything_commented() {
        let f = Found {
            note: Some("--offline: nothing was looked up.".into()),
            ..Found::default()
        };
        let text = render(&f);
        let c = parse("sagetrain.toml", &text);
        assert!(c.connection.region.is_none() && c.role.is_none() && c.image.is_none());
        for l in text.lines() {
            let t = l.trim();
            assert!(
                t.is_empty() || t.starts_with('#') || t.starts_with('['),
                "an uncommented value: {l}"
            );
        }
        // Every commented example is valid once uncommented.
        let example = regex::Regex::new(r"^# ([a-z_]+|[A-Z_]+) = ").unwrap();
        let uncommented: String = text
            .lines()
            .map(|l| {
                if example.is_match(l) {
                    l[2..].to_string()
                } else if l.starts_with('[') {
                    l.to_string()
                } else {
                    String::new()
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
        let c = parse("x.toml", &uncommented);
        assert_eq!(val(&c.image).as_deref(), Some("unet-vessels:latest"));
        assert_eq!(c.hyperparameters.len(), 3);
        assert_eq!(c.channels.len(), 2);
        // The commented [tune] section: every tune setting, read from the file.
        let f = crate::config::LoadedFile::parse(Path::new("x.toml"), &uncommented).unwrap();
        let t = crate::job::tune::TuneSettings::layer(&Default::default(), Some(&f)).unwrap();
        assert_eq!(t.ranges.len(), 2);
        for row in t.declared_rows() {
            assert!(
                matches!(row.source, Some(Source::File { .. })),
                "{} is not in init's [tune] section",
                row.name
            );
        }
    }

    #[test]
    fn several_candidates_are_listed_commented_out() {
        let f = Found {
            role: RoleFinding::Several(vec![
                "arn:aws:iam::1:role/A".into(),
                "arn:aws:iam::1:role/B".into(),
            ]),
            image: ImageFinding::Several(vec!["unet-a".into(), "unet-b".into()]),
            ..full()
        };
        let text = render(&f);
        let c = parse("sagetrain.toml", &text);
        assert!(c.role.is_none() && c.image.is_none());
        assert!(text.contains("# role = \"arn:aws:iam::1:role/B\""));
        assert!(text.contains("# image = \"unet-b:latest\""));
    }

    #[test]
    fn repositories_named_like_unet_or_the_only_one_are_chosen() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(
            choose_repository(&s(&["base", "UNet-Vessels", "tools"])),
            ImageFinding::One("UNet-Vessels".into(), None)
        );
        assert_eq!(
            choose_repository(&s(&["segmenter"])),
            ImageFinding::One("segmenter".into(), None)
        );
        assert_eq!(
            choose_repository(&s(&["a", "b"])),
            ImageFinding::Missing(s(&["a", "b"]))
        );
        assert_eq!(
            choose_repository(&s(&["unet-a", "unet-b", "c"])),
            ImageFinding::Several(s(&["unet-a", "unet-b"]))
        );
        assert_eq!(choose_repository(&[]), ImageFinding::Missing(vec![]));
    }

    #[test]
    fn latest_wins_otherwise_the_newest_tag() {
        let img = |t: &[&str], at: i64| (t.iter().map(|x| x.to_string()).collect(), at);
        assert_eq!(
            choose_tag(&[img(&["v1"], 5), img(&["latest", "v0"], 1)]),
            Some("latest".into())
        );
        assert_eq!(
            choose_tag(&[img(&["v1"], 5), img(&["v2"], 9), img(&[], 20)]),
            Some("v2".into())
        );
        assert_eq!(choose_tag(&[]), None);
    }
}
