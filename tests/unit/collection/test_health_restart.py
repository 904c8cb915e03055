"""What floy_release delegates to module_utils: the HTTP health check (floy_health) against
a real local HTTP server, the restart command runner (floy_restart), the failures
(floy_errors) and the cancel (floy_cancel)."""

from __future__ import annotations

import http.server
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.unit.collection._collection import plugin

health = plugin("module_utils.floy_health")
restart = plugin("module_utils.floy_restart")
errors = plugin("module_utils.floy_errors")
cancel = plugin("module_utils.floy_cancel")
layout_mod = plugin("module_utils.floy_layout")
groups = plugin("module_utils.floy_process_groups")


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        status, body = self.server.answer  # type: ignore[attr-defined]
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


@pytest.fixture
def server() -> Iterator[http.server.ThreadingHTTPServer]:
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.answer = (200, '{"version": "2.0.0"}')  # type: ignore[attr-defined]
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def _url(srv: http.server.ThreadingHTTPServer) -> str:
    return health.health_url("127.0.0.1", srv.server_address[1], "/health")


def test_health_url_brackets_an_ipv6_host() -> None:
    assert health.health_url("::1", 8080, "/health") == "http://[::1]:8080/health"
    assert health.health_url("[::1]", 80, "/") == "http://[::1]:80/"
    assert health.health_url("127.0.0.1", 80, "/h") == "http://127.0.0.1:80/h"


def test_a_matching_answer_is_healthy(server: http.server.ThreadingHTTPServer) -> None:
    deadline = time.monotonic() + 5
    assert health.check_health(_url(server), deadline, '"version": "2.0.0"') is None
    assert health.check_health(_url(server), deadline, "") is None


def test_an_answer_without_the_expected_text_is_a_problem(
        server: http.server.ThreadingHTTPServer) -> None:
    problem = health.check_health(_url(server), time.monotonic() + 0.5, "3.0.0")
    assert problem == f"{_url(server)} answered 200 without '3.0.0': " '{"version": "2.0.0"}'


def test_an_http_error_is_a_problem(server: http.server.ThreadingHTTPServer) -> None:
    server.answer = (503, "down")  # type: ignore[attr-defined]
    problem = health.check_health(_url(server), time.monotonic() + 0.5, "")
    assert problem == f"{_url(server)} answered HTTP 503 Service Unavailable"


def test_no_answer_until_the_deadline(server: http.server.ThreadingHTTPServer) -> None:
    port = server.server_address[1]
    server.shutdown()
    server.server_close()
    url = health.health_url("127.0.0.1", port, "/health")
    started = time.monotonic()
    problem = health.check_health(url, started + 0.6, "")
    assert 0.5 <= time.monotonic() - started < 3
    assert problem is not None and problem.startswith(url + ": ")
    assert "refused" in problem.lower()
    assert health.check_health(url, time.monotonic() - 1, "") == "no answer"


# -- retry_start: health_retries re-run the restart and health check in place -----------------


class _Starts:
    """A scripted ``start()``: each outcome is None (healthy), a problem, or an exception."""

    def __init__(self, *outcomes: object) -> None:
        self.outcomes = list(outcomes)
        self.calls = 0
        self.sleeps: list[float] = []

    def __call__(self) -> object:
        outcome = self.outcomes[min(self.calls, len(self.outcomes) - 1)]
        self.calls += 1
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)


def _retry(starts: _Starts, retries: int, delay: float = 2, left: float = 100) -> object:
    return health.retry_start(starts, retries, delay, lambda: left, sleep=starts.sleep)


def test_a_healthy_start_is_not_repeated() -> None:
    starts = _Starts(None)
    assert _retry(starts, 3) is None
    assert starts.calls == 1 and starts.sleeps == []


def test_no_health_retries_by_default_one_start() -> None:
    starts = _Starts("unhealthy")
    assert _retry(starts, 0) == "unhealthy"
    assert starts.calls == 1 and starts.sleeps == []
    failing = _Starts(errors.StartFailed("restart command failed"))
    with pytest.raises(errors.StartFailed, match="restart command failed"):
        _retry(failing, 0)
    assert failing.calls == 1


def test_health_retries_start_again_until_healthy() -> None:
    starts = _Starts("refused", errors.StartFailed("exit 1"), None, "never reached")
    assert _retry(starts, 5, delay=3) is None
    assert starts.calls == 3 and starts.sleeps == [3, 3]


def test_health_retries_end_with_the_last_failure() -> None:
    starts = _Starts("one", "two", "three")
    assert _retry(starts, 2) == "three"
    assert starts.calls == 3 and len(starts.sleeps) == 2
    failing = _Starts("one", errors.StartFailed("last"))
    with pytest.raises(errors.StartFailed, match="last"):
        _retry(failing, 1)


def test_no_start_again_without_time_for_it() -> None:
    starts = _Starts("unhealthy")
    assert _retry(starts, 5, delay=2, left=2) == "unhealthy"
    assert starts.calls == 1 and starts.sleeps == []


