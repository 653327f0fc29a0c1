//! `sagetrain metrics` end to end: logs seeded in moto with metric lines, parsed with each job's
//! own MetricDefinitions.
//!
//! moto replaces a job's MetricDefinitions with a sample of its own (`test:dcg`, regex
//! `#quality_metric: host=\S+, test dcg <score>=(\S+)`) and sets FinalMetricDataList to
//! `train:progress` = 100. So the two-job test seeds lines in the form that definition matches
//! and checks it against DescribeTrainingJob independently. To show that the definitions really
//! come from the job (and not from a fixed list), another test answers DescribeTrainingJob with
//! the loopback stand-in (definitions of our choosing) while the logs come from moto.

use crate::fake_sagemaker::{self, job_json, Stop};
use crate::follow_e2e::{
    fake_sandbox, name, now_ms, run, sandbox, seed_logs, train_args, TRAINING,
};
use crate::harness::*;

fn dcg(v: f64) -> String {
    format!("#quality_metric: host=algo-1, test dcg <score>={v}")
}

/// The values of metric `metric` of job `job` in `metrics -o json` output.
fn values(out: &serde_json::Value, job: &str, metric: &str) -> Vec<f64> {
    series(out, job, metric)["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["value"].as_f64().unwrap())
        .collect()
}

fn series<'a>(out: &'a serde_json::Value, job: &str, metric: &str) -> &'a serde_json::Value {
    let j = out["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["job_name"] == job)
        .unwrap_or_else(|| panic!("no job {job} in {out}"));
    j["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == metric)
        .unwrap_or_else(|| panic!("no metric {metric} in {j}"))
}

fn png_size(path: &std::path::Path) -> (u32, u32) {
    let dec = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap()));
    let mut reader = dec.read_info().expect("a PNG");
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).expect("PNG pixels decode");
    (info.width, info.height)
}

