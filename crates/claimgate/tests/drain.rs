//! Draining on SIGTERM, end to end with the real binary and raw sockets: `/readyz` answers 503
//! at once while `/livez` and requests are still served for `--drain-delay`; answers carry
//! `Connection: close`, idle keep-alive connections are closed and HTTP/2 connections get
//! GOAWAY; connections made during the delay, and those queued in the listen backlog when
//! accepting stops, are all answered (never reset); requests in flight finish within
//! `--shutdown-grace`; then the port refuses connections and the process exits 0.

mod support;

use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};
use support::Gateway;

/// The client's HTTP/2 connection preface (RFC 9113 §3.4).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// An upstream answering "slow" after `delay`, on a runtime that must outlive the test's use.
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

/// `/v1/open` (a stock answer) and `/v1/slow` (the upstream).
fn deployment(upstream: SocketAddr) -> Value {
    json!({"pathPrefix": "/v1", "specification": {"routes": [
        {"path": "/open", "methods": ["GET"], "backend": {"type": "STOCK_RESPONSE_BACKEND", "status": 200, "body": "open"}},
        {"path": "/slow", "methods": ["GET"], "backend": {"type": "HTTP_BACKEND", "url": format!("http://{upstream}/")}}
    ]}})
}

fn address(base: &str) -> String {
    base.trim_start_matches("http://").to_owned()
}

fn signal(gw: &Gateway, name: &str) {
    assert!(Command::new("kill")
        .args([name, &gw.child.id().to_string()])
        .status()
        .unwrap()
        .success());
}

/// Sends `GET path` on `stream`.
fn send_get(stream: &mut TcpStream, path: &str) {
    stream
        .write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .unwrap();
}

/// Reads one HTTP/1.1 answer with a `content-length`: `Err` with what was read when the
/// connection ends (closed or reset) before it is whole.
fn read_answer(stream: &mut TcpStream) -> Result<String, String> {
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut answer = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        let n = match stream.read(&mut buffer) {
            Ok(0) => return Err(format!("closed after {answer:?}")),
            Ok(n) => n,
            Err(e) => return Err(format!("{e} after {answer:?}")),
        };
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
                return Ok(text);
            }
        }
    }
}

fn get_on(stream: &mut TcpStream, path: &str) -> Result<String, String> {
    send_get(stream, path);
    read_answer(stream)
}

fn closes_connection(answer: &str) -> bool {
    answer
        .split("\r\n\r\n")
        .next()
        .unwrap_or("")
        .lines()
        .any(|l| l.eq_ignore_ascii_case("connection: close"))
}

/// Whether the server closes `stream` (EOF or reset) within `limit`, reading what it sends.
fn closed_within(stream: &mut TcpStream, limit: Duration) -> bool {
    stream
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    read_frames(stream, &mut Vec::new(), limit, &|_| false)
}

/// Status and body of `GET url` on a new connection.
fn admin_get(url: &str) -> (u16, String) {
    let response = support::client().get(url).send().unwrap();
    (response.status().as_u16(), response.text().unwrap())
}

