//! `sagetrain train`: resolve, validate, and create one training job.

use super::Context;
use crate::aws::Aws;
use crate::cli::{TrainArgs, TrainCmd};
use crate::config::layer::cells;
use crate::config::{Source, Val};
use crate::data::{self, scan::ScanOptions, scan::Scanned, Prepared};
use crate::error::{Error, Kind, Result};
use crate::job::create::submission_id;
use crate::job::from_job;
use crate::job::lookups::{self, Identity};
use crate::job::remembered;
use crate::job::request::{build_request, validate_request, CreateTrainingJobRequest, Resolved};
use crate::job::settings::TrainSettings;
use crate::job::spec::{generate_job_name, validate, violations_error, JobSpec};
use crate::job::{code, pools, state};
use crate::job::{cost, quota};
use crate::refs::{channel_location, ChannelLocation};
use crate::ui::Ui;
use std::time::SystemTime;

/// The request and how its values were found: what `--dry-run` prints and `train` sends.
pub struct Plan {
    pub request: CreateTrainingJobRequest,
    /// What `train` says about the account's Available warm pools.
    pub pool_notes: Vec<String>,
    pub resolved: Resolved,
    pub aws: Option<Aws>,
}

/// Settings from flags, environment and file. No network.
pub fn layered(ctx: &Context, args: &TrainArgs) -> Result<TrainSettings> {
    let file = ctx.config_file()?;
    TrainSettings::layer(&ctx.global.connection, args, &*ctx.env, file.as_ref())
        .map_err(violations_error)
}

/// Settings from flags, environment and file, validated. No network.
pub fn settings(ctx: &Context, args: &TrainArgs) -> Result<JobSpec> {
    checked(ctx, &layered(ctx, args)?)
}

/// Validate, and warn of what the rules accepted with a warning (stderr).
pub fn checked(ctx: &Context, s: &TrainSettings) -> Result<JobSpec> {
    let spec = validate(s, &ctx.cwd).map_err(|v| match &s.config_path {
        Some(_) => violations_error(v),
        // A first run: nothing is set up yet.
        None => violations_error(v).with_hint(NOT_SET_UP),
    })?;
    for w in &spec.warnings {
        ctx.ui.warn(w);
    }
    Ok(spec)
}

/// The next step when settings are missing and there is no config file.
pub const NOT_SET_UP: &str = "no sagetrain.toml was found in this folder or its parents: `sagetrain init` writes one filled in from your AWS account, and `sagetrain doctor` checks your setup (credentials, role, image, bucket); or give the values as flags";

/// Settings for `train --from JOB`: flags, the job, environment, file; then validated.
pub async fn from_settings(ctx: &Context, args: &TrainArgs, job: &str) -> Result<JobSpec> {
    if args.offline {
        return Err(Error::usage(
            "--from needs to read the job from SageMaker, so it cannot be used with --offline",
        )
        .with_hint("drop --offline (--dry-run still creates nothing)"));
    }
    let mut s = layered(ctx, args)?;
    let aws = super::jobcmd::sign_in(ctx, &s.connection, false).await?;
    let described = from_job::read(&aws, job, &|w| ctx.ui.warn(w)).await?;
    for n in from_job::notes(&described) {
        ctx.ui.warn(&n);
    }
    let over = from_job::apply(&mut s, job, &described);
    ctx.ui.info(&format!(
        "starting from job {job} (--from): its settings, with the flags given here over them"
    ));
    if !over.is_empty() {
        ctx.ui.info(&format!(
            "the job's settings replace these from the environment or sagetrain.toml: {}",
            over.join(", ")
        ));
    }
    checked(ctx, &s)
}

pub(super) fn job_name(s: &JobSpec, submission: &str, ui: &Ui) -> Val<String> {
    if let Some(n) = &s.name {
        return n.clone();
    }
    let (base, src) = crate::job::spec::base_name(s);
    let name = generate_job_name(&base, SystemTime::now(), submission);
    let sanitized = crate::job::spec::sanitize_base(&base);
    if sanitized != base {
        ui.detail(&format!(
            "job base name `{base}` sanitized to `{sanitized}`"
        ));
    }
    Val::new(
        name,
        Source::Lookup(format!("generated from base name ({src})")),
    )
}

