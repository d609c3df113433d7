//! The cost of a verdict (issue 6): `claimgate_core::evaluate` on one request with an RS256,
//! PS256, ES256 and EdDSA token, and with a token that fails every check it can fail at once;
//! `claimgate_core::evaluate_cached` on a cache hit and a cache miss (hashing the token
//! included); next to them the raw signature verification alone (`PublicKey::verify` on the
//! same signing input), the token parse alone and the SHA-256 of the token alone, so
//! BENCHMARKS.md can report "uncached RS256 evaluation / raw RS256 verify" and say where the
//! rest goes.
//!
//! The deployment is JSON text loaded with `claimgate_config::load_str`, exactly as the gateway
//! loads a file: `JWT_AUTHENTICATION`, one issuer, one audience, a required `tenant` claim and
//! `STATIC_KEYS` holding one key per family. `now` is fixed, so tokens never age.
//!
//! Run: `cargo bench -p claimgate-core --bench verdict` (about a minute).

use aws_lc_rs::digest::{digest, SHA256};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa;
use aws_lc_rs::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use claimgate_config::{load_str, Authentication, Deployment, KeySource, LoadOptions};
use claimgate_core::{
    evaluate, evaluate_cached, Decision, HeaderValues, KeyMaterial, RequestView, TokenVerification,
    UnixTime, VerificationCache,
};
use claimgate_jose::{Algorithm, ParsedToken, PublicKey};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::hint::black_box;
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Duration;

/// Distinct tokens held in the cache for the `hit_20k_tokens` bench.
const DISTINCT: usize = 20_000;

/// The pinned clock: 2025-11-24T16:00:00Z.
const NOW: UnixTime = UnixTime(1_764_000_000);
const ISSUER: &str = "https://idp.example.com/";
const AUDIENCE: &str = "api://orders";

/// The signing keys, one per family benchmarked, plus one no deployment trusts.
struct Keys {
    rsa: rsa::KeyPair,
    rsa_pss: rsa::KeyPair,
    p256: EcdsaKeyPair,
    ed25519: Ed25519KeyPair,
    attacker: rsa::KeyPair,
}

impl Keys {
    fn generate() -> Self {
        let rsa = || rsa::KeyPair::generate(rsa::KeySize::Rsa2048).expect("RSA key generation");
        Self {
            rsa: rsa(),
            rsa_pss: rsa(),
            p256: EcdsaKeyPair::generate(&signature::ECDSA_P256_SHA256_FIXED_SIGNING)
                .expect("P-256 key generation"),
            ed25519: Ed25519KeyPair::generate().expect("Ed25519 key generation"),
            attacker: rsa(),
        }
    }
}

fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn rsa_jwk(kid: &str, alg: &str, pair: &rsa::KeyPair) -> Value {
    let public = pair.public_key();
    json!({
        "kid": kid, "format": "JSON_WEB_KEY", "kty": "RSA", "alg": alg,
        "n": b64(public.modulus().big_endian_without_leading_zero()),
        "e": b64(public.exponent().big_endian_without_leading_zero()),
    })
}

fn p256_jwk(kid: &str, pair: &EcdsaKeyPair) -> Value {
    let point = pair.public_key().as_ref();
    json!({
        "kid": kid, "format": "JSON_WEB_KEY", "kty": "EC", "crv": "P-256", "alg": "ES256",
        "x": b64(&point[1..33]), "y": b64(&point[33..65]),
    })
}

fn ed25519_jwk(kid: &str, pair: &Ed25519KeyPair) -> Value {
    json!({
        "kid": kid, "format": "JSON_WEB_KEY", "kty": "OKP", "crv": "Ed25519", "alg": "EdDSA",
        "x": b64(pair.public_key().as_ref()),
    })
}

