//! The AWS listener: the container-credentials endpoint, and caller authentication of every AWS
//! API call by its SigV4 signature, classified and decided by the policy (with approvals).
//! Brokering and forwarding are not built yet (issue #4): an allowed call is answered `501` in
//! the protocol's own error format.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use hoopguard_core::aws::classify::{Classified, Parts, classify};
use hoopguard_core::aws::{Minter, SigError, Verified, verify_request};
use hoopguard_core::identity::{Identity, Verifier};
use hoopguard_core::record::Recorder;
use hoopguard_tower::auth::AuthLayer;
use hoopguard_tower::policy::{Guard, Verdict};
use serde_json::json;

/// Bodies hoopguard reads to hash them (query and JSON APIs) are capped at this size.
pub(crate) const MAX_BUFFERED_BODY: usize = 10 * 1024 * 1024;

#[derive(Clone)]
struct AwsState {
    minter: Arc<Minter>,
    guard: Guard,
    recorder: Arc<Recorder>,
    connections: Arc<Vec<String>>,
    ttl: Duration,
}

/// The AWS listener's routes.
pub(crate) fn router(
    verifier: Arc<Verifier>,
    minter: Arc<Minter>,
    guard: Guard,
    recorder: Arc<Recorder>,
    connections: Vec<String>,
    ttl: Duration,
) -> Router {
    let state = AwsState {
        minter,
        guard,
        recorder,
        connections: Arc::new(connections),
        ttl,
    };
    let creds = Router::new()
        .route("/v1/aws/credentials", get(credentials_default))
        .route("/v1/aws/credentials/{connection}", get(credentials))
        .layer(AuthLayer::new(verifier).accept_raw_token(true));
    Router::new()
        .merge(creds)
        .fallback(api_call)
        .with_state(state)
}

async fn credentials_default(
    state: State<AwsState>,
    who: axum::Extension<Arc<Identity>>,
) -> Response {
    mint(&state, &who, "default")
}

async fn credentials(
    state: State<AwsState>,
    who: axum::Extension<Arc<Identity>>,
    Path(conn): Path<String>,
) -> Response {
    mint(&state, &who, &conn)
}

fn mint(state: &AwsState, who: &Identity, connection: &str) -> Response {
    if !state.connections.iter().any(|c| c == connection) {
        return (
            StatusCode::NOT_FOUND,
            axum::Json(json!({"error": "unknown_connection", "message": format!("no AWS connection `{connection}`; configured: {}", state.connections.join(", "))})),
        )
            .into_response();
    }
    match state.minter.mint(who, connection, state.ttl) {
        Ok(c) => {
            tracing::info!(subject = %who.subject, connection, access_key_id = %c.access_key_id, "issued pseudo-credentials");
            let mut resp = axum::Json(c).into_response();
            resp.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            resp
        }
        Err(e) => (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"error": "invalid_token", "message": e.to_string()})),
        )
            .into_response(),
    }
}

/// How the caller's protocol wants its errors.
enum ErrorFormat {
    Json,
    S3Xml,
    QueryXml,
}

fn error_format(headers: &HeaderMap) -> ErrorFormat {
    let ctype = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if headers.contains_key("x-amz-target") || ctype.contains("json") {
        return ErrorFormat::Json;
    }
    let service = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|a| a.split("Credential=").nth(1))
        .and_then(|c| c.split('/').nth(3));
    if service == Some("s3") {
        ErrorFormat::S3Xml
    } else {
        ErrorFormat::QueryXml
    }
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// An error the SDK shows as `An error occurred (Code) when calling …: message`.
fn aws_error(format: &ErrorFormat, status: StatusCode, code: &str, message: &str) -> Response {
    let (ctype, body) = match format {
        ErrorFormat::Json => (
            "application/x-amz-json-1.1",
            json!({"__type": code, "message": message}).to_string(),
        ),
        ErrorFormat::S3Xml => (
            "application/xml",
            format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{}</Message><RequestId>hoopguard</RequestId></Error>",
                xml_escape(message)
            ),
        ),
        ErrorFormat::QueryXml => (
            "text/xml",
            format!(
                "<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>{}</Message></Error><RequestId>hoopguard</RequestId></ErrorResponse>",
                xml_escape(message)
            ),
        ),
    };
    let mut resp = (status, body).into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    if let Ok(v) = HeaderValue::from_str(code) {
        resp.headers_mut().insert("x-amzn-errortype", v);
    }
    resp
}

