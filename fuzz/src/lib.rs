//! The bodies of claimgate's fuzz targets. Each `fuzz_targets/<name>.rs` is one line calling
//! the function of the same name here, so the same code can replay the checked-in corpora and
//! regressions under `cargo test --lib` on stable, without libFuzzer (see README.md).
//!
//! * [`token`]: `ParsedToken::parse` on any UTF-8 text, then `claimgate_core::evaluate` of a
//!   request carrying that text as a bearer token against a fixed deployment with one static RSA
//!   key. Property: no token is allowed unless it is byte-for-byte the one token that key's
//!   (discarded) private half signed. The fuzzer cannot sign, so any other `Allow` is an
//!   authentication bypass: a malleable signature encoding, a check that passes on garbage, etc.
//! * [`jwks`]: `parse_jwks` on any bytes, and `PublicKey::from_jwk` on the document itself and
//!   on every object of its `keys` array. Property: every entry is either kept or skipped.
//! * [`deployment`]: `claimgate_config::load_str` on any UTF-8 text; a deployment that loads is
//!   then asked `GET /` (and `GET` of each route's own path) with no headers.
//!
//! Every verdict is also rendered (`events`, `to_json`), as the gateway and the CLI always do,
//! because the explanations quote values taken from the input.

use claimgate_config::{load_str, Authentication, Deployment, KeySource, LoadOptions};
use claimgate_core::{
    evaluate, Decision, HeaderValues, KeyMaterial, RequestView, UnixTime, Verdict,
};
use claimgate_jose::{json, parse_jwks, ParsedToken, PublicKey, JWKS_MAX_KEYS};
use serde_json::Value;
use std::sync::OnceLock;

/// The pinned clock: 2025-11-24T16:00:00Z. The valid token's `exp` is an hour later.
pub const NOW: UnixTime = UnixTime(1_764_000_000);

/// The deployment the `token` target judges against: `JWT_AUTHENTICATION`, one issuer, one
/// audience, a required `tenant` claim, one static RSA key `k1` (no `alg` pinned, so RS* and PS*
/// are all tried), `GET /v1/orders` (authentication only) and `GET /v1/orders/admin` (`ANY_OF`
/// `orders:admin`). Anonymous access is off. A copy is a seed of the `deployment` target.
pub const TOKEN_DEPLOYMENT: &str = include_str!("token_deployment.json");

/// The only token `k1` ever signed (RS256, every claim valid at [`NOW`], scope
/// `orders:read orders:admin`). The private key was generated with Python `cryptography`, used
/// for this one signature and discarded. It is also a seed (`corpus/token/rs256-valid.jwt`), so
/// the fuzzer starts from a token that passes every check and mutates from there.
pub const VALID_TOKEN: &str = include_str!("token_valid.jwt");

/// The routes the `token` target requests, both requiring authentication.
const TOKEN_PATHS: [&str; 2] = ["/v1/orders", "/v1/orders/admin"];

/// Routes of a loaded deployment requested by the `deployment` target, at most.
const MAX_ROUTES_REQUESTED: usize = 16;

/// What the verdict sees of a request: a method, a path and at most an `Authorization` header.
struct Request<'a> {
    path: &'a str,
    authorization: Option<String>,
}

impl RequestView for Request<'_> {
    fn method(&self) -> &str {
        "GET"
    }
    fn path(&self) -> &str {
        self.path
    }
    fn query(&self) -> Option<&str> {
        None
    }
    fn header(&self, name: &str) -> HeaderValues<'_> {
        match &self.authorization {
            Some(value) if name.eq_ignore_ascii_case("authorization") => HeaderValues::One(value),
            _ => HeaderValues::Absent,
        }
    }
}

/// Keys for a `REMOTE_JWKS` policy: none (the fuzz targets fetch nothing). Static keys are the
/// policy's own and are used regardless.
const NO_REMOTE_KEYS: KeyMaterial<'static> = KeyMaterial::Unavailable {
    reason: "the fuzz targets fetch no key set",
};

/// The `token` target's deployment, loaded once and checked to be what the property needs.
fn token_deployment() -> &'static Deployment {
    static DEPLOYMENT: OnceLock<Deployment> = OnceLock::new();
    DEPLOYMENT.get_or_init(|| {
        let options = LoadOptions {
            path_prefix: None,
            name: "fuzz-token".into(),
        };
        let deployment = match load_str(TOKEN_DEPLOYMENT, &options) {
            Ok(loaded) => loaded.deployment,
            Err(rejected) => panic!("the token target's deployment does not load: {rejected:?}"),
        };
        let Authentication::Jwt(policy) = &deployment.authentication else {
            panic!("the token target's deployment has no JWT policy");
        };
        let KeySource::Static(keys) = &policy.keys else {
            panic!("the token target's deployment has no static keys");
        };
        assert_eq!(keys.keys().len(), 1, "exactly one static key");
        deployment
    })
}

