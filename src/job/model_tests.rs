//! The service's own model as the source of truth of the limits.
//!
//! botocore's `sagemaker` service model (the AWS CLI of the test venv brings it; scripts/test
//! pins the release and sets `SAGETRAIN_TEST_BOTOCORE_MODEL` to the file) is read here, and
//! (1) every limit that `job::spec` and the tune rules enforce is compared with the model's,
//! naming the shape; (2) requests built from every declared setting at its limits are walked
//! against the model's shapes: every member known, required ones present, string lengths and
//! patterns, list and map sizes, enums and integer ranges. A botocore release that changes a
//! limit fails a test that names it.

use crate::job::settings::TrainArgs;
use crate::job::settings::{maps, scalars, TrainSettings};
use crate::job::spec;
use regex::Regex;
use serde_json::{Map, Value};
use std::io::Read;
use std::sync::LazyLock;

/// The model's shapes, read once.
static SHAPES: LazyLock<Map<String, Value>> = LazyLock::new(|| {
    let path = std::env::var("SAGETRAIN_TEST_BOTOCORE_MODEL").unwrap_or_else(|_| {
        panic!(
            "SAGETRAIN_TEST_BOTOCORE_MODEL is not set: run the tests with scripts/test, which sets it to botocore's sagemaker service-2.json.gz in the test venv"
        )
    });
    let file = std::fs::File::open(&path)
        .unwrap_or_else(|e| panic!("cannot open the service model {path}: {e}"));
    let mut text = String::new();
    let read = if path.ends_with(".gz") {
        flate2::read::GzDecoder::new(file).read_to_string(&mut text)
    } else {
        std::io::BufReader::new(file).read_to_string(&mut text)
    };
    read.unwrap_or_else(|e| panic!("cannot read the service model {path}: {e}"));
    let model: Value = serde_json::from_str(&text).expect("the service model is JSON");
    model["shapes"].as_object().expect("shapes").clone()
});

fn shape(name: &str) -> &'static Value {
    SHAPES
        .get(name)
        .unwrap_or_else(|| panic!("the service model has no shape {name}"))
}

fn int(name: &str, field: &str) -> Option<u64> {
    shape(name).get(field).and_then(Value::as_u64)
}

/// Assert that a limit of sagetrain equals the model's `field` of shape `name`.
fn same(name: &str, field: &str, ours: u64) {
    assert_eq!(
        int(name, field),
        Some(ours),
        "the service model's {name}.{field} differs from sagetrain's limit"
    );
}

fn pattern(name: &str) -> String {
    shape(name)["pattern"]
        .as_str()
        .unwrap_or_else(|| panic!("{name} has no pattern"))
        .to_string()
}

/// Our anchored pattern is the model's, anchored; where the model bounds the length with its
/// `max` (`X+` or `X*`), ours may bound it in the pattern (`X{1,max}`), with that same `max`.
fn same_pattern(name: &str, ours: &Regex) {
    let model = pattern(name);
    let tidy = |p: &str| {
        let p = p.replace(r"\d", "[0-9]").replace(r"\-", "-");
        let p = p.trim_start_matches('^').trim_end_matches('$');
        let p = match p.strip_prefix('(').and_then(|p| p.strip_suffix(')')) {
            Some(inner) if !inner.contains('(') => inner.to_string(),
            _ => p.to_string(),
        };
        p
    };
    let (m, o) = (tidy(&model), tidy(ours.as_str()));
    let same = m == o || {
        let body = |p: &str| -> (String, Option<u64>) {
            if let Some(b) = p.strip_suffix('+').or_else(|| p.strip_suffix('*')) {
                return (b.to_string(), None);
            }
            match p.rfind('{') {
                Some(i) if p.ends_with('}') => {
                    let max = p[i + 1..p.len() - 1]
                        .split(',')
                        .next_back()
                        .and_then(|n| n.parse().ok());
                    (p[..i].to_string(), max)
                }
                _ => (p.to_string(), None),
            }
        };
        let ((mb, _), (ob, omax)) = (body(&m), body(&o));
        mb == ob && omax.is_some() && omax == int(name, "max")
    };
    assert!(
        same,
        "the service model's {name}.pattern `{model}` (max {:?}) differs from sagetrain's `{}`",
        int(name, "max"),
        ours.as_str()
    );
}

