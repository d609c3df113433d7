//! `claimgate validate --usage-plans ... --subscribers ...`: the real binary on usage plan and
//! subscriber files in OCI's shapes; good files exit 0, each bad input is an error with its
//! file and path (exit 2), and a client token never appears in the output.

mod support;

use serde_json::{json, Value};
use std::path::Path;
use support::claimgate;

const SECRET: &str = "S3CRET-client-token";

fn fixture(name: &str) -> String {
    format!(
        "{}/../claimgate-config/tests/usage/{name}",
        env!("CARGO_MANIFEST_DIR")
    )
}

fn write(dir: &Path, name: &str, value: &Value) -> String {
    let path = dir.join(name);
    std::fs::write(&path, value.to_string()).unwrap();
    path.to_string_lossy().into_owned()
}

fn run(args: &[&str]) -> (i32, String) {
    let output = claimgate(args);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!text.contains("S3CRET"), "a token was printed:\n{text}");
    (output.status.code().unwrap(), text)
}

fn free_plan() -> Value {
    json!({"id": "free", "displayName": "Free", "entitlements": [{
        "name": "basic",
        "rateLimit": {"value": 2, "unit": "SECOND"},
        "quota": {"value": 6, "unit": "MINUTE", "resetPolicy": "CALENDAR", "operationOnBreach": "REJECT"},
        "targets": [{"deploymentId": "orders"}]
    }]})
}

fn acme(token: &str, plans: &[&str]) -> Value {
    json!({"id": "acme", "clients": [{"name": "web", "token": token}], "usagePlans": plans})
}

#[test]
fn the_real_examples_validate_with_exit_0_and_a_deleted_plan_is_a_warning() {
    let (code, text) = run(&[
        "validate",
        "--usage-plans",
        &fixture("free-tier.plan.json"),
        "--usage-plans",
        &fixture("terraform.plans.json"),
        "--usage-plans",
        &fixture("premium.plan.readback.json"),
        "--subscribers",
        &fixture("subscribers.readback.json"),
    ]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("ok "), "{text}");
    assert!(
        text.contains("terraform.plans.json (1 warning)\n  warning [1].lifecycleState: is DELETED, not ACTIVE: this usage plan is skipped"),
        "{text}"
    );
}

#[test]
fn a_directory_of_files_and_a_deployment_validate_together() {
    let dir = tempfile::tempdir().unwrap();
    let plans = dir.path().join("plans");
    std::fs::create_dir(&plans).unwrap();
    write(&plans, "free.json", &free_plan());
    write(&plans, ".editor-backup.json", &json!("not a plan"));
    let subs = write(dir.path(), "acme.json", &acme(SECRET, &["free"]));
    let deployment = write(
        dir.path(),
        "orders.json",
        &json!({"pathPrefix": "/orders", "specification": {"routes": [{"path": "/", "backend": {"type": "STOCK_RESPONSE_BACKEND", "status": 200}}]}}),
    );
    let (code, text) = run(&[
        "validate",
        &deployment,
        "--usage-plans",
        plans.to_str().unwrap(),
        "--subscribers",
        &subs,
    ]);
    assert_eq!(code, 0, "{text}");
    assert_eq!(
        text.lines().filter(|l| l.starts_with("ok ")).count(),
        3,
        "{text}"
    );
    assert!(!text.contains("editor-backup"), "{text}");
}

