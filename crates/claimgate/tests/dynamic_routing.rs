//! `DYNAMIC_ROUTING_BACKEND` end to end: `claimgate serve` choosing among echo backends and
//! stock responses by header, query, claim and subdomain, its records and its refusals; and
//! `claimgate check` naming the rule and backend chosen, in text and JSON.

mod support;

use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use support::{claimgate, now, records, runtime, serve_http, start_gateway, Gateway, Signer};

const ISS: &str = "https://idp.example/";
const AUD: &str = "api://fleet";

/// An echo backend: answers `<name> <path>` and remembers every path it was asked for.
fn echo(
    rt: &tokio::runtime::Runtime,
    name: &'static str,
) -> (std::net::SocketAddr, Arc<Mutex<Vec<String>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let addr = serve_http(rt, move |request: hyper::Request<hyper::body::Incoming>| {
        let log = log.clone();
        async move {
            let path = request.uri().to_string();
            log.lock().unwrap().push(path.clone());
            hyper::Response::builder()
                .header("x-backend", name)
                .body(http_body_util::Full::new(bytes::Bytes::from(format!(
                    "{name} {path}"
                ))))
                .unwrap()
        }
    });
    (addr, seen)
}

fn stock(status: u16, body: &str) -> Value {
    json!({"type": "STOCK_RESPONSE_BACKEND", "status": status, "body": body})
}

fn route(path: &str, selector: &str, rules: Value, anonymous: bool) -> Value {
    let authorization = if anonymous {
        json!({"type": "ANONYMOUS"})
    } else {
        json!({"type": "AUTHENTICATION_ONLY"})
    };
    json!({
        "path": path, "methods": ["GET"],
        "requestPolicies": {"authorization": authorization},
        "backend": {
            "type": "DYNAMIC_ROUTING_BACKEND",
            "selectionSource": {"type": "SINGLE", "selector": selector},
            "routingBackends": rules
        }
    })
}

fn key(kind: &str, name: &str, matcher: Value, default: bool) -> Value {
    let mut key = json!({"type": kind, "name": name, "isDefault": default});
    if kind == "ANY_OF" {
        key["values"] = matcher;
    } else {
        key["expression"] = matcher;
    }
    key
}

/// The fleet deployment: `/v1/by-header` (no default: cars, trucks, regions), `/v1/by-query`
/// (a default), `/v1/by-claim` (request.auth[tenant], authenticated), `/v1/by-subdomain`.
fn deployment(signer: &Signer, cars: &str, trucks: &str) -> Value {
    json!({
        "displayName": "fleet",
        "pathPrefix": "/v1",
        "specification": {
            "requestPolicies": {"authentication": {
                "type": "JWT_AUTHENTICATION", "tokenHeader": "Authorization", "tokenAuthScheme": "Bearer",
                "isAnonymousAccessAllowed": true,
                "issuers": [ISS], "audiences": [AUD],
                "publicKeys": {"type": "STATIC_KEYS", "keys": [signer.static_key()]}
            }},
            "routes": [
                route("/by-header", "request.headers[X-Vehicle]", json!([
                    {"key": key("ANY_OF", "cars", json!(["car", "sedan"]), false),
                     "backend": {"type": "HTTP_BACKEND", "url": format!("http://{cars}/cars/${{request.headers[X-Vehicle]}}")}},
                    {"key": key("WILDCARD", "trucks", json!("truck*"), false),
                     "backend": {"type": "HTTP_BACKEND", "url": format!("http://{trucks}/trucks/${{request.headers[X-Vehicle]}}")}},
                    {"key": key("WILDCARD", "regions", json!("+-region"), false),
                     "backend": {"type": "HTTP_BACKEND", "url": "http://${request.headers[X-Vehicle]}.invalid/"}}
                ]), true),
                route("/by-query", "request.query[type]", json!([
                    {"key": key("ANY_OF", "vans", json!(["van", "minibus"]), false), "backend": stock(200, "vans")},
                    {"key": key("WILDCARD", "any-bike", json!("*bike"), false), "backend": stock(200, "bikes")},
                    {"key": key("ANY_OF", "fallback", json!(["other"]), true), "backend": stock(203, "fallback")}
                ]), true),
                route("/by-claim", "request.auth[tenant]", json!([
                    {"key": key("ANY_OF", "acme", json!(["acme"]), false), "backend": stock(200, "acme")},
                    {"key": key("WILDCARD", "globex", json!("globex-*"), false),
                     "backend": {"type": "HTTP_BACKEND", "url": format!("http://{trucks}/globex")}}
                ]), false),
                route("/by-subdomain", "request.subdomain[example.com]", json!([
                    {"key": key("ANY_OF", "cars-site", json!(["cars"]), false), "backend": stock(200, "cars site")}
                ]), true)
            ]
        }
    })
}