fn enum_of(name: &str) -> Vec<String> {
    shape(name)["enum"]
        .as_array()
        .unwrap_or_else(|| panic!("{name} has no enum"))
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn the_limits_of_the_rules_are_the_service_models() {
    use crate::refs::*;
    use spec::*;
    // Map settings: count, key and value lengths.
    for (rule, map, key, value) in [
        (
            &HYPERPARAMETERS,
            "HyperParameters",
            "HyperParameterKey",
            "HyperParameterValue",
        ),
        (
            &ENVIRONMENT,
            "TrainingEnvironmentMap",
            "TrainingEnvironmentKey",
            "TrainingEnvironmentValue",
        ),
    ] {
        same(map, "max", rule.max_count as u64);
        same(key, "max", rule.max_key as u64);
        same(value, "max", rule.max_value as u64);
    }
    same("InputDataConfig", "max", CHANNELS.max_count as u64);
    same("ChannelName", "max", CHANNELS.max_key as u64);
    same("S3Uri", "max", CHANNELS.max_value as u64);
    same("TagList", "max", TAGS.max_count as u64);
    same(
        "InstancePreferenceList",
        "max",
        MAX_INSTANCE_PREFERENCES as u64,
    );
    same("MaxPendingTimeInSeconds", "min", MIN_PENDING_SECS);
    same("MaxPendingTimeInSeconds", "max", MAX_PENDING_SECS);
    same("TagKey", "max", TAGS.max_key as u64);
    same("TagValue", "max", TAGS.max_value as u64);
    same("MetricDefinitionList", "max", METRICS.max_count as u64);
    same("MetricName", "max", METRICS.max_key as u64);
    same("MetricRegex", "max", METRICS.max_value as u64);
    // Patterns.
    same_pattern("TrainingJobName", &JOB_NAME);
    same("TrainingJobName", "max", 63);
    same_pattern("RoleArn", &ROLE_ARN);
    same("RoleArn", "min", 20);
    same("RoleArn", "max", 2048);
    same_pattern("TrainingEnvironmentKey", &ENV_KEY);
    same_pattern("TagKey", &TAG_TEXT);
    same_pattern("TagValue", &TAG_TEXT);
    same_pattern("SubnetId", &VPC_ID);
    same_pattern("SecurityGroupId", &VPC_ID);
    same("SubnetId", "max", 32);
    same("SecurityGroupId", "max", 32);
    same_pattern("KmsKeyId", &KMS_KEY);
    same("KmsKeyId", "max", 2048);
    same("AlgorithmImage", "max", 255);
    same_pattern("ChannelName", &CHANNEL_NAME);
    // Counts and ranges.
    same("Subnets", "min", 1);
    same("Subnets", "max", MAX_SUBNETS as u64);
    same("VpcSecurityGroupIds", "max", MAX_SECURITY_GROUPS as u64);
    same("KeepAlivePeriodInSeconds", "min", 0);
    same("KeepAlivePeriodInSeconds", "max", MAX_KEEP_ALIVE_SECS);
    same("MaximumRetryAttempts", "min", 1);
    same("MaximumRetryAttempts", "max", MAX_RETRIES as u64);
    same("MaxRuntimeInSeconds", "min", 1);
    same("VolumeSizeInGB", "min", 1);
    // Enums.
    let mut modes = enum_of("TrainingInputMode");
    modes.sort();
    let mut ours: Vec<String> = ["file", "fastfile", "pipe"]
        .iter()
        .map(|m| input_mode_name(m).unwrap().to_string())
        .collect();
    ours.sort();
    assert_eq!(
        modes, ours,
        "TrainingInputMode.enum differs from sagetrain's input modes"
    );
    // The tune rules.
    use crate::job::tune;
    same("HyperParameterTuningJobName", "max", tune::MAX_NAME as u64);
    same_pattern("HyperParameterTuningJobName", &tune::spec::TUNING_NAME);
    for ranges in [
        "IntegerParameterRanges",
        "ContinuousParameterRanges",
        "CategoricalParameterRanges",
    ] {
        same(ranges, "max", tune::MAX_RANGES as u64);
    }
    same("ParameterValues", "max", tune::MAX_VALUES as u64);
    same(
        "HyperParameterTrainingJobEnvironmentMap",
        "max",
        tune::MAX_ENVIRONMENT as u64,
    );
    same(
        "HyperParameterTrainingJobEnvironmentKey",
        "max",
        ENVIRONMENT.max_key as u64,
    );
    same(
        "HyperParameterTrainingJobEnvironmentValue",
        "max",
        ENVIRONMENT.max_value as u64,
    );
}

/// The types `train` accepts are the model's `TrainingInstanceType`: the SDK's enum, and the
/// ones only the model has (accepted with a warning).
#[test]
fn the_instance_types_are_the_service_models() {
    let model = enum_of("TrainingInstanceType");
    let sdk = spec::training_instance_types();
    let mut model_only: Vec<&str> = model
        .iter()
        .map(String::as_str)
        .filter(|t| !sdk.contains(t))
        .collect();
    model_only.sort();
    let mut ours = spec::MODEL_ONLY_INSTANCE_TYPES.to_vec();
    ours.sort();
    assert_eq!(
        model_only, ours,
        "TrainingInstanceType.enum less the SDK's enum must be spec::MODEL_ONLY_INSTANCE_TYPES"
    );
    let gone: Vec<&&str> = sdk
        .iter()
        .filter(|t| !model.iter().any(|m| m == *t))
        .collect();
    assert!(
        gone.is_empty(),
        "the SDK accepts types the service model's TrainingInstanceType.enum lacks: {gone:?}"
    );
    // A model-only type is accepted with a note; an unknown one is refused.
    let note = spec::check_instance_type("ml.z9.big", &["ml.g5.xlarge"], &["ml.z9.big"]);
    assert!(note.unwrap().unwrap().contains("sent as is"));
    assert!(spec::check_instance_type("ml.z9.big", &["ml.g5.xlarge"], &[]).is_err());
    assert_eq!(
        spec::check_instance_type("ml.g5.xlarge", &["ml.g5.xlarge"], &[]),
        Ok(None)
    );
}

/// The problems of `value` against the model's shape `name`, at `path`.
fn conform(name: &str, value: &Value, path: &str, out: &mut Vec<String>) {
    let s = shape(name);
    let ty = s["type"].as_str().unwrap_or_default();
    let bound = |f: &str| s.get(f).and_then(Value::as_i64);
    let size_check = |n: usize, what: &str, out: &mut Vec<String>| {
        if let Some(min) = bound("min") {
            if (n as i64) < min {
                out.push(format!("{path}: {what} {n} < {name}.min {min}"));
            }
        }
        if let Some(max) = bound("max") {
            if (n as i64) > max {
                out.push(format!("{path}: {what} {n} > {name}.max {max}"));
            }
        }
    };
    match (ty, value) {
        ("structure", Value::Object(o)) => {
            let members = s["members"].as_object().expect("members");
            for (k, v) in o {
                match members.get(k) {
                    Some(m) => {
                        conform(m["shape"].as_str().unwrap(), v, &format!("{path}.{k}"), out)
                    }
                    None => out.push(format!("{path}.{k}: not a member of {name}")),
                }
            }
            for r in s
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let r = r.as_str().unwrap();
                if !o.contains_key(r) {
                    out.push(format!("{path}: the required member {name}.{r} is missing"));
                }
            }
        }
        ("list", Value::Array(a)) => {
            size_check(a.len(), "length", out);
            let member = s["member"]["shape"].as_str().unwrap();
            for (i, v) in a.iter().enumerate() {
                conform(member, v, &format!("{path}[{i}]"), out);
            }
        }
        ("map", Value::Object(o)) => {
            size_check(o.len(), "entries", out);
            let key = s["key"]["shape"].as_str().unwrap();
            let val = s["value"]["shape"].as_str().unwrap();
            for (k, v) in o {
                conform(
                    key,
                    &Value::String(k.clone()),
                    &format!("{path} key {k}"),
                    out,
                );
                conform(val, v, &format!("{path}.{k}"), out);
            }
        }
        ("string", Value::String(text)) => {
            size_check(text.chars().count(), "length", out);
            if let Some(values) = s.get("enum").and_then(Value::as_array) {
                if !values.iter().any(|v| v == value) {
                    out.push(format!("{path}: `{text}` is not in {name}.enum"));
                }
            }
            if let Some(p) = s.get("pattern").and_then(Value::as_str) {
                let re = Regex::new(&format!("^(?:{p})$"))
                    .unwrap_or_else(|e| panic!("{name}.pattern `{p}` does not compile: {e}"));
                if !re.is_match(text) {
                    out.push(format!(
                        "{path}: `{text}` does not match {name}.pattern `{p}`"
                    ));
                }
            }
        }
        ("integer" | "long", Value::Number(n)) => {
            let n = n.as_i64().expect("a whole number");
            if bound("min").is_some_and(|m| n < m) || bound("max").is_some_and(|m| n > m) {
                out.push(format!(
                    "{path}: {n} is outside {name}'s range {:?}..={:?}",
                    bound("min"),
                    bound("max")
                ));
            }
        }
        ("boolean", Value::Bool(_)) => {}
        ("double" | "float", Value::Number(_)) => {}
        _ => out.push(format!("{path}: a {ty} ({name}) was expected, got {value}")),
    }
}

