//! Verification keys from JWK (RFC 7517/7518/8037) and PEM, and key sets from JWKS documents.
//!
//! A [`PublicKey`] exists only if it is usable for verification: public members only, `use` and
//! `key_ops` allowing signatures, RSA between 2048 and 8192 bits with a sane exponent, EC points
//! on their curve with full-size coordinates, Ed25519 only among OKP curves. The algorithms a key
//! allows are fixed when it is parsed (its own `alg`, else its family) and never widened by a
//! token.

use crate::alg::{Algorithm, AlgorithmSet};
use crate::b64::{decode_base64url, Base64Error};
use crate::json::{self, JsonError};
use aws_lc_rs::signature::{self, ParsedPublicKey, RsaPublicKeyComponents};
use base64::Engine as _;
use serde_json::{Map, Value};
use std::fmt;

/// Smallest RSA modulus accepted (RFC 7518 §3.3).
pub const RSA_MIN_BITS: u32 = 2048;
/// Largest RSA modulus accepted; bigger keys only cost CPU (a denial-of-service lever).
pub const RSA_MAX_BITS: u32 = 8192;
/// Keys read from one JWKS document at most (OCI allows 10; SPEC allows 100).
pub const JWKS_MAX_KEYS: usize = 100;

/// The family and size of a key, for messages and algorithm rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    Rsa { bits: u32 },
    Ec { curve: Curve },
    Ed25519,
}

/// The NIST curves JOSE uses for ECDSA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Curve {
    P256,
    P384,
    P521,
}

impl Curve {
    fn from_name(name: &str) -> Option<Self> {
        match name {
            "P-256" => Some(Self::P256),
            "P-384" => Some(Self::P384),
            "P-521" => Some(Self::P521),
            _ => None,
        }
    }

    /// The JWK `crv` name.
    pub fn name(self) -> &'static str {
        match self {
            Self::P256 => "P-256",
            Self::P384 => "P-384",
            Self::P521 => "P-521",
        }
    }

    fn coordinate_len(self) -> usize {
        match self {
            Self::P256 => 32,
            Self::P384 => 48,
            Self::P521 => 66,
        }
    }

    fn algorithm(self) -> Algorithm {
        match self {
            Self::P256 => Algorithm::ES256,
            Self::P384 => Algorithm::ES384,
            Self::P521 => Algorithm::ES512,
        }
    }

    fn verification(self) -> &'static signature::EcdsaVerificationAlgorithm {
        match self {
            Self::P256 => &signature::ECDSA_P256_SHA256_FIXED,
            Self::P384 => &signature::ECDSA_P384_SHA384_FIXED,
            Self::P521 => &signature::ECDSA_P521_SHA512_FIXED,
        }
    }
}

impl KeyKind {
    /// Every algorithm this family of key can verify.
    pub fn family_algorithms(self) -> AlgorithmSet {
        use Algorithm::*;
        match self {
            Self::Rsa { .. } => AlgorithmSet::of(&[RS256, RS384, RS512, PS256, PS384, PS512]),
            Self::Ec { curve } => AlgorithmSet::of(&[curve.algorithm()]),
            Self::Ed25519 => AlgorithmSet::of(&[EdDSA, Ed25519]),
        }
    }

    /// The JWK `kty`.
    pub fn kty(self) -> &'static str {
        match self {
            Self::Rsa { .. } => "RSA",
            Self::Ec { .. } => "EC",
            Self::Ed25519 => "OKP",
        }
    }
}

impl fmt::Display for KeyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Rsa { bits } => write!(f, "RSA {bits}-bit"),
            Self::Ec { curve } => write!(f, "EC {}", curve.name()),
            Self::Ed25519 => f.write_str("OKP Ed25519"),
        }
    }
}

