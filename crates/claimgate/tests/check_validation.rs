//! `claimgate check` on routes with request validations (SPEC "Request validation"): the
//! `header:<Name>`, `query:<name>` and `body` checks after `scope` in text and JSON, 400, 415,
//! PERMISSIVE (fails, exit 0), how a body is declared (`--data`, `Content-Length`,
//! `Transfer-Encoding`), 401 before 400, and a usage plan's 403 before validation.

mod support;

use serde_json::{json, Value};
use std::process::Output;
use support::{claimgate, repo, Signer};

/// The README's example: `/v1/orders` (X-Username required, `page` optional, an optional body
/// of application/json or text/*, ENFORCING) and `/v1/audit` (a required JSON body,
/// PERMISSIVE).
fn example() -> String {
    repo()
        .join("examples/validation/deployment.json")
        .to_string_lossy()
        .into_owned()
}

fn check(deployment: &str, request: &str, extra: &[&str]) -> Output {
    let mut args = vec!["check", "--deployment", deployment, "--request", request];
    args.extend_from_slice(extra);
    claimgate(&args)
}

fn text(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn json_of(deployment: &str, request: &str, extra: &[&str]) -> (i32, Value) {
    let mut extra = extra.to_vec();
    extra.extend_from_slice(&["--output", "json"]);
    let output = check(deployment, request, &extra);
    let doc =
        serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&output)));
    (output.status.code().unwrap(), doc)
}

fn check_named<'d>(doc: &'d Value, id: &str) -> &'d Value {
    doc["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == id)
        .unwrap_or_else(|| panic!("no check {id} in {doc:#}"))
}

#[test]
fn a_missing_header_is_400_in_text_and_json() {
    let output = check(&example(), "POST /v1/orders", &[]);
    assert_eq!(output.status.code(), Some(1));
    let out = text(&output);
    assert!(out.starts_with("DENY  400 Bad Request"), "{out}");
    for line in [
        "FAIL header:X-Username  Request failed a validation policy: header 'X-Username' is required.",
        "expected  \"present\"",
        "actual    \"absent\"",
        "policy    specification.routes[0].requestPolicies.headerValidations",
        "fix       Send the header 'X-Username' (any letter case), or make it optional (required: false) in specification.routes[0].requestPolicies.headerValidations.",
        "pass query:page         absent, and not required",
        "pass body               no body, and none is required",
        "WARN  requestValidation.validationError  Request failed a validation policy: header 'X-Username' is required.",
    ] {
        assert!(out.contains(line), "{line:?} not in\n{out}");
    }
    // The validation checks follow scope, in the order header, query, body.
    let order: Vec<usize> = ["skip scope", "header:X-Username", "query:page", "pass body"]
        .iter()
        .map(|id| out.find(id).unwrap_or_else(|| panic!("{id} not in\n{out}")))
        .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{out}");

    let (code, doc) = json_of(&example(), "POST /v1/orders", &[]);
    assert_eq!(code, 1);
    assert_eq!(doc["decision"], "deny");
    assert_eq!(doc["status"], 400);
    let header = check_named(&doc, "header:X-Username");
    assert_eq!(header["result"], "fail");
    assert_eq!(
        header["message"],
        "Request failed a validation policy: header 'X-Username' is required."
    );
    assert_eq!(header["expected"], "present");
    assert_eq!(header["actual"], "absent");
    assert_eq!(
        header["setting"],
        "specification.routes[0].requestPolicies.headerValidations"
    );
    assert!(header["fix"]
        .as_str()
        .unwrap()
        .starts_with("Send the header"));
    assert_eq!(check_named(&doc, "query:page")["result"], "pass");
    assert_eq!(check_named(&doc, "body")["result"], "pass");
    assert_eq!(
        doc["events"],
        json!([{"code": "requestValidation.validationError", "level": "WARN",
                "message": "Request failed a validation policy: header 'X-Username' is required.",
                "check": "header:X-Username"}])
    );
}

