//! The HTTP headers that mirror a JSON-RPC body (MCP 2026-07-28, Streamable HTTP): `Mcp-Method`
//! (the method), `Mcp-Name` (`params.name` of `tools/call` and `prompts/get`, `params.uri` of
//! `resources/read`, `resources/subscribe` and `resources/unsubscribe`) and
//! `MCP-Protocol-Version` (which `params._meta` repeats as
//! `io.modelcontextprotocol/protocolVersion`).
//!
//! They exist so that load balancers and proxies can route without reading the body, which makes
//! a disagreement a confused-deputy hole: a proxy that routes or rate-limits on `Mcp-Name: echo`
//! in front of a server that runs the body's `drop_table`. hoopguard always decides on the body;
//! [`check_mirrored`] refuses, before anything is decided or forwarded, a request whose headers
//! say something else, so nothing behind hoopguard ever sees such a pair:
//!
//! * a header that disagrees with the body, or that has nothing in the body to mirror (an
//!   `Mcp-Name` on a method without a name, an `Mcp-Method` on a response, either on a batch);
//! * a header given twice (which value would a router read?), or not visible ASCII;
//! * an `Mcp-Name` in the `=?base64?…?=` form that does not decode to UTF-8;
//! * on a request that declares 2026-07-28 or later (header or `_meta`), a missing
//!   `Mcp-Method`, or a missing `Mcp-Name` on `tools/call`, `prompts/get` and `resources/read`
//!   — the revision requires them (on `resources/subscribe` and `unsubscribe`, which SDKs
//!   disagree on, a name that is sent must agree but none is required);
//! * two different protocol versions (header and `_meta`, or two messages of a batch).
//!
//! The refusal is [`HEADER_MISMATCH`] (`-32020`), with HTTP 400, as the revision defines.
//!
//! # Example
//!
//! ```
//! use hoopguard_core::mcp::{HEADER_MISMATCH, Mirrored, check_mirrored, parse};
//!
//! let body = parse(br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"drop_table"}}"#).unwrap();
//! let routed_as_echo = Mirrored { method: Some(b"tools/call"), name: Some(b"echo"), ..Default::default() };
//! assert_eq!(check_mirrored(&routed_as_echo, &body).unwrap_err().code, HEADER_MISMATCH);
//!
//! let honest = Mirrored { method: Some(b"tools/call"), name: Some(b"drop_table"), ..Default::default() };
//! assert!(check_mirrored(&honest, &body).is_ok());
//! ```

use base64::Engine as _;
use serde_json::Value;

use super::{Messages, RpcError};

/// MCP 2026-07-28: the mirrored headers are missing, malformed, or disagree with the body.
/// Answered with HTTP 400.
pub const HEADER_MISMATCH: i64 = -32020;

/// The first revision that mirrors the method and name into headers and requires them.
pub const MIRRORING_REVISION: &str = "2026-07-28";

/// Where `params._meta` names the protocol version.
const META_VERSION: &str = "io.modelcontextprotocol/protocolVersion";

/// The mirroring headers of one request, each as the single value it carried.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Mirrored<'a> {
    /// `Mcp-Method`.
    pub method: Option<&'a [u8]>,
    /// `Mcp-Name`.
    pub name: Option<&'a [u8]>,
    /// `MCP-Protocol-Version`.
    pub protocol_version: Option<&'a [u8]>,
}

/// The body member `Mcp-Name` mirrors for `method`, if the method has one.
pub fn name_member(method: &str) -> Option<&'static str> {
    match method {
        "tools/call" | "prompts/get" => Some("name"),
        "resources/read" | "resources/subscribe" | "resources/unsubscribe" => Some("uri"),
        _ => None,
    }
}

