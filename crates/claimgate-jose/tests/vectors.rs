//! Runs the public JOSE test vectors in `tests/data/vectors/` against claimgate-jose.
//!
//! The vector files are vendored in the repository (`tests/data/vectors/`, with their sources
//! and licences) and are found from `CARGO_MANIFEST_DIR`, never by an absolute path, so a clone
//! anywhere runs them. `tests/data/vectors/README.md` explains the Wycheproof
//! `testvectors_v1` schema and the divergences recorded here.
//!
//! Every JWS is judged at two layers:
//! - the *signature layer* (`(alg, key set, compact JWS)` with claim checks off): claimgate's
//!   header rules, the `alg`, the choice of key and the signature, with the payload taken as the
//!   opaque bytes that were signed;
//! - the *token layer*: `ParsedToken::parse` as the gateway calls it, which also requires the
//!   payload to be a JSON object (a JWT claims set).
//!
//! Almost no Wycheproof or RFC 7520 payload is a JSON object (`foo`, `Test`, `123400`, empty,
//! binary, prose). Their "valid" verdicts are therefore checked at the signature layer, and the
//! token layer is expected to refuse them with a payload error. RFC 7515 A.4 and RFC 8037 A.4
//! state the same split in their `expected_gateway_result`.
//!
//! Each test prints a short summary (`cargo test -p claimgate-jose --test vectors --
//! --nocapture`).

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use claimgate_jose::{
    parse_jwks, Algorithm, Claims, FormatError, JwksParse, Jws, KeyError, ParsedToken, PublicKey,
};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

// ---------------------------------------------------------------------------------------------
// Known failures
// ---------------------------------------------------------------------------------------------

/// Vector cases that reveal a bug in `crates/claimgate-jose/src` that is not fixed yet:
/// `(file, tcId, what goes wrong)`. For the two RFC files the id is the example's position in
/// the file, counted from 1.
///
/// Every test asserts that exactly these cases fail: a new failure breaks the suite, and so does
/// a listed case that passes again, so a fix must remove its entry. Empty: no vector has shown
/// a bug so far.
const KNOWN_FAILURES: &[(&str, u32, &str)] = &[];

/// Compares the failures a test saw with [`KNOWN_FAILURES`] for `file`.
fn check_failures(file: &str, failures: &[(u32, String)]) {
    let known: BTreeSet<u32> = KNOWN_FAILURES
        .iter()
        .filter(|(f, ..)| *f == file)
        .map(|(_, id, _)| *id)
        .collect();
    let seen: BTreeSet<u32> = failures.iter().map(|(id, _)| *id).collect();
    for (id, why) in failures.iter().filter(|(id, _)| known.contains(id)) {
        eprintln!("  known failure, {file} #{id}: {why}");
    }
    let unexpected: Vec<&(u32, String)> = failures
        .iter()
        .filter(|(id, _)| !known.contains(id))
        .collect();
    let fixed: Vec<&u32> = known.difference(&seen).collect();
    assert!(
        unexpected.is_empty() && fixed.is_empty(),
        "{file}: unexpected failures {unexpected:#?}; listed in KNOWN_FAILURES but passing now \
         (remove them from the list): {fixed:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Files and small decoders
// ---------------------------------------------------------------------------------------------

fn vectors_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/vectors")
}

fn load(name: &str) -> Value {
    let path = vectors_dir().join(name);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read {}: {e} (the vectors are vendored in tests/data/vectors)",
            path.display()
        )
    });
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{name} is not JSON: {e}"))
}

fn hex(text: &str) -> Vec<u8> {
    assert_eq!(text.len() % 2, 0, "odd-length hex {text:?}");
    (0..text.len())
        .step_by(2)
        .map(|i| {
            u8::from_str_radix(&text[i..i + 2], 16)
                .unwrap_or_else(|e| panic!("bad hex {text:?}: {e}"))
        })
        .collect()
}

/// Wraps DER SubjectPublicKeyInfo in a `PUBLIC KEY` PEM block.
fn pem_from_der(der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let mut pem = String::from("-----BEGIN PUBLIC KEY-----\n");
    for line in body.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        pem.push('\n');
    }
    pem.push_str("-----END PUBLIC KEY-----\n");
    pem
}

fn object(value: &Value) -> &Map<String, Value> {
    value
        .as_object()
        .unwrap_or_else(|| panic!("expected a JSON object, got {value}"))
}

fn text<'a>(value: &'a Value, name: &str) -> &'a str {
    value[name]
        .as_str()
        .unwrap_or_else(|| panic!("member '{name}' is not a string"))
}

fn array<'a>(value: &'a Value, name: &str) -> &'a [Value] {
    value[name]
        .as_array()
        .unwrap_or_else(|| panic!("member '{name}' is not an array"))
}

fn tc_id(test: &Value) -> u32 {
    let id = test["tcId"].as_u64().expect("tcId is a number");
    u32::try_from(id).expect("tcId fits u32")
}

/// JWK members that only a private or symmetric key has (RFC 7518 §6.2.2, §6.3.2, §6.4).
const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

fn strip_private(jwk: &Map<String, Value>) -> Map<String, Value> {
    jwk.iter()
        .filter(|(name, _)| !PRIVATE_MEMBERS.contains(&name.as_str()))
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect()
}

fn jwks_of(keys: &[&Map<String, Value>]) -> JwksParse {
    let document = json!({ "keys": keys });
    parse_jwks(&serde_json::to_vec(&document).expect("serializable")).expect("a key set document")
}

// ---------------------------------------------------------------------------------------------
// The signature and token layers
// ---------------------------------------------------------------------------------------------

/// Where a JWS was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Stage {
    /// `ParsedToken::parse`: segments, base64url, header JSON and header rules.
    Format,
    /// `alg` unknown (`none`, `HS256`, ...) or allowed by no usable key.
    Alg,
    /// No single usable key for the `kid` and `alg`.
    Key,
    /// The chosen key does not verify the signature.
    Signature,
}

