//! Shared pieces of the end-to-end tests: free loopback ports, processes killed by their pid
//! when dropped, `claimgate serve` itself with its log files, and the identity provider.

// Each test binary uses its own subset.
#![allow(dead_code)]

pub(crate) mod cluster;

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub(crate) fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The Python the tests run: `CLAIMGATE_TEST_PYTHON` (set by `scripts/test.sh` to its virtual
/// environment's), else the repository's `.venv` when one exists, else `python3` from `PATH`.
/// A system Python may lack the pinned `cryptography` and refuse `pip install` (PEP 668).
pub(crate) fn python() -> PathBuf {
    if let Some(python) = std::env::var_os("CLAIMGATE_TEST_PYTHON").filter(|p| !p.is_empty()) {
        return PathBuf::from(python);
    }
    let venv = repo().join(".venv/bin/python");
    if venv.exists() {
        return venv;
    }
    PathBuf::from("python3")
}

/// `claimgate ARGS` run to its end, colours off.
pub(crate) fn claimgate(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_claimgate"))
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("claimgate runs")
}

/// The lines of `reader` (a child's piped output), read by a thread so that a wait on them can
/// time out (`recv_timeout`) instead of blocking the test.
pub(crate) fn lines_of(
    reader: impl std::io::Read + Send + 'static,
) -> std::sync::mpsc::Receiver<String> {
    use std::io::BufRead as _;
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(reader)
            .lines()
            .map_while(Result::ok)
        {
            if sender.send(line).is_err() {
                break;
            }
        }
    });
    receiver
}

/// A one-thread runtime for a test's upstreams: what it serves stops when it is dropped.
pub(crate) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

