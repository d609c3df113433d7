#!/usr/bin/env python3
"""A tiny authorizer function for `claimgate serve --functions`: OCI's contract over plain HTTP.

OCI POSTs {"type": "USER_DEFINED", "data": {...}} (multi-argument policies) or
{"type": "TOKEN", "token": "..."} (single-argument) and expects {"active": true|false, ...}.
This one knows two API keys. It also serves GET /echo, a stand-in backend that answers with
the X-User and X-Scopes headers it received, so the walkthrough can show request.auth reaching
a backend. Standard library only: python3 authorizer.py [PORT] (default 8081).
"""

import json
import sys
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

KEYS = {
    "k-alice": {"user": "alice", "scope": ["orders:read", "orders:write"]},
    "k-bob": {"user": "bob", "scope": ["orders:read"]},
}


def decide(request):
    """OCI's input in, OCI's output out."""
    if request.get("type") == "USER_DEFINED":
        key = request.get("data", {}).get("apiKey")
    else:
        key = request.get("token")
    if isinstance(key, list):  # the header was sent more than once
        key = None
    account = KEYS.get(key)
    if account is None:
        return {"active": False, "wwwAuthenticate": 'API-Key realm="orders"'}
    expires = datetime.now(timezone.utc) + timedelta(minutes=5)
    return {
        "active": True,
        "principal": account["user"],
        "scope": account["scope"],
        "expiresAt": expires.isoformat(timespec="seconds"),
        "context": {"user": account["user"], "plan": "gold"},
    }


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        length = int(self.headers.get("content-length", 0))
        try:
            request = json.loads(self.rfile.read(length))
        except ValueError:
            request = {}
        print("function got:", json.dumps(request), file=sys.stderr, flush=True)
        self.answer(200, decide(request))

    def do_GET(self):  # the stand-in backend
        self.answer(200, {"backend saw": {"X-User": self.headers.get("X-User"),
                                          "X-Plan": self.headers.get("X-Plan")}})

    def answer(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *_):
        pass


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8081
    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