/// Why a JWK or PEM document does not yield a usable verification key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyError {
    NotAnObject,
    MissingMember(&'static str),
    WrongType {
        member: String,
        expected: &'static str,
    },
    UnsupportedKty(String),
    UnsupportedCurve(String),
    PrivateMember(String),
    WrongUse(String),
    KeyOpsWithoutVerify(Vec<String>),
    UnknownAlgorithm(String),
    AlgorithmNotForKey {
        alg: String,
        kind: String,
    },
    Base64 {
        member: &'static str,
        error: Base64Error,
    },
    CoordinateLength {
        member: &'static str,
        expected: usize,
        actual: usize,
    },
    RsaTooSmall(u32),
    RsaTooLarge(u32),
    BadExponent(String),
    InvalidKey(String),
    Pem(String),
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotAnObject => f.write_str("a JWK must be a JSON object"),
            Self::MissingMember(name) => write!(f, "member '{name}' is required"),
            Self::WrongType { member, expected } => {
                write!(f, "member '{member}' must be {expected}")
            }
            Self::UnsupportedKty(kty) if kty == "oct" => f.write_str(
                "kty 'oct' (a shared secret) is not accepted: only public keys verify tokens",
            ),
            Self::UnsupportedKty(kty) => {
                write!(f, "kty '{kty}' is not supported (RSA, EC or OKP)")
            }
            Self::UnsupportedCurve(crv) => {
                write!(
                    f,
                    "curve '{crv}' is not supported (P-256, P-384, P-521, Ed25519)"
                )
            }
            Self::PrivateMember(name) => write!(
                f,
                "the key carries private member '{name}': publish only the public key"
            ),
            Self::WrongUse(value) => write!(f, "use is '{value}', not 'sig'"),
            Self::KeyOpsWithoutVerify(ops) => {
                write!(f, "key_ops {ops:?} does not include 'verify'")
            }
            Self::UnknownAlgorithm(alg) => write!(f, "alg '{alg}' is not supported"),
            Self::AlgorithmNotForKey { alg, kind } => {
                write!(f, "alg '{alg}' cannot be used with a {kind} key")
            }
            Self::Base64 { member, error } => write!(f, "member '{member}': {error}"),
            Self::CoordinateLength {
                member,
                expected,
                actual,
            } => write!(
                f,
                "member '{member}' is {actual} bytes; this curve needs exactly {expected}"
            ),
            Self::RsaTooSmall(bits) => write!(
                f,
                "RSA key is {bits} bits; at least {RSA_MIN_BITS} are required (RFC 7518 §3.3)"
            ),
            Self::RsaTooLarge(bits) => {
                write!(
                    f,
                    "RSA key is {bits} bits; at most {RSA_MAX_BITS} are accepted"
                )
            }
            Self::BadExponent(why) => write!(f, "RSA exponent {why}"),
            Self::InvalidKey(why) => write!(f, "not a valid public key ({why})"),
            Self::Pem(why) => write!(f, "PEM: {why}"),
        }
    }
}

impl std::error::Error for KeyError {}

/// A public key ready to verify signatures.
#[derive(Clone)]
pub struct PublicKey {
    kid: Option<String>,
    kind: KeyKind,
    allowed: AlgorithmSet,
    /// One parsed key per algorithm it allows (RSA keys need one per padding and hash).
    verifiers: Vec<(Algorithm, ParsedPublicKey)>,
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublicKey")
            .field("kid", &self.kid)
            .field("kind", &self.kind)
            .field("allowed", &self.allowed)
            .finish()
    }
}

