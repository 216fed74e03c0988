//! The AWS listener: the container-credentials endpoint, and the data path of every AWS API call.
//!
//! A call is authenticated by its SigV4 signature (made with hoopguard's pseudo-credentials),
//! classified, decided by the policy (with approvals) and recorded; an allowed call is re-signed
//! with credentials from its connection's broker and forwarded to the AWS endpoint of its service
//! and region (or the connection's endpoint override), and the answer streams back through the
//! masking layer. Refusals use the protocol's own error format, so the SDK and CLI show them.
//!
//! Bodies: a call's body decides what it does (query and JSON APIs, S3 control calls), so it is
//! buffered (up to `aws.max_policy_body`, 413 beyond) and the exact bytes inspected are the ones
//! forwarded. S3 object uploads (`PutObject`, `UploadPart`) are streamed instead: their payload
//! hash is checked as the bytes pass and a mismatch aborts the upstream request; `aws-chunked`
//! framing is removed (chunk signatures checked) and the plain bytes are sent `UNSIGNED-PAYLOAD`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use hoopguard_core::approvals::Asked;
use hoopguard_core::aws::binding::{Binding, Body as BindingBody, shown_headers};
use hoopguard_core::aws::broker::Broker;
use hoopguard_core::aws::chunked::{Dechunker, Framing};
use hoopguard_core::aws::classify::{Classified, ClassifyError, Parts, classify, endpoint_of};
use hoopguard_core::aws::resign::{
    Payload as Signed, forward_headers, sign as resign, upstream_base,
};
use hoopguard_core::aws::routes::Protocol;
use hoopguard_core::aws::{Minter, PRESIGN_PARAMS, SigError, Verified, check_head};
use hoopguard_core::identity::{Identity, Verifier};
use hoopguard_core::policy::{ApprovalSpec, AwsAction, Call, GrantKind};
use hoopguard_core::record::Recorder;
use hoopguard_tower::auth::AuthLayer;
use hoopguard_tower::body::{Budget, Reservation};
use hoopguard_tower::mask::MaskLayer;
use hoopguard_tower::policy::{Guard, Verdict};
use hoopguard_tower::record::Origin;
use hoopguard_tower::record::{RecordLayer, RecordTarget};
use serde_json::{Value, json};

use crate::upstream::{self, BoxBody, BoxError, Client};

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

#[derive(Clone)]
struct AwsState {
    minter: Arc<Minter>,
    guard: Guard,
    recorder: Arc<Recorder>,
    connections: Arc<HashMap<String, Connection>>,
    ttl: Duration,
    upstream_timeout: Duration,
    max_body: usize,
    client: Client,
    unclassified: Option<Arc<ApprovalSpec>>,
    vhost_suffixes: Arc<Vec<String>>,
    /// Bytes of request bodies that may be held at once (`aws.max_buffered`).
    budget: Budget,
    body_read_timeout: Duration,
}

/// The AWS listener's routes.
pub(crate) fn router(setup: AwsSetup) -> Router {
    let state = AwsState {
        minter: setup.minter,
        guard: setup.guard,
        recorder: setup.recorder.clone(),
        connections: Arc::new(setup.connections),
        ttl: setup.ttl,
        upstream_timeout: setup.upstream_timeout,
        max_body: setup.max_body,
        client: setup.client,
        vhost_suffixes: Arc::new(setup.s3_virtual_host_suffixes),
        budget: Budget::new(setup.max_buffered),
        body_read_timeout: setup.body_read_timeout,
        unclassified: (!setup.unclassified_approvers.is_empty()).then(|| {
            Arc::new(ApprovalSpec {
                rule: "aws-unclassified".into(),
                approvers: setup.unclassified_approvers,
                quorum: 1,
                grant: GrantKind::Once,
                window: None,
                expires: Duration::from_secs(3600),
                hold: None,
            })
        }),
    };
    let creds = Router::new()
        .route("/v1/aws/credentials", get(credentials_default))
        .route("/v1/aws/credentials/{connection}", get(credentials))
        .layer(
            AuthLayer::new(setup.verifier)
                .accept_raw_token(true)
                .audiences(setup.audiences),
        )
        .with_state(state.clone());
    // Answers from AWS are masked; the credentials endpoint's own answer is not.
    let calls = tower::ServiceBuilder::new()
        .layer(RecordLayer::new(setup.recorder.clone()))
        .layer(setup.mask)
        .service(axum::handler::HandlerWithoutStateExt::into_service(
            move |req: Request| api_call(State(state.clone()), req),
        ));
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
    let c = match state.minter.mint(who, connection, state.ttl) {
        Ok(c) => c,
        Err(e) => {
            return (
                StatusCode::UNAUTHORIZED,
                axum::Json(json!({"error": "invalid_token", "message": e.to_string()})),
            )
                .into_response();
        }
    };
    // A web-identity connection exchanges the caller's own token now: it is not seen again.
    if let (Ok(session), Some(token)) = (state.minter.open(&c.token), raw_token(headers)) {
        if let Err(e) = conn.broker.prime(&session, token).await {
            tracing::warn!(subject = %who.subject, connection, error = %e, "web-identity exchange failed");
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                axum::Json(json!({"error": "broker_failed", "message": e.to_string()})),
            )
                .into_response();
        }
    }
    tracing::info!(subject = %who.subject, connection, access_key_id = %c.access_key_id, "issued pseudo-credentials");
    let mut resp = axum::Json(c).into_response();
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// The caller's token as sent to the credentials endpoint (raw, or `Bearer …`).
fn raw_token(headers: &HeaderMap) -> Option<&str> {
    let v = header(headers, "authorization")?.trim();
    Some(v.strip_prefix("Bearer ").unwrap_or(v).trim())
}

