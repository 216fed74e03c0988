//! hoopguard's tower layers, one module per layer.
//!
//! * [`auth`]: [`AuthLayer`](auth::AuthLayer) verifies the caller's OIDC token and puts the
//!   [`Identity`](hoopguard_core::identity::Identity) into the request extensions.
//! * [`aws`]: the AWS data path — [`SigV4Verify`](aws::SigV4Verify) →
//!   [`Classify`](aws::Classify) → [`Decide`](aws::Decide) → [`Resign`](aws::Resign), assembled
//!   with masking and recording by [`aws::Stack`].
//! * [`mask`]: [`MaskLayer`](mask::MaskLayer) masks secrets in response bodies as they stream
//!   (plain, gzip/deflate, server-sent events).
//! * [`mcp`]: [`McpLayer`](mcp::McpLayer) decides every JSON-RPC call of a streamable-HTTP MCP
//!   service on its name and arguments, filters and pins tool lists, and records the calls.
//! * [`metrics`]: [`MetricsLayer`](metrics::MetricsLayer) counts requests, refusals and latency
//!   for the Prometheus endpoint.
//! * [`policy`]: [`PolicyLayer`](policy::PolicyLayer) and [`Guard`](policy::Guard) decide each
//!   call (allow, deny, or wait for a human's approval).
//! * `rmcp` (feature `rmcp`): guard a Rust MCP server built on the official `rmcp` crate with
//!   the same layers, in-process.
//! * [`record`]: [`RecordLayer`](record::RecordLayer) records each recorded call's answer
//!   (after masking, textual bodies capped) when its body ends.
//! * [`trace`]: [`TraceLayer`](trace::TraceLayer) runs each call in an OpenTelemetry-ready span
//!   (continuing the caller's W3C trace context); [`UpstreamTraceLayer`](trace::UpstreamTraceLayer)
//!   passes it on to upstream.
//! * [`body`]: [`GuardBody`](body::GuardBody), the response body of a layer that may answer on
//!   its own (a refusal) instead of calling the inner service.
//!
//! Layer order for one request (see the design): auth → classify → policy → approval → record →
//! credentials → upstream, then mask → record on the way back. Every layer fails closed.
#![forbid(unsafe_code)]
#![warn(
    missing_docs,
    missing_debug_implementations,
    rust_2018_idioms,
    unreachable_pub
)]

pub mod auth;
pub mod aws;
pub mod body;
pub mod mask;
pub mod mcp;
pub mod metrics;
pub mod policy;
pub mod record;
#[cfg(feature = "rmcp")]
pub mod rmcp;
pub mod trace;

/// The error type at tower boundaries.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Removes the headers of an upstream response that belong to its connection, not to the answer
/// (`Connection`, `Keep-Alive`, `Transfer-Encoding`, …), before it is passed on.
pub fn remove_hop_by_hop(headers: &mut http::HeaderMap) {
    const HOP_BY_HOP: &[&str] = &[
        "connection",
        "keep-alive",
        "proxy-connection",
        "transfer-encoding",
        "te",
        "trailer",
        "upgrade",
    ];
    for name in HOP_BY_HOP {
        headers.remove(*name);
    }
}