/// What earlier runs found (the account of the credentials, the default bucket): in the user
/// cache folder, not read with `--refresh`.
fn remembered(ctx: &Context) -> remembered::Remembered {
    remembered::Remembered::new(crate::fsutil::cache_dir(&*ctx.env), ctx.global.refresh)
}

/// Whether an Available warm pool could be reused by this job, so that it is worth listing
/// them: the job asks for one (`--keep-alive`), or the project's last job kept one (in the
/// job's region). `Err`: why not (said with `-v`).
fn pool_could_match(
    ctx: &Context,
    s: &JobSpec,
    region: &str,
) -> std::result::Result<String, String> {
    if s.keep_alive.is_some() {
        return Ok("this job keeps its instances (--keep-alive)".into());
    }
    let project = state::project_dir(s.config_path.as_deref(), &ctx.cwd);
    match state::load(&project) {
        // An unreadable state file says nothing: look, as before there was one.
        Err(_) => Ok("the project's state file could not be read".into()),
        Ok(Some(last)) if last.keep_alive_seconds.is_some() && last.region == region => Ok(format!(
            "the project's last job {} kept a warm pool",
            last.job_name
        )),
        Ok(last) => Err(format!(
            "this job asks for no --keep-alive and {}; SageMaker may still reuse a matching pool (`sagetrain pool list` shows them)",
            match last {
                Some(l) if l.region != region => format!("the project's last job {} ran in {}", l.job_name, l.region),
                Some(l) => format!("the project's last job {} kept no warm pool", l.job_name),
                None => "no job was submitted from this project yet".to_string(),
            }
        )),
    }
}

/// Collect the first error of several concurrent lookups, credentials errors first, and keep
/// the others as details.
fn first_error(errors: Vec<Error>) -> Error {
    let mut errors = errors;
    errors.sort_by_key(|e| if e.kind == Kind::Credentials { 0 } else { 1 });
    let mut first = errors.remove(0);
    if first.kind != Kind::Credentials {
        for e in errors {
            first.details.push(format!("also: {}", e.message));
        }
    }
    first
}

