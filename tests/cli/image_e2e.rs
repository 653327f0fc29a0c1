//! `sagetrain image push` end to end against moto: archives written here (docker save and
//! OCI), checked with an independent read of the repository; the engine path with real podman.

use crate::harness::{block_on, seeded, Account, Sandbox};
use crate::proxy::Proxy;
use std::path::Path;

#[path = "../../src/image/testdata.rs"]
pub(crate) mod testdata;

const MIB: usize = 1024 * 1024;

/// Three layers, one larger than a 20 MiB part (incompressible, so it stays larger).
fn layers() -> Vec<Vec<u8>> {
    vec![
        testdata::layer("bin/train", 21 * MIB, 1),
        testdata::layer("etc/config", 4000, 2),
        testdata::layer("opt/ml/code", 300_000, 3),
    ]
}

/// Read the image back: the manifest's digest, and every blob it names AVAILABLE at its size.
fn check_in_ecr(acct: &Account, repo: &str, tag: &str, digest: &str) -> serde_json::Value {
    block_on(async {
        let ecr = acct.ecr();
        let out = ecr
            .batch_get_image()
            .repository_name(repo)
            .image_ids(
                aws_sdk_ecr::types::ImageIdentifier::builder()
                    .image_tag(tag)
                    .build(),
            )
            .send()
            .await
            .expect("ecr:BatchGetImage");
        let manifest = out.images()[0].image_manifest().unwrap().to_string();
        assert_eq!(
            testdata::sha(manifest.as_bytes()),
            digest,
            "the printed digest is the manifest's"
        );
        let m: serde_json::Value = serde_json::from_str(&manifest).unwrap();
        let mut blobs = vec![m["config"].clone()];
        blobs.extend(m["layers"].as_array().unwrap().iter().cloned());
        let digests: Vec<String> = blobs
            .iter()
            .map(|b| b["digest"].as_str().unwrap().to_string())
            .collect();
        let avail = ecr
            .batch_check_layer_availability()
            .repository_name(repo)
            .set_layer_digests(Some(digests.clone()))
            .send()
            .await
            .expect("ecr:BatchCheckLayerAvailability");
        assert!(avail.failures().is_empty(), "{:?}", avail.failures());
        for b in &blobs {
            let l = avail
                .layers()
                .iter()
                .find(|l| l.layer_digest() == b["digest"].as_str())
                .unwrap();
            assert_eq!(l.layer_availability().unwrap().as_str(), "AVAILABLE");
            assert_eq!(
                l.layer_size(),
                b["size"].as_i64(),
                "size of {}",
                b["digest"]
            );
        }
        m
    })
}

/// `image push --archive ARCH --repo REPO -o json`, which must succeed.
fn push_json(sb: &Sandbox, arch: &str, repo: &str) -> serde_json::Value {
    sb.run(&[
        "image",
        "push",
        "--archive",
        arch,
        "--repo",
        repo,
        "-o",
        "json",
    ])
    .ok()
    .json()
}

