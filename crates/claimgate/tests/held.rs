//! What held when issue 11's reviewers attacked the running gateway, kept so: request
//! smuggling over raw HTTP/1.1 (Content-Length with Transfer-Encoding, two lengths, obs-fold,
//! requests pipelined behind a 401), HTTP/2 rapid reset and CONTINUATION floods, one 401 for
//! every cause of an authentication failure, TLS 1.0/1.1 and weak cipher suites refused, bad
//! client certificates refused and mutual TLS never leaking between deployments, key set
//! fetches bounded in time and never redirected, files never quoted in errors, introspection
//! answers judged per deployment with the client secret never printed, exact CORS origins
//! with `Vary: Origin`, and forwarding headers that name the real peer. The real binary on
//! loopback ports, recording servers in the test process, hand-written HTTP/1.1 and HTTP/2
//! bytes on raw sockets, and `openssl s_client` for old TLS versions.

mod support;

use support::{ca, Ca};

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
        let rt = support::runtime();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = seen.clone();
        let addr = support::serve_http(&rt, move |request| {
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
                    Ok(body) => String::from_utf8_lossy(&body.to_bytes()).into_owned(),
                    Err(e) => format!("<body error: {e}>"),
                };
                record.lock().unwrap().push(format!("{head} {body}"));
                hyper::Response::new(Full::new(Bytes::from_static(b"seen")))
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
    support::start_gateway(std::slice::from_ref(deployment), false, extra)
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

/// A leaf (ECDSA P-256) from `ca` for the DNS name `name`, valid from `from` to `until` (Unix
/// seconds): (certificate PEM, key PEM).
fn leaf(ca: &Ca, name: &str, client: bool, from: i64, until: i64) -> (String, String) {
    support::leaf(ca, None, &[name], client, Some((from, until))).pair()
}

const DAY: i64 = 86_400;

fn stock(prefix: &str, body: &str, policies: Value) -> Value {
    json!({"displayName": body, "pathPrefix": prefix, "specification": {
        "requestPolicies": policies,
        "routes": [{"path": "/hello", "methods": ["GET"],
                    "backend": {"type": "STOCK_RESPONSE_BACKEND", "status": 200, "body": body}}]
    }})
}

/// The gateway over HTTPS on `deployments`, its server certificate from `server_ca` for
/// `localhost`, client certificates trusted from `client_ca`.
fn start_tls(deployments: &[Value], server_ca: &Ca, client_ca: &Ca) -> Gateway {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = leaf(server_ca, "localhost", false, now() - DAY, now() + DAY);
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let cert_file = write("server.pem", &cert);
    let key_file = write("server.key", &key);
    let ca_file = write("clients.pem", &client_ca.pem);
    let files: Vec<PathBuf> = deployments
        .iter()
        .enumerate()
        .map(|(i, d)| write(&format!("deployment-{i}.json"), &d.to_string()))
        .collect();
    let args = [
        "--tls-cert".to_owned(),
        cert_file.to_str().unwrap().to_owned(),
        "--tls-key".to_owned(),
        key_file.to_str().unwrap().to_owned(),
        "--client-ca".to_owned(),
        ca_file.to_str().unwrap().to_owned(),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    start_gateway_on(dir, &files, false, &args)
}

/// `openssl s_client` against `address` with `flags`: whether the handshake completed, and
/// what it printed.
fn s_client(address: &str, flags: &[&str]) -> (bool, String) {
    let output = std::process::Command::new("openssl")
        .args(["s_client", "-connect", address, "-servername", "localhost"])
        .args(flags)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let done = output.status.success() && !text.contains("Cipher is (NONE)");
    (done, text)
}

/// SPEC: the HTTPS listener speaks TLS 1.2 and 1.3 only, with AEAD suites and forward
/// secrecy: a TLS 1.0 or 1.1 ClientHello, or a TLS 1.2 one offering only CBC, NULL, CCM8,
/// Camellia or ARIA suites, is refused by the server with a handshake alert. Needs `openssl`
/// (the only client at hand that still speaks TLS 1.0); skipped, and said so, without it.
#[test]
fn tls_1_0_and_1_1_and_weak_cipher_suites_are_refused() {
    if std::process::Command::new("openssl")
        .arg("version")
        .output()
        .is_err()
    {
        support::skip(
            "held::tls_1_0_and_1_1_and_weak_cipher_suites_are_refused",
            "no openssl on this machine to offer TLS 1.0/1.1",
        );
        return;
    }
    let server_ca = ca("held server CA");
    let client_ca = ca("held client CA");
    let gw = start_tls(&[stock("/open", "open", json!({}))], &server_ca, &client_ca);
    let address = address(&gw);
    // SECLEVEL=0 lets this openssl offer what its defaults no longer do.
    let old = "DEFAULT@SECLEVEL=0";
    for version in ["-tls1", "-tls1_1"] {
        let (done, text) = s_client(&address, &[version, "-cipher", old]);
        assert!(!done, "{version} was accepted: {text}");
        // The ClientHello left and the server refused it (not this openssl refusing to try).
        assert!(text.contains("SSL alert number"), "{version}: {text}");
    }
    for suite in [
        "ECDHE-ECDSA-AES128-SHA",
        "ECDHE-ECDSA-AES256-SHA",
        "ECDHE-ECDSA-AES128-SHA256",
        "ECDHE-ECDSA-AES256-SHA384",
        "ECDHE-ECDSA-NULL-SHA",
        "ECDHE-ECDSA-AES128-CCM8",
        "ECDHE-ECDSA-CAMELLIA128-SHA256",
        "ECDHE-ECDSA-ARIA128-GCM-SHA256",
    ] {
        let cipher = format!("{suite}@SECLEVEL=0");
        let (done, text) = s_client(&address, &["-tls1_2", "-cipher", &cipher]);
        assert!(!done, "{suite} was accepted: {text}");
        assert!(text.contains("SSL alert number"), "{suite}: {text}");
    }
    // The controls: TLS 1.2 with an AEAD suite, and TLS 1.3.
    let (done, text) = s_client(
        &address,
        &["-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256"],
    );
    assert!(
        done && text.contains("Cipher is ECDHE-ECDSA-AES128-GCM-SHA256"),
        "{text}"
    );
    let (done, text) = s_client(&address, &["-tls1_3"]);
    assert!(done && text.contains("TLSv1.3"), "{text}");
}

/// An HTTPS client trusting `server_ca`, presenting `identity` if given; each client keeps
/// its connection alive between requests.
fn https_client(server_ca: &Ca, identity: Option<&(String, String)>) -> reqwest::blocking::Client {
    let mut builder = reqwest::blocking::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(20))
        .tls_certs_only([reqwest::Certificate::from_pem(server_ca.pem.as_bytes()).unwrap()]);
    if let Some((cert, key)) = identity {
        let pem = format!("{key}{cert}");
        builder = builder.identity(reqwest::Identity::from_pem(pem.as_bytes()).unwrap());
    }
    builder.build().unwrap()
}

/// SPEC: a client certificate that expired, is not valid yet, or comes from another CA is
/// refused (401 `mutualTls.clientCertificateInvalid`); and a certificate one deployment
/// accepts on a listener opens no other: on the same kept-alive connection, each request is
/// judged by its own deployment's `allowedSans`.
#[test]
fn bad_client_certificates_are_refused_and_one_never_opens_another_deployment() {
    let server_ca = ca("held server CA");
    let client_ca = ca("held client CA");
    let stranger_ca = ca("someone else's CA");
    let only = |name: &str| json!({"mutualTls": {"isVerifiedCertificateRequired": true, "allowedSans": [name]}});
    let gw = start_tls(
        &[
            stock("/a", "a", only("client.a.apigw")),
            stock("/b", "b", only("client.b.apigw")),
            stock("/open", "open", json!({})),
        ],
        &server_ca,
        &client_ca,
    );
    let base = gw.base.replace("http://127.0.0.1", "https://localhost");
    let get = |client: &reqwest::blocking::Client, prefix: &str| {
        let response = client.get(format!("{base}{prefix}/hello")).send().unwrap();
        let status = response.status().as_u16();
        let id = response.headers()["opc-request-id"]
            .to_str()
            .unwrap()
            .to_owned();
        (status, id, response.text().unwrap())
    };
    let code_of = |id: &str| {
        let found = support::records(&gw.execution_log, id, 1);
        assert_eq!(found.len(), 1, "{found:?}");
        (
            found[0]["data"]["code"].as_str().unwrap().to_owned(),
            found[0]["data"]["reason"].as_str().unwrap_or("").to_owned(),
        )
    };
    let t = now();
    for (what, identity) in [
        (
            "expired",
            leaf(&client_ca, "client.a.apigw", true, t - 2 * DAY, t - DAY),
        ),
        (
            "not yet valid",
            leaf(&client_ca, "client.a.apigw", true, t + DAY, t + 2 * DAY),
        ),
        (
            "from another CA",
            leaf(&stranger_ca, "client.a.apigw", true, t - DAY, t + DAY),
        ),
    ] {
        let client = https_client(&server_ca, Some(&identity));
        let (status, id, body) = get(&client, "/a");
        assert_eq!(status, 401, "{what}: {body}");
        assert_eq!(body, r#"{"message":"Unauthorized","code":401}"#, "{what}");
        let (code, reason) = code_of(&id);
        assert_eq!(
            code, "mutualTls.clientCertificateInvalid",
            "{what}: {reason}"
        );
        // A deployment without mutualTls does not look at it.
        assert_eq!(get(&client, "/open").0, 200, "{what}");
    }

    // One client, one connection: A's certificate opens A, never B, and A again after B.
    let a = https_client(
        &server_ca,
        Some(&leaf(&client_ca, "client.a.apigw", true, t - DAY, t + DAY)),
    );
    assert_eq!(get(&a, "/a").0, 200);
    let (status, id, _) = get(&a, "/b");
    assert_eq!(status, 401);
    assert_eq!(code_of(&id).0, "mutualTls.clientCertificateSanInvalid");
    assert_eq!(get(&a, "/a").0, 200);
    // And B's certificate the other way round; no certificate opens neither.
    let b = https_client(
        &server_ca,
        Some(&leaf(&client_ca, "client.b.apigw", true, t - DAY, t + DAY)),
    );
    assert_eq!(get(&b, "/b").0, 200);
    assert_eq!(get(&b, "/a").0, 401);
    let none = https_client(&server_ca, None);
    assert_eq!(get(&none, "/a").0, 401);
    assert_eq!(get(&none, "/b").0, 401);
    assert_eq!(get(&none, "/open").0, 200);
}

/// A key server on its own runtime (stopped, with every connection it holds, when dropped):
/// `/hang` never answers, `/drip` sends its head and then a byte every 200 ms, `/redirect`
/// answers 302 to `/real`, and `/real` serves the signer's key set, counting its hits.
struct KeyServer {
    _rt: tokio::runtime::Runtime,
    addr: SocketAddr,
    real_hits: Arc<std::sync::atomic::AtomicUsize>,
}

impl KeyServer {
    fn start() -> Self {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let real_hits = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let hits = real_hits.clone();
        let jwks = json!({"keys": [signer().jwk()]}).to_string();
        rt.spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let (hits, jwks) = (hits.clone(), jwks.clone());
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buffer = [0u8; 1024];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut buffer).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buffer[..n]),
                        }
                    }
                    let head = String::from_utf8_lossy(&head).into_owned();
                    let path = head.split(' ').nth(1).unwrap_or("").to_owned();
                    match path.as_str() {
                        "/hang" => tokio::time::sleep(Duration::from_secs(600)).await,
                        "/drip" => {
                            let _ = stream
                                .write_all(
                                    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
                                      content-length: 100000\r\n\r\n{\"keys\":[",
                                )
                                .await;
                            for _ in 0..3000 {
                                tokio::time::sleep(Duration::from_millis(200)).await;
                                if stream.write_all(b" ").await.is_err() {
                                    return;
                                }
                            }
                        }
                        "/redirect" => {
                            let answer = format!(
                                "HTTP/1.1 302 Found\r\nlocation: http://{addr}/real\r\n\
                                 content-length: 0\r\nconnection: close\r\n\r\n"
                            );
                            let _ = stream.write_all(answer.as_bytes()).await;
                        }
                        _ => {
                            hits.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                            let answer = format!(
                                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
                                 content-length: {}\r\nconnection: close\r\n\r\n{jwks}",
                                jwks.len()
                            );
                            let _ = stream.write_all(answer.as_bytes()).await;
                        }
                    }
                });
            }
        });
        Self {
            _rt: rt,
            addr,
            real_hits,
        }
    }
}

