//! `claimgate try` against a running gateway: refused (exit 1, the failed checks shown),
//! accepted (exit 0), the gateway's own 5xx and an unreachable gateway (exit 3), records read
//! from the log files (`--log`) or the admin API (`--admin`), and `--output json`.

mod support;

use serde_json::{json, Value};
use std::process::Output;
use support::{now, start_gateway, Signer};

const ISSUER: &str = "https://issuer.example";

/// `/v1`: `/private` (a JWT with aud `api` and a `tenant` claim `acme`; stock 200), `/broken`
/// (anonymous; a backend that refuses connections), `/backend401` (anonymous; a stock answer
/// of 401, so the backend's own refusal), and `/query` reading the token from `?access_token`
/// in a second deployment `/q`.
fn deployments(signer: &Signer, refused: u16) -> Vec<Value> {
    let stock = json!({"type": "STOCK_RESPONSE_BACKEND", "status": 200, "body": "stock"});
    let v1 = json!({
        "pathPrefix": "/v1",
        "specification": {
            "requestPolicies": {"authentication": {
                "type": "JWT_AUTHENTICATION",
                "tokenHeader": "Authorization", "tokenAuthScheme": "Bearer",
                "isAnonymousAccessAllowed": true,
                "issuers": [ISSUER], "audiences": ["api"],
                "verifyClaims": [{"key": "tenant", "values": ["acme"], "isRequired": true}],
                "publicKeys": {"type": "STATIC_KEYS", "keys": [signer.static_key()]}
            }},
            "routes": [
                {"path": "/private", "methods": ["GET"], "backend": stock},
                {"path": "/broken", "methods": ["GET"],
                 "backend": {"type": "HTTP_BACKEND", "url": format!("http://127.0.0.1:{refused}/")},
                 "requestPolicies": {"authorization": {"type": "ANONYMOUS"}}},
                {"path": "/backend401", "methods": ["GET"],
                 "backend": {"type": "STOCK_RESPONSE_BACKEND", "status": 401,
                             "body": "{\"message\":\"nope\"}"},
                 "requestPolicies": {"authorization": {"type": "ANONYMOUS"}}}
            ]
        }
    });
    let q = json!({
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
    });
    vec![v1, q]
}

