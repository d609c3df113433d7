//! Strict JOSE for claimgate: compact JWS parsing, public keys (JWK and PEM) and signature
//! verification.
//!
//! This crate decides only what the bytes say: whether a token is a well-formed compact JWS,
//! which keys a JWK or PEM document yields, and whether a signature verifies. It does not judge
//! claims, read clocks, fetch key sets or know anything about deployments; that is
//! `claimgate-core`'s job. Every parser here is strict by design (the public vectors in
//! `tests/data/vectors/` hold it to that): base64url without padding or stray bits, JSON objects
//! without duplicate members at any depth, bounded sizes, and no key ever taken from a token.
//!
//! Crypto is aws-lc-rs; no JWT crate is used because none verifies ES512 and all of them are
//! more permissive than a gateway can afford.

#![forbid(unsafe_code)]

mod alg;
mod b64;
mod claims;
pub mod json;
mod key;
mod token;

pub use alg::{Algorithm, AlgorithmSet};
pub use b64::{decode_base64url, Base64Error};
pub use claims::{ClaimRef, Claims, Registered};
pub use json::JsonError;
pub use key::{
    parse_jwks, Curve, JwksError, JwksParse, KeyError, KeyKind, KeySet, PublicKey, SkippedKey,
    JWKS_MAX_KEYS, RSA_MAX_BITS, RSA_MIN_BITS,
};
pub use token::{FormatError, Header, Jws, ParsedToken, MAX_KID_BYTES, MAX_TOKEN_BYTES};
