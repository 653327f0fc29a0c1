//! Local training data end to end against moto, through a counting proxy: what is uploaded,
//! what is never uploaded twice, what is refused, and resuming an interrupted upload. Every
//! result is checked with an independent read (ListObjectsV2, GetObject, DescribeTrainingJob)
//! and the proxy's exact count of requests.

use crate::harness::*;
use crate::proxy::{Fault, Pick, Proxy, Rule};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

/// Deterministic pseudo-random bytes (xorshift), different for each seed.
fn bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

pub(crate) fn write(root: &Path, rel: &str, content: &[u8]) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, content).unwrap();
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The digest as the README documents it, computed here independently of sagetrain:
/// SHA-256 of "sagetrain-manifest v1\n" + "<sha256 hex> <size> <path>\n" per file sorted by
/// path, first 32 hex digits.
pub(crate) fn expected_digest(files: &BTreeMap<String, Vec<u8>>) -> (String, String) {
    let mut text = String::from("sagetrain-manifest v1\n");
    for (rel, content) in files {
        text.push_str(&format!(
            "{} {} {rel}\n",
            hex(&Sha256::digest(content)),
            content.len()
        ));
    }
    (
        hex(&Sha256::digest(text.as_bytes()))[..32].to_string(),
        text,
    )
}

/// Every object under `prefix` in `bucket`, with its size: an independent ListObjectsV2.
pub(crate) fn list(acct: &Account, bucket: &str, prefix: &str) -> BTreeMap<String, i64> {
    block_on(async {
        let mut out = BTreeMap::new();
        let mut pages = acct
            .s3()
            .list_objects_v2()
            .bucket(bucket)
            .prefix(prefix)
            .into_paginator()
            .send();
        while let Some(p) = pages.next().await {
            match p {
                Ok(p) => {
                    for o in p.contents() {
                        out.insert(o.key().unwrap().to_string(), o.size().unwrap_or(0));
                    }
                }
                Err(_) => return BTreeMap::new(), // no bucket: nothing
            }
        }
        out
    })
}

fn get(acct: &Account, bucket: &str, key: &str) -> Vec<u8> {
    block_on(async {
        let o = acct
            .s3()
            .get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .expect("s3:GetObject");
        o.body.collect().await.unwrap().into_bytes().to_vec()
    })
}

/// A sandbox whose AWS traffic goes through a counting proxy in front of moto.
pub(crate) fn sandbox_via_proxy(acct: &Account) -> (Sandbox, Proxy) {
    let proxy = Proxy::start(&moto_url());
    let mut sb = Sandbox::new();
    acct.env(&mut sb);
    sb.set("AWS_ENDPOINT_URL", &proxy.url);
    (sb, proxy)
}

pub(crate) fn default_bucket(acct: &Account) -> String {
    format!("sagemaker-{}-{}", acct.region, acct.id)
}

/// A dataset: images and masks in folders, plus what must not be uploaded.
pub(crate) fn dataset(root: &Path, n: usize, seed: u64) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    for i in 0..n {
        let dir = if i % 2 == 0 { "images" } else { "masks" };
        let rel = format!("{dir}/vessel {i:03}.png");
        let content = bytes(seed + i as u64, 1000 + (i * 337) % 5000);
        write(root, &rel, &content);
        files.insert(rel, content);
    }
    files
}

