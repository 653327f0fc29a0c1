//! Plain HTTP for what the SDK does not fetch itself (an image config's pre-signed download URL
//! from ECR), with the SDK's own HTTP client and the command's network timeouts.

/// GET a URL with the HTTP client the AWS SDK uses (no second HTTP stack).
pub async fn get(url: String) -> std::result::Result<Vec<u8>, String> {
    use aws_smithy_runtime_api::client::http::{HttpConnector, HttpConnectorSettings};
    let t = super::timeouts::current();
    let settings = HttpConnectorSettings::builder()
        .connect_timeout(t.connect.value)
        .read_timeout(t.read.value)
        .build();
    let connector = aws_smithy_http_client::default_connector(
        &settings,
        Some(aws_smithy_async::rt::sleep::default_async_sleep().ok_or("no async sleep")?),
    )
    .ok_or("no HTTP client")?;
    let mut req = aws_smithy_runtime_api::client::orchestrator::HttpRequest::empty();
    req.set_uri(url.as_str()).map_err(|e| e.to_string())?;
    let resp = connector
        .call(req)
        .await
        .map_err(|e| aws_smithy_types::error::display::DisplayErrorContext(&e).to_string())?;
    let status = resp.status().as_u16();
    if !(200..300).contains(&status) {
        return Err(format!("HTTP {status}"));
    }
    let body = aws_smithy_types::byte_stream::ByteStream::new(resp.into_body())
        .collect()
        .await
        .map_err(|e| e.to_string())?;
    Ok(body.into_bytes().to_vec())
}
