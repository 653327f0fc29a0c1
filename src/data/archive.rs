//! Unpacking a job's `model.tar.gz` safely.
//!
//! The whole archive is checked before anything is written: an entry with an absolute path or a
//! `..` component, a symbolic or hard link that points outside the folder (or through another
//! link of the archive), and a device or FIFO are refused, with an error naming the entry, and
//! then nothing at all is extracted. The second pass unpacks with the `tar` crate's
//! `unpack_in`, which also refuses to write through a link that leads outside the folder.

use crate::error::{Error, Kind, Result};
use std::collections::BTreeSet;
use std::fs::File;
use std::io::BufReader;
use std::path::{Component, Path, PathBuf};
use tar::EntryType;

fn open(archive: &Path) -> Result<tar::Archive<flate2::read::GzDecoder<BufReader<File>>>> {
    let f = File::open(archive)
        .map_err(|e| Error::internal(format!("cannot open {}: {e}", archive.display())))?;
    Ok(tar::Archive::new(flate2::read::GzDecoder::new(
        BufReader::new(f),
    )))
}

/// A path inside the archive, made relative and checked: no root, no `..`.
fn relative(path: &Path) -> std::result::Result<PathBuf, &'static str> {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Prefix(_) | Component::RootDir => return Err("is an absolute path"),
            Component::ParentDir => return Err("has a `..` component"),
            Component::CurDir => {}
            Component::Normal(p) => out.push(p),
        }
    }
    Ok(out)
}

/// Where a symbolic link's target lands, relative to the folder; an error if it leaves the
/// folder or passes through another link of the archive on the way.
fn resolve_link(
    entry: &Path,
    target: &Path,
    links: &BTreeSet<PathBuf>,
) -> std::result::Result<PathBuf, String> {
    let mut at: PathBuf = entry.parent().map(Path::to_path_buf).unwrap_or_default();
    for c in target.components() {
        match c {
            Component::Prefix(_) | Component::RootDir => {
                return Err("the absolute path".to_string())
            }
            Component::ParentDir => {
                if !at.pop() {
                    return Err("outside the folder".to_string());
                }
            }
            Component::CurDir => {}
            Component::Normal(p) => {
                at.push(p);
                if links.contains(&at) {
                    return Err(format!(
                        "through `{}`, another link of the archive",
                        at.display()
                    ));
                }
            }
        }
    }
    Ok(at)
}

/// Does `path` (or one of its parents) go through one of the archive's own symbolic links?
fn through_link(path: &Path, links: &BTreeSet<PathBuf>) -> Option<PathBuf> {
    let mut p = PathBuf::new();
    for c in path.components() {
        p.push(c);
        if links.contains(&p) {
            return Some(p);
        }
    }
    None
}

fn refuse(archive: &Path, dir: &Path, entry: &str, why: &str) -> Error {
    Error::new(
        Kind::Usage,
        format!(
            "refusing to extract {}: the entry `{entry}` {why}, which would write outside {}",
            archive.display(),
            dir.display()
        ),
    )
    .with_hint(format!(
        "nothing was extracted; the archive is kept at {} (list it with: tar tzvf {})",
        archive.display(),
        archive.display()
    ))
}

