//! Verifying a caller's SigV4 signature made with hoopguard's pseudo-credentials.
//!
//! The canonical request is rebuilt from what the caller sent and signed — the raw path, the
//! query, the headers it names in `SignedHeaders`, the payload hash it declared — exactly as the
//! SigV4 specification lays out (S3: the path as sent; other services: the path normalised and
//! encoded once more), and the signature is compared in constant time.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::{digest, hmac};

use super::chunked::ChunkSeed;
use super::pct;
use super::signing::signing_key;
use super::{CredError, Minter, Session};

/// How far a request's `X-Amz-Date` may be from the gateway's clock.
pub const MAX_SKEW: Duration = Duration::from_secs(300);

/// The parts of an HTTP request that SigV4 covers.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    /// `GET`, `POST`, …
    pub method: &'a str,
    /// The path as sent, still percent-encoded.
    pub path: &'a str,
    /// The query as sent, without `?`.
    pub query: &'a str,
    /// Headers with lower-case names, in the order received.
    pub headers: &'a [(&'a str, &'a [u8])],
    /// Hex SHA-256 of the body, for requests without `x-amz-content-sha256`.
    pub body_sha256: Option<&'a str>,
}

impl Request<'_> {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .and_then(|(_, v)| std::str::from_utf8(v).ok())
    }
}

/// A request whose signature verified.
#[derive(Debug, Clone)]
pub struct Verified {
    /// The pseudo-credential session.
    pub session: Session,
    /// The region of the credential scope.
    pub region: String,
    /// The service of the credential scope.
    pub service: String,
    /// Signed in the query (a presigned URL) rather than in `Authorization`.
    pub presigned: bool,
    seed: ChunkSeed,
}

impl Verified {
    /// What the signatures of an `aws-chunked` body's chunks are chained from.
    pub fn chunk_seed(&self) -> ChunkSeed {
        self.seed.clone()
    }
}

/// Why a request's signature was refused. [`SigError::aws_code`] gives the error code AWS itself
/// would answer with, so SDKs and the CLI show it as usual.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SigError {
    /// No signature at all.
    #[error("the request is not signed; configure the SDK with hoopguard's credentials endpoint")]
    Missing,
    /// A signature kind hoopguard does not accept (SigV2, presigned URLs).
    #[error("{0}")]
    Unsupported(String),
    /// The `Authorization` header or a signed value is malformed.
    #[error("the signature is malformed: {0}")]
    Malformed(String),
    /// The access key or token is not one this gateway issued.
    #[error(
        "the access key or security token was not issued by this hoopguard; fetch credentials from its credentials endpoint"
    )]
    UnknownKey,
    /// The pseudo-credentials have expired.
    #[error(
        "the credentials have expired; the SDK should fetch new ones (is the identity token still valid?)"
    )]
    Expired,
    /// `X-Amz-Date` is too far from now.
    #[error("the request time is more than 5 minutes from the gateway's clock")]
    Skew,
    /// The signature does not match.
    #[error("the request signature does not match the one computed with the credentials' secret")]
    Mismatch,
}

impl SigError {
    /// The AWS error code for this refusal.
    pub fn aws_code(&self) -> &'static str {
        match self {
            SigError::Missing => "MissingAuthenticationToken",
            SigError::Unsupported(_) => "InvalidRequest",
            SigError::Malformed(_) => "IncompleteSignature",
            SigError::UnknownKey => "InvalidClientTokenId",
            SigError::Expired => "ExpiredToken",
            SigError::Skew => "RequestTimeTooSkewed",
            SigError::Mismatch => "SignatureDoesNotMatch",
        }
    }
}

struct Auth<'a> {
    access_key_id: &'a str,
    date: &'a str,
    region: &'a str,
    service: &'a str,
    signed_headers: Vec<&'a str>,
    signature: &'a str,
}

