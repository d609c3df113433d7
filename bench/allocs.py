#!/usr/bin/env python3
"""Heap allocations per request of claimgate's request path, by policy (issue 15's "no
allocation-heavy lookups"): claimgate runs with bench/malloc-count.c preloaded, answers the
stock route over one keep-alive connection, and the allocation count is read (SIGUSR2) around
a known number of requests after a warm-up. Deterministic, unlike CPU time, so it shows what a
policy adds per request on a busy machine too.

    bench/allocs.py [--claimgate target/release/claimgate] [--requests 2000]

Cells: noauth (no requestPolicies), total-local / total-redis (rateLimiting TOTAL),
usage-local / usage-redis (usagePlans, the client token in x-api-key; the same plan and
subscriber files as bench/load.py's usage-* workloads), cache-hit / cache-miss (the route with
responseCacheLookup + responseCacheStore, the redis-server as the cache through `--gateway`:
one key answered from the cache, or a new x-cache-key each request, looked up and stored). Every process it starts is stopped by
its PID.
"""
import argparse
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--claimgate", default=str(REPO / "target/release/claimgate"))
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=500)
    parser.add_argument("--redis-server", default=shutil.which("redis-server") or "")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="claimgate-allocs-"))
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
    cells = ["noauth", "total-local", "total-redis", "usage-local", "usage-redis",
             "cache-hit", "cache-miss"]
    for cell in cells:
        rate_key, redis = load.RL_WORKLOADS[cell]
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
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        STARTED.append(proc)
        wait_listening(port, proc)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        sent = [0]

        def send(n):
            for _ in range(n):
                if cell == "cache-miss":
                    sent[0] += 1
                    headers[load.CACHE_HEADER] = f"k{sent[0]}"
                conn.request("GET", "/bench/stock", headers=headers)
                response = conn.getresponse()
                response.read()
                if response.status != 200:
                    raise SystemExit(f"{cell}: answered {response.status}")
                expected = {"cache-hit": "HIT", "cache-miss": "MISS"}.get(cell)
                # cache-hit's entry was stored by the probe below: every request is a hit.
                if expected and response.getheader("x-cache-status") != expected:
                    raise SystemExit(f"{cell}: X-Cache-Status "
                                     f"{response.getheader('x-cache-status')}, expected {expected}")

        if cell in load.CACHE_WORKLOADS:
            # Connected to the cache (answers stop being BYPASS), and the entry stored.
            deadline = time.time() + 15
            while True:
                conn.request("GET", "/bench/stock", headers={load.CACHE_HEADER: "probe"})
                response = conn.getresponse()
                response.read()
                if response.getheader("x-cache-status") != "BYPASS":
                    break
                if time.time() > deadline:
                    raise SystemExit(f"{cell}: the cache is never used (BYPASS)")
                time.sleep(0.2)
            time.sleep(0.2)
        send(args.warmup)
        time.sleep(0.3)  # the periodic tasks settle; then count
        samples = []
        for n in (0, args.requests):
            send(n)
            time.sleep(0.2)
            os.kill(proc.pid, signal.SIGUSR2)
            time.sleep(0.2)
            samples.append(int(counts.read_text().split()[-1]))
        conn.close()
        results[cell] = (samples[1] - samples[0]) / args.requests
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)
        STARTED.remove(proc)
        print(f"{cell:<12} {results[cell]:7.1f} allocations/request", flush=True)
    base = results["noauth"]
    print()
    print("| cell | allocations per request | vs noauth |")
    print("|---|---:|---:|")
    for cell in cells:
        print(f"| {cell} | {results[cell]:.1f} | {results[cell] - base:+.1f} |")
    return 0


if __name__ == "__main__":
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
