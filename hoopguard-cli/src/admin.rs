//! The admin listener: health, readiness, metrics, the development issuer, and the authenticated
//! API (`/v1/…`) for approvers and for other gateways asking for decisions.
//!
//! | method and path | does |
//! | --- | --- |
//! | `GET /healthz`, `GET /readyz`, `GET /metrics` | unauthenticated probes |
//! | `GET /dev/.well-known/openid-configuration`, `GET /dev/jwks` | the development issuer |
//! | `GET /v1/approvals?status=pending` | approvals the caller asked for or may decide |
//! | `GET /v1/approvals/{id}` | one approval |
//! | `POST /v1/approvals/{id}/approve` `{"reason": "…"}` | an approver's yes |
//! | `POST /v1/approvals/{id}/deny` `{"reason": "…"}` | an approver's no (reason required) |
//! | `POST /v1/authorize` `{"call": {…}, "binding": "…", "details": {…}}` | decide a call for the caller (a `once` grant is used by it; `binding` — `body_sha256` is its older name — binds the grant to the exact request, `details` is what approvers see, masked) |
//! | `GET /v1/sessions?subject=&since=&action=&decision=&limit=` | recorded sessions (approvers and auditors only) |
//! | `GET /v1/sessions-digest-key` | the public key of the signed digests (approvers and auditors only) |
//! | `GET /v1/sessions/{id}` | one session's events |
//! | `GET /v1/sessions/{id}/verify` | checks its hash chain: `{"ok": false, "event": N, "problem": "…"}` when broken |
//! | `POST /v1/sessions/{id}/revoke` `{"reason": "…"}` | ends the session as `revoked`; its calls are refused from then on |

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use hoopguard_core::approvals::{Status, VoteError};
use hoopguard_core::identity::dev::DevIssuer;
use hoopguard_core::identity::{Identity, IssuerVerifier, Verifier};
use hoopguard_core::policy::Call;
use hoopguard_core::record::RecordError;
use hoopguard_tower::auth::AuthLayer;
use hoopguard_tower::metrics::Metrics;
use hoopguard_tower::policy::{Guard, Site, Verdict};
use serde::Deserialize;
use serde_json::{Value, json};

/// What the admin handlers share.
#[derive(Clone)]
pub(crate) struct AdminState {
    pub(crate) verifier: Arc<Verifier>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) dev: Option<Arc<DevIssuer>>,
    pub(crate) guard: Guard,
    /// Where the recordings are read.
    pub(crate) recordings: crate::sessions_cli::Recordings,
    /// The gateway's recorder (revocations are recorded through it).
    pub(crate) recorder: Arc<hoopguard_core::record::Recorder>,
    /// The token audiences the admin API accepts.
    pub(crate) audiences: Vec<String>,
    /// Groups that may read recordings besides the policy's approvers (`record.auditors` and
    /// the approvers of unclassified AWS calls and changed MCP tools).
    pub(crate) auditors: Arc<Vec<String>>,
    /// The database replicas share (`[store] url`), if configured: revocations go there, and
    /// `/readyz` checks it.
    pub(crate) shared: Option<hoopguard_core::shared::Database>,
}

/// The admin listener's routes.
pub(crate) fn router(state: AdminState) -> Router {
    let api = Router::new()
        .route("/v1/approvals", get(list_approvals))
        .route("/v1/approvals/{id}", get(show_approval))
        .route("/v1/approvals/{id}/approve", post(approve))
        .route("/v1/approvals/{id}/deny", post(deny))
        .route("/v1/authorize", post(authorize))
        .route("/v1/sessions", get(list_sessions))
        .route("/v1/sessions-digest-key", get(digest_key))
        .route("/v1/sessions/{id}", get(show_session))
        .route("/v1/sessions/{id}/verify", get(verify_session))
        .route("/v1/sessions/{id}/revoke", post(revoke_session))
        .layer(AuthLayer::new(state.verifier.clone()).audiences(state.audiences.clone()));
    let mut r = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .merge(api);
    if let Some(path) = state.dev.as_ref().and_then(|d| url_path(d.issuer())) {
        r = r
            .route(
                &format!("{path}/.well-known/openid-configuration"),
                get(|State(s): State<AdminState>| async move {
                    Json(s.dev.map(|d| d.discovery()).unwrap_or_default())
                }),
            )
            .route(
                &format!("{path}/jwks"),
                get(|State(s): State<AdminState>| async move {
                    Json(s.dev.map(|d| d.jwks()).unwrap_or_default())
                }),
            );
    }
    r.fallback(|| async {
        error(
            StatusCode::NOT_FOUND,
            "not_found",
            "no such admin endpoint; see /healthz, /readyz, /metrics and /v1/approvals".into(),
        )
    })
    .with_state(state)
}

