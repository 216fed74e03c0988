//! The approval binding of an AWS call: one digest of everything that changes what AWS does.
//!
//! A `once` grant covers exactly the call an approver saw. [`Binding::digest`] is a SHA-256 over
//! the service, region and connection, the method, the canonical path (as SigV4 forms it, after
//! virtual-host rewriting — the path that is forwarded), the canonical query (sorted, signature
//! parameters removed: reordering the parameters does not change it, any other change does), the
//! body (its SHA-256, or for a streamed unsigned upload its declared length and checksums), and
//! every forwarded header but those that only carry the signature or vary between an SDK's
//! retries ([`UNBOUND`]). The forwarded headers are exactly what reaches AWS, so nothing that
//! reaches AWS is left out of the binding.
//!
//! # Example
//!
//! ```
//! use hoopguard_core::aws::binding::{Binding, Body};
//!
//! let headers: Vec<(&str, &[u8])> = vec![("content-type", b"application/x-www-form-urlencoded")];
//! let call = |query: &str| Binding {
//!     service: "ec2", region: "us-east-1", connection: "default", method: "GET", path: "/",
//!     query, headers: &headers, body: Body::Sha256("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
//! }.digest();
//! let approved = call("Action=TerminateInstances&InstanceId.1=i-harmless");
//! assert_eq!(approved, call("InstanceId.1=i-harmless&Action=TerminateInstances"));
//! assert_ne!(approved, call("Action=TerminateInstances&InstanceId.1=i-production"));
//! ```

use super::sigv4::canonical_uri;

/// The query as the services read it — decoded once, `+` as a space (as classification reads
/// it: `a+b` and `a%2Bb` are different values) — re-encoded, sorted by name only, so the order
/// of a repeated name's values (a list) is kept while the order of names is not.
fn canonical_query(query: &str) -> String {
    let enc = |bytes: Vec<u8>| {
        let mut out = String::with_capacity(bytes.len());
        for b in bytes {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
                out.push(b as char);
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
        }
        out
    };
    let d = |x: &str| super::pct::decode(x.as_bytes(), true);
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (enc(d(k)), enc(d(v)))
        })
        .collect();
    pairs.sort_by(|a, b| a.0.cmp(&b.0));
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// Headers left out of the binding: the caller's signature and what SDKs change between retries
/// of one call. Every other forwarded header is bound.
pub const UNBOUND: &[&str] = &[
    "authorization",
    "x-amz-date",
    "x-amz-security-token",
    "x-amz-content-sha256",
    "x-amz-user-agent",
    "x-amzn-trace-id",
    "amz-sdk-invocation-id",
    "amz-sdk-request",
    "user-agent",
    "host",
    "content-length",
    "expect",
    "connection",
];

/// What the binding says about the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body<'a> {
    /// Its hex SHA-256: buffered, or streamed with a signed hash that is checked as it passes.
    Sha256(&'a str),
    /// A streamed upload signed `UNSIGNED-PAYLOAD` or `aws-chunked` without a hash up front: its
    /// declared length (its checksum headers are bound as headers).
    Unsigned {
        /// `Content-Length` or `x-amz-decoded-content-length`.
        length: Option<u64>,
    },
}

/// One call as it will reach AWS.
#[derive(Debug, Clone, Copy)]
pub struct Binding<'a> {
    /// Signing service.
    pub service: &'a str,
    /// Signing region.
    pub region: &'a str,
    /// The hoopguard connection (which account and role it reaches).
    pub connection: &'a str,
    /// HTTP method.
    pub method: &'a str,
    /// The path as forwarded, percent-encoded.
    pub path: &'a str,
    /// The query as forwarded, percent-encoded.
    pub query: &'a str,
    /// The headers as forwarded (lower-case names).
    pub headers: &'a [(&'a str, &'a [u8])],
    /// The body.
    pub body: Body<'a>,
}

