//! `dynamicAuthentication`: server selection (OCI's order: exact `ANY_OF`, then the first
//! `WILDCARD`, then the default), every selector table, and the `server` check in the verdict.

mod support;

use aws_lc_rs::signature;
use claimgate_config::{Authentication, Deployment, DynamicAuthentication};
use claimgate_core::{select_server, wildcard_matches, Decision, Matched, Selection};
use serde_json::{json, Value};
use support::*;

fn rsa_other() -> Signer<'static> {
    Signer::Rsa(&keys().rsa_other, &signature::RSA_PKCS1_SHA256)
}

/// A server detail: the default policy with key `kid` from `pair`.
fn server_detail(kid: &str, jwk: Value, default_on: bool) -> Value {
    let mut file = file();
    let mut policy = auth(&mut file).clone();
    policy["publicKeys"]["keys"] = json!([static_key(kid, jwk, Some("RS256"))]);
    policy["isAnonymousAccessAllowed"] = json!(default_on);
    policy
}

/// `file()` with `dynamicAuthentication` instead of `authentication`.
fn dynamic_file(selector: &str, servers: Value) -> Value {
    let mut file = file();
    let policies = file
        .pointer_mut("/specification/requestPolicies")
        .unwrap()
        .as_object_mut()
        .unwrap();
    policies.remove("authentication");
    policies.insert(
        "dynamicAuthentication".into(),
        json!({
            "selectionSource": {"type": "SINGLE", "selector": selector},
            "authenticationServers": servers,
        }),
    );
    file
}

fn server(key: Value) -> Value {
    json!({"key": key, "authenticationServerDetail": server_detail("k1", rsa_jwk(&keys().rsa), true)})
}

/// Servers keyed by name: `acme` (ANY_OF acme, ACME-EU), `dev` (WILDCARD `dev-*`),
/// `prod` (WILDCARD `+.prod`), and optionally a default `fallback` (ANY_OF fallback).
fn selection_deployment(selector: &str, with_default: bool) -> Deployment {
    let mut servers = vec![
        server(json!({"type": "WILDCARD", "name": "dev", "expression": "dev-*"})),
        server(json!({"type": "ANY_OF", "name": "acme", "values": ["acme", "ACME-EU"]})),
        server(json!({"type": "WILDCARD", "name": "prod", "expression": "+.prod"})),
        // A later wildcard that also matches `dev-...`: the first wildcard wins.
        server(json!({"type": "WILDCARD", "name": "late", "expression": "*-x"})),
    ];
    if with_default {
        servers.push(server(
            json!({"type": "ANY_OF", "name": "fallback", "values": ["fallback"], "isDefault": true}),
        ));
    }
    load(&dynamic_file(selector, json!(servers)))
}

fn dynamic(deployment: &Deployment) -> &DynamicAuthentication {
    match &deployment.authentication {
        Authentication::Dynamic(d) => d,
        other => panic!("not dynamic: {other:?}"),
    }
}

fn select(deployment: &Deployment, request: &Req) -> Selection {
    select_server(dynamic(deployment), request, &[])
}

fn selected(deployment: &Deployment, request: &Req) -> (Option<String>, Matched) {
    let s = select(deployment, request);
    (s.server_name, s.matched)
}

fn header_req(value: &str) -> Req {
    Req::get("/v1/orders").header("X-Tenant", value)
}

#[test]
fn wildcard_expressions_follow_oci() {
    assert!(wildcard_matches("dev-*", "dev-"));
    assert!(wildcard_matches("dev-*", "dev-1"));
    assert!(!wildcard_matches("dev-*", "DEV-1"), "case-sensitive");
    assert!(!wildcard_matches("dev-+", "dev-"), "+ needs one character");
    assert!(wildcard_matches("dev-+", "dev-a"));
    assert!(wildcard_matches("*.prod", ".prod"));
    assert!(!wildcard_matches("+.prod", ".prod"));
    assert!(wildcard_matches("+.prod", "eu.prod"));
    assert!(!wildcard_matches("+.prod", "eu.prod.x"));
    assert!(wildcard_matches("*", ""));
    assert!(!wildcard_matches("+", ""));
    assert!(wildcard_matches("+", "a"));
}

#[test]
fn any_of_matches_exactly_and_case_insensitively() {
    let d = selection_deployment("request.headers[X-Tenant]", false);
    assert_eq!(
        selected(&d, &header_req("acme")),
        (Some("acme".into()), Matched::AnyOf)
    );
    assert_eq!(
        selected(&d, &header_req("Acme-eu")),
        (Some("acme".into()), Matched::AnyOf)
    );
    assert_eq!(selected(&d, &header_req("acme2")), (None, Matched::None));
}