fn error(status: StatusCode, code: &str, message: String) -> Response {
    (status, Json(json!({"error": code, "message": message}))).into_response()
}

/// The path of an `http(s)://host[:port]/path` URL (empty for none); `None` if not such a URL.
fn url_path(url: &str) -> Option<String> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))?;
    Some(match rest.find('/') {
        Some(i) => rest[i..].trim_end_matches('/').to_string(),
        None => String::new(),
    })
}

async fn readyz(State(s): State<AdminState>) -> Response {
    let issuers: Vec<_> = s
        .verifier
        .issuers()
        .map(|i| json!({"issuer": i.issuer(), "keys": i.has_keys()}))
        .collect();
    let mut ready = s.verifier.issuers().all(IssuerVerifier::has_keys);
    let store = match &s.shared {
        None => json!({"kind": "embedded", "ok": true}),
        Some(db) => {
            let answer = tokio::time::timeout(std::time::Duration::from_secs(2), db.ping()).await;
            // The probe is unauthenticated: the details go to the log, not the answer.
            let (ok, error) = match answer {
                Ok(Ok(())) => (true, None),
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "readiness: the shared store does not answer");
                    (false, Some("the database does not answer (see the log)"))
                }
                Err(_) => (false, Some("the database gave no answer within 2s")),
            };
            // Answering while revocations are stale would send calls to certain refusal.
            let fresh = s.recorder.revoked().is_none_or(|r| r.is_fresh());
            ready &= ok && fresh;
            json!({"kind": "postgres", "ok": ok, "revocations_current": fresh, "error": error})
        }
    };
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(json!({"ready": ready, "issuers": issuers, "store": store})),
    )
        .into_response()
}

async fn metrics(State(s): State<AdminState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        s.metrics.encode(),
    )
        .into_response()
}

#[derive(Deserialize)]
struct ListQuery {
    status: Option<String>,
}

async fn list_approvals(
    State(s): State<AdminState>,
    Extension(who): Extension<Arc<Identity>>,
    Query(q): Query<ListQuery>,
) -> Response {
    let status = match q.status.as_deref() {
        None | Some("all") => None,
        Some(name) => match Status::parse(name) {
            Some(st) => Some(st),
            None => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "bad_request",
                    format!(
                        "unknown status `{name}`; use pending, approved, denied, expired, used or all"
                    ),
                );
            }
        },
    };
    match s.guard.approvals().visible_to(&who, status).await {
        Ok(list) => Json(json!({"approvals": list})).into_response(),
        Err(e) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            e.to_string(),
        ),
    }
}

