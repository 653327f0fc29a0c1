//! Pushing an image to ECR through its API, signed with the user's own credentials (no
//! `docker login`, no registry token on disk): BatchCheckLayerAvailability, then for each
//! missing blob InitiateLayerUpload, UploadLayerPart (in order, at most 20 MiB each) and
//! CompleteLayerUpload, then PutImage with the manifest and its digest.
//!
//! Uncompressed layers (`docker save`) are gzip-compressed first: the config's `diff_ids` stay
//! as they are (they name the uncompressed tars) and the manifest lists the compressed digests
//! and sizes, as registries expect. The compressed digest of each layer is remembered in the
//! user cache folder, so a rerun skips the layers already in the repository without
//! compressing them again.

use super::archive::{self, Compression, Format, Image, Member};
use super::media;
use crate::aws::{aws_error, error_code};
use crate::error::{Error, Result};
use crate::ui::progress::Progress;
use crate::ui::Ui;
use futures::stream::{StreamExt, TryStreamExt};
use indicatif::DecimalBytes;
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// UploadLayerPart takes parts of at most 20 MiB.
pub const MAX_PART: u64 = 20 * 1024 * 1024;
/// Blobs uploaded at once.
pub const CONCURRENCY: usize = 4;

/// Where a blob's bytes are.
#[derive(Debug, Clone)]
pub enum Source {
    /// A member of the archive, sent as is.
    Member(Member),
    /// A file this process wrote (a compressed layer).
    File(PathBuf),
    /// In memory (the config).
    Bytes(std::sync::Arc<Vec<u8>>),
    /// Not read yet: compress this member when the repository lacks the blob.
    Deferred(Member),
}

#[derive(Debug, Clone)]
pub struct Blob {
    pub digest: String,
    pub size: u64,
    pub media_type: String,
    pub source: Source,
    /// For a layer compressed here: the config's diff_id, to check and to cache.
    pub diff_id: Option<String>,
}

/// What was pushed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub digest: String,
    pub layers_pushed: usize,
    pub layers_skipped: usize,
    pub bytes_sent: u64,
}

fn sha256_hex(bytes: &[u8]) -> String {
    digest_of(Sha256::digest(bytes).as_slice())
}

/// `sha256:HEX` of a finished hash.
fn digest_of(hash: &[u8]) -> String {
    format!("sha256:{}", hex::encode(hash))
}

/// A writer that hashes and counts what passes through.
struct Hashing<W> {
    inner: W,
    hash: Sha256,
    n: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let k = self.inner.write(buf)?;
        self.hash.update(&buf[..k]);
        self.n += k as u64;
        Ok(k)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Gzip one member of `archive` into `out`; returns (compressed digest, size, uncompressed digest).
pub fn compress(archive: &Path, m: Member, out: &Path) -> std::io::Result<(String, u64, String)> {
    let mut src = archive::open_member(archive, m)?;
    let file = std::fs::File::create(out)?;
    let sink = Hashing {
        inner: std::io::BufWriter::new(file),
        hash: Sha256::new(),
        n: 0,
    };
    let mut gz = flate2::write::GzEncoder::new(sink, flate2::Compression::default());
    let mut raw = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let k = src.read(&mut buf)?;
        if k == 0 {
            break;
        }
        raw.update(&buf[..k]);
        gz.write_all(&buf[..k])?;
    }
    let mut sink = gz.finish()?;
    sink.flush()?;
    Ok((
        digest_of(sink.hash.finalize().as_slice()),
        sink.n,
        digest_of(raw.finalize().as_slice()),
    ))
}

fn hash_member(archive: &Path, m: Member) -> std::io::Result<String> {
    let mut src = archive::open_member(archive, m)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let k = src.read(&mut buf)?;
        if k == 0 {
            return Ok(digest_of(h.finalize().as_slice()));
        }
        h.update(&buf[..k]);
    }
}

/// The remembered compressed digest and size of an uncompressed layer.
fn cache_path(cache: &Path, diff_id: &str) -> PathBuf {
    cache.join("layers").join(diff_id.replace(':', "-"))
}