/// Renders a verdict the way the gateway and CLI do, so explanation code is fuzzed too.
fn render(verdict: &Verdict) {
    let _ = verdict.events();
    let _ = verdict.to_json();
}

/// `token` target: parse, and when the text parses, judge it as a bearer token.
pub fn token(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let parsed = match ParsedToken::parse(text) {
        Ok(parsed) => parsed,
        Err(error) => {
            let _ = error.to_string();
            return;
        }
    };
    let _ = (parsed.signing_input(), parsed.signature());
    let deployment = token_deployment();
    let genuine = text == VALID_TOKEN;
    for path in TOKEN_PATHS {
        let request = Request {
            path,
            authorization: Some(format!("Bearer {text}")),
        };
        let verdict = evaluate(deployment, &request, NO_REMOTE_KEYS, NOW);
        render(&verdict);
        if genuine {
            // Guards the fixture: if the deployment or clock drifted, the property below would
            // hold vacuously (everything denied) and the fuzzer would prove nothing.
            assert_eq!(
                verdict.decision,
                Decision::Allow,
                "the genuinely signed token is denied on {path}: {verdict:?}"
            );
        } else {
            assert!(
                verdict.decision != Decision::Allow,
                "a token not signed by k1 was allowed on {path}: {text:?}\n{verdict:?}"
            );
        }
    }
}

/// `jwks` target: a key set, and each of its objects as a single JWK.
pub fn jwks(data: &[u8]) {
    let parse = parse_jwks(data);
    match &parse {
        Ok(parse) => {
            for key in parse.keys.keys() {
                let _ = (key.kid(), key.kind().to_string(), key.allowed().names());
            }
            let _ = parse.keys.algorithms();
        }
        Err(error) => {
            let _ = error.to_string();
        }
    }
    // The same bytes as the key-set parser reads them (strict JSON, depth 16).
    let Ok(Value::Object(document)) = json::parse_value(data, 16) else {
        return;
    };
    let _ = PublicKey::from_jwk(&document).map_err(|error| error.to_string());
    let Some(entries) = document.get("keys").and_then(Value::as_array) else {
        return;
    };
    for entry in entries.iter().take(JWKS_MAX_KEYS) {
        if let Some(object) = entry.as_object() {
            let _ = PublicKey::from_jwk(object).map_err(|error| error.to_string());
        }
    }
    if let Ok(parse) = &parse {
        assert_eq!(
            parse.keys.keys().len() + parse.skipped.len(),
            entries.len(),
            "every JWKS entry must be either kept or skipped"
        );
    }
}

/// `deployment` target: load with default options; when it loads, route a bare `GET`.
pub fn deployment(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let loaded = match load_str(text, &LoadOptions::default()) {
        Ok(loaded) => loaded,
        Err(rejected) => {
            assert!(!rejected.errors.is_empty(), "a rejection names no error");
            for diagnostic in rejected.errors.iter().chain(&rejected.warnings) {
                let _ = diagnostic.to_string();
            }
            return;
        }
    };
    let deployment = &loaded.deployment;
    let verdict = evaluate(
        deployment,
        &Request {
            path: "/",
            authorization: None,
        },
        NO_REMOTE_KEYS,
        NOW,
    );
    render(&verdict);
    // Each route's own path under the prefix, so routing past "no route" is reached too.
    for route in deployment.routes.iter().take(MAX_ROUTES_REQUESTED) {
        let path = match deployment.path_prefix.as_str() {
            "/" => route.path.as_str().to_owned(),
            prefix => format!("{prefix}{}", route.path.as_str()),
        };
        let verdict = evaluate(
            deployment,
            &Request {
                path: &path,
                authorization: None,
            },
            NO_REMOTE_KEYS,
            NOW,
        );
        render(&verdict);
    }
}

/// The deployment the `path` target routes against: a wildcard and a single-segment route
/// under `/v1`, each forwarding its parameter.
const PATH_DEPLOYMENT: &str = r#"{"pathPrefix": "/v1", "specification": {"routes": [
  {"path": "/files/{p*}", "methods": ["GET"],
   "backend": {"type": "HTTP_BACKEND", "url": "http://b/files/${request.path[p]}"}},
  {"path": "/one/{name}/x", "methods": ["GET"],
   "backend": {"type": "HTTP_BACKEND", "url": "http://b/one/${request.path[name]}/x"}}]}}"#;