/// How the caller's protocol wants its errors.
/// How the caller's protocol wants its errors.
enum ErrorFormat {
    Json,
    S3Xml,
    QueryXml,
}

/// The error format for a request: JSON for JSON-protocol requests, S3's XML for S3 (once the
/// signature's scope is known), the query protocols' XML otherwise.
fn error_format(headers: &HeaderMap, service: Option<&str>) -> ErrorFormat {
    let ctype = header(headers, "content-type").unwrap_or("");
    if headers.contains_key("x-amz-target") || ctype.contains("json") {
        return ErrorFormat::Json;
    }
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

/// One configured AWS connection: its broker, where its calls go, the account it reaches.
pub(crate) struct Connection {
    pub(crate) broker: Broker,
    pub(crate) endpoint: Option<String>,
    pub(crate) account: Option<String>,
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// An S3 object upload — a request whose head alone classifies as `PutObject` or `UploadPart`
/// at the S3 endpoint — whose body is streamed rather than buffered. Everything else (S3
/// Control's PUTs among them) is buffered and inspected.
fn is_object_upload(head: &Parts<'_>) -> bool {
    head.service == "s3"
        && head.method == "PUT"
        && classify(head).is_ok_and(|c| {
            c.endpoint == "s3" && matches!(c.operation.as_str(), "PutObject" | "UploadPart")
        })
}

/// The bucket of a virtual-host S3 request: the `Host` is `BUCKET.SUFFIX[:port]` for one of
/// the configured suffixes, and `BUCKET` is a DNS-compatible bucket name.
fn virtual_host_bucket<'a>(
    headers: &'a HeaderMap,
    service: &str,
    suffixes: &[String],
) -> Option<&'a str> {
    if service != "s3" {
        return None;
    }
    let host = header(headers, "host")?;
    let host = host.rsplit_once(':').map_or(host, |(h, port)| {
        if port.bytes().all(|b| b.is_ascii_digit()) {
            h
        } else {
            host
        }
    });
    suffixes.iter().find_map(|suffix| {
        let bucket = host.strip_suffix(suffix.as_str())?.strip_suffix('.')?;
        let ok = (3..=63).contains(&bucket.len())
            && bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
            && bucket
                .bytes()
                .next()
                .is_some_and(|b| b.is_ascii_alphanumeric());
        ok.then_some(bucket)
    })
}

/// How the payload of a call reaches upstream.
enum Payload {
    /// Buffered, inspected, forwarded as is; with its hex SHA-256 (hashed once: it serves the
    /// caller's signature, the approval binding and the upstream signature).
    Buffered(Bytes, String),
    /// Streamed: checked against the declared hash as it passes.
    Hashed(Body, String),
    /// Streamed `UNSIGNED-PAYLOAD`.
    Unsigned(Body),
    /// Streamed `aws-chunked`, de-framed.
    Chunked(Body, Framing),
}

/// A buffered body and the share of `aws.max_buffered` it holds until the call is done.
struct Buffered {
    bytes: Bytes,
    _reserved: Option<Reservation>,
}

/// Reads a body that decides what the call does, within `aws.max_policy_body`, the memory
/// budget shared by all calls, and `aws.body_read_timeout`.
async fn read_body(
    state: &AwsState,
    headers: &HeaderMap,
    body: Body,
) -> Result<Buffered, (StatusCode, &'static str, String)> {
    let too_large = || {
        (
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestEntityTooLarge",
            format!(
                "the request body is larger than hoopguard inspects ({} bytes, `aws.max_policy_body`)",
                state.max_body
            ),
        )
    };
    let declared: Option<usize> = header(headers, "content-length").and_then(|v| v.parse().ok());
    if declared.is_some_and(|n| n > state.max_body) {
        return Err(too_large());
    }
    let want = declared.unwrap_or(state.max_body).min(state.max_body);
    let reserved = state.budget.try_reserve(want).ok_or_else(|| {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "SlowDown",
            "hoopguard holds as many request bodies as it may at once (`aws.max_buffered`); retry shortly".to_string(),
        )
    })?;
    match tokio::time::timeout(
        state.body_read_timeout,
        axum::body::to_bytes(body, state.max_body),
    )
    .await
    {
        Err(_) => Err((
            StatusCode::REQUEST_TIMEOUT,
            "RequestTimeout",
            format!(
                "the request body did not arrive within {} (`aws.body_read_timeout`)",
                humantime::format_duration(state.body_read_timeout)
            ),
        )),
        Ok(Err(_)) => Err(too_large()),
        Ok(Ok(bytes)) => Ok(Buffered {
            bytes,
            _reserved: Some(reserved),
        }),
    }
}

