//! `dynamicAuthentication` against two real identity providers: two `oidc-provider` instances
//! (tests/idp, installed by scripts/test.sh) with their own signing keys, selected by
//! `request.auth[iss]`. Server `a` uses REMOTE_DISCOVERY, server `b` REMOTE_JWKS.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{json, Value};
use std::path::Path;
use std::process::{Command, Stdio};

mod support;

use support::*;

/// A JWT access token from the provider on `port`.
fn jwt(port: u16) -> String {
    access_token(port, "api://orders-jwt", "orders:read")
}

fn get(url: &str, token: &str) -> (u16, String) {
    let response = client().get(url).bearer_auth(token).send().unwrap();
    let id = response.headers()["opc-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    (response.status().as_u16(), id)
}

fn codes(log: &Path, id: &str, at_least: usize) -> Vec<String> {
    records(log, id, at_least)
        .iter()
        .map(|r| r["data"]["code"].as_str().unwrap_or("").to_owned())
        .collect()
}

/// The token with its payload's `iss` replaced (the signature no longer matches).
fn with_iss(token: &str, iss: &str) -> String {
    let parts: Vec<&str> = token.split('.').collect();
    let mut payload: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    payload["iss"] = json!(iss);
    format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(payload.to_string()),
        parts[2]
    )
}

#[test]
fn two_providers_selected_by_the_unverified_issuer() {
    let (port_a, port_b) = (free_port(), free_port());
    let _idp_a = start_idp(port_a);
    let _idp_b = start_idp(port_b);
    let (iss_a, iss_b) = (
        format!("http://127.0.0.1:{port_a}"),
        format!("http://127.0.0.1:{port_b}"),
    );
    let dir = tempfile::tempdir().unwrap();
    let deployment = dir.path().join("orders.json");
    let server = |validation: Value| {
        json!({
            "type": "TOKEN_AUTHENTICATION", "tokenHeader": "Authorization", "tokenAuthScheme": "Bearer",
            "validationPolicy": validation
        })
    };
    std::fs::write(
        &deployment,
        json!({
            "displayName": "orders",
            "pathPrefix": "/v1",
            "specification": {
                "requestPolicies": {"dynamicAuthentication": {
                    "selectionSource": {"type": "SINGLE", "selector": "request.auth[iss]"},
                    "authenticationServers": [
                        {"key": {"type": "ANY_OF", "name": "a", "values": [iss_a]},
                         "authenticationServerDetail": server(json!({
                            "type": "REMOTE_DISCOVERY",
                            "clientDetails": {"type": "CUSTOM", "clientId": "gateway",
                                              "clientSecretId": "ocid1.vaultsecret.oc1..gateway"},
                            "sourceUriDetails": {"type": "DISCOVERY_URI",
                                                 "uri": format!("{iss_a}/.well-known/openid-configuration")},
                            "additionalValidationPolicy": {"issuers": [iss_a], "audiences": ["api://orders-jwt"]}
                         }))},
                        {"key": {"type": "ANY_OF", "name": "b", "values": [iss_b]},
                         "authenticationServerDetail": server(json!({
                            "type": "REMOTE_JWKS", "uri": format!("{iss_b}/jwks"), "maxCacheDurationInHours": 1,
                            "additionalValidationPolicy": {"issuers": [iss_b], "audiences": ["api://orders-jwt"]}
                         }))}
                    ]
                }},
                "routes": [
                    {"path": "/orders", "methods": ["GET"],
                     "backend": {"type": "STOCK_RESPONSE_BACKEND", "status": 200, "body": "orders"}}
                ]
            }
        })
        .to_string(),
    )
    .unwrap();
    let secrets = dir.path().join("secrets.json");
    std::fs::write(
        &secrets,
        r#"{"ocid1.vaultsecret.oc1..gateway": "gateway-secret"}"#,
    )
    .unwrap();
    let port = free_port();
    let log = dir.path().join("execution.log");
    let _gw = Running(
        Command::new(env!("CARGO_BIN_EXE_claimgate"))
            .args(["serve", "--deployment", deployment.to_str().unwrap()])
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--secrets", secrets.to_str().unwrap()])
            .args(["--execution-log", log.to_str().unwrap()])
            .args(["--access-log", "/dev/null"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for(&format!("127.0.0.1:{port}"));
    let orders = format!("http://127.0.0.1:{port}/v1/orders");

    let (token_a, token_b) = (jwt(port_a), jwt(port_b));
    let (status, id) = get(&orders, &token_a);
    assert_eq!(status, 200);
    assert!(codes(&log, &id, 2)
        .contains(&"dynamicAuthentication.authenticationServerMatched".to_owned()));
    assert_eq!(get(&orders, &token_b).0, 200);

    // Both providers publish kid 'idp-rs256' with different keys: a token claiming the other
    // issuer is sent to the other server, whose key refuses it.
    let (status, id) = get(&orders, &with_iss(&token_b, &iss_a));
    assert_eq!(status, 401);
    assert!(codes(&log, &id, 2).contains(&"tokenAuthentication.authenticationFailed".to_owned()));
    assert_eq!(get(&orders, &with_iss(&token_a, &iss_b)).0, 401);

    // An opaque token has no claims to select by: jwtTokenInvalid, no server, 401.
    let (status, id) = get(
        &orders,
        &access_token(port_a, "api://orders", "orders:read"),
    );
    assert_eq!(status, 401);
    let found = codes(&log, &id, 2);
    assert!(
        found.contains(&"dynamicAuthentication.jwtTokenInvalid".to_owned()),
        "{found:?}"
    );
    assert!(
        found.contains(&"dynamicAuthentication.noAuthenticationServerMatched".to_owned()),
        "{found:?}"
    );
}
