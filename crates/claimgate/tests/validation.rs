//! Request validation end to end (SPEC "Request validation"): the real binary serving
//! `headerValidations`, `queryParameterValidations` and `bodyValidation` over HTTP/1.1 and h2c,
//! every rule passing and failing, 400 before 415, 401 before 400, a usage plan counting a
//! request its validations refuse, PERMISSIVE served with its record, DISABLED ignored, the
//! records' fields, the metric, and hostile requests written byte by byte.

mod support;

use serde_json::{json, Value};
use std::io::{Read, Write};
use std::sync::OnceLock;
use std::time::Duration;
use support::*;

const ISS: &str = "https://idp.test/";
const AUD: &str = "api://orders";

fn signer() -> &'static Signer {
    static S: OnceLock<Signer> = OnceLock::new();
    S.get_or_init(|| Signer::new("k1"))
}

fn token() -> String {
    signer().token(json!({"iss": ISS, "aud": AUD, "sub": "alice", "exp": now() + 600}))
}

fn content(keys: &[&str]) -> Value {
    keys.iter()
        .map(|k| ((*k).to_owned(), json!({"validationType": "NONE"})))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

fn stock() -> Value {
    json!({"type": "STOCK_RESPONSE_BACKEND", "status": 200, "body": "served"})
}

fn route(path: &str, policies: Value) -> Value {
    json!({"path": path, "methods": ["GET", "POST"], "requestPolicies": policies, "backend": stock()})
}

fn required_header(mode: &str) -> Value {
    json!({"validationMode": mode, "headers": [
        {"name": "X-Username", "required": true}, {"name": "X-Trace", "required": false}]})
}

fn required_body(keys: &[&str]) -> Value {
    json!({"required": true, "content": content(keys)})
}

/// The routes of the open deployment, one per rule.
fn routes() -> Value {
    json!([
        route(
            "/headers",
            json!({"headerValidations": required_header("ENFORCING")})
        ),
        route(
            "/query",
            json!({"queryParameterValidations": {"parameters": [{"name": "page", "required": true}]}})
        ),
        route(
            "/body",
            json!({"bodyValidation": required_body(&["application/json", "text/*"])})
        ),
        route("/any", json!({"bodyValidation": required_body(&["*/*"])})),
        route(
            "/optional",
            json!({"bodyValidation": {"required": false, "content": content(&["application/json"])}})
        ),
        route(
            "/permissive",
            json!({
            "headerValidations": required_header("PERMISSIVE"),
            "bodyValidation": {"required": true, "content": content(&["application/json"]), "validationMode": "PERMISSIVE"}})
        ),
        route(
            "/disabled",
            json!({
            "headerValidations": required_header("DISABLED"),
            "bodyValidation": {"required": true, "content": content(&["application/json"]), "validationMode": "DISABLED"}})
        ),
        route(
            "/both",
            json!({
            "headerValidations": required_header("ENFORCING"),
            "bodyValidation": required_body(&["application/json"])})
        ),
    ])
}

fn open_deployment(routes: Value) -> Value {
    json!({"displayName": "orders", "pathPrefix": "/v1", "specification": {
        "loggingPolicies": {"executionLog": {"logLevel": "INFO"}},
        "routes": routes}})
}

struct Answer {
    status: u16,
    request_id: String,
    content_type: String,
    body: String,
}

/// A request through reqwest: `body` is sent with its length.
fn send(
    gateway: &Gateway,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Answer {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut request = client().request(method, format!("{}{path}", gateway.base));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    if let Some(body) = body {
        request = request.body(body.to_owned());
    }
    let response = request.send().unwrap();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    };
    Answer {
        status: response.status().as_u16(),
        request_id: header("opc-request-id"),
        content_type: header("content-type"),
        body: response.text().unwrap(),
    }
}

fn status(
    gateway: &Gateway,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> u16 {
    send(gateway, method, path, headers, body).status
}

/// A request written as `head` (CRLF line ends added, the blank line too) then `body`, on its
/// own connection: what a client that reqwest would not be can send. The answer's status.
fn raw(gateway: &Gateway, head: &[&str], body: &[u8]) -> u16 {
    let address = gateway.base.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut request = head.join("\r\n").into_bytes();
    request.extend_from_slice(b"\r\nHost: gateway\r\nConnection: close\r\n\r\n");
    request.extend_from_slice(body);
    stream.write_all(&request).unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {answer:?}"))
}

fn validation_records(gateway: &Gateway, request_id: &str, at_least: usize) -> Vec<Value> {
    records(&gateway.execution_log, request_id, at_least)
        .into_iter()
        .map(|r| r["data"].clone())
        .filter(|d| {
            d["code"]
                .as_str()
                .is_some_and(|c| c.starts_with("requestValidation."))
        })
        .collect()
}

fn metrics(gateway: &Gateway) -> String {
    client()
        .get(format!("{}/metrics", gateway.admin.as_ref().unwrap()))
        .send()
        .unwrap()
        .text()
        .unwrap()
}

#[test]
fn required_headers_and_query_parameters() {
    let gw = start_gateway(&[open_deployment(routes())], true, &[]);
    // Header names compare case-insensitively; a repeated header is present.
    for name in ["X-Username", "x-username", "X-USERNAME"] {
        assert_eq!(
            status(&gw, "GET", "/v1/headers", &[(name, "alice")], None),
            200,
            "{name}"
        );
    }
    assert_eq!(
        raw(
            &gw,
            &["GET /v1/headers HTTP/1.1", "x-username: a", "X-Username: b"],
            b""
        ),
        200
    );
    let refused = send(
        &gw,
        "GET",
        "/v1/headers",
        &[("X-Trace", "1"), ("X-Usernames", "x")],
        None,
    );
    assert_eq!(refused.status, 400);
    assert_eq!(refused.body, r#"{"message":"Bad Request","code":400}"#);
    assert_eq!(refused.content_type, "application/json");
    let records = validation_records(&gw, &refused.request_id, 1);
    assert_eq!(records.len(), 1, "{records:#?}");
    let record = &records[0];
    assert_eq!(record["code"], "requestValidation.validationError");
    assert_eq!(record["level"], "WARN");
    assert_eq!(
        record["message"],
        "Request failed a validation policy: header 'X-Username' is required."
    );
    assert_eq!(record["validation"], "header");
    assert_eq!(record["name"], "X-Username");
    assert_eq!(record["check"], "header:X-Username");
    assert_eq!(record["validationMode"], "ENFORCING");
    assert_eq!(record["expected"], "present");
    assert_eq!(record["actual"], "absent");
    assert!(
        record["fix"]
            .as_str()
            .unwrap()
            .contains("specification.routes[0].requestPolicies.headerValidations"),
        "{record}"
    );
    assert_eq!(record["deploymentId"], "deployment-0");
    // `claimgate logs` explains the 400 from the record.
    let log = gw.execution_log.to_str().unwrap();
    let output = claimgate(&["logs", "--file", log, "--request-id", &refused.request_id]);
    assert_eq!(output.status.code(), Some(0));
    let out = String::from_utf8_lossy(&output.stdout);
    assert!(
        out.contains("✗ header:X-Username: Request failed a validation policy: header 'X-Username' is required."),
        "{out}"
    );
    assert!(
        out.contains("fix       Send the header 'X-Username'"),
        "{out}"
    );

    // Query parameter names compare percent-decoded and case-insensitively.
    for query in ["page=1", "PAGE=1", "p%61ge=1", "a=b&Page", "page="] {
        assert_eq!(
            status(&gw, "GET", &format!("/v1/query?{query}"), &[], None),
            200,
            "{query}"
        );
    }
    for query in ["", "?pages=1", "?pag=1", "?a=page", "?=page", "?p%6=1"] {
        let answer = send(&gw, "GET", &format!("/v1/query{query}"), &[], None);
        assert_eq!(answer.status, 400, "{query}");
        let record = &validation_records(&gw, &answer.request_id, 1)[0];
        assert_eq!(record["validation"], "query");
        assert_eq!(record["name"], "page");
    }

    // A passing request is recorded as permitted (the deployment logs at INFO).
    let passed = send(&gw, "GET", "/v1/headers", &[("X-Username", "alice")], None);
    assert_eq!(passed.body, "served");
    let records = validation_records(&gw, &passed.request_id, 1);
    assert_eq!(records.len(), 1);
    assert_eq!(records[0]["code"], "requestValidation.validationPermitted");
    assert_eq!(records[0]["level"], "INFO");

    let text = metrics(&gw);
    for line in [
        r#"claimgate_request_validation_failures_total{deployment="orders",route="/headers",kind="header",mode="ENFORCING"} 1"#,
        r#"claimgate_request_validation_failures_total{deployment="orders",route="/query",kind="query",mode="ENFORCING"} 6"#,
    ] {
        assert!(text.contains(line), "{line} not in\n{text}");
    }
    // The authentication metrics leave validation out.
    assert!(!text.contains("header:X-Username"), "{text}");
}

#[test]
fn bodies_and_media_types() {
    let gw = start_gateway(&[open_deployment(routes())], true, &[]);
    let post = |path: &str, content_type: Option<&str>, body: Option<&str>| {
        let headers: Vec<(&str, &str)> = content_type
            .map(|c| ("Content-Type", c))
            .into_iter()
            .collect();
        send(&gw, "POST", path, &headers, body)
    };
    for content_type in [
        "application/json",
        "application/json; charset=utf-8",
        "Application/JSON;charset=UTF-8",
        "text/plain",
        "TEXT/csv; header=present",
    ] {
        assert_eq!(
            post("/v1/body", Some(content_type), Some("{}")).status,
            200,
            "{content_type}"
        );
    }
    // A required body that is absent, or declared empty: 400.
    let missing = post("/v1/body", Some("application/json"), None);
    assert_eq!(missing.status, 400);
    let record = &validation_records(&gw, &missing.request_id, 1)[0];
    assert_eq!(record["validation"], "body");
    assert_eq!(
        record["message"],
        "Request failed a validation policy: a request body is required."
    );
    assert_eq!(record["expected"], json!(["application/json", "text/*"]));
    assert_eq!(
        post("/v1/body", Some("application/json"), Some("")).status,
        400
    );
    assert_eq!(
        raw(
            &gw,
            &[
                "POST /v1/body HTTP/1.1",
                "Content-Type: application/json",
                "Content-Length: 0"
            ],
            b""
        ),
        400
    );
    assert_eq!(status(&gw, "GET", "/v1/body", &[], None), 400);
    // Chunked counts as a body, even an empty one.
    assert_eq!(
        raw(
            &gw,
            &[
                "POST /v1/body HTTP/1.1",
                "Content-Type: application/json",
                "Transfer-Encoding: chunked"
            ],
            b"2\r\n{}\r\n0\r\n\r\n"
        ),
        200
    );
    assert_eq!(
        raw(
            &gw,
            &[
                "POST /v1/body HTTP/1.1",
                "Content-Type: application/json",
                "Transfer-Encoding: chunked"
            ],
            b"0\r\n\r\n"
        ),
        200
    );

    // A media type no key matches: 415, with OCI-style body and the type in the record.
    let refused = post("/v1/body", Some("application/xml"), Some("<a/>"));
    assert_eq!(refused.status, 415);
    assert_eq!(
        refused.body,
        r#"{"message":"Unsupported Media Type","code":415}"#
    );
    assert_eq!(refused.content_type, "application/json");
    let record = &validation_records(&gw, &refused.request_id, 1)[0];
    assert_eq!(record["name"], "application/xml");
    assert_eq!(record["actual"], "application/xml");
    assert_eq!(
        record["message"],
        "Request failed a validation policy: content type 'application/xml' is not accepted."
    );
    for content_type in [
        "application/jsonx",
        "application/json+x",
        "json",
        "application/text",
    ] {
        assert_eq!(
            post("/v1/body", Some(content_type), Some("{}")).status,
            415,
            "{content_type}"
        );
    }
    // No Content-Type counts as application/octet-stream.
    let untyped = post("/v1/body", None, Some("{}"));
    assert_eq!(untyped.status, 415);
    assert_eq!(
        validation_records(&gw, &untyped.request_id, 1)[0]["name"],
        "application/octet-stream"
    );
    // */* takes anything, typed or not.
    for content_type in [Some("image/png"), Some("nonsense"), None] {
        assert_eq!(
            post("/v1/any", content_type, Some("x")).status,
            200,
            "{content_type:?}"
        );
    }
    // An optional body may be absent, but a present one is still checked.
    assert_eq!(post("/v1/optional", None, None).status, 200);
    assert_eq!(
        post("/v1/optional", Some("application/json"), Some("{}")).status,
        200
    );
    assert_eq!(
        post("/v1/optional", Some("application/xml"), Some("<a/>")).status,
        415
    );
    // 400 is judged before 415; both failures are recorded.
    let both = post("/v1/both", Some("application/xml"), Some("<a/>"));
    assert_eq!(both.status, 400);
    let records = validation_records(&gw, &both.request_id, 2);
    let names: Vec<&Value> = records.iter().map(|r| &r["validation"]).collect();
    assert_eq!(names, [&json!("header"), &json!("body")]);

    let text = metrics(&gw);
    assert!(
        text.contains(r#"claimgate_request_validation_failures_total{deployment="orders",route="/body",kind="body",mode="ENFORCING"}"#),
        "{text}"
    );
}

#[test]
fn hostile_content_types() {
    let gw = start_gateway(&[open_deployment(routes())], false, &[]);
    let post = |head: &[&str]| {
        let mut lines = vec!["POST /v1/body HTTP/1.1", "Content-Length: 2"];
        lines.extend_from_slice(head);
        raw(&gw, &lines, b"{}")
    };
    // Odd white space and parameters around an accepted type.
    assert_eq!(
        post(&["Content-Type: \t application/json \t ; charset=\"utf-8\"; x=y"]),
        200
    );
    assert_eq!(post(&["Content-Type:application/json;"]), 200);
    // White space inside the type, an empty type, a list of types: nothing a key names.
    assert_eq!(post(&["Content-Type: application / json"]), 415);
    assert_eq!(post(&["Content-Type: "]), 415);
    assert_eq!(post(&["Content-Type: application/json, text/plain"]), 415);
    // Two Content-Type headers: the backend's reading is a guess, so only */* takes it.
    assert_eq!(
        post(&[
            "Content-Type: application/json",
            "Content-Type: application/json"
        ]),
        415
    );
    // A huge Content-Type is judged, and logged bounded.
    let huge = format!("Content-Type: application/{}", "x".repeat(6000));
    let answer = {
        let mut request = client()
            .post(format!("{}/v1/body", gw.base))
            .header("Content-Type", &huge["Content-Type: ".len()..])
            .body("{}");
        request = request.header("opc-request-id", "huge-content-type");
        request.send().unwrap()
    };
    assert_eq!(answer.status().as_u16(), 415);
    let record = &validation_records(&gw, "huge-content-type", 1)[0];
    let name = record["name"].as_str().unwrap();
    assert!(name.chars().count() <= 101, "{} characters", name.len());
    assert!(name.starts_with("application/xxx"));
    // The gateway keeps serving.
    assert_eq!(post(&["Content-Type: application/json"]), 200);
}

#[test]
fn permissive_is_served_with_its_records_and_disabled_is_ignored() {
    let gw = start_gateway(&[open_deployment(routes())], true, &[]);
    let served = send(&gw, "POST", "/v1/permissive", &[], None);
    assert_eq!((served.status, served.body.as_str()), (200, "served"));
    let permissive = validation_records(&gw, &served.request_id, 2);
    assert_eq!(permissive.len(), 2, "{permissive:#?}");
    for (record, validation) in permissive.iter().zip(["header", "body"]) {
        assert_eq!(record["code"], "requestValidation.validationError");
        assert_eq!(record["level"], "WARN");
        assert_eq!(record["validationMode"], "PERMISSIVE");
        assert_eq!(record["validation"], validation);
        assert!(record["fix"].as_str().unwrap().contains("PERMISSIVE"));
    }
    let text = metrics(&gw);
    for kind in ["header", "body"] {
        let line = format!(
            r#"claimgate_request_validation_failures_total{{deployment="orders",route="/permissive",kind="{kind}",mode="PERMISSIVE"}} 1"#
        );
        assert!(text.contains(&line), "{line} not in\n{text}");
    }
    // DISABLED: no check, no record.
    let disabled = send(
        &gw,
        "POST",
        "/v1/disabled",
        &[("Content-Type", "application/xml")],
        Some("<a/>"),
    );
    assert_eq!(disabled.status, 200);
    let all = records(&gw.execution_log, &disabled.request_id, 0);
    assert!(
        all.iter().all(|r| !r["data"]["code"]
            .as_str()
            .unwrap()
            .starts_with("requestValidation.")),
        "{all:#?}"
    );
}

#[test]
fn authentication_comes_before_validation() {
    let deployment = json!({"displayName": "orders", "pathPrefix": "/v1", "specification": {
        "requestPolicies": {"authentication": {
            "type": "JWT_AUTHENTICATION", "tokenHeader": "Authorization", "tokenAuthScheme": "Bearer",
            "issuers": [ISS], "audiences": [AUD],
            "publicKeys": {"type": "STATIC_KEYS", "keys": [signer().static_key()]}}},
        "routes": [route("/headers", json!({"headerValidations": required_header("ENFORCING")}))]}});
    let gw = start_gateway(&[deployment], false, &[]);
    // No token and no header: 401, and nothing about validation.
    let refused = send(&gw, "GET", "/v1/headers", &[], None);
    assert_eq!(refused.status, 401);
    assert!(validation_records(&gw, &refused.request_id, 1).is_empty());
    let bearer = format!("Bearer {}", token());
    let headers = [("Authorization", bearer.as_str())];
    assert_eq!(status(&gw, "GET", "/v1/headers", &headers, None), 400);
    let with_header = [("Authorization", bearer.as_str()), ("X-Username", "alice")];
    assert_eq!(status(&gw, "GET", "/v1/headers", &with_header, None), 200);
}

#[test]
fn a_usage_plan_counts_a_request_its_validations_refuse() {
    let mut deployment = open_deployment(json!([route(
        "/headers",
        json!({"headerValidations": required_header("ENFORCING")})
    )]));
    deployment["specification"]["requestPolicies"] =
        json!({"usagePlans": {"tokenLocations": ["request.headers[X-API-Key]"]}});
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("orders.json");
    std::fs::write(&file, deployment.to_string()).unwrap();
    let plans = json!([{"id": "ocid1.usageplan.free", "displayName": "free", "lifecycleState": "ACTIVE",
        "entitlements": [{"name": "basic", "targets": [{"deploymentId": "orders"}],
            "quota": {"value": 2, "unit": "DAY", "resetPolicy": "CALENDAR", "operationOnBreach": "REJECT"}}]}]);
    let subscribers = json!([{"id": "ocid1.subscriber.acme", "displayName": "acme", "lifecycleState": "ACTIVE",
        "clients": [{"name": "app", "token": "acme-key"}], "usagePlans": ["ocid1.usageplan.free"]}]);
    let plans_file = dir.path().join("plans.json");
    std::fs::write(&plans_file, plans.to_string()).unwrap();
    let subscribers_file = dir.path().join("subscribers.json");
    std::fs::write(&subscribers_file, subscribers.to_string()).unwrap();
    let gw = start_gateway_on(
        dir,
        &[file],
        false,
        &[
            "--usage-plans",
            plans_file.to_str().unwrap(),
            "--subscribers",
            subscribers_file.to_str().unwrap(),
        ],
    );
    // No client token and no header: the usage plan's 403 comes first.
    assert_eq!(status(&gw, "GET", "/v1/headers", &[], None), 403);
    // The client's first request lacks the header: counted, then refused by validation.
    let refused = send(
        &gw,
        "GET",
        "/v1/headers",
        &[("X-API-Key", "acme-key")],
        None,
    );
    assert_eq!(refused.status, 400);
    let codes: Vec<Value> = records(&gw.execution_log, &refused.request_id, 2)
        .iter()
        .map(|r| r["data"]["code"].clone())
        .collect();
    assert_eq!(
        codes,
        [
            json!("usagePlans.requestPermitted"),
            json!("requestValidation.validationError")
        ]
    );
    let good = [("X-API-Key", "acme-key"), ("X-Username", "alice")];
    assert_eq!(status(&gw, "GET", "/v1/headers", &good, None), 200);
    // Two requests took the quota of 2: the refused one counted.
    assert_eq!(status(&gw, "GET", "/v1/headers", &good, None), 429);
}

#[test]
fn http2_bodies_are_present_when_data_arrives() {
    let gw = start_gateway(&[open_deployment(routes())], false, &[]);
    let h2 = reqwest::blocking::Client::builder()
        .no_proxy()
        .http2_prior_knowledge()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let url = format!("{}/v1/body", gw.base);
    // A streamed body: DATA frames, no Content-Length (and HTTP/2 has no chunked coding).
    let streamed = h2
        .post(&url)
        .header("Content-Type", "application/json")
        .body(reqwest::blocking::Body::new(std::io::Cursor::new(
            b"{}".to_vec(),
        )))
        .send()
        .unwrap();
    assert_eq!(streamed.version(), reqwest::Version::HTTP_2);
    assert_eq!(streamed.status().as_u16(), 200);
    let sized = h2
        .post(&url)
        .header("Content-Type", "application/json")
        .body("{}")
        .send()
        .unwrap();
    assert_eq!(sized.status().as_u16(), 200);
    // HEADERS with END_STREAM: no body.
    let empty = h2
        .post(&url)
        .header("Content-Type", "application/json")
        .send()
        .unwrap();
    assert_eq!(empty.status().as_u16(), 400);
    let xml = h2
        .post(&url)
        .header("Content-Type", "application/xml")
        .body(reqwest::blocking::Body::new(std::io::Cursor::new(
            b"<a/>".to_vec(),
        )))
        .send()
        .unwrap();
    assert_eq!(xml.status().as_u16(), 415);
}

#[test]
fn a_validated_body_reaches_the_backend_whole() {
    let rt = runtime();
    let backend = serve_http(
        &rt,
        |request: hyper::Request<hyper::body::Incoming>| async move {
            use http_body_util::BodyExt as _;
            let content_type = request
                .headers()
                .get("content-type")
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_default();
            let body = request.into_body().collect().await.unwrap().to_bytes();
            let text = format!("{content_type}|{}", String::from_utf8_lossy(&body));
            hyper::Response::new(http_body_util::Full::new(bytes::Bytes::from(text)))
        },
    );
    let deployment = open_deployment(json!([{
        "path": "/orders", "methods": ["POST"],
        "requestPolicies": {"bodyValidation": required_body(&["application/json"])},
        "backend": {"type": "HTTP_BACKEND", "url": format!("http://{backend}/orders")}}]));
    let gw = start_gateway(&[deployment], false, &[]);
    let body = r#"{"item":"book","count":2}"#;
    let answer = send(
        &gw,
        "POST",
        "/v1/orders",
        &[("Content-Type", "application/json; charset=utf-8")],
        Some(body),
    );
    assert_eq!(answer.status, 200);
    assert_eq!(
        answer.body,
        format!("application/json; charset=utf-8|{body}")
    );
    let refused = send(
        &gw,
        "POST",
        "/v1/orders",
        &[("Content-Type", "text/plain")],
        Some(body),
    );
    assert_eq!(refused.status, 415);
}
