//! The checks of a verdict: their ids, outcomes, the typed reasons a check fails, and the
//! words that explain each failure (execution-log message and fix).

use crate::time::{relative, skew_text, UnixTime};
use crate::validation::ValidationProblem;
use claimgate_config::{AuthFlavor, TokenLocation, ValidationMode};
use claimgate_jose::FormatError;
use serde_json::Value;
use std::borrow::Cow;
use std::fmt;

/// Which check. The order of variants is the order of a verdict.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum CheckId {
    /// `dynamicAuthentication`: an authentication server was selected.
    Server,
    Token,
    Format,
    Alg,
    Key,
    Signature,
    Exp,
    Nbf,
    Iss,
    Aud,
    /// One per `verifyClaims` entry.
    Claim(String),
    Active,
    /// `CUSTOM_AUTHENTICATION`: the authorizer function's answer.
    Function,
    Scope,
    /// `headerValidations`: one per header, named as the policy writes it.
    Header(String),
    /// `queryParameterValidations`: one per parameter.
    Query(String),
    /// `bodyValidation`.
    Body,
}

impl fmt::Display for CheckId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Server => f.write_str("server"),
            Self::Token => f.write_str("token"),
            Self::Format => f.write_str("format"),
            Self::Alg => f.write_str("alg"),
            Self::Key => f.write_str("key"),
            Self::Signature => f.write_str("signature"),
            Self::Exp => f.write_str("exp"),
            Self::Nbf => f.write_str("nbf"),
            Self::Iss => f.write_str("iss"),
            Self::Aud => f.write_str("aud"),
            Self::Claim(key) => write!(f, "claim:{key}"),
            Self::Active => f.write_str("active"),
            Self::Function => f.write_str("function"),
            Self::Scope => f.write_str("scope"),
            Self::Header(name) => write!(f, "header:{name}"),
            Self::Query(name) => write!(f, "query:{name}"),
            Self::Body => f.write_str("body"),
        }
    }
}

/// `now` and the allowed skew, shown with time checks.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TimeContext {
    pub now: UnixTime,
    pub skew_seconds: f64,
    /// The policy is spelled in kebab-case: fixes name `max-clock-skew-in-seconds`.
    pub kebab: bool,
}

/// One check's result.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    pub id: CheckId,
    pub outcome: Outcome,
    /// What the policy expects, as the policy holds it. Boxed, like the failure, so that a
    /// check that passed (most of them, on most requests) stays small.
    pub expected: Option<Box<Value>>,
    /// What the token presented, as the token holds it.
    pub actual: Option<Box<Value>>,
    pub time: Option<TimeContext>,
    /// Evaluated on claims whose signature was not verified.
    pub unverified: bool,
    /// The JSON path of the policy member this check enforces, for fixes.
    pub setting: Option<String>,
}

/// Why a check passed or was skipped, in words. Mostly fixed text, so it is borrowed when it
/// can be.
pub type Note = Cow<'static, str>;

/// Pass (with what made it pass), skip (with why) or fail (with the typed reason).
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The note is empty when the verdict explains failures only ([`crate::Explain`]).
    Pass(Note),
    Skip(Note),
    Fail(Box<Failure>),
}

impl Outcome {
    pub(crate) fn fail(failure: Failure) -> Self {
        Self::Fail(Box::new(failure))
    }

    /// `pass`, `skip` or `fail`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Pass(_) => "pass",
            Self::Skip(_) => "skip",
            Self::Fail(_) => "fail",
        }
    }
}

/// The execution-log code of a failed request validation.
pub(crate) const VALIDATION_ERROR: &str = "requestValidation.validationError";

/// The longest opaque token introspected (4 KiB); a longer one is refused without a call.
pub(crate) const MAX_OPAQUE_BYTES: usize = 4096;

