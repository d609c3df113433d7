//! Shared fixtures for the verdict tests: keys generated once per test binary, tokens signed
//! with them, deployments written as JSON text and loaded the way `claimgate` loads files, and a
//! small request type.

#![allow(dead_code)]

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _};
use aws_lc_rs::{hmac, rsa};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use claimgate_config::{load_str, Deployment, LoadOptions, Rejected};
use claimgate_core::{
    evaluate, evaluate_cached, Check, Explain, HeaderValues, KeyMaterial, Outcome, RequestView,
    UnixTime, Verdict,
};
use serde_json::{json, Value};
use std::sync::OnceLock;

/// The pinned clock of every test: 2025-11-24T16:00:00Z.
pub(crate) const NOW: UnixTime = UnixTime(1_764_000_000);
pub(crate) const NOW_SECS: i64 = NOW.0;
pub(crate) const ISSUER: &str = "https://idp.example.com/";
pub(crate) const OTHER_ISSUER: &str = "https://other-idp.example.org";
pub(crate) const AUDIENCE: &str = "api://orders";
/// Paths to the default deployment's routes (the first, a second and third, one the verdict
/// normalizes) and one that reaches none (the last): what a prepared verdict must route alike.
pub(crate) const PATHS_TO_ROUTE: [&str; 5] = [
    "/v1/orders",
    "/v1/./orders",
    "/v1/orders/admin",
    "/v1/public",
    "/v1/nowhere",
];
pub(crate) const POLICY: &str = "specification.requestPolicies.authentication";

/// Every check id of a verdict without `verifyClaims`, in order.
pub(crate) const BASE_IDS: [&str; 11] = [
    "token",
    "format",
    "alg",
    "key",
    "signature",
    "exp",
    "nbf",
    "iss",
    "aud",
    "active",
    "scope",
];

/// [`BASE_IDS`] with one `claim:` check per `verifyClaims` entry, where a verdict puts them.
pub(crate) fn ids_with_claims(claims: &[&'static str]) -> Vec<&'static str> {
    let active = BASE_IDS.len() - 2;
    let mut ids = BASE_IDS[..active].to_vec();
    ids.extend_from_slice(claims);
    ids.extend_from_slice(&BASE_IDS[active..]);
    ids
}

/// The key pairs of one test binary.
pub(crate) struct Keys {
    /// `k1`, the identity provider's RS256 key.
    pub(crate) rsa: rsa::KeyPair,
    /// `k2`, a second RSA key (another issuer, or a rotated key).
    pub(crate) rsa_other: rsa::KeyPair,
    /// A key no deployment trusts.
    pub(crate) attacker: rsa::KeyPair,
    pub(crate) p256: EcdsaKeyPair,
    pub(crate) p384: EcdsaKeyPair,
    pub(crate) p521: EcdsaKeyPair,
    pub(crate) ed25519: Ed25519KeyPair,
}

pub(crate) fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let rsa = || rsa::KeyPair::generate(rsa::KeySize::Rsa2048).expect("RSA key generation");
        let ec = |alg| EcdsaKeyPair::generate(alg).expect("EC key generation");
        Keys {
            rsa: rsa(),
            rsa_other: rsa(),
            attacker: rsa(),
            p256: ec(&signature::ECDSA_P256_SHA256_FIXED_SIGNING),
            p384: ec(&signature::ECDSA_P384_SHA384_FIXED_SIGNING),
            p521: ec(&signature::ECDSA_P521_SHA512_FIXED_SIGNING),
            ed25519: Ed25519KeyPair::generate().expect("Ed25519 key generation"),
        }
    })
}

pub(crate) fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The public JWK members `{kty, n, e}` of an RSA key pair.
pub(crate) fn rsa_jwk(pair: &rsa::KeyPair) -> Value {
    let public = pair.public_key();
    json!({
        "kty": "RSA",
        "n": b64(public.modulus().big_endian_without_leading_zero()),
        "e": b64(public.exponent().big_endian_without_leading_zero()),
    })
}

/// The public JWK members `{kty, crv, x, y}` of an EC key pair.
pub(crate) fn ec_jwk(pair: &EcdsaKeyPair, crv: &str) -> Value {
    let point = pair.public_key().as_ref();
    let half = (point.len() - 1) / 2;
    json!({
        "kty": "EC",
        "crv": crv,
        "x": b64(&point[1..1 + half]),
        "y": b64(&point[1 + half..]),
    })
}

