"""Crash recovery: runs whose worker died do not stay ``in_progress`` forever.

Any floy command (through the service) and any worker calls :func:`recover_stale_runs`.
A run is stale when its lease expired (the worker stopped renewing it: killed, machine
gone) or when no worker claimed it in time. The recoverer takes the lease itself (so only
one process recovers a run), stops the orphaned ansible-playbook of the run on this machine
(it ignores SIGHUP and would go on deploying), probes every instance whose outcome the store
cannot know (see :func:`settle_members`), records what their disk says, cancels the ones
never started, then closes the run as failed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import time
import uuid
from collections.abc import Sequence

from orchestrator.events import InstanceUpdate, has_unknown_note, without_unknown_note
from orchestrator.models import Status
from orchestrator.runner import run_processes, wait_for_run_processes
from orchestrator.settings import Settings
from orchestrator.store import RunInstanceRecord, RunRecord, Store
from orchestrator.timefmt import format_time, utcnow
from orchestrator.worker import probe_and_record, settled

log = logging.getLogger(__name__)

# A run no worker has claimed after this long is taken as lost (a worker claims within
# a second of being started).
UNCLAIMED_GRACE_SECONDS = 60.0
STOP_GRACE_SECONDS = 10.0


def stop_orphans(settings: Settings, run_id: str) -> int:
    """Stop ansible-playbook and its forks of ``run_id`` on this machine; returns how many
    processes were found. SIGTERM first (the module cleans up), SIGKILL after a grace."""
    marker = str(settings.runs_dir / run_id / "floy-vars.yml")
    found = run_processes(marker)
    if not found:
        return 0
    pids = {pid for pid, _ in found}
    tops = [pid for pid, ppid in found if ppid not in pids]
    for pid in tops:
        _kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    while time.monotonic() < deadline and run_processes(marker):
        time.sleep(0.1)
    for pid, _ in run_processes(marker):
        _kill(pid, signal.SIGKILL)
    wait_for_run_processes(run_id, STOP_GRACE_SECONDS)  # modules switching back
    return len(found)


def _kill(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


def _reason(run: RunRecord) -> str:
    if run.lease_expires_at is not None:
        return (f"worker lost: its lease expired at {format_time(run.lease_expires_at)} "
                f"(worker {run.lease_owner or '?'}, pid {run.worker_pid or '?'})")
    return "worker lost: no worker claimed the run"


def recover_stale_runs(settings: Settings, store: Store) -> list[str]:
    """Recover every stale run; returns the IDs of the runs this call recovered."""
    recovered = []
    for run in store.stale_runs(UNCLAIMED_GRACE_SECONDS):
        owner = f"recovery:{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        if not store.acquire_lease(run.run_id, owner, settings.lease_seconds * 4, os.getpid()):
            continue  # another process got there first, or it finished meanwhile
        try:
            recover_run(settings, store, run)
            recovered.append(run.run_id)
        except Exception:
            log.exception("recovery of %s failed", run.run_id)
    return recovered


def recover_run(settings: Settings, store: Store, run: RunRecord) -> None:
    """Close one stale run truthfully (the caller holds its lease)."""
    reason = _reason(run)
    same_host = (run.lease_owner or "").split(":", 1)[0] == socket.gethostname()
    stopped = stop_orphans(settings, run.run_id) if same_host or not run.lease_owner else 0
    if stopped:
        reason += f"; stopped {stopped} orphaned ansible process(es)"
    elif run.lease_owner and not same_host:
        reason += "; its ansible-playbook ran on another machine and was not stopped from here"
    loaded = store.get_run_with_members(run.run_id)
    if loaded is None:
        return
    _, members = loaded
    store.apply_updates(run.run_id, settle_members(settings, store, run, members, reason))
    store.set_run_status(run.run_id, Status.FAILED, error_message=reason, finished=True)
    log.warning("recovered run %s: %s", run.run_id, reason)


def settle_members(
    settings: Settings,
    store: Store,
    run: RunRecord,
    members: Sequence[RunInstanceRecord],
    reason: str,
) -> list[InstanceUpdate]:
    """The closing updates of a dead worker's instances, from one probe of every instance
    whose outcome the store cannot know: in flight, lost mid-release, and - once the run
    had started - pending ones too, since the dead worker's last events may never have
    been written and its orphaned ansible-playbook may have gone on before it was stopped.
    A pending instance whose disk is unchanged was never started."""
    started = run.status is Status.IN_PROGRESS
    unknown = [m for m in members
               if m.status is Status.IN_PROGRESS
               or (m.status is Status.PENDING and started)
               or (m.status is Status.FAILED and has_unknown_note(m.error_message))]
    records = store.get_instances(m.instance_id for m in unknown)
    seen = probe_and_record(settings, store, run,
                            [records[m.instance_id] for m in unknown if m.instance_id in records])
    now = utcnow()
    updates = []
    for m in members:
        obs = seen.get(m.instance_id)
        if m.status is Status.PENDING:
            if obs is None or (obs.trusted and obs.current_version == m.current_version):
                updates.append(InstanceUpdate(m.instance_id, status=Status.CANCELLED,
                                              error_message=f"not started: {reason}",
                                              completed_at=now))
            else:
                updates.append(settled(
                    m.instance_id, obs, Status.FAILED if obs.trusted else Status.CANCELLED,
                    f"{reason}; it may have been started by the orphaned run"))
        elif obs is not None and m.status is Status.IN_PROGRESS:
            updates.append(settled(m.instance_id, obs, Status.FAILED, reason))
        elif obs is not None:  # failed, version unknown: keep its message and its end
            updates.append(settled(m.instance_id, obs, Status.FAILED,
                                   without_unknown_note(m.error_message),
                                   finish=False))
    return updates