fn remote_jwks_deployment(uri: &str) -> Value {
    json!({"displayName": "remote", "pathPrefix": "/v1", "specification": {
        "requestPolicies": {"authentication": {
            "type": "JWT_AUTHENTICATION", "tokenHeader": "Authorization", "tokenAuthScheme": "Bearer",
            "issuers": [ISS], "audiences": [AUD],
            "publicKeys": {"type": "REMOTE_JWKS", "uri": uri, "maxCacheDurationInHours": 1}
        }},
        "routes": [{"path": "/stock", "methods": ["GET"],
                    "backend": {"type": "STOCK_RESPONSE_BACKEND", "status": 200, "body": "stocked"}}]
    }})
}

/// SPEC: a key set fetch is bounded in time (5 s, a server that never answers or drips its
/// body included) and follows no redirect: the request is answered 500 in bounded time with a
/// `badJsonWebKeySet` record, and the redirect's target is never fetched. (The size cap is
/// `serve.rs::a_jwks_endpoint_answering_garbage_or_megabytes_is_named_in_the_log`.)
#[test]
fn key_set_fetches_are_bounded_in_time_and_follow_no_redirect() {
    let keys = KeyServer::start();
    let http = support::client();
    let token = signer().token(claims());
    // The control: the same key set, served directly, lets the token in.
    let gw = start(
        &remote_jwks_deployment(&format!("http://{}/real", keys.addr)),
        &[],
    );
    let answer = http
        .get(format!("{}/v1/stock", gw.base))
        .bearer_auth(&token)
        .send()
        .unwrap();
    assert_eq!(answer.status().as_u16(), 200);
    drop(gw);
    let served = keys.real_hits.load(std::sync::atomic::Ordering::SeqCst);
    assert!(served >= 1);

    for path in ["/hang", "/drip", "/redirect"] {
        let gw = start(
            &remote_jwks_deployment(&format!("http://{}{path}", keys.addr)),
            &[],
        );
        let started = Instant::now();
        let answer = http
            .get(format!("{}/v1/stock", gw.base))
            .bearer_auth(&token)
            .send()
            .unwrap();
        let took = started.elapsed();
        assert_eq!(answer.status().as_u16(), 500, "{path}");
        // At most the fetch made at start (5 s), which the request may wait for.
        assert!(took < Duration::from_secs(8), "{path}: {took:?}");
        let deadline = Instant::now() + Duration::from_secs(12);
        let mut log = String::new();
        while !log.contains("badJsonWebKeySet") && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
            log = std::fs::read_to_string(&gw.execution_log).unwrap_or_default();
        }
        assert!(log.contains("badJsonWebKeySet"), "{path}: {log}");
    }

    // A cooldown shorter than a fetch's time limit: requests waiting for a hanging fetch do
    // not each start another one after it, so none waits for more than about two fetches.
    let gw = start(
        &remote_jwks_deployment(&format!("http://{}/hang", keys.addr)),
        &["--jwks-cooldown", "1"],
    );
    let waits: Vec<_> = (0..4)
        .map(|_| {
            let (url, token) = (format!("{}/v1/stock", gw.base), token.clone());
            std::thread::spawn(move || {
                let started = Instant::now();
                let status = support::client()
                    .get(url)
                    .bearer_auth(token)
                    .send()
                    .map(|r| r.status().as_u16());
                (status.ok(), started.elapsed())
            })
        })
        .collect();
    for wait in waits {
        let (status, took) = wait.join().unwrap();
        assert_eq!(status, Some(500));
        assert!(took < Duration::from_secs(12), "{took:?}");
    }
    assert_eq!(
        keys.real_hits.load(std::sync::atomic::Ordering::SeqCst),
        served,
        "the redirect was followed"
    );
}