fn parse_auth(value: &str) -> Result<Auth<'_>, SigError> {
    let malformed = |m: &str| SigError::Malformed(m.to_string());
    let rest = value.strip_prefix("AWS4-HMAC-SHA256 ").ok_or_else(|| {
        if value.starts_with("AWS ") {
            SigError::Unsupported("SigV2 signatures are not accepted; use SigV4".into())
        } else {
            malformed("expected AWS4-HMAC-SHA256")
        }
    })?;
    let (mut cred, mut signed, mut sig) = (None, None, None);
    for part in rest.split(',') {
        let (k, v) = part
            .trim()
            .split_once('=')
            .ok_or_else(|| malformed("a part has no `=`"))?;
        let slot = match k {
            "Credential" => &mut cred,
            "SignedHeaders" => &mut signed,
            "Signature" => &mut sig,
            _ => return Err(malformed("unknown part")),
        };
        // Two scopes would be read one way here and another way elsewhere: refused.
        if slot.replace(v).is_some() {
            return Err(malformed("a part is given twice"));
        }
    }
    let cred = cred.ok_or_else(|| malformed("no Credential"))?;
    let scope: Vec<&str> = cred.split('/').collect();
    if scope.len() != 5 || scope[4] != "aws4_request" {
        return Err(malformed(
            "the credential scope is not KEY/DATE/REGION/SERVICE/aws4_request",
        ));
    }
    let name_ok = |s: &str| {
        !s.is_empty()
            && s.len() <= 64
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    };
    if !name_ok(scope[2]) || !name_ok(scope[3]) || scope[0].is_empty() {
        return Err(malformed(
            "the credential scope names no valid region and service",
        ));
    }
    let signed_headers: Vec<&str> = signed
        .ok_or_else(|| malformed("no SignedHeaders"))?
        .split(';')
        .collect();
    if !signed_headers.contains(&"host") {
        return Err(malformed("the host header must be signed"));
    }
    let signature = sig.ok_or_else(|| malformed("no Signature"))?;
    if signature.len() != 64 || !signature.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(malformed("the signature is not 64 hex digits"));
    }
    Ok(Auth {
        access_key_id: scope[0],
        date: scope[1],
        region: scope[2],
        service: scope[3],
        signed_headers,
        signature,
    })
}

