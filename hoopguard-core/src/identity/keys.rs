//! Signing keys of one issuer: a fixed set, or a JWKS fetched (via discovery or an explicit URL),
//! cached, refreshed on a TTL and on unknown keys (rate-limited), kept when the provider is down.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey};
use serde::Deserialize;

use super::error::AuthError;

/// One usable verification key.
pub(crate) struct Key {
    pub(crate) kid: Option<String>,
    pub(crate) family: AlgorithmFamily,
    pub(crate) alg: Option<Algorithm>,
    pub(crate) key: DecodingKey,
}

/// The keys of an issuer at one point in time.
pub(crate) struct KeySet {
    pub(crate) keys: Vec<Key>,
    fetched_at: Instant,
}

impl KeySet {
    /// Builds a key set from a JWKS, skipping keys that cannot verify signatures (encryption
    /// keys, symmetric keys, unsupported curves). Returns how many were skipped too.
    pub(crate) fn from_jwks(set: &JwkSet) -> (Self, usize) {
        let mut keys = Vec::new();
        let mut skipped = 0;
        for jwk in &set.keys {
            match usable_key(jwk) {
                Some(k) => keys.push(k),
                None => skipped += 1,
            }
        }
        (
            KeySet {
                keys,
                fetched_at: Instant::now(),
            },
            skipped,
        )
    }

    /// Keys that may have signed a token with this `alg` and `kid`.
    pub(crate) fn candidates<'a>(
        &'a self,
        alg: Algorithm,
        kid: Option<&'a str>,
    ) -> impl Iterator<Item = &'a Key> + 'a {
        let family = family_of(alg);
        self.keys.iter().filter(move |k| {
            k.family == family
                && k.alg.is_none_or(|a| a == alg)
                && match kid {
                    Some(kid) => k.kid.as_deref() == Some(kid),
                    None => true,
                }
        })
    }
}

/// The key family an algorithm needs (RSA for RS*/PS*, EC for ES*, …).
pub(crate) fn family_of(alg: Algorithm) -> AlgorithmFamily {
    use Algorithm::*;
    match alg {
        HS256 | HS384 | HS512 => AlgorithmFamily::Hmac,
        RS256 | RS384 | RS512 | PS256 | PS384 | PS512 => AlgorithmFamily::Rsa,
        ES256 | ES384 => AlgorithmFamily::Ec,
        EdDSA => AlgorithmFamily::Ed,
    }
}

fn usable_key(jwk: &Jwk) -> Option<Key> {
    use jsonwebtoken::jwk::{AlgorithmParameters, PublicKeyUse};
    if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
        return None;
    }
    // Symmetric keys never come from a JWKS document: a published HMAC secret is no secret.
    if matches!(jwk.algorithm, AlgorithmParameters::OctetKey(_)) {
        return None;
    }
    let key = DecodingKey::from_jwk(jwk).ok()?;
    let alg = match jwk.common.key_algorithm {
        Some(a) => Some(a.to_string().parse::<Algorithm>().ok()?),
        None => None,
    };
    Some(Key {
        kid: jwk.common.key_id.clone(),
        family: key.family(),
        alg,
        key,
    })
}

/// Where an issuer's keys come from.
pub(crate) enum KeySource {
    /// A fixed set (the development issuer, tests, benchmarks).
    Static(Arc<KeySet>),
    /// Fetched over HTTP(S).
    Remote(Box<RemoteJwks>),
}

impl std::fmt::Debug for KeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeySource::Static(s) => write!(f, "Static({} keys)", s.keys.len()),
            KeySource::Remote(r) => write!(f, "Remote({})", r.issuer),
        }
    }
}

impl KeySource {
    /// The current keys, fetching them first if there are none or they are older than the TTL.
    pub(crate) async fn current(&self) -> Result<Arc<KeySet>, AuthError> {
        match self {
            KeySource::Static(s) => Ok(s.clone()),
            KeySource::Remote(r) => r.current().await,
        }
    }

    /// Fetches again because a token named a key we do not have. Rate-limited: within the
    /// minimum interval this returns the keys already held, without a fetch.
    pub(crate) async fn refresh_for_unknown_key(&self) -> Result<Arc<KeySet>, AuthError> {
        match self {
            KeySource::Static(s) => Ok(s.clone()),
            KeySource::Remote(r) => r.refresh().await,
        }
    }

    /// Whether any keys are held right now (without fetching).
    pub(crate) fn has_keys(&self) -> bool {
        match self {
            KeySource::Static(s) => !s.keys.is_empty(),
            KeySource::Remote(r) => r.held().is_some_and(|k| !k.keys.is_empty()),
        }
    }
}

/// Settings for fetching an issuer's JWKS.
#[derive(Debug, Clone)]
pub(crate) struct RemoteSettings {
    pub(crate) issuer: String,
    pub(crate) jwks_url: Option<String>,
    pub(crate) ttl: Duration,
    pub(crate) min_refresh_interval: Duration,
    pub(crate) http_timeout: Duration,
}

