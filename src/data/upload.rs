//! The S3 side of a dataset: what is already there, and sending the rest.
//!
//! Layout, in the job's output bucket:
//! - `<root>/<digest>/<relative path>`: the files, and nothing else (a SageMaker S3Prefix
//!   channel downloads every object under its prefix); the root is `sagetrain/data/<channel>`
//!   for data and `sagetrain/code` for code (`train --source`);
//! - `<root>/<digest>.manifest`: the manifest, written LAST. A prefix is
//!   complete only when its manifest exists.
//!
//! A push: (1) if the manifest exists, nothing to do (one HEAD); (2) otherwise list the prefix:
//! files already there with the right size arrived in an earlier, interrupted run (every
//! object under a content-addressed prefix was written with its SHA-256 checked by S3, and S3
//! writes are atomic, so an object that exists is whole and right); (3) files found by hash in
//! the manifests of earlier versions of the channel are copied server-side (CopyObject), so a
//! dataset with one changed file sends one file; (4) the rest is uploaded from disk, streamed,
//! with bounded concurrency: PutObject with the file's SHA-256 as `x-amz-checksum-sha256`, or a
//! multipart upload with a SHA-256 per part above [`MULTIPART_THRESHOLD`] (an interrupted
//! multipart upload is resumed: its parts that arrived are kept); (5) the manifest.

use super::manifest::{self, FileEntry};
use super::scan::Scanned;
use crate::aws::{aws_error, error_code};
use crate::config::layer::{declare, Int};
use crate::error::{Error, Result};
use crate::ui::progress::Progress;
use aws_sdk_s3::primitives::{ByteStream, Length};
use aws_sdk_s3::types::{ChecksumAlgorithm, CompletedMultipartUpload, CompletedPart};
use aws_sdk_s3::Client;
use futures::{StreamExt, TryStreamExt};
use indicatif::DecimalBytes;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::sync::Semaphore;

/// Files larger than this are sent in parts.
pub const MULTIPART_THRESHOLD: u64 = 16 * 1024 * 1024;
/// The part size (larger for files that would need more than 10,000 parts).
pub const PART_SIZE: u64 = 16 * 1024 * 1024;
/// Requests in flight at once.
pub const DEFAULT_CONCURRENCY: usize = 16;
/// Earlier versions of a channel whose files may be copied instead of uploaded.
const COPY_SOURCES: usize = 3;
/// CopyObject copies at most 5 GB in one request; larger files are uploaded again.
const MAX_COPY: u64 = 5 * 1000 * 1000 * 1000;
/// Read buffer of a streamed upload body.
const BODY_BUFFER: usize = 128 * 1024;

/// Characters left as they are in `x-amz-copy-source`.
const COPY_SOURCE_SET: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'/');

/// Where a dataset goes.
#[derive(Debug, Clone)]
pub struct Target {
    pub bucket: String,
    /// What is uploaded, for messages: a channel's name, or `code`.
    pub name: String,
    /// Where its versions live: [`manifest::channel_root`] or [`manifest::CODE_ROOT`].
    pub root: String,
    pub digest: String,
}

impl Target {
    /// A data channel's dataset.
    pub fn channel(bucket: &str, channel: &str, digest: &str) -> Target {
        Target {
            bucket: bucket.to_string(),
            name: channel.to_string(),
            root: manifest::channel_root(channel),
            digest: digest.to_string(),
        }
    }
    pub fn prefix(&self) -> String {
        manifest::data_prefix(&self.root, &self.digest)
    }
    pub fn manifest_key(&self) -> String {
        manifest::manifest_key(&self.root, &self.digest)
    }
    pub fn uri(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.prefix())
    }
}

/// What a push has to do, learned with read-only requests.
#[derive(Debug, Default, Clone)]
pub struct RemotePlan {
    /// The manifest exists: the prefix is complete.
    pub complete: bool,
    /// Files already under the prefix (from an interrupted run).
    pub present: Vec<usize>,
    /// Files to copy server-side: (file index, source key).
    pub copies: Vec<(usize, String)>,
    /// Files to upload.
    pub uploads: Vec<usize>,
    /// Objects under the prefix that are not files of the dataset (removed before completing).
    pub extra: Vec<String>,
}

impl RemotePlan {
    pub fn bytes_of(&self, files: &[FileEntry], idx: impl Iterator<Item = usize>) -> u64 {
        idx.map(|i| files[i].size).sum()
    }
    pub fn upload_bytes(&self, files: &[FileEntry]) -> u64 {
        self.bytes_of(files, self.uploads.iter().copied())
    }
    pub fn copy_bytes(&self, files: &[FileEntry]) -> u64 {
        self.bytes_of(files, self.copies.iter().map(|c| c.0))
    }
}

/// What a push did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub already_complete: bool,
    pub present_files: u64,
    pub uploaded_files: u64,
    pub uploaded_bytes: u64,
    pub copied_files: u64,
    pub copied_bytes: u64,
}

fn is_not_found<E: aws_smithy_types::error::metadata::ProvideErrorMetadata>(
    e: &aws_smithy_runtime_api::client::result::SdkError<
        E,
        aws_smithy_runtime_api::client::orchestrator::HttpResponse,
    >,
) -> bool {
    if let aws_smithy_runtime_api::client::result::SdkError::ServiceError(se) = e {
        return se.raw().status().as_u16() == 404;
    }
    false
}

/// Does the object exist?
async fn exists(s3: &Client, bucket: &str, key: &str) -> Result<bool> {
    match s3.head_object().bucket(bucket).key(key).send().await {
        Ok(_) => Ok(true),
        Err(e) if is_not_found(&e) => Ok(false),
        Err(e) => Err(aws_error("s3:HeadObject", &e)),
    }
}

