"""Carrying out a :class:`~orchestrator.domain.closing.Closing`: close the instances the
record can close, probe the ones only their disk can tell, record what it says.

Used by the worker at every end of a run and by the reaper for a dead worker's run. A probe
result that can be trusted becomes the recorded version; an unreachable instance's version
stays unknown.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from orchestrator.ansible.probe import NO_PROBE_RESULT
from orchestrator.domain.closing import Closing, settle
from orchestrator.domain.records import InstanceRecord, Observation, RunRecord
from orchestrator.store import Store


class Probe(Protocol):
    """Reads the given instances of a service from their disks, from here or through
    execution node ``node``: one observation each."""

    def __call__(self, service: str, instances: Sequence[InstanceRecord],
                 node: str = "") -> dict[str, Observation]: ...


def probe_and_record(
    probe: Probe, store: Store, run: RunRecord, instances: Sequence[InstanceRecord]
) -> dict[str, Observation]:
    """Probe ``instances`` and record what their disk says wherever it can be trusted.
    Each instance is probed from where its run played it (its execution node, if any)."""
    if not instances:
        return {}
    seen = _probe(probe, run, instances)
    # A probe that produced no result for an instance at all (its ansible-playbook killed
    # or crashed) is tried once more; an unreachable instance is not (it would only cost
    # another connect timeout).
    again = [i for i in instances if seen[i.instance_id].error == NO_PROBE_RESULT]
    if again:
        seen.update(_probe(probe, run, again))
    truths = {i: o.current_version for i, o in seen.items() if o.trusted}
    store.instances.record_observations(truths, authoritative=True)
    return seen


def _probe(probe: Probe, run: RunRecord,
           instances: Sequence[InstanceRecord]) -> dict[str, Observation]:
    by_node: dict[str, list[InstanceRecord]] = {}
    for instance in instances:
        by_node.setdefault(run.request.node_of(instance.instance_id), []).append(instance)
    seen: dict[str, Observation] = {}
    for node, group in by_node.items():
        seen.update(probe(run.service, group, node=node))
    return seen


def apply_closing(
    probe: Probe, store: Store, run: RunRecord, closing: Closing, owner: str
) -> None:
    """Close the run's instances as ``closing`` says: first those the record settles, then
    those a probe settles. The run itself is left open (its caller ends it). Every write is
    made as the lease holder ``owner`` (StaleWriterError once another process took over)."""
    for rule in closing.close:
        store.runs.finish_members(run.run_id, rule.status, rule.message, rule.only, owner)
    if not closing.probe:
        return
    records = store.instances.get(closing.probe)
    seen = probe_and_record(probe, store, run,
                            [records[i] for i in closing.probe if i in records])
    store.runs.apply_updates(run.run_id, settle(closing.probe, seen, store.db.clock()), owner)
