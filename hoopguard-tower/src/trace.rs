//! Traces: one span per call, continuing the caller's trace, and the trace passed upstream.
//!
//! [`TraceLayer`] opens the call's span (`hoopguard.aws`, `hoopguard.mcp`, …; OpenTelemetry
//! kind server) around everything inside it. Its parent is the caller's W3C `traceparent` when
//! one is sent, read through OpenTelemetry's global propagator (the binary sets the W3C one;
//! without a propagator nothing is read). The layers inside record on it who called
//! (`hoopguard.subject`, `hoopguard.issuer`), through which `hoopguard.connection`, what
//! (`hoopguard.call`, the masked summary: actions and resources, or the tool's name), and what
//! the [`Guard`](crate::policy::Guard) decided (`hoopguard.decision`, `hoopguard.rule`,
//! `hoopguard.approval_id`; in a JSON-RPC batch, the last call's — each has its `decided`
//! event); the span ends with the status of the answer. The steps of the data
//! paths are child spans — `hoopguard.auth`, `hoopguard.classify`, `hoopguard.record`,
//! `hoopguard.broker` — and the decision is the `decided` event. [`UpstreamTraceLayer`], in
//! front of the client, opens `hoopguard.upstream` (kind client) with upstream's status and
//! sends the trace on in `traceparent`/`tracestate`: what the caller sent is removed and
//! hoopguard's own context put in its place (a propagator that trusts callers' context makes it a
//! continuation of the caller's trace; the binary's does not unless told to).
//!
//! Spans never carry tokens, credentials, bodies or masked values. They are `tracing` spans of
//! target [`TARGET`]: an OpenTelemetry layer (`tracing-opentelemetry`) exports them; a log
//! formatter should leave that target out (it adds nothing a log line needs).
//!
//! # Example
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! use std::convert::Infallible;
//! use http::{Request, Response};
//! use hoopguard_tower::trace::{TraceLayer, UpstreamTraceLayer};
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! let svc = ServiceBuilder::new()
//!     .layer(TraceLayer::new("hoopguard.mcp"))
//!     // … the data path's layers …
//!     .layer(UpstreamTraceLayer::new())
//!     .service_fn(|req: Request<()>| async move {
//!         // Whatever the caller sent as its trace context is not passed on as it was.
//!         assert!(req.headers().get("traceparent").is_none());
//!         Ok::<_, Infallible>(Response::new(()))
//!     });
//! let req = Request::post("/mcp")
//!     .header("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
//!     .body(())
//!     .unwrap();
//! assert_eq!(svc.oneshot(req).await.unwrap().status(), 200);
//! # }
//! ```

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::{HeaderMap, HeaderName, HeaderValue, Request, Response};
use opentelemetry::propagation::{Extractor, Injector};
use pin_project_lite::pin_project;
use tower::{Layer, Service};
use tracing::Span;
use tracing::field::Empty;
use tracing::instrument::{Instrument, Instrumented};
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The `tracing` target of hoopguard's spans.
pub const TARGET: &str = "hoopguard::trace";

/// The headers of W3C trace context.
const TRACE_HEADERS: [&str; 2] = ["traceparent", "tracestate"];

/// A child span of the current call's span: one step of a data path (`hoopguard.auth`, …).
pub fn step(name: &'static str) -> Span {
    tracing::info_span!(target: TARGET, "hoopguard.step", otel.name = name)
}

/// A child span of the current call's span for a step over the answer's body (`hoopguard.mask`,
/// `hoopguard.record_answer`): it lasts while the body streams, and ends with the bytes it saw
/// ([`answer_done`]), or when the body is dropped.
pub fn answer_step(name: &'static str) -> Span {
    tracing::info_span!(
        target: TARGET,
        "hoopguard.step",
        otel.name = name,
        hoopguard.bytes = tracing::field::Empty
    )
}

/// Ends an [`answer_step`] span that saw `bytes` of the body.
pub fn answer_done(span: &mut Span, bytes: u64) {
    // As a signed integer: OpenTelemetry has no unsigned one (a u64 would export as a string).
    span.record("hoopguard.bytes", i64::try_from(bytes).unwrap_or(i64::MAX));
    *span = Span::none();
}

struct Headers<'a>(&'a HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(HeaderName::as_str).collect()
    }
}

struct HeadersMut<'a>(&'a mut HeaderMap);

impl Injector for HeadersMut<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (
            HeaderName::try_from(key),
            HeaderValue::try_from(value.as_str()),
        ) {
            self.0.insert(name, value);
        }
    }
}

/// Applies [`Trace`]. See the [module docs](self).
#[derive(Clone, Copy, Debug)]
pub struct TraceLayer {
    name: &'static str,
}

