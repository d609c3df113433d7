//! Several replicas behind a load balancer, with a shared Redis: real `redis-server`, real
//! `haproxy` and real `claimgate serve` processes on loopback ports, each stopped by its pid
//! when dropped, and a load generator that tells HTTP answers from dropped connections.
//!
//! Redis is spoken to with the small RESP client below rather than `redis-cli`: a read timeout
//! on our own socket bounds every command (a paused server must fail a command in a bounded
//! time, and `redis-cli` has no reply timeout), and it needs no process per command.

use super::{client, skip, start_gateway_on, write_deployments, Gateway};
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Whether `tool` runs (`tool -v` or `--version` exits).
fn have(tool: &str) -> bool {
    Command::new(tool)
        .arg(if tool == "haproxy" { "-v" } else { "--version" })
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Sends `signal` (e.g. "STOP") to `pid` with kill(1): the tests forbid unsafe code.
fn signal(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .args([format!("-{signal}"), pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill -{signal} {pid} failed");
}

/// A loopback port nothing listens on right now (bound to port 0, then released); callers
/// retry when something takes it before they do. Never 6379: the kernel picks from the
/// ephemeral range.
fn released_port() -> u16 {
    super::free_port()
}

// ---------------------------------------------------------------------------------------------
// Redis
// ---------------------------------------------------------------------------------------------

/// A Redis reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Reply {
    /// `+OK`, `+PONG`.
    Status(String),
    /// `-ERR ...`, `-NOAUTH ...`: the whole message.
    Error(String),
    Integer(i64),
    /// A bulk string; `None` is nil.
    Bulk(Option<String>),
    /// An array; `None` is a nil array.
    Array(Option<Vec<Reply>>),
}

impl Reply {
    /// The reply as text: a status, error or bulk string as it is, an integer in decimal, nil
    /// as "", an array's members one per line.
    pub(crate) fn text(&self) -> String {
        match self {
            Reply::Status(s) | Reply::Error(s) => s.clone(),
            Reply::Integer(n) => n.to_string(),
            Reply::Bulk(b) => b.clone().unwrap_or_default(),
            Reply::Array(a) => a
                .iter()
                .flatten()
                .map(Reply::text)
                .collect::<Vec<_>>()
                .join("\n"),
        }
    }
}

fn read_reply(reader: &mut impl std::io::BufRead) -> std::io::Result<Reply> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    let line = line.trim_end_matches("\r\n");
    let (kind, rest) = line.split_at(1.min(line.len()));
    let bad = || std::io::Error::new(std::io::ErrorKind::InvalidData, format!("RESP: {line:?}"));
    let number = || rest.parse::<i64>().map_err(|_| bad());
    Ok(match kind {
        "+" => Reply::Status(rest.to_owned()),
        "-" => Reply::Error(rest.to_owned()),
        ":" => Reply::Integer(number()?),
        "$" => match usize::try_from(number()?) {
            Err(_) => Reply::Bulk(None),
            Ok(len) => {
                let mut bytes = vec![0; len + 2];
                reader.read_exact(&mut bytes)?;
                bytes.truncate(len);
                Reply::Bulk(Some(String::from_utf8_lossy(&bytes).into_owned()))
            }
        },
        "*" => match usize::try_from(number()?) {
            Err(_) => Reply::Array(None),
            Ok(len) => Reply::Array(Some(
                (0..len)
                    .map(|_| read_reply(reader))
                    .collect::<std::io::Result<_>>()?,
            )),
        },
        _ => return Err(bad()),
    })
}

/// Runs one command on the Redis at `addr` over a new connection (after `AUTH password` when
/// given), every read and write bounded by `timeout`. `Err` is a transport failure (refused,
/// timeout, closed) as text; a Redis error reply is `Ok(Reply::Error)`.
pub(crate) fn resp(
    addr: SocketAddr,
    password: Option<&str>,
    args: &[&str],
    timeout: Duration,
) -> Result<Reply, String> {
    let run = || -> std::io::Result<Reply> {
        let stream = TcpStream::connect_timeout(&addr, timeout)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        let mut writer = stream.try_clone()?;
        let mut reader = BufReader::new(stream);
        let mut send = |args: &[&str]| -> std::io::Result<Reply> {
            let mut frame = format!("*{}\r\n", args.len()).into_bytes();
            for arg in args {
                frame.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
                frame.extend_from_slice(arg.as_bytes());
                frame.extend_from_slice(b"\r\n");
            }
            writer.write_all(&frame)?;
            read_reply(&mut reader)
        };
        if let Some(password) = password {
            if let Reply::Error(e) = send(&["AUTH", password])? {
                return Ok(Reply::Error(e));
            }
        }
        send(args)
    };
    run().map_err(|e| format!("{:?}: {e}", e.kind()))
}

/// A `redis-server` of the test's own on a free loopback port, no persistence, its files in a
/// temporary directory; killed (and reaped) when dropped, paused or not.
pub(crate) struct Redis {
    child: Option<Child>,
    port: u16,
    password: Option<String>,
    paused: bool,
    dir: tempfile::TempDir,
}

impl Redis {
    /// Starts a Redis (with `requirepass password` when given) and waits until it answers PING
    /// (at most ~5 s). Without `redis-server` on the machine: calls [`skip`] for `test` and
    /// returns `None` (the test returns).
    pub(crate) fn start(test: &str, password: Option<&str>) -> Option<Redis> {
        if !have("redis-server") {
            skip(
                test,
                "redis-server is not installed (Debian package redis-server)",
            );
            return None;
        }
        let mut redis = Redis {
            child: None,
            port: 0,
            password: password.map(str::to_owned),
            paused: false,
            dir: tempfile::tempdir().unwrap(),
        };
        // Another test may take the released port before redis-server binds it: try another.
        for _ in 0..5 {
            redis.port = released_port();
            if redis.spawn() {
                return Some(redis);
            }
        }
        panic!("redis-server did not start: {}", redis.log());
    }

    /// Starts redis-server on `self.port`; whether it answers PING within ~5 s.
    fn spawn(&mut self) -> bool {
        let mut command = Command::new("redis-server");
        command
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1", "--protected-mode", "yes"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .args(["--dir", self.dir.path().to_str().unwrap()])
            .args(["--logfile", "redis.log"]);
        if let Some(password) = &self.password {
            command.args(["--requirepass", password]);
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server runs");
        self.child = Some(child);
        self.paused = false;
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if matches!(
                self.try_cmd(&["PING"], Duration::from_millis(500)),
                Ok(Reply::Status(s)) if s == "PONG"
            ) {
                return true;
            }
            // Exited (the port was taken): not ours to wait on any longer.
            if self.child.as_mut().unwrap().try_wait().unwrap().is_some() {
                self.child = None;
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill();
        false
    }

    /// The server's log (its `--logfile`), for failure messages.
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("redis.log")).unwrap_or_default()
    }

    /// `redis://:password@127.0.0.1:port` (`redis://127.0.0.1:port` without a password): the
    /// value of `serve --redis`.
    pub(crate) fn url(&self) -> String {
        match &self.password {
            Some(password) => format!("redis://:{password}@127.0.0.1:{}", self.port),
            None => format!("redis://127.0.0.1:{}", self.port),
        }
    }

    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// The server's pid while it runs.
    pub(crate) fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Freezes the server (SIGSTOP): connections still open, nothing answered — a hung Redis.
    pub(crate) fn pause(&mut self) {
        signal(self.pid().expect("redis runs"), "STOP");
        self.paused = true;
    }

    /// Thaws the server after [`Redis::pause`] (SIGCONT).
    pub(crate) fn resume(&mut self) {
        signal(self.pid().expect("redis runs"), "CONT");
        self.paused = false;
    }

    /// Kills the server (SIGKILL) and reaps it: a crashed Redis, connections refused.
    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.paused = false;
    }

    /// Kills the server and starts a new one on the same port (empty: no persistence), waiting
    /// until it answers PING.
    pub(crate) fn restart(&mut self) {
        self.kill();
        // The port is ours, but a connection of the old server may still hold it briefly.
        let deadline = Instant::now() + Duration::from_secs(5);
        while !self.spawn() {
            assert!(
                Instant::now() < deadline,
                "redis-server did not restart on port {}: {}",
                self.port,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Runs one command (authenticated), `timeout` bounding it; `Err` is a transport failure.
    pub(crate) fn try_cmd(&self, args: &[&str], timeout: Duration) -> Result<Reply, String> {
        resp(self.addr(), self.password.as_deref(), args, timeout)
    }

    /// Runs one command (authenticated, 2 s at most) and returns its reply as
    /// [`Reply::text`] (an error reply as its message, e.g. "WRONGTYPE ..."); panics on a
    /// transport failure.
    pub(crate) fn cmd(&self, args: &[&str]) -> String {
        match self.try_cmd(args, Duration::from_secs(2)) {
            Ok(reply) => reply.text(),
            Err(e) => panic!("redis {args:?}: {e}"),
        }
    }

    /// Every key matching `pattern` (SCAN, not KEYS), sorted.
    pub(crate) fn keys(&self, pattern: &str) -> Vec<String> {
        let mut keys = Vec::new();
        let mut cursor = "0".to_owned();
        loop {
            let reply = self
                .try_cmd(
                    &["SCAN", &cursor, "MATCH", pattern, "COUNT", "1000"],
                    Duration::from_secs(2),
                )
                .unwrap_or_else(|e| panic!("redis SCAN: {e}"));
            let Reply::Array(Some(parts)) = reply else {
                panic!("redis SCAN answered {reply:?}")
            };
            let [Reply::Bulk(Some(next)), Reply::Array(Some(found))] = parts.as_slice() else {
                panic!("redis SCAN answered {parts:?}")
            };
            keys.extend(found.iter().map(Reply::text));
            cursor = next.clone();
            if cursor == "0" {
                break;
            }
        }
        keys.sort();
        keys.dedup();
        keys
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        // A stopped process dies of SIGKILL too, but resume first so nothing is left stopped
        // if the kill were to fail.
        if self.paused {
            if let Some(pid) = self.pid() {
                let _ = Command::new("kill")
                    .args(["-CONT", &pid.to_string()])
                    .status();
            }
        }
        self.kill();
    }
}

// ---------------------------------------------------------------------------------------------
// haproxy
// ---------------------------------------------------------------------------------------------

/// An `haproxy` of the test's own (foreground, `-db`) on a free loopback port, balancing
/// round-robin over the given backends; killed and reaped when dropped.
pub(crate) struct Haproxy {
    child: Child,
    addr: SocketAddr,
    servers: usize,
    dir: tempfile::TempDir,
}

/// The configuration: `listen` on `port`, servers `r0`.. at `backends`, health-checked on
/// `admins` (same order) when given.
fn haproxy_cfg(
    port: u16,
    socket: &Path,
    backends: &[SocketAddr],
    admins: &[SocketAddr],
    forwardfor: bool,
) -> String {
    let mut cfg = format!(
        "\
# Written by the tests (support/cluster.rs): one proxy in front of the replicas.
global
    maxconn 512
    # `show stat` over this socket tells which servers are UP.
    stats socket {socket} mode 600 level admin

defaults
    mode http
    # Short enough that a dead or stopped replica shows within a test, long enough for a
    # loaded 2-core machine.
    timeout connect 1s
    timeout client 10s
    timeout server 10s
    timeout http-request 5s
    timeout http-keep-alive 5s
    timeout check 1s
    # A request whose connection failed, or that got no answer, goes to another server
    # (retries 3, redispatch): a replica killed between two health checks costs no request.
    # HAProxy retries only what it may replay (idempotent methods, or bodies it buffered).
    retries 3
    option redispatch
    retry-on conn-failure empty-response response-timeout
    # Idle server connections are shared only where it is safe (not a request's first).
    http-reuse safe

listen replicas
    bind 127.0.0.1:{port}
    balance roundrobin
",
        socket = socket.display(),
    );
    if forwardfor {
        cfg.push_str("    # The client's address to the replicas (for --trusted-proxy).\n");
        cfg.push_str("    option forwardfor\n");
    }
    if !admins.is_empty() {
        cfg.push_str(
            "    # Each replica's readiness on its admin port: 503 while draining takes it out.\n",
        );
        cfg.push_str("    option httpchk GET /readyz\n");
        cfg.push_str("    http-check expect status 200\n");
    }
    for (i, backend) in backends.iter().enumerate() {
        cfg.push_str(&format!("    server r{i} {backend}"));
        if let Some(admin) = admins.get(i) {
            // Down after one failed check, up again after two good ones, checked every 500 ms.
            cfg.push_str(&format!(
                " check port {} inter 500ms fall 1 rise 2",
                admin.port()
            ));
        }
        cfg.push('\n');
    }
    cfg
}

impl Haproxy {
    /// Starts haproxy in front of `backends` (servers `r0`, `r1`.. in that order), with health
    /// checks `GET /readyz` on `admins[i]` (same order; empty: no checks), and
    /// `option forwardfor` when `forwardfor`; returns once it listens and every server is UP
    /// (at most ~10 s). Without `haproxy` on the machine: calls [`skip`] for `test` and returns
    /// `None`.
    pub(crate) fn start(
        test: &str,
        backends: &[SocketAddr],
        admins: &[SocketAddr],
        forwardfor: bool,
    ) -> Option<Haproxy> {
        if !have("haproxy") {
            skip(test, "haproxy is not installed (Debian package haproxy)");
            return None;
        }
        assert!(admins.is_empty() || admins.len() == backends.len());
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("stats.sock");
        let cfg_path = dir.path().join("haproxy.cfg");
        let mut last_error = String::new();
        // Another test may take the released port before haproxy binds it: try another.
        for _ in 0..5 {
            let port = released_port();
            std::fs::write(
                &cfg_path,
                haproxy_cfg(port, &socket, backends, admins, forwardfor),
            )
            .unwrap();
            let _ = std::fs::remove_file(&socket);
            let log = dir.path().join("haproxy.log");
            let output = std::fs::File::create(&log).unwrap();
            let mut child = Command::new("haproxy")
                .arg("-f")
                .arg(&cfg_path)
                .arg("-db")
                .stdin(Stdio::null())
                .stdout(output.try_clone().unwrap())
                .stderr(output)
                .spawn()
                .expect("haproxy runs");
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            let deadline = Instant::now() + Duration::from_secs(5);
            let mut exited = false;
            while TcpStream::connect(addr).is_err() || !socket.exists() {
                if child.try_wait().unwrap().is_some() || Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    exited = true;
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            if exited {
                last_error = std::fs::read_to_string(&log).unwrap_or_default();
                continue;
            }
            let haproxy = Haproxy {
                child,
                addr,
                servers: backends.len(),
                dir,
            };
            let all: Vec<usize> = (0..backends.len()).collect();
            assert!(
                haproxy.wait_until_up(&all, Duration::from_secs(10)),
                "haproxy: not every server came UP: {:?}\n{}",
                haproxy.statuses(),
                haproxy.log()
            );
            return Some(haproxy);
        }
        panic!("haproxy did not start:\n{last_error}");
    }

    /// Where clients connect.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:port`.
    pub(crate) fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The generated configuration, for failure messages.
    pub(crate) fn cfg(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("haproxy.cfg")).unwrap_or_default()
    }

    /// haproxy's own output (warnings, alerts), for failure messages.
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("haproxy.log")).unwrap_or_default()
    }

    /// Each server's status in `show stat`, by index: "UP", "DOWN", "UP 1/2" (going down),
    /// "DOWN 1/2" (coming up), "no check" (no health checks), "MAINT".
    pub(crate) fn statuses(&self) -> Vec<String> {
        let mut statuses = vec![String::new(); self.servers];
        let Ok(mut stream) =
            std::os::unix::net::UnixStream::connect(self.dir.path().join("stats.sock"))
        else {
            return statuses;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
        let _ = stream.write_all(b"show stat\n");
        let mut csv = String::new();
        let _ = stream.read_to_string(&mut csv);
        let mut lines = csv.lines();
        let Some(header) = lines.next().and_then(|h| h.strip_prefix("# ")) else {
            return statuses;
        };
        let column = |name: &str| header.split(',').position(|c| c == name);
        let (Some(sv), Some(status)) = (column("svname"), column("status")) else {
            return statuses;
        };
        for line in lines {
            let fields: Vec<&str> = line.split(',').collect();
            let Some(i) = fields
                .get(sv)
                .and_then(|name| name.strip_prefix('r'))
                .and_then(|n| n.parse::<usize>().ok())
            else {
                continue;
            };
            if let (Some(slot), Some(value)) = (statuses.get_mut(i), fields.get(status)) {
                *slot = (*value).to_owned();
            }
        }
        statuses
    }

    /// The indexes of the servers taking requests: status "UP" (not "UP 1/2", which is
    /// going down) or "no check".
    pub(crate) fn servers_up(&self) -> Vec<usize> {
        self.statuses()
            .iter()
            .enumerate()
            .filter(|(_, s)| *s == "UP" || *s == "no check")
            .map(|(i, _)| i)
            .collect()
    }

    /// Waits until exactly the servers `up` are up (see [`Haproxy::servers_up`]); whether
    /// they were within `within`.
    pub(crate) fn wait_until_up(&self, up: &[usize], within: Duration) -> bool {
        let deadline = Instant::now() + within;
        loop {
            if self.servers_up() == up {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------------
// Replicas
// ---------------------------------------------------------------------------------------------

/// N `claimgate serve` replicas of the same deployment files, each on its own listen and
/// admin ports with its own logs (the support's [`Gateway`]); each killed when dropped.
pub(crate) struct Replicas {
    /// Each replica; `None` once [`Replicas::kill`]ed or reaped after [`Replicas::term`].
    pub(crate) gateways: Vec<Option<Gateway>>,
    /// The deployment files every replica serves.
    pub(crate) files: Vec<PathBuf>,
    listen: Vec<SocketAddr>,
    admin: Vec<SocketAddr>,
    /// Holds `files`.
    pub(crate) dir: tempfile::TempDir,
}

impl Replicas {
    /// Starts `n` replicas serving `deployments` (written once as `deployment-{i}.json`, the
    /// same files for all), each with `--admin` and the `extra` flags (e.g. `--redis URL`);
    /// returns once every one accepts connections on both ports.
    pub(crate) fn start(n: usize, deployments: &[Value], extra: &[&str]) -> Replicas {
        let extra: Vec<String> = extra.iter().map(|&a| a.to_owned()).collect();
        Replicas::start_each(n, deployments, |_| extra.clone())
    }

    /// [`Replicas::start`] with each replica's own extra flags: `extra(i)` for replica `i`
    /// (e.g. a different `--drain-delay`, or `--redis` for some only).
    pub(crate) fn start_each(
        n: usize,
        deployments: &[Value],
        extra: impl Fn(usize) -> Vec<String>,
    ) -> Replicas {
        let dir = tempfile::tempdir().unwrap();
        let files = write_deployments(dir.path(), deployments);
        let gateways: Vec<Option<Gateway>> = (0..n)
            .map(|i| {
                let extra = extra(i);
                let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
                Some(start_gateway_on(
                    tempfile::tempdir().unwrap(),
                    &files,
                    true,
                    &extra,
                ))
            })
            .collect();
        let listen = gateways
            .iter()
            .flatten()
            .map(|g| address_of(&g.base))
            .collect();
        let admin = gateways
            .iter()
            .flatten()
            .map(|g| address_of(g.admin.as_deref().unwrap()))
            .collect();
        let replicas = Replicas {
            gateways,
            files,
            listen,
            admin,
            dir,
        };
        for i in 0..n {
            replicas.wait_serving(i);
        }
        replicas
    }

    /// Waits (at most ~5 s) until replica `i` answers `/livez` and has said it listens: its
    /// SIGTERM handler is set up right then, so a [`Replicas::term`] sent earlier would kill
    /// it instead of draining it.
    fn wait_serving(&self, i: usize) {
        let admin = self.admin[i];
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let live = client()
                .get(format!("http://{admin}/livez"))
                .send()
                .is_ok_and(|r| r.status().as_u16() == 200);
            if live && self.stderr(i).contains("listening on") {
                break;
            }
            if Instant::now() > deadline {
                // Not fatal: the wording may change; /livez is what matters.
                assert!(
                    live,
                    "replica {i} does not answer /livez: {}",
                    self.stderr(i)
                );
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // The handler is installed by a task spawned just after that line.
        std::thread::sleep(Duration::from_millis(50));
    }

    pub(crate) fn len(&self) -> usize {
        self.gateways.len()
    }

    /// Replica `i` (panics if it was killed).
    pub(crate) fn gateway(&self, i: usize) -> &Gateway {
        self.gateways[i].as_ref().expect("the replica runs")
    }

    /// Each replica's listen address, in order (killed ones included).
    pub(crate) fn addrs(&self) -> Vec<SocketAddr> {
        self.listen.clone()
    }

    /// Each replica's admin address, in order (killed ones included).
    pub(crate) fn admin_addrs(&self) -> Vec<SocketAddr> {
        self.admin.clone()
    }

    /// Kills replica `i` (SIGKILL) and reaps it: a crash.
    pub(crate) fn kill(&mut self, i: usize) {
        // Dropping a Gateway kills and reaps it.
        self.gateways[i] = None;
    }

    /// Sends SIGTERM to replica `i` (a graceful stop: draining); see [`Replicas::wait_exit`].
    /// [`Replicas::start`] waited until each replica handles it.
    pub(crate) fn term(&self, i: usize) {
        signal(self.gateway(i).child.id(), "TERM");
    }

    /// Waits up to `within` for replica `i` to exit; its status if it did.
    pub(crate) fn wait_exit(&mut self, i: usize, within: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + within;
        let child = &mut self.gateways[i].as_mut().expect("the replica runs").child;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Replica `i`'s execution-log records of the request `request_id`, waiting up to 5 s for
    /// `at_least` of them (the support's [`super::records`]).
    pub(crate) fn records(&self, i: usize, request_id: &str, at_least: usize) -> Vec<Value> {
        super::records(&self.gateway(i).execution_log, request_id, at_least)
    }

    /// Every record of replica `i`'s execution log so far (events without a request, such as
    /// shared-state ones, included); no waiting: the writer batches.
    pub(crate) fn log_records(&self, i: usize) -> Vec<Value> {
        read_records(&self.gateway(i).execution_log)
    }

    /// Every record of replica `i`'s access log so far.
    pub(crate) fn access_records(&self, i: usize) -> Vec<Value> {
        read_records(&self.gateway(i).access_log)
    }

    /// Replica `i`'s standard error so far (why it would not start, or died).
    pub(crate) fn stderr(&self, i: usize) -> String {
        std::fs::read_to_string(self.gateway(i).dir.path().join("stderr.log")).unwrap_or_default()
    }

    /// Replica `i`'s `GET /metrics` (admin port) text.
    pub(crate) fn metrics(&self, i: usize) -> String {
        let admin = self
            .gateway(i)
            .admin
            .as_deref()
            .expect("started with --admin");
        let response = client().get(format!("{admin}/metrics")).send().unwrap();
        assert_eq!(response.status().as_u16(), 200);
        response.text().unwrap()
    }

    /// The requests replica `i` has answered, by its metrics (the sum of
    /// `http_server_request_duration_seconds_count`).
    pub(crate) fn requests_served(&self, i: usize) -> u64 {
        metric_sum(
            &self.metrics(i),
            "http_server_request_duration_seconds_count",
        )
    }
}

/// The sum of every series of `name` in a Prometheus/OpenMetrics text.
pub(crate) fn metric_sum(text: &str, name: &str) -> u64 {
    text.lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

fn address_of(base: &str) -> SocketAddr {
    base.trim_start_matches("http://").parse().unwrap()
}

fn read_records(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Load
// ---------------------------------------------------------------------------------------------

/// What [`load`] sends: `GET path` by default.
#[derive(Debug, Clone)]
pub(crate) struct LoadPlan {
    /// Keep-alive connections, each its own thread (M).
    pub(crate) connections: usize,
    /// Requests at most, over all connections (K).
    pub(crate) requests: usize,
    /// Requests per second over all connections, paced evenly; 0: as fast as answered.
    pub(crate) rate: f64,
    /// Sending stops after this long even if `requests` were not all sent.
    pub(crate) duration: Duration,
    /// A request with no complete answer within this long is a transport error (timeout).
    pub(crate) timeout: Duration,
    pub(crate) method: String,
    /// The request target, e.g. "/v1/stock".
    pub(crate) path: String,
    /// Extra request headers (Host and Content-Length are added).
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

impl LoadPlan {
    /// `requests` of `GET path` over `connections` connections, as fast as answered, for at
    /// most 10 s, 5 s per answer.
    pub(crate) fn new(path: &str, connections: usize, requests: usize) -> LoadPlan {
        LoadPlan {
            connections,
            requests,
            rate: 0.0,
            duration: Duration::from_secs(10),
            timeout: Duration::from_secs(5),
            method: "GET".into(),
            path: path.into(),
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// The same at `rate` requests per second in all.
    pub(crate) fn rate(mut self, rate: f64) -> LoadPlan {
        self.rate = rate;
        self
    }

    /// The same, stopping after `duration`.
    pub(crate) fn duration(mut self, duration: Duration) -> LoadPlan {
        self.duration = duration;
        self
    }

    /// The same with one more request header.
    pub(crate) fn header(mut self, name: &str, value: &str) -> LoadPlan {
        self.headers.push((name.into(), value.into()));
        self
    }
}

/// How a request failed below HTTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum TransportError {
    /// The connection could not be made (refused, or connect timed out).
    Connect,
    /// The connection was reset (ECONNRESET, EPIPE).
    Reset,
    /// The connection closed before a complete answer: a dropped request.
    Eof,
    /// No complete answer within the plan's timeout.
    Timeout,
    /// Anything else, including an answer that is not HTTP/1.1.
    Other,
}

/// What [`load`] saw.
#[derive(Debug, Default)]
pub(crate) struct LoadReport {
    /// Answers by status code.
    pub(crate) statuses: BTreeMap<u16, usize>,
    /// The time to each complete answer, sorted.
    pub(crate) latencies: Vec<Duration>,
    /// Requests that got no answer, by cause, with the detail of each (in order seen).
    pub(crate) errors: Vec<(TransportError, String)>,
    /// The time the whole load took.
    pub(crate) elapsed: Duration,
    /// Connections opened (one per connection thread, plus one after each close or failure).
    pub(crate) connects: usize,
}

impl LoadReport {
    /// Requests sent (answered or not).
    pub(crate) fn sent(&self) -> usize {
        self.answered() + self.errors.len()
    }

    /// Requests answered with a status.
    pub(crate) fn answered(&self) -> usize {
        self.statuses.values().sum()
    }

    /// Answers with `status`.
    pub(crate) fn count(&self, status: u16) -> usize {
        self.statuses.get(&status).copied().unwrap_or(0)
    }

    /// Answers with a 5xx status.
    pub(crate) fn server_errors(&self) -> usize {
        self.statuses.range(500..600).map(|(_, n)| n).sum()
    }

    /// Requests without an answer, of the kind `kind`.
    pub(crate) fn errors_of(&self, kind: TransportError) -> usize {
        self.errors.iter().filter(|(k, _)| *k == kind).count()
    }

    /// The `p`-th percentile (0..=100) of the answers' latencies; zero without answers.
    pub(crate) fn percentile(&self, p: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let rank = ((p / 100.0) * self.latencies.len() as f64).ceil() as usize;
        self.latencies[rank.clamp(1, self.latencies.len()) - 1]
    }

    /// Panics (with the report) unless every request got an answer, none 5xx, and the 99th
    /// percentile is under `p99`.
    pub(crate) fn assert_clean(&self, p99: Duration) {
        assert!(
            self.errors.is_empty() && self.server_errors() == 0 && self.percentile(99.0) < p99,
            "load not clean (p99 {:?}, limit {p99:?}): {}",
            self.percentile(99.0),
            self.summary()
        );
    }

    /// One line: statuses, transport errors by kind (first detail), p50/p99.
    pub(crate) fn summary(&self) -> String {
        let mut kinds: BTreeMap<TransportError, (usize, &str)> = BTreeMap::new();
        for (kind, detail) in &self.errors {
            kinds.entry(*kind).or_insert((0, detail)).0 += 1;
        }
        format!(
            "statuses {:?}, transport errors {:?}, p50 {:?}, p99 {:?}, in {:?}",
            self.statuses,
            kinds,
            self.percentile(50.0),
            self.percentile(99.0),
            self.elapsed
        )
    }
}

/// One request's outcome on a connection: its status and whether the connection stays open.
type Outcome = Result<(u16, bool), (TransportError, String)>;

fn classify(error: &std::io::Error) -> TransportError {
    use std::io::ErrorKind::*;
    match error.kind() {
        ConnectionReset | BrokenPipe | ConnectionAborted => TransportError::Reset,
        UnexpectedEof => TransportError::Eof,
        WouldBlock | TimedOut => TransportError::Timeout,
        _ => TransportError::Other,
    }
}

/// Sends one request on `stream` and reads its answer (Content-Length or chunked body).
fn exchange(reader: &mut BufReader<TcpStream>, request: &[u8], method: &str) -> Outcome {
    let io = |e: std::io::Error| (classify(&e), e.to_string());
    reader.get_mut().write_all(request).map_err(io)?;
    let mut line = String::new();
    if reader.read_line(&mut line).map_err(io)? == 0 {
        return Err((TransportError::Eof, "closed before any answer".into()));
    }
    let status = line
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse::<u16>().ok())
        .ok_or((TransportError::Other, format!("not HTTP/1.1: {line:?}")))?;
    let (mut length, mut chunked, mut keep) = (None::<usize>, false, true);
    loop {
        line.clear();
        if reader.read_line(&mut line).map_err(io)? == 0 {
            return Err((TransportError::Eof, "closed in the headers".into()));
        }
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        let Some((name, value)) = header.split_once(':') else {
            continue;
        };
        let (name, value) = (name.to_ascii_lowercase(), value.trim().to_ascii_lowercase());
        match name.as_str() {
            "content-length" => length = value.parse().ok(),
            "transfer-encoding" => chunked = value.contains("chunked"),
            "connection" => keep = !value.contains("close"),
            _ => {}
        }
    }
    let eof = |e: std::io::Error| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            (TransportError::Eof, "closed in the body".into())
        } else {
            io(e)
        }
    };
    let no_body =
        method == "HEAD" || status == 204 || status == 304 || (100..200).contains(&status);
    if no_body {
    } else if chunked {
        loop {
            line.clear();
            if reader.read_line(&mut line).map_err(io)? == 0 {
                return Err((TransportError::Eof, "closed in the body".into()));
            }
            let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)
                .map_err(|_| (TransportError::Other, format!("bad chunk size {line:?}")))?;
            if size == 0 {
                // Trailers, up to the empty line.
                loop {
                    line.clear();
                    if reader.read_line(&mut line).map_err(io)? == 0 || line.trim().is_empty() {
                        break;
                    }
                }
                break;
            }
            let mut chunk = vec![0; size + 2];
            reader.read_exact(&mut chunk).map_err(eof)?;
        }
    } else if let Some(length) = length {
        let mut body = vec![0; length];
        reader.read_exact(&mut body).map_err(eof)?;
    } else {
        // Delimited by the close.
        let mut body = Vec::new();
        reader.read_to_end(&mut body).map_err(io)?;
        keep = false;
    }
    Ok((status, keep))
}

/// Sends `plan.requests` requests to `target` over `plan.connections` keep-alive connections
/// (one thread each, raw HTTP/1.1 so that a dropped connection is seen as such, never retried),
/// paced at `plan.rate`, for at most `plan.duration`. A connection that fails, or that the
/// server closes (`Connection: close`), is opened again for the next request.
pub(crate) fn load(target: SocketAddr, plan: &LoadPlan) -> LoadReport {
    let mut head = format!(
        "{} {} HTTP/1.1\r\nhost: {target}\r\n",
        plan.method, plan.path
    );
    for (name, value) in &plan.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if !plan.body.is_empty() || !matches!(plan.method.as_str(), "GET" | "HEAD") {
        head.push_str(&format!("content-length: {}\r\n", plan.body.len()));
    }
    head.push_str("\r\n");
    let mut request = head.into_bytes();
    request.extend_from_slice(&plan.body);
    let request = Arc::new(request);
    let tickets = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let threads: Vec<_> = (0..plan.connections.max(1))
        .map(|_| {
            let (request, tickets, plan) = (request.clone(), tickets.clone(), plan.clone());
            std::thread::spawn(move || {
                let mut seen: Vec<(Outcome, Duration)> = Vec::new();
                let mut connects = 0;
                let mut connection: Option<BufReader<TcpStream>> = None;
                loop {
                    let ticket = tickets.fetch_add(1, Ordering::SeqCst);
                    if ticket >= plan.requests || started.elapsed() >= plan.duration {
                        break;
                    }
                    if plan.rate > 0.0 {
                        let due = started + Duration::from_secs_f64(ticket as f64 / plan.rate);
                        if let Some(wait) = due.checked_duration_since(Instant::now()) {
                            std::thread::sleep(wait);
                        }
                    }
                    let sent = Instant::now();
                    if connection.is_none() {
                        match TcpStream::connect_timeout(&target, plan.timeout) {
                            Ok(stream) => {
                                connects += 1;
                                let _ = stream.set_read_timeout(Some(plan.timeout));
                                let _ = stream.set_write_timeout(Some(plan.timeout));
                                let _ = stream.set_nodelay(true);
                                connection = Some(BufReader::new(stream));
                            }
                            Err(e) => {
                                seen.push((
                                    Err((TransportError::Connect, e.to_string())),
                                    sent.elapsed(),
                                ));
                                continue;
                            }
                        }
                    }
                    let outcome = exchange(connection.as_mut().unwrap(), &request, &plan.method);
                    if !matches!(outcome, Ok((_, true))) {
                        connection = None;
                    }
                    seen.push((outcome, sent.elapsed()));
                }
                (seen, connects)
            })
        })
        .collect();
    let mut report = LoadReport::default();
    for thread in threads {
        let (seen, connects) = thread.join().expect("a load thread panicked");
        report.connects += connects;
        for (outcome, took) in seen {
            match outcome {
                Ok((status, _)) => {
                    *report.statuses.entry(status).or_default() += 1;
                    report.latencies.push(took);
                }
                Err(error) => report.errors.push(error),
            }
        }
    }
    report.latencies.sort();
    report.elapsed = started.elapsed();
    report
}
