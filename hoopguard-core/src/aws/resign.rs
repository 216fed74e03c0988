//! Re-signing a verified call for the real AWS endpoint.
//!
//! * The upstream comes only from [`upstream_base`]: an explicit endpoint override of the
//!   connection, or the `https://{endpoint prefix}.{region}.amazonaws.com` template with a
//!   checked region and the endpoint prefix of the service the call was classified as (from the
//!   route table, never from the request). Nothing the client sent (`Host`,
//!   `X-Forwarded-Host`) picks it.
//! * [`forward_headers`] keeps a whitelist: content headers, conditionals, `x-amz-*` and
//!   `x-amzn-*` except the caller's own signing headers. Hop-by-hop headers, headers named in
//!   `Connection`, `Forwarded`/`X-Forwarded-*` and the caller's credentials never pass.
//! * [`sign`] signs with the brokered credentials and the upstream host; S3 gets its own
//!   settings (the path signed as sent, never normalised, and `x-amz-content-sha256`).
//!
//! # Example
//!
//! ```
//! use hoopguard_core::aws::resign::{Payload, forward_headers, sign, upstream_base};
//! use hoopguard_core::aws::broker::Brokered;
//! # use std::time::SystemTime;
//!
//! let base = upstream_base("s3", "eu-west-1", None).unwrap();
//! assert_eq!(base, "https://s3.eu-west-1.amazonaws.com");
//!
//! let mut incoming = http::HeaderMap::new();
//! incoming.insert("x-forwarded-host", "evil.example".parse().unwrap());
//! incoming.insert("content-type", "text/plain".parse().unwrap());
//! let mut out = forward_headers(&incoming, false);
//! assert!(out.get("x-forwarded-host").is_none());
//!
//! let creds = Brokered { access_key_id: "AKIDEXAMPLE".into(), secret_access_key: "secret".into(),
//!     session_token: None, expires: None };
//! let url = format!("{base}/bucket/key");
//! sign("PUT", &url, &mut out, &Payload::Unsigned, "s3", "eu-west-1", &creds, SystemTime::now()).unwrap();
//! assert!(out["authorization"].to_str().unwrap().starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/"));
//! ```

use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SigningSettings,
    UriPathNormalizationMode,
};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use http::{HeaderMap, HeaderName, HeaderValue};

use super::broker::Brokered;

/// Why a call cannot be sent upstream.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ResignError {
    /// The region or service of the signature is not one hoopguard builds a host from.
    #[error("`{0}` is not a region or service hoopguard sends requests to")]
    Target(String),
    /// Signing failed.
    #[error("could not sign the upstream request: {0}")]
    Sign(String),
}

/// Services whose endpoint has no region.
const GLOBAL: &[&str] = &[
    "iam",
    "cloudfront",
    "route53",
    "organizations",
    "globalaccelerator",
];

fn is_region(r: &str) -> bool {
    // `us-east-1`, `eu-central-2`, `us-gov-west-1`, `ap-southeast-4`.
    let parts: Vec<&str> = r.split('-').collect();
    parts.len() >= 3
        && parts.len() <= 4
        && parts[0].len() == 2
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
        && parts
            .last()
            .is_some_and(|p| p.bytes().all(|b| b.is_ascii_digit()))
}

/// An endpoint prefix: DNS labels of lower-case letters, digits and `-` (`streams.dynamodb`).
fn is_endpoint(s: &str) -> bool {
    s.len() <= 63
        && s.split('.').all(|label| {
            !label.is_empty()
                && !label.starts_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        })
}

/// The scheme and authority a call to the service with endpoint prefix `endpoint` (the route
/// table's: `ec2`, `email`, `streams.dynamodb`) in `region` goes to, without a trailing `/`.
pub fn upstream_base(
    endpoint: &str,
    region: &str,
    endpoint_override: Option<&str>,
) -> Result<String, ResignError> {
    if !is_endpoint(endpoint) {
        return Err(ResignError::Target(endpoint.to_string()));
    }
    if let Some(e) = endpoint_override {
        return Ok(e.trim_end_matches('/').to_string());
    }
    if GLOBAL.contains(&endpoint) {
        return Ok(format!("https://{endpoint}.amazonaws.com"));
    }
    if !is_region(region) {
        return Err(ResignError::Target(region.to_string()));
    }
    // API Gateway's execute-api hosts name the API, which hoopguard does not choose.
    if endpoint == "execute-api" {
        return Err(ResignError::Target(endpoint.to_string()));
    }
    let prefix = endpoint;
    let suffix = if region.starts_with("cn-") {
        "amazonaws.com.cn"
    } else {
        "amazonaws.com"
    };
    Ok(format!("https://{prefix}.{region}.{suffix}"))
}

