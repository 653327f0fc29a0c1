//! Code mode (`train --source DIR`) and warm pools end to end against moto, through the
//! counting proxy: the code prefix in the bucket (with the launcher), the `code` channel, the
//! entrypoint fields and the keep-alive (an independent DescribeTrainingJob: moto keeps
//! AlgorithmSpecification and ResourceConfig as sent), no upload on a rerun, one file after an
//! edit, and `train --from` reusing the code.

use crate::data_e2e::{
    channel_uris, dataset, default_bucket, expected_digest, list, sandbox_via_proxy, write,
};
use crate::harness::*;
use std::collections::BTreeMap;
use std::path::Path;

fn code_folder(root: &Path, train_py: &str) -> BTreeMap<String, Vec<u8>> {
    let files = BTreeMap::from([
        ("train.py".to_string(), train_py.as_bytes().to_vec()),
        ("unet/model.py".to_string(), b"class UNet: pass\n".to_vec()),
        ("requirements.txt".to_string(), b"pillow>=10\n".to_vec()),
    ]);
    for (rel, content) in &files {
        write(root, rel, content);
    }
    // Never uploaded: hidden files and what .sagetrainignore excludes.
    write(root, ".git/HEAD", b"ref: refs/heads/main\n");
    write(root, ".sagetrainignore", b"__pycache__/\n");
    write(root, "__pycache__/train.cpython-311.pyc", b"\0\0");
    files
}

/// The code with the launcher, as the job downloads it.
fn with_launcher(mut files: BTreeMap<String, Vec<u8>>) -> BTreeMap<String, Vec<u8>> {
    files.insert(
        ".sagetrain-launcher.sh".into(),
        include_str!("../../src/job/launcher.sh")
            .as_bytes()
            .to_vec(),
    );
    files
}

#[test]
fn source_uploads_the_code_once_and_the_job_runs_it_through_the_launcher() {
    let acct = block_on(async {
        let a = Account::new("us-east-1").await;
        a.role("SageMakerRole", "/service-role/", true).await;
        a.image("pytorch-base", "2.4").await;
        a
    });
    let (sb, proxy) = sandbox_via_proxy(&acct);
    let code = code_folder(&sb.project().join("src"), "print('v1')\n");
    dataset(&sb.project().join("data"), 2, 7);
    let args = [
        "train",
        "--source",
        "src",
        "--keep-alive",
        "30m",
        "--input-mode",
        "fastfile",
        "--image",
        "pytorch-base:2.4",
        "--role",
        "SageMakerRole",
        "--train",
        "data",
        "-o",
        "json",
    ];
    let bucket = default_bucket(&acct);
    let (digest, _) = expected_digest(&with_launcher(code.clone()));
    let code_uri = format!("s3://{bucket}/sagetrain/code/{digest}/");

    // A dry run says what would be uploaded, and uploads nothing.
    let mut dry: Vec<&str> = args.to_vec();
    dry.push("--dry-run");
    let r = sb.run(&dry).ok();
    assert_eq!(proxy.count_method("PUT"), 0);
    let r = r.stderr_has("dry run: code (4 files, ");
    assert!(
        r.stderr
            .contains(&format!("would be uploaded to {code_uri}")),
        "{}",
        r.stderr
    );
    let req = r.json();
    assert_eq!(
        req["AlgorithmSpecification"]["ContainerArguments"],
        serde_json::json!(["train.py"])
    );

    // 1. The code and the launcher arrive under the content-addressed prefix; nothing else.
    proxy.clear();
    let r1 = sb.run(&args).ok();
    let keys: Vec<String> = list(&acct, &bucket, &format!("sagetrain/code/{digest}/"))
        .into_keys()
        .collect();
    assert_eq!(
        keys,
        [
            ".sagetrain-launcher.sh",
            "requirements.txt",
            "train.py",
            "unet/model.py"
        ]
        .map(|k| format!("sagetrain/code/{digest}/{k}"))
    );
    assert_eq!(
        list(&acct, &bucket, &format!("sagetrain/code/{digest}.manifest")).len(),
        1
    );
    let job1 = r1.json()["job_name"].as_str().unwrap().to_string();
    let d = block_on(acct.describe(&job1));
    assert_eq!(channel_uris(&d)["code"], code_uri);
    let code_channel = d
        .input_data_config()
        .iter()
        .find(|c| c.channel_name() == Some("code"))
        .unwrap();
    assert_eq!(code_channel.input_mode().map(|m| m.as_str()), Some("File"));
    let a = d.algorithm_specification().unwrap();
    assert_eq!(
        a.container_entrypoint(),
        ["/bin/sh", "/opt/ml/input/data/code/.sagetrain-launcher.sh"]
    );
    assert_eq!(a.container_arguments(), ["train.py"]);
    assert_eq!(
        a.training_input_mode().map(|m| m.as_str()),
        Some("FastFile")
    );
    assert_eq!(
        d.resource_config().unwrap().keep_alive_period_in_seconds(),
        Some(1800)
    );
    let arn = d.training_job_arn().unwrap().to_string();
    assert!(
        block_on(acct.all_tags(&arn)).contains(&("sagetrain:code-digest".into(), digest.clone()))
    );

    // `status` shows the code.
    let st = sb.run(&["status", &job1, "-o", "json"]).ok().json();
    assert_eq!(st["code_digest"], digest);
    assert_eq!(st["keep_alive_seconds"], 1800);

    // 2. Unchanged code, unchanged data: no PUT at all.
    proxy.clear();
    let r2 = sb.run(&args).ok();
    assert_eq!(proxy.count_method("PUT"), 0, "{:#?}", proxy.requests());
    let job2 = r2.json()["job_name"].as_str().unwrap().to_string();
    assert_eq!(
        channel_uris(&block_on(acct.describe(&job2)))["code"],
        code_uri
    );
    // The warm pool lookup is one ListTrainingJobs; the emulator returns every job, none with a
    // warm pool status, so no job is described (a pool is only what the list says is Available).
    assert_eq!(proxy.count_op("ListTrainingJobs"), 1);
    assert_eq!(
        proxy.count_op("DescribeTrainingJob"),
        0,
        "{:#?}",
        proxy.counts()
    );
    assert!(!r2.stderr.contains("warm pool:"), "{}", r2.stderr);
    // And `pool list` finds none either.
    let pools = sb.run(&["pool", "list", "-o", "json"]).ok().json();
    assert_eq!(pools, serde_json::json!([]));

    // 3. One edited file: that file and the manifest are sent; the rest is copied in S3.
    let code2 = code_folder(&sb.project().join("src"), "print('v2')\n");
    let (digest2, _) = expected_digest(&with_launcher(code2));
    proxy.clear();
    let r3 = sb.run(&args).ok();
    let sent: Vec<String> = proxy.data_puts().iter().filter_map(|e| e.key()).collect();
    assert_eq!(
        sent,
        [
            format!("sagetrain/code/{digest2}/train.py"),
            format!("sagetrain/code/{digest2}.manifest")
        ],
        "{}",
        r3.stderr
    );
    let job3 = r3.json()["job_name"].as_str().unwrap().to_string();

    // 4. `train --from` reuses the job's code (the S3 prefix), elsewhere, with no upload.
    let elsewhere = sb.project().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    proxy.clear();
    let from = sb
        .run_in(
            &elsewhere,
            &["train", "--from", &job3, "--dry-run", "-o", "json"],
        )
        .ok()
        .json();
    let chans = from["InputDataConfig"].as_array().unwrap();
    let code_chans: Vec<&serde_json::Value> = chans
        .iter()
        .filter(|c| c["ChannelName"] == "code")
        .collect();
    assert_eq!(code_chans.len(), 1, "{from}");
    assert_eq!(
        code_chans[0]["DataSource"]["S3DataSource"]["S3Uri"],
        format!("s3://{bucket}/sagetrain/code/{digest2}/")
    );
    assert_eq!(
        from["AlgorithmSpecification"]["ContainerEntrypoint"][1],
        "/opt/ml/input/data/code/.sagetrain-launcher.sh"
    );
    assert_eq!(from["ResourceConfig"]["KeepAlivePeriodInSeconds"], 1800);
    assert_eq!(proxy.count_method("PUT"), 0);
}