async fn show_approval(
    State(s): State<AdminState>,
    Extension(who): Extension<Arc<Identity>>,
    Path(id): Path<String>,
) -> Response {
    match s.guard.approvals().get_for(&who, &id).await {
        Ok(Some(a)) => Json(a).into_response(),
        Ok(None) => error(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no approval `{id}` that you asked for or may decide"),
        ),
        Err(e) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            e.to_string(),
        ),
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct VoteBody {
    reason: Option<String>,
}

async fn approve(
    State(s): State<AdminState>,
    Extension(who): Extension<Arc<Identity>>,
    Path(id): Path<String>,
    body: Option<Json<VoteBody>>,
) -> Response {
    let reason = body.and_then(|b| b.0.reason);
    vote(&s, &who, &id, true, reason).await
}

async fn deny(
    State(s): State<AdminState>,
    Extension(who): Extension<Arc<Identity>>,
    Path(id): Path<String>,
    body: Option<Json<VoteBody>>,
) -> Response {
    let reason = body
        .and_then(|b| b.0.reason)
        .filter(|r| !r.trim().is_empty());
    if reason.is_none() {
        return error(
            StatusCode::BAD_REQUEST,
            "reason_required",
            "a denial needs a reason: {\"reason\": \"…\"}".into(),
        );
    }
    vote(&s, &who, &id, false, reason).await
}

async fn vote(
    s: &AdminState,
    who: &Identity,
    id: &str,
    yes: bool,
    reason: Option<String>,
) -> Response {
    match s.guard.approvals().decide(who, id, yes, reason).await {
        Ok(a) => {
            // This vote decided it (a later one is refused as already decided): how long it
            // waited.
            if let (Status::Approved | Status::Denied, Some(at)) = (&a.status, a.decided_at) {
                s.metrics.approval_decided(
                    matches!(a.status, Status::Approved),
                    Duration::from_secs(at.saturating_sub(a.created_at)),
                );
            }
            Json(a).into_response()
        }
        Err(e) => {
            let (status, code) = match &e {
                VoteError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
                VoteError::NotApprover { .. } => (StatusCode::FORBIDDEN, "not_an_approver"),
                VoteError::SelfApproval(_) => (StatusCode::FORBIDDEN, "self_approval"),
                VoteError::AlreadyDecided { .. } => (StatusCode::CONFLICT, "already_decided"),
                VoteError::AlreadyVoted(_) => (StatusCode::CONFLICT, "already_voted"),
                VoteError::Store(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            };
            error(status, code, e.to_string())
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AuthorizeBody {
    call: Value,
    #[serde(default)]
    body_sha256: Option<String>,
    /// What binds a `once` grant beyond the call (a digest of the exact request).
    #[serde(default)]
    binding: Option<String>,
    /// What the approver is shown (masked before it is stored).
    #[serde(default)]
    details: Option<serde_json::Value>,
}

/// `POST /v1/authorize`: the decision for the authenticated caller, with approvals.
async fn authorize(
    State(s): State<AdminState>,
    Extension(who): Extension<Arc<Identity>>,
    body: Result<Json<AuthorizeBody>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Json(body) = match body {
        Ok(b) => b,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                "bad_request",
                format!(
                    "expected {{\"call\": {{…}}, \"body_sha256\": \"…\"}}: {}",
                    e.body_text()
                ),
            );
        }
    };
    let call = match Call::from_json(&body.call) {
        Ok(c) => c,
        Err(e) => return error(StatusCode::BAD_REQUEST, "bad_request", format!("call: {e}")),
    };
    let asked = hoopguard_core::approvals::Asked {
        binding: body.binding.or(body.body_sha256),
        details: body.details.unwrap_or_default(),
    };
    let verdict = s
        .guard
        .authorize(&Site::of("admin"), &who, &call, Some(&asked))
        .await;
    match &verdict {
        Verdict::Allow { rule, approval_id } => Json(json!({
            "decision": "allow", "rule": rule, "approval_id": approval_id,
        }))
        .into_response(),
        other => {
            let status = match other {
                Verdict::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
                Verdict::Throttled { .. } => StatusCode::TOO_MANY_REQUESTS,
                _ => StatusCode::FORBIDDEN,
            };
            let mut resp = (status, Json(other.refusal_json().unwrap_or_default())).into_response();
            if let Some(s) = other.retry_after_secs() {
                resp.headers_mut()
                    .insert(axum::http::header::RETRY_AFTER, s.into());
            }
            resp
        }
    }
}

/// Only approvers (of any rule) and auditors read recordings: they hold what everyone did.
fn refuse_unless_reader(s: &AdminState, who: &Identity) -> Option<Response> {
    let approvers = s.guard.policy().approver_groups();
    let allowed = who
        .groups
        .iter()
        .any(|g| approvers.contains(g) || s.auditors.contains(g));
    if allowed {
        None
    } else {
        Some(error(
            StatusCode::FORBIDDEN,
            "not_an_auditor",
            format!(
                "`{}` may not read recordings: only approvers and auditors (groups in `record.auditors`) may",
                who.subject
            ),
        ))
    }
}

/// Runs `f` on the recordings (directory or database) for an approver or auditor, off the
/// async workers; the recording errors become answers (404, 400, 503).
async fn read<T: Send + 'static>(
    s: &AdminState,
    who: &Identity,
    f: impl FnOnce(&crate::sessions_cli::Recordings) -> Result<T, RecordError> + Send + 'static,
) -> Result<T, Box<Response>> {
    if let Some(r) = refuse_unless_reader(s, who) {
        return Err(Box::new(r));
    }
    let refused = |status, code: &str, message: String| Box::new(error(status, code, message));
    let rec = s.recordings.clone();
    match tokio::task::spawn_blocking(move || f(&rec)).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(RecordError::NotFound(id))) => Err(refused(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no recording of session `{id}`"),
        )),
        Ok(Err(e @ RecordError::BadSessionId(_))) => Err(refused(
            StatusCode::BAD_REQUEST,
            "bad_request",
            e.to_string(),
        )),
        Ok(Err(e)) => Err(refused(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            e.to_string(),
        )),
        Err(e) => Err(refused(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            e.to_string(),
        )),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SessionsQuery {
    subject: Option<String>,
    since: Option<String>,
    action: Option<String>,
    decision: Option<String>,
    limit: Option<usize>,
}

/// `GET /v1/sessions-digest-key`: the public key that verifies the signed digests, for auditors
/// (`hoopguard sessions verify --public-key`).
async fn digest_key(
    State(s): State<AdminState>,
    Extension(who): Extension<Arc<Identity>>,
) -> Response {
    if let Some(r) = refuse_unless_reader(&s, &who) {
        return r;
    }
    match s.recorder.digest_public_key() {
        Some(k) => Json(json!({"public_key": k.to_base64(), "key_id": k.key_id()})).into_response(),
        None => error(
            StatusCode::NOT_FOUND,
            "not_signed",
            "the recordings are not signed: set record.signing_key_file".into(),
        ),
    }
}

async fn list_sessions(
    State(s): State<AdminState>,
    Extension(who): Extension<Arc<Identity>>,
    q: Result<Query<SessionsQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Query(q) = match q {
        Ok(q) => q,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                "bad_request",
                format!(
                    "{}; the filters are subject, since, action, decision and limit",
                    e.body_text()
                ),
            );
        }
    };
    let since = match q.since.as_deref().map(hoopguard_core::duration::parse) {
        None => None,
        Some(Ok(d)) => Some(d),
        Some(Err(e)) => {
            return error(
                StatusCode::BAD_REQUEST,
                "bad_request",
                format!("since: {e}"),
            );
        }
    };
    let query = hoopguard_core::record::Query {
        subject: q.subject,
        since,
        action: q.action,
        decision: q.decision,
        limit: q.limit,
    };
    match read(&s, &who, move |rec| rec.search(&query)).await {
        Ok(found) => Json(json!({"sessions": found})).into_response(),
        Err(r) => *r,
    }
}

