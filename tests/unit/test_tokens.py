"""API tokens: the hashed file, roles, expiry, the constant-time match, failed-attempt limits."""

from __future__ import annotations

import logging
import stat
from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from orchestrator.errors import ConfigError, ConflictError, NotFoundError, ValidationError
from orchestrator.http.auth import Authenticator, AuthRefused, FailureLimiter
from orchestrator.service.tokens import (
    Role,
    TokenFile,
    TokenRegistry,
    hash_secret,
    parse_duration,
)


@pytest.fixture
def file(tmp_path: Path) -> TokenFile:
    return TokenFile(tmp_path / "home" / "tokens.yml")


def test_only_the_hash_is_stored_and_the_file_is_private(file: TokenFile) -> None:
    token, secret = file.add("ci", "deployer")
    text = file.path.read_text()
    assert secret.startswith("floy_") and len(secret) > 40
    assert secret not in text and hash_secret(secret) in text
    assert stat.S_IMODE(file.path.stat().st_mode) == 0o600
    assert file.load() == [token]


def test_add_refuses_bad_names_roles_and_bindings(file: TokenFile) -> None:
    with pytest.raises(ValidationError) as bad_role:
        file.add("ci", "admin")
    assert bad_role.value.field == "role"
    with pytest.raises(ValidationError) as bad_name:
        file.add("../x", "read")
    assert bad_name.value.field == "name"
    with pytest.raises(ValidationError) as unbound:
        file.add("beat", "heartbeat")
    assert unbound.value.field == "instance"
    with pytest.raises(ValidationError) as bound_reader:
        file.add("r", "read", instance="web-1")
    assert bound_reader.value.field == "instance"
    assert not file.path.exists(), "nothing written for refused tokens"
    file.add("ci", "read")
    with pytest.raises(ConflictError):
        file.add("ci", "deployer")


def test_revoke_removes_only_that_token(file: TokenFile) -> None:
    _, keep = file.add("keep", "read")
    _, gone = file.add("gone", "deployer")
    file.revoke("gone")
    registry = TokenRegistry(file)
    assert registry.match(gone) is None
    assert (found := registry.match(keep)) is not None and found.name == "keep"
    with pytest.raises(NotFoundError):
        file.revoke("gone")


def test_a_malformed_file_is_a_config_error_naming_the_entry(file: TokenFile) -> None:
    file.path.parent.mkdir(parents=True)
    file.path.write_text(yaml.safe_dump({"tokens": [{"name": "x", "role": "read",
                                                     "sha256": "nothex",
                                                     "created_at": "2026-01-01T00:00:00Z"}]}))
    with pytest.raises(ConfigError, match=r"tokens\[0\].*sha256"):
        file.load()


def test_the_registry_sees_a_new_token_without_a_restart(file: TokenFile) -> None:
    registry = TokenRegistry(file)
    assert len(registry) == 0
    _, secret = file.add("later", "read")
    assert (found := registry.match(secret)) is not None and found.name == "later"


@pytest.mark.parametrize(("text", "seconds"), [("90s", 90), ("15m", 900), ("12h", 43200),
                                               ("30d", 2592000)])
def test_durations(text: str, seconds: int) -> None:
    assert parse_duration("--expires-in", text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "0s", "10", "1w", "-5m", "1.5h"])
def test_bad_durations_name_the_option(text: str) -> None:
    with pytest.raises(ValidationError) as err:
        parse_duration("--expires-in", text)
    assert err.value.field == "--expires-in"


def _auth(file: TokenFile, limiter: FailureLimiter | None = None) -> Authenticator:
    return Authenticator(TokenRegistry(file), limiter)


def test_roles(file: TokenFile) -> None:
    _, reader = file.add("r", "read")
    _, deployer = file.add("d", "deployer")
    _, beat = file.add("b", "heartbeat", "web-1")
    auth = _auth(file)
    assert auth.check(f"Bearer {deployer}", "c", Role.READ, "GET /").name == "d"
    assert auth.check(f"Bearer {deployer}", "c", Role.DEPLOYER, "POST /").name == "d"
    assert auth.check(f"bearer {reader}", "c", Role.READ, "GET /").name == "r"
    assert auth.check(f"Bearer {beat}", "c", Role.HEARTBEAT, "POST /", "web-1").name == "b"
    refusals = [
        (reader, Role.DEPLOYER, ""), (beat, Role.READ, ""), (deployer, Role.HEARTBEAT, "web-1"),
        (beat, Role.HEARTBEAT, "web-2"),
    ]
    for secret, needs, instance in refusals:
        with pytest.raises(AuthRefused) as refused:
            auth.check(f"Bearer {secret}", "c", needs, "POST /", instance)
        assert refused.value.status == 403, (needs, instance)


def test_missing_wrong_and_expired_tokens_are_401_and_never_logged(
        file: TokenFile, caplog: pytest.LogCaptureFixture) -> None:
    _, fresh = file.add("fresh", "read")
    _, old = file.add("old", "read", expires_in=timedelta(seconds=1))
    data = yaml.safe_load(file.path.read_text())
    data["tokens"][1]["expires_at"] = "2020-01-01T00:00:00.000000Z"
    file.path.write_text(yaml.safe_dump(data))
    auth = _auth(file)
    caplog.set_level(logging.WARNING, "floy.http")
    for header in (None, "", "Basic abc", "Bearer ", f"Bearer {fresh}x", f"Bearer {old}"):
        with pytest.raises(AuthRefused) as refused:
            auth.check(header, "10.9.9.9", Role.READ, "GET /v1/services")
        assert refused.value.status == 401
    assert "expired" in caplog.text and "10.9.9.9" in caplog.text
    assert fresh not in caplog.text and old not in caplog.text


def test_failed_attempts_are_limited_per_client(file: TokenFile) -> None:
    _, good = file.add("good", "read")
    now = [0.0]
    auth = _auth(file, FailureLimiter(max_failures=3, window=60, clock=lambda: now[0]))
    for _ in range(3):
        with pytest.raises(AuthRefused):
            auth.check("Bearer wrong", "a", Role.READ, "GET /")
    with pytest.raises(AuthRefused) as limited:
        auth.check(f"Bearer {good}", "a", Role.READ, "GET /")
    assert limited.value.status == 429 and 1 <= limited.value.retry_after <= 61
    assert auth.check(f"Bearer {good}", "b", Role.READ, "GET /").name == "good", \
        "another client is not limited"
    now[0] = 61.0
    assert auth.check(f"Bearer {good}", "a", Role.READ, "GET /").name == "good", \
        "the window passed"
