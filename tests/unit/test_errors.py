"""The error hierarchy: exit codes, messages and the CLI's JSON form."""

from __future__ import annotations

import pickle

import pytest

from orchestrator.errors import (
    ConfigError,
    ConflictError,
    ExecutionError,
    ExitCode,
    FloyError,
    NotFoundError,
    ValidationError,
)


def test_exit_codes_are_distinct_and_fixed() -> None:
    values = [code.value for code in ExitCode]
    assert len(values) == len(set(values))
    assert {code.name: code.value for code in ExitCode} == {
        "SUCCESS": 0,
        "RUN_FAILED": 1,
        "BAD_INPUT": 2,
        "NOT_FOUND": 3,
        "CONFLICT": 4,
        "EXECUTION": 5,
        "CONFIG": 6,
        "STILL_RUNNING": 7,
        "INTERNAL": 70,
        "INTERRUPTED": 130,
    }


@pytest.mark.parametrize(
    ("error", "code", "exit_code", "message"),
    [
        (
            ValidationError("instances[3]", "must not be empty"),
            "validation",
            ExitCode.BAD_INPUT,
            "invalid instances[3]: must not be empty",
        ),
        (
            NotFoundError("deployment", "deploy-1"),
            "not_found",
            ExitCode.NOT_FOUND,
            "deployment not found: deploy-1",
        ),
        (
            ConflictError("instance i-1 is busy", key="i-1"),
            "conflict",
            ExitCode.CONFLICT,
            "instance i-1 is busy",
        ),
        (
            ExecutionError("ansible-runner is not installed"),
            "execution",
            ExitCode.EXECUTION,
            "ansible-runner is not installed",
        ),
        (
            ConfigError("database is read-only"),
            "config",
            ExitCode.CONFIG,
            "database is read-only",
        ),
        (FloyError("boom"), "internal", ExitCode.INTERNAL, "boom"),
    ],
)
def test_message_code_and_exit(
    error: FloyError, code: str, exit_code: ExitCode, message: str
) -> None:
    assert isinstance(error, FloyError)
    assert str(error) == message
    assert error.exit_code is exit_code
    assert error.to_dict()["error"] == code
    assert error.to_dict()["message"] == message


def test_subclass_exit_codes_are_distinct() -> None:
    classes: list[type[FloyError]] = [
        ValidationError,
        NotFoundError,
        ConflictError,
        ExecutionError,
        ConfigError,
    ]
    codes = {cls.exit_code for cls in classes}
    assert len(codes) == len(classes)
    assert ExitCode.SUCCESS not in codes


def test_structured_fields() -> None:
    v = ValidationError("package_url", "must be an https:// URL")
    assert (v.field, v.reason) == ("package_url", "must be an https:// URL")
    assert v.to_dict() == {
        "error": "validation",
        "message": "invalid package_url: must be an https:// URL",
        "field": "package_url",
    }
    n = NotFoundError("service", "user-service")
    assert (n.kind, n.key) == ("service", "user-service")
    assert n.to_dict() == {
        "error": "not_found",
        "message": "service not found: user-service",
        "kind": "service",
        "key": "user-service",
    }
    assert ConflictError("deploy ID reused", key="d-1").to_dict() == {
        "error": "conflict",
        "message": "deploy ID reused",
        "key": "d-1",
    }
    assert ConflictError("busy").to_dict() == {"error": "conflict", "message": "busy"}


@pytest.mark.parametrize(
    "error",
    [
        ValidationError("service", "must not be empty"),
        NotFoundError("deployment", "d-1"),
        ConflictError("busy", key="i-1"),
        ExecutionError("worker died"),
        ConfigError("bad settings"),
    ],
)
def test_errors_survive_pickling(error: FloyError) -> None:
    # Errors may cross a process boundary from a worker.
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error)
    assert str(copy) == str(error)
    assert copy.to_dict() == error.to_dict()
