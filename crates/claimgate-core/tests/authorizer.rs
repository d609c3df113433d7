//! `CUSTOM_AUTHENTICATION` verdicts: the checks `token`, `function`, `scope` on an authorizer
//! function's answer, as the gateway and `check --function-response` judge it.

mod support;

use claimgate_core::authorizer::{AuthorizerAnswer, FunctionError, FunctionOutcome};
use claimgate_core::{evaluate_with, Decision, Explain, Introspection, KeyMaterial, Verdict};
use serde_json::{json, Value};
use support::*;

/// The default deployment with a multi-argument authorizer reading `X-Api-Key`.
fn deployment() -> claimgate_config::Deployment {
    let mut file = file();
    *auth(&mut file) = json!({
        "type": "CUSTOM_AUTHENTICATION", "functionId": "ocid1.fnfunc.oc1..x",
        "isAnonymousAccessAllowed": true,
        "parameters": {"key": "request.headers[X-Api-Key]"}
    });
    load(&file)
}

fn judge_answer(request: &Req, outcome: Introspection<'_>) -> Verdict {
    let deployment = deployment();
    let keys = KeyMaterial::Unavailable { reason: "none" };
    let full = evaluate_with(
        &deployment,
        request,
        keys,
        outcome,
        NOW,
        None,
        Explain::Everything,
    );
    let quiet = evaluate_with(
        &deployment,
        request,
        keys,
        outcome,
        NOW,
        None,
        Explain::Failures,
    );
    assert_same_decision(&full, &quiet);
    full
}

fn answer(body: Value) -> AuthorizerAnswer {
    AuthorizerAnswer::parse(200, body.to_string().as_bytes()).unwrap()
}

fn results(verdict: &Verdict) -> Vec<(String, &'static str)> {
    verdict
        .checks
        .iter()
        .map(|c| (c.id.to_string(), c.outcome.name()))
        .collect()
}

fn with_key(path: &str) -> Req {
    Req::get(path).header("X-Api-Key", "k")
}

#[test]
fn an_active_answer_allows_and_its_context_is_request_auth() {
    let a = answer(json!({"active": true, "principal": "alice", "context": {"tenant": "t1"}}));
    let verdict = judge_answer(
        &with_key("/v1/orders"),
        Introspection::Function(FunctionOutcome::Answer(&a)),
    );
    assert_eq!(verdict.decision, Decision::Allow);
    assert_eq!(
        results(&verdict),
        [
            ("token".into(), "pass"),
            ("function".into(), "pass"),
            ("scope".into(), "skip")
        ]
    );
    let claims = verdict.claims.as_ref().unwrap();
    assert_eq!(claims.get("tenant"), Some(json!("t1")));
    assert_eq!(claims.get("principal"), Some(json!("alice")));
    let codes: Vec<String> = verdict
        .events()
        .iter()
        .map(|e| e.code.to_string())
        .collect();
    assert_eq!(codes, ["customAuthentication.successfulAuthentication"]);
}

#[test]
fn an_inactive_answer_is_401_and_a_missing_scope_403() {
    let a = answer(json!({"active": false}));
    let verdict = judge_answer(
        &with_key("/v1/orders"),
        Introspection::Function(FunctionOutcome::Answer(&a)),
    );
    assert_eq!(
        (verdict.decision, verdict.status),
        (Decision::Deny, Some(401))
    );
    assert_eq!(
        verdict.checks[1].message().unwrap(),
        "Authorizer function denied the request."
    );
    assert!(verdict.claims.is_none());
    let events = verdict.events();
    assert_eq!(events[0].code, "customAuthentication.authenticationFailed");
    assert_eq!(events[0].level, "WARN");

    // /v1/orders/admin needs orders:admin or orders:write.
    let a = answer(json!({"active": true, "scope": "orders:read"}));
    let verdict = judge_answer(
        &with_key("/v1/orders/admin"),
        Introspection::Function(FunctionOutcome::Answer(&a)),
    );
    assert_eq!(
        (verdict.decision, verdict.status),
        (Decision::Deny, Some(403))
    );
    assert_eq!(results(&verdict)[2], ("scope".into(), "fail"));
    let a = answer(json!({"active": true, "scope": ["x", "orders:write"]}));
    let verdict = judge_answer(
        &with_key("/v1/orders/admin"),
        Introspection::Function(FunctionOutcome::Answer(&a)),
    );
    assert_eq!(verdict.decision, Decision::Allow);
}

#[test]
fn a_function_that_cannot_be_called_is_502_with_its_cause() {
    let error = FunctionError::failed("it answered HTTP 503");
    let verdict = judge_answer(
        &with_key("/v1/orders"),
        Introspection::Function(FunctionOutcome::Unavailable(&error)),
    );
    assert_eq!(
        (verdict.decision, verdict.status),
        (Decision::Deny, Some(502))
    );
    assert!(verdict.keys_unavailable());
    assert_eq!(
        verdict.checks[1].message().unwrap(),
        "Authorizer function could not be called: it answered HTTP 503."
    );
    let events = verdict.events();
    assert_eq!(
        events[0].code,
        "customAuthentication.failedFunctionInvocation"
    );
    assert_eq!(events[0].level, "ERROR");
    // Not called at all (e.g. the admin page's check): the same, saying so.
    let verdict = judge_answer(&with_key("/v1/orders"), Introspection::NotDone);
    assert_eq!(verdict.status, Some(502));
    let unexpected = FunctionError::unexpected("'active' is a string, not a boolean");
    let verdict = judge_answer(
        &with_key("/v1/orders"),
        Introspection::Function(FunctionOutcome::Unavailable(&unexpected)),
    );
    assert_eq!(
        verdict.events()[0].code,
        "customAuthentication.unexpectedResponse"
    );
}

#[test]
fn no_argument_fails_token_and_an_anonymous_route_allows() {
    let verdict = judge_answer(&Req::get("/v1/orders"), Introspection::NotDone);
    assert_eq!(
        (verdict.decision, verdict.status),
        (Decision::Deny, Some(401))
    );
    assert_eq!(
        results(&verdict),
        [
            ("token".into(), "fail"),
            ("function".into(), "skip"),
            ("scope".into(), "skip")
        ]
    );
    assert_eq!(
        verdict.checks[0].message().unwrap(),
        "No argument for the authorizer function was found in the request (request.headers[X-Api-Key])."
    );
    let verdict = judge_answer(&Req::get("/v1/public"), Introspection::NotDone);
    assert_eq!(verdict.decision, Decision::Allow);
    // An unrouted request lists the same three checks, skipped.
    let verdict = judge_answer(&Req::get("/v1/nowhere"), Introspection::NotDone);
    assert_eq!(verdict.status, Some(404));
    assert_eq!(
        results(&verdict),
        [
            ("token".into(), "skip"),
            ("function".into(), "skip"),
            ("scope".into(), "skip")
        ]
    );
}
