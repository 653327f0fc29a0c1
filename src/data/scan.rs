//! Walking a dataset folder: which files go (hidden files, `.sagetrainignore`, symlinks), their
//! hashes (from the cache when size and mtime are unchanged), and the refusal of files that
//! look like AWS credentials. Local only: no network.

use super::cache::{mtime_ns, Cached, Finding, HashCache};
use super::manifest::{self, FileEntry};
use crate::error::{Error, Result};
use crate::ui::progress::Progress;
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::SystemTime;

/// The ignore file, in gitignore syntax, read in every folder of the dataset.
pub const IGNORE_FILE: &str = ".sagetrainignore";
/// Files at most this large are checked for credentials...
const SCAN_MAX_FILE: u64 = 1024 * 1024;
/// ...in their first this many bytes, when they are text.
const SCAN_HEAD: usize = 64 * 1024;
const READ_BUF: usize = 256 * 1024;
/// The longest relative path: 1024 bytes of S3 key minus the longest prefix
/// (`sagetrain/data/` + a 64-character channel + `/` + 32 hex digits + `/`).
pub const MAX_REL_PATH: usize = 1024 - (15 + 64 + 1 + 32 + 1);

#[derive(Debug, Clone, Copy, Default)]
pub struct ScanOptions {
    pub follow_symlinks: bool,
    pub allow_credentials_files: bool,
}

/// A file found by the walk, not yet hashed.
#[derive(Debug, Clone)]
pub struct Found {
    pub rel: String,
    pub abs: PathBuf,
    pub size: u64,
    pub mtime_ns: i128,
}

/// What the walk left out, to tell the user.
#[derive(Debug, Default, Clone)]
pub struct Skipped {
    /// Symlinks not followed (relative paths).
    pub symlinks: Vec<String>,
    /// Sockets, FIFOs, devices.
    pub special: Vec<String>,
}

/// A dataset folder, hashed.
#[derive(Debug, Clone)]
#[allow(dead_code)] // `shown`, `root`, `hashed_bytes`: read by Debug output and the tests
pub struct Scanned {
    /// The folder as given, for messages.
    pub shown: String,
    /// Its canonical path.
    pub root: PathBuf,
    /// Sorted by relative path; `abs[i]` is the file of `files[i]`.
    pub files: Vec<FileEntry>,
    pub abs: Vec<PathBuf>,
    pub manifest: String,
    pub digest: String,
    pub bytes: u64,
    pub skipped: Skipped,
    /// Files read this time (the others came from the cache).
    pub hashed_files: u64,
    pub hashed_bytes: u64,
    /// Files that look like credentials, uploaded because that was allowed.
    pub allowed_findings: Vec<(String, Finding)>,
}

fn rel_string(root: &Path, path: &Path) -> Result<String> {
    let rel = path.strip_prefix(root).map_err(|_| {
        Error::internal(format!(
            "{} is not inside {}",
            path.display(),
            root.display()
        ))
    })?;
    let mut parts = Vec::new();
    for c in rel.components() {
        match c.as_os_str().to_str() {
            Some(s) => parts.push(s.to_string()),
            None => {
                return Err(Error::usage(format!(
                    "{}: the file name is not valid UTF-8, so it cannot be an S3 key",
                    path.display()
                ))
                .with_hint(format!(
                    "rename it, or exclude it with a line in {}",
                    root.join(IGNORE_FILE).display()
                )))
            }
        }
    }
    Ok(parts.join("/"))
}

