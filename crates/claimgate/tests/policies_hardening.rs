//! Issue 11's policy findings end to end: identity headers a client cannot spoof with `_`,
//! `MODIFY_RESPONSE` statuses and content type, repeated selector headers, CORS `*` with
//! credentials on a mutual-TLS deployment, and `request.cert`. The real binary on loopback
//! ports, a raw echo upstream in the test process, certificates made with rcgen.

mod support;

use support::{ca, Ca};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;
use support::{now, refused_by_serve, runtime, start_gateway_on, Gateway, Signer};

const ISS: &str = "https://idp.test/";
const AUD: &str = "api://orders";

fn signer() -> &'static Signer {
    static S: OnceLock<Signer> = OnceLock::new();
    S.get_or_init(|| Signer::new("k1"))
}

fn token(sub: &str) -> String {
    signer().token(json!({"iss": ISS, "aud": AUD, "sub": sub, "exp": now() + 600}))
}

/// An upstream that answers with every header it received, in order and repeated ones kept:
/// `{"headers": [[name, value], ...]}`.
fn start_echo(runtime: &tokio::runtime::Runtime) -> SocketAddr {
    support::serve_http(runtime, |request: Request<hyper::body::Incoming>| {
        let headers: Vec<Value> = request
            .headers()
            .iter()
            .map(|(n, v)| json!([n.as_str(), v.to_str().unwrap_or("?")]))
            .collect();
        let body = json!({"headers": headers}).to_string();
        async move {
            let mut response = Response::new(Full::new(Bytes::from(body)));
            response
                .headers_mut()
                .insert("content-type", "application/json".parse().unwrap());
            response
        }
    })
}

/// The values the echo upstream received under exactly `name` (lower case).
fn received(body: &str, name: &str) -> Vec<String> {
    let echoed: Value = serde_json::from_str(body).unwrap_or_else(|_| panic!("{body}"));
    echoed["headers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|pair| pair[0] == name)
        .map(|pair| pair[1].as_str().unwrap().to_owned())
        .collect()
}

/// Starts the gateway on `deployments`, written to a temporary directory, with `extra` flags.
fn start(deployments: &[Value], extra: &[&str]) -> Gateway {
    support::start_gateway(deployments, false, extra)
}

fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(20))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// `GET url` with these headers (repeated names are sent repeated): status, headers, body.
fn get(
    client: &reqwest::blocking::Client,
    url: &str,
    headers: &[(&str, &str)],
) -> (u16, reqwest::header::HeaderMap, String) {
    let mut request = client.get(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, headers, response.text().unwrap())
}

fn jwt_policy() -> Value {
    json!({
        "type": "JWT_AUTHENTICATION", "tokenHeader": "Authorization", "tokenAuthScheme": "Bearer",
        "issuers": [ISS], "audiences": [AUD], "isAnonymousAccessAllowed": true,
        "publicKeys": {"type": "STATIC_KEYS", "keys": [signer().static_key()]}
    })
}

