//! References the layers share, parsed and checked without I/O: S3 URIs (and the bucket-name
//! rule), where a channel's data is (an S3 prefix or a local folder), and image references.
//! A leaf: `data/`, `image/`, `job/` and `doctor/` read them; it imports only `config`.

use crate::config::{Source, Val};
use regex::Regex;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

fn re(p: &str) -> Regex {
    Regex::new(p).expect("valid regex")
}

pub(crate) static CHANNEL_NAME: LazyLock<Regex> = LazyLock::new(|| re(r"^[A-Za-z0-9\.\-_]{1,64}$"));
pub(crate) static ECR_REPO: LazyLock<Regex> =
    LazyLock::new(|| re(r"^(?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*$"));
pub(crate) static IMAGE_TAG: LazyLock<Regex> =
    LazyLock::new(|| re(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,299}$"));
pub(crate) static DIGEST: LazyLock<Regex> = LazyLock::new(|| re(r"^sha256:[0-9a-f]{64}$"));
pub(crate) static ECR_REGISTRY: LazyLock<Regex> = LazyLock::new(|| {
    re(r"^([0-9]{12})\.dkr\.ecr(?:-fips)?\.([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?$")
});
pub(crate) static BUCKET: LazyLock<Regex> =
    LazyLock::new(|| re(r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$"));

/// An `s3://bucket/key` URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Uri {
    pub bucket: String,
    pub key: String,
}

impl S3Uri {
    pub fn parse(uri: &str) -> Result<S3Uri, String> {
        if uri.len() > 1024 {
            return Err(format!(
                "is {} characters; an S3 URI has at most 1024",
                uri.len()
            ));
        }
        let rest = uri
            .strip_prefix("s3://")
            .ok_or_else(|| format!("`{uri}` is not an S3 URI; use the form s3://BUCKET/PREFIX"))?;
        let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
        if !BUCKET.is_match(bucket) || bucket.contains("..") {
            return Err(format!(
                "`{bucket}` is not a valid bucket name (3-63 characters: lower-case letters, digits, `.` and `-`)"
            ));
        }
        Ok(S3Uri {
            bucket: bucket.to_string(),
            key: key.to_string(),
        })
    }
}

impl fmt::Display for S3Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.key)
    }
}

/// Tag or digest of an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageVersion {
    Tag(String),
    Digest(String),
}

/// What `--image` refers to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageRef {
    /// An image in ECR; `registry` is None for a bare `repo[:tag]` in the caller's own account.
    Ecr {
        account: Option<String>,
        region: Option<String>,
        repository: String,
        version: ImageVersion,
    },
    /// An image in another registry: used as is, not checked.
    Other(String),
}

impl ImageRef {
    pub fn parse(image: &str) -> Result<ImageRef, String> {
        if image.is_empty() {
            return Err("is empty".into());
        }
        if image.len() > 255 {
            return Err(format!(
                "is {} characters; an image URI has at most 255",
                image.len()
            ));
        }
        let (registry, path) = match image.split_once('/') {
            Some((first, rest))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (Some(first), rest)
            }
            _ => (None, image),
        };
        let (repository, version) = if let Some((repo, digest)) = path.split_once('@') {
            if !DIGEST.is_match(digest) {
                return Err(format!(
                    "`{digest}` is not an image digest (sha256: and 64 hex digits)"
                ));
            }
            (repo, ImageVersion::Digest(digest.to_string()))
        } else {
            match path.rsplit_once(':') {
                Some((repo, tag)) => {
                    if !IMAGE_TAG.is_match(tag) {
                        return Err(format!("`{tag}` is not a valid image tag"));
                    }
                    (repo, ImageVersion::Tag(tag.to_string()))
                }
                None => (path, ImageVersion::Tag("latest".into())),
            }
        };
        let registry_parts = match registry {
            Some(r) => match ECR_REGISTRY.captures(r) {
                Some(c) => Some((c[1].to_string(), c[2].to_string())),
                // Another registry: used as is.
                None => return Ok(ImageRef::Other(image.to_string())),
            },
            None => None,
        };
        if !(2..=256).contains(&repository.len()) || !ECR_REPO.is_match(repository) {
            return Err(format!(
                "`{repository}` is not a valid ECR repository name (2-256 characters: lower-case letters, digits, `.`, `_`, `-`, `/`)"
            ));
        }
        let (account, region) = registry_parts.unzip();
        Ok(ImageRef::Ecr {
            account,
            region,
            repository: repository.to_string(),
            version,
        })
    }

    /// The repository's last path component, the default job base name.
    pub fn short_name(&self) -> String {
        match self {
            ImageRef::Ecr { repository, .. } => repository
                .rsplit('/')
                .next()
                .unwrap_or(repository)
                .to_string(),
            ImageRef::Other(uri) => {
                let path = uri.split('@').next().unwrap_or(uri);
                let last = path.rsplit('/').next().unwrap_or(path);
                last.split(':').next().unwrap_or(last).to_string()
            }
        }
    }
}

/// The ECR registry host for an account and region.
pub fn ecr_registry(account: &str, region: &str) -> String {
    let suffix = if region.starts_with("cn-") {
        "amazonaws.com.cn"
    } else {
        "amazonaws.com"
    };
    format!("{account}.dkr.ecr.{region}.{suffix}")
}

/// The default output bucket, the one the SageMaker Python SDK uses.
pub fn default_bucket(region: &str, account: &str) -> String {
    format!("sagemaker-{region}-{account}")
}

/// Where a channel's data is: an S3 prefix, or a local folder that is uploaded first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChannelLocation {
    S3(S3Uri),
    Local(PathBuf),
}

