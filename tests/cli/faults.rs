//! `sagetrain train` under faults: a fault-injecting proxy ([`crate::proxy`]) between the
//! binary and moto. Every result is checked with an independent read on moto directly.

use crate::harness::*;
use crate::proxy::{Fault, Pick, Proxy, Rule};
use std::time::Duration;

/// A sandbox whose AWS requests go through `proxy`.
fn sandbox(s: &Seeded, proxy: &Proxy) -> Sandbox {
    let mut sb = Sandbox::new();
    s.acct.env(&mut sb);
    sb.set("AWS_ENDPOINT_URL", &proxy.url);
    sb
}

/// `train` with every value resolved by lookup: role by name, image by repo:tag, the default
/// bucket, and two channels to check.
pub fn train_args<'a>(s: &'a Seeded, base: &'a str, extra: &[&'a str]) -> Vec<String> {
    let mut a: Vec<String> = [
        "train",
        "--epochs",
        "50",
        "--role",
        "SageMakerRole",
        "--image",
        "unet-vessels:latest",
    ]
    .iter()
    .map(|x| x.to_string())
    .collect();
    if !extra.contains(&"--name") {
        a.push("--base-name".into());
        a.push(base.into());
    }
    a.push("--train".into());
    a.push(format!("s3://{}/data/train/", s.bucket));
    a.push("--validation".into());
    a.push(format!("s3://{}/data/validation/", s.bucket));
    a.extend(extra.iter().map(|x| x.to_string()));
    a
}

pub fn run(sb: &Sandbox, args: &[String]) -> Run {
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    sb.run(&refs)
}

/// Jobs whose names start with `prefix`, by ListTrainingJobs on moto directly.
fn jobs_named(s: &Seeded, prefix: &str) -> Vec<String> {
    block_on(s.acct.job_names())
        .into_iter()
        .filter(|n| n.starts_with(prefix))
        .collect()
}

fn default_bucket(s: &Seeded) -> String {
    format!("sagemaker-us-east-1-{}", s.acct.id)
}

#[test]
fn with_30_percent_of_requests_failing_train_still_creates_exactly_one_job() {
    let s = seeded("us-east-1");
    // 500, 503 and throttling errors in turn for about 30% of the requests (a seeded PRNG), never
    // more than twice in a row for the same request: transient faults that 3 attempts get through.
    let proxy = Proxy::with_rules(
        &moto_url(),
        vec![Rule::new(
            Fault::Transient,
            Pick::Percent {
                percent: 30,
                seed: 13,
            },
        )
        .max_in_a_row(2)],
    );
    let sb = sandbox(&s, &proxy);
    let r = run(&sb, &train_args(&s, "flaky", &["-o", "json"])).ok();
    let name = r.json()["job_name"].as_str().unwrap().to_string();

    let jobs = jobs_named(&s, "flaky-");
    assert_eq!(jobs, vec![name.clone()], "exactly one job");
    let d = block_on(s.acct.describe(&name));
    assert_eq!(d.role_arn(), Some(s.role_arn.as_str()));
    assert!(block_on(s.acct.bucket_exists(&default_bucket(&s))));

    let faults = proxy.faults();
    eprintln!(
        "30% transient faults: {} requests, {faults} of them answered with a fault and retried ({:?}); {:?}",
        proxy.total(),
        proxy
            .requests()
            .iter()
            .filter_map(|e| e.fault.clone().map(|f| format!("{} {f}", e.op)))
            .collect::<Vec<_>>(),
        proxy.counts()
    );
    assert!(
        faults >= 2,
        "the test must inject faults: {:?}",
        proxy.requests()
    );
    // Every fault was followed by a retry of the same operation that got through, but for the
    // quota and price lookups, which are best effort (one attempt; a failure is a warning).
    let log = proxy.requests();
    for (i, e) in log.iter().enumerate() {
        if e.fault.is_some() && !e.op.contains("ServiceQuota") && e.op != "GetProducts" {
            assert!(
                log[i + 1..]
                    .iter()
                    .any(|l| l.op == e.op && l.fault.is_none() && l.status != 0),
                "{} was not retried: {log:?}",
                e.op
            );
        }
    }
}