/// Walk `root` (a canonical folder): regular files, minus hidden ones (a name starting with
/// `.`, file or folder), minus what `.sagetrainignore` files exclude, minus symlinks unless
/// they are followed. Sorted by relative path.
pub fn walk(root: &Path, follow_symlinks: bool) -> Result<(Vec<Found>, Skipped)> {
    let mut builder = ignore::WalkBuilder::new(root);
    builder
        .standard_filters(false)
        .hidden(true)
        .parents(false)
        .follow_links(follow_symlinks)
        .add_custom_ignore_filename(IGNORE_FILE);
    let mut found = Vec::new();
    let mut skipped = Skipped::default();
    for item in builder.build() {
        let entry = match item {
            Ok(e) => e,
            Err(e) => {
                // A loop of followed symlinks: say so and go on; anything else stops the scan.
                if let ignore::Error::WithPath { err, path } = &e {
                    if matches!(**err, ignore::Error::Loop { .. }) {
                        skipped.symlinks.push(path.display().to_string());
                        continue;
                    }
                }
                if matches!(e, ignore::Error::Loop { .. }) {
                    continue;
                }
                return Err(Error::usage(format!(
                    "cannot read the data folder {}: {e}",
                    root.display()
                ))
                .with_hint("fix the permissions or the broken link, or exclude the path in .sagetrainignore"));
            }
        };
        if entry.depth() == 0 {
            continue;
        }
        let Some(ft) = entry.file_type() else {
            continue;
        };
        if entry.file_name() == IGNORE_FILE {
            continue;
        }
        let path = entry.path();
        if ft.is_symlink() {
            // Only when not following: a followed link reports its target's type.
            skipped.symlinks.push(rel_string(root, path)?);
            continue;
        }
        if ft.is_dir() {
            continue;
        }
        if !ft.is_file() {
            skipped.special.push(rel_string(root, path)?);
            continue;
        }
        let meta = std::fs::metadata(path).map_err(|e| {
            Error::usage(format!("cannot read {}: {e}", path.display()))
                .with_hint("fix its permissions, or exclude it in .sagetrainignore")
        })?;
        found.push(Found {
            rel: rel_string(root, path)?,
            abs: path.to_path_buf(),
            size: meta.len(),
            mtime_ns: meta.modified().map(mtime_ns).unwrap_or(0),
        });
    }
    found.sort_by(|a, b| a.rel.as_bytes().cmp(b.rel.as_bytes()));
    found.dedup_by(|a, b| a.rel == b.rel);
    Ok((found, skipped))
}

/// Does this beginning of a file look like AWS credentials?
pub fn check_credentials(name: &str, size: u64, head: &[u8]) -> Finding {
    if size > SCAN_MAX_FILE {
        return Finding::None;
    }
    let head = &head[..head.len().min(SCAN_HEAD)];
    if head.contains(&0) {
        return Finding::None; // binary: an image, a mask, an archive
    }
    let text = String::from_utf8_lossy(head);
    if name.eq_ignore_ascii_case("credentials")
        && text.to_ascii_lowercase().contains("aws_secret_access_key")
    {
        return Finding::CredentialsFile;
    }
    match crate::secrets::scan(&text) {
        Some(crate::secrets::Finding::AccessKeyId) => Finding::AccessKeyId,
        Some(crate::secrets::Finding::SecretAccessKey) => Finding::SecretAccessKey,
        // `scan` finds AWS keys only.
        Some(_) | None => Finding::None,
    }
}

/// Read a file once: its SHA-256, and the credential check of its beginning.
pub fn hash_file(path: &Path, buf: &mut [u8]) -> std::io::Result<(u64, [u8; 32], Finding)> {
    let mut f = std::fs::File::open(path)?;
    let size_hint = f.metadata()?.len();
    let mut hasher = Sha256::new();
    let mut head: Vec<u8> = Vec::new();
    let mut total = 0u64;
    loop {
        let n = f.read(buf)?;
        if n == 0 {
            break;
        }
        if head.len() < SCAN_HEAD && size_hint <= SCAN_MAX_FILE {
            let take = (SCAN_HEAD - head.len()).min(n);
            head.extend_from_slice(&buf[..take]);
        }
        hasher.update(&buf[..n]);
        total += n as u64;
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let finding = check_credentials(&name, total, &head);
    Ok((total, hasher.finalize().into(), finding))
}

/// Hash `found` files, using and refreshing the cache, on all cores.
fn hash_all(
    found: &[Found],
    cache: &HashCache,
    progress: &Progress,
) -> Result<Vec<(Cached, bool)>> {
    type Slot = Mutex<Option<Result<(Cached, bool)>>>;
    let results: Vec<Slot> = found.iter().map(|_| Mutex::new(None)).collect();
    let next = AtomicUsize::new(0);
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .clamp(1, 8);
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                let mut buf = vec![0u8; READ_BUF];
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= found.len() {
                        break;
                    }
                    let f = &found[i];
                    let r = match cache.get(&f.rel, f.size, f.mtime_ns) {
                        Some(c) => Ok((c, false)),
                        None => hash_one(f, &mut buf).map(|c| {
                            progress.inc(1, c.size);
                            (c, true)
                        }),
                    };
                    *results[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(r);
                }
            });
        }
    });
    results
        .into_iter()
        .map(|m| {
            m.into_inner()
                .unwrap_or_else(|e| e.into_inner())
                .expect("every file was hashed")
        })
        .collect()
}

