//! JSON read the one way every reader reads it: a document with a key twice in one object is
//! refused.
//!
//! `serde_json` keeps the last of two equal keys, some servers keep the first; a gateway that
//! decides on one and forwards both lets the caller choose what is decided. Whatever hoopguard
//! decides on (AWS JSON bodies, MCP JSON-RPC) is parsed with [`parse_strict`].
//!
//! # Example
//!
//! ```
//! use hoopguard_core::json::parse_strict;
//!
//! assert_eq!(parse_strict(br#"{"a": [1, {"b": 2}]}"#).unwrap()["a"][1]["b"], 2);
//! assert!(parse_strict(br#"{"TableName": "a", "TableName": "b"}"#).is_err());
//! ```

use std::fmt;

use serde::de::{self, Deserialize, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// Parses `bytes` as JSON, refusing duplicate keys anywhere in it.
pub fn parse_strict(bytes: &[u8]) -> Result<Value, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let v = Strict.deserialize(&mut de)?;
    de.end()?;
    Ok(v)
}

/// [`parse_strict`] for a `Deserialize` type: checked first, then converted.
pub fn from_slice_strict<T: for<'de> Deserialize<'de>>(
    bytes: &[u8],
) -> Result<T, serde_json::Error> {
    serde_json::from_value(parse_strict(bytes)?)
}

struct Strict;

impl<'de> DeserializeSeed<'de> for Strict {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(StrictVisitor)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        Strict.deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(v) = seq.next_element_seed(Strict)? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(k) = map.next_key::<String>()? {
            if out.contains_key(&k) {
                return Err(de::Error::custom(format!(
                    "the key `{k}` appears twice in one object"
                )));
            }
            let v = map.next_value_seed(Strict)?;
            out.insert(k, v);
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_are_refused_at_any_depth_and_the_rest_parses_as_serde_json_does() {
        for bad in [
            r#"{"a":1,"a":1}"#,
            r#"[{"x":{"y":1,"y":2}}]"#,
            r#"{"a":1} trailing"#,
        ] {
            assert!(parse_strict(bad.as_bytes()).is_err(), "{bad}");
        }
        for good in [
            r#"{"a":1,"b":[1,2.5,-3,"x",null,true,{}]}"#,
            r#""\u00e9""#,
            "12345678901234567890",
            "[]",
        ] {
            let ours = parse_strict(good.as_bytes()).unwrap();
            let theirs: Value = serde_json::from_str(good).unwrap();
            assert_eq!(ours, theirs, "{good}");
        }
    }
}
