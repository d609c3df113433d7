//! An attacker's review of the response cache (SPEC.md "Response caching"): a real
//! `redis-server`, a raw HTTP/1.1 backend that can misbehave (cut bodies, `Connection`-named
//! headers, obsolete cookies) and the gateway between them. Each test names what it attacks.

use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod support;

use support::cluster::Redis;
use support::*;

const PASSWORD: &str = "review-pass-1";
const SECRET_ID: &str = "ocid1.vaultsecret.oc1..review";

/// A raw backend: counts requests and answers by path.
/// - `/cut`: declares 100 bytes, sends 50, closes.
/// - `/cut-chunked`: one chunk, then closes without the last chunk.
/// - `/close-delimited`: neither a length nor chunks: the body ends when the connection does.
/// - `/hop`: `Connection: close, x-hop-secret` with an `X-Hop-Secret` header.
/// - `/cookie2`: `Set-Cookie2`.
/// - `/slow`: 400 of 700 kB, then the rest 3 s later; `/big`: 700 kB at once.
/// - anything else: the request target it received, `call <n>`, and the request's body if any.
struct Backend {
    addr: std::net::SocketAddr,
    calls: Arc<AtomicUsize>,
}

impl Backend {
    fn start() -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let calls = Arc::new(AtomicUsize::new(0));
        let counter = calls.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { break };
                let counter = counter.clone();
                std::thread::spawn(move || {
                    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    let mut line = String::new();
                    if reader.read_line(&mut line).is_err() {
                        return;
                    }
                    let mut header = String::new();
                    let mut length = 0;
                    while reader.read_line(&mut header).is_ok_and(|n| n > 2) {
                        if let Some((name, value)) = header.split_once(':') {
                            if name.eq_ignore_ascii_case("content-length") {
                                length = value.trim().parse().unwrap_or(0);
                            }
                        }
                        header.clear();
                    }
                    let mut request_body = vec![0u8; length];
                    let _ = std::io::Read::read_exact(&mut reader, &mut request_body);
                    let request_body = String::from_utf8_lossy(&request_body).into_owned();
                    let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
                    let target = line.split(' ').nth(1).unwrap_or("").to_owned();
                    let path = target.split('?').next().unwrap_or("").to_owned();
                    if path == "/slow" {
                        // 400 kB of 700 kB, then a pause long enough for the client to leave.
                        let _ = stream.write_all(
                            format!(
                                "HTTP/1.1 200 OK\r\ncontent-length: 700000\r\n\r\n{}",
                                "s".repeat(400_000)
                            )
                            .as_bytes(),
                        );
                        std::thread::sleep(Duration::from_secs(3));
                        let _ = stream.write_all("s".repeat(300_000).as_bytes());
                        return;
                    }
                    let answer = match path.as_str() {
                        "/cut" => format!(
                            "HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n{}",
                            "c".repeat(50)
                        ),
                        "/cut-chunked" => {
                            "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n"
                                .to_owned()
                        }
                        "/hop" => {
                            let body = format!("hop call {n}");
                            format!(
                                "HTTP/1.1 200 OK\r\nconnection: close, X-Hop-Secret\r\nx-hop-secret: internal\r\ncontent-length: {}\r\n\r\n{body}",
                                body.len()
                            )
                        }
                        "/close-delimited" => {
                            "HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nwhatever was sent before the cut"
                                .to_owned()
                        }
                        "/big" => format!(
                            "HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 700000\r\n\r\n{}",
                            "b".repeat(700_000)
                        ),
                        "/cookie2" => {
                            let body = format!("cookie2 call {n}");
                            format!(
                                "HTTP/1.1 200 OK\r\nset-cookie2: session=abc; Version=1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
                                body.len()
                            )
                        }
                        _ => {
                            let body = if request_body.is_empty() {
                                format!("{target} call {n}")
                            } else {
                                format!("{target} call {n} body={request_body}")
                            };
                            format!(
                                "HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
                                body.len()
                            )
                        }
                    };
                    let _ = stream.write_all(answer.as_bytes());
                    let _ = stream.flush();
                    // Closing cuts whatever was declared and not sent.
                });
            }
        });
        Self { addr, calls }
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

