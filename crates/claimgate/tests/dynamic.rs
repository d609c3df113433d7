//! `dynamicAuthentication` end to end: `claimgate serve` with two static-key authentication
//! servers selected by a header, and `claimgate check` on the same deployment.

mod support;

use serde_json::{json, Value};
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use support::{now, records, start_gateway_on, Gateway, Signer};

const AUD: &str = "api://orders";

/// One authentication server's issuer and key.
struct Issuer {
    signer: Signer,
    iss: String,
}

impl Issuer {
    fn new(kid: &str, iss: &str) -> Self {
        Self {
            signer: Signer::new(kid),
            iss: iss.into(),
        }
    }

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

/// Servers `acme` (ANY_OF acme) and `globex` (WILDCARD `globex-*`), selected by `X-Tenant`.
fn deployment(acme: &Issuer, globex: &Issuer) -> Value {
    json!({
        "displayName": "orders",
        "pathPrefix": "/v1",
        "specification": {
            "requestPolicies": {"dynamicAuthentication": {
                "selectionSource": {"type": "SINGLE", "selector": "request.headers[X-Tenant]"},
                "authenticationServers": [
                    {"key": {"type": "ANY_OF", "name": "acme", "values": ["acme"]},
                     "authenticationServerDetail": acme.policy()},
                    {"key": {"type": "WILDCARD", "name": "globex", "expression": "globex-*"},
                     "authenticationServerDetail": globex.policy()}
                ]
            }},
            "routes": [
                {"path": "/orders", "methods": ["GET"],
                 "backend": {"type": "STOCK_RESPONSE_BACKEND", "status": 200, "body": "orders"}}
            ]
        }
    })
}

fn start_gateway(deployment: &Value) -> Gateway {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("orders.json");
    std::fs::write(&file, deployment.to_string()).unwrap();
    start_gateway_on(dir, &[file], false, &[])
}

/// Status and request id of `GET /v1/orders` with this tenant header and token.
fn call(gw: &Gateway, tenant: Option<&str>, token: &str) -> (u16, String) {
    let client = reqwest::blocking::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let mut request = client
        .get(format!("{}/v1/orders", gw.base))
        .header("authorization", format!("Bearer {token}"));
    if let Some(tenant) = tenant {
        request = request.header("x-tenant", tenant);
    }
    let response = request.send().unwrap();
    let id = response.headers()["opc-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    (response.status().as_u16(), id)
}

fn codes(records: &[Value]) -> Vec<String> {
    records
        .iter()
        .map(|r| r["data"]["code"].as_str().unwrap_or("").to_owned())
        .collect()
}

#[test]
fn serve_selects_the_server_by_header_and_each_token_works_only_with_its_own() {
    let acme = Issuer::new("acme-key", "https://acme.idp/");
    let globex = Issuer::new("globex-key", "https://globex.idp/");
    let gw = start_gateway(&deployment(&acme, &globex));
    let (acme_token, globex_token) = (acme.token(), globex.token());

    let (status, id) = call(&gw, Some("ACME"), &acme_token);
    assert_eq!(status, 200);
    let exec = records(&gw.execution_log, &id, 2);
    assert!(
        codes(&exec).contains(&"dynamicAuthentication.authenticationServerMatched".into()),
        "{exec:?}"
    );
    assert_eq!(call(&gw, Some("globex-eu"), &globex_token).0, 200);

    // Each token only with its own server.
    let (status, id) = call(&gw, Some("globex-eu"), &acme_token);
    assert_eq!(status, 401);
    let exec = records(&gw.execution_log, &id, 2);
    assert!(
        codes(&exec).contains(&"jwtAuthentication.authenticationFailed".into()),
        "{exec:?}"
    );
    assert_eq!(call(&gw, Some("acme"), &globex_token).0, 401);
    // WILDCARD is case-sensitive.
    assert_eq!(call(&gw, Some("GLOBEX-eu"), &globex_token).0, 401);

    // Unknown value, and no header at all: no server, 401, one WARN record.
    for tenant in [Some("initech"), None] {
        let (status, id) = call(&gw, tenant, &acme_token);
        assert_eq!(status, 401);
        let exec = records(&gw.execution_log, &id, 1);
        let record = exec
            .iter()
            .find(|r| r["data"]["code"] == "dynamicAuthentication.noAuthenticationServerMatched")
            .unwrap_or_else(|| panic!("{exec:?}"));
        assert_eq!(record["data"]["check"], "server");
        assert_eq!(record["data"]["expected"], json!(["acme", "globex-*"]));
        assert_eq!(record["data"]["actual"], json!(tenant));
        assert_eq!(
            record["data"]["message"],
            "No authentication server matched the request."
        );
    }
}

fn check(file: &Path, args: &[&str]) -> (i32, Value, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_claimgate"))
        .args(["check", "--deployment", file.to_str().unwrap()])
        .args(["--output", "json"])
        .args(args)
        .output()
        .unwrap();
    let json = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (
        out.status.code().unwrap_or(-1),
        json,
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn check_shows_the_selected_server_and_the_keys_tried() {
    let acme = Issuer::new("acme-key", "https://acme.idp/");
    let globex = Issuer::new("globex-key", "https://globex.idp/");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("orders.json");
    std::fs::write(&file, deployment(&acme, &globex).to_string()).unwrap();

    let token = globex.token();
    let (code, json, raw) = check(
        &file,
        &[
            "--request",
            "GET /v1/orders",
            "--header",
            "X-Tenant: globex-1",
            "--token",
            &token,
        ],
    );
    assert_eq!(code, 0, "{raw}");
    assert_eq!(json["decision"], "allow", "{raw}");
    assert_eq!(json["server"]["selected"], "globex", "{raw}");
    assert_eq!(json["server"]["matched"], "WILDCARD");
    assert_eq!(json["checks"][0]["check"], "server");

    let (code, json, raw) = check(
        &file,
        &[
            "--request",
            "GET /v1/orders",
            "--header",
            "X-Tenant: initech",
            "--token",
            &token,
        ],
    );
    assert_eq!(code, 1, "{raw}");
    assert_eq!(json["status"], 401, "{raw}");
    assert_eq!(json["server"]["selected"], Value::Null);
    assert_eq!(json["server"]["keysTried"], json!(["acme", "globex-*"]));
    assert_eq!(json["checks"][0]["result"], "fail");

    // The text output names the server and why.
    let out = Command::new(env!("CARGO_BIN_EXE_claimgate"))
        .args(["check", "--deployment", file.to_str().unwrap()])
        .args([
            "--request",
            "GET /v1/orders",
            "--header",
            "X-Tenant: initech",
        ])
        .args(["--token", &token])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("No authentication server matched"), "{text}");
    assert!(text.contains("globex-*"), "{text}");
}
