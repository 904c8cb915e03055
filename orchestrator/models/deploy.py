"""DeployExecutor: input and answers of ``execute_deployment`` and ``cancel_deployment``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from orchestrator.models._reader import _as_tuple, _top
from orchestrator.models.common import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_RETRY_COUNT,
    DEFAULT_TIMEOUT,
    Status,
)
from orchestrator.timefmt import format_optional, format_time


@dataclass(frozen=True, slots=True)
class DeployParams:
    """Input of ``execute_deployment`` (spec ``DeployParams``).

    Extensions: ``batch_size`` ("N" instances or "N%" of them per serial batch),
    ``max_failures`` (failed instances tolerated before the run stops),
    ``package_sha256`` (checked on each host when set), ``auto_rollback``, ``node`` (the
    execution node that runs the playbook), ``steps`` (a canary strategy replacing
    ``batch_size``: batches and pauses, see :mod:`orchestrator.domain.steps`) and
    ``analysis`` (the check run between batches, see :mod:`orchestrator.domain.analysis`).
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
    node: str = ""  # run the playbook on this execution node ("": on the worker)
    steps: tuple[str, ...] = ()  # "1", "10%", "pause", "pause 5m", ... (empty: batch_size)
    analysis: Mapping[str, Any] | None = None  # the analysis definition, as JSON

    def __post_init__(self) -> None:
        _as_tuple(self, "instances")
        _as_tuple(self, "steps")

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
            "node": self.node,
            "steps": list(self.steps),
            "analysis": None if self.analysis is None else dict(self.analysis),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DeployParams:
        """Build from JSON; unknown keys are refused. ``batch_size`` may be an int;
        ``steps`` a list of items (strings, or integers for batches) or one
        comma-separated string."""
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
            node=r.get_str("node", ""),
            steps=r.get_steps("steps"),
            analysis=r.get_object("analysis"),
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