/// The headers of `headers` that are bound, sorted by name, values of a repeated name joined
/// with `,` in the order sent.
pub fn bound_headers<'a>(headers: &[(&'a str, &'a [u8])]) -> Vec<(&'a str, Vec<u8>)> {
    let mut out: Vec<(&'a str, Vec<u8>)> = Vec::new();
    for (name, value) in headers {
        if UNBOUND.contains(name) {
            continue;
        }
        match out.iter_mut().find(|(n, _)| n == name) {
            Some((_, v)) => {
                v.push(b',');
                v.extend_from_slice(value);
            }
            None => out.push((name, value.to_vec())),
        }
    }
    out.sort_by(|a, b| a.0.cmp(b.0));
    out
}

/// Headers whose values are keys themselves (S3 server-side encryption with a customer key):
/// never shown, whatever the masking rules say.
const KEY_HEADERS: &[&str] = &[
    "x-amz-server-side-encryption-customer-key",
    "x-amz-copy-source-server-side-encryption-customer-key",
];

/// The bound headers as a JSON object for approvers and recordings (still to be masked by the
/// caller's engine; customer-provided encryption keys are replaced here already).
pub fn shown_headers(headers: &[(&str, &[u8])]) -> serde_json::Value {
    let mut out = serde_json::Map::new();
    for (name, value) in bound_headers(headers) {
        let shown = if KEY_HEADERS.contains(&name) {
            "[MASKED:encryption-key]".to_string()
        } else {
            match String::from_utf8(value) {
                Ok(v) => v,
                Err(e) => format!("({} bytes, not text)", e.as_bytes().len()),
            }
        };
        out.insert(name.to_string(), serde_json::Value::String(shown));
    }
    serde_json::Value::Object(out)
}

impl Binding<'_> {
    /// The hex SHA-256 of the canonical form. See the [module docs](self).
    pub fn digest(&self) -> String {
        let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
        let mut field = |b: &[u8]| {
            // Length-prefixed, so no value can be made to look like two.
            ctx.update(&(b.len() as u64).to_be_bytes());
            ctx.update(b);
        };
        field(b"hoopguard-aws-binding-v1");
        field(self.service.as_bytes());
        field(self.region.as_bytes());
        field(self.connection.as_bytes());
        field(self.method.as_bytes());
        field(canonical_uri(self.path, self.service).as_bytes());
        field(canonical_query(self.query).as_bytes());
        let headers = bound_headers(self.headers);
        field(&(headers.len() as u64).to_be_bytes());
        for (name, value) in &headers {
            field(name.as_bytes());
            field(value);
        }
        match self.body {
            Body::Sha256(h) => {
                field(b"sha256");
                field(h.as_bytes());
            }
            Body::Unsigned { length } => {
                field(b"unsigned");
                field(&length.unwrap_or(u64::MAX).to_be_bytes());
            }
        }
        hex::encode(ctx.finish())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn base<'a>(headers: &'a [(&'a str, &'a [u8])]) -> Binding<'a> {
        Binding {
            service: "s3",
            region: "us-east-1",
            connection: "default",
            method: "PUT",
            path: "/bucket/key",
            query: "a=1&b=2",
            headers,
            body: Body::Sha256(EMPTY),
        }
    }

    #[test]
    fn each_part_changes_the_digest_and_reordering_the_query_does_not() {
        let h: Vec<(&str, &[u8])> = vec![
            ("content-type", b"text/plain"),
            ("x-amz-acl", b"private"),
            ("x-amz-date", b"20260101T000000Z"),
        ];
        let d = base(&h).digest();
        assert_eq!(
            d,
            Binding {
                query: "b=2&a=1",
                ..base(&h)
            }
            .digest()
        );
        // What only signs or varies between retries is not bound.
        let later: Vec<(&str, &[u8])> = vec![
            ("x-amz-date", b"20260101T000500Z"),
            ("content-type", b"text/plain"),
            ("x-amz-acl", b"private"),
            ("user-agent", b"Boto3/1.44"),
        ];
        assert_eq!(d, base(&later).digest());
        let public: Vec<(&str, &[u8])> = vec![
            ("content-type", b"text/plain"),
            ("x-amz-acl", b"public-read"),
        ];
        let no_acl: Vec<(&str, &[u8])> = vec![("content-type", b"text/plain")];
        let tagged: Vec<(&str, &[u8])> = vec![
            ("content-type", b"text/plain"),
            ("x-amz-acl", b"private"),
            ("x-amz-tagging", b"a=b"),
        ];
        let other = "0".repeat(64);
        let variants = [
            Binding {
                service: "ec2",
                ..base(&h)
            },
            Binding {
                region: "eu-west-1",
                ..base(&h)
            },
            Binding {
                connection: "prod",
                ..base(&h)
            },
            Binding {
                method: "DELETE",
                ..base(&h)
            },
            Binding {
                path: "/other-bucket/key",
                ..base(&h)
            },
            Binding {
                path: "/bucket/key2",
                ..base(&h)
            },
            Binding {
                query: "a=1&b=3",
                ..base(&h)
            },
            Binding {
                query: "a=1&b=2&c",
                ..base(&h)
            },
            Binding {
                query: "a=1",
                ..base(&h)
            },
            Binding {
                body: Body::Sha256(&other),
                ..base(&h)
            },
            Binding {
                body: Body::Unsigned { length: Some(0) },
                ..base(&h)
            },
            base(&public),
            base(&no_acl),
            base(&tagged),
        ];
        for (i, v) in variants.iter().enumerate() {
            assert_ne!(v.digest(), d, "variant {i} did not change the digest");
        }
        // `+` is a space, `%2B` a plus: two values. A list's order is its own.
        assert_ne!(
            Binding {
                query: "v=a+b",
                ..base(&h)
            }
            .digest(),
            Binding {
                query: "v=a%2Bb",
                ..base(&h)
            }
            .digest()
        );
        assert_ne!(
            Binding {
                query: "id=1&id=2",
                ..base(&h)
            }
            .digest(),
            Binding {
                query: "id=2&id=1",
                ..base(&h)
            }
            .digest()
        );
        assert_eq!(
            Binding {
                query: "v=a%20b",
                ..base(&h)
            }
            .digest(),
            Binding {
                query: "v=a+b",
                ..base(&h)
            }
            .digest()
        );
        // No two parts can be shifted into each other.
        assert_ne!(
            Binding {
                path: "/ab",
                query: "",
                ..base(&h)
            }
            .digest(),
            Binding {
                path: "/a",
                query: "b",
                ..base(&h)
            }
            .digest()
        );
    }
}
