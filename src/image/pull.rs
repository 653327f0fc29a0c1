//! Pulling an ECR image into the container engine through the ECR API, signed with the user's
//! own credentials: no `docker login`, and no registry token handed to the engine or written
//! anywhere. The manifest is the one the image lookup read (ecr:BatchGetImage; of an index,
//! its linux/amd64 entry, read the same way). Each blob (the config, then the layers) is read
//! from the pre-signed URL that ecr:GetDownloadUrlForLayer gives, streamed to a file and
//! checked against its digest; the blobs are packed as a docker-archive (`manifest.json`, the
//! config, the layers as they are, compressed) and loaded with `ENGINE load -i`. The image is
//! then known by its ID, the digest of its config (docker's and podman's image IDs).

use super::engine::Engine;
use super::media;
use super::platform::{self, Platform};
use crate::aws::{aws_error, error_code};
use crate::error::{Error, Reason, Result};
use crate::ui::progress::Progress;
use crate::ui::Ui;
use futures::stream::{StreamExt, TryStreamExt};
use indicatif::DecimalBytes;
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Stdio;

/// Layers downloaded at once.
pub const CONCURRENCY: usize = 4;

/// The name of the archive loaded into the engine, in the pull's folder.
pub const ARCHIVE: &str = "image.tar";

/// One blob of an image, as its manifest names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blob {
    /// `sha256:` and 64 lower-case hex digits (checked: it names a file).
    pub digest: String,
    pub size: u64,
    pub media_type: String,
}

impl Blob {
    /// The hex digits of the digest.
    pub fn hex(&self) -> &str {
        self.digest.strip_prefix("sha256:").unwrap_or(&self.digest)
    }
}

/// The blobs of a single-platform image manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    pub config: Blob,
    pub layers: Vec<Blob>,
}

impl Image {
    /// The image ID an engine gives it: the config's digest.
    pub fn id(&self) -> &str {
        &self.config.digest
    }

    /// The bytes of its layers, compressed, as they are downloaded.
    pub fn layer_bytes(&self) -> u64 {
        self.layers.iter().map(|l| l.size).sum()
    }

    /// The config, then each distinct layer: what is downloaded.
    pub fn blobs(&self) -> Vec<&Blob> {
        let mut seen = HashSet::new();
        std::iter::once(&self.config)
            .chain(&self.layers)
            .filter(|b| seen.insert(b.digest.as_str()))
            .collect()
    }
}