/// Resolve every value, with the independent lookups running concurrently, and give local
/// channel folders (scanned by [`data::prepare`]) and the local code folder (scanned by
/// [`code::prepare`]) their content-addressed URIs in the output bucket.
pub async fn plan_with_data(
    ctx: &Context,
    s: &JobSpec,
    local: &[Prepared],
    code: Option<&Scanned>,
) -> Result<Plan> {
    let ui = &ctx.ui;
    let submission = submission_id();
    if s.offline {
        // Validation proved these are given with --offline.
        let offline = (|| {
            Some(Resolved {
                submission_id: submission.clone(),
                region: s.connection.region.clone()?.value,
                role_arn: s.role.clone()?,
                training_image: s.image.clone(),
                output_path: s.output_path.clone()?,
                job_name: job_name(s, &submission, ui),
                // Validation proved these are ARNs with --offline.
                secrets: s
                    .secrets
                    .iter()
                    .map(|(name, r)| (name.clone(), r.value.env_value(&r.value.id)))
                    .collect(),
            })
        })();
        let resolved = offline.ok_or_else(|| {
            Error::internal(
                "--offline settings passed validation without a region, role or output path",
            )
        })?;
        return finish(s, local, code, resolved, None, Vec::new());
    }

    let aws = super::jobcmd::sign_in(ctx, &s.connection, true).await?;
    let region = aws.region.value.clone();

    let image_val = s.image.clone();
    // The account of these credentials, if an earlier run found it: then the default bucket and
    // role discovery need not wait for sts:GetCallerIdentity, and every lookup is one round.
    let memo = remembered(ctx);
    let creds = aws.credentials().await?;
    let profile = creds
        .source
        .profile_name()
        .and(aws.profile_identity.as_deref());
    let keys = remembered::account_keys(creds.credentials.access_key_id(), profile);
    let known = memo.account(&keys);
    let identity_chain = async {
        let id: Identity = match known.clone() {
            Some(id) => id,
            None => {
                let id = lookups::identity(&aws).await?;
                memo.remember_account(&keys, &id);
                id
            }
        };
        let (role, output) = tokio::join!(
            async {
                match &s.role {
                    None => lookups::role_discovered(&aws, &id).await.map(Some),
                    Some(_) => Ok(None),
                }
            },
            lookups::output_path_remembered(
                &aws,
                s.output_path.as_ref(),
                &id.account,
                &region,
                s.dry_run,
                &memo,
            ),
        );
        Ok::<_, Error>((id, role, output))
    };
    let role_given = async {
        match &s.role {
            Some(r) => lookups::role_given(&aws, r).await.map(Some),
            None => Ok(None),
        }
    };
    let image = lookups::image(&aws, &image_val, s.pin_digest, &region);
    let channels = futures::future::join_all(
        s.channels
            .iter()
            .filter(|(name, _)| !local.iter().any(|p| &p.channel.name == *name))
            .map(|(name, uri)| lookups::check_channel(&aws, name, uri, &region)),
    );
    let secrets = futures::future::join_all(
        s.secrets
            .iter()
            .map(|(name, r)| lookups::secret(&aws, name, r, &region)),
    );
    // The account's Available warm pools, beside the other lookups, when one could be reused.
    // A failure here costs only the note, never the job.
    let sm = aws.sagemaker();
    let pool_reason = pool_could_match(ctx, s, &region);
    let warm_pools = async {
        match &pool_reason {
            Ok(_) => pools::available(&sm).await,
            Err(_) => Ok(Vec::new()),
        }
    };
    // The account's quota of the instance types, beside the other lookups; the instances that
    // running jobs and warm pools hold are counted only when a quota was found.
    let ask = quota::Ask {
        types: if s.instance_preferences.is_empty() {
            vec![s.instance_type.clone()]
        } else {
            s.instance_preferences.clone()
        },
        count: i64::from(s.instance_count),
        concurrent: s.concurrent_jobs,
        spot: s.spot,
        region: region.clone(),
    };
    let quota_scope = format!("{region} {}", keys.first().cloned().unwrap_or_default());
    let quota_client = aws.quotas();
    let quota_check = async {
        let found = lookups::quotas(&quota_client, &memo, &quota_scope, &ask.types, ask.spot).await;
        let used = match &found {
            Ok(q) if q.values().flatten().any(|q| q.value >= 1.0) => {
                Some(lookups::instances_in_use(&sm).await)
            }
            _ => None,
        };
        (found, used)
    };
    // The on-demand price of each type (remembered for a day), for the worst case.
    let pricing = aws.pricing();
    let prices = futures::future::join_all(ask.types.iter().map(|t| {
        let (pricing, memo, region) = (&pricing, &memo, &region);
        async move { (t.clone(), lookups::price(pricing, memo, region, t).await) }
    }));
    let (chain, role_given, image, channels, secrets, warm_pools, (quotas, used), prices) = tokio::join!(
        identity_chain,
        role_given,
        image,
        channels,
        secrets,
        warm_pools,
        quota_check,
        prices
    );
    let quota_verdict = match quotas {
        Err(why) => {
            ui.warn(&format!(
                "the instance quota was not checked: {why}; the job may still be refused for lack of quota (allow servicequotas:ListServiceQuotas and GetServiceQuota to have it checked)"
            ));
            None
        }
        Ok(q) => {
            if q.values().all(Option::is_none) {
                ui.detail(&format!(
                    "no training quota of {} in Service Quotas: not checked",
                    ask.types.join(", ")
                ));
            }
            let used = match used {
                Some(Ok(u)) => u,
                Some(Err(e)) => {
                    ui.warn(&format!(
                        "the instances of running jobs could not be counted ({}); the quota is checked without them",
                        e.message
                    ));
                    Default::default()
                }
                None => Default::default(),
            };
            Some(quota::verdict(&ask, &q, &used))
        }
    };
    match &pool_reason {
        Ok(why) => ui.detail(&format!("warm pools looked up: {why}")),
        Err(why) => ui.detail(&format!("warm pools not looked up: {why}")),
    }
    let warm_pools = warm_pools.unwrap_or_else(|e| {
        ui.detail(&format!("warm pools could not be listed: {}", e.message));
        Vec::new()
    });

    let mut errors = Vec::new();
    let mut found_role = None;
    let mut output = None;
    let mut identity = None;
    match chain {
        Ok((id, role, out)) => {
            identity = Some(id);
            match role {
                Ok(r) => found_role = r,
                Err(e) => errors.push(e),
            }
            match out {
                Ok(o) => output = Some(o),
                Err(e) => errors.push(e),
            }
        }
        Err(e) => errors.push(e),
    }
    match role_given {
        Ok(Some(r)) => found_role = Some(r),
        Ok(None) => {}
        Err(e) => errors.push(e),
    }
    let image = match image {
        Ok(i) => Some(i),
        Err(e) => {
            errors.push(e);
            None
        }
    };
    errors.extend(channels.into_iter().filter_map(|c| c.err()));
    let mut dropped = Vec::new();
    if let Some(v) = quota_verdict {
        for n in &v.notes {
            ui.info(n);
        }
        if let Some((message, hint)) = v.refusal {
            errors.push(Error::aws(message).with_hint(hint));
        }
        dropped = v.dropped;
    }
    let mut secret_arns = std::collections::BTreeMap::new();
    for found in secrets {
        match found {
            Ok((name, arn)) => {
                secret_arns.insert(name, arn);
            }
            Err(e) => errors.push(e),
        }
    }
    let (
        Some(identity),
        Some((image, image_notes)),
        Some((output_path, output_notes)),
        Some(role_arn),
        true,
    ) = (identity, image, output, found_role, errors.is_empty())
    else {
        return Err(if errors.is_empty() {
            Error::internal("a lookup gave neither a value nor an error")
        } else {
            first_error(errors)
        });
    };
    ui.detail(&format!(
        "caller: {} (account {}{})",
        identity.arn,
        identity.account,
        if known.is_some() {
            ", remembered from an earlier run; --refresh asks again"
        } else {
            ""
        }
    ));
    for n in image_notes {
        ui.warn(&n);
    }
    for n in output_notes {
        ui.info(&n);
    }
    ui.info(&format!(
        "execution role: {} ({})",
        role_arn.value, role_arn.source
    ));
    ui.info(&format!("image: {} ({})", image.value, image.source));

    cost_check(ui, s, &prices, &dropped, &region)?;

    let resolved = Resolved {
        submission_id: submission.clone(),
        region,
        role_arn,
        training_image: image,
        output_path,
        job_name: job_name(s, &submission, ui),
        secrets: secret_arns,
    };
    for (name, arn) in &resolved.secrets {
        ui.info(&format!(
            "secret {name}: the job reads it from {arn} (its value is not sent)"
        ));
    }
    // Preferences without quota room are left out of the request.
    let mut kept = s.clone();
    if !dropped.is_empty() {
        kept.instance_preferences.retain(|t| !dropped.contains(t));
        if let [only] = kept.instance_preferences.as_slice() {
            kept.instance_type = only.clone();
            kept.instance_preferences.clear();
        } else if let Some(first) = kept.instance_preferences.first() {
            kept.instance_type = first.clone();
        }
    }
    let mut plan = finish(&kept, local, code, resolved, Some(aws), Vec::new())?;
    plan.pool_notes = pools::verdict(&warm_pools, &plan.request);
    Ok(plan)
}