type Listing = Vec<(String, i64, Option<aws_smithy_types::DateTime>)>;

/// Every object under `prefix`, with its size and time; None when the bucket does not exist
/// (yet: a dry run before the default bucket is created).
async fn list(
    s3: &Client,
    bucket: &str,
    prefix: &str,
    delimiter: Option<&str>,
) -> Result<Option<Listing>> {
    let mut out = Vec::new();
    let mut pages = s3
        .list_objects_v2()
        .bucket(bucket)
        .prefix(prefix)
        .set_delimiter(delimiter.map(str::to_string))
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = match page {
            Ok(p) => p,
            Err(e) if error_code(&e).as_deref() == Some("NoSuchBucket") => return Ok(None),
            Err(e) => return Err(aws_error("s3:ListObjectsV2", &e)),
        };
        for o in page.contents() {
            if let Some(k) = o.key() {
                out.push((
                    k.to_string(),
                    o.size().unwrap_or(0),
                    o.last_modified().cloned(),
                ));
            }
        }
    }
    Ok(Some(out))
}

/// Learn what is already in S3 and what must be sent. Read-only.
pub async fn remote_plan(s3: &Client, target: &Target, scanned: &Scanned) -> Result<RemotePlan> {
    let mut plan = RemotePlan::default();
    if exists(s3, &target.bucket, &target.manifest_key()).await? {
        plan.complete = true;
        return Ok(plan);
    }
    let prefix = target.prefix();
    let Some(listing) = list(s3, &target.bucket, &prefix, None).await? else {
        // No bucket: everything is missing.
        plan.uploads = (0..scanned.files.len()).collect();
        return Ok(plan);
    };
    let remote: HashMap<String, i64> = listing.into_iter().map(|(k, s, _)| (k, s)).collect();
    let mut wanted = std::collections::HashSet::new();
    let mut missing = Vec::new();
    for (i, f) in scanned.files.iter().enumerate() {
        let key = format!("{prefix}{}", f.rel);
        match remote.get(&key) {
            Some(size) if *size as u64 == f.size => plan.present.push(i),
            _ => missing.push(i),
        }
        wanted.insert(key);
    }
    plan.extra = remote
        .keys()
        .filter(|k| !wanted.contains(*k))
        .cloned()
        .collect();
    plan.extra.sort();
    if missing.is_empty() {
        return Ok(plan);
    }
    // Earlier complete versions of this channel: the newest few manifests.
    let mut manifests: Vec<(String, Option<aws_smithy_types::DateTime>)> =
        list(s3, &target.bucket, &format!("{}/", target.root), Some("/"))
            .await?
            .unwrap_or_default()
            .into_iter()
            .filter(|(k, _, _)| {
                manifest::digest_of_manifest_key(&target.root, k)
                    .is_some_and(|d| d != target.digest)
            })
            .map(|(k, _, t)| (k, t))
            .collect();
    manifests.sort_by_key(|m| std::cmp::Reverse(m.1));
    let mut by_hash: HashMap<[u8; 32], String> = HashMap::new();
    for (key, _) in manifests.into_iter().take(COPY_SOURCES) {
        let digest = manifest::digest_of_manifest_key(&target.root, &key)
            .expect("filtered")
            .to_string();
        let text = match s3
            .get_object()
            .bucket(&target.bucket)
            .key(&key)
            .send()
            .await
        {
            Ok(o) => match o.body.collect().await {
                Ok(b) => String::from_utf8_lossy(&b.into_bytes()).into_owned(),
                Err(_) => continue,
            },
            Err(e) if is_not_found(&e) => continue,
            Err(e) => return Err(aws_error("s3:GetObject", &e)),
        };
        let Ok(entries) = manifest::parse(&text) else {
            tracing::debug!("{key} is not a manifest; not used as a copy source");
            continue;
        };
        let src_prefix = manifest::data_prefix(&target.root, &digest);
        for e in entries {
            if e.size <= MAX_COPY {
                by_hash
                    .entry(e.sha256)
                    .or_insert_with(|| format!("{src_prefix}{}", e.rel));
            }
        }
    }
    for i in missing {
        match by_hash.get(&scanned.files[i].sha256) {
            Some(src) => plan.copies.push((i, src.clone())),
            None => plan.uploads.push(i),
        }
    }
    Ok(plan)
}

/// Options of a push.
#[derive(Debug, Clone, Copy)]
pub struct PushOptions {
    pub concurrency: usize,
}

impl Default for PushOptions {
    fn default() -> Self {
        PushOptions {
            concurrency: DEFAULT_CONCURRENCY,
        }
    }
}

/// The variable that sets the number of requests in flight.
pub const CONCURRENCY_VAR: &str = "SAGETRAIN_UPLOAD_CONCURRENCY";

declare! {
    /// No flags: the upload settings are read from the environment.
    args UploadArgs {}
    /// The upload settings, with their sources.
    settings UploadSettings {}
    job ();
    file_section None;
    unflagged {
        /// Requests in flight at once when uploading local data (1-64) [env: SAGETRAIN_UPLOAD_CONCURRENCY]
        upload_concurrency = Int {
            env: &[CONCURRENCY_VAR],
            in_file: false,
            default: Some("16"),
            example: "8",
        }
    }
}

impl UploadSettings {
    /// Layered from the environment, checked before any network call.
    pub fn layer(env: &dyn Fn(&str) -> Option<String>) -> Result<UploadSettings> {
        let hint = format!("e.g. export {CONCURRENCY_VAR}=8 (or unset it)");
        let s = UploadSettings::layered(&UploadArgs::default(), env, None)
            .map_err(|v| Error::usage(v[0].to_string()).with_hint(hint.clone()))?;
        if let Some(n) = s
            .upload_concurrency
            .as_ref()
            .filter(|n| !(1..=64).contains(&n.value))
        {
            return Err(Error::usage(format!(
                "{}: `{}` is not a number of requests from 1 to 64",
                n.source.name_for(None),
                n.value
            ))
            .with_hint(hint));
        }
        Ok(s)
    }
}