#[derive(Debug)]
struct Rejection {
    stage: Stage,
    detail: String,
}

fn reject(stage: Stage, detail: impl Into<String>) -> Rejection {
    Rejection {
        stage,
        detail: detail.into(),
    }
}

/// What claimgate reads from a compact JWS.
#[derive(Debug)]
struct Reading {
    alg: String,
    kid: Option<String>,
    signing_input: Vec<u8>,
    signature: Vec<u8>,
    /// Why the token layer refuses the payload, if it does (not a JSON object).
    payload_problem: Option<String>,
}

/// `Jws::parse` (the verdict's one-pass reading) must accept and refuse exactly what
/// `ParsedToken::parse` does, with the same error, the same header values and the same claims.
fn assert_one_pass_reading_agrees(jws: &str) {
    match (ParsedToken::parse(jws), Jws::parse(jws)) {
        (Ok(tree), Ok(lean)) => {
            assert_eq!(lean.alg, tree.header.alg, "{jws}");
            assert_eq!(lean.kid, tree.header.kid, "{jws}");
            assert_eq!(lean.signing_input(), tree.signing_input(), "{jws}");
            assert_eq!(lean.signature(), tree.signature(), "{jws}");
            assert_eq!(
                Some(&lean.claims),
                Claims::from_map(&tree.payload).as_ref(),
                "{jws}"
            );
        }
        (Err(tree), Err(lean)) => assert_eq!(lean, tree, "{jws}"),
        (tree, lean) => panic!("the readings disagree on {jws}: {tree:?} vs {lean:?}"),
    }
}

fn read_jws(jws: &str) -> Result<Reading, Rejection> {
    assert_one_pass_reading_agrees(jws);
    match ParsedToken::parse(jws) {
        Ok(token) => Ok(Reading {
            alg: token.header.alg.clone(),
            kid: token.header.kid.clone(),
            signing_input: token.signing_input().to_vec(),
            signature: token.signature().to_vec(),
            payload_problem: None,
        }),
        Err(error @ FormatError::Json { .. }) if error.to_string().starts_with("the payload ") => {
            // Canonical base64url, but not a claims set. For the signature layer, let claimgate
            // check the header and the signature segment by parsing the same token with `{}`
            // (`e30`) as payload, and keep the bytes that were really signed.
            let mut parts = jws.split('.');
            let (Some(header), Some(payload), Some(signature)) =
                (parts.next(), parts.next(), parts.next())
            else {
                unreachable!("the parser got past the segment count")
            };
            let stand_in = ParsedToken::parse(&format!("{header}.e30.{signature}"))
                .map_err(|e| reject(Stage::Format, e.to_string()))?;
            Ok(Reading {
                alg: stand_in.header.alg.clone(),
                kid: stand_in.header.kid.clone(),
                signing_input: format!("{header}.{payload}").into_bytes(),
                signature: stand_in.signature().to_vec(),
                payload_problem: Some(error.to_string()),
            })
        }
        Err(error) => Err(reject(Stage::Format, error.to_string())),
    }
}

fn skipped_summary(keys: &JwksParse) -> String {
    if keys.skipped.is_empty() {
        return "none".into();
    }
    keys.skipped
        .iter()
        .map(|s| format!("#{} {:?}: {}", s.index, s.kid, s.reason))
        .collect::<Vec<_>>()
        .join("; ")
}

/// The signature layer: `alg`, key choice (as claimgate-core chooses: by `kid`, else the only key
/// allowing the `alg`) and the signature.
fn judge(reading: &Reading, keys: &JwksParse) -> Result<(), Rejection> {
    let Some(alg) = Algorithm::from_name(&reading.alg) else {
        return Err(reject(
            Stage::Alg,
            format!("alg '{}' is not supported", reading.alg),
        ));
    };
    let allowed = keys.keys.algorithms();
    if !allowed.contains(alg) {
        return Err(reject(
            Stage::Alg,
            format!(
                "alg {alg} is allowed by no usable key (usable keys allow {:?}; skipped keys: {})",
                allowed.names(),
                skipped_summary(keys)
            ),
        ));
    }
    let named: Vec<&PublicKey> = match &reading.kid {
        Some(kid) => keys
            .keys
            .keys()
            .iter()
            .filter(|k| k.kid() == Some(kid.as_str()))
            .collect(),
        None => keys.keys.keys().iter().collect(),
    };
    if named.is_empty() {
        return Err(reject(
            Stage::Key,
            format!("no usable key has kid {:?}", reading.kid),
        ));
    }
    let usable: Vec<&PublicKey> = named
        .into_iter()
        .filter(|k| k.allowed().contains(alg))
        .collect();
    let key = match usable.as_slice() {
        [key] => *key,
        [] => {
            return Err(reject(
                Stage::Key,
                format!("the key with kid {:?} does not allow {alg}", reading.kid),
            ))
        }
        many => {
            return Err(reject(
                Stage::Key,
                format!("{} keys could verify {alg}", many.len()),
            ))
        }
    };
    if !key.verify(alg, &reading.signing_input, &reading.signature) {
        return Err(reject(
            Stage::Signature,
            format!("the signature does not verify with {:?} ({alg})", key.kid()),
        ));
    }
    Ok(())
}

/// Both layers' verdicts on one compact JWS.
#[derive(Debug)]
struct Verdict {
    signature_layer: Result<(), Rejection>,
    /// Whether `ParsedToken::parse` alone accepts the token (claims set included).
    claims_set: bool,
}

impl Verdict {
    fn token_layer_accepts(&self) -> bool {
        self.signature_layer.is_ok() && self.claims_set
    }
}

