//! The instance quota before a submit, end to end: moto for everything it has, and a stand-in
//! for Service Quotas (`AWS_ENDPOINT_URL_SERVICE_QUOTAS`; the emulator answers only VPC quotas)
//! with ListServiceQuotas answers shaped as the service's, and for SageMaker's running jobs
//! where the emulator cannot have one.

use crate::fake_sagemaker::{self, job_json, Stop};
use crate::harness::*;
use serde_json::{json, Value};

/// A ListServiceQuotas answer (the service's shape) with the training quota of each type.
pub(crate) fn quotas(q: &[(&str, f64)]) -> Value {
    json!({
        "Quotas": q.iter().enumerate().map(|(i, (t, v))| json!({
            "ServiceCode": "sagemaker",
            "ServiceName": "Amazon SageMaker",
            "QuotaArn": format!("arn:aws:servicequotas:us-east-1:123456789012:sagemaker/L-{i:08X}"),
            "QuotaCode": format!("L-{i:08X}"),
            "QuotaName": format!("{t} for training job usage"),
            "Value": v,
            "Unit": "None",
            "Adjustable": true,
            "GlobalQuota": false
        })).collect::<Vec<_>>()
    })
}

/// A Service Quotas stand-in with these training quotas.
pub(crate) fn service_quotas(q: &[(&str, f64)]) -> fake_sagemaker::FakeSageMaker {
    fake_sagemaker::start_with(
        job_json("unused", "Completed", "Completed", &[], None),
        Stop::Accept,
        vec![("ListServiceQuotas", quotas(q))],
    )
}

fn train_args<'a>(s: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut a = vec![
        "train",
        "--role",
        "SageMakerRole",
        "--image",
        "unet-vessels:latest",
        "--train",
        s,
    ];
    a.extend_from_slice(extra);
    a
}

#[test]
fn a_quota_of_0_refuses_the_submit_with_the_numbers_and_nothing_is_created() {
    let s = seeded("us-east-1");
    let mut sb = Sandbox::new();
    s.acct.env(&mut sb);
    let sq = service_quotas(&[("ml.g5.xlarge", 0.0), ("ml.g6.xlarge", 4.0)]);
    sb.set("AWS_ENDPOINT_URL_SERVICE_QUOTAS", &sq.url);
    let train = format!("s3://{}/data/train/", s.bucket);
    let r = sb
        .run(&train_args(&train, &["--instance-type", "ml.g5.xlarge"]))
        .code(4)
        .stderr_has("ml.g5.xlarge has no room: the account's quota `ml.g5.xlarge for training job usage` in us-east-1 is 0 instances, leaving 0; this job needs 1")
        .stderr_has("aws service-quotas request-service-quota-increase --service-code sagemaker --quota-code L-00000000 --desired-value 1 --region us-east-1");
    assert!(r.stdout.is_empty(), "{}", r.stdout);
    assert!(
        block_on(s.acct.job_names()).is_empty(),
        "nothing is created"
    );
    assert_eq!(sq.calls_to("ListServiceQuotas").len(), 1);

    // The codes and values are remembered: a type with room, within minutes, asks nothing more.
    let r = sb
        .run(&train_args(
            &train,
            &["--instance-type", "ml.g6.xlarge", "-o", "json", "-v"],
        ))
        .ok()
        .stderr_has("quota `ml.g6.xlarge for training job usage` in us-east-1: 4 instances; this job needs 1");
    assert_eq!(sq.calls_to("ListServiceQuotas").len(), 1, "remembered");
    let job = r.json()["job_name"].as_str().unwrap().to_string();
    assert_eq!(
        block_on(s.acct.describe(&job)).training_job_name(),
        Some(job.as_str())
    );

    // A preference without room is left out of the request; none with room refuses.
    let dry = sb
        .run(&train_args(
            &train,
            &["--instance-type", "ml.g5.xlarge,ml.g6.xlarge", "--dry-run"],
        ))
        .ok()
        .stderr_has("ml.g5.xlarge dropped from the instance preferences");
    let rc = &dry.json()["ResourceConfig"];
    assert_eq!(rc["InstanceType"], "ml.g6.xlarge", "{rc}");
    assert!(rc.get("InstancePreferences").is_none(), "{rc}");
    sb.run(&train_args(
        &train,
        &[
            "--instance-type",
            "ml.g5.xlarge,ml.g6.xlarge",
            "--instance-count",
            "5",
            "--dry-run",
        ],
    ))
    .code(4)
    .stderr_has("none of the instance types has room");
}

