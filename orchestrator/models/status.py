"""DeployExecutor: the answer of ``get_deployment_status``, for any run."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from orchestrator.models._reader import _as_tuple, _Reader, _top
from orchestrator.models.canary import CanaryStatus, read_canary
from orchestrator.models.common import DEFAULT_BATCH_SIZE, KIND_DEPLOY, Status
from orchestrator.timefmt import format_optional, format_time


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
    while the run is not terminal), and ``canary`` (a stepped deployment's steps, pause,
    decisions and analysis; None for a run without steps).
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
    canary: CanaryStatus | None = None

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
            "canary": None if self.canary is None else self.canary.to_dict(),
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
            canary=read_canary(data),
        )
