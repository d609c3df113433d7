//! Compact JWS parsing (RFC 7515 §7.1): exactly three base64url segments, a header and a payload
//! that are strict JSON objects, and header parameters claimgate understands.
//!
//! Parsing never looks at keys or claims; it says only whether the token is well-formed and
//! what it carries. `alg` is kept as written so the `alg` check can explain an unknown or
//! forbidden value instead of calling the token malformed.

use crate::b64::{decode_base64url, Base64Error};
use crate::claims::Claims;
use crate::json::{self, JsonError, TOKEN_MAX_DEPTH};
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::fmt;

/// The longest token accepted, in bytes (checked before any decoding).
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;
/// The longest `kid` accepted, in bytes.
pub const MAX_KID_BYTES: usize = 256;

/// Which part of the token a problem is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Segment {
    Header,
    Payload,
    Signature,
}

impl fmt::Display for Segment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Header => "header",
            Self::Payload => "payload",
            Self::Signature => "signature",
        })
    }
}

/// Why a token is not a well-formed compact JWS. `Display` is the detail that follows
/// `JWT token is malformed: `.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FormatError {
    Empty,
    TooLong {
        bytes: usize,
    },
    /// Five segments: a compact JWE. claimgate holds no decryption keys.
    Encrypted,
    SegmentCount {
        segments: usize,
    },
    Base64 {
        segment: Segment,
        error: Base64Error,
    },
    Json {
        segment: Segment,
        error: JsonError,
    },
    MissingAlgorithm,
    AlgorithmNotString,
    KidNotString,
    KidTooLong {
        bytes: usize,
    },
    MalformedCrit,
    UnsupportedCrit(String),
    /// `zip` is a JWE parameter; compression in a JWS invites decompression bombs.
    Compressed,
    /// `b64` (RFC 7797): JWTs must not use unencoded payloads.
    UnencodedPayload,
    /// `enc` in the header: a JWE header on a three-segment token.
    EncryptionHeader,
    /// `cty: JWT`: a nested token, never unwrapped.
    Nested,
}

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("the token is empty"),
            Self::TooLong { bytes } => write!(
                f,
                "the token is {bytes} bytes; at most {MAX_TOKEN_BYTES} are accepted"
            ),
            Self::Encrypted => f.write_str(
                "it has 5 segments (an encrypted JWE); only signed compact JWS tokens are accepted",
            ),
            Self::SegmentCount { segments } => write!(
                f,
                "it has {segments} segment{}; a compact JWS has 3 separated by dots",
                if *segments == 1 { "" } else { "s" }
            ),
            Self::Base64 { segment, error } => write!(f, "the {segment} is not base64url: {error}"),
            Self::Json { segment, error } => match error {
                JsonError::DuplicateMember(name) => {
                    write!(f, "the {segment} has duplicate member '{name}'")
                }
                other => write!(f, "the {segment} is {other}"),
            },
            Self::MissingAlgorithm => f.write_str("the header has no 'alg'"),
            Self::AlgorithmNotString => f.write_str("the header's 'alg' is not a string"),
            Self::KidNotString => f.write_str("the header's 'kid' is not a string"),
            Self::KidTooLong { bytes } => write!(
                f,
                "the header's 'kid' is {bytes} bytes; at most {MAX_KID_BYTES} are accepted"
            ),
            Self::MalformedCrit => {
                f.write_str("the header's 'crit' is not a non-empty list of names")
            }
            Self::UnsupportedCrit(name) => {
                write!(f, "unsupported critical header parameter '{name}'")
            }
            Self::Compressed => {
                f.write_str("the header has 'zip'; compressed tokens are not accepted")
            }
            Self::UnencodedPayload => {
                f.write_str("the header has 'b64'; unencoded payloads are not accepted")
            }
            Self::EncryptionHeader => {
                f.write_str("the header has 'enc'; encrypted tokens are not accepted")
            }
            Self::Nested => f.write_str("the header has cty 'JWT'; nested tokens are not accepted"),
        }
    }
}