async fn show_session(
    State(s): State<AdminState>,
    Extension(who): Extension<Arc<Identity>>,
    Path(id): Path<String>,
) -> Response {
    let id2 = id.clone();
    match read(&s, &who, move |rec| rec.read(&id2)).await {
        Ok(events) => Json(json!({"session": id, "events": events})).into_response(),
        Err(r) => *r,
    }
}

async fn verify_session(
    State(s): State<AdminState>,
    Extension(who): Extension<Arc<Identity>>,
    Path(id): Path<String>,
) -> Response {
    let id2 = id.clone();
    let checked = read(&s, &who, move |rec| match rec.verify(&id2) {
        Ok(n) => Ok(json!({"ok": true, "events": n})),
        Err(RecordError::Broken { line, problem, .. }) => {
            Ok(json!({"ok": false, "event": line, "problem": format!("event {line} {problem}")}))
        }
        Err(e) => Err(e),
    })
    .await;
    match checked {
        Ok(mut v) => {
            v["session"] = json!(id);
            Json(v).into_response()
        }
        Err(r) => *r,
    }
}

/// `POST /v1/sessions/{id}/revoke`: an approver or auditor ends a session; the data paths refuse
/// its calls from then on. A reason is required and recorded with who revoked it.
async fn revoke_session(
    State(s): State<AdminState>,
    Extension(who): Extension<Arc<Identity>>,
    Path(id): Path<String>,
    body: Option<Json<VoteBody>>,
) -> Response {
    // Who may, before what they sent (`read` checks again; it is a lookup).
    if let Some(r) = refuse_unless_reader(&s, &who) {
        return r;
    }
    let Some(reason) = body
        .and_then(|b| b.0.reason)
        .filter(|r| !r.trim().is_empty())
    else {
        return error(
            StatusCode::BAD_REQUEST,
            "reason_required",
            "a revocation needs a reason: {\"reason\": \"…\"}".into(),
        );
    };
    if let Some(db) = s.shared.clone() {
        // Stored for every replica to load: a real session id and a bounded reason only.
        if let Err(e) = hoopguard_core::record::check_session_id(&id) {
            return error(StatusCode::BAD_REQUEST, "bad_session_id", e.to_string());
        }
        let reason: String = reason.chars().take(1000).collect();
        return revoke_shared(&s, &db, &who, id, reason).await;
    }
    let rec = s.recorder.clone();
    let (id2, by) = (id.clone(), who.subject.clone());
    match read(&s, &who, move |_| rec.revoke(&id2, &by, &reason)).await {
        Ok(true) => {
            tracing::info!(session = %id, by = %who.subject, "revoked a session");
            Json(json!({"session": id, "revoked": true})).into_response()
        }
        Ok(false) => error(
            StatusCode::CONFLICT,
            "already_revoked",
            format!("session `{id}` was revoked already"),
        ),
        Err(r) => *r,
    }
}

