//! [`Resign`]: an allowed call, signed again with real credentials for its caller and sent to
//! AWS through any HTTP client.
//!
//! The connection's broker gives credentials for the caller's session (assumed per user, with
//! the caller as source identity, or static); the upstream URL is the endpoint of the classified
//! service and region (or the connection's override) — never anything the request names — with
//! the path and query [`SigV4Verify`](super::SigV4Verify) handed on; the forwarded headers are
//! signed as they are. The client is any `Service<http::Request<StreamBody>>`: hyper's, or
//! a test's `service_fn`. A streamed body that fails its check ends with an error, which aborts
//! the upstream request; the caller is told why. Responses lose their hop-by-hop headers.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! use std::collections::HashMap;
//! use std::sync::Arc;
//! use hoopguard_tower::aws::{AwsBody, ResignLayer, StreamBody};
//! use tower::{Layer, ServiceExt};
//!
//! let client = tower::service_fn(|_req: http::Request<StreamBody>| async {
//!     Ok::<_, std::convert::Infallible>(http::Response::new(String::from("from AWS")))
//! });
//! let svc = ResignLayer::new(Arc::new(HashMap::new())).layer(client);
//! // A request no layer verified, classified and allowed is not sent.
//! let req = http::Request::get("/").body(AwsBody::buffered(Default::default())).unwrap();
//! assert_eq!(svc.oneshot(req).await.unwrap().status(), 403);
//! # }
//! ```

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use hoopguard_core::aws::Verified;
use hoopguard_core::aws::broker::Broker;
use hoopguard_core::aws::classify::Classified;
use hoopguard_core::aws::resign::{sign, upstream_base};
use http::header::CONTENT_LENGTH;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::BodyExt;
use tower::{Layer, Service};
use tracing::Instrument;

use super::{AwsBody, ErrorFormat, StreamBody, unwired};
use crate::BoxError;
use crate::body::GuardBody;
use crate::policy::Verdict;

/// One AWS connection: its broker, where its calls go, the account it reaches.
#[derive(Debug)]
#[non_exhaustive]
pub struct Connection {
    /// Gives credentials for a caller's session.
    pub broker: Broker,
    /// Where calls go instead of AWS's endpoint for the service and region (a local AWS
    /// emulator, a VPC endpoint), as `scheme://host[:port]`.
    pub endpoint: Option<String>,
    /// The account the connection reaches, when known (ARNs name it).
    pub account: Option<String>,
}

impl Connection {
    /// A connection whose credentials come from `broker`, to AWS's own endpoints.
    pub fn new(broker: Broker) -> Self {
        Connection {
            broker,
            endpoint: None,
            account: None,
        }
    }

    /// Sends calls to `endpoint` instead.
    pub fn endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.endpoint = Some(endpoint.into());
        self
    }

    /// The account the connection reaches.
    pub fn account(mut self, account: impl Into<String>) -> Self {
        self.account = Some(account.into());
        self
    }
}

const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(60);

/// Applies [`Resign`]. See the [module docs](self).
#[derive(Clone, Debug)]
pub struct ResignLayer {
    connections: Arc<HashMap<String, Connection>>,
    timeout: Duration,
}

impl ResignLayer {
    /// Re-signs calls with the credentials of their session's connection, out of
    /// `connections`; an answer must begin within 60 s.
    pub fn new(connections: Arc<HashMap<String, Connection>>) -> Self {
        ResignLayer {
            connections,
            timeout: UPSTREAM_TIMEOUT,
        }
    }

    /// How long upstream may take to begin its answer.
    pub fn upstream_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

impl<C> Layer<C> for ResignLayer {
    type Service = Resign<C>;

