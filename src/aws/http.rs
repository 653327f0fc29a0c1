//! Plain HTTP for what the SDK does not fetch itself (the pre-signed download URLs of ECR
//! blobs: an image config, a layer), with the SDK's own HTTP client and the command's network
//! timeouts.

use aws_smithy_runtime_api::client::http::{HttpConnectorSettings, SharedHttpConnector};
use aws_smithy_types::byte_stream::ByteStream;
use std::io::Write;
use std::path::Path;

/// The HTTP client the AWS SDK uses (no second HTTP stack), with the command's timeouts.
fn connector() -> std::result::Result<SharedHttpConnector, String> {
    let t = super::timeouts::current();
    let settings = HttpConnectorSettings::builder()
        .connect_timeout(t.connect.value)
        .read_timeout(t.read.value)
        .build();
    aws_smithy_http_client::default_connector(
        &settings,
        Some(aws_smithy_async::rt::sleep::default_async_sleep().ok_or("no async sleep")?),
    )
    .ok_or_else(|| "no HTTP client".to_string())
}

/// GET `url`: the body of a 2xx answer, as a stream.
async fn open(url: &str) -> std::result::Result<ByteStream, String> {
    use aws_smithy_runtime_api::client::http::HttpConnector;
    let mut req = aws_smithy_runtime_api::client::orchestrator::HttpRequest::empty();
    req.set_uri(url).map_err(|e| e.to_string())?;
    let resp = connector()?
        .call(req)
        .await
        .map_err(|e| aws_smithy_types::error::display::DisplayErrorContext(&e).to_string())?;
    let status = resp.status().as_u16();
    if !(200..300).contains(&status) {
        return Err(format!("HTTP {status}"));
    }
    Ok(ByteStream::new(resp.into_body()))
}

/// GET a URL with the HTTP client the AWS SDK uses.
pub async fn get(url: String) -> std::result::Result<Vec<u8>, String> {
    let body = open(&url)
        .await?
        .collect()
        .await
        .map_err(|e| e.to_string())?;
    Ok(body.into_bytes().to_vec())
}

/// GET a URL into the file `to` (created, or truncated), streamed: the body is never held in
/// memory whole (an image layer can be gigabytes). `each` sees every chunk as it is written
/// (to hash it, to count progress). The bytes written.
pub async fn download(
    url: &str,
    to: &Path,
    each: &mut dyn FnMut(&[u8]),
) -> std::result::Result<u64, String> {
    let mut body = open(url).await?;
    let mut file = std::io::BufWriter::new(
        std::fs::File::create(to).map_err(|e| format!("cannot create {}: {e}", to.display()))?,
    );
    let mut n = 0u64;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| {
            format!(
                "the download broke off after {n} bytes: {}",
                aws_smithy_types::error::display::DisplayErrorContext(&e)
            )
        })?;
        file.write_all(&chunk)
            .map_err(|e| format!("cannot write {}: {e}", to.display()))?;
        each(&chunk);
        n += chunk.len() as u64;
    }
    file.flush()
        .map_err(|e| format!("cannot write {}: {e}", to.display()))?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A one-shot HTTP server on loopback answering 200 with `body`, sent in small pieces.
    fn serve_once(body: Vec<u8>) -> String {
        use std::io::Read;
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!(
            "http://{}/blob?X-Amz-Signature=abc",
            l.local_addr().unwrap()
        );
        std::thread::spawn(move || {
            let (mut c, _) = l.accept().unwrap();
            let mut buf = [0u8; 4096];
            let _ = c.read(&mut buf);
            let _ = write!(
                c,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            for piece in body.chunks(10_000) {
                let _ = c.write_all(piece);
                let _ = c.flush();
            }
        });
        url
    }

    #[tokio::test]
    async fn a_download_is_streamed_to_the_file_and_seen_chunk_by_chunk() {
        let body: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let url = serve_once(body.clone());
        let dir = tempfile::tempdir().unwrap();
        let to = dir.path().join("blob");
        let mut seen = Vec::new();
        let mut chunks = 0;
        let n = download(&url, &to, &mut |c: &[u8]| {
            chunks += 1;
            seen.extend_from_slice(c);
        })
        .await
        .unwrap();
        assert_eq!(n, body.len() as u64);
        assert_eq!(std::fs::read(&to).unwrap(), body);
        assert_eq!(seen, body);
        assert!(chunks > 1, "one chunk: the body was not streamed");
    }
}
