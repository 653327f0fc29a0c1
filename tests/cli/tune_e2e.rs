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

/// An independent read (the AWS CLI's DescribeHyperParameterTuningJob) holds every field of
/// the request (tags are read apart); returns what it read.
fn described_as_sent(sb: &Sandbox, req: &serde_json::Value) -> serde_json::Value {
    let name = req["HyperParameterTuningJobName"].as_str().unwrap();
    let got = aws_cli(
        sb,
        "us-east-1",
        &[
            "sagemaker",
            "describe-hyper-parameter-tuning-job",
            "--hyper-parameter-tuning-job-name",
            name,
        ],
    );
    let mut sent = req.clone();
    sent.as_object_mut().unwrap().remove("Tags");
    assert_eq!(subset_mismatch(&sent, &got, ""), None, "{got:#}");
    got
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
    let name = req["HyperParameterTuningJobName"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        name.starts_with("unet-vessels-") && name.len() <= 32,
        "{name}"
    );
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
    let r = r.stderr_has("nothing was created");
    let listed = aws_cli(
        &sb,
        "us-east-1",
        &["sagemaker", "list-hyper-parameter-tuning-jobs"],
    );
    assert_eq!(
        listed["HyperParameterTuningJobSummaries"],
        json!([]),
        "the dry run created nothing"
    );

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
    described_as_sent(&sb, &req);
}

