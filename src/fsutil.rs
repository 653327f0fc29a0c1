//! Writing files in the user's home or project safely.
//!
//! Any file sagetrain keeps for itself (state, caches) goes through [`write_private`]: its
//! parent folders are created `0700`, the file `0600`, and the write is atomic (a temporary file
//! in the same folder, synced, then renamed over the target), so a crash never leaves a
//! half-written file and no other user can read it at any moment. Folders that already exist
//! (your home, your project) are left as they are.
//!
//! Files meant to be shared, such as `sagetrain.toml` (which goes into git and never holds a
//! secret), use [`write_atomic`] with the usual permissions instead.
//!
//! Never write a secret access key or session token to disk: these helpers protect what the
//! tool keeps, they are not a credential store.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// The user's cache folder for sagetrain: `$XDG_CACHE_HOME/sagetrain` (an absolute path), else
/// `$HOME/.cache/sagetrain` on Unix and macOS, else the platform's cache folder (on Windows
/// `%LOCALAPPDATA%\sagetrain`). `env` is the command's environment lookup.
pub fn cache_dir(env: &dyn Fn(&str) -> Option<String>) -> Option<PathBuf> {
    if let Some(x) = env("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
        let p = PathBuf::from(x);
        if p.is_absolute() {
            return Some(p.join("sagetrain"));
        }
    }
    user_cache_home(env).map(|d| d.join("sagetrain"))
}

#[cfg(unix)]
fn user_cache_home(env: &dyn Fn(&str) -> Option<String>) -> Option<PathBuf> {
    env("HOME")
        .filter(|v| !v.is_empty())
        .map(|h| PathBuf::from(h).join(".cache"))
}

#[cfg(not(unix))]
fn user_cache_home(_env: &dyn Fn(&str) -> Option<String>) -> Option<PathBuf> {
    dirs::cache_dir()
}

/// Mode of the folders sagetrain creates for its own files.
pub const PRIVATE_DIR_MODE: u32 = 0o700;
/// Mode of the files sagetrain keeps for itself.
pub const PRIVATE_FILE_MODE: u32 = 0o600;

/// Create `dir` and any missing parents with mode `0700`. Existing folders are not changed.
pub fn create_private_dir_all(dir: &Path) -> io::Result<()> {
    if dir.as_os_str().is_empty() || dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent() {
        create_private_dir_all(parent)?;
    }
    match fs::create_dir(dir) {
        Ok(()) => set_mode(dir, PRIVATE_DIR_MODE),
        // Created by someone else meanwhile: fine, but do not touch its mode.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => Ok(()),
        Err(e) => Err(e),
    }
}

/// Write `bytes` to `path` atomically as a private file: missing parent folders are created
/// `0700`, the file is `0600` (also when it replaces an existing file with wider permissions).
pub fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    if let Some(parent) = path.parent() {
        create_private_dir_all(parent)?;
    }
    write_atomic(path, bytes, Some(PRIVATE_FILE_MODE), true)
}

/// Write `bytes` to `path` atomically: a temporary file next to it, synced, then renamed.
///
/// `mode` sets the file's permissions exactly (not subject to the umask); `None` keeps the
/// usual `0666 & !umask`. With `overwrite == false` an existing `path` is an
/// `AlreadyExists` error and is left untouched (checked atomically, not before the write).
/// The parent folder must exist.
pub fn write_atomic(
    path: &Path,
    bytes: &[u8],
    mode: Option<u32>,
    overwrite: bool,
) -> io::Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".into());
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let prefix = format!(".{name}.tmp-");
    let mut builder = tempfile::Builder::new();
    builder.prefix(&prefix);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        // Never wider than the final mode, even for the instant before set_mode (the umask
        // narrows the 0666 of an ordinary file as it would a plain create).
        builder.permissions(fs::Permissions::from_mode(mode.unwrap_or(0o666)));
    }
    let mut tmp = builder.tempfile_in(parent)?;
    if let Some(m) = mode {
        set_mode(tmp.path(), m)?;
    }
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    // A failed persist drops the temporary file, which removes it.
    let persisted = match overwrite {
        true => tmp.persist(path),
        // No-clobber: an existing `path` is `AlreadyExists`, checked by the rename itself.
        false => tmp.persist_noclobber(path),
    };
    persisted.map_err(|e| e.error)?;
    // Make the rename durable; not every platform can open a folder, so ignore failures.
    if let Ok(d) = File::open(parent) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Is `path` readable or writable by anyone but its owner? (Always false off Unix.)
