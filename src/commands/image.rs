//! `sagetrain image push [CONTEXT]`: build (or take an archive), check the platform, push to
//! ECR through the ECR API, print the digest-pinned URI.

use super::Context;
use crate::cli::{ImageCommand, PushImageArgs, TrainArgs};
use crate::config::Val;
use crate::error::{Error, Result};
use crate::image::{self, archive, engine, platform, push};
use crate::job::settings::TrainSettings;
use crate::job::spec::{violations_error, Violation};
use crate::refs::ImageRef;

pub async fn run(ctx: &Context, cmd: &ImageCommand) -> Result<()> {
    match cmd {
        ImageCommand::Push(args) => push_image(ctx, args).await,
    }
}

/// The repository of the `image` setting (flags, environment, sagetrain.toml), if any.
fn settings_image(s: &TrainSettings) -> Option<Val<String>> {
    s.image.clone()
}

/// The repository to push to: `--repo`, else the repository of the `image` setting.
fn repository(args: &PushImageArgs, s: &TrainSettings) -> std::result::Result<String, Violation> {
    let (value, what) = match (&args.repo, settings_image(s)) {
        (Some(r), _) => (r.clone(), "--repo".to_string()),
        (None, Some(i)) => (i.value.clone(), i.source.name_for(None)),
        (None, None) => {
            return Err(Violation::new(
                "--repo",
                "no repository: give --repo NAME, or set `image` (--image, SAGETRAIN_IMAGE, sagetrain.toml) to the image you train with",
            ))
        }
    };
    match ImageRef::parse(&value) {
        Ok(ImageRef::Ecr { repository, .. }) => Ok(repository),
        Ok(ImageRef::Other(_)) => Err(Violation::new(
            what,
            format!("`{value}` is not an ECR image: give the ECR repository with --repo NAME"),
        )),
        Err(rule) => Err(Violation::new(what, rule)),
    }
}

async fn push_image(ctx: &Context, args: &PushImageArgs) -> Result<()> {
    let ui = &ctx.ui;
    let file = ctx.config_file()?;
    let s = TrainSettings::layer(
        &ctx.global.connection,
        &TrainArgs::default(),
        &*ctx.env,
        file.as_ref(),
    )
    .map_err(violations_error)?;
    let mut violations = Vec::new();
    let repo = repository(args, &s).map_err(|v| violations.push(v)).ok();
    if let Some(r) = &repo {
        if let Err(rule) = ImageRef::parse(&format!("{r}:{}", args.tag)) {
            violations.push(Violation::new("--tag", rule));
        }
    }
    let engine = match &args.archive {
        Some(a) => {
            if !ctx.cwd.join(a).is_file() {
                violations.push(Violation::new(
                    "--archive",
                    format!("{} is not a file", a.display()),
                ));
            }
            None
        }
        None => match engine::find(args.engine.as_deref(), &*ctx.env) {
            Ok(e) => Some(e),
            Err(e) => return Err(e),
        },
    };
    if !violations.is_empty() {
        return Err(violations_error(violations));
    }
    let repo = repo.expect("no violations");
    let tmp = tempfile::tempdir()
        .map_err(|e| Error::internal(format!("cannot create a temporary folder: {e}")))?;

    // An archive given is read and checked before anything is sent.
    let mut image = match &args.archive {
        Some(a) => Some(read_checked(&image::plain_archive(
            &ctx.cwd.join(a),
            tmp.path(),
        )?)?),
        None => None,
    };

    let aws = super::jobcmd::sign_in(ctx, &s.connection, true).await?;
    let region = aws.region.value.clone();

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let work = async {
        if let Some(engine) = &engine {
            let context = ctx
                .cwd
                .join(args.context.as_deref().unwrap_or(std::path::Path::new(".")));
            let (ui2, e2, c2, r2, t2, d2) = (
                ui.clone(),
                engine.clone(),
                context,
                repo.clone(),
                args.tag.clone(),
                tmp.path().to_path_buf(),
            );
            let stop = stop.clone();
            let built = tokio::task::spawn_blocking(move || {
                engine::build_and_save(&ui2, &e2, &c2, &r2, &t2, &d2, &stop)
            })
            .await
            .map_err(|e| Error::internal(format!("the build task failed: {e}")))??;
            image = Some(read_checked(&built)?);
        }
        let image = image.as_ref().expect("read or built");
        let ecr = aws.ecr();
        let uri = push::ensure_repository(ui, &ecr, &repo, !args.no_create, &region).await?;
        let cache = crate::fsutil::cache_dir(&*ctx.env).map(|d| d.join("image"));
        let out = push::push(ui, &ecr, image, &repo, &args.tag, cache.as_deref()).await?;
        platform::remember_pushed(&out.digest, &image.platform);
        Ok::<_, Error>((uri, out))
    };
    let (uri, out) = tokio::select! {
        r = work => r?,
        sig = image::interrupted() => {
            // A build in progress stops too (its task sees the flag and kills the engine).
            stop.store(true, std::sync::atomic::Ordering::SeqCst);
            return Err(image::interrupted_error(sig));
        }
    };
    let image_uri = format!("{uri}@{}", out.digest);
    ui.info(&format!(
        "pushed {}:{} ({} layers sent, {} already there, {})",
        uri,
        args.tag,
        out.layers_pushed,
        out.layers_skipped,
        indicatif::DecimalBytes(out.bytes_sent)
    ));
    if ctx.json() {
        ui.result_json(&serde_json::json!({
            "repository": repo,
            "tag": args.tag,
            "digest": out.digest,
            "image_uri": image_uri,
            "layers_pushed": out.layers_pushed,
            "layers_skipped": out.layers_skipped,
            "bytes_sent": out.bytes_sent,
        }));
    } else {
        ui.result_text(&image_uri);
    }
    Ok(())
}

/// Read an archive and refuse an image SageMaker cannot run (exit 2, nothing sent).
fn read_checked(path: &std::path::Path) -> Result<archive::Image> {
    let image = archive::read(path)?;
    if !image.platform.fits() {
        return Err(platform::refused(&image.platform.to_string()));
    }
    Ok(image)
}
