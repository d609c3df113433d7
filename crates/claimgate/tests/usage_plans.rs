//! `serve --usage-plans --subscribers` end to end (SPEC "Usage plans and subscribers"): the
//! 403 and 429 outcomes with OCI's record fields, what counts toward a quota (4xx yes, 5xx and
//! authentication failures no), exactness under concurrency, counters shared by a subscriber's
//! clients and by replicas on Redis, `Retry-After`, `request.usage_plan[id]`, reloads, and the
//! client token kept out of logs and metrics. Fixtures are OCI's camelCase GET shapes.

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

mod support;

use support::cluster::Redis;
use support::*;

/// The deployment's id: its file's name without `.json` (camelCase files take no `id` yet).
const DEPLOYMENT_ID: &str = "orders";

/// An `Entitlement` targeting `targets`.
fn entitlement(
    name: &str,
    rate: Option<u64>,
    quota: Option<(u64, &str, &str)>,
    targets: &[&str],
) -> Value {
    json!({
        "name": name,
        "rateLimit": rate.map(|value| json!({"value": value, "unit": "SECOND"})),
        "quota": quota.map(|(value, unit, breach)| json!({
            "value": value, "unit": unit, "resetPolicy": "CALENDAR", "operationOnBreach": breach
        })),
        "targets": targets.iter().map(|t| json!({"deploymentId": t})).collect::<Vec<_>>()
    })
}

fn plan(id: &str, name: &str, entitlements: Vec<Value>) -> Value {
    json!({"id": id, "displayName": name, "lifecycleState": "ACTIVE", "entitlements": entitlements})
}

fn subscriber(id: &str, name: &str, clients: &[(&str, &str)], plans: &[&str]) -> Value {
    json!({
        "id": id, "displayName": name, "lifecycleState": "ACTIVE",
        "clients": clients.iter().map(|(n, t)| json!({"name": n, "token": t})).collect::<Vec<_>>(),
        "usagePlans": plans
    })
}

/// A subscriber `ocid1.subscriber.{name}` with one client, subscribed to `ocid1.usageplan.{plan}`.
fn one_client(name: &str, (client, token): (&str, &str), plan: &str) -> Value {
    subscriber(
        &format!("ocid1.subscriber.{name}"),
        name,
        &[(client, token)],
        &[&format!("ocid1.usageplan.{plan}")],
    )
}

/// A deployment (written as `orders.json`), the client token in `X-API-Key` or `?key=`, and `routes`.
fn deployment(routes: Value) -> Value {
    json!({
        "displayName": "orders",
        "pathPrefix": "/v1",
        "specification": {
            "requestPolicies": {"usagePlans": {"tokenLocations": [
                "request.headers[X-API-Key]", "${request.query[key]}"
            ]}},
            "routes": routes
        }
    })
}

fn stock_routes() -> Value {
    json!([{"path": "/hello", "methods": ["GET"],
            "backend": {"type": "STOCK_RESPONSE_BACKEND", "status": 200, "body": "hi"}},
           {"path": "/boom", "methods": ["GET"],
            "backend": {"type": "STOCK_RESPONSE_BACKEND", "status": 500, "body": "boom"}}])
}

/// Starts serve on `deployment` with the plans and subscribers written to files (paths
/// returned: plans, subscribers), an admin listener, and `extra` flags.
fn start(
    deployment: &Value,
    plans: &[Value],
    subscribers: &[Value],
    extra: &[&str],
) -> (Gateway, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(format!("{DEPLOYMENT_ID}.json"));
    std::fs::write(&file, deployment.to_string()).unwrap();
    let plans_file = dir.path().join("plans.json");
    std::fs::write(&plans_file, Value::from(plans.to_vec()).to_string()).unwrap();
    let subscribers_file = dir.path().join("subscribers.json");
    std::fs::write(
        &subscribers_file,
        Value::from(subscribers.to_vec()).to_string(),
    )
    .unwrap();
    let mut args = vec![
        "--usage-plans".to_owned(),
        plans_file.to_string_lossy().into_owned(),
        "--subscribers".to_owned(),
        subscribers_file.to_string_lossy().into_owned(),
    ];
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    (
        start_gateway_on(dir, &[file], true, &args),
        subscribers_file,
    )
}

