//! Token verification: trusted issuers, their keys, the verified-token cache (feature `oidc`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::cache::{self, TokenCache};
use super::error::{self, AuthError};
use super::keys::{KeySet, KeySource, RemoteJwks, RemoteSettings, family_of};
use super::{Identity, Namespace};

/// Tokens larger than this are refused before any parsing.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// One trusted issuer, as written in the configuration (`[[identity.issuers]]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssuerConfig {
    /// The issuer URL, exactly as in the tokens' `iss`.
    pub issuer: String,
    /// A short name for the issuer (letters, digits, `-`, `_`), required when more than one
    /// issuer is trusted: policies then name its groups and subjects `NAME:group`.
    #[serde(default)]
    pub name: Option<String>,
    /// Accepted audiences; the token's `aud` (string or array) must contain one of them.
    pub audiences: Vec<String>,
    /// JWKS URL; when absent the issuer's OIDC discovery document gives it.
    #[serde(default)]
    pub jwks_url: Option<String>,
    /// Accepted signing algorithms. Default: every asymmetric one (RS*, PS*, ES256, ES384, EdDSA).
    #[serde(default = "default_algorithms")]
    pub algorithms: Vec<String>,
    /// Shared secret for HS256/384/512; HMAC algorithms are refused without it.
    #[serde(default)]
    pub hmac_secret: Option<String>,
    /// The claim holding the subject; a dotted path reaches into objects. Default `sub`.
    #[serde(default = "default_subject_claim")]
    pub subject_claim: String,
    /// The claim holding groups (string or array); a dotted path such as `realm_access.roles`
    /// reaches into objects. Default `groups`.
    #[serde(default = "default_groups_claim")]
    pub groups_claim: String,
    /// Clock leeway for `exp`, `nbf` and `iat`. Default `60s`.
    #[serde(default = "default_leeway", with = "crate::duration::serde")]
    pub leeway: Duration,
    /// How long fetched keys are used before a refetch. Default `10m`.
    #[serde(default = "default_jwks_ttl", with = "crate::duration::serde")]
    pub jwks_ttl: Duration,
    /// The least time between two fetches (refetches on unknown keys are rate-limited by it).
    /// Default `30s`.
    #[serde(default = "default_min_refresh", with = "crate::duration::serde")]
    pub jwks_min_refresh_interval: Duration,
    /// Timeout for discovery and JWKS requests. Default `5s`.
    #[serde(default = "default_http_timeout", with = "crate::duration::serde")]
    pub http_timeout: Duration,
}

fn default_algorithms() -> Vec<String> {
    [
        "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA",
    ]
    .map(String::from)
    .to_vec()
}
fn default_subject_claim() -> String {
    "sub".into()
}
fn default_groups_claim() -> String {
    "groups".into()
}
fn default_leeway() -> Duration {
    Duration::from_secs(60)
}
fn default_jwks_ttl() -> Duration {
    Duration::from_secs(600)
}
fn default_min_refresh() -> Duration {
    Duration::from_secs(30)
}
fn default_http_timeout() -> Duration {
    Duration::from_secs(5)
}

/// A configuration mistake in an issuer, naming the offending key (relative to the issuer).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct IssuerConfigError {
    /// The key, such as `algorithms`.
    pub key: &'static str,
    /// What is wrong and what to write instead.
    pub message: String,
}

