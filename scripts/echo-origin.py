#!/usr/bin/env python3
"""A stand-in origin for trying flashgate by hand: answers every POST with 200 and a JSON order,
and prints the X-Flashgate-* headers the edge signed. Not for production: the real order backend
is flashgate-orders.

    python3 scripts/echo-origin.py [PORT]      # default 8081
"""
import http.server
import json
import sys
import threading

PRINT_LOCK = threading.Lock()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        signed = {k: v for k, v in self.headers.items() if k.lower().startswith("x-flashgate-")}
        with PRINT_LOCK:
            print(json.dumps({"path": self.path, **signed}), flush=True)
        body = json.dumps({"outcome": "won", "order": signed.get("X-Flashgate-Reservation") or signed.get("x-flashgate-reservation")}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8081
    http.server.ThreadingHTTPServer.request_queue_size = 1024
    http.server.ThreadingHTTPServer.daemon_threads = True
    http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
