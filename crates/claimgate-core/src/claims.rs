//! A token's claims (or an introspection answer), kept small: a gateway holds one per cached
//! token, and a decoded JSON object costs about ten times its text (a 225-byte payload with
//! nine claims takes ~2.2 KiB as a `serde_json::Map`, ~400 bytes here). The members are stored
//! back to back in one string, each key as decoded followed by its value as JSON text, and a
//! value is decoded when a check asks for it.
//!
//! It is built from an object that was already parsed strictly (duplicate-free, valid JSON),
//! so reading a value back cannot fail; it does not parse untrusted text itself.

use serde_json::{Map, Value};
use std::fmt;

/// An object's members, in their order.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Claims {
    /// `key₁ value₁ key₂ value₂ ...`: keys as decoded, values as serde_json writes them.
    text: Box<str>,
    members: Box<[Member]>,
}

/// Where a member ends in [`Claims::text`]; it starts where the previous one ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Member {
    key_end: u32,
    value_end: u32,
}

impl Claims {
    /// The members of `object`, in order. `None` if the text would pass 4 GiB (a token is at
    /// most 16 KiB; an introspection answer is bounded by the client).
    pub fn from_map(object: &Map<String, Value>) -> Option<Self> {
        let mut text = String::new();
        let mut members = Vec::with_capacity(object.len());
        for (key, value) in object {
            text.push_str(key);
            let key_end = u32::try_from(text.len()).ok()?;
            text.push_str(&value.to_string());
            let value_end = u32::try_from(text.len()).ok()?;
            members.push(Member { key_end, value_end });
        }
        Some(Self {
            text: text.into_boxed_str(),
            members: members.into_boxed_slice(),
        })
    }

    /// The members as (key, value text), in order.
    fn raw(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        let mut start = 0usize;
        self.members.iter().map(move |member| {
            let key = &self.text[start..member.key_end as usize];
            let value = &self.text[member.key_end as usize..member.value_end as usize];
            start = member.value_end as usize;
            (key, value)
        })
    }

    /// The value of member `name`, decoded.
    pub fn get(&self, name: &str) -> Option<Value> {
        let (_, text) = self.raw().find(|(key, _)| *key == name)?;
        Some(decode(text))
    }

    /// Whether member `name` is present.
    pub fn contains(&self, name: &str) -> bool {
        self.raw().any(|(key, _)| key == name)
    }

    /// The members, decoded, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, Value)> + '_ {
        self.raw().map(|(key, text)| (key, decode(text)))
    }

    /// As a JSON object.
    pub fn to_map(&self) -> Map<String, Value> {
        self.iter().map(|(k, v)| (k.to_owned(), v)).collect()
    }

    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// The heap this holds, with the allocator's overhead (two allocations).
    pub fn heap_size(&self) -> usize {
        const ALLOCATION: usize = 16;
        2 * ALLOCATION + self.text.len() + std::mem::size_of_val(&*self.members)
    }
}

/// A value serde_json wrote; plain strings and non-negative integers (most claims: `iss`,
/// `aud`, `exp`...) skip the parser, and read back as the parser would read them.
fn decode(text: &str) -> Value {
    if let Some(inner) = text
        .strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .filter(|t| !t.contains('\\'))
    {
        return Value::String(inner.to_owned());
    }
    if text.bytes().all(|b| b.is_ascii_digit()) {
        if let Ok(number) = text.parse::<u64>() {
            return Value::from(number);
        }
    }
    // Written by serde_json from a Value a moment ago: it reads back.
    serde_json::from_str(text).unwrap_or(Value::Null)
}

impl fmt::Debug for Claims {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

/// A claim as text, as context variables render it: strings as they are, everything else as
/// JSON.
pub fn claim_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claims(value: Value) -> Claims {
        Claims::from_map(value.as_object().unwrap()).unwrap()
    }

    #[test]
    fn every_member_reads_back_as_it_was() {
        let object = json!({
            "iss": "https://idp.example.com/",
            "aud": ["a", "b"],
            "exp": 1_764_003_600,
            "big": 18_446_744_073_709_551_615_u64,
            "neg": -7,
            "frac": 1.5,
            "ok": true,
            "none": null,
            "nested": {"z": 1, "a": [{"q": "\"quoted\" \\ \u{1}"}]},
            "esc": "line\nbreak \"q\" é",
            "": "empty key",
            "ключ": "значение",
        });
        let claims = claims(object.clone());
        assert_eq!(claims.len(), object.as_object().unwrap().len());
        for (key, value) in object.as_object().unwrap() {
            assert_eq!(claims.get(key).as_ref(), Some(value), "{key}");
            assert!(claims.contains(key));
        }
        assert_eq!(&claims.to_map(), object.as_object().unwrap());
        let order: Vec<&str> = claims.iter().map(|(k, _)| k).collect();
        let expected: Vec<&str> = object
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(order, expected);
    }

    #[test]
    fn numbers_read_back_exactly_as_the_parser_reads_them() {
        for text in [
            "0",
            "7",
            "1764003600",
            "18446744073709551615",
            "18446744073709551616",
            "-1",
            "-9223372036854775808",
            "1.5",
            "1e300",
            "-0.0",
            "0.1",
        ] {
            let parsed: Value = serde_json::from_str(text).unwrap();
            let claims = claims(json!({ "n": parsed }));
            let read = claims.get("n").unwrap();
            assert_eq!(read, parsed, "{text}");
            assert_eq!(read.is_u64(), parsed.is_u64(), "{text}");
            assert_eq!(read.is_i64(), parsed.is_i64(), "{text}");
            assert_eq!(read.is_f64(), parsed.is_f64(), "{text}");
        }
    }

    #[test]
    fn a_missing_member_is_none_and_keys_match_exactly() {
        let claims = claims(json!({"exp": 1, "Exp ": 2}));
        assert_eq!(claims.get("exp"), Some(json!(1)));
        assert_eq!(claims.get("Exp"), None);
        assert_eq!(claims.get("ex"), None);
        assert_eq!(claims.get("expx"), None);
        assert!(!claims.contains("missing"));
        assert!(Claims::default().is_empty());
    }

    #[test]
    fn a_key_that_looks_like_json_does_not_confuse_the_layout() {
        // Keys are stored decoded and values as JSON: a key full of quotes and digits must not
        // shift the next member.
        let claims = claims(json!({"\"1\"": "a", "x": "\"1\"", "12": 12}));
        assert_eq!(claims.get("\"1\""), Some(json!("a")));
        assert_eq!(claims.get("x"), Some(json!("\"1\"")));
        assert_eq!(claims.get("12"), Some(json!(12)));
    }

    /// What `heap_size` reports for the benchmark's nine claims (the memory really taken per
    /// cache entry is measured by the criterion bench, BENCHMARKS.md).
    #[test]
    fn nine_typical_claims_are_counted_at_under_400_bytes() {
        let claims = claims(json!({
            "iss": "https://idp.example.com/", "aud": "api://orders",
            "sub": "user-1@example.com", "tenant": "acme", "scope": "orders:read orders:write",
            "iat": 1_763_999_940, "nbf": 1_763_999_940, "exp": 1_764_003_600,
            "jti": "0000000000000000000000000000002a",
        }));
        assert!(claims.heap_size() < 400, "{}", claims.heap_size());
    }
}