/// A revocation with a shared store: written to the database first (every replica reads it
/// from there within `store.revocation_poll`), then to this replica's recording of the session
/// if it has one. The session may have been recorded only by another replica.
async fn revoke_shared(
    s: &AdminState,
    db: &hoopguard_core::shared::Database,
    who: &Identity,
    id: String,
    reason: String,
) -> Response {
    match db.revoke(&id, &who.subject, &reason).await {
        Ok(true) => {}
        Ok(false) => {
            return error(
                StatusCode::CONFLICT,
                "already_revoked",
                format!("session `{id}` was revoked already"),
            );
        }
        Err(e) => {
            tracing::error!(session = %id, error = %e, "cannot record a revocation");
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "store_unavailable",
                format!("the revocation was not recorded: {e}; try again"),
            );
        }
    }
    if let Some(r) = s.recorder.revoked() {
        r.insert(&id);
    }
    let rec = s.recorder.clone();
    let (id2, by) = (id.clone(), who.subject.clone());
    let here = tokio::task::spawn_blocking(move || match rec.revoke(&id2, &by, &reason) {
        Ok(_) => Ok(true),
        Err(RecordError::NotFound(_)) => Ok(false),
        Err(e) => Err(e),
    })
    .await;
    let recorded_here = match here
        .map_err(|e| e.to_string())
        .and_then(|r| r.map_err(|e| e.to_string()))
    {
        Ok(b) => b,
        Err(e) => {
            // Revoked everywhere all the same; the recording here misses its end event.
            tracing::error!(session = %id, error = %e, "revoked, but cannot record the end here");
            false
        }
    };
    tracing::info!(session = %id, by = %who.subject, recorded_here, "revoked a session on every replica");
    Json(json!({"session": id, "revoked": true, "recorded_here": recorded_here})).into_response()
}
