//! `ORACLE_FUNCTIONS_BACKEND` end to end: `claimgate serve --functions` calling functions the
//! test serves on loopback, over Fn's HTTP-gateway conventions (`Fn-Http-*` both ways); the
//! failures that are the gateway's (502); a function chosen by dynamic routing; the map
//! reloaded; and `check`/`validate` warning about functions the map lacks.

mod support;

use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::{claimgate, client, records, runtime, serve_http, start_gateway_on, Gateway};

/// What a function received: method, path, headers (lower-case names, in order), body.
#[derive(Debug, Clone)]
struct Received {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Received {
    /// The `Fn-Http-*` headers, sorted.
    fn fn_http(&self) -> Vec<(String, String)> {
        let mut found: Vec<(String, String)> = self
            .headers
            .iter()
            .filter(|(n, _)| n.starts_with("fn-http-"))
            .cloned()
            .collect();
        found.sort();
        found
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

type Log = Arc<Mutex<Vec<Received>>>;

/// The test's functions, one server: `/echo` (201 with headers of its own, some that must not
/// be copied, and `got:<body>`), `/plain` (no `Fn-Http-Status`), `/fail` (500), `/bad-status`,
/// `/huge` (7 MiB, declared), `/other` (a second function for reloads).
fn functions(rt: &tokio::runtime::Runtime) -> (std::net::SocketAddr, Log) {
    let log: Log = Arc::default();
    let seen = log.clone();
    let addr = serve_http(rt, move |request: hyper::Request<hyper::body::Incoming>| {
        let seen = seen.clone();
        async move {
            use http_body_util::BodyExt as _;
            let (parts, body) = request.into_parts();
            let body = body.collect().await.unwrap().to_bytes().to_vec();
            let received = Received {
                method: parts.method.to_string(),
                path: parts.uri.to_string(),
                headers: parts
                    .headers
                    .iter()
                    .map(|(n, v)| {
                        (
                            n.as_str().to_owned(),
                            String::from_utf8_lossy(v.as_bytes()).into_owned(),
                        )
                    })
                    .collect(),
                body: body.clone(),
            };
            seen.lock().unwrap().push(received);
            let answer = hyper::Response::builder();
            let (answer, body) = match parts.uri.path() {
                "/echo" => (
                    answer
                        .header("Content-Type", "application/octet-stream")
                        .header("Fn-Call-Id", "01ABC")
                        .header("Fn-Http-Status", "201")
                        .header("Fn-Http-H-Content-Type", "text/plain")
                        .header("Fn-Http-H-X-Fn", "yes")
                        .header("Fn-Http-H-Set-Cookie", "a=1")
                        .header("Fn-Http-H-Set-Cookie", "b=2")
                        .header("Fn-Http-H-Transfer-Encoding", "chunked")
                        .header("Fn-Http-H-Connection", "close")
                        .header("Fn-Http-H-Content-Length", "3"),
                    [b"got:".as_slice(), &body].concat(),
                ),
                "/plain" => (
                    answer.header("Content-Type", "text/plain"),
                    b"plain".to_vec(),
                ),
                "/fail" => (
                    answer.status(500).header("Fn-Http-Status", "200"),
                    br#"{"code":"FunctionInvokeExecutionFailed"}"#.to_vec(),
                ),
                "/bad-status" => (answer.header("Fn-Http-Status", "2OO"), b"x".to_vec()),
                "/huge" => (answer, vec![b'x'; 7 * 1024 * 1024]),
                "/other" => (answer.header("Fn-Http-H-X-Fn", "other"), b"other".to_vec()),
                _ => (answer.status(404), Vec::new()),
            };
            answer
                .body(http_body_util::Full::new(bytes::Bytes::from(body)))
                .unwrap()
        }
    });
    (addr, log)
}

/// A function that answers 7 MiB chunked (no declared length): the limit must cut it off as it
/// streams.
fn chunked_flood(rt: &tokio::runtime::Runtime) -> std::net::SocketAddr {
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    rt.spawn(async move {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buffer = [0u8; 4096];
                let _ = stream.read(&mut buffer).await;
                let _ = stream
                    .write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
                    .await;
                let chunk = vec![b'y'; 1024 * 1024];
                for _ in 0..7 {
                    let _ = stream.write_all(b"100000\r\n").await;
                    if stream.write_all(&chunk).await.is_err() {
                        return;
                    }
                    let _ = stream.write_all(b"\r\n").await;
                }
                let _ = stream.write_all(b"0\r\n\r\n").await;
            });
        }
    });
    addr
}

