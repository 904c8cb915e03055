"""The reaper: runs whose worker died do not stay ``in_progress`` forever.

A run is stale when its lease expired (the worker stopped renewing it: killed, machine
gone) or when no worker claimed it in time. Reads never reap (a status only reports a stale
run as such). Who reaps, and when:

- every worker process, at its start: every stale run;
- every ``floy worker`` daemon, every ``lease_seconds``: every stale run (a run that waits
  in the queue while a daemon is alive is not stale: the daemons are busy, not gone);
- a command that needs instance locks (deploy, both rollbacks): the stale runs holding
  those instances, before it records its own run;
- ``cancel``: the run it cancels, when that run is stale.

The reaper takes the run's lease itself (so only one process reaps a run) and keeps it
renewed while it closes the run; every write it makes is fenced by that lease (a worker
that was only slow finds its later writes refused, and leaves the run). It stops the
orphaned ansible-playbook of the run on this machine (it ignores SIGHUP and would go on
deploying), and closes the run as :func:`orchestrator.domain.closing.after_worker_lost`
says: every instance whose outcome the store cannot know is probed and its disk recorded,
the ones never started are cancelled, and the run ends failed with the reason.

One kind of stale run is not closed: a stepped deployment whose worker died while it
waited at a gate between two batches (nothing in flight). It is handed back and resumed at
that gate, its pause and analysis going on from the recorded decisions.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Collection, Iterable

from orchestrator.ansible import remote
from orchestrator.ansible.processes import stop_run
from orchestrator.domain.canary import waiting_at_gate
from orchestrator.domain.closing import after_worker_lost
from orchestrator.domain.records import RunRecord
from orchestrator.engine.lease import LeaseKeeper, owner_name, owner_node
from orchestrator.engine.settle import Probe, apply_closing
from orchestrator.settings import Settings
from orchestrator.store import StaleWriterError, Store
from orchestrator.timefmt import format_time

log = logging.getLogger(__name__)

# A run no worker has claimed after this long is taken as lost (a worker claims within
# a second of being started), unless a worker daemon is alive: then it waits in the queue.
UNCLAIMED_GRACE_SECONDS = 60.0
#: A daemon is alive while its last heartbeat is at most this many leases old (it beats
#: every third of a lease).
LIVE_WORKER_SECONDS = 2.0


def lost_reason(run: RunRecord) -> str:
    """Why a stale run is taken as lost (the start of its error message)."""
    if run.lease_expires_at is not None:
        return (f"worker lost: its lease expired at {format_time(run.lease_expires_at)} "
                f"(worker {run.lease_owner or '?'}, pid {run.worker_pid or '?'})")
    return "worker lost: no worker claimed the run"


class Reaper:
    """Closes stale runs truthfully."""

    def __init__(self, settings: Settings, store: Store, probe: Probe,
                 resume: Callable[[str], None] | None = None) -> None:
        self.settings = settings
        self.store = store
        self.probe = probe
        # starts a worker for a run handed back at a gate (None: a daemon's claims do)
        self.resume = resume

    def reap(self, run_ids: Iterable[str] | None = None,
             carrying: Collection[str] = ()) -> list[str]:
        """Reap every stale run (only among ``run_ids`` when given) but those in
        ``carrying`` (a daemon's own runs: alive, only cut off from the store for a while);
        returns the IDs of the runs this call closed."""
        reaped = []
        seconds = self.settings.lease_seconds
        stale = self.store.leases.stale(UNCLAIMED_GRACE_SECONDS, run_ids)
        if any(r.lease_expires_at is None for r in stale) and self.store.workers.live(
                LIVE_WORKER_SECONDS * seconds):
            # queued behind other runs, not orphaned: a live daemon will claim them
            stale = [r for r in stale if r.lease_expires_at is not None]
        for run in (r for r in stale if r.run_id not in carrying):
            owner = owner_name(self.settings.node_name, "reaper")
            if not self.store.leases.acquire(run.run_id, owner, seconds, os.getpid()):
                continue  # another process got there first, or it finished meanwhile
            lease = LeaseKeeper(self.store, run.run_id, owner, seconds)
            lease.start()
            try:
                self.close(run, owner)
                reaped.append(run.run_id)
            except StaleWriterError as exc:
                log.warning("reaping stopped: %s", exc)
            except Exception:
                log.exception("reaping %s failed", run.run_id)
            finally:
                lease.close()
        return reaped

    def reap_holding(self, instance_ids: Iterable[str]) -> list[str]:
        """Reap the stale runs that hold locks on ``instance_ids`` (a command about to lock
        them frees what a dead worker left); live runs are left alone."""
        holders = set(self.store.leases.lock_holders(instance_ids).values())
        return self.reap(sorted(holders)) if holders else []

    def _hand_back_at_gate(self, run: RunRecord, owner: str, reason: str) -> None:
        """A stepped run whose worker died while it waited at a gate (analysing or paused,
        nothing in flight) loses nothing by waiting on: it is handed back, and resumed at
        the same gate from its recorded decisions (a new worker here, or a daemon's claim)."""
        self.store.runs.hand_back(run.run_id, owner,
                                  f"{reason}; it was waiting at a gate and is resumed there")
        log.warning("run %s lost its worker at a gate: handed back to be resumed (%s)",
                    run.run_id, reason)
        if self.resume is not None:
            try:
                self.resume(run.run_id)
            except Exception:
                log.exception("could not start a worker to resume %s", run.run_id)

    def _stop_on_node(self, run: RunRecord, node: str) -> str:
        """Stop the run's playbook on execution node ``node``; what to add to the reason."""
        try:
            remote.stop_on_node(remote.configured_node(self.settings, node), run.run_id)
        except Exception as exc:
            log.warning("could not stop %s on node %s: %s", run.run_id, node, exc)
            return f"; its playbook on node {node} could not be stopped: {exc}"
        return f"; its playbook on node {node} was stopped"

    def close(self, run: RunRecord, owner: str) -> None:
        """Close one stale run; the caller holds its lease as ``owner``."""
        reason = lost_reason(run)
        same_host = owner_node(run.lease_owner or "") == self.settings.node_name
        nodes = run.request.all_nodes()
        for node in nodes:  # where its playbooks may run (a grouped run: every group's)
            reason += self._stop_on_node(run, node)
        on_worker = not run.request.node and (not run.request.nodes or "" in run.request.nodes)
        stopped = (stop_run(self.settings, run.run_id)
                   if same_host or not run.lease_owner else 0)
        if stopped:
            reason += f"; stopped {stopped} orphaned ansible process(es)"
        elif run.lease_owner and not same_host and on_worker:
            reason += ("; its ansible-playbook ran on another machine and was not stopped "
                       "from here")
        loaded = self.store.runs.with_members(run.run_id)
        if loaded is None:
            return
        if waiting_at_gate(loaded[0], loaded[1], self.store.decisions.of_run(run.run_id)):
            self._hand_back_at_gate(run, owner, reason)
            return
        closing = after_worker_lost(run, loaded[1], reason)
        apply_closing(self.probe, self.store, run, closing, owner)
        assert closing.status is not None  # a lost worker's run ends failed, fixed
        self.store.runs.set_status(run.run_id, closing.status, error_message=closing.message,
                                   finished=True, owner=owner)
        log.warning("run %s lost its worker and was closed as failed: %s", run.run_id, reason)
