//! The bundled demo (`claimgate serve` with no deployment), as a newcomer meets it: every
//! command it prints runs as printed, and its files go to a directory of the user's own.

mod support;

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};
use support::{client, free_port, wait_for, Running};

/// A running demo and what it printed on stdout.
struct Demo {
    _process: Running,
    lines: Vec<String>,
    /// The environment the demo ran with, for running its lines the same way.
    path: String,
}

/// Starts the demo on a free port with `env` (on top of a cleared `XDG_RUNTIME_DIR` and
/// `TMPDIR`) and reads what it prints up to its last command.
fn start_demo(env: &[(&str, &Path)], path: &str) -> Demo {
    let listen = format!("127.0.0.1:{}", free_port());
    let mut command = Command::new(env!("CARGO_BIN_EXE_claimgate"));
    command
        .args(["serve", "--listen", &listen])
        .env_remove("XDG_RUNTIME_DIR")
        .env_remove("TMPDIR")
        .env("PATH", path)
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    for (name, value) in env {
        command.env(name, value);
    }
    let mut child = command.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let process = Running(child);
    // The lines end with the admin token's command; a thread reads them so that a demo that
    // prints less fails the wait below instead of blocking the test.
    let receiver = support::lines_of(stdout);
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut lines: Vec<String> = Vec::new();
    while !lines.iter().any(|l| l.contains("/demo/admin -H")) {
        let left = deadline.saturating_duration_since(Instant::now());
        match receiver.recv_timeout(left) {
            Ok(line) => lines.push(line),
            Err(_) => panic!("the demo printed no commands in time: {lines:#?}"),
        }
    }
    wait_for(&listen);
    Demo {
        _process: process,
        lines,
        path: path.to_owned(),
    }
}

impl Demo {
    /// The file named on "The demo deployment is FILE (...)".
    fn deployment_file(&self) -> PathBuf {
        let line = self
            .lines
            .iter()
            .find_map(|l| l.strip_prefix("The demo deployment is "))
            .expect("the demo names its deployment file");
        PathBuf::from(line.split(" (").next().unwrap())
    }

    /// The printed command lines, in order.
    fn commands(&self) -> Vec<&str> {
        self.lines
            .iter()
            .filter_map(|l| l.strip_prefix("  "))
            .collect()
    }

    /// Runs one printed line with `sh -c`, as a user pasting it would.
    fn run(&self, line: &str) -> Output {
        Command::new("sh")
            .args(["-c", line])
            .env("PATH", &self.path)
            .env("NO_COLOR", "1")
            .output()
            .unwrap()
    }
}

/// Splits a printed line into words as `sh` would for the quoting the demo uses (plain words
/// and single quotes).
fn words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quoted = false;
    for c in line.chars() {
        match c {
            '\'' => {
                quoted = !quoted;
                in_word = true;
            }
            ' ' if !quoted => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                }
                in_word = false;
            }
            c => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(word);
    }
    words
}

