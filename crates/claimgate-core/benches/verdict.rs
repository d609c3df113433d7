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
    evaluate, evaluate_cached, Decision, Explain, HeaderValues, KeyMaterial, RequestView, UnixTime,
};
use claimgate_gateway::cache::{Scoped, TokenCache};
use claimgate_gateway::metrics::Metrics;
use claimgate_jose::{Algorithm, ParsedToken, PublicKey};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use serde_json::{json, Value};
use siphasher::sip128::{Hasher128 as _, SipHasher24};
use std::hash::Hasher as _;
use std::hint::black_box;
use std::sync::OnceLock;
use std::time::Duration;

/// The cached benches evaluate as the gateway does: passed checks are not explained.
const GATEWAY: Explain = Explain::Failures;

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
    deployment_with(keys, json!({}))
}

/// [`deployment`] with these route `requestPolicies` (the validated benches').
fn deployment_with(keys: &Keys, route_policies: Value) -> Deployment {
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
                "requestPolicies": route_policies,
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
    /// Also carries `X-Username`, `?page=1` and a JSON body (the validated benches).
    validated: bool,
}

impl Req {
    fn bearer(token: &str) -> Self {
        Self {
            authorization: format!("Bearer {token}"),
            validated: false,
        }
    }
}

/// A route's request validations, each of which the validated request passes: a required
/// header, a required query parameter and a required JSON body.
fn validations() -> Value {
    json!({
        "headerValidations": {"headers": [{"name": "X-Username", "required": true}]},
        "queryParameterValidations": {"parameters": [{"name": "page", "required": true}]},
        "bodyValidation": {"required": true, "content": {
            "application/json": {"validationType": "NONE"}, "text/*": {"validationType": "NONE"}}}
    })
}

impl RequestView for Req {
    fn method(&self) -> &str {
        "GET"
    }
    fn path(&self) -> &str {
        "/v1/orders"
    }
    fn query(&self) -> Option<&str> {
        self.validated.then_some("page=1")
    }
    fn header(&self, name: &str) -> HeaderValues<'_> {
        let validated = |value: &'static str| match self.validated {
            true => HeaderValues::One(value),
            false => HeaderValues::Absent,
        };
        if name.eq_ignore_ascii_case("authorization") {
            HeaderValues::One(&self.authorization)
        } else if name.eq_ignore_ascii_case("x-username") {
            validated("alice")
        } else if name.eq_ignore_ascii_case("content-type") {
            validated("application/json; charset=utf-8")
        } else if name.eq_ignore_ascii_case("content-length") {
            validated("17")
        } else {
            HeaderValues::Absent
        }
    }
}

/// The gateway's verified-token cache (keyed SipHash-2-4 names, moka's bounded map with
/// expiry), with room for every token a bench uses.
struct GatewayCache {
    cache: TokenCache,
    _metrics: Metrics,
}

impl GatewayCache {
    fn new() -> Self {
        let metrics = Metrics::new();
        Self {
            cache: TokenCache::new(
                1 << 30,
                metrics.token_cache(true),
                metrics.token_cache(false),
            ),
            _metrics: metrics,
        }
    }

    /// The view one deployment's evaluations get (scope 1, static keys: generation 0).
    fn scoped(&self) -> Scoped<'_> {
        self.cache.scoped(1, 0)
    }
}

