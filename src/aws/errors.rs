//! AWS errors made readable: every failure names the operation, the HTTP status when there was
//! an answer, the service's error code and message (or, for an answer that is not the service's
//! error format, its first meaningful line), and the next step.
//!
//! Decisions are made on the SDK's error variants and typed sources, never on message text, and
//! no `Debug` form of an SDK type is ever put into a message (the SDK's `DisplayErrorContext`
//! appends one, so it is not used here).

use crate::error::{Error, Kind};
use aws_credential_types::provider::error::CredentialsError;
use aws_runtime::retries::classifiers::{THROTTLING_ERRORS, TRANSIENT_ERRORS};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use super::CREDENTIALS_FIX;

/// Error codes that mean the caller's credentials were refused.
const CREDENTIAL_CODES: &[&str] = &[
    "InvalidClientTokenId",
    "UnrecognizedClientException",
    "SignatureDoesNotMatch",
    "IncompleteSignature",
    "ExpiredToken",
    "ExpiredTokenException",
    "InvalidAccessKeyId",
    "InvalidToken",
    "AuthFailure",
    "MissingAuthenticationToken",
];

/// The `Display` of an error and of each of its sources, joined with ": " (a source whose text
/// repeats the previous one is left out). Never the `Debug` form.
pub fn chain_text(err: &dyn std::error::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cur: Option<&dyn std::error::Error> = Some(err);
    while let Some(e) = cur {
        let t = e.to_string();
        if !t.is_empty() && !parts.last().is_some_and(|p| p.contains(&t)) {
            parts.push(t);
        }
        cur = e.source();
    }
    parts.join(": ")
}

/// The first error of type `T` in the chain of `err` (itself included).
pub fn find_source<'a, T: std::error::Error + 'static>(
    err: &'a (dyn std::error::Error + 'static),
) -> Option<&'a T> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(t) = e.downcast_ref::<T>() {
            return Some(t);
        }
        cur = e.source();
    }
    None
}

/// Turn an SDK error into a user-facing error with a likely fix.
pub fn aws_error<E>(operation: &str, err: &SdkError<E, HttpResponse>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match err {
        SdkError::ServiceError(se) => {
            let status = se.raw().status().as_u16();
            match se.err().code() {
                Some(code) => {
                    service_error(operation, code, se.err().message().unwrap_or(""), status)
                }
                // The answer could not be read as the service's error (or output).
                None => unreadable_answer(operation, status, se.raw().body().bytes()),
            }
        }
        SdkError::ResponseError(re) => unreadable_answer(
            operation,
            re.raw().status().as_u16(),
            re.raw().body().bytes(),
        ),
        SdkError::TimeoutError(_) => timeout_error(operation, TimeoutPhase::Unknown),
        SdkError::DispatchFailure(d) => {
            if let Some(c) = find_source::<CredentialsError>(err) {
                return credentials_error(operation, c);
            }
            if d.is_timeout() {
                return timeout_error(operation, timeout_phase(err));
            }
            let why = if d.is_io() {
                "the connection failed"
            } else {
                "the request could not be sent"
            };
            let detail = d
                .as_connector_error()
                .map(|c| chain_text(c))
                .unwrap_or_else(|| chain_text(err));
            Error::aws(format!("{operation}: {why}: {detail}"))
                .with_hint("check your network, the region, and the endpoint (--endpoint-url, AWS_ENDPOINT_URL or AWS_ENDPOINT_URL_<SERVICE>) if you use one; then try again")
        }
        // ConstructionFailure, and any variant a later SDK adds.
        _ => {
            if let Some(c) = find_source::<CredentialsError>(err) {
                return credentials_error(operation, c);
            }
            Error::aws(format!(
                "{operation}: the request could not be built: {}",
                chain_text(err)
            ))
            .with_hint("check the region and the endpoint settings (`sagetrain config` shows them); if they look right, run with -vv and report it")
        }
    }
}

/// Credentials that a provider could not load while a request was being signed.
fn credentials_error(operation: &str, c: &CredentialsError) -> Error {
    Error::credentials(format!(
        "{operation}: could not use your AWS credentials: {}",
        chain_text(c)
    ))
    .with_hint(CREDENTIALS_FIX)
}

/// Which part of a request ran out of time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TimeoutPhase {
    Connect,
    Read,
    Unknown,
}

