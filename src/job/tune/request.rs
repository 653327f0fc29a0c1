//! The CreateHyperParameterTuningJob request: its serde form, with the AWS API's field names
//! (what `--dry-run` prints), its last check, and its SDK form.

use super::range::{Range, Scaling};
use super::spec::{check_tuning_name, TuneSpec};
use crate::config::Violation;
use crate::job::request::{CreateTrainingJobRequest, Tag};
use crate::job::spec::JobSpec;
use aws_sdk_sagemaker::types as sm;
use aws_sdk_sagemaker::Client;
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateTuningJobRequest {
    pub hyper_parameter_tuning_job_name: String,
    pub hyper_parameter_tuning_job_config: TuningJobConfig,
    pub training_job_definition: TrainingJobDefinition,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<Tag>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct TuningJobConfig {
    pub strategy: String,
    pub hyper_parameter_tuning_job_objective: Objective,
    pub resource_limits: ResourceLimits,
    pub parameter_ranges: ParameterRanges,
    pub training_job_early_stopping_type: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Objective {
    #[serde(rename = "Type")]
    pub kind: String,
    pub metric_name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ResourceLimits {
    pub max_number_of_training_jobs: i32,
    pub max_parallel_training_jobs: i32,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ParameterRanges {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub integer_parameter_ranges: Vec<NumericRange>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub continuous_parameter_ranges: Vec<NumericRange>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub categorical_parameter_ranges: Vec<CategoricalRange>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct NumericRange {
    pub name: String,
    pub min_value: String,
    pub max_value: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scaling_type: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct CategoricalRange {
    pub name: String,
    pub values: Vec<String>,
}

/// The training jobs the tuner starts: the CreateTrainingJob request of `train` itself, sent
/// less its name and tags (the tuner names its jobs; the tags are the tuning job's), with its
/// hyperparameters as the static ones. Holding `train`'s request, rather than a copy of its
/// fields, a field added there reaches the tuner too (and the wire test sees it).
#[derive(Debug, Clone, PartialEq)]
pub struct TrainingJobDefinition(pub CreateTrainingJobRequest);

impl Serialize for TrainingJobDefinition {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::Error as _;
        let serde_json::Value::Object(fields) =
            serde_json::to_value(&self.0).map_err(S::Error::custom)?
        else {
            return Err(S::Error::custom("a request serialises as an object"));
        };
        let mut out = serde_json::Map::new();
        if let Some(h) = fields.get("HyperParameters") {
            out.insert("StaticHyperParameters".into(), h.clone());
        }
        for (k, v) in fields {
            if !matches!(k.as_str(), "TrainingJobName" | "HyperParameters" | "Tags") {
                out.insert(k, v);
            }
        }
        out.serialize(s)
    }
}

/// The tuning request: `train`'s request for the trials (`training`, as
/// [`crate::job::request::build_request`] made it), the tuning job's name and the settings.
///
/// Spot trials get no default checkpoint location: the tuner gives every trial the same
/// `CheckpointConfig`, so one location would let a trial resume from another's state. A
/// location given with `--checkpoint-s3` is kept as given.
pub fn build_tuning_request(
    job: &JobSpec,
    t: &TuneSpec,
    name: &str,
    mut training: CreateTrainingJobRequest,
) -> CreateTuningJobRequest {
    if job.checkpoint_s3.is_none() {
        training.checkpoint_config = None;
    }
    let tags = std::mem::take(&mut training.tags);
    let definition = TrainingJobDefinition(training);
    let mut ranges = ParameterRanges::default();
    for (k, r) in &t.ranges {
        let numeric = |min: String, max: String, scaling: &Scaling| NumericRange {
            name: k.clone(),
            min_value: min,
            max_value: max,
            scaling_type: scaling.api().map(str::to_string),
        };
        match r {
            Range::Integer { min, max, scaling } => ranges.integer_parameter_ranges.push(numeric(
                min.to_string(),
                max.to_string(),
                scaling,
            )),
            Range::Continuous { min, max, scaling } => ranges
                .continuous_parameter_ranges
                .push(numeric(min.clone(), max.clone(), scaling)),
            Range::Categorical(values) => {
                ranges.categorical_parameter_ranges.push(CategoricalRange {
                    name: k.clone(),
                    values: values.clone(),
                })
            }
        }
    }
    CreateTuningJobRequest {
        hyper_parameter_tuning_job_name: name.to_string(),
        hyper_parameter_tuning_job_config: TuningJobConfig {
            strategy: t.strategy.api().into(),
            hyper_parameter_tuning_job_objective: Objective {
                kind: if t.minimize { "Minimize" } else { "Maximize" }.into(),
                metric_name: t.objective.clone(),
            },
            resource_limits: ResourceLimits {
                max_number_of_training_jobs: t.max_jobs,
                max_parallel_training_jobs: t.parallel,
            },
            parameter_ranges: ranges,
            training_job_early_stopping_type: if t.early_stopping { "Auto" } else { "Off" }.into(),
        },
        training_job_definition: definition,
        tags,
    }
}

/// Final check of the values that came from lookups, named by their API field.
pub fn validate_tuning_request(r: &CreateTuningJobRequest) -> Vec<Violation> {
    let mut v = crate::job::request::validate_request(&r.training_job_definition.0);
    v.retain(|x| x.what != "TrainingJobName");
    if let Err(rule) = check_tuning_name(&r.hyper_parameter_tuning_job_name) {
        v.push(Violation::new("HyperParameterTuningJobName", rule));
    }
    v
}

/// The SDK call for a request; the training job definition's parts come from the SDK form of
/// `train`'s request ([`crate::job::request::to_sdk`]). A test compares the body the SDK sends
/// with the serde form, field for field.
pub fn to_sdk(
    client: &Client,
    r: &CreateTuningJobRequest,
) -> aws_sdk_sagemaker::operation::create_hyper_parameter_tuning_job::builders::CreateHyperParameterTuningJobFluentBuilder
{
    let training = crate::job::request::to_sdk(client, &r.training_job_definition.0);
    let t = training.as_input().clone();
    let a = t.get_algorithm_specification().as_ref();
    let metrics = a
        .map(|a| a.metric_definitions().to_vec())
        .unwrap_or_default();
    let algo = sm::HyperParameterAlgorithmSpecification::builder()
        .set_training_image(a.and_then(|a| a.training_image()).map(str::to_string))
        .set_training_input_mode(a.and_then(|a| a.training_input_mode()).cloned())
        .set_metric_definitions((!metrics.is_empty()).then_some(metrics))
        .build();
    let d = &r.training_job_definition.0;
    let definition = sm::HyperParameterTrainingJobDefinition::builder()
        .set_static_hyper_parameters(t.get_hyper_parameters().clone().filter(|h| !h.is_empty()))
        .algorithm_specification(algo)
        .set_role_arn(t.get_role_arn().clone())
        .set_input_data_config(t.get_input_data_config().clone().filter(|c| !c.is_empty()))
        .set_vpc_config(t.get_vpc_config().clone())
        .set_output_data_config(t.get_output_data_config().clone())
        .set_resource_config(t.get_resource_config().clone())
        .set_stopping_condition(t.get_stopping_condition().clone())
        .set_enable_network_isolation(d.enable_network_isolation.then_some(true))
        .set_enable_managed_spot_training(d.enable_managed_spot_training.then_some(true))
        .set_checkpoint_config(t.get_checkpoint_config().clone())
        .set_environment(t.get_environment().clone().filter(|e| !e.is_empty()))
        .set_retry_strategy(t.get_retry_strategy().clone())
        .build();
    let c = &r.hyper_parameter_tuning_job_config;
    let scaling = |n: &NumericRange| {
        n.scaling_type
            .as_deref()
            .map(sm::HyperParameterScalingType::from)
    };
    let mut ranges = sm::ParameterRanges::builder();
    // Integer and continuous ranges have the same fields, in types of their own.
    macro_rules! numeric {
        ($list:expr, $add:ident, $ty:ident) => {
            for n in $list {
                ranges = ranges.$add(
                    sm::$ty::builder()
                        .name(&n.name)
                        .min_value(&n.min_value)
                        .max_value(&n.max_value)
                        .set_scaling_type(scaling(n))
                        .build(),
                );
            }
        };
    }
    numeric!(
        &c.parameter_ranges.integer_parameter_ranges,
        integer_parameter_ranges,
        IntegerParameterRange
    );
    numeric!(
        &c.parameter_ranges.continuous_parameter_ranges,
        continuous_parameter_ranges,
        ContinuousParameterRange
    );
    for cat in &c.parameter_ranges.categorical_parameter_ranges {
        ranges = ranges.categorical_parameter_ranges(
            sm::CategoricalParameterRange::builder()
                .name(&cat.name)
                .set_values(Some(cat.values.clone()))
                .build(),
        );
    }
    let o = &c.hyper_parameter_tuning_job_objective;
    let config = sm::HyperParameterTuningJobConfig::builder()
        .strategy(sm::HyperParameterTuningJobStrategyType::from(
            c.strategy.as_str(),
        ))
        .hyper_parameter_tuning_job_objective(
            sm::HyperParameterTuningJobObjective::builder()
                .r#type(sm::HyperParameterTuningJobObjectiveType::from(
                    o.kind.as_str(),
                ))
                .metric_name(&o.metric_name)
                .build(),
        )
        .resource_limits(
            sm::ResourceLimits::builder()
                .max_number_of_training_jobs(c.resource_limits.max_number_of_training_jobs)
                .max_parallel_training_jobs(c.resource_limits.max_parallel_training_jobs)
                .build(),
        )
        .parameter_ranges(ranges.build())
        .training_job_early_stopping_type(sm::TrainingJobEarlyStoppingType::from(
            c.training_job_early_stopping_type.as_str(),
        ))
        .build();
    let mut b = client
        .create_hyper_parameter_tuning_job()
        .hyper_parameter_tuning_job_name(&r.hyper_parameter_tuning_job_name)
        .hyper_parameter_tuning_job_config(config)
        .training_job_definition(definition);
    for tag in &r.tags {
        b = b.tags(sm::Tag::builder().key(&tag.key).value(&tag.value).build());
    }
    b
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::job::tune::settings::TuneSettings;
    use crate::job::tune::spec::validate;
    use crate::job::tune::tests::{settings_of, spec_of, tune, with_metric};

    pub(crate) fn sample() -> CreateTuningJobRequest {
        let args = crate::job::request::tests::every_field_args();
        let settings = settings_of(args.clone());
        let job = spec_of(args);
        let t = TuneSettings::layer(
            &tune(&[
                "--range",
                "weight_decay=1e-5..1e-2:log",
                "--range",
                "depth=2..6",
                "--range",
                "batch_size=8,16,32",
                "--early-stopping",
                "--minimize",
                "--max-jobs",
                "12",
                "--parallel",
                "3",
            ]),
            None,
        )
        .unwrap();
        let t = validate(&t, &settings).unwrap();
        let resolved = crate::job::request::tests::resolved(&job);
        let training = crate::job::request::build_request(&job, &resolved);
        build_tuning_request(&job, &t, "unet-261130-112048-0123", training)
    }

    #[test]
    fn the_request_has_the_api_field_names() {
        let r = sample();
        assert!(validate_tuning_request(&r).is_empty());
        let json = serde_json::to_value(&r).unwrap();
        let c = &json["HyperParameterTuningJobConfig"];
        assert_eq!(c["Strategy"], "Bayesian");
        assert_eq!(
            c["HyperParameterTuningJobObjective"],
            serde_json::json!({"Type": "Minimize", "MetricName": "val_dice"})
        );
        assert_eq!(
            c["ResourceLimits"],
            serde_json::json!({"MaxNumberOfTrainingJobs": 12, "MaxParallelTrainingJobs": 3})
        );
        assert_eq!(c["TrainingJobEarlyStoppingType"], "Auto");
        assert_eq!(
            c["ParameterRanges"],
            serde_json::json!({
                "IntegerParameterRanges": [{"Name": "depth", "MinValue": "2", "MaxValue": "6"}],
                "ContinuousParameterRanges": [{"Name": "weight_decay", "MinValue": "1e-5", "MaxValue": "1e-2", "ScalingType": "Logarithmic"}],
                "CategoricalParameterRanges": [{"Name": "batch_size", "Values": ["8", "16", "32"]}],
            })
        );
        let d = &json["TrainingJobDefinition"];
        assert_eq!(
            d["StaticHyperParameters"],
            serde_json::json!({"epochs": "50", "learning_rate": "0.0001"})
        );
        assert!(d.get("TrainingJobName").is_none() && d.get("Tags").is_none());
        assert_eq!(d["CheckpointConfig"]["S3Uri"], "s3://my-bucket/ck/");
        assert_eq!(
            json["Tags"][1],
            serde_json::json!({"Key": crate::job::request::SUBMISSION_TAG, "Value": "0123456789abcdef"})
        );
    }

    #[test]
    fn spot_trials_get_no_shared_default_checkpoint() {
        let mut args = with_metric();
        args.spot = true;
        let job = spec_of(args.clone());
        let t = validate(
            &TuneSettings::layer(&tune(&["--range", "lr=1e-5..1e-2"]), None).unwrap(),
            &settings_of(args),
        )
        .unwrap();
        let resolved = crate::job::request::tests::resolved(&job);
        let training = crate::job::request::build_request(&job, &resolved);
        assert!(training.checkpoint_config.is_some(), "train would set one");
        let r = build_tuning_request(&job, &t, "unet-1", training);
        assert_eq!(r.training_job_definition.0.checkpoint_config, None);
        assert!(r.training_job_definition.0.enable_managed_spot_training);
    }

    /// A request with every field set: the body the SDK sends is the serde form, field for field.
    #[tokio::test]
    async fn the_sdk_sends_exactly_the_serde_form() {
        let req = sample();
        let expected = serde_json::to_value(&req).unwrap();
        let (client, rx) = crate::job::request::tests::capturing_client();
        let _ = to_sdk(&client, &req).send().await;
        let body = crate::job::request::tests::sent_body(rx);
        assert_eq!(body, expected);
        let d = &body["TrainingJobDefinition"];
        for field in [
            "StaticHyperParameters",
            "Environment",
            "VpcConfig",
            "CheckpointConfig",
            "EnableNetworkIsolation",
            "EnableManagedSpotTraining",
            "InputDataConfig",
        ] {
            assert!(d.get(field).is_some(), "{field} missing from {d}");
        }
        assert_eq!(d["ResourceConfig"]["VolumeKmsKeyId"], "alias/unet");
        assert_eq!(
            d["AlgorithmSpecification"]["MetricDefinitions"][0]["Name"],
            "val_dice"
        );
    }
}