/// SPEC: a file that is not what its flag expects (a shadow file, a truncated secrets file, a
/// key or certificate that is not one) is refused naming the file and the problem, never
/// quoting what it holds: an operator's typo must not print a secret to a terminal or a CI log.
#[test]
fn files_that_are_not_what_they_should_be_are_refused_without_their_contents() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_owned()
    };
    let shadow = write("shadow", "root:SECRET-MARK-1:19000:0:99999:7:::\n");
    let secrets = write(
        "secrets.json",
        r#"{"ocid1.vaultsecret.oc1..x": "SECRET-MARK-2", "#,
    );
    let wrong_secrets = write(
        "wrong-secrets.json",
        r#"{"ocid1.vaultsecret.oc1..x": ["SECRET-MARK-3"]}"#,
    );
    let key = write(
        "key.pem",
        "-----BEGIN PRIVATE KEY-----\nSECRETMARK4AAAA\n-----END PRIVATE KEY-----\n",
    );
    let deployment = write(
        "deployment.json",
        &remote_jwks_deployment("http://127.0.0.1:9/jwks").to_string(),
    );
    let server_ca = ca("held server CA");
    let (cert, _) = leaf(&server_ca, "localhost", false, now() - DAY, now() + DAY);
    let cert = write("cert.pem", &cert);
    let listen = format!("127.0.0.1:{}", support::free_port());
    let serve = |more: &[&str]| {
        let mut args = vec!["serve", "--listen", &listen];
        args.extend_from_slice(more);
        args.iter()
            .map(|s| (*s).to_owned())
            .collect::<Vec<String>>()
    };
    let runs: Vec<Vec<String>> = vec![
        serve(&["--deployment", &shadow]),
        serve(&["--deployment", &deployment, "--secrets", &secrets]),
        serve(&["--deployment", &deployment, "--secrets", &wrong_secrets]),
        serve(&[
            "--deployment",
            &deployment,
            "--tls-cert",
            &cert,
            "--tls-key",
            &shadow,
        ]),
        serve(&[
            "--deployment",
            &deployment,
            "--tls-cert",
            &cert,
            "--tls-key",
            &key,
        ]),
        serve(&[
            "--deployment",
            &deployment,
            "--tls-cert",
            &shadow,
            "--tls-key",
            &key,
        ]),
        vec!["validate".into(), shadow.clone()],
        vec![
            "check".into(),
            "--deployment".into(),
            shadow.clone(),
            "--request".into(),
            "GET /v1/stock".into(),
        ],
        vec![
            "check".into(),
            "--deployment".into(),
            deployment.clone(),
            "--request".into(),
            "GET /v1/stock".into(),
            "--token".into(),
            "a.b.c".into(),
            "--jwks".into(),
            shadow.clone(),
        ],
        vec![
            "logs".into(),
            "--file".into(),
            shadow.clone(),
            "--request-id".into(),
            "x".into(),
        ],
    ];
    for args in runs {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_claimgate"))
            .args(&args)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert_eq!(output.status.code(), Some(2), "{args:?}: {text}");
        assert!(!text.is_empty(), "{args:?}: says nothing");
        for mark in ["SECRET-MARK", "SECRETMARK"] {
            assert!(!text.contains(mark), "{args:?} quoted the file: {text}");
        }
    }
}