/// The request's headers as name/value pairs (names are lower case in `http`).
fn pairs(headers: &HeaderMap) -> Vec<(&str, &[u8])> {
    headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_bytes()))
        .collect()
}

async fn api_call(State(state): State<AwsState>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let mut format = error_format(&parts.headers, None);
    if ["x-forwarded-host", "forwarded", "x-forwarded-server"]
        .iter()
        .any(|h| parts.headers.contains_key(*h))
    {
        return aws_error(
            &format,
            StatusCode::BAD_REQUEST,
            "InvalidRequest",
            "hoopguard does not accept Forwarded/X-Forwarded-* headers: the AWS endpoint is chosen by the connection, never by the request",
        );
    }
    let headers = pairs(&parts.headers);
    let raw_query = parts.uri.query().unwrap_or("");
    let sig_req = hoopguard_core::aws::Request {
        method: parts.method.as_str(),
        path: parts.uri.path(),
        query: raw_query,
        headers: &headers,
        body_sha256: None,
    };
    // Who is calling, from the head alone: a caller with unknown keys, an expired session or a
    // skewed clock is refused before a byte of its body is read.
    let head = match check_head(&state.minter, &sig_req, SystemTime::now()) {
        Ok(h) => h,
        Err(e) => return refuse_signature(&format, &e),
    };
    format = error_format(&parts.headers, Some(&head.service));
    let refuse = |status, code: &str, msg: &str| aws_error(&format, status, code, msg);
    // A revoked credential session is over, whatever its credentials say.
    let session = format!("aws-{}", head.session.sid);
    if state.recorder.state(&session).is_some_and(|s| s.revoked) {
        tracing::info!(subject = %head.session.subject, session, "refused a call of a revoked session");
        return refuse(
            StatusCode::FORBIDDEN,
            "AccessDenied",
            "this credential session was revoked by an operator; its calls are refused",
        );
    }
    let declared = head.declared_payload().map(str::to_string);
    let framing = declared.as_deref().and_then(Framing::from_content_sha256);
    if declared
        .as_deref()
        .is_some_and(|d| d.starts_with("STREAMING-") && framing.is_none())
    {
        return refuse(
            StatusCode::BAD_REQUEST,
            "InvalidRequest",
            &format!(
                "hoopguard does not accept the payload signing mode `{}`; use signed payloads, UNSIGNED-PAYLOAD, STREAMING-AWS4-HMAC-SHA256-PAYLOAD or STREAMING-UNSIGNED-PAYLOAD-TRAILER",
                declared.as_deref().unwrap_or("")
            ),
        );
    }
    let conn_name = head.session.connection.clone();
    let Some(conn) = state.connections.get(&conn_name) else {
        return refuse(
            StatusCode::FORBIDDEN,
            "AccessDenied",
            &format!("the AWS connection `{conn_name}` is no longer configured"),
        );
    };
    // What will be forwarded is what is classified, bound and recorded. A presigned URL's
    // signature is the caller's: it neither names an operation nor goes upstream.
    let query = raw_query
        .split('&')
        .filter(|kv| {
            let signature =
                head.presigned && PRESIGN_PARAMS.contains(&kv.split('=').next().unwrap_or(""));
            !kv.is_empty() && !signature
        })
        .collect::<Vec<_>>()
        .join("&");
    // A virtual-host S3 request (`Host: bucket.localhost`) is classified and sent path-style.
    let path = match virtual_host_bucket(&parts.headers, &head.service, &state.vhost_suffixes) {
        Some(bucket) if parts.uri.path() == "/" => format!("/{bucket}"),
        Some(bucket) => format!("/{bucket}{}", parts.uri.path()),
        None => parts.uri.path().to_string(),
    };
    let head_only = forward_headers(&parts.headers, false);
    let head_pairs = pairs(&head_only);
    let streamed = declared.is_some()
        && is_object_upload(&Parts {
            method: parts.method.as_str(),
            path: &path,
            query: &query,
            headers: &head_pairs,
            body: None,
            service: &head.service,
            region: &head.region,
            account: conn.account.as_deref(),
        });
    let mut body = Some(body);
    // Buffer what decides policy; leave object uploads streaming.
    let buffered = if streamed {
        Buffered {
            bytes: Bytes::new(),
            _reserved: None,
        }
    } else {
        match read_body(&state, &parts.headers, body.take().expect("set")).await {
            Ok(b) => b,
            Err((status, code, msg)) => return refuse(status, code, &msg),
        }
    };
    let body_hash = (!streamed).then(|| hoopguard_core::aws::sha256_hex(&buffered.bytes));
    let verified = match head.verify(&hoopguard_core::aws::Request {
        body_sha256: body_hash.as_deref(),
        ..sig_req
    }) {
        Ok(v) => v,
        Err(e) => return refuse_signature(&format, &e),
    };
    // What the body is, now that the signature over its declared hash holds.
    let payload = match (streamed, framing, declared.as_deref()) {
        (true, Some(f), _) => Payload::Chunked(body.take().expect("set"), f),
        (true, None, Some("UNSIGNED-PAYLOAD")) => Payload::Unsigned(body.take().expect("set")),
        (true, None, Some(hash)) => Payload::Hashed(body.take().expect("set"), hash.to_string()),
        (false, Some(f), _) => {
            // A small framed body: de-frame it whole, so it can be inspected.
            let mut d = Dechunker::new(f, Some(verified.chunk_seed()), None);
            let decoded = d.push(&buffered.bytes).and_then(|out| {
                d.finish()?;
                Ok(out.concat())
            });
            match decoded {
                Ok(b) => {
                    let hash = hoopguard_core::aws::sha256_hex(&b);
                    Payload::Buffered(Bytes::from(b), hash)
                }
                Err(e) => {
                    return refuse(
                        StatusCode::BAD_REQUEST,
                        "InvalidChunkSizeError",
                        &e.to_string(),
                    );
                }
            }
        }
        (false, None, Some(hash))
            if hash != "UNSIGNED-PAYLOAD" && Some(hash) != body_hash.as_deref() =>
        {
            return refuse(
                StatusCode::BAD_REQUEST,
                "XAmzContentSHA256Mismatch",
                "the body's SHA-256 is not the x-amz-content-sha256 the request was signed with",
            );
        }
        _ => Payload::Buffered(buffered.bytes.clone(), body_hash.unwrap_or_default()),
    };
    let dechunked = matches!(payload, Payload::Chunked(..));
    let forwarded = forward_headers(&parts.headers, dechunked);
    let inspected: Option<&[u8]> = match &payload {
        Payload::Buffered(b, _) => Some(b),
        _ => None,
    };
    let who = verified.session.identity();
    let forwarded_pairs = pairs(&forwarded);
    let length = |name: &str| header(&parts.headers, name).and_then(|v| v.parse().ok());
    let exact = Exact {
        connection: &conn_name,
        method: parts.method.as_str(),
        path: &path,
        query: &query,
        headers: &forwarded_pairs,
        body: match &payload {
            Payload::Buffered(_, h) | Payload::Hashed(_, h) => BindingBody::Sha256(h),
            Payload::Unsigned(_) => BindingBody::Unsigned {
                length: length("content-length"),
            },
            Payload::Chunked(..) => BindingBody::Unsigned {
                length: length("x-amz-decoded-content-length"),
            },
        },
        bytes: inspected.map(<[u8]>::len),
    };
    // The headers that reach AWS are the ones read: one named in `Connection`, dropped before
    // forwarding, changes nothing there and so nothing here.
    let classified = classify(&Parts {
        method: parts.method.as_str(),
        path: &path,
        query: &query,
        headers: &forwarded_pairs,
        body: inspected,
        service: &verified.service,
        region: &verified.region,
        account: conn.account.as_deref(),
    });
    let (classified, verdict) = decide(&state, &who, &verified, &exact, classified).await;
    // Record the call before answering; a call that cannot be recorded is refused.
    let asked = Recorded {
        origin: Origin::of(&parts.headers, &parts.extensions),
        exact: &exact,
        content_type: header(&parts.headers, "content-type").unwrap_or(""),
        body: inspected,
    };
    if let Err(e) = record(
        &state.recorder,
        &session,
        &verified,
        &asked,
        &classified,
        &verdict,
    ) {
        tracing::error!(error = %e, "cannot record the call; refusing it");
        return refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
            "refused because the call could not be recorded; try again later",
        );
    }
    match verdict {
        Verdict::Allow { .. } => {}
        Verdict::Deny { reason, rule } => {
            // A request hoopguard cannot read unambiguously is malformed, not forbidden.
            let (status, code) = match rule.as_deref() {
                Some(UNREADABLE) => (StatusCode::BAD_REQUEST, "InvalidRequest"),
                _ => (StatusCode::FORBIDDEN, "AccessDenied"),
            };
            return refuse(status, code, &reason);
        }
        Verdict::Pending { approval, reason } => {
            return refuse(
                StatusCode::FORBIDDEN,
                "AccessDenied",
                &format!(
                    "{reason}. Approval {id} is pending: an approver runs `hoopguard approvals approve {id}`; then retry the same call.",
                    id = approval.id
                ),
            );
        }
        Verdict::Unavailable { reason } => {
            return refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailable",
                &format!("refused because the approval store failed ({reason}); try again later"),
            );
        }
    }
    let sent = Outgoing {
        method: &parts.method,
        path: &path,
        query: &query,
        headers: forwarded,
        endpoint: &classified.endpoint,
        incoming: &parts.headers,
    };
    let resp = forward(&state, conn, sent, &verified, payload).await;
    let mut resp = match resp {
        Ok(r) => r,
        Err((status, code, msg)) => {
            tracing::warn!(subject = %verified.session.subject, code, "could not forward an AWS call");
            refuse(status, code, &msg)
        }
    };
    drop(buffered);
    // The answer is recorded (masked) by the RecordLayer when its body ends.
    resp.extensions_mut().insert(RecordTarget { session });
    resp
}

