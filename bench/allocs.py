#!/usr/bin/env python3
"""Heap allocations per request of claimgate's request path, by policy (issue 15's "no
allocation-heavy lookups"): claimgate answers the stock route over one keep-alive connection
and its allocations are counted around a known number of requests after a warm-up, minus an
idle window as long. Deterministic, unlike CPU time, so it shows what a policy adds per request
on a busy machine too.

What is counted: Rust's heap (a release build's global allocator is mimalloc since fca264b:
calls of mi_malloc_aligned, mi_zalloc_aligned and mi_realloc_aligned, counted by uprobes with
`perf stat`, which needs root and perf; probes in a group of this process's own, removed at the
end) plus the C heap (malloc, calloc, realloc, memalign of glibc, counted by
bench/malloc-count.c preloaded; C libraries such as aws-lc allocate there). A binary without
mimalloc's symbols is counted by malloc-count.c alone, as before.

--instructions counts instructions instead (the same cells and checks): claimgate runs under
valgrind --tool=callgrind, whose counters are zeroed (callgrind_control -z) before the requests
and dumped (-d) after them; Ir per request, minus an idle window as long. User-space
instructions of the gateway only (no kernel, no Redis), independent of the machine's load: what
each policy adds per request where CPU time on a busy machine is too noisy to tell 1 µs apart.

    bench/allocs.py [--claimgate target/release/claimgate] [--requests 2000]

Cells: proxy (the bare proxy hop: GET /bench/proxy forwarded to one HAProxy thread answering
200, bench/upstream.cfg.tmpl), noauth (no requestPolicies), total-local / total-redis (rateLimiting TOTAL),
usage-local / usage-redis (usagePlans, the client token in x-api-key; the same plan and
subscriber files as bench/load.py's usage-* workloads), cache-hit / cache-miss (the route with
responseCacheLookup + responseCacheStore, the redis-server as the cache through `--gateway`:
one key answered from the cache, or a new x-cache-key each request, looked up and stored).
Issue 20's cells, as bench/load.py's workloads of the same names: validation-off / validation
(POST /bench/stock?page=2 with X-Username and a JSON body, without and with header + query +
body validation), authorizer (CUSTOM_AUTHENTICATION, one token: after the first request each
is an authorizer-cache hit; the function is load.py's FixtureServer), session-bearer / session
(an OAUTH2 deployment judging one access token sent as a bearer token, or inside a session
cookie sealed under --session-key), and jwt-one (load.py's JWT workload "one": STATIC_KEYS, one
token) and jwt-discovery (REMOTE_DISCOVERY at the FixtureServer, one token, no OAUTH2) beside
session-bearer (the same with the OAUTH2 failure policy). Every cell's measured request is checked to answer 200
first; every process it starts is stopped by its PID.
"""
import argparse
import atexit
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.dont_write_bytecode = True
sys.path.insert(0, str(BENCH))
import load  # noqa: E402  (the usage-plan constants and files' shapes)
import mint  # noqa: E402

STARTED = []


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(port, proc, timeout=20.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"exited ({proc.returncode}) before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"nothing listening on {port}")


class RawConnection:
    """One keep-alive HTTP/1.1 connection that writes each request, body included, in one
    send (http.client writes a body separately: a gateway that answers before reading the
    body may then close the connection, and the count would include reconnections)."""

    def __init__(self, port: int):
        self.port = port
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)

    def request(self, method: str, path: str, body=None, headers=None):
        lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{self.port}"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        if body is not None:
            lines.append(f"Content-Length: {len(body)}")
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b""))
        response = http.client.HTTPResponse(self.sock, method=method)
        response.begin()
        return response

    def close(self):
        self.sock.close()