/// An OpenID provider on its own runtime: discovery, an empty key set, and an introspection
/// endpoint answering `active` with `aud` `api://orders` for `good-opaque-token` only; it keeps
/// every `Authorization` header it was sent.
struct Provider {
    _rt: tokio::runtime::Runtime,
    addr: SocketAddr,
    authorizations: Arc<Mutex<Vec<String>>>,
}

impl Provider {
    fn start() -> Self {
        let rt = support::runtime();
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let authorizations = Arc::new(Mutex::new(Vec::new()));
        let kept = authorizations.clone();
        support::serve_http_on(&rt, listener, move |request| {
            let kept = kept.clone();
            async move {
                if let Some(value) = request.headers().get("authorization") {
                    kept.lock()
                        .unwrap()
                        .push(value.to_str().unwrap_or("?").to_owned());
                }
                let issuer = format!("http://{addr}");
                let body = match request.uri().path() {
                    "/.well-known/openid-configuration" => json!({
                        "issuer": issuer,
                        "jwks_uri": format!("{issuer}/jwks"),
                        "introspection_endpoint": format!("{issuer}/introspect"),
                    }),
                    "/jwks" => json!({"keys": []}),
                    _ => {
                        let form = request
                            .into_body()
                            .collect()
                            .await
                            .map(|b| b.to_bytes())
                            .unwrap_or_default();
                        let form = String::from_utf8_lossy(&form);
                        if form.contains("token=good-opaque-token") {
                            json!({"active": true, "iss": issuer,
                                   "aud": "api://orders", "sub": "alice",
                                   "exp": now() + 600})
                        } else {
                            json!({"active": false})
                        }
                    }
                };
                let mut response = hyper::Response::new(Full::new(Bytes::from(body.to_string())));
                response
                    .headers_mut()
                    .insert("content-type", "application/json".parse().unwrap());
                response
            }
        });
        Self {
            _rt: rt,
            addr,
            authorizations,
        }
    }
}