/// The worst case at the on-demand price (the dearest type the job may run on), said before
/// the submit; `--max-cost` refuses a job above it, or whose price cannot be found.
fn cost_check(
    ui: &crate::ui::Ui,
    s: &JobSpec,
    prices: &[(String, std::result::Result<Option<f64>, String>)],
    dropped: &[String],
    region: &str,
) -> Result<()> {
    let mut hourly: Option<f64> = None;
    let mut missing = Vec::new();
    for (t, p) in prices.iter().filter(|(t, _)| !dropped.contains(t)) {
        match p {
            Ok(Some(h)) => hourly = Some(hourly.map_or(*h, |x: f64| x.max(*h))),
            Ok(None) => missing.push(format!(
                "{t}: the Price List has no training price in {region}"
            )),
            Err(why) => missing.push(format!("{t}: {why}")),
        }
    }
    let estimate = hourly
        .filter(|_| missing.is_empty())
        .map(|h| cost::Estimate {
            hourly: h,
            instances: i64::from(s.instance_count),
            max_run: i64::from(s.max_run),
            jobs: s.jobs,
            spot: s.spot,
        });
    match (estimate, s.max_cost) {
        (Some(e), budget) => {
            ui.info(&e.line());
            if let Some(why) = budget.and_then(|m| cost::over_budget(&e, m)) {
                return Err(Error::usage(format!("--max-cost: {why}")).with_hint(
                    "lower --max-run, --instance-count or the instance type, or raise --max-cost (`max_cost` in sagetrain.toml)",
                ));
            }
        }
        (None, Some(m)) => return Err(Error::usage(format!(
            "--max-cost {}: the worst case cannot be checked without the price ({})",
            cost::usd(m),
            missing.join("; ")
        ))
        .with_hint(
            "allow pricing:GetProducts (examples/iam/developer-policy.json), or drop --max-cost",
        )),
        (None, None) => ui.warn(&format!(
            "the cost was not estimated: {}",
            missing.join("; ")
        )),
    }
    Ok(())
}