impl IssuerConfig {
    /// A config for `issuer` accepting `audience`, with every other setting at its default.
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>) -> Self {
        IssuerConfig {
            issuer: issuer.into(),
            name: None,
            audiences: vec![audience.into()],
            jwks_url: None,
            algorithms: default_algorithms(),
            hmac_secret: None,
            subject_claim: default_subject_claim(),
            groups_claim: default_groups_claim(),
            leeway: default_leeway(),
            jwks_ttl: default_jwks_ttl(),
            jwks_min_refresh_interval: default_min_refresh(),
            http_timeout: default_http_timeout(),
        }
    }

    fn parsed_algorithms(&self) -> Result<Vec<Algorithm>, IssuerConfigError> {
        let err = |message: String| IssuerConfigError {
            key: "algorithms",
            message,
        };
        if self.algorithms.is_empty() {
            return Err(err("must name at least one algorithm".into()));
        }
        let mut out = Vec::new();
        for name in &self.algorithms {
            if name.eq_ignore_ascii_case("none") {
                return Err(err(
                    "`none` is never accepted: unsigned tokens prove nothing".into(),
                ));
            }
            let alg: Algorithm = name.parse().map_err(|_| {
                err(format!(
                    "unknown algorithm `{name}`; use RS256/384/512, PS256/384/512, ES256, ES384, EdDSA or HS256/384/512"
                ))
            })?;
            if family_of(alg) == jsonwebtoken::AlgorithmFamily::Hmac && self.hmac_secret.is_none() {
                return Err(err(format!(
                    "`{name}` needs `hmac_secret` for this issuer; without a shared secret only asymmetric algorithms are accepted"
                )));
            }
            out.push(alg);
        }
        Ok(out)
    }

    /// Checks the settings without contacting the issuer.
    pub fn validate(&self) -> Result<(), IssuerConfigError> {
        if self.issuer.is_empty() {
            return Err(IssuerConfigError {
                key: "issuer",
                message: "must not be empty".into(),
            });
        }
        let is_url = |u: &str| u.starts_with("https://") || u.starts_with("http://");
        if self.jwks_url.is_none() && !is_url(&self.issuer) {
            return Err(IssuerConfigError {
                key: "issuer",
                message: "discovery needs an http(s) issuer URL; or set `jwks_url`".into(),
            });
        }
        if let Some(u) = &self.jwks_url {
            if !is_url(u) {
                return Err(IssuerConfigError {
                    key: "jwks_url",
                    message: format!("`{u}` is not an http(s) URL"),
                });
            }
        }
        if self.audiences.is_empty() || self.audiences.iter().any(String::is_empty) {
            return Err(IssuerConfigError {
                key: "audiences",
                message: "must list at least one non-empty audience (this gateway's client id or resource URI)".into(),
            });
        }
        if let Some(n) = &self.name {
            if n.is_empty()
                || !n
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err(IssuerConfigError {
                    key: "name",
                    message: format!("`{n}` is not a name of letters, digits, `-` and `_`"),
                });
            }
        }
        if self.hmac_secret.as_ref().is_some_and(|s| s.len() < 32) {
            return Err(IssuerConfigError {
                key: "hmac_secret",
                message: "must be at least 32 bytes".into(),
            });
        }
        self.parsed_algorithms()?;
        Ok(())
    }
}

/// Verifies tokens of one issuer.
#[derive(Debug)]
pub struct IssuerVerifier {
    issuer: String,
    name: Option<String>,
    audiences: Vec<String>,
    /// Set by the verifier when several issuers are trusted.
    namespace: Option<Namespace>,
    /// One validation per accepted algorithm (jsonwebtoken wants a single key family each).
    validations: Vec<(Algorithm, Validation)>,
    hmac: Option<DecodingKey>,
    subject_claim: String,
    groups_claim: String,
    leeway: u64,
    keys: KeySource,
}

impl IssuerVerifier {
    /// An issuer whose keys are fetched over HTTP(S) (discovery or `jwks_url`).
    pub fn remote(cfg: &IssuerConfig) -> Result<Self, IssuerConfigError> {
        cfg.validate()?;
        let remote = RemoteJwks::new(RemoteSettings {
            issuer: cfg.issuer.clone(),
            jwks_url: cfg.jwks_url.clone(),
            ttl: cfg.jwks_ttl,
            min_refresh_interval: cfg.jwks_min_refresh_interval,
            http_timeout: cfg.http_timeout,
        })
        .map_err(|message| IssuerConfigError {
            key: "issuer",
            message,
        })?;
        Self::with_source(cfg, KeySource::Remote(Box::new(remote)))
    }

    /// An issuer with a fixed key set (public keys only; symmetric keys in it are ignored).
    pub fn with_keys(
        cfg: &IssuerConfig,
        jwks: &jsonwebtoken::jwk::JwkSet,
    ) -> Result<Self, IssuerConfigError> {
        let (set, _) = KeySet::from_jwks(jwks);
        Self::with_source(cfg, KeySource::Static(Arc::new(set)))
    }

    fn with_source(cfg: &IssuerConfig, keys: KeySource) -> Result<Self, IssuerConfigError> {
        let algorithms = cfg.parsed_algorithms()?;
        let validations = algorithms
            .iter()
            .map(|&alg| {
                let mut v = Validation::new(alg);
                v.set_required_spec_claims(&["exp", "iss", "aud"]);
                v.set_issuer(&[&cfg.issuer]);
                v.set_audience(&cfg.audiences);
                v.validate_nbf = true;
                v.leeway = cfg.leeway.as_secs();
                (alg, v)
            })
            .collect();
        Ok(IssuerVerifier {
            issuer: cfg.issuer.clone(),
            name: cfg.name.clone(),
            audiences: cfg.audiences.clone(),
            namespace: None,
            validations,
            hmac: cfg
                .hmac_secret
                .as_ref()
                .map(|s| DecodingKey::from_secret(s.as_bytes())),
            subject_claim: cfg.subject_claim.clone(),
            groups_claim: cfg.groups_claim.clone(),
            leeway: cfg.leeway.as_secs(),
            keys,
        })
    }

    /// The issuer URL.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The issuer's name, if configured.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// Names the issuer (the development issuer is `dev`).
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// The audiences this issuer's tokens may carry.
    pub fn audiences(&self) -> &[String] {
        &self.audiences
    }