/// A refusal of the caller's signature, in the protocol's format.
fn refuse_signature(format: &ErrorFormat, e: &SigError) -> Response {
    tracing::info!(reason = e.aws_code(), "refused an AWS call");
    let status = match e {
        SigError::Unsupported(_) | SigError::Malformed(_) => StatusCode::BAD_REQUEST,
        _ => StatusCode::FORBIDDEN,
    };
    aws_error(format, status, e.aws_code(), &e.to_string())
}

/// The rule name of refusals of requests that cannot be read unambiguously.
const UNREADABLE: &str = "hoopguard:unreadable-request";

/// The exact request as it will reach AWS: what a `once` grant binds, what the approver sees,
/// what is recorded.
struct Exact<'a> {
    connection: &'a str,
    method: &'a str,
    path: &'a str,
    query: &'a str,
    headers: &'a [(&'a str, &'a [u8])],
    body: BindingBody<'a>,
    bytes: Option<usize>,
}

impl Exact<'_> {
    fn binding(&self, verified: &Verified) -> String {
        Binding {
            service: &verified.service,
            region: &verified.region,
            connection: self.connection,
            method: self.method,
            path: self.path,
            query: self.query,
            headers: self.headers,
            body: self.body,
        }
        .digest()
    }

    /// The query as name → value (repeated names as lists), decoded.
    fn query_json(&self) -> Value {
        let mut out = serde_json::Map::new();
        for (k, v) in hoopguard_core::aws::pct::pairs(self.query).unwrap_or_default() {
            match out.get_mut(&k) {
                Some(Value::Array(a)) => a.push(Value::String(v)),
                Some(prev) => *prev = Value::Array(vec![prev.take(), Value::String(v)]),
                None => {
                    out.insert(k, Value::String(v));
                }
            }
        }
        Value::Object(out)
    }

    fn body_json(&self) -> Value {
        match self.body {
            BindingBody::Sha256(h) => json!({"sha256": h, "bytes": self.bytes}),
            BindingBody::Unsigned { length } => json!({"streamed": true, "bytes": length}),
        }
    }

    /// Everything the approver is shown (masked by the approvals before it is stored).
    fn details(&self, verified: &Verified, c: &Classified) -> Value {
        let mut d = json!({
            "service": verified.service,
            "region": verified.region,
            "connection": self.connection,
            "operation": c.operation,
            "protocol": c.protocol.as_str(),
            "method": self.method,
            "path": self.path,
            "query": self.query_json(),
            "params": c.params,
            "headers": shown_headers(self.headers),
            "body": self.body_json(),
        });
        if verified.service == "s3" {
            d["bucket"] = c.params["path"]["Bucket"].clone();
            d["key"] = c.params["path"]["Key"].clone();
        }
        // An approver reads this in a terminal or a browser: a body of megabytes is named, not
        // pasted.
        if serde_json::to_vec(&d["params"]).map_or(0, |v| v.len()) > 256 * 1024 {
            d["params"] = json!(
                "(over 256 KiB of parameters: too large to show; deny and ask for a smaller call)"
            );
        }
        d
    }
}

