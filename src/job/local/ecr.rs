//! The image of a local run that the engine does not have by its name: an ECR image, resolved
//! as `train` resolves it (ecr:BatchGetImage, the tag pinned to its digest, the platform
//! checked), then run by its image ID (the config's digest): the engine's own copy when it has
//! that ID, else pulled through the ECR API with the caller's credentials (`image::pull`), in a
//! private temporary folder of the user's cache that is removed after the load.

use crate::aws::Aws;
use crate::config::Val;
use crate::error::{Error, Kind, Result};
use crate::image::engine::{self, Engine};
use crate::image::pull;
use crate::job::lookups;
use crate::ui::Ui;
use std::path::Path;

/// Resolve the ECR image `image` and make sure the engine has it: the image ID to run it by
/// (`sha256:HEX`), so that the run is pinned to the digest. `cache` is the user's cache folder.
pub async fn image(
    ui: &Ui,
    aws: &Aws,
    engine: &Engine,
    image: &Val<String>,
    cache: Option<&Path>,
) -> Result<String> {
    let ecr = aws.ecr();
    let (uri, notes, found) =
        lookups::image_found_with(&ecr, image, true, &aws.region.value).await?;
    for n in notes {
        ui.warn(&n);
    }
    let Some(found) = found else {
        return Err(Error::internal(format!(
            "--image {}: not an ECR image",
            image.value
        )));
    };
    let registry_id = Some(found.registry_id.as_str()).filter(|r| !r.is_empty());
    let (platform_digest, manifest) = pull::platform_manifest(
        &ecr,
        registry_id,
        &found.repository,
        &found.digest,
        &found.manifest,
    )
    .await?;
    if platform_digest != found.digest {
        ui.detail(&format!(
            "image: {}@{} is an index; its linux/amd64 entry is {platform_digest}",
            found.repository, found.digest
        ));
    }
    let img = pull::read_manifest(&manifest)?;
    let id = img.id().to_string();
    let name = format!("{}@{}", found.repository, found.digest);
    let from = match &found.tag {
        Some(t) => format!("{}:{t} is {name}", found.repository),
        None => name.clone(),
    };
    if engine::has_image(engine, &id).await {
        ui.info(&format!(
            "image: {from} ({}), image {id}, which {} already has: nothing to download",
            uri.source, engine.name
        ));
        return Ok(id);
    }
    let Some(cache) = cache else {
        return Err(Error::usage(format!(
            "--image {}: {} lacks this ECR image, and a pull is kept in the cache folder, which this machine has none of (HOME is not set)",
            image.value, engine.name
        ))
        .with_hint("set XDG_CACHE_HOME to a folder, or pull the image with the engine yourself and give that name"));
    };
    let parent = pull::work_dir(cache);
    let work = crate::fsutil::create_private_dir_all(&parent)
        .and_then(|_| tempfile::Builder::new().prefix("image-").tempdir_in(&parent))
        .map_err(|e| {
            Error::internal(format!("cannot create a folder in {}: {e}", parent.display()))
                .with_hint("check the permissions and free space of the cache folder (XDG_CACHE_HOME, ~/.cache)")
        })?;
    ui.info(&format!(
        "image: {from} ({}); {} lacks it: pulling it ({}) through the ECR API with your credentials",
        uri.source,
        engine.name,
        pull::summary(img.layers.len(), img.layer_bytes() + img.config.size)
    ));
    let work_path = work.path().to_path_buf();
    let pulled = tokio::select! {
        r = pull::pull(ui, &ecr, engine, registry_id, &found.repository, &img, &work_path) => r,
        sig = crate::image::interrupted() => Err(Error::new(
            sig.kind(),
            format!("the pull was interrupted ({}); nothing was loaded into {}", sig.name(), engine.name),
        )
        .with_hint("run the same command again: the pull starts over")),
    };
    // The blobs and the archive go, whatever happened.
    let _ = work.close();
    let pulled = pulled?;
    ui.info(&format!(
        "image: pulled {name} ({}) through the ECR API with your credentials; {} runs it as {}",
        pull::summary(pulled.layers, pulled.bytes),
        engine.name,
        pulled.id
    ));
    Ok(pulled.id)
}

/// The refusal of an image that is neither one the engine has nor in ECR (exit 2).
pub fn not_here(engine: &Engine, image: &str) -> Error {
    Error::new(
        Kind::Usage,
        format!(
            "--image {image}: {} has no such image, and a local run pulls only ECR images itself",
            engine.name
        ),
    )
    .with_hint(format!(
        "pull it with the engine (`{} pull {image}`), or build it here (`{} build -t {image} .`), and run again",
        engine.name, engine.name
    ))
}