fn cached_layer(cache: Option<&Path>, diff_id: &str) -> Option<(String, u64)> {
    let text = std::fs::read_to_string(cache_path(cache?, diff_id)).ok()?;
    let (d, n) = text.trim().split_once(' ')?;
    (d.len() == 71 && d.starts_with("sha256:")).then_some((d.to_string(), n.parse().ok()?))
}

fn remember_layer(cache: Option<&Path>, diff_id: &str, digest: &str, size: u64) {
    if let Some(c) = cache {
        let p = cache_path(c, diff_id);
        let _ = crate::fsutil::write_private(&p, format!("{digest} {size}\n").as_bytes());
    }
}

/// The blobs of an image: its config, then its layers, each with its registry digest. Layers
/// to compress whose compressed digest is cached are left [`Source::Deferred`].
pub async fn plan(
    ui: &Ui,
    image: &Image,
    cache: Option<&Path>,
    tmp: &Path,
) -> Result<(Blob, Vec<Blob>)> {
    let config = Blob {
        digest: sha256_hex(&image.config),
        size: image.config.len() as u64,
        media_type: image.config_type.clone(),
        source: Source::Bytes(std::sync::Arc::new(image.config.clone())),
        diff_id: None,
    };
    let mut layers = Vec::with_capacity(image.layers.len());
    for (i, l) in image.layers.iter().enumerate() {
        let media_type = match (image.format, l.compression) {
            (_, Compression::Zstd) => media::OCI_LAYER_ZSTD.to_string(),
            (f, _) => f.gzip_layer_type().to_string(),
        };
        let blob = match l.compression {
            Compression::Gzip | Compression::Zstd => {
                let digest = match &l.declared_digest {
                    Some(d) => d.clone(),
                    None => {
                        let (p, m) = (image.path.clone(), l.member);
                        spawn(move || hash_member(&p, m)).await?
                    }
                };
                Blob {
                    digest,
                    size: l.member.size,
                    media_type,
                    source: Source::Member(l.member),
                    diff_id: None,
                }
            }
            Compression::None => match l.diff_id.as_deref().and_then(|d| cached_layer(cache, d)) {
                Some((digest, size)) => Blob {
                    digest,
                    size,
                    media_type,
                    source: Source::Deferred(l.member),
                    diff_id: l.diff_id.clone(),
                },
                None => {
                    let mut b = Blob {
                        digest: String::new(),
                        size: 0,
                        media_type,
                        source: Source::Deferred(l.member),
                        diff_id: l.diff_id.clone(),
                    };
                    ui.info(&format!(
                        "compressing layer {}/{} ({})",
                        i + 1,
                        image.layers.len(),
                        DecimalBytes(l.member.size)
                    ));
                    materialise(&image.path, &mut b, cache, tmp, i).await?;
                    b
                }
            },
        };
        layers.push(blob);
    }
    Ok((config, layers))
}

async fn spawn<T: Send + 'static>(
    f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::internal(format!("a background task failed: {e}")))?
        .map_err(|e| Error::internal(format!("reading the image archive: {e}")))
}

/// Compress a deferred layer now; its digest and size are what the compression gave.
async fn materialise(
    archive: &Path,
    b: &mut Blob,
    cache: Option<&Path>,
    tmp: &Path,
    i: usize,
) -> Result<()> {
    let Source::Deferred(m) = b.source else {
        return Ok(());
    };
    let out = tmp.join(format!("layer-{i}.tar.gz"));
    let (a, o) = (archive.to_path_buf(), out.clone());
    let (digest, size, raw) = spawn(move || compress(&a, m, &o)).await?;
    if let Some(d) = &b.diff_id {
        if d != &raw {
            return Err(Error::usage(format!(
                "the image archive is inconsistent: layer {} has digest {raw}, but the config's diff_ids say {d}",
                i + 1
            ))
            .with_hint("save the image again (docker save / podman save) and push the new archive"));
        }
        remember_layer(cache, d, &digest, size);
    }
    b.digest = digest;
    b.size = size;
    b.source = Source::File(out);
    Ok(())
}

/// The image manifest (exact bytes) for the config and layers.
pub fn manifest(format: Format, config: &Blob, layers: &[Blob]) -> Vec<u8> {
    let desc = |b: &Blob| serde_json::json!({"mediaType": b.media_type, "size": b.size, "digest": b.digest});
    let v = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": format.manifest_type(),
        "config": desc(config),
        "layers": layers.iter().map(desc).collect::<Vec<_>>(),
    });
    serde_json::to_vec(&v).expect("serialisable")
}