/// Classification, policy and approvals for one call.
async fn decide(
    state: &AwsState,
    who: &Identity,
    verified: &Verified,
    exact: &Exact<'_>,
    classified: Result<Classified, ClassifyError>,
) -> (Classified, Verdict) {
    let placeholder = |action: String, operation: &str| Classified {
        operation: operation.into(),
        protocol: Protocol::RestJson,
        endpoint: endpoint_of(&verified.service),
        call: Call::Aws {
            actions: vec![AwsAction {
                action,
                resources: Vec::new(),
                access: None,
            }],
            region: Some(verified.region.clone()),
        },
        params: Value::Null,
    };
    match classified {
        Ok(c) => {
            let asked = || {
                Some(Asked {
                    binding: Some(exact.binding(verified)),
                    details: exact.details(verified, &c),
                })
            };
            let verdict = state.guard.authorize_with(who, &c.call, asked).await;
            (c, verdict)
        }
        Err(ClassifyError::Refused(why)) => {
            tracing::info!(subject = %verified.session.subject, service = %verified.service, "refused an AWS call hoopguard cannot read unambiguously");
            let c = placeholder(format!("{}:unreadable", verified.service), "unreadable");
            let verdict = Verdict::Deny {
                rule: Some(UNREADABLE.into()),
                reason: format!("hoopguard refuses this request: {why}"),
            };
            (c, verdict)
        }
        Err(ClassifyError::Unknown(why)) => {
            let c = placeholder(format!("{}:unclassified", verified.service), "unclassified");
            let Some(spec) = &state.unclassified else {
                tracing::info!(subject = %verified.session.subject, service = %verified.service, "refused an unclassified AWS call");
                let verdict = Verdict::Deny {
                    rule: None,
                    reason: format!(
                        "hoopguard could not classify this call, so it is refused: {why}"
                    ),
                };
                return (c, verdict);
            };
            // The operator asked for a human to judge what hoopguard cannot: the exact request
            // is what is approved, once.
            let reason = format!(
                "hoopguard could not classify this call ({why}); it needs approval by {}",
                spec.approvers.join(", ")
            );
            let asked = Asked {
                binding: Some(exact.binding(verified)),
                details: exact.details(verified, &c),
            };
            let verdict = state
                .guard
                .approve(who, &c.call, spec, Some(&asked), reason)
                .await;
            (c, verdict)
        }
    }
}