/// A JWKS fetched from the issuer and cached.
pub(crate) struct RemoteJwks {
    issuer: String,
    explicit_url: Option<String>,
    ttl: Duration,
    min_interval: Duration,
    client: reqwest::Client,
    held: RwLock<Option<Arc<KeySet>>>,
    /// Serialises fetches (one in flight per issuer) and remembers the last attempt.
    fetch: tokio::sync::Mutex<FetchState>,
}

#[derive(Default)]
struct FetchState {
    last_attempt: Option<Instant>,
    last_error: Option<String>,
    discovered_url: Option<String>,
}

#[derive(Deserialize)]
struct Discovery {
    issuer: String,
    jwks_uri: String,
}

impl RemoteJwks {
    pub(crate) fn new(s: RemoteSettings) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .timeout(s.http_timeout)
            .connect_timeout(s.http_timeout)
            .redirect(reqwest::redirect::Policy::limited(3))
            .build()
            .map_err(|e| format!("cannot build HTTP client: {e}"))?;
        Ok(RemoteJwks {
            issuer: s.issuer,
            explicit_url: s.jwks_url,
            ttl: s.ttl,
            min_interval: s.min_refresh_interval,
            client,
            held: RwLock::new(None),
            fetch: tokio::sync::Mutex::new(FetchState::default()),
        })
    }

    fn held(&self) -> Option<Arc<KeySet>> {
        self.held.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    async fn current(&self) -> Result<Arc<KeySet>, AuthError> {
        if let Some(k) = self.held() {
            if k.fetched_at.elapsed() < self.ttl {
                return Ok(k);
            }
        }
        self.refresh().await
    }

    async fn refresh(&self) -> Result<Arc<KeySet>, AuthError> {
        let started = Instant::now();
        let mut st = self.fetch.lock().await;
        // Someone else fetched while we waited for the lock: use their result.
        if let Some(k) = self.held() {
            if k.fetched_at >= started {
                return Ok(k);
            }
        }
        if let Some(last) = st.last_attempt {
            if last.elapsed() < self.min_interval {
                return match self.held() {
                    Some(k) => Ok(k),
                    None => Err(AuthError::KeysUnavailable(
                        st.last_error
                            .clone()
                            .unwrap_or_else(|| "not fetched yet".into()),
                    )),
                };
            }
        }
        st.last_attempt = Some(Instant::now());
        match self.fetch_once(&mut st).await {
            Ok(set) => {
                let set = Arc::new(set);
                *self.held.write().unwrap_or_else(|e| e.into_inner()) = Some(set.clone());
                st.last_error = None;
                Ok(set)
            }
            Err(e) => {
                st.last_error = Some(e.clone());
                match self.held() {
                    Some(k) => {
                        tracing::warn!(issuer = %self.issuer, error = %e,
                            "JWKS refresh failed; keeping the keys fetched earlier");
                        Ok(k)
                    }
                    None => {
                        tracing::error!(issuer = %self.issuer, error = %e,
                            "JWKS fetch failed and no keys are cached; refusing tokens of this issuer");
                        Err(AuthError::KeysUnavailable(e))
                    }
                }
            }
        }
    }

    async fn fetch_once(&self, st: &mut FetchState) -> Result<KeySet, String> {
        let url = match (&self.explicit_url, &st.discovered_url) {
            (Some(u), _) | (None, Some(u)) => u.clone(),
            (None, None) => {
                let u = self.discover().await?;
                st.discovered_url = Some(u.clone());
                u
            }
        };
        let set: JwkSet = self.get_json(&url).await?;
        let (keys, skipped) = KeySet::from_jwks(&set);
        if keys.keys.is_empty() {
            return Err(format!("JWKS at {url} holds no usable signing key"));
        }
        tracing::info!(issuer = %self.issuer, keys = keys.keys.len(), skipped, "fetched JWKS");
        Ok(keys)
    }

    async fn discover(&self) -> Result<String, String> {
        let url = format!(
            "{}/.well-known/openid-configuration",
            self.issuer.trim_end_matches('/')
        );
        let doc: Discovery = self.get_json(&url).await?;
        if doc.issuer.trim_end_matches('/') != self.issuer.trim_end_matches('/') {
            return Err(format!(
                "discovery document at {url} names issuer `{}`, not `{}`",
                doc.issuer, self.issuer
            ));
        }
        Ok(doc.jwks_uri)
    }

    async fn get_json<T: serde::de::DeserializeOwned>(&self, url: &str) -> Result<T, String> {
        let resp = self
            .client
            .get(url)
            .send()
            .await
            .map_err(|e| format!("GET {url} failed: {}", without_url(&e)))?;
        let status = resp.status();
        if !status.is_success() {
            return Err(format!("GET {url} answered {status}"));
        }
        let body = resp
            .bytes()
            .await
            .map_err(|e| format!("GET {url}: reading the body failed: {}", without_url(&e)))?;
        serde_json::from_slice(&body).map_err(|e| format!("GET {url}: not the expected JSON: {e}"))
    }
}

fn without_url(e: &reqwest::Error) -> String {
    let mut s = e.to_string();
    if let Some(u) = e.url() {
        s = s.replace(u.as_str(), "");
    }
    let mut src = std::error::Error::source(e);
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}
