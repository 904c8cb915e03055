"""An HTTPS package server on loopback for floy's demo and tests.

It serves release packages from one directory over TLS with a real chain
(root CA -> intermediate CA -> leaf; the server presents leaf+intermediate,
clients trust only the root) and can misbehave on request:

- ``/pkgs/<file>``: the file, or 404 (no listing, no traversal);
- ``/flaky/<key>/<n>/pkgs/<file>``: 503 for the first ``n`` requests of ``key``;
- ``/slow/<seconds>/pkgs/<file>``: waits ``seconds`` before answering;
- ``/drop/pkgs/<file>``: headers and half the body, then a connection reset;
- ``/truncate/pkgs/<file>``: full Content-Length, half the bytes, clean close;
- ``/drip/<seconds>/pkgs/<file>``: status line, headers and body one byte at a time,
  ``seconds`` apart (a slow-loris server; stops when the client goes or after 10 minutes);
- ``/redirect?to=<url>[&code=<3xx>]``: a redirect (302 by default) to ``url``;
- ``/git/<path>``: a file under the directory's ``git/`` (bare repositories made ready for
  git's "dumb" HTTP protocol with ``git update-server-info``), for the git package source;
- ``/auth/pkgs/<file>``: only with the header ``Authorization: Bearer <token>`` (401
  without it), once a token is set with ``start(..., token=...)`` or
  :meth:`PackageServer.require_token`; 404 while no token is set.

CLI: ``python -m sample.pkgserver --dir D --pki-dir P [--port N]`` prints
``{"base_url": ..., "ca_bundle": ...}`` on one line and serves until
SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import hmac
import json
import signal
import socket
import ssl
import struct
import sys
import threading
import time
import urllib.parse
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType

import trustme


@dataclass(frozen=True)
class Pki:
    """Paths of a test PKI: the root CA bundle clients trust, the server chain and key."""

    ca_bundle: Path
    cert_chain: Path
    key: Path


def make_pki(directory: Path) -> Pki:
    """Create root CA -> intermediate CA -> leaf (127.0.0.1, localhost) under ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    root = trustme.CA(organization_name="floy test root")
    intermediate = root.create_child_ca()
    leaf = intermediate.issue_cert("127.0.0.1", "localhost")
    pki = Pki(
        ca_bundle=directory / "ca.pem",
        cert_chain=directory / "server-chain.pem",
        key=directory / "server-key.pem",
    )
    root.cert_pem.write_to_path(str(pki.ca_bundle))
    # cert_chain_pems is the leaf followed by the intermediate (never the root).
    pki.cert_chain.write_bytes(b"".join(pem.bytes() for pem in leaf.cert_chain_pems))
    leaf.private_key_pem.write_to_path(str(pki.key))
    pki.key.chmod(0o600)
    return pki


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    owner: PackageServer

    def handle_error(self, request: object, client_address: object) -> None:
        """Stay quiet: clients that hang up mid-transfer are expected here."""


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        # The TLS handshake runs here, in the request thread, not in accept().
        self.request.settimeout(30)
        self.request.do_handshake()
        super().setup()

    def log_message(self, format: str, *args: object) -> None:
        return

    def do_GET(self) -> None:
        owner = self.server.owner
        path, _, query = self.path.partition("?")
        owner._record(path, dict(self.headers.items()))
        if path == "/redirect":
            return self._redirect(urllib.parse.parse_qs(query))
        parts = path.split("/")[1:]
        if parts[:1] == ["git"]:
            return self._git(parts[1:])
        mode = "plain"
        drip = 0.0
        if parts[:1] == ["flaky"] and len(parts) >= 3:
            key, count = parts[1], parts[2]
            parts = parts[3:]
            if not count.isdigit():
                return self._error(400)
            if owner._flaky_hit(key) <= int(count):
                return self._error(503)
        elif parts[:1] == ["slow"] and len(parts) >= 2:
            try:
                delay = float(parts[1])
            except ValueError:
                return self._error(400)
            parts = parts[2:]
            time.sleep(delay)
        elif parts[:1] == ["drip"] and len(parts) >= 2:
            try:
                drip = float(parts[1])
            except ValueError:
                return self._error(400)
            mode, parts = "drip", parts[2:]
        elif parts[:1] in (["drop"], ["truncate"]):
            mode = parts[0]
            parts = parts[1:]
        elif parts[:1] == ["auth"]:
            token = owner.token
            if token is None:
                return self._error(404)
            given = self.headers.get("Authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
                return self._error(401)
            parts = parts[1:]
        if len(parts) != 2 or parts[0] != "pkgs":
            return self._error(404)
        target = owner.file_path(parts[1])
        if target is None:
            return self._error(404)
        data = target.read_bytes()
        if mode == "drip":
            return self._drip(data, drip)
        self.send_response(200)
        self.send_header("Content-Type", "application/gzip")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if mode == "plain":
            self.wfile.write(data)
            return
        self.wfile.write(data[: len(data) // 2])
        self.wfile.flush()
        self.close_connection = True
        if mode == "drop":
            # SO_LINGER 0 turns the close into a reset, like a dying peer.
            self.request.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    def _git(self, parts: list[str]) -> None:
        target = self.server.owner.git_path(parts)
        if target is None:
            return self._error(404)
        data = target.read_bytes()
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _redirect(self, query: dict[str, list[str]]) -> None:
        target = query.get("to", [""])[0]
        code = query.get("code", ["302"])[0]
        if not target or code not in ("301", "302", "303", "307", "308"):
            return self._error(400)
        self.send_response(int(code))
        self.send_header("Location", target)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _drip(self, data: bytes, interval: float) -> None:
        head = (f"HTTP/1.1 200 OK\r\nContent-Type: application/gzip\r\n"
                f"Content-Length: {len(data)}\r\n\r\n").encode()
        self.close_connection = True
        give_up = time.monotonic() + 600
        try:
            for byte in head + data:
                if time.monotonic() > give_up:
                    return
                self.wfile.write(bytes((byte,)))
                self.wfile.flush()
                time.sleep(interval)
        except OSError:
            return  # the client gave up: what a deadline should make it do

    def _error(self, status: int) -> None:
        body = f"{status} {self.responses.get(status, ('',))[0]}\n".encode()
        self.send_response(status)
        if status == 401:
            self.send_header("WWW-Authenticate", 'Bearer realm="floy packages"')
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class PackageServer:
    """A threaded HTTPS server over one directory of packages (see module docstring)."""

    def __init__(self, directory: Path, pki: Pki, host: str = "127.0.0.1", port: int = 0,
                 token: str | None = None):
        self.directory = Path(directory).resolve()
        self.token = token
        self.ca_bundle = pki.ca_bundle
        self.requests: list[str] = []
        self.request_headers: list[dict[str, str]] = []
        self._lock = threading.Lock()
        self._flaky: dict[str, int] = {}
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(str(pki.cert_chain), str(pki.key))
        self._httpd = _Server((host, port), _Handler, bind_and_activate=True)
        self._httpd.owner = self
        self._httpd.socket = context.wrap_socket(
            self._httpd.socket, server_side=True, do_handshake_on_connect=False
        )
        bound_port = self._httpd.server_address[1]
        self.base_url = f"https://{host}:{bound_port}"
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=f"pkgserver-{bound_port}",
            daemon=True,
        )

    @classmethod
    def start(
        cls, directory: Path, pki: Pki, host: str = "127.0.0.1", port: int = 0,
        token: str | None = None,
    ) -> PackageServer:
        """Bind, start serving in a daemon thread and return the server.

        ``token`` enables ``/auth/pkgs/<file>`` for ``Authorization: Bearer <token>``.
        """
        server = cls(directory, pki, host, port, token)
        server._thread.start()
        return server

    def url(self, filename: str) -> str:
        """HTTPS URL of a package file served from the directory."""
        return f"{self.base_url}/pkgs/{filename}"

    def redirect_url(self, target: str, code: int = 302) -> str:
        """A URL on this server that redirects to ``target``."""
        query = urllib.parse.urlencode({"to": target, "code": str(code)})
        return f"{self.base_url}/redirect?{query}"

    def auth_url(self, filename: str) -> str:
        """HTTPS URL of a package file that needs the bearer token."""
        return f"{self.base_url}/auth/pkgs/{filename}"

    def require_token(self, token: str | None) -> None:
        """Set (or with None, disable) the bearer token of ``/auth/pkgs/``."""
        with self._lock:
            self.token = token

    def request_count(self, substr: str) -> int:
        """How many requests so far had ``substr`` in their path."""
        with self._lock:
            return sum(1 for path in self.requests if substr in path)

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def file_path(self, name: str) -> Path | None:
        """The served file called ``name``, or None if there is no such plain file."""
        if not name or name.startswith(".") or "/" in name or "\\" in name or "%" in name:
            return None
        candidate = self.directory / name
        if candidate.parent != self.directory or not candidate.is_file():
            return None
        return candidate

    def git_path(self, parts: list[str]) -> Path | None:
        """The file at ``git/<parts...>`` under the directory, or None (no traversal)."""
        if not parts or any(not p or p in (".", "..") or "\\" in p or "%" in p for p in parts):
            return None
        root = (self.directory / "git").resolve()
        candidate = root.joinpath(*parts).resolve()
        if root not in candidate.parents or not candidate.is_file():
            return None
        return candidate

    def _record(self, path: str, headers: dict[str, str]) -> None:
        with self._lock:
            self.requests.append(path)
            self.request_headers.append(headers)

    def _flaky_hit(self, key: str) -> int:
        with self._lock:
            self._flaky[key] = self._flaky.get(key, 0) + 1
            return self._flaky[key]


def main(argv: list[str] | None = None) -> int:
    """Serve a directory until SIGTERM/SIGINT, after printing base URL and CA path."""
    parser = argparse.ArgumentParser(description="floy sample HTTPS package server")
    parser.add_argument("--dir", required=True, type=Path, help="directory of packages")
    parser.add_argument("--pki-dir", required=True, type=Path, help="where to write the PKI")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    server = PackageServer.start(args.dir, make_pki(args.pki_dir), args.host, args.port)
    print(json.dumps({"base_url": server.base_url, "ca_bundle": str(server.ca_bundle)}))
    sys.stdout.flush()
    try:
        while not stop.wait(0.5):
            pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
