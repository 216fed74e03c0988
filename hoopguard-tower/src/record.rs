//! Records what came back: the answer to each recorded call, after masking.
//!
//! [`RecordLayer`] goes outside [`MaskLayer`](crate::mask::MaskLayer), so what it sees is what
//! the caller sees. A data path that recorded a call marks its response with a [`RecordTarget`]
//! extension (the session); the layer then copies up to [`RecordLayer::cap`] bytes of a textual
//! body (JSON, XML, text, event streams — never binary objects) as the body streams, and when
//! the body ends appends a `response` event with the status, the byte count, the (masked,
//! capped) body and the latency. The call has already happened by then, so a failure to record
//! the answer is logged, not refused; the decision was recorded (fail closed) before the call
//! went on.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use hoopguard_core::record::Recorder;
use http::header::CONTENT_TYPE;
use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use serde_json::json;
use tower::{Layer, Service};

/// The address of the client a request came from, as a request extension (servers set it from
/// their accepted connection; recordings name it at a session's start).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub std::net::SocketAddr);

/// Where a caller is: recorded when its session starts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Origin {
    /// The client's address.
    pub addr: Option<String>,
    /// Its `User-Agent` (at most 200 characters).
    pub user_agent: Option<String>,
}

impl Origin {
    /// The origin of an HTTP request: its [`ClientAddr`] extension and `User-Agent` header.
    pub fn of(headers: &http::HeaderMap, extensions: &http::Extensions) -> Origin {
        Origin {
            addr: extensions.get::<ClientAddr>().map(|a| a.0.to_string()),
            user_agent: headers
                .get(http::header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .map(|s| s.chars().take(200).collect()),
        }
    }
}

/// The recording a response belongs to, set by the data path as a response extension.
#[derive(Debug, Clone)]
pub struct RecordTarget {
    /// The session (recording) id.
    pub session: String,
}

/// Applies [`RecordService`]. See the [module docs](self).
#[derive(Debug, Clone)]
pub struct RecordLayer {
    recorder: Option<Arc<Recorder>>,
    cap: usize,
}

impl RecordLayer {
    /// Records answers into `recorder`, bodies up to its [`Recorder::body_cap`].
    pub fn new(recorder: Arc<Recorder>) -> Self {
        RecordLayer {
            cap: recorder.body_cap(),
            recorder: Some(recorder),
        }
    }

    /// A layer that records nothing (for stacks without a recorder).
    pub fn disabled() -> Self {
        RecordLayer {
            recorder: None,
            cap: 0,
        }
    }

    /// How many bytes of each body are kept.
    pub fn cap(mut self, bytes: usize) -> Self {
        self.cap = bytes;
        self
    }
}

impl<S> Layer<S> for RecordLayer {
    type Service = RecordService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RecordService {
            inner,
            recorder: self.recorder.clone(),
            cap: self.cap,
        }
    }
}

/// Records answers. See the [module docs](self).
#[derive(Debug, Clone)]
pub struct RecordService<S> {
    inner: S,
    recorder: Option<Arc<Recorder>>,
    cap: usize,
}

impl<S, ReqB, ResB> Service<Request<ReqB>> for RecordService<S>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
    S::Future: Send + 'static,
{
    type Response = Response<RecordBody<ResB>>;
    type Error = S::Error;
    type Future =
        Pin<Box<dyn std::future::Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        let started = Instant::now();
        let fut = self.inner.call(req);
        let (recorder, cap) = (self.recorder.clone(), self.cap);
        Box::pin(async move {
            let resp = fut.await?;
            let (Some(recorder), Some(target)) =
                (recorder, resp.extensions().get::<RecordTarget>().cloned())
            else {
                return Ok(resp.map(|body| RecordBody {
                    inner: body,
                    tap: None,
                }));
            };
            let ctype = resp
                .headers()
                .get(CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_ascii_lowercase();
            let textual =
                ctype.contains("json") || ctype.contains("xml") || ctype.starts_with("text/");
            let tap = Tap {
                recorder,
                session: target.session,
                status: resp.status().as_u16(),
                ctype,
                keep: if textual { cap } else { 0 },
                kept: Vec::new(),
                bytes: 0,
                started,
                done: false,
                span: crate::trace::answer_step("hoopguard.record_answer"),
            };
            Ok(resp.map(|body| RecordBody {
                inner: body,
                tap: Some(Box::new(tap)),
            }))
        })
    }
}