/// Is `d` a sha256 digest (`sha256:` and 64 lower-case hex digits)?
pub fn is_digest(d: &str) -> bool {
    d.strip_prefix("sha256:").is_some_and(|h| {
        h.len() == 64
            && h.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// The file of a blob in the archive: the config `HEX.json`, a layer `HEX.tar.gz` (`.tar`,
/// `.tar.zst` by its compression; engines read the compression from the bytes).
pub fn file_name(blob: &Blob, config: bool) -> String {
    let ext = if config {
        "json"
    } else if blob.media_type.ends_with("zstd") {
        "tar.zst"
    } else if blob.media_type.ends_with("tar") {
        "tar"
    } else {
        "tar.gz"
    };
    format!("{}.{ext}", blob.hex())
}

fn manifest_error(why: impl std::fmt::Display) -> Error {
    Error::aws(format!(
        "the image's manifest in ECR cannot be pulled here: {why}"
    ))
    .with_hint("push the image again with `sagetrain image push CONTEXT` (a Docker v2 or OCI manifest for linux/amd64), or pull it with the container engine and give that name to --image")
}

/// The config and layers of a single-platform manifest (Docker v2 schema 2 or OCI).
pub fn read_manifest(manifest: &str) -> Result<Image> {
    let doc: serde_json::Value = serde_json::from_str(manifest)
        .map_err(|e| manifest_error(format!("it is not JSON ({e})")))?;
    if doc["manifests"].is_array() {
        return Err(manifest_error(
            "it is an index, not the manifest of one platform",
        ));
    }
    if doc["schemaVersion"].as_i64() != Some(2) {
        return Err(manifest_error(format!(
            "schema version {} (only version 2 is read)",
            doc["schemaVersion"]
        )));
    }
    if let Some(t) = doc["mediaType"].as_str() {
        if t != media::DOCKER_MANIFEST && t != media::OCI_MANIFEST {
            return Err(manifest_error(format!("its media type is {t}")));
        }
    }
    let blob = |v: &serde_json::Value, what: &str| -> Result<Blob> {
        let digest = v["digest"].as_str().unwrap_or_default();
        if !is_digest(digest) {
            return Err(manifest_error(format!(
                "its {what} has the digest `{digest}`, not sha256: and 64 hex digits"
            )));
        }
        let media_type = v["mediaType"].as_str().unwrap_or_default().to_string();
        if media_type.contains("foreign") || media_type.contains("nondistributable") {
            return Err(manifest_error(format!(
                "its {what} is a foreign layer ({media_type}), which ECR does not hold"
            )));
        }
        Ok(Blob {
            digest: digest.to_string(),
            size: v["size"].as_u64().unwrap_or(0),
            media_type,
        })
    };
    let config = blob(&doc["config"], "config")?;
    let layers = doc["layers"]
        .as_array()
        .ok_or_else(|| manifest_error("it names no layers"))?
        .iter()
        .enumerate()
        .map(|(i, l)| blob(l, &format!("layer {}", i + 1)))
        .collect::<Result<Vec<_>>>()?;
    Ok(Image { config, layers })
}

/// The `manifest.json` of a docker-archive holding `image` (`docker save`'s format), the image
/// named by `repo_tags` (none: it is known by its ID only).
pub fn archive_manifest(image: &Image, repo_tags: &[String]) -> String {
    serde_json::json!([{
        "Config": file_name(&image.config, true),
        "RepoTags": repo_tags,
        "Layers": image.layers.iter().map(|l| file_name(l, false)).collect::<Vec<_>>(),
    }])
    .to_string()
}

/// Are the bytes downloaded (`got`, the hex of their sha256, and `size`) the blob's?
pub fn check(blob: &Blob, got: &str, size: u64) -> std::result::Result<(), String> {
    if got != blob.hex() {
        return Err(format!(
            "its bytes hash to sha256:{got}, not {} as the manifest says",
            blob.digest
        ));
    }
    if blob.size != 0 && size != blob.size {
        return Err(format!(
            "it is {size} bytes, not {} as the manifest says",
            blob.size
        ));
    }
    Ok(())
}

/// `url` without its query: a pre-signed URL's signature, never shown.
fn without_query(url: &str) -> &str {
    url.split('?').next().unwrap_or(url)
}

/// The manifest of the linux/amd64 image: `manifest` itself (with `digest`), or the amd64
/// entry of an index, read with ecr:BatchGetImage. An index without one is refused (exit 4).
pub async fn platform_manifest(
    ecr: &aws_sdk_ecr::Client,
    registry_id: Option<&str>,
    repository: &str,
    digest: &str,
    manifest: &str,
) -> Result<(String, String)> {
    let doc: serde_json::Value = serde_json::from_str(manifest)
        .map_err(|e| manifest_error(format!("it is not JSON ({e})")))?;
    let Some(entries) = platform::index_entries(&doc) else {
        return Ok((digest.to_string(), manifest.to_string()));
    };
    let entry = platform::amd64_entry(&entries)
        .map_err(|found| platform::wrong_platform(repository, digest, &found))?;
    let out = ecr
        .batch_get_image()
        .repository_name(repository)
        .set_registry_id(registry_id.map(str::to_string))
        .image_ids(
            aws_sdk_ecr::types::ImageIdentifier::builder()
                .image_digest(&entry)
                .build(),
        )
        .set_accepted_media_types(Some(
            platform::ACCEPTED.iter().map(|s| s.to_string()).collect(),
        ))
        .send()
        .await
        .map_err(|e| aws_error("ecr:BatchGetImage", &e))?;
    match out.images().first().and_then(|i| i.image_manifest()) {
        Some(m) => Ok((entry, m.to_string())),
        None => Err(Error::aws(format!(
            "the linux/amd64 entry {entry} of {repository}@{digest} is not in the repository ({})",
            out.failures()
                .first()
                .and_then(|f| f.failure_code())
                .map_or("no manifest".to_string(), |c| c.as_str().to_string())
        ))
        .with_hint(format!(
            "push the image again (`sagetrain image push CONTEXT --repo {repository}`)"
        ))),
    }
}

/// The pre-signed URL of one blob (ecr:GetDownloadUrlForLayer).
async fn download_url(
    ecr: &aws_sdk_ecr::Client,
    registry_id: Option<&str>,
    repository: &str,
    blob: &Blob,
) -> Result<String> {
    let out = ecr
        .get_download_url_for_layer()
        .repository_name(repository)
        .layer_digest(&blob.digest)
        .set_registry_id(registry_id.map(str::to_string))
        .send()
        .await;
    match out {
        Ok(o) => o.download_url().map(str::to_string).ok_or_else(|| {
            Error::aws(format!(
                "ecr:GetDownloadUrlForLayer returned no URL for {}",
                blob.digest
            ))
        }),
        Err(e) => {
            let code = error_code(&e);
            Err(match code.as_deref() {
                Some("AccessDeniedException") | Some("AccessDenied") => {
                    Error::aws(format!(
                        "{}: ecr:GetDownloadUrlForLayer on `{repository}` was refused for your credentials",
                        aws_error("ecr:GetDownloadUrlForLayer", &e).message
                    ))
                    .with_reason(Reason::AccessDenied)
                    .with_hint(format!(
                        "a local run pulls the image with your credentials: they need ecr:BatchGetImage and ecr:GetDownloadUrlForLayer on the repository `{repository}` (examples/iam/developer-policy.json grants both in its statement ResolveAndCheckTheTrainingImage); or pull the image with the container engine yourself and give that name to --image"
                    ))
                }
                Some("LayersNotFoundException") | Some("LayerInaccessibleException") => {
                    Error::aws(format!(
                        "the blob {} of the image is not in the ECR repository `{repository}` ({})",
                        blob.digest,
                        code.unwrap_or_default()
                    ))
                    .with_hint(format!(
                        "push the image again (`sagetrain image push CONTEXT --repo {repository}`), which uploads the blobs the repository lacks"
                    ))
                }
                _ => aws_error("ecr:GetDownloadUrlForLayer", &e),
            })
        }
    }
}

/// Download one blob into `to`, checked against its digest.
async fn fetch(
    ecr: &aws_sdk_ecr::Client,
    registry_id: Option<&str>,
    repository: &str,
    blob: &Blob,
    to: &Path,
    progress: &Progress,
) -> Result<()> {
    let url = download_url(ecr, registry_id, repository, blob).await?;
    let mut hash = Sha256::new();
    let n = crate::aws::http::download(&url, to, &mut |c: &[u8]| {
        hash.update(c);
        progress.inc(0, c.len() as u64);
    })
    .await
    .map_err(|e| {
        Error::aws(format!(
            "the download of {} from its ECR URL failed: {}",
            blob.digest,
            e.replace(&url, without_query(&url))
        ))
        .with_hint("run the same command again (each URL is signed for a short time); check the network and any proxy (HTTPS_PROXY)")
    })?;
    check(blob, &hex::encode(hash.finalize()), n).map_err(|why| {
        let _ = std::fs::remove_file(to);
        Error::aws(format!(
            "the blob {} downloaded from ECR is not the one the manifest names: {why}",
            blob.digest
        ))
        .with_hint("run the same command again; if it keeps failing, push the image again")
    })?;
    progress.inc(1, 0);
    Ok(())
}

/// Pack the downloaded blobs (in `dir`, named by [`file_name`]) as a docker-archive at `to`,
/// removing each blob once it is in (the folder never holds much more than the image).
pub fn write_archive(dir: &Path, image: &Image, to: &Path) -> std::io::Result<()> {
    let mut tar = tar::Builder::new(std::io::BufWriter::new(std::fs::File::create(to)?));
    let manifest = archive_manifest(image, &[]);
    let mut header = tar::Header::new_gnu();
    header.set_size(manifest.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    tar.append_data(&mut header, "manifest.json", manifest.as_bytes())?;
    let mut added = HashSet::new();
    let files = std::iter::once(file_name(&image.config, true))
        .chain(image.layers.iter().map(|l| file_name(l, false)));
    for name in files {
        if !added.insert(name.clone()) {
            continue;
        }
        let path = dir.join(&name);
        tar.append_path_with_name(&path, &name)?;
        std::fs::remove_file(&path)?;
    }
    tar.into_inner()?.into_inner()?.sync_all()?;
    Ok(())
}

/// What a pull did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pulled {
    /// The ID to run it by (`sha256:HEX`).
    pub id: String,
    pub layers: usize,
    /// The bytes downloaded.
    pub bytes: u64,
}

/// Pull `image` (of `repository`) into the engine, through the folder `work` (private, and
/// removed by the caller).
pub async fn pull(
    ui: &Ui,
    ecr: &aws_sdk_ecr::Client,
    engine: &Engine,
    registry_id: Option<&str>,
    repository: &str,
    image: &Image,
    work: &Path,
) -> Result<Pulled> {
    let blobs = image.blobs();
    let bytes: u64 = blobs.iter().map(|b| b.size).sum();
    let progress = Progress::new(ui, "pull", blobs.len() as u64, bytes);
    let path = |b: &Blob| work.join(file_name(b, b.digest == image.config.digest));
    // The config first: it says the platform before any layer is downloaded.
    let config = &image.config;
    let done = fetch(
        ecr,
        registry_id,
        repository,
        config,
        &path(config),
        &progress,
    )
    .await;
    let done = match done {
        Ok(()) => check_platform(repository, config, &path(config)),
        Err(e) => Err(e),
    };
    let done = match done {
        Ok(()) => futures::stream::iter(blobs.iter().skip(1).map(|b| {
            let to = path(b);
            let progress = &progress;
            async move { fetch(ecr, registry_id, repository, b, &to, progress).await }
        }))
        .buffer_unordered(CONCURRENCY)
        .try_collect::<Vec<()>>()
        .await
        .map(|_| ()),
        Err(e) => Err(e),
    };
    progress.finish();
    done?;
    let archive = work.join(ARCHIVE);
    let (dir, img, to) = (work.to_path_buf(), image.clone(), archive.clone());
    tokio::task::spawn_blocking(move || write_archive(&dir, &img, &to))
        .await
        .map_err(|e| Error::internal(format!("packing the image stopped: {e}")))?
        .map_err(|e| {
            Error::internal(format!(
                "cannot write the image archive {}: {e}",
                archive.display()
            ))
            .with_hint("check the free space of the cache folder (XDG_CACHE_HOME, ~/.cache)")
        })?;
    let said = load(engine, &archive).await?;
    let _ = std::fs::remove_file(&archive);
    let id = if super::engine::has_image(engine, image.id()).await {
        image.id().to_string()
    } else {
        // An engine whose image IDs are not the config's digest (docker with the containerd
        // image store): the ID it printed.
        loaded_id(&said).ok_or_else(|| {
            Error::internal(format!(
                "`{} load` loaded the image, but has no image {} and printed no image ID: {}",
                engine.name,
                image.id(),
                said.trim()
            ))
            .with_hint("pull the image with the engine yourself and give that name to --image")
        })?
    };
    Ok(Pulled {
        id,
        layers: image.layers.len(),
        bytes,
    })
}

/// The downloaded config must be for linux/amd64.
fn check_platform(repository: &str, config: &Blob, path: &Path) -> Result<()> {
    let bytes = std::fs::read(path)?;
    match Platform::from_config(&bytes) {
        Some(p) if p.fits() => Ok(()),
        Some(p) => Err(platform::wrong_platform(
            repository,
            &config.digest,
            &[p.to_string()],
        )),
        None => Err(manifest_error("its config is not JSON")),
    }
}

/// The last image ID an engine's `load` printed (`Loaded image ID: sha256:...`, `Loaded image:
/// sha256:...`).
pub fn loaded_id(output: &str) -> Option<String> {
    output
        .split(|c: char| c.is_whitespace() || c == '"' || c == '\'')
        .filter(|w| is_digest(w))
        .last()
        .map(str::to_string)
}

/// `ENGINE load -i ARCHIVE`: what it printed, or its failure with its stderr.
pub async fn load(engine: &Engine, archive: &Path) -> Result<String> {
    let out = tokio::process::Command::new(&engine.path)
        .arg("load")
        .arg("-i")
        .arg(archive)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| Error::internal(format!("cannot run {}: {e}", engine.path.display())))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if !out.status.success() {
        return Err(Error::internal(format!(
            "`{} load -i {}` failed ({}): {}",
            engine.name,
            archive.display(),
            out.status,
            stderr.trim()
        ))
        .with_hint(format!(
            "the engine refused the image downloaded from ECR (its message is above): check its free space (`{} system df`) and that it runs, or pull the image with it yourself and give that name to --image",
            engine.name
        )));
    }
    Ok(format!("{stdout}\n{stderr}"))
}

/// The summary of a pull: `3 layers, 512.00 MB`.
pub fn summary(layers: usize, bytes: u64) -> String {
    format!(
        "{layers} layer{}, {}",
        if layers == 1 { "" } else { "s" },
        DecimalBytes(bytes)
    )
}

/// Where the files of one pull are kept while it runs.
pub fn work_dir(cache: &Path) -> PathBuf {
    cache.join("pull")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(c: char) -> String {
        std::iter::repeat_n(c, 64).collect()
    }

    fn manifest() -> String {
        format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"{}","size":12,"digest":"sha256:{}"}},
            "layers":[{{"mediaType":"{}","size":100,"digest":"sha256:{}"}},{{"mediaType":"{}","size":50,"digest":"sha256:{}"}}]}}"#,
            media::DOCKER_MANIFEST,
            media::DOCKER_CONFIG,
            hex('c'),
            media::DOCKER_LAYER_GZIP,
            hex('a'),
            media::OCI_LAYER_ZSTD,
            hex('b'),
        )
    }

    #[test]
    fn a_manifest_gives_the_config_and_the_layers() {
        let img = read_manifest(&manifest()).unwrap();
        assert_eq!(img.id(), format!("sha256:{}", hex('c')));
        assert_eq!(img.layers.len(), 2);
        assert_eq!(img.layer_bytes(), 150);
        assert_eq!(img.blobs().len(), 3);
        assert_eq!(img.layers[1].media_type, media::OCI_LAYER_ZSTD);
    }

    #[test]
    fn the_archive_manifest_is_docker_saves_format() {
        let img = read_manifest(&manifest()).unwrap();
        let m: serde_json::Value =
            serde_json::from_str(&archive_manifest(&img, &["r/x:v1".into()])).unwrap();
        assert_eq!(
            m,
            serde_json::json!([{
                "Config": format!("{}.json", hex('c')),
                "RepoTags": ["r/x:v1"],
                "Layers": [format!("{}.tar.gz", hex('a')), format!("{}.tar.zst", hex('b'))],
            }])
        );
        let untagged: serde_json::Value =
            serde_json::from_str(&archive_manifest(&img, &[])).unwrap();
        assert_eq!(untagged[0]["RepoTags"], serde_json::json!([]));
    }

    #[test]
    fn digests_that_cannot_name_a_file_and_other_manifests_are_refused() {
        for bad in [
            "sha256:../../etc/passwd",
            "sha256:ABCDEF",
            "md5:abc",
            &format!("sha256:{}", hex('C')),
        ] {
            assert!(!is_digest(bad), "{bad}");
            let m = manifest().replace(&format!("sha256:{}", hex('a')), bad);
            let e = read_manifest(&m).unwrap_err();
            assert!(e.message.contains("not sha256:"), "{}", e.message);
        }
        let index = r#"{"schemaVersion":2,"manifests":[]}"#;
        assert!(read_manifest(index)
            .unwrap_err()
            .message
            .contains("an index"));
        assert!(read_manifest(r#"{"schemaVersion":1}"#)
            .unwrap_err()
            .message
            .contains("schema version 1"));
        let foreign = manifest().replace(
            media::DOCKER_LAYER_GZIP,
            "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
        );
        assert!(read_manifest(&foreign)
            .unwrap_err()
            .message
            .contains("foreign"));
    }

    #[test]
    fn a_blob_is_checked_against_its_digest_and_size() {
        let bytes = b"layer bytes";
        let got = hex::encode(Sha256::digest(bytes));
        let blob = Blob {
            digest: format!("sha256:{got}"),
            size: bytes.len() as u64,
            media_type: media::DOCKER_LAYER_GZIP.into(),
        };
        assert_eq!(check(&blob, &got, bytes.len() as u64), Ok(()));
        let other = hex::encode(Sha256::digest(b"other bytes"));
        assert!(check(&blob, &other, bytes.len() as u64)
            .unwrap_err()
            .contains("hash to sha256:"));
        assert!(check(&blob, &got, 3).unwrap_err().contains("3 bytes"));
    }

    #[test]
    fn the_archive_holds_the_manifest_the_config_and_the_layers_and_the_blobs_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let img = read_manifest(&manifest()).unwrap();
        for (b, c) in
            std::iter::once((&img.config, true)).chain(img.layers.iter().map(|l| (l, false)))
        {
            std::fs::write(dir.path().join(file_name(b, c)), b.hex()).unwrap();
        }
        let to = dir.path().join(ARCHIVE);
        write_archive(dir.path(), &img, &to).unwrap();
        let mut names: Vec<String> = tar::Archive::new(std::fs::File::open(&to).unwrap())
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        names.sort();
        let mut want = vec![
            "manifest.json".to_string(),
            format!("{}.json", hex('c')),
            format!("{}.tar.gz", hex('a')),
            format!("{}.tar.zst", hex('b')),
        ];
        want.sort();
        assert_eq!(names, want);
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(left.len(), 1, "only the archive is left");
    }

    fn refused(code: &'static str) -> aws_smithy_mocks::Rule {
        use aws_sdk_ecr::operation::get_download_url_for_layer::GetDownloadUrlForLayerError;
        aws_smithy_mocks::mock!(aws_sdk_ecr::Client::get_download_url_for_layer).then_error(
            move || {
                GetDownloadUrlForLayerError::generic(
                    aws_smithy_types::error::ErrorMetadata::builder()
                        .code(code)
                        .message("not authorized to perform: ecr:GetDownloadUrlForLayer")
                        .build(),
                )
            },
        )
    }

    #[tokio::test]
    async fn a_refused_download_url_names_the_permissions_and_the_policy_statement() {
        use aws_smithy_mocks::{mock_client, RuleMode};
        let rule = refused("AccessDeniedException");
        let ecr = mock_client!(aws_sdk_ecr, RuleMode::MatchAny, [&rule]);
        let img = read_manifest(&manifest()).unwrap();
        let e = download_url(&ecr, None, "unet", &img.config)
            .await
            .unwrap_err();
        assert_eq!(e.reason, Some(Reason::AccessDenied));
        assert_eq!(e.exit_code(), 4);
        let hint = e.hint.unwrap();
        for needle in [
            "ecr:BatchGetImage and ecr:GetDownloadUrlForLayer",
            "`unet`",
            "ResolveAndCheckTheTrainingImage",
        ] {
            assert!(hint.contains(needle), "{needle}: {hint}");
        }
        // The statement the hint names grants both.
        let policy: serde_json::Value =
            serde_json::from_str(include_str!("../../examples/iam/developer-policy.json")).unwrap();
        let st = policy["Statement"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["Sid"] == "ResolveAndCheckTheTrainingImage")
            .unwrap();
        for a in ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"] {
            assert!(
                st["Action"].as_array().unwrap().iter().any(|x| x == a),
                "{a}"
            );
        }
        let rule = refused("LayersNotFoundException");
        let ecr = mock_client!(aws_sdk_ecr, RuleMode::MatchAny, [&rule]);
        let e = download_url(&ecr, None, "unet", &img.layers[0])
            .await
            .unwrap_err();
        assert!(
            e.message.contains("is not in the ECR repository `unet`"),
            "{}",
            e.message
        );
    }

    #[tokio::test]
    async fn an_index_without_amd64_is_refused_before_any_download() {
        use aws_smithy_mocks::{mock_client, RuleMode};
        let rule = refused("AccessDeniedException");
        let ecr = mock_client!(aws_sdk_ecr, RuleMode::MatchAny, [&rule]);
        let index = r#"{"schemaVersion":2,"manifests":[{"digest":"sha256:a","platform":{"os":"linux","architecture":"arm64"}}]}"#;
        let e = platform_manifest(&ecr, None, "unet", "sha256:i", index)
            .await
            .unwrap_err();
        assert!(e.message.contains("built for linux/arm64"), "{}", e.message);
        // A single manifest is itself.
        let m = manifest();
        let (d, got) = platform_manifest(&ecr, None, "unet", "sha256:m", &m)
            .await
            .unwrap();
        assert_eq!((d.as_str(), got), ("sha256:m", m));
        assert_eq!(rule.num_calls(), 0);
    }

    #[test]
    fn the_id_an_engine_printed_is_read() {
        let id = format!("sha256:{}", hex('d'));
        assert_eq!(
            loaded_id(&format!("Loaded image ID: {id}\n")),
            Some(id.clone())
        );
        assert_eq!(loaded_id(&format!("Loaded image: {id}\n\n")), Some(id));
        assert_eq!(loaded_id("Loaded image: localhost/x:v1"), None);
        assert_eq!(summary(1, 512_000_000), "1 layer, 512.00 MB");
        assert_eq!(
            without_query("https://h/p?X-Amz-Signature=s"),
            "https://h/p"
        );
    }
}
