"""Who is calling: bearer tokens checked against the operator's tokens file, roles, and a
limit on failed attempts per client.

A refused call is logged with the client's address, the method and path and the reason,
never with the token it presented.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from orchestrator.service.tokens import Role, Token, TokenRegistry
from orchestrator.timefmt import utcnow

log = logging.getLogger("floy.http")


class AuthRefused(Exception):
    """The call is refused before it reaches the service: ``status`` 401, 403 or 429."""

    def __init__(self, status: int, code: str, message: str, retry_after: int = 0) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.retry_after = retry_after


@dataclass
class FailureLimiter:
    """At most ``max_failures`` failed authentications per client within ``window``
    seconds; past that the client is refused (429) until the window has passed, without
    its token even being looked at. Memory is bounded: old entries are dropped."""

    max_failures: int = 10
    window: float = 60.0
    clock: Callable[[], float] = time.monotonic
    _failures: dict[str, list[float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def retry_after(self, client: str) -> int:
        """Seconds the client must wait, 0 when it may try."""
        now = self.clock()
        with self._lock:
            recent = [t for t in self._failures.get(client, ()) if now - t < self.window]
            if recent:
                self._failures[client] = recent
            else:
                self._failures.pop(client, None)
            if len(recent) < self.max_failures:
                return 0
            return max(1, int(self.window - (now - recent[0])) + 1)

    def failed(self, client: str) -> None:
        """Count one failed attempt of ``client``."""
        now = self.clock()
        with self._lock:
            if len(self._failures) > 10_000:  # a flood of addresses: forget the idle ones
                self._failures = {c: ts for c, ts in self._failures.items()
                                  if ts and now - ts[-1] < self.window}
            self._failures.setdefault(client, []).append(now)


class Authenticator:
    """Turns an ``Authorization`` header into a :class:`Token` allowed to act, or refuses."""

    def __init__(self, registry: TokenRegistry, limiter: FailureLimiter | None = None) -> None:
        self.registry = registry
        self.limiter = limiter or FailureLimiter()

    def check(self, header: str | None, client: str, needs: Role, what: str,
              instance: str = "") -> Token:
        """The token of a call that needs ``needs`` (and, for a heartbeat, speaks for
        ``instance``); else :class:`AuthRefused`. ``what`` ("POST /v1/...") is logged."""
        wait = self.limiter.retry_after(client)
        if wait:
            log.warning("refused %s from %s: too many failed authentications", what, client)
            raise AuthRefused(429, "rate_limited",
                              f"too many failed authentications from {client}; "
                              f"retry in {wait} s", retry_after=wait)
        scheme, _, secret = (header or "").partition(" ")
        if not header:
            reason = "no Authorization header; send 'Authorization: Bearer <token>'"
        elif scheme.lower() != "bearer" or not secret.strip():
            reason = "the Authorization header is not 'Bearer <token>'"
        else:
            token = self.registry.match(secret.strip())
            if token is None:
                reason = "unknown token"
            elif token.expired(utcnow()):
                reason = f"token {token.name!r} has expired"
            else:
                return self._allowed(token, client, needs, what, instance)
        self.limiter.failed(client)
        log.warning("refused %s from %s: %s", what, client, reason)
        raise AuthRefused(401, "unauthenticated", reason)

    def _allowed(self, token: Token, client: str, needs: Role, what: str,
                 instance: str) -> Token:
        if not token.may(needs):
            log.warning("forbidden %s from %s: token %r has role %s", what, client, token.name,
                        token.role.value)
            raise AuthRefused(403, "forbidden", f"token {token.name!r} (role "
                              f"{token.role.value}) may not do this; it needs the "
                              f"{needs.value} role")
        if token.role is Role.HEARTBEAT and token.instance != instance:
            log.warning("forbidden %s from %s: heartbeat token %r is bound to %s", what,
                        client, token.name, token.instance)
            raise AuthRefused(403, "forbidden", f"heartbeat token {token.name!r} speaks "
                              f"for instance {token.instance!r} only")
        return token
