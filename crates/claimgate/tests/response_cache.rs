//! OCI's response cache end to end (SPEC.md "Response caching"): `serve --gateway` with a real,
//! password-protected `redis-server` (started by the test) and a counting upstream, so every
//! check can see whether the backend was asked.

use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod support;

use support::cluster::{metric_sum, Redis};
use support::*;

const PASSWORD: &str = "cache-pass-1";
const SECRET_ID: &str = "ocid1.vaultsecret.oc1..cache";

/// An upstream that counts what it answers: `GET /<name>` answers `<name> call <n>` (n counts
/// every request it got), with what it saw of `Authorization` and `Accept`.
struct Upstream {
    addr: std::net::SocketAddr,
    calls: Arc<AtomicUsize>,
    _rt: tokio::runtime::Runtime,
}

impl Upstream {
    fn start() -> Self {
        let rt = runtime();
        let calls = Arc::new(AtomicUsize::new(0));
        let counter = calls.clone();
        let addr = serve_http(&rt, move |request| {
            let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
            async move {
                let header = |name: &str| {
                    request
                        .headers()
                        .get(name)
                        .map(|v| v.to_str().unwrap_or("?").to_owned())
                        .unwrap_or_else(|| "-".into())
                };
                let path = request.uri().path().to_owned();
                let body = format!(
                    "{path} call {n} auth={} accept={}",
                    header("authorization"),
                    header("accept")
                );
                let mut response = hyper::Response::builder().header("x-upstream", "yes");
                let body = match path.as_str() {
                    "/error" => {
                        response = response.status(500);
                        body
                    }
                    "/cookie" => {
                        response = response.header("set-cookie", "session=abc");
                        body
                    }
                    "/huge" => "h".repeat(3 * 1024 * 1024),
                    _ => body,
                };
                response
                    .body(http_body_util::Full::new(bytes::Bytes::from(body)))
                    .unwrap()
            }
        });
        Self {
            addr,
            calls,
            _rt: rt,
        }
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

/// A route `/<name>` to the upstream with the cache's two policies; `lookup` adds members to
/// `responseCacheLookup`.
fn caching_route(upstream: &Upstream, name: &str, ttl: i64, lookup: Value) -> Value {
    let mut policy = json!({"type": "SIMPLE_LOOKUP_POLICY"});
    for (k, v) in lookup.as_object().unwrap() {
        policy[k] = v.clone();
    }
    json!({
        "path": format!("/{name}"), "methods": ["GET", "HEAD", "POST", "OPTIONS"],
        "requestPolicies": {"responseCacheLookup": policy},
        "responsePolicies": {"responseCacheStore": {"type": "FIXED_TTL_STORE_POLICY", "timeToLiveInSeconds": ttl}},
        "backend": {"type": "HTTP_BACKEND", "url": format!("http://{}/{name}", upstream.addr)}
    })
}

fn deployment(routes: Vec<Value>) -> Value {
    json!({"id": "ocid1.apideployment.oc1..cached", "displayName": "cached", "pathPrefix": "/v1",
           "specification": {"routes": routes}})
}

/// The gateway resource naming `redis` (read timeout `read_ms`).
fn gateway_file(redis: &Redis, read_ms: u64) -> Value {
    json!({"compartmentId": "ocid1.compartment.oc1..x", "displayName": "gw",
        "responseCacheDetails": {"type": "EXTERNAL_RESP_CACHE",
            "servers": [{"host": "127.0.0.1", "port": redis.port()}],
            "authenticationSecretId": SECRET_ID, "authenticationSecretVersionNumber": 1,
            "connectTimeoutInMs": 500, "readTimeoutInMs": read_ms, "sendTimeoutInMs": 500}})
}

fn secrets() -> Value {
    let mut secrets = serde_json::Map::new();
    secrets.insert(
        SECRET_ID.to_owned(),
        json!({"1": json!({"password": PASSWORD}).to_string()}),
    );
    Value::Object(secrets)
}

/// Writes the gateway and secrets files into a new directory and starts serve with them, once
/// it has connected to the cache.
fn start(deployments: &[Value], gateway: &Value, extra: &[&str]) -> Gateway {
    let gateway = start_unconnected(deployments, gateway, extra);
    wait_for_code(&gateway, "sharedState.connected", Duration::from_secs(10));
    gateway
}

/// [`start`] without waiting for the cache.
fn start_unconnected(deployments: &[Value], gateway: &Value, extra: &[&str]) -> Gateway {
    let dir = tempfile::tempdir().unwrap();
    let gateway_path = dir.path().join("gateway.json");
    std::fs::write(&gateway_path, gateway.to_string()).unwrap();
    let secrets_path = dir.path().join("secrets.json");
    std::fs::write(&secrets_path, secrets().to_string()).unwrap();
    let files = write_deployments(dir.path(), deployments);
    let mut args = vec![
        "--gateway".to_owned(),
        gateway_path.to_string_lossy().into_owned(),
        "--secrets".to_owned(),
        secrets_path.to_string_lossy().into_owned(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    start_gateway_on(dir, &files, true, &args)
}

/// One answer: status, `X-Cache-Status`, body, the request id, and every header.
#[derive(Debug)]
struct Answer {
    status: u16,
    cache: Option<String>,
    body: String,
    request_id: String,
    headers: HashMap<String, String>,
}

fn send(gateway: &Gateway, method: &str, path: &str, headers: &[(&str, &str)]) -> Answer {
    // Redirects are answers to look at here, not to follow.
    let client = reqwest::blocking::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let mut request = client.request(method.parse().unwrap(), format!("{}{path}", gateway.base));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().unwrap();
    let headers: HashMap<String, String> = response
        .headers()
        .iter()
        .map(|(n, v)| (n.as_str().to_owned(), v.to_str().unwrap_or("?").to_owned()))
        .collect();
    Answer {
        status: response.status().as_u16(),
        cache: headers.get("x-cache-status").cloned(),
        request_id: headers.get("opc-request-id").cloned().unwrap_or_default(),
        body: response.text().unwrap(),
        headers,
    }
}

fn get(gateway: &Gateway, path: &str, headers: &[(&str, &str)]) -> Answer {
    send(gateway, "GET", path, headers)
}

/// A `GET` that misses, once its answer is stored (the store finishes after the body).
fn stored_miss(gateway: &Gateway, path: &str, headers: &[(&str, &str)]) -> Answer {
    let answer = get(gateway, path, headers);
    assert_eq!(answer.cache.as_deref(), Some("MISS"), "{path}: {answer:?}");
    let codes = cache_codes(gateway, &answer.request_id, 2);
    assert!(
        codes.contains(&"responseCache.backendResponseStoredInCache".to_owned()),
        "{path}: {codes:?}"
    );
    answer
}

/// Waits until `path` answers from the cache, at most 5 s (each try that misses asks the
/// backend again: only for tests that do not count calls).
fn until_hit(gateway: &Gateway, path: &str, headers: &[(&str, &str)]) -> Answer {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let answer = get(gateway, path, headers);
        if answer.cache.as_deref() == Some("HIT") || Instant::now() > deadline {
            return answer;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn metrics(gateway: &Gateway) -> String {
    client()
        .get(format!("{}/metrics", gateway.admin.as_ref().unwrap()))
        .send()
        .unwrap()
        .text()
        .unwrap()
}

fn cache_metric(gateway: &Gateway, result: &str) -> u64 {
    metrics(gateway)
        .lines()
        .filter(|l| {
            l.starts_with("claimgate_response_cache_total{")
                && l.contains(&format!("result=\"{result}\""))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

#[test]
fn a_miss_is_stored_and_then_answered_without_the_backend() {
    let Some(redis) = Redis::start(
        "a_miss_is_stored_and_then_answered_without_the_backend",
        Some(PASSWORD),
    ) else {
        return;
    };
    let upstream = Upstream::start();
    let gateway = start(
        &[deployment(vec![caching_route(
            &upstream,
            "items",
            60,
            json!({}),
        )])],
        &gateway_file(&redis, 1000),
        &[],
    );
    let first = stored_miss(&gateway, "/v1/items", &[]);
    assert_eq!(first.status, 200);
    assert_eq!(first.body, "/items call 1 auth=- accept=*/*");
    assert_eq!(
        cache_codes(&gateway, &first.request_id, 2),
        [
            "responseCache.lookupResultNotFound",
            "responseCache.backendResponseStoredInCache"
        ]
    );
    let hit = get(&gateway, "/v1/items", &[]);
    assert_eq!((hit.status, hit.cache.as_deref()), (200, Some("HIT")));
    assert_eq!(hit.body, first.body);
    assert_eq!(
        hit.headers["x-upstream"], "yes",
        "the backend's headers are replayed"
    );
    assert_eq!(
        cache_codes(&gateway, &hit.request_id, 1),
        ["responseCache.lookupResultSuccess"]
    );
    // The query string is not part of the key (OCI).
    let query = get(&gateway, "/v1/items?page=2", &[]);
    assert_eq!(
        (query.cache.as_deref(), query.body.as_str()),
        (Some("HIT"), first.body.as_str())
    );
    assert_eq!(upstream.calls(), 1);
    // HEAD and OPTIONS are cached under their own keys: a HEAD never gets the GET's body.
    let head = send(&gateway, "HEAD", "/v1/items", &[]);
    assert_eq!((head.status, head.cache.as_deref()), (200, Some("MISS")));
    cache_codes(&gateway, &head.request_id, 2);
    assert_eq!(upstream.calls(), 2);
    let head = send(&gateway, "HEAD", "/v1/items", &[]);
    assert_eq!(
        (head.cache.as_deref(), head.body.as_str()),
        (Some("HIT"), "")
    );
    assert_eq!(upstream.calls(), 2);
    let options = send(&gateway, "OPTIONS", "/v1/items", &[]);
    assert_eq!(options.cache.as_deref(), Some("MISS"));
    // POST is never looked up nor stored, and gets no X-Cache-Status.
    for _ in 0..2 {
        let post = send(&gateway, "POST", "/v1/items", &[]);
        assert_eq!((post.status, post.cache), (200, None));
    }
    assert_eq!(upstream.calls(), 5);
    // Keys: the prefix, rc:, and 64 hex digits; never the path in clear.
    let deadline = Instant::now() + Duration::from_secs(5);
    while redis.keys("claimgate:rc:*").len() < 3 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let keys = redis.keys("claimgate:rc:*");
    assert_eq!(keys.len(), 3, "{keys:?}");
    for key in &keys {
        let hex = key.strip_prefix("claimgate:rc:").unwrap();
        assert!(
            hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()),
            "{key}"
        );
    }
    assert_eq!(cache_metric(&gateway, "HIT"), 3);
    assert_eq!(cache_metric(&gateway, "MISS"), 3);
    assert_eq!(cache_metric(&gateway, "BYPASS"), 0);
}

#[test]
fn entries_expire_after_their_time_to_live() {
    let Some(redis) = Redis::start("entries_expire_after_their_time_to_live", Some(PASSWORD))
    else {
        return;
    };
    let upstream = Upstream::start();
    let gateway = start(
        &[deployment(vec![caching_route(
            &upstream,
            "items",
            1,
            json!({}),
        )])],
        &gateway_file(&redis, 1000),
        &[],
    );
    assert_eq!(
        get(&gateway, "/v1/items", &[]).cache.as_deref(),
        Some("MISS")
    );
    wait_for_code(
        &gateway,
        "responseCache.backendResponseStoredInCache",
        Duration::from_secs(5),
    );
    let keys = redis.keys("claimgate:rc:*");
    assert_eq!(keys.len(), 1);
    let ttl: i64 = redis.cmd(&["PTTL", &keys[0]]).parse().unwrap();
    assert!(ttl > 0 && ttl <= 1000, "PTTL {ttl}");
    std::thread::sleep(Duration::from_millis(1500));
    let after = get(&gateway, "/v1/items", &[]);
    assert_eq!(after.cache.as_deref(), Some("MISS"));
    assert_eq!(after.body, "/items call 2 auth=- accept=*/*");
}

#[test]
fn key_additions_keep_one_entry_per_value() {
    let Some(redis) = Redis::start("key_additions_keep_one_entry_per_value", Some(PASSWORD)) else {
        return;
    };
    let upstream = Upstream::start();
    let gateway = start(
        &[deployment(vec![
            caching_route(
                &upstream,
                "bare",
                60,
                json!({"cacheKeyAdditions": ["request.headers[Accept]"]}),
            ),
            caching_route(
                &upstream,
                "braced",
                60,
                json!({"cacheKeyAdditions": ["${request.query[lang]}"]}),
            ),
        ])],
        &gateway_file(&redis, 1000),
        &[],
    );
    let a = stored_miss(&gateway, "/v1/bare", &[("accept", "text/a")]);
    let b = stored_miss(&gateway, "/v1/bare", &[("accept", "text/b")]);
    assert_ne!(a.body, b.body);
    let a_again = get(&gateway, "/v1/bare", &[("accept", "text/a")]);
    let b_again = get(&gateway, "/v1/bare", &[("accept", "text/b")]);
    assert_eq!(
        (a_again.cache.as_deref(), b_again.cache.as_deref()),
        (Some("HIT"), Some("HIT"))
    );
    assert_eq!((a_again.body, b_again.body), (a.body, b.body));
    // An empty value is not an absent one.
    let empty = stored_miss(&gateway, "/v1/bare", &[("accept", "")]);
    assert_eq!(empty.body, "/bare call 3 auth=- accept=");
    assert_eq!(upstream.calls(), 3);
    // Query additions: the parameter's value is the key; other parameters are not.
    let en = stored_miss(&gateway, "/v1/braced?lang=en", &[]);
    stored_miss(&gateway, "/v1/braced?lang=de", &[]);
    let en_again = get(&gateway, "/v1/braced?x=1&lang=en", &[]);
    assert_eq!(
        (en_again.cache.as_deref(), en_again.body),
        (Some("HIT"), en.body)
    );
    assert_eq!(upstream.calls(), 5);
    assert_eq!(redis.keys("claimgate:rc:*").len(), 5);
}

#[test]
fn errors_cookies_and_other_statuses_are_never_stored() {
    let Some(redis) = Redis::start(
        "errors_cookies_and_other_statuses_are_never_stored",
        Some(PASSWORD),
    ) else {
        return;
    };
    let upstream = Upstream::start();
    let gateway = start(
        &[deployment(vec![
            caching_route(&upstream, "error", 60, json!({})),
            caching_route(&upstream, "cookie", 60, json!({})),
        ])],
        &gateway_file(&redis, 1000),
        &[],
    );
    for path in ["/v1/error", "/v1/cookie"] {
        for _ in 0..2 {
            let answer = get(&gateway, path, &[]);
            assert_eq!(answer.cache.as_deref(), Some("MISS"), "{path}");
        }
    }
    assert_eq!(upstream.calls(), 4);
    assert!(redis.keys("claimgate:rc:*").is_empty());
    let aborted = wait_for_code(
        &gateway,
        "responseCache.backendResponseStorageAborted",
        Duration::from_secs(5),
    );
    let causes: Vec<&str> = aborted
        .iter()
        .filter_map(|r| r["data"]["cause"].as_str())
        .collect();
    assert!(
        causes
            .iter()
            .any(|c| c.contains("status 500 is not cached")),
        "{causes:?}"
    );
    assert!(
        causes.iter().any(|c| c.contains("Set-Cookie")),
        "{causes:?}"
    );
    assert!(aborted.iter().all(|r| r["data"]["level"] == "WARN"));
}

/// A deployment authenticating `Authorization: Bearer` JWTs from `signer`, with the routes.
fn authenticated(signer: &Signer, routes: Vec<Value>) -> Value {
    let mut deployment = deployment(routes);
    deployment["specification"]["requestPolicies"] = json!({"authentication": {
        "type": "JWT_AUTHENTICATION", "tokenHeader": "Authorization", "tokenAuthScheme": "Bearer",
        "issuers": ["https://issuer.example"], "audiences": ["api"],
        "publicKeys": {"type": "STATIC_KEYS", "keys": [signer.static_key()]}}});
    deployment
}

fn token(signer: &Signer, sub: &str) -> String {
    format!(
        "Bearer {}",
        signer.token(
            json!({"iss": "https://issuer.example", "aud": "api", "sub": sub,
                            "exp": now() + 600})
        )
    )
}

#[test]
fn private_requests_are_bypassed_unless_enabled_and_then_kept_apart() {
    let Some(redis) = Redis::start(
        "private_requests_are_bypassed_unless_enabled_and_then_kept_apart",
        Some(PASSWORD),
    ) else {
        return;
    };
    let upstream = Upstream::start();
    let signer = Signer::new("k");
    let gateway = start(
        &[authenticated(
            &signer,
            vec![
                caching_route(&upstream, "shared", 60, json!({})),
                caching_route(
                    &upstream,
                    "mine",
                    60,
                    json!({"isPrivateCachingEnabled": true,
                    "cacheKeyAdditions": ["request.auth[sub]"]}),
                ),
                caching_route(
                    &upstream,
                    "raw",
                    60,
                    json!({"isPrivateCachingEnabled": true,
                    "cacheKeyAdditions": ["request.headers[Authorization]"]}),
                ),
            ],
        )],
        &gateway_file(&redis, 1000),
        &[],
    );
    let alice = token(&signer, "alice");
    let bob = token(&signer, "bob");
    // Not enabled: a request with credentials is neither looked up nor stored.
    for _ in 0..2 {
        let answer = get(&gateway, "/v1/shared", &[("authorization", &alice)]);
        assert_eq!(
            (answer.status, answer.cache.as_deref()),
            (200, Some("BYPASS"))
        );
        let codes = cache_codes(&gateway, &answer.request_id, 1);
        assert_eq!(codes, ["responseCache.lookupAborted"]);
    }
    assert_eq!(upstream.calls(), 2);
    assert!(redis.keys("claimgate:rc:*").is_empty());
    let aborted = wait_for_code(
        &gateway,
        "responseCache.lookupAborted",
        Duration::from_secs(2),
    );
    assert!(aborted[0]["data"]["cause"]
        .as_str()
        .unwrap()
        .contains("isPrivateCachingEnabled"));
    // Enabled, keyed by the subject: each user sees only their own answer.
    for path in ["/v1/mine", "/v1/raw"] {
        let a = stored_miss(&gateway, path, &[("authorization", &alice)]);
        let b = stored_miss(&gateway, path, &[("authorization", &bob)]);
        assert!(a.body.contains(&alice) && b.body.contains(&bob));
        let a_hit = get(&gateway, path, &[("authorization", &alice)]);
        let b_hit = get(&gateway, path, &[("authorization", &bob)]);
        assert_eq!(
            (a_hit.cache.as_deref(), a_hit.body),
            (Some("HIT"), a.body),
            "{path}"
        );
        assert_eq!(
            (b_hit.cache.as_deref(), b_hit.body),
            (Some("HIT"), b.body),
            "{path}"
        );
        // A cached answer is never a way around authentication.
        for headers in [vec![], vec![("authorization", "Bearer forged")]] {
            let anonymous = get(&gateway, path, &headers);
            assert_eq!((anonymous.status, anonymous.cache), (401, None), "{path}");
            assert!(!anonymous.body.contains("call"));
        }
    }
    assert_eq!(upstream.calls(), 6);
}

#[test]
fn cookies_and_credential_parameters_make_a_request_private() {
    let Some(redis) = Redis::start(
        "cookies_and_credential_parameters_make_a_request_private",
        Some(PASSWORD),
    ) else {
        return;
    };
    let upstream = Upstream::start();
    let mut metered = deployment(vec![caching_route(&upstream, "items", 60, json!({}))]);
    metered["specification"]["requestPolicies"] = json!({"usagePlans": {"tokenLocations": ["request.query[api_key]", "request.headers[X-Client]"]}});
    // The usage plans themselves are not the point: a plan and subscriber that let key k in.
    let dir = tempfile::tempdir().unwrap();
    let plans = dir.path().join("plans.json");
    std::fs::write(
        &plans,
        json!({"id": "ocid1.usageplan.p", "displayName": "p", "entitlements": [
        {"name": "e", "targets": [{"deploymentId": "ocid1.apideployment.oc1..cached"}]}]})
        .to_string(),
    )
    .unwrap();
    let subscribers = dir.path().join("subscribers.json");
    std::fs::write(
        &subscribers,
        json!({"id": "ocid1.subscriber.s", "displayName": "s",
        "clients": [{"name": "c", "token": "k"}], "usagePlans": ["ocid1.usageplan.p"]})
        .to_string(),
    )
    .unwrap();
    let gateway = start(
        &[metered],
        &gateway_file(&redis, 1000),
        &[
            "--usage-plans",
            plans.to_str().unwrap(),
            "--subscribers",
            subscribers.to_str().unwrap(),
        ],
    );
    for (path, headers) in [
        ("/v1/items?api_key=k", vec![]),
        ("/v1/items", vec![("x-client", "k")]),
        ("/v1/items?api_key=k", vec![("cookie", "session=1")]),
        ("/v1/items?api_key=k", vec![("x-apigw-token", "t")]),
    ] {
        let answer = get(&gateway, path, &headers);
        assert_eq!(
            (answer.status, answer.cache.as_deref()),
            (200, Some("BYPASS")),
            "{path} {headers:?}"
        );
    }
    assert!(redis.keys("claimgate:rc:*").is_empty());
}

#[test]
fn a_stopped_cache_server_is_bypassed() {
    let Some(mut redis) = Redis::start("a_stopped_cache_server_is_bypassed", Some(PASSWORD)) else {
        return;
    };
    let upstream = Upstream::start();
    let gateway = start(
        &[deployment(vec![caching_route(
            &upstream,
            "items",
            60,
            json!({}),
        )])],
        &gateway_file(&redis, 1000),
        &[],
    );
    stored_miss(&gateway, "/v1/items", &[]);
    assert_eq!(
        get(&gateway, "/v1/items", &[]).cache.as_deref(),
        Some("HIT")
    );
    redis.kill();
    for _ in 0..3 {
        let answer = get(&gateway, "/v1/items", &[]);
        assert_eq!(
            (answer.status, answer.cache.as_deref()),
            (200, Some("BYPASS"))
        );
    }
    assert_eq!(upstream.calls(), 4);
    assert_eq!(cache_metric(&gateway, "BYPASS"), 3);
    assert!(metric_sum(&metrics(&gateway), "claimgate_shared_state_errors_total") >= 1);
    assert!(metrics(&gateway)
        .contains("claimgate_shared_state_errors_total{operation=\"response_cache\"}"));
    // It comes back by itself.
    redis.restart();
    let deadline = Instant::now() + Duration::from_secs(10);
    while get(&gateway, "/v1/items", &[]).cache.as_deref() != Some("MISS") {
        assert!(Instant::now() < deadline, "the cache was not used again");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        until_hit(&gateway, "/v1/items", &[]).cache.as_deref(),
        Some("HIT")
    );
}

#[test]
fn a_hung_cache_server_costs_at_most_its_read_timeout() {
    let Some(mut redis) = Redis::start(
        "a_hung_cache_server_costs_at_most_its_read_timeout",
        Some(PASSWORD),
    ) else {
        return;
    };
    let upstream = Upstream::start();
    let gateway = start(
        &[deployment(vec![caching_route(
            &upstream,
            "items",
            60,
            json!({}),
        )])],
        &gateway_file(&redis, 200),
        &[],
    );
    assert_eq!(
        get(&gateway, "/v1/items", &[]).cache.as_deref(),
        Some("MISS")
    );
    redis.pause();
    for _ in 0..5 {
        let started = Instant::now();
        let answer = get(&gateway, "/v1/items", &[]);
        let took = started.elapsed();
        assert_eq!(
            (answer.status, answer.cache.as_deref()),
            (200, Some("BYPASS"))
        );
        assert!(took < Duration::from_secs(3), "{took:?}");
    }
    let aborted = wait_for_code(
        &gateway,
        "responseCache.lookupAborted",
        Duration::from_secs(2),
    );
    assert!(
        aborted.iter().any(|r| r["data"]["cause"]
            .as_str()
            .unwrap()
            .contains("no answer within 200 ms")),
        "{aborted:?}"
    );
    redis.resume();
}

/// A value the attacker writes: a valid, unsealed encoding of `301 Location: https://evil.example`
/// (every byte ASCII, so it can be sent as text).
fn forged_redirect() -> String {
    let mut value = String::from("\u{1}\u{1}\u{2d}\u{0}\u{1}");
    value.push_str("\u{0}\u{8}location");
    value.push_str("\u{0}\u{0}\u{0}\u{14}https://evil.example");
    value.push_str("\u{0}\u{0}\u{0}\u{0}");
    value
}

#[test]
fn a_value_forged_in_redis_is_ignored_when_values_are_sealed() {
    let Some(redis) = Redis::start(
        "a_value_forged_in_redis_is_ignored_when_values_are_sealed",
        Some(PASSWORD),
    ) else {
        return;
    };
    let upstream = Upstream::start();
    let routes = vec![caching_route(&upstream, "items", 60, json!({}))];
    // Unsealed, a forgery is served: what the seal is for.
    let open = start(
        &[deployment(routes.clone())],
        &gateway_file(&redis, 1000),
        &[],
    );
    stored_miss(&open, "/v1/items", &[]);
    let keys = redis.keys("claimgate:rc:*");
    assert_eq!(keys.len(), 1);
    assert_eq!(redis.cmd(&["SET", &keys[0], &forged_redirect()]), "OK");
    let forged = get(&open, "/v1/items", &[]);
    assert_eq!((forged.status, forged.cache.as_deref()), (301, Some("HIT")));
    assert_eq!(
        forged.headers.get("location").map(String::as_str),
        Some("https://evil.example")
    );
    drop(open);
    // Sealed: the forgery does not open, the backend answers, and the entry is written anew.
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("state.key");
    std::fs::write(&key_file, "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=").unwrap();
    let sealed = start(
        &[deployment(routes)],
        &gateway_file(&redis, 1000),
        &["--shared-state-key", key_file.to_str().unwrap()],
    );
    let calls = upstream.calls();
    let answer = get(&sealed, "/v1/items", &[]);
    assert_eq!(
        (answer.status, answer.cache.as_deref()),
        (200, Some("MISS"))
    );
    assert!(answer.body.starts_with("/items call"), "{}", answer.body);
    assert!(!answer.headers.contains_key("location"));
    assert_eq!(upstream.calls(), calls + 1);
    let codes = cache_codes(&sealed, &answer.request_id, 2);
    assert_eq!(
        codes,
        [
            "responseCache.lookupAborted",
            "responseCache.backendResponseStoredInCache"
        ]
    );
    let aborted = wait_for_code(
        &sealed,
        "responseCache.lookupAborted",
        Duration::from_secs(5),
    );
    assert!(aborted[0]["data"]["cause"]
        .as_str()
        .unwrap()
        .contains("--shared-state-key"));
    let hit = get(&sealed, "/v1/items", &[]);
    assert_eq!((hit.cache.as_deref(), hit.body), (Some("HIT"), answer.body));
    assert_eq!(upstream.calls(), calls + 1);
    // Stored sealed: the body is not readable in Redis.
    assert!(!redis.cmd(&["GET", &keys[0]]).contains("/items call"));
    // Garbage of any other kind is a miss too, never an error.
    assert_eq!(redis.cmd(&["SET", &keys[0], "cg1garbage"]), "OK");
    assert_eq!(get(&sealed, "/v1/items", &[]).status, 200);
}

#[test]
fn a_body_beyond_the_buffer_is_served_in_full_and_not_stored() {
    let Some(redis) = Redis::start(
        "a_body_beyond_the_buffer_is_served_in_full_and_not_stored",
        Some(PASSWORD),
    ) else {
        return;
    };
    let upstream = Upstream::start();
    let gateway = start(
        &[deployment(vec![
            caching_route(&upstream, "huge", 60, json!({})),
            caching_route(&upstream, "items", 60, json!({})),
        ])],
        &gateway_file(&redis, 1000),
        &["--response-cache-buffer-mib", "1"],
    );
    for _ in 0..2 {
        let answer = get(&gateway, "/v1/huge", &[]);
        assert_eq!(
            (answer.status, answer.cache.as_deref()),
            (200, Some("MISS"))
        );
        assert_eq!(answer.body.len(), 3 * 1024 * 1024);
    }
    assert_eq!(upstream.calls(), 2);
    let aborted = wait_for_code(
        &gateway,
        "responseCache.backendResponseStorageAborted",
        Duration::from_secs(5),
    );
    assert!(
        aborted[0]["data"]["cause"]
            .as_str()
            .unwrap()
            .contains("--response-cache-buffer-mib"),
        "{aborted:?}"
    );
    // The bytes held for the huge body were given back: a small answer is stored.
    stored_miss(&gateway, "/v1/items", &[]);
    assert_eq!(
        get(&gateway, "/v1/items", &[]).cache.as_deref(),
        Some("HIT")
    );
    assert_eq!(redis.keys("claimgate:rc:*").len(), 1);
}

#[test]
fn response_header_transformations_apply_to_hits() {
    let Some(redis) = Redis::start(
        "response_header_transformations_apply_to_hits",
        Some(PASSWORD),
    ) else {
        return;
    };
    let upstream = Upstream::start();
    let mut route = caching_route(&upstream, "items", 60, json!({}));
    route["responsePolicies"]["headerTransformations"] = json!({
        "filterHeaders": {"type": "BLOCK", "items": [{"name": "X-Cache-Status"}]},
        "setHeaders": {"items": [{"name": "X-Served-By", "values": ["claimgate"]}]}});
    let gateway = start(&[deployment(vec![route])], &gateway_file(&redis, 1000), &[]);
    let first = get(&gateway, "/v1/items", &[]);
    wait_for_code(
        &gateway,
        "responseCache.backendResponseStoredInCache",
        Duration::from_secs(5),
    );
    let second = get(&gateway, "/v1/items", &[]);
    for answer in [&first, &second] {
        assert_eq!(answer.cache, None);
        assert_eq!(answer.headers["x-served-by"], "claimgate");
    }
    assert_eq!(second.body, first.body);
    assert_eq!(upstream.calls(), 1, "the second answer was a hit");
    // Stored before the transformations: the entry has the backend's headers only.
    let key = &redis.keys("claimgate:rc:*")[0];
    let stored = redis.cmd(&["GET", key]);
    assert!(stored.contains("x-upstream") && !stored.contains("x-served-by"));
}

#[test]
fn bad_gateway_files_and_missing_caches_are_refused_with_clear_messages() {
    let Some(redis) = Redis::start(
        "bad_gateway_files_and_missing_caches_are_refused_with_clear_messages",
        Some(PASSWORD),
    ) else {
        return;
    };
    let upstream = Upstream::start();
    let dir = tempfile::tempdir().unwrap();
    let files = write_deployments(
        dir.path(),
        &[deployment(vec![caching_route(
            &upstream,
            "items",
            60,
            json!({}),
        )])],
    );
    let deployment_file = files[0].to_str().unwrap();
    let secrets_file = dir.path().join("secrets.json");
    std::fs::write(&secrets_file, secrets().to_string()).unwrap();
    let secrets_file = secrets_file.to_str().unwrap();
    let write = |name: &str, value: &Value| {
        let path = dir.path().join(name);
        std::fs::write(&path, value.to_string()).unwrap();
        path.to_string_lossy().into_owned()
    };
    // No --gateway at all.
    let stderr = refused_by_serve(&["--deployment", deployment_file]);
    assert!(
        stderr.contains("response caching needs a cache server: give --gateway FILE"),
        "{stderr}"
    );
    assert!(
        stderr.contains("specification.routes[0] (/items) uses responseCacheLookup"),
        "{stderr}"
    );
    // A gateway without a cache.
    let none = write(
        "none.json",
        &json!({"responseCacheDetails": {"type": "NONE"}}),
    );
    let stderr = refused_by_serve(&["--deployment", deployment_file, "--gateway", &none]);
    assert!(
        stderr.contains("has none (responseCacheDetails of type EXTERNAL_RESP_CACHE)"),
        "{stderr}"
    );
    // Two servers.
    let mut two = gateway_file(&redis, 1000);
    two["responseCacheDetails"]["servers"] =
        json!([{"host": "127.0.0.1", "port": 1}, {"host": "127.0.0.1", "port": 2}]);
    let two = write("two.json", &two);
    let stderr = refused_by_serve(&[
        "--deployment",
        deployment_file,
        "--gateway",
        &two,
        "--secrets",
        secrets_file,
    ]);
    assert!(stderr.contains("is not valid"), "{stderr}");
    assert!(
        stderr.contains(
            "responseCacheDetails.servers: 2 servers given; OCI supports a single cache server"
        ),
        "{stderr}"
    );
    // An unknown secret, with and without --secrets; never a value in the message.
    let mut unknown = gateway_file(&redis, 1000);
    unknown["responseCacheDetails"]["authenticationSecretId"] =
        json!("ocid1.vaultsecret.oc1..nope");
    let unknown = write("unknown.json", &unknown);
    for extra in [vec!["--secrets", secrets_file], vec![]] {
        let mut args = vec!["--deployment", deployment_file, "--gateway", &unknown];
        args.extend(extra);
        let stderr = refused_by_serve(&args);
        assert!(
            stderr.contains("responseCacheDetails.authenticationSecretId: secret 'ocid1.vaultsecret.oc1..nope' is not in the secrets file (give it with --secrets FILE)"),
            "{stderr}"
        );
        assert!(!stderr.contains(PASSWORD));
    }
    // A negative time to live (the route's reader refuses it).
    let mut negative = deployment(vec![caching_route(&upstream, "items", -5, json!({}))]);
    negative["displayName"] = json!("negative");
    let negative = write("negative.json", &negative);
    let good = write("good.json", &gateway_file(&redis, 1000));
    let stderr = refused_by_serve(&[
        "--deployment",
        &negative,
        "--gateway",
        &good,
        "--secrets",
        secrets_file,
    ]);
    assert!(
        stderr.contains("timeToLiveInSeconds: -5 is below the minimum 1"),
        "{stderr}"
    );
}

#[test]
fn a_reload_that_drops_the_cache_is_rejected_and_the_old_set_keeps_serving() {
    let Some(redis) = Redis::start(
        "a_reload_that_drops_the_cache_is_rejected_and_the_old_set_keeps_serving",
        Some(PASSWORD),
    ) else {
        return;
    };
    let upstream = Upstream::start();
    let gateway = start(
        &[deployment(vec![caching_route(
            &upstream,
            "items",
            60,
            json!({}),
        )])],
        &gateway_file(&redis, 1000),
        &[],
    );
    stored_miss(&gateway, "/v1/items", &[]);
    std::fs::write(
        gateway.dir.path().join("gateway.json"),
        json!({"responseCacheDetails": {"type": "NONE"}}).to_string(),
    )
    .unwrap();
    let rejected = wait_for_code(
        &gateway,
        "configuration.reloadRejected",
        Duration::from_secs(10),
    );
    assert!(rejected[0]["data"]["message"]
        .as_str()
        .unwrap()
        .contains("response caching needs a cache server"));
    assert_eq!(
        get(&gateway, "/v1/items", &[]).cache.as_deref(),
        Some("HIT")
    );
}

#[test]
fn validate_checks_the_gateway_file_and_its_secret_when_given_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, value: &Value| {
        let path = dir.path().join(name);
        std::fs::write(&path, value.to_string()).unwrap();
        path.to_string_lossy().into_owned()
    };
    let mut gateway = json!({"endpointType": "PUBLIC", "responseCacheDetails": {
        "type": "EXTERNAL_RESP_CACHE", "servers": [{"host": "127.0.0.1", "port": 6379}],
        "authenticationSecretId": SECRET_ID, "authenticationSecretVersionNumber": 1,
        "isSSLEnabled": false}});
    let good = write("good.json", &gateway);
    let secrets = write("secrets.json", &secrets());
    // Without --secrets the secret is not looked up; with them it must resolve.
    for args in [
        vec!["validate", "--gateway", &good],
        vec!["validate", "--gateway", &good, "--secrets", &secrets],
    ] {
        let output = claimgate(&args);
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert_eq!(output.status.code(), Some(0), "{stdout}");
        assert!(
            stdout.contains("endpointType is not used by claimgate"),
            "{stdout}"
        );
    }
    gateway["responseCacheDetails"]["authenticationSecretVersionNumber"] = json!(7);
    gateway["responseCacheDetails"]["servers"][0]["port"] = json!(0);
    let bad = write("bad.json", &gateway);
    let output = claimgate(&["validate", "--gateway", &bad, "--secrets", &secrets]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(2), "{stdout}");
    assert!(
        stdout.contains("responseCacheDetails.servers[0].port: 0 is below the minimum 1"),
        "{stdout}"
    );
    assert!(
        stdout.contains("has no version 7 in the secrets file (it has 1)"),
        "{stdout}"
    );
    assert!(!stdout.contains(PASSWORD));
}

/// A password-protected redis-server speaking TLS only, its certificate (for `localhost`) from
/// `ca`; `None` (skipped) without redis-server.
fn tls_redis(test: &str, ca: &Ca, dir: &std::path::Path) -> Option<(Running, u16)> {
    // Redis::start says how the machine lacks redis-server (and skips); this one is not used.
    drop(Redis::start(test, Some(PASSWORD))?);
    let (cert, key) = leaf(ca, None, &["localhost"], false, None).pair();
    let (cert_path, key_path) = (dir.join("redis.pem"), dir.join("redis.key"));
    std::fs::write(&cert_path, cert).unwrap();
    std::fs::write(&key_path, key).unwrap();
    let port = free_port();
    let child = std::process::Command::new("redis-server")
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
        .args(["--requirepass", PASSWORD, "--dir", dir.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let running = Running(child);
    wait_for(&format!("127.0.0.1:{port}"));
    Some((running, port))
}

#[test]
fn a_tls_cache_server_is_verified_against_the_system_roots_plus_ca_unless_told_not_to() {
    const TEST: &str = "a_tls_cache_server_is_verified_against_the_system_roots_plus_ca";
    let dir = tempfile::tempdir().unwrap();
    let ca = ca("test cache CA");
    let Some((_redis, port)) = tls_redis(TEST, &ca, dir.path()) else {
        return;
    };
    let upstream = Upstream::start();
    let routes = vec![caching_route(&upstream, "items", 60, json!({}))];
    let tls_gateway = |verify_disabled: bool| {
        json!({"responseCacheDetails": {"type": "EXTERNAL_RESP_CACHE",
            "servers": [{"host": "localhost", "port": port}],
            "authenticationSecretId": SECRET_ID, "authenticationSecretVersionNumber": 1,
            "isSslEnabled": true, "isSslVerifyDisabled": verify_disabled}})
    };
    // The server's CA is not among the system roots: refused, BYPASS, and served anyway.
    let untrusted = start_unconnected(&[deployment(routes.clone())], &tls_gateway(false), &[]);
    let unavailable = wait_for_code(
        &untrusted,
        "sharedState.unavailable",
        Duration::from_secs(10),
    );
    let cause = unavailable[0]["data"]["cause"]
        .as_str()
        .unwrap()
        .to_lowercase();
    assert!(
        cause.contains("certificate") || cause.contains("unknownissuer"),
        "{cause}"
    );
    let answer = get(&untrusted, "/v1/items", &[]);
    assert_eq!(
        (answer.status, answer.cache.as_deref()),
        (200, Some("BYPASS"))
    );
    drop(untrusted);
    // With --ca, as every other outbound TLS connection: used.
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, &ca.pem).unwrap();
    let trusted = start(
        &[deployment(routes.clone())],
        &tls_gateway(false),
        &["--ca", ca_file.to_str().unwrap()],
    );
    stored_miss(&trusted, "/v1/items", &[]);
    assert_eq!(
        get(&trusted, "/v1/items", &[]).cache.as_deref(),
        Some("HIT")
    );
    drop(trusted);
    // isSslVerifyDisabled: any certificate, and serve says so at start.
    let unverified = start(&[deployment(routes)], &tls_gateway(true), &[]);
    assert_eq!(
        get(&unverified, "/v1/items", &[]).cache.as_deref(),
        Some("HIT")
    );
    let stderr = std::fs::read_to_string(unverified.dir.path().join("stderr.log")).unwrap();
    assert!(
        stderr.contains(
            "the response cache server's certificate is not verified (isSslVerifyDisabled)"
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains("response cache: rediss://localhost:"),
        "{stderr}"
    );
}

#[test]
fn what_an_authorizer_function_reads_makes_a_request_private() {
    let Some(redis) = Redis::start(
        "what_an_authorizer_function_reads_makes_a_request_private",
        Some(PASSWORD),
    ) else {
        return;
    };
    let upstream = Upstream::start();
    // The authorizer: every caller is active (the point is what the cache does with them).
    let rt = runtime();
    let function = serve_http(&rt, |_request| async {
        hyper::Response::builder()
            .header("content-type", "application/json")
            .body(http_body_util::Full::new(bytes::Bytes::from(
                json!({"active": true, "principal": "p"}).to_string(),
            )))
            .unwrap()
    });
    const FUNCTION: &str = "ocid1.fnfunc.oc1..cacheauth";
    let mut shared = caching_route(&upstream, "shared", 60, json!({}));
    shared["requestPolicies"]["authorization"] = json!({"type": "ANONYMOUS"});
    let mut deployment = deployment(vec![
        shared,
        caching_route(
            &upstream,
            "mine",
            60,
            json!({"isPrivateCachingEnabled": true,
            "cacheKeyAdditions": ["request.headers[X-Api-Key]"]}),
        ),
    ]);
    deployment["specification"]["requestPolicies"] = json!({"authentication": {
        "type": "CUSTOM_AUTHENTICATION", "functionId": FUNCTION, "isAnonymousAccessAllowed": true,
        "parameters": {"key": "request.headers[X-Api-Key]", "q": "request.query[k]"}}});
    let functions = tempfile::tempdir().unwrap();
    let functions_file = functions.path().join("functions.json");
    let mut map = serde_json::Map::new();
    map.insert(FUNCTION.to_owned(), json!(format!("http://{function}/")));
    std::fs::write(&functions_file, Value::Object(map).to_string()).unwrap();
    let gateway = start(
        &[deployment],
        &gateway_file(&redis, 1000),
        &["--functions", functions_file.to_str().unwrap()],
    );
    for (path, headers) in [
        ("/v1/shared", vec![("x-api-key", "alice-key")]),
        ("/v1/shared?k=alice-key", vec![]),
    ] {
        let answer = get(&gateway, path, &headers);
        assert_eq!(
            (answer.status, answer.cache.as_deref()),
            (200, Some("BYPASS")),
            "{path}"
        );
    }
    // Anonymous (no parameter present): cached as usual.
    stored_miss(&gateway, "/v1/shared", &[]);
    // Private caching, keyed by the parameter: callers kept apart.
    let alice = stored_miss(&gateway, "/v1/mine", &[("x-api-key", "alice-key")]);
    let bob = stored_miss(&gateway, "/v1/mine", &[("x-api-key", "bob-key")]);
    assert_ne!(alice.body, bob.body);
    let alice_again = get(&gateway, "/v1/mine", &[("x-api-key", "alice-key")]);
    assert_eq!(
        (alice_again.cache.as_deref(), alice_again.body),
        (Some("HIT"), alice.body)
    );
    let bob_again = get(&gateway, "/v1/mine", &[("x-api-key", "bob-key")]);
    assert_eq!(
        (bob_again.cache.as_deref(), bob_again.body),
        (Some("HIT"), bob.body)
    );
}

#[test]
fn proxy_credentials_make_a_request_private() {
    let Some(redis) = Redis::start("proxy_credentials_make_a_request_private", Some(PASSWORD))
    else {
        return;
    };
    let upstream = Upstream::start();
    let gateway = start(
        &[deployment(vec![caching_route(
            &upstream,
            "items",
            60,
            json!({}),
        )])],
        &gateway_file(&redis, 1000),
        &[],
    );
    let answer = get(
        &gateway,
        "/v1/items",
        &[("proxy-authorization", "Basic dTpw")],
    );
    assert_eq!(
        (answer.status, answer.cache.as_deref()),
        (200, Some("BYPASS"))
    );
    assert!(redis.keys("claimgate:rc:*").is_empty());
    // The same request without them is cached.
    let answer = get(&gateway, "/v1/items", &[]);
    assert_eq!(
        (answer.status, answer.cache.as_deref()),
        (200, Some("MISS"))
    );
}

/// The execution-log records of `gateway` with `code`, waiting up to `within` for one.
fn wait_for_code(gateway: &Gateway, code: &str, within: Duration) -> Vec<Value> {
    support::records_with_code(&gateway.execution_log, code, within)
}

/// The codes of one request's `responseCache.*` records, waiting for `at_least` of them.
fn cache_codes(gateway: &Gateway, request_id: &str, at_least: usize) -> Vec<String> {
    support::codes_with_prefix(
        &gateway.execution_log,
        request_id,
        "responseCache.",
        at_least,
    )
}
