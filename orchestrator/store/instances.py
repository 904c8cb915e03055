"""The instance registry: registration, lookups, pages, and what probes read on hosts."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from orchestrator.domain.records import InstanceRecord
from orchestrator.errors import ConflictError
from orchestrator.models import InstanceSpec
from orchestrator.store import schema as t
from orchestrator.store.database import Database
from orchestrator.store.rows import instance_record, stamp


class Instances:
    """Registered instances of every service."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def add(self, specs: Sequence[InstanceSpec], *, replace: bool = False) -> int:
        """Register instances; an existing ID is a conflict unless ``replace``."""
        now = stamp(self.db.clock())
        with self.db.write() as conn:
            ids = [s.instance_id for s in specs]
            existing = {
                r.instance_id: r
                for r in conn.execute(
                    sa.select(t.instances.c.instance_id, t.instances.c.service).where(
                        t.instances.c.instance_id.in_(ids)
                    )
                )
            }
            for spec in specs:
                old = existing.get(spec.instance_id)
                values = {
                    "service": spec.service,
                    "host": spec.host,
                    "port": spec.port,
                    "metadata_json": json.dumps(spec.metadata, sort_keys=True),
                }
                if old is None:
                    conn.execute(
                        t.instances.insert().values(
                            instance_id=spec.instance_id, version="", created_at=now, **values
                        )
                    )
                elif not replace:
                    raise ConflictError(
                        f"instance {spec.instance_id} is already registered "
                        f"(service {old.service}); use --replace to update it",
                        key=spec.instance_id,
                    )
                elif old.service != spec.service:
                    raise ConflictError(
                        f"instance {spec.instance_id} belongs to service {old.service}, "
                        f"not {spec.service}",
                        key=spec.instance_id,
                    )
                else:
                    conn.execute(
                        t.instances.update()
                        .where(t.instances.c.instance_id == spec.instance_id)
                        .values(**values)
                    )
        return len(specs)

    def get(self, ids: Iterable[str]) -> dict[str, InstanceRecord]:
        """Instances by ID (missing IDs are simply absent)."""
        wanted = list(ids)
        with self.db.read() as conn:
            rows = conn.execute(sa.select(t.instances).where(t.instances.c.instance_id.in_(wanted)))
            return {r.instance_id: instance_record(r) for r in rows}

    def of_service(self, service: str) -> list[InstanceRecord]:
        """Every instance of a service, in ID order."""
        with self.db.read() as conn:
            rows = conn.execute(
                sa.select(t.instances)
                .where(t.instances.c.service == service)
                .order_by(t.instances.c.instance_id)
            )
            return [instance_record(r) for r in rows]

    def page(
        self, service: str, version: str, limit: int, offset: int
    ) -> tuple[list[InstanceRecord], int]:
        """One page of a service's instances (optionally of one version) and the total."""
        cond = t.instances.c.service == service
        if version:
            cond = sa.and_(cond, t.instances.c.version == version)
        with self.db.read() as conn:
            total = conn.execute(
                sa.select(sa.func.count()).select_from(t.instances).where(cond)
            ).scalar_one()
            rows = conn.execute(
                sa.select(t.instances)
                .where(cond)
                .order_by(t.instances.c.instance_id)
                .limit(limit)
                .offset(offset)
            )
            return [instance_record(r) for r in rows], int(total)

    def service_exists(self, service: str) -> bool:
        """Whether any instance is registered for ``service``."""
        with self.db.read() as conn:
            query = sa.select(t.instances.c.instance_id).where(t.instances.c.service == service)
            row = conn.execute(query.limit(1)).first()
            return row is not None

    def heartbeat(self, instance_id: str, version: str) -> InstanceRecord | None:
        """An instance reports the version it runs: ``last_heartbeat`` becomes now, and the
        version is kept as observed (drift when it differs from the record, which it never
        overwrites). Returns the updated record, None for an unknown instance."""
        now = stamp(self.db.clock())
        with self.db.write() as conn:
            done = conn.execute(
                t.instances.update().where(t.instances.c.instance_id == instance_id)
                .values(last_heartbeat=now, observed_version=version, observed_at=now))
            if not done.rowcount:
                return None
            row = conn.execute(
                sa.select(t.instances).where(t.instances.c.instance_id == instance_id)).one()
            return instance_record(row)

    def services(self) -> list[tuple[str, dict[str, int], list[InstanceRecord], str | None]]:
        """Every service: its version distribution, its drifting instances and its newest
        heartbeat, in service order (one scan of the registry)."""
        by_service: dict[str, tuple[dict[str, int], list[InstanceRecord], list[str]]] = {}
        with self.db.read() as conn:
            rows = conn.execute(sa.select(t.instances).order_by(t.instances.c.service,
                                                                t.instances.c.instance_id))
            for row in rows:
                summary, drifting, beats = by_service.setdefault(row.service, ({}, [], []))
                summary[row.version] = summary.get(row.version, 0) + 1
                if row.observed_version is not None and row.observed_version != row.version:
                    drifting.append(instance_record(row))
                if row.last_heartbeat:
                    beats.append(row.last_heartbeat)
        return [(name, summary, drifting, max(beats) if beats else None)
                for name, (summary, drifting, beats) in by_service.items()]

    def record_observations(self, observed: dict[str, str], *, authoritative: bool) -> None:
        """Store what a probe read on the hosts (instance ID -> version on disk).

        ``authoritative`` (after a cancel or a lost worker, or ``refresh --adopt``) makes
        the observed version the recorded one; otherwise a different version is kept as
        drift next to the record, for a person to look at.
        """
        now = self.db.clock()
        with self.db.write() as conn:
            for instance_id, version in observed.items():
                values: dict[str, Any] = {
                    "observed_version": version,
                    "observed_at": stamp(now),
                    "last_heartbeat": stamp(now),
                }
                if authoritative:
                    set_version(conn, instance_id, version, now)
                conn.execute(
                    t.instances.update()
                    .where(t.instances.c.instance_id == instance_id)
                    .values(**values)
                )


def set_version(conn: Connection, instance_id: str, version: str, now: datetime) -> None:
    """Record the version the module or a probe just read on the host (also what was
    observed). One statement: this runs for every finished instance of every run."""
    when = stamp(now)
    conn.execute(
        t.instances.update()
        .where(t.instances.c.instance_id == instance_id)
        .values(
            last_heartbeat=when,
            observed_version=version,
            observed_at=when,
            version_updated_at=sa.case(
                (t.instances.c.version != version, when),
                else_=t.instances.c.version_updated_at,
            ),
            version=version,
        )
    )


def set_versions(conn: Connection, versions: Mapping[str, str], now: datetime) -> None:
    """:func:`set_version` for many instances in one ``executemany`` (pipelined by psycopg
    on PostgreSQL: one round trip, not one per instance)."""
    if not versions:
        return
    version: sa.BindParameter[str] = sa.bindparam("b_version")
    when: sa.BindParameter[str] = sa.bindparam("b_when")
    conn.execute(
        t.instances.update()
        .where(t.instances.c.instance_id == sa.bindparam("b_instance"))
        .values(
            last_heartbeat=when,
            observed_version=version,
            observed_at=when,
            version_updated_at=sa.case(
                (t.instances.c.version != version, when),
                else_=t.instances.c.version_updated_at,
            ),
            version=version,
        ),
        [{"b_instance": i, "b_version": v, "b_when": stamp(now)} for i, v in versions.items()],
    )