/// Is `name` a valid channel name?
pub fn is_channel_name(name: &str) -> bool {
    CHANNEL_NAME.is_match(name)
}

/// Read a channel value: `s3://...` is an S3 prefix; anything else without a scheme is a local
/// folder, relative to the config file's folder for a value from the file, and to `cwd` for a
/// flag or an environment variable. Pure: whether the folder exists is not checked here.
pub fn channel_location(value: &Val<String>, cwd: &Path) -> Result<ChannelLocation, String> {
    let v = value.value.as_str();
    if v.starts_with("s3://") {
        return S3Uri::parse(v).map(ChannelLocation::S3);
    }
    if v.is_empty() || v.contains("://") {
        return Err(format!(
            "`{v}` is neither an S3 URI (s3://BUCKET/PREFIX) nor a local folder"
        ));
    }
    let p = Path::new(v);
    if p.is_absolute() {
        return Ok(ChannelLocation::Local(p.to_path_buf()));
    }
    let base = match &value.source {
        Source::File { path, .. } => {
            let folder = path.parent().unwrap_or(Path::new(""));
            if folder.is_absolute() {
                folder.to_path_buf()
            } else {
                cwd.join(folder)
            }
        }
        _ => cwd.to_path_buf(),
    };
    // `./data/train` joins as `base/data/train`, not `base/./data/train`.
    let tidy: PathBuf = p
        .components()
        .filter(|c| !matches!(c, std::path::Component::CurDir))
        .collect();
    Ok(ChannelLocation::Local(base.join(tidy)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_references() {
        let ecr = |account: Option<&str>, region: Option<&str>, repository: &str, version| {
            ImageRef::Ecr {
                account: account.map(String::from),
                region: region.map(String::from),
                repository: repository.into(),
                version,
            }
        };
        assert_eq!(
            ImageRef::parse("unet-vessels").unwrap(),
            ecr(
                None,
                None,
                "unet-vessels",
                ImageVersion::Tag("latest".into())
            )
        );
        assert_eq!(
            ImageRef::parse("team/unet:v2").unwrap(),
            ecr(None, None, "team/unet", ImageVersion::Tag("v2".into()))
        );
        let digest = format!("sha256:{}", "a".repeat(64));
        assert_eq!(
            ImageRef::parse(&format!(
                "123456789012.dkr.ecr.us-east-1.amazonaws.com/unet@{digest}"
            ))
            .unwrap(),
            ecr(
                Some("123456789012"),
                Some("us-east-1"),
                "unet",
                ImageVersion::Digest(digest)
            )
        );
        assert_eq!(
            ImageRef::parse("ghcr.io/org/unet:1.0").unwrap(),
            ImageRef::Other("ghcr.io/org/unet:1.0".into())
        );
        assert!(ImageRef::parse("Unet:latest").is_err());
        assert!(ImageRef::parse("unet@sha256:abc").is_err());
        assert_eq!(
            ImageRef::parse("team/unet-vessels:v2")
                .unwrap()
                .short_name(),
            "unet-vessels"
        );
    }

    #[test]
    fn channel_values_are_s3_uris_or_folders_relative_to_their_source() {
        let cwd = Path::new("/work/project");
        let flag = |v: &str| Val::new(v.to_string(), Source::Flag("--train"));
        let file = |v: &str, f: &str| {
            Val::new(
                v.to_string(),
                Source::File {
                    path: PathBuf::from(f),
                    key: "channels.train".into(),
                },
            )
        };
        let local = |p: &str| Ok(ChannelLocation::Local(PathBuf::from(p)));
        assert_eq!(
            channel_location(&flag("s3://bkt/data/"), cwd),
            Ok(ChannelLocation::S3(S3Uri {
                bucket: "bkt".into(),
                key: "data/".into()
            }))
        );
        match channel_location(&flag("./data/train"), cwd).unwrap() {
            // Compared as text: Path equality ignores a `.` in the middle.
            ChannelLocation::Local(p) => {
                assert_eq!(p.display().to_string(), "/work/project/data/train")
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            channel_location(&Val::new("d".into(), Source::Env("X")), cwd),
            local("/work/project/d")
        );
        assert_eq!(channel_location(&flag("/abs/d"), cwd), local("/abs/d"));
        // A file value is relative to the file's folder, wherever the command runs.
        assert_eq!(
            channel_location(&file("data/train", "/home/me/unet/sagetrain.toml"), cwd),
            local("/home/me/unet/data/train")
        );
        assert_eq!(
            channel_location(&file("data", "conf/sagetrain.toml"), cwd),
            local("/work/project/conf/data")
        );
        assert!(channel_location(&flag("s3://Bad_Bucket/x"), cwd).is_err());
        assert!(channel_location(&flag("https://b.s3.amazonaws.com/x"), cwd)
            .unwrap_err()
            .contains("neither an S3 URI"));
        assert!(channel_location(&flag(""), cwd).is_err());
    }

    #[test]
    fn s3_uris() {
        assert_eq!(
            S3Uri::parse("s3://b-1/a/b/").unwrap(),
            S3Uri {
                bucket: "b-1".into(),
                key: "a/b/".into()
            }
        );
        assert_eq!(S3Uri::parse("s3://bucket").unwrap().key, "");
        assert!(S3Uri::parse("s3://Bad_Bucket/x").is_err());
        assert!(S3Uri::parse("/local/dir").is_err());
        assert!(S3Uri::parse(&format!("s3://bucket/{}", "k".repeat(1020))).is_err());
    }

    /// Account ids are ASCII digits (Unicode `\d{12}` costs regex compilation time).
    #[test]
    fn ecr_registries_are_ascii() {
        assert!(ECR_REGISTRY.is_match("111122223333.dkr.ecr.eu-west-1.amazonaws.com"));
    }
}