def mimalloc_probes(args) -> list:
    """Uprobes on mimalloc's entry points in the claimgate binary (a group of this process's
    own, removed at exit), or [] when it has none (then only malloc-count.c counts)."""
    nm = subprocess.run(["nm", args.claimgate], capture_output=True, text=True).stdout
    entries = [name for name in ("mi_malloc_aligned", "mi_zalloc_aligned", "mi_realloc_aligned")
               if f" T {name}\n" in nm]
    if not entries:
        print("no mimalloc symbols: counting glibc's allocations only", flush=True)
        return []
    if not args.perf or os.geteuid() != 0:
        raise SystemExit("the binary allocates with mimalloc: counting it needs perf and root "
                         "(uprobes); or run a build without mimalloc")
    group = f"cgallocs{os.getpid()}"
    cmd = [args.perf, "probe", "-q", "-x", args.claimgate]
    for name in entries:
        cmd += ["-a", f"{group}:{name}={name}"]
    subprocess.run(cmd, check=True)
    atexit.register(lambda: subprocess.run([args.perf, "probe", "-q", "-d", f"{group}:*"],
                                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    return [f"{group}:{name}" for name in entries]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--claimgate", default=str(REPO / "target/release/claimgate"))
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=500)
    parser.add_argument("--redis-server", default=shutil.which("redis-server") or "")
    parser.add_argument("--cells", default="", help="comma-separated subset of the cells")
    parser.add_argument("--perf", default=shutil.which("perf") or "")
    parser.add_argument("--instructions", action="store_true",
                        help="count instructions (valgrind --tool=callgrind) instead of "
                             "allocations")
    parser.add_argument("--valgrind", default=shutil.which("valgrind") or "")
    parser.add_argument("--keep-profiles", default="", metavar="DIR",
                        help="with --instructions: copy each cell's measured callgrind dump "
                        "to DIR/CELL.callgrind, for callgrind_annotate")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="claimgate-allocs-"))
    if args.instructions and not (args.valgrind and shutil.which("callgrind_control")):
        raise SystemExit("--instructions needs valgrind and callgrind_control")
    probes = [] if args.instructions else mimalloc_probes(args)
    lib = work / "malloc-count.so"
    subprocess.run(["cc", "-O2", "-shared", "-fPIC", "-o", str(lib),
                    str(BENCH / "malloc-count.c")], check=True)
    redis_port = free_port()
    STARTED.append(subprocess.Popen(
        [args.redis_server, "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(work), "--logfile", ""],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    wait_listening(redis_port, STARTED[-1])

    class Args:  # what load.Bench.usage_files reads
        rate = 10_000_000
        usage_quota = 1_000_000_000
    fake = type("B", (), {"args": Args, "work": work, "redis": (None, redis_port)})()
    results = {}
    cells = ["proxy", "noauth", "total-local", "total-redis", "usage-local", "usage-redis",
             "cache-hit", "cache-miss", "validation-off", "validation", "authorizer",
             "jwt-one", "jwt-discovery", "session-bearer", "session"]
    if args.cells:
        wanted = args.cells.split(",")
        unknown = [c for c in wanted if c not in cells]
        if unknown:
            raise SystemExit(f"--cells: unknown {unknown}; known: {cells}")
        cells = wanted
    upstream = []

    def upstream_port() -> int:
        """The proxy cell's upstream (bench/upstream.cfg.tmpl), started once."""
        if not upstream:
            port = free_port()
            cfg = work / "upstream.cfg"
            cfg.write_text(load.fill(BENCH / "upstream.cfg.tmpl", {"PORT": port}, False))
            STARTED.append(subprocess.Popen([shutil.which("haproxy") or "haproxy", "-f",
                                             str(cfg)], stdout=subprocess.DEVNULL,
                                            stderr=subprocess.DEVNULL))
            wait_listening(port, STARTED[-1])
            upstream.append(port)
        return upstream[0]

    mint.mint(work, 10)  # the bench key (its JWKS for the identity provider) and tokens
    fixtures = load.FixtureServer((work / "jwks.json").read_text())
    session = load.session_material(work, fixtures.issuer)
    for cell in cells:
        rate_key, redis = load.RL_WORKLOADS.get(cell, (None, False))
        spec = {"loggingPolicies": {"executionLog": {"logLevel": "WARN"}},
                "routes": [{"path": "/stock", "methods": ["GET"],
                            "backend": {"type": "STOCK_RESPONSE_BACKEND", "status": 200,
                                        "body": "ok"}}]}
        deployment = {"displayName": "bench", "pathPrefix": "/bench", "specification": spec}
        flags, headers = [], {}
        if rate_key:
            spec["requestPolicies"] = {"rateLimiting": {"rateInRequestsPerSecond": 10_000_000,
                                                        "rateKey": rate_key}}
        if cell in load.USAGE_WORKLOADS:
            deployment = {"id": load.USAGE_DEPLOYMENT_ID, **deployment}
            spec["requestPolicies"] = {"usagePlans": {
                "tokenLocations": [f"request.headers[{load.USAGE_HEADER}]"]}}
            target = load.Target("claimgate", cell, 0)
            flags = load.Bench.usage_files(fake, target)
            headers = {load.USAGE_HEADER: load.USAGE_TOKEN}
        if cell in load.CACHE_WORKLOADS:
            lookup = {"type": "SIMPLE_LOOKUP_POLICY"}
            if cell == "cache-miss":
                lookup["cacheKeyAdditions"] = [f"request.headers[{load.CACHE_HEADER}]"]
            spec["routes"][0]["requestPolicies"] = {"responseCacheLookup": lookup}
            spec["routes"][0]["responsePolicies"] = {"responseCacheStore": {
                "type": "FIXED_TTL_STORE_POLICY", "timeToLiveInSeconds": 300}}
            flags = load.Bench.cache_files(fake, load.Target("claimgate", "cache-hit", 0))
        method, target_path, body = "GET", "/bench/stock", None
        if cell == "proxy":
            # The bare proxy hop: no policy, forwarded to one HAProxy thread answering 200.
            spec["routes"] = [{"path": "/proxy", "methods": ["GET"], "backend": {
                "type": "HTTP_BACKEND", "url": f"http://127.0.0.1:{upstream_port()}/"}}]
            target_path = "/bench/proxy"
        if cell in load.VALIDATION_WORKLOADS:
            spec["routes"][0]["methods"] = ["GET", "POST"]
            if cell == "validation":
                spec["routes"][0]["requestPolicies"] = load.VALIDATIONS
            method, target_path, body = "POST", "/bench/stock" + load.VALIDATION_QUERY, \
                load.VALIDATION_BODY
            headers = dict(h.split(":", 1) for h in load.VALIDATION_HEADERS)
        if cell == "authorizer":
            spec["requestPolicies"] = {"authentication": {
                "type": "CUSTOM_AUTHENTICATION", "functionId": load.AUTHORIZER_FUNCTION,
                "tokenHeader": "Authorization", "isAnonymousAccessAllowed": False}}
            functions = work / "functions.json"
            functions.write_text(json.dumps(
                {load.AUTHORIZER_FUNCTION: f"{fixtures.issuer}/authorize"}))
            flags = ["--functions", str(functions)]
            headers = {"Authorization": f"Bearer {load.AUTHORIZER_TOKEN}"}
        if cell == "jwt-one":
            # bench/load.py's JWT workload "one": STATIC_KEYS, one token (a token-cache hit
            # after the first), for comparison with session-bearer's REMOTE_DISCOVERY.
            template = json.loads(load.fill(BENCH / "claimgate-deployment.json.tmpl", {
                "ISSUER": mint.ISSUER, "AUDIENCE": mint.AUDIENCE, "TENANT": mint.TENANT,
                "SKEW": load.SKEW, "UPSTREAM_PORT": 1,
                "STATIC_KEY": (work / "static-key.json").read_text()}, True))
            spec["requestPolicies"] = template["specification"]["requestPolicies"]
            headers = {"Authorization": f"Bearer {(work / 'token.txt').read_text().strip()}"}
        if cell == "jwt-discovery":
            # session-bearer's deployment without its OAUTH2 failure policy: REMOTE_DISCOVERY
            # alone, one token.
            deployment = load.session_deployment(deployment, fixtures.issuer)
            auth = deployment["specification"]["requestPolicies"]["authentication"]
            del auth["validationFailurePolicy"]
            deployment["specification"]["routes"].pop()  # the OAUTH2 login route
            flags = session["flags"][:2]  # --secrets (the client's secret)
            headers = {"Authorization": f"Bearer {session['token']}"}
        if cell in load.SESSION_WORKLOADS:
            deployment = load.session_deployment(deployment, fixtures.issuer)
            flags = session["flags"]
            headers = {"Cookie": session["cookie"]} if cell == "session" else \
                {"Authorization": f"Bearer {session['token']}"}
        path = work / f"{cell}.json"
        path.write_text(json.dumps(deployment))
        port, admin = free_port(), free_port()
        counts = work / f"{cell}.counts"
        cmd = [args.claimgate, "serve", "--deployment", str(path), "--listen",
               f"127.0.0.1:{port}", "--admin", f"127.0.0.1:{admin}", "--execution-log",
               "/dev/null", "--access-log", "/dev/null", "--shutdown-grace", "1"] + flags
        if redis:
            cmd += ["--redis", f"redis://127.0.0.1:{redis_port}"]
        env = dict(os.environ, LD_PRELOAD=str(lib), MALLOC_COUNT_FILE=str(counts))
        if args.instructions:
            # Under callgrind a Redis round trip takes longer than the default 50 ms bound.
            cmd = [args.valgrind, "--tool=callgrind",
                   f"--callgrind-out-file={work}/{cell}.callgrind.%p"] + cmd
            if redis:
                cmd += ["--redis-timeout-ms", "2000"]
            env = None
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        STARTED.append(proc)
        wait_listening(port, proc, timeout=120 if args.instructions else 20)
        conn = RawConnection(port)
        sent = [0]

        def send(n):
            for _ in range(n):
                if cell == "cache-miss":
                    sent[0] += 1
                    headers[load.CACHE_HEADER] = f"k{sent[0]}"
                response = conn.request(method, target_path, body=body, headers=headers)
                answer = response.read()
                if response.status != 200:
                    raise SystemExit(f"{cell}: answered {response.status} {answer[:200]!r}")
                expected = {"cache-hit": "HIT", "cache-miss": "MISS"}.get(cell)
                # cache-hit's entry was stored by the probe below: every request is a hit.
                if expected and response.getheader("x-cache-status") != expected:
                    raise SystemExit(f"{cell}: X-Cache-Status "
                                     f"{response.getheader('x-cache-status')}, expected {expected}")

        if cell in load.CACHE_WORKLOADS:
            # Connected to the cache (answers stop being BYPASS), and the entry stored.
            deadline = time.time() + 15
            while True:
                response = conn.request("GET", "/bench/stock",
                                        headers={load.CACHE_HEADER: "probe"})
                response.read()
                if response.getheader("x-cache-status") != "BYPASS":
                    break
                if time.time() > deadline:
                    raise SystemExit(f"{cell}: the cache is never used (BYPASS)")
                time.sleep(0.2)
            time.sleep(0.2)
        if cell in ("validation", "authorizer", "session", "jwt-one", "jwt-discovery"):
            # The policy is at work: the request without what it needs is refused.
            bare = {k: v for k, v in headers.items()
                    if k not in ("X-Username", "Authorization", "Cookie")}
            response = conn.request(method, target_path, body=body,
                                    headers=dict(bare, **{"Sec-Fetch-Mode": "cors"}))
            response.read()
            if response.status not in (400, 401):
                raise SystemExit(f"{cell}: without its header answered {response.status}, "
                                 "expected 400/401: the policy is not applied")
        calls_before = fixtures.allowed_calls()
        send(args.warmup)
        time.sleep(0.3)  # the periodic tasks settle; then count

        def libc_count() -> int:
            os.kill(proc.pid, signal.SIGUSR2)
            time.sleep(0.2)
            return int(counts.read_text().split()[-1])

        def window(n: int, idle: float) -> tuple:
            """Allocations while `n` requests are answered (or, with n 0, for `idle` s)."""
            c_before = libc_count()
            perf = None
            if probes:
                perf_out = work / f"{cell}.perf"
                perf = subprocess.Popen([args.perf, "stat", "-x,", "-e", ",".join(probes),
                                         "-p", str(proc.pid), "-o", str(perf_out)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                STARTED.append(perf)
                time.sleep(0.5)  # attached
            started = time.time()
            send(n)
            took = time.time() - started
            time.sleep(max(idle - took, 0) + 0.2)
            rust = 0
            if perf:
                perf.send_signal(signal.SIGINT)
                perf.wait(timeout=10)
                STARTED.remove(perf)
                for line in perf_out.read_text().splitlines():
                    fields = line.split(",")
                    if len(fields) > 2 and fields[2] in probes:
                        rust += int(fields[0]) if fields[0].isdigit() else 0
            return rust, libc_count() - c_before, took

        def callgrind_window(n: int, idle: float) -> tuple:
            """Instructions (Ir) while `n` requests are answered (or for `idle` s)."""
            subprocess.run(["callgrind_control", "-z", str(proc.pid)], check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
            started = time.time()
            send(n)
            took = time.time() - started
            time.sleep(max(idle - took, 0))
            before = set(work.glob(f"{cell}.callgrind.{proc.pid}.*"))
            subprocess.run(["callgrind_control", "-d", str(proc.pid)], check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
            dumps = set(work.glob(f"{cell}.callgrind.{proc.pid}.*")) - before
            totals = [int(line.split()[1]) for dump in dumps
                      for line in dump.read_text().splitlines() if line.startswith("totals:")]
            if len(totals) != 1:
                raise SystemExit(f"{cell}: callgrind dump not found ({dumps})")
            if args.keep_profiles and n:
                keep = Path(args.keep_profiles)
                keep.mkdir(parents=True, exist_ok=True)
                shutil.copy(next(iter(dumps)), keep / f"{cell}.callgrind")
            return totals[0], took

        if args.instructions:
            ir, took = callgrind_window(args.requests, 0)
            idle_ir, _ = callgrind_window(0, took)
            rust, libc, idle_rust, idle_libc = ir, 0, idle_ir, 0
        else:
            rust, libc, took = window(args.requests, 0)
            idle_rust, idle_libc, _ = window(0, took)
        conn.close()
        if cell == "authorizer" and fixtures.allowed_calls() - calls_before > 1:
            raise SystemExit(f"authorizer: the function was called "
                             f"{fixtures.allowed_calls() - calls_before} times: not cache hits")
        rust_per = (rust - idle_rust) / args.requests
        libc_per = (libc - idle_libc) / args.requests
        results[cell] = rust_per + libc_per
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
        STARTED.remove(proc)
        if args.instructions:
            print(f"{cell:<15} {results[cell]:9.0f} instructions/request (idle window: "
                  f"{idle_rust} Ir)", flush=True)
        else:
            print(f"{cell:<15} {results[cell]:7.1f} allocations/request (Rust heap "
                  f"{rust_per:.1f}, C heap {libc_per:.1f}; idle window: {idle_rust} + "
                  f"{idle_libc})", flush=True)
    fixtures.stop()
    # Each cell against the same requests without its policy.
    baseline = {"validation": "validation-off", "session": "session-bearer"}
    print()
    unit, fmt = ("instructions", ",.0f") if args.instructions else ("allocations", ".1f")
    print(f"| cell | {unit} per request | vs | added |")
    print("|---|---:|---|---:|")
    for cell in cells:
        base = baseline.get(cell, "noauth")
        if base in results and base != cell:
            print(f"| {cell} | {results[cell]:{fmt}} | {base} "
                  f"| {results[cell] - results[base]:+{fmt}} |")
        else:
            print(f"| {cell} | {results[cell]:{fmt}} | | |")
    return 0


if __name__ == "__main__":
    # SIGTERM and SIGHUP end it like Ctrl-C: the processes below are stopped and the uprobes
    # removed (atexit).
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda signum, _frame: sys.exit(128 + signum))
    try:
        sys.exit(main())
    finally:
        for p in reversed(STARTED):
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    p.kill()
