//! Request, refusal and latency metrics in the Prometheus text format.
//!
//! [`Metrics`] owns the registry; [`MetricsLayer`] counts every request of one listener by status,
//! records its latency (to the response head) and, when an [`AuthLayer`](crate::auth::AuthLayer)
//! sits inside it, counts authentication outcomes by reason. The [`Guard`](crate::policy::Guard)
//! counts decisions (by decision, by rule or limit, by connection), store failures and the time
//! calls take to be recorded; the admin API how long approvals wait. Labels carry no token, and
//! no identity unless [`Metrics::with_subject_labels`] asks for one series per caller (rules,
//! limits and connections are the configuration's, so their number is bounded).
//!
//! # Example
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! use std::{convert::Infallible, sync::Arc};
//! use http::{Request, Response};
//! use hoopguard_tower::metrics::{Metrics, MetricsLayer};
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! let metrics = Arc::new(Metrics::new());
//! let svc = ServiceBuilder::new()
//!     .layer(MetricsLayer::new(metrics.clone(), "admin"))
//!     .service_fn(|_req: Request<()>| async { Ok::<_, Infallible>(Response::new(())) });
//! svc.oneshot(Request::new(())).await.unwrap();
//! assert!(metrics.encode().contains(r#"hoopguard_requests_total{listener="admin",status="200"} 1"#));
//! # }
//! ```

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use http::Response;
use pin_project_lite::pin_project;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tower::{Layer, Service};