    /// Whether signing keys are held now (no fetch). Used by readiness checks.
    pub fn has_keys(&self) -> bool {
        self.hmac.is_some() || self.keys.has_keys()
    }

    /// Fetches the keys if none are held; returns whether keys are held afterwards.
    pub async fn warm_up(&self) -> bool {
        self.keys.current().await.is_ok() || self.hmac.is_some()
    }

    async fn verify(&self, token: &str, header: &Header) -> Result<Identity, AuthError> {
        let alg: Algorithm = header
            .alg
            .parse()
            .map_err(|_| AuthError::AlgorithmNotAllowed(printable(&header.alg)))?;
        let validation = self
            .validations
            .iter()
            .find_map(|(a, v)| (*a == alg).then_some(v))
            .ok_or_else(|| AuthError::AlgorithmNotAllowed(printable(&header.alg)))?;
        let claims = if family_of(alg) == jsonwebtoken::AlgorithmFamily::Hmac {
            // Only the configured secret: never a published key used as an HMAC secret.
            let key = self
                .hmac
                .as_ref()
                .ok_or_else(|| AuthError::AlgorithmNotAllowed(printable(&header.alg)))?;
            decode(token, key, validation)?
        } else {
            self.verify_asymmetric(token, alg, header.kid.as_deref(), validation)
                .await?
        };
        self.identity(claims)
    }

    async fn verify_asymmetric(
        &self,
        token: &str,
        alg: Algorithm,
        kid: Option<&str>,
        validation: &Validation,
    ) -> Result<Map<String, Value>, AuthError> {
        let mut keys = self.keys.current().await?;
        let mut refreshed = false;
        loop {
            let mut tried_any = false;
            for key in keys.candidates(alg, kid) {
                tried_any = true;
                match decode(token, &key.key, validation) {
                    Err(AuthError::BadSignature) => continue,
                    other => return other,
                }
            }
            // No key with that kid, or (tokens without kid) none verified: maybe the issuer
            // rotated its keys. Refetch once, rate-limited.
            let worth_refetch = !tried_any || kid.is_none();
            if refreshed || !worth_refetch {
                return Err(if tried_any {
                    AuthError::BadSignature
                } else {
                    AuthError::UnknownKey
                });
            }
            refreshed = true;
            let newer = self.keys.refresh_for_unknown_key().await?;
            if Arc::ptr_eq(&newer, &keys) {
                return Err(if tried_any {
                    AuthError::BadSignature
                } else {
                    AuthError::UnknownKey
                });
            }
            keys = newer;
        }
    }

    fn identity(&self, claims: Map<String, Value>) -> Result<Identity, AuthError> {
        let now = unix_now();
        if let Some(iat) = claims.get("iat") {
            let iat = iat
                .as_f64()
                .ok_or_else(|| AuthError::InvalidClaim("iat".into()))?;
            if iat > (now + self.leeway) as f64 {
                return Err(AuthError::IssuedInFuture);
            }
        }
        let exp = claims
            .get("exp")
            .and_then(Value::as_f64)
            .ok_or_else(|| AuthError::InvalidClaim("exp".into()))?;
        let subject = match claim_at(&claims, &self.subject_claim) {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            Some(_) => return Err(AuthError::InvalidClaim(self.subject_claim.clone())),
            None => return Err(AuthError::MissingClaim(self.subject_claim.clone())),
        };
        let groups = match claim_at(&claims, &self.groups_claim) {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| v.as_str().map(String::from))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| AuthError::InvalidClaim(self.groups_claim.clone()))?,
            Some(_) => return Err(AuthError::InvalidClaim(self.groups_claim.clone())),
        };
        Ok(Identity {
            subject,
            groups,
            issuer: self.issuer.clone(),
            expires_at: UNIX_EPOCH + Duration::from_secs_f64(exp.max(0.0)),
            claims,
            namespace: self.namespace.clone(),
        })
    }
}

fn decode(
    token: &str,
    key: &DecodingKey,
    validation: &Validation,
) -> Result<Map<String, Value>, AuthError> {
    jsonwebtoken::decode::<Map<String, Value>>(token, key, validation)
        .map(|d| d.claims)
        .map_err(|e| error::from_jwt(&e))
}

/// A claim by name, or by dotted path into nested objects (`realm_access.roles`). A top-level
/// claim whose name itself contains dots (`https://example.com/groups`) wins over the path.
fn claim_at<'a>(claims: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    if let Some(v) = claims.get(path) {
        return Some(v);
    }
    let mut parts = path.split('.');
    let mut cur = claims.get(parts.next()?)?;
    for p in parts {
        cur = cur.as_object()?.get(p)?;
    }
    Some(cur)
}

