"""The worker: owns one run through a lease in the store and carries it to its end.

Started as ``python -m orchestrator.worker RUN_ID`` (settings arrive as JSON on stdin, so a
database password never shows in ``ps``), or in-process by the inline executor. The store is
the single source of truth: progress is written as events arrive, so any process can read it.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from orchestrator import plan as planning
from orchestrator import runner
from orchestrator.events import FoldState, RunnerEvent, fold_event
from orchestrator.models import Status
from orchestrator.settings import Settings
from orchestrator.store import RunInstanceRecord, RunRecord, Store

log = logging.getLogger(__name__)

Execute = Callable[
    [planning.RunPlan, Callable[[RunnerEvent], None], Callable[[], bool]], runner.RunnerOutcome
]


@dataclass
class _Lease:
    """Keeps the run's lease fresh from a background thread."""

    store: Store
    run_id: str
    owner: str
    seconds: float
    lost: threading.Event
    stop: threading.Event

    def keep(self) -> None:
        while not self.stop.wait(self.seconds / 3):
            try:
                if not self.store.renew_lease(self.run_id, self.owner, self.seconds):
                    log.error("lease on %s was taken by another worker", self.run_id)
                    self.lost.set()
                    return
            except Exception:
                log.exception("lease renewal failed for %s", self.run_id)


class Worker:
    """Carries runs: lease, bake, execute, fold events into the store, finalise."""

    def __init__(self, settings: Settings, store: Store, execute: Execute = runner.execute):
        self.settings = settings
        self.store = store
        self.execute = execute
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"

    def run(self, run_id: str) -> Status | None:
        """Carry ``run_id`` to its end; None if another worker holds it."""
        if not self.store.acquire_lease(run_id, self.owner, self.settings.lease_seconds,
                                        os.getpid()):
            log.info("run %s is owned by another worker or finished", run_id)
            return None
        lease = _Lease(self.store, run_id, self.owner, self.settings.lease_seconds,
                       threading.Event(), threading.Event())
        keeper = threading.Thread(target=lease.keep, name=f"lease-{run_id}", daemon=True)
        keeper.start()
        try:
            return self._carry(run_id, lease)
        except Exception as exc:
            log.exception("run %s failed inside floy", run_id)
            self._abort(run_id, f"internal error in the worker: {exc}")
            return Status.FAILED
        finally:
            lease.stop.set()
            keeper.join(timeout=5)

    def _carry(self, run_id: str, lease: _Lease) -> Status:
        loaded = self.store.get_run_with_members(run_id)
        if loaded is None:
            raise LookupError(f"run {run_id} vanished from the store")
        run, members = loaded
        instances = self.store.get_instances(m.instance_id for m in members)
        ordered = [instances[m.instance_id] for m in members if m.instance_id in instances]
        self.store.set_run_status(run_id, Status.IN_PROGRESS)
        extravars = planning.deploy_extravars(run, self.settings)
        plan = planning.bake(self.settings, run, ordered, extravars)

        state = FoldState.start(
            [m.instance_id for m in members],
            package_url=str(run.params.get("package_url", "")),
            sha256=str(run.params.get("package_sha256", "")),
        )
        holder = {"state": state}

        def on_event(event: RunnerEvent) -> None:
            new_state, updates = fold_event(holder["state"], event)
            holder["state"] = new_state
            if updates:
                self.store.apply_updates(run_id, updates)

        def should_cancel() -> bool:
            return lease.lost.is_set()

        outcome = self.execute(plan, on_event, should_cancel)
        return self._finalise(run, members, holder["state"], outcome)

    def _finalise(
        self,
        run: RunRecord,
        members: list[RunInstanceRecord],
        state: FoldState,
        outcome: runner.RunnerOutcome,
    ) -> Status:
        counts = state.counts()
        failed = counts[Status.FAILED]
        max_failures = int(run.params.get("max_failures", 0))
        ended = f"ansible-playbook ended {outcome.status} (rc={outcome.rc})"
        if counts[Status.PENDING]:
            if failed > max_failures:
                reason = (f"not started: failure budget exhausted ({failed} failed, "
                          f"max_failures {max_failures})")
                self.store.finish_members(run.run_id, Status.CANCELLED, reason, [Status.PENDING])
            else:
                self.store.finish_members(run.run_id, Status.FAILED, f"not started: {ended}",
                                          [Status.PENDING])
        if counts[Status.IN_PROGRESS]:
            self.store.finish_members(run.run_id, Status.FAILED,
                                      f"no result reported: {ended}", [Status.IN_PROGRESS])
        final = self.store.get_run_with_members(run.run_id)
        assert final is not None
        statuses = [m.status for m in final[1]]
        total = len(statuses)
        done = statuses.count(Status.COMPLETED)
        if done == total:
            self.store.set_run_status(run.run_id, Status.COMPLETED, error_message="",
                                      finished=True)
            return Status.COMPLETED
        message = (f"{statuses.count(Status.FAILED)} of {total} instances failed, "
                   f"{statuses.count(Status.CANCELLED)} not started")
        if not state.finished and outcome.stdout_tail and outcome.status != "successful":
            message += f"; {ended}:\n{outcome.stdout_tail}"
        self.store.set_run_status(run.run_id, Status.FAILED, error_message=message,
                                  finished=True)
        return Status.FAILED

    def _abort(self, run_id: str, reason: str) -> None:
        try:
            self.store.finish_members(run_id, Status.FAILED, reason,
                                      [Status.PENDING, Status.IN_PROGRESS])
            self.store.set_run_status(run_id, Status.FAILED, error_message=reason, finished=True)
        except Exception:
            log.exception("could not record the failure of %s", run_id)


def main(argv: list[str] | None = None) -> int:
    """Entry point of a detached worker process."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m orchestrator.worker RUN_ID  (settings JSON on stdin)",
              file=sys.stderr)
        return 2
    settings = Settings.from_json(sys.stdin.read())
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    store = Store.open(settings.db_url)
    try:
        status = Worker(settings, store).run(args[0])
    finally:
        store.close()
    return 0 if status in (Status.COMPLETED, None) else 1


if __name__ == "__main__":
    sys.exit(main())