use crate::auth::AuthOutcome;
use crate::policy::Site;
use hoopguard_core::audit::AuditLog;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    listener: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ListenerLabels {
    listener: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AuthLabels {
    listener: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DecisionLabels {
    listener: &'static str,
    decision: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RuleLabels {
    rule: String,
    decision: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ConnectionLabels {
    protocol: &'static str,
    connection: String,
    decision: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SubjectLabels {
    subject: String,
    decision: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StoreLabels {
    store: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

/// The label value of a decision no rule made (nothing matched), or made for no connection.
pub const NONE: &str = "(none)";

fn latency_histogram() -> Histogram {
    // 100 µs … ~3.3 s
    Histogram::new(exponential_buckets(0.0001, 2.0, 16))
}

/// hoopguard's metrics registry.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<ListenerLabels, Histogram, fn() -> Histogram>,
    auth: Family<AuthLabels, Counter>,
    decisions: Family<DecisionLabels, Counter>,
    rules: Family<RuleLabels, Counter>,
    connections: Family<ConnectionLabels, Counter>,
    subjects: Option<Family<SubjectLabels, Counter>>,
    store_errors: Family<StoreLabels, Counter>,
    approval_wait: Family<OutcomeLabels, Histogram, fn() -> Histogram>,
    record_latency: Histogram,
    audit: Family<OutcomeLabels, Counter>,
    audit_log: std::sync::Mutex<Option<Arc<AuditLog>>>,
}

fn wait_histogram() -> Histogram {
    // 1 s … ~9 h
    Histogram::new(exponential_buckets(1.0, 2.0, 16))
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh registry with hoopguard's metric families.
    pub fn new() -> Self {
        Self::build(false)
    }

    /// [`Metrics::new`] plus `hoopguard_subject_decisions_total{subject, decision}`: one series
    /// per caller, so only where the callers are few (`telemetry.subject_labels`).
    pub fn with_subject_labels() -> Self {
        Self::build(true)
    }

    fn build(subject_labels: bool) -> Self {
        let mut registry = Registry::with_prefix("hoopguard");
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<ListenerLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram,
        );
        let auth = Family::<AuthLabels, Counter>::default();
        let decisions = Family::<DecisionLabels, Counter>::default();
        registry.register(
            "requests",
            "Requests answered, by listener and status",
            requests.clone(),
        );
        registry.register(
            "request_duration_seconds",
            "Time to the response head, by listener",
            latency.clone(),
        );
        registry.register(
            "auth",
            "Authentication outcomes, by listener and outcome (authenticated or the refusal reason)",
            auth.clone(),
        );
        registry.register(
            "decisions",
            "Policy decisions, by listener and decision (allow, deny, approve)",
            decisions.clone(),
        );
        let rules = Family::<RuleLabels, Counter>::default();
        registry.register(
            "rule_decisions",
            "Policy decisions by the rule or limit that made them ((none): no rule matched)",
            rules.clone(),
        );
        let connections = Family::<ConnectionLabels, Counter>::default();
        registry.register(
            "connection_decisions",
            "Policy decisions by protocol and AWS connection or MCP server",
            connections.clone(),
        );
        let subjects = subject_labels.then(|| {
            let f = Family::<SubjectLabels, Counter>::default();
            registry.register(
                "subject_decisions",
                "Policy decisions by caller (telemetry.subject_labels)",
                f.clone(),
            );
            f
        });
        let store_errors = Family::<StoreLabels, Counter>::default();
        registry.register(
            "store_errors",
            "Failures of a store a call needed (approvals, limits, recordings); each refused the call",
            store_errors.clone(),
        );
        let approval_wait =
            Family::<OutcomeLabels, Histogram, fn() -> Histogram>::new_with_constructor(
                wait_histogram,
            );
        registry.register(
            "approval_wait_seconds",
            "From an approval being asked for to its decision, by outcome (approved, denied)",
            approval_wait.clone(),
        );
        let record_latency = latency_histogram();
        registry.register(
            "record_seconds",
            "Time to record a call before it is answered or forwarded (durable with every_event)",
            record_latency.clone(),
        );
        let audit = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "audit_lines",
            "Audit stream lines, by outcome (written, dropped)",
            audit.clone(),
        );
        Metrics {
            registry,
            requests,
            latency,
            auth,
            decisions,
            rules,
            connections,
            subjects,
            store_errors,
            approval_wait,
            record_latency,
            audit,
            audit_log: std::sync::Mutex::new(None),
        }
    }

    /// Reports the lines written and dropped by `log` (read when the metrics are encoded).
    pub fn watch_audit(&self, log: Arc<AuditLog>) {
        if let Ok(mut l) = self.audit_log.lock() {
            *l = Some(log);
        }
    }

    /// Counts one decision by rule and by connection (and by subject, when configured).
    pub fn record_detail(
        &self,
        site: &Site<'_>,
        subject: &str,
        rule: Option<&str>,
        decision: &'static str,
    ) {
        self.rules
            .get_or_create(&RuleLabels {
                rule: rule.unwrap_or(NONE).to_string(),
                decision,
            })
            .inc();
        self.connections
            .get_or_create(&ConnectionLabels {
                protocol: site.protocol,
                connection: site.connection.unwrap_or(NONE).to_string(),
                decision,
            })
            .inc();
        if let Some(f) = &self.subjects {
            f.get_or_create(&SubjectLabels {
                subject: subject.to_string(),
                decision,
            })
            .inc();
        }
    }

    /// Counts a failure of `store`.
    pub fn store_error(&self, store: &'static str) {
        self.store_errors
            .get_or_create(&StoreLabels { store })
            .inc();
    }

    /// Observes how long an approval waited for its decision.
    pub fn approval_decided(&self, approved: bool, waited: std::time::Duration) {
        let outcome = if approved { "approved" } else { "denied" };
        self.approval_wait
            .get_or_create(&OutcomeLabels { outcome })
            .observe(waited.as_secs_f64());
    }

    /// Observes the time one call took to be recorded.
    pub fn recorded(&self, took: std::time::Duration) {
        self.record_latency.observe(took.as_secs_f64());
    }

    /// Counts one policy decision (`allow`, `deny`, `approve`) on `listener`.
    pub fn record_decision(&self, listener: &'static str, decision: &'static str) {
        self.decisions
            .get_or_create(&DecisionLabels { listener, decision })
            .inc();
    }

    /// The metrics in the Prometheus text exposition format.
    pub fn encode(&self) -> String {
        if let Ok(log) = self.audit_log.lock() {
            if let Some(log) = log.as_ref() {
                // Counters only go up: add what the log counted since the last encoding.
                for (outcome, now) in [("written", log.written()), ("dropped", log.dropped())] {
                    let c = self.audit.get_or_create(&OutcomeLabels { outcome });
                    c.inc_by(now.saturating_sub(c.get()));
                }
            }
        }
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            tracing::error!("encoding metrics failed");
        }
        out
    }

    fn observe<B>(&self, listener: &'static str, started: Instant, resp: &Response<B>) {
        self.requests
            .get_or_create(&RequestLabels {
                listener,
                status: resp.status().as_u16(),
            })
            .inc();
        self.latency
            .get_or_create(&ListenerLabels { listener })
            .observe(started.elapsed().as_secs_f64());
        if let Some(outcome) = resp.extensions().get::<AuthOutcome>() {
            let outcome = match outcome {
                AuthOutcome::Authenticated => "authenticated",
                AuthOutcome::Refused(code) => code,
            };
            self.auth
                .get_or_create(&AuthLabels { listener, outcome })
                .inc();
        }
    }
}

/// Applies [`MetricsService`] to a service.
#[derive(Clone, Debug)]
pub struct MetricsLayer {
    metrics: Arc<Metrics>,
    listener: &'static str,
}

impl MetricsLayer {
    /// Records into `metrics` under the label `listener="…"`.
    pub const fn new(metrics: Arc<Metrics>, listener: &'static str) -> Self {
        MetricsLayer { metrics, listener }
    }
}

impl<S> Layer<S> for MetricsLayer {
    type Service = MetricsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        MetricsService {
            inner,
            metrics: self.metrics.clone(),
            listener: self.listener,
        }
    }
}

/// Records each request's status, latency and auth outcome. See the [module docs](self).
#[derive(Clone, Debug)]
pub struct MetricsService<S> {
    inner: S,
    metrics: Arc<Metrics>,
    listener: &'static str,
}

impl<S, Req, B> Service<Req> for MetricsService<S>
where
    S: Service<Req, Response = Response<B>>,
{
    type Response = Response<B>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        ResponseFuture {
            inner: self.inner.call(req),
            metrics: self.metrics.clone(),
            listener: self.listener,
            started: Instant::now(),
        }
    }
}

pin_project! {
    /// The future of [`MetricsService`].
    #[derive(Debug)]
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        metrics: Arc<Metrics>,
        listener: &'static str,
        started: Instant,
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let out = std::task::ready!(this.inner.poll(cx));
        if let Ok(resp) = &out {
            this.metrics.observe(this.listener, *this.started, resp);
        }
        Poll::Ready(out)
    }
}
