//! The dataset manifest and its digest: pure functions, no I/O.
//!
//! A manifest lists every file of a dataset, sorted by relative path, one line each:
//! `<sha256 hex> <size> <relative path>` (the path with `\`, tab, newline and carriage return
//! escaped), after a version line. The dataset's digest is the SHA-256 of the manifest text,
//! shortened to 32 hex digits (128 bits): the same relative paths with the same contents give
//! the same digest on any machine, whatever the order the folder was walked in, and any change
//! of a name, a byte or the set of files gives another.

use sha2::{Digest, Sha256};

/// The first line of every manifest; part of what the digest covers.
pub const MANIFEST_HEADER: &str = "sagetrain-manifest v1";
/// Where sagetrain keeps uploaded datasets, under the root of the job's output bucket.
pub const DATA_ROOT: &str = "sagetrain/data";
/// Where sagetrain keeps uploaded code folders (`train --source`).
pub const CODE_ROOT: &str = "sagetrain/code";
/// Hex digits of the digest in S3 keys.
pub const DIGEST_HEX_LEN: usize = 32;

/// One file of a dataset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    /// Relative path with `/` separators, valid UTF-8.
    pub rel: String,
    pub size: u64,
    pub sha256: [u8; 32],
}

/// 32 bytes from 64 hex digits.
pub fn parse_hex32(text: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(text, &mut out).ok()?;
    Some(out)
}

/// The SHA-256 as S3 wants it in `x-amz-checksum-sha256`: base64.
pub fn sha256_base64(sha: &[u8; 32]) -> String {
    aws_smithy_types::base64::encode(sha)
}

/// Escape a path for one manifest line.
pub fn escape_path(p: &str) -> String {
    let mut s = String::with_capacity(p.len());
    for c in p.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '\t' => s.push_str("\\t"),
            '\n' => s.push_str("\\n"),
            '\r' => s.push_str("\\r"),
            c => s.push(c),
        }
    }
    s
}

pub fn unescape_path(p: &str) -> Option<String> {
    let mut s = String::with_capacity(p.len());
    let mut chars = p.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next()? {
                '\\' => s.push('\\'),
                't' => s.push('\t'),
                'n' => s.push('\n'),
                'r' => s.push('\r'),
                _ => return None,
            }
        } else {
            s.push(c);
        }
    }
    Some(s)
}

/// Sort entries the way the manifest lists them: by the bytes of the relative path.
#[cfg(test)]
pub fn sort_entries(entries: &mut [FileEntry]) {
    entries.sort_by(|a, b| a.rel.as_bytes().cmp(b.rel.as_bytes()));
}

/// The manifest text of entries (sorted here, whatever their order).
pub fn render(entries: &[FileEntry]) -> String {
    let mut sorted: Vec<&FileEntry> = entries.iter().collect();
    sorted.sort_by(|a, b| a.rel.as_bytes().cmp(b.rel.as_bytes()));
    let mut out = String::with_capacity(64 + entries.len() * 100);
    out.push_str(MANIFEST_HEADER);
    out.push('\n');
    for e in sorted {
        out.push_str(&hex::encode(e.sha256));
        out.push(' ');
        out.push_str(&e.size.to_string());
        out.push(' ');
        out.push_str(&escape_path(&e.rel));
        out.push('\n');
    }
    out
}

/// Parse a manifest written by [`render`].
pub fn parse(text: &str) -> Result<Vec<FileEntry>, String> {
    let mut lines = text.lines();
    if lines.next() != Some(MANIFEST_HEADER) {
        return Err(format!(
            "not a manifest (the first line is not `{MANIFEST_HEADER}`)"
        ));
    }
    let mut out = Vec::new();
    for (i, line) in lines.enumerate() {
        let bad = || format!("line {}: not `<sha256> <size> <path>`", i + 2);
        let (sha, rest) = line.split_once(' ').ok_or_else(bad)?;
        let (size, path) = rest.split_once(' ').ok_or_else(bad)?;
        out.push(FileEntry {
            sha256: parse_hex32(sha).ok_or_else(bad)?,
            size: size.parse().map_err(|_| bad())?,
            rel: unescape_path(path).ok_or_else(bad)?,
        });
    }
    Ok(out)
}

/// The digest of a manifest text.
pub fn digest_of(manifest: &str) -> String {
    let sum: [u8; 32] = Sha256::digest(manifest.as_bytes()).into();
    hex::encode(sum)[..DIGEST_HEX_LEN].to_string()
}

/// `sagetrain/data/<channel>`: the root of a channel's datasets. Every dataset lives under a
/// root (this, or [`CODE_ROOT`] for code): its files at `<root>/<digest>/`, its manifest at
/// `<root>/<digest>.manifest`.
pub fn channel_root(channel: &str) -> String {
    format!("{DATA_ROOT}/{channel}")
}

