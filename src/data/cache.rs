//! A local cache of file hashes, so that an unchanged tree is not read again.
//!
//! One file per dataset folder under `$XDG_CACHE_HOME/sagetrain/hashes/` (or
//! `~/.cache/sagetrain/hashes/`), named by a hash of the folder's canonical path. Each line
//! keys a relative path with its size and modification time (nanoseconds) to the file's
//! SHA-256 and what the credential check found in it. A file whose size or mtime changed is
//! read again. Nothing secret is stored: paths, sizes, times and hashes. The folder is 0700 and
//! the files 0600, written atomically (a temporary file renamed over the old one).
//!
//! A file modified less than [`RACY_WINDOW`] before it was hashed is not cached: a later write
//! within the same timestamp tick would leave size and mtime unchanged (git's "racy" case).

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

const CACHE_HEADER: &str = "sagetrain-hash-cache v1";
pub const RACY_WINDOW: Duration = Duration::from_secs(1);

/// What the credential check found in a file (kept with its hash, so that a cached file is
/// still refused on the next run).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finding {
    None,
    AccessKeyId,
    SecretAccessKey,
    CredentialsFile,
}

impl Finding {
    fn code(self) -> u8 {
        match self {
            Finding::None => 0,
            Finding::AccessKeyId => 1,
            Finding::SecretAccessKey => 2,
            Finding::CredentialsFile => 3,
        }
    }
    fn from_code(c: &str) -> Option<Finding> {
        Some(match c {
            "0" => Finding::None,
            "1" => Finding::AccessKeyId,
            "2" => Finding::SecretAccessKey,
            "3" => Finding::CredentialsFile,
            _ => return None,
        })
    }
    pub fn describe(self) -> &'static str {
        match self {
            Finding::None => "nothing",
            Finding::AccessKeyId => "it holds an AWS access key id",
            Finding::SecretAccessKey => "it holds what looks like an AWS secret access key",
            Finding::CredentialsFile => {
                "it is an AWS shared credentials file (`credentials` with aws_secret_access_key)"
            }
        }
    }
}

/// A cached hash: valid while the file's size and mtime are these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cached {
    pub size: u64,
    pub mtime_ns: i128,
    pub sha256: [u8; 32],
    pub finding: Finding,
}

/// The hash cache of one dataset folder.
#[derive(Debug, Default)]
pub struct HashCache {
    /// Where it is read from and written to; None when there is no cache folder.
    path: Option<PathBuf>,
    entries: HashMap<String, Cached>,
}

/// Nanoseconds since the epoch (negative before it).
pub fn mtime_ns(t: SystemTime) -> i128 {
    match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => d.as_nanos() as i128,
        Err(e) => -(e.duration().as_nanos() as i128),
    }
}

/// The cache file of a dataset folder.
pub fn file_for(cache_dir: &Path, root: &Path) -> PathBuf {
    let id = hex::encode(super::manifest::sha256(root.to_string_lossy().as_bytes()));
    cache_dir.join("hashes").join(format!("{}.tsv", &id[..32]))
}

impl HashCache {
    /// Load the cache of `root` (a canonical path). A missing or unreadable cache is empty.
    pub fn load(cache_dir: Option<&Path>, root: &Path) -> HashCache {
        let Some(dir) = cache_dir else {
            return HashCache::default();
        };
        let path = file_for(dir, root);
        let mut entries = HashMap::new();
        if let Ok(text) = std::fs::read_to_string(&path) {
            let mut lines = text.lines();
            let header_ok = lines.next() == Some(CACHE_HEADER)
                && lines.next() == Some(&*format!("root\t{}", root.to_string_lossy()));
            if header_ok {
                for line in lines {
                    if let Some((rel, c)) = parse_line(line) {
                        entries.insert(rel, c);
                    }
                }
            }
        }
        HashCache {
            path: Some(path),
            entries,
        }
    }

