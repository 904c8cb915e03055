"""The audit trail: which releases completed where (and what each replaced), and a service's
runs, newest first."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from orchestrator.domain.previous import CHANGES_READ, VersionChange
from orchestrator.domain.records import RunSummary
from orchestrator.models import Status
from orchestrator.store import schema as t
from orchestrator.store.database import Database
from orchestrator.store.rows import stamp, summary_record


class History:
    """Completed releases per instance, and run summaries per service."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def releases(self, instance_id: str) -> list[dict[str, str]]:
        """Versions that completed on an instance, newest first."""
        with self.db.read() as conn:
            rows = conn.execute(
                sa.select(t.releases)
                .where(t.releases.c.instance_id == instance_id)
                .order_by(t.releases.c.deployed_at.desc())
            )
            return [
                {
                    "version": r.version,
                    "package_url": r.package_url,
                    "sha256": r.sha256,
                    "run_id": r.run_id,
                    "deployed_at": r.deployed_at,
                }
                for r in rows
            ]

    def completed_release(self, instance_id: str, version: str) -> dict[str, str] | None:
        """The history entry of ``version`` on an instance, if it ever completed there."""
        for entry in self.releases(instance_id):
            if entry["version"] == version:
                return entry
        return None

    def version_changes(
        self, instance_ids: Sequence[str], per_instance: int = CHANGES_READ
    ) -> dict[str, list[VersionChange]]:
        """The newest completed releases (deploy or rollback) of each instance, newest
        first, at most ``per_instance`` each: one query for a whole batch.

        Runs that touch an instance never overlap (one active run per instance), so the
        order their runs were created in is the order the releases happened in.
        """
        ri, runs = t.run_instances, t.runs
        rank = sa.func.row_number().over(
            partition_by=ri.c.instance_id,
            order_by=(runs.c.created_at.desc(), runs.c.run_id.desc()),
        ).label("rank")
        ranked = (
            sa.select(ri.c.instance_id, ri.c.run_id, ri.c.previous_version,
                      ri.c.current_version, rank)
            .join(runs, runs.c.run_id == ri.c.run_id)
            .where(ri.c.instance_id.in_(list(instance_ids)),
                   ri.c.status == Status.COMPLETED.value)
            .subquery()
        )
        query = (sa.select(ranked).where(ranked.c.rank <= per_instance)
                 .order_by(ranked.c.instance_id, ranked.c.rank))
        out: dict[str, list[VersionChange]] = {i: [] for i in instance_ids}
        with self.db.read() as conn:
            for r in conn.execute(query):
                out[r.instance_id].append(
                    VersionChange(r.run_id, r.previous_version, r.current_version))
        return out

    def runs(self, service: str, limit: int) -> list[RunSummary]:
        """Newest runs of a service with their per-status instance counts."""
        return self.recent(service, limit)

    def recent(self, service: str | None, limit: int, *, active: bool = False
               ) -> list[RunSummary]:
        """Newest runs (of ``service``, or of every service), only unfinished ones when
        ``active``, with their per-status instance counts."""
        ri = t.run_instances
        counts = (
            sa.select(
                ri.c.run_id,
                sa.func.count().label("total"),
                *[
                    sa.func.sum(sa.case((ri.c.status == s.value, 1), else_=0)).label(s.value)
                    for s in (Status.COMPLETED, Status.FAILED, Status.CANCELLED)
                ],
            )
            .group_by(ri.c.run_id)
            .subquery()
        )
        query = (
            sa.select(t.runs, counts.c.total, counts.c.completed, counts.c.failed,
                      counts.c.cancelled)
            .join(counts, counts.c.run_id == t.runs.c.run_id, isouter=True)
            .order_by(t.runs.c.created_at.desc())
            .limit(limit)
        )
        if service is not None:
            query = query.where(t.runs.c.service == service)
        if active:
            query = query.where(t.runs.c.finished_at.is_(None))
        with self.db.read() as conn:
            return [summary_record(r) for r in conn.execute(query)]


def record_release(
    conn: Connection, instance_id: str, run_id: str, release: dict[str, str], now: datetime
) -> None:
    """Upsert the history entry (delete + insert: portable across SQLite and PostgreSQL)."""
    conn.execute(
        t.releases.delete().where(
            t.releases.c.instance_id == instance_id,
            t.releases.c.version == release["version"],
        )
    )
    conn.execute(
        t.releases.insert().values(
            instance_id=instance_id,
            version=release["version"],
            package_url=release.get("package_url", ""),
            sha256=release.get("sha256", ""),
            run_id=run_id,
            deployed_at=stamp(now),
        )
    )