fn conformance(shape_name: &str, json: &Value) -> Vec<String> {
    let mut out = Vec::new();
    conform(shape_name, json, shape_name, &mut out);
    out
}

fn n_entries(
    prefix: &str,
    n: usize,
    key_len: usize,
    value: impl Fn(usize) -> String,
) -> Vec<String> {
    (0..n)
        .map(|i| {
            let head = format!("{prefix}{i}_");
            let pad = key_len.saturating_sub(head.len());
            format!("{head}{}={}", "k".repeat(pad), value(i))
        })
        .collect()
}

/// Settings at their limits: every map full, every key and value as long as allowed, every
/// count and range at its maximum. Spot and a warm pool exclude each other: `warm` picks.
fn at_limits(warm: bool, code: bool) -> TrainArgs {
    use spec::*;
    let mut a = crate::job::spec::tests::valid_args();
    a.epochs = None;
    a.hyperparameters = n_entries(
        "hp",
        HYPERPARAMETERS.max_count,
        HYPERPARAMETERS.max_key,
        |_| "v".repeat(HYPERPARAMETERS.max_value),
    );
    a.epochs = None;
    // Two of the variables are secrets (`SAGETRAIN_SECRET_<NAME>` = ARN:json-key), each with
    // the longest name and value the variable allows.
    let secrets = 2;
    a.environment = n_entries(
        "ENV",
        ENVIRONMENT.max_count - secrets,
        ENVIRONMENT.max_key,
        |_| "x ".repeat(ENVIRONMENT.max_value / 2),
    );
    let arn = format!(
        "arn:aws:secretsmanager:eu-west-1:111122223333:secret:{}",
        "s".repeat(400)
    );
    let name_len = ENVIRONMENT.max_key - crate::job::secret::ENV_PREFIX.len();
    a.secrets = n_entries("SECRET", secrets, name_len, |_| {
        format!(
            "{arn}:{}",
            "k".repeat(ENVIRONMENT.max_value - arn.len() - 1)
        )
    });
    let own = if code { 2 } else { 1 };
    a.tags = n_entries("tag", TAGS.max_count - own, TAGS.max_key, |_| {
        "é ".repeat(TAGS.max_value / 2)
    });
    a.metrics = n_entries("metric", METRICS.max_count, METRICS.max_key, |_| {
        format!("({})", ".".repeat(METRICS.max_value - 2))
    });
    let channels = CHANNELS.max_count - usize::from(code) - 2;
    a.channels = (0..channels)
        .map(|i| {
            let head = format!("ch{i}-");
            format!(
                "{head}{}=s3://my-bucket/{}",
                "c".repeat(CHANNELS.max_key - head.len()),
                "p".repeat(CHANNELS.max_value - "s3://my-bucket/".len())
            )
        })
        .collect();
    a.train = Some("s3://my-bucket/train/".into());
    a.validation = Some("s3://my-bucket/validation/".into());
    a.channel_input_modes = vec!["train=fastfile".into()];
    a.input_mode = Some("pipe".into());
    a.instance_type = Some("ml.p4d.24xlarge".into());
    a.instance_count = Some("64".into());
    a.volume_size = Some("16384".into());
    a.max_run = Some(format!("{MAX_RUNTIME_SECS}"));
    a.subnets = (0..MAX_SUBNETS)
        .map(|i| format!("subnet-{i:025}"))
        .collect();
    a.security_groups = (0..MAX_SECURITY_GROUPS)
        .map(|i| format!("sg-{i:029}"))
        .collect();
    a.kms_key = Some(format!(
        "arn:aws:kms:eu-west-1:123456789012:key/{}",
        "k".repeat(2000)
    ));
    a.network_isolation = true;
    a.pin_digest = true; // --no-pin-digest: the image is used by its tag
    a.output_path = Some("s3://my-bucket/out/".into());
    a.checkpoint_s3 = Some("s3://my-bucket/checkpoints/".into());
    a.base_name = Some("b".repeat(200));
    a.role = Some(format!("arn:aws:iam::123456789012:role/{}", "r".repeat(64)));
    a.image = Some(format!(
        "123456789012.dkr.ecr.eu-west-1.amazonaws.com/{}:{}",
        "u".repeat(100),
        "t".repeat(100)
    ));
    a.max_pending = Some(format!("{MAX_PENDING_SECS}"));
    a.max_cost = Some("1000000".into()); // no field of the request: checked before it
    if warm {
        a.keep_alive = Some(format!("{MAX_KEEP_ALIVE_SECS}"));
        a.retries = Some(format!("{MAX_RETRIES}"));
        // Remote debugging needs the network that isolation takes away: this variant has it.
        a.network_isolation = false;
        a.remote_debug = true;
        // Instance preferences exclude spot: the most there may be.
        let types = spec::training_instance_types();
        a.instance_type = Some(types[..MAX_INSTANCE_PREFERENCES].join(","));
    } else {
        a.spot = true;
        a.max_wait = Some(format!("{}", MAX_RUNTIME_SECS + 1));
    }
    if code {
        // The code as `train` sends it: uploaded to its content-addressed prefix.
        a.source = Some(format!(
            "s3://my-bucket/{}/{}/",
            crate::data::manifest::CODE_ROOT,
            "0123456789abcdef".repeat(crate::data::manifest::DIGEST_HEX_LEN / 16)
        ));
        a.entry = Some(format!("{}/main.py", "e".repeat(240)));
    }
    a
}

