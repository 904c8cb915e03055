"""Closing a run: the one policy for how a run and its instances end.

Every way a run ends has one function here, each a pure function of the run's record (its
instances as the store holds them once the last events are written):

- :func:`after_playbook`: ansible-playbook ended (successfully or not);
- :func:`after_cancel`: it was stopped by a cancel request, or because the worker lost its
  lease;
- :func:`before_start`: a cancel arrived before the worker started it;
- :func:`after_crash`: floy itself failed while carrying it;
- :func:`after_worker_lost`: its worker died and the reaper closes it;
- :func:`handed_back`: a stopping worker daemon gives it back unfinished, for another to
  resume (the one way that leaves the run open).

Each returns a :class:`Closing`: instances closed from the record alone (:class:`CloseAll`),
instances whose outcome only their disk can tell, with how to close them once a probe has
read it (:class:`Settle`, turned into updates by :func:`settle`), and the run's own end:
fixed by the way it ended, or decided by :func:`verdict` from its instances once settled.
Tested from recorded cases (``tests/fixtures/closing/<case>.json``: input and expected
outcome in one file).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from orchestrator.domain.events import InstanceUpdate, has_unknown_note, with_unknown_note
from orchestrator.domain.events import without_unknown_note as _without_note
from orchestrator.domain.records import Observation, RunInstanceRecord, RunRecord
from orchestrator.models import Status

#: The reason given to instances a cancel stopped while they were in flight.
IN_FLIGHT = "{reason} while in progress"
#: How an outcome says its execution node could not be reached (orchestrator/ansible/remote).
UNREACHABLE_NODE = "unreachable: node "
#: Appended for a pending instance of a dead worker's run whose disk changed.
MAY_HAVE_STARTED = "{reason}; it may have been started by the orphaned run"


@dataclass(frozen=True)
class CloseAll:
    """Close every instance of the run still in one of ``only`` with ``status``."""

    only: tuple[Status, ...]
    status: Status
    message: str


@dataclass(frozen=True)
class Settle:
    """How to close an instance once a probe has read its disk.

    ``finish``: it ends now (otherwise its recorded end stays). ``pending_on``: it was
    pending, on that version; a disk still on it means it never started.
    """

    status: Status
    reason: str
    finish: bool = True
    pending_on: str | None = None


@dataclass(frozen=True)
class PlaybookEnd:
    """How ansible-playbook ended, as the runner reported it."""

    status: str  # successful | failed | canceled | timeout | error
    rc: int | None
    stdout_tail: str = ""
    stats_seen: bool = True  # playbook_on_stats arrived: every host's result is known

    @property
    def summary(self) -> str:
        """E.g. ``ansible-playbook ended failed (rc=2)``."""
        return f"ansible-playbook ended {self.status} (rc={self.rc})"


@dataclass(frozen=True)
class Closing:
    """What closing a run does; ``status`` None: :func:`verdict` decides once settled."""

    close: tuple[CloseAll, ...] = ()
    probe: Mapping[str, Settle] = field(default_factory=dict)
    status: Status | None = None
    message: str = ""
    playbook: PlaybookEnd | None = None
    rolls_back: bool = False  # a failure that an ``auto_rollback`` deployment rolls back


def _unknown(members: Sequence[RunInstanceRecord]) -> dict[str, Settle]:
    """Instances failed while their version was unknown (lost mid-release): probed, their
    end and message kept."""
    return {m.instance_id: Settle(Status.FAILED, _without_note(m.error_message), finish=False)
            for m in members
            if m.status is Status.FAILED and has_unknown_note(m.error_message)}


def after_playbook(
    run: RunRecord, members: Sequence[RunInstanceRecord], end: PlaybookEnd
) -> Closing:
    """ansible-playbook ended. Instances never started end ``cancelled`` when the failure
    budget stopped the play, else ``failed``; instances it reported nothing for while they
    ran may have switched, so they fail with their version unknown and are probed, like
    those lost mid-release."""
    by_status = {s: [m for m in members if m.status is s] for s in Status}
    close = []
    if by_status[Status.PENDING]:
        failed = len(by_status[Status.FAILED])
        budget = run.request.max_failures
        if failed > budget:
            close.append(CloseAll((Status.PENDING,), Status.CANCELLED,
                                  f"not started: failure budget exhausted ({failed} failed, "
                                  f"max_failures {budget})"))
        elif end.status == "error" and end.stdout_tail.startswith(UNREACHABLE_NODE):
            # the execution node never ran the playbook: the instances fail, unreached
            close.append(CloseAll((Status.PENDING,), Status.FAILED, end.stdout_tail))
        else:
            close.append(CloseAll((Status.PENDING,), Status.FAILED,
                                  f"not started: {end.summary}"))
    probe = _unknown(members)
    if by_status[Status.IN_PROGRESS]:
        silent = f"no result reported: {end.summary}"
        close.append(CloseAll((Status.IN_PROGRESS,), Status.FAILED, with_unknown_note(silent)))
        probe.update({m.instance_id: Settle(Status.FAILED, silent, finish=False)
                      for m in by_status[Status.IN_PROGRESS]})
    return Closing(tuple(close), probe, playbook=end)


def after_cancel(members: Sequence[RunInstanceRecord], reason: str) -> Closing:
    """Stopped mid-run (``reason``: cancelled on request; a worker that lost its lease
    writes nothing, see :class:`orchestrator.store.runs.StaleWriterError`):
    never-started instances end cancelled; in-flight ones are probed and end cancelled with
    the version their disk points at."""
    probe = {m.instance_id: Settle(Status.CANCELLED, IN_FLIGHT.format(reason=reason))
             for m in members if m.status is Status.IN_PROGRESS}
    probe.update(_unknown(members))
    return Closing((CloseAll((Status.PENDING,), Status.CANCELLED, f"not started: {reason}"),),
                   probe, Status.CANCELLED, reason)


def after_gate(members: Sequence[RunInstanceRecord], reason: str) -> Closing:
    """A stepped run's analysis failed at a gate (``reason``): nothing was in flight; the
    instances not started end cancelled, and the run fails (an ``auto_rollback``
    deployment then rolls back what it switched)."""
    del members  # every instance is finished or pending at a gate
    return Closing((CloseAll((Status.PENDING, Status.IN_PROGRESS), Status.CANCELLED,
                             f"not started: {reason}"),),
                   status=Status.FAILED, message=reason, rolls_back=True)


def before_start() -> Closing:
    """A cancel arrived before the worker started the run: nothing ran."""
    return Closing(
        (CloseAll((Status.PENDING, Status.IN_PROGRESS), Status.CANCELLED,
                  "not started: cancelled on request"),),
        status=Status.CANCELLED, message="cancelled before it started")


def after_crash(reason: str) -> Closing:
    """floy failed while carrying the run: every unfinished instance fails with ``reason``."""
    return Closing((CloseAll((Status.PENDING, Status.IN_PROGRESS), Status.FAILED, reason),),
                   status=Status.FAILED, message=reason)


def after_worker_lost(
    run: RunRecord, members: Sequence[RunInstanceRecord], reason: str
) -> Closing:
    """The worker died. Every instance whose outcome the store cannot know is probed: in
    flight, lost mid-release, and - once the run had started - pending ones too, since the
    dead worker's last events may never have been written and its orphaned ansible-playbook
    may have gone on before it was stopped. A pending instance whose disk is unchanged was
    never started."""
    probe = {m.instance_id: Settle(Status.FAILED, reason)
             for m in members if m.status is Status.IN_PROGRESS}
    probe.update(_unknown(members))
    close: tuple[CloseAll, ...] = ()
    if run.status is Status.IN_PROGRESS:
        probe.update({m.instance_id: Settle(Status.FAILED, reason, pending_on=m.current_version)
                      for m in members if m.status is Status.PENDING})
    else:
        close = (CloseAll((Status.PENDING,), Status.CANCELLED, f"not started: {reason}"),)
    return Closing(close, probe, Status.FAILED, reason)


def handed_back(members: Sequence[RunInstanceRecord], reason: str) -> Closing:
    """A stopping worker stopped the run's ansible-playbook to give the run back: the
    instances in flight are probed, their versions recorded, and they go back to pending
    (resuming releases them again: an instance already on the target only passes its
    health check); the run goes back to pending, unfinished."""
    probe = {m.instance_id: Settle(Status.PENDING, reason, finish=False)
             for m in members if m.status is Status.IN_PROGRESS}
    probe.update(_unknown(members))
    return Closing((), probe, Status.PENDING, reason)


def settled(
    instance_id: str, obs: Observation, status: Status, reason: str, now: datetime | None
) -> InstanceUpdate:
    """The update closing an instance whose outcome a probe settled (``now`` None: its
    recorded end stays)."""
    if obs.trusted:
        detail = f"{reason}; the instance runs {obs.current_version or 'no release'}"
    elif obs.reachable:  # what it read was refused, and is not recorded
        detail = f"{reason}; {obs.error}: its version is unknown"
    else:
        detail = f"{reason}; probe failed ({obs.error}): its version is unknown"
    return InstanceUpdate(
        instance_id, status=status, error_message=detail, completed_at=now,
        current_version=obs.current_version if obs.trusted else None,
        version_unknown=not obs.trusted,
    )


def settle(
    probe: Mapping[str, Settle], seen: Mapping[str, Observation], now: datetime
) -> list[InstanceUpdate]:
    """The updates closing the probed instances, from what the probe read on each."""
    updates = []
    for instance_id, rule in probe.items():
        obs = seen.get(instance_id)
        if obs is None:
            continue
        if rule.pending_on is not None:
            if obs.trusted and obs.current_version == rule.pending_on:
                updates.append(InstanceUpdate(instance_id, status=Status.CANCELLED,
                                              error_message=f"not started: {rule.reason}",
                                              completed_at=now))
            else:
                updates.append(settled(
                    instance_id, obs, Status.FAILED if obs.trusted else Status.CANCELLED,
                    MAY_HAVE_STARTED.format(reason=rule.reason), now))
            continue
        updates.append(settled(instance_id, obs, rule.status, rule.reason,
                               now if rule.finish else None))
    return updates


def verdict(members: Sequence[RunInstanceRecord], end: PlaybookEnd | None) -> tuple[Status, str]:
    """The end of a run whose instances are all closed: ``completed`` only when every one
    completed, else ``failed`` with the counts (and the playbook's last output when it
    died before reporting every host)."""
    statuses = [m.status for m in members]
    total = len(statuses)
    if statuses.count(Status.COMPLETED) == total:
        return Status.COMPLETED, ""
    message = (f"{statuses.count(Status.FAILED)} of {total} instances failed, "
               f"{statuses.count(Status.CANCELLED)} not started")
    if end is not None and not end.stats_seen and end.stdout_tail \
            and end.status != "successful":
        message += f"; {end.summary}:\n{end.stdout_tail}"
    return Status.FAILED, message
