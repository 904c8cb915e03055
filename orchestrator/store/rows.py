"""Row mappers: domain records to column values and back.

A stored value floy cannot read names its table, row and column (a :class:`StoreDataError`),
so a damaged row is reported, never half-read.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from orchestrator.domain.events import InstanceUpdate
from orchestrator.domain.records import (
    InstanceRecord,
    RunInstanceRecord,
    RunKind,
    RunRecord,
    RunSummary,
    WorkerRecord,
    WorkerState,
)
from orchestrator.domain.request import RunRequest
from orchestrator.errors import StoreDataError
from orchestrator.models import Status
from orchestrator.store import schema as t
from orchestrator.timefmt import format_time, parse_time


def stamp(value: datetime | None) -> str | None:
    """A time as stored (RFC 3339 UTC), or None."""
    return None if value is None else format_time(value)


def update_values(update: InstanceUpdate) -> dict[str, Any]:
    """Column values of the run_instances row that ``update`` changes."""
    values: dict[str, Any] = {}
    if update.status is not None:
        values["status"] = update.status.value
    for name in ("phase", "attempts", "current_version", "previous_version", "error_message"):
        value = getattr(update, name)
        if value is not None:
            values[name] = value
    if update.version_unknown:
        values["current_version"] = ""
    if update.started_at is not None:
        values["started_at"] = format_time(update.started_at)
    if update.completed_at is not None:
        values["completed_at"] = format_time(update.completed_at)
    return values


class _BadValue(ValueError):
    """A malformed stored value; the row mapper adds the table and the row's key."""

    def __init__(self, column: str, problem: str) -> None:
        super().__init__(problem)
        self.column = column
        self.problem = problem

    def in_row(self, table: str, key: str) -> StoreDataError:
        """The operator-facing error for this value in row ``key`` of ``table``."""
        return StoreDataError(table, self.problem, key=key, column=self.column)


def _time(r: Any, column: str) -> datetime:
    value = getattr(r, column)
    try:
        return parse_time(value)
    except (TypeError, ValueError):
        raise _BadValue(column, f"{value!r} is not an RFC 3339 time") from None


def _opt_time(r: Any, column: str) -> datetime | None:
    return None if getattr(r, column) is None else _time(r, column)


def _status(r: Any) -> Status:
    try:
        return Status(r.status)
    except ValueError:
        words = ", ".join(s.value for s in Status)
        raise _BadValue("status", f"{r.status!r} is not a status ({words})") from None


_JSON_KINDS = {list: "a JSON array", str: "a JSON string", int: "a number", float: "a number",
               bool: "true or false", type(None): "null"}


def _json_object(r: Any, column: str) -> dict[str, Any]:
    try:
        value = json.loads(getattr(r, column))
    except (TypeError, ValueError) as exc:
        raise _BadValue(column, f"not valid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise _BadValue(column, f"holds {_JSON_KINDS.get(type(value), 'a value')}, "
                        "not a JSON object")
    return value


def _kind(r: Any) -> RunKind:
    try:
        return RunKind(r.kind)
    except ValueError:
        words = ", ".join(k.value for k in RunKind)
        raise _BadValue("kind", f"{r.kind!r} is not a run kind ({words})") from None


def _request(r: Any) -> RunRequest:
    try:
        return RunRequest.from_json(_json_object(r, "params_json"))
    except ValueError as exc:
        if isinstance(exc, _BadValue):
            raise
        raise _BadValue("params_json", f"not a run request: {exc}") from None


def _metadata(r: Any) -> dict[str, str]:
    value = _json_object(r, "metadata_json")
    for name, item in value.items():
        if not isinstance(item, str):
            raise _BadValue("metadata_json", f"the value of {name!r} is not a string")
    return value


def instance_record(r: Any) -> InstanceRecord:
    try:
        return InstanceRecord(
            instance_id=r.instance_id,
            service=r.service,
            host=r.host,
            port=r.port,
            version=r.version,
            version_updated_at=_opt_time(r, "version_updated_at"),
            last_heartbeat=_opt_time(r, "last_heartbeat"),
            metadata=_metadata(r),
            observed_version=r.observed_version,
            observed_at=_opt_time(r, "observed_at"),
        )
    except _BadValue as exc:
        raise exc.in_row(t.instances.name, r.instance_id) from None


