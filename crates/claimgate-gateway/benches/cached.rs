//! The verdict through the gateway's own verified-token cache (issue 6, moved here in issue 20
//! so that `claimgate-core` does not depend on the gateway even for its benches): a hit (the
//! token's name, the lookup, then every claim and time check), the same hit on a route with
//! request validations, a miss (name, lookup, verification, insertion into an empty cache),
//! and hits over 20,000 distinct tokens, so the map and its entries no longer sit in the CPU
//! caches. The evaluations are made as the gateway makes them (`Explain::Failures`).
//!
//! The deployment, tokens and request are `claimgate-core`'s bench fixture, included by path, so
//! these figures compare with `cargo bench -p claimgate-core --bench verdict` (the uncached
//! verdict, the raw verification, the parse).
//!
//! Run: `cargo bench -p claimgate-gateway --bench cached` (about a minute).

#[path = "../../claimgate-core/benches/fixture/mod.rs"]
mod fixture;

use claimgate_core::{evaluate_cached, Decision, Explain, KeyMaterial};
use claimgate_gateway::cache::{Scoped, TokenCache};
use claimgate_gateway::metrics::Metrics;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use fixture::*;
use serde_json::json;
use std::hint::black_box;
use std::sync::OnceLock;
use std::time::Duration;

/// The cached benches evaluate as the gateway does: passed checks are not explained.
const GATEWAY: Explain = Explain::Failures;

/// Distinct tokens held in the cache for the `hit_20k_tokens` bench.
const DISTINCT: usize = 20_000;

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

fn benches(c: &mut Criterion) {
    let keys = Keys::generate();
    let deployment = deployment(&keys);
    // The policy's own keys are used; this is what a REMOTE_JWKS deployment would pass.
    let no_remote = KeyMaterial::Unavailable {
        reason: "static keys only",
    };

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
}

criterion_group! {
    name = cached;
    config = Criterion::default()
        .sample_size(50)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = benches
}
criterion_main!(cached);
