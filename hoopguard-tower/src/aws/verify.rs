//! [`SigV4Verify`]: who is calling, from the request's SigV4 signature made with hoopguard's
//! pseudo-credentials — and the request turned into exactly what will reach AWS.
//!
//! From the head alone, before a byte of the body is read: `Forwarded`/`X-Forwarded-*` are
//! refused (the endpoint is chosen by the connection, never by the request), unknown keys,
//! expired sessions, wrong scopes and skewed clocks are refused, a revoked session is refused
//! (with [`SigV4VerifyLayer::revocations`]), unknown payload signing modes are refused. Then the
//! body: one that decides what the call does is buffered within `max_body` (413 beyond), a
//! memory budget shared by every request ([`Budget`]; 503 `SlowDown` when it is spent) and the
//! read timeout, and its hash is checked by the signature; an S3 object upload streams as a
//! checked [`AwsBody`].
//!
//! The request the inner service gets is the one AWS will act on: a virtual-host S3 request
//! (`Host: bucket.SUFFIX`) made path-style, a presigned URL's signature parameters removed
//! from the query, only the headers that are forwarded (and `aws-chunked` framing headers
//! dropped when the body is de-framed), the body an [`AwsBody`]. Its extensions hold
//! [`Verified`], the caller's `Arc<Identity>`, the [`ErrorFormat`], the [`Origin`] and the
//! incoming `Content-Type` ([`Incoming`]). Every answer carries an
//! [`AuthOutcome`](crate::auth::AuthOutcome) in its extensions (`Authenticated`, or the
//! refusal's AWS code, `revoked`, `revocations_unknown`) for
//! [`MetricsLayer`](crate::metrics::MetricsLayer)'s `hoopguard_auth_total`.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! use std::sync::Arc;
//! use bytes::Bytes;
//! use http_body_util::Full;
//! use hoopguard_core::aws::Minter;
//! use hoopguard_tower::aws::{AwsBody, SigV4VerifyLayer};
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! let svc = ServiceBuilder::new()
//!     .layer(SigV4VerifyLayer::new(Arc::new(Minter::new(b"a key of 32 bytes or more, really"))))
//!     .service_fn(|_req: http::Request<AwsBody>| async {
//!         Ok::<_, std::convert::Infallible>(http::Response::new(Full::<Bytes>::default()))
//!     });
//! // An unsigned request never reaches the inner service.
//! let req = http::Request::get("/?Action=DescribeInstances").body(Full::<Bytes>::default()).unwrap();
//! let resp = svc.oneshot(req).await.unwrap();
//! assert_eq!(resp.status(), 403);
//! # }
//! ```

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use hoopguard_core::aws::chunked::{Dechunker, Framing};
use hoopguard_core::aws::classify::{Parts as ClassifyParts, classify};
use hoopguard_core::aws::resign::forward_headers;
use hoopguard_core::aws::{Minter, PRESIGN_PARAMS, check_head};
use hoopguard_core::identity::Identity;
use hoopguard_core::policy::Call;
use hoopguard_core::record::Recorder;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body::Body;
use http_body_util::BodyExt;
use tower::{Layer, Service};
use tracing::Instrument;

use super::{AwsBody, ErrorFormat, header, pairs};
use crate::BoxError;
use crate::auth::AuthOutcome;
use crate::body::{Budget, OwnBody};
use crate::policy::{Guard, Site, Verdict};
use crate::record::Origin;

/// Defaults of [`SigV4VerifyLayer`].
const MAX_BODY: usize = 10 * 1024 * 1024;
const MAX_BUFFERED: usize = 256 * 1024 * 1024;
const BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// The incoming request's `Content-Type`, as a request extension (recordings name it).
#[derive(Debug, Clone, Default)]
pub struct Incoming {
    /// The `Content-Type` header, if any.
    pub content_type: String,
}

