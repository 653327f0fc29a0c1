//! What a job costs: the on-demand price of its instance type from the AWS Price List
//! (service code `AmazonSageMaker`, product family `ML Instance`, the type's `Training` price in
//! the job's region), the worst case before a submit (every instance for the whole `max_run`),
//! and afterwards the cost of the billable time. Pure: the lookup is in `job::lookups`.

/// The Price List service code of SageMaker.
pub const SERVICE_CODE: &str = "AmazonSageMaker";

/// The Price List filters (field, value) of the training price of `instance_type` in `region`.
pub fn filters(region: &str, instance_type: &str) -> Vec<(&'static str, String)> {
    vec![
        ("productFamily", "ML Instance".to_string()),
        ("regionCode", region.to_string()),
        ("instanceName", instance_type.to_string()),
        ("platoinstancetype", "Training".to_string()),
    ]
}

/// The hourly USD price in one Price List product (a JSON document as GetProducts gives it):
/// the first on-demand price dimension priced per hour.
pub fn hourly_usd(product: &str) -> Option<f64> {
    let v: serde_json::Value = serde_json::from_str(product).ok()?;
    let on_demand = v.get("terms")?.get("OnDemand")?.as_object()?;
    on_demand.values().find_map(|term| {
        term.get("priceDimensions")?
            .as_object()?
            .values()
            .find(|d| {
                d.get("unit").and_then(|u| u.as_str()).is_none_or(|u| {
                    u.eq_ignore_ascii_case("hrs") || u.eq_ignore_ascii_case("hours")
                })
            })?
            .get("pricePerUnit")?
            .get("USD")?
            .as_str()?
            .parse::<f64>()
            .ok()
            .filter(|p| *p > 0.0)
    })
}

/// The worst case of a request before it runs.
#[derive(Debug, Clone, PartialEq)]
pub struct Estimate {
    /// The price of one instance an hour (the dearest preference).
    pub hourly: f64,
    pub instances: i64,
    /// `max_run`, in seconds.
    pub max_run: i64,
    /// Jobs of the request (1; a tuning job's `max_jobs`).
    pub jobs: i64,
    pub spot: bool,
}

impl Estimate {
    /// Every instance of every job for the whole `max_run`.
    pub fn worst_case(&self) -> f64 {
        self.hourly * self.instances as f64 * (self.max_run as f64 / 3600.0) * self.jobs as f64
    }

    /// One line for stderr (and the dry run).
    pub fn line(&self) -> String {
        let per_hour = self.hourly * self.instances as f64;
        let jobs = if self.jobs > 1 {
            format!(" x {} jobs", self.jobs)
        } else {
            String::new()
        };
        let spot = if self.spot {
            " on demand; spot: up to 90% less"
        } else {
            ""
        };
        format!(
            "cost: {} an hour ({} x {} instances); at most {} for the {} maximum run{jobs}{spot}",
            usd(per_hour),
            usd(self.hourly),
            self.instances,
            usd(self.worst_case()),
            crate::config::durations::format_secs(self.max_run.max(0) as u64),
        )
    }
}

/// The cost of a finished (or running) job's billable time.
pub fn billed(hourly: f64, instances: i64, billable_seconds: i64) -> f64 {
    hourly * instances as f64 * billable_seconds as f64 / 3600.0
}

/// `$1.41`, `$0.0042`: two decimals, more for less than a cent.
pub fn usd(v: f64) -> String {
    if v != 0.0 && v.abs() < 0.01 {
        format!("${v:.4}")
    } else {
        format!("${v:.2}")
    }
}

/// `--max-cost`: refused when the worst case is above it. `None`: within it.
pub fn over_budget(e: &Estimate, max_cost: f64) -> Option<String> {
    let worst = e.worst_case();
    (worst > max_cost).then(|| {
        format!(
            "the worst case is {} ({}), above --max-cost {}",
            usd(worst),
            e.line().trim_start_matches("cost: "),
            usd(max_cost)
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A product as GetProducts returns it (one JSON document a string), shortened.
    pub(crate) fn product(usd: &str) -> String {
        serde_json::json!({
            "product": {"productFamily": "ML Instance", "attributes": {"regionCode": "eu-west-1", "instanceName": "ml.g5.xlarge", "platoinstancetype": "Training"}, "sku": "ABC"},
            "serviceCode": "AmazonSageMaker",
            "terms": {"OnDemand": {"ABC.JRTCKXETXF": {"priceDimensions": {"ABC.JRTCKXETXF.6YS6EN2CT7": {
                "unit": "Hrs", "pricePerUnit": {"USD": usd}, "description": "$1.41 per On Demand ml.g5.xlarge Training Instance Hour"
            }}}}}
        })
        .to_string()
    }

    #[test]
    fn the_hourly_price_is_read_from_a_product() {
        assert_eq!(hourly_usd(&product("1.4080000000")), Some(1.408));
        assert_eq!(hourly_usd(&product("0.0000000000")), None);
        assert_eq!(hourly_usd("{}"), None);
        assert_eq!(hourly_usd("not json"), None);
    }

    #[test]
    fn the_worst_case_is_every_instance_for_the_whole_run() {
        let e = Estimate {
            hourly: 1.408,
            instances: 2,
            max_run: 24 * 3600,
            jobs: 1,
            spot: false,
        };
        assert!((e.worst_case() - 67.584).abs() < 1e-9);
        assert_eq!(
            e.line(),
            "cost: $2.82 an hour ($1.41 x 2 instances); at most $67.58 for the 24h maximum run"
        );
        let tune = Estimate {
            jobs: 10,
            spot: true,
            max_run: 3600,
            ..e.clone()
        };
        assert!(
            tune.line()
                .ends_with("for the 1h maximum run x 10 jobs on demand; spot: up to 90% less"),
            "{}",
            tune.line()
        );
        assert_eq!(over_budget(&e, 100.0), None);
        assert!(over_budget(&e, 50.0)
            .unwrap()
            .starts_with("the worst case is $67.58 ($2.82 an hour"));
        assert_eq!(usd(billed(1.408, 1, 90)), "$0.04");
        assert_eq!(usd(0.0042), "$0.0042");
    }
}