impl PublicKey {
    /// Parses a JWK given as a JSON object.
    pub fn from_jwk(jwk: &Map<String, Value>) -> Result<Self, KeyError> {
        for private in ["d", "p", "q", "dp", "dq", "qi", "oth", "k"] {
            if jwk.contains_key(private) {
                if private == "k" && jwk.get("kty").and_then(Value::as_str) == Some("oct") {
                    return Err(KeyError::UnsupportedKty("oct".into()));
                }
                return Err(KeyError::PrivateMember(private.into()));
            }
        }
        let kty = required_str(jwk, "kty")?;
        let kid = optional_str(jwk, "kid")?.map(str::to_owned);
        if let Some(usage) = optional_str(jwk, "use")? {
            if usage != "sig" {
                return Err(KeyError::WrongUse(usage.into()));
            }
        }
        if let Some(ops) = jwk.get("key_ops") {
            let ops = string_array(ops, "key_ops")?;
            if !ops.iter().any(|op| op == "verify") {
                return Err(KeyError::KeyOpsWithoutVerify(ops));
            }
        }
        let declared_alg = optional_str(jwk, "alg")?;
        let (kind, verify_material) = match kty {
            "RSA" => {
                let n = b64_member(jwk, "n")?;
                let e = b64_member(jwk, "e")?;
                (rsa_kind(&n, &e)?, Material::Rsa { n, e })
            }
            "EC" => {
                let crv = required_str(jwk, "crv")?;
                let curve =
                    Curve::from_name(crv).ok_or_else(|| KeyError::UnsupportedCurve(crv.into()))?;
                let x = b64_member(jwk, "x")?;
                let y = b64_member(jwk, "y")?;
                for (member, coordinate) in [("x", &x), ("y", &y)] {
                    if coordinate.len() != curve.coordinate_len() {
                        return Err(KeyError::CoordinateLength {
                            member,
                            expected: curve.coordinate_len(),
                            actual: coordinate.len(),
                        });
                    }
                }
                let mut point = Vec::with_capacity(1 + x.len() + y.len());
                point.push(0x04);
                point.extend_from_slice(&x);
                point.extend_from_slice(&y);
                (KeyKind::Ec { curve }, Material::Encoded(point))
            }
            "OKP" => {
                let crv = required_str(jwk, "crv")?;
                if crv != "Ed25519" {
                    return Err(KeyError::UnsupportedCurve(crv.into()));
                }
                let x = b64_member(jwk, "x")?;
                if x.len() != 32 {
                    return Err(KeyError::CoordinateLength {
                        member: "x",
                        expected: 32,
                        actual: x.len(),
                    });
                }
                (KeyKind::Ed25519, Material::Encoded(x))
            }
            other => return Err(KeyError::UnsupportedKty(other.into())),
        };
        let allowed = match declared_alg {
            None => kind.family_algorithms(),
            Some(name) => {
                let alg = Algorithm::from_name(name)
                    .ok_or_else(|| KeyError::UnknownAlgorithm(name.into()))?;
                if !kind.family_algorithms().contains(alg) {
                    return Err(KeyError::AlgorithmNotForKey {
                        alg: name.into(),
                        kind: kind.to_string(),
                    });
                }
                // EdDSA and Ed25519 name the same algorithm; a key declaring one verifies both.
                if kind == KeyKind::Ed25519 {
                    kind.family_algorithms()
                } else {
                    AlgorithmSet::of(&[alg])
                }
            }
        };
        Self::build(kid, kind, allowed, &verify_material)
    }

    /// Parses a PEM `PUBLIC KEY` (SubjectPublicKeyInfo) or `RSA PUBLIC KEY` (PKCS#1) document.
    pub fn from_pem(pem: &str, kid: Option<String>) -> Result<Self, KeyError> {
        let der = decode_pem(pem)?;
        if let Ok(rsa) = aws_lc_rs::rsa::PublicKey::from_der(&der) {
            let n = rsa.modulus().big_endian_without_leading_zero().to_vec();
            let e = rsa.exponent().big_endian_without_leading_zero().to_vec();
            let kind = rsa_kind(&n, &e)?;
            return Self::build(kid, kind, kind.family_algorithms(), &Material::Rsa { n, e });
        }
        for curve in [Curve::P256, Curve::P384, Curve::P521] {
            if ParsedPublicKey::new(curve.verification(), &der).is_ok() {
                let kind = KeyKind::Ec { curve };
                return Self::build(kid, kind, kind.family_algorithms(), &Material::Encoded(der));
            }
        }
        if der.len() != 32 && ParsedPublicKey::new(&signature::ED25519, &der).is_ok() {
            let kind = KeyKind::Ed25519;
            return Self::build(kid, kind, kind.family_algorithms(), &Material::Encoded(der));
        }
        Err(KeyError::Pem(
            "not an RSA, EC (P-256/384/521) or Ed25519 public key".into(),
        ))
    }

