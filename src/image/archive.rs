//! Reading image archives: `docker save` (a `manifest.json` naming a config and layer tars) and
//! OCI image layouts in a tar (`oci-layout`, `index.json`, `blobs/sha256/...`), as written by
//! `podman save --format oci-archive`, `docker buildx build --output type=oci` and Docker 25+'s
//! `docker save` (which holds both). Nothing is unpacked: the tar is indexed once and members are
//! read in place by offset.

use super::media::*;
use super::platform::Platform;
use crate::error::{Error, Result};
use serde_json::Value;
use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// Which manifest format the pushed image gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Docker image manifest v2, schema 2.
    Docker,
    /// OCI image manifest.
    Oci,
}

impl Format {
    pub fn manifest_type(self) -> &'static str {
        match self {
            Format::Docker => DOCKER_MANIFEST,
            Format::Oci => OCI_MANIFEST,
        }
    }
    pub fn gzip_layer_type(self) -> &'static str {
        match self {
            Format::Docker => DOCKER_LAYER_GZIP,
            Format::Oci => OCI_LAYER_GZIP,
        }
    }
}

/// A file inside the archive: where its bytes are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Member {
    pub offset: u64,
    pub size: u64,
}

/// How a layer is stored in the archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

/// One layer of the image, as found in the archive.
#[derive(Debug, Clone)]
#[allow(dead_code)] // `name`, `declared_type`: read by Debug output and the tests
pub struct Layer {
    /// The member's name, for messages.
    pub name: String,
    pub member: Member,
    pub compression: Compression,
    /// The digest the archive declares for these bytes (OCI descriptors), if any.
    pub declared_digest: Option<String>,
    /// The media type the archive declares, if any.
    pub declared_type: Option<String>,
    /// The image config's `diff_ids` entry: the digest of the uncompressed layer.
    pub diff_id: Option<String>,
}

/// An image read from an archive.
#[derive(Debug)]
pub struct Image {
    pub path: PathBuf,
    pub format: Format,
    pub config: Vec<u8>,
    pub config_type: String,
    pub platform: Platform,
    pub layers: Vec<Layer>,
}

/// The members of a tar, by normalised name.
struct Index {
    members: HashMap<String, Member>,
    links: HashMap<String, String>,
}

fn normalise(name: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for p in name.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    parts.join("/")
}

impl Index {
    fn read(path: &Path) -> Result<Index> {
        let file = File::open(path).map_err(|e| {
            Error::usage(format!("cannot open the archive {}: {e}", path.display()))
        })?;
        let mut ar = tar::Archive::new(file);
        let mut members = HashMap::new();
        let mut links = HashMap::new();
        let bad = |e: std::io::Error| {
            Error::usage(format!(
                "{} is not a readable tar archive: {e}",
                path.display()
            ))
            .with_hint("give the file `docker save -o FILE IMAGE` or `podman save --format oci-archive -o FILE IMAGE` wrote")
        };
        for entry in ar.entries().map_err(bad)? {
            let entry = entry.map_err(bad)?;
            let name = normalise(&entry.path().map_err(bad)?.to_string_lossy());
            let kind = entry.header().entry_type();
            if kind.is_file() {
                members.insert(
                    name,
                    Member {
                        offset: entry.raw_file_position(),
                        size: entry.size(),
                    },
                );
            } else if kind.is_symlink() || kind.is_hard_link() {
                if let Ok(Some(target)) = entry.link_name() {
                    let target = target.to_string_lossy().into_owned();
                    let resolved = if kind.is_symlink() && !target.starts_with('/') {
                        let dir = name.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
                        normalise(&format!("{dir}/{target}"))
                    } else {
                        normalise(&target)
                    };
                    links.insert(name, resolved);
                }
            }
        }
        Ok(Index { members, links })
    }

    fn get(&self, name: &str) -> Option<Member> {
        let mut name = normalise(name);
        for _ in 0..8 {
            if let Some(m) = self.members.get(&name) {
                return Some(*m);
            }
            name = self.links.get(&name)?.clone();
        }
        None
    }
}

