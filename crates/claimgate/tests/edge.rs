//! `claimgate serve` end to end for what runs before authentication: `rateLimiting`, `cors` and
//! `mutualTls`. The real binary on loopback ports, real HTTP(S) requests, certificates made in
//! the test with rcgen, and the log files and metrics it writes.

mod support;

use support::{ca, Ca};

use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use support::{now, records, refused_by_serve, start_gateway_on, Gateway, Signer};

/// Starts the gateway on `deployments` (written into a temporary directory) with `extra` flags,
/// an admin listener, and logs in files.
fn start(deployments: &[Value], extra: &[&str]) -> Gateway {
    let dir = tempfile::tempdir().unwrap();
    start_in(dir, deployments, extra)
}

fn start_in(dir: tempfile::TempDir, deployments: &[Value], extra: &[&str]) -> Gateway {
    let files: Vec<PathBuf> = deployments
        .iter()
        .enumerate()
        .map(|(i, deployment)| {
            let file = dir.path().join(format!("deployment-{i}.json"));
            std::fs::write(&file, deployment.to_string()).unwrap();
            file
        })
        .collect();
    start_gateway_on(dir, &files, true, extra)
}

struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }
    fn request_id(&self) -> String {
        self.header("opc-request-id").unwrap().to_owned()
    }
}

/// A runtime and one HTTP client for a test (connections are reused, so sequential requests
/// are quick, as rate-limit tests need).
struct Http {
    rt: tokio::runtime::Runtime,
    client: reqwest::Client,
}

fn http() -> Http {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let client = rt.block_on(async { reqwest::Client::builder().no_proxy().build().unwrap() });
    Http { rt, client }
}

impl Http {
    fn call(&self, method: &str, url: &str, headers: &[(&str, &str)]) -> Answer {
        self.rt
            .block_on(send(&self.client, method, url, headers))
            .unwrap()
    }
}

async fn send(
    client: &reqwest::Client,
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
) -> Result<Answer, String> {
    let mut request = client
        .request(method.parse().unwrap(), url)
        .timeout(Duration::from_secs(20));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.map_err(|e| format!("{e:?}"))?;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.text().await.map_err(|e| format!("{e:?}"))?;
    Ok(Answer {
        status,
        headers,
        body,
    })
}

fn metrics(http: &Http, gw: &Gateway) -> String {
    let admin = gw.admin.as_deref().expect("started with an admin listener");
    http.call("GET", &format!("{admin}/metrics"), &[]).body
}

fn stock(prefix: &str, name: &str, policies: Value) -> Value {
    json!({
        "displayName": name,
        "pathPrefix": prefix,
        "specification": {
            "requestPolicies": policies,
            "routes": [{"path": "/hello", "methods": ["GET"],
                        "backend": {"type": "STOCK_RESPONSE_BACKEND", "status": 200, "body": "hello"}}]
        }
    })
}

const TOO_MANY: &str = r#"{"message":"Too Many Requests","code":429}"#;