#[test]
fn a_media_type_outside_content_is_415_in_text_and_json() {
    let args = [
        "--header",
        "x-username: alice",
        "--header",
        "Content-Type: application/xml; charset=utf-8",
        "--data",
        "<order/>",
    ];
    let output = check(&example(), "POST /v1/orders?PAGE=2", &args);
    assert_eq!(output.status.code(), Some(1));
    let out = text(&output);
    assert!(out.starts_with("DENY  415 Unsupported Media Type"), "{out}");
    for line in [
        "pass header:X-Username  present",
        "pass query:page         present",
        "FAIL body               Request failed a validation policy: content type 'application/xml' is not accepted.",
        "expected  [\"application/json\",\"text/*\"]",
        "actual    \"application/xml\"",
    ] {
        assert!(out.contains(line), "{line:?} not in\n{out}");
    }
    let (code, doc) = json_of(&example(), "POST /v1/orders?PAGE=2", &args);
    assert_eq!(code, 1);
    assert_eq!(
        (doc["decision"].clone(), doc["status"].clone()),
        (json!("deny"), json!(415))
    );
    let body = check_named(&doc, "body");
    assert_eq!(body["result"], "fail");
    assert_eq!(body["expected"], json!(["application/json", "text/*"]));
    assert_eq!(body["actual"], "application/xml");

    // The accepted types pass, with the key that took them.
    let (code, doc) = json_of(
        &example(),
        "POST /v1/orders",
        &[
            "--header",
            "X-Username: a",
            "--header",
            "Content-Type: TEXT/csv",
            "--data",
            "a,b",
        ],
    );
    assert_eq!((code, doc["status"].clone()), (0, json!(201)));
    assert_eq!(
        check_named(&doc, "body")["detail"],
        "'text/csv' is accepted by 'text/*'"
    );
    assert_eq!(
        doc["events"],
        json!([{"code": "requestValidation.validationPermitted", "level": "INFO",
                "message": "Request passed a validation policy."}])
    );
}

#[test]
fn permissive_failures_are_shown_and_the_request_allowed() {
    let output = check(&example(), "POST /v1/audit", &[]);
    assert_eq!(output.status.code(), Some(0));
    let out = text(&output);
    assert!(out.starts_with("ALLOW  202 Accepted"), "{out}");
    let fail = out
        .lines()
        .find(|l| l.trim_start().starts_with("FAIL body "))
        .unwrap_or_else(|| panic!("no FAIL body in\n{out}"));
    assert!(
        fail.ends_with("Request failed a validation policy: a request body is required. (PERMISSIVE: logged, the request is served)"),
        "{fail}"
    );
    assert!(
        out.contains("(PERMISSIVE: the request was served anyway)"),
        "{out}"
    );
    let (code, doc) = json_of(&example(), "POST /v1/audit", &[]);
    assert_eq!(code, 0);
    assert_eq!(
        (doc["decision"].clone(), doc["status"].clone()),
        (json!("allow"), json!(202))
    );
    let body = check_named(&doc, "body");
    assert_eq!(body["result"], "fail");
    assert_eq!(body["actual"], "no body");
    assert_eq!(
        doc["events"][0]["code"],
        "requestValidation.validationError"
    );
}