/// `tune` creates the tuning job (an independent Describe holds what the dry run of the same
/// settings prints), records it as the project's last, and `tune wait` follows it to its end.
#[test]
fn tune_creates_the_tuning_job_and_wait_follows_it() {
    let s = seeded("us-east-1");
    let mut sb = Sandbox::new();
    s.acct.env(&mut sb);
    sb.set("SAGETRAIN_POLL_INTERVAL", "20ms");
    let train = format!("s3://{}/data/train/", s.bucket);
    let name = format!("sweep-{}", unique() % 100_000);
    let planned = sb
        .run(&tune_args(
            &train,
            &["--name", &name, "--minimize", "--dry-run"],
        ))
        .ok()
        .json();
    let out = sb
        .run(&tune_args(
            &train,
            &["--name", &name, "--minimize", "-o", "json"],
        ))
        .ok()
        .json();
    assert_eq!(out["tuning_job_name"], name.as_str());
    let arn = out["tuning_job_arn"].as_str().unwrap().to_string();
    assert!(
        arn.ends_with(&format!("hyper-parameter-tuning-job/{name}")),
        "{arn}"
    );

    let got = described_as_sent(&sb, &planned);
    assert_eq!(
        got["HyperParameterTuningJobConfig"]["HyperParameterTuningJobObjective"]["Type"],
        "Minimize"
    );
    let tags = aws_cli(
        &sb,
        "us-east-1",
        &["sagemaker", "list-tags", "--resource-arn", &arn],
    );
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
    assert!(
        w.stderr
            .contains("the last one submitted from this project"),
        "{}",
        w.stderr
    );
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
        .stderr_has(
            "--range epochs: `epochs` is also a static hyperparameter (set by flag --epochs)",
        )
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

/// A tuning job with trials, from a stand-in for SageMaker (moto has no
/// ListTrainingJobsForHyperParameterTuningJob): `tune status` ranks them best first, `tune
/// best` prints the winner's name for `train --from`, `tune stop` asks SageMaker to stop it.
#[test]
fn status_ranks_the_trials_and_best_names_the_winner() {
    use crate::fake_sagemaker::{job_json, start_with, Stop};
    let name = "unet-261130-112048-ab12";
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let trial = |n: u32, status: &str, value: Option<f64>, lr: &str| {
        let mut t = json!({
            "TrainingJobName": format!("{name}-{n:03}-0a1b2c3d"),
            "TrainingJobArn": format!("arn:aws:sagemaker:us-east-1:123456789012:training-job/{name}-{n:03}-0a1b2c3d"),
            "CreationTime": now - 900.0,
            "TrainingStartTime": now - 900.0,
            "TrainingEndTime": now - 900.0 + 300.0 + n as f64,
            "TrainingJobStatus": status,
            "TunedHyperParameters": {"learning_rate": lr, "batch_size": "8"},
        });
        if let Some(v) = value {
            t["FinalHyperParameterTuningJobObjectiveMetric"] =
                json!({"MetricName": "val_dice", "Value": v});
        }
        t
    };
    let best = trial(2, "Completed", Some(0.875), "0.0003");
    let describe = json!({
        "HyperParameterTuningJobName": name,
        "HyperParameterTuningJobArn": format!("arn:aws:sagemaker:us-east-1:123456789012:hyper-parameter-tuning-job/{name}"),
        "HyperParameterTuningJobStatus": "InProgress",
        "HyperParameterTuningJobConfig": {
            "Strategy": "Bayesian",
            "HyperParameterTuningJobObjective": {"Type": "Maximize", "MetricName": "val_dice"},
            "ResourceLimits": {"MaxNumberOfTrainingJobs": 10, "MaxParallelTrainingJobs": 2},
            "ParameterRanges": {},
        },
        "CreationTime": now - 1000.0,
        "TrainingJobStatusCounters": {"Completed": 2, "InProgress": 0, "RetryableError": 0, "NonRetryableError": 1, "Stopped": 0},
        "ObjectiveStatusCounters": {"Succeeded": 2, "Pending": 0, "Failed": 1},
        "BestTrainingJob": best,
    });
    let list = json!({"TrainingJobSummaries": [
        trial(1, "Completed", Some(0.5), "0.01"),
        trial(3, "Failed", None, "0.1"),
        best,
    ]});
    let fake = start_with(
        job_json("x", "InProgress", "Training", &[], None),
        Stop::Accept,
        vec![
            ("DescribeHyperParameterTuningJob", describe),
            ("ListTrainingJobsForHyperParameterTuningJob", list),
            ("StopHyperParameterTuningJob", json!({})),
        ],
    );
    let mut sb = Sandbox::new();
    sb.set("AWS_ACCESS_KEY_ID", FAKE_KEY_ID)
        .set("AWS_SECRET_ACCESS_KEY", FAKE_SECRET)
        .set("AWS_REGION", "us-east-1")
        .set("AWS_ENDPOINT_URL", &fake.url);

    let text = sb.run(&["tune", "status", name]).ok().stdout;
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[1], "status      InProgress", "{text}");
    assert_eq!(
        lines[4],
        format!("best        {name}-002-0a1b2c3d  val_dice 0.875"),
        "{text}"
    );
    let ranked: Vec<&str> = lines[7..]
        .iter()
        .map(|l| l.split_whitespace().nth(1).unwrap())
        .collect();
    assert_eq!(
        ranked,
        [
            format!("{name}-002-0a1b2c3d"),
            format!("{name}-001-0a1b2c3d"),
            format!("{name}-003-0a1b2c3d")
        ],
        "{text}"
    );
    let json = sb.run(&["tune", "status", name, "-o", "json"]).ok().json();
    assert_eq!(json["leaderboard"][0]["objective_value"], json!(0.875));
    assert_eq!(
        json["leaderboard"][0]["hyperparameters"]["learning_rate"],
        "0.0003"
    );
    assert_eq!(json["leaderboard"][0]["duration_seconds"], 302);
    assert_eq!(json["leaderboard"][2]["status"], "Failed");
    assert_eq!(json["trials"]["failed"], 1);

    let best = sb.run(&["tune", "best", name]).ok();
    assert_eq!(best.stdout, format!("{name}-002-0a1b2c3d\n"));
    let stopped = sb.run(&["tune", "stop", name, "-o", "json"]).ok().json();
    assert_eq!(stopped["stop_requested"], true);
    assert_eq!(fake.calls_to("StopHyperParameterTuningJob").len(), 1);
    assert!(fake.calls_to("StopHyperParameterTuningJob")[0].contains(name));
}
