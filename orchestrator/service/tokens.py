"""API tokens: the operator's file of hashed bearer tokens, and checking a presented one.

A token is a random secret (256 bits, ``floy_`` + URL-safe base64) shown once, when it is
made; the file (``<home>/tokens.yml``, mode 0600) keeps only its SHA-256. A slow password
hash buys nothing for a secret with 256 bits of entropy (nobody can guess it; GitHub stores
its tokens the same way), and a fast one keeps every API call cheap. A presented token is
hashed and compared with every entry in constant time (:func:`hmac.compare_digest`, and no
early exit), so timing tells nothing about which prefix matched.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
import tempfile
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml

from orchestrator.domain import validation
from orchestrator.errors import ConfigError, ConflictError, NotFoundError, ValidationError
from orchestrator.timefmt import format_time, parse_time, utcnow

TOKEN_PREFIX = "floy_"
_HEX64 = re.compile(r"[0-9a-f]{64}")
_DURATION = re.compile(r"([1-9][0-9]{0,5})([smhd])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class Role(StrEnum):
    """What a token may do over HTTP."""

    #: status, events, versions, instances, history, services
    READ = "read"
    #: everything READ may, plus deploy, cancel, rollback and instance registration
    DEPLOYER = "deployer"
    #: only the heartbeat of the one instance the token is bound to
    HEARTBEAT = "heartbeat"


@dataclass(frozen=True)
class Token:
    """One entry of the tokens file (never the secret itself)."""

    name: str
    role: Role
    sha256: str
    created_at: datetime
    expires_at: datetime | None = None
    instance: str = ""  # the instance a heartbeat token speaks for

    def expired(self, now: datetime) -> bool:
        """Whether the token's time is up."""
        return self.expires_at is not None and now >= self.expires_at

    def may(self, role: Role) -> bool:
        """Whether this token may make a call that needs ``role``."""
        if self.role is Role.DEPLOYER:
            return role in (Role.DEPLOYER, Role.READ)
        return self.role is role

    def to_dict(self) -> dict[str, Any]:
        """The file's (and ``floy token list --json``'s) form of the entry."""
        return {"name": self.name, "role": self.role.value, "sha256": self.sha256,
                "instance": self.instance, "created_at": format_time(self.created_at),
                "expires_at": None if self.expires_at is None else format_time(self.expires_at)}


def hash_secret(secret: str) -> str:
    """The SHA-256 (hex) a token file keeps of ``secret``."""
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def parse_duration(field: str, text: str) -> timedelta:
    """``90s``, ``15m``, ``12h``, ``30d`` as a timedelta; else a ValidationError."""
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise ValidationError(field, f"{text!r} is not a duration such as 90s, 15m, 12h or 30d")
    return timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)])


class TokenFile:
    """The operator's tokens file: read, add, revoke (writes are atomic, mode 0600)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> list[Token]:
        """Every entry; a missing file has none. A malformed one is a ConfigError naming the
        file and the entry."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise ConfigError(f"cannot read the tokens file {self.path}: {exc}") from None
        try:
            data = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{self.path} is not valid YAML: {exc}") from None
        entries = data.get("tokens", []) if isinstance(data, dict) else None
        if not isinstance(entries, list):
            raise ConfigError(f"{self.path}: 'tokens' must be a list")
        tokens = [self._entry(i, e) for i, e in enumerate(entries)]
        names = [t.name for t in tokens]
        for name in names:
            if names.count(name) > 1:
                raise ConfigError(f"{self.path}: token name {name!r} is used twice")
        return tokens

    def _entry(self, index: int, entry: object) -> Token:
        where = f"{self.path}: tokens[{index}]"
        if not isinstance(entry, dict):
            raise ConfigError(f"{where} must be a mapping")
        try:
            name = validation.validate_name("name", entry.get("name"))
            role = Role(str(entry.get("role")))
            digest = str(entry.get("sha256", ""))
            if not _HEX64.fullmatch(digest):
                raise ValueError("sha256 must be 64 lowercase hex digits")
            instance = str(entry.get("instance") or "")
            if role is Role.HEARTBEAT:
                instance = validation.validate_name("instance", instance)
            expires = entry.get("expires_at")
            return Token(name=name, role=role, sha256=digest, instance=instance,
                         created_at=parse_time(str(entry.get("created_at"))),
                         expires_at=None if expires is None else parse_time(str(expires)))
        except (ValueError, ValidationError) as exc:
            raise ConfigError(f"{where}: {exc}") from None

    def add(self, name: str, role: str, instance: str = "",
            expires_in: timedelta | None = None) -> tuple[Token, str]:
        """Make a token; returns its entry and its secret (shown once, never stored)."""
        name = validation.validate_name("name", name)
        try:
            checked_role = Role(role)
        except ValueError:
            raise ValidationError("role", f"{role!r} is not one of "
                                          f"{', '.join(r.value for r in Role)}") from None
        if checked_role is Role.HEARTBEAT:
            instance = validation.validate_name("instance", instance)
        elif instance:
            raise ValidationError("instance", "only a heartbeat token is bound to an instance")
        tokens = self.load()
        if any(t.name == name for t in tokens):
            raise ConflictError(f"a token named {name!r} exists; revoke it first", key=name)
        secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
        now = utcnow()
        token = Token(name=name, role=checked_role, sha256=hash_secret(secret), created_at=now,
                      expires_at=None if expires_in is None else now + expires_in,
                      instance=instance)
        self._write([*tokens, token])
        return token, secret

    def revoke(self, name: str) -> Token:
        """Remove the token named ``name``; NotFoundError if there is none."""
        tokens = self.load()
        kept = [t for t in tokens if t.name != name]
        if len(kept) == len(tokens):
            raise NotFoundError("token", name)
        self._write(kept)
        return next(t for t in tokens if t.name == name)

    def _write(self, tokens: list[Token]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        body = ("# floy API tokens: only each secret's sha256 is kept.\n"
                "# Manage with: floy token add | list | revoke\n"
                + yaml.safe_dump({"tokens": [t.to_dict() for t in tokens]}, sort_keys=False))
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".tokens-", suffix=".yml")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(body)
            os.chmod(tmp, 0o600)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


class TokenRegistry:
    """The tokens a server accepts, re-read when the file changes (``floy token add`` or
    ``revoke`` takes effect on the next call, with no restart)."""

    def __init__(self, file: TokenFile) -> None:
        self.file = file
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._tokens: list[Token] = []
        self.reload()

    def reload(self) -> None:
        """Read the file if it changed. A file made malformed raises ConfigError on every
        call until it is mended: the server fails closed, never on stale tokens."""
        try:
            st = self.file.path.stat()
            stamp = (st.st_mtime_ns, st.st_size)
        except FileNotFoundError:
            stamp = (0, 0)
        with self._lock:
            if stamp == self._stamp:
                return
            tokens = self.file.load()
            self._tokens, self._stamp = tokens, stamp

    def __len__(self) -> int:
        return len(self._tokens)

    def match(self, secret: str) -> Token | None:
        """The entry whose hash is ``secret``'s, or None; every entry is compared."""
        self.reload()
        digest = hash_secret(secret)
        found = None
        for token in self._tokens:
            if hmac.compare_digest(token.sha256, digest):
                found = token
        return found