struct Fleet {
    gw: Gateway,
    signer: Signer,
    cars: Arc<Mutex<Vec<String>>>,
    trucks: Arc<Mutex<Vec<String>>>,
    _rt: tokio::runtime::Runtime,
}

fn fleet() -> Fleet {
    let rt = runtime();
    let (cars_addr, cars) = echo(&rt, "cars");
    let (trucks_addr, trucks) = echo(&rt, "trucks");
    let signer = Signer::new("fleet-key");
    let gw = start_gateway(
        &[deployment(
            &signer,
            &cars_addr.to_string(),
            &trucks_addr.to_string(),
        )],
        false,
        &[],
    );
    Fleet {
        gw,
        signer,
        cars,
        trucks,
        _rt: rt,
    }
}

/// An answer: status, body, request id.
struct Answer {
    status: u16,
    body: String,
    id: String,
}

fn get(gw: &Gateway, path: &str, headers: &[(&str, &str)]) -> Answer {
    let mut request = support::client().get(format!("{}{path}", gw.base));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().unwrap();
    let status = response.status().as_u16();
    let id = response.headers()["opc-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    Answer {
        status,
        body: response.text().unwrap(),
        id,
    }
}

/// The dynamic routing records of a request: (code, level, backendName).
fn routing_records(gw: &Gateway, id: &str) -> Vec<(String, String, Value)> {
    // The access record and at least one execution record are written for every request.
    records(&gw.execution_log, id, 1)
        .iter()
        .filter(|r| {
            r["data"]["code"]
                .as_str()
                .is_some_and(|c| c.starts_with("dynamicRouting."))
        })
        .map(|r| {
            (
                r["data"]["code"].as_str().unwrap().to_owned(),
                r["data"]["level"].as_str().unwrap_or_default().to_owned(),
                r["data"]["backendName"].clone(),
            )
        })
        .collect()
}

fn matched(rule: &str) -> Vec<(String, String, Value)> {
    vec![(
        "dynamicRouting.backendMatched".into(),
        "INFO".into(),
        json!(rule),
    )]
}

const NOT_FOUND: &str = r#"{"message":"Not Found","code":404}"#;

#[test]
fn any_of_values_match_case_insensitively_and_wildcards_case_sensitively() {
    let f = fleet();
    // ANY_OF: any case; the selector's value is templated into the chosen URL as sent.
    let a = get(&f.gw, "/v1/by-header", &[("X-Vehicle", "SEDAN")]);
    assert_eq!((a.status, a.body.as_str()), (200, "cars /cars/SEDAN"));
    assert_eq!(routing_records(&f.gw, &a.id), matched("cars"));

    // WILDCARD `truck*`: case-sensitive.
    let a = get(&f.gw, "/v1/by-header", &[("X-Vehicle", "truck-42")]);
    assert_eq!(
        (a.status, a.body.as_str()),
        (200, "trucks /trucks/truck-42")
    );
    assert_eq!(routing_records(&f.gw, &a.id), matched("trucks"));
    let a = get(&f.gw, "/v1/by-header", &[("X-Vehicle", "TRUCK-42")]);
    assert_eq!((a.status, a.body.as_str()), (404, NOT_FOUND));
    assert_eq!(
        routing_records(&f.gw, &a.id),
        vec![(
            "dynamicRouting.backendRejected".into(),
            "WARN".into(),
            Value::Null
        )]
    );

    // A query selector; a WILDCARD at the start.
    let a = get(&f.gw, "/v1/by-query?type=MiniBus", &[]);
    assert_eq!((a.status, a.body.as_str()), (200, "vans"));
    let a = get(&f.gw, "/v1/by-query?type=e-bike", &[]);
    assert_eq!((a.status, a.body.as_str()), (200, "bikes"));
    assert_eq!(routing_records(&f.gw, &a.id), matched("any-bike"));
    // A percent-encoded query value is compared decoded.
    let a = get(&f.gw, "/v1/by-query?type=e%2Dbike", &[]);
    assert_eq!((a.status, a.body.as_str()), (200, "bikes"));

    let seen = f.trucks.lock().unwrap().clone();
    assert_eq!(
        seen,
        ["/trucks/truck-42"],
        "only the matched request reached trucks"
    );
    assert_eq!(f.cars.lock().unwrap().clone(), ["/cars/SEDAN"]);
}