fn evaluate(jws: &str, keys: &JwksParse) -> Verdict {
    match read_jws(jws) {
        Ok(reading) => Verdict {
            claims_set: reading.payload_problem.is_none(),
            signature_layer: judge(&reading, keys),
        },
        Err(rejection) => Verdict {
            signature_layer: Err(rejection),
            claims_set: false,
        },
    }
}

/// A recorded difference between upstream's `result` and claimgate, or a rejection whose stage
/// is pinned so that it cannot pass for an unrelated reason.
#[derive(Debug)]
struct Expectation {
    tc_id: u32,
    /// `None`: claimgate accepts. `Some((stage, text))`: refused at `stage`, with `text` in the
    /// detail.
    outcome: Option<(Stage, &'static str)>,
    reason: &'static str,
}

const NO_HMAC: &str = "claimgate does not support HMAC: it verifies with public keys only, so \
     an oct JWK is refused (kty 'oct') and HS256/384/512 are unknown algs";

/// Matches a verdict against an expectation; `None` when it holds.
fn mismatch(verdict: &Verdict, expected: Option<(Stage, &str)>) -> Option<String> {
    match (&verdict.signature_layer, expected) {
        (Ok(()), None) => None,
        (Ok(()), Some((stage, text))) => Some(format!(
            "accepted at the signature layer; expected a {stage:?} rejection mentioning {text:?}"
        )),
        (Err(r), None) => Some(format!("refused ({:?}: {})", r.stage, r.detail)),
        (Err(r), Some((stage, text))) if r.stage == stage && r.detail.contains(text) => None,
        (Err(r), Some((stage, text))) => Some(format!(
            "refused at {:?} ({}); expected {stage:?} mentioning {text:?}",
            r.stage, r.detail
        )),
    }
}

// ---------------------------------------------------------------------------------------------
// 1. Primitive files
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Default)]
struct PrimitiveCounts {
    groups: usize,
    keys_from_jwk: usize,
    keys_from_der: usize,
    keys_refused: usize,
    valid_verified: usize,
    invalid_refused: usize,
    invalid_with_refused_key: usize,
    acceptable_accepted: usize,
    acceptable_refused: usize,
}

/// Runs a Wycheproof primitive file. `algs` are the names the signature must verify under (two
/// for Ed25519: `EdDSA` and its RFC 9864 name); every other algorithm must refuse a valid
/// signature.
fn run_primitive(file: &str, algs: &[Algorithm]) {
    let doc = load(file);
    let alg = algs[0];
    let mut counts = PrimitiveCounts::default();
    let mut failures: Vec<(u32, String)> = Vec::new();
    for group in array(&doc, "testGroups") {
        counts.groups += 1;
        let tests = array(group, "tests");
        let first_id = tc_id(&tests[0]);
        let der = hex(text(group, "publicKeyDer"));
        let der_key = PublicKey::from_pem(&pem_from_der(&der), None);
        let jwk = group.get("publicKeyJwk").or_else(|| group.get("keyJwk"));
        let jwk_key = jwk.map(|jwk| PublicKey::from_jwk(object(jwk)));
        if let Some(jwk_key) = &jwk_key {
            if jwk_key.is_ok() != der_key.is_ok() {
                failures.push((
                    first_id,
                    format!(
                        "the group's JWK and DER keys disagree: JWK {:?}, DER {:?}",
                        jwk_key.as_ref().err(),
                        der_key.as_ref().err()
                    ),
                ));
            }
        }
        let (key, source) = match jwk_key {
            Some(key) => (key, "JWK"),
            None => (der_key.clone(), "DER"),
        };
        match (&key, source) {
            (Err(_), _) => counts.keys_refused += 1,
            (Ok(_), "JWK") => counts.keys_from_jwk += 1,
            (Ok(_), _) => counts.keys_from_der += 1,
        }
        for test in tests {
            let id = tc_id(test);
            let result = text(test, "result");
            let key = match &key {
                Ok(key) => key,
                Err(error) if result == "valid" => {
                    failures.push((
                        id,
                        format!("valid, but the {source} key is refused: {error}"),
                    ));
                    continue;
                }
                Err(_) => {
                    counts.invalid_with_refused_key += 1;
                    continue;
                }
            };
            let msg = hex(text(test, "msg"));
            let sig = hex(text(test, "sig"));
            let verified = key.verify(alg, &msg, &sig);
            for other in &algs[1..] {
                if key.verify(*other, &msg, &sig) != verified {
                    failures.push((id, format!("{alg} and {other} disagree")));
                }
            }
            if let (Ok(der_key), "JWK") = (&der_key, source) {
                if der_key.verify(alg, &msg, &sig) != verified {
                    failures.push((id, "the JWK and DER keys disagree on the signature".into()));
                }
            }
            match (result, verified) {
                ("valid", true) => counts.valid_verified += 1,
                ("invalid", false) => counts.invalid_refused += 1,
                ("acceptable", true) => counts.acceptable_accepted += 1,
                ("acceptable", false) => counts.acceptable_refused += 1,
                ("valid" | "invalid", _) => failures.push((
                    id,
                    format!(
                        "{result} but verify returned {verified} ({}; flags {})",
                        test["comment"], test["flags"]
                    ),
                )),
                (other, _) => panic!("{file} tcId {id}: unknown result {other:?}"),
            }
            if verified {
                // The wrong primitive never verifies: another hash, padding or curve.
                let keys = [Some(key), der_key.as_ref().ok()];
                for other in Algorithm::ALL.iter().filter(|a| !algs.contains(a)) {
                    if keys.iter().flatten().any(|k| k.verify(*other, &msg, &sig)) {
                        failures
                            .push((id, format!("the {alg} signature also verifies as {other}")));
                    }
                }
            }
        }
    }
    eprintln!(
        "{file}: {} groups (keys: {} from JWK, {} from DER, {} refused); valid verified {}, \
         invalid refused {} (+{} under a refused key), acceptable accepted {} / refused {}",
        counts.groups,
        counts.keys_from_jwk,
        counts.keys_from_der,
        counts.keys_refused,
        counts.valid_verified,
        counts.invalid_refused,
        counts.invalid_with_refused_key,
        counts.acceptable_accepted,
        counts.acceptable_refused,
    );
    assert!(counts.valid_verified > 0, "{file}: no valid case ran");
    check_failures(file, &failures);
}

