//! `CUSTOM_AUTHENTICATION` end to end: `claimgate serve` calling an authorizer function served
//! on loopback by the test (OCI's input JSON, the output contract, the statuses, caching and
//! single flight, hostile answers), and `claimgate check` judging a recorded answer.

mod support;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::{claimgate, client, now, records, refused_by_serve, start_gateway_on, Gateway};

const FUNCTION: &str = "ocid1.fnfunc.oc1..authorizer";

/// What the function received, and how often it was called.
#[derive(Default)]
struct Seen {
    inputs: Mutex<Vec<Value>>,
    calls: AtomicUsize,
}

impl Seen {
    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
    fn last(&self) -> Value {
        self.inputs
            .lock()
            .unwrap()
            .last()
            .cloned()
            .unwrap_or(Value::Null)
    }
}

fn response(status: u16, body: impl Into<Bytes>) -> hyper::Response<Full<Bytes>> {
    hyper::Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(body.into()))
        .unwrap()
}

/// The authorizer: it answers by the `key` argument (or the single-argument token).
async fn authorize(
    seen: Arc<Seen>,
    request: hyper::Request<hyper::body::Incoming>,
) -> hyper::Response<Full<Bytes>> {
    let body = request.into_body().collect().await.unwrap().to_bytes();
    let input: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    seen.calls.fetch_add(1, Ordering::SeqCst);
    seen.inputs.lock().unwrap().push(input.clone());
    let key = input["data"]["key"]
        .as_str()
        .or(input["token"].as_str())
        .unwrap_or("")
        .to_owned();
    let expires = |seconds: i64| {
        time::OffsetDateTime::from_unix_timestamp(now() + seconds)
            .unwrap()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap()
    };
    let key = key.as_str();
    match key {
        "good" | "Bearer good" => response(
            200,
            json!({"active": true, "principal": "alice", "clientId": "app-1",
                   "scope": "orders:read orders:write", "expiresAt": expires(600),
                   "context": {"user": "alice", "groups": ["a", "b"], "level": 3}})
            .to_string(),
        ),
        "short" => response(
            200,
            json!({"active": true, "scope": ["orders:read"], "expiresAt": expires(1)}).to_string(),
        ),
        "array-scope" => response(
            200,
            json!({"active": true, "scope": ["other", "orders:read"]}).to_string(),
        ),
        "no-scope" => response(200, json!({"active": true, "scope": "other"}).to_string()),
        "bad" => response(
            200,
            json!({"active": false, "wwwAuthenticate": "API-Key realm=\"orders\""}).to_string(),
        ),
        "four" => response(
            403,
            json!({"wwwAuthenticate": "API-Key error=\"forbidden\""}).to_string(),
        ),
        "five" => response(503, json!({"active": true}).to_string()),
        "text" => response(200, "OK, fine"),
        "string-active" => response(200, json!({"active": "true"}).to_string()),
        "huge" => response(200, vec![b' '; 10 * 1024 * 1024]),
        "utf8" => response(
            200,
            &b"{\"active\": true, \"context\": {\"user\": \"\xff\xfe\"}}"[..],
        ),
        "crlf" => response(
            200,
            json!({"active": true, "context": {"user": "mallory\r\nX-Injected: yes"},
                   "wwwAuthenticate": "x"})
            .to_string(),
        ),
        "crlf-denied" => response(
            200,
            json!({"active": false, "wwwAuthenticate": "API-Key\r\nX-Injected: yes"}).to_string(),
        ),
        "slow" => {
            tokio::time::sleep(Duration::from_millis(700)).await;
            response(
                200,
                json!({"active": true, "scope": "orders:read"}).to_string(),
            )
        }
        "stuck" => {
            tokio::time::sleep(Duration::from_secs(5)).await;
            response(200, json!({"active": true}).to_string())
        }
        "modify" => response(
            200,
            json!({"active": false, "context": {"responseCode": "302"}}).to_string(),
        ),
        _ => response(200, json!({"active": false}).to_string()),
    }
}

/// A backend answering with the request headers it received, as a JSON object of lists.
async fn echo(request: hyper::Request<hyper::body::Incoming>) -> hyper::Response<Full<Bytes>> {
    let mut headers = serde_json::Map::new();
    for (name, value) in request.headers() {
        let list = headers
            .entry(name.as_str().to_owned())
            .or_insert_with(|| json!([]));
        list.as_array_mut()
            .unwrap()
            .push(json!(String::from_utf8_lossy(value.as_bytes())));
    }
    response(200, Value::Object(headers).to_string())
}

/// A test's function, backend and gateway.
struct Setup {
    gateway: Gateway,
    seen: Arc<Seen>,
    _rt: tokio::runtime::Runtime,
}

