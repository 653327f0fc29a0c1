//! The AWS layer end to end: readable errors for answers that are not the service's error format
//! (every command, through the fault proxy), `stop` of a job that already ended, and each
//! service's own endpoint setting.

use crate::faults::{run, train_args};
use crate::harness::*;
use crate::proxy::{Fault, Pick, Proxy, Rule};

/// A `{ ... }` or `Name(...)` structure as Rust's `Debug` prints it, or an SDK type's name.
fn debug_form(text: &str) -> Option<String> {
    let re = regex::Regex::new(
        r"[A-Za-z_]+ \{ |[A-Z][A-Za-z]+\([A-Z][A-Za-z]+[ (]|SdkBody|StatusCode\(|HeaderMap|ErrorMetadata",
    )
    .unwrap();
    re.find(text).map(|m| m.as_str().to_string())
}

#[test]
fn every_command_names_the_operation_and_status_of_an_answer_that_is_not_an_aws_error() {
    let s = seeded("us-east-1");
    // (what, the proxy's answer or none for a dead endpoint, what stderr must say)
    let faults = [
        (
            "500 with an HTML page",
            Some(Fault::Raw {
                status: 500,
                content_type: "text/html",
                body: "<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head>\n<body><h1>Bad Gateway</h1><p>{upstream}</p></body></html>",
            }),
            "HTTP 500",
        ),
        (
            "403 with an XML error",
            Some(Fault::Raw {
                status: 403,
                content_type: "application/xml",
                body: "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>AccessDenied</Code><Message>Access Denied by the gateway</Message></Error>",
            }),
            "HTTP 403",
        ),
        (
            "a cut-off JSON body",
            Some(Fault::Raw {
                status: 200,
                content_type: "application/x-amz-json-1.1",
                body: "{\"TrainingJobSummaries\": [{\"TrainingJobName\": \"unet-",
            }),
            "HTTP 200",
        ),
        ("a refused connection", None, "the connection failed"),
    ];
    let mut commands: Vec<Vec<String>> = vec![train_args(&s, "errors", &[])];
    for args in [
        &["status", "unet-x"][..],
        &["list"],
        &["stop", "unet-x"],
        &["wait", "unet-x"],
        &["logs", "unet-x"],
        &["download", "unet-x", "--dir", "out"],
        &[
            "doctor",
            "--role",
            "SageMakerRole",
            "--image",
            "unet-vessels:latest",
        ],
        &["data", "push", "data"],
    ] {
        commands.push(args.iter().map(|x| x.to_string()).collect());
    }
    let op = regex::Regex::new(r"\b(sts|iam|ecr|sagemaker|s3|logs):[A-Z][A-Za-z]+").unwrap();
    let mut failures = Vec::new();
    for (what, fault, status) in &faults {
        let proxy = fault
            .as_ref()
            .map(|f| Proxy::with_rules(&moto_url(), vec![Rule::new(f.clone(), Pick::All)]));
        let mut sb = Sandbox::new();
        s.acct.env(&mut sb);
        let endpoint = proxy
            .as_ref()
            .map(|p| p.url.clone())
            .unwrap_or_else(dead_endpoint);
        sb.set("AWS_ENDPOINT_URL", &endpoint)
            .set("AWS_MAX_ATTEMPTS", "1")
            .set("SAGETRAIN_POLL_INTERVAL", "10ms");
        sb.write("project/data/img-001.png", "png");
        for args in &commands {
            let r = run(&sb, args);
            // doctor reports each check on stdout; the others say it on stderr.
            let said = if args[0] == "doctor" {
                format!("{}{}", r.stdout, r.stderr)
            } else {
                r.stderr.clone()
            };
            let mut problems = Vec::new();
            if !(r.code == 4 || r.code == 3) {
                problems.push(format!("exit {}", r.code));
            }
            if !said.contains(status) {
                problems.push(format!("no `{status}`"));
            }
            if !op.is_match(&said) {
                problems.push("no operation named".into());
            }
            if let Some(d) = debug_form(&r.stderr) {
                problems.push(format!("debug form `{d}` on stderr"));
            }
            if !said.contains("hint:") && !said.contains("fix:") {
                problems.push("no next step".into());
            }
            if !problems.is_empty() {
                failures.push(format!(
                    "{what}, `{}`: {}\nstdout:\n{}\nstderr:\n{}",
                    args[0],
                    problems.join(", "),
                    r.stdout,
                    r.stderr
                ));
            }
        }
        if let Some(p) = proxy {
            assert!(
                p.faults() > 0,
                "{what}: the proxy must answer with the fault"
            );
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn stop_of_a_job_that_already_ended_reports_its_status_without_stopping_it() {
    let s = seeded("us-east-1");
    let proxy = Proxy::start(&moto_url());
    let mut sb = Sandbox::new();
    s.acct.env(&mut sb);
    sb.set("AWS_ENDPOINT_URL", &proxy.url);
    let job = run(&sb, &train_args(&s, "stop-ended", &["-o", "json"]))
        .ok()
        .json()["job_name"]
        .as_str()
        .unwrap()
        .to_string();
    // moto completes a job at once; an independent read says so.
    let d = block_on(s.acct.describe(&job));
    assert_eq!(
        d.training_job_status().map(|s| s.as_str()),
        Some("Completed")
    );
    proxy.clear();

    let r = sb.run(&["stop", &job]).ok();
    assert!(
        r.stdout
            .contains(&format!("training job {job} had already ended (Completed)")),
        "{}",
        r.stdout
    );
    assert_eq!(proxy.count_op("StopTrainingJob"), 0, "{:?}", proxy.counts());
    assert!(proxy.count_op("DescribeTrainingJob") >= 1);
    let j = sb.run(&["stop", &job, "-o", "json"]).ok().json();
    assert_eq!(j["stop_requested"], false);
    assert_eq!(j["status"], "Completed");
    assert_eq!(proxy.count_op("StopTrainingJob"), 0);
}

/// The service of a request the proxy saw (see `proxy::operation`).
fn service_of(op: &str) -> &'static str {
    if op.contains(' ') {
        "S3"
    } else if op == "GetCallerIdentity" {
        "STS"
    } else if [
        "GetRole",
        "ListRoles",
        "SimulatePrincipalPolicy",
        "ListAccessKeys",
    ]
    .contains(&op)
    {
        "IAM"
    } else if op.contains("Image") || op.contains("Repositor") || op == "GetAuthorizationToken" {
        "ECR"
    } else if op == "GetProducts" {
        "Pricing"
    } else if op.contains("ServiceQuota") {
        "Service Quotas"
    } else if op.contains("Secret") {
        "Secrets Manager"
    } else if op.contains("Log") {
        "CloudWatch Logs"
    } else {
        "SageMaker"
    }
}

/// `train` then `logs` of its job: every service sagetrain calls.
fn train_and_logs(s: &Seeded, sb: &Sandbox) {
    let job = run(sb, &train_args(s, "endpoints", &["-o", "json"]))
        .ok()
        .json()["job_name"]
        .as_str()
        .unwrap()
        .to_string();
    sb.run(&["logs", &job]).ok();
}

#[test]
fn a_services_own_endpoint_wins_over_the_global_one_and_the_flag_over_both() {
    let s = seeded("us-east-1");
    for (svc, var) in [
        ("STS", "AWS_ENDPOINT_URL_STS"),
        ("IAM", "AWS_ENDPOINT_URL_IAM"),
        ("ECR", "AWS_ENDPOINT_URL_ECR"),
        ("SageMaker", "AWS_ENDPOINT_URL_SAGEMAKER"),
        ("S3", "AWS_ENDPOINT_URL_S3"),
        ("CloudWatch Logs", "AWS_ENDPOINT_URL_CLOUDWATCH_LOGS"),
        ("Service Quotas", "AWS_ENDPOINT_URL_SERVICE_QUOTAS"),
        ("Pricing", "AWS_ENDPOINT_URL_PRICING"),
    ] {
        let global = Proxy::start(&moto_url());
        let own = Proxy::start(&moto_url());
        let mut sb = Sandbox::new();
        s.acct.env(&mut sb);
        sb.set("AWS_ENDPOINT_URL", &global.url).set(var, &own.url);
        train_and_logs(&s, &sb);
        let own_ops: Vec<String> = own.requests().into_iter().map(|e| e.op).collect();
        assert!(!own_ops.is_empty(), "{var}: no request reached it");
        assert!(
            own_ops.iter().all(|o| service_of(o) == svc),
            "{var}: only {svc} requests, got {own_ops:?}"
        );
        let leaked: Vec<String> = global
            .requests()
            .into_iter()
            .map(|e| e.op)
            .filter(|o| service_of(o) == svc)
            .collect();
        assert!(
            leaked.is_empty(),
            "{var}: {svc} requests went to AWS_ENDPOINT_URL: {leaked:?}"
        );
        assert!(
            global.total() > 0,
            "the other services use AWS_ENDPOINT_URL"
        );
    }

    // The profile: its `services` section wins over its own `endpoint_url`.
    let own = Proxy::start(&moto_url());
    let mut sb = Sandbox::new();
    s.acct.env(&mut sb);
    sb.unset("AWS_ENDPOINT_URL");
    sb.write(
        "home/.aws/config",
        &format!(
            "[default]\nendpoint_url = {}\nservices = local\n\n[services local]\nsagemaker =\n  endpoint_url = {}\n",
            moto_url(),
            own.url
        ),
    );
    train_and_logs(&s, &sb);
    let ops: Vec<String> = own.requests().into_iter().map(|e| e.op).collect();
    assert!(
        ops.contains(&"CreateTrainingJob".to_string())
            && ops.iter().all(|o| service_of(o) == "SageMaker"),
        "the profile's services section: {ops:?}"
    );

    // --endpoint-url overrides both.
    let flag = Proxy::start(&moto_url());
    let own = Proxy::start(&moto_url());
    let mut sb = Sandbox::new();
    s.acct.env(&mut sb);
    sb.set("AWS_ENDPOINT_URL_SAGEMAKER", &own.url);
    let mut args = train_args(&s, "stop-ended", &["-o", "json"]);
    args.push("--endpoint-url".into());
    args.push(flag.url.clone());
    run(&sb, &args).ok();
    assert_eq!(own.total(), 0, "{:?}", own.counts());
    assert!(
        flag.count_op("CreateTrainingJob") == 1,
        "{:?}",
        flag.counts()
    );
}

/// A loopback instance metadata service (IMDSv2) whose first token request is answered only
/// after `first_delay`; it counts the token requests.
fn fake_imds(
    first_delay: std::time::Duration,
) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::io::{BufRead, BufReader, Write};
    use std::sync::atomic::{AtomicUsize, Ordering};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let tokens = std::sync::Arc::new(AtomicUsize::new(0));
    let count = tokens.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let count = count.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut first = String::new();
                if reader.read_line(&mut first).is_err() {
                    return;
                }
                loop {
                    let mut l = String::new();
                    if reader.read_line(&mut l).unwrap_or(0) == 0 || l == "\r\n" {
                        break;
                    }
                }
                let path = first.split_whitespace().nth(1).unwrap_or("").to_string();
                let body = if first.starts_with("PUT") {
                    if count.fetch_add(1, Ordering::SeqCst) == 0 {
                        std::thread::sleep(first_delay);
                    }
                    "fake-imds-token".to_string()
                } else if path.ends_with("/security-credentials/") {
                    "test-role".to_string()
                } else {
                    serde_json::json!({
                        "Code": "Success",
                        "Type": "AWS-HMAC",
                        "AccessKeyId": FAKE_KEY_ID,
                        "SecretAccessKey": FAKE_SECRET,
                        "Token": "fake-session-token",
                        "Expiration": "2099-01-01T00:00:00Z",
                        "LastUpdated": "2026-01-01T00:00:00Z"
                    })
                    .to_string()
                };
                let _ = stream.write_all(
                    format!(
                        "HTTP/1.1 200 OK\r\nx-aws-ec2-metadata-token-ttl-seconds: 21600\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    )
                    .as_bytes(),
                );
            });
        }
    });
    (url, tokens)
}

#[test]
fn instance_metadata_gets_a_second_attempt_after_a_slow_answer_and_nothing_there_fails_fast() {
    use std::sync::atomic::Ordering;
    use std::time::Duration;
    let imds_sandbox = |imds: &str| {
        let mut sb = Sandbox::new();
        sb.unset("AWS_EC2_METADATA_DISABLED")
            .set("AWS_EC2_METADATA_SERVICE_ENDPOINT", imds)
            .set("AWS_REGION", "us-east-1")
            .set("AWS_ENDPOINT_URL", &moto_url());
        sb
    };
    // A real instance whose first answer is slower than the 1 s limit.
    let (url, tokens) = fake_imds(Duration::from_millis(1500));
    let r = imds_sandbox(&url).run(&["list", "-v"]).ok();
    r.stderr_has("credentials: instance metadata (IMDS)");
    assert_eq!(tokens.load(Ordering::SeqCst), 2, "one more attempt");

    // Nothing listening (a laptop): one attempt, a fast failure.
    let r = imds_sandbox(&dead_endpoint()).run(&["list"]).code(3);
    assert!(r.elapsed < Duration::from_secs(3), "{:?}", r.elapsed);
    r.stderr_has("no AWS credentials found");
}
