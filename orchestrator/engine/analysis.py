"""Running an analysis gate: fetching a measurement, and taking them until the gate decides.

:func:`measure` makes one GET from the controller and hands the answer to the pure
:func:`~orchestrator.domain.analysis.evaluate`; it never raises for a network or TLS
problem, which is a failed measurement like any other. :func:`run_analysis` takes
measurements ``interval`` seconds apart until :func:`~orchestrator.domain.analysis.judge`
decides, recording each one first so a restarted worker goes on where the last one stopped.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import httpx

from orchestrator.domain.analysis import Analysis, Measurement, Verdict, evaluate, judge

#: The largest body read; a larger answer is a failed measurement.
MAX_BODY = 1024 * 1024


class _Watchdog:
    """Ends a request at its deadline, however slowly the server answers.

    httpx's timeouts bound each network operation, not the request: a server sending its
    headers a byte at a time, each byte within the timeout, would hold a measurement (and
    the deployment) for hours. At the deadline the watchdog shuts the connection's socket
    down, which wakes the blocked read; it finds the socket through httpcore's documented
    ``trace`` request extension (https://www.encode.io/httpcore/extensions/#trace). Connect
    and TLS handshake need no help: each has one deadline of its own, the timeout.
    """

    def __init__(self, seconds: float) -> None:
        self.expired = False
        self._socket: socket.socket | None = None
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def __enter__(self) -> _Watchdog:
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()

    def trace(self, event: str, info: dict[str, Any]) -> None:
        """httpcore's trace callback: keep the socket of the newest connection stream."""
        if event.endswith(("connect_tcp.complete", "start_tls.complete")):
            with self._lock:
                self._socket = info["return_value"].get_extra_info("socket")
                if self.expired:
                    self._shut_down()

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            self._shut_down()

    def _shut_down(self) -> None:
        if self._socket is not None:
            with contextlib.suppress(OSError):  # already closed, or handed over to TLS
                self._socket.shutdown(socket.SHUT_RDWR)


def measure(
    analysis: Analysis, *, ca_bundle: str = "", clock: Callable[[], datetime]
) -> Measurement:
    """One GET of ``analysis.url``, judged; network and TLS problems are failed measurements.

    The server is verified against ``ca_bundle`` when given, the system's trust store
    otherwise; redirects are not followed (one could leave the allowed hosts), no proxy
    comes from the environment, and the whole request, body included, must fit in
    ``analysis.timeout`` seconds and 1 MiB.
    """
    at = clock()
    started = time.monotonic()
    status, body, error = _get(analysis, ca_bundle)
    return evaluate(analysis, at=at, http_status=status, body=body,
                    seconds=time.monotonic() - started, error=error)


def _get(analysis: Analysis, ca_bundle: str) -> tuple[int | None, bytes, str]:
    """The answer's status and body, or the error that prevented or spoiled it."""
    try:
        trust = ssl.create_default_context(cafile=ca_bundle or None)
    except OSError as exc:  # ssl.SSLError is an OSError too
        return None, b"", f"CA bundle {ca_bundle}: {exc.strerror or exc}"
    headers = {"Accept": "application/json", "Accept-Encoding": "identity"}
    timed_out = f"timed out after {analysis.timeout} s"
    with _Watchdog(analysis.timeout) as watchdog:
        try:
            with httpx.Client(verify=trust, follow_redirects=False, trust_env=False,
                              timeout=analysis.timeout) as client:
                request = client.build_request("GET", analysis.url, headers=headers,
                                               extensions={"trace": watchdog.trace})
                response = client.send(request, stream=True)
                try:
                    body, error = _read(response, analysis)
                finally:
                    response.close()
        except (httpx.HTTPError, httpx.InvalidURL, OSError) as exc:
            return None, b"", timed_out if watchdog.expired else _describe(exc, analysis)
    if watchdog.expired:  # a body without a length ends at the shutdown, as if complete
        return None, b"", timed_out
    return response.status_code, body, error


def _read(response: httpx.Response, analysis: Analysis) -> tuple[bytes, str]:
    """The body (at most :data:`MAX_BODY`), or why it is not read."""
    status = response.status_code
    if 300 <= status <= 399:
        location = response.headers.get("location", "")
        return b"", (f"HTTP {status}: redirect to {location} not followed "
                     "(a redirect could leave the allowed hosts)")
    encoding = response.headers.get("content-encoding", "identity").lower()
    if analysis.query and encoding != "identity":
        return b"", f"body is compressed ({encoding}) although identity was asked for"
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY:
        return b"", f"body too large ({declared} bytes, at most {MAX_BODY})"
    body = bytearray()
    for chunk in response.iter_raw():
        body += chunk
        if len(body) > MAX_BODY:
            return b"", f"body too large (over {MAX_BODY} bytes)"
    return bytes(body), ""


def _describe(exc: BaseException, analysis: Analysis) -> str:
    """A short reason for a failed request: the root cause, not httpx's wrapping."""
    if isinstance(exc, httpx.TimeoutException):
        return f"timed out after {analysis.timeout} s"
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ssl.SSLCertVerificationError):
            return f"TLS: certificate verify failed ({cause.verify_message})"
        if isinstance(cause, ssl.SSLError):
            return f"TLS: {cause.reason or cause}"
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
        if isinstance(cause, ConnectionResetError):
            return "connection reset by the server"
        if isinstance(cause, socket.gaierror):
            return f"cannot resolve the host: {cause.strerror}"
        cause = cause.__cause__ or cause.__context__
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def run_analysis(
    analysis: Analysis,
    *,
    measure_once: Callable[[], Measurement],
    record: Callable[[Measurement], None],
    stopped: Callable[[], bool],
    already: Sequence[Measurement] = (),
    sleep_step: float = 0.25,
    monotonic: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Verdict | None:
    """Take measurements until the gate decides; None as soon as ``stopped()`` is true.

    ``already`` are measurements recorded before a worker restart: they count and are not
    taken again (after a restart the next one waits a full ``interval``, the time of the
    last one being unknown to this clock). Each new measurement goes to ``record`` before it
    is judged. Measurements start ``interval`` seconds apart; while waiting, ``stopped`` is
    asked every ``sleep_step`` seconds. Exceptions of ``measure_once`` and ``record``
    propagate.
    """
    taken = list(already)
    verdict = judge(analysis, taken)
    if verdict is not None:
        return verdict
    if taken and not _wait(monotonic() + analysis.interval, stopped, sleep_step, monotonic,
                           sleep):
        return None
    while not stopped():
        started = monotonic()
        measurement = measure_once()
        record(measurement)
        taken.append(measurement)
        verdict = judge(analysis, taken)
        if verdict is not None:
            return verdict
        if not _wait(started + analysis.interval, stopped, sleep_step, monotonic, sleep):
            return None
    return None


def _wait(
    until: float, stopped: Callable[[], bool], step: float, monotonic: Callable[[], float],
    sleep: Callable[[float], None],
) -> bool:
    """Sleep until ``until`` in steps of ``step``; False as soon as ``stopped()``."""
    while (left := until - monotonic()) > 0:
        if stopped():
            return False
        sleep(min(step, left))
    return True
