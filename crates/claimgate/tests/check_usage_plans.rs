//! `claimgate check --usage-plans F --subscribers F` end to end (SPEC "Usage plans and
//! subscribers"): the real binary, real files in OCI's GET shape (camelCase, with `id`), each
//! outcome in text and JSON, exit codes, and the client token never printed.

mod support;

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Output;
use support::{claimgate, Signer};

const DEPLOYMENT_ID: &str = "ocid1.apideployment.oc1..orders";
/// Every client token of the fixtures: none may appear in any output.
const TOKENS: &[&str] = &[
    "acme-mobile-SECRET-1",
    "acme-web-SECRET-2",
    "globex-SECRET-3",
    "initech-SECRET-4",
    "retired-SECRET-5",
    "unknown-SECRET-6",
];

struct Fixture {
    _dir: tempfile::TempDir,
    deployment: PathBuf,
    plans: PathBuf,
    subscribers: PathBuf,
}

fn entitlement(name: &str, rate: Option<u64>, quota: Value, targets: &[&str]) -> Value {
    let mut e = json!({
        "name": name,
        "quota": quota,
        "targets": targets.iter().map(|t| json!({"deploymentId": t})).collect::<Vec<_>>(),
    });
    if let Some(rate) = rate {
        e["rateLimit"] = json!({"value": rate, "unit": "SECOND"});
    }
    e
}

fn plan(id: &str, name: &str, entitlements: Vec<Value>) -> Value {
    json!({"id": id, "displayName": name, "compartmentId": "ocid1.compartment.oc1..x",
           "lifecycleState": "ACTIVE", "entitlements": entitlements})
}

fn subscriber(
    id: &str,
    name: &str,
    state: &str,
    clients: &[(&str, &str)],
    plans: &[&str],
) -> Value {
    json!({"id": id, "displayName": name, "compartmentId": "ocid1.compartment.oc1..x",
           "lifecycleState": state,
           "clients": clients.iter().map(|(n, t)| json!({"name": n, "token": t})).collect::<Vec<_>>(),
           "usagePlans": plans})
}

/// Plans: free (orders: 5 a minute, REJECT), gold (orders and users: 10/s, 1000 a day, ALLOW),
/// billing-only (another deployment). Subscribers: acme (free then gold), globex (billing-only
/// then gold), initech (billing-only), and a DELETED one.
fn fixture(deployment: Value) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, value: &Value| {
        let path = dir.path().join(name);
        std::fs::write(&path, serde_json::to_string_pretty(value).unwrap()).unwrap();
        path
    };
    let quota = |value: u64, unit: &str, breach: &str| json!({"value": value, "unit": unit, "resetPolicy": "CALENDAR", "operationOnBreach": breach});
    let plans = json!([
        plan(
            "ocid1.usageplan.oc1..free",
            "Free",
            vec![entitlement(
                "basic",
                None,
                quota(5, "MINUTE", "REJECT"),
                &[DEPLOYMENT_ID]
            )]
        ),
        plan(
            "ocid1.usageplan.oc1..gold",
            "Gold",
            vec![entitlement(
                "everything",
                Some(10),
                quota(1000, "DAY", "ALLOW"),
                &["ocid1.apideployment.oc1..users", DEPLOYMENT_ID]
            )]
        ),
        plan(
            "ocid1.usageplan.oc1..billing",
            "Billing only",
            vec![entitlement(
                "invoices",
                Some(1),
                quota(10, "MONTH", "REJECT"),
                &["ocid1.apideployment.oc1..billing"]
            )]
        ),
    ]);
    let subscribers = json!([
        subscriber(
            "ocid1.subscriber.oc1..acme",
            "acme",
            "ACTIVE",
            &[("mobile", TOKENS[0]), ("web", TOKENS[1])],
            &["ocid1.usageplan.oc1..free", "ocid1.usageplan.oc1..gold"]
        ),
        subscriber(
            "ocid1.subscriber.oc1..globex",
            "globex",
            "ACTIVE",
            &[("batch", TOKENS[2])],
            &["ocid1.usageplan.oc1..billing", "ocid1.usageplan.oc1..gold"]
        ),
        subscriber(
            "ocid1.subscriber.oc1..initech",
            "initech",
            "ACTIVE",
            &[("desk", TOKENS[3])],
            &["ocid1.usageplan.oc1..billing"]
        ),
        subscriber(
            "ocid1.subscriber.oc1..retired",
            "retired",
            "DELETED",
            &[("old", TOKENS[4])],
            &["ocid1.usageplan.oc1..gold"]
        ),
    ]);
    Fixture {
        deployment: write("deployment.json", &deployment),
        plans: write("usage-plans.json", &plans),
        subscribers: write("subscribers.json", &subscribers),
        _dir: dir,
    }
}

