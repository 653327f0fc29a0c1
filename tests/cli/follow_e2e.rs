//! Following jobs end to end: `train --wait --logs`, `wait`, `logs`, `status`, `list`,
//! `download --extract`, `train --from` against moto (which completes a job the moment it is
//! created), and Ctrl-C, `--timeout`, Failed/Stopped verdicts and `stop` against a loopback
//! stand-in for SageMaker. Every result is checked with an independent read.

use crate::fake_sagemaker::{self, job_json, Stop};
use crate::harness::*;
use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub(crate) fn sandbox(s: &Seeded) -> Sandbox {
    let mut sb = Sandbox::new();
    s.acct.env(&mut sb);
    sb.set("SAGETRAIN_POLL_INTERVAL", "50ms");
    sb
}

pub(crate) fn name(prefix: &str) -> String {
    format!("{prefix}-{}", unique() % 1_000_000_000)
}

/// `train` arguments for a job of this account, named `job`.
pub(crate) fn train_args(s: &Seeded, job: &str, extra: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = [
        "train",
        "--name",
        job,
        "--epochs",
        "2",
        "--role",
        "SageMakerRole",
        "--image",
        "unet-vessels",
        "--train",
        &format!("s3://{}/data/train/", s.bucket),
        "--output-path",
        &format!("s3://{}/models/", s.bucket),
    ]
    .iter()
    .map(|x| x.to_string())
    .collect();
    v.extend(extra.iter().map(|x| x.to_string()));
    v
}