fn route(backend: &Backend, name: &str, lookup: Value) -> Value {
    let mut policy = json!({"type": "SIMPLE_LOOKUP_POLICY"});
    for (k, v) in lookup.as_object().unwrap() {
        policy[k] = v.clone();
    }
    json!({
        "path": format!("/{name}"), "methods": ["GET", "HEAD"],
        "requestPolicies": {"responseCacheLookup": policy},
        "responsePolicies": {"responseCacheStore": {"type": "FIXED_TTL_STORE_POLICY", "timeToLiveInSeconds": 60}},
        "backend": {"type": "HTTP_BACKEND", "url": format!("http://{}/{name}", backend.addr)}
    })
}

const DEPLOYMENT_ID: &str = "ocid1.apideployment.oc1..review";

fn start(redis: &Redis, routes: Vec<Value>) -> Gateway {
    let deployment = json!({"id": DEPLOYMENT_ID, "displayName": "review",
        "pathPrefix": "/v1", "specification": {"routes": routes}});
    start_with(redis, deployment, &[])
}

/// The gateway serving `deployment` with the cache on `redis`, plus `extra` arguments.
fn start_with(redis: &Redis, deployment: Value, extra: &[String]) -> Gateway {
    let gateway = json!({"compartmentId": "ocid1.compartment.oc1..x", "displayName": "gw",
        "responseCacheDetails": {"type": "EXTERNAL_RESP_CACHE",
            "servers": [{"host": "127.0.0.1", "port": redis.port()}],
            "authenticationSecretId": SECRET_ID, "authenticationSecretVersionNumber": 1,
            "connectTimeoutInMs": 500, "readTimeoutInMs": 1000, "sendTimeoutInMs": 500}});
    let mut secrets = serde_json::Map::new();
    secrets.insert(
        SECRET_ID.to_owned(),
        json!({"1": json!({"password": PASSWORD}).to_string()}),
    );
    let dir = tempfile::tempdir().unwrap();
    let gateway_path = dir.path().join("gateway.json");
    std::fs::write(&gateway_path, gateway.to_string()).unwrap();
    let secrets_path = dir.path().join("secrets.json");
    std::fs::write(&secrets_path, Value::Object(secrets).to_string()).unwrap();
    let files = write_deployments(dir.path(), &[deployment]);
    let args = [
        "--gateway",
        &gateway_path.to_string_lossy(),
        "--secrets",
        &secrets_path.to_string_lossy(),
    ]
    .map(str::to_owned);
    let args: Vec<&str> = args.iter().chain(extra).map(String::as_str).collect();
    let gateway = start_gateway_on(dir, &files, true, &args);
    wait_for_code(&gateway, "sharedState.connected");
    gateway
}

#[derive(Debug)]
struct Answer {
    status: u16,
    cache: Option<String>,
    body: String,
    request_id: String,
    headers: HashMap<String, String>,
}

fn get(gateway: &Gateway, path: &str) -> Answer {
    get_with(gateway, path, &[])
}

fn get_with(gateway: &Gateway, path: &str, headers: &[(&str, &str)]) -> Answer {
    let mut request = client().get(format!("{}{path}", gateway.base));
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
        body: response.text().unwrap_or_default(),
        headers,
    }
}

/// A miss whose answer was stored (or, with `stored` false, whose storing was aborted).
fn settled_miss(gateway: &Gateway, path: &str, stored: bool) -> Answer {
    let answer = get(gateway, path);
    assert_eq!(answer.cache.as_deref(), Some("MISS"), "{path}: {answer:?}");
    let codes = cache_codes(gateway, &answer.request_id, 2);
    let wanted = if stored {
        "responseCache.backendResponseStoredInCache"
    } else {
        "responseCache.backendResponseStorageAborted"
    };
    assert!(codes.iter().any(|c| c == wanted), "{path}: {codes:?}");
    answer
}