/// The repository's URI (`ACCOUNT.dkr.ecr.REGION.amazonaws.com/REPO`), creating the repository
/// (scan on push) when it is missing and `create` is set.
pub async fn ensure_repository(
    ui: &Ui,
    ecr: &aws_sdk_ecr::Client,
    repo: &str,
    create: bool,
    region: &str,
) -> Result<String> {
    match ecr
        .describe_repositories()
        .repository_names(repo)
        .send()
        .await
    {
        Ok(o) => {
            if let Some(uri) = o.repositories().first().and_then(|r| r.repository_uri()) {
                return Ok(uri.to_string());
            }
        }
        Err(e) if error_code(&e).as_deref() == Some("RepositoryNotFoundException") => {}
        Err(e) => return Err(aws_error("ecr:DescribeRepositories", &e)),
    }
    if !create {
        return Err(Error::aws(format!("the ECR repository `{repo}` does not exist in {region}"))
            .with_hint(format!("drop --no-create to create it, or create it: aws ecr create-repository --repository-name {repo} --image-scanning-configuration scanOnPush=true --region {region}")));
    }
    let out = ecr
        .create_repository()
        .repository_name(repo)
        .image_scanning_configuration(
            aws_sdk_ecr::types::ImageScanningConfiguration::builder()
                .scan_on_push(true)
                .build(),
        )
        .send()
        .await;
    match out {
        Ok(o) => {
            ui.info(&format!(
                "created the ECR repository `{repo}` (scan on push)"
            ));
            Ok(o.repository()
                .and_then(|r| r.repository_uri())
                .unwrap_or_default()
                .to_string())
        }
        // Created meanwhile by someone else: use it.
        Err(e) if error_code(&e).as_deref() == Some("RepositoryAlreadyExistsException") => {
            Box::pin(ensure_repository(ui, ecr, repo, false, region)).await
        }
        Err(e) => Err(aws_error("ecr:CreateRepository", &e)),
    }
}

/// The digests among `digests` that the repository already holds.
pub async fn available(
    ecr: &aws_sdk_ecr::Client,
    repo: &str,
    digests: &[String],
) -> Result<HashSet<String>> {
    let mut have = HashSet::new();
    for chunk in digests.chunks(100) {
        let out = ecr
            .batch_check_layer_availability()
            .repository_name(repo)
            .set_layer_digests(Some(chunk.to_vec()))
            .send()
            .await
            .map_err(|e| aws_error("ecr:BatchCheckLayerAvailability", &e))?;
        for l in out.layers() {
            if l.layer_availability().map(|a| a.as_str()) == Some("AVAILABLE") {
                if let Some(d) = l.layer_digest() {
                    have.insert(d.to_string());
                }
            }
        }
    }
    Ok(have)
}

/// Read `len` bytes at `offset` of a blob.
fn read_part(archive: &Path, source: &Source, offset: u64, len: u64) -> std::io::Result<Vec<u8>> {
    let mut buf = vec![0u8; len as usize];
    match source {
        Source::Bytes(b) => buf.copy_from_slice(&b[offset as usize..(offset + len) as usize]),
        Source::Member(m) => {
            let mut f = std::fs::File::open(archive)?;
            f.seek(SeekFrom::Start(m.offset + offset))?;
            f.read_exact(&mut buf)?;
        }
        Source::File(p) => {
            let mut f = std::fs::File::open(p)?;
            f.seek(SeekFrom::Start(offset))?;
            f.read_exact(&mut buf)?;
        }
        Source::Deferred(_) => return Err(std::io::Error::other("layer not compressed yet")),
    }
    Ok(buf)
}

