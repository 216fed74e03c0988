//! The client both data paths forward with, and what they do with its answers.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;

/// The pooled HTTPS (and, for endpoint overrides and local servers, HTTP) client.
pub(crate) type Client = hyper_util::client::legacy::Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    BoxBody,
>;
/// The request body type of [`Client`].
pub(crate) type BoxBody = http_body_util::combinators::UnsyncBoxBody<Bytes, BoxError>;
/// Errors of streamed request bodies.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A new client: rustls with the system's roots, connection pooling, `TCP_NODELAY`.
pub(crate) fn client() -> Result<Client, String> {
    let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_native_roots(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .map_err(|e| format!("cannot load the system's root certificates: {e}"))?
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Ok(
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(https),
    )
}

/// Why a request could not be sent: the underlying cause (refused, reset, DNS), not the
/// client's generic wrapper.
pub(crate) fn cause(e: &hyper_util::client::legacy::Error) -> String {
    std::error::Error::source(e)
        .map(|s| s.to_string())
        .unwrap_or_else(|| e.to_string())
}

/// The upstream's answer, to stream back to the caller without its hop-by-hop headers.
pub(crate) fn answer(resp: http::Response<hyper::body::Incoming>) -> Response {
    let (mut parts, body) = resp.into_parts();
    hoopguard_tower::remove_hop_by_hop(&mut parts.headers);
    Response::from_parts(parts, Body::new(body))
}