impl std::error::Error for FormatError {}

/// The protected header, as far as claimgate reads it.
#[derive(Debug, Clone)]
pub struct Header {
    /// `alg` exactly as written.
    pub alg: String,
    pub kid: Option<String>,
    /// The whole header, for display.
    pub members: Map<String, Value>,
}

/// A well-formed compact JWS. Its signature has not been checked.
#[derive(Debug, Clone)]
pub struct ParsedToken {
    pub header: Header,
    /// The claims. Untrusted until a signature check passes.
    pub payload: Map<String, Value>,
    signing_input: Box<str>,
    signature: Vec<u8>,
}

impl ParsedToken {
    /// Parses a compact JWS. The dots are counted before anything is split or decoded, so an
    /// input made of a million dots costs one pass. (The verdict reads tokens with [`Jws::parse`],
    /// which accepts the same tokens without building JSON trees.)
    pub fn parse(token: &str) -> Result<Self, FormatError> {
        let (header_b64, payload_b64, signature_b64) = split(token)?;
        let header_bytes = decode_base64url(header_b64).map_err(|error| FormatError::Base64 {
            segment: Segment::Header,
            error,
        })?;
        let members = json::parse_object(&header_bytes, TOKEN_MAX_DEPTH).map_err(|error| {
            FormatError::Json {
                segment: Segment::Header,
                error,
            }
        })?;
        let header = read_header(members)?;
        let payload_bytes = decode_base64url(payload_b64).map_err(|error| FormatError::Base64 {
            segment: Segment::Payload,
            error,
        })?;
        let payload = json::parse_object(&payload_bytes, TOKEN_MAX_DEPTH).map_err(|error| {
            FormatError::Json {
                segment: Segment::Payload,
                error,
            }
        })?;
        let signature = decode_base64url(signature_b64).map_err(|error| FormatError::Base64 {
            segment: Segment::Signature,
            error,
        })?;
        Ok(Self {
            header,
            payload,
            signing_input: token[..header_b64.len() + 1 + payload_b64.len()].into(),
            signature,
        })
    }

    /// The bytes the signature covers: `base64url(header) '.' base64url(payload)`.
    pub fn signing_input(&self) -> &[u8] {
        self.signing_input.as_bytes()
    }

    /// The decoded signature.
    pub fn signature(&self) -> &[u8] {
        &self.signature
    }
}

fn read_header(members: Map<String, Value>) -> Result<Header, FormatError> {
    let (alg, kid) = header_rules(|name| members.get(name).map(Cow::Borrowed))?;
    Ok(Header { alg, kid, members })
}

/// The header rules, on a header whose member `name` is `member(name)`: the `alg` and `kid`,
/// or why the header is refused.
fn header_rules<'h>(
    member: impl Fn(&str) -> Option<Cow<'h, Value>>,
) -> Result<(String, Option<String>), FormatError> {
    // Order matters only for which problem is named first; every branch refuses.
    if member("enc").is_some() {
        return Err(FormatError::EncryptionHeader);
    }
    if let Some(crit) = member("crit") {
        let names = crit.as_array().filter(|names| !names.is_empty());
        let Some(names) = names else {
            return Err(FormatError::MalformedCrit);
        };
        // claimgate implements no JWS extension, so any named parameter is unsupported.
        return Err(match names.first().and_then(Value::as_str) {
            Some(name) => FormatError::UnsupportedCrit(name.to_owned()),
            None => FormatError::MalformedCrit,
        });
    }
    if member("b64").is_some() {
        return Err(FormatError::UnencodedPayload);
    }
    if member("zip").is_some() {
        return Err(FormatError::Compressed);
    }
    if member("cty")
        .as_deref()
        .and_then(Value::as_str)
        .is_some_and(|cty| cty.eq_ignore_ascii_case("JWT"))
    {
        return Err(FormatError::Nested);
    }
    let alg = match member("alg").as_deref() {
        None => return Err(FormatError::MissingAlgorithm),
        Some(Value::String(alg)) => alg.clone(),
        Some(_) => return Err(FormatError::AlgorithmNotString),
    };
    let kid = match member("kid").as_deref() {
        None => None,
        Some(Value::String(kid)) if kid.len() > MAX_KID_BYTES => {
            return Err(FormatError::KidTooLong { bytes: kid.len() })
        }
        Some(Value::String(kid)) => Some(kid.clone()),
        Some(_) => return Err(FormatError::KidNotString),
    };
    Ok((alg, kid))
}