/// Applies [`SigV4Verify`]. See the [module docs](self).
#[derive(Clone, Debug)]
pub struct SigV4VerifyLayer {
    config: Arc<Config>,
}

#[derive(Debug, Clone)]
struct Config {
    minter: Arc<Minter>,
    max_body: usize,
    budget: Budget,
    body_read_timeout: Duration,
    vhost_suffixes: Vec<String>,
    revocations: Option<Arc<Recorder>>,
    guard: Option<Guard>,
}

impl SigV4VerifyLayer {
    /// Verifies signatures made with pseudo-credentials sealed by `minter`. Defaults: bodies
    /// inspected up to 10 MiB, 256 MiB held at once, 30 s to read a body (and the longest pause
    /// of a streamed one), no virtual-host suffixes, no revocations.
    pub fn new(minter: Arc<Minter>) -> Self {
        SigV4VerifyLayer {
            config: Arc::new(Config {
                minter,
                max_body: MAX_BODY,
                budget: Budget::new(MAX_BUFFERED),
                body_read_timeout: BODY_READ_TIMEOUT,
                vhost_suffixes: Vec::new(),
                revocations: None,
                guard: None,
            }),
        }
    }

    fn with(mut self, f: impl FnOnce(&mut Config)) -> Self {
        f(Arc::make_mut(&mut self.config));
        self
    }

    /// The largest body that is inspected (larger ones are refused, `413`).
    pub fn max_body(self, bytes: usize) -> Self {
        self.with(|c| c.max_body = bytes)
    }

    /// The bytes of bodies held at once, across every request (beyond: `503 SlowDown`).
    pub fn max_buffered(self, bytes: usize) -> Self {
        self.with(|c| c.budget = Budget::new(bytes))
    }

    /// How long a body may take to arrive, and the longest pause of a streamed one.
    pub fn body_read_timeout(self, timeout: Duration) -> Self {
        self.with(|c| c.body_read_timeout = timeout)
    }

    /// Hosts whose subdomains are S3 buckets (`localhost`: `Host: b.localhost` is bucket `b`).
    pub fn virtual_host_suffixes(self, suffixes: Vec<String>) -> Self {
        self.with(|c| c.vhost_suffixes = suffixes)
    }

    /// Refuses the calls of credential sessions revoked in `recorder`.
    pub fn revocations(self, recorder: Arc<Recorder>) -> Self {
        self.with(|c| c.revocations = Some(recorder))
    }

    /// Makes the refusal of a revoked session (or of one whose revocations are unknown) a
    /// decision of `guard` ([`Guard::decided`]: logged, counted, audited) and counts a store
    /// failure in its metrics. [`Stack`](super::Stack) sets it.
    pub fn guard(self, guard: Guard) -> Self {
        self.with(|c| c.guard = Some(guard))
    }
}

impl<S> Layer<S> for SigV4VerifyLayer {
    type Service = SigV4Verify<S>;

    fn layer(&self, inner: S) -> SigV4Verify<S> {
        SigV4Verify {
            inner,
            config: self.config.clone(),
        }
    }
}

/// Verifies each request's signature and hands on what AWS will act on. See the
/// [module docs](self).
#[derive(Clone, Debug)]
pub struct SigV4Verify<S> {
    inner: S,
    config: Arc<Config>,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

impl<S, ReqB, ResB> Service<Request<ReqB>> for SigV4Verify<S>
where
    S: Service<Request<AwsBody>, Response = Response<ResB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    ReqB: Body<Data = Bytes> + Send + 'static,
    ReqB::Error: Into<BoxError>,
    ResB: OwnBody + Send + 'static,
{
    type Response = Response<ResB>;
    type Error = S::Error;
    /// Reading the body and checking the signature take time: boxed.
    type Future = BoxFuture<Result<Response<ResB>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let config = self.config.clone();
        Box::pin(async move {
            let verified = verify(&config, req)
                .instrument(crate::trace::step("hoopguard.auth"))
                .await;
            match verified {
                Ok(req) => inner.call(req).await.map(|mut resp| {
                    resp.extensions_mut()
                        .get_or_insert(AuthOutcome::Authenticated);
                    resp
                }),
                Err(refusal) => Ok(refusal),
            }
        })
    }
}

