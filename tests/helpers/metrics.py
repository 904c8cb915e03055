"""A scripted Prometheus-like metrics endpoint over HTTPS on 127.0.0.1, for analysis gates.

:meth:`MetricsServer.start` serves ``/api/v1/query`` with the TLS chain of the test PKI;
each request answers the next value of its series (the last one repeats) as a Prometheus
instant-query vector, ``None`` meaning HTTP 503. Around it, for the faults a gate meets:

- ``/redirect``: a 302 to the query URL;
- ``/slow/<seconds>``: the next value, after sleeping ``seconds``;
- ``/drip/<seconds>``: a status line and headers one byte every ``seconds`` (a slow-loris).

Every request's path and headers are recorded (``requests``, ``headers``).
"""

from __future__ import annotations

import json
import math
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from sample.pkgserver import Pki

#: The query path, as Prometheus serves it.
QUERY_PATH = "/api/v1/query"


def prometheus_body(value: float) -> bytes:
    """An instant-query answer holding one sample of ``value`` (written as Prometheus does)."""
    if math.isnan(value):
        text = "NaN"
    elif math.isinf(value):
        text = "+Inf" if value > 0 else "-Inf"
    else:
        text = repr(float(value))
    answer = {"status": "success",
              "data": {"resultType": "vector",
                       "result": [{"metric": {}, "value": [time.time(), text]}]}}
    return json.dumps(answer).encode()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    owner: MetricsServer

    def handle_error(self, request: object, client_address: object) -> None:
        """Stay quiet: clients that give up (timeouts, refused certificates) are expected."""


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
        path = self.path.partition("?")[0]
        owner._record(self.path, dict(self.headers.items()))
        parts = path.split("/")
        if path == "/redirect":
            return self._send(302, b"", {"Location": owner.url})
        if len(parts) == 3 and parts[1] in ("slow", "drip"):
            try:
                seconds = float(parts[2])
            except ValueError:
                return self._send(400, b"bad delay\n")
            if parts[1] == "drip":
                return self._drip(seconds)
            time.sleep(seconds)
        elif path != QUERY_PATH:
            return self._send(404, b"not found\n")
        value = owner._next()
        if value is None:
            return self._send(503, b"service unavailable\n")
        self._send(200, prometheus_body(value), {"Content-Type": "application/json"})

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {"Content-Type": "text/plain"}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _drip(self, seconds: float) -> None:
        head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Pad: " + b"x" * 200
        self.close_connection = True
        try:
            for byte in head:
                self.wfile.write(bytes((byte,)))
                self.wfile.flush()
                time.sleep(seconds)
        except OSError:
            return  # the client gave up, as its deadline should make it


class MetricsServer:
    """A threaded HTTPS metrics endpoint answering a scripted series (module docstring)."""

    def __init__(self, pki: Pki, series: list[float | None]) -> None:
        if not series:
            raise ValueError("a series needs at least one value")
        self.series = list(series)
        self.requests: list[str] = []
        self.headers: list[dict[str, str]] = []
        self._served = 0
        self._lock = threading.Lock()
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(str(pki.cert_chain), str(pki.key))
        self._httpd = _Server(("127.0.0.1", 0), _Handler)
        self._httpd.owner = self
        self._httpd.socket = context.wrap_socket(
            self._httpd.socket, server_side=True, do_handshake_on_connect=False
        )
        self.base_url = f"https://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever,
                                        kwargs={"poll_interval": 0.1},
                                        name="metrics-server", daemon=True)

    @classmethod
    def start(cls, pki: Pki, series: list[float | None]) -> MetricsServer:
        """Bind a free port on 127.0.0.1, serve in a daemon thread, return the server."""
        server = cls(pki, series)
        server._thread.start()
        return server

    @property
    def url(self) -> str:
        """The instant-query URL (what an analysis gate's ``url`` would be)."""
        return f"{self.base_url}{QUERY_PATH}?query=up"

    @property
    def redirect_url(self) -> str:
        """A URL answering a 302 to :attr:`url`."""
        return f"{self.base_url}/redirect"

    def slow_url(self, seconds: float) -> str:
        """A URL answering the next value after ``seconds``."""
        return f"{self.base_url}/slow/{seconds}"

    def drip_url(self, seconds: float) -> str:
        """A URL sending its status line and headers one byte every ``seconds``."""
        return f"{self.base_url}/drip/{seconds}"

    @property
    def served(self) -> int:
        """How many values of the series were answered (503s included)."""
        with self._lock:
            return self._served

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def _next(self) -> float | None:
        with self._lock:
            value = self.series[min(self._served, len(self.series) - 1)]
            self._served += 1
            return value

    def _record(self, path: str, headers: dict[str, str]) -> None:
        with self._lock:
            self.requests.append(path)
            self.headers.append(headers)