/// The settings every variant sets between them: each declared one (a setting declared later
/// and not set here fails this test, naming it).
fn assert_every_setting_is_set(all: &[TrainSettings]) {
    let set = |key: &str| {
        all.iter().any(|s| {
            s.rows().iter().any(|r| {
                (r.name == key || r.name.starts_with(&format!("{key}.")))
                    && matches!(r.source, Some(crate::config::Source::Flag(_)))
            })
        })
    };
    for m in scalars() {
        // `--name` replaces the generated name: the base name is at its limit instead.
        // The settings of local runs are no part of the request.
        if m.key != "name" && !crate::job::settings::LOCAL_ONLY.contains(&m.key) {
            assert!(set(m.key), "the limits test sets no value of {}", m.key);
        }
    }
    for m in maps() {
        assert!(set(m.key), "the limits test sets no value of {}", m.key);
    }
}

fn settings(a: &TrainArgs) -> TrainSettings {
    let g = crate::aws::connection::ConnectionArgs {
        region: Some("eu-west-1".into()),
        ..Default::default()
    };
    TrainSettings::layer(&g, a, &|_| None, None).unwrap()
}

fn train_json(a: &TrainArgs) -> Value {
    let s = settings(a);
    let job = spec::validate(&s, std::path::Path::new("/"))
        .unwrap_or_else(|v| panic!("settings at their limits are refused: {v:#?}"));
    let mut resolved = crate::job::request::tests::resolved(&job);
    resolved.job_name.value = crate::job::spec::generate_job_name(
        &crate::job::spec::base_name(&job).0,
        std::time::SystemTime::now(),
        &resolved.submission_id,
    );
    let r = crate::job::request::build_request(&job, &resolved);
    serde_json::to_value(&r).unwrap()
}

