"""A function behind OCI API Gateway, run locally: it speaks Fn's HTTP-gateway conventions.

The gateway POSTs the client's body and describes the client's request in headers:
Fn-Http-Method, Fn-Http-Request-Url and Fn-Http-H-<Name> for each request header. The function
answers with Fn-Http-Status and Fn-Http-H-<Name> for the client's status and headers.

    python3 trucks_fn.py [PORT]     # listens on 127.0.0.1:8081 (standard library only)
"""

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PREFIX = "fn-http-h-"


class Trucks(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        client_headers = {
            name[len(PREFIX):]: value
            for name, value in self.headers.items()
            if name.lower().startswith(PREFIX)
        }
        vehicle = next((v for k, v in client_headers.items() if k.lower() == "x-vehicle"), "")
        answer = json.dumps({
            "fleet": "trucks",
            "vehicle": vehicle,
            "method": self.headers.get("Fn-Http-Method"),
            "url": self.headers.get("Fn-Http-Request-Url"),
            "body": body.decode("utf-8", "replace"),
        }).encode()
        self.send_response(200)
        self.send_header("Fn-Http-Status", "200")
        self.send_header("Fn-Http-H-Content-Type", "application/json")
        self.send_header("Fn-Http-H-X-Fleet", "trucks")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8081
    ThreadingHTTPServer(("127.0.0.1", port), Trucks).serve_forever()
