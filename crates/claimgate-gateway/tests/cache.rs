//! The verified-token cache under concurrency: one new token, many requests, one verification.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::{KeyPair as _, RSA_PKCS1_SHA256};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use claimgate_config::{load_str, LoadOptions};
use claimgate_core::{
    evaluate_cached, Decision, Explain, HeaderValues, KeyMaterial, RequestView, TokenVerification,
    UnixTime, VerificationCache,
};
use claimgate_gateway::cache::TokenCache;
use serde_json::json;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

struct Request(String);

impl RequestView for Request {
    fn method(&self) -> &str {
        "GET"
    }
    fn path(&self) -> &str {
        "/v1/x"
    }
    fn query(&self) -> Option<&str> {
        None
    }
    fn header(&self, name: &str) -> HeaderValues<'_> {
        if name.eq_ignore_ascii_case("authorization") {
            HeaderValues::One(&self.0)
        } else {
            HeaderValues::Absent
        }
    }
}

/// Counts how often the core had to verify.
struct Counting<'a, C> {
    inner: &'a C,
    verifications: &'a AtomicUsize,
}

impl<C: VerificationCache> VerificationCache for Counting<'_, C> {
    fn get_or_verify(
        &self,
        token: &str,
        verify: &mut dyn FnMut() -> Arc<TokenVerification>,
    ) -> Arc<TokenVerification> {
        self.inner.get_or_verify(token, &mut || {
            self.verifications.fetch_add(1, Ordering::SeqCst);
            verify()
        })
    }
}

#[test]
fn concurrent_requests_with_one_new_token_verify_it_once_and_generations_do_not_mix() {
    let key = KeyPair::generate(KeySize::Rsa2048).unwrap();
    let public = key.public_key();
    let b64 = |b: &[u8]| URL_SAFE_NO_PAD.encode(b);
    let deployment = json!({"pathPrefix": "/v1", "specification": {
        "requestPolicies": {"authentication": {"type": "JWT_AUTHENTICATION", "tokenHeader": "Authorization",
            "tokenAuthScheme": "Bearer", "issuers": ["i"], "audiences": ["a"],
            "publicKeys": {"type": "STATIC_KEYS", "keys": [{"kid": "k", "format": "JSON_WEB_KEY", "kty": "RSA",
                "n": b64(public.modulus().big_endian_without_leading_zero()),
                "e": b64(public.exponent().big_endian_without_leading_zero())}]}}},
        "routes": [{"path": "/x", "backend": {"type": "STOCK_RESPONSE_BACKEND", "status": 200}}]}});
    let deployment = load_str(&deployment.to_string(), &LoadOptions::default())
        .unwrap()
        .deployment;
    let now = 1_800_000_000;
    let input = format!(
        "{}.{}",
        b64(json!({"alg": "RS256", "kid": "k"}).to_string().as_bytes()),
        b64(json!({"iss": "i", "aud": "a", "exp": now + 60})
            .to_string()
            .as_bytes())
    );
    let mut signature = vec![0; key.public_modulus_len()];
    key.sign(
        &RSA_PKCS1_SHA256,
        &SystemRandom::new(),
        input.as_bytes(),
        &mut signature,
    )
    .unwrap();
    let request = Request(format!("Bearer {input}.{}", b64(&signature)));

    let metrics = claimgate_gateway::metrics::Metrics::new();
    let cache = TokenCache::new(
        1024 * 1024,
        metrics.token_cache(true),
        metrics.token_cache(false),
    );
    let verifications = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..8 {
            scope.spawn(|| {
                let scoped = cache.scoped(0, 1);
                let counting = Counting {
                    inner: &scoped,
                    verifications: &verifications,
                };
                for _ in 0..50 {
                    let verdict = evaluate_cached(
                        &deployment,
                        &request,
                        KeyMaterial::Unavailable { reason: "static" },
                        UnixTime(now),
                        Some(&counting),
                        Explain::Failures,
                    );
                    assert_eq!(verdict.decision, Decision::Allow);
                }
            });
        }
    });
    assert_eq!(
        verifications.load(Ordering::SeqCst),
        1,
        "400 evaluations, one verification"
    );
    let (hits, misses) = cache.counts();
    assert_eq!(hits + misses, 400);

    // A new key-set generation never sees the old generation's entries.
    let scoped = cache.scoped(0, 2);
    let counting = Counting {
        inner: &scoped,
        verifications: &verifications,
    };
    let _ = evaluate_cached(
        &deployment,
        &request,
        KeyMaterial::Unavailable { reason: "static" },
        UnixTime(now),
        Some(&counting),
        Explain::Failures,
    );
    assert_eq!(verifications.load(Ordering::SeqCst), 2);

    // What the gateway asks before it would parse a REMOTE_DISCOVERY token to classify it: held
    // only under the deployment and key generation it verified in, never when it did not verify.
    let token = &request.0["Bearer ".len()..];
    assert!(cache.scoped(0, 1).holds(token));
    assert!(cache.scoped(0, 2).holds(token));
    assert!(!cache.scoped(0, 3).holds(token), "another key generation");
    assert!(!cache.scoped(1, 1).holds(token), "another deployment");
    let forged = format!("{input}.{}", b64(&signature[..signature.len() - 1]));
    let refused = evaluate_cached(
        &deployment,
        &Request(format!("Bearer {forged}")),
        KeyMaterial::Unavailable { reason: "static" },
        UnixTime(now),
        Some(&cache.scoped(0, 1)),
        Explain::Failures,
    );
    assert_eq!(refused.decision, Decision::Deny);
    assert!(!cache.scoped(0, 1).holds(&forged), "not verified, not kept");
}
