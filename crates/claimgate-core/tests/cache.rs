//! `evaluate_cached`: a cache changes the cost of a verdict, never the verdict.

mod support;

use claimgate_core::{
    evaluate, evaluate_cached, Explain, KeyMaterial, TokenVerification, UnixTime, VerificationCache,
};
use serde_json::json;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use support::*;

/// The simplest cache: a map from the token text, counting verifications.
#[derive(Default)]
struct MapCache {
    entries: Mutex<HashMap<String, Arc<TokenVerification>>>,
    verifications: Mutex<usize>,
}

impl VerificationCache for MapCache {
    fn get_or_verify(
        &self,
        token: &str,
        verify: &mut dyn FnMut() -> Arc<TokenVerification>,
    ) -> Arc<TokenVerification> {
        if let Some(hit) = self.entries.lock().unwrap().get(token) {
            return hit.clone();
        }
        *self.verifications.lock().unwrap() += 1;
        let fresh = verify();
        if fresh.is_verified() {
            self.entries
                .lock()
                .unwrap()
                .insert(token.to_owned(), fresh.clone());
        }
        fresh
    }
}

/// The gateway's verdict (failures explained only), with `cache`.
fn judge_cached(token: &str, now: UnixTime, cache: &MapCache) -> claimgate_core::Verdict {
    judge_cached_explaining(token, now, cache, Explain::Failures)
}

fn judge_cached_explaining(
    token: &str,
    now: UnixTime,
    cache: &MapCache,
    explain: Explain,
) -> claimgate_core::Verdict {
    let deployment = deployment();
    let request = Req::get("/v1/orders").bearer(token);
    evaluate_cached(
        &deployment,
        &request,
        KeyMaterial::Unavailable {
            reason: "static keys are in the policy",
        },
        now,
        Some(cache),
        explain,
    )
}

#[test]
fn a_cached_verdict_equals_the_uncached_one_and_verifies_once() {
    let cache = MapCache::default();
    let token = good_token();
    let first = judge_cached(&token, NOW, &cache);
    let second = judge_cached(&token, NOW, &cache);
    let uncached = evaluate_cached(
        &deployment(),
        &Req::get("/v1/orders").bearer(&token),
        KeyMaterial::Unavailable {
            reason: "static keys are in the policy",
        },
        NOW,
        None,
        Explain::Failures,
    );
    assert_eq!(first, uncached);
    assert_eq!(second, uncached);
    assert_eq!(*cache.verifications.lock().unwrap(), 1);
}

#[test]
fn a_verification_kept_without_explanation_still_gives_the_full_explanation() {
    let cache = MapCache::default();
    let token = good_token();
    let quiet = judge_cached(&token, NOW, &cache);
    let full = judge_cached_explaining(&token, NOW, &cache, Explain::Everything);
    let uncached = evaluate(
        &deployment(),
        &Req::get("/v1/orders").bearer(&token),
        KeyMaterial::Unavailable {
            reason: "static keys are in the policy",
        },
        NOW,
    );
    assert_eq!(full, uncached);
    assert_same_decision(&full, &quiet);
    assert_eq!(result(&full, "signature"), "pass");
    assert!(full.checks.iter().any(|c| matches!(
        &c.outcome,
        claimgate_core::Outcome::Pass(note) if note.starts_with("verified with key")
    )));
}

#[test]
fn expiry_is_judged_on_every_request_even_from_the_cache() {
    let cache = MapCache::default();
    let token = token(&claims_with(json!({"exp": NOW_SECS + 10})));
    assert_eq!(result(&judge_cached(&token, NOW, &cache), "exp"), "pass");
    let later = judge_cached(&token, UnixTime(NOW_SECS + 11), &cache);
    assert_eq!(result(&later, "exp"), "fail");
    assert_eq!(
        *cache.verifications.lock().unwrap(),
        1,
        "the second verdict came from the cache"
    );
}

#[test]
fn failed_verifications_are_not_kept() {
    let cache = MapCache::default();
    // Change one character inside the signature (not the last, whose spare bits must be zero).
    let good = good_token();
    let at = good.len() - 10;
    let replacement = if &good[at..at + 1] == "A" { "B" } else { "A" };
    let forged = format!("{}{replacement}{}", &good[..at], &good[at + 1..]);
    for _ in 0..3 {
        let verdict = judge_cached(&forged, NOW, &cache);
        assert_eq!(result(&verdict, "signature"), "fail");
    }
    assert!(cache.entries.lock().unwrap().is_empty());
}
