#!/usr/bin/env python3
"""Soak test for `claimgate serve` (issue "Production operation").

Drives mixed valid/invalid traffic at the gateway for --seconds (default 600) on 127.0.0.1,
while rewriting the deployment file every 10 s (each rewrite is a reload) and restarting the
JWKS server every 60 s (down for 3 s). Reports requests, unexpected answers, 5xx, dropped
connections and the gateway's RSS over time, as Markdown on stdout.

Everything it starts (the gateway; the upstream and JWKS servers are threads) is stopped at the
end, by process id. Requires Python `cryptography` (tests/interop/requirements.txt).
"""
import argparse
import base64
import http.client
import http.server
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
NUMBERS = KEY.public_key().public_numbers()
JWKS = json.dumps({"keys": [{"kty": "RSA", "kid": "soak", "use": "sig", "alg": "RS256",
                             "n": b64(NUMBERS.n.to_bytes(256, "big")), "e": b64(NUMBERS.e.to_bytes(3, "big"))}]}).encode()


def token(aud="api://soak", lifetime=7200):
    header = b64(json.dumps({"alg": "RS256", "kid": "soak"}).encode())
    now = int(time.time())
    payload = b64(json.dumps({"iss": "https://idp.soak/", "aud": aud, "sub": "soak", "exp": now + lifetime}).encode())
    signature = KEY.sign(f"{header}.{payload}".encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{header}.{payload}.{b64(signature)}"


class Quiet(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def answer(self, status, body, content_type="application/json"):
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class Upstream(Quiet):
    def do_GET(self):
        self.answer(200, b'{"upstream":true}')


class JwksHandler(Quiet):
    def do_GET(self):
        self.answer(200, JWKS)


def serve(handler, port):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def deployment(jwks_port, upstream_port, version):
    return json.dumps({"displayName": "soak", "pathPrefix": "/v1", "specification": {
        "requestPolicies": {"authentication": {
            "type": "JWT_AUTHENTICATION", "tokenHeader": "Authorization", "tokenAuthScheme": "Bearer",
            "issuers": ["https://idp.soak/"], "audiences": ["api://soak"],
            "publicKeys": {"type": "REMOTE_JWKS", "uri": f"http://127.0.0.1:{jwks_port}/jwks", "maxCacheDurationInHours": 1}}},
        "routes": [
            {"path": "/orders", "methods": ["GET"], "backend": {"type": "HTTP_BACKEND", "url": f"http://127.0.0.1:{upstream_port}/"}},
            {"path": "/stock", "methods": ["GET"], "backend": {"type": "STOCK_RESPONSE_BACKEND", "status": 200, "body": version}},
        ]}})


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=600)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--binary", default=None)
    args = parser.parse_args()
    binary = args.binary or next(p for p in (os.path.join(ROOT, "target/release/claimgate"), os.path.join(ROOT, "target/debug/claimgate")) if os.path.exists(p))

    work = tempfile.mkdtemp(prefix="claimgate-soak-")
    upstream_port, jwks_port, gateway_port = free_port(), free_port(), free_port()
    upstream = serve(Upstream, upstream_port)
    jwks = serve(JwksHandler, jwks_port)
    deployment_file = os.path.join(work, "soak.json")
    with open(deployment_file, "w") as f:
        f.write(deployment(jwks_port, upstream_port, "v0"))
    exec_log = os.path.join(work, "execution.log")
    gateway = subprocess.Popen([binary, "serve", "--deployment", deployment_file, "--listen", f"127.0.0.1:{gateway_port}",
                                "--execution-log", exec_log, "--access-log", "/dev/null", "--jwks-cooldown", "1"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", gateway_port), timeout=1).close()
                break
            except OSError:
                if time.time() > deadline:
                    raise SystemExit("the gateway did not start")
                time.sleep(0.1)

        good, wrong = token(), token(aud="api://other")
        stop = threading.Event()
        lock = threading.Lock()
        counts = {"requests": 0, "unexpected": 0, "5xx": 0, "dropped": 0}
        unexpected = {}

        def worker(seed):
            rng = random.Random(seed)
            connection = http.client.HTTPConnection("127.0.0.1", gateway_port, timeout=10)
            while not stop.is_set():
                roll = rng.random()
                path = "/v1/orders" if rng.random() < 0.5 else "/v1/stock"
                if roll < 0.7:
                    headers, expect = {"Authorization": f"Bearer {good}"}, 200
                elif roll < 0.9:
                    headers, expect = {"Authorization": f"Bearer {wrong}"}, 401
                else:
                    headers, expect = {"Authorization": "Bearer garbage.garbage.garbage"}, 401
                try:
                    connection.request("GET", path, headers=headers)
                    response = connection.getresponse()
                    response.read()
                    status = response.status
                except (OSError, http.client.HTTPException):
                    with lock:
                        counts["requests"] += 1
                        counts["dropped"] += 1
                    connection.close()
                    connection = http.client.HTTPConnection("127.0.0.1", gateway_port, timeout=10)
                    continue
                with lock:
                    counts["requests"] += 1
                    if status >= 500:
                        counts["5xx"] += 1
                    if status != expect:
                        counts["unexpected"] += 1
                        unexpected[(path, expect, status)] = unexpected.get((path, expect, status), 0) + 1
            connection.close()

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(args.workers)]
        for t in threads:
            t.start()
        started = time.time()
        samples, reloads, restarts = [], 0, 0
        next_reload, next_restart, next_sample = started + 10, started + 60, started
        while time.time() - started < args.seconds:
            now = time.time()
            if now >= next_sample:
                samples.append((int(now - started), rss_kib(gateway.pid), counts["requests"]))
                next_sample += 30
            if now >= next_reload:
                reloads += 1
                staged = deployment_file + ".tmp"
                with open(staged, "w") as f:
                    f.write(deployment(jwks_port, upstream_port, f"v{reloads}"))
                os.replace(staged, deployment_file)
                next_reload += 10
            if now >= next_restart:
                restarts += 1
                jwks.shutdown()
                jwks.server_close()
                time.sleep(3)
                jwks = serve(JwksHandler, jwks_port)
                next_restart += 60
            time.sleep(0.2)
        stop.set()
        for t in threads:
            t.join()
        samples.append((int(time.time() - started), rss_kib(gateway.pid), counts["requests"]))
        with open(exec_log) as f:
            codes = [json.loads(l)["data"]["code"] for l in f if l.strip()]
        applied = codes.count("configuration.reloaded")
        rejected = codes.count("configuration.reloadRejected")
    finally:
        gateway.send_signal(signal.SIGTERM)
        try:
            gateway.wait(timeout=40)
        except subprocess.TimeoutExpired:
            gateway.kill()
        upstream.shutdown()
        jwks.shutdown()

    elapsed = samples[-1][0] or 1
    print(f"### Soak: {args.seconds} s, {args.workers} connections, {os.path.basename(binary)} ({'release' if 'release' in binary else 'debug'})\n")
    print(f"- requests: {counts['requests']} ({counts['requests'] // elapsed}/s); 70% valid, 20% wrong audience, 10% garbage")
    print(f"- unexpected answers: {counts['unexpected']}; 5xx: {counts['5xx']}; dropped connections: {counts['dropped']}")
    for (path, expect, status), n in sorted(unexpected.items()):
        print(f"  - {path}: expected {expect}, got {status}: {n}")
    print(f"- deployment rewritten {reloads} times: {applied} reloads applied, {rejected} rejected; JWKS server restarted {restarts} times")
    print(f"- gateway exit after SIGTERM: {gateway.returncode}\n")
    print("| t (s) | RSS (MiB) | requests so far |\n|---:|---:|---:|")
    for t, rss, n in samples:
        print(f"| {t} | {rss / 1024:.1f} | {n} |")
    return 0 if counts["unexpected"] == 0 and counts["dropped"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