#[test]
fn a_missing_entry_or_keep_alive_with_spot_is_refused_before_any_call() {
    let acct = block_on(Account::new("us-east-1"));
    let (sb, proxy) = sandbox_via_proxy(&acct);
    code_folder(&sb.project().join("src"), "print(1)\n");
    let base = [
        "train",
        "--image",
        "123456789012.dkr.ecr.us-east-1.amazonaws.com/unet:1",
        "--role",
        "arn:aws:iam::123456789012:role/R",
        "--train",
        "s3://b-1/data/",
    ];
    let mut a = base.to_vec();
    a.extend(["--source", "src", "--entry", "main.py"]);
    sb.run(&a)
        .code(2)
        .stderr_has("--entry: the entry script main.py is not in the code folder");
    let mut a = base.to_vec();
    a.extend(["--spot", "--keep-alive", "10m"]);
    sb.run(&a)
        .code(2)
        .stderr_has("warm pools do not work with spot training");
    let mut a = base.to_vec();
    a.extend(["--keep-alive", "7h", "--retries", "31"]);
    sb.run(&a)
        .code(2)
        .stderr_has("--keep-alive: a warm pool is kept at most 6 hours (21600s; got 25200s)");
    // An entry that .sagetrainignore leaves out would never reach the job.
    write(&sb.project().join("src2"), "train.py", b"print(1)\n");
    write(
        &sb.project().join("src2"),
        ".sagetrainignore",
        b"train.py\n",
    );
    write(&sb.project().join("src2"), "other.py", b"print(2)\n");
    let mut a = base.to_vec();
    a.extend([
        "--source",
        "src2",
        "--offline",
        "--no-pin-digest",
        "--output-path",
        "s3://b-1/out/",
    ]);
    sb.run(&a).code(2).stderr_has("--entry: train.py is in");
    assert!(proxy.requests().is_empty(), "{:#?}", proxy.requests());
}
