//! Request, refusal and latency metrics in the Prometheus text format.
//!
//! [`Metrics`] owns the registry; [`MetricsLayer`] counts every request of one listener by status,
//! records its latency (to the response head) and, when an [`AuthLayer`](crate::auth::AuthLayer)
//! sits inside it, counts authentication outcomes by reason. Labels carry no identity or token.
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
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh registry with hoopguard's metric families.
    pub fn new() -> Self {
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
        Metrics {
            registry,
            requests,
            latency,
            auth,
            decisions,
        }
    }

    /// Counts one policy decision (`allow`, `deny`, `approve`) on `listener`.
    pub fn record_decision(&self, listener: &'static str, decision: &'static str) {
        self.decisions
            .get_or_create(&DecisionLabels { listener, decision })
            .inc();
    }

    /// The metrics in the Prometheus text exposition format.
    pub fn encode(&self) -> String {
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
