//! The `claimgate` binary end to end: real processes, real files, exit codes and output.
//! Tokens come from `tests/interop/mint.py` (Python `cryptography`), an implementation
//! independent of claimgate's own.

mod support;

use support::claimgate;

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn stdout_json(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

/// The minted fixtures, made once per test binary.
fn minted() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let status = Command::new(support::python())
            .arg(repo_root().join("tests/interop/mint.py"))
            .arg(dir.path())
            .status()
            .expect("python runs (scripts/test.sh makes .venv with its requirements)");
        assert!(
            status.success(),
            "mint.py failed: is `cryptography` installed?"
        );
        dir
    })
    .path()
}

fn case(name: &str) -> (String, i64) {
    let cases: Value =
        serde_json::from_str(&std::fs::read_to_string(minted().join("cases.json")).unwrap())
            .unwrap();
    let now = cases["now"].as_i64().unwrap();
    let token = cases["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no case {name}"))["token"]
        .as_str()
        .unwrap()
        .to_owned();
    (token, now)
}

/// Runs `check` on the minted deployment; `now` 0 leaves `--now` to `extra`.
fn check_minted(path: &str, token: &str, now: i64, extra: &[&str]) -> Output {
    let deployment = minted().join("deployment.json");
    let jwks = minted().join("jwks.json");
    let now = now.to_string();
    let request = format!("GET {path}");
    let mut args = vec![
        "check",
        "--deployment",
        deployment.to_str().unwrap(),
        "--jwks",
        jwks.to_str().unwrap(),
        "--request",
        &request,
        "--token",
        token,
    ];
    if now != "0" {
        args.extend_from_slice(&["--now", &now]);
    }
    args.extend_from_slice(extra);
    claimgate(&args)
}

#[test]
fn tokens_minted_by_python_cryptography_get_the_expected_verdicts() {
    let cases: Value =
        serde_json::from_str(&std::fs::read_to_string(minted().join("cases.json")).unwrap())
            .unwrap();
    let now = cases["now"].as_i64().unwrap();
    let list = cases["cases"].as_array().unwrap();
    assert!(list.len() >= 25, "the interop corpus shrank");
    for case in list {
        let name = case["name"].as_str().unwrap();
        let output = check_minted(
            case["path"].as_str().unwrap(),
            case["token"].as_str().unwrap(),
            now,
            &["--output", "json"],
        );
        let verdict = stdout_json(&output);
        let failed: Vec<&str> = verdict["checks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["result"] == "fail")
            .map(|c| c["check"].as_str().unwrap())
            .collect();
        let expected: Vec<&str> = case["failed"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(verdict["decision"], case["decision"], "{name}: {verdict:#}");
        assert_eq!(failed, expected, "{name}");
        let code = if case["decision"] == "allow" { 0 } else { 1 };
        assert_eq!(output.status.code(), Some(code), "{name}");
        assert_eq!(verdict["version"], 1);
    }
}

#[test]
fn wrong_audience_is_explained_in_text() {
    let (token, now) = case("wrong_audience");
    let output = check_minted("/v1/orders", &token, now, &[]);
    let text = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1));
    assert!(text.starts_with("DENY  401 Unauthorized"), "{text}");
    assert!(text.contains("FAIL aud"), "{text}");
    assert!(
        text.contains("JWT token not issued for the configured audience."),
        "{text}"
    );
    assert!(
        text.contains(
            "The token's aud is `api://billing` but the deployment accepts `api://orders`"
        ),
        "{text}"
    );
    assert!(text.contains("pass iss"), "{text}");
    assert!(!text.contains('\x1b'), "no colour with NO_COLOR");
}