/// An HTTP/1.1 upstream on a new loopback port of `rt`, answering every request with `answer`;
/// its address.
pub(crate) fn serve_http<F, Fut>(rt: &tokio::runtime::Runtime, answer: F) -> std::net::SocketAddr
where
    F: Fn(hyper::Request<hyper::body::Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = hyper::Response<http_body_util::Full<bytes::Bytes>>>
        + Send
        + 'static,
{
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    serve_http_on(rt, listener, answer);
    addr
}

/// [`serve_http`] on a listener the caller bound (an upstream that must know its own address).
pub(crate) fn serve_http_on<F, Fut>(
    rt: &tokio::runtime::Runtime,
    listener: tokio::net::TcpListener,
    answer: F,
) where
    F: Fn(hyper::Request<hyper::body::Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = hyper::Response<http_body_util::Full<bytes::Bytes>>>
        + Send
        + 'static,
{
    rt.spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let answer = answer.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |request| {
                    let answer = answer.clone();
                    async move { Ok::<_, std::convert::Infallible>(answer(request).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
}

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub(crate) fn wait_for(address: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(address).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {address}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A running process, killed by its pid when dropped.
pub(crate) struct Running(pub(crate) Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The identity provider on `port`.
pub(crate) fn start_idp(port: u16) -> Running {
    let dir = repo().join("tests/idp");
    assert!(
        dir.join("node_modules/oidc-provider").exists(),
        "oidc-provider is not installed: run `npm ci` in tests/idp (scripts/test.sh does)"
    );
    let child = Command::new("node")
        .arg("server.js")
        .arg(port.to_string())
        .current_dir(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("node runs");
    wait_for(&format!("127.0.0.1:{port}"));
    Running(child)
}

pub(crate) fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

/// A running `claimgate serve` on a free loopback port, its logs in `dir`, killed by its pid
/// when dropped.
pub(crate) struct Gateway {
    pub(crate) child: Child,
    pub(crate) base: String,
    /// The admin listener's base URL, when started with one.
    pub(crate) admin: Option<String>,
    pub(crate) execution_log: PathBuf,
    pub(crate) access_log: PathBuf,
    pub(crate) dir: tempfile::TempDir,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `claimgate serve` on the deployment `files`, with its logs in `dir`, an admin
/// listener if `admin`, and `extra` flags; returns once it accepts connections.
///
/// A port from [`free_port`] may be taken by someone else (another test's outgoing connection,
/// HAProxy, Redis) before the gateway binds it; the gateway then exits 2 saying "address in
/// use", and this tries again on other ports, five times at most. Any other early exit fails
/// the test with the gateway's own stderr.
pub(crate) fn start_gateway_on(
    dir: tempfile::TempDir,
    files: &[PathBuf],
    admin: bool,
    extra: &[&str],
) -> Gateway {
    let execution_log = dir.path().join("execution.log");
    let access_log = dir.path().join("access.log");
    let stderr_log = dir.path().join("stderr.log");
    for _attempt in 0..5 {
        let listen = format!("127.0.0.1:{}", free_port());
        let admin = admin.then(|| format!("127.0.0.1:{}", free_port()));
        let mut command = Command::new(env!("CARGO_BIN_EXE_claimgate"));
        command.args(["serve", "--listen", &listen]);
        if let Some(admin) = &admin {
            command.args(["--admin", admin]);
        }
        for file in files {
            command.args(["--deployment", file.to_str().unwrap()]);
        }
        let mut child = command
            .args(["--execution-log", execution_log.to_str().unwrap()])
            .args(["--access-log", access_log.to_str().unwrap()])
            .args(extra)
            .stdout(Stdio::null())
            // In `dir`, so that a gateway that would not start (or died) says why.
            .stderr(std::fs::File::create(&stderr_log).unwrap())
            .spawn()
            .unwrap();
        let addresses: Vec<&str> = std::iter::once(listen.as_str())
            .chain(admin.as_deref())
            .collect();
        if let Some(status) = wait_for_child(&mut child, &addresses) {
            let stderr = std::fs::read_to_string(&stderr_log).unwrap_or_default();
            if stderr.contains("address in use") {
                continue;
            }
            panic!("claimgate serve exited with {status} before listening: {stderr}");
        }
        return Gateway {
            child,
            base: format!("http://{listen}"),
            admin: admin.map(|a| format!("http://{a}")),
            execution_log,
            access_log,
            dir,
        };
    }
    panic!("claimgate serve lost the race for a free port five times");
}

/// Waits until every one of `addresses` accepts connections (`None`), or `child` exits (its
/// status), or 20 s pass (a panic).
fn wait_for_child(child: &mut Child, addresses: &[&str]) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + Duration::from_secs(20);
    for address in addresses {
        while std::net::TcpStream::connect(address).is_err() {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            assert!(Instant::now() < deadline, "nothing listens on {address}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    None
}

/// Writes `deployments` to `dir` as `deployment-{i}.json`; returns the files in order.
pub(crate) fn write_deployments(dir: &Path, deployments: &[Value]) -> Vec<PathBuf> {
    deployments
        .iter()
        .enumerate()
        .map(|(i, deployment)| {
            let file = dir.join(format!("deployment-{i}.json"));
            std::fs::write(&file, deployment.to_string()).unwrap();
            file
        })
        .collect()
}

/// Starts `claimgate serve` on `deployments`, written as `deployment-{i}.json` to a new
/// temporary directory (the gateway's `dir`), with an admin listener if `admin`, and `extra`.
pub(crate) fn start_gateway(deployments: &[Value], admin: bool, extra: &[&str]) -> Gateway {
    let dir = tempfile::tempdir().unwrap();
    let files = write_deployments(dir.path(), deployments);
    start_gateway_on(dir, &files, admin, extra)
}

/// The log records of one request in `path`, waiting up to 5 s for at least `at_least` of them
/// (the writer batches).
pub(crate) fn records(path: &Path, request_id: &str, at_least: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let found: Vec<Value> = std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|r| r["data"]["opcRequestId"] == request_id)
            .collect();
        if found.len() >= at_least || Instant::now() > deadline {
            return found;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The execution-log records in `path` with `code`, waiting up to `within` for one.
pub(crate) fn records_with_code(path: &Path, code: &str, within: Duration) -> Vec<Value> {
    let deadline = Instant::now() + within;
    loop {
        let found: Vec<Value> = std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|r| r["data"]["code"] == code)
            .collect();
        if !found.is_empty() || Instant::now() > deadline {
            return found;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The codes of one request's records that start with `prefix` (`responseCache.`), waiting up
/// to 5 s for `at_least` of them.
pub(crate) fn codes_with_prefix(
    path: &Path,
    request_id: &str,
    prefix: &str,
    at_least: usize,
) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let codes: Vec<String> = records(path, request_id, 0)
            .iter()
            .filter_map(|r| r["data"]["code"].as_str())
            .filter(|c| c.starts_with(prefix))
            .map(str::to_owned)
            .collect();
        if codes.len() >= at_least || Instant::now() > deadline {
            return codes;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Seconds since the Unix epoch.
pub(crate) fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// An RSA-2048 signing key with its kid: tokens (RS256) and the public key as a JWK.
pub(crate) struct Signer {
    key: aws_lc_rs::rsa::KeyPair,
    pub(crate) kid: String,
}

impl Signer {
    pub(crate) fn new(kid: &str) -> Self {
        Self {
            key: aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap(),
            kid: kid.into(),
        }
    }

    /// The public key as a JWKS member.
    pub(crate) fn jwk(&self) -> Value {
        use aws_lc_rs::signature::KeyPair as _;
        use base64::Engine as _;
        let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        let public = self.key.public_key();
        serde_json::json!({
            "kty": "RSA", "kid": self.kid, "use": "sig", "alg": "RS256",
            "n": b64(public.modulus().big_endian_without_leading_zero()),
            "e": b64(public.exponent().big_endian_without_leading_zero()),
        })
    }

    /// The public key as a deployment's `STATIC_KEYS` entry.
    pub(crate) fn static_key(&self) -> Value {
        let mut key = self.jwk();
        key["format"] = "JSON_WEB_KEY".into();
        key
    }

    /// A compact RS256 JWS of `claims`, with this key's kid.
    pub(crate) fn token(&self, claims: Value) -> String {
        use base64::Engine as _;
        let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        let header = serde_json::json!({"alg": "RS256", "kid": self.kid});
        let input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let mut signature = vec![0; self.key.public_modulus_len()];
        self.key
            .sign(
                &aws_lc_rs::signature::RSA_PKCS1_SHA256,
                &aws_lc_rs::rand::SystemRandom::new(),
                input.as_bytes(),
                &mut signature,
            )
            .unwrap();
        format!("{input}.{}", b64(&signature))
    }
}

/// An access token from the identity provider on `port` (client credentials of its client
/// `app`), for `resource`: one whose name contains "jwt" gets a JWT, others an opaque token.
pub(crate) fn access_token(port: u16, resource: &str, scope: &str) -> String {
    let answer: Value = client()
        .post(format!("http://127.0.0.1:{port}/token"))
        .basic_auth("app", Some("app-secret"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("scope", scope),
            ("resource", resource),
        ])
        .send()
        .unwrap()
        .json()
        .unwrap();
    answer["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("{answer}"))
        .to_owned()
}

/// The standard error of `claimgate serve ARGS`, which must refuse to start (exit 2).
pub(crate) fn refused_by_serve(args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_claimgate"))
        .arg("serve")
        .args(args)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    stderr
}

/// A certificate authority made in the test.
pub(crate) struct Ca {
    pub(crate) issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    pub(crate) pem: String,
}

/// A CA certificate named `name`, allowed to sign certificates and CRLs.
pub(crate) fn ca(name: &str) -> Ca {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    Ca {
        pem: cert.pem(),
        issuer: rcgen::Issuer::new(params, key),
    }
}

/// A leaf certificate: PEM, its key's PEM, and DER.
pub(crate) struct Leaf {
    pub(crate) cert: String,
    pub(crate) key: String,
    pub(crate) der: Vec<u8>,
}

impl Leaf {
    /// (certificate PEM, key PEM).
    pub(crate) fn pair(self) -> (String, String) {
        (self.cert, self.key)
    }
}

/// A leaf (ECDSA P-256) from `ca` with DNS `sans`, subject CN `cn` when given, for client or
/// server authentication, valid from/until the given Unix seconds when given.
pub(crate) fn leaf(
    ca: &Ca,
    cn: Option<&str>,
    sans: &[&str],
    client: bool,
    validity: Option<(i64, i64)>,
) -> Leaf {
    let sans: Vec<String> = sans.iter().map(|s| (*s).to_owned()).collect();
    let mut params = rcgen::CertificateParams::new(sans).unwrap();
    if let Some(cn) = cn {
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
    }
    params.extended_key_usages = vec![if client {
        rcgen::ExtendedKeyUsagePurpose::ClientAuth
    } else {
        rcgen::ExtendedKeyUsagePurpose::ServerAuth
    }];
    if let Some((from, until)) = validity {
        params.not_before = time::OffsetDateTime::from_unix_timestamp(from).unwrap();
        params.not_after = time::OffsetDateTime::from_unix_timestamp(until).unwrap();
    }
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &ca.issuer).unwrap();
    Leaf {
        cert: cert.pem(),
        key: key.serialize_pem(),
        der: cert.der().to_vec(),
    }
}

/// A raw HTTP/1.1 backend on a loopback port that answers every request with the request
/// target it received (as its body), then closes: what a path-sensitive backend sees.
pub(crate) fn start_target_echo() -> std::net::SocketAddr {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { break };
            std::thread::spawn(move || {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() {
                    return;
                }
                // Skip the headers.
                let mut header = String::new();
                while reader.read_line(&mut header).is_ok_and(|n| n > 2) {
                    header.clear();
                }
                let body = line.split(' ').nth(1).unwrap_or("").to_owned();
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
            });
        }
    });
    addr
}

/// Skips a test that needs a tool the machine lacks: says so, and records its name and reason
/// in `$CLAIMGATE_SKIP_LOG` (set by scripts/test.sh, which names every skip in the suite's
/// summary). Under `CI=true` a skip is a failure: CI's machine must have every tool.
pub(crate) fn skip(test: &str, why: &str) {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{test} cannot run under CI: {why}");
    }
    eprintln!("SKIPPED {test}: {why}");
    if let Some(path) = std::env::var_os("CLAIMGATE_SKIP_LOG") {
        use std::io::Write as _;
        if let Ok(mut file) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = writeln!(file, "{test}: {why}");
        }
    }
}
