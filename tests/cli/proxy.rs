//! The HTTP/1.1 proxy of the end-to-end tests: it sits on loopback in front of the moto emulator
//! and records every request (method, path and query, whether it is a server-side copy, its
//! length, its operation, the fault applied, the status the client got, when it started and
//! ended), so that tests can count what was sent.
//!
//! By rules given at the start it answers 500, 503 or the service's own throttling error for
//! some requests, delays them, or forwards a request and then drops the connection (the server
//! acted, the client saw no answer). At run time it can hold requests: `set_delay` for all,
//! `stall` for those whose path and query contain a pattern (to keep an upload in flight). A
//! request whose client leaves while it is held is not forwarded.
//!
//! With `answer_layer_downloads` it answers ECR's GetDownloadUrlForLayer itself (moto does not
//! implement it) with a URL of its own that serves a linux/amd64 image config, so that the
//! platform check completes as on ECR; with `serve_blobs` those URLs serve real blobs by digest
//! (a local run's pull); [`rounds`] tells how many requests ran one after another.
//!
//! One request per connection (`Connection: close` both ways); request bodies by
//! `Content-Length` or chunked; moto answers with `Content-Length` and `Connection: close`, and
//! the response is read to its end.
//!
//! moto overwrites a training job whose name exists instead of answering `ResourceInUse`, so
//! the proxy emulates the service there: it remembers the names of the CreateTrainingJob
//! requests it forwarded successfully and answers a later one with the same name itself.

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What to do to a picked request.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// Answer 500 InternalFailure without forwarding.
    Status500,
    /// Answer 503 ServiceUnavailable without forwarding.
    Status503,
    /// Answer the protocol's throttling error without forwarding.
    Throttle,
    /// 500, 503 and throttling in turn (by the picked request's number).
    Transient,
    /// Wait this long, then forward.
    Delay(Duration),
    /// Forward, read the server's answer, and close the connection without answering.
    Drop,
    /// Answer this status with this body as is (not in the service's error format), without
    /// forwarding: an HTML error page of a gateway, an XML error to a JSON service, a cut-off body.
    Raw {
        status: u16,
        content_type: &'static str,
        body: &'static str,
    },
    /// Answer this error (in the protocol of the request's service) without forwarding.
    Error {
        status: u16,
        code: &'static str,
        message: &'static str,
    },
}

/// Which of the matching requests get the fault. Decisions depend only on the order in which
/// matching requests arrive, so a run is deterministic for a given sequence.
#[derive(Debug, Clone, PartialEq)]
pub enum Pick {
    All,
    /// The first `n` matching requests.
    First(u64),
    /// Every `n`th matching request (the `n`th, `2n`th, ...).
    EveryNth(u64),
    /// About `percent`% of the matching requests, chosen by a PRNG seeded with `seed`.
    Percent {
        percent: u64,
        seed: u64,
    },
}

/// A fault, which requests it applies to, and a cap so that a fault stays transient.
#[derive(Debug, Clone)]
pub struct Rule {
    pub fault: Fault,
    pub pick: Pick,
    /// Only requests of this operation (see [`operation`]); all when `None`.
    pub only: Option<String>,
    /// Never fault the same request (same operation, path and body) more than this many times
    /// in a row: a transient fault, that a client with this many retries gets through.
    pub max_in_a_row: Option<u32>,
}

impl Rule {
    pub fn new(fault: Fault, pick: Pick) -> Rule {
        Rule {
            fault,
            pick,
            only: None,
            max_in_a_row: None,
        }
    }
    pub fn only(mut self, op: &str) -> Rule {
        self.only = Some(op.to_string());
        self
    }
    pub fn max_in_a_row(mut self, n: u32) -> Rule {
        self.max_in_a_row = Some(n);
        self
    }
}