#[test]
fn total_rate_limit_refuses_beyond_the_bucket_with_retry_after_a_record_and_a_metric() {
    let http = http();
    let gw = start(
        &[
            stock(
                "/limited",
                "limited",
                json!({"rateLimiting": {"rateInRequestsPerSecond": 3, "rateKey": "TOTAL"}}),
            ),
            stock("/free", "free", json!({})),
        ],
        &[],
    );
    let url = format!("{}/limited/hello", gw.base);
    let started = Instant::now();
    let answers: Vec<Answer> = (0..12).map(|_| http.call("GET", &url, &[])).collect();
    let elapsed = started.elapsed().as_secs_f64();
    let allowed = answers.iter().filter(|a| a.status == 200).count();
    let refused: Vec<&Answer> = answers.iter().filter(|a| a.status == 429).collect();
    assert_eq!(allowed + refused.len(), 12);
    // A full bucket of 3, plus what refilled (3 per second) while the requests were sent.
    assert!(allowed >= 3, "{allowed} allowed");
    assert!(
        allowed as f64 <= 3.0 + (elapsed * 3.0).ceil(),
        "{allowed} allowed in {elapsed:.2}s"
    );
    assert!(answers[..3].iter().all(|a| a.status == 200));
    let first = refused.first().expect("some requests are refused");
    assert_eq!(first.body, TOO_MANY);
    assert_eq!(first.header("content-type"), Some("application/json"));
    assert_eq!(first.header("retry-after"), Some("1"));

    let record = records(&gw.execution_log, &first.request_id(), 1);
    assert_eq!(record.len(), 1, "{record:?}");
    let data = &record[0]["data"];
    assert_eq!(data["code"], "rateLimiting.requestDenied");
    assert_eq!(data["level"], "WARN");
    assert_eq!(data["configuredLimit"], 3);
    assert_eq!(data["configuredUnit"], "SECOND");
    assert_eq!(data["limitingKey"], "TOTAL");

    // Another deployment is not limited by this one's bucket.
    for _ in 0..10 {
        assert_eq!(
            http.call("GET", &format!("{}/free/hello", gw.base), &[])
                .status,
            200
        );
    }
    let text = metrics(&http, &gw);
    let expected = format!(
        r#"claimgate_rate_limited_total{{deployment="limited"}} {}"#,
        refused.len()
    );
    assert!(text.contains(&expected), "missing {expected} in\n{text}");
    assert!(!text.contains(r#"claimgate_rate_limited_total{deployment="free"}"#));

    // After a second's rest the bucket is full again.
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(http.call("GET", &url, &[]).status, 200);
}

fn per_client() -> Value {
    stock(
        "/v1",
        "per-client",
        json!({"rateLimiting": {"rateInRequestsPerSecond": 1, "rateKey": "CLIENT_IP"}}),
    )
}

#[test]
fn client_ip_rate_limit_ignores_a_spoofed_x_forwarded_for() {
    let http = http();
    let gw = start(&[per_client()], &[]);
    let url = format!("{}/v1/hello", gw.base);
    let first = http.call("GET", &url, &[("x-forwarded-for", "198.51.100.1")]);
    assert_eq!(first.status, 200);
    // A different X-Forwarded-For from the same untrusted peer is the same client.
    let second = http.call("GET", &url, &[("x-forwarded-for", "198.51.100.2")]);
    assert_eq!(second.status, 429, "{}", second.body);
    assert_eq!(second.body, TOO_MANY);
    let record = records(&gw.execution_log, &second.request_id(), 1);
    assert_eq!(record[0]["data"]["limitingKey"], "127.0.0.1");
}

#[test]
fn client_ip_rate_limit_honours_x_forwarded_for_from_a_trusted_proxy() {
    let http = http();
    let gw = start(&[per_client()], &["--trusted-proxy", "127.0.0.0/8"]);
    let url = format!("{}/v1/hello", gw.base);
    let from = |xff: &str| http.call("GET", &url, &[("x-forwarded-for", xff)]);
    assert_eq!(from("198.51.100.1").status, 200);
    // Each client named by the proxy has its own bucket.
    assert_eq!(from("198.51.100.2").status, 200);
    let again = from("198.51.100.1");
    assert_eq!(again.status, 429);
    let record = records(&gw.execution_log, &again.request_id(), 1);
    assert_eq!(record[0]["data"]["limitingKey"], "198.51.100.1");
    // What a client writes in front of the address the proxy appended does not help it.
    assert_eq!(from("203.0.113.9, 198.51.100.2").status, 429);
    // IPv6 clients are grouped by /64.
    assert_eq!(from("2001:db8:1:2::1").status, 200);
    let same_64 = from("2001:db8:1:2::ffff");
    assert_eq!(same_64.status, 429);
    let record = records(&gw.execution_log, &same_64.request_id(), 1);
    assert_eq!(record[0]["data"]["limitingKey"], "2001:db8:1:2::/64");
    assert_eq!(from("2001:db8:1:3::1").status, 200);
}

#[test]
fn trusted_proxy_must_be_a_network() {
    let stderr = refused_by_serve(&["--trusted-proxy", "10.0.0.0/40"]);
    assert!(stderr.contains("prefix length"), "{stderr}");
}

/// The key of the static-key deployments here, made once.
fn signer() -> &'static Signer {
    static S: OnceLock<Signer> = OnceLock::new();
    S.get_or_init(|| Signer::new("k1"))
}

/// A valid token for those deployments.
fn token() -> String {
    signer().token(json!({"iss": "https://idp.test/", "aud": "api://shop", "exp": now() + 600}))
}

const APP: &str = "https://app.example.com";

fn cors_deployment() -> Value {
    json!({
        "displayName": "shop",
        "pathPrefix": "/v1",
        "specification": {
            "requestPolicies": {
                "authentication": {
                    "type": "JWT_AUTHENTICATION", "tokenHeader": "Authorization", "tokenAuthScheme": "Bearer",
                    "issuers": ["https://idp.test/"], "audiences": ["api://shop"], "isAnonymousAccessAllowed": true,
                    "publicKeys": {"type": "STATIC_KEYS", "keys": [signer().static_key()]}
                },
                "cors": {
                    "allowedOrigins": [APP],
                    "allowedMethods": ["GET", "PUT"],
                    "allowedHeaders": ["Authorization", "X-Tenant"],
                    "exposedHeaders": ["X-Total"],
                    "isAllowCredentialsEnabled": true,
                    "maxAgeInSeconds": 600
                }
            },
            "routes": [
                {"path": "/orders", "methods": ["GET", "PUT"],
                 "backend": {"type": "STOCK_RESPONSE_BACKEND", "status": 200, "body": "orders",
                             "headers": [{"name": "X-Total", "value": "7"}]}},
                {"path": "/public", "methods": ["GET", "DELETE"],
                 "requestPolicies": {
                     "authorization": {"type": "ANONYMOUS"},
                     "cors": {"allowedOrigins": ["*"], "allowedMethods": ["DELETE"]}
                 },
                 "backend": {"type": "STOCK_RESPONSE_BACKEND", "status": 200, "body": "public",
                             "headers": [{"name": "Access-Control-Allow-Origin", "value": "https://backend.example"}]}}
            ]
        }
    })
}

fn preflight<'a>(origin: &'a str, method: &'a str, headers: &'a str) -> Vec<(&'a str, &'a str)> {
    let mut list = vec![
        ("origin", origin),
        ("access-control-request-method", method),
    ];
    if !headers.is_empty() {
        list.push(("access-control-request-headers", headers));
    }
    list
}