#[test]
fn wycheproof_rsa_pkcs1_2048_sha256() {
    run_primitive(
        "wycheproof_rsa_signature_2048_sha256_test.json",
        &[Algorithm::RS256],
    );
}

#[test]
fn wycheproof_rsa_pss_2048_sha256_mgf1_32() {
    run_primitive(
        "wycheproof_rsa_pss_2048_sha256_mgf1_32_test.json",
        &[Algorithm::PS256],
    );
}

#[test]
fn wycheproof_ecdsa_p256_p1363() {
    run_primitive(
        "wycheproof_ecdsa_secp256r1_sha256_p1363_test.json",
        &[Algorithm::ES256],
    );
}

#[test]
fn wycheproof_ecdsa_p384_p1363() {
    run_primitive(
        "wycheproof_ecdsa_secp384r1_sha384_p1363_test.json",
        &[Algorithm::ES384],
    );
}

#[test]
fn wycheproof_ecdsa_p521_p1363() {
    run_primitive(
        "wycheproof_ecdsa_secp521r1_sha512_p1363_test.json",
        &[Algorithm::ES512],
    );
}

#[test]
fn wycheproof_ed25519() {
    run_primitive(
        "wycheproof_ed25519_test.json",
        &[Algorithm::EdDSA, Algorithm::Ed25519],
    );
}

// ---------------------------------------------------------------------------------------------
// 2. wycheproof_json_web_signature_test.json
// ---------------------------------------------------------------------------------------------

const JWS_FILE: &str = "wycheproof_json_web_signature_test.json";

/// Cases upstream marks `valid` that claimgate refuses on purpose.
const JWS_DIVERGENCES: &[Expectation] = &[
    Expectation {
        tc_id: 1,
        outcome: Some((Stage::Alg, "HS256")),
        reason: NO_HMAC,
    },
    Expectation {
        tc_id: 348,
        outcome: Some((Stage::Alg, "HS256")),
        reason: NO_HMAC,
    },
    Expectation {
        tc_id: 352,
        outcome: Some((Stage::Alg, "HS256")),
        reason: NO_HMAC,
    },
    Expectation {
        tc_id: 357,
        outcome: Some((Stage::Alg, "HS256")),
        reason: NO_HMAC,
    },
    Expectation {
        tc_id: 358,
        outcome: Some((Stage::Alg, "HS256")),
        reason: NO_HMAC,
    },
    Expectation {
        tc_id: 359,
        outcome: Some((Stage::Alg, "HS256")),
        reason: NO_HMAC,
    },
    Expectation {
        tc_id: 376,
        outcome: Some((Stage::Alg, "HS256")),
        reason: NO_HMAC,
    },
    Expectation {
        tc_id: 377,
        outcome: Some((Stage::Alg, "HS256")),
        reason: NO_HMAC,
    },
    Expectation {
        tc_id: 372,
        outcome: Some((Stage::Format, "the header is not base64url: character '?'")),
        reason: "a '?' inserted in the header: RFC 7515 §2 base64url has no such character; \
                 upstream's 'valid' holds only for decoders that skip characters (vectors \
                 README). HS256 besides.",
    },
    Expectation {
        tc_id: 373,
        outcome: Some((Stage::Format, "the payload is not base64url: character '?'")),
        reason: "a '?' inserted in the payload: RFC 7515 §2 base64url has no such character; \
                 upstream's 'valid' holds only for decoders that skip characters (vectors \
                 README). HS256 besides.",
    },
    Expectation {
        tc_id: 346,
        outcome: Some((Stage::Alg, "alg PS384 is allowed by no usable key")),
        reason: "RFC 7520 figure 20: the JWK says alg PS256, the token is PS384; a key is \
                 pinned to its JWK alg (vectors README)",
    },
    Expectation {
        tc_id: 350,
        outcome: Some((Stage::Alg, "alg PS384 is allowed by no usable key")),
        reason: "RFC 7520 figure 20 (key_ops variant): the JWK says alg PS256, the token is \
                 PS384; a key is pinned to its JWK alg (vectors README)",
    },
    Expectation {
        tc_id: 347,
        outcome: Some((Stage::Alg, "alg 'ES521' is not supported")),
        reason: "RFC 7520 figure 27: the JWK says alg 'ES521', which is no registered alg, so \
                 the key is refused at ingestion and no key allows ES512 (vectors README)",
    },
    Expectation {
        tc_id: 351,
        outcome: Some((Stage::Alg, "alg 'ES521' is not supported")),
        reason: "RFC 7520 figure 27 (key_ops variant): JWK alg 'ES521' is no registered alg; \
                 the key is refused at ingestion (vectors README)",
    },
];