#[test]
fn a_create_whose_response_is_lost_is_reconciled_into_one_job() {
    let s = seeded("us-east-1");
    // The first CreateTrainingJob is forwarded (moto creates the job) and its answer dropped.
    let proxy = Proxy::with_rules(
        &moto_url(),
        vec![Rule::new(Fault::Drop, Pick::First(1)).only("CreateTrainingJob")],
    );
    let sb = sandbox(&s, &proxy);
    let r = run(&sb, &train_args(&s, "lost", &["-o", "json"])).ok();
    let name = r.json()["job_name"].as_str().unwrap().to_string();
    let r = r.stderr_has("reconciled");
    let r = r.stderr_has(&name);

    assert_eq!(
        jobs_named(&s, "lost-"),
        vec![name.clone()],
        "exactly one job"
    );
    let d = block_on(s.acct.describe(&name));
    assert_eq!(r.json()["job_arn"].as_str(), d.training_job_arn());
    // The retry met ResourceInUse and the existing job was described and compared.
    assert_eq!(
        proxy.count_op("CreateTrainingJob"),
        2,
        "{:?}",
        proxy.requests()
    );
    assert_eq!(
        proxy.count_op("DescribeTrainingJob"),
        1,
        "{:?}",
        proxy.requests()
    );
    let outcomes: Vec<Option<String>> = proxy
        .requests()
        .into_iter()
        .filter(|e| e.op == "CreateTrainingJob")
        .map(|e| e.fault)
        .collect();
    assert_eq!(
        outcomes,
        vec![Some("drop".to_string()), Some("ResourceInUse".to_string())]
    );
}

#[test]
fn a_duplicate_name_that_is_not_our_job_is_refused_not_reconciled() {
    let s = seeded("us-east-1");
    let proxy = Proxy::with_rules(&moto_url(), vec![]);
    let sb = sandbox(&s, &proxy);
    let first = run(
        &sb,
        &train_args(&s, "x", &["--name", "dup-job", "-o", "json"]),
    )
    .ok();
    assert_eq!(first.json()["job_name"], "dup-job");
    // The same name with another request: the service's ResourceInUse, exit 4, nothing changed.
    let r = run(
        &sb,
        &train_args(&s, "x", &["--name", "dup-job", "--epochs", "7"]),
    )
    .code(4)
    .stderr_has("ResourceInUse");
    assert!(!r.stderr.contains("reconciled"), "{}", r.stderr);
    let d = block_on(s.acct.describe("dup-job"));
    assert_eq!(
        d.hyper_parameters()
            .unwrap()
            .get("epochs")
            .map(String::as_str),
        Some("50"),
        "the first job is untouched"
    );
}

#[test]
fn when_every_request_fails_the_run_gives_up_within_its_retry_budget() {
    let s = seeded("us-east-1");
    let proxy = Proxy::with_rules(&moto_url(), vec![Rule::new(Fault::Transient, Pick::All)]);
    let sb = sandbox(&s, &proxy);
    let r = run(&sb, &train_args(&s, "doomed", &[]));
    eprintln!(
        "every request failing: gave up after {:.2}s with exit {}; {:?}",
        r.elapsed.as_secs_f64(),
        r.code,
        proxy.counts()
    );
    assert!(
        r.code == 4 || r.code == 3,
        "exit 4 (or 3): {}\n{}",
        r.code,
        r.stderr
    );
    assert!(r.stdout.is_empty(), "{}", r.stdout);
    assert!(
        r.stderr.contains("sts:GetCallerIdentity"),
        "names what failed: {}",
        r.stderr
    );
    assert!(
        r.stderr.contains("hint:") || r.stderr.contains("try again"),
        "says what to do: {}",
        r.stderr
    );
    // Standard retry mode: 3 attempts of each request, with backoff of at most 1 s + 2 s.
    assert!(r.elapsed < Duration::from_secs(20), "{:?}", r.elapsed);
    assert_eq!(
        proxy.count_op("GetCallerIdentity"),
        3,
        "{:?}",
        proxy.counts()
    );
    assert_eq!(proxy.count_op("BatchGetImage"), 3, "{:?}", proxy.counts());
    // Nothing was created half-way.
    assert_eq!(proxy.count_op("CreateTrainingJob"), 0);
    assert!(jobs_named(&s, "").is_empty());
    assert!(!block_on(s.acct.bucket_exists(&default_bucket(&s))));
}

