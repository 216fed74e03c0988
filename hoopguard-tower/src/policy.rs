//! Deciding each call, with human approval where the policy asks for it.
//!
//! [`Guard`] joins the compiled [`Policy`] (swappable at run time, for config reloads), the
//! [`Approvals`] workflow and the counts of the policy's rate limits (a [`LimitStore`]: this
//! process's memory by default, [`Guard::with_limit_store`] for a shared one):
//! [`Guard::authorize`] gives a [`Verdict`] for one call by one caller, `Throttled` when an
//! allowed call would pass one of its limits.
//! [`PolicyLayer`] applies it to every request of a service: a [`Classify`] implementation says
//! what the request does, and the layer answers `403` (denied, or waiting for approval with the
//! approval id and the command that approves it) or `503` (the approval store failed: closed,
//! never open) by itself, or calls the inner service with the [`Verdict`] in the extensions.
//!
//! # Example
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! use std::{convert::Infallible, sync::Arc};
//! use bytes::Bytes;
//! use http::{Request, Response, StatusCode};
//! use http_body_util::Full;
//! use hoopguard_core::approvals::{Approvals, SqliteStore};
//! use hoopguard_core::identity::Identity;
//! use hoopguard_core::policy::{Call, Policy, RuleConfig};
//! use hoopguard_tower::policy::{Guard, PolicyLayer};
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! let rules: Vec<RuleConfig> = serde_json::from_value(serde_json::json!([
//!     {"name": "echo", "effect": "allow", "tools": ["echo"]}
//! ])).unwrap();
//! let guard = Guard::new(
//!     Policy::compile(&rules).unwrap(),
//!     Approvals::new(Arc::new(SqliteStore::open_in_memory().unwrap())),
//! );
//! // What a request does: here, the tool named in a header.
//! let classify = |parts: &http::request::Parts| -> Result<Call, String> {
//!     let tool = parts.headers.get("x-tool").and_then(|v| v.to_str().ok()).ok_or("no tool")?;
//!     Ok(Call::tool(tool, serde_json::json!({})))
//! };
//! let svc = ServiceBuilder::new()
//!     .layer(PolicyLayer::new(guard, classify))
//!     .service_fn(|_req: Request<Full<Bytes>>| async {
//!         Ok::<_, Infallible>(Response::new(Full::new(Bytes::from("done"))))
//!     });
//!
//! let alice = Arc::new(Identity::new("alice", vec![], "i", std::time::SystemTime::now()));
//! let mut req = Request::get("/").header("x-tool", "echo").body(Full::default()).unwrap();
//! req.extensions_mut().insert(alice.clone());
//! assert_eq!(svc.clone().oneshot(req).await.unwrap().status(), StatusCode::OK);
//!
//! let mut req = Request::get("/").header("x-tool", "rm").body(Full::default()).unwrap();
//! req.extensions_mut().insert(alice);
//! assert_eq!(svc.oneshot(req).await.unwrap().status(), StatusCode::FORBIDDEN);
//! # }
//! ```

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use arc_swap::ArcSwap;
use hoopguard_core::approvals::{Approvals, Asked, Gate};
use hoopguard_core::identity::Identity;
use hoopguard_core::policy::{
    ApprovalSpec, Call, Effect, LimitKey, LimitStore, MemoryLimits, Policy, Take,
};
use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderValue, Request, Response, StatusCode};
use serde_json::{Value, json};
use tower::{Layer, Service};

use crate::body::GuardBody;
use crate::metrics::Metrics;
use hoopguard_core::audit::{AuditLog, Line};

/// Where a call is decided: what the audit stream, the metrics and the trace name besides the
/// caller and the call.
#[derive(Debug, Clone, Copy, Default)]
pub struct Site<'a> {
    /// `aws`, `mcp`, `admin` or `http` (a [`PolicyLayer`]).
    pub protocol: &'static str,
    /// The AWS connection or MCP server the call is for.
    pub connection: Option<&'a str>,
    /// The recording the call is in.
    pub session: Option<&'a str>,
    /// The caller's address.
    pub client: Option<&'a str>,
}

impl Site<'_> {
    /// A site of `protocol` with nothing else known.
    pub const fn of(protocol: &'static str) -> Site<'static> {
        Site {
            protocol,
            connection: None,
            session: None,
            client: None,
        }
    }
}

/// The outcome of [`Guard::authorize`]: defined in core, with the refusal texts every protocol
/// says.
pub use hoopguard_core::approvals::Verdict;

/// Policy plus approvals plus rate limits: decides calls. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Guard {
    policy: Arc<ArcSwap<Policy>>,
    approvals: Approvals,
    limits: Arc<dyn LimitStore>,
    metrics: Option<(Arc<Metrics>, &'static str)>,
    audit: Option<Arc<AuditLog>>,
}

impl Guard {
    /// A guard over `policy` and `approvals`.
    pub fn new(policy: Policy, approvals: Approvals) -> Self {
        Guard {
            policy: Arc::new(ArcSwap::from_pointee(policy)),
            approvals,
            limits: Arc::new(MemoryLimits::default()),
            metrics: None,
            audit: None,
        }
    }

    /// Writes every decision to `log` (the audit stream: [`hoopguard_core::audit`]).
    pub fn with_audit(mut self, log: Arc<AuditLog>) -> Self {
        self.audit = Some(log);
        self
    }

    /// The audit stream decisions are written to, if any.
    pub fn audit_log(&self) -> Option<&Arc<AuditLog>> {
        self.audit.as_ref()
    }

    /// The metrics decisions are counted in, if any (the data paths count their recording time
    /// and store errors there too).
    pub fn metrics(&self) -> Option<&Arc<Metrics>> {
        self.metrics.as_ref().map(|(m, _)| m)
    }

    /// Counts the policy's rate limits in `store` (default: [`MemoryLimits`], per process).
    pub fn with_limit_store(mut self, store: Arc<dyn LimitStore>) -> Self {
        self.limits = store;
        self
    }

    /// Counts decisions in `metrics` under `listener`.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>, listener: &'static str) -> Self {
        self.metrics = Some((metrics, listener));
        self
    }

    /// The current policy.
    pub fn policy(&self) -> Arc<Policy> {
        self.policy.load_full()
    }

    /// Replaces the policy for every later call, atomically.
    pub fn swap_policy(&self, policy: Policy) {
        self.policy.store(Arc::new(policy));
    }

    /// The approvals workflow.
    pub fn approvals(&self) -> &Approvals {
        &self.approvals
    }

    /// Decides `call` by `who`; for `approve` decisions, looks for a grant or opens an approval.
    /// `asked` binds a `once` grant to the exact request and says what the approver sees
    /// ([`Asked`]).
    pub async fn authorize(
        &self,
        site: &Site<'_>,
        who: &Identity,
        call: &Call,
        asked: Option<&Asked>,
    ) -> Verdict {
        self.authorize_with(site, who, call, || asked.cloned())
            .await
    }

    /// [`Guard::authorize`], making what was asked only when an approval needs it (building an
    /// approver's view of a call is not free; most calls are allowed or denied outright).
    pub async fn authorize_with(
        &self,
        site: &Site<'_>,
        who: &Identity,
        call: &Call,
        asked: impl FnOnce() -> Option<Asked>,
    ) -> Verdict {
        let verdict = self
            .judge(
                site.connection,
                who,
                call,
                asked,
                None::<(&ApprovalSpec, fn() -> String)>,
            )
            .await;
        self.decided(site, who, call, verdict)
    }

    /// [`Guard::authorize`], except that a call the policy allows goes to approval by `spec`
    /// instead, for `reason` (an MCP tool whose definition changed since it was first listed):
    /// one decision, counted and audited once.
    pub async fn authorize_escalated(
        &self,
        site: &Site<'_>,
        who: &Identity,
        call: &Call,
        spec: &ApprovalSpec,
        reason: impl FnOnce() -> String,
    ) -> Verdict {
        let verdict = self
            .judge(site.connection, who, call, || None, Some((spec, reason)))
            .await;
        self.decided(site, who, call, verdict)
    }

    /// The verdict on one call, not yet logged or audited.
    async fn judge(
        &self,
        connection: Option<&str>,
        who: &Identity,
        call: &Call,
        asked: impl FnOnce() -> Option<Asked>,
        escalate: Option<(&ApprovalSpec, impl FnOnce() -> String)>,
    ) -> Verdict {
        let (decision, limits) = {
            let policy = self.policy.load();
            let decision = policy.decide(who, call);
            let limits = match decision.effect {
                Effect::Deny => Vec::new(),
                _ => policy.limits_for(who, call, connection),
            };
            (decision, limits)
        };
        // What goes to approval, and under which rule and reason.
        let (spec, why) = match (decision.effect, &decision.approval, escalate) {
            (Effect::Allow, _, Some((spec, reason))) => (spec, (Some(spec.rule.clone()), reason())),
            (Effect::Allow, _, None) => {
                return match self.count(&limits, Take::IfRoom).await {
                    Some(refused) => refused,
                    None => Verdict::Allow {
                        rule: decision.rule,
                        approval_id: None,
                    },
                };
            }
            (Effect::Approve, Some(spec), _) => (&**spec, (decision.rule, decision.reason)),
            _ => {
                return Verdict::Deny {
                    rule: decision.rule,
                    reason: decision.reason,
                };
            }
        };
        let asked = asked();
        self.gate_counted(who, call, spec, asked.as_ref(), why, &limits)
            .await
    }

    /// [`Guard::gate`] under `limits`: a call over one asks no approver (a peek), and a
    /// granted call is counted only if it still fits (calls racing on one window grant cannot
    /// pass the limit together; the loser is throttled).
    async fn gate_counted(
        &self,
        who: &Identity,
        call: &Call,
        spec: &ApprovalSpec,
        asked: Option<&Asked>,
        (rule, reason): (Option<String>, String),
        limits: &[LimitKey],
    ) -> Verdict {
        if let Some(refused) = self.count(limits, Take::Peek).await {
            return refused;
        }
        match self.gate(who, call, spec, asked, rule, reason).await {
            v @ Verdict::Allow { .. } => self.count(limits, Take::IfRoom).await.unwrap_or(v),
            other => other,
        }
    }

    /// Counts a call against `limits`: `Some` refusal when one is used up (or the store
    /// failed: closed, never open; the caller is told only that, the log has the cause).
    async fn count(&self, limits: &[LimitKey], mode: Take) -> Option<Verdict> {
        if limits.is_empty() {
            return None;
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        match self.limits.take(limits, now, mode).await {
            Ok(None) => None,
            Ok(Some(hit)) => Some(Verdict::Throttled {
                rule: hit.limit,
                retry_after: hit.retry_after,
                reason: hit.reason,
            }),
            Err(e) => {
                tracing::error!(error = %e, "rate-limit store failed; refusing the call");
                self.store_error("limits");
                Some(Verdict::Unavailable {
                    reason: "the rate limits could not be counted".into(),
                })
            }
        }
    }

    /// Whether `who` should see tool `name` listed (see [`Policy::lists_tool`]).
    pub fn lists_tool(&self, who: &Identity, name: &str) -> bool {
        self.policy.load().lists_tool(who, name)
    }

    /// Sends `call` for approval by `spec` whatever the policy says: for calls the policy cannot
    /// judge (an AWS operation hoopguard cannot classify, when the operator asks for approval
    /// rather than refusal). The policy's limits that match the call count it when granted.
    pub async fn approve(
        &self,
        site: &Site<'_>,
        who: &Identity,
        call: &Call,
        spec: &ApprovalSpec,
        asked: Option<&Asked>,
        reason: String,
    ) -> Verdict {
        let limits = self.policy.load().limits_for(who, call, site.connection);
        let verdict = self
            .gate_counted(
                who,
                call,
                spec,
                asked,
                (Some(spec.rule.clone()), reason),
                &limits,
            )
            .await;
        self.decided(site, who, call, verdict)
    }

    /// Counts a failure of `store` (`approvals`, `limits`, `recordings`, …) in the metrics.
    pub fn store_error(&self, store: &'static str) {
        if let Some(m) = self.metrics() {
            m.store_error(store);
        }
    }

    async fn gate(
        &self,
        who: &Identity,
        call: &Call,
        spec: &ApprovalSpec,
        asked: Option<&Asked>,
        rule: Option<String>,
        reason: String,
    ) -> Verdict {
        match self.approvals.gate(who, call, spec, asked).await {
            Ok(Gate::Granted { approval_id }) => Verdict::Allow {
                rule,
                approval_id: Some(approval_id),
            },
            Ok(Gate::Pending(approval)) => Verdict::Pending { approval, reason },
            Err(e) => {
                tracing::error!(error = %e, "approval store failed; refusing the call");
                self.store_error("approvals");
                Verdict::Unavailable {
                    reason: format!("the approval store failed ({e})"),
                }
            }
        }
    }

    /// Logs, counts, traces and audits a verdict: every decision passes here, including those
    /// a data path makes without the policy (a request it cannot read, a revoked session), so
    /// the audit stream and the metrics miss none.
    pub fn decided(
        &self,
        site: &Site<'_>,
        who: &Identity,
        call: &Call,
        verdict: Verdict,
    ) -> Verdict {
        let masker = self.approvals.masker();
        let summary = masker.mask_text(&call.summary());
        // A connection is a configured name, or a wrapped server's command line (which may
        // hold a key): masked like the summary.
        let span = tracing::Span::current();
        let observed = self.metrics.is_some() || self.audit.is_some() || !span.is_disabled();
        let connection = site
            .connection
            .filter(|_| observed)
            .map(|c| masker.mask_text(c));
        let site = &Site {
            connection: connection.as_deref(),
            ..*site
        };
        let (rule, approval_id, reason) = verdict.parts();
        let decision = verdict.decision();
        tracing::info!(subject = %who.subject, call = %summary, decision, rule = ?rule,
            "decided");
        span.record("hoopguard.subject", who.subject.as_str());
        span.record("hoopguard.issuer", who.issuer.as_str());
        if let Some(c) = site.connection {
            span.record("hoopguard.connection", c);
        }
        span.record("hoopguard.call", summary.as_str());
        span.record("hoopguard.decision", decision);
        if let Some(r) = &rule {
            span.record("hoopguard.rule", r.as_str());
        }
        if let Some(a) = &approval_id {
            span.record("hoopguard.approval_id", a.as_str());
        }
        if let Some((m, listener)) = &self.metrics {
            m.record_decision(listener, decision);
            m.record_detail(site, &who.subject, rule.as_deref(), decision);
        }
        if let Some(log) = &self.audit {
            log.write(&Line {
                protocol: site.protocol,
                connection: site.connection.map(str::to_string),
                session: site.session.map(str::to_string),
                subject: who.subject.clone(),
                issuer: who.issuer.clone(),
                groups: who.groups.clone(),
                client: site.client.map(str::to_string),
                call: masker.mask_json(&audited_call(call)),
                decision,
                rule,
                approval_id,
                reason: reason.map(|r| masker.mask_text(&r)),
                retry_after_secs: verdict.retry_after_secs(),
                ..Line::default()
            });
        }
        verdict
    }
}

/// What the audit stream says of a call: its actions and resources, or the tool, resource or
/// prompt named — never the arguments.
fn audited_call(call: &Call) -> Value {
    match call {
        Call::Aws { actions, region } => {
            json!({"kind": "aws", "actions": actions, "region": region})
        }
        Call::McpTool { name, .. } => json!({"kind": "tool", "name": name}),
        Call::McpResource { uri } => json!({"kind": "resource", "uri": uri}),
        Call::McpPrompt { name } => json!({"kind": "prompt", "name": name}),
        other => json!({"kind": "other", "summary": other.summary()}),
    }
}

/// Says what a request does, from its head.
pub trait Classify: Clone + Send + Sync + 'static {
    /// The call, or why it cannot be classified (the request is then refused).
    fn classify(&self, parts: &http::request::Parts) -> Result<Call, String>;
}