#[test]
fn scope_failure_is_403_with_the_authorization_event() {
    let (token, now) = case("scope_missing_for_admin");
    let verdict = stdout_json(&check_minted(
        "/v1/admin",
        &token,
        now,
        &["--output", "json"],
    ));
    assert_eq!(verdict["status"], 403);
    let codes: Vec<&str> = verdict["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["code"].as_str().unwrap())
        .collect();
    assert_eq!(
        codes,
        [
            "jwtAuthentication.successfulAuthentication",
            "authorization.unauthorizedRequest"
        ]
    );
}

#[test]
fn time_checks_carry_now_and_skew_and_fix_names_the_times() {
    let (token, now) = case("expired_beyond_skew");
    let verdict = stdout_json(&check_minted(
        "/v1/orders",
        &token,
        now,
        &["--output", "json"],
    ));
    let exp = verdict["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == "exp")
        .unwrap();
    assert_eq!(exp["now"], now);
    assert_eq!(exp["skew"], 30.0);
    assert_eq!(exp["actual"], now - 31);
    assert!(
        exp["fix"]
            .as_str()
            .unwrap()
            .contains("31s ago; allowed skew 30s"),
        "{exp}"
    );
}

#[test]
fn now_accepts_rfc3339() {
    let (token, _) = case("valid_RS256");
    // 2026-11-18T11:06:40Z is the corpus's `now`; a year later the token has expired.
    let ok = check_minted("/v1/orders", &token, 0, &["--now", "2026-11-18T11:06:40Z"]);
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stdout)
    );
    let late = check_minted("/v1/orders", &token, 0, &["--now", "2027-11-18T11:06:40Z"]);
    assert_eq!(late.status.code(), Some(1));
    let bad = check_minted("/v1/orders", &token, 0, &["--now", "yesterday"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("neither seconds since 1970 nor RFC 3339")
    );
}

#[test]
fn unmatched_path_is_404_and_wrong_method_405() {
    let (token, now) = case("valid_RS256");
    let verdict = stdout_json(&check_minted(
        "/v1/nothing",
        &token,
        now,
        &["--output", "json"],
    ));
    assert_eq!(verdict["status"], 404);
    assert_eq!(verdict["route"], Value::Null);
    assert!(verdict["checks"]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c["result"] == "skip"));
    let deployment = minted().join("deployment.json");
    let output = claimgate(&[
        "check",
        "--deployment",
        deployment.to_str().unwrap(),
        "--request",
        "POST /v1/orders",
        "--output",
        "json",
        "--jwks",
        minted().join("jwks.json").to_str().unwrap(),
    ]);
    let verdict = stdout_json(&output);
    assert_eq!(verdict["status"], 405);
    assert_eq!(verdict["allow"], serde_json::json!(["GET"]));
    assert_eq!(output.status.code(), Some(1));
}