#[test]
fn two_jobs_series_equal_the_logged_values_and_images_have_the_stated_size() {
    let s = seeded("us-east-1");
    let sb = sandbox(&s);
    let (a, b) = (name("curves-a"), name("curves-b"));
    run(&sb, &train_args(&s, &a, &[])).ok();
    run(&sb, &train_args(&s, &b, &[])).ok();
    let base = now_ms();
    let seeded_a = [0.52, 0.61, 0.66, 0.7];
    let seeded_b = [0.4, 0.45, 0.58];
    let mut events_a: Vec<(i64, String)> = seeded_a
        .iter()
        .enumerate()
        .map(|(i, v)| (i as i64 * 60_000, dcg(*v)))
        .collect();
    events_a.insert(1, (30_000, "epoch 1 done; nothing to parse here".into()));
    let events_b: Vec<(i64, String)> = seeded_b
        .iter()
        .enumerate()
        .map(|(i, v)| (i as i64 * 90_000, dcg(*v)))
        .collect();
    let borrow = |e: &[(i64, String)]| e.iter().map(|(t, m)| (*t, m.clone())).collect::<Vec<_>>();
    for (job, events) in [(&a, borrow(&events_a)), (&b, borrow(&events_b))] {
        let ev: Vec<(i64, &str)> = events.iter().map(|(t, m)| (*t, m.as_str())).collect();
        block_on(seed_logs(&s.acct, job, "algo-1-1700000000", base, &ev));
    }

    let r = sb.run(&["metrics", &a, &b, "-o", "json"]).ok();
    let out = r.json();
    assert_eq!(values(&out, &a, "test:dcg"), seeded_a);
    assert_eq!(values(&out, &b, "test:dcg"), seeded_b);
    let sa = series(&out, &a, "test:dcg");
    assert_eq!(sa["final_value"], 0.7);
    assert_eq!(sa["final_source"], "logs");
    let ts: Vec<i64> = sa["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["timestamp"].as_i64().unwrap())
        .collect();
    assert_eq!(ts, [base, base + 60_000, base + 120_000, base + 180_000]);
    // FinalMetricDataList is there too.
    let progress = series(&out, &a, "train:progress");
    assert_eq!(progress["final_value"], 100.0);
    assert_eq!(progress["final_source"], "FinalMetricDataList");
    // Independent read: the regex used is the one the job holds.
    let d = block_on(s.acct.describe(&a));
    let def = &d.algorithm_specification().unwrap().metric_definitions()[0];
    assert_eq!(sa["regex"], def.regex().unwrap());
    assert_eq!(def.name(), Some("test:dcg"));

    // Not a terminal: a table, one row per job and metric.
    let r = sb.run(&["metrics", &a, &b]).ok();
    let rows: Vec<&str> = r.stdout.lines().collect();
    assert!(rows[0].starts_with("JOB"), "{}", r.stdout);
    let row_a = rows
        .iter()
        .find(|l| l.starts_with(&a) && l.contains("test:dcg"))
        .unwrap();
    assert_eq!(
        row_a.split_whitespace().skip(2).collect::<Vec<_>>(),
        ["4", "0.52", "0.7", "0.7", "0.7"],
        "{}",
        r.stdout
    );

    // Images: the stated size, and the default size (1000 wide, 320 per metric with values).
    let png = sb.project().join("curves.png");
    let svg = sb.project().join("curves.svg");
    let r = sb
        .run(&[
            "metrics",
            &a,
            &b,
            "--png",
            "curves.png",
            "--svg",
            "curves.svg",
            "--size",
            "800x500",
        ])
        .ok();
    r.stderr_has("wrote the charts to");
    assert_eq!(png_size(&png), (800, 500));
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(
        text.contains(r#"width="800" height="500""#),
        "{}",
        &text[..300]
    );
    for want in [a.as_str(), b.as_str(), "test:dcg"] {
        assert!(text.contains(want), "{want} not in the SVG");
    }
    sb.run(&["metrics", &a, "--png", "default.png"]).ok();
    assert_eq!(png_size(&sb.project().join("default.png")), (1000, 320));

    // Without a job: the project's last one (b).
    let r = sb.run(&["metrics", "-o", "json"]).ok();
    assert_eq!(r.json()["jobs"].as_array().unwrap().len(), 1);
    assert_eq!(values(&r.json(), &b, "test:dcg"), seeded_b);
}

#[test]
fn bad_input_is_refused_before_any_call() {
    let mut sb = Sandbox::new();
    sb.set("AWS_ENDPOINT_URL", &dead_endpoint())
        .set("AWS_REGION", "us-east-1")
        .set("AWS_ACCESS_KEY_ID", FAKE_KEY_ID)
        .set("AWS_SECRET_ACCESS_KEY", FAKE_SECRET);
    sb.run(&["metrics", "job", "--png", "x.png", "--size", "12x"])
        .code(2)
        .stderr_has("--size");
    sb.run(&["metrics", "job", "--size", "800x600"])
        .code(2)
        .stderr_has("only with --png or --svg");
    sb.run(&["metrics", "job", "--png", "no/such/folder/x.png"])
        .code(2)
        .stderr_has("--png");
    sb.run(&["metrics", "bad_name"]).code(2).stderr_has("JOB");
}

/// The describe answer of a job with definitions of our own, as SageMaker keeps them.
fn job_with_definitions(job: &str, status: &str) -> serde_json::Value {
    let secondary = if status == "Completed" {
        "Completed"
    } else {
        "Training"
    };
    let mut d = job_json(job, status, secondary, &[TRAINING], None);
    d["AlgorithmSpecification"]["MetricDefinitions"] = serde_json::json!([
        {"Name": "train:loss", "Regex": "loss=([0-9.]+)"},
        {"Name": "val:dice", "Regex": "val_dice: ([0-9.]+)"},
    ]);
    d["ResourceConfig"]["InstanceCount"] = serde_json::json!(2);
    d
}

#[test]
fn the_jobs_own_definitions_parse_every_hosts_lines_and_follow_waits_for_the_end() {
    // Logs in moto, in an account of their own; DescribeTrainingJob from the stand-in.
    let acct = block_on(Account::new("us-east-1"));
    let job = name("own-defs");
    let base = now_ms();
    block_on(seed_logs(
        &acct,
        &job,
        "algo-1-1700000000",
        base,
        &[
            (0, "epoch 1 loss=0.9"),
            (2_000, "val_dice: 0.31"),
            (4_000, "epoch 2 loss=0.6"),
        ],
    ));
    block_on(seed_logs(
        &acct,
        &job,
        "algo-2-1700000000",
        base,
        &[
            (1_000, "epoch 1 loss=0.8"),
            (5_000, "epoch 2 loss=0.5 val_dice: 0.44"),
        ],
    ));
    let fake = fake_sagemaker::start_sequence(
        vec![
            job_with_definitions(&job, "InProgress"),
            job_with_definitions(&job, "InProgress"),
            job_with_definitions(&job, "Completed"),
        ],
        Stop::Accept,
    );
    let mut sb = fake_sandbox(&fake.url);
    acct.env(&mut sb);
    sb.unset("AWS_ENDPOINT_URL")
        .set("AWS_ENDPOINT_URL_SAGEMAKER", &fake.url)
        .set("AWS_ENDPOINT_URL_CLOUDWATCH_LOGS", &moto_url());

    let r = sb.run(&["metrics", &job, "--follow", "-o", "json"]).ok();
    let out = r.json();
    assert_eq!(
        out["jobs"][0]["status"], "Completed",
        "--follow waited for the end"
    );
    assert_eq!(values(&out, &job, "train:loss"), [0.9, 0.8, 0.6, 0.5]);
    assert_eq!(values(&out, &job, "val:dice"), [0.31, 0.44]);
    let hosts: Vec<&str> = series(&out, &job, "train:loss")["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["host"].as_str().unwrap())
        .collect();
    assert_eq!(hosts, ["algo-1", "algo-2", "algo-1", "algo-2"]);
    assert!(
        fake.calls_to("DescribeTrainingJob").len() >= 3,
        "polled until Completed"
    );
    // Not moto's sample definition: nothing of test:dcg.
    assert!(!r.stdout.contains("test:dcg"), "{}", r.stdout);
}
