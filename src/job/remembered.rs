//! What earlier lookups found, kept in the user cache folder for a stated time so that a later
//! submit need not ask again before the lookups that depend on it:
//!
//! - the account (and caller ARN) of the credentials, by their access key id and, for
//!   credentials from a profile, by the profile's name and the settings that choose the account
//!   (a profile's temporary keys change every session; the account it names does not). Kept
//!   [`ACCOUNT_LIFETIME`].
//! - the default output bucket, once it was found or created in its region. Kept
//!   [`BUCKET_LIFETIME`].
//!
//! - the codes of the account's SageMaker training quotas (Service Quotas names them by code):
//!   [`QUOTA_CODE_LIFETIME`]; and each quota's value, [`QUOTA_LIFETIME`].
//!
//! - the on-demand training price of an instance type in a region: [`PRICE_LIFETIME`].
//!
//! Nothing secret is kept: the keys are SHA-256 digests, the values an account id, an ARN, a
//! region and a time. `--refresh` reads none of them (and writes them anew). A cache that cannot
//! be read or written costs only the request.

use crate::fsutil;
use crate::job::lookups::Identity;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How long the account of a key or profile is trusted without asking sts:GetCallerIdentity.
pub const ACCOUNT_LIFETIME: Duration = Duration::from_secs(7 * 24 * 3600);
/// How long the default bucket is trusted to exist without s3:HeadBucket.
pub const BUCKET_LIFETIME: Duration = Duration::from_secs(3600);

/// How long the codes of the training quotas (stable names of the service) are kept; an
/// answer without any (an endpoint that has no SageMaker quotas) is kept [`QUOTA_LIFETIME`].
pub const QUOTA_CODE_LIFETIME: Duration = Duration::from_secs(30 * 24 * 3600);
/// How long a quota's value is trusted.
pub const QUOTA_LIFETIME: Duration = Duration::from_secs(5 * 60);

/// How long an instance type's price is kept (the Price List changes rarely).
pub const PRICE_LIFETIME: Duration = Duration::from_secs(24 * 3600);

#[derive(Debug, Serialize, Deserialize)]
struct PriceEntry {
    /// USD an hour; `None`: the Price List has none for the type.
    hourly: Option<f64>,
    at: u64,
    /// Why the Price List could not be read: kept [`QUOTA_LIFETIME`], not asked again before.
    #[serde(default)]
    error: Option<String>,
}

/// The training quotas of one scope (the account's key and region), in one file.
#[derive(Debug, Default, Serialize, Deserialize)]
struct QuotaFile {
    /// Quota name -> code, as listed at `at`.
    codes: std::collections::BTreeMap<String, String>,
    at: u64,
    /// Quota name -> its value and when it was read.
    #[serde(default)]
    values: std::collections::BTreeMap<String, QuotaValue>,
}

#[derive(Debug, Serialize, Deserialize)]
struct QuotaValue {
    code: String,
    value: f64,
    at: u64,
}

/// The remembered lookups of one run.
#[derive(Debug, Clone)]
pub struct Remembered {
    /// The user cache folder (`~/.cache/sagetrain`); `None`: nothing is remembered.
    dir: Option<PathBuf>,
    /// `--refresh`: read nothing, write what is found.
    refresh: bool,
    now: SystemTime,
}

#[derive(Debug, Serialize, Deserialize)]
struct AccountEntry {
    account: String,
    arn: String,
    /// Seconds since the epoch.
    at: u64,
}

#[derive(Debug, Serialize, Deserialize)]
struct BucketEntry {
    region: String,
    at: u64,
}

fn secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn digest(text: &str) -> String {
    let d = Sha256::digest(text.as_bytes());
    d.iter().take(16).map(|b| format!("{b:02x}")).collect()
}

/// The keys under which the account of these credentials is remembered: the access key id, and
/// the profile (`profile` is its name and the settings that choose the account, see
/// `Aws::profile_identity`) when they came from one.
pub fn account_keys(access_key_id: &str, profile: Option<&str>) -> Vec<String> {
    let mut keys = vec![format!("access key id {access_key_id}")];
    if let Some(p) = profile {
        keys.push(format!("profile {p}"));
    }
    keys
}