/// Upload one blob: initiate, parts in order, complete.
pub async fn upload(
    ecr: &aws_sdk_ecr::Client,
    repo: &str,
    archive: &Path,
    blob: &Blob,
    progress: &Progress,
) -> Result<()> {
    let init = ecr
        .initiate_layer_upload()
        .repository_name(repo)
        .send()
        .await
        .map_err(|e| aws_error("ecr:InitiateLayerUpload", &e))?;
    let upload_id = init
        .upload_id()
        .ok_or_else(|| Error::aws("ecr:InitiateLayerUpload returned no upload id"))?
        .to_string();
    let part = match init.part_size() {
        Some(n) if n > 0 => (n as u64).min(MAX_PART),
        _ => MAX_PART,
    };
    let mut first = 0u64;
    while first < blob.size {
        let len = part.min(blob.size - first);
        let (a, s) = (archive.to_path_buf(), blob.source.clone());
        let bytes = spawn(move || read_part(&a, &s, first, len)).await?;
        ecr.upload_layer_part()
            .repository_name(repo)
            .upload_id(&upload_id)
            .part_first_byte(first as i64)
            .part_last_byte((first + len - 1) as i64)
            .layer_part_blob(aws_smithy_types::Blob::new(bytes))
            .send()
            .await
            .map_err(|e| aws_error("ecr:UploadLayerPart", &e))?;
        progress.inc(0, len);
        first += len;
    }
    match ecr
        .complete_layer_upload()
        .repository_name(repo)
        .upload_id(&upload_id)
        .layer_digests(&blob.digest)
        .send()
        .await
    {
        Ok(o) => {
            if let Some(d) = o.layer_digest() {
                if d != blob.digest {
                    return Err(Error::aws(format!(
                        "ecr:CompleteLayerUpload: ECR computed {d} for the blob sagetrain computed as {}",
                        blob.digest
                    ))
                    .with_hint("the archive changed while it was read, or the upload was corrupted: run the same command again"));
                }
            }
        }
        Err(e) if error_code(&e).as_deref() == Some("LayerAlreadyExistsException") => {}
        Err(e) => return Err(aws_error("ecr:CompleteLayerUpload", &e)),
    }
    progress.inc(1, 0);
    Ok(())
}