    fn build(
        kid: Option<String>,
        kind: KeyKind,
        allowed: AlgorithmSet,
        material: &Material,
    ) -> Result<Self, KeyError> {
        let mut verifiers = Vec::new();
        for alg in allowed.iter() {
            let parsed = match material {
                Material::Rsa { n, e } => RsaPublicKeyComponents { n, e }
                    .to_parsed_public_key(rsa_parameters(alg))
                    .map_err(|e| KeyError::InvalidKey(e.to_string()))?,
                Material::Encoded(bytes) => {
                    let verification: &'static dyn signature::VerificationAlgorithm = match kind {
                        KeyKind::Ec { curve } => curve.verification(),
                        _ => &signature::ED25519,
                    };
                    ParsedPublicKey::new(verification, bytes)
                        .map_err(|e| KeyError::InvalidKey(e.to_string()))?
                }
            };
            verifiers.push((alg, parsed));
        }
        Ok(Self {
            kid,
            kind,
            allowed,
            verifiers,
        })
    }

    /// The key id, if the key has one.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// The key's family and size.
    pub fn kind(&self) -> KeyKind {
        self.kind
    }

    /// The algorithms this key verifies.
    pub fn allowed(&self) -> AlgorithmSet {
        self.allowed
    }

    /// Gives the key an id (static keys carry theirs beside the JWK).
    #[must_use]
    pub fn with_kid(mut self, kid: String) -> Self {
        self.kid = Some(kid);
        self
    }

    /// Verifies `signature` over `message` with `alg`. An algorithm the key does not allow
    /// never verifies.
    pub fn verify(&self, alg: Algorithm, message: &[u8], signature: &[u8]) -> bool {
        self.verifiers
            .iter()
            .find(|(allowed, _)| *allowed == alg)
            .is_some_and(|(_, key)| key.verify_sig(message, signature).is_ok())
    }
}

enum Material {
    Rsa { n: Vec<u8>, e: Vec<u8> },
    Encoded(Vec<u8>),
}

fn rsa_parameters(alg: Algorithm) -> &'static signature::RsaParameters {
    match alg {
        Algorithm::RS256 => &signature::RSA_PKCS1_2048_8192_SHA256,
        Algorithm::RS384 => &signature::RSA_PKCS1_2048_8192_SHA384,
        Algorithm::RS512 => &signature::RSA_PKCS1_2048_8192_SHA512,
        Algorithm::PS256 => &signature::RSA_PSS_2048_8192_SHA256,
        Algorithm::PS384 => &signature::RSA_PSS_2048_8192_SHA384,
        _ => &signature::RSA_PSS_2048_8192_SHA512,
    }
}

fn rsa_kind(n: &[u8], e: &[u8]) -> Result<KeyKind, KeyError> {
    let n = strip_leading_zeros(n);
    let e = strip_leading_zeros(e);
    let bits = match n.first() {
        None => 0,
        Some(&top) => (n.len() as u32 - 1) * 8 + (8 - top.leading_zeros()),
    };
    if bits < RSA_MIN_BITS {
        return Err(KeyError::RsaTooSmall(bits));
    }
    if bits > RSA_MAX_BITS {
        return Err(KeyError::RsaTooLarge(bits));
    }
    if e.len() > 4 {
        return Err(KeyError::BadExponent("is larger than 2^32".into()));
    }
    let exponent = e.iter().fold(0u64, |acc, b| acc << 8 | u64::from(*b));
    if exponent < 3 || exponent % 2 == 0 {
        return Err(KeyError::BadExponent(format!(
            "is {exponent}; it must be odd and at least 3"
        )));
    }
    Ok(KeyKind::Rsa { bits })
}

fn strip_leading_zeros(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    &bytes[start..]
}

fn required_str<'a>(jwk: &'a Map<String, Value>, name: &'static str) -> Result<&'a str, KeyError> {
    optional_str(jwk, name)?.ok_or(KeyError::MissingMember(name))
}

fn optional_str<'a>(jwk: &'a Map<String, Value>, name: &str) -> Result<Option<&'a str>, KeyError> {
    match jwk.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(KeyError::WrongType {
            member: name.into(),
            expected: "a string",
        }),
    }
}

fn string_array(value: &Value, name: &str) -> Result<Vec<String>, KeyError> {
    let wrong = || KeyError::WrongType {
        member: name.into(),
        expected: "an array of strings",
    };
    value
        .as_array()
        .ok_or_else(wrong)?
        .iter()
        .map(|item| item.as_str().map(str::to_owned).ok_or_else(wrong))
        .collect()
}

fn b64_member(jwk: &Map<String, Value>, name: &'static str) -> Result<Vec<u8>, KeyError> {
    let text = required_str(jwk, name)?;
    decode_base64url(text).map_err(|error| KeyError::Base64 {
        member: name,
        error,
    })
}

