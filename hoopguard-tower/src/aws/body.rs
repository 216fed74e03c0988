//! The body of a verified AWS call: the bytes hoopguard inspected, or a stream checked as it
//! passes.
//!
//! [`SigV4Verify`](super::SigV4Verify) replaces a request's body by an [`AwsBody`]. A body that
//! decides what the call does is [`AwsBody::buffered`]: its exact bytes are classified, bound to
//! approvals, recorded and forwarded. An S3 object upload streams instead, and the check runs in
//! the body itself: the declared SHA-256 is compared when the stream ends, `aws-chunked` framing
//! is removed (chunk signatures checked), a pause longer than the read timeout ends it — and a
//! failed check ends the body with an error, so whatever client sends it aborts the upstream
//! request instead of completing it with bytes the caller did not sign.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! use bytes::Bytes;
//! use http_body_util::BodyExt;
//! use hoopguard_tower::aws::AwsBody;
//!
//! let body = AwsBody::buffered(Bytes::from_static(b"Action=DescribeInstances"));
//! assert_eq!(body.inspected().unwrap().as_ref(), b"Action=DescribeInstances");
//! assert_eq!(body.collect().await.unwrap().to_bytes().as_ref(), b"Action=DescribeInstances");
//!
//! // A stream whose bytes are not the ones signed ends with an error, not with its end.
//! let stream = http_body_util::Full::new(Bytes::from_static(b"other bytes"))
//!     .map_err(|never| match never {})
//!     .boxed_unsync();
//! let signed = hoopguard_core::aws::sha256_hex(b"signed bytes");
//! let body = AwsBody::hashed(stream, signed, Some(11), std::time::Duration::from_secs(5));
//! assert!(body.collect().await.is_err());
//! # }
//! ```

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hoopguard_core::aws::binding::Body as BindingBody;
use hoopguard_core::aws::chunked::Dechunker;
use hoopguard_core::aws::resign::Payload;
use http_body::{Body, Frame, SizeHint};
use http_body_util::combinators::UnsyncBoxBody;

use crate::BoxError;
use crate::body::Reservation;

/// A streamed request body, boxed.
pub type StreamBody = UnsyncBoxBody<Bytes, BoxError>;

/// The body of a verified AWS call. See the [module docs](self).
pub struct AwsBody {
    kind: Kind,
    /// Why the stream was ended with an error, kept for the one who sent it upstream.
    failure: Arc<Mutex<Option<String>>>,
}

enum Kind {
    Buffered {
        bytes: Bytes,
        sha256: String,
        sent: bool,
        _reserved: Option<Reservation>,
    },
    Streamed {
        body: StreamBody,
        /// `None` once the stream ended or failed.
        check: Option<Check>,
        length: Option<u64>,
        gap: Duration,
        timer: Pin<Box<tokio::time::Sleep>>,
    },
}

/// What a streamed body is checked with on its way upstream.
enum Check {
    /// `UNSIGNED-PAYLOAD`: nothing to check but the time it takes.
    Pass,
    /// The declared SHA-256.
    Hash(aws_lc_rs::digest::Context, String),
    /// `aws-chunked`: de-framed, chunk signatures checked.
    Dechunk(Box<Dechunker>),
}

impl std::fmt::Debug for AwsBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.kind {
            Kind::Buffered { bytes, sha256, .. } => f
                .debug_struct("AwsBody::Buffered")
                .field("bytes", &bytes.len())
                .field("sha256", sha256)
                .finish(),
            Kind::Streamed { length, check, .. } => f
                .debug_struct("AwsBody::Streamed")
                .field("length", length)
                .field(
                    "check",
                    &match check {
                        Some(Check::Pass) => "unsigned",
                        Some(Check::Hash(..)) => "sha256",
                        Some(Check::Dechunk(_)) => "aws-chunked",
                        None => "done",
                    },
                )
                .finish(),
        }
    }
}

impl AwsBody {
    /// A body held whole: what is inspected is what is forwarded.
    pub fn buffered(bytes: Bytes) -> AwsBody {
        let sha256 = hoopguard_core::aws::sha256_hex(&bytes);
        AwsBody::buffered_with(bytes, sha256, None)
    }

    /// A body held whole whose SHA-256 is already known, holding `reserved` of a memory budget
    /// until it is dropped.
    pub(crate) fn buffered_with(
        bytes: Bytes,
        sha256: String,
        reserved: Option<Reservation>,
    ) -> AwsBody {
        AwsBody {
            kind: Kind::Buffered {
                bytes,
                sha256,
                sent: false,
                _reserved: reserved,
            },
            failure: Default::default(),
        }
    }