/// SPEC: a header set from `request.auth` removes every client header whose name is the same
/// once `_` and `-` are treated alike, on authenticated and anonymous routes, whatever
/// `ifExists` says.
#[test]
fn identity_headers_from_claims_remove_their_underscore_look_alikes() {
    let rt = runtime();
    let upstream = start_echo(&rt);
    let set_user = json!({"headerTransformations": {"setHeaders": {"items": [
        {"name": "X-User", "values": ["${request.auth[sub]}"], "ifExists": "APPEND"}
    ]}}});
    let mut anonymous = set_user.clone();
    anonymous["authorization"] = json!({"type": "ANONYMOUS"});
    let backend = json!({"type": "HTTP_BACKEND", "url": format!("http://{upstream}/")});
    let deployment = json!({
        "displayName": "orders",
        "pathPrefix": "/v1",
        "specification": {
            "requestPolicies": {"authentication": jwt_policy()},
            "routes": [
                {"path": "/me", "methods": ["GET"], "requestPolicies": set_user, "backend": backend},
                {"path": "/public", "methods": ["GET"], "requestPolicies": anonymous, "backend": backend}
            ]
        }
    });
    let gw = start(&[deployment], &[]);
    let http = client();
    let bearer = format!("Bearer {}", token("alice"));
    let spoofs = [
        ("X_User", "attacker"),
        ("x-user", "attacker"),
        ("x_USER", "attacker2"),
        ("X_Other", "kept"),
    ];

    let mut headers = vec![("Authorization", bearer.as_str())];
    headers.extend(spoofs);
    let (status, _, body) = get(&http, &format!("{}/v1/me", gw.base), &headers);
    assert_eq!(status, 200, "{body}");
    assert_eq!(received(&body, "x-user"), ["alice"], "{body}");
    assert!(received(&body, "x_user").is_empty(), "{body}");
    assert_eq!(
        received(&body, "x_other"),
        ["kept"],
        "other names are not touched"
    );

    // Anonymous: no claim, so no X-User, and none of the client's either.
    let (status, _, body) = get(&http, &format!("{}/v1/public", gw.base), &spoofs);
    assert_eq!(status, 200, "{body}");
    assert!(received(&body, "x-user").is_empty(), "{body}");
    assert!(received(&body, "x_user").is_empty(), "{body}");
    assert_eq!(received(&body, "x_other"), ["kept"]);
}

/// SPEC: `MODIFY_RESPONSE` takes a status from a context variable only in 200-599 (else 401),
/// and sends its message as `text/plain; charset=utf-8` with `nosniff` unless a header
/// transformation sets `Content-Type`.
#[test]
fn modify_response_takes_a_variable_status_only_from_200_to_599_as_plain_text() {
    let policy = |headers: Value| {
        let mut failure = json!({"type": "MODIFY_RESPONSE", "responseCode": "${request.query[code]}",
            "responseMessage": "<script>alert(1)</script> ${request.query[who]}"});
        if !headers.is_null() {
            failure["responseHeaderTransformations"] = headers;
        }
        json!({
            "type": "TOKEN_AUTHENTICATION", "tokenHeader": "Authorization", "tokenAuthScheme": "Bearer",
            "validationPolicy": {"type": "STATIC_KEYS",
                "keys": [{"kid": "k1", "format": "JSON_WEB_KEY", "kty": "RSA",
                          "n": signer().jwk()["n"], "e": signer().jwk()["e"]}],
                "additionalValidationPolicy": {"audiences": [AUD]}},
            "validationFailurePolicy": failure
        })
    };
    let deployment = |prefix: &str, headers: Value| {
        json!({"pathPrefix": prefix, "specification": {
            "requestPolicies": {"authentication": policy(headers)},
            "routes": [{"path": "/x", "methods": ["GET"],
                        "backend": {"type": "STOCK_RESPONSE_BACKEND", "status": 200, "body": "ok"}}]
        }})
    };
    let json_type = json!({"setHeaders": {"items": [
        {"name": "Content-Type", "values": ["application/json"]}]}});
    let gw = start(
        &[deployment("/v1", Value::Null), deployment("/v2", json_type)],
        &[],
    );
    let http = client();
    for (code, expected) in [
        ("101", 401),
        ("199", 401),
        ("200", 200),
        ("302", 302),
        ("599", 599),
        ("600", 401),
        ("abc", 401),
        ("", 401),
    ] {
        let url = format!("{}/v1/x?who=bob&code={code}", gw.base);
        let (status, headers, body) = get(&http, &url, &[]);
        assert_eq!(status, expected, "code={code}: {body}");
        assert_eq!(
            headers["content-type"], "text/plain; charset=utf-8",
            "code={code}"
        );
        assert_eq!(headers["x-content-type-options"], "nosniff", "code={code}");
        assert_eq!(body, "<script>alert(1)</script> bob");
    }
    let (status, headers, _) = get(&http, &format!("{}/v2/x?code=403", gw.base), &[]);
    assert_eq!(status, 403);
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    // A valid token is not affected.
    let bearer = format!("Bearer {}", token("alice"));
    let (status, _, body) = get(
        &http,
        &format!("{}/v1/x?code=101", gw.base),
        &[("Authorization", &bearer)],
    );
    assert_eq!((status, body.as_str()), (200, "ok"));
}

