"""A tiny stdlib HTTP app: the ``app.py`` shipped inside the sample packages.

``python3 app.py --port N --version V [--behaviour ok|crash|unhealthy]`` serves
``GET /health`` (JSON ``{"status": "ok", "version": V}``) and ``GET /`` (text)
on 127.0.0.1. The behaviours let tests simulate broken releases.
"""

from __future__ import annotations

import argparse
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def make_handler(version: str, behaviour: str) -> type[BaseHTTPRequestHandler]:
    """Build a request handler class answering for ``version``."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/health":
                healthy = behaviour != "unhealthy"
                body = json.dumps(
                    {"status": "ok" if healthy else "error", "version": version}
                ).encode()
                self._send(200 if healthy else 500, "application/json", body)
            elif self.path == "/":
                self._send(200, "text/plain", f"hello from version {version}\n".encode())
            else:
                self._send(404, "text/plain", b"not found\n")

        def _send(self, status: int, content_type: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            return

    return Handler


def main(argv: list[str] | None = None) -> int:
    """Parse arguments and serve until killed."""
    parser = argparse.ArgumentParser(description="floy sample hello app")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--version", required=True)
    parser.add_argument("--behaviour", default="ok", choices=["ok", "crash", "unhealthy"])
    args = parser.parse_args(argv)
    if args.behaviour == "crash":
        print("hello: crashing at start-up on purpose", file=sys.stderr)
        return 1
    # ThreadingHTTPServer sets allow_reuse_address (SO_REUSEADDR) already.
    handler = make_handler(args.version, args.behaviour)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), handler)
    server.daemon_threads = True
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