/// A compact JWS read for verification in one pass: its header's `alg` and `kid`, its claims
/// packed ([`Claims`]) straight from the payload's text, the signing input (borrowed) and the
/// signature. It accepts and refuses exactly what [`ParsedToken::parse`] does, with the same
/// errors (the tests hold the two together over the JOSE vectors), but builds no JSON tree for
/// the header or the claims: this is how the verdict reads a token.
#[derive(Debug, Clone)]
pub struct Jws<'t> {
    /// `alg` exactly as written.
    pub alg: String,
    pub kid: Option<String>,
    /// The claims. Untrusted until a signature check passes.
    pub claims: Claims,
    signing_input: &'t str,
    signature: Vec<u8>,
}

/// One base64url segment decoded and read into packed claims, its failures named by segment.
fn packed_segment(text: &str, segment: Segment) -> Result<Claims, FormatError> {
    let bytes = decode_base64url(text).map_err(|error| FormatError::Base64 { segment, error })?;
    Claims::parse(&bytes, TOKEN_MAX_DEPTH).map_err(|error| FormatError::Json { segment, error })
}

impl<'t> Jws<'t> {
    /// Parses a compact JWS, as [`ParsedToken::parse`] does.
    pub fn parse(token: &'t str) -> Result<Self, FormatError> {
        let (header_b64, payload_b64, signature_b64) = split(token)?;
        let header = packed_segment(header_b64, Segment::Header)?;
        let (alg, kid) = header_rules(|name| header.get(name).map(Cow::Owned))?;
        let claims = packed_segment(payload_b64, Segment::Payload)?;
        let signature = decode_base64url(signature_b64).map_err(|error| FormatError::Base64 {
            segment: Segment::Signature,
            error,
        })?;
        Ok(Self {
            alg,
            kid,
            claims,
            signing_input: &token[..header_b64.len() + 1 + payload_b64.len()],
            signature,
        })
    }

    /// The bytes the signature covers: `base64url(header) '.' base64url(payload)`.
    pub fn signing_input(&self) -> &[u8] {
        self.signing_input.as_bytes()
    }

    /// The decoded signature.
    pub fn signature(&self) -> &[u8] {
        &self.signature
    }
}