/// The public JWK members `{kty, crv, x}` of an Ed25519 key pair.
pub(crate) fn ed_jwk(pair: &Ed25519KeyPair) -> Value {
    json!({"kty": "OKP", "crv": "Ed25519", "x": b64(pair.public_key().as_ref())})
}

/// A `STATIC_KEYS` entry: the JWK plus `kid`, `format` and the optional `alg`.
pub(crate) fn static_key(kid: &str, jwk: Value, alg: Option<&str>) -> Value {
    let mut key = jwk;
    key["kid"] = json!(kid);
    key["format"] = json!("JSON_WEB_KEY");
    if let Some(alg) = alg {
        key["alg"] = json!(alg);
    }
    key
}

/// The RSA modulus, big-endian without leading zeros.
pub(crate) fn rsa_modulus(pair: &rsa::KeyPair) -> Vec<u8> {
    pair.public_key()
        .modulus()
        .big_endian_without_leading_zero()
        .to_vec()
}

/// The RSA public key as SubjectPublicKeyInfo DER.
pub(crate) fn rsa_spki_der(pair: &rsa::KeyPair) -> Vec<u8> {
    pair.public_key()
        .as_der()
        .expect("SPKI DER")
        .as_ref()
        .to_vec()
}

/// The RSA public key as PKCS#1 `RSAPublicKey` DER.
pub(crate) fn rsa_pkcs1_der(pair: &rsa::KeyPair) -> Vec<u8> {
    pair.public_key().as_ref().to_vec()
}

/// A PEM block with 64-character lines and a final newline.
pub(crate) fn pem(label: &str, der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in body.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// How a test token is signed.
pub(crate) enum Signer<'a> {
    Rsa(&'a rsa::KeyPair, &'static dyn signature::RsaEncoding),
    Ecdsa(&'a EcdsaKeyPair),
    Ed25519(&'a Ed25519KeyPair),
    Hmac(hmac::Algorithm, Vec<u8>),
    /// These exact signature bytes.
    Bytes(Vec<u8>),
}

impl Signer<'_> {
    pub(crate) fn sign(&self, message: &[u8]) -> Vec<u8> {
        let rng = SystemRandom::new();
        match self {
            Self::Rsa(pair, encoding) => {
                let mut signature = vec![0; pair.public_modulus_len()];
                pair.sign(*encoding, &rng, message, &mut signature)
                    .expect("RSA signing");
                signature
            }
            Self::Ecdsa(pair) => pair
                .sign(&rng, message)
                .expect("ECDSA signing")
                .as_ref()
                .to_vec(),
            Self::Ed25519(pair) => pair.sign(message).as_ref().to_vec(),
            Self::Hmac(alg, secret) => hmac::sign(&hmac::Key::new(*alg, secret), message)
                .as_ref()
                .to_vec(),
            Self::Bytes(bytes) => bytes.clone(),
        }
    }
}

/// The default signer: `k1` with RS256.
pub(crate) fn k1() -> Signer<'static> {
    Signer::Rsa(&keys().rsa, &signature::RSA_PKCS1_SHA256)
}

/// A compact JWS over the header and payload exactly as written (so duplicate members survive).
pub(crate) fn sign_raw(header: &str, payload: &str, signer: &Signer<'_>) -> String {
    let input = format!("{}.{}", b64(header), b64(payload));
    let signature = signer.sign(input.as_bytes());
    format!("{input}.{}", b64(signature))
}

/// The header every default token carries.
pub(crate) fn header() -> Value {
    json!({"alg": "RS256", "kid": "k1", "typ": "JWT"})
}

/// Claims that pass every check of [`file`].
pub(crate) fn claims() -> Value {
    json!({
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "alice",
        "iat": NOW_SECS - 60,
        "exp": NOW_SECS + 3600,
        "scope": "orders:read",
    })
}

/// `claims()` with the given members replaced (a `null` removes the member).
pub(crate) fn claims_with(changes: Value) -> Value {
    let mut claims = claims();
    for (name, value) in changes.as_object().expect("changes are an object") {
        if value.is_null() {
            claims.as_object_mut().expect("object").remove(name);
        } else {
            claims[name] = value.clone();
        }
    }
    claims
}

/// A token with the default header, signed by `k1` (RS256).
pub(crate) fn token(claims: &Value) -> String {
    sign_raw(&header().to_string(), &claims.to_string(), &k1())
}

