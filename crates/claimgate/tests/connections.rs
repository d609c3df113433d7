//! `claimgate serve` at the connection level, end to end with the real binary and raw sockets:
//! connections that send nothing (or only the HTTP/2 preface) and idle keep-alive connections
//! are closed after `--read-timeout`, `--max-connections` and the descriptor limit hold new
//! connections back without spinning, the admin listener has the same timeout, a port another
//! socket listens on is refused, a client's bad request body is the client's fault (400/413,
//! never a 502 blamed on the backend), and `--max-connection-age` closes connections gracefully.

mod support;

use support::{ca, Ca};

use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::{free_port, records, start_gateway_on, wait_for, Gateway, Running};

/// The client's HTTP/2 connection preface (RFC 9113 §3.4).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

fn stock_deployment() -> Value {
    json!({"pathPrefix": "/v1", "specification": {"routes": [
        {"path": "/open", "methods": ["GET", "POST"], "backend": {"type": "STOCK_RESPONSE_BACKEND", "status": 200, "body": "open"}}
    ]}})
}

fn start(deployment: &Value, admin: bool, extra: &[&str]) -> Gateway {
    support::start_gateway(std::slice::from_ref(deployment), admin, extra)
}

fn address(base: &str) -> String {
    base.trim_start_matches("http://").to_owned()
}

/// How long until the server closes `stream` (reading and discarding what it sends), or
/// `None` if it is still open after `limit`; its reads must time out (100 ms).
fn closed_after(stream: &mut impl Read, started: Instant, limit: Duration) -> Option<Duration> {
    let mut buffer = [0u8; 4096];
    while started.elapsed() < limit {
        match stream.read(&mut buffer) {
            Ok(0) => return Some(started.elapsed()),
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            // A reset is a close too.
            Err(_) => return Some(started.elapsed()),
        }
    }
    None
}

/// Asserts that every stream is closed by the server between `at_least` and `at_most` after
/// `started`.
fn assert_closed_between(
    streams: &mut [TcpStream],
    started: Instant,
    at_least: Duration,
    at_most: Duration,
    what: &str,
) {
    for (i, stream) in streams.iter_mut().enumerate() {
        stream
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let closed = closed_after(stream, started, at_most);
        let Some(closed) = closed else {
            panic!("{what} #{i} was still open after {at_most:?}");
        };
        assert!(
            closed >= at_least,
            "{what} #{i} closed early, after {closed:?}"
        );
    }
}

/// A plain `GET` on an open connection, answered in full (the stock body is short).
fn get_on(stream: &mut TcpStream, path: &str) -> String {
    stream
        .write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .unwrap();
    read_answer(stream)
}

/// Reads one HTTP/1.1 answer with a `content-length`.
fn read_answer(stream: &mut TcpStream) -> String {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut answer = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        let n = stream.read(&mut buffer).unwrap();
        assert!(n > 0, "closed before the answer: {answer:?}");
        answer.extend_from_slice(&buffer[..n]);
        let text = String::from_utf8_lossy(&answer).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            if body.len() >= length {
                return text;
            }
        }
    }
}

#[test]
fn silent_connections_and_a_bare_h2_preface_are_closed_after_the_read_timeout() {
    let gw = start(&stock_deployment(), false, &["--read-timeout", "1"]);
    let address = address(&gw.base);
    let started = Instant::now();
    let mut streams: Vec<TcpStream> = (0..6)
        .map(|i| {
            let mut stream = TcpStream::connect(&address).unwrap();
            if i % 2 == 1 {
                stream.write_all(H2_PREFACE).unwrap();
            }
            stream
        })
        .collect();
    assert_closed_between(
        &mut streams,
        started,
        Duration::from_millis(900),
        Duration::from_secs(4),
        "a silent connection",
    );
    // Still serving.
    let mut fresh = TcpStream::connect(&address).unwrap();
    assert!(get_on(&mut fresh, "/v1/open").starts_with("HTTP/1.1 200"));
}

/// An HTTP/2 `HEADERS` frame (END_STREAM, END_HEADERS) for `GET http://x/v1/open` on stream
/// 1, with HPACK literals that need no Huffman coding.
fn h2_get_frame() -> Vec<u8> {
    let mut block = vec![0x82, 0x86]; // :method GET, :scheme http (static table)
    for (index, value) in [(4u8, "/v1/open"), (1u8, "x")] {
        // Literal header field without indexing, indexed name (:path, :authority).
        block.push(index);
        block.push(value.len() as u8);
        block.extend_from_slice(value.as_bytes());
    }
    let mut frame = vec![0, 0, block.len() as u8, 0x1, 0x5, 0, 0, 0, 1];
    frame.extend_from_slice(&block);
    frame
}