/// SPEC: a selector takes a repeated header's first value (two `X-Tenant` headers used to
/// count as none, which fell to the default server).
#[test]
fn a_repeated_selector_header_selects_by_its_first_value() {
    let acme = Signer::new("acme-key");
    let globex = Signer::new("globex-key");
    let server = |name: &str, signer: &Signer, default: bool| {
        json!({"key": {"type": "ANY_OF", "name": name, "values": [name], "isDefault": default},
               "authenticationServerDetail": {
                   "type": "JWT_AUTHENTICATION", "tokenHeader": "Authorization", "tokenAuthScheme": "Bearer",
                   "issuers": [ISS], "audiences": [AUD],
                   "publicKeys": {"type": "STATIC_KEYS", "keys": [signer.static_key()]}}})
    };
    let deployment = json!({
        "displayName": "orders",
        "pathPrefix": "/v1",
        "specification": {
            "requestPolicies": {"dynamicAuthentication": {
                "selectionSource": {"type": "SINGLE", "selector": "request.headers[X-Tenant]"},
                "authenticationServers": [server("acme", &acme, false), server("globex", &globex, true)]
            }},
            "routes": [{"path": "/orders", "methods": ["GET"],
                        "backend": {"type": "STOCK_RESPONSE_BACKEND", "status": 200, "body": "orders"}}]
        }
    });
    let gw = start(&[deployment], &[]);
    let http = client();
    let claims = json!({"iss": ISS, "aud": AUD, "sub": "alice", "exp": now() + 600});
    let acme_bearer = format!("Bearer {}", acme.token(claims.clone()));
    let globex_bearer = format!("Bearer {}", globex.token(claims));
    let url = format!("{}/v1/orders", gw.base);
    let status = |bearer: &str, tenants: [&str; 2]| {
        let headers = [
            ("Authorization", bearer),
            ("X-Tenant", tenants[0]),
            ("X-Tenant", tenants[1]),
        ];
        get(&http, &url, &headers).0
    };
    assert_eq!(status(&acme_bearer, ["acme", "globex"]), 200);
    assert_eq!(status(&globex_bearer, ["acme", "globex"]), 401);
    assert_eq!(status(&globex_bearer, ["globex", "acme"]), 200);
    assert_eq!(status(&acme_bearer, ["globex", "acme"]), 401);

    // `check` selects alike.
    let file = gw.dir.path().join("deployment-0.json");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_claimgate"))
        .args(["check", "--deployment", file.to_str().unwrap()])
        .args(["--output", "json", "--request", "GET /v1/orders"])
        .args(["--header", "X-Tenant: acme", "--header", "X-Tenant: globex"])
        .args(["--token", acme_bearer.trim_start_matches("Bearer ")])
        .output()
        .unwrap();
    let json: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    assert_eq!(out.status.code(), Some(0), "{json:#}");
    assert_eq!(json["server"]["selected"], "acme", "{json:#}");
}

fn cors_stock(prefix: &str, mutual_tls: bool) -> Value {
    let mut policies =
        json!({"cors": {"allowedOrigins": ["*"], "isAllowCredentialsEnabled": true}});
    if mutual_tls {
        policies["mutualTls"] = json!({"isVerifiedCertificateRequired": true});
    }
    json!({"displayName": "shop", "pathPrefix": prefix, "specification": {
        "requestPolicies": policies,
        "routes": [{"path": "/hello", "methods": ["GET"],
                    "backend": {"type": "STOCK_RESPONSE_BACKEND", "status": 200, "body": "hello"}}]
    }})
}

