//! What held when issue 11's reviewers attacked the running gateway, kept so: request
//! smuggling over raw HTTP/1.1 (Content-Length with Transfer-Encoding, two lengths, obs-fold,
//! requests pipelined behind a 401), HTTP/2 rapid reset and CONTINUATION floods, one 401 for
//! every cause of an authentication failure, and TLS 1.0/1.1 and weak cipher suites refused.
//! The real binary on loopback ports, a recording upstream in the test process, hand-written
//! HTTP/1.1 and HTTP/2 bytes on raw sockets, and `openssl s_client` for old TLS versions.

mod support;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use support::{now, start_gateway_on, Gateway, Signer};

const ISS: &str = "https://idp.test/";
const AUD: &str = "api://orders";

fn signer() -> &'static Signer {
    static S: OnceLock<Signer> = OnceLock::new();
    S.get_or_init(|| Signer::new("k1"))
}

fn claims() -> Value {
    json!({"iss": ISS, "aud": AUD, "sub": "alice", "exp": now() + 600})
}

/// An upstream that records every request it receives as `METHOD target [headers] body` and
/// answers 200 `seen`; on its own runtime, stopped when dropped.
struct Recorder {
    _rt: tokio::runtime::Runtime,
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<String>>>,
}

impl Recorder {
    fn start() -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = seen.clone();
        rt.spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let record = record.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(
                        move |request: hyper::Request<hyper::body::Incoming>| {
                            let record = record.clone();
                            async move {
                                let head = format!(
                                    "{} {} [{}]",
                                    request.method(),
                                    request.uri(),
                                    request
                                        .headers()
                                        .iter()
                                        .map(|(n, v)| format!("{n}: {}", v.to_str().unwrap_or("?")))
                                        .collect::<Vec<_>>()
                                        .join(", ")
                                );
                                let body = match request.into_body().collect().await {
                                    Ok(body) => {
                                        String::from_utf8_lossy(&body.to_bytes()).into_owned()
                                    }
                                    Err(e) => format!("<body error: {e}>"),
                                };
                                record.lock().unwrap().push(format!("{head} {body}"));
                                Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(
                                    Bytes::from_static(b"seen"),
                                )))
                            }
                        },
                    );
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self {
            _rt: rt,
            addr,
            seen,
        }
    }

    /// What reached the upstream so far, after a moment for requests still on their way.
    fn seen(&self) -> Vec<String> {
        std::thread::sleep(Duration::from_millis(300));
        self.seen.lock().unwrap().clone()
    }
}

fn jwt_policy() -> Value {
    json!({
        "type": "JWT_AUTHENTICATION", "tokenHeader": "Authorization", "tokenAuthScheme": "Bearer",
        "issuers": [ISS], "audiences": [AUD], "isAnonymousAccessAllowed": true,
        "publicKeys": {"type": "STATIC_KEYS", "keys": [signer().static_key()]}
    })
}

/// `/v1/open` (anonymous) and `/v1/private` (a token needed), both to the recorder.
fn deployment(upstream: SocketAddr) -> Value {
    json!({
        "displayName": "held",
        "pathPrefix": "/v1",
        "specification": {
            "requestPolicies": {"authentication": jwt_policy()},
            "routes": [
                {"path": "/open", "methods": ["GET", "POST"],
                 "requestPolicies": {"authorization": {"type": "ANONYMOUS"}},
                 "backend": {"type": "HTTP_BACKEND", "url": format!("http://{upstream}/open")}},
                {"path": "/private", "methods": ["GET", "POST"],
                 "backend": {"type": "HTTP_BACKEND", "url": format!("http://{upstream}/private")}}
            ]
        }
    })
}

fn start(deployment: &Value, extra: &[&str]) -> Gateway {
    let dir = tempfile::tempdir().unwrap();
    let file: PathBuf = dir.path().join("deployment.json");
    std::fs::write(&file, deployment.to_string()).unwrap();
    start_gateway_on(dir, &[file], false, extra)
}

fn address(gw: &Gateway) -> String {
    gw.base.trim_start_matches("http://").to_owned()
}

/// Writes `bytes` on a new connection, then reads everything the gateway sends until it
/// closes the connection or stays silent for 1.5 s.
fn exchange(address: &str, bytes: &[u8]) -> String {
    let mut stream = TcpStream::connect(address).unwrap();
    stream.write_all(bytes).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_millis(1500)))
        .unwrap();
    let mut answer = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => answer.extend_from_slice(&buffer[..n]),
        }
    }
    String::from_utf8_lossy(&answer).into_owned()
}