pub(crate) fn run(sb: &Sandbox, args: &[String]) -> Run {
    sb.run(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

fn logs_client(a: &Account) -> aws_sdk_cloudwatchlogs::Client {
    aws_sdk_cloudwatchlogs::Client::new(&a.sdk)
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Put events in `<job>/<stream>` of /aws/sagemaker/TrainingJobs: (ms relative to `base`, text).
pub(crate) async fn seed_logs(
    a: &Account,
    job: &str,
    stream: &str,
    base: i64,
    events: &[(i64, &str)],
) {
    let c = logs_client(a);
    let group = "/aws/sagemaker/TrainingJobs";
    let _ = c.create_log_group().log_group_name(group).send().await;
    let name = format!("{job}/{stream}");
    c.create_log_stream()
        .log_group_name(group)
        .log_stream_name(&name)
        .send()
        .await
        .expect("logs:CreateLogStream");
    let mut req = c
        .put_log_events()
        .log_group_name(group)
        .log_stream_name(&name);
    for (t, m) in events {
        req = req.log_events(
            aws_sdk_cloudwatchlogs::types::InputLogEvent::builder()
                .timestamp(base + t)
                .message(*m)
                .build()
                .unwrap(),
        );
    }
    let out = req.send().await.expect("logs:PutLogEvents");
    assert!(
        out.rejected_log_events_info().is_none(),
        "moto rejected events: {:?}",
        out.rejected_log_events_info()
    );
}

fn lines(text: &str) -> Vec<&str> {
    text.lines().collect()
}

/// The positions of `needles` in `hay`, which must exist and be in that order.
fn assert_in_order(hay: &str, needles: &[&str]) {
    let mut at = 0;
    for n in needles {
        match hay[at..].find(n) {
            Some(i) => at += i + 1,
            None => panic!("{n:?} missing or out of order in:\n{hay}"),
        }
    }
}

#[cfg(unix)]
fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn train_wait_logs_puts_logs_on_stderr_and_the_verdict_on_stdout() {
    let s = seeded("us-east-1");
    let sb = sandbox(&s);
    let job = name("wait-logs");
    let base = now_ms();
    block_on(seed_logs(
        &s.acct,
        &job,
        "algo-1-1700000000",
        base,
        &[
            (0, "epoch 1 loss=0.9"),
            (10, "epoch 2 loss=0.5"),
            (20, "saved model to /opt/ml/model"),
        ],
    ));
    let r = run(&sb, &train_args(&s, &job, &["--logs", "-o", "json"])).ok();
    let out = r.json();
    assert_eq!(out["job_name"], job.as_str());
    assert_eq!(out["status"], "Completed");
    assert_eq!(out["role_arn"], s.role_arn.as_str());
    let model = format!("s3://{}/models/{job}/output/model.tar.gz", s.bucket);
    assert_eq!(out["model_artifacts"], model.as_str());
    // The logs went to stderr, in order, without host prefixes (one host); not to stdout.
    assert_in_order(
        &r.stderr,
        &[
            &format!("waiting for training job {job} with its logs"),
            "\nepoch 1 loss=0.9\n",
            "\nepoch 2 loss=0.5\n",
            "\nsaved model to /opt/ml/model\n",
        ],
    );
    let r = r.stderr_has("Completed");
    assert!(!r.stdout.contains("epoch 1"), "{}", r.stdout);
    assert!(!r.stderr.contains("[algo-1]"), "{}", r.stderr);

    // Independent read.
    let d = block_on(s.acct.describe(&job));
    assert_eq!(d.training_job_status().unwrap().as_str(), "Completed");
    assert_eq!(
        d.model_artifacts().unwrap().s3_model_artifacts(),
        Some(model.as_str())
    );

    // The project's state file records it, privately, with nothing secret.
    let state = sb.project().join(".sagetrain/state.json");
    let text = std::fs::read_to_string(&state).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["last_job"]["job_name"], job.as_str());
    assert_eq!(v["last_job"]["region"], "us-east-1");
    assert!(!text.contains(s.acct.creds.secret_access_key()));
    assert!(!text.contains(s.acct.creds.access_key_id()));
    #[cfg(unix)]
    {
        assert_eq!(mode(&state), 0o600);
        assert_eq!(mode(&sb.project().join(".sagetrain")), 0o700);
    }

    // Text mode: the name first, then the report; `wait` on the finished job says the same.
    let job2 = name("wait-text");
    let r = run(&sb, &train_args(&s, &job2, &["--wait"])).ok();
    assert_in_order(
        &r.stdout,
        &[
            &format!("training job  {job2}"),
            "status",
            "Completed",
            "model",
        ],
    );
    let r = sb.run(&["wait", &job, "-o", "json"]).ok();
    assert_eq!(r.json()["status"], "Completed");
    let r = sb.run(&["wait", "--logs"]).ok();
    assert!(
        r.stderr
            .contains(&format!("training job {job2} (the last one")),
        "{}",
        r.stderr
    );
}

#[test]
fn logs_prints_every_host_in_time_order_with_prefixes_on_stdout() {
    let s = seeded("us-east-1");
    let sb = sandbox(&s);
    let job = name("logs");
    run(&sb, &train_args(&s, &job, &["--instance-count", "2"])).ok();
    let base = now_ms();
    block_on(async {
        seed_logs(
            &s.acct,
            &job,
            "algo-1-1700000000",
            base,
            &[(0, "a1"), (20, "a2"), (40, "a3")],
        )
        .await;
        seed_logs(
            &s.acct,
            &job,
            "algo-2-1700000000",
            base,
            &[(10, "b1"), (30, "b2")],
        )
        .await;
    });
    let expected = [
        "[algo-1] a1",
        "[algo-2] b1",
        "[algo-1] a2",
        "[algo-2] b2",
        "[algo-1] a3",
    ];
    let r = sb.run(&["logs", &job]).ok();
    assert_eq!(lines(&r.stdout), expected);
    assert!(!r.stderr.contains("a1"), "{}", r.stderr);
    // JOB omitted: the last job of this project.
    let r = sb.run(&["logs"]).ok();
    assert_eq!(lines(&r.stdout), expected);
    // --follow on a finished job: the same lines, then it ends.
    let r = sb.run(&["logs", &job, "--follow"]).ok();
    assert_eq!(lines(&r.stdout), expected);
    r.stderr_has("completed");
    // JSON lines.
    let r = sb.run(&["logs", &job, "-o", "json"]).ok();
    let objs: Vec<serde_json::Value> = r
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(objs.len(), 5);
    assert_eq!(objs[1]["host"], "algo-2");
    assert_eq!(objs[1]["message"], "b1");
    assert_eq!(
        objs[1]["stream"],
        format!("{job}/algo-2-1700000000").as_str()
    );
    assert_eq!(objs[1]["timestamp"], base + 10);

    // One host: no prefix. --since leaves out what is older.
    let single = name("logs-one");
    run(&sb, &train_args(&s, &single, &[])).ok();
    block_on(seed_logs(
        &s.acct,
        &single,
        "algo-1-1700000000",
        now_ms(),
        &[(-2 * 3600 * 1000, "two hours ago"), (0, "just now")],
    ));
    let r = sb.run(&["logs", &single]).ok();
    assert_eq!(lines(&r.stdout), ["two hours ago", "just now"]);
    let r = sb.run(&["logs", &single, "--since", "1h"]).ok();
    assert_eq!(lines(&r.stdout), ["just now"]);
    // No streams at all is said, not an error.
    let quiet = name("logs-none");
    run(&sb, &train_args(&s, &quiet, &[])).ok();
    let r = sb.run(&["logs", &quiet]).ok();
    assert_eq!(r.stdout, "");
    r.stderr_has("has no log streams");
    // A job that does not exist is an error.
    sb.run(&["logs", "no-such-job-anywhere"])
        .code(4)
        .stderr_has("not found");
}

/// More lines than one GetLogEvents page holds (moto answers 10,000 at most): every line once,
/// in order.
#[test]
fn logs_across_several_pages_lose_and_repeat_nothing() {
    let s = seeded("us-east-1");
    let sb = sandbox(&s);
    let job = name("logs-pages");
    run(&sb, &train_args(&s, &job, &[])).ok();
    let total = 12_500usize;
    block_on(async {
        let c = logs_client(&s.acct);
        let group = "/aws/sagemaker/TrainingJobs";
        let _ = c.create_log_group().log_group_name(group).send().await;
        let stream = format!("{job}/algo-1-1700000000");
        c.create_log_stream()
            .log_group_name(group)
            .log_stream_name(&stream)
            .send()
            .await
            .unwrap();
        let base = now_ms() - 60_000;
        for chunk in (0..total).collect::<Vec<_>>().chunks(10_000) {
            let events = chunk
                .iter()
                .map(|i| {
                    aws_sdk_cloudwatchlogs::types::InputLogEvent::builder()
                        .timestamp(base + (*i as i64) / 4)
                        .message(format!("line {i}"))
                        .build()
                        .unwrap()
                })
                .collect();
            c.put_log_events()
                .log_group_name(group)
                .log_stream_name(&stream)
                .set_log_events(Some(events))
                .send()
                .await
                .unwrap();
        }
    });
    let r = sb.run(&["logs", &job]).ok();
    let got: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(got.len(), total);
    for (i, l) in got.iter().enumerate() {
        assert_eq!(*l, format!("line {i}"), "line {i}");
    }
}

#[test]
fn status_shows_the_job_and_omitting_it_means_the_projects_last_job() {
    let s = seeded("us-east-1");
    let sb = sandbox(&s);
    // The project is the folder of the sagetrain.toml in effect, even from a subfolder.
    sb.write(
        "project/sagetrain.toml",
        &format!(
            "role = \"SageMakerRole\"\nimage = \"unet-vessels\"\noutput_path = \"s3://{b}/models/\"\n\
             instance_type = \"ml.m5.xlarge\"\n[channels]\ntrain = \"s3://{b}/data/train/\"\n",
            b = s.bucket
        ),
    );
    let sub = sb.project().join("notebooks/deep");
    std::fs::create_dir_all(&sub).unwrap();
    let job = name("status");
    sb.run_in(&sub, &["train", "--name", &job, "--epochs", "3"])
        .ok();
    assert!(sb.project().join(".sagetrain/state.json").is_file());
    assert!(!sub.join(".sagetrain").exists());

    let r = sb.run_in(&sub, &["status"]).ok();
    let d = block_on(s.acct.describe(&job));
    let model = d.model_artifacts().unwrap().s3_model_artifacts().unwrap();
    assert!(
        r.stdout.contains(&format!("job        {job}")),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("status     Completed"), "{}", r.stdout);
    assert!(
        r.stdout.contains(&format!("model      {model}")),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("1 x ml.m5.xlarge, 30 GB volume"),
        "{}",
        r.stdout
    );
    assert!(r
        .stderr
        .contains("the last one submitted from this project"));

    let j = sb.run_in(&sub, &["status", "-o", "json"]).ok().json();
    assert_eq!(j["job_name"], job.as_str());
    assert_eq!(j["job_arn"], d.training_job_arn().unwrap());
    assert_eq!(j["status"], "Completed");
    assert_eq!(j["model_artifacts"], model);
    assert_eq!(j["instance_type"], "ml.m5.xlarge");
    assert_eq!(j["instance_count"], 1);
    assert_eq!(j["max_runtime_seconds"], 86400);
    assert_eq!(j["spot"], false);
    assert_eq!(j["spot_savings"], serde_json::Value::Null);
    assert!(j["creation_time"].as_str().unwrap().ends_with('Z'));

    // By name, from anywhere.
    let other = Sandbox::new();
    let mut other = other;
    s.acct.env(&mut other);
    let j = other.run(&["status", &job, "-o", "json"]).ok().json();
    assert_eq!(j["job_name"], job.as_str());
    // No job and no state: a usage error before any call.
    other
        .run(&["status"])
        .code(2)
        .stderr_has("no job given, and none was submitted from this project yet");
    other
        .run(&["status", "bad_name"])
        .code(2)
        .stderr_has("not a valid job name");
    other
        .run(&["status", "no-such-job-anywhere"])
        .code(4)
        .stderr_has("training job `no-such-job-anywhere` not found");
}

#[test]
fn list_is_newest_first_with_filters_and_json() {
    let s = seeded("us-east-1");
    let sb = sandbox(&s);
    let u = unique() % 1_000_000;
    let names = [
        format!("list-alpha-1-{u}"),
        format!("list-beta-{u}"),
        format!("list-alpha-2-{u}"),
    ];
    for n in &names {
        run(&sb, &train_args(&s, n, &[])).ok();
    }
    let listed = |args: &[&str]| -> Vec<String> {
        let mut a = vec!["list", "-o", "json"];
        a.extend_from_slice(args);
        let v = sb.run(&a).ok().json();
        v.as_array()
            .unwrap()
            .iter()
            .map(|j| j["job_name"].as_str().unwrap().to_string())
            .collect()
    };
    let newest_first: Vec<String> = names.iter().rev().cloned().collect();
    assert_eq!(listed(&[]), newest_first);
    assert_eq!(
        listed(&["--name-contains", "alpha"]),
        [names[2].clone(), names[0].clone()]
    );
    assert_eq!(listed(&["--status", "completed"]), newest_first);
    assert!(listed(&["--status", "Failed"]).is_empty());
    assert_eq!(listed(&["--max", "2"]).len(), 2);
    // Independent read: the account has exactly these jobs.
    let mut all = block_on(s.acct.job_names());
    all.sort();
    let mut expected = names.to_vec();
    expected.sort();
    assert_eq!(all, expected);

    let r = sb.run(&["list"]).ok();
    let l = lines(&r.stdout);
    assert!(l[0].starts_with("NAME"), "{}", r.stdout);
    assert!(
        l[0].contains("STATUS") && l[0].contains("CREATED"),
        "{}",
        r.stdout
    );
    assert!(l[1].starts_with(&names[2]), "{}", r.stdout);
    assert!(l[1].contains("Completed"), "{}", r.stdout);
    assert_eq!(l.len(), 4);

    // A wrong status is refused before any call (the endpoint here is dead).
    let mut dead = Sandbox::new();
    s.acct.env(&mut dead);
    dead.set("AWS_ENDPOINT_URL", &dead_endpoint());
    dead.run(&["list", "--status", "finished"])
        .code(2)
        .stderr_has("--status: `finished` is not a training job status");
    dead.run(&["list", "--max", "0"]).code(2);
}

// ---- Archives made byte by byte, so that unsafe entries can be written. ----

enum Entry<'a> {
    File(&'a str, &'a [u8]),
    Symlink(&'a str, &'a str),
}

fn targz(entries: &[Entry]) -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut b = tar::Builder::new(gz);
    for e in entries {
        let mut h = tar::Header::new_gnu();
        let (name, kind, data, link): (&str, tar::EntryType, &[u8], Option<&str>) = match e {
            Entry::File(n, d) => (n, tar::EntryType::Regular, d, None),
            Entry::Symlink(n, t) => (n, tar::EntryType::Symlink, b"", Some(t)),
        };
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        if let Some(t) = link {
            h.as_old_mut().linkname[..t.len()].copy_from_slice(t.as_bytes());
        }
        h.set_entry_type(kind);
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(1_700_000_000);
        h.set_cksum();
        b.append(&h, data).unwrap();
    }
    b.into_inner().unwrap().finish().unwrap()
}

