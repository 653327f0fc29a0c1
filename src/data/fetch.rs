//! S3 to this machine: one object streamed to a file ([`object`], used by `download`), and an
//! S3 channel kept in the user's cache for local runs ([`channel`]): a folder per channel URI
//! (and sample size), whose manifest records each object's ETag, so that a second run reads
//! nothing from S3 but the listing, and a changed object is fetched alone.

use crate::error::{Error, Result};
use crate::refs::S3Uri;
use crate::ui::progress::Progress;
use crate::ui::Ui;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};
use tokio::io::AsyncWriteExt;

/// The GETs of a channel in flight at once.
pub const CONCURRENCY: usize = 8;

/// Download `uri` to `dest`, chunk by chunk (never whole in memory), through a `.part` file
/// renamed at the end; `progress` is told each chunk's size and the object's (when known).
/// Returns the byte count and the
/// object's ETag, or None if the object does not exist.
pub async fn object(
    s3: &aws_sdk_s3::Client,
    uri: &S3Uri,
    dest: &Path,
    progress: &dyn Fn(u64, Option<u64>),
) -> Result<Option<(u64, Option<String>)>> {
    let out = match s3
        .get_object()
        .bucket(&uri.bucket)
        .key(&uri.key)
        .send()
        .await
    {
        Ok(o) => o,
        Err(e) => {
            if e.as_service_error().is_some_and(|s| s.is_no_such_key())
                || crate::aws::error_code(&e).as_deref() == Some("NoSuchKey")
            {
                return Ok(None);
            }
            return Err(crate::aws::aws_error("s3:GetObject", &e));
        }
    };
    let expected = out.content_length().filter(|n| *n >= 0).map(|n| n as u64);
    let etag = out.e_tag().map(str::to_string);
    let part = {
        let mut name = dest.file_name().unwrap_or_default().to_os_string();
        name.push(".part");
        dest.with_file_name(name)
    };
    let io_err = |what: &str, p: &Path, e: std::io::Error| {
        Error::internal(format!("cannot {what} {}: {e}", p.display()))
    };
    let file = tokio::fs::File::create(&part)
        .await
        .map_err(|e| io_err("write", &part, e))?;
    let mut w = tokio::io::BufWriter::with_capacity(1 << 20, file);
    let mut body = out.body;
    let mut written = 0u64;
    loop {
        match body.try_next().await {
            Ok(Some(chunk)) => {
                w.write_all(&chunk)
                    .await
                    .map_err(|e| io_err("write", &part, e))?;
                written += chunk.len() as u64;
                progress(chunk.len() as u64, expected);
            }
            Ok(None) => break,
            Err(e) => {
                drop(w);
                let _ = tokio::fs::remove_file(&part).await;
                return Err(Error::aws(format!(
                    "s3:GetObject {uri}: the download broke off after {written} bytes: {e}"
                ))
                .with_hint("run the same command again"));
            }
        }
    }
    w.flush().await.map_err(|e| io_err("write", &part, e))?;
    drop(w);
    if let Some(n) = expected {
        if n != written {
            let _ = tokio::fs::remove_file(&part).await;
            return Err(
                Error::aws(format!("s3:GetObject {uri}: got {written} bytes of {n}"))
                    .with_hint("run the same command again"),
            );
        }
    }
    tokio::fs::rename(&part, dest)
        .await
        .map_err(|e| io_err("write", dest, e))?;
    Ok(Some((written, etag)))
}

/// An object of a channel's listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub key: String,
    /// Its path in the channel folder.
    pub rel: PathBuf,
    pub etag: String,
    pub size: u64,
}

/// What the cache holds of a channel: each file's ETag and size.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub uri: String,
    pub objects: BTreeMap<String, Cached>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cached {
    pub etag: String,
    pub size: u64,
}