/// Key additions from the query see what the backend sees: a parameter whose name is
/// percent-encoded, and every value of a repeated one. Before, the key read the first value of
/// the name as written only, so `?%6Cang=fr` was stored under "no lang" and `?lang=en&lang=fr`
/// under `lang=en`, and a backend that decodes names or reads the last value poisoned the
/// entry other clients get.
#[test]
fn query_key_additions_cannot_be_cloaked_by_encoding_or_repetition() {
    let Some(redis) = Redis::start(
        "query_key_additions_cannot_be_cloaked_by_encoding_or_repetition",
        Some(PASSWORD),
    ) else {
        return;
    };
    let backend = Backend::start();
    let gateway = start(
        &redis,
        vec![route(
            &backend,
            "page",
            json!({"cacheKeyAdditions": ["request.query[lang]"]}),
        )],
    );
    // The attacker's requests are stored under keys of their own...
    settled_miss(&gateway, "/v1/page?%6Cang=fr", true);
    settled_miss(&gateway, "/v1/page?lang=en&lang=fr", true);
    // ...so the victims' plain requests are not answered with them.
    let plain = get(&gateway, "/v1/page");
    assert_eq!(plain.cache.as_deref(), Some("MISS"), "{plain:?}");
    let en = get(&gateway, "/v1/page?lang=en");
    assert_eq!(en.cache.as_deref(), Some("MISS"), "{en:?}");
    assert_eq!(en.body, "/page?lang=en call 4");
    // The same request again is a hit: the key is stable.
    cache_codes(&gateway, &en.request_id, 2);
    let again = get(&gateway, "/v1/page?lang=en");
    assert_eq!(
        (again.cache.as_deref(), again.body.as_str()),
        (Some("HIT"), "/page?lang=en call 4")
    );
    assert_eq!(backend.calls(), 4);
}