/// Sends a printed `curl -i URL -H 'NAME: VALUE'` line: with curl itself when the machine has
/// it, else the same request through reqwest. Returns the status and the `opc-request-id`.
fn send(demo: &Demo, line: &str, with_curl: bool) -> (u16, String) {
    let args = words(line);
    assert_eq!(args[..2], ["curl", "-i"], "{line}");
    if with_curl {
        let output = demo.run(line);
        assert!(output.status.success(), "{line}: {output:?}");
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        let status = text
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no status in {text}"));
        let id = text
            .lines()
            .find_map(|l| {
                let (name, value) = l.split_once(':')?;
                name.eq_ignore_ascii_case("opc-request-id")
                    .then(|| value.trim().to_owned())
            })
            .unwrap_or_else(|| panic!("no opc-request-id in {text}"));
        return (status, id);
    }
    let mut request = client().get(&args[2]);
    for pair in args[3..].chunks(2) {
        assert_eq!(pair[0], "-H", "{line}");
        let (name, value) = pair[1].split_once(": ").unwrap();
        request = request.header(name, value);
    }
    let response = request.send().unwrap();
    let id = response.headers()["opc-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    (response.status().as_u16(), id)
}

fn system_path() -> String {
    std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".to_owned())
}

fn curl_exists(path: &str) -> bool {
    std::env::split_paths(path).any(|dir| dir.join("curl").is_file())
}

/// Every printed command, run as printed: the three requests answer 200, 401 and 200, and the
/// `logs` line (with the refusal's request id put in place of ID) explains the refusal. The
/// program is named by its full path when `PATH` has no `claimgate`, by its name when it has.
/// The requests go through curl when the machine has it, and in the second pass (and without
/// curl) as the same requests parsed from the printed lines. The second pass's log files are in
/// a directory whose name has spaces and a quote, which the printed line must quote.
#[test]
fn every_printed_command_runs_as_printed() {
    let bin = Path::new(env!("CARGO_BIN_EXE_claimgate"));
    let on_path = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(bin, on_path.path().join("claimgate")).unwrap();
    let with_claimgate = std::env::join_paths(
        std::iter::once(on_path.path().to_owned()).chain(std::env::split_paths(&system_path())),
    )
    .unwrap()
    .into_string()
    .unwrap();
    for (pass, path) in [system_path(), with_claimgate].into_iter().enumerate() {
        // The second pass's directory needs quoting in a shell: the lines must quote it.
        let runtime = tempfile::tempdir().unwrap();
        let runtime = runtime.path().join(if pass == 0 {
            "run"
        } else {
            "the user's run dir"
        });
        std::fs::create_dir(&runtime).unwrap();
        let demo = start_demo(&[("XDG_RUNTIME_DIR", &runtime)], &path);
        let commands = demo.commands();
        let requests: Vec<&str> = commands
            .iter()
            .copied()
            .filter(|c| c.starts_with("curl "))
            .collect();
        assert_eq!(requests.len(), 3, "{:#?}", demo.lines);
        let logs = commands
            .iter()
            .find(|c| c.contains(" logs "))
            .expect("a logs line");
        let program = &words(logs)[0];
        if path.contains(on_path.path().to_str().unwrap()) {
            assert_eq!(program, "claimgate", "{logs}");
        } else {
            assert_eq!(
                Path::new(program),
                std::fs::canonicalize(bin).unwrap(),
                "{logs}"
            );
        }
        let with_curl = pass == 0 && curl_exists(&path);
        let statuses: Vec<(u16, String)> = requests
            .iter()
            .map(|line| send(&demo, line, with_curl))
            .collect();
        assert_eq!(
            statuses.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
            [200, 401, 200],
            "{requests:#?}"
        );
        let refused = &statuses[1].1;
        assert!(logs.ends_with("--request-id ID"), "{logs}");
        let line = format!("{}{refused}", logs.strip_suffix("ID").unwrap());
        // The writer batches its records: give it a few seconds.
        let deadline = Instant::now() + Duration::from_secs(10);
        let output = loop {
            let output = demo.run(&line);
            if output.status.success() || Instant::now() > deadline {
                break output;
            }
            std::thread::sleep(Duration::from_millis(200));
        };
        let text = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{line}: {output:?}");
        assert!(text.contains("api://billing"), "{text}");

        // The printed `try` line, with the refused token in token.txt, sends and diagnoses in
        // one command (exit 1: refused by the gateway).
        let try_line = commands
            .iter()
            .find(|c| c.contains(" try "))
            .expect("a try line");
        let token = requests[1]
            .split("Bearer ")
            .nth(1)
            .and_then(|rest| rest.split('\'').next())
            .unwrap();
        let tokens = tempfile::tempdir().unwrap();
        let token_file = tokens.path().join("token.txt");
        std::fs::write(&token_file, token).unwrap();
        let line = try_line.replace("@token.txt", &format!("@{}", token_file.display()));
        let output = demo.run(&line);
        let text = String::from_utf8_lossy(&output.stdout);
        assert_eq!(output.status.code(), Some(1), "{line}: {output:?}");
        assert!(text.contains("api://billing"), "{text}");
        assert!(text.contains("refused by the gateway"), "{text}");
    }
}

/// The demo writes into `$XDG_RUNTIME_DIR/claimgate-demo` (private, kept for a restart) when
/// the user has a runtime directory.
#[test]
fn the_demo_writes_into_the_users_runtime_directory() {
    let runtime = tempfile::tempdir().unwrap();
    let demo = start_demo(&[("XDG_RUNTIME_DIR", runtime.path())], &system_path());
    let file = demo.deployment_file();
    let dir = runtime.path().join("claimgate-demo");
    assert_eq!(file, dir.join("demo-deployment.json"));
    assert!(file.is_file());
    let mode = std::fs::metadata(&dir).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700, "{mode:o}");
}

/// Without a runtime directory, each demo gets a fresh private directory under the temporary
/// directory: two at once do not share one, and none sits at a fixed name another user could
/// have made first.
#[test]
fn without_a_runtime_directory_each_demo_gets_a_fresh_private_one() {
    let tmp = tempfile::tempdir().unwrap();
    // What another user could have left at the old fixed name.
    std::fs::create_dir(tmp.path().join("claimgate-demo")).unwrap();
    let first = start_demo(&[("TMPDIR", tmp.path())], &system_path());
    let second = start_demo(&[("TMPDIR", tmp.path())], &system_path());
    let (a, b) = (first.deployment_file(), second.deployment_file());
    assert_ne!(a.parent(), b.parent());
    for file in [&a, &b] {
        let dir = file.parent().unwrap();
        assert_eq!(dir.parent(), Some(tmp.path()), "{}", file.display());
        let name = dir.file_name().unwrap().to_string_lossy();
        assert!(name.starts_with("claimgate-demo-"), "{name}");
        let mode = std::fs::metadata(dir).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700, "{mode:o}");
        assert!(file.is_file());
    }
    assert_eq!(
        std::fs::read_dir(tmp.path().join("claimgate-demo"))
            .unwrap()
            .count(),
        0
    );
}
