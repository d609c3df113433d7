//! The admin listener's troubleshooting API (SPEC "Troubleshooting in the browser, and
//! `claimgate try`"): `/api/check` agrees with `check -o json`; `/api/requests/<id>` holds the
//! records the logs have (never a token); the protections (Host, JSON-only bodies, CSP, no
//! page on a non-loopback address without `--admin-ui`); `try --admin`.

mod support;

use serde_json::{json, Value};
use support::{client, now, start_gateway, Signer};

const ISSUER: &str = "https://issuer.example";

fn deployments(signer: &Signer) -> Vec<Value> {
    let stock = json!({"type": "STOCK_RESPONSE_BACKEND", "status": 200, "body": "stock"});
    vec![
        json!({
            "displayName": "orders",
            "pathPrefix": "/v1",
            "specification": {
                "requestPolicies": {"authentication": {
                    "type": "JWT_AUTHENTICATION",
                    "tokenHeader": "Authorization", "tokenAuthScheme": "Bearer",
                    "issuers": [ISSUER], "audiences": ["api"],
                    "verifyClaims": [{"key": "tenant", "values": ["acme"], "isRequired": true}],
                    "publicKeys": {"type": "STATIC_KEYS", "keys": [signer.static_key()]}
                }},
                "routes": [{"path": "/private", "methods": ["GET"], "backend": stock}]
            }
        }),
        json!({
            "pathPrefix": "/q",
            "specification": {
                "requestPolicies": {"authentication": {
                    "type": "JWT_AUTHENTICATION",
                    "tokenQueryParam": "access_token",
                    "issuers": [ISSUER], "audiences": ["api"],
                    "publicKeys": {"type": "STATIC_KEYS", "keys": [signer.static_key()]}
                }},
                "routes": [{"path": "/query", "methods": ["GET"], "backend": stock}]
            }
        }),
    ]
}

fn post_check(admin: &str, body: &Value) -> (u16, Value) {
    let answer = client()
        .post(format!("{admin}/api/check"))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .unwrap();
    (answer.status().as_u16(), answer.json().unwrap())
}