#[test]
fn the_default_rule_takes_what_nothing_matched_and_without_one_the_answer_is_404() {
    let f = fleet();
    let a = get(&f.gw, "/v1/by-query?type=BIKE", &[]);
    assert_eq!((a.status, a.body.as_str()), (203, "fallback"));
    assert_eq!(
        routing_records(&f.gw, &a.id),
        vec![(
            "dynamicRouting.defaultBackendMatched".into(),
            "INFO".into(),
            json!("fallback")
        )]
    );
    // An absent selector is the empty string: the default takes it...
    let a = get(&f.gw, "/v1/by-query", &[]);
    assert_eq!((a.status, a.body.as_str()), (203, "fallback"));
    // ... and without a default nothing does (`+-region` needs one character at least).
    let a = get(&f.gw, "/v1/by-header", &[]);
    assert_eq!((a.status, a.body.as_str()), (404, NOT_FOUND));
    let record = records(&f.gw.execution_log, &a.id, 1)
        .into_iter()
        .find(|r| r["data"]["code"] == "dynamicRouting.backendRejected")
        .expect("a backendRejected record");
    assert_eq!(
        record["data"]["message"],
        "The request failed because the request did not match a back end rule, and no default \
         rule was defined (request.headers[X-Vehicle] = '')."
    );
    assert_eq!(record["data"]["selector"], "request.headers[X-Vehicle]");
    let a = get(&f.gw, "/v1/by-header", &[("X-Vehicle", "boat")]);
    assert_eq!((a.status, a.body.as_str()), (404, NOT_FOUND));
    assert!(f.cars.lock().unwrap().is_empty() && f.trucks.lock().unwrap().is_empty());
}

#[test]
fn a_repeated_header_counts_by_its_first_value() {
    let f = fleet();
    let a = get(
        &f.gw,
        "/v1/by-header",
        &[("X-Vehicle", "car"), ("X-Vehicle", "truck-1")],
    );
    assert_eq!((a.status, a.body.as_str()), (200, "cars /cars/car"));
    let a = get(
        &f.gw,
        "/v1/by-header",
        &[("X-Vehicle", "truck-1"), ("X-Vehicle", "car")],
    );
    assert_eq!((a.status, a.body.as_str()), (200, "trucks /trucks/truck-1"));
}

#[test]
fn a_claim_of_the_verified_token_selects_and_an_unverified_one_never_does() {
    let f = fleet();
    let token = |tenant: &str| {
        f.signer.token(
            json!({"iss": ISS, "aud": AUD, "sub": "alice", "tenant": tenant, "exp": now() + 600}),
        )
    };
    let bearer = |t: String| format!("Bearer {t}");
    let a = get(
        &f.gw,
        "/v1/by-claim",
        &[("Authorization", &bearer(token("ACME")))],
    );
    assert_eq!((a.status, a.body.as_str()), (200, "acme"));
    assert_eq!(routing_records(&f.gw, &a.id), matched("acme"));
    let a = get(
        &f.gw,
        "/v1/by-claim",
        &[("Authorization", &bearer(token("globex-eu")))],
    );
    assert_eq!((a.status, a.body.as_str()), (200, "trucks /globex"));
    let a = get(
        &f.gw,
        "/v1/by-claim",
        &[("Authorization", &bearer(token("initech")))],
    );
    assert_eq!((a.status, a.body.as_str()), (404, NOT_FOUND));
    // A token signed by someone else claiming `acme` is refused before routing.
    let forged = Signer::new("fleet-key").token(
        json!({"iss": ISS, "aud": AUD, "sub": "mallory", "tenant": "acme", "exp": now() + 600}),
    );
    let a = get(&f.gw, "/v1/by-claim", &[("Authorization", &bearer(forged))]);
    assert_eq!(a.status, 401);
    assert!(routing_records(&f.gw, &a.id).is_empty());
}