#[test]
fn idle_keep_alive_and_idle_h2_connections_are_closed_after_the_read_timeout() {
    let gw = start(&stock_deployment(), false, &["--read-timeout", "1"]);
    let address = address(&gw.base);
    // HTTP/1.1: answered, then closed once idle for the read timeout.
    let mut keep_alive = TcpStream::connect(&address).unwrap();
    assert!(get_on(&mut keep_alive, "/v1/open").starts_with("HTTP/1.1 200"));
    let answered = Instant::now();
    // h2c with prior knowledge: a SETTINGS frame and one request, answered, then idle.
    let mut h2 = TcpStream::connect(&address).unwrap();
    h2.write_all(H2_PREFACE).unwrap();
    h2.write_all(&[0, 0, 0, 0x4, 0, 0, 0, 0, 0]).unwrap();
    h2.write_all(&h2_get_frame()).unwrap();
    // The answer's HEADERS frame (type 1) on stream 1 arrives before the close.
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    h2.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let h2_started = Instant::now();
    let mut saw_headers = false;
    let h2_closed = loop {
        match h2.read(&mut buffer) {
            Ok(0) | Err(_) => break h2_started.elapsed(),
            Ok(n) => received.extend_from_slice(&buffer[..n]),
        }
        // Walk the frames received so far.
        let mut at = 0;
        while received.len() >= at + 9 {
            let length = usize::from(received[at]) << 16
                | usize::from(received[at + 1]) << 8
                | usize::from(received[at + 2]);
            let stream_id = u32::from_be_bytes(received[at + 5..at + 9].try_into().unwrap());
            if received[at + 3] == 0x1 && stream_id == 1 {
                saw_headers = true;
            }
            at += 9 + length;
        }
        assert!(
            h2_started.elapsed() < Duration::from_secs(5),
            "h2 never closed"
        );
    };
    assert!(saw_headers, "the h2 request was answered: {received:?}");
    assert!(
        h2_closed >= Duration::from_millis(900) && h2_closed < Duration::from_secs(4),
        "idle h2 connection closed after {h2_closed:?}"
    );
    assert_closed_between(
        std::slice::from_mut(&mut keep_alive),
        answered,
        Duration::from_millis(900),
        Duration::from_secs(4),
        "an idle keep-alive connection",
    );
}

#[test]
fn a_silent_connection_to_the_admin_listener_is_closed() {
    let gw = start(&stock_deployment(), true, &["--read-timeout", "1"]);
    let admin = address(gw.admin.as_ref().unwrap());
    let started = Instant::now();
    let silent = TcpStream::connect(&admin).unwrap();
    let mut partial = TcpStream::connect(&admin).unwrap();
    partial.write_all(b"GET /livez HTTP/1.1\r\n").unwrap();
    assert_closed_between(
        &mut [silent, partial],
        started,
        Duration::from_millis(900),
        Duration::from_secs(4),
        "a slow admin connection",
    );
    let mut fresh = TcpStream::connect(&admin).unwrap();
    assert!(get_on(&mut fresh, "/livez").starts_with("HTTP/1.1 200"));
}

/// A `GET /v1/open` on a new connection, in a thread: its status line, or the error.
fn get_in_background(address: &str) -> std::sync::mpsc::Receiver<String> {
    let (sender, receiver) = std::sync::mpsc::channel();
    let address = address.to_owned();
    std::thread::spawn(move || {
        let answer = TcpStream::connect(&address).map(|mut stream| {
            let answer = get_on(&mut stream, "/v1/open");
            answer.lines().next().unwrap_or("").to_owned()
        });
        let _ = sender.send(answer.unwrap_or_else(|e| format!("error: {e}")));
    });
    receiver
}

#[test]
fn max_connections_holds_new_connections_back_until_one_closes() {
    let gw = start(
        &stock_deployment(),
        false,
        &[
            "--max-connections",
            "2",
            "--read-timeout",
            "10",
            "--threads",
            "1",
        ],
    );
    let address = address(&gw.base);
    let first = TcpStream::connect(&address).unwrap();
    let _second = TcpStream::connect(&address).unwrap();
    // Both are accepted (and hold their slots) before the third arrives.
    std::thread::sleep(Duration::from_millis(300));
    let third = get_in_background(&address);
    assert!(
        third.recv_timeout(Duration::from_millis(1500)).is_err(),
        "a third connection was served while two were open"
    );
    drop(first);
    let status = third.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(status, "HTTP/1.1 200 OK");
}

