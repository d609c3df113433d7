//! `serve --redis` on one replica, with a real `redis-server` on its own loopback port (started
//! by the test; scripts/test.sh installs it): configuration errors, a Redis that is down at
//! start or answers errors, and what is written in it. The multi-replica behaviour, behind
//! HAProxy, is in replicas.rs.

use serde_json::{json, Value};
use std::process::{Command, Stdio};
use std::time::Duration;

mod support;

use support::cluster::{metric_sum, Redis};
use support::*;

/// A deployment of `rate` requests per second for everyone, answered by a stock response.
fn limited(rate: u64) -> Value {
    json!({
        "displayName": "limited",
        "pathPrefix": "/v1",
        "specification": {
            "requestPolicies": {"rateLimiting": {"rateInRequestsPerSecond": rate, "rateKey": "TOTAL"}},
            "routes": [{"path": "/hello", "methods": ["GET"],
                        "backend": {"type": "STOCK_RESPONSE_BACKEND", "status": 200, "body": "hi"}}]
        }
    })
}

fn metrics(gateway: &Gateway) -> String {
    client()
        .get(format!("{}/metrics", gateway.admin.as_ref().unwrap()))
        .send()
        .unwrap()
        .text()
        .unwrap()
}

fn statuses(gateway: &Gateway, n: usize) -> Vec<u16> {
    (0..n)
        .map(|_| {
            client()
                .get(format!("{}/v1/hello", gateway.base))
                .send()
                .unwrap()
                .status()
                .as_u16()
        })
        .collect()
}

