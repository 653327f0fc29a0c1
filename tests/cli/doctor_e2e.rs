//! `sagetrain doctor` end to end: every broken setup of issue 5 gives a report naming the broken
//! link and its fix, and `train` with the same settings gives an error that does the same.
//! Against moto where it can show the problem; offline (or a rejecting endpoint) otherwise.
//! iam:SimulatePrincipalPolicy, root users, old keys and denied PassRole are covered with
//! aws-smithy-mocks in `src/doctor.rs`.

use crate::harness::*;
use serde_json::Value;

/// The check with this id in a JSON report.
fn check<'a>(report: &'a Value, id: &str) -> &'a Value {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id)
        .unwrap_or_else(|| panic!("no check {id} in {report:#}"))
}

fn status(report: &Value, id: &str) -> String {
    check(report, id)["status"].as_str().unwrap().to_string()
}

fn text(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

/// A fake container engine `name` (a shell script answering `--version` and `info` with `body`'s
/// `case` arms) in its own folder, put first on the sandbox's PATH; returns the folder.
fn fake_engine(sb: &mut Sandbox, name: &str, arms: &str) -> std::path::PathBuf {
    let bin = sb.dir.path().join("engine-bin");
    std::fs::create_dir_all(&bin).unwrap();
    let script = bin.join(name);
    std::fs::write(
        &script,
        format!("#!/bin/sh\ncase \"$1\" in\n{arms}\n*) echo \"unknown: $*\" >&2; exit 1;;\nesac\n"),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    sb.set("PATH", &path);
    bin
}

/// A docker that runs containers, with the nvidia runtime (so that it passes with or without
/// GPUs on this machine).
const DOCKER_OK: &str = "--version) echo 'Docker version 27.0.3, build fake';;\n\
                         info) echo '{\"nvidia\":{},\"runc\":{}}';;";

/// Run `doctor -o json` and `train` with the same settings.
fn doctor_and_train(sb: &Sandbox, settings: &[&str]) -> (Run, Value, Run) {
    let mut d = vec!["doctor", "-o", "json"];
    d.extend_from_slice(settings);
    let doctor = sb.run(&d);
    let report = doctor.json();
    assert_eq!(
        report["exit_code"], doctor.code,
        "the report's exit_code is the process's"
    );
    let mut t = vec!["train", "--epochs", "5"];
    t.extend_from_slice(settings);
    let train = sb.run(&t);
    (doctor, report, train)
}

#[test]
fn a_healthy_setup_passes_every_check_and_train_then_succeeds() {
    let s = seeded("eu-west-1");
    let mut sb = Sandbox::new();
    s.acct.profile(&mut sb, "ml");
    sb.set("AWS_PROFILE", "ml");
    fake_engine(&mut sb, "docker", DOCKER_OK);
    // Service Quotas (which the emulator lacks for SageMaker): room for the default type.
    let sq = crate::quota_e2e::service_quotas(&[("ml.g5.xlarge", 4.0)]);
    sb.set("AWS_ENDPOINT_URL_SERVICE_QUOTAS", &sq.url);
    sb.write(
        "project/sagetrain.toml",
        &format!(
            "role = \"SageMakerRole\"\nimage = \"unet-vessels:latest\"\n\
             [channels]\ntrain = \"s3://{}/data/train/\"\n",
            s.bucket
        ),
    );
    let r = sb.run(&["doctor", "-o", "json"]).ok();
    let report = r.json();
    assert_eq!(report["schema_version"], 1);
    assert_eq!(report["ok"], true);
    assert_eq!(report["exit_code"], 0);
    let ids: Vec<String> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| text(&c["id"]))
        .collect();
    assert_eq!(
        ids,
        [
            "configuration",
            "credentials",
            "identity",
            "access_keys",
            "region",
            "execution_role",
            "role_trust",
            "pass_role",
            "image",
            "output_path",
            "instance_quota",
            "container_engine",
            "channel.train"
        ]
    );
    for c in report["checks"].as_array().unwrap() {
        for key in [
            "id",
            "name",
            "status",
            "value",
            "source",
            "fix",
            "details",
            "class",
            "blocked_by",
        ] {
            assert!(c.get(key).is_some(), "check {} lacks {key}", c["id"]);
        }
    }
    for id in [
        "configuration",
        "credentials",
        "identity",
        "region",
        "execution_role",
        "role_trust",
        "image",
        "output_path",
        "instance_quota",
        "container_engine",
        "channel.train",
    ] {
        assert_eq!(
            status(&report, id),
            "pass",
            "{id}: {:#}",
            check(&report, id)
        );
    }
    // Session credentials of a role: no key of their own to age.
    assert_eq!(status(&report, "access_keys"), "skip");
    // moto does not implement iam:SimulatePrincipalPolicy: a warning that it could not be
    // checked, not a failure.
    let pr = check(&report, "pass_role");
    assert_eq!(pr["status"], "warn");
    assert!(
        text(&pr["value"]).contains("could not be checked"),
        "{pr:#}"
    );
    assert!(text(&pr["fix"]).contains("iam:PassedToService"), "{pr:#}");

    let creds = check(&report, "credentials");
    assert!(text(&creds["value"]).contains("profile `ml`"), "{creds:#}");
    assert!(
        text(&creds["value"]).contains("temporary session"),
        "{creds:#}"
    );
    assert!(text(&creds["value"]).contains(&format!(
        "****************{}",
        &s.acct.creds.access_key_id()[16..]
    )));
    assert_eq!(
        check(&report, "instance_quota")["value"],
        "ml.g5.xlarge: 4 instances"
    );
    let ident = check(&report, "identity");
    assert!(text(&ident["value"]).contains(&format!("account {}", s.acct.id)));
    assert_eq!(check(&report, "region")["value"], "eu-west-1");
    assert!(text(&check(&report, "region")["source"]).contains("profile `ml`"));
    assert_eq!(
        check(&report, "execution_role")["value"],
        s.role_arn.as_str()
    );
    assert!(text(&check(&report, "execution_role")["source"]).contains("`role` in"));
    assert!(
        text(&check(&report, "image")["value"]).contains(&s.digest),
        "the image check shows the digest"
    );

    // The text form: one line per check, the same statuses.
    let t = sb.run(&["doctor"]).ok();
    let lines: Vec<&str> = t.stdout.lines().collect();
    let check_lines: Vec<&&str> = lines
        .iter()
        .filter(|l| {
            ["pass ", "warn ", "fail ", "skip "]
                .iter()
                .any(|s| l.starts_with(s))
        })
        .collect();
    assert_eq!(check_lines.len(), 13, "one line per check:\n{}", t.stdout);
    assert!(lines[0].starts_with("pass  configuration "), "{}", t.stdout);
    assert!(
        t.stdout
            .contains("warn  iam:PassRole      could not be checked"),
        "{}",
        t.stdout
    );
    assert!(
        t.stdout
            .contains("\n                        fix: make sure your policy allows iam:PassRole"),
        "the fix is under the warning:\n{}",
        t.stdout
    );
    assert_eq!(
        *lines.last().unwrap(),
        "11 passed, 1 warning, 0 failed, 1 skipped"
    );
    assert!(
        block_on(s.acct.job_names()).is_empty(),
        "doctor creates nothing"
    );
    assert!(!block_on(
        s.acct
            .bucket_exists(&format!("sagemaker-eu-west-1-{}", s.acct.id))
    ));

    // The same settings then train.
    let r = sb.run(&["train", "--epochs", "50", "-o", "json"]).ok();
    let d = block_on(s.acct.describe(r.json()["job_name"].as_str().unwrap()));
    assert_eq!(d.role_arn(), Some(s.role_arn.as_str()));
}

#[test]
fn each_broken_link_on_aws_is_named_by_doctor_and_by_train() {
    let s = seeded("us-east-1");
    let other_region_bucket = block_on(async {
        let other = Account::new("eu-west-1").await;
        other.bucket("far-away", &["x"]).await
    });
    block_on(async {
        s.acct.role("Ec2Role", "/", false).await;
    });
    let mut sb = Sandbox::new();
    s.acct.env(&mut sb);
    let train_uri = format!("s3://{}/data/train/", s.bucket);
    let empty_uri = format!("s3://{}/nothing-here/", s.bucket);
    let far_uri = format!("s3://{other_region_bucket}/out/");

    struct Case<'a> {
        what: &'a str,
        args: Vec<&'a str>,
        failed: &'a str,
        value: &'a str,
        fix: &'a str,
        blocked: &'a [&'a str],
        train_says: &'a str,
    }
    let cases = vec![
        Case {
            what: "the role missing",
            args: vec!["--role", "NoSuchRole", "--image", "unet-vessels"],
            failed: "execution_role",
            value: "`NoSuchRole` does not exist",
            fix: "SAGEMAKER_ROLE",
            blocked: &["role_trust", "pass_role"],
            train_says: "the execution role `NoSuchRole` (from --role) does not exist",
        },
        Case {
            what: "the trust policy without SageMaker",
            args: vec!["--role", "Ec2Role", "--image", "unet-vessels"],
            failed: "role_trust",
            value: "lets ec2.amazonaws.com assume it, not sagemaker.amazonaws.com",
            fix: "aws iam update-assume-role-policy --role-name Ec2Role",
            blocked: &[],
            train_says: "does not trust SageMaker",
        },
        Case {
            what: "the image tag missing",
            args: vec!["--role", "SageMakerRole", "--image", "unet-vessels:v9"],
            failed: "image",
            value: "the image tag `v9` does not exist in the ECR repository `unet-vessels`",
            fix: "sagetrain image push CONTEXT --repo unet-vessels --tag TAG",
            blocked: &[],
            train_says: "the image tag `v9` does not exist",
        },
        Case {
            what: "the ECR repository missing",
            args: vec!["--role", "SageMakerRole", "--image", "no-such-repo:latest"],
            failed: "image",
            value: "the ECR repository `no-such-repo` (from --image) does not exist",
            fix: "sagetrain image push CONTEXT --repo no-such-repo --region us-east-1",
            blocked: &[],
            train_says: "the ECR repository `no-such-repo` (from --image) does not exist",
        },
        Case {
            what: "the bucket missing",
            args: vec![
                "--role",
                "SageMakerRole",
                "--image",
                "unet-vessels",
                "--output-path",
                "s3://no-such-bucket-sagetrain-doctor/out/",
            ],
            failed: "output_path",
            value: "the output bucket `no-such-bucket-sagetrain-doctor` (from --output-path) does not exist",
            fix: "aws s3 mb s3://no-such-bucket-sagetrain-doctor --region us-east-1",
            blocked: &[],
            train_says: "the output bucket `no-such-bucket-sagetrain-doctor` (from --output-path) does not exist",
        },
        Case {
            what: "the bucket in another region",
            args: vec![
                "--role",
                "SageMakerRole",
                "--image",
                "unet-vessels",
                "--output-path",
                &far_uri,
            ],
            failed: "output_path",
            value: "is in eu-west-1, but the job runs in us-east-1",
            fix: "--region eu-west-1",
            blocked: &[],
            train_says: "is in eu-west-1, but the job runs in us-east-1",
        },
        Case {
            what: "an empty input prefix",
            args: vec![
                "--role",
                "SageMakerRole",
                "--image",
                "unet-vessels",
                "--validation",
                &empty_uri,
            ],
            failed: "channel.validation",
            value: "holds no objects",
            fix: "aws s3 sync ./data/validation",
            blocked: &[],
            train_says: "channel `validation`",
        },
    ];
    for c in cases {
        let mut args = c.args.clone();
        args.extend(["--train", train_uri.as_str()]);
        let (doctor, report, train) = doctor_and_train(&sb, &args);
        let what = c.what;
        assert_eq!(doctor.code, 4, "{what}: doctor exits 4\n{}", doctor.stdout);
        assert_eq!(train.code, 4, "{what}: train exits 4\n{}", train.stderr);
        let failed: Vec<String> = report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|x| x["status"] == "fail")
            .map(|x| text(&x["id"]))
            .collect();
        assert_eq!(failed, vec![c.failed.to_string()], "{what}: {report:#}");
        let f = check(&report, c.failed);
        assert!(text(&f["value"]).contains(c.value), "{what}: {f:#}");
        assert!(text(&f["fix"]).contains(c.fix), "{what}: {f:#}");
        assert_eq!(f["class"], "aws", "{what}");
        for b in c.blocked {
            let x = check(&report, b);
            assert_eq!(x["status"], "skip", "{what}: {b} {x:#}");
            assert_eq!(x["blocked_by"], c.failed, "{what}: {b}");
        }
        // Everything independent of the broken link still passes.
        for id in ["credentials", "identity", "region", "channel.train"] {
            assert_eq!(status(&report, id), "pass", "{what}: {id}");
        }
        assert!(
            train.stderr.contains(c.train_says),
            "{what}: train says\n{}",
            train.stderr
        );
        assert!(
            train.stderr.contains("hint:") && train.stderr.contains(c.fix),
            "{what}: train names the same fix ({})\n{}",
            c.fix,
            train.stderr
        );
        // The text report has the fix under the failed line.
        let t = sb.run(&[&["doctor"][..], &args].concat());
        assert_eq!(t.code, 4);
        assert!(
            t.stdout
                .contains(&format!("fix: {}", text(&f["fix"]).lines().next().unwrap())),
            "{what}:\n{}",
            t.stdout
        );
        assert!(t.stderr.contains("1 check failed"), "{what}: {}", t.stderr);
    }
    assert!(
        block_on(s.acct.job_names()).is_empty(),
        "no job may be created by a failed check"
    );
}