/// The cache folder's name of a channel: a digest of its URI and of the sample size.
pub fn cache_key(uri: &str, sample: Option<u64>) -> String {
    let mut h = Sha256::new();
    h.update(uri.as_bytes());
    if let Some(n) = sample {
        h.update(format!("\n--local-sample {n}").as_bytes());
    }
    let hex: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    match sample {
        Some(n) => format!("{}-sample-{n}", &hex[..16]),
        None => hex[..16].to_string(),
    }
}

/// Where the object `key` goes in the folder of the channel `prefix`: the key after the
/// prefix (or its file name when the prefix is the key itself). None for a folder marker or
/// a key that cannot be a path here (`..`, an empty part).
pub fn rel_path(prefix: &str, key: &str) -> Option<PathBuf> {
    if key.ends_with('/') {
        return None;
    }
    let rest = key.strip_prefix(prefix)?.trim_start_matches('/');
    let rest = if rest.is_empty() {
        key.rsplit('/').next()?
    } else {
        rest
    };
    if rest
        .split('/')
        .any(|p| p.is_empty() || p == "." || p == "..")
    {
        return None;
    }
    let p = PathBuf::from(rest);
    p.components()
        .all(|c| matches!(c, Component::Normal(_)))
        .then_some(p)
}

/// What a run must do to the cached folder: the objects to fetch (indexes into the listing)
/// and the files to remove (no longer in the channel).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub fetch: Vec<usize>,
    pub remove: Vec<PathBuf>,
}

/// Compare the listing with the manifest and the files on disk (path and size): an object is
/// fetched unless the manifest has its ETag and the file its size.
pub fn plan(listed: &[Listed], manifest: &Manifest, on_disk: &BTreeMap<PathBuf, u64>) -> Plan {
    let fetch = listed
        .iter()
        .enumerate()
        .filter(|(_, o)| {
            let rel = o.rel.to_string_lossy();
            let known = manifest
                .objects
                .get(rel.as_ref())
                .is_some_and(|c| c.etag == o.etag && c.size == o.size);
            !(known && on_disk.get(&o.rel) == Some(&o.size))
        })
        .map(|(i, _)| i)
        .collect();
    let remove = on_disk
        .keys()
        .filter(|p| !listed.iter().any(|o| &o.rel == *p))
        .cloned()
        .collect();
    Plan { fetch, remove }
}

/// A channel made ready in the cache.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub objects: usize,
    pub bytes: u64,
    pub fetched: usize,
    pub fetched_bytes: u64,
}

impl Fetched {
    /// `12 objects (34.5 MB): 3 fetched (4.1 MB), 9 from the cache`.
    pub fn summary(&self) -> String {
        use indicatif::DecimalBytes;
        format!(
            "{} objects ({}): {} fetched ({}), {} from the cache",
            self.objects,
            DecimalBytes(self.bytes),
            self.fetched,
            DecimalBytes(self.fetched_bytes),
            self.objects - self.fetched
        )
    }
}

fn io_error(what: &str, path: &Path, e: std::io::Error) -> Error {
    Error::internal(format!("cannot {what} {}: {e}", path.display()))
        .with_hint("check the permissions and free space of the cache folder (XDG_CACHE_HOME)")
}

/// The files under `dir` (relative) and their sizes; `.part` files of a broken-off run are
/// listed too, so that they are removed.
fn files_under(dir: &Path) -> BTreeMap<PathBuf, u64> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.filter_map(|e| e.ok()) {
            let p = e.path();
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(p),
                Ok(_) => {
                    let size = e.metadata().map_or(0, |m| m.len());
                    if let Ok(rel) = p.strip_prefix(dir) {
                        out.insert(rel.to_path_buf(), size);
                    }
                }
                Err(_) => {}
            }
        }
    }
    out
}