/// Read a whole (small) member.
pub fn read_member(path: &Path, m: Member) -> std::io::Result<Vec<u8>> {
    let mut f = File::open(path)?;
    f.seek(SeekFrom::Start(m.offset))?;
    let mut buf = Vec::with_capacity(m.size as usize);
    f.take(m.size).read_to_end(&mut buf)?;
    Ok(buf)
}

/// A reader over one member.
pub fn open_member(path: &Path, m: Member) -> std::io::Result<std::io::Take<File>> {
    let mut f = File::open(path)?;
    f.seek(SeekFrom::Start(m.offset))?;
    Ok(f.take(m.size))
}

fn sniff(path: &Path, m: Member) -> std::io::Result<Compression> {
    let mut head = [0u8; 4];
    let mut r = open_member(path, m)?;
    let mut n = 0;
    while n < 4 {
        let k = r.read(&mut head[n..])?;
        if k == 0 {
            break;
        }
        n += k;
    }
    Ok(match &head[..n] {
        [0x1f, 0x8b, ..] => Compression::Gzip,
        [0x28, 0xb5, 0x2f, 0xfd] => Compression::Zstd,
        _ => Compression::None,
    })
}

fn invalid(path: &Path, why: impl std::fmt::Display) -> Error {
    Error::usage(format!("{} is not an image archive sagetrain can read: {why}", path.display()))
        .with_hint("give the file `docker save -o FILE IMAGE` or `podman save --format oci-archive -o FILE IMAGE` wrote (one image, not gzipped)")
}

/// Is the file gzip-compressed (e.g. `docker save IMAGE | gzip`)?
pub fn is_gzip(path: &Path) -> Result<bool> {
    let mut f = File::open(path)
        .map_err(|e| Error::usage(format!("cannot open the archive {}: {e}", path.display())))?;
    let mut head = [0u8; 2];
    Ok(f.read_exact(&mut head).is_ok() && head == [0x1f, 0x8b])
}

/// Read an image archive: its format, config, platform and layers.
pub fn read(path: &Path) -> Result<Image> {
    let index = Index::read(path)?;
    let json = |name: &str| -> Result<Value> {
        let m = index
            .get(name)
            .ok_or_else(|| invalid(path, format!("`{name}` is missing")))?;
        let bytes = read_member(path, m)?;
        serde_json::from_slice(&bytes)
            .map_err(|e| invalid(path, format!("`{name}` is not valid JSON: {e}")))
    };
    if index.get("oci-layout").is_some() && index.get("index.json").is_some() {
        read_oci(path, &index, &json("index.json")?)
    } else if index.get("manifest.json").is_some() {
        read_docker(path, &index, &json("manifest.json")?)
    } else {
        Err(invalid(
            path,
            "it has neither `manifest.json` (docker save) nor `oci-layout` and `index.json` (OCI)",
        ))
    }
}

fn blob_name(digest: &str) -> String {
    format!("blobs/{}", digest.replacen(':', "/", 1))
}

fn read_docker(path: &Path, index: &Index, manifest: &Value) -> Result<Image> {
    let images = manifest
        .as_array()
        .ok_or_else(|| invalid(path, "`manifest.json` is not a list"))?;
    let image = match images.as_slice() {
        [one] => one,
        [] => return Err(invalid(path, "`manifest.json` lists no image")),
        many => {
            return Err(invalid(
                path,
                format!("it holds {} images; save one image per archive", many.len()),
            ))
        }
    };
    let config_name = image["Config"]
        .as_str()
        .ok_or_else(|| invalid(path, "`manifest.json` names no Config"))?;
    let config_member = index
        .get(config_name)
        .ok_or_else(|| invalid(path, format!("the config `{config_name}` is missing")))?;
    let config = read_member(path, config_member)?;
    let layer_names: Vec<String> = image["Layers"]
        .as_array()
        .ok_or_else(|| invalid(path, "`manifest.json` names no Layers"))?
        .iter()
        .filter_map(|l| l.as_str().map(str::to_string))
        .collect();
    let sources = &image["LayerSources"];
    let mut declared = Vec::new();
    for name in &layer_names {
        // Docker 25+ names layers by their digest, with their descriptors in LayerSources.
        let digest = name
            .strip_prefix("blobs/sha256/")
            .map(|h| format!("sha256:{h}"));
        let declared_type = digest
            .as_ref()
            .and_then(|d| sources[d]["mediaType"].as_str().map(str::to_string));
        declared.push((name.clone(), None, declared_type));
    }
    finish(path, index, Format::Docker, config, DOCKER_CONFIG, declared)
}