/// A connect timeout has hyper's "connect" error in its chain; a read timeout does not.
fn timeout_phase(err: &(dyn std::error::Error + 'static)) -> TimeoutPhase {
    match find_source::<hyper_util::client::legacy::Error>(err) {
        Some(h) if h.is_connect() => TimeoutPhase::Connect,
        _ => TimeoutPhase::Read,
    }
}

/// The error for a request that timed out, naming the time limit and where it was set.
fn timeout_error(operation: &str, phase: TimeoutPhase) -> Error {
    let t = super::timeouts::current();
    let show = super::timeouts::show;
    match phase {
        TimeoutPhase::Read => Error::aws(format!(
            "{operation}: timed out: no response within the read timeout of {} ({})",
            show(t.read.value),
            t.read.source.name_for(None)
        ))
        .with_hint("the endpoint is slow or stalled: check it (--endpoint-url, AWS_ENDPOINT_URL) and try again, or give a longer --read-timeout (SAGETRAIN_READ_TIMEOUT); each request is tried AWS_MAX_ATTEMPTS times (default 3)"),
        TimeoutPhase::Connect => Error::aws(format!(
            "{operation}: timed out: could not connect within the connect timeout of {} ({})",
            show(t.connect.value),
            t.connect.source.name_for(None)
        ))
        .with_hint("check your network, the region and the endpoint (--endpoint-url, AWS_ENDPOINT_URL), or give a longer --connect-timeout (SAGETRAIN_CONNECT_TIMEOUT)"),
        TimeoutPhase::Unknown => Error::aws(format!(
            "{operation}: timed out ({})",
            super::timeouts::timeout_explanation()
        ))
        .with_hint("check your network and the endpoint (--endpoint-url, AWS_ENDPOINT_URL); the limits are --read-timeout and --connect-timeout, retries follow AWS_MAX_ATTEMPTS"),
    }
}

/// What an answer's body holds, when it is not the service's own error format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodySummary {
    /// An AWS-style error in another protocol's format (an XML error from a JSON service, say).
    AwsError {
        code: String,
        message: String,
    },
    /// An HTML page, by its title.
    Html {
        title: String,
    },
    /// JSON that does not parse (cut off, say).
    BrokenJson {
        bytes: usize,
    },
    /// The first meaningful line of some other text.
    Text(String),
    Binary {
        bytes: usize,
    },
    Empty,
}

impl std::fmt::Display for BodySummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BodySummary::AwsError { code, message } => write!(f, "{code}: {message}"),
            BodySummary::Html { title } => write!(f, "an HTML page titled \"{title}\""),
            BodySummary::BrokenJson { bytes } => {
                write!(f, "a cut-off or malformed JSON body ({bytes} bytes)")
            }
            BodySummary::Text(t) => write!(f, "\"{t}\""),
            BodySummary::Binary { bytes } => write!(f, "{bytes} bytes of binary data"),
            BodySummary::Empty => write!(f, "an empty body"),
        }
    }
}

/// At most `max` characters of `s`, with "..." when cut.
fn cut(s: &str, max: usize) -> String {
    let s = s.trim();
    if s.chars().count() <= max {
        s.to_string()
    } else {
        format!("{}...", s.chars().take(max).collect::<String>())
    }
}

/// Text between `<tag>` and `</tag>` (case-insensitive tag names), tags inside removed.
fn element(text: &str, tag: &str) -> Option<String> {
    let re = regex::RegexBuilder::new(&format!(r"<{tag}(?:\s[^>]*)?>(.*?)</{tag}\s*>"))
        .case_insensitive(true)
        .dot_matches_new_line(true)
        .build()
        .ok()?;
    let inner = re.captures(text)?.get(1)?.as_str();
    let plain = strip_tags(inner);
    (!plain.is_empty()).then_some(plain)
}