/// A proxy that fails every request, for counting attempts.
fn attempts_of_get_caller_identity(setup: impl FnOnce(&mut Sandbox)) -> (Run, usize) {
    let proxy = Proxy::with_rules(&moto_url(), vec![Rule::new(Fault::Status503, Pick::All)]);
    let mut sb = Sandbox::new();
    sb.set("AWS_ACCESS_KEY_ID", FAKE_KEY_ID)
        .set("AWS_SECRET_ACCESS_KEY", FAKE_SECRET)
        .set("AWS_REGION", "us-east-1")
        .set("AWS_ENDPOINT_URL", &proxy.url);
    setup(&mut sb);
    let r = sb.run(&[
        "train",
        "--role",
        "arn:aws:iam::111122223333:role/R",
        "--image",
        "111122223333.dkr.ecr.us-east-1.amazonaws.com/unet@sha256:0000000000000000000000000000000000000000000000000000000000000000",
        "--output-path",
        "s3://bench-bucket/out/",
        "--dry-run",
    ]);
    (r, proxy.count_op("GetCallerIdentity"))
}

#[test]
fn aws_max_attempts_and_the_profiles_max_attempts_are_honoured() {
    let (r, n) = attempts_of_get_caller_identity(|_| {});
    assert_eq!(n, 3, "default: standard mode, 3 attempts\n{}", r.stderr);
    assert_eq!(r.code, 4, "{}", r.stderr);

    let (r, n) = attempts_of_get_caller_identity(|sb| {
        sb.set("AWS_MAX_ATTEMPTS", "1");
    });
    assert_eq!(n, 1, "AWS_MAX_ATTEMPTS=1\n{}", r.stderr);
    assert_eq!(r.code, 4, "{}", r.stderr);

    let (r, n) = attempts_of_get_caller_identity(|sb| {
        sb.write("home/.aws/config", "[default]\nmax_attempts = 2\n");
    });
    assert_eq!(n, 2, "max_attempts = 2 in the profile\n{}", r.stderr);

    // The environment wins over the profile, as in every AWS tool.
    let (r, n) = attempts_of_get_caller_identity(|sb| {
        sb.write("home/.aws/config", "[default]\nmax_attempts = 2\n");
        sb.set("AWS_MAX_ATTEMPTS", "4");
    });
    assert_eq!(n, 4, "AWS_MAX_ATTEMPTS over the profile\n{}", r.stderr);

    let (r, n) = attempts_of_get_caller_identity(|sb| {
        sb.set("AWS_RETRY_MODE", "adaptive")
            .set("AWS_MAX_ATTEMPTS", "2");
    });
    assert_eq!(n, 2, "adaptive mode, 2 attempts\n{}", r.stderr);
}

#[test]
fn invalid_retry_and_timeout_settings_are_usage_errors_before_any_request() {
    let proxy = Proxy::with_rules(&moto_url(), vec![]);
    let mut sb = Sandbox::new();
    sb.set("AWS_ACCESS_KEY_ID", FAKE_KEY_ID)
        .set("AWS_SECRET_ACCESS_KEY", FAKE_SECRET)
        .set("AWS_REGION", "us-east-1")
        .set("AWS_ENDPOINT_URL", &proxy.url);
    let args = ["train", "--image", "unet:latest", "--dry-run"];
    sb.set("AWS_MAX_ATTEMPTS", "0");
    sb.run(&args).code(2).stderr_has("AWS_MAX_ATTEMPTS");
    sb.unset("AWS_MAX_ATTEMPTS").set("AWS_RETRY_MODE", "legacy");
    sb.run(&args).code(2).stderr_has("AWS_RETRY_MODE");
    sb.unset("AWS_RETRY_MODE")
        .set("SAGETRAIN_READ_TIMEOUT", "soon");
    sb.run(&args)
        .code(2)
        .stderr_has("SAGETRAIN_READ_TIMEOUT: `soon` is not a duration");
    let mut a = args.to_vec();
    a.extend(["--deadline", "0"]);
    sb.unset("SAGETRAIN_READ_TIMEOUT");
    sb.run(&a).code(2).stderr_has("--deadline");
    assert_eq!(
        proxy.total(),
        0,
        "no request was sent: {:?}",
        proxy.counts()
    );
}