/// List the channel `uri` (every page, or the first `sample` objects).
pub async fn list(
    s3: &aws_sdk_s3::Client,
    uri: &S3Uri,
    sample: Option<u64>,
) -> Result<Vec<Listed>> {
    let mut listed = Vec::new();
    let mut token = None;
    loop {
        let mut req = s3
            .list_objects_v2()
            .bucket(&uri.bucket)
            .prefix(&uri.key)
            .set_continuation_token(token.take());
        if let Some(n) = sample {
            req = req.max_keys((n - listed.len() as u64).clamp(1, 1000) as i32);
        }
        let page = req
            .send()
            .await
            .map_err(|e| crate::aws::aws_error("s3:ListObjectsV2", &e))?;
        for o in page.contents() {
            let (Some(key), Some(etag)) = (o.key(), o.e_tag()) else {
                continue;
            };
            if let Some(rel) = rel_path(&uri.key, key) {
                listed.push(Listed {
                    key: key.to_string(),
                    rel,
                    etag: etag.to_string(),
                    size: o.size().unwrap_or(0).max(0) as u64,
                });
            }
        }
        if sample.is_some_and(|n| listed.len() as u64 >= n) {
            listed.truncate(sample.unwrap_or(0) as usize);
            break;
        }
        match page.next_continuation_token() {
            Some(t) if page.is_truncated() == Some(true) => token = Some(t.to_string()),
            _ => break,
        }
    }
    Ok(listed)
}

