"""Database schema (SQLAlchemy Core) and its ordered migrations.

Each migration is a function applied once, in order, inside a transaction; the applied
version is kept in ``floy_schema``. Add a new function at the end, never edit an old one.
Before migrating, an existing database is checked: a version that is not a number or a
table floy created and never drops is damage, refused with a :class:`StoreDataError`.
"""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from orchestrator.errors import ConfigError, StoreDataError

metadata = sa.MetaData()

# Times are stored as RFC 3339 UTC strings: sortable, identical on SQLite and PostgreSQL.
Time = sa.String(32)

schema_version = sa.Table(
    "floy_schema",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("version", sa.Integer, nullable=False),
)

instances = sa.Table(
    "instances",
    metadata,
    sa.Column("instance_id", sa.String(128), primary_key=True),
    sa.Column("service", sa.String(128), nullable=False),
    sa.Column("host", sa.String(253), nullable=False),
    sa.Column("port", sa.Integer, nullable=False),
    sa.Column("version", sa.String(128), nullable=False, server_default=""),
    sa.Column("version_updated_at", Time),
    sa.Column("last_heartbeat", Time),
    sa.Column("metadata_json", sa.Text, nullable=False, server_default="{}"),
    sa.Column("created_at", Time, nullable=False),
    # What the last probe read on the host; differs from `version` when the host drifted.
    sa.Column("observed_version", sa.String(128)),
    sa.Column("observed_at", Time),
    sa.Index("ix_instances_service_version", "service", "version", "instance_id"),
    # Pages of one service in ID order: without it every page sorts the whole service.
    sa.Index("ix_instances_service_id", "service", "instance_id"),
)

