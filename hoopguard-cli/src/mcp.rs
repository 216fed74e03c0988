//! The MCP listener: a guarded reverse proxy in front of one streamable-HTTP MCP server.
//!
//! Requests to `[mcp].path` pass, in order: `AuthLayer` (bearer token from `Authorization`
//! only, audience = this gateway's resource URI, 401 naming the RFC 9728 metadata), `MaskLayer`
//! (answers masked, JSON and server-sent events), `McpLayer` (every call decided, tool lists
//! filtered and pinned, calls recorded), then the upstream. The client's token never goes
//! upstream: only the configured upstream header does. Event streams are forwarded as they
//! arrive, never buffered whole.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::IntoResponse;
use bytes::Bytes;
use hoopguard_core::identity::Verifier;
use hoopguard_core::mcp::{Pins, UNAVAILABLE, error};
use hoopguard_core::record::Recorder;
use hoopguard_tower::auth::AuthLayer;
use hoopguard_tower::mcp::{Stack, metadata_url, protected_resource_metadata};
use hoopguard_tower::policy::Guard;
use http_body_util::{BodyExt, Full};

use crate::config::McpUpstream;
use crate::upstream::{self, Client};

/// Headers of the client's request that go upstream (besides the configured one).
const FORWARDED: &[&str] = &[
    "accept",
    "content-type",
    "mcp-session-id",
    "mcp-protocol-version",
    "last-event-id",
    "mcp-method",
    "mcp-name",
    // Set by the stack's UpstreamTraceLayer (hoopguard's own trace context; the caller's is
    // never passed on as it was sent).
    "traceparent",
    "tracestate",
];

/// What the MCP listener needs.
pub(crate) struct McpSetup {
    pub(crate) verifier: Arc<Verifier>,
    pub(crate) guard: Guard,
    pub(crate) recorder: Arc<Recorder>,
    pub(crate) mask: hoopguard_tower::mask::MaskLayer,
    pub(crate) pins: Arc<Pins>,
    pub(crate) client: Client,
    /// `[mcp].path`.
    pub(crate) path: String,
    /// This gateway's resource URI.
    pub(crate) resource: String,
    /// The authorization servers announced in the metadata.
    pub(crate) issuers: Vec<String>,
    pub(crate) upstream: Option<McpUpstream>,
    /// Who approves calls to changed tools.
    pub(crate) changed_tool_approvers: Vec<String>,
}

/// The configured upstream, ready to call.
#[derive(Clone)]
struct Upstream {
    url: http::Uri,
    header: Option<(http::HeaderName, HeaderValue)>,
    timeout: Duration,
    client: Client,
}

/// The MCP listener's routes.
pub(crate) fn router(setup: McpSetup) -> Result<Router, String> {
    let metadata = protected_resource_metadata(&setup.resource, &setup.issuers);
    let meta = move || {
        let m = metadata.clone();
        async move {
            let mut r = axum::Json(m).into_response();
            r.headers_mut().insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static("max-age=300"),
            );
            r
        }
    };
    let well_known = format!("/.well-known/oauth-protected-resource{}", setup.path);
    let guarded: Router = match setup.upstream {
        Some(up) => {
            let value = match (&up.value, &up.value_file) {
                (Some(v), _) => Some(v.clone()),
                (None, Some(f)) => Some(
                    std::fs::read_to_string(f)
                        .map_err(|e| format!("cannot read mcp.upstream.value_file {}: {e}", f.display()))?
                        .trim_end_matches(['\n', '\r'])
                        .to_string(),
                ),
                _ => None,
            };
            let header = match (&up.header, value) {
                (Some(h), Some(v)) => {
                    let mut v = HeaderValue::from_str(&v)
                        .map_err(|_| "mcp.upstream.value is not a valid header value".to_string())?;
                    v.set_sensitive(true);
                    Some((
                        http::HeaderName::try_from(h.as_str()).map_err(|e| e.to_string())?,
                        v,
                    ))
                }
                _ => None,
            };
            let upstream = Upstream {
                url: up.url.parse().map_err(|e| format!("mcp.upstream.url: {e}"))?,
                header,
                timeout: up.timeout,
                client: setup.client,
            };
            let server = up.name.clone().unwrap_or_else(|| up.url.clone());
            let stack = Stack::new(
                setup.verifier,
                setup.resource,
                setup.guard,
                setup.pins,
                server,
            )
            .path(setup.path.clone())
            .mask(setup.mask)
            .recorder(setup.recorder)
            .changed_tool_approvers(setup.changed_tool_approvers);
            let svc = stack.layer(tower::service_fn(move |req: http::Request<Full<Bytes>>| {
                let up = upstream.clone();
                async move { Ok::<_, std::convert::Infallible>(forward(&up, req).await) }
            }));
            Router::new().route_service(&setup.path, svc)
        }
        None => Router::new().route_service(
            &setup.path,
            tower::ServiceBuilder::new()
                .layer(
                    AuthLayer::new(setup.verifier)
                        .require_audience(setup.resource.clone())
                        .resource_metadata(metadata_url(&setup.resource, &setup.path)),
                )
                .service(tower::service_fn(|_req: http::Request<Body>| async {
                    Ok::<_, std::convert::Infallible>(
                        (
                            StatusCode::SERVICE_UNAVAILABLE,
                            axum::Json(error(
                                None,
                                UNAVAILABLE,
                                "no MCP server is configured behind this gateway; set [mcp.upstream] url",
                                None,
                            )),
                        )
                            .into_response(),
                    )
                })),
        ),
    };
    Ok(guarded
        .route(
            "/.well-known/oauth-protected-resource",
            axum::routing::get(meta.clone()),
        )
        .route(&well_known, axum::routing::get(meta)))
}