#[test]
fn no_credentials_at_all() {
    let mut sb = Sandbox::new();
    sb.set("AWS_ENDPOINT_URL", &dead_endpoint());
    let (doctor, report, train) =
        doctor_and_train(&sb, &["--region", "eu-west-1", "--image", "unet-vessels"]);
    assert_eq!(doctor.code, 3);
    assert!(
        doctor.elapsed < std::time::Duration::from_secs(3),
        "{:?}",
        doctor.elapsed
    );
    let c = check(&report, "credentials");
    assert_eq!(c["status"], "fail");
    assert_eq!(c["class"], "credentials");
    assert!(
        text(&c["value"]).contains("no AWS credentials found"),
        "{c:#}"
    );
    assert!(text(&c["fix"]).contains("aws configure sso"), "{c:#}");
    assert!(c["details"].to_string().contains("EXECUTION ROLE"), "{c:#}");
    for id in ["identity", "execution_role", "image", "output_path"] {
        let x = check(&report, id);
        assert_eq!(x["status"], "skip", "{id}");
        assert_eq!(x["blocked_by"], "credentials", "{id}");
    }
    assert_eq!(status(&report, "region"), "pass");
    train
        .code(3)
        .stderr_has("no AWS credentials found")
        .stderr_has("aws sso login");
}

