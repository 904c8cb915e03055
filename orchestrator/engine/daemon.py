"""``floy worker``: a long-running daemon that claims queued runs and carries them.

Several daemons on several machines share one database. PostgreSQL is the coordination
engine: a daemon claims queued runs with ``SELECT … FOR UPDATE SKIP LOCKED`` (two daemons
never claim the same run, and neither waits on the other's claim), holds one lease per run
and renews it, and the instance locks and run IDs are primary keys, so they hold across
daemons without any process memory. On SQLite (one machine) writers are serialised by
``BEGIN IMMEDIATE``, which gives the same guarantee.

One daemon carries up to ``max_runs`` runs at once, each in a thread of its own (one
ansible-playbook process each; ansible-runner installs no signal handler outside the main
thread). Every ``reap_seconds`` (a third of a lease) it runs the reaper, so a run whose
daemon died is closed within a lease and a third, plus its probe. It beats in the
``workers`` table every third of a lease, which tells the reaper that queued runs are
waiting for a slot, not orphaned.

Stopping (SIGTERM or SIGINT): the daemon stops claiming at once, lets its runs go on for
``grace_seconds``, then hands back the ones still going: each stops its ansible-playbook
(SIGTERM, as a cancel does), probes the instances in flight, records what their disks say,
puts them back to pending and releases the lease with the run still unfinished, for the
next daemon to resume. A second signal skips what is left of the grace.

On PostgreSQL the daemon also LISTENs (:mod:`orchestrator.store.notify`): a run queued
anywhere wakes it at once, and a cancel reaches the worker thread carrying the run at once;
its polls then slow to every :data:`LISTENING_POLL_SECONDS` (the queue) and
:data:`~orchestrator.engine.worker.LISTENING_CANCEL_CHECK_SECONDS` (a cancel), for what a
notification could not bring. ``listen=False`` (``floy worker --no-listen``) polls only,
for a connection pooler that cannot carry LISTEN (PgBouncer in transaction mode).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable

from orchestrator.domain.records import WorkerState
from orchestrator.engine.reaper import Reaper
from orchestrator.engine.worker import Worker
from orchestrator.settings import Settings
from orchestrator.store import Store
from orchestrator.store.notify import Listener, poll_interval

log = logging.getLogger(__name__)

#: How long a stopping daemon lets its runs go on before it hands them back.
DEFAULT_GRACE_SECONDS = 60.0
#: How often an idle daemon looks for queued runs.
DEFAULT_POLL_SECONDS = 0.5
#: As often while it listens for them (PostgreSQL NOTIFY): the look only covers what a
#: notification could not bring (one sent while the listener's connection was down).
LISTENING_POLL_SECONDS = 5.0


class WorkerDaemon:
    """Claims queued runs and carries them, up to ``max_runs`` at once, until stopped."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        *,
        max_runs: int = 4,
        poll_seconds: float = DEFAULT_POLL_SECONDS,
        reap_seconds: float | None = None,
        grace_seconds: float = DEFAULT_GRACE_SECONDS,
        listen: bool = True,
        worker: Worker | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.store = store
        self.max_runs = max_runs
        self.poll_seconds = poll_seconds
        self.reap_seconds = (settings.lease_seconds / 3 if reap_seconds is None
                             else reap_seconds)
        self.grace_seconds = grace_seconds
        self.worker = worker or Worker(settings, store)
        self.listen = listen  # LISTEN for queued runs and cancels (PostgreSQL)
        self.listener: Listener | None = None
        self.name = self.worker.owner
        self.reaper = Reaper(settings, store, self.worker.probe)
        self.clock = clock
        self.carrying: dict[str, threading.Thread] = {}
        self.carried = 0
        self.stopping = threading.Event()  # stop claiming, start the grace
        self.hand_back = threading.Event()  # the grace is over: hand the runs back
        self._wake = threading.Event()
        self._lock = threading.Lock()

    # -- control, from signal handlers or another thread --------------------------------------
    def stop(self) -> None:
        """Stop claiming and drain; a second call ends the grace at once."""
        if self.stopping.is_set():
            self.hand_back.set()
        self.stopping.set()
        self._wake.set()

    def wake(self) -> None:
        """Look for queued runs now (a notification arrived)."""
        self._wake.set()

    # -- the loop -------------------------------------------------------------------------
    def serve(self) -> int:
        """Run until stopped; returns how many runs this daemon carried."""
        self.store.workers.register(self.name, self.settings.node_name, os.getpid(),
                                    self.max_runs)
        log.info("worker %s serving: up to %d run(s) at once, lease %.1f s, reaping every "
                 "%.1f s", self.name, self.max_runs, self.settings.lease_seconds,
                 self.reap_seconds)
        if self.listen:
            self.listener = Listener.open(self.store.db.engine, self.settings.db_io_timeout,
                                          self.wake)
        self.worker.listener = self.listener
        try:
            self._serve()
        finally:
            if self.listener is not None:
                self.listener.close()
        return self.carried

    def _serve(self) -> None:
        next_beat = next_reap = self.clock()
        while not self.stopping.is_set():
            now = self.clock()
            if now >= next_beat:
                next_beat = now + self.settings.lease_seconds / 3
                self._beat(WorkerState.RUNNING)
            if now >= next_reap:
                next_reap = now + self.reap_seconds
                self._reap()
            self._claim()
            poll = poll_interval(self.listener, self.poll_seconds, LISTENING_POLL_SECONDS)
            self._wake.wait(max(0.0, min(poll, next_beat - self.clock(),
                                         next_reap - self.clock())))
            self._wake.clear()
        self._drain()

    def _beat(self, state: WorkerState) -> None:
        try:
            self.store.workers.beat(self.name, len(self.carrying), state)
        except Exception as exc:  # the store away: the next beat tries again
            log.warning("heartbeat of %s failed: %s", self.name, _first_line(exc))

    def _reap(self) -> None:
        try:
            with self._lock:
                mine = set(self.carrying)
            for run_id in self.reaper.reap(carrying=mine):
                log.info("reaped %s", run_id)
        except Exception as exc:
            log.warning("reaping failed: %s", _first_line(exc))

    def _claim(self) -> None:
        with self._lock:
            free = self.max_runs - len(self.carrying)
        if free <= 0:
            return
        try:
            claimed = self.store.leases.claim(self.name, self.settings.lease_seconds,
                                              os.getpid(), free)
        except Exception as exc:
            log.warning("claiming queued runs failed: %s", _first_line(exc))
            return
        for run_id in claimed:
            thread = threading.Thread(target=self._carry, args=(run_id,),
                                      name=f"run-{run_id}", daemon=True)
            with self._lock:
                self.carrying[run_id] = thread
                self.carried += 1
            thread.start()

    def _carry(self, run_id: str) -> None:
        try:
            status = self.worker.run(run_id, hand_back=self.hand_back)
            log.info("run %s: %s", run_id, "left to another process" if status is None
                     else status.value)
        except Exception:
            log.exception("carrying %s failed", run_id)
        finally:
            with self._lock:
                self.carrying.pop(run_id, None)
            self._wake.set()

    def _drain(self) -> None:
        """Let the runs go on for the grace, then hand back what is left; then stop."""
        deadline = self.clock() + self.grace_seconds
        log.info("worker %s stopping: %d run(s) in hand, %.0f s of grace", self.name,
                 len(self.carrying), self.grace_seconds)
        self._beat(WorkerState.DRAINING)
        next_beat = self.clock()
        while self.carrying and not self.hand_back.is_set():
            now = self.clock()
            if now >= deadline:
                break
            if now >= next_beat:
                next_beat = now + self.settings.lease_seconds / 3
                self._beat(WorkerState.DRAINING)
            self._wake.wait(min(self.poll_seconds, max(0.0, deadline - now)))
            self._wake.clear()
        if self.carrying:
            log.info("worker %s: handing back %s", self.name, ", ".join(sorted(self.carrying)))
            self.hand_back.set()
        for thread in list(self.carrying.values()):
            thread.join()
        self._beat(WorkerState.STOPPED)
        log.info("worker %s stopped after carrying %d run(s)", self.name, self.carried)


def _first_line(exc: BaseException) -> str:
    """The gist of an error (a database driver's message runs over many lines)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