/// A token with this header, signed by `signer`.
pub(crate) fn token_with(header: &Value, claims: &Value, signer: &Signer<'_>) -> String {
    sign_raw(&header.to_string(), &claims.to_string(), signer)
}

/// A token whose claims pass every check.
pub(crate) fn good_token() -> String {
    token(&claims())
}

/// The deployment file every test starts from: `JWT_AUTHENTICATION` with one static RS256 key
/// `k1`, and four routes:
/// 0. `GET /orders` (authentication only, stock 200)
/// 1. `GET|POST /orders/admin` (`ANY_OF` `orders:admin`, `orders:write`; stock 200)
/// 2. `GET /public` (`ANONYMOUS`, stock 204)
/// 3. `GET /proxy` (authentication only, HTTP backend)
pub(crate) fn file() -> Value {
    json!({
        "displayName": "orders",
        "compartmentId": "ocid1.compartment.oc1..example",
        "pathPrefix": "/v1",
        "specification": {
            "requestPolicies": {
                "authentication": {
                    "type": "JWT_AUTHENTICATION",
                    "isAnonymousAccessAllowed": true,
                    "tokenHeader": "Authorization",
                    "tokenAuthScheme": "Bearer",
                    "issuers": [ISSUER],
                    "audiences": [AUDIENCE],
                    "maxClockSkewInSeconds": 0,
                    "publicKeys": {
                        "type": "STATIC_KEYS",
                        "keys": [static_key("k1", rsa_jwk(&keys().rsa), Some("RS256"))]
                    }
                }
            },
            "routes": [
                {
                    "path": "/orders",
                    "methods": ["GET"],
                    "backend": {"type": "STOCK_RESPONSE_BACKEND", "status": 200, "body": "orders"}
                },
                {
                    "path": "/orders/admin",
                    "methods": ["GET", "POST"],
                    "backend": {"type": "STOCK_RESPONSE_BACKEND", "status": 200},
                    "requestPolicies": {
                        "authorization": {"type": "ANY_OF", "allowedScope": ["orders:admin", "orders:write"]}
                    }
                },
                {
                    "path": "/public",
                    "methods": ["GET"],
                    "backend": {"type": "STOCK_RESPONSE_BACKEND", "status": 204},
                    "requestPolicies": {"authorization": {"type": "ANONYMOUS"}}
                },
                {
                    "path": "/proxy",
                    "methods": ["GET"],
                    "backend": {"type": "HTTP_BACKEND", "url": "http://127.0.0.1:9/backend"}
                }
            ]
        }
    })
}

/// The authentication policy of a file, to change it.
pub(crate) fn auth(file: &mut Value) -> &mut Value {
    file.pointer_mut("/specification/requestPolicies/authentication")
        .expect("the file has an authentication policy")
}

/// Loads a deployment file from its JSON text, as `claimgate` does.
pub(crate) fn try_load(file: &Value) -> Result<Deployment, Rejected> {
    let options = LoadOptions {
        path_prefix: None,
        name: "test".into(),
    };
    load_str(&file.to_string(), &options).map(|loaded| loaded.deployment)
}

pub(crate) fn load(file: &Value) -> Deployment {
    match try_load(file) {
        Ok(deployment) => deployment,
        Err(rejected) => panic!("the test deployment does not load: {:?}", rejected.errors),
    }
}

/// The default deployment.
pub(crate) fn deployment() -> Deployment {
    load(&file())
}

/// The default deployment with `verifyClaims` set.
pub(crate) fn deployment_with_claims(rules: Value) -> Deployment {
    let mut file = file();
    auth(&mut file)["verifyClaims"] = rules;
    load(&file)
}

/// The default deployment with `maxClockSkewInSeconds` set.
pub(crate) fn deployment_with_skew(seconds: f64) -> Deployment {
    let mut file = file();
    auth(&mut file)["maxClockSkewInSeconds"] = json!(seconds);
    load(&file)
}

/// A request as the verdict sees it.
#[derive(Debug, Clone)]
pub(crate) struct Req {
    pub(crate) method: String,
    pub(crate) path: String,
    pub(crate) query: Option<String>,
    pub(crate) headers: Vec<(String, String)>,
}