fn try_(args: &[&str]) -> Output {
    support::claimgate(&[&["try"], args].concat())
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn json_of(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", text(output)))
}

#[test]
fn try_reads_the_log_files_and_exits_by_who_answered() {
    let signer = Signer::new("k1");
    let refused = support::free_port();
    let gateway = start_gateway(&deployments(&signer, refused), false, &[]);
    let exec = gateway.execution_log.to_str().unwrap().to_owned();
    let access = gateway.access_log.to_str().unwrap().to_owned();
    let logs = ["--log", exec.as_str(), "--log", access.as_str()];
    let good =
        signer.token(json!({"iss": ISSUER, "aud": "api", "tenant": "acme", "exp": now() + 600}));
    let wrong =
        signer.token(json!({"iss": ISSUER, "aud": "web", "tenant": "other", "exp": now() + 600}));
    let private = format!("{}/v1/private", gateway.base);

    // Refused: exit 1, the failed checks with expected, actual and fix.
    let out = try_(&[&[private.as_str(), "--token", &wrong], &logs[..]].concat());
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(1), "{shown}");
    assert!(shown.contains("401"), "{shown}");
    assert!(shown.contains("diagnosis:"), "{shown}");
    assert!(shown.contains("aud"), "{shown}");
    assert!(shown.contains("claim:tenant"), "{shown}");
    assert!(shown.contains("fix"), "{shown}");
    assert!(shown.contains("refused by the gateway"), "{shown}");
    assert!(
        !shown.contains(&wrong),
        "the token is never printed: {shown}"
    );

    // Accepted: exit 0, verified.
    let out = try_(&[&[private.as_str(), "--token", &good], &logs[..]].concat());
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(0), "{shown}");
    assert!(shown.contains("200 OK"), "{shown}");
    assert!(shown.contains("verified"), "{shown}");

    // The backend's own 401 is not the gateway's refusal: exit 0.
    let out = try_(
        &[
            &[format!("{}/v1/backend401", gateway.base).as_str()],
            &logs[..],
        ]
        .concat(),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    // No route: the gateway's own 404, exit 1.
    let out = try_(
        &[
            &[format!("{}/v1/nowhere", gateway.base).as_str()],
            &logs[..],
        ]
        .concat(),
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));

    // The backend cannot be reached: the gateway's own 502, exit 3.
    let out = try_(&[&[format!("{}/v1/broken", gateway.base).as_str()], &logs[..]].concat());
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(3), "{shown}");
    assert!(shown.contains("502"), "{shown}");

    // `--file` is an alias of `--log`; JSON has the settled shape.
    let out = try_(&[
        private.as_str(),
        "--token",
        &wrong,
        "--file",
        &exec,
        "--file",
        &access,
        "-o",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let doc = json_of(&out);
    assert_eq!(doc["version"], 1);
    assert_eq!(doc["status"], 401);
    assert_eq!(doc["exit"], 1);
    assert_eq!(doc["request"]["method"], "GET");
    assert!(doc["requestId"].as_str().is_some_and(|id| !id.is_empty()));
    let records = doc["records"].as_array().unwrap();
    assert!(records
        .iter()
        .all(|r| r["data"]["opcRequestId"] == doc["requestId"]));
    assert!(records
        .iter()
        .any(|r| r["type"].as_str().unwrap().ends_with(".access")));
    let checks: Vec<&str> = doc["diagnosis"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|d| d["check"].as_str())
        .collect();
    assert!(checks.contains(&"aud"), "{doc}");
    assert!(
        !doc.to_string().contains(&wrong),
        "the token is never in the JSON"
    );

    // -X and -d: a POST with a body to a GET-only route is the gateway's own 405 (exit 1);
    // -d alone means POST, as with curl; @FILE reads the body from a file.
    let body_file = gateway.dir.path().join("body.json");
    std::fs::write(&body_file, "{\"n\":1}").unwrap();
    let data = format!("@{}", body_file.display());
    let out = try_(
        &[
            &[
                private.as_str(),
                "--token",
                &good,
                "-d",
                &data,
                "-o",
                "json",
            ],
            &logs[..],
        ]
        .concat(),
    );
    let doc = json_of(&out);
    assert_eq!(doc["request"]["method"], "POST", "{doc}");
    assert_eq!(doc["status"], 405, "{doc}");
    assert_eq!(out.status.code(), Some(1), "{doc}");
    let out = try_(
        &[
            &[private.as_str(), "-X", "get", "--token", &good],
            &logs[..],
        ]
        .concat(),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = try_(&[private.as_str(), "-d", "@/nonexistent/body"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));

    // A log file that cannot be read: exit 3.
    let out = try_(&[private.as_str(), "--log", "/nonexistent/claimgate.log"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
}

#[test]
fn try_without_records_judges_by_status_and_an_unreachable_gateway_exits_three() {
    let signer = Signer::new("k1");
    let gateway = start_gateway(&deployments(&signer, support::free_port()), false, &[]);
    let private = format!("{}/v1/private", gateway.base);
    let out = try_(&[private.as_str()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("--admin URL or --log FILE"));
    let good =
        signer.token(json!({"iss": ISSUER, "aud": "api", "tenant": "acme", "exp": now() + 600}));
    let out = try_(&[private.as_str(), "--token", &good]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    let nobody = format!("http://127.0.0.1:{}/v1/private", support::free_port());
    let out = try_(&[nobody.as_str(), "-o", "json"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let doc = json_of(&out);
    assert_eq!(doc["exit"], 3, "{doc}");
    assert!(doc["status"].is_null(), "{doc}");
    assert!(
        doc["error"]["message"]
            .as_str()
            .unwrap()
            .contains("cannot reach"),
        "{doc}"
    );
    let out = try_(&[nobody.as_str()]);
    assert_eq!(out.status.code(), Some(3));
    assert!(text(&out).contains("cannot reach"), "{}", text(&out));

    // Bad input: exit 2 with a clear message.
    let out = try_(&["ftp://example/x"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out).contains("not an http:// or https:// URL"),
        "{}",
        text(&out)
    );
    let out = try_(&[private.as_str(), "-H", "no colon"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out).contains("must be 'Name: value'"),
        "{}",
        text(&out)
    );
}

/// A server posing as a gateway that sends its answer's head at once, then its body a byte
/// every half second: `try` gives up on the body in bounded time instead of waiting for it.
#[test]
fn try_does_not_wait_forever_for_a_dripping_body() {
    use std::io::{Read as _, Write as _};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let server = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut head = [0u8; 4096];
            let _ = stream.read(&mut head);
            let _ = stream.write_all(
                b"HTTP/1.1 200 OK\r\nopc-request-id: DRIP\r\nContent-Length: 100000\r\n\r\n",
            );
            // Gives up after 90 s, so that without the bound the test fails instead of hanging.
            let dripping = std::time::Instant::now();
            while !stop.load(std::sync::atomic::Ordering::Relaxed)
                && dripping.elapsed() < std::time::Duration::from_secs(90)
            {
                if stream.write_all(b"x").is_err() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(500));
            }
        })
    };
    let url = format!("http://{address}/v1/private");
    let started = std::time::Instant::now();
    let out = try_(&[url.as_str(), "-o", "json"]);
    let took = started.elapsed();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    server.join().unwrap();
    // Before the bound, this took the body's 100 000 half-seconds.
    assert!(took < std::time::Duration::from_secs(60), "took {took:?}");
    let doc = json_of(&out);
    assert_eq!(doc["status"], 200, "{doc}");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}