#[test]
fn api_check_is_exactly_check_output_json() {
    let signer = Signer::new("k1");
    let files_dir = tempfile::tempdir().unwrap();
    let files = support::write_deployments(files_dir.path(), &deployments(&signer));
    let gateway = start_gateway(&deployments(&signer), true, &[]);
    let admin = gateway.admin.clone().unwrap();
    let at = now().to_string();
    let good =
        signer.token(json!({"iss": ISSUER, "aud": "api", "tenant": "acme", "exp": now() + 600}));
    let wrong = signer.token(json!({"iss": "https://other", "aud": "web", "exp": now() - 600}));
    let cases = [
        ("GET /v1/private", Some(good.as_str()), 0),
        ("GET /v1/private", Some(wrong.as_str()), 1),
        ("GET /v1/private", None, 1),
        ("POST /v1/private", Some(good.as_str()), 1),
        ("GET /v1/nowhere?x=1", Some(good.as_str()), 1),
        ("GET /v1/private", Some("not-a-jwt"), 1),
    ];
    for (request, token, code) in cases {
        let mut args = vec![
            "check",
            "--deployment",
            files[0].to_str().unwrap(),
            "--request",
            request,
            "--now",
            &at,
            "--header",
            "X-Trace: 42",
            "-o",
            "json",
        ];
        if let Some(token) = token {
            args.extend(["--token", token]);
        }
        let out = support::claimgate(&args);
        assert_eq!(out.status.code(), Some(code), "{request}");
        let expected: Value = serde_json::from_slice(&out.stdout).unwrap();
        let mut body = json!({"deployment": "/v1", "request": request, "now": at,
                              "headers": {"X-Trace": "42"}});
        if let Some(token) = token {
            body["token"] = json!(token);
        }
        let (status, actual) = post_check(&admin, &body);
        assert_eq!(status, 200, "{actual}");
        assert_eq!(actual, expected, "{request} {token:?}");
    }
    // `now` as a number is the same moment.
    let (_, as_number) = post_check(
        &admin,
        &json!({"deployment": "/v1", "request": "GET /v1/private", "token": good,
                "now": at.parse::<i64>().unwrap(), "headers": {"X-Trace": "42"}}),
    );
    let (_, as_text) = post_check(
        &admin,
        &json!({"deployment": "/v1", "request": "GET /v1/private", "token": good,
                "now": at, "headers": {"X-Trace": "42"}}),
    );
    assert_eq!(as_number, as_text);
    // By deploymentId and by label, too; a query-parameter deployment gets the token there.
    let (_, by_label) = post_check(
        &admin,
        &json!({"deployment": "orders", "request": "GET /v1/private", "token": good}),
    );
    assert_eq!(by_label["decision"], "allow", "{by_label}");
    let (_, query) = post_check(
        &admin,
        &json!({"deployment": "/q", "request": "GET /q/query", "token": good}),
    );
    assert_eq!(query["decision"], "allow", "{query}");

    // Bad inputs: 400 with the error document.
    for body in [
        json!({"deployment": "/nope", "request": "GET /v1/private"}),
        json!({"request": "GET /v1/private"}),
        json!({"deployment": "/v1", "request": "nonsense"}),
        json!({"deployment": "/v1", "request": "GET /v1/private", "now": "yesterday"}),
        json!({"deployment": "/v1", "request": "GET /v1/private", "now": [1]}),
        json!({"deployment": "/v1", "request": "GET /v1/private", "surprise": 1}),
        json!({"deployment": "/v1", "request": "GET /v1/private", "headers": {"Bad:Name": "x"}}),
        json!({"deployment": "/v1", "request": "GET /v1/private", "headers": {"X": "a\r\nb"}}),
        json!([1, 2]),
    ] {
        let (status, document) = post_check(&admin, &body);
        assert_eq!(status, 400, "{body}: {document}");
        assert!(
            document["error"]["message"].as_str().is_some(),
            "{document}"
        );
    }
    // A token as @FILE is a token, never a file to read.
    let (status, document) = post_check(
        &admin,
        &json!({"deployment": "/v1", "request": "GET /v1/private", "token": "@/etc/passwd"}),
    );
    assert_eq!(status, 200);
    assert!(!document.to_string().contains("root:"), "{document}");
}

