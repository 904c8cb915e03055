"""Runs and their instances: recording a run with its instance locks, its progress, its end."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from orchestrator.domain.events import InstanceUpdate
from orchestrator.domain.records import RunInstanceRecord, RunRecord
from orchestrator.errors import ConflictError
from orchestrator.models import Status
from orchestrator.store import schema as t
from orchestrator.store.actions import record_action
from orchestrator.store.database import Database
from orchestrator.store.history import record_release
from orchestrator.store.instances import set_versions
from orchestrator.store.notify import CANCEL, QUEUE, notify
from orchestrator.store.rows import (
    member_record,
    member_values,
    run_record,
    run_values,
    stamp,
    update_values,
)
from orchestrator.timefmt import parse_time


class StaleWriterError(Exception):
    """A write to a run that its writer no longer owns: the run finished, or (for a write
    made as a lease holder) another process took its lease over. Nothing was written; the
    run is the new owner's to close.

    This is the fence between a worker that was only slow (a database outage outlasted its
    lease) and the reaper that took its run over: the first of them to write after the
    takeover that is not the lease holder is refused, so a finished run never changes.
    """

    def __init__(self, run_id: str, why: str) -> None:
        super().__init__(f"run {run_id}: {why}")
        self.run_id = run_id


def hold_run(conn: sa.Connection, run_id: str, owner: str | None) -> None:
    """Inside a write transaction: lock the run's row (``FOR UPDATE`` on PostgreSQL; SQLite
    writers are serialised already) and raise StaleWriterError unless the run is unfinished
    and, when ``owner`` is given, that owner holds its lease."""
    row = conn.execute(
        sa.select(t.runs.c.lease_owner, t.runs.c.finished_at)
        .where(t.runs.c.run_id == run_id)
        .with_for_update()
    ).first()
    if row is None:
        raise StaleWriterError(run_id, "it is not in the store")
    if row.finished_at is not None:
        raise StaleWriterError(run_id, "it finished already")
    if owner is not None and row.lease_owner != owner:
        raise StaleWriterError(
            run_id, f"its lease is held by {row.lease_owner or 'no one'}, not {owner}")


class Runs:
    """Deployment and rollback runs; every method is one transaction.

    Every write to a run in flight refuses a finished run, and, given the writer's lease
    ``owner``, a run whose lease another process holds (:class:`StaleWriterError`).
    """

    def __init__(self, db: Database) -> None:
        self.db = db

    def create(
        self,
        run: RunRecord,
        members: Sequence[RunInstanceRecord],
        take_over_from: str | None = None,
        owner: str | None = None,
    ) -> None:
        """Record a run and its instances, and lock those instances, atomically.

        Raises ConflictError if the run ID exists or any instance is busy in another run.
        ``take_over_from`` hands that run's locks on these instances to the new run in the
        same transaction (an automatic rollback takes over from its deployment, which must
        be unfinished and, given ``owner``, held by that owner).
        """
        try:
            self._create(run, members, take_over_from, owner)
        except sa.exc.IntegrityError:
            # Two writers raced past the checks (possible on PostgreSQL): the primary keys
            # of runs and instance_locks let exactly one of them in.
            raise ConflictError(
                f"run {run.run_id} conflicts with a run recorded at the same moment "
                "(same ID, or one of its instances)",
                key=run.run_id,
            ) from None

    def _create(
        self,
        run: RunRecord,
        members: Sequence[RunInstanceRecord],
        take_over_from: str | None,
        owner: str | None,
    ) -> None:
        now = stamp(run.created_at)
        ids = [m.instance_id for m in members]
        with self.db.write() as conn:
            if take_over_from is not None:
                hold_run(conn, take_over_from, owner)
            if conn.execute(
                sa.select(t.runs.c.run_id).where(t.runs.c.run_id == run.run_id)
            ).first():
                raise ConflictError(f"run {run.run_id} already exists", key=run.run_id)
            if take_over_from is not None:
                conn.execute(
                    t.instance_locks.delete().where(
                        t.instance_locks.c.run_id == take_over_from,
                        t.instance_locks.c.instance_id.in_(ids),
                    )
                )
                conn.execute(
                    t.runs.update()
                    .where(t.runs.c.run_id == take_over_from)
                    .values(rollback_run_id=run.run_id, updated_at=now)
                )
            busy = conn.execute(
                sa.select(t.instance_locks.c.instance_id, t.instance_locks.c.run_id)
                .where(t.instance_locks.c.instance_id.in_(ids))
                .order_by(t.instance_locks.c.instance_id)
            ).first()
            if busy is not None:
                raise ConflictError(
                    f"instance {busy.instance_id} is busy in run {busy.run_id}",
                    key=busy.instance_id,
                )
            conn.execute(t.runs.insert().values(**run_values(run)))
            conn.execute(t.run_instances.insert(), [member_values(m) for m in members])
            record_action(conn, now or "", run.created_by, str(run.kind), run.service,
                          run.run_id, f"{run.version} to {len(members)} instance(s)")
            conn.execute(
                t.instance_locks.insert(),
                [{"instance_id": i, "run_id": run.run_id, "locked_at": now} for i in ids],
            )
            notify(conn, QUEUE, run.run_id)

    def get(self, run_id: str) -> RunRecord | None:
        """A run by ID, or None."""
        with self.db.read() as conn:
            row = conn.execute(sa.select(t.runs).where(t.runs.c.run_id == run_id)).first()
            return None if row is None else run_record(row)

    def with_members(self, run_id: str) -> tuple[RunRecord, list[RunInstanceRecord]] | None:
        """A run and its instances from one consistent snapshot, or None."""
        with self.db.read() as conn:
            row = conn.execute(sa.select(t.runs).where(t.runs.c.run_id == run_id)).first()
            if row is None:
                return None
            members = conn.execute(
                sa.select(t.run_instances)
                .where(t.run_instances.c.run_id == run_id)
                .order_by(t.run_instances.c.position)
            )
            return run_record(row), [member_record(m) for m in members]

    def set_status(
        self,
        run_id: str,
        status: Status,
        *,
        error_message: str | None = None,
        finished: bool = False,
        owner: str | None = None,
    ) -> None:
        """Move an unfinished run to ``status``; a finished run also releases its instance
        locks. Raises StaleWriterError (writing nothing) if the run finished or ``owner``
        no longer holds its lease."""
        now = stamp(self.db.clock())
        values: dict[str, Any] = {"status": status.value, "updated_at": now}
        if error_message is not None:
            values["error_message"] = error_message
        if finished:
            values.update(finished_at=now, lease_owner=None, lease_expires_at=None)
        with self.db.write() as conn:
            hold_run(conn, run_id, owner)
            conn.execute(t.runs.update().where(t.runs.c.run_id == run_id).values(**values))
            if finished:
                conn.execute(t.instance_locks.delete().where(t.instance_locks.c.run_id == run_id))

    def hand_back(self, run_id: str, owner: str, message: str) -> None:
        """Give a run back unfinished: pending again, no lease holder, its instances kept;
        the next claim resumes it. StaleWriterError as :meth:`set_status`."""
        with self.db.write() as conn:
            hold_run(conn, run_id, owner)
            conn.execute(
                t.runs.update()
                .where(t.runs.c.run_id == run_id)
                .values(status=Status.PENDING.value, error_message=message,
                        updated_at=stamp(self.db.clock()), lease_owner=None,
                        lease_expires_at=None, worker_pid=None)
            )
            notify(conn, QUEUE, run_id)

    def apply_updates(
        self, run_id: str, updates: Sequence[InstanceUpdate], owner: str | None = None
    ) -> None:
        """Apply folded event updates to a run's instances, the registry and release
        history; StaleWriterError as :meth:`set_status`."""
        if not updates:
            return
        now = self.db.clock()
        # Each update sets some columns of one instance's row and nothing reads the row, so
        # applying a batch in order is the same as applying, per instance, the last value
        # each column was given: one row update per instance, and the rows that set the
        # same columns in one executemany (pipelined by psycopg: one round trip).
        rows: dict[str, dict[str, Any]] = {}
        versions: dict[str, str] = {}
        for up in updates:
            values = update_values(up)
            if values:
                rows.setdefault(up.instance_id, {}).update(values)
            if up.current_version is not None:
                versions[up.instance_id] = up.current_version
        by_columns: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for instance_id, values in rows.items():
            by_columns.setdefault(tuple(sorted(values)), []).append(
                {"b_instance": instance_id, **values})
        with self.db.write() as conn:
            hold_run(conn, run_id, owner)
            for params in by_columns.values():
                conn.execute(
                    t.run_instances.update().where(
                        t.run_instances.c.run_id == run_id,
                        t.run_instances.c.instance_id == sa.bindparam("b_instance"),
                    ),
                    params,
                )
            set_versions(conn, versions, now)
            for up in updates:
                if up.release is not None:
                    record_release(conn, up.instance_id, run_id, up.release, now)
            conn.execute(
                t.runs.update()
                .where(t.runs.c.run_id == run_id)
                .values(updated_at=stamp(now))
            )

    def finish_members(
        self,
        run_id: str,
        status: Status,
        error_message: str,
        only: Iterable[Status],
        owner: str | None = None,
    ) -> int:
        """Close every instance of a run still in one of ``only`` statuses; returns the
        count. StaleWriterError as :meth:`set_status`."""
        now = stamp(self.db.clock())
        with self.db.write() as conn:
            hold_run(conn, run_id, owner)
            result = conn.execute(
                t.run_instances.update()
                .where(
                    t.run_instances.c.run_id == run_id,
                    t.run_instances.c.status.in_([s.value for s in only]),
                )
                .values(status=status.value, error_message=error_message, completed_at=now)
            )
            if result.rowcount:  # the run's status changed: readers key caches on this
                conn.execute(t.runs.update().where(t.runs.c.run_id == run_id)
                             .values(updated_at=now))
            return int(result.rowcount or 0)

    def request_cancel(self, run_id: str, actor: str = "") -> datetime:
        """Record a cancel request (idempotent; each call is in the audit trail as made by
        ``actor``, when given); returns when it was first requested."""
        now = self.db.clock()
        with self.db.write() as conn:
            if actor:
                service = conn.execute(sa.select(t.runs.c.service)
                                       .where(t.runs.c.run_id == run_id)).scalar_one_or_none()
                record_action(conn, stamp(now) or "", actor, "cancel", service or "", run_id, "")
            conn.execute(
                t.runs.update()
                .where(t.runs.c.run_id == run_id, t.runs.c.cancel_requested_at.is_(None))
                .values(cancel_requested_at=stamp(now))
            )
            notify(conn, CANCEL, run_id)
            value = conn.execute(
                sa.select(t.runs.c.cancel_requested_at).where(t.runs.c.run_id == run_id)
            ).scalar_one()
        return parse_time(value)

    def cancel_requested(self, run_id: str) -> bool:
        """Whether a cancel was requested for the run."""
        with self.db.read() as conn:
            value = conn.execute(
                sa.select(t.runs.c.cancel_requested_at).where(t.runs.c.run_id == run_id)
            ).scalar_one_or_none()
            return value is not None
