//! The troubleshooting page in a real browser: `tests/browser/page.test.mjs` drives Debian's
//! chromium (playwright-core) against a gateway started here: the page loads from its own
//! origin only, logs no console error, shows a failing token's failed checks with expected,
//! actual and fix, lets a good token pass, and opens a recent refusal. Screenshots go to
//! `target/browser/` (test artifacts). scripts/test.sh installs chromium and playwright-core;
//! without them the test is skipped (a failure under CI=true).

mod support;

use serde_json::json;
use std::path::Path;
use support::{client, now, start_gateway, Signer};

const ISSUER: &str = "https://issuer.example";

#[test]
fn the_troubleshooting_page_works_in_a_real_browser() {
    let repo = support::repo();
    let chromium =
        std::env::var("CLAIMGATE_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if !Path::new(&chromium).exists() {
        return support::skip(
            "the_troubleshooting_page_works_in_a_real_browser",
            "no chromium at /usr/bin/chromium (apt-get install chromium)",
        );
    }
    if !repo
        .join("tests/browser/node_modules/playwright-core")
        .is_dir()
    {
        return support::skip(
            "the_troubleshooting_page_works_in_a_real_browser",
            "playwright-core is not installed (npm ci in tests/browser)",
        );
    }
    let signer = Signer::new("k1");
    let deployment = json!({
        // Markup in a label is shown as text (the deployment list, the recent refusals).
        "displayName": "orders <img src=//evil.example/label.png>",
        "pathPrefix": "/v1",
        "specification": {
            "requestPolicies": {"authentication": {
                "type": "JWT_AUTHENTICATION",
                "tokenHeader": "Authorization", "tokenAuthScheme": "Bearer",
                "isAnonymousAccessAllowed": true,
                "issuers": [ISSUER], "audiences": ["api"],
                "publicKeys": {"type": "STATIC_KEYS", "keys": [signer.static_key()]}
            }},
            "routes": [
                {"path": "/private", "methods": ["GET"],
                 "backend": {"type": "STOCK_RESPONSE_BACKEND", "status": 200, "body": "ok"}},
                {"path": "/health", "methods": ["GET"],
                 "backend": {"type": "STOCK_RESPONSE_BACKEND", "status": 200, "body": "ok"},
                 "requestPolicies": {"authorization": {"type": "ANONYMOUS"}}}
            ]
        }
    });
    let gateway = start_gateway(&[deployment], true, &[]);
    let admin = gateway.admin.clone().unwrap();
    let good = signer.token(
        json!({"iss": ISSUER, "aud": "api", "sub": "ann", "exp": now() + 600, "iat": now()}),
    );
    // Markup in a claim is shown as text: were it parsed, the browser would fetch the image
    // from another host, which the script fails on.
    let bad = signer.token(
        json!({"iss": ISSUER, "aud": "web", "exp": now() + 600, "iat": now(),
        "sub": "<img src=\"http://evil.example/x.png\" onerror=\"console.error('xss')\">"}),
    );
    let refused = client()
        .get(format!("{}/v1/private", gateway.base))
        .bearer_auth(&bad)
        .send()
        .unwrap();
    assert_eq!(refused.status(), 401);
    let refused_id = refused.headers()["opc-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    // Its access record is written before the page lists it.
    support::records(&gateway.access_log, &refused_id, 1);
    // A client chooses its request id and User-Agent, which the page shows: as text.
    let hostile_id = "<img/src=//evil.example/id.png>";
    let hostile = client()
        .get(format!("{}/v1/private", gateway.base))
        .bearer_auth(&bad)
        .header("opc-request-id", hostile_id)
        .header("user-agent", "<img src=//evil.example/ua.png>")
        .send()
        .unwrap();
    assert_eq!(hostile.status(), 401);
    assert_eq!(hostile.headers()["opc-request-id"], hostile_id);
    support::records(&gateway.access_log, hostile_id, 1);

    let shots = repo.join("target/browser");
    std::fs::create_dir_all(&shots).unwrap();
    let output = std::process::Command::new("node")
        .arg(repo.join("tests/browser/page.test.mjs"))
        .current_dir(repo.join("tests/browser"))
        .env("CLAIMGATE_ADMIN", &admin)
        .env("CLAIMGATE_GOOD_TOKEN", &good)
        .env("CLAIMGATE_BAD_TOKEN", &bad)
        .env("CLAIMGATE_REFUSED_ID", &refused_id)
        .env("CLAIMGATE_HOSTILE_ID", hostile_id)
        .env("CLAIMGATE_SCREENSHOTS", &shots)
        .env("CLAIMGATE_CHROMIUM", &chromium)
        .output();
    let output = match output {
        Ok(output) => output,
        Err(e) => {
            return support::skip(
                "the_troubleshooting_page_works_in_a_real_browser",
                &format!("node cannot run: {e}"),
            )
        }
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    assert!(
        output.status.success(),
        "the browser steps failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("all steps passed"), "{stdout}");

    // The tokens the page sent are in no log.
    for log in [&gateway.execution_log, &gateway.access_log] {
        let text = std::fs::read_to_string(log).unwrap();
        assert!(
            !text.contains(&good) && !text.contains(&bad),
            "a token is in {log:?}"
        );
    }
}
