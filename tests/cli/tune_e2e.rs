//! `sagetrain tune` end to end against moto (which stores CreateHyperParameterTuningJob as sent
//! and completes a tuning job at once), each result checked with an independent read.

use crate::harness::*;
use serde_json::json;

const METRIC: &str = "val_dice=val_dice=([0-9.eE+-]+)";

fn tune_args<'a>(train: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec![
        "tune",
        "--epochs",
        "50",
        "-H",
        "optimizer=adam",
        "--role",
        "SageMakerRole",
        "--image",
        "unet-vessels:latest",
        "--train",
        train,
        "--metric",
        METRIC,
        "--range",
        "learning_rate=1e-5..1e-2:log",
        "--range",
        "depth=3..5",
        "--range",
        "batch_size=8,16",
        "--max-jobs",
        "6",
        "--parallel",
        "3",
        "--early-stopping",
    ];
    v.extend(extra);
    v
}

/// The dry run prints the exact request; the AWS CLI creates the tuning job from it, and an
/// independent DescribeHyperParameterTuningJob holds every field of it.
#[test]
fn dry_run_prints_a_tuning_request_the_aws_cli_accepts() {
    let s = seeded("us-east-1");
    let mut sb = Sandbox::new();
    s.acct.env(&mut sb);
    let train = format!("s3://{}/data/train/", s.bucket);
    let r = sb.run(&tune_args(&train, &["--dry-run"])).ok();
    let req = r.json();
    let name = req["HyperParameterTuningJobName"].as_str().unwrap().to_string();
    assert!(name.starts_with("unet-vessels-") && name.len() <= 32, "{name}");
    let c = &req["HyperParameterTuningJobConfig"];
    assert_eq!(c["Strategy"], "Bayesian");
    assert_eq!(
        c["HyperParameterTuningJobObjective"],
        json!({"Type": "Maximize", "MetricName": "val_dice"})
    );
    assert_eq!(
        c["ResourceLimits"],
        json!({"MaxNumberOfTrainingJobs": 6, "MaxParallelTrainingJobs": 3})
    );
    assert_eq!(c["TrainingJobEarlyStoppingType"], "Auto");
    assert_eq!(
        c["ParameterRanges"]["ContinuousParameterRanges"],
        json!([{"Name": "learning_rate", "MinValue": "1e-5", "MaxValue": "1e-2", "ScalingType": "Logarithmic"}])
    );
    let d = &req["TrainingJobDefinition"];
    assert_eq!(
        d["StaticHyperParameters"],
        json!({"epochs": "50", "optimizer": "adam"})
    );
    assert_eq!(d["RoleArn"], s.role_arn.as_str());
    assert_eq!(
        d["AlgorithmSpecification"]["TrainingImage"],
        format!("{}/unet-vessels@{}", s.acct.registry(), s.digest).as_str()
    );
    assert!(r.stderr.contains("nothing was created"), "{}", r.stderr);
    let listed = aws_cli(&sb, "us-east-1", &["sagemaker", "list-hyper-parameter-tuning-jobs"]);
    assert_eq!(listed["HyperParameterTuningJobSummaries"], json!([]), "the dry run created nothing");

    let file = sb.write("project/tuning.json", &r.stdout);
    aws_cli(
        &sb,
        "us-east-1",
        &[
            "sagemaker",
            "create-hyper-parameter-tuning-job",
            "--cli-input-json",
            &format!("file://{}", file.display()),
        ],
    );
    let got = aws_cli(
        &sb,
        "us-east-1",
        &[
            "sagemaker",
            "describe-hyper-parameter-tuning-job",
            "--hyper-parameter-tuning-job-name",
            &name,
        ],
    );
    let mut sent = req.clone();
    sent.as_object_mut().unwrap().remove("Tags");
    assert_eq!(subset_mismatch(&sent, &got, ""), None, "{got:#}");
}