/// `YYYYMMDDTHHMMSSZ` → time.
fn parse_amz_date(s: &str) -> Option<SystemTime> {
    let b = s.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    if !b[..8].iter().chain(&b[9..15]).all(u8::is_ascii_digit) {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<u64>().ok();
    let (y, mo, d) = (num(0..4)?, num(4..6)?, num(6..8)?);
    let (h, mi, se) = (num(9..11)?, num(11..13)?, num(13..15)?);
    if y < 1970 || !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60
    {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let (y, m) = if mo <= 2 {
        (y - 1, mo + 9)
    } else {
        (y, mo - 3)
    };
    let era = y / 400;
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(UNIX_EPOCH + Duration::from_secs(days * 86_400 + h * 3600 + mi * 60 + se))
}

/// Percent-encodes everything but the SigV4 unreserved characters (and `/` when asked).
fn encode(s: &[u8], keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s {
        if b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'_' | b'.' | b'~')
            || (keep_slash && b == b'/')
        {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The canonical URI: S3 signs the path as sent; every other service signs it normalised and
/// encoded once more.
pub(crate) fn canonical_uri(path: &str, service: &str) -> String {
    let path = if path.is_empty() { "/" } else { path };
    if service == "s3" {
        return path.to_string();
    }
    let mut segments: Vec<&str> = Vec::new();
    for seg in path.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    let mut normalized = format!("/{}", segments.join("/"));
    if path.ends_with('/') && normalized != "/" {
        normalized.push('/');
    }
    encode(normalized.as_bytes(), true)
}

pub(crate) fn canonical_query(query: &str) -> String {
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (
                encode(&pct::decode(k.as_bytes(), false), false),
                encode(&pct::decode(v.as_bytes(), false), false),
            )
        })
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

fn canonical_header_value(values: &[&[u8]]) -> String {
    values
        .iter()
        .map(|v| {
            let s = String::from_utf8_lossy(v);
            s.split_whitespace().collect::<Vec<_>>().join(" ")
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn hex_sha256(data: &[u8]) -> String {
    hex::encode(digest::digest(&digest::SHA256, data))
}

/// The SigV4 string to sign for `req` over the `signed` headers.
fn string_to_sign(
    req: &Request<'_>,
    signed: &[&str],
    amz_date: &str,
    date: &str,
    region: &str,
    service: &str,
    payload_hash: &str,
) -> Result<String, SigError> {
    let mut canonical_headers = String::new();
    for name in signed {
        let values: Vec<&[u8]> = req
            .headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| *v)
            .collect();
        if values.is_empty() {
            return Err(SigError::Malformed(format!(
                "the signed header `{name}` is missing"
            )));
        }
        canonical_headers.push_str(name);
        canonical_headers.push(':');
        canonical_headers.push_str(&canonical_header_value(&values));
        canonical_headers.push('\n');
    }
    let canonical = format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        req.method,
        canonical_uri(req.path, service),
        canonical_query(req.query),
        canonical_headers,
        signed.join(";"),
        payload_hash
    );
    Ok(format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{date}/{region}/{service}/aws4_request\n{}",
        hex_sha256(canonical.as_bytes())
    ))
}

/// The longest a presigned URL may be valid (SigV4's own limit: 7 days).
const MAX_PRESIGN: Duration = Duration::from_secs(7 * 24 * 3600);

/// The query parameters that carry a presigned request's signature.
pub const PRESIGN_PARAMS: &[&str] = &[
    "X-Amz-Algorithm",
    "X-Amz-Credential",
    "X-Amz-Date",
    "X-Amz-Expires",
    "X-Amz-SignedHeaders",
    "X-Amz-Security-Token",
    "X-Amz-Signature",
];

/// What a request presents to be checked, from its headers or its presigned query.
struct Presented {
    auth: String,
    amz_date: String,
    token: Option<String>,
    /// The query as signed (a presigned URL's signature is not part of it).
    query: String,
    payload: Option<String>,
    presigned: bool,
}

/// A request whose credentials, scope and time were checked from its head alone, before a
/// byte of its body is read: the session is one this gateway sealed and has not expired, the
/// access key is the session's, the date is within [`MAX_SKEW`]. [`Head::verify`] then checks
/// the signature itself, which covers the payload hash.
pub struct Head {
    /// The pseudo-credential session.
    pub session: Session,
    /// The region of the credential scope.
    pub region: String,
    /// The service of the credential scope.
    pub service: String,
    /// Signed in the query (a presigned URL) rather than in `Authorization`.
    pub presigned: bool,
    date: String,
    amz_date: String,
    signed_headers: Vec<String>,
    signature: String,
    query: String,
    payload: Option<String>,
    key: hmac::Key,
}

impl std::fmt::Debug for Head {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Head")
            .field("session", &self.session.sid)
            .field("region", &self.region)
            .field("service", &self.service)
            .field("presigned", &self.presigned)
            .finish_non_exhaustive()
    }
}

/// Checks what can be checked of `req` without its body. See [`Head`].
pub fn check_head(minter: &Minter, req: &Request<'_>, now: SystemTime) -> Result<Head, SigError> {
    let authorization: Vec<&[u8]> = req
        .headers
        .iter()
        .filter(|(n, _)| *n == "authorization")
        .map(|(_, v)| *v)
        .collect();
    if authorization.len() > 1 {
        return Err(SigError::Malformed(
            "the Authorization header is sent twice".into(),
        ));
    }
    if ["x-amz-date", "x-amz-security-token", "x-amz-content-sha256"]
        .iter()
        .any(|h| req.headers.iter().filter(|(n, _)| n == h).count() > 1)
    {
        return Err(SigError::Malformed("a signing header is sent twice".into()));
    }
    let presented = if let Some(auth) = req.header("authorization") {
        let amz_date = req
            .header("x-amz-date")
            .ok_or_else(|| SigError::Malformed("no X-Amz-Date header".into()))?;
        let when = parse_amz_date(amz_date)
            .ok_or_else(|| SigError::Malformed("X-Amz-Date is not YYYYMMDDTHHMMSSZ".into()))?;
        let skew = match now.duration_since(when) {
            Ok(d) => d,
            Err(e) => e.duration(),
        };
        if skew > MAX_SKEW {
            return Err(SigError::Skew);
        }
        if query_param(req.query, "X-Amz-Signature").is_some() {
            return Err(SigError::Malformed(
                "the request is signed in both the Authorization header and the query".into(),
            ));
        }
        Presented {
            auth: auth.to_string(),
            amz_date: amz_date.to_string(),
            token: req.header("x-amz-security-token").map(str::to_string),
            query: req.query.to_string(),
            payload: req.header("x-amz-content-sha256").map(str::to_string),
            presigned: false,
        }
    } else if !authorization.is_empty() {
        return Err(SigError::Malformed(
            "the Authorization header is not text".into(),
        ));
    } else if query_param(req.query, "X-Amz-Signature").is_some() {
        presented_in_query(req, now)?
    } else if req.query.contains("Signature=") && req.query.contains("AWSAccessKeyId=") {
        return Err(SigError::Unsupported(
            "SigV2 signatures are not accepted; use SigV4".into(),
        ));
    } else {
        return Err(SigError::Missing);
    };
    let auth = parse_auth(&presented.auth)?;
    if !presented.amz_date.starts_with(auth.date) || auth.date.len() != 8 {
        return Err(SigError::Malformed(
            "the credential scope date is not X-Amz-Date's".into(),
        ));
    }
    let token = presented.token.as_deref().ok_or(SigError::UnknownKey)?;
    let session = minter.open(token).map_err(|e| match e {
        CredError::Expired => SigError::Expired,
        _ => SigError::UnknownKey,
    })?;
    let expected_key = minter.access_key_id(&session);
    if aws_lc_rs::constant_time::verify_slices_are_equal(
        expected_key.as_bytes(),
        auth.access_key_id.as_bytes(),
    )
    .is_err()
    {
        return Err(SigError::UnknownKey);
    }
    let key = signing_key(
        &minter.secret(&session),
        auth.date,
        auth.region,
        auth.service,
    );
    Ok(Head {
        session,
        region: auth.region.to_string(),
        service: auth.service.to_string(),
        presigned: presented.presigned,
        date: auth.date.to_string(),
        amz_date: presented.amz_date,
        signed_headers: auth.signed_headers.iter().map(|h| h.to_string()).collect(),
        signature: auth.signature.to_ascii_lowercase(),
        query: presented.query,
        payload: presented.payload,
        key,
    })
}

impl Head {
    /// The payload hash the caller declared (`x-amz-content-sha256`), if any.
    pub fn declared_payload(&self) -> Option<&str> {
        self.payload.as_deref()
    }

    /// Checks the signature of `req` (the same request, now with `body_sha256` where the body
    /// was buffered), in constant time.
    pub fn verify(self, req: &Request<'_>) -> Result<Verified, SigError> {
        // A presigned URL signs its payload as declared, or not at all; a header-signed request
        // without a declared hash signs the body's.
        let computed = if self.presigned {
            None
        } else {
            req.body_sha256
        };
        let payload_hash = match (self.payload.as_deref().or(computed), self.service.as_str()) {
            (Some(h), _) => h.to_string(),
            // A presigned S3 URL never covers the body.
            (None, "s3") if self.presigned => "UNSIGNED-PAYLOAD".to_string(),
            (None, _) => return Err(SigError::Malformed("the payload hash is unknown".into())),
        };
        let signed_req = Request {
            query: &self.query,
            ..req.clone()
        };
        let signed: Vec<&str> = self.signed_headers.iter().map(String::as_str).collect();
        let to_sign = string_to_sign(
            &signed_req,
            &signed,
            &self.amz_date,
            &self.date,
            &self.region,
            &self.service,
            &payload_hash,
        )?;
        let expected = hex::encode(hmac::sign(&self.key, to_sign.as_bytes()));
        if aws_lc_rs::constant_time::verify_slices_are_equal(
            expected.as_bytes(),
            self.signature.as_bytes(),
        )
        .is_err()
        {
            return Err(SigError::Mismatch);
        }
        Ok(Verified {
            seed: ChunkSeed {
                key: self.key,
                amz_date: self.amz_date,
                scope: format!(
                    "{}/{}/{}/aws4_request",
                    self.date, self.region, self.service
                ),
                signature: self.signature,
            },
            session: self.session,
            region: self.region,
            service: self.service,
            presigned: self.presigned,
        })
    }
}

/// Verifies `req`'s SigV4 signature against the pseudo-credentials it names: in the
/// `Authorization` header, or in the query of a URL presigned with them ([`check_head`] then
/// [`Head::verify`]).
pub fn verify_request(
    minter: &Minter,
    req: &Request<'_>,
    now: SystemTime,
) -> Result<Verified, SigError> {
    check_head(minter, req, now)?.verify(req)
}

/// A query parameter, percent-decoded.
fn query_param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (k == name).then(|| String::from_utf8_lossy(&pct::decode(v.as_bytes(), false)).into_owned())
    })
}