#[test]
fn any_of_folds_ascii_case_only() {
    let file = dynamic_file(
        "request.headers[X-Tenant]",
        json!([server(
            json!({"type": "ANY_OF", "name": "k", "values": ["kacme"]})
        )]),
    );
    let d = load(&file);
    assert_eq!(
        selected(&d, &header_req("KACME")),
        (Some("k".into()), Matched::AnyOf)
    );
    // The Kelvin sign (U+212A) lower-cases to `k` in Unicode; it is not a `K` here.
    assert_eq!(
        selected(&d, &header_req("\u{212A}acme")),
        (None, Matched::None)
    );
    // Nor does a long s (U+017F) stand for `s`, or a dotted capital I (U+0130) for `i`.
    let file = dynamic_file(
        "request.headers[X-Tenant]",
        json!([server(
            json!({"type": "ANY_OF", "name": "s", "values": ["si"]})
        )]),
    );
    let d = load(&file);
    assert_eq!(selected(&d, &header_req("\u{17F}i")), (None, Matched::None));
    assert_eq!(selected(&d, &header_req("s\u{130}")), (None, Matched::None));
}

#[test]
fn a_repeated_selector_header_or_parameter_counts_by_its_first_value() {
    let d = selection_deployment("request.headers[X-Tenant]", true);
    let twice = Req::get("/v1/orders")
        .header("X-Tenant", "acme")
        .header("x-tenant", "nobody");
    let s = select(&d, &twice);
    assert_eq!(s.value.as_deref(), Some("acme"));
    assert_eq!(
        (s.server_name, s.matched),
        (Some("acme".into()), Matched::AnyOf)
    );
    let reversed = Req::get("/v1/orders")
        .header("X-Tenant", "nobody")
        .header("X-Tenant", "acme");
    assert_eq!(
        selected(&d, &reversed),
        (Some("fallback".into()), Matched::Default)
    );

    let d = selection_deployment("request.query[tenant]", true);
    assert_eq!(
        selected(&d, &Req::get("/v1/orders?tenant=acme&tenant=nobody")),
        (Some("acme".into()), Matched::AnyOf)
    );
}

#[test]
fn exact_matches_come_before_wildcards_and_the_first_wildcard_wins() {
    let file = dynamic_file(
        "request.headers[X-Tenant]",
        json!([
            server(json!({"type": "WILDCARD", "name": "all", "expression": "*"})),
            server(json!({"type": "ANY_OF", "name": "exact", "values": ["dev-x"]})),
        ]),
    );
    let d = load(&file);
    assert_eq!(
        selected(&d, &header_req("dev-x")),
        (Some("exact".into()), Matched::AnyOf)
    );
    assert_eq!(
        selected(&d, &header_req("other")),
        (Some("all".into()), Matched::Wildcard)
    );
    let d = selection_deployment("request.headers[X-Tenant]", false);
    // `dev-x` matches both `dev-*` (first) and `*-x` (later).
    assert_eq!(
        selected(&d, &header_req("dev-x")),
        (Some("dev".into()), Matched::Wildcard)
    );
    assert_eq!(
        selected(&d, &header_req("a-x")),
        (Some("late".into()), Matched::Wildcard)
    );
    assert_eq!(
        selected(&d, &header_req("eu.prod")),
        (Some("prod".into()), Matched::Wildcard)
    );
    assert_eq!(selected(&d, &header_req(".prod")), (None, Matched::None));
}

#[test]
fn the_default_server_takes_what_nothing_matched() {
    let d = selection_deployment("request.headers[X-Tenant]", true);
    assert_eq!(
        selected(&d, &header_req("nobody")),
        (Some("fallback".into()), Matched::Default)
    );
    assert_eq!(
        selected(&d, &Req::get("/v1/orders")),
        (Some("fallback".into()), Matched::Default)
    );
    // The default's own values still match as ANY_OF.
    assert_eq!(
        selected(&d, &header_req("FALLBACK")),
        (Some("fallback".into()), Matched::AnyOf)
    );
}

#[test]
fn nothing_matched_lists_the_keys_tried() {
    let d = selection_deployment("request.headers[X-Tenant]", false);
    let s = select(&d, &header_req("nobody"));
    assert_eq!(s.server, None);
    assert_eq!(s.value.as_deref(), Some("nobody"));
    assert_eq!(s.selector, "request.headers[X-Tenant]");
    assert_eq!(s.keys_tried, ["acme", "ACME-EU", "dev-*", "+.prod", "*-x"]);
}