/// `tune` creates the tuning job (an independent Describe holds what the dry run of the same
/// settings prints), records it as the project's last, and `tune wait` follows it to its end.
#[test]
fn tune_creates_the_tuning_job_and_wait_follows_it() {
    let s = seeded("us-east-1");
    let mut sb = Sandbox::new();
    s.acct.env(&mut sb);
    sb.set("SAGETRAIN_TEST_POLL_MS", "20");
    let train = format!("s3://{}/data/train/", s.bucket);
    let name = format!("sweep-{}", unique() % 100_000);
    let planned = sb
        .run(&tune_args(&train, &["--name", &name, "--minimize", "--dry-run"]))
        .ok()
        .json();
    let out = sb
        .run(&tune_args(&train, &["--name", &name, "--minimize", "-o", "json"]))
        .ok()
        .json();
    assert_eq!(out["tuning_job_name"], name.as_str());
    let arn = out["tuning_job_arn"].as_str().unwrap().to_string();
    assert!(arn.ends_with(&format!("hyper-parameter-tuning-job/{name}")), "{arn}");

    let got = aws_cli(
        &sb,
        "us-east-1",
        &[
            "sagemaker",
            "describe-hyper-parameter-tuning-job",
            "--hyper-parameter-tuning-job-name",
            &name,
        ],
    );
    let mut sent = planned.clone();
    sent.as_object_mut().unwrap().remove("Tags");
    assert_eq!(subset_mismatch(&sent, &got, ""), None, "{got:#}");
    assert_eq!(
        got["HyperParameterTuningJobConfig"]["HyperParameterTuningJobObjective"]["Type"],
        "Minimize"
    );
    let tags = aws_cli(&sb, "us-east-1", &["sagemaker", "list-tags", "--resource-arn", &arn]);
    assert!(
        tags["Tags"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["Key"] == SUBMISSION_TAG),
        "{tags}"
    );

    // The project's last tuning job, in its own state file; the last training job untouched.
    let state: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(sb.project().join(".sagetrain/tuning.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(state["tuning_job_name"], name.as_str());
    assert!(!sb.project().join(".sagetrain/state.json").exists());

    // moto completes a tuning job at once: `tune wait` (NAME from the state file) exits 0.
    let w = sb.run(&["tune", "wait", "-o", "json"]).ok();
    let report = w.json();
    assert_eq!(report["tuning_job_name"], name.as_str());
    assert_eq!(report["status"], "Completed");
    assert_eq!(report["objective_metric"], "val_dice");
    assert!(w.stderr.contains("the last one submitted from this project"), "{}", w.stderr);
}

/// Every rule of the tuning settings at once, before any call (the endpoint is dead): exit 2.
#[test]
fn every_tuning_violation_is_named_together_before_any_call() {
    let mut sb = Sandbox::new();
    sb.set("AWS_ENDPOINT_URL", &dead_endpoint())
        .set("AWS_REGION", "eu-west-1");
    let r = sb
        .run(&[
            "tune",
            "--epochs",
            "50",
            "--role",
            "arn:aws:iam::123456789012:role/SageMakerRole",
            "--image",
            "123456789012.dkr.ecr.eu-west-1.amazonaws.com/unet:latest",
            "--train",
            "s3://my-bucket/data/train/",
            "--metric",
            METRIC,
            "--objective",
            "val_loss",
            "--strategy",
            "grid",
            "--range",
            "learning_rate=1e-5..1e-2",
            "--range",
            "weight_decay=0..1e-2:log",
            "--range",
            "momentum=0.99..0.9",
            "--range",
            "epochs=10,20",
            "--max-jobs",
            "2",
            "--parallel",
            "3",
            "--instance-count",
            "0",
        ])
        .code(2)
        .stderr_has("7 invalid settings; nothing was sent to AWS")
        .stderr_has("--instance-count: must be at least 1")
        .stderr_has("--range epochs: `epochs` is also a static hyperparameter (set by flag --epochs)")
        .stderr_has("--range learning_rate: grid search takes only categorical ranges")
        .stderr_has("--range momentum: `0.99..0.9` is an empty or reversed range")
        .stderr_has("--range weight_decay: `0..1e-2:log`: a logarithmic range must stay above 0")
        .stderr_has("--objective: `val_loss` is not one of the metric definitions (val_dice)")
        .stderr_has("--parallel: 3 trials at a time is more than the 2 in all");
    assert!(r.stdout.is_empty(), "{}", r.stdout);

    // The [tune] table is checked with the rest of the file.
    sb.write(
        "project/sagetrain.toml",
        "[tune]\nmax_jobs = 10\nsweep = true\n[tune.ranges]\nlearning_rate = \"1e-5..1e-2:log\"\n",
    );
    sb.run(&["tune", "--dry-run"])
        .code(2)
        .stderr_has("sagetrain.toml:1: `tune` is invalid: unknown key `tune.sweep`");

    // No tuning job yet in this project.
    std::fs::remove_file(sb.project().join("sagetrain.toml")).unwrap();
    sb.run(&["tune", "status"])
        .code(2)
        .stderr_has("no tuning job given, and none was submitted from this project yet");
    sb.run(&["tune", "best", "not_a_name"])
        .code(2)
        .stderr_has("NAME: `not_a_name` is not a valid tuning job name");
}