impl<F> Classify for F
where
    F: Fn(&http::request::Parts) -> Result<Call, String> + Clone + Send + Sync + 'static,
{
    fn classify(&self, parts: &http::request::Parts) -> Result<Call, String> {
        self(parts)
    }
}

/// Applies [`PolicyService`] to a service. See the [module docs](self).
#[derive(Clone, Debug)]
pub struct PolicyLayer<C> {
    guard: Guard,
    classify: C,
}

impl<C> PolicyLayer<C> {
    /// Decides requests with `guard`, classified by `classify`.
    pub fn new(guard: Guard, classify: C) -> Self {
        PolicyLayer { guard, classify }
    }
}

impl<S, C: Clone> Layer<S> for PolicyLayer<C> {
    type Service = PolicyService<S, C>;

    fn layer(&self, inner: S) -> Self::Service {
        PolicyService {
            inner,
            guard: self.guard.clone(),
            classify: self.classify.clone(),
        }
    }
}

/// Decides each request before calling the inner service. See the [module docs](self).
#[derive(Clone, Debug)]
pub struct PolicyService<S, C> {
    inner: S,
    guard: Guard,
    classify: C,
}

/// The future of [`PolicyService`]: deciding may wait on the approval store, so it is boxed.
pub type ResponseFuture<B, E> =
    Pin<Box<dyn Future<Output = Result<Response<GuardBody<B>>, E>> + Send + 'static>>;

