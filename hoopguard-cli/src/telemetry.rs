//! The process's log and trace output: log lines on stderr (human or JSON, filtered by
//! `--log`), and, with `[telemetry] otlp_endpoint`, every call's spans
//! ([`hoopguard_tower::trace`]) exported over OTLP/HTTP (protobuf) in batches, every call
//! sampled, W3C trace context sent upstream (and read from callers only with
//! `telemetry.accept_trace_context`).

use std::io::IsTerminal;
use std::time::Duration;

use opentelemetry::propagation::text_map_propagator::FieldIter;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use tracing_subscriber::filter::{FilterExt, Targets, filter_fn};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

use crate::config::TelemetryConfig;

/// How log lines are written.
#[derive(Debug, Clone, Copy)]
pub enum LogFormat {
    /// For people (colours on a terminal).
    Human,
    /// One JSON object per line.
    Json,
}

/// What [`init`] set up; [`Telemetry::shutdown`] sends the spans not yet exported.
#[derive(Debug)]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Exports what is buffered (waiting up to the exporter's timeout) and stops exporting.
    pub fn shutdown(self) {
        if let Some(p) = self.provider {
            if let Err(e) = p.shutdown() {
                tracing::warn!(error = %e, "could not export the last spans");
            }
        }
    }
}

/// Installs the process's subscriber: logs by `filter` (tracing's `EnvFilter` syntax; an
/// invalid one means `info`), and spans to the collector `telemetry` names, if any. Call once,
/// outside an async runtime (the exporter's HTTP client blocks on a thread of its own).
pub fn init(
    format: LogFormat,
    filter: &str,
    telemetry: Option<&TelemetryConfig>,
) -> Result<Telemetry, String> {
    let env = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    // The calls' spans are for tracing systems; a log line gains nothing from them.
    let logs = env.and(filter_fn(|m| m.target() != hoopguard_tower::trace::TARGET));
    let fmt: Box<dyn Layer<Registry> + Send + Sync> = match format {
        LogFormat::Human => tracing_subscriber::fmt::layer()
            .with_ansi(std::io::stderr().is_terminal())
            .with_writer(std::io::stderr)
            .with_filter(logs)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_writer(std::io::stderr)
            .with_filter(logs)
            .boxed(),
    };
    let provider = match telemetry.and_then(|t| Some((t, t.traces_url()?))) {
        Some((t, url)) => Some(provider(&url, t)?),
        None => None,
    };
    let otel = provider.as_ref().map(|p| {
        tracing_opentelemetry::layer()
            .with_tracer(p.tracer("hoopguard"))
            // hoopguard's spans and the `decided` event: nothing else (other log events carry
            // fields — an upstream URL — that are for the log, not for a tracing system).
            .with_filter(
                Targets::new()
                    .with_target(hoopguard_tower::trace::TARGET, tracing::Level::INFO)
                    .with_target("hoopguard_tower::policy", tracing::Level::INFO),
            )
    });
    tracing_subscriber::registry()
        .with(fmt)
        .with(otel)
        .try_init()
        .map_err(|e| format!("cannot install the log subscriber: {e}"))?;
    if let Some(url) = telemetry.and_then(TelemetryConfig::traces_url) {
        tracing::info!(%url, "exporting traces over OTLP/HTTP");
    }
    Ok(Telemetry { provider })
}

/// W3C trace context, sent upstream always; read from callers only when they are trusted to
/// place their calls in a trace of their choosing (`telemetry.accept_trace_context`).
#[derive(Debug)]
struct Propagator {
    w3c: TraceContextPropagator,
    accept: bool,
}

impl TextMapPropagator for Propagator {
    fn inject_context(&self, cx: &opentelemetry::Context, injector: &mut dyn Injector) {
        self.w3c.inject_context(cx, injector);
    }

    fn extract_with_context(
        &self,
        cx: &opentelemetry::Context,
        extractor: &dyn Extractor,
    ) -> opentelemetry::Context {
        if self.accept {
            self.w3c.extract_with_context(cx, extractor)
        } else {
            cx.clone()
        }
    }

    fn fields(&self) -> FieldIter<'_> {
        self.w3c.fields()
    }
}

fn provider(url: &str, t: &TelemetryConfig) -> Result<SdkTracerProvider, String> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(url)
        .with_timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| format!("telemetry.otlp_endpoint: cannot set up the exporter: {e}"))?;
    opentelemetry::global::set_text_map_propagator(Propagator {
        w3c: TraceContextPropagator::new(),
        accept: t.accept_trace_context,
    });
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        // Every call is traced: a caller's `sampled` flag does not switch it off.
        .with_sampler(Sampler::AlwaysOn)
        .with_resource(
            Resource::builder()
                .with_service_name(t.service_name.clone())
                .with_attribute(opentelemetry::KeyValue::new(
                    "service.version",
                    env!("CARGO_PKG_VERSION"),
                ))
                .build(),
        )
        .build())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use opentelemetry::trace::TraceContextExt;

    use super::*;

    #[test]
    fn a_callers_trace_context_is_read_only_when_trusted_and_always_sent() {
        let mut carrier = HashMap::new();
        carrier.insert(
            "traceparent".to_string(),
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00".to_string(),
        );
        let read = |accept| {
            let p = Propagator {
                w3c: TraceContextPropagator::new(),
                accept,
            };
            p.extract(&carrier).span().span_context().clone()
        };
        assert!(!read(false).is_valid(), "an agent cannot pick its trace");
        let trusted = read(true);
        assert_eq!(
            trusted.trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        // What is sent upstream is the context given, whichever way callers are treated.
        let p = Propagator {
            w3c: TraceContextPropagator::new(),
            accept: false,
        };
        let cx = opentelemetry::Context::new().with_remote_span_context(trusted);
        let mut out = HashMap::new();
        p.inject_context(&cx, &mut out);
        assert!(
            out["traceparent"].starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-"),
            "{out:?}"
        );
    }
}