const ECHO: &str = "ocid1.fnfunc.oc1..echo";

fn function_route(path: &str, ocid: &str) -> Value {
    json!({"path": path, "methods": ["GET", "POST", "HEAD"],
           "backend": {"type": "ORACLE_FUNCTIONS_BACKEND", "functionId": ocid}})
}

fn deployment() -> Value {
    let mut echo = function_route("/echo", ECHO);
    echo["requestPolicies"] = json!({"headerTransformations": {
        "setHeaders": {"items": [{"name": "X-Added", "values": ["by-gateway"], "ifExists": "OVERWRITE"}]},
        "filterHeaders": {"type": "BLOCK", "items": [{"name": "X-Secret"}]}
    }});
    json!({
        "displayName": "functions",
        "pathPrefix": "/v1",
        "specification": {"routes": [
            echo,
            function_route("/plain", "ocid1.fnfunc.oc1..plain"),
            function_route("/fail", "ocid1.fnfunc.oc1..fail"),
            function_route("/bad-status", "ocid1.fnfunc.oc1..badstatus"),
            function_route("/huge", "ocid1.fnfunc.oc1..huge"),
            function_route("/flood", "ocid1.fnfunc.oc1..flood"),
            function_route("/refused", "ocid1.fnfunc.oc1..refused"),
            {"path": "/routed", "methods": ["GET"], "backend": {
                "type": "DYNAMIC_ROUTING_BACKEND",
                "selectionSource": {"type": "SINGLE", "selector": "request.headers[X-Kind]"},
                "routingBackends": [
                    {"key": {"type": "ANY_OF", "name": "to-function", "values": ["fn"]},
                     "backend": {"type": "ORACLE_FUNCTIONS_BACKEND", "functionId": "ocid1.fnfunc.oc1..plain"}},
                    {"key": {"type": "WILDCARD", "name": "stock", "expression": "*", "isDefault": true},
                     "backend": {"type": "STOCK_RESPONSE_BACKEND", "status": 200, "body": "stock"}}
                ]}}
        ]}
    })
}

fn map(functions: std::net::SocketAddr, flood: std::net::SocketAddr, refused: u16) -> Value {
    json!({
        ECHO: format!("http://{functions}/echo"),
        "ocid1.fnfunc.oc1..plain": format!("http://{functions}/plain"),
        "ocid1.fnfunc.oc1..fail": format!("http://{functions}/fail"),
        "ocid1.fnfunc.oc1..badstatus": format!("http://{functions}/bad-status"),
        "ocid1.fnfunc.oc1..huge": format!("http://{functions}/huge"),
        "ocid1.fnfunc.oc1..flood": format!("http://{flood}/"),
        "ocid1.fnfunc.oc1..refused": format!("http://127.0.0.1:{refused}/"),
    })
}

struct Setup {
    gw: Gateway,
    log: Log,
    map_file: std::path::PathBuf,
    functions: std::net::SocketAddr,
    _rt: tokio::runtime::Runtime,
}

fn setup() -> Setup {
    let rt = runtime();
    let (functions, log) = functions(&rt);
    let flood = chunked_flood(&rt);
    // A port nothing listens on: bound, then closed.
    let refused = support::free_port();
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("functions-deployment.json");
    std::fs::write(&spec, deployment().to_string()).unwrap();
    let map_file = dir.path().join("functions.json");
    std::fs::write(&map_file, map(functions, flood, refused).to_string()).unwrap();
    let map_arg = map_file.to_str().unwrap().to_owned();
    let gw = start_gateway_on(dir, &[spec], false, &["--functions", &map_arg]);
    Setup {
        gw,
        log,
        map_file,
        functions,
        _rt: rt,
    }
}