/// Whether `raw` may be sent to an introspection endpoint: an RFC 6750 `b64token`
/// (`[A-Za-z0-9-._~+/]+=*`) of at most [`MAX_OPAQUE_BYTES`]. In a query parameter the value may
/// be percent-encoded (RFC 6750 §2.3), so `%HH` counts as one character there. Anything else
/// would cost the identity provider a call for a value no provider issues.
pub(crate) fn bearer_value_failure(raw: &str, in_query: bool) -> Option<Failure> {
    if raw.len() > MAX_OPAQUE_BYTES {
        return Some(Failure::NotBearerToken {
            too_long: Some(raw.len()),
        });
    }
    let bytes = raw.as_bytes();
    let body = bytes.len() - bytes.iter().rev().take_while(|b| **b == b'=').count();
    let mut i = 0;
    while i < body {
        let b = bytes[i];
        if b.is_ascii_alphanumeric() || b"-._~+/".contains(&b) {
            i += 1;
        } else if in_query
            && b == b'%'
            && bytes
                .get(i + 1..i + 3)
                .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit))
        {
            i += 3;
        } else {
            return Some(Failure::NotBearerToken { too_long: None });
        }
    }
    (body == 0).then_some(Failure::NotBearerToken { too_long: None })
}

/// Why a check failed, with what was expected and what was found.
#[derive(Debug, Clone, PartialEq)]
pub enum Failure {
    /// `dynamicAuthentication`: no key matched the selector's value and no server is the
    /// default.
    NoServerMatched {
        selector: String,
        value: Option<String>,
        tried: Vec<String>,
    },
    TokenMissing {
        location: TokenLocation,
        found: Option<String>,
    },
    Malformed(FormatError),
    /// An opaque token that is not an RFC 6750 `b64token` of at most [`MAX_OPAQUE_BYTES`]: refused
    /// without asking the identity provider. `too_long` is its length when that is the reason.
    NotBearerToken {
        too_long: Option<usize>,
    },
    AlgNone {
        alg: String,
    },
    AlgUnknown {
        alg: String,
    },
    AlgNotAllowed {
        alg: String,
        allowed: Vec<&'static str>,
    },
    /// `keys` counts every configured key, with or without a kid.
    KeyUnknownKid {
        kid: String,
        known: Vec<String>,
        keys: usize,
    },
    KeyNotForAlg {
        kid: Option<String>,
        alg: String,
        key: String,
    },
    KeyAmbiguous {
        kid: Option<String>,
        count: usize,
    },
    KeyNoKidNoMatch {
        alg: String,
    },
    KeysUnavailable {
        reason: String,
    },
    /// The discovery document could not be obtained (REMOTE_DISCOVERY).
    DiscoveryUnavailable {
        reason: String,
    },
    /// The introspection endpoint did not give a usable answer.
    IntrospectionUnavailable {
        reason: String,
    },
    /// Introspection answered, but not `"active": true`.
    Inactive {
        found: Option<Value>,
    },
    BadSignature {
        kid: Option<String>,
        key: String,
    },
    TimeMissing {
        claim: &'static str,
    },
    TimeNotNumber {
        claim: &'static str,
        found: &'static str,
    },
    TimeOutOfRange {
        claim: &'static str,
    },
    Expired {
        exp: i64,
        now: UnixTime,
        skew: f64,
    },
    NotYetValid {
        nbf: i64,
        now: UnixTime,
        skew: f64,
    },
    IssMissing,
    IssNotString {
        found: &'static str,
    },
    IssMismatch {
        actual: String,
        expected: Vec<String>,
    },
    AudMissing,
    AudInvalid {
        why: String,
    },
    AudMismatch {
        actual: Vec<String>,
        expected: Vec<String>,
    },
    ClaimMissing {
        key: String,
    },
    ClaimMismatch {
        key: String,
        actual: Value,
        expected: Vec<String>,
    },
    /// `CUSTOM_AUTHENTICATION`: none of the function's arguments is in the request (each
    /// described: `header 'X-Api-Key'`), so the function is not called.
    ArgumentsMissing {
        expected: Vec<String>,
    },
    /// The authorizer function answered `"active": false` (or a 4xx status).
    FunctionDenied {
        status: u16,
        active: Option<Value>,
    },
    /// The authorizer function could not be called or gave no usable answer (502).
    /// `unexpected`: it answered, but not with OCI's contract.
    FunctionUnavailable {
        reason: String,
        unexpected: bool,
    },
    ScopeMissing {
        allowed: Vec<String>,
    },
    ScopeInvalid {
        found: &'static str,
    },
    ScopeMismatch {
        actual: Vec<String>,
        allowed: Vec<String>,
    },
    /// A request validation failed; in `PERMISSIVE` mode the request is served anyway.
    Validation {
        mode: ValidationMode,
        problem: ValidationProblem,
    },
}

