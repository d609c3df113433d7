//! The command line as a newcomer types it (issue 12): the forms other tools accept (`-o`,
//! `file://`, full URLs, bare ports, pasted header lines) and the help a first failure needs.
//! Real binary, real files, real sockets on 127.0.0.1.

mod support;

use support::claimgate;

use serde_json::{json, Value};
use std::io::BufRead as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use support::{free_port, wait_for, Signer};

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stdout_json(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}\nstderr: {}",
            stdout(output),
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

fn write(dir: &Path, name: &str, value: &Value) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, serde_json::to_vec_pretty(value).unwrap()).unwrap();
    path
}

/// A deployment with a stock route and an HTTP route whose URL carries `${request.host}`,
/// behind a JWT policy with `signer`'s static key.
fn deployment(signer: &Signer) -> Value {
    json!({"pathPrefix": "/v1", "specification": {
        "requestPolicies": {"authentication": {
            "type": "JWT_AUTHENTICATION", "tokenHeader": "Authorization", "tokenAuthScheme": "Bearer",
            "issuers": ["https://issuer.example"], "audiences": ["api"],
            "publicKeys": {"type": "STATIC_KEYS", "keys": [signer.static_key()]}
        }},
        "routes": [
            {"path": "/open", "methods": ["GET"],
             "backend": {"type": "STOCK_RESPONSE_BACKEND", "status": 200, "body": "open"}},
            {"path": "/echo", "methods": ["GET"],
             "backend": {"type": "HTTP_BACKEND", "url": "http://backend.internal/${request.host}"}}
        ]
    }})
}

fn claims(exp: i64) -> Value {
    json!({"iss": "https://issuer.example", "aud": "api", "sub": "alice", "exp": exp, "iat": exp - 600})
}