impl Remembered {
    pub fn new(dir: Option<PathBuf>, refresh: bool) -> Remembered {
        Remembered {
            dir,
            refresh,
            now: SystemTime::now(),
        }
    }

    #[cfg(test)]
    fn at(mut self, now: SystemTime) -> Remembered {
        self.now = now;
        self
    }

    fn file(&self, kind: &str, name: &str) -> Option<PathBuf> {
        self.dir.as_ref().map(|d| d.join(kind).join(name))
    }

    fn fresh(&self, at: u64, lifetime: Duration) -> bool {
        let now = secs(self.now);
        at <= now && now - at < lifetime.as_secs()
    }

    fn read<T: serde::de::DeserializeOwned>(&self, path: &Path) -> Option<T> {
        if self.refresh {
            return None;
        }
        serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
    }

    fn write<T: Serialize>(&self, path: Option<PathBuf>, value: &T) {
        if let (Some(path), Ok(text)) = (path, serde_json::to_string(value)) {
            let _ = fsutil::write_private(&path, text.as_bytes());
        }
    }

    /// The account remembered under the first of `keys` that has a fresh one.
    pub fn account(&self, keys: &[String]) -> Option<Identity> {
        keys.iter().find_map(|k| {
            let e: AccountEntry = self.read(&self.file("accounts", &digest(k))?)?;
            (self.fresh(e.at, ACCOUNT_LIFETIME) && !e.account.is_empty()).then_some(Identity {
                account: e.account,
                arn: e.arn,
            })
        })
    }

    /// Remember the account under each of `keys`.
    pub fn remember_account(&self, keys: &[String], id: &Identity) {
        if id.account.is_empty() {
            return;
        }
        let e = AccountEntry {
            account: id.account.clone(),
            arn: id.arn.clone(),
            at: secs(self.now),
        };
        for k in keys {
            self.write(self.file("accounts", &digest(k)), &e);
        }
    }

    /// Was `bucket` found (or created) in `region` within [`BUCKET_LIFETIME`]?
    pub fn bucket_exists(&self, bucket: &str, region: &str) -> bool {
        let Some(path) = self.file("buckets", bucket) else {
            return false;
        };
        self.read::<BucketEntry>(&path)
            .is_some_and(|e| e.region == region && self.fresh(e.at, BUCKET_LIFETIME))
    }

    fn quota_file(&self, scope: &str) -> Option<QuotaFile> {
        self.read(&self.file("quotas", &digest(scope))?)
    }

    /// The codes of the training quotas seen in `scope` (the account's key and region), if
    /// fresh: quota name -> code.
    pub fn quota_codes(&self, scope: &str) -> Option<std::collections::BTreeMap<String, String>> {
        let e = self.quota_file(scope)?;
        let lifetime = if e.codes.is_empty() {
            QUOTA_LIFETIME
        } else {
            QUOTA_CODE_LIFETIME
        };
        self.fresh(e.at, lifetime).then_some(e.codes)
    }

    /// Remember a listing: every code, and the values it gave (name -> (code, value)).
    pub fn remember_quota_listing(
        &self,
        scope: &str,
        codes: &std::collections::BTreeMap<String, String>,
        values: &std::collections::BTreeMap<String, (String, f64)>,
    ) {
        let at = secs(self.now);
        let e = QuotaFile {
            codes: codes.clone(),
            at,
            values: values
                .iter()
                .map(|(name, (code, value))| {
                    let v = QuotaValue {
                        code: code.clone(),
                        value: *value,
                        at,
                    };
                    (name.clone(), v)
                })
                .collect(),
        };
        self.write(self.file("quotas", &digest(scope)), &e);
    }

    /// A quota's value in `scope`, if fresh: (code, value).
    pub fn quota_value(&self, scope: &str, name: &str) -> Option<(String, f64)> {
        let e = self.quota_file(scope)?;
        let v = e.values.get(name)?;
        self.fresh(v.at, QUOTA_LIFETIME)
            .then(|| (v.code.clone(), v.value))
    }

    /// Remember one value read on its own (GetServiceQuota), beside the listing.
    pub fn remember_quota_value(&self, scope: &str, name: &str, code: &str, value: f64) {
        let mut e = self.quota_file(scope).unwrap_or_default();
        e.values.insert(
            name.to_string(),
            QuotaValue {
                code: code.to_string(),
                value,
                at: secs(self.now),
            },
        );
        self.write(self.file("quotas", &digest(scope)), &e);
    }