fn hash_one(f: &Found, buf: &mut [u8]) -> Result<Cached> {
    let read_err = |e: std::io::Error| {
        Error::usage(format!("cannot read {}: {e}", f.abs.display()))
            .with_hint("fix its permissions, or exclude it in .sagetrainignore")
    };
    let stamp = |m: &std::fs::Metadata| (m.len(), m.modified().map(mtime_ns).unwrap_or(0));
    for _ in 0..3 {
        let before = stamp(&std::fs::metadata(&f.abs).map_err(read_err)?);
        let (size, sha256, finding) = hash_file(&f.abs, buf).map_err(read_err)?;
        let after = stamp(&std::fs::metadata(&f.abs).map_err(read_err)?);
        // Unchanged while it was read: the hash belongs to this size and mtime.
        if before == after && size == after.0 {
            return Ok(Cached {
                size,
                mtime_ns: after.1,
                sha256,
                finding,
            });
        }
    }
    Err(Error::usage(format!(
        "{} keeps changing while it is read",
        f.abs.display()
    ))
    .with_hint("wait until whatever writes it has finished, then run again"))
}

/// [`scan`] on tokio's blocking threads: the async runtime stays free meanwhile, so that an
/// interrupt (Ctrl-C, SIGTERM) ends the command at once rather than after the hashing.
pub async fn scan_async(
    shown: String,
    dir: PathBuf,
    opts: ScanOptions,
    cache_dir: Option<PathBuf>,
    ui: crate::ui::Ui,
) -> Result<Scanned> {
    tokio::task::spawn_blocking(move || scan(&shown, &dir, opts, cache_dir.as_deref(), &ui))
        .await
        .map_err(|e| Error::internal(format!("the scan of a data folder stopped: {e}")))?
}

