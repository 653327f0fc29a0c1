//! The platform check: SageMaker training instances are x86_64, so an image must offer
//! `linux/amd64`. Checked on the archive before a push, and in ECR before a job is submitted, on
//! the manifest the image lookup read (manifest lists by their entries; single manifests by their
//! config blob, read through GetDownloadUrlForLayer). Verdicts are cached per digest: a digest
//! names immutable content (`--refresh` asks again).

use crate::error::{Error, Result};
use serde_json::Value;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

/// `os/architecture[/variant]` of an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

impl Platform {
    /// From an image config (or a manifest list entry's `platform`).
    pub fn from_value(v: &Value) -> Platform {
        let s = |k: &str| v[k].as_str().unwrap_or("").to_string();
        Platform {
            os: s("os"),
            architecture: s("architecture"),
            variant: v["variant"]
                .as_str()
                .filter(|x| !x.is_empty())
                .map(str::to_string),
        }
    }

    pub fn from_config(bytes: &[u8]) -> Option<Platform> {
        let v: Value = serde_json::from_slice(bytes).ok()?;
        v.is_object().then(|| Platform::from_value(&v))
    }

    /// Can SageMaker's x86_64 instances run it?
    pub fn fits(&self) -> bool {
        self.os == "linux" && self.architecture == "amd64"
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let os = if self.os.is_empty() { "?" } else { &self.os };
        let arch = if self.architecture.is_empty() {
            "?"
        } else {
            &self.architecture
        };
        write!(f, "{os}/{arch}")?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// How to rebuild an image SageMaker can run.
pub const REBUILD: &str = "rebuild it for linux/amd64 and push it again: `sagetrain image push CONTEXT` builds with --platform linux/amd64 (or `docker buildx build --platform linux/amd64 ...`, `podman build --platform linux/amd64 ...`)";

/// The refusal of a local image (exit 2): nothing was uploaded.
pub fn refused(found: &str) -> Error {
    Error::usage(format!(
        "the image is built for {found}, but SageMaker training instances run linux/amd64; nothing was uploaded"
    ))
    .with_hint(REBUILD)
}

/// What the registry says about an image's platform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// It offers linux/amd64.
    Fits,
    /// It does not; the platforms it offers.
    Wrong(Vec<String>),
    /// The check could not be completed (why).
    Unknown(String),
}

/// The manifest types the image lookup accepts from ecr:BatchGetImage.
pub const ACCEPTED: [&str; 4] = [
    super::media::DOCKER_MANIFEST,
    super::media::DOCKER_LIST,
    super::media::OCI_MANIFEST,
    super::media::OCI_INDEX,
];

/// The cache folder of verdicts, set once per process from the command's environment.
static CACHE: OnceLock<Option<PathBuf>> = OnceLock::new();

/// `--refresh`: cached verdicts are not read (new ones are still written).
static REFRESH: AtomicBool = AtomicBool::new(false);

/// Use `dir` (the user cache folder, e.g. `~/.cache/sagetrain`) for verdicts.
pub fn set_cache_dir(dir: Option<PathBuf>) {
    let _ = CACHE.set(dir.map(|d| d.join("platform")));
}

/// With `on` (`--refresh`), ask the registry again instead of reading cached verdicts.
pub fn set_refresh(on: bool) {
    REFRESH.store(on, Ordering::Relaxed);
}

fn cache_dir() -> Option<PathBuf> {
    CACHE
        .get_or_init(|| {
            crate::fsutil::cache_dir(&|k| std::env::var(k).ok()).map(|d| d.join("platform"))
        })
        .clone()
}

fn cache_file(dir: &Path, digest: &str) -> PathBuf {
    dir.join(digest.replace(':', "-"))
}

/// A cached verdict (only known ones are cached).
pub fn cached(dir: &Path, digest: &str) -> Option<Verdict> {
    let text = std::fs::read_to_string(cache_file(dir, digest)).ok()?;
    let v: Value = serde_json::from_str(&text).ok()?;
    let platforms: Vec<String> = v["platforms"]
        .as_array()?
        .iter()
        .filter_map(|p| p.as_str().map(str::to_string))
        .collect();
    match v["fits"].as_bool()? {
        true => Some(Verdict::Fits),
        false => Some(Verdict::Wrong(platforms)),
    }
}

/// Remember a verdict (best effort: a cache that cannot be written only costs a request).
pub fn remember(dir: &Path, digest: &str, fits: bool, platforms: &[String]) {
    let v = serde_json::json!({"fits": fits, "platforms": platforms});
    let _ = crate::fsutil::write_private(&cache_file(dir, digest), v.to_string().as_bytes());
}

/// Remember the verdict of an image this process pushed (its config is known).
pub fn remember_pushed(digest: &str, platform: &Platform) {
    if let Some(dir) = cache_dir() {
        remember(&dir, digest, platform.fits(), &[platform.to_string()]);
    }
}

/// Check the image `digest` of `repository`, whose `manifest` the image lookup read; `fetch`
/// reads a URL (the config blob's download URL). Known verdicts are cached in `cache`.
pub async fn check_with<F, Fut>(
    ecr: &aws_sdk_ecr::Client,
    fetch: F,
    cache: Option<&Path>,
    registry_id: Option<&str>,
    repository: &str,
    digest: &str,
    manifest: &str,
) -> Verdict
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = std::result::Result<Vec<u8>, String>>,
{
    let read = !REFRESH.load(Ordering::Relaxed);
    if let Some(v) = cache.filter(|_| read).and_then(|d| cached(d, digest)) {
        return v;
    }
    let verdict = match config_url(ecr, registry_id, repository, manifest).await {
        Err(known) => known,
        Ok(url) => match fetch(url).await {
            Ok(bytes) => match Platform::from_config(&bytes) {
                Some(p) => verdict_of(&[p]),
                None => Verdict::Unknown("the image config is not JSON".into()),
            },
            Err(e) => Verdict::Unknown(format!("the image config could not be downloaded: {e}")),
        },
    };
    // Only known verdicts: an unknown one is asked again next time.
    match (cache, &verdict) {
        (Some(dir), Verdict::Fits) => remember(dir, digest, true, &[]),
        (Some(dir), Verdict::Wrong(p)) => remember(dir, digest, false, p),
        _ => {}
    }
    verdict
}

/// The download URL of the image's config blob, or the verdict when the manifest already gives
/// one (a manifest list names its platforms) or the lookup fails.
async fn config_url(
    ecr: &aws_sdk_ecr::Client,
    registry_id: Option<&str>,
    repository: &str,
    manifest: &str,
) -> std::result::Result<String, Verdict> {
    let Ok(doc) = serde_json::from_str::<Value>(manifest) else {
        return Err(Verdict::Unknown(
            "the manifest ecr:BatchGetImage returned is not JSON".into(),
        ));
    };
    // A manifest list / OCI index: its entries name their platforms.
    if let Some(entries) = index_entries(&doc) {
        let platforms: Vec<Platform> = entries.into_iter().map(|(p, _)| p).collect();
        return Err(verdict_of(&platforms));
    }
    // Schema 1 manifests name the architecture themselves.
    if doc["schemaVersion"].as_i64() == Some(1) {
        return Err(verdict_of(&[Platform {
            os: "linux".into(),
            architecture: doc["architecture"].as_str().unwrap_or("").into(),
            variant: None,
        }]));
    }
    let Some(config) = doc["config"]["digest"].as_str() else {
        return Err(Verdict::Unknown("the manifest names no config".into()));
    };
    // One attempt: the check only advises (an unknown verdict says it could not tell), so a
    // failing answer is not worth the retries' back-off on the way to CreateTrainingJob. An
    // emulator without this operation answers 500, which would otherwise be retried twice.
    let once = aws_sdk_ecr::config::Builder::default()
        .retry_config(aws_sdk_ecr::config::retry::RetryConfig::disabled());
    let req = ecr
        .get_download_url_for_layer()
        .repository_name(repository)
        .layer_digest(config)
        .set_registry_id(registry_id.map(str::to_string))
        .customize()
        .config_override(once);
    match req.send().await {
        Ok(o) => match o.download_url() {
            Some(u) => Ok(u.to_string()),
            None => Err(Verdict::Unknown(
                "ecr:GetDownloadUrlForLayer returned no URL".into(),
            )),
        },
        Err(e) => {
            let why = match crate::aws::error_code(&e) {
                Some(code) => format!("ecr:GetDownloadUrlForLayer failed: {code}"),
                None => match e.raw_response().map(|r| r.status().as_u16()) {
                    Some(s) => format!(
                        "ecr:GetDownloadUrlForLayer failed with HTTP {s} (an emulator may not implement it)"
                    ),
                    None => crate::aws::aws_error("ecr:GetDownloadUrlForLayer", &e).message,
                },
            };
            Err(Verdict::Unknown(why))
        }
    }
}

/// The entries of a manifest list or OCI index (`None` for a single manifest): each one's
/// platform and manifest digest. Attestation entries (`unknown/unknown`) are left out.
pub fn index_entries(doc: &Value) -> Option<Vec<(Platform, String)>> {
    let entries = doc["manifests"].as_array()?;
    Some(
        entries
            .iter()
            .map(|m| {
                (
                    Platform::from_value(&m["platform"]),
                    m["digest"].as_str().unwrap_or("").to_string(),
                )
            })
            .filter(|(p, _)| !(p.os == "unknown" && p.architecture == "unknown"))
            .collect(),
    )
}

/// The manifest digest of an index's linux/amd64 entry, or the platforms it offers instead.
pub fn amd64_entry(entries: &[(Platform, String)]) -> std::result::Result<String, Vec<String>> {
    entries
        .iter()
        .find(|(p, d)| p.fits() && !d.is_empty())
        .map(|(_, d)| d.clone())
        .ok_or_else(|| entries.iter().map(|(p, _)| p.to_string()).collect())
}

/// The error of an ECR image SageMaker cannot run (exit 4): it offers only `found`.
pub fn wrong_platform(repository: &str, digest: &str, found: &[String]) -> Error {
    Error::aws(format!(
        "the image {repository}@{digest} is built for {}, but SageMaker training instances run linux/amd64: the job would fail with an exec format error",
        if found.is_empty() { "no platform".to_string() } else { found.join(", ") }
    ))
    .with_hint(format!("{REBUILD}\nthen submit with --image {repository}:TAG"))
}

fn verdict_of(platforms: &[Platform]) -> Verdict {
    if platforms.iter().any(Platform::fits) {
        Verdict::Fits
    } else {
        Verdict::Wrong(platforms.iter().map(|p| p.to_string()).collect())
    }
}

/// The check `train` and `doctor` run on the image they resolved (its digest and the manifest
/// ecr:BatchGetImage gave): `Ok(None)` when it fits, `Ok(Some(warning))` when it could not be
/// checked, an error (exit 4) when it cannot run.
pub async fn verify(
    ecr: &aws_sdk_ecr::Client,
    registry_id: Option<&str>,
    repository: &str,
    digest: &str,
    manifest: &str,
) -> Result<Option<String>> {
    let cache = cache_dir();
    let cache = cache.as_deref();
    match check_with(ecr, crate::aws::http::get, cache, registry_id, repository, digest, manifest).await {
        Verdict::Fits => Ok(None),
        Verdict::Unknown(why) => Ok(Some(format!(
            "the image's platform could not be checked ({why}); SageMaker training instances need linux/amd64"
        ))),
        Verdict::Wrong(found) => Err(wrong_platform(repository, digest, &found)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_ecr::operation::get_download_url_for_layer::{
        GetDownloadUrlForLayerError, GetDownloadUrlForLayerOutput,
    };
    use aws_smithy_mocks::{mock, mock_client, RuleMode};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    const DIGEST: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";

    fn manifest_with_config() -> String {
        r#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{"mediaType":"application/vnd.docker.container.image.v1+json","size":10,"digest":"sha256:2222222222222222222222222222222222222222222222222222222222222222"},"layers":[]}"#.into()
    }

    fn download_url() -> aws_smithy_mocks::Rule {
        mock!(aws_sdk_ecr::Client::get_download_url_for_layer)
            .match_requests(|r| {
                r.layer_digest()
                    == Some(
                        "sha256:2222222222222222222222222222222222222222222222222222222222222222",
                    )
            })
            .then_output(|| {
                GetDownloadUrlForLayerOutput::builder()
                    .download_url("https://example.invalid/config")
                    .build()
            })
    }

    fn config(
        arch: &'static str,
    ) -> impl Fn(String) -> std::future::Ready<std::result::Result<Vec<u8>, String>> {
        move |url| {
            assert_eq!(url, "https://example.invalid/config");
            std::future::ready(Ok(
                format!(r#"{{"architecture":"{arch}","os":"linux"}}"#).into_bytes()
            ))
        }
    }

    #[tokio::test]
    async fn a_config_for_arm64_is_wrong_and_the_verdict_is_cached() {
        let dir = tempfile::tempdir().unwrap();
        let url = download_url();
        let ecr = mock_client!(aws_sdk_ecr, RuleMode::MatchAny, [&url]);
        let fetched = AtomicUsize::new(0);
        let fetch = |u: String| {
            fetched.fetch_add(1, Ordering::SeqCst);
            config("arm64")(u)
        };
        let m = manifest_with_config();
        let v = check_with(&ecr, &fetch, Some(dir.path()), None, "repo", DIGEST, &m).await;
        assert_eq!(v, Verdict::Wrong(vec!["linux/arm64".into()]));
        // Again: answered from the cache, no request.
        let v = check_with(&ecr, &fetch, Some(dir.path()), None, "repo", DIGEST, &m).await;
        assert_eq!(v, Verdict::Wrong(vec!["linux/arm64".into()]));
        assert_eq!(url.num_calls(), 1);
        assert_eq!(fetched.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_config_for_amd64_fits() {
        let url = download_url();
        let ecr = mock_client!(aws_sdk_ecr, RuleMode::MatchAny, [&url]);
        let m = manifest_with_config();
        let v = check_with(&ecr, config("amd64"), None, None, "repo", DIGEST, &m).await;
        assert_eq!(v, Verdict::Fits);
    }

    #[tokio::test]
    async fn a_manifest_list_is_judged_by_its_entries_without_a_download() {
        let list = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[
            {"digest":"sha256:a","platform":{"os":"linux","architecture":"arm64","variant":"v8"}},
            {"digest":"sha256:b","platform":{"os":"unknown","architecture":"unknown"}}]}"#;
        let url = download_url();
        let ecr = mock_client!(aws_sdk_ecr, RuleMode::MatchAny, [&url]);
        let v = check_with(&ecr, config("amd64"), None, None, "repo", DIGEST, list).await;
        assert_eq!(v, Verdict::Wrong(vec!["linux/arm64/v8".into()]));
        assert_eq!(url.num_calls(), 0);
        let with_amd64 = list.replace(
            "\"unknown\",\"architecture\":\"unknown\"",
            "\"linux\",\"architecture\":\"amd64\"",
        );
        assert_eq!(
            check_with(
                &ecr,
                config("amd64"),
                None,
                None,
                "repo",
                DIGEST,
                &with_amd64
            )
            .await,
            Verdict::Fits
        );
    }

    #[tokio::test]
    async fn an_endpoint_without_download_urls_gives_an_unknown_verdict_that_is_not_cached() {
        let dir = tempfile::tempdir().unwrap();
        let url = mock!(aws_sdk_ecr::Client::get_download_url_for_layer)
            .then_error(|| GetDownloadUrlForLayerError::unhandled("not implemented"));
        let ecr = mock_client!(aws_sdk_ecr, RuleMode::MatchAny, [&url]);
        let m = manifest_with_config();
        for _ in 0..2 {
            let cache = Some(dir.path());
            let v = check_with(&ecr, config("amd64"), cache, None, "repo", DIGEST, &m).await;
            assert!(matches!(v, Verdict::Unknown(_)), "{v:?}");
            assert!(cached(dir.path(), DIGEST).is_none());
        }
        assert_eq!(
            url.num_calls(),
            2,
            "asked again: an unknown verdict is not cached"
        );
    }

    /// A failing GetDownloadUrlForLayer is asked once: the verdict is advisory, and retries
    /// would add their back-off to every submit on an endpoint without the operation.
    #[tokio::test]
    async fn a_failing_download_url_is_not_retried() {
        let url = mock!(aws_sdk_ecr::Client::get_download_url_for_layer)
            .sequence()
            .http_status(500, None)
            .repeatedly()
            .build();
        let ecr = mock_client!(aws_sdk_ecr, RuleMode::MatchAny, [&url], |b| b.retry_config(
            aws_sdk_ecr::config::retry::RetryConfig::standard()
                .with_max_attempts(3)
                .with_initial_backoff(Duration::from_millis(1))
        ));
        let m = manifest_with_config();
        let v = check_with(&ecr, config("amd64"), None, None, "repo", DIGEST, &m).await;
        assert!(matches!(v, Verdict::Unknown(_)), "{v:?}");
        assert_eq!(url.num_calls(), 1, "retried");
    }

    #[tokio::test]
    async fn a_failed_download_is_unknown() {
        let url = download_url();
        let ecr = mock_client!(aws_sdk_ecr, RuleMode::MatchAny, [&url]);
        let fail = |_u: String| std::future::ready(Err::<Vec<u8>, String>("HTTP 403".into()));
        let m = manifest_with_config();
        let v = check_with(&ecr, fail, None, None, "repo", DIGEST, &m).await;
        assert_eq!(
            v,
            Verdict::Unknown("the image config could not be downloaded: HTTP 403".into())
        );
    }

    /// A one-shot HTTP server on loopback answering `status` with `body`.
    fn serve_once(status: &'static str, body: &'static str) -> String {
        use std::io::{Read, Write};
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!(
            "http://{}/v2/blob?X-Amz-Signature=abc",
            l.local_addr().unwrap()
        );
        std::thread::spawn(move || {
            let (mut c, _) = l.accept().unwrap();
            let mut buf = [0u8; 4096];
            let _ = c.read(&mut buf);
            let _ = write!(
                c,
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        });
        url
    }

    #[tokio::test]
    async fn the_config_is_read_with_the_sdks_http_client() {
        let url = serve_once("200 OK", r#"{"architecture":"amd64","os":"linux"}"#);
        let body = crate::aws::http::get(url).await.unwrap();
        assert!(Platform::from_config(&body).unwrap().fits());
        let url = serve_once("403 Forbidden", "expired");
        assert_eq!(crate::aws::http::get(url).await.unwrap_err(), "HTTP 403");
    }

    #[test]
    fn the_amd64_entry_of_an_index_is_picked_and_attestations_are_left_out() {
        let doc: Value = serde_json::from_str(
            r#"{"schemaVersion":2,"manifests":[
            {"digest":"sha256:arm","platform":{"os":"linux","architecture":"arm64","variant":"v8"}},
            {"digest":"sha256:att","platform":{"os":"unknown","architecture":"unknown"}},
            {"digest":"sha256:amd","platform":{"os":"linux","architecture":"amd64"}}]}"#,
        )
        .unwrap();
        let entries = index_entries(&doc).unwrap();
        assert_eq!(entries.len(), 2, "{entries:?}");
        assert_eq!(amd64_entry(&entries).unwrap(), "sha256:amd");
        // Without one: the platforms it offers, for the refusal.
        assert_eq!(
            amd64_entry(&entries[..1]).unwrap_err(),
            vec!["linux/arm64/v8".to_string()]
        );
        let e = wrong_platform("unet", "sha256:x", &["linux/arm64/v8".into()]);
        assert!(
            e.message.contains("built for linux/arm64/v8"),
            "{}",
            e.message
        );
        assert_eq!(e.exit_code(), 4);
        // A single manifest is no index.
        let single: Value = serde_json::from_str(&manifest_with_config()).unwrap();
        assert!(index_entries(&single).is_none());
    }

    #[test]
    fn platforms_read_and_print() {
        let p = Platform::from_config(br#"{"architecture":"arm64","os":"linux","variant":"v8"}"#)
            .unwrap();
        assert_eq!(p.to_string(), "linux/arm64/v8");
        assert!(!p.fits());
        assert!(
            Platform::from_config(br#"{"architecture":"amd64","os":"linux"}"#)
                .unwrap()
                .fits()
        );
        let e = refused("linux/arm64");
        assert_eq!(e.exit_code(), 2);
        assert!(e.hint.unwrap().contains("--platform linux/amd64"));
    }
}