/// The deployment every bench judges against, loaded from its JSON text.
fn deployment(keys: &Keys) -> Deployment {
    let file = json!({
        "displayName": "bench",
        "pathPrefix": "/v1",
        "specification": {
            "requestPolicies": {"authentication": {
                "type": "JWT_AUTHENTICATION",
                "tokenHeader": "Authorization",
                "tokenAuthScheme": "Bearer",
                "issuers": [ISSUER],
                "audiences": [AUDIENCE],
                "maxClockSkewInSeconds": 30,
                "verifyClaims": [{"key": "tenant", "values": ["acme"], "isRequired": true}],
                "publicKeys": {"type": "STATIC_KEYS", "keys": [
                    rsa_jwk("rs", "RS256", &keys.rsa),
                    rsa_jwk("ps", "PS256", &keys.rsa_pss),
                    p256_jwk("es", &keys.p256),
                    ed25519_jwk("ed", &keys.ed25519),
                ]}
            }},
            "routes": [{
                "path": "/orders",
                "methods": ["GET"],
                "backend": {"type": "STOCK_RESPONSE_BACKEND", "status": 200, "body": "ok"}
            }]
        }
    });
    let options = LoadOptions {
        path_prefix: None,
        name: "bench".into(),
    };
    match load_str(&file.to_string(), &options) {
        Ok(loaded) => loaded.deployment,
        Err(rejected) => panic!("the bench deployment does not load: {:?}", rejected.errors),
    }
}

/// The static key with this kid, as the verdict will find it.
fn static_key<'d>(deployment: &'d Deployment, kid: &str) -> &'d PublicKey {
    let Authentication::Jwt(policy) = &deployment.authentication else {
        panic!("the bench deployment has no JWT policy");
    };
    let KeySource::Static(set) = &policy.keys else {
        panic!("the bench deployment has no static keys");
    };
    set.keys()
        .iter()
        .find(|k| k.kid() == Some(kid))
        .unwrap_or_else(|| panic!("no static key '{kid}'"))
}

/// Claims that pass every check of [`deployment`] at [`NOW`], shaped like a typical IdP token.
fn good_claims() -> Value {
    json!({
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "alice@example.com",
        "tenant": "acme",
        "scope": "orders:read orders:write",
        "iat": NOW.0 - 60,
        "nbf": NOW.0 - 60,
        "exp": NOW.0 + 3600,
        "jti": "4f1e1c8a-0a57-4f0b-9a4e-3b8f1f0d2c11",
    })
}

fn sign(alg: &str, kid: &str, claims: &Value, keys: &Keys, attacker: bool) -> String {
    let header = json!({"alg": alg, "kid": kid, "typ": "JWT"});
    let input = format!("{}.{}", b64(header.to_string()), b64(claims.to_string()));
    let message = input.as_bytes();
    let rng = SystemRandom::new();
    let rsa_sign = |pair: &rsa::KeyPair, encoding: &'static dyn signature::RsaEncoding| {
        let mut out = vec![0; pair.public_modulus_len()];
        pair.sign(encoding, &rng, message, &mut out)
            .expect("RSA signing");
        out
    };
    let signature = match (alg, attacker) {
        ("RS256", true) => rsa_sign(&keys.attacker, &signature::RSA_PKCS1_SHA256),
        ("RS256", false) => rsa_sign(&keys.rsa, &signature::RSA_PKCS1_SHA256),
        ("PS256", _) => rsa_sign(&keys.rsa_pss, &signature::RSA_PSS_SHA256),
        ("ES256", _) => keys
            .p256
            .sign(&rng, message)
            .expect("ECDSA signing")
            .as_ref()
            .to_vec(),
        ("EdDSA", _) => keys.ed25519.sign(message).as_ref().to_vec(),
        _ => unreachable!("no signer for {alg}"),
    };
    format!("{input}.{}", b64(signature))
}

/// `GET /v1/orders` with one `Authorization` header, as the gateway's view of a request.
struct Req {
    authorization: String,
}

impl Req {
    fn bearer(token: &str) -> Self {
        Self {
            authorization: format!("Bearer {token}"),
        }
    }
}