/// `serve` on `listen` (and `admin`): the address it says it listens on, once it does.
struct Served {
    child: std::process::Child,
    said: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(dir: &Path, file: &Path, listen: &str, admin: &str) -> Served {
    let mut child = Command::new(env!("CARGO_BIN_EXE_claimgate"))
        .args([
            "serve",
            "--threads",
            "1",
            "--listen",
            listen,
            "--admin",
            admin,
        ])
        .args(["--deployment", file.to_str().unwrap()])
        .args(["--execution-log", dir.join("e.log").to_str().unwrap()])
        .args(["--access-log", dir.join("a.log").to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let said = lines
        .by_ref()
        .map_while(Result::ok)
        .find(|l| l.contains("claimgate listening on"))
        .expect("serve says where it listens");
    // Keep draining stderr so the server never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    Served { child, said }
}

#[test]
fn listen_takes_a_bare_port_a_colon_port_and_a_host_name() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "d.json", &deployment(&Signer::new("k")));
    let client = support::client();

    let (port, admin) = (free_port(), free_port());
    let served = serve(dir.path(), &file, &port.to_string(), &admin.to_string());
    assert!(
        served.said.contains(&format!("http://127.0.0.1:{port},")),
        "a bare port is loopback: {}",
        served.said
    );
    wait_for(&format!("127.0.0.1:{admin}"));
    let answer = client
        .get(format!("http://127.0.0.1:{admin}/livez"))
        .send()
        .unwrap();
    assert_eq!(answer.status(), 200);
    drop(served);

    let port = free_port();
    let served = serve(
        dir.path(),
        &file,
        &format!(":{port}"),
        &format!(":{}", free_port()),
    );
    assert!(
        served.said.contains(&format!("http://0.0.0.0:{port},")),
        ":PORT is every interface: {}",
        served.said
    );
    drop(served);

    let port = free_port();
    let served = serve(
        dir.path(),
        &file,
        &format!("localhost:{port}"),
        &format!("localhost:{}", free_port()),
    );
    assert!(
        served.said.contains(&format!("://127.0.0.1:{port},"))
            || served.said.contains(&format!("://[::1]:{port},")),
        "a host name is resolved: {}",
        served.said
    );
    drop(served);

    let refused = support::refused_by_serve(&["--listen", "nowhere"]);
    assert!(refused.contains("PORT, :PORT or HOST:PORT"), "{refused}");
    let refused = support::refused_by_serve(&["--listen", "70000"]);
    assert!(refused.contains("not a port"), "{refused}");
}

#[test]
fn short_output_flag_and_file_urls_on_every_command() {
    let dir = tempfile::tempdir().unwrap();
    let signer = Signer::new("k");
    let file = write(dir.path(), "d.json", &deployment(&signer));
    let url = format!("file://{}", file.display());
    let token = dir.path().join("token.txt");
    std::fs::write(&token, signer.token(claims(support::now() + 600))).unwrap();
    let token_arg = format!("@file://{}", token.display());

    let validated = claimgate(&["validate", "-o", "json", &url]);
    assert_eq!(validated.status.code(), Some(0), "{}", stdout(&validated));
    assert_eq!(stdout_json(&validated)["version"], 1);

    let checked = claimgate(&[
        "check",
        "--deployment",
        &url,
        "--request",
        "GET /v1/open",
        "--token",
        &token_arg,
        "-o",
        "json",
    ]);
    assert_eq!(stdout_json(&checked)["decision"], "allow");
    assert_eq!(checked.status.code(), Some(0));

    let decoded = claimgate(&["decode", "-o", "json", &token_arg]);
    assert_eq!(stdout_json(&decoded)["payload"]["sub"], "alice");

    let log = dir.path().join("x.log");
    std::fs::write(
        &log,
        r#"{"time":"2026-01-01T00:00:00Z","type":"com.oraclecloud.apigateway.apideployment.execution","data":{"opcRequestId":"abc","level":"INFO","code":"x","message":"m"}}"#,
    )
    .unwrap();
    let logs = claimgate(&[
        "logs",
        "-o",
        "json",
        "--file",
        &format!("file://{}", log.display()),
        "--request-id",
        "abc",
    ]);
    assert_eq!(stdout_json(&logs)["records"].as_array().unwrap().len(), 1);

    // Without the prefix the path is the file's; a missing file is still an error naming it.
    let missing = claimgate(&["validate", "-o", "json", "file:///nonexistent/d.json"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(stdout(&missing).contains("/nonexistent/d.json"));
}

#[test]
fn a_full_url_request_uses_its_path_query_and_host() {
    let dir = tempfile::tempdir().unwrap();
    let signer = Signer::new("k");
    let file = write(dir.path(), "d.json", &deployment(&signer));
    let token = signer.token(claims(support::now() + 600));
    let check = |request: &str, extra: &[&str]| {
        let mut args = vec![
            "check",
            "--deployment",
            file.to_str().unwrap(),
            "--request",
            request,
            "--token",
            &token,
            "-o",
            "json",
        ];
        args.extend_from_slice(extra);
        stdout_json(&claimgate(&args))
    };
    let answer = check("GET https://api.example.com:8443/v1/echo?q=1#frag", &[]);
    assert_eq!(answer["decision"], "allow", "{answer}");
    assert_eq!(answer["route"]["path"], "/echo");
    assert_eq!(
        answer["backendUrl"], "http://backend.internal/api.example.com%3A8443",
        "{answer}"
    );
    // --host is the Host when both are given.
    let answer = check("GET https://api.example.com/v1/echo", &["--host", "h.test"]);
    assert_eq!(answer["backendUrl"], "http://backend.internal/h.test");
    // A URL with no path is `/` (no route there).
    let answer = check("GET HTTPS://api.example.com?x", &[]);
    assert_eq!(answer["route"], Value::Null, "{answer}");
    // A path-only request has no Host, as before.
    let answer = check("GET /v1/echo", &[]);
    assert_eq!(answer["backendUrl"], "http://backend.internal/");
}

#[test]
fn a_pasted_authorization_line_is_a_token_and_times_show_utc() {
    let dir = tempfile::tempdir().unwrap();
    let signer = Signer::new("k");
    let file = write(dir.path(), "d.json", &deployment(&signer));
    let token = signer.token(claims(support::now() + 600));
    for pasted in [
        format!("Authorization: Bearer {token}"),
        format!("authorization:bearer {token}"),
        format!("Bearer {token}"),
    ] {
        let output = claimgate(&[
            "check",
            "--deployment",
            file.to_str().unwrap(),
            "--request",
            "GET /v1/open",
            "--token",
            &pasted,
        ]);
        assert_eq!(output.status.code(), Some(0), "{}", stdout(&output));
    }
    // An expired token: its exp with the UTC time beside the seconds.
    let expired = signer.token(claims(1_700_000_000));
    let output = claimgate(&[
        "check",
        "--deployment",
        file.to_str().unwrap(),
        "--request",
        "GET /v1/open",
        "--token",
        &expired,
        "--now",
        "1700000600",
    ]);
    assert_eq!(output.status.code(), Some(1));
    let text = stdout(&output);
    assert!(
        text.contains("actual    1700000000 (2023-11-14T22:13:20Z)"),
        "{text}"
    );
}

#[test]
fn logs_request_ids_match_in_any_letter_case() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("x.log");
    std::fs::write(
        &log,
        r#"{"time":"2026-01-01T00:00:00Z","type":"com.oraclecloud.apigateway.apideployment.execution","data":{"opcRequestId":"/ABCDEF12/99AA","level":"INFO","code":"x","message":"m"}}"#,
    )
    .unwrap();
    for id in ["abcdef12", "ABCDEF12", "/abcdef12/99aa"] {
        let output = claimgate(&["logs", "--file", log.to_str().unwrap(), "--request-id", id]);
        assert_eq!(output.status.code(), Some(0), "{id}: {}", stdout(&output));
    }
    let output = claimgate(&[
        "logs",
        "--file",
        log.to_str().unwrap(),
        "--request-id",
        "abcdef",
    ]);
    assert_eq!(output.status.code(), Some(1));
}

#[test]
fn check_help_lists_the_exit_codes_and_an_example() {
    let help = stdout(&claimgate(&["check", "--help"]));
    for needed in [
        "Exit codes:",
        "0  allowed",
        "1  denied",
        "2  usage",
        "3  could not evaluate",
        "Example:",
        "claimgate check --deployment",
    ] {
        assert!(help.contains(needed), "{needed}: {help}");
    }
}

#[test]
fn a_path_no_route_matches_lists_the_routes_and_suggests_the_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let bare = write(
        dir.path(),
        "spec.json",
        &json!({"routes": [
            {"path": "/orders/{id}", "methods": ["GET", "PUT"],
             "backend": {"type": "STOCK_RESPONSE_BACKEND", "status": 200}},
            {"path": "/health", "backend": {"type": "STOCK_RESPONSE_BACKEND", "status": 204}}
        ]}),
    );
    let output = claimgate(&[
        "check",
        "--deployment",
        bare.to_str().unwrap(),
        "--request",
        "GET /v1/orders/7",
    ]);
    assert_eq!(output.status.code(), Some(1));
    let text = stdout(&output);
    let listed = text
        .split_once("no route matches /v1/orders/7; the deployment's routes:")
        .unwrap_or_else(|| panic!("{text}"))
        .1;
    assert!(listed.contains("GET,PUT /orders/{id}"), "{text}");
    assert!(listed.contains("ANY     /health"), "{text}");
    assert!(
        listed.contains("hint   with --path-prefix /v1 the path matches /orders/{id}"),
        "{text}"
    );
    // The listing comes after the skipped checks.
    assert!(text.find("skip").unwrap() < text.find("no route matches").unwrap());

    // Following the hint routes it.
    let output = claimgate(&[
        "check",
        "--deployment",
        bare.to_str().unwrap(),
        "--request",
        "GET /v1/orders/7",
        "--path-prefix",
        "/v1",
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", stdout(&output));
    assert!(!stdout(&output).contains("no route matches"));

    // A full deployment under another prefix: the routes with their full paths, in JSON too.
    let full = write(dir.path(), "d.json", &deployment(&Signer::new("k")));
    let answer = stdout_json(&claimgate(&[
        "check",
        "--deployment",
        full.to_str().unwrap(),
        "--request",
        "GET /v2/open",
        "-o",
        "json",
    ]));
    assert_eq!(answer["route"], Value::Null);
    assert_eq!(
        answer["routes"],
        json!([{"methods": ["GET"], "path": "/v1/open"}, {"methods": ["GET"], "path": "/v1/echo"}])
    );
    assert!(
        answer["hint"]
            .as_str()
            .unwrap()
            .contains("under the prefix /v2, but the deployment's pathPrefix is /v1"),
        "{answer}"
    );
}

#[test]
fn one_enum_typo_is_one_error_with_the_value_meant() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "typo.json",
        &json!({"pathPrefix": "/v1", "specification": {
            "requestPolicies": {"authentication": {
                "type": "JWT_AUTHENTICATION", "tokenHeader": "Authorization", "tokenAuthScheme": "Bearer",
                "issuers": ["https://issuer.example"], "audiences": ["api"],
                "publicKeys": {"type": "REMOTE_JWKs", "uri": "https://issuer.example/jwks",
                               "isSslVerifyDisabled": false, "maxCacheDurationInHours": 1}
            }},
            "routes": [{"path": "/open", "methods": ["get"],
                        "backend": {"type": "STOCK_RESPONSE_BACKEND", "status": 200}}]
        }}),
    );
    let output = claimgate(&["validate", "-o", "json", file.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2));
    let errors = stdout_json(&output)["files"][0]["errors"].clone();
    let messages: Vec<String> = errors
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            format!(
                "{}: {}",
                e["path"].as_str().unwrap(),
                e["message"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        messages,
        [
            "specification.requestPolicies.authentication.publicKeys.type: 'REMOTE_JWKs' is not a key set type (REMOTE_JWKS, STATIC_KEYS); did you mean 'REMOTE_JWKS'?",
            "specification.routes[0].methods[0]: 'get' is not a method (ANY, HEAD, GET, POST, PUT, PATCH, DELETE, OPTIONS); did you mean 'GET'?",
        ],
        "{messages:?}"
    );
    // A value near nothing allowed gets the list alone.
    std::fs::write(
        &file,
        std::fs::read_to_string(&file)
            .unwrap()
            .replace("REMOTE_JWKs", "SOMETHING_ELSE"),
    )
    .unwrap();
    let output = claimgate(&["validate", file.to_str().unwrap()]);
    let text = stdout(&output);
    assert!(
        text.contains("'SOMETHING_ELSE' is not a key set type (REMOTE_JWKS, STATIC_KEYS)\n"),
        "{text}"
    );
    assert!(!text.contains("unknown member"), "{text}");
}

/// What `oci logging-search search-logs` prints for two records of request `r1` and one of
/// another request.
fn search_logs_output() -> Value {
    let record = |id: &str, time: &str, code: &str, level: &str, message: &str| {
        json!({"data": {"datetime": 1_764_000_000_000_i64, "logContent": {
            "id": format!("{id}-{time}"), "source": "deployment", "time": time,
            "type": "com.oraclecloud.apigateway.apideployment.execution",
            "data": {"opcRequestId": id, "code": code, "level": level, "message": message,
                     "check": "aud", "expected": ["api"], "actual": "other", "fix": "add 'other' to audiences"}
        }}})
    };
    json!({"data": {"fields": null, "results": [
        record("r1", "2026-01-01T00:00:02Z", "jwtAuthentication.authenticationFailed", "ERROR", "aud mismatch"),
        record("r2", "2026-01-01T00:00:01Z", "jwtAuthentication.authenticationFailed", "ERROR", "other request"),
        record("r1", "2026-01-01T00:00:01Z", "jwtAuthentication.received", "INFO", "token received"),
    ], "summary": {"result-count": 3}}, "opc-next-page": null})
}

#[test]
fn logs_reads_search_logs_output_from_a_file_and_from_stdin() {
    let dir = tempfile::tempdir().unwrap();
    let pretty = write(dir.path(), "search.json", &search_logs_output());
    let one_line = dir.path().join("search-line.json");
    std::fs::write(&one_line, search_logs_output().to_string()).unwrap();
    for file in [&pretty, &one_line] {
        let output = claimgate(&[
            "logs",
            "--file",
            file.to_str().unwrap(),
            "--request-id",
            "r1",
            "-o",
            "json",
        ]);
        assert_eq!(output.status.code(), Some(0), "{}", stdout(&output));
        let answer = stdout_json(&output);
        let codes: Vec<&str> = answer["records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["data"]["code"].as_str().unwrap())
            .collect();
        assert_eq!(
            codes,
            [
                "jwtAuthentication.received",
                "jwtAuthentication.authenticationFailed"
            ],
            "in time order, only r1's"
        );
        assert_eq!(answer["diagnosis"][0]["fix"], "add 'other' to audiences");
    }

    // `--file -`: the same document piped in.
    let mut child = Command::new(env!("CARGO_BIN_EXE_claimgate"))
        .args(["logs", "--file", "-", "--request-id", "R1"])
        .env("NO_COLOR", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write as _;
        let mut stdin = child.stdin.take().unwrap();
        stdin
            .write_all(&serde_json::to_vec_pretty(&search_logs_output()).unwrap())
            .unwrap();
    }
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(0));
    let text = stdout(&output);
    assert!(text.starts_with("2 records for request R1:"), "{text}");
    assert!(
        text.contains("fix       add 'other' to audiences"),
        "{text}"
    );

    // A document that is not search-logs output is refused with exit 2.
    let broken = dir.path().join("broken.json");
    std::fs::write(&broken, "{\n  \"data\": {\"results\": [1, \n").unwrap();
    let output = claimgate(&[
        "logs",
        "--file",
        broken.to_str().unwrap(),
        "--request-id",
        "r1",
    ]);
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn a_kebab_file_is_told_its_own_member_names_and_hints_read_as_sentences() {
    let dir = tempfile::tempdir().unwrap();
    let signer = Signer::new("k");
    let file = write(
        dir.path(),
        "spec.kebab.json",
        &json!({"request-policies": {"authentication": {
            "type": "JWT_AUTHENTICATION", "token-header": "Authorization", "token-auth-scheme": "Bearer",
            "issuers": ["https://issuer.example"], "audiences": ["api"],
            "public-keys": {"type": "STATIC_KEYS", "keys": [signer.static_key()]}
        }},
        "routes": [{"path": "/open", "methods": ["GET"],
                    "backend": {"type": "STOCK_RESPONSE_BACKEND", "status": 200}}]}),
    );
    let check = |token: &str| {
        let output = claimgate(&[
            "check",
            "--deployment",
            file.to_str().unwrap(),
            "--request",
            "GET /open",
            "--token",
            token,
            "--now",
            "1700000600",
        ]);
        assert_eq!(output.status.code(), Some(1), "{}", stdout(&output));
        stdout(&output)
    };
    // Another key under the same kid: the keys setting in kebab-case.
    let text = check(&Signer::new("k").token(claims(1_700_001_000)));
    assert!(
        text.contains("policy    request-policies.authentication.public-keys"),
        "{text}"
    );
    assert!(!text.contains("publicKeys"), "{text}");
    // Expired: the skew member in kebab-case.
    let text = check(&signer.token(claims(1_700_000_000)));
    assert!(text.contains("raise max-clock-skew-in-seconds"), "{text}");
    assert!(!text.contains("maxClockSkewInSeconds"), "{text}");
    // A trailing slash: "`a` and `b` differ by a trailing slash".
    let mut slashed = claims(1_700_001_000);
    slashed["iss"] = json!("https://issuer.example/");
    let text = check(&signer.token(slashed));
    assert!(
        text.contains(
            "`https://issuer.example/` and `https://issuer.example` differ by a trailing slash"
        ),
        "{text}"
    );
    assert!(!text.contains("they differ"), "{text}");
}

/// A deployment whose key set is at `uri`.
fn remote_deployment(uri: &str) -> Value {
    json!({"pathPrefix": "/v1", "specification": {
        "requestPolicies": {"authentication": {
            "type": "JWT_AUTHENTICATION", "tokenHeader": "Authorization", "tokenAuthScheme": "Bearer",
            "issuers": ["https://issuer.example"], "audiences": ["api"],
            "publicKeys": {"type": "REMOTE_JWKS", "uri": uri}
        }},
        "routes": [{"path": "/open", "methods": ["GET"],
                    "backend": {"type": "STOCK_RESPONSE_BACKEND", "status": 200}}]
    }})
}

#[test]
fn an_unreachable_key_set_is_said_once_briefly_with_the_offline_way() {
    let dir = tempfile::tempdir().unwrap();
    let signer = Signer::new("k");
    // Nothing listens on this port: the connection is refused.
    let uri = format!("http://127.0.0.1:{}/jwks", free_port());
    let file = write(dir.path(), "d.json", &remote_deployment(&uri));
    let token = signer.token(claims(support::now() + 600));
    let args = [
        "check",
        "--deployment",
        file.to_str().unwrap(),
        "--request",
        "GET /v1/open",
        "--token",
        &token,
        "-o",
        "json",
    ];
    let output = claimgate(&args);
    assert_eq!(output.status.code(), Some(3));
    let answer = stdout_json(&output);
    let key = &answer["checks"][3];
    assert_eq!(key["check"], "key", "{answer}");
    let message = key["message"].as_str().unwrap();
    let fix = key["fix"].as_str().unwrap();
    assert!(
        message.contains("connection failed (connection refused)"),
        "{message}"
    );
    assert!(!message.contains("error sending request"), "{message}");
    assert!(message.len() < 160, "short: {message}");
    assert!(
        !fix.contains("connection"),
        "the cause is not repeated: {fix}"
    );
    assert!(fix.contains("--jwks FILE"), "{fix}");

    // With --jwks there is no network call and no offline hint.
    let jwks = write(dir.path(), "jwks.json", &json!({"keys": [signer.jwk()]}));
    let mut offline = args.to_vec();
    offline.extend(["--jwks", jwks.to_str().unwrap()]);
    assert_eq!(stdout_json(&claimgate(&offline))["decision"], "allow");
}

#[test]
fn serve_says_on_the_terminal_when_a_key_set_cannot_be_loaded() {
    let dir = tempfile::tempdir().unwrap();
    let uri = format!("http://127.0.0.1:{}/jwks", free_port());
    let file = write(dir.path(), "d.json", &remote_deployment(&uri));
    let mut child = Command::new(env!("CARGO_BIN_EXE_claimgate"))
        .args([
            "serve",
            "--threads",
            "1",
            "--listen",
            &free_port().to_string(),
        ])
        .args(["--deployment", file.to_str().unwrap()])
        .args([
            "--execution-log",
            dir.path().join("e.log").to_str().unwrap(),
        ])
        .args(["--access-log", dir.path().join("a.log").to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let receiver = support::lines_of(child.stderr.take().unwrap());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let said = loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match receiver.recv_timeout(left) {
            Ok(line) if line.contains("cannot load the key set") => break line,
            Ok(_) => continue,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("serve said nothing about the key set");
            }
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    assert!(said.contains(&uri), "{said}");
    assert!(
        said.contains("connection failed (connection refused)"),
        "{said}"
    );
    let log = std::fs::read_to_string(dir.path().join("e.log")).unwrap();
    assert!(
        log.contains("The JSON Web Key Set could not be loaded from"),
        "{log}"
    );
    assert!(!log.contains("JSON Web Key Set is not valid"), "{log}");
}

/// A backend that speaks HTTP/1.0: answers each connection once, then closes it.
fn start_http10_backend() -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::atomic::AtomicBool>,
) {
    use std::io::{Read as _, Write as _};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stopping = stop.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            if stopping.load(std::sync::atomic::Ordering::SeqCst) {
                break;
            }
            let Ok(mut stream) = stream else { continue };
            let _ = stream.set_read_timeout(Some(std::time::Duration::from_secs(5)));
            let mut request = Vec::new();
            let mut buffer = [0; 4096];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buffer) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&buffer[..n]),
                }
            }
            let _ = stream.write_all(
                b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello",
            );
        }
    });
    (address, stop)
}