type Refusal = (StatusCode, &'static str, String);

/// What goes upstream, besides the payload.
struct Outgoing<'a> {
    method: &'a axum::http::Method,
    path: &'a str,
    query: &'a str,
    headers: HeaderMap,
    endpoint: &'a str,
    incoming: &'a HeaderMap,
}

/// Re-signs the call with brokered credentials and sends it upstream.
async fn forward(
    state: &AwsState,
    conn: &Connection,
    out: Outgoing<'_>,
    verified: &Verified,
    payload: Payload,
) -> Result<Response, Refusal> {
    let conn_name = &verified.session.connection;
    let creds = conn
        .broker
        .credentials(&verified.session)
        .await
        .map_err(|e| {
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailable",
                format!(
                    "hoopguard could not get AWS credentials for connection `{conn_name}`: {e}"
                ),
            )
        })?;
    let base = upstream_base(out.endpoint, &verified.region, conn.endpoint.as_deref())
        .map_err(|e| (StatusCode::BAD_REQUEST, "InvalidRequest", e.to_string()))?;
    let url = if out.query.is_empty() {
        format!("{base}{}", out.path)
    } else {
        format!("{base}{}?{}", out.path, out.query)
    };
    let mut headers = out.headers;
    let length = |n: u64| HeaderValue::from(n);
    let body_error: Arc<std::sync::Mutex<Option<String>>> = Default::default();
    let gap = state.body_read_timeout;
    let (signed, body, len): (Signed, BoxBody, Option<u64>) = match payload {
        Payload::Buffered(b, hash) => {
            let n = b.len() as u64;
            (Signed::Sha256(hash), full(b), Some(n))
        }
        Payload::Hashed(body, hash) => {
            let n = header(out.incoming, "content-length").and_then(|v| v.parse().ok());
            let check = Check::Hash(
                aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256),
                hash.clone(),
            );
            (
                Signed::Sha256(hash),
                checked(body, check, body_error.clone(), gap),
                n,
            )
        }
        Payload::Unsigned(body) => {
            let n = header(out.incoming, "content-length").and_then(|v| v.parse().ok());
            (
                Signed::Unsigned,
                checked(body, Check::Pass, body_error.clone(), gap),
                n,
            )
        }
        Payload::Chunked(body, framing) => {
            let n: Option<u64> =
                header(out.incoming, "x-amz-decoded-content-length").and_then(|v| v.parse().ok());
            if n.is_none() {
                return Err((
                    StatusCode::LENGTH_REQUIRED,
                    "MissingContentLength",
                    "an aws-chunked upload needs x-amz-decoded-content-length".into(),
                ));
            }
            let d = Dechunker::new(framing, Some(verified.chunk_seed()), n);
            (
                Signed::Unsigned,
                checked(body, Check::Dechunk(Box::new(d)), body_error.clone(), gap),
                n,
            )
        }
    };
    if let Some(n) = len {
        headers.insert(header::CONTENT_LENGTH, length(n));
    }
    resign(
        out.method.as_str(),
        &url,
        &mut headers,
        &signed,
        &verified.service,
        &verified.region,
        &creds,
        SystemTime::now(),
    )
    .map_err(|e| (StatusCode::BAD_GATEWAY, "InternalFailure", e.to_string()))?;
    let mut upstream = axum::http::Request::builder()
        .method(out.method.clone())
        .uri(&url)
        .body(body)
        .map_err(|e| (StatusCode::BAD_REQUEST, "InvalidRequest", e.to_string()))?;
    *upstream.headers_mut() = headers;
    let sent = tokio::time::timeout(state.upstream_timeout, state.client.request(upstream)).await;
    let resp = match sent {
        Err(_) => {
            return Err((
                StatusCode::GATEWAY_TIMEOUT,
                "RequestTimeout",
                format!(
                    "{base} did not answer within {} (`aws.upstream_timeout`)",
                    humantime::format_duration(state.upstream_timeout)
                ),
            ));
        }
        Ok(Err(e)) => {
            if let Some(why) = body_error.lock().unwrap_or_else(|p| p.into_inner()).take() {
                return Err((StatusCode::BAD_REQUEST, "InvalidRequest", why));
            }
            return Err((
                StatusCode::BAD_GATEWAY,
                "ServiceUnavailable",
                format!("hoopguard could not reach {base}: {}", upstream::cause(&e)),
            ));
        }
        Ok(Ok(r)) => r,
    };
    Ok(upstream::answer(resp))
}

