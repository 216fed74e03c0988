//! The AWS side, without HTTP servers: pseudo-credentials that only hoopguard accepts, caller
//! SigV4 verification, classification, brokers and re-signing.
//!
//! [`Minter`] turns a verified [`Identity`] into container-credentials JSON
//! (`AccessKeyId`, `SecretAccessKey`, `Token`, `Expiration`). Nothing is stored: the `Token` is
//! a MAC-sealed blob naming the session, subject, groups, connection and expiry, and the key id
//! and secret are derived from the session id with the gateway key, so any replica holding the
//! same key can check a request. [`verify_request`] recomputes the caller's SigV4 signature (in
//! `Authorization`, or in the query of a URL presigned with the pseudo-credentials) with the
//! derived secret and compares in constant time.
//!
//! * [`classify`](mod@classify): what a call does, for the policy — read only the way its
//!   protocol dispatches (a route table generated from the botocore models), mapped to IAM
//!   actions, access levels and resources ([`iam`], from the Service Authorization Reference).
//! * [`pct`]: the one percent-decoder.
//! * [`broker`]: the short-lived real credentials a call is re-signed with.
//! * [`resign`]: the upstream host, the forwarded headers, the new signature.
//! * [`chunked`]: de-framing `aws-chunked` upload bodies, chunk signatures checked.
//!
//! # Example
//!
//! ```
//! use std::time::{Duration, SystemTime};
//! use hoopguard_core::aws::Minter;
//! # use hoopguard_core::identity::Identity;
//! # let alice = Identity::new("alice", vec!["dev".into()], "i", SystemTime::now() + Duration::from_secs(3600));
//!
//! let minter = Minter::new(&[7u8; 32]);
//! let creds = minter.mint(&alice, "default", Duration::from_secs(900)).unwrap();
//! let session = minter.open(&creds.token).unwrap();
//! assert_eq!(session.subject, "alice");
//! assert_eq!(minter.access_key_id(&session), creds.access_key_id);
//! ```

pub mod binding;
pub mod broker;
pub mod chunked;
pub mod classify;
pub mod iam;
pub mod pct;
pub mod resign;
pub mod routes;
mod signing;
mod sigv4;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::{aead, hmac};
use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::identity::Identity;

pub use sigv4::{
    Head, MAX_SKEW, PRESIGN_PARAMS, Request, SigError, Verified, check_head, verify_request,
};

/// Hex SHA-256 of a payload, as SigV4 wants it.
pub fn sha256_hex(payload: &[u8]) -> String {
    hex::encode(aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        payload,
    ))
}

/// The prefix of every pseudo access key id (never a real AWS prefix, so nobody mistakes one).
pub const KEY_PREFIX: &str = "HGPK";

/// Credentials in the container-credentials JSON shape.
#[derive(Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct PseudoCredentials {
    /// `HGPK…`: good only at hoopguard.
    pub access_key_id: String,
    /// Derived from the session with the gateway key.
    pub secret_access_key: String,
    /// The sealed session.
    pub token: String,
    /// RFC 3339, no later than the caller's OIDC token.
    pub expiration: String,
}

impl std::fmt::Debug for PseudoCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PseudoCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("expiration", &self.expiration)
            .finish_non_exhaustive()
    }
}

/// What a pseudo-credential session holds.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// The session id (random).
    pub sid: String,
    /// The caller's subject.
    pub subject: String,
    /// The caller's groups.
    pub groups: Vec<String>,
    /// The AWS connection the credentials were issued for.
    pub connection: String,
    /// Expiry, Unix seconds.
    pub exp: u64,
    /// The issuer the caller's identity came from, when several are trusted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ns: Option<crate::identity::Namespace>,
    /// The issuer URL of the token the credentials were minted for (what audit lines and spans
    /// name; sessions minted before it was carried name `hoopguard:aws-session`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// For web-identity connections: the credentials STS exchanged the caller's token for,
    /// encrypted with a key derived from the gateway key (AES-256-GCM, bound to the session id),
    /// so that any replica can use them and none stores them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed: Option<String>,
    /// [`Session::sealed`] opened by [`Minter::open`]: never serialized, never in `Debug`.
    #[serde(skip)]
    pub web_identity: Option<std::sync::Arc<broker::Brokered>>,
    /// Which of the minter's keys sealed the session (0: the current one; more: a previous
    /// one still accepted during a rotation). Set by [`Minter::open`]; never serialized.
    #[serde(skip)]
    pub key: usize,
}

impl std::fmt::Debug for Session {
    // Neither the sealed credentials nor their key id.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("sid", &self.sid)
            .field("subject", &self.subject)
            .field("groups", &self.groups)
            .field("connection", &self.connection)
            .field("exp", &self.exp)
            .field("ns", &self.ns)
            .field("iss", &self.iss)
            .field("web_identity", &self.sealed.is_some())
            .finish()
    }
}

