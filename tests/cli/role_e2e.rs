//! `sagetrain init --create-role` end to end on the emulator, each result read back with the AWS
//! CLI: the role's trust and inline policy exactly as derived from the settings, a second run
//! that changes nothing, a new channel that updates the policy, a foreign role refused
//! untouched, a dry run that creates nothing, a refused call; then `train` with the role and
//! `doctor`'s role checks. The emulator accepts any policy and cannot simulate one, so the
//! derived policy is also checked by `parliament` (installed by ./scripts/test) and by a small
//! evaluation of its statements (`allowed`).

use crate::harness::*;
use crate::proxy::{Fault, Pick, Proxy, Rule};
use serde_json::{json, Value};
use std::process::{Command, Stdio};

const ROLE: &str = "SageMaker-UNetTraining-ExecutionRole";
const KMS_KEY: &str = "1234abcd-12ab-34cd-56ef-1234567890ab";

// --- a small policy evaluator: statement by statement, action and resource matched with
// IAM's wildcards, StringEquals/StringLike conditions on the request's context, an explicit
// deny winning over any allow, and no allow meaning denied ---------------------------------------

fn as_list(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a
            .iter()
            .filter_map(|x| x.as_str().map(str::to_string))
            .collect(),
        _ => vec![],
    }
}

/// IAM's wildcard match: `*` any run of characters, `?` one.
fn glob(pattern: &str, text: &str, case_insensitive: bool) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = if case_insensitive {
        (
            pattern.to_lowercase().chars().collect(),
            text.to_lowercase().chars().collect(),
        )
    } else {
        (pattern.chars().collect(), text.chars().collect())
    };
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

fn conditions_hold(cond: &Value, context: &[(&str, &str)]) -> bool {
    let Some(ops) = cond.as_object() else {
        return true;
    };
    ops.iter().all(|(op, keys)| {
        keys.as_object().into_iter().flatten().all(|(key, wanted)| {
            let Some((_, got)) = context.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)) else {
                return false;
            };
            as_list(wanted).iter().any(|w| match op.as_str() {
                "StringEquals" => w == got,
                "StringLike" => glob(w, got, false),
                other => panic!("the evaluator does not know the condition operator {other}"),
            })
        })
    })
}

fn statements(policy: &Value) -> Vec<Value> {
    match &policy["Statement"] {
        Value::Array(a) => a.clone(),
        s @ Value::Object(_) => vec![s.clone()],
        _ => vec![],
    }
}

/// May a principal with `policy` do `action` on `resource`, in this request context?
fn allowed(policy: &Value, action: &str, resource: &str, context: &[(&str, &str)]) -> bool {
    let applies = |st: &Value| {
        as_list(&st["Action"]).iter().any(|a| glob(a, action, true))
            && as_list(&st["Resource"])
                .iter()
                .any(|r| glob(r, resource, false))
            && conditions_hold(&st["Condition"], context)
    };
    let matching: Vec<Value> = statements(policy).into_iter().filter(applies).collect();
    if matching.iter().any(|st| st["Effect"] == "Deny") {
        return false;
    }
    matching.iter().any(|st| st["Effect"] == "Allow")
}