fn read_oci(path: &Path, index: &Index, top: &Value) -> Result<Image> {
    // Walk the index (and nested indexes) to the image manifests.
    let mut found: Vec<(Value, Option<String>)> = Vec::new();
    let mut queue: Vec<Value> = top["manifests"].as_array().cloned().unwrap_or_default();
    let mut seen = 0;
    while let Some(desc) = queue.pop() {
        seen += 1;
        if seen > 64 {
            return Err(invalid(path, "its index nests too deep"));
        }
        let digest = desc["digest"]
            .as_str()
            .ok_or_else(|| invalid(path, "an index entry has no digest"))?;
        let m = index
            .get(&blob_name(digest))
            .ok_or_else(|| invalid(path, format!("the blob {digest} is missing")))?;
        let doc: Value = serde_json::from_slice(&read_member(path, m)?)
            .map_err(|e| invalid(path, format!("the manifest {digest} is not JSON: {e}")))?;
        let media = desc["mediaType"]
            .as_str()
            .or(doc["mediaType"].as_str())
            .unwrap_or_default()
            .to_string();
        if media == OCI_INDEX || media == DOCKER_LIST || doc["manifests"].is_array() {
            queue.extend(doc["manifests"].as_array().cloned().unwrap_or_default());
            continue;
        }
        // Attestation manifests (buildx provenance/SBOM) are not images.
        if desc["annotations"]["vnd.docker.reference.type"].as_str() == Some("attestation-manifest")
        {
            continue;
        }
        found.push((doc, Some(media)));
    }
    let (manifest, media) = match found.len() {
        0 => return Err(invalid(path, "its index names no image manifest")),
        1 => found.pop().expect("one"),
        _ => {
            // Several platforms: take linux/amd64, or name what there is.
            let mut platforms = Vec::new();
            let mut pick = None;
            for (i, (doc, _)) in found.iter().enumerate() {
                let p = config_platform(path, index, doc)?;
                if p.fits() {
                    pick = Some(i);
                }
                platforms.push(p.to_string());
            }
            match pick {
                Some(i) => found.swap_remove(i),
                None => return Err(super::platform::refused(&platforms.join(", "))),
            }
        }
    };
    let format = if media.as_deref() == Some(DOCKER_MANIFEST) {
        Format::Docker
    } else {
        Format::Oci
    };
    let config_digest = manifest["config"]["digest"]
        .as_str()
        .ok_or_else(|| invalid(path, "the manifest has no config"))?;
    let config_type = manifest["config"]["mediaType"]
        .as_str()
        .unwrap_or(match format {
            Format::Docker => DOCKER_CONFIG,
            Format::Oci => OCI_CONFIG,
        })
        .to_string();
    let cm = index
        .get(&blob_name(config_digest))
        .ok_or_else(|| invalid(path, format!("the config blob {config_digest} is missing")))?;
    let config = read_member(path, cm)?;
    let mut declared = Vec::new();
    for l in manifest["layers"].as_array().cloned().unwrap_or_default() {
        let digest = l["digest"]
            .as_str()
            .ok_or_else(|| invalid(path, "a layer has no digest"))?;
        declared.push((
            blob_name(digest),
            Some(digest.to_string()),
            l["mediaType"].as_str().map(str::to_string),
        ));
    }
    finish(path, index, format, config, &config_type, declared)
}