#[test]
fn a_profile_that_does_not_exist() {
    let mut sb = Sandbox::new();
    sb.write(
        "home/.aws/config",
        "[profile dev]\nregion = eu-west-1\n[profile prod]\nregion = eu-west-1\n",
    );
    sb.set("AWS_ENDPOINT_URL", &dead_endpoint());
    let (doctor, report, train) =
        doctor_and_train(&sb, &["--profile", "staging", "--image", "unet-vessels"]);
    assert_eq!(doctor.code, 3);
    let c = check(&report, "credentials");
    assert_eq!(c["status"], "fail");
    assert!(
        text(&c["value"]).contains("the AWS profile `staging` (from --profile) does not exist; profiles that exist: dev, prod"),
        "{c:#}"
    );
    assert!(text(&c["fix"]).contains("aws configure sso --profile staging"));
    // The region would come from the profile: skipped, naming why.
    let r = check(&report, "region");
    assert_eq!(r["status"], "skip");
    assert_eq!(r["blocked_by"], "credentials");
    train
        .code(3)
        .stderr_has("the AWS profile `staging` (from --profile) does not exist")
        .stderr_has("aws configure sso --profile staging");
}

#[test]
fn rejected_credentials() {
    let mut sb = Sandbox::new();
    sb.set("AWS_ACCESS_KEY_ID", FAKE_KEY_ID)
        .set("AWS_SECRET_ACCESS_KEY", FAKE_SECRET)
        .set("AWS_REGION", "us-east-1")
        .set("AWS_ENDPOINT_URL", &rejecting_endpoint())
        .set("AWS_MAX_ATTEMPTS", "1");
    let (doctor, report, train) =
        doctor_and_train(&sb, &["--role", "SageMakerRole", "--image", "unet-vessels"]);
    assert_eq!(doctor.code, 3);
    assert_eq!(status(&report, "credentials"), "pass", "found, but...");
    let c = check(&report, "identity");
    assert_eq!(c["status"], "fail");
    assert_eq!(c["class"], "credentials");
    assert!(
        text(&c["value"]).contains("AWS rejected your credentials"),
        "{c:#}"
    );
    assert!(text(&c["value"]).contains("InvalidClientTokenId"), "{c:#}");
    assert!(text(&c["fix"]).contains("not the execution role"), "{c:#}");
    for id in ["access_keys", "execution_role", "image", "output_path"] {
        assert_eq!(check(&report, id)["blocked_by"], "identity", "{id}");
    }
    train
        .code(3)
        .stderr_has("AWS rejected your credentials")
        .stderr_has("InvalidClientTokenId");
}