/// Sends one request to the MCP server; its answer streams back.
async fn forward(up: &Upstream, req: http::Request<Full<Bytes>>) -> axum::response::Response {
    let (parts, body) = req.into_parts();
    let mut out = http::Request::builder()
        .method(parts.method.clone())
        .uri(up.url.clone())
        .body(body.map_err(|never| match never {}).boxed_unsync())
        .expect("method and URI are valid");
    let h = out.headers_mut();
    for name in FORWARDED {
        for v in parts.headers.get_all(*name) {
            h.append(*name, v.clone());
        }
    }
    if let Some((name, value)) = &up.header {
        h.insert(name.clone(), value.clone());
    }
    let fail = |status: StatusCode, msg: String| {
        tracing::warn!(upstream = %up.url, "{msg}");
        (status, axum::Json(error(None, UNAVAILABLE, &msg, None))).into_response()
    };
    match tokio::time::timeout(up.timeout, up.client.request(out)).await {
        Err(_) => fail(
            StatusCode::GATEWAY_TIMEOUT,
            format!("the MCP server {} did not answer in time", up.url),
        ),
        Ok(Err(e)) => fail(
            StatusCode::BAD_GATEWAY,
            format!(
                "hoopguard could not reach the MCP server {}: {}",
                up.url,
                upstream::cause(&e)
            ),
        ),
        Ok(Ok(resp)) => upstream::answer(resp),
    }
}

#[cfg(test)]
mod tests {
    //! `forward` against a stand-in upstream written here that only reports the headers it got:
    //! what the upstream receives is the point, and a real MCP server does not echo headers.
    use super::*;

    #[tokio::test]
    async fn the_client_token_never_goes_upstream_only_the_configured_header() {
        use hyper::service::service_fn;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let svc = service_fn(|req: http::Request<hyper::body::Incoming>| async move {
                let seen: Vec<String> = req
                    .headers()
                    .iter()
                    .map(|(n, v)| format!("{n}: {}", v.to_str().unwrap_or("?")))
                    .collect();
                Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(Bytes::from(
                    seen.join("\n"),
                ))))
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                .await;
        });
        let mut secret = HeaderValue::from_static("Bearer upstream-secret");
        secret.set_sensitive(true);
        let up = Upstream {
            url: format!("http://{addr}/mcp").parse().unwrap(),
            header: Some((http::header::AUTHORIZATION, secret)),
            timeout: Duration::from_secs(5),
            client: crate::upstream::client().unwrap(),
        };
        let req = http::Request::post("/mcp")
            .header("authorization", "Bearer the-clients-token")
            .header("mcp-session-id", "s-1")
            .header("cookie", "session=abc")
            .header("x-forwarded-for", "10.0.0.1")
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from_static(b"{}")))
            .unwrap();
        let resp = forward(&up, req).await;
        let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        let seen = String::from_utf8(body.to_vec()).unwrap();
        assert!(
            seen.contains("authorization: Bearer upstream-secret"),
            "{seen}"
        );
        assert!(!seen.contains("the-clients-token"), "{seen}");
        assert!(seen.contains("mcp-session-id: s-1"), "{seen}");
        assert!(
            !seen.contains("cookie") && !seen.contains("x-forwarded-for"),
            "{seen}"
        );
    }
}
