"""The decisions about stepped deployments: append-only, one row each.

The worker records its own (batch started, measurements, analysis verdicts, pauses, gates
left) fenced by its lease; callers record promotions and aborts, which also go to the audit
trail (``actions``) with the caller. Every write bumps the run's ``updated_at``, so a status
cache keyed on it sees the change.
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from orchestrator.domain.canary import DecisionKind, DecisionRecord
from orchestrator.errors import StoreDataError
from orchestrator.store import schema as t
from orchestrator.store.actions import record_action
from orchestrator.store.database import Database
from orchestrator.store.notify import CANCEL, notify
from orchestrator.store.rows import stamp
from orchestrator.store.runs import hold_run
from orchestrator.timefmt import parse_time


class Decisions:
    """Record and read the decisions of runs."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def record(self, decision: DecisionRecord, owner: str | None = None) -> None:
        """Append one decision; given the writer's lease ``owner``, refused
        (StaleWriterError) once another process holds the run or it finished."""
        with self.db.write() as conn:
            hold_run(conn, decision.run_id, owner)
            _insert(conn, decision)

    def of_run(self, run_id: str) -> list[DecisionRecord]:
        """Every decision about ``run_id``, oldest first."""
        with self.db.read() as conn:
            return of_run(conn, run_id)

    def promote(self, decision: DecisionRecord, service: str) -> None:
        """Record a caller's promotion (and the call in the audit trail)."""
        with self.db.write() as conn:
            hold_run(conn, decision.run_id, None)
            _insert(conn, decision)
            record_action(conn, stamp(decision.at) or "", decision.actor, "promote", service,
                          decision.run_id, decision.message)

    def abort(self, decision: DecisionRecord, service: str) -> None:
        """Record a caller's abort and request the run's cancel, in one transaction: the
        worker stops it as a cancel and, when the abort asks for it, rolls back."""
        now = stamp(decision.at)
        with self.db.write() as conn:
            hold_run(conn, decision.run_id, None)
            _insert(conn, decision)
            record_action(conn, now or "", decision.actor, "abort", service, decision.run_id,
                          decision.message)
            conn.execute(t.runs.update()
                         .where(t.runs.c.run_id == decision.run_id,
                                t.runs.c.cancel_requested_at.is_(None))
                         .values(cancel_requested_at=now))
            notify(conn, CANCEL, decision.run_id)


def _insert(conn: Connection, d: DecisionRecord) -> None:
    at = stamp(d.at)
    conn.execute(t.run_decisions.insert().values(
        run_id=d.run_id, batch=d.batch, kind=str(d.kind), actor=d.actor[:256], at=at,
        message=d.message, data_json=json.dumps(d.data, sort_keys=True)))
    conn.execute(t.runs.update().where(t.runs.c.run_id == d.run_id).values(updated_at=at))


def of_run(conn: Connection, run_id: str) -> list[DecisionRecord]:
    """Every decision about ``run_id``, oldest first, inside the caller's transaction."""
    rows = conn.execute(sa.select(t.run_decisions)
                        .where(t.run_decisions.c.run_id == run_id)
                        .order_by(t.run_decisions.c.decision_id))
    return [_record(r) for r in rows]


def _record(r: sa.Row[tuple[object, ...]]) -> DecisionRecord:
    try:
        kind = DecisionKind(r.kind)
        data = json.loads(r.data_json)
        if not isinstance(data, dict):
            raise ValueError("data_json is not a JSON object")
        return DecisionRecord(run_id=r.run_id, batch=int(r.batch), kind=kind, actor=r.actor,
                              at=parse_time(r.at), message=r.message, data=data)
    except (ValueError, TypeError) as exc:
        raise StoreDataError("run_decisions", f"unreadable: {exc}",
                             key=str(r.decision_id)) from None