/// The status codes of every answer in `text`, in order.
fn statuses(text: &str) -> Vec<u16> {
    text.match_indices("HTTP/1.1 ")
        .filter_map(|(at, _)| text.get(at + 9..at + 12)?.parse().ok())
        .collect()
}

/// SPEC (HTTP/1.1 framing, RFC 9112 §6.3): a request with both `Content-Length` and
/// `Transfer-Encoding` is refused or framed by the chunking alone, and what follows its body
/// is never read as a request that reaches the backend unjudged.
#[test]
fn content_length_with_transfer_encoding_smuggles_nothing() {
    let upstream = Recorder::start();
    let gw = start(&deployment(upstream.addr), &[]);
    let smuggled = "GET /v1/private?smuggled=1 HTTP/1.1\r\nHost: x\r\n\r\n";
    // CL.TE: the length covers the smuggled request, the chunking ends before it.
    let cl_te = format!(
        "POST /v1/open HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\
         Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n{smuggled}",
        5 + smuggled.len()
    );
    // TE.CL: the chunk carries the smuggled request, the length stops before it.
    let chunk = format!("{:x}\r\n{smuggled}\r\n0\r\n\r\n", smuggled.len());
    let te_cl = format!(
        "POST /v1/open HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\
         Transfer-Encoding: chunked\r\n\r\n{chunk}"
    );
    // Obfuscated Transfer-Encoding headers a lenient parser would skip or honour.
    let variants = [
        ("CL.TE", cl_te),
        ("TE.CL", te_cl),
        (
            "TE with a space before the colon",
            format!(
                "POST /v1/open HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\
                 Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n{smuggled}",
                5 + smuggled.len()
            ),
        ),
        (
            "TE not ending in chunked",
            format!(
                "POST /v1/open HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\
                 Content-Length: {}\r\n\r\n0\r\n\r\n{smuggled}",
                5 + smuggled.len()
            ),
        ),
    ];
    for (what, request) in variants {
        let answer = exchange(&address(&gw), request.as_bytes());
        let codes = statuses(&answer);
        // Refused outright, or one answer to the chunked request and the connection closed
        // (RFC 9112 §6.1): never an answer to the smuggled bytes.
        assert!(
            codes == [400] || codes == [200] || codes == [501],
            "{what}: {codes:?} {answer}"
        );
        eprintln!("{what}: {codes:?}");
        // At most the one request, to its own target (the smuggled bytes may be its body).
        let seen = upstream.seen();
        assert!(seen.len() <= 1, "{what}: {seen:?}");
        assert!(
            seen.iter().all(|r| r.starts_with("POST /open [")),
            "{what}: {seen:?}"
        );
        assert!(
            seen.iter()
                .all(|r| !(r.contains("content-length") && r.contains("transfer-encoding"))),
            "{what}: the backend got both framings: {seen:?}"
        );
        upstream.seen.lock().unwrap().clear();
    }
}

/// SPEC: two different `Content-Length` values, or an obs-fold continuation line, are 400
/// and nothing reaches the backend (a proxy behind that picks the other value, or unfolds
/// the line into a header, would read a different request).
#[test]
fn conflicting_lengths_and_folded_header_lines_are_400() {
    let upstream = Recorder::start();
    let gw = start(&deployment(upstream.addr), &[]);
    let cases = [
        (
            "two lengths",
            "POST /v1/open HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
        ),
        (
            "two lengths in one field",
            "POST /v1/open HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 6\r\n\r\nhello!",
        ),
        (
            "a signed length",
            "POST /v1/open HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\nhello",
        ),
        (
            "obs-fold",
            "GET /v1/open HTTP/1.1\r\nHost: x\r\nX-Note: a\r\n  b\r\n\r\n",
        ),
        (
            "obs-fold hiding a Transfer-Encoding",
            "POST /v1/open HTTP/1.1\r\nHost: x\r\nX-Note: a\r\n\tTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\nhello",
        ),
        (
            "obs-fold in the Authorization header",
            "GET /v1/private HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer\r\n x\r\n\r\n",
        ),
    ];
    for (what, request) in cases {
        let answer = exchange(&address(&gw), request.as_bytes());
        assert_eq!(statuses(&answer), [400], "{what}: {answer}");
    }
    assert_eq!(upstream.seen(), Vec::<String>::new());
    // The same requests without the ambiguity pass.
    let answer = exchange(
        &address(&gw),
        b"POST /v1/open HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
    );
    assert_eq!(statuses(&answer), [200], "{answer}");
    let seen = upstream.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert!(
        seen[0].starts_with("POST /open") && seen[0].ends_with("hello"),
        "{seen:?}"
    );
}

