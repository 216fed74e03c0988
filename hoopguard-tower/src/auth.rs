//! Authenticates every request with an OIDC bearer token.
//!
//! [`AuthLayer`] reads the token from the `Authorization` header only, verifies it with a shared
//! [`Verifier`], and on success puts the caller's `Arc<Identity>` into the request extensions for
//! the layers after it, where [`caller`] reads it (every layer reads it that way; the AWS path's
//! `aws::SigV4Verify` puts it there too). On failure it answers by itself — the inner service is never called:
//!
//! * `401` with `WWW-Authenticate: Bearer error="invalid_token", error_description="…"` (plus
//!   `resource_metadata="…"` when configured, as the MCP authorization spec asks) and a JSON body
//!   `{"error": "invalid_token", "reason": "expired", "message": "…"}`;
//! * `503` when the issuer's keys cannot be had at all (fail closed, retry later).
//!
//! The token is never echoed, logged or kept; the response extensions carry an [`AuthOutcome`]
//! for metrics.
//!
//! # Example
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! use std::{convert::Infallible, sync::Arc, time::Duration};
//! use bytes::Bytes;
//! use http::{Request, Response, StatusCode};
//! use http_body_util::Full;
//! use hoopguard_core::identity::{dev::DevIssuer, Identity, Verifier};
//! use hoopguard_tower::auth::AuthLayer;
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let dev = DevIssuer::load_or_create(dir.path(), "http://127.0.0.1:8789/dev", "hoopguard").unwrap();
//! let verifier = Arc::new(Verifier::builder().issuer(dev.issuer_verifier()).build());
//!
//! let svc = ServiceBuilder::new()
//!     .layer(AuthLayer::new(verifier))
//!     .service_fn(|req: Request<Full<Bytes>>| async move {
//!         let who = hoopguard_tower::auth::caller(req.extensions()).unwrap();
//!         Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(who.subject.clone()))))
//!     });
//!
//! let token = dev.mint("alice", &[], Duration::from_secs(60)).unwrap();
//! let req = Request::get("/").header("authorization", format!("Bearer {token}"))
//!     .body(Full::default()).unwrap();
//! assert_eq!(svc.clone().oneshot(req).await.unwrap().status(), StatusCode::OK);
//!
//! let req = Request::get("/").body(Full::default()).unwrap();
//! assert_eq!(svc.oneshot(req).await.unwrap().status(), StatusCode::UNAUTHORIZED);
//! # }
//! ```

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use hoopguard_core::identity::{AuthError, MAX_TOKEN_BYTES, Verifier};
use http::header::{AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{HeaderValue, Request, Response, StatusCode};
use tower::{Layer, Service};
use tracing::Instrument;

use crate::body::GuardBody;

/// The verified caller of a request: what [`AuthLayer`] (or `aws::SigV4Verify`) put in its
/// extensions. `None` means no authenticating layer ran in front: a wiring mistake, which the
/// layers that need a caller refuse with [`NO_CALLER`].
pub fn caller(extensions: &http::Extensions) -> Option<&Arc<hoopguard_core::identity::Identity>> {
    extensions.get::<Arc<hoopguard_core::identity::Identity>>()
}

/// Sets the verified caller of a request (what the authenticating layers do; in-process code
/// that authenticated its caller by other means does the same).
pub fn set_caller(extensions: &mut http::Extensions, who: Arc<hoopguard_core::identity::Identity>) {
    extensions.insert(who);
}

/// What a layer that needs a caller says when none was set (with status 401).
pub const NO_CALLER: &str = "no verified caller on the request: an authenticating layer (AuthLayer, aws::SigV4Verify) must come before this one";

/// What the auth layer concluded, left in the response extensions for metrics and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthOutcome {
    /// The token verified; the inner service answered.
    Authenticated,
    /// The token was refused, for this reason ([`AuthError::code`]).
    Refused(&'static str),
}

/// Applies [`Auth`] to a service. See the [module docs](self).
#[derive(Clone, Debug)]
pub struct AuthLayer {
    verifier: Arc<Verifier>,
    settings: Arc<Settings>,
}

#[derive(Debug, Default, Clone)]
struct Settings {
    accept_raw: bool,
    resource_metadata: Option<String>,
    /// The token's `aud` must name one of these (`None`: the issuers' audiences suffice; an
    /// empty list accepts no token).
    audiences: Option<Vec<String>>,
}

impl AuthLayer {
    /// Verifies `Authorization: Bearer <token>` with `verifier`.
    pub fn new(verifier: Arc<Verifier>) -> Self {
        AuthLayer {
            verifier,
            settings: Arc::new(Settings::default()),
        }
    }

    /// Also accepts the bare token as the whole header value, as AWS SDKs send the content of
    /// `AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE`.
    pub fn accept_raw_token(mut self, yes: bool) -> Self {
        Arc::make_mut(&mut self.settings).accept_raw = yes;
        self
    }

    /// Also requires the token's `aud` to name `resource` (RFC 8707: an MCP gateway accepts
    /// only tokens issued for it), besides the issuer's configured audiences.
    pub fn require_audience(self, resource: impl Into<String>) -> Self {
        self.audiences(vec![resource.into()])
    }

    /// Requires the token's `aud` to name one of `audiences`, besides the issuer's configured
    /// audiences: each listener accepts the tokens meant for it, so a token for one resource
    /// (an MCP server) does not open another (AWS credentials, the admin API). An empty list
    /// accepts no token at all.
    pub fn audiences(mut self, audiences: Vec<String>) -> Self {
        Arc::make_mut(&mut self.settings).audiences = Some(audiences);
        self
    }

    /// Names the RFC 9728 protected-resource metadata URL in every `WWW-Authenticate` answer.
    pub fn resource_metadata(mut self, url: impl Into<String>) -> Self {
        Arc::make_mut(&mut self.settings).resource_metadata = Some(url.into());
        self
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = Auth<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Auth {
            inner,
            verifier: self.verifier.clone(),
            settings: self.settings.clone(),
        }
    }
}

/// Verifies the caller's token before calling the inner service. See the [module docs](self).
#[derive(Clone, Debug)]
pub struct Auth<S> {
    inner: S,
    verifier: Arc<Verifier>,
    settings: Arc<Settings>,
}

impl<S> Auth<S> {
    /// Wraps `inner`, verifying tokens with `verifier`.
    pub fn new(inner: S, verifier: Arc<Verifier>) -> Self {
        AuthLayer::new(verifier).layer(inner)
    }

    /// A layer that wraps services in `Auth`.
    pub fn layer(verifier: Arc<Verifier>) -> AuthLayer {
        AuthLayer::new(verifier)
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

/// The future of [`Auth`]: verification is an `async fn` that may fetch keys, so it is boxed.
pub type ResponseFuture<B, E> =
    Pin<Box<dyn Future<Output = Result<Response<GuardBody<B>>, E>> + Send + 'static>>;

impl<S, ReqB, ResB> Service<Request<ReqB>> for Auth<S>
where
    S: Service<Request<ReqB>, Response = Response<ResB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    ReqB: Send + 'static,
{
    type Response = Response<GuardBody<ResB>>;
    type Error = S::Error;
    type Future = ResponseFuture<ResB, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqB>) -> Self::Future {
        // Take the service that was driven to readiness; leave a clone in its place.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let verifier = self.verifier.clone();
        let settings = self.settings.clone();
        let token = extract(&req, settings.accept_raw);
        Box::pin(async move {
            let verified = match token {
                Ok(t) => {
                    verifier
                        .verify(&t)
                        .instrument(crate::trace::step("hoopguard.auth"))
                        .await
                }
                Err(e) => Err(e),
            };
            let verified = verified.and_then(|identity| {
                let ok = settings
                    .audiences
                    .as_ref()
                    .is_none_or(|list| list.iter().any(|a| audience_names(&identity.claims, a)));
                if ok {
                    Ok(identity)
                } else {
                    Err(AuthError::WrongAudience)
                }
            });
            match verified {
                Ok(identity) => {
                    set_caller(req.extensions_mut(), identity);
                    let mut resp = inner.call(req).await?;
                    resp.extensions_mut().insert(AuthOutcome::Authenticated);
                    Ok(resp.map(GuardBody::inner))
                }
                Err(e) => Ok(refusal(&e, settings.resource_metadata.as_deref())),
            }
        })
    }
}

/// Whether the `aud` claim (a string or an array) names `resource`.
fn audience_names(claims: &serde_json::Map<String, serde_json::Value>, resource: &str) -> bool {
    match claims.get("aud") {
        Some(serde_json::Value::String(a)) => a == resource,
        Some(serde_json::Value::Array(list)) => list.iter().any(|a| a == resource),
        _ => false,
    }
}

/// The token from `Authorization`, copied out so the request can move on.
fn extract<B>(req: &Request<B>, accept_raw: bool) -> Result<String, AuthError> {
    let mut values = req.headers().get_all(AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Err(AuthError::Missing);
    };
    if values.next().is_some() {
        return Err(AuthError::Malformed(
            "more than one Authorization header".into(),
        ));
    }
    if value.len() > MAX_TOKEN_BYTES + "Bearer ".len() {
        return Err(AuthError::Oversized {
            limit: MAX_TOKEN_BYTES,
        });
    }
    let text = value.to_str().map_err(|_| {
        AuthError::Malformed("the Authorization header is not visible ASCII".into())
    })?;
    let text = text.trim();
    if text.eq_ignore_ascii_case("bearer") {
        return Err(AuthError::Missing);
    }
    if let Some((scheme, rest)) = text.split_once(' ') {
        if scheme.eq_ignore_ascii_case("bearer") {
            let token = rest.trim();
            return if token.is_empty() {
                Err(AuthError::Missing)
            } else {
                Ok(token.to_owned())
            };
        }
        return Err(AuthError::Malformed(
            "expected `Authorization: Bearer <token>`".into(),
        ));
    }
    if accept_raw && !text.is_empty() {
        return Ok(text.to_owned());
    }
    Err(AuthError::Malformed(
        "expected `Authorization: Bearer <token>`".into(),
    ))
}

/// The answer to a refused token.
fn refusal<B>(err: &AuthError, resource_metadata: Option<&str>) -> Response<GuardBody<B>> {
    let code = err.code();
    let message = err.to_string();
    let (status, error) = if err.is_unavailable() {
        tracing::warn!(reason = code, "cannot verify tokens: {message}");
        (StatusCode::SERVICE_UNAVAILABLE, "temporarily_unavailable")
    } else {
        tracing::info!(reason = code, "refused a token");
        (StatusCode::UNAUTHORIZED, "invalid_token")
    };
    let body = serde_json::json!({ "error": error, "reason": code, "message": message });
    let mut resp = Response::new(GuardBody::own(body.to_string()));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if status == StatusCode::UNAUTHORIZED {
        let mut challenge = String::from("Bearer");
        let mut params = Vec::new();
        if !matches!(err, AuthError::Missing) {
            params.push(r#"error="invalid_token""#.to_string());
            params.push(format!(r#"error_description="{}""#, quoted(&message)));
        }
        if let Some(url) = resource_metadata {
            params.push(format!(r#"resource_metadata="{}""#, quoted(url)));
        }
        if !params.is_empty() {
            challenge.push(' ');
            challenge.push_str(&params.join(", "));
        }
        if let Ok(v) = HeaderValue::from_str(&challenge) {
            h.insert(WWW_AUTHENTICATE, v);
        }
    }
    resp.extensions_mut().insert(AuthOutcome::Refused(code));
    resp
}

/// Text safe inside a quoted-string of a header.
fn quoted(s: &str) -> String {
    s.chars()
        .filter(|c| *c != '"' && *c != '\\' && (c.is_ascii_graphic() || *c == ' '))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::time::Duration;

    use bytes::Bytes;
    use hoopguard_core::identity::dev::DevIssuer;
    use http_body_util::{BodyExt, Full};
    use tower::{ServiceBuilder, ServiceExt};

    use super::*;

    struct Fixture {
        _dir: tempfile::TempDir,
        dev: DevIssuer,
        verifier: Arc<Verifier>,
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let dev = DevIssuer::load_or_create(dir.path(), "http://dev.test", "hoopguard").unwrap();
        let verifier = Arc::new(Verifier::builder().issuer(dev.issuer_verifier()).build());
        Fixture {
            _dir: dir,
            dev,
            verifier,
        }
    }

    async fn call(layer: AuthLayer, auth: Option<&str>) -> (Response<Bytes>, bool) {
        let reached = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let r = reached.clone();
        let svc =
            ServiceBuilder::new()
                .layer(layer)
                .service_fn(move |req: Request<Full<Bytes>>| {
                    r.store(true, std::sync::atomic::Ordering::SeqCst);
                    async move {
                        let who = caller(req.extensions()).cloned();
                        let body = who.map(|w| w.subject.clone()).unwrap_or_default();
                        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(body))))
                    }
                });
        let mut req = Request::get("/").body(Full::default()).unwrap();
        if let Some(a) = auth {
            req.headers_mut()
                .insert(AUTHORIZATION, HeaderValue::from_str(a).unwrap());
        }
        let resp = svc.oneshot(req).await.unwrap();
        let (parts, body) = resp.into_parts();
        let bytes = body.collect().await.unwrap().to_bytes();
        (
            Response::from_parts(parts, bytes),
            reached.load(std::sync::atomic::Ordering::SeqCst),
        )
    }

    fn json(resp: &Response<Bytes>) -> serde_json::Value {
        serde_json::from_slice(resp.body()).unwrap()
    }

    #[tokio::test]
    async fn passes_identity_to_the_inner_service() {
        let f = fixture();
        let t = f.dev.mint("alice", &[], Duration::from_secs(60)).unwrap();
        let (resp, reached) = call(AuthLayer::new(f.verifier), Some(&format!("Bearer {t}"))).await;
        assert!(reached);
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.body(), "alice");
        assert_eq!(
            resp.extensions().get::<AuthOutcome>(),
            Some(&AuthOutcome::Authenticated)
        );
    }

    #[tokio::test]
    async fn missing_token_is_401_without_error_code() {
        let f = fixture();
        let (resp, reached) = call(
            AuthLayer::new(f.verifier)
                .resource_metadata("http://gw/.well-known/oauth-protected-resource"),
            None,
        )
        .await;
        assert!(!reached);
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            resp.headers()[WWW_AUTHENTICATE],
            r#"Bearer resource_metadata="http://gw/.well-known/oauth-protected-resource""#
        );
        assert_eq!(json(&resp)["reason"], "missing_token");
    }

    #[tokio::test]
    async fn invalid_token_is_401_with_reason_and_never_echoed() {
        let f = fixture();
        let t = f.dev.mint("alice", &[], Duration::from_secs(60)).unwrap();
        let i = t.len() - 10;
        let flipped = if &t[i..=i] == "A" { "B" } else { "A" };
        let tampered = format!("{}{flipped}{}", &t[..i], &t[i + 1..]);
        let (resp, reached) = call(
            AuthLayer::new(f.verifier),
            Some(&format!("Bearer {tampered}")),
        )
        .await;
        assert!(!reached);
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        let www = resp.headers()[WWW_AUTHENTICATE].to_str().unwrap();
        assert!(
            www.starts_with(r#"Bearer error="invalid_token", error_description=""#),
            "{www}"
        );
        let body = json(&resp);
        assert_eq!(body["error"], "invalid_token");
        assert_eq!(body["reason"], "bad_signature");
        let everything = format!("{www}{}", String::from_utf8_lossy(resp.body()));
        assert!(!everything.contains(&tampered[..40]));
        assert_eq!(
            resp.extensions().get::<AuthOutcome>(),
            Some(&AuthOutcome::Refused("bad_signature"))
        );
    }

    #[tokio::test]
    async fn raw_token_only_where_enabled() {
        let f = fixture();
        let t = f.dev.mint("alice", &[], Duration::from_secs(60)).unwrap();
        let (resp, _) = call(AuthLayer::new(f.verifier.clone()), Some(&t)).await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(json(&resp)["reason"], "malformed");
        let (resp, _) = call(AuthLayer::new(f.verifier).accept_raw_token(true), Some(&t)).await;
        assert_eq!(resp.status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn other_schemes_and_oversized_headers_are_refused() {
        let f = fixture();
        let (resp, _) = call(
            AuthLayer::new(f.verifier.clone()),
            Some("Basic YWxpY2U6cHc="),
        )
        .await;
        assert_eq!(json(&resp)["reason"], "malformed");
        let big = format!("Bearer {}", "a".repeat(MAX_TOKEN_BYTES + 10));
        let (resp, reached) = call(AuthLayer::new(f.verifier.clone()), Some(&big)).await;
        assert!(!reached);
        assert_eq!(json(&resp)["reason"], "oversized");
        let (resp, _) = call(AuthLayer::new(f.verifier), Some("Bearer ")).await;
        assert_eq!(json(&resp)["reason"], "missing_token");
    }

    #[tokio::test]
    async fn two_authorization_headers_are_refused() {
        let f = fixture();
        let t = f.dev.mint("alice", &[], Duration::from_secs(60)).unwrap();
        let svc = ServiceBuilder::new()
            .layer(AuthLayer::new(f.verifier))
            .service_fn(|_req: Request<Full<Bytes>>| async {
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::new())))
            });
        let req = Request::get("/")
            .header(AUTHORIZATION, format!("Bearer {t}"))
            .header(AUTHORIZATION, format!("Bearer {t}"))
            .body(Full::default())
            .unwrap();
        let resp = svc.oneshot(req).await.unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    }
}