/// An attacker-chosen string made safe to show in an error (short, printable).
fn printable(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_graphic())
        .take(16)
        .collect()
}

pub(super) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
}

#[derive(Deserialize)]
struct IssOnly {
    iss: Option<Value>,
}

/// Verifies bearer tokens against the trusted issuers, with a bounded cache of verified tokens.
///
/// Cheap to share behind an `Arc`; all methods take `&self`.
#[derive(Debug)]
pub struct Verifier {
    issuers: HashMap<String, Arc<IssuerVerifier>>,
    cache: TokenCache,
}

/// Builds a [`Verifier`].
#[derive(Debug)]
pub struct VerifierBuilder {
    issuers: Vec<IssuerVerifier>,
    cache_capacity: usize,
}

impl VerifierBuilder {
    /// Trusts one more issuer.
    pub fn issuer(mut self, issuer: IssuerVerifier) -> Self {
        self.issuers.push(issuer);
        self
    }

    /// How many verified tokens to remember (0 turns the cache off). Default 10,000.
    pub fn cache_capacity(mut self, n: usize) -> Self {
        self.cache_capacity = n;
        self
    }

    /// Builds the verifier. With more than one issuer, identities are namespaced by the
    /// issuer's name (its URL when it has none); the first issuer is the primary one.
    pub fn build(self) -> Verifier {
        let several = self.issuers.len() > 1;
        Verifier {
            issuers: self
                .issuers
                .into_iter()
                .enumerate()
                .map(|(i, mut v)| {
                    if several {
                        v.namespace = Some(Namespace {
                            name: v.name.clone().unwrap_or_else(|| v.issuer.clone()),
                            primary: i == 0,
                        });
                    }
                    (v.issuer.clone(), Arc::new(v))
                })
                .collect(),
            cache: TokenCache::new(self.cache_capacity),
        }
    }
}

impl Verifier {
    /// Starts building a verifier.
    pub fn builder() -> VerifierBuilder {
        VerifierBuilder {
            issuers: Vec::new(),
            cache_capacity: 10_000,
        }
    }

    /// The trusted issuers.
    pub fn issuers(&self) -> impl Iterator<Item = &IssuerVerifier> {
        self.issuers.values().map(|i| &**i)
    }

    /// Verifies a token: signature, algorithm, issuer, audience, `exp`, `nbf`, `iat`.
    ///
    /// A token verified before and still valid is answered from the cache without checking
    /// the signature again (the cache is keyed by the token's SHA-256, never the token).
    pub async fn verify(&self, token: &str) -> Result<Arc<Identity>, AuthError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(AuthError::Oversized {
                limit: MAX_TOKEN_BYTES,
            });
        }
        if token.is_empty() {
            return Err(AuthError::Missing);
        }
        let digest = cache::digest(token);
        if let Some(id) = self.cache.get(&digest) {
            return Ok(id);
        }
        let (header, iss) = peek(token)?;
        let issuer = self.issuers.get(&iss).ok_or(AuthError::UntrustedIssuer)?;
        let identity = Arc::new(issuer.verify(token, &header).await?);
        self.cache.insert(digest, identity.clone(), issuer.leeway);
        Ok(identity)
    }
}

/// Reads the header and `iss` without trusting them, to pick the issuer and key.
fn peek(token: &str) -> Result<(Header, String), AuthError> {
    let parts: Vec<&str> = token.split('.').collect();
    match parts.len() {
        3 => {}
        5 => {
            return Err(AuthError::Malformed(
                "encrypted tokens (JWE) are not accepted".into(),
            ));
        }
        _ => {
            return Err(AuthError::Malformed(
                "not a JWT (expected three dot-separated parts)".into(),
            ));
        }
    }
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let header_json = b64
        .decode(parts[0].trim_end_matches('='))
        .map_err(|_| AuthError::Malformed("the header is not base64url".into()))?;
    let header: Header = serde_json::from_slice(&header_json).map_err(|_| {
        AuthError::Malformed("the header is not a JSON object with a string `alg`".into())
    })?;
    if header.alg.eq_ignore_ascii_case("none") {
        return Err(AuthError::AlgorithmNotAllowed("none".into()));
    }
    if parts[2].is_empty() {
        return Err(AuthError::Malformed("the signature is empty".into()));
    }
    let payload = b64
        .decode(parts[1].trim_end_matches('='))
        .map_err(|_| AuthError::Malformed("the claims are not base64url".into()))?;
    let claims: IssOnly = serde_json::from_slice(&payload)
        .map_err(|_| AuthError::Malformed("the claims are not a JSON object".into()))?;
    match claims.iss {
        Some(Value::String(s)) => Ok((header, s)),
        Some(_) => Err(AuthError::InvalidClaim("iss".into())),
        None => Err(AuthError::MissingClaim("iss".into())),
    }
}
