//! Strict JSON: objects whose member names are unique at every depth, with bounded nesting.
//!
//! RFC 7515 §4 lets a parser either reject duplicate names or keep the last one. A gateway sits
//! in front of other parsers, so "last wins" here and "first wins" upstream would let one token
//! mean two things; claimgate rejects instead. serde_json alone keeps the last member, hence this
//! small visitor. Deployment files use the same parser.

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use std::fmt;

/// Nesting allowed in token headers and payloads.
pub const TOKEN_MAX_DEPTH: usize = 32;

/// Why a JSON text was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JsonError {
    /// Not JSON at all, or invalid UTF-8; the text is serde_json's description.
    Syntax(String),
    /// A member name appears twice in one object.
    DuplicateMember(String),
    /// Deeper than the limit.
    TooDeep(usize),
    /// Valid JSON but not an object.
    NotAnObject,
}

impl fmt::Display for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Syntax(detail) => write!(f, "invalid JSON ({detail})"),
            Self::DuplicateMember(name) => write!(f, "duplicate member '{name}'"),
            Self::TooDeep(limit) => write!(f, "nested deeper than {limit} levels"),
            Self::NotAnObject => f.write_str("not a JSON object"),
        }
    }
}

impl std::error::Error for JsonError {}

/// Parses `bytes` as a JSON value, refusing duplicate member names and nesting beyond
/// `max_depth`.
pub fn parse_value(bytes: &[u8], max_depth: usize) -> Result<Value, JsonError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = StrictSeed {
        depth_left: max_depth,
        max_depth,
    }
    .deserialize(&mut deserializer)
    .map_err(classify)?;
    deserializer.end().map_err(classify)?;
    Ok(value)
}

/// Parses `bytes` as a strict JSON object.
pub fn parse_object(bytes: &[u8], max_depth: usize) -> Result<Map<String, Value>, JsonError> {
    match parse_value(bytes, max_depth)? {
        Value::Object(map) => Ok(map),
        _ => Err(JsonError::NotAnObject),
    }
}

// Custom errors travel through serde_json as text; these markers turn them back into variants.
const DUPLICATE_MARKER: &str = "\u{1}duplicate:";
const DEPTH_MARKER: &str = "\u{1}depth:";

fn classify(error: serde_json::Error) -> JsonError {
    let text = error.to_string();
    if let Some(rest) = text.strip_prefix(DUPLICATE_MARKER) {
        let name = rest.split(" at line ").next().unwrap_or(rest);
        return JsonError::DuplicateMember(name.to_owned());
    }
    if let Some(rest) = text.strip_prefix(DEPTH_MARKER) {
        let limit = rest
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        return JsonError::TooDeep(limit);
    }
    if text.starts_with("recursion limit exceeded") {
        return JsonError::TooDeep(128);
    }
    JsonError::Syntax(text)
}

struct StrictSeed {
    depth_left: usize,
    max_depth: usize,
}

impl StrictSeed {
    fn nested<E: de::Error>(&self) -> Result<Self, E> {
        if self.depth_left == 0 {
            return Err(E::custom(format_args!("{DEPTH_MARKER}{}", self.max_depth)));
        }
        Ok(Self {
            depth_left: self.depth_left - 1,
            max_depth: self.max_depth,
        })
    }
}

impl<'de> DeserializeSeed<'de> for StrictSeed {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for StrictSeed {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
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

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        serde_json::Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom("number out of range"))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(self.nested()?)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut map = Map::new();
        while let Some(name) = access.next_key::<String>()? {
            let value = access.next_value_seed(self.nested()?)?;
            if map.contains_key(&name) {
                return Err(de::Error::custom(format_args!("{DUPLICATE_MARKER}{name}")));
            }
            map.insert(name, value);
        }
        Ok(Value::Object(map))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_objects_and_whitespace() {
        let map = parse_object(b" { \"a\" : [1, {\"b\": null}], \"c\": \"x\" } ", 8).unwrap();
        assert_eq!(map.len(), 2);
    }

    #[test]
    fn rejects_duplicate_top_level_member() {
        assert_eq!(
            parse_object(br#"{"alg":"none","alg":"RS256"}"#, 8),
            Err(JsonError::DuplicateMember("alg".into()))
        );
    }

    #[test]
    fn rejects_duplicate_nested_member() {
        assert_eq!(
            parse_object(br#"{"cnf":{"jkt":"a","jkt":"b"}}"#, 8),
            Err(JsonError::DuplicateMember("jkt".into()))
        );
        assert_eq!(
            parse_object(br#"{"x":[{"r":1,"r":2}]}"#, 8),
            Err(JsonError::DuplicateMember("r".into()))
        );
    }

    #[test]
    fn rejects_excessive_depth() {
        let deep = format!("{{\"x\":{}1{}}}", "[".repeat(40), "]".repeat(40));
        assert_eq!(
            parse_object(deep.as_bytes(), 32),
            Err(JsonError::TooDeep(32))
        );
        let ok = format!("{{\"x\":{}1{}}}", "[".repeat(10), "]".repeat(10));
        assert!(parse_object(ok.as_bytes(), 32).is_ok());
    }

    #[test]
    fn rejects_non_objects_and_garbage() {
        assert_eq!(parse_object(b"[]", 8), Err(JsonError::NotAnObject));
        assert_eq!(parse_object(b"\"x\"", 8), Err(JsonError::NotAnObject));
        assert!(matches!(parse_object(b"{", 8), Err(JsonError::Syntax(_))));
        assert!(matches!(
            parse_object(b"{} x", 8),
            Err(JsonError::Syntax(_))
        ));
    }

    #[test]
    fn rejects_invalid_utf8_and_lone_surrogates() {
        assert!(matches!(
            parse_object(b"{\"a\":\"\xc3\x28\"}", 8),
            Err(JsonError::Syntax(_))
        ));
        assert!(matches!(
            parse_object(br#"{"a":"\ud800"}"#, 8),
            Err(JsonError::Syntax(_))
        ));
    }

    #[test]
    fn rejects_numbers_out_of_range() {
        assert!(parse_object(b"{\"exp\":1e400}", 8).is_err());
    }
}
