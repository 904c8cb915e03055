"""Version truth: read what every instance really runs, from its own directory.

The probe playbook runs the ``floy_probe`` module once per instance; :func:`observe` folds
its events (pure); :func:`probe_instances` runs it. Used after a cancel and after a lost
worker (where the disk is authoritative), and by ``floy refresh`` (where a disagreement
with the record is reported as drift).

What the probe reads is input like any request (DESIGN.md section 5): a directory name on
the host can be ``{{ lookup(...) }}`` or hold terminal escapes. The fold checks every
version it reads with :func:`~orchestrator.domain.validation.validate_name`; a refused
``current_version`` is kept only in :attr:`Observation.refused_version` (to report, never
to store), refused release names are dropped, and :attr:`Observation.error` says why.
"""

from __future__ import annotations

import functools
import shutil
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

from orchestrator.ansible import remote, runner
from orchestrator.ansible.plan import bake_probe
from orchestrator.domain.events import RunnerEvent
from orchestrator.domain.records import InstanceRecord, Observation
from orchestrator.domain.validation import validate_name
from orchestrator.errors import ValidationError
from orchestrator.settings import Settings

PROBE_ACTION = "floy_probe"
#: The error of an instance the probe run reported nothing about (the run died early).
NO_PROBE_RESULT = "no probe result"


def _read_back(host: str, res: dict[str, Any]) -> Observation:
    """One reached instance's observation, every version it reported checked."""
    problems: list[str] = []
    raw = res.get("current_version")
    current, refused = "", ""
    if raw not in (None, ""):
        try:
            current = validate_name("current_version", raw)
        except ValidationError as exc:
            # As read, for the report; a non-string gets a form no valid name can equal.
            refused = raw if isinstance(raw, str) else f"<{type(raw).__name__}> {raw!r}"
            problems.append(f"{exc} (read from the host; not recorded)")
    listed = res.get("releases") or ()
    if not isinstance(listed, (list, tuple)):
        listed = ()
        problems.append("invalid releases: not a list (read from the host; ignored)")
    releases = []
    for index, name in enumerate(listed):
        try:
            releases.append(validate_name(f"releases[{index}]", name))
        except ValidationError as exc:
            problems.append(f"{exc} (read from the host; ignored)")
    state = res.get("state")
    return Observation(
        host,
        True,
        current,
        tuple(releases),
        dict(state) if isinstance(state, dict) else {},
        error="; ".join(problems),
        refused_version=refused,
    )


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
            seen[host] = _read_back(host, res)
        elif kind in ("runner_on_failed", "runner_on_unreachable"):
            prefix = "unreachable: " if kind == "runner_on_unreachable" else ""
            seen[host] = Observation(host, False, error=prefix + str(res.get("msg", "failed")))
    for instance_id in instance_ids:
        seen.setdefault(instance_id, Observation(instance_id, False, error=NO_PROBE_RESULT))
    return seen


def probe_instances(
    settings: Settings,
    service: str,
    instances: Sequence[InstanceRecord],
    execute: runner.Execute = runner.execute,
    node: str = "",
) -> dict[str, Observation]:
    """Run the probe playbook over ``instances``, here or on execution node ``node`` (the
    one their run played on: it reaches them); one observation per instance."""
    if not instances:
        return {}
    if node:
        execute = functools.partial(remote.execute_on_node,
                                    remote.configured_node(settings, node))
    plan = bake_probe(settings, f"probe-{service}-{uuid.uuid4().hex[:12]}", service, instances)
    events: list[RunnerEvent] = []
    try:
        execute(plan, events.append, lambda: False)
    finally:
        shutil.rmtree(plan.private_data_dir, ignore_errors=True)
    return observe(events, [i.instance_id for i in instances])
