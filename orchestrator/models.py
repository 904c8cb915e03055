"""The contract's value types: the interface spec's structs, 1:1 in snake_case.

Each type is a frozen, slotted dataclass with ``to_dict()``, whose keys are
exactly the spec's JSON tags plus the documented extension keys, and a
``from_dict()`` classmethod that round-trips it. ``from_dict`` checks JSON
types only (a bool is not an int, arrays are lists or tuples, metadata is a
``dict[str, str]``) and raises :class:`~orchestrator.errors.ValidationError`
naming the offending field by its path (``progress.total``,
``instances[2].instance_id``). Semantic checks (names, URLs, ranges) live in
:mod:`orchestrator.validation`.

Conventions:

- Lists are stored as tuples (a list passed to a constructor is converted).
- ``dict`` fields (``metadata``, ``version_summary``) are plain dicts; the
  dataclass is frozen but the dict is not, and a value holding one cannot be
  hashed. ``to_dict`` copies them.
- Times are timezone-aware UTC ``datetime`` objects, written with
  :func:`~orchestrator.timefmt.format_time`; ``None`` is written as ``null``.
- ``from_dict`` of a *params* type (input) rejects unknown keys; ``from_dict``
  of a *result* type ignores them, so an older client reads a newer server.
- Extension keys (not in the spec) are optional in ``from_dict``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from orchestrator.errors import ValidationError
from orchestrator.timefmt import format_optional, format_time, parse_time

DEFAULT_TIMEOUT = 300
DEFAULT_RETRY_COUNT = 3
DEFAULT_LIMIT = 100
DEFAULT_OFFSET = 0
DEFAULT_BATCH_SIZE = "1"

KIND_DEPLOY = "deploy"
KIND_ROLLBACK = "rollback"


class Status(StrEnum):
    """Status word of a run (deployment or rollback) and of one instance in it."""

    PENDING = "pending"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        """True for ``completed``, ``failed`` and ``cancelled``: nothing more will happen."""
        return self in (Status.COMPLETED, Status.FAILED, Status.CANCELLED)


#: JSON tags of each spec struct, transcribed from interface-spec.md.
SPEC_KEYS: dict[str, frozenset[str]] = {
    "DeployParams": frozenset(
        {"service", "version", "instances", "package_url", "deploy_id", "timeout", "retry_count"}
    ),
    "DeployResult": frozenset(
        {"deploy_id", "service", "version", "status", "total_instances", "started_at"}
    ),
    "DeployStatus": frozenset(
        {
            "deploy_id",
            "service",
            "version",
            "status",
            "progress",
            "instances",
            "started_at",
            "updated_at",
        }
    ),
    "DeployStatus.progress": frozenset({"total", "completed", "failed", "pending"}),
    "DeployStatus.instances[]": frozenset(
        {
            "instance_id",
            "current_version",
            "target_version",
            "started_at",
            "completed_at",
            "error_message",
        }
    ),
    "CancelResult": frozenset({"deploy_id", "status", "cancelled_at"}),
    "ServiceVersions": frozenset(
        {"service", "instances", "version_summary", "total_instances", "updated_at"}
    ),
    "ServiceVersions.instances[]": frozenset({"instance_id", "version", "last_updated"}),
    "InstanceQueryParams": frozenset({"service_name", "version", "limit", "offset"}),
    "ServiceInstances": frozenset({"service", "instances", "total", "limit", "offset"}),
    "ServiceInstances.instances[]": frozenset(
        {"instance_id", "host", "port", "version", "last_heartbeat", "metadata"}
    ),
    "InstanceRollbackParams": frozenset(
        {"instance_id", "target_version", "package_url", "force", "timeout"}
    ),
    "RollbackResult": frozenset(
        {"rollback_id", "instance_id", "target_version", "status", "started_at"}
    ),
    "BatchRollbackParams": frozenset(
        {"service", "target_version", "package_url", "instances", "force", "timeout"}
    ),
    "BatchRollbackResult": frozenset(
        {
            "rollback_id",
            "service",
            "target_version",
            "status",
            "instances",
            "total_instances",
            "started_at",
        }
    ),
}

#: Keys floy adds beyond the spec, per spec struct; all optional on input.
EXTENSION_KEYS: dict[str, frozenset[str]] = {
    **{name: frozenset() for name in SPEC_KEYS},
    "DeployParams": frozenset({"batch_size", "max_failures", "package_sha256", "auto_rollback"}),
    "DeployStatus": frozenset(
        {"kind", "error_message", "batch_size", "max_failures", "rollback_id", "finished_at"}
    ),
    "DeployStatus.progress": frozenset({"in_progress", "cancelled"}),
    "DeployStatus.instances[]": frozenset(
        {"status", "attempts", "phase", "batch", "previous_version"}
    ),
    "InstanceRollbackParams": frozenset({"rollback_id"}),
    "BatchRollbackParams": frozenset({"batch_size", "max_failures", "rollback_id"}),
}

_INSTANCE_SPEC_KEYS = frozenset({"instance_id", "service", "host", "port", "metadata"})


def _all_keys(name: str) -> frozenset[str]:
    return SPEC_KEYS[name] | EXTENSION_KEYS[name]


def _type_name(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (list, tuple)):
        return "array"
    if isinstance(value, Mapping):
        return "object"
    return type(value).__name__


class _Reader:
    """Typed access to one JSON object; every error names the value's path."""

    __slots__ = ("_data", "_prefix")

    def __init__(self, data: object, prefix: str, what: str = "") -> None:
        # prefix is "" for a top-level object; what then names it in errors.
        if not isinstance(data, Mapping):
            raise ValidationError(prefix or what, f"must be a JSON object, not {_type_name(data)}")
        self._data: Mapping[str, Any] = data
        self._prefix = prefix

    def path(self, key: str) -> str:
        return f"{self._prefix}.{key}" if self._prefix else key

    def has(self, key: str) -> bool:
        return key in self._data

    def raw(self, key: str) -> object:
        if key not in self._data:
            raise ValidationError(self.path(key), "required field is missing")
        return self._data[key]

    def _wrong(self, key: str, expected: str, value: object) -> ValidationError:
        return ValidationError(self.path(key), f"must be {expected}, not {_type_name(value)}")

    def get_str(self, key: str, default: str | None = None) -> str:
        if default is not None and key not in self._data:
            return default
        value = self.raw(key)
        if not isinstance(value, str):
            raise self._wrong(key, "a string", value)
        return value

    def get_int(self, key: str, default: int | None = None) -> int:
        if default is not None and key not in self._data:
            return default
        value = self.raw(key)
        if not isinstance(value, int) or isinstance(value, bool):
            raise self._wrong(key, "an integer", value)
        return value

    def get_bool(self, key: str, default: bool | None = None) -> bool:
        if default is not None and key not in self._data:
            return default
        value = self.raw(key)
        if not isinstance(value, bool):
            raise self._wrong(key, "a boolean", value)
        return value

    def get_time(self, key: str, nullable: bool = False, optional: bool = False) -> datetime | None:
        if optional and key not in self._data:
            return None
        value = self.raw(key)
        if value is None and nullable:
            return None
        if not isinstance(value, str):
            raise self._wrong(key, "an RFC 3339 timestamp string", value)
        try:
            return parse_time(value)
        except ValueError:
            raise ValidationError(self.path(key), "must be an RFC 3339 timestamp") from None

    def get_required_time(self, key: str) -> datetime:
        value = self.get_time(key)
        assert value is not None  # get_time returns None only when nullable/optional
        return value

    def get_status(self, key: str, default: Status | None = None) -> Status:
        if default is not None and key not in self._data:
            return default
        value = self.get_str(key)
        try:
            return Status(value)
        except ValueError:
            words = ", ".join(s.value for s in Status)
            raise ValidationError(self.path(key), f"must be one of {words}") from None

    def get_batch_size(self, key: str) -> str:
        if key not in self._data:
            return DEFAULT_BATCH_SIZE
        value = self._data[key]
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        if not isinstance(value, str):
            raise self._wrong(key, "an integer or a string", value)
        return value

    def get_str_tuple(self, key: str) -> tuple[str, ...]:
        value = self.raw(key)
        if not isinstance(value, (list, tuple)):
            raise self._wrong(key, "an array of strings", value)
        for i, item in enumerate(value):
            if not isinstance(item, str):
                raise ValidationError(
                    f"{self.path(key)}[{i}]", f"must be a string, not {_type_name(item)}"
                )
        return tuple(value)

    def get_str_map(self, key: str, optional: bool = False) -> dict[str, str]:
        if optional and key not in self._data:
            return {}
        value = self.raw(key)
        if not isinstance(value, Mapping):
            raise self._wrong(key, "an object of strings", value)
        out: dict[str, str] = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise ValidationError(self.path(key), "keys must be strings")
            if not isinstance(v, str):
                raise ValidationError(
                    f"{self.path(key)}.{k}", f"must be a string, not {_type_name(v)}"
                )
            out[k] = v
        return out

    def get_int_map(self, key: str) -> dict[str, int]:
        value = self.raw(key)
        if not isinstance(value, Mapping):
            raise self._wrong(key, "an object of integers", value)
        out: dict[str, int] = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise ValidationError(self.path(key), "keys must be strings")
            if not isinstance(v, int) or isinstance(v, bool):
                raise ValidationError(
                    f"{self.path(key)}.{k}", f"must be an integer, not {_type_name(v)}"
                )
            out[k] = v
        return out

    def child(self, key: str) -> _Reader:
        return _Reader(self.raw(key), self.path(key))

    def children(self, key: str) -> list[_Reader]:
        value = self.raw(key)
        if not isinstance(value, (list, tuple)):
            raise self._wrong(key, "an array of objects", value)
        return [_Reader(item, f"{self.path(key)}[{i}]") for i, item in enumerate(value)]

    def reject_unknown(self, allowed: frozenset[str]) -> None:
        for key in self._data:
            if key not in allowed:
                raise ValidationError(self.path(str(key)), "unknown field")