#[test]
fn each_bad_file_is_an_error_with_its_file_and_path_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let cases: Vec<(&str, &str, Value, &str)> = vec![
        (
            "--usage-plans",
            "no-id.json",
            json!({"entitlements": []}),
            "  error id: is required",
        ),
        (
            "--usage-plans",
            "enum.json",
            json!({"id": "p", "entitlements": [{"name": "a", "quota": {"value": 1, "unit": "DAYS", "resetPolicy": "CALENDAR", "operationOnBreach": "REJECT"}}]}),
            "  error entitlements[0].quota.unit: 'DAYS' is not a quota unit (MINUTE, HOUR, DAY, WEEK, MONTH); did you mean 'DAY'?",
        ),
        (
            "--subscribers",
            "six-clients.json",
            json!({"id": "s", "usagePlans": ["free"], "clients": (0..6).map(|i| json!({"name": format!("c{i}"), "token": format!("{SECRET}-{i}")})).collect::<Vec<_>>()}),
            "  error clients: 6 entries is above the maximum 5",
        ),
        (
            "--subscribers",
            "long-token.json",
            acme(&format!("{SECRET}{}", "x".repeat(120)), &["free"]),
            "  error clients[0].token: the token has 139 characters; OCI allows at most 128",
        ),
        (
            "--subscribers",
            "eleven-plans.json",
            json!({"id": "s", "clients": [], "usagePlans": (0..11).map(|i| format!("p{i}")).collect::<Vec<_>>()}),
            "  error usagePlans: 11 entries is above the maximum 10",
        ),
    ];
    for (flag, name, value, expected) in cases {
        let path = write(dir.path(), name, &value);
        let (code, text) = run(&["validate", flag, &path]);
        assert_eq!(code, 2, "{name}: {text}");
        assert!(
            text.starts_with(&format!("invalid {path}: 1 error\n")),
            "{name}: {text}"
        );
        assert!(text.contains(expected), "{name}: {text}");
    }
}

#[test]
fn a_shared_token_and_an_unknown_plan_are_errors_across_files_in_text_and_json() {
    let dir = tempfile::tempdir().unwrap();
    let plans = write(dir.path(), "free.json", &free_plan());
    let a = write(dir.path(), "a.json", &acme(SECRET, &["free", "gold"]));
    let b = write(
        dir.path(),
        "b.json",
        &json!([{"id": "globex", "clients": [{"name": "batch", "token": SECRET}], "usagePlans": ["free"]}]),
    );
    let args = [
        "validate",
        "--usage-plans",
        &plans,
        "--subscribers",
        &a,
        "--subscribers",
        &b,
    ];
    let (code, text) = run(&args);
    assert_eq!(code, 2, "{text}");
    assert!(
        text.contains("invalid usage plans and subscribers together: 2 errors"),
        "{text}"
    );
    assert!(
        text.contains(
            "error subscriber 'acme' names the usage plan 'gold', which no usage plan file defines"
        ),
        "{text}"
    );
    assert!(
        text.contains("error the client token of 'batch' in subscriber 'globex' is also the token of 'web' in subscriber 'acme'"),
        "{text}"
    );

    let mut json_args = args.to_vec();
    json_args.extend(["--output", "json"]);
    let (code, text) = run(&json_args);
    assert_eq!(code, 2, "{text}");
    let document: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(document["valid"], false);
    assert_eq!(document["files"].as_array().unwrap().len(), 3);
    assert_eq!(document["files"][0]["kind"], "usagePlans");
    assert_eq!(document["files"][1]["kind"], "subscribers");
    assert_eq!(document["subscriptions"]["valid"], false);
    assert_eq!(
        document["subscriptions"]["errors"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

#[test]
fn json_output_gives_each_error_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let subs = write(
        dir.path(),
        "subs.json",
        &json!({"data": {"id": "s", "clients": [{"name": "web", "token": SECRET, "tokn": SECRET}], "usage-plans": ["free"]}}),
    );
    let (code, text) = run(&["validate", "--subscribers", &subs, "--output", "json"]);
    assert_eq!(code, 2, "{text}");
    let document: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        document["files"][0]["errors"],
        json!([{"path": "data.clients[0].tokn", "message": "unknown member (did you mean 'token'?)"}])
    );
    assert!(
        document.get("subscriptions").is_none(),
        "not checked together: a file is invalid"
    );
}

#[test]
fn an_unreadable_file_and_an_empty_directory_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let (code, text) = run(&[
        "validate",
        "--usage-plans",
        dir.path().to_str().unwrap(),
        "--subscribers",
        "/nonexistent/subscribers.json",
    ]);
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("holds no *.json file"), "{text}");
    assert!(
        text.contains("invalid /nonexistent/subscribers.json: 1 error"),
        "{text}"
    );
}