fn full(b: Bytes) -> BoxBody {
    use http_body_util::BodyExt;
    http_body_util::Full::new(b)
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// What a streamed body is checked with on its way upstream.
enum Check {
    Pass,
    Hash(aws_lc_rs::digest::Context, String),
    Dechunk(Box<Dechunker>),
}

impl Check {
    fn push(&mut self, data: Bytes) -> Result<Bytes, String> {
        match self {
            Check::Pass => Ok(data),
            Check::Hash(ctx, _) => {
                ctx.update(&data);
                Ok(data)
            }
            Check::Dechunk(d) => {
                let mut out = d.push(&data).map_err(|e| e.to_string())?;
                Ok(if out.len() == 1 {
                    out.pop().expect("one")
                } else {
                    Bytes::from(out.concat())
                })
            }
        }
    }

    fn finish(self) -> Result<(), String> {
        match self {
            Check::Pass => Ok(()),
            Check::Hash(ctx, expected) => {
                if hex::encode(ctx.finish()) == expected {
                    Ok(())
                } else {
                    Err("the body's SHA-256 is not the x-amz-content-sha256 the request was signed with; the upload was aborted".into())
                }
            }
            Check::Dechunk(d) => d.finish().map_err(|e| e.to_string()),
        }
    }
}

/// A streamed request body checked as it passes; a failed check, or a pause longer than `gap`,
/// ends it with an error, which aborts the upstream request (it never completes with wrong
/// bytes).
fn checked(
    body: Body,
    check: Check,
    error: Arc<std::sync::Mutex<Option<String>>>,
    gap: Duration,
) -> BoxBody {
    use futures_util::StreamExt;
    use http_body_util::BodyExt;
    let stream = futures_util::stream::unfold(
        (body.into_data_stream(), Some(check)),
        move |(mut s, check)| {
            let error = error.clone();
            async move {
                let mut check = check?;
                let fail = |why: String| {
                    *error.lock().unwrap_or_else(|p| p.into_inner()) = Some(why.clone());
                    Err::<http_body::Frame<Bytes>, BoxError>(why.into())
                };
                let Ok(next) = tokio::time::timeout(gap, s.next()).await else {
                    return Some((
                        fail(format!(
                            "the upload paused for more than {} (`aws.body_read_timeout`); it was aborted",
                            humantime::format_duration(gap)
                        )),
                        (s, None),
                    ));
                };
                match next {
                    Some(Ok(data)) => match check.push(data) {
                        Ok(out) => Some((Ok(http_body::Frame::data(out)), (s, Some(check)))),
                        Err(why) => Some((fail(why), (s, None))),
                    },
                    Some(Err(e)) => Some((Err(Box::new(e) as BoxError), (s, None))),
                    None => match check.finish() {
                        Ok(()) => None,
                        Err(why) => Some((fail(why), (s, None))),
                    },
                }
            }
        },
    );
    http_body_util::StreamBody::new(stream).boxed_unsync()
}

/// What the caller sent, for the recording.
struct Recorded<'a> {
    origin: Origin,
    exact: &'a Exact<'a>,
    content_type: &'a str,
    /// The buffered body (streamed ones are not recorded, only their size).
    body: Option<&'a [u8]>,
}

