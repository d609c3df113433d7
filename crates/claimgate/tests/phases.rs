//! The request path's phase order, pinned once end to end (`server/phases.rs`): response
//! transformations run only on answers from the route's backend (HTTP or stock), never on the
//! gateway's own answers, whichever phase gave them (authentication's 401, authorization's 404
//! and 405, the backend call's 502); and every answer, early or not, carries `opc-request-id`
//! and is written to the access log.

mod support;

use serde_json::{json, Value};
use support::{client, now, start_gateway, Signer};

const ISSUER: &str = "https://issuer.example";

/// `/v1`: `/open` (anonymous, stock 200), `/private` (authenticated, stock 200), `/broken`
/// (anonymous, an HTTP backend that refuses connections), each route's response
/// transformations setting `X-Answered-By: backend`.
fn deployment(signer: &Signer, refused: u16) -> Value {
    let transformed = json!({"headerTransformations": {"setHeaders": {"items": [
        {"name": "X-Answered-By", "values": ["backend"], "ifExists": "OVERWRITE"}]}}});
    let stock = json!({"type": "STOCK_RESPONSE_BACKEND", "status": 200, "body": "stock"});
    json!({
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
                {"path": "/open", "methods": ["GET"], "backend": stock,
                 "requestPolicies": {"authorization": {"type": "ANONYMOUS"}},
                 "responsePolicies": transformed},
                {"path": "/private", "methods": ["GET"], "backend": stock,
                 "responsePolicies": transformed},
                {"path": "/broken", "methods": ["GET"],
                 "backend": {"type": "HTTP_BACKEND", "url": format!("http://127.0.0.1:{refused}/")},
                 "requestPolicies": {"authorization": {"type": "ANONYMOUS"}},
                 "responsePolicies": transformed}
            ]
        }
    })
}

#[test]
fn response_transformations_run_on_backend_answers_only_and_every_answer_is_logged() {
    let signer = Signer::new("k1");
    // A port nothing listens on: the backend call fails.
    let refused = support::free_port();
    let gateway = start_gateway(&[deployment(&signer, refused)], false, &[]);
    let http = client();
    let get = |path: &str, token: Option<&str>| {
        let mut request = http.get(format!("{}{path}", gateway.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().unwrap()
    };
    let token =
        signer.token(json!({"iss": ISSUER, "aud": "api", "sub": "ann", "exp": now() + 600}));

    // Backend answers: transformed.
    for (path, token) in [("/v1/open", None), ("/v1/private", Some(token.as_str()))] {
        let answer = get(path, token);
        assert_eq!(answer.status(), 200, "{path}");
        assert_eq!(answer.headers()["x-answered-by"], "backend", "{path}");
    }
    // The gateway's own answers, from four different phases: never transformed.
    let cases: [(&str, Option<&str>, u16); 4] = [
        ("/v1/private", None, 401),                // authentication
        ("/v1/nowhere", None, 404),                // authorization (no route)
        ("/v1/broken", None, 502),                 // backend
        ("/v1/private", Some("not-a-token"), 401), // authentication
    ];
    let mut ids = Vec::new();
    for (path, token, status) in cases {
        let answer = get(path, token);
        assert_eq!(answer.status(), status, "{path}");
        assert!(
            answer.headers().get("x-answered-by").is_none(),
            "{path} {status}: a gateway answer was transformed"
        );
        ids.push(
            answer.headers()["opc-request-id"]
                .to_str()
                .unwrap()
                .to_owned(),
        );
    }
    let post = http
        .post(format!("{}/v1/open", gateway.base))
        .send()
        .unwrap();
    assert_eq!(post.status(), 405);
    assert!(post.headers().get("x-answered-by").is_none());

    // Every answer reached the logs phase: one access record each.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let log = std::fs::read_to_string(&gateway.access_log).unwrap_or_default();
        if ids.iter().all(|id| log.contains(id.as_str())) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "some answers were not access-logged: {ids:?}\n{log}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
