"""VersionManager: inputs and answers of the version and instance queries."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from orchestrator.models._reader import _as_tuple, _Reader, _top
from orchestrator.models.common import _INSTANCE_SPEC_KEYS, DEFAULT_LIMIT, DEFAULT_OFFSET
from orchestrator.timefmt import format_optional, format_time


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


# --- Registry input (not in the spec) ---------------------------------------


@dataclass(frozen=True, slots=True)
class InstanceSpec:
    """An instance to register: where it is and free-form string ``metadata``.

    ``metadata`` is a plain ``dict[str, str]``; it never carries connection
    variables (see :func:`orchestrator.domain.validation.validate_metadata`).
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