/// One pseudo-credential session is one recording: a `start` event the first time it is seen
/// (and again when it goes on after an `end`, e.g. after a restart), then one `call` event per
/// call with what was asked — the query, the headers that reach AWS and the body, all masked,
/// the body capped — and decided. No credentials or tokens are recorded. The session's end is
/// recorded when its credentials expire.
fn record(
    recorder: &Arc<Recorder>,
    session: &str,
    verified: &Verified,
    asked: &Recorded<'_>,
    classified: &Classified,
    verdict: &Verdict,
) -> Result<(), hoopguard_core::record::RecordError> {
    let state = recorder.state(session);
    if state.is_none_or(|s| s.ended) {
        recorder.record(
            session,
            "start",
            json!({
                "subject": verified.session.subject,
                "groups": verified.session.groups,
                "connection": verified.session.connection,
                "client": asked.origin.addr,
                "user_agent": asked.origin.user_agent,
                "expires_at": verified.session.exp,
                "resumed": state.is_some(),
            }),
        )?;
        // From then on its pseudo-credentials are refused: the session is over.
        recorder.end_at(
            session,
            std::time::UNIX_EPOCH + Duration::from_secs(verified.session.exp),
            "token expired",
        );
    }
    let (rule, approval_id, reason) = verdict.parts();
    let body = asked
        .body
        .and_then(|b| recorder.mask_body(b, asked.content_type));
    let exact = asked.exact;
    recorder.record(
        session,
        "call",
        json!({
            "service": verified.service,
            "region": verified.region,
            "operation": classified.operation,
            "action": recorder.mask_text(&classified.call.summary()),
            "decision": verdict.decision(),
            "rule": rule,
            "approval_id": approval_id,
            "reason": reason.map(|r| recorder.mask_text(&r)),
            "request": {
                "method": exact.method,
                "path": recorder.mask_text(exact.path),
                "query": recorder.mask_value(&exact.query_json()),
                "headers": recorder.mask_value(&shown_headers(exact.headers)),
                "content_type": asked.content_type,
                "bytes": asked.body.map(<[u8]>::len),
                "body": body,
            },
        }),
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_session_ends_when_its_credentials_expire() {
        let dir = tempfile::tempdir().unwrap();
        let rec = Arc::new(
            Recorder::open(dir.path(), hoopguard_core::record::Durability::Batched).unwrap(),
        );
        rec.append("aws-s1", "start", json!({})).unwrap();
        let now = SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        rec.end_at(
            "aws-s1",
            std::time::UNIX_EPOCH + Duration::from_secs(now + 1),
            "token expired",
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(!rec.state("aws-s1").unwrap().ended, "not before expiry");
        tokio::time::sleep(Duration::from_millis(2200)).await;
        assert!(rec.state("aws-s1").unwrap().ended);
        let events = hoopguard_core::record::read_session(dir.path(), "aws-s1").unwrap();
        assert_eq!(events.last().unwrap().data["reason"], "token expired");
    }

    #[test]
    fn only_object_uploads_stream() {
        let head = |method: &'static str, path: &'static str, query: &'static str| {
            is_object_upload(&Parts {
                method,
                path,
                query,
                headers: &[("x-amz-account-id", b"123456789012")],
                body: None,
                service: "s3",
                region: "us-east-1",
                account: None,
            })
        };
        assert!(head("PUT", "/b/k", ""));
        assert!(head("PUT", "/b/k", "partNumber=1&uploadId=u"));
        // S3 Control's PUTs look like object paths but are buffered and inspected.
        assert!(!head(
            "PUT",
            "/v20180820/configuration/publicAccessBlock",
            ""
        ));
        assert!(!head("PUT", "/b/k", "tagging"));
        assert!(!head("POST", "/b/k", "uploads"));
    }

    #[test]
    fn virtual_host_buckets_only_under_the_configured_suffixes() {
        let suffixes = vec!["localhost".to_string(), "s3.gw.internal".to_string()];
        let bucket = |host: &str, service: &str| {
            let mut h = HeaderMap::new();
            h.insert("host", HeaderValue::from_str(host).unwrap());
            virtual_host_bucket(&h, service, &suffixes).map(str::to_string)
        };
        assert_eq!(
            bucket("team-bucket.localhost:8787", "s3").as_deref(),
            Some("team-bucket")
        );
        assert_eq!(
            bucket("logs.2026.s3.gw.internal", "s3").as_deref(),
            Some("logs.2026")
        );
        assert_eq!(bucket("localhost:8787", "s3"), None);
        assert_eq!(bucket("127.0.0.1:8787", "s3"), None);
        assert_eq!(bucket("team-bucket.evil.example", "s3"), None);
        assert_eq!(bucket("Bad_Bucket.localhost", "s3"), None);
        assert_eq!(bucket("ab.localhost", "s3"), None);
        assert_eq!(bucket("team-bucket.localhost", "ec2"), None);
        assert_eq!(bucket("team-bucketlocalhost", "s3"), None);
    }
}