/// The signature of a presigned URL, checked for its validity window.
fn presented_in_query(req: &Request<'_>, now: SystemTime) -> Result<Presented, SigError> {
    for name in PRESIGN_PARAMS {
        let n = req
            .query
            .split('&')
            .filter(|kv| kv.split('=').next() == Some(*name))
            .count();
        if n > 1 {
            return Err(SigError::Malformed(format!("{name} is given twice")));
        }
    }
    let get = |name: &str| {
        query_param(req.query, name)
            .ok_or_else(|| SigError::Malformed(format!("the presigned URL has no {name}")))
    };
    if get("X-Amz-Algorithm")? != "AWS4-HMAC-SHA256" {
        return Err(SigError::Unsupported(
            "only AWS4-HMAC-SHA256 presigned URLs are accepted".into(),
        ));
    }
    let amz_date = get("X-Amz-Date")?;
    let when = parse_amz_date(&amz_date)
        .ok_or_else(|| SigError::Malformed("X-Amz-Date is not YYYYMMDDTHHMMSSZ".into()))?;
    let expires = get("X-Amz-Expires")?
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
        .filter(|d| !d.is_zero() && *d <= MAX_PRESIGN)
        .ok_or_else(|| SigError::Malformed("X-Amz-Expires is not 1 to 604800 seconds".into()))?;
    if when > now + MAX_SKEW {
        return Err(SigError::Skew);
    }
    if now > when + expires {
        return Err(SigError::Expired);
    }
    let query = req
        .query
        .split('&')
        .filter(|kv| kv.split('=').next() != Some("X-Amz-Signature"))
        .collect::<Vec<_>>()
        .join("&");
    Ok(Presented {
        auth: format!(
            "AWS4-HMAC-SHA256 Credential={}, SignedHeaders={}, Signature={}",
            get("X-Amz-Credential")?,
            get("X-Amz-SignedHeaders")?,
            get("X-Amz-Signature")?
        ),
        amz_date,
        token: query_param(req.query, "X-Amz-Security-Token"),
        query,
        payload: req.header("x-amz-content-sha256").map(str::to_string),
        presigned: true,
    })
}

#[cfg(test)]
pub(crate) mod testing {
    //! Signing as a client would, for the unit tests: the same string to sign, used to sign.
    use super::*;

    pub(crate) fn sign(
        secret: &str,
        akid: &str,
        req: &Request<'_>,
        date: &str,
        region: &str,
        service: &str,
        signed: &[&str],
    ) -> String {
        let amz_date = req.header("x-amz-date").unwrap_or_default();
        let payload = req
            .header("x-amz-content-sha256")
            .or(req.body_sha256)
            .unwrap_or_default();
        let to_sign = string_to_sign(req, signed, amz_date, date, region, service, payload)
            .expect("the signed headers are present");
        let sig = hex::encode(hmac::sign(
            &signing_key(secret, date, region, service),
            to_sign.as_bytes(),
        ));
        format!(
            "AWS4-HMAC-SHA256 Credential={akid}/{date}/{region}/{service}/aws4_request, SignedHeaders={}, Signature={sig}",
            signed.join(";")
        )
    }
}
