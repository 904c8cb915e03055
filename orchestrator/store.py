"""The store: floy's single source of truth, a small repository API over SQLAlchemy Core.

SQLite (a file in WAL mode) is the embedded default; a ``postgresql+psycopg://`` URL selects a
shared store several orchestrator processes can use. Every method is one transaction.

A database floy cannot use is a :class:`ConfigError`; one that holds what floy never writes
is a :class:`StoreDataError` naming the table (and row): a missing table or a bad schema
version when it is opened, a malformed value when the row mappers at the end read it.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

from orchestrator import schema as t
from orchestrator.errors import ConfigError, ConflictError, StoreDataError
from orchestrator.events import InstanceUpdate
from orchestrator.models import InstanceSpec, Status
from orchestrator.settings import check_db_url
from orchestrator.timefmt import format_time, parse_time, utcnow


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


@dataclass(frozen=True)
class RunRecord:
    """A deployment or rollback run."""

    run_id: str
    kind: str
    service: str
    version: str
    status: Status
    params: dict[str, Any]
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

    def to_dict(self) -> dict[str, Any]:
        """JSON form (times RFC 3339 UTC)."""
        return {
            "run_id": self.run_id,
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


class Store:
    """Repository over one database; safe to share between threads of one process."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # -- opening ------------------------------------------------------------------------
    @classmethod
    def open(cls, url: str) -> Store:
        """Open (creating and migrating when needed) the database at ``url``.

        Raises ConfigError if the URL or the database is unusable, StoreDataError if the
        database is damaged (a bad schema version, a missing table).
        """
        parsed = sa.engine.make_url(check_db_url(url))
        is_sqlite = parsed.get_backend_name() == "sqlite"
        if is_sqlite and parsed.database and parsed.database != ":memory:":
            _prepare_sqlite_file(Path(parsed.database))
        # A server database may restart under us: test pooled connections before use, so
        # the first statement after a restart does not fail on a dead connection.
        engine = sa.create_engine(url, connect_args={"timeout": 30} if is_sqlite else {},
                                  pool_pre_ping=not is_sqlite)
        if is_sqlite:
            _configure_sqlite(engine)
        store = cls(engine)
        where = ((parsed.database or ":memory:") if is_sqlite
                 else parsed.render_as_string(hide_password=True))
        try:
            # Opening an up-to-date database only reads: many processes opening it at once
            # (readers, the CLI) never queue for the write lock a running worker's lease
            # renewal needs.
            with store.read() as conn:
                current = t.is_current(conn)
            if not current:
                with store.write() as conn:
                    t.migrate(conn)
        except sa.exc.DatabaseError as exc:  # unreadable, read-only, or not a database at all
            engine.dispose()
            raise ConfigError(f"cannot open the database {where}: {exc.orig}") from None
        except ConfigError as exc:  # damaged (a StoreDataError), or newer than this floy
            engine.dispose()
            if isinstance(exc, StoreDataError):
                raise exc.located(where) from None
            raise
        if is_sqlite and parsed.database and parsed.database != ":memory:":
            os.chmod(parsed.database, stat.S_IRUSR | stat.S_IWUSR)
        return store

    def close(self) -> None:
        """Release pooled connections."""
        self.engine.dispose()

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A write transaction (``BEGIN IMMEDIATE`` on SQLite, so writers queue, not fail)."""
        with self.engine.connect().execution_options(floy_write=True) as conn, conn.begin():
            yield conn

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A read transaction: one consistent snapshot."""
        with self.engine.connect() as conn, conn.begin():
            yield conn

    # -- instances ----------------------------------------------------------------------
    def add_instances(self, specs: Sequence[InstanceSpec], *, replace: bool = False) -> int:
        """Register instances; an existing ID is a conflict unless ``replace``."""
        now = format_time(utcnow())
        with self.write() as conn:
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

    def get_instances(self, ids: Iterable[str]) -> dict[str, InstanceRecord]:
        """Instances by ID (missing IDs are simply absent)."""
        wanted = list(ids)
        with self.read() as conn:
            rows = conn.execute(sa.select(t.instances).where(t.instances.c.instance_id.in_(wanted)))
            return {r.instance_id: _instance(r) for r in rows}

    def service_instances(self, service: str) -> list[InstanceRecord]:
        """Every instance of a service, in ID order."""
        with self.read() as conn:
            rows = conn.execute(
                sa.select(t.instances)
                .where(t.instances.c.service == service)
                .order_by(t.instances.c.instance_id)
            )
            return [_instance(r) for r in rows]

    def query_instances(
        self, service: str, version: str, limit: int, offset: int
    ) -> tuple[list[InstanceRecord], int]:
        """One page of a service's instances (optionally of one version) and the total."""
        cond = t.instances.c.service == service
        if version:
            cond = sa.and_(cond, t.instances.c.version == version)
        with self.read() as conn:
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
            return [_instance(r) for r in rows], int(total)

    def service_exists(self, service: str) -> bool:
        """Whether any instance is registered for ``service``."""
        with self.read() as conn:
            query = sa.select(t.instances.c.instance_id).where(t.instances.c.service == service)
            row = conn.execute(query.limit(1)).first()
            return row is not None

    # -- runs ---------------------------------------------------------------------------
    def create_run(
        self,
        run: RunRecord,
        members: Sequence[RunInstanceRecord],
        take_over_from: str | None = None,
    ) -> None:
        """Record a run and its instances, and lock those instances, atomically.

        Raises ConflictError if the run ID exists or any instance is busy in another run.
        ``take_over_from`` hands that run's locks on these instances to the new run in the
        same transaction (an automatic rollback takes over from its deployment).
        """
        try:
            self._create_run(run, members, take_over_from)
        except sa.exc.IntegrityError:
            # Two writers raced past the checks (possible on PostgreSQL): the primary keys
            # of runs and instance_locks let exactly one of them in.
            raise ConflictError(
                f"run {run.run_id} conflicts with a run recorded at the same moment "
                "(same ID, or one of its instances)",
                key=run.run_id,
            ) from None

    def _create_run(
        self,
        run: RunRecord,
        members: Sequence[RunInstanceRecord],
        take_over_from: str | None,
    ) -> None:
        now = _t(run.created_at)
        with self.write() as conn:
            if conn.execute(
                sa.select(t.runs.c.run_id).where(t.runs.c.run_id == run.run_id)
            ).first():
                raise ConflictError(f"run {run.run_id} already exists", key=run.run_id)
            if take_over_from is not None:
                conn.execute(
                    t.instance_locks.delete().where(
                        t.instance_locks.c.run_id == take_over_from,
                        t.instance_locks.c.instance_id.in_([m.instance_id for m in members]),
                    )
                )
                conn.execute(
                    t.runs.update()
                    .where(t.runs.c.run_id == take_over_from)
                    .values(rollback_run_id=run.run_id)
                )
            busy = conn.execute(
                sa.select(t.instance_locks.c.instance_id, t.instance_locks.c.run_id)
                .where(t.instance_locks.c.instance_id.in_([m.instance_id for m in members]))
                .order_by(t.instance_locks.c.instance_id)
            ).first()
            if busy is not None:
                raise ConflictError(
                    f"instance {busy.instance_id} is busy in run {busy.run_id}",
                    key=busy.instance_id,
                )
            conn.execute(t.runs.insert().values(**_run_values(run)))
            conn.execute(
                t.run_instances.insert(),
                [_member_values(m) for m in members],
            )
            conn.execute(
                t.instance_locks.insert(),
                [
                    {"instance_id": m.instance_id, "run_id": run.run_id, "locked_at": now}
                    for m in members
                ],
            )

    def get_run(self, run_id: str) -> RunRecord | None:
        """A run by ID, or None."""
        with self.read() as conn:
            row = conn.execute(sa.select(t.runs).where(t.runs.c.run_id == run_id)).first()
            return None if row is None else _run(row)

    def get_run_with_members(
        self, run_id: str
    ) -> tuple[RunRecord, list[RunInstanceRecord]] | None:
        """A run and its instances from one consistent snapshot, or None."""
        with self.read() as conn:
            row = conn.execute(sa.select(t.runs).where(t.runs.c.run_id == run_id)).first()
            if row is None:
                return None
            members = conn.execute(
                sa.select(t.run_instances)
                .where(t.run_instances.c.run_id == run_id)
                .order_by(t.run_instances.c.position)
            )
            return _run(row), [_member(m) for m in members]

    def run_status_rows(self, run_id: str) -> tuple[RunRecord, list[tuple[Any, ...]]] | None:
        """A run and, per instance in run order, the columns of its status entry:
        (instance_id, current_version, target_version, started_at, completed_at,
        error_message, status, attempts, phase, batch, previous_version), times as stored.

        The status path reads runs of 10,000 instances: plain tuples, no record objects.
        """
        ri = t.run_instances
        with self.read() as conn:
            row = conn.execute(sa.select(t.runs).where(t.runs.c.run_id == run_id)).first()
            if row is None:
                return None
            rows = conn.execute(
                sa.select(ri.c.instance_id, ri.c.current_version, ri.c.target_version,
                          ri.c.started_at, ri.c.completed_at, ri.c.error_message, ri.c.status,
                          ri.c.attempts, ri.c.phase, ri.c.batch, ri.c.previous_version)
                .where(ri.c.run_id == run_id)
                .order_by(ri.c.position)
            ).all()
            return _run(row), [tuple(r) for r in rows]

    def service_version_rows(self, service: str) -> list[tuple[str, str, str | None]]:
        """(instance_id, version, last updated as stored) of every instance of a service."""
        i = t.instances
        with self.read() as conn:
            rows = conn.execute(
                sa.select(i.c.instance_id, i.c.version,
                          sa.func.coalesce(i.c.version_updated_at, i.c.last_heartbeat))
                .where(i.c.service == service)
                .order_by(i.c.instance_id)
            ).all()
            return [(r[0], r[1], r[2]) for r in rows]

    def run_summaries(self, service: str, limit: int) -> list[RunSummary]:
        """Newest runs of a service with their per-status instance counts."""
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
            .where(t.runs.c.service == service)
            .order_by(t.runs.c.created_at.desc())
            .limit(limit)
        )
        with self.read() as conn:
            return [_summary(r) for r in conn.execute(query)]

    def set_run_status(
        self,
        run_id: str,
        status: Status,
        *,
        error_message: str | None = None,
        finished: bool = False,
    ) -> None:
        """Move a run to ``status``; a finished run also releases its instance locks."""
        now = utcnow()
        values: dict[str, Any] = {"status": status.value, "updated_at": _t(now)}
        if error_message is not None:
            values["error_message"] = error_message
        if finished:
            values.update(finished_at=_t(now), lease_owner=None, lease_expires_at=None)
        with self.write() as conn:
            conn.execute(t.runs.update().where(t.runs.c.run_id == run_id).values(**values))
            if finished:
                conn.execute(t.instance_locks.delete().where(t.instance_locks.c.run_id == run_id))

    def apply_updates(self, run_id: str, updates: Sequence[InstanceUpdate]) -> None:
        """Apply folded event updates to a run's instances, the registry and release history."""
        if not updates:
            return
        now = utcnow()
        with self.write() as conn:
            for up in updates:
                values = up.member_values()
                if values:
                    conn.execute(
                        t.run_instances.update()
                        .where(
                            t.run_instances.c.run_id == run_id,
                            t.run_instances.c.instance_id == up.instance_id,
                        )
                        .values(**values)
                    )
                if up.current_version is not None:
                    _set_instance_version(conn, up.instance_id, up.current_version, now)
                if up.release is not None:
                    _record_release(conn, up.instance_id, run_id, up.release, now)
            conn.execute(
                t.runs.update()
                .where(t.runs.c.run_id == run_id)
                .values(updated_at=_t(now))
            )

    def finish_members(
        self, run_id: str, status: Status, error_message: str, only: Iterable[Status]
    ) -> int:
        """Close every instance of a run still in one of ``only`` statuses; returns the count."""
        now = _t(utcnow())
        with self.write() as conn:
            result = conn.execute(
                t.run_instances.update()
                .where(
                    t.run_instances.c.run_id == run_id,
                    t.run_instances.c.status.in_([s.value for s in only]),
                )
                .values(status=status.value, error_message=error_message, completed_at=now)
            )
            return int(result.rowcount or 0)

    # -- leases -------------------------------------------------------------------------
    def acquire_lease(self, run_id: str, owner: str, seconds: float, pid: int) -> bool:
        """Take the run's lease if it is free or expired; True when this owner holds it."""
        now = utcnow()
        expires = now.timestamp() + seconds
        with self.write() as conn:
            result = conn.execute(
                t.runs.update()
                .where(
                    t.runs.c.run_id == run_id,
                    t.runs.c.finished_at.is_(None),
                    sa.or_(
                        t.runs.c.lease_owner.is_(None),
                        t.runs.c.lease_owner == owner,
                        t.runs.c.lease_expires_at < _t(now),
                    ),
                )
                .values(
                    lease_owner=owner,
                    lease_expires_at=_t(datetime.fromtimestamp(expires, now.tzinfo)),
                    worker_pid=pid,
                )
            )
            return bool(result.rowcount)

    def renew_lease(self, run_id: str, owner: str, seconds: float) -> bool:
        """Extend a held lease; False if another owner took it."""
        now = utcnow()
        expires = datetime.fromtimestamp(now.timestamp() + seconds, now.tzinfo)
        with self.write() as conn:
            result = conn.execute(
                t.runs.update()
                .where(t.runs.c.run_id == run_id, t.runs.c.lease_owner == owner)
                .values(lease_expires_at=_t(expires))
            )
            return bool(result.rowcount)

    def request_cancel(self, run_id: str) -> datetime:
        """Record a cancel request (idempotent); returns when it was first requested."""
        now = utcnow()
        with self.write() as conn:
            conn.execute(
                t.runs.update()
                .where(t.runs.c.run_id == run_id, t.runs.c.cancel_requested_at.is_(None))
                .values(cancel_requested_at=_t(now))
            )
            value = conn.execute(
                sa.select(t.runs.c.cancel_requested_at).where(t.runs.c.run_id == run_id)
            ).scalar_one()
        return parse_time(value)

    def cancel_requested(self, run_id: str) -> bool:
        """Whether a cancel was requested for the run."""
        with self.read() as conn:
            value = conn.execute(
                sa.select(t.runs.c.cancel_requested_at).where(t.runs.c.run_id == run_id)
            ).scalar_one_or_none()
            return value is not None

    def busy_runs(self, instance_ids: Iterable[str]) -> dict[str, str]:
        """Instance ID -> the run holding its lock, for the given instances."""
        wanted = list(instance_ids)
        with self.read() as conn:
            rows = conn.execute(
                sa.select(t.instance_locks.c.instance_id, t.instance_locks.c.run_id).where(
                    t.instance_locks.c.instance_id.in_(wanted)
                )
            )
            return {r.instance_id: r.run_id for r in rows}

    def stale_runs(self, pending_grace: float) -> list[RunRecord]:
        """Unfinished runs whose worker is gone: lease expired, or never taken in time."""
        now = utcnow()
        unclaimed_before = datetime.fromtimestamp(now.timestamp() - pending_grace, now.tzinfo)
        with self.read() as conn:
            rows = conn.execute(
                sa.select(t.runs).where(
                    # unfinished runs are pending or in progress: ix_runs_status serves
                    # this, so the sweep on every status read never scans all runs
                    t.runs.c.status.in_([Status.PENDING.value, Status.IN_PROGRESS.value]),
                    t.runs.c.finished_at.is_(None),
                    sa.or_(
                        t.runs.c.lease_expires_at < _t(now),
                        sa.and_(
                            t.runs.c.lease_owner.is_(None),
                            t.runs.c.created_at < _t(unclaimed_before),
                        ),
                    ),
                )
            )
            return [_run(r) for r in rows]

    def record_observations(
        self, observed: dict[str, str], *, authoritative: bool
    ) -> None:
        """Store what a probe read on the hosts (instance ID -> version on disk).

        ``authoritative`` (after a cancel or a lost worker, or ``refresh --adopt``) makes
        the observed version the recorded one; otherwise a different version is kept as
        drift next to the record, for a person to look at.
        """
        now = utcnow()
        with self.write() as conn:
            for instance_id, version in observed.items():
                values: dict[str, Any] = {
                    "observed_version": version,
                    "observed_at": _t(now),
                    "last_heartbeat": _t(now),
                }
                if authoritative:
                    _set_instance_version(conn, instance_id, version, now)
                conn.execute(
                    t.instances.update()
                    .where(t.instances.c.instance_id == instance_id)
                    .values(**values)
                )

    # -- release history ----------------------------------------------------------------
    def release_history(self, instance_id: str) -> list[dict[str, str]]:
        """Versions that completed on an instance, newest first."""
        with self.read() as conn:
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
        for entry in self.release_history(instance_id):
            if entry["version"] == version:
                return entry
        return None

    def counts(self) -> dict[str, int]:
        """Row count of every table (used by tests to prove nothing was stored)."""
        with self.read() as conn:
            return {
                table.name: int(
                    conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
                )
                for table in (t.instances, t.runs, t.run_instances, t.instance_locks, t.releases)
            }


