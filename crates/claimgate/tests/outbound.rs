//! What claimgate reads and whom it calls because a file says so (issue 11, findings 6, 10, 11
//! and 12): file inputs bounded and refused when they are not regular files, the reload watcher
//! reading nothing that did not change, outbound calls announced and kept off link-local
//! addresses, client secrets sent only to the discovery document's own host, introspection
//! bounded (junk tokens, concurrency, bytes), and introspection answers that cannot panic.
//!
//! The identity provider here is a small hand-written HTTP server on 127.0.0.1 that records
//! every request it gets (the secret included), so a test can prove what never reached it.

use serde_json::{json, Value};
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod support;

use support::*;

/// `claimgate ARGS`, killed if it has not ended within `limit` (a hang fails the test, it does
/// not stall the suite); returns its output and how long it took.
fn run_within(args: &[&str], limit: Duration) -> (Output, Duration) {
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_claimgate"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("claimgate {args:?} did not end within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = child.wait_with_output().unwrap();
    (output, started.elapsed())
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn stock_deployment() -> Value {
    json!({"pathPrefix": "/v1", "specification": {"routes": [
        {"path": "/open", "methods": ["GET"], "backend": {"type": "STOCK_RESPONSE_BACKEND", "status": 200, "body": "open"}}
    ]}})
}

fn write(dir: &Path, name: &str, contents: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path
}

fn mkfifo(path: &Path) {
    let status = Command::new("mkfifo").arg(path).status().unwrap();
    assert!(status.success());
}

/// A JWT_AUTHENTICATION deployment whose keys are at `jwks_uri`.
fn jwks_deployment(jwks_uri: &str) -> Value {
    json!({"pathPrefix": "/v1", "specification": {
        "requestPolicies": {"authentication": {
            "type": "JWT_AUTHENTICATION", "tokenHeader": "Authorization", "tokenAuthScheme": "Bearer",
            "issuers": ["https://issuer.example"], "audiences": ["api://orders"],
            "publicKeys": {"type": "REMOTE_JWKS", "uri": jwks_uri, "maxCacheDurationInHours": 1}
        }},
        "routes": [{"path": "/open", "methods": ["GET"],
                    "backend": {"type": "STOCK_RESPONSE_BACKEND", "status": 200, "body": "open"}}]
    }})
}

/// A TOKEN_AUTHENTICATION deployment with REMOTE_DISCOVERY at `discovery_uri` (client
/// `gateway`, secret id `gw`).
fn discovery_deployment(discovery_uri: &str) -> Value {
    let issuer = discovery_uri
        .trim_end_matches("/.well-known/openid-configuration")
        .to_owned();
    json!({"pathPrefix": "/v1", "specification": {
        "requestPolicies": {"authentication": {
            "type": "TOKEN_AUTHENTICATION", "tokenHeader": "Authorization", "tokenAuthScheme": "Bearer",
            "validationPolicy": {
                "type": "REMOTE_DISCOVERY",
                "clientDetails": {"type": "CUSTOM", "clientId": "gateway", "clientSecretId": "gw"},
                "sourceUriDetails": {"type": "DISCOVERY_URI", "uri": discovery_uri},
                "maxCacheDurationInHours": 1,
                "additionalValidationPolicy": {"issuers": [issuer]}
            }
        }},
        "routes": [{"path": "/open", "methods": ["GET"],
                    "backend": {"type": "STOCK_RESPONSE_BACKEND", "status": 200, "body": "open"}}]
    }})
}

const SECRET: &str = "gateway-secret-value";

fn secrets_file(dir: &Path) -> PathBuf {
    write(
        dir,
        "secrets.json",
        json!({ "gw": SECRET }).to_string().as_bytes(),
    )
}

/// One request as the fake identity provider saw it.
#[derive(Debug, Clone)]
struct Seen {
    line: String,
    head: String,
    body: String,
}

impl Seen {
    fn carries_the_secret(&self) -> bool {
        use base64::Engine as _;
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("gateway:{SECRET}"));
        let all = format!("{}{}", self.head, self.body);
        all.contains(SECRET) || all.contains(&basic)
    }
}