/// Decodes one PEM block. Written here rather than taken from a crate because it is a dozen
/// lines and the only PEM claimgate reads is a public key.
fn decode_pem(pem: &str) -> Result<Vec<u8>, KeyError> {
    let text = pem.trim();
    let (label, rest) = text
        .strip_prefix("-----BEGIN ")
        .and_then(|rest| rest.split_once("-----"))
        .ok_or_else(|| KeyError::Pem("missing '-----BEGIN PUBLIC KEY-----'".into()))?;
    if label != "PUBLIC KEY" && label != "RSA PUBLIC KEY" {
        return Err(KeyError::Pem(format!(
            "'{label}' is not a public key (expected 'PUBLIC KEY')"
        )));
    }
    let end_marker = format!("-----END {label}-----");
    let body = rest
        .strip_suffix(end_marker.as_str())
        .ok_or_else(|| KeyError::Pem(format!("missing '{end_marker}' at the end")))?;
    let compact: String = body.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    base64::engine::general_purpose::STANDARD
        .decode(compact)
        .map_err(|e| KeyError::Pem(format!("body is not base64 ({e})")))
}

/// An ordered set of verification keys.
#[derive(Debug, Clone, Default)]
pub struct KeySet {
    keys: Vec<PublicKey>,
}

impl KeySet {
    /// A set of the given keys.
    pub fn new(keys: Vec<PublicKey>) -> Self {
        Self { keys }
    }

    /// All keys, in order.
    pub fn keys(&self) -> &[PublicKey] {
        &self.keys
    }

    /// Whether the set has no key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Every algorithm some key allows.
    pub fn algorithms(&self) -> AlgorithmSet {
        self.keys
            .iter()
            .fold(AlgorithmSet::EMPTY, |set, key| set.union(key.allowed()))
    }
}

/// A JWKS document that could not be used at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwksError {
    Json(JsonError),
    NoKeysArray,
    TooManyKeys(usize),
}

impl fmt::Display for JwksError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Json(e) => write!(f, "not a JSON Web Key Set: {e}"),
            Self::NoKeysArray => f.write_str("not a JSON Web Key Set: no 'keys' array"),
            Self::TooManyKeys(n) => {
                write!(
                    f,
                    "the key set holds {n} keys; at most {JWKS_MAX_KEYS} are read"
                )
            }
        }
    }
}

impl std::error::Error for JwksError {}

/// A key of a JWKS that was left out, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedKey {
    pub index: usize,
    pub kid: Option<String>,
    pub reason: String,
}

/// The usable keys of a JWKS document and the ones that were left out.
#[derive(Debug, Clone, Default)]
pub struct JwksParse {
    pub keys: KeySet,
    pub skipped: Vec<SkippedKey>,
}

/// Reads a JWKS document (RFC 7517 §5). Unusable keys are skipped one by one with a reason, so
/// one odd key does not take the whole set down; keys sharing a `kid` within one family are all
/// skipped, because choosing one of them would be a guess.
pub fn parse_jwks(bytes: &[u8]) -> Result<JwksParse, JwksError> {
    let document = json::parse_object(bytes, 16).map_err(JwksError::Json)?;
    let entries = document
        .get("keys")
        .and_then(Value::as_array)
        .ok_or(JwksError::NoKeysArray)?;
    if entries.len() > JWKS_MAX_KEYS {
        return Err(JwksError::TooManyKeys(entries.len()));
    }
    let mut parsed: Vec<(usize, PublicKey)> = Vec::new();
    let mut skipped = Vec::new();
    for (index, entry) in entries.iter().enumerate() {
        let kid = entry.get("kid").and_then(Value::as_str).map(str::to_owned);
        let result = entry
            .as_object()
            .ok_or(KeyError::NotAnObject)
            .and_then(PublicKey::from_jwk);
        match result {
            Ok(key) => parsed.push((index, key)),
            Err(error) => skipped.push(SkippedKey {
                index,
                kid,
                reason: error.to_string(),
            }),
        }
    }
    let ambiguous = |key: &PublicKey| {
        key.kid().is_some()
            && parsed
                .iter()
                .filter(|(_, other)| {
                    other.kid() == key.kid() && other.kind().kty() == key.kind().kty()
                })
                .count()
                > 1
    };
    let mut keys = Vec::new();
    for (index, key) in &parsed {
        if ambiguous(key) {
            skipped.push(SkippedKey {
                index: *index,
                kid: key.kid().map(str::to_owned),
                reason: format!(
                    "kid '{}' is used by more than one {} key",
                    key.kid().unwrap_or_default(),
                    key.kind().kty()
                ),
            });
        } else {
            keys.push(key.clone());
        }
    }
    skipped.sort_by_key(|s| s.index);
    Ok(JwksParse {
        keys: KeySet::new(keys),
        skipped,
    })
}