/// A `TOKEN_AUTHENTICATION` deployment on `prefix` whose introspection answers must carry
/// `audience`, with the client secret `ocid1.vaultsecret.oc1..gw`.
fn introspected(prefix: &str, provider: SocketAddr, audience: &str) -> Value {
    let issuer = format!("http://{provider}");
    json!({"displayName": prefix.trim_start_matches('/'), "pathPrefix": prefix, "specification": {
        "requestPolicies": {"authentication": {
            "type": "TOKEN_AUTHENTICATION", "tokenHeader": "Authorization", "tokenAuthScheme": "Bearer",
            "validationPolicy": {
                "type": "REMOTE_DISCOVERY",
                "clientDetails": {"type": "CUSTOM", "clientId": "gateway",
                                  "clientSecretId": "ocid1.vaultsecret.oc1..gw", "clientSecretVersionNumber": 1},
                "sourceUriDetails": {"type": "DISCOVERY_URI",
                                     "uri": format!("{issuer}/.well-known/openid-configuration")},
                "maxCacheDurationInHours": 1,
                "additionalValidationPolicy": {"issuers": [issuer], "audiences": [audience]}
            }
        }},
        "routes": [{"path": "/hello", "methods": ["GET"],
                    "backend": {"type": "STOCK_RESPONSE_BACKEND", "status": 200, "body": "hello"}}]
    }})
}