#[test]
fn an_http10_backend_does_not_downgrade_the_clients_http11_connection() {
    use std::io::{Read as _, Write as _};
    let (backend, stop) = start_http10_backend();
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "d.json",
        &json!({"pathPrefix": "/v1", "specification": {"routes": [
            {"path": "/old", "methods": ["GET"],
             "backend": {"type": "HTTP_BACKEND", "url": format!("http://{backend}/old")}}
        ]}}),
    );
    let gateway = support::start_gateway_on(tempfile::tempdir().unwrap(), &[file], false, &[]);
    let address = gateway.base.trim_start_matches("http://").to_owned();
    let mut stream = std::net::TcpStream::connect(&address).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    // Two requests on one connection: the first answer keeps HTTP/1.1 and the connection open.
    for round in 0..2 {
        stream
            .write_all(format!("GET /v1/old HTTP/1.1\r\nHost: {address}\r\n\r\n").as_bytes())
            .unwrap();
        let mut answer = Vec::new();
        let mut buffer = [0; 4096];
        while !(answer.windows(4).any(|w| w == b"\r\n\r\n") && answer.ends_with(b"hello")) {
            let n = stream.read(&mut buffer).unwrap();
            assert!(
                n > 0,
                "round {round}: the gateway closed the connection: {}",
                String::from_utf8_lossy(&answer)
            );
            answer.extend_from_slice(&buffer[..n]);
        }
        let text = String::from_utf8_lossy(&answer);
        assert!(
            text.starts_with("HTTP/1.1 200 OK\r\n"),
            "round {round}: {text}"
        );
        assert!(
            !text.to_ascii_lowercase().contains("connection: close"),
            "{text}"
        );
    }
    // An HTTP/1.0 client still gets an HTTP/1.0-compatible answer.
    let mut old = std::net::TcpStream::connect(&address).unwrap();
    old.write_all(b"GET /v1/old HTTP/1.0\r\n\r\n").unwrap();
    let mut answer = String::new();
    old.read_to_string(&mut answer).unwrap();
    assert!(
        answer.starts_with("HTTP/1.0 200 OK\r\n") || answer.starts_with("HTTP/1.1 200 OK\r\n"),
        "{answer}"
    );
    assert!(answer.ends_with("hello"), "{answer}");
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let _ = std::net::TcpStream::connect(backend);
}