/// `resp` marked as an authentication refusal for `reason` (counted in
/// `hoopguard_auth_total`).
fn refused<B>(mut resp: Response<B>, reason: &'static str) -> Response<B> {
    resp.extensions_mut().insert(AuthOutcome::Refused(reason));
    resp
}

/// The request as AWS will see it, or the refusal (marked with its [`AuthOutcome`]).
async fn verify<ReqB, ResB>(
    config: &Config,
    req: Request<ReqB>,
) -> Result<Request<AwsBody>, Response<ResB>>
where
    ReqB: Body<Data = Bytes> + Send + 'static,
    ReqB::Error: Into<BoxError>,
    ResB: OwnBody,
{
    let (mut parts, body) = req.into_parts();
    let mut format = ErrorFormat::of(&parts.headers, None);
    if ["x-forwarded-host", "forwarded", "x-forwarded-server"]
        .iter()
        .any(|h| parts.headers.contains_key(*h))
    {
        return Err(refused(
            format.refuse(
                StatusCode::BAD_REQUEST,
                "InvalidRequest",
                "hoopguard does not accept Forwarded/X-Forwarded-* headers: the AWS endpoint is chosen by the connection, never by the request",
            ),
            "forwarded_headers",
        ));
    }
    let headers = pairs(&parts.headers);
    let raw_query = parts.uri.query().unwrap_or("");
    let sig_req = hoopguard_core::aws::Request {
        method: parts.method.as_str(),
        path: parts.uri.path(),
        query: raw_query,
        headers: &headers,
        body_sha256: None,
    };
    // Who is calling, from the head alone.
    let head = check_head(&config.minter, &sig_req, SystemTime::now())
        .map_err(|e| refused(format.refuse_signature(&e), e.aws_code()))?;
    format = ErrorFormat::of(&parts.headers, Some(&head.service));
    let refuse =
        |status, code: &'static str, msg: &str| refused(format.refuse(status, code, msg), code);
    // A revoked credential session is over, whatever its credentials say.
    if let Some(rec) = &config.revocations {
        let session = super::session_id(&head.session);
        match rec.is_revoked(&session) {
            Ok(false) => {}
            Ok(true) => {
                tracing::info!(subject = %head.session.subject, session, "refused a call of a revoked session");
                decided_early(
                    config,
                    &parts,
                    &head,
                    &session,
                    Verdict::Deny {
                        rule: None,
                        reason: "the credential session was revoked by an operator".into(),
                    },
                );
                return Err(refused(
                    refuse(
                        StatusCode::FORBIDDEN,
                        "AccessDenied",
                        "this credential session was revoked by an operator; its calls are refused",
                    ),
                    "revoked",
                ));
            }
            Err(stale) => {
                tracing::error!(session, error = %stale, "refused a call: revocations unknown");
                if let Some(g) = &config.guard {
                    g.store_error("revocations");
                }
                decided_early(
                    config,
                    &parts,
                    &head,
                    &session,
                    Verdict::Unavailable {
                        reason: "the revocations are not known".into(),
                    },
                );
                return Err(refused(
                    refuse(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "ServiceUnavailable",
                        &stale.to_string(),
                    ),
                    "revocations_unknown",
                ));
            }
        }
    }
    let declared = head.declared_payload().map(str::to_string);
    let framing = declared.as_deref().and_then(Framing::from_content_sha256);
    if declared
        .as_deref()
        .is_some_and(|d| d.starts_with("STREAMING-") && framing.is_none())
    {
        return Err(refuse(
            StatusCode::BAD_REQUEST,
            "InvalidRequest",
            &format!(
                "hoopguard does not accept the payload signing mode `{}`; use signed payloads, UNSIGNED-PAYLOAD, STREAMING-AWS4-HMAC-SHA256-PAYLOAD or STREAMING-UNSIGNED-PAYLOAD-TRAILER",
                declared.as_deref().unwrap_or("")
            ),
        ));
    }
    // What will be forwarded is what is classified, bound and recorded. A presigned URL's
    // signature is the caller's: it neither names an operation nor goes upstream.
    let query = raw_query
        .split('&')
        .filter(|kv| {
            let signature =
                head.presigned && PRESIGN_PARAMS.contains(&kv.split('=').next().unwrap_or(""));
            !kv.is_empty() && !signature
        })
        .collect::<Vec<_>>()
        .join("&");
    // A virtual-host S3 request (`Host: bucket.localhost`) is classified and sent path-style.
    let path = match virtual_host_bucket(&parts.headers, &head.service, &config.vhost_suffixes) {
        Some(bucket) if parts.uri.path() == "/" => format!("/{bucket}"),
        Some(bucket) => format!("/{bucket}{}", parts.uri.path()),
        None => parts.uri.path().to_string(),
    };
    let head_only = forward_headers(&parts.headers, false);
    let streamed = declared.is_some()
        && is_object_upload(&ClassifyParts {
            method: parts.method.as_str(),
            path: &path,
            query: &query,
            headers: &pairs(&head_only),
            body: None,
            service: &head.service,
            region: &head.region,
            account: None,
        });
    // Buffer what decides policy; leave object uploads streaming.
    let (buffered, mut body) = if streamed {
        (None, Some(body))
    } else {
        let b = read_body(config, &parts.headers, body)
            .await
            .map_err(|(status, code, msg)| refuse(status, code, &msg))?;
        (Some(b), None)
    };
    let body_hash = buffered
        .as_ref()
        .map(|(b, _)| hoopguard_core::aws::sha256_hex(b));
    let verified = head
        .verify(&hoopguard_core::aws::Request {
            body_sha256: body_hash.as_deref(),
            ..sig_req
        })
        .map_err(|e| refused(format.refuse_signature(&e), e.aws_code()))?;
    let gap = config.body_read_timeout;
    let length = |name: &str| header(&parts.headers, name).and_then(|v| v.parse().ok());
    let mut stream = || {
        body.take()
            .expect("streamed")
            .map_err(Into::into)
            .boxed_unsync()
    };
    // What the body is, now that the signature over its declared hash holds.
    let aws_body = match (buffered, framing, declared.as_deref()) {
        (None, Some(f), _) => {
            let n = length("x-amz-decoded-content-length");
            if n.is_none() {
                return Err(refuse(
                    StatusCode::LENGTH_REQUIRED,
                    "MissingContentLength",
                    "an aws-chunked upload needs x-amz-decoded-content-length",
                ));
            }
            let d = Dechunker::new(f, Some(verified.chunk_seed()), n);
            AwsBody::dechunked(stream(), d, n, gap)
        }
        (None, None, Some("UNSIGNED-PAYLOAD")) => {
            AwsBody::unsigned(stream(), length("content-length"), gap)
        }
        (None, None, Some(hash)) => {
            AwsBody::hashed(stream(), hash.to_string(), length("content-length"), gap)
        }
        // Only a request that declares its payload streams.
        (None, None, None) => {
            return Err(refuse(
                StatusCode::BAD_REQUEST,
                "InvalidRequest",
                "an upload needs x-amz-content-sha256",
            ));
        }
        (Some((bytes, reserved)), Some(f), _) => {
            // A small framed body: de-frame it whole, so it can be inspected.
            let mut d = Dechunker::new(f, Some(verified.chunk_seed()), None);
            let decoded = d.push(&bytes).and_then(|out| {
                d.finish()?;
                Ok(out.concat())
            });
            match decoded {
                Ok(b) => {
                    let hash = hoopguard_core::aws::sha256_hex(&b);
                    AwsBody::buffered_with(Bytes::from(b), hash, reserved)
                }
                Err(e) => {
                    return Err(refuse(
                        StatusCode::BAD_REQUEST,
                        "InvalidChunkSizeError",
                        &e.to_string(),
                    ));
                }
            }
        }
        (Some(_), None, Some(hash))
            if hash != "UNSIGNED-PAYLOAD" && Some(hash) != body_hash.as_deref() =>
        {
            return Err(refuse(
                StatusCode::BAD_REQUEST,
                "XAmzContentSHA256Mismatch",
                "the body's SHA-256 is not the x-amz-content-sha256 the request was signed with",
            ));
        }
        (Some((bytes, reserved)), None, _) => {
            AwsBody::buffered_with(bytes, body_hash.unwrap_or_default(), reserved)
        }
    };
    let origin = Origin::of(&parts.headers, &parts.extensions);
    let incoming = Incoming {
        content_type: header(&parts.headers, "content-type")
            .unwrap_or("")
            .to_string(),
    };
    let uri = if query.is_empty() {
        path
    } else {
        format!("{path}?{query}")
    };
    parts.uri = uri.parse().map_err(|_| {
        refuse(
            StatusCode::BAD_REQUEST,
            "InvalidURI",
            "the request's path is not a valid URI",
        )
    })?;
    parts.headers = forward_headers(&parts.headers, aws_body.is_dechunked());
    let who: Arc<Identity> = Arc::new(verified.session.identity());
    crate::auth::set_caller(&mut parts.extensions, who);
    parts.extensions.insert(verified);
    parts.extensions.insert(format);
    parts.extensions.insert(origin);
    parts.extensions.insert(incoming);
    Ok(Request::from_parts(parts, aws_body))
}

