//! A token's claims (or an introspection answer), kept small: a gateway holds one per cached
//! token, and a decoded JSON object costs about ten times its text (a 225-byte payload with
//! nine claims takes ~2.2 KiB as a `serde_json::Map`, ~400 bytes here). The members are stored
//! back to back in one string, each key as decoded followed by its value as JSON text exactly
//! as serde_json writes it, and a value is decoded when a check asks for it; the common ones
//! (a string without escapes, a non-negative integer) are read in place ([`Claims::lookup`]).
//!
//! Built either from an object already parsed strictly ([`Claims::from_map`]) or straight from
//! a token segment's JSON text in one pass ([`Claims::parse`]), which refuses exactly what the
//! strict parser refuses and packs exactly the text `from_map` would. Reading a value back
//! cannot fail.

use crate::json::{self, JsonError};
use serde::de::{self, DeserializeSeed, Deserializer as _, MapAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::fmt::{self, Write as _};

/// An object's members, in their order.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Claims {
    /// The registered claims every verdict reads, found and classified once when the claims
    /// are packed (a cached token is judged many times).
    registered: [Slot; REGISTERED.len()],
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
        Some(Self::indexed(text, members))
    }

    /// Parses `bytes` as a strict JSON object (no duplicate member at any depth, nesting at most
    /// `max_depth`, see [`crate::json`]) straight into its packed form, without building a
    /// tree for the members whose text is already what serde_json would write (strings without
    /// escapes, non-negative integers, `true`, `false`, `null`: nearly every claim). Any other
    /// value is parsed strictly on its own and written back. On any problem the strict parser
    /// reads the whole text again, so the error (and what is accepted) is exactly its own.
    pub fn parse(bytes: &[u8], max_depth: usize) -> Result<Self, JsonError> {
        if let Some(claims) = pack(bytes, max_depth) {
            return Ok(claims);
        }
        let object = json::parse_object(bytes, max_depth)?;
        Self::from_map(&object).ok_or_else(|| JsonError::Syntax("the object is too large".into()))
    }

    /// The value of member `name` as its JSON text.
    pub fn raw_value(&self, name: &str) -> Option<&str> {
        self.raw()
            .find(|(key, _)| *key == name)
            .map(|(_, text)| text)
    }

    /// The value of member `name`, read in place when it is a string without escapes or a
    /// non-negative integer (no allocation, no parse), else as its JSON text. The registered
    /// claims ([`Registered`]) come from the index made when the claims were packed.
    pub fn lookup(&self, name: &str) -> Option<ClaimRef<'_>> {
        match registered_index(name) {
            Some(index) => self.slot(self.registered[index]),
            None => self.raw_value(name).map(ClaimRef::of),
        }
    }

    /// [`Self::lookup`] of a registered claim, from the index.
    pub fn registered(&self, claim: Registered) -> Option<ClaimRef<'_>> {
        self.slot(self.registered[claim as usize])
    }

    fn slot(&self, slot: Slot) -> Option<ClaimRef<'_>> {
        match slot {
            Slot::Absent => None,
            Slot::Str(start, end) => Some(ClaimRef::Str(&self.text[start as usize..end as usize])),
            Slot::Uint(number) => Some(ClaimRef::Uint(number)),
            Slot::Other(start, end) => {
                Some(ClaimRef::Other(&self.text[start as usize..end as usize]))
            }
        }
    }

    /// The packed members with their registered claims indexed (the first of a name counts,
    /// as [`Self::get`] finds it).
    fn indexed(text: String, members: Vec<Member>) -> Self {
        let mut claims = Self {
            registered: Default::default(),
            text: text.into_boxed_str(),
            members: members.into_boxed_slice(),
        };
        let base = claims.text.as_ptr() as usize;
        let mut registered = [Slot::Absent; REGISTERED.len()];
        for (key, value) in claims.raw() {
            let Some(index) = registered_index(key) else {
                continue;
            };
            if registered[index] != Slot::Absent {
                continue;
            }
            let offsets = |part: &str| {
                let start = part.as_ptr() as usize - base;
                // Within the text, which is below 4 GiB (checked when packing).
                (start as u32, (start + part.len()) as u32)
            };
            registered[index] = match ClaimRef::of(value) {
                ClaimRef::Str(inner) => {
                    let (start, end) = offsets(inner);
                    Slot::Str(start, end)
                }
                ClaimRef::Uint(number) => Slot::Uint(number),
                ClaimRef::Other(text) => {
                    let (start, end) = offsets(text);
                    Slot::Other(start, end)
                }
            };
        }
        claims.registered = registered;
        claims
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
    match ClaimRef::of(text) {
        ClaimRef::Str(inner) => return Value::String(inner.to_owned()),
        ClaimRef::Uint(number) => return Value::from(number),
        ClaimRef::Other(_) => {}
    }
    // Written by serde_json from a Value a moment ago: it reads back.
    serde_json::from_str(text).unwrap_or(Value::Null)
}

