//! `serve --deployment DIR`, end to end with the real binary: every `*.json` file directly in
//! the directory is served (hidden and other files skipped), a bare specification there needs
//! `/prefix=DIR`, two deployments with one `deploymentId` are a configuration error, and files
//! added, changed or removed in the directory — a Kubernetes ConfigMap `..data` swap included —
//! are reloads.

mod support;

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use support::{claimgate, refused_by_serve, start_gateway_on, Gateway};

/// A deployment on `prefix` whose `GET /hello` answers `body`.
fn stock(prefix: &str, body: &str) -> Value {
    json!({"pathPrefix": prefix, "specification": bare(body)})
}

/// A bare specification whose `GET /hello` answers `body`.
fn bare(body: &str) -> Value {
    json!({"routes": [
        {"path": "/hello", "methods": ["GET"], "backend": {"type": "STOCK_RESPONSE_BACKEND", "status": 200, "body": body}}
    ]})
}

fn write(path: &Path, value: &Value) {
    std::fs::write(path, value.to_string()).unwrap();
}

/// Writes `value` to `path` atomically (write a hidden sibling, then rename over it).
fn atomic_write(path: &Path, value: &Value) {
    let name = path.file_name().unwrap().to_string_lossy();
    let temporary = path.with_file_name(format!(".{name}.tmp"));
    write(&temporary, value);
    std::fs::rename(&temporary, path).unwrap();
}

/// A new temporary directory (the gateway's logs) with an empty `conf` directory in it.
fn conf_dir() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("conf");
    std::fs::create_dir(&conf).unwrap();
    (dir, conf)
}

/// Status and body of `GET url`.
fn get(url: &str) -> (u16, String) {
    let response = support::client().get(url).send().unwrap();
    (response.status().as_u16(), response.text().unwrap())
}