/// An open deployment whose client token is in the header `x-api-key`, else the query `key`.
fn open_deployment() -> Value {
    json!({"id": DEPLOYMENT_ID, "displayName": "orders", "pathPrefix": "/v1", "specification": {
        "requestPolicies": {"usagePlans": {"tokenLocations": [
            "request.headers[x-api-key]", "${request.query[key]}"]}},
        "routes": [{"path": "/orders", "methods": ["GET"],
                    "backend": {"type": "STOCK_RESPONSE_BACKEND", "status": 200, "body": "[]"}}]
    }})
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `check` with both files, the request and `extra` flags; asserts no client token anywhere.
fn check(f: &Fixture, request: &str, extra: &[&str]) -> Output {
    let mut args = vec![
        "check",
        "--deployment",
        path(&f.deployment),
        "--usage-plans",
        path(&f.plans),
        "--subscribers",
        path(&f.subscribers),
        "--request",
        request,
    ];
    args.extend_from_slice(extra);
    let output = claimgate(&args);
    assert_no_token(&output);
    output
}

fn assert_no_token(output: &Output) {
    let (out, err) = (stdout(output), String::from_utf8_lossy(&output.stderr));
    for token in TOKENS {
        assert!(
            !out.contains(token) && !err.contains(token),
            "the client token {token} was printed:\n{out}\n{err}"
        );
    }
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Stdout as the one JSON document `--output json` promises.
fn json_of(output: &Output) -> Value {
    let doc: Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}):\n{}", stdout(output)));
    assert_eq!(doc["version"], 1, "{doc}");
    doc
}

fn header(token: &str) -> String {
    format!("x-api-key: {token}")
}

#[test]
fn entitled_via_header_shows_subscriber_client_plan_entitlement_and_limits() {
    let f = fixture(open_deployment());
    let h = header(TOKENS[0]);
    let text = check(&f, "GET /v1/orders", &["--header", &h]);
    assert_eq!(text.status.code(), Some(0), "{}", stdout(&text));
    let out = stdout(&text);
    assert!(out.starts_with("ALLOW  200 OK"), "{out}");
    assert!(
        out.contains("  pass usage plan  subscriber acme (ocid1.subscriber.oc1..acme), client mobile (token in request.headers[x-api-key]), plan Free (ocid1.usageplan.oc1..free), entitlement basic: no rate limit, quota 5 per MINUTE (REJECT)\n"),
        "{out}"
    );
    let output = check(&f, "GET /v1/orders", &["--header", &h, "-o", "json"]);
    assert_eq!(output.status.code(), Some(0));
    let doc = json_of(&output);
    assert_eq!(
        (&doc["decision"], &doc["status"]),
        (&json!("allow"), &json!(200))
    );
    assert_eq!(
        doc["usagePlan"],
        json!({
            "subscriber": {"id": "ocid1.subscriber.oc1..acme", "name": "acme"},
            "client": "mobile",
            "plan": {"id": "ocid1.usageplan.oc1..free", "name": "Free"},
            "entitlement": "basic",
            "rateLimit": null,
            "quota": {"value": 5, "unit": "MINUTE", "resetPolicy": "CALENDAR", "operationOnBreach": "REJECT"}
        })
    );
}