/// SPEC: one provider's introspection answer is judged by each deployment's own policy (an
/// answer kept in the cache for one deployment does not open another whose audience differs),
/// and the client secret goes to the provider only: never to the client, the logs, the
/// gateway's own output, nor `check`'s.
#[test]
fn introspection_answers_are_judged_per_deployment_and_the_client_secret_is_never_printed() {
    const SECRET: &str = "gw-secret-MARK-5f2c";
    let provider = Provider::start();
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let secrets = write(
        "secrets.json",
        &json!({"ocid1.vaultsecret.oc1..gw": {"1": SECRET}}).to_string(),
    );
    let orders = write(
        "orders.json",
        &introspected("/orders", provider.addr, "api://orders").to_string(),
    );
    let billing = write(
        "billing.json",
        &introspected("/billing", provider.addr, "api://billing").to_string(),
    );
    let listen = format!("127.0.0.1:{}", support::free_port());
    let (stdout, stderr) = (dir.path().join("stdout"), dir.path().join("stderr"));
    let (execution_log, access_log) = (
        dir.path().join("execution.log"),
        dir.path().join("access.log"),
    );
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_claimgate"))
        .args(["serve", "--listen", &listen])
        .arg("--deployment")
        .arg(&orders)
        .arg("--deployment")
        .arg(&billing)
        .arg("--secrets")
        .arg(&secrets)
        .arg("--execution-log")
        .arg(&execution_log)
        .arg("--access-log")
        .arg(&access_log)
        .stdout(std::fs::File::create(&stdout).unwrap())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .unwrap();
    let _gateway = support::Running(child);
    support::wait_for(&listen);
    let http = support::client();
    let get = |prefix: &str, token: &str| {
        let response = http
            .get(format!("http://{listen}{prefix}/hello"))
            .bearer_auth(token)
            .send()
            .unwrap();
        let status = response.status().as_u16();
        let head = format!("{:?}", response.headers());
        (status, format!("{head}{}", response.text().unwrap()))
    };
    let mut answers = String::new();
    for (prefix, token, want) in [
        ("/orders", "good-opaque-token", 200),
        ("/billing", "good-opaque-token", 401),
        ("/orders", "good-opaque-token", 200),
        ("/billing", "good-opaque-token", 401),
        ("/orders", "revoked-opaque-token", 401),
    ] {
        let (status, answer) = get(prefix, token);
        assert_eq!(status, want, "{prefix} {token}: {answer}");
        answers.push_str(&answer);
    }
    // The secret did go to the provider (client_secret_basic), so its absence elsewhere means
    // something.
    let basic = {
        use base64::Engine as _;
        let pair = format!("gateway:{SECRET}");
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(pair)
        )
    };
    assert!(
        provider.authorizations.lock().unwrap().contains(&basic),
        "{:?}",
        provider.authorizations.lock().unwrap()
    );
    // `check` judges the same token live, with the same secret.
    let check = std::process::Command::new(env!("CARGO_BIN_EXE_claimgate"))
        .arg("check")
        .arg("--deployment")
        .arg(&billing)
        .args([
            "--request",
            "GET /billing/hello",
            "--token",
            "good-opaque-token",
        ])
        .arg("--secrets")
        .arg(&secrets)
        .args(["--output", "json"])
        .output()
        .unwrap();
    let check_text = format!(
        "{}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    assert_eq!(check.status.code(), Some(1), "{check_text}");
    assert!(check_text.contains("api://billing"), "{check_text}");
    std::thread::sleep(Duration::from_millis(500));
    let log = std::fs::read_to_string(&execution_log).unwrap();
    assert!(log.contains("tokenAuthentication."), "{log}");
    let encoded = basic.trim_start_matches("Basic ");
    for (what, text) in [
        ("the answers", answers),
        (
            "the execution log",
            std::fs::read_to_string(&execution_log).unwrap(),
        ),
        (
            "the access log",
            std::fs::read_to_string(&access_log).unwrap(),
        ),
        ("serve's output", std::fs::read_to_string(&stdout).unwrap()),
        ("serve's errors", std::fs::read_to_string(&stderr).unwrap()),
        ("check", check_text),
    ] {
        assert!(
            !text.contains(SECRET) && !text.contains(encoded),
            "{what} shows the secret: {text}"
        );
    }
}

