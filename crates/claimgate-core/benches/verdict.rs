//! The cost of a verdict (issue 6): `claimgate_core::evaluate` on one request with an RS256,
//! PS256, ES256 and EdDSA token, and with a token that fails every check it can fail at once;
//! next to them the raw signature verification alone (`PublicKey::verify` on the same signing
//! input), the token parse alone and the token's cache name alone, so BENCHMARKS.md can report
//! "uncached RS256 evaluation / raw RS256 verify" and say where the rest goes. The evaluations
//! through the gateway's verified-token cache (`evaluate_cached/...`) are the gateway's bench:
//! `cargo bench -p claimgate-gateway --bench cached`.
//!
//! The deployment (`fixture/mod.rs`) is JSON text loaded with `claimgate_config::load_str`,
//! exactly as the gateway loads a file: `JWT_AUTHENTICATION`, one issuer, one audience, a
//! required `tenant` claim and `STATIC_KEYS` holding one key per family. `now` is fixed, so
//! tokens never age.
//!
//! Run: `cargo bench -p claimgate-core --bench verdict` (about a minute).

mod fixture;

use aws_lc_rs::digest::{digest, SHA256};
use claimgate_core::{evaluate, evaluate_cached, Decision, Explain, KeyMaterial};
use claimgate_jose::{Jws, ParsedToken};
use criterion::{criterion_group, criterion_main, Criterion};
use fixture::*;
use serde_json::json;
use siphasher::sip128::{Hasher128 as _, SipHasher24};
use std::hash::Hasher as _;
use std::hint::black_box;
use std::time::Duration;

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

    // Decoding and parsing the token alone (base64url, strict JSON, header checks): as the
    // verdict reads it (one pass into the packed claims), and into JSON trees (the CLI's
    // `decode`, the reference the one-pass reading is tested against).
    let mut parse_group = c.benchmark_group("parse");
    let token = sign("RS256", "rs", &good_claims(), &keys, false);
    parse_group.bench_function("RS256", |b| b.iter(|| Jws::parse(black_box(&token))));
    parse_group.bench_function("RS256_tree", |b| {
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
