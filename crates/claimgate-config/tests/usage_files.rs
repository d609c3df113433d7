//! `UsagePlan` and `Subscriber` files: each shape OCI users have (the real examples of Oracle's
//! docs and Terraform provider, the SDK's GET shape, the CLI's kebab-case read-back, arrays),
//! and each rule with the path and message it is reported at.

use claimgate_config::*;
use serde_json::{json, Value};

fn fixture(name: &str) -> String {
    let path = format!("{}/tests/usage/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn plans(text: &str) -> LoadedResources<UsagePlan> {
    load_usage_plans_str(text).unwrap_or_else(|r| panic!("refused: {:#?}", r.errors))
}

fn subscribers(text: &str) -> LoadedResources<Subscriber> {
    load_subscribers_str(text).unwrap_or_else(|r| panic!("refused: {:#?}", r.errors))
}

fn shown(list: &[Diagnostic]) -> Vec<String> {
    list.iter().map(ToString::to_string).collect()
}

fn plan_errors(value: Value) -> Vec<String> {
    match load_usage_plans_str(&value.to_string()) {
        Ok(_) => panic!("accepted: {value}"),
        Err(r) => shown(&r.errors),
    }
}

fn subscriber_errors(value: Value) -> Vec<String> {
    match load_subscribers_str(&value.to_string()) {
        Ok(_) => panic!("accepted: {value}"),
        Err(r) => shown(&r.errors),
    }
}

fn entitlement(name: &str, targets: &[&str]) -> Value {
    json!({
        "name": name,
        "rateLimit": {"value": 5, "unit": "SECOND"},
        "quota": {"value": 100, "unit": "DAY", "resetPolicy": "CALENDAR", "operationOnBreach": "REJECT"},
        "targets": targets.iter().map(|t| json!({"deploymentId": t})).collect::<Vec<_>>(),
    })
}

fn plan_with(entitlements: Value) -> Value {
    json!({"id": "plan-1", "entitlements": entitlements})
}

fn client(name: &str, token: &str) -> Value {
    json!({"name": name, "token": token})
}

fn subscriber_with(clients: Value, plans: Value) -> Value {
    json!({"id": "sub-1", "clients": clients, "usagePlans": plans})
}

#[test]
fn the_free_tier_example_of_oracles_docs_with_an_id_is_read() {
    let loaded = plans(&fixture("free-tier.plan.json"));
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    assert_eq!(
        loaded.resources,
        vec![UsagePlan {
            id: "ocid1.apigatewayusageplan.oc1..free".into(),
            name: "Free Tier".into(),
            entitlements: vec![Entitlement {
                name: "Entitlement1".into(),
                rate_limit: Some(1),
                quota: Some(Quota {
                    value: 10,
                    unit: QuotaUnit::Day,
                    on_breach: OnBreach::Reject
                }),
                targets: vec!["ocid1.apideployment.oc1..aaaaaaaaab______pwa".into()],
            }],
        }]
    );
}

#[test]
fn the_docs_example_without_an_id_is_refused_at_id() {
    let mut value: Value = serde_json::from_str(&fixture("free-tier.plan.json")).unwrap();
    value.as_object_mut().unwrap().remove("id");
    assert_eq!(plan_errors(value), ["id: is required"]);
}

#[test]
fn an_array_in_the_get_shape_is_read_and_a_deleted_plan_is_warned_and_skipped() {
    let loaded = plans(&fixture("terraform.plans.json"));
    assert_eq!(loaded.resources.len(), 1);
    let plan = &loaded.resources[0];
    assert_eq!(plan.name, "usagePlanDisplayName");
    assert_eq!(plan.entitlements[0].rate_limit, Some(10));
    assert_eq!(plan.entitlements[0].quota.unwrap().unit, QuotaUnit::Minute);
    assert_eq!(
        shown(&loaded.warnings),
        ["[1].lifecycleState: is DELETED, not ACTIVE: this usage plan is skipped"]
    );
}

#[test]
fn the_cli_read_back_in_kebab_case_is_read() {
    let loaded = plans(&fixture("premium.plan.readback.json"));
    let plan = &loaded.resources[0];
    assert_eq!(plan.id, "ocid1.apigatewayusageplan.oc1..premium");
    assert_eq!(plan.name, "Premium");
    let e = &plan.entitlements[0];
    assert_eq!(e.rate_limit, None, "a null rate-limit is unlimited");
    assert_eq!(
        e.quota,
        Some(Quota {
            value: 100_000,
            unit: QuotaUnit::Month,
            on_breach: OnBreach::Allow
        })
    );
    assert_eq!(e.targets.len(), 2);

    let subs = subscribers(&fixture("subscribers.readback.json"));
    let acme = &subs.resources[0];
    assert_eq!(acme.name, "subscriber_display_name");
    assert_eq!(
        acme.usage_plans,
        [
            "ocid1.apigatewayusageplan.oc1..free",
            "ocid1.apigatewayusageplan.oc1..premium"
        ]
    );
    assert_eq!(
        acme.clients
            .iter()
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>(),
        ["web", "batch"]
    );
}

#[test]
fn the_sdk_subscriber_example_with_an_id_is_read_and_indexed() {
    let subs = subscribers(&fixture("premium.subscriber.json")).resources;
    assert_eq!(subs[0].name, "Premium-subscriber");
    assert_eq!(subs[0].clients[0].token, "abc123def456ghi789jkl");
    let plan = UsagePlan {
        id: "ocid1.apigatewayusageplan.oc1..example".into(),
        name: "p".into(),
        entitlements: vec![],
    };
    let index = Subscriptions::new(vec![plan], subs).unwrap();
    assert_eq!(
        index.client("abc123def456ghi789jkl").unwrap().1.name,
        "android"
    );
}

#[test]
fn create_details_arrays_and_defaults_of_a_subscriber() {
    let loaded = subscribers(
        &json!([
            {"id": "a", "compartmentId": "c", "clients": [client("one", "t-1")], "usagePlans": ["p"]},
            {"id": "b", "clients": [], "usagePlans": []},
        ])
        .to_string(),
    );
    assert_eq!(loaded.resources.len(), 2);
    assert_eq!(
        loaded.resources[0].name, "a",
        "displayName defaults to the id"
    );
}

/// Each rule of a usage plan: the file, then every error expected, with its path.
#[test]
fn every_usage_plan_rule_is_reported_at_its_path() {
    let cases: Vec<(&str, Value, Vec<&str>)> = vec![
        (
            "id missing",
            json!({"entitlements": []}),
            vec!["id: is required"],
        ),
        (
            "id empty",
            json!({"id": "", "entitlements": []}),
            vec!["id: must not be empty"],
        ),
        (
            "id a number",
            json!({"id": 7, "entitlements": []}),
            vec!["id: expected a string, found a number"],
        ),
        (
            "entitlements missing",
            json!({"id": "p"}),
            vec!["entitlements: is required"],
        ),
        (
            "entitlements not an array",
            json!({"id": "p", "entitlements": {}}),
            vec!["entitlements: expected an array, found an object"],
        ),
        (
            "entitlement name missing",
            plan_with(json!([{"targets": []}])),
            vec!["entitlements[0].name: is required"],
        ),
        (
            "entitlement names unique",
            plan_with(json!([entitlement("basic", &["d1"]), entitlement("basic", &["d2"])])),
            vec!["entitlements[1].name: 'basic' is already the name of entitlements[0]; entitlement names are unique within a usage plan"],
        ),
        (
            "two entitlements target one deployment",
            plan_with(json!([entitlement("a", &["d1"]), entitlement("b", &["d2", "d1"])])),
            vec!["entitlements[1].targets[1].deploymentId: deployment 'd1' is also targeted by entitlements[0].targets ('a'); a deployment has at most one entitlement per usage plan"],
        ),
        (
            "an invalid entitlement still counts for the rules of later ones",
            plan_with(json!([{"name": "a", "rateLimit": {"value": 0, "unit": "SECOND"}, "targets": [{"deploymentId": "d1"}]}, entitlement("a", &["d1"])])),
            vec![
                "entitlements[0].rateLimit.value: 0 is below the minimum 1",
                "entitlements[1].name: 'a' is already the name of entitlements[0]; entitlement names are unique within a usage plan",
                "entitlements[1].targets[0].deploymentId: deployment 'd1' is also targeted by entitlements[0].targets ('a'); a deployment has at most one entitlement per usage plan",
            ],
        ),
        (
            "a target listed twice",
            plan_with(json!([entitlement("a", &["d1", "d1"])])),
            vec!["entitlements[0].targets[1].deploymentId: deployment 'd1' is listed twice in entitlements[0].targets"],
        ),
        (
            "deploymentId missing",
            plan_with(json!([{"name": "a", "targets": [{}]}])),
            vec!["entitlements[0].targets[0].deploymentId: is required"],
        ),
        (
            "rate limit unit",
            plan_with(json!([{"name": "a", "rateLimit": {"value": 1, "unit": "MINUTE"}}])),
            vec!["entitlements[0].rateLimit.unit: 'MINUTE' is not a rate limit unit (SECOND)"],
        ),
        (
            "rate limit value at least 1",
            plan_with(json!([{"name": "a", "rateLimit": {"value": 0, "unit": "SECOND"}}])),
            vec!["entitlements[0].rateLimit.value: 0 is below the minimum 1"],
        ),
        (
            "rate limit value whole",
            plan_with(json!([{"name": "a", "rateLimit": {"value": 1.5, "unit": "SECOND"}}])),
            vec!["entitlements[0].rateLimit.value: expected a whole number, found a number"],
        ),
        (
            "quota members required",
            plan_with(json!([{"name": "a", "quota": {}}])),
            vec![
                "entitlements[0].quota.value: is required",
                "entitlements[0].quota.unit: is required",
                "entitlements[0].quota.resetPolicy: is required",
                "entitlements[0].quota.operationOnBreach: is required",
            ],
        ),
        (
            "quota unit with did-you-mean",
            plan_with(json!([{"name": "a", "quota": {"value": 1, "unit": "DAYS", "resetPolicy": "CALENDAR", "operationOnBreach": "REJECT"}}])),
            vec!["entitlements[0].quota.unit: 'DAYS' is not a quota unit (MINUTE, HOUR, DAY, WEEK, MONTH); did you mean 'DAY'?"],
        ),
        (
            "reset policy CALENDAR",
            plan_with(json!([{"name": "a", "quota": {"value": 1, "unit": "DAY", "resetPolicy": "ROLLING", "operationOnBreach": "REJECT"}}])),
            vec!["entitlements[0].quota.resetPolicy: 'ROLLING' is not a reset policy (CALENDAR)"],
        ),
        (
            "operation on breach",
            plan_with(json!([{"name": "a", "quota": {"value": 1, "unit": "DAY", "resetPolicy": "CALENDAR", "operationOnBreach": "REJCT"}}])),
            vec!["entitlements[0].quota.operationOnBreach: 'REJCT' is not an operation on breach (REJECT, ALLOW); did you mean 'REJECT'?"],
        ),
        (
            "quota value at least 1",
            plan_with(json!([{"name": "a", "quota": {"value": -3, "unit": "DAY", "resetPolicy": "CALENDAR", "operationOnBreach": "ALLOW"}}])),
            vec!["entitlements[0].quota.value: -3 is below the minimum 1"],
        ),
        (
            "unknown member with did-you-mean",
            plan_with(json!([{"name": "a", "ratelimit": {"value": 1, "unit": "SECOND"}}])),
            vec!["entitlements[0].ratelimit: unknown member (did you mean 'rateLimit'?)"],
        ),
        (
            "lifecycle state enum",
            json!({"id": "p", "entitlements": [], "lifecycleState": "ACTIV"}),
            vec!["lifecycleState: 'ACTIV' is not a lifecycle state (CREATING, ACTIVE, UPDATING, DELETING, DELETED, FAILED); did you mean 'ACTIVE'?"],
        ),
        (
            "not a JSON object",
            json!("plan"),
            vec!["not a usage plan file: expected a JSON object, an array of them, or the CLI's {\"data\": ...}"],
        ),
        (
            "each item of an array",
            json!([{"id": "a", "entitlements": []}, {"entitlements": []}]),
            vec!["[1].id: is required"],
        ),
        (
            "inside the read-back",
            json!({"data": {"id": "a", "entitlements": [{"name": "x", "rate-limit": {"value": 1, "unit": "HOUR"}}]}}),
            vec!["data.entitlements[0].rate-limit.unit: 'HOUR' is not a rate limit unit (SECOND)"],
        ),
    ];
    for (rule, value, expected) in cases {
        assert_eq!(plan_errors(value), expected, "{rule}");
    }
}

#[test]
fn oci_limits_of_a_usage_plan_200_entitlements_and_200_targets() {
    let many: Vec<Value> = (0..201)
        .map(|i| entitlement(&format!("e{i}"), &[]))
        .collect();
    assert_eq!(
        plan_errors(plan_with(json!(many))),
        ["entitlements: 201 entries is above the maximum 200"]
    );
    let ok: Vec<Value> = (0..200)
        .map(|i| entitlement(&format!("e{i}"), &[]))
        .collect();
    assert_eq!(
        plans(&plan_with(json!(ok)).to_string()).resources[0]
            .entitlements
            .len(),
        200
    );

    let targets: Vec<String> = (0..201).map(|i| format!("d{i}")).collect();
    let targets: Vec<&str> = targets.iter().map(String::as_str).collect();
    assert_eq!(
        plan_errors(plan_with(json!([entitlement("a", &targets)]))),
        ["entitlements[0].targets: 201 entries is above the maximum 200"]
    );
    assert_eq!(
        plans(&plan_with(json!([entitlement("a", &targets[..200])])).to_string()).resources[0]
            .entitlements[0]
            .targets
            .len(),
        200
    );
}

/// Each rule of a subscriber: the file, then every error expected, with its path.
#[test]
fn every_subscriber_rule_is_reported_at_its_path() {
    let six: Vec<Value> = (0..6)
        .map(|i| client(&format!("c{i}"), &format!("t{i}")))
        .collect();
    let eleven: Vec<String> = (0..11).map(|i| format!("p{i}")).collect();
    let cases: Vec<(&str, Value, Vec<&str>)> = vec![
        (
            "id missing",
            json!({"clients": [], "usagePlans": []}),
            vec!["id: is required"],
        ),
        (
            "clients and usagePlans required",
            json!({"id": "s"}),
            vec!["clients: is required", "usagePlans: is required"],
        ),
        (
            "5 clients per subscriber",
            subscriber_with(json!(six), json!(["p"])),
            vec!["clients: 6 entries is above the maximum 5"],
        ),
        (
            "10 plans per subscriber",
            subscriber_with(json!([]), json!(eleven)),
            vec!["usagePlans: 11 entries is above the maximum 10"],
        ),
        (
            "client names unique",
            subscriber_with(json!([client("web", "t1"), client("web", "t2")]), json!(["p"])),
            vec!["clients[1].name: 'web' is already the name of another client; client names are unique within a subscriber"],
        ),
        (
            "client name and token required",
            subscriber_with(json!([{}]), json!(["p"])),
            vec!["clients[0].name: is required", "clients[0].token: is required"],
        ),
        (
            "token empty",
            subscriber_with(json!([client("web", "")]), json!(["p"])),
            vec!["clients[0].token: must not be empty"],
        ),
        (
            "token a number",
            subscriber_with(json!([{"name": "web", "token": 12345}]), json!(["p"])),
            vec!["clients[0].token: expected a string, found a number"],
        ),
        (
            "plan listed twice",
            subscriber_with(json!([]), json!(["p", "p"])),
            vec!["usagePlans[1]: usage plan 'p' is listed twice"],
        ),
        (
            "plan id a string",
            subscriber_with(json!([]), json!([3])),
            vec!["usagePlans[0]: expected a string, found a number"],
        ),
        (
            "unknown member with did-you-mean",
            json!({"id": "s", "clients": [], "usagePlan": []}),
            vec!["usagePlans: is required", "usagePlan: unknown member (did you mean 'usagePlans'?)"],
        ),
        (
            "kebab read-back paths",
            json!({"data": {"id": "s", "clients": [{"name": "a"}], "usage-plans": "p"}}),
            vec!["data.clients[0].token: is required", "data.usage-plans: expected an array, found a string"],
        ),
    ];
    for (rule, value, expected) in cases {
        assert_eq!(subscriber_errors(value), expected, "{rule}");
    }
}

#[test]
fn a_token_of_128_characters_is_accepted_and_of_129_refused_without_being_echoed() {
    let ok = "k".repeat(128);
    subscribers(&subscriber_with(json!([client("web", &ok)]), json!(["p"])).to_string());
    let secret = format!("S3CRET{}", "x".repeat(123));
    let errors = subscriber_errors(subscriber_with(
        json!([client("web", &secret)]),
        json!(["p"]),
    ));
    assert_eq!(
        errors,
        ["clients[0].token: the token has 129 characters; OCI allows at most 128"]
    );
}

#[test]
fn a_client_token_never_appears_in_any_message() {
    let secret = "S3CRET-token-value";
    let files = [
        subscriber_with(
            json!([client("web", secret), client("web", secret)]),
            json!(["p"]),
        ),
        subscriber_with(
            json!([{"name": "web", "token": secret, "tokn": secret}]),
            json!(["p"]),
        ),
        json!({"id": "s", "clients": [client("web", secret)], "usagePlans": [], "lifecycleState": "FAILED"}),
        json!({"data": {"id": "s", "clients": [client("web", secret)], "usage-plans": [1]}}),
    ];
    for file in files {
        let (errors, warnings) = match load_subscribers_str(&file.to_string()) {
            Ok(l) => (vec![], l.warnings),
            Err(r) => (r.errors, r.warnings),
        };
        assert!(!errors.is_empty() || !warnings.is_empty(), "{file}");
        for d in errors.iter().chain(&warnings) {
            assert!(!d.to_string().contains("S3CRET"), "{d}");
        }
    }
    let loaded =
        subscribers(&subscriber_with(json!([client("web", secret)]), json!(["p"])).to_string());
    assert!(!format!("{loaded:?}").contains("S3CRET"));
}