/// What the fake identity provider answers.
#[derive(Clone)]
struct Script {
    /// The discovery document (`issuer` is filled in).
    discovery: Value,
    /// The introspection answer.
    introspection: Value,
    /// How long an introspection takes.
    delay: Duration,
}

/// A hand-written identity provider on 127.0.0.1: discovery at
/// `/.well-known/openid-configuration`, a JWKS at `/jwks`, introspection at `/introspect`.
/// Records every request and the most introspections it had in flight at once.
struct Idp {
    port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
    in_flight: Arc<AtomicUsize>,
    most_in_flight: Arc<AtomicUsize>,
}

impl Idp {
    fn start_on(port: u16, script: Script) -> Self {
        let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
        let idp = Self {
            port,
            seen: Arc::default(),
            in_flight: Arc::default(),
            most_in_flight: Arc::default(),
        };
        let (seen, in_flight, most) = (
            idp.seen.clone(),
            idp.in_flight.clone(),
            idp.most_in_flight.clone(),
        );
        let issuer = idp.issuer();
        // The thread ends with the test process; each connection has its own thread.
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let (seen, in_flight, most, script, issuer) = (
                    seen.clone(),
                    in_flight.clone(),
                    most.clone(),
                    script.clone(),
                    issuer.clone(),
                );
                std::thread::spawn(move || {
                    serve_idp(stream, &seen, &in_flight, &most, &script, &issuer)
                });
            }
        });
        idp
    }

    fn issuer(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn discovery_uri(&self) -> String {
        format!("{}/.well-known/openid-configuration", self.issuer())
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    fn introspections(&self) -> usize {
        self.seen()
            .iter()
            .filter(|s| s.line.contains("/introspect"))
            .count()
    }
}

fn serve_idp(
    stream: TcpStream,
    seen: &Mutex<Vec<Seen>>,
    in_flight: &AtomicUsize,
    most: &AtomicUsize,
    script: &Script,
    issuer: &str,
) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut stream = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut head = String::new();
        let mut length = 0;
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).unwrap_or(0) == 0 {
                return;
            }
            if header == "\r\n" {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap_or(0);
                }
            }
            head.push_str(&header);
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let body = String::from_utf8_lossy(&body).into_owned();
        seen.lock().unwrap().push(Seen {
            line: line.clone(),
            head,
            body,
        });
        let answer = if line.contains("/.well-known/openid-configuration") {
            let mut document = script.discovery.clone();
            document["issuer"] = json!(issuer);
            document
        } else if line.contains("/jwks") {
            json!({"keys": []})
        } else if line.contains("/introspect") {
            let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            most.fetch_max(now, Ordering::SeqCst);
            std::thread::sleep(script.delay);
            in_flight.fetch_sub(1, Ordering::SeqCst);
            script.introspection.clone()
        } else {
            json!({})
        };
        let answer = answer.to_string();
        let response = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{answer}",
            answer.len()
        );
        if stream.write_all(response.as_bytes()).is_err() {
            return;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Files
// ---------------------------------------------------------------------------------------------

#[test]
fn a_symlink_to_dev_zero_is_refused_at_once_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let zero = dir.path().join("zero.json");
    std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
    let deployment = write(
        dir.path(),
        "ok.json",
        stock_deployment().to_string().as_bytes(),
    );
    let zero = zero.to_str().unwrap();
    let token = format!("@{zero}");
    for args in [
        vec!["validate", zero],
        vec!["check", "--deployment", zero, "--request", "GET /v1/open"],
        vec![
            "check",
            "--deployment",
            deployment.to_str().unwrap(),
            "--request",
            "GET /v1/open",
            "--token",
            &token,
        ],
        vec!["logs", "--file", zero, "--request-id", "x"],
    ] {
        let (output, took) = run_within(&args, Duration::from_secs(20));
        let said = text(&output);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {said}");
        assert!(
            said.contains(zero) && said.contains("not a regular file"),
            "{args:?}: {said}"
        );
        assert!(took < Duration::from_secs(5), "{args:?} took {took:?}");
    }
}

