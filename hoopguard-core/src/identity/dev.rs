//! The local development issuer: an ES256 key in the data directory that mints tokens for trying
//! hoopguard out without an identity provider. Never for production: anyone who can read the data
//! directory can mint any identity.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use hoopguard_core::identity::dev::DevIssuer;
//!
//! let dir = tempfile::tempdir().unwrap();
//! let dev = DevIssuer::load_or_create(dir.path(), "http://127.0.0.1:8789/dev", "hoopguard").unwrap();
//! let token = dev.mint("alice", &["dev".into(), "ops".into()], Duration::from_secs(3600)).unwrap();
//! assert_eq!(token.split('.').count(), 3);
//! // The same key is found again next time.
//! let again = DevIssuer::load_or_create(dir.path(), "http://127.0.0.1:8789/dev", "hoopguard").unwrap();
//! assert_eq!(dev.jwks(), again.jwks());
//! ```

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use super::{IssuerConfig, IssuerVerifier};

/// Where the key lives, relative to the data directory.
pub const KEY_FILE: &str = "dev-issuer/es256.pk8";

/// The longest token the development issuer mints.
pub const MAX_TTL: Duration = Duration::from_secs(24 * 3600);

/// Failures of the development issuer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DevIssuerError {
    /// The key file could not be read or written.
    #[error("development issuer key {path}: {source}")]
    Io {
        /// The key file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The key file exists but is not a P-256 PKCS#8 key.
    #[error(
        "development issuer key {0} is not a valid P-256 PKCS#8 key; delete it to create a new one"
    )]
    BadKey(PathBuf),
    /// The request to mint was refused.
    #[error("{0}")]
    Mint(String),
}

/// The development issuer.
pub struct DevIssuer {
    issuer: String,
    audience: String,
    encoding: EncodingKey,
    jwk: Jwk,
}

impl std::fmt::Debug for DevIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevIssuer")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .finish_non_exhaustive()
    }
}

impl DevIssuer {
    /// Loads the key from `data_dir`, creating the directory and a new key if there is none.
    /// Safe against two processes creating it at once: exactly one key wins.
    pub fn load_or_create(
        data_dir: &Path,
        issuer: impl Into<String>,
        audience: impl Into<String>,
    ) -> Result<Self, DevIssuerError> {
        let path = data_dir.join(KEY_FILE);
        let io = |source| DevIssuerError::Io {
            path: path.clone(),
            source,
        };
        let der = crate::keyfile::load_or_create(&path, || {
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
                .map(|k| k.as_ref().to_vec())
                .map_err(|_| std::io::Error::other("key generation failed"))
        })
        .map_err(io)?;
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &der)
            .map_err(|_| DevIssuerError::BadKey(path.clone()))?;
        let encoding = EncodingKey::from_ec_der(&der);
        let mut jwk = Jwk::from_encoding_key(&encoding, Algorithm::ES256)
            .map_err(|_| DevIssuerError::BadKey(path.clone()))?;
        // A stable key id: the RFC 7638 thumbprint.
        jwk.common.key_id = Some(jwk.thumbprint(jsonwebtoken::jwk::ThumbprintHash::SHA256));
        jwk.common.public_key_use = Some(jsonwebtoken::jwk::PublicKeyUse::Signature);
        drop(pair);
        Ok(DevIssuer {
            issuer: issuer.into(),
            audience: audience.into(),
            encoding,
            jwk,
        })
    }

    /// The issuer URL written into tokens.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The audience written into tokens.
    pub fn audience(&self) -> &str {
        &self.audience
    }

    /// Mints a token for `subject` in `groups`, valid for `ttl` (at most [`MAX_TTL`]).
    pub fn mint(
        &self,
        subject: &str,
        groups: &[String],
        ttl: Duration,
    ) -> Result<String, DevIssuerError> {
        self.mint_for(subject, groups, ttl, &[])
    }

    /// [`DevIssuer::mint`], for `audiences` instead of the issuer's own (an MCP gateway's
    /// resource URI, for one: such a token is for that resource only).
    pub fn mint_for(
        &self,
        subject: &str,
        groups: &[String],
        ttl: Duration,
        audiences: &[String],
    ) -> Result<String, DevIssuerError> {
        if subject.is_empty() {
            return Err(DevIssuerError::Mint("the subject must not be empty".into()));
        }
        if ttl.is_zero() || ttl > MAX_TTL {
            return Err(DevIssuerError::Mint(format!(
                "the lifetime must be between 1s and {}",
                crate::duration::format(MAX_TTL)
            )));
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let claims = json!({
            "iss": self.issuer,
            "aud": if audiences.is_empty() {
                json!(self.audience)
            } else {
                json!(audiences)
            },
            "sub": subject,
            "groups": groups,
            "iat": now,
            "nbf": now,
            "exp": now + ttl.as_secs(),
            "jti": random_id(),
        });
        let mut header = Header::new(Algorithm::ES256);
        header.kid = self.jwk.common.key_id.clone();
        jsonwebtoken::encode(&header, &claims, &self.encoding)
            .map_err(|e| DevIssuerError::Mint(format!("signing failed: {e}")))
    }

    /// The public key set, as served at the issuer's `jwks_uri`.
    pub fn jwks(&self) -> Value {
        json!({ "keys": [self.jwk] })
    }

    /// The OIDC discovery document, as served at `{issuer}/.well-known/openid-configuration`.
    pub fn discovery(&self) -> Value {
        json!({
            "issuer": self.issuer,
            "jwks_uri": format!("{}/jwks", self.issuer),
            "id_token_signing_alg_values_supported": ["ES256"],
            "subject_types_supported": ["public"],
            "response_types_supported": ["id_token"],
        })
    }

    /// A verifier for this issuer's tokens, holding its public key directly (no HTTP), named
    /// `dev`.
    pub fn issuer_verifier(&self) -> IssuerVerifier {
        self.issuer_verifier_for(&[])
    }

    /// [`DevIssuer::issuer_verifier`], also accepting tokens minted for `audiences` (the MCP
    /// listener's resource URI).
    pub fn issuer_verifier_for(&self, audiences: &[String]) -> IssuerVerifier {
        let mut cfg = IssuerConfig::new(self.issuer.clone(), self.audience.clone());
        cfg.audiences.extend(audiences.iter().cloned());
        cfg.name = Some("dev".into());
        cfg.algorithms = vec!["ES256".into()];
        let set = JwkSet {
            keys: vec![self.jwk.clone()],
        };
        IssuerVerifier::with_keys(&cfg, &set)
            .expect("the development issuer's fixed settings are valid")
    }
}

fn random_id() -> String {
    let mut b = [0u8; 16];
    aws_lc_rs::rand::fill(&mut b).unwrap_or_default();
    hex::encode(b)
}
