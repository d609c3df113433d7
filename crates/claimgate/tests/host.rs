//! `request.host` alike over HTTP/1.1, h2c and h2 over TLS: HTTP/2 carries the host in
//! `:authority`, not in a `Host` header, and a gateway that reads only `Host` judges every h2
//! request as if it had no host. Here a `dynamicAuthentication` selects its server by
//! `request.host`, and a backend URL carries `${request.host}`; each transport must give the same
//! answers. The HTTP/1.1 `Host` rules (none, two, or one that disagrees with the absolute-form
//! authority: 400) are tested over raw TCP.

mod support;

use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;
use support::{now, records, start_gateway_on, Gateway, Signer};

const AUD: &str = "api://orders";

struct Issuer {
    signer: Signer,
    iss: &'static str,
}

impl Issuer {
    fn token(&self) -> String {
        self.signer
            .token(json!({"iss": self.iss, "aud": AUD, "sub": "alice", "exp": now() + 600}))
    }

    fn policy(&self) -> Value {
        json!({
            "type": "JWT_AUTHENTICATION", "tokenHeader": "Authorization", "tokenAuthScheme": "Bearer",
            "issuers": [self.iss], "audiences": [AUD],
            "publicKeys": {"type": "STATIC_KEYS", "keys": [self.signer.static_key()]}
        })
    }
}

/// `acme.example` selects the `acme` server; any other host falls to the default `other`.
fn deployment(acme: &Issuer, other: &Issuer, echo: SocketAddr) -> Value {
    json!({
        "displayName": "hosts",
        "pathPrefix": "/v1",
        "specification": {
            "requestPolicies": {"dynamicAuthentication": {
                "selectionSource": {"type": "SINGLE", "selector": "request.host"},
                "authenticationServers": [
                    {"key": {"type": "ANY_OF", "name": "acme", "values": ["acme.example"]},
                     "authenticationServerDetail": acme.policy()},
                    {"key": {"type": "ANY_OF", "name": "other", "values": ["other.example"], "isDefault": true},
                     "authenticationServerDetail": other.policy()}
                ]
            }},
            "routes": [
                {"path": "/orders", "methods": ["GET"],
                 "backend": {"type": "STOCK_RESPONSE_BACKEND", "status": 200, "body": "orders"}},
                {"path": "/where", "methods": ["GET"],
                 "backend": {"type": "HTTP_BACKEND", "url": format!("http://{echo}/for/${{request.host}}")}}
            ]
        }
    })
}

#[derive(Debug, Clone, Copy)]
enum Transport {
    Http1,
    H2c,
    H2Tls,
}

struct Setup {
    gateway: Gateway,
    acme: Issuer,
    other: Issuer,
    cert_pem: String,
    addr: SocketAddr,
}

fn setup(tls: bool) -> Setup {
    let acme = Issuer {
        signer: Signer::new("acme"),
        iss: "https://acme.example/",
    };
    let other = Issuer {
        signer: Signer::new("other"),
        iss: "https://other.example/",
    };
    let echo = support::start_target_echo();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hosts.json");
    std::fs::write(&file, deployment(&acme, &other, echo).to_string()).unwrap();
    let certified = rcgen::generate_simple_self_signed(vec![
        "acme.example".to_owned(),
        "other.example".to_owned(),
    ])
    .unwrap();
    let cert_pem = certified.cert.pem();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, &cert_pem).unwrap();
    std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
    let extra: Vec<String> = if tls {
        vec![
            "--tls-cert".into(),
            cert.to_str().unwrap().into(),
            "--tls-key".into(),
            key.to_str().unwrap().into(),
        ]
    } else {
        vec![]
    };
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    let gateway = start_gateway_on(dir, &[file], false, &extra);
    let addr: SocketAddr = gateway.base.trim_start_matches("http://").parse().unwrap();
    Setup {
        gateway,
        acme,
        other,
        cert_pem,
        addr,
    }
}

/// `GET path` on `host` over `transport`, with `token`: status, body and the HTTP version used.
fn call(
    setup: &Setup,
    transport: Transport,
    host: &str,
    path: &str,
    token: &str,
) -> (u16, String, reqwest::Version) {
    let mut builder = reqwest::blocking::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(20))
        .resolve(host, setup.addr);
    let scheme = match transport {
        Transport::Http1 => {
            builder = builder.http1_only();
            "http"
        }
        Transport::H2c => {
            builder = builder.http2_prior_knowledge();
            "http"
        }
        Transport::H2Tls => {
            builder = builder
                .tls_certs_only([
                    reqwest::Certificate::from_pem(setup.cert_pem.as_bytes()).unwrap()
                ]);
            "https"
        }
    };
    let client = builder.build().unwrap();
    let response = client
        .get(format!("{scheme}://{host}:{}/v1{path}", setup.addr.port()))
        .bearer_auth(token)
        .send()
        .unwrap();
    let version = response.version();
    (
        response.status().as_u16(),
        response.text().unwrap(),
        version,
    )
}