impl<S, C, ReqB, ResB> Service<Request<ReqB>> for PolicyService<S, C>
where
    S: Service<Request<ReqB>, Response = Response<ResB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    C: Classify,
    ReqB: Send + 'static,
{
    type Response = Response<GuardBody<ResB>>;
    type Error = S::Error;
    type Future = ResponseFuture<ResB, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let guard = self.guard.clone();
        let classify = self.classify.clone();
        Box::pin(async move {
            let (parts, body) = req.into_parts();
            let Some(who) = crate::auth::caller(&parts.extensions).cloned() else {
                // No identity means no auth layer ran: a wiring mistake. Refuse.
                return Ok(json_response(
                    StatusCode::UNAUTHORIZED,
                    &json!({"error": "unauthenticated", "message": crate::auth::NO_CALLER}),
                ));
            };
            let call = match classify.classify(&parts) {
                Ok(c) => c,
                Err(why) => {
                    return Ok(json_response(
                        StatusCode::FORBIDDEN,
                        &json!({"error": "unclassified", "decision": "deny",
                                "message": format!("the call could not be classified, so it is refused: {why}")}),
                    ));
                }
            };
            let verdict = guard.authorize(&Site::of("http"), &who, &call, None).await;
            if let Some(body) = verdict.refusal_json() {
                let status = match verdict {
                    Verdict::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
                    Verdict::Throttled { .. } => StatusCode::TOO_MANY_REQUESTS,
                    _ => StatusCode::FORBIDDEN,
                };
                let mut resp = json_response(status, &body);
                if let Some(s) = verdict.retry_after_secs() {
                    resp.headers_mut()
                        .insert(http::header::RETRY_AFTER, s.into());
                }
                return Ok(resp);
            }
            let mut req = Request::from_parts(parts, body);
            req.extensions_mut().insert(verdict);
            Ok(inner.call(req).await?.map(GuardBody::inner))
        })
    }
}