/// Whether `token` is shaped like a compact JWS before anything is decoded: not empty, not too
/// long, three segments. The dots are counted first, so an input made of a million dots costs
/// one pass.
fn split(token: &str) -> Result<(&str, &str, &str), FormatError> {
    if token.is_empty() {
        return Err(FormatError::Empty);
    }
    if token.len() > MAX_TOKEN_BYTES {
        return Err(FormatError::TooLong { bytes: token.len() });
    }
    // Two dots and no third (each found by a memchr-like search); the count, which names the
    // problem, only when that is not so.
    if let Some((header, rest)) = token.split_once('.') {
        if let Some((payload, signature)) = rest.split_once('.') {
            if !signature.contains('.') {
                return Ok((header, payload, signature));
            }
        }
    }
    match token.bytes().filter(|b| *b == b'.').count() {
        4 => Err(FormatError::Encrypted),
        dots => Err(FormatError::SegmentCount { segments: dots + 1 }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;

    fn b64(text: &str) -> String {
        URL_SAFE_NO_PAD.encode(text)
    }

    fn token(header: &str, payload: &str) -> String {
        format!("{}.{}.{}", b64(header), b64(payload), b64("sig"))
    }

    #[test]
    fn parses_a_well_formed_token() {
        let parsed =
            ParsedToken::parse(&token(r#"{"alg":"RS256","kid":"k1"}"#, r#"{"sub":"a"}"#)).unwrap();
        assert_eq!(parsed.header.alg, "RS256");
        assert_eq!(parsed.header.kid.as_deref(), Some("k1"));
        assert_eq!(parsed.payload["sub"], "a");
        assert_eq!(parsed.signature(), b"sig");
        assert!(parsed
            .signing_input()
            .ends_with(b64(r#"{"sub":"a"}"#).as_bytes()));
    }

    #[test]
    fn counts_segments_before_decoding() {
        assert_eq!(
            ParsedToken::parse("a.b").unwrap_err(),
            FormatError::SegmentCount { segments: 2 }
        );
        assert_eq!(
            ParsedToken::parse("a.b.c.d").unwrap_err(),
            FormatError::SegmentCount { segments: 4 }
        );
        assert_eq!(
            ParsedToken::parse("a.b.c.d.e").unwrap_err(),
            FormatError::Encrypted
        );
        let dots = ".".repeat(8000);
        assert!(matches!(
            ParsedToken::parse(&dots).unwrap_err(),
            FormatError::SegmentCount { .. }
        ));
    }

    #[test]
    fn refuses_oversized_tokens() {
        let long = "a".repeat(MAX_TOKEN_BYTES + 1);
        assert_eq!(
            ParsedToken::parse(&long).unwrap_err(),
            FormatError::TooLong {
                bytes: MAX_TOKEN_BYTES + 1
            }
        );
    }

    #[test]
    fn refuses_header_extensions() {
        let cases = [
            (
                r#"{"alg":"RS256","crit":["exp"]}"#,
                FormatError::UnsupportedCrit("exp".into()),
            ),
            (r#"{"alg":"RS256","crit":[]}"#, FormatError::MalformedCrit),
            (
                r#"{"alg":"RS256","crit":"b64"}"#,
                FormatError::MalformedCrit,
            ),
            (
                r#"{"alg":"RS256","crit":[null]}"#,
                FormatError::MalformedCrit,
            ),
            (
                r#"{"alg":"RS256","b64":false}"#,
                FormatError::UnencodedPayload,
            ),
            (r#"{"alg":"RS256","zip":"DEF"}"#, FormatError::Compressed),
            (
                r#"{"alg":"RSA-OAEP","enc":"A256GCM"}"#,
                FormatError::EncryptionHeader,
            ),
            (r#"{"alg":"RS256","cty":"jwt"}"#, FormatError::Nested),
            (r#"{"kid":"k"}"#, FormatError::MissingAlgorithm),
            (r#"{"alg":1}"#, FormatError::AlgorithmNotString),
            (r#"{"alg":null}"#, FormatError::AlgorithmNotString),
            (r#"{"alg":"RS256","kid":123}"#, FormatError::KidNotString),
        ];
        for (header, expected) in cases {
            assert_eq!(
                ParsedToken::parse(&token(header, "{}")).unwrap_err(),
                expected,
                "{header}"
            );
        }
    }

    #[test]
    fn refuses_oversized_kid() {
        let header = format!(
            r#"{{"alg":"RS256","kid":"{}"}}"#,
            "A".repeat(MAX_KID_BYTES + 1)
        );
        assert!(matches!(
            ParsedToken::parse(&token(&header, "{}")).unwrap_err(),
            FormatError::KidTooLong { .. }
        ));
    }

    #[test]
    fn refuses_non_object_json() {
        for (header, payload) in [
            (r#""x""#, "{}"),
            ("[]", "{}"),
            (r#"{"alg":"RS256"}"#, "[1]"),
        ] {
            assert!(matches!(
                ParsedToken::parse(&token(header, payload)).unwrap_err(),
                FormatError::Json {
                    error: JsonError::NotAnObject,
                    ..
                }
            ));
        }
    }

    #[test]
    fn refuses_duplicate_members() {
        let err = ParsedToken::parse(&token(r#"{"alg":"none","alg":"RS256"}"#, "{}")).unwrap_err();
        assert_eq!(
            err,
            FormatError::Json {
                segment: Segment::Header,
                error: JsonError::DuplicateMember("alg".into())
            }
        );
        assert_eq!(err.to_string(), "the header has duplicate member 'alg'");
    }

    /// The verdict's one-pass reading accepts and refuses what `ParsedToken::parse` does.
    #[test]
    fn the_one_pass_reading_agrees_with_the_tree() {
        let headers = [
            r#"{"alg":"RS256","kid":"k1","typ":"JWT"}"#,
            r#"{"alg":"RS256","crit":["exp"]}"#,
            r#"{"alg":"RS256","crit":[]}"#,
            r#"{"alg":"RS256","crit":[null]}"#,
            r#"{"alg":"RS256","b64":false}"#,
            r#"{"alg":"RS256","zip":"DEF"}"#,
            r#"{"alg":"RSA-OAEP","enc":"A256GCM"}"#,
            r#"{"alg":"RS256","cty":"jwt"}"#,
            r#"{"alg":"RS256","cty":"JOSE"}"#,
            r#"{"kid":"k"}"#,
            r#"{"alg":1}"#,
            r#"{"alg":"RS\u0032\u00356"}"#,
            r#"{"alg":"RS256","kid":123}"#,
            r#"{"alg":"none","alg":"RS256"}"#,
            r#"{"alg":"RS256","x":{"a":1,"a":2}}"#,
            "[]",
            "{",
        ];
        let payloads = [
            r#"{"sub":"a","exp":1764003600,"aud":["x","y"]}"#,
            r#"{"sub":"a","sub":"b"}"#,
            r#"{"exp":1e400}"#,
            "[1]",
            "null",
            "",
        ];
        let long_kid = format!(
            r#"{{"alg":"RS256","kid":"{}"}}"#,
            "A".repeat(MAX_KID_BYTES + 1)
        );
        let mut tokens = vec![
            String::new(),
            "a.b".into(),
            "a.b.c.d.e".into(),
            "e30.e30.AQ==".into(),
            "e30.e30.A".into(),
            "eyJhbGciOiJSUzI1NiJ9.e30.c2lnbmF0dXJl+".into(),
            token(&long_kid, "{}"),
            "x".repeat(MAX_TOKEN_BYTES + 1),
        ];
        for header in headers {
            for payload in payloads {
                tokens.push(token(header, payload));
            }
        }
        for raw in &tokens {
            match (ParsedToken::parse(raw), Jws::parse(raw)) {
                (Ok(tree), Ok(lean)) => {
                    assert_eq!(lean.alg, tree.header.alg, "{raw}");
                    assert_eq!(lean.kid, tree.header.kid, "{raw}");
                    assert_eq!(lean.signing_input(), tree.signing_input());
                    assert_eq!(lean.signature(), tree.signature());
                    assert_eq!(Some(lean.claims), Claims::from_map(&tree.payload), "{raw}");
                }
                (Err(tree), Err(lean)) => assert_eq!(lean, tree, "{raw}"),
                (tree, lean) => panic!("{raw}: {tree:?} vs {lean:?}"),
            }
        }
        assert!(Jws::parse(&token(headers[0], payloads[0])).is_ok());
    }

    #[test]
    fn messages_name_the_problem() {
        assert_eq!(
            FormatError::UnsupportedCrit("x".into()).to_string(),
            "unsupported critical header parameter 'x'"
        );
    }
}