    fn layer(&self, client: C) -> Resign<C> {
        Resign {
            client,
            connections: self.connections.clone(),
            timeout: self.timeout,
        }
    }
}

/// Re-signs and sends each allowed call. See the [module docs](self).
#[derive(Clone, Debug)]
pub struct Resign<C> {
    client: C,
    connections: Arc<HashMap<String, Connection>>,
    timeout: Duration,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

impl<C, ResB> Service<Request<AwsBody>> for Resign<C>
where
    C: Service<Request<StreamBody>, Response = Response<ResB>> + Clone + Send + 'static,
    C::Future: Send + 'static,
    C::Error: Into<BoxError>,
    ResB: Send + 'static,
{
    type Response = Response<GuardBody<ResB>>;
    type Error = std::convert::Infallible;
    /// Brokering credentials takes time: boxed.
    type Future = BoxFuture<Result<Response<GuardBody<ResB>>, Self::Error>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // The client is made ready when it is called: its errors are answers, not this
        // service's failures.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<AwsBody>) -> Self::Future {
        let client = self.client.clone();
        let connections = self.connections.clone();
        let timeout = self.timeout;
        Box::pin(async move {
            let ext = req.extensions();
            let allowed = matches!(ext.get::<Verdict>(), Some(Verdict::Allow { .. }));
            let (Some(verified), Some(classified), true) = (
                ext.get::<Verified>().cloned(),
                ext.get::<Classified>().map(|c| c.endpoint.clone()),
                allowed,
            ) else {
                return Ok(unwired("Resign"));
            };
            let format = ext
                .get::<ErrorFormat>()
                .copied()
                .unwrap_or(ErrorFormat::QueryXml);
            Ok(
                send(client, &connections, timeout, verified, classified, req)
                    .await
                    .unwrap_or_else(|(status, code, msg)| {
                        tracing::warn!(code, "could not forward an AWS call");
                        format.refuse(status, code, &msg)
                    }),
            )
        })
    }
}

type Refusal = (StatusCode, &'static str, String);

/// The client's future, boxed where its type is concrete (a compiler limitation with trait
/// objects in the request type of a generic client held across an `.await`).
fn call<C, ResB>(
    client: &mut C,
    req: Request<StreamBody>,
) -> BoxFuture<Result<Response<ResB>, C::Error>>
where
    C: Service<Request<StreamBody>, Response = Response<ResB>>,
    C::Future: Send + 'static,
{
    Box::pin(client.call(req))
}

async fn send<C, ResB>(
    mut client: C,
    connections: &HashMap<String, Connection>,
    timeout: Duration,
    verified: Verified,
    endpoint: String,
    req: Request<AwsBody>,
) -> Result<Response<GuardBody<ResB>>, Refusal>
where
    C: Service<Request<StreamBody>, Response = Response<ResB>>,
    C::Future: Send + 'static,
    C::Error: Into<BoxError>,
{
    let conn_name = &verified.session.connection;
    let Some(conn) = connections.get(conn_name) else {
        return Err((
            StatusCode::FORBIDDEN,
            "AccessDenied",
            format!("the AWS connection `{conn_name}` is no longer configured"),
        ));
    };
    let creds = conn
        .broker
        .credentials(&verified.session)
        .instrument(crate::trace::step("hoopguard.broker"))
        .await
        .map_err(|e| {
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailable",
                format!(
                    "hoopguard could not get AWS credentials for connection `{conn_name}`: {e}"
                ),
            )
        })?;
    let base = upstream_base(&endpoint, &verified.region, conn.endpoint.as_deref())
        .map_err(|e| (StatusCode::BAD_REQUEST, "InvalidRequest", e.to_string()))?;
    let (parts, body) = req.into_parts();
    let url = match parts.uri.query() {
        Some(q) if !q.is_empty() => format!("{base}{}?{q}", parts.uri.path()),
        _ => format!("{base}{}", parts.uri.path()),
    };
    let mut headers = parts.headers;
    if let Some(n) = body.length() {
        headers.insert(CONTENT_LENGTH, HeaderValue::from(n));
    }
    sign(
        parts.method.as_str(),
        &url,
        &mut headers,
        &body.payload(),
        &verified.service,
        &verified.region,
        &creds,
        SystemTime::now(),
    )
    .map_err(|e| (StatusCode::BAD_GATEWAY, "InternalFailure", e.to_string()))?;
    let failure = body.failure();
    let mut upstream = Request::builder()
        .method(parts.method)
        .uri(&url)
        .body(body.boxed_unsync())
        .map_err(|e| (StatusCode::BAD_REQUEST, "InvalidRequest", e.to_string()))?;
    *upstream.headers_mut() = headers;
    let sent = tokio::time::timeout(timeout, async {
        std::future::poll_fn(|cx| client.poll_ready(cx)).await?;
        call(&mut client, upstream).await
    })
    .await;
    let resp = match sent {
        Err(_) => {
            return Err((
                StatusCode::GATEWAY_TIMEOUT,
                "RequestTimeout",
                format!(
                    "{base} did not answer within {} (`aws.upstream_timeout`)",
                    humantime::format_duration(timeout)
                ),
            ));
        }
        Ok(Err(e)) => {
            if let Some(why) = failure.take() {
                return Err((StatusCode::BAD_REQUEST, "InvalidRequest", why));
            }
            let e: BoxError = e.into();
            // The underlying cause (refused, reset, DNS), not a client's generic wrapper.
            let cause = e.source().map_or_else(|| e.to_string(), |s| s.to_string());
            return Err((
                StatusCode::BAD_GATEWAY,
                "ServiceUnavailable",
                format!("hoopguard could not reach {base}: {cause}"),
            ));
        }
        Ok(Ok(r)) => r,
    };
    let (mut parts, body) = resp.into_parts();
    crate::remove_hop_by_hop(&mut parts.headers);
    Ok(Response::from_parts(parts, GuardBody::inner(body)))
}
