"""Version truth: read what every instance really runs, from its own directory.

The probe playbook runs the ``floy_probe`` module once per instance; :func:`observe` folds
its events (pure); :func:`probe_instances` runs it. Used after a cancel and after a lost
worker (where the disk is authoritative), and by ``floy refresh`` (where a disagreement
with the record is reported as drift).
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from orchestrator import runner
from orchestrator.events import RunnerEvent
from orchestrator.plan import bake_probe
from orchestrator.settings import Settings
from orchestrator.store import InstanceRecord

PROBE_ACTION = "floy_probe"


@dataclass(frozen=True)
class Observation:
    """What the probe saw on one instance."""

    instance_id: str
    reachable: bool
    current_version: str = ""
    releases: tuple[str, ...] = ()
    state: dict[str, Any] = field(default_factory=dict)
    error: str = ""


def observe(events: Iterable[RunnerEvent], instance_ids: Sequence[str]) -> dict[str, Observation]:
    """Fold probe events into one observation per instance (missing ones: unreachable)."""
    seen: dict[str, Observation] = {}
    for event in events:
        data = event.get("event_data") or {}
        host = data.get("host", "")
        if host not in instance_ids or host in seen:
            continue
        res: dict[str, Any] = data.get("res") or {}
        action = data.get("resolved_action") or data.get("task_action") or ""
        kind = event.get("event")
        if kind == "runner_on_ok" and action.endswith(PROBE_ACTION):
            seen[host] = Observation(
                host,
                True,
                str(res.get("current_version") or ""),
                tuple(str(v) for v in res.get("releases") or ()),
                dict(res.get("state") or {}),
            )
        elif kind in ("runner_on_failed", "runner_on_unreachable"):
            prefix = "unreachable: " if kind == "runner_on_unreachable" else ""
            seen[host] = Observation(host, False, error=prefix + str(res.get("msg", "failed")))
    for instance_id in instance_ids:
        seen.setdefault(instance_id, Observation(instance_id, False, error="no probe result"))
    return seen


def probe_instances(
    settings: Settings,
    service: str,
    instances: Sequence[InstanceRecord],
    execute: runner.Execute = runner.execute,
) -> dict[str, Observation]:
    """Run the probe playbook over ``instances``; one observation per instance."""
    if not instances:
        return {}
    plan = bake_probe(settings, f"probe-{service}-{uuid.uuid4().hex[:12]}", service, instances)
    events: list[RunnerEvent] = []
    try:
        execute(plan, events.append, lambda: False)
    finally:
        shutil.rmtree(plan.private_data_dir, ignore_errors=True)
    return observe(events, [i.instance_id for i in instances])