#[test]
fn no_region() {
    let s = seeded("us-east-1");
    let mut sb = Sandbox::new();
    s.acct.env(&mut sb);
    sb.unset("AWS_REGION");
    let (doctor, report, train) =
        doctor_and_train(&sb, &["--role", "SageMakerRole", "--image", "unet-vessels"]);
    assert_eq!(doctor.code, 2);
    let r = check(&report, "region");
    assert_eq!(r["status"], "fail");
    assert_eq!(r["class"], "config");
    assert!(text(&r["value"]).contains("no AWS region is set"));
    assert!(text(&r["fix"]).contains("--region REGION"));
    // IAM and STS are global: credentials, identity and the role are still checked...
    for id in ["credentials", "identity", "execution_role", "role_trust"] {
        assert_eq!(status(&report, id), "pass", "{id}: {report:#}");
    }
    // ...the regional ones are skipped, naming the region.
    for id in ["image", "output_path"] {
        assert_eq!(check(&report, id)["blocked_by"], "region", "{id}");
    }
    train
        .code(2)
        .stderr_has("no AWS region is set")
        .stderr_has("AWS_REGION");
}

#[test]
fn an_access_key_pasted_into_a_hyperparameter() {
    let mut sb = Sandbox::new();
    sb.set("AWS_ACCESS_KEY_ID", FAKE_KEY_ID)
        .set("AWS_SECRET_ACCESS_KEY", FAKE_SECRET)
        .set("AWS_MAX_ATTEMPTS", "1")
        .set("AWS_ENDPOINT_URL", &dead_endpoint());
    sb.write(
        "project/sagetrain.toml",
        "region = \"eu-west-1\"\nimage = \"unet-vessels\"\n",
    );
    let (doctor, report, train) = doctor_and_train(&sb, &["-H", &format!("api_key={FAKE_KEY_ID}")]);
    assert_eq!(doctor.code, 2, "a configuration failure: exit 2");
    let c = check(&report, "configuration");
    assert_eq!(c["status"], "fail");
    assert_eq!(c["class"], "config");
    assert!(
        c["details"].to_string().contains("--hyperparameter api_key: the value (****************MPLE) looks like an AWS access key id"),
        "{c:#}"
    );
    assert!(!doctor.stdout.contains(FAKE_KEY_ID) && !doctor.stderr.contains(FAKE_KEY_ID));
    let train = train
        .code(2)
        .stderr_has("--hyperparameter api_key: the value (****************MPLE) looks like an AWS access key id");
    assert!(!train.stderr.contains(FAKE_KEY_ID));
}