fn config_platform(path: &Path, index: &Index, manifest: &Value) -> Result<Platform> {
    let digest = manifest["config"]["digest"].as_str().unwrap_or_default();
    let m = index
        .get(&blob_name(digest))
        .ok_or_else(|| invalid(path, format!("the config blob {digest} is missing")))?;
    Platform::from_config(&read_member(path, m)?)
        .ok_or_else(|| invalid(path, format!("the config {digest} is not an image config")))
}

type Declared = Vec<(String, Option<String>, Option<String>)>;

fn finish(
    path: &Path,
    index: &Index,
    format: Format,
    config: Vec<u8>,
    config_type: &str,
    declared: Declared,
) -> Result<Image> {
    let platform = Platform::from_config(&config)
        .ok_or_else(|| invalid(path, "the image config is not valid JSON"))?;
    let cfg: Value = serde_json::from_slice(&config).unwrap_or_default();
    let diff_ids: Vec<Option<String>> = cfg["rootfs"]["diff_ids"]
        .as_array()
        .map(|a| a.iter().map(|d| d.as_str().map(str::to_string)).collect())
        .unwrap_or_default();
    if diff_ids.len() != declared.len() {
        return Err(invalid(
            path,
            format!(
                "the config lists {} layers (rootfs.diff_ids) but the manifest {}",
                diff_ids.len(),
                declared.len()
            ),
        ));
    }
    let mut layers = Vec::new();
    for ((name, declared_digest, declared_type), diff_id) in declared.into_iter().zip(diff_ids) {
        let member = index
            .get(&name)
            .ok_or_else(|| invalid(path, format!("the layer `{name}` is missing")))?;
        let compression = sniff(path, member)?;
        if compression == Compression::Zstd && format == Format::Docker {
            return Err(invalid(
                path,
                format!(
                    "the layer `{name}` is zstd-compressed, which a Docker v2 manifest cannot name"
                ),
            ));
        }
        layers.push(Layer {
            name,
            member,
            compression,
            declared_digest,
            declared_type,
            diff_id,
        });
    }
    Ok(Image {
        path: path.to_path_buf(),
        format,
        config,
        config_type: config_type.to_string(),
        platform,
        layers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::testdata::*;

    #[test]
    fn reads_a_docker_save_archive() {
        let layers = vec![layer("a", 1000, 1), layer("b", 3000, 2)];
        let (_dir, p) = saved(&layers);
        let img = read(&p).unwrap();
        assert_eq!(img.format, Format::Docker);
        assert!(img.platform.fits());
        assert_eq!(img.layers.len(), 2);
        assert_eq!(img.layers[1].compression, Compression::None);
        assert_eq!(
            img.layers[1].diff_id.as_deref(),
            Some(sha(&layers[1]).as_str())
        );
        assert_eq!(read_member(&p, img.layers[0].member).unwrap(), layers[0]);
    }

    #[test]
    fn reads_an_oci_archive_with_compressed_layers() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("img.tar");
        oci(&p, "arm64", &[layer("a", 10, 1)], false);
        let img = read(&p).unwrap();
        assert_eq!(img.format, Format::Oci);
        assert_eq!(img.platform.to_string(), "linux/arm64");
        assert_eq!(img.layers[0].compression, Compression::Gzip);
        assert!(img.layers[0].declared_digest.is_some());
    }

    #[test]
    fn rejects_what_is_not_an_image_archive() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.tar");
        std::fs::write(&p, b"hello").unwrap();
        let e = read(&p).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        let mut b = tar::Builder::new(std::fs::File::create(&p).unwrap());
        let mut h = tar::Header::new_gnu();
        h.set_size(2);
        h.set_cksum();
        b.append_data(&mut h, "readme", &b"hi"[..]).unwrap();
        b.finish().unwrap();
        drop(b);
        let e = read(&p).unwrap_err();
        assert!(
            e.message.contains("neither `manifest.json`"),
            "{}",
            e.message
        );
    }

    #[test]
    fn paths_are_normalised_and_links_followed() {
        assert_eq!(normalise("./a/../b//c"), "b/c");
    }
}