#[test]
fn push_uploads_exactly_the_files_then_nothing_then_only_the_changed_file() {
    let acct = block_on(Account::new("us-east-1"));
    let (sb, proxy) = sandbox_via_proxy(&acct);
    let data = sb.project().join("data/train");
    let mut files = dataset(&data, 30, 1);
    // Left out: hidden files and folders, what .sagetrainignore excludes, a symlink.
    write(&data, ".DS_Store", b"finder");
    write(&data, ".git/config", b"[core]");
    write(&data, "images/.cache/x.png", b"cache");
    write(&data, ".sagetrainignore", b"*.tmp\nscratch/\n");
    write(&data, "images/partial.tmp", b"tmp");
    write(&data, "scratch/notes.txt", b"notes");
    let outside = sb.dir.path().join("outside-secret.txt");
    std::fs::write(&outside, b"outside the tree").unwrap();
    std::os::unix::fs::symlink(&outside, data.join("images/link.png")).unwrap();

    let (digest, manifest_text) = expected_digest(&files);
    let bucket = default_bucket(&acct);
    let prefix = format!("sagetrain/data/train/{digest}/");
    let uri = format!("s3://{bucket}/{prefix}");

    // 1. First push: every file once, then the manifest.
    let r = sb.run(&["data", "push", "data/train"]).ok();
    assert_eq!(r.stdout, format!("{uri}\n"), "stdout is the URI only");
    assert!(
        r.stderr
            .contains("1 symlink not followed (images/link.png)"),
        "{}",
        r.stderr
    );
    let mut want: BTreeMap<String, i64> = files
        .iter()
        .map(|(rel, c)| (format!("{prefix}{rel}"), c.len() as i64))
        .collect();
    want.insert(
        format!("sagetrain/data/train/{digest}.manifest"),
        manifest_text.len() as i64,
    );
    assert_eq!(list(&acct, &bucket, "sagetrain/"), want);
    assert_eq!(
        get(&acct, &bucket, &format!("{prefix}masks/vessel 007.png")),
        files["masks/vessel 007.png"]
    );
    assert_eq!(
        get(
            &acct,
            &bucket,
            &format!("sagetrain/data/train/{digest}.manifest")
        ),
        manifest_text.as_bytes()
    );
    let puts = proxy.data_puts();
    assert_eq!(puts.len(), 31, "30 files and the manifest: {puts:#?}");
    assert!(
        puts.last().unwrap().path().ends_with(".manifest"),
        "the manifest is written last"
    );
    assert!(proxy.copies().is_empty());

    // 2. Unchanged: no PUT at all.
    proxy.clear();
    let r = sb.run(&["data", "push", "data/train", "-o", "json"]).ok();
    assert_eq!(proxy.count_method("PUT"), 0, "{:#?}", proxy.requests());
    assert_eq!(proxy.count_method("POST") - count_sts(&proxy), 0);
    let j = r.json();
    assert_eq!(j["s3_uri"], uri.as_str());
    assert_eq!(j["files"], 30);
    assert_eq!(
        j["bytes"],
        files.values().map(|c| c.len() as u64).sum::<u64>()
    );
    assert_eq!(j["uploaded_files"], 0);
    assert_eq!(j["uploaded_bytes"], 0);

    // 3. One file changed: that file and the manifest are uploaded; the rest is copied in S3.
    proxy.clear();
    let changed = bytes(999, 4321);
    write(&data, "images/vessel 004.png", &changed);
    files.insert("images/vessel 004.png".into(), changed.clone());
    let (digest2, _) = expected_digest(&files);
    assert_ne!(digest2, digest);
    let prefix2 = format!("sagetrain/data/train/{digest2}/");
    let r = sb.run(&["data", "push", "data/train", "-o", "json"]).ok();
    let j = r.json();
    assert_eq!(j["s3_uri"], format!("s3://{bucket}/{prefix2}").as_str());
    assert_eq!(j["uploaded_files"], 1);
    assert_eq!(j["uploaded_bytes"], 4321);
    let puts: Vec<String> = proxy.data_puts().iter().map(|r| r.path()).collect();
    assert_eq!(
        puts,
        vec![
            format!("/{bucket}/{prefix2}images/vessel 004.png"),
            format!("/{bucket}/sagetrain/data/train/{digest2}.manifest"),
        ]
    );
    assert_eq!(proxy.copies().len(), 29);
    let new_objects = list(&acct, &bucket, &prefix2);
    assert_eq!(new_objects.len(), 30);
    assert_eq!(
        get(&acct, &bucket, &format!("{prefix2}images/vessel 004.png")),
        changed
    );
    assert_eq!(
        get(&acct, &bucket, &format!("{prefix2}masks/vessel 007.png")),
        files["masks/vessel 007.png"]
    );
    // The first version is untouched.
    assert_eq!(list(&acct, &bucket, &prefix).len(), 30);

    // 4. A prefix without its manifest is not complete, and an object that is not a file of
    //    the dataset is removed from it (the job would download it): only the manifest is sent.
    block_on(async {
        let s3 = acct.s3();
        s3.delete_object()
            .bucket(&bucket)
            .key(format!("sagetrain/data/train/{digest2}.manifest"))
            .send()
            .await
            .unwrap();
        s3.put_object()
            .bucket(&bucket)
            .key(format!("{prefix2}junk.txt"))
            .body(aws_sdk_s3::primitives::ByteStream::from_static(b"junk"))
            .send()
            .await
            .unwrap();
    });
    proxy.clear();
    let r = sb.run(&["data", "push", "data/train", "-o", "json"]).ok();
    assert_eq!(r.json()["uploaded_files"], 0);
    let puts: Vec<String> = proxy.data_puts().iter().map(|r| r.path()).collect();
    assert_eq!(
        puts,
        vec![format!("/{bucket}/sagetrain/data/train/{digest2}.manifest")]
    );
    assert!(proxy.copies().is_empty());
    let now = list(&acct, &bucket, &prefix2);
    assert_eq!(now.len(), 30);
    assert!(!now.contains_key(&format!("{prefix2}junk.txt")));
    // Nothing outside the tree, hidden or ignored was ever uploaded.
    for key in list(&acct, &bucket, "").keys() {
        for bad in [
            "link.png",
            ".DS_Store",
            ".git",
            ".cache",
            ".tmp",
            "scratch",
            ".sagetrainignore",
        ] {
            assert!(!key.contains(bad), "{key} should not be uploaded");
        }
    }
}