#[test]
fn a_fifo_is_refused_without_hanging() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("pipe.json");
    mkfifo(&fifo);
    let deployment = write(
        dir.path(),
        "ok.json",
        stock_deployment().to_string().as_bytes(),
    );
    let fifo = fifo.to_str().unwrap();
    let recorded = ["--jwks", "--introspection", "--secrets"];
    let mut runs = vec![
        vec!["validate".to_owned(), fifo.to_owned()],
        vec![
            "validate".to_owned(),
            deployment.to_str().unwrap().to_owned(),
            "--secrets".to_owned(),
            fifo.to_owned(),
        ],
        vec![
            "logs".to_owned(),
            "--file".to_owned(),
            fifo.to_owned(),
            "--request-id".to_owned(),
            "x".to_owned(),
        ],
    ];
    // Deployments that read those files (nothing listens at their URIs: they stay offline).
    let jwks = write(
        dir.path(),
        "jwks.json",
        jwks_deployment("https://127.0.0.1:9/jwks")
            .to_string()
            .as_bytes(),
    );
    let discovery = write(
        dir.path(),
        "discovery.json",
        discovery_deployment("https://127.0.0.1:9/.well-known/openid-configuration")
            .to_string()
            .as_bytes(),
    );
    for (flag, file) in recorded.iter().zip([&jwks, &discovery, &discovery]) {
        runs.push(
            [
                "check",
                "--deployment",
                file.to_str().unwrap(),
                "--request",
                "GET /v1/open",
                "--token",
                "opaque-token",
                flag,
                fifo,
            ]
            .map(str::to_owned)
            .to_vec(),
        );
    }
    for args in runs {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (output, _) = run_within(&args, Duration::from_secs(10));
        let said = text(&output);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {said}");
        assert!(
            said.contains("a FIFO, not a regular file"),
            "{args:?}: {said}"
        );
    }
}

#[test]
fn oversized_files_are_refused_with_their_limit_and_symlinks_to_files_work() {
    let dir = tempfile::tempdir().unwrap();
    // A valid deployment padded with white space past OCI's 2 MiB.
    let mut big = stock_deployment().to_string().into_bytes();
    big.resize(2 * 1024 * 1024 + 1, b' ');
    let big = write(dir.path(), "big.json", &big);
    let (output, _) = run_within(
        &["validate", big.to_str().unwrap()],
        Duration::from_secs(20),
    );
    let said = text(&output);
    assert_eq!(output.status.code(), Some(2), "{said}");
    assert!(said.contains("larger than the limit of 2 MiB"), "{said}");

    let good = write(
        dir.path(),
        "good.json",
        stock_deployment().to_string().as_bytes(),
    );
    let token = write(dir.path(), "token.txt", &vec![b'a'; 64 * 1024 + 1]);
    let (output, _) = run_within(
        &[
            "check",
            "--deployment",
            good.to_str().unwrap(),
            "--request",
            "GET /v1/open",
            "--token",
            &format!("@{}", token.display()),
        ],
        Duration::from_secs(20),
    );
    let said = text(&output);
    assert_eq!(output.status.code(), Some(2), "{said}");
    assert!(said.contains("larger than the limit of 64 KiB"), "{said}");

    let secrets = write(dir.path(), "secrets.json", &vec![b' '; 1024 * 1024 + 1]);
    let (output, _) = run_within(
        &[
            "validate",
            good.to_str().unwrap(),
            "--secrets",
            secrets.to_str().unwrap(),
        ],
        Duration::from_secs(20),
    );
    let said = text(&output);
    assert_eq!(output.status.code(), Some(2), "{said}");
    assert!(said.contains("larger than the limit of 1 MiB"), "{said}");

    // Kubernetes mounts: a symlink to a symlink to the file.
    let data = dir.path().join("..data");
    std::fs::create_dir(dir.path().join("v1")).unwrap();
    std::fs::copy(&good, dir.path().join("v1/deployment.json")).unwrap();
    std::os::unix::fs::symlink("v1", &data).unwrap();
    let mounted = dir.path().join("deployment.json");
    std::os::unix::fs::symlink("..data/deployment.json", &mounted).unwrap();
    let (output, _) = run_within(
        &["validate", mounted.to_str().unwrap()],
        Duration::from_secs(20),
    );
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let (output, _) = run_within(
        &[
            "check",
            "--deployment",
            mounted.to_str().unwrap(),
            "--request",
            "GET /v1/open",
        ],
        Duration::from_secs(20),
    );
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
}