fn json_response<B>(status: StatusCode, body: &Value) -> Response<GuardBody<B>> {
    let mut resp = Response::new(GuardBody::own(body.to_string()));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use bytes::Bytes;
    use hoopguard_core::approvals::{Approval, SqliteStore};
    use hoopguard_core::policy::RuleConfig;
    use http_body_util::{BodyExt, Full};
    use tower::{ServiceBuilder, ServiceExt};

    use super::*;

    fn guard() -> Guard {
        let rules: Vec<RuleConfig> = serde_json::from_value(json!([
            {"name": "echo", "effect": "allow", "tools": ["echo"]},
            {"name": "rm", "effect": "approve", "tools": ["rm"], "approvers": ["managers"]},
        ]))
        .unwrap();
        Guard::new(
            Policy::compile(&rules).unwrap(),
            Approvals::new(Arc::new(SqliteStore::open_in_memory().unwrap())),
        )
    }

    /// A writer the test reads back (the audit log writes from a thread of its own).
    #[derive(Clone, Default)]
    struct Shared(Arc<std::sync::Mutex<Vec<u8>>>);
    impl std::io::Write for Shared {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn every_decision_is_audited_and_counted_once_without_arguments() {
        let out = Shared::default();
        let log = Arc::new(AuditLog::to_writer(Box::new(out.clone())));
        let metrics = Arc::new(Metrics::new());
        let g = guard()
            .with_audit(log.clone())
            .with_metrics(metrics.clone(), "t");
        let alice = who("alice", &["dev"]);
        let site = Site {
            protocol: "mcp",
            connection: Some("srv"),
            session: Some("mcp-1"),
            client: Some("10.0.0.1:5"),
        };
        let secret_args = json!({"token": "AKIAIOSFODNN7EXAMPLE"});
        let echo = Call::tool("echo", secret_args.clone());
        assert!(matches!(
            g.authorize(&site, &alice, &echo, None).await,
            Verdict::Allow { .. }
        ));
        let other = Call::tool("drop_table", json!({}));
        assert!(matches!(
            g.authorize(&site, &alice, &other, None).await,
            Verdict::Deny { .. }
        ));
        // A changed tool the policy allows goes to approval: one decision, one line.
        let spec = ApprovalSpec {
            rule: "changed-tool".into(),
            approvers: vec!["managers".into()],
            quorum: 1,
            grant: hoopguard_core::policy::GrantKind::Once,
            window: None,
            expires: std::time::Duration::from_secs(60),
            hold: None,
        };
        let v = g
            .authorize_escalated(&site, &alice, &echo, &spec, || "changed".into())
            .await;
        assert!(matches!(v, Verdict::Pending { .. }), "{v:?}");
        // A refusal a data path makes on its own passes here too.
        g.decided(
            &Site::of("aws"),
            &alice,
            &other,
            Verdict::Deny {
                rule: None,
                reason: "unreadable".into(),
            },
        );
        log.close();
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let got: Vec<(&str, &str, &str)> = lines
            .iter()
            .map(|l| {
                (
                    l["decision"].as_str().unwrap(),
                    l["rule"].as_str().unwrap_or("-"),
                    l["protocol"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("allow", "echo", "mcp"),
                ("deny", "-", "mcp"),
                ("approve", "changed-tool", "mcp"),
                ("deny", "-", "aws"),
            ]
        );
        assert_eq!(lines[0]["connection"], "srv");
        assert_eq!(lines[0]["session"], "mcp-1");
        assert_eq!(lines[0]["client"], "10.0.0.1:5");
        assert_eq!(lines[0]["call"], json!({"kind": "tool", "name": "echo"}));
        assert!(
            lines[2]["approval_id"]
                .as_str()
                .unwrap()
                .starts_with("apr_")
        );
        assert!(
            !text.contains("AKIA"),
            "no arguments in the audit stream: {text}"
        );
        let m = metrics.encode();
        for series in [
            r#"hoopguard_decisions_total{listener="t",decision="allow"} 1"#,
            r#"hoopguard_rule_decisions_total{rule="echo",decision="allow"} 1"#,
            r#"hoopguard_rule_decisions_total{rule="(none)",decision="deny"} 2"#,
            r#"hoopguard_rule_decisions_total{rule="changed-tool",decision="approve"} 1"#,
            r#"hoopguard_connection_decisions_total{protocol="mcp",connection="srv",decision="deny"} 1"#,
            r#"hoopguard_connection_decisions_total{protocol="aws",connection="(none)",decision="deny"} 1"#,
        ] {
            assert!(m.contains(series), "no `{series}` in\n{m}");
        }
        assert!(!m.contains("alice"), "no subject labels by default");
        let m = Metrics::with_subject_labels();
        m.record_detail(&site, "alice", None, "deny");
        assert!(
            m.encode().contains(
                r#"hoopguard_subject_decisions_total{subject="alice",decision="deny"} 1"#
            )
        );
    }

    fn who(sub: &str, groups: &[&str]) -> Arc<Identity> {
        Arc::new(Identity::new(
            sub,
            groups.iter().map(|g| g.to_string()).collect(),
            "i",
            std::time::SystemTime::now(),
        ))
    }

    fn classify(parts: &http::request::Parts) -> Result<Call, String> {
        let tool = parts
            .headers
            .get("x-tool")
            .and_then(|v| v.to_str().ok())
            .ok_or("no x-tool header")?;
        Ok(Call::tool(tool, json!({})))
    }

    async fn call(
        g: &Guard,
        who: Option<Arc<Identity>>,
        tool: Option<&str>,
    ) -> (StatusCode, Value, bool) {
        let reached = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let r = reached.clone();
        let svc = ServiceBuilder::new()
            .layer(PolicyLayer::new(g.clone(), classify))
            .service_fn(move |req: Request<Full<Bytes>>| {
                r.store(true, std::sync::atomic::Ordering::SeqCst);
                let v = req
                    .extensions()
                    .get::<Verdict>()
                    .map(|v| v.decision())
                    .unwrap_or("none");
                async move {
                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(format!(
                        "{{\"verdict\":\"{v}\"}}"
                    )))))
                }
            });
        let mut b = Request::get("/");
        if let Some(t) = tool {
            b = b.header("x-tool", t);
        }
        let mut req = b.body(Full::default()).unwrap();
        if let Some(w) = who {
            req.extensions_mut().insert(w);
        }
        let resp = svc.oneshot(req).await.unwrap();
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            serde_json::from_slice(&bytes).unwrap(),
            reached.load(std::sync::atomic::Ordering::SeqCst),
        )
    }

    #[tokio::test]
    async fn allows_denies_and_asks_for_approval() {
        let g = guard();
        let (s, body, reached) = call(&g, Some(who("alice", &[])), Some("echo")).await;
        assert_eq!((s, reached), (StatusCode::OK, true));
        assert_eq!(body["verdict"], "allow");

        let (s, body, reached) = call(&g, Some(who("alice", &[])), Some("curl")).await;
        assert_eq!((s, reached), (StatusCode::FORBIDDEN, false));
        assert_eq!(body["decision"], "deny");
        assert!(body["message"].as_str().unwrap().contains("no rule allows"));

        let (s, body, reached) = call(&g, Some(who("alice", &[])), Some("rm")).await;
        assert_eq!((s, reached), (StatusCode::FORBIDDEN, false));
        assert_eq!(body["error"], "approval_required");
        let id = body["approval_id"].as_str().unwrap().to_string();
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .contains(&format!("hoopguard approvals approve {id}"))
        );

        g.approvals()
            .decide(&who("maria", &["managers"]), &id, true, None)
            .await
            .unwrap();
        let (s, _, reached) = call(&g, Some(who("alice", &[])), Some("rm")).await;
        assert_eq!((s, reached), (StatusCode::OK, true));
        let (s, _, reached) = call(&g, Some(who("alice", &[])), Some("rm")).await;
        assert_eq!(
            (s, reached),
            (StatusCode::FORBIDDEN, false),
            "a once grant is used up"
        );
    }

    #[tokio::test]
    async fn unclassifiable_and_unauthenticated_requests_are_refused() {
        let g = guard();
        let (s, body, reached) = call(&g, Some(who("alice", &[])), None).await;
        assert_eq!((s, reached), (StatusCode::FORBIDDEN, false));
        assert_eq!(body["error"], "unclassified");
        let (s, _, reached) = call(&g, None, Some("echo")).await;
        assert_eq!((s, reached), (StatusCode::UNAUTHORIZED, false));
    }

    /// A store that always fails: SQLite cannot be made to fail on demand mid-test, and what
    /// matters is that a failing store closes the gate.
    #[derive(Debug)]
    struct BrokenStore;

    #[async_trait::async_trait]
    impl hoopguard_core::approvals::ApprovalStore for BrokenStore {
        async fn open(
            &self,
            _: hoopguard_core::approvals::NewApproval,
            _: u64,
        ) -> Result<(Approval, bool), hoopguard_core::approvals::StoreError> {
            Err(hoopguard_core::approvals::StoreError(
                "disk I/O error".into(),
            ))
        }
        async fn get(
            &self,
            _: &str,
        ) -> Result<Option<Approval>, hoopguard_core::approvals::StoreError> {
            Err(hoopguard_core::approvals::StoreError(
                "disk I/O error".into(),
            ))
        }
        async fn list(
            &self,
            _: Option<hoopguard_core::approvals::Status>,
            _: u64,
            _: usize,
        ) -> Result<Vec<Approval>, hoopguard_core::approvals::StoreError> {
            Err(hoopguard_core::approvals::StoreError(
                "disk I/O error".into(),
            ))
        }
        async fn vote(
            &self,
            _: &str,
            _: hoopguard_core::approvals::Vote,
            _: u64,
        ) -> Result<Approval, hoopguard_core::approvals::VoteError> {
            Err(hoopguard_core::approvals::StoreError("disk I/O error".into()).into())
        }
        async fn take_grant(
            &self,
            _: &str,
            _: &str,
            _: &str,
            _: u64,
        ) -> Result<Option<Approval>, hoopguard_core::approvals::StoreError> {
            Err(hoopguard_core::approvals::StoreError(
                "disk I/O error".into(),
            ))
        }
    }

    #[tokio::test]
    async fn a_failing_store_refuses_the_call() {
        let rules: Vec<RuleConfig> = serde_json::from_value(json!([
            {"name": "rm", "effect": "approve", "tools": ["rm"], "approvers": ["managers"]},
        ]))
        .unwrap();
        let g = Guard::new(
            Policy::compile(&rules).unwrap(),
            Approvals::new(Arc::new(BrokenStore)),
        );
        let (s, body, reached) = call(&g, Some(who("alice", &[])), Some("rm")).await;
        assert_eq!((s, reached), (StatusCode::SERVICE_UNAVAILABLE, false));
        assert_eq!(body["decision"], "error");
    }

    #[tokio::test]
    async fn a_caller_over_its_limit_is_throttled_and_others_are_not() {
        let rules: Vec<RuleConfig> = serde_json::from_value(json!([
            {"name": "echo", "effect": "allow", "tools": ["echo"]},
            {"name": "rm", "effect": "approve", "tools": ["rm"], "approvers": ["managers"]},
        ]))
        .unwrap();
        let limits: Vec<hoopguard_core::policy::LimitConfig> = serde_json::from_value(json!([
            {"name": "two-a-minute", "tools": ["*"], "calls": 2, "per": "1m"},
        ]))
        .unwrap();
        let g = Guard::new(
            Policy::compile_with_limits(&rules, &limits).unwrap(),
            Approvals::new(Arc::new(SqliteStore::open_in_memory().unwrap())),
        );
        let alice = who("alice", &[]);
        for _ in 0..2 {
            let (s, _, reached) = call(&g, Some(alice.clone()), Some("echo")).await;
            assert_eq!((s, reached), (StatusCode::OK, true));
        }
        let (s, body, reached) = call(&g, Some(alice.clone()), Some("echo")).await;
        assert_eq!((s, reached), (StatusCode::TOO_MANY_REQUESTS, false));
        assert_eq!(body["error"], "rate_limited");
        assert_eq!(body["rule"], "two-a-minute");
        let secs = body["retry_after"].as_u64().unwrap();
        assert!((1..=60).contains(&secs), "{body}");
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .contains("at most 2 calls per 1m")
        );
        // A call over the limit asks no approver.
        let (s, body, _) = call(&g, Some(alice.clone()), Some("rm")).await;
        assert_eq!(
            (s, body["error"].as_str()),
            (StatusCode::TOO_MANY_REQUESTS, Some("rate_limited"))
        );
        assert!(
            g.approvals()
                .store()
                .list(None, 0, 10)
                .await
                .unwrap()
                .is_empty()
        );
        // Denied calls are not throttled: they are denied.
        let (s, body, _) = call(&g, Some(alice), Some("curl")).await;
        assert_eq!(
            (s, body["decision"].as_str()),
            (StatusCode::FORBIDDEN, Some("deny"))
        );
        // The twin: another caller has their own count.
        let (s, _, reached) = call(&g, Some(who("bob", &[])), Some("echo")).await;
        assert_eq!((s, reached), (StatusCode::OK, true));
        // A reloaded policy keeps the count.
        g.swap_policy(Policy::compile_with_limits(&rules, &limits).unwrap());
        let (s, _, _) = call(&g, Some(who("alice", &[])), Some("echo")).await;
        assert_eq!(s, StatusCode::TOO_MANY_REQUESTS);
    }

    #[tokio::test]
    async fn a_limit_by_connection_is_shared_by_its_callers_and_no_other_connection() {
        let rules: Vec<RuleConfig> =
            serde_json::from_value(json!([{"name": "echo", "effect": "allow", "tools": ["echo"]}]))
                .unwrap();
        let limits: Vec<hoopguard_core::policy::LimitConfig> = serde_json::from_value(json!([
            {"name": "fragile-upstream", "tools": ["*"], "connections": ["fragile"],
             "by": ["connection"], "calls": 2, "per": "1m"},
        ]))
        .unwrap();
        let g = Guard::new(
            Policy::compile_with_limits(&rules, &limits).unwrap(),
            Approvals::new(Arc::new(SqliteStore::open_in_memory().unwrap())),
        );
        let echo = Call::tool("echo", json!({}));
        let through = |c: &'static str| Site {
            connection: Some(c),
            ..Site::of("mcp")
        };
        let fragile = through("fragile");
        // Two callers share the connection's two calls.
        for w in ["alice", "bob"] {
            let v = g.authorize(&fragile, &who(w, &[]), &echo, None).await;
            assert!(matches!(v, Verdict::Allow { .. }), "{v:?}");
        }
        let v = g.authorize(&fragile, &who("carol", &[]), &echo, None).await;
        assert!(
            matches!(&v, Verdict::Throttled { rule, reason, .. }
                if rule == "fragile-upstream" && reason.ends_with("through `fragile`")),
            "{v:?}"
        );
        // The twin: the same caller through another connection is not counted.
        let v = g
            .authorize(&through("sturdy"), &who("carol", &[]), &echo, None)
            .await;
        assert!(matches!(v, Verdict::Allow { .. }), "{v:?}");
    }

    #[tokio::test]
    async fn calls_racing_on_a_window_grant_cannot_pass_its_limit_together() {
        let rules: Vec<RuleConfig> = serde_json::from_value(json!([
            {"name": "rm", "effect": "approve", "tools": ["rm"], "approvers": ["managers"],
             "grant": "window", "window": "1h"},
        ]))
        .unwrap();
        let limits: Vec<hoopguard_core::policy::LimitConfig> = serde_json::from_value(json!([
            {"name": "one-rm", "tools": ["rm"], "calls": 1, "per": "1h"},
        ]))
        .unwrap();
        let g = Guard::new(
            Policy::compile_with_limits(&rules, &limits).unwrap(),
            Approvals::new(Arc::new(SqliteStore::open_in_memory().unwrap())),
        );
        let (_, body, _) = call(&g, Some(who("alice", &[])), Some("rm")).await;
        let id = body["approval_id"].as_str().unwrap().to_string();
        g.approvals()
            .decide(&who("maria", &["managers"]), &id, true, None)
            .await
            .unwrap();
        let tries = (0..4).map(|_| call(&g, Some(who("alice", &[])), Some("rm")));
        let passed = futures_util::future::join_all(tries)
            .await
            .into_iter()
            .filter(|(s, _, _)| *s == StatusCode::OK)
            .count();
        assert_eq!(passed, 1, "the window grant is bounded by the limit");
    }

    #[tokio::test]
    async fn a_swapped_policy_applies_to_the_next_call() {
        let g = guard();
        assert_eq!(
            call(&g, Some(who("alice", &[])), Some("echo")).await.0,
            StatusCode::OK
        );
        g.swap_policy(Policy::compile(&[]).unwrap());
        assert_eq!(
            call(&g, Some(who("alice", &[])), Some("echo")).await.0,
            StatusCode::FORBIDDEN
        );
    }
}