/// SPEC: requests pipelined on one connection are judged one by one: a 401 does not let the
/// next request through, nor does it keep a valid one out; the body of a refused request is
/// never read as a request.
#[test]
fn requests_pipelined_after_a_401_are_judged_on_their_own() {
    let upstream = Recorder::start();
    let gw = start(&deployment(upstream.addr), &[]);
    let token = signer().token(claims());
    let pipelined = format!(
        "GET /v1/private?n=1 HTTP/1.1\r\nHost: x\r\n\r\n\
         GET /v1/private?n=2 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n\
         GET /v1/private?n=3 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}x\r\n\r\n\
         GET /v1/open?n=4 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    );
    let answer = exchange(&address(&gw), pipelined.as_bytes());
    assert_eq!(statuses(&answer), [401, 200, 401, 200], "{answer}");
    let seen = upstream.seen();
    let targets: Vec<&str> = seen
        .iter()
        .map(|r| r.split(' ').nth(1).unwrap_or(""))
        .collect();
    assert_eq!(targets, ["/private?n=2", "/open?n=4"], "{seen:?}");

    // A refused request whose body is a request: the body stays a body.
    upstream.seen.lock().unwrap().clear();
    let inner = "GET /v1/open?smuggled=1 HTTP/1.1\r\nHost: x\r\n\r\n";
    let pipelined = format!(
        "POST /v1/private HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{inner}\
         GET /v1/open?n=5 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        inner.len()
    );
    let answer = exchange(&address(&gw), pipelined.as_bytes());
    let codes = statuses(&answer);
    // The gateway may answer the 401 and close rather than read the unwanted body.
    assert!(codes == [401, 200] || codes == [401], "{codes:?} {answer}");
    let seen = upstream.seen();
    assert!(seen.iter().all(|r| !r.contains("smuggled")), "{seen:?}");
    assert!(seen.iter().all(|r| !r.contains("/private")), "{seen:?}");
    if codes == [401, 200] {
        assert_eq!(seen.len(), 1, "{seen:?}");
        assert!(seen[0].starts_with("GET /open?n=5"), "{seen:?}");
    }

    // The same with chunking: the chunk carrying a request is not a request either.
    upstream.seen.lock().unwrap().clear();
    let pipelined = format!(
        "POST /v1/private HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\
         {:x}\r\n{inner}\r\n0\r\n\r\n\
         GET /v1/open?n=6 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        inner.len()
    );
    let answer = exchange(&address(&gw), pipelined.as_bytes());
    let codes = statuses(&answer);
    assert!(codes == [401, 200] || codes == [401], "{codes:?} {answer}");
    let seen = upstream.seen();
    assert!(seen.iter().all(|r| !r.contains("smuggled")), "{seen:?}");
    assert!(seen.iter().all(|r| !r.contains("/private")), "{seen:?}");
}

/// The client's HTTP/2 connection preface (RFC 9113 §3.4) and an empty SETTINGS frame.
const H2_START: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";

/// An HTTP/2 frame of `kind` with `flags` on `stream`.
fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let length = payload.len() as u32;
    let mut frame = length.to_be_bytes()[1..].to_vec();
    frame.extend_from_slice(&[kind, flags]);
    frame.extend_from_slice(&stream.to_be_bytes());
    frame.extend_from_slice(payload);
    frame
}

const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const GOAWAY: u8 = 0x7;
const CONTINUATION: u8 = 0x9;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;

/// The HPACK block of `GET http://x{path}`: static-table indexes and literals without
/// indexing, so every block stands alone.
fn get_block(path: &str) -> Vec<u8> {
    let mut block = vec![0x82, 0x86]; // :method GET, :scheme http
    for (index, value) in [(4u8, path), (1u8, "x")] {
        block.push(index); // literal without indexing, :path / :authority by index
        block.push(value.len() as u8);
        block.extend_from_slice(value.as_bytes());
    }
    block
}