/// Make the channel `uri` ready in its cache folder `dir` (`<cache>/<cache_key>`, its
/// manifest beside it as `<cache_key>.json`): fetch what is new or changed, remove what left
/// the channel.
pub async fn channel(
    ui: &Ui,
    s3: &aws_sdk_s3::Client,
    label: &str,
    uri: &S3Uri,
    dir: &Path,
    sample: Option<u64>,
) -> Result<Fetched> {
    let manifest_path = {
        let mut name = dir.file_name().unwrap_or_default().to_os_string();
        name.push(".json");
        dir.with_file_name(name)
    };
    crate::fsutil::create_private_dir_all(dir).map_err(|e| io_error("create", dir, e))?;
    let listed = list(s3, uri, sample).await?;
    if listed.is_empty() {
        return Err(Error::usage(format!(
            "{label}: {uri} holds no objects, so the local run would see an empty channel"
        ))
        .with_hint(format!(
            "check the URI (aws s3 ls {uri}), or give a local folder instead"
        )));
    }
    let manifest: Manifest = std::fs::read(&manifest_path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .filter(|m: &Manifest| m.uri == uri.to_string())
        .unwrap_or_default();
    let todo = plan(&listed, &manifest, &files_under(dir));
    for rel in &todo.remove {
        let p = dir.join(rel);
        std::fs::remove_file(&p).map_err(|e| io_error("remove", &p, e))?;
    }
    let bytes_to_fetch: u64 = todo.fetch.iter().map(|i| listed[*i].size).sum();
    let progress = Progress::new(ui, label, todo.fetch.len() as u64, bytes_to_fetch);
    let mut fresh = manifest.clone();
    fresh.uri = uri.to_string();
    fresh
        .objects
        .retain(|rel, _| listed.iter().any(|o| o.rel.to_string_lossy() == *rel));
    use futures::StreamExt;
    let mut gets = futures::stream::iter(todo.fetch.iter().map(|i| {
        let o = &listed[*i];
        let dest = dir.join(&o.rel);
        let progress = &progress;
        async move {
            if let Some(parent) = dest.parent() {
                std::fs::create_dir_all(parent).map_err(|e| io_error("create", parent, e))?;
            }
            let src = S3Uri {
                bucket: uri.bucket.clone(),
                key: o.key.clone(),
            };
            let got = object(s3, &src, &dest, &|n, _| progress.inc(0, n)).await?;
            progress.inc(1, 0);
            match got {
                Some((size, etag)) => Ok((o, size, etag.unwrap_or_else(|| o.etag.clone()))),
                None => Err(Error::aws(format!(
                    "{label}: {src} was listed but is gone; the channel changed during the run"
                ))
                .with_hint("run the same command again")),
            }
        }
    }))
    .buffer_unordered(CONCURRENCY);
    let mut fetched_bytes = 0;
    let mut result = Ok(());
    while let Some(r) = gets.next().await {
        match r {
            Ok((o, size, etag)) => {
                fetched_bytes += size;
                fresh
                    .objects
                    .insert(o.rel.to_string_lossy().into_owned(), Cached { etag, size });
            }
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    drop(gets);
    progress.finish();
    // The manifest holds what is complete on disk, also after a failure: the next run
    // fetches only the rest.
    let text = serde_json::to_vec_pretty(&fresh).unwrap_or_default();
    std::fs::write(&manifest_path, text).map_err(|e| io_error("write", &manifest_path, e))?;
    result?;
    Ok(Fetched {
        objects: listed.len(),
        bytes: listed.iter().map(|o| o.size).sum(),
        fetched: todo.fetch.len(),
        fetched_bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listed(rel: &str, etag: &str, size: u64) -> Listed {
        Listed {
            key: format!("p/{rel}"),
            rel: rel.into(),
            etag: etag.into(),
            size,
        }
    }

    #[test]
    fn keys_become_paths_under_the_channel_folder() {
        assert_eq!(
            rel_path("d/train/", "d/train/a/1.png"),
            Some("a/1.png".into())
        );
        assert_eq!(rel_path("d/train", "d/train/1.png"), Some("1.png".into()));
        assert_eq!(rel_path("d/x.csv", "d/x.csv"), Some("x.csv".into()));
        assert_eq!(rel_path("d/", "d/sub/"), None, "a folder marker");
        assert_eq!(rel_path("d/", "d/../etc/passwd"), None);
        assert_eq!(rel_path("d/", "d/a//b"), None);
        assert_eq!(rel_path("d/", "e/a"), None);
    }

    #[test]
    fn only_new_or_changed_objects_are_fetched_and_gone_ones_removed() {
        let l = vec![
            listed("a", "\"1\"", 3),
            listed("b", "\"2\"", 4),
            listed("c", "\"3\"", 5),
        ];
        let mut m = Manifest {
            uri: "s3://b/p/".into(),
            objects: BTreeMap::new(),
        };
        let cached = |etag: &str, size| Cached {
            etag: etag.into(),
            size,
        };
        m.objects.insert("a".into(), cached("\"1\"", 3));
        m.objects.insert("b".into(), cached("\"old\"", 4));
        m.objects.insert("c".into(), cached("\"3\"", 5));
        let disk = BTreeMap::from([
            (PathBuf::from("a"), 3),
            (PathBuf::from("b"), 4),
            (PathBuf::from("c"), 2),
            (PathBuf::from("gone"), 1),
        ]);
        let p = plan(&l, &m, &disk);
        assert_eq!(p.fetch, [1, 2], "b changed its ETag, c is short on disk");
        assert_eq!(p.remove, [PathBuf::from("gone")]);
        let all = BTreeMap::from([
            (PathBuf::from("a"), 3),
            (PathBuf::from("b"), 4),
            (PathBuf::from("c"), 5),
        ]);
        m.objects.insert("b".into(), cached("\"2\"", 4));
        assert_eq!(
            plan(&l, &m, &all),
            Plan::default(),
            "a second run fetches nothing"
        );
        assert_eq!(plan(&l, &Manifest::default(), &all).fetch, [0, 1, 2]);
    }

    #[test]
    fn a_sample_has_its_own_folder() {
        let full = cache_key("s3://b/p/", None);
        assert_eq!(full.len(), 16);
        assert_eq!(full, cache_key("s3://b/p/", None));
        assert_ne!(full, cache_key("s3://b/q/", None));
        assert!(cache_key("s3://b/p/", Some(5)).ends_with("-sample-5"));
    }
}