/// Check every entry; nothing is written.
pub fn check(archive: &Path, dir: &Path) -> Result<()> {
    let mut a = open(archive)?;
    let entries = a.entries().map_err(|e| bad_archive(archive, &e))?;
    let mut links = BTreeSet::new();
    for entry in entries {
        let entry = entry.map_err(|e| bad_archive(archive, &e))?;
        let raw = entry.path().map_err(|e| bad_archive(archive, &e))?;
        let shown = raw.display().to_string();
        let rel = relative(&raw).map_err(|why| refuse(archive, dir, &shown, why))?;
        if let Some(l) = through_link(rel.parent().unwrap_or(Path::new("")), &links) {
            return Err(refuse(
                archive,
                dir,
                &shown,
                &format!("is inside `{}`, a link of the archive", l.display()),
            ));
        }
        let kind = entry.header().entry_type();
        match kind {
            EntryType::Regular | EntryType::Continuous | EntryType::Directory => {}
            EntryType::Symlink => {
                let target = entry
                    .link_name()
                    .map_err(|e| bad_archive(archive, &e))?
                    .unwrap_or_default();
                let t = target.display().to_string();
                if target.is_absolute() {
                    return Err(refuse(
                        archive,
                        dir,
                        &shown,
                        &format!("is a link to the absolute path `{t}`"),
                    ));
                }
                if let Err(why) = resolve_link(&rel, &target, &links) {
                    return Err(refuse(
                        archive,
                        dir,
                        &shown,
                        &format!("is a link to `{t}`, {why}"),
                    ));
                }
                links.insert(rel.clone());
            }
            EntryType::Link => {
                let target = entry
                    .link_name()
                    .map_err(|e| bad_archive(archive, &e))?
                    .unwrap_or_default();
                let t = target.display().to_string();
                let landing = relative(&target).map_err(|why| {
                    refuse(
                        archive,
                        dir,
                        &shown,
                        &format!("is a hard link to `{t}`, which {why}"),
                    )
                })?;
                if let Some(l) = through_link(&landing, &links) {
                    return Err(refuse(
                        archive,
                        dir,
                        &shown,
                        &format!("is a hard link through `{}`, a link of the archive", l.display()),
                    ));
                }
            }
            other => {
                return Err(Error::new(
                    Kind::Usage,
                    format!(
                        "refusing to extract {}: the entry `{shown}` is a {other:?} entry; only files, folders and links are extracted",
                        archive.display()
                    ),
                )
                .with_hint(format!("nothing was extracted; the archive is kept at {}", archive.display())))
            }
        }
    }
    Ok(())
}

fn bad_archive(archive: &Path, e: &std::io::Error) -> Error {
    Error::internal(format!(
        "{} is not a readable .tar.gz archive: {e}",
        archive.display()
    ))
    .with_hint("download it again; if it persists, check what the training container writes to /opt/ml/model")
}

/// Check the whole archive, then unpack it into `dir` (created if missing). Returns the paths
/// written (files and links, not folders), in archive order.
pub fn extract(archive: &Path, dir: &Path) -> Result<Vec<PathBuf>> {
    check(archive, dir)?;
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::internal(format!("cannot create {}: {e}", dir.display())))?;
    let mut a = open(archive)?;
    a.set_overwrite(true);
    a.set_preserve_permissions(false);
    let mut written = Vec::new();
    for entry in a.entries().map_err(|e| bad_archive(archive, &e))? {
        let mut entry = entry.map_err(|e| bad_archive(archive, &e))?;
        let raw = entry
            .path()
            .map_err(|e| bad_archive(archive, &e))?
            .into_owned();
        let rel =
            relative(&raw).map_err(|why| refuse(archive, dir, &raw.display().to_string(), why))?;
        let is_dir = entry.header().entry_type() == EntryType::Directory;
        let unpacked = entry.unpack_in(dir).map_err(|e| {
            Error::internal(format!(
                "cannot extract `{}` from {} into {}: {e}",
                raw.display(),
                archive.display(),
                dir.display()
            ))
        })?;
        if !unpacked {
            return Err(refuse(
                archive,
                dir,
                &raw.display().to_string(),
                "was skipped by the unpacker",
            ));
        }
        if !is_dir && !rel.as_os_str().is_empty() {
            written.push(dir.join(rel));
        }
    }
    Ok(written)
}

/// [`extract`] on tokio's blocking threads: reading, decompressing and writing the files does
/// not hold up the async runtime (progress, signals).
pub async fn extract_async(archive: PathBuf, dir: PathBuf) -> Result<Vec<PathBuf>> {
    let shown = archive.display().to_string();
    tokio::task::spawn_blocking(move || extract(&archive, &dir))
        .await
        .map_err(|e| Error::internal(format!("the extraction of {shown} stopped: {e}")))?
}