pub(crate) fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn quoted_list(items: &[String]) -> String {
    items
        .iter()
        .map(|i| format!("`{i}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// How two identifiers that should be equal differ, when the difference is a classic one: the
/// predicate of "`a` and `b` ...".
pub(crate) fn near_miss(actual: &str, expected: &str) -> Option<&'static str> {
    if actual == expected {
        return None;
    }
    if actual.trim_end_matches('/') == expected.trim_end_matches('/') {
        return Some("differ by a trailing slash");
    }
    if actual.trim() == expected.trim() {
        return Some("differ by surrounding white space");
    }
    if actual.eq_ignore_ascii_case(expected) {
        return Some("differ only in letter case, and the comparison is exact");
    }
    let strip = |s: &str| s.replacen("https://", "", 1).replacen("http://", "", 1);
    if strip(actual) == strip(expected) {
        return Some("differ in scheme (http vs https)");
    }
    None
}

fn near_miss_note(actual: &[String], expected: &[String]) -> String {
    for a in actual {
        for e in expected {
            if let Some(how) = near_miss(a, e) {
                return format!(" — `{a}` and `{e}` {how}");
            }
        }
    }
    String::new()
}

/// Member names fixes mention besides their setting, with their kebab-case spelling.
const KEBAB_MEMBERS: &[(&str, &str)] = &[
    ("maxClockSkewInSeconds", "max-clock-skew-in-seconds"),
    ("verifyClaims", "verify-claims"),
    ("isDefault", "is-default"),
];

impl Failure {
    /// The execution-log message (OCI's own words where OCI documents them).
    pub fn message(&self, id: &CheckId) -> String {
        match self {
            Self::NoServerMatched { .. } => "No authentication server matched the request.".into(),
            Self::TokenMissing {
                location: TokenLocation::Header { name, .. },
                ..
            } => {
                format!("JWT token not found in header '{name}'.")
            }
            Self::TokenMissing {
                location: TokenLocation::Query { name },
                ..
            } => {
                format!("JWT token not found in query parameter '{name}'.")
            }
            Self::Malformed(detail) => format!("JWT token is malformed: {detail}."),
            Self::NotBearerToken { too_long: Some(bytes) } => format!(
                "The token is {bytes} bytes, above the {MAX_OPAQUE_BYTES} an opaque token may have; it was not introspected."
            ),
            Self::NotBearerToken { too_long: None } => {
                "The token is not an RFC 6750 bearer token (b64token); it was not introspected.".into()
            }
            Self::AlgNone { alg } | Self::AlgUnknown { alg } | Self::AlgNotAllowed { alg, .. } => {
                format!("JWT token algorithm '{alg}' is not allowed.")
            }
            Self::KeysUnavailable { reason } => {
                format!("The JSON Web Key Set could not be loaded: {reason}.")
            }
            Self::DiscoveryUnavailable { reason } => {
                format!("The discovery document could not be loaded: {reason}.")
            }
            Self::IntrospectionUnavailable { reason } => {
                format!("The introspection endpoint gave no usable answer: {reason}.")
            }
            Self::Inactive { .. } => "Token is not active.".into(),
            Self::ArgumentsMissing { expected } => format!(
                "No argument for the authorizer function was found in the request ({}).",
                expected.join(", ")
            ),
            Self::FunctionDenied { .. } => "Authorizer function denied the request.".into(),
            Self::FunctionUnavailable { reason, .. } => {
                format!("Authorizer function could not be called: {reason}.")
            }
            Self::KeyUnknownKid { kid, .. } => {
                format!("No public key found for the JWT token (kid '{kid}').")
            }
            Self::KeyNotForAlg { kid, .. } | Self::KeyAmbiguous { kid, .. } => format!(
                "No public key found for the JWT token (kid '{}').",
                kid.as_deref().unwrap_or("")
            ),
            Self::KeyNoKidNoMatch { .. } => {
                "No public key found for the JWT token (kid '').".into()
            }
            Self::BadSignature { .. } => "JWT token signature is not valid.".into(),
            Self::TimeMissing { claim }
            | Self::TimeNotNumber { claim, .. }
            | Self::TimeOutOfRange { claim } => format!("Validation failed for '{claim}' claim."),
            Self::Expired { .. } => "Validation failed for 'exp' claim.".into(),
            Self::NotYetValid { .. } => "Validation failed for 'nbf' claim.".into(),
            Self::IssMissing | Self::IssNotString { .. } | Self::IssMismatch { .. } => {
                "JWT token not issued by the configured issuers.".into()
            }
            Self::AudMissing | Self::AudInvalid { .. } | Self::AudMismatch { .. } => {
                "JWT token not issued for the configured audience.".into()
            }
            Self::ClaimMissing { key } => format!("JWT token missing required claim '{key}'."),
            Self::ClaimMismatch { key, .. } => {
                format!("JWT token does not have the expected claim value for '{key}'.")
            }
            Self::ScopeMissing { .. } | Self::ScopeInvalid { .. } | Self::ScopeMismatch { .. } => {
                let _ = id;
                "Authorization failed for the request.".into()
            }
            Self::Validation { problem, .. } => format!(
                "Request failed a validation policy: {}.",
                problem.detail()
            ),
        }
    }

    /// What to do about it, naming the values involved.
    pub fn fix(&self, setting: Option<&str>) -> String {
        let policy = setting;
        let setting = setting.unwrap_or("the authentication policy");
        match self {
            Self::NoServerMatched { selector, value: Some(value), tried } => format!(
                "The request's {selector} is '{value}', which matches none of the keys {} (ANY_OF values compare case-insensitively, WILDCARD expressions case-sensitively). Send a value one of the servers accepts, add it to a server's key, or make one server the default (isDefault) in {setting}.",
                quoted_list(tried)
            ),
            Self::NoServerMatched { selector, value: None, tried } => format!(
                "The request has no {selector}, so none of the keys {} can match. Send it, or make one server the default (isDefault) in {setting}.",
                quoted_list(tried)
            ),
            Self::TokenMissing { location, found } => {
                let how = match location {
                    TokenLocation::Header { name, scheme: Some(scheme) } => {
                        format!("send it in header '{name}' as '{scheme} <token>'")
                    }
                    TokenLocation::Header { name, scheme: None } => format!("send it in header '{name}'"),
                    TokenLocation::Query { name } => format!("send it as query parameter '{name}'"),
                };
                match found {
                    Some(found) => format!("The request carries {found}; {how}."),
                    None => format!("The request carries no token; {how}."),
                }
            }
            Self::Malformed(FormatError::TooLong { .. }) => {
                "Send a smaller token: trim claims at the identity provider.".into()
            }
            Self::Malformed(FormatError::Encrypted | FormatError::EncryptionHeader) => {
                "Send a signed (JWS) access token, not an encrypted one (JWE); configure the identity provider to sign, not encrypt, tokens for this API.".into()
            }
            Self::Malformed(detail) => format!(
                "Send the token exactly as the identity provider issued it: three base64url segments separated by dots, nothing added or removed ({detail})."
            ),
            Self::NotBearerToken { .. } => format!(
                "Send the access token exactly as the identity provider issued it: letters, digits and - . _ ~ + / with = only at the end (RFC 6750 b64token), at most {MAX_OPAQUE_BYTES} bytes."
            ),
            Self::AlgNone { alg } => format!(
                "The token is unsigned (alg '{alg}'); such tokens are never accepted. Use a token signed by the identity provider."
            ),
            Self::AlgUnknown { alg } => format!(
                "'{alg}' is not an algorithm claimgate verifies (RS256/384/512, PS256/384/512, ES256/384/512, EdDSA; OCI itself accepts only RS256/384/512). Configure the identity provider to sign with one of them."
            ),
            Self::AlgNotAllowed { alg, allowed } if allowed.is_empty() => format!(
                "The token is signed with {alg} but no usable key is configured (the key set is empty, or every key in it was refused). Add the identity provider's signing key to {setting}."
            ),
            Self::AlgNotAllowed { alg, allowed } => format!(
                "The token is signed with {alg} but the configured keys allow only {}. Have the identity provider sign with one of those, or configure a key that allows {alg} in {setting}.",
                allowed.join(", ")
            ),
            Self::DiscoveryUnavailable { .. } => "Make the identity provider's discovery document reachable from the gateway; until it loads every token is refused with 500.".into(),
            Self::IntrospectionUnavailable { reason } => format!(
                "The identity provider's introspection endpoint failed ({reason}); check its availability and the client credentials (clientId and the secret in the secrets file). Tokens already introspected keep working until their cached answer expires."
            ),
            Self::Inactive { found: Some(Value::Bool(false)) } => {
                "The identity provider says this token is not active: it expired, was revoked, or was issued to someone else. Get a new token.".into()
            }
            Self::Inactive { found } => format!(
                "Only a JSON boolean \"active\": true counts (RFC 7662); the answer had {}. Check the identity provider's introspection endpoint.",
                found.as_ref().map_or("no 'active' member".to_owned(), |v| format!("{v} ({})", json_type(v)))
            ),
            Self::ArgumentsMissing { expected } => format!(
                "Send at least one of {} (the function is called only when one is present), or change what {setting} passes to it.",
                expected.join(", ")
            ),
            Self::FunctionDenied { status, .. } if *status >= 400 => format!(
                "The authorizer function answered HTTP {status}, which the gateway takes as a refusal. Send credentials the function accepts; when developing the function, answer 200 with \"active\": true to allow."
            ),
            Self::FunctionDenied { .. } => "The authorizer function answered \"active\": false: it does not accept the credentials sent. Send credentials it accepts (its answer's wwwAuthenticate, sent to the client, may say which).".into(),
            Self::FunctionUnavailable { unexpected: true, .. } => "The authorizer function must answer a JSON object with a boolean \"active\" (OCI's contract), at most 1 MiB; every request is refused with 502 until it does.".into(),
            Self::FunctionUnavailable { .. } => "Make the authorizer function reachable (the --functions file names its URL) and have it answer within 10 seconds with a status below 500; every request is refused with 502 until it does.".into(),
            // The reason is the message's already; the fix says what to do.
            Self::KeysUnavailable { .. } => "Make the key set reachable from the gateway; until it loads every token is refused with 500.".into(),
            Self::KeyUnknownKid { kid, keys: 0, .. } => format!(
                "The token names kid '{kid}' but no key is configured. Add the identity provider's signing key to {setting}."
            ),
            Self::KeyUnknownKid { kid, known, keys } if known.is_empty() => format!(
                "The token names kid '{kid}' but none of the {keys} configured key{} has a kid. Give the keys in {setting} their kid as the identity provider publishes it.",
                if *keys == 1 { "" } else { "s" }
            ),
            Self::KeyUnknownKid { kid, known, .. } => format!(
                "The token names kid '{kid}' but the keys have kid {}. If the identity provider rotated its keys, add the new key to {setting} (or wait for the remote key set to publish it); otherwise the token comes from another identity provider.",
                quoted_list(known)
            ),
            Self::KeyNotForAlg { kid, alg, key } => format!(
                "Key '{}' is {key} and cannot verify {alg}. Sign with the algorithm the key allows, or correct the key in {setting}.",
                kid.as_deref().unwrap_or("")
            ),
            Self::KeyAmbiguous { kid: Some(kid), count } => format!(
                "{count} keys share kid '{kid}'; choosing one would be a guess. Give every key a distinct kid in {setting}."
            ),
            Self::KeyAmbiguous { kid: None, count } => format!(
                "The token has no kid and {count} keys could verify it. Have the identity provider put a kid in the token header."
            ),
            Self::KeyNoKidNoMatch { alg } => format!(
                "The token has no kid and no configured key allows {alg}. Have the identity provider put a kid in the token header, or add its key to {setting}."
            ),
            Self::BadSignature { kid, key } => format!(
                "The signature does not verify with key '{}' ({key}). The token was altered, or signed by a different key published under the same kid: get a fresh token, and check that {setting} holds the identity provider's current key.",
                kid.as_deref().unwrap_or("")
            ),
            Self::TimeMissing { claim: "exp" } => {
                "The token has no 'exp' claim, which OCI requires. Change token issuance to include an expiry.".into()
            }
            Self::TimeMissing { claim } => format!("The token has no '{claim}' claim."),
            Self::TimeNotNumber { claim, found } => format!(
                "'{claim}' must be a NumericDate (seconds since 1970 as a JSON number); the token has {found}. Fix token issuance."
            ),
            Self::TimeOutOfRange { claim } => format!(
                "'{claim}' is negative or beyond year 9999; fix token issuance."
            ),
            Self::Expired { exp, now, skew } => format!(
                "The token expired at {} ({}; allowed skew {}). Retry with a valid token; raise maxClockSkewInSeconds only when the clock drift is expected and acceptable.",
                UnixTime(*exp),
                relative(*exp, *now),
                skew_text(*skew)
            ),
            Self::NotYetValid { nbf, now, skew } => format!(
                "The token is not valid before {} ({}; allowed skew {}). Use it from then on, or check the identity provider's clock; raise maxClockSkewInSeconds only when the clock drift is expected and acceptable.",
                UnixTime(*nbf),
                relative(*nbf, *now),
                skew_text(*skew)
            ),
            Self::IssMissing => format!(
                "The token has no 'iss' claim. Use a token from the expected identity provider, or update {setting}."
            ),
            Self::IssNotString { found } => format!(
                "'iss' must be a string; the token has {found}. Use a token from the expected identity provider."
            ),
            Self::IssMismatch { actual, expected } => format!(
                "The token's iss is `{actual}` but the deployment accepts {}{}. Update {setting} or use a token from the expected identity provider.",
                quoted_list(expected),
                near_miss_note(std::slice::from_ref(actual), expected)
            ),
            Self::AudMissing => format!(
                "The token has no 'aud' claim. Use a token issued for the expected audience ({setting})."
            ),
            Self::AudInvalid { why } => format!(
                "The token's aud {why}. Use a token issued for the expected audience."
            ),
            Self::AudMismatch { actual, expected } => format!(
                "The token's aud is {} but the deployment accepts {}{}. Update {setting} or use a token issued for the expected audience.",
                quoted_list(actual),
                quoted_list(expected),
                near_miss_note(actual, expected)
            ),
            Self::ClaimMissing { key } => format!(
                "The token has no claim '{key}', which {setting} requires. Change token issuance to include it, or update verifyClaims."
            ),
            Self::ClaimMismatch { key, actual, expected } => {
                let actual_text = match actual {
                    Value::String(s) => format!("`{s}`"),
                    other => format!("{other} ({})", json_type(other)),
                };
                let note = match actual {
                    Value::String(s) => near_miss_note(std::slice::from_ref(s), expected),
                    Value::Array(_) | Value::Object(_) | Value::Null => {
                        " — verifyClaims compares strings exactly, never array members".into()
                    }
                    _ => String::new(),
                };
                format!(
                    "The token's '{key}' is {actual_text} but {setting} expects {}{note}. Correct the claim in the token or the expected value in verifyClaims.",
                    if expected.len() == 1 { quoted_list(expected) } else { format!("one of {}", quoted_list(expected)) }
                )
            }
            Self::ScopeMissing { allowed } => format!(
                "The route needs one of the scopes {} but the token has no 'scope' claim. Request a token with one of those scopes, or update {setting}.",
                quoted_list(allowed)
            ),
            Self::ScopeInvalid { found } => format!(
                "'scope' must be a space-separated string or an array of strings; the token has {found}."
            ),
            Self::Validation { mode, problem } => {
                problem.fix(policy.unwrap_or("the validation policy"), *mode)
            }
            Self::ScopeMismatch { actual, allowed } => format!(
                "The route needs one of the scopes {} (case-sensitive) but the token has {}{}. Request a token with one of those scopes, or update {setting}.",
                quoted_list(allowed),
                if actual.is_empty() { "none".into() } else { quoted_list(actual) },
                near_miss_note(actual, allowed)
            ),
        }
    }

    /// The execution-log code of this failure.
    pub fn log_code(&self, flavor: AuthFlavor) -> String {
        match self {
            Self::NoServerMatched { .. } => {
                "dynamicAuthentication.noAuthenticationServerMatched".into()
            }
            Self::ScopeMissing { .. } | Self::ScopeInvalid { .. } | Self::ScopeMismatch { .. } => {
                "authorization.unauthorizedRequest".into()
            }
            Self::Validation { .. } => VALIDATION_ERROR.into(),
            Self::KeysUnavailable { .. } => format!("{}.badJsonWebKeySet", flavor.log_prefix()),
            Self::DiscoveryUnavailable { .. } => {
                format!("{}.badDiscoveryEndpointResponse", flavor.log_prefix())
            }
            Self::IntrospectionUnavailable { .. } => {
                format!("{}.badIntrospectionResponse", flavor.log_prefix())
            }
            Self::FunctionUnavailable {
                unexpected: true, ..
            } => "customAuthentication.unexpectedResponse".into(),
            Self::FunctionUnavailable { .. } => {
                "customAuthentication.failedFunctionInvocation".into()
            }
            _ => format!("{}.authenticationFailed", flavor.log_prefix()),
        }
    }
}

impl Failure {
    /// Whether the failure means "could not evaluate" (keys, discovery or introspection
    /// unavailable): 500, exit 3, an ERROR record.
    pub fn is_outage(&self) -> bool {
        matches!(
            self,
            Self::KeysUnavailable { .. }
                | Self::DiscoveryUnavailable { .. }
                | Self::IntrospectionUnavailable { .. }
                | Self::FunctionUnavailable { .. }
        )
    }
}

impl Check {
    pub(crate) fn new(id: CheckId, outcome: Outcome) -> Self {
        Self {
            id,
            outcome,
            expected: None,
            actual: None,
            time: None,
            unverified: false,
            setting: None,
        }
    }

    pub(crate) fn skip(id: CheckId, why: impl Into<Note>) -> Self {
        Self::new(id, Outcome::Skip(why.into()))
    }

    /// A pass named but not explained: what a verdict that explains failures only holds.
    pub(crate) fn passed(id: CheckId) -> Self {
        Self::new(id, Outcome::Pass(Cow::Borrowed("")))
    }

    pub(crate) fn passes(&self) -> bool {
        matches!(self.outcome, Outcome::Pass(_))
    }

    pub(crate) fn values(mut self, expected: Option<Value>, actual: Option<Value>) -> Self {
        self.expected = expected.map(Box::new);
        self.actual = actual.map(Box::new);
        self
    }

    pub(crate) fn setting(mut self, setting: impl Into<String>) -> Self {
        self.setting = Some(setting.into());
        self
    }

    /// The failure, if the check failed.
    pub fn failure(&self) -> Option<&Failure> {
        match &self.outcome {
            Outcome::Fail(f) => Some(f),
            _ => None,
        }
    }

    /// The execution-log message, if the check failed.
    pub fn message(&self) -> Option<String> {
        self.failure().map(|f| f.message(&self.id))
    }

    /// The fix, if the check failed.
    pub fn fix(&self) -> Option<String> {
        let fix = self.failure()?.fix(self.setting.as_deref());
        // A kebab-case file (as `oci ... get` writes them) is told its own spelling.
        let kebab = self
            .setting
            .as_deref()
            .is_some_and(|s| s.contains("request-policies"))
            || self.time.is_some_and(|t| t.kebab);
        Some(if kebab {
            KEBAB_MEMBERS
                .iter()
                .fold(fix, |fix, (camel, kebab)| fix.replace(camel, kebab))
        } else {
            fix
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_rfc_6750_b64tokens_of_at_most_4_kib_are_introspected() {
        for good in ["abc", "a-b.c_d~e+f/g==", "Zm9v", &"a".repeat(4096)] {
            assert_eq!(bearer_value_failure(good, false), None, "{good}");
        }
        for bad in ["", "==", "a b", "\"abc\"", "a=b", "a,b", "é", "a%41"] {
            assert_eq!(
                bearer_value_failure(bad, false),
                Some(Failure::NotBearerToken { too_long: None }),
                "{bad}"
            );
        }
        assert_eq!(
            bearer_value_failure(&"a".repeat(5 * 1024), false),
            Some(Failure::NotBearerToken {
                too_long: Some(5 * 1024)
            })
        );
        // A query parameter may carry the token percent-encoded.
        assert_eq!(bearer_value_failure("a%2Bb%3D", true), None);
        assert!(bearer_value_failure("a%2", true).is_some());
        assert!(bearer_value_failure("a%20b%zz", true).is_some());
    }
}