    /// A stream that must hash to `sha256` (hex); `length` bytes are expected. A pause longer
    /// than `gap` ends it with an error.
    pub fn hashed(body: StreamBody, sha256: String, length: Option<u64>, gap: Duration) -> Self {
        let ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
        AwsBody::streamed(body, Check::Hash(ctx, sha256), length, gap)
    }

    /// An `UNSIGNED-PAYLOAD` stream.
    pub fn unsigned(body: StreamBody, length: Option<u64>, gap: Duration) -> Self {
        AwsBody::streamed(body, Check::Pass, length, gap)
    }

    /// An `aws-chunked` stream, de-framed by `dechunker`; `length` is the decoded length.
    pub fn dechunked(
        body: StreamBody,
        dechunker: Dechunker,
        length: Option<u64>,
        gap: Duration,
    ) -> Self {
        AwsBody::streamed(body, Check::Dechunk(Box::new(dechunker)), length, gap)
    }

    fn streamed(body: StreamBody, check: Check, length: Option<u64>, gap: Duration) -> Self {
        AwsBody {
            kind: Kind::Streamed {
                body,
                check: Some(check),
                length,
                gap,
                timer: Box::pin(tokio::time::sleep(gap)),
            },
            failure: Default::default(),
        }
    }

    /// The bytes hoopguard inspected (`None`: a streamed upload).
    pub fn inspected(&self) -> Option<&Bytes> {
        match &self.kind {
            Kind::Buffered { bytes, .. } => Some(bytes),
            Kind::Streamed { .. } => None,
        }
    }

    /// Whether the body is an `aws-chunked` stream forwarded de-framed.
    pub fn is_dechunked(&self) -> bool {
        matches!(
            &self.kind,
            Kind::Streamed {
                check: Some(Check::Dechunk(_)),
                ..
            }
        )
    }

    /// The length upstream receives, when known.
    pub fn length(&self) -> Option<u64> {
        match &self.kind {
            Kind::Buffered { bytes, .. } => Some(bytes.len() as u64),
            Kind::Streamed { length, .. } => *length,
        }
    }

    /// What the upstream signature says of the payload.
    pub fn payload(&self) -> Payload {
        match &self.kind {
            Kind::Buffered { sha256, .. }
            | Kind::Streamed {
                check: Some(Check::Hash(_, sha256)),
                ..
            } => Payload::Sha256(sha256.clone()),
            Kind::Streamed { .. } => Payload::Unsigned,
        }
    }

    /// What an approval of the call binds of its body.
    pub fn binding(&self) -> BindingBody<'_> {
        match &self.kind {
            Kind::Buffered { sha256, .. }
            | Kind::Streamed {
                check: Some(Check::Hash(_, sha256)),
                ..
            } => BindingBody::Sha256(sha256),
            Kind::Streamed { length, .. } => BindingBody::Unsigned { length: *length },
        }
    }

    /// A handle to why the stream was ended with an error (a failed check, a pause): read it
    /// when sending failed, after the body is gone.
    pub fn failure(&self) -> Failure {
        Failure(self.failure.clone())
    }
}

/// Why an [`AwsBody`] stream was aborted (see [`AwsBody::failure`]).
#[derive(Debug, Clone)]
pub struct Failure(Arc<Mutex<Option<String>>>);

impl Failure {
    /// The reason, once; `None` if the body did not fail.
    pub fn take(&self) -> Option<String> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

impl Check {
    fn push(&mut self, data: Bytes) -> Result<Bytes, String> {
        match self {
            Check::Pass => Ok(data),
            Check::Hash(ctx, _) => {
                ctx.update(&data);
                Ok(data)
            }
            Check::Dechunk(d) => {
                let mut out = d.push(&data).map_err(|e| e.to_string())?;
                Ok(if out.len() == 1 {
                    out.pop().expect("one")
                } else {
                    Bytes::from(out.concat())
                })
            }
        }
    }