/// The request from the spec, with local channels given their content-addressed URIs in the
/// output bucket, checked once more with the values the lookups found.
fn finish(
    s: &JobSpec,
    local: &[Prepared],
    code: Option<&Scanned>,
    resolved: Resolved,
    aws: Option<Aws>,
    pool_notes: Vec<String>,
) -> Result<Plan> {
    let mut s = s.clone();
    let bucket = data::bucket_of(&resolved.output_path.value)?;
    s.channels = data::substitute(&s.channels, local, &bucket);
    if let (Some(c), Some(scanned)) = (s.code.as_mut(), code) {
        let how = format!(
            "local folder {} ({}), content-addressed",
            c.source.value, c.source.source
        );
        c.source = Val::new(
            code::target(&bucket, &scanned.digest).uri(),
            Source::Lookup(how),
        );
    }
    let request = build_request(&s, &resolved);
    check_request(&request)?;
    Ok(Plan {
        request,
        pool_notes,
        resolved,
        aws,
    })
}

/// Scan the local code folder of `--source` (no network), or nothing when the code is an S3
/// prefix already (`--from`) or there is no code mode.
fn prepare_code(ctx: &Context, s: &JobSpec, opts: ScanOptions) -> Result<Option<Scanned>> {
    let Some(c) = &s.code else {
        return Ok(None);
    };
    let ChannelLocation::Local(dir) =
        channel_location(&c.source, &ctx.cwd).map_err(Error::usage)?
    else {
        ctx.ui.info(&format!(
            "code: {} ({}), entry {}",
            c.source.value, c.source.source, c.entry
        ));
        return Ok(None);
    };
    let scanned = code::prepare(&ctx.ui, &*ctx.env, &c.source.value, &dir, opts)?;
    if !scanned.files.iter().any(|f| f.rel == c.entry) {
        return Err(Error::usage(format!(
            "--entry: {} is in {} but would not be uploaded (excluded by .sagetrainignore, or a symlink)",
            c.entry,
            dir.display()
        ))
        .with_hint("remove it from .sagetrainignore, or pass --follow-symlinks"));
    }
    ctx.ui.info(&format!(
        "code: {} ({} files with the launcher, {}), entry {}, digest {}",
        dir.display(),
        scanned.files.len(),
        indicatif::DecimalBytes(scanned.bytes),
        c.entry,
        scanned.digest
    ));
    Ok(Some(scanned))
}

pub(super) fn check_request(request: &CreateTrainingJobRequest) -> Result<()> {
    let v = validate_request(request);
    if v.is_empty() {
        Ok(())
    } else {
        Err(violations_error(v))
    }
}

/// A request staged for sending (by `train` or `tune`): local data folders read and hashed
/// first (no network, and a credentials file is refused before anything is sent), then every
/// value resolved.
pub struct Staged {
    pub plan: Plan,
    pub local: Vec<Prepared>,
    /// The code folder of code mode (`--source`), scanned.
    pub code: Option<Scanned>,
    pub push_opts: data::upload::PushOptions,
    pub data_bucket: String,
}

