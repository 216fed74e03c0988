//! Who is calling: the [`Identity`] later layers decide on, and (feature `oidc`) OIDC/JWT
//! verification with discovery, JWKS caching and a verified-token cache.
//!
//! A [`Verifier`] trusts a list of issuers. Each issuer's keys come from its OIDC discovery
//! document (`{issuer}/.well-known/openid-configuration` → `jwks_uri`), an explicit JWKS URL, or
//! a fixed set (the [development issuer](dev::DevIssuer), tests). Keys are cached, refetched on a
//! TTL and when a token names a key the cache lacks (at most once per minimum interval), and kept
//! when the provider is down; with no keys at all, verification fails with
//! [`AuthError::KeysUnavailable`] — closed, never open.
//!
//! Algorithms come from an explicit allow-list per issuer. `none` is always refused; HMAC is
//! accepted only when a shared secret is configured for the issuer, and an HMAC token is only
//! ever checked against that secret, so a public RSA key can never be used as an HMAC secret.
//!
//! # Example
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! use std::time::Duration;
//! use hoopguard_core::identity::{dev::DevIssuer, Verifier};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let issuer = DevIssuer::load_or_create(dir.path(), "http://127.0.0.1:8789/dev", "hoopguard").unwrap();
//! let verifier = Verifier::builder().issuer(issuer.issuer_verifier()).build();
//!
//! let token = issuer.mint("alice", &["dev".into()], Duration::from_secs(600)).unwrap();
//! let who = verifier.verify(&token).await.unwrap();
//! assert_eq!(who.subject, "alice");
//! assert_eq!(who.groups, ["dev"]);
//!
//! let err = verifier.verify("not-a-token").await.unwrap_err();
//! assert_eq!(err.code(), "malformed");
//! # }
//! ```

#[cfg(feature = "oidc")]
mod cache;
#[cfg(feature = "oidc")]
pub mod dev;
#[cfg(feature = "oidc")]
mod error;
#[cfg(feature = "oidc")]
mod keys;
#[cfg(feature = "oidc")]
mod verify;

use std::time::SystemTime;

use serde::Deserialize;
use serde_json::{Map, Value};

#[cfg(feature = "oidc")]
pub use error::AuthError;
#[cfg(feature = "oidc")]
pub use verify::*;

/// A verified caller. Travels in request extensions for the later layers.
///
/// `Debug` shows the subject, groups, issuer and expiry, never the raw claims' values beyond
/// those (claims may carry personal data).
///
/// Built with [`Identity::new`] and the `with_*` methods (the verifier fills in the claims and
/// the namespace); new fields may be added, so it cannot be written as a struct literal outside
/// this crate.
#[derive(Clone, PartialEq)]
#[non_exhaustive]
pub struct Identity {
    /// The subject (from the issuer's configured subject claim, `sub` by default).
    pub subject: String,
    /// Groups (from the configured groups claim; a string counts as one group).
    pub groups: Vec<String>,
    /// The token's issuer.
    pub issuer: String,
    /// When the token expires (`exp`).
    pub expires_at: SystemTime,
    /// All claims of the token, verified.
    pub claims: Map<String, Value>,
    /// Which of several trusted issuers vouched for this identity; `None` when only one issuer
    /// is trusted (names are then used as they are).
    pub namespace: Option<Namespace>,
}

/// The issuer an identity comes from, when several are trusted: subjects and groups of
/// different issuers never meet. A policy names `corp:managers` for the group `managers` of the
/// issuer named `corp`; a bare `managers` means the group of the *primary* issuer (the first
/// one configured) only.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, Deserialize)]
pub struct Namespace {
    /// The issuer's configured name.
    pub name: String,
    /// Whether it is the primary issuer, whose names may be written bare.
    pub primary: bool,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("subject", &self.subject)
            .field("groups", &self.groups)
            .field("issuer", &self.issuer)
            .field("expires_at", &self.expires_at)
            .field("namespace", &self.namespace)
            .finish_non_exhaustive()
    }
}

impl Identity {
    /// An identity of the only trusted issuer (no namespace), without claims.
    pub fn new(
        subject: impl Into<String>,
        groups: Vec<String>,
        issuer: impl Into<String>,
        expires_at: SystemTime,
    ) -> Identity {
        Identity {
            subject: subject.into(),
            groups,
            issuer: issuer.into(),
            expires_at,
            claims: Map::new(),
            namespace: None,
        }
    }

    /// With these verified claims.
    pub fn with_claims(mut self, claims: Map<String, Value>) -> Identity {
        self.claims = claims;
        self
    }

    /// Of the trusted issuer named by `namespace` (when several are trusted).
    pub fn with_namespace(mut self, namespace: Namespace) -> Identity {
        self.namespace = Some(namespace);
        self
    }

    /// Whether the identity is in `group`: `issuer:group` for a named issuer's group, a bare
    /// name for the primary issuer's (or the only one's).
    pub fn in_group(&self, group: &str) -> bool {
        let has = |g: &str| self.groups.iter().any(|x| x == g);
        match &self.namespace {
            None => has(group),
            Some(ns) => match group.split_once(':') {
                Some((name, g)) if name == ns.name => has(g),
                _ => ns.primary && has(group),
            },
        }
    }

    /// Who this is across issuers: the subject, prefixed `issuer:` when several issuers are
    /// trusted. Approvals name requesters and approvers by it.
    pub fn principal(&self) -> String {
        match &self.namespace {
            None => self.subject.clone(),
            Some(ns) => format!("{}:{}", ns.name, self.subject),
        }
    }

    /// The names a subject pattern may match this identity by: the principal, and for the
    /// primary issuer the bare subject too.
    pub fn subject_names(&self) -> Vec<String> {
        match &self.namespace {
            Some(ns) if ns.primary => vec![self.principal(), self.subject.clone()],
            _ => vec![self.principal()],
        }
    }
}

#[cfg(test)]
mod tests;