/// This process's resident memory (`VmRSS`), in bytes.
fn resident_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|kb| kb.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
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
        // As the gateway evaluates: passed checks are not explained.
        evaluate_group.bench_function(format!("{name}_failures_only"), |b| {
            b.iter(|| {
                evaluate_cached(
                    black_box(&deployment),
                    black_box(&request),
                    no_remote,
                    NOW,
                    None,
                    Explain::Failures,
                )
            })
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
    let warm = GatewayCache::new();
    let warm = warm.scoped();
    let verdict = evaluate_cached(&deployment, &request, no_remote, NOW, Some(&warm), GATEWAY);
    assert_eq!(verdict.decision, Decision::Allow, "{verdict:?}");
    let again = evaluate_cached(&deployment, &request, no_remote, NOW, Some(&warm), GATEWAY);
    assert_eq!(again, verdict);
    cached_group.bench_function("RS256_hit", |b| {
        b.iter(|| {
            evaluate_cached(
                black_box(&deployment),
                black_box(&request),
                no_remote,
                NOW,
                Some(&warm),
                GATEWAY,
            )
        })
    });
    // The same hit on a route whose header, query and body validations all pass: what
    // validation adds to an allowed request (no check is listed, nothing allocated for it).
    let validated_deployment = deployment_with(&keys, validations());
    let validated_request = Req {
        validated: true,
        ..Req::bearer(&token)
    };
    let validated_warm = GatewayCache::new();
    let validated_warm = validated_warm.scoped();
    let verdict = evaluate_cached(
        &validated_deployment,
        &validated_request,
        no_remote,
        NOW,
        Some(&validated_warm),
        GATEWAY,
    );
    assert_eq!(verdict.decision, Decision::Allow, "{verdict:?}");
    assert_eq!(verdict.validation, claimgate_core::Validation::Passed);
    let unvalidated = evaluate_cached(&deployment, &request, no_remote, NOW, Some(&warm), GATEWAY);
    assert_eq!(
        verdict.checks, unvalidated.checks,
        "no passed validation check is listed"
    );
    cached_group.bench_function("RS256_hit_validated", |b| {
        b.iter(|| {
            evaluate_cached(
                black_box(&validated_deployment),
                black_box(&validated_request),
                no_remote,
                NOW,
                Some(&validated_warm),
                GATEWAY,
            )
        })
    });
    cached_group.bench_function("RS256_miss", |b| {
        b.iter_batched_ref(
            GatewayCache::new,
            |empty| {
                evaluate_cached(
                    black_box(&deployment),
                    black_box(&request),
                    no_remote,
                    NOW,
                    Some(&empty.scoped()),
                    GATEWAY,
                )
            },
            BatchSize::SmallInput,
        )
    });
    // EdDSA tokens because they are quick to sign; on a hit the algorithm plays no part. Made
    // on first use, so a filtered run (`cargo bench -- RS256_hit`) does not pay for them.
    let filled: OnceLock<(Vec<Req>, GatewayCache)> = OnceLock::new();
    let fill = || {
        let many: Vec<Req> = (0..DISTINCT)
            .map(|i| {
                let mut claims = good_claims();
                claims["sub"] = json!(format!("user-{i}@example.com"));
                claims["jti"] = json!(format!("{i:032x}"));
                Req::bearer(&sign("EdDSA", "ed", &claims, &keys, false))
            })
            .collect();
        let full = GatewayCache::new();
        let before = resident_bytes();
        for request in &many {
            let verdict = evaluate_cached(
                &deployment,
                request,
                no_remote,
                NOW,
                Some(&full.scoped()),
                GATEWAY,
            );
            assert_eq!(verdict.decision, Decision::Allow);
        }
        full.cache.run_pending_tasks();
        let grown = resident_bytes().saturating_sub(before);
        println!(
            "cache: {DISTINCT} verified tokens ({} bytes each) added {:.1} MiB of RSS: {} bytes per entry; the cache weighs one at {} bytes",
            many[0].authorization.len() - "Bearer ".len(),
            grown as f64 / (1024.0 * 1024.0),
            grown / DISTINCT as u64,
            full.cache.weighed_size() / full.cache.entry_count().max(1),
        );
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
                Some(&full.scoped()),
                GATEWAY,
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

    // Naming a token for the cache: the keyed SipHash-2-4 the cache uses, next to the SHA-256
    // it used before.
    let mut hash_group = c.benchmark_group("token_name");
    hash_group.bench_function("siphash24_128", |b| {
        let key = (0x0706_0504_0302_0100_u64, 0x0f0e_0d0c_0b0a_0908_u64);
        b.iter(|| {
            let mut hasher = SipHasher24::new_with_keys(key.0, key.1);
            hasher.write(black_box(token.as_bytes()));
            hasher.finish128()
        })
    });
    hash_group.bench_function("sha256", |b| {
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
