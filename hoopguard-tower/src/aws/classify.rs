//! [`Classify`]: what a verified AWS call does — the operation, its IAM actions and resources,
//! every parameter — read the way the service's protocol says AWS reads it
//! ([`hoopguard_core::aws::classify`], which states the principle).
//!
//! It reads the request [`SigV4Verify`](super::SigV4Verify) handed on (path-style, without
//! presign parameters, the forwarded headers, the inspected body) and inserts an [`AwsCall`]:
//! the classified call, or why it is ambiguous (always refused) or unknown (refused, or sent for
//! approval). The decision is [`Decide`](super::Decide)'s. The account of each connection names
//! resources in ARNs.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! use hoopguard_tower::aws::{AwsBody, AwsCall, ClassifyLayer};
//! use tower::{Layer, ServiceExt};
//!
//! let svc = ClassifyLayer::new(Default::default()).layer(tower::service_fn(
//!     |req: http::Request<AwsBody>| async move {
//!         let call = req.extensions().get::<AwsCall>().cloned();
//!         Ok::<_, std::convert::Infallible>(http::Response::new(format!("{call:?}")))
//!     },
//! ));
//! // Without SigV4Verify before it, nothing is classified: a refusal, not a guess.
//! let req = http::Request::get("/").body(AwsBody::buffered(Default::default())).unwrap();
//! let resp = svc.oneshot(req).await.unwrap();
//! assert_eq!(resp.status(), 403);
//! # }
//! ```

use std::collections::HashMap;
use std::sync::Arc;
use std::task::{Context, Poll};

use hoopguard_core::aws::Verified;
use hoopguard_core::aws::classify::{Classified, ClassifyError, Parts, classify};
use http::{Request, Response};
use tower::{Layer, Service};

use super::{AwsBody, Connection, ErrorFormat, pairs, unwired};
use crate::body::OwnBody;

/// What [`Classify`] made of a call, as a request extension.
#[derive(Debug, Clone)]
pub struct AwsCall {
    /// The call, or why it could not be classified.
    pub classified: Result<Classified, ClassifyError>,
}

/// Applies [`Classify`]. See the [module docs](self).
#[derive(Clone, Debug)]
pub struct ClassifyLayer {
    connections: Arc<HashMap<String, Connection>>,
}

impl ClassifyLayer {
    /// Classifies calls; `connections` name the accounts their resources are in.
    pub fn new(connections: Arc<HashMap<String, Connection>>) -> Self {
        ClassifyLayer { connections }
    }
}

impl<S> Layer<S> for ClassifyLayer {
    type Service = Classify<S>;

    fn layer(&self, inner: S) -> Classify<S> {
        Classify {
            inner,
            connections: self.connections.clone(),
        }
    }
}

/// Classifies each call. See the [module docs](self).
#[derive(Clone, Debug)]
pub struct Classify<S> {
    inner: S,
    connections: Arc<HashMap<String, Connection>>,
}

impl<S, ResB> Service<Request<AwsBody>> for Classify<S>
where
    S: Service<Request<AwsBody>, Response = Response<ResB>>,
    ResB: OwnBody,
{
    type Response = Response<ResB>;
    type Error = S::Error;
    type Future = futures_util::future::Either<
        std::future::Ready<Result<Response<ResB>, S::Error>>,
        S::Future,
    >;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<AwsBody>) -> Self::Future {
        use futures_util::future::Either;
        let Some(verified) = req.extensions().get::<Verified>() else {
            return Either::Left(std::future::ready(Ok(unwired("Classify"))));
        };
        let account = self
            .connections
            .get(&verified.session.connection)
            .and_then(|c| c.account.as_deref());
        let headers = pairs(req.headers());
        let step = crate::trace::step("hoopguard.classify").entered();
        let classified = classify(&Parts {
            method: req.method().as_str(),
            path: req.uri().path(),
            query: req.uri().query().unwrap_or(""),
            headers: &headers,
            body: req.body().inspected().map(|b| &b[..]),
            service: &verified.service,
            region: &verified.region,
            account,
        });
        let format = req
            .extensions()
            .get::<ErrorFormat>()
            .copied()
            .unwrap_or_else(|| ErrorFormat::of(req.headers(), Some(&verified.service)));
        drop(step);
        drop(headers);
        req.extensions_mut().insert(format);
        req.extensions_mut().insert(AwsCall { classified });
        Either::Right(self.inner.call(req))
    }
}