/// The registered claims the verdict reads on every request, indexed when claims are packed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Registered {
    Exp = 0,
    Nbf = 1,
    Iss = 2,
    Aud = 3,
    Scope = 4,
}

const REGISTERED: [(Registered, &str); 5] = [
    (Registered::Exp, "exp"),
    (Registered::Nbf, "nbf"),
    (Registered::Iss, "iss"),
    (Registered::Aud, "aud"),
    (Registered::Scope, "scope"),
];

/// The position of `name` in [`REGISTERED`] (a match on the bytes: no string comparison call).
fn registered_index(name: &str) -> Option<usize> {
    let index = match name.as_bytes() {
        b"exp" => Registered::Exp,
        b"nbf" => Registered::Nbf,
        b"iss" => Registered::Iss,
        b"aud" => Registered::Aud,
        b"scope" => Registered::Scope,
        _ => return None,
    } as usize;
    debug_assert_eq!(REGISTERED[index].1, name);
    Some(index)
}

/// Where a registered claim's value is in [`Claims::text`], classified as [`ClaimRef`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Slot {
    #[default]
    Absent,
    Str(u32, u32),
    Uint(u64),
    Other(u32, u32),
}

/// A member's value as [`Claims::lookup`] reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimRef<'a> {
    /// A string without escapes: its text, as decoded.
    Str(&'a str),
    /// A non-negative integer that fits in 64 bits.
    Uint(u64),
    /// Anything else, as JSON text (decode it with [`Claims::get`]).
    Other(&'a str),
}

impl<'a> ClaimRef<'a> {
    /// A member's value read from its JSON text (as [`Claims::raw_value`] gives it).
    pub fn of_text(text: &'a str) -> Self {
        Self::of(text)
    }

    fn of(text: &'a str) -> Self {
        if let Some(inner) = plain_string(text) {
            return Self::Str(inner);
        }
        match plain_integer(text) {
            Some(number) => Self::Uint(number),
            None => Self::Other(text),
        }
    }
}

/// The content of a JSON string without escapes (`"abc"` → `abc`).
fn plain_string(text: &str) -> Option<&str> {
    text.strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .filter(|t| !t.contains('\\'))
}

/// A JSON number made of digits only that fits in a `u64` (as serde_json reads and writes it).
fn plain_integer(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// Whether a valid JSON value's text is exactly what serde_json writes for it, so that it can
/// be packed as it is: a string without escapes (serde_json escapes only `"`, `\\` and control
/// characters, none of which such a string can hold), a non-negative integer without a leading
/// zero (JSON has none) that fits in a `u64`, or a literal.
fn written_as_is(text: &str) -> bool {
    plain_string(text).is_some()
        || plain_integer(text).is_some()
        || matches!(text, "true" | "false" | "null")
}

/// The one-pass reading behind [`Claims::parse`]; `None` when the text is not an object that
/// passes, for the strict parser to name the problem. The common shape is read by hand
/// ([`pack_plain`]); anything else through serde_json.
fn pack(bytes: &[u8], max_depth: usize) -> Option<Claims> {
    pack_plain(bytes, max_depth).or_else(|| pack_with_serde(bytes, max_depth))
}

/// Reads by hand the shape nearly every token has: an object whose keys have no escapes and
/// whose values are strings without escapes, non-negative integers that fit in a `u64`,
/// literals, or arrays of such strings. Every byte is checked as JSON requires (UTF-8, no
/// control character in a string, no leading zero, JSON's four white-space bytes only).
/// `None` for anything else, valid or not: it is never the one to refuse a text.
fn pack_plain(bytes: &[u8], max_depth: usize) -> Option<Claims> {
    let text = std::str::from_utf8(bytes).ok()?;
    let b = text.as_bytes();
    let mut text_out = String::with_capacity(b.len());
    let mut members = Vec::with_capacity(16);
    let mut i = skip_space(b, 0);
    if b.get(i) != Some(&b'{') {
        return None;
    }
    i = skip_space(b, i + 1);
    if b.get(i) == Some(&b'}') {
        i += 1;
    } else {
        // Members need one level below the object; arrays one more (as the strict parser counts).
        let member_depth = max_depth.checked_sub(1)?;
        loop {
            let (key, next) = plain_string_at(text, i)?;
            i = skip_space(b, next);
            if b.get(i) != Some(&b':') {
                return None;
            }
            i = skip_space(b, i + 1);
            text_out.push_str(key);
            let key_end = u32::try_from(text_out.len()).ok()?;
            i = plain_value_at(text, i, member_depth, &mut text_out)?;
            let value_end = u32::try_from(text_out.len()).ok()?;
            members.push(Member { key_end, value_end });
            i = skip_space(b, i);
            match b.get(i) {
                Some(b',') => i = skip_space(b, i + 1),
                Some(b'}') => {
                    i += 1;
                    break;
                }
                _ => return None,
            }
        }
    }
    if skip_space(b, i) != b.len() {
        return None;
    }
    let claims = Claims::indexed(text_out, members);
    (!claims.has_duplicate_key()).then_some(claims)
}

/// JSON's white space: space, tab, line feed, carriage return.
fn skip_space(b: &[u8], mut i: usize) -> usize {
    while matches!(b.get(i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        i += 1;
    }
    i
}

/// A string without escapes at `i` (its opening quote): its content and the index after its
/// closing quote.
fn plain_string_at(text: &str, i: usize) -> Option<(&str, usize)> {
    let b = text.as_bytes();
    if b.get(i) != Some(&b'"') {
        return None;
    }
    let rest = &b[i + 1..];
    let end = rest
        .iter()
        .position(|&c| c == b'"' || c == b'\\' || c < 0x20)?;
    if rest[end] != b'"' {
        return None;
    }
    Some((&text[i + 1..i + 1 + end], i + 2 + end))
}

/// A plain value at `i`, written to `out` as serde_json writes it; the index after it.
fn plain_value_at(text: &str, i: usize, depth: usize, out: &mut String) -> Option<usize> {
    let b = text.as_bytes();
    match *b.get(i)? {
        b'"' => {
            let (_, next) = plain_string_at(text, i)?;
            out.push_str(&text[i..next]);
            Some(next)
        }
        b'0'..=b'9' => {
            let digits = b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
            let end = i + digits;
            // A fraction or an exponent is not plain; a leading zero is not JSON.
            if matches!(b.get(end), Some(b'.' | b'e' | b'E')) || (digits > 1 && b[i] == b'0') {
                return None;
            }
            text[i..end].parse::<u64>().ok()?;
            out.push_str(&text[i..end]);
            Some(end)
        }
        b't' | b'f' | b'n' => {
            let literal = ["true", "false", "null"]
                .into_iter()
                .find(|l| b[i..].starts_with(l.as_bytes()))?;
            out.push_str(literal);
            Some(i + literal.len())
        }
        b'[' => {
            // Strings only, one level below the array.
            depth.checked_sub(1)?;
            out.push('[');
            let mut j = skip_space(b, i + 1);
            if b.get(j) == Some(&b']') {
                out.push(']');
                return Some(j + 1);
            }
            loop {
                let (_, next) = plain_string_at(text, j)?;
                out.push_str(&text[j..next]);
                j = skip_space(b, next);
                match b.get(j) {
                    Some(b',') => {
                        out.push(',');
                        j = skip_space(b, j + 1);
                    }
                    Some(b']') => {
                        out.push(']');
                        return Some(j + 1);
                    }
                    _ => return None,
                }
            }
        }
        _ => None,
    }
}

/// [`pack`] through serde_json, for what [`pack_plain`] does not read.
fn pack_with_serde(bytes: &[u8], max_depth: usize) -> Option<Claims> {
    // The strict parser gives every member value one level less than the object.
    let member_depth = max_depth.checked_sub(1);
    let mut packer = Packer {
        text: String::with_capacity(bytes.len()),
        members: Vec::with_capacity(16),
        member_depth,
    };
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    (&mut deserializer)
        .deserialize_map(PackVisitor(&mut packer))
        .ok()?;
    deserializer.end().ok()?;
    let claims = Claims::indexed(packer.text, packer.members);
    (!claims.has_duplicate_key()).then_some(claims)
}

impl Claims {
    /// Whether two members share a key: pairwise for a few members, sorted for many, so that a
    /// token made of thousands of tiny members costs `n log n`, not `n²`.
    fn has_duplicate_key(&self) -> bool {
        const PAIRWISE: usize = 16;
        if self.members.len() <= PAIRWISE {
            // Keys are compared only when their length and first byte agree.
            let mut seen = [""; PAIRWISE];
            let mut shapes = [0u32; PAIRWISE];
            for (count, (key, _)) in self.raw().enumerate() {
                let shape = (key.len() as u32) << 8 | u32::from(key.bytes().next().unwrap_or(0));
                let earlier = shapes[..count].iter().zip(&seen[..count]);
                if earlier
                    .filter(|(s, _)| **s == shape)
                    .any(|(_, seen)| *seen == key)
                {
                    return true;
                }
                seen[count] = key;
                shapes[count] = shape;
            }
            return false;
        }
        let mut keys: Vec<&str> = self.raw().map(|(key, _)| key).collect();
        keys.sort_unstable();
        keys.windows(2).any(|pair| pair[0] == pair[1])
    }
}

struct Packer {
    text: String,
    members: Vec<Member>,
    /// `None`: the object may hold no member at all (a depth limit of 0).
    member_depth: Option<usize>,
}

impl Packer {
    fn push(&mut self, key: &str, value: &str) -> Option<()> {
        let depth = self.member_depth?;
        self.text.push_str(key);
        let key_end = u32::try_from(self.text.len()).ok()?;
        if written_as_is(value) {
            self.text.push_str(value);
        } else {
            // Arrays, objects, escaped strings, other numbers: strictly, on their own.
            let value = json::parse_value(value.as_bytes(), depth).ok()?;
            write!(self.text, "{value}").ok()?;
        }
        let value_end = u32::try_from(self.text.len()).ok()?;
        self.members.push(Member { key_end, value_end });
        Some(())
    }
}

struct PackVisitor<'p>(&'p mut Packer);

impl<'de> Visitor<'de> for PackVisitor<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<(), A::Error> {
        while let Some(key) = access.next_key_seed(KeySeed)? {
            let value: &'de RawValue = access.next_value()?;
            self.0
                .push(&key, value.get())
                .ok_or_else(|| de::Error::custom("refused"))?;
        }
        Ok(())
    }
}

/// A member name, borrowed from the text when it has no escapes.
struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Cow<'de, str>;

    fn deserialize<D: de::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(KeySeed)
    }
}

