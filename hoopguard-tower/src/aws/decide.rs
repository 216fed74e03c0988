//! [`Decide`]: the policy, approvals and the call's recording for a classified AWS call.
//!
//! The caller's `Arc<Identity>` and the [`AwsCall`] decide through the [`Guard`]; an approval
//! binds the exact request as it will reach AWS (method, path, canonical query, forwarded
//! headers, body hash — [`hoopguard_core::aws::binding`]) and shows the approver every
//! parameter. A request hoopguard cannot read unambiguously is refused (`400`); one it cannot
//! classify is refused, or sent to the configured approvers bound to its exact bytes.
//!
//! With [`DecideLayer::record`], every call is recorded before it is answered or forwarded —
//! the session's `start` the first time its credentials are seen (its `end` scheduled at their
//! expiry), then a `call` event with what was asked (query, headers, body, all masked) and
//! decided — and a call that cannot be recorded is refused. The response of a forwarded call
//! carries a [`RecordTarget`], so a [`RecordLayer`](crate::record::RecordLayer) outside records the
//! answer. Refusals are in the caller's protocol ([`ErrorFormat`]); an allowed call goes on with
//! the [`Verdict`] and the [`Classified`] call in its extensions.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! use std::sync::Arc;
//! use hoopguard_core::approvals::{Approvals, SqliteStore};
//! use hoopguard_core::policy::Policy;
//! use hoopguard_tower::aws::{AwsBody, DecideLayer};
//! use hoopguard_tower::policy::Guard;
//! use tower::{Layer, ServiceExt};
//!
//! let guard = Guard::new(
//!     Policy::compile(&[]).unwrap(),
//!     Approvals::new(Arc::new(SqliteStore::open_in_memory().unwrap())),
//! );
//! let svc = DecideLayer::new(guard).layer(tower::service_fn(|_req: http::Request<AwsBody>| async {
//!     Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
//! }));
//! // Nothing verified or classified this request: it is refused, never passed on.
//! let req = http::Request::get("/").body(AwsBody::buffered(Default::default())).unwrap();
//! assert_eq!(svc.oneshot(req).await.unwrap().status(), 403);
//! # }
//! ```

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hoopguard_core::aws::Verified;
use hoopguard_core::aws::binding::{Binding, Body as BindingBody, shown_headers};
use hoopguard_core::aws::classify::{Classified, ClassifyError, endpoint_of};
use hoopguard_core::aws::routes::Protocol;
use hoopguard_core::identity::Identity;
use hoopguard_core::policy::{ApprovalSpec, AwsAction, Call, GrantKind};
use hoopguard_core::record::{RecordError, Recorder};
use http::{Request, Response, StatusCode};
use serde_json::{Value, json};
use tower::{Layer, Service};
use tracing::Instrument;

use super::verify::Incoming;
use super::{AwsBody, AwsCall, ErrorFormat, UNREADABLE, pairs, session_id, unwired};
use crate::body::OwnBody;
use crate::policy::{Guard, Site, Verdict};
use crate::record::{Origin, RecordTarget};

/// A request extension naming the recording an in-process call is recorded in instead of its
/// credential session's (the MCP session whose tool made it: see [`sdk`](super::sdk)). Only
/// in-process code can set it; nothing on the wire does.
#[derive(Debug, Clone)]
pub struct RecordInto(pub String);

/// Applies [`Decide`]. See the [module docs](self).
#[derive(Clone, Debug)]
pub struct DecideLayer {
    config: Arc<Config>,
}

#[derive(Clone, Debug)]
struct Config {
    guard: Guard,
    unclassified: Option<ApprovalSpec>,
    recorder: Option<Arc<Recorder>>,
}

impl DecideLayer {
    /// Decides calls with `guard`; unclassified calls are refused, nothing is recorded.
    pub fn new(guard: Guard) -> Self {
        DecideLayer {
            config: Arc::new(Config {
                guard,
                unclassified: None,
                recorder: None,
            }),
        }
    }

    /// Calls hoopguard cannot classify go to `approvers` (any one of them, once, within an
    /// hour) instead of being refused; none: refused.
    pub fn unclassified_approvers(mut self, approvers: Vec<String>) -> Self {
        Arc::make_mut(&mut self.config).unclassified =
            (!approvers.is_empty()).then(|| ApprovalSpec {
                rule: "aws-unclassified".into(),
                approvers,
                quorum: 1,
                grant: GrantKind::Once,
                window: None,
                expires: Duration::from_secs(3600),
                hold: None,
            });
        self
    }