/// SPEC: CORS `*` with credentials is refused by `serve` on a deployment with `mutualTls` (the
/// browser would send the victim's certificate for any page); elsewhere the origin is echoed.
#[test]
fn cors_any_origin_with_credentials_is_refused_with_mutual_tls_and_echoed_elsewhere() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("mtls.json");
    std::fs::write(&file, cors_stock("/shop", true).to_string()).unwrap();
    let stderr = refused_by_serve(&[
        "--deployment",
        file.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
    ]);
    assert!(
        stderr.contains("refusing CORS allowedOrigins '*' with isAllowCredentialsEnabled"),
        "{stderr}"
    );
    assert!(stderr.contains("requestPolicies.cors"), "{stderr}");
    assert!(stderr.contains("mutualTls"), "{stderr}");

    let gw = start(&[cors_stock("/shop", false)], &[]);
    let (status, headers, _) = get(
        &client(),
        &format!("{}/shop/hello", gw.base),
        &[("Origin", "https://any.example")],
    );
    assert_eq!(status, 200);
    assert_eq!(
        headers["access-control-allow-origin"],
        "https://any.example"
    );
    assert_eq!(headers["access-control-allow-credentials"], "true");
}

/// A leaf from `ca` named `name` (CN and DNS SAN): (certificate PEM, key PEM, DER).
fn leaf(ca: &Ca, name: &str, client: bool) -> (String, String, Vec<u8>) {
    let leaf = support::leaf(ca, Some(name), &[name], client, None);
    (leaf.cert, leaf.key, leaf.der)
}

/// SPEC: `request.cert[client_base64]` is the verified client certificate (base64 DER); a
/// header set from it replaces the client's (and its `_` look-alikes) like `request.auth`, so a
/// client without a certificate cannot forge it; a deployment without `mutualTls` never
/// exposes one.
#[test]
fn request_cert_is_the_verified_certificate_and_cannot_be_forged() {
    use base64::Engine as _;
    let rt = runtime();
    let upstream = start_echo(&rt);
    let dir = tempfile::tempdir().unwrap();
    let server_ca = ca("claimgate test server CA");
    let (server_cert, server_key, _) = leaf(&server_ca, "localhost", false);
    let client_ca = ca("claimgate test client CA");
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_owned()
    };
    let cert_file = write("server.pem", &server_cert);
    let key_file = write("server.key", &server_key);
    let ca_file = write("clients.pem", &client_ca.pem);
    let deployment = |prefix: &str, mutual_tls: Value| {
        json!({"displayName": prefix.trim_start_matches('/'), "pathPrefix": prefix, "specification": {
            "requestPolicies": {"mutualTls": mutual_tls},
            "routes": [{"path": "/echo", "methods": ["GET"],
                "requestPolicies": {"headerTransformations": {"setHeaders": {"items": [
                    {"name": "X-Client-Cert", "values": ["${request.cert[client_base64]}"], "ifExists": "APPEND"}]}}},
                "backend": {"type": "HTTP_BACKEND", "url": format!("http://{upstream}/")}}]
        }})
    };
    let optional =
        json!({"isVerifiedCertificateRequired": false, "allowedSans": ["client.a.apigw"]});
    let files: Vec<PathBuf> = [deployment("/m", optional), deployment("/open", json!({}))]
        .iter()
        .enumerate()
        .map(|(i, d)| PathBuf::from(write(&format!("deployment-{i}.json"), &d.to_string())))
        .collect();
    let gw = start_gateway_on(
        dir,
        &files,
        false,
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
    let (client_cert, client_key, client_der) = leaf(&client_ca, "client.a.apigw", true);
    let https = |identity: bool| {
        let mut builder = reqwest::blocking::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(20))
            .tls_certs_only([reqwest::Certificate::from_pem(server_ca.pem.as_bytes()).unwrap()]);
        if identity {
            let pem = format!("{client_key}{client_cert}");
            builder = builder.identity(reqwest::Identity::from_pem(pem.as_bytes()).unwrap());
        }
        builder.build().unwrap()
    };
    let forged = [("X-Client-Cert", "forged"), ("X_Client_Cert", "forged")];

    let (status, _, body) = get(&https(true), &format!("{base}/m/echo"), &forged);
    assert_eq!(status, 200, "{body}");
    let expected = base64::engine::general_purpose::STANDARD.encode(&client_der);
    assert_eq!(received(&body, "x-client-cert"), [expected], "{body}");
    assert!(received(&body, "x_client_cert").is_empty(), "{body}");

    // No certificate (optional here): nothing the client wrote gets through.
    let (status, _, body) = get(&https(false), &format!("{base}/m/echo"), &forged);
    assert_eq!(status, 200, "{body}");
    assert!(received(&body, "x-client-cert").is_empty(), "{body}");
    assert!(received(&body, "x_client_cert").is_empty(), "{body}");

    // A deployment without mutualTls on the same listener does not pass a certificate on.
    let (status, _, body) = get(&https(true), &format!("{base}/open/echo"), &forged);
    assert_eq!(status, 200, "{body}");
    assert!(received(&body, "x-client-cert").is_empty(), "{body}");
    assert!(received(&body, "x_client_cert").is_empty(), "{body}");
}