struct Tap {
    recorder: Arc<Recorder>,
    session: String,
    status: u16,
    ctype: String,
    keep: usize,
    kept: Vec<u8>,
    bytes: u64,
    started: Instant,
    done: bool,
    span: tracing::Span,
}

impl Tap {
    fn data(&mut self, d: &[u8]) {
        self.bytes += d.len() as u64;
        let room = self.keep.saturating_sub(self.kept.len());
        self.kept.extend_from_slice(&d[..room.min(d.len())]);
    }

    /// Appends the `response` event, once: at the end of the body, or when it is dropped early.
    fn finish(&mut self, complete: bool) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        crate::trace::answer_done(&mut self.span, self.bytes);
        let body = (self.keep > 0).then(|| String::from_utf8_lossy(&self.kept).into_owned());
        let event = json!({
            "status": self.status,
            "content_type": self.ctype,
            "bytes": self.bytes,
            "body": body,
            "truncated": self.bytes > self.kept.len() as u64 && self.keep > 0,
            "complete": complete,
            "latency_ms": self.started.elapsed().as_millis() as u64,
        });
        // Not waited for: the answer has gone out; a failure is logged.
        let session = self.session.clone();
        self.recorder
            .submit(&self.session, "response", event, move |r| {
                if let Err(e) = r {
                    tracing::error!(session = %session, error = %e, "cannot record an answer");
                }
            });
    }
}

impl Drop for Tap {
    fn drop(&mut self) {
        self.finish(false);
    }
}

pin_project! {
    /// A response body copied into the recording as it streams.
    pub struct RecordBody<B> {
        #[pin]
        inner: B,
        tap: Option<Box<Tap>>,
    }
}

impl<B> std::fmt::Debug for RecordBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordBody").finish_non_exhaustive()
    }
}

impl<B> Body for RecordBody<B>
where
    B: Body<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = self.project();
        let frame = std::task::ready!(this.inner.poll_frame(cx));
        if let Some(tap) = this.tap.as_mut() {
            match &frame {
                Some(Ok(f)) => {
                    if let Some(d) = f.data_ref() {
                        tap.data(d);
                    }
                }
                None => tap.finish(true),
                Some(Err(_)) => tap.finish(false),
            }
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, Full};
    use tower::{ServiceBuilder, ServiceExt};

    async fn answer(
        dir: &std::path::Path,
        ctype: &'static str,
        body: &'static str,
    ) -> Vec<serde_json::Value> {
        let rec =
            Arc::new(Recorder::open(dir, hoopguard_core::record::Durability::EveryEvent).unwrap());
        rec.append("s1", "call", json!({"action": "x"})).unwrap();
        let svc = ServiceBuilder::new()
            .layer(RecordLayer::new(rec.clone()).cap(8))
            .service_fn(move |_req: Request<()>| async move {
                let mut r = Response::builder()
                    .header(CONTENT_TYPE, ctype)
                    .body(Full::new(Bytes::from(body)))
                    .unwrap();
                r.extensions_mut().insert(RecordTarget {
                    session: "s1".into(),
                });
                Ok::<_, std::convert::Infallible>(r)
            });
        let resp = svc.oneshot(Request::new(())).await.unwrap();
        let out = resp.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(out, body.as_bytes(), "the body passes unchanged");
        hoopguard_core::record::read_session(dir, "s1")
            .unwrap()
            .into_iter()
            .map(|e| e.data)
            .collect()
    }

    #[tokio::test]
    async fn textual_answers_are_kept_up_to_the_cap_binary_ones_counted() {
        let dir = tempfile::tempdir().unwrap();
        let events = answer(dir.path(), "application/json", r#"{"ok":true,"n":12345}"#).await;
        let r = &events[1];
        assert_eq!(r["status"], 200);
        assert_eq!(r["bytes"], 21);
        assert_eq!(r["body"], r#"{"ok":tr"#);
        assert_eq!(r["truncated"], true);
        assert_eq!(r["complete"], true);
        let dir = tempfile::tempdir().unwrap();
        let events = answer(dir.path(), "binary/octet-stream", "\u{1}\u{2}secret").await;
        assert_eq!(events[1]["body"], serde_json::Value::Null);
        assert_eq!(events[1]["bytes"], 8);
    }
}