    /// Records every call into `recorder` before it is answered; a call that cannot be
    /// recorded is refused.
    pub fn record(mut self, recorder: Arc<Recorder>) -> Self {
        Arc::make_mut(&mut self.config).recorder = Some(recorder);
        self
    }
}

impl<S> Layer<S> for DecideLayer {
    type Service = Decide<S>;

    fn layer(&self, inner: S) -> Decide<S> {
        Decide {
            inner,
            config: self.config.clone(),
        }
    }
}

/// Decides and records each call. See the [module docs](self).
#[derive(Clone, Debug)]
pub struct Decide<S> {
    inner: S,
    config: Arc<Config>,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

impl<S, ResB> Service<Request<AwsBody>> for Decide<S>
where
    S: Service<Request<AwsBody>, Response = Response<ResB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    ResB: OwnBody + Send + 'static,
{
    type Response = Response<ResB>;
    type Error = S::Error;
    /// Deciding may wait on the approval store: boxed.
    type Future = BoxFuture<Result<Response<ResB>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<AwsBody>) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let config = self.config.clone();
        Box::pin(async move {
            let (mut parts, body) = req.into_parts();
            let ext = &parts.extensions;
            let (Some(verified), Some(who), Some(call)) = (
                ext.get::<Verified>().cloned(),
                crate::auth::caller(ext).cloned(),
                ext.get::<AwsCall>().cloned(),
            ) else {
                return Ok(unwired("Decide"));
            };
            let format = ext
                .get::<ErrorFormat>()
                .copied()
                .unwrap_or(ErrorFormat::QueryXml);
            let into = ext.get::<RecordInto>().map(|r| r.0.clone());
            let own_session = into.is_none();
            let session = into.unwrap_or_else(|| session_id(&verified.session));
            // What the body is, owned (the body itself is not `Sync`: it is not borrowed across
            // the wait for a decision).
            let inspected = body.inspected().cloned();
            let (sha256, length) = match body.binding() {
                BindingBody::Sha256(h) => (Some(h.to_string()), None),
                BindingBody::Unsigned { length } => (None, length),
            };
            let origin = parts
                .extensions
                .get::<Origin>()
                .cloned()
                .unwrap_or_default();
            let (classified, verdict) = {
                let site = Site {
                    protocol: "aws",
                    connection: Some(&verified.session.connection),
                    session: config.recorder.is_some().then_some(session.as_str()),
                    client: origin.addr.as_deref(),
                };
                let headers = pairs(&parts.headers);
                let exact = Exact {
                    connection: &verified.session.connection,
                    method: parts.method.as_str(),
                    path: parts.uri.path(),
                    query: parts.uri.query().unwrap_or(""),
                    headers: &headers,
                    body: match &sha256 {
                        Some(h) => BindingBody::Sha256(h),
                        None => BindingBody::Unsigned { length },
                    },
                    bytes: inspected.as_ref().map(|b| b.len()),
                };
                let (classified, verdict) =
                    decide(&config, &site, &who, &verified, &exact, call.classified).await;
                // Record the call before answering; a call that cannot be recorded is refused.
                if let Some(rec) = &config.recorder {
                    let asked = Asked {
                        verified: &verified,
                        origin: origin.clone(),
                        content_type: parts
                            .extensions
                            .get::<Incoming>()
                            .map_or("", |i| i.content_type.as_str()),
                        exact: &exact,
                        body: inspected.as_deref(),
                        own_session,
                    };
                    let started = std::time::Instant::now();
                    let recorded = record(rec, &session, &asked, &classified, &verdict)
                        .instrument(crate::trace::step("hoopguard.record"))
                        .await;
                    if let Some(m) = config.guard.metrics() {
                        m.recorded(started.elapsed());
                    }
                    if let Err(e) = recorded {
                        tracing::error!(error = %e, "cannot record the call; refusing it");
                        config.guard.store_error("recordings");
                        // The audit stream said what the policy decided; it says this too.
                        config.guard.decided(
                            &site,
                            &who,
                            &classified.call,
                            Verdict::Unavailable {
                                reason: "the call could not be recorded".into(),
                            },
                        );
                        return Ok(format.refuse(
                            StatusCode::SERVICE_UNAVAILABLE,
                            "ServiceUnavailable",
                            "refused because the call could not be recorded; try again later",
                        ));
                    }
                }
                (classified, verdict)
            };
            // A refusal is recorded with the call; what upstream answers is recorded (masked) by
            // the RecordLayer when its body ends.
            if let Some(refusal) = format.refuse_verdict::<ResB>(&verdict) {
                return Ok(refusal);
            }
            parts.extensions.insert(verdict);
            parts.extensions.insert(classified);
            let mut resp = inner.call(Request::from_parts(parts, body)).await?;
            if config.recorder.is_some() {
                resp.extensions_mut().insert(RecordTarget { session });
            }
            Ok(resp)
        })
    }
}

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

    fn asked(&self, verified: &Verified, c: &Classified) -> hoopguard_core::approvals::Asked {
        hoopguard_core::approvals::Asked {
            binding: Some(self.binding(verified)),
            details: self.details(verified, c),
        }
    }
}