fn codes(gw: &Gateway, id: &str) -> Vec<(String, Value)> {
    records(&gw.execution_log, id, 1)
        .iter()
        .map(|r| {
            (
                r["data"]["code"].as_str().unwrap_or_default().to_owned(),
                r["data"]["cause"].clone(),
            )
        })
        .collect()
}

fn request_id(response: &reqwest::blocking::Response) -> String {
    response.headers()["opc-request-id"]
        .to_str()
        .unwrap()
        .to_owned()
}

#[test]
fn the_function_gets_fn_http_headers_and_its_answer_becomes_the_response() {
    let s = setup();
    let host = s.gw.base.trim_start_matches("http://").to_owned();
    let response = client()
        .post(format!("{}/v1/echo?x=1&y=%2F", s.gw.base))
        .header("Content-Type", "text/plain")
        .header("X-Custom", "a")
        .header("X-Custom", "b")
        .header("X-Secret", "never")
        .header("Connection", "keep-alive, X-Hop")
        .header("X-Hop", "hop")
        .header("TE", "trailers")
        // A client cannot speak for the gateway: its Fn-* headers arrive wrapped.
        .header("Fn-Http-Method", "DELETE")
        .header("Fn-Intent", "cloudevent")
        .body("ping")
        .send()
        .unwrap();
    let id = request_id(&response);
    assert_eq!(response.status(), 201);
    let headers: Vec<(String, String)> = response
        .headers()
        .iter()
        .filter(|(n, _)| !matches!(n.as_str(), "opc-request-id" | "date"))
        .map(|(n, v)| (n.as_str().to_owned(), v.to_str().unwrap().to_owned()))
        .collect();
    // The function's headers, its Content-Type over the invocation's; never its framing or
    // Connection, never Fn's own (Fn-Call-Id).
    assert_eq!(
        headers,
        [
            ("content-type", "text/plain"),
            ("x-fn", "yes"),
            ("set-cookie", "a=1"),
            ("set-cookie", "b=2"),
            ("content-length", "8"),
        ]
        .map(|(n, v)| (n.to_owned(), v.to_owned()))
    );
    assert_eq!(response.text().unwrap(), "got:ping");

    let received = s.log.lock().unwrap()[0].clone();
    assert_eq!(
        (received.method.as_str(), received.path.as_str()),
        ("POST", "/echo")
    );
    assert_eq!(received.body, b"ping");
    let peer = "127.0.0.1";
    let expected: Vec<(String, String)> = {
        let mut e = vec![
            ("fn-http-h-accept", "*/*".to_owned()),
            ("fn-http-h-content-type", "text/plain".to_owned()),
            ("fn-http-h-fn-http-method", "DELETE".to_owned()),
            ("fn-http-h-fn-intent", "cloudevent".to_owned()),
            ("fn-http-h-forwarded", format!("for={peer}")),
            ("fn-http-h-host", host.clone()),
            ("fn-http-h-opc-request-id", id.clone()),
            ("fn-http-h-x-added", "by-gateway".to_owned()),
            ("fn-http-h-x-custom", "a".to_owned()),
            ("fn-http-h-x-custom", "b".to_owned()),
            ("fn-http-h-x-forwarded-for", peer.to_owned()),
            ("fn-http-h-x-real-ip", peer.to_owned()),
            ("fn-http-method", "POST".to_owned()),
            ("fn-http-request-url", "/v1/echo?x=1&y=%2F".to_owned()),
        ];
        e.sort();
        e.into_iter().map(|(n, v)| (n.to_owned(), v)).collect()
    };
    assert_eq!(received.fn_http(), expected);
    assert_eq!(received.header("fn-intent"), Some("httprequest"));
    assert_eq!(received.header("content-length"), Some("4"));
    assert_eq!(received.header("content-type"), Some("text/plain"));
    // Hop-by-hop headers (and those Connection names) never reach the function.
    for name in [
        "x-hop",
        "te",
        "connection",
        "fn-http-h-x-hop",
        "fn-http-h-te",
    ] {
        assert_eq!(received.header(name), None, "{name}");
    }
    assert!(
        codes(&s.gw, &id)
            .iter()
            .all(|(c, _)| c != "functionsBackend.requestError"),
        "{:?}",
        codes(&s.gw, &id)
    );

    // No Fn-Http-Status: 200; the invocation's Content-Type stands in; GET has no body.
    let response = client()
        .get(format!("{}/v1/plain", s.gw.base))
        .send()
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/plain");
    assert_eq!(response.text().unwrap(), "plain");
    let received = s.log.lock().unwrap()[1].clone();
    assert_eq!(received.method, "POST");
    assert!(received.body.is_empty());
    assert!(received
        .fn_http()
        .contains(&("fn-http-method".into(), "GET".into())));
}