#[test]
fn unreachable_key_set_means_could_not_evaluate() {
    let dir = tempfile::tempdir().unwrap();
    // Port 9 on loopback (discard) is closed here; the fetch fails fast with "connection refused".
    let text = std::fs::read_to_string(minted().join("deployment.json"))
        .unwrap()
        .replace("https://idp.example.com/jwks", "http://127.0.0.1:9/jwks");
    let file = dir.path().join("d.json");
    std::fs::write(&file, text).unwrap();
    let (token, now) = case("valid_RS256");
    let now = now.to_string();
    let output = claimgate(&[
        "check",
        "--deployment",
        file.to_str().unwrap(),
        "--request",
        "GET /v1/orders",
        "--token",
        &token,
        "--now",
        &now,
        "--output",
        "json",
    ]);
    let verdict = stdout_json(&output);
    assert_eq!(output.status.code(), Some(3));
    assert_eq!(verdict["status"], 500);
    let key = verdict["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == "key")
        .unwrap();
    assert!(
        key["message"]
            .as_str()
            .unwrap()
            .contains("connection failed"),
        "{key}"
    );
    assert_eq!(
        verdict["events"][0]["code"],
        "jwtAuthentication.badJsonWebKeySet"
    );
    assert_eq!(verdict["events"][0]["level"], "ERROR");
}

#[test]
fn token_from_file_and_stdin_is_trimmed_and_bearer_dropped() {
    let (token, now) = case("valid_ES256");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("t.jwt");
    std::fs::write(&file, format!("  Bearer {token}\n")).unwrap();
    let at = format!("@{}", file.display());
    assert_eq!(
        check_minted("/v1/orders", &at, now, &[]).status.code(),
        Some(0)
    );
    // `-` reads stdin, with the same trimming.
    let mut child = Command::new(env!("CARGO_BIN_EXE_claimgate"))
        .args(["decode", "-", "--output", "json"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write as _;
        let mut stdin = child.stdin.take().unwrap();
        write!(stdin, "\n bearer {token} \n").unwrap();
    }
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(stdout_json(&output)["header"]["alg"], "ES256");
}

#[test]
fn invalid_deployment_reports_every_error_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.json");
    std::fs::write(
        &file,
        r#"{"pathPrefix":"/v1","specification":{"requestPolicies":{"authentication":{"type":"JWT_AUTHENTICATION","tokenHeader":"Authorization","tokenAuthScheme":"Bearer","issuers":["a"],"audience":["b"],"maxClockSkewInSeconds":300,"publicKeys":{"type":"STATIC_KEYS","keys":[]}}},"routes":[{"path":"/x","backend":{"type":"STOCK_RESPONSE_BACKEND","status":200}}]}}"#,
    )
    .unwrap();
    let output = claimgate(&[
        "check",
        "--deployment",
        file.to_str().unwrap(),
        "--request",
        "GET /v1/x",
        "--output",
        "json",
    ]);
    assert_eq!(output.status.code(), Some(2));
    let doc = stdout_json(&output);
    let details: Vec<&str> = doc["error"]["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap())
        .collect();
    let auth = "specification.requestPolicies.authentication";
    for expected in [
        format!("{auth}.maxClockSkewInSeconds: 300 is above the maximum 120"),
        format!("{auth}.audiences: is required"),
        format!("{auth}.audience: unknown member (did you mean 'audiences'?)"),
        format!("{auth}.publicKeys.keys: at least one key is required"),
    ] {
        assert!(
            details.contains(&expected.as_str()),
            "missing {expected:?} in {details:#?}"
        );
    }
    let validate = claimgate(&["validate", file.to_str().unwrap()]);
    assert_eq!(validate.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&validate.stdout)
        .contains("maxClockSkewInSeconds: 300 is above the maximum 120"));
}

#[test]
fn every_oci_example_loads_with_the_expected_warnings() {
    let examples = repo_root().join("tests/data/oci-examples");
    let mut seen = 0;
    for entry in std::fs::read_dir(&examples).expect("tests/data/oci-examples") {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            let output = claimgate(&["validate", "--output", "json", path.to_str().unwrap()]);
            let doc = stdout_json(&output);
            seen += 1;
            if path.ends_with("custom-auth-modify-response-request-auth-headers.json") {
                // As kept it has isAnonymousAccessAllowed: false with ANONYMOUS routes, which
                // OCI's AuthenticationPolicy refuses for every authentication type.
                assert_eq!(output.status.code(), Some(2), "{doc:#}");
                let errors = doc["files"][0]["errors"].as_array().unwrap();
                assert_eq!(errors.len(), 6, "{doc:#}");
                assert!(errors.iter().all(|e| e.to_string().contains(
                    "ANONYMOUS needs isAnonymousAccessAllowed: true in the authentication policy"
                )));
                continue;
            }
            assert_eq!(output.status.code(), Some(0), "{}: {doc:#}", path.display());
            let warnings = doc["files"][0]["warnings"].to_string();
            let name = path.file_name().unwrap().to_string_lossy();
            // rateLimiting, mutualTls and cors are enforced by serve: no warning.
            for enforced in ["rateLimiting", "mutualTls", "cors"] {
                assert!(!warnings.contains(enforced), "{name}: {warnings}");
            }
        }
    }
    assert_eq!(seen, 6);
}

#[test]
fn a_kebab_read_back_is_judged_with_recorded_keys() {
    let deployment = repo_root()
        .join("tests/data/oci-examples/cli-get-output-jwt-remote-jwks-verify-claims.kebab.json");
    let output = claimgate(&[
        "check",
        "--deployment",
        deployment.to_str().unwrap(),
        "--path-prefix",
        "/admin",
        "--request",
        "GET /admin/speakerpool-admin",
        "--jwks",
        minted().join("jwks.json").to_str().unwrap(),
        "--token",
        &case("valid_RS256").0,
        "--output",
        "json",
        "--now",
        "1795000000",
    ]);
    let verdict = stdout_json(&output);
    assert_eq!(verdict["route"]["path"], "/speakerpool-admin");
    let failed: Vec<&str> = verdict["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["result"] == "fail")
        .map(|c| c["check"].as_str().unwrap())
        .collect();
    // Signed by the minted key, which this deployment does not know; claims judged unverified.
    assert_eq!(failed, ["iss", "aud", "claim:preferred_username"]);
    // Its cors is enforced by serve, so it is not warned about.
    assert!(!verdict["warnings"].to_string().contains("cors"));
}

#[test]
fn decode_shows_claims_and_times_and_never_verifies() {
    let (token, now) = case("valid_RS256");
    let now = now.to_string();
    let output = claimgate(&["decode", &token, "--now", &now]);
    let text = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0));
    assert!(text.contains("\"sub\": \"alice\""), "{text}");
    assert!(
        text.contains("exp  2026-11-18T12:06:40Z  expires in 1h"),
        "{text}"
    );
    assert!(text.contains("NOT verified"), "{text}");
    let json = stdout_json(&claimgate(&["decode", &token, "--output", "json"]));
    assert_eq!(json["signatureVerified"], false);
    assert_eq!(json["header"]["alg"], "RS256");
    let garbage = claimgate(&["decode", "not-a-token"]);
    assert_eq!(garbage.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&garbage.stderr).contains("not a token"));
}