/// `<root>/<digest>/`: the dataset's S3 prefix, holding exactly the files.
pub fn data_prefix(root: &str, digest: &str) -> String {
    format!("{root}/{digest}/")
}

/// `<root>/<digest>.manifest`: written last; the prefix is complete only when it exists. It
/// sits beside the prefix, not in it, so the job does not download it.
pub fn manifest_key(root: &str, digest: &str) -> String {
    format!("{root}/{digest}.manifest")
}

/// The digest named by a manifest key under this root, if it is one.
pub fn digest_of_manifest_key<'a>(root: &str, key: &'a str) -> Option<&'a str> {
    let rest = key.strip_prefix(root)?.strip_prefix('/')?;
    let d = rest.strip_suffix(".manifest")?;
    (d.len() == DIGEST_HEX_LEN && d.bytes().all(|b| b.is_ascii_hexdigit())).then_some(d)
}

/// The SHA-256 of a byte slice.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(rel: &str, content: &[u8]) -> FileEntry {
        FileEntry {
            rel: rel.into(),
            size: content.len() as u64,
            sha256: sha256(content),
        }
    }

    #[test]
    fn digest_is_independent_of_order_and_stable() {
        let a = vec![
            e("img/1.png", b"one"),
            e("img/2.png", b"two"),
            e("masks/1.png", b"m"),
        ];
        let mut b = a.clone();
        b.reverse();
        assert_eq!(render(&a), render(&b));
        assert_eq!(digest_of(&render(&a)), digest_of(&render(&b)));
        // Fixed forever: a change here would re-upload every user's data.
        let text = render(&[e("a.txt", b"hello")]);
        assert_eq!(
            text,
            "sagetrain-manifest v1\n2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824 5 a.txt\n"
        );
        assert_eq!(digest_of(&text), "fe73b32c026e06fdb30313ab2ca97dd6");
        assert_eq!(digest_of(&text).len(), DIGEST_HEX_LEN);
    }

    #[test]
    fn digest_changes_with_content_path_and_file_set() {
        let base = vec![e("a.png", b"x"), e("b.png", b"y")];
        let d = digest_of(&render(&base));
        let content = vec![e("a.png", b"x"), e("b.png", b"z")];
        let renamed = vec![e("a.png", b"x"), e("c.png", b"y")];
        let moved = vec![e("a.png", b"x"), e("sub/b.png", b"y")];
        let added = vec![e("a.png", b"x"), e("b.png", b"y"), e("c.png", b"")];
        let fewer = vec![e("a.png", b"x")];
        let mut seen = std::collections::HashSet::from([d]);
        for v in [content, renamed, moved, added, fewer] {
            assert!(seen.insert(digest_of(&render(&v))), "{v:?}");
        }
    }

    #[test]
    fn odd_names_round_trip_and_cannot_forge_lines() {
        let entries = vec![
            e("with space.png", b"1"),
            e("tab\there", b"2"),
            e("new\nline 0 fake", b"3"),
            e("back\\slash", b"4"),
            e("ünïcode/ö.png", b"5"),
        ];
        let text = render(&entries);
        assert_eq!(text.lines().count(), 1 + entries.len());
        let mut parsed = parse(&text).unwrap();
        let mut want = entries.clone();
        sort_entries(&mut parsed);
        sort_entries(&mut want);
        assert_eq!(parsed, want);
        assert!(parse("not a manifest\n").is_err());
        assert!(parse(&format!("{MANIFEST_HEADER}\nzz 1 a\n")).is_err());
    }

    #[test]
    fn keys() {
        let d = "0123456789abcdef0123456789abcdef";
        let train = channel_root("train");
        assert_eq!(data_prefix(&train, d), format!("sagetrain/data/train/{d}/"));
        let m = manifest_key(&train, d);
        assert_eq!(m, format!("sagetrain/data/train/{d}.manifest"));
        // The manifest is not under the channel prefix: SageMaker does not download it.
        assert!(!m.starts_with(&data_prefix(&train, d)));
        assert_eq!(digest_of_manifest_key(&train, &m), Some(d));
        assert_eq!(digest_of_manifest_key(&channel_root("val"), &m), None);
        assert_eq!(
            digest_of_manifest_key(&train, "sagetrain/data/train/x.manifest"),
            None
        );
        // Code has its own root, beside the data.
        assert_eq!(data_prefix(CODE_ROOT, d), format!("sagetrain/code/{d}/"));
        assert_eq!(
            digest_of_manifest_key(CODE_ROOT, &manifest_key(CODE_ROOT, d)),
            Some(d)
        );
        assert_eq!(hex::encode([0, 15, 255]), "000fff");
        let h = sha256(b"");
        assert_eq!(parse_hex32(&hex::encode(h)), Some(h));
        assert_eq!(
            sha256_base64(&h),
            "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
        );
    }
}