#[test]
fn a_subdomain_selects() {
    let f = fleet();
    let a = get(&f.gw, "/v1/by-subdomain", &[("Host", "cars.example.com")]);
    assert_eq!((a.status, a.body.as_str()), (200, "cars site"));
    let a = get(&f.gw, "/v1/by-subdomain", &[("Host", "boats.example.com")]);
    assert_eq!(a.status, 404);
}

/// A selector value that would change the templated URL's path or host is refused with 400,
/// as any value put into a backend URL is; the backend never sees it.
#[test]
fn a_hostile_selector_value_never_reshapes_the_backend_url() {
    let f = fleet();
    for hostile in ["truck/../../admin", "truck\\..\\admin", "truck-..", "truck"] {
        let a = get(&f.gw, "/v1/by-header", &[("X-Vehicle", hostile)]);
        if hostile == "truck" {
            // The control: a plain value goes through.
            assert_eq!(a.status, 200, "{hostile}");
            continue;
        }
        if hostile == "truck-.." {
            // A dot is path data, not a dot segment, once it is not the whole segment.
            assert_eq!(
                (a.status, a.body.as_str()),
                (200, "trucks /trucks/truck-..")
            );
            continue;
        }
        assert_eq!(a.status, 400, "{hostile}: {}", a.body);
        let codes: Vec<Value> = records(&f.gw.execution_log, &a.id, 2)
            .iter()
            .map(|r| r["data"]["code"].clone())
            .collect();
        assert!(
            codes.contains(&json!("request.pathRejected")),
            "{hostile}: {codes:?}"
        );
    }
    // Into the host: one DNS label only.
    for hostile in [
        "evil.example/x-region",
        "127.0.0.1:8080/-region",
        "a.b-region",
    ] {
        let a = get(&f.gw, "/v1/by-header", &[("X-Vehicle", hostile)]);
        assert_eq!(a.status, 400, "{hostile}: {}", a.body);
        assert_eq!(routing_records(&f.gw, &a.id), matched("regions"));
    }
    let seen = f.trucks.lock().unwrap().clone();
    assert_eq!(seen, ["/trucks/truck-..", "/trucks/truck"]);
}

