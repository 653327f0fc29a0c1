//! The record of a local run (`.sagetrain/local/<name>/run.json`) end to end, with real podman
//! containers (the image of `local_e2e`): `status --local` shows the verdict, `metrics --local`
//! parses the run's `train.log` with its metric definitions.

use crate::local_e2e::{image, local_args, sandbox};
use serde_json::{json, Value};

/// The values of metric `name` in `metrics -o json` output, with their log lines and hosts.
fn points(out: &Value, name: &str) -> Vec<(f64, u64, String)> {
    out["jobs"][0]["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == name)
        .unwrap_or_else(|| panic!("no metric {name} in {out:#}"))["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["value"].as_f64().unwrap(),
                p["line"].as_u64().unwrap(),
                p["host"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn a_completed_run_is_recorded_and_its_metrics_are_parsed_from_its_log() {
    let sb = sandbox();
    // No local run yet: exit 2, saying how to make one.
    sb.run(&["status", "--local"])
        .code(2)
        .stderr_has("no local runs in this project: run `sagetrain train --local`");
    let img = image(&sb);
    sb.run(&local_args(
        &img,
        &["--metric", "loss=loss=([0-9.]+)", "--name", "rec-ok"],
    ))
    .ok();

    // The newest run, without a name.
    let r = sb.run(&["status", "--local", "-o", "json"]).ok();
    assert!(
        r.stderr.contains("local run rec-ok (the newest"),
        "{}",
        r.stderr
    );
    let rec = r.json();
    assert_eq!(rec["job_name"], "rec-ok");
    assert_eq!(rec["status"], "Completed", "{rec:#}");
    assert_eq!(rec["exit_code"], 0);
    assert_eq!(rec["running"], false);
    assert_eq!(rec["mode"], "container");
    assert_eq!(rec["engine"], "podman");
    assert_eq!(rec["image"], img.as_str());
    assert_eq!(rec["hosts"], json!(["algo-1"]));
    assert_eq!(rec["failure_reason"], Value::Null);
    assert_eq!(
        rec["metric_definitions"],
        json!([{"Name": "loss", "Regex": "loss=([0-9.]+)"}])
    );
    assert_eq!(rec["hyperparameters"], json!({"epochs": "3"}));
    assert!(rec["ended"].as_str().unwrap() >= rec["started"].as_str().unwrap());
    assert!(rec["duration_seconds"].as_f64().unwrap() > 0.0, "{rec:#}");
    // The record is the file in the run's folder.
    let file = sb.project().join(".sagetrain/local/rec-ok/run.json");
    let stored: Value = serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
    assert_eq!(stored["status"], "Completed");

    let t = sb.run(&["status", "--local", "rec-ok"]).ok();
    // Aligned as `status` aligns a job's report (the widest key here is `hyperparameters`).
    assert!(
        t.stdout
            .starts_with("local run        rec-ok\nstatus           Completed\n"),
        "{}",
        t.stdout
    );

    // The metrics: the entry's two loss lines, by their line in train.log.
    let m = sb.run(&["metrics", "--local", "-o", "json"]).ok().json();
    assert_eq!(m["jobs"][0]["job_name"], "rec-ok");
    assert_eq!(m["jobs"][0]["status"], "Completed");
    let loss = points(&m, "loss");
    assert_eq!(
        loss.iter().map(|p| p.0).collect::<Vec<_>>(),
        [0.9, 0.5],
        "{m:#}"
    );
    assert!(loss[0].1 < loss[1].1, "{loss:?}");
    assert!(loss.iter().all(|p| p.2 == "algo-1"));
    let log =
        std::fs::read_to_string(sb.project().join(".sagetrain/local/rec-ok/train.log")).unwrap();
    let line = log.lines().nth(loss[1].1 as usize - 1).unwrap();
    assert_eq!(line, "[algo-1] epoch 2 loss=0.5");
    // Not a terminal: the table `metrics` prints for a cloud job.
    let t = sb.run(&["metrics", "--local", "rec-ok"]).ok();
    let rows: Vec<&str> = t.stdout.lines().collect();
    assert_eq!(
        rows[0], "JOB     METRIC  VALUES  MIN  MAX  LAST  FINAL",
        "{}",
        t.stdout
    );
    assert_eq!(
        rows[1], "rec-ok  loss    2       0.5  0.9  0.5   0.5",
        "{}",
        t.stdout
    );
    let png = sb.run(&["metrics", "--local", "--png", "curves.png"]).ok();
    assert!(png.stderr.contains("wrote the charts to"), "{}", png.stderr);
    assert!(sb.project().join("curves.png").is_file());

    // A name with no run: exit 2, with the runs there are.
    sb.run(&["status", "--local", "nope"])
        .code(2)
        .stderr_has("no local run `nope` in this project")
        .stderr_has("rec-ok  ");
    sb.run(&["metrics", "--local", "nope"])
        .code(2)
        .stderr_has("rec-ok  ");
    sb.run(&["metrics", "--local", "--follow"])
        .code(2)
        .stderr_has("--follow: not with --local");
}

#[test]
fn a_failed_run_and_a_run_whose_process_died_say_so() {
    let sb = sandbox();
    let img = image(&sb);
    sb.run(&local_args(&img, &["-H", "fail=yes", "--name", "rec-fail"]))
        .code(5);
    let rec = sb
        .run(&["status", "--local", "rec-fail", "-o", "json"])
        .ok()
        .json();
    assert_eq!(rec["status"], "Failed", "{rec:#}");
    assert_eq!(rec["exit_code"], 3);
    assert_eq!(rec["failed_host"], "algo-1");
    assert_eq!(rec["failure_reason"], "learning rate too high");
    let t = sb.run(&["status", "--local", "rec-fail"]).ok();
    assert!(
        t.stdout
            .contains("\nfailure reason   learning rate too high\n"),
        "{}",
        t.stdout
    );

    // A record left InProgress by a process killed hard (here: one that has exited).
    let mut gone = std::process::Command::new("true").spawn().unwrap();
    let pid = gone.id();
    gone.wait().unwrap();
    let dir = sb.project().join(".sagetrain/local/rec-killed");
    std::fs::create_dir_all(&dir).unwrap();
    let mut killed = rec.clone();
    let o = killed.as_object_mut().unwrap();
    o.remove("running");
    for k in [
        "ended",
        "exit_code",
        "failed_host",
        "failure_reason",
        "duration_seconds",
    ] {
        o.insert(k.into(), Value::Null);
    }
    o.insert("job_name".into(), "rec-killed".into());
    o.insert("status".into(), "InProgress".into());
    o.insert("pid".into(), pid.into());
    std::fs::write(dir.join("run.json"), killed.to_string()).unwrap();
    let rec = sb
        .run(&["status", "--local", "rec-killed", "-o", "json"])
        .ok()
        .json();
    assert_eq!(rec["status"], "InProgress");
    assert_eq!(rec["running"], false);
    let t = sb.run(&["status", "--local", "rec-killed"]).ok();
    assert!(
        t.stdout.contains(
            "status           InProgress (or ended without a verdict: no sagetrain process is running it"
        ),
        "{}",
        t.stdout
    );
}

#[test]
fn an_interrupted_run_is_recorded_as_stopped() {
    let sb = sandbox();
    let img = image(&sb);
    let args = local_args(&img, &["-H", "wait=yes", "--name", "rec-term"]);
    let child = crate::data_e2e::spawn(&sb, &args);
    let dir = sb.project().join(".sagetrain/local/rec-term");
    crate::data_e2e::wait_until("the entry to start", 30, || {
        dir.join("output/data/started").exists()
    });
    // While it runs: InProgress, and its process is alive.
    let rec = sb
        .run(&["status", "--local", "rec-term", "-o", "json"])
        .ok()
        .json();
    assert_eq!(rec["status"], "InProgress", "{rec:#}");
    assert_eq!(rec["running"], true);
    assert_eq!(rec["exit_code"], Value::Null);
    let (code, stderr) = crate::data_e2e::signal_and_wait(child, "-TERM");
    assert_eq!(code, Some(143), "{stderr}");
    let rec = sb
        .run(&["status", "--local", "rec-term", "-o", "json"])
        .ok()
        .json();
    assert_eq!(rec["status"], "Stopped", "{rec:#}");
    assert_eq!(rec["exit_code"], 143);
    assert!(
        rec["failure_reason"].as_str().unwrap().contains("SIGTERM"),
        "{rec:#}"
    );
}