@pytest.mark.parametrize("exc", [errors.DeadlineExceeded(30, "restart"),
                                 errors.ReleaseError("cancelled while restart")])
def test_the_deadline_or_a_cancel_is_never_started_again(exc: Exception) -> None:
    starts = _Starts(exc, None)
    with pytest.raises(type(exc)):
        _retry(starts, 5)
    assert starts.calls == 1


def test_the_deadline_message() -> None:
    assert errors.DeadlineExceeded(30).msg == "timed out after 30 s"
    exc = errors.DeadlineExceeded(30, "health check: no answer")
    assert exc.msg == "timed out after 30 s (health check: no answer)"
    assert isinstance(exc, errors.ReleaseError) and not exc.retryable
    assert exc.detail == "health check: no answer"
    assert errors.ReleaseError("x", retryable=True).retryable
    start_failed = errors.StartFailed("restart command failed")
    assert isinstance(start_failed, errors.ReleaseError) and not start_failed.retryable


def test_sigterm_cancels_naming_the_phase(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cancel, "CURRENT_PHASE", ["restart"])
    previous = signal.signal(signal.SIGTERM, cancel.on_sigterm)
    try:
        with pytest.raises(cancel.Cancelled) as caught:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)
        assert caught.value.msg == "cancelled while restart"
        assert isinstance(caught.value, errors.ReleaseError) and not caught.value.retryable
        # a second SIGTERM (during the cleanup) is swallowed, not SIG_IGN (inherited by exec)
        assert signal.getsignal(signal.SIGTERM) not in (signal.SIG_IGN, cancel.on_sigterm)
        os.kill(os.getpid(), signal.SIGTERM)
    finally:
        signal.signal(signal.SIGTERM, previous)


@pytest.fixture
def layout(tmp_path: Path) -> object:
    inst = layout_mod.InstanceLayout(str(tmp_path / "hello" / "hello-1"))
    layout_mod.make_directories(inst)
    os.mkdir(inst.release_dir("1.0.0"))
    return inst


def _env(layout: object) -> dict[str, str]:
    return restart.restart_environment(layout, "hello", "hello-1", "1.0.0", 8080)


def test_the_restart_environment(layout: object, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOY_RUN_ID", "d-1")
    env = _env(layout)
    assert "FLOY_RUN_ID" not in env
    assert env["FLOY_VERSION"] == "1.0.0" and env["FLOY_PORT"] == "8080"
    assert env["FLOY_RELEASE_DIR"] == layout.release_dir("1.0.0")  # type: ignore[attr-defined]


def test_a_restart_runs_in_the_release_and_clears_its_record(layout: object) -> None:
    restart.run_restart('echo "$FLOY_SERVICE in $(pwd)"', layout, "1.0.0", _env(layout),
                        time.monotonic() + 10, 300, "still running")
    log = Path(layout.restart_log_path).read_text()  # type: ignore[attr-defined]
    assert "floy restart of 1.0.0" in log
    release_dir = os.path.realpath(layout.release_dir("1.0.0"))  # type: ignore[attr-defined]
    assert f"hello in {release_dir}" in log
    assert not os.path.exists(layout.restart_record_path)  # type: ignore[attr-defined]


def test_a_failed_restart_reports_the_log_tail(layout: object) -> None:
    with pytest.raises(errors.ReleaseError) as caught:
        restart.run_restart("echo first; echo boom >&2; exit 3", layout, "1.0.0",
                            _env(layout), time.monotonic() + 10, 300, "still running")
    # The release is at fault, not the network: not retried by running the module again.
    assert isinstance(caught.value, errors.StartFailed) and not caught.value.retryable
    log_path = layout.restart_log_path  # type: ignore[attr-defined]
    assert caught.value.msg.startswith(
        f"restart command failed with exit status 3 for 1.0.0 (see {log_path}): --- ")
    assert caught.value.msg.endswith(" | first | boom")


def test_a_restart_past_the_deadline_is_killed(layout: object, tmp_path: Path) -> None:
    started = time.monotonic()
    with pytest.raises(errors.DeadlineExceeded) as caught:
        restart.run_restart(f"sleep 30 & echo $$ > {tmp_path / 'group'}; wait", layout,
                            "1.0.0", _env(layout), started + 0.5, 7, "restart still running")
    assert caught.value.msg == "timed out after 7 s (restart still running)"
    assert time.monotonic() - started < 10
    assert not groups.group_alive(int((tmp_path / "group").read_text()))
    assert not os.path.exists(layout.restart_record_path)  # type: ignore[attr-defined]


def test_log_tail(tmp_path: Path) -> None:
    log = tmp_path / "log"
    assert restart.log_tail(str(log)) == ""
    log.write_text("a\n\n b\nc\nd\ne\nf\n")
    assert restart.log_tail(str(log)) == ":  b | c | d | e | f"
    assert restart.log_tail(str(log), lines=1) == ": f"