fn path_deployment() -> &'static Deployment {
    static DEPLOYMENT: OnceLock<Deployment> = OnceLock::new();
    DEPLOYMENT.get_or_init(|| {
        load_str(PATH_DEPLOYMENT, &LoadOptions::default())
            .expect("the path target's deployment loads")
            .deployment
    })
}

/// `claimgate_core::path::normalize` on any UTF-8 text (as a request path). Properties: the
/// normal form is a fixed point (normalising it again borrows it unchanged); it starts with `/`,
/// has no `//`, no `.` or `..` segment, no `.;`/`..;` segment, no escaped unreserved character,
/// no lower-case escape, no backslash and no control character; and the router agrees with the
/// URL builder: a path routed to `/files/{p*}` is `/v1/files/` followed by exactly the captured
/// value (or the value is empty and the path `/v1/files`), and one routed to `/one/{name}/x` captures one segment that is neither `.` nor `..`.
pub fn path(data: &[u8]) {
    use claimgate_core::path::normalize;
    use claimgate_core::route::{find, RouteMatch};
    use std::borrow::Cow;
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(normal) = normalize(raw) else {
        return;
    };
    match normalize(&normal) {
        Ok(Cow::Borrowed(again)) => assert_eq!(again, &*normal, "not a fixed point"),
        other => panic!("{normal:?} normalises again to {other:?}"),
    }
    assert!(normal.starts_with('/'), "{normal:?}");
    assert!(!normal.contains("//"), "{normal:?}");
    assert!(!normal.contains('\\'), "{normal:?}");
    assert!(!normal.bytes().any(|b| b < 0x20 || b == 0x7f), "{normal:?}");
    for segment in normal[1..].split('/') {
        assert!(
            segment != "." && segment != ".." && !segment.starts_with(".;") && !segment.starts_with("..;"),
            "{normal:?}"
        );
    }
    let bytes = normal.as_bytes();
    for (i, _) in normal.match_indices('%') {
        let hex = &bytes[i + 1..i + 3];
        assert!(hex.iter().all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(b)), "{normal:?}");
        let value = u8::from_str_radix(std::str::from_utf8(hex).unwrap(), 16).unwrap();
        assert!(
            !(value.is_ascii_alphanumeric() || b"-._~".contains(&value)),
            "escaped unreserved in {normal:?}"
        );
        assert!(!matches!(value, b'/' | b'\\') && value >= 0x20 && value != 0x7f, "{normal:?}");
    }
    if let RouteMatch::Found { route, params, .. } = find(path_deployment(), "GET", &normal) {
        let value = &params[0].1;
        match route.path.as_str() {
            // A wildcard also matches no segment at all (`/v1/files`, value empty).
            "/files/{p*}" if value.is_empty() && normal == "/v1/files" => {}
            "/files/{p*}" => assert_eq!(format!("/v1/files/{value}"), *normal),
            _ => {
                assert!(!value.contains('/') && value != "." && value != "..", "{value:?}");
                assert_eq!(format!("/v1/one/{value}/x"), *normal);
            }
        }
    }
}

#[cfg(test)]
mod replay {
    //! Replays every checked-in seed and regression through its target, without libFuzzer.

    use std::path::Path;

    fn replay(target: &str, run: fn(&[u8])) {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut replayed = 0;
        for dir in ["corpus", "regressions"] {
            let Ok(entries) = std::fs::read_dir(root.join(dir).join(target)) else {
                continue;
            };
            for entry in entries {
                let path = entry.expect("a directory entry").path();
                if path.is_file() {
                    let data = std::fs::read(&path).expect("a readable file");
                    eprintln!("{target}: {}", path.display());
                    run(&data);
                    replayed += 1;
                }
            }
        }
        assert!(replayed > 0, "no seed for {target}");
    }

    #[test]
    fn token_corpus() {
        replay("token", super::token);
    }

    #[test]
    fn jwks_corpus() {
        replay("jwks", super::jwks);
    }

    #[test]
    fn path_corpus() {
        replay("path", super::path);
    }

    #[test]
    fn deployment_corpus() {
        replay("deployment", super::deployment);
    }

    #[test]
    fn the_genuine_token_is_allowed_and_a_one_byte_change_is_not() {
        super::token(super::VALID_TOKEN.as_bytes());
        let mut flipped = super::VALID_TOKEN.as_bytes().to_vec();
        let last = flipped.len() - 1;
        flipped[last] = if flipped[last] == b'A' { b'Q' } else { b'A' };
        super::token(&flipped);
    }
}