impl PushOptions {
    /// The defaults, with `SAGETRAIN_UPLOAD_CONCURRENCY` (1-64) if set.
    pub fn from_env(env: &dyn Fn(&str) -> Option<String>) -> Result<PushOptions> {
        let s = UploadSettings::layer(env)?;
        Ok(PushOptions {
            concurrency: s
                .upload_concurrency
                .map_or(DEFAULT_CONCURRENCY, |n| n.value as usize),
        })
    }
}

fn resend_hint() -> String {
    "run the same command again: the files that arrived are not sent again".to_string()
}

/// Send what `plan` says is missing, then the manifest (last).
pub async fn execute(
    s3: &Client,
    target: &Target,
    scanned: &Scanned,
    plan: &RemotePlan,
    progress: &Progress,
    opts: PushOptions,
) -> Result<Outcome> {
    let mut outcome = Outcome {
        present_files: plan.present.len() as u64,
        ..Default::default()
    };
    if plan.complete {
        outcome.already_complete = true;
        return Ok(outcome);
    }
    let prefix = target.prefix();
    let limit = Arc::new(Semaphore::new(opts.concurrency.max(1)));
    let conc = opts.concurrency.max(1);

    // Server-side copies first: cheap, and a failed copy becomes an upload.
    let copy_failed: Vec<usize> = futures::stream::iter(plan.copies.iter().cloned())
        .map(|(i, src)| {
            let limit = limit.clone();
            let key = format!("{prefix}{}", scanned.files[i].rel);
            async move {
                let _permit = limit.acquire().await.expect("semaphore open");
                let source = format!(
                    "{}/{}",
                    target.bucket,
                    utf8_percent_encode(&src, COPY_SOURCE_SET)
                );
                let r = s3
                    .copy_object()
                    .bucket(&target.bucket)
                    .key(&key)
                    .copy_source(source)
                    .checksum_algorithm(ChecksumAlgorithm::Sha256)
                    .send()
                    .await;
                match r {
                    Ok(_) => {
                        progress.inc(1, 0);
                        Ok(None)
                    }
                    Err(e)
                        if is_not_found(&e) || error_code(&e).as_deref() == Some("NoSuchKey") =>
                    {
                        Ok(Some(i))
                    }
                    Err(e) => Err(aws_error("s3:CopyObject", &e).with_hint(resend_hint())),
                }
            }
        })
        .buffer_unordered(conc)
        .try_filter_map(|x| async move { Ok(x) })
        .try_collect()
        .await?;
    outcome.copied_files = (plan.copies.len() - copy_failed.len()) as u64;
    outcome.copied_bytes = plan
        .copies
        .iter()
        .filter(|(i, _)| !copy_failed.contains(i))
        .map(|(i, _)| scanned.files[*i].size)
        .sum();

    let uploads: Vec<usize> = plan.uploads.iter().copied().chain(copy_failed).collect();
    futures::stream::iter(uploads.iter().copied())
        .map(|i| {
            let limit = limit.clone();
            let f = &scanned.files[i];
            let abs = &scanned.abs[i];
            let key = format!("{prefix}{}", f.rel);
            async move {
                if f.size > MULTIPART_THRESHOLD {
                    let psize = part_size(f.size);
                    let part = Parts {
                        size: psize,
                        window: conc,
                    };
                    upload_multipart(s3, &target.bucket, &key, abs, f, part, &limit, progress)
                        .await?;
                } else {
                    let _permit = limit.acquire().await.expect("semaphore open");
                    put_file(s3, &target.bucket, &key, abs, f).await?;
                    progress.inc(0, f.size);
                }
                progress.inc(1, 0);
                Ok::<_, Error>(())
            }
        })
        .buffer_unordered(conc)
        .try_collect::<Vec<()>>()
        .await?;
    outcome.uploaded_files = uploads.len() as u64;
    outcome.uploaded_bytes = uploads.iter().map(|i| scanned.files[*i].size).sum();

    // Objects that are not files of the dataset would reach the job: remove them.
    delete_extra(s3, &target.bucket, &plan.extra).await?;

    // Last: the manifest, which marks the prefix complete.
    let text = scanned.manifest.as_bytes().to_vec();
    let sha = manifest::sha256(&text);
    s3.put_object()
        .bucket(&target.bucket)
        .key(target.manifest_key())
        .content_type("text/plain; charset=utf-8")
        .checksum_sha256(manifest::sha256_base64(&sha))
        .body(ByteStream::from(text))
        .send()
        .await
        .map_err(|e| aws_error("s3:PutObject (manifest)", &e).with_hint(resend_hint()))?;
    Ok(outcome)
}