/// Classification, policy and approvals for one call.
async fn decide(
    config: &Config,
    site: &Site<'_>,
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
            let verdict = config
                .guard
                .authorize_with(site, who, &c.call, || Some(exact.asked(verified, &c)))
                .await;
            (c, verdict)
        }
        Err(ClassifyError::Refused(why)) => {
            tracing::info!(subject = %verified.session.subject, service = %verified.service, "refused an AWS call hoopguard cannot read unambiguously");
            let c = placeholder(format!("{}:unreadable", verified.service), "unreadable");
            let verdict = Verdict::Deny {
                rule: Some(UNREADABLE.into()),
                reason: format!("hoopguard refuses this request: {why}"),
            };
            let verdict = config.guard.decided(site, who, &c.call, verdict);
            (c, verdict)
        }
        Err(ClassifyError::Unknown(why)) => {
            let c = placeholder(format!("{}:unclassified", verified.service), "unclassified");
            let Some(spec) = &config.unclassified else {
                tracing::info!(subject = %verified.session.subject, service = %verified.service, "refused an unclassified AWS call");
                let verdict = Verdict::Deny {
                    rule: None,
                    reason: format!(
                        "hoopguard could not classify this call, so it is refused: {why}"
                    ),
                };
                let verdict = config.guard.decided(site, who, &c.call, verdict);
                return (c, verdict);
            };
            // The operator asked for a human to judge what hoopguard cannot: the exact request
            // is what is approved, once.
            let reason = format!(
                "hoopguard could not classify this call ({why}); it needs approval by {}",
                spec.approvers.join(", ")
            );
            let asked = exact.asked(verified, &c);
            let verdict = config
                .guard
                .approve(site, who, &c.call, spec, Some(&asked), reason)
                .await;
            (c, verdict)
        }
    }
}

/// One pseudo-credential session is one recording: a `start` event the first time it is seen
/// (and again when it goes on after an `end`, e.g. after a restart), then one `call` event per
/// call with what was asked — the query, the headers that reach AWS and the body, all masked,
/// the body capped — and decided. No credentials or tokens are recorded. The session's end is
/// recorded when its credentials expire.
/// What the caller sent, for the recording.
struct Asked<'a> {
    verified: &'a Verified,
    origin: Origin,
    content_type: &'a str,
    exact: &'a Exact<'a>,
    /// The inspected body (streamed ones are not recorded, only their size).
    body: Option<&'a [u8]>,
    /// Recorded in its credential session's own recording (not [`RecordInto`] another).
    own_session: bool,
}

async fn record(
    recorder: &Arc<Recorder>,
    session: &str,
    asked: &Asked<'_>,
    classified: &Classified,
    verdict: &Verdict,
) -> Result<(), RecordError> {
    let (verified, origin, content_type, exact) = (
        asked.verified,
        &asked.origin,
        asked.content_type,
        asked.exact,
    );
    let state = recorder.state(session);
    if state.is_none_or(|s| s.ended) {
        recorder
            .record(
                session,
                "start",
                json!({
                    "subject": verified.session.subject,
                    "groups": verified.session.groups,
                    "connection": verified.session.connection,
                    "client": origin.addr,
                    "user_agent": origin.user_agent,
                    "expires_at": verified.session.exp,
                    "resumed": state.is_some(),
                }),
            )
            .await?;
        // From then on its pseudo-credentials are refused: the session is over.
        if asked.own_session {
            recorder.end_at(
                session,
                std::time::UNIX_EPOCH + Duration::from_secs(verified.session.exp),
                "token expired",
            );
        }
    }
    let (rule, approval_id, reason) = verdict.parts();
    let inspected = asked.body;
    let body = inspected.and_then(|b| recorder.mask_body(b, content_type));
    recorder
        .record(
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
                    "content_type": content_type,
                    "bytes": inspected.map(|b| b.len()),
                    "body": body,
                },
            }),
        )
        .await?;
    Ok(())
}