#[test]
fn serve_refuses_a_fifo_or_device_as_deployment_or_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("pipe.json");
    mkfifo(&fifo);
    let good = write(
        dir.path(),
        "good.json",
        stock_deployment().to_string().as_bytes(),
    );
    let stderr = refused_by_serve(&[
        "--deployment",
        fifo.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
    ]);
    assert!(stderr.contains("a FIFO, not a regular file"), "{stderr}");
    let stderr = refused_by_serve(&[
        "--deployment",
        good.to_str().unwrap(),
        "--secrets",
        "/dev/zero",
        "--listen",
        "127.0.0.1:0",
    ]);
    assert!(stderr.contains("a device, not a regular file"), "{stderr}");
}

#[test]
fn logs_streams_its_files_and_finds_records_in_both_forms() {
    let dir = tempfile::tempdir().unwrap();
    let record = |id: &str| {
        json!({"time": "2026-01-01T00:00:00Z", "type": "claimgate.execution",
               "data": {"opcRequestId": id, "code": "x.y", "level": "INFO", "message": "m"}})
    };
    let mut lines = String::new();
    for i in 0..2000 {
        lines.push_str(&record(&format!("other-{i}")).to_string());
        lines.push('\n');
    }
    lines.push_str(&record("wanted").to_string());
    lines.push('\n');
    let lines = write(dir.path(), "lines.log", lines.as_bytes());
    let array = json!([{"datetime": 1, "logContent": record("wanted")}, record("else")]);
    let array = write(dir.path(), "array.json", array.to_string().as_bytes());
    for file in [&lines, &array] {
        let (output, _) = run_within(
            &[
                "logs",
                "--file",
                file.to_str().unwrap(),
                "--request-id",
                "wanted",
                "--output",
                "json",
            ],
            Duration::from_secs(20),
        );
        assert_eq!(output.status.code(), Some(0), "{}", text(&output));
        let doc: Value = serde_json::from_slice(&output.stdout).unwrap();
        assert_eq!(doc["records"].as_array().unwrap().len(), 1, "{doc}");
    }
    // One endless line is refused at its bound, not read whole.
    let long = write(dir.path(), "long.log", &vec![b'x'; 1024 * 1024 + 10]);
    let (output, _) = run_within(
        &[
            "logs",
            "--file",
            long.to_str().unwrap(),
            "--request-id",
            "x",
        ],
        Duration::from_secs(20),
    );
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert!(
        text(&output).contains("longer than 1 MiB"),
        "{}",
        text(&output)
    );
}

