//! The multi-replica test infrastructure (support/cluster.rs) against the real components: a
//! real redis-server, a real haproxy in front of real `claimgate serve` replicas, and the load
//! generator's view of answers and dropped connections.

#![forbid(unsafe_code)]

mod support;

use serde_json::{json, Value};
use std::time::{Duration, Instant};
use support::cluster::{load, Haproxy, LoadPlan, Redis, Replicas, Reply, TransportError};

/// A deployment with nothing but a stock answer: the replicas need no upstream.
fn stock() -> Value {
    json!({
        "pathPrefix": "/v1",
        "specification": {"routes": [
            {"path": "/stock", "methods": ["GET"],
             "backend": {"type": "STOCK_RESPONSE_BACKEND", "status": 200, "body": "stocked"}}
        ]}
    })
}

#[test]
fn redis_answers_pauses_resumes_restarts_empty_and_dies() {
    let Some(mut redis) = Redis::start("cluster_smoke::redis_lifecycle", Some("s3cret")) else {
        return;
    };
    assert_ne!(redis.port(), 6379);
    assert_eq!(
        redis.url(),
        format!("redis://:s3cret@127.0.0.1:{}", redis.port())
    );
    assert_eq!(redis.cmd(&["PING"]), "PONG");
    assert_eq!(redis.cmd(&["SET", "claimgate:a", "1"]), "OK");
    assert_eq!(redis.cmd(&["SET", "other", "2"]), "OK");
    assert_eq!(redis.cmd(&["GET", "claimgate:a"]), "1");
    assert_eq!(redis.keys("claimgate:*"), ["claimgate:a"]);

    // Paused: a command gets no answer within its timeout; resumed: it answers again.
    redis.pause();
    let asked = Instant::now();
    let paused = redis.try_cmd(&["PING"], Duration::from_millis(300));
    assert!(paused.is_err(), "a paused redis answered {paused:?}");
    assert!(asked.elapsed() < Duration::from_secs(2));
    redis.resume();
    assert_eq!(redis.cmd(&["PING"]), "PONG");

    // Restarted on the same port without persistence: empty.
    let port = redis.port();
    redis.restart();
    assert_eq!(redis.port(), port);
    assert_eq!(redis.cmd(&["GET", "claimgate:a"]), "");
    assert_eq!(
        redis.try_cmd(&["GET", "claimgate:a"], Duration::from_secs(1)),
        Ok(Reply::Bulk(None))
    );
    assert!(redis.keys("*").is_empty());

    // Killed: refused.
    redis.kill();
    assert!(redis
        .try_cmd(&["PING"], Duration::from_millis(500))
        .is_err());
}

#[test]
fn redis_refuses_a_client_without_the_password() {
    let Some(redis) = Redis::start("cluster_smoke::redis_auth", Some("s3cret")) else {
        return;
    };
    let without = support::cluster::resp(redis.addr(), None, &["PING"], Duration::from_secs(1));
    assert!(
        matches!(&without, Ok(Reply::Error(e)) if e.starts_with("NOAUTH")),
        "{without:?}"
    );
    let wrong = support::cluster::resp(
        redis.addr(),
        Some("wrong"),
        &["PING"],
        Duration::from_secs(1),
    );
    assert!(
        matches!(&wrong, Ok(Reply::Error(e)) if e.starts_with("WRONGPASS")),
        "{wrong:?}"
    );
    assert_eq!(redis.cmd(&["PING"]), "PONG");
}