/// Push an image read from an archive to `repo:tag`.
pub async fn push(
    ui: &Ui,
    ecr: &aws_sdk_ecr::Client,
    image: &Image,
    repo: &str,
    tag: &str,
    cache: Option<&Path>,
) -> Result<Outcome> {
    let tmp = tempfile::tempdir()
        .map_err(|e| Error::internal(format!("cannot create a temporary folder: {e}")))?;
    let (config, mut layers) = plan(ui, image, cache, tmp.path()).await?;
    let mut digests: Vec<String> = layers.iter().map(|l| l.digest.clone()).collect();
    digests.push(config.digest.clone());
    let mut have = available(ecr, repo, &digests).await?;
    // Cached digests of layers the repository lacks: compress them now (the digest is what
    // the compression gives, normally the cached one).
    let mut recheck = false;
    for (i, l) in layers.iter_mut().enumerate() {
        if matches!(l.source, Source::Deferred(_)) && !have.contains(&l.digest) {
            ui.info(&format!(
                "compressing layer {}/{} ({})",
                i + 1,
                image.layers.len(),
                DecimalBytes(image.layers[i].member.size)
            ));
            let before = l.digest.clone();
            materialise(&image.path, l, cache, tmp.path(), i).await?;
            recheck |= l.digest != before;
        }
    }
    if recheck {
        let digests: Vec<String> = layers.iter().map(|l| l.digest.clone()).collect();
        have.extend(available(ecr, repo, &digests).await?);
    }
    let mut seen = HashSet::new();
    let missing: Vec<&Blob> = layers
        .iter()
        .chain(std::iter::once(&config))
        .filter(|b| !have.contains(&b.digest) && seen.insert(b.digest.clone()))
        .collect();
    let layers_skipped = layers.iter().filter(|l| have.contains(&l.digest)).count();
    let layers_pushed = layers.len() - layers_skipped;
    let bytes: u64 = missing.iter().map(|b| b.size).sum();
    let total: u64 = layers.iter().map(|l| l.size).sum();
    ui.info(&format!(
        "image: {} layers ({} compressed), {layers_skipped} already in `{repo}`; sending {} blobs ({})",
        layers.len(),
        DecimalBytes(total),
        missing.len(),
        DecimalBytes(bytes)
    ));
    let progress = Progress::new(ui, "push", missing.len() as u64, bytes);
    let result = futures::stream::iter(
        missing
            .iter()
            .map(|b| upload(ecr, repo, &image.path, b, &progress)),
    )
    .buffer_unordered(CONCURRENCY)
    .try_collect::<Vec<()>>()
    .await;
    progress.finish();
    result?;
    let manifest = manifest(image.format, &config, &layers);
    let digest = sha256_hex(&manifest);
    let text = String::from_utf8(manifest).expect("JSON is UTF-8");
    match ecr
        .put_image()
        .repository_name(repo)
        .image_manifest(text)
        .image_manifest_media_type(image.format.manifest_type())
        .image_tag(tag)
        .image_digest(&digest)
        .send()
        .await
    {
        Ok(_) => {}
        // The same manifest under the same tag: already pushed.
        Err(e) if error_code(&e).as_deref() == Some("ImageAlreadyExistsException") => {
            ui.info(&format!("`{repo}:{tag}` already is this image"));
        }
        Err(e) => return Err(aws_error("ecr:PutImage", &e)),
    }
    Ok(Outcome {
        digest,
        layers_pushed,
        layers_skipped,
        bytes_sent: bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::testdata;

    #[test]
    fn compressing_keeps_the_content_and_is_deterministic() {
        let layers = vec![testdata::layer("a", 100_000, 3)];
        let (dir, p) = testdata::saved(&layers);
        let img = archive::read(&p).unwrap();
        let m = img.layers[0].member;
        let (d1, n1, raw) = compress(&p, m, &dir.path().join("1.gz")).unwrap();
        let (d2, n2, _) = compress(&p, m, &dir.path().join("2.gz")).unwrap();
        assert_eq!((d1.clone(), n1), (d2, n2));
        assert_eq!(raw, testdata::sha(&layers[0]));
        let gz = std::fs::read(dir.path().join("1.gz")).unwrap();
        assert_eq!(sha256_hex(&gz), d1);
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(gz.as_slice())
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, layers[0]);
    }

    #[tokio::test]
    async fn the_plan_compresses_docker_layers_and_caches_their_digests() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("cache");
        let p = dir.path().join("img.tar");
        testdata::docker_save(
            &p,
            "amd64",
            &[testdata::layer("a", 5000, 1), testdata::layer("b", 7000, 2)],
        );
        let img = archive::read(&p).unwrap();
        let ui = Ui::new(crate::ui::Format::Text, true, 0, &|_| None);
        let (config, layers) = plan(&ui, &img, Some(&cache), dir.path()).await.unwrap();
        assert_eq!(config.digest, sha256_hex(&img.config));
        assert!(layers.iter().all(|l| matches!(l.source, Source::File(_))));
        assert!(layers
            .iter()
            .all(|l| l.media_type == media::DOCKER_LAYER_GZIP));
        // The second plan knows the digests without compressing.
        let (_, again) = plan(&ui, &img, Some(&cache), dir.path()).await.unwrap();
        assert!(again
            .iter()
            .all(|l| matches!(l.source, Source::Deferred(_))));
        assert_eq!(
            again
                .iter()
                .map(|l| (&l.digest, l.size))
                .collect::<Vec<_>>(),
            layers
                .iter()
                .map(|l| (&l.digest, l.size))
                .collect::<Vec<_>>()
        );
        let m = manifest(img.format, &config, &layers);
        let v: serde_json::Value = serde_json::from_slice(&m).unwrap();
        assert_eq!(v["mediaType"], media::DOCKER_MANIFEST);
        assert_eq!(v["layers"][1]["digest"], layers[1].digest.as_str());
        assert_eq!(v["config"]["mediaType"], media::DOCKER_CONFIG);
    }

    #[tokio::test]
    async fn oci_layers_already_compressed_are_sent_as_they_are() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("img.tar");
        testdata::oci(&p, "amd64", &[testdata::layer("a", 5000, 1)], false);
        let img = archive::read(&p).unwrap();
        let ui = Ui::new(crate::ui::Format::Text, true, 0, &|_| None);
        let (_, layers) = plan(&ui, &img, None, dir.path()).await.unwrap();
        assert!(matches!(layers[0].source, Source::Member(_)));
        assert_eq!(
            layers[0].digest,
            img.layers[0].declared_digest.clone().unwrap()
        );
        assert_eq!(layers[0].media_type, media::OCI_LAYER_GZIP);
    }
}
