//! TOKEN_AUTHENTICATION against a real identity provider: `oidc-provider` (npm, in tests/idp)
//! on loopback, tokens obtained over HTTP as a client would, sent through `claimgate serve`
//! and judged by `claimgate check` and `claimgate introspect`.
//!
//! scripts/test.sh installs the provider (`npm ci` in tests/idp) before the tests run.

use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

mod support;

use support::*;

struct Setup {
    idp_port: u16,
    dir: tempfile::TempDir,
    deployment: PathBuf,
    secrets: PathBuf,
}

fn setup() -> Setup {
    let idp_port = free_port();
    let issuer = format!("http://127.0.0.1:{idp_port}");
    let dir = tempfile::tempdir().unwrap();
    let deployment = dir.path().join("orders.json");
    std::fs::write(
        &deployment,
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
                            "audiences": ["api://orders", "api://orders-jwt"],
                            "verifyClaims": [{"key": "tenant", "values": ["acme"], "isRequired": true}]
                        }
                    }
                }},
                "routes": [
                    {"path": "/orders", "methods": ["GET"], "backend": {"type": "STOCK_RESPONSE_BACKEND", "status": 200, "body": "orders"}},
                    {"path": "/admin", "methods": ["GET"], "backend": {"type": "STOCK_RESPONSE_BACKEND", "status": 200},
                     "requestPolicies": {"authorization": {"type": "ANY_OF", "allowedScope": ["orders:admin"]}}}
                ]
            }
        })
        .to_string(),
    )
    .unwrap();
    let secrets = dir.path().join("secrets.json");
    std::fs::write(
        &secrets,
        r#"{"ocid1.vaultsecret.oc1..gateway": {"1": "old-secret", "2": "gateway-secret"}}"#,
    )
    .unwrap();
    Setup {
        idp_port,
        dir,
        deployment,
        secrets,
    }
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

fn start_gateway(setup: &Setup, extra: &[&str]) -> (Running, String, PathBuf) {
    let port = free_port();
    let log = setup.dir.path().join(format!("execution-{port}.log"));
    let child = Command::new(env!("CARGO_BIN_EXE_claimgate"))
        .args([
            "serve",
            "--deployment",
            setup.deployment.to_str().unwrap(),
            "--listen",
            &format!("127.0.0.1:{port}"),
        ])
        .args([
            "--secrets",
            setup.secrets.to_str().unwrap(),
            "--execution-log",
            log.to_str().unwrap(),
            "--access-log",
            "/dev/null",
        ])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for(&format!("127.0.0.1:{port}"));
    (Running(child), format!("http://127.0.0.1:{port}"), log)
}

fn get(url: &str, token: &str) -> (u16, String) {
    let response = client().get(url).bearer_auth(token).send().unwrap();
    let id = response.headers()["opc-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    (response.status().as_u16(), id)
}

#[test]
fn opaque_and_jwt_access_tokens_from_a_real_provider_are_judged_by_introspection_and_discovery() {
    let setup = setup();
    let idp = start_idp(setup.idp_port);
    let (_gw, base, log) = start_gateway(
        &setup,
        &["--introspection-cache-max", "1", "--jwks-cooldown", "1"],
    );
    let orders = format!("{base}/v1/orders");

    let opaque = access_token(setup.idp_port, "api://orders", "orders:read");
    assert!(!opaque.contains('.'), "an opaque token: {opaque}");
    assert_eq!(get(&orders, &opaque).0, 200);
    let jwt = access_token(setup.idp_port, "api://orders-jwt", "orders:read");
    assert_eq!(jwt.matches('.').count(), 2, "a JWT access token");
    let before = introspections(setup.idp_port);
    assert_eq!(
        get(&orders, &jwt).0,
        200,
        "verified with the discovery document's jwks_uri"
    );
    assert_eq!(
        introspections(setup.idp_port),
        before,
        "JWTs are not introspected"
    );
    // Again, from the verified-token cache (which the gateway now asks before parsing a token
    // to classify it): still allowed and not introspected, and an opaque token after it is
    // still introspected (a cache that claimed to hold it would skip that and refuse it).
    for _ in 0..3 {
        assert_eq!(get(&orders, &jwt).0, 200);
    }
    assert_eq!(introspections(setup.idp_port), before);
    let second_opaque = access_token(setup.idp_port, "api://orders", "orders:read");
    assert_eq!(get(&orders, &second_opaque).0, 200);
    assert_eq!(introspections(setup.idp_port), before + 1);

    // Scope from the introspection answer.
    assert_eq!(get(&format!("{base}/v1/admin"), &opaque).0, 403);
    let admin = access_token(setup.idp_port, "api://orders", "orders:read orders:admin");
    assert_eq!(get(&format!("{base}/v1/admin"), &admin).0, 200);

    // Wrong audience: refused with the claim named in the log.
    let other = access_token(setup.idp_port, "api://billing", "orders:read");
    let (status, id) = get(&orders, &other);
    assert_eq!(status, 401);
    let failed = records(&log, &id, 1);
    let aud = failed
        .iter()
        .find(|r| r["data"]["check"] == "aud")
        .expect("an aud record");
    assert_eq!(
        aud["data"]["code"],
        "tokenAuthentication.authenticationFailed"
    );
    assert_eq!(aud["data"]["actual"], "api://billing");

    // Revocation is seen once the cache allows (here 1 s).
    let revoked = access_token(setup.idp_port, "api://orders", "orders:read");
    assert_eq!(get(&orders, &revoked).0, 200);
    let revocation = client()
        .post(format!(
            "http://127.0.0.1:{}/token/revocation",
            setup.idp_port
        ))
        .basic_auth("app", Some("app-secret"))
        .form(&[("token", revoked.as_str())])
        .send()
        .unwrap();
    assert!(revocation.status().is_success());
    std::thread::sleep(Duration::from_millis(1500));
    let (status, id) = get(&orders, &revoked);
    assert_eq!(status, 401);
    assert!(records(&log, &id, 1)
        .iter()
        .any(|r| r["data"]["message"] == "Token is not active."));

    // Many concurrent requests with one new token: one introspection.
    let fresh = access_token(setup.idp_port, "api://orders", "orders:read");
    let before = introspections(setup.idp_port);
    let statuses: Vec<u16> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..20)
            .map(|_| scope.spawn(|| get(&orders, &fresh).0))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(
        introspections(setup.idp_port) - before,
        1,
        "20 concurrent requests, one introspection"
    );

    // The provider stops: a cached answer keeps serving, a new token gets 500 and the cause.
    let cached = access_token(setup.idp_port, "api://orders", "orders:read");
    drop(idp);
    // (This gateway keeps answers 1 s, so `cached` was never introspected: see the next test
    // for a cached answer outliving the provider.)
    let (status, id) = get(&orders, &cached);
    assert_eq!(
        status, 500,
        "a token never introspected cannot be judged while the provider is down"
    );
    let bad = records(&log, &id, 1);
    let record = bad
        .iter()
        .find(|r| r["data"]["code"] == "tokenAuthentication.badIntrospectionResponse")
        .expect("a badIntrospectionResponse record");
    assert_eq!(record["data"]["level"], "ERROR");
    assert!(
        record["data"]["message"]
            .as_str()
            .unwrap()
            .contains("connection failed"),
        "{record}"
    );

    // It returns: new tokens are accepted again.
    let _idp = start_idp(setup.idp_port);
    let again = access_token(setup.idp_port, "api://orders", "orders:read");
    assert_eq!(get(&orders, &again).0, 200);
}

