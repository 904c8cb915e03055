# Copyright: (c) 2026, floy contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
# SPDX-License-Identifier: Apache-2.0
"""The HTTP health check of an instance: poll its port until it answers (optionally with
an expected text in the body) or a deadline passes.

Plain HTTP, never through a proxy: the check talks to the instance on its own host.
:func:`check_health` returns None when healthy, else the last problem seen, as text for
the release's message; the caller decides what a problem means (switch back, restart).

:func:`retry_start` is the one place a release that does not come up is tried again: its
restart and health check re-run in place, up to ``health_retries`` times (0 by default),
never a new download or switch. The module as a whole is retried (the role's ``until``)
only for transient faults of the fetch and the connection.

Standard library only, Python 3.8 compatible: this runs on the target's interpreter.
"""

from __future__ import annotations

import http.client
import time
import urllib.error
import urllib.request

from ansible_collections.floy.release.plugins.module_utils.floy_errors import StartFailed

#: Seconds between polls, and during the first second (most apps come up within it).
HEALTH_POLL = 0.5
HEALTH_FAST_POLL = 0.1
#: Most bytes of a response body read (the expected text must be within them).
MAX_BODY = 1 << 20


def health_url(host, port, path):
    """``http://host:port/path``, an IPv6 literal host in brackets."""
    if ":" in host and not host.startswith("["):
        host = "[%s]" % host
    return "http://%s:%d%s" % (host, port, path)


def check_health(url, deadline, expect):
    """Poll ``url`` until it answers 2xx (with ``expect`` in the body, if given) or the
    ``deadline`` (a time.monotonic() value) passes; return None or the last problem seen."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    problem = "no answer"
    started = time.monotonic()
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return problem
        try:
            with opener.open(url, timeout=max(0.1, min(5.0, left))) as response:
                body = response.read(MAX_BODY).decode("utf-8", "replace")
                if expect and expect not in body:
                    problem = "%s answered %d without %r: %s" % (
                        url,
                        response.status,
                        expect,
                        body[:200].strip(),
                    )
                else:
                    return None
        except urllib.error.HTTPError as exc:
            problem = "%s answered HTTP %d %s" % (url, exc.code, exc.reason)
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            reason = getattr(exc, "reason", exc)
            problem = "%s: %s" % (url, reason)
        # Poll faster during the first second: most apps come up within it.
        interval = HEALTH_FAST_POLL if time.monotonic() - started < 1.0 else HEALTH_POLL
        time.sleep(max(0.0, min(interval, deadline - time.monotonic())))


def retry_start(start, retries, delay, remaining, sleep=time.sleep):
    """Start a release until it is healthy, at most ``1 + retries`` times.

    ``start()`` runs the restart command and the health check once: it returns None when
    healthy, else the problem seen, and raises StartFailed when the restart command fails.
    It is called again, ``delay`` seconds later, only while starts are left and
    ``remaining()`` (seconds to the release's deadline) exceeds ``delay``. Returns None or
    the last problem; the last StartFailed passes through, as does anything else ``start``
    raises (the deadline, a cancel) at once.
    """
    starts = 0
    while True:
        starts += 1
        try:
            problem = start()
        except StartFailed:
            if starts > retries or remaining() <= delay:
                raise
        else:
            if problem is None or starts > retries or remaining() <= delay:
                return problem
        sleep(delay)
