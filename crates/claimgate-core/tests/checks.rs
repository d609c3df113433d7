//! The verdict, check by check: for every check id a pass and a fail, the messages SPEC fixes,
//! the fixes that name the values involved, statuses, anonymous routes, events, and the attack
//! catalogue items the validator decides (the known JWT attacks, one test each).
//!
//! Tokens are signed here with aws-lc-rs keys generated once per test binary; deployments are
//! JSON text loaded with `claimgate_config::load_str`; `now` is pinned.

mod support;

use aws_lc_rs::hmac;
use aws_lc_rs::signature;
use claimgate_core::{Decision, Explain, Failure, KeyMaterial, Outcome, Unrouted};
use serde_json::{json, Value};
use support::*;

// ---------------------------------------------------------------------------------------------
// Fixtures local to this file
// ---------------------------------------------------------------------------------------------

/// A file whose static keys cover every family: `k1` RSA (RS256), `e256`/`e384`/`e521` EC and
/// `ed1` Ed25519, plus `k2` RSA without a pinned `alg` (RS*/PS*).
fn multi_key_file() -> Value {
    let k = keys();
    let mut file = file();
    auth(&mut file)["publicKeys"]["keys"] = json!([
        static_key("k1", rsa_jwk(&k.rsa), Some("RS256")),
        static_key("k2", rsa_jwk(&k.rsa_other), None),
        static_key("e256", ec_jwk(&k.p256, "P-256"), None),
        static_key("e384", ec_jwk(&k.p384, "P-384"), None),
        static_key("e521", ec_jwk(&k.p521, "P-521"), None),
        static_key("ed1", ed_jwk(&k.ed25519), None),
    ]);
    file
}

fn multi_key_deployment() -> claimgate_config::Deployment {
    load(&multi_key_file())
}

/// A `REMOTE_JWKS` deployment (keys come from the caller's [`KeyMaterial`]).
fn remote_jwks_deployment() -> claimgate_config::Deployment {
    let mut file = file();
    auth(&mut file)["publicKeys"] = json!({
        "type": "REMOTE_JWKS",
        "uri": "https://idp.example.com/.well-known/jwks.json",
        "maxCacheDurationInHours": 1
    });
    load(&file)
}

/// The default file as `TOKEN_AUTHENTICATION` with `STATIC_KEYS`.
fn token_authentication_file() -> Value {
    let mut file = file();
    *auth(&mut file) = json!({
        "type": "TOKEN_AUTHENTICATION",
        "isAnonymousAccessAllowed": true,
        "tokenHeader": "Authorization",
        "tokenAuthScheme": "Bearer",
        "validationPolicy": {
            "type": "STATIC_KEYS",
            "keys": [static_key("k1", rsa_jwk(&keys().rsa), Some("RS256"))],
            "additionalValidationPolicy": {
                "issuers": [ISSUER],
                "audiences": [AUDIENCE],
                "verifyClaims": [{"key": "tenant", "values": ["acme"], "isRequired": true}]
            }
        }
    });
    file
}

/// The default file reading the token from query parameter `access_token`.
fn query_param_deployment() -> claimgate_config::Deployment {
    let mut file = file();
    let policy = auth(&mut file).as_object_mut().unwrap();
    policy.remove("tokenHeader");
    policy.remove("tokenAuthScheme");
    policy.insert("tokenQueryParam".into(), json!("access_token"));
    load(&file)
}

fn payload_json(extra: &str) -> String {
    format!(
        r#"{{"iss":"{ISSUER}","aud":"{AUDIENCE}","sub":"alice","exp":{}{extra}}}"#,
        NOW_SECS + 3600
    )
}

fn judge_default(token: &str) -> claimgate_core::Verdict {
    judge_token(&deployment(), token)
}

/// RS256 over a raw header and payload, signed by k1.
fn raw_token(header: &str, payload: &str) -> String {
    sign_raw(header, payload, &k1())
}

fn claim_rule(key: &str, values: &[&str], required: bool) -> Value {
    json!({"key": key, "values": values, "isRequired": required})
}

// ---------------------------------------------------------------------------------------------
// token
// ---------------------------------------------------------------------------------------------

#[test]
fn token_passes_when_the_bearer_header_carries_a_valid_token() {
    let verdict = judge_default(&good_token());
    assert_allowed(&verdict);
    assert_eq!(result(&verdict, "token"), "pass");
    assert_eq!(verdict.status, Some(200));
    assert_eq!(
        verdict.claims.as_ref().unwrap().get("sub").unwrap(),
        "alice"
    );
}

#[test]
fn token_fails_when_the_authorization_header_is_missing() {
    let verdict = judge(&deployment(), &Req::get("/v1/orders"));
    assert_denied_by(&verdict, &["token"]);
    assert_eq!(
        message(&verdict, "token"),
        "JWT token not found in header 'Authorization'."
    );
    let fix = fix(&verdict, "token");
    assert!(fix.contains("carries no token"), "{fix}");
    assert!(fix.contains("'Bearer <token>'"), "{fix}");
    for id in &BASE_IDS[1..] {
        assert_eq!(result(&verdict, id), "skip", "{id}");
    }
}

#[test]
fn token_fails_when_the_scheme_is_basic_instead_of_bearer() {
    let request =
        Req::get("/v1/orders").header("Authorization", &format!("Basic {}", good_token()));
    let verdict = judge(&deployment(), &request);
    assert_denied_by(&verdict, &["token"]);
    assert_eq!(
        message(&verdict, "token"),
        "JWT token not found in header 'Authorization'."
    );
    let fix = fix(&verdict, "token");
    assert!(fix.contains("scheme 'Basic' instead of 'Bearer'"), "{fix}");
}

#[test]
fn token_fails_when_the_header_has_no_scheme_at_all() {
    let request = Req::get("/v1/orders").header("Authorization", &good_token());
    let verdict = judge(&deployment(), &request);
    assert_denied_by(&verdict, &["token"]);
    assert!(fix(&verdict, "token").contains("without the 'Bearer' scheme"));
}

#[test]
fn token_fails_when_two_authorization_headers_are_sent() {
    let token = good_token();
    let request = Req::get("/v1/orders").bearer(&token).bearer(&token);
    let verdict = judge(&deployment(), &request);
    assert_denied_by(&verdict, &["token"]);
    let fix = fix(&verdict, "token");
    assert!(
        fix.contains("2 'Authorization' headers (exactly one is accepted)"),
        "{fix}"
    );
}

#[test]
fn token_fails_when_the_bearer_scheme_has_an_empty_token() {
    let request = Req::get("/v1/orders").header("Authorization", "Bearer ");
    let verdict = judge(&deployment(), &request);
    assert_denied_by(&verdict, &["token"]);
    assert!(fix(&verdict, "token").contains("empty token"));
}

#[test]
fn token_scheme_bearer_is_matched_case_insensitively() {
    let token = good_token();
    for scheme in ["bearer", "BEARER", "BeArEr"] {
        let request = Req::get("/v1/orders").header("Authorization", &format!("{scheme} {token}"));
        let verdict = judge(&deployment(), &request);
        assert_allowed(&verdict);
        assert_eq!(result(&verdict, "token"), "pass", "{scheme}");
    }
}

#[test]
fn token_header_name_is_matched_case_insensitively() {
    let request =
        Req::get("/v1/orders").header("authorization", &format!("Bearer {}", good_token()));
    assert_allowed(&judge(&deployment(), &request));
}

#[test]
fn token_passes_with_surrounding_whitespace_and_two_spaces_after_the_scheme() {
    let request =
        Req::get("/v1/orders").header("Authorization", &format!("  Bearer  {} ", good_token()));
    assert_allowed(&judge(&deployment(), &request));
}

#[test]
fn token_passes_when_read_from_the_configured_query_parameter() {
    let request = Req::get(&format!("/v1/orders?page=2&access_token={}", good_token()));
    let verdict = judge(&query_param_deployment(), &request);
    assert_allowed(&verdict);
    match &check(&verdict, "token").outcome {
        Outcome::Pass(detail) => assert!(
            detail.contains("query parameter 'access_token'"),
            "{detail}"
        ),
        other => panic!("{other:?}"),
    }
}

#[test]
fn token_fails_when_the_query_parameter_is_absent_even_if_a_header_carries_the_token() {
    let request = Req::get("/v1/orders?page=2").bearer(&good_token());
    let verdict = judge(&query_param_deployment(), &request);
    assert_denied_by(&verdict, &["token"]);
    assert_eq!(
        message(&verdict, "token"),
        "JWT token not found in query parameter 'access_token'."
    );
    assert!(fix(&verdict, "token").contains("send it as query parameter 'access_token'"));
}

#[test]
fn token_failure_names_the_token_query_param_setting_for_a_query_parameter_policy() {
    let verdict = judge(&query_param_deployment(), &Req::get("/v1/orders"));
    assert_eq!(
        check(&verdict, "token").setting.as_deref(),
        Some("specification.requestPolicies.authentication.tokenQueryParam")
    );
}

#[test]
fn token_fails_when_the_query_parameter_is_repeated() {
    let token = good_token();
    let request = Req::get(&format!(
        "/v1/orders?access_token={token}&access_token={token}"
    ));
    let verdict = judge(&query_param_deployment(), &request);
    assert_denied_by(&verdict, &["token"]);
    assert!(fix(&verdict, "token").contains("more than once"));
}

#[test]
fn token_fails_when_the_query_parameter_is_empty() {
    let verdict = judge(
        &query_param_deployment(),
        &Req::get("/v1/orders?access_token="),
    );
    assert_denied_by(&verdict, &["token"]);
    assert!(fix(&verdict, "token").contains("empty token"));
}

#[test]
fn token_in_a_custom_header_without_scheme_passes_for_token_authentication() {
    let mut file = token_authentication_file();
    let policy = auth(&mut file);
    policy["tokenHeader"] = json!("X-Api-Token");
    policy.as_object_mut().unwrap().remove("tokenAuthScheme");
    let deployment = load(&file);
    let token = token(&claims_with(json!({"tenant": "acme"})));
    let verdict = judge(
        &deployment,
        &Req::get("/v1/orders").header("x-api-token", &token),
    );
    assert_allowed(&verdict);
    let missing = judge(&deployment, &Req::get("/v1/orders").bearer(&token));
    assert_eq!(
        message(&missing, "token"),
        "JWT token not found in header 'X-Api-Token'."
    );
}

// ---------------------------------------------------------------------------------------------
// format
// ---------------------------------------------------------------------------------------------

#[test]
fn format_passes_for_a_compact_jws() {
    let verdict = judge_default(&good_token());
    assert_eq!(result(&verdict, "format"), "pass");
}

#[test]
fn format_fails_for_a_single_segment() {
    let verdict = judge_default("abc");
    assert_malformed(
        &verdict,
        "it has 1 segment; a compact JWS has 3 separated by dots",
    );
    assert_eq!(
        message(&verdict, "format"),
        "JWT token is malformed: it has 1 segment; a compact JWS has 3 separated by dots."
    );
    assert!(fix(&verdict, "format").contains("three base64url segments"));
}

#[test]
fn format_fails_when_the_header_is_not_a_json_object() {
    for header in [r#""x""#, "[]", "1"] {
        let verdict = judge_default(&raw_token(header, &payload_json("")));
        assert_malformed(&verdict, "the header is not a JSON object");
    }
}

#[test]
fn format_fails_when_the_payload_is_not_a_json_object() {
    let verdict = judge_default(&raw_token(&header().to_string(), "[1,2]"));
    assert_malformed(&verdict, "the payload is not a JSON object");
}