impl Session {
    /// The caller, as the policy and approvals see them.
    pub fn identity(&self) -> Identity {
        Identity {
            subject: self.subject.clone(),
            groups: self.groups.clone(),
            issuer: self
                .iss
                .clone()
                .unwrap_or_else(|| "hoopguard:aws-session".into()),
            expires_at: UNIX_EPOCH + Duration::from_secs(self.exp),
            claims: Default::default(),
            namespace: self.ns.clone(),
        }
    }
}

/// Brokered credentials as sealed into a session.
#[derive(Serialize, Deserialize)]
struct SealedCreds {
    k: String,
    s: String,
    t: Option<String>,
    e: Option<u64>,
}

impl SealedCreds {
    fn of(c: &broker::Brokered) -> Self {
        SealedCreds {
            k: c.access_key_id.clone(),
            s: c.secret_access_key.clone(),
            t: c.session_token.clone(),
            e: c.expires.map(unix),
        }
    }

    fn into_brokered(self) -> broker::Brokered {
        broker::Brokered {
            access_key_id: self.k,
            secret_access_key: self.s,
            session_token: self.t,
            expires: self.e.map(|e| UNIX_EPOCH + Duration::from_secs(e)),
        }
    }
}

/// Why pseudo-credentials could not be minted or opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredError {
    /// The token is not one hoopguard sealed (or was altered).
    #[error("the security token was not issued by this gateway")]
    Forged,
    /// The session has expired.
    #[error("the credentials have expired; fetch new ones from the credentials endpoint")]
    Expired,
    /// The caller's OIDC token expires too soon to issue anything.
    #[error("the identity token expires in under a minute; get a fresh one")]
    TooShort,
}

/// Mints and opens pseudo-credentials with the gateway key. During a key rotation it also
/// opens (never mints) credentials sealed with previous keys ([`Minter::with_previous`]).
pub struct Minter {
    /// The current key, then the previous ones.
    keys: Vec<hmac::Key>,
}

impl std::fmt::Debug for Minter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Minter").finish_non_exhaustive()
    }
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

impl Minter {
    /// A minter with this gateway key (at least 32 random bytes; keep it secret, share it
    /// between replicas).
    pub fn new(key: &[u8]) -> Self {
        Minter {
            keys: vec![hmac::Key::new(hmac::HMAC_SHA256, key)],
        }
    }

    /// Also accepts credentials minted with these previous gateway keys, until they expire:
    /// replicas given the new key as current and the old one here accept what either minted,
    /// so a rotation cuts no agent off. New credentials are always minted with the current key.
    pub fn with_previous<K: AsRef<[u8]>>(mut self, previous: &[K]) -> Self {
        self.keys.extend(
            previous
                .iter()
                .map(|k| hmac::Key::new(hmac::HMAC_SHA256, k.as_ref())),
        );
        self
    }

    /// A minter whose key lives at `path` (32 random bytes, created on first use, mode 0600).
    pub fn load_or_create(path: &std::path::Path) -> std::io::Result<Self> {
        let key = crate::keyfile::load_or_create(path, || {
            let mut k = vec![0u8; 32];
            aws_lc_rs::rand::fill(&mut k).map_err(|_| std::io::Error::other("no randomness"))?;
            Ok(k)
        })?;
        if key.len() < 32 {
            return Err(std::io::Error::other(format!(
                "{} holds fewer than 32 bytes",
                path.display()
            )));
        }
        Ok(Minter::new(&key))
    }

    /// The current key, or the one that sealed a session.
    fn key(&self, index: usize) -> &hmac::Key {
        self.keys.get(index).unwrap_or(&self.keys[0])
    }

    fn derive(&self, key: usize, label: &str, sid: &str) -> Vec<u8> {
        hmac::sign(self.key(key), format!("{label}\n{sid}").as_bytes())
            .as_ref()
            .to_vec()
    }

    /// A new session for `who` on `connection`, valid for `ttl` but never past the identity's
    /// own expiry; [`Minter::issue`] turns it into pseudo-credentials.
    pub fn session(
        &self,
        who: &Identity,
        connection: &str,
        ttl: Duration,
    ) -> Result<Session, CredError> {
        let now = unix(SystemTime::now());
        let exp = (now + ttl.as_secs()).min(unix(who.expires_at));
        if exp < now + 60 {
            return Err(CredError::TooShort);
        }
        let mut rnd = [0u8; 15];
        aws_lc_rs::rand::fill(&mut rnd).map_err(|_| CredError::TooShort)?;
        Ok(Session {
            sid: B64.encode(rnd),
            subject: who.subject.clone(),
            groups: who.groups.clone(),
            connection: connection.to_string(),
            exp,
            ns: who.namespace.clone(),
            iss: Some(who.issuer.clone()),
            sealed: None,
            web_identity: None,
            key: 0,
        })
    }

