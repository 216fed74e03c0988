//! Refusals in the caller's own protocol, so SDKs and the CLI show them as AWS errors
//! (`An error occurred (AccessDenied) when calling …: message`).
//!
//! ```
//! use http::StatusCode;
//! use hoopguard_tower::aws::ErrorFormat;
//!
//! let resp: http::Response<String> =
//!     ErrorFormat::S3Xml.refuse(StatusCode::FORBIDDEN, "AccessDenied", "no <way>");
//! assert_eq!(resp.headers()["x-amzn-errortype"], "AccessDenied");
//! assert!(resp.body().contains("<Message>no &lt;way&gt;</Message>"));
//! ```

use bytes::Bytes;
use hoopguard_core::aws::SigError;
use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, Response, StatusCode};
use serde_json::json;

use crate::body::OwnBody;
use crate::policy::Verdict;

/// How the caller's protocol wants its errors. A request extension set by
/// [`SigV4Verify`](super::SigV4Verify) for the layers after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorFormat {
    /// The JSON protocols: `{"__type", "message"}`.
    Json,
    /// S3's `<Error>`.
    S3Xml,
    /// The query protocols' `<ErrorResponse>`.
    QueryXml,
    /// EC2's `<Response><Errors>`.
    Ec2Xml,
}

impl ErrorFormat {
    /// The format for a request: JSON for JSON-protocol requests, S3's and EC2's own XML for
    /// them (once the signature's scope is known), the query protocols' XML otherwise.
    pub fn of(headers: &HeaderMap, service: Option<&str>) -> ErrorFormat {
        let ctype = headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if headers.contains_key("x-amz-target") || ctype.contains("json") {
            return ErrorFormat::Json;
        }
        match service {
            Some("s3") => ErrorFormat::S3Xml,
            Some("ec2") => ErrorFormat::Ec2Xml,
            _ => ErrorFormat::QueryXml,
        }
    }

    /// An error answer with `status`, the AWS error `code` and `message`.
    pub fn refuse<B: OwnBody>(self, status: StatusCode, code: &str, message: &str) -> Response<B> {
        let (ctype, body) = match self {
            ErrorFormat::Json => (
                "application/x-amz-json-1.1",
                json!({"__type": code, "message": message}).to_string(),
            ),
            ErrorFormat::S3Xml => (
                "application/xml",
                format!(
                    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{}</Message><RequestId>hoopguard</RequestId></Error>",
                    xml_escape(message)
                ),
            ),
            ErrorFormat::QueryXml => (
                "text/xml",
                format!(
                    "<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>{}</Message></Error><RequestId>hoopguard</RequestId></ErrorResponse>",
                    xml_escape(message)
                ),
            ),
            ErrorFormat::Ec2Xml => (
                "text/xml",
                format!(
                    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>{code}</Code><Message>{}</Message></Error></Errors><RequestID>hoopguard</RequestID></Response>",
                    xml_escape(message)
                ),
            ),
        };
        let mut resp = Response::new(B::own(Bytes::from(body)));
        *resp.status_mut() = status;
        let h = resp.headers_mut();
        h.insert(CONTENT_TYPE, HeaderValue::from_static(ctype));
        h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let Ok(v) = HeaderValue::from_str(code) {
            h.insert("x-amzn-errortype", v);
        }
        resp
    }

    /// A refusal of the caller's signature.
    pub fn refuse_signature<B: OwnBody>(self, e: &SigError) -> Response<B> {
        tracing::info!(reason = e.aws_code(), "refused an AWS call");
        let status = match e {
            SigError::Unsupported(_) | SigError::Malformed(_) => StatusCode::BAD_REQUEST,
            _ => StatusCode::FORBIDDEN,
        };
        self.refuse(status, e.aws_code(), &e.to_string())
    }

    /// The refusal of a verdict that is not `Allow` (`None` for `Allow`). A request hoopguard
    /// cannot read unambiguously is malformed (`400 InvalidRequest`), not forbidden.
    pub fn refuse_verdict<B: OwnBody>(self, verdict: &Verdict) -> Option<Response<B>> {
        let message = verdict.message()?;
        let (status, code) = match verdict {
            Verdict::Deny { rule, .. } if rule.as_deref() == Some(super::UNREADABLE) => {
                (StatusCode::BAD_REQUEST, "InvalidRequest")
            }
            Verdict::Unavailable { .. } => (StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable"),
            Verdict::Throttled { .. } => self.throttling(),
            _ => (StatusCode::FORBIDDEN, "AccessDenied"),
        };
        let mut resp = self.refuse(status, code, &message);
        if let Some(s) = verdict.retry_after_secs() {
            resp.headers_mut()
                .insert(http::header::RETRY_AFTER, HeaderValue::from(s));
        }
        Some(resp)
    }

    /// How each protocol's services say "slow down", as the SDKs' retry logic knows it: S3's
    /// `503 SlowDown`, EC2's `503 RequestLimitExceeded`, the query services' `400 Throttling`,
    /// the JSON services' `400 ThrottlingException`. SDKs retry these with backoff.
    fn throttling(self) -> (StatusCode, &'static str) {
        match self {
            ErrorFormat::S3Xml => (StatusCode::SERVICE_UNAVAILABLE, "SlowDown"),
            ErrorFormat::Ec2Xml => (StatusCode::SERVICE_UNAVAILABLE, "RequestLimitExceeded"),
            ErrorFormat::QueryXml => (StatusCode::BAD_REQUEST, "Throttling"),
            ErrorFormat::Json => (StatusCode::BAD_REQUEST, "ThrottlingException"),
        }
    }
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use http_body_util::Full;

    use super::*;

    #[test]
    fn a_throttled_call_is_refused_as_each_protocol_says_slow_down() {
        let v = Verdict::Throttled {
            rule: "l".into(),
            retry_after: Duration::from_millis(2500),
            reason: "limit `l`".into(),
        };
        for (format, status, code) in [
            (ErrorFormat::S3Xml, 503, "SlowDown"),
            (ErrorFormat::Ec2Xml, 503, "RequestLimitExceeded"),
            (ErrorFormat::QueryXml, 400, "Throttling"),
            (ErrorFormat::Json, 400, "ThrottlingException"),
        ] {
            let resp: Response<Full<Bytes>> = format.refuse_verdict(&v).unwrap();
            assert_eq!(resp.status().as_u16(), status, "{format:?}");
            assert_eq!(resp.headers()["x-amzn-errortype"], code);
            assert_eq!(resp.headers()["retry-after"], "3", "rounded up");
        }
        let deny = Verdict::Deny {
            rule: None,
            reason: "no".into(),
        };
        let resp: Response<Full<Bytes>> = ErrorFormat::Json.refuse_verdict(&deny).unwrap();
        assert!(resp.headers().get("retry-after").is_none());
    }
}