pub async fn stage(ctx: &Context, args: &TrainArgs, s: &JobSpec) -> Result<Staged> {
    let push_opts = data::upload::PushOptions::from_env(&*ctx.env)?;
    let scan_opts = ScanOptions {
        follow_symlinks: args.follow_symlinks,
        allow_credentials_files: args.allow_credentials_files,
    };
    let local = data::prepare(&ctx.ui, &*ctx.env, &s.channels, &ctx.cwd, scan_opts).await?;
    let code = prepare_code(ctx, s, scan_opts)?;
    let plan = plan_with_data(ctx, s, &local, code.as_ref()).await?;
    let data_bucket = data::bucket_of(&plan.resolved.output_path.value)?;
    Ok(Staged {
        plan,
        local,
        code,
        push_opts,
        data_bucket,
    })
}

impl Plan {
    /// The AWS connection, which `--offline` does not make: `what` is the kind of job that
    /// cannot be created without one.
    pub fn online(&self, what: &str) -> Result<&Aws> {
        self.aws.as_ref().ok_or_else(|| {
            Error::usage(format!(
                "--offline makes no AWS call, so it creates no {what}"
            ))
            .with_hint("add --dry-run to print the request, or drop --offline")
        })
    }
}

impl Staged {
    /// `--dry-run`: what would be uploaded (on stderr), and the request of `operation` as JSON
    /// (the result).
    pub async fn dry_run(
        &self,
        ctx: &Context,
        operation: &str,
        request: &impl serde::Serialize,
    ) -> Result<()> {
        self.dry_run_report(ctx).await;
        ctx.ui.info(&format!(
            "dry run: this is the {operation} request; nothing was created"
        ));
        let json = serde_json::to_value(request).map_err(|e| Error::internal(e.to_string()))?;
        ctx.ui.result_json(&json);
        Ok(())
    }

    /// What `--dry-run` says of the local data (what would be uploaded).
    async fn dry_run_report(&self, ctx: &Context) {
        data::dry_run_report(
            &ctx.ui,
            self.plan.aws.as_ref(),
            &self.local,
            &self.data_bucket,
        )
        .await;
        if let Some(scanned) = &self.code {
            let target = code::target(&self.data_bucket, &scanned.digest);
            data::dry_run_one(&ctx.ui, self.plan.aws.as_ref(), &target, scanned, "code").await;
        }
    }

    /// Upload the local data; the job is created only once it is complete in S3.
    pub async fn push(&self, ctx: &Context, aws: &Aws) -> Result<()> {
        data::push_all(&ctx.ui, aws, &self.local, &self.data_bucket, self.push_opts).await?;
        if let Some(scanned) = &self.code {
            let target = code::target(&self.data_bucket, &scanned.digest);
            data::push(&ctx.ui, &aws.s3(), &target, scanned, false, self.push_opts).await?;
        }
        Ok(())
    }
}

/// `--wait` and what implies it (`--logs`, `--timeout`, `--stop-on-interrupt`,
/// `--poll-interval`), checked before anything else.
fn wait_options(ctx: &Context, cmd: &TrainCmd) -> Result<Option<crate::follow::WaitOptions>> {
    let f = &cmd.follow;
    let implied = [
        (f.logs, "--logs"),
        (f.timeout.is_some(), "--timeout"),
        (f.stop_on_interrupt, "--stop-on-interrupt"),
        (f.poll.poll_interval.is_some(), "--poll-interval"),
    ];
    let waiting = cmd.wait || implied.iter().any(|(on, _)| *on);
    if !waiting {
        return Ok(None);
    }
    if cmd.args.local.is_some() {
        return Err(Error::usage(
            "--wait (and --logs, --timeout, --stop-on-interrupt, --poll-interval) follow a job in SageMaker, but --local runs it here and always waits for it",
        )
        .with_hint("drop the waiting flags: the local run streams its output and ends with its verdict"));
    }
    let flag = if cmd.wait {
        "--wait"
    } else {
        implied
            .iter()
            .find(|(on, _)| *on)
            .map(|(_, f)| *f)
            .unwrap_or("--wait")
    };
    if cmd.args.dry_run || cmd.args.offline {
        return Err(Error::usage(format!(
            "{flag} waits for the job, but {} creates none",
            if cmd.args.dry_run {
                "--dry-run"
            } else {
                "--offline"
            }
        ))
        .with_hint(format!("drop {flag}, or drop --dry-run/--offline")));
    }
    super::jobcmd::wait_options(ctx, f).map(Some)
}

