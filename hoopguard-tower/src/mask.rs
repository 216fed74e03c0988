//! Masks secrets in response bodies as they stream.
//!
//! [`MaskLayer`] wraps the response body in a [`MaskBody`] that runs every data frame through a
//! [masking stream](hoopguard_core::mask::Stream), holding back only what a match could still
//! span. It:
//!
//! * drops `Content-Length` (the length changes) and DynamoDB's `x-amz-crc32` (it would no longer
//!   match a changed body, and botocore retries a mismatch ten times);
//! * decodes `gzip` and `deflate` bodies and sends them on decoded; any other encoding cannot be
//!   masked and is refused with `502` (fail closed), so it also asks upstream for `identity`;
//! * masks `text/event-stream` event by event, inside the `data:` lines, without breaking the
//!   framing (each event is sent as soon as it is complete);
//! * passes binary content types (images, audio, video, archives, `application/octet-stream`)
//!   untouched, by default.
//!
//! # Example
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! use std::{convert::Infallible, sync::Arc};
//! use bytes::Bytes;
//! use http::{Request, Response};
//! use http_body_util::{BodyExt, Full};
//! use hoopguard_core::mask::{Engine, MaskConfig};
//! use hoopguard_tower::mask::MaskLayer;
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! let engine = Arc::new(Engine::new(&MaskConfig::default()).unwrap());
//! let svc = ServiceBuilder::new()
//!     .layer(MaskLayer::new(engine))
//!     .service_fn(|_req: Request<()>| async {
//!         Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(r#"{"key":"AKIAIOSFODNN7EXAMPLE"}"#))))
//!     });
//! let resp = svc.oneshot(Request::new(())).await.unwrap();
//! let body = resp.into_body().collect().await.unwrap().to_bytes();
//! assert_eq!(body, r#"{"key":"[MASKED:aws-access-key-id]"}"#);
//! # }
//! ```

use std::future::Future;
use std::io::Write;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use flate2::write::{GzDecoder, ZlibDecoder};
use hoopguard_core::mask::{Engine, Stream};
use http::header::{ACCEPT_ENCODING, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tower::{Layer, Service};

use crate::BoxError;

/// The largest server-sent event masked as one piece; a larger one ends the stream (closed).
pub const MAX_EVENT: usize = 4 * 1024 * 1024;

/// Content types passed through untouched by default (prefixes).
const BINARY: &[&str] = &[
    "image/",
    "audio/",
    "video/",
    "font/",
    "application/octet-stream",
    "binary/octet-stream",
    "application/zip",
    "application/gzip",
    "application/x-tar",
    "application/pdf",
    "application/x-amz-json-1.0+binary",
];

/// Applies [`Mask`] to a service. See the [module docs](self).
#[derive(Clone, Debug)]
pub struct MaskLayer {
    engine: Arc<Engine>,
    passthrough: Arc<Vec<String>>,
}

impl MaskLayer {
    /// Masks with `engine`; binary content types pass untouched.
    pub fn new(engine: Arc<Engine>) -> Self {
        MaskLayer {
            engine,
            passthrough: Arc::new(BINARY.iter().map(|s| s.to_string()).collect()),
        }
    }

    /// Masks with `engine`, passing untouched the content types `config.passthrough_types`
    /// names (or the default list when it names none).
    pub fn from_config(engine: Arc<Engine>, config: &hoopguard_core::mask::MaskConfig) -> Self {
        let layer = MaskLayer::new(engine);
        match &config.passthrough_types {
            Some(types) => {
                layer.passthrough(types.iter().map(|t| t.to_ascii_lowercase()).collect())
            }
            None => layer,
        }
    }

    /// Replaces the content-type prefixes that pass untouched.
    pub fn passthrough(mut self, prefixes: Vec<String>) -> Self {
        self.passthrough = Arc::new(prefixes);
        self
    }
}

impl<S> Layer<S> for MaskLayer {
    type Service = Mask<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Mask {
            inner,
            engine: self.engine.clone(),
            passthrough: self.passthrough.clone(),
        }
    }
}

/// Masks response bodies. See the [module docs](self).
#[derive(Clone, Debug)]
pub struct Mask<S> {
    inner: S,
    engine: Arc<Engine>,
    passthrough: Arc<Vec<String>>,
}

impl<S> Mask<S> {
    /// Wraps `inner`.
    pub fn new(inner: S, engine: Arc<Engine>) -> Self {
        MaskLayer::new(engine).layer(inner)
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, ReqB, ResB> Service<Request<ReqB>> for Mask<S>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
    ResB: Body<Data = Bytes>,
    ResB::Error: Into<BoxError>,
{
    type Response = Response<MaskBody<ResB>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqB>) -> Self::Future {
        // Only what can be decoded here may come back.
        req.headers_mut()
            .insert(ACCEPT_ENCODING, HeaderValue::from_static("identity"));
        ResponseFuture {
            // A HEAD answer has no body, and its Content-Length describes the resource.
            head: req.method() == http::Method::HEAD,
            inner: self.inner.call(req),
            engine: Some(self.engine.clone()),
            passthrough: self.passthrough.clone(),
        }
    }
}

pin_project! {
    /// The future of [`Mask`].
    #[derive(Debug)]
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        engine: Option<Arc<Engine>>,
        passthrough: Arc<Vec<String>>,
        head: bool,
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Output = Result<Response<MaskBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let resp = std::task::ready!(this.inner.poll(cx))?;
        let engine = this.engine.take().expect("polled after completion");
        if *this.head {
            let (parts, body) = resp.into_parts();
            return Poll::Ready(Ok(Response::from_parts(parts, MaskBody::passthrough(body))));
        }
        Poll::Ready(Ok(wrap(resp, engine, this.passthrough)))
    }
}