#[test]
fn a_function_that_fails_or_cannot_be_reached_or_answers_too_much_is_a_502() {
    let s = setup();
    for (path, cause) in [
        ("/v1/fail", "FUNCTION_ERROR"),
        ("/v1/bad-status", "INVALID_STATUS"),
        ("/v1/huge", "RESPONSE_TOO_LARGE"),
        ("/v1/flood", "RESPONSE_TOO_LARGE"),
        ("/v1/refused", "CONNECTION_REFUSED"),
    ] {
        let started = Instant::now();
        let response = client().get(format!("{}{path}", s.gw.base)).send().unwrap();
        let id = request_id(&response);
        assert_eq!(response.status(), 502, "{path}");
        assert_eq!(
            response.text().unwrap(),
            r#"{"message":"Bad Gateway","code":502}"#,
            "{path}"
        );
        assert!(started.elapsed() < Duration::from_secs(15), "{path}");
        let found = codes(&s.gw, &id);
        assert!(
            found.contains(&("functionsBackend.requestError".into(), json!(cause))),
            "{path}: {found:?}"
        );
        let record = records(&s.gw.execution_log, &id, 1)
            .into_iter()
            .find(|r| r["data"]["code"] == "functionsBackend.requestError")
            .unwrap();
        assert_eq!(record["data"]["level"], "ERROR");
        assert!(record["data"]["functionId"]
            .as_str()
            .unwrap()
            .starts_with("ocid1.fnfunc.oc1.."));
    }
}