/// DeleteObjects of `keys` (stray objects under a data prefix). S3 answers 200 with per-key
/// errors when s3:DeleteObject is denied or Object Lock holds an object: any of them fails the
/// push (before the manifest is written), naming the keys, the error code and what to do.
async fn delete_extra(s3: &Client, bucket: &str, keys: &[String]) -> Result<()> {
    let mut failed: Vec<String> = Vec::new();
    for chunk in keys.chunks(1000) {
        let objects: Vec<_> = chunk
            .iter()
            .filter_map(|k| {
                aws_sdk_s3::types::ObjectIdentifier::builder()
                    .key(k)
                    .build()
                    .ok()
            })
            .collect();
        let delete = aws_sdk_s3::types::Delete::builder()
            .set_objects(Some(objects))
            .quiet(true)
            .build()
            .map_err(|e| Error::internal(e.to_string()))?;
        let out = s3
            .delete_objects()
            .bucket(bucket)
            .delete(delete)
            .send()
            .await
            .map_err(|e| aws_error("s3:DeleteObjects", &e))?;
        for e in out.errors() {
            failed.push(format!(
                "s3://{bucket}/{}: {}{}",
                e.key().unwrap_or("?"),
                e.code().unwrap_or("error"),
                e.message().map(|m| format!(" ({m})")).unwrap_or_default()
            ));
        }
    }
    if failed.is_empty() {
        return Ok(());
    }
    let n = failed.len();
    Err(Error::aws(format!(
        "s3:DeleteObjects could not remove {n} object{} under s3://{bucket}/ that {} not part of the dataset; the job would read {}, so the upload is not marked complete",
        if n == 1 { "" } else { "s" },
        if n == 1 { "is" } else { "are" },
        if n == 1 { "it" } else { "them" },
    ))
    .with_details(failed)
    .with_hint(format!(
        "add s3:DeleteObject on arn:aws:s3:::{bucket}/sagetrain/data/* to your credentials' policy \
         (an object held by Object Lock can be removed only once its retention allows: aws s3 rm s3://{bucket}/KEY), \
         then run the same command again"
    )))
}

fn changed_error(path: &Path) -> Error {
    Error::usage(format!(
        "{} changed while it was being uploaded (S3 found a different checksum)",
        path.display()
    ))
    .with_hint("wait until whatever writes it has finished, then run the same command again")
}

async fn body(path: &Path, offset: u64, len: u64) -> Result<ByteStream> {
    ByteStream::read_from()
        .path(path)
        .offset(offset)
        .length(Length::Exact(len))
        .buffer_size(BODY_BUFFER)
        .build()
        .await
        .map_err(|e| Error::usage(format!("cannot read {}: {e}", path.display())))
}

async fn put_file(s3: &Client, bucket: &str, key: &str, path: &Path, f: &FileEntry) -> Result<()> {
    let r = s3
        .put_object()
        .bucket(bucket)
        .key(key)
        .content_length(f.size as i64)
        .checksum_sha256(manifest::sha256_base64(&f.sha256))
        .body(body(path, 0, f.size).await?)
        .send()
        .await;
    match r {
        Ok(_) => Ok(()),
        Err(e) if is_checksum_error(error_code(&e).as_deref()) => Err(changed_error(path)),
        Err(e) => Err(aws_error("s3:PutObject", &e).with_hint(resend_hint())),
    }
}

fn is_checksum_error(code: Option<&str>) -> bool {
    matches!(
        code,
        Some("BadDigest" | "InvalidDigest" | "XAmzContentChecksumMismatch")
    )
}

/// The part size for a file: 16 MiB, more when 10,000 parts would not hold it.
pub fn part_size(size: u64) -> u64 {
    const MIB: u64 = 1024 * 1024;
    let min = size.div_ceil(10_000).div_ceil(MIB) * MIB;
    PART_SIZE.max(min)
}

/// SHA-256 of a byte range of a file.
fn hash_range(path: PathBuf, offset: u64, len: u64) -> std::io::Result<[u8; 32]> {
    use sha2::Digest;
    let mut f = std::fs::File::open(&path)?;
    f.seek(SeekFrom::Start(offset))?;
    let mut h = sha2::Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut left = len;
    while left > 0 {
        let want = (buf.len() as u64).min(left) as usize;
        let n = f.read(&mut buf[..want])?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the file is shorter than when it was hashed",
            ));
        }
        h.update(&buf[..n]);
        left -= n as u64;
    }
    Ok(h.finalize().into())
}

/// An unfinished multipart upload of `key` and its parts (number -> (size, etag, sha256)).
async fn existing_upload(
    s3: &Client,
    bucket: &str,
    key: &str,
) -> Result<Option<(String, HashMap<i32, (i64, String, Option<String>)>)>> {
    // Every page (1,000 uploads each): the SDK has no paginator for this operation.
    let mut uploads = Vec::new();
    let (mut key_marker, mut id_marker) = (None, None);
    loop {
        let out = match s3
            .list_multipart_uploads()
            .bucket(bucket)
            .prefix(key)
            .set_key_marker(key_marker.take())
            .set_upload_id_marker(id_marker.take())
            .send()
            .await
        {
            Ok(o) => o,
            // Without s3:ListBucketMultipartUploads the file is sent whole, as a new upload.
            Err(e) => {
                tracing::debug!(
                    "{}; starting a new upload of {key}",
                    aws_error("s3:ListMultipartUploads", &e).message
                );
                return Ok(None);
            }
        };
        uploads.extend(
            out.uploads()
                .iter()
                .filter(|u| u.key() == Some(key))
                .filter_map(|u| {
                    u.upload_id()
                        .map(|id| (id.to_string(), u.initiated().cloned()))
                }),
        );
        key_marker = out.next_key_marker().map(str::to_string);
        id_marker = out.next_upload_id_marker().map(str::to_string);
        if out.is_truncated() != Some(true) || (key_marker.is_none() && id_marker.is_none()) {
            break;
        }
    }
    uploads.sort_by_key(|u| std::cmp::Reverse(u.1));
    let Some((id, _)) = uploads.into_iter().next() else {
        return Ok(None);
    };
    let mut parts = HashMap::new();
    let mut pages = s3
        .list_parts()
        .bucket(bucket)
        .key(key)
        .upload_id(&id)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        match page {
            Ok(p) => {
                for part in p.parts() {
                    if let (Some(n), Some(etag)) = (part.part_number(), part.e_tag()) {
                        parts.insert(
                            n,
                            (
                                part.size().unwrap_or(0),
                                etag.to_string(),
                                part.checksum_sha256().map(str::to_string),
                            ),
                        );
                    }
                }
            }
            // The upload was completed or aborted meanwhile, or its parts cannot be listed
            // (some S3 emulators answer ListParts in a shape the SDK rejects): start afresh,
            // and drop the old upload so that its parts do not linger.
            Err(e) => {
                tracing::debug!(
                    "s3:ListParts of {key} failed; starting a new upload: {}",
                    aws_error("s3:ListParts", &e).message
                );
                let _ = s3
                    .abort_multipart_upload()
                    .bucket(bucket)
                    .key(key)
                    .upload_id(&id)
                    .send()
                    .await;
                return Ok(None);
            }
        }
    }
    Ok(Some((id, parts)))
}