    /// Seals `creds` into `session` ([`Session::sealed`]), for [`Minter::issue`] to carry.
    pub fn seal(&self, session: &mut Session, creds: &broker::Brokered) -> Result<(), CredError> {
        let plain = serde_json::to_vec(&SealedCreds::of(creds)).map_err(|_| CredError::Forged)?;
        let mut nonce = [0u8; aead::NONCE_LEN];
        aws_lc_rs::rand::fill(&mut nonce).map_err(|_| CredError::Forged)?;
        let mut buf = plain;
        self.seal_key(0)
            .seal_in_place_append_tag(
                aead::Nonce::assume_unique_for_key(nonce),
                aead::Aad::from(session.sid.as_bytes()),
                &mut buf,
            )
            .map_err(|_| CredError::Forged)?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&buf);
        session.sealed = Some(B64.encode(out));
        session.web_identity = Some(std::sync::Arc::new(creds.clone()));
        Ok(())
    }

    fn unseal(&self, key: usize, sid: &str, sealed: &str) -> Result<broker::Brokered, CredError> {
        let raw = B64.decode(sealed).map_err(|_| CredError::Forged)?;
        if raw.len() < aead::NONCE_LEN {
            return Err(CredError::Forged);
        }
        let (nonce, rest) = raw.split_at(aead::NONCE_LEN);
        let nonce = aead::Nonce::try_assume_unique_for_key(nonce).map_err(|_| CredError::Forged)?;
        let mut buf = rest.to_vec();
        let plain = self
            .seal_key(key)
            .open_in_place(nonce, aead::Aad::from(sid.as_bytes()), &mut buf)
            .map_err(|_| CredError::Forged)?;
        let c: SealedCreds = serde_json::from_slice(plain).map_err(|_| CredError::Forged)?;
        Ok(c.into_brokered())
    }

    fn seal_key(&self, key: usize) -> aead::LessSafeKey {
        let k = hmac::sign(self.key(key), b"seal\nweb-identity credentials");
        // HMAC-SHA256 gives exactly the 32 bytes AES-256 takes.
        let unbound = aead::UnboundKey::new(&aead::AES_256_GCM, k.as_ref())
            .expect("an HMAC-SHA256 tag is a valid AES-256 key");
        aead::LessSafeKey::new(unbound)
    }

    /// Credentials for `who` on `connection`, valid for `ttl` but never past the identity's
    /// own expiry (a new [`Minter::session`], [`Minter::issue`]d).
    pub fn mint(
        &self,
        who: &Identity,
        connection: &str,
        ttl: Duration,
    ) -> Result<PseudoCredentials, CredError> {
        Ok(self.issue(&self.session(who, connection, ttl)?))
    }

    /// The pseudo-credentials carrying `session`, sealed with the current key.
    pub fn issue(&self, session: &Session) -> PseudoCredentials {
        let exp = session.exp;
        let payload = B64.encode(serde_json::to_vec(&session).unwrap_or_default());
        let mac = B64.encode(hmac::sign(
            self.key(0),
            format!("token\n{payload}").as_bytes(),
        ));
        let current = Session {
            key: 0,
            ..session.clone()
        };
        PseudoCredentials {
            access_key_id: self.access_key_id(&current),
            secret_access_key: self.secret(&current),
            token: format!("hg1.{payload}.{mac}"),
            expiration: humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(exp))
                .to_string(),
        }
    }

    /// The session sealed in `token`, if this gateway sealed it and it has not expired.
    pub fn open(&self, token: &str) -> Result<Session, CredError> {
        let rest = token.strip_prefix("hg1.").ok_or(CredError::Forged)?;
        let (payload, mac) = rest.split_once('.').ok_or(CredError::Forged)?;
        let mac = B64.decode(mac).map_err(|_| CredError::Forged)?;
        let signed = format!("token\n{payload}");
        let key = self
            .keys
            .iter()
            .position(|k| hmac::verify(k, signed.as_bytes(), &mac).is_ok())
            .ok_or(CredError::Forged)?;
        let mut session: Session = B64
            .decode(payload)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or(CredError::Forged)?;
        if unix(SystemTime::now()) >= session.exp {
            return Err(CredError::Expired);
        }
        session.key = key;
        if let Some(sealed) = &session.sealed {
            session.web_identity = Some(std::sync::Arc::new(self.unseal(
                key,
                &session.sid,
                sealed,
            )?));
        }
        Ok(session)
    }

    /// The access key id of `session`: `HGPK` and 16 base32 characters.
    pub fn access_key_id(&self, session: &Session) -> String {
        const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
        let d = self.derive(session.key, "akid", &session.sid);
        let tail: String = d[..16]
            .iter()
            .map(|b| A[(*b & 31) as usize] as char)
            .collect();
        format!("{KEY_PREFIX}{tail}")
    }

    /// The secret access key of `session` (40 characters, like AWS's).
    pub fn secret(&self, session: &Session) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.derive(
            session.key,
            "secret",
            &session.sid,
        ))[..40]
            .to_string()
    }
}

#[cfg(test)]
mod tests;
