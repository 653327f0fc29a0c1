//! The binary with no emulator: validation, dry runs offline, credentials errors, exit codes.

use crate::harness::*;

const ROLE: &str = "arn:aws:iam::123456789012:role/service-role/SageMakerRole";
const IMAGE: &str = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/unet-vessels:v1";

fn offline_args() -> Vec<&'static str> {
    vec![
        "train",
        "--epochs",
        "50",
        "--role",
        ROLE,
        "--image",
        IMAGE,
        "--no-pin-digest",
        "--train",
        "s3://my-data/unet/train/",
        "--output-path",
        "s3://my-models/unet/",
        "--region",
        "eu-west-1",
        "--dry-run",
        "--offline",
    ]
}

#[test]
fn version_and_help() {
    let sb = Sandbox::new();
    let r = sb.run(&["--version"]).ok();
    assert!(r.stdout.starts_with("sagetrain "), "{}", r.stdout);
    let r = sb.run(&["train", "--help"]).ok();
    assert!(r.stdout.contains("--epochs"));
    assert!(r.stdout.contains("SAGEMAKER_ROLE"));
}

#[test]
fn offline_dry_run_needs_no_credentials_and_no_network() {
    let mut sb = Sandbox::new();
    // Anything sent would fail: no credentials, and a dead endpoint.
    sb.set("AWS_ENDPOINT_URL", &dead_endpoint());
    let r = sb.run(&offline_args()).ok();
    let req = r.json();
    assert_eq!(req["HyperParameters"], serde_json::json!({"epochs": "50"}));
    assert_eq!(req["RoleArn"], ROLE);
    assert_eq!(req["AlgorithmSpecification"]["TrainingImage"], IMAGE);
    assert_eq!(req["AlgorithmSpecification"]["TrainingInputMode"], "File");
    assert_eq!(
        req["OutputDataConfig"]["S3OutputPath"],
        "s3://my-models/unet/"
    );
    assert_eq!(
        req["ResourceConfig"],
        serde_json::json!({"InstanceType": "ml.g5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 30})
    );
    assert_eq!(
        req["StoppingCondition"],
        serde_json::json!({"MaxRuntimeInSeconds": 86400})
    );
    assert_eq!(req["InputDataConfig"][0]["ChannelName"], "train");
    let name = req["TrainingJobName"].as_str().unwrap();
    assert!(name.starts_with("unet-vessels-20"), "{name}");
    assert!(name.len() <= 63);
    r.stderr_has("dry run");
}

#[test]
fn offline_names_every_value_that_needs_a_lookup() {
    let sb = Sandbox::new();
    let r = sb
        .run(&[
            "train",
            "--epochs",
            "5",
            "--role",
            "SageMakerRole",
            "--image",
            "unet:latest",
            "--dry-run",
            "--offline",
        ])
        .code(2);
    for needle in [
        "--role: a role name needs a lookup",
        "--image: a bare repository name needs the account",
        "--offline: the default output bucket needs the account",
        "--offline: no region",
        "nothing was sent to AWS",
    ] {
        assert!(
            r.stderr.contains(needle),
            "missing {needle:?}:\n{}",
            r.stderr
        );
    }
    assert!(r.stdout.is_empty());
}

#[test]
fn invalid_input_is_rejected_before_any_call_with_every_violation() {
    let mut sb = Sandbox::new();
    sb.set("AWS_ENDPOINT_URL", &dead_endpoint());
    sb.set("AWS_ACCESS_KEY_ID", FAKE_KEY_ID)
        .set("AWS_SECRET_ACCESS_KEY", FAKE_SECRET);
    let r = sb
        .run(&[
            "train",
            "--epochs",
            "fifty",
            "--name",
            "unet_v2",
            "--instance-type",
            "p3.2xlarge",
            "--image",
            "unet",
            "--role",
            "SageMakerRole",
            "--region",
            "eu-west-1",
            "--channel",
            "train=/data/train",
            "--max-run",
            "2h",
            "--spot",
            "--max-wait",
            "1h",
            "--env",
            "AWS_SECRET_ACCESS_KEY=abc",
        ])
        .code(2);
    for needle in [
        "--epochs epochs: `fifty` is not a positive whole number",
        "--name: `unet_v2` is not a valid job name",
        "--instance-type: `p3.2xlarge` is not a SageMaker training instance type (did you mean ml.p3.2xlarge?)",
        "--channel train: the local folder /data/train does not exist",
        "--max-wait: must be at least the maximum run time",
        "--env AWS_SECRET_ACCESS_KEY: `AWS_SECRET_ACCESS_KEY` would hand your credentials",
    ] {
        assert!(r.stderr.contains(needle), "missing {needle:?}:\n{}", r.stderr);
    }
    // Rejected before the network: the dead endpoint was never mentioned.
    assert!(!r.stderr.contains("connection"), "{}", r.stderr);
}

#[test]
fn a_key_pasted_into_a_hyperparameter_is_refused_and_masked() {
    let sb = Sandbox::new();
    let mut args = offline_args();
    args.extend(["-H", "api_key=AKIAIOSFODNN7EXAMPLE"]);
    let r = sb.run(&args).code(2);
    let r = r.stderr_has("--hyperparameter api_key: the value (****************MPLE) looks like an AWS access key id");
    assert!(!r.stderr.contains("AKIAIOSFODNN7EXAMPLE"));
}

/// Token shapes assembled at run time (no literal token in the source).
fn third_party_tokens() -> (String, String, String) {
    let alnum = "aB3dE5fG7hJ9kL1mN2pQ4rS6tU8vW0xY2zA4cD6eF8gH";
    (
        "3f8a1c9e2b7d4f6a0c5e8b1d9f2a7c4e6b0d8f1a".to_string(),
        format!("hf_{}", &alnum[..34]),
        format!("ghp_{}", &alnum[..36]),
    )
}

/// The case: a W&B key (by its name), a Hugging Face token and a GitHub token (by
/// their formats) are refused before any call, each named, no value in any output, at -vvv too.
#[test]
fn third_party_tokens_are_refused_naming_the_entry_never_the_value() {
    let sb = Sandbox::new();
    let (wandb, hf, gh) = third_party_tokens();
    let (e1, e2, h1) = (
        format!("WANDB_API_KEY={wandb}"),
        format!("HF_TOKEN={hf}"),
        format!("github_token={gh}"),
    );
    let mut args = offline_args();
    args.extend(["-vvv", "--env", &e1, "--env", &e2, "-H", &h1]);
    let r = sb.run(&args).code(2);
    let r = r
        .stderr_has("--env WANDB_API_KEY: looks like a secret (its name says so")
        .stderr_has("--env HF_TOKEN: looks like a Hugging Face token")
        .stderr_has("--hyperparameter github_token: looks like a GitHub token")
        .stderr_has("--allow-plaintext HF_TOKEN");
    for value in [&wandb, &hf, &gh] {
        assert!(!r.stdout.contains(value.as_str()), "{}", r.stdout);
        assert!(!r.stderr.contains(value.as_str()), "{}", r.stderr);
    }

    // `sagetrain config` shows the entries, masked, and refuses them as `train` does.
    let r = sb
        .run(&["config", "--env", &e1, "--env", &e2, "-H", &h1])
        .code(2);
    assert!(r.stdout.contains("environment.HF_TOKEN"), "{}", r.stdout);
    for value in [&wandb, &hf, &gh] {
        assert!(!r.stdout.contains(value.as_str()), "{}", r.stdout);
        assert!(!r.stderr.contains(value.as_str()), "{}", r.stderr);
    }

    // --allow-plaintext NAME lets each named entry through, with a warning naming it.
    args.extend([
        "--allow-plaintext",
        "WANDB_API_KEY",
        "--allow-plaintext",
        "HF_TOKEN",
    ]);
    args.extend(["--allow-plaintext", "github_token"]);
    let r = sb
        .run(&args)
        .ok()
        .stderr_has("--env HF_TOKEN looks like a Hugging Face token and is sent in plain text (--allow-plaintext HF_TOKEN)");
    assert_eq!(r.json()["Environment"]["HF_TOKEN"], hf.as_str());
}

/// sagetrain's own tag counts toward the service's 50.
#[test]
fn fifty_tags_leave_no_room_for_sagetrains_own() {
    let sb = Sandbox::new();
    let tags: Vec<String> = (0..50).map(|i| format!("t{i}=v")).collect();
    let mut args = offline_args();
    for t in &tags {
        args.extend(["--tag", t.as_str()]);
    }
    sb.run(&args)
        .code(2)
        .stderr_has("tags: 50 given; sagetrain adds 1 of its own (sagetrain:submission-id), so at most 49 are left for yours");
    let r = sb.run(&args[..args.len() - 2]).ok();
    assert_eq!(r.json()["Tags"].as_array().unwrap().len(), 50);
}

/// A warm pool up to the model's 6 hours; above 1 hour a warning that it is billed.
#[test]
fn a_long_keep_alive_is_sent_with_a_warning() {
    let sb = Sandbox::new();
    let mut args = offline_args();
    args.extend(["--keep-alive", "6h"]);
    let r = sb.run(&args).ok().stderr_has("billed");
    assert_eq!(
        r.json()["ResourceConfig"]["KeepAlivePeriodInSeconds"],
        21600
    );
    args.extend(["--keep-alive", "7h"]);
    sb.run(&args)
        .code(2)
        .stderr_has("--keep-alive: a warm pool is kept at most 6 hours (21600s; got 25200s)");
}

#[test]
fn remote_debug_is_in_the_dry_run_and_refused_with_network_isolation() {
    let sb = Sandbox::new();
    let mut args = offline_args();
    assert!(sb.run(&args).ok().json().get("RemoteDebugConfig").is_none());
    args.push("--remote-debug");
    assert_eq!(
        sb.run(&args).ok().json()["RemoteDebugConfig"],
        serde_json::json!({"EnableRemoteDebug": true})
    );
    args.push("--network-isolation");
    sb.run(&args)
        .code(2)
        .stderr_has("--remote-debug: remote debugging needs the container's network");
}

#[test]
fn config_file_values_flags_and_env_layer_and_config_shows_sources() {
    let mut sb = Sandbox::new();
    sb.write(
        "project/sagetrain.toml",
        &format!(
            "region = \"eu-west-1\"\nrole = \"{ROLE}\"\nimage = \"{IMAGE}\"\npin_digest = false\n\
             instance_type = \"ml.p3.2xlarge\"\nmax_run = \"90m\"\noutput_path = \"s3://my-models/unet/\"\n\
             [hyperparameters]\nepochs = 10\nlearning_rate = 0.0001\naugment = true\n\
             [channels]\ntrain = \"s3://my-data/unet/train/\"\n[tags]\nproject = \"vessels\"\n"
        ),
    );
    sb.set(
        "SAGETRAIN_IMAGE",
        "123456789012.dkr.ecr.eu-west-1.amazonaws.com/unet-vessels:env",
    );
    // From a sub-folder: the file is found in a parent.
    std::fs::create_dir_all(sb.project().join("sub")).unwrap();
    let r = sb
        .run_in(
            &sb.project().join("sub"),
            &["train", "--epochs", "50", "--dry-run", "--offline"],
        )
        .ok();
    let req = r.json();
    assert_eq!(
        req["HyperParameters"],
        serde_json::json!({"augment": "true", "epochs": "50", "learning_rate": "0.0001"})
    );
    assert_eq!(
        req["AlgorithmSpecification"]["TrainingImage"],
        "123456789012.dkr.ecr.eu-west-1.amazonaws.com/unet-vessels:env"
    );
    assert_eq!(req["ResourceConfig"]["InstanceType"], "ml.p3.2xlarge");
    assert_eq!(req["StoppingCondition"]["MaxRuntimeInSeconds"], 5400);
    assert_eq!(
        user_tags(&req),
        serde_json::json!([{"Key": "project", "Value": "vessels"}])
    );

    let r = sb.run(&["config", "--epochs", "50", "-o", "json"]).ok();
    let c = r.json();
    assert_eq!(
        c["settings"]["hyperparameters.epochs"]["source"],
        "flag --epochs"
    );
    assert_eq!(c["settings"]["image"]["source"], "env SAGETRAIN_IMAGE");
    assert!(c["settings"]["role"]["source"]
        .as_str()
        .unwrap()
        .starts_with("file "));
    assert_eq!(c["settings"]["instance_count"]["source"], "default");
    let r = sb.run(&["config"]).ok();
    assert!(
        r.stdout.contains("hyperparameters.learning_rate"),
        "{}",
        r.stdout
    );

    // Every other command's settings too: tune's, the time limits, polling, uploads.
    sb.write(
        "project/sagetrain.toml",
        &format!(
            "region = \"eu-west-1\"\nimage = \"{IMAGE}\"\n[tune]\nmax_jobs = 20\n[tune.ranges]\nbatch_size = [8, 16]\n"
        ),
    );
    sb.set("SAGETRAIN_UPLOAD_CONCURRENCY", "4");
    let c = sb
        .run(&[
            "config",
            "--range",
            "lr=1e-5..1e-2:log",
            "--poll-interval",
            "2s",
            "--deadline",
            "10m",
            "-o",
            "json",
        ])
        .ok()
        .json();
    let s = &c["settings"];
    assert_eq!(s["tune.ranges.lr"]["source"], "flag --range");
    assert_eq!(s["tune.ranges.batch_size"]["value"], "8,16");
    assert!(s["tune.max_jobs"]["source"]
        .as_str()
        .unwrap()
        .starts_with("file "));
    assert_eq!(s["tune.parallel"]["source"], "default");
    assert_eq!(s["poll_interval"]["value"], "2s");
    assert_eq!(s["deadline"]["source"], "flag --deadline");
    assert_eq!(s["read_timeout"]["source"], "default");
    assert_eq!(
        s["upload_concurrency"]["source"],
        "env SAGETRAIN_UPLOAD_CONCURRENCY"
    );
}

#[test]
fn a_broken_config_file_names_the_line_and_key() {
    let sb = Sandbox::new();
    sb.write(
        "project/sagetrain.toml",
        "region = \"eu-west-1\"\ninstance_cont = 2\n",
    );
    let r = sb.run(&["config"]).code(2);
    let r = r.stderr_has("sagetrain.toml:2");
    r.stderr_has("instance_cont");
    sb.write(
        "project/sagetrain.toml",
        "[environment]\nKEY = \"AKIAIOSFODNN7EXAMPLE\"\n",
    );
    let r = sb.run(&["config"]).code(2);
    assert!(
        r.stderr
            .contains("sagetrain.toml:2: the config file holds an AWS access key id"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("AKIAIOSFODNN7EXAMPLE"));
}

#[test]
fn a_missing_profile_fails_at_once_listing_the_profiles_that_exist() {
    let mut sb = Sandbox::new();
    sb.write(
        "home/.aws/config",
        "[profile dev]\nregion = eu-west-1\n[profile prod]\nregion = eu-west-1\n",
    );
    sb.set("AWS_PROFILE", "staging");
    let r = sb
        .run(&[
            "train",
            "--epochs",
            "5",
            "--image",
            "unet",
            "--region",
            "eu-west-1",
        ])
        .code(3);
    assert!(r.stderr.contains("the AWS profile `staging` (from AWS_PROFILE) does not exist; profiles that exist: dev, prod"), "{}", r.stderr);
    r.stderr_has("aws configure sso --profile staging");
}

/// `train` with no credentials: exit 3 within 2 seconds, explaining the two kinds of
/// credentials and the next step.
fn fails_fast_without_credentials(sb: &Sandbox) {
    let r = sb
        .run(&[
            "train",
            "--epochs",
            "5",
            "--image",
            "unet",
            "--region",
            "eu-west-1",
        ])
        .code(3);
    assert!(
        r.elapsed < std::time::Duration::from_secs(2),
        "took {:?}",
        r.elapsed
    );
    for needle in [
        "no AWS credentials found",
        "YOUR credentials",
        "EXECUTION ROLE",
        "aws sso login",
    ] {
        assert!(
            r.stderr.contains(needle),
            "missing {needle:?}:\n{}",
            r.stderr
        );
    }
}

#[test]
fn no_credentials_anywhere_fails_fast_and_explains_the_two_kinds() {
    let mut sb = Sandbox::new();
    sb.set("AWS_ENDPOINT_URL", &dead_endpoint());
    fails_fast_without_credentials(&sb);
}

#[test]
fn no_region_is_a_clear_error() {
    let mut sb = Sandbox::new();
    sb.set("AWS_ACCESS_KEY_ID", FAKE_KEY_ID)
        .set("AWS_SECRET_ACCESS_KEY", FAKE_SECRET);
    let r = sb
        .run(&["train", "--epochs", "5", "--image", "unet"])
        .code(2);
    let r = r.stderr_has("no AWS region is set");
    r.stderr_has("AWS_REGION");
}

#[test]
fn invalid_retry_settings_are_errors_not_panics() {
    let mut sb = Sandbox::new();
    sb.set("AWS_ACCESS_KEY_ID", FAKE_KEY_ID)
        .set("AWS_SECRET_ACCESS_KEY", FAKE_SECRET);
    sb.set("AWS_MAX_ATTEMPTS", "zero");
    let r = sb
        .run(&[
            "train",
            "--epochs",
            "5",
            "--image",
            "unet",
            "--region",
            "eu-west-1",
        ])
        .code(2);
    assert!(
        r.stderr
            .contains("AWS_MAX_ATTEMPTS: `zero` is not a valid number of attempts"),
        "{}",
        r.stderr
    );
    sb.unset("AWS_MAX_ATTEMPTS").set("AWS_RETRY_MODE", "fast");
    let r = sb
        .run(&[
            "train",
            "--epochs",
            "5",
            "--image",
            "unet",
            "--region",
            "eu-west-1",
        ])
        .code(2);
    assert!(
        r.stderr
            .contains("AWS_RETRY_MODE: `fast` is not a retry mode"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("panicked"));
}

/// A first run with nothing set up points to `init` and `doctor`; with a config file, the
/// usual hint (the file is there: its values are what to fix).
#[test]
fn a_first_run_with_nothing_set_up_points_to_init_and_doctor() {
    let mut sb = Sandbox::new();
    sb.set("AWS_REGION", "eu-west-1");
    let r = sb
        .run(&["train", "--epochs", "50"])
        .code(2)
        .stderr_has("no image given")
        .stderr_has("no sagetrain.toml was found");
    r.stderr_has("`sagetrain init`")
        .stderr_has("`sagetrain doctor`");
    sb.write("sagetrain.toml", "region = \"eu-west-1\"\n");
    let r = sb.run(&["train", "--epochs", "50"]).code(2);
    assert!(
        !r.stderr.contains("no sagetrain.toml was found"),
        "{}",
        r.stderr
    );
    r.stderr_has("no image given");
}

#[test]
fn usage_errors_exit_2() {
    let sb = Sandbox::new();
    sb.run(&["train", "--no-such-flag"]).code(2);
    sb.run(&["frobnicate"]).code(2);
}

#[test]
fn the_example_configuration_is_valid() {
    let sb = Sandbox::new();
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/sagetrain.toml");
    let r = sb.run(&["config", "--config", example, "-o", "json"]).ok();
    let c = r.json();
    assert_eq!(c["settings"]["hyperparameters.epochs"]["value"], "50");
    assert!(c["settings"]["metrics.val_dice"]["value"]
        .as_str()
        .unwrap()
        .contains("val_dice="));
    // With the lookups supplied, it makes a request offline.
    let r = sb
        .run(&[
            "train",
            "--config",
            example,
            "--offline",
            "--dry-run",
            "--no-pin-digest",
            "--role",
            "arn:aws:iam::111122223333:role/SageMakerExecutionRole-unet",
            "--image",
            "111122223333.dkr.ecr.eu-west-1.amazonaws.com/unet-vessels:latest",
            "--output-path",
            "s3://sagemaker-eu-west-1-111122223333/sagetrain/",
        ])
        .ok();
    assert_eq!(
        r.json()["AlgorithmSpecification"]["MetricDefinitions"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

#[test]
fn every_train_option_reaches_the_request() {
    let sb = Sandbox::new();
    let mut args = offline_args();
    args.extend([
        "--spot",
        "--max-run",
        "90m",
        "--max-wait",
        "3h",
        "--checkpoint-s3",
        "s3://my-models/ck/",
        "--subnet",
        "subnet-0abc",
        "--subnet",
        "subnet-0def",
        "--security-group",
        "sg-0123",
        "--kms-key",
        "alias/unet",
        "--network-isolation",
        "--env",
        "MODE=fast",
        "--tag",
        "team=retina",
        "--channel",
        "masks=s3://my-data/unet/masks/",
        "--instance-count",
        "2",
        "--volume-size",
        "100",
        "--name",
        "unet-exact-name",
        "--metric",
        "val_dice=val_dice=([0-9.]+)",
    ]);
    let req = sb.run(&args).ok().json();
    assert_eq!(req["TrainingJobName"], "unet-exact-name");
    assert_eq!(req["EnableManagedSpotTraining"], true);
    assert_eq!(
        req["StoppingCondition"],
        serde_json::json!({"MaxRuntimeInSeconds": 5400, "MaxWaitTimeInSeconds": 10800})
    );
    assert_eq!(
        req["CheckpointConfig"],
        serde_json::json!({"S3Uri": "s3://my-models/ck/", "LocalPath": "/opt/ml/checkpoints/"})
    );
    assert_eq!(
        req["VpcConfig"],
        serde_json::json!({"SecurityGroupIds": ["sg-0123"], "Subnets": ["subnet-0abc", "subnet-0def"]})
    );
    assert_eq!(req["OutputDataConfig"]["KmsKeyId"], "alias/unet");
    assert_eq!(
        req["ResourceConfig"],
        serde_json::json!({"InstanceType": "ml.g5.xlarge", "InstanceCount": 2, "VolumeSizeInGB": 100, "VolumeKmsKeyId": "alias/unet"})
    );
    assert_eq!(req["EnableNetworkIsolation"], true);
    assert_eq!(req["Environment"], serde_json::json!({"MODE": "fast"}));
    assert_eq!(
        user_tags(&req),
        serde_json::json!([{"Key": "team", "Value": "retina"}])
    );
    assert_eq!(
        req["AlgorithmSpecification"]["MetricDefinitions"],
        serde_json::json!([{"Name": "val_dice", "Regex": "val_dice=([0-9.]+)"}])
    );
    let channels: Vec<&str> = req["InputDataConfig"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["ChannelName"].as_str().unwrap())
        .collect();
    assert_eq!(channels, vec!["masks", "train"]);
}

#[test]
fn no_credentials_with_instance_metadata_enabled_still_fails_within_two_seconds() {
    // Instance metadata that accepts connections and never answers, as on a laptop where the
    // address leads nowhere: the probe is bounded.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", silent.local_addr().unwrap());
    let mut sb = Sandbox::new();
    sb.unset("AWS_EC2_METADATA_DISABLED");
    sb.set("AWS_EC2_METADATA_SERVICE_ENDPOINT", &endpoint);
    sb.set("AWS_ENDPOINT_URL", &dead_endpoint());
    fails_fast_without_credentials(&sb);
    drop(silent);
}

/// The request's tags but the submission id, which is checked to be there (one, 16 hex digits).
fn user_tags(req: &serde_json::Value) -> serde_json::Value {
    let tags = req["Tags"].as_array().expect("Tags");
    let ids: Vec<&serde_json::Value> = tags.iter().filter(|t| t["Key"] == SUBMISSION_TAG).collect();
    assert_eq!(ids.len(), 1, "one submission id tag: {tags:?}");
    let id = ids[0]["Value"].as_str().unwrap();
    assert!(
        id.len() == 16 && id.chars().all(|c| c.is_ascii_hexdigit()),
        "{id}"
    );
    serde_json::Value::Array(
        tags.iter()
            .filter(|t| t["Key"] != SUBMISSION_TAG)
            .cloned()
            .collect(),
    )
}