/// How a multipart upload is cut and sent.
#[derive(Debug, Clone, Copy)]
struct Parts {
    /// Bytes per part.
    size: u64,
    /// Parts in flight at most (`SAGETRAIN_UPLOAD_CONCURRENCY`; `limit` bounds the requests of
    /// the whole push).
    window: usize,
}

#[allow(clippy::too_many_arguments)]
async fn upload_multipart(
    s3: &Client,
    bucket: &str,
    key: &str,
    path: &Path,
    f: &FileEntry,
    part: Parts,
    limit: &Arc<Semaphore>,
    progress: &Progress,
) -> Result<()> {
    let psize = part.size;
    let count = f.size.div_ceil(psize) as i32;
    let window = part.window.clamp(1, count.max(1) as usize);
    let (upload_id, existing) = match existing_upload(s3, bucket, key).await? {
        Some(found) => found,
        None => {
            let out = s3
                .create_multipart_upload()
                .bucket(bucket)
                .key(key)
                .checksum_algorithm(ChecksumAlgorithm::Sha256)
                .send()
                .await
                .map_err(|e| aws_error("s3:CreateMultipartUpload", &e).with_hint(resend_hint()))?;
            let id = out
                .upload_id()
                .ok_or_else(|| Error::aws("s3:CreateMultipartUpload returned no upload id"))?
                .to_string();
            (id, HashMap::new())
        }
    };
    let parts: Vec<CompletedPart> = futures::stream::iter(1..=count)
        .map(|n| {
            let limit = limit.clone();
            let upload_id = upload_id.clone();
            let existing = existing.get(&n).cloned();
            async move {
                let offset = (n as u64 - 1) * psize;
                let len = psize.min(f.size - offset);
                let _permit = limit.acquire().await.expect("semaphore open");
                let p = path.to_path_buf();
                let sha = tokio::task::spawn_blocking(move || hash_range(p, offset, len))
                    .await
                    .map_err(|e| Error::internal(e.to_string()))?
                    .map_err(|e| Error::usage(format!("cannot read {}: {e}", path.display())))?;
                let sha_b64 = manifest::sha256_base64(&sha);
                if let Some((size, etag, remote_sha)) = existing {
                    // A part that arrived in an earlier run, with this content.
                    if size as u64 == len && remote_sha.as_deref().is_none_or(|r| r == sha_b64) {
                        progress.inc(0, len);
                        return Ok(CompletedPart::builder()
                            .part_number(n)
                            .e_tag(etag)
                            .checksum_sha256(sha_b64)
                            .build());
                    }
                }
                let out = s3
                    .upload_part()
                    .bucket(bucket)
                    .key(key)
                    .upload_id(&upload_id)
                    .part_number(n)
                    .content_length(len as i64)
                    .checksum_algorithm(ChecksumAlgorithm::Sha256)
                    .checksum_sha256(&sha_b64)
                    .body(body(path, offset, len).await?)
                    .send()
                    .await;
                let out = match out {
                    Ok(o) => o,
                    Err(e) if is_checksum_error(error_code(&e).as_deref()) => {
                        return Err(changed_error(path))
                    }
                    Err(e) => return Err(aws_error("s3:UploadPart", &e).with_hint(resend_hint())),
                };
                progress.inc(0, len);
                Ok::<_, Error>(
                    CompletedPart::builder()
                        .part_number(n)
                        .set_e_tag(out.e_tag().map(str::to_string))
                        .checksum_sha256(sha_b64)
                        .build(),
                )
            }
        })
        .buffered(window)
        .try_collect()
        .await?;
    s3.complete_multipart_upload()
        .bucket(bucket)
        .key(key)
        .upload_id(&upload_id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(parts))
                .build(),
        )
        .send()
        .await
        .map_err(|e| aws_error("s3:CompleteMultipartUpload", &e).with_hint(resend_hint()))?;
    Ok(())
}