/// Waits up to 10 s for `GET url` to answer `status` with `body` (any body when `None`).
fn wait_for_answer(url: &str, status: u16, body: Option<&str>) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (now, text) = get(url);
        if now == status && body.is_none_or(|b| b == text) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{url}: still {now} {text}, expected {status} {body:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn codes(gw: &Gateway) -> Vec<String> {
    std::fs::read_to_string(&gw.execution_log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|r| r["data"]["code"].as_str().map(str::to_owned))
        .collect()
}

#[test]
fn every_json_file_in_the_directory_is_served_and_hidden_and_other_files_are_skipped() {
    let (dir, conf) = conf_dir();
    write(&conf.join("b.json"), &stock("/b", "b"));
    write(&conf.join("a.json"), &stock("/a", "a"));
    // Valid deployments that must not be served: hidden, or not *.json.
    write(&conf.join(".hidden.json"), &stock("/hidden", "hidden"));
    write(&conf.join("c.json.bak"), &stock("/bak", "bak"));
    std::fs::write(conf.join("README.txt"), "not json").unwrap();
    // A hidden directory, as a ConfigMap volume has.
    std::fs::create_dir(conf.join("..2026_01_01")).unwrap();
    write(&conf.join("..2026_01_01/x.json"), &stock("/x", "x"));
    // A file given beside the directory.
    let single = dir.path().join("single.json");
    write(&single, &stock("/single", "single"));
    let gw = start_gateway_on(dir, &[conf.clone(), single], false, &[]);
    assert_eq!(get(&format!("{}/a/hello", gw.base)), (200, "a".into()));
    assert_eq!(get(&format!("{}/b/hello", gw.base)), (200, "b".into()));
    assert_eq!(
        get(&format!("{}/single/hello", gw.base)),
        (200, "single".into())
    );
    for skipped in ["/hidden", "/bak", "/x"] {
        assert_eq!(
            get(&format!("{}{skipped}/hello", gw.base)).0,
            404,
            "{skipped}"
        );
    }
}

#[test]
fn a_bare_specification_in_a_directory_takes_the_prefix_given_to_the_directory() {
    let (dir, conf) = conf_dir();
    write(&conf.join("spec.json"), &bare("bare"));
    // A full deployment keeps its own pathPrefix.
    write(&conf.join("full.json"), &stock("/full", "full"));
    let arg = PathBuf::from(format!("/api={}", conf.display()));
    let gw = start_gateway_on(dir, &[arg], false, &[]);
    assert_eq!(get(&format!("{}/api/hello", gw.base)), (200, "bare".into()));
    assert_eq!(
        get(&format!("{}/full/hello", gw.base)),
        (200, "full".into())
    );
}

#[test]
fn a_bare_specification_in_a_directory_without_a_prefix_is_refused_naming_the_file() {
    let (_dir, conf) = conf_dir();
    write(&conf.join("full.json"), &stock("/full", "full"));
    write(&conf.join("spec.json"), &bare("bare"));
    let stderr = refused_by_serve(&["--deployment", conf.to_str().unwrap()]);
    let file = conf.join("spec.json");
    assert!(stderr.contains(file.to_str().unwrap()), "{stderr}");
    assert!(stderr.contains("/prefix="), "{stderr}");
    // The same file given alone is a bare specification on / (as before).
    let _ = std::fs::remove_file(conf.join("full.json"));
    let (dir2, _) = conf_dir();
    let gw = start_gateway_on(dir2, &[file], false, &[]);
    assert_eq!(get(&format!("{}/hello", gw.base)), (200, "bare".into()));
}

#[test]
fn two_deployments_with_one_deployment_id_are_refused_naming_both_files() {
    let dir = tempfile::tempdir().unwrap();
    let (first, second) = (dir.path().join("first"), dir.path().join("second"));
    std::fs::create_dir(&first).unwrap();
    std::fs::create_dir(&second).unwrap();
    // Both are named orders: the deploymentId of a file without id is its name.
    write(&first.join("orders.json"), &stock("/a", "a"));
    write(&second.join("orders.json"), &stock("/b", "b"));
    let other = second.join("orders.json");
    let stderr = refused_by_serve(&[
        "--deployment",
        first.to_str().unwrap(),
        "--deployment",
        other.to_str().unwrap(),
    ]);
    assert!(stderr.contains("deploymentId 'orders'"), "{stderr}");
    assert!(
        stderr.contains(first.join("orders.json").to_str().unwrap()),
        "{stderr}"
    );
    assert!(stderr.contains(other.to_str().unwrap()), "{stderr}");
    // Under another name, both are served.
    let renamed = second.join("invoices.json");
    std::fs::rename(&other, &renamed).unwrap();
    let gw = start_gateway_on(tempfile::tempdir().unwrap(), &[first, renamed], false, &[]);
    assert_eq!(get(&format!("{}/b/hello", gw.base)), (200, "b".into()));
}

#[test]
fn an_empty_directory_is_refused_naming_it() {
    let (_dir, conf) = conf_dir();
    // Only files that do not count.
    write(&conf.join(".hidden.json"), &stock("/hidden", "hidden"));
    std::fs::write(conf.join("notes.txt"), "x").unwrap();
    let stderr = refused_by_serve(&["--deployment", conf.to_str().unwrap()]);
    assert!(stderr.contains(conf.to_str().unwrap()), "{stderr}");
    assert!(stderr.contains("no *.json file"), "{stderr}");
}

#[test]
fn an_invalid_file_in_the_directory_is_named() {
    let (_dir, conf) = conf_dir();
    write(&conf.join("good.json"), &stock("/good", "good"));
    std::fs::write(
        conf.join("bad.json"),
        r#"{"pathPrefix":"/bad","specification":{"routes":[{"path":"no-slash"}]}}"#,
    )
    .unwrap();
    let stderr = refused_by_serve(&["--deployment", conf.to_str().unwrap()]);
    assert!(
        stderr.contains(conf.join("bad.json").to_str().unwrap()),
        "{stderr}"
    );
    assert!(stderr.contains("routes[0].path"), "{stderr}");
}

#[test]
fn validate_takes_a_directory() {
    let (_dir, conf) = conf_dir();
    write(&conf.join("a.json"), &stock("/a", "a"));
    write(&conf.join("b.json"), &stock("/b", "b"));
    std::fs::write(conf.join(".swap.json"), "not json").unwrap();
    let output = claimgate(&["validate", conf.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("a.json") && stdout.contains("b.json"),
        "{stdout}"
    );
    std::fs::write(conf.join("c.json"), "{").unwrap();
    let output = claimgate(&["validate", conf.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(2), "{stdout}");
    assert!(stdout.contains("c.json"), "{stdout}");
}

#[test]
fn files_added_changed_and_removed_in_the_directory_are_reloads() {
    let (dir, conf) = conf_dir();
    write(&conf.join("a.json"), &stock("/a", "a1"));
    let outside = dir.path().join("c.json");
    write(&outside, &stock("/c", "c"));
    let gw = start_gateway_on(dir, &[conf.clone(), outside], false, &[]);
    let (a, b) = (
        format!("{}/a/hello", gw.base),
        format!("{}/b/hello", gw.base),
    );
    assert_eq!(get(&a), (200, "a1".into()));
    assert_eq!(get(&b).0, 404);
    // Added.
    atomic_write(&conf.join("b.json"), &stock("/b", "b1"));
    wait_for_answer(&b, 200, Some("b1"));
    // Changed in place (the directory itself does not change).
    write(&conf.join("a.json"), &stock("/a", "a-in-place"));
    wait_for_answer(&a, 200, Some("a-in-place"));
    // Changed by a rename over it.
    atomic_write(&conf.join("a.json"), &stock("/a", "a2"));
    wait_for_answer(&a, 200, Some("a2"));
    // Removed: its routes are gone.
    std::fs::remove_file(conf.join("b.json")).unwrap();
    wait_for_answer(&b, 404, None);
    assert_eq!(get(&a), (200, "a2".into()));
    // A file whose deploymentId another source has: rejected, the set keeps serving.
    atomic_write(&conf.join("c.json"), &stock("/c2", "c2"));
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(get(&format!("{}/c2/hello", gw.base)).0, 404);
    assert_eq!(get(&a), (200, "a2".into()));
    let log = std::fs::read_to_string(&gw.execution_log).unwrap();
    assert!(log.contains("deploymentId 'c'"), "{log}");
    let codes = codes(&gw);
    assert!(
        codes
            .iter()
            .filter(|c| *c == "configuration.reloaded")
            .count()
            >= 3,
        "{codes:?}"
    );
    assert_eq!(
        codes
            .iter()
            .filter(|c| *c == "configuration.reloadRejected")
            .count(),
        1,
        "{codes:?}"
    );
    // Taken away again: the directory reloads fine.
    std::fs::remove_file(conf.join("c.json")).unwrap();
    atomic_write(&conf.join("a.json"), &stock("/a", "a3"));
    wait_for_answer(&a, 200, Some("a3"));
}

/// Points `conf/..data` at `conf/target` the way kubelet does: a new symlink, renamed over
/// the old one (atomic).
fn swap_data(conf: &Path, target: &str) {
    let staged = conf.join("..data_tmp");
    std::os::unix::fs::symlink(target, &staged).unwrap();
    std::fs::rename(&staged, conf.join("..data")).unwrap();
}

#[test]
fn a_configmap_data_swap_is_a_reload() {
    let (dir, conf) = conf_dir();
    // Kubelet's layout: the files in a timestamped directory, `..data` pointing at it, and
    // each visible name a symlink through `..data`.
    let first = conf.join("..2026_12_02_07_00_00.000000001");
    std::fs::create_dir(&first).unwrap();
    write(&first.join("orders.json"), &stock("/orders", "v1"));
    write(&first.join("users.json"), &stock("/users", "u1"));
    swap_data(&conf, "..2026_12_02_07_00_00.000000001");
    for name in ["orders.json", "users.json"] {
        std::os::unix::fs::symlink(format!("..data/{name}"), conf.join(name)).unwrap();
    }
    let gw = start_gateway_on(dir, std::slice::from_ref(&conf), false, &[]);
    let orders = format!("{}/orders/hello", gw.base);
    let users = format!("{}/users/hello", gw.base);
    assert_eq!(get(&orders), (200, "v1".into()));
    assert_eq!(get(&users), (200, "u1".into()));
    // The ConfigMap changes: orders.json edited, users.json removed, extra.json added.
    let second = conf.join("..2026_12_02_07_01_00.000000002");
    std::fs::create_dir(&second).unwrap();
    write(&second.join("orders.json"), &stock("/orders", "v2"));
    write(&second.join("extra.json"), &stock("/extra", "e1"));
    swap_data(&conf, "..2026_12_02_07_01_00.000000002");
    std::os::unix::fs::symlink("..data/extra.json", conf.join("extra.json")).unwrap();
    std::fs::remove_file(conf.join("users.json")).unwrap();
    std::fs::remove_dir_all(&first).unwrap();
    wait_for_answer(&orders, 200, Some("v2"));
    wait_for_answer(&format!("{}/extra/hello", gw.base), 200, Some("e1"));
    wait_for_answer(&users, 404, None);
    // A second swap that only changes content (same names).
    let third = conf.join("..2026_12_02_07_02_00.000000003");
    std::fs::create_dir(&third).unwrap();
    write(&third.join("orders.json"), &stock("/orders", "v3"));
    write(&third.join("extra.json"), &stock("/extra", "e1"));
    swap_data(&conf, "..2026_12_02_07_02_00.000000003");
    std::fs::remove_dir_all(&second).unwrap();
    wait_for_answer(&orders, 200, Some("v3"));
}