/// One request as the proxy saw it.
#[derive(Debug, Clone)]
pub struct Entry {
    pub method: String,
    /// The path and query, e.g. `/bucket/key?partNumber=1&uploadId=...`.
    pub target: String,
    /// Has `x-amz-copy-source`: a server-side copy, no data from the client.
    pub copy: bool,
    /// The `Content-Length` header (0 when absent, e.g. chunked).
    pub content_length: u64,
    /// See [`operation`].
    pub op: String,
    /// The fault applied, if any ("ResourceInUse" for the emulated duplicate name).
    pub fault: Option<String>,
    /// The status the client got (0: none, the connection was dropped or the client left).
    pub status: u16,
    /// How long it was held by `set_delay` and `stall` before being forwarded.
    pub held: Duration,
    pub started: Instant,
    pub finished: Instant,
    /// The decoded body of a request to a JSON service (SageMaker, Secrets Manager: small
    /// documents); empty for the others.
    pub json_body: String,
}

impl Entry {
    /// The request's path without the query, percent-decoded.
    pub fn path(&self) -> String {
        let p = self.target.split('?').next().unwrap_or("");
        percent_encoding::percent_decode_str(p)
            .decode_utf8_lossy()
            .into_owned()
    }
    /// A PUT that carries data from the client (PutObject or UploadPart), not a copy.
    pub fn is_data_put(&self) -> bool {
        self.method == "PUT" && !self.copy && self.key().is_some()
    }
    /// The object key, if the request names one (`/bucket/key`, path-style).
    pub fn key(&self) -> Option<String> {
        let p = self.path();
        let rest = p.strip_prefix('/')?;
        let (_, key) = rest.split_once('/')?;
        (!key.is_empty()).then(|| key.to_string())
    }
    pub fn is_part(&self) -> bool {
        self.target.contains("partNumber=")
    }
}

#[derive(Default)]
struct State {
    rules: Vec<(Rule, u64)>,
    log: Vec<Entry>,
    in_a_row: HashMap<u64, u32>,
    created_jobs: HashSet<String>,
    /// Held before forwarding: every request.
    delay: Duration,
    /// Held before forwarding: requests whose target contains the pattern (the longest wins).
    stalls: Vec<(String, Duration)>,
    /// Answer GetDownloadUrlForLayer with a URL of this proxy (its own URL).
    layer_downloads: Option<String>,
    /// The blobs its URLs serve by digest (`serve_blobs`); others get the default config.
    blobs: HashMap<String, Vec<u8>>,
}

/// Where the proxy serves the image config of `answer_layer_downloads`.
const CONFIG_PATH: &str = "/__proxy/config/";

/// The proxy; it runs until the test process ends.
pub struct Proxy {
    pub url: String,
    upstream: String,
    state: Arc<Mutex<State>>,
}

impl Proxy {
    /// Start a proxy that forwards everything to `upstream` (`http://host:port`).
    pub fn start(upstream: &str) -> Proxy {
        Proxy::with_rules(upstream, Vec::new())
    }