/// `check` on the same deployment: the rule and backend chosen, in text and JSON.
#[test]
fn check_names_the_rule_and_the_backend_chosen() {
    let signer = Signer::new("fleet-key");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("fleet.json");
    std::fs::write(
        &file,
        deployment(&signer, "127.0.0.1:9001", "127.0.0.1:9002").to_string(),
    )
    .unwrap();
    let file = file.to_str().unwrap();
    let check = |request: &str, extra: &[&str], json: bool| {
        let mut args = vec!["check", "--deployment", file, "--request", request];
        args.extend_from_slice(extra);
        if json {
            args.extend_from_slice(&["-o", "json"]);
        }
        let output = claimgate(&args);
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
        )
    };

    let (code, text) = check(
        "GET /v1/by-header",
        &["--header", "X-Vehicle: Sedan"],
        false,
    );
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.starts_with("ALLOW  forwarded to the HTTP backend\n"),
        "{text}"
    );
    assert!(
        text.contains(
            "  route       /by-header (routes[0], prefix /v1, methods GET) → dynamic routing on request.headers[X-Vehicle] (3 rules)\n"
        ),
        "{text}"
    );
    assert!(
        text.contains(
            "  backend     rule 'cars' (request.headers[X-Vehicle] = 'Sedan': matched its ANY_OF key) → HTTP backend http://127.0.0.1:9001/cars/Sedan\n"
        ),
        "{text}"
    );
    assert!(
        text.contains("  backend URL http://127.0.0.1:9001/cars/Sedan\n"),
        "{text}"
    );
    assert!(
        text.contains(
            "INFO  dynamicRouting.backendMatched  Backend rule 'cars' matched request.headers[X-Vehicle] = 'Sedan'."
        ),
        "{text}"
    );

    let (code, out) = check("GET /v1/by-header", &["--header", "X-Vehicle: Sedan"], true);
    assert_eq!(code, Some(0));
    let doc: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        doc["dynamicRouting"],
        json!({
            "selector": "request.headers[X-Vehicle]",
            "value": "Sedan",
            "rule": "cars",
            "matched": "ANY_OF",
            "backend": {"type": "HTTP_BACKEND", "url": "http://127.0.0.1:9001/cars/Sedan"}
        })
    );
    assert_eq!(doc["backendUrl"], "http://127.0.0.1:9001/cars/Sedan");
    assert_eq!(doc["status"], Value::Null);

    // The default rule, a stock response.
    let (code, out) = check("GET /v1/by-query?type=ship", &[], true);
    assert_eq!(code, Some(0));
    let doc: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        doc["dynamicRouting"],
        json!({
            "selector": "request.query[type]",
            "value": "ship",
            "rule": "fallback",
            "matched": "DEFAULT",
            "backend": {"type": "STOCK_RESPONSE_BACKEND", "status": 203}
        })
    );
    assert_eq!(doc["status"], 203);
    let (_, text) = check("GET /v1/by-query?type=ship", &[], false);
    assert!(
        text.contains(
            "  backend     rule 'fallback' (request.query[type] = 'ship': no key matched; the default rule) → stock response 203\n"
        ),
        "{text}"
    );

    // No rule: 404, exit 1, the keys tried listed.
    let (code, text) = check(
        "GET /v1/by-header",
        &["--header", "X-Vehicle: TRUCK"],
        false,
    );
    assert_eq!(code, Some(1), "{text}");
    assert!(text.starts_with("DENY  404 Not Found\n"), "{text}");
    assert!(
        text.contains(
            "  backend     none (request.headers[X-Vehicle] = 'TRUCK': no key matched and no rule is the default; keys tried: car, sedan, truck*, +-region) → 404\n"
        ),
        "{text}"
    );
    assert!(
        text.contains("WARN  dynamicRouting.backendRejected"),
        "{text}"
    );
    let (code, out) = check("GET /v1/by-header", &["--header", "X-Vehicle: TRUCK"], true);
    assert_eq!(code, Some(1));
    let doc: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(doc["status"], 404);
    assert_eq!(doc["decision"], "deny");
    assert_eq!(doc["dynamicRouting"]["rule"], Value::Null);
    assert_eq!(doc["dynamicRouting"]["backend"], Value::Null);
    assert!(doc["events"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["code"] == "dynamicRouting.backendRejected" && e["level"] == "WARN"));

    // A hostile value: the chosen URL refuses it (400), as serve does.
    let (code, text) = check(
        "GET /v1/by-header",
        &["--header", "X-Vehicle: truck/../admin"],
        false,
    );
    assert_eq!(code, Some(1), "{text}");
    assert!(text.starts_with("DENY  400"), "{text}");
    assert!(
        text.contains("→ HTTP backend http://127.0.0.1:9002/trucks/${request.headers[X-Vehicle]}, refused with 400: a value put into the backend path holds '/' or '\\', or is '.' or '..'\n"),
        "{text}"
    );

    // A claim selector: the token's verified claim.
    let token = signer.token(
        json!({"iss": ISS, "aud": AUD, "sub": "alice", "tenant": "globex-us", "exp": now() + 600}),
    );
    let (code, out) = check("GET /v1/by-claim", &["--token", &token], true);
    assert_eq!(code, Some(0), "{out}");
    let doc: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(doc["dynamicRouting"]["rule"], "globex");
    assert_eq!(doc["dynamicRouting"]["matched"], "WILDCARD");
    assert_eq!(doc["backendUrl"], "http://127.0.0.1:9002/globex");
}