/// `serve` with `args` and the environment `env`, expected to stop at once: (exit, stderr).
fn serve_fails(args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("d.json");
    std::fs::write(&file, limited(5).to_string()).unwrap();
    // Bounded: a serve that wrongly starts is killed after 10 s (and the test fails).
    let output = Command::new("timeout")
        .args(["10", env!("CARGO_BIN_EXE_claimgate")])
        .args(["serve", "--deployment", file.to_str().unwrap()])
        .args(["--listen", &format!("127.0.0.1:{}", free_port())])
        .args(args)
        .env_remove("CLAIMGATE_REDIS_URL")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn a_bad_redis_url_is_a_configuration_error_that_never_echoes_the_password() {
    for (url, why) in [
        (
            "http://:hunter2@127.0.0.1:6390",
            "scheme is not redis or rediss",
        ),
        ("127.0.0.1:6390", "not a URL"),
        ("redis://:hunter2@", "host"),
        ("redis://:hunter2@[::1:6390", "not a valid URL"),
    ] {
        let (code, stderr) = serve_fails(&["--redis", url], &[]);
        assert_eq!(code, 2, "{url}: {stderr}");
        assert!(
            stderr.contains("--redis") && stderr.contains(why),
            "{url}: {stderr}"
        );
        assert!(!stderr.contains("hunter2"), "{url}: {stderr}");
    }
    // The environment variable is named when it is the one at fault.
    let (code, stderr) = serve_fails(&[], &[("CLAIMGATE_REDIS_URL", "memcached://:hunter2@x:1")]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("CLAIMGATE_REDIS_URL"), "{stderr}");
    assert!(!stderr.contains("hunter2"), "{stderr}");
}

#[test]
fn a_bad_shared_state_key_is_a_configuration_error() {
    let dir = tempfile::tempdir().unwrap();
    let short = dir.path().join("short.key");
    std::fs::write(&short, "AAAA\n").unwrap();
    let (code, stderr) = serve_fails(
        &[
            "--redis",
            "redis://127.0.0.1:1",
            "--shared-state-key",
            short.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("holds 3 bytes, not 32"), "{stderr}");
    let (code, stderr) = serve_fails(&["--shared-state-key", short.to_str().unwrap()], &[]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("needs --redis"), "{stderr}");
}

#[test]
fn a_password_on_the_command_line_draws_a_warning_and_the_environment_none() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("d.json");
    std::fs::write(&file, limited(5).to_string()).unwrap();
    let run = |args: &[&str], env: Option<&str>| -> String {
        let listen = format!("127.0.0.1:{}", free_port());
        let mut command = Command::new(env!("CARGO_BIN_EXE_claimgate"));
        command
            .args([
                "serve",
                "--deployment",
                file.to_str().unwrap(),
                "--listen",
                &listen,
            ])
            .args(["--execution-log", "/dev/null", "--access-log", "/dev/null"])
            .args(args)
            .env_remove("CLAIMGATE_REDIS_URL")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some(url) = env {
            command.env("CLAIMGATE_REDIS_URL", url);
        }
        let mut child = command.spawn().unwrap();
        wait_for(&listen);
        let _ = child.kill();
        let output = child.wait_with_output().unwrap();
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    // Nothing listens on port 1: the replica starts and serves anyway.
    let flagged = run(&["--redis", "redis://:hunter2@127.0.0.1:1"], None);
    assert!(
        flagged.contains("warning: --redis carries a password"),
        "{flagged}"
    );
    assert!(!flagged.contains("hunter2"), "{flagged}");
    let from_env = run(&[], Some("redis://:hunter2@127.0.0.1:1"));
    assert!(!from_env.contains("warning"), "{from_env}");
    assert!(!from_env.contains("hunter2"), "{from_env}");
}

#[test]
fn a_replica_serves_while_redis_is_down_and_uses_it_once_it_comes() {
    let Some(mut redis) = Redis::start("a_replica_serves_while_redis_is_down", None) else {
        return;
    };
    // Down before the replica starts; the same port comes back later.
    redis.kill();
    let url = redis.url();
    let gateway = start_gateway(
        &[limited(1000)],
        true,
        &["--redis", &url, "--redis-timeout-ms", "1000"],
    );
    assert_eq!(statuses(&gateway, 3), [200, 200, 200]);
    let unavailable = wait_for_code(&gateway, "sharedState.unavailable", Duration::from_secs(5));
    assert_eq!(unavailable.len(), 1, "{unavailable:?}");
    assert_eq!(unavailable[0]["data"]["level"], "ERROR");
    assert_eq!(unavailable[0]["data"]["redis"], url);
    assert!(metrics(&gateway).contains("claimgate_shared_state_up 0"));

    redis.restart();
    let connected = wait_for_code(&gateway, "sharedState.connected", Duration::from_secs(5));
    assert_eq!(connected.len(), 1, "{connected:?}");
    assert_eq!(statuses(&gateway, 1), [200]);
    // Judged in Redis (at 1000/s the bucket's key lives a millisecond: count the script runs).
    let stats = command_stats(&redis);
    assert!(
        stats
            .iter()
            .any(|(name, calls, failed)| name.starts_with("eval") && calls > failed),
        "{stats:?}"
    );
    assert!(metrics(&gateway).contains("claimgate_shared_state_up 1"));
}

#[test]
fn a_key_of_the_wrong_type_is_an_outage_for_that_key_only() {
    let Some(redis) = Redis::start("a_key_of_the_wrong_type", Some("s3cret")) else {
        return;
    };
    let gateway = start_gateway(
        &[limited(2)],
        true,
        &[
            "--redis",
            &redis.url(),
            "--redis-key-prefix",
            "team-a:",
            // Generous, so that a loaded test machine cannot turn this into a timeout.
            "--redis-timeout-ms",
            "1000",
        ],
    );
    wait_for_code(&gateway, "sharedState.connected", Duration::from_secs(5));
    // Someone else's list where the bucket would be.
    redis.cmd(&["RPUSH", "team-a:rl:/v1:TOTAL", "not-a-bucket"]);
    let answers = statuses(&gateway, 4);
    // Judged by the replica's own bucket: 2 then refused; never a 5xx.
    assert_eq!(answers, [200, 200, 429, 429]);
    let unavailable = wait_for_code(&gateway, "sharedState.unavailable", Duration::from_secs(5));
    let cause = unavailable[0]["data"]["cause"].as_str().unwrap();
    assert!(
        cause.contains("WRONGTYPE") && cause.contains("this key only"),
        "{cause}"
    );
    let text = metrics(&gateway);
    assert!(
        metric_sum(
            &text,
            "claimgate_shared_state_errors_total{operation=\"rate_limit\"}"
        ) >= 4,
        "{text}"
    );
    // The connection stays up, and the list is left alone.
    assert!(text.contains("claimgate_shared_state_up 1"), "{text}");
    assert_eq!(redis.cmd(&["TYPE", "team-a:rl:/v1:TOTAL"]), "list");
    assert!(gateway_alive(&gateway));
}

fn gateway_alive(gateway: &Gateway) -> bool {
    client()
        .get(format!("{}/livez", gateway.admin.as_ref().unwrap()))
        .send()
        .is_ok_and(|r| r.status() == 200)
}

#[test]
fn the_shared_bucket_admits_what_the_local_one_does_and_says_when_to_retry() {
    let Some(redis) = Redis::start("the_shared_bucket_admits", None) else {
        return;
    };
    let gateway = start_gateway(
        &[limited(3)],
        true,
        &["--redis", &redis.url(), "--redis-timeout-ms", "1000"],
    );
    wait_for_code(&gateway, "sharedState.connected", Duration::from_secs(5));
    let refused = (0..5)
        .map(|_| {
            client()
                .get(format!("{}/v1/hello", gateway.base))
                .send()
                .unwrap()
        })
        .filter(|r| r.status() == 429)
        .collect::<Vec<_>>();
    // Capacity 3: the 4th and 5th in the same instant are refused, told to retry in 1 s.
    assert_eq!(refused.len(), 2);
    for response in refused {
        assert_eq!(response.headers()["retry-after"], "1");
    }
    // The bucket lives in Redis, as a number that expires once the bucket is full again.
    let ttl: i64 = redis
        .cmd(&["PTTL", "claimgate:rl:/v1:TOTAL"])
        .parse()
        .unwrap();
    assert!((1..=1100).contains(&ttl), "{ttl}");
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(statuses(&gateway, 3), [200, 200, 200]);
}

/// A TLS-only `redis-server` on a free loopback port with a certificate for `localhost` from
/// `ca`; killed when dropped. `None` (skipped) without redis-server.
fn tls_redis(test: &str, ca: &Ca, dir: &std::path::Path) -> Option<(Running, u16)> {
    if Command::new("redis-server")
        .arg("--version")
        .output()
        .is_err()
    {
        skip(
            test,
            "redis-server is not installed (Debian package redis-server)",
        );
        return None;
    }
    let (cert, key) = leaf(ca, None, &["localhost"], false, None).pair();
    let (cert_path, key_path) = (dir.join("redis.pem"), dir.join("redis.key"));
    std::fs::write(&cert_path, cert).unwrap();
    std::fs::write(&key_path, key).unwrap();
    let port = free_port();
    let child = Command::new("redis-server")
        .args([
            "--port",
            "0",
            "--tls-port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
        ])
        .args(["--tls-cert-file", cert_path.to_str().unwrap()])
        .args(["--tls-key-file", key_path.to_str().unwrap()])
        .args([
            "--tls-auth-clients",
            "no",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .args(["--dir", dir.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let running = Running(child);
    wait_for(&format!("127.0.0.1:{port}"));
    Some((running, port))
}

#[test]
fn rediss_trusts_the_system_roots_plus_ca_and_nothing_else() {
    const TEST: &str = "rediss_trusts_the_system_roots_plus_ca";
    let dir = tempfile::tempdir().unwrap();
    let ca = ca("test redis CA");
    let Some((_redis, port)) = tls_redis(TEST, &ca, dir.path()) else {
        return;
    };
    let url = format!("rediss://localhost:{port}");
    // The server's CA is not among the system roots: refused, and the replica serves anyway.
    let untrusted = start_gateway(&[limited(1000)], true, &["--redis", &url]);
    let unavailable = wait_for_code(
        &untrusted,
        "sharedState.unavailable",
        Duration::from_secs(5),
    );
    assert_eq!(unavailable.len(), 1);
    let cause = unavailable[0]["data"]["cause"]
        .as_str()
        .unwrap()
        .to_lowercase();
    assert!(
        cause.contains("certificate") || cause.contains("unknownissuer"),
        "{cause}"
    );
    assert_eq!(statuses(&untrusted, 1), [200]);

    // With --ca, as for every other outbound TLS connection: used.
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, &ca.pem).unwrap();
    let trusted = start_gateway(
        &[limited(1000)],
        true,
        &["--redis", &url, "--ca", ca_file.to_str().unwrap()],
    );
    let connected = wait_for_code(&trusted, "sharedState.connected", Duration::from_secs(5));
    assert_eq!(
        connected.len(),
        1,
        "{:?}",
        std::fs::read_to_string(&trusted.execution_log)
    );
    assert_eq!(statuses(&trusted, 1), [200]);
    assert!(metrics(&trusted).contains("claimgate_shared_state_up 1"));
}

/// `INFO commandstats` as (command, calls, failed calls).
fn command_stats(redis: &Redis) -> Vec<(String, u64, u64)> {
    redis
        .cmd(&["INFO", "commandstats"])
        .lines()
        .filter_map(|line| {
            let (name, rest) = line.strip_prefix("cmdstat_")?.split_once(':')?;
            let field = |key: &str| {
                rest.split(',')
                    .find_map(|f| f.strip_prefix(&format!("{key}=")))
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0)
            };
            Some((name.to_owned(), field("calls"), field("failed_calls")))
        })
        .collect()
}

#[test]
fn one_round_trip_per_limited_request_none_without_rate_limiting_and_scripts_reload() {
    let Some(redis) = Redis::start("one_round_trip_per_limited_request", None) else {
        return;
    };
    let unlimited = json!({
        "displayName": "open", "pathPrefix": "/v2",
        "specification": {"routes": [{"path": "/hello", "methods": ["GET"],
            "backend": {"type": "STOCK_RESPONSE_BACKEND", "status": 200}}]}
    });
    let gateway = start_gateway(
        &[limited(1000), unlimited],
        true,
        &["--redis", &redis.url(), "--redis-timeout-ms", "1000"],
    );
    wait_for_code(&gateway, "sharedState.connected", Duration::from_secs(5));
    redis.cmd(&["CONFIG", "RESETSTAT"]);
    let get = |path: &str| {
        client()
            .get(format!("{}{path}", gateway.base))
            .send()
            .unwrap()
            .status()
            .as_u16()
    };
    for _ in 0..10 {
        assert_eq!(get("/v2/hello"), 200);
    }
    let data_commands = |stats: &[(String, u64, u64)]| -> Vec<String> {
        stats
            .iter()
            .filter(|(name, _, _)| !["ping", "info", "config|resetstat"].contains(&name.as_str()))
            .map(|(name, calls, _)| format!("{name}={calls}"))
            .collect()
    };
    assert_eq!(data_commands(&command_stats(&redis)), Vec::<String>::new());
    for _ in 0..10 {
        assert_eq!(get("/v1/hello"), 200);
    }
    // The script was loaded once (NOSCRIPT on its first EVALSHA), then one EVALSHA a request.
    let stats = command_stats(&redis);
    let evalsha = stats.iter().find(|(name, _, _)| name == "evalsha").unwrap();
    assert_eq!(evalsha.1 - evalsha.2, 10, "{stats:?}");
    // Redis forgets its scripts (a restart, SCRIPT FLUSH): reloaded, nothing refused.
    redis.cmd(&["SCRIPT", "FLUSH"]);
    for _ in 0..5 {
        assert_eq!(get("/v1/hello"), 200);
    }
    let text = metrics(&gateway);
    assert_eq!(
        metric_sum(&text, "claimgate_shared_state_errors_total"),
        0,
        "{text}"
    );
    let stats = command_stats(&redis);
    let evalsha = stats.iter().find(|(name, _, _)| name == "evalsha").unwrap();
    assert_eq!(evalsha.1 - evalsha.2, 15, "{stats:?}");
}

/// The execution-log records of `gateway` with `code`, waiting up to `within` for one.
fn wait_for_code(gateway: &Gateway, code: &str, within: Duration) -> Vec<Value> {
    support::records_with_code(&gateway.execution_log, code, within)
}