#[test]
fn requests_at_the_limits_conform_to_the_service_model() {
    let variants = [at_limits(false, false), at_limits(true, true)];
    assert_every_setting_is_set(&variants.iter().map(settings).collect::<Vec<_>>());
    for a in &variants {
        let json = train_json(a);
        let problems = conformance("CreateTrainingJobRequest", &json);
        assert!(problems.is_empty(), "CreateTrainingJob: {problems:#?}");
    }

    // tune: the training job definition wraps train's request; it takes fewer variables.
    let mut a = at_limits(false, false);
    a.environment
        .truncate(crate::job::tune::MAX_ENVIRONMENT - a.secrets.len());
    let job = spec::validate(&settings(&a), std::path::Path::new("/")).unwrap();
    let resolved = crate::job::request::tests::resolved(&job);
    let training = crate::job::request::build_request(&job, &resolved);
    let t = crate::job::tune::tests::at_limits(&settings(&a));
    let r = crate::job::tune::build_tuning_request(&job, &t, "t".repeat(32).as_str(), training);
    let json = serde_json::to_value(&r).unwrap();
    let problems = conformance("CreateHyperParameterTuningJobRequest", &json);
    assert!(
        problems.is_empty(),
        "CreateHyperParameterTuningJob: {problems:#?}"
    );
}

