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
            _ => (StatusCode::FORBIDDEN, "AccessDenied"),
        };
        Some(self.refuse(status, code, &message))
    }
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