# -- helpers ------------------------------------------------------------------------------
def _prepare_sqlite_file(path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise ConfigError(f"cannot create the data directory {path.parent}: {exc}") from None
    if not os.access(path.parent, os.W_OK | os.X_OK):
        raise ConfigError(f"the data directory {path.parent} is not writable")
    if path.exists() and not os.access(path, os.R_OK | os.W_OK):
        raise ConfigError(f"the database {path} is not readable and writable")
    # SQLite gives its -wal and -shm files the database file's mode: create it owner-only
    # before SQLite does, and tighten files an older floy left readable.
    try:
        os.close(os.open(path, os.O_CREAT | os.O_RDWR, 0o600))
        for name in (path.name, f"{path.name}-wal", f"{path.name}-shm"):
            if (path.parent / name).exists():
                os.chmod(path.parent / name, 0o600)
    except OSError as exc:
        raise ConfigError(f"cannot create the database {path}: {exc}") from None


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, _record: Any) -> None:
        # We issue BEGIN ourselves (below); pysqlite's implicit transactions would defer it.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        write = conn.get_execution_options().get("floy_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def _set_instance_version(conn: Connection, instance_id: str, version: str, now: datetime) -> None:
    # The module or probe just read this version on the host: it is also what was observed.
    # One statement: this runs for every finished instance of every run.
    stamp = _t(now)
    conn.execute(
        t.instances.update()
        .where(t.instances.c.instance_id == instance_id)
        .values(
            last_heartbeat=stamp,
            observed_version=version,
            observed_at=stamp,
            version_updated_at=sa.case(
                (t.instances.c.version != version, stamp),
                else_=t.instances.c.version_updated_at,
            ),
            version=version,
        )
    )