fn every_host_rule_holds_over(transport: Transport) {
    let setup = setup(matches!(transport, Transport::H2Tls));
    let (acme_token, other_token) = (setup.acme.token(), setup.other.token());
    let want_version = match transport {
        Transport::Http1 => reqwest::Version::HTTP_11,
        _ => reqwest::Version::HTTP_2,
    };
    // The host's own server accepts its token and refuses the default server's.
    let (status, body, version) = call(&setup, transport, "acme.example", "/orders", &acme_token);
    assert_eq!(
        (status, body.as_str(), version),
        (200, "orders", want_version)
    );
    let (status, _, _) = call(&setup, transport, "acme.example", "/orders", &other_token);
    assert_eq!(
        status, 401,
        "{transport:?}: acme.example judged by the default server"
    );
    // Another host gets the default server.
    let (status, _, _) = call(&setup, transport, "other.example", "/orders", &other_token);
    assert_eq!(status, 200, "{transport:?}");
    let (status, _, _) = call(&setup, transport, "other.example", "/orders", &acme_token);
    assert_eq!(status, 401, "{transport:?}");
    // ${request.host} in a backend URL is the host the client named (escaped as path data).
    let (status, body, _) = call(&setup, transport, "acme.example", "/where", &acme_token);
    let port = setup.addr.port();
    assert_eq!(
        (status, body),
        (200, format!("/for/acme.example%3A{port}")),
        "{transport:?}"
    );
}

#[test]
fn the_host_selects_the_same_server_over_http1() {
    every_host_rule_holds_over(Transport::Http1);
}

#[test]
fn the_host_selects_the_same_server_over_h2c() {
    every_host_rule_holds_over(Transport::H2c);
}

#[test]
fn the_host_selects_the_same_server_over_h2_with_tls() {
    every_host_rule_holds_over(Transport::H2Tls);
}

/// Sends `head` (request line and headers, without the blank line) and returns the status.
fn raw_status(addr: SocketAddr, head: &str) -> u16 {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    write!(stream, "{head}\r\nConnection: close\r\n\r\n").unwrap();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

#[test]
fn http1_requests_without_one_host_or_with_a_disagreeing_one_get_400() {
    let setup = setup(false);
    let addr = setup.addr;
    let token = setup.acme.token();
    let auth = format!("Authorization: Bearer {token}");
    // The well-formed forms are served.
    assert_eq!(
        raw_status(
            addr,
            &format!("GET /v1/orders HTTP/1.1\r\nHost: acme.example\r\n{auth}")
        ),
        200
    );
    assert_eq!(
        raw_status(
            addr,
            &format!("GET http://acme.example/v1/orders HTTP/1.1\r\nHost: ACME.example\r\n{auth}")
        ),
        200
    );
    // HTTP/1.0 had no Host requirement.
    assert_eq!(
        raw_status(addr, &format!("GET /v1/orders HTTP/1.0\r\n{auth}")),
        401,
        "no host selects the default server, which refuses acme's token"
    );
    for (case, head) in [
        ("no Host", format!("GET /v1/orders HTTP/1.1\r\n{auth}")),
        (
            "two Hosts",
            format!(
                "GET /v1/orders HTTP/1.1\r\nHost: acme.example\r\nHost: other.example\r\n{auth}"
            ),
        ),
        (
            "authority and Host disagree",
            format!("GET http://acme.example/v1/orders HTTP/1.1\r\nHost: other.example\r\n{auth}"),
        ),
    ] {
        assert_eq!(raw_status(addr, &head), 400, "{case}");
    }
    // Refusals are recorded with their reason.
    let mut stream = TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "GET /v1/orders HTTP/1.1\r\nHost: a\r\nHost: b\r\nopc-request-id: two-hosts\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    let found = records(&setup.gateway.execution_log, "two-hosts", 1);
    assert!(
        found
            .iter()
            .any(|r| r["data"]["code"] == "request.hostRejected"
                && r["data"]["message"]
                    .as_str()
                    .unwrap()
                    .contains("more than one Host")),
        "{found:?}"
    );
}