#[test]
fn completions_are_generated_for_each_shell() {
    for (shell, marker) in [
        ("bash", "complete -F _claimgate"),
        ("zsh", "#compdef claimgate"),
        ("fish", "complete -c claimgate"),
        ("powershell", "Register-ArgumentCompleter"),
    ] {
        let output = claimgate(&["completions", shell]);
        assert_eq!(output.status.code(), Some(0), "{shell}");
        let script = stdout(&output);
        assert!(script.contains(marker), "{shell}: {script}");
        for word in ["check", "deployment", "request-id", "completions"] {
            assert!(script.contains(word), "{shell} lacks {word}");
        }
    }
    // The bash script is valid bash and registers the completion when sourced.
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("claimgate.bash");
    std::fs::write(&script, claimgate(&["completions", "bash"]).stdout).unwrap();
    let sourced = Command::new("bash")
        .arg("-c")
        .arg(format!(". '{}' && complete -p claimgate", script.display()))
        .output()
        .expect("bash runs");
    assert!(
        sourced.status.success(),
        "{}",
        String::from_utf8_lossy(&sourced.stderr)
    );
    assert!(stdout(&sourced).contains("_claimgate"));
    let refused = claimgate(&["completions", "tcsh"]);
    assert_eq!(refused.status.code(), Some(2));
}

