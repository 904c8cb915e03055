# Copyright: (c) 2026, floy contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
# SPDX-License-Identifier: Apache-2.0
"""Fetch a package over verified HTTPS under one deadline and one URL policy.

- The policy (HTTPS only, a valid host and port, the optional allow-list of hosts) applies
  to every URL fetched: the one asked for, one recorded on the host, and every redirect hop.
- Operator headers (an ``Authorization`` token) go only to the origin they were configured
  for: scheme, host and port. They are never sent after a redirect to another origin.
- The deadline covers the whole fetch (connect, headers, body), not each read: a server
  that drips one byte at a time is stopped by a real-time timer, not by socket timeouts.
- The body is capped in size.

Standard library only, Python 3.8 compatible: this runs on the target's interpreter.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import http.client
import signal
import socket
import ssl
import string
import urllib.error
import urllib.parse
import urllib.request

CHUNK = 1 << 16
MAX_REDIRECTS = 5
USER_AGENT = "floy_release/0.1"
_URL_CHARS = frozenset(string.ascii_letters + string.digits + "-._~:/?#[]@!$&'()*+,;=%")
_HEX = frozenset(string.hexdigits)


class FetchError(Exception):
    """A failed or refused fetch, with whether retrying could help."""

    def __init__(self, msg, retryable=False):
        super().__init__(msg)
        self.msg = msg
        self.retryable = retryable


class FetchTimeout(Exception):
    """The fetch deadline passed; ``detail`` says where."""

    def __init__(self, detail):
        super().__init__(detail)
        self.detail = detail


def safe_url(url):
    """The URL without user info or query string, for messages."""
    try:
        parts = urllib.parse.urlsplit(url)
        host = parts.hostname or ""
        if parts.port:
            host = "%s:%d" % (host, parts.port)
    except ValueError:
        return "<unparsable URL>"
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path, "", ""))


def origin(url):
    """(scheme, host, port) of a URL, the unit credentials are bound to."""
    parts = urllib.parse.urlsplit(url)
    return (parts.scheme.lower(), (parts.hostname or "").lower(), parts.port or 443)


def check_url(url, allowed_hosts, what="package_url"):
    """Refuse a URL floy must not fetch: not HTTPS, bad host or port, not allowed."""
    if not url or any(ch not in _URL_CHARS for ch in url):
        raise FetchError("invalid %s %s: only ASCII URL characters are allowed "
                         "(percent-encode the rest)" % (what, safe_url(url)))
    index = url.find("%")
    while index != -1:
        if not (url[index + 1:index + 2] in _HEX and url[index + 2:index + 3] in _HEX):
            raise FetchError("invalid %s %s: malformed percent-encoding" % (what, safe_url(url)))
        index = url.find("%", index + 1)
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError:
        raise FetchError("invalid %s %s: bad port" % (what, safe_url(url))) from None
    if parts.scheme.lower() != "https" or not parts.hostname:
        raise FetchError("invalid %s %s: only https:// URLs are allowed" % (what, safe_url(url)))
    if port is not None and not 1 <= port <= 65535:
        raise FetchError("invalid %s %s: port must be 1-65535" % (what, safe_url(url)))
    if "@" in parts.netloc:
        raise FetchError("invalid %s %s: credentials in the URL are not allowed"
                         % (what, safe_url(url)))
    allowed = [h.lower() for h in allowed_hosts or ()]
    if allowed and parts.hostname.lower() not in allowed:
        raise FetchError("%s %s: host %s is not in the allowed package hosts"
                         % (what, safe_url(url), parts.hostname))
    return url


class _Redirects(urllib.request.HTTPRedirectHandler):
    """Check every hop against the policy; re-add credentials only on their own origin."""

    max_redirections = MAX_REDIRECTS

    def __init__(self, allowed_hosts, headers, home):
        super().__init__()
        self.allowed_hosts = allowed_hosts
        self.headers = headers
        self.home = home

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        newurl = urllib.parse.urljoin(req.full_url, newurl)
        try:
            check_url(newurl, self.allowed_hosts, "redirect target")
        except FetchError as exc:
            raise FetchError("download failed: refusing the redirect from %s: %s"
                             % (safe_url(req.full_url), exc.msg)) from None
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is not None and origin(newurl) == self.home:
            for key, value in self.headers.items():
                new.add_unredirected_header(key, value)
        return new


@contextlib.contextmanager
def deadline_timer(seconds, detail):
    """Raise FetchTimeout(detail()) in this (main) thread once ``seconds`` have passed."""

    def expire(signum, frame):
        raise FetchTimeout(detail())

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, max(0.01, seconds))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def download(url, out, headers, ca_bundle, allowed_hosts, max_bytes, read_timeout):
    """Stream ``url`` into the binary file ``out``; return the sha256 hex digest.

    The caller wraps this in :func:`deadline_timer`. Raises FetchError; OSError from
    writing ``out`` passes through (disk full is the caller's message).
    """
    check_url(url, allowed_hosts)
    where = safe_url(url)
    context = ssl.create_default_context(cafile=ca_bundle or None)
    operator_headers = dict((str(k), str(v)) for k, v in (headers or {}).items())
    opener = urllib.request.build_opener(
        urllib.request.ProxyHandler({}),
        urllib.request.HTTPSHandler(context=context),
        _Redirects(allowed_hosts, operator_headers, origin(url)),
    )
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    # Unredirected: urllib would otherwise copy them onto every redirect, to any host.
    for key, value in operator_headers.items():
        request.add_unredirected_header(key, value)
    digest = hashlib.sha256()
    received = 0
    try:
        with opener.open(request, timeout=read_timeout) as response:
            final = safe_url(response.geturl())
            length = response.headers.get("Content-Length")
            expected = int(length) if length and length.isdigit() else None
            if expected is not None and expected > max_bytes:
                raise FetchError("download failed: %s is %d bytes, more than the limit of %d "
                                 "(max_unpacked_bytes)" % (final, expected, max_bytes))
            while True:
                chunk = response.read(CHUNK)
                if not chunk:
                    break
                received += len(chunk)
                if received > max_bytes:
                    raise FetchError("download failed: %s sent more than the limit of %d bytes "
                                     "(max_unpacked_bytes)" % (final, max_bytes))
                digest.update(chunk)
                out.write(chunk)
        if expected is not None and received != expected:
            raise FetchError("download failed: connection closed after %d of %d bytes from %s"
                             % (received, expected, where), retryable=True)
    except urllib.error.HTTPError as exc:
        raise FetchError("download failed: HTTP %d %s for %s" % (exc.code, exc.reason, where),
                         retryable=exc.code >= 500 or exc.code in (408, 429)) from None
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, ssl.SSLCertVerificationError):
            raise FetchError("download failed: TLS certificate verification failed for %s: %s"
                             % (where, reason.verify_message or reason)) from None
        raise FetchError("download failed: %s for %s" % (reason, where), True) from None
    except ssl.SSLCertVerificationError as exc:
        raise FetchError("download failed: TLS certificate verification failed for %s: %s"
                         % (where, exc.verify_message or exc)) from None
    except (TimeoutError, socket.timeout) as exc:
        raise FetchError("download failed: %s for %s" % (exc, where), True) from None
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES):
            raise
        raise FetchError("download failed: %s for %s" % (exc, where), True) from None
    except (http.client.HTTPException, ValueError) as exc:
        raise FetchError("download failed: %s: %s for %s" % (type(exc).__name__, exc, where),
                         True) from None
    return digest.hexdigest()