#[test]
fn format_fails_when_the_header_has_no_alg() {
    let verdict = judge_default(&raw_token(r#"{"kid":"k1"}"#, &payload_json("")));
    assert_malformed(&verdict, "the header has no 'alg'");
}

#[test]
fn format_fails_when_alg_is_not_a_string() {
    for header in [
        r#"{"alg":1,"kid":"k1"}"#,
        r#"{"alg":null,"kid":"k1"}"#,
        r#"{"alg":["RS256"],"kid":"k1"}"#,
    ] {
        let verdict = judge_default(&raw_token(header, &payload_json("")));
        assert_malformed(&verdict, "the header's 'alg' is not a string");
    }
}

#[test]
fn format_fails_for_invalid_utf8_in_the_payload() {
    let header = b64(header().to_string());
    let payload = b64(b"{\"sub\":\"\xc3\x28\"}");
    let input = format!("{header}.{payload}");
    let signature = k1().sign(input.as_bytes());
    let verdict = judge_default(&format!("{input}.{}", b64(signature)));
    assert_malformed(&verdict, "the payload is invalid JSON");
}

#[test]
fn format_fails_for_a_lone_surrogate_in_the_payload() {
    let verdict = judge_default(&raw_token(
        &header().to_string(),
        &payload_json(r#","name":"\ud800""#),
    ));
    assert_malformed(&verdict, "the payload is invalid JSON");
}

// ---------------------------------------------------------------------------------------------
// alg
// ---------------------------------------------------------------------------------------------

#[test]
fn alg_passes_when_the_configured_key_allows_rs256() {
    let verdict = judge_default(&good_token());
    assert_eq!(result(&verdict, "alg"), "pass");
    let alg = check(&verdict, "alg");
    assert_eq!(alg.expected.as_deref().cloned(), Some(json!(["RS256"])));
    assert_eq!(alg.actual.as_deref().cloned(), Some(json!("RS256")));
}

#[test]
fn alg_fails_for_ps256_when_the_only_key_pins_rs256() {
    let header = json!({"alg": "PS256", "kid": "k1"});
    let token = token_with(
        &header,
        &claims(),
        &Signer::Rsa(&keys().rsa, &signature::RSA_PSS_SHA256),
    );
    let verdict = judge_default(&token);
    assert_denied_by(&verdict, &["alg"]);
    assert_eq!(
        message(&verdict, "alg"),
        "JWT token algorithm 'PS256' is not allowed."
    );
    let fix = fix(&verdict, "alg");
    assert!(fix.contains("signed with PS256"), "{fix}");
    assert!(fix.contains("allow only RS256"), "{fix}");
    assert!(
        fix.contains("specification.requestPolicies.authentication.publicKeys"),
        "{fix}"
    );
    assert_eq!(result(&verdict, "key"), "skip");
    assert_eq!(result(&verdict, "signature"), "skip");
}

#[test]
fn alg_fails_for_an_algorithm_claimgate_does_not_verify() {
    let header = json!({"alg": "HS256", "kid": "k1"});
    let token = token_with(
        &header,
        &claims(),
        &Signer::Hmac(
            hmac::HMAC_SHA256,
            b"0123456789abcdef0123456789abcdef".to_vec(),
        ),
    );
    let verdict = judge_default(&token);
    assert_denied_by(&verdict, &["alg"]);
    assert_eq!(
        message(&verdict, "alg"),
        "JWT token algorithm 'HS256' is not allowed."
    );
    assert!(fix(&verdict, "alg").contains("'HS256' is not an algorithm claimgate verifies"));
}

#[test]
fn alg_is_compared_case_sensitively() {
    let header = json!({"alg": "rs256", "kid": "k1"});
    let verdict = judge_default(&token_with(&header, &claims(), &k1()));
    assert_denied_by(&verdict, &["alg"]);
    assert_eq!(
        message(&verdict, "alg"),
        "JWT token algorithm 'rs256' is not allowed."
    );
}

#[test]
fn alg_and_signature_pass_for_every_supported_family() {
    let k = keys();
    let deployment = multi_key_deployment();
    let cases: Vec<(&str, &str, Signer<'_>)> = vec![
        (
            "RS256",
            "k1",
            Signer::Rsa(&k.rsa, &signature::RSA_PKCS1_SHA256),
        ),
        (
            "RS384",
            "k2",
            Signer::Rsa(&k.rsa_other, &signature::RSA_PKCS1_SHA384),
        ),
        (
            "RS512",
            "k2",
            Signer::Rsa(&k.rsa_other, &signature::RSA_PKCS1_SHA512),
        ),
        (
            "PS256",
            "k2",
            Signer::Rsa(&k.rsa_other, &signature::RSA_PSS_SHA256),
        ),
        (
            "PS384",
            "k2",
            Signer::Rsa(&k.rsa_other, &signature::RSA_PSS_SHA384),
        ),
        (
            "PS512",
            "k2",
            Signer::Rsa(&k.rsa_other, &signature::RSA_PSS_SHA512),
        ),
        ("ES256", "e256", Signer::Ecdsa(&k.p256)),
        ("ES384", "e384", Signer::Ecdsa(&k.p384)),
        ("ES512", "e521", Signer::Ecdsa(&k.p521)),
        ("EdDSA", "ed1", Signer::Ed25519(&k.ed25519)),
        ("Ed25519", "ed1", Signer::Ed25519(&k.ed25519)),
    ];
    for (alg, kid, signer) in cases {
        let token = token_with(&json!({"alg": alg, "kid": kid}), &claims(), &signer);
        let verdict = judge_token(&deployment, &token);
        assert_eq!(
            failed(&verdict),
            Vec::<String>::new(),
            "{alg}: [{}]",
            summary(&verdict)
        );
        assert_eq!(result(&verdict, "signature"), "pass", "{alg}");
    }
}

// ---------------------------------------------------------------------------------------------
// key
// ---------------------------------------------------------------------------------------------

#[test]
fn key_passes_when_the_kid_names_a_configured_key() {
    let verdict = judge_default(&good_token());
    let key = check(&verdict, "key");
    assert_eq!(
        key.outcome,
        Outcome::Pass("kid 'k1' is the RSA 2048-bit key".into())
    );
    assert_eq!(key.expected.as_deref().cloned(), Some(json!(["k1"])));
    assert_eq!(key.actual.as_deref().cloned(), Some(json!("k1")));
}

#[test]
fn key_fails_when_the_kid_is_unknown_and_names_the_known_kids() {
    let token = token_with(
        &json!({"alg": "RS256", "kid": "rotated-2026"}),
        &claims(),
        &k1(),
    );
    let verdict = judge_default(&token);
    assert_denied_by(&verdict, &["key"]);
    assert_eq!(
        message(&verdict, "key"),
        "No public key found for the JWT token (kid 'rotated-2026')."
    );
    let fix = fix(&verdict, "key");
    assert!(
        fix.contains("names kid 'rotated-2026' but the keys have kid `k1`"),
        "{fix}"
    );
    assert_eq!(result(&verdict, "signature"), "skip");
}

#[test]
fn key_passes_without_kid_when_exactly_one_key_allows_the_alg() {
    let token = token_with(&json!({"alg": "RS256"}), &claims(), &k1());
    let verdict = judge_default(&token);
    assert_allowed(&verdict);
    match &check(&verdict, "key").outcome {
        Outcome::Pass(detail) => assert!(detail.contains("no kid"), "{detail}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn key_fails_without_kid_when_two_keys_allow_the_alg() {
    let token = token_with(&json!({"alg": "RS256"}), &claims(), &k1());
    let verdict = judge_token(&multi_key_deployment(), &token);
    assert_denied_by(&verdict, &["key"]);
    assert_eq!(
        message(&verdict, "key"),
        "No public key found for the JWT token (kid '')."
    );
    assert!(fix(&verdict, "key").contains("no kid and 2 keys could verify it"));
}

#[test]
fn key_fails_when_the_kid_names_a_key_of_another_family() {
    // ES256 is allowed by e256, but kid k1 is an RSA key.
    let token = token_with(
        &json!({"alg": "ES256", "kid": "k1"}),
        &claims(),
        &Signer::Ecdsa(&keys().p256),
    );
    let verdict = judge_token(&multi_key_deployment(), &token);
    assert_denied_by(&verdict, &["key"]);
    assert_eq!(
        message(&verdict, "key"),
        "No public key found for the JWT token (kid 'k1')."
    );
    let fix = fix(&verdict, "key");
    assert!(
        fix.contains("Key 'k1' is RSA 2048-bit (allows RS256) and cannot verify ES256"),
        "{fix}"
    );
}

#[test]
fn key_passes_for_a_pem_static_key() {
    let mut file = file();
    auth(&mut file)["publicKeys"]["keys"] = json!([{
        "kid": "k1",
        "format": "PEM",
        "key": pem("PUBLIC KEY", &rsa_spki_der(&keys().rsa)),
    }]);
    assert_allowed(&judge_token(&load(&file), &good_token()));
}

#[test]
fn key_from_a_remote_key_set_passes_when_the_caller_supplies_it() {
    let jwks = json!({"keys": [static_key("k1", rsa_jwk(&keys().rsa), Some("RS256"))]});
    let parsed = claimgate_jose::parse_jwks(jwks.to_string().as_bytes()).unwrap();
    let request = Req::get("/v1/orders").bearer(&good_token());
    let verdict = judge_with_keys(
        &remote_jwks_deployment(),
        &request,
        KeyMaterial::Keys(&parsed.keys),
    );
    assert_allowed(&verdict);
}

/// The verdict on a good token against a remote key set made of these JWKs.
fn judge_with_remote_jwks(jwks: Value, token: &str) -> claimgate_core::Verdict {
    let parsed = claimgate_jose::parse_jwks(jwks.to_string().as_bytes()).unwrap();
    let request = Req::get("/v1/orders").bearer(token);
    judge_with_keys(
        &remote_jwks_deployment(),
        &request,
        KeyMaterial::Keys(&parsed.keys),
    )
}

#[test]
fn key_without_kid_in_a_remote_key_set_passes_for_a_token_without_kid() {
    let mut jwk = rsa_jwk(&keys().rsa);
    jwk["alg"] = json!("RS256");
    let token = token_with(&json!({"alg": "RS256"}), &claims(), &k1());
    assert_allowed(&judge_with_remote_jwks(json!({ "keys": [jwk] }), &token));
}

#[test]
fn key_fails_when_a_token_kid_meets_a_remote_key_set_without_kids() {
    let verdict = judge_with_remote_jwks(json!({"keys": [rsa_jwk(&keys().rsa)]}), &good_token());
    assert_denied_by(&verdict, &["key"]);
    assert_eq!(
        message(&verdict, "key"),
        "No public key found for the JWT token (kid 'k1')."
    );
}

#[test]
fn key_fix_for_a_kid_against_keys_without_kids_does_not_claim_that_no_key_is_configured() {
    let verdict = judge_with_remote_jwks(json!({"keys": [rsa_jwk(&keys().rsa)]}), &good_token());
    let fix = fix(&verdict, "key");
    assert!(!fix.contains("no key is configured"), "{fix}");
}

#[test]
fn alg_fails_when_the_remote_key_set_holds_no_usable_key() {
    let verdict = judge_with_remote_jwks(json!({ "keys": [] }), &good_token());
    assert_denied_by(&verdict, &["alg"]);
    assert_eq!(
        message(&verdict, "alg"),
        "JWT token algorithm 'RS256' is not allowed."
    );
}

#[test]
fn alg_fix_for_an_empty_key_set_names_no_empty_algorithm_list() {
    let verdict = judge_with_remote_jwks(json!({ "keys": [] }), &good_token());
    let fix = fix(&verdict, "alg");
    assert!(!fix.contains("allow only ."), "{fix}");
}

// ---------------------------------------------------------------------------------------------
// signature
// ---------------------------------------------------------------------------------------------

#[test]
fn signature_passes_with_the_configured_key() {
    let verdict = judge_default(&good_token());
    assert_eq!(
        check(&verdict, "signature").outcome,
        Outcome::Pass("verified with key 'k1' (RSA 2048-bit)".into())
    );
}

#[test]
fn signature_fails_when_another_key_signed_under_the_same_kid() {
    let token = token_with(
        &header(),
        &claims(),
        &Signer::Rsa(&keys().rsa_other, &signature::RSA_PKCS1_SHA256),
    );
    let verdict = judge_default(&token);
    assert_denied_by(&verdict, &["signature"]);
    assert_eq!(
        message(&verdict, "signature"),
        "JWT token signature is not valid."
    );
    let fix = fix(&verdict, "signature");
    assert!(
        fix.contains("does not verify with key 'k1' (RSA 2048-bit)"),
        "{fix}"
    );
    assert!(
        fix.contains("specification.requestPolicies.authentication.publicKeys"),
        "{fix}"
    );
}

#[test]
fn signature_fails_when_the_payload_was_altered_after_signing() {
    let [header, _, signature] = segments(&good_token());
    let forged = b64(claims_with(json!({"sub": "admin"})).to_string());
    let verdict = judge_default(&format!("{header}.{forged}.{signature}"));
    assert_denied_by(&verdict, &["signature"]);
    assert_eq!(check(&verdict, "exp").outcome.name(), "pass");
    assert!(check(&verdict, "exp").unverified);
}

#[test]
fn signature_fails_when_the_header_declares_rs256_but_the_signature_is_pss() {
    let token = token_with(
        &json!({"alg": "RS256", "kid": "k2"}),
        &claims(),
        &Signer::Rsa(&keys().rsa_other, &signature::RSA_PSS_SHA256),
    );
    let verdict = judge_token(&multi_key_deployment(), &token);
    assert_denied_by(&verdict, &["signature"]);
}

// ---------------------------------------------------------------------------------------------
// exp
// ---------------------------------------------------------------------------------------------

#[test]
fn exp_passes_when_the_token_expires_in_the_future() {
    let verdict = judge_default(&good_token());
    let exp = check(&verdict, "exp");
    assert_eq!(
        exp.outcome,
        Outcome::Pass("expires 2025-11-24T17:00:00Z (in 1h)".into())
    );
    assert_eq!(
        exp.expected.as_deref().cloned(),
        Some(json!("now <= exp + 0s"))
    );
    assert_eq!(exp.actual.as_deref().cloned(), Some(json!(NOW_SECS + 3600)));
    let time = exp.time.expect("time checks carry now and skew");
    assert_eq!((time.now, time.skew_seconds), (NOW, 0.0));
}

#[test]
fn exp_fails_when_the_token_expired_an_hour_ago() {
    let verdict = judge_default(&token(&claims_with(json!({"exp": NOW_SECS - 3600}))));
    assert_denied_by(&verdict, &["exp"]);
    assert_eq!(
        message(&verdict, "exp"),
        "Validation failed for 'exp' claim."
    );
    let fix = fix(&verdict, "exp");
    assert!(
        fix.contains("expired at 2025-11-24T15:00:00Z (1h ago; allowed skew 0s)"),
        "{fix}"
    );
    let json = verdict.to_json();
    let exp = &json["checks"][5];
    assert_eq!(exp["check"], "exp");
    assert_eq!(exp["actual"], json!(NOW_SECS - 3600));
    assert_eq!(exp["now"], json!(NOW_SECS));
    assert_eq!(exp["skew"], json!(0.0));
}

#[test]
fn exp_passes_when_it_equals_now() {
    assert_allowed(&judge_default(&token(&claims_with(
        json!({"exp": NOW_SECS}),
    ))));
}

#[test]
fn exp_fails_one_second_before_now_without_skew() {
    let verdict = judge_default(&token(&claims_with(json!({"exp": NOW_SECS - 1}))));
    assert_denied_by(&verdict, &["exp"]);
}

#[test]
fn exp_passes_when_expired_within_the_clock_skew() {
    let deployment = deployment_with_skew(30.0);
    for ago in [1, 20, 30] {
        let verdict = judge_token(
            &deployment,
            &token(&claims_with(json!({"exp": NOW_SECS - ago}))),
        );
        assert_allowed(&verdict);
    }
}

#[test]
fn exp_fails_when_expired_beyond_the_clock_skew() {
    let deployment = deployment_with_skew(30.0);
    let verdict = judge_token(
        &deployment,
        &token(&claims_with(json!({"exp": NOW_SECS - 31}))),
    );
    assert_denied_by(&verdict, &["exp"]);
    assert_eq!(
        check(&verdict, "exp").expected.as_deref().cloned(),
        Some(json!("now <= exp + 30s"))
    );
    assert!(fix(&verdict, "exp").contains("allowed skew 30s"));
}

#[test]
fn exp_float_is_floored_toward_refusal() {
    // 0.5 s before now: rounding would give `now` and pass; flooring gives now - 1 and fails.
    let verdict = judge_default(&token(&claims_with(json!({"exp": NOW_SECS as f64 - 0.5}))));
    assert_denied_by(&verdict, &["exp"]);
    // 0.9 s after now floors to now, which still passes.
    assert_allowed(&judge_default(&token(&claims_with(
        json!({"exp": NOW_SECS as f64 + 0.9}),
    ))));
}

#[test]
fn exp_fails_when_it_is_a_string() {
    let verdict = judge_default(&token(&claims_with(
        json!({"exp": (NOW_SECS + 3600).to_string()}),
    )));
    assert_denied_by(&verdict, &["exp"]);
    assert_eq!(
        message(&verdict, "exp"),
        "Validation failed for 'exp' claim."
    );
    assert!(fix(&verdict, "exp").contains("the token has a string"));
    assert_eq!(
        check(&verdict, "exp").actual.as_deref().cloned(),
        Some(json!((NOW_SECS + 3600).to_string()))
    );
}

#[test]
fn exp_fails_when_it_is_null_boolean_array_or_object() {
    for value in [
        json!(true),
        json!([NOW_SECS + 3600]),
        json!({"t": NOW_SECS + 3600}),
    ] {
        let verdict = judge_default(&token(&claims_with(json!({"exp": value.clone()}))));
        assert_denied_by(&verdict, &["exp"]);
    }
    let payload = payload_json("").replace(&format!("\"exp\":{}", NOW_SECS + 3600), "\"exp\":null");
    let verdict = judge_default(&raw_token(&header().to_string(), &payload));
    assert_denied_by(&verdict, &["exp"]);
    assert!(fix(&verdict, "exp").contains("the token has null"));
}

#[test]
fn exp_fails_when_negative() {
    let verdict = judge_default(&token(&claims_with(json!({"exp": -1}))));
    assert_denied_by(&verdict, &["exp"]);
    assert!(fix(&verdict, "exp").contains("negative or beyond year 9999"));
}

#[test]
fn exp_fails_when_zero() {
    let verdict = judge_default(&token(&claims_with(json!({"exp": 0}))));
    assert_denied_by(&verdict, &["exp"]);
    assert!(fix(&verdict, "exp").contains("expired at 1970-01-01T00:00:00Z"));
}

#[test]
fn exp_fails_when_missing_because_oci_requires_it() {
    let verdict = judge_default(&token(&claims_with(json!({"exp": null}))));
    assert_denied_by(&verdict, &["exp"]);
    assert_eq!(
        message(&verdict, "exp"),
        "Validation failed for 'exp' claim."
    );
    assert!(fix(&verdict, "exp").contains("no 'exp' claim, which OCI requires"));
    assert_eq!(check(&verdict, "exp").actual.as_deref().cloned(), None);
}

// ---------------------------------------------------------------------------------------------
// nbf
// ---------------------------------------------------------------------------------------------

#[test]
fn nbf_is_skipped_when_absent() {
    let verdict = judge_default(&good_token());
    assert_eq!(result(&verdict, "nbf"), "skip");
    assert_eq!(skip_reason(&verdict, "nbf"), "the token has no 'nbf' claim");
}

#[test]
fn nbf_passes_when_in_the_past() {
    let verdict = judge_default(&token(&claims_with(json!({"nbf": NOW_SECS - 60}))));
    assert_allowed(&verdict);
    assert_eq!(result(&verdict, "nbf"), "pass");
    assert_eq!(
        check(&verdict, "nbf").expected.as_deref().cloned(),
        Some(json!("now >= nbf - 0s"))
    );
}

#[test]
fn nbf_passes_when_it_equals_now() {
    assert_allowed(&judge_default(&token(&claims_with(
        json!({"nbf": NOW_SECS}),
    ))));
}

#[test]
fn nbf_fails_when_in_the_future_beyond_the_clock_skew() {
    let deployment = deployment_with_skew(30.0);
    let verdict = judge_token(
        &deployment,
        &token(&claims_with(json!({"nbf": NOW_SECS + 31}))),
    );
    assert_denied_by(&verdict, &["nbf"]);
    assert_eq!(
        message(&verdict, "nbf"),
        "Validation failed for 'nbf' claim."
    );
    let fix = fix(&verdict, "nbf");
    assert!(
        fix.contains("not valid before 2025-11-24T16:00:31Z (in 31s; allowed skew 30s)"),
        "{fix}"
    );
}

#[test]
fn nbf_passes_when_in_the_future_within_the_clock_skew() {
    let deployment = deployment_with_skew(30.0);
    for ahead in [1, 29, 30] {
        let verdict = judge_token(
            &deployment,
            &token(&claims_with(json!({"nbf": NOW_SECS + ahead}))),
        );
        assert_allowed(&verdict);
    }
}

#[test]
fn nbf_float_is_ceiled_toward_refusal() {
    let verdict = judge_default(&token(&claims_with(json!({"nbf": NOW_SECS as f64 + 0.2}))));
    assert_denied_by(&verdict, &["nbf"]);
}

#[test]
fn nbf_fails_when_it_is_a_string_rather_than_being_treated_as_absent() {
    // CVE-2026-25537: a malformed nbf must never count as "not present".
    let verdict = judge_default(&token(&claims_with(json!({"nbf": "99999999999"}))));
    assert_denied_by(&verdict, &["nbf"]);
    assert_eq!(
        message(&verdict, "nbf"),
        "Validation failed for 'nbf' claim."
    );
}

// ---------------------------------------------------------------------------------------------
// iss
// ---------------------------------------------------------------------------------------------

#[test]
fn iss_passes_when_it_equals_a_configured_issuer() {
    let verdict = judge_default(&good_token());
    assert_eq!(
        check(&verdict, "iss").outcome,
        Outcome::Pass(format!("`{ISSUER}` is a configured issuer").into())
    );
    assert_eq!(
        check(&verdict, "iss").expected.as_deref().cloned(),
        Some(json!([ISSUER]))
    );
}

#[test]
fn iss_passes_for_the_second_of_several_configured_issuers() {
    let mut file = file();
    auth(&mut file)["issuers"] = json!([ISSUER, OTHER_ISSUER]);
    let verdict = judge_token(
        &load(&file),
        &token(&claims_with(json!({"iss": OTHER_ISSUER}))),
    );
    assert_allowed(&verdict);
}

#[test]
fn iss_fails_when_the_token_issuer_lacks_the_trailing_slash() {
    let verdict = judge_default(&token(&claims_with(
        json!({"iss": "https://idp.example.com"}),
    )));
    assert_denied_by(&verdict, &["iss"]);
    assert_eq!(
        message(&verdict, "iss"),
        "JWT token not issued by the configured issuers."
    );
    let fix = fix(&verdict, "iss");
    assert!(fix.contains("`https://idp.example.com`"), "{fix}");
    assert!(fix.contains("trailing slash"), "{fix}");
    assert!(
        fix.contains("specification.requestPolicies.authentication.issuers"),
        "{fix}"
    );
}

#[test]
fn iss_fails_when_only_letter_case_differs() {
    let verdict = judge_default(&token(&claims_with(
        json!({"iss": "https://IDP.example.com/"}),
    )));
    assert_denied_by(&verdict, &["iss"]);
    assert!(fix(&verdict, "iss").contains("letter case"));
}

#[test]
fn iss_fails_when_the_scheme_is_http_instead_of_https() {
    let verdict = judge_default(&token(&claims_with(
        json!({"iss": "http://idp.example.com/"}),
    )));
    assert_denied_by(&verdict, &["iss"]);
    assert!(fix(&verdict, "iss").contains("scheme (http vs https)"));
}

#[test]
fn iss_fails_when_an_explicit_default_port_is_added() {
    let verdict = judge_default(&token(&claims_with(
        json!({"iss": "https://idp.example.com:443/"}),
    )));
    assert_denied_by(&verdict, &["iss"]);
}

#[test]
fn iss_fails_when_unicode_normalisation_differs() {
    let mut file = file();
    auth(&mut file)["issuers"] = json!(["https://caf\u{e9}.example/"]);
    let verdict = judge_token(
        &load(&file),
        &token(&claims_with(json!({"iss": "https://cafe\u{301}.example/"}))),
    );
    assert_denied_by(&verdict, &["iss"]);
}

#[test]
fn iss_fails_when_missing() {
    let verdict = judge_default(&token(&claims_with(json!({"iss": null}))));
    assert_denied_by(&verdict, &["iss"]);
    assert_eq!(
        message(&verdict, "iss"),
        "JWT token not issued by the configured issuers."
    );
    assert!(fix(&verdict, "iss").contains("no 'iss' claim"));
}

#[test]
fn iss_fails_when_not_a_string() {
    let verdict = judge_default(&token(&claims_with(json!({"iss": [ISSUER]}))));
    assert_denied_by(&verdict, &["iss"]);
    assert!(fix(&verdict, "iss").contains("'iss' must be a string; the token has an array"));
}

#[test]
fn iss_is_skipped_when_token_authentication_configures_no_issuers() {
    let mut file = token_authentication_file();
    auth(&mut file)["validationPolicy"]["additionalValidationPolicy"]
        .as_object_mut()
        .unwrap()
        .remove("issuers");
    let verdict = judge_token(
        &load(&file),
        &token(&claims_with(json!({"iss": "anyone", "tenant": "acme"}))),
    );
    assert_allowed(&verdict);
    assert_eq!(
        skip_reason(&verdict, "iss"),
        "the policy does not check issuers"
    );
}

// ---------------------------------------------------------------------------------------------
// aud
// ---------------------------------------------------------------------------------------------

#[test]
fn aud_passes_when_it_is_the_configured_audience_as_a_string() {
    let verdict = judge_default(&good_token());
    assert_eq!(
        check(&verdict, "aud").outcome,
        Outcome::Pass(format!("`{AUDIENCE}` is a configured audience").into())
    );
}

#[test]
fn aud_passes_when_an_array_contains_the_configured_audience() {
    let verdict = judge_default(&token(&claims_with(
        json!({"aud": ["api://billing", AUDIENCE]}),
    )));
    assert_allowed(&verdict);
    assert_eq!(
        check(&verdict, "aud").actual.as_deref().cloned(),
        Some(json!(["api://billing", AUDIENCE]))
    );
}

#[test]
fn aud_fails_when_token_audience_differs_by_trailing_slash() {
    let verdict = judge_default(&token(&claims_with(json!({"aud": "api://orders/"}))));
    assert_denied_by(&verdict, &["aud"]);
    assert_eq!(
        message(&verdict, "aud"),
        "JWT token not issued for the configured audience."
    );
    let fix = fix(&verdict, "aud");
    assert!(fix.contains("`api://orders/`"), "{fix}");
    assert!(fix.contains("`api://orders`"), "{fix}");
    assert!(fix.contains("trailing slash"), "{fix}");
    assert!(
        fix.contains("specification.requestPolicies.authentication.audiences"),
        "{fix}"
    );
    let aud = check(&verdict, "aud");
    assert_eq!(aud.expected.as_deref().cloned(), Some(json!([AUDIENCE])));
    assert_eq!(aud.actual.as_deref().cloned(), Some(json!("api://orders/")));
}

#[test]
fn aud_fails_when_only_letter_case_differs() {
    let verdict = judge_default(&token(&claims_with(json!({"aud": ["API://ORDERS"]}))));
    assert_denied_by(&verdict, &["aud"]);
    assert!(fix(&verdict, "aud").contains("letter case"));
}

#[test]
fn aud_fails_when_it_has_trailing_white_space() {
    let verdict = judge_default(&token(&claims_with(json!({"aud": "api://orders "}))));
    assert_denied_by(&verdict, &["aud"]);
    assert!(fix(&verdict, "aud").contains("white space"));
}

#[test]
fn aud_fails_for_an_empty_array() {
    let verdict = judge_default(&token(&claims_with(json!({"aud": []}))));
    assert_denied_by(&verdict, &["aud"]);
    assert_eq!(
        message(&verdict, "aud"),
        "JWT token not issued for the configured audience."
    );
    assert!(fix(&verdict, "aud").contains("is an empty array"));
}

#[test]
fn aud_fails_when_the_array_has_a_non_string_element_even_beside_a_match() {
    let verdict = judge_default(&token(&claims_with(json!({"aud": [1, AUDIENCE]}))));
    assert_denied_by(&verdict, &["aud"]);
    assert!(fix(&verdict, "aud").contains("has a number where strings belong"));
}

#[test]
fn aud_fails_when_it_is_a_number_or_an_object() {
    for value in [json!(1), json!({"aud": AUDIENCE})] {
        let verdict = judge_default(&token(&claims_with(json!({"aud": value}))));
        assert_denied_by(&verdict, &["aud"]);
        assert!(fix(&verdict, "aud").contains("not a string or an array of strings"));
    }
}

#[test]
fn aud_fails_when_missing() {
    let verdict = judge_default(&token(&claims_with(json!({"aud": null}))));
    assert_denied_by(&verdict, &["aud"]);
    assert!(fix(&verdict, "aud").contains("no 'aud' claim"));
}

#[test]
fn aud_fails_for_an_id_token_whose_audience_is_a_client_id() {
    let verdict = judge_default(&token(&claims_with(json!({"aud": "0oa1client"}))));
    assert_denied_by(&verdict, &["aud"]);
    let fix = fix(&verdict, "aud");
    assert!(
        fix.contains("The token's aud is `0oa1client` but the deployment accepts `api://orders`"),
        "{fix}"
    );
}

// ---------------------------------------------------------------------------------------------
// claim:<key>
// ---------------------------------------------------------------------------------------------

#[test]
fn claim_passes_when_the_value_is_one_of_the_expected_values() {
    let deployment =
        deployment_with_claims(json!([claim_rule("tenant", &["acme", "globex"], true)]));
    let verdict = judge_token(
        &deployment,
        &token(&claims_with(json!({"tenant": "globex"}))),
    );
    assert_allowed(&verdict);
    assert_eq!(
        check(&verdict, "claim:tenant").outcome,
        Outcome::Pass("`globex` is an expected value".into())
    );
    assert_eq!(
        check(&verdict, "claim:tenant").expected.as_deref().cloned(),
        Some(json!(["acme", "globex"]))
    );
}

#[test]
fn claim_fails_when_required_and_missing() {
    let deployment = deployment_with_claims(json!([claim_rule("tenant", &["acme"], true)]));
    let verdict = judge_token(&deployment, &good_token());
    assert_denied_by(&verdict, &["claim:tenant"]);
    assert_eq!(
        message(&verdict, "claim:tenant"),
        "JWT token missing required claim 'tenant'."
    );
    let fix = fix(&verdict, "claim:tenant");
    assert!(fix.contains("no claim 'tenant'"), "{fix}");
    assert!(
        fix.contains("specification.requestPolicies.authentication.verifyClaims"),
        "{fix}"
    );
}

#[test]
fn claim_fails_with_a_wrong_value() {
    let deployment = deployment_with_claims(json!([claim_rule("tenant", &["acme"], true)]));
    let verdict = judge_token(
        &deployment,
        &token(&claims_with(json!({"tenant": "initech"}))),
    );
    assert_denied_by(&verdict, &["claim:tenant"]);
    assert_eq!(
        message(&verdict, "claim:tenant"),
        "JWT token does not have the expected claim value for 'tenant'."
    );
    let fix = fix(&verdict, "claim:tenant");
    assert!(fix.contains("The token's 'tenant' is `initech`"), "{fix}");
    assert!(fix.contains("expects `acme`"), "{fix}");
}

#[test]
fn claim_fails_when_the_value_differs_only_in_letter_case() {
    let deployment = deployment_with_claims(json!([claim_rule("role", &["admin"], true)]));
    let verdict = judge_token(&deployment, &token(&claims_with(json!({"role": "Admin"}))));
    assert_denied_by(&verdict, &["claim:role"]);
    assert!(fix(&verdict, "claim:role").contains("letter case"));
}

#[test]
fn claim_passes_when_not_required_and_absent() {
    let deployment = deployment_with_claims(json!([claim_rule("tenant", &["acme"], false)]));
    let verdict = judge_token(&deployment, &good_token());
    assert_allowed(&verdict);
    assert_eq!(
        check(&verdict, "claim:tenant").outcome,
        Outcome::Pass("absent, and not required".into())
    );
}

#[test]
fn claim_not_required_but_present_with_a_wrong_value_fails() {
    let deployment = deployment_with_claims(json!([claim_rule("tenant", &["acme"], false)]));
    let verdict = judge_token(
        &deployment,
        &token(&claims_with(json!({"tenant": "initech"}))),
    );
    assert_denied_by(&verdict, &["claim:tenant"]);
}

#[test]
fn claim_with_empty_values_checks_presence_only() {
    let deployment = deployment_with_claims(json!([{"key": "email", "isRequired": true}]));
    for value in [
        json!("a@example.com"),
        json!(42),
        json!(["x"]),
        json!({"o": 1}),
    ] {
        let verdict = judge_token(&deployment, &token(&claims_with(json!({"email": value}))));
        assert_allowed(&verdict);
        assert_eq!(
            check(&verdict, "claim:email").outcome,
            Outcome::Pass("present".into())
        );
        assert_eq!(
            check(&verdict, "claim:email").expected.as_deref().cloned(),
            None
        );
    }
    let verdict = judge_token(&deployment, &good_token());
    assert_denied_by(&verdict, &["claim:email"]);
    assert_eq!(
        message(&verdict, "claim:email"),
        "JWT token missing required claim 'email'."
    );
}

#[test]
fn claim_number_is_compared_by_its_json_text() {
    let deployment = deployment_with_claims(json!([claim_rule("level", &["42"], true)]));
    assert_allowed(&judge_token(
        &deployment,
        &token(&claims_with(json!({"level": 42}))),
    ));
    assert_allowed(&judge_token(
        &deployment,
        &token(&claims_with(json!({"level": "42"}))),
    ));
    let verdict = judge_token(&deployment, &token(&claims_with(json!({"level": 43}))));
    assert_denied_by(&verdict, &["claim:level"]);
    assert!(fix(&verdict, "claim:level").contains("The token's 'level' is 43 (a number)"));
}

#[test]
fn claim_boolean_is_compared_by_its_json_text() {
    let deployment = deployment_with_claims(json!([claim_rule("email_verified", &["true"], true)]));
    assert_allowed(&judge_token(
        &deployment,
        &token(&claims_with(json!({"email_verified": true}))),
    ));
    let verdict = judge_token(
        &deployment,
        &token(&claims_with(json!({"email_verified": false}))),
    );
    assert_denied_by(&verdict, &["claim:email_verified"]);
}

#[test]
fn claim_array_never_matches_even_when_it_contains_the_value() {
    let deployment = deployment_with_claims(json!([claim_rule("groups", &["admins"], true)]));
    let verdict = judge_token(
        &deployment,
        &token(&claims_with(json!({"groups": ["admins"]}))),
    );
    assert_denied_by(&verdict, &["claim:groups"]);
    assert!(fix(&verdict, "claim:groups").contains("never array members"));
}

#[test]
fn claim_checks_are_listed_in_configuration_order_between_aud_and_active() {
    let deployment = deployment_with_claims(json!([
        claim_rule("tenant", &["acme"], true),
        claim_rule("role", &[], false),
        claim_rule("level", &["1"], false),
    ]));
    let verdict = judge_token(&deployment, &token(&claims_with(json!({"tenant": "acme"}))));
    assert_eq!(
        ids(&verdict),
        [
            "token",
            "format",
            "alg",
            "key",
            "signature",
            "exp",
            "nbf",
            "iss",
            "aud",
            "claim:tenant",
            "claim:role",
            "claim:level",
            "active",
            "scope"
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// active
// ---------------------------------------------------------------------------------------------

#[test]
fn active_is_skipped_for_a_jwt() {
    let verdict = judge_default(&good_token());
    assert_eq!(
        skip_reason(&verdict, "active"),
        "applies to opaque tokens checked by introspection"
    );
}

// ---------------------------------------------------------------------------------------------
// scope
// ---------------------------------------------------------------------------------------------

fn admin_request(token: &str) -> Req {
    Req::get("/v1/orders/admin").bearer(token)
}

#[test]
fn scope_passes_when_a_space_separated_string_holds_an_allowed_scope() {
    let token = token(&claims_with(
        json!({"scope": "orders:read orders:write profile"}),
    ));
    let verdict = judge(&deployment(), &admin_request(&token));
    assert_allowed(&verdict);
    assert_eq!(
        check(&verdict, "scope").outcome,
        Outcome::Pass("`orders:write` is an allowed scope".into())
    );
    assert_eq!(
        check(&verdict, "scope").expected.as_deref().cloned(),
        Some(json!(["orders:admin", "orders:write"]))
    );
}

#[test]
fn scope_passes_when_an_array_holds_an_allowed_scope() {
    let token = token(&claims_with(json!({"scope": ["profile", "orders:admin"]})));
    assert_allowed(&judge(&deployment(), &admin_request(&token)));
}

#[test]
fn scope_fails_with_status_403_when_no_allowed_scope_is_present() {
    let token = token(&claims_with(json!({"scope": "orders:read profile"})));
    let verdict = judge(&deployment(), &admin_request(&token));
    assert_eq!(failed(&verdict), ["scope"]);
    assert_eq!(verdict.decision, Decision::Deny);
    assert_eq!(verdict.status, Some(403));
    assert_eq!(
        message(&verdict, "scope"),
        "Authorization failed for the request."
    );
    let fix = fix(&verdict, "scope");
    assert!(fix.contains("`orders:admin`, `orders:write`"), "{fix}");
    assert!(fix.contains("`orders:read`, `profile`"), "{fix}");
    assert!(
        fix.contains("routes[1].requestPolicies.authorization.allowedScope"),
        "{fix}"
    );
}

#[test]
fn scope_fails_with_status_403_when_the_scope_claim_is_missing() {
    let verdict = judge(
        &deployment(),
        &admin_request(&token(&claims_with(json!({"scope": null})))),
    );
    assert_eq!(failed(&verdict), ["scope"]);
    assert_eq!(verdict.status, Some(403));
    assert!(fix(&verdict, "scope").contains("has no 'scope' claim"));
}

#[test]
fn scope_fails_with_status_403_when_the_scope_claim_is_a_number() {
    let verdict = judge(
        &deployment(),
        &admin_request(&token(&claims_with(json!({"scope": 7})))),
    );
    assert_eq!(failed(&verdict), ["scope"]);
    assert_eq!(verdict.status, Some(403));
}

#[test]
fn scope_is_matched_case_sensitively() {
    let verdict = judge(
        &deployment(),
        &admin_request(&token(&claims_with(json!({"scope": "Orders:Admin"})))),
    );
    assert_eq!(verdict.status, Some(403));
    assert!(fix(&verdict, "scope").contains("letter case"));
}

#[test]
fn scope_is_skipped_and_status_is_401_when_authentication_fails() {
    let token = token(&claims_with(
        json!({"scope": "orders:admin", "exp": NOW_SECS - 10}),
    ));
    let verdict = judge(&deployment(), &admin_request(&token));
    assert_denied_by(&verdict, &["exp"]);
    assert_eq!(skip_reason(&verdict, "scope"), "authentication failed");
}

#[test]
fn scope_is_skipped_on_an_authentication_only_route() {
    let verdict = judge_default(&good_token());
    assert_eq!(
        skip_reason(&verdict, "scope"),
        "the route does not ask for scopes (ANY_OF)"
    );
}

// ---------------------------------------------------------------------------------------------
// Every check, in order; unverified payloads; several failures at once
// ---------------------------------------------------------------------------------------------

#[test]
fn every_check_is_listed_in_order_for_a_valid_token() {
    assert_eq!(ids(&judge_default(&good_token())), BASE_IDS);
}

#[test]
fn every_check_is_listed_in_order_when_the_token_is_missing() {
    let deployment = deployment_with_claims(json!([claim_rule("tenant", &["acme"], true)]));
    let verdict = judge(&deployment, &Req::get("/v1/orders"));
    assert_eq!(ids(&verdict), ids_with_claims(&["claim:tenant"]));
    assert_eq!(skip_reason(&verdict, "claim:tenant"), "there is no token");
}

#[test]
fn every_check_is_listed_in_order_when_the_format_fails() {
    let deployment = deployment_with_claims(json!([claim_rule("tenant", &["acme"], true)]));
    let verdict = judge_token(&deployment, "a.b");
    assert_eq!(ids(&verdict), ids_with_claims(&["claim:tenant"]));
    assert_eq!(
        skip_reason(&verdict, "exp"),
        "the token could not be decoded"
    );
}

#[test]
fn every_check_is_listed_when_the_alg_fails() {
    let token = token_with(
        &json!({"alg": "none"}),
        &claims(),
        &Signer::Bytes(Vec::new()),
    );
    assert_eq!(ids(&judge_default(&token)), BASE_IDS);
}

#[test]
fn every_check_is_listed_when_keys_are_unavailable() {
    let verdict = judge(
        &remote_jwks_deployment(),
        &Req::get("/v1/orders").bearer(&good_token()),
    );
    assert_eq!(ids(&verdict), BASE_IDS);
}

#[test]
fn claim_checks_after_a_bad_signature_are_marked_unverified() {
    let deployment = deployment_with_claims(json!([claim_rule("tenant", &["acme"], true)]));
    let claims = claims_with(json!({"tenant": "initech", "aud": "api://billing"}));
    let token = token_with(
        &header(),
        &claims,
        &Signer::Rsa(&keys().attacker, &signature::RSA_PKCS1_SHA256),
    );
    let verdict = judge_token(&deployment, &token);
    assert_denied_by(&verdict, &["signature", "aud", "claim:tenant"]);
    for id in ["exp", "iss", "aud", "claim:tenant"] {
        assert!(
            check(&verdict, id).unverified,
            "{id} evaluated on an unverified payload"
        );
    }
    for id in [
        "token",
        "format",
        "alg",
        "key",
        "signature",
        "nbf",
        "active",
        "scope",
    ] {
        assert!(!check(&verdict, id).unverified, "{id} is not a claim check");
    }
    let json = verdict.to_json();
    let checks = json["checks"].as_array().unwrap();
    let aud = checks.iter().find(|c| c["check"] == "aud").unwrap();
    assert_eq!(aud["unverified"], json!(true));
    assert_eq!(aud["result"], "fail");
    let sig = checks.iter().find(|c| c["check"] == "signature").unwrap();
    assert!(sig.get("unverified").is_none());
}

#[test]
fn claim_checks_after_an_alg_failure_still_run_and_are_unverified() {
    let token = token_with(
        &json!({"alg": "none"}),
        &claims_with(json!({"exp": NOW_SECS - 5})),
        &Signer::Bytes(Vec::new()),
    );
    let verdict = judge_default(&token);
    assert_denied_by(&verdict, &["alg", "exp"]);
    assert_eq!(skip_reason(&verdict, "key"), "the algorithm is not allowed");
    assert_eq!(
        skip_reason(&verdict, "signature"),
        "no usable key was found"
    );
    assert!(check(&verdict, "exp").unverified);
    assert!(check(&verdict, "iss").unverified);
}

#[test]
fn claim_checks_after_an_unknown_kid_are_unverified() {
    let token = token_with(&json!({"alg": "RS256", "kid": "nope"}), &claims(), &k1());
    let verdict = judge_default(&token);
    assert!(check(&verdict, "aud").unverified);
    assert_eq!(result(&verdict, "aud"), "pass");
}

#[test]
fn a_verified_token_marks_no_check_unverified() {
    let verdict = judge_default(&good_token());
    assert!(verdict.checks.iter().all(|c| !c.unverified));
    assert!(!verdict.to_json().to_string().contains("unverified"));
}

#[test]
fn every_failure_is_reported_at_once() {
    let deployment = deployment_with_claims(json!([claim_rule("tenant", &["acme"], true)]));
    let claims = json!({
        "iss": "https://evil.example/",
        "aud": "api://billing",
        "exp": NOW_SECS - 7200,
        "nbf": NOW_SECS + 7200,
        "tenant": "initech",
    });
    let verdict = judge_token(&deployment, &token(&claims));
    assert_denied_by(&verdict, &["exp", "nbf", "iss", "aud", "claim:tenant"]);
    assert_eq!(verdict.events().len(), 5);
}

// ---------------------------------------------------------------------------------------------
// Statuses and routes
// ---------------------------------------------------------------------------------------------

#[test]
fn allow_answers_with_the_stock_response_status() {
    let verdict = judge_default(&good_token());
    assert_eq!(
        (verdict.decision, verdict.status),
        (Decision::Allow, Some(200))
    );
    let route = verdict.route.as_ref().unwrap();
    assert_eq!(
        (route.path.as_str(), route.path_prefix.as_str(), route.index),
        ("/orders", "/v1", 0)
    );
}

#[test]
fn allow_to_an_http_backend_has_no_status_of_its_own() {
    let verdict = judge(&deployment(), &Req::get("/v1/proxy").bearer(&good_token()));
    assert_eq!((verdict.decision, verdict.status), (Decision::Allow, None));
    assert_eq!(verdict.to_json()["status"], Value::Null);
}

#[test]
fn allow_to_an_oauth2_login_route_has_no_status_of_its_own() {
    // The gateway's OAUTH2 flow answers it (the callback), not the verdict.
    let mut file = file();
    file["specification"]["routes"][0]["backend"] = json!({"type": "OAUTH2_LOGIN_BACKEND"});
    let verdict = judge_token(&load(&file), &good_token());
    assert_eq!(verdict.status, None);
}

/// A function answers with a status of its own, and a dynamic routing backend's status is the
/// chosen backend's (decided after the verdict).
#[test]
fn allow_to_a_function_or_a_dynamic_routing_backend_has_no_status_yet() {
    for backend in [
        json!({"type": "ORACLE_FUNCTIONS_BACKEND", "functionId": "ocid1.fnfunc.oc1..x"}),
        json!({"type": "DYNAMIC_ROUTING_BACKEND",
               "selectionSource": {"type": "SINGLE", "selector": "request.headers[X-A]"},
               "routingBackends": [{"key": {"type": "ANY_OF", "name": "a", "values": ["a"]},
                                    "backend": {"type": "STOCK_RESPONSE_BACKEND", "status": 201}}]}),
    ] {
        let mut file = file();
        file["specification"]["routes"][0]["backend"] = backend;
        let verdict = judge_token(&load(&file), &good_token());
        assert_eq!((verdict.decision, verdict.status), (Decision::Allow, None));
    }
}

#[test]
fn no_matching_route_is_404_with_every_check_skipped() {
    let verdict = judge(
        &deployment(),
        &Req::get("/v1/nowhere").bearer(&good_token()),
    );
    assert_eq!(
        (verdict.decision, verdict.status),
        (Decision::Deny, Some(404))
    );
    assert_eq!(verdict.route, None);
    assert_eq!(verdict.unrouted, Some(Unrouted::NotFound));
    assert!(verdict.checks.iter().all(|c| c.outcome.name() == "skip"));
    assert_eq!(ids(&verdict), BASE_IDS);
    assert!(verdict.events().is_empty());
    assert_eq!(verdict.to_json()["route"], Value::Null);
}

#[test]
fn a_path_outside_the_prefix_is_404() {
    let verdict = judge(
        &deployment(),
        &Req::get("/v10/orders").bearer(&good_token()),
    );
    assert_eq!(verdict.status, Some(404));
}

#[test]
fn no_matching_route_still_lists_the_claim_checks_as_skipped() {
    let deployment = deployment_with_claims(json!([claim_rule("tenant", &["acme"], true)]));
    let verdict = judge(&deployment, &Req::get("/v1/nowhere"));
    assert_eq!(ids(&verdict), ids_with_claims(&["claim:tenant"]));
}

#[test]
fn a_wrong_method_is_405_with_the_allowed_methods() {
    let verdict = judge(
        &deployment(),
        &Req::new("DELETE", "/v1/orders").bearer(&good_token()),
    );
    assert_eq!(
        (verdict.decision, verdict.status),
        (Decision::Deny, Some(405))
    );
    assert_eq!(
        verdict.unrouted,
        Some(Unrouted::MethodNotAllowed { allow: vec!["GET"] })
    );
    assert_eq!(verdict.to_json()["allow"], json!(["GET"]));
    assert_eq!(ids(&verdict), BASE_IDS);
}

#[test]
fn unavailable_keys_deny_with_500_and_a_key_failure() {
    let request = Req::get("/v1/orders").bearer(&good_token());
    let verdict = judge_with_keys(
        &remote_jwks_deployment(),
        &request,
        KeyMaterial::Unavailable {
            reason: "connection refused",
        },
    );
    assert_eq!(
        (verdict.decision, verdict.status),
        (Decision::Deny, Some(500))
    );
    assert!(verdict.keys_unavailable());
    assert_eq!(failed(&verdict), ["key"]);
    assert_eq!(
        message(&verdict, "key"),
        "The JSON Web Key Set could not be loaded: connection refused."
    );
    // The cause is the message's; the fix says what to do without repeating it (issue 12).
    assert!(!fix(&verdict, "key").contains("connection refused"));
    assert!(fix(&verdict, "key").starts_with("Make the key set reachable from the gateway;"));
    assert_eq!(skip_reason(&verdict, "alg"), "the key set is not available");
    assert_eq!(
        skip_reason(&verdict, "signature"),
        "no usable key was found"
    );
    assert!(verdict.claims.is_none());
}

#[test]
fn unavailable_keys_still_answer_500_when_claims_also_fail() {
    let token = token(&claims_with(json!({"exp": NOW_SECS - 100})));
    let verdict = judge(
        &remote_jwks_deployment(),
        &Req::get("/v1/orders").bearer(&token),
    );
    assert_eq!(verdict.status, Some(500));
    assert_eq!(failed(&verdict), ["key", "exp"]);
}

#[test]
fn a_deployment_without_authentication_allows_every_request() {
    let mut file = file();
    file["specification"]
        .as_object_mut()
        .unwrap()
        .remove("requestPolicies");
    for route in file["specification"]["routes"].as_array_mut().unwrap() {
        route.as_object_mut().unwrap().remove("requestPolicies");
    }
    let verdict = judge(&load(&file), &Req::get("/v1/orders"));
    assert_eq!(
        (verdict.decision, verdict.status),
        (Decision::Allow, Some(200))
    );
    assert!(verdict.checks.iter().all(|c| c.outcome.name() == "skip"));
    assert!(verdict.events().is_empty());
    // The gateway's verdict lists none of them: nothing to explain, nothing to build.
    let quiet = claimgate_core::evaluate_cached(
        &load(&file),
        &Req::get("/v1/orders"),
        KeyMaterial::Unavailable { reason: "none" },
        NOW,
        None,
        Explain::Failures,
    );
    assert_eq!(quiet.decision, Decision::Allow);
    assert!(quiet.checks.is_empty(), "{:?}", quiet.checks);
}

// ---------------------------------------------------------------------------------------------
// ANONYMOUS routes
// ---------------------------------------------------------------------------------------------

fn public_request() -> Req {
    Req::get("/v1/public")
}

#[test]
fn anonymous_route_without_token_allows_with_token_skipped() {
    let deployment = deployment_with_claims(json!([claim_rule("tenant", &["acme"], true)]));
    let verdict = judge(&deployment, &public_request());
    assert_eq!(
        (verdict.decision, verdict.status),
        (Decision::Allow, Some(204))
    );
    assert_eq!(
        skip_reason(&verdict, "token"),
        "no token; the route allows anonymous access"
    );
    assert!(verdict.checks.iter().all(|c| c.outcome.name() == "skip"));
    assert_eq!(ids(&verdict), ids_with_claims(&["claim:tenant"]));
    assert!(verdict.claims.is_none());
    assert!(verdict.events().is_empty());
}

#[test]
fn anonymous_route_with_an_expired_token_allows_with_the_failure_listed_and_no_claims() {
    let token = token(&claims_with(json!({"exp": NOW_SECS - 60})));
    let verdict = judge(&deployment(), &public_request().bearer(&token));
    assert_eq!(
        (verdict.decision, verdict.status),
        (Decision::Allow, Some(204))
    );
    assert_eq!(failed(&verdict), ["exp"]);
    assert!(verdict.claims.is_none(), "request.auth stays empty");
    let events = verdict.events();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].code, "jwtAuthentication.authenticationFailed");
}

#[test]
fn anonymous_route_with_a_forged_token_allows_without_claims() {
    let token = token_with(
        &header(),
        &claims(),
        &Signer::Rsa(&keys().attacker, &signature::RSA_PKCS1_SHA256),
    );
    let verdict = judge(&deployment(), &public_request().bearer(&token));
    assert_eq!(verdict.decision, Decision::Allow);
    assert_eq!(failed(&verdict), ["signature"]);
    assert!(verdict.claims.is_none());
}

#[test]
fn anonymous_route_with_a_malformed_token_allows_with_format_failed() {
    let verdict = judge(&deployment(), &public_request().bearer("not-a-jwt"));
    assert_eq!(verdict.decision, Decision::Allow);
    assert_eq!(failed(&verdict), ["format"]);
    assert!(verdict.claims.is_none());
}

#[test]
fn anonymous_route_with_a_wrong_scheme_allows_with_token_failed() {
    let verdict = judge(
        &deployment(),
        &public_request().header("Authorization", "Basic dXNlcjpwYXNz"),
    );
    assert_eq!(verdict.decision, Decision::Allow);
    assert_eq!(failed(&verdict), ["token"]);
}

#[test]
fn anonymous_route_with_a_valid_token_exposes_the_verified_claims() {
    let verdict = judge(&deployment(), &public_request().bearer(&good_token()));
    assert_allowed(&verdict);
    assert_eq!(verdict.status, Some(204));
    assert_eq!(
        verdict.claims.as_ref().unwrap().get("sub").unwrap(),
        "alice"
    );
    assert_eq!(
        verdict.events()[0].code,
        "jwtAuthentication.successfulAuthentication"
    );
}

#[test]
fn anonymous_route_without_is_anonymous_access_allowed_is_a_configuration_error() {
    let mut file = file();
    auth(&mut file)["isAnonymousAccessAllowed"] = json!(false);
    let rejected = try_load(&file).expect_err("ANONYMOUS needs isAnonymousAccessAllowed");
    assert!(
        rejected.errors.iter().any(|e| e.path
            == "specification.routes[2].requestPolicies.authorization"
            && e.message.contains("isAnonymousAccessAllowed")),
        "{:?}",
        rejected.errors
    );
}

#[test]
fn authentication_only_route_without_token_denies_even_when_anonymous_access_is_allowed() {
    let verdict = judge(&deployment(), &Req::get("/v1/orders"));
    assert_denied_by(&verdict, &["token"]);
}

// ---------------------------------------------------------------------------------------------
// Events
// ---------------------------------------------------------------------------------------------

#[test]
fn events_of_a_success_are_one_info_record() {
    let events = judge_default(&good_token()).events();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].code, "jwtAuthentication.successfulAuthentication");
    assert_eq!(events[0].level, "INFO");
    assert_eq!(events[0].message, "JWT Authentication successful.");
    assert_eq!(events[0].check, None);
}

#[test]
fn events_of_a_failure_are_one_warn_record_per_failed_check() {
    let token = token(&claims_with(
        json!({"aud": "api://orders/", "iss": "https://idp.example.com"}),
    ));
    let verdict = judge_default(&token);
    let events = verdict.events();
    assert_eq!(events.len(), 2);
    for event in &events {
        assert_eq!(event.code, "jwtAuthentication.authenticationFailed");
        assert_eq!(event.level, "WARN");
    }
    assert_eq!(
        events[0].message,
        "JWT token not issued by the configured issuers."
    );
    assert_eq!(
        events[1].message,
        "JWT token not issued for the configured audience."
    );
    assert_eq!(
        verdict.checks[events[0].check.unwrap()].id.to_string(),
        "iss"
    );
    assert_eq!(
        verdict.checks[events[1].check.unwrap()].id.to_string(),
        "aud"
    );
}

#[test]
fn events_of_a_scope_failure_are_success_then_unauthorized_request() {
    let token = token(&claims_with(json!({"scope": "orders:read"})));
    let events = judge(&deployment(), &admin_request(&token)).events();
    let codes: Vec<(&str, &str)> = events.iter().map(|e| (&*e.code, e.level)).collect();
    assert_eq!(
        codes,
        [
            ("jwtAuthentication.successfulAuthentication", "INFO"),
            ("authorization.unauthorizedRequest", "WARN")
        ]
    );
    assert_eq!(events[1].message, "Authorization failed for the request.");
}

#[test]
fn events_of_unavailable_keys_are_an_error_bad_json_web_key_set_record() {
    let verdict = judge_with_keys(
        &remote_jwks_deployment(),
        &Req::get("/v1/orders").bearer(&good_token()),
        KeyMaterial::Unavailable { reason: "HTTP 503" },
    );
    let events = verdict.events();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].code, "jwtAuthentication.badJsonWebKeySet");
    assert_eq!(events[0].level, "ERROR");
    assert_eq!(
        events[0].message,
        "The JSON Web Key Set could not be loaded: HTTP 503."
    );
}

#[test]
fn events_of_token_authentication_use_the_token_authentication_codes() {
    let deployment = load(&token_authentication_file());
    let ok = judge_token(&deployment, &token(&claims_with(json!({"tenant": "acme"}))));
    assert_allowed(&ok);
    let events = ok.events();
    assert_eq!(
        events[0].code,
        "tokenAuthentication.successfulAuthentication"
    );
    assert_eq!(events[0].message, "Token authentication successful.");

    let bad = judge_token(
        &deployment,
        &token(&claims_with(json!({"tenant": "initech", "aud": "x"}))),
    );
    assert_denied_by(&bad, &["aud", "claim:tenant"]);
    assert!(bad
        .events()
        .iter()
        .all(|e| e.code == "tokenAuthentication.authenticationFailed"));
    assert!(fix(&bad, "aud")
        .contains("specification.requestPolicies.authentication.validationPolicy.additionalValidationPolicy.audiences"));
}

#[test]
fn verdict_json_carries_checks_events_and_route() {
    let token = token(&claims_with(json!({"aud": "api://orders/"})));
    let json = judge_default(&token).to_json();
    assert_eq!(json["decision"], "deny");
    assert_eq!(json["status"], 401);
    assert_eq!(json["route"]["path"], "/orders");
    assert_eq!(json["route"]["pathPrefix"], "/v1");
    let checks = json["checks"].as_array().unwrap();
    assert_eq!(checks.len(), BASE_IDS.len());
    let aud = &checks[8];
    assert_eq!(aud["check"], "aud");
    assert_eq!(aud["result"], "fail");
    assert_eq!(
        aud["message"],
        "JWT token not issued for the configured audience."
    );
    assert_eq!(aud["expected"], json!([AUDIENCE]));
    assert_eq!(aud["actual"], "api://orders/");
    assert!(aud["fix"].as_str().unwrap().contains("trailing slash"));
    assert_eq!(
        aud["setting"],
        "specification.requestPolicies.authentication.audiences"
    );
    assert_eq!(
        json["events"],
        json!([{
            "code": "jwtAuthentication.authenticationFailed",
            "level": "WARN",
            "message": "JWT token not issued for the configured audience.",
            "check": "aud"
        }])
    );
}

#[test]
fn evaluation_is_pure_the_same_inputs_give_the_same_verdict() {
    let deployment = deployment();
    let request = Req::get("/v1/orders").bearer(&token(&claims_with(json!({"exp": NOW_SECS - 1}))));
    assert_eq!(judge(&deployment, &request), judge(&deployment, &request));
}

// ---------------------------------------------------------------------------------------------
// Attack catalogue: the known JWT attacks the validator decides
// ---------------------------------------------------------------------------------------------

/// An unsigned token with this `alg`, an empty signature segment.
fn unsigned(alg: &str) -> String {
    token_with(
        &json!({"alg": alg, "kid": "k1"}),
        &claims(),
        &Signer::Bytes(Vec::new()),
    )
}

#[track_caller]
fn assert_alg_refused(token: &str, alg: &str) {
    let verdict = judge_default(token);
    assert_denied_by(&verdict, &["alg"]);
    assert_eq!(
        message(&verdict, "alg"),
        format!("JWT token algorithm '{alg}' is not allowed.")
    );
    assert_eq!(result(&verdict, "signature"), "skip");
}

#[test]
fn attack_alg_none_lowercase_is_refused() {
    assert_alg_refused(&unsigned("none"), "none");
    let verdict = judge_default(&unsigned("none"));
    assert!(fix(&verdict, "alg").contains("unsigned"));
}

#[test]
fn attack_alg_none_uppercase_is_refused() {
    assert_alg_refused(&unsigned("NONE"), "NONE");
}

#[test]
fn attack_alg_none_capitalised_is_refused() {
    assert_alg_refused(&unsigned("None"), "None");
}

#[test]
fn attack_alg_none_mixed_case_is_refused() {
    assert_alg_refused(&unsigned("nOnE"), "nOnE");
}

#[test]
fn attack_alg_none_with_leading_space_is_refused() {
    assert_alg_refused(&unsigned(" none"), " none");
}

#[test]
fn attack_alg_none_with_trailing_nul_is_refused() {
    assert_alg_refused(&unsigned("none\u{0}"), "none\u{0}");
}

#[test]
fn attack_alg_none_keeping_a_valid_rs256_signature_is_refused() {
    let [_, payload, signature] = segments(&good_token());
    let header = b64(json!({"alg": "none", "kid": "k1"}).to_string());
    assert_alg_refused(&format!("{header}.{payload}.{signature}"), "none");
}

#[test]
fn attack_alg_none_without_the_signature_segment_is_refused() {
    let [header, payload, _] = segments(&unsigned("none"));
    assert_malformed(
        &judge_default(&format!("{header}.{payload}")),
        "it has 2 segments",
    );
}

/// HS256 with the RSA public key bytes as the secret, under the real kid.
fn hs256_with_secret(secret: Vec<u8>) -> String {
    token_with(
        &json!({"alg": "HS256", "kid": "k1"}),
        &claims(),
        &Signer::Hmac(hmac::HMAC_SHA256, secret),
    )
}

#[test]
fn attack_hs256_signed_with_the_rsa_public_key_as_spki_pem_is_refused() {
    let pem = pem("PUBLIC KEY", &rsa_spki_der(&keys().rsa));
    assert_alg_refused(&hs256_with_secret(pem.into_bytes()), "HS256");
}

#[test]
fn attack_hs256_signed_with_the_rsa_public_key_as_spki_pem_without_trailing_newline_is_refused() {
    let pem = pem("PUBLIC KEY", &rsa_spki_der(&keys().rsa));
    assert_alg_refused(
        &hs256_with_secret(pem.trim_end().as_bytes().to_vec()),
        "HS256",
    );
}

#[test]
fn attack_hs256_signed_with_the_rsa_public_key_as_pkcs1_pem_is_refused() {
    let pem = pem("RSA PUBLIC KEY", &rsa_pkcs1_der(&keys().rsa));
    assert_alg_refused(&hs256_with_secret(pem.into_bytes()), "HS256");
}

#[test]
fn attack_hs256_signed_with_the_rsa_public_key_as_spki_der_is_refused() {
    assert_alg_refused(&hs256_with_secret(rsa_spki_der(&keys().rsa)), "HS256");
}

#[test]
fn attack_hs256_signed_with_the_rsa_public_key_as_jwk_json_is_refused() {
    let jwk = static_key("k1", rsa_jwk(&keys().rsa), Some("RS256")).to_string();
    assert_alg_refused(&hs256_with_secret(jwk.into_bytes()), "HS256");
}

#[test]
fn attack_hs256_signed_with_the_rsa_modulus_bytes_is_refused() {
    let modulus = rsa_modulus(&keys().rsa);
    assert_alg_refused(&hs256_with_secret(modulus), "HS256");
}

#[test]
fn attack_hs256_with_an_empty_secret_and_a_dev_null_kid_is_refused() {
    let token = token_with(
        &json!({"alg": "HS256", "kid": "../../../../dev/null"}),
        &claims(),
        &Signer::Hmac(hmac::HMAC_SHA256, Vec::new()),
    );
    assert_alg_refused(&token, "HS256");
}

/// An ES token with an all-zero signature (r = s = 0) of `len` bytes.
fn psychic(alg: &str, kid: &str, len: usize) -> String {
    token_with(
        &json!({"alg": alg, "kid": kid}),
        &claims(),
        &Signer::Bytes(vec![0; len]),
    )
}

#[test]
fn attack_es256_psychic_signature_r_and_s_zero_is_refused() {
    let verdict = judge_token(&multi_key_deployment(), &psychic("ES256", "e256", 64));
    assert_denied_by(&verdict, &["signature"]);
    assert_eq!(result(&verdict, "key"), "pass");
}

#[test]
fn attack_es384_psychic_signature_r_and_s_zero_is_refused() {
    assert_denied_by(
        &judge_token(&multi_key_deployment(), &psychic("ES384", "e384", 96)),
        &["signature"],
    );
}

#[test]
fn attack_es512_psychic_signature_r_and_s_zero_is_refused() {
    assert_denied_by(
        &judge_token(&multi_key_deployment(), &psychic("ES512", "e521", 132)),
        &["signature"],
    );
}

/// DER `SEQUENCE { INTEGER r, INTEGER s }` from a fixed-length r‖s signature.
fn ecdsa_der(fixed: &[u8]) -> Vec<u8> {
    fn integer(bytes: &[u8]) -> Vec<u8> {
        let start = bytes
            .iter()
            .position(|b| *b != 0)
            .unwrap_or(bytes.len() - 1);
        let mut value = bytes[start..].to_vec();
        if value[0] & 0x80 != 0 {
            value.insert(0, 0);
        }
        let mut out = vec![0x02, value.len() as u8];
        out.extend(value);
        out
    }
    let (r, s) = fixed.split_at(fixed.len() / 2);
    let mut body = integer(r);
    body.extend(integer(s));
    let mut out = vec![0x30, body.len() as u8];
    out.extend(body);
    out
}

#[test]
fn attack_es256_der_encoded_signature_is_refused() {
    let header = json!({"alg": "ES256", "kid": "e256"});
    let good = token_with(&header, &claims(), &Signer::Ecdsa(&keys().p256));
    let [h, p, s] = segments(&good);
    let fixed = claimgate_jose::decode_base64url(&s).unwrap();
    let verdict = judge_token(
        &multi_key_deployment(),
        &format!("{h}.{p}.{}", b64(ecdsa_der(&fixed))),
    );
    assert_denied_by(&verdict, &["signature"]);
    assert_allowed(&judge_token(&multi_key_deployment(), &good));
}

#[test]
fn attack_es256_signature_one_byte_too_long_is_refused() {
    let header = json!({"alg": "ES256", "kid": "e256"});
    let [h, p, s] = segments(&token_with(
        &header,
        &claims(),
        &Signer::Ecdsa(&keys().p256),
    ));
    let mut signature = claimgate_jose::decode_base64url(&s).unwrap();
    signature.insert(0, 0);
    let verdict = judge_token(
        &multi_key_deployment(),
        &format!("{h}.{p}.{}", b64(signature)),
    );
    assert_denied_by(&verdict, &["signature"]);
}

#[test]
fn attack_es384_token_naming_a_p256_key_is_refused() {
    let token = token_with(
        &json!({"alg": "ES384", "kid": "e256"}),
        &claims(),
        &Signer::Ecdsa(&keys().p384),
    );
    let verdict = judge_token(&multi_key_deployment(), &token);
    assert_denied_by(&verdict, &["key"]);
}

#[test]
fn attack_signature_stripped_from_an_rs256_token_is_refused() {
    let [h, p, _] = segments(&good_token());
    assert_denied_by(&judge_default(&format!("{h}.{p}.")), &["signature"]);
}

#[test]
fn attack_one_byte_signature_is_refused() {
    let [h, p, _] = segments(&good_token());
    assert_denied_by(
        &judge_default(&format!("{h}.{p}.{}", b64([1u8]))),
        &["signature"],
    );
}

#[test]
fn attack_signature_longer_than_the_modulus_is_refused() {
    let [h, p, s] = segments(&good_token());
    let mut signature = claimgate_jose::decode_base64url(&s).unwrap();
    signature.push(0);
    assert_denied_by(
        &judge_default(&format!("{h}.{p}.{}", b64(signature))),
        &["signature"],
    );
}

/// Attacker-signed token whose header carries `extra` members.
fn attacker_token(extra: Value) -> String {
    let mut header = json!({"alg": "RS256"});
    for (name, value) in extra.as_object().unwrap() {
        header[name] = value.clone();
    }
    token_with(
        &header,
        &claims(),
        &Signer::Rsa(&keys().attacker, &signature::RSA_PKCS1_SHA256),
    )
}

#[track_caller]
fn assert_attacker_key_never_used(token: &str) {
    let verdict = judge_default(token);
    assert_eq!(verdict.decision, Decision::Deny, "[{}]", summary(&verdict));
    assert_eq!(verdict.status, Some(401));
    let failures = failed(&verdict);
    assert!(
        failures.iter().any(|id| id == "signature" || id == "key"),
        "must fail signature or key: [{}]",
        summary(&verdict)
    );
    assert!(verdict.claims.is_none());
}

#[test]
fn attack_embedded_jwk_header_with_attacker_key_and_colliding_kid_is_refused() {
    let token = attacker_token(json!({"kid": "k1", "jwk": rsa_jwk(&keys().attacker)}));
    assert_attacker_key_never_used(&token);
    assert_denied_by(&judge_default(&token), &["signature"]);
}

#[test]
fn attack_embedded_jwk_header_with_attacker_key_and_no_kid_is_refused() {
    assert_attacker_key_never_used(&attacker_token(json!({"jwk": rsa_jwk(&keys().attacker)})));
}

#[test]
fn attack_embedded_jwk_header_with_attacker_kid_is_refused() {
    let mut jwk = rsa_jwk(&keys().attacker);
    jwk["kid"] = json!("attacker");
    let token = attacker_token(json!({"kid": "attacker", "jwk": jwk}));
    assert_attacker_key_never_used(&token);
    assert_denied_by(&judge_default(&token), &["key"]);
}

#[test]
fn attack_jku_header_pointing_at_an_attacker_key_set_is_refused() {
    for url in [
        "https://attacker.example/jwks.json",
        "http://169.254.169.254/latest/meta-data/",
        "file:///etc/passwd",
    ] {
        assert_attacker_key_never_used(&attacker_token(json!({"kid": "k1", "jku": url})));
    }
}

#[test]
fn attack_x5u_header_pointing_at_an_attacker_certificate_is_refused() {
    assert_attacker_key_never_used(&attacker_token(
        json!({"kid": "k1", "x5u": "https://attacker.example/cert.pem"}),
    ));
}

#[test]
fn attack_x5c_header_with_an_attacker_certificate_is_refused() {
    let fake_cert = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        rsa_spki_der(&keys().attacker),
    );
    assert_attacker_key_never_used(&attacker_token(json!({"kid": "k1", "x5c": [fake_cert]})));
    assert_attacker_key_never_used(&attacker_token(json!({"x5c": ["MIIB"]})));
}

#[track_caller]
fn assert_kid_unknown(kid: &str) {
    let token = attacker_token(json!({"kid": kid}));
    let verdict = judge_default(&token);
    assert_denied_by(&verdict, &["key"]);
    assert_eq!(
        message(&verdict, "key"),
        format!("No public key found for the JWT token (kid '{kid}').")
    );
}

#[test]
fn attack_kid_path_traversal_is_refused() {
    assert_kid_unknown("../../../../dev/null");
    assert_kid_unknown("../../../../proc/self/environ");
}

#[test]
fn attack_kid_sql_injection_is_refused() {
    assert_kid_unknown("' UNION SELECT 'AAAA' --");
}

#[test]
fn attack_kid_command_injection_and_url_are_refused() {
    assert_kid_unknown("|id");
    assert_kid_unknown("https://attacker.example/key");
}

#[test]
fn attack_kid_with_an_embedded_nul_is_refused() {
    assert_kid_unknown("k1\u{0}x");
}

#[test]
fn attack_kid_oversized_is_refused() {
    let kid = "A".repeat(300);
    let verdict = judge_default(&attacker_token(json!({"kid": kid})));
    assert_malformed(
        &verdict,
        "the header's 'kid' is 300 bytes; at most 256 are accepted",
    );
}

#[test]
fn attack_kid_of_ten_kilobytes_is_refused() {
    let kid = "A".repeat(10 * 1024);
    assert_malformed(
        &judge_default(&attacker_token(json!({"kid": kid}))),
        "at most 8192 are accepted",
    );
}

#[test]
fn attack_kid_non_string_is_refused() {
    for kid in [json!(123), Value::Null, json!({}), json!(["k1"])] {
        let verdict = judge_default(&attacker_token(json!({"kid": kid})));
        assert_malformed(&verdict, "the header's 'kid' is not a string");
    }
}

#[track_caller]
fn assert_crit_refused(crit: Value, detail: &str) {
    let token = token_with(
        &json!({"alg": "RS256", "kid": "k1", "crit": crit}),
        &claims(),
        &k1(),
    );
    assert_malformed(&judge_default(&token), detail);
}

#[test]
fn attack_crit_naming_a_registered_claim_is_refused() {
    let token = token_with(
        &json!({"alg": "RS256", "kid": "k1", "crit": ["exp"], "exp": NOW_SECS + 60}),
        &claims(),
        &k1(),
    );
    let verdict = judge_default(&token);
    assert_malformed(&verdict, "unsupported critical header parameter 'exp'");
    assert_eq!(
        message(&verdict, "format"),
        "JWT token is malformed: unsupported critical header parameter 'exp'."
    );
}

#[test]
fn attack_crit_naming_an_unknown_extension_url_is_refused() {
    assert_crit_refused(
        json!(["http://example.com/x"]),
        "unsupported critical header parameter 'http://example.com/x'",
    );
}

#[test]
fn attack_crit_naming_an_absent_parameter_is_refused() {
    assert_crit_refused(
        json!(["x-absent"]),
        "unsupported critical header parameter 'x-absent'",
    );
}

#[test]
fn attack_crit_empty_array_is_refused() {
    assert_crit_refused(
        json!([]),
        "the header's 'crit' is not a non-empty list of names",
    );
}

#[test]
fn attack_crit_as_a_string_is_refused() {
    assert_crit_refused(
        json!("b64"),
        "the header's 'crit' is not a non-empty list of names",
    );
}

#[test]
fn attack_crit_with_a_null_element_is_refused() {
    assert_crit_refused(
        json!([null]),
        "the header's 'crit' is not a non-empty list of names",
    );
}

#[test]
fn attack_crit_with_a_known_name_after_a_non_string_is_refused() {
    assert_crit_refused(
        json!([1, "exp"]),
        "the header's 'crit' is not a non-empty list of names",
    );
}

#[test]
fn attack_b64_false_with_crit_and_a_raw_payload_is_refused() {
    let header =
        b64(json!({"alg": "RS256", "kid": "k1", "b64": false, "crit": ["b64"]}).to_string());
    // A raw payload without dots reaches the header checks; the crit names b64.
    let input = format!("{header}.{}", json!({"sub": "alice", "exp": NOW_SECS + 60}));
    let signature = b64(k1().sign(input.as_bytes()));
    assert_malformed(
        &judge_default(&format!("{input}.{signature}")),
        "unsupported critical header parameter 'b64'",
    );
    // Real claims carry dots (URLs), which break the segment count first.
    let input = format!("{header}.{}", claims());
    let signature = b64(k1().sign(input.as_bytes()));
    assert_malformed(&judge_default(&format!("{input}.{signature}")), "segments");
}

#[test]
fn attack_b64_false_with_crit_and_an_encoded_payload_is_refused() {
    assert_crit_refused(
        json!(["b64"]),
        "unsupported critical header parameter 'b64'",
    );
}

#[test]
fn attack_b64_false_without_crit_is_refused() {
    let token = token_with(
        &json!({"alg": "RS256", "kid": "k1", "b64": false}),
        &claims(),
        &k1(),
    );
    assert_malformed(
        &judge_default(&token),
        "the header has 'b64'; unencoded payloads are not accepted",
    );
}

#[test]
fn attack_b64_true_is_refused() {
    let token = token_with(
        &json!({"alg": "RS256", "kid": "k1", "b64": true}),
        &claims(),
        &k1(),
    );
    assert_malformed(&judge_default(&token), "the header has 'b64'");
}

#[test]
fn attack_jwe_with_five_segments_is_refused() {
    let header = b64(json!({"alg": "RSA-OAEP", "enc": "A256GCM", "kid": "k1"}).to_string());
    let token = format!(
        "{header}.{}.{}.{}.{}",
        b64([7u8; 256]),
        b64([1u8; 12]),
        b64([2u8; 64]),
        b64([3u8; 16])
    );
    let verdict = judge_default(&token);
    assert_malformed(&verdict, "it has 5 segments (an encrypted JWE)");
    assert!(fix(&verdict, "format").contains("not an encrypted one (JWE)"));
}

#[test]
fn attack_enc_in_a_three_segment_header_is_refused() {
    let token = token_with(
        &json!({"alg": "RS256", "kid": "k1", "enc": "A256GCM"}),
        &claims(),
        &k1(),
    );
    let verdict = judge_default(&token);
    assert_malformed(
        &verdict,
        "the header has 'enc'; encrypted tokens are not accepted",
    );
    assert!(fix(&verdict, "format").contains("JWE"));
}

#[test]
fn attack_alg_dir_is_refused() {
    assert_alg_refused(&unsigned("dir"), "dir");
}

#[test]
fn attack_nested_jwt_with_cty_jwt_is_refused() {
    let inner = unsigned("none");
    for cty in ["JWT", "jwt", "Jwt"] {
        let header = json!({"alg": "RS256", "kid": "k1", "cty": cty}).to_string();
        let token = sign_raw(&header, &format!("{{\"jwt\":\"{inner}\"}}"), &k1());
        assert_malformed(
            &judge_default(&token),
            "the header has cty 'JWT'; nested tokens are not accepted",
        );
    }
}

#[test]
fn typ_header_is_not_judged_as_spec_settles() {
    for typ in [
        "at+jwt",
        "application/at+jwt",
        "JWT",
        "logout+jwt",
        "dpop+jwt",
    ] {
        let token = token_with(
            &json!({"alg": "RS256", "kid": "k1", "typ": typ}),
            &claims(),
            &k1(),
        );
        assert_allowed(&judge_default(&token));
    }
}

#[test]
fn attack_zip_header_is_refused() {
    let token = token_with(
        &json!({"alg": "RS256", "kid": "k1", "zip": "DEF"}),
        &claims(),
        &k1(),
    );
    assert_malformed(
        &judge_default(&token),
        "the header has 'zip'; compressed tokens are not accepted",
    );
}

#[test]
fn attack_duplicate_alg_none_then_rs256_is_refused() {
    let token = raw_token(
        r#"{"alg":"none","alg":"RS256","kid":"k1"}"#,
        &payload_json(""),
    );
    let verdict = judge_default(&token);
    assert_malformed(&verdict, "the header has duplicate member 'alg'");
    assert_eq!(
        message(&verdict, "format"),
        "JWT token is malformed: the header has duplicate member 'alg'."
    );
}

#[test]
fn attack_duplicate_alg_rs256_then_hs256_is_refused() {
    let token = raw_token(
        r#"{"alg":"RS256","alg":"HS256","kid":"k1"}"#,
        &payload_json(""),
    );
    assert_malformed(
        &judge_default(&token),
        "the header has duplicate member 'alg'",
    );
}

#[test]
fn attack_duplicate_aud_is_refused() {
    let token = raw_token(&header().to_string(), &payload_json(r#","aud":"evil""#));
    assert_malformed(
        &judge_default(&token),
        "the payload has duplicate member 'aud'",
    );
}

#[test]
fn attack_duplicate_exp_is_refused() {
    let token = raw_token(&header().to_string(), &payload_json(r#","exp":1"#));
    assert_malformed(
        &judge_default(&token),
        "the payload has duplicate member 'exp'",
    );
}

#[test]
fn attack_duplicate_custom_claim_is_refused() {
    let deployment = deployment_with_claims(json!([claim_rule("role", &["admin"], true)]));
    let token = raw_token(
        &header().to_string(),
        &payload_json(r#","role":"user","role":"admin""#),
    );
    assert_malformed(
        &judge_token(&deployment, &token),
        "the payload has duplicate member 'role'",
    );
}

#[test]
fn attack_duplicate_member_nested_in_an_object_claim_is_refused() {
    let token = raw_token(
        &header().to_string(),
        &payload_json(r#","cnf":{"jkt":"a","jkt":"b"}"#),
    );
    assert_malformed(
        &judge_default(&token),
        "the payload has duplicate member 'jkt'",
    );
}

#[test]
fn attack_payload_nested_200_deep_is_refused() {
    let deep = format!(r#","x":{}1{}"#, "[".repeat(200), "]".repeat(200));
    let token = raw_token(&header().to_string(), &payload_json(&deep));
    assert_malformed(
        &judge_default(&token),
        "the payload is nested deeper than 32 levels",
    );
}

#[test]
fn attack_header_nested_200_deep_is_refused() {
    let header = format!(
        r#"{{"alg":"RS256","kid":"k1","x":{}1{}}}"#,
        "[".repeat(200),
        "]".repeat(200)
    );
    let token = raw_token(&header, &payload_json(""));
    assert_malformed(
        &judge_default(&token),
        "the header is nested deeper than 32 levels",
    );
}

#[test]
fn attack_exp_u64_max_is_refused() {
    let payload = format!(r#"{{"iss":"{ISSUER}","aud":"{AUDIENCE}","exp":18446744073709551615}}"#);
    let verdict = judge_default(&raw_token(&header().to_string(), &payload));
    assert_denied_by(&verdict, &["exp"]);
    assert_eq!(
        message(&verdict, "exp"),
        "Validation failed for 'exp' claim."
    );
    assert!(fix(&verdict, "exp").contains("beyond year 9999"));
}

#[test]
fn attack_exp_just_beyond_u64_max_is_refused() {
    let payload = format!(r#"{{"iss":"{ISSUER}","aud":"{AUDIENCE}","exp":18446744073709551616}}"#);
    assert_denied_by(
        &judge_default(&raw_token(&header().to_string(), &payload)),
        &["exp"],
    );
}

#[test]
fn attack_exp_1e300_is_refused() {
    let payload = format!(r#"{{"iss":"{ISSUER}","aud":"{AUDIENCE}","exp":1e300}}"#);
    assert_denied_by(
        &judge_default(&raw_token(&header().to_string(), &payload)),
        &["exp"],
    );
}

#[test]
fn attack_exp_1e400_is_refused_as_malformed() {
    let payload = format!(r#"{{"iss":"{ISSUER}","aud":"{AUDIENCE}","exp":1e400}}"#);
    assert_malformed(
        &judge_default(&raw_token(&header().to_string(), &payload)),
        "the payload is invalid JSON",
    );
}

#[test]
fn exp_at_the_last_second_of_year_9999_is_accepted_as_spec_imposes_no_lifetime() {
    assert_allowed(&judge_default(&token(&claims_with(
        json!({"exp": 253_402_300_799_i64}),
    ))));
    let verdict = judge_default(&token(&claims_with(json!({"exp": 253_402_300_800_i64}))));
    assert_denied_by(&verdict, &["exp"]);
}

#[test]
fn attack_nbf_hugely_negative_is_refused() {
    let verdict = judge_default(&token(&claims_with(json!({"nbf": -9.0e18}))));
    assert_denied_by(&verdict, &["nbf"]);
}

#[test]
fn iat_in_the_future_is_not_judged_as_spec_settles() {
    assert_allowed(&judge_default(&token(&claims_with(
        json!({"iat": NOW_SECS + 365 * 86_400}),
    ))));
}

#[test]
fn attack_base64_padding_on_the_signature_is_refused() {
    let token = format!("{}==", good_token());
    assert_malformed(
        &judge_default(&token),
        "the signature is not base64url: base64url padding '=' is not allowed",
    );
}

#[test]
fn attack_base64_padding_on_the_header_is_refused() {
    let [_, p, s] = segments(&good_token());
    let header = base64::Engine::encode(
        &base64::engine::general_purpose::URL_SAFE,
        header().to_string(),
    );
    let header = if header.ends_with('=') {
        header
    } else {
        format!("{header}=")
    };
    assert_malformed(
        &judge_default(&format!("{header}.{p}.{s}")),
        "the header is not base64url",
    );
}

#[test]
fn attack_standard_alphabet_plus_and_slash_are_refused() {
    let [h, p, s] = segments(&good_token());
    for bad in ['+', '/'] {
        let signature = format!("{bad}{}", &s[1..]);
        let verdict = judge_default(&format!("{h}.{p}.{signature}"));
        assert_malformed(
            &verdict,
            &format!(
                "the signature is not base64url: character '{bad}' at offset 0 is not base64url"
            ),
        );
    }
}

#[test]
fn attack_non_zero_trailing_bits_are_refused() {
    let [h, p, s] = segments(&good_token());
    let verdict = judge_default(&format!("{h}.{p}.{}", set_trailing_bits(&s)));
    assert_malformed(
        &verdict,
        "the signature is not base64url: base64url has non-zero trailing bits",
    );
}

#[test]
fn attack_non_zero_trailing_bits_in_the_payload_are_refused() {
    // Pick a payload whose encoding leaves unused bits.
    let mut claims = claims();
    let mut pad = String::new();
    // A length of 4k has no unused bits; 4k+2 and 4k+3 do.
    while !matches!(b64(claims.to_string()).len() % 4, 2 | 3) {
        pad.push('x');
        claims["pad"] = json!(pad);
    }
    let [h, p, s] = segments(&token(&claims));
    let verdict = judge_default(&format!("{h}.{}.{s}", set_trailing_bits(&p)));
    assert_malformed(
        &verdict,
        "the payload is not base64url: base64url has non-zero trailing bits",
    );
}

#[test]
fn attack_question_mark_inside_a_segment_is_refused() {
    let [h, p, s] = segments(&good_token());
    let payload = format!("{}?{}", &p[..10], &p[10..]);
    assert_malformed(
        &judge_default(&format!("{h}.{payload}.{s}")),
        "character '?' at offset 10 is not base64url",
    );
}

#[test]
fn attack_whitespace_inside_the_token_is_refused() {
    let [h, p, s] = segments(&good_token());
    for ws in [" ", "\t", "\r\n"] {
        let token = format!("{h}.{}{ws}{}.{s}", &p[..8], &p[8..]);
        assert_malformed(&judge_default(&token), "the payload is not base64url");
    }
}

#[test]
fn whitespace_around_the_token_in_the_header_is_trimmed() {
    let request =
        Req::get("/v1/orders").header("Authorization", &format!("Bearer {}\t ", good_token()));
    assert_allowed(&judge(&deployment(), &request));
}

#[test]
fn attack_four_segments_are_refused() {
    assert_malformed(
        &judge_default(&format!("{}.x", good_token())),
        "it has 4 segments",
    );
}

#[test]
fn attack_trailing_dot_is_refused() {
    assert_malformed(
        &judge_default(&format!("{}.", good_token())),
        "it has 4 segments",
    );
}

#[test]
fn attack_two_segments_are_refused() {
    let [h, p, _] = segments(&good_token());
    assert_malformed(&judge_default(&format!("{h}.{p}")), "it has 2 segments");
}

#[test]
fn attack_leading_dot_is_refused() {
    assert_malformed(
        &judge_default(&format!(".{}", good_token())),
        "it has 4 segments",
    );
}

#[test]
fn attack_thousands_of_dots_are_refused_cheaply() {
    assert_malformed(&judge_default(&".".repeat(8000)), "it has 8001 segments");
    assert_malformed(
        &judge_default(&".".repeat(1_000_000)),
        "at most 8192 are accepted",
    );
}

#[test]
fn attack_json_serialization_sent_as_a_bearer_value_is_refused() {
    let [h, p, s] = segments(&good_token());
    let flattened = json!({"protected": h, "payload": p, "signature": s}).to_string();
    let verdict = judge(
        &deployment(),
        &Req::get("/v1/orders").header("Authorization", &format!("Bearer {flattened}")),
    );
    assert_eq!(verdict.decision, Decision::Deny);
    assert_eq!(failed(&verdict), ["format"]);
}

/// A valid k1 token of exactly `target` bytes (padding claims and a header member).
fn token_of_length(target: usize) -> String {
    let signature_len = b64(vec![0u8; keys().rsa.public_modulus_len()]).len();
    for header_pad in 0..4 {
        let mut header = header();
        header["x-pad"] = json!("h".repeat(header_pad));
        let header_len = b64(header.to_string()).len();
        let fixed = header_len + 1 + 1 + signature_len;
        let mut claims = claims();
        claims["pad"] = json!("");
        let base = b64(claims.to_string()).len();
        if base + fixed > target {
            continue;
        }
        for n in 0..target {
            claims["pad"] = json!("p".repeat(n));
            let len = fixed + b64(claims.to_string()).len();
            if len == target {
                let token = token_with(&header, &claims, &k1());
                assert_eq!(token.len(), target);
                return token;
            }
            if len > target {
                break;
            }
        }
    }
    panic!("no token of {target} bytes");
}

#[test]
fn a_token_of_exactly_8_kib_is_accepted() {
    assert_allowed(&judge_default(&token_of_length(8 * 1024)));
}

#[test]
fn attack_token_of_8_kib_plus_one_byte_is_refused() {
    let verdict = judge_default(&token_of_length(8 * 1024 + 1));
    assert_malformed(
        &verdict,
        "the token is 8193 bytes; at most 8192 are accepted",
    );
    assert!(fix(&verdict, "format").contains("smaller token"));
}

/// Loads the default file with this single static key entry and returns the errors.
fn static_key_errors(key: Value) -> Vec<String> {
    let mut file = file();
    auth(&mut file)["publicKeys"]["keys"] = json!([key]);
    match try_load(&file) {
        Ok(_) => panic!("the key was accepted"),
        Err(rejected) => rejected.errors.iter().map(ToString::to_string).collect(),
    }
}

fn fake_rsa_key(modulus: Vec<u8>, exponent: &[u8]) -> Value {
    json!({"kid": "weak", "format": "JSON_WEB_KEY", "kty": "RSA", "n": b64(modulus), "e": b64(exponent)})
}

#[test]
fn attack_rsa_1024_bit_static_key_is_a_configuration_error() {
    let mut modulus = vec![0xc3; 128];
    modulus[127] = 0x01;
    let errors = static_key_errors(fake_rsa_key(modulus, &[1, 0, 1]));
    assert_eq!(
        errors,
        ["specification.requestPolicies.authentication.publicKeys.keys[0]: RSA key is 1024 bits; at least 2048 are required (RFC 7518 §3.3)"]
    );
}

#[test]
fn attack_rsa_2047_bit_static_key_is_a_configuration_error() {
    let mut modulus = vec![0xff; 256];
    modulus[0] = 0x40;
    let errors = static_key_errors(fake_rsa_key(modulus, &[1, 0, 1]));
    assert!(errors[0].contains("RSA key is 2047 bits"), "{errors:?}");
}

#[test]
fn attack_rsa_8200_bit_static_key_is_a_configuration_error() {
    let errors = static_key_errors(fake_rsa_key(vec![0xff; 1025], &[1, 0, 1]));
    assert!(
        errors[0].contains("RSA key is 8200 bits; at most 8192 are accepted"),
        "{errors:?}"
    );
}

#[test]
fn attack_rsa_exponent_one_is_a_configuration_error() {
    let modulus = rsa_modulus(&keys().rsa);
    let errors = static_key_errors(fake_rsa_key(modulus, &[1]));
    assert!(errors[0].contains("RSA exponent is 1"), "{errors:?}");
}

#[test]
fn attack_static_key_with_use_enc_is_a_configuration_error() {
    let mut key = static_key("k1", rsa_jwk(&keys().rsa), None);
    key["use"] = json!("enc");
    assert!(static_key_errors(key)[0].contains("use is 'enc', not 'sig'"));
}

#[test]
fn attack_static_key_with_key_ops_encrypt_is_a_configuration_error() {
    let mut key = static_key("k1", rsa_jwk(&keys().rsa), None);
    key["key_ops"] = json!(["encrypt"]);
    assert!(static_key_errors(key)[0].contains("does not include 'verify'"));
}

#[test]
fn attack_static_key_with_an_off_curve_point_is_a_configuration_error() {
    let mut jwk = ec_jwk(&keys().p256, "P-256");
    let mut y = claimgate_jose::decode_base64url(jwk["y"].as_str().unwrap()).unwrap();
    y[31] ^= 1;
    jwk["y"] = json!(b64(y));
    let errors = static_key_errors(static_key("e1", jwk, None));
    assert!(errors[0].contains("not a valid public key"), "{errors:?}");
}

#[test]
fn attack_static_key_declaring_a_curve_that_does_not_match_its_alg_is_a_configuration_error() {
    let errors = static_key_errors(static_key(
        "e1",
        ec_jwk(&keys().p256, "P-256"),
        Some("ES384"),
    ));
    assert!(
        errors[0].contains("alg 'ES384' cannot be used with a EC P-256 key"),
        "{errors:?}"
    );
}

#[test]
fn attack_static_hmac_secret_is_a_configuration_error() {
    let errors = static_key_errors(json!({"kid": "s1", "format": "JSON_WEB_KEY", "kty": "oct"}));
    assert!(!errors.is_empty());
}

#[test]
fn attack_duplicate_kid_among_static_keys_is_a_configuration_error() {
    let mut file = file();
    auth(&mut file)["publicKeys"]["keys"] = json!([
        static_key("k1", rsa_jwk(&keys().rsa), None),
        static_key("k1", rsa_jwk(&keys().rsa_other), None),
    ]);
    let rejected = try_load(&file).expect_err("duplicate kid");
    assert!(rejected
        .errors
        .iter()
        .any(|e| e.message == "kid 'k1' is used by another key"));
}

#[test]
fn attack_token_without_kid_against_three_rsa_keys_is_refused_as_ambiguous() {
    let mut file = file();
    auth(&mut file)["publicKeys"]["keys"] = json!([
        static_key("k1", rsa_jwk(&keys().rsa), None),
        static_key("k2", rsa_jwk(&keys().rsa_other), None),
        static_key("k3", rsa_jwk(&keys().attacker), None),
    ]);
    let token = token_with(
        &json!({"alg": "RS256"}),
        &claims(),
        &Signer::Rsa(&keys().attacker, &signature::RSA_PKCS1_SHA256),
    );
    let verdict = judge_token(&load(&file), &token);
    assert_denied_by(&verdict, &["key"]);
    assert!(fix(&verdict, "key").contains("3 keys could verify it"));
}

fn two_issuer_deployment() -> claimgate_config::Deployment {
    let mut file = file();
    let policy = auth(&mut file);
    policy["issuers"] = json!([ISSUER, OTHER_ISSUER]);
    policy["publicKeys"]["keys"] = json!([
        static_key("idp-a", rsa_jwk(&keys().rsa), Some("RS256")),
        static_key("idp-b", rsa_jwk(&keys().rsa_other), Some("RS256")),
    ]);
    load(&file)
}

#[test]
fn attack_multi_issuer_token_claiming_issuer_a_under_a_kid_but_signed_by_issuer_b_is_refused() {
    let token = token_with(
        &json!({"alg": "RS256", "kid": "idp-a"}),
        &claims(),
        &Signer::Rsa(&keys().rsa_other, &signature::RSA_PKCS1_SHA256),
    );
    let verdict = judge_token(&two_issuer_deployment(), &token);
    assert_denied_by(&verdict, &["signature"]);
}

#[test]
fn attack_token_from_an_unconfigured_issuer_signed_by_an_attacker_is_refused() {
    let claims = claims_with(json!({"iss": "https://attacker.example/"}));
    let token = token_with(
        &json!({"alg": "RS256", "kid": "idp-a"}),
        &claims,
        &Signer::Rsa(&keys().attacker, &signature::RSA_PKCS1_SHA256),
    );
    let verdict = judge_token(&two_issuer_deployment(), &token);
    assert_denied_by(&verdict, &["signature", "iss"]);
    assert!(check(&verdict, "iss").unverified);
}

#[test]
fn attack_crlf_inside_sub_is_just_a_claim() {
    let claims = claims_with(json!({"sub": "alice\r\nX-Admin: true", "email": "a@b\u{0}"}));
    let verdict = judge_default(&token(&claims));
    assert_allowed(&verdict);
    assert_eq!(
        verdict.claims.as_ref().unwrap().get("sub").unwrap(),
        "alice\r\nX-Admin: true"
    );
}

#[test]
fn attack_crlf_inside_a_verified_claim_value_does_not_match_the_clean_value() {
    let deployment = deployment_with_claims(json!([claim_rule("role", &["admin"], true)]));
    let verdict = judge_token(
        &deployment,
        &token(&claims_with(json!({"role": "admin\r\n"}))),
    );
    assert_denied_by(&verdict, &["claim:role"]);
}

#[test]
fn attack_homoglyph_and_fullwidth_claim_values_do_not_match() {
    let deployment = deployment_with_claims(json!([claim_rule("role", &["admin"], true)]));
    for role in [
        "\u{430}dmin",
        "\u{ff41}\u{ff44}\u{ff4d}\u{ff49}\u{ff4e}",
        "ad\u{200d}min",
    ] {
        let verdict = judge_token(&deployment, &token(&claims_with(json!({"role": role}))));
        assert_denied_by(&verdict, &["claim:role"]);
    }
}

#[test]
fn failures_carry_the_policy_setting_they_enforce() {
    let deployment = deployment_with_claims(json!([claim_rule("tenant", &["acme"], true)]));
    let token = token_with(
        &header(),
        &claims_with(json!({"iss": "x", "aud": "y"})),
        &Signer::Rsa(&keys().attacker, &signature::RSA_PKCS1_SHA256),
    );
    let verdict = judge_token(&deployment, &token);
    let setting = |id: &str| check(&verdict, id).setting.clone().unwrap_or_default();
    assert_eq!(setting("signature"), format!("{POLICY}.publicKeys"));
    assert_eq!(setting("iss"), format!("{POLICY}.issuers"));
    assert_eq!(setting("aud"), format!("{POLICY}.audiences"));
    assert_eq!(setting("claim:tenant"), format!("{POLICY}.verifyClaims"));
}

#[test]
fn keys_unavailable_with_alg_none_still_fails_the_alg_check() {
    let verdict = judge(
        &remote_jwks_deployment(),
        &Req::get("/v1/orders").bearer(&unsigned("none")),
    );
    assert_eq!(result(&verdict, "alg"), "fail");
    assert_eq!(result(&verdict, "key"), "fail");
    assert_eq!(verdict.status, Some(500));
}

#[test]
fn a_failure_enum_is_exposed_for_each_failed_check() {
    let verdict = judge_default(&token(&claims_with(json!({"exp": NOW_SECS - 1}))));
    assert!(matches!(
        check(&verdict, "exp").failure(),
        Some(Failure::Expired { .. })
    ));
}

/// The OAUTH2 ID token is judged by the same checks as any token: signature, `iss` = the
/// provider's issuer, `aud` = the client id, `exp`, then the login's `nonce`.
#[test]
fn an_oauth2_id_token_passes_only_with_its_signature_issuer_audience_expiry_and_nonce() {
    use claimgate_core::oauth2::verify_id_token;
    let d = deployment();
    let claimgate_config::Authentication::Jwt(policy) = &d.authentication else {
        panic!("a JWT policy")
    };
    let claimgate_config::KeySource::Static(keys) = &policy.keys else {
        panic!("static keys")
    };
    // A token of the provider for client "web" and nonce "n1", with `changes` (null removes).
    let id = |changes: Value| {
        let mut all =
            claims_with(json!({"iss": "https://idp.example", "aud": "web", "nonce": "n1"}));
        for (k, v) in changes.as_object().unwrap() {
            if v.is_null() {
                all.as_object_mut().unwrap().remove(k);
            } else {
                all[k] = v.clone();
            }
        }
        token(&all)
    };
    let verify = |raw: &str| {
        verify_id_token(
            policy,
            raw,
            KeyMaterial::Keys(keys),
            "https://idp.example",
            "web",
            "n1",
            NOW,
        )
    };
    let passed = verify(&id(json!({}))).expect("a good ID token");
    assert_eq!(passed.get("sub"), Some(json!("alice")));
    for (changes, what) in [
        (json!({"nonce": "n2"}), "another login's nonce"),
        (json!({"nonce": null}), "no nonce"),
        (json!({"aud": "other-client"}), "another client"),
        (json!({"iss": "https://evil.example"}), "another issuer"),
        (json!({"exp": NOW_SECS - 10}), "expired"),
    ] {
        let failed = verify(&id(changes)).expect_err(what);
        assert!(!failed.is_empty(), "{what}");
    }
    // A signature that does not verify.
    let good = id(json!({}));
    let (head, _) = good.rsplit_once('.').unwrap();
    assert!(verify(&format!("{head}.AAAA")).is_err());
}

/// Attacks on the ID token: no signature, a MAC keyed by what an attacker knows (the client
/// secret, the provider's public key), no `exp`, and a token issued to another client that
/// lists this one among its audiences (`azp`, OpenID Connect Core 3.1.3.7).
#[test]
fn an_oauth2_id_token_without_a_real_signature_or_for_another_party_is_refused() {
    use claimgate_core::oauth2::verify_id_token;
    let d = deployment();
    let claimgate_config::Authentication::Jwt(policy) = &d.authentication else {
        panic!("a JWT policy")
    };
    let claimgate_config::KeySource::Static(key_set) = &policy.keys else {
        panic!("static keys")
    };
    let id = |changes: Value| {
        let mut all =
            claims_with(json!({"iss": "https://idp.example", "aud": "web", "nonce": "n1"}));
        for (k, v) in changes.as_object().unwrap() {
            if v.is_null() {
                all.as_object_mut().unwrap().remove(k);
            } else {
                all[k] = v.clone();
            }
        }
        all
    };
    let verify = |raw: &str| {
        verify_id_token(
            policy,
            raw,
            KeyMaterial::Keys(key_set),
            "https://idp.example",
            "web",
            "n1",
            NOW,
        )
    };
    let claims = id(json!({}));
    let none = format!(
        "{}.{}.",
        b64(json!({"alg": "none", "typ": "JWT"}).to_string()),
        b64(claims.to_string())
    );
    assert!(verify(&none).is_err(), "alg none");
    for secret in [
        b"web-secret".to_vec(),
        rsa_spki_der(&keys().rsa),
        rsa_pkcs1_der(&keys().rsa),
    ] {
        let hs = token_with(
            &json!({"alg": "HS256", "kid": "k1", "typ": "JWT"}),
            &claims,
            &Signer::Hmac(hmac::HMAC_SHA256, secret),
        );
        assert!(verify(&hs).is_err(), "HS256");
    }
    assert!(verify(&token(&id(json!({"exp": null})))).is_err(), "no exp");
    // Several audiences: this client among them passes; a token the provider issued to
    // another client (its azp) does not, even listing this one.
    let several = id(json!({"aud": ["other", "web"]}));
    assert!(verify(&token(&several)).is_ok(), "several audiences");
    let for_us = id(json!({"aud": ["other", "web"], "azp": "web"}));
    assert!(verify(&token(&for_us)).is_ok(), "azp = the client");
    let for_other = id(json!({"aud": ["other", "web"], "azp": "other"}));
    assert!(verify(&token(&for_other)).is_err(), "azp = another client");
}

// ---------------------------------------------------------------------------------------------
// Claims spelled unusually (the in-place reading of an allowed request hands them to the full
// reading; `judge` holds both explanations to one decision)
// ---------------------------------------------------------------------------------------------

/// The payload exactly as written, signed by `k1`, judged against `deployment` at `NOW`.
fn judge_payload(
    deployment: &claimgate_config::Deployment,
    payload: &str,
) -> claimgate_core::Verdict {
    let token = sign_raw(&header().to_string(), payload, &k1());
    judge(deployment, &Req::get("/v1/orders/admin").bearer(&token))
}

#[test]
fn escaped_floating_and_array_claims_are_judged_as_plain_ones() {
    let deployment = deployment_with_claims(json!([
        {"key": "tenant", "values": ["acme"], "isRequired": true},
        {"key": "level", "values": ["42"], "isRequired": true},
        {"key": "beta", "values": ["true"], "isRequired": true},
    ]));
    let issuer = ISSUER.replace('/', "\\/");
    let exp = NOW_SECS + 3600;
    let nbf = NOW_SECS - 60;
    let allowed = [
        // Plain: read in place.
        format!(
            r#"{{"iss":"{ISSUER}","aud":"{AUDIENCE}","exp":{exp},"nbf":{nbf},"tenant":"acme","level":42,"beta":true,"scope":"orders:write"}}"#
        ),
        // Escapes, a fraction, an exponent, an array audience, an array of scopes.
        format!(
            r#"{{"iss":"{issuer}","aud":["x","{AUDIENCE}"],"exp":{exp}.9,"nbf":{nbf}.5,"tenant":"\u0061cme","level":42,"beta":true,"scope":["orders:write"]}}"#
        ),
        format!(
            r#"{{"iss":"{ISSUER}","aud":"{AUDIENCE}","exp":{}e1,"tenant":"acme","level":42,"beta":true,"scope":"a  orders:write"}}"#,
            exp / 10 + 1
        ),
    ];
    for payload in &allowed {
        assert_allowed(&judge_payload(&deployment, payload));
    }
    let denied = [
        // Expired by a fraction of a second beyond the skew: floor(exp) is what counts.
        (
            format!(
                r#"{{"iss":"{ISSUER}","aud":"{AUDIENCE}","exp":{}.9,"tenant":"acme","level":42,"beta":true,"scope":"orders:write"}}"#,
                NOW_SECS - 1
            ),
            "exp",
        ),
        // Not yet valid: ceil(nbf) is what counts.
        (
            format!(
                r#"{{"iss":"{ISSUER}","aud":"{AUDIENCE}","exp":{exp},"nbf":{}.1,"tenant":"acme","level":42,"beta":true,"scope":"orders:write"}}"#,
                NOW_SECS
            ),
            "nbf",
        ),
        // Numbers and booleans compare by their JSON text: "42.0" is not "42", "\"true\"" is a string.
        (
            format!(
                r#"{{"iss":"{ISSUER}","aud":"{AUDIENCE}","exp":{exp},"tenant":"acme","level":42.0,"beta":true,"scope":"orders:write"}}"#
            ),
            "claim:level",
        ),
        (
            format!(
                r#"{{"iss":"{ISSUER}","aud":"{AUDIENCE}","exp":{exp},"tenant":"acme","level":42,"beta":"TRUE","scope":"orders:write"}}"#
            ),
            "claim:beta",
        ),
        (
            format!(
                r#"{{"iss":"{ISSUER} ","aud":"{AUDIENCE}","exp":{exp},"tenant":"acme","level":42,"beta":true,"scope":"orders:write"}}"#
            ),
            "iss",
        ),
        (
            format!(
                r#"{{"iss":"{ISSUER}","aud":["{AUDIENCE}x"],"exp":{exp},"tenant":"acme","level":42,"beta":true,"scope":"orders:write"}}"#
            ),
            "aud",
        ),
    ];
    for (payload, check) in &denied {
        let verdict = judge_payload(&deployment, payload);
        assert_eq!(
            failed(&verdict),
            [*check],
            "{payload}: {}",
            summary(&verdict)
        );
    }
}

/// A key with the token's kid that allows another algorithm only is named (the kid branch of
/// the key choice counts keys without collecting them).
#[test]
fn a_kid_whose_key_allows_another_algorithm_is_named() {
    let k = keys();
    let ps256 = static_key("k1", rsa_jwk(&k.rsa), Some("PS256"));
    let rs256 = static_key("k2", rsa_jwk(&k.rsa_other), Some("RS256"));
    let verdict = judge_with_remote_jwks(json!({"keys": [ps256, rs256]}), &good_token());
    assert_denied_by(&verdict, &["key"]);
    assert!(
        fix(&verdict, "key").contains("cannot verify RS256"),
        "{}",
        fix(&verdict, "key")
    );
}
