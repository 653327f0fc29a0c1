//! `--secret NAME=SECRET_ID` end to end against moto's Secrets Manager: the job's request holds
//! the secret's ARN (read back from the CreateTrainingJob the proxy saw, since the emulator does
//! not keep a job's Environment), and the secret's value is in no request, no output at `-vvv`
//! and no file sagetrain writes. The secrets are created with the AWS CLI.

use crate::harness::*;
use crate::proxy::Proxy;
use serde_json::Value;

const TOKEN: &str = "wandb-0123456789abcdef0123456789abcdef0123";
const PASSWORD: &str = "correct horse battery staple 9f8e7d";

/// An account seeded for `train`, with two secrets: a plain token, and a JSON object with a
/// password. Returns (seeded, sandbox, token ARN, database ARN).
fn with_secrets() -> (Seeded, Sandbox, String, String) {
    let s = seeded("eu-west-1");
    let mut sb = Sandbox::new();
    s.acct.env(&mut sb);
    let dir = tempfile::tempdir().unwrap();
    // From files, as the README says: never a secret on a command line.
    let token_file = dir.path().join("token.txt");
    std::fs::write(&token_file, TOKEN).unwrap();
    let db_file = dir.path().join("db.json");
    std::fs::write(
        &db_file,
        serde_json::json!({"user": "unet", "password": PASSWORD}).to_string(),
    )
    .unwrap();
    let create = |name: &str, file: &std::path::Path| {
        let out = aws_cli(
            &sb,
            "eu-west-1",
            &[
                "secretsmanager",
                "create-secret",
                "--name",
                name,
                "--secret-string",
                &format!("file://{}", file.display()),
            ],
        );
        out["ARN"].as_str().unwrap().to_string()
    };
    let token_arn = create("sagetrain/wandb", &token_file);
    let db_arn = create("sagetrain/db", &db_file);
    (s, sb, token_arn, db_arn)
}

fn train_args(s: &Seeded) -> Vec<String> {
    [
        "train",
        "--epochs",
        "1",
        "--role",
        "SageMakerRole",
        "--image",
        "unet-vessels:latest",
        "--train",
        &format!("s3://{}/data/train/", s.bucket),
    ]
    .iter()
    .map(|a| a.to_string())
    .collect()
}

/// No trace of either value in `text`.
fn assert_no_value(what: &str, text: &str) {
    assert!(!text.contains(TOKEN), "the token is in {what}:\n{text}");
    assert!(
        !text.contains(PASSWORD),
        "the password is in {what}:\n{text}"
    );
}