    /// The remembered hourly price of `instance_type` in `region`: `Some(Ok(None))` when the
    /// Price List was found to have none, `Some(Err(why))` when it could not be read lately.
    pub fn price(
        &self,
        region: &str,
        instance_type: &str,
    ) -> Option<std::result::Result<Option<f64>, String>> {
        let e: PriceEntry =
            self.read(&self.file("prices", &digest(&format!("{region} {instance_type}")))?)?;
        match e.error {
            Some(why) => self.fresh(e.at, QUOTA_LIFETIME).then_some(Err(why)),
            None => self.fresh(e.at, PRICE_LIFETIME).then_some(Ok(e.hourly)),
        }
    }

    /// A price read at any age (for `status` of a job submitted days ago): what sagetrain
    /// last found, if anything.
    pub fn price_any_age(&self, region: &str, instance_type: &str) -> Option<f64> {
        let e: PriceEntry =
            self.read(&self.file("prices", &digest(&format!("{region} {instance_type}")))?)?;
        e.hourly
    }

    /// Remember a price (or that there is none: `Ok(None)`), or why it could not be read.
    pub fn remember_price(
        &self,
        region: &str,
        instance_type: &str,
        found: std::result::Result<Option<f64>, &str>,
    ) {
        let (hourly, error) = match found {
            Ok(h) => (h, None),
            Err(why) => (None, Some(why.to_string())),
        };
        let e = PriceEntry {
            hourly,
            at: secs(self.now),
            error,
        };
        self.write(
            self.file("prices", &digest(&format!("{region} {instance_type}"))),
            &e,
        );
    }