async fn put(a: &Account, bucket: &str, key: &str, body: Vec<u8>) {
    a.s3()
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(aws_sdk_s3::primitives::ByteStream::from(body))
        .send()
        .await
        .expect("s3:PutObject");
}

fn tree(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, d: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(d).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            out.push(p.strip_prefix(base).unwrap().display().to_string());
            if e.file_type().unwrap().is_dir() {
                walk(base, &p, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

#[test]
fn download_extract_writes_the_model_and_prints_the_paths() {
    let s = seeded("us-east-1");
    let sb = sandbox(&s);
    let job = name("download");
    run(&sb, &train_args(&s, &job, &[])).ok();
    let model = targz(&[
        Entry::File("model.pt", b"unet weights v1"),
        Entry::File("config/params.json", b"{\"features\": 32}"),
    ]);
    let output = targz(&[Entry::File("metrics.json", b"{\"val_dice\": 0.81}")]);
    block_on(async {
        put(
            &s.acct,
            &s.bucket,
            &format!("models/{job}/output/model.tar.gz"),
            model.clone(),
        )
        .await;
        put(
            &s.acct,
            &s.bucket,
            &format!("models/{job}/output/output.tar.gz"),
            output,
        )
        .await;
    });
    let r = sb
        .run(&["download", &job, "--dir", "out", "--extract", "--all"])
        .ok();
    let out = sb.project().join("out");
    let p = |rel: &str| out.join(rel).display().to_string();
    assert_eq!(
        lines(&r.stdout),
        [
            p("model.tar.gz"),
            p("output.tar.gz"),
            p("model.pt"),
            p("config/params.json"),
            p("output/metrics.json"),
        ]
    );
    assert_eq!(
        std::fs::read(out.join("model.pt")).unwrap(),
        b"unet weights v1"
    );
    assert_eq!(
        std::fs::read(out.join("config/params.json")).unwrap(),
        b"{\"features\": 32}"
    );
    assert_eq!(
        std::fs::read(out.join("output/metrics.json")).unwrap(),
        b"{\"val_dice\": 0.81}"
    );
    assert_eq!(std::fs::read(out.join("model.tar.gz")).unwrap(), model);

    // Defaults: ./JOB, the archive only; JOB omitted = the project's last job; JSON.
    let j = sb.run(&["download", "-o", "json"]).ok().json();
    let dir = sb.project().join(&job);
    assert_eq!(j["dir"], dir.display().to_string().as_str());
    assert_eq!(
        j["archives"],
        serde_json::json!([dir.join("model.tar.gz").display().to_string()])
    );
    assert_eq!(j["extracted"], serde_json::json!([]));
    assert_eq!(std::fs::read(dir.join("model.tar.gz")).unwrap(), model);
    assert_eq!(tree(&dir), ["model.tar.gz"]);

    // A job whose model is not there.
    let missing = name("download-missing");
    run(&sb, &train_args(&s, &missing, &[])).ok();
    sb.run(&["download", &missing])
        .code(4)
        .stderr_has("does not exist");
}

#[test]
fn extract_refuses_archives_that_would_write_outside_the_folder() {
    let s = seeded("us-east-1");
    let sb = sandbox(&s);
    let job = name("unsafe");
    run(&sb, &train_args(&s, &job, &[])).ok();
    let abs = format!("/tmp/sagetrain-e2e-escape-{}.txt", unique());
    let cases: Vec<(Vec<Entry>, String)> = vec![
        (
            vec![
                Entry::File("model.pt", b"w"),
                Entry::File("../escaped.txt", b"x"),
            ],
            "the entry `../escaped.txt` has a `..` component".to_string(),
        ),
        (
            vec![Entry::File("model.pt", b"w"), Entry::File(&abs, b"x")],
            format!("the entry `{abs}` is an absolute path"),
        ),
        (
            vec![Entry::Symlink("weights", "../../../etc/passwd")],
            "the entry `weights` is a link to `../../../etc/passwd`, outside the folder"
                .to_string(),
        ),
    ];
    for (entries, expected) in cases {
        block_on(put(
            &s.acct,
            &s.bucket,
            &format!("models/{job}/output/model.tar.gz"),
            targz(&entries),
        ));
        let r = sb
            .run(&["download", &job, "--dir", "dl/model", "--extract"])
            .code(2);
        assert!(r.stderr.contains(&expected), "{expected}\n{}", r.stderr);
        let r = r.stderr_has("nothing was extracted");
        // Nothing written outside the folder, nor inside it but the archive itself.
        assert_eq!(
            tree(&sb.project()),
            [
                ".sagetrain",
                ".sagetrain/.gitignore",
                ".sagetrain/state.json",
                "dl",
                "dl/model",
                "dl/model/model.tar.gz"
            ]
        );
        assert!(!Path::new(&abs).exists());
        assert!(r.stdout.is_empty(), "{}", r.stdout);
    }
}

#[test]
fn train_from_copies_the_old_jobs_settings_and_flags_override_them() {
    let s = seeded("us-east-1");
    let other_role = block_on(s.acct.role("OtherSageMakerRole", "/", true));
    let mut sb = sandbox(&s);
    let a = name("from-a");
    let train = format!("s3://{}/data/train/", s.bucket);
    let validation = format!("s3://{}/data/validation/", s.bucket);
    sb.run(&[
        "train",
        "--name",
        &a,
        "--epochs",
        "50",
        "-H",
        "learning_rate=0.0001",
        "--role",
        "SageMakerRole",
        "--image",
        "unet-vessels",
        "--train",
        &train,
        "--validation",
        &validation,
        "--tag",
        "project=vessels",
        "--instance-type",
        "ml.p3.2xlarge",
        "--instance-count",
        "2",
        "--volume-size",
        "50",
        "--max-run",
        "2h",
        "--output-path",
        &format!("s3://{}/models/", s.bucket),
    ])
    .ok();
    let da = block_on(s.acct.describe(&a));

    // The environment and the project file say otherwise: the job wins over them, the flags
    // win over the job.
    sb.set("SAGEMAKER_ROLE", "OtherSageMakerRole");
    sb.write(
        "project/sagetrain.toml",
        "instance_type = \"ml.m5.xlarge\"\n[hyperparameters]\nbatch_size = 8\n[tags]\nteam = \"retina\"\n",
    );
    let b = name("from-b");
    let r = sb
        .run(&[
            "train",
            "--from",
            &a,
            "--name",
            &b,
            "--epochs",
            "99",
            "--instance-count",
            "3",
            "-o",
            "json",
        ])
        .ok();
    assert_eq!(r.json()["job_name"], b.as_str());
    let r = r.stderr_has(&format!("starting from job {a}"));
    r.stderr_has("replace these from the environment or sagetrain.toml: role (env SAGEMAKER_ROLE), instance_type (file ");

    let db = block_on(s.acct.describe(&b));
    assert_eq!(db.role_arn(), da.role_arn());
    assert_eq!(db.role_arn(), Some(s.role_arn.as_str()));
    assert_ne!(db.role_arn(), Some(other_role.as_str()));
    assert_eq!(
        db.algorithm_specification().unwrap().training_image(),
        da.algorithm_specification().unwrap().training_image()
    );
    let hp: BTreeMap<String, String> = db
        .hyper_parameters()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    assert_eq!(
        hp,
        BTreeMap::from([
            ("epochs".to_string(), "99".to_string()),
            ("learning_rate".to_string(), "0.0001".to_string()),
        ])
    );
    let channels = |d: &aws_sdk_sagemaker::operation::describe_training_job::DescribeTrainingJobOutput| -> BTreeMap<String, String> {
        d.input_data_config()
            .iter()
            .map(|c| {
                (
                    c.channel_name().unwrap().to_string(),
                    c.data_source().unwrap().s3_data_source().unwrap().s3_uri().unwrap().to_string(),
                )
            })
            .collect()
    };
    assert_eq!(channels(&db), channels(&da));
    assert_eq!(channels(&db).len(), 2);
    assert_eq!(
        db.output_data_config().unwrap().s3_output_path(),
        da.output_data_config().unwrap().s3_output_path()
    );
    let rc = db.resource_config().unwrap();
    assert_eq!(rc.instance_type().unwrap().as_str(), "ml.p3.2xlarge");
    assert_eq!(rc.instance_count(), Some(3));
    assert_eq!(rc.volume_size_in_gb(), Some(50));
    assert_eq!(
        db.stopping_condition().unwrap().max_runtime_in_seconds(),
        Some(7200)
    );
    assert_eq!(
        block_on(s.acct.tags(db.training_job_arn().unwrap())),
        vec![("project".to_string(), "vessels".to_string())]
    );

    // Metric definitions: moto replaces them on create, so check the request itself.
    let req = sb.run(&["train", "--from", &a, "--dry-run"]).ok().json();
    let metrics: Vec<(String, String)> = da
        .algorithm_specification()
        .unwrap()
        .metric_definitions()
        .iter()
        .map(|m| {
            (
                m.name().unwrap().to_string(),
                m.regex().unwrap().to_string(),
            )
        })
        .collect();
    assert!(!metrics.is_empty());
    let sent: Vec<(String, String)> = req["AlgorithmSpecification"]["MetricDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["Name"].as_str().unwrap().to_string(),
                m["Regex"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(sent, metrics);

    // A job that does not exist: nothing is created.
    let before = block_on(s.acct.job_names()).len();
    sb.run(&["train", "--from", "no-such-job-anywhere"])
        .code(4)
        .stderr_has("training job `no-such-job-anywhere` not found");
    assert_eq!(block_on(s.acct.job_names()).len(), before);
    sb.run(&["train", "--from", &a, "--offline"]).code(2);
}

// ---- Against the loopback stand-in: what moto cannot do. ----

pub(crate) fn fake_sandbox(url: &str) -> Sandbox {
    let mut sb = Sandbox::new();
    sb.set("AWS_ACCESS_KEY_ID", FAKE_KEY_ID)
        .set("AWS_SECRET_ACCESS_KEY", FAKE_SECRET)
        .set("AWS_REGION", "us-east-1")
        .set("AWS_ENDPOINT_URL", url)
        .set("AWS_MAX_ATTEMPTS", "1")
        .set("SAGETRAIN_POLL_INTERVAL", "50ms");
    sb
}

pub(crate) const TRAINING: (&str, &str) = (
    "Training",
    "Training image download completed. Training in progress.",
);

/// The stand-in, with a job that Failed (CUDA out of memory).
fn failed_job() -> fake_sagemaker::FakeSageMaker {
    fake_sagemaker::start(
        job_json(
            "unet-failed",
            "Failed",
            "Failed",
            &[TRAINING, ("Failed", "Training job failed")],
            Some("AlgorithmError: ExecuteUserScriptError: CUDA out of memory"),
        ),
        Stop::Accept,
    )
}

#[test]
fn wait_exit_codes_follow_the_verdict() {
    let failed = failed_job();
    let sb = fake_sandbox(&failed.url);
    let r = sb.run(&["wait", "unet-failed"]).code(5);
    let r = r.stderr_has("CUDA out of memory");
    assert!(
        r.stdout.contains("failure reason  AlgorithmError"),
        "{}",
        r.stdout
    );

    let stopped = fake_sagemaker::start(
        job_json(
            "unet-maxrun",
            "Stopped",
            "MaxRuntimeExceeded",
            &[
                TRAINING,
                (
                    "MaxRuntimeExceeded",
                    "Training job runtime exceeded MaxRuntimeInSeconds provided",
                ),
            ],
            None,
        ),
        Stop::Accept,
    );
    let sb = fake_sandbox(&stopped.url);
    let r = sb.run(&["wait", "unet-maxrun", "-o", "json"]).code(6);
    let r = r.stderr_has("maximum run time");
    let r = r.stderr_has("--max-run");
    assert_eq!(r.json()["secondary_status"], "MaxRuntimeExceeded");
    assert!(stopped.calls_to("StopTrainingJob").is_empty());
}

/// The end of `wait` (and `status`) shows where the time went, from SecondaryStatusTransitions,
/// and the warm pool: what the emulator does not give.
#[test]
fn the_end_of_wait_shows_the_phases_and_the_warm_pool() {
    let mut job = job_json("unet-done", "Completed", "Completed", &[], None);
    let t0 = 1_800_000_000.0;
    job["SecondaryStatusTransitions"] = serde_json::json!([
        {"Status": "Starting", "StatusMessage": "Preparing the instances for training", "StartTime": t0, "EndTime": t0 + 130.0},
        {"Status": "Downloading", "StatusMessage": "Downloading input data", "StartTime": t0 + 130.0, "EndTime": t0 + 165.0},
        {"Status": "Training", "StatusMessage": "Training in progress.", "StartTime": t0 + 165.0},
        {"Status": "Uploading", "StatusMessage": "Uploading generated training model", "StartTime": t0 + 995.0, "EndTime": t0 + 1000.0},
        {"Status": "Completed", "StatusMessage": "Training job completed", "StartTime": t0 + 1000.0, "EndTime": t0 + 1000.0},
    ]);
    job["ResourceConfig"]["KeepAlivePeriodInSeconds"] = serde_json::json!(1800);
    job["WarmPoolStatus"] =
        serde_json::json!({"Status": "Available", "ResourceRetainedBillableTimeInSeconds": 60});
    let fake = fake_sagemaker::start(job, Stop::Accept);
    let sb = fake_sandbox(&fake.url);
    let r = sb.run(&["wait", "unet-done"]).ok();
    assert!(
        r.stdout
            .contains("Starting 2m10s, Downloading 35s, Training 13m50s, Uploading 5s"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("Available, 1m retained billable"),
        "{}",
        r.stdout
    );
    let j = sb.run(&["status", "unet-done", "-o", "json"]).ok().json();
    assert_eq!(
        j["phases"][2],
        serde_json::json!({"status": "Training", "seconds": 830})
    );
    assert_eq!(j["warm_pool"]["status"], "Available");
    assert_eq!(j["keep_alive_seconds"], 1800);
}

#[test]
fn timeout_exits_7_and_the_job_keeps_running() {
    let fake = fake_sagemaker::start(
        job_json("unet-long", "InProgress", "Training", &[TRAINING], None),
        Stop::Accept,
    );
    let sb = fake_sandbox(&fake.url);
    let r = sb
        .run(&["wait", "unet-long", "--timeout", "1s", "-o", "json"])
        .code(7);
    assert!(r.elapsed < Duration::from_secs(10), "{:?}", r.elapsed);
    assert!(
        r.stderr
            .contains("gave up waiting for training job `unet-long` after 1s"),
        "{}",
        r.stderr
    );
    let r = r.stderr_has("sagetrain stop unet-long");
    assert_eq!(r.json()["status"], "InProgress", "the last known status");
    assert!(fake.calls_to("DescribeTrainingJob").len() >= 2);
    assert!(
        fake.calls_to("StopTrainingJob").is_empty(),
        "a timeout does not stop the job"
    );
    sb.run(&["wait", "unet-long", "--timeout", "soon"])
        .code(2)
        .stderr_has("--timeout");
    // One duration syntax for every setting: a fraction of a second too, as for --read-timeout.
    sb.run(&["wait", "unet-long", "--timeout", "1.5"])
        .code(7)
        .stderr_has("after 1.5s (--timeout)");
    sb.run(&["wait", "unet-long", "--timeout", "0"])
        .code(2)
        .stderr_has("--timeout: must be more than 0");
}

/// `--poll-interval` (a user setting; the tests' fast polling is the same setting through
/// SAGETRAIN_POLL_INTERVAL): the flag wins over the variable, and is checked before any call.
#[test]
fn poll_interval_fixes_the_polling_period() {
    let fake = fake_sagemaker::start(
        job_json("unet-long", "InProgress", "Training", &[TRAINING], None),
        Stop::Accept,
    );
    let mut sb = fake_sandbox(&fake.url);
    sb.set("SAGETRAIN_POLL_INTERVAL", "10m");
    sb.run(&[
        "wait",
        "unet-long",
        "--timeout",
        "1s",
        "--poll-interval",
        "100ms",
    ])
    .code(7);
    let polls = fake.calls_to("DescribeTrainingJob").len();
    assert!(polls >= 5, "every 100ms for 1s: {polls} polls");
    let before = fake.calls_to("DescribeTrainingJob").len();
    sb.run(&["wait", "unet-long", "--poll-interval", "0"])
        .code(2)
        .stderr_has("--poll-interval: must be more than 0");
    sb.set("SAGETRAIN_POLL_INTERVAL", "often");
    sb.run(&["wait", "unet-long"])
        .code(2)
        .stderr_has("SAGETRAIN_POLL_INTERVAL: `often` is not a duration");
    assert_eq!(
        fake.calls_to("DescribeTrainingJob").len(),
        before,
        "no call"
    );
}

/// Run sagetrain, wait for `ready` on its stderr, send it `signal` (`-INT`, `-TERM`), and
/// return what it printed.
fn interrupt(sb: &Sandbox, args: &[&str], ready: &str, signal: &str) -> Run {
    let start = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_sagetrain"))
        .args(args)
        .current_dir(sb.project())
        .env_clear()
        .envs(sb.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let err = Arc::new(Mutex::new(String::new()));
    let mut pipe = child.stderr.take().unwrap();
    let e = err.clone();
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = pipe.read(&mut buf) {
            if n == 0 {
                break;
            }
            e.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    while !err.lock().unwrap().contains(ready) {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "never printed {ready:?}:\n{}",
            err.lock().unwrap()
        );
        if let Some(status) = child.try_wait().unwrap() {
            panic!("ended early ({status}):\n{}", err.lock().unwrap());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let ok = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
    let out = child.wait_with_output().unwrap();
    reader.join().unwrap();
    let stderr = err.lock().unwrap().clone();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr,
        elapsed: start.elapsed(),
    }
}

/// Ctrl-C, and SIGTERM (a CI runner cancelling, `timeout`, Kubernetes) the same way: the wait
/// detaches and says how to re-attach or stop, or with --stop-on-interrupt stops the job; exit
/// 130 for SIGINT, 143 for SIGTERM.
#[test]
fn ctrl_c_detaches_or_with_stop_on_interrupt_stops_the_job() {
    for (signal, code, named) in [("-INT", 130, "Ctrl-C"), ("-TERM", 143, "SIGTERM")] {
        let fake = fake_sagemaker::start(
            job_json("unet-running", "InProgress", "Training", &[TRAINING], None),
            Stop::Accept,
        );
        let sb = fake_sandbox(&fake.url);
        let r = interrupt(
            &sb,
            &["wait", "unet-running"],
            "InProgress / Training",
            signal,
        );
        assert_eq!(r.code, code, "{}", r.stderr);
        assert!(
            r.stderr.contains(&format!(
                "stopped waiting ({named}); training job `unet-running` keeps running"
            )),
            "{}",
            r.stderr
        );
        let r = r.stderr_has("re-attach: sagetrain wait unet-running");
        r.stderr_has("sagetrain stop unet-running");
        assert!(
            fake.calls_to("StopTrainingJob").is_empty(),
            "detached, not stopped"
        );

        let r = interrupt(
            &sb,
            &["wait", "unet-running", "--stop-on-interrupt", "-o", "json"],
            "InProgress / Training",
            signal,
        );
        assert_eq!(r.code, code, "{}", r.stderr);
        let r = r.stderr_has(&format!(
            "interrupted ({named}): asked SageMaker to stop training job `unet-running`"
        ));
        assert_eq!(r.json()["status"], "InProgress", "the last known status");
        let stops = fake.calls_to("StopTrainingJob");
        assert_eq!(stops.len(), 1);
        let body: serde_json::Value = serde_json::from_str(&stops[0]).unwrap();
        assert_eq!(body["TrainingJobName"], "unet-running");
    }
}

#[test]
fn stop_requests_a_stop_and_a_finished_job_is_not_an_error() {
    let running = fake_sagemaker::start(
        job_json("unet-running", "InProgress", "Training", &[TRAINING], None),
        Stop::Accept,
    );
    let sb = fake_sandbox(&running.url);
    let r = sb.run(&["stop", "unet-running"]).ok();
    assert_eq!(
        r.stdout.trim(),
        "training job unet-running: stop requested (InProgress)"
    );
    assert_eq!(running.calls_to("StopTrainingJob").len(), 1);

    // Already stopping: reported, not asked again.
    let stopping = fake_sagemaker::start(
        job_json("unet-stopping", "Stopping", "Stopping", &[TRAINING], None),
        Stop::Accept,
    );
    let sb = fake_sandbox(&stopping.url);
    let r = sb.run(&["stop", "unet-stopping"]).ok();
    assert!(
        r.stdout
            .starts_with("training job unet-stopping is already stopping (Stopping"),
        "{}",
        r.stdout
    );
    assert!(stopping.calls_to("StopTrainingJob").is_empty());

    let done = fake_sagemaker::start(
        job_json("unet-done", "Completed", "Completed", &[], None),
        Stop::AlreadyIn("Completed"),
    );
    let sb = fake_sandbox(&done.url);
    let r = sb.run(&["stop", "unet-done"]).ok();
    assert_eq!(
        r.stdout.trim(),
        "training job unet-done had already ended (Completed); nothing to stop"
    );
    assert!(!r.stderr.contains("error"), "{}", r.stderr);
    let j = sb.run(&["stop", "unet-done", "-o", "json"]).ok().json();
    assert_eq!(
        j,
        serde_json::json!({"job_name": "unet-done", "stop_requested": false, "status": "Completed"})
    );
    // The job was described, and no stop was sent.
    assert_eq!(
        done.targets(),
        [
            "SageMaker.DescribeTrainingJob",
            "SageMaker.DescribeTrainingJob"
        ]
    );
    sb.run(&["stop", "bad_name"]).code(2);
}

// ---- GitHub Actions: step summary and annotations. ----

/// A sandbox that looks like a GitHub Actions step, with its summary file (holding an earlier
/// step's text, which must stay).
fn in_actions(sb: &mut Sandbox) -> std::path::PathBuf {
    let summary = sb.dir.path().join("step_summary.md");
    std::fs::write(&summary, "# earlier step\n").unwrap();
    sb.set("GITHUB_ACTIONS", "true")
        .set("GITHUB_STEP_SUMMARY", summary.to_str().unwrap());
    summary
}

#[test]
fn in_github_actions_wait_writes_a_step_summary_and_annotates_a_failure() {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let mut done = job_json(
        "unet-done",
        "Completed",
        "Completed",
        &[TRAINING, ("Completed", "Training job completed")],
        None,
    );
    done["TrainingEndTime"] = serde_json::json!(now - 10.0);
    done["TrainingTimeInSeconds"] = serde_json::json!(2652);
    done["BillableTimeInSeconds"] = serde_json::json!(2652);
    done["ModelArtifacts"] =
        serde_json::json!({"S3ModelArtifacts": "s3://bucket/out/unet-done/output/model.tar.gz"});
    done["FinalMetricDataList"] = serde_json::json!([
        {"MetricName": "val:dice", "Value": 0.8125, "Timestamp": now - 10.0},
        {"MetricName": "train:loss", "Value": 0.9, "Timestamp": now - 10.0},
    ]);
    let fake = fake_sagemaker::start(done, Stop::Accept);
    let mut sb = fake_sandbox(&fake.url);
    let summary = in_actions(&mut sb);
    let r = sb.run(&["wait", "unet-done"]).ok();
    assert!(!r.stderr.contains("::error"), "{}", r.stderr);
    assert!(
        !r.stdout.contains("###"),
        "the summary is not the result: {}",
        r.stdout
    );
    let md = std::fs::read_to_string(&summary).unwrap();
    assert!(
        md.starts_with("# earlier step\n### ✅ SageMaker training job `unet-done`\n"),
        "{md}"
    );
    for want in [
        "| Job | [`unet-done`](https://us-east-1.console.aws.amazon.com/sagemaker/home?region=us-east-1#/jobs/unet-done) |",
        "| Verdict | Completed |",
        "| Duration | 1m50s (",
        "| Training time | 44m12s |",
        "| Billable time | 44m12s |",
        "| Instances | 1 × ml.g5.xlarge |",
        "| Model | `s3://bucket/out/unet-done/output/model.tar.gz` |",
        "| val:dice | 0.8125 |",
        "| train:loss | 0.9 |",
    ] {
        assert!(md.contains(want), "{want:?} not in:\n{md}");
    }

    // A failed job: the summary says why, and an error annotation names it.
    let failed = failed_job();
    let mut sb = fake_sandbox(&failed.url);
    let summary = in_actions(&mut sb);
    let r = sb.run(&["wait", "unet-failed", "-o", "json"]).code(5);
    assert!(
        r.stderr.lines().any(|l| l
            == "::error title=SageMaker training job unet-failed failed::training job `unet-failed` \
                failed: AlgorithmError: ExecuteUserScriptError: CUDA out of memory \
                (logs: sagetrain logs unet-failed)"),
        "{}",
        r.stderr
    );
    assert_eq!(r.json()["status"], "Failed", "stdout stays the JSON result");
    let md = std::fs::read_to_string(&summary).unwrap();
    assert!(
        md.contains("### ❌ SageMaker training job `unet-failed`"),
        "{md}"
    );
    assert!(
        md.contains(
            "| Verdict | Failed: AlgorithmError: ExecuteUserScriptError: CUDA out of memory |"
        ),
        "{md}"
    );
    assert!(md.contains("| Model | none |"), "{md}");

    // Outside GitHub Actions (the variable unset, or not `true`): nothing written or annotated,
    // even with a summary path in the environment.
    for value in [None, Some("false")] {
        let mut sb = fake_sandbox(&failed.url);
        let summary = in_actions(&mut sb);
        match value {
            None => sb.unset("GITHUB_ACTIONS"),
            Some(v) => sb.set("GITHUB_ACTIONS", v),
        };
        let r = sb.run(&["wait", "unet-failed"]).code(5);
        assert!(!r.stderr.contains("::error"), "{}", r.stderr);
        assert_eq!(
            std::fs::read_to_string(&summary).unwrap(),
            "# earlier step\n"
        );
    }
}

#[test]
fn in_github_actions_train_wait_summarises_the_job_it_created() {
    let s = seeded("us-east-1");
    let mut sb = sandbox(&s);
    let summary = in_actions(&mut sb);
    let job = name("gh-summary");
    let r = run(&sb, &train_args(&s, &job, &["--wait"])).ok();
    assert!(!r.stderr.contains("::error"), "{}", r.stderr);
    let md = std::fs::read_to_string(&summary).unwrap();
    assert!(
        md.starts_with(&format!(
            "# earlier step\n### ✅ SageMaker training job `{job}`\n"
        )),
        "{md}"
    );
    assert!(md.contains("| Verdict | Completed |"), "{md}");
    // Independent read: the model URI in the summary is the job's.
    let d = block_on(s.acct.describe(&job));
    let model = d.model_artifacts().unwrap().s3_model_artifacts().unwrap();
    assert!(md.contains(&format!("| Model | `{model}` |")), "{md}");
}
