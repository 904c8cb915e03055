"""The worker: owns one run through a lease in the store and carries it to its end.

Started as ``python -m orchestrator.worker RUN_ID`` (settings arrive as JSON on stdin, so a
database password never shows in ``ps``), or in-process by the inline executor. The store is
the single source of truth: progress is written as events arrive, so any process can read it.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
import sys
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

from orchestrator import plan as planning
from orchestrator import rollbacks, runner
from orchestrator.events import (
    FoldState,
    InstanceUpdate,
    with_unknown_note,
    without_unknown_note,
)
from orchestrator.ingest import EventSink
from orchestrator.models import Status
from orchestrator.probe import NO_PROBE_RESULT, Observation, probe_instances
from orchestrator.settings import Settings
from orchestrator.store import InstanceRecord, RunInstanceRecord, RunRecord, Store
from orchestrator.timefmt import utcnow

log = logging.getLogger(__name__)

Execute = runner.Execute
# How often the worker reads the store for a cancel request (runner asks every 0.2 s).
CANCEL_CHECK_SECONDS = 0.25
# How long the end of a run waits for the store to come back (a database restart) before
# giving the run up to recovery.
STORE_RETRY_SECONDS = 30.0


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
        follow_up: str | None = None
        try:
            status, follow_up = self._carry(run_id, lease)
        except Exception as exc:
            log.exception("run %s failed inside floy", run_id)
            self._abort(run_id, f"internal error in the worker: {exc}")
            status = Status.FAILED
        finally:
            lease.stop.set()
            keeper.join(timeout=5)
        if follow_up is not None:
            self.run(follow_up)  # the automatic rollback, carried by this same worker
        return status

    def _carry(self, run_id: str, lease: _Lease) -> tuple[Status, str | None]:
        loaded = self.store.get_run_with_members(run_id)
        if loaded is None:
            raise LookupError(f"run {run_id} vanished from the store")
        run, members = loaded
        if run.cancel_requested_at is not None:
            return self._cancel_before_start(run), None
        instances = self.store.get_instances(m.instance_id for m in members)
        ordered = [instances[m.instance_id] for m in members if m.instance_id in instances]
        self.store.set_run_status(run_id, Status.IN_PROGRESS)
        if run.kind == "rollback":
            plan = planning.bake(self.settings, run, ordered,
                                 planning.rollback_extravars(run, self.settings),
                                 planning.rollback_host_vars(members))
        else:
            plan = planning.bake(self.settings, run, ordered,
                                 planning.deploy_extravars(run, self.settings))

        by_id = {m.instance_id: m for m in members}
        sink = EventSink(
            self.store,
            run_id,
            FoldState.start(
                [m.instance_id for m in members],
                package_url=str(run.params.get("package_url", "")),
                sha256=str(run.params.get("package_sha256", "")),
            ),
            # a rollback's instances each have their own package
            transform=(lambda u: _with_member_package(u, by_id))
            if run.kind == "rollback" else None,
        )
        checks = {"next": 0.0}

        def should_cancel() -> bool:
            sink.flush_if_due()  # runner polls every 0.2 s: keeps status fresh when quiet
            if lease.lost.is_set():
                return True
            now = time.monotonic()
            if now < checks["next"]:
                return False
            checks["next"] = now + CANCEL_CHECK_SECONDS
            return self.store.cancel_requested(run_id)

        try:
            outcome = self.execute(plan, sink, should_cancel)
        finally:
            # A database restart during the run left updates pending: they go in first.
            sink.flush_within(max(STORE_RETRY_SECONDS, self.settings.lease_seconds))
        if outcome.cancelled:
            reason = "worker lost its lease" if lease.lost.is_set() else "cancelled on request"
            return self._finalise_cancel(run, sink.state, ordered, reason), None
        return self._finalise(run, sink.state, outcome)

    def _finalise(
        self, run: RunRecord, state: FoldState, outcome: runner.RunnerOutcome
    ) -> tuple[Status, str | None]:
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
        lost = set(state.unknown)
        if counts[Status.IN_PROGRESS]:
            # ansible-playbook ended (or was killed) while these ran: their module may have
            # switched, so they are probed like the instances lost mid-release.
            self.store.finish_members(run.run_id, Status.FAILED,
                                      with_unknown_note(f"no result reported: {ended}"),
                                      [Status.IN_PROGRESS])
            lost |= {i for i, s in state.statuses.items() if s is Status.IN_PROGRESS}
        if lost:
            self._settle_lost(run, lost)
        final = self.store.get_run_with_members(run.run_id)
        assert final is not None
        statuses = [m.status for m in final[1]]
        total = len(statuses)
        if statuses.count(Status.COMPLETED) == total:
            self.store.set_run_status(run.run_id, Status.COMPLETED, error_message="",
                                      finished=True)
            return Status.COMPLETED, None
        message = (f"{statuses.count(Status.FAILED)} of {total} instances failed, "
                   f"{statuses.count(Status.CANCELLED)} not started")
        if not state.finished and outcome.stdout_tail and outcome.status != "successful":
            message += f"; {ended}:\n{outcome.stdout_tail}"
        follow_up = None
        if run.kind == "deploy" and run.params.get("auto_rollback"):
            follow_up, note = rollbacks.start_automatic(
                self.store, run, final[1], allowed_hosts=self.settings.allowed_package_hosts)
            message += f"; {note}"
        self.store.set_run_status(run.run_id, Status.FAILED, error_message=message,
                                  finished=True)
        return Status.FAILED, follow_up

    def _settle_lost(self, run: RunRecord, lost: set[str]) -> None:
        """Probe the instances whose release may have gone on unseen (lost mid-release,
        module killed, no result reported) and record what their disk says; still
        unreachable, their version stays unknown. Their recorded end stays as it was."""
        records = list(self.store.get_instances(sorted(lost)).values())
        members = (self.store.get_run_with_members(run.run_id) or (run, []))[1]
        reasons = {m.instance_id: without_unknown_note(m.error_message)
                   for m in members}
        settle_in_flight(self.settings, self.store, run, records, Status.FAILED,
                         "no result reported", reasons, finish=False)

    def _finalise_cancel(
        self,
        run: RunRecord,
        state: FoldState,
        instances: list[InstanceRecord],
        reason: str,
    ) -> Status:
        """After a cancel: never-started instances end cancelled; in-flight ones are probed
        and recorded with the version their disk really points at."""
        self.store.finish_members(run.run_id, Status.CANCELLED, f"not started: {reason}",
                                  [Status.PENDING])
        in_flight = [i for i in instances if state.statuses.get(i.instance_id)
                     is Status.IN_PROGRESS]
        settle_in_flight(self.settings, self.store, run, in_flight, Status.CANCELLED,
                         f"{reason} while in progress")
        if state.unknown:  # lost or killed mid-release before the cancel: probed too
            self._settle_lost(run, set(state.unknown))
        self.store.set_run_status(run.run_id, Status.CANCELLED, error_message=reason,
                                  finished=True)
        return Status.CANCELLED

    def _cancel_before_start(self, run: RunRecord) -> Status:
        self.store.finish_members(run.run_id, Status.CANCELLED,
                                  "not started: cancelled on request",
                                  [Status.PENDING, Status.IN_PROGRESS])
        self.store.set_run_status(run.run_id, Status.CANCELLED,
                                  error_message="cancelled before it started", finished=True)
        return Status.CANCELLED

    def _abort(self, run_id: str, reason: str) -> None:
        try:
            self.store.finish_members(run_id, Status.FAILED, reason,
                                      [Status.PENDING, Status.IN_PROGRESS])
            self.store.set_run_status(run_id, Status.FAILED, error_message=reason, finished=True)
        except Exception:
            log.exception("could not record the failure of %s", run_id)


def probe_and_record(
    settings: Settings, store: Store, run: RunRecord, instances: list[InstanceRecord]
) -> dict[str, Observation]:
    """Probe ``instances`` and record what their disk says wherever it can be trusted."""
    if not instances:
        return {}
    seen = probe_instances(settings, run.service, instances)
    # A probe that produced no result for an instance at all (its ansible-playbook killed
    # or crashed) is tried once more; an unreachable instance is not (it would only cost
    # another connect timeout).
    again = [i for i in instances if seen[i.instance_id].error == NO_PROBE_RESULT]
    if again:
        seen.update(probe_instances(settings, run.service, again))
    truths = {i: o.current_version for i, o in seen.items() if o.trusted}
    store.record_observations(truths, authoritative=True)
    return seen


def settled(
    instance_id: str, obs: Observation, status: Status, reason: str, finish: bool = True
) -> InstanceUpdate:
    """The update closing an instance whose outcome a probe settled (``finish``: it ends
    now; otherwise its recorded end stays)."""
    if obs.trusted:
        detail = f"{reason}; the instance runs {obs.current_version or 'no release'}"
    elif obs.reachable:  # what it read was refused, and is not recorded
        detail = f"{reason}; {obs.error}: its version is unknown"
    else:
        detail = f"{reason}; probe failed ({obs.error}): its version is unknown"
    return InstanceUpdate(
        instance_id, status=status, error_message=detail,
        completed_at=utcnow() if finish else None,
        current_version=obs.current_version if obs.trusted else None,
        version_unknown=not obs.trusted,
    )


def settle_in_flight(
    settings: Settings,
    store: Store,
    run: RunRecord,
    in_flight: list[InstanceRecord],
    status: Status,
    reason: str,
    reasons: Mapping[str, str] | None = None,
    finish: bool = True,
) -> None:
    """Probe instances whose outcome is unknown and record what their disk says
    (``reasons`` overrides ``reason`` per instance)."""
    seen = probe_and_record(settings, store, run, in_flight)
    store.apply_updates(run.run_id, [
        settled(i, obs, status, (reasons or {}).get(i, reason), finish)
        for i, obs in seen.items()
    ])


def _with_member_package(
    update: InstanceUpdate, members: dict[str, RunInstanceRecord]
) -> InstanceUpdate:
    member = members.get(update.instance_id)
    if update.release is None or member is None:
        return update
    release = dict(update.release)
    release["package_url"] = member.package_url or release.get("package_url", "")
    release["sha256"] = member.package_sha256 or release.get("sha256", "")
    return dataclasses.replace(update, release=release)


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
        from orchestrator.recovery import recover_stale_runs

        recover_stale_runs(settings, store)  # a worker also closes runs whose worker died
        status = Worker(settings, store).run(args[0])
    finally:
        store.close()
    return 0 if status in (Status.COMPLETED, None) else 1


if __name__ == "__main__":
    sys.exit(main())