/// Walk, hash and check a dataset folder. `shown` names it in messages (the value as given).
pub fn scan(
    shown: &str,
    dir: &Path,
    opts: ScanOptions,
    cache_dir: Option<&Path>,
    ui: &crate::ui::Ui,
) -> Result<Scanned> {
    let root = dir.canonicalize().map_err(|e| {
        Error::usage(format!("the data folder {shown} cannot be opened: {e}"))
            .with_hint("give an existing folder, or an s3:// URI")
    })?;
    if !root.is_dir() {
        return Err(Error::usage(format!("{shown} is not a folder"))
            .with_hint("give a folder of training files, or an s3:// URI"));
    }
    let started = SystemTime::now();
    let (found, skipped) = walk(&root, opts.follow_symlinks)?;
    if found.is_empty() {
        return Err(Error::usage(format!(
            "the data folder {shown} holds no files to upload (hidden files, symlinks and what .sagetrainignore excludes are left out)"
        ))
        .with_hint("put the training files in it, or give an s3:// URI"));
    }
    // S3 keys have at most 1024 bytes; the prefix takes up to 113 (a 64-character channel).
    if let Some(f) = found.iter().find(|f| f.rel.len() > MAX_REL_PATH) {
        return Err(Error::usage(format!(
            "{}: the path is {} bytes long; inside a data folder a path may have at most {MAX_REL_PATH} (S3 keys have at most 1024)",
            f.abs.display(),
            f.rel.len()
        ))
        .with_hint("shorten the path, or exclude the file in .sagetrainignore"));
    }
    let mut cache = HashCache::load(cache_dir, &root);
    let (to_read_files, to_read_bytes) = found
        .iter()
        .filter(|f| cache.get(&f.rel, f.size, f.mtime_ns).is_none())
        .fold((0u64, 0u64), |(n, b), f| (n + 1, b + f.size));
    let progress = Progress::new(
        ui,
        &format!("hashing {shown}"),
        to_read_files,
        to_read_bytes,
    );
    let hashed = hash_all(&found, &cache, &progress);
    progress.finish();
    let hashed = hashed?;

    let mut refused = Vec::new();
    let mut allowed_findings = Vec::new();
    let mut files = Vec::with_capacity(found.len());
    let mut abs = Vec::with_capacity(found.len());
    let (mut hashed_files, mut hashed_bytes, mut bytes) = (0u64, 0u64, 0u64);
    for (f, (c, read)) in found.iter().zip(&hashed) {
        if *read {
            hashed_files += 1;
            hashed_bytes += c.size;
        }
        if c.finding != Finding::None {
            if opts.allow_credentials_files {
                allowed_findings.push((f.rel.clone(), c.finding));
            } else {
                refused.push(format!("{}: {}", f.abs.display(), c.finding.describe()));
            }
        }
        bytes += c.size;
        files.push(FileEntry {
            rel: f.rel.clone(),
            size: c.size,
            sha256: c.sha256,
        });
        abs.push(f.abs.clone());
    }
    // The cache keeps what was found, including findings, so a cached file is refused again.
    cache.store(
        &root,
        found
            .iter()
            .zip(&hashed)
            .map(|(f, (c, _))| (f.rel.clone(), *c)),
        started,
    );
    if !refused.is_empty() {
        let n = refused.len();
        return Err(Error::usage(format!(
            "refusing to upload {shown}: {n} file{} look{} like AWS credentials; nothing was uploaded",
            if n == 1 { "" } else { "s" },
            if n == 1 { "s" } else { "" }
        ))
        .with_details(refused)
        .with_hint(format!(
            "remove the file{s} from the folder (and rotate any real key), or exclude {it} with a line in {}; if {it} only look{s2} like credentials, pass --allow-credentials-files",
            root.join(IGNORE_FILE).display(),
            s = if n == 1 { "" } else { "s" },
            it = if n == 1 { "it" } else { "them" },
            s2 = if n == 1 { "s" } else { "" },
        )));
    }
    let manifest_text = manifest::render(&files);
    let digest = manifest::digest_of(&manifest_text);
    Ok(Scanned {
        shown: shown.to_string(),
        root,
        files,
        abs,
        manifest: manifest_text,
        digest,
        bytes,
        skipped,
        hashed_files,
        hashed_bytes,
        allowed_findings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        for (rel, content) in files {
            let p = d.path().join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, content).unwrap();
        }
        d
    }

    fn rels(root: &Path, follow: bool) -> Vec<String> {
        let root = root.canonicalize().unwrap();
        walk(&root, follow)
            .unwrap()
            .0
            .into_iter()
            .map(|f| f.rel)
            .collect()
    }

    #[test]
    fn hidden_files_and_folders_are_skipped() {
        let d = tree(&[
            ("img/1.png", "a"),
            (".DS_Store", "x"),
            ("img/.DS_Store", "x"),
            (".git/config", "x"),
            ("img/.cache/a", "x"),
            ("masks/1.png", "b"),
        ]);
        assert_eq!(rels(d.path(), false), vec!["img/1.png", "masks/1.png"]);
    }

    #[test]
    fn a_hidden_file_can_be_included_again_by_a_negated_pattern() {
        let d = tree(&[
            (".sagetrainignore", "!.labels.json\n"),
            (".labels.json", "{}"),
            (".other", "x"),
            ("a.png", "1"),
        ]);
        assert_eq!(rels(d.path(), false), vec![".labels.json", "a.png"]);
    }

    #[test]
    fn sagetrainignore_excludes_with_gitignore_syntax_in_every_folder() {
        let d = tree(&[
            (
                ".sagetrainignore",
                "*.tmp\n/logs/\nraw/**/*.tif\n!keep.tmp\n# comment\n",
            ),
            ("a.png", "1"),
            ("b.tmp", "1"),
            ("keep.tmp", "1"),
            ("logs/run.txt", "1"),
            ("sub/logs/kept.txt", "1"),
            ("raw/x/y.tif", "1"),
            ("raw/x/y.png", "1"),
            ("sub/.sagetrainignore", "secret.png\n"),
            ("sub/secret.png", "1"),
            ("sub/c.png", "1"),
            ("other/secret.png", "1"),
        ]);
        assert_eq!(
            rels(d.path(), false),
            vec![
                "a.png",
                "keep.tmp",
                "other/secret.png",
                "raw/x/y.png",
                "sub/c.png",
                "sub/logs/kept.txt",
            ]
        );
    }

    #[cfg(unix)]
    #[test]
    fn symlinks_are_not_followed_unless_asked() {
        let outside = tree(&[("secret.txt", "outside"), ("dir/f.txt", "outside dir")]);
        let d = tree(&[("a.png", "1")]);
        std::os::unix::fs::symlink(outside.path().join("secret.txt"), d.path().join("link.txt"))
            .unwrap();
        std::os::unix::fs::symlink(outside.path().join("dir"), d.path().join("linkdir")).unwrap();
        let root = d.path().canonicalize().unwrap();
        let (found, skipped) = walk(&root, false).unwrap();
        assert_eq!(
            found.iter().map(|f| f.rel.as_str()).collect::<Vec<_>>(),
            vec!["a.png"]
        );
        let mut s = skipped.symlinks.clone();
        s.sort();
        assert_eq!(s, vec!["link.txt", "linkdir"]);
        assert_eq!(
            rels(d.path(), true),
            vec!["a.png", "link.txt", "linkdir/f.txt"]
        );
    }

    #[test]
    fn credentials_are_recognised_in_text_files_only() {
        let creds = b"[default]\naws_access_key_id = x\naws_secret_access_key = y\n";
        assert_eq!(
            check_credentials("credentials", 60, creds),
            Finding::CredentialsFile
        );
        assert_eq!(check_credentials("notes.txt", 60, creds), Finding::None);
        assert_eq!(
            check_credentials("train.csv", 30, b"id,AKIAIOSFODNN7EXAMPLE\n"),
            Finding::AccessKeyId
        );
        assert_eq!(
            check_credentials(
                "env",
                60,
                b"secret: wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n"
            ),
            Finding::SecretAccessKey
        );
        // Binary (a NUL byte) and large files are not scanned.
        assert_eq!(
            check_credentials("img.png", 30, b"\x89PNG\0AKIAIOSFODNN7EXAMPLE"),
            Finding::None
        );
        assert_eq!(
            check_credentials("big.csv", 2 * 1024 * 1024, b"AKIAIOSFODNN7EXAMPLE"),
            Finding::None
        );
        // Ordinary data.
        assert_eq!(
            check_credentials("labels.csv", 40, b"image,mask\n001.png,001_mask.png\n"),
            Finding::None
        );
    }

    fn ui() -> crate::ui::Ui {
        crate::ui::Ui::new(crate::ui::Format::Text, true, 0, &|_| None)
    }

    #[test]
    fn scan_refuses_credentials_naming_them_unless_allowed_and_remembers_in_the_cache() {
        let d = tree(&[
            ("a.png", "1"),
            ("sub/credentials", "[x]\naws_secret_access_key = abc\n"),
        ]);
        let cache = tempfile::tempdir().unwrap();
        for _ in 0..2 {
            let e = scan(
                "./d",
                d.path(),
                ScanOptions::default(),
                Some(cache.path()),
                &ui(),
            )
            .unwrap_err();
            assert_eq!(e.kind, crate::error::Kind::Usage);
            assert!(e.details[0].contains("sub/credentials"), "{e}");
            assert!(e.details[0].contains("shared credentials file"), "{e}");
        }
        let s = scan(
            "./d",
            d.path(),
            ScanOptions {
                allow_credentials_files: true,
                ..Default::default()
            },
            Some(cache.path()),
            &ui(),
        )
        .unwrap();
        assert_eq!(s.files.len(), 2);
        assert_eq!(s.allowed_findings.len(), 1);
    }

    #[test]
    fn scan_uses_the_cache_and_rereads_changed_files() {
        let d = tree(&[("a.png", "aaaa"), ("b.png", "bbbb")]);
        let cache = tempfile::tempdir().unwrap();
        let cached_scan = || {
            scan(
                "d",
                d.path(),
                ScanOptions::default(),
                Some(cache.path()),
                &ui(),
            )
            .unwrap()
        };
        let set_mtime = |f: &Path, t: SystemTime| {
            std::fs::File::options()
                .write(true)
                .open(f)
                .unwrap()
                .set_modified(t)
                .unwrap();
        };
        // Make the files old enough to be cached.
        let old = SystemTime::now() - std::time::Duration::from_secs(60);
        for f in ["a.png", "b.png"] {
            set_mtime(&d.path().join(f), old);
        }
        let first = cached_scan();
        assert_eq!(first.hashed_files, 2);
        let again = cached_scan();
        assert_eq!(again.hashed_files, 0, "nothing is read again");
        assert_eq!(again.digest, first.digest);
        // Same size, same mtime, other content: the cache is trusted (proof it is not read).
        let a = d.path().join("a.png");
        std::fs::write(&a, "AAAA").unwrap();
        set_mtime(&a, old);
        let trusted = cached_scan();
        assert_eq!(trusted.hashed_files, 0);
        assert_eq!(trusted.digest, first.digest);
        // A new mtime: read again, new digest.
        set_mtime(&a, old + std::time::Duration::from_secs(1));
        let changed = cached_scan();
        assert_eq!(changed.hashed_files, 1);
        assert_ne!(changed.digest, first.digest);
        // Without a cache folder everything is read, with the same result.
        let nocache = scan("d", d.path(), ScanOptions::default(), None, &ui()).unwrap();
        assert_eq!(nocache.hashed_files, 2);
        assert_eq!(nocache.digest, changed.digest);
    }

    #[test]
    fn an_empty_folder_is_an_error() {
        let d = tree(&[(".hidden", "x")]);
        let e = scan("./empty", d.path(), ScanOptions::default(), None, &ui()).unwrap_err();
        assert!(e.message.contains("holds no files"), "{e}");
    }
}
