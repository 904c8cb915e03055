"""Opening the database: the engine, SQLite's settings, migrations, and transactions.

SQLite (a file in WAL mode) is the embedded default; a ``postgresql+psycopg://`` URL selects a
shared store several orchestrator processes can use. A database floy cannot use is a
:class:`ConfigError`; a damaged one (a bad schema version, a missing table) is a
:class:`StoreDataError` naming where it is.
"""

from __future__ import annotations

import math
import os
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

from orchestrator.errors import ConfigError, StoreDataError
from orchestrator.settings import check_db_url
from orchestrator.store import schema
from orchestrator.timefmt import utcnow

Clock = Callable[[], datetime]


class Database:
    """One engine, its clock, and the two kinds of transaction every repository uses."""

    def __init__(self, engine: Engine, clock: Clock) -> None:
        self.engine = engine
        self.clock = clock

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


def server_connect_args(url: sa.engine.URL, io_timeout: float) -> dict[str, object]:
    """libpq settings that bound how long a call to a server that went away (a partition, a
    link down) can hang: ``connect_timeout`` for new connections, ``tcp_user_timeout`` and
    keepalives for an established one, whose TCP retransmissions would otherwise go on for
    many minutes. A worker needs its calls back within a fraction of its lease, to stop its
    playbook before the lease can expire. A setting given in the URL's query is kept."""
    wanted: dict[str, object] = {
        "connect_timeout": max(2, math.ceil(io_timeout)),  # libpq's minimum is 2 s
        "tcp_user_timeout": int(io_timeout * 1000),
        "keepalives": 1,
        "keepalives_idle": max(1, int(io_timeout)),
        "keepalives_interval": 1,
        "keepalives_count": 3,
    }
    return {k: v for k, v in wanted.items() if k not in url.query}


def open_engine(url: str, io_timeout: float = 10.0) -> Engine:
    """An engine on the database at ``url``, created and migrated when needed; a call to
    a database server gives up after about ``io_timeout`` seconds without an answer.

    Raises ConfigError if the URL or the database is unusable, StoreDataError if the
    database is damaged (a bad schema version, a missing table).
    """
    parsed = sa.engine.make_url(check_db_url(url))
    is_sqlite = parsed.get_backend_name() == "sqlite"
    on_disk = is_sqlite and bool(parsed.database) and parsed.database != ":memory:"
    if on_disk:
        _prepare_sqlite_file(Path(str(parsed.database)))
    # A server database may restart under us: test pooled connections before use, so
    # the first statement after a restart does not fail on a dead connection.
    engine = sa.create_engine(
        url, pool_pre_ping=not is_sqlite,
        connect_args={"timeout": 30} if is_sqlite else server_connect_args(parsed, io_timeout))
    if is_sqlite:
        _configure_sqlite(engine)
    where = ((parsed.database or ":memory:") if is_sqlite
             else parsed.render_as_string(hide_password=True))
    db = Database(engine, utcnow)  # opening writes no time: any clock serves
    try:
        # Opening an up-to-date database only reads: many processes opening it at once
        # (readers, the CLI) never queue for the write lock a running worker's lease
        # renewal needs.
        with db.read() as conn:
            current = schema.is_current(conn)
        if not current:
            with db.write() as conn:
                schema.migrate(conn)
    except sa.exc.DatabaseError as exc:  # unreadable, read-only, or not a database at all
        engine.dispose()
        raise ConfigError(f"cannot open the database {where}: {exc.orig}") from None
    except ConfigError as exc:  # damaged (a StoreDataError), or newer than this floy
        engine.dispose()
        if isinstance(exc, StoreDataError):
            raise exc.located(where) from None
        raise
    if on_disk:
        os.chmod(str(parsed.database), stat.S_IRUSR | stat.S_IWUSR)
    return engine


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
