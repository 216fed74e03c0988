//! The AWS listener: the container-credentials endpoint, and the data path of every AWS API
//! call — [`hoopguard_tower::aws::Stack`] in front of the pooled HTTPS client.
//!
//! A call is authenticated by its SigV4 signature (made with hoopguard's pseudo-credentials),
//! classified, decided by the policy (with approvals) and recorded; an allowed call is re-signed
//! with credentials from its connection's broker and forwarded to the AWS endpoint of its service
//! and region (or the connection's endpoint override), and the answer streams back through the
//! masking layer. The layers' module docs say how bodies are inspected or streamed.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use hoopguard_core::aws::Minter;
use hoopguard_core::identity::{Identity, Verifier};
use hoopguard_core::record::Recorder;
use hoopguard_tower::auth::AuthLayer;
use hoopguard_tower::aws::{Connection, Stack};
use hoopguard_tower::mask::MaskLayer;
use hoopguard_tower::policy::Guard;
use serde_json::json;

use crate::upstream::Client;

/// What the AWS listener needs.
pub(crate) struct AwsSetup {
    pub(crate) verifier: Arc<Verifier>,
    pub(crate) minter: Arc<Minter>,
    pub(crate) guard: Guard,
    pub(crate) recorder: Arc<Recorder>,
    pub(crate) connections: HashMap<String, Connection>,
    pub(crate) ttl: Duration,
    pub(crate) upstream_timeout: Duration,
    pub(crate) max_body: usize,
    pub(crate) mask: MaskLayer,
    pub(crate) client: Client,
    /// Who approves calls that cannot be classified (none: they are refused).
    pub(crate) unclassified_approvers: Vec<String>,
    /// Hosts whose subdomains are S3 buckets.
    pub(crate) s3_virtual_host_suffixes: Vec<String>,
    /// `aws.max_buffered`.
    pub(crate) max_buffered: usize,
    /// The token audiences the credentials endpoint accepts.
    pub(crate) audiences: Vec<String>,
    /// `aws.body_read_timeout`.
    pub(crate) body_read_timeout: Duration,
}

/// What the credentials endpoint needs.
#[derive(Clone)]
struct AwsState {
    minter: Arc<Minter>,
    connections: Arc<HashMap<String, Connection>>,
    ttl: Duration,
}

/// The AWS listener's routes.
pub(crate) fn router(setup: AwsSetup) -> Router {
    let connections = Arc::new(setup.connections);
    let state = AwsState {
        minter: setup.minter.clone(),
        connections: connections.clone(),
        ttl: setup.ttl,
    };
    let creds = Router::new()
        .route("/v1/aws/credentials", get(credentials_default))
        .route("/v1/aws/credentials/{connection}", get(credentials))
        .layer(
            AuthLayer::new(setup.verifier)
                .accept_raw_token(true)
                .audiences(setup.audiences),
        )
        .with_state(state);
    // Answers from AWS are masked; the credentials endpoint's own answer is not.
    let (max_body, max_buffered, read_timeout, suffixes) = (
        setup.max_body,
        setup.max_buffered,
        setup.body_read_timeout,
        setup.s3_virtual_host_suffixes,
    );
    let calls = Stack::new(setup.minter, setup.guard, connections)
        .verify(|v| {
            v.max_body(max_body)
                .max_buffered(max_buffered)
                .body_read_timeout(read_timeout)
                .virtual_host_suffixes(suffixes)
        })
        .unclassified_approvers(setup.unclassified_approvers)
        .upstream_timeout(setup.upstream_timeout)
        .mask(setup.mask)
        .record(setup.recorder)
        .service(setup.client);
    Router::new().merge(creds).fallback_service(calls)
}

async fn credentials_default(
    state: State<AwsState>,
    who: axum::Extension<Arc<Identity>>,
    headers: HeaderMap,
) -> Response {
    mint(&state, &who, "default", &headers).await
}

async fn credentials(
    state: State<AwsState>,
    who: axum::Extension<Arc<Identity>>,
    Path(conn): Path<String>,
    headers: HeaderMap,
) -> Response {
    mint(&state, &who, &conn, &headers).await
}

async fn mint(state: &AwsState, who: &Identity, connection: &str, headers: &HeaderMap) -> Response {
    let Some(conn) = state.connections.get(connection) else {
        let mut names: Vec<&str> = state.connections.keys().map(String::as_str).collect();
        names.sort();
        return (
            StatusCode::NOT_FOUND,
            axum::Json(json!({"error": "unknown_connection", "message": if names.is_empty() {
                format!("no AWS connection `{connection}`: this gateway has none; add [aws.connections.{connection}] to its configuration")
            } else {
                format!("no AWS connection `{connection}`; configured: {}", names.join(", "))
            }})),
        )
            .into_response();
    };
    let refused = |e: hoopguard_core::aws::CredError| {
        (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"error": "invalid_token", "message": e.to_string()})),
        )
            .into_response()
    };
    let mut session = match state.minter.session(who, connection, state.ttl) {
        Ok(s) => s,
        Err(e) => return refused(e),
    };
    // A web-identity connection exchanges the caller's own token now (it is not seen again)
    // and the session carries the result sealed, so any replica can use it.
    if let Some(token) = raw_token(headers) {
        match conn.broker.prime(&session, token).await {
            Ok(None) => {}
            Ok(Some(creds)) => {
                if let Err(e) = state.minter.seal(&mut session, &creds) {
                    return refused(e);
                }
            }
            Err(e) => {
                tracing::warn!(subject = %who.subject, connection, error = %e, "web-identity exchange failed");
                return (
                    StatusCode::SERVICE_UNAVAILABLE,
                    axum::Json(json!({"error": "broker_failed", "message": e.to_string()})),
                )
                    .into_response();
            }
        }
    }
    let c = state.minter.issue(&session);
    tracing::info!(subject = %who.subject, connection, access_key_id = %c.access_key_id, "issued pseudo-credentials");
    let mut resp = axum::Json(c).into_response();
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// The caller's token as sent to the credentials endpoint (raw, or `Bearer …`).
fn raw_token(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get("authorization")?.to_str().ok()?.trim();
    Some(v.strip_prefix("Bearer ").unwrap_or(v).trim())
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;

    #[tokio::test]
    async fn a_session_ends_when_its_credentials_expire() {
        let dir = tempfile::tempdir().unwrap();
        let rec = Arc::new(
            Recorder::open(dir.path(), hoopguard_core::record::Durability::Batched).unwrap(),
        );
        rec.append("aws-s1", "start", json!({})).unwrap();
        // An exact instant (not whole seconds: that would put the expiry anywhere from 0 to 1 s
        // ahead, and the first check could fall after it).
        rec.end_at(
            "aws-s1",
            SystemTime::now() + Duration::from_millis(1500),
            "token expired",
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(!rec.state("aws-s1").unwrap().ended, "not before expiry");
        tokio::time::sleep(Duration::from_millis(2500)).await;
        assert!(rec.state("aws-s1").unwrap().ended);
        let events = hoopguard_core::record::read_session(dir.path(), "aws-s1").unwrap();
        assert_eq!(events.last().unwrap().data["reason"], "token expired");
    }
}
