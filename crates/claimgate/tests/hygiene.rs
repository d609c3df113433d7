//! What claimgate writes out, end to end with the real binary: metrics labels stay bounded
//! whatever methods clients invent, tokens never reach a log (not through the "scheme" a
//! verdict quotes, not through `access_token` in a logged URI), and every human-readable output
//! shows control characters escaped, so a claim cannot clear the operator's screen or forge a
//! line (SPEC "Request paths, headers and connections (hardening)").

mod support;

use support::claimgate;

use serde_json::{json, Value};
use std::io::BufRead as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;
use support::{now, records, Gateway, Signer};

const ISS: &str = "https://idp.test/";
const AUD: &str = "api://shop";

fn signer() -> &'static Signer {
    static S: OnceLock<Signer> = OnceLock::new();
    S.get_or_init(|| Signer::new("k1"))
}

/// A claim value made to attack a terminal: clear the screen, forge a line on its own, a C1
/// control (NEL, a newline on some terminals) and a right-to-left override.
const EVIL: &str = "\u{1b}[2J\n  diagnosis: no failure recorded\r\u{85}x\u{202e}gnp.exe\u{7f}";

/// The deployment: a header token (`Authorization: Bearer`), static keys, `tenant` must be
/// `acme`; `/hello` answers 200 from a stock response.
fn deployment(prefix: &str, location: Value) -> Value {
    let mut authentication = json!({
        "type": "JWT_AUTHENTICATION",
        "issuers": [ISS], "audiences": [AUD],
        "verifyClaims": [{"key": "tenant", "values": ["acme"], "isRequired": true}],
        "publicKeys": {"type": "STATIC_KEYS", "keys": [signer().static_key()]}
    });
    for (key, value) in location.as_object().unwrap() {
        authentication[key] = value.clone();
    }
    json!({
        "displayName": "shop",
        "pathPrefix": prefix,
        "specification": {
            "requestPolicies": {"authentication": authentication},
            "routes": [{"path": "/hello", "methods": ["GET"],
                        "backend": {"type": "STOCK_RESPONSE_BACKEND", "status": 200, "body": "hello"}}]
        }
    })
}

fn header_located() -> Value {
    json!({"tokenHeader": "Authorization", "tokenAuthScheme": "Bearer"})
}

fn write(dir: &Path, name: &str, document: &Value) -> PathBuf {
    let file = dir.join(name);
    std::fs::write(&file, document.to_string()).unwrap();
    file
}

fn start(deployments: &[Value]) -> Gateway {
    support::start_gateway(deployments, true, &[])
}

fn token(tenant: &str) -> String {
    signer().token(
        json!({"iss": ISS, "aud": AUD, "sub": "alice", "tenant": tenant, "exp": now() + 600}),
    )
}

fn client() -> reqwest::blocking::Client {
    support::client()
}