#[test]
fn a_body_is_declared_by_data_content_length_or_chunked() {
    let json_type = ["--header", "Content-Type: application/json"];
    let status = |extra: &[&str]| {
        let mut args = json_type.to_vec();
        args.extend_from_slice(extra);
        let (_, doc) = json_of(&example(), "POST /v1/audit", &args);
        check_named(&doc, "body")["result"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(status(&["--data", "{}"]), "pass");
    assert_eq!(status(&["--header", "Content-Length: 12"]), "pass");
    assert_eq!(status(&["--header", "Transfer-Encoding: chunked"]), "pass");
    assert_eq!(status(&[]), "fail");
    assert_eq!(status(&["--data", ""]), "fail");
    assert_eq!(status(&["--header", "Content-Length: 0"]), "fail");
    let (_, doc) = json_of(
        &example(),
        "POST /v1/audit",
        &["--header", "Content-Length: 0"],
    );
    assert_eq!(
        check_named(&doc, "body")["actual"],
        "no body (Content-Length: 0)"
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("order.json");
    std::fs::write(&file, "{\"item\": 1}").unwrap();
    let at_file = format!("@{}", file.display());
    assert_eq!(status(&["--data", &at_file]), "pass");
    // A file that is not there is a usage error naming it.
    let output = check(
        &example(),
        "POST /v1/audit",
        &["--data", "@/nonexistent/order.json"],
    );
    assert_eq!(output.status.code(), Some(2));
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(err.contains("--data '@/nonexistent/order.json'"), "{err}");
}

#[test]
fn authentication_and_usage_plans_come_before_validation() {
    let signer = Signer::new("k1");
    let dir = tempfile::tempdir().unwrap();
    let deployment = json!({"pathPrefix": "/v1", "specification": {
        "requestPolicies": {
            "authentication": {"type": "JWT_AUTHENTICATION", "tokenHeader": "Authorization",
                "tokenAuthScheme": "Bearer", "issuers": ["https://idp.test/"], "audiences": ["api"],
                "publicKeys": {"type": "STATIC_KEYS", "keys": [signer.static_key()]}},
            "usagePlans": {"tokenLocations": ["request.headers[X-API-Key]"]}},
        "routes": [{"path": "/orders", "methods": ["GET"],
            "requestPolicies": {"headerValidations": {"headers": [{"name": "X-Username", "required": true}]}},
            "backend": {"type": "STOCK_RESPONSE_BACKEND", "status": 200}}]}});
    let file = dir.path().join("orders.json");
    std::fs::write(&file, deployment.to_string()).unwrap();
    let file = file.to_string_lossy().into_owned();
    // No token: 401, the validation check skipped.
    let (code, doc) = json_of(&file, "GET /v1/orders", &[]);
    assert_eq!((code, doc["status"].clone()), (1, json!(401)));
    let header = check_named(&doc, "header:X-Username");
    assert_eq!(header["result"], "skip");
    assert_eq!(
        header["reason"],
        "the request was refused before validation"
    );

    let token = signer.token(
        json!({"iss": "https://idp.test/", "aud": "api", "sub": "alice",
        "exp": support::now() + 600}),
    );
    let plans = dir.path().join("plans.json");
    std::fs::write(
        &plans,
        json!([{"id": "ocid1.usageplan.free", "displayName": "free", "lifecycleState": "ACTIVE",
            "entitlements": [{"name": "basic", "targets": [{"deploymentId": "orders"}]}]}])
        .to_string(),
    )
    .unwrap();
    let subscribers = dir.path().join("subscribers.json");
    std::fs::write(
        &subscribers,
        json!([{"id": "ocid1.subscriber.acme", "displayName": "acme", "lifecycleState": "ACTIVE",
            "clients": [{"name": "app", "token": "acme-key"}], "usagePlans": ["ocid1.usageplan.free"]}])
        .to_string(),
    )
    .unwrap();
    let files = [
        "--usage-plans",
        plans.to_str().unwrap(),
        "--subscribers",
        subscribers.to_str().unwrap(),
        "--token",
        &token,
    ];
    // A token but no client token: the usage plan's 403, validation not reached.
    let (code, doc) = json_of(&file, "GET /v1/orders", &files);
    assert_eq!((code, doc["status"].clone()), (1, json!(403)));
    assert_eq!(check_named(&doc, "header:X-Username")["result"], "skip");
    // Entitled, but the header is missing: the usage plan applies, then 400.
    let mut entitled = files.to_vec();
    entitled.extend_from_slice(&["--header", "X-API-Key: acme-key"]);
    let (code, doc) = json_of(&file, "GET /v1/orders", &entitled);
    assert_eq!((code, doc["status"].clone()), (1, json!(400)));
    assert_eq!(doc["usagePlan"]["subscriber"]["name"], "acme");
    assert_eq!(check_named(&doc, "header:X-Username")["result"], "fail");
    entitled.extend_from_slice(&["--header", "X-Username: alice"]);
    let (code, doc) = json_of(&file, "GET /v1/orders", &entitled);
    assert_eq!((code, doc["decision"].clone()), (0, json!("allow")));
}