#[test]
fn every_selector_table_reads_its_value() {
    let d = selection_deployment("request.query[tenant]", false);
    assert_eq!(
        select(&d, &Req::get("/v1/orders?a=1&tenant=acme"))
            .value
            .as_deref(),
        Some("acme")
    );
    assert_eq!(select(&d, &Req::get("/v1/orders?a=1")).value, None);

    let d = selection_deployment("request.host", false);
    let s = select(&d, &Req::get("/v1/orders").header("Host", "dev-api:8443"));
    assert_eq!(s.value.as_deref(), Some("dev-api"));
    assert_eq!(s.server_name.as_deref(), Some("dev"));

    let d = selection_deployment("request.subdomain[example.com]", false);
    let s = select(
        &d,
        &Req::get("/v1/orders").header("Host", "acme.example.com"),
    );
    assert_eq!(s.value.as_deref(), Some("acme"));
    assert_eq!(s.server_name.as_deref(), Some("acme"));
    let s = select(&d, &Req::get("/v1/orders").header("Host", "example.com"));
    assert_eq!(s.value, None);

    let d = selection_deployment("request.path[tenant]", false);
    let s = select_server(
        dynamic(&d),
        &Req::get("/v1/orders"),
        &[("tenant".into(), "acme-eu".into())],
    );
    assert_eq!(s.server_name.as_deref(), Some("acme"));

    let d = selection_deployment("request.headers[X-Tenant]", false);
    assert_eq!(
        select(&d, &header_req("  acme ")).server_name.as_deref(),
        Some("acme")
    );
}

#[test]
fn request_auth_reads_the_unverified_token() {
    let d = selection_deployment("request.auth[tenant]", true);
    // Signed by a key no server has: selection does not verify.
    let t = token_with(
        &header(),
        &claims_with(json!({"tenant": "acme"})),
        &rsa_other(),
    );
    let s = select(&d, &Req::get("/v1/orders").bearer(&t));
    assert_eq!(s.value.as_deref(), Some("acme"));
    assert_eq!(s.server_name.as_deref(), Some("acme"));
    assert_eq!(s.token_problem, None);

    let s = select(&d, &Req::get("/v1/orders"));
    assert_eq!(
        s.token_problem,
        Some(claimgate_core::SelectorToken::NotFound)
    );
    assert_eq!(s.matched, Matched::Default);

    let s = select(&d, &Req::get("/v1/orders").bearer("not-a-jwt"));
    assert_eq!(
        s.token_problem,
        Some(claimgate_core::SelectorToken::Invalid)
    );

    let verdict = judge(&d, &Req::get("/v1/orders").bearer("not-a-jwt"));
    let events: Vec<String> = verdict
        .events()
        .into_iter()
        .map(|e| e.code.into_owned())
        .collect();
    assert_eq!(events[0], "dynamicAuthentication.jwtTokenInvalid");
    assert_eq!(
        events[1],
        "dynamicAuthentication.defaultAuthenticationServerMatched"
    );
    assert!(verdict.events()[0].message.contains("request.auth[tenant]"));
}

/// Two static-key servers selected by `X-Tenant`: `acme` holds `k1`, `globex` holds `k2`.
fn two_servers() -> Deployment {
    load(&dynamic_file(
        "request.headers[X-Tenant]",
        json!([
            {"key": {"type": "ANY_OF", "name": "acme", "values": ["acme"]},
             "authenticationServerDetail": server_detail("k1", rsa_jwk(&keys().rsa), true)},
            {"key": {"type": "ANY_OF", "name": "globex", "values": ["globex"]},
             "authenticationServerDetail": server_detail("k2", rsa_jwk(&keys().rsa_other), true)},
        ]),
    ))
}