/// User and system CPU time of `pid` so far (Linux /proc, in clock ticks).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which may hold spaces) start at state (field 3).
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

/// `claimgate serve` under a descriptor limit of 64 (set by the shell, then `exec`).
fn start_with_fd_limit(extra: &str) -> Gateway {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("deployment.json");
    std::fs::write(&file, stock_deployment().to_string()).unwrap();
    let listen = format!("127.0.0.1:{}", free_port());
    let (execution_log, access_log) = (
        dir.path().join("execution.log"),
        dir.path().join("access.log"),
    );
    let script = format!(
        "ulimit -n 64 && exec \"$0\" serve --listen {listen} --deployment {} --execution-log {} --access-log {} {extra}",
        file.display(),
        execution_log.display(),
        access_log.display()
    );
    let child = Command::new("sh")
        .args(["-c", &script, env!("CARGO_BIN_EXE_claimgate")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for(&listen);
    Gateway {
        child,
        base: format!("http://{listen}"),
        admin: None,
        execution_log,
        access_log,
        dir,
    }
}

#[test]
fn at_the_descriptor_limit_the_accept_loop_backs_off_and_recovers() {
    let gw = start_with_fd_limit("--read-timeout 30 --threads 1");
    let address = address(&gw.base);
    // More idle connections than the process has descriptors: the kernel queues the rest.
    let held: Vec<TcpStream> = (0..100)
        .map(|_| TcpStream::connect(&address).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let before = cpu_ticks(gw.child.id());
    std::thread::sleep(Duration::from_secs(1));
    let spent = cpu_ticks(gw.child.id()) - before;
    // Clock ticks are 1/100 s: a spinning accept loop burns ~100 a second.
    assert!(
        spent <= 20,
        "{spent} ticks of CPU in 1 s at the descriptor limit"
    );
    drop(held);
    let answer = get_in_background(&address);
    assert_eq!(
        answer.recv_timeout(Duration::from_secs(10)).unwrap(),
        "HTTP/1.1 200 OK",
        "serving again once the connections are gone"
    );
}

/// The standard error of `claimgate serve ARGS`, which must refuse to start (exit 2) within
/// 10 s (an instance that starts instead is stopped, and the test fails).
fn refused_by_serve(args: &[&str]) -> String {
    let child = Command::new(env!("CARGO_BIN_EXE_claimgate"))
        .arg("serve")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut running = Running(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = running.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "serve {args:?} started instead of refusing"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    running
        .0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert_eq!(status.code(), Some(2), "{stderr}");
    stderr
}

#[test]
fn a_port_another_socket_listens_on_is_refused_whatever_threads_says() {
    let first = start(&stock_deployment(), false, &["--threads", "2"]);
    let listen = address(&first.base);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("deployment.json");
    std::fs::write(&file, stock_deployment().to_string()).unwrap();
    let file = file.to_str().unwrap();
    for threads in ["2", "1"] {
        let stderr = refused_by_serve(&[
            "--listen",
            &listen,
            "--deployment",
            file,
            "--threads",
            threads,
        ]);
        assert!(stderr.contains("address in use"), "{stderr}");
    }
    // Any other listener: a plain socket holding the port.
    let holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let held = holder.local_addr().unwrap().to_string();
    for threads in ["2", "1"] {
        let stderr = refused_by_serve(&[
            "--listen",
            &held,
            "--deployment",
            file,
            "--threads",
            threads,
        ]);
        assert!(stderr.contains("address in use"), "{stderr}");
    }
    // The first instance still serves alone.
    let mut stream = TcpStream::connect(&listen).unwrap();
    assert!(get_on(&mut stream, "/v1/open").starts_with("HTTP/1.1 200"));
}

/// An upstream that reads the whole request body, then answers 200 with its length; it runs
/// on its own runtime, which the caller keeps.
fn start_reading_upstream() -> (tokio::runtime::Runtime, SocketAddr) {
    use http_body_util::BodyExt as _;
    let rt = support::runtime();
    let addr = support::serve_http(&rt, |request| async move {
        let length = match request.into_body().collect().await {
            Ok(body) => body.to_bytes().len().to_string(),
            Err(e) => format!("body error: {e}"),
        };
        hyper::Response::new(http_body_util::Full::new(bytes::Bytes::from(length)))
    });
    (rt, addr)
}

fn upload_deployment(upstream: SocketAddr) -> Value {
    json!({"pathPrefix": "/v1", "specification": {"routes": [
        {"path": "/upload", "methods": ["POST"],
         "backend": {"type": "HTTP_BACKEND", "url": format!("http://{upstream}/upload")}}
    ]}})
}

/// Sends `head` and then `body` (written in pieces), returns the answer's head and its
/// `opc-request-id`.
fn post_raw(address: &str, head: &str, body: &[&[u8]]) -> (String, String) {
    let mut stream = TcpStream::connect(address).unwrap();
    stream.write_all(head.as_bytes()).unwrap();
    for piece in body {
        // The server may answer (and close) before the whole body is written.
        if stream.write_all(piece).is_err() {
            break;
        }
    }
    let answer = read_answer(&mut stream);
    let request_id = answer
        .lines()
        .find_map(|l| l.strip_prefix("opc-request-id: "))
        .unwrap_or_default()
        .to_owned();
    (answer, request_id)
}

fn codes(records: &[Value]) -> Vec<(String, String)> {
    records
        .iter()
        .filter_map(|r| {
            let code = r["data"]["code"].as_str()?;
            Some((
                code.to_owned(),
                r["data"]["level"].as_str().unwrap_or("").to_owned(),
            ))
        })
        .collect()
}

#[test]
fn a_bad_chunked_body_is_400_and_an_oversized_one_413_never_a_backend_502() {
    let (_rt, upstream) = start_reading_upstream();
    let gw = start(&upload_deployment(upstream), false, &[]);
    let address = address(&gw.base);
    let head = "POST /v1/upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";

    // Well-formed chunking reaches the backend whole.
    let (answer, _) = post_raw(&address, head, &[b"5\r\nhello\r\n0\r\n\r\n"]);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("\r\n\r\n5"), "{answer}");

    // A chunk size that is not hexadecimal.
    let (answer, id) = post_raw(&address, head, &[b"5\r\nhello\r\nzz\r\nnope\r\n0\r\n\r\n"]);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    let found = codes(&records(&gw.execution_log, &id, 1));
    assert!(
        found.contains(&("request.bodyInvalid".into(), "WARN".into())),
        "{found:?}"
    );
    assert!(
        !found
            .iter()
            .any(|(code, _)| code.starts_with("httpBackend")),
        "{found:?}"
    );

    // More than 20 MiB in chunks (no Content-Length to refuse up front).
    let chunk = {
        let mut chunk = format!("{:x}\r\n", 1024 * 1024).into_bytes();
        chunk.extend(std::iter::repeat_n(b'a', 1024 * 1024));
        chunk.extend_from_slice(b"\r\n");
        chunk
    };
    let pieces: Vec<&[u8]> = std::iter::repeat_n(chunk.as_slice(), 22)
        .chain([b"0\r\n\r\n".as_slice()])
        .collect();
    let (answer, id) = post_raw(&address, head, &pieces);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    let found = codes(&records(&gw.execution_log, &id, 1));
    assert!(
        found.contains(&("request.bodyInvalid".into(), "WARN".into())),
        "{found:?}"
    );
    assert!(
        !found
            .iter()
            .any(|(code, _)| code.starts_with("httpBackend")),
        "{found:?}"
    );

    // Declared larger than 20 MiB: refused from the head alone, with the same record.
    let declared = format!(
        "POST /v1/upload HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
        21 * 1024 * 1024
    );
    let (answer, id) = post_raw(&address, &declared, &[]);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    let found = codes(&records(&gw.execution_log, &id, 1));
    assert_eq!(found, [("request.bodyInvalid".into(), "WARN".into())]);
}

/// An upstream answering `200` after `delay`.
fn start_slow_upstream(delay: Duration) -> (tokio::runtime::Runtime, SocketAddr) {
    let rt = support::runtime();
    let addr = support::serve_http(&rt, move |_| async move {
        tokio::time::sleep(delay).await;
        hyper::Response::new(http_body_util::Full::new(bytes::Bytes::from_static(
            b"slow",
        )))
    });
    (rt, addr)
}

#[test]
fn connections_are_closed_gracefully_after_max_connection_age() {
    let (_rt, upstream) = start_slow_upstream(Duration::from_secs(2));
    let deployment = json!({"pathPrefix": "/v1", "specification": {"routes": [
        {"path": "/open", "methods": ["GET"], "backend": {"type": "STOCK_RESPONSE_BACKEND", "status": 200, "body": "open"}},
        {"path": "/slow", "methods": ["GET"], "backend": {"type": "HTTP_BACKEND", "url": format!("http://{upstream}/")}}
    ]}});
    let gw = start(
        &deployment,
        false,
        &["--max-connection-age", "1", "--read-timeout", "30"],
    );
    let address = address(&gw.base);
    // A kept-alive connection, idle well within the read timeout, is closed at its age.
    let opened = Instant::now();
    let mut idle = TcpStream::connect(&address).unwrap();
    assert!(get_on(&mut idle, "/v1/open").starts_with("HTTP/1.1 200"));
    assert_closed_between(
        std::slice::from_mut(&mut idle),
        opened,
        Duration::from_millis(900),
        Duration::from_secs(4),
        "an aged keep-alive connection",
    );
    // A request in flight when the age is reached still gets its answer, then the close.
    let opened = Instant::now();
    let mut busy = TcpStream::connect(&address).unwrap();
    let answer = get_on(&mut busy, "/v1/slow");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("slow"), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("connection: close"),
        "{answer}"
    );
    assert!(opened.elapsed() >= Duration::from_secs(2));
    assert_closed_between(
        std::slice::from_mut(&mut busy),
        opened,
        Duration::from_secs(2),
        Duration::from_secs(5),
        "an aged connection after its last answer",
    );
}

/// A leaf certificate from `ca` for `name`: (certificate PEM, key PEM).
fn leaf(ca: &Ca, name: &str, client: bool) -> (String, String) {
    support::leaf(ca, None, &[name], client, None).pair()
}

type TlsStream = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

/// An HTTP/1.1-over-TLS connection to `address` trusting `server_ca`, presenting `identity`.
fn tls_connect(address: &str, server_ca: &Ca, identity: &(String, String)) -> TlsStream {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(server_ca.pem.as_bytes()).unwrap())
        .unwrap();
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(
            vec![CertificateDer::from_pem_slice(identity.0.as_bytes()).unwrap()],
            PrivateKeyDer::from_pem_slice(identity.1.as_bytes()).unwrap(),
        )
        .unwrap();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let name = "localhost".try_into().unwrap();
    let connection = rustls::ClientConnection::new(std::sync::Arc::new(config), name).unwrap();
    let socket = TcpStream::connect(address).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    rustls::StreamOwned::new(connection, socket)
}

/// `GET /v1/open` on a TLS connection: the start of the answer.
fn tls_get(stream: &mut TlsStream) -> String {
    stream
        .write_all(b"GET /v1/open HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let mut buffer = [0u8; 4096];
    let n = stream.read(&mut buffer).unwrap();
    String::from_utf8_lossy(&buffer[..n]).into_owned()
}

#[test]
fn a_reload_that_changes_the_client_cas_closes_connections_judged_under_the_old_ones() {
    let dir = tempfile::tempdir().unwrap();
    let server_ca = ca("claimgate test server CA");
    let (old_ca, new_ca) = (ca("old client CA"), ca("new client CA"));
    let (cert, key) = leaf(&server_ca, "localhost", false);
    let client = leaf(&old_ca, "client.test", true);
    let paths = ["cert.pem", "key.pem", "client-ca.pem"].map(|f| dir.path().join(f));
    std::fs::write(&paths[0], cert).unwrap();
    std::fs::write(&paths[1], key).unwrap();
    std::fs::write(&paths[2], &old_ca.pem).unwrap();
    let file = dir.path().join("deployment.json");
    std::fs::write(&file, stock_deployment().to_string()).unwrap();
    let [cert, key, client_ca] = paths.each_ref().map(|p| p.to_str().unwrap().to_owned());
    let gw = start_gateway_on(
        dir,
        &[file],
        false,
        &[
            "--tls-cert",
            &cert,
            "--tls-key",
            &key,
            "--client-ca",
            &client_ca,
            "--read-timeout",
            "30",
        ],
    );
    let address = address(&gw.base);
    let mut stream = tls_connect(&address, &server_ca, &client);
    assert!(tls_get(&mut stream).starts_with("HTTP/1.1 200"));
    stream
        .sock
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    // Unchanged CAs: the connection stays open.
    let started = Instant::now();
    assert_eq!(
        closed_after(&mut stream, started, Duration::from_millis(1500)),
        None
    );
    // The client CAs change (the watcher looks every second): closed, gracefully.
    std::fs::write(&client_ca, &new_ca.pem).unwrap();
    let changed = Instant::now();
    assert!(
        closed_after(&mut stream, changed, Duration::from_secs(6)).is_some(),
        "still open after the client CAs changed"
    );
    // New connections are served under the new CAs.
    let mut fresh = tls_connect(&address, &server_ca, &leaf(&new_ca, "client.test", true));
    assert!(tls_get(&mut fresh).starts_with("HTTP/1.1 200"));
}