/// Header key additions keep repeated values apart from one value that contains the separator:
/// `Accept-Language: en, fr` in one line is not two lines `en` and `fr` (a backend reading the
/// first line answers `en` for the second).
#[test]
fn header_key_additions_keep_repeated_lines_apart_from_one_list() {
    let Some(redis) = Redis::start(
        "header_key_additions_keep_repeated_lines_apart_from_one_list",
        Some(PASSWORD),
    ) else {
        return;
    };
    let backend = Backend::start();
    let gateway = start(
        &redis,
        vec![route(
            &backend,
            "page",
            json!({"cacheKeyAdditions": ["request.headers[X-Variant]"]}),
        )],
    );
    let two_lines = client()
        .get(format!("{}/v1/page", gateway.base))
        .header("x-variant", "en")
        .header("x-variant", "fr")
        .send()
        .unwrap();
    assert_eq!(two_lines.headers()["x-cache-status"], "MISS");
    let id = two_lines.headers()["opc-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let _ = two_lines.text();
    assert!(cache_codes(&gateway, &id, 2)
        .contains(&"responseCache.backendResponseStoredInCache".to_owned()));
    let one_line = client()
        .get(format!("{}/v1/page", gateway.base))
        .header("x-variant", "en, fr")
        .send()
        .unwrap();
    assert_eq!(one_line.headers()["x-cache-status"], "MISS");
    assert_eq!(backend.calls(), 2);
}

/// A body the backend cut short (declared length, or chunked without its last chunk) is never
/// stored as if complete, nor is one whose end only the connection's close marks.
#[test]
fn a_body_cut_by_the_backend_is_never_stored() {
    let Some(redis) = Redis::start("a_body_cut_by_the_backend_is_never_stored", Some(PASSWORD))
    else {
        return;
    };
    let backend = Backend::start();
    let gateway = start(
        &redis,
        vec![
            route(&backend, "cut", json!({})),
            route(&backend, "cut-chunked", json!({})),
            route(&backend, "close-delimited", json!({})),
        ],
    );
    for path in ["/v1/cut", "/v1/cut-chunked"] {
        // The client sees a broken body (reqwest reports it); the gateway stores nothing.
        let response = client()
            .get(format!("{}{path}", gateway.base))
            .send()
            .unwrap();
        assert_eq!(response.headers()["x-cache-status"], "MISS");
        let id = response.headers()["opc-request-id"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(response.bytes().is_err(), "{path}: the body was cut");
        let codes = cache_codes(&gateway, &id, 2);
        assert_eq!(
            codes,
            [
                "responseCache.lookupResultNotFound",
                "responseCache.backendResponseStorageAborted"
            ],
            "{path}"
        );
    }
    assert!(redis.keys("claimgate:rc:*").is_empty());
    // A body that ends when the connection closes cannot be told from one cut short: served
    // in full, never stored.
    let closed = settled_miss(&gateway, "/v1/close-delimited", false);
    assert_eq!(closed.body, "whatever was sent before the cut");
    let causes: Vec<String> = records(&gateway.execution_log, &closed.request_id, 2)
        .iter()
        .filter_map(|r| r["data"]["cause"].as_str().map(str::to_owned))
        .collect();
    assert!(
        causes.iter().any(|c| c.contains("connection closes")),
        "{causes:?}"
    );
    assert!(redis.keys("claimgate:rc:*").is_empty());
    let again = client()
        .get(format!("{}/v1/cut", gateway.base))
        .send()
        .unwrap();
    assert_eq!(again.headers()["x-cache-status"], "MISS");
    assert_eq!(backend.calls(), 4);
}

/// Headers the backend's `Connection` names are hop-by-hop (RFC 9110 §7.6.1): never relayed to
/// the client, so never stored and replayed either.
#[test]
fn headers_named_by_the_backends_connection_are_neither_relayed_nor_stored() {
    let Some(redis) = Redis::start(
        "headers_named_by_the_backends_connection_are_neither_relayed_nor_stored",
        Some(PASSWORD),
    ) else {
        return;
    };
    let backend = Backend::start();
    let gateway = start(&redis, vec![route(&backend, "hop", json!({}))]);
    let miss = settled_miss(&gateway, "/v1/hop", true);
    assert_eq!(miss.status, 200);
    assert!(
        !miss.headers.contains_key("x-hop-secret"),
        "{:?}",
        miss.headers
    );
    let hit = get(&gateway, "/v1/hop");
    assert_eq!(hit.cache.as_deref(), Some("HIT"));
    assert!(
        !hit.headers.contains_key("x-hop-secret"),
        "{:?}",
        hit.headers
    );
    assert_eq!(hit.body, "hop call 1");
}

/// `Set-Cookie2` (RFC 2965, obsolete but still a cookie) keeps an answer out of the cache like
/// `Set-Cookie` does.
#[test]
fn an_answer_setting_an_obsolete_cookie_is_not_stored() {
    let Some(redis) = Redis::start(
        "an_answer_setting_an_obsolete_cookie_is_not_stored",
        Some(PASSWORD),
    ) else {
        return;
    };
    let backend = Backend::start();
    let gateway = start(&redis, vec![route(&backend, "cookie2", json!({}))]);
    let first = settled_miss(&gateway, "/v1/cookie2", false);
    assert_eq!(first.body, "cookie2 call 1");
    let second = get(&gateway, "/v1/cookie2");
    assert_eq!(second.cache.as_deref(), Some("MISS"));
    assert_eq!(second.body, "cookie2 call 2");
    assert!(redis.keys("claimgate:rc:*").is_empty());
}

/// A value in the cache server far larger than anything the gateway stores (whoever can write
/// to Redis can put one there) is not read in full on every request: at most what a stored
/// answer can be is read, the entry is ignored, and the next answer replaces it.
#[test]
fn a_huge_value_in_the_cache_server_is_not_read_in_full() {
    let Some(redis) = Redis::start(
        "a_huge_value_in_the_cache_server_is_not_read_in_full",
        Some(PASSWORD),
    ) else {
        return;
    };
    let backend = Backend::start();
    let gateway = start(&redis, vec![route(&backend, "page", json!({}))]);
    settled_miss(&gateway, "/v1/page", true);
    let keys = redis.keys("claimgate:rc:*");
    assert_eq!(keys.len(), 1);
    // 200 MB of zeros at the entry's key.
    assert_eq!(
        redis.cmd(&["SETRANGE", &keys[0], "200000000", "x"]),
        "200000001"
    );
    let answer = get(&gateway, "/v1/page");
    assert_eq!(
        (answer.status, answer.cache.as_deref()),
        (200, Some("MISS")),
        "{answer:?}"
    );
    let causes: Vec<String> = records(&gateway.execution_log, &answer.request_id, 1)
        .iter()
        .filter(|r| r["data"]["code"] == "responseCache.lookupAborted")
        .map(|r| r["data"]["cause"].as_str().unwrap_or("").to_owned())
        .collect();
    assert_eq!(causes.len(), 1, "{causes:?}");
    assert!(causes[0].contains("larger than"), "{causes:?}");
    // The answer replaced the oversized entry.
    cache_codes(&gateway, &answer.request_id, 3);
    let hit = get(&gateway, "/v1/page");
    assert_eq!(
        (hit.cache.as_deref(), hit.body.as_str()),
        (Some("HIT"), "/page call 2")
    );
}

/// A cached answer is never a way around the phases before the lookup: with private caching on
/// (so the usage plan's token does not bypass the cache), a request failing validation is 400,
/// an unknown client 403, and once the quota is spent a request whose answer is cached is 429;
/// every hit counts toward the quota like the miss did.
#[test]
fn a_hit_still_passes_usage_plans_and_validation_and_counts_toward_the_quota() {
    let Some(redis) = Redis::start(
        "a_hit_still_passes_usage_plans_and_validation_and_counts_toward_the_quota",
        Some(PASSWORD),
    ) else {
        return;
    };
    let backend = Backend::start();
    let mut cached = route(
        &backend,
        "page",
        json!({"isPrivateCachingEnabled": true, "cacheKeyAdditions": ["request.headers[X-Client]"]}),
    );
    cached["requestPolicies"]["headerValidations"] = json!({"validationMode": "ENFORCING",
        "headers": [{"name": "X-Trace", "required": true}]});
    let deployment = json!({"id": DEPLOYMENT_ID, "displayName": "review", "pathPrefix": "/v1",
        "specification": {
            "requestPolicies": {"usagePlans": {"tokenLocations": ["request.headers[X-Client]"]}},
            "routes": [cached]}});
    let dir = tempfile::tempdir().unwrap();
    let plans = dir.path().join("plans.json");
    std::fs::write(
        &plans,
        json!({"id": "ocid1.usageplan.p", "displayName": "p", "lifecycleState": "ACTIVE",
            "entitlements": [{"name": "e",
                "quota": {"value": 4, "unit": "DAY", "resetPolicy": "CALENDAR", "operationOnBreach": "REJECT"},
                "targets": [{"deploymentId": DEPLOYMENT_ID}]}]})
        .to_string(),
    )
    .unwrap();
    let subscribers = dir.path().join("subscribers.json");
    std::fs::write(
        &subscribers,
        json!({"id": "ocid1.subscriber.s", "displayName": "s", "lifecycleState": "ACTIVE",
            "clients": [{"name": "c", "token": "client-token-k"}], "usagePlans": ["ocid1.usageplan.p"]})
        .to_string(),
    )
    .unwrap();
    let gateway = start_with(
        &redis,
        deployment,
        &[
            "--usage-plans".into(),
            plans.to_string_lossy().into_owned(),
            "--subscribers".into(),
            subscribers.to_string_lossy().into_owned(),
        ],
    );
    let good = [("x-client", "client-token-k"), ("x-trace", "1")];
    // 1 of the quota: a miss, stored.
    let miss = get_with(&gateway, "/v1/page", &good);
    assert_eq!((miss.status, miss.cache.as_deref()), (200, Some("MISS")));
    cache_codes(&gateway, &miss.request_id, 2);
    // 2: a hit.
    let hit = get_with(&gateway, "/v1/page", &good);
    assert_eq!((hit.status, hit.cache.as_deref()), (200, Some("HIT")));
    assert_eq!(hit.body, miss.body);
    // 3: the validation refuses it before the lookup (a 4xx counts toward the quota).
    let invalid = get_with(&gateway, "/v1/page", &[("x-client", "client-token-k")]);
    assert_eq!((invalid.status, invalid.cache), (400, None));
    // An unknown client: refused by the usage plan, uncounted, never looked up.
    let stranger = get_with(
        &gateway,
        "/v1/page",
        &[("x-client", "nope"), ("x-trace", "1")],
    );
    assert_eq!((stranger.status, stranger.cache), (403, None));
    // 4: another hit, then the quota is spent: 429 although the answer is cached.
    let hit = get_with(&gateway, "/v1/page", &good);
    assert_eq!((hit.status, hit.cache.as_deref()), (200, Some("HIT")));
    let spent = get_with(&gateway, "/v1/page", &good);
    assert_eq!(
        (spent.status, spent.cache.as_deref()),
        (429, None),
        "{spent:?}"
    );
    assert_eq!(backend.calls(), 1);
}

/// Clients that leave in the middle of a body being stored give its bytes back: after three
/// of them held 400 kB each (more than the 1 MiB buffer together), a 700 kB answer is stored.
#[test]
fn clients_leaving_mid_body_give_the_buffer_back() {
    let Some(redis) = Redis::start(
        "clients_leaving_mid_body_give_the_buffer_back",
        Some(PASSWORD),
    ) else {
        return;
    };
    let backend = Backend::start();
    let deployment = json!({"id": DEPLOYMENT_ID, "displayName": "review", "pathPrefix": "/v1",
        "specification": {"routes": [route(&backend, "slow", json!({})), route(&backend, "big", json!({}))]}});
    let gateway = start_with(
        &redis,
        deployment,
        &["--response-cache-buffer-mib".into(), "1".into()],
    );
    let address = gateway.base.trim_start_matches("http://").to_owned();
    for _ in 0..3 {
        let mut stream = std::net::TcpStream::connect(&address).unwrap();
        stream
            .write_all(b"GET /v1/slow HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut got = 0;
        let mut buffer = [0u8; 65536];
        while got < 300_000 {
            let n = std::io::Read::read(&mut stream, &mut buffer).unwrap();
            assert!(n > 0, "the gateway closed after {got} bytes");
            got += n;
        }
        drop(stream);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let left = loop {
        let left: Vec<Value> =
            wait_for_code(&gateway, "responseCache.backendResponseStorageAborted")
                .into_iter()
                .filter(|r| {
                    r["data"]["cause"]
                        .as_str()
                        .unwrap_or("")
                        .contains("went away")
                })
                .collect();
        if left.len() >= 3 || Instant::now() > deadline {
            break left;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(left.len(), 3, "{left:?}");
    let big = settled_miss(&gateway, "/v1/big", true);
    assert_eq!(big.body.len(), 700_000);
    assert_eq!(get(&gateway, "/v1/big").cache.as_deref(), Some("HIT"));
}

/// RFC 6750's `access_token` query parameter is a credential a backend may read whatever the
/// deployment says (as it may read `Authorization`): a request carrying it, under any spelling
/// a backend decodes to it, is private. Before, an anonymous route stored Alice's answer to
/// `?access_token=alice` and gave it to everyone asking for the path.
#[test]
fn an_access_token_parameter_makes_a_request_private() {
    let Some(redis) = Redis::start(
        "an_access_token_parameter_makes_a_request_private",
        Some(PASSWORD),
    ) else {
        return;
    };
    let backend = Backend::start();
    let gateway = start(&redis, vec![route(&backend, "me", json!({}))]);
    for path in [
        "/v1/me?access_token=alice-secret",
        "/v1/me?x=1&ACCESS%5Ftoken=alice-secret",
    ] {
        let answer = get(&gateway, path);
        assert_eq!(
            (answer.status, answer.cache.as_deref()),
            (200, Some("BYPASS")),
            "{path}"
        );
    }
    let anyone = get(&gateway, "/v1/me");
    assert_eq!(anyone.cache.as_deref(), Some("MISS"), "{anyone:?}");
    assert_eq!(anyone.body, "/me call 3");
}

/// A `GET` with a body (search APIs read one) is neither looked up nor stored: the key does not
/// include the body, so one client's answer to its body would be every other client's.
#[test]
fn a_request_with_a_body_is_neither_looked_up_nor_stored() {
    let Some(redis) = Redis::start(
        "a_request_with_a_body_is_neither_looked_up_nor_stored",
        Some(PASSWORD),
    ) else {
        return;
    };
    let backend = Backend::start();
    let gateway = start(&redis, vec![route(&backend, "search", json!({}))]);
    let search = |body: &'static str| {
        let response = client()
            .get(format!("{}/v1/search", gateway.base))
            .body(body)
            .send()
            .unwrap();
        let cache = response.headers()["x-cache-status"]
            .to_str()
            .unwrap()
            .to_owned();
        (cache, response.text().unwrap())
    };
    let first = search("user=alice");
    assert_eq!(
        first,
        (
            "BYPASS".to_owned(),
            "/search call 1 body=user=alice".to_owned()
        )
    );
    std::thread::sleep(Duration::from_millis(300));
    let second = search("user=bob");
    assert_eq!(
        second,
        (
            "BYPASS".to_owned(),
            "/search call 2 body=user=bob".to_owned()
        )
    );
    assert!(redis.keys("claimgate:rc:*").is_empty());
    // Without a body the path caches as usual.
    settled_miss(&gateway, "/v1/search", true);
    assert_eq!(get(&gateway, "/v1/search").cache.as_deref(), Some("HIT"));
}

/// A Functions backend's answer is stored like an HTTP backend's, and a function that sets a
/// cookie (`Fn-Http-H-Set-Cookie`, which OCI passes on) keeps its answer out of the cache.
#[test]
fn a_functions_backend_setting_a_cookie_is_not_stored() {
    let Some(redis) = Redis::start(
        "a_functions_backend_setting_a_cookie_is_not_stored",
        Some(PASSWORD),
    ) else {
        return;
    };
    let rt = runtime();
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let function = serve_http(&rt, move |request| {
        let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
        async move {
            let url = request
                .headers()
                .get("fn-http-request-url")
                .map(|v| v.to_str().unwrap_or("?").to_owned())
                .unwrap_or_default();
            let mut answer = hyper::Response::builder().header("fn-http-status", "200");
            if url.starts_with("/v1/cookie") {
                answer = answer.header("fn-http-h-set-cookie", "session=for-one-client");
            }
            answer
                .body(http_body_util::Full::new(bytes::Bytes::from(format!(
                    "{url} call {n}"
                ))))
                .unwrap()
        }
    });
    let functions_route = |name: &str| {
        json!({
            "path": format!("/{name}"), "methods": ["GET"],
            "requestPolicies": {"responseCacheLookup": {"type": "SIMPLE_LOOKUP_POLICY"}},
            "responsePolicies": {"responseCacheStore": {"type": "FIXED_TTL_STORE_POLICY", "timeToLiveInSeconds": 60}},
            "backend": {"type": "ORACLE_FUNCTIONS_BACKEND", "functionId": "ocid1.fnfunc.oc1..review"}
        })
    };
    let deployment = json!({"id": DEPLOYMENT_ID, "displayName": "review", "pathPrefix": "/v1",
        "specification": {"routes": [functions_route("cookie"), functions_route("plain")]}});
    let dir = tempfile::tempdir().unwrap();
    let functions = dir.path().join("functions.json");
    std::fs::write(
        &functions,
        json!({"ocid1.fnfunc.oc1..review": format!("http://{function}/invoke")}).to_string(),
    )
    .unwrap();
    let gateway = start_with(
        &redis,
        deployment,
        &[
            "--functions".into(),
            functions.to_string_lossy().into_owned(),
        ],
    );
    let first = settled_miss(&gateway, "/v1/cookie", false);
    assert_eq!(first.headers["set-cookie"], "session=for-one-client");
    let second = get(&gateway, "/v1/cookie");
    assert_eq!(
        (second.cache.as_deref(), second.body.as_str()),
        (Some("MISS"), "/v1/cookie call 2")
    );
    settled_miss(&gateway, "/v1/plain", true);
    let hit = get(&gateway, "/v1/plain");
    assert_eq!(
        (hit.cache.as_deref(), hit.body.as_str()),
        (Some("HIT"), "/v1/plain call 3")
    );
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

/// The execution-log records of `gateway` with `code`, waiting up to 10 s for one.
fn wait_for_code(gateway: &Gateway, code: &str) -> Vec<Value> {
    support::records_with_code(&gateway.execution_log, code, Duration::from_secs(10))
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