/// Reads HTTP/2 frames from `stream` in the background; reports `Some(error code)` at the
/// first GOAWAY, `None` when the connection closes without one.
fn watch_for_goaway(mut stream: TcpStream) -> std::sync::mpsc::Receiver<Option<u32>> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut head = [0u8; 9];
        loop {
            if stream.read_exact(&mut head).is_err() {
                let _ = tx.send(None);
                return;
            }
            let length = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
            let mut payload = vec![0u8; length];
            if stream.read_exact(&mut payload).is_err() {
                let _ = tx.send(None);
                return;
            }
            if head[3] == GOAWAY && payload.len() >= 8 {
                let code = u32::from_be_bytes([payload[4], payload[5], payload[6], payload[7]]);
                let _ = tx.send(Some(code));
                return;
            }
        }
    });
    rx
}

/// A plain h2c GET on a new connection answers 200 within `limit`.
fn answers_quickly(gw: &Gateway, limit: Duration) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let started = Instant::now();
    let status = rt.block_on(async {
        let client = reqwest::Client::builder()
            .no_proxy()
            .http2_prior_knowledge()
            .timeout(limit)
            .build()
            .unwrap();
        client
            .get(format!("{}/v1/open", gw.base))
            .send()
            .await
            .map(|r| r.status().as_u16())
    });
    assert_eq!(status.ok(), Some(200), "after {:?}", started.elapsed());
    assert!(started.elapsed() < limit, "{:?}", started.elapsed());
}

/// Writes `frames` on `stream` until the peer stops taking them (closed, or no progress for
/// 5 s); returns how many were written.
fn write_frames(stream: &mut TcpStream, frames: impl Iterator<Item = Vec<u8>>) -> usize {
    stream
        .set_write_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut written = 0;
    for frame in frames {
        if stream.write_all(&frame).is_err() {
            break;
        }
        written += 1;
    }
    written
}

/// SPEC (CVE-2023-44487): a client that opens streams and resets them at once is sent a
/// GOAWAY (or cut off) long before its thousands of streams are all served, and the gateway
/// keeps answering others.
#[test]
fn http2_rapid_reset_is_cut_off_and_the_gateway_keeps_serving() {
    let upstream = Recorder::start();
    let gw = start(&deployment(upstream.addr), &[]);
    let mut stream = TcpStream::connect(address(&gw)).unwrap();
    stream.write_all(H2_START).unwrap();
    let goaway = watch_for_goaway(stream.try_clone().unwrap());
    const STREAMS: u32 = 20_000;
    let block = get_block("/v1/open");
    let frames = (0..STREAMS).flat_map(|i| {
        let id = 2 * i + 1;
        let cancel = 0x8u32.to_be_bytes();
        [
            frame(HEADERS, END_STREAM | END_HEADERS, id, &block),
            frame(RST_STREAM, 0, id, &cancel),
        ]
    });
    let started = Instant::now();
    let written = write_frames(&mut stream, frames);
    let verdict = goaway.recv_timeout(Duration::from_secs(10));
    assert!(
        matches!(verdict, Ok(Some(_)) | Ok(None)),
        "no GOAWAY and still open after {written} frames: {verdict:?}"
    );
    let reached = upstream.seen().len();
    assert!(
        reached < (STREAMS / 10) as usize,
        "{reached} of {STREAMS} reset streams reached the backend"
    );
    eprintln!(
        "rapid reset: {written} frames written, {verdict:?} after {:?}, {reached} reached the backend",
        started.elapsed()
    );
    drop(stream);
    answers_quickly(&gw, Duration::from_secs(2));
}

/// SPEC (CVE-2024-27316 and kin): a header block that never ends, sent as endless
/// CONTINUATION frames (with header fields or empty), is cut off with a GOAWAY or a close
/// before it grows without bound, and the gateway keeps answering others.
#[test]
fn http2_continuation_floods_are_cut_off_and_the_gateway_keeps_serving() {
    let upstream = Recorder::start();
    let gw = start(&deployment(upstream.addr), &[]);
    let field = {
        // A literal header field without indexing, new name: x-pad: 100 bytes.
        let mut field = vec![0x00, 5];
        field.extend_from_slice(b"x-pad");
        field.push(100);
        field.extend(std::iter::repeat_n(b'a', 100));
        field
    };
    for (what, payload) in [("header fields", field), ("empty frames", Vec::new())] {
        let mut stream = TcpStream::connect(address(&gw)).unwrap();
        stream.write_all(H2_START).unwrap();
        let goaway = watch_for_goaway(stream.try_clone().unwrap());
        const FRAMES: usize = 100_000;
        let first = frame(HEADERS, END_STREAM, 1, &get_block("/v1/open"));
        let frames = std::iter::once(first)
            .chain(std::iter::repeat_with(|| frame(CONTINUATION, 0, 1, &payload)).take(FRAMES));
        let written = write_frames(&mut stream, frames);
        let verdict = goaway.recv_timeout(Duration::from_secs(10));
        assert!(
            matches!(verdict, Ok(Some(_)) | Ok(None)),
            "{what}: no GOAWAY and still open after {written} frames: {verdict:?}"
        );
        eprintln!("continuation flood of {what}: {written} frames written, {verdict:?}");
        drop(stream);
        answers_quickly(&gw, Duration::from_secs(2));
    }
    assert_eq!(upstream.seen().len(), 2, "only the two plain requests");
}