/// STS and other POSTs that are not S3 (the credentials check, GetCallerIdentity).
fn count_sts(proxy: &Proxy) -> usize {
    proxy
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.target == "/")
        .count()
}

#[test]
fn a_planted_credentials_file_is_refused_naming_it_and_nothing_is_sent() {
    let acct = block_on(Account::new("us-east-1"));
    let (sb, proxy) = sandbox_via_proxy(&acct);
    let data = sb.project().join("data");
    dataset(&data, 4, 7);
    write(
        &data,
        "backup/credentials",
        format!(
            "[default]\naws_access_key_id = {FAKE_KEY_ID}\naws_secret_access_key = {FAKE_SECRET}\n"
        )
        .as_bytes(),
    );
    let r = sb.run(&["data", "push", "data"]).code(2);
    let r = r.stderr_has("backup/credentials");
    let r = r.stderr_has("look");
    let r = r.stderr_has("--allow-credentials-files");
    assert!(
        !r.stderr.contains(FAKE_SECRET),
        "the secret is never printed"
    );
    assert!(r.stdout.is_empty());
    assert!(
        proxy.requests().is_empty(),
        "no request at all: {:#?}",
        proxy.requests()
    );
    assert!(list(&acct, &default_bucket(&acct), "").is_empty());

    // A key id pasted into a text file is refused too, also through `train`.
    std::fs::remove_dir_all(data.join("backup")).unwrap();
    write(
        &data,
        "labels.csv",
        format!("image,owner\n1.png,{FAKE_KEY_ID}\n").as_bytes(),
    );
    let r = sb
        .run(&[
            "train",
            "--epochs",
            "5",
            "--image",
            "unet-vessels",
            "--role",
            "SageMakerRole",
            "--train",
            "./data",
        ])
        .code(2);
    let r = r.stderr_has("labels.csv");
    r.stderr_has("access key id");
    assert!(proxy.requests().is_empty());

    // Allowed on purpose: uploaded, with a warning.
    let r = sb
        .run(&[
            "data",
            "push",
            "data",
            "--allow-credentials-files",
            "-o",
            "json",
        ])
        .ok();
    assert_eq!(r.json()["uploaded_files"], 5);
    r.stderr_has("labels.csv although");
}