/// `openssl ARGS` (keys made by an implementation independent of claimgate's).
fn openssl(args: &[&str]) -> Vec<u8> {
    let output = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl runs");
    assert!(
        output.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

#[test]
fn token_signs_with_each_kind_of_key_and_check_accepts_it() {
    // The keys come from openssl; without it the test is skipped by name (never in CI).
    if Command::new("openssl").arg("version").output().is_err() {
        support::skip(
            "cli_friction::token_signs_with_each_kind_of_key_and_check_accepts_it",
            "no openssl",
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_owned();
    // (private key file, how openssl makes it, the --alg asked, the alg expected)
    let rsa = path("rsa.pem");
    openssl(&[
        "genpkey",
        "-algorithm",
        "RSA",
        "-pkeyopt",
        "rsa_keygen_bits:2048",
        "-out",
        &rsa,
    ]);
    let rsa1 = path("rsa1.pem");
    openssl(&["pkey", "-in", &rsa, "-traditional", "-out", &rsa1]);
    let ec = path("ec.pem");
    openssl(&[
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-out",
        &ec,
    ]);
    let sec1 = path("sec1.pem");
    openssl(&[
        "ecparam",
        "-name",
        "secp384r1",
        "-genkey",
        "-noout",
        "-out",
        &sec1,
    ]);
    let ed = path("ed.pem");
    openssl(&["genpkey", "-algorithm", "ED25519", "-out", &ed]);
    let cases = [
        (&rsa, None, "RS256"),
        (&rsa, Some("PS256"), "PS256"),
        (&rsa1, Some("RS512"), "RS512"),
        (&ec, None, "ES256"),
        (&sec1, None, "ES384"),
        (&ed, None, "EdDSA"),
    ];
    let claims_file = path("claims.json");
    std::fs::write(
        &claims_file,
        r#"{"iss": "https://issuer.example", "aud": "api", "sub": "alice"}"#,
    )
    .unwrap();
    for (i, (key, asked, expected_alg)) in cases.into_iter().enumerate() {
        let public = String::from_utf8(openssl(&["pkey", "-in", key, "-pubout"])).unwrap();
        let kid = format!("key-{i}");
        let mut deployment = deployment(&Signer::new("unused"));
        deployment["specification"]["requestPolicies"]["authentication"]["publicKeys"]["keys"] =
            json!([{"format": "PEM", "kid": kid, "key": public}]);
        let file = write(dir.path(), &format!("d{i}.json"), &deployment);
        let mut args = vec!["token", "--key", key, "--kid", &kid, "--ttl", "10m"];
        if let Some(alg) = asked {
            args.extend(["--alg", alg]);
        }
        let claims_arg = format!("@file://{claims_file}");
        args.extend(["--claims", &claims_arg]);
        let made = claimgate(&args);
        assert_eq!(
            made.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&made.stderr)
        );
        let token = stdout(&made).trim().to_owned();

        let decoded = stdout_json(&claimgate(&["decode", "-o", "json", &token]));
        assert_eq!(decoded["header"]["alg"], expected_alg, "{decoded}");
        assert_eq!(decoded["header"]["kid"], kid.as_str());
        let exp = decoded["payload"]["exp"].as_i64().unwrap();
        let iat = decoded["payload"]["iat"].as_i64().unwrap();
        assert_eq!(exp - iat, 600, "--ttl 10m");

        let checked = claimgate(&[
            "check",
            "--deployment",
            file.to_str().unwrap(),
            "--request",
            "GET /v1/open",
            "--token",
            &token,
            "-o",
            "json",
        ]);
        let answer = stdout_json(&checked);
        assert_eq!(answer["decision"], "allow", "{expected_alg}: {answer}");
        assert_eq!(checked.status.code(), Some(0));
    }

    // Claims inline, the default lifetime (1h), and refusals: an alg the key cannot make, claims
    // that are not an object, a file that is no key.
    let made = claimgate(&[
        "token",
        "--key",
        &ec,
        "--claims",
        r#"{"sub":"bob"}"#,
        "--now",
        "1700000000",
    ]);
    let token = stdout(&made).trim().to_owned();
    let decoded = stdout_json(&claimgate(&["decode", "-o", "json", &token]));
    assert_eq!(decoded["payload"]["exp"], 1_700_003_600);
    assert_eq!(decoded["payload"]["iat"], 1_700_000_000);
    assert_eq!(decoded["header"].get("kid"), None);
    let refused = claimgate(&["token", "--key", &ec, "--alg", "RS256", "--claims", "{}"]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("it makes ES256"));
    let refused = claimgate(&["token", "--key", &ec, "--claims", "[1]"]);
    assert_eq!(refused.status.code(), Some(2));
    let refused = claimgate(&["token", "--key", &claims_file, "--claims", "{}"]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("no PEM private key"));
}

/// One execution record of claimgate's own log, as a line.
fn log_line(time: &str, id: &str, code: &str, message: &str) -> String {
    json!({"time": time, "type": "com.oraclecloud.apigateway.apideployment.execution",
           "data": {"opcRequestId": id, "level": "WARN", "code": code, "message": message,
                    "check": "aud", "fix": format!("fix for {id}")}})
    .to_string()
        + "\n"
}

fn rfc3339(seconds: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(seconds)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

#[test]
fn logs_since_lists_recent_failures_without_a_request_id() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("execution.log");
    let now = support::now();
    let failed = "jwtAuthentication.authenticationFailed";
    std::fs::write(
        &log,
        [
            log_line(&rfc3339(now - 7200), "old", failed, "two hours ago"),
            log_line(&rfc3339(now - 60), "recent", failed, "a minute ago"),
            log_line(
                &rfc3339(now - 30),
                "fine",
                "jwtAuthentication.successfulAuthentication",
                "ok",
            ),
            log_line(
                &rfc3339(now - 10),
                "latest",
                "authorization.unauthorizedRequest",
                "scope",
            ),
        ]
        .concat(),
    )
    .unwrap();
    let file = log.to_str().unwrap();
    let output = claimgate(&["logs", "--file", file, "--since", "15m"]);
    assert_eq!(output.status.code(), Some(0));
    let text = stdout(&output);
    assert!(text.starts_with("2 failures since "), "{text}");
    let (recent, latest) = (text.find("recent").unwrap(), text.find("latest").unwrap());
    assert!(recent < latest, "oldest first: {text}");
    assert!(text.contains("fix  fix for recent"), "{text}");
    assert!(!text.contains("old  ") && !text.contains("fine"), "{text}");

    let answer = stdout_json(&claimgate(&[
        "logs",
        "--file",
        file,
        "--since",
        &rfc3339(now - 3 * 3600),
        "-o",
        "json",
    ]));
    let ids: Vec<&str> = answer["failures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["data"]["opcRequestId"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["old", "recent", "latest"]);

    // Nothing since then: exit 1. Neither --request-id nor --since: a usage error; both: too.
    let nothing = claimgate(&["logs", "--file", file, "--since", "5s"]);
    assert_eq!(nothing.status.code(), Some(1));
    assert_eq!(claimgate(&["logs", "--file", file]).status.code(), Some(2));
    assert_eq!(
        claimgate(&["logs", "--file", file, "--since", "1h", "--request-id", "x"])
            .status
            .code(),
        Some(2)
    );
    assert_eq!(
        claimgate(&["logs", "--file", file, "--since", "yesterday"])
            .status
            .code(),
        Some(2)
    );
}

#[test]
fn logs_follow_streams_failures_as_they_are_written() {
    use std::io::Write as _;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("execution.log");
    let failed = "jwtAuthentication.authenticationFailed";
    let now = support::now();
    std::fs::write(
        &log,
        log_line(&rfc3339(now - 5), "before", failed, "already there"),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_claimgate"))
        .args([
            "logs",
            "--file",
            log.to_str().unwrap(),
            "--follow",
            "-o",
            "json",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let receiver = support::lines_of(child.stdout.take().unwrap());
    std::thread::sleep(std::time::Duration::from_millis(500));
    let mut file = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    file.write_all(
        log_line(
            &rfc3339(now),
            "ok",
            "jwtAuthentication.successfulAuthentication",
            "ok",
        )
        .as_bytes(),
    )
    .unwrap();
    // A line written in two parts is read once whole.
    let line = log_line(&rfc3339(now), "new", failed, "written while following");
    let (first, second) = line.split_at(40);
    file.write_all(first.as_bytes()).unwrap();
    file.flush().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(600));
    file.write_all(second.as_bytes()).unwrap();
    let got = receiver.recv_timeout(std::time::Duration::from_secs(10));
    let _ = child.kill();
    let _ = child.wait();
    let got: Value = serde_json::from_str(&got.expect("a failure was streamed")).unwrap();
    assert_eq!(
        got["data"]["opcRequestId"], "new",
        "only failures written after the start: {got}"
    );
    assert!(receiver
        .recv_timeout(std::time::Duration::from_millis(300))
        .is_err());
}