def _as_tuple(obj: object, name: str) -> None:
    """Store a list given for a tuple field as a tuple (frozen-safe).

    Only lists are converted: a string stays a string, for validation to refuse.
    """
    value = getattr(obj, name)
    if isinstance(value, list):
        object.__setattr__(obj, name, tuple(value))


def _top(data: Mapping[str, Any], name: str, strict: bool) -> _Reader:
    reader = _Reader(data, "", name)
    if strict:
        reader.reject_unknown(_all_keys(name))
    return reader


# --- DeployExecutor ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DeployParams:
    """Input of ``execute_deployment`` (spec ``DeployParams``).

    Extensions: ``batch_size`` ("N" instances or "N%" of them per serial batch),
    ``max_failures`` (failed instances tolerated before the run stops),
    ``package_sha256`` (checked on each host when set) and ``auto_rollback``.
    """

    service: str
    version: str
    instances: tuple[str, ...]
    package_url: str
    deploy_id: str
    timeout: int = DEFAULT_TIMEOUT
    retry_count: int = DEFAULT_RETRY_COUNT
    batch_size: str = DEFAULT_BATCH_SIZE
    max_failures: int = 0
    package_sha256: str = ""
    auto_rollback: bool = False

    def __post_init__(self) -> None:
        _as_tuple(self, "instances")

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON object: spec tags plus extension keys."""
        return {
            "service": self.service,
            "version": self.version,
            "instances": list(self.instances),
            "package_url": self.package_url,
            "deploy_id": self.deploy_id,
            "timeout": self.timeout,
            "retry_count": self.retry_count,
            "batch_size": self.batch_size,
            "max_failures": self.max_failures,
            "package_sha256": self.package_sha256,
            "auto_rollback": self.auto_rollback,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DeployParams:
        """Build from JSON; unknown keys are refused. ``batch_size`` may be an int."""
        r = _top(data, "DeployParams", strict=True)
        return cls(
            service=r.get_str("service"),
            version=r.get_str("version"),
            instances=r.get_str_tuple("instances"),
            package_url=r.get_str("package_url"),
            deploy_id=r.get_str("deploy_id"),
            timeout=r.get_int("timeout", DEFAULT_TIMEOUT),
            retry_count=r.get_int("retry_count", DEFAULT_RETRY_COUNT),
            batch_size=r.get_batch_size("batch_size"),
            max_failures=r.get_int("max_failures", 0),
            package_sha256=r.get_str("package_sha256", ""),
            auto_rollback=r.get_bool("auto_rollback", False),
        )


@dataclass(frozen=True, slots=True)
class DeployResult:
    """Answer of ``execute_deployment`` (spec ``DeployResult``)."""

    deploy_id: str
    service: str
    version: str
    status: Status
    total_instances: int
    started_at: datetime

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON object with exactly the spec tags."""
        return {
            "deploy_id": self.deploy_id,
            "service": self.service,
            "version": self.version,
            "status": self.status.value,
            "total_instances": self.total_instances,
            "started_at": format_time(self.started_at),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DeployResult:
        """Build from JSON; unknown keys are ignored."""
        r = _top(data, "DeployResult", strict=False)
        return cls(
            deploy_id=r.get_str("deploy_id"),
            service=r.get_str("service"),
            version=r.get_str("version"),
            status=r.get_status("status"),
            total_instances=r.get_int("total_instances"),
            started_at=r.get_required_time("started_at"),
        )


@dataclass(frozen=True, slots=True)
class Progress:
    """Counters of a run (spec ``DeployStatus.progress``).

    ``pending`` counts every instance that has not finished, whether waiting or
    running; ``in_progress`` (extension) is the running subset of it, and
    ``cancelled`` (extension) counts instances stopped by a cancel. Always
    ``total == completed + failed + cancelled + pending``.
    """

    total: int
    completed: int
    failed: int
    pending: int
    in_progress: int = 0
    cancelled: int = 0

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON object: spec tags plus ``in_progress`` and ``cancelled``."""
        return {
            "total": self.total,
            "completed": self.completed,
            "failed": self.failed,
            "pending": self.pending,
            "in_progress": self.in_progress,
            "cancelled": self.cancelled,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Progress:
        """Build from JSON; unknown keys are ignored."""
        return cls._read(_top(data, "Progress", strict=False))

    @classmethod
    def _read(cls, r: _Reader) -> Progress:
        return cls(
            total=r.get_int("total"),
            completed=r.get_int("completed"),
            failed=r.get_int("failed"),
            pending=r.get_int("pending"),
            in_progress=r.get_int("in_progress", 0),
            cancelled=r.get_int("cancelled", 0),
        )


@dataclass(frozen=True, slots=True)
class InstanceStatus:
    """One instance in a run (spec ``DeployStatus.instances[]``).

    ``completed_at`` is ``None`` until the instance has finished. Extensions:
    its own ``status``, ``attempts`` made, current ``phase`` (e.g. "fetch"),
    the 1-based ``batch`` it belongs to, and the ``previous_version`` it ran
    before this run touched it.
    """

    instance_id: str
    current_version: str
    target_version: str
    started_at: datetime | None
    completed_at: datetime | None
    error_message: str
    status: Status = Status.PENDING
    attempts: int = 0
    phase: str = ""
    batch: int = 0
    previous_version: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON object: spec tags plus extension keys; unset times are null."""
        return {
            "instance_id": self.instance_id,
            "current_version": self.current_version,
            "target_version": self.target_version,
            "started_at": format_optional(self.started_at),
            "completed_at": format_optional(self.completed_at),
            "error_message": self.error_message,
            "status": self.status.value,
            "attempts": self.attempts,
            "phase": self.phase,
            "batch": self.batch,
            "previous_version": self.previous_version,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> InstanceStatus:
        """Build from JSON; unknown keys are ignored."""
        return cls._read(_top(data, "InstanceStatus", strict=False))

    @classmethod
    def _read(cls, r: _Reader) -> InstanceStatus:
        return cls(
            instance_id=r.get_str("instance_id"),
            current_version=r.get_str("current_version"),
            target_version=r.get_str("target_version"),
            started_at=r.get_time("started_at", nullable=True),
            completed_at=r.get_time("completed_at", nullable=True),
            error_message=r.get_str("error_message"),
            status=r.get_status("status", Status.PENDING),
            attempts=r.get_int("attempts", 0),
            phase=r.get_str("phase", ""),
            batch=r.get_int("batch", 0),
            previous_version=r.get_str("previous_version", ""),
        )


@dataclass(frozen=True, slots=True)
class DeployStatus:
    """Answer of ``get_deployment_status`` (spec ``DeployStatus``), for any run.

    Extensions: ``kind`` ("deploy" or "rollback"), the run's ``error_message``,
    its ``batch_size`` and ``max_failures``, ``rollback_id`` of the automatic
    rollback started for this deployment (if any), and ``finished_at`` (None
    while the run is not terminal).
    """

    deploy_id: str
    service: str
    version: str
    status: Status
    progress: Progress
    instances: tuple[InstanceStatus, ...]
    started_at: datetime
    updated_at: datetime
    kind: str = KIND_DEPLOY
    error_message: str = ""
    batch_size: str = DEFAULT_BATCH_SIZE
    max_failures: int = 0
    rollback_id: str = ""
    finished_at: datetime | None = None

    def __post_init__(self) -> None:
        _as_tuple(self, "instances")

    @staticmethod
    def progress_from(instances: Iterable[InstanceStatus]) -> Progress:
        """Count instance statuses into a :class:`Progress`."""
        counts = dict.fromkeys(Status, 0)
        for inst in instances:
            counts[inst.status] += 1
        unfinished = counts[Status.PENDING] + counts[Status.IN_PROGRESS]
        return Progress(
            total=sum(counts.values()),
            completed=counts[Status.COMPLETED],
            failed=counts[Status.FAILED],
            pending=unfinished,
            in_progress=counts[Status.IN_PROGRESS],
            cancelled=counts[Status.CANCELLED],
        )

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON object: spec tags plus extension keys."""
        return {
            "deploy_id": self.deploy_id,
            "service": self.service,
            "version": self.version,
            "status": self.status.value,
            "progress": self.progress.to_dict(),
            "instances": [inst.to_dict() for inst in self.instances],
            "started_at": format_time(self.started_at),
            "updated_at": format_time(self.updated_at),
            "kind": self.kind,
            "error_message": self.error_message,
            "batch_size": self.batch_size,
            "max_failures": self.max_failures,
            "rollback_id": self.rollback_id,
            "finished_at": format_optional(self.finished_at),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DeployStatus:
        """Build from JSON; unknown keys are ignored."""
        r = _top(data, "DeployStatus", strict=False)
        return cls(
            deploy_id=r.get_str("deploy_id"),
            service=r.get_str("service"),
            version=r.get_str("version"),
            status=r.get_status("status"),
            progress=Progress._read(r.child("progress")),
            instances=tuple(InstanceStatus._read(c) for c in r.children("instances")),
            started_at=r.get_required_time("started_at"),
            updated_at=r.get_required_time("updated_at"),
            kind=r.get_str("kind", KIND_DEPLOY),
            error_message=r.get_str("error_message", ""),
            batch_size=r.get_batch_size("batch_size"),
            max_failures=r.get_int("max_failures", 0),
            rollback_id=r.get_str("rollback_id", ""),
            finished_at=r.get_time("finished_at", nullable=True, optional=True),
        )


@dataclass(frozen=True, slots=True)
class CancelResult:
    """Answer of ``cancel_deployment`` (spec ``CancelResult``).

    ``cancelled_at`` is None when the run had already finished otherwise.
    """

    deploy_id: str
    status: Status
    cancelled_at: datetime | None

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON object with exactly the spec tags."""
        return {
            "deploy_id": self.deploy_id,
            "status": self.status.value,
            "cancelled_at": format_optional(self.cancelled_at),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CancelResult:
        """Build from JSON; unknown keys are ignored."""
        r = _top(data, "CancelResult", strict=False)
        return cls(
            deploy_id=r.get_str("deploy_id"),
            status=r.get_status("status"),
            cancelled_at=r.get_time("cancelled_at", nullable=True),
        )


# --- VersionManager ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class InstanceVersion:
    """One instance's running version (spec ``ServiceVersions.instances[]``)."""

    instance_id: str
    version: str
    last_updated: datetime | None

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON object with exactly the spec tags."""
        return {
            "instance_id": self.instance_id,
            "version": self.version,
            "last_updated": format_optional(self.last_updated),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> InstanceVersion:
        """Build from JSON; unknown keys are ignored."""
        return cls._read(_top(data, "InstanceVersion", strict=False))

    @classmethod
    def _read(cls, r: _Reader) -> InstanceVersion:
        return cls(
            instance_id=r.get_str("instance_id"),
            version=r.get_str("version"),
            last_updated=r.get_time("last_updated", nullable=True),
        )


@dataclass(frozen=True, slots=True)
class ServiceVersions:
    """Answer of ``get_service_instance_versions`` (spec ``ServiceVersions``).

    ``version_summary`` maps a version to the number of instances running it.
    """

    service: str
    instances: tuple[InstanceVersion, ...]
    version_summary: dict[str, int]
    total_instances: int
    updated_at: datetime

    def __post_init__(self) -> None:
        _as_tuple(self, "instances")

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON object with exactly the spec tags."""
        return {
            "service": self.service,
            "instances": [inst.to_dict() for inst in self.instances],
            "version_summary": dict(self.version_summary),
            "total_instances": self.total_instances,
            "updated_at": format_time(self.updated_at),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ServiceVersions:
        """Build from JSON; unknown keys are ignored."""
        r = _top(data, "ServiceVersions", strict=False)
        return cls(
            service=r.get_str("service"),
            instances=tuple(InstanceVersion._read(c) for c in r.children("instances")),
            version_summary=r.get_int_map("version_summary"),
            total_instances=r.get_int("total_instances"),
            updated_at=r.get_required_time("updated_at"),
        )


@dataclass(frozen=True, slots=True)
class InstanceQueryParams:
    """Input of ``get_service_instances`` (spec ``InstanceQueryParams``).

    An empty ``version`` means no version filter.
    """

    service_name: str
    version: str = ""
    limit: int = DEFAULT_LIMIT
    offset: int = DEFAULT_OFFSET

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON object with exactly the spec tags."""
        return {
            "service_name": self.service_name,
            "version": self.version,
            "limit": self.limit,
            "offset": self.offset,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> InstanceQueryParams:
        """Build from JSON; unknown keys are refused."""
        r = _top(data, "InstanceQueryParams", strict=True)
        return cls(
            service_name=r.get_str("service_name"),
            version=r.get_str("version", ""),
            limit=r.get_int("limit", DEFAULT_LIMIT),
            offset=r.get_int("offset", DEFAULT_OFFSET),
        )


@dataclass(frozen=True, slots=True)
class InstanceInfo:
    """One registered instance (spec ``ServiceInstances.instances[]``).

    ``metadata`` is a plain ``dict[str, str]``.
    """

    instance_id: str
    host: str
    port: int
    version: str
    last_heartbeat: datetime | None
    metadata: dict[str, str]

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON object with exactly the spec tags."""
        return {
            "instance_id": self.instance_id,
            "host": self.host,
            "port": self.port,
            "version": self.version,
            "last_heartbeat": format_optional(self.last_heartbeat),
            "metadata": dict(self.metadata),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> InstanceInfo:
        """Build from JSON; unknown keys are ignored."""
        return cls._read(_top(data, "InstanceInfo", strict=False))

    @classmethod
    def _read(cls, r: _Reader) -> InstanceInfo:
        return cls(
            instance_id=r.get_str("instance_id"),
            host=r.get_str("host"),
            port=r.get_int("port"),
            version=r.get_str("version"),
            last_heartbeat=r.get_time("last_heartbeat", nullable=True),
            metadata=r.get_str_map("metadata"),
        )


@dataclass(frozen=True, slots=True)
class ServiceInstances:
    """Answer of ``get_service_instances`` (spec ``ServiceInstances``).

    ``total`` counts all matching instances, not just this page.
    """

    service: str
    instances: tuple[InstanceInfo, ...]
    total: int
    limit: int
    offset: int

    def __post_init__(self) -> None:
        _as_tuple(self, "instances")

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON object with exactly the spec tags."""
        return {
            "service": self.service,
            "instances": [inst.to_dict() for inst in self.instances],
            "total": self.total,
            "limit": self.limit,
            "offset": self.offset,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ServiceInstances:
        """Build from JSON; unknown keys are ignored."""
        r = _top(data, "ServiceInstances", strict=False)
        return cls(
            service=r.get_str("service"),
            instances=tuple(InstanceInfo._read(c) for c in r.children("instances")),
            total=r.get_int("total"),
            limit=r.get_int("limit"),
            offset=r.get_int("offset"),
        )


# --- RollbackManager --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class InstanceRollbackParams:
    """Input of ``rollback_instance`` (spec ``InstanceRollbackParams``).

    An empty ``package_url`` means the package already staged on the host.
    Extension: ``rollback_id``; the service generates one when it is empty.
    """

    instance_id: str
    target_version: str
    package_url: str = ""
    force: bool = False
    timeout: int = DEFAULT_TIMEOUT
    rollback_id: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON object: spec tags plus ``rollback_id``."""
        return {
            "instance_id": self.instance_id,
            "target_version": self.target_version,
            "package_url": self.package_url,
            "force": self.force,
            "timeout": self.timeout,
            "rollback_id": self.rollback_id,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> InstanceRollbackParams:
        """Build from JSON; unknown keys are refused."""
        r = _top(data, "InstanceRollbackParams", strict=True)
        return cls(
            instance_id=r.get_str("instance_id"),
            target_version=r.get_str("target_version"),
            package_url=r.get_str("package_url", ""),
            force=r.get_bool("force", False),
            timeout=r.get_int("timeout", DEFAULT_TIMEOUT),
            rollback_id=r.get_str("rollback_id", ""),
        )


@dataclass(frozen=True, slots=True)
class RollbackResult:
    """Answer of ``rollback_instance`` (spec ``RollbackResult``)."""

    rollback_id: str
    instance_id: str
    target_version: str
    status: Status
    started_at: datetime

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON object with exactly the spec tags."""
        return {
            "rollback_id": self.rollback_id,
            "instance_id": self.instance_id,
            "target_version": self.target_version,
            "status": self.status.value,
            "started_at": format_time(self.started_at),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RollbackResult:
        """Build from JSON; unknown keys are ignored."""
        r = _top(data, "RollbackResult", strict=False)
        return cls(
            rollback_id=r.get_str("rollback_id"),
            instance_id=r.get_str("instance_id"),
            target_version=r.get_str("target_version"),
            status=r.get_status("status"),
            started_at=r.get_required_time("started_at"),
        )


@dataclass(frozen=True, slots=True)
class BatchRollbackParams:
    """Input of ``rollback_batch`` (spec ``BatchRollbackParams``).

    Extensions: ``batch_size``, ``max_failures`` (as for a deployment) and
    ``rollback_id`` (generated by the service when empty).
    """

    service: str
    target_version: str
    instances: tuple[str, ...]
    package_url: str = ""
    force: bool = False
    timeout: int = DEFAULT_TIMEOUT
    batch_size: str = DEFAULT_BATCH_SIZE
    max_failures: int = 0
    rollback_id: str = ""

    def __post_init__(self) -> None:
        _as_tuple(self, "instances")

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON object: spec tags plus extension keys."""
        return {
            "service": self.service,
            "target_version": self.target_version,
            "package_url": self.package_url,
            "instances": list(self.instances),
            "force": self.force,
            "timeout": self.timeout,
            "batch_size": self.batch_size,
            "max_failures": self.max_failures,
            "rollback_id": self.rollback_id,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BatchRollbackParams:
        """Build from JSON; unknown keys are refused. ``batch_size`` may be an int."""
        r = _top(data, "BatchRollbackParams", strict=True)
        return cls(
            service=r.get_str("service"),
            target_version=r.get_str("target_version"),
            instances=r.get_str_tuple("instances"),
            package_url=r.get_str("package_url", ""),
            force=r.get_bool("force", False),
            timeout=r.get_int("timeout", DEFAULT_TIMEOUT),
            batch_size=r.get_batch_size("batch_size"),
            max_failures=r.get_int("max_failures", 0),
            rollback_id=r.get_str("rollback_id", ""),
        )


@dataclass(frozen=True, slots=True)
class BatchRollbackResult:
    """Answer of ``rollback_batch`` (spec ``BatchRollbackResult``)."""

    rollback_id: str
    service: str
    target_version: str
    status: Status
    instances: tuple[str, ...]
    total_instances: int
    started_at: datetime

    def __post_init__(self) -> None:
        _as_tuple(self, "instances")

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON object with exactly the spec tags."""
        return {
            "rollback_id": self.rollback_id,
            "service": self.service,
            "target_version": self.target_version,
            "status": self.status.value,
            "instances": list(self.instances),
            "total_instances": self.total_instances,
            "started_at": format_time(self.started_at),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BatchRollbackResult:
        """Build from JSON; unknown keys are ignored."""
        r = _top(data, "BatchRollbackResult", strict=False)
        return cls(
            rollback_id=r.get_str("rollback_id"),
            service=r.get_str("service"),
            target_version=r.get_str("target_version"),
            status=r.get_status("status"),
            instances=r.get_str_tuple("instances"),
            total_instances=r.get_int("total_instances"),
            started_at=r.get_required_time("started_at"),
        )


# --- Registry input (not in the spec) ---------------------------------------


@dataclass(frozen=True, slots=True)
class InstanceSpec:
    """An instance to register: where it is and free-form string ``metadata``.

    ``metadata`` is a plain ``dict[str, str]``; it never carries connection
    variables (see :func:`orchestrator.validation.validate_metadata`).
    """

    instance_id: str
    service: str
    host: str
    port: int
    metadata: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON object (``instance_id, service, host, port, metadata``)."""
        return {
            "instance_id": self.instance_id,
            "service": self.service,
            "host": self.host,
            "port": self.port,
            "metadata": dict(self.metadata),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> InstanceSpec:
        """Build from JSON; unknown keys are refused, ``metadata`` defaults to ``{}``."""
        r = _Reader(data, "", "InstanceSpec")
        r.reject_unknown(_INSTANCE_SPEC_KEYS)
        return cls(
            instance_id=r.get_str("instance_id"),
            service=r.get_str("service"),
            host=r.get_str("host"),
            port=r.get_int("port"),
            metadata=r.get_str_map("metadata", optional=True),
        )