type Refusal = (StatusCode, &'static str, String);

/// A refusal of a known caller before the call is read, as a decision of the guard (if any):
/// the call is named by its region alone (its operation is not read yet).
fn decided_early(
    config: &Config,
    parts: &http::request::Parts,
    head: &hoopguard_core::aws::Head,
    session: &str,
    verdict: Verdict,
) {
    let Some(guard) = &config.guard else { return };
    let origin = Origin::of(&parts.headers, &parts.extensions);
    let site = Site {
        protocol: "aws",
        connection: Some(&head.session.connection),
        session: Some(session),
        client: origin.addr.as_deref(),
    };
    let call = Call::Aws {
        actions: Vec::new(),
        region: Some(head.region.clone()),
    };
    guard.decided(&site, &head.session.identity(), &call, verdict);
}

/// Reads a body that decides what the call does, within the size limit, the memory budget
/// shared by all calls, and the read timeout.
async fn read_body<B>(
    config: &Config,
    headers: &HeaderMap,
    body: B,
) -> Result<(Bytes, Option<crate::body::Reservation>), Refusal>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    let max = config.max_body;
    let too_large = || {
        (
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestEntityTooLarge",
            format!(
                "the request body is larger than hoopguard inspects ({max} bytes, `aws.max_policy_body`)"
            ),
        )
    };
    let declared: Option<usize> = header(headers, "content-length").and_then(|v| v.parse().ok());
    if declared.is_some_and(|n| n > max) {
        return Err(too_large());
    }
    let want = declared.unwrap_or(max).min(max);
    let reserved = config.budget.try_reserve(want).ok_or_else(|| {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "SlowDown",
            "hoopguard holds as many request bodies as it may at once (`aws.max_buffered`); retry shortly".to_string(),
        )
    })?;
    let limited = http_body_util::Limited::new(body, max);
    match tokio::time::timeout(config.body_read_timeout, limited.collect()).await {
        Err(_) => Err((
            StatusCode::REQUEST_TIMEOUT,
            "RequestTimeout",
            format!(
                "the request body did not arrive within {} (`aws.body_read_timeout`)",
                humantime::format_duration(config.body_read_timeout)
            ),
        )),
        Ok(Err(_)) => Err(too_large()),
        Ok(Ok(collected)) => Ok((collected.to_bytes(), Some(reserved))),
    }
}