def _record_release(
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
            deployed_at=_t(now),
        )
    )


# -- row mappers: a stored value floy cannot read names its table, row and column -------------
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


def _metadata(r: Any) -> dict[str, str]:
    value = _json_object(r, "metadata_json")
    for name, item in value.items():
        if not isinstance(item, str):
            raise _BadValue("metadata_json", f"the value of {name!r} is not a string")
    return value


def _instance(r: Any) -> InstanceRecord:
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


def _run_values(run: RunRecord) -> dict[str, Any]:
    return {
        "run_id": run.run_id,
        "kind": run.kind,
        "service": run.service,
        "version": run.version,
        "status": run.status.value,
        "params_json": json.dumps(run.params, sort_keys=True),
        "created_by": run.created_by,
        "created_at": _t(run.created_at),
        "updated_at": _t(run.updated_at),
        "finished_at": _t(run.finished_at),
        "error_message": run.error_message,
        "parent_run_id": run.parent_run_id,
    }


def _run(r: Any) -> RunRecord:
    try:
        return RunRecord(
            run_id=r.run_id,
            kind=r.kind,
            service=r.service,
            version=r.version,
            status=_status(r),
            params=_json_object(r, "params_json"),
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


def _summary(r: Any) -> RunSummary:
    try:
        return RunSummary(
            run_id=r.run_id, kind=r.kind, version=r.version, status=_status(r),
            created_by=r.created_by, started_at=_time(r, "created_at"),
            finished_at=_opt_time(r, "finished_at"), total=int(r.total or 0),
            completed=int(r.completed or 0), failed=int(r.failed or 0),
            cancelled=int(r.cancelled or 0), parent_run_id=r.parent_run_id,
            rollback_run_id=r.rollback_run_id, error_message=r.error_message,
        )
    except _BadValue as exc:
        raise exc.in_row(t.runs.name, r.run_id) from None


def _member_values(m: RunInstanceRecord) -> dict[str, Any]:
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
        "started_at": _t(m.started_at),
        "completed_at": _t(m.completed_at),
        "error_message": m.error_message,
        "package_url": m.package_url,
        "package_sha256": m.package_sha256,
    }


def _member(r: Any) -> RunInstanceRecord:
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