#[test]
fn entitled_via_query_when_the_header_is_absent() {
    let f = fixture(open_deployment());
    let request = format!("GET /v1/orders?key={}", TOKENS[1]);
    let text = check(&f, &request, &[]);
    assert_eq!(text.status.code(), Some(0), "{}", stdout(&text));
    assert!(
        stdout(&text).contains("  request     GET /v1/orders?key=[redacted]\n"),
        "{}",
        stdout(&text)
    );
    assert!(
        stdout(&text).contains("client web (token in request.query[key])"),
        "{}",
        stdout(&text)
    );
    let doc = json_of(&check(&f, &request, &["-o", "json"]));
    assert_eq!(doc["usagePlan"]["client"], "web");
    assert_eq!(doc["usagePlan"]["subscriber"]["name"], "acme");
    // The header comes first in tokenLocations: with both, the header's token is used.
    let h = header(TOKENS[2]);
    let doc = json_of(&check(&f, &request, &["--header", &h, "-o", "json"]));
    assert_eq!(doc["usagePlan"]["subscriber"]["name"], "globex");
}

#[test]
fn the_first_of_the_subscribers_plans_entitling_the_deployment_wins() {
    let f = fixture(open_deployment());
    // globex: billing-only (not this deployment), then gold.
    let h = header(TOKENS[2]);
    let text = check(&f, "GET /v1/orders", &["--header", &h]);
    assert_eq!(text.status.code(), Some(0));
    assert!(
        stdout(&text).contains("plan Gold (ocid1.usageplan.oc1..gold), entitlement everything: rate limit 10/s, quota 1000 per DAY (ALLOW)\n"),
        "{}",
        stdout(&text)
    );
    let doc = json_of(&check(
        &f,
        "GET /v1/orders",
        &["--header", &h, "-o", "json"],
    ));
    assert_eq!(
        doc["usagePlan"],
        json!({
            "subscriber": {"id": "ocid1.subscriber.oc1..globex", "name": "globex"},
            "client": "batch",
            "plan": {"id": "ocid1.usageplan.oc1..gold", "name": "Gold"},
            "entitlement": "everything",
            "rateLimit": {"value": 10, "unit": "SECOND"},
            "quota": {"value": 1000, "unit": "DAY", "resetPolicy": "CALENDAR", "operationOnBreach": "ALLOW"}
        })
    );
    // acme has free then gold, both entitling: free.
    let h = header(TOKENS[0]);
    let doc = json_of(&check(
        &f,
        "GET /v1/orders",
        &["--header", &h, "-o", "json"],
    ));
    assert_eq!(doc["usagePlan"]["plan"]["id"], "ocid1.usageplan.oc1..free");
}

/// A refusal in both outputs: deny, 403, exit 1, the exact `refused` shape and its record.
fn assert_refused(f: &Fixture, request: &str, extra: &[&str], code: &str, reason: &str, fix: &str) {
    let text = check(f, request, extra);
    assert_eq!(text.status.code(), Some(1), "{}", stdout(&text));
    let out = stdout(&text);
    assert!(out.starts_with("DENY  403 Forbidden\n"), "{out}");
    assert!(
        out.contains(&format!("  FAIL usage plan  403 {code}: {reason}\n")),
        "{out}"
    );
    assert!(out.contains(&format!("fix       {fix}\n")), "{out}");
    assert!(
        out.contains(&format!("  WARN  {code}  {reason}\n")),
        "{out}"
    );
    let mut args = extra.to_vec();
    args.extend(["-o", "json"]);
    let output = check(f, request, &args);
    assert_eq!(output.status.code(), Some(1));
    let doc = json_of(&output);
    assert_eq!(
        (&doc["decision"], &doc["status"]),
        (&json!("deny"), &json!(403))
    );
    assert_eq!(
        doc["usagePlan"],
        json!({"refused": {"status": 403, "code": code, "reason": reason}})
    );
    assert!(
        doc["events"]
            .as_array()
            .unwrap()
            .contains(&json!({"code": code, "level": "WARN", "message": reason})),
        "{doc}"
    );
}

#[test]
fn no_token_in_any_location_is_403_naming_the_locations() {
    let f = fixture(open_deployment());
    assert_refused(
        &f,
        "GET /v1/orders?other=1",
        &[],
        "usagePlans.requestRejected",
        "no client token in request.headers[x-api-key] or request.query[key]",
        "Send a subscriber's client token in the header 'x-api-key' (--header 'x-api-key: TOKEN') or the query parameter 'key' (?key=TOKEN in --request).",
    );
}

