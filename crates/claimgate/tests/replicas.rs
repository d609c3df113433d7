//! Several replicas sharing state through Redis (SPEC "Replicas and shared state"): three real
//! `claimgate serve` processes behind a real HAProxy, a real `redis-server`, and the real
//! identity provider for introspection (scripts/test.sh installs all three).

use serde_json::{json, Value};
use std::time::{Duration, Instant};

mod support;

use support::cluster::{load, metric_sum, Haproxy, LoadPlan, Redis, Replicas};
use support::*;

/// The tests of this file one at a time: each runs three replicas, a load balancer, Redis and
/// a load on a 2-core machine, and measures admission and latency, which a neighbour's load
/// would distort.
fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static HEAVY: std::sync::Mutex<()> = std::sync::Mutex::new(());
    HEAVY
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// `--redis URL` with an operation timeout that a loaded test machine cannot exceed: tests of
/// what is shared, not of the outage (which keep the default 50 ms).
fn redis_flags(url: &str) -> [String; 4] {
    [
        "--redis".into(),
        url.into(),
        "--redis-timeout-ms".into(),
        "1000".into(),
    ]
}

fn limited(rate: u64, key: &str) -> Value {
    json!({
        "displayName": "limited",
        "pathPrefix": "/v1",
        "specification": {
            "requestPolicies": {"rateLimiting": {"rateInRequestsPerSecond": rate, "rateKey": key}},
            "routes": [{"path": "/hello", "methods": ["GET"],
                        "backend": {"type": "STOCK_RESPONSE_BACKEND", "status": 200, "body": "hi"}}]
        }
    })
}