#[test]
fn cors_preflights_are_answered_without_authentication() {
    let http = http();
    let gw = start(&[cors_deployment()], &[]);
    let orders = format!("{}/v1/orders", gw.base);

    // Allowed: no token needed, every header of the deployment's policy.
    let ok = http.call(
        "OPTIONS",
        &orders,
        &preflight(APP, "PUT", "authorization, x-tenant"),
    );
    assert_eq!(ok.status, 204, "{}", ok.body);
    assert_eq!(ok.header("access-control-allow-origin"), Some(APP));
    assert_eq!(ok.header("access-control-allow-credentials"), Some("true"));
    assert_eq!(ok.header("access-control-allow-methods"), Some("GET, PUT"));
    assert_eq!(
        ok.header("access-control-allow-headers"),
        Some("Authorization, X-Tenant")
    );
    assert_eq!(ok.header("access-control-max-age"), Some("600"));
    assert!(ok.header("opc-request-id").is_some());
    assert!(ok.body.is_empty());

    // Refused origin, method or header: 403 without CORS headers, and the reason logged.
    let evil = http.call(
        "OPTIONS",
        &orders,
        &preflight("https://evil.example", "GET", ""),
    );
    assert_eq!(evil.status, 403);
    assert_eq!(evil.body, r#"{"message":"Forbidden","code":403}"#);
    assert_eq!(evil.header("access-control-allow-origin"), None);
    assert_eq!(evil.header("www-authenticate"), None);
    let record = records(&gw.execution_log, &evil.request_id(), 1);
    assert_eq!(record[0]["data"]["code"], "cors.preflightRejected");
    assert!(
        record[0]["data"]["message"]
            .as_str()
            .unwrap()
            .contains("origin 'https://evil.example' is not in allowedOrigins"),
        "{record:?}"
    );
    let delete = http.call("OPTIONS", &orders, &preflight(APP, "DELETE", ""));
    assert_eq!(delete.status, 403);
    let header = http.call("OPTIONS", &orders, &preflight(APP, "PUT", "x-debug"));
    assert_eq!(header.status, 403);

    // The route's own policy replaces the deployment's.
    let public = http.call(
        "OPTIONS",
        &format!("{}/v1/public", gw.base),
        &preflight("https://other.example", "DELETE", ""),
    );
    assert_eq!(public.status, 204);
    assert_eq!(public.header("access-control-allow-origin"), Some("*"));
    assert_eq!(
        public.header("access-control-allow-methods"),
        Some("DELETE")
    );
    assert_eq!(public.header("access-control-allow-credentials"), None);
    assert_eq!(
        public.header("access-control-max-age"),
        None,
        "max age 0 is not sent"
    );

    // A path no route serves gets the deployment's policy, so the browser sees the real 404.
    let nowhere = format!("{}/v1/nowhere", gw.base);
    assert_eq!(
        http.call("OPTIONS", &nowhere, &preflight(APP, "GET", ""))
            .status,
        204
    );
    let missing = http.call("GET", &nowhere, &[("origin", APP)]);
    assert_eq!(missing.status, 404);
    assert_eq!(missing.header("access-control-allow-origin"), Some(APP));

    // An OPTIONS request that is not a preflight is routed as usual.
    assert_eq!(http.call("OPTIONS", &orders, &[]).status, 405);
}

#[test]
fn cors_headers_go_on_actual_responses_for_allowed_origins_only() {
    let http = http();
    let gw = start(&[cors_deployment()], &[]);
    let orders = format!("{}/v1/orders", gw.base);
    let bearer = format!("Bearer {}", token());

    let allowed = http.call(
        "GET",
        &orders,
        &[("origin", APP), ("authorization", &bearer)],
    );
    assert_eq!(allowed.status, 200);
    assert_eq!(allowed.body, "orders");
    assert_eq!(allowed.header("access-control-allow-origin"), Some(APP));
    assert_eq!(
        allowed.header("access-control-allow-credentials"),
        Some("true")
    );
    assert_eq!(
        allowed.header("access-control-expose-headers"),
        Some("X-Total")
    );
    assert_eq!(allowed.header("access-control-allow-methods"), None);
    assert!(allowed
        .headers
        .get_all("vary")
        .iter()
        .any(|v| v.to_str().unwrap().contains("Origin")));

    // A refusal is readable by the page too (the browser would otherwise hide the 401).
    let unauthenticated = http.call("GET", &orders, &[("origin", APP)]);
    assert_eq!(unauthenticated.status, 401);
    assert_eq!(
        unauthenticated.header("access-control-allow-origin"),
        Some(APP)
    );

    // Another origin is served (CORS is the browser's to enforce) but gets no CORS headers.
    let other = http.call(
        "GET",
        &orders,
        &[
            ("origin", "https://evil.example"),
            ("authorization", &bearer),
        ],
    );
    assert_eq!(other.status, 200);
    assert_eq!(other.header("access-control-allow-origin"), None);
    assert_eq!(other.header("access-control-expose-headers"), None);

    // The route's policy: any origin, without credentials; the backend's own header is replaced.
    let public = http.call(
        "GET",
        &format!("{}/v1/public", gw.base),
        &[("origin", "https://other.example")],
    );
    assert_eq!(public.status, 200);
    assert_eq!(public.header("access-control-allow-origin"), Some("*"));
    assert_eq!(public.header("access-control-allow-credentials"), None);
}

#[test]
fn a_flood_of_preflights_is_answered_and_the_gateway_keeps_serving() {
    let http = http();
    let gw = start(&[cors_deployment()], &[]);
    let orders = format!("{}/v1/orders", gw.base);
    // 50 concurrent senders, 40 preflights each, half from a refused origin.
    let statuses: Vec<u16> = http.rt.block_on(async {
        let mut tasks = tokio::task::JoinSet::new();
        for sender in 0..50 {
            let (client, url) = (http.client.clone(), orders.clone());
            tasks.spawn(async move {
                let mut statuses = Vec::new();
                for i in 0..40 {
                    let origin = if (sender + i) % 2 == 0 {
                        APP
                    } else {
                        "https://evil.example"
                    };
                    let headers = preflight(origin, "PUT", "x-tenant");
                    let answer = send(&client, "OPTIONS", &url, &headers).await;
                    statuses.push(answer.map_or(0, |a| a.status));
                }
                statuses
            });
        }
        let mut statuses = Vec::new();
        while let Some(some) = tasks.join_next().await {
            statuses.extend(some.unwrap());
        }
        statuses
    });
    assert_eq!(statuses.iter().filter(|s| **s == 204).count(), 1000);
    assert_eq!(statuses.iter().filter(|s| **s == 403).count(), 1000);
    let bearer = format!("Bearer {}", token());
    let after = http.call("GET", &orders, &[("authorization", &bearer)]);
    assert_eq!(after.status, 200);
}

/// A leaf certificate from `ca` with `cn` and DNS `sans`, as a PEM identity (key and
/// certificate) for reqwest, or (certificate, key) for a server.
fn leaf(ca: &Ca, cn: &str, sans: &[&str], client: bool) -> (String, String) {
    support::leaf(ca, Some(cn), sans, client, None).pair()
}

/// HTTPS GET trusting `server_ca`, presenting `identity` (certificate and key PEM) if given.
fn https_get(
    http: &Http,
    url: &str,
    server_ca: &str,
    identity: Option<&(String, String)>,
) -> Result<Answer, String> {
    let mut builder = reqwest::Client::builder()
        .no_proxy()
        .tls_certs_only([reqwest::Certificate::from_pem(server_ca.as_bytes()).unwrap()]);
    if let Some((cert, key)) = identity {
        let pem = format!("{key}{cert}");
        builder = builder.identity(reqwest::Identity::from_pem(pem.as_bytes()).unwrap());
    }
    http.rt.block_on(async {
        let client = builder.build().unwrap();
        send(&client, "GET", url, &[]).await
    })
}

#[test]
fn mutual_tls_refuses_missing_untrusted_and_wrongly_named_certificates() {
    let http = http();
    let dir = tempfile::tempdir().unwrap();
    let server_ca = ca("claimgate test server CA");
    let (server_cert, server_key) = leaf(&server_ca, "localhost", &["localhost"], false);
    let client_ca = ca("claimgate test client CA");
    let stranger_ca = ca("someone else's CA");
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_owned()
    };
    let cert_file = write("server.pem", &server_cert);
    let key_file = write("server.key", &server_key);
    let ca_file = write("clients.pem", &client_ca.pem);
    let guarded = stock(
        "/guarded",
        "guarded",
        json!({"mutualTls": {"isVerifiedCertificateRequired": true, "allowedSans": ["client.a.apigw"]}}),
    );
    let gw = start_in(
        dir,
        &[guarded, stock("/open", "open", json!({}))],
        &[
            "--tls-cert",
            &cert_file,
            "--tls-key",
            &key_file,
            "--client-ca",
            &ca_file,
        ],
    );
    let base = gw.base.replace("http://127.0.0.1", "https://localhost");
    let guarded_url = format!("{base}/guarded/hello");
    let get = |identity: Option<&(String, String)>| {
        https_get(&http, &guarded_url, &server_ca.pem, identity).unwrap()
    };
    let expect_refusal = |answer: &Answer, code: &str, message: &str| {
        assert_eq!(answer.status, 401, "{}", answer.body);
        assert_eq!(answer.body, r#"{"message":"Unauthorized","code":401}"#);
        let record = records(&gw.execution_log, &answer.request_id(), 1);
        assert_eq!(record.len(), 1, "{record:?}");
        assert_eq!(record[0]["data"]["code"], code);
        assert_eq!(record[0]["data"]["message"], message);
        assert_eq!(record[0]["data"]["level"], "WARN");
        record[0]["data"].clone()
    };

    // No certificate: the TLS handshake succeeds (certificates are optional there), the
    // deployment refuses.
    let none = get(None);
    let data = expect_refusal(
        &none,
        "mutualTls.clientCertificateInvalid",
        "Client certificate is invalid for this gateway.",
    );
    assert!(data["reason"]
        .as_str()
        .unwrap()
        .contains("no client certificate"));

    // A certificate from a CA that is not trusted.
    let stranger = leaf(&stranger_ca, "client.a.apigw", &["client.a.apigw"], true);
    expect_refusal(
        &get(Some(&stranger)),
        "mutualTls.clientCertificateInvalid",
        "Client certificate is invalid for this gateway.",
    );

    // A trusted certificate with names outside allowedSans.
    let wrong = leaf(&client_ca, "client.z.apigw", &["client.z.apigw"], true);
    let data = expect_refusal(
        &get(Some(&wrong)),
        "mutualTls.clientCertificateSanInvalid",
        "SAN validation failure",
    );
    assert_eq!(data["certificateNames"], json!(["client.z.apigw"]));

    // The allowed name as a SAN, or as the CN of a certificate without SANs; a CN next to
    // other SANs does not count.
    let good = leaf(&client_ca, "client.a.apigw", &["client.a.apigw"], true);
    let allowed = get(Some(&good));
    assert_eq!(allowed.status, 200, "{}", allowed.body);
    assert_eq!(allowed.body, "hello");
    let by_cn = leaf(&client_ca, "client.a.apigw", &[], true);
    assert_eq!(get(Some(&by_cn)).status, 200);
    let cn_beside_sans = leaf(&client_ca, "client.a.apigw", &["other.apigw"], true);
    expect_refusal(
        &get(Some(&cn_beside_sans)),
        "mutualTls.clientCertificateSanInvalid",
        "SAN validation failure",
    );

    // A deployment without mutualTls on the same listener needs no certificate.
    let open = https_get(&http, &format!("{base}/open/hello"), &server_ca.pem, None).unwrap();
    assert_eq!(open.status, 200);
}

#[test]
fn mutual_tls_without_a_client_ca_is_a_configuration_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("mtls.json");
    let deployment = stock(
        "/guarded",
        "guarded",
        json!({"mutualTls": {"isVerifiedCertificateRequired": true}}),
    );
    std::fs::write(&file, deployment.to_string()).unwrap();
    let stderr = refused_by_serve(&[
        "--deployment",
        file.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
    ]);
    assert!(stderr.contains("--client-ca"), "{stderr}");
    assert!(stderr.contains("/guarded (guarded)"), "{stderr}");

    // --client-ca needs --tls-cert.
    let stderr = refused_by_serve(&["--client-ca", file.to_str().unwrap()]);
    assert!(stderr.contains("--tls-cert"), "{stderr}");
}

#[test]
fn a_reload_adding_mutual_tls_without_a_client_ca_is_rejected_and_the_old_set_serves() {
    let http = http();
    let gw = start(&[stock("/v1", "plain", json!({}))], &[]);
    let url = format!("{}/v1/hello", gw.base);
    assert_eq!(http.call("GET", &url, &[]).status, 200);
    let file = gw.dir.path().join("deployment-0.json");
    let guarded = stock(
        "/v1",
        "plain",
        json!({"mutualTls": {"isVerifiedCertificateRequired": true}}),
    );
    std::fs::write(&file, guarded.to_string()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let rejection = loop {
        let found = std::fs::read_to_string(&gw.execution_log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|r| r["data"]["code"] == "configuration.reloadRejected");
        if let Some(record) = found {
            break record;
        }
        assert!(Instant::now() < deadline, "the reload was not rejected");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        rejection["data"]["message"]
            .as_str()
            .unwrap()
            .contains("--client-ca is not set"),
        "{rejection}"
    );
    assert_eq!(http.call("GET", &url, &[]).status, 200);
}
