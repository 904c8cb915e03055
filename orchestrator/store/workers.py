"""Worker daemons: who is serving the queue, since when, and whether it still beats.

Each ``floy worker`` daemon registers under its lease-owner name and beats every third of
a lease. The reaper reads this to tell a queued run (a live daemon will claim it) from an
orphaned one (no daemon alive, none claimed it within the grace); ``floy workers`` lists it.
"""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa

from orchestrator.domain.records import WorkerRecord, WorkerState
from orchestrator.store import schema as t
from orchestrator.store.database import Database
from orchestrator.store.rows import stamp, worker_record


class Workers:
    """The worker daemons' own rows; every method is one transaction."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def register(self, name: str, node: str, pid: int, max_runs: int) -> None:
        """Record a daemon starting (a name reused by a restarted daemon starts afresh)."""
        now = stamp(self.db.clock())
        values = {"node": node, "pid": pid, "max_runs": max_runs, "running": 0,
                  "state": WorkerState.RUNNING.value, "started_at": now, "heartbeat_at": now,
                  "stopped_at": None}
        with self.db.write() as conn:
            updated = conn.execute(
                t.workers.update().where(t.workers.c.name == name).values(**values))
            if not updated.rowcount:
                conn.execute(t.workers.insert().values(name=name, **values))

    def beat(self, name: str, running: int, state: WorkerState) -> None:
        """A daemon's heartbeat: how many runs it carries and whether it still claims."""
        now = stamp(self.db.clock())
        values: dict[str, object] = {"heartbeat_at": now, "running": running,
                                     "state": state.value}
        if state is WorkerState.STOPPED:
            values["stopped_at"] = now
        with self.db.write() as conn:
            conn.execute(t.workers.update().where(t.workers.c.name == name).values(**values))

    def live(self, within_seconds: float) -> list[WorkerRecord]:
        """Daemons not stopped whose last beat is at most ``within_seconds`` old."""
        since = self.db.clock() - timedelta(seconds=within_seconds)
        with self.db.read() as conn:
            rows = conn.execute(
                sa.select(t.workers)
                .where(t.workers.c.state != WorkerState.STOPPED.value,
                       t.workers.c.heartbeat_at >= stamp(since))
                .order_by(t.workers.c.name))
            return [worker_record(r) for r in rows]

    def all(self) -> list[WorkerRecord]:
        """Every daemon ever registered, the most recent beat first."""
        with self.db.read() as conn:
            rows = conn.execute(sa.select(t.workers).order_by(
                t.workers.c.heartbeat_at.desc(), t.workers.c.name))
            return [worker_record(r) for r in rows]