fn wrap<B>(
    resp: Response<B>,
    engine: Arc<Engine>,
    passthrough: &[String],
) -> Response<MaskBody<B>> {
    let (mut parts, body) = resp.into_parts();
    let ctype = parts
        .headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    if passthrough.iter().any(|p| ctype.starts_with(p.as_str())) {
        return Response::from_parts(parts, MaskBody::passthrough(body));
    }
    let decoder = match encoding(&parts.headers).as_deref() {
        None | Some("identity") => None,
        Some("gzip") | Some("x-gzip") => Some(Decoder::Gzip(GzDecoder::new(Vec::new()))),
        Some("deflate") => Some(Decoder::Zlib(ZlibDecoder::new(Vec::new()))),
        Some(other) => {
            tracing::warn!(
                encoding = other,
                "refusing a response that cannot be decoded for masking"
            );
            let msg = format!(
                "{{\"error\":\"unmaskable_response\",\"message\":\"the upstream answered with Content-Encoding `{other}`, which hoopguard cannot decode to mask; nothing was passed on\"}}"
            );
            let mut r = Response::new(MaskBody::refusal(Bytes::from(msg)));
            *r.status_mut() = StatusCode::BAD_GATEWAY;
            r.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            return r;
        }
    };
    // A masked body is not the one these describe: its length and checksums (DynamoDB's CRC32,
    // S3's `x-amz-checksum-*` and `Content-MD5`, which SDKs check) go.
    parts.headers.remove(CONTENT_LENGTH);
    parts.headers.remove("x-amz-crc32");
    parts.headers.remove("content-md5");
    let checksums: Vec<http::HeaderName> = parts
        .headers
        .keys()
        .filter(|n| n.as_str().starts_with("x-amz-checksum-"))
        .cloned()
        .collect();
    for name in checksums {
        parts.headers.remove(name);
    }
    if decoder.is_some() {
        parts.headers.remove(CONTENT_ENCODING);
    }
    let sse = ctype.starts_with("text/event-stream");
    Response::from_parts(parts, MaskBody::masking(body, engine, decoder, sse))
}

fn encoding(headers: &HeaderMap) -> Option<String> {
    headers
        .get(CONTENT_ENCODING)
        .map(|v| v.to_str().unwrap_or("?").trim().to_ascii_lowercase())
        .filter(|v| !v.is_empty())
}

enum Decoder {
    Gzip(GzDecoder<Vec<u8>>),
    Zlib(ZlibDecoder<Vec<u8>>),
}

impl Decoder {
    fn write(&mut self, data: &[u8]) -> std::io::Result<Vec<u8>> {
        match self {
            Decoder::Gzip(d) => {
                d.write_all(data)?;
                Ok(std::mem::take(d.get_mut()))
            }
            Decoder::Zlib(d) => {
                d.write_all(data)?;
                Ok(std::mem::take(d.get_mut()))
            }
        }
    }

    fn finish(&mut self) -> std::io::Result<Vec<u8>> {
        match self {
            Decoder::Gzip(d) => {
                d.try_finish()?;
                Ok(std::mem::take(d.get_mut()))
            }
            Decoder::Zlib(d) => {
                d.try_finish()?;
                Ok(std::mem::take(d.get_mut()))
            }
        }
    }
}

/// How a body is treated.
enum Mode {
    Pass,
    Own(Option<Bytes>),
    Plain(Box<Stream>),
    Sse { engine: Arc<Engine>, buf: Vec<u8> },
}

pin_project! {
    /// A response body masked as it streams. See the [module docs](self).
    pub struct MaskBody<B> {
        #[pin]
        inner: Option<B>,
        mode: Mode,
        decoder: Option<Decoder>,
        trailers: Option<HeaderMap>,
        finished: bool,
        // `hoopguard.mask`, while a masked body streams.
        span: tracing::Span,
        bytes: u64,
    }
}

impl<B> std::fmt::Debug for MaskBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MaskBody").finish_non_exhaustive()
    }
}

impl<B> MaskBody<B> {
    fn passthrough(body: B) -> Self {
        Self::with(Some(body), Mode::Pass, None)
    }

    fn refusal(bytes: Bytes) -> Self {
        Self::with(None, Mode::Own(Some(bytes)), None)
    }