def run_values(run: RunRecord) -> dict[str, Any]:
    return {
        "run_id": run.run_id,
        "kind": run.kind,
        "service": run.service,
        "version": run.version,
        "status": run.status.value,
        "params_json": json.dumps(run.request.to_json(), sort_keys=True),
        "created_by": run.created_by,
        "created_at": stamp(run.created_at),
        "updated_at": stamp(run.updated_at),
        "finished_at": stamp(run.finished_at),
        "error_message": run.error_message,
        "parent_run_id": run.parent_run_id,
    }


def run_record(r: Any) -> RunRecord:
    try:
        return RunRecord(
            run_id=r.run_id,
            kind=_kind(r),
            service=r.service,
            version=r.version,
            status=_status(r),
            request=_request(r),
            created_by=r.created_by,
            created_at=_time(r, "created_at"),
            updated_at=_time(r, "updated_at"),
            finished_at=_opt_time(r, "finished_at"),
            error_message=r.error_message,
            cancel_requested_at=_opt_time(r, "cancel_requested_at"),
            lease_owner=r.lease_owner,
            lease_expires_at=_opt_time(r, "lease_expires_at"),
            worker_pid=r.worker_pid,
            parent_run_id=r.parent_run_id,
            rollback_run_id=r.rollback_run_id,
        )
    except _BadValue as exc:
        raise exc.in_row(t.runs.name, r.run_id) from None


def summary_record(r: Any) -> RunSummary:
    try:
        return RunSummary(
            run_id=r.run_id, kind=r.kind, version=r.version, status=_status(r),
            created_by=r.created_by, started_at=_time(r, "created_at"),
            finished_at=_opt_time(r, "finished_at"), total=int(r.total or 0),
            completed=int(r.completed or 0), failed=int(r.failed or 0),
            cancelled=int(r.cancelled or 0), parent_run_id=r.parent_run_id,
            rollback_run_id=r.rollback_run_id, error_message=r.error_message,
            service=r.service,
        )
    except _BadValue as exc:
        raise exc.in_row(t.runs.name, r.run_id) from None


def member_values(m: RunInstanceRecord) -> dict[str, Any]:
    return {
        "run_id": m.run_id,
        "instance_id": m.instance_id,
        "position": m.position,
        "batch": m.batch,
        "status": m.status.value,
        "phase": m.phase,
        "previous_version": m.previous_version,
        "current_version": m.current_version,
        "target_version": m.target_version,
        "attempts": m.attempts,
        "started_at": stamp(m.started_at),
        "completed_at": stamp(m.completed_at),
        "error_message": m.error_message,
        "package_url": m.package_url,
        "package_sha256": m.package_sha256,
    }


def member_record(r: Any) -> RunInstanceRecord:
    try:
        return RunInstanceRecord(
            run_id=r.run_id,
            instance_id=r.instance_id,
            position=r.position,
            batch=r.batch,
            status=_status(r),
            target_version=r.target_version,
            phase=r.phase,
            previous_version=r.previous_version,
            current_version=r.current_version,
            attempts=r.attempts,
            started_at=_opt_time(r, "started_at"),
            completed_at=_opt_time(r, "completed_at"),
            error_message=r.error_message,
            package_url=r.package_url,
            package_sha256=r.package_sha256,
        )
    except _BadValue as exc:
        raise exc.in_row(t.run_instances.name, f"{r.run_id}/{r.instance_id}") from None


def worker_record(r: Any) -> WorkerRecord:
    try:
        try:
            state = WorkerState(r.state)
        except ValueError:
            words = ", ".join(s.value for s in WorkerState)
            raise _BadValue("state", f"{r.state!r} is not a worker state ({words})") from None
        return WorkerRecord(
            name=r.name, node=r.node, pid=int(r.pid), max_runs=int(r.max_runs),
            running=int(r.running), state=state, started_at=_time(r, "started_at"),
            heartbeat_at=_time(r, "heartbeat_at"), stopped_at=_opt_time(r, "stopped_at"),
        )
    except _BadValue as exc:
        raise exc.in_row(t.workers.name, r.name) from None
