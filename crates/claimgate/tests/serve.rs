//! `claimgate serve` end to end: the real binary on loopback ports, a real upstream and a real
//! JWKS server in the test process, real HTTP requests, and the log files it writes.

mod support;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use support::{free_port, now, records, refused_by_serve, start_gateway_on, Gateway, Signer};

const ISS: &str = "https://idp.test/";
const AUD: &str = "api://orders";

fn signer() -> &'static Signer {
    static S: OnceLock<Signer> = OnceLock::new();
    S.get_or_init(|| Signer::new("k1"))
}

fn claims() -> Value {
    json!({"iss": ISS, "aud": AUD, "sub": "alice", "tenant": "acme", "scope": "orders:read", "exp": now() + 600})
}

/// A tiny HTTP server in the test: answers with `respond`, counts requests.
struct TestServer {
    addr: SocketAddr,
    hits: Arc<AtomicU64>,
}

type Handler =
    Arc<dyn Fn(&Request<hyper::body::Incoming>) -> (u16, &'static str, String) + Send + Sync>;

fn start_server(runtime: &tokio::runtime::Runtime, handler: Handler) -> TestServer {
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(AtomicU64::new(0));
    let counter = hits.clone();
    runtime.spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                break;
            };
            let handler = handler.clone();
            let counter = counter.clone();
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
                        counter.fetch_add(1, Ordering::SeqCst);
                        let (status, content_type, body) = handler(&request);
                        async move {
                            let mut response = Response::new(Full::new(Bytes::from(body)));
                            *response.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
                            response
                                .headers_mut()
                                .insert("content-type", content_type.parse().unwrap());
                            Ok::<_, std::convert::Infallible>(response)
                        }
                    });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    TestServer { addr, hits }
}

/// The upstream: echoes what it received as JSON.
fn start_upstream(runtime: &tokio::runtime::Runtime) -> TestServer {
    start_server(
        runtime,
        Arc::new(|request| {
            let headers: serde_json::Map<String, Value> = request
                .headers()
                .iter()
                .map(|(n, v)| (n.as_str().to_owned(), json!(v.to_str().unwrap_or(""))))
                .collect();
            (
                200,
                "application/json",
                json!({"upstream": true, "uri": request.uri().to_string(), "headers": headers})
                    .to_string(),
            )
        }),
    )
}

/// A JWKS server whose document can change, and that can be switched off (answers 503).
struct Jwks {
    server: TestServer,
    document: Arc<Mutex<Value>>,
    up: Arc<AtomicBool>,
}

fn start_jwks(runtime: &tokio::runtime::Runtime, keys: Vec<Value>) -> Jwks {
    let document = Arc::new(Mutex::new(json!({"keys": keys})));
    let up = Arc::new(AtomicBool::new(true));
    let (doc, alive) = (document.clone(), up.clone());
    let server = start_server(
        runtime,
        Arc::new(move |_| {
            if alive.load(Ordering::SeqCst) {
                (200, "application/json", doc.lock().unwrap().to_string())
            } else {
                (503, "text/plain", "down".into())
            }
        }),
    );
    Jwks {
        server,
        document,
        up,
    }
}

fn deployment(jwks_uri: &str, upstream: SocketAddr) -> Value {
    json!({
        "displayName": "orders",
        "pathPrefix": "/v1",
        "specification": {
            "requestPolicies": {"authentication": {
                "type": "JWT_AUTHENTICATION", "tokenHeader": "Authorization", "tokenAuthScheme": "Bearer",
                "issuers": [ISS], "audiences": [AUD],
                "verifyClaims": [{"key": "tenant", "values": ["acme"], "isRequired": true}],
                "publicKeys": {"type": "REMOTE_JWKS", "uri": jwks_uri, "maxCacheDurationInHours": 1}
            }},
            "routes": [
                {"path": "/orders/{id}", "methods": ["GET", "POST"],
                 "backend": {"type": "HTTP_BACKEND", "url": format!("http://{upstream}/backend/orders/${{request.path[id]}}")}},
                {"path": "/stock", "methods": ["GET"],
                 "backend": {"type": "STOCK_RESPONSE_BACKEND", "status": 202, "body": "stocked"}},
                {"path": "/admin", "methods": ["GET"],
                 "requestPolicies": {"authorization": {"type": "ANY_OF", "allowedScope": ["orders:admin"]}},
                 "backend": {"type": "STOCK_RESPONSE_BACKEND", "status": 200}},
                {"path": "/down", "methods": ["GET"],
                 "backend": {"type": "HTTP_BACKEND", "url": "http://127.0.0.1:9/", "connectTimeoutInSeconds": 2}}
            ]
        }
    })
}

fn start_gateway(deployment: &Value, extra: &[&str]) -> Gateway {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("orders.json");
    std::fs::write(&file, deployment.to_string()).unwrap();
    start_gateway_with_file(dir, &file, extra)
}

fn start_gateway_with_file(dir: tempfile::TempDir, file: &Path, extra: &[&str]) -> Gateway {
    start_gateway_on(dir, &[file.to_path_buf()], false, extra)
}

struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
    fn request_id(&self) -> String {
        self.headers["opc-request-id"].to_str().unwrap().to_owned()
    }
}