#[test]
fn a_broken_config_file_is_named_and_what_depends_on_it_is_skipped() {
    let s = seeded("us-east-1");
    let mut sb = Sandbox::new();
    s.acct.env(&mut sb);
    sb.write(
        "project/sagetrain.toml",
        "image = \"unet-vessels\"\naws_secret_access_key = \"x\"\n",
    );
    let r = sb.run(&["doctor", "-o", "json"]).code(2);
    let report = r.json();
    let c = check(&report, "configuration");
    assert_eq!(c["status"], "fail");
    assert!(text(&c["value"]).contains("sagetrain.toml:2"), "{c:#}");
    assert!(text(&c["fix"]).contains("profile"), "{c:#}");
    // Credentials and identity do not depend on the file...
    assert_eq!(status(&report, "credentials"), "pass");
    assert_eq!(status(&report, "identity"), "pass");
    // ...the role, image and output do.
    for id in ["execution_role", "image", "output_path"] {
        assert_eq!(check(&report, id)["blocked_by"], "configuration", "{id}");
    }
}

#[test]
fn long_lived_keys_in_the_credentials_file_are_a_warning_and_their_age_is_checked() {
    // An IAM user with an access key, stored in ~/.aws/credentials.
    let (acct, key_id, secret) = block_on(async {
        let acct = Account::new("us-east-1").await;
        acct.iam()
            .create_user()
            .user_name("alice")
            .send()
            .await
            .unwrap();
        let k = acct
            .iam()
            .create_access_key()
            .user_name("alice")
            .send()
            .await
            .unwrap();
        let k = k.access_key().unwrap();
        (
            acct,
            k.access_key_id().to_string(),
            k.secret_access_key().to_string(),
        )
    });
    let mut sb = Sandbox::new();
    sb.write(
        "home/.aws/credentials",
        &format!("[default]\naws_access_key_id = {key_id}\naws_secret_access_key = {secret}\n"),
    );
    sb.set("AWS_REGION", "us-east-1")
        .set("AWS_ENDPOINT_URL", &moto_url());
    let r = sb.run(&["doctor", "--image", "unet-vessels", "-o", "json"]);
    let report = r.json();
    let c = check(&report, "credentials");
    assert_eq!(c["status"], "warn", "{c:#}");
    assert!(text(&c["value"]).contains("long-lived keys"), "{c:#}");
    assert!(
        text(&c["value"]).contains("stored in plaintext in"),
        "{c:#}"
    );
    assert!(text(&c["value"]).contains(".aws/credentials"), "{c:#}");
    assert!(text(&c["fix"]).contains("aws configure sso"), "{c:#}");
    assert!(text(&c["fix"]).contains("credential_process"), "{c:#}");
    let i = check(&report, "identity");
    assert!(
        text(&i["value"]).contains(&format!("arn:aws:iam::{}:user/alice", acct.id)),
        "{i:#}"
    );
    let k = check(&report, "access_keys");
    assert_eq!(k["status"], "pass", "{k:#}");
    assert!(
        text(&k["value"]).contains("1 active, none older than 90 days"),
        "{k:#}"
    );
    let all = format!("{}{}", r.stdout, r.stderr);
    assert!(!all.contains(&secret) && !all.contains(&key_id));
}