    /// Start a proxy on a free loopback port in front of `upstream`, applying `rules` (the first
    /// rule that picks a request decides its fault).
    pub fn with_rules(upstream: &str, rules: Vec<Rule>) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let url = format!("http://{}", listener.local_addr().unwrap());
        let upstream = upstream
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string();
        let state = Arc::new(Mutex::new(State {
            rules: rules.into_iter().map(|r| (r, 0)).collect(),
            ..State::default()
        }));
        let (st, up) = (state.clone(), upstream.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let (st, up) = (st.clone(), up.clone());
                std::thread::spawn(move || {
                    let _ = serve(stream, &up, &st);
                });
            }
        });
        Proxy {
            url,
            upstream,
            state,
        }
    }

    /// Hold requests whose path and query contain `pattern` for `d` before forwarding them.
    pub fn stall(&self, pattern: &str, d: Duration) {
        self.state
            .lock()
            .unwrap()
            .stalls
            .push((pattern.to_string(), d));
    }
    pub fn clear_stalls(&self) {
        self.state.lock().unwrap().stalls.clear();
    }
    /// Hold every request for `d` before forwarding it (`Duration::ZERO`: not at all).
    pub fn set_delay(&self, d: Duration) {
        self.state.lock().unwrap().delay = d;
    }
    /// Answer ECR's GetDownloadUrlForLayer with a URL of this proxy that serves a linux/amd64
    /// image config (the GET of that URL is logged as `config blob`).
    pub fn answer_layer_downloads(&self) {
        self.state.lock().unwrap().layer_downloads = Some(self.url.clone());
    }
    /// Answer GetDownloadUrlForLayer as [`Proxy::answer_layer_downloads`] does, and serve these
    /// blobs (by digest, `sha256:HEX`) at its URLs: a GET of one is logged as `blob`. Other
    /// digests still get the default config.
    pub fn serve_blobs(&self, blobs: HashMap<String, Vec<u8>>) {
        let mut st = self.state.lock().unwrap();
        st.layer_downloads = Some(self.url.clone());
        st.blobs.extend(blobs);
    }
    /// Forget the requests seen so far (rules keep their counts, the created job names stay).
    pub fn clear(&self) {
        self.state.lock().unwrap().log.clear();
    }

    /// Everything seen so far, in order of arrival.
    pub fn requests(&self) -> Vec<Entry> {
        self.state.lock().unwrap().log.clone()
    }

    /// Requests per operation.
    pub fn counts(&self) -> BTreeMap<String, usize> {
        let mut m = BTreeMap::new();
        for e in self.requests() {
            *m.entry(e.op).or_insert(0) += 1;
        }
        m
    }

    /// Requests of one operation (see [`operation`]).
    pub fn count_op(&self, op: &str) -> usize {
        self.requests().iter().filter(|e| e.op == op).count()
    }

    /// Requests with this HTTP method.
    pub fn count_method(&self, method: &str) -> usize {
        self.requests()
            .iter()
            .filter(|e| e.method == method)
            .count()
    }

    /// PUTs that send data (not copies).
    pub fn data_puts(&self) -> Vec<Entry> {
        self.requests()
            .into_iter()
            .filter(Entry::is_data_put)
            .collect()
    }

    /// Server-side copies.
    pub fn copies(&self) -> Vec<Entry> {
        self.requests().into_iter().filter(|e| e.copy).collect()
    }

    /// Requests that got a fault (each one a request the client had to retry, or gave up on).
    pub fn faults(&self) -> usize {
        self.requests()
            .iter()
            .filter(|e| e.fault.as_deref().is_some_and(|f| f != "ResourceInUse"))
            .count()
    }

    pub fn total(&self) -> usize {
        self.requests().len()
    }
}

/// The longest sequence of requests each starting after the previous one ended: how many round
/// trips deep they were. (Requests held by `set_delay` overlap clearly when they run at once.)
pub fn rounds(entries: &[Entry]) -> usize {
    let mut es: Vec<&Entry> = entries.iter().collect();
    es.sort_by_key(|e| e.started);
    let mut depth: Vec<usize> = Vec::new();
    for (i, e) in es.iter().enumerate() {
        let before = (0..i)
            .filter(|&j| es[j].finished <= e.started)
            .map(|j| depth[j])
            .max()
            .unwrap_or(0);
        depth.push(before + 1);
    }
    depth.into_iter().max().unwrap_or(0)
}

/// The operation of a request: the `X-Amz-Target` operation for JSON protocols (SageMaker,
/// ECR), the `Action` form field for query protocols (STS, IAM), `METHOD /path` for S3.
pub fn operation(method: &str, path: &str, headers: &[(String, String)], body: &[u8]) -> String {
    if let Some(t) = header(headers, "x-amz-target") {
        return t.rsplit('.').next().unwrap_or(t).to_string();
    }
    if let Some(a) = form_field(body, "Action") {
        return a;
    }
    let path = path.split('?').next().unwrap_or(path);
    format!("{method} {path}")
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Protocol {
    Json,
    Query,
    RestXml,
}

fn protocol(headers: &[(String, String)], body: &[u8]) -> Protocol {
    if header(headers, "x-amz-target").is_some() {
        Protocol::Json
    } else if form_field(body, "Action").is_some() {
        Protocol::Query
    } else {
        Protocol::RestXml
    }
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

fn form_field(body: &[u8], name: &str) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    text.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == name).then(|| v.to_string())
    })
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn picks(pick: &Pick, n: u64) -> bool {
    match pick {
        Pick::All => true,
        Pick::First(k) => n < *k,
        Pick::EveryNth(k) => *k > 0 && (n + 1).is_multiple_of(*k),
        Pick::Percent { percent, seed } => {
            splitmix(seed.wrapping_mul(1_000_003) ^ n) % 100 < *percent
        }
    }
}