/// Waits up to `limit` for the process to exit: its code and when.
fn wait_exit(gw: &mut Gateway, since: Instant, limit: Duration) -> Option<(Option<i32>, Duration)> {
    while since.elapsed() < limit {
        if let Some(status) = gw.child.try_wait().unwrap() {
            return Some((status.code(), since.elapsed()));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

fn execution_codes(gw: &Gateway) -> Vec<String> {
    std::fs::read_to_string(&gw.execution_log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|r| r["data"]["code"].as_str().map(str::to_owned))
        .collect()
}

#[test]
fn sigterm_turns_readyz_503_at_once_while_livez_and_requests_are_served_until_the_delay_ends() {
    let (_rt, upstream) = start_slow_upstream(Duration::from_millis(100));
    let mut gw = support::start_gateway(
        &[deployment(upstream)],
        true,
        &["--drain-delay", "3", "--shutdown-grace", "10"],
    );
    let admin = gw.admin.clone().unwrap();
    let address = address(&gw.base);
    assert_eq!(admin_get(&format!("{admin}/readyz")).0, 200);
    // Before the signal, answers keep the connection open.
    let before = get_on(&mut TcpStream::connect(&address).unwrap(), "/v1/open").unwrap();
    assert!(!closes_connection(&before), "{before}");

    let signalled = Instant::now();
    signal(&gw, "-TERM");
    // Fail case: without draining, /readyz would stay 200 until the process is gone.
    let (status, body) = loop {
        let (status, body) = admin_get(&format!("{admin}/readyz"));
        if status == 503 || signalled.elapsed() > Duration::from_secs(1) {
            break (status, body);
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("draining"), "{body}");
    assert!(signalled.elapsed() < Duration::from_secs(1));
    assert_eq!(admin_get(&format!("{admin}/livez")).0, 200);
    // New connections are still accepted and served during the delay, and told to close.
    for _ in 0..5 {
        let answer = get_on(&mut TcpStream::connect(&address).unwrap(), "/v1/slow").unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.ends_with("slow"), "{answer}");
        assert!(closes_connection(&answer), "{answer}");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        signalled.elapsed() < Duration::from_millis(2800),
        "the checks above must run within the delay"
    );
    assert_eq!(admin_get(&format!("{admin}/readyz")).0, 503);

    // After the delay: the port refuses connections, and the process exits 0 (nothing is in
    // flight: at once, far within the grace).
    let exited = wait_exit(&mut gw, signalled, Duration::from_secs(8));
    let (code, at) = exited.expect("claimgate did not exit after the delay");
    assert_eq!(code, Some(0));
    assert!(
        at >= Duration::from_secs(3) && at < Duration::from_secs(6),
        "exited {at:?} after SIGTERM (delay 3 s)"
    );
    assert_eq!(
        TcpStream::connect(&address).unwrap_err().kind(),
        std::io::ErrorKind::ConnectionRefused
    );
    let codes = execution_codes(&gw);
    assert_eq!(
        codes.iter().filter(|c| *c == "server.draining").count(),
        1,
        "{codes:?}"
    );
}

#[test]
fn without_a_drain_delay_the_port_is_closed_at_once_after_sigterm() {
    let (_rt, upstream) = start_slow_upstream(Duration::from_millis(100));
    let mut gw = support::start_gateway(&[deployment(upstream)], false, &[]);
    let address = address(&gw.base);
    let signalled = Instant::now();
    signal(&gw, "-TERM");
    let (code, at) = wait_exit(&mut gw, signalled, Duration::from_secs(5))
        .expect("claimgate did not exit after SIGTERM");
    assert_eq!(code, Some(0));
    assert!(at < Duration::from_secs(2), "exited {at:?} after SIGTERM");
    assert!(TcpStream::connect(&address).is_err());
}

#[test]
fn a_second_signal_cuts_the_drain_delay_short() {
    let (_rt, upstream) = start_slow_upstream(Duration::from_millis(100));
    let mut gw = support::start_gateway(&[deployment(upstream)], false, &["--drain-delay", "30"]);
    let address = address(&gw.base);
    let signalled = Instant::now();
    signal(&gw, "-TERM");
    std::thread::sleep(Duration::from_millis(500));
    // Still accepting: the delay runs.
    let answer = get_on(&mut TcpStream::connect(&address).unwrap(), "/v1/open").unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    signal(&gw, "-INT");
    let (code, at) = wait_exit(&mut gw, signalled, Duration::from_secs(10))
        .expect("claimgate did not exit after the second signal");
    assert_eq!(code, Some(0));
    assert!(at < Duration::from_secs(3), "exited {at:?} after SIGTERM");
}

#[test]
fn keep_alive_connections_get_connection_close_and_idle_ones_are_closed() {
    let (_rt, upstream) = start_slow_upstream(Duration::from_millis(1500));
    let gw = support::start_gateway(
        &[deployment(upstream)],
        false,
        &["--drain-delay", "5", "--read-timeout", "30"],
    );
    let address = address(&gw.base);
    // Idle: one answer, then nothing in flight when the signal comes.
    let mut idle = TcpStream::connect(&address).unwrap();
    let first = get_on(&mut idle, "/v1/open").unwrap();
    assert!(!closes_connection(&first), "{first}");
    // Busy: a request in flight at the signal.
    let mut busy = TcpStream::connect(&address).unwrap();
    assert!(get_on(&mut busy, "/v1/open").is_ok());
    send_get(&mut busy, "/v1/slow");
    std::thread::sleep(Duration::from_millis(300));
    signal(&gw, "-TERM");
    // The idle one is closed at once, long before the delay (and the read timeout) ends;
    // without draining it would stay open.
    assert!(
        closed_within(&mut idle, Duration::from_secs(2)),
        "the idle keep-alive connection stayed open"
    );
    // The busy one gets its answer, with Connection: close, then the close.
    let answer = read_answer(&mut busy).unwrap();
    assert!(answer.ends_with("slow"), "{answer}");
    assert!(closes_connection(&answer), "{answer}");
    assert!(closed_within(&mut busy, Duration::from_secs(2)));
    // A connection opened during the delay: answered, told to close, closed.
    let mut fresh = TcpStream::connect(&address).unwrap();
    let answer = get_on(&mut fresh, "/v1/open").unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(closes_connection(&answer), "{answer}");
    assert!(closed_within(&mut fresh, Duration::from_secs(2)));
}

/// An HTTP/2 `HEADERS` frame (END_STREAM, END_HEADERS) for `GET http://x/v1/open` on stream
/// `id`, with HPACK literals that need no Huffman coding.
fn h2_get_frame(id: u8) -> Vec<u8> {
    let mut block = vec![0x82, 0x86]; // :method GET, :scheme http (static table)
    for (index, value) in [(4u8, "/v1/open"), (1u8, "x")] {
        // Literal header field without indexing, indexed name (:path, :authority).
        block.push(index);
        block.push(value.len() as u8);
        block.extend_from_slice(value.as_bytes());
    }
    let mut frame = vec![0, 0, block.len() as u8, 0x1, 0x5, 0, 0, 0, id];
    frame.extend_from_slice(&block);
    frame
}

/// The frame types (and stream ids) in `received`, as far as whole frames go.
fn frames(received: &[u8]) -> Vec<(u8, u32)> {
    let mut found = Vec::new();
    let mut at = 0;
    while received.len() >= at + 9 {
        let length = usize::from(received[at]) << 16
            | usize::from(received[at + 1]) << 8
            | usize::from(received[at + 2]);
        let id = u32::from_be_bytes(received[at + 5..at + 9].try_into().unwrap()) & 0x7fff_ffff;
        found.push((received[at + 3], id));
        at += 9 + length;
    }
    found
}

#[test]
fn an_h2_connection_gets_goaway_when_draining_starts() {
    let (_rt, upstream) = start_slow_upstream(Duration::from_millis(100));
    let gw = support::start_gateway(
        &[deployment(upstream)],
        false,
        &["--drain-delay", "5", "--read-timeout", "30"],
    );
    let mut h2 = TcpStream::connect(address(&gw.base)).unwrap();
    h2.write_all(H2_PREFACE).unwrap();
    h2.write_all(&[0, 0, 0, 0x4, 0, 0, 0, 0, 0]).unwrap();
    h2.write_all(&h2_get_frame(1)).unwrap();
    h2.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut received = Vec::new();
    let answered = |r: &[u8]| frames(r).contains(&(0x1, 1));
    read_frames(&mut h2, &mut received, Duration::from_secs(5), &answered);
    assert!(answered(&received), "the h2 request was answered");
    let goaway = |r: &[u8]| frames(r).iter().any(|(kind, _)| *kind == 0x7);
    assert!(!goaway(&received), "no GOAWAY before the signal");
    signal(&gw, "-TERM");
    // GOAWAY (type 7) arrives at once, long before the delay ends.
    let seen = received.len();
    read_frames(&mut h2, &mut received, Duration::from_secs(2), &|r| {
        goaway(&r[seen..])
    });
    assert!(
        goaway(&received[seen..]),
        "no GOAWAY: {:?}",
        frames(&received)
    );
    // hyper's graceful shutdown pings with it and closes the idle connection once the PING
    // is acknowledged, as a real client does.
    let at = received.len();
    read_frames(&mut h2, &mut received, Duration::from_secs(1), &|r| {
        ping_payload(&r[seen..]).is_some()
    });
    let payload = ping_payload(&received[seen..]).expect("a PING with the GOAWAY");
    let mut ack = vec![0, 0, 8, 0x6, 0x1, 0, 0, 0, 0];
    ack.extend_from_slice(&payload);
    let _ = h2.write_all(&ack);
    let closed = read_frames(&mut h2, &mut received, Duration::from_secs(3), &|_| false);
    assert!(
        closed,
        "the idle h2 connection was not closed after GOAWAY: {:?}",
        frames(&received[at..])
    );
}

/// Reads from `stream` into `received` until `until` holds or `limit` passes; true when the
/// server closed the connection (EOF or reset). Its reads must time out (100 ms).
fn read_frames(
    stream: &mut TcpStream,
    received: &mut Vec<u8>,
    limit: Duration,
    until: &dyn Fn(&[u8]) -> bool,
) -> bool {
    let started = Instant::now();
    let mut buffer = [0u8; 4096];
    while started.elapsed() < limit && !until(received) {
        match stream.read(&mut buffer) {
            Ok(0) => return true,
            Ok(n) => received.extend_from_slice(&buffer[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return true,
        }
    }
    false
}

/// The payload of the first PING (type 6) that is not an acknowledgement in `received`.
fn ping_payload(received: &[u8]) -> Option<[u8; 8]> {
    let mut at = 0;
    while received.len() >= at + 9 {
        let length = usize::from(received[at]) << 16
            | usize::from(received[at + 1]) << 8
            | usize::from(received[at + 2]);
        if received[at + 3] == 0x6 && received[at + 4] & 0x1 == 0 && received.len() >= at + 17 {
            return received[at + 9..at + 17].try_into().ok();
        }
        at += 9 + length;
    }
    None
}

#[test]
fn requests_in_flight_finish_within_the_grace_and_the_process_exits_0() {
    let (_rt, upstream) = start_slow_upstream(Duration::from_secs(2));
    let mut gw = support::start_gateway(
        &[deployment(upstream)],
        false,
        &["--drain-delay", "1", "--shutdown-grace", "10"],
    );
    let address = address(&gw.base);
    let mut streams: Vec<TcpStream> = (0..5)
        .map(|_| {
            let mut stream = TcpStream::connect(&address).unwrap();
            send_get(&mut stream, "/v1/slow");
            stream
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let signalled = Instant::now();
    signal(&gw, "-TERM");
    for stream in &mut streams {
        let answer = read_answer(stream).unwrap();
        assert!(answer.ends_with("slow"), "{answer}");
        assert!(closes_connection(&answer), "{answer}");
    }
    let (code, at) = wait_exit(&mut gw, signalled, Duration::from_secs(10))
        .expect("claimgate did not exit within the grace");
    assert_eq!(code, Some(0));
    assert!(at < Duration::from_secs(4), "exited {at:?} after SIGTERM");
}

#[test]
fn a_request_longer_than_the_grace_is_cut_and_the_process_still_exits_0() {
    let (_rt, upstream) = start_slow_upstream(Duration::from_secs(30));
    let mut gw = support::start_gateway(&[deployment(upstream)], false, &["--shutdown-grace", "1"]);
    let mut stream = TcpStream::connect(address(&gw.base)).unwrap();
    send_get(&mut stream, "/v1/slow");
    std::thread::sleep(Duration::from_millis(300));
    let signalled = Instant::now();
    signal(&gw, "-TERM");
    let (code, at) = wait_exit(&mut gw, signalled, Duration::from_secs(8))
        .expect("claimgate did not exit at the end of the grace");
    assert_eq!(code, Some(0));
    assert!(
        at >= Duration::from_millis(900) && at < Duration::from_secs(4),
        "exited {at:?} after SIGTERM (grace 1 s)"
    );
    assert!(read_answer(&mut stream).is_err(), "the request was cut");
}

#[test]
fn fifty_connections_made_during_the_delay_are_all_answered() {
    let (_rt, upstream) = start_slow_upstream(Duration::from_millis(200));
    let mut gw = support::start_gateway(
        &[deployment(upstream)],
        false,
        &["--drain-delay", "3", "--shutdown-grace", "10"],
    );
    let address = address(&gw.base);
    let signalled = Instant::now();
    signal(&gw, "-TERM");
    std::thread::sleep(Duration::from_millis(200));
    let clients: Vec<_> = (0..50)
        .map(|i| {
            let address = address.clone();
            std::thread::spawn(move || {
                let mut stream = TcpStream::connect(&address).map_err(|e| e.to_string())?;
                let path = if i % 2 == 0 { "/v1/open" } else { "/v1/slow" };
                get_on(&mut stream, path)
            })
        })
        .collect();
    let mut failures = Vec::new();
    for client in clients {
        match client.join().unwrap() {
            Ok(answer) if answer.starts_with("HTTP/1.1 200") && closes_connection(&answer) => {}
            other => failures.push(other),
        }
    }
    assert!(
        failures.is_empty(),
        "{} failed: {failures:?}",
        failures.len()
    );
    assert!(
        signalled.elapsed() < Duration::from_secs(3),
        "the clients must run within the delay"
    );
    let (code, _) =
        wait_exit(&mut gw, signalled, Duration::from_secs(10)).expect("claimgate did not exit");
    assert_eq!(code, Some(0));
}

/// The connections waiting in the listen backlog when accepting stops are accepted and
/// answered, not reset: with one serving thread and one connection slot, a slow request
/// holds the slot, so the others stay queued in the kernel until after the delay.
#[test]
fn connections_queued_in_the_backlog_when_accepting_stops_are_answered_not_reset() {
    let (_rt, upstream) = start_slow_upstream(Duration::from_secs(2));
    let mut gw = support::start_gateway(
        &[deployment(upstream)],
        false,
        &[
            "--threads",
            "1",
            "--max-connections",
            "1",
            "--drain-delay",
            "1",
            "--shutdown-grace",
            "15",
        ],
    );
    let address = address(&gw.base);
    let mut holder = TcpStream::connect(&address).unwrap();
    send_get(&mut holder, "/v1/slow");
    std::thread::sleep(Duration::from_millis(300));
    let mut queued: Vec<TcpStream> = (0..10)
        .map(|_| {
            let mut stream = TcpStream::connect(&address).unwrap();
            send_get(&mut stream, "/v1/open");
            stream
        })
        .collect();
    let signalled = Instant::now();
    signal(&gw, "-TERM");
    let answer = read_answer(&mut holder).unwrap();
    assert!(answer.ends_with("slow"), "{answer}");
    // Accepting stopped (delay 1 s) before the slot was free (2 s): every queued connection
    // was still in the backlog then. Fail case: closing the listener resets them all.
    assert!(signalled.elapsed() > Duration::from_millis(1200));
    for (i, stream) in queued.iter_mut().enumerate() {
        let answer = read_answer(stream).unwrap_or_else(|e| panic!("queued {i}: {e}"));
        assert!(answer.ends_with("open"), "{answer}");
    }
    let (code, _) =
        wait_exit(&mut gw, signalled, Duration::from_secs(10)).expect("claimgate did not exit");
    assert_eq!(code, Some(0));
    assert!(TcpStream::connect(&address).is_err());
}