/// SPEC: the client certificate is re-checked for expiry on every request: a certificate that
/// expires while its connection stays open is refused from then on, on that same connection.
#[test]
fn a_client_certificate_that_expires_on_an_open_connection_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server_ca = ca("claimgate test server CA");
    let (server_cert, server_key, _) = leaf(&server_ca, "localhost", false);
    let client_ca = ca("claimgate test client CA");
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_owned()
    };
    let cert_file = write("server.pem", &server_cert);
    let key_file = write("server.key", &server_key);
    let ca_file = write("clients.pem", &client_ca.pem);
    let deployment = json!({"displayName": "m", "pathPrefix": "/m", "specification": {
        "requestPolicies": {"mutualTls": {"isVerifiedCertificateRequired": true}},
        "routes": [{"path": "/hello", "methods": ["GET"],
                    "backend": {"type": "STOCK_RESPONSE_BACKEND", "status": 200, "body": "hello"}}]
    }});
    let file = PathBuf::from(write("deployment.json", &deployment.to_string()));
    let gw = start_gateway_on(
        dir,
        &[file],
        false,
        &[
            "--tls-cert",
            &cert_file,
            "--tls-key",
            &key_file,
            "--client-ca",
            &ca_file,
        ],
    );
    // A client certificate valid for 3 more seconds.
    let mut params = rcgen::CertificateParams::new(vec!["client.a.apigw".to_owned()]).unwrap();
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let not_after = now() + 3;
    params.not_before = rcgen::date_time_ymd(2020, 1, 1);
    params.not_after = time::OffsetDateTime::from_unix_timestamp(not_after).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &client_ca.issuer).unwrap();
    let identity = format!("{}{}", key.serialize_pem(), cert.pem());
    let http = reqwest::blocking::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(20))
        .tls_certs_only([reqwest::Certificate::from_pem(server_ca.pem.as_bytes()).unwrap()])
        .identity(reqwest::Identity::from_pem(identity.as_bytes()).unwrap())
        .build()
        .unwrap();
    let url = format!(
        "{}/m/hello",
        gw.base.replace("http://127.0.0.1", "https://localhost")
    );
    let (status, _, body) = get(&http, &url, &[]);
    assert_eq!((status, body.as_str()), (200, "hello"));
    while now() <= not_after {
        std::thread::sleep(Duration::from_millis(200));
    }
    // The same client, so the same (kept-alive) connection: judged again, now expired.
    let (status, headers, _) = get(&http, &url, &[]);
    assert_eq!(status, 401);
    let id = headers["opc-request-id"].to_str().unwrap();
    let exec = support::records(&gw.execution_log, id, 1);
    assert_eq!(
        exec[0]["data"]["code"],
        "mutualTls.clientCertificateInvalid"
    );
    let reason = exec[0]["data"]["reason"].as_str().unwrap();
    assert!(
        reason.contains("after the connection was opened"),
        "{reason}"
    );
}
