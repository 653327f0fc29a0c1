//! 4. Image, output bucket, input channels.

use crate::config::Val;
use crate::doctor::report::{id, Check};
use crate::job::lookups;
use crate::refs::ImageRef;

/// The image check: the image resolves in ECR and its tag exists; the digest is shown.
pub async fn image_check(ecr: &aws_sdk_ecr::Client, image: &Val<String>, region: &str) -> Check {
    let source = image.source.name_for(None);
    if let Ok(ImageRef::Other(uri)) = ImageRef::parse(&image.value) {
        return Check::warn(
            id::IMAGE,
            format!("{uri} is not in ECR: not checked"),
            format!("SageMaker training pulls images from ECR: push it to a repository in {region} (see examples/README.md) and use --image REPO:TAG"),
        )
        .with_source(source);
    }
    match lookups::image_with(ecr, image, true, region).await {
        Err(e) => Check::from_error(id::IMAGE, &e).with_source(source),
        Ok((resolved, notes)) => {
            let value = format!("{} -> {}", image.value, resolved.value);
            if notes.is_empty() {
                Check::pass(id::IMAGE, value).with_source(source)
            } else {
                let fix = if notes.iter().any(|n| n.contains("platform")) {
                    crate::image::platform::REBUILD.to_string()
                } else {
                    format!("push the image to ECR in {region}, or run the job where the image is (--region)")
                };
                Check::warn(id::IMAGE, format!("{value}; {}", notes.join("; ")), fix)
                    .with_source(source)
            }
        }
    }
}

/// The output bucket check: exists, is reachable, and is in the job's region. The default
/// bucket may not exist yet: `train` creates it.
pub async fn output_check(
    s3: &aws_sdk_s3::Client,
    given: Option<&Val<String>>,
    account: &str,
    region: &str,
) -> Check {
    match lookups::output_path_with(s3, given, account, region, true).await {
        Err(e) => {
            let c = Check::from_error(id::OUTPUT, &e);
            match given {
                Some(g) => c.with_source(g.source.name_for(None)),
                None => c,
            }
        }
        Ok((v, notes)) => {
            let value = if notes.is_empty() {
                format!("{} (bucket reachable, in {region})", v.value)
            } else {
                format!(
                    "{} (the default bucket does not exist yet: `train` creates it in {region})",
                    v.value
                )
            };
            let source = match given {
                Some(g) => g.source.name_for(None),
                None => "default: sagemaker-REGION-ACCOUNT".into(),
            };
            Check::pass(id::OUTPUT, value).with_source(source)
        }
    }
}

/// An input channel check: the prefix exists and is not empty.
pub async fn channel_check(
    s3: &aws_sdk_s3::Client,
    name: &str,
    uri: &Val<String>,
    region: &str,
) -> Check {
    let check_id = format!("channel.{name}");
    let source = uri.source.name_for(Some(name));
    match lookups::check_channel_with(s3, name, uri, region).await {
        Ok(()) => Check::pass(&check_id, format!("{} holds data", uri.value)).with_source(source),
        Err(e) => Check::from_error(&check_id, &e).with_source(source),
    }
}
