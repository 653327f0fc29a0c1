//! A counting HTTP proxy for the tests: it sits between `sagetrain` and moto, forwards every
//! byte, and records each request (method, path, whether it is a server-side copy). It can
//! delay requests, so that an upload is in flight long enough to be interrupted.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One request seen by the proxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Req {
    pub method: String,
    /// The path and query, e.g. `/bucket/key?partNumber=1&uploadId=...`.
    pub target: String,
    /// Has `x-amz-copy-source`: a server-side copy, no data from the client.
    pub copy: bool,
    pub content_length: u64,
}

impl Req {
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

pub struct Proxy {
    pub url: String,
    log: Arc<Mutex<Vec<Req>>>,
    delay_ms: Arc<AtomicU64>,
    stalls: Arc<Mutex<Vec<(String, Duration)>>>,
}

impl Proxy {
    /// Start a proxy in front of `upstream` (`http://host:port`).
    pub fn start(upstream: &str) -> Proxy {
        let upstream = upstream
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let log = Arc::new(Mutex::new(Vec::new()));
        let delay_ms = Arc::new(AtomicU64::new(0));
        let stalls = Arc::new(Mutex::new(Vec::new()));
        let (l2, d2, s2) = (log.clone(), delay_ms.clone(), stalls.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                let (log, delay, stalls, upstream) =
                    (l2.clone(), d2.clone(), s2.clone(), upstream.clone());
                std::thread::spawn(move || {
                    let _ = serve(client, &upstream, &log, &delay, &stalls);
                });
            }
        });
        Proxy {
            url,
            log,
            delay_ms,
            stalls,
        }
    }

    /// Hold requests whose path and query contain `pattern` for `d` before forwarding them.
    pub fn stall(&self, pattern: &str, d: Duration) {
        self.stalls.lock().unwrap().push((pattern.to_string(), d));
    }
    pub fn clear_stalls(&self) {
        self.stalls.lock().unwrap().clear();
    }

    pub fn set_delay(&self, d: Duration) {
        self.delay_ms.store(d.as_millis() as u64, Ordering::SeqCst);
    }
    pub fn requests(&self) -> Vec<Req> {
        self.log.lock().unwrap().clone()
    }
    pub fn clear(&self) {
        self.log.lock().unwrap().clear();
    }
    pub fn count(&self, method: &str) -> usize {
        self.requests()
            .iter()
            .filter(|r| r.method == method)
            .count()
    }
    /// PUTs that send data (not copies).
    pub fn data_puts(&self) -> Vec<Req> {
        self.requests()
            .into_iter()
            .filter(Req::is_data_put)
            .collect()
    }
    pub fn copies(&self) -> Vec<Req> {
        self.requests().into_iter().filter(|r| r.copy).collect()
    }
}

fn serve(
    client: TcpStream,
    upstream: &str,
    log: &Mutex<Vec<Req>>,
    delay: &AtomicU64,
    stalls: &Mutex<Vec<(String, Duration)>>,
) -> std::io::Result<()> {
    let server = TcpStream::connect(upstream)?;
    // Responses flow back untouched.
    let mut server_read = server.try_clone()?;
    let mut client_write = client.try_clone()?;
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut server_read, &mut client_write);
        let _ = client_write.shutdown(std::net::Shutdown::Both);
    });
    let mut reader = BufReader::new(client);
    let mut server = server;
    loop {
        // The request line and headers.
        let mut head = Vec::new();
        loop {
            let mut line = Vec::new();
            if reader.read_until(b'\n', &mut line)? == 0 {
                let _ = server.shutdown(std::net::Shutdown::Write);
                return Ok(());
            }
            let end = line == b"\r\n" || line == b"\n";
            head.extend_from_slice(&line);
            if end && head.len() > line.len() {
                break;
            }
            if end {
                head.clear(); // stray empty line between requests
            }
        }
        let text = String::from_utf8_lossy(&head).into_owned();
        let mut lines = text.lines();
        let first = lines.next().unwrap_or("");
        let mut parts = first.split_whitespace();
        let method = parts.next().unwrap_or("").to_string();
        let target = parts.next().unwrap_or("").to_string();
        let mut content_length = 0u64;
        let mut chunked = false;
        let mut copy = false;
        for l in lines {
            let Some((k, v)) = l.split_once(':') else {
                continue;
            };
            let k = k.trim().to_ascii_lowercase();
            let v = v.trim();
            match k.as_str() {
                "content-length" => content_length = v.parse().unwrap_or(0),
                "transfer-encoding" => chunked = v.to_ascii_lowercase().contains("chunked"),
                "x-amz-copy-source" => copy = true,
                _ => {}
            }
        }
        let stall = stalls
            .lock()
            .unwrap()
            .iter()
            .filter(|(p, _)| target.contains(p.as_str()))
            .map(|(_, d)| *d)
            .max();
        log.lock().unwrap().push(Req {
            method,
            target,
            copy,
            content_length,
        });
        let ms = delay.load(Ordering::SeqCst);
        if ms > 0 {
            std::thread::sleep(Duration::from_millis(ms));
        }
        if let Some(d) = stall {
            std::thread::sleep(d);
        }
        server.write_all(&head)?;
        if chunked {
            loop {
                let mut size_line = Vec::new();
                reader.read_until(b'\n', &mut size_line)?;
                server.write_all(&size_line)?;
                let size_text = String::from_utf8_lossy(&size_line);
                let size =
                    u64::from_str_radix(size_text.split(';').next().unwrap_or("0").trim(), 16)
                        .unwrap_or(0);
                if size == 0 {
                    // Trailers, up to an empty line.
                    loop {
                        let mut t = Vec::new();
                        reader.read_until(b'\n', &mut t)?;
                        server.write_all(&t)?;
                        if t == b"\r\n" || t.is_empty() {
                            break;
                        }
                    }
                    break;
                }
                copy_exact(&mut reader, &mut server, size + 2)?;
            }
        } else {
            copy_exact(&mut reader, &mut server, content_length)?;
        }
    }
}

fn copy_exact(from: &mut impl Read, to: &mut impl Write, n: u64) -> std::io::Result<()> {
    let copied = std::io::copy(&mut from.take(n), to)?;
    if copied < n {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "client closed mid-body",
        ));
    }
    Ok(())
}
