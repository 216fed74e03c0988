//! The MCP data path: one `tools/call` of an echo tool on an rmcp server (SSE answers), sent
//! straight to it and through a hoopguard started in the same process (authentication, policy,
//! recording batched, masking of the SSE answer); and SSE masking throughput against passing
//! the same event stream through untouched — all in the same run.
//!
//! `cargo bench --bench mcp`

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use hoopguard::core::mask::{Engine, MaskConfig};
use hoopguard::tower::mask::MaskLayer;
use http_body_util::BodyExt;
use tower::{ServiceBuilder, ServiceExt};

#[path = "support/inproc.rs"]
mod inproc;
#[path = "support/mcp.rs"]
mod support;

fn calls(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (direct, through) = rt.block_on(async {
        let up = support::upstream().await;
        let (url, token) = support::gateway(dir.path(), up).await;
        (
            support::Session::open(&format!("http://{up}/mcp"), None).await,
            support::Session::open(&url, Some(&token)).await,
        )
    });
    let n = AtomicU64::new(1);
    let mut g = c.benchmark_group("mcp_tools_call");
    for (name, session) in [("direct", &direct), ("through_hoopguard", &through)] {
        g.bench_function(name, |b| {
            b.to_async(&rt)
                .iter(|| session.echo(n.fetch_add(1, Ordering::Relaxed)));
        });
    }
    g.finish();
}

/// 16 MiB of SSE events, each a tool result of ~2 KiB of JSON text with no secret in it.
fn sse_stream() -> Bytes {
    let mut out = Vec::new();
    let mut i = 0u64;
    while out.len() < 16 << 20 {
        let text: String = (0..40)
            .map(|j| {
                format!(
                    "line {j} of result {i}: status=ok latency_ms={} region=eu-west-1; ",
                    (i * 7 + j) % 997
                )
            })
            .collect();
        let msg = serde_json::json!({"jsonrpc":"2.0","id":i,"result":{"content":[{"type":"text","text":text}],"isError":false}});
        out.extend_from_slice(format!("event: message\nid: {i}\ndata: {msg}\n\n").as_bytes());
        i += 1;
    }
    Bytes::from(out)
}

fn sse_masking(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let stream = sse_stream();
    let engine = Arc::new(Engine::new(&MaskConfig::default()).unwrap());
    let mut g = c.benchmark_group("sse_masking");
    g.throughput(Throughput::Bytes(stream.len() as u64));
    g.sample_size(10);
    for (name, ctype) in [
        ("masked", "text/event-stream"),
        ("passthrough", "application/octet-stream"),
    ] {
        let engine = engine.clone();
        let stream = stream.clone();
        g.bench_function(name, |b| {
            b.iter(|| {
                rt.block_on(async {
                    let chunks: Vec<Bytes> = stream
                        .chunks(64 * 1024)
                        .map(|c| stream.slice_ref(c))
                        .collect();
                    let svc = ServiceBuilder::new()
                        .layer(MaskLayer::new(engine.clone()))
                        .service_fn(move |_req: http::Request<()>| {
                            let frames = chunks.clone().into_iter().map(|b| {
                                Ok::<_, std::convert::Infallible>(http_body::Frame::data(b))
                            });
                            let body =
                                http_body_util::StreamBody::new(futures_util::stream::iter(frames));
                            async move {
                                Ok::<_, std::convert::Infallible>(
                                    http::Response::builder()
                                        .header("content-type", ctype)
                                        .body(body)
                                        .unwrap(),
                                )
                            }
                        });
                    let resp = svc.oneshot(http::Request::new(())).await.unwrap();
                    let out = resp.into_body().collect().await.unwrap().to_bytes();
                    assert!(out.len() >= stream.len() - 16);
                })
            });
        });
    }
    g.finish();
}

criterion_group!(benches, calls, sse_masking);
criterion_main!(benches);