/// Headers forwarded besides `x-amz-*` and `x-amzn-*`.
const FORWARDED: &[&str] = &[
    "accept",
    "cache-control",
    "content-disposition",
    "content-encoding",
    "content-language",
    "content-md5",
    "content-type",
    "expires",
    "if-match",
    "if-modified-since",
    "if-none-match",
    "if-unmodified-since",
    "range",
    "smithy-protocol",
];

/// The caller's signing headers, replaced when re-signing.
const CALLERS_OWN: &[&str] = &[
    "x-amz-date",
    "x-amz-security-token",
    "x-amz-content-sha256",
    "x-amzn-trace-id",
];

/// Headers that only describe the `aws-chunked` framing hoopguard removed.
const FRAMING: &[&str] = &["x-amz-decoded-content-length", "x-amz-trailer"];

/// The headers of `incoming` that go upstream. With `dechunked`, the `aws-chunked` framing
/// headers are dropped too (the body is forwarded de-framed).
pub fn forward_headers(incoming: &HeaderMap, dechunked: bool) -> HeaderMap {
    let named_in_connection: Vec<String> = incoming
        .get_all(http::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|s| s.trim().to_ascii_lowercase())
        .collect();
    let mut out = HeaderMap::new();
    for (name, value) in incoming {
        let n = name.as_str();
        let keep = (FORWARDED.contains(&n) || n.starts_with("x-amz-") || n.starts_with("x-amzn-"))
            && !CALLERS_OWN.contains(&n)
            && !(dechunked && FRAMING.contains(&n))
            && !named_in_connection.iter().any(|c| c == n);
        if !keep {
            continue;
        }
        if n == "content-encoding" {
            // `aws-chunked` is the framing, not the object's encoding.
            let rest: Vec<&str> = value
                .to_str()
                .unwrap_or("")
                .split(',')
                .map(str::trim)
                .filter(|e| !e.is_empty() && !e.eq_ignore_ascii_case("aws-chunked"))
                .collect();
            if !rest.is_empty() {
                if let Ok(v) = HeaderValue::from_str(&rest.join(", ")) {
                    out.append(name.clone(), v);
                }
            }
            continue;
        }
        out.append(name.clone(), value.clone());
    }
    out
}

/// What the upstream signature says about the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    /// The body's hex SHA-256 (known from the caller's signature or from buffering it).
    Sha256(String),
    /// `UNSIGNED-PAYLOAD` (S3 only): a de-framed streaming body.
    Unsigned,
}