/// Bytes the process has read through read(2) and friends so far (`rchar`).
fn bytes_read(pid: u32) -> u64 {
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).unwrap();
    io.lines()
        .find_map(|l| l.strip_prefix("rchar: "))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn the_watcher_reads_no_unchanged_file_and_reloads_a_changed_one() {
    let dir = tempfile::tempdir().unwrap();
    // 1.5 MiB of deployment: re-read every second, it would show in rchar at once.
    let deployment = |body: &str| {
        let mut text = json!({"pathPrefix": "/v1", "specification": {"routes": [
            {"path": "/open", "methods": ["GET"], "backend": {"type": "STOCK_RESPONSE_BACKEND", "status": 200, "body": body}}
        ]}})
        .to_string()
        .into_bytes();
        text.resize(1536 * 1024, b' ');
        text
    };
    let file = write(dir.path(), "big.json", &deployment("one"));
    let gw = start_gateway_on(
        tempfile::tempdir().unwrap(),
        std::slice::from_ref(&file),
        false,
        &[],
    );
    let body = || {
        client()
            .get(format!("{}/v1/open", gw.base))
            .send()
            .unwrap()
            .text()
            .unwrap()
    };
    assert_eq!(body(), "one");
    std::thread::sleep(Duration::from_millis(1500));
    let before = bytes_read(gw.child.id());
    std::thread::sleep(Duration::from_secs(4));
    let read = bytes_read(gw.child.id()) - before;
    assert!(
        read < 512 * 1024,
        "the watcher read {read} bytes in 4 s with nothing changed"
    );
    // The same size, other contents, written in place: the times change, so it reloads.
    std::fs::write(&file, deployment("two")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while body() != "two" {
        assert!(
            Instant::now() < deadline,
            "the changed file was not reloaded"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

// ---------------------------------------------------------------------------------------------
// Outbound calls
// ---------------------------------------------------------------------------------------------

/// A discovery document naming the provider's own endpoints, or `introspection_endpoint`.
fn script(idp_port: u16, introspection_endpoint: Option<String>, answer: Value) -> Script {
    let base = format!("http://127.0.0.1:{idp_port}");
    Script {
        discovery: json!({
            "jwks_uri": format!("{base}/jwks"),
            "introspection_endpoint": introspection_endpoint.unwrap_or(format!("{base}/introspect")),
        }),
        introspection: answer,
        delay: Duration::ZERO,
    }
}

/// Starts a provider whose discovery document is `make(its own port)`.
fn idp_with(make: impl FnOnce(u16) -> Script) -> Idp {
    // The discovery document names the provider's own port: pick it first.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let script = make(port);
    Idp::start_on(port, script)
}

fn active(issuer: &str) -> Value {
    json!({"active": true, "iss": issuer, "exp": now() + 3600, "scope": "orders"})
}

#[test]
fn check_announces_every_url_it_fetches_and_recordings_stay_offline() {
    let dir = tempfile::tempdir().unwrap();
    let idp = idp_with(|port| script(port, None, json!({"active": false})));
    let jwks_uri = format!("{}/jwks", idp.issuer());
    let deployment = write(
        dir.path(),
        "jwks.json",
        jwks_deployment(&jwks_uri).to_string().as_bytes(),
    );
    let args = [
        "check",
        "--deployment",
        deployment.to_str().unwrap(),
        "--request",
        "GET /v1/open",
        "--token",
        "eyJhbGciOiJSUzI1NiJ9.e30.c2ln",
    ];
    let (output, _) = run_within(&args, Duration::from_secs(20));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(&format!("fetching {jwks_uri}")), "{stderr}");
    assert_eq!(idp.seen().len(), 1);

    let recorded = write(dir.path(), "keys.json", br#"{"keys": []}"#);
    let mut offline = args.to_vec();
    offline.extend(["--jwks", recorded.to_str().unwrap()]);
    let (output, _) = run_within(&offline, Duration::from_secs(20));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("fetching"), "{stderr}");
    assert_eq!(idp.seen().len(), 1, "a recording was not enough");

    // Discovery: the document, then the key set it names, each announced.
    let discovery = write(
        dir.path(),
        "discovery.json",
        discovery_deployment(&idp.discovery_uri())
            .to_string()
            .as_bytes(),
    );
    let (output, _) = run_within(
        &[
            "check",
            "--deployment",
            discovery.to_str().unwrap(),
            "--request",
            "GET /v1/open",
            "--token",
            "eyJhbGciOiJSUzI1NiJ9.e30.c2ln",
        ],
        Duration::from_secs(20),
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("fetching {}", idp.discovery_uri()))
            && stderr.contains(&format!("fetching {jwks_uri}")),
        "{stderr}"
    );
}

#[test]
fn a_link_local_key_set_is_refused_without_a_connection() {
    let dir = tempfile::tempdir().unwrap();
    for uri in [
        "http://169.254.169.254/latest/meta-data/jwks",
        "http://[fe80::1]:8080/jwks",
    ] {
        let deployment = write(
            dir.path(),
            "metadata.json",
            jwks_deployment(uri).to_string().as_bytes(),
        );
        let (output, took) = run_within(
            &[
                "check",
                "--deployment",
                deployment.to_str().unwrap(),
                "--request",
                "GET /v1/open",
                "--token",
                "eyJhbGciOiJSUzI1NiJ9.e30.c2ln",
            ],
            Duration::from_secs(20),
        );
        let said = text(&output);
        assert_eq!(output.status.code(), Some(3), "{said}");
        assert!(
            said.contains("refused") && said.contains("link-local"),
            "{said}"
        );
        assert!(took < Duration::from_secs(3), "{uri}: {took:?}");
    }
    // The gateway alike: 500, with the reason in the record.
    let deployment = write(
        dir.path(),
        "metadata.json",
        jwks_deployment("http://169.254.169.254/latest/meta-data/jwks")
            .to_string()
            .as_bytes(),
    );
    let gw = start_gateway_on(tempfile::tempdir().unwrap(), &[deployment], false, &[]);
    let answer = client()
        .get(format!("{}/v1/open", gw.base))
        .bearer_auth("eyJhbGciOiJSUzI1NiJ9.e30.c2ln")
        .send()
        .unwrap();
    assert_eq!(answer.status(), 500);
    let id = answer.headers()["opc-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let records = records(&gw.execution_log, &id, 1);
    assert!(
        records.iter().any(|r| r["data"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("link-local"))),
        "{records:?}"
    );
}

#[test]
fn the_client_secret_never_goes_to_another_host_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let secrets = secrets_file(dir.path());
    // The capturing server: another host string (localhost) on another port.
    let elsewhere = idp_with(|port| script(port, None, active("x")));
    let idp = idp_with(|port| {
        script(
            port,
            Some(format!("http://localhost:{}/introspect", elsewhere.port)),
            json!({}),
        )
    });
    let deployment = write(
        dir.path(),
        "discovery.json",
        discovery_deployment(&idp.discovery_uri())
            .to_string()
            .as_bytes(),
    );
    let introspect = |extra: &[&str]| {
        let mut args = vec![
            "introspect",
            "--deployment",
            deployment.to_str().unwrap(),
            "--token",
            "opaque-token-1",
            "--secrets",
            secrets.to_str().unwrap(),
        ];
        args.extend(extra);
        run_within(&args, Duration::from_secs(20)).0
    };
    let output = introspect(&[]);
    let said = text(&output);
    assert_eq!(output.status.code(), Some(3), "{said}");
    assert!(
        said.contains("badDiscoveryEndpointResponse")
            && said.contains("--allow-endpoint localhost"),
        "{said}"
    );
    assert!(elsewhere.seen().is_empty(), "{:?}", elsewhere.seen());
    assert!(!idp.seen().iter().any(Seen::carries_the_secret));

    // The gateway refuses it too: 500, badDiscoveryEndpointResponse, nothing sent.
    let gw = start_gateway_on(
        tempfile::tempdir().unwrap(),
        std::slice::from_ref(&deployment),
        false,
        &["--secrets", secrets.to_str().unwrap()],
    );
    let answer = client()
        .get(format!("{}/v1/open", gw.base))
        .bearer_auth("opaque-token-2")
        .send()
        .unwrap();
    assert_eq!(answer.status(), 500);
    let id = answer.headers()["opc-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let records = records(&gw.execution_log, &id, 1);
    assert!(
        records
            .iter()
            .any(|r| r["data"]["code"] == "tokenAuthentication.badDiscoveryEndpointResponse"),
        "{records:?}"
    );
    assert!(elsewhere.seen().is_empty(), "{:?}", elsewhere.seen());
    drop(gw);

    // Named by --allow-endpoint, the endpoint gets the call (and the secret).
    let output = introspect(&["--allow-endpoint", "localhost"]);
    assert_ne!(output.status.code(), Some(3), "{}", text(&output));
    assert_eq!(elsewhere.introspections(), 1);
    assert!(elsewhere.seen()[0].carries_the_secret());
    assert!(text(&output).contains(&format!(
        "fetching http://localhost:{}/introspect",
        elsewhere.port
    )));

    // 127.0.0.2 is another host too, refused before any connection.
    let idp2 = idp_with(|port| {
        script(
            port,
            Some("http://127.0.0.2:9/introspect".into()),
            json!({}),
        )
    });
    let deployment2 = write(
        dir.path(),
        "discovery2.json",
        discovery_deployment(&idp2.discovery_uri())
            .to_string()
            .as_bytes(),
    );
    let (output, _) = run_within(
        &[
            "check",
            "--deployment",
            deployment2.to_str().unwrap(),
            "--request",
            "GET /v1/open",
            "--token",
            "opaque-token-3",
            "--secrets",
            secrets.to_str().unwrap(),
        ],
        Duration::from_secs(20),
    );
    let said = text(&output);
    assert_eq!(output.status.code(), Some(3), "{said}");
    assert!(said.contains("--allow-endpoint 127.0.0.2"), "{said}");
}

// ---------------------------------------------------------------------------------------------
// Introspection bounds and answers that cannot panic
// ---------------------------------------------------------------------------------------------

fn serve_discovery(idp: &Idp, extra: &[&str]) -> (Gateway, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let secrets = secrets_file(dir.path());
    let deployment = write(
        dir.path(),
        "discovery.json",
        discovery_deployment(&idp.discovery_uri())
            .to_string()
            .as_bytes(),
    );
    let mut flags = vec!["--secrets", secrets.to_str().unwrap()];
    flags.extend(extra);
    let gw = start_gateway_on(tempfile::tempdir().unwrap(), &[deployment], false, &flags);
    (gw, dir)
}

#[test]
fn junk_bearer_values_are_refused_without_an_introspection() {
    let idp = idp_with(|port| {
        let issuer = format!("http://127.0.0.1:{port}");
        script(port, None, active(&issuer))
    });
    let (gw, _dir) = serve_discovery(&idp, &[]);
    let send = |authorization: &str| {
        client()
            .get(format!("{}/v1/open", gw.base))
            .header("authorization", authorization)
            .send()
            .unwrap()
            .status()
            .as_u16()
    };
    let long = "a".repeat(5 * 1024);
    for junk in [
        "Bearer two words".to_owned(),
        "Bearer \"quoted\"".to_owned(),
        "Bearer a,b".to_owned(),
        "Bearer a=b".to_owned(),
        format!("Bearer {long}"),
    ] {
        assert_eq!(send(&junk), 401, "{junk:.40}");
    }
    assert_eq!(idp.introspections(), 0, "{:?}", idp.seen());
    // A bearer token is still introspected (once) and let in.
    assert_eq!(send("Bearer good-token_1.2~3+4/5=="), 200);
    assert_eq!(idp.introspections(), 1);
}

#[test]
fn at_most_n_introspections_are_in_flight_and_the_rest_wait_a_second() {
    let idp = idp_with(|port| {
        let issuer = format!("http://127.0.0.1:{port}");
        let mut script = script(port, None, active(&issuer));
        script.delay = Duration::from_millis(1300);
        script
    });
    let (gw, _dir) = serve_discovery(&idp, &["--introspection-concurrency", "2"]);
    let statuses: Vec<u16> = std::thread::scope(|scope| {
        let calls: Vec<_> = (0..5)
            .map(|i| {
                let base = gw.base.clone();
                scope.spawn(move || {
                    client()
                        .get(format!("{base}/v1/open"))
                        .bearer_auth(format!("token-{i}"))
                        .send()
                        .unwrap()
                        .status()
                        .as_u16()
                })
            })
            .collect();
        calls.into_iter().map(|c| c.join().unwrap()).collect()
    });
    assert_eq!(idp.most_in_flight.load(Ordering::SeqCst), 2, "{statuses:?}");
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        2,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 500).count(),
        3,
        "{statuses:?}"
    );
    assert_eq!(idp.introspections(), 2);
}

#[test]
fn huge_or_negative_times_in_an_introspection_answer_do_not_panic() {
    for (exp, iat, nbf) in [
        (json!(1e300), json!(1e300), json!(1e300)),
        (json!(2e19), json!(-1e300), json!(-5)),
        (json!(-1e300), json!(2e19), json!(1e300)),
    ] {
        let idp = idp_with(|port| {
            let issuer = format!("http://127.0.0.1:{port}");
            script(
                port,
                None,
                json!({"active": true, "iss": issuer, "exp": exp, "iat": iat, "nbf": nbf}),
            )
        });
        let (gw, _dir) = serve_discovery(&idp, &[]);
        for _ in 0..2 {
            let status = client()
                .get(format!("{}/v1/open", gw.base))
                .bearer_auth("opaque-token")
                .send()
                .expect("an answer, not a dropped connection")
                .status()
                .as_u16();
            assert!([200, 401].contains(&status), "{exp} {iat} {nbf}: {status}");
        }
    }
}