#[test]
fn a_token_no_subscriber_has_is_403_without_quoting_it() {
    let f = fixture(open_deployment());
    let h = header(TOKENS[5]);
    assert_refused(
        &f,
        "GET /v1/orders",
        &["--header", &h],
        "usagePlans.requestRejected",
        "the client token in request.headers[x-api-key] is no subscriber's",
        "The client token in request.headers[x-api-key] belongs to no subscriber: check the clients' tokens in the --subscribers files (they match exactly, case included).",
    );
    // A DELETED subscriber is skipped: its token is nobody's, and the load warns (stderr).
    let h = header(TOKENS[4]);
    let text = check(&f, "GET /v1/orders", &["--header", &h]);
    assert_eq!(text.status.code(), Some(1));
    let err = String::from_utf8_lossy(&text.stderr);
    assert!(
        err.contains("subscribers.json: [3].lifecycleState: is DELETED, not ACTIVE: this subscriber is skipped"),
        "{err}"
    );
}

#[test]
fn a_subscriber_without_an_entitlement_here_is_403_eligible_not_entitled() {
    let f = fixture(open_deployment());
    let h = header(TOKENS[3]);
    assert_refused(
        &f,
        "GET /v1/orders",
        &["--header", &h],
        "usagePlans.eligibleNotEntitled",
        "subscriber 'initech' has no usage plan with an entitlement for the deployment 'ocid1.apideployment.oc1..orders' (its plans: ocid1.usageplan.oc1..billing)",
        "Add an entitlement targeting the deployment 'ocid1.apideployment.oc1..orders' to one of subscriber 'initech''s usage plans, or subscribe 'initech' to a plan that has one.",
    );
}

#[test]
fn a_request_refused_by_authentication_shows_no_usage_plan() {
    let signer = Signer::new("k1");
    let mut deployment = open_deployment();
    deployment["specification"]["requestPolicies"]["authentication"] = json!({
        "type": "JWT_AUTHENTICATION", "tokenHeader": "Authorization", "tokenAuthScheme": "Bearer",
        "issuers": ["https://issuer.example"], "audiences": ["api"],
        "publicKeys": {"type": "STATIC_KEYS", "keys": [signer.static_key()]}
    });
    let f = fixture(deployment);
    let h = header(TOKENS[0]);
    // No JWT: 401, and a valid client token changes nothing.
    let text = check(&f, "GET /v1/orders", &["--header", &h]);
    assert_eq!(text.status.code(), Some(1));
    let out = stdout(&text);
    assert!(out.starts_with("DENY  401 Unauthorized"), "{out}");
    assert!(
        out.contains("  skip usage plan  not judged: the request is refused before usage plans (it counts toward none)\n"),
        "{out}"
    );
    assert!(
        !out.contains("subscriber") && !out.contains("usagePlans."),
        "{out}"
    );
    let doc = json_of(&check(
        &f,
        "GET /v1/orders",
        &["--header", &h, "-o", "json"],
    ));
    assert_eq!(
        (&doc["decision"], &doc["status"]),
        (&json!("deny"), &json!(401))
    );
    assert!(doc.get("usagePlan").is_none(), "{doc}");
    // The same request with a good JWT reaches the usage plan (the fixture's token is valid).
    let now = 1_800_000_000i64;
    let jwt = signer.token(
        json!({"iss": "https://issuer.example", "aud": "api", "sub": "alice",
                                  "exp": now + 600, "iat": now}),
    );
    let now = now.to_string();
    let doc = json_of(&check(
        &f,
        "GET /v1/orders",
        &["--header", &h, "--token", &jwt, "--now", &now, "-o", "json"],
    ));
    assert_eq!(
        (&doc["decision"], &doc["status"]),
        (&json!("allow"), &json!(200)),
        "{doc}"
    );
    assert_eq!(doc["usagePlan"]["client"], "mobile");
}