fn strip_tags(text: &str) -> String {
    let no_tags = regex::Regex::new(r"<[^>]*>")
        .map(|re| re.replace_all(text, " ").into_owned())
        .unwrap_or_else(|_| text.to_string());
    no_tags.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Summarise a body that is not the service's error format: an AWS error in another format,
/// an HTML page's title, or the first meaningful line.
pub fn body_summary(body: Option<&[u8]>) -> BodySummary {
    let Some(body) = body.filter(|b| !b.is_empty()) else {
        return BodySummary::Empty;
    };
    let Ok(text) = std::str::from_utf8(body) else {
        return BodySummary::Binary { bytes: body.len() };
    };
    let trimmed = text.trim_start();
    if trimmed.is_empty() {
        return BodySummary::Empty;
    }
    if trimmed.starts_with('{') || trimmed.starts_with('[') {
        return match serde_json::from_str::<serde_json::Value>(trimmed) {
            Ok(v) => {
                let field = |names: &[&str]| {
                    names
                        .iter()
                        .find_map(|n| v.get(*n).and_then(|x| x.as_str()))
                        .map(str::to_string)
                };
                match field(&["__type", "code", "Code"]) {
                    Some(code) => BodySummary::AwsError {
                        // "prefix#Code" in some JSON protocols.
                        code: code.rsplit('#').next().unwrap_or(&code).to_string(),
                        message: cut(&field(&["message", "Message"]).unwrap_or_default(), 300),
                    },
                    None => BodySummary::Text(cut(&trimmed.replace(['\n', '\r'], " "), 120)),
                }
            }
            Err(_) => BodySummary::BrokenJson { bytes: body.len() },
        };
    }
    if trimmed.starts_with('<') {
        if let Some(code) = element(text, "Code") {
            return BodySummary::AwsError {
                code: cut(&code, 100),
                message: cut(&element(text, "Message").unwrap_or_default(), 300),
            };
        }
        if let Some(title) = element(text, "title") {
            return BodySummary::Html {
                title: cut(&title, 120),
            };
        }
        for tag in ["h1", "h2", "p"] {
            if let Some(t) = element(text, tag) {
                return BodySummary::Text(cut(&t, 160));
            }
        }
    }
    let first = text
        .lines()
        .map(strip_tags)
        .find(|l| !l.is_empty())
        .map(|l| cut(&l, 160));
    match first {
        Some(l) => BodySummary::Text(l),
        None => BodySummary::Empty,
    }
}

/// The error for an answer that could not be read as the service's: the status, what the body
/// holds, and the next step by status.
fn unreadable_answer(operation: &str, status: u16, body: Option<&[u8]>) -> Error {
    let summary = body_summary(body);
    if let BodySummary::AwsError { code, message } = &summary {
        return service_error(operation, code, message, status);
    }
    let (what, hint) = match status {
        200..=299 => (
            "the answer could not be read",
            "the response was cut off or is not what the service sends: try again; if it keeps happening, check any proxy between you and AWS (HTTPS_PROXY) and the endpoint (--endpoint-url, AWS_ENDPOINT_URL_<SERVICE>); -vv shows the requests",
        ),
        500..=599 => (
            "the endpoint failed",
            "the service, or a proxy or gateway in front of it, failed: try again in a few minutes (each request is tried AWS_MAX_ATTEMPTS times); if it keeps failing, check the endpoint (--endpoint-url, AWS_ENDPOINT_URL_<SERVICE>) and any proxy (HTTPS_PROXY)",
        ),
        401 | 403 | 407 => (
            "access was refused",
            "the answer is not from the AWS API: a proxy or firewall may block it (check HTTPS_PROXY, or the network's rules), or the endpoint is wrong (--endpoint-url, AWS_ENDPOINT_URL_<SERVICE>); `sagetrain doctor` checks your credentials",
        ),
        _ => (
            "the endpoint answered with something that is not an AWS error",
            "check the endpoint (--endpoint-url, AWS_ENDPOINT_URL or AWS_ENDPOINT_URL_<SERVICE>) and the region, and any proxy (HTTPS_PROXY)",
        ),
    };
    Error::aws(format!(
        "{operation} failed: HTTP {status}: {what}: {summary}"
    ))
    .with_hint(hint)
}

/// The error for a service's answer, with the fix for the errors users hit.
pub fn service_error(operation: &str, code: &str, message: &str, status: u16) -> Error {
    let base = format!("{operation} failed (HTTP {status}): {code}: {message}");
    if CREDENTIAL_CODES.contains(&code) {
        return Error::credentials(format!("AWS rejected your credentials ({operation}: HTTP {status}: {code}: {message})"))
            .with_hint(format!(
                "your access key or session is invalid or expired: run `aws sso login` for an SSO profile, or replace the keys (`aws configure`); `sagetrain doctor` shows which credentials are used\n{}",
                "this is about YOUR credentials on this machine, not the execution role"
            ));
    }
    let lower = message.to_ascii_lowercase();
    let hint = if lower.contains("iam:passrole") {
        Some("your credentials may not pass the execution role to SageMaker: allow iam:PassRole on the role with the condition iam:PassedToService = sagemaker.amazonaws.com (see examples/iam/developer-policy.json); `sagetrain doctor` checks it with iam:SimulatePrincipalPolicy".to_string())
    } else if lower.contains("could not assume role") || lower.contains("unable to assume") {
        Some("the execution role must trust SageMaker: its trust policy needs Principal {\"Service\": \"sagemaker.amazonaws.com\"} with sts:AssumeRole (see examples/iam/execution-role-trust-policy.json); `sagetrain doctor` checks it".to_string())
    } else if code == "ResourceInUse" || lower.contains("already exists") {
        Some("a job with this name exists: drop --name to get a fresh timestamped name, or choose another --name".to_string())
    } else if code == "ResourceLimitExceeded" {
        Some("an account quota was reached: choose another --instance-type or request an increase in the Service Quotas console (SageMaker, \"<instance type> for training job usage\")".to_string())
    } else if code == "PermanentRedirect" || code == "AuthorizationHeaderMalformed" || status == 301
    {
        Some("the bucket is in another region: the job's buckets must be in the job's region (--region), or use a bucket there".to_string())
    } else if code == "NoSuchBucket" {
        Some("create the bucket in the job's region (aws s3 mb s3://BUCKET --region REGION) or fix the URI".to_string())
    } else if is_throttling(code) || code.contains("Throttl") {
        Some("AWS is throttling requests; try again later, or raise AWS_MAX_ATTEMPTS".to_string())
    } else if code == "AccessDenied" || code == "AccessDeniedException" || status == 403 {
        Some("your credentials lack a permission named above; ask for it or use another profile (see examples/iam/developer-policy.json)".to_string())
    } else if status >= 500 {
        Some("the service failed: try again in a few minutes (each request is tried AWS_MAX_ATTEMPTS times)".to_string())
    } else {
        None
    };
    Error::new(Kind::Aws, base).with_hint(hint.unwrap_or_else(|| {
        "AWS refused the request as sent: fix what the message names (`sagetrain config` shows each setting and where it comes from; `sagetrain doctor` checks the setup)".to_string()
    }))
}

/// The error code of an SDK error, if the service answered with one.
pub fn error_code<E: ProvideErrorMetadata>(err: &SdkError<E, HttpResponse>) -> Option<String> {
    match err {
        SdkError::ServiceError(se) => se.err().code().map(str::to_string),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------
// Errors of single calls: transient (throttling, 5xx, timeouts) or not.

/// An AWS call that failed, and whether trying again later may succeed.
#[derive(Debug, Clone)]
pub struct CallError {
    pub error: Error,
    pub transient: bool,
    pub throttled: bool,
    /// The operation, as a message names it ("DescribeTrainingJob"); empty when the failure was
    /// not an AWS call's.
    pub operation: String,
}

impl From<Error> for CallError {
    /// A failure that trying again will not mend.
    fn from(error: Error) -> CallError {
        CallError {
            error,
            transient: false,
            throttled: false,
            operation: String::new(),
        }
    }
}

/// "DescribeTrainingJob" of "sagemaker:DescribeTrainingJob".
fn operation_name(operation: &str) -> String {
    operation
        .rsplit_once(':')
        .map_or(operation, |(_, op)| op)
        .to_string()
}

/// Is this error code throttling? The SDK's own list, from its retry classifier.
pub fn is_throttling(code: &str) -> bool {
    THROTTLING_ERRORS.contains(&code)
}

/// Classify an SDK error (after the SDK's own retries): throttling and timeouts by the codes of
/// the SDK's retry classifier, an answer of 5xx, and a failure to send or to read the answer
/// may succeed later.
pub fn classify<E>(operation: &str, err: &SdkError<E, HttpResponse>) -> CallError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let (transient, throttled) = match err {
        SdkError::TimeoutError(_) | SdkError::ResponseError(_) => (true, false),
        SdkError::DispatchFailure(d) => (d.is_io() || d.is_timeout(), false),
        SdkError::ServiceError(se) => {
            let code = se.err().code().unwrap_or("");
            let throttled = is_throttling(code);
            let transient = throttled
                || TRANSIENT_ERRORS.contains(&code)
                || se.raw().status().is_server_error();
            (transient, throttled)
        }
        _ => (false, false),
    };
    CallError {
        error: aws_error(operation, err),
        transient,
        throttled,
        operation: operation_name(operation),
    }
}

/// A Describe call's answer, with "not found" made clear by `missing`.
pub fn found<T, E>(
    sent: std::result::Result<T, SdkError<E, HttpResponse>>,
    operation: &str,
    missing: impl FnOnce() -> Error,
) -> std::result::Result<T, CallError>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    sent.map_err(|e| match is_not_found(&e) {
        true => CallError {
            operation: operation_name(operation),
            ..CallError::from(missing())
        },
        false => classify(operation, &e),
    })
}

/// Did SageMaker answer that the resource does not exist? For a training job it answers with a
/// ValidationException, so only its message tells (no code or variant does); other resources
/// have the `ResourceNotFound` code.
pub fn is_not_found<E: ProvideErrorMetadata>(e: &SdkError<E, HttpResponse>) -> bool {
    let msg = e
        .as_service_error()
        .and_then(|s| s.message())
        .unwrap_or_default();
    error_code(e).as_deref() == Some("ResourceNotFound")
        || ["Could not find", "not found", "does not exist"]
            .iter()
            .any(|m| msg.contains(m))
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_sagemaker::operation::stop_training_job::StopTrainingJobOutput;
    use aws_smithy_mocks::{mock, mock_client, RuleMode};

    #[test]
    fn credential_codes_map_to_the_credentials_exit_code() {
        let trust = "Could not assume role arn:aws:iam::1:role/x. Please ensure that the role exists and allows principal 'sagemaker.amazonaws.com' to assume the role.";
        // (operation, code, message, HTTP status, kind, a part of the hint)
        #[rustfmt::skip]
        let cases = [
            ("GetCallerIdentity", "InvalidClientTokenId", "The security token included in the request is invalid.", 403, Kind::Credentials, None),
            ("CreateTrainingJob", "AccessDeniedException", "User: x is not authorized to perform: iam:PassRole on resource: r", 400, Kind::Aws, Some("iam:PassedToService")),
            ("CreateTrainingJob", "ValidationException", trust, 400, Kind::Aws, Some("trust policy")),
            ("CreateTrainingJob", "ResourceLimitExceeded", "quota", 400, Kind::Aws, Some("Service Quotas")),
        ];
        for (op, code, message, status, kind, hint) in cases {
            let e = service_error(op, code, message, status);
            assert_eq!(e.kind, kind, "{code}");
            if let Some(h) = hint {
                assert!(
                    e.hint.as_deref().unwrap_or("").contains(h),
                    "{code}: {:?}",
                    e.hint
                );
            }
        }
    }

    #[test]
    fn bodies_are_summarised_by_what_they_hold() {
        let s = |b: &str| body_summary(Some(b.as_bytes()));
        assert_eq!(
            s("<html><head><title>502 Bad\n Gateway</title></head><body>{x}</body></html>"),
            BodySummary::Html {
                title: "502 Bad Gateway".into()
            }
        );
        assert_eq!(
            s("<?xml version=\"1.0\"?><ErrorResponse><Error><Code>AccessDenied</Code><Message>no</Message></Error></ErrorResponse>"),
            BodySummary::AwsError { code: "AccessDenied".into(), message: "no".into() }
        );
        assert_eq!(
            s(r#"{"__type":"com.amazon#ValidationException","message":"bad"}"#),
            BodySummary::AwsError {
                code: "ValidationException".into(),
                message: "bad".into()
            }
        );
        assert_eq!(
            s(r#"{"TrainingJobSummaries": [{"Tra"#),
            BodySummary::BrokenJson { bytes: 31 }
        );
        assert_eq!(
            s("\n\n  upstream connect error\nmore"),
            BodySummary::Text("upstream connect error".into())
        );
        assert_eq!(body_summary(Some(b"")), BodySummary::Empty);
        assert_eq!(
            body_summary(Some(&[0xff, 0xfe, 0x00])),
            BodySummary::Binary { bytes: 3 }
        );
    }

    /// A SageMaker client whose StopTrainingJob gets `status` with `body`, once.
    fn answering(status: u16, body: &str) -> aws_sdk_sagemaker::Client {
        let rule = mock!(aws_sdk_sagemaker::Client::stop_training_job)
            .sequence()
            .http_status(status, Some(body.to_string()))
            .build();
        mock_client!(aws_sdk_sagemaker, RuleMode::Sequential, [&rule], |b| b
            .retry_config(aws_smithy_types::retry::RetryConfig::disabled()))
    }

    /// StopTrainingJob's error when the service answers `body` with `status`.
    async fn stop_failure(
        status: u16,
        body: &str,
    ) -> SdkError<aws_sdk_sagemaker::operation::stop_training_job::StopTrainingJobError, HttpResponse>
    {
        answering(status, body)
            .stop_training_job()
            .training_job_name("j")
            .send()
            .await
            .map(|_: StopTrainingJobOutput| ())
            .unwrap_err()
    }

    async fn stop_error(status: u16, body: &str) -> Error {
        aws_error(
            "sagemaker:StopTrainingJob",
            &stop_failure(status, body).await,
        )
    }

    fn assert_readable(e: &Error) {
        let text = e.to_string();
        for debug in ["{ ", "Response", "SdkBody", "StatusCode(", "ResponseError"] {
            assert!(!text.contains(debug), "debug form {debug:?} in: {text}");
        }
        assert!(text.contains("sagemaker:StopTrainingJob"), "{text}");
        assert!(e.hint.is_some(), "{text}");
    }

    #[tokio::test]
    async fn answers_that_are_not_the_services_error_format_are_readable() {
        let e = stop_error(
            500,
            "<html><head><title>502 Bad Gateway</title></head><body><h1>{oops}</h1></body></html>",
        )
        .await;
        assert_readable(&e);
        assert_eq!(e.kind, Kind::Aws);
        assert!(e.message.contains("HTTP 500"), "{}", e.message);
        assert!(e.message.contains("\"502 Bad Gateway\""), "{}", e.message);

        let e = stop_error(
            403,
            "<?xml version=\"1.0\"?><Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>",
        )
        .await;
        assert_readable(&e);
        assert!(e.message.contains("HTTP 403"), "{}", e.message);
        assert!(
            e.message.contains("AccessDenied: Access Denied"),
            "{}",
            e.message
        );

        let e = stop_error(200, r#"{"TrainingJobArn": "arn:aws:sagemaker:us-"#).await;
        assert_readable(&e);
        assert!(e.message.contains("HTTP 200"), "{}", e.message);

        // The service's own error format: its code and message.
        let e = stop_error(
            400,
            r#"{"__type":"ValidationException","message":"Requested resource not found."}"#,
        )
        .await;
        assert_readable(&e);
        assert!(
            e.message
                .contains("(HTTP 400): ValidationException: Requested resource not found."),
            "{}",
            e.message
        );
    }

    #[tokio::test]
    async fn calls_are_transient_by_the_sdks_own_codes_and_by_5xx() {
        // (HTTP status, code, transient, throttled)
        let cases = [
            (400, "ThrottlingException", true, true),
            (400, "RequestLimitExceeded", true, true),
            (503, "SlowDown", true, true),
            (400, "RequestTimeout", true, false),
            (500, "InternalFailure", true, false),
            (400, "ValidationException", false, false),
            (403, "AccessDeniedException", false, false),
        ];
        for (status, code, transient, throttled) in cases {
            let body = format!(r#"{{"__type":"{code}","message":"m"}}"#);
            let c = classify(
                "sagemaker:StopTrainingJob",
                &stop_failure(status, &body).await,
            );
            assert_eq!((c.transient, c.throttled), (transient, throttled), "{code}");
            assert_eq!(c.operation, "StopTrainingJob");
            assert!(c.error.message.contains(code), "{}", c.error.message);
            let hint = c.error.hint.unwrap_or_default();
            assert_eq!(hint.contains("throttling"), throttled, "{code}: {hint}");
        }
        let plain = CallError::from(Error::usage("bad"));
        assert!(!plain.transient && !plain.throttled && plain.operation.is_empty());
    }
}
