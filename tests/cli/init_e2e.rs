//! `sagetrain init` end to end: the file it writes parses, carries what the account holds, and
//! drives `train`; it never overwrites without --force; without credentials (or offline) it
//! writes the commented template and says so.

use crate::harness::*;

fn uncommented_keys(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with('['))
        .map(|l| l.split('=').next().unwrap().trim().to_string())
        .collect()
}

#[test]
fn init_fills_in_what_the_account_holds_and_the_file_drives_train() {
    let acct = block_on(async {
        let acct = Account::new("eu-west-1").await;
        acct.role(
            "AmazonSageMaker-ExecutionRole-20240101T000000",
            "/service-role/",
            true,
        )
        .await;
        acct.role("ci-deployer", "/", false).await;
        acct.image("tools", "latest").await;
        acct.image("unet-vessels", "v3").await;
        acct
    });
    let data = block_on(acct.bucket("data", &["train/img-001.png"]));
    let mut sb = Sandbox::new();
    acct.env(&mut sb);
    let r = sb.run(&["init"]).ok();
    let path = sb.project().join("sagetrain.toml");
    assert_eq!(r.stdout.trim(), format!("wrote {}", path.display()));
    let text = std::fs::read_to_string(&path).unwrap();
    let role_arn = format!(
        "arn:aws:iam::{}:role/service-role/AmazonSageMaker-ExecutionRole-20240101T000000",
        acct.id
    );
    assert_eq!(
        uncommented_keys(&text),
        ["region", "role", "image"],
        "{text}"
    );
    assert!(text.contains("region = \"eu-west-1\""), "{text}");
    assert!(text.contains(&format!("role = \"{role_arn}\"")), "{text}");
    assert!(text.contains("image = \"unet-vessels:v3\""), "{text}");
    assert!(
        text.contains(&format!("account {}", acct.id)),
        "the account is in a comment"
    );
    for secret in [
        acct.creds.access_key_id(),
        acct.creds.secret_access_key(),
        acct.creds.session_token().unwrap(),
    ] {
        assert!(!text.contains(secret), "init wrote a credential");
    }
    let r = r.stderr_has("execution role: ");
    r.stderr_has("sagetrain doctor");

    // The config parser reads it, and reports where each value came from.
    let c = sb.run(&["config", "-o", "json"]).ok().json();
    assert_eq!(c["config_file"], path.display().to_string());
    assert_eq!(c["settings"]["image"]["value"], "unet-vessels:v3");
    assert!(c["settings"]["role"]["source"]
        .as_str()
        .unwrap()
        .starts_with("file "));

    // And train uses it: only the data is missing from it.
    let r = sb
        .run(&[
            "train",
            "--epochs",
            "50",
            "--train",
            &format!("s3://{data}/train/"),
            "-o",
            "json",
        ])
        .ok();
    let d = block_on(acct.describe(r.json()["job_name"].as_str().unwrap()));
    assert_eq!(d.role_arn(), Some(role_arn.as_str()));
    assert!(d
        .algorithm_specification()
        .unwrap()
        .training_image()
        .unwrap()
        .starts_with(&format!("{}/unet-vessels@sha256:", acct.registry())));
}

#[test]
fn init_never_overwrites_without_force_and_print_writes_nothing() {
    let acct = block_on(async {
        let acct = Account::new("us-east-1").await;
        acct.image("segmenter", "latest").await; // the only repository: chosen
        acct
    });
    let mut sb = Sandbox::new();
    acct.env(&mut sb);
    let path = sb.write("project/sagetrain.toml", "region = \"eu-west-1\"\n");

    let r = sb.run(&["init"]).code(2);
    assert!(
        r.stderr.contains("already exists; it was not changed"),
        "{}",
        r.stderr
    );
    r.stderr_has("--force");
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "region = \"eu-west-1\"\n"
    );

    let r = sb.run(&["init", "--print"]).ok();
    assert!(
        r.stdout.contains("image = \"segmenter:latest\""),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("region = \"us-east-1\""), "{}", r.stdout);
    // No role trusts SageMaker: left as an example, with the reason.
    assert!(
        r.stdout
            .contains("# role = \"SageMakerExecutionRole-unet\""),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("# None found: no execution role given"),
        "{}",
        r.stdout
    );
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "region = \"eu-west-1\"\n"
    );

    let r = sb.run(&["init", "--force", "-o", "json"]).ok();
    let j = r.json();
    assert_eq!(j["path"], path.display().to_string());
    assert_eq!(j["image"], "segmenter:latest");
    assert_eq!(j["account"], acct.id.as_str());
    assert_eq!(j["role"], serde_json::Value::Null);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("image = \"segmenter:latest\""), "{text}");
    // Nothing else was left in the folder (no temporary file).
    assert_eq!(std::fs::read_dir(sb.project()).unwrap().count(), 1);
}

#[test]
fn without_credentials_or_offline_init_writes_the_commented_template_and_says_so() {
    let mut sb = Sandbox::new();
    sb.set("AWS_ENDPOINT_URL", &dead_endpoint())
        .set("AWS_REGION", "eu-west-1");
    let r = sb.run(&["init"]).ok();
    let r = r.stderr_has("no usable AWS credentials");
    r.stderr_has("every value is a commented example");
    let text = std::fs::read_to_string(sb.project().join("sagetrain.toml")).unwrap();
    assert!(uncommented_keys(&text).is_empty(), "{text}");
    assert!(text.contains("# image = \"unet-vessels:latest\""));
    // The file is found and parses: `config` names it (and only misses the image).
    let r = sb.run(&["config", "-o", "json"]).code(2);
    assert_eq!(
        r.json()["config_file"],
        sb.project().join("sagetrain.toml").display().to_string()
    );
    r.stderr_has("no image given");

    let r = sb.run(&["init", "--offline", "--print"]).ok();
    let r = r.stderr_has("--offline");
    assert!(uncommented_keys(&r.stdout).is_empty(), "{}", r.stdout);
    assert!(r.stdout.contains("[hyperparameters]"));
}