/// SPEC: CORS origins match exactly (scheme, host and port, byte for byte): a look-alike
/// origin (a suffix, a prefix, another scheme or port, a trailing dot or slash, `null`) gets
/// no `Access-Control-*` header on answers or preflights; and every answer whose CORS headers
/// depend on the origin says `Vary: Origin`, the ones without an origin or with a refused one
/// too, so a shared cache never hands one origin's answer to another.
#[test]
fn cors_origins_match_exactly_and_every_answer_varies_by_origin() {
    const APP: &str = "https://app.example";
    let upstream = Recorder::start();
    let mut deployment = deployment(upstream.addr);
    deployment["specification"]["requestPolicies"]["cors"] = json!({
        "allowedOrigins": [APP, "https://other.example:8443"],
        "allowedMethods": ["GET", "POST"],
        "isAllowCredentialsEnabled": true
    });
    let gw = start(&deployment, &[]);
    let http = support::client();
    let call = |method: &str, path: &str, headers: &[(&str, &str)]| {
        let mut request = http.request(method.parse().unwrap(), format!("{}/v1{path}", gw.base));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().unwrap();
        let status = response.status().as_u16();
        (status, response.headers().clone())
    };
    let cors_headers = |headers: &reqwest::header::HeaderMap| -> Vec<String> {
        headers
            .keys()
            .filter(|n| n.as_str().starts_with("access-control-"))
            .map(|n| n.to_string())
            .collect()
    };
    let varies = |headers: &reqwest::header::HeaderMap| {
        headers
            .get_all("vary")
            .iter()
            .any(|v| v.to_str().unwrap().to_ascii_lowercase().contains("origin"))
    };
    for origin in [
        "https://app.example.evil.test",
        "https://evil-app.example",
        "https://xapp.example",
        "https://app.exampl",
        "http://app.example",
        "https://app.example:8443",
        "https://app.example.",
        "https://app.example/",
        "https://other.example",
        "null",
        "https://app.example, https://evil.test",
    ] {
        for path in ["/open", "/private"] {
            let (_, headers) = call("GET", path, &[("origin", origin)]);
            assert_eq!(cors_headers(&headers), Vec::<String>::new(), "{origin}");
            assert!(varies(&headers), "{origin} {path}: {headers:?}");
        }
        let (_, headers) = call(
            "OPTIONS",
            "/open",
            &[("origin", origin), ("access-control-request-method", "GET")],
        );
        assert!(
            headers.get("access-control-allow-origin").is_none()
                && headers.get("access-control-allow-credentials").is_none(),
            "{origin}: {headers:?}"
        );
    }
    // The listed origins, exactly, and no origin at all.
    for origin in [APP, "https://other.example:8443"] {
        let (status, headers) = call("GET", "/open", &[("origin", origin)]);
        assert_eq!(status, 200);
        assert_eq!(headers["access-control-allow-origin"], origin);
        assert_eq!(headers["access-control-allow-credentials"], "true");
        assert!(varies(&headers));
        let (_, headers) = call(
            "OPTIONS",
            "/open",
            &[("origin", origin), ("access-control-request-method", "GET")],
        );
        assert_eq!(headers["access-control-allow-origin"], origin);
    }
    let (status, headers) = call("GET", "/open", &[]);
    assert_eq!(status, 200);
    assert_eq!(cors_headers(&headers), Vec::<String>::new());
    assert!(varies(&headers), "{headers:?}");
}

