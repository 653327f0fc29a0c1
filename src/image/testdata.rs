//! Image archives written by the tests (no container engine needed): `docker save` and OCI
//! layouts. Shared by the unit tests and the end-to-end tests (tests/cli/image_e2e.rs includes
//! this file), so it names its media types itself.
#![allow(dead_code)]

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

use sha2::{Digest, Sha256};
use std::path::Path;

pub fn sha(b: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(b)))
}

/// A layer tar holding one file of `n` bytes of pseudo-random (incompressible) data.
pub fn layer(name: &str, n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407)
        | 1;
    let data: Vec<u8> = (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(n as u64);
    h.set_mode(0o644);
    h.set_cksum();
    b.append_data(&mut h, name, data.as_slice()).unwrap();
    b.into_inner().unwrap()
}

pub fn config(arch: &str, layers: &[Vec<u8>]) -> Vec<u8> {
    let ids: Vec<String> = layers.iter().map(|l| sha(l)).collect();
    serde_json::to_vec(&serde_json::json!({
        "architecture": arch, "os": "linux",
        "config": {"Entrypoint": ["/train"]},
        "rootfs": {"type": "layers", "diff_ids": ids},
    }))
    .unwrap()
}

fn add(b: &mut tar::Builder<std::fs::File>, name: &str, data: &[u8]) {
    let mut h = tar::Header::new_gnu();
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    b.append_data(&mut h, name, data).unwrap();
}

/// `docker save` layout: manifest.json, <id>.json, <id>/layer.tar.
pub fn docker_save(out: &Path, arch: &str, layers: &[Vec<u8>]) {
    let cfg = config(arch, layers);
    let cfg_name = format!("{}.json", &sha(&cfg)[7..]);
    let names: Vec<String> = (0..layers.len())
        .map(|i| format!("l{i}/layer.tar"))
        .collect();
    let manifest =
        serde_json::json!([{"Config": cfg_name, "RepoTags": ["test:latest"], "Layers": names}]);
    let mut b = tar::Builder::new(std::fs::File::create(out).unwrap());
    add(
        &mut b,
        "manifest.json",
        &serde_json::to_vec(&manifest).unwrap(),
    );
    add(&mut b, &cfg_name, &cfg);
    for (n, l) in names.iter().zip(layers) {
        add(&mut b, n, l);
    }
    b.finish().unwrap();
}

/// OCI layout: gzip-compressed layers (as podman writes them) unless `raw`.
pub fn oci(out: &Path, arch: &str, layers: &[Vec<u8>], raw: bool) {
    use std::io::Write;
    let cfg = config(arch, layers);
    let mut b = tar::Builder::new(std::fs::File::create(out).unwrap());
    add(&mut b, "oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#);
    let mut descs = Vec::new();
    for l in layers {
        let (bytes, mt) = if raw {
            (l.clone(), "application/vnd.oci.image.layer.v1.tar")
        } else {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            gz.write_all(l).unwrap();
            (gz.finish().unwrap(), OCI_LAYER_GZIP)
        };
        let d = sha(&bytes);
        add(&mut b, &format!("blobs/sha256/{}", &d[7..]), &bytes);
        descs.push(serde_json::json!({"mediaType": mt, "digest": d, "size": bytes.len()}));
    }
    let cd = sha(&cfg);
    add(&mut b, &format!("blobs/sha256/{}", &cd[7..]), &cfg);
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": cd, "size": cfg.len()},
        "layers": descs,
    }))
    .unwrap();
    let md = sha(&manifest);
    add(&mut b, &format!("blobs/sha256/{}", &md[7..]), &manifest);
    let index = serde_json::json!({"schemaVersion": 2, "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": md, "size": manifest.len()}]});
    add(&mut b, "index.json", &serde_json::to_vec(&index).unwrap());
    b.finish().unwrap();
}

/// A `docker save` archive (`img.tar`) of a linux/amd64 image with `layers`, in a new temporary
/// folder (kept while the first value lives).
pub fn saved(layers: &[Vec<u8>]) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("img.tar");
    docker_save(&p, "amd64", layers);
    (dir, p)
}