#[cfg(test)]
pub fn is_shared(path: &Path) -> io::Result<bool> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        Ok(fs::metadata(path)?.permissions().mode() & 0o077 != 0)
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        Ok(false)
    }
}

fn set_mode(path: &Path, mode: u32) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(path, fs::Permissions::from_mode(mode))
    }
    #[cfg(not(unix))]
    {
        let _ = (path, mode);
        Ok(())
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(p: &Path) -> u32 {
        fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn private_files_are_0600_under_new_0700_folders_and_existing_folders_are_untouched() {
        let dir = tempfile::tempdir().unwrap();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let target = dir.path().join("state/jobs/last.json");
        write_private(&target, b"{\"job\":\"unet-1\"}").unwrap();
        assert_eq!(fs::read(&target).unwrap(), b"{\"job\":\"unet-1\"}");
        assert_eq!(mode(&target), 0o600);
        assert_eq!(mode(&dir.path().join("state")), 0o700);
        assert_eq!(mode(&dir.path().join("state/jobs")), 0o700);
        assert_eq!(mode(dir.path()), 0o755, "an existing folder keeps its mode");
        assert!(!is_shared(&target).unwrap());
    }

    #[test]
    fn replacing_a_world_readable_file_makes_it_private_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("cache.json");
        fs::write(&target, "old").unwrap();
        fs::set_permissions(&target, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(is_shared(&target).unwrap());
        write_private(&target, b"new").unwrap();
        assert_eq!(fs::read_to_string(&target).unwrap(), "new");
        assert_eq!(mode(&target), 0o600);
        let names: Vec<String> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, vec!["cache.json".to_string()]);
    }

    #[test]
    fn the_mode_does_not_depend_on_the_umask() {
        // A permissive umask must not widen the file.
        let old = unsafe { libc_umask(0) };
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("a/b.json");
        let r = write_private(&target, b"x");
        unsafe { libc_umask(old) };
        r.unwrap();
        assert_eq!(mode(&target), 0o600);
        assert_eq!(mode(&dir.path().join("a")), 0o700);
    }

    extern "C" {
        #[link_name = "umask"]
        fn libc_umask(mask: u32) -> u32;
    }

    #[test]
    fn no_clobber_refuses_an_existing_file_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("sagetrain.toml");
        write_atomic(&target, b"first", None, false).unwrap();
        let e = write_atomic(&target, b"second", None, false).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(fs::read_to_string(&target).unwrap(), "first");
        write_atomic(&target, b"third", None, true).unwrap();
        assert_eq!(fs::read_to_string(&target).unwrap(), "third");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_failed_write_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        // The parent of the target is a file: the write must fail cleanly.
        fs::write(dir.path().join("f"), "x").unwrap();
        assert!(write_private(&dir.path().join("f/g.json"), b"x").is_err());
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[cfg(unix)]
    #[test]
    fn cache_dir_prefers_xdg_then_home() {
        let env = |pairs: Vec<(&'static str, &'static str)>| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert_eq!(
            cache_dir(&env(vec![("XDG_CACHE_HOME", "/x"), ("HOME", "/h")])),
            Some(PathBuf::from("/x/sagetrain"))
        );
        assert_eq!(
            cache_dir(&env(vec![("XDG_CACHE_HOME", "rel"), ("HOME", "/h")])),
            Some(PathBuf::from("/h/.cache/sagetrain"))
        );
        assert_eq!(cache_dir(&env(vec![])), None);
    }
}