fn call(
    runtime: &tokio::runtime::Runtime,
    method: &str,
    url: &str,
    token: Option<&str>,
    headers: &[(&str, &str)],
) -> Answer {
    runtime.block_on(async {
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        let mut request = client
            .request(method.parse().unwrap(), url)
            .timeout(Duration::from_secs(20));
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.text().await.unwrap();
        Answer {
            status,
            headers,
            body,
        }
    })
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Log records, waiting briefly for the writer to flush.

#[test]
fn allowed_request_reaches_the_upstream_with_forwarding_headers() {
    let rt = runtime();
    let upstream = start_upstream(&rt);
    let jwks = start_jwks(&rt, vec![signer().jwk()]);
    let gw = start_gateway(
        &deployment(&format!("http://{}/jwks", jwks.server.addr), upstream.addr),
        &[],
    );
    let token = signer().token(claims());
    let answer = call(
        &rt,
        "GET",
        &format!("{}/v1/orders/42?x=1", gw.base),
        Some(&token),
        &[
            ("opc-request-id", "client-id-1"),
            ("traceparent", "00-abc-def-01"),
        ],
    );
    assert_eq!(answer.status, 200, "{}", answer.body);
    let echoed = answer.json();
    assert_eq!(echoed["uri"], "/backend/orders/42?x=1");
    let headers = &echoed["headers"];
    assert_eq!(
        headers["authorization"],
        format!("Bearer {token}"),
        "Authorization reaches the backend unchanged"
    );
    assert_eq!(headers["opc-request-id"], "client-id-1");
    assert_eq!(headers["traceparent"], "00-abc-def-01");
    assert_eq!(headers["host"], upstream.addr.to_string());
    assert_eq!(headers["x-forwarded-for"], "127.0.0.1");
    assert_eq!(headers["x-real-ip"], "127.0.0.1");
    assert_eq!(headers["forwarded"], "for=127.0.0.1");
    assert_eq!(answer.request_id(), "client-id-1");
    let exec = records(&gw.execution_log, "client-id-1", 1);
    assert!(
        exec.iter()
            .any(|r| r["data"]["code"] == "jwtAuthentication.successfulAuthentication"),
        "{exec:?}"
    );
    let access = records(&gw.access_log, "client-id-1", 1);
    assert_eq!(access[0]["data"]["status"], 200);
    assert_eq!(
        access[0]["type"],
        "com.oraclecloud.apigateway.apideployment.access"
    );
    assert_eq!(access[0]["source"], "orders");
}

#[test]
fn refused_requests_get_the_spec_bodies_and_one_record_per_failed_check() {
    let rt = runtime();
    let upstream = start_upstream(&rt);
    let jwks = start_jwks(&rt, vec![signer().jwk()]);
    let gw = start_gateway(
        &deployment(&format!("http://{}/jwks", jwks.server.addr), upstream.addr),
        &[],
    );
    let url = format!("{}/v1/orders/1", gw.base);

    let missing = call(&rt, "GET", &url, None, &[]);
    assert_eq!(missing.status, 401);
    assert_eq!(missing.body, r#"{"message":"Unauthorized","code":401}"#);
    assert_eq!(
        missing.headers["www-authenticate"],
        r#"Bearer error="invalid_token""#
    );
    assert_eq!(missing.headers["content-type"], "application/json");
    let id = missing.request_id();
    assert_eq!(id.len(), 32);
    assert!(id
        .chars()
        .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_lowercase()));

    let mut bad = claims();
    bad["aud"] = json!("api://billing");
    bad["tenant"] = json!("globex");
    let token = signer().token(bad);
    let wrong = call(&rt, "GET", &url, Some(&token), &[]);
    assert_eq!(wrong.status, 401);
    let exec = records(&gw.execution_log, &wrong.request_id(), 2);
    let failed: Vec<(&str, &str)> = exec
        .iter()
        .filter(|r| r["data"]["code"] == "jwtAuthentication.authenticationFailed")
        .map(|r| {
            (
                r["data"]["check"].as_str().unwrap(),
                r["data"]["message"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        failed,
        [
            ("aud", "JWT token not issued for the configured audience."),
            (
                "claim:tenant",
                "JWT token does not have the expected claim value for 'tenant'."
            )
        ]
    );
    let aud = exec.iter().find(|r| r["data"]["check"] == "aud").unwrap();
    assert_eq!(aud["data"]["level"], "WARN");
    assert_eq!(aud["data"]["expected"], json!([AUD]));
    assert_eq!(aud["data"]["actual"], "api://billing");
    assert!(aud["data"]["fix"]
        .as_str()
        .unwrap()
        .contains("api://billing"));
    let log_text = std::fs::read_to_string(&gw.execution_log).unwrap();
    assert!(!log_text.contains(&token), "a token must never be logged");
    assert!(
        !log_text.contains(token.rsplit('.').next().unwrap()),
        "nor its signature"
    );
    assert_eq!(
        upstream.hits.load(Ordering::SeqCst),
        0,
        "refused requests never reach the upstream"
    );

    // `claimgate logs` finds the refused request and explains it.
    let output = Command::new(env!("CARGO_BIN_EXE_claimgate"))
        .args([
            "logs",
            "--file",
            gw.execution_log.to_str().unwrap(),
            "--file",
            gw.access_log.to_str().unwrap(),
            "--request-id",
            &wrong.request_id(),
        ])
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{text}");
    assert!(
        text.contains("aud: JWT token not issued for the configured audience."),
        "{text}"
    );
    assert!(
        text.contains("fix       The token's aud is `api://billing`"),
        "{text}"
    );
    assert!(text.contains("→ 401"), "{text}");
    let none = Command::new(env!("CARGO_BIN_EXE_claimgate"))
        .args([
            "logs",
            "--file",
            gw.execution_log.to_str().unwrap(),
            "--request-id",
            "NOPE",
        ])
        .output()
        .unwrap();
    assert_eq!(none.status.code(), Some(1));
}

#[test]
fn scope_failure_is_403_and_routing_errors_are_404_and_405() {
    let rt = runtime();
    let upstream = start_upstream(&rt);
    let jwks = start_jwks(&rt, vec![signer().jwk()]);
    let gw = start_gateway(
        &deployment(&format!("http://{}/jwks", jwks.server.addr), upstream.addr),
        &[],
    );
    let token = signer().token(claims());
    let admin = call(
        &rt,
        "GET",
        &format!("{}/v1/admin", gw.base),
        Some(&token),
        &[],
    );
    assert_eq!(admin.status, 403);
    assert_eq!(admin.body, r#"{"message":"Forbidden","code":403}"#);
    assert_eq!(
        admin.headers["www-authenticate"],
        r#"Bearer error="insufficient_scope""#
    );
    let exec = records(&gw.execution_log, &admin.request_id(), 2);
    assert!(exec
        .iter()
        .any(|r| r["data"]["code"] == "authorization.unauthorizedRequest"));

    let stock = call(
        &rt,
        "GET",
        &format!("{}/v1/stock", gw.base),
        Some(&token),
        &[],
    );
    assert_eq!((stock.status, stock.body.as_str()), (202, "stocked"));
    let missing = call(
        &rt,
        "GET",
        &format!("{}/v1/nothing", gw.base),
        Some(&token),
        &[],
    );
    assert_eq!(
        (missing.status, missing.body.as_str()),
        (404, r#"{"message":"Not Found","code":404}"#)
    );
    let outside = call(
        &rt,
        "GET",
        &format!("{}/elsewhere", gw.base),
        Some(&token),
        &[],
    );
    assert_eq!(outside.status, 404);
    let wrong_method = call(
        &rt,
        "DELETE",
        &format!("{}/v1/stock", gw.base),
        Some(&token),
        &[],
    );
    assert_eq!(wrong_method.status, 405);
    assert_eq!(wrong_method.headers["allow"], "GET");
}

#[test]
fn backend_failure_is_502_with_the_cause_logged() {
    let rt = runtime();
    let upstream = start_upstream(&rt);
    let jwks = start_jwks(&rt, vec![signer().jwk()]);
    let gw = start_gateway(
        &deployment(&format!("http://{}/jwks", jwks.server.addr), upstream.addr),
        &[],
    );
    let answer = call(
        &rt,
        "GET",
        &format!("{}/v1/down", gw.base),
        Some(&signer().token(claims())),
        &[],
    );
    assert_eq!(answer.status, 502);
    assert_eq!(answer.body, r#"{"message":"Bad Gateway","code":502}"#);
    let exec = records(&gw.execution_log, &answer.request_id(), 2);
    let error = exec
        .iter()
        .find(|r| r["data"]["code"] == "httpBackend.requestError")
        .expect("a backend error record");
    assert_eq!(error["data"]["cause"], "CONNECTION_REFUSED");
    assert_eq!(error["data"]["level"], "ERROR");
}

#[test]
fn the_fix_loop_refused_then_corrected_then_accepted() {
    let rt = runtime();
    let upstream = start_upstream(&rt);
    let jwks = start_jwks(&rt, vec![signer().jwk()]);
    let mut wrong = deployment(&format!("http://{}/jwks", jwks.server.addr), upstream.addr);
    wrong["specification"]["requestPolicies"]["authentication"]["audiences"] =
        json!(["api://order"]);
    let token = signer().token(claims());
    let refused_id = {
        let gw = start_gateway(&wrong, &[]);
        let answer = call(
            &rt,
            "GET",
            &format!("{}/v1/stock", gw.base),
            Some(&token),
            &[],
        );
        assert_eq!(answer.status, 401);
        let exec = records(&gw.execution_log, &answer.request_id(), 1);
        assert_eq!(exec[0]["data"]["check"], "aud");
        answer.request_id()
    };
    let fixed = deployment(&format!("http://{}/jwks", jwks.server.addr), upstream.addr);
    let gw = start_gateway(&fixed, &[]);
    let answer = call(
        &rt,
        "GET",
        &format!("{}/v1/stock", gw.base),
        Some(&token),
        &[],
    );
    assert_eq!(answer.status, 202);
    let exec = records(&gw.execution_log, &answer.request_id(), 1);
    assert!(
        exec.iter()
            .all(|r| r["data"]["code"] != "jwtAuthentication.authenticationFailed"),
        "{exec:?}"
    );
    assert!(records(&gw.execution_log, &refused_id, 0).is_empty());
}

#[test]
fn a_rotated_key_is_accepted_without_restart_and_an_unknown_kid_storm_fetches_once() {
    let rt = runtime();
    let upstream = start_upstream(&rt);
    let jwks = start_jwks(&rt, vec![signer().jwk()]);
    let gw = start_gateway(
        &deployment(&format!("http://{}/jwks", jwks.server.addr), upstream.addr),
        &["--jwks-cooldown", "2"],
    );
    let url = format!("{}/v1/stock", gw.base);
    assert_eq!(
        call(&rt, "GET", &url, Some(&signer().token(claims())), &[]).status,
        202
    );
    assert_eq!(
        jwks.server.hits.load(Ordering::SeqCst),
        1,
        "fetched once at start"
    );

    // A storm of tokens naming kids nobody published: at most one fetch per cooldown.
    std::thread::sleep(Duration::from_millis(2100));
    let stranger = Signer::new("nobody");
    let storm_token = stranger.token(claims());
    let answers: Vec<u16> = rt.block_on(async {
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        let mut handles = Vec::new();
        for _ in 0..50 {
            let request = client.get(&url).bearer_auth(&storm_token).send();
            handles.push(tokio::spawn(request));
        }
        let mut statuses = Vec::new();
        for handle in handles {
            statuses.push(handle.await.unwrap().unwrap().status().as_u16());
        }
        statuses
    });
    assert!(answers.iter().all(|s| *s == 401));
    assert_eq!(
        jwks.server.hits.load(Ordering::SeqCst),
        2,
        "50 unknown-kid requests cause one fetch"
    );

    // Rotation: the provider publishes a new key; a token signed with it is accepted.
    let rotated = Signer::new("k2");
    jwks.document.lock().unwrap()["keys"] = json!([signer().jwk(), rotated.jwk()]);
    std::thread::sleep(Duration::from_millis(2100));
    let answer = call(&rt, "GET", &url, Some(&rotated.token(claims())), &[]);
    assert_eq!(answer.status, 202, "{}", answer.body);

    // The provider goes down: the last good keys keep serving.
    jwks.up.store(false, Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(2100));
    let _ = call(&rt, "GET", &url, Some(&stranger.token(claims())), &[]);
    assert_eq!(
        call(&rt, "GET", &url, Some(&rotated.token(claims())), &[]).status,
        202
    );
}

#[test]
fn jwks_down_at_start_means_500_with_the_cause_logged() {
    let rt = runtime();
    let upstream = start_upstream(&rt);
    let jwks = start_jwks(&rt, vec![signer().jwk()]);
    jwks.up.store(false, Ordering::SeqCst);
    let gw = start_gateway(
        &deployment(&format!("http://{}/jwks", jwks.server.addr), upstream.addr),
        &[],
    );
    let answer = call(
        &rt,
        "GET",
        &format!("{}/v1/stock", gw.base),
        Some(&signer().token(claims())),
        &[],
    );
    assert_eq!(answer.status, 500);
    assert_eq!(
        answer.body,
        r#"{"message":"Internal Server Error","code":500}"#
    );
    let exec = records(&gw.execution_log, &answer.request_id(), 1);
    let bad = exec
        .iter()
        .find(|r| r["data"]["code"] == "jwtAuthentication.badJsonWebKeySet")
        .expect("badJsonWebKeySet record");
    assert_eq!(bad["data"]["level"], "ERROR");
    assert!(
        bad["data"]["message"]
            .as_str()
            .unwrap()
            .contains("HTTP status 503"),
        "{bad}"
    );
}

#[test]
fn a_file_with_unenforced_members_is_refused_by_serve() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rl.json");
    std::fs::write(&file, r#"{"pathPrefix":"/v1","specification":{"requestPolicies":{"usagePlans":{"tokenLocations":["request.headers[x-api-key]"]}},"routes":[{"path":"/x","backend":{"type":"STOCK_RESPONSE_BACKEND","status":200}}]}}"#).unwrap();
    let stderr = refused_by_serve(&[
        "--deployment",
        file.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
    ]);
    assert!(stderr.contains("requestPolicies.usagePlans"), "{stderr}");
}

fn stock_deployment() -> Value {
    json!({"pathPrefix": "/v1", "specification": {"routes": [
        {"path": "/open", "methods": ["GET", "POST"], "backend": {"type": "STOCK_RESPONSE_BACKEND", "status": 200, "body": "open"}}
    ]}})
}

#[test]
fn oversized_headers_get_431_and_oversized_bodies_413_and_the_gateway_keeps_serving() {
    let rt = runtime();
    let gw = start_gateway(&stock_deployment(), &[]);
    let url = format!("{}/v1/open", gw.base);
    let big = "x".repeat(9 * 1024);
    let answer = call(&rt, "GET", &url, None, &[("x-big", &big)]);
    assert_eq!(answer.status, 431);
    // Declares a 21 MiB body and sends none of it: the gateway answers from the header alone.
    {
        use std::io::{Read, Write};
        let address = gw.base.trim_start_matches("http://").to_owned();
        let mut stream = std::net::TcpStream::connect(&address).unwrap();
        let head = format!(
            "POST /v1/open HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
            21 * 1024 * 1024
        );
        stream.write_all(head.as_bytes()).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut answer = [0u8; 64];
        let n = stream.read(&mut answer).unwrap();
        let answer = String::from_utf8_lossy(&answer[..n]);
        assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    }
    assert_eq!(
        call(&rt, "GET", &url, None, &[]).status,
        200,
        "still serving"
    );
}

/// The serving threads' voluntary context switches, by thread id (Linux /proc; the name
/// `claimgate-serve-N` shows truncated to 15 bytes).
fn serving_threads(pid: u32) -> Vec<(String, u64)> {
    let mut threads = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let task = task.unwrap().path();
        let name = std::fs::read_to_string(task.join("comm")).unwrap_or_default();
        let status = std::fs::read_to_string(task.join("status")).unwrap_or_default();
        let switches = status
            .lines()
            .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0);
        if name.starts_with("claimgate-serve") {
            let tid = task.file_name().unwrap().to_string_lossy().into_owned();
            threads.push((tid, switches));
        }
    }
    threads.sort();
    threads
}

#[test]
fn serving_threads_share_the_port_and_every_one_answers() {
    let rt = runtime();
    let gw = start_gateway(&stock_deployment(), &["--threads", "3"]);
    let url = format!("{}/v1/open", gw.base);
    // The other threads start once the first listener is up.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut idle = serving_threads(gw.child.id());
    while idle.len() < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        idle = serving_threads(gw.child.id());
    }
    assert_eq!(idle.len(), 2, "the main thread serves too: {idle:?}");
    // Every call is a new connection; the kernel spreads them over the three listeners.
    let mut ids = std::collections::HashSet::new();
    for _ in 0..45 {
        let answer = call(&rt, "GET", &url, None, &[]);
        assert_eq!(answer.status, 200);
        ids.insert(answer.request_id());
    }
    assert_eq!(ids.len(), 45, "request ids are unique across threads");
    let busy = serving_threads(gw.child.id());
    assert_eq!(busy.len(), 2);
    for ((tid, before), (_, after)) in idle.iter().zip(&busy) {
        assert!(
            after - before >= 3,
            "thread {tid} served (almost) nothing: {before} -> {after} switches"
        );
    }
    let last = ids.iter().next().unwrap();
    assert_eq!(records(&gw.access_log, last, 1).len(), 1);
}

#[test]
fn zero_serving_threads_is_refused() {
    let stderr = refused_by_serve(&["--threads", "0"]);
    assert!(stderr.contains("--threads"), "{stderr}");
}

#[test]
fn a_slow_client_is_cut_off_after_the_read_timeout_without_harming_others() {
    use std::io::{Read, Write};
    let rt = runtime();
    let gw = start_gateway(&stock_deployment(), &["--read-timeout", "1"]);
    let address = gw.base.trim_start_matches("http://").to_owned();
    let mut slow = std::net::TcpStream::connect(&address).unwrap();
    slow.write_all(b"GET /v1/open HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let started = Instant::now();
    assert_eq!(
        call(&rt, "GET", &format!("{}/v1/open", gw.base), None, &[]).status,
        200,
        "others are served meanwhile"
    );
    // Generous bounds for a loaded 2-core machine (8.6 s was seen at load 10); a connection
    // that is never cut waits for the 20 s client timeout and fails.
    slow.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut buffer = Vec::new();
    let _ = slow.read_to_end(&mut buffer);
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(15),
        "closed after {waited:?}"
    );
    let text = String::from_utf8_lossy(&buffer);
    assert!(
        text.is_empty() || text.starts_with("HTTP/1.1 408"),
        "{text}"
    );
}

#[test]
fn a_hanging_backend_gets_504_with_the_cause_logged() {
    let rt = runtime();
    let hang = {
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        rt.spawn(async move {
            let mut held = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                held.push(stream); // accept, never answer
            }
        });
        addr
    };
    let deployment = json!({"pathPrefix": "/v1", "specification": {"routes": [
        {"path": "/slow", "backend": {"type": "HTTP_BACKEND", "url": format!("http://{hang}/"),
         "connectTimeoutInSeconds": 1, "sendTimeoutInSeconds": 1, "readTimeoutInSeconds": 1}}
    ]}});
    let gw = start_gateway(&deployment, &[]);
    let started = Instant::now();
    let answer = call(&rt, "GET", &format!("{}/v1/slow", gw.base), None, &[]);
    assert_eq!(answer.status, 504);
    assert!(started.elapsed() < Duration::from_secs(10));
    let exec = records(&gw.execution_log, &answer.request_id(), 1);
    assert_eq!(exec[0]["data"]["cause"], "TIMEOUT");
}

#[test]
fn a_jwks_endpoint_answering_garbage_or_megabytes_is_named_in_the_log() {
    let rt = runtime();
    for (body, content_type, cause) in [
        (
            "this is not json".to_owned(),
            "application/json",
            "not a JSON Web Key Set",
        ),
        ("<html>".to_owned(), "text/html", "content type 'text/html'"),
        (
            format!(
                "{{\"keys\":[],\"pad\":\"{}\"}}",
                "x".repeat(10 * 1024 * 1024)
            ),
            "application/json",
            "larger than",
        ),
    ] {
        let body = Arc::new(body);
        let server = start_server(
            &rt,
            Arc::new(move |_| (200, content_type, body.as_str().to_owned())),
        );
        let upstream = start_upstream(&rt);
        let gw = start_gateway(
            &deployment(&format!("http://{}/jwks", server.addr), upstream.addr),
            &[],
        );
        let answer = call(
            &rt,
            "GET",
            &format!("{}/v1/stock", gw.base),
            Some(&signer().token(claims())),
            &[],
        );
        assert_eq!(answer.status, 500, "{cause}");
        let log = std::fs::read_to_string(&gw.execution_log).unwrap_or_default();
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut log = log;
        while !log.contains(cause) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
            log = std::fs::read_to_string(&gw.execution_log).unwrap_or_default();
        }
        assert!(
            log.contains("badJsonWebKeySet") && log.contains(cause),
            "{cause}: {log}"
        );
    }
}

#[test]
fn h2c_prior_knowledge_is_served() {
    let rt = runtime();
    let gw = start_gateway(&stock_deployment(), &[]);
    let (status, version) = rt.block_on(async {
        let client = reqwest::Client::builder()
            .no_proxy()
            .http2_prior_knowledge()
            .build()
            .unwrap();
        let response = client
            .get(format!("{}/v1/open", gw.base))
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.version())
    });
    assert_eq!(status, 200);
    assert_eq!(version, reqwest::Version::HTTP_2);
}

#[test]
fn sigterm_lets_the_in_flight_request_finish_then_exits_0() {
    let rt = runtime();
    let slow_upstream = start_server(
        &rt,
        Arc::new(|_| {
            std::thread::sleep(Duration::from_millis(1500));
            (200, "text/plain", "finished".into())
        }),
    );
    let deployment = json!({"pathPrefix": "/v1", "specification": {"routes": [
        {"path": "/slow", "backend": {"type": "HTTP_BACKEND", "url": format!("http://{}/", slow_upstream.addr)}}
    ]}});
    let mut gw = start_gateway(&deployment, &[]);
    let url = format!("{}/v1/slow", gw.base);
    let in_flight = rt.spawn(async move {
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        let response = client.get(url).send().await.unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    });
    // SIGTERM only once the request is in flight: the upstream has it.
    let deadline = Instant::now() + Duration::from_secs(10);
    while slow_upstream.hits.load(Ordering::SeqCst) == 0 {
        assert!(
            Instant::now() < deadline,
            "the request never reached the upstream"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let pid = gw.child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let (status, body) = rt.block_on(in_flight).unwrap();
    assert_eq!((status, body.as_str()), (200, "finished"));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(exit) = gw.child.try_wait().unwrap() {
            assert_eq!(exit.code(), Some(0));
            break;
        }
        assert!(
            Instant::now() < deadline,
            "claimgate did not exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // The request answered during the shutdown is in the access log: records still queued at
    // the exit are written, not lost with the writer task.
    let access = std::fs::read_to_string(&gw.access_log).unwrap_or_default();
    assert!(
        access.lines().any(|line| {
            serde_json::from_str::<Value>(line).is_ok_and(|record| {
                record["data"]["requestUri"] == "/v1/slow" && record["data"]["status"] == 200
            })
        }),
        "no access record for the request answered during shutdown:\n{access}"
    );
}

fn versioned(body: &str) -> Value {
    json!({"displayName": "orders", "pathPrefix": "/v1", "specification": {"routes": [
        {"path": "/version", "methods": ["GET"], "backend": {"type": "STOCK_RESPONSE_BACKEND", "status": 200, "body": body}}
    ]}})
}

/// Writes `text` to `path` atomically (write a sibling, then rename over it).
fn atomic_write(path: &Path, text: &str) {
    let temporary = path.with_extension("tmp");
    std::fs::write(&temporary, text).unwrap();
    std::fs::rename(&temporary, path).unwrap();
}

fn wait_for_body(rt: &tokio::runtime::Runtime, url: &str, body: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while call(rt, "GET", url, None, &[]).body != body {
        assert!(Instant::now() < deadline, "never saw {body}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn reloads_under_load_lose_no_request_and_invalid_files_are_rejected() {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    // The deployment path is a symlink into a versioned folder, as Kubernetes mounts ConfigMaps.
    let (first, second) = (dir.path().join("rev1"), dir.path().join("rev2"));
    std::fs::create_dir_all(&first).unwrap();
    std::fs::create_dir_all(&second).unwrap();
    std::fs::write(first.join("orders.json"), versioned("v1").to_string()).unwrap();
    let link = dir.path().join("orders.json");
    std::os::unix::fs::symlink(first.join("orders.json"), &link).unwrap();
    let admin_port = free_port();
    let admin = format!("127.0.0.1:{admin_port}");
    let gw = start_gateway_with_file(dir, &link, &["--admin", &admin]);
    let url = format!("{}/v1/version", gw.base);

    // Steady load from four clients while the configuration changes under it.
    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(AtomicU64::new(0));
    let served = Arc::new(AtomicU64::new(0));
    let mut load = Vec::new();
    for _ in 0..4 {
        let (stop, failures, served, url) =
            (stop.clone(), failures.clone(), served.clone(), url.clone());
        load.push(rt.spawn(async move {
            let client = reqwest::Client::builder().no_proxy().build().unwrap();
            while !stop.load(Ordering::SeqCst) {
                match client.get(&url).send().await {
                    Ok(r) if r.status() == 200 => {
                        let body = r.text().await.unwrap_or_default();
                        if body.starts_with('v') {
                            served.fetch_add(1, Ordering::SeqCst);
                        } else {
                            failures.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                    _ => {
                        failures.fetch_add(1, Ordering::SeqCst);
                    }
                }
            }
        }));
    }
    wait_for_body(&rt, &url, "v1");
    // 1. an atomic rename of the symlink's target
    atomic_write(&first.join("orders.json"), &versioned("v2").to_string());
    wait_for_body(&rt, &url, "v2");
    // 2. an invalid file: rejected, v2 keeps serving
    atomic_write(
        &first.join("orders.json"),
        r#"{"pathPrefix":"/v1","specification":{"routes":[{"path":"no-slash"}]}}"#,
    );
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(call(&rt, "GET", &url, None, &[]).body, "v2");
    // 3. a symlink swap to another folder
    std::fs::write(second.join("orders.json"), versioned("v3").to_string()).unwrap();
    let staged = link.with_extension("new");
    std::os::unix::fs::symlink(second.join("orders.json"), &staged).unwrap();
    std::fs::rename(&staged, &link).unwrap();
    wait_for_body(&rt, &url, "v3");
    // 4. SIGHUP reloads even when nothing changed
    assert!(Command::new("kill")
        .args(["-HUP", &gw.child.id().to_string()])
        .status()
        .unwrap()
        .success());
    std::thread::sleep(Duration::from_millis(500));

    stop.store(true, Ordering::SeqCst);
    for task in load {
        rt.block_on(task).unwrap();
    }
    assert_eq!(
        failures.load(Ordering::SeqCst),
        0,
        "no request failed during reloads"
    );
    assert!(served.load(Ordering::SeqCst) > 50, "the load really ran");

    let log = std::fs::read_to_string(&gw.execution_log).unwrap();
    let codes: Vec<String> = log
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|r| r["data"]["code"].as_str().map(str::to_owned))
        .filter(|c| c.starts_with("configuration."))
        .collect();
    assert!(
        codes
            .iter()
            .filter(|c| *c == "configuration.reloaded")
            .count()
            >= 3,
        "{codes:?}"
    );
    assert_eq!(
        codes
            .iter()
            .filter(|c| *c == "configuration.reloadRejected")
            .count(),
        1,
        "{codes:?}"
    );
    assert!(
        log.contains("routes[0].path"),
        "the rejection names the error"
    );
    let metrics = call(&rt, "GET", &format!("http://{admin}/metrics"), None, &[]).body;
    assert!(
        metrics.contains(r#"claimgate_config_reloads_total{result="rejected"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"claimgate_config_reloads_total{result="ok"}"#),
        "{metrics}"
    );
}

#[test]
fn admin_endpoints_report_liveness_readiness_and_metrics_by_failed_check() {
    let rt = runtime();
    let upstream = start_upstream(&rt);
    let jwks = start_jwks(&rt, vec![signer().jwk()]);
    jwks.up.store(false, Ordering::SeqCst);
    let admin = format!("127.0.0.1:{}", free_port());
    let gw = start_gateway(
        &deployment(&format!("http://{}/jwks", jwks.server.addr), upstream.addr),
        &["--admin", &admin, "--jwks-cooldown", "1"],
    );
    let admin_url = |path: &str| format!("http://{admin}{path}");
    assert_eq!(
        call(&rt, "GET", &admin_url("/livez"), None, &[]).status,
        200
    );
    let not_ready = call(&rt, "GET", &admin_url("/readyz"), None, &[]);
    assert_eq!(not_ready.status, 503);
    assert!(
        not_ready.body.contains("/v1: key set not loaded"),
        "{}",
        not_ready.body
    );
    jwks.up.store(true, Ordering::SeqCst);
    let deadline = Instant::now() + Duration::from_secs(10);
    while call(&rt, "GET", &admin_url("/readyz"), None, &[]).status != 200 {
        assert!(Instant::now() < deadline, "never became ready");
        std::thread::sleep(Duration::from_millis(200));
    }

    let good = signer().token(claims());
    let mut wrong = claims();
    wrong["aud"] = json!("api://billing");
    let wrong = signer().token(wrong);
    for _ in 0..3 {
        assert_eq!(
            call(
                &rt,
                "GET",
                &format!("{}/v1/stock", gw.base),
                Some(&good),
                &[]
            )
            .status,
            202
        );
    }
    assert_eq!(
        call(
            &rt,
            "GET",
            &format!("{}/v1/stock", gw.base),
            Some(&wrong),
            &[]
        )
        .status,
        401
    );
    let metrics = call(&rt, "GET", &admin_url("/metrics"), None, &[]).body;
    for expected in [
        r#"claimgate_auth_decisions_total{deployment="orders",decision="allow"} 3"#,
        r#"claimgate_auth_decisions_total{deployment="orders",decision="deny"} 1"#,
        r#"claimgate_auth_check_failures_total{deployment="orders",check="aud"} 1"#,
        r#"claimgate_key_fetches_total{deployment="orders",kind="jwks",result="error"}"#,
        r#"claimgate_key_fetches_total{deployment="orders",kind="jwks",result="ok"} 1"#,
        r#"claimgate_token_cache_total{result="hit"} 2"#,
        r#"http_server_request_duration_seconds_count{deployment="orders",route="/stock",method="GET",status="202"} 3"#,
    ] {
        assert!(
            metrics.contains(expected),
            "missing {expected} in\n{metrics}"
        );
    }
    assert!(
        !metrics.contains("route=\"/v1/stock\""),
        "route labels are templates without the prefix"
    );
}

/// A self-signed certificate for localhost and 127.0.0.1, as (certificate PEM, key PEM).
fn self_signed() -> (String, String) {
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .unwrap();
    (certified.cert.pem(), certified.signing_key.serialize_pem())
}

fn https_get(
    rt: &tokio::runtime::Runtime,
    url: &str,
    trusted_pem: &str,
) -> Result<(u16, reqwest::Version), String> {
    rt.block_on(async {
        let client = reqwest::Client::builder()
            .no_proxy()
            .tls_certs_only([reqwest::Certificate::from_pem(trusted_pem.as_bytes()).unwrap()])
            .build()
            .unwrap();
        let response = client.get(url).send().await.map_err(|e| format!("{e:?}"))?;
        Ok((response.status().as_u16(), response.version()))
    })
}

#[test]
fn https_is_served_with_h2_and_certificates_reload_with_the_config() {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed();
    let (cert_file, key_file) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_file, &cert).unwrap();
    std::fs::write(&key_file, &key).unwrap();
    let file = dir.path().join("open.json");
    std::fs::write(&file, stock_deployment().to_string()).unwrap();
    let gw = start_gateway_with_file(
        dir,
        &file,
        &[
            "--tls-cert",
            cert_file.to_str().unwrap(),
            "--tls-key",
            key_file.to_str().unwrap(),
        ],
    );
    let url = gw.base.replace("http://127.0.0.1", "https://localhost") + "/v1/open";
    assert_eq!(
        https_get(&rt, &url, &cert).unwrap(),
        (200, reqwest::Version::HTTP_2)
    );

    // New certificate files are picked up; the old certificate is no longer presented.
    let (new_cert, new_key) = self_signed();
    std::fs::write(&key_file, &new_key).unwrap();
    std::fs::write(&cert_file, &new_cert).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while https_get(&rt, &url, &new_cert).is_err() {
        assert!(
            Instant::now() < deadline,
            "the new certificate was never served"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        https_get(&rt, &url, &cert).is_err(),
        "the old certificate is gone"
    );
}

#[test]
fn a_missing_certificate_is_a_clear_configuration_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("open.json");
    std::fs::write(&file, stock_deployment().to_string()).unwrap();
    let missing = dir.path().join("nope.pem");
    let stderr = refused_by_serve(&[
        "--deployment",
        file.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--tls-cert",
        missing.to_str().unwrap(),
        "--tls-key",
        missing.to_str().unwrap(),
    ]);
    assert!(
        stderr.contains("cannot read certificates from --tls-cert"),
        "{stderr}"
    );
}

#[test]
fn transformations_shape_the_backend_request_and_identity_headers_cannot_be_spoofed() {
    let rt = runtime();
    let upstream = start_upstream(&rt);
    let jwks = start_jwks(&rt, vec![signer().jwk()]);
    let mut file = deployment(&format!("http://{}/jwks", jwks.server.addr), upstream.addr);
    file["specification"]["routes"][0]["requestPolicies"] = json!({
        "headerTransformations": {
            "setHeaders": {"items": [
                {"name": "X-User", "values": ["${request.auth[sub]}"], "ifExists": "APPEND"},
                {"name": "X-Order", "values": ["order-${request.path[id]}"]},
                {"name": "X-Keep", "values": ["gateway"], "ifExists": "SKIP"}
            ]},
            "renameHeaders": {"items": [{"from": "X-Old", "to": "X-New"}]},
            "filterHeaders": {"type": "BLOCK", "items": [{"name": "X-Secret"}]}
        },
        "queryParameterTransformations": {
            "setQueryParameters": {"items": [{"name": "tenant", "values": ["${request.auth[tenant]}"]}]},
            "filterQueryParameters": {"type": "BLOCK", "items": [{"name": "debug"}]}
        }
    });
    file["specification"]["routes"][0]["responsePolicies"] = json!({
        "headerTransformations": {"setHeaders": {"items": [{"name": "X-Served-By", "values": ["claimgate"]}]}}
    });
    let gw = start_gateway(&file, &[]);
    let token = signer().token(claims());
    let answer = call(
        &rt,
        "GET",
        &format!("{}/v1/orders/7?debug=1&page=2", gw.base),
        Some(&token),
        &[
            ("X-User", "admin"),
            ("X-Keep", "client"),
            ("X-Old", "renamed"),
            ("X-Secret", "s3cret"),
        ],
    );
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.headers["x-served-by"], "claimgate");
    let echoed = answer.json();
    let headers = &echoed["headers"];
    assert_eq!(
        headers["x-user"], "alice",
        "the claim replaces the client's value even with APPEND"
    );
    assert_eq!(headers["x-order"], "order-7");
    assert_eq!(
        headers["x-keep"], "client",
        "SKIP keeps what the client sent"
    );
    assert_eq!(headers["x-new"], "renamed");
    assert!(
        headers.get("x-old").is_none() && headers.get("x-secret").is_none(),
        "{headers}"
    );
    assert_eq!(echoed["uri"], "/backend/orders/7?page=2&tenant=acme");

    // A claim that is not a valid header value is never sent, and the log says why.
    let mut evil = claims();
    evil["sub"] = json!("alice\r\nX-Admin: true");
    let answer = call(
        &rt,
        "GET",
        &format!("{}/v1/orders/7", gw.base),
        Some(&signer().token(evil)),
        &[],
    );
    assert_eq!(answer.status, 200);
    let headers = &answer.json()["headers"];
    assert!(
        headers.get("x-user").is_none() && headers.get("x-admin").is_none(),
        "{headers}"
    );
    let exec = records(&gw.execution_log, &answer.request_id(), 2);
    assert!(
        exec.iter()
            .any(|r| r["data"]["code"] == "headerTransformation.badHeaderValue"),
        "{exec:?}"
    );
}

#[test]
fn a_modify_response_failure_policy_replaces_the_401() {
    let rt = runtime();
    let deployment = json!({"pathPrefix": "/v1", "specification": {
        "requestPolicies": {"authentication": {
            "type": "TOKEN_AUTHENTICATION", "tokenHeader": "Authorization", "tokenAuthScheme": "Bearer",
            "validationPolicy": {"type": "STATIC_KEYS",
                "keys": [{"kid": "k1", "format": "JSON_WEB_KEY", "kty": "RSA",
                          "n": signer().jwk()["n"], "e": signer().jwk()["e"]}],
                "additionalValidationPolicy": {"audiences": [AUD]}},
            "validationFailurePolicy": {"type": "MODIFY_RESPONSE", "responseCode": "302",
                "responseMessage": "Sign in first, ${request.headers[X-Who]}.",
                "responseHeaderTransformations": {"setHeaders": {"items": [
                    {"name": "Location", "values": ["https://login.example/?back=${request.path[id]}"]}]}}}
        }},
        "routes": [{"path": "/orders/{id}", "methods": ["GET"], "backend": {"type": "STOCK_RESPONSE_BACKEND", "status": 200, "body": "ok"}}]
    }});
    let gw = start_gateway(&deployment, &[]);
    let url = format!("{}/v1/orders/42", gw.base);
    let refused = rt.block_on(async {
        let client = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let response = client
            .get(&url)
            .header("X-Who", "alice")
            .send()
            .await
            .unwrap();
        (
            response.status().as_u16(),
            response.headers().clone(),
            response.text().await.unwrap(),
        )
    });
    assert_eq!(refused.0, 302);
    assert_eq!(refused.1["location"], "https://login.example/?back=42");
    assert_eq!(refused.2, "Sign in first, alice.");
    assert!(
        refused.1.get("www-authenticate").is_none(),
        "the policy replaces the default answer"
    );
    let token = signer().token(claims());
    assert_eq!(
        call(&rt, "GET", &url, Some(&token), &[]).status,
        200,
        "a valid token is not affected"
    );
}

#[test]
fn claim_values_can_be_redacted_and_sigusr1_reopens_rotated_logs() {
    let rt = runtime();
    let upstream = start_upstream(&rt);
    let jwks = start_jwks(&rt, vec![signer().jwk()]);
    let gw = start_gateway(
        &deployment(&format!("http://{}/jwks", jwks.server.addr), upstream.addr),
        &["--redact-claim-values"],
    );
    let mut wrong = claims();
    wrong["aud"] = json!("api://billing");
    let answer = call(
        &rt,
        "GET",
        &format!("{}/v1/stock", gw.base),
        Some(&signer().token(wrong.clone())),
        &[],
    );
    assert_eq!(answer.status, 401);
    let exec = records(&gw.execution_log, &answer.request_id(), 1);
    let aud = exec.iter().find(|r| r["data"]["check"] == "aud").unwrap();
    assert!(
        aud["data"]["actual"]
            .as_str()
            .unwrap()
            .starts_with("sha256:"),
        "{aud}"
    );
    assert_eq!(
        aud["data"]["expected"],
        json!([AUD]),
        "policy values are not claim values"
    );
    assert!(!std::fs::read_to_string(&gw.execution_log)
        .unwrap()
        .contains("api://billing"));

    // Rotation: rename the file, send SIGUSR1, and new records go to a new file.
    let rotated = gw.execution_log.with_extension("log.1");
    std::fs::rename(&gw.execution_log, &rotated).unwrap();
    assert!(Command::new("kill")
        .args(["-USR1", &gw.child.id().to_string()])
        .status()
        .unwrap()
        .success());
    std::thread::sleep(Duration::from_millis(300));
    let answer = call(
        &rt,
        "GET",
        &format!("{}/v1/stock", gw.base),
        Some(&signer().token(wrong)),
        &[],
    );
    assert_eq!(
        records(&gw.execution_log, &answer.request_id(), 1).len(),
        1,
        "the new file has the new records"
    );
    assert!(records(&rotated, &answer.request_id(), 0).is_empty());
}

#[test]
fn a_reload_while_the_key_server_is_down_keeps_the_last_good_keys() {
    let rt = runtime();
    let upstream = start_upstream(&rt);
    let jwks = start_jwks(&rt, vec![signer().jwk()]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("orders.json");
    let mut spec = deployment(&format!("http://{}/jwks", jwks.server.addr), upstream.addr);
    std::fs::write(&file, spec.to_string()).unwrap();
    let gw = start_gateway_with_file(dir, &file, &["--jwks-cooldown", "1"]);
    let url = format!("{}/v1/stock", gw.base);
    let token = signer().token(claims());
    assert_eq!(call(&rt, "GET", &url, Some(&token), &[]).body, "stocked");

    jwks.up.store(false, Ordering::SeqCst);
    spec["specification"]["routes"][1]["backend"]["body"] = json!("restocked");
    atomic_write(&file, &spec.to_string());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let answer = call(&rt, "GET", &url, Some(&token), &[]);
        assert_eq!(answer.status, 202, "{}", answer.body);
        if answer.body == "restocked" {
            break;
        }
        assert!(Instant::now() < deadline, "the reload never happened");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        jwks.server.hits.load(Ordering::SeqCst),
        1,
        "the reload reused the key set"
    );
}

#[test]
fn https_backends_are_trusted_through_the_system_roots_or_a_configured_ca() {
    let rt = runtime();
    // The HTTPS backend is a second gateway serving a stock response over TLS.
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed();
    let (cert_file, key_file) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_file, &cert).unwrap();
    std::fs::write(&key_file, &key).unwrap();
    let backend_file = dir.path().join("open.json");
    std::fs::write(&backend_file, stock_deployment().to_string()).unwrap();
    let backend_dir = tempfile::tempdir().unwrap();
    let backend = start_gateway_with_file(
        backend_dir,
        &backend_file,
        &[
            "--tls-cert",
            cert_file.to_str().unwrap(),
            "--tls-key",
            key_file.to_str().unwrap(),
        ],
    );
    let https = backend
        .base
        .replace("http://127.0.0.1", "https://localhost")
        + "/v1/open";
    let front = json!({"pathPrefix": "/v1", "specification": {"routes": [
        {"path": "/x", "methods": ["GET"], "backend": {"type": "HTTP_BACKEND", "url": https}}
    ]}});

    let trusting = start_gateway(&front, &["--ca", cert_file.to_str().unwrap()]);
    let answer = call(&rt, "GET", &format!("{}/v1/x", trusting.base), None, &[]);
    assert_eq!((answer.status, answer.body.as_str()), (200, "open"));

    let untrusting = start_gateway(&front, &[]);
    let answer = call(&rt, "GET", &format!("{}/v1/x", untrusting.base), None, &[]);
    assert_eq!(answer.status, 502);
    let exec = records(&untrusting.execution_log, &answer.request_id(), 1);
    assert_eq!(exec[0]["data"]["cause"], "HANDSHAKE_FAILED", "{exec:?}");

    let bad = Command::new(env!("CARGO_BIN_EXE_claimgate"))
        .args([
            "serve",
            "--deployment",
            backend_file.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ])
        .args(["--ca", key_file.with_extension("missing").to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("cannot read --ca"));
}