    fn masking(body: B, engine: Arc<Engine>, decoder: Option<Decoder>, sse: bool) -> Self {
        let mode = if sse {
            Mode::Sse {
                engine,
                buf: Vec::new(),
            }
        } else {
            Mode::Plain(Box::new(engine.stream()))
        };
        let mut b = Self::with(Some(body), mode, decoder);
        b.span = crate::trace::answer_step("hoopguard.mask");
        b
    }

    fn with(inner: Option<B>, mode: Mode, decoder: Option<Decoder>) -> Self {
        MaskBody {
            inner,
            mode,
            decoder,
            trailers: None,
            finished: false,
            span: tracing::Span::none(),
            bytes: 0,
        }
    }
}

/// Masks the complete events at the front of `buf` (removing them) into `out`.
fn drain_events(engine: &Engine, buf: &mut Vec<u8>, out: &mut Vec<u8>, eof: bool) {
    let mut start = 0;
    loop {
        let rest = &buf[start..];
        let end = memchr::memmem::find(rest, b"\n\n")
            .map(|i| i + 2)
            .or_else(|| memchr::memmem::find(rest, b"\r\n\r\n").map(|i| i + 4));
        let end = match end {
            Some(e) => e,
            None if eof && !rest.is_empty() => rest.len(),
            None => break,
        };
        mask_event(engine, &rest[..end], out);
        start += end;
    }
    buf.drain(..start);
}

/// Masks the payload of each `data:` line of one event; other lines pass as they are.
fn mask_event(engine: &Engine, event: &[u8], out: &mut Vec<u8>) {
    for line in event.split_inclusive(|&b| b == b'\n') {
        if let Some(payload) = line.strip_prefix(b"data:") {
            let body_end = payload.len()
                - payload
                    .iter()
                    .rev()
                    .take_while(|b| **b == b'\n' || **b == b'\r')
                    .count();
            out.extend_from_slice(b"data:");
            out.extend_from_slice(&engine.mask(&payload[..body_end]).0);
            out.extend_from_slice(&payload[body_end..]);
        } else {
            out.extend_from_slice(line);
        }
    }
}

impl<B> Body for MaskBody<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let mut this = self.project();
        if let Mode::Own(bytes) = this.mode {
            return Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b))));
        }
        loop {
            if *this.finished {
                return Poll::Ready(this.trailers.take().map(|t| Ok(Frame::trailers(t))));
            }
            let Some(inner) = this.inner.as_mut().as_pin_mut() else {
                *this.finished = true;
                continue;
            };
            let frame = std::task::ready!(inner.poll_frame(cx));
            let mut out = Vec::new();
            match frame {
                Some(Ok(frame)) => {
                    let frame = match frame.into_data() {
                        Ok(data) => data,
                        Err(frame) => {
                            if let Ok(t) = frame.into_trailers() {
                                this.trailers.get_or_insert_with(HeaderMap::new).extend(t);
                            }
                            continue;
                        }
                    };
                    if let Mode::Pass = this.mode {
                        return Poll::Ready(Some(Ok(Frame::data(frame))));
                    }
                    let data = match this.decoder.as_mut() {
                        Some(d) => d.write(&frame).map_err(|e| -> BoxError {
                            format!("cannot decode the response to mask it: {e}").into()
                        })?,
                        None => frame.to_vec(),
                    };
                    *this.bytes += data.len() as u64;
                    match this.mode {
                        Mode::Plain(s) => s.push(&data, &mut out),
                        Mode::Sse { engine, buf } => {
                            buf.extend_from_slice(&data);
                            drain_events(engine, buf, &mut out, false);
                            if buf.len() > MAX_EVENT {
                                return Poll::Ready(Some(Err(
                                    "a server-sent event exceeds 4 MiB; the stream is closed rather than passed unmasked".into(),
                                )));
                            }
                        }
                        Mode::Pass | Mode::Own(_) => {}
                    }
                }
                Some(Err(e)) => return Poll::Ready(Some(Err(e.into()))),
                None => {
                    this.inner.set(None);
                    *this.finished = true;
                    if let Mode::Pass = this.mode {
                        continue;
                    }
                    crate::trace::answer_done(this.span, *this.bytes);
                    let tail = match this.decoder.as_mut() {
                        Some(d) => d.finish().map_err(|e| -> BoxError {
                            format!("the compressed response is truncated: {e}").into()
                        })?,
                        None => Vec::new(),
                    };
                    match this.mode {
                        Mode::Plain(s) => {
                            s.push(&tail, &mut out);
                            s.finish(&mut out);
                        }
                        Mode::Sse { engine, buf } => {
                            buf.extend_from_slice(&tail);
                            drain_events(engine, buf, &mut out, true);
                        }
                        Mode::Pass | Mode::Own(_) => {}
                    }
                }
            }
            if !out.is_empty() {
                return Poll::Ready(Some(Ok(Frame::data(Bytes::from(out)))));
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.mode {
            Mode::Own(b) => b.is_none(),
            _ => self.finished && self.trailers.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match (&self.mode, &self.inner) {
            (Mode::Own(Some(b)), _) => SizeHint::with_exact(b.len() as u64),
            (Mode::Pass, Some(inner)) => inner.size_hint(),
            _ => SizeHint::default(),
        }
    }
}

#[cfg(test)]
mod tests;
