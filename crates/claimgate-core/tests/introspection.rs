//! TOKEN_AUTHENTICATION with REMOTE_DISCOVERY: opaque tokens judged by an introspection answer,
//! JWTs by the discovery document's keys, and outages reported as "could not evaluate".

mod support;

use claimgate_core::{
    evaluate_prepared, evaluate_with, prepare, prepare_knowing, token_to_introspect, Claims,
    Decision, Explain, Introspection, KeyMaterial, Outcome, VerifiedTokens,
};
use serde_json::{json, Map, Value};
use std::sync::Arc;
use support::*;

fn discovery_file() -> Value {
    let mut file = file();
    *auth(&mut file) = json!({
        "type": "TOKEN_AUTHENTICATION",
        "isAnonymousAccessAllowed": true,
        "tokenHeader": "Authorization",
        "tokenAuthScheme": "Bearer",
        "validationPolicy": {
            "type": "REMOTE_DISCOVERY",
            "clientDetails": {"type": "CUSTOM", "clientId": "gateway", "clientSecretId": "ocid1.vaultsecret.oc1..gw", "clientSecretVersionNumber": 1},
            "sourceUriDetails": {"type": "DISCOVERY_URI", "uri": "http://127.0.0.1:9/.well-known/openid-configuration"},
            "additionalValidationPolicy": {
                "issuers": [ISSUER],
                "audiences": [AUDIENCE],
                "verifyClaims": [{"key": "tenant", "values": ["acme"], "isRequired": true}]
            }
        }
    });
    file
}

fn answer(value: Value) -> Map<String, Value> {
    value.as_object().unwrap().clone()
}

/// An answer as the gateway keeps it.
fn shared(answer: &Map<String, Value>) -> Arc<Claims> {
    Arc::new(Claims::from_map(answer).unwrap())
}

fn active_answer() -> Map<String, Value> {
    answer(
        json!({"active": true, "iss": ISSUER, "aud": AUDIENCE, "tenant": "acme", "exp": NOW_SECS + 60, "scope": "orders:read"}),
    )
}

/// The verdict on an opaque token with this introspection answer, checked to decide the same
/// way when it explains failures only (as the gateway does).
fn judge_opaque(introspection: Introspection<'_>) -> claimgate_core::Verdict {
    let deployment = load(&discovery_file());
    let request = Req::get("/v1/orders").bearer("opaque-token-123");
    let keys = KeyMaterial::Unavailable {
        reason: "not needed",
    };
    let judge = |explain| {
        evaluate_with(
            &deployment,
            &request,
            keys,
            introspection,
            NOW,
            None,
            explain,
        )
    };
    let verdict = judge(Explain::Everything);
    assert_same_decision(&verdict, &judge(Explain::Failures));
    verdict
}

#[test]
fn an_opaque_token_is_named_for_introspection_and_a_jwt_is_not() {
    let deployment = load(&discovery_file());
    let opaque = Req::get("/v1/orders").bearer("opaque-token-123");
    assert_eq!(
        token_to_introspect(&deployment, &opaque),
        Some("opaque-token-123")
    );
    let jwt = Req::get("/v1/orders").bearer(&good_token());
    assert_eq!(token_to_introspect(&deployment, &jwt), None);
    let unrouted = Req::get("/v1/nowhere").bearer("opaque-token-123");
    assert_eq!(token_to_introspect(&deployment, &unrouted), None);
    assert_eq!(
        token_to_introspect(&self::deployment(), &opaque),
        None,
        "not a discovery policy"
    );
}

#[test]
fn an_active_answer_that_satisfies_the_policy_allows_and_exposes_its_claims() {
    let answer = shared(&active_answer());
    let verdict = judge_opaque(Introspection::Answer(&answer));
    assert_eq!(verdict.decision, Decision::Allow, "{}", summary(&verdict));
    for id in ["format", "alg", "key", "signature"] {
        assert_eq!(result(&verdict, id), "skip", "{id}");
    }
    assert_eq!(result(&verdict, "active"), "pass");
    assert_eq!(
        verdict.claims.as_ref().unwrap().get("tenant").unwrap(),
        "acme"
    );
    assert!(
        !check(&verdict, "aud").unverified,
        "introspection answers are the provider's word"
    );
    let codes: Vec<String> = verdict
        .events()
        .into_iter()
        .map(|e| e.code.into_owned())
        .collect();
    assert_eq!(codes, ["tokenAuthentication.successfulAuthentication"]);
}