#[test]
fn a_cached_answer_keeps_serving_while_the_provider_is_down() {
    let setup = setup();
    let idp = start_idp(setup.idp_port);
    let (_gw, base, _log) = start_gateway(&setup, &[]);
    let orders = format!("{base}/v1/orders");
    let opaque = access_token(setup.idp_port, "api://orders", "orders:read");
    assert_eq!(get(&orders, &opaque).0, 200);
    drop(idp);
    assert_eq!(
        get(&orders, &opaque).0,
        200,
        "the answer is cached (up to the token's exp)"
    );
}

#[test]
fn check_and_introspect_judge_provider_tokens_live_and_from_recordings() {
    let setup = setup();
    let _idp = start_idp(setup.idp_port);
    let opaque = access_token(setup.idp_port, "api://orders", "orders:read");
    let deployment = setup.deployment.to_str().unwrap();
    let secrets = setup.secrets.to_str().unwrap();
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_claimgate"))
            .args(args)
            .env("NO_COLOR", "1")
            .output()
            .unwrap()
    };
    let live = run(&[
        "check",
        "--deployment",
        deployment,
        "--request",
        "GET /v1/orders",
        "--token",
        &opaque,
        "--secrets",
        secrets,
        "--output",
        "json",
    ]);
    let verdict: Value = serde_json::from_slice(&live.stdout).unwrap();
    assert_eq!(live.status.code(), Some(0), "{verdict:#}");
    assert_eq!(verdict["introspection"]["answer"]["active"], true);
    assert_eq!(
        verdict["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["check"] == "active")
            .unwrap()["result"],
        "pass"
    );

    let introspect = run(&[
        "introspect",
        "--deployment",
        deployment,
        "--token",
        &opaque,
        "--secrets",
        secrets,
    ]);
    let text = String::from_utf8_lossy(&introspect.stdout);
    assert_eq!(introspect.status.code(), Some(0), "{text}");
    assert!(
        text.contains("introspection answer (RFC 7662)") && text.contains("\"tenant\": \"acme\""),
        "{text}"
    );
    assert!(text.contains("pass active"), "{text}");

    // A recorded answer: no network, and an inactive one is explained.
    let recorded = setup.dir.path().join("answer.json");
    std::fs::write(&recorded, r#"{"active": false}"#).unwrap();
    let offline = run(&[
        "check",
        "--deployment",
        deployment,
        "--request",
        "GET /v1/orders",
        "--token",
        "not-a-jwt",
        "--introspection",
        recorded.to_str().unwrap(),
    ]);
    let text = String::from_utf8_lossy(&offline.stdout);
    assert_eq!(offline.status.code(), Some(1), "{text}");
    assert!(
        text.contains("FAIL active") && text.contains("Token is not active."),
        "{text}"
    );

    let missing_secret = run(&[
        "check",
        "--deployment",
        deployment,
        "--request",
        "GET /v1/orders",
        "--token",
        &opaque,
    ]);
    assert_eq!(missing_secret.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing_secret.stderr).contains("pass --secrets FILE"));
}