/// The multi-argument policy: `key` from `X-Api-Key`, `tags` from the repeated `X-Tag`,
/// `q` from query `k`, `host` from the Host; cached under `key` only when `cache_key`.
fn multi_policy(cache_key: bool) -> Value {
    let mut policy = json!({
        "type": "CUSTOM_AUTHENTICATION", "functionId": FUNCTION,
        "isAnonymousAccessAllowed": true,
        "parameters": {"key": "request.headers[X-Api-Key]", "tags": "request.headers[X-Tag]",
                       "q": "request.query[k]", "host": "request.host"}
    });
    if cache_key {
        policy["cacheKey"] = json!(["key"]);
    }
    policy
}

fn deployment(policy: Value, backend: &str) -> Value {
    json!({
        "displayName": "orders", "pathPrefix": "/v1",
        "specification": {
            "requestPolicies": {"authentication": policy},
            "routes": [
                {"path": "/orders", "methods": ["GET"],
                 "requestPolicies": {
                    "authorization": {"type": "ANY_OF", "allowedScope": ["orders:read"]},
                    "headerTransformations": {"setHeaders": {"items": [
                        {"name": "X-User", "values": ["${request.auth[user]}"], "ifExists": "OVERWRITE"},
                        {"name": "X-Groups", "values": ["${request.auth[groups]}"], "ifExists": "OVERWRITE"},
                        {"name": "X-Principal", "values": ["${request.auth[principal]}"], "ifExists": "OVERWRITE"},
                        {"name": "X-Client", "values": ["${request.auth[clientId]}"], "ifExists": "OVERWRITE"}
                    ]}}},
                 "backend": {"type": "HTTP_BACKEND", "url": format!("http://{backend}/orders")}},
                {"path": "/open", "methods": ["GET"],
                 "requestPolicies": {"authorization": {"type": "ANONYMOUS"}},
                 "backend": {"type": "STOCK_RESPONSE_BACKEND", "status": 200, "body": "open"}},
                {"path": "/any", "methods": ["GET"],
                 "backend": {"type": "STOCK_RESPONSE_BACKEND", "status": 200, "body": "any"}}
            ]
        }
    })
}

fn start(policy: Value, extra: &[&str]) -> Setup {
    let rt = support::runtime();
    let seen = Arc::new(Seen::default());
    let function = {
        let seen = seen.clone();
        support::serve_http(&rt, move |request| authorize(seen.clone(), request))
    };
    let backend = support::serve_http(&rt, echo);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("orders.json");
    std::fs::write(&file, deployment(policy, &backend.to_string()).to_string()).unwrap();
    let functions = dir.path().join("functions.json");
    std::fs::write(
        &functions,
        json!({FUNCTION: format!("http://{function}/authorize")}).to_string(),
    )
    .unwrap();
    let functions = functions.to_str().unwrap().to_owned();
    let mut args = vec!["--functions", functions.as_str()];
    args.extend_from_slice(extra);
    let gateway = start_gateway_on(dir, &[file], false, &args);
    Setup {
        gateway,
        seen,
        _rt: rt,
    }
}

/// `GET /v1<path>` with these headers: status, headers, body.
fn get(
    gateway: &Gateway,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, reqwest::header::HeaderMap, String) {
    let http = reqwest::blocking::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let mut request = http.get(format!("{}/v1{path}", gateway.base));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, headers, response.text().unwrap())
}

#[test]
fn the_function_gets_ocis_exact_input_and_its_context_reaches_the_backend() {
    let s = start(multi_policy(false), &[]);
    let (status, _, body) = get(
        &s.gateway,
        "/orders?k=one&k=two&other=x",
        &[("X-Api-Key", "good"), ("X-Tag", "t1"), ("X-Tag", "t2")],
    );
    assert_eq!(status, 200, "{body}");
    let input = s.seen.last();
    let host = s.gateway.base.trim_start_matches("http://");
    assert_eq!(
        input,
        json!({"type": "USER_DEFINED",
               "data": {"key": "good", "tags": ["t1", "t2"], "q": ["one", "two"], "host": host}}),
    );
    // context strings as they are, other JSON as JSON text; principal and clientId too.
    let seen: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(seen["x-user"], json!(["alice"]), "{seen}");
    assert_eq!(seen["x-groups"], json!(["[\"a\",\"b\"]"]), "{seen}");
    assert_eq!(seen["x-principal"], json!(["alice"]), "{seen}");
    assert_eq!(seen["x-client"], json!(["app-1"]), "{seen}");

    // An absent argument is omitted, not null.
    let (status, _, _) = get(&s.gateway, "/orders", &[("X-Api-Key", "array-scope")]);
    assert_eq!(status, 200);
    assert_eq!(
        s.seen.last(),
        json!({"type": "USER_DEFINED", "data": {"key": "array-scope", "host": host}})
    );
}

