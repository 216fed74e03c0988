//! Durations written the human way (`90s`, `15m`, `1h30m`), for configuration files.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! assert_eq!(hoopguard_core::duration::parse("15m").unwrap(), Duration::from_secs(900));
//! assert!(hoopguard_core::duration::parse("fifteen").is_err());
//! ```

use std::time::Duration;

/// Parses a duration such as `30s`, `15m`, `1h30m` or `2d`.
///
/// The error says what was wrong and what a valid value looks like.
pub fn parse(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim()).map_err(|e| {
        format!("`{text}` is not a duration ({e}); write it like `30s`, `15m` or `1h30m`")
    })
}

/// Formats a duration the way [`parse`] reads it.
pub fn format(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

/// `#[serde(with = "hoopguard_core::duration::serde")]` for `Duration` fields.
pub mod serde {
    use std::time::Duration;

    use ::serde::{Deserialize, Deserializer, Serializer};

    /// Reads a duration string such as `15m`.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        super::parse(&text).map_err(::serde::de::Error::custom)
    }

    /// Writes a duration string such as `15m`.
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format(*d))
    }
}

/// `#[serde(default, with = "hoopguard_core::duration::serde_opt")]` for an optional duration
/// string: absent is `None`.
pub mod serde_opt {
    use std::time::Duration;

    use ::serde::Deserializer;

    /// Reads a duration string such as `15m` as `Some`.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        super::serde::deserialize(d).map(Some)
    }
}