#[test]
fn version_and_help_work() {
    let version = claimgate(&["--version"]);
    assert!(String::from_utf8_lossy(&version.stdout).starts_with("claimgate "));
    for sub in ["check", "decode", "validate"] {
        assert_eq!(claimgate(&[sub, "--help"]).status.code(), Some(0), "{sub}");
    }
}

#[test]
fn logs_reads_an_oci_logging_export_and_diagnoses_the_request() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("oci-export.json");
    // Shaped as OCI Logging exports records: the viewer's wrapper around the CloudEvents
    // envelope, with OCI's own fields.
    let id = "/2A9486DD7E373F886B0E7099C1604D94/0889F2867669123D151CCD2B05D297A7";
    let export = serde_json::json!([
        {"datetime": 1_764_345_600_000_i64, "regionId": "us-ashburn-1", "logContent": {
            "specversion": "1.0", "id": "a1", "source": "api-deployment", "time": "2026-11-28T16:00:00.120Z",
            "type": "com.oraclecloud.apigateway.apideployment.execution",
            "oracle": {"logid": "ocid1.log.oc1..x", "loggroupid": "ocid1.loggroup.oc1..x", "tenantid": "ocid1.tenancy.oc1..x"},
            "data": {"code": "jwtAuthentication.authenticationFailed", "level": "WARN",
                     "message": "JWT token not issued for the configured audience.",
                     "opcRequestId": id, "deploymentId": "ocid1.apideployment.oc1.iad.x", "gatewayId": "ocid1.apigateway.oc1.iad.x"}}},
        {"datetime": 1_764_345_600_100_i64, "regionId": "us-ashburn-1", "logContent": {
            "specversion": "1.0", "id": "a0", "source": "api-deployment", "time": "2026-11-28T16:00:00.100Z",
            "type": "com.oraclecloud.apigateway.apideployment.access",
            "data": {"httpMethod": "GET", "requestUri": "/v1/orders", "status": 401, "message": "GET /v1/orders HTTP/1.1",
                     "opcRequestId": id, "deploymentId": "ocid1.apideployment.oc1.iad.x"}}},
        {"datetime": 1_764_345_700_000_i64, "logContent": {"type": "com.oraclecloud.apigateway.apideployment.access",
            "time": "2026-11-28T16:01:40Z", "data": {"opcRequestId": "/OTHER", "status": 200}}}
    ]);
    std::fs::write(&file, export.to_string()).unwrap();
    // The client saw the id's first segment; either form finds the request.
    let output = claimgate(&[
        "logs",
        "--file",
        file.to_str().unwrap(),
        "--request-id",
        "2A9486DD7E373F886B0E7099C1604D94",
    ]);
    let text = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{text}");
    assert!(text.starts_with("2 records for request"), "{text}");
    let access_at = text.find("access").unwrap();
    let warn_at = text.find("WARN").unwrap();
    assert!(access_at < warn_at, "records are in time order: {text}");
    assert!(
        text.contains("✗ JWT token not issued for the configured audience."),
        "{text}"
    );
    let json = stdout_json(&claimgate(&[
        "logs",
        "--file",
        file.to_str().unwrap(),
        "--request-id",
        id,
        "--output",
        "json",
    ]));
    assert_eq!(json["records"].as_array().unwrap().len(), 2);
    assert_eq!(
        json["diagnosis"][0]["code"],
        "jwtAuthentication.authenticationFailed"
    );
    let unreadable = claimgate(&[
        "logs",
        "--file",
        dir.path().join("missing.json").to_str().unwrap(),
        "--request-id",
        id,
    ]);
    assert_eq!(unreadable.status.code(), Some(2));
}