#[test]
fn without_the_files_the_usage_plan_is_not_judged_and_the_decision_stands() {
    let f = fixture(open_deployment());
    let args = [
        "check",
        "--deployment",
        path(&f.deployment),
        "--request",
        "GET /v1/orders",
    ];
    let text = claimgate(&args);
    assert_eq!(text.status.code(), Some(0));
    let out = stdout(&text);
    assert!(out.starts_with("ALLOW  200 OK"), "{out}");
    assert!(
        out.contains(
            "  skip usage plan  not judged: give --usage-plans FILE and --subscribers FILE\n"
        ),
        "{out}"
    );
    let mut json_args = args.to_vec();
    json_args.extend(["-o", "json"]);
    let doc = json_of(&claimgate(&json_args));
    assert_eq!(doc["decision"], "allow");
    assert!(doc.get("usagePlan").is_none(), "{doc}");
    assert!(
        doc["warnings"].as_array().unwrap().contains(&json!(
            "the usage plan is not judged: the deployment has requestPolicies.usagePlans; give --usage-plans FILE and --subscribers FILE"
        )),
        "{doc}"
    );
    // One file without the other is a usage error: no token could be resolved.
    let output = claimgate(&[
        "check",
        "--deployment",
        path(&f.deployment),
        "--usage-plans",
        path(&f.plans),
        "--request",
        "GET /v1/orders",
        "-o",
        "json",
    ]);
    assert_eq!(output.status.code(), Some(2));
    assert!(json_of(&output)["error"]["message"]
        .as_str()
        .unwrap()
        .contains("--usage-plans and --subscribers go together"));
}

#[test]
fn files_for_a_deployment_without_usage_plans_are_ignored_with_a_note() {
    let mut deployment = open_deployment();
    deployment["specification"]["requestPolicies"] = json!({});
    let f = fixture(deployment);
    let text = check(&f, "GET /v1/orders", &[]);
    assert_eq!(text.status.code(), Some(0));
    assert!(!stdout(&text).contains("usage plan"), "{}", stdout(&text));
    assert!(String::from_utf8_lossy(&text.stderr).contains(
        "--usage-plans and --subscribers are ignored: the deployment has no requestPolicies.usagePlans"
    ));
    let doc = json_of(&check(&f, "GET /v1/orders", &["-o", "json"]));
    assert_eq!(doc["decision"], "allow");
    assert!(doc.get("usagePlan").is_none(), "{doc}");
}

#[test]
fn directories_and_the_committed_example_work() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/usage-plans");
    let deployment = root.join("deployment.json");
    let (plans, subscribers) = (root.join("usage-plans.json"), root.join("subscribers.json"));
    let base = [
        "check",
        "--deployment",
        path(&deployment),
        "--usage-plans",
        path(&plans),
        "--subscribers",
        path(&subscribers),
        "--request",
        "GET /weather/forecast",
    ];
    let mut args = base.to_vec();
    args.extend(["--header", "x-api-key: free-key-3f9a1c", "-o", "json"]);
    let output = claimgate(&args);
    assert_eq!(output.status.code(), Some(0), "{}", stdout(&output));
    assert!(!stdout(&output).contains("free-key-3f9a1c"));
    let doc = json_of(&output);
    assert_eq!(doc["usagePlan"]["plan"]["name"], "Free");
    assert_eq!(doc["usagePlan"]["subscriber"]["name"], "hobbyist");
    // A directory of resource files reads the same.
    let f = fixture(open_deployment());
    let dir = f.plans.parent().unwrap().join("plans.d");
    std::fs::create_dir(&dir).unwrap();
    std::fs::copy(&f.plans, dir.join("plans.json")).unwrap();
    let h = header(TOKENS[2]);
    let output = claimgate(&[
        "check",
        "--deployment",
        path(&f.deployment),
        "--usage-plans",
        path(&dir),
        "--subscribers",
        path(&f.subscribers),
        "--request",
        "GET /v1/orders",
        "--header",
        &h,
        "-o",
        "json",
    ]);
    assert_no_token(&output);
    assert_eq!(json_of(&output)["usagePlan"]["plan"]["name"], "Gold");
}