#[test]
fn a_slow_endpoint_gives_a_clear_timeout_error() {
    let s = seeded("us-east-1");
    let proxy = Proxy::with_rules(
        &moto_url(),
        vec![Rule::new(Fault::Delay(Duration::from_secs(10)), Pick::All)],
    );
    let mut sb = sandbox(&s, &proxy);
    sb.set("SAGETRAIN_READ_TIMEOUT", "500ms")
        .set("AWS_MAX_ATTEMPTS", "2");
    let r = run(&sb, &train_args(&s, "slow", &[]));
    eprintln!(
        "slow endpoint: gave up after {:.2}s with exit {}",
        r.elapsed.as_secs_f64(),
        r.code
    );
    let r = r.code(4);
    let r = r.stderr_has("timed out");
    assert!(
        r.stderr
            .contains("read timeout of 500ms (SAGETRAIN_READ_TIMEOUT)"),
        "names the setting: {}",
        r.stderr
    );
    // 2 attempts of 0.5 s and a backoff of at most 1 s, not the 10 s the endpoint takes.
    assert!(r.elapsed < Duration::from_secs(6), "{:?}", r.elapsed);
    assert_eq!(
        proxy.count_op("GetCallerIdentity"),
        2,
        "{:?}",
        proxy.counts()
    );
    assert!(jobs_named(&s, "").is_empty());
}

#[test]
fn the_deadline_bounds_the_whole_run_retries_included() {
    let s = seeded("us-east-1");
    let proxy = Proxy::with_rules(
        &moto_url(),
        vec![Rule::new(Fault::Delay(Duration::from_secs(20)), Pick::All)],
    );
    let sb = sandbox(&s, &proxy);
    let r = run(&sb, &train_args(&s, "late", &["--deadline", "2s"]));
    eprintln!(
        "--deadline 2s: gave up after {:.2}s with exit {}",
        r.elapsed.as_secs_f64(),
        r.code
    );
    let r = r
        .code(7)
        .stderr_has("did not finish within the deadline of 2s (--deadline)")
        .stderr_has("nothing was created");
    assert!(r.elapsed < Duration::from_secs(6), "{:?}", r.elapsed);
    assert!(r.elapsed >= Duration::from_secs(2), "{:?}", r.elapsed);
    assert!(jobs_named(&s, "").is_empty());
}

#[test]
fn a_deadline_that_cuts_off_the_create_names_the_job_to_check() {
    let s = seeded("us-east-1");
    let proxy = Proxy::with_rules(
        &moto_url(),
        vec![Rule::new(Fault::Delay(Duration::from_secs(20)), Pick::All).only("CreateTrainingJob")],
    );
    let mut sb = sandbox(&s, &proxy);
    sb.set("SAGETRAIN_DEADLINE", "4s");
    let r = run(&sb, &train_args(&s, "cut", &["--name", "cut-off-job"]))
        .code(7)
        .stderr_has("deadline of 4s (SAGETRAIN_DEADLINE)")
        .stderr_has("may or may not have been created")
        .stderr_has("aws sagemaker describe-training-job --training-job-name cut-off-job");
    assert!(r.elapsed < Duration::from_secs(8), "{:?}", r.elapsed);
    assert_eq!(proxy.count_op("CreateTrainingJob"), 1);
}