/// Checks that the mirroring headers say what `body` says (see the [module docs](self)).
pub fn check_mirrored(h: &Mirrored<'_>, body: &Messages) -> Result<(), RpcError> {
    let first_id = body.items.first().and_then(|i| i.id.clone());
    let fail = |id: Option<Value>, message: String| RpcError {
        code: HEADER_MISMATCH,
        message,
        id,
    };
    let header_version = h
        .protocol_version
        .map(|v| visible_ascii(v, "MCP-Protocol-Version"))
        .transpose()
        .map_err(|m| fail(first_id.clone(), m))?;
    let method = h
        .method
        .map(|v| visible_ascii(v, "Mcp-Method"))
        .transpose()
        .map_err(|m| fail(first_id.clone(), m))?;
    let name = h
        .name
        .map(decode_name)
        .transpose()
        .map_err(|m| fail(first_id.clone(), m))?;

    // One protocol version for the whole request.
    let mut version: Option<&str> = header_version;
    for item in &body.items {
        let meta = item
            .message
            .get("params")
            .and_then(|p| p.get("_meta"))
            .and_then(|m| m.get(META_VERSION));
        let Some(meta) = meta else { continue };
        let Some(meta) = meta.as_str() else {
            return Err(fail(
                item.id.clone(),
                format!("`_meta.{META_VERSION}` is not a string"),
            ));
        };
        match &version {
            Some(v) if *v != meta => {
                return Err(fail(
                    item.id.clone(),
                    format!(
                        "the request says protocol version `{v}` in one place and `{meta}` in another"
                    ),
                ));
            }
            Some(_) => {}
            None => version = Some(meta),
        }
    }
    // Revisions are dates: a later one mirrors too.
    let mirroring = version.is_some_and(|v| v >= MIRRORING_REVISION);

    if body.batch {
        if method.is_some() || name.is_some() {
            return Err(fail(
                first_id,
                "Mcp-Method and Mcp-Name cannot mirror a batch; send one message per request"
                    .into(),
            ));
        }
        if mirroring {
            return Err(fail(
                first_id,
                format!("protocol version {MIRRORING_REVISION} and later have no batches"),
            ));
        }
        return Ok(());
    }
    let Some(item) = body.items.first() else {
        return Ok(());
    };
    let id = item.id.clone();
    let body_method = item.message.get("method").and_then(Value::as_str);
    match (method, body_method) {
        (Some(h), Some(b)) if h != b => {
            return Err(fail(
                id,
                format!("Mcp-Method says `{h}` but the body calls `{b}`"),
            ));
        }
        (Some(h), None) => {
            return Err(fail(
                id,
                format!("Mcp-Method says `{h}` but the body is not a request"),
            ));
        }
        (None, Some(b)) if mirroring => {
            return Err(fail(
                id,
                format!(
                    "protocol version {} requires the Mcp-Method header (`{b}`)",
                    version.unwrap_or(MIRRORING_REVISION)
                ),
            ));
        }
        _ => {}
    }
    let member = body_method.and_then(name_member);
    let body_name = member.and_then(|m| item.message.get("params")?.get(m));
    match (name, member, body_name) {
        (Some(h), None, _) => Err(fail(
            id,
            format!(
                "Mcp-Name says `{h}` but `{}` has no name to mirror",
                body_method.unwrap_or("a response")
            ),
        )),
        (Some(h), Some(m), None) => Err(fail(
            id,
            format!("Mcp-Name says `{h}` but the body has no `params.{m}`"),
        )),
        (Some(h), Some(m), Some(b)) if b.as_str() != Some(h.as_str()) => Err(fail(
            id,
            format!(
                "Mcp-Name says `{h}` but the body's `params.{m}` is {}",
                short(b)
            ),
        )),
        (None, Some(m), Some(_))
            if mirroring
                && matches!(
                    body_method,
                    Some("tools/call" | "prompts/get" | "resources/read")
                ) =>
        {
            Err(fail(
                id,
                format!(
                    "protocol version {} requires the Mcp-Name header (the body's `params.{m}`)",
                    version.unwrap_or(MIRRORING_REVISION)
                ),
            ))
        }
        _ => Ok(()),
    }
}