#[test]
fn the_api_refuses_foreign_hosts_and_bodies_that_are_not_json() {
    let signer = Signer::new("k1");
    let gateway = start_gateway(&deployments(&signer), true, &[]);
    let admin = gateway.admin.clone().unwrap();
    let port = admin.rsplit(':').next().unwrap().to_owned();
    let http = client();
    let body = json!({"deployment": "/v1", "request": "GET /v1/private"}).to_string();

    // DNS rebinding: a page of another site, resolved to this address, sends its own Host.
    for path in ["/", "/troubleshoot.js", "/api/deployments", "/api/requests"] {
        let answer = http
            .get(format!("{admin}{path}"))
            .header("host", format!("evil.example:{port}"))
            .send()
            .unwrap();
        assert_eq!(answer.status(), 403, "{path}");
    }
    let answer = http
        .post(format!("{admin}/api/check"))
        .header("host", "evil.example")
        .header("content-type", "application/json")
        .body(body.clone())
        .send()
        .unwrap();
    assert_eq!(answer.status(), 403);
    // The probes answer whatever the Host (Kubernetes sends the pod address).
    let answer = http
        .get(format!("{admin}/livez"))
        .header("host", "evil.example")
        .send()
        .unwrap();
    assert_eq!(answer.status(), 200);
    // localhost is fine.
    let answer = http
        .get(format!("{admin}/api/deployments"))
        .header("host", format!("localhost:{port}"))
        .send()
        .unwrap();
    assert_eq!(answer.status(), 200);

    // A cross-site form can send these without a preflight: refused.
    for content_type in [
        "application/x-www-form-urlencoded",
        "text/plain",
        "multipart/form-data; boundary=x",
    ] {
        let answer = http
            .post(format!("{admin}/api/check"))
            .header("content-type", content_type)
            .body(body.clone())
            .send()
            .unwrap();
        assert_eq!(answer.status(), 415, "{content_type}");
        let document: Value = answer.json().unwrap();
        assert!(document["error"]["message"]
            .as_str()
            .unwrap()
            .contains("application/json"));
    }
    let answer = http
        .post(format!("{admin}/api/check"))
        .body(body.clone())
        .send()
        .unwrap();
    assert_eq!(answer.status(), 415, "no content type");
    let answer = http
        .post(format!("{admin}/api/check"))
        .header("content-type", "application/json; charset=utf-8")
        .body(body.clone())
        .send()
        .unwrap();
    assert_eq!(answer.status(), 200, "a charset is fine");
    // Huge bodies are refused before they are parsed.
    let answer = http
        .post(format!("{admin}/api/check"))
        .header("content-type", "application/json")
        .body(vec![b' '; 300 * 1024])
        .send()
        .unwrap();
    assert_eq!(answer.status(), 413);
    // Wrong methods.
    let answer = http.get(format!("{admin}/api/check")).send().unwrap();
    assert_eq!(answer.status(), 405);
    let answer = http
        .delete(format!("{admin}/api/deployments"))
        .send()
        .unwrap();
    assert_eq!(answer.status(), 405);

    // Every page answer: same-origin assets only, never framed or cached.
    for path in [
        "/",
        "/troubleshoot.css",
        "/troubleshoot.js",
        "/api/deployments",
    ] {
        let answer = http.get(format!("{admin}{path}")).send().unwrap();
        assert_eq!(answer.status(), 200, "{path}");
        let headers = answer.headers();
        assert_eq!(
            headers["content-security-policy"], "default-src 'self'",
            "{path}"
        );
        assert_eq!(headers["x-frame-options"], "DENY");
        assert_eq!(headers["cache-control"], "no-store");
        assert_eq!(headers["x-content-type-options"], "nosniff");
    }
    let html = http
        .get(format!("{admin}/"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        !html.contains("<script>") && !html.contains("style="),
        "no inline script or style"
    );
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "no external asset"
    );

    let deployments: Value = http
        .get(format!("{admin}/api/deployments"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let listed = deployments["deployments"].as_array().unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0]["pathPrefix"], "/v1");
    assert_eq!(listed[0]["label"], "orders");
    assert_eq!(
        listed[0]["token"],
        json!({"header": "Authorization", "scheme": "Bearer"})
    );
    assert_eq!(listed[0]["routes"][0]["path"], "/v1/private");
    assert_eq!(listed[1]["token"], json!({"query": "access_token"}));
}