#[test]
fn the_evaluator_matches_wildcards_and_an_explicit_deny_wins() {
    let p = json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "s3:Get*", "Resource": "arn:aws:s3:::b/data/*"},
        {"Effect": "Deny", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/data/secret/*"},
        {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "arn:aws:s3:::b",
         "Condition": {"StringLike": {"s3:prefix": "data/*"}}}
    ]});
    assert!(allowed(
        &p,
        "s3:GetObject",
        "arn:aws:s3:::b/data/x.png",
        &[]
    ));
    assert!(allowed(
        &p,
        "S3:getobject",
        "arn:aws:s3:::b/data/x.png",
        &[]
    ));
    assert!(!allowed(
        &p,
        "s3:GetObject",
        "arn:aws:s3:::b/data/secret/k",
        &[]
    ));
    assert!(!allowed(&p, "s3:GetObject", "arn:aws:s3:::b/other", &[]));
    assert!(!allowed(
        &p,
        "s3:PutObject",
        "arn:aws:s3:::b/data/x.png",
        &[]
    ));
    assert!(allowed(
        &p,
        "s3:ListBucket",
        "arn:aws:s3:::b",
        &[("s3:prefix", "data/train/")]
    ));
    assert!(!allowed(
        &p,
        "s3:ListBucket",
        "arn:aws:s3:::b",
        &[("s3:prefix", "private/")]
    ));
    assert!(!allowed(&p, "s3:ListBucket", "arn:aws:s3:::b", &[]));
    assert!(glob("a?c*", "abcdef", false) && !glob("a?c", "abcd", false));
}

// --- parliament ----------------------------------------------------------------------------

/// parliament's findings on a policy (none: an empty list). It is installed into the test venv by
/// ./scripts/test; without it the test fails.
fn parliament(policy: &Value) -> Vec<Value> {
    let bin = std::env::var("SAGETRAIN_TEST_PARLIAMENT").expect(
        "SAGETRAIN_TEST_PARLIAMENT is not set: run ./scripts/test, which installs parliament",
    );
    let mut child = Command::new(bin)
        .args(["--json", "--minimum_severity", "LOW"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run parliament");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin
            .write_all(serde_json::to_string_pretty(policy).unwrap().as_bytes())
            .unwrap();
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let findings: Vec<Value> = stdout
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("parliament printed {l}: {e}")))
        .collect();
    // parliament exits 1 when it found something, 0 when not; anything else is a failure to run.
    assert!(
        out.status.code() == Some(0) && findings.is_empty()
            || out.status.code() == Some(1) && !findings.is_empty(),
        "parliament failed: {:?}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    findings
}

#[test]
fn parliament_finds_nothing_in_a_derived_policy_and_something_in_a_wrong_one() {
    use sagetrain::role_policy::{permission_policy, ImageNeed, RoleNeeds, S3Uri, Vpc};
    let s3 = |b: &str, k: &str| S3Uri {
        bucket: b.into(),
        key: k.into(),
    };
    // Every statement the derivation can make: channels, output, checkpoints, image, KMS,
    // network, secrets and remote debugging.
    let needs = RoleNeeds {
        partition: "aws".into(),
        region: "eu-west-1".into(),
        account: "111122223333".into(),
        reads: vec![
            ("channel train".into(), s3("vessels-data", "train/")),
            ("channel test".into(), s3("other-data", "test")),
            ("code".into(), s3("models", "sagetrain/code/")),
        ],
        output: s3("models", "sagetrain/"),
        checkpoint: Some(s3("checkpoints-bucket", "unet/")),
        image: ImageNeed::Ecr {
            account: "111122223333".into(),
            region: "eu-west-1".into(),
            repository: "unet-vessels".into(),
        },
        kms_key: Some(format!("arn:aws:kms:eu-west-1:111122223333:key/{KMS_KEY}")),
        vpc: Some(Vpc {
            subnets: vec!["subnet-0a1b2c3d".into()],
            security_groups: vec!["sg-0a1b2c3d".into()],
        }),
        secrets: vec!["arn:aws:secretsmanager:eu-west-1:111122223333:secret:wandb-AbCdEf".into()],
        remote_debug: true,
    };
    let policy = permission_policy(&needs);
    assert_eq!(parliament(&policy), Vec::<Value>::new(), "{policy:#}");
    for unknown in [ImageNeed::Unknown, ImageNeed::Other] {
        let p = permission_policy(&RoleNeeds {
            image: unknown,
            kms_key: Some(KMS_KEY.into()),
            ..needs.clone()
        });
        assert_eq!(parliament(&p), Vec::<Value>::new(), "{p:#}");
    }
    // The check can fail: a bucket ARN for an object action, and an action that does not exist.
    let wrong = json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::vessels-data"},
        {"Effect": "Allow", "Action": "s3:GetObjekt", "Resource": "arn:aws:s3:::vessels-data/*"}
    ]});
    let issues: Vec<String> = parliament(&wrong)
        .iter()
        .map(|f| f["issue"].as_str().unwrap_or_default().to_string())
        .collect();
    assert!(
        issues.contains(&"RESOURCE_MISMATCH".to_string()),
        "{issues:?}"
    );
    assert!(issues.contains(&"UNKNOWN_ACTION".to_string()), "{issues:?}");
}

// --- end to end ------------------------------------------------------------------------------

struct Project {
    acct: Account,
    sb: Sandbox,
    data: String,
    other: String,
}

/// An account with an image and two data buckets, and a project whose sagetrain.toml has two
/// S3 channels, a code folder, a KMS key and a subnet.
fn project() -> Project {
    let (acct, data, other) = block_on(async {
        let acct = Account::new("eu-west-1").await;
        acct.image("unet-vessels", "latest").await;
        let data = acct.bucket("vessels", &["train/img-001.png"]).await;
        let other = acct.bucket("holdout", &["val/img-101.png"]).await;
        (acct, data, other)
    });
    let mut sb = Sandbox::new();
    acct.env(&mut sb);
    sb.write("project/src/train.py", "print('training')\n");
    sb.write(
        "project/sagetrain.toml",
        &format!(
            r#"# The vessel segmentation project.
region = "eu-west-1"
image = "unet-vessels:latest"   # pushed by CI
source = "src"
kms_key = "arn:aws:kms:eu-west-1:{id}:key/{KMS_KEY}"
subnets = ["subnet-0a1b2c3d"]
security_groups = ["sg-0a1b2c3d"]

[channels]
# the labelled images
train = "s3://{data}/train/"
validation = "s3://{other}/val/"
"#,
            id = acct.id
        ),
    );
    Project {
        acct,
        sb,
        data,
        other,
    }
}

/// The role as the AWS CLI reads it: the role, its inline policy document, its inline policy
/// names.
fn read_back(p: &Project) -> (Value, Value, Value) {
    let region = &p.acct.region;
    let role = aws_cli(&p.sb, region, &["iam", "get-role", "--role-name", ROLE]);
    let policy = aws_cli(
        &p.sb,
        region,
        &[
            "iam",
            "get-role-policy",
            "--role-name",
            ROLE,
            "--policy-name",
            "sagetrain-execution",
        ],
    );
    let names = aws_cli(
        &p.sb,
        region,
        &["iam", "list-role-policies", "--role-name", ROLE],
    );
    (
        role["Role"].clone(),
        policy["PolicyDocument"].clone(),
        names["PolicyNames"].clone(),
    )
}

/// What the settings of [`project`] need, written out by hand.
fn expected_policy(p: &Project, extra_channel: Option<&str>) -> Value {
    let (id, r) = (&p.acct.id, &p.acct.region);
    let default = format!("sagemaker-{r}-{id}");
    let mut buckets = vec![
        (
            default.clone(),
            vec![
                "sagetrain/*/checkpoints/*".to_string(),
                "sagetrain/code/*".to_string(),
            ],
        ),
        (p.other.clone(), vec!["val/*".to_string()]),
        (p.data.clone(), vec!["train/*".to_string()]),
    ];
    if let Some(b) = extra_channel {
        buckets.push((b.to_string(), vec!["more/*".to_string()]));
    }
    buckets.sort();
    let one_or_list = |v: Vec<String>| {
        if v.len() == 1 {
            json!(v[0])
        } else {
            json!(v)
        }
    };
    let objects: Vec<String> = buckets
        .iter()
        .flat_map(|(b, keys)| keys.iter().map(move |k| format!("arn:aws:s3:::{b}/{k}")))
        .collect();
    let mut st = vec![
        json!({"Sid": "ReadInputData", "Effect": "Allow", "Action": "s3:GetObject", "Resource": objects}),
    ];
    for (i, (b, keys)) in buckets.iter().enumerate() {
        st.push(json!({"Sid": format!("ListInputData{}", i + 1), "Effect": "Allow", "Action": "s3:ListBucket",
            "Resource": format!("arn:aws:s3:::{b}"),
            "Condition": {"StringLike": {"s3:prefix": one_or_list(keys.clone())}}}));
    }
    st.extend([
        json!({"Sid": "WriteModelAndCheckpoints", "Effect": "Allow", "Action": "s3:PutObject",
            "Resource": format!("arn:aws:s3:::{default}/sagetrain/*")}),
        json!({"Sid": "PullTrainingImage", "Effect": "Allow",
            "Action": ["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"],
            "Resource": format!("arn:aws:ecr:{r}:{id}:repository/unet-vessels")}),
        json!({"Sid": "EcrLoginHasNoResource", "Effect": "Allow", "Action": "ecr:GetAuthorizationToken", "Resource": "*"}),
        json!({"Sid": "WriteTrainingLogs", "Effect": "Allow",
            "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:DescribeLogStreams", "logs:PutLogEvents"],
            "Resource": format!("arn:aws:logs:{r}:{id}:log-group:/aws/sagemaker/TrainingJobs*")}),
        json!({"Sid": "PublishTrainingMetrics", "Effect": "Allow", "Action": "cloudwatch:PutMetricData", "Resource": "*",
            "Condition": {"StringEquals": {"cloudwatch:namespace": "/aws/sagemaker/TrainingJobs"}}}),
        json!({"Sid": "UseTheKmsKey", "Effect": "Allow", "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
            "Resource": format!("arn:aws:kms:{r}:{id}:key/{KMS_KEY}")}),
        json!({"Sid": "DescribeTheNetworkHasNoResource", "Effect": "Allow",
            "Action": ["ec2:DescribeDhcpOptions", "ec2:DescribeNetworkInterfaces", "ec2:DescribeSecurityGroups", "ec2:DescribeSubnets", "ec2:DescribeVpcs"],
            "Resource": "*"}),
        json!({"Sid": "CreateNetworkInterfacesInTheSubnets", "Effect": "Allow", "Action": "ec2:CreateNetworkInterface",
            "Resource": [format!("arn:aws:ec2:{r}:{id}:subnet/subnet-0a1b2c3d"), format!("arn:aws:ec2:{r}:{id}:security-group/sg-0a1b2c3d"), format!("arn:aws:ec2:{r}:{id}:network-interface/*")]}),
        json!({"Sid": "ManageTheNetworkInterfaces", "Effect": "Allow",
            "Action": ["ec2:CreateNetworkInterfacePermission", "ec2:DeleteNetworkInterface", "ec2:DeleteNetworkInterfacePermission"],
            "Resource": format!("arn:aws:ec2:{r}:{id}:network-interface/*")}),
    ]);
    json!({"Version": "2012-10-17", "Statement": st})
}

#[test]
fn create_role_derives_least_privilege_runs_twice_safely_and_train_and_doctor_use_it() {
    let mut p = project();
    let (id, region) = (p.acct.id.clone(), p.acct.region.clone());
    let arn = format!("arn:aws:iam::{id}:role/service-role/{ROLE}");
    let r = p.sb.run(&["init", "--create-role", "-o", "json"]).ok();
    let out = r.json();
    assert_eq!(out["status"], "created", "{out:#}");
    assert_eq!(out["role_arn"], arn);
    assert_eq!(out["config_change"], "role_set");

    // Read back independently: trust, tags, path and the inline policy exactly as derived.
    let (role, policy, names) = read_back(&p);
    assert_eq!(role["Arn"], arn);
    assert_eq!(role["Path"], "/service-role/");
    assert_eq!(
        role["AssumeRolePolicyDocument"],
        json!({"Version": "2012-10-17", "Statement": [{"Sid": "SageMakerAssumesThisRole", "Effect": "Allow",
            "Principal": {"Service": "sagemaker.amazonaws.com"}, "Action": "sts:AssumeRole",
            "Condition": {"StringEquals": {"aws:SourceAccount": id}}}]})
    );
    let mut tags: Vec<(String, String)> = role["Tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["Key"].as_str().unwrap().into(),
                t["Value"].as_str().unwrap().into(),
            )
        })
        .collect();
    tags.sort();
    assert_eq!(
        tags,
        [
            ("sagetrain:managed".to_string(), "true".to_string()),
            ("sagetrain:project".into(), "project".into())
        ]
    );
    assert_eq!(names, json!(["sagetrain-execution"]));
    assert_eq!(policy, expected_policy(&p, None), "{policy:#}");
    // No managed policy at all, AmazonSageMakerFullAccess least of all.
    let attached = aws_cli(
        &p.sb,
        &region,
        &["iam", "list-attached-role-policies", "--role-name", ROLE],
    );
    assert_eq!(attached["AttachedPolicies"], json!([]));

    // What the stored policy lets the job do, statement by statement.
    let default = format!("sagemaker-{region}-{id}");
    let obj = |b: &str, k: &str| format!("arn:aws:s3:::{b}/{k}");
    assert!(allowed(
        &policy,
        "s3:GetObject",
        &obj(&p.data, "train/img-001.png"),
        &[]
    ));
    assert!(allowed(
        &policy,
        "s3:GetObject",
        &obj(&p.other, "val/img-101.png"),
        &[]
    ));
    assert!(allowed(
        &policy,
        "s3:ListBucket",
        &format!("arn:aws:s3:::{}", p.data),
        &[("s3:prefix", "train/")]
    ));
    assert!(allowed(
        &policy,
        "s3:PutObject",
        &obj(&default, "sagetrain/unet-1/output/model.tar.gz"),
        &[]
    ));
    assert!(allowed(
        &policy,
        "s3:GetObject",
        &obj(&default, "sagetrain/code/0123/train.py"),
        &[]
    ));
    assert!(!allowed(
        &policy,
        "s3:GetObject",
        &obj("another-bucket", "train/img-001.png"),
        &[]
    ));
    assert!(!allowed(
        &policy,
        "s3:ListBucket",
        "arn:aws:s3:::another-bucket",
        &[("s3:prefix", "")]
    ));
    assert!(!allowed(
        &policy,
        "s3:ListBucket",
        &format!("arn:aws:s3:::{}", p.data),
        &[("s3:prefix", "private/")]
    ));
    assert!(!allowed(
        &policy,
        "s3:PutObject",
        &obj(&p.data, "train/poisoned.png"),
        &[]
    ));
    assert!(!allowed(
        &policy,
        "s3:DeleteObject",
        &obj(&default, "sagetrain/unet-1/output/model.tar.gz"),
        &[]
    ));
    assert!(!allowed(&policy, "iam:PassRole", &arn, &[]));

    // The file is edited in place: the comments stay, `role` is added.
    let toml_path = p.sb.project().join("sagetrain.toml");
    let text = std::fs::read_to_string(&toml_path).unwrap();
    assert!(
        text.starts_with("# The vessel segmentation project.\n"),
        "{text}"
    );
    assert!(
        text.contains("image = \"unet-vessels:latest\"   # pushed by CI\n"),
        "{text}"
    );
    assert!(text.contains("# the labelled images\n"), "{text}");
    assert!(text.contains(&format!("role = \"{arn}\"\n")), "{text}");

    // Run again, through a counting proxy: up to date, no write to IAM or to the file.
    let proxy = Proxy::start(&moto_url());
    p.sb.set("AWS_ENDPOINT_URL", &proxy.url);
    let r = p.sb.run(&["init", "--create-role"]).ok();
    assert!(r.stdout.contains("status   up to date"), "{}", r.stdout);
    assert!(r.stdout.contains("(role already set)"), "{}", r.stdout);
    let counts = assert_no_iam_write(&proxy, "on the second run");
    assert_eq!(counts.get("GetRole"), Some(&1), "{counts:?}");
    assert_eq!(std::fs::read_to_string(&toml_path).unwrap(), text);
    p.sb.set("AWS_ENDPOINT_URL", &moto_url());

    // A new channel in a new bucket: the difference is shown and applied.
    let third = block_on(p.acct.bucket("third", &["more/x.png"]));
    std::fs::write(
        &toml_path,
        text.replace(
            "[channels]\n",
            &format!("[channels]\nextra = \"s3://{third}/more/\"\n"),
        ),
    )
    .unwrap();
    let r = p.sb.run(&["init", "--create-role"]).ok();
    assert!(r.stdout.contains("status   updated"), "{}", r.stdout);
    assert!(
        r.stdout.contains(&format!(
            "inline policy sagetrain-execution: ~ ReadInputData: Resource + arn:aws:s3:::{third}/more/*"
        )),
        "{}",
        r.stdout
    );
    let (_, policy, _) = read_back(&p);
    assert_eq!(policy, expected_policy(&p, Some(&third)), "{policy:#}");
    assert!(allowed(
        &policy,
        "s3:GetObject",
        &obj(&third, "more/x.png"),
        &[]
    ));

    // `train` with that role succeeds, and doctor passes the role checks.
    let r = p.sb.run(&["train", "--epochs", "1", "-o", "json"]).ok();
    let job = r.json();
    assert_eq!(job["role_arn"], arn);
    let described = block_on(p.acct.describe(job["job_name"].as_str().unwrap()));
    assert_eq!(described.role_arn(), Some(arn.as_str()));
    let d = p.sb.run(&["doctor", "-o", "json"]);
    let report = d.json();
    for id in ["execution_role", "role_trust"] {
        let c = report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == id)
            .unwrap();
        assert_eq!(c["status"], "pass", "{c:#}");
    }
}

#[test]
fn a_foreign_role_of_that_name_is_refused_and_left_untouched() {
    let p = project();
    let region = p.acct.region.clone();
    block_on(p.acct.role(ROLE, "/service-role/", true));
    let before = aws_cli(&p.sb, &region, &["iam", "get-role", "--role-name", ROLE]);
    let toml_before = std::fs::read_to_string(p.sb.project().join("sagetrain.toml")).unwrap();
    let r = p
        .sb
        .run(&["init", "--create-role"])
        .code(4)
        .stderr_has("was not created by sagetrain (it has no sagetrain:managed tag): it was left unchanged")
        .stderr_has("trust policy: + {\"Sid\":\"SageMakerAssumesThisRole\"")
        .stderr_has("trust policy: - {\"Effect\":\"Allow\",\"Principal\":{\"Service\":\"sagemaker.amazonaws.com\"},\"Action\":\"sts:AssumeRole\"}")
        .stderr_has("inline policy sagetrain-execution: + the whole document: there is none yet (13 statements")
        .stderr_has("--role-name OTHER_NAME")
        .stderr_has(&format!("aws iam tag-role --role-name {ROLE} --tags Key=sagetrain:managed,Value=true"));
    assert!(r.stdout.is_empty(), "{}", r.stdout);
    let after = aws_cli(&p.sb, &region, &["iam", "get-role", "--role-name", ROLE]);
    assert_eq!(before, after);
    let names = aws_cli(
        &p.sb,
        &region,
        &["iam", "list-role-policies", "--role-name", ROLE],
    );
    assert_eq!(names["PolicyNames"], json!([]));
    assert_eq!(
        std::fs::read_to_string(p.sb.project().join("sagetrain.toml")).unwrap(),
        toml_before
    );
}

#[test]
fn dry_run_prints_both_documents_and_the_calls_and_creates_nothing() {
    let mut p = project();
    let region = p.acct.region.clone();
    let toml_before = std::fs::read_to_string(p.sb.project().join("sagetrain.toml")).unwrap();
    let proxy = Proxy::start(&moto_url());
    p.sb.set("AWS_ENDPOINT_URL", &proxy.url);
    let r = p.sb.run(&["init", "--create-role", "--dry-run"]).ok();
    assert!(
        r.stdout
            .contains("status   would be created (dry run: nothing was changed)"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("trust policy:\n{"), "{}", r.stdout);
    assert!(
        r.stdout.contains("inline policy sagetrain-execution:\n{"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains(&format!("aws iam create-role --role-name {ROLE} --path /service-role/ --assume-role-policy-document '")), "{}", r.stdout);
    assert!(r.stdout.contains(&format!("aws iam put-role-policy --role-name {ROLE} --policy-name sagetrain-execution --policy-document '")), "{}", r.stdout);
    assert_no_iam_write(&proxy, "in a dry run");
    p.sb.set("AWS_ENDPOINT_URL", &moto_url());
    let roles = aws_cli(&p.sb, &region, &["iam", "list-roles"]);
    assert!(
        roles["Roles"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["RoleName"] != ROLE),
        "{roles:#}"
    );
    assert_eq!(
        std::fs::read_to_string(p.sb.project().join("sagetrain.toml")).unwrap(),
        toml_before
    );
    // The JSON form carries the same documents, as the real run would send them.
    let j =
        p.sb.run(&["init", "--create-role", "--dry-run", "-o", "json"])
            .ok()
            .json();
    assert_eq!(j["status"], "would_be_created");
    assert_eq!(j["policy"], expected_policy(&p, None));
    assert_eq!(j["calls"][0]["operation"], "iam:CreateRole");
    assert_eq!(j["calls"][1]["operation"], "iam:PutRolePolicy");
    assert_eq!(parliament(&j["policy"]), Vec::<Value>::new());
    // With no role to be found, doctor names this command as the fix.
    let report = p.sb.run(&["doctor", "-o", "json"]).code(2).json();
    let role = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "execution_role")
        .unwrap();
    assert_eq!(role["status"], "fail", "{role:#}");
    assert!(
        role["fix"].as_str().unwrap().starts_with(
            "create one with least privilege from your settings: sagetrain init --create-role"
        ),
        "{role:#}"
    );
}

#[test]
fn without_a_config_file_one_is_written_with_the_role_and_a_refused_call_names_the_action() {
    let acct = block_on(async {
        let acct = Account::new("eu-west-1").await;
        acct.image("unet-vessels", "v2").await;
        acct
    });
    // IAM refuses CreateRole as it would for a developer without the administrator policy.
    let proxy = Proxy::with_rules(
        &moto_url(),
        vec![Rule::new(
            Fault::Error {
                status: 403,
                code: "AccessDenied",
                message: "User: arn:aws:sts::123456789012:assumed-role/Developer/me is not authorized to perform: iam:CreateRole",
            },
            Pick::All,
        )
        .only("CreateRole")],
    );
    let mut sb = Sandbox::new();
    acct.env(&mut sb);
    sb.set("AWS_ENDPOINT_URL", &proxy.url);
    sb.run(&["init", "--create-role"])
        .code(4)
        .stderr_has("iam:CreateRole was denied")
        .stderr_has("an administrator can run the same command (`sagetrain init --create-role`)")
        .stderr_has("--dry-run");
    assert!(!sb.project().join("sagetrain.toml").exists());

    sb.set("AWS_ENDPOINT_URL", &moto_url());
    let r = sb
        .run(&[
            "init",
            "--create-role",
            "--role-name",
            "unet-exec",
            "--role-path",
            "/ml/",
        ])
        .ok();
    let arn = format!("arn:aws:iam::{}:role/ml/unet-exec", acct.id);
    assert!(
        r.stdout.contains(&format!("role     {arn}")),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("(written)"), "{}", r.stdout);
    let text = std::fs::read_to_string(sb.project().join("sagetrain.toml")).unwrap();
    assert!(text.contains(&format!("role = \"{arn}\"")), "{text}");
    assert!(text.contains("image = \"unet-vessels:v2\""), "{text}");
    // The image init found limits the ECR statement to its repository.
    let policy = aws_cli(
        &sb,
        &acct.region,
        &[
            "iam",
            "get-role-policy",
            "--role-name",
            "unet-exec",
            "--policy-name",
            "sagetrain-execution",
        ],
    );
    let pull = statements(&policy["PolicyDocument"])
        .into_iter()
        .find(|s| s["Sid"] == "PullTrainingImage")
        .unwrap();
    assert_eq!(
        pull["Resource"],
        format!(
            "arn:aws:ecr:{}:{}:repository/unet-vessels",
            acct.region, acct.id
        )
    );
    // Bad names are refused before any call.
    sb.run(&["init", "--create-role", "--role-path", "ml"])
        .code(2)
        .stderr_has("--role-path");
    sb.run(&["init", "--role-name", "x"]).code(2);
}

/// No call that writes to IAM went through `proxy`; its counts, for further checks.
fn assert_no_iam_write(proxy: &Proxy, when: &str) -> std::collections::BTreeMap<String, usize> {
    let counts = proxy.counts();
    for write in [
        "CreateRole",
        "PutRolePolicy",
        "UpdateAssumeRolePolicy",
        "TagRole",
    ] {
        assert!(!counts.contains_key(write), "{write} {when}: {counts:?}");
    }
    counts
}