#[test]
fn missing_folders_and_bad_channel_values_are_violations_naming_the_key_and_path() {
    let mut sb = Sandbox::new();
    sb.set("AWS_REGION", "us-east-1");
    sb.write(
        "project/sagetrain.toml",
        "image = \"unet-vessels\"\n[channels]\ntrain = \"data/missing\"\n",
    );
    let r = sb
        .run(&[
            "train",
            "--epochs",
            "5",
            "--validation",
            "./nope",
            "--channel",
            "x=ftp://h/p",
        ])
        .code(2);
    let project = sb.project();
    let r = r.stderr_has(&format!(
        "`channels.train` in {}: the local folder {} does not exist",
        project.join("sagetrain.toml").display(),
        project.join("data/missing").display()
    ));
    let r = r.stderr_has(&format!(
        "--validation validation: the local folder {} does not exist",
        project.join("nope").display()
    ));
    r.stderr_has(
        "--channel x: `ftp://h/p` is neither an S3 URI (s3://BUCKET/PREFIX) nor a local folder",
    );
    let r = sb.run(&["data", "push", "nope"]).code(2);
    r.stderr_has("DIR: nope is not an existing folder");
}

#[test]
fn config_file_folders_are_relative_to_the_file_and_dry_run_offline_shows_the_uri() {
    let sb = Sandbox::new();
    let project = sb.project();
    let files = dataset(&project.join("data/train"), 6, 3);
    sb.write(
        "project/sagetrain.toml",
        "region = \"eu-west-1\"\nrole = \"arn:aws:iam::123456789012:role/SageMakerRole\"\n\
         image = \"123456789012.dkr.ecr.eu-west-1.amazonaws.com/unet:v1\"\npin_digest = false\n\
         output_path = \"s3://my-models/unet/\"\n[channels]\ntrain = \"data/train\"\n",
    );
    std::fs::create_dir_all(project.join("sub/deeper")).unwrap();
    let r = sb
        .run_in(
            &project.join("sub/deeper"),
            &["train", "--epochs", "5", "--dry-run", "--offline"],
        )
        .ok();
    let (digest, _) = expected_digest(&files);
    let uri = format!("s3://my-models/sagetrain/data/train/{digest}/");
    assert_eq!(
        r.json()["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3Uri"],
        uri.as_str()
    );
    assert!(
        r.stderr
            .contains("dry run: channel `train`: data/train (6 files, "),
        "{}",
        r.stderr
    );
    r.stderr_has(&format!("would be uploaded to {uri}"));
    // `sagetrain config` shows the value and where it came from.
    let r = sb.run(&["config"]).ok();
    assert!(r.stdout.contains("channels.train"), "{}", r.stdout);
}