/// A running job of the type holds part of the quota (the emulator's jobs complete at once: a
/// SageMaker stand-in answers ListTrainingJobs and DescribeTrainingJob).
#[test]
fn what_running_jobs_hold_is_subtracted() {
    let s = seeded("us-east-1");
    let mut sb = Sandbox::new();
    s.acct.env(&mut sb);
    let sq = service_quotas(&[("ml.g5.xlarge", 2.0)]);
    let mut running = job_json("other-run", "InProgress", "Training", &[], None);
    running["ResourceConfig"] =
        json!({"InstanceType": "ml.g5.xlarge", "InstanceCount": 2, "VolumeSizeInGB": 30});
    let sm = fake_sagemaker::start_with(
        running,
        Stop::Accept,
        vec![(
            "ListTrainingJobs",
            json!({"TrainingJobSummaries": [{
                "TrainingJobName": "other-run",
                "TrainingJobArn": "arn:aws:sagemaker:us-east-1:123456789012:training-job/other-run",
                "CreationTime": 1.8e9,
                "TrainingJobStatus": "InProgress"
            }]}),
        )],
    );
    sb.set("AWS_ENDPOINT_URL_SERVICE_QUOTAS", &sq.url)
        .set("AWS_ENDPOINT_URL_SAGEMAKER", &sm.url);
    let train = format!("s3://{}/data/train/", s.bucket);
    sb.run(&train_args(&train, &["--dry-run"]))
        .code(4)
        .stderr_has(
            "is 2 instances (2 held by running jobs and warm pools), leaving 0; this job needs 1",
        )
        .stderr_has("--desired-value 3");
    assert!(sm
        .calls_to("DescribeTrainingJob")
        .iter()
        .any(|b| b.contains("other-run")));
}

/// Where Service Quotas cannot answer (the emulator's answers 500 for SageMaker), the submit goes
/// on with a warning, and a later submit does not ask again for a while.
#[test]
fn a_quota_that_cannot_be_read_is_a_warning_never_a_refusal() {
    let s = seeded("us-east-1");
    let mut sb = Sandbox::new();
    s.acct.env(&mut sb);
    let proxy = crate::proxy::Proxy::start(&moto_url());
    sb.set("AWS_ENDPOINT_URL", &proxy.url);
    let train = format!("s3://{}/data/train/", s.bucket);
    let r = sb.run(&train_args(&train, &["-o", "json", "-v"])).ok();
    // The emulator answers 500: one attempt, no retries, and the submit goes on.
    assert_eq!(
        proxy.count_op("ListServiceQuotas"),
        1,
        "{:?}",
        proxy.counts()
    );
    assert!(
        r.stderr.contains(
            "warning: the instance quota was not checked: servicequotas:ListServiceQuotas"
        ),
        "{}",
        r.stderr
    );
    assert_eq!(proxy.count_op("CreateTrainingJob"), 1);
    proxy.clear();
    sb.run(&train_args(&train, &["-o", "json"])).ok();
    assert_eq!(
        proxy.count_op("ListServiceQuotas"),
        0,
        "{:?}",
        proxy.counts()
    );
}

/// A GetProducts answer (the Price List's shape: each product a JSON document in a string).
pub(crate) fn price_list(usd: &str) -> Value {
    let product = json!({
        "product": {"productFamily": "ML Instance", "attributes": {"regionCode": "us-east-1", "instanceName": "ml.g5.xlarge", "platoinstancetype": "Training", "servicecode": "AmazonSageMaker"}, "sku": "S4KU"},
        "serviceCode": "AmazonSageMaker",
        "terms": {"OnDemand": {"S4KU.JRTCKXETXF": {"priceDimensions": {"S4KU.JRTCKXETXF.6YS6EN2CT7": {
            "unit": "Hrs", "pricePerUnit": {"USD": usd}, "description": "per On Demand ml.g5.xlarge Training Instance Hour"
        }}}}}
    });
    json!({"FormatVersion": "aws_v1", "PriceList": [product.to_string()]})
}