impl RequestView for Req {
    fn method(&self) -> &str {
        "GET"
    }
    fn path(&self) -> &str {
        "/v1/orders"
    }
    fn query(&self) -> Option<&str> {
        None
    }
    fn header(&self, name: &str) -> HeaderValues<'_> {
        if name.eq_ignore_ascii_case("authorization") {
            HeaderValues::One(&self.authorization)
        } else {
            HeaderValues::Absent
        }
    }
}

/// A verification cache as the gateway keys its own: the SHA-256 of the token (never the token),
/// here in a plain map behind a read-write lock. The gateway's bounded, expiring map (moka) costs
/// more per lookup than this; the load benchmark measures it in place.
#[derive(Default)]
struct MapCache {
    entries: RwLock<HashMap<[u8; 32], Arc<TokenVerification>>>,
}

impl VerificationCache for MapCache {
    fn get_or_verify(
        &self,
        token: &str,
        verify: &mut dyn FnMut() -> Arc<TokenVerification>,
    ) -> Arc<TokenVerification> {
        let mut key = [0u8; 32];
        key.copy_from_slice(digest(&SHA256, token.as_bytes()).as_ref());
        if let Some(hit) = self.entries.read().expect("lock").get(&key) {
            return hit.clone();
        }
        let fresh = verify();
        if fresh.is_verified() {
            self.entries
                .write()
                .expect("lock")
                .insert(key, fresh.clone());
        }
        fresh
    }
}

/// (bench name, alg, kid, algorithm)
const FAMILIES: [(&str, &str, &str, Algorithm); 4] = [
    ("RS256", "RS256", "rs", Algorithm::RS256),
    ("PS256", "PS256", "ps", Algorithm::PS256),
    ("ES256", "ES256", "es", Algorithm::ES256),
    ("EdDSA", "EdDSA", "ed", Algorithm::EdDSA),
];