#[test]
fn haproxy_spreads_requests_over_three_replicas() {
    let replicas = Replicas::start(3, &[stock()], &[]);
    let Some(haproxy) = Haproxy::start(
        "cluster_smoke::haproxy_spreads",
        &replicas.addrs(),
        &replicas.admin_addrs(),
        true,
    ) else {
        return;
    };
    assert_eq!(haproxy.servers_up(), [0, 1, 2], "{:?}", haproxy.statuses());
    // The installed haproxy takes the configuration as written, without a warning.
    let said = haproxy.log();
    assert!(
        !said.contains("WARNING") && !said.contains("ALERT"),
        "{said}\n{}",
        haproxy.cfg()
    );
    let report = load(haproxy.addr(), &LoadPlan::new("/v1/stock", 3, 30));
    report.assert_clean(Duration::from_secs(2));
    assert_eq!(report.count(200), 30, "{}", report.summary());
    let served: Vec<u64> = (0..3).map(|i| replicas.requests_served(i)).collect();
    assert!(
        served.iter().all(|&n| n >= 5) && served.iter().sum::<u64>() == 30,
        "requests per replica: {served:?}"
    );
    // Each replica's access log has its share too.
    let deadline = Instant::now() + Duration::from_secs(5);
    while (0..3).any(|i| replicas.access_records(i).is_empty()) {
        assert!(Instant::now() < deadline, "a replica logged no access");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn haproxy_takes_a_killed_replica_out_and_requests_still_succeed() {
    let mut replicas = Replicas::start(3, &[stock()], &[]);
    let Some(haproxy) = Haproxy::start(
        "cluster_smoke::haproxy_failover",
        &replicas.addrs(),
        &replicas.admin_addrs(),
        false,
    ) else {
        return;
    };
    replicas.kill(1);
    // Before the health check sees it: a refused connection is retried on another server.
    let report = load(haproxy.addr(), &LoadPlan::new("/v1/stock", 2, 20));
    report.assert_clean(Duration::from_secs(3));
    assert!(
        haproxy.wait_until_up(&[0, 2], Duration::from_secs(5)),
        "{:?}",
        haproxy.statuses()
    );
    assert!(haproxy.log().contains("r1 is DOWN"), "{}", haproxy.log());
    let before: Vec<u64> = [0, 2]
        .iter()
        .map(|&i| replicas.requests_served(i))
        .collect();
    let report = load(haproxy.addr(), &LoadPlan::new("/v1/stock", 2, 20));
    report.assert_clean(Duration::from_secs(2));
    assert_eq!(report.count(200), 20);
    let after: Vec<u64> = [0, 2]
        .iter()
        .map(|&i| replicas.requests_served(i))
        .collect();
    assert_eq!(after[0] + after[1] - before[0] - before[1], 20);
}

#[test]
fn load_paces_at_its_rate_and_reports_answers() {
    let replicas = Replicas::start(1, &[stock()], &[]);
    let plan = LoadPlan::new("/v1/stock", 2, 20)
        .rate(40.0)
        .header("opc-request-id", "paced");
    let report = load(replicas.addrs()[0], &plan);
    report.assert_clean(Duration::from_secs(1));
    assert_eq!((report.sent(), report.count(200)), (20, 20));
    // 20 requests at 40/s: the last one is due after 19/40 s.
    assert!(
        report.elapsed >= Duration::from_millis(450),
        "{:?}",
        report.elapsed
    );
    // A latency for each answer, each within the run (the percentiles pick from these).
    assert_eq!(report.latencies.len(), 20, "{}", report.summary());
    assert!(
        report.percentile(50.0) > Duration::ZERO && report.percentile(100.0) <= report.elapsed,
        "{}",
        report.summary()
    );
    // Two keep-alive connections carried all 20.
    assert_eq!(report.connects, 2);
    assert_eq!(replicas.requests_served(0), 20);
    // The request id the load sent reaches the replica's access log.
    let logged = support::records(&replicas.gateway(0).access_log, "paced", 20);
    assert_eq!(logged.len(), 20, "{logged:?}");
}

#[test]
fn load_reports_refused_connections_as_transport_errors() {
    // A port nothing listens on.
    let closed: std::net::SocketAddr = format!("127.0.0.1:{}", support::free_port())
        .parse()
        .unwrap();
    let report = load(closed, &LoadPlan::new("/v1/stock", 2, 10));
    assert_eq!(report.answered(), 0);
    assert_eq!(
        report.errors_of(TransportError::Connect),
        10,
        "{}",
        report.summary()
    );
    let clean = std::panic::catch_unwind(|| report.assert_clean(Duration::from_secs(1)));
    assert!(clean.is_err(), "assert_clean passed a load with no answer");
}

#[test]
fn load_reports_a_connection_closed_without_answer_as_eof() {
    // Accepts, reads the request, and closes without a word.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { break };
            let mut buffer = [0; 1024];
            let _ = std::io::Read::read(&mut stream, &mut buffer);
            let _ = stream.shutdown(std::net::Shutdown::Both);
        }
    });
    let report = load(addr, &LoadPlan::new("/v1/stock", 1, 5));
    assert_eq!(report.answered(), 0);
    assert_eq!(
        report.errors_of(TransportError::Eof) + report.errors_of(TransportError::Reset),
        5,
        "{}",
        report.summary()
    );
}

#[test]
fn haproxy_without_checks_forwards_the_client_address() {
    // A plain upstream that answers with the X-Forwarded-For it got.
    let rt = support::runtime();
    let upstream = support::serve_http(&rt, |request| async move {
        let forwarded = request
            .headers()
            .get("x-forwarded-for")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        hyper::Response::new(http_body_util::Full::new(bytes::Bytes::from(forwarded)))
    });
    let Some(haproxy) = Haproxy::start("cluster_smoke::haproxy_no_checks", &[upstream], &[], true)
    else {
        return;
    };
    assert_eq!(haproxy.statuses(), ["no check"]);
    assert_eq!(haproxy.servers_up(), [0]);
    let answer = support::client()
        .get(format!("{}/anything", haproxy.base()))
        .send()
        .unwrap();
    assert_eq!(answer.status().as_u16(), 200);
    assert_eq!(answer.text().unwrap(), "127.0.0.1");
}

#[test]
fn replicas_take_their_own_flags_and_stop_on_sigterm() {
    let mut replicas = Replicas::start_each(2, &[stock()], |i| {
        vec!["--threads".into(), (i + 1).to_string()]
    });
    // Each replica's standard error is readable (it names its admin listener, soon after the
    // listener is bound).
    let deadline = Instant::now() + Duration::from_secs(5);
    while !replicas.stderr(1).contains("admin listener on") {
        assert!(Instant::now() < deadline, "{}", replicas.stderr(1));
        std::thread::sleep(Duration::from_millis(20));
    }
    replicas.term(0);
    let exit = replicas.wait_exit(0, Duration::from_secs(10));
    assert_eq!(exit.and_then(|s| s.code()), Some(0), "{exit:?}");
    // The other one still serves.
    let report = load(replicas.addrs()[1], &LoadPlan::new("/v1/stock", 1, 3));
    report.assert_clean(Duration::from_secs(1));
    replicas.kill(1);
    let report = load(replicas.addrs()[1], &LoadPlan::new("/v1/stock", 1, 1));
    assert_eq!(
        report.errors_of(TransportError::Connect),
        1,
        "{}",
        report.summary()
    );
}
