"""The worker: owns one run through a lease in the store and carries it to its end.

Started as ``python -m orchestrator.engine.worker RUN_ID`` (settings arrive as JSON on
stdin, so a database password never shows in ``ps``), or in-process by the inline executor.
The store is the single source of truth: progress is written as events arrive, so any
process can read it.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from orchestrator.ansible import plan as planning
from orchestrator.ansible import remote, runner
from orchestrator.ansible.probe import probe_instances
from orchestrator.domain import canary, closing, placement
from orchestrator.domain.canary import DecisionKind
from orchestrator.domain.events import FoldState
from orchestrator.domain.records import InstanceRecord, RunInstanceRecord, RunKind, RunRecord
from orchestrator.engine.attempts import (
    resumed_vars,
    set_aside,
    stepped_vars,
    with_member_package,
)
from orchestrator.engine.autorollback import start_automatic
from orchestrator.engine.gate import Gatekeeper, cancel_reason, rolls_back
from orchestrator.engine.ingest import EventSink
from orchestrator.engine.lease import LeaseKeeper, owner_name
from orchestrator.engine.reaper import Reaper
from orchestrator.engine.settle import Probe, apply_closing
from orchestrator.engine.spawn import start_worker_process
from orchestrator.models import Status
from orchestrator.settings import Settings
from orchestrator.store import StaleWriterError, Store
from orchestrator.store.notify import Listener, poll_interval
from orchestrator.timefmt import format_time

log = logging.getLogger(__name__)

Execute = runner.Execute
# How often the worker reads the store for a cancel request (runner asks every 0.2 s).
CANCEL_CHECK_SECONDS = 0.25
# As often while a daemon's listener hears cancels as they are made (PostgreSQL NOTIFY):
# the read only covers a notification lost while its connection was down.
LISTENING_CANCEL_CHECK_SECONDS = 2.0
# How long the end of a run waits for the store to come back (a database restart) before
# giving the run up to the reaper.
STORE_RETRY_SECONDS = 30.0
#: How many times a worker resumes a run it stopped because the store was unreachable.
MAX_SELF_RESUMES = 3


class Worker:
    """Carries runs: lease, bake, execute, fold events into the store, close."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        execute: Execute = runner.execute,
        probe: Probe | None = None,
        listener: Listener | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.execute = execute
        self.listener = listener  # a daemon's: cancels heard as they are made
        self.probe: Probe = probe or functools.partial(probe_instances, settings)
        self.owner = owner_name(settings.node_name)

    def run(self, run_id: str, hand_back: threading.Event | None = None,
            resumes: int = MAX_SELF_RESUMES) -> Status | None:
        """Carry ``run_id`` to its end; None if another process holds it. Once
        ``hand_back`` is set (a stopping daemon's grace is over) the run is stopped and
        given back unfinished (``pending``) instead. A run this worker stopped because it
        could not renew its lease is handed back and resumed by this worker, up to
        ``resumes`` times."""
        if not self.store.leases.acquire(run_id, self.owner, self.settings.lease_seconds,
                                         os.getpid()):
            log.info("run %s is owned by another worker or finished", run_id)
            return None
        lease = LeaseKeeper(self.store, run_id, self.owner, self.settings.lease_seconds)
        lease.start()
        follow_up: str | None = None
        try:
            status, follow_up = self._carry(run_id, lease, hand_back or threading.Event())
            if status is Status.PENDING and lease.cut_off.is_set() and resumes > 0:
                # It stopped itself while the store was unreachable and has handed the run
                # back: carry it on (unless another process claims it first).
                lease.close()
                return self.run(run_id, hand_back, resumes - 1)
        except StaleWriterError as exc:
            log.warning("%s; this worker leaves the run to the process that took it over",
                        exc)
            return None
        except Exception as exc:
            log.exception("run %s failed inside floy", run_id)
            self._abort(run_id, f"internal error in the worker: {exc}")
            status = Status.FAILED
        finally:
            lease.close()
        if follow_up is not None:
            self.run(follow_up, hand_back)  # the automatic rollback, by this same worker
        return status

    def _carry(self, run_id: str, lease: LeaseKeeper,
               hand_back: threading.Event) -> tuple[Status, str | None]:
        loaded = self.store.runs.with_members(run_id)
        if loaded is None:
            raise LookupError(f"run {run_id} vanished from the store")
        run, members = loaded
        if run.cancel_requested_at is not None:
            return self._close(run, self._cancelled(run, members))
        # A run handed back by a stopping daemon resumes with the instances still pending.
        todo = [m for m in members if m.status is Status.PENDING]
        resumed = len(todo) < len(members)
        if not todo:
            return self._close(run, closing.Closing())
        instances = self.store.instances.get(m.instance_id for m in todo)
        self.store.runs.set_status(run_id, Status.IN_PROGRESS, owner=self.owner)
        if run.kind == RunKind.ROLLBACK:
            extravars = planning.rollback_extravars(run, self.settings)
            host_vars = planning.rollback_host_vars(todo)
        else:
            extravars = planning.deploy_extravars(run, self.settings)
            host_vars = None
        if run.request.steps:
            plays = canary.stepped_plays(run, members)
        else:
            plays = [(0, label, ids) for label, ids in placement.grouped(
                [m.instance_id for m in todo],
                [run.request.node_of(m.instance_id) for m in todo]
                if run.request.nodes else ())]
        again = set_aside(self.settings, run_id) or resumed  # an earlier attempt ran
        if (again or len(plays) > 1) and not run.request.steps:
            # the run's shape kept: its first batch size, what is left of its budget
            extravars.update(resumed_vars(run, members))
        if again:
            log.info("run %s resumes with %d of %d instance(s)", run_id, len(todo),
                     len(members))
        by_id = {m.instance_id: m for m in members}
        gates = Gatekeeper(self.settings, self.store, run, self.owner,
                           self._stop_check(run_id, lease, hand_back))
        end: closing.PlaybookEnd | None = None
        started: set[int] = set()
        for number, (batch, label, ids) in enumerate(plays):
            if number > 0:
                members = self._members(run_id)
                if sum(m.status is Status.FAILED for m in members) > run.request.max_failures:
                    break  # the budget is spent: the plays left are not started
                set_aside(self.settings, run_id)
                if not run.request.steps:
                    extravars.update(resumed_vars(run, members))
            if run.request.steps and batch not in started:
                if batch > 1:
                    stopped = self._hold_gate(run, gates, batch - 1, lease, hand_back)
                    if stopped is not None:
                        return stopped
                started.add(batch)
                gates.record(batch, DecisionKind.BATCH, f"{len(ids)} instance(s)")
            if run.request.steps:
                extravars.update(stepped_vars(run, self._members(run_id), len(ids)))
            node = label or run.request.node
            where = f"node {node}" if node else "this worker"
            if run.request.steps:
                log.info("run %s: batch %d, %d instance(s) on %s", run_id, batch, len(ids),
                         where)
            elif len(plays) > 1:
                log.info("run %s: group %d of %d, %d instance(s) on %s", run_id, number + 1,
                         len(plays), len(ids), where)
            outcome, sink = self._play(run, [instances[i] for i in ids if i in instances],
                                       extravars, host_vars, node, lease, hand_back, by_id)
            stopped_as = self._stopped(run, outcome, sink, lease, hand_back)
            if stopped_as is not None:
                return stopped_as, None
            end = closing.PlaybookEnd(outcome.status, outcome.rc, outcome.stdout_tail,
                                      stats_seen=sink.state.finished)
            left = {Status.PENDING, Status.IN_PROGRESS}
            if any(m.status in left for m in self._members(run_id) if m.instance_id in ids):
                break  # this play did not play it through: the run ends here
        if end is None:  # a resumed stepped run whose instances were all played
            return self._close(run, closing.Closing())
        return self._close(run, closing.after_playbook(run, self._members(run_id), end))

    def _hold_gate(self, run: RunRecord, gates: Gatekeeper, batch: int, lease: LeaseKeeper,
                   hand_back: threading.Event) -> tuple[Status, str | None] | None:
        """Hold the gate after ``batch``; None once passed, else how the run ended."""
        end = gates.hold(batch)
        if end.outcome == "passed":
            return None
        if lease.lost.is_set():
            raise StaleWriterError(run.run_id, "another process took its lease over")
        loaded = self._when_store_answers(run.run_id)
        if end.outcome == "failed":
            return self._close(run, closing.after_gate(loaded[1], end.message))
        if loaded[0].cancel_requested_at is None:
            why = "the store was unreachable" if lease.cut_off.is_set() else "it is stopping"
            return self._hand_back(run, loaded[1], why), None
        return self._close(run, closing.after_cancel(loaded[1], cancel_reason(self.store, run)))

    def _stop_check(self, run_id: str, lease: LeaseKeeper,
                    hand_back: threading.Event) -> Callable[[], bool]:
        """Whether the run must stop now (a cancel or abort, the lease, the daemon
        stopping): read from the store at most every few tenths of a second."""
        checks = {"next": 0.0}

        def stopped() -> bool:
            if lease.lost.is_set() or lease.is_cut_off() or hand_back.is_set():
                return True
            now = time.monotonic()
            heard = self.listener is not None and self.listener.cancel_heard(run_id)
            if now < checks["next"] and not heard:
                return False
            checks["next"] = now + poll_interval(self.listener, CANCEL_CHECK_SECONDS,
                                                 LISTENING_CANCEL_CHECK_SECONDS)
            return self.store.runs.cancel_requested(run_id)

        return stopped

    def _when_store_answers(self, run_id: str) -> tuple[RunRecord, list[RunInstanceRecord]]:
        """The run and its instances, waiting (as the last flush does) for a store that
        went away to answer again: a worker that stopped itself because it was cut off
        reads the run once the store is back, then hands it back or finds it taken over."""
        give_up = time.monotonic() + max(STORE_RETRY_SECONDS, self.settings.lease_seconds)
        while True:
            try:
                loaded = self.store.runs.with_members(run_id)
                break
            except Exception as exc:
                if time.monotonic() >= give_up:
                    raise
                log.info("run %s: waiting for the store to answer (%s)", run_id,
                         str(exc).strip().splitlines()[0] if str(exc).strip() else exc)
                time.sleep(1.0)
        assert loaded is not None
        return loaded

    def _members(self, run_id: str) -> list[RunInstanceRecord]:
        loaded = self.store.runs.with_members(run_id)
        assert loaded is not None
        return loaded[1]

    def _play(self, run: RunRecord, instances: list[InstanceRecord],
              extravars: dict[str, Any], host_vars: dict[str, dict[str, Any]] | None,
              node: str, lease: LeaseKeeper, hand_back: threading.Event,
              by_id: dict[str, RunInstanceRecord],
              ) -> tuple[runner.RunnerOutcome, EventSink]:
        """One ansible-playbook over ``instances``, here or on ``node``, its events folded
        into the store as they come."""
        run_id = run.run_id
        plan = planning.bake(self.settings, run, instances, extravars, host_vars)
        sink = EventSink(
            self.store.runs,
            run_id,
            self.owner,
            FoldState.start(
                [i.instance_id for i in instances],
                package_url=run.request.package_url,
                sha256=run.request.package_sha256,
            ),
            # a rollback's instances each have their own package
            transform=(lambda u: with_member_package(u, by_id))
            if run.kind == RunKind.ROLLBACK else None,
        )
        stopped = self._stop_check(run_id, lease, hand_back)

        def should_cancel() -> bool:
            # the lease first: a worker cut off from the store must not wait on it to stop
            if sink.taken_over is not None or lease.lost.is_set() or lease.is_cut_off():
                return True
            sink.flush_if_due()  # runner polls every 0.2 s: keeps status fresh when quiet
            return stopped()

        execute = self.execute
        if node:
            execute = functools.partial(remote.execute_on_node,
                                        remote.configured_node(self.settings, node))
        try:
            outcome = execute(plan, sink, should_cancel)
        finally:
            # A database restart during the run left updates pending: they go in first.
            sink.flush_within(max(STORE_RETRY_SECONDS, self.settings.lease_seconds))
        log.info("run %s: ansible-playbook ended %s (rc=%s) after %.1f s, %d events", run_id,
                 outcome.status, outcome.rc, outcome.seconds, outcome.events)
        return outcome, sink

    def _stopped(self, run: RunRecord, outcome: runner.RunnerOutcome, sink: EventSink,
                 lease: LeaseKeeper, hand_back: threading.Event) -> Status | None:
        """How the run ended if its playbook was stopped (a cancel, the store away, the
        daemon stopping), or None if the playbook ran its course. Raises StaleWriterError
        if another process took the run over meanwhile."""
        if sink.taken_over is not None:
            raise sink.taken_over
        if lease.lost.is_set():
            raise StaleWriterError(run.run_id, "another process took its lease over")
        if not outcome.cancelled:
            return None
        loaded = self._when_store_answers(run.run_id)
        if loaded[0].cancel_requested_at is None and lease.cut_off.is_set():
            return self._hand_back(run, loaded[1], "the store was unreachable")
        if loaded[0].cancel_requested_at is None and hand_back.is_set():
            return self._hand_back(run, loaded[1], "it is stopping")
        return self._close(run, closing.after_cancel(loaded[1], cancel_reason(self.store, run)))[0]

    def _close(self, run: RunRecord, how: closing.Closing) -> tuple[Status, str | None]:
        """End the run as ``how`` says; a failed deployment with ``auto_rollback`` records
        its automatic rollback, whose ID is returned for this worker to carry next."""
        apply_closing(self.probe, self.store, run, how, self.owner)
        status, message, follow_up = how.status, how.message, None
        loaded = self.store.runs.with_members(run.run_id)
        assert loaded is not None
        if status is None:
            status, message = closing.verdict(loaded[1], how.playbook)
        if run.kind == RunKind.DEPLOY and rolls_back(self.store, run, how, status):
            follow_up, note = start_automatic(
                self.store, run, loaded[1],
                allowed_hosts=self.settings.allowed_package_hosts, owner=self.owner)
            message += f"; {note}"
        self.store.runs.set_status(run.run_id, status, error_message=message, finished=True,
                                   owner=self.owner)
        return status, follow_up

    def _cancelled(self, run: RunRecord, members: list[RunInstanceRecord]) -> closing.Closing:
        """How a run cancelled while no playbook of it ran closes: before it started, or
        (handed back, or at a gate) with what it already did kept."""
        if all(m.status is Status.PENDING for m in members):
            return closing.before_start()
        return closing.after_cancel(members, cancel_reason(self.store, run))

    def _hand_back(self, run: RunRecord, members: list[RunInstanceRecord], why: str) -> Status:
        """Give the run back unfinished (see :func:`orchestrator.domain.closing.handed_back`)."""
        how = closing.handed_back(members, f"handed back by worker {self.owner}: {why}")
        apply_closing(self.probe, self.store, run, how, self.owner)
        self.store.runs.hand_back(run.run_id, self.owner,
                                  f"{how.message} at {format_time(self.store.db.clock())}; "
                                  "the next worker to claim it resumes it")
        log.info("run %s handed back", run.run_id)
        return Status.PENDING

    def close_unclaimed(self, run_id: str) -> str | None:
        """Close a run cancelled while no worker held it (before any claimed it, or handed
        back), under its lease so that no worker starts it meanwhile; a run not cancelled is
        handed back untouched. Returns the rollback an abort asked for, to be carried."""
        if not self.store.leases.acquire(run_id, self.owner, self.settings.lease_seconds,
                                         os.getpid()):
            return None  # a worker claimed it: that worker sees the cancel
        loaded = self.store.runs.with_members(run_id)
        if loaded is not None and loaded[0].cancel_requested_at is not None:
            return self._close(loaded[0], self._cancelled(*loaded))[1]
        self.store.leases.release(run_id, self.owner)
        return None

    def _abort(self, run_id: str, reason: str) -> None:
        try:
            run = self.store.runs.get(run_id)
            if run is not None:
                self._close(run, closing.after_crash(reason))
        except StaleWriterError as exc:
            log.warning("could not record the failure: %s", exc)
        except Exception:
            log.exception("could not record the failure of %s", run_id)


def main(argv: list[str] | None = None) -> int:
    """Entry point of a detached worker process."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m orchestrator.engine.worker RUN_ID  (settings JSON on stdin)",
              file=sys.stderr)
        return 2
    settings = Settings.from_json(sys.stdin.read())
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    store = Store.open(settings.db_url, io_timeout=settings.db_io_timeout)
    try:
        worker = Worker(settings, store)
        # each worker reaps at its start, and starts workers for runs it hands back at a gate
        Reaper(settings, store, worker.probe,
               resume=functools.partial(start_worker_process, settings)).reap()
        status = worker.run(args[0])
    finally:
        store.close()
    return 0 if status in (Status.COMPLETED, None) else 1


if __name__ == "__main__":
    sys.exit(main())
