"""Executors hand a recorded run to a worker. The service only sees the protocol
(:class:`orchestrator.engine.Executor`).

- :class:`ProcessExecutor` (the default) starts a detached worker process that outlives the
  caller: ``execute_deployment`` returns at once and the run goes on if the CLI exits.
- :class:`InlineExecutor` carries the run in the calling thread (for embedding and tests).
- :class:`QueueExecutor` (``executor: queue``) only leaves the run queued: a ``floy worker``
  daemon (:mod:`orchestrator.engine.daemon`), on this machine or another, claims it.

All of them probe in the calling process (a probe is a short read-only playbook).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from orchestrator.domain.records import InstanceRecord, Observation
from orchestrator.engine.reaper import LIVE_WORKER_SECONDS
from orchestrator.engine.spawn import start_worker_process, worker_log_path
from orchestrator.engine.worker import Worker
from orchestrator.settings import Settings
from orchestrator.store import Store

log = logging.getLogger(__name__)


class _LocalWork:
    """What both executors do in the calling process: close unclaimed cancels, probe."""

    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings = settings
        self.store = store
        self.worker = Worker(settings, store)

    def close_unclaimed(self, run_id: str) -> None:
        """Close a run cancelled while no worker held it; the rollback an abort asked for
        is then carried like any run."""
        follow_up = self.worker.close_unclaimed(run_id)
        if follow_up is not None:
            self.submit(follow_up)

    def submit(self, run_id: str) -> None:
        """Carry ``run_id`` (each executor its own way)."""
        raise NotImplementedError

    def resume(self, run_id: str) -> None:
        """Carry on a run the reaper handed back at a gate; by default the next worker
        daemon's claim, or the next command on the run, resumes it."""
        log.info("run %s waits at its gate for a worker to resume it", run_id)

    def probe(self, service: str, instances: Sequence[InstanceRecord],
              node: str = "") -> dict[str, Observation]:
        """Run the probe playbook over ``instances`` here, or through execution node
        ``node`` (the worker's own probe)."""
        return self.worker.probe(service, instances, node=node)


class ProcessExecutor(_LocalWork):
    """Runs each run in its own detached ``python -m orchestrator.engine.worker`` process."""

    def log_path(self, run_id: str) -> Path:
        """Where the worker of ``run_id`` writes its log."""
        return worker_log_path(self.settings, run_id)

    def submit(self, run_id: str) -> None:
        """Start the worker; it takes the run's lease itself."""
        start_worker_process(self.settings, run_id)

    def resume(self, run_id: str) -> None:
        """Start a worker for a run handed back at a gate."""
        start_worker_process(self.settings, run_id)


class InlineExecutor(_LocalWork):
    """Carries each run synchronously in the caller's thread."""

    def submit(self, run_id: str) -> None:
        """Carry the run to its end before returning."""
        self.worker.run(run_id)


class QueueExecutor(_LocalWork):
    """Leaves each run queued in the store for a ``floy worker`` daemon to claim."""

    def submit(self, run_id: str) -> None:
        """Nothing to start: the run is recorded pending and unleased, which is queued. Says
        so when no daemon is alive to claim it (the run waits; the reaper closes it once it
        has waited :data:`~orchestrator.engine.reaper.UNCLAIMED_GRACE_SECONDS` with no daemon
        alive)."""
        if not self.store.workers.live(LIVE_WORKER_SECONDS * self.settings.lease_seconds):
            log.warning("run %s is queued but no floy worker daemon is alive to claim it: "
                        "start one with `floy worker`", run_id)
