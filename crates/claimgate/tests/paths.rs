//! Path attacks, end to end: the real binary in front of a backend that normalises paths the way
//! file servers do (Python's `http.server`, which resolves `..` and decodes `%2F`) and a raw echo
//! backend that reports the exact request target it received. Every attack must be refused
//! (400) or reach exactly the normalised path, and never a protected path without a token;
//! `claimgate check` must judge the same table the same way.

mod support;

use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;
use support::{free_port, now, records, start_gateway_on, wait_for, Running, Signer};

const ISS: &str = "https://idp.test/";
const AUD: &str = "api://files";
const SECRET: &str = "the admin secret";

fn signer() -> &'static Signer {
    static S: OnceLock<Signer> = OnceLock::new();
    S.get_or_init(|| Signer::new("k1"))
}

/// Python's file server over a root with `public/hello.txt` and `admin/secret.txt`.
fn start_file_server(root: &Path) -> (Running, u16) {
    std::fs::create_dir_all(root.join("public")).unwrap();
    std::fs::create_dir_all(root.join("admin")).unwrap();
    std::fs::write(root.join("public/hello.txt"), "hello").unwrap();
    std::fs::write(root.join("admin/secret.txt"), SECRET).unwrap();
    let port = free_port();
    let child = Command::new(support::python())
        .args([
            "-m",
            "http.server",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
        ])
        .arg("--directory")
        .arg(root)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("python runs (scripts/test.sh makes .venv)");
    wait_for(&format!("127.0.0.1:{port}"));
    (Running(child), port)
}

fn deployment(files: u16, echo: SocketAddr) -> Value {
    let anonymous = json!({"authorization": {"type": "ANONYMOUS"}});
    let fs = |path: &str| json!({"type": "HTTP_BACKEND", "url": format!("http://127.0.0.1:{files}{path}")});
    json!({
        "displayName": "files",
        "pathPrefix": "/v2",
        "specification": {
            "requestPolicies": {"authentication": {
                "type": "JWT_AUTHENTICATION", "tokenHeader": "Authorization", "tokenAuthScheme": "Bearer",
                "issuers": [ISS], "audiences": [AUD], "isAnonymousAccessAllowed": true,
                "publicKeys": {"type": "STATIC_KEYS", "keys": [signer().static_key()]}
            }},
            "routes": [
                {"path": "/public/{p*}", "methods": ["GET"], "requestPolicies": anonymous,
                 "backend": fs("/public/${request.path[p]}")},
                {"path": "/admin/{p*}", "methods": ["GET"],
                 "backend": fs("/admin/${request.path[p]}")},
                {"path": "/one/{name}", "methods": ["GET"], "requestPolicies": anonymous,
                 "backend": fs("/public/${request.path[name]}")},
                {"path": "/q", "methods": ["GET"], "requestPolicies": anonymous,
                 "backend": fs("/public/${request.query[p]}")},
                {"path": "/h", "methods": ["GET"], "requestPolicies": anonymous,
                 "backend": fs("/public/${request.headers[x-file]}")},
                {"path": "/echo/{p*}", "methods": ["GET"], "requestPolicies": anonymous,
                 "backend": {"type": "HTTP_BACKEND", "url": format!("http://{echo}/echo/${{request.path[p]}}")}}
            ]
        }
    })
}