#[test]
fn the_worst_case_is_said_before_the_submit_and_max_cost_refuses_above_it() {
    let s = seeded("us-east-1");
    let mut sb = Sandbox::new();
    s.acct.env(&mut sb);
    let pricing = fake_sagemaker::start_with(
        job_json("unused", "Completed", "Completed", &[], None),
        Stop::Accept,
        vec![("GetProducts", price_list("1.4080000000"))],
    );
    sb.set("AWS_ENDPOINT_URL_PRICING", &pricing.url);
    let train = format!("s3://{}/data/train/", s.bucket);
    sb.run(&train_args(&train, &["--instance-count", "2", "--max-cost", "50"]))
        .code(2)
        .stderr_has("--max-cost: the worst case is $67.58 ($2.82 an hour ($1.41 x 2 instances); at most $67.58 for the 24h maximum run), above --max-cost $50.00");
    assert!(
        block_on(s.acct.job_names()).is_empty(),
        "nothing is created"
    );
    let asked = pricing.calls_to("GetProducts");
    assert_eq!(asked.len(), 1);
    for f in [
        "\"regionCode\"",
        "\"us-east-1\"",
        "\"ml.g5.xlarge\"",
        "\"platoinstancetype\"",
        "\"Training\"",
        "AmazonSageMaker",
    ] {
        assert!(asked[0].contains(f), "{f} not in {}", asked[0]);
    }

    // Within the budget: said, and submitted; the price is remembered (no second GetProducts),
    // and `status` prices the job with it.
    let r = sb
        .run(&train_args(
            &train,
            &["--max-run", "2h", "--max-cost", "50", "-o", "json"],
        ))
        .ok()
        .stderr_has(
            "cost: $1.41 an hour ($1.41 x 1 instances); at most $2.82 for the 2h maximum run",
        );
    assert_eq!(
        pricing.calls_to("GetProducts").len(),
        1,
        "remembered for a day"
    );
    let job = r.json()["job_name"].as_str().unwrap().to_string();
    let st = sb.run(&["status", &job, "-o", "json"]).ok();
    assert_eq!(st.json()["hourly_usd"], 1.408, "{}", st.stdout);
    // `list` describes each job: its instances, and (with a billable time) its cost.
    let listed = sb.run(&["list", "-o", "json"]).ok().json();
    let row = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["job_name"] == job.as_str())
        .unwrap()
        .clone();
    assert_eq!(row["instance_type"], "ml.g5.xlarge", "{row}");
    assert_eq!(row["instance_count"], 1, "{row}");
    let text = sb.run(&["list"]).ok().stdout;
    let header = text.lines().next().unwrap();
    assert!(
        header.contains("  INSTANCES  ") && header.ends_with("COST"),
        "{text}"
    );
    assert!(text.contains("1 x ml.g5.xlarge"), "{text}");
}

#[test]
fn without_a_price_max_cost_refuses_and_otherwise_it_is_a_warning() {
    // The emulator has no Price List.
    let s = seeded("us-east-1");
    let mut sb = Sandbox::new();
    s.acct.env(&mut sb);
    let train = format!("s3://{}/data/train/", s.bucket);
    sb.run(&train_args(&train, &["--max-cost", "50"]))
        .code(2)
        .stderr_has(
            "--max-cost $50.00: the worst case cannot be checked without the price (ml.g5.xlarge: ",
        )
        .stderr_has("allow pricing:GetProducts");
    assert!(block_on(s.acct.job_names()).is_empty());
    sb.run(&train_args(&train, &["--refresh"]))
        .ok()
        .stderr_has("warning: the cost was not estimated: ml.g5.xlarge: ");
    sb.run(&train_args(
        &train,
        &["--offline", "--dry-run", "--max-cost", "5"],
    ))
    .code(2)
    .stderr_has("--max-cost: the worst case needs the instance type's price (a lookup)");
}