impl<'de> Visitor<'de> for KeySeed {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a member name")
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v))
    }
}

impl fmt::Debug for Claims {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
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

    /// `Claims::parse` packs exactly what `from_map` packs after the strict parser, and refuses
    /// exactly what the strict parser refuses, with its error.
    #[test]
    fn the_one_pass_reading_agrees_with_the_strict_parser() {
        let deep =
            |levels: usize| format!("{{\"x\":{}1{}}}", "[".repeat(levels), "]".repeat(levels));
        let many_members: String = format!(
            "{{{}}}",
            (0..200)
                .map(|i| format!("\"k{i}\":{i}"))
                .collect::<Vec<_>>()
                .join(",")
        );
        let many_with_duplicate = many_members.replace("\"k150\"", "\"k7\"");
        let texts: Vec<String> = [
            r#"{}"#,
            r#" { "iss" : "https://idp.example.com/" , "exp" : 1764003600 } "#,
            r#"{"aud":["a","b"],"nbf":0,"ok":true,"no":false,"none":null}"#,
            r#"{"big":18446744073709551615,"bigger":18446744073709551616}"#,
            r#"{"neg":-7,"zero":-0,"frac":1.50,"exp":1e3,"e":1E+2,"small":1e-400}"#,
            r#"{"esc":"line\nbreak \"q\" \u00e9 \/","slash":"a/b"}"#,
            r#"{"k\u0065y":"escaped key","":"empty key","ключ":"значение"}"#,
            r#"{"nested":{"z":1,"a":[{"q":"x"}]},"arr":[ 1 , 2 ]}"#,
            // Refused: duplicates at any depth, also when spelled differently.
            r#"{"alg":"none","alg":"RS256"}"#,
            r#"{"a":1,"\u0061":2}"#,
            r#"{"cnf":{"jkt":"a","jkt":"b"}}"#,
            r#"{"x":[{"r":1,"r":2}]}"#,
            // Refused: not JSON, not an object, bad strings, bad numbers, trailing text.
            r#"{"exp":1e400}"#,
            r#"{"a":"\ud800"}"#,
            "{\"a\":\"\u{1}\"}",
            r#"{"a":01}"#,
            r#"{"a":1,}"#,
            r#"{"a" 1}"#,
            r#"{} x"#,
            r#"{"#,
            r#"[]"#,
            r#""x""#,
            r#"[1"#,
            "",
            "  ",
            r#"{"a":tru}"#,
            r#"{'a':1}"#,
            // The hand reading's edges: white space, literals, arrays, numbers, strings.
            "\t{\r\n\"a\" :\ttrue ,\"b\":false,\"c\":null}\n",
            "{\"a\":\u{c}1}",
            "{\"a\":\u{a0}1}",
            r#"{"aud":[],"x":[ "a" , "b" ],"y":["a",1],"z":[["a"]],"w":["a",]}"#,
            r#"{"a":["\u0061"]}"#,
            r#"{"a":[}"#,
            r#"{"a":"b"c"}"#,
            r#"{"a":tru,"b":1}"#,
            r#"{"a":truex}"#,
            r#"{"a":nul}"#,
            r#"{"a":0,"b":00}"#,
            r#"{"a":0}"#,
            r#"{"a":1.}"#,
            r#"{"a":1e}"#,
            r#"{"a":-}"#,
            r#"{"a":123abc}"#,
            r#"{"a":1}}"#,
            r#"{"a":1 "b":2}"#,
            r#"{,"a":1}"#,
            r#"{"a" "b"}"#,
            r#"{"a":"tab	in string"}"#,
            r#"{"a":"é ☃ 𝄞"}"#,
            // Keys of one length and first byte, duplicated or not.
            r#"{"ab":1,"ac":2,"ad":3}"#,
            r#"{"ab":1,"ac":2,"":3,"":4}"#,
            r#"{"ab":1,"ac":2,"ab":3}"#,
        ]
        .iter()
        .map(|t| t.to_string())
        .chain([
            deep(30),
            deep(31),
            deep(40),
            many_members,
            many_with_duplicate,
        ])
        .collect();
        let mut bytes: Vec<Vec<u8>> = texts.iter().map(|t| t.clone().into_bytes()).collect();
        bytes.push(b"{\"a\":\"\xc3\x28\"}".to_vec());
        bytes.push(b"{\"\xff\":1}".to_vec());
        bytes.push(b"{\"a\":\"\x1f\"}".to_vec());
        bytes.push(b"{\"a\":\"\x7f\"}".to_vec());
        bytes.push(b"{\"a\":\"\xed\xa0\x80\"}".to_vec());
        bytes.push(b"{\"a\":[\"\x00\"]}".to_vec());
        bytes.push(b"{\"a\":\"\t\"}".to_vec());
        for text in &bytes {
            for depth in [0, 1, 2, 32] {
                let strict = json::parse_object(text, depth);
                let packed = Claims::parse(text, depth);
                let shown = String::from_utf8_lossy(text);
                // The one pass alone already decides as the strict parser does; the fallback
                // only words the error.
                assert_eq!(
                    pack(text, depth).is_some(),
                    strict.is_ok(),
                    "{shown} at {depth}"
                );
                match (&strict, &packed) {
                    (Ok(object), Ok(claims)) => {
                        assert_eq!(Some(claims), Claims::from_map(object).as_ref(), "{shown}");
                        assert_eq!(&claims.to_map(), object, "{shown}");
                    }
                    (Err(strict), Err(packed)) => assert_eq!(packed, strict, "{shown}"),
                    _ => panic!("{shown} at depth {depth}: {strict:?} vs {packed:?}"),
                }
            }
        }
    }