fn push_and_check(
    write: impl Fn(&Path, &[Vec<u8>]),
    repo: &str,
    manifest_type: &str,
    layer_type: &str,
) {
    let acct = block_on(Account::new("us-east-1"));
    let (sb, proxy) = crate::data_e2e::sandbox_via_proxy(&acct);
    let archive = sb.dir.path().join("image.tar");
    let layers = layers();
    write(&archive, &layers);
    let arch = archive.display().to_string();

    let out = push_json(&sb, &arch, repo);
    let digest = out["digest"].as_str().unwrap().to_string();
    assert_eq!(out["repository"], repo);
    assert_eq!(out["tag"], "latest");
    assert_eq!(
        out["image_uri"],
        format!("{}/{repo}@{digest}", acct.registry())
    );
    assert_eq!(out["layers_pushed"], 3);
    assert_eq!(out["layers_skipped"], 0);
    let m = check_in_ecr(&acct, repo, "latest", &digest);
    assert_eq!(m["mediaType"], manifest_type);
    assert_eq!(m["layers"].as_array().unwrap().len(), 3);
    assert!(m["layers"]
        .as_array()
        .unwrap()
        .iter()
        .all(|l| l["mediaType"] == layer_type));
    // The big layer went in parts of at most 20 MiB, in order (moto rejects others).
    assert!(
        proxy.count_op("UploadLayerPart") >= 5,
        "{:?}",
        proxy.counts()
    );
    assert_eq!(
        proxy.count_op("CompleteLayerUpload"),
        4,
        "3 layers and the config"
    );
    assert!(proxy
        .requests()
        .iter()
        .filter(|e| e.op == "UploadLayerPart")
        .all(|e| e.content_length < (20 * MIB as u64) * 4 / 3 + 4096));

    // Again: nothing is sent but the manifest, and the digest is the same.
    proxy.clear();
    let again = push_json(&sb, &arch, repo);
    assert_eq!(again["digest"], digest.as_str());
    assert_eq!(again["layers_pushed"], 0);
    assert_eq!(again["layers_skipped"], 3);
    assert_eq!(again["bytes_sent"], 0);
    assert_eq!(
        proxy.count_op("InitiateLayerUpload"),
        0,
        "{:?}",
        proxy.counts()
    );
    assert_eq!(proxy.count_op("UploadLayerPart"), 0);

    // The text result is the digest-pinned URI alone; -q prints nothing else (empty AWS
    // files, so that the SDK has no missing file to warn about).
    sb.write("home/.aws/config", "");
    sb.write("home/.aws/credentials", "");
    let r = sb
        .run(&["image", "push", "--archive", &arch, "--repo", repo, "-q"])
        .ok();
    assert_eq!(
        r.stdout.trim(),
        format!("{}/{repo}@{digest}", acct.registry())
    );
    assert_eq!(r.stderr, "");
}

#[test]
fn a_docker_save_archive_is_pushed_compressed_and_a_second_push_sends_no_layer() {
    push_and_check(
        |p, l| testdata::docker_save(p, "amd64", l),
        "unet-docker",
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.image.rootfs.diff.tar.gzip",
    );
}

#[test]
fn an_oci_archive_is_pushed_with_an_oci_manifest_and_a_second_push_sends_no_layer() {
    push_and_check(
        |p, l| testdata::oci(p, "amd64", l, false),
        "team/unet-oci",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.layer.v1.tar+gzip",
    );
}

#[test]
fn an_arm64_archive_is_refused_before_anything_is_sent() {
    let acct = block_on(Account::new("us-east-1"));
    let (sb, proxy) = crate::data_e2e::sandbox_via_proxy(&acct);
    let archive = sb.dir.path().join("arm.tar");
    testdata::oci(&archive, "arm64", &[testdata::layer("a", 1000, 1)], false);
    sb.run(&[
        "image",
        "push",
        "--archive",
        &archive.display().to_string(),
        "--repo",
        "unet-arm",
    ])
    .code(2)
    .stderr_has("built for linux/arm64")
    .stderr_has("--platform linux/amd64");
    assert_eq!(proxy.total(), 0, "{:?}", proxy.counts());
    let exists = block_on(
        acct.ecr()
            .describe_repositories()
            .repository_names("unet-arm")
            .send(),
    );
    assert!(exists.is_err(), "the repository was not created");
}

#[test]
fn the_repository_comes_from_the_image_setting_and_no_create_refuses_a_missing_one() {
    let acct = block_on(Account::new("us-east-1"));
    let mut sb = Sandbox::new();
    acct.env(&mut sb);
    let archive = sb.dir.path().join("image.tar");
    testdata::docker_save(&archive, "amd64", &[testdata::layer("a", 1000, 1)]);
    let arch = archive.display().to_string();
    sb.run(&[
        "image",
        "push",
        "--archive",
        &arch,
        "--repo",
        "unet-missing",
        "--no-create",
    ])
    .code(4)
    .stderr_has("does not exist")
    .stderr_has("drop --no-create");
    sb.write("project/sagetrain.toml", "image = \"unet-settings:v1\"\n");
    let r = sb
        .run(&[
            "image",
            "push",
            "--archive",
            &arch,
            "--tag",
            "v2",
            "-o",
            "json",
        ])
        .ok();
    assert_eq!(r.json()["repository"], "unet-settings");
    let scan = block_on(
        acct.ecr()
            .describe_repositories()
            .repository_names("unet-settings")
            .send(),
    )
    .unwrap();
    let repo = &scan.repositories()[0];
    assert!(repo.image_scanning_configuration().unwrap().scan_on_push());
    check_in_ecr(
        &acct,
        "unet-settings",
        "v2",
        r.json()["digest"].as_str().unwrap(),
    );
}