/// The checker sees what it checks: each kind of problem in a request is reported, naming the
/// shape (a checker that passed everything would pass the test above).
#[test]
fn the_conformance_check_finds_each_kind_of_problem() {
    let good = train_json(&crate::job::request::tests::every_field_args());
    assert_eq!(
        conformance("CreateTrainingJobRequest", &good),
        Vec::<String>::new()
    );
    let broken = |f: &dyn Fn(&mut Value)| {
        let mut j = good.clone();
        f(&mut j);
        conformance("CreateTrainingJobRequest", &j).join("\n")
    };
    type Case<'a> = (&'a dyn Fn(&mut Value), &'a str);
    let cases: [Case; 8] = [
        (
            &|j| j["Unknown"] = Value::Bool(true),
            "not a member of CreateTrainingJobRequest",
        ),
        (
            &|j| {
                j.as_object_mut().unwrap().remove("RoleArn");
            },
            "required member CreateTrainingJobRequest.RoleArn",
        ),
        (
            &|j| j["TrainingJobName"] = "a_b".into(),
            "TrainingJobName.pattern",
        ),
        (
            &|j| j["TrainingJobName"] = "a".repeat(64).into(),
            "TrainingJobName.max 63",
        ),
        (&|j| j["Tags"][0]["Value"] = "#".into(), "TagValue.pattern"),
        (
            &|j| j["ResourceConfig"]["KeepAlivePeriodInSeconds"] = 21601.into(),
            "KeepAlivePeriodInSeconds's range",
        ),
        (
            &|j| j["ResourceConfig"]["InstanceType"] = "ml.x".into(),
            "TrainingInstanceType.enum",
        ),
        (
            &|j| {
                let tags = j["Tags"].as_array().unwrap()[0].clone();
                j["Tags"] = Value::Array(vec![tags; 51]);
            },
            "TagList.max 50",
        ),
    ];
    for (f, want) in cases {
        let text = broken(f);
        assert!(text.contains(want), "{want}: {text}");
    }
}