impl TraceLayer {
    /// Calls' spans named `name` (`hoopguard.aws`, `hoopguard.mcp`).
    pub const fn new(name: &'static str) -> Self {
        TraceLayer { name }
    }
}

impl<S> Layer<S> for TraceLayer {
    type Service = Trace<S>;

    fn layer(&self, inner: S) -> Trace<S> {
        Trace {
            inner,
            name: self.name,
        }
    }
}

/// Runs each call inside its span. See the [module docs](self).
#[derive(Clone, Debug)]
pub struct Trace<S> {
    inner: S,
    name: &'static str,
}

impl<S, B, ResB> Service<Request<B>> for Trace<S>
where
    S: Service<Request<B>, Response = Response<ResB>>,
{
    type Response = Response<ResB>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let span = tracing::info_span!(
            target: TARGET,
            "hoopguard.call",
            otel.name = self.name,
            otel.kind = "server",
            otel.status_code = Empty,
            http.request.method = req.method().as_str(),
            http.response.status_code = Empty,
            hoopguard.subject = Empty,
            hoopguard.issuer = Empty,
            hoopguard.connection = Empty,
            hoopguard.call = Empty,
            hoopguard.decision = Empty,
            hoopguard.rule = Empty,
            hoopguard.approval_id = Empty,
        );
        if !span.is_disabled() {
            let parent = opentelemetry::global::get_text_map_propagator(|p| {
                p.extract(&Headers(req.headers()))
            });
            // A parent that cannot be set (no OpenTelemetry layer) leaves a root span.
            let _ = span.set_parent(parent);
        }
        let inner = self.inner.call(req).instrument(span);
        ResponseFuture {
            inner,
            kind: Kind::Server,
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    Server,
    Client,
}

pin_project! {
    /// The future of [`Trace`] and [`UpstreamTrace`]: the inner future inside the span, which
    /// records the answer's status when it is ready.
    #[derive(Debug)]
    pub struct ResponseFuture<F> {
        #[pin]
        inner: Instrumented<F>,
        kind: Kind,
    }
}

impl<F, ResB, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<ResB>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let out = std::task::ready!(this.inner.as_mut().poll(cx));
        let span = this.inner.as_ref().get_ref().span();
        match &out {
            Ok(resp) => {
                let status = resp.status();
                span.record("http.response.status_code", i64::from(status.as_u16()));
                // OpenTelemetry's HTTP conventions: a server's span fails on 5xx, a client's on
                // any error status.
                let failed = match this.kind {
                    Kind::Server => status.is_server_error(),
                    Kind::Client => status.is_client_error() || status.is_server_error(),
                };
                if failed {
                    span.record("otel.status_code", "ERROR");
                }
            }
            Err(_) => {
                span.record("otel.status_code", "ERROR");
            }
        }
        Poll::Ready(out)
    }
}

/// Applies [`UpstreamTrace`]. See the [module docs](self).
#[derive(Clone, Copy, Debug, Default)]
pub struct UpstreamTraceLayer {
    _private: (),
}

impl UpstreamTraceLayer {
    /// A span per request sent upstream, its context sent along.
    pub const fn new() -> Self {
        UpstreamTraceLayer { _private: () }
    }
}

impl<S> Layer<S> for UpstreamTraceLayer {
    type Service = UpstreamTrace<S>;

    fn layer(&self, inner: S) -> UpstreamTrace<S> {
        UpstreamTrace { inner }
    }
}

/// Sends each request upstream inside a span of its own, with the trace context in its headers.
/// See the [module docs](self).
#[derive(Clone, Debug)]
pub struct UpstreamTrace<S> {
    inner: S,
}

impl<S, B, ResB> Service<Request<B>> for UpstreamTrace<S>
where
    S: Service<Request<B>, Response = Response<ResB>>,
{
    type Response = Response<ResB>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let span = tracing::info_span!(
            target: TARGET,
            "hoopguard.upstream",
            otel.name = "hoopguard.upstream",
            otel.kind = "client",
            otel.status_code = Empty,
            http.request.method = req.method().as_str(),
            http.response.status_code = Empty,
        );
        // Upstream sees hoopguard's trace context or none, never the caller's as it was sent.
        for name in TRACE_HEADERS {
            req.headers_mut().remove(name);
        }
        if !span.is_disabled() {
            let cx = span.context();
            opentelemetry::global::get_text_map_propagator(|p| {
                p.inject_context(&cx, &mut HeadersMut(req.headers_mut()));
            });
        }
        ResponseFuture {
            inner: self.inner.call(req).instrument(span),
            kind: Kind::Client,
        }
    }
}