    /// Remember that `bucket` exists in `region`.
    pub fn remember_bucket(&self, bucket: &str, region: &str) {
        let e = BucketEntry {
            region: region.to_string(),
            at: secs(self.now),
        };
        self.write(self.file("buckets", bucket), &e);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id() -> Identity {
        Identity {
            account: "111122223333".into(),
            arn: "arn:aws:iam::111122223333:user/alice".into(),
        }
    }

    #[test]
    fn prices_are_kept_a_day_and_a_failure_minutes() {
        let dir = tempfile::tempdir().unwrap();
        let now = SystemTime::now();
        let m = Remembered::new(Some(dir.path().to_path_buf()), false).at(now);
        m.remember_price("eu-west-1", "ml.g5.xlarge", Ok(Some(1.408)));
        m.remember_price("eu-west-1", "ml.p3.2xlarge", Err("HTTP 500"));
        let later = |secs: u64| {
            Remembered::new(Some(dir.path().to_path_buf()), false)
                .at(now + Duration::from_secs(secs))
        };
        assert_eq!(
            later(3600).price("eu-west-1", "ml.g5.xlarge"),
            Some(Ok(Some(1.408)))
        );
        assert_eq!(
            later(PRICE_LIFETIME.as_secs() + 1).price("eu-west-1", "ml.g5.xlarge"),
            None
        );
        assert_eq!(
            later(PRICE_LIFETIME.as_secs() + 1).price_any_age("eu-west-1", "ml.g5.xlarge"),
            Some(1.408)
        );
        assert_eq!(
            later(60).price("eu-west-1", "ml.p3.2xlarge"),
            Some(Err("HTTP 500".into()))
        );
        assert_eq!(
            later(QUOTA_LIFETIME.as_secs() + 1).price("eu-west-1", "ml.p3.2xlarge"),
            None
        );
    }

    #[test]
    fn quota_codes_and_values_are_kept_for_their_lifetimes() {
        let dir = tempfile::tempdir().unwrap();
        let now = SystemTime::now();
        let m = Remembered::new(Some(dir.path().to_path_buf()), false).at(now);
        let codes = std::collections::BTreeMap::from([(
            "ml.g5.xlarge for training job usage".to_string(),
            "L-1".to_string(),
        )]);
        let values = std::collections::BTreeMap::from([(
            "ml.g5.xlarge for training job usage".to_string(),
            ("L-1".to_string(), 4.0),
        )]);
        m.remember_quota_listing("eu-west-1 k", &codes, &values);
        assert_eq!(m.quota_codes("eu-west-1 k"), Some(codes.clone()));
        assert_eq!(m.quota_codes("us-east-1 k"), None);
        let later = |secs: u64| {
            Remembered::new(Some(dir.path().to_path_buf()), false)
                .at(now + Duration::from_secs(secs))
        };
        let name = "ml.g5.xlarge for training job usage";
        assert_eq!(
            later(60).quota_value("eu-west-1 k", name),
            Some(("L-1".into(), 4.0))
        );
        assert_eq!(
            later(QUOTA_LIFETIME.as_secs() + 1).quota_value("eu-west-1 k", name),
            None
        );
        assert!(later(QUOTA_LIFETIME.as_secs() + 1)
            .quota_codes("eu-west-1 k")
            .is_some());
        // No quota at all (an emulator): asked again after the short lifetime.
        m.remember_quota_listing("none", &Default::default(), &Default::default());
        assert!(later(60).quota_codes("none").is_some());
        assert!(later(QUOTA_LIFETIME.as_secs() + 1)
            .quota_codes("none")
            .is_none());
        // --refresh reads nothing.
        assert!(Remembered::new(Some(dir.path().to_path_buf()), true)
            .quota_codes("eu-west-1 k")
            .is_none());
    }

    #[test]
    fn an_account_is_remembered_by_key_id_or_profile_for_its_lifetime() {
        let dir = tempfile::tempdir().unwrap();
        let m = Remembered::new(Some(dir.path().to_path_buf()), false);
        let keys = account_keys(
            "ASIAOLDSESSION",
            Some("work role_arn=arn:aws:iam::1:role/R"),
        );
        assert!(m.account(&keys).is_none());
        m.remember_account(&keys, &id());
        assert_eq!(m.account(&keys).unwrap().account, "111122223333");
        // A new session of the same profile: a new key id, the same profile.
        let next = account_keys(
            "ASIANEWSESSION",
            Some("work role_arn=arn:aws:iam::1:role/R"),
        );
        assert_eq!(m.account(&next).unwrap().arn, id().arn);
        // Another profile, or an edited one, is not the same.
        let other = account_keys(
            "ASIANEWSESSION",
            Some("work role_arn=arn:aws:iam::2:role/R"),
        );
        assert!(m.account(&other).is_none());
        assert!(m.account(&account_keys("AKIAOTHER", None)).is_none());
        // No key id, secret or token in the files: digests as names, an account and ARN inside.
        for f in std::fs::read_dir(dir.path().join("accounts")).unwrap() {
            let f = f.unwrap();
            let name = f.file_name().into_string().unwrap();
            assert!(!name.contains("ASIA"), "{name}");
            let text = std::fs::read_to_string(f.path()).unwrap();
            assert!(
                !text.contains("ASIA") && !text.contains("role_arn"),
                "{text}"
            );
        }
        // Expired after its lifetime.
        let later = Remembered::new(Some(dir.path().to_path_buf()), false)
            .at(SystemTime::now() + ACCOUNT_LIFETIME + Duration::from_secs(1));
        assert!(later.account(&keys).is_none());
        // --refresh reads nothing.
        let refresh = Remembered::new(Some(dir.path().to_path_buf()), true);
        assert!(refresh.account(&keys).is_none());
        // Without a cache folder nothing is remembered, and nothing fails.
        let none = Remembered::new(None, false);
        none.remember_account(&keys, &id());
        assert!(none.account(&keys).is_none());
    }

    #[test]
    fn a_bucket_is_remembered_in_its_region_for_an_hour() {
        let dir = tempfile::tempdir().unwrap();
        let m = Remembered::new(Some(dir.path().to_path_buf()), false);
        let b = "sagemaker-eu-west-1-111122223333";
        assert!(!m.bucket_exists(b, "eu-west-1"));
        m.remember_bucket(b, "eu-west-1");
        assert!(m.bucket_exists(b, "eu-west-1"));
        assert!(!m.bucket_exists(b, "us-east-1"));
        let later = Remembered::new(Some(dir.path().to_path_buf()), false)
            .at(SystemTime::now() + BUCKET_LIFETIME + Duration::from_secs(1));
        assert!(!later.bucket_exists(b, "eu-west-1"));
        assert!(
            !Remembered::new(Some(dir.path().to_path_buf()), true).bucket_exists(b, "eu-west-1")
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("buckets").join(b))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