    fn finish(self) -> Result<(), String> {
        match self {
            Check::Pass => Ok(()),
            Check::Hash(ctx, expected) => {
                if hex::encode(ctx.finish()) == expected {
                    Ok(())
                } else {
                    Err("the body's SHA-256 is not the x-amz-content-sha256 the request was signed with; the upload was aborted".into())
                }
            }
            Check::Dechunk(d) => d.finish().map_err(|e| e.to_string()),
        }
    }
}

impl Body for AwsBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        let failure = &this.failure;
        let fail = |why: String| {
            *failure.lock().unwrap_or_else(|p| p.into_inner()) = Some(why.clone());
            Poll::Ready(Some(Err(BoxError::from(why))))
        };
        match &mut this.kind {
            Kind::Buffered { bytes, sent, .. } => {
                if *sent || bytes.is_empty() {
                    return Poll::Ready(None);
                }
                *sent = true;
                Poll::Ready(Some(Ok(Frame::data(bytes.clone()))))
            }
            Kind::Streamed {
                body,
                check,
                gap,
                timer,
                ..
            } => loop {
                let Some(c) = check.as_mut() else {
                    return Poll::Ready(None);
                };
                match Pin::new(&mut *body).poll_frame(cx) {
                    Poll::Pending => {
                        if timer.as_mut().poll(cx).is_ready() {
                            *check = None;
                            return fail(format!(
                                "the upload paused for more than {} (`aws.body_read_timeout`); it was aborted",
                                humantime::format_duration(*gap)
                            ));
                        }
                        return Poll::Pending;
                    }
                    Poll::Ready(Some(Ok(frame))) => {
                        let Ok(data) = frame.into_data() else {
                            // HTTP trailers of the caller's request are not forwarded.
                            continue;
                        };
                        timer.as_mut().reset(tokio::time::Instant::now() + *gap);
                        match c.push(data) {
                            Ok(out) if out.is_empty() => continue,
                            Ok(out) => return Poll::Ready(Some(Ok(Frame::data(out)))),
                            Err(why) => {
                                *check = None;
                                return fail(why);
                            }
                        }
                    }
                    Poll::Ready(Some(Err(e))) => {
                        *check = None;
                        return Poll::Ready(Some(Err(e)));
                    }
                    Poll::Ready(None) => {
                        let c = check.take().expect("checked above");
                        return match c.finish() {
                            Ok(()) => Poll::Ready(None),
                            Err(why) => fail(why),
                        };
                    }
                }
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Buffered { bytes, sent, .. } => *sent || bytes.is_empty(),
            Kind::Streamed { check, .. } => check.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Buffered { bytes, sent, .. } => {
                SizeHint::with_exact(if *sent { 0 } else { bytes.len() as u64 })
            }
            // A streamed length is what the caller declared: not promised to the client.
            Kind::Streamed { .. } => SizeHint::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;

    use super::*;

    fn stream(parts: &[&'static [u8]]) -> StreamBody {
        let frames: Vec<Result<Frame<Bytes>, BoxError>> = parts
            .iter()
            .map(|p| Ok(Frame::data(Bytes::from_static(p))))
            .collect();
        http_body_util::StreamBody::new(futures_util::stream::iter(frames)).boxed_unsync()
    }

    #[tokio::test]
    async fn a_hashed_stream_passes_its_bytes_and_fails_on_other_bytes() {
        let gap = Duration::from_secs(5);
        let good = AwsBody::hashed(
            stream(&[b"hello ", b"world"]),
            hoopguard_core::aws::sha256_hex(b"hello world"),
            Some(11),
            gap,
        );
        assert_eq!(good.collect().await.unwrap().to_bytes(), "hello world");

        let bad = AwsBody::hashed(
            stream(&[b"hello ", b"there"]),
            hoopguard_core::aws::sha256_hex(b"hello world"),
            Some(11),
            gap,
        );
        let failure = bad.failure();
        let err = bad.collect().await.unwrap_err();
        assert!(err.to_string().contains("SHA-256"), "{err}");
        assert!(failure.take().unwrap().contains("aborted"));
    }

    #[tokio::test]
    async fn a_stream_that_pauses_too_long_is_aborted() {
        use futures_util::StreamExt;
        // One part, then silence with the stream still open.
        let frames = futures_util::stream::iter([Ok::<_, BoxError>(Frame::data(
            Bytes::from_static(b"part"),
        ))])
        .chain(futures_util::stream::pending());
        let body = AwsBody::unsigned(
            http_body_util::StreamBody::new(frames).boxed_unsync(),
            None,
            Duration::from_millis(200),
        );
        let failure = body.failure();
        let err = body.collect().await.unwrap_err();
        assert!(err.to_string().contains("paused"), "{err}");
        assert!(failure.take().is_some());
    }

    #[tokio::test]
    async fn a_buffered_body_is_sent_once_with_its_length() {
        let body = AwsBody::buffered(Bytes::from_static(b"abc"));
        assert_eq!(body.size_hint().exact(), Some(3));
        assert_eq!(body.length(), Some(3));
        assert!(matches!(body.payload(), Payload::Sha256(_)));
        assert_eq!(body.collect().await.unwrap().to_bytes(), "abc");
        assert!(AwsBody::buffered(Bytes::new()).is_end_stream());
    }
}