impl Req {
    pub(crate) fn new(method: &str, target: &str) -> Self {
        let (path, query) = match target.split_once('?') {
            Some((path, query)) => (path, Some(query.to_owned())),
            None => (target, None),
        };
        Self {
            method: method.into(),
            path: path.into(),
            query,
            headers: Vec::new(),
        }
    }

    pub(crate) fn get(target: &str) -> Self {
        Self::new("GET", target)
    }

    #[must_use]
    pub(crate) fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    #[must_use]
    pub(crate) fn bearer(self, token: &str) -> Self {
        self.header("Authorization", &format!("Bearer {token}"))
    }
}

impl RequestView for Req {
    fn method(&self) -> &str {
        &self.method
    }

    fn path(&self) -> &str {
        &self.path
    }

    fn query(&self) -> Option<&str> {
        self.query.as_deref()
    }

    fn header(&self, name: &str) -> HeaderValues<'_> {
        let mut values = self
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name));
        match (values.next(), values.count()) {
            (None, _) => HeaderValues::Absent,
            (Some((_, value)), 0) => HeaderValues::One(value),
            (Some(_), more) => HeaderValues::Many(more + 1),
        }
    }

    fn first_header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

/// The verdict on `GET /v1/orders` with this bearer token, against `deployment`.
pub(crate) fn judge_token(deployment: &Deployment, token: &str) -> Verdict {
    judge(deployment, &Req::get("/v1/orders").bearer(token))
}

/// The verdict at [`NOW`]. Static keys come from the deployment; a remote key set is
/// "unavailable" unless a test passes its own [`KeyMaterial`] to [`judge_with_keys`].
pub(crate) fn judge(deployment: &Deployment, request: &Req) -> Verdict {
    judge_with_keys(
        deployment,
        request,
        KeyMaterial::Unavailable {
            reason: "no remote key set in this test",
        },
    )
}

/// Every verdict a test sees is also made the gateway's way ([`Explain::Failures`]) and must
/// decide the same: so each check's pass and fail test covers both.
pub(crate) fn judge_with_keys(
    deployment: &Deployment,
    request: &Req,
    keys: KeyMaterial<'_>,
) -> Verdict {
    let verdict = evaluate(deployment, request, keys, NOW);
    let quiet = evaluate_cached(deployment, request, keys, NOW, None, Explain::Failures);
    assert_same_decision(&verdict, &quiet);
    verdict
}

/// `quiet` (explaining failures only) says what `full` says, except the notes, values and
/// settings of passed checks.
pub(crate) fn assert_same_decision(full: &Verdict, quiet: &Verdict) {
    assert_eq!(full.decision, quiet.decision, "{}", summary(full));
    assert_eq!(full.status, quiet.status);
    assert_eq!(full.route, quiet.route);
    assert_eq!(full.unrouted, quiet.unrouted);
    assert_eq!(full.flavor, quiet.flavor);
    assert_eq!(full.claims, quiet.claims);
    assert_eq!(full.unsupported, quiet.unsupported);
    assert_eq!(full.selection, quiet.selection);
    assert_eq!(full.events(), quiet.events());
    // A deployment without authentication: quiet lists none of the checks full skips.
    if full.flavor.is_none()
        && full.selection.is_none()
        && full.route.is_some()
        && quiet.checks.is_empty()
    {
        assert!(
            full.checks.iter().all(|c| c.outcome.name() == "skip"),
            "{}",
            summary(full)
        );
        return;
    }
    assert_eq!(full.checks.len(), quiet.checks.len(), "{}", summary(full));
    for (full, quiet) in full.checks.iter().zip(&quiet.checks) {
        match &full.outcome {
            Outcome::Pass(note) => {
                assert!(!note.is_empty(), "{} passed without a note", full.id);
                assert_eq!(quiet.id, full.id);
                assert_eq!(quiet.outcome, Outcome::Pass("".into()), "{}", full.id);
                assert_eq!(
                    (&quiet.expected, &quiet.actual, &quiet.setting),
                    (&None, &None, &None),
                    "{}",
                    full.id
                );
                assert_eq!(quiet.unverified, full.unverified, "{}", full.id);
            }
            Outcome::Skip(_) | Outcome::Fail(_) => assert_eq!(quiet, full),
        }
    }
}