/// `request.usage_plan[id]`: the plan the usage-plan phase counted the request under chooses
/// the backend (routing comes after usage plans), in `serve` and in `check`.
#[test]
fn the_usage_plan_a_request_counts_under_selects() {
    let root = support::repo().join("examples/usage-plans");
    let mut deployment: Value =
        serde_json::from_str(&std::fs::read_to_string(root.join("deployment.json")).unwrap())
            .unwrap();
    deployment["specification"]["routes"][0]["backend"] = json!({
        "type": "DYNAMIC_ROUTING_BACKEND",
        "selectionSource": {"type": "SINGLE", "selector": "request.usage_plan[id]"},
        "routingBackends": [
            {"key": key("ANY_OF", "premium", json!(["ocid1.usageplan.oc1..premium"]), false),
             "backend": stock(200, "premium forecast")},
            {"key": key("WILDCARD", "everyone", json!("*"), false),
             "backend": stock(200, "basic forecast")}
        ]
    });
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("weather.json");
    std::fs::write(&file, deployment.to_string()).unwrap();
    let plans = root.join("usage-plans.json");
    let subscribers = root.join("subscribers.json");
    let (plans, subscribers) = (plans.to_str().unwrap(), subscribers.to_str().unwrap());
    let file_arg = file.to_str().unwrap().to_owned();

    let check = |key: &str| {
        let output = claimgate(&[
            "check",
            "--deployment",
            &file_arg,
            "--request",
            "GET /weather/forecast",
            "--header",
            &format!("x-api-key: {key}"),
            "--usage-plans",
            plans,
            "--subscribers",
            subscribers,
            "-o",
            "json",
        ]);
        let doc: Value = serde_json::from_slice(&output.stdout).unwrap();
        (
            doc["dynamicRouting"]["value"].clone(),
            doc["dynamicRouting"]["rule"].clone(),
        )
    };
    assert_eq!(
        check("acme-mobile-7d2e90"),
        (json!("ocid1.usageplan.oc1..premium"), json!("premium"))
    );
    assert_eq!(
        check("free-key-3f9a1c"),
        (json!("ocid1.usageplan.oc1..free"), json!("everyone"))
    );

    let gw = support::start_gateway_on(
        dir,
        &[file],
        false,
        &["--usage-plans", plans, "--subscribers", subscribers],
    );
    let premium = get(
        &gw,
        "/weather/forecast",
        &[("x-api-key", "acme-web-b41c55")],
    );
    assert_eq!(
        (premium.status, premium.body.as_str()),
        (200, "premium forecast")
    );
    assert_eq!(routing_records(&gw, &premium.id), matched("premium"));
    let free = get(
        &gw,
        "/weather/forecast",
        &[("x-api-key", "free-key-3f9a1c")],
    );
    assert_eq!((free.status, free.body.as_str()), (200, "basic forecast"));
    // No subscriber: refused by the usage plan before routing.
    let nobody = get(&gw, "/weather/forecast", &[("x-api-key", "guessed")]);
    assert_eq!(nobody.status, 403);
    assert!(routing_records(&gw, &nobody.id).is_empty());
}

/// At the WARN execution-log level a matched rule is not recorded (INFO), a rejected request
/// still is.
#[test]
fn at_warn_only_rejections_are_recorded() {
    let mut spec = route(
        "/r",
        "request.headers[X-Vehicle]",
        json!([{"key": key("ANY_OF", "cars", json!(["car"]), false), "backend": stock(200, "cars")}]),
        true,
    );
    spec["requestPolicies"] = json!({});
    let deployment = json!({
        "pathPrefix": "/w",
        "specification": {
            "loggingPolicies": {"executionLog": {"logLevel": "WARN"}},
            "routes": [spec]
        }
    });
    let gw = start_gateway(&[deployment], false, &[]);
    let matched_request = get(&gw, "/w/r", &[("X-Vehicle", "car")]);
    assert_eq!(matched_request.status, 200);
    let rejected = get(&gw, "/w/r", &[("X-Vehicle", "bus")]);
    assert_eq!(rejected.status, 404);
    assert_eq!(
        routing_records(&gw, &rejected.id),
        vec![(
            "dynamicRouting.backendRejected".into(),
            "WARN".into(),
            Value::Null
        )]
    );
    // Written in order: the rejected request's record is there, the matched one's is not.
    assert!(routing_records(&gw, &matched_request.id).is_empty());
}