/// The fix commands (`aws ...`) of the failed checks, as written in the report.
fn aws_commands(report: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for c in report["checks"].as_array().unwrap() {
        if c["status"] != "fail" {
            continue;
        }
        for line in text(&c["fix"]).lines() {
            if let Some(at) = line.find("aws ") {
                let cmd = line[at..].split([';', '`']).next().unwrap().trim();
                out.push(cmd.to_string());
            }
        }
    }
    out
}

#[test]
fn a_newcomer_applies_the_fixes_doctor_names_and_train_then_succeeds() {
    // Half configured: the image and data are there, but the role does not trust SageMaker
    // and the output bucket of the config file was never created.
    let acct = block_on(async {
        let acct = Account::new("us-east-1").await;
        acct.role("SageMakerRole", "/", false).await;
        acct.image("unet-vessels", "latest").await;
        acct
    });
    let data = block_on(acct.bucket("data", &["train/img-001.png"]));
    let models = format!("models-{}", acct.id);
    let mut sb = Sandbox::new();
    acct.env(&mut sb);
    sb.write(
        "project/sagetrain.toml",
        &format!(
            "role = \"SageMakerRole\"\nimage = \"unet-vessels\"\noutput_path = \"s3://{models}/unet/\"\n\
             [channels]\ntrain = \"s3://{data}/train/\"\n"
        ),
    );
    let r = sb.run(&["doctor", "-o", "json"]).code(4);
    let commands = aws_commands(&r.json());
    assert_eq!(commands.len(), 2, "{commands:?}");
    // Run the fixes as written, in a shell, with the AWS CLI, in the user's project folder.
    let cli = std::env::var("SAGETRAIN_TEST_AWS_CLI").expect(
        "SAGETRAIN_TEST_AWS_CLI is not set: run ./scripts/test, which installs the AWS CLI",
    );
    let cli_dir = std::path::Path::new(&cli)
        .parent()
        .unwrap()
        .display()
        .to_string();
    let path = format!("{cli_dir}:{}", std::env::var("PATH").unwrap_or_default());
    for cmd in &commands {
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("{cmd} --endpoint-url {}", moto_url()))
            .current_dir(sb.project())
            .env_clear()
            .envs(sb.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("PATH", path.as_str())
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "`{cmd}` failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let r = sb.run(&["doctor", "-o", "json"]).ok();
    assert_eq!(r.json()["counts"]["fail"], 0);
    let r = sb.run(&["train", "--epochs", "50", "-o", "json"]).ok();
    let d = block_on(acct.describe(r.json()["job_name"].as_str().unwrap()));
    assert_eq!(
        d.output_data_config().unwrap().s3_output_path(),
        Some(format!("s3://{models}/unet/").as_str())
    );
    assert_eq!(
        d.hyper_parameters()
            .unwrap()
            .get("epochs")
            .map(String::as_str),
        Some("50")
    );
}

#[test]
fn offline_doctor_checks_only_what_needs_no_network() {
    let mut sb = Sandbox::new();
    sb.set("AWS_ENDPOINT_URL", &dead_endpoint());
    sb.write(
        "project/sagetrain.toml",
        "region = \"eu-west-1\"\nimage = \"unet-vessels\"\n",
    );
    let r = sb.run(&["doctor", "--offline", "-o", "json"]).ok();
    let report = r.json();
    assert_eq!(status(&report, "configuration"), "pass");
    assert_eq!(status(&report, "region"), "pass");
    for id in [
        "credentials",
        "identity",
        "execution_role",
        "image",
        "output_path",
    ] {
        let c = check(&report, id);
        assert_eq!(c["status"], "skip", "{id}");
        assert!(text(&c["value"]).contains("--offline"), "{id}: {c:#}");
    }
    // A bad setting is still found offline.
    let r = sb
        .run(&["doctor", "--offline", "--instance-type", "p3.2xlarge"])
        .code(2);
    assert!(
        r.stdout
            .contains("--instance-type: `p3.2xlarge` is not a SageMaker training instance type"),
        "{}",
        r.stdout
    );
}

#[test]
fn with_remote_debug_doctor_checks_the_session_plugin_and_the_ssm_permissions() {
    let mut sb = Sandbox::new();
    sb.set("AWS_ENDPOINT_URL", &dead_endpoint());
    sb.write(
        "project/sagetrain.toml",
        "region = \"eu-west-1\"\nimage = \"unet-vessels\"\nremote_debug = true\n",
    );
    // No plugin on PATH: a configuration failure (exit 2) with the install hint.
    let empty = sb.dir.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    sb.set("PATH", &empty.display().to_string());
    let r = sb.run(&["doctor", "--offline", "-o", "json"]).code(2);
    let report = r.json();
    let c = check(&report, "session_plugin");
    assert_eq!(c["status"], "fail", "{c:#}");
    assert!(
        text(&c["fix"]).contains("brew install --cask session-manager-plugin"),
        "{c:#}"
    );
    for id in ["start_session", "role_ssm_channels"] {
        assert_eq!(status(&report, id), "skip", "{id}");
    }

    // A plugin on PATH passes, with its version.
    let bin = sb.dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let plugin = bin.join("session-manager-plugin");
    std::fs::write(&plugin, "#!/bin/sh\necho 1.2.694.0\n").unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&plugin, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    sb.set("PATH", &format!("{}:/usr/bin:/bin", bin.display()));
    let report = sb.run(&["doctor", "--offline", "-o", "json"]).ok().json();
    let c = check(&report, "session_plugin");
    assert_eq!(c["status"], "pass", "{c:#}");
    assert!(
        text(&c["value"]).ends_with("session-manager-plugin 1.2.694.0"),
        "{c:#}"
    );

    // Without remote_debug none of the three is run.
    sb.write(
        "project/sagetrain.toml",
        "region = \"eu-west-1\"\nimage = \"unet-vessels\"\n",
    );
    let report = sb.run(&["doctor", "--offline", "-o", "json"]).ok().json();
    let ids: Vec<&str> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["id"].as_str())
        .collect();
    assert!(
        !ids.contains(&"session_plugin") && !ids.contains(&"start_session"),
        "{ids:?}"
    );
}