#[test]
fn dry_run_uploads_nothing_and_says_how_much_is_missing() {
    let acct = account_with_role_and_image();
    let (sb, proxy) = sandbox_via_proxy(&acct);
    let files = dataset(&sb.project().join("data/train"), 5, 11);
    let total: usize = files.values().map(Vec::len).sum();
    let args = [
        "train",
        "--epochs",
        "50",
        "--image",
        "unet-vessels",
        "--role",
        "SageMakerRole",
        "--train",
        "./data/train",
        "--dry-run",
    ];
    let r = sb.run(&args).ok();
    assert_eq!(proxy.count_method("PUT"), 0, "{:#?}", proxy.requests());
    let (digest, _) = expected_digest(&files);
    let uri = format!(
        "s3://{}/sagetrain/data/train/{digest}/",
        default_bucket(&acct)
    );
    assert_eq!(
        r.json()["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3Uri"],
        uri.as_str()
    );
    r.stderr_has("would be uploaded");
    assert!(list(&acct, &default_bucket(&acct), "").is_empty());

    // With the bucket there (pushed by someone else), the dry run counts what is missing.
    sb.run(&["data", "push", "data/train"]).ok();
    write(
        &sb.project().join("data/train"),
        "images/new.png",
        &bytes(5, 2000),
    );
    proxy.clear();
    let r = sb.run(&args).ok();
    assert_eq!(proxy.count_method("PUT"), 0);
    assert!(
        r.stderr
            .contains("1 file (2.00 kB) missing in S3, 5 found in earlier versions"),
        "{}",
        r.stderr
    );
    let _ = total;
}