    /// A hash still valid for a file of this size and mtime.
    pub fn get(&self, rel: &str, size: u64, mtime_ns: i128) -> Option<Cached> {
        self.entries
            .get(rel)
            .filter(|c| c.size == size && c.mtime_ns == mtime_ns)
            .copied()
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Replace the cache with the entries of this scan (files gone from the folder are
    /// dropped) and write it. `hashed_at` is when the scan started: entries modified within
    /// [`RACY_WINDOW`] of it are left out. Errors are ignored: the cache is only a speed-up.
    pub fn store(
        &mut self,
        root: &Path,
        entries: impl IntoIterator<Item = (String, Cached)>,
        hashed_at: SystemTime,
    ) {
        let limit = mtime_ns(hashed_at) - RACY_WINDOW.as_nanos() as i128;
        self.entries = entries
            .into_iter()
            .filter(|(_, c)| c.mtime_ns < limit)
            .collect();
        if let Some(p) = &self.path {
            if let Err(e) = write_file(p, root, &self.entries) {
                tracing::debug!("could not write the hash cache {}: {e}", p.display());
            }
        }
    }
}

fn parse_line(line: &str) -> Option<(String, Cached)> {
    let mut f = line.splitn(5, '\t');
    let size = f.next()?.parse().ok()?;
    let mtime_ns = f.next()?.parse().ok()?;
    let sha256 = super::manifest::parse_hex32(f.next()?)?;
    let finding = Finding::from_code(f.next()?)?;
    let rel = super::manifest::unescape_path(f.next()?)?;
    Some((
        rel,
        Cached {
            size,
            mtime_ns,
            sha256,
            finding,
        },
    ))
}

/// Create `dir` (and its parents) with mode 0700 for the folders sagetrain owns.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

fn write_file(path: &Path, root: &Path, entries: &HashMap<String, Cached>) -> std::io::Result<()> {
    let hashes_dir = path.parent().expect("cache file has a folder");
    let top = hashes_dir.parent().expect("hashes/ has a parent");
    create_private_dir(top)?;
    create_private_dir(hashes_dir)?;
    let mut rels: Vec<&String> = entries.keys().collect();
    rels.sort();
    let mut text = String::with_capacity(64 + entries.len() * 120);
    text.push_str(CACHE_HEADER);
    text.push('\n');
    text.push_str(&format!("root\t{}\n", root.to_string_lossy()));
    for rel in rels {
        let c = &entries[rel];
        text.push_str(&format!(
            "{}\t{}\t{}\t{}\t{}\n",
            c.size,
            c.mtime_ns,
            hex::encode(c.sha256),
            c.finding.code(),
            super::manifest::escape_path(rel)
        ));
    }
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(&tmp)?;
    f.write_all(text.as_bytes())?;
    f.sync_all().ok();
    drop(f);
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(size: u64, mtime_ns: i128, byte: u8) -> Cached {
        Cached {
            size,
            mtime_ns,
            sha256: [byte; 32],
            finding: Finding::None,
        }
    }

    #[test]
    fn round_trip_keyed_by_size_and_mtime_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let cache_dir = dir.path().join("cache/sagetrain");
        let root = Path::new("/data/vessels/train");
        let old = SystemTime::now() - Duration::from_secs(3600);
        let t = mtime_ns(old);
        let mut cache = HashCache::load(Some(&cache_dir), root);
        assert!(cache.is_empty());
        cache.store(
            root,
            vec![
                ("a.png".to_string(), c(10, t, 1)),
                ("odd\tname\n.png".to_string(), c(20, t + 5, 2)),
                (
                    "creds".to_string(),
                    Cached {
                        finding: Finding::CredentialsFile,
                        ..c(1, t, 3)
                    },
                ),
            ],
            SystemTime::now(),
        );
        let back = HashCache::load(Some(&cache_dir), root);
        assert_eq!(back.len(), 3);
        assert_eq!(back.get("a.png", 10, t), Some(c(10, t, 1)));
        assert_eq!(
            back.get("odd\tname\n.png", 20, t + 5),
            Some(c(20, t + 5, 2))
        );
        assert_eq!(
            back.get("creds", 1, t).unwrap().finding,
            Finding::CredentialsFile
        );
        // Another size or mtime: a miss, so the file is read again.
        assert_eq!(back.get("a.png", 11, t), None);
        assert_eq!(back.get("a.png", 10, t + 1), None);
        assert_eq!(back.get("missing", 10, t), None);
        // Another folder has its own cache.
        assert!(HashCache::load(Some(&cache_dir), Path::new("/data/other")).is_empty());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let f = file_for(&cache_dir, root);
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&f), 0o600);
            assert_eq!(mode(f.parent().unwrap()), 0o700);
            assert_eq!(mode(&cache_dir), 0o700);
            let text = std::fs::read_to_string(&f).unwrap();
            assert!(text.starts_with("sagetrain-hash-cache v1\nroot\t/data/vessels/train\n"));
        }
    }

    #[test]
    fn recently_modified_files_are_not_cached_and_deleted_ones_are_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let root = Path::new("/r");
        let now = SystemTime::now();
        let mut cache = HashCache::load(Some(dir.path()), root);
        cache.store(
            root,
            vec![
                ("old".to_string(), c(1, mtime_ns(now) - 5_000_000_000, 1)),
                ("racy".to_string(), c(1, mtime_ns(now) - 100_000_000, 2)),
                ("future".to_string(), c(1, mtime_ns(now) + 1_000_000_000, 3)),
            ],
            now,
        );
        let back = HashCache::load(Some(dir.path()), root);
        assert_eq!(back.len(), 1);
        assert!(back.get("old", 1, mtime_ns(now) - 5_000_000_000).is_some());
        let mut cache = back;
        cache.store(root, Vec::new(), now);
        assert!(HashCache::load(Some(dir.path()), root).is_empty());
    }

    #[test]
    fn a_corrupt_or_foreign_cache_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let root = Path::new("/r");
        let f = file_for(dir.path(), root);
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        std::fs::write(&f, "garbage\n1\t2\n").unwrap();
        assert!(HashCache::load(Some(dir.path()), root).is_empty());
        std::fs::write(
            &f,
            format!(
                "{CACHE_HEADER}\nroot\t/r\nnot\ta\tline\n1\t2\t{}\t0\tok\n",
                "ab".repeat(32)
            ),
        )
        .unwrap();
        let c = HashCache::load(Some(dir.path()), root);
        assert_eq!(c.len(), 1);
        assert!(c.get("ok", 1, 2).is_some());
    }
}