/// SPEC: the forwarding headers the backend reads name the real peer: `X-Real-IP` and
/// `Forwarded` are the gateway's alone (a client's own are replaced, not kept beside them),
/// and `X-Forwarded-For` ends with the peer, so its right-most entry cannot be forged. (Which
/// entry names the client for rate limiting is `edge.rs::client_ip_rate_limit_*`.)
#[test]
fn forwarding_headers_name_the_real_peer_whatever_the_client_sends() {
    let upstream = Recorder::start();
    let gw = start(&deployment(upstream.addr), &[]);
    let request = "GET /v1/open HTTP/1.1\r\nHost: x\r\n\
                   X-Forwarded-For: 6.6.6.6\r\nX-Forwarded-For: 7.7.7.7\r\n\
                   X-Real-IP: 6.6.6.6\r\nForwarded: for=6.6.6.6\r\nX-Real-Ip: 8.8.8.8\r\n\
                   Connection: close\r\n\r\n";
    let answer = exchange(&address(&gw), request.as_bytes());
    assert_eq!(statuses(&answer), [200], "{answer}");
    let seen = upstream.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    let head = seen[0].split_once(" [").unwrap().1;
    let values = |name: &str| -> Vec<&str> {
        head.trim_end_matches(|c| c != ']')
            .trim_end_matches(']')
            .split(", ")
            .filter_map(|pair| pair.strip_prefix(&format!("{name}: ")[..]))
            .collect()
    };
    assert_eq!(values("x-real-ip"), ["127.0.0.1"], "{head}");
    assert_eq!(values("forwarded"), ["for=127.0.0.1"], "{head}");
    let forwarded_for = head
        .split("x-forwarded-for: ")
        .nth(1)
        .and_then(|rest| rest.split(", x-").next())
        .unwrap_or_default();
    assert!(forwarded_for.ends_with("127.0.0.1"), "{head}");
    assert_eq!(head.matches("x-forwarded-for: ").count(), 1, "{head}");
}