/// Seconds to wait for a condition.
pub(crate) fn wait_until(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < Duration::from_secs(secs),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

pub(crate) fn spawn(sb: &Sandbox, args: &[&str]) -> std::process::Child {
    std::process::Command::new(env!("CARGO_BIN_EXE_sagetrain"))
        .args(args)
        .current_dir(sb.project())
        .env_clear()
        .envs(sb.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

/// Send `signal` (`-INT`, `-TERM`, `-KILL`) to a spawned sagetrain; its exit code and stderr.
pub(crate) fn signal_and_wait(child: std::process::Child, signal: &str) -> (Option<i32>, String) {
    std::process::Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// An account with the execution role and the image `train` needs.
fn account_with_role_and_image() -> Account {
    block_on(async {
        let a = Account::new("us-east-1").await;
        a.role("SageMakerRole", "/service-role/", true).await;
        a.image("unet-vessels", "latest").await;
        a
    })
}

/// Keys with an unfinished multipart upload (ListMultipartUploads).
fn pending_uploads(acct: &Account, bucket: &str) -> Vec<String> {
    block_on(async {
        match acct
            .s3()
            .list_multipart_uploads()
            .bucket(bucket)
            .send()
            .await
        {
            Ok(o) => o
                .uploads()
                .iter()
                .map(|u| u.key().unwrap().to_string())
                .collect(),
            Err(_) => Vec::new(),
        }
    })
}

/// Ctrl-C (SIGINT) in the middle of an upload, then a kill (SIGKILL, as a crash or a lost
/// network), then a run that completes: no file that arrived is sent again, and the prefix is
/// complete only at the end. (Resuming the parts of an unfinished multipart upload needs
/// s3:ListParts, whose answer moto 5.2.5 shapes in a way the SDK rejects; sagetrain then
/// starts that file afresh, and that path is what runs here. Part-level resume is covered by
/// the aws-smithy-mocks tests in src/data/upload.rs.)
#[test]
fn an_interrupted_upload_resumes_without_resending_what_arrived() {
    let acct = block_on(Account::new("us-east-1"));
    let (sb, proxy) = sandbox_via_proxy(&acct);
    let data = sb.project().join("data/train");
    let mut files = dataset(&data, 160, 21);
    // A large file, sent in 3 parts (first in the upload order).
    let big = bytes(77, 40 * 1024 * 1024 + 12345);
    write(&data, "aaa-volume.bin", &big);
    files.insert("aaa-volume.bin".into(), big.clone());
    let (digest, _) = expected_digest(&files);
    let bucket = default_bucket(&acct);
    let prefix = format!("sagetrain/data/train/{digest}/");
    let manifest = format!("sagetrain/data/train/{digest}.manifest");
    let big_key = format!("{prefix}aaa-volume.bin");

    // Every request is slowed down, and the last part of the large file and two small files
    // are held, so that the process is stopped with files and parts in flight.
    proxy.stall("partNumber=3", Duration::from_secs(30));
    proxy.stall("vessel%20158", Duration::from_secs(30));
    proxy.stall("vessel%20159", Duration::from_secs(30));
    let mut arrived_before: Vec<String> = Vec::new();
    for (run, signal) in [(1, "-INT"), (2, "-KILL")] {
        proxy.clear();
        proxy.set_delay(Duration::from_millis(120));
        let child = spawn(&sb, &["data", "push", "data/train"]);
        wait_until("uploads in flight and part 3 held", 60, || {
            let puts = proxy.data_puts();
            puts.iter().filter(|r| !r.is_part()).count() >= 12
                && puts.iter().any(|r| r.target.contains("partNumber=3"))
        });
        let (code, stderr) = signal_and_wait(child, signal);
        if signal == "-INT" {
            assert_eq!(code, Some(130), "run {run}: {stderr}");
            assert!(stderr.contains("interrupted"), "{stderr}");
            assert!(stderr.contains("run the same command again"), "{stderr}");
        } else {
            assert_eq!(code, None, "killed by a signal");
        }
        proxy.set_delay(Duration::ZERO);
        std::thread::sleep(Duration::from_millis(300)); // let moto finish what it received
        let arrived = list(&acct, &bucket, &prefix);
        assert!(
            arrived.len() > arrived_before.len() && arrived.len() <= files.len() - 3,
            "run {run} was stopped midway ({} objects, {} before)",
            arrived.len(),
            arrived_before.len()
        );
        assert!(!arrived.contains_key(&big_key));
        assert!(
            list(&acct, &bucket, &manifest).is_empty(),
            "not complete: no manifest"
        );
        // What had arrived before this run was not sent again by it.
        for r in proxy.data_puts() {
            let key = r.key().unwrap();
            assert!(!arrived_before.contains(&key), "run {run} re-sent {key}");
        }
        arrived_before = arrived.keys().cloned().collect();
        assert_eq!(pending_uploads(&acct, &bucket), vec![big_key.clone()]);
    }

    // Run 3 completes, sending only what had not arrived.
    proxy.clear_stalls();
    proxy.clear();
    let r = sb.run(&["data", "push", "data/train", "-o", "json"]).ok();
    let puts = proxy.data_puts();
    let mut sent = Vec::new();
    for r in &puts {
        let key = r.key().unwrap();
        assert!(!arrived_before.contains(&key), "{key} was sent again");
        if !r.is_part() {
            sent.push(key);
        }
    }
    let missing_small = files.len() - 1 - arrived_before.len();
    assert_eq!(
        sent.len(),
        missing_small + 1,
        "the missing small files and the manifest"
    );
    assert_eq!(
        sent.last().unwrap(),
        &manifest,
        "the manifest is written last"
    );
    assert_eq!(puts.iter().filter(|r| r.is_part()).count(), 3);
    assert_eq!(r.json()["uploaded_files"], (missing_small + 1) as u64);
    // Complete and right, and no unfinished upload is left behind.
    let final_objects = list(&acct, &bucket, &prefix);
    assert_eq!(final_objects.len(), files.len());
    for (rel, c) in &files {
        assert_eq!(
            final_objects[&format!("{prefix}{rel}")],
            c.len() as i64,
            "{rel}"
        );
    }
    assert_eq!(get(&acct, &bucket, &big_key), big);
    assert_eq!(list(&acct, &bucket, &manifest).len(), 1);
    assert!(pending_uploads(&acct, &bucket).is_empty());
}

/// SIGTERM (CI cancelling a job, `timeout`) in the middle of an upload stops it like Ctrl-C:
/// exit 143, no manifest, and the next run completes it.
#[test]
fn sigterm_stops_an_upload_with_exit_143_and_the_next_run_completes_it() {
    let acct = block_on(Account::new("us-east-1"));
    let (sb, proxy) = sandbox_via_proxy(&acct);
    let files = dataset(&sb.project().join("data/train"), 24, 31);
    let (digest, _) = expected_digest(&files);
    let manifest = format!("sagetrain/data/train/{digest}.manifest");
    let bucket = default_bucket(&acct);
    proxy.stall("vessel%20023", Duration::from_secs(30));
    let child = spawn(&sb, &["data", "push", "data/train"]);
    wait_until("the held file in flight", 60, || {
        proxy
            .data_puts()
            .iter()
            .any(|r| r.target.contains("vessel%20023"))
    });
    let (code, stderr) = signal_and_wait(child, "-TERM");
    assert_eq!(code, Some(143), "{stderr}");
    assert!(
        stderr.contains("the upload was interrupted (SIGTERM)"),
        "{stderr}"
    );
    assert!(stderr.contains("run the same command again"), "{stderr}");
    assert!(list(&acct, &bucket, &manifest).is_empty(), "no manifest");

    proxy.clear_stalls();
    sb.run(&["data", "push", "data/train"]).ok();
    assert_eq!(list(&acct, &bucket, &manifest).len(), 1, "complete now");
}

/// Ctrl-C while a large folder is being hashed (before any request) ends `data push` at once,
/// with exit 130: the hashing runs off the async runtime, which stays free to act on it.
#[test]
fn ctrl_c_while_hashing_a_large_folder_ends_at_once() {
    let acct = block_on(Account::new("us-east-1"));
    let (sb, proxy) = sandbox_via_proxy(&acct);
    let dir = sb.project().join("data/big");
    std::fs::create_dir_all(&dir).unwrap();
    // A sparse file: no disk space, but several seconds of reading and hashing.
    let f = std::fs::File::create(dir.join("volume.raw")).unwrap();
    f.set_len(6 * 1024 * 1024 * 1024).unwrap();
    let child = spawn(&sb, &["data", "push", "data/big"]);
    std::thread::sleep(Duration::from_millis(700));
    let sent = Instant::now();
    let (code, stderr) = signal_and_wait(child, "-INT");
    assert_eq!(code, Some(130), "{stderr}");
    assert!(
        sent.elapsed() < Duration::from_secs(2),
        "ended {:?} after the signal",
        sent.elapsed()
    );
    assert!(stderr.contains("interrupted (Ctrl-C)"), "{stderr}");
    assert!(stderr.contains("run the same command again"), "{stderr}");
    assert_eq!(proxy.count_method("PUT"), 0, "nothing sent");
}

/// The interrupt handling of the upload ends with the upload: a Ctrl-C during the
/// CreateTrainingJob that follows still ends `train` (it is not swallowed), naming how to see
/// whether the job was created.
#[test]
fn ctrl_c_during_create_training_job_after_an_upload_ends_train() {
    let acct = account_with_role_and_image();
    let proxy = Proxy::with_rules(
        &moto_url(),
        vec![Rule::new(Fault::Delay(Duration::from_secs(30)), Pick::All).only("CreateTrainingJob")],
    );
    let mut sb = Sandbox::new();
    acct.env(&mut sb);
    sb.set("AWS_ENDPOINT_URL", &proxy.url);
    dataset(&sb.project().join("data/train"), 6, 41);
    let args = [
        "train",
        "--train",
        "./data/train",
        "--image",
        "unet-vessels",
        "--role",
        "SageMakerRole",
    ];
    let child = spawn(&sb, &args);
    wait_until("CreateTrainingJob sent", 60, || {
        proxy.count_op("CreateTrainingJob") >= 1
    });
    let sent = Instant::now();
    let (code, stderr) = signal_and_wait(child, "-INT");
    assert_eq!(code, Some(130), "{stderr}");
    assert!(
        sent.elapsed() < Duration::from_secs(10),
        "ended at once: {:?}",
        sent.elapsed()
    );
    assert!(stderr.contains("interrupted (Ctrl-C)"), "{stderr}");
    assert!(stderr.contains("sagetrain list"), "{stderr}");
}

pub(crate) fn channel_uris(
    d: &aws_sdk_sagemaker::operation::describe_training_job::DescribeTrainingJobOutput,
) -> BTreeMap<String, String> {
    d.input_data_config()
        .iter()
        .map(|c| {
            (
                c.channel_name().unwrap().to_string(),
                c.data_source()
                    .unwrap()
                    .s3_data_source()
                    .unwrap()
                    .s3_uri()
                    .unwrap()
                    .to_string(),
            )
        })
        .collect()
}

#[test]
fn train_with_local_folders_twice_uploads_once_and_the_jobs_read_the_content_addressed_prefixes() {
    let acct = account_with_role_and_image();
    let (sb, proxy) = sandbox_via_proxy(&acct);
    let train = dataset(&sb.project().join("data/train"), 12, 100);
    let val = dataset(&sb.project().join("data/val"), 4, 200);
    let args = [
        "train",
        "--epochs",
        "50",
        "--train",
        "./data/train",
        "--validation",
        "./data/val",
        "--image",
        "unet-vessels",
        "--role",
        "SageMakerRole",
        "-o",
        "json",
    ];
    let bucket = default_bucket(&acct);
    let (dt, _) = expected_digest(&train);
    let (dv, _) = expected_digest(&val);
    let want = BTreeMap::from([
        (
            "train".to_string(),
            format!("s3://{bucket}/sagetrain/data/train/{dt}/"),
        ),
        (
            "validation".to_string(),
            format!("s3://{bucket}/sagetrain/data/validation/{dv}/"),
        ),
    ]);

    let r1 = sb.run(&args).ok();
    assert_eq!(
        proxy.data_puts().len(),
        12 + 4 + 2,
        "{:#?}",
        proxy.data_puts()
    );
    // The job was created after the data was complete.
    let reqs = proxy.requests();
    let last_put = reqs.iter().rposition(|r| r.method == "PUT").unwrap();
    let create = reqs.len() - 1;
    assert!(last_put < create);
    let job1 = r1.json()["job_name"].as_str().unwrap().to_string();
    assert_eq!(channel_uris(&block_on(acct.describe(&job1))), want);
    assert_eq!(list(&acct, &bucket, "sagetrain/data/").len(), 12 + 4 + 2);

    proxy.clear();
    let r2 = sb.run(&args).ok();
    assert_eq!(proxy.count_method("PUT"), 0, "{:#?}", proxy.requests());
    let job2 = r2.json()["job_name"].as_str().unwrap().to_string();
    assert_ne!(job1, job2);
    assert_eq!(channel_uris(&block_on(acct.describe(&job2))), want);
    assert!(
        r2.stderr.contains("already complete in S3"),
        "{}",
        r2.stderr
    );
}

#[test]
fn spot_jobs_get_a_checkpoint_location_under_the_output_path() {
    let acct = account_with_role_and_image();
    let mut sb = Sandbox::new();
    acct.env(&mut sb);
    dataset(&sb.project().join("data"), 2, 5);
    let r = sb
        .run(&[
            "train",
            "--epochs",
            "5",
            "--spot",
            "--image",
            "unet-vessels",
            "--role",
            "SageMakerRole",
            "--train",
            "data",
            "-o",
            "json",
        ])
        .ok();
    let job = r.json()["job_name"].as_str().unwrap().to_string();
    let d = block_on(acct.describe(&job));
    let out = format!("s3://{}/sagetrain/", default_bucket(&acct));
    assert_eq!(
        d.output_data_config().unwrap().s3_output_path(),
        Some(out.as_str())
    );
    assert_eq!(
        d.checkpoint_config().and_then(|c| c.s3_uri()),
        Some(format!("{out}{job}/checkpoints/").as_str())
    );
    assert_eq!(d.enable_managed_spot_training(), Some(true));
}
