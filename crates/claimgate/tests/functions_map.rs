//! `serve --functions FILE`: the map from function OCIDs to the URLs that invoke them. A
//! deployment naming a function the map lacks is refused (exit 2, the function and where the
//! file names it); a bad map is refused with its errors; a good one lets the deployment start,
//! and a reload that drops a mapped function is rejected while the old set keeps serving.

mod support;

use serde_json::json;
use std::time::{Duration, Instant};
use support::{client, refused_by_serve, start_gateway_on};

/// A bare specification with a stock route and a route to function `ocid`.
fn deployment(ocid: &str) -> serde_json::Value {
    json!({"routes": [
        {"path": "/hello", "methods": ["GET"],
         "backend": {"type": "ORACLE_FUNCTIONS_BACKEND", "functionId": ocid}},
        {"path": "/stock", "methods": ["GET"],
         "backend": {"type": "STOCK_RESPONSE_BACKEND", "status": 200, "body": "stock"}}
    ]})
}

fn write(dir: &std::path::Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

#[test]
fn a_function_without_a_url_is_refused_naming_the_flag_the_ocid_and_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let spec = write(
        dir.path(),
        "spec.json",
        &deployment("ocid1.fnfunc.oc1..hello").to_string(),
    );
    let source = format!("/v1={spec}");
    let stderr = refused_by_serve(&["--deployment", &source]);
    assert!(stderr.contains("give --functions FILE"), "{stderr}");
    assert!(
        stderr.contains("routes[0].backend.functionId: 'ocid1.fnfunc.oc1..hello'"),
        "{stderr}"
    );

    let other = write(
        dir.path(),
        "functions.json",
        r#"{"ocid1.fnfunc.oc1..other": "http://127.0.0.1:9/"}"#,
    );
    let stderr = refused_by_serve(&["--deployment", &source, "--functions", &other]);
    assert!(stderr.contains("does not map every function"), "{stderr}");
    assert!(stderr.contains("'ocid1.fnfunc.oc1..hello'"), "{stderr}");
}

#[test]
fn a_bad_functions_file_is_refused_with_its_errors_and_no_password() {
    let dir = tempfile::tempdir().unwrap();
    let spec = write(
        dir.path(),
        "spec.json",
        &deployment("ocid1.fnfunc.oc1..hello").to_string(),
    );
    let source = format!("/v1={spec}");
    let bad = write(
        dir.path(),
        "functions.json",
        r#"{"ocid1.fnfunc.oc1..hello": "http://fn:s3cret@127.0.0.1:9/", "ocid1.fnfunc.oc1..x": 1}"#,
    );
    let stderr = refused_by_serve(&["--deployment", &source, "--functions", &bad]);
    assert!(stderr.contains("is not a valid functions file"), "{stderr}");
    assert!(stderr.contains("carries user information"), "{stderr}");
    assert!(stderr.contains("expected the function's URL"), "{stderr}");
    assert!(!stderr.contains("s3cret"), "{stderr}");
    let stderr = refused_by_serve(&[
        "--deployment",
        &source,
        "--functions",
        "/nonexistent/functions.json",
    ]);
    assert!(stderr.contains("--functions"), "{stderr}");
}

#[test]
fn a_mapped_function_starts_and_a_reload_dropping_it_keeps_the_old_set() {
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("spec.json");
    std::fs::write(&spec, deployment("ocid1.fnfunc.oc1..hello").to_string()).unwrap();
    let functions = write(
        dir.path(),
        "functions.json",
        r#"{"ocid1.fnfunc.oc1..hello": "http://127.0.0.1:9/hello"}"#,
    );
    let logs = tempfile::tempdir().unwrap();
    let source = format!("/v1={}", spec.display());
    let gateway = start_gateway_on(
        logs,
        &[],
        false,
        &["--deployment", &source, "--functions", &functions],
    );
    let http = client();
    let stock = http
        .get(format!("{}/v1/stock", gateway.base))
        .send()
        .unwrap();
    assert_eq!(stock.status(), 200);

    // The map loses the function: the reload is rejected, the running set stays.
    std::fs::write(
        &functions,
        r#"{"ocid1.fnfunc.oc1..other": "http://127.0.0.1:9/"}"#,
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let log = std::fs::read_to_string(&gateway.execution_log).unwrap_or_default();
        if log.contains("configuration.reloadRejected") || log.contains("reloadRejected") {
            assert!(log.contains("ocid1.fnfunc.oc1..hello"), "{log}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no rejected reload was logged:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let stock = http
        .get(format!("{}/v1/stock", gateway.base))
        .send()
        .unwrap();
    assert_eq!(stock.status(), 200);
}