#[cfg(test)]
pub mod tests {
    use super::*;
    use std::io::Write;

    /// An entry of a test archive: (path bytes as stored, kind, content or link target).
    pub enum E<'a> {
        File(&'a str, &'a [u8]),
        Dir(&'a str),
        Symlink(&'a str, &'a str),
        HardLink(&'a str, &'a str),
        Fifo(&'a str),
    }

    /// Build a .tar.gz with headers written byte for byte, so that unsafe paths can be made.
    pub fn targz(path: &Path, entries: &[E]) {
        let f = File::create(path).unwrap();
        let gz = flate2::write::GzEncoder::new(f, flate2::Compression::fast());
        let mut b = tar::Builder::new(gz);
        for e in entries {
            let mut h = tar::Header::new_gnu();
            let (name, kind, data, link): (&str, EntryType, &[u8], Option<&str>) = match e {
                E::File(n, d) => (n, EntryType::Regular, d, None),
                E::Dir(n) => (n, EntryType::Directory, b"", None),
                E::Symlink(n, t) => (n, EntryType::Symlink, b"", Some(t)),
                E::HardLink(n, t) => (n, EntryType::Link, b"", Some(t)),
                E::Fifo(n) => (n, EntryType::Fifo, b"", None),
            };
            let slot = &mut h.as_old_mut().name;
            slot[..name.len()].copy_from_slice(name.as_bytes());
            if let Some(t) = link {
                let slot = &mut h.as_old_mut().linkname;
                slot[..t.len()].copy_from_slice(t.as_bytes());
            }
            h.set_entry_type(kind);
            h.set_size(data.len() as u64);
            h.set_mode(if kind == EntryType::Directory {
                0o755
            } else {
                0o644
            });
            h.set_mtime(1_700_000_000);
            h.set_cksum();
            b.append(&h, data).unwrap();
        }
        b.into_inner().unwrap().finish().unwrap().flush().unwrap();
    }

    fn files_under(dir: &Path) -> Vec<String> {
        let mut out = Vec::new();
        fn walk(base: &Path, d: &Path, out: &mut Vec<String>) {
            for e in std::fs::read_dir(d).unwrap() {
                let e = e.unwrap();
                let p = e.path();
                out.push(p.strip_prefix(base).unwrap().display().to_string());
                if e.file_type().unwrap().is_dir() {
                    walk(base, &p, out);
                }
            }
        }
        walk(dir, dir, &mut out);
        out.sort();
        out
    }

    /// The extraction runs off the async runtime: a task on the same (single-threaded)
    /// runtime keeps running meanwhile.
    #[tokio::test]
    async fn extraction_leaves_the_runtime_free() {
        use std::sync::atomic::{AtomicU64, Ordering};
        let t = tempfile::tempdir().unwrap();
        let a = t.path().join("model.tar.gz");
        let big = vec![1u8; 8 * 1024 * 1024];
        targz(&a, &[E::File("model.pt", &big), E::File("more.pt", &big)]);
        let ticks = std::sync::Arc::new(AtomicU64::new(0));
        let t2 = ticks.clone();
        let ticker = tokio::spawn(async move {
            loop {
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                t2.fetch_add(1, Ordering::SeqCst);
            }
        });
        tokio::task::yield_now().await;
        let before = ticks.load(Ordering::SeqCst);
        let out = extract_async(a, t.path().join("out")).await.unwrap();
        let during = ticks.load(Ordering::SeqCst) - before;
        ticker.abort();
        assert_eq!(out.len(), 2);
        assert!(during > 0, "the runtime was blocked during the extraction");
    }

    #[test]
    fn a_normal_model_archive_is_extracted() {
        let t = tempfile::tempdir().unwrap();
        let a = t.path().join("model.tar.gz");
        targz(
            &a,
            &[
                E::File("model.pt", b"weights"),
                E::Dir("config/"),
                E::File("./config/params.json", b"{}"),
                E::Symlink("latest.pt", "model.pt"),
                E::Symlink("config/model.pt", "../model.pt"),
                E::HardLink("copy.pt", "model.pt"),
            ],
        );
        let dir = t.path().join("out");
        let written = extract(&a, &dir).unwrap();
        assert_eq!(
            written,
            [
                dir.join("model.pt"),
                dir.join("config/params.json"),
                dir.join("latest.pt"),
                dir.join("config/model.pt"),
                dir.join("copy.pt"),
            ]
        );
        assert_eq!(std::fs::read(dir.join("model.pt")).unwrap(), b"weights");
        assert_eq!(std::fs::read(dir.join("latest.pt")).unwrap(), b"weights");
        assert_eq!(
            std::fs::read(dir.join("config/model.pt")).unwrap(),
            b"weights"
        );
    }

    /// Each unsafe archive is refused, naming the entry, and nothing is written at all: not
    /// outside the folder, and not inside it either (the safe entries before it included).
    #[test]
    fn unsafe_entries_are_refused_and_nothing_is_written() {
        let cases: Vec<(&str, Vec<E>, &str)> = vec![
            (
                "dotdot",
                vec![E::File("ok.txt", b"x"), E::File("../escaped.txt", b"x")],
                "`../escaped.txt` has a `..` component",
            ),
            (
                "deep-dotdot",
                vec![E::File("a/../../escaped.txt", b"x")],
                "has a `..` component",
            ),
            (
                "absolute",
                vec![
                    E::File("ok.txt", b"x"),
                    E::File("/tmp/sagetrain-abs-escape.txt", b"x"),
                ],
                "`/tmp/sagetrain-abs-escape.txt` is an absolute path",
            ),
            (
                "symlink-out",
                vec![E::Symlink("evil", "../../outside")],
                "`evil` is a link to `../../outside`, outside the folder",
            ),
            (
                "symlink-abs",
                vec![E::Symlink("evil", "/etc")],
                "is a link to the absolute path `/etc`",
            ),
            (
                "write-through-link",
                vec![E::Symlink("sub", "."), E::File("sub/x", b"x")],
                "is inside `sub`, a link of the archive",
            ),
            (
                "link-chain",
                vec![
                    E::Dir("a/b/"),
                    E::Symlink("a/b/up", "../.."),
                    E::Symlink("esc", "a/b/up/.."),
                ],
                "through `a/b/up`",
            ),
            (
                "hardlink-out",
                vec![E::HardLink("h", "../outside")],
                "`h` is a hard link to `../outside`",
            ),
            (
                "hardlink-abs",
                vec![E::HardLink("h", "/etc/passwd")],
                "is a hard link to `/etc/passwd`, which is an absolute path",
            ),
            ("fifo", vec![E::Fifo("pipe")], "is a Fifo entry"),
        ];
        for (name, entries, expected) in cases {
            let t = tempfile::tempdir().unwrap();
            let a = t.path().join("model.tar.gz");
            targz(&a, &entries);
            std::fs::create_dir(t.path().join("a")).unwrap();
            let dir = t.path().join("a").join("out");
            let e = extract(&a, &dir).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{name}");
            assert!(e.message.contains(expected), "{name}: {}", e.message);
            assert!(e.hint.unwrap().contains("nothing was extracted"), "{name}");
            assert!(!dir.exists(), "{name}: the folder was created");
            assert_eq!(files_under(t.path()), ["a", "model.tar.gz"], "{name}");
        }
        assert!(!Path::new("/tmp/sagetrain-abs-escape.txt").exists());
    }

    #[test]
    fn a_file_that_is_not_an_archive_is_a_clear_error() {
        let t = tempfile::tempdir().unwrap();
        let a = t.path().join("model.tar.gz");
        std::fs::write(&a, b"not gzip").unwrap();
        let e = extract(&a, &t.path().join("out")).unwrap_err();
        assert!(
            e.message.contains("not a readable .tar.gz"),
            "{}",
            e.message
        );
    }
}