/// Cases upstream marks `invalid` whose rejection stage is pinned, so that they cannot pass
/// for an unrelated reason.
const JWS_PINNED: &[Expectation] = &[
    Expectation {
        tc_id: 17,
        outcome: Some((Stage::Format, "segment")),
        reason: "JSON serialization: claimgate reads compact JWS only (vectors README)",
    },
    Expectation {
        tc_id: 31,
        outcome: Some((Stage::Alg, "alg 'HS256' is not supported")),
        reason: "HS256 keyed with the EC public key's bytes (key confusion)",
    },
    Expectation {
        tc_id: 32,
        outcome: Some((Stage::Signature, "does not verify")),
        reason: "an embedded attacker jwk is never used; the configured key refuses it",
    },
    Expectation {
        tc_id: 332,
        outcome: Some((Stage::Alg, "alg RS256 is allowed by no usable key")),
        reason: "wrong primitive: RS256 token for a PS512 key",
    },
    Expectation {
        tc_id: 341,
        outcome: Some((Stage::Alg, "'none'")),
        reason: "alg none",
    },
    Expectation {
        tc_id: 342,
        outcome: Some((Stage::Alg, "'NONE'")),
        reason: "alg NONE",
    },
    Expectation {
        tc_id: 353,
        outcome: Some((Stage::Alg, "use is 'enc'")),
        reason: "RSA key with use enc is refused at ingestion",
    },
    Expectation {
        tc_id: 354,
        outcome: Some((Stage::Alg, "use is 'enc'")),
        reason: "EC key with use enc is refused at ingestion",
    },
    Expectation {
        tc_id: 355,
        outcome: Some((Stage::Alg, "does not include 'verify'")),
        reason: "RSA key with key_ops [encrypt] is refused at ingestion",
    },
    Expectation {
        tc_id: 356,
        outcome: Some((Stage::Alg, "does not include 'verify'")),
        reason: "EC key with key_ops [encrypt] is refused at ingestion",
    },
    Expectation {
        tc_id: 360,
        outcome: Some((Stage::Format, "the signature is not base64url")),
        reason: "spaces before the MAC",
    },
    Expectation {
        tc_id: 374,
        outcome: Some((Stage::Format, "non-zero trailing bits")),
        reason: "payload 'AB' has non-zero unused bits",
    },
    Expectation {
        tc_id: 386,
        outcome: Some((Stage::Signature, "does not verify")),
        reason: "ES256 r = s = 0 (psychic signature)",
    },
];

/// Upstream cases whose JWS is byte-for-byte another case's, with the opposite `result`:
/// `(tcId, identical to tcId)`. `invalidBase64Padding` (367) and `invalidBase64PaddingInPayload`
/// (370) carry no `=` at all in this version of the file; they equal `ValidMac` (357). claimgate
/// refuses all three (HS256), so nothing diverges today, but an HMAC-capable verifier would have
/// to list 367 and 370 as "invalid but accepted". The test asserts the duplication so that a
/// corrected upstream file is noticed.
const JWS_UPSTREAM_DUPLICATES: &[(u32, u32)] = &[(367, 357), (370, 357)];

/// The key set a Wycheproof JWS/JWK group verifies with: `public` if it has one, else
/// `private` (the HMAC groups, whose only key is the shared secret). A single JWK becomes a
/// one-key set.
fn group_key_set(group: &Value) -> (Vec<&Map<String, Value>>, JwksParse) {
    let source = match group.get("public") {
        Some(public) if !public.is_null() => public,
        _ => &group["private"],
    };
    let jwks: Vec<&Map<String, Value>> = match source.get("keys") {
        Some(keys) => keys.as_array().expect("keys").iter().map(object).collect(),
        None => vec![object(source)],
    };
    let parsed = jwks_of(&jwks);
    (jwks, parsed)
}