struct Answer {
    status: u16,
    retry_after: Option<u64>,
    request_id: String,
    body: String,
}

fn get(gateway: &Gateway, path: &str, headers: &[(&str, &str)]) -> Answer {
    let mut request = client().get(format!("{}{path}", gateway.base));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().unwrap();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    Answer {
        status: response.status().as_u16(),
        retry_after: header("retry-after").map(|v| v.parse().unwrap()),
        request_id: header("opc-request-id").unwrap_or_default(),
        body: response.text().unwrap(),
    }
}

fn key(token: &str) -> [(&str, &str); 1] {
    [("X-API-Key", token)]
}

/// The usage-plan record of one request.
fn usage_record(gateway: &Gateway, request_id: &str) -> Value {
    let found = records(&gateway.execution_log, request_id, 1);
    found
        .into_iter()
        .find(|r| {
            r["data"]["code"]
                .as_str()
                .unwrap_or("")
                .starts_with("usagePlans.")
        })
        .unwrap_or_else(|| panic!("no usagePlans record for {request_id}"))["data"]
        .clone()
}

fn text(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

fn metrics(gateway: &Gateway) -> String {
    client()
        .get(format!("{}/metrics", gateway.admin.as_ref().unwrap()))
        .send()
        .unwrap()
        .text()
        .unwrap()
}

fn unix_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Waits out the last seconds of a UTC minute, so that a test counting against a MINUTE
/// quota runs inside one period.
fn within_one_minute(needed: u64) {
    let second = unix_seconds() % 60;
    if second + needed >= 60 {
        std::thread::sleep(Duration::from_secs(60 - second));
    }
}

#[test]
fn each_outcome_answers_and_records_as_oci_does_and_the_token_is_never_shown() {
    let plans = [
        plan(
            "ocid1.usageplan.free",
            "free",
            vec![entitlement(
                "free-calls",
                None,
                Some((2, "MINUTE", "REJECT")),
                &[DEPLOYMENT_ID],
            )],
        ),
        plan(
            "ocid1.usageplan.gold",
            "gold",
            vec![entitlement("gold-calls", Some(1), None, &[DEPLOYMENT_ID])],
        ),
        plan(
            "ocid1.usageplan.elsewhere",
            "elsewhere",
            vec![entitlement(
                "other",
                Some(5),
                None,
                &["ocid1.apideployment.other"],
            )],
        ),
        plan(
            "ocid1.usageplan.lenient",
            "lenient",
            vec![entitlement(
                "soft",
                None,
                Some((1, "HOUR", "ALLOW")),
                &[DEPLOYMENT_ID],
            )],
        ),
    ];
    let subscribers = [
        one_client("acme", ("web", "tok-acme-secret"), "free"),
        one_client("goldie", ("app", "tok-gold-secret"), "gold"),
        one_client("stranger", ("app", "tok-stranger-secret"), "elsewhere"),
        one_client("lenny", ("app", "tok-lenient-secret"), "lenient"),
    ];
    let (gateway, _) = start(&deployment(stock_routes()), &plans, &subscribers, &[]);

    // No token, and a token nobody has: 403, requestRejected, the locations named.
    let none = get(&gateway, "/v1/hello", &[]);
    assert_eq!(none.status, 403);
    assert_eq!(
        serde_json::from_str::<Value>(&none.body).unwrap(),
        json!({"message": "Forbidden", "code": 403})
    );
    let record = usage_record(&gateway, &none.request_id);
    assert_eq!(record["code"], "usagePlans.requestRejected");
    assert_eq!(record["level"], "WARN");
    assert!(
        record["message"]
            .as_str()
            .unwrap()
            .contains("request.headers[X-API-Key]"),
        "{record}"
    );
    let unknown = get(&gateway, "/v1/hello", &key("tok-nobody-secret"));
    assert_eq!(unknown.status, 403);
    assert_eq!(
        usage_record(&gateway, &unknown.request_id)["code"],
        "usagePlans.requestRejected"
    );

    // A subscriber whose plans do not target this deployment.
    let stranger = get(&gateway, "/v1/hello", &key("tok-stranger-secret"));
    assert_eq!(stranger.status, 403);
    let record = usage_record(&gateway, &stranger.request_id);
    assert_eq!(record["code"], "usagePlans.eligibleNotEntitled");
    assert_eq!(record["subscriberId"], "ocid1.subscriber.stranger");

    // The quota: 2 per minute, then 429 with Retry-After to the next minute.
    within_one_minute(5);
    let first = get(&gateway, "/v1/hello", &key("tok-acme-secret"));
    assert_eq!((first.status, first.body.as_str()), (200, "hi"));
    let record = usage_record(&gateway, &first.request_id);
    assert_eq!(record["code"], "usagePlans.requestPermitted");
    assert_eq!(record["level"], "INFO");
    assert_eq!(record["configuredLimit"], 2);
    assert_eq!(record["configuredUnit"], "MINUTE");
    assert_eq!(record["entitlementName"], "free-calls");
    assert_eq!(record["limitingResourceId"], "ocid1.usageplan.free");
    assert_eq!(record["limitingResourceName"], "free");
    assert_eq!(record["subscriberId"], "ocid1.subscriber.acme");
    assert_eq!(record["subscriberName"], "acme");
    let limiting_key = record["limitingKey"].as_str().unwrap();
    assert!(
        limiting_key.ends_with("/ocid1.usageplan.free/free-calls/ocid1.subscriber.acme"),
        "{limiting_key}"
    );
    // `<period start>/...`: the start of the current UTC minute, RFC 3339.
    assert_eq!(&limiting_key[16..21], ":00Z/", "{limiting_key}");
    assert_eq!(
        get(&gateway, "/v1/hello", &key("tok-acme-secret")).status,
        200
    );
    let refused = get(&gateway, "/v1/hello", &key("tok-acme-secret"));
    let expected = 60 - unix_seconds() % 60;
    assert_eq!(refused.status, 429);
    let retry_after = refused.retry_after.unwrap();
    assert!(
        retry_after.abs_diff(expected) <= 1,
        "Retry-After {retry_after}, {expected} s to the next minute"
    );
    let record = usage_record(&gateway, &refused.request_id);
    assert_eq!(record["code"], "usagePlans.requestRejected");
    assert_eq!(record["configuredUnit"], "MINUTE");

    // The rate limit: 1 per second, judged as a bucket; SECOND in the record.
    let fast = get(&gateway, "/v1/hello", &key("tok-gold-secret"));
    assert_eq!(fast.status, 200);
    let limited = get(&gateway, "/v1/hello", &key("tok-gold-secret"));
    assert_eq!(limited.status, 429);
    assert!(limited.retry_after.unwrap() >= 1);
    let record = usage_record(&gateway, &limited.request_id);
    assert_eq!(record["code"], "usagePlans.requestRejected");
    assert_eq!(record["configuredUnit"], "SECOND");
    assert_eq!(record["configuredLimit"], 1);
    assert_eq!(record["limitingResourceId"], "ocid1.usageplan.gold");
    let limiting_key = record["limitingKey"].as_str().unwrap();
    assert!(
        limiting_key.ends_with("Z/ocid1.usageplan.gold/gold-calls/ocid1.subscriber.goldie"),
        "{limiting_key}"
    );

    // ALLOW: over the quota, still served, and recorded as breached. The token in the query.
    assert_eq!(
        get(&gateway, "/v1/hello?key=tok-lenient-secret", &[]).status,
        200
    );
    let breached = get(&gateway, "/v1/hello?key=tok-lenient-secret&x=1", &[]);
    assert_eq!(breached.status, 200);
    let record = usage_record(&gateway, &breached.request_id);
    assert_eq!(record["code"], "usagePlans.requestBreachedButAllowed");
    assert_eq!(record["level"], "WARN");
    assert_eq!(record["configuredUnit"], "HOUR");

    // Metrics by ids and action, the quota used as a ratio.
    let text_metrics = metrics(&gateway);
    for line in [
        r#"claimgate_usage_plan_requests_total{usage_plan="ocid1.usageplan.free",entitlement="free-calls",subscriber="ocid1.subscriber.acme",action="permitted"} 2"#,
        r#"claimgate_usage_plan_requests_total{usage_plan="ocid1.usageplan.free",entitlement="free-calls",subscriber="ocid1.subscriber.acme",action="rejected"} 1"#,
        r#"claimgate_usage_plan_requests_total{usage_plan="ocid1.usageplan.lenient",entitlement="soft",subscriber="ocid1.subscriber.lenny",action="breached_allowed"} 1"#,
        r#"claimgate_usage_plan_quota_used_ratio{usage_plan="ocid1.usageplan.free",entitlement="free-calls",subscriber="ocid1.subscriber.acme"} 1.0"#,
        r#"claimgate_usage_plan_quota_used_ratio{usage_plan="ocid1.usageplan.lenient",entitlement="soft",subscriber="ocid1.subscriber.lenny"} 2.0"#,
    ] {
        assert!(text_metrics.contains(line), "{line} not in\n{text_metrics}");
    }

    // No quota gauge for an entitlement without a quota.
    assert!(
        !text_metrics
            .contains(r#"claimgate_usage_plan_quota_used_ratio{usage_plan="ocid1.usageplan.gold""#),
        "{text_metrics}"
    );

    // The query token is redacted in requestUri; no token anywhere.
    std::thread::sleep(Duration::from_millis(1500));
    let access = text(&gateway.access_log);
    assert!(access.contains("key=[redacted]&x=1"), "{access}");
    let stderr = text(&gateway.dir.path().join("stderr.log"));
    for (what, shown) in [
        ("execution log", text(&gateway.execution_log)),
        ("access log", access),
        ("metrics", text_metrics),
        ("stderr", stderr),
    ] {
        assert!(
            !shown.contains("-secret"),
            "a client token in the {what}:\n{shown}"
        );
    }
}

#[test]
fn four_hundreds_count_toward_the_quota_and_five_hundreds_do_not() {
    let rt = runtime();
    let upstream = serve_http(&rt, |request| async move {
        let status = if request.uri().path().ends_with("/boom") {
            500
        } else {
            404
        };
        hyper::Response::builder()
            .status(status)
            .body(http_body_util::Full::new(bytes::Bytes::from_static(
                b"upstream",
            )))
            .unwrap()
    });
    let routes = json!([{"path": "/{rest*}", "methods": ["GET"],
        "backend": {"type": "HTTP_BACKEND", "url": format!("http://{upstream}/${{request.path[rest]}}")}}]);
    let plans = [plan(
        "ocid1.usageplan.p",
        "p",
        vec![entitlement(
            "e",
            None,
            Some((2, "DAY", "REJECT")),
            &[DEPLOYMENT_ID],
        )],
    )];
    let subscribers = [one_client("s", ("c", "tok-s"), "p")];
    let (gateway, _) = start(&deployment(routes), &plans, &subscribers, &[]);
    // Three 5xx answers: each gives its unit back.
    for _ in 0..3 {
        assert_eq!(get(&gateway, "/v1/boom", &key("tok-s")).status, 500);
    }
    // Two 4xx answers take the whole quota.
    assert_eq!(get(&gateway, "/v1/missing", &key("tok-s")).status, 404);
    assert_eq!(get(&gateway, "/v1/missing", &key("tok-s")).status, 404);
    let refused = get(&gateway, "/v1/missing", &key("tok-s"));
    assert_eq!(refused.status, 429);
    assert_eq!(
        usage_record(&gateway, &refused.request_id)["configuredUnit"],
        "DAY"
    );
    assert!(metrics(&gateway).contains(
        r#"claimgate_usage_plan_quota_used_ratio{usage_plan="ocid1.usageplan.p",entitlement="e",subscriber="ocid1.subscriber.s"} 1.0"#
    ));
}

#[test]
fn requests_refused_by_authentication_count_toward_nothing() {
    let signer = Signer::new("k");
    let mut deployment = deployment(stock_routes());
    deployment["specification"]["requestPolicies"]["authentication"] = json!({
        "type": "JWT_AUTHENTICATION", "tokenHeader": "Authorization", "tokenAuthScheme": "Bearer",
        "issuers": ["https://issuer.example"], "audiences": ["api"],
        "publicKeys": {"type": "STATIC_KEYS", "keys": [signer.static_key()]}
    });
    let plans = [plan(
        "ocid1.usageplan.p",
        "p",
        vec![entitlement(
            "e",
            None,
            Some((1, "DAY", "REJECT")),
            &[DEPLOYMENT_ID],
        )],
    )];
    let subscribers = [one_client("s", ("c", "tok-s"), "p")];
    let (gateway, _) = start(&deployment, &plans, &subscribers, &[]);
    for _ in 0..3 {
        let refused = get(
            &gateway,
            "/v1/hello",
            &[("X-API-Key", "tok-s"), ("Authorization", "Bearer nope")],
        );
        assert_eq!(refused.status, 401);
    }
    let token = signer.token(json!({
        "iss": "https://issuer.example", "aud": "api", "sub": "u", "exp": now() + 600, "iat": now()
    }));
    let bearer = format!("Bearer {token}");
    let headers = [("X-API-Key", "tok-s"), ("Authorization", bearer.as_str())];
    assert_eq!(get(&gateway, "/v1/hello", &headers).status, 200);
    assert_eq!(get(&gateway, "/v1/hello", &headers).status, 429);
}

#[test]
fn twenty_concurrent_requests_against_a_quota_of_six_pass_six() {
    let plans = [plan(
        "ocid1.usageplan.p",
        "p",
        vec![entitlement(
            "e",
            None,
            Some((6, "DAY", "REJECT")),
            &[DEPLOYMENT_ID],
        )],
    )];
    let subscribers = [one_client("s", ("c", "tok-s"), "p")];
    let (gateway, _) = start(
        &deployment(stock_routes()),
        &plans,
        &subscribers,
        &["--threads", "2"],
    );
    let statuses = concurrently(&[&gateway], 20, "tok-s");
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        6,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        14,
        "{statuses:?}"
    );
}

/// `n` requests at once, spread over `gateways`; their statuses.
fn concurrently(gateways: &[&Gateway], n: usize, token: &str) -> Vec<u16> {
    let barrier = std::sync::Barrier::new(n);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..n)
            .map(|i| {
                let (barrier, gateway) = (&barrier, gateways[i % gateways.len()]);
                scope.spawn(move || {
                    let client = client();
                    barrier.wait();
                    client
                        .get(format!("{}/v1/hello", gateway.base))
                        .header("X-API-Key", token)
                        .send()
                        .unwrap()
                        .status()
                        .as_u16()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

#[test]
fn a_subscribers_clients_share_its_counter_under_the_first_plan_entitling_the_deployment() {
    let plans = [
        plan(
            "ocid1.usageplan.elsewhere",
            "elsewhere",
            vec![entitlement(
                "x",
                None,
                Some((100, "DAY", "REJECT")),
                &["ocid1.apideployment.other"],
            )],
        ),
        plan(
            "ocid1.usageplan.first",
            "first",
            vec![entitlement(
                "e",
                None,
                Some((2, "DAY", "REJECT")),
                &[DEPLOYMENT_ID],
            )],
        ),
        plan(
            "ocid1.usageplan.second",
            "second",
            vec![entitlement(
                "e",
                None,
                Some((100, "DAY", "REJECT")),
                &[DEPLOYMENT_ID],
            )],
        ),
    ];
    let subscribers = [
        subscriber(
            "ocid1.subscriber.s",
            "s",
            &[("web", "tok-web"), ("mobile", "tok-mobile")],
            &[
                "ocid1.usageplan.elsewhere",
                "ocid1.usageplan.first",
                "ocid1.usageplan.second",
            ],
        ),
        one_client("t", ("web", "tok-other"), "first"),
    ];
    let (gateway, _) = start(&deployment(stock_routes()), &plans, &subscribers, &[]);
    let web = get(&gateway, "/v1/hello", &key("tok-web"));
    assert_eq!(web.status, 200);
    assert_eq!(
        usage_record(&gateway, &web.request_id)["limitingResourceId"],
        "ocid1.usageplan.first"
    );
    assert_eq!(get(&gateway, "/v1/hello", &key("tok-mobile")).status, 200);
    assert_eq!(get(&gateway, "/v1/hello", &key("tok-web")).status, 429);
    assert_eq!(get(&gateway, "/v1/hello", &key("tok-mobile")).status, 429);
    // Another subscriber of the same plan has its own counter.
    assert_eq!(get(&gateway, "/v1/hello", &key("tok-other")).status, 200);
}

#[test]
fn the_usage_plan_id_reaches_the_backend_through_a_header_transformation() {
    let rt = runtime();
    let upstream = serve_http(&rt, |request| async move {
        let plan = request
            .headers()
            .get("x-usage-plan")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_else(|| "none".into());
        hyper::Response::new(http_body_util::Full::new(bytes::Bytes::from(plan)))
    });
    let routes = json!([{"path": "/hello", "methods": ["GET"],
        "requestPolicies": {"headerTransformations": {"setHeaders": {"items": [
            {"name": "X-Usage-Plan", "values": ["${request.usage_plan[id]}"]}
        ]}}},
        "backend": {"type": "HTTP_BACKEND", "url": format!("http://{upstream}/echo")}}]);
    let plans = [plan(
        "ocid1.usageplan.p",
        "p",
        vec![entitlement("e", Some(100), None, &[DEPLOYMENT_ID])],
    )];
    let subscribers = [one_client("s", ("c", "tok-s"), "p")];
    let (gateway, _) = start(&deployment(routes), &plans, &subscribers, &[]);
    let answer = get(&gateway, "/v1/hello", &key("tok-s"));
    assert_eq!(
        (answer.status, answer.body.as_str()),
        (200, "ocid1.usageplan.p")
    );
}

#[test]
fn serve_refuses_usage_plans_without_the_files() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("d.json");
    std::fs::write(&file, deployment(stock_routes()).to_string()).unwrap();
    let stderr = refused_by_serve(&[
        "--deployment",
        file.to_str().unwrap(),
        "--listen",
        &format!("127.0.0.1:{}", free_port()),
    ]);
    assert!(
        stderr.contains("usagePlans needs --usage-plans and --subscribers"),
        "{stderr}"
    );
    assert!(stderr.contains("requestPolicies.usagePlans"), "{stderr}");
    let plans = dir.path().join("plans.json");
    std::fs::write(&plans, "[]").unwrap();
    let stderr = refused_by_serve(&[
        "--deployment",
        file.to_str().unwrap(),
        "--usage-plans",
        plans.to_str().unwrap(),
        "--listen",
        &format!("127.0.0.1:{}", free_port()),
    ]);
    assert!(
        stderr.contains("usagePlans needs --usage-plans and --subscribers"),
        "{stderr}"
    );
}

#[test]
fn a_reloaded_subscribers_file_adds_a_client_and_keeps_the_counters() {
    let plans = [plan(
        "ocid1.usageplan.p",
        "p",
        vec![entitlement(
            "e",
            None,
            Some((3, "DAY", "REJECT")),
            &[DEPLOYMENT_ID],
        )],
    )];
    let before = [one_client("s", ("web", "tok-web"), "p")];
    let (gateway, subscribers_file) = start(&deployment(stock_routes()), &plans, &before, &[]);
    assert_eq!(get(&gateway, "/v1/hello", &key("tok-web")).status, 200);
    assert_eq!(get(&gateway, "/v1/hello", &key("tok-web")).status, 200);
    assert_eq!(get(&gateway, "/v1/hello", &key("tok-new")).status, 403);
    let after = [subscriber(
        "ocid1.subscriber.s",
        "s",
        &[("web", "tok-web"), ("new", "tok-new")],
        &["ocid1.usageplan.p"],
    )];
    std::fs::write(&subscribers_file, Value::from(after.to_vec()).to_string()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        let status = get(&gateway, "/v1/hello", &key("tok-new")).status;
        if status != 403 || Instant::now() > deadline {
            break status;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    // The new client takes the third unit: the count of the two before survived the reload.
    assert_eq!(status, 200);
    assert_eq!(get(&gateway, "/v1/hello", &key("tok-web")).status, 429);
    assert_eq!(get(&gateway, "/v1/hello", &key("tok-new")).status, 429);
}

/// Waits until `gateway` uses Redis.
fn wait_shared(gateway: &Gateway) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !metrics(gateway).contains("claimgate_shared_state_up 1") {
        assert!(Instant::now() < deadline, "the gateway never used Redis");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Plan `p` with entitlement `e` (1000/s, `quota` a DAY, REJECT) and subscriber `s` whose one
/// client `c` sends `tok-s`.
fn one_subscriber_with_a_daily_quota(quota: u64) -> ([Value; 1], [Value; 1]) {
    let plans = [plan(
        "ocid1.usageplan.p",
        "p",
        vec![entitlement(
            "e",
            Some(1000),
            Some((quota, "DAY", "REJECT")),
            &[DEPLOYMENT_ID],
        )],
    )];
    (plans, [one_client("s", ("c", "tok-s"), "p")])
}

#[test]
fn two_replicas_on_redis_share_the_quota_exactly() {
    let Some(redis) = Redis::start("usage_plans_two_replicas", None) else {
        return;
    };
    let url = redis.url();
    let (plans, subscribers) = one_subscriber_with_a_daily_quota(6);
    let flags = ["--redis", url.as_str(), "--redis-timeout-ms", "1000"];
    let (a, _) = start(&deployment(stock_routes()), &plans, &subscribers, &flags);
    let (b, _) = start(&deployment(stock_routes()), &plans, &subscribers, &flags);
    wait_shared(&a);
    wait_shared(&b);
    let statuses = concurrently(&[&a, &b], 20, "tok-s");
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        6,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        14,
        "{statuses:?}"
    );
    // Both replicas now refuse; the counter is in Redis under claimgate:up:.
    assert_eq!(get(&a, "/v1/hello", &key("tok-s")).status, 429);
    assert_eq!(get(&b, "/v1/hello", &key("tok-s")).status, 429);
    let keys = redis.keys("claimgate:up:*");
    assert!(
        keys.contains(&"claimgate:up:quota:ocid1.usageplan.p/e/ocid1.subscriber.s".to_owned()),
        "{keys:?}"
    );
    assert!(keys.iter().all(|k| !k.contains("tok-s")), "{keys:?}");
}

#[test]
fn a_redis_that_forgot_the_script_is_given_it_again_and_the_count_goes_on() {
    let Some(redis) = Redis::start("usage_plans_noscript", None) else {
        return;
    };
    let url = redis.url();
    let (plans, subscribers) = one_subscriber_with_a_daily_quota(3);
    let flags = ["--redis", url.as_str(), "--redis-timeout-ms", "1000"];
    let (gateway, _) = start(&deployment(stock_routes()), &plans, &subscribers, &flags);
    wait_shared(&gateway);
    assert_eq!(get(&gateway, "/v1/hello", &key("tok-s")).status, 200);
    // A restart or SCRIPT FLUSH: the next EVALSHA is refused with NOSCRIPT, the script is
    // loaded again and the request counted in Redis, not locally.
    redis.cmd(&["SCRIPT", "FLUSH"]);
    let statuses: Vec<u16> = (0..3)
        .map(|_| get(&gateway, "/v1/hello", &key("tok-s")).status)
        .collect();
    assert_eq!(statuses, [200, 200, 429]);
    let quota = redis.cmd(&[
        "HGET",
        "claimgate:up:quota:ocid1.usageplan.p/e/ocid1.subscriber.s",
        "n",
    ]);
    assert_eq!(quota.trim(), "3", "{quota}");
    // NOSCRIPT is not an outage: nothing was counted as a shared-state error.
    let text = metrics(&gateway);
    let errors: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("claimgate_shared_state_errors_total{") && !l.ends_with(" 0"))
        .collect();
    assert!(errors.is_empty(), "{errors:?}");
}

/// `date -u` with a shell expression, for calendar periods computed independently.
fn shell_date(script: &str) -> String {
    let output = std::process::Command::new("sh")
        .args(["-c", script])
        .output()
        .unwrap();
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

#[test]
fn redis_counts_weeks_and_months_on_the_calendar_and_a_replica_falls_back_when_it_is_down() {
    let Some(mut redis) = Redis::start("usage_plans_calendar", None) else {
        return;
    };
    let url = redis.url();
    let plans = [
        plan(
            "ocid1.usageplan.week",
            "week",
            vec![entitlement(
                "w",
                None,
                Some((5, "WEEK", "REJECT")),
                &[DEPLOYMENT_ID],
            )],
        ),
        plan(
            "ocid1.usageplan.month",
            "month",
            vec![entitlement(
                "m",
                None,
                Some((5, "MONTH", "REJECT")),
                &[DEPLOYMENT_ID],
            )],
        ),
        plan(
            "ocid1.usageplan.p",
            "p",
            vec![entitlement(
                "e",
                None,
                Some((2, "DAY", "REJECT")),
                &[DEPLOYMENT_ID],
            )],
        ),
    ];
    let subscribers = [
        one_client("w", ("c", "tok-w"), "week"),
        one_client("m", ("c", "tok-m"), "month"),
        one_client("s", ("c", "tok-s"), "p"),
    ];
    let flags = ["--redis", url.as_str(), "--redis-timeout-ms", "1000"];
    let (gateway, _) = start(&deployment(stock_routes()), &plans, &subscribers, &flags);
    wait_shared(&gateway);
    // The period starts Redis's script computed, against date(1)'s.
    let week = get(&gateway, "/v1/hello", &key("tok-w"));
    let month = get(&gateway, "/v1/hello", &key("tok-m"));
    let monday = shell_date(
        r#"date -u -d "$(date -u +%F) -$(( $(date -u +%u) - 1 )) days" +%Y-%m-%dT00:00:00Z"#,
    );
    let first = shell_date("date -u +%Y-%m-01T00:00:00Z");
    let week_key = usage_record(&gateway, &week.request_id)["limitingKey"].clone();
    let month_key = usage_record(&gateway, &month.request_id)["limitingKey"].clone();
    assert_eq!(
        week_key,
        format!("{monday}/ocid1.usageplan.week/w/ocid1.subscriber.w")
    );
    assert_eq!(
        month_key,
        format!("{first}/ocid1.usageplan.month/m/ocid1.subscriber.m")
    );
    assert!(redis.keys("claimgate:up:quota:*").len() >= 2);
    // In Redis too, a 5xx answer gives its unit back (the second round trip).
    for _ in 0..3 {
        assert_eq!(get(&gateway, "/v1/boom", &key("tok-s")).status, 500);
    }
    let in_redis: Vec<u16> = (0..3)
        .map(|_| get(&gateway, "/v1/hello", &key("tok-s")).status)
        .collect();
    assert_eq!(in_redis, [200, 200, 429]);
    // Redis gone: the replica counts in the process (the quota still holds there).
    redis.kill();
    let statuses: Vec<u16> = (0..3)
        .map(|_| get(&gateway, "/v1/hello", &key("tok-s")).status)
        .collect();
    assert_eq!(statuses, [200, 200, 429]);
}