#[test]
fn doctor_reports_the_container_engine_of_local_runs_and_a_missing_one_is_a_warning() {
    let mut sb = Sandbox::new();
    sb.set("AWS_ENDPOINT_URL", &dead_endpoint());
    sb.write(
        "project/sagetrain.toml",
        "region = \"eu-west-1\"\nimage = \"unet-vessels\"\n",
    );
    // No engine on PATH: a warning with the install hint, and doctor still exits 0.
    let empty = sb.dir.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    sb.set("PATH", &empty.display().to_string());
    let report = sb.run(&["doctor", "--offline", "-o", "json"]).ok().json();
    let c = check(&report, "container_engine");
    assert_eq!(c["status"], "warn", "{c:#}");
    assert_eq!(c["name"], "container engine");
    assert!(
        text(&c["value"]).contains("neither docker nor podman is on PATH"),
        "{c:#}"
    );
    assert!(
        text(&c["fix"]).contains("sudo apt-get install podman"),
        "{c:#}"
    );
    assert!(text(&c["fix"]).contains("Docker Desktop"), "{c:#}");

    // A podman that runs containers: its version and runtime. Only it on PATH (a docker
    // elsewhere on PATH would be chosen first).
    let bin = fake_engine(
        &mut sb,
        "podman",
        "--version) echo 'podman version 9.9.9';;\ninfo) echo crun;;",
    );
    sb.set("PATH", &bin.display().to_string());
    let report = sb.run(&["doctor", "--offline", "-o", "json"]).ok().json();
    let c = check(&report, "container_engine");
    let value = text(&c["value"]);
    // A GPU machine without a CDI spec would warn; this one has none or has the spec.
    assert!(
        value.starts_with("podman version 9.9.9 (")
            && value.contains("runs containers (runtime crun)"),
        "{c:#}"
    );
    assert_eq!(c["source"], "PATH");

    // One whose `info` fails cannot run containers: a warning naming the failure.
    fake_engine(
        &mut sb,
        "podman",
        "--version) echo 'podman version 9.9.9';;\ninfo) echo 'cannot set up namespace' >&2; exit 125;;",
    );
    sb.set("PATH", &bin.display().to_string());
    let r = sb.run(&["doctor", "--offline"]).ok();
    assert!(
        r.stdout.contains("warn  container engine  podman version 9.9.9 (")
            && r.stdout.contains("cannot run containers: `podman info --format {{.Host.OCIRuntime.Name}}` failed (exit status: 125): cannot set up namespace"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("podman system migrate"), "{}", r.stdout);

    // The engine named by SAGETRAIN_ENGINE, and it is not there.
    sb.set("SAGETRAIN_ENGINE", "docker");
    let report = sb.run(&["doctor", "--offline", "-o", "json"]).ok().json();
    let c = check(&report, "container_engine");
    assert_eq!(c["status"], "warn", "{c:#}");
    assert!(
        text(&c["value"]).starts_with("`docker` (SAGETRAIN_ENGINE) is not on PATH"),
        "{c:#}"
    );
}