/// Sends `method` to `url` with `headers`; the status and the `opc-request-id`.
fn send(method: &str, url: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let mut request =
        client().request(reqwest::Method::from_bytes(method.as_bytes()).unwrap(), url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().unwrap();
    let id = response
        .headers()
        .get("opc-request-id")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (response.status().as_u16(), id)
}

/// The characters a terminal acts on, that no human-readable output may print raw: C0 other
/// than the layout's newline, DEL, C1, the line and paragraph separators and the bidirectional
/// controls.
fn is_dangerous(c: char) -> bool {
    (c.is_control() && c != '\n')
        || matches!(
            c,
            '\u{2028}' | '\u{2029}' | '\u{061c}' | '\u{200e}' | '\u{200f}'
        )
        || ('\u{202a}'..='\u{202e}').contains(&c)
        || ('\u{2066}'..='\u{2069}').contains(&c)
}

fn assert_no_raw_controls(what: &str, text: &str) {
    let found: Vec<char> = text.chars().filter(|c| is_dangerous(*c)).collect();
    assert!(found.is_empty(), "{what} prints {found:?} raw:\n{text}");
}

/// The escaped forms of `EVIL`'s characters, as the outputs show them.
const ESCAPED: [&str; 4] = [r"\u{1b}[2J", r"\u{85}", r"\u{202e}", r"\u{7f}"];

#[test]
fn methods_outside_the_standard_ones_share_the_other_label() {
    let gw = start(&[deployment("/v1", header_located())]);
    let url = format!("{}/v1/hello", gw.base);
    for i in 0..50 {
        let method = format!("XMETHOD{i:02}{}", "M".repeat(1000));
        let (status, _) = send(&method, &url, &[]);
        assert!(status >= 400, "{status}");
    }
    let authorization = format!("Bearer {}", token("acme"));
    assert_eq!(
        send("GET", &url, &[("Authorization", &authorization)]).0,
        200
    );
    let metrics = client()
        .get(format!("{}/metrics", gw.admin.as_deref().unwrap()))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(!metrics.contains("XMETHOD"), "a client's method is a label");
    assert!(metrics.contains(r#"method="_OTHER""#), "{metrics}");
    assert!(
        metrics.contains(r#"method="GET",status="200""#),
        "{metrics}"
    );
    // 50 distinct 1 KB methods would add about 850 KB of series; one `_OTHER` series is ~2 KB.
    assert!(metrics.len() < 40_000, "{} bytes of metrics", metrics.len());
}

/// Every line of both log files, for the searches below.
fn both_logs(gw: &Gateway, request_id: &str) -> String {
    // Wait for the request's records (the writer batches), then read everything.
    let _ = records(&gw.execution_log, request_id, 1);
    let _ = records(&gw.access_log, request_id, 1);
    let execution = std::fs::read_to_string(&gw.execution_log).unwrap_or_default();
    let access = std::fs::read_to_string(&gw.access_log).unwrap_or_default();
    format!("{execution}\n{access}")
}

#[test]
fn a_token_where_the_scheme_should_be_is_not_logged() {
    let gw = start(&[deployment("/v1", header_located())]);
    let token = token("acme");
    let (_, payload_and_signature) = token.split_once('.').unwrap();
    let (_, signature) = payload_and_signature.split_once('.').unwrap();
    let url = format!("{}/v1/hello", gw.base);
    let (status, id) = send("GET", &url, &[("Authorization", &format!("{token} x"))]);
    assert_eq!(status, 401);
    let logs = both_logs(&gw, &id);
    assert!(
        !logs.contains(signature),
        "the token's signature is logged:\n{logs}"
    );
    assert!(!logs.contains(payload_and_signature), "{logs}");
    // The record still explains what was wrong.
    let refusal = records(&gw.execution_log, &id, 1)
        .into_iter()
        .find(|r| r["data"]["check"] == "token")
        .expect("a token record");
    let fix = refusal["data"]["fix"].as_str().unwrap();
    assert!(fix.contains("'Bearer <token>'"), "{fix}");
    // A short word is still named, so the operator sees what was sent.
    let (status, id) = send("GET", &url, &[("Authorization", "Basic dXNlcjpwYXNz")]);
    assert_eq!(status, 401);
    let refusal = records(&gw.execution_log, &id, 1)
        .into_iter()
        .find(|r| r["data"]["check"] == "token")
        .expect("a token record");
    assert!(refusal.to_string().contains("'Basic'"), "{refusal}");
}

#[test]
fn access_token_and_the_configured_token_parameter_are_redacted_in_the_logs() {
    let gw = start(&[
        deployment("/v1", header_located()),
        deployment("/q", json!({"tokenQueryParam": "jwt"})),
    ]);
    let token = token("acme");
    let (_, payload_and_signature) = token.split_once('.').unwrap();
    let (_, signature) = payload_and_signature.split_once('.').unwrap();
    let authorization = format!("Bearer {token}");
    // RFC 6750's parameter on a header-configured deployment, as sent and percent-encoded.
    let (status, id) = send(
        "GET",
        &format!("{}/v1/hello?a=1&access_token={token}&b=2", gw.base),
        &[("Authorization", &authorization)],
    );
    assert_eq!(status, 200);
    let access = records(&gw.access_log, &id, 1);
    assert_eq!(
        access[0]["data"]["requestUri"],
        "/v1/hello?a=1&access_token=[redacted]&b=2"
    );
    let (_, id) = send(
        "GET",
        &format!("{}/v1/hello?access%5Ftoken={token}", gw.base),
        &[("Authorization", &authorization)],
    );
    let access = records(&gw.access_log, &id, 1);
    assert_eq!(
        access[0]["data"]["requestUri"],
        "/v1/hello?access%5Ftoken=[redacted]"
    );
    // The configured parameter, and access_token beside it.
    let (status, id) = send(
        "GET",
        &format!("{}/q/hello?jwt={token}&access_token={token}", gw.base),
        &[],
    );
    assert_eq!(status, 200);
    let access = records(&gw.access_log, &id, 1);
    assert_eq!(
        access[0]["data"]["requestUri"],
        "/q/hello?jwt=[redacted]&access_token=[redacted]"
    );
    let logs = both_logs(&gw, &id);
    assert!(!logs.contains(signature), "a token is logged:\n{logs}");
    assert!(!logs.contains(payload_and_signature), "{logs}");
    // Other parameters are logged as sent.
    let (_, id) = send("GET", &format!("{}/v1/hello?tokenish=1", gw.base), &[]);
    let access = records(&gw.access_log, &id, 1);
    assert_eq!(access[0]["data"]["requestUri"], "/v1/hello?tokenish=1");
}

#[test]
fn check_and_decode_show_control_characters_escaped_and_json_keeps_the_value() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "shop.json",
        &deployment("/v1", header_located()),
    );
    let file = file.to_str().unwrap();
    let evil = token(EVIL);
    let output = claimgate(&[
        "check",
        "--deployment",
        file,
        "--request",
        "GET /v1/hello",
        "--token",
        &evil,
    ]);
    assert_eq!(output.status.code(), Some(1));
    let text = String::from_utf8(output.stdout).unwrap();
    assert_no_raw_controls("check", &text);
    for escaped in ESCAPED {
        assert!(text.contains(escaped), "check lacks {escaped}:\n{text}");
    }
    assert!(
        text.contains(r"\n  diagnosis: no failure recorded\r"),
        "{text}"
    );
    assert!(
        !text
            .lines()
            .any(|l| l.trim_start().starts_with("diagnosis")),
        "a forged line:\n{text}"
    );

    let json_output = claimgate(&[
        "check",
        "--deployment",
        file,
        "--request",
        "GET /v1/hello",
        "--token",
        &evil,
        "--output",
        "json",
    ]);
    let document: Value = serde_json::from_slice(&json_output.stdout).unwrap();
    let tenant = document["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == "claim:tenant")
        .unwrap();
    assert_eq!(tenant["actual"], EVIL, "{tenant}");

    let output = claimgate(&["decode", &evil]);
    assert_eq!(output.status.code(), Some(0));
    let text = String::from_utf8(output.stdout).unwrap();
    assert_no_raw_controls("decode", &text);
    for escaped in [r"\u{85}", r"\u{202e}", r"\u{7f}"] {
        assert!(text.contains(escaped), "decode lacks {escaped}:\n{text}");
    }
    let output = claimgate(&["decode", &evil, "--output", "json"]);
    let document: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(document["payload"]["tenant"], EVIL);
}

#[test]
fn logs_shows_a_hostile_claim_escaped() {
    let gw = start(&[deployment("/v1", header_located())]);
    let authorization = format!("Bearer {}", token(EVIL));
    let (status, id) = send(
        "GET",
        &format!("{}/v1/hello", gw.base),
        &[("Authorization", &authorization)],
    );
    assert_eq!(status, 401);
    let _ = records(&gw.execution_log, &id, 1);
    let execution = gw.execution_log.to_str().unwrap();
    let output = claimgate(&["logs", "--file", execution, "--request-id", &id]);
    assert_eq!(output.status.code(), Some(0));
    let text = String::from_utf8(output.stdout).unwrap();
    assert_no_raw_controls("logs", &text);
    for escaped in ESCAPED {
        assert!(text.contains(escaped), "logs lacks {escaped}:\n{text}");
    }
    assert!(
        !text
            .lines()
            .any(|l| l.trim_start().starts_with("diagnosis: no failure")),
        "a forged line:\n{text}"
    );
    assert!(text.contains("claim:tenant"), "{text}");
    let output = claimgate(&[
        "logs",
        "--file",
        execution,
        "--request-id",
        &id,
        "--output",
        "json",
    ]);
    let document: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert!(document["diagnosis"]
        .as_array()
        .unwrap()
        .iter()
        .any(|d| d["actual"] == EVIL));
}

#[test]
fn validate_and_serve_show_file_values_escaped() {
    let dir = tempfile::tempdir().unwrap();
    // An invalid method name, echoed in the error; a display name, printed by serve.
    let mut bad = deployment("/v1", header_located());
    bad["specification"]["routes"][0]["methods"] = json!([format!("GET{EVIL}")]);
    let bad = write(dir.path(), "bad.json", &bad);
    let output = claimgate(&["validate", bad.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2));
    let text = String::from_utf8(output.stdout).unwrap();
    assert_no_raw_controls("validate", &text);
    assert!(text.contains(r"\u{1b}[2J"), "{text}");

    let mut named = deployment("/v1", header_located());
    named["displayName"] = json!(format!("shop{EVIL}"));
    let named = write(dir.path(), "named.json", &named);
    let listen = format!("127.0.0.1:{}", support::free_port());
    let mut child = Command::new(env!("CARGO_BIN_EXE_claimgate"))
        .args(["serve", "--listen", &listen, "--deployment"])
        .arg(&named)
        .args([
            "--execution-log",
            dir.path().join("x.log").to_str().unwrap(),
        ])
        .args(["--access-log", dir.path().join("a.log").to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The listening line comes from a reader thread, waited for at most 20 s; the process is
    // stopped by its pid either way.
    let stderr = child.stderr.take().unwrap();
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).split(b'\n') {
            let Ok(line) = line else { break };
            let line = String::from_utf8_lossy(&line).into_owned();
            let done = line.contains("listening on");
            if sender.send(line).is_err() || done {
                break;
            }
        }
    });
    let mut lines = Vec::new();
    while let Ok(line) = receiver.recv_timeout(Duration::from_secs(20)) {
        let done = line.contains("listening on");
        lines.push(line);
        if done {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let text = lines.join("\n");
    assert!(text.contains("listening on"), "{text}");
    assert_no_raw_controls("serve", &text);
    assert!(text.contains(r"\u{1b}[2J"), "{text}");
}

#[test]
fn check_shows_an_introspection_answer_and_the_request_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let opaque = json!({
        "type": "TOKEN_AUTHENTICATION", "tokenHeader": "Authorization", "tokenAuthScheme": "Bearer",
        "validationPolicy": {
            "type": "REMOTE_DISCOVERY",
            "clientDetails": {"type": "CUSTOM", "clientId": "gateway",
                              "clientSecretId": "ocid1.vaultsecret.oc1..gateway", "clientSecretVersionNumber": 1},
            "sourceUriDetails": {"type": "DISCOVERY_URI", "uri": "https://idp.test/.well-known/openid-configuration"},
            "additionalValidationPolicy": {
                "issuers": [ISS], "audiences": [AUD],
                "verifyClaims": [{"key": "tenant", "values": ["acme"], "isRequired": true}]
            }
        }
    });
    let mut file = deployment("/v1", header_located());
    file["specification"]["requestPolicies"]["authentication"] = opaque;
    let file = write(dir.path(), "opaque.json", &file);
    // A recorded answer (no network call) whose claim attacks the terminal.
    let answer = write(
        dir.path(),
        "answer.json",
        &json!({"active": true, "iss": ISS, "aud": AUD, "exp": now() + 600, "tenant": EVIL}),
    );
    let args = |extra: &[&str]| {
        let mut args = vec![
            "check",
            "--deployment",
            file.to_str().unwrap(),
            "--token",
            "opaque-token",
            "--introspection",
            answer.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        args.into_iter().map(str::to_owned).collect::<Vec<_>>()
    };
    let run = |args: Vec<String>| {
        Command::new(env!("CARGO_BIN_EXE_claimgate"))
            .args(args)
            .env("NO_COLOR", "1")
            .output()
            .unwrap()
    };
    let output = run(args(&["--request", "GET /v1/hello"]));
    assert_eq!(output.status.code(), Some(1));
    let text = String::from_utf8(output.stdout).unwrap();
    assert_no_raw_controls("check (introspection)", &text);
    assert!(text.contains("introspection answer (RFC 7662)"), "{text}");
    for escaped in ESCAPED {
        assert!(text.contains(escaped), "check lacks {escaped}:\n{text}");
    }
    let output = run(args(&["--request", "GET /v1/hello", "--output", "json"]));
    let document: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(document["introspection"]["answer"]["tenant"], EVIL);

    // The request as given is printed (or refused) escaped too.
    let output = run(args(&[
        "--request",
        "GET /v1/hel\u{85}lo\u{1b}[2J?q=\u{202e}",
    ]));
    assert_no_raw_controls("check (request)", &String::from_utf8_lossy(&output.stdout));
    assert_no_raw_controls("check (request)", &String::from_utf8_lossy(&output.stderr));
}

#[test]
fn logs_shows_every_field_of_a_record_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let id = "R1";
    let records = [
        json!({"type": "com.oraclecloud.apigateway.apideployment.access", "time": format!("2026-01-01T00:00:00Z{EVIL}"),
               "data": {"opcRequestId": id, "message": format!("GET /v1/{EVIL} HTTP/1.1"), "status": 401}}),
        json!({"type": "com.oraclecloud.apigateway.apideployment.execution", "time": "2026-01-01T00:00:01Z",
               "data": {"opcRequestId": id, "level": format!("WARN{EVIL}"), "code": "httpBackend.requestError",
                        "message": EVIL, "check": EVIL, "expected": [EVIL], "actual": EVIL, "fix": EVIL, "cause": EVIL}}),
    ];
    let lines: Vec<String> = records.iter().map(Value::to_string).collect();
    let file = dir.path().join("records.log");
    std::fs::write(&file, lines.join("\n")).unwrap();
    let output = claimgate(&["logs", "--file", file.to_str().unwrap(), "--request-id", id]);
    assert_eq!(output.status.code(), Some(0));
    let text = String::from_utf8(output.stdout).unwrap();
    assert_no_raw_controls("logs", &text);
    // A heading, two records, a blank line, the diagnosis heading and one failure in five
    // lines (message, expected, actual, fix, cause): nothing forged.
    assert_eq!(text.lines().count(), 1 + 2 + 1 + 1 + 5, "{text}");
    assert!(text.contains(r"GET /v1/\u{1b}[2J\n  diagnosis"), "{text}");
}