/// A one-line account of a plan, for `--dry-run` and `-v`.
pub fn describe_plan(plan: &RemotePlan, scanned: &Scanned) -> String {
    if plan.complete {
        return "already in S3 (its manifest exists): nothing would be uploaded".to_string();
    }
    let up = plan.uploads.len();
    let mut s = format!(
        "{up} file{} ({}) missing in S3",
        if up == 1 { "" } else { "s" },
        DecimalBytes(plan.upload_bytes(&scanned.files))
    );
    if !plan.copies.is_empty() {
        s.push_str(&format!(
            ", {} found in earlier versions (copied inside S3)",
            plan.copies.len()
        ));
    }
    if !plan.present.is_empty() {
        s.push_str(&format!(
            ", {} already there from an interrupted upload",
            plan.present.len()
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrency_from_the_environment() {
        let env = |v: &'static str| move |k: &str| (k == CONCURRENCY_VAR).then(|| v.to_string());
        assert_eq!(PushOptions::from_env(&|_| None).unwrap().concurrency, 16);
        assert_eq!(PushOptions::from_env(&env("4")).unwrap().concurrency, 4);
        for bad in ["0", "65", "many"] {
            let e = PushOptions::from_env(&env(bad)).unwrap_err();
            assert!(e.message.starts_with(CONCURRENCY_VAR), "{e}");
        }
    }

    #[test]
    fn part_sizes_stay_within_10000_parts() {
        assert_eq!(part_size(100 * 1024 * 1024), PART_SIZE);
        let huge = 400 * 1024 * 1024 * 1024u64; // 400 GiB
        let p = part_size(huge);
        assert!(huge.div_ceil(p) <= 10_000);
        assert_eq!(p % (1024 * 1024), 0);
    }

    #[test]
    fn copy_source_is_url_encoded_keeping_slashes() {
        let s =
            utf8_percent_encode("sagetrain/data/train/abc/a b+c.png", COPY_SOURCE_SET).to_string();
        assert_eq!(s, "sagetrain/data/train/abc/a%20b%2Bc.png");
    }

    /// Resuming a multipart upload (as real S3 lists its parts): the parts that arrived are
    /// not sent again, and the completion names all parts with their checksums.
    #[tokio::test]
    async fn an_unfinished_multipart_upload_is_resumed_part_by_part() {
        use aws_sdk_s3::operation::complete_multipart_upload::CompleteMultipartUploadOutput;
        use aws_sdk_s3::operation::list_multipart_uploads::ListMultipartUploadsOutput;
        use aws_sdk_s3::operation::list_parts::ListPartsOutput;
        use aws_sdk_s3::operation::upload_part::UploadPartOutput;
        use aws_sdk_s3::types::{MultipartUpload, Part};
        use aws_smithy_mocks::{mock, mock_client, RuleMode};

        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("volume.bin");
        let content = b"aaaaabbbbbccc".to_vec(); // parts of 5 bytes: 3 parts
        std::fs::write(&path, &content).unwrap();
        let f = FileEntry {
            rel: "volume.bin".into(),
            size: content.len() as u64,
            sha256: manifest::sha256(&content),
        };
        let part_sha = |i: usize| {
            manifest::sha256_base64(&manifest::sha256(&content[i * 5..(i * 5 + 5).min(13)]))
        };
        let (p1, p2, p3) = (part_sha(0), part_sha(1), part_sha(2));
        let uploads = mock!(Client::list_multipart_uploads).then_output(|| {
            ListMultipartUploadsOutput::builder()
                .uploads(
                    MultipartUpload::builder()
                        .key("p/volume.bin2")
                        .upload_id("other")
                        .build(),
                )
                .uploads(
                    MultipartUpload::builder()
                        .key("p/volume.bin")
                        .upload_id("u1")
                        .build(),
                )
                .build()
        });
        let (c1, c2) = (p1.clone(), p2.clone());
        let parts = mock!(Client::list_parts)
            .match_requests(|r| r.upload_id() == Some("u1"))
            .then_output(move || {
                ListPartsOutput::builder()
                    .parts(
                        Part::builder()
                            .part_number(1)
                            .size(5)
                            .e_tag("e1")
                            .checksum_sha256(&c1)
                            .build(),
                    )
                    .parts(
                        Part::builder()
                            .part_number(2)
                            .size(5)
                            .e_tag("e2")
                            .checksum_sha256(&c2)
                            .build(),
                    )
                    .build()
            });
        let create = mock!(Client::create_multipart_upload).then_output(|| unreachable!());
        let p3c = p3.clone();
        let part3 = mock!(Client::upload_part)
            .match_requests(move |r| {
                r.part_number() == Some(3)
                    && r.upload_id() == Some("u1")
                    && r.content_length() == Some(3)
                    && r.checksum_sha256() == Some(p3c.as_str())
            })
            .then_output(|| UploadPartOutput::builder().e_tag("e3").build());
        let want: Vec<(i32, String, String)> = vec![
            (1, "e1".into(), p1.clone()),
            (2, "e2".into(), p2.clone()),
            (3, "e3".into(), p3.clone()),
        ];
        let complete = mock!(Client::complete_multipart_upload)
            .match_requests(move |r| {
                let got: Vec<(i32, String, String)> = r
                    .multipart_upload()
                    .map(|m| m.parts())
                    .unwrap_or_default()
                    .iter()
                    .map(|p| {
                        (
                            p.part_number().unwrap_or(0),
                            p.e_tag().unwrap_or("").to_string(),
                            p.checksum_sha256().unwrap_or("").to_string(),
                        )
                    })
                    .collect();
                r.upload_id() == Some("u1") && got == want
            })
            .then_output(|| CompleteMultipartUploadOutput::builder().build());
        let client = mock_client!(
            aws_sdk_s3,
            RuleMode::MatchAny,
            [&uploads, &parts, &create, &part3, &complete]
        );
        let limit = Arc::new(Semaphore::new(4));
        let progress = Progress::silent();
        upload_multipart(
            &client,
            "b",
            "p/volume.bin",
            &path,
            &f,
            Parts { size: 5, window: 4 },
            &limit,
            &progress,
        )
        .await
        .unwrap();
        assert_eq!(part3.num_calls(), 1, "only part 3 is sent");
        assert_eq!(create.num_calls(), 0);
        assert_eq!(complete.num_calls(), 1);
        assert_eq!(progress.done(), (0, 13));
    }

    /// Upload `path` as the object `v` of bucket `b`, at most 64 requests at a time.
    async fn send_v(client: &Client, path: &Path, f: &FileEntry, part: Parts) -> Result<()> {
        let limit = Arc::new(Semaphore::new(64));
        upload_multipart(client, "b", "v", path, f, part, &limit, &Progress::silent()).await
    }

    /// A part listed with another size (the file changed) is sent again.
    #[tokio::test]
    async fn a_listed_part_of_another_size_is_sent_again() {
        use aws_sdk_s3::operation::complete_multipart_upload::CompleteMultipartUploadOutput;
        use aws_sdk_s3::operation::list_multipart_uploads::ListMultipartUploadsOutput;
        use aws_sdk_s3::operation::list_parts::ListPartsOutput;
        use aws_sdk_s3::operation::upload_part::UploadPartOutput;
        use aws_sdk_s3::types::{MultipartUpload, Part};
        use aws_smithy_mocks::{mock, mock_client, RuleMode};

        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("v");
        std::fs::write(&path, b"0123456789").unwrap();
        let f = FileEntry {
            rel: "v".into(),
            size: 10,
            sha256: manifest::sha256(b"0123456789"),
        };
        let uploads = mock!(Client::list_multipart_uploads).then_output(|| {
            ListMultipartUploadsOutput::builder()
                .uploads(MultipartUpload::builder().key("v").upload_id("u1").build())
                .build()
        });
        let parts = mock!(Client::list_parts).then_output(|| {
            ListPartsOutput::builder()
                .parts(Part::builder().part_number(1).size(4).e_tag("old").build())
                .build()
        });
        let put = mock!(Client::upload_part)
            .then_output(|| UploadPartOutput::builder().e_tag("new").build());
        let complete = mock!(Client::complete_multipart_upload)
            .then_output(|| CompleteMultipartUploadOutput::builder().build());
        let client = mock_client!(
            aws_sdk_s3,
            RuleMode::MatchAny,
            [&uploads, &parts, &put, &complete]
        );
        let part = Parts { size: 5, window: 2 };
        send_v(&client, &path, &f, part).await.unwrap();
        assert_eq!(put.num_calls(), 2, "both parts are sent");
    }

    fn scanned_with_no_files(manifest: &str) -> Scanned {
        Scanned {
            shown: "data/train".into(),
            root: PathBuf::from("/nonexistent"),
            files: Vec::new(),
            abs: Vec::new(),
            manifest: manifest.into(),
            digest: "d".repeat(64),
            bytes: 0,
            skipped: Default::default(),
            hashed_files: 0,
            hashed_bytes: 0,
            allowed_findings: Vec::new(),
        }
    }

    /// S3 answers DeleteObjects with 200 and per-key errors (s3:DeleteObject denied, Object
    /// Lock): the push fails before the manifest, naming the keys, the code and the permission.
    #[tokio::test]
    async fn stray_objects_that_cannot_be_deleted_fail_the_push_before_the_manifest() {
        use aws_sdk_s3::operation::delete_objects::DeleteObjectsOutput;
        use aws_sdk_s3::operation::put_object::PutObjectOutput;
        use aws_sdk_s3::types::{DeletedObject, Error as S3Error};
        use aws_smithy_mocks::{mock, mock_client, RuleMode};

        let scanned = scanned_with_no_files("");
        let target = Target::channel("b", "train", &scanned.digest);
        let stray = |n: &str| format!("{}{n}", target.prefix());
        let plan = RemotePlan {
            extra: vec![stray("old.png"), stray("locked.png"), stray("denied.png")],
            ..Default::default()
        };
        let (locked, denied, old) = (stray("locked.png"), stray("denied.png"), stray("old.png"));
        let delete = mock!(Client::delete_objects).then_output(move || {
            DeleteObjectsOutput::builder()
                .deleted(DeletedObject::builder().key(&old).build())
                .errors(
                    S3Error::builder()
                        .key(&locked)
                        .code("AccessDenied")
                        .message("Access Denied because object protected by object lock.")
                        .build(),
                )
                .errors(
                    S3Error::builder()
                        .key(&denied)
                        .code("AccessDenied")
                        .message("Access Denied")
                        .build(),
                )
                .build()
        });
        let manifest = mock!(Client::put_object).then_output(|| PutObjectOutput::builder().build());
        let client = mock_client!(aws_sdk_s3, RuleMode::MatchAny, [&delete, &manifest]);
        let e = execute(
            &client,
            &target,
            &scanned,
            &plan,
            &Progress::silent(),
            PushOptions::default(),
        )
        .await
        .unwrap_err();
        assert_eq!(delete.num_calls(), 1);
        assert_eq!(
            manifest.num_calls(),
            0,
            "no manifest: the prefix is not complete"
        );
        assert_eq!(e.exit_code(), 4);
        assert!(e.message.contains("could not remove 2 objects"), "{e}");
        let details = e.details.join("\n");
        assert!(
            details.contains(&format!("s3://b/{}: AccessDenied", stray("locked.png"))),
            "{details}"
        );
        assert!(details.contains("denied.png: AccessDenied"), "{details}");
        assert!(!details.contains("old.png"), "{details}");
        let hint = e.hint.unwrap();
        assert!(
            hint.contains("s3:DeleteObject on arn:aws:s3:::b/"),
            "{hint}"
        );
    }

    /// More than one page of unfinished uploads (1,000 a page): the upload of this file on
    /// the second page is found and resumed, not started again.
    #[tokio::test]
    async fn unfinished_uploads_are_listed_past_the_first_page() {
        use aws_sdk_s3::operation::list_multipart_uploads::ListMultipartUploadsOutput;
        use aws_sdk_s3::operation::list_parts::ListPartsOutput;
        use aws_sdk_s3::types::MultipartUpload;
        use aws_smithy_mocks::{mock, mock_client, RuleMode};

        let first = mock!(Client::list_multipart_uploads)
            .match_requests(|r| r.key_marker().is_none())
            .then_output(|| {
                ListMultipartUploadsOutput::builder()
                    .uploads(
                        MultipartUpload::builder()
                            .key("p/v.bin")
                            .upload_id("a")
                            .build(),
                    )
                    .is_truncated(true)
                    .next_key_marker("p/v.bin")
                    .next_upload_id_marker("a")
                    .build()
            });
        let second = mock!(Client::list_multipart_uploads)
            .match_requests(|r| {
                r.key_marker() == Some("p/v.bin") && r.upload_id_marker() == Some("a")
            })
            .then_output(|| {
                ListMultipartUploadsOutput::builder()
                    .uploads(
                        MultipartUpload::builder()
                            .key("p/v.bin")
                            .upload_id("b")
                            .initiated(aws_smithy_types::DateTime::from_secs(2_000_000_000))
                            .build(),
                    )
                    .is_truncated(false)
                    .build()
            });
        let parts = mock!(Client::list_parts)
            .match_requests(|r| r.upload_id() == Some("b"))
            .then_output(|| ListPartsOutput::builder().build());
        let client = mock_client!(aws_sdk_s3, RuleMode::MatchAny, [&first, &second, &parts]);
        let (id, _) = existing_upload(&client, "bucket", "p/v.bin")
            .await
            .unwrap()
            .expect("found");
        assert_eq!(id, "b", "the newest upload, from the second page");
        assert_eq!((first.num_calls(), second.num_calls()), (1, 1));
    }

    /// An S3 stand-in at the HTTP layer that holds every UploadPart until `want` of them are
    /// pending at once (or 2 s pass), and records the most that were.
    #[derive(Debug, Clone)]
    struct PartGate {
        want: usize,
        pending: Arc<std::sync::atomic::AtomicUsize>,
        most: Arc<std::sync::atomic::AtomicUsize>,
        open: Arc<Semaphore>,
    }

    impl aws_smithy_runtime_api::client::http::HttpConnector for PartGate {
        fn call(
            &self,
            req: aws_smithy_runtime_api::client::orchestrator::HttpRequest,
        ) -> aws_smithy_runtime_api::client::http::HttpConnectorFuture {
            use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
            use std::sync::atomic::Ordering;
            let g = self.clone();
            let (method, uri) = (req.method().to_string(), req.uri().to_string());
            aws_smithy_runtime_api::client::http::HttpConnectorFuture::new(async move {
                let xml = |body: &str| {
                    HttpResponse::new(
                        200.try_into().unwrap(),
                        aws_smithy_types::body::SdkBody::from(body.to_string()),
                    )
                };
                let resp = if method == "PUT" && uri.contains("partNumber=") {
                    let n = g.pending.fetch_add(1, Ordering::SeqCst) + 1;
                    g.most.fetch_max(n, Ordering::SeqCst);
                    if n >= g.want {
                        g.open.add_permits(10_000);
                    }
                    let _ =
                        tokio::time::timeout(std::time::Duration::from_secs(2), g.open.acquire())
                            .await;
                    g.pending.fetch_sub(1, Ordering::SeqCst);
                    let mut r = xml("");
                    r.headers_mut().insert("ETag", "\"e\"");
                    r
                } else if method == "GET" {
                    xml("<ListMultipartUploadsResult><Bucket>b</Bucket><IsTruncated>false</IsTruncated></ListMultipartUploadsResult>")
                } else if uri.contains("uploadId=") {
                    xml("<CompleteMultipartUploadResult><Bucket>b</Bucket><Key>v</Key><ETag>\"x\"</ETag></CompleteMultipartUploadResult>")
                } else {
                    xml("<InitiateMultipartUploadResult><Bucket>b</Bucket><Key>v</Key><UploadId>u</UploadId></InitiateMultipartUploadResult>")
                };
                Ok(resp)
            })
        }
    }

    impl aws_smithy_runtime_api::client::http::HttpClient for PartGate {
        fn http_connector(
            &self,
            _: &aws_smithy_runtime_api::client::http::HttpConnectorSettings,
            _: &aws_smithy_runtime_api::client::runtime_components::RuntimeComponents,
        ) -> aws_smithy_runtime_api::client::http::SharedHttpConnector {
            aws_smithy_runtime_api::client::http::SharedHttpConnector::new(self.clone())
        }
    }

    /// The parts of one file in flight follow SAGETRAIN_UPLOAD_CONCURRENCY, not the default
    /// (16): 24 UploadPart requests are pending at once.
    #[tokio::test]
    async fn multipart_parts_in_flight_follow_the_configured_concurrency() {
        use std::sync::atomic::{AtomicUsize, Ordering};

        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("v");
        let content = vec![7u8; 48];
        std::fs::write(&path, &content).unwrap();
        let f = FileEntry {
            rel: "v".into(),
            size: 48,
            sha256: manifest::sha256(&content),
        };
        let conc = PushOptions::from_env(&|k| (k == CONCURRENCY_VAR).then(|| "24".to_string()))
            .unwrap()
            .concurrency;
        let gate = PartGate {
            want: 24,
            pending: Arc::new(AtomicUsize::new(0)),
            most: Arc::new(AtomicUsize::new(0)),
            open: Arc::new(Semaphore::new(0)),
        };
        let config = aws_sdk_s3::Config::builder()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .region(aws_sdk_s3::config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_s3::config::Credentials::for_tests())
            .force_path_style(true)
            .http_client(gate.clone())
            .build();
        let client = Client::from_conf(config);
        let part = Parts {
            size: 1,
            window: conc,
        };
        send_v(&client, &path, &f, part).await.unwrap();
        assert_eq!(
            gate.most.load(Ordering::SeqCst),
            24,
            "SAGETRAIN_UPLOAD_CONCURRENCY=24 parts in flight"
        );
    }

    #[test]
    fn hash_range_hashes_the_range() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        std::fs::write(&p, b"0123456789").unwrap();
        assert_eq!(
            hash_range(p.clone(), 2, 3).unwrap(),
            manifest::sha256(b"234")
        );
        assert!(hash_range(p, 8, 5).is_err());
    }
}