#[test]
fn an_inactive_answer_denies_with_token_is_not_active() {
    let answer = shared(&answer(json!({"active": false})));
    let verdict = judge_opaque(Introspection::Answer(&answer));
    assert_eq!(verdict.decision, Decision::Deny);
    assert_eq!(verdict.status, Some(401));
    assert_eq!(
        check(&verdict, "active").message().unwrap(),
        "Token is not active."
    );
    assert_eq!(result(&verdict, "aud"), "skip");
    assert_eq!(ids(&verdict), ids_with_claims(&["claim:tenant"]));
}

#[test]
fn only_a_json_boolean_true_counts_as_active() {
    for found in [json!("true"), json!(1), json!(null)] {
        let mut answer = active_answer();
        answer.insert("active".into(), found.clone());
        let verdict = judge_opaque(Introspection::Answer(&shared(&answer)));
        assert_eq!(verdict.decision, Decision::Deny, "{found}");
        assert!(matches!(
            check(&verdict, "active").outcome,
            Outcome::Fail(_)
        ));
    }
    let mut missing = active_answer();
    missing.remove("active");
    assert_eq!(
        judge_opaque(Introspection::Answer(&shared(&missing))).decision,
        Decision::Deny
    );
}

#[test]
fn an_active_answer_is_still_judged_by_the_claim_checks() {
    let mut answer = active_answer();
    answer.insert("aud".into(), json!("api://billing"));
    answer.insert("exp".into(), json!(NOW_SECS - 10));
    let verdict = judge_opaque(Introspection::Answer(&shared(&answer)));
    assert_eq!(verdict.decision, Decision::Deny);
    let failed: Vec<String> = verdict.failures().map(|c| c.id.to_string()).collect();
    assert_eq!(failed, ["exp", "aud"]);
    assert_eq!(
        check(&verdict, "aud").message().unwrap(),
        "JWT token not issued for the configured audience."
    );
    let codes: Vec<String> = verdict
        .events()
        .into_iter()
        .map(|e| e.code.into_owned())
        .collect();
    assert_eq!(
        codes,
        [
            "tokenAuthentication.authenticationFailed",
            "tokenAuthentication.authenticationFailed"
        ]
    );
}

#[test]
fn an_unavailable_introspection_endpoint_means_500_and_bad_introspection_response() {
    let verdict = judge_opaque(Introspection::Unavailable {
        reason: "connection failed",
    });
    assert_eq!(verdict.status, Some(500));
    assert!(verdict.keys_unavailable());
    let events = verdict.events();
    assert_eq!(
        events[0].code,
        "tokenAuthentication.badIntrospectionResponse"
    );
    assert_eq!(events[0].level, "ERROR");
    assert!(events[0].message.contains("connection failed"));
}

#[test]
fn a_jwt_under_discovery_is_verified_with_the_jwks_keys_and_discovery_outages_are_named() {
    let deployment = load(&discovery_file());
    let keys = claimgate_jose::KeySet::new(vec![claimgate_jose::PublicKey::from_jwk(
        rsa_jwk(&keys().rsa).as_object().unwrap(),
    )
    .unwrap()
    .with_kid("k1".into())]);
    let token = token(&claims_with(json!({"tenant": "acme"})));
    let request = Req::get("/v1/orders").bearer(&token);
    let verdict = evaluate_with(
        &deployment,
        &request,
        KeyMaterial::Keys(&keys),
        Introspection::NotDone,
        NOW,
        None,
        Explain::Everything,
    );
    assert_eq!(verdict.decision, Decision::Allow, "{}", summary(&verdict));
    assert_eq!(result(&verdict, "active"), "skip");
    let down = evaluate_with(
        &deployment,
        &request,
        KeyMaterial::DiscoveryUnavailable {
            reason: "HTTP status 503",
        },
        Introspection::NotDone,
        NOW,
        None,
        Explain::Everything,
    );
    assert_eq!(down.status, Some(500));
    assert_eq!(
        down.events()[0].code,
        "tokenAuthentication.badDiscoveryEndpointResponse"
    );
}

