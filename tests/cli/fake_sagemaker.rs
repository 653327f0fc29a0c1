//! A loopback stand-in for SageMaker, for what moto cannot show end to end: a job that stays
//! InProgress (Ctrl-C, --timeout), that Failed or was Stopped, and StopTrainingJob (which moto
//! answers with a 500). It speaks the awsJson1.1 protocol the SDK uses, keeps connections alive,
//! and records every call.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How StopTrainingJob answers.
#[derive(Debug, Clone, Copy)]
pub enum Stop {
    Accept,
    /// ValidationException "... is in status X."
    AlreadyIn(&'static str),
}

pub struct FakeSageMaker {
    pub url: String,
    /// (X-Amz-Target, body) of every request, in order.
    pub calls: Arc<Mutex<Vec<(String, String)>>>,
}

impl FakeSageMaker {
    pub fn targets(&self) -> Vec<String> {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .map(|(t, _)| t.clone())
            .collect()
    }
    pub fn calls_to(&self, target: &str) -> Vec<String> {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .filter(|(t, _)| t.ends_with(target))
            .map(|(_, b)| b.clone())
            .collect()
    }
}

/// A DescribeTrainingJob answer.
pub fn job_json(
    name: &str,
    status: &str,
    secondary: &str,
    transitions: &[(&str, &str)],
    failure_reason: Option<&str>,
) -> serde_json::Value {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let mut v = serde_json::json!({
        "TrainingJobName": name,
        "TrainingJobArn": format!("arn:aws:sagemaker:us-east-1:123456789012:training-job/{name}"),
        "TrainingJobStatus": status,
        "SecondaryStatus": secondary,
        "AlgorithmSpecification": {"TrainingImage": "123456789012.dkr.ecr.us-east-1.amazonaws.com/unet@sha256:0000000000000000000000000000000000000000000000000000000000000000", "TrainingInputMode": "File"},
        "RoleArn": "arn:aws:iam::123456789012:role/SageMakerRole",
        "OutputDataConfig": {"S3OutputPath": "s3://bucket/out/"},
        "ResourceConfig": {"InstanceType": "ml.g5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 30},
        "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
        "CreationTime": now - 120.0,
        "SecondaryStatusTransitions": transitions.iter().map(|(s, m)| serde_json::json!({"Status": s, "StatusMessage": m, "StartTime": now - 60.0})).collect::<Vec<_>>(),
    });
    if let Some(r) = failure_reason {
        v["FailureReason"] = serde_json::json!(r);
    }
    v
}

fn respond(s: &mut TcpStream, status: &str, body: &str) -> std::io::Result<()> {
    let resp = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/x-amz-json-1.1\r\nx-amzn-RequestId: 00000000-0000-0000-0000-000000000000\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(resp.as_bytes())
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The DescribeTrainingJob answers, in order; the last one repeats.
struct Answers {
    describes: Vec<serde_json::Value>,
    next: Mutex<usize>,
}

impl Answers {
    fn describe(&self) -> String {
        let mut n = self.next.lock().unwrap();
        let i = (*n).min(self.describes.len() - 1);
        *n += 1;
        self.describes[i].to_string()
    }
}

fn serve(
    mut s: TcpStream,
    describe: Arc<Answers>,
    stop: Stop,
    calls: Arc<Mutex<Vec<(String, String)>>>,
    answers: Arc<Vec<(String, serde_json::Value)>>,
) {
    let _ = s.set_read_timeout(Some(Duration::from_secs(30)));
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; 65536];
    loop {
        // One request: headers, then the body announced by Content-Length.
        let (head_end, len) = loop {
            if let Some(end) = find(&buf, b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end]).to_string();
                let len = head
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                    })
                    .unwrap_or(0);
                if buf.len() >= end + 4 + len {
                    break (end, len);
                }
            }
            match s.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
        let body = String::from_utf8_lossy(&buf[head_end + 4..head_end + 4 + len]).to_string();
        buf.drain(..head_end + 4 + len);
        let target = head
            .lines()
            .find_map(|l| {
                let lower = l.to_ascii_lowercase();
                lower
                    .starts_with("x-amz-target:")
                    .then(|| l["x-amz-target:".len()..].trim().to_string())
            })
            .unwrap_or_default();
        calls.lock().unwrap().push((target.clone(), body));
        let answer = answers
            .iter()
            .find(|(op, _)| target.ends_with(&format!(".{op}")));
        let r = if let Some((_, body)) = answer {
            // An answer with an error type is that error.
            let status = match body.get("__type") {
                Some(_) => "400 Bad Request",
                None => "200 OK",
            };
            respond(&mut s, status, &body.to_string())
        } else if target.ends_with("DescribeTrainingJob") {
            respond(&mut s, "200 OK", &describe.describe())
        } else if target.ends_with("StopTrainingJob") {
            match stop {
                Stop::Accept => respond(&mut s, "200 OK", "{}"),
                Stop::AlreadyIn(st) => respond(
                    &mut s,
                    "400 Bad Request",
                    &serde_json::json!({"__type": "ValidationException", "message": format!("The request was rejected because the training job is in status {st}.")}).to_string(),
                ),
            }
        } else if target.contains("Logs") {
            respond(
                &mut s,
                "400 Bad Request",
                r#"{"__type":"ResourceNotFoundException","message":"The specified log group does not exist."}"#,
            )
        } else {
            respond(
                &mut s,
                "400 Bad Request",
                r#"{"__type":"UnknownOperationException","message":"not in the fake"}"#,
            )
        };
        if r.is_err() {
            return;
        }
    }
}

/// Start the fake: DescribeTrainingJob always answers `describe`.
pub fn start(describe: serde_json::Value, stop: Stop) -> FakeSageMaker {
    start_with(describe, stop, vec![])
}

/// Start the fake: DescribeTrainingJob answers `describes` in order, then the last one again.
pub fn start_sequence(describes: Vec<serde_json::Value>, stop: Stop) -> FakeSageMaker {
    start_sequence_with(describes, stop, vec![])
}

/// [`start`], with other operations (by name, e.g. `DescribeHyperParameterTuningJob`)
/// answering a fixed body (an error, with HTTP 400, when it has a `__type`). It answers any
/// awsJson1.1 service, SSM too.
pub fn start_with(
    describe: serde_json::Value,
    stop: Stop,
    answers: Vec<(&str, serde_json::Value)>,
) -> FakeSageMaker {
    start_sequence_with(vec![describe], stop, answers)
}

fn start_sequence_with(
    describes: Vec<serde_json::Value>,
    stop: Stop,
    answers: Vec<(&str, serde_json::Value)>,
) -> FakeSageMaker {
    assert!(!describes.is_empty());
    let answers: Arc<Vec<(String, serde_json::Value)>> = Arc::new(
        answers
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
    );
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    let calls = Arc::new(Mutex::new(Vec::new()));
    let describe = Arc::new(Answers {
        describes,
        next: Mutex::new(0),
    });
    let c = calls.clone();
    std::thread::spawn(move || {
        for stream in l.incoming() {
            let Ok(s) = stream else { continue };
            let (d, c, a) = (describe.clone(), c.clone(), answers.clone());
            std::thread::spawn(move || serve(s, d, stop, c, a));
        }
    });
    FakeSageMaker { url, calls }
}