/// Submit (dry run) with the pushed image: its platform is known, so no warning.
fn train_dry_run(sb: &Sandbox, image: &str, bucket: &str) -> crate::harness::Run {
    let train = format!("s3://{bucket}/data/train/");
    sb.run(&[
        "train",
        "--role",
        "SageMakerRole",
        "--image",
        image,
        "--train",
        &train,
        "--dry-run",
    ])
}

#[test]
fn train_checks_the_platform_and_warns_when_it_cannot() {
    let s = seeded("us-east-1");
    let mut sb = Sandbox::new();
    s.acct.env(&mut sb);
    // A single-platform image sagetrain did not push: its platform is in its config, which
    // moto cannot hand out (no GetDownloadUrlForLayer), so a warning, not a pass.
    let manifest = r#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{"mediaType":"application/vnd.docker.container.image.v1+json","size":7023,"digest":"sha256:2222222222222222222222222222222222222222222222222222222222222222"},"layers":[]}"#;
    block_on(
        s.acct
            .ecr()
            .put_image()
            .repository_name("unet-vessels")
            .image_manifest(manifest)
            .image_tag("single")
            .image_digest(testdata::sha(manifest.as_bytes()))
            .send(),
    )
    .expect("ecr:PutImage");
    train_dry_run(&sb, "unet-vessels:single", &s.bucket)
        .ok()
        .stderr_has("platform could not be checked");
    // A multi-platform image offering linux/amd64 (the harness's): no warning.
    let r = train_dry_run(&sb, "unet-vessels:latest", &s.bucket).ok();
    assert!(!r.stderr.contains("platform"), "{}", r.stderr);
    // An image it pushed: the verdict is known and cached; no warning.
    let archive = sb.dir.path().join("image.tar");
    testdata::docker_save(&archive, "amd64", &[testdata::layer("a", 1000, 1)]);
    sb.run(&[
        "image",
        "push",
        "--archive",
        &archive.display().to_string(),
        "--repo",
        "unet-pushed",
    ])
    .ok();
    // The next submit, from the same home (cache): the verdict is known; the one image lookup
    // (BatchGetImage, which gives the digest and the manifest) is all ECR is asked.
    let home = sb.home().display().to_string();
    let (mut sb, proxy) = crate::data_e2e::sandbox_via_proxy(&s.acct);
    sb.set("HOME", &home);
    let r = train_dry_run(&sb, "unet-pushed:latest", &s.bucket).ok();
    assert!(!r.stderr.contains("platform"), "{}", r.stderr);
    assert_eq!(proxy.count_op("BatchGetImage"), 1, "{:?}", proxy.counts());
    assert_eq!(proxy.count_op("GetDownloadUrlForLayer"), 0);
}

#[test]
fn podman_builds_a_context_pushes_it_and_train_submits_it() {
    let s = seeded("us-east-1");
    let mut sb = Sandbox::new();
    s.acct.env(&mut sb);
    sb.write(
        "project/ctx/Dockerfile",
        "FROM scratch\nCOPY train /opt/ml/code/train\nENTRYPOINT [\"/opt/ml/code/train\"]\n",
    );
    sb.write("project/ctx/train", "#!/bin/sh\necho training\n");
    let r = sb
        .run(&[
            "image",
            "push",
            "ctx",
            "--engine",
            "podman",
            "--repo",
            "unet-built",
            "-o",
            "json",
        ])
        .ok()
        .stderr_has("running: podman build --platform linux/amd64");
    let out = r.json();
    let digest = out["digest"].as_str().unwrap();
    let m = check_in_ecr(&s.acct, "unet-built", "latest", digest);
    assert_eq!(m["mediaType"], "application/vnd.oci.image.manifest.v1+json");
    let req = train_dry_run(&sb, "unet-built:latest", &s.bucket)
        .ok()
        .json();
    assert_eq!(
        req["AlgorithmSpecification"]["TrainingImage"],
        format!("{}/unet-built@{digest}", s.acct.registry())
    );
}