fn show_settings(ctx: &Context, rows: &[crate::config::layer::Row], resolved: Option<&Resolved>) {
    if ctx.ui.verbose == 0 || ctx.ui.quiet {
        return;
    }
    let mut rows = cells(rows);
    if let Some(r) = resolved {
        for (name, v) in [
            ("role_arn", &r.role_arn),
            ("training_image", &r.training_image),
            ("output_path", &r.output_path),
            ("job_name", &r.job_name),
        ] {
            rows.push((name.into(), v.value.clone(), v.source.to_string()));
        }
    }
    ctx.ui
        .detail(&Ui::table(&rows, ("setting", "value", "source")));
}

pub async fn run(ctx: &Context, cmd: &TrainCmd) -> Result<()> {
    let args = &cmd.args;
    let wait = wait_options(ctx, cmd)?;
    let s = match &cmd.from {
        Some(job) => from_settings(ctx, args, job).await?,
        None => settings(ctx, args)?,
    };
    if let Some(local) = &s.local {
        return super::local::run(ctx, &s, local).await;
    }
    if s.channels.is_empty() {
        ctx.ui.warn("no input channels: the container gets no data (add --train s3://... or [channels] in sagetrain.toml)");
    }
    let staged = stage(ctx, args, &s).await?;
    let plan = &staged.plan;
    for n in &plan.pool_notes {
        ctx.ui.info(n);
    }
    show_settings(ctx, &s.rows, Some(&plan.resolved));
    if s.dry_run {
        return staged
            .dry_run(ctx, "CreateTrainingJob", &plan.request)
            .await;
    }
    let aws = plan.online("job")?;
    let name = &plan.request.training_job_name;
    // The job is created only once its data is complete in S3.
    staged.push(ctx, aws).await?;
    crate::aws::timeouts::in_flight(Some(format!(
        "sagemaker:CreateTrainingJob of `{name}`, which may or may not have been created: check with `aws sagemaker describe-training-job --training-job-name {name}`"
    )));
    let created = crate::job::create::create(&aws.sagemaker(), &plan.request).await;
    crate::aws::timeouts::in_flight(None);
    let created = created?;
    if created.reconciled {
        ctx.ui.info(&format!(
            "reconciled: a retried CreateTrainingJob met ResourceInUse, and the existing job `{name}` is the one this request describes (an earlier attempt had created it): it is this job"
        ));
    }
    let r = &plan.resolved;
    super::jobcmd::record_last_job(
        ctx,
        s.config_path.as_deref(),
        &r.job_name.value,
        &created.job_arn,
        &r.region,
        plan.request.resource_config.keep_alive_period_in_seconds,
    );
    let result = serde_json::json!({
        "job_name": r.job_name.value,
        "job_arn": created.job_arn,
        "region": r.region,
        "role_arn": r.role_arn.value,
        "training_image": r.training_image.value,
        "output_path": r.output_path.value,
    });
    if let Some(opts) = wait {
        // The name first (in text mode), so that it is known however the wait ends.
        if !ctx.json() {
            ctx.ui.result_text(&format!(
                "training job  {}\narn           {}",
                r.job_name.value, created.job_arn
            ));
        }
        let base = match result {
            serde_json::Value::Object(m) => m,
            _ => Default::default(),
        };
        return super::jobcmd::follow_and_report(ctx, aws, &r.job_name.value, &opts, Some(base))
            .await;
    }
    if ctx.json() {
        ctx.ui.result_json(&result);
    } else {
        ctx.ui.result_text(&format!(
            "training job  {}\narn           {}",
            r.job_name.value, created.job_arn
        ));
    }
    Ok(())
}