/// Sends `GET target` as written (no client-side normalisation) and returns status and body.
fn raw_get(base: &str, target: &str, headers: &str) -> (u16, String) {
    let address = base.trim_start_matches("http://");
    let mut stream = TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    write!(
        stream,
        "GET {target} HTTP/1.1\r\nHost: {address}\r\n{headers}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).unwrap();
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = answer
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_owned();
    (status, body)
}

/// What the gateway must do with a path.
#[derive(Debug, Clone, Copy)]
enum Want {
    /// 400 before routing.
    Refused,
    /// The gateway's own status (401 without a token, 404 when no deployment is left).
    Status(u16),
    /// The file server's answer for a public file.
    Public,
    /// The echo backend received exactly this target.
    Echo(&'static str),
}

const TABLE: &[(&str, &str, Want)] = &[
    // Dot segments climb out of the anonymous route: judged where they land.
    ("/v2/public/../admin/secret.txt", "", Want::Status(401)),
    ("/v2/public/%2e%2e/admin/secret.txt", "", Want::Status(401)),
    ("/v2/public/%2E%2E/admin/secret.txt", "", Want::Status(401)),
    ("/v2/public/.%2e/admin/secret.txt", "", Want::Status(401)),
    ("/v2/public/%2e./admin/secret.txt", "", Want::Status(401)),
    ("/v2/public/./../admin/secret.txt", "", Want::Status(401)),
    ("/v2/public//..//admin/secret.txt", "", Want::Status(401)),
    ("/v2/public/x/../../admin/secret.txt", "", Want::Status(401)),
    ("/v2/public/../../admin/secret.txt", "", Want::Status(404)),
    // What backends read differently from the gateway: refused.
    ("/v2/public/..%2fadmin/secret.txt", "", Want::Refused),
    ("/v2/public/..%2Fadmin%2Fsecret.txt", "", Want::Refused),
    ("/v2/public/..;/admin/secret.txt", "", Want::Refused),
    ("/v2/public/.;/x", "", Want::Refused),
    ("/v2/public/..\\admin\\secret.txt", "", Want::Refused),
    ("/v2/public/..%5cadmin/secret.txt", "", Want::Refused),
    ("/v2/public/%2e%2e%5cadmin/secret.txt", "", Want::Refused),
    ("/v2/../../admin/secret.txt", "", Want::Refused),
    ("/v2/public/a%00.txt", "", Want::Refused),
    ("/v2/public/a%0d%0aX:%20y", "", Want::Refused),
    ("/v2/public/a%", "", Want::Refused),
    ("/v2/public/a%zz", "", Want::Refused),
    // A single segment cannot carry a path.
    ("/v2/one/..%2Fadmin%2Fsecret.txt", "", Want::Refused),
    ("/v2/one/..", "", Want::Status(404)),
    // Query and header values bound for the backend path.
    ("/v2/q?p=../admin/secret.txt", "", Want::Refused),
    ("/v2/q?p=..%2Fadmin%2Fsecret.txt", "", Want::Refused),
    ("/v2/q?p=a/b?c=d", "", Want::Refused),
    ("/v2/q?p=..", "", Want::Refused),
    ("/v2/q?p=%2e%2e", "", Want::Refused),
    ("/v2/q?p=..%5Cadmin", "", Want::Refused),
    ("/v2/h", "X-File: ../admin/secret.txt\r\n", Want::Refused),
    // Paths that must keep working.
    ("/v2/public/hello.txt", "", Want::Public),
    ("/v2/public/./hello.txt", "", Want::Public),
    ("/v2/public//hello.txt", "", Want::Public),
    ("/v2/public/%68ello.txt", "", Want::Public),
    ("/v2/one/hello.txt", "", Want::Public),
    ("/v2/q?p=hello.txt", "", Want::Public),
    ("/v2/h", "X-File: hello.txt\r\n", Want::Public),
    ("/v2/echo/a%20b", "", Want::Echo("/echo/a%20b")),
    ("/v2/echo/%41bc%7e", "", Want::Echo("/echo/Abc~")),
    ("/v2/echo/dir/", "", Want::Echo("/echo/dir/")),
    ("/v2/echo/caf%C3%A9", "", Want::Echo("/echo/caf%C3%A9")),
    ("/v2/echo/caf%c3%a9", "", Want::Echo("/echo/caf%C3%A9")),
    ("/v2/echo/x/./y//z", "", Want::Echo("/echo/x/y/z")),
    ("/v2/echo/x/../y", "", Want::Echo("/echo/y")),
    ("/v2/echo/a;b=c,d", "", Want::Echo("/echo/a;b=c,d")),
    (
        "/v2/echo/%252e%252e/x",
        "",
        Want::Echo("/echo/%252e%252e/x"),
    ),
    ("/v2/echo/q?x=1&y=%2F", "", Want::Echo("/echo/q?x=1&y=%2F")),
];

struct Setup {
    gateway: support::Gateway,
    _files: Running,
    _root: tempfile::TempDir,
}

fn setup() -> Setup {
    let root = tempfile::tempdir().unwrap();
    let (files, port) = start_file_server(root.path());
    let echo = support::start_target_echo();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("files.json");
    std::fs::write(&file, deployment(port, echo).to_string()).unwrap();
    let validated = Command::new(env!("CARGO_BIN_EXE_claimgate"))
        .arg("validate")
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        validated.status.success(),
        "{}{}",
        String::from_utf8_lossy(&validated.stdout),
        String::from_utf8_lossy(&validated.stderr)
    );
    let gateway = start_gateway_on(dir, std::slice::from_ref(&file), false, &[]);
    Setup {
        gateway,
        _files: files,
        _root: root,
    }
}

#[test]
fn every_path_attack_is_refused_or_reaches_exactly_the_normalised_path() {
    let setup = setup();
    let base = &setup.gateway.base;
    // The protected file is there, and served with a token: the table can see a bypass.
    let token = signer().token(json!({"iss": ISS, "aud": AUD, "sub": "alice", "exp": now() + 600}));
    let (status, body) = raw_get(
        base,
        "/v2/admin/secret.txt",
        &format!("Authorization: Bearer {token}\r\n"),
    );
    assert_eq!((status, body.as_str()), (200, SECRET));
    assert_eq!(raw_get(base, "/v2/admin/secret.txt", "").0, 401);

    let mut failures = Vec::new();
    for (target, headers, want) in TABLE {
        let (status, body) = raw_get(base, target, headers);
        let ok = match want {
            Want::Refused => {
                status == 400 && body.contains(r#"{"message":"Bad Request","code":400}"#)
            }
            Want::Status(code) => status == *code,
            Want::Public => status == 200 && body == "hello",
            Want::Echo(path) => status == 200 && body == *path,
        };
        if !ok || body.contains(SECRET) {
            failures.push(format!("{target:?}: want {want:?}, got {status} {body:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn a_refused_path_is_logged_once_with_the_reason() {
    let setup = setup();
    let address = setup.gateway.base.trim_start_matches("http://").to_owned();
    let mut stream = TcpStream::connect(&address).unwrap();
    write!(
        stream,
        "GET /v2/public/..;/admin/secret.txt HTTP/1.1\r\nHost: {address}\r\nopc-request-id: path-attack-1\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    let found = records(&setup.gateway.execution_log, "path-attack-1", 1);
    let rejected: Vec<&Value> = found
        .iter()
        .filter(|r| r["data"]["code"] == "request.pathRejected")
        .collect();
    assert_eq!(rejected.len(), 1, "{found:?}");
    let data = &rejected[0]["data"];
    assert_eq!(data["level"], "WARN", "{data}");
    assert!(
        data["message"]
            .as_str()
            .unwrap()
            .contains("'.' or '..' segment followed by ';'"),
        "{data}"
    );
}

/// `claimgate check` judges every path of the table as the gateway does: refused paths are
/// DENY 400, paths that land on the protected route are DENY 401, public ones ALLOW.
#[test]
fn check_judges_the_same_table_offline() {
    let root = tempfile::tempdir().unwrap();
    let file = root.path().join("files.json");
    // Backends are never called by check: any address will do.
    std::fs::write(
        &file,
        deployment(9, "127.0.0.1:9".parse().unwrap()).to_string(),
    )
    .unwrap();
    let mut failures = Vec::new();
    for (target, headers, want) in TABLE {
        let mut command = Command::new(env!("CARGO_BIN_EXE_claimgate"));
        command.args(["check", "--deployment"]).arg(&file).args([
            "--request",
            &format!("GET {target}"),
            "--output",
            "json",
        ]);
        if let Some((name, value)) = headers.trim_end().split_once(": ") {
            command.args(["--header", &format!("{name}: {value}")]);
        }
        let output = command.output().unwrap();
        let verdict: Value = serde_json::from_slice(&output.stdout).unwrap_or(Value::Null);
        let (decision, status) = (verdict["decision"].as_str(), verdict["status"].as_u64());
        // check judges the request (and the backend URL it would call), not the backend's
        // answer.
        let ok = match want {
            Want::Refused => {
                decision == Some("deny")
                    && status == Some(400)
                    && verdict["pathRejected"].is_string()
            }
            Want::Status(code) => decision == Some("deny") && status == Some(u64::from(*code)),
            Want::Public => decision == Some("allow"),
            Want::Echo(path) => {
                // The client's query is appended when the request is sent.
                let path = path.split('?').next().unwrap_or_default();
                decision == Some("allow")
                    && verdict["backendUrl"].as_str() == Some(&format!("http://127.0.0.1:9{path}"))
            }
        };
        if !ok {
            failures.push(format!(
                "{target:?}: want {want:?}, got exit {:?}: {}",
                output.status.code(),
                String::from_utf8_lossy(&output.stdout)
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