/// `id=result` for every check, for assertion messages.
pub(crate) fn summary(verdict: &Verdict) -> String {
    verdict
        .checks
        .iter()
        .map(|c| match c.message() {
            Some(message) => format!("{}={} ({message})", c.id, c.outcome.name()),
            None => format!("{}={}", c.id, c.outcome.name()),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The check with this id (`"aud"`, `"claim:tenant"`).
pub(crate) fn check<'v>(verdict: &'v Verdict, id: &str) -> &'v Check {
    verdict
        .checks
        .iter()
        .find(|c| c.id.to_string() == id)
        .unwrap_or_else(|| panic!("no check '{id}' in [{}]", summary(verdict)))
}

/// `pass`, `fail` or `skip` of the check with this id.
pub(crate) fn result(verdict: &Verdict, id: &str) -> &'static str {
    check(verdict, id).outcome.name()
}

/// The check ids of a verdict, in order.
pub(crate) fn ids(verdict: &Verdict) -> Vec<String> {
    verdict.checks.iter().map(|c| c.id.to_string()).collect()
}

/// The ids of the failed checks.
pub(crate) fn failed(verdict: &Verdict) -> Vec<String> {
    verdict.failures().map(|c| c.id.to_string()).collect()
}

/// The execution-log message of a failed check.
pub(crate) fn message(verdict: &Verdict, id: &str) -> String {
    check(verdict, id)
        .message()
        .unwrap_or_else(|| panic!("check '{id}' did not fail: [{}]", summary(verdict)))
}

/// The fix of a failed check.
pub(crate) fn fix(verdict: &Verdict, id: &str) -> String {
    check(verdict, id)
        .fix()
        .unwrap_or_else(|| panic!("check '{id}' did not fail: [{}]", summary(verdict)))
}

/// The skip reason of a skipped check.
pub(crate) fn skip_reason(verdict: &Verdict, id: &str) -> String {
    match &check(verdict, id).outcome {
        Outcome::Skip(why) => why.to_string(),
        other => panic!("check '{id}' is {other:?}, not skipped"),
    }
}

/// Asserts the verdict denies with 401 and that exactly these checks failed.
#[track_caller]
pub(crate) fn assert_denied_by(verdict: &Verdict, expected: &[&str]) {
    assert_eq!(
        failed(verdict),
        expected,
        "failed checks of [{}]",
        summary(verdict)
    );
    assert_eq!(
        verdict.decision,
        claimgate_core::Decision::Deny,
        "[{}]",
        summary(verdict)
    );
    assert_eq!(verdict.status, Some(401), "[{}]", summary(verdict));
    assert!(verdict.claims.is_none(), "a denied token exposes no claims");
}

/// Asserts the verdict allows with no failed check.
#[track_caller]
pub(crate) fn assert_allowed(verdict: &Verdict) {
    assert_eq!(
        failed(verdict),
        Vec::<String>::new(),
        "[{}]",
        summary(verdict)
    );
    assert_eq!(
        verdict.decision,
        claimgate_core::Decision::Allow,
        "[{}]",
        summary(verdict)
    );
}

/// Asserts the token is refused by the `format` check, whose message contains `detail`.
#[track_caller]
pub(crate) fn assert_malformed(verdict: &Verdict, detail: &str) {
    assert_denied_by(verdict, &["format"]);
    let message = message(verdict, "format");
    assert!(message.starts_with("JWT token is malformed: "), "{message}");
    assert!(message.ends_with('.'), "{message}");
    assert!(
        message.contains(detail),
        "{message:?} does not mention {detail:?}"
    );
    for later in [
        "alg",
        "key",
        "signature",
        "exp",
        "nbf",
        "iss",
        "aud",
        "active",
        "scope",
    ] {
        assert_eq!(
            result(verdict, later),
            "skip",
            "{later} after a format failure"
        );
    }
}

/// Replaces the last character of a base64url segment so that its unused low bits are set.
pub(crate) fn set_trailing_bits(segment: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let unused = match segment.len() % 4 {
        2 => 0b1111,
        3 => 0b11,
        _ => panic!("a segment of length {} has no unused bits", segment.len()),
    };
    let last = *segment.as_bytes().last().expect("non-empty");
    let index = ALPHABET
        .iter()
        .position(|c| *c == last)
        .expect("base64url character");
    let changed = ALPHABET[index | unused] as char;
    format!("{}{changed}", &segment[..segment.len() - 1])
}

/// The three segments of a compact token.
pub(crate) fn segments(token: &str) -> [String; 3] {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "not a three-segment token");
    [
        parts[0].to_owned(),
        parts[1].to_owned(),
        parts[2].to_owned(),
    ]
}