/// SPEC: every authentication failure is the same 401 (body and headers); which check
/// failed is in the execution log only, so a client learns nothing about keys, issuers,
/// audiences or clocks by trying.
#[test]
fn every_authentication_failure_is_the_same_401() {
    let upstream = Recorder::start();
    let gw = start(&deployment(upstream.addr), &[]);
    let other = Signer::new("k1");
    let with = |change: &dyn Fn(&mut Value)| {
        let mut c = claims();
        change(&mut c);
        c
    };
    let valid = signer().token(claims());
    let (head, rest) = valid.split_once('.').unwrap();
    let unsigned_head = {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#)
    };
    let causes: Vec<(&str, Option<String>)> = vec![
        ("no token", None),
        ("an empty bearer", Some("Bearer ".into())),
        ("the Basic scheme", Some("Basic YTpi".into())),
        ("not a JWT", Some("Bearer not-a-jwt".into())),
        (
            "another key under the same kid",
            Some(format!("Bearer {}", other.token(claims()))),
        ),
        (
            "alg none",
            Some(format!(
                "Bearer {unsigned_head}.{}.",
                rest.split('.').next().unwrap()
            )),
        ),
        ("an altered header", Some(format!("Bearer {head}x.{rest}"))),
        (
            "expired",
            Some(format!(
                "Bearer {}",
                signer().token(with(&|c| c["exp"] = json!(now() - 3600)))
            )),
        ),
        (
            "not yet valid",
            Some(format!(
                "Bearer {}",
                signer().token(with(&|c| c["nbf"] = json!(now() + 3600)))
            )),
        ),
        (
            "another audience",
            Some(format!(
                "Bearer {}",
                signer().token(with(&|c| c["aud"] = json!("api://billing")))
            )),
        ),
        (
            "another issuer",
            Some(format!(
                "Bearer {}",
                signer().token(with(&|c| c["iss"] = json!("https://evil.test/")))
            )),
        ),
        (
            "an unknown kid",
            Some(format!("Bearer {}", Signer::new("k9").token(claims()))),
        ),
    ];
    let http = support::client();
    let mut first: Option<(String, Vec<(String, String)>)> = None;
    for (what, authorization) in causes {
        let mut request = http.get(format!("{}/v1/private", gw.base));
        if let Some(value) = &authorization {
            request = request.header("Authorization", value);
        }
        let response = request.send().unwrap();
        assert_eq!(response.status().as_u16(), 401, "{what}");
        // Everything but the per-response date and request id.
        let mut headers: Vec<(String, String)> = response
            .headers()
            .iter()
            .filter(|(n, _)| !matches!(n.as_str(), "date" | "opc-request-id"))
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_owned()))
            .collect();
        headers.sort();
        let body = response.text().unwrap();
        match &first {
            None => {
                assert_eq!(body, r#"{"message":"Unauthorized","code":401}"#);
                assert!(
                    headers.contains(&(
                        "www-authenticate".into(),
                        r#"Bearer error="invalid_token""#.into()
                    )),
                    "{headers:?}"
                );
                first = Some((body, headers));
            }
            Some((body0, headers0)) => {
                assert_eq!(&body, body0, "{what}");
                assert_eq!(&headers, headers0, "{what}");
            }
        }
    }
    assert_eq!(upstream.seen(), Vec::<String>::new());
    // The control: the valid token passes.
    let response = http
        .get(format!("{}/v1/private", gw.base))
        .header("Authorization", format!("Bearer {valid}"))
        .send()
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
}