/// A header value that must be visible ASCII (no control characters, nothing beyond `~`).
fn visible_ascii<'a>(v: &'a [u8], header: &str) -> Result<&'a str, String> {
    if v.is_empty() || !v.iter().all(|b| (0x20..0x7f).contains(b)) {
        return Err(format!("the {header} header is empty or not visible ASCII"));
    }
    Ok(std::str::from_utf8(v).expect("ASCII is UTF-8"))
}

/// `Mcp-Name`: plain visible ASCII, or `=?base64?…?=` (markers case-sensitive) around the
/// base64 of UTF-8 text.
fn decode_name(v: &[u8]) -> Result<String, String> {
    let text = visible_ascii(v, "Mcp-Name")?;
    let Some(inner) = text
        .strip_prefix("=?base64?")
        .and_then(|r| r.strip_suffix("?="))
    else {
        return Ok(text.to_string());
    };
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(inner)
        .map_err(|_| "the Mcp-Name header's =?base64?…?= value is not base64".to_string())?;
    String::from_utf8(bytes)
        .map_err(|_| "the Mcp-Name header's =?base64?…?= value is not UTF-8".to_string())
}

/// A body value, short enough for an error message.
fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.len() <= 80 {
        s
    } else {
        let mut end = 80;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}…", &s[..end])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mcp::parse;

    fn check(
        method: Option<&str>,
        name: Option<&str>,
        version: Option<&str>,
        body: &str,
    ) -> Result<(), i64> {
        let msgs = parse(body.as_bytes()).unwrap();
        let h = Mirrored {
            method: method.map(str::as_bytes),
            name: name.map(str::as_bytes),
            protocol_version: version.map(str::as_bytes),
        };
        check_mirrored(&h, &msgs).map_err(|e| e.code)
    }

    const DROP: &str = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"drop_table","arguments":{}}}"#;
    const DROP_2026: &str = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"drop_table","arguments":{},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}"#;
    const READ: &str = r#"{"jsonrpc":"2.0","id":2,"method":"resources/read","params":{"uri":"file:///etc/passwd"}}"#;
    const PING: &str = r#"{"jsonrpc":"2.0","id":3,"method":"ping"}"#;
    const RESPONSE: &str = r#"{"jsonrpc":"2.0","id":4,"result":{}}"#;
    const M: i64 = HEADER_MISMATCH;

    #[test]
    fn headers_that_disagree_with_the_body_are_refused_and_their_honest_twins_pass() {
        // Attack, then the legitimate twin.
        assert_eq!(check(Some("tools/call"), Some("echo"), None, DROP), Err(M));
        assert_eq!(
            check(Some("tools/call"), Some("drop_table"), None, DROP),
            Ok(())
        );
        assert_eq!(check(Some("tools/list"), None, None, DROP), Err(M));
        assert_eq!(check(Some("tools/call"), None, None, DROP), Ok(()));
        assert_eq!(check(None, Some("file:///tmp/x"), None, READ), Err(M));
        assert_eq!(check(None, Some("file:///etc/passwd"), None, READ), Ok(()));
        // Case matters: `Drop_Table` is another tool.
        assert_eq!(check(None, Some("Drop_Table"), None, DROP), Err(M));
    }

    #[test]
    fn a_header_with_nothing_to_mirror_is_refused() {
        assert_eq!(check(Some("ping"), Some("echo"), None, PING), Err(M));
        assert_eq!(check(Some("ping"), None, None, PING), Ok(()));
        assert_eq!(check(Some("tools/call"), None, None, RESPONSE), Err(M));
        assert_eq!(check(None, None, None, RESPONSE), Ok(()));
        // (`tools/call` without a name is refused by the parser already.)
        let no_uri = r#"{"jsonrpc":"2.0","id":1,"method":"resources/subscribe","params":{}}"#;
        assert_eq!(check(None, Some("file:///a"), None, no_uri), Err(M));
        assert_eq!(check(None, None, None, no_uri), Ok(()));
        let batch = format!("[{DROP},{PING}]");
        assert_eq!(check(Some("tools/call"), None, None, &batch), Err(M));
        assert_eq!(check(None, Some("drop_table"), None, &batch), Err(M));
        assert_eq!(check(None, None, None, &batch), Ok(()));
    }

    #[test]
    fn the_2026_revision_requires_the_headers() {
        assert_eq!(check(None, None, None, DROP_2026), Err(M));
        assert_eq!(check(Some("tools/call"), None, None, DROP_2026), Err(M));
        assert_eq!(
            check(Some("tools/call"), Some("drop_table"), None, DROP_2026),
            Ok(())
        );
        // Declared by the header alone.
        assert_eq!(check(None, None, Some("2026-07-28"), DROP), Err(M));
        assert_eq!(
            check(
                Some("tools/call"),
                Some("drop_table"),
                Some("2026-07-28"),
                DROP
            ),
            Ok(())
        );
        // The 2025 revisions do not require them (but what is sent must agree).
        assert_eq!(check(None, None, Some("2025-11-25"), DROP), Ok(()));
        // Subscriptions: a name that is sent must agree, none is required.
        let sub = r#"{"jsonrpc":"2.0","id":5,"method":"resources/subscribe","params":{"uri":"file:///a"}}"#;
        assert_eq!(
            check(Some("resources/subscribe"), None, Some("2026-07-28"), sub),
            Ok(())
        );
        assert_eq!(
            check(
                Some("resources/subscribe"),
                Some("file:///b"),
                Some("2026-07-28"),
                sub
            ),
            Err(M)
        );
        assert_eq!(check(None, Some("echo"), Some("2025-11-25"), DROP), Err(M));
        // No batches from 2026-07-28 on.
        let batch = r#"[{"jsonrpc":"2.0","id":1,"method":"ping","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}]"#;
        assert_eq!(check(None, None, None, batch), Err(M));
    }

    #[test]
    fn two_protocol_versions_are_refused() {
        assert_eq!(
            check(
                Some("tools/call"),
                Some("drop_table"),
                Some("2025-11-25"),
                DROP_2026
            ),
            Err(M)
        );
        assert_eq!(
            check(
                Some("tools/call"),
                Some("drop_table"),
                Some("2026-07-28"),
                DROP_2026
            ),
            Ok(())
        );
        let meta_not_string = r#"{"jsonrpc":"2.0","id":1,"method":"ping","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":20260728}}}"#;
        assert_eq!(check(Some("ping"), None, None, meta_not_string), Err(M));
    }

    #[test]
    fn base64_names_are_decoded_and_malformed_values_refused() {
        let unicode = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"tür"}}"#;
        let b64 = format!(
            "=?base64?{}?=",
            base64::engine::general_purpose::STANDARD.encode("tür")
        );
        assert_eq!(check(None, Some(&b64), None, unicode), Ok(()));
        let other = format!(
            "=?base64?{}?=",
            base64::engine::general_purpose::STANDARD.encode("tor")
        );
        assert_eq!(check(None, Some(&other), None, unicode), Err(M));
        assert_eq!(check(None, Some("=?base64?***?="), None, unicode), Err(M));
        // Markers are case-sensitive: this is a plain name, and not the body's.
        assert_eq!(
            check(None, Some("=?BASE64?dMO8cg==?="), None, unicode),
            Err(M)
        );
        // Control characters and empty values.
        let msgs = parse(DROP.as_bytes()).unwrap();
        for bad in [
            &b"tools/call\r\n"[..],
            b"",
            b"tools/\x00call",
            "tools/cäll".as_bytes(),
        ] {
            let h = Mirrored {
                method: Some(bad),
                ..Default::default()
            };
            assert_eq!(check_mirrored(&h, &msgs).unwrap_err().code, M, "{bad:?}");
        }
    }
}
