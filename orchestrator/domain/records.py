"""Domain records: what floy knows of instances and runs, as frozen values.

The store maps them to rows and back; every other layer passes them around. No I/O here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from orchestrator.domain.request import RunRequest
from orchestrator.models import Status
from orchestrator.timefmt import format_time


class RunKind(StrEnum):
    """What a run does: which playbook carries it."""

    DEPLOY = "deploy"
    ROLLBACK = "rollback"


@dataclass(frozen=True)
class InstanceRecord:
    """A registered instance."""

    instance_id: str
    service: str
    host: str
    port: int
    version: str
    version_updated_at: datetime | None
    last_heartbeat: datetime | None
    metadata: dict[str, str] = field(default_factory=dict)
    observed_version: str | None = None  # what the last probe read on the host
    observed_at: datetime | None = None

    @property
    def drift(self) -> bool:
        """The host was last seen on another version than the one recorded."""
        return self.observed_version is not None and self.observed_version != self.version


def run_is_stale(finished_at: datetime | None, lease_owner: str | None,
                 lease_expires_at: datetime | None, updated_at: datetime, now: datetime,
                 pending_grace: float) -> bool:
    """Unfinished and its worker gone: the lease expired, or no worker claimed the run
    within ``pending_grace`` seconds (one rule for records and for read projections)."""
    if finished_at is not None:
        return False
    if lease_expires_at is not None:
        return lease_expires_at < now
    # updated_at: recorded, or handed back by a stopping worker daemon
    return lease_owner is None and updated_at < now - timedelta(seconds=pending_grace)


@dataclass(frozen=True)
class RunRecord:
    """A deployment or rollback run."""

    run_id: str
    kind: RunKind
    service: str
    version: str
    status: Status
    request: RunRequest
    created_by: str
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None = None
    error_message: str = ""
    cancel_requested_at: datetime | None = None
    lease_owner: str | None = None
    lease_expires_at: datetime | None = None
    worker_pid: int | None = None
    parent_run_id: str | None = None
    rollback_run_id: str | None = None

    def is_stale(self, now: datetime, pending_grace: float) -> bool:
        """Unfinished and its worker gone: the lease expired, or no worker claimed it within
        ``pending_grace`` seconds (the store's sweep for the reaper uses the same test)."""
        return run_is_stale(self.finished_at, self.lease_owner, self.lease_expires_at,
                            self.updated_at, now, pending_grace)


@dataclass(frozen=True)
class RunInstanceRecord:
    """One instance's part in one run."""

    run_id: str
    instance_id: str
    position: int
    batch: int
    status: Status
    target_version: str
    phase: str = ""
    previous_version: str = ""
    current_version: str = ""
    attempts: int = 0
    started_at: datetime | None = None
    completed_at: datetime | None = None
    error_message: str = ""
    package_url: str = ""  # per-instance package of a rollback (from history or the request)
    package_sha256: str = ""


@dataclass(frozen=True)
class RunSummary:
    """One line of a service's history."""

    run_id: str
    kind: str
    version: str
    status: Status
    created_by: str
    started_at: datetime
    finished_at: datetime | None
    total: int
    completed: int
    failed: int
    cancelled: int
    parent_run_id: str | None
    rollback_run_id: str | None
    error_message: str
    service: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON form (times RFC 3339 UTC)."""
        return {
            "run_id": self.run_id,
            "service": self.service,
            "kind": self.kind,
            "version": self.version,
            "status": self.status.value,
            "created_by": self.created_by,
            "started_at": format_time(self.started_at),
            "finished_at": _t(self.finished_at),
            "total": self.total,
            "completed": self.completed,
            "failed": self.failed,
            "cancelled": self.cancelled,
            "parent_run_id": self.parent_run_id or "",
            "rollback_id": self.rollback_run_id or "",
            "error_message": self.error_message,
        }


@dataclass(frozen=True)
class ActionRecord:
    """One mutating call in the audit trail: who did what to which subject, when."""

    at: datetime
    actor: str
    action: str
    service: str
    subject: str
    detail: str

    def to_dict(self) -> dict[str, Any]:
        """JSON form (the time RFC 3339 UTC)."""
        return {"at": format_time(self.at), "actor": self.actor, "action": self.action,
                "subject": self.subject, "detail": self.detail}


@dataclass(frozen=True)
class HeartbeatRecord:
    """What a heartbeat changed: the instance's record and whether it now shows drift."""

    instance_id: str
    service: str
    version: str
    recorded_version: str
    last_heartbeat: datetime
    drift: bool

    def to_dict(self) -> dict[str, Any]:
        """JSON form (the time RFC 3339 UTC)."""
        return {"instance_id": self.instance_id, "version": self.version,
                "recorded_version": self.recorded_version,
                "last_heartbeat": format_time(self.last_heartbeat), "drift": self.drift}


@dataclass(frozen=True)
class ServiceOverview:
    """One service at a glance: its version distribution, drift and newest heartbeat."""

    service: str
    version_summary: dict[str, int]
    drift: tuple[InstanceRecord, ...]
    last_heartbeat: datetime | None

    def to_dict(self) -> dict[str, Any]:
        """JSON form (times RFC 3339 UTC)."""
        return {
            "service": self.service,
            "total_instances": sum(self.version_summary.values()),
            "version_summary": dict(self.version_summary),
            "drift": [{"instance_id": r.instance_id, "version": r.version,
                       "observed_version": r.observed_version or "",
                       "observed_at": _t(r.observed_at)} for r in self.drift],
            "last_heartbeat": _t(self.last_heartbeat),
        }


@dataclass(frozen=True)
class VersionCheck:
    """What a probe read on one instance, against the record."""

    instance_id: str
    recorded_version: str
    observed_version: str
    reachable: bool
    error: str
    adopted: bool

    @property
    def drift(self) -> bool:
        """Reached, and its disk disagrees with the record."""
        return self.reachable and self.observed_version != self.recorded_version

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "instance_id": self.instance_id,
            "recorded_version": self.recorded_version,
            "observed_version": self.observed_version,
            "reachable": self.reachable,
            "drift": self.drift,
            "adopted": self.adopted,
            "error": self.error,
        }


def _t(value: datetime | None) -> str | None:
    return None if value is None else format_time(value)


@dataclass(frozen=True)
class Observation:
    """What the probe saw on one instance.

    ``current_version`` and ``releases`` passed the checks on names (``""``: no release).
    ``refused_version`` is the current version as read when it did not: report it, never
    store it; ``error`` then says why.
    """

    instance_id: str
    reachable: bool
    current_version: str = ""
    releases: tuple[str, ...] = ()
    state: dict[str, Any] = field(default_factory=dict)
    error: str = ""
    refused_version: str = ""

    @property
    def trusted(self) -> bool:
        """Reached, and its current version passed validation: safe to record."""
        return self.reachable and not self.refused_version


class WorkerState(StrEnum):
    """What a ``floy worker`` daemon is doing."""

    RUNNING = "running"  # claiming and carrying runs
    DRAINING = "draining"  # stopping: claims nothing more, finishes or hands back its runs
    STOPPED = "stopped"


@dataclass(frozen=True)
class WorkerRecord:
    """A ``floy worker`` daemon as it last reported itself."""

    name: str  # its lease-owner name: node:pid:random
    node: str
    pid: int
    max_runs: int
    running: int
    state: WorkerState
    started_at: datetime
    heartbeat_at: datetime
    stopped_at: datetime | None = None
