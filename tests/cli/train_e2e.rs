//! `sagetrain train` end to end against moto, each result checked with an independent read.

use crate::harness::*;
use serde_json::json;
use std::collections::BTreeMap;

fn hyperparameters(
    d: &aws_sdk_sagemaker::operation::describe_training_job::DescribeTrainingJobOutput,
) -> BTreeMap<String, String> {
    d.hyper_parameters()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

#[test]
fn train_with_environment_credentials_creates_the_exact_job() {
    let s = seeded("us-east-1");
    let mut sb = Sandbox::new();
    s.acct.env(&mut sb);
    let train = format!("s3://{}/data/train/", s.bucket);
    let validation = format!("s3://{}/data/validation/", s.bucket);
    let r = sb
        .run(&[
            "train",
            "--epochs",
            "50",
            "-H",
            "learning_rate=0.0001",
            "-H",
            "optimizer=adam",
            "-H",
            "augment=true",
            "--role",
            "SageMakerRole",
            "--image",
            "unet-vessels:latest",
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
            "--metric",
            "val_dice=val_dice=([0-9.]+)",
            "-o",
            "json",
        ])
        .ok();
    let out = r.json();
    let name = out["job_name"].as_str().unwrap().to_string();
    assert!(name.starts_with("unet-vessels-20"), "{name}");
    let pinned = format!("{}/unet-vessels@{}", s.acct.registry(), s.digest);
    let default_output = format!("s3://sagemaker-us-east-1-{}/sagetrain/", s.acct.id);
    assert_eq!(out["role_arn"], s.role_arn.as_str());
    assert_eq!(out["training_image"], pinned.as_str());
    assert_eq!(out["region"], "us-east-1");
    assert_eq!(out["output_path"], default_output.as_str());
    assert!(out["job_arn"]
        .as_str()
        .unwrap()
        .ends_with(&format!("training-job/{name}")));

    // Independent read.
    let d = block_on(s.acct.describe(&name));
    assert_eq!(
        hyperparameters(&d),
        BTreeMap::from([
            ("augment".to_string(), "true".to_string()),
            ("epochs".to_string(), "50".to_string()),
            ("learning_rate".to_string(), "0.0001".to_string()),
            ("optimizer".to_string(), "adam".to_string()),
        ])
    );
    assert_eq!(d.role_arn(), Some(s.role_arn.as_str()));
    assert!(
        s.role_arn.contains("/service-role/SageMakerRole"),
        "the role path is kept: {}",
        s.role_arn
    );
    assert_eq!(
        d.algorithm_specification().unwrap().training_image(),
        Some(pinned.as_str())
    );
    let channels: BTreeMap<String, String> = d
        .input_data_config()
        .iter()
        .map(|c| {
            (
                c.channel_name().unwrap_or_default().to_string(),
                c.data_source()
                    .unwrap()
                    .s3_data_source()
                    .unwrap()
                    .s3_uri()
                    .unwrap_or_default()
                    .to_string(),
            )
        })
        .collect();
    assert_eq!(
        channels,
        BTreeMap::from([("train".into(), train), ("validation".into(), validation)])
    );
    assert_eq!(
        d.output_data_config().unwrap().s3_output_path(),
        Some(default_output.as_str())
    );
    let rc = d.resource_config().unwrap();
    assert_eq!(
        rc.instance_type().map(|t| t.as_str()),
        Some("ml.p3.2xlarge")
    );
    assert_eq!(rc.instance_count(), Some(2));
    assert_eq!(rc.volume_size_in_gb(), Some(50));
    assert_eq!(
        d.stopping_condition().unwrap().max_runtime_in_seconds(),
        Some(7200)
    );
    assert_eq!(
        block_on(s.acct.tags(d.training_job_arn().unwrap())),
        vec![("project".into(), "vessels".into())]
    );
    assert!(
        block_on(s.acct.submission_id(d.training_job_arn().unwrap())).is_some(),
        "every job carries its run's submission id"
    );
    // The default bucket was created in the job's region.
    assert!(block_on(
        s.acct
            .bucket_exists(&format!("sagemaker-us-east-1-{}", s.acct.id))
    ));

    // The user is told which credentials, role and image were used, and from where.
    let r = r.stderr_has("credentials: environment variables");
    let r = r.stderr_has(&format!(
        "execution role: {} (lookup: iam:GetRole `SageMakerRole` from --role)",
        s.role_arn
    ));
    r.stderr_has("pinned to its digest");
}

#[test]
fn train_with_a_profile_and_a_config_file() {
    let s = seeded("eu-west-1");
    let mut sb = Sandbox::new();
    s.acct.profile(&mut sb, "ml");
    sb.write(
        "project/sagetrain.toml",
        &format!(
            "role = \"SageMakerRole\"\nimage = \"unet-vessels\"\npin_digest = false\n\
             output_path = \"s3://{b}/models/\"\nbase_name = \"vessel_seg\"\n\
             [hyperparameters]\nepochs = 10\nbatch_size = 8\nlearning_rate = 0.001\n\
             [channels]\ntrain = \"s3://{b}/data/train/\"\n[tags]\nteam = \"retina\"\n",
            b = s.bucket
        ),
    );
    let r = sb
        .run(&["train", "--profile", "ml", "--epochs", "50", "-o", "json"])
        .ok();
    let out = r.json();
    let name = out["job_name"].as_str().unwrap().to_string();
    assert!(
        name.starts_with("vessel-seg-20"),
        "the base name is sanitized: {name}"
    );
    let d = block_on(s.acct.describe(&name));
    assert_eq!(
        hyperparameters(&d),
        BTreeMap::from([
            ("batch_size".to_string(), "8".to_string()),
            ("epochs".to_string(), "50".to_string()),
            ("learning_rate".to_string(), "0.001".to_string()),
        ])
    );
    // Not pinned: the tag is kept.
    assert_eq!(
        d.algorithm_specification().unwrap().training_image(),
        Some(format!("{}/unet-vessels:latest", s.acct.registry()).as_str())
    );
    assert_eq!(
        d.output_data_config().unwrap().s3_output_path(),
        Some(format!("s3://{}/models/", s.bucket).as_str())
    );
    assert!(
        r.stderr
            .contains("credentials: profile `ml` (access keys) from"),
        "{}",
        r.stderr
    );
    assert_eq!(
        out["region"], "eu-west-1",
        "the region comes from the profile"
    );
}

#[test]
fn role_discovery_uses_the_single_execution_role() {
    let acct = block_on(async {
        let acct = Account::new("us-east-1").await;
        acct.role(
            "AmazonSageMaker-ExecutionRole-20240101T000000",
            "/service-role/",
            true,
        )
        .await;
        acct.role("ci-deployer", "/", false).await;
        acct.role("batch-runner", "/", true).await; // trusts SageMaker, but not named like it
        acct.image("unet-vessels", "latest").await;
        acct
    });
    let mut sb = Sandbox::new();
    acct.env(&mut sb);
    let r = sb
        .run(&[
            "train",
            "--epochs",
            "50",
            "--image",
            "unet-vessels",
            "-o",
            "json",
        ])
        .ok();
    let expected = format!(
        "arn:aws:iam::{}:role/service-role/AmazonSageMaker-ExecutionRole-20240101T000000",
        acct.id
    );
    assert_eq!(r.json()["role_arn"], expected.as_str());
    let d = block_on(acct.describe(r.json()["job_name"].as_str().unwrap()));
    assert_eq!(d.role_arn(), Some(expected.as_str()));
    assert!(
        r.stderr
            .contains("lookup: the only role in the account that trusts sagemaker.amazonaws.com"),
        "{}",
        r.stderr
    );
}

#[test]
fn a_full_ecr_image_uri_is_checked_and_pinned_too() {
    let s = seeded("us-east-1");
    let mut sb = Sandbox::new();
    s.acct.env(&mut sb);
    let image = format!("{}/unet-vessels:latest", s.acct.registry());
    let r = sb
        .run(&[
            "train",
            "--epochs",
            "5",
            "--role",
            &s.role_arn,
            "--image",
            &image,
            "-o",
            "json",
        ])
        .ok();
    let pinned = format!("{}/unet-vessels@{}", s.acct.registry(), s.digest);
    let d = block_on(s.acct.describe(r.json()["job_name"].as_str().unwrap()));
    assert_eq!(
        d.algorithm_specification().unwrap().training_image(),
        Some(pinned.as_str())
    );
    assert_eq!(
        d.role_arn(),
        Some(s.role_arn.as_str()),
        "an ARN is used as given"
    );
}

#[test]
fn role_discovery_uses_the_callers_own_role_when_it_trusts_sagemaker() {
    let acct = block_on(async {
        let acct = Account::new("us-east-1").await;
        // The test credentials are a session of the role `tester`.
        acct.role("tester", "/", true).await;
        acct.role("SageMakerOther", "/", true).await;
        acct.image("unet-vessels", "latest").await;
        acct
    });
    let mut sb = Sandbox::new();
    acct.env(&mut sb);
    let r = sb
        .run(&[
            "train",
            "--epochs",
            "50",
            "--image",
            "unet-vessels",
            "-o",
            "json",
        ])
        .ok();
    assert_eq!(
        r.json()["role_arn"],
        format!("arn:aws:iam::{}:role/tester", acct.id).as_str()
    );
    r.stderr_has("your own role");
}

#[test]
fn role_discovery_with_several_or_no_candidates_lists_them_and_says_how_to_choose() {
    let acct = block_on(async {
        let acct = Account::new("us-east-1").await;
        acct.image("unet-vessels", "latest").await;
        acct
    });
    let mut sb = Sandbox::new();
    acct.env(&mut sb);
    let r = sb
        .run(&["train", "--epochs", "50", "--image", "unet-vessels"])
        .code(2);
    assert!(
        r.stderr
            .contains("no role in the account trusts sagemaker.amazonaws.com"),
        "{}",
        r.stderr
    );
    r.stderr_has("SAGEMAKER_ROLE");

    block_on(async {
        acct.role("SageMakerRoleA", "/", true).await;
        acct.role("SageMakerRoleB", "/", true).await;
    });
    let r = sb
        .run(&["train", "--epochs", "50", "--image", "unet-vessels"])
        .code(2);
    let r = r.stderr_has("2 roles could be it");
    let r = r.stderr_has(&format!(
        "candidate: arn:aws:iam::{}:role/SageMakerRoleA",
        acct.id
    ));
    let r = r.stderr_has(&format!(
        "candidate: arn:aws:iam::{}:role/SageMakerRoleB",
        acct.id
    ));
    r.stderr_has("export SAGEMAKER_ROLE=arn:aws:iam::");
    assert!(block_on(acct.job_names()).is_empty());

    // SAGEMAKER_ROLE settles it.
    sb.set("SAGEMAKER_ROLE", "SageMakerRoleB");
    let r = sb
        .run(&[
            "train",
            "--epochs",
            "50",
            "--image",
            "unet-vessels",
            "-o",
            "json",
        ])
        .ok();
    assert_eq!(
        r.json()["role_arn"],
        format!("arn:aws:iam::{}:role/SageMakerRoleB", acct.id).as_str()
    );
    r.stderr_has("from SAGEMAKER_ROLE");
}

#[test]
fn dry_run_creates_nothing_and_prints_a_request_the_aws_cli_accepts() {
    let s = seeded("us-east-1");
    let mut sb = Sandbox::new();
    s.acct.env(&mut sb);
    let train = format!("s3://{}/data/train/", s.bucket);
    let r = sb
        .run(&[
            "train",
            "--epochs",
            "50",
            "-H",
            "learning_rate=0.0001",
            "--role",
            "SageMakerRole",
            "--image",
            "unet-vessels:latest",
            "--train",
            &train,
            "--tag",
            "project=vessels",
            "--spot",
            "--max-wait",
            "30h",
            "--env",
            "MODE=fast",
            "--dry-run",
        ])
        .ok();
    let req = r.json();
    assert_eq!(
        req["HyperParameters"],
        json!({"epochs": "50", "learning_rate": "0.0001"})
    );
    assert_eq!(req["RoleArn"], s.role_arn.as_str());
    assert_eq!(req["EnableManagedSpotTraining"], true);
    assert_eq!(
        req["StoppingCondition"],
        json!({"MaxRuntimeInSeconds": 86400, "MaxWaitTimeInSeconds": 108000})
    );
    let name = req["TrainingJobName"].as_str().unwrap().to_string();
    let default_bucket = format!("sagemaker-us-east-1-{}", s.acct.id);
    assert_eq!(
        req["CheckpointConfig"]["S3Uri"],
        format!("s3://{default_bucket}/sagetrain/{name}/checkpoints/").as_str()
    );
    // Nothing created: no job, and not even the default bucket.
    assert!(block_on(s.acct.job_names()).is_empty());
    assert!(!block_on(s.acct.bucket_exists(&default_bucket)));
    let r = r.stderr_has("would be created");

    // The AWS CLI takes the request as it is.
    let file = sb.write("project/request.json", &r.stdout);
    aws_cli(
        &sb,
        "us-east-1",
        &[
            "sagemaker",
            "create-training-job",
            "--cli-input-json",
            &format!("file://{}", file.display()),
        ],
    );
    let d = block_on(s.acct.describe(&name));
    assert_eq!(
        d.hyper_parameters()
            .unwrap()
            .get("epochs")
            .map(String::as_str),
        Some("50")
    );
}

#[test]
fn each_broken_link_is_named_with_its_fix_and_nothing_is_created() {
    let s = seeded("us-east-1");
    let other_region_bucket = block_on(async {
        let other = Account {
            region: "eu-west-1".into(),
            ..Account::new("eu-west-1").await
        };
        // Same account id as `s` is not needed: a bucket name is global.
        other.bucket("far-away", &["x"]).await
    });
    block_on(async {
        s.acct.role("Ec2Role", "/", false).await;
        s.acct
            .s3()
            .put_object()
            .bucket(&s.bucket)
            .key("other/readme.txt")
            .body(aws_sdk_s3::primitives::ByteStream::from_static(b"x"))
            .send()
            .await
            .unwrap();
    });
    let mut sb = Sandbox::new();
    s.acct.env(&mut sb);
    let train = format!("s3://{}/data/train/", s.bucket);
    let base = |extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = [
            "train",
            "--epochs",
            "5",
            "--role",
            "SageMakerRole",
            "--image",
            "unet-vessels",
            "--train",
            &train,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let run = |extra: &[&str]| {
        let args = base(extra);
        sb.run(&args.iter().map(String::as_str).collect::<Vec<_>>())
    };
    run(&["--role", "NoSuchRole"])
        .code(4)
        .stderr_has("the execution role `NoSuchRole` (from --role) does not exist")
        .stderr_has("examples/iam/");
    run(&["--role", "Ec2Role"])
        .code(4)
        .stderr_has("does not trust SageMaker")
        .stderr_has("sagemaker.amazonaws.com");
    run(&["--image", "unet-vessels:v9"])
        .code(4)
        .stderr_has("the image tag `v9` does not exist in the ECR repository `unet-vessels`")
        .stderr_has("tags in the repository: latest");
    run(&["--image", "no-such-repo:latest"])
        .code(4)
        .stderr_has("the ECR repository `no-such-repo` (from --image) does not exist")
        .stderr_has("sagetrain image push CONTEXT --repo");
    run(&["--output-path", "s3://no-such-bucket-sagetrain-tests/out/"]).code(4).stderr_has("the output bucket `no-such-bucket-sagetrain-tests` (from --output-path) does not exist").stderr_has("aws s3 mb");
    run(&["--output-path", &format!("s3://{other_region_bucket}/out/")])
        .code(4)
        .stderr_has("is in eu-west-1, but the job runs in us-east-1");
    run(&["--validation", &format!("s3://{}/empty/", s.bucket)])
        .code(4)
        .stderr_has("channel `validation`")
        .stderr_has("holds no objects")
        .stderr_has("aws s3 sync");
    run(&["--validation", "s3://no-such-bucket-sagetrain-tests/x/"])
        .code(4)
        .stderr_has(
            "channel `validation`: the bucket `no-such-bucket-sagetrain-tests` does not exist",
        );
    assert!(
        block_on(s.acct.job_names()).is_empty(),
        "no job may be created by a failed check"
    );
}

#[test]
fn rejected_credentials_exit_3_and_say_it_is_about_your_keys() {
    let mut sb = Sandbox::new();
    sb.set("AWS_ACCESS_KEY_ID", FAKE_KEY_ID)
        .set("AWS_SECRET_ACCESS_KEY", FAKE_SECRET);
    sb.set("AWS_REGION", "us-east-1")
        .set("AWS_ENDPOINT_URL", &rejecting_endpoint());
    sb.set("AWS_MAX_ATTEMPTS", "1");
    let r = sb
        .run(&[
            "train",
            "--epochs",
            "5",
            "--role",
            "SageMakerRole",
            "--image",
            "unet-vessels",
        ])
        .code(3);
    let r = r.stderr_has("AWS rejected your credentials");
    let r = r.stderr_has("InvalidClientTokenId");
    r.stderr_has("not the execution role");
}

#[test]
fn no_secret_or_full_key_id_appears_in_any_output_at_any_verbosity() {
    let s = seeded("us-east-1");
    let mut sb = Sandbox::new();
    s.acct.env(&mut sb);
    let secret = s.acct.creds.secret_access_key().to_string();
    let token = s.acct.creds.session_token().unwrap().to_string();
    let key_id = s.acct.creds.access_key_id().to_string();
    let train = format!("s3://{}/data/train/", s.bucket);
    for extra in [
        &["-vvv"][..],
        &["-vvv", "--dry-run"],
        &["-vv", "-o", "json"],
        &[],
    ] {
        let mut args = vec![
            "train",
            "--epochs",
            "5",
            "--role",
            "SageMakerRole",
            "--image",
            "unet-vessels",
            "--train",
            &train,
        ];
        args.extend_from_slice(extra);
        let r = sb.run(&args).ok();
        let all = format!("{}{}", r.stdout, r.stderr);
        assert!(
            !all.contains(&secret),
            "the secret key leaked with {extra:?}"
        );
        assert!(
            !all.contains(&token),
            "the session token leaked with {extra:?}"
        );
        assert!(
            !all.contains(&key_id),
            "the access key id leaked with {extra:?}"
        );
        if extra.contains(&"-vvv") {
            assert!(
                r.stderr.lines().count() > 20,
                "-vvv shows the SDK's debug log:\n{}",
                r.stderr
            );
        }
    }
}

/// 16 identical `train` runs started at once from one project (a CI matrix, `xargs -P`): 16
/// distinct names and 16 jobs, read back with ListTrainingJobs.
#[test]
fn concurrent_identical_submits_never_share_a_job() {
    let s = seeded("us-east-1");
    let mut sb = Sandbox::new();
    s.acct.env(&mut sb);
    let train = format!("s3://{}/data/train/", s.bucket);
    sb.write(
        "sagetrain.toml",
        &format!(
            "role = \"SageMakerRole\"\nimage = \"unet-vessels:latest\"\n[channels]\ntrain = \"{train}\"\n"
        ),
    );
    let sb = &sb;
    let names: Vec<String> = std::thread::scope(|scope| {
        let runs: Vec<_> = (0..16)
            .map(|_| scope.spawn(move || sb.run(&["train", "--epochs", "5", "-o", "json"])))
            .collect();
        runs.into_iter()
            .map(|h| {
                let r = h.join().unwrap().ok();
                r.json()["job_name"].as_str().unwrap().to_string()
            })
            .collect()
    });
    let distinct: std::collections::BTreeSet<&String> = names.iter().collect();
    assert_eq!(distinct.len(), 16, "{names:?}");
    for n in &names {
        assert!(n.len() <= 63, "{n}");
        assert!(n.starts_with("unet-vessels-"), "{n}");
    }
    let listed = block_on(s.acct.job_names());
    for n in &names {
        assert!(
            listed.contains(n),
            "{n} not in ListTrainingJobs: {listed:?}"
        );
    }
    assert_eq!(listed.len(), 16, "{listed:?}");
}

/// Each request: its operation and when it started and ended (ms after the first start).
fn timeline(entries: &[crate::proxy::Entry]) -> Vec<String> {
    let t0 = entries.iter().map(|e| e.started).min();
    entries
        .iter()
        .map(|e| {
            let ms = |t: std::time::Instant| t.duration_since(t0.unwrap()).as_millis();
            format!("{} {}-{}", e.op, ms(e.started), ms(e.finished))
        })
        .collect()
}

/// The operations of the requests a proxy saw, sorted.
fn ops(proxy: &crate::proxy::Proxy) -> Vec<String> {
    let mut o: Vec<String> = proxy.requests().into_iter().map(|e| e.op).collect();
    o.sort();
    o
}

/// Over a real network what counts is how many requests run one after another. Every request
/// is held 400 ms by the proxy, so that the ones sent together overlap; the proxy also answers
/// ECR's layer download, so that the platform check completes and is cached as on ECR.
#[test]
fn a_later_submit_is_two_rounds_of_requests_and_the_first_at_most_four() {
    use crate::proxy::rounds;
    let s = seeded("us-east-1");
    // A single image (not a list): its platform is in its config blob, read through the layer
    // download URL the proxy serves.
    let manifest = r#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{"mediaType":"application/vnd.docker.container.image.v1+json","size":7023,"digest":"sha256:abababababababababababababababababababababababababababababababab"},"layers":[]}"#;
    let digest = block_on(async {
        let ecr = s.acct.ecr();
        ecr.create_repository()
            .repository_name("unet-single")
            .send()
            .await
            .expect("ecr:CreateRepository");
        let out = ecr
            .put_image()
            .repository_name("unet-single")
            .image_manifest(manifest)
            .image_tag("v1")
            .send()
            .await
            .expect("ecr:PutImage");
        let id = out.image().unwrap().image_id().unwrap();
        id.image_digest().unwrap().to_string()
    });
    let (sb, proxy) = crate::data_e2e::sandbox_via_proxy(&s.acct);
    proxy.answer_layer_downloads();
    // Long enough that a busy machine's delay in sending a request (a debug build on shared
    // cores: up to about 150 ms) cannot put it after an unrelated one.
    proxy.set_delay(std::time::Duration::from_millis(400));
    let mut args = crate::faults::train_args(&s, "chain", &["-o", "json"]);
    let at = args
        .iter()
        .position(|a| a == "unet-vessels:latest")
        .unwrap();
    args[at] = "unet-single:v1".into();
    let submit = |sb: &Sandbox| {
        proxy.clear();
        let r = crate::faults::run(sb, &args).ok();
        let job = r.json()["job_name"].as_str().unwrap().to_string();
        (r, job, proxy.requests())
    };

    // 1. A new machine: the account first, then the default bucket and the platform.
    let (_, job1, first) = submit(&sb);
    let first_ops = ops(&proxy);
    assert!(
        rounds(&first) <= 4,
        "{} rounds: {:#?}",
        rounds(&first),
        timeline(&first)
    );
    for op in [
        "GetCallerIdentity",
        "BatchGetImage",
        "GetDownloadUrlForLayer",
        "config blob",
    ] {
        assert!(first_ops.contains(&op.to_string()), "{op}: {first_ops:?}");
    }
    assert!(
        !first_ops.contains(&"DescribeImages".to_string()),
        "{first_ops:?}"
    );
    // No --keep-alive and no job of the project kept a pool: no warm pool lookup.
    assert!(
        !first_ops.contains(&"ListTrainingJobs".to_string()),
        "{first_ops:?}"
    );

    // 2. Later: every lookup at once, then CreateTrainingJob. The role, the image digest and
    // the channels are asked again; the account, the default bucket (within the hour) and the
    // digest's platform are remembered.
    let (r2, job2, later) = submit(&sb);
    let later_ops = ops(&proxy);
    assert_eq!(rounds(&later), 2, "{:#?}", timeline(&later));
    assert_eq!(
        later_ops,
        [
            "BatchGetImage",
            "CreateTrainingJob",
            &format!("GET /{}/", s.bucket),
            &format!("GET /{}/", s.bucket),
            "GetRole",
        ],
        "{}",
        r2.stderr
    );
    // Checked independently: both jobs exist, with the image pinned to the pushed digest.
    for job in [&job1, &job2] {
        let d = block_on(s.acct.describe(job));
        let image = d
            .algorithm_specification()
            .unwrap()
            .training_image()
            .unwrap();
        assert!(image.ends_with(&format!("unet-single@{digest}")), "{image}");
        assert!(d
            .output_data_config()
            .unwrap()
            .s3_output_path()
            .unwrap()
            .starts_with(&format!(
                "s3://{}/",
                crate::data_e2e::default_bucket(&s.acct)
            )));
    }

    // 3. --refresh asks everything again (the platform included).
    let mut refresh = args.clone();
    refresh.push("--refresh".into());
    proxy.clear();
    crate::faults::run(&sb, &refresh).ok();
    let refreshed = ops(&proxy);
    for op in ["GetCallerIdentity", "GetDownloadUrlForLayer"] {
        assert!(refreshed.contains(&op.to_string()), "{op}: {refreshed:?}");
    }
    assert!(
        refreshed.iter().any(|o| o.starts_with("HEAD /sagemaker-")),
        "{refreshed:?}"
    );
    assert!(rounds(&proxy.requests()) <= 4);

    // 4. A job that keeps a warm pool looks for one, and so does the project's next job.
    let mut keep = args.clone();
    keep.extend(["--keep-alive".to_string(), "30m".to_string()]);
    proxy.clear();
    crate::faults::run(&sb, &keep).ok();
    assert_eq!(proxy.count_op("ListTrainingJobs"), 1, "{:?}", ops(&proxy));
    assert_eq!(
        rounds(&proxy.requests()),
        2,
        "{:#?}",
        timeline(&proxy.requests())
    );
    let (_, _, after) = submit(&sb);
    assert_eq!(proxy.count_op("ListTrainingJobs"), 1, "{:?}", ops(&proxy));
    assert_eq!(rounds(&after), 2);
    // With -v, a submit says why it did not look.
    sb.write("project/.sagetrain/state.json", "{}");
    proxy.clear();
    let mut verbose = args.clone();
    verbose.push("-v".into());
    crate::faults::run(&sb, &verbose)
        .ok()
        .stderr_has("warm pools not looked up: this job asks for no --keep-alive");
    assert_eq!(proxy.count_op("ListTrainingJobs"), 0);
}

/// `status`, `wait` and `logs` of a finished job are each one round of requests.
#[test]
fn status_wait_and_logs_of_a_finished_job_are_one_round() {
    use crate::proxy::rounds;
    let s = seeded("us-east-1");
    let (sb, proxy) = crate::data_e2e::sandbox_via_proxy(&s.acct);
    let args = crate::faults::train_args(&s, "oneround", &["-o", "json"]);
    let job = crate::faults::run(&sb, &args).ok().json()["job_name"]
        .as_str()
        .unwrap()
        .to_string();
    proxy.set_delay(std::time::Duration::from_millis(150));
    for cmd in ["status", "wait", "logs"] {
        proxy.clear();
        sb.run(&[cmd, &job]).ok();
        let seen = proxy.requests();
        assert_eq!(rounds(&seen), 1, "{cmd}: {:#?}", timeline(&seen));
    }
    // `logs` asks for the job and its streams together.
    assert_eq!(
        ops(&proxy),
        ["DescribeLogStreams", "DescribeTrainingJob"],
        "{:#?}",
        proxy.requests()
    );
}

/// Several instance types go as `InstancePreferences` (no `InstanceType`), with the job's
/// pending limit; `status` shows the types asked for (the emulator never selects one).
#[test]
fn instance_preferences_and_max_pending_reach_the_job() {
    let s = seeded("us-east-1");
    let mut sb = Sandbox::new();
    s.acct.env(&mut sb);
    let train = format!("s3://{}/data/train/", s.bucket);
    let r = sb
        .run(&[
            "train",
            "--role",
            "SageMakerRole",
            "--image",
            "unet-vessels:latest",
            "--train",
            &train,
            "--instance-type",
            "ml.g5.2xlarge,ml.g6.2xlarge,ml.g5.4xlarge",
            "--max-pending",
            "2h",
            "-o",
            "json",
        ])
        .ok();
    let job = r.json()["job_name"].as_str().unwrap().to_string();
    let d = block_on(s.acct.describe(&job));
    let rc = d.resource_config().unwrap();
    let types: Vec<&str> = rc
        .instance_preferences()
        .iter()
        .filter_map(|p| p.instance_type().map(|t| t.as_str()))
        .collect();
    assert_eq!(types, ["ml.g5.2xlarge", "ml.g6.2xlarge", "ml.g5.4xlarge"]);
    assert!(rc.instance_type().is_none(), "{rc:?}");
    assert_eq!(rc.instance_count(), Some(1));
    assert_eq!(
        d.stopping_condition()
            .unwrap()
            .max_pending_time_in_seconds(),
        Some(7200)
    );
    let st = sb.run(&["status", &job]).ok();
    assert!(
        st.stdout
            .contains("1 x one of ml.g5.2xlarge, ml.g6.2xlarge, ml.g5.4xlarge"),
        "{}",
        st.stdout
    );

    // With spot, refused before any call.
    sb.run(&[
        "train",
        "--role",
        "SageMakerRole",
        "--image",
        "unet-vessels:latest",
        "--train",
        &train,
        "--instance-type",
        "ml.g5.2xlarge,ml.g6.2xlarge",
        "--spot",
    ])
    .code(2)
    .stderr_has("cannot be combined with managed spot training");
}
