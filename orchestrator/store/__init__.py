"""The store: floy's single source of truth, repositories over SQLAlchemy Core.

:class:`Store` opens one database and groups its repositories: ``instances`` (the
registry), ``runs`` (runs, their instances, cancel requests), ``leases`` (leases and
instance locks, claims from the queue), ``history`` (completed releases, run summaries),
``views`` (wide read projections), ``workers`` (the ``floy worker`` daemons),
``actions`` (the audit trail of mutating calls) and ``decisions`` (what was decided at the
gates of stepped deployments). Every
repository method is one transaction; the clock is injected.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.engine import Connection, Engine

from orchestrator.store.actions import Actions
from orchestrator.store.database import Clock, Database, open_engine
from orchestrator.store.decisions import Decisions
from orchestrator.store.history import History
from orchestrator.store.instances import Instances
from orchestrator.store.leases import Leases
from orchestrator.store.runs import Runs, StaleWriterError
from orchestrator.store.views import StatusRow, VersionRow, Views
from orchestrator.store.workers import Workers
from orchestrator.timefmt import utcnow

__all__ = ["Clock", "StaleWriterError", "StatusRow", "Store", "VersionRow"]


class Store:
    """One database and its repositories; safe to share between threads of one process."""

    def __init__(self, engine: Engine, clock: Clock = utcnow) -> None:
        self.engine = engine
        self.db = Database(engine, clock)
        self.instances = Instances(self.db)
        self.runs = Runs(self.db)
        self.leases = Leases(self.db)
        self.history = History(self.db)
        self.views = Views(self.db)
        self.workers = Workers(self.db)
        self.actions = Actions(self.db)
        self.decisions = Decisions(self.db)

    @classmethod
    def open(cls, url: str, clock: Clock = utcnow, io_timeout: float = 10.0) -> Store:
        """Open (creating and migrating when needed) the database at ``url``; a call to a
        database server that stopped answering fails after about ``io_timeout`` seconds.

        Raises ConfigError if the URL or the database is unusable, StoreDataError if the
        database is damaged (a bad schema version, a missing table).
        """
        return cls(open_engine(url, io_timeout), clock)

    def close(self) -> None:
        """Release pooled connections."""
        self.engine.dispose()

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A write transaction (``BEGIN IMMEDIATE`` on SQLite)."""
        with self.db.write() as conn:
            yield conn

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A read transaction: one consistent snapshot."""
        with self.db.read() as conn:
            yield conn