fn benches(c: &mut Criterion) {
    let keys = Keys::generate();
    let deployment = deployment(&keys);
    // The policy's own keys are used; this is what a REMOTE_JWKS deployment would pass.
    let no_remote = KeyMaterial::Unavailable {
        reason: "static keys only",
    };

    let mut evaluate_group = c.benchmark_group("evaluate");
    for (name, alg, kid, _) in FAMILIES {
        let token = sign(alg, kid, &good_claims(), &keys, false);
        let request = Req::bearer(&token);
        let verdict = evaluate(&deployment, &request, no_remote, NOW);
        assert_eq!(verdict.decision, Decision::Allow, "{name}: {verdict:?}");
        evaluate_group.bench_function(name, |b| {
            b.iter(|| evaluate(black_box(&deployment), black_box(&request), no_remote, NOW))
        });
    }
    // Signed by a key nobody trusts (with a trusted kid), expired, not yet valid, wrong issuer,
    // audience and tenant: signature, exp, nbf, iss, aud and claim:tenant all fail, and each
    // failure builds its explanation.
    let everything_wrong = json!({
        "iss": "https://evil.example.net/",
        "aud": "api://billing",
        "sub": "mallory",
        "tenant": "globex",
        "iat": NOW.0 - 7200,
        "nbf": NOW.0 + 3600,
        "exp": NOW.0 - 3600,
    });
    let token = sign("RS256", "rs", &everything_wrong, &keys, true);
    let request = Req::bearer(&token);
    let verdict = evaluate(&deployment, &request, no_remote, NOW);
    let failed: Vec<String> = verdict.failures().map(|c| c.id.to_string()).collect();
    assert_eq!(
        failed,
        ["signature", "exp", "nbf", "iss", "aud", "claim:tenant"],
        "the everything-wrong token"
    );
    evaluate_group.bench_function("all_checks_fail", |b| {
        b.iter(|| evaluate(black_box(&deployment), black_box(&request), no_remote, NOW))
    });
    evaluate_group.finish();

    // The cached evaluation: a hit (hash, lookup, then every claim and time check), a miss
    // (hash, lookup, verification, insertion into an empty cache), and hits over many distinct
    // tokens, so the map and its entries no longer sit in the CPU caches.
    let mut cached_group = c.benchmark_group("evaluate_cached");
    let token = sign("RS256", "rs", &good_claims(), &keys, false);
    let request = Req::bearer(&token);
    let warm = MapCache::default();
    let verdict = evaluate_cached(&deployment, &request, no_remote, NOW, Some(&warm));
    assert_eq!(verdict.decision, Decision::Allow, "{verdict:?}");
    assert_eq!(warm.entries.read().expect("lock").len(), 1);
    cached_group.bench_function("RS256_hit", |b| {
        b.iter(|| {
            evaluate_cached(
                black_box(&deployment),
                black_box(&request),
                no_remote,
                NOW,
                Some(&warm),
            )
        })
    });
    cached_group.bench_function("RS256_miss", |b| {
        b.iter_batched_ref(
            MapCache::default,
            |empty| {
                evaluate_cached(
                    black_box(&deployment),
                    black_box(&request),
                    no_remote,
                    NOW,
                    Some(&*empty),
                )
            },
            BatchSize::SmallInput,
        )
    });
    // EdDSA tokens because they are quick to sign; on a hit the algorithm plays no part. Made
    // on first use, so a filtered run (`cargo bench -- RS256_hit`) does not pay for them.
    let filled: OnceLock<(Vec<Req>, MapCache)> = OnceLock::new();
    let fill = || {
        let many: Vec<Req> = (0..DISTINCT)
            .map(|i| {
                let mut claims = good_claims();
                claims["sub"] = json!(format!("user-{i}@example.com"));
                Req::bearer(&sign("EdDSA", "ed", &claims, &keys, false))
            })
            .collect();
        let full = MapCache::default();
        for request in &many {
            let verdict = evaluate_cached(&deployment, request, no_remote, NOW, Some(&full));
            assert_eq!(verdict.decision, Decision::Allow);
        }
        (many, full)
    };
    let mut next = 0;
    cached_group.bench_function("hit_20k_tokens", |b| {
        let (many, full) = filled.get_or_init(fill);
        b.iter(|| {
            next = (next + 7919) % many.len();
            evaluate_cached(
                black_box(&deployment),
                black_box(&many[next]),
                no_remote,
                NOW,
                Some(full),
            )
        })
    });
    cached_group.finish();

    // The signature check alone, with the very key object the verdict uses.
    let mut verify_group = c.benchmark_group("verify");
    for (name, alg, kid, algorithm) in FAMILIES {
        let token = sign(alg, kid, &good_claims(), &keys, false);
        let parsed = ParsedToken::parse(&token).expect("a well-formed token");
        let key = static_key(&deployment, kid);
        assert!(key.verify(algorithm, parsed.signing_input(), parsed.signature()));
        verify_group.bench_function(name, |b| {
            b.iter(|| {
                black_box(key).verify(
                    algorithm,
                    black_box(parsed.signing_input()),
                    black_box(parsed.signature()),
                )
            })
        });
    }
    verify_group.finish();

    // Decoding and parsing the token alone (base64url, strict JSON, header checks).
    let mut parse_group = c.benchmark_group("parse");
    let token = sign("RS256", "rs", &good_claims(), &keys, false);
    parse_group.bench_function("RS256", |b| {
        b.iter(|| ParsedToken::parse(black_box(&token)))
    });
    parse_group.finish();

    // The cache key alone: SHA-256 of the token.
    let mut hash_group = c.benchmark_group("sha256");
    hash_group.bench_function("token", |b| {
        b.iter(|| digest(&SHA256, black_box(token.as_bytes())))
    });
    hash_group.finish();
}

criterion_group! {
    name = verdict;
    config = Criterion::default()
        .sample_size(50)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = benches
}
criterion_main!(verdict);
