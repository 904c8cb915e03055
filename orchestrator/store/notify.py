"""PostgreSQL LISTEN/NOTIFY: a queued run or a cancel reaches the daemons at once.

Without it a daemon finds a queued run by polling (``floy worker --poll``, 0.5 s) and a
worker sees a cancel by reading its run every 0.25 s. With PostgreSQL the transaction that
queues a run (a new run, or one handed back) also sends ``NOTIFY floy_queue``, and the one
that records a cancel sends ``NOTIFY floy_cancel, '<run id>'``; PostgreSQL delivers a
notification only when that transaction commits, so a listener never hears of a row it
cannot read yet. The polls stay, much slower, for what a listener can miss: notifications
sent while its connection was down (after a reconnect it reports a gap, and the daemon
looks at once).

SQLite (one machine) has no notifications: :meth:`Listener.open` returns None there and
the daemon polls as before.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from orchestrator.store.database import server_connect_args

log = logging.getLogger(__name__)

#: A run was queued (created, or handed back unfinished): payload its ID.
QUEUE = "floy_queue"
#: A cancel was requested: payload the run ID.
CANCEL = "floy_cancel"
#: How long a listener waits before it tries a lost connection again.
RECONNECT_SECONDS = 1.0


def notify(conn: Connection, channel: str, payload: str) -> None:
    """Send ``channel`` with ``payload`` when ``conn``'s transaction commits (PostgreSQL;
    nothing elsewhere)."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT pg_notify(:channel, :payload)"),
                     {"channel": channel, "payload": payload})


class Listener:
    """One connection of its own that LISTENs on :data:`QUEUE` and :data:`CANCEL`, in a
    thread: ``on_queue`` is called for every queued run (and after a reconnect, for what
    may have been missed); cancels are kept for :meth:`cancel_heard`. Reconnects by itself
    every :data:`RECONNECT_SECONDS` while the server is away; :attr:`listening` says whether
    notifications can arrive now."""

    def __init__(self, conninfo: str, connect_args: dict[str, Any],
                 on_queue: Callable[[], None]) -> None:
        self._conninfo = conninfo
        self._connect_args = connect_args
        self._on_queue = on_queue
        self._cancels: set[str] = set()
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._listening = threading.Event()
        self._conn: Any = None
        self._thread = threading.Thread(target=self._serve, name="floy-listener", daemon=True)

    @classmethod
    def open(cls, engine: Engine, io_timeout: float,
             on_queue: Callable[[], None]) -> Listener | None:
        """A started listener on ``engine``'s PostgreSQL database; None on SQLite."""
        url = engine.url
        if url.get_backend_name() != "postgresql":
            return None
        libpq = url.set(drivername="postgresql").render_as_string(hide_password=False)
        listener = cls(libpq, server_connect_args(url, io_timeout), on_queue)
        listener._thread.start()
        return listener

    @property
    def listening(self) -> bool:
        """Whether the connection is up and listening (notifications can arrive)."""
        return self._listening.is_set()

    def wait_listening(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the first LISTEN to be in place."""
        return self._listening.wait(timeout)

    def cancel_heard(self, run_id: str) -> bool:
        """Whether a cancel of ``run_id`` was heard (once: the note is taken)."""
        with self._lock:
            if run_id in self._cancels:
                self._cancels.discard(run_id)
                return True
            return False

    def close(self) -> None:
        """Stop listening and close the connection."""
        self._closed.set()
        self._thread.join(timeout=5)

    def _serve(self) -> None:
        import psycopg  # the driver of the postgres extra, needed only here

        first = True
        while not self._closed.is_set():
            try:
                with psycopg.connect(self._conninfo, autocommit=True,
                                     **self._connect_args) as conn:
                    conn.execute(f"LISTEN {QUEUE}")
                    conn.execute(f"LISTEN {CANCEL}")
                    self._listening.set()
                    if first:
                        log.info("listening for queued runs and cancels (LISTEN %s, %s)",
                                 QUEUE, CANCEL)
                    else:
                        log.info("listening for queued runs and cancels again")
                        self._on_queue()  # what was sent while away: look at once
                    first = False
                    while not self._closed.is_set():
                        # a server that went away silently is found by the keepalives
                        for note in conn.notifies(timeout=0.5):
                            self._heard(note.channel, note.payload)
            except psycopg.Error as exc:
                if self._listening.is_set():
                    log.warning("stopped listening for queued runs and cancels (%s); "
                                "polling until the database is back",
                                str(exc).strip().splitlines()[0] if str(exc).strip()
                                else type(exc).__name__)
            finally:
                self._listening.clear()
            self._closed.wait(RECONNECT_SECONDS)

    def _heard(self, channel: str, payload: str) -> None:
        if channel == QUEUE:
            self._on_queue()
        elif channel == CANCEL:
            with self._lock:
                self._cancels.add(payload)


def poll_interval(listener: Listener | None, poll: float, fallback: float) -> float:
    """How long to wait between polls now: ``fallback`` (longer: notifications do the work)
    while ``listener`` is listening, ``poll`` otherwise."""
    return max(poll, fallback) if listener is not None and listener.listening else poll