#[test]
fn dynamic_routing_can_choose_a_function_and_the_map_is_reloaded() {
    let s = setup();
    let get = |kind: &str| {
        let response = client()
            .get(format!("{}/v1/routed", s.gw.base))
            .header("X-Kind", kind)
            .send()
            .unwrap();
        (response.status().as_u16(), response.text().unwrap())
    };
    assert_eq!(get("FN"), (200, "plain".to_owned()));
    assert_eq!(get("other"), (200, "stock".to_owned()));

    // The map now sends the `plain` function elsewhere: the gateway follows.
    let mut map: Value =
        serde_json::from_str(&std::fs::read_to_string(&s.map_file).unwrap()).unwrap();
    map["ocid1.fnfunc.oc1..plain"] = json!(format!("http://{}/other", s.functions));
    std::fs::write(&s.map_file, map.to_string()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    while get("fn").1 != "other" {
        assert!(Instant::now() < deadline, "the new map was never used");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn check_and_validate_warn_about_functions_the_map_lacks() {
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("d.json");
    std::fs::write(&spec, deployment().to_string()).unwrap();
    let spec = spec.to_str().unwrap();
    let partial = dir.path().join("partial.json");
    std::fs::write(
        &partial,
        json!({ECHO: "http://127.0.0.1:9/echo"}).to_string(),
    )
    .unwrap();
    let partial = partial.to_str().unwrap();
    let full = dir.path().join("full.json");
    std::fs::write(
        &full,
        map(
            "127.0.0.1:9".parse().unwrap(),
            "127.0.0.1:9".parse().unwrap(),
            9,
        )
        .to_string(),
    )
    .unwrap();
    let full = full.to_str().unwrap();

    // validate: a warning per function, at its functionId; exit 0 (warnings do not count).
    let out = claimgate(&["validate", spec, "-o", "json"]);
    assert_eq!(out.status.code(), Some(0));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let warnings = doc["files"][0]["warnings"].as_array().unwrap().clone();
    assert!(
        warnings.contains(&json!({"path": "specification.routes[0].backend.functionId", "message": "function 'ocid1.fnfunc.oc1..echo' needs a URL: serve refuses this deployment without --functions FILE mapping it"})),
        "{doc}"
    );
    // The routed function, inside the dynamic routing backend, is found too.
    assert!(
        warnings.iter().any(|w| w["path"]
            == "specification.routes[7].backend.routingBackends[0].backend.functionId"),
        "{doc}"
    );
    let out = claimgate(&["validate", spec, "--functions", partial, "-o", "json"]);
    assert_eq!(out.status.code(), Some(0));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let text = doc.to_string();
    assert!(
        text.contains("function 'ocid1.fnfunc.oc1..plain' is not in the --functions file"),
        "{text}"
    );
    assert!(!text.contains("'ocid1.fnfunc.oc1..echo'"), "{text}");
    let out = claimgate(&["validate", spec, "--functions", full]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(!text.contains("warning"), "{text}");
    // A bad functions file is an error (exit 2).
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, r#"{"ocid1.fnfunc.oc1..x": "ftp://x/"}"#).unwrap();
    let out = claimgate(&["validate", spec, "--functions", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stdout).contains("must start with http:// or https://"));

    // check: the same warning on stderr; the verdict is unchanged.
    let out = claimgate(&["check", "--deployment", spec, "--request", "GET /v1/plain"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains(
            "specification.routes[1].backend.functionId: function 'ocid1.fnfunc.oc1..plain' needs a URL"
        ),
        "{stderr}"
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("ALLOW  forwarded to the function\n"));
    let out = claimgate(&[
        "check",
        "--deployment",
        spec,
        "--request",
        "GET /v1/plain",
        "--functions",
        full,
    ]);
    assert_eq!(out.status.code(), Some(0));
    assert!(!String::from_utf8_lossy(&out.stderr).contains("needs a URL"));
}

/// The README's walkthrough: `examples/fleet` with its Python function, as written.
#[test]
fn the_fleet_example_routes_to_its_stock_response_and_its_function() {
    let root = support::repo().join("examples/fleet");
    let port = support::free_port();
    let function = support::Running(
        std::process::Command::new(support::python())
            .arg(root.join("trucks_fn.py"))
            .arg(port.to_string())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("python runs"),
    );
    support::wait_for(&format!("127.0.0.1:{port}"));
    let dir = tempfile::tempdir().unwrap();
    let map = dir.path().join("functions.json");
    std::fs::write(
        &map,
        json!({"ocid1.fnfunc.oc1.phx.trucks": format!("http://127.0.0.1:{port}/")}).to_string(),
    )
    .unwrap();
    let map = map.to_str().unwrap().to_owned();
    let gw = start_gateway_on(
        dir,
        &[root.join("deployment.json")],
        false,
        &["--functions", &map],
    );
    let call = |vehicle: &str, body: &str| {
        let response = client()
            .post(format!("{}/fleet/vehicles", gw.base))
            .header("X-Vehicle", vehicle)
            .body(body.to_owned())
            .send()
            .unwrap();
        let status = response.status().as_u16();
        let fleet = response
            .headers()
            .get("x-fleet")
            .map(|v| v.to_str().unwrap().to_owned());
        (status, fleet, response.text().unwrap())
    };
    assert_eq!(
        call("SEDAN", ""),
        (200, None, r#"{"fleet": "cars"}"#.to_owned())
    );
    let (status, fleet, body) = call("truck-42", r#"{"load": "bricks"}"#);
    assert_eq!((status, fleet.as_deref()), (200, Some("trucks")));
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        body,
        json!({"fleet": "trucks", "vehicle": "truck-42", "method": "POST",
               "url": "/fleet/vehicles", "body": "{\"load\": \"bricks\"}"})
    );
    assert_eq!(call("boat", "").0, 404);
    drop(function);
}
