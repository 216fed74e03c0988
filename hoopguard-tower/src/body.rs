//! The response body of a layer that can answer by itself.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::Full;
use pin_project_lite::pin_project;

pin_project! {
    /// Either the inner service's body, or a complete body the layer wrote itself (a refusal).
    ///
    /// Passes `is_end_stream` and `size_hint` through, so `Content-Length` stays right.
    /// The fields are the bodies themselves.
    #[project = GuardBodyProj]
    #[allow(missing_docs)]
    #[derive(Debug)]
    pub enum GuardBody<B> {
        /// The inner service's body, untouched.
        Inner {
            #[pin] body: B,
        },
        /// A body written by the layer.
        Own {
            #[pin] body: Full<Bytes>,
        },
    }
}

impl<B> GuardBody<B> {
    /// Wraps the inner service's body.
    pub fn inner(body: B) -> Self {
        GuardBody::Inner { body }
    }

    /// A body of the layer's own.
    pub fn own(bytes: impl Into<Bytes>) -> Self {
        GuardBody::Own {
            body: Full::new(bytes.into()),
        }
    }
}

impl<B> Body for GuardBody<B>
where
    B: Body<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.project() {
            GuardBodyProj::Inner { body } => body.poll_frame(cx),
            GuardBodyProj::Own { body } => match body.poll_frame(cx) {
                Poll::Ready(Some(Ok(f))) => Poll::Ready(Some(Ok(f))),
                Poll::Ready(Some(Err(never))) => match never {},
                Poll::Ready(None) => Poll::Ready(None),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            GuardBody::Inner { body } => body.is_end_stream(),
            GuardBody::Own { body } => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            GuardBody::Inner { body } => body.size_hint(),
            GuardBody::Own { body } => body.size_hint(),
        }
    }
}

/// A response body type a layer can write its own answer in (a refusal), so that layers
/// stacked over one another share the inner service's body type instead of nesting wrappers.
pub trait OwnBody: Sized {
    /// A complete body of `bytes`.
    fn own(bytes: Bytes) -> Self;
}

impl<B> OwnBody for GuardBody<B> {
    fn own(bytes: Bytes) -> Self {
        GuardBody::own(bytes)
    }
}

impl OwnBody for Full<Bytes> {
    fn own(bytes: Bytes) -> Self {
        Full::new(bytes)
    }
}

impl OwnBody for String {
    fn own(bytes: Bytes) -> Self {
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

/// A memory budget for request bodies held at once, shared by the requests of a listener: a
/// request that would go beyond it is refused at once rather than wait (memory stays bounded
/// whatever the clients send; they retry).
///
/// ```
/// use hoopguard_tower::body::Budget;
///
/// let budget = Budget::new(1024);
/// let a = budget.try_reserve(1000).unwrap();
/// assert!(budget.try_reserve(100).is_none());
/// drop(a);
/// assert!(budget.try_reserve(100).is_some());
/// ```
#[derive(Clone, Debug)]
pub struct Budget {
    permits: std::sync::Arc<tokio::sync::Semaphore>,
}

/// Bytes reserved from a [`Budget`], given back when dropped.
#[derive(Debug)]
pub struct Reservation {
    _permit: Option<tokio::sync::OwnedSemaphorePermit>,
}

impl Budget {
    /// A budget of `bytes`.
    pub fn new(bytes: usize) -> Self {
        Budget {
            permits: std::sync::Arc::new(tokio::sync::Semaphore::new(
                bytes.min(tokio::sync::Semaphore::MAX_PERMITS),
            )),
        }
    }

    /// Reserves `bytes`, or `None` when the budget does not have them now.
    pub fn try_reserve(&self, bytes: usize) -> Option<Reservation> {
        if bytes == 0 {
            return Some(Reservation { _permit: None });
        }
        let n = u32::try_from(bytes).ok()?;
        let permit = self.permits.clone().try_acquire_many_owned(n).ok()?;
        Some(Reservation {
            _permit: Some(permit),
        })
    }
}
