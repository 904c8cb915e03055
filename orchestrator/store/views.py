"""Read projections: the few wide reads that skip building records (a status of 10,000
instances), returned as named tuples with the columns as stored."""

from __future__ import annotations

from typing import NamedTuple

import sqlalchemy as sa

from orchestrator.domain.records import RunRecord
from orchestrator.store import schema as t
from orchestrator.store.database import Database
from orchestrator.store.rows import run_record


class StatusRow(NamedTuple):
    """One instance's entry in a run's status; times as stored (RFC 3339 strings)."""

    instance_id: str
    current_version: str
    target_version: str
    started_at: str | None
    completed_at: str | None
    error_message: str
    status: str
    attempts: int
    phase: str
    batch: int
    previous_version: str


class RunStamp(NamedTuple):
    """What a run's status depends on, as stored: every write that changes the status
    moves ``updated_at`` (or closes the run); the lease decides whether it is stale."""

    updated_at: str
    finished_at: str | None
    status: str
    lease_owner: str | None
    lease_expires_at: str | None


class VersionRow(NamedTuple):
    """One instance's version and when it was last updated (as stored)."""

    instance_id: str
    version: str
    last_updated: str | None


class Views:
    """The status and versions projections."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def run_status(self, run_id: str) -> tuple[RunRecord, list[StatusRow]] | None:
        """A run and its instances' status rows in run order, from one snapshot; or None."""
        ri = t.run_instances
        with self.db.read() as conn:
            row = conn.execute(sa.select(t.runs).where(t.runs.c.run_id == run_id)).first()
            if row is None:
                return None
            rows = conn.execute(
                sa.select(*(ri.c[name] for name in StatusRow._fields))
                .where(ri.c.run_id == run_id)
                .order_by(ri.c.position)
            ).all()
            return run_record(row), [StatusRow._make(r) for r in rows]

    def run_stamp(self, run_id: str) -> RunStamp | None:
        """A run's :class:`RunStamp` (one primary-key read), or None."""
        r = t.runs
        with self.db.read() as conn:
            row = conn.execute(
                sa.select(r.c.updated_at, r.c.finished_at, r.c.status, r.c.lease_owner,
                          r.c.lease_expires_at).where(r.c.run_id == run_id)).first()
        return None if row is None else RunStamp._make(row)

    def service_versions(self, service: str) -> list[VersionRow]:
        """Every instance of a service with its version, in ID order."""
        i = t.instances
        with self.db.read() as conn:
            rows = conn.execute(
                sa.select(i.c.instance_id, i.c.version,
                          sa.func.coalesce(i.c.version_updated_at, i.c.last_heartbeat))
                .where(i.c.service == service)
                .order_by(i.c.instance_id)
            ).all()
            return [VersionRow._make(r) for r in rows]
