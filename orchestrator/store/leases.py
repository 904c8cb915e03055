"""Leases and instance locks: who carries a run, and which runs hold which instances.

A worker holds a run's lease and renews it; a run whose lease expired (or that no worker
claimed in time) is stale, for the reaper to close.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta

import sqlalchemy as sa

from orchestrator.domain.records import RunRecord
from orchestrator.models import Status
from orchestrator.store import schema as t
from orchestrator.store.database import Database
from orchestrator.store.rows import run_record, stamp


class Leases:
    """Run leases and the instance locks runs hold."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def acquire(self, run_id: str, owner: str, seconds: float, pid: int) -> bool:
        """Take the run's lease if it is free or expired; True when this owner holds it."""
        now = self.db.clock()
        with self.db.write() as conn:
            result = conn.execute(
                t.runs.update()
                .where(
                    t.runs.c.run_id == run_id,
                    t.runs.c.finished_at.is_(None),
                    sa.or_(
                        t.runs.c.lease_owner.is_(None),
                        t.runs.c.lease_owner == owner,
                        t.runs.c.lease_expires_at < stamp(now),
                    ),
                )
                .values(
                    lease_owner=owner,
                    lease_expires_at=stamp(now + timedelta(seconds=seconds)),
                    worker_pid=pid,
                )
            )
            return bool(result.rowcount)

    def renew(self, run_id: str, owner: str, seconds: float) -> bool:
        """Extend a held lease; False if another owner took it."""
        expires = self.db.clock() + timedelta(seconds=seconds)
        with self.db.write() as conn:
            result = conn.execute(
                t.runs.update()
                .where(t.runs.c.run_id == run_id, t.runs.c.lease_owner == owner)
                .values(lease_expires_at=stamp(expires))
            )
            return bool(result.rowcount)

    def lock_holders(self, instance_ids: Iterable[str]) -> dict[str, str]:
        """Instance ID -> the run holding its lock, for the given instances."""
        wanted = list(instance_ids)
        with self.db.read() as conn:
            rows = conn.execute(
                sa.select(t.instance_locks.c.instance_id, t.instance_locks.c.run_id).where(
                    t.instance_locks.c.instance_id.in_(wanted)
                )
            )
            return {r.instance_id: r.run_id for r in rows}

    def stale(self, pending_grace: float, run_ids: Iterable[str] | None = None) -> list[RunRecord]:
        """Unfinished runs whose worker is gone: lease expired, or never taken within
        ``pending_grace`` seconds; only among ``run_ids`` when given."""
        now = self.db.clock()
        unclaimed_before = now - timedelta(seconds=pending_grace)
        query = sa.select(t.runs).where(
            # unfinished runs are pending or in progress: ix_runs_status serves this, so
            # a sweep never scans all runs
            t.runs.c.status.in_([Status.PENDING.value, Status.IN_PROGRESS.value]),
            t.runs.c.finished_at.is_(None),
            sa.or_(
                t.runs.c.lease_expires_at < stamp(now),
                sa.and_(
                    t.runs.c.lease_owner.is_(None),
                    # updated_at: when it was recorded, or handed back unfinished
                    t.runs.c.updated_at < stamp(unclaimed_before),
                ),
            ),
        )
        if run_ids is not None:
            query = query.where(t.runs.c.run_id.in_(list(run_ids)))
        with self.db.read() as conn:
            return [run_record(r) for r in conn.execute(query)]

    def release(self, run_id: str, owner: str) -> bool:
        """Hand a held lease back unfinished (another worker may claim the run at once)."""
        with self.db.write() as conn:
            result = conn.execute(
                t.runs.update()
                .where(t.runs.c.run_id == run_id, t.runs.c.lease_owner == owner)
                .values(lease_owner=None, lease_expires_at=None, worker_pid=None,
                        updated_at=stamp(self.db.clock()))
            )
            return bool(result.rowcount)

    def claim(self, owner: str, seconds: float, pid: int, limit: int) -> list[str]:
        """Take the leases of up to ``limit`` queued runs (pending, unfinished, no lease
        holder), oldest first; returns their IDs.

        ``FOR UPDATE SKIP LOCKED`` on PostgreSQL: concurrent claimers each get other runs
        and never wait on each other's rows; SQLite serialises writers instead. The update
        checks the holder again, so a run another process acquired by its ID in between
        (a per-run worker, a cancel closing it) is not taken twice.
        """
        if limit <= 0:
            return []
        now = self.db.clock()
        with self.db.write() as conn:
            candidates = conn.execute(
                sa.select(t.runs.c.run_id)
                .where(
                    t.runs.c.status == Status.PENDING.value,
                    t.runs.c.finished_at.is_(None),
                    t.runs.c.lease_owner.is_(None),
                )
                .order_by(t.runs.c.created_at, t.runs.c.run_id)
                .limit(limit)
                .with_for_update(skip_locked=True)
            ).scalars().all()
            if not candidates:
                return []
            conn.execute(
                t.runs.update()
                .where(t.runs.c.run_id.in_(candidates), t.runs.c.lease_owner.is_(None))
                .values(
                    lease_owner=owner,
                    lease_expires_at=stamp(now + timedelta(seconds=seconds)),
                    worker_pid=pid,
                )
            )
            held = conn.execute(
                sa.select(t.runs.c.run_id)
                .where(t.runs.c.run_id.in_(candidates), t.runs.c.lease_owner == owner)
                .order_by(t.runs.c.created_at, t.runs.c.run_id)
            ).scalars().all()
            return list(held)
