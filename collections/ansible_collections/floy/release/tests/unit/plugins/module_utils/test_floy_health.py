# Copyright: (c) 2026, floy contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
# SPDX-License-Identifier: Apache-2.0
"""floy_health: the health URL, polling a real HTTP server on loopback, in-place retries."""

from __future__ import annotations

import contextlib
import http.server
import socket
import threading
import time

import pytest
from ansible_collections.floy.release.plugins.module_utils.floy_errors import StartFailed
from ansible_collections.floy.release.plugins.module_utils.floy_health import (
    check_health,
    health_url,
    retry_start,
)


class Health(http.server.BaseHTTPRequestHandler):
    """/health answers 200 with the version; anything else 503."""

    def do_GET(self):
        ok = self.path == "/health"
        body = b'{"version": "1.0.0"}' if ok else b"starting"
        self.send_response(200 if ok else 503)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        """Quiet."""


@pytest.fixture(scope="module")
def server():
    """An HTTP server on 127.0.0.1 (port chosen by the system) for the module's tests."""
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Health)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd.server_address[1]
    httpd.shutdown()
    httpd.server_close()


@pytest.mark.parametrize(
    "host, port, path, url",
    [
        ("127.0.0.1", 8080, "/health", "http://127.0.0.1:8080/health"),
        ("::1", 8080, "/health", "http://[::1]:8080/health"),
        ("[::1]", 80, "/", "http://[::1]:80/"),
        ("app.internal", 9000, "/status?full=1", "http://app.internal:9000/status?full=1"),
    ],
)
def test_health_url(host, port, path, url):
    assert health_url(host, port, path) == url


def test_healthy_with_the_expected_text(server):
    url = health_url("127.0.0.1", server, "/health")
    assert check_health(url, time.monotonic() + 5, '"version": "1.0.0"') is None


def test_unhealthy_answers_are_the_problem_reported(server):
    url = health_url("127.0.0.1", server, "/health")
    wrong = check_health(url, time.monotonic() + 0.3, "2.0.0")
    assert "without '2.0.0'" in wrong
    down = check_health(health_url("127.0.0.1", server, "/other"), time.monotonic() + 0.3, "")
    assert "HTTP 503" in down


def test_nothing_listening_is_a_problem_by_the_deadline():
    # A port held bound but never listening: every connection is refused.
    with contextlib.closing(socket.socket()) as bound:
        bound.bind(("127.0.0.1", 0))
        started = time.monotonic()
        url = health_url("127.0.0.1", bound.getsockname()[1], "/health")
        problem = check_health(url, started + 0.5, "")
    assert problem and 0.4 < time.monotonic() - started < 3


def scripted(*outcomes):
    """A start() that plays ``outcomes`` (None, a problem, or StartFailed) and counts calls."""
    calls = []

    def start():
        outcome = outcomes[len(calls)]
        calls.append(outcome)
        if outcome is StartFailed:
            raise StartFailed("restart command failed")
        return outcome

    return start, calls


def test_retry_start_stops_at_the_first_healthy_start():
    start, calls = scripted("down", None, "never reached")
    assert retry_start(start, 5, 1, lambda: 100, sleep=lambda s: None) is None
    assert len(calls) == 2


def test_retry_start_gives_up_after_the_retries_or_near_the_deadline():
    start, calls = scripted("down", "down", "down")
    assert retry_start(start, 1, 1, lambda: 100, sleep=lambda s: None) == "down"
    assert len(calls) == 2
    start, calls = scripted(StartFailed, None)
    with pytest.raises(StartFailed):
        retry_start(start, 3, 5, lambda: 4, sleep=lambda s: None)
    assert len(calls) == 1, "no time left for a second start"