/// An S3 object upload — a request whose head alone classifies as `PutObject` or `UploadPart`
/// at the S3 endpoint — whose body is streamed rather than buffered. Everything else (S3
/// Control's PUTs among them) is buffered and inspected.
fn is_object_upload(head: &ClassifyParts<'_>) -> bool {
    head.service == "s3"
        && head.method == "PUT"
        && classify(head).is_ok_and(|c| {
            c.endpoint == "s3" && matches!(c.operation.as_str(), "PutObject" | "UploadPart")
        })
}

/// The bucket of a virtual-host S3 request: the `Host` is `BUCKET.SUFFIX[:port]` for one of
/// the configured suffixes, and `BUCKET` is a DNS-compatible bucket name.
fn virtual_host_bucket<'a>(
    headers: &'a HeaderMap,
    service: &str,
    suffixes: &[String],
) -> Option<&'a str> {
    if service != "s3" {
        return None;
    }
    let host = header(headers, "host")?;
    let host = host.rsplit_once(':').map_or(host, |(h, port)| {
        if port.bytes().all(|b| b.is_ascii_digit()) {
            h
        } else {
            host
        }
    });
    suffixes.iter().find_map(|suffix| {
        let bucket = host.strip_suffix(suffix.as_str())?.strip_suffix('.')?;
        let ok = (3..=63).contains(&bucket.len())
            && bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
            && bucket
                .bytes()
                .next()
                .is_some_and(|b| b.is_ascii_alphanumeric());
        ok.then_some(bucket)
    })
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    #[test]
    fn only_object_uploads_stream() {
        let head = |method: &'static str, path: &'static str, query: &'static str| {
            is_object_upload(&ClassifyParts {
                method,
                path,
                query,
                headers: &[("x-amz-account-id", b"123456789012")],
                body: None,
                service: "s3",
                region: "us-east-1",
                account: None,
            })
        };
        assert!(head("PUT", "/b/k", ""));
        assert!(head("PUT", "/b/k", "partNumber=1&uploadId=u"));
        // S3 Control's PUTs look like object paths but are buffered and inspected.
        assert!(!head(
            "PUT",
            "/v20180820/configuration/publicAccessBlock",
            ""
        ));
        assert!(!head("PUT", "/b/k", "tagging"));
        assert!(!head("POST", "/b/k", "uploads"));
    }

    #[test]
    fn virtual_host_buckets_only_under_the_configured_suffixes() {
        let suffixes = vec!["localhost".to_string(), "s3.gw.internal".to_string()];
        let bucket = |host: &str, service: &str| {
            let mut h = HeaderMap::new();
            h.insert("host", HeaderValue::from_str(host).unwrap());
            virtual_host_bucket(&h, service, &suffixes).map(str::to_string)
        };
        assert_eq!(
            bucket("team-bucket.localhost:8787", "s3").as_deref(),
            Some("team-bucket")
        );
        assert_eq!(
            bucket("logs.2026.s3.gw.internal", "s3").as_deref(),
            Some("logs.2026")
        );
        assert_eq!(bucket("localhost:8787", "s3"), None);
        assert_eq!(bucket("127.0.0.1:8787", "s3"), None);
        assert_eq!(bucket("team-bucket.evil.example", "s3"), None);
        assert_eq!(bucket("Bad_Bucket.localhost", "s3"), None);
        assert_eq!(bucket("ab.localhost", "s3"), None);
        assert_eq!(bucket("team-bucket.localhost", "ec2"), None);
        assert_eq!(bucket("team-bucketlocalhost", "s3"), None);
    }
}