runs = sa.Table(
    "runs",
    metadata,
    sa.Column("run_id", sa.String(128), primary_key=True),
    sa.Column("kind", sa.String(16), nullable=False),  # deploy | rollback
    sa.Column("service", sa.String(128), nullable=False),
    sa.Column("version", sa.String(128), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("params_json", sa.Text, nullable=False),
    sa.Column("created_by", sa.String(256), nullable=False, server_default=""),
    sa.Column("created_at", Time, nullable=False),
    sa.Column("updated_at", Time, nullable=False),
    sa.Column("finished_at", Time),
    sa.Column("error_message", sa.Text, nullable=False, server_default=""),
    sa.Column("cancel_requested_at", Time),
    sa.Column("lease_owner", sa.String(128)),
    sa.Column("lease_expires_at", Time),
    sa.Column("worker_pid", sa.Integer),
    sa.Column("parent_run_id", sa.String(128)),
    sa.Column("rollback_run_id", sa.String(128)),
    sa.Index("ix_runs_service_created", "service", "created_at"),
    sa.Index("ix_runs_status", "status"),
    sa.Index("ix_runs_queue", "status", "created_at"),  # claims, oldest queued first
)

run_instances = sa.Table(
    "run_instances",
    metadata,
    sa.Column("run_id", sa.String(128), sa.ForeignKey("runs.run_id"), primary_key=True),
    sa.Column("instance_id", sa.String(128), primary_key=True),
    sa.Column("position", sa.Integer, nullable=False),
    sa.Column("batch", sa.Integer, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("phase", sa.String(32), nullable=False, server_default=""),
    sa.Column("previous_version", sa.String(128), nullable=False, server_default=""),
    sa.Column("current_version", sa.String(128), nullable=False, server_default=""),
    sa.Column("target_version", sa.String(128), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("started_at", Time),
    sa.Column("completed_at", Time),
    sa.Column("error_message", sa.Text, nullable=False, server_default=""),
    sa.Column("package_url", sa.Text, nullable=False, server_default=""),
    sa.Column("package_sha256", sa.String(64), nullable=False, server_default=""),
    sa.Index("ix_run_instances_run_position", "run_id", "position"),
)

# One row per busy instance: the primary key makes "one active run per instance" a constraint.
instance_locks = sa.Table(
    "instance_locks",
    metadata,
    sa.Column("instance_id", sa.String(128), primary_key=True),
    sa.Column("run_id", sa.String(128), nullable=False),
    sa.Column("locked_at", Time, nullable=False),
    sa.Index("ix_instance_locks_run", "run_id"),
)

releases = sa.Table(
    "releases",
    metadata,
    sa.Column("instance_id", sa.String(128), primary_key=True),
    sa.Column("version", sa.String(128), primary_key=True),
    sa.Column("package_url", sa.Text, nullable=False, server_default=""),
    sa.Column("sha256", sa.String(64), nullable=False, server_default=""),
    sa.Column("run_id", sa.String(128), nullable=False),
    sa.Column("deployed_at", Time, nullable=False),
)


#: ``floy worker`` daemons (version 4): see orchestrator/store/workers.py.
workers = sa.Table(
    "workers",
    metadata,
    sa.Column("name", sa.String(128), primary_key=True),
    sa.Column("node", sa.String(253), nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("max_runs", sa.Integer, nullable=False),
    sa.Column("running", sa.Integer, nullable=False, server_default="0"),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("started_at", Time, nullable=False),
    sa.Column("heartbeat_at", Time, nullable=False),
    sa.Column("stopped_at", Time),
)


#: Who did what (version 5): every mutating call, with the caller (an OS user, or an API
#: token's name), for the audit trail next to the runs' own ``created_by``.
actions = sa.Table(
    "actions",
    metadata,
    sa.Column("action_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", Time, nullable=False),
    sa.Column("actor", sa.String(256), nullable=False),
    sa.Column("action", sa.String(32), nullable=False),
    sa.Column("service", sa.String(128), nullable=False, server_default=""),
    sa.Column("subject", sa.String(128), nullable=False, server_default=""),
    sa.Column("detail", sa.Text, nullable=False, server_default=""),
    sa.Index("ix_actions_service_at", "service", "at"),
)


#: The decisions about stepped deployments (version 6): batches started, analysis
#: measurements and verdicts, pauses, promotions and aborts, each with who made it
#: (see orchestrator/domain/canary.py). Append-only.
run_decisions = sa.Table(
    "run_decisions",
    metadata,
    sa.Column("decision_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.String(128), sa.ForeignKey("runs.run_id"), nullable=False),
    sa.Column("batch", sa.Integer, nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("actor", sa.String(256), nullable=False),
    sa.Column("at", Time, nullable=False),
    sa.Column("message", sa.Text, nullable=False, server_default=""),
    sa.Column("data_json", sa.Text, nullable=False, server_default="{}"),
    sa.Index("ix_run_decisions_run", "run_id", "decision_id"),
)


# Columns added after version 1; a database created at version 1 lacks them.
_V2_COLUMNS = {
    "run_instances": ("package_url", "package_sha256"),
    "instances": ("observed_version", "observed_at"),
}


# The tables version 1 created: every database migrated at least once has all of them.
V1_TABLES = (instances, runs, run_instances, instance_locks, releases)


def _v1_initial(conn: Connection) -> None:
    # A new database is created with today's tables; later steps only add what is missing.
    metadata.create_all(conn, tables=list(V1_TABLES))


def _v2_rollback_and_drift(conn: Connection) -> None:
    """Per-instance package of a rollback run; the version a probe observed on the host."""
    inspector = sa.inspect(conn)
    for table, names in _V2_COLUMNS.items():
        present = {c["name"] for c in inspector.get_columns(table)}
        for name in names:
            if name in present:
                continue
            ddl = sa.schema.CreateColumn(metadata.tables[table].c[name]).compile(
                dialect=conn.dialect
            )
            conn.exec_driver_sql(f"ALTER TABLE {table} ADD COLUMN {ddl}")


def _v3_service_page_index(conn: Connection) -> None:
    """Index serving get_service_instances pages (service, ordered by ID)."""
    index = next(i for i in instances.indexes if i.name == "ix_instances_service_id")
    index.create(conn, checkfirst=True)  # a new database already has it (version 1)


def _v4_workers(conn: Connection) -> None:
    """The ``floy worker`` daemons' table, and the index their claims use."""
    workers.create(conn, checkfirst=True)
    index = next(i for i in runs.indexes if i.name == "ix_runs_queue")
    index.create(conn, checkfirst=True)


def _v5_actions(conn: Connection) -> None:
    """The audit trail of mutating calls (who cancelled, registered, reported drift)."""
    actions.create(conn, checkfirst=True)


def _v6_run_decisions(conn: Connection) -> None:
    """The decisions about stepped deployments (progressive delivery)."""
    run_decisions.create(conn, checkfirst=True)


MIGRATIONS: tuple[Callable[[Connection], None], ...] = (
    _v1_initial,
    _v2_rollback_and_drift,
    _v3_service_page_index,
    _v4_workers,
    _v5_actions,
    _v6_run_decisions,
)


def is_current(conn: Connection) -> bool:
    """Whether the schema is at this floy's version (then no write is needed to open it).

    Raises as :func:`migrate` does for a damaged or newer database.
    """
    if not sa.inspect(conn).has_table(schema_version.name):
        return False
    row = conn.execute(sa.select(schema_version.c.version).where(schema_version.c.id == 1))
    current = row.scalar_one_or_none()
    if current is None:
        return False
    _check_version(current)
    if current > 0:
        _check_tables(conn, current)
    return bool(current == len(MIGRATIONS))


def _check_version(current: object) -> None:
    # SQLite keeps whatever was written into an INTEGER column: 'abc' comes back a string.
    if isinstance(current, bool) or not isinstance(current, int) or current < 0:
        raise StoreDataError(schema_version.name, f"{current!r} is not a schema version number",
                             column="version")
    if current > len(MIGRATIONS):
        raise ConfigError(
            f"database schema version {current} is newer than this floy ({len(MIGRATIONS)})"
        )


def migrate(conn: Connection) -> int:
    """Bring the schema up to date; returns the resulting version.

    Raises StoreDataError if the recorded version is not a number or a table is missing
    (the database was damaged or is not floy's), ConfigError if it is newer than this floy.
    """
    schema_version.create(conn, checkfirst=True)
    row = conn.execute(sa.select(schema_version.c.version).where(schema_version.c.id == 1))
    current = row.scalar_one_or_none()
    if current is None:
        conn.execute(schema_version.insert().values(id=1, version=0))
        current = 0
    _check_version(current)
    if current > 0:
        _check_tables(conn, current)
    for number, step in enumerate(MIGRATIONS[current:], start=current + 1):
        step(conn)
        conn.execute(
            schema_version.update().where(schema_version.c.id == 1).values(version=number)
        )
    return len(MIGRATIONS)


def _check_tables(conn: Connection, version: int) -> None:
    """Refuse a migrated database that lacks a table: recreating it empty would hide lost runs
    or instances (a new table added by a later step would be checked from its version on)."""
    present = set(sa.inspect(conn).get_table_names())
    missing = [table.name for table in V1_TABLES if table.name not in present]
    if missing:
        others = f", and so are {', '.join(missing[1:])}" if missing[1:] else ""
        raise StoreDataError(missing[0], f"missing from a database at schema version "
                             f"{version}{others}")