/// docs/deployment-files.md shows this output; it must stay true.
#[test]
fn the_documented_examples_give_the_documented_output() {
    let invalid = fixture("invalid.plans.json");
    let (code, text) = run(&["validate", "--usage-plans", &invalid]);
    assert_eq!(code, 2, "{text}");
    assert_eq!(
        text,
        format!(
            "invalid {invalid}: 3 errors
  error [0].entitlements[0].quota.unit: 'DAYS' is not a quota unit (MINUTE, HOUR, DAY, WEEK, MONTH); did you mean 'DAY'?
  error [0].entitlements[1].name: 'basic' is already the name of [0].entitlements[0]; entitlement names are unique within a usage plan
  error [0].entitlements[1].targets[0].deploymentId: deployment 'orders' is also targeted by [0].entitlements[0].targets ('basic'); a deployment has at most one entitlement per usage plan
"
        )
    );
    let plans = fixture("example.plans.json");
    let subs = fixture("example.subscribers.json");
    let (code, text) = run(&["validate", "--usage-plans", &plans, "--subscribers", &subs]);
    assert_eq!(code, 2, "{text}");
    assert!(
        !text.contains("acme-web-7f3c9a"),
        "the shared token is never printed"
    );
    assert_eq!(
        text,
        format!(
            "ok {plans} (1 warning)
  warning [1].lifecycleState: is DELETED, not ACTIVE: this usage plan is skipped
ok {subs}
invalid usage plans and subscribers together: 2 errors
  error subscriber 'acme' names the usage plan 'gold', which no usage plan file defines
  error the client token of 'web' in subscriber 'globex' is also the token of 'web' in subscriber 'acme' (client tokens must be unique)
"
        )
    );
}

#[test]
fn deployment_ids_that_the_entitlements_miss_are_warned_about_both_ways() {
    let dir = tempfile::tempdir().unwrap();
    let deployment = |id: &str| {
        json!({"id": id, "pathPrefix": "/v1", "specification": {
            "requestPolicies": {"usagePlans": {"tokenLocations": ["request.headers[x-api-key]"]}},
            "routes": [{"path": "/a", "methods": ["GET"],
                        "backend": {"type": "STOCK_RESPONSE_BACKEND", "status": 200}}]}})
    };
    let plans = write(dir.path(), "plans.json", &free_plan());
    let subscribers = write(dir.path(), "subs.json", &acme(SECRET, &["free"]));
    // The ids match: nothing to say.
    let good = write(dir.path(), "good.json", &deployment("orders"));
    let args = |file: &str| {
        [
            "validate",
            file,
            "--usage-plans",
            &plans,
            "--subscribers",
            &subscribers,
        ]
        .map(str::to_owned)
    };
    let (code, text) = run(&args(&good).each_ref().map(String::as_str));
    assert_eq!(code, 0, "{text}");
    assert!(!text.contains("warning"), "{text}");
    // A typo in the deployment's id: every request would get 403; still exit 0 (a warning).
    let typo = write(dir.path(), "typo.json", &deployment("ordres"));
    let (code, text) = run(&args(&typo).each_ref().map(String::as_str));
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("the deployment 'ordres' uses usagePlans but no entitlement targets it"),
        "{text}"
    );
    assert!(
        text.contains("entitlement 'basic': targets the deployment 'orders', which none of the given deployment files is (their ids: ordres)"),
        "{text}"
    );
    let mut json_args = args(&typo).to_vec();
    json_args.extend(["-o".to_owned(), "json".to_owned()]);
    let (_, text) = run(&json_args.iter().map(String::as_str).collect::<Vec<_>>());
    let document: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        document["subscriptions"]["warnings"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(document["valid"], true);
}