async fn api_call(State(state): State<AwsState>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let format = error_format(&parts.headers);
    // The payload hash: declared by the caller (S3), or computed from the buffered body.
    let body: Bytes = match axum::body::to_bytes(Body::new(body), MAX_BUFFERED_BODY).await {
        Ok(b) => b,
        Err(_) => {
            return aws_error(
                &format,
                StatusCode::PAYLOAD_TOO_LARGE,
                "RequestEntityTooLarge",
                "the request body is larger than hoopguard buffers (10 MiB)",
            );
        }
    };
    let body_hash = hoopguard_core::aws::sha256_hex(&body);
    let headers: Vec<(&str, &[u8])> = parts
        .headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_bytes()))
        .collect();
    let sig_req = hoopguard_core::aws::Request {
        method: parts.method.as_str(),
        path: parts.uri.path(),
        query: parts.uri.query().unwrap_or(""),
        headers: &headers,
        body_sha256: Some(&body_hash),
    };
    let verified = match verify_request(&state.minter, &sig_req, SystemTime::now()) {
        Ok(v) => v,
        Err(e) => {
            tracing::info!(reason = e.aws_code(), "refused an AWS call");
            let status = match e {
                SigError::Unsupported(_) | SigError::Malformed(_) => StatusCode::BAD_REQUEST,
                _ => StatusCode::FORBIDDEN,
            };
            return aws_error(&format, status, e.aws_code(), &e.to_string());
        }
    };
    let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
    let classified = match classify(&Parts {
        method: parts.method.as_str(),
        path: parts.uri.path(),
        query: parts.uri.query().unwrap_or(""),
        target: header("x-amz-target"),
        copy_source: header("x-amz-copy-source"),
        body: &body,
        service: &verified.service,
        region: &verified.region,
    }) {
        Ok(c) => c,
        Err(why) => {
            tracing::info!(subject = %verified.session.subject, service = %verified.service, "refused an unclassified AWS call");
            return aws_error(
                &format,
                StatusCode::FORBIDDEN,
                "AccessDenied",
                &format!("hoopguard could not classify this call, so it is refused: {why}"),
            );
        }
    };
    let who = Identity {
        subject: verified.session.subject.clone(),
        groups: verified.session.groups.clone(),
        issuer: "hoopguard:aws-session".into(),
        expires_at: std::time::UNIX_EPOCH + Duration::from_secs(verified.session.exp),
        claims: Default::default(),
    };
    // The body decides what query and JSON calls do: a once-approval covers only this body.
    let verdict = state
        .guard
        .authorize(&who, &classified.call, Some(&body_hash))
        .await;
    // Record the call before answering; a call that cannot be recorded is refused.
    if let Err(e) = record(&state.recorder, &verified, &classified, &verdict) {
        tracing::error!(error = %e, "cannot record the call; refusing it");
        return aws_error(
            &format,
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
            "refused because the call could not be recorded; try again later",
        );
    }
    match verdict {
        Verdict::Allow { rule, .. } => aws_error(
            &format,
            StatusCode::NOT_IMPLEMENTED,
            "NotImplemented",
            &format!(
                "authenticated as `{}` ({} in {}); {} allowed by rule `{}`, but forwarding AWS calls is not built into this version of hoopguard yet; nothing was sent to AWS",
                who.subject,
                verified.service,
                verified.region,
                classified.call.summary(),
                rule.unwrap_or_default()
            ),
        ),
        Verdict::Deny { reason, .. } => {
            aws_error(&format, StatusCode::FORBIDDEN, "AccessDenied", &reason)
        }
        Verdict::Pending { approval, reason } => aws_error(
            &format,
            StatusCode::FORBIDDEN,
            "AccessDenied",
            &format!(
                "{reason}. Approval {id} is pending: an approver runs `hoopguard approvals approve {id}`; then retry the same call.",
                id = approval.id
            ),
        ),
        Verdict::Unavailable { reason } => aws_error(
            &format,
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
            &format!("refused because the approval store failed ({reason}); try again later"),
        ),
    }
}

/// One pseudo-credential session is one recording: a `start` event the first time it is seen,
/// then one `call` event per call with what was asked and decided. No credentials, tokens or
/// bodies are recorded.
fn record(
    recorder: &Recorder,
    verified: &Verified,
    classified: &Classified,
    verdict: &Verdict,
) -> Result<(), hoopguard_core::record::RecordError> {
    let session = format!("aws-{}", verified.session.sid);
    if !recorder.exists(&session) {
        recorder.append(
            &session,
            "start",
            json!({
                "subject": verified.session.subject,
                "groups": verified.session.groups,
                "connection": verified.session.connection,
            }),
        )?;
    }
    let (rule, approval_id, reason) = match verdict {
        Verdict::Allow { rule, approval_id } => (rule.clone(), approval_id.clone(), None),
        Verdict::Deny { rule, reason } => (rule.clone(), None, Some(reason.clone())),
        Verdict::Pending { approval, reason } => (
            Some(approval.rule.clone()),
            Some(approval.id.clone()),
            Some(reason.clone()),
        ),
        Verdict::Unavailable { reason } => (None, None, Some(reason.clone())),
    };
    recorder.append(
        &session,
        "call",
        json!({
            "service": verified.service,
            "region": verified.region,
            "operation": classified.operation,
            "action": classified.call.summary(),
            "decision": verdict.decision(),
            "rule": rule,
            "approval_id": approval_id,
            "reason": reason,
        }),
    )?;
    Ok(())
}