#[test]
fn the_verdict_starts_with_the_server_check() {
    let d = two_servers();
    let acme_token = good_token();
    let globex_token = token_with(
        &json!({"alg": "RS256", "kid": "k2"}),
        &claims(),
        &rsa_other(),
    );
    let v = judge(
        &d,
        &Req::get("/v1/orders")
            .header("X-Tenant", "acme")
            .bearer(&acme_token),
    );
    assert_eq!(v.decision, Decision::Allow, "{}", summary(&v));
    assert_eq!(ids(&v)[0], "server");
    assert_eq!(&ids(&v)[1..], BASE_IDS);
    assert_eq!(
        check(&v, "server").outcome,
        claimgate_core::Outcome::Pass(
            "server 'acme' selected by request.headers[X-Tenant] = 'acme'".into()
        )
    );
    let codes: Vec<String> = v
        .events()
        .into_iter()
        .map(|e| e.code.into_owned())
        .collect();
    assert_eq!(
        codes,
        [
            "dynamicAuthentication.authenticationServerMatched",
            "jwtAuthentication.successfulAuthentication"
        ]
    );

    // Each token is accepted only by its own server.
    let v = judge(
        &d,
        &Req::get("/v1/orders")
            .header("X-Tenant", "globex")
            .bearer(&globex_token),
    );
    assert_eq!(v.decision, Decision::Allow, "{}", summary(&v));
    let v = judge(
        &d,
        &Req::get("/v1/orders")
            .header("X-Tenant", "globex")
            .bearer(&acme_token),
    );
    assert_eq!(v.decision, Decision::Deny);
    assert_eq!(v.status, Some(401));
    assert_eq!(failed(&v), ["key"]);
    let v = judge(
        &d,
        &Req::get("/v1/orders")
            .header("X-Tenant", "acme")
            .bearer(&globex_token),
    );
    assert_eq!(failed(&v), ["key"]);

    let json = v.to_json();
    assert_eq!(json["server"]["selected"], "acme");
    assert_eq!(json["server"]["matched"], "ANY_OF");
}

#[test]
fn no_server_matched_denies_401_and_skips_every_later_check() {
    let d = two_servers();
    let v = judge(
        &d,
        &Req::get("/v1/orders")
            .header("X-Tenant", "initech")
            .bearer(&good_token()),
    );
    assert_eq!(v.decision, Decision::Deny);
    assert_eq!(v.status, Some(401));
    assert_eq!(failed(&v), ["server"]);
    assert_eq!(
        message(&v, "server"),
        "No authentication server matched the request."
    );
    let server = check(&v, "server");
    assert_eq!(
        server.expected.as_deref().cloned(),
        Some(json!(["acme", "globex"]))
    );
    assert_eq!(server.actual.as_deref().cloned(), Some(json!("initech")));
    assert!(v.checks[1..].iter().all(|c| c.outcome.name() == "skip"));
    assert!(fix(&v, "server").contains("'initech'"));
    let events = v.events();
    assert_eq!(events.len(), 1);
    assert_eq!(
        events[0].code,
        "dynamicAuthentication.noAuthenticationServerMatched"
    );
    assert_eq!(events[0].level, "WARN");
    assert_eq!(
        v.to_json()["server"]["keysTried"],
        json!(["acme", "globex"])
    );

    // No route: the server check is listed and skipped.
    let v = judge(&d, &Req::get("/v1/nowhere"));
    assert_eq!(v.status, Some(404));
    assert_eq!(ids(&v)[0], "server");
    assert_eq!(result(&v, "server"), "skip");
}

/// The gateway selects once (`prepare`) and the verdict reuses that selection: the verdict is
/// the one that selects by itself, and a path the verdict normalises selects as it routes.
#[test]
fn a_prepared_selection_gives_the_verdict_that_selects_itself() {
    let deployment = selection_deployment("request.headers[X-Tenant]", true);
    let keys = claimgate_core::KeyMaterial::Unavailable {
        reason: "static keys",
    };
    for tenant in ["acme", "dev-1", "a.prod", "other", "fallback"] {
        for path in PATHS_TO_ROUTE {
            let request = Req::get(path)
                .header("X-Tenant", tenant)
                .bearer(&good_token());
            let prepared = claimgate_core::prepare(&deployment, &request);
            assert_eq!(
                prepared.selection,
                claimgate_core::select_for_request(&deployment, &request),
                "{tenant} {path}"
            );
            assert_eq!(
                prepared.selection.is_some(),
                path != "/v1/nowhere",
                "{path}"
            );
            for explain in [
                claimgate_core::Explain::Everything,
                claimgate_core::Explain::Failures,
            ] {
                let direct = claimgate_core::evaluate_with(
                    &deployment,
                    &request,
                    keys,
                    claimgate_core::Introspection::NotDone,
                    NOW,
                    None,
                    explain,
                );
                let via = claimgate_core::evaluate_prepared(
                    &deployment,
                    &request,
                    prepared.clone(),
                    keys,
                    claimgate_core::Introspection::NotDone,
                    NOW,
                    None,
                    explain,
                );
                assert_eq!(via, direct, "{tenant} {path}");
            }
        }
    }
}