struct Request {
    method: String,
    path: String,
    head: Vec<u8>,
    headers: Vec<(String, String)>,
    /// The body as sent (raw, still chunked if it was).
    raw_body: Vec<u8>,
    /// The body decoded.
    body: Vec<u8>,
}

fn read_head(r: &mut impl BufRead) -> std::io::Result<Option<Vec<String>>> {
    let mut lines = Vec::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line)? == 0 {
            return Ok(None);
        }
        let l = line.trim_end_matches(['\r', '\n']).to_string();
        if l.is_empty() {
            return Ok(Some(lines));
        }
        lines.push(l);
    }
}

fn read_request(r: &mut impl BufRead) -> std::io::Result<Option<Request>> {
    let Some(lines) = read_head(r)? else {
        return Ok(None);
    };
    let mut parts = lines[0].split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let path = parts.next().unwrap_or("/").to_string();
    let headers: Vec<(String, String)> = lines[1..]
        .iter()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut raw_body = Vec::new();
    let mut body = Vec::new();
    let chunked = header(&headers, "transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    if chunked {
        loop {
            let mut size_line = String::new();
            r.read_line(&mut size_line)?;
            raw_body.extend_from_slice(size_line.as_bytes());
            let size =
                usize::from_str_radix(size_line.trim().split(';').next().unwrap_or("0").trim(), 16)
                    .unwrap_or(0);
            let mut chunk = vec![0u8; size + 2];
            r.read_exact(&mut chunk)?;
            raw_body.extend_from_slice(&chunk);
            if size == 0 {
                // Trailers (if any) end with an empty line; `chunk` held the first CRLF.
                if &chunk[..] != b"\r\n" {
                    loop {
                        let mut t = String::new();
                        r.read_line(&mut t)?;
                        raw_body.extend_from_slice(t.as_bytes());
                        if t == "\r\n" || t.is_empty() {
                            break;
                        }
                    }
                }
                break;
            }
            body.extend_from_slice(&chunk[..size]);
        }
    } else if let Some(len) = header(&headers, "content-length").and_then(|v| v.parse().ok()) {
        let mut b = vec![0u8; len];
        r.read_exact(&mut b)?;
        raw_body = b.clone();
        body = b;
    }
    // The head as forwarded: our own Connection header.
    let mut head = format!("{}\r\n", lines[0]);
    for (k, v) in &headers {
        if !k.eq_ignore_ascii_case("connection") && !k.eq_ignore_ascii_case("keep-alive") {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
    }
    head.push_str("Connection: close\r\n\r\n");
    Ok(Some(Request {
        method,
        path,
        head: head.into_bytes(),
        headers,
        raw_body,
        body,
    }))
}

/// Send the request upstream and read the whole answer; returns (status, response bytes with
/// `Connection: close`).
fn forward(upstream: &str, req: &Request) -> std::io::Result<(u16, Vec<u8>)> {
    let mut up = TcpStream::connect(upstream)?;
    up.set_read_timeout(Some(Duration::from_secs(120)))?;
    up.write_all(&req.head)?;
    up.write_all(&req.raw_body)?;
    let mut r = BufReader::new(up);
    let lines = read_head(&mut r)?.unwrap_or_default();
    let status = lines
        .first()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(502);
    let mut rest = Vec::new();
    r.read_to_end(&mut rest)?;
    let mut out = String::new();
    for (i, l) in lines.iter().enumerate() {
        let lower = l.to_ascii_lowercase();
        if i > 0 && (lower.starts_with("connection:") || lower.starts_with("keep-alive:")) {
            continue;
        }
        out.push_str(l);
        out.push_str("\r\n");
    }
    out.push_str("Connection: close\r\n\r\n");
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(&rest);
    Ok((status, bytes))
}

fn response(status: u16, reason: &str, headers: &[(&str, &str)], body: &str) -> Vec<u8> {
    let mut s = format!("HTTP/1.1 {status} {reason}\r\n");
    for (k, v) in headers {
        s.push_str(&format!("{k}: {v}\r\n"));
    }
    s.push_str(&format!(
        "x-amzn-RequestId: fault-proxy\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    ));
    s.into_bytes()
}

/// The error a service of `proto` gives, as the SDK expects to see it.
fn service_error(proto: Protocol, status: u16, code: &str, message: &str) -> Vec<u8> {
    let reason = match status {
        400 => "Bad Request",
        403 => "Forbidden",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Error",
    };
    match proto {
        Protocol::Json => response(
            status,
            reason,
            &[
                ("Content-Type", "application/x-amz-json-1.1"),
                ("x-amzn-ErrorType", code),
            ],
            &format!(r#"{{"__type":"{code}","message":"{message}"}}"#),
        ),
        Protocol::Query => response(
            status,
            reason,
            &[("Content-Type", "text/xml")],
            &format!(
                "<ErrorResponse><Error><Type>{}</Type><Code>{code}</Code><Message>{message}</Message></Error><RequestId>fault-proxy</RequestId></ErrorResponse>",
                if status < 500 { "Sender" } else { "Receiver" }
            ),
        ),
        Protocol::RestXml => response(
            status,
            reason,
            &[("Content-Type", "application/xml")],
            &format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code><Message>{message}</Message><RequestId>fault-proxy</RequestId></Error>"
            ),
        ),
    }
}

fn fault_response(fault: &Fault, n: u64, proto: Protocol) -> (String, Vec<u8>) {
    let kind = match fault {
        Fault::Transient => {
            [Fault::Status500, Fault::Status503, Fault::Throttle][(n % 3) as usize].clone()
        }
        f => f.clone(),
    };
    match kind {
        Fault::Raw {
            status,
            content_type,
            body,
        } => (
            format!("raw {status}"),
            response(status, "Error", &[("Content-Type", content_type)], body),
        ),
        Fault::Error {
            status,
            code,
            message,
        } => (code.into(), service_error(proto, status, code, message)),
        Fault::Status500 => (
            "500".into(),
            service_error(
                proto,
                500,
                if proto == Protocol::RestXml {
                    "InternalError"
                } else {
                    "InternalFailure"
                },
                "We encountered an internal error. Please try again.",
            ),
        ),
        Fault::Status503 => (
            "503".into(),
            service_error(
                proto,
                503,
                "ServiceUnavailable",
                "Service is unavailable. Please try again.",
            ),
        ),
        _ => match proto {
            Protocol::Json => (
                "throttle".into(),
                service_error(proto, 400, "ThrottlingException", "Rate exceeded"),
            ),
            Protocol::Query => (
                "throttle".into(),
                service_error(proto, 400, "Throttling", "Rate exceeded"),
            ),
            Protocol::RestXml => (
                "throttle".into(),
                service_error(proto, 503, "SlowDown", "Please reduce your request rate."),
            ),
        },
    }
}

fn request_key(op: &str, req: &Request) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (op, &req.path, &req.body).hash(&mut h);
    h.finish()
}

/// Wait `d`, unless the client leaves first; whether it is still there.
fn hold(client: &TcpStream, d: Duration) -> bool {
    let until = Instant::now() + d;
    loop {
        if client.set_nonblocking(true).is_err() {
            return false;
        }
        let gone = match client.peek(&mut [0u8; 1]) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
        };
        if client.set_nonblocking(false).is_err() || gone {
            return false;
        }
        let now = Instant::now();
        if now >= until {
            return true;
        }
        std::thread::sleep((until - now).min(Duration::from_millis(50)));
    }
}

fn serve(client: TcpStream, upstream: &str, state: &Mutex<State>) -> std::io::Result<()> {
    let started = Instant::now();
    let mut reader = BufReader::new(client.try_clone()?);
    let Some(req) = read_request(&mut reader)? else {
        return Ok(());
    };
    let mut client = client;
    let mut op = operation(&req.method, &req.path, &req.headers, &req.body);
    let mut blob = None;
    if req.method == "GET" && req.path.starts_with(CONFIG_PATH) {
        let digest = req.path[CONFIG_PATH.len()..]
            .split('?')
            .next()
            .unwrap_or("");
        blob = state.lock().unwrap().blobs.get(digest).cloned();
        op = match blob {
            Some(_) => "blob".into(),
            None => "config blob".into(),
        };
    }
    let proto = protocol(&req.headers, &req.body);
    let key = request_key(&op, &req);

    // Decide under the lock, act outside it.
    let decision = {
        let mut st = state.lock().unwrap();
        let mut chosen = None;
        let in_a_row = st.in_a_row.get(&key).copied().unwrap_or(0);
        for (rule, seen) in st.rules.iter_mut() {
            if rule.only.as_deref().is_some_and(|o| o != op) {
                continue;
            }
            let n = *seen;
            *seen += 1;
            if rule.max_in_a_row.is_some_and(|m| in_a_row >= m) {
                continue;
            }
            if picks(&rule.pick, n) {
                chosen = Some((rule.fault.clone(), n));
                break;
            }
        }
        match &chosen {
            Some((Fault::Delay(_), _)) | None => {
                st.in_a_row.remove(&key);
            }
            Some(_) => *st.in_a_row.entry(key).or_insert(0) += 1,
        }
        chosen
    };

    // Logged on arrival (so that a request still being held counts), completed at the end.
    let (idx, held) = {
        let mut st = state.lock().unwrap();
        let stall = st
            .stalls
            .iter()
            .filter(|(p, _)| req.path.contains(p.as_str()))
            .map(|(_, d)| *d)
            .max()
            .unwrap_or_default();
        let held = st.delay + stall;
        st.log.push(Entry {
            method: req.method.clone(),
            target: req.path.clone(),
            copy: header(&req.headers, "x-amz-copy-source").is_some(),
            content_length: header(&req.headers, "content-length")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0),
            op: op.clone(),
            fault: None,
            held,
            status: 0,
            started,
            finished: started,
            json_body: if protocol(&req.headers, &req.body) == Protocol::Json {
                String::from_utf8_lossy(&req.body).into_owned()
            } else {
                String::new()
            },
        });
        (st.log.len() - 1, held)
    };
    let log = |fault: Option<String>, status: u16| {
        let mut st = state.lock().unwrap();
        // A request still in flight when a test clears the log (a client killed mid-upload)
        // has no entry any more: nothing to record.
        if let Some(e) = st.log.get_mut(idx) {
            e.fault = fault;
            e.status = status;
            e.finished = Instant::now();
        }
    };

    let job_name = (op == "CreateTrainingJob")
        .then(|| {
            serde_json::from_slice::<serde_json::Value>(&req.body)
                .ok()
                .and_then(|v| v["TrainingJobName"].as_str().map(str::to_string))
        })
        .flatten();

    if !hold(&client, held) {
        log(None, 0);
        return Ok(());
    }

    // The layer download of the platform check, answered here (moto has none).
    let own_url = state.lock().unwrap().layer_downloads.clone();
    if let Some(url) = own_url {
        if let Some(bytes) = blob {
            log(None, 200);
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                bytes.len()
            );
            client.write_all(head.as_bytes())?;
            client.write_all(&bytes)?;
            return Ok(());
        }
        let answer = if op == "GetDownloadUrlForLayer" {
            let digest = serde_json::from_slice::<serde_json::Value>(&req.body)
                .ok()
                .and_then(|v| v["layerDigest"].as_str().map(str::to_string))
                .unwrap_or_default();
            Some((
                "application/x-amz-json-1.1",
                serde_json::json!({"downloadUrl": format!("{url}{CONFIG_PATH}{digest}"), "layerDigest": digest})
                    .to_string(),
            ))
        } else if op == "config blob" {
            Some((
                "application/octet-stream",
                r#"{"architecture":"amd64","os":"linux","config":{}}"#.to_string(),
            ))
        } else {
            None
        };
        if let Some((content_type, body)) = answer {
            log(None, 200);
            client.write_all(&response(
                200,
                "OK",
                &[("Content-Type", content_type)],
                &body,
            ))?;
            return Ok(());
        }
    }

    let mut label = None;
    match decision {
        Some((Fault::Drop, _)) => {
            let (status, _) = forward(upstream, &req)?;
            if status == 200 {
                if let Some(n) = &job_name {
                    state.lock().unwrap().created_jobs.insert(n.clone());
                }
            }
            log(Some("drop".into()), 0);
            let _ = client.shutdown(Shutdown::Both);
            return Ok(());
        }
        Some((Fault::Delay(d), _)) => {
            label = Some(format!("delay {}ms", d.as_millis()));
            let stayed = hold(&client, d);
            log(label.clone(), 0);
            if !stayed {
                return Ok(());
            }
        }
        Some((fault, n)) => {
            let (l, bytes) = fault_response(&fault, n, proto);
            let status = std::str::from_utf8(&bytes[9..12])
                .unwrap()
                .parse()
                .unwrap_or(0);
            log(Some(l), status);
            client.write_all(&bytes)?;
            return Ok(());
        }
        None => {}
    }

    // The service's answer to a duplicate training job name (moto would overwrite the job).
    if let Some(n) = &job_name {
        if state.lock().unwrap().created_jobs.contains(n) {
            let bytes = service_error(
                Protocol::Json,
                400,
                "ResourceInUse",
                &format!(
                    "Training job {n} already exists: a training job with this name already exists"
                ),
            );
            log(Some("ResourceInUse".into()), 400);
            client.write_all(&bytes)?;
            return Ok(());
        }
    }

    let (status, bytes) = match forward(upstream, &req) {
        Ok(x) => x,
        Err(e) => {
            log(Some(format!("upstream error: {e}")), 502);
            client.write_all(&response(502, "Bad Gateway", &[], &e.to_string()))?;
            return Ok(());
        }
    };
    if status == 200 {
        if let Some(n) = &job_name {
            state.lock().unwrap().created_jobs.insert(n.clone());
        }
    }
    let written = client.write_all(&bytes);
    log(label, if written.is_ok() { status } else { 0 });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_are_deterministic() {
        let p = Pick::Percent {
            percent: 30,
            seed: 7,
        };
        let a: Vec<bool> = (0..100).map(|n| picks(&p, n)).collect();
        let b: Vec<bool> = (0..100).map(|n| picks(&p, n)).collect();
        assert_eq!(a, b);
        let hits = a.iter().filter(|x| **x).count();
        assert!((15..=45).contains(&hits), "{hits}");
        assert!(picks(&Pick::EveryNth(3), 2) && !picks(&Pick::EveryNth(3), 0));
        assert!(picks(&Pick::First(2), 1) && !picks(&Pick::First(2), 2));
    }

    #[test]
    fn a_held_request_whose_client_leaves_is_not_forwarded() {
        // The upstream answers 200 and counts the requests it got.
        let up = TcpListener::bind("127.0.0.1:0").unwrap();
        let upstream = format!("http://{}", up.local_addr().unwrap());
        let got = Arc::new(Mutex::new(Vec::new()));
        let g = got.clone();
        std::thread::spawn(move || {
            for s in up.incoming() {
                let mut s = s.unwrap();
                let req = read_request(&mut BufReader::new(s.try_clone().unwrap()));
                g.lock().unwrap().push(req.unwrap().unwrap().path);
                let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
            }
        });
        let proxy = Proxy::start(&upstream);
        proxy.stall("/held", Duration::from_millis(600));
        let send = |path: &str| {
            let mut c = TcpStream::connect(proxy.url.trim_start_matches("http://")).unwrap();
            c.write_all(
                format!("PUT {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nab").as_bytes(),
            )
            .unwrap();
            c
        };
        let held = send("/held/a");
        // Once the proxy holds the request, the client leaves.
        let start = std::time::Instant::now();
        while proxy.requests().is_empty() {
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "the proxy never saw the request"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        drop(held);
        let mut answer = String::new();
        send("/b?x=1").read_to_string(&mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        std::thread::sleep(Duration::from_millis(1000));
        assert_eq!(*got.lock().unwrap(), vec!["/b?x=1".to_string()]);
        let log = proxy.requests();
        assert_eq!(log.len(), 2, "{log:?}");
        let (a, b) = (&log[0], &log[1]);
        assert_eq!(a.target, "/held/a");
        assert_eq!((a.held, a.status), (Duration::from_millis(600), 0));
        assert_eq!((b.held, b.status), (Duration::ZERO, 200));
        assert_eq!(b.target, "/b?x=1");
        assert_eq!((b.method.as_str(), b.content_length), ("PUT", 2));
        // A PUT to `/bucket/key` carries data; `/b` names no key.
        let keys: Vec<_> = proxy.data_puts().iter().map(Entry::key).collect();
        assert_eq!(keys, vec![Some("a".to_string())]);
    }
}