#[test]
fn scope_missing_is_403_and_a_refusal_is_401_with_the_functions_challenge() {
    let s = start(multi_policy(false), &[]);
    let (status, headers, body) = get(&s.gateway, "/orders", &[("X-Api-Key", "no-scope")]);
    assert_eq!(status, 403);
    assert_eq!(body, r#"{"message":"Forbidden","code":403}"#);
    assert_eq!(
        headers["www-authenticate"],
        r#"Bearer error="insufficient_scope""#
    );

    let (status, headers, body) = get(&s.gateway, "/orders", &[("X-Api-Key", "bad")]);
    assert_eq!(status, 401);
    assert_eq!(body, r#"{"message":"Unauthorized","code":401}"#);
    assert_eq!(headers["www-authenticate"], r#"API-Key realm="orders""#);
    let id = headers["opc-request-id"].to_str().unwrap().to_owned();
    let codes: Vec<String> = records(&s.gateway.execution_log, &id, 3)
        .iter()
        .map(|r| r["data"]["code"].as_str().unwrap_or("").to_owned())
        .collect();
    assert!(
        codes.contains(&"customAuthentication.cacheMiss".to_owned()),
        "{codes:?}"
    );
    assert!(
        codes.contains(&"customAuthentication.successfulFunctionInvocation".to_owned()),
        "{codes:?}"
    );
    assert!(
        codes.contains(&"customAuthentication.authenticationFailed".to_owned()),
        "{codes:?}"
    );

    // A 4xx from the function is a refusal too, with its challenge.
    let (status, headers, _) = get(&s.gateway, "/orders", &[("X-Api-Key", "four")]);
    assert_eq!(status, 401);
    assert_eq!(headers["www-authenticate"], r#"API-Key error="forbidden""#);

    // An anonymous route lets a refused request through, unauthenticated.
    let (status, _, body) = get(&s.gateway, "/open", &[("X-Api-Key", "bad")]);
    assert_eq!((status, body.as_str()), (200, "open"));
    // AUTHENTICATION_ONLY (the default) needs no scope.
    let (status, _, body) = get(&s.gateway, "/any", &[("X-Api-Key", "no-scope")]);
    assert_eq!((status, body.as_str()), (200, "any"));
}

#[test]
fn no_argument_means_401_without_a_call() {
    // Host is always there, so this policy reads only headers and the query.
    let policy = json!({
        "type": "CUSTOM_AUTHENTICATION", "functionId": FUNCTION, "isAnonymousAccessAllowed": true,
        "parameters": {"key": "request.headers[X-Api-Key]", "q": "request.query[k]"}
    });
    let s = start(policy, &[]);
    let (status, headers, _) = get(&s.gateway, "/orders", &[("X-Other", "good")]);
    assert_eq!(status, 401);
    assert_eq!(
        headers["www-authenticate"],
        r#"Bearer error="invalid_token""#
    );
    assert_eq!(s.seen.calls(), 0);
}

#[test]
fn function_failures_are_502_and_never_cached() {
    let s = start(multi_policy(false), &["--function-timeout", "1"]);
    for key in ["five", "text", "string-active", "huge", "utf8", "stuck"] {
        let started = std::time::Instant::now();
        let (status, _, body) = get(&s.gateway, "/orders", &[("X-Api-Key", key)]);
        assert_eq!(status, 502, "{key}: {body}");
        assert_eq!(body, r#"{"message":"Bad Gateway","code":502}"#, "{key}");
        assert!(started.elapsed() < Duration::from_secs(4), "{key}");
    }
    // Failures are asked again (not kept).
    let before = s.seen.calls();
    let (status, headers, _) = get(&s.gateway, "/orders", &[("X-Api-Key", "five")]);
    assert_eq!(status, 502);
    assert_eq!(s.seen.calls(), before + 1);
    let id = headers["opc-request-id"].to_str().unwrap().to_owned();
    let record = records(&s.gateway.execution_log, &id, 2)
        .into_iter()
        .find(|r| r["data"]["code"] == "customAuthentication.failedFunctionInvocation")
        .expect("a failedFunctionInvocation record");
    assert_eq!(record["data"]["level"], "ERROR");
    assert_eq!(
        record["data"]["message"],
        "Authorizer function could not be called: it answered HTTP 503."
    );
}

#[test]
fn a_closed_connection_or_no_listener_is_502() {
    // A "function" that accepts and closes at once, and a port nothing listens on.
    let closing = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closing_addr = closing.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in closing.incoming() {
            drop(stream);
        }
    });
    let nothing = support::free_port();
    for url in [
        format!("http://{closing_addr}/authorize"),
        format!("http://127.0.0.1:{nothing}/authorize"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("orders.json");
        std::fs::write(
            &file,
            deployment(multi_policy(false), "127.0.0.1:9").to_string(),
        )
        .unwrap();
        let functions = dir.path().join("functions.json");
        std::fs::write(&functions, json!({FUNCTION: url}).to_string()).unwrap();
        let functions = functions.to_str().unwrap().to_owned();
        let gateway = start_gateway_on(dir, &[file], false, &["--functions", &functions]);
        let (status, _, body) = get(&gateway, "/orders", &[("X-Api-Key", "good")]);
        assert_eq!(status, 502, "{url}: {body}");
    }
}

#[test]
fn answers_are_cached_for_at_least_60_seconds_and_refusals_too() {
    let s = start(multi_policy(false), &[]);
    for _ in 0..3 {
        assert_eq!(get(&s.gateway, "/orders", &[("X-Api-Key", "good")]).0, 200);
    }
    assert_eq!(s.seen.calls(), 1);
    // expiresAt one second away is kept 60 s, not 1 s.
    assert_eq!(get(&s.gateway, "/orders", &[("X-Api-Key", "short")]).0, 200);
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(get(&s.gateway, "/orders", &[("X-Api-Key", "short")]).0, 200);
    assert_eq!(s.seen.calls(), 2);
    // Other arguments are another key.
    assert_eq!(
        get(&s.gateway, "/orders?k=x", &[("X-Api-Key", "good")]).0,
        200
    );
    assert_eq!(s.seen.calls(), 3);
    // A refusal is kept (10 s).
    for _ in 0..2 {
        assert_eq!(get(&s.gateway, "/orders", &[("X-Api-Key", "bad")]).0, 401);
    }
    assert_eq!(s.seen.calls(), 4);
}

#[test]
fn cache_key_names_the_arguments_answers_are_kept_under() {
    let s = start(multi_policy(true), &[]);
    assert_eq!(
        get(&s.gateway, "/orders?k=1", &[("X-Api-Key", "good")]).0,
        200
    );
    assert_eq!(
        get(
            &s.gateway,
            "/orders?k=2",
            &[("X-Api-Key", "good"), ("X-Tag", "t")]
        )
        .0,
        200
    );
    assert_eq!(s.seen.calls(), 1, "cacheKey is only 'key'");
    assert_eq!(get(&s.gateway, "/orders", &[("X-Api-Key", "bad")]).0, 401);
    assert_eq!(s.seen.calls(), 2);
}

#[test]
fn one_call_is_in_flight_per_key_however_many_requests_wait() {
    let s = start(multi_policy(false), &[]);
    let base = s.gateway.base.clone();
    let statuses: Vec<u16> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let base = base.clone();
                scope.spawn(move || {
                    client()
                        .get(format!("{base}/v1/orders"))
                        .header("X-Api-Key", "slow")
                        .send()
                        .unwrap()
                        .status()
                        .as_u16()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(statuses, vec![200; 8]);
    assert_eq!(s.seen.calls(), 1);
}

#[test]
fn single_argument_mode_sends_the_raw_header() {
    let policy = json!({"type": "CUSTOM_AUTHENTICATION", "functionId": FUNCTION,
                        "isAnonymousAccessAllowed": true, "tokenHeader": "Authorization"});
    let s = start(policy, &[]);
    let (status, _, _) = get(&s.gateway, "/orders", &[("Authorization", "Bearer good")]);
    assert_eq!(status, 200);
    assert_eq!(
        s.seen.last(),
        json!({"type": "TOKEN", "token": "Bearer good"})
    );
    let (status, _, _) = get(&s.gateway, "/orders", &[]);
    assert_eq!(status, 401);
    assert_eq!(s.seen.calls(), 1);

    let policy = json!({"type": "CUSTOM_AUTHENTICATION", "functionId": FUNCTION,
                        "isAnonymousAccessAllowed": true, "tokenQueryParam": "key"});
    let s = start(policy, &[]);
    let (status, _, _) = get(&s.gateway, "/orders?key=good", &[]);
    assert_eq!(status, 200);
    assert_eq!(s.seen.last(), json!({"type": "TOKEN", "token": "good"}));
    // The parameter read as a credential is redacted in the access log.
    let log = std::fs::read_to_string(&s.gateway.access_log).unwrap_or_default();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let mut log = log;
    while !log.contains("/v1/orders") && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        log = std::fs::read_to_string(&s.gateway.access_log).unwrap_or_default();
    }
    assert!(log.contains("key=[redacted]"), "{log}");
    assert!(!log.contains("key=good"), "{log}");
}

#[test]
fn a_context_value_with_crlf_is_never_sent_in_a_header() {
    let s = start(multi_policy(false), &[]);
    let (status, _, body) = get(&s.gateway, "/orders", &[("X-Api-Key", "crlf")]);
    // The crlf answer has no scope: ANY_OF refuses; the AUTHENTICATION_ONLY route shows the
    // headers a transformation would send... but /any is a stock response. Use the scope-free
    // check on the refusal and judge the header on a route that forwards.
    assert_eq!(status, 403, "{body}");
    let policy = multi_policy(false);
    drop(s);
    // Same deployment, but the forwarding route only needs authentication.
    let rt = support::runtime();
    let seen = Arc::new(Seen::default());
    let function = {
        let seen = seen.clone();
        support::serve_http(&rt, move |request| authorize(seen.clone(), request))
    };
    let backend = support::serve_http(&rt, echo);
    let mut spec = deployment(policy, &backend.to_string());
    spec["specification"]["routes"][0]["requestPolicies"]["authorization"] =
        json!({"type": "AUTHENTICATION_ONLY"});
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("orders.json");
    std::fs::write(&file, spec.to_string()).unwrap();
    let functions = dir.path().join("functions.json");
    std::fs::write(
        &functions,
        json!({FUNCTION: format!("http://{function}/authorize")}).to_string(),
    )
    .unwrap();
    let functions = functions.to_str().unwrap().to_owned();
    let gateway = start_gateway_on(dir, &[file], false, &["--functions", &functions]);
    let (status, _, body) = get(
        &gateway,
        "/orders",
        &[("X-Api-Key", "crlf"), ("X-User", "client")],
    );
    assert_eq!(status, 200, "{body}");
    let seen_headers: Value = serde_json::from_str(&body).unwrap();
    assert!(seen_headers.get("x-injected").is_none(), "{seen_headers}");
    // Neither the forged value nor the client's own X-User reaches the backend.
    assert!(seen_headers.get("x-user").is_none(), "{seen_headers}");

    // A challenge with CR/LF is not sent either: the stock one stays.
    let (status, headers, _) = get(&gateway, "/orders", &[("X-Api-Key", "crlf-denied")]);
    assert_eq!(status, 401);
    assert_eq!(
        headers["www-authenticate"],
        r#"Bearer error="invalid_token""#
    );
    assert!(headers.get("x-injected").is_none());
}

#[test]
fn modify_response_applies_with_the_functions_context() {
    let mut policy = multi_policy(false);
    policy["validationFailurePolicy"] = json!({
        "type": "MODIFY_RESPONSE", "responseCode": "request.auth[responseCode]",
        "responseMessage": "please log in",
        "responseHeaderTransformations": {"setHeaders": {"items": [
            {"name": "Location", "values": ["/login"], "ifExists": "OVERWRITE"}]}}
    });
    let s = start(policy, &[]);
    let (status, headers, body) = get(&s.gateway, "/orders", &[("X-Api-Key", "modify")]);
    assert_eq!(status, 302);
    assert_eq!(headers["location"], "/login");
    assert_eq!(body, "please log in");
    // Without a responseCode in the context: 401.
    let (status, _, body) = get(&s.gateway, "/orders", &[("X-Api-Key", "bad")]);
    assert_eq!((status, body.as_str()), (401, "please log in"));
}

#[test]
fn a_function_missing_from_the_map_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("orders.json");
    std::fs::write(
        &file,
        deployment(multi_policy(false), "127.0.0.1:9").to_string(),
    )
    .unwrap();
    let file = file.to_str().unwrap();
    let stderr = refused_by_serve(&["--deployment", file]);
    assert!(stderr.contains("give --functions FILE"), "{stderr}");
    assert!(stderr.contains(FUNCTION), "{stderr}");
}

/// `check` on a recorded answer: text and JSON, allowed and refused.
#[test]
fn check_explains_a_recorded_answer() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("orders.json");
    std::fs::write(
        &file,
        deployment(multi_policy(false), "127.0.0.1:9").to_string(),
    )
    .unwrap();
    let file = file.to_str().unwrap();
    let write = |name: &str, value: Value| {
        let path = dir.path().join(name);
        std::fs::write(&path, value.to_string()).unwrap();
        path.to_str().unwrap().to_owned()
    };
    let allow = write(
        "allow.json",
        json!({"active": true, "scope": ["orders:read"], "context": {"user": "alice"}}),
    );
    let deny = write(
        "deny.json",
        json!({"active": false, "wwwAuthenticate": "API-Key"}),
    );
    let scope = write("scope.json", json!({"active": true, "scope": "other"}));
    let run = |answer: &str, output: &str| {
        claimgate(&[
            "check",
            "--deployment",
            file,
            "--request",
            "GET /v1/orders",
            "--header",
            "X-Api-Key: abc",
            "--function-response",
            answer,
            "--output",
            output,
        ])
    };

    let out = run(&allow, "json");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["decision"], "allow");
    let checks: Vec<(&str, &str)> = doc["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["check"].as_str().unwrap(), c["result"].as_str().unwrap()))
        .collect();
    assert_eq!(
        checks,
        [("token", "pass"), ("function", "pass"), ("scope", "pass")]
    );
    assert_eq!(doc["function"]["input"]["data"]["key"], "abc");
    assert_eq!(doc["function"]["answer"]["context"]["user"], "alice");

    let out = run(&deny, "json");
    assert_eq!(out.status.code(), Some(1));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["status"], 401);
    assert_eq!(doc["checks"][1]["check"], "function");
    assert_eq!(
        doc["checks"][1]["message"],
        "Authorizer function denied the request."
    );
    assert!(doc["checks"][1]["fix"].as_str().unwrap().contains("active"));

    let out = run(&scope, "text");
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("DENY  403"), "{text}");
    assert!(text.contains("FAIL scope"), "{text}");
    assert!(
        text.contains("Authorization failed for the request."),
        "{text}"
    );
    assert!(text.contains("\"USER_DEFINED\""), "{text}");

    // An argument read from the query is a credential: never shown in the request line.
    let out = claimgate(&[
        "check",
        "--deployment",
        file,
        "--request",
        "GET /v1/orders?k=s3cret&x=1",
        "--function-response",
        &allow,
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("  request     GET /v1/orders?k=[redacted]&x=1\n"),
        "{text}"
    );

    // No argument: refused without a call (and without --functions).
    let out = claimgate(&[
        "check",
        "--deployment",
        file,
        "--request",
        "GET /v1/orders",
        "--output",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["checks"][0]["result"], "fail");
    assert!(doc["function"].is_null());

    // A recorded answer that breaks the contract: could not evaluate (exit 3), 502.
    let broken = write("broken.json", json!({"active": "yes"}));
    let out = run(&broken, "json");
    assert_eq!(out.status.code(), Some(3));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["status"], 502);
    assert_eq!(
        doc["checks"][1]["message"],
        "Authorizer function could not be called: 'active' is a string, not a boolean."
    );
}

#[test]
fn a_dynamic_authentication_server_may_be_an_authorizer_function() {
    let signer = support::Signer::new("k1");
    let jwt_server = json!({
        "type": "JWT_AUTHENTICATION", "tokenHeader": "Authorization", "tokenAuthScheme": "Bearer",
        "issuers": ["https://idp"], "audiences": ["orders"],
        "publicKeys": {"type": "STATIC_KEYS", "keys": [signer.static_key()]}
    });
    let mut custom = multi_policy(false);
    custom
        .as_object_mut()
        .unwrap()
        .remove("isAnonymousAccessAllowed");
    let rt = support::runtime();
    let seen = Arc::new(Seen::default());
    let function = {
        let seen = seen.clone();
        support::serve_http(&rt, move |request| authorize(seen.clone(), request))
    };
    let file = json!({
        "displayName": "orders", "pathPrefix": "/v1",
        "specification": {
            "requestPolicies": {"dynamicAuthentication": {
                "selectionSource": {"type": "SINGLE", "selector": "request.headers[X-Tenant]"},
                "authenticationServers": [
                    {"key": {"type": "ANY_OF", "name": "keys", "values": ["fn"]},
                     "authenticationServerDetail": custom},
                    {"key": {"type": "ANY_OF", "name": "jwt", "values": ["jwt"], "isDefault": true},
                     "authenticationServerDetail": jwt_server}
                ]
            }},
            "routes": [{"path": "/orders", "methods": ["GET"],
                        "backend": {"type": "STOCK_RESPONSE_BACKEND", "status": 200, "body": "orders"}}]
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("orders.json");
    std::fs::write(&path, file.to_string()).unwrap();
    let functions = dir.path().join("functions.json");
    std::fs::write(
        &functions,
        json!({FUNCTION: format!("http://{function}/authorize")}).to_string(),
    )
    .unwrap();
    let functions = functions.to_str().unwrap().to_owned();
    let gateway = start_gateway_on(dir, &[path], false, &["--functions", &functions]);
    let (status, _, _) = get(
        &gateway,
        "/orders",
        &[("X-Tenant", "fn"), ("X-Api-Key", "good")],
    );
    assert_eq!(status, 200);
    let (status, _, _) = get(
        &gateway,
        "/orders",
        &[("X-Tenant", "fn"), ("X-Api-Key", "bad")],
    );
    assert_eq!(status, 401);
    assert_eq!(seen.calls(), 2);
    // The JWT server never calls the function.
    let token = signer.token(json!({"iss": "https://idp", "aud": "orders", "exp": now() + 600}));
    let bearer = format!("Bearer {token}");
    let (status, _, _) = get(
        &gateway,
        "/orders",
        &[("X-Tenant", "jwt"), ("Authorization", &bearer)],
    );
    assert_eq!(status, 200);
    let (status, _, _) = get(&gateway, "/orders", &[("X-Api-Key", "good")]);
    assert_eq!(status, 401, "the default (JWT) server has no token");
    assert_eq!(seen.calls(), 2);
}

/// Without --function-response, `check` calls the function the functions file maps (and says
/// so on stderr), as the gateway would.
#[test]
fn check_calls_the_function_when_no_answer_is_recorded() {
    let rt = support::runtime();
    let seen = Arc::new(Seen::default());
    let function = {
        let seen = seen.clone();
        support::serve_http(&rt, move |request| authorize(seen.clone(), request))
    };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("orders.json");
    std::fs::write(
        &file,
        deployment(multi_policy(false), "127.0.0.1:9").to_string(),
    )
    .unwrap();
    let functions = dir.path().join("functions.json");
    std::fs::write(
        &functions,
        json!({FUNCTION: format!("http://{function}/authorize")}).to_string(),
    )
    .unwrap();
    let (file, functions) = (file.to_str().unwrap(), functions.to_str().unwrap());
    let out = claimgate(&[
        "check",
        "--deployment",
        file,
        "--request",
        "GET /v1/orders",
        "--header",
        "X-Api-Key: bad",
        "--functions",
        functions,
        "--output",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("calling http://{function}/authorize")),
        "{stderr}"
    );
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        doc["function"]["answer"]["wwwAuthenticate"],
        "API-Key realm=\"orders\""
    );
    assert_eq!(doc["checks"][1]["result"], "fail");
    assert_eq!(seen.calls(), 1);

    // An unmapped function: a warning, and exit 3 (no answer to judge).
    let out = claimgate(&[
        "check",
        "--deployment",
        file,
        "--request",
        "GET /v1/orders",
        "--header",
        "X-Api-Key: good",
        "--output",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(3));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(doc["warnings"].to_string().contains("needs a URL"), "{doc}");
    assert_eq!(doc["status"], 502);

    // validate warns about a function the functions file lacks, and not once it is mapped.
    let other = dir.path().join("other.json");
    std::fs::write(
        &other,
        r#"{"ocid1.fnfunc.oc1..other": "http://127.0.0.1:9/"}"#,
    )
    .unwrap();
    let out = claimgate(&["validate", file, "--functions", other.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!(
            "function '{FUNCTION}' is not in the --functions file"
        )),
        "{text}"
    );
    let out = claimgate(&["validate", file, "--functions", functions]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains("is not in the --functions file"), "{text}");
    assert!(text.contains(&format!("ok {functions}\n")), "{text}");
    // A bad functions file is reported with its errors (exit 2).
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, r#"{"ocid1.fnfunc.oc1..x": 1}"#).unwrap();
    let out = claimgate(&["validate", file, "--functions", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("expected the function's URL"), "{text}");
}

/// The walkthrough in examples/authorizer works as its README says: the Python function, the
/// deployment and the functions file (their port moved to a free one).
#[test]
fn the_example_authorizer_works_as_its_readme_says() {
    let port = support::free_port();
    let example = support::repo().join("examples/authorizer");
    let child = std::process::Command::new(support::python())
        .arg(example.join("authorizer.py"))
        .arg(port.to_string())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
    let Ok(child) = child else {
        support::skip(
            "the_example_authorizer_works_as_its_readme_says",
            "no python3",
        );
        return;
    };
    let _function = support::Running(child);
    support::wait_for(&format!("127.0.0.1:{port}"));
    let dir = tempfile::tempdir().unwrap();
    let moved = |name: &str| {
        let text = std::fs::read_to_string(example.join(name))
            .unwrap()
            .replace("127.0.0.1:8081", &format!("127.0.0.1:{port}"));
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let deployment = moved("deployment.json");
    let functions = moved("functions.json");
    let functions = functions.to_str().unwrap().to_owned();
    let logs = tempfile::tempdir().unwrap();
    let gateway = start_gateway_on(logs, &[deployment], false, &["--functions", &functions]);
    let (status, headers, _) = get(&gateway, "/orders", &[("X-Api-Key", "wrong")]);
    assert_eq!(status, 401);
    assert_eq!(headers["www-authenticate"], r#"API-Key realm="orders""#);
    let (status, _, body) = get(&gateway, "/orders", &[("X-Api-Key", "k-bob")]);
    assert_eq!(status, 200);
    assert_eq!(
        body,
        r#"{"backend saw": {"X-User": "bob", "X-Plan": "gold"}}"#
    );
    let http = client();
    let post = |key: &str| {
        http.post(format!("{}/v1/orders", gateway.base))
            .header("X-Api-Key", key)
            .send()
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(post("k-bob"), 403);
    assert_eq!(post("k-alice"), 201);
}

/// CORS `*` with credentials echoes any origin: refused where an authorizer reads `Cookie`
/// (the browser sends it by itself), as with mutual TLS.
#[test]
fn cors_any_origin_with_credentials_is_refused_when_the_authorizer_reads_cookie() {
    let mut policy = multi_policy(false);
    policy["parameters"]["session"] = json!("request.headers[Cookie]");
    let mut file = deployment(policy, "127.0.0.1:9");
    file["specification"]["requestPolicies"]["cors"] =
        json!({"allowedOrigins": ["*"], "isAllowCredentialsEnabled": true});
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("orders.json");
    std::fs::write(&path, file.to_string()).unwrap();
    let functions = dir.path().join("functions.json");
    std::fs::write(
        &functions,
        json!({FUNCTION: "http://127.0.0.1:9/"}).to_string(),
    )
    .unwrap();
    let stderr = refused_by_serve(&[
        "--deployment",
        path.to_str().unwrap(),
        "--functions",
        functions.to_str().unwrap(),
    ]);
    assert!(stderr.contains("an authorizer reading Cookie"), "{stderr}");
}

/// A backend answering with the body it received.
async fn echo_body(request: hyper::Request<hyper::body::Incoming>) -> hyper::Response<Full<Bytes>> {
    let body = request.into_body().collect().await.unwrap().to_bytes();
    response(200, body)
}

#[test]
fn request_body_is_given_to_the_function_and_still_reaches_the_backend() {
    let rt = support::runtime();
    let seen = Arc::new(Seen::default());
    let function = {
        let seen = seen.clone();
        support::serve_http(&rt, move |request| authorize(seen.clone(), request))
    };
    let backend = support::serve_http(&rt, echo_body);
    let dir = tempfile::tempdir().unwrap();
    let policy = json!({
        "type": "CUSTOM_AUTHENTICATION", "functionId": FUNCTION,
        "parameters": {"key": "request.headers[X-Api-Key]", "payload": "request.body"}
    });
    let spec = json!({
        "displayName": "orders", "pathPrefix": "/v1",
        "specification": {
            "requestPolicies": {"authentication": policy},
            "routes": [{"path": "/orders", "methods": ["POST"],
                        "backend": {"type": "HTTP_BACKEND", "url": format!("http://{backend}/orders")}}]
        }
    });
    let file = dir.path().join("orders.json");
    std::fs::write(&file, spec.to_string()).unwrap();
    let functions = dir.path().join("functions.json");
    std::fs::write(
        &functions,
        json!({FUNCTION: format!("http://{function}/authorize")}).to_string(),
    )
    .unwrap();
    let functions = functions.to_str().unwrap().to_owned();
    let gateway = start_gateway_on(
        tempfile::tempdir().unwrap(),
        std::slice::from_ref(&file),
        false,
        &["--functions", &functions],
    );
    let http = client();
    let post = |key: &str, body: Vec<u8>| {
        http.post(format!("{}/v1/orders", gateway.base))
            .header("X-Api-Key", key)
            .header("Content-Type", "application/json")
            .body(body)
            .send()
            .unwrap()
    };

    // The body is the `payload` argument, and the backend still gets it whole.
    let answer = post("good", br#"{"item":"book"}"#.to_vec());
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.text().unwrap(), r#"{"item":"book"}"#);
    assert_eq!(
        seen.last(),
        json!({"type": "USER_DEFINED", "data": {"key": "good", "payload": "{\"item\":\"book\"}"}})
    );
    assert_eq!(seen.calls(), 1);

    // OCI caches answers under every argument but request.body: another body, same key, no call.
    let answer = post("good", br#"{"item":"pen"}"#.to_vec());
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.text().unwrap(), r#"{"item":"pen"}"#);
    assert_eq!(seen.calls(), 1);

    // Above 6 MiB the body is not read whole: 413 and a record, and the function is not
    // called. The head alone declares it (a client still sending would see its connection
    // reset by the close that follows an answer given before the body was read).
    let id = {
        use std::io::{Read as _, Write as _};
        let address = gateway.base.trim_start_matches("http://");
        let mut stream = std::net::TcpStream::connect(address).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        write!(
            stream,
            "POST /v1/orders HTTP/1.1\r\nHost: {address}\r\nX-Api-Key: other\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            6 * 1024 * 1024 + 1
        )
        .unwrap();
        let mut head = [0u8; 4096];
        let n = stream.read(&mut head).unwrap();
        let head = String::from_utf8_lossy(&head[..n]).into_owned();
        assert!(head.starts_with("HTTP/1.1 413"), "{head}");
        head.lines()
            .find_map(|l| l.strip_prefix("opc-request-id: "))
            .unwrap()
            .trim()
            .to_owned()
    };
    let found = records(&gateway.execution_log, &id, 1);
    assert!(
        found
            .iter()
            .any(|r| r["data"]["code"] == "request.bodyInvalid"
                && r["data"]["message"]
                    .as_str()
                    .unwrap()
                    .contains("request.body")),
        "{found:?}"
    );
    assert_eq!(seen.calls(), 1);

    // check gives the function the --data text as request.body (a live call).
    let out = claimgate(&[
        "check",
        "--deployment",
        file.to_str().unwrap(),
        "--functions",
        &functions,
        "--request",
        "POST /v1/orders",
        "--header",
        "X-Api-Key: good",
        "--data",
        r#"{"item":"cup"}"#,
        "--output",
        "json",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        doc["function"]["input"]["data"]["payload"], r#"{"item":"cup"}"#,
        "{doc}"
    );
}