/// A manifest list offering only arm64: `train` refuses it (exit 4) naming the platform and
/// the rebuild command, `doctor` fails its image check, and the verdict is cached: the second
/// submit reads no manifest.
#[test]
fn an_image_without_amd64_is_refused_by_train_and_doctor_and_the_verdict_is_cached() {
    let s = seeded("us-east-1");
    let index = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","size":500,"digest":"sha256:1111111111111111111111111111111111111111111111111111111111111111","platform":{"architecture":"arm64","os":"linux","variant":"v8"}}]}"#;
    let digest = testdata::sha(index.as_bytes());
    block_on(
        s.acct
            .ecr()
            .put_image()
            .repository_name("unet-vessels")
            .image_manifest(index)
            .image_manifest_media_type("application/vnd.oci.image.index.v1+json")
            .image_tag("mac")
            .image_digest(&digest)
            .send(),
    )
    .expect("ecr:PutImage");
    let (mut sb, proxy) = crate::data_e2e::sandbox_via_proxy(&s.acct);
    sb.set(
        "XDG_CACHE_HOME",
        &sb.dir.path().join("cache").display().to_string(),
    );
    for run in 0..2 {
        proxy.clear();
        train_dry_run(&sb, "unet-vessels:mac", &s.bucket)
            .code(4)
            .stderr_has("built for linux/arm64/v8")
            .stderr_has("sagetrain image push");
        // One BatchGetImage gives the digest and the index the verdict is read from; no
        // layer is downloaded, the first time or the second.
        assert_eq!(
            (
                proxy.count_op("BatchGetImage"),
                proxy.count_op("GetDownloadUrlForLayer")
            ),
            (1, 0),
            "run {run}: {:?}",
            proxy.counts()
        );
    }
    assert!(sb
        .dir
        .path()
        .join("cache/sagetrain/platform")
        .join(digest.replace(':', "-"))
        .is_file());
    let r = sb.run(&[
        "doctor",
        "-o",
        "json",
        "--role",
        "SageMakerRole",
        "--image",
        "unet-vessels:mac",
    ]);
    let report = r.json();
    let image = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "image")
        .unwrap();
    assert_eq!(image["status"], "fail", "{image}");
    assert!(image.to_string().contains("linux/arm64"), "{image}");
}

/// Blobs whose CompleteLayerUpload reached the emulator and was answered.
fn completed(proxy: &Proxy) -> usize {
    proxy
        .requests()
        .iter()
        .filter(|e| e.op == "CompleteLayerUpload" && e.status == 200)
        .count()
}

/// Ctrl-C in the middle of a push stops it (exit 130, the tag not written); the rerun skips
/// the blobs that were complete.
#[test]
fn an_interrupted_push_resumes_by_skipping_the_complete_layers() {
    let acct = block_on(Account::new("us-east-1"));
    let (sb, proxy) = crate::data_e2e::sandbox_via_proxy(&acct);
    let archive = sb.dir.path().join("image.tar");
    testdata::docker_save(&archive, "amd64", &layers());
    let arch = archive.display().to_string();
    proxy.set_delay(std::time::Duration::from_millis(400));
    let child = crate::data_e2e::spawn(
        &sb,
        &["image", "push", "--archive", &arch, "--repo", "unet-int"],
    );
    crate::data_e2e::wait_until("two blobs complete, the big layer still going", 120, || {
        completed(&proxy) >= 2
    });
    std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("run the same command again"), "{stderr}");
    assert_eq!(proxy.count_op("PutImage"), 0, "the tag was not written");
    proxy.set_delay(std::time::Duration::ZERO);
    // Let the requests still held by the proxy reach moto before counting.
    std::thread::sleep(std::time::Duration::from_secs(2));
    let done_before = completed(&proxy);
    assert!(done_before < 4, "stopped midway: {:?}", proxy.counts());
    let sent_before = proxy.count_op("CompleteLayerUpload");
    let r = sb
        .run(&[
            "image",
            "push",
            "--archive",
            &arch,
            "--repo",
            "unet-int",
            "-o",
            "json",
        ])
        .ok();
    assert_eq!(
        proxy.count_op("CompleteLayerUpload") - sent_before,
        4 - done_before,
        "{:?}",
        proxy.counts()
    );
    check_in_ecr(
        &acct,
        "unet-int",
        "latest",
        r.json()["digest"].as_str().unwrap(),
    );
}
