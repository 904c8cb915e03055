"""The audit trail of mutating calls: who deployed, cancelled, registered, reported drift.

Runs carry their own ``created_by``; this table adds the calls that create no run (a cancel,
a registration, a heartbeat that raised drift) and repeats the ones that do, so that one
query answers "who did what to this service, when". The caller is the OS user for the CLI
and the Python API, ``token:<name>`` over HTTP.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from orchestrator.domain.records import ActionRecord
from orchestrator.store import schema as t
from orchestrator.store.database import Database
from orchestrator.store.rows import stamp
from orchestrator.timefmt import parse_time


class Actions:
    """Append-only: actions are recorded and read, never changed."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def record(self, actor: str, action: str, service: str = "", subject: str = "",
               detail: str = "") -> None:
        """Append one action, in a transaction of its own."""
        with self.db.write() as conn:
            record_action(conn, stamp(self.db.clock()) or "", actor, action, service, subject,
                          detail)

    def of_service(self, service: str, limit: int) -> list[ActionRecord]:
        """The newest ``limit`` actions on ``service``, newest first."""
        query = (sa.select(t.actions).where(t.actions.c.service == service)
                 .order_by(t.actions.c.at.desc(), t.actions.c.action_id.desc()).limit(limit))
        with self.db.read() as conn:
            return [ActionRecord(at=parse_time(r.at), actor=r.actor, action=r.action,
                                 service=r.service, subject=r.subject, detail=r.detail)
                    for r in conn.execute(query)]


def record_action(conn: Connection, at: str, actor: str, action: str, service: str,
                  subject: str, detail: str) -> None:
    """Append one action inside the caller's transaction."""
    conn.execute(t.actions.insert().values(at=at, actor=actor[:256], action=action,
                                           service=service, subject=subject, detail=detail))