/// `prepare` classifies the token once (the gateway introspects what it names); the verdict made
/// with that preparation is the one made without it, for opaque tokens, JWTs and garbage.
#[test]
fn a_prepared_verdict_is_the_unprepared_one() {
    let deployment = load(&discovery_file());
    let answer = shared(&active_answer());
    let keys = KeyMaterial::Keys(return_static_keys());
    for (token, introspected) in [
        ("opaque-token-123".to_owned(), true),
        (good_token(), false),
        ("a.b.c".to_owned(), true),
        ("not a bearer token!".to_owned(), false),
    ] {
        for path in PATHS_TO_ROUTE {
            let request = Req::get(path).bearer(&token);
            let prepared = prepare(&deployment, &request);
            let routed = path != "/v1/nowhere";
            assert_eq!(
                prepared.introspect.is_some(),
                introspected && routed,
                "{token} {path}"
            );
            assert_eq!(
                prepared.introspect,
                token_to_introspect(&deployment, &request)
            );
            let introspection = match prepared.introspect {
                Some(_) => Introspection::Answer(&answer),
                None => Introspection::NotDone,
            };
            for explain in [Explain::Everything, Explain::Failures] {
                let direct = evaluate_with(
                    &deployment,
                    &request,
                    keys,
                    introspection,
                    NOW,
                    None,
                    explain,
                );
                let via = evaluate_prepared(
                    &deployment,
                    &request,
                    prepared.clone(),
                    keys,
                    introspection,
                    NOW,
                    None,
                    explain,
                );
                assert_eq!(via, direct, "{token} {path}");
            }
        }
    }
}

/// A gateway's verification cache as `prepare_knowing` asks it: holds the tokens listed, for
/// the deployment's own policy only; counts the questions.
struct Held {
    tokens: Vec<String>,
    asked: std::cell::Cell<usize>,
}

impl VerifiedTokens for Held {
    fn holds(&self, server: Option<usize>, token: &str) -> bool {
        self.asked.set(self.asked.get() + 1);
        server.is_none() && self.tokens.iter().any(|held| held == token)
    }
}

/// A token the gateway holds as verified is prepared as a JWT without being parsed; any other
/// token is classified as `prepare` does, so an opaque token is still introspected, and the
/// verdicts are those of `prepare`'s preparation.
#[test]
fn a_token_held_verified_is_prepared_as_a_jwt_and_others_as_prepare_does() {
    let deployment = load(&discovery_file());
    let jwt = good_token();
    let held = Held {
        tokens: vec![jwt.clone()],
        asked: Default::default(),
    };
    let keys = KeyMaterial::Keys(return_static_keys());
    for token in [
        jwt.as_str(),
        "opaque-token-123",
        "a.b.c",
        "not a bearer token!",
    ] {
        let request = Req::get("/v1/orders").bearer(token);
        let knowing = prepare_knowing(&deployment, &request, &held);
        let plain = prepare(&deployment, &request);
        assert_eq!(knowing, plain, "{token}");
        for explain in [Explain::Everything, Explain::Failures] {
            let judge = |prepared| {
                evaluate_prepared(
                    &deployment,
                    &request,
                    prepared,
                    keys,
                    Introspection::NotDone,
                    NOW,
                    None,
                    explain,
                )
            };
            assert_eq!(judge(knowing.clone()), judge(plain.clone()), "{token}");
        }
    }
    assert_eq!(held.asked.get(), 4, "asked once per token");
    // Held for the token that is opaque: prepared as a JWT (no introspection), and the verdict
    // then refuses it at the format check instead of allowing it unexamined.
    let opaque = Req::get("/v1/orders").bearer("opaque-token-123");
    let wrongly = Held {
        tokens: vec!["opaque-token-123".into()],
        asked: Default::default(),
    };
    let prepared = prepare_knowing(&deployment, &opaque, &wrongly);
    assert_eq!(prepared.introspect, None);
    let verdict = evaluate_prepared(
        &deployment,
        &opaque,
        prepared,
        keys,
        Introspection::NotDone,
        NOW,
        None,
        Explain::Failures,
    );
    assert_eq!(verdict.decision, Decision::Deny, "{}", summary(&verdict));
    assert_eq!(verdict.status, Some(401));
    assert_eq!(result(&verdict, "format"), "fail");
    // Not asked where nothing is classified: a deployment without discovery, an unrouted path.
    let quiet = Held {
        tokens: vec![jwt.clone()],
        asked: Default::default(),
    };
    let _ = prepare_knowing(
        &self::deployment(),
        &Req::get("/v1/orders").bearer(&jwt),
        &quiet,
    );
    let _ = prepare_knowing(&deployment, &Req::get("/v1/nowhere").bearer(&jwt), &quiet);
    assert_eq!(quiet.asked.get(), 0);
}

/// The key set of the default deployment (k1), standing in for the `jwks_uri` keys.
fn return_static_keys() -> &'static claimgate_jose::KeySet {
    static DEPLOYMENT: std::sync::OnceLock<claimgate_config::Deployment> =
        std::sync::OnceLock::new();
    let deployment = DEPLOYMENT.get_or_init(deployment);
    match &deployment.authentication {
        claimgate_config::Authentication::Jwt(policy) => match &policy.keys {
            claimgate_config::KeySource::Static(keys) => keys,
            _ => unreachable!("static keys"),
        },
        _ => unreachable!("a JWT policy"),
    }
}