/// Every file below `dir` (the sandbox's home and project: state, caches, config).
fn assert_no_value_in_files(dir: &std::path::Path) {
    for entry in walk(dir) {
        if let Ok(bytes) = std::fs::read(&entry) {
            assert_no_value(
                &entry.display().to_string(),
                &String::from_utf8_lossy(&bytes),
            );
        }
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn the_job_gets_the_secrets_arn_and_the_value_goes_nowhere() {
    let (s, mut sb, token_arn, db_arn) = with_secrets();
    let proxy = Proxy::start(&moto_url());
    sb.set("AWS_ENDPOINT_URL", &proxy.url);
    // As in GitHub Actions: the job summary is one more file that must not hold a value.
    let summary = sb.project().join("step-summary.md");
    sb.set("GITHUB_ACTIONS", "true")
        .set("GITHUB_STEP_SUMMARY", summary.to_str().unwrap());
    let mut args = train_args(&s);
    args.extend(
        [
            "--secret",
            "WANDB_API_KEY=sagetrain/wandb",
            "--secret",
            "DB_PASSWORD=sagetrain/db:password",
            "--wait",
            "-vvv",
            "-o",
            "json",
        ]
        .map(String::from),
    );
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let r = sb.run(&argv).ok();
    assert!(
        r.stderr.contains(&format!(
            "secret WANDB_API_KEY: the job reads it from {token_arn} (its value is not sent)"
        )),
        "{}",
        r.stderr
    );
    assert_no_value("stdout", &r.stdout);
    assert_no_value("stderr at -vvv", &r.stderr);

    // What was asked: DescribeSecret for each, never GetSecretValue.
    let counts = proxy.counts();
    assert_eq!(counts.get("DescribeSecret"), Some(&2), "{counts:?}");
    assert_eq!(counts.get("GetSecretValue"), None, "{counts:?}");
    // What was sent: the ARNs in the job's environment, no value in any request.
    for e in proxy.requests() {
        assert_no_value(&e.op, &e.json_body);
    }
    let create = proxy
        .requests()
        .into_iter()
        .find(|e| e.op == "CreateTrainingJob")
        .expect("a CreateTrainingJob");
    let sent: Value = serde_json::from_str(&create.json_body).unwrap();
    assert_eq!(
        sent["Environment"],
        serde_json::json!({
            "SAGETRAIN_SECRET_WANDB_API_KEY": token_arn,
            "SAGETRAIN_SECRET_DB_PASSWORD": format!("{db_arn}:password"),
        })
    );
    // The job is there (an independent read), and no file of this machine holds a value.
    let job = r.json()["job_name"].as_str().unwrap().to_string();
    assert_eq!(sent["TrainingJobName"], job.as_str());
    let d = block_on(s.acct.describe(&job));
    assert_eq!(d.training_job_name(), Some(job.as_str()));
    assert!(
        std::fs::read_to_string(&summary).unwrap().contains(&job),
        "the summary was written"
    );
    assert_no_value_in_files(&sb.home());
    assert_no_value_in_files(&sb.project());

    // The dry run shows the same request, and `config` the setting, never a value.
    sb.set("AWS_ENDPOINT_URL", &moto_url());
    let mut dry = train_args(&s);
    dry.extend(
        [
            "--secret",
            "WANDB_API_KEY=sagetrain/wandb",
            "--dry-run",
            "-o",
            "json",
        ]
        .map(String::from),
    );
    let argv: Vec<&str> = dry.iter().map(String::as_str).collect();
    let r = sb.run(&argv).ok();
    assert_eq!(
        r.json()["Environment"]["SAGETRAIN_SECRET_WANDB_API_KEY"],
        token_arn.as_str(),
        "{}",
        r.stdout
    );
    assert_no_value("the dry run", &r.stdout);
}

#[test]
fn a_missing_secret_stops_the_submit_and_a_name_needs_a_lookup_offline() {
    let (s, mut sb, _, db_arn) = with_secrets();
    let proxy = Proxy::start(&moto_url());
    sb.set("AWS_ENDPOINT_URL", &proxy.url);
    let mut args = train_args(&s);
    args.extend(["--secret", "HF_TOKEN=sagetrain/hf"].map(String::from));
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let r = sb
        .run(&argv)
        .code(4)
        .stderr_has("secret HF_TOKEN (--secret HF_TOKEN): there is no secret `sagetrain/hf` in Secrets Manager in eu-west-1")
        .stderr_has("aws secretsmanager create-secret --region eu-west-1 --name sagetrain/hf --secret-string file://token.txt");
    assert!(r.stdout.is_empty(), "{}", r.stdout);
    assert_eq!(proxy.count_op("CreateTrainingJob"), 0);
    assert!(block_on(s.acct.job_names()).is_empty());

    // Offline: a name cannot become an ARN (exit 2, nothing sent); an ARN can.
    proxy.clear();
    let offline = |secret: &str| {
        vec![
            "train".to_string(),
            "--offline".into(),
            "--dry-run".into(),
            "--no-pin-digest".into(),
            "--region".into(),
            "eu-west-1".into(),
            "--role".into(),
            s.role_arn.clone(),
            "--image".into(),
            format!("{}/unet-vessels:latest", s.acct.registry()),
            "--output-path".into(),
            format!("s3://{}/out/", s.bucket),
            "--secret".into(),
            secret.into(),
            "-o".into(),
            "json".into(),
        ]
    };
    let a = offline("DB=sagetrain/db");
    let argv: Vec<&str> = a.iter().map(String::as_str).collect();
    sb.run(&argv)
        .code(2)
        .stderr_has("--secret DB: the secret name `sagetrain/db` needs a lookup");
    let a = offline(&format!("DB={db_arn}:password"));
    let argv: Vec<&str> = a.iter().map(String::as_str).collect();
    let r = sb.run(&argv).ok();
    assert_eq!(
        r.json()["Environment"]["SAGETRAIN_SECRET_DB"],
        format!("{db_arn}:password")
    );
    assert_eq!(proxy.total(), 0, "offline sends nothing");
}

#[test]
fn doctor_checks_each_secret() {
    let (s, mut sb, token_arn, _) = with_secrets();
    sb.write(
        "project/sagetrain.toml",
        &format!(
            "role = \"SageMakerRole\"\nimage = \"unet-vessels:latest\"\n\
             [channels]\ntrain = \"s3://{}/data/train/\"\n\
             [secrets]\nWANDB_API_KEY = \"sagetrain/wandb\"\nHF_TOKEN = \"sagetrain/hf\"\n",
            s.bucket
        ),
    );
    sb.set("AWS_REGION", "eu-west-1");
    let r = sb.run(&["doctor", "-o", "json"]).code(4);
    let report = r.json();
    let check = |id: &str| -> Value {
        report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == id)
            .unwrap_or_else(|| panic!("no check {id} in {report:#}"))
            .clone()
    };
    // Found; whether the role may read it cannot be simulated on the emulator (a warning).
    let found = check("secret.WANDB_API_KEY");
    assert_eq!(found["name"], "secret WANDB_API_KEY");
    assert_eq!(found["status"], "warn", "{found:#}");
    let value = found["value"].as_str().unwrap();
    assert!(
        value.starts_with(&format!("{token_arn} exists;")),
        "{value}"
    );
    assert!(value.contains("could not be checked"), "{value}");
    assert!(found["fix"]
        .as_str()
        .unwrap()
        .contains("\"Action\": \"secretsmanager:GetSecretValue\""));
    assert!(found["source"]
        .as_str()
        .unwrap()
        .contains("secrets.WANDB_API_KEY"));
    let missing = check("secret.HF_TOKEN");
    assert_eq!(missing["status"], "fail", "{missing:#}");
    assert!(missing["value"]
        .as_str()
        .unwrap()
        .contains("there is no secret `sagetrain/hf`"));
    assert_no_value("doctor's report", &r.stdout);
}