#[test]
fn recent_requests_hold_the_logged_records_and_never_the_token() {
    let signer = Signer::new("k1");
    let gateway = start_gateway(&deployments(&signer), true, &[]);
    let admin = gateway.admin.clone().unwrap();
    let http = client();
    let wrong =
        signer.token(json!({"iss": ISSUER, "aud": "web", "tenant": "acme", "exp": now() + 600}));
    let answer = http
        .get(format!("{}/v1/private", gateway.base))
        .bearer_auth(&wrong)
        .send()
        .unwrap();
    assert_eq!(answer.status(), 401);
    let id = answer.headers()["opc-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let query = http
        .get(format!("{}/q/query?access_token={wrong}", gateway.base))
        .send()
        .unwrap();
    assert_eq!(query.status(), 401);
    let query_id = query.headers()["opc-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    // Pasted on the page too: a check keeps nothing.
    let (status, _) = post_check(
        &admin,
        &json!({"deployment": "/v1", "request": "GET /v1/private", "token": wrong}),
    );
    assert_eq!(status, 200);

    let file_records = support::records(&gateway.access_log, &id, 1);
    assert!(!file_records.is_empty());
    let mut document = Value::Null;
    for _ in 0..40 {
        document = http
            .get(format!("{admin}/api/requests/{id}"))
            .send()
            .unwrap()
            .json()
            .unwrap();
        if document["records"].as_array().is_some_and(|r| r.len() >= 2) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(document["requestId"], id.as_str());
    let records = document["records"].as_array().unwrap();
    // Exactly the log files' records of that request.
    let mut in_files = support::records(&gateway.execution_log, &id, 1);
    if gateway.execution_log != gateway.access_log {
        in_files.extend(support::records(&gateway.access_log, &id, 1));
    }
    for record in records {
        assert!(
            in_files.contains(record),
            "{record} is not in the log files"
        );
    }
    assert_eq!(records.len(), in_files.len());
    let checks: Vec<&str> = document["diagnosis"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|d| d["check"].as_str())
        .collect();
    assert!(checks.contains(&"aud"), "{document}");

    // The recent refusals list both, newest first, with their failed checks.
    let listed: Value = http
        .get(format!("{admin}/api/requests"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let refusals = listed["requests"].as_array().unwrap();
    let ids: Vec<&str> = refusals
        .iter()
        .filter_map(|r| r["requestId"].as_str())
        .collect();
    assert_eq!(ids[..2], [query_id.as_str(), id.as_str()], "{listed}");
    assert_eq!(refusals[1]["status"], 401);
    assert_eq!(refusals[1]["route"], "/v1/private");
    assert_eq!(refusals[0]["route"], "/q/query");
    assert!(refusals[1]["checks"]
        .as_array()
        .unwrap()
        .contains(&json!("aud")));

    // A path no route has: listed with no route.
    let nowhere = http
        .get(format!("{}/v1/nowhere", gateway.base))
        .send()
        .unwrap();
    assert_eq!(nowhere.status(), 404);
    let nowhere_id = nowhere.headers()["opc-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    support::records(&gateway.access_log, &nowhere_id, 1);
    let relisted: Value = http
        .get(format!("{admin}/api/requests"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(relisted["requests"][0]["requestId"], nowhere_id.as_str());
    assert!(relisted["requests"][0]["route"].is_null(), "{relisted}");

    // The token is in no answer of the admin listener, no log file, no metric.
    let query_document = http
        .get(format!("{admin}/api/requests/{query_id}"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(query_document.contains("[redacted]"), "{query_document}");
    let everything = [
        document.to_string(),
        listed.to_string(),
        query_document,
        http.get(format!("{admin}/metrics"))
            .send()
            .unwrap()
            .text()
            .unwrap(),
        std::fs::read_to_string(&gateway.execution_log).unwrap(),
        std::fs::read_to_string(&gateway.access_log).unwrap(),
    ];
    let signature = wrong.rsplit('.').next().unwrap();
    for text in &everything {
        assert!(
            !text.contains(&wrong) && !text.contains(signature),
            "a token leaked: {text}"
        );
    }

    // An id nobody sent: 404 with the error document.
    let answer = http
        .get(format!("{admin}/api/requests/NOSUCHREQUEST"))
        .send()
        .unwrap();
    assert_eq!(answer.status(), 404);
    let document: Value = answer.json().unwrap();
    assert!(document["error"]["message"]
        .as_str()
        .unwrap()
        .contains("NOSUCHREQUEST"));
}

#[test]
fn no_page_or_api_on_a_non_loopback_admin_address_without_admin_ui() {
    let signer = Signer::new("k1");
    for (admin_ui, page_status) in [(false, 404), (true, 200)] {
        let port = support::free_port();
        let admin_flag = format!("0.0.0.0:{port}");
        let mut extra = vec!["--admin", admin_flag.as_str()];
        if admin_ui {
            extra.push("--admin-ui");
        }
        let gateway = start_gateway(&deployments(&signer), false, &extra);
        let admin = format!("http://127.0.0.1:{port}");
        support::wait_for(&format!("127.0.0.1:{port}"));
        let http = client();
        assert_eq!(
            http.get(format!("{admin}/livez")).send().unwrap().status(),
            200
        );
        for path in ["/", "/api/deployments", "/api/requests"] {
            let answer = http.get(format!("{admin}{path}")).send().unwrap();
            assert_eq!(
                answer.status(),
                page_status,
                "{path} with --admin-ui {admin_ui}"
            );
        }
        drop(gateway);
    }
}

#[test]
fn try_with_admin_reads_the_records_and_places_the_token_where_the_deployment_reads_it() {
    let signer = Signer::new("k1");
    let gateway = start_gateway(&deployments(&signer), true, &[]);
    let admin = gateway.admin.clone().unwrap();
    let good =
        signer.token(json!({"iss": ISSUER, "aud": "api", "tenant": "acme", "exp": now() + 600}));
    let wrong =
        signer.token(json!({"iss": ISSUER, "aud": "web", "tenant": "acme", "exp": now() + 600}));

    let out = support::claimgate(&[
        "try",
        &format!("{}/v1/private", gateway.base),
        "--token",
        &wrong,
        "--admin",
        &admin,
    ]);
    let shown = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(1), "{shown}");
    assert!(
        shown.contains("diagnosis:") && shown.contains("aud"),
        "{shown}"
    );

    // The /q deployment reads ?access_token: try puts it there (and redacts it in its report).
    let out = support::claimgate(&[
        "try",
        &format!("{}/q/query", gateway.base),
        "--token",
        &good,
        "--admin",
        &admin,
        "-o",
        "json",
    ]);
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(0), "{doc}");
    assert_eq!(doc["status"], 200);
    assert!(
        doc["request"]["url"]
            .as_str()
            .unwrap()
            .contains("access_token=%5Bredacted%5D")
            || doc["request"]["url"]
                .as_str()
                .unwrap()
                .contains("access_token=[redacted]"),
        "{doc}"
    );
    assert!(!doc.to_string().contains(&good));
    assert!(!doc["records"].as_array().unwrap().is_empty(), "{doc}");

    // An admin listener that is not there: exit 3.
    let out = support::claimgate(&[
        "try",
        &format!("{}/v1/private", gateway.base),
        "--admin",
        &format!("http://127.0.0.1:{}", support::free_port()),
    ]);
    assert_eq!(out.status.code(), Some(3));
}

#[test]
fn api_check_never_calls_an_authorizer_function_and_says_so() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    const FUNCTION: &str = "ocid1.fnfunc.oc1..authorizer";
    let rt = support::runtime();
    let calls = Arc::new(AtomicUsize::new(0));
    let function = {
        let calls = calls.clone();
        support::serve_http(&rt, move |_request| {
            calls.fetch_add(1, Ordering::SeqCst);
            async move {
                hyper::Response::builder()
                    .status(200)
                    .header("content-type", "application/json")
                    .body(http_body_util::Full::new(bytes::Bytes::from(
                        r#"{"active": true, "scope": ["a"]}"#,
                    )))
                    .unwrap()
            }
        })
    };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("custom.json");
    std::fs::write(
        &file,
        json!({"pathPrefix": "/c", "specification": {
            "requestPolicies": {"authentication": {
                "type": "CUSTOM_AUTHENTICATION", "functionId": FUNCTION,
                "tokenHeader": "Authorization"}},
            "routes": [{"path": "/x", "methods": ["GET"],
                        "backend": {"type": "STOCK_RESPONSE_BACKEND", "status": 200}}]}})
        .to_string(),
    )
    .unwrap();
    let functions = dir.path().join("functions.json");
    std::fs::write(
        &functions,
        json!({FUNCTION: format!("http://{function}/")}).to_string(),
    )
    .unwrap();
    let functions = functions.to_str().unwrap().to_owned();
    let gateway = support::start_gateway_on(dir, &[file], true, &["--functions", &functions]);
    let admin = gateway.admin.clone().unwrap();
    let (status, document) = post_check(
        &admin,
        &json!({"deployment": "/c", "request": "GET /c/x", "token": "opaque-token"}),
    );
    assert_eq!(status, 200, "{document}");
    assert_eq!(document["decision"], "deny", "{document}");
    assert!(
        document
            .to_string()
            .contains("never calls an authorizer function"),
        "{document}"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 0, "the function was called");
    // The gateway itself does call it.
    let answer = client()
        .get(format!("{}/c/x", gateway.base))
        .header("authorization", "opaque-token")
        .send()
        .unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

/// A remote key set: `/api/check` judges with the set the gateway fetched (never fetching it
/// itself), and its document is `check`'s, which fetches the same set; once the key server is
/// gone, the page still judges with what the gateway holds.
#[test]
fn api_check_agrees_with_check_on_a_remote_key_set_the_gateway_holds() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    let signer = Signer::new("remote-1");
    let rt = support::runtime();
    let fetches = Arc::new(AtomicUsize::new(0));
    let up = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let jwks = json!({"keys": [signer.jwk()]}).to_string();
    let server = {
        let (fetches, up) = (fetches.clone(), up.clone());
        support::serve_http(&rt, move |_request| {
            fetches.fetch_add(1, Ordering::SeqCst);
            let (status, body) = if up.load(Ordering::SeqCst) {
                (200, jwks.clone())
            } else {
                (503, String::new())
            };
            async move {
                hyper::Response::builder()
                    .status(status)
                    .header("content-type", "application/json")
                    .body(http_body_util::Full::new(bytes::Bytes::from(body)))
                    .unwrap()
            }
        })
    };
    let deployment = json!({
        "pathPrefix": "/r",
        "specification": {
            "requestPolicies": {"authentication": {
                "type": "JWT_AUTHENTICATION",
                "tokenHeader": "Authorization", "tokenAuthScheme": "Bearer",
                "issuers": [ISSUER], "audiences": ["api"],
                "publicKeys": {"type": "REMOTE_JWKS", "uri": format!("http://{server}/jwks"),
                               "maxCacheDurationInHours": 1}
            }},
            "routes": [{"path": "/x", "methods": ["GET"],
                        "backend": {"type": "STOCK_RESPONSE_BACKEND", "status": 200}}]
        }
    });
    let gateway = start_gateway(std::slice::from_ref(&deployment), true, &[]);
    let admin = gateway.admin.clone().unwrap();
    // Ready once the key set is loaded.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while client()
        .get(format!("{admin}/readyz"))
        .send()
        .map(|a| a.status() != 200)
        .unwrap_or(true)
    {
        assert!(std::time::Instant::now() < deadline, "never ready");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let file = gateway.dir.path().join("deployment-0.json");
    let at = now().to_string();
    for claims in [
        json!({"iss": ISSUER, "aud": "api", "exp": now() + 600}),
        json!({"iss": ISSUER, "aud": "web", "exp": now() - 600}),
    ] {
        let token = signer.token(claims);
        let out = support::claimgate(&[
            "check",
            "--deployment",
            file.to_str().unwrap(),
            "--request",
            "GET /r/x",
            "--token",
            &token,
            "--now",
            &at,
            "-o",
            "json",
        ]);
        let expected: Value = serde_json::from_slice(&out.stdout).unwrap();
        let before = fetches.load(Ordering::SeqCst);
        let (status, actual) = post_check(
            &admin,
            &json!({"deployment": "/r", "request": "GET /r/x", "token": token, "now": at}),
        );
        assert_eq!(status, 200);
        assert_eq!(actual, expected);
        assert_eq!(
            fetches.load(Ordering::SeqCst),
            before,
            "the page made a fetch"
        );
    }
    // The key server goes away: the page keeps judging with the held set.
    up.store(false, Ordering::SeqCst);
    let token = signer.token(json!({"iss": ISSUER, "aud": "api", "exp": now() + 600}));
    let (_, document) = post_check(
        &admin,
        &json!({"deployment": "/r", "request": "GET /r/x", "token": token}),
    );
    assert_eq!(document["decision"], "allow", "{document}");
}

/// One raw HTTP/1.1 exchange (what no client library sends: two `Host` headers, an absolute
/// target): the status line and the headers, lower-cased.
fn raw_exchange(admin: &str, request: &str) -> (String, String) {
    use std::io::{Read as _, Write as _};
    let address = admin.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let head = answer.split("\r\n\r\n").next().unwrap_or("").to_owned();
    let status = head.lines().next().unwrap_or("").to_owned();
    (status, head.to_ascii_lowercase())
}

#[test]
fn two_hosts_or_a_foreign_absolute_target_are_refused_and_no_admin_answer_is_sniffed() {
    let signer = Signer::new("k1");
    let gateway = start_gateway(&deployments(&signer), true, &[]);
    let admin = gateway.admin.clone().unwrap();
    let port = admin.rsplit(':').next().unwrap().to_owned();

    let allowed = format!(
        "GET /api/deployments HTTP/1.1\r\nHost: localhost:{port}\r\nConnection: close\r\n\r\n"
    );
    let (status, _) = raw_exchange(&admin, &allowed);
    assert!(status.contains(" 200 "), "{status}");
    // Which of two Host headers counts depends on who reads them: neither order passes.
    for (first, second) in [("localhost", "evil.example"), ("evil.example", "localhost")] {
        let request = format!(
            "GET /api/deployments HTTP/1.1\r\nHost: {first}\r\nHost: {second}\r\nConnection: close\r\n\r\n"
        );
        let (status, _) = raw_exchange(&admin, &request);
        assert!(status.contains(" 403 "), "{first}, {second}: {status}");
    }
    // An absolute target names the host asked for, whatever Host says.
    let request = format!(
        "GET http://evil.example:{port}/api/deployments HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    );
    let (status, _) = raw_exchange(&admin, &request);
    assert!(status.contains(" 403 "), "{status}");
    let request = format!(
        "GET http://127.0.0.1:{port}/api/deployments HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    );
    let (status, _) = raw_exchange(&admin, &request);
    assert!(status.contains(" 200 "), "{status}");

    // The probes, the metrics and an unknown path are never sniffed into HTML either.
    for path in ["/livez", "/readyz", "/metrics"] {
        let request = format!("GET {path} HTTP/1.1\r\nHost: 10.0.0.1\r\nConnection: close\r\n\r\n");
        let (status, head) = raw_exchange(&admin, &request);
        assert!(!status.is_empty(), "{path}");
        assert!(
            head.contains("x-content-type-options: nosniff"),
            "{path}: {head}"
        );
    }
    let request =
        "POST /livez HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    let (status, head) = raw_exchange(&admin, request);
    assert!(status.contains(" 405 "), "{status}");
    assert!(head.contains("x-content-type-options: nosniff"), "{head}");
}

#[test]
fn a_check_body_that_never_arrives_is_given_up_after_the_read_timeout() {
    use std::io::{Read as _, Write as _};
    let signer = Signer::new("k1");
    let gateway = start_gateway(&deployments(&signer), true, &["--read-timeout", "2"]);
    let admin = gateway.admin.clone().unwrap();
    let mut stream = std::net::TcpStream::connect(admin.trim_start_matches("http://")).unwrap();
    // Generous: the gateway gives up after 2 s; before it did, this read waited for ever.
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    stream
        .write_all(
            b"POST /api/check HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"deployment\"",
        )
        .unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408 "), "{answer}");
    assert!(answer.contains("read timeout"), "{answer}");
}