fn expectation_index(list: &'static [Expectation]) -> BTreeMap<u32, &'static Expectation> {
    let mut index = BTreeMap::new();
    for entry in list {
        assert!(
            index.insert(entry.tc_id, entry).is_none(),
            "tcId {} is listed twice",
            entry.tc_id
        );
    }
    index
}

#[test]
fn wycheproof_json_web_signature() {
    let doc = load(JWS_FILE);
    let divergences = expectation_index(JWS_DIVERGENCES);
    let pinned = expectation_index(JWS_PINNED);
    let mut failures: Vec<(u32, String)> = Vec::new();
    let mut seen = BTreeSet::new();
    let mut refused_by_stage: BTreeMap<Stage, usize> = BTreeMap::new();
    let (mut valid_signature_layer, mut valid_token_layer, mut json_serialized) = (0, 0, 0);
    let mut not_a_claims_set = Vec::new();
    let mut tokens: BTreeMap<u32, (String, String)> = BTreeMap::new();
    for group in array(&doc, "testGroups") {
        let (jwks, keys) = group_key_set(group);
        // parse_jwks and from_jwk agree on every key.
        for (index, jwk) in jwks.iter().enumerate() {
            let direct = PublicKey::from_jwk(jwk).is_ok();
            let in_set = !keys.skipped.iter().any(|s| s.index == index);
            assert_eq!(direct, in_set, "group {}: key #{index}", group["comment"]);
        }
        for test in array(group, "tests") {
            let id = tc_id(test);
            seen.insert(id);
            let jws = text(test, "jws");
            let result = text(test, "result");
            tokens.insert(id, (jws.to_owned(), result.to_owned()));
            if jws.trim_start().starts_with('{') {
                json_serialized += 1;
                if ParsedToken::parse(jws).is_ok() {
                    failures.push((id, "ParsedToken::parse accepts a JSON serialization".into()));
                }
            }
            let verdict = evaluate(jws, &keys);
            if let Err(r) = &verdict.signature_layer {
                *refused_by_stage.entry(r.stage).or_default() += 1;
            }
            let problem = match (result, divergences.get(&id), pinned.get(&id)) {
                ("valid", Some(divergence), _) => mismatch(&verdict, divergence.outcome),
                ("valid", None, _) => {
                    if verdict.signature_layer.is_ok() {
                        valid_signature_layer += 1;
                        if verdict.token_layer_accepts() {
                            valid_token_layer += 1;
                        } else {
                            not_a_claims_set.push(id);
                        }
                    }
                    mismatch(&verdict, None)
                }
                ("invalid", Some(_), _) => {
                    panic!("tcId {id} is invalid upstream; it is no divergence")
                }
                ("invalid", None, Some(pin)) => mismatch(&verdict, pin.outcome),
                ("invalid", None, None) => verdict
                    .signature_layer
                    .is_ok()
                    .then(|| "invalid, but accepted at the signature layer".to_owned()),
                (other, ..) => panic!("tcId {id}: unexpected result {other:?}"),
            };
            if let Some(problem) = problem {
                failures.push((id, format!("{} ({}): {problem}", test["comment"], result)));
            }
            if verdict.token_layer_accepts() && result != "valid" {
                failures.push((id, "the token layer accepts an invalid case".into()));
            }
        }
    }
    for id in divergences.keys().chain(pinned.keys()) {
        assert!(seen.contains(id), "listed tcId {id} is not in {JWS_FILE}");
    }
    for (id, twin) in JWS_UPSTREAM_DUPLICATES {
        let (a, b) = (&tokens[id], &tokens[twin]);
        assert_eq!(
            a.0, b.0,
            "tcId {id} no longer equals tcId {twin}: revisit the note"
        );
        eprintln!(
            "  upstream oddity: tcId {id} ({}) is byte-identical to tcId {twin} ({}); both refused",
            a.1, b.1
        );
    }
    eprintln!(
        "{JWS_FILE}: {} cases ({json_serialized} JSON-serialized, refused by parse); valid: \
         {valid_signature_layer} verified at the signature layer, {valid_token_layer} accepted \
         by the token layer, {} deliberate divergences; refused by stage {refused_by_stage:?}",
        seen.len(),
        JWS_DIVERGENCES.len(),
    );
    eprintln!(
        "  valid at the signature layer but no JWT (payload is not a JSON object): \
         {not_a_claims_set:?}"
    );
    for d in JWS_DIVERGENCES {
        eprintln!("  divergence tcId {}: {}", d.tc_id, d.reason);
    }
    check_failures(JWS_FILE, &failures);
}

// ---------------------------------------------------------------------------------------------
// 3. wycheproof_json_web_key_test.json
// ---------------------------------------------------------------------------------------------

const JWK_FILE: &str = "wycheproof_json_web_key_test.json";

/// Cases where claimgate's signature-layer verdict differs from upstream on purpose.
const JWK_DIVERGENCES: &[Expectation] = &[
    Expectation {
        tc_id: 2,
        outcome: Some((Stage::Alg, "HS256")),
        reason: NO_HMAC,
    },
    Expectation {
        tc_id: 13,
        outcome: Some((Stage::Alg, "HS256")),
        reason: NO_HMAC,
    },
    Expectation {
        tc_id: 14,
        outcome: Some((Stage::Alg, "HS384")),
        reason: NO_HMAC,
    },
    Expectation {
        tc_id: 15,
        outcome: Some((Stage::Alg, "HS512")),
        reason: NO_HMAC,
    },
    Expectation {
        tc_id: 7,
        outcome: None,
        reason: "ROCA-affected RSA key (2049 bits, e=65537): claimgate has no ROCA fingerprint \
                 check, so the key is usable and the signature verifies. Rejecting ROCA keys \
                 is optional (a fingerprint test, not a signature rule); upstream expects it. \
                 The token layer still refuses this token (payload 'foo' is no claims set).",
    },
];

/// What ingestion must make of each key in a group's key set, by tcId: `Ok` = usable, or the
/// `KeyError` that `from_jwk` must give.
fn check_jwk_ingestion(id: u32, results: &[Result<PublicKey, KeyError>]) -> Result<(), String> {
    use KeyError as E;
    let oct =
        |r: &Result<PublicKey, KeyError>| matches!(r, Err(E::UnsupportedKty(k)) if k == "oct");
    let ok = match (id, results) {
        // Mixed set: the HMAC key is refused, the EC public key stays usable (keys are judged one
        // by one); the HS256 token then has no key.
        (1, [hmac, ec]) => oct(hmac) && ec.is_ok(),
        // HMAC sets, also the duplicate-kid one: both keys are refused before the kid rule.
        (2..=4, [a, b]) => oct(a) && oct(b),
        (5, [Ok(_)]) => true,
        (6, [Err(E::WrongUse(u))]) => u == "enc",
        // ROCA: see JWK_DIVERGENCES.
        (7, [Ok(key)]) => key.kind().to_string() == "RSA 2049-bit",
        (8, [Err(E::RsaTooSmall(1024))]) => true,
        (9, [Err(E::BadExponent(why))]) => why.contains("is 1"),
        // Short, long and empty HMAC keys, AES keys: all oct.
        (10..=18 | 25 | 26, [key]) => oct(key),
        (19, [Err(E::UnknownAlgorithm(a))]) => a == "ES521",
        (20, [Err(E::UnknownAlgorithm(a))]) => a == "ES224",
        (21, [Err(E::WrongUse(u))]) => u == "enc",
        (22, [Err(E::InvalidKey(_))]) => true,
        (
            23,
            [Err(E::CoordinateLength {
                expected: 48,
                actual: 32,
                ..
            })],
        ) => true,
        (24, [Err(E::MissingMember("n"))]) => true,
        _ => false,
    };
    let shown: Vec<String> = results
        .iter()
        .map(|r| match r {
            Ok(key) => format!("usable {}", key.kind()),
            Err(e) => format!("refused: {e} ({e:?})"),
        })
        .collect();
    if ok {
        Ok(())
    } else {
        Err(format!("unexpected ingestion {shown:?}"))
    }
}

#[test]
fn wycheproof_json_web_key() {
    let doc = load(JWK_FILE);
    let divergences = expectation_index(JWK_DIVERGENCES);
    let mut failures: Vec<(u32, String)> = Vec::new();
    let mut seen = BTreeSet::new();
    let (mut usable_keys, mut refused_keys) = (0, 0);
    let (mut valid_accepted, mut invalid_refused) = (0, 0);
    for group in array(&doc, "testGroups") {
        let (jwks, keys) = group_key_set(group);
        let results: Vec<Result<PublicKey, KeyError>> =
            jwks.iter().map(|jwk| PublicKey::from_jwk(jwk)).collect();
        usable_keys += keys.keys.keys().len();
        refused_keys += keys.skipped.len();
        for test in array(group, "tests") {
            let id = tc_id(test);
            seen.insert(id);
            let result = text(test, "result");
            if let Err(why) = check_jwk_ingestion(id, &results) {
                failures.push((id, format!("{}: {why}", group["comment"])));
            }
            let usable_in_set = results.iter().filter(|r| r.is_ok()).count();
            if usable_in_set != keys.keys.keys().len() {
                failures.push((id, "parse_jwks and from_jwk disagree".into()));
            }
            let verdict = evaluate(text(test, "jws"), &keys);
            let expected = match (divergences.get(&id), result) {
                (Some(divergence), _) => divergence.outcome,
                (None, "valid") => None,
                (None, "invalid") => {
                    if verdict.signature_layer.is_err() {
                        invalid_refused += 1;
                    } else {
                        failures.push((id, format!("{}: invalid, but accepted", test["comment"])));
                    }
                    continue;
                }
                (None, other) => panic!("tcId {id}: unexpected result {other:?}"),
            };
            if result == "valid" && verdict.signature_layer.is_ok() {
                valid_accepted += 1;
            }
            if let Some(problem) = mismatch(&verdict, expected) {
                failures.push((id, format!("{} ({result}): {problem}", test["comment"])));
            }
        }
    }
    for id in divergences.keys() {
        assert!(seen.contains(id), "listed tcId {id} is not in {JWK_FILE}");
    }
    eprintln!(
        "{JWK_FILE}: {} cases; keys usable {usable_keys}, refused {refused_keys}; valid accepted \
         at the signature layer {valid_accepted}; invalid refused {invalid_refused}; {} \
         deliberate divergences",
        seen.len(),
        JWK_DIVERGENCES.len()
    );
    for d in JWK_DIVERGENCES {
        eprintln!("  divergence tcId {}: {}", d.tc_id, d.reason);
    }
    check_failures(JWK_FILE, &failures);
}

/// Derived from the JWK file (flag `DuplicateKid`): its duplicate-kid set holds HMAC keys, which
/// claimgate refuses before the kid rule can apply, so the rule is exercised with the file's two
/// RSA public keys published under one kid.
#[test]
fn wycheproof_json_web_key_duplicate_kid_with_public_keys() {
    let doc = load(JWK_FILE);
    let groups = array(&doc, "testGroups");
    let group_with = |comment: &str| {
        groups
            .iter()
            .find(|g| g["comment"] == comment && g["public"].is_object())
            .unwrap_or_else(|| panic!("no group {comment}"))
    };
    let rs256 = group_with("rs256");
    let signer = object(&rs256["public"]["keys"][0]).clone();
    let mut other = object(&group_with("jws_rsa_roca_key")["public"]["keys"][0]).clone();
    other.insert("kid".into(), signer["kid"].clone());
    let token = text(&array(rs256, "tests")[0], "jws");

    let alone = evaluate(token, &jwks_of(&[&signer]));
    assert!(alone.signature_layer.is_ok(), "{alone:?}");
    let both = jwks_of(&[&signer, &other]);
    assert!(both.keys.is_empty(), "two RSA keys share a kid: {both:?}");
    assert!(both
        .skipped
        .iter()
        .all(|s| s.reason.contains("more than one")));
    let verdict = evaluate(token, &both);
    assert_eq!(
        verdict.signature_layer.as_ref().map_err(|r| r.stage),
        Err(Stage::Alg)
    );
    eprintln!(
        "{JWK_FILE} (derived): duplicate kid on two RSA keys: both skipped ({}), token refused",
        skipped_summary(&both)
    );
}

/// Every key that carries private members, in the `private` sets of both Wycheproof JOSE files,
/// is refused by `from_jwk` and skipped by `parse_jwks`.
#[test]
fn wycheproof_private_key_sets_are_never_usable() {
    let (mut private_keys, mut public_keys) = (0, 0);
    for file in [JWS_FILE, JWK_FILE] {
        let doc = load(file);
        for group in array(&doc, "testGroups") {
            let private = &group["private"];
            let jwks: Vec<&Map<String, Value>> = match private.get("keys") {
                Some(keys) => keys.as_array().expect("keys").iter().map(object).collect(),
                None => vec![object(private)],
            };
            let parsed = jwks_of(&jwks);
            for (index, jwk) in jwks.iter().enumerate() {
                let secret = PRIVATE_MEMBERS.iter().any(|m| jwk.contains_key(*m));
                if !secret {
                    public_keys += 1;
                    continue;
                }
                private_keys += 1;
                let error = PublicKey::from_jwk(jwk).expect_err("a private key is refused");
                assert!(
                    matches!(&error, KeyError::PrivateMember(_))
                        || matches!(&error, KeyError::UnsupportedKty(k) if k == "oct"),
                    "{file} {}: {error:?}",
                    group["comment"]
                );
                assert!(parsed.skipped.iter().any(|s| s.index == index));
            }
        }
    }
    eprintln!(
        "private key sets: {private_keys} keys with private members refused, {public_keys} \
         public keys among them"
    );
    assert!(private_keys > 0);
}

// ---------------------------------------------------------------------------------------------
// 4. RFC 7515 / RFC 8037 examples and the RFC 7520 cookbook
// ---------------------------------------------------------------------------------------------

const RFC7515_FILE: &str = "rfc7515_rfc8037_examples.json";
const COOKBOOK_FILE: &str = "rfc7520_cookbook_jws_4_1-4_4.json";

/// Whether a P-256 r‖s signature has s > n/2 ("high S").
fn p256_high_s(signature: &[u8]) -> bool {
    const HALF_N: [u8; 32] = [
        0x7f, 0xff, 0xff, 0xff, 0x80, 0x00, 0x00, 0x00, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xde, 0x73, 0x7d, 0x56, 0xd3, 0x8b, 0xcf, 0x42, 0x79, 0xdc, 0xe5, 0x61, 0x7e, 0x31,
        0x92, 0xa8,
    ];
    signature.len() == 64 && signature[32..] > HALF_N[..]
}

#[test]
fn rfc7515_rfc8037_examples() {
    let doc = load(RFC7515_FILE);
    let mut failures: Vec<(u32, String)> = Vec::new();
    let (mut verified, mut token_layer, mut refused) = (Vec::new(), Vec::new(), Vec::new());
    let vectors = array(&doc, "vectors");
    // Keys of every example, for `alg: none`, which must fail whatever keys are configured.
    let all_public: Vec<&Map<String, Value>> = vectors
        .iter()
        .filter_map(|v| v["jwk"].as_object())
        .filter(|jwk| jwk["kty"] != "oct")
        .collect();
    for (position, vector) in vectors.iter().enumerate() {
        let number = u32::try_from(position + 1).expect("small");
        let name = text(vector, "id");
        let alg = text(vector, "alg");
        let jws = text(vector, "jws");
        let verdict;
        let problem = match alg {
            "none" => {
                verdict = evaluate(jws, &jwks_of(&all_public));
                mismatch(&verdict, Some((Stage::Alg, "alg 'none' is not supported")))
            }
            "HS256" => {
                let error = PublicKey::from_jwk(object(&vector["jwk"])).expect_err("oct");
                assert_eq!(error, KeyError::UnsupportedKty("oct".into()));
                verdict = evaluate(jws, &jwks_of(&[object(&vector["jwk"])]));
                mismatch(&verdict, Some((Stage::Alg, "alg 'HS256' is not supported")))
            }
            _ => {
                assert_eq!(vector["signature_valid_with_jwk"], true, "{name}");
                verdict = evaluate(jws, &jwks_of(&[object(&vector["jwk"])]));
                let payload_is_object = vector["payload_decoded"]
                    .as_str()
                    .is_some_and(|p| serde_json::from_str::<Map<String, Value>>(p).is_ok());
                if verdict.claims_set != payload_is_object {
                    failures.push((number, format!("{name}: token layer claims_set mismatch")));
                }
                if alg == "ES256" {
                    // RFC 7515 A.3 is high-S and must verify: no low-S rule (vectors README).
                    let signature = ParsedToken::parse(jws).expect("A.3 is a JWT");
                    assert!(p256_high_s(signature.signature()), "A.3 is high-S");
                }
                mismatch(&verdict, None)
            }
        };
        match &verdict.signature_layer {
            Ok(()) => verified.push(name),
            Err(_) => refused.push(name),
        }
        if verdict.token_layer_accepts() {
            token_layer.push(name);
        }
        if let Some(problem) = problem {
            failures.push((number, format!("{name}: {problem}")));
        }
    }
    eprintln!(
        "{RFC7515_FILE}: verified at the signature layer {verified:?}; accepted by the token \
         layer (JSON claims set) {token_layer:?}; refused {refused:?} (none and HS256)"
    );
    check_failures(RFC7515_FILE, &failures);
}

#[test]
fn rfc7520_cookbook() {
    let doc = load(COOKBOOK_FILE);
    let mut failures: Vec<(u32, String)> = Vec::new();
    let (mut verified, mut refused, mut json_forms) = (Vec::new(), Vec::new(), 0);
    for (position, example) in array(&doc, "examples").iter().enumerate() {
        let number = u32::try_from(position + 1).expect("small");
        let alg = text(&example["input"], "alg");
        let title = text(example, "title");
        let full_key = object(&example["input"]["key"]);
        // The published JWK has private members: claimgate refuses it as it stands.
        let error = PublicKey::from_jwk(full_key).expect_err("private members");
        let expected_error = if alg.starts_with("HS") {
            KeyError::UnsupportedKty("oct".into())
        } else {
            KeyError::PrivateMember("d".into())
        };
        assert_eq!(error, expected_error, "{title}");
        let public = strip_private(full_key);
        let keys = jwks_of(&[&public]);
        let compact = text(&example["output"], "compact");
        let signing = &example["signing"];
        assert!(compact.starts_with(&format!("{}.", text(signing, "sig-input"))));
        let verdict = evaluate(compact, &keys);
        let expected = if alg.starts_with("HS") {
            Some((Stage::Alg, "alg 'HS256' is not supported"))
        } else {
            None
        };
        if let Some(problem) = mismatch(&verdict, expected) {
            failures.push((number, format!("{title} ({alg}): {problem}")));
        }
        // The payload is prose, not a claims set: the token layer refuses every example.
        if verdict.claims_set {
            failures.push((
                number,
                format!("{title}: the payload parsed as a claims set"),
            ));
        }
        match verdict.signature_layer {
            Ok(()) => verified.push(alg),
            Err(_) => refused.push(alg),
        }
        for form in ["json", "json_flat"] {
            let serialized = serde_json::to_string(&example["output"][form]).expect("JSON");
            json_forms += 1;
            if ParsedToken::parse(&serialized).is_ok() {
                failures.push((number, format!("{title}: the {form} form was accepted")));
            }
        }
    }
    eprintln!(
        "{COOKBOOK_FILE}: compact forms verified with the public half {verified:?}; refused \
         {refused:?} (no HMAC); {json_forms} JSON/flattened forms refused by parse; the token \
         layer refuses all (the payload is prose)"
    );
    check_failures(COOKBOOK_FILE, &failures);
}