    /// The index of registered claims says what a scan says, whatever the members' order,
    /// spelling or repetition in the text given to `from_map`.
    #[test]
    fn registered_claims_come_from_the_index_as_a_scan_finds_them() {
        for text in [
            r#"{"iss":"https://idp/","aud":["a"],"exp":1764003600,"nbf":1.5,"scope":"a b"}"#,
            r#"{"scope":["x"],"sub":"exp","exp":"soon","aud":"api","iss":"\u0069ss"}"#,
            r#"{"expx":1,"Exp":2,"ex":3,"iss ":4}"#,
            r#"{}"#,
        ] {
            for claims in [
                Claims::parse(text.as_bytes(), 32).unwrap(),
                Claims::from_map(&json::parse_object(text.as_bytes(), 32).unwrap()).unwrap(),
            ] {
                for (claim, name) in REGISTERED {
                    let scanned = claims.raw_value(name).map(ClaimRef::of);
                    assert_eq!(claims.registered(claim), scanned, "{text} {name}");
                    assert_eq!(claims.lookup(name), scanned, "{text} {name}");
                }
            }
        }
    }

    /// Typical claims are read by hand; every byte-level mutation of them is judged by the hand
    /// reading as by the strict parser (accepted only when the strict parser accepts, packed
    /// as from_map packs).
    #[test]
    fn the_hand_reading_agrees_with_the_strict_parser_on_mutated_claims() {
        let typical = br#"{"iss":"https://idp.example.com/","aud":["api://orders","x"],"sub":"alice@example.com","tenant":"acme","scope":"orders:read orders:write","iat":1763999940,"nbf":1763999940,"exp":1764003600,"admin":false,"jti":null}"#;
        assert!(
            pack_plain(typical, 32).is_some(),
            "the common shape is read by hand"
        );
        let alphabet = b" \t\n\r{}[]:,\"\\0123456789.eE-+truefalsnl\x00\x1f\x7f\xc3\xa9\xff";
        let mut seed = 0x9E37_79B9_7F4A_7C15_u64;
        let mut next = |bound: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % bound as u64) as usize
        };
        for _ in 0..20_000 {
            let mut text = typical.to_vec();
            for _ in 0..1 + next(3) {
                let at = next(text.len());
                match next(3) {
                    0 => text[at] = alphabet[next(alphabet.len())],
                    1 => text.insert(at, alphabet[next(alphabet.len())]),
                    _ => {
                        text.remove(at);
                    }
                }
            }
            let strict = json::parse_object(&text, 32);
            if let Some(plain) = pack_plain(&text, 32) {
                let shown = String::from_utf8_lossy(&text);
                let object = strict.as_ref().unwrap_or_else(|e| panic!("{shown}: {e}"));
                assert_eq!(Some(&plain), Claims::from_map(object).as_ref(), "{shown}");
            }
            assert_eq!(Claims::parse(&text, 32).is_ok(), strict.is_ok());
        }
    }

    #[test]
    fn lookup_reads_plain_strings_and_integers_in_place() {
        let claims = Claims::parse(
            br#"{"iss":"https://idp/","exp":1764003600,"esc":"a\"b","neg":-1,"aud":["x"],"f":1.5}"#,
            32,
        )
        .unwrap();
        assert_eq!(claims.lookup("iss"), Some(ClaimRef::Str("https://idp/")));
        assert_eq!(claims.lookup("exp"), Some(ClaimRef::Uint(1_764_003_600)));
        assert_eq!(claims.lookup("esc"), Some(ClaimRef::Other(r#""a\"b""#)));
        assert_eq!(claims.lookup("neg"), Some(ClaimRef::Other("-1")));
        assert_eq!(claims.lookup("aud"), Some(ClaimRef::Other(r#"["x"]"#)));
        assert_eq!(claims.lookup("f"), Some(ClaimRef::Other("1.5")));
        assert_eq!(claims.lookup("missing"), None);
        assert_eq!(claims.get("esc"), Some(json!("a\"b")));
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