/// Signs an upstream request in place: sets `host`, `x-amz-date`, the session token,
/// `x-amz-content-sha256` (S3) and `authorization` in `headers`. `url` is the full upstream
/// URL, path and query exactly as they will be sent.
#[allow(clippy::too_many_arguments)]
pub fn sign(
    method: &str,
    url: &str,
    headers: &mut HeaderMap,
    payload: &Payload,
    service: &str,
    region: &str,
    creds: &Brokered,
    now: SystemTime,
) -> Result<(), ResignError> {
    let uri: http::Uri = url.parse().map_err(|e| ResignError::Sign(format!("{e}")))?;
    let authority = uri
        .authority()
        .ok_or_else(|| ResignError::Sign("the upstream URL has no host".into()))?;
    let host = match (uri.scheme_str(), authority.port_u16()) {
        (Some("https"), Some(443)) | (Some("http"), Some(80)) => authority.host().to_string(),
        _ => authority.as_str().to_string(),
    };
    headers.insert(
        http::header::HOST,
        HeaderValue::from_str(&host).map_err(|e| ResignError::Sign(e.to_string()))?,
    );
    let mut settings = SigningSettings::default();
    if service == "s3" {
        settings.percent_encoding_mode = PercentEncodingMode::Single;
        settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
        settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    }
    let identity: Identity = Credentials::new(
        &creds.access_key_id,
        &creds.secret_access_key,
        creds.session_token.clone(),
        creds.expires,
        "hoopguard-broker",
    )
    .into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(service)
        .time(now)
        .settings(settings)
        .build()
        .map_err(|e| ResignError::Sign(e.to_string()))?
        .into();
    let pairs: Vec<(&str, &str)> = headers
        .iter()
        .filter_map(|(n, v)| Some((n.as_str(), v.to_str().ok()?)))
        .collect();
    let body = match payload {
        Payload::Sha256(h) => SignableBody::Precomputed(h.clone()),
        Payload::Unsigned => SignableBody::UnsignedPayload,
    };
    let signable = SignableRequest::new(method, url, pairs.into_iter(), body)
        .map_err(|e| ResignError::Sign(e.to_string()))?;
    let (instructions, _) = aws_sigv4::http_request::sign(signable, &params)
        .map_err(|e| ResignError::Sign(e.to_string()))?
        .into_parts();
    let (new_headers, _) = instructions.into_parts();
    for h in new_headers {
        let name = HeaderName::from_static(h.name());
        let mut value =
            HeaderValue::from_str(h.value()).map_err(|e| ResignError::Sign(e.to_string()))?;
        value.set_sensitive(h.sensitive());
        headers.insert(name, value);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_hosts_come_from_templates_only() {
        assert_eq!(
            upstream_base("ec2", "us-east-1", None).unwrap(),
            "https://ec2.us-east-1.amazonaws.com"
        );
        assert_eq!(
            upstream_base("iam", "us-east-1", None).unwrap(),
            "https://iam.amazonaws.com"
        );
        assert_eq!(
            upstream_base("s3", "cn-north-1", None).unwrap(),
            "https://s3.cn-north-1.amazonaws.com.cn"
        );
        assert_eq!(
            upstream_base("ec2", "us-east-1", Some("http://127.0.0.1:5000/")).unwrap(),
            "http://127.0.0.1:5000"
        );
        for (svc, region) in [
            ("ec2", "evil.com/x"),
            ("ec2", "us-east-1.evil.com#"),
            ("ec2", "localhost"),
            ("ec2", "us-east"),
            ("ec2.evil.com/", "us-east-1"),
            ("ec2..com", "us-east-1"),
            ("s3@evil", "us-east-1"),
            ("", "us-east-1"),
        ] {
            assert!(upstream_base(svc, region, None).is_err(), "{svc} {region}");
        }
    }

    #[test]
    fn only_whitelisted_headers_pass() {
        let mut h = HeaderMap::new();
        for (n, v) in [
            ("host", "127.0.0.1:8787"),
            ("authorization", "AWS4-HMAC-SHA256 Credential=HGPK"),
            ("x-amz-security-token", "hg1.secret"),
            ("x-amz-date", "20260101T000000Z"),
            ("x-amz-content-sha256", "abc"),
            ("x-forwarded-host", "evil.example"),
            ("forwarded", "host=evil.example"),
            ("connection", "keep-alive, x-amz-meta-drop"),
            ("x-amz-meta-drop", "1"),
            ("transfer-encoding", "chunked"),
            ("content-length", "5"),
            ("expect", "100-continue"),
            ("x-amz-target", "DynamoDB_20120810.GetItem"),
            ("x-amz-meta-owner", "alice"),
            ("content-type", "application/x-amz-json-1.0"),
            ("content-encoding", "aws-chunked, gzip"),
            ("x-amz-decoded-content-length", "5"),
            ("user-agent", "aws-cli/1"),
        ] {
            h.append(HeaderName::from_static(n), HeaderValue::from_static(v));
        }
        let out = forward_headers(&h, true);
        let names: Vec<&str> = out.keys().map(|k| k.as_str()).collect();
        assert_eq!(
            names,
            [
                "x-amz-target",
                "x-amz-meta-owner",
                "content-type",
                "content-encoding"
            ]
        );
        assert_eq!(out["content-encoding"], "gzip");
        let kept = forward_headers(&h, false);
        assert!(kept.contains_key("x-amz-decoded-content-length"));
    }

    #[test]
    fn signs_s3_with_the_path_as_given() {
        let creds = Brokered {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
            session_token: Some("tok".into()),
            expires: None,
        };
        let mut h = HeaderMap::new();
        sign(
            "GET",
            "http://127.0.0.1:5000/bucket/a%20b/../c",
            &mut h,
            &Payload::Sha256(super::super::sha256_hex(b"")),
            "s3",
            "us-east-1",
            &creds,
            SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000),
        )
        .unwrap();
        assert_eq!(h["host"], "127.0.0.1:5000");
        assert_eq!(h["x-amz-security-token"], "tok");
        assert!(h["x-amz-security-token"].is_sensitive());
        assert_eq!(
            h["x-amz-content-sha256"],
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let auth = h["authorization"].to_str().unwrap();
        assert!(
            auth.contains(
                "SignedHeaders=host;x-amz-content-sha256;x-amz-date;x-amz-security-token"
            ),
            "{auth}"
        );
    }
}