/// Waits until every replica's execution log has a record with `code`.
fn wait_all(replicas: &Replicas, code: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    for i in 0..replicas.len() {
        while !replicas
            .log_records(i)
            .iter()
            .any(|r| r["data"]["code"] == code)
        {
            assert!(Instant::now() < deadline, "replica {i} never logged {code}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// `requests` at 100 per second over 4 keep-alive connections through `proxy`, in the
/// background while the test breaks something.
fn load_in_background(
    proxy: &Haproxy,
    requests: usize,
) -> std::thread::JoinHandle<support::cluster::LoadReport> {
    let target = proxy.addr();
    std::thread::spawn(move || {
        let seconds = requests as u64 / 100 + 4;
        load(
            target,
            &LoadPlan::new("/v1/hello", 4, requests)
                .rate(100.0)
                .duration(Duration::from_secs(seconds)),
        )
    })
}

/// Three replicas of an unlimited deployment with `flags`, behind HAProxy checking their
/// readiness; `None` when haproxy is missing (skipped).
fn three_behind_haproxy(test: &str, flags: &[String]) -> Option<(Replicas, Haproxy)> {
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let replicas = Replicas::start(3, &[limited(100_000, "TOTAL")], &flags);
    let proxy = Haproxy::start(test, &replicas.addrs(), &replicas.admin_addrs(), false)?;
    Some((replicas, proxy))
}

/// Accepted requests of a 2-second run at 90 requests per second through `proxy`.
fn accepted_in_two_seconds(proxy: &Haproxy, plan: LoadPlan) -> (usize, String) {
    let report = load(
        proxy.addr(),
        &plan.rate(90.0).duration(Duration::from_secs(4)),
    );
    assert!(
        report.errors.is_empty() && report.server_errors() == 0,
        "{}",
        report.summary()
    );
    (report.count(200), report.summary())
}

#[test]
fn a_total_limit_holds_across_three_replicas_where_local_buckets_admit_three_times() {
    let _serial = one_at_a_time();
    const TEST: &str = "a_total_limit_holds_across_three_replicas";
    let Some(redis) = Redis::start(TEST, Some("s3cret")) else {
        return;
    };
    let flags = redis_flags(&redis.url());
    let shared = Replicas::start(
        3,
        &[limited(10, "TOTAL")],
        &flags.each_ref().map(String::as_str),
    );
    wait_all(&shared, "sharedState.connected");
    let Some(proxy) = Haproxy::start(TEST, &shared.addrs(), &shared.admin_addrs(), false) else {
        return;
    };
    // Capacity 10, refilled at 10/s: about 10 + 2 × 10 of 180 in two seconds.
    let (accepted, summary) = accepted_in_two_seconds(&proxy, LoadPlan::new("/v1/hello", 6, 180));
    assert!(
        (25..=36).contains(&accepted),
        "shared: {accepted} accepted; {summary}"
    );
    // Every replica took part in it.
    for i in 0..3 {
        assert!(shared.requests_served(i) > 30, "replica {i}");
    }
    drop(proxy);

    // The same three replicas without Redis: each has its own bucket.
    let local = Replicas::start(3, &[limited(10, "TOTAL")], &[]);
    let proxy = Haproxy::start(TEST, &local.addrs(), &local.admin_addrs(), false).unwrap();
    let (accepted, summary) = accepted_in_two_seconds(&proxy, LoadPlan::new("/v1/hello", 6, 180));
    assert!(accepted >= 75, "local: {accepted} accepted; {summary}");
}

#[test]
fn a_client_ip_limit_holds_across_replicas_for_each_client() {
    let _serial = one_at_a_time();
    const TEST: &str = "a_client_ip_limit_holds_across_replicas";
    let Some(redis) = Redis::start(TEST, None) else {
        return;
    };
    let [redis_flag, url, timeout_flag, timeout] = redis_flags(&redis.url());
    let replicas = Replicas::start(
        3,
        &[limited(5, "CLIENT_IP")],
        &[
            &redis_flag,
            &url,
            &timeout_flag,
            &timeout,
            "--trusted-proxy",
            "127.0.0.1/32",
        ],
    );
    wait_all(&replicas, "sharedState.connected");
    let Some(proxy) = Haproxy::start(TEST, &replicas.addrs(), &replicas.admin_addrs(), true) else {
        return;
    };
    let plan = |client: &str| {
        LoadPlan::new("/v1/hello", 3, 60)
            .header("X-Forwarded-For", client)
            .rate(60.0)
            .duration(Duration::from_secs(3))
    };
    let first = load(proxy.addr(), &plan("198.51.100.1"));
    // One bucket per client in Redis, named by the client's address; it expires once full
    // again (about a second after the client stops).
    assert_eq!(
        redis.keys("claimgate:rl:*"),
        ["claimgate:rl:/v1:198.51.100.1"]
    );
    let second = load(proxy.addr(), &plan("198.51.100.2"));
    assert!(redis
        .keys("claimgate:rl:*")
        .contains(&"claimgate:rl:/v1:198.51.100.2".to_owned()));
    // Each client: capacity 5 plus 5 per second, across the three replicas.
    for report in [&first, &second] {
        assert!(report.errors.is_empty(), "{}", report.summary());
        assert!(
            (5..=12).contains(&report.count(200)),
            "{}",
            report.summary()
        );
        assert!(report.count(429) > 40, "{}", report.summary());
    }
}

#[test]
fn redis_hung_and_killed_mid_run_fails_no_request_and_is_used_again_after_restart() {
    let _serial = one_at_a_time();
    const TEST: &str = "redis_hung_and_killed_mid_run";
    let Some(mut redis) = Redis::start(TEST, Some("s3cret")) else {
        return;
    };
    let Some((replicas, proxy)) = three_behind_haproxy(TEST, &["--redis".into(), redis.url()])
    else {
        return;
    };
    wait_all(&replicas, "sharedState.connected");
    let run = load_in_background(&proxy, 600);
    std::thread::sleep(Duration::from_millis(1000));
    redis.pause();
    std::thread::sleep(Duration::from_millis(1500));
    redis.resume();
    std::thread::sleep(Duration::from_millis(1000));
    redis.kill();
    std::thread::sleep(Duration::from_millis(1000));
    redis.restart();
    let report = run.join().unwrap();
    // No 5xx, no dropped connection, and the hang cost at most a timeout (50 ms) per second
    // per replica: p99 stays far below a second.
    report.assert_clean(Duration::from_millis(400));
    assert_eq!(report.count(200), 600, "{}", report.summary());

    wait_all(&replicas, "sharedState.unavailable");
    wait_all(&replicas, "sharedState.restored");
    for i in 0..3 {
        let text = replicas.metrics(i);
        assert!(
            metric_sum(
                &text,
                "claimgate_shared_state_errors_total{operation=\"rate_limit\"}"
            ) > 0,
            "replica {i}: {text}"
        );
        let records = replicas.log_records(i);
        let unavailable: Vec<&Value> = records
            .iter()
            .filter(|r| r["data"]["code"] == "sharedState.unavailable")
            .collect();
        // At most once per 10 s, with the cause; never the password.
        assert!(unavailable.len() <= 1, "replica {i}: {unavailable:?}");
        assert_eq!(unavailable[0]["data"]["level"], "ERROR");
        assert!(unavailable[0]["data"]["cause"].is_string());
        assert!(!std::fs::read_to_string(&replicas.gateway(i).execution_log)
            .unwrap()
            .contains("s3cret"));
    }
    // Restored without touching the replicas: the bucket is in the new Redis again (asked
    // again until it is: on a loaded machine one more 50 ms timeout may fall back once).
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let answers = load(proxy.addr(), &LoadPlan::new("/v1/hello", 1, 3));
        assert_eq!(answers.count(200), 3, "{}", answers.summary());
        // At 100,000/s a bucket's key lives 2 ms: look for the script's runs instead.
        let stats = redis.cmd(&["INFO", "commandstats"]);
        if stats.contains("cmdstat_evalsha:calls=") || stats.contains("cmdstat_eval:calls=") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the replicas never used the restarted Redis"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_replica_killed_mid_run_costs_no_request_behind_haproxy() {
    let _serial = one_at_a_time();
    const TEST: &str = "a_replica_killed_mid_run";
    let Some(redis) = Redis::start(TEST, None) else {
        return;
    };
    let Some((mut replicas, proxy)) = three_behind_haproxy(TEST, &redis_flags(&redis.url())) else {
        return;
    };
    let run = load_in_background(&proxy, 300);
    std::thread::sleep(Duration::from_millis(1000));
    replicas.kill(1);
    let report = run.join().unwrap();
    // HAProxy retries what reached the dead replica on another one.
    report.assert_clean(Duration::from_secs(2));
    assert_eq!(report.count(200), 300, "{}", report.summary());
    assert!(proxy.wait_until_up(&[0, 2], Duration::from_secs(5)));
}

// ---------------------------------------------------------------------------------------------
// Introspection answers
// ---------------------------------------------------------------------------------------------

fn discovery_deployment(issuer: &str) -> Value {
    json!({
        "displayName": "orders",
        "pathPrefix": "/v1",
        "specification": {
            "requestPolicies": {"authentication": {
                "type": "TOKEN_AUTHENTICATION",
                "tokenHeader": "Authorization",
                "tokenAuthScheme": "Bearer",
                "validationPolicy": {
                    "type": "REMOTE_DISCOVERY",
                    "clientDetails": {"type": "CUSTOM", "clientId": "gateway",
                                      "clientSecretId": "ocid1.vaultsecret.oc1..gateway", "clientSecretVersionNumber": 2},
                    "sourceUriDetails": {"type": "DISCOVERY_URI", "uri": format!("{issuer}/.well-known/openid-configuration")},
                    "maxCacheDurationInHours": 1,
                    "additionalValidationPolicy": {
                        "issuers": [issuer],
                        "audiences": ["api://orders"],
                        "verifyClaims": [{"key": "tenant", "values": ["acme"], "isRequired": true}]
                    }
                }
            }},
            "routes": [{"path": "/orders", "methods": ["GET"],
                        "backend": {"type": "STOCK_RESPONSE_BACKEND", "status": 200, "body": "orders"}}]
        }
    })
}

fn introspections(port: u16) -> u64 {
    let stats: Value = client()
        .get(format!("http://127.0.0.1:{port}/__stats"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    stats["introspections"].as_u64().unwrap()
}

/// The shared cache's name of an answer, as SPEC fixes it: hex SHA-256 over the endpoint, the
/// client id and the token (each preceded by its length, as 8 big-endian bytes).
fn answer_name(endpoint: &str, client_id: &str, token: &str) -> String {
    let mut context = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    for part in [endpoint, client_id, token] {
        context.update(&(part.len() as u64).to_be_bytes());
        context.update(part.as_bytes());
    }
    context
        .finish()
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn wait_for_record(log: &std::path::Path, code: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !std::fs::read_to_string(log)
        .unwrap_or_default()
        .contains(&format!("\"code\":\"{code}\""))
    {
        assert!(Instant::now() < deadline, "never logged {code}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn secrets_file(dir: &std::path::Path) -> String {
    let path = dir.join("secrets.json");
    std::fs::write(
        &path,
        r#"{"ocid1.vaultsecret.oc1..gateway": {"2": "gateway-secret"}}"#,
    )
    .unwrap();
    path.to_str().unwrap().to_owned()
}

fn get_each(replicas: &Replicas, token: &str) -> Vec<u16> {
    replicas
        .addrs()
        .iter()
        .map(|addr| {
            client()
                .get(format!("http://{addr}/v1/orders"))
                .bearer_auth(token)
                .send()
                .unwrap()
                .status()
                .as_u16()
        })
        .collect()
}

#[test]
fn one_new_opaque_token_sent_to_each_of_three_replicas_is_introspected_once() {
    let _serial = one_at_a_time();
    const TEST: &str = "one_new_opaque_token_is_introspected_once";
    let Some(redis) = Redis::start(TEST, Some("s3cret")) else {
        return;
    };
    let idp_port = free_port();
    let _idp = start_idp(idp_port);
    let issuer = format!("http://127.0.0.1:{idp_port}");
    let dir = tempfile::tempdir().unwrap();
    let secrets = secrets_file(dir.path());
    let key = dir.path().join("shared.key");
    std::fs::write(&key, "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=\n").unwrap();
    let deployment = discovery_deployment(&issuer);

    let replicas = Replicas::start(
        3,
        std::slice::from_ref(&deployment),
        &[
            "--redis",
            &redis.url(),
            "--redis-timeout-ms",
            "1000",
            "--secrets",
            &secrets,
            "--shared-state-key",
            key.to_str().unwrap(),
        ],
    );
    wait_all(&replicas, "sharedState.connected");
    let token = access_token(idp_port, "api://orders", "orders:read");
    let before = introspections(idp_port);
    assert_eq!(get_each(&replicas, &token), [200, 200, 200]);
    assert_eq!(
        introspections(idp_port) - before,
        1,
        "one introspection for three replicas"
    );

    // What Redis holds: a key named by a hash, a sealed value; never the token.
    let keys = redis.keys("*");
    assert_eq!(keys.len(), 1, "{keys:?}");
    let name = keys[0]
        .strip_prefix("claimgate:ia:")
        .expect("an introspection key");
    assert!(
        name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit()),
        "{name}"
    );
    let value = redis.cmd(&["GET", &keys[0]]);
    assert!(!value.contains(&token) && !value.contains("active") && !value.contains("acme"));
    assert!(!keys[0].contains(&token));

    // An answer forged by someone who can write to Redis, for a token the provider never
    // issued, under the very key a replica would look up: it does not open, so it is ignored
    // and the provider is asked (and says the token is not active).
    let document: Value = client()
        .get(format!("{issuer}/.well-known/openid-configuration"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let endpoint = document["introspection_endpoint"].as_str().unwrap();
    let forged = json!({"v": 1, "storedAt": now(), "answer": {
        "active": true, "iss": issuer, "aud": "api://orders", "tenant": "acme", "exp": now() + 600}});
    let forge = |token: &str| {
        let key = format!("claimgate:ia:{}", answer_name(endpoint, "gateway", token));
        redis.cmd(&["SET", &key, &forged.to_string()]);
    };
    forge("never-issued-1");
    let before = introspections(idp_port);
    assert_eq!(get_each(&replicas, "never-issued-1"), [401, 401, 401]);
    assert!(introspections(idp_port) > before, "the provider is asked");
    // Without --shared-state-key the same forgery works: why the README says to set it (or
    // to protect Redis with ACLs and TLS).
    let unsealed = start_gateway(
        std::slice::from_ref(&deployment),
        false,
        &[
            "--redis",
            &redis.url(),
            "--redis-timeout-ms",
            "1000",
            "--secrets",
            &secrets,
        ],
    );
    wait_for_record(&unsealed.execution_log, "sharedState.connected");
    forge("never-issued-2");
    let status = client()
        .get(format!("{}/v1/orders", unsealed.base))
        .bearer_auth("never-issued-2")
        .send()
        .unwrap()
        .status();
    assert_eq!(status, 200);

    // Without Redis, each replica introspects for itself: what the shared cache saves.
    let local = Replicas::start(3, &[deployment], &["--secrets", &secrets]);
    let token = access_token(idp_port, "api://orders", "orders:read");
    let before = introspections(idp_port);
    assert_eq!(get_each(&local, &token), [200, 200, 200]);
    assert_eq!(introspections(idp_port) - before, 3);
}

#[test]
fn a_replica_drained_with_sigterm_behind_haproxy_fails_no_request() {
    let _serial = one_at_a_time();
    const TEST: &str = "a_replica_drained_with_sigterm";
    let Some(redis) = Redis::start(TEST, None) else {
        return;
    };
    let mut flags = redis_flags(&redis.url()).to_vec();
    flags.extend(["--drain-delay".into(), "2".into()]);
    let Some((mut replicas, proxy)) = three_behind_haproxy(TEST, &flags) else {
        return;
    };
    let run = load_in_background(&proxy, 400);
    std::thread::sleep(Duration::from_millis(1000));
    replicas.term(1);
    let report = run.join().unwrap();
    // /readyz turned 503 at once, HAProxy took the replica out within its check interval
    // while the replica still served, and nothing it had queued was reset.
    report.assert_clean(Duration::from_secs(1));
    assert_eq!(report.count(200), 400, "{}", report.summary());
    let status = replicas
        .wait_exit(1, Duration::from_secs(10))
        .expect("it exits");
    assert!(status.success(), "{status:?}");
    // Taken out by its readiness answer (503), not by failed connections.
    let log = proxy.log();
    assert!(
        log.contains("r1 is DOWN") && log.contains("Layer7 wrong status, code: 503"),
        "{log}"
    );
}

/// A ConfigMap volume as the kubelet writes it: the files in a timestamped directory,
/// `..data` a symlink to it, and each name a symlink through `..data`.
fn configmap(dir: &std::path::Path, version: &str, files: &[(&str, &Value)]) {
    use std::os::unix::fs::symlink;
    let data = dir.join(format!("..{version}"));
    std::fs::create_dir(&data).unwrap();
    for (name, content) in files {
        std::fs::write(data.join(name), content.to_string()).unwrap();
        let link = dir.join(name);
        if link.symlink_metadata().is_err() {
            symlink(format!("..data/{name}"), link).unwrap();
        }
    }
    // The swap: a new symlink renamed over the old one, atomically.
    let tmp = dir.join("..data_tmp");
    symlink(format!("..{version}"), &tmp).unwrap();
    std::fs::rename(&tmp, dir.join("..data")).unwrap();
}

#[test]
fn a_configmap_directory_swap_is_seen_by_every_replica() {
    let _serial = one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let stock = |prefix: &str, body: &str| {
        json!({"displayName": prefix, "pathPrefix": prefix, "specification": {"routes": [
            {"path": "/hello", "methods": ["GET"],
             "backend": {"type": "STOCK_RESPONSE_BACKEND", "status": 200, "body": body}}]}})
    };
    configmap(
        dir.path(),
        "2026_12_02_01",
        &[("orders.json", &stock("/orders", "v1"))],
    );
    let path = dir.path().to_str().unwrap().to_owned();
    let replicas = Replicas::start_each(3, &[], |_| vec!["--deployment".into(), path.clone()]);
    let body = |addr: &std::net::SocketAddr, prefix: &str| {
        let response = client()
            .get(format!("http://{addr}{prefix}/hello"))
            .send()
            .unwrap();
        (response.status().as_u16(), response.text().unwrap())
    };
    for addr in replicas.addrs() {
        assert_eq!(body(&addr, "/orders"), (200, "v1".into()));
    }
    configmap(
        dir.path(),
        "2026_12_02_02",
        &[
            ("orders.json", &stock("/orders", "v2")),
            ("users.json", &stock("/users", "users")),
        ],
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    for addr in replicas.addrs() {
        while body(&addr, "/orders") != (200, "v2".into()) {
            assert!(
                Instant::now() < deadline,
                "{addr} never saw the new ConfigMap"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        assert_eq!(body(&addr, "/users"), (200, "users".into()));
    }
}
