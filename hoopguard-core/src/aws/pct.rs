//! Percent-decoding, on bytes, for every place hoopguard reads an encoded path or query.
//!
//! One decoder, so the gateway never reads the same text two ways. It works on bytes (a `%`
//! followed by anything but two hex digits is kept as it is, as AWS does) and never slices a
//! string, so no input can make it panic; [`decode_str`] turns the result into text only when it
//! is valid UTF-8 — a name that is not text is refused, not guessed at.
//!
//! # Example
//!
//! ```
//! use hoopguard_core::aws::pct::{decode, decode_str};
//!
//! assert_eq!(decode(b"a%20b+c", true), b"a b c");
//! assert_eq!(decode(b"%a\xe2\x82\xac", false), "%a€".as_bytes());
//! assert_eq!(decode_str("caf%C3%A9", false).as_deref(), Some("café"));
//! assert_eq!(decode_str("%FF", false), None);
//! ```

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// `input` with every `%XY` decoded (and `+` as a space when `plus` is set, as in forms).
pub fn decode(input: &[u8], plus: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        let b = input[i];
        if b == b'%' {
            if let (Some(h), Some(l)) = (
                input.get(i + 1).copied().and_then(hex),
                input.get(i + 2).copied().and_then(hex),
            ) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(if plus && b == b'+' { b' ' } else { b });
        i += 1;
    }
    out
}

/// [`decode`] as text, or `None` when the decoded bytes are not UTF-8.
pub fn decode_str(input: &str, plus: bool) -> Option<String> {
    String::from_utf8(decode(input.as_bytes(), plus)).ok()
}

/// The pairs of a query string or form body, decoded (`+` is a space): `None` when a name or
/// value is not UTF-8 after decoding. A pair without `=` has an empty value.
pub fn pairs(text: &str) -> Option<Vec<(String, String)>> {
    text.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            Some((decode_str(k, true)?, decode_str(v, true)?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_escapes_are_kept_and_never_panic() {
        for s in ["%", "%a", "%zz", "%€", "%a€", "a%", "%%41", "%4"] {
            let _ = decode(s.as_bytes(), true);
            let _ = decode_str(s, false);
        }
        assert_eq!(decode(b"%%41", false), b"%A");
        assert_eq!(decode(b"%4", false), b"%4");
        assert_eq!(
            pairs("a=1&b&c=%2B+x").unwrap(),
            [("a", "1"), ("b", ""), ("c", "+ x")]
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .to_vec()
        );
        assert!(pairs("a=%FF").is_none());
    }
}
