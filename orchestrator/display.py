"""Human-readable rendering of runs and instances, and the live follow loop.

Plain lines rather than a redrawn screen, so the same output reads well in a terminal, a CI
log and a pipe.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TextIO

from orchestrator.models import DeployStatus, InstanceStatus, ServiceInstances, ServiceVersions
from orchestrator.store import RunSummary, VersionCheck
from orchestrator.timefmt import utcnow

Sleep = Callable[[float], None]


def _clock(status: InstanceStatus) -> str:
    if status.started_at is None:
        return ""
    end = status.completed_at or utcnow()
    return f"{(end - status.started_at).total_seconds():.1f}s"


def instance_line(status: InstanceStatus, batches: int) -> str:
    """One line for one instance of a run."""
    versions = f"{status.previous_version or '-'} -> {status.target_version}"
    extra = []
    if status.attempts > 1:
        extra.append(f"attempt {status.attempts}")
    if status.phase and not status.status.is_terminal:
        extra.append(status.phase)
    elapsed = _clock(status)
    if elapsed:
        extra.append(elapsed)
    text = (f"  [batch {status.batch}/{batches}] {status.instance_id:<20} "
            f"{status.status.value:<11} {versions}")
    if extra:
        text += f"  ({', '.join(extra)})"
    if status.error_message and status.status.value != "completed":
        text += f"\n      {status.error_message.splitlines()[0]}"
    return text


def summary_line(status: DeployStatus) -> str:
    """Progress counters of a run."""
    p = status.progress
    return (f"{status.kind} {status.deploy_id}: {status.status.value} — "
            f"{p.completed}/{p.total} completed, {p.failed} failed, {p.cancelled} cancelled, "
            f"{p.pending} pending")


def render_status(status: DeployStatus) -> str:
    """Full text view of a run."""
    batches = max((i.batch for i in status.instances), default=0)
    lines = [
        f"{status.kind} {status.deploy_id}: {status.service} {status.version}",
        f"  status {status.status.value}, batch size {status.batch_size}, "
        f"max failures {status.max_failures}, started {status.started_at:%Y-%m-%d %H:%M:%S}Z",
    ]
    lines += [instance_line(i, batches) for i in status.instances]
    lines.append(summary_line(status))
    if status.error_message and status.status.value != "completed":
        lines.append(f"  error: {status.error_message}")
    return "\n".join(lines)


def render_versions(versions: ServiceVersions) -> str:
    """Text view of which version every instance runs."""
    lines = [f"{versions.service}: {versions.total_instances} instance(s)"]
    for entry in versions.instances:
        when = f"{entry.last_updated:%Y-%m-%d %H:%M:%S}Z" if entry.last_updated else "never"
        lines.append(f"  {entry.instance_id:<24} {entry.version or '(none)':<16} {when}")
    counts = sorted(versions.version_summary.items())
    summary = ", ".join(f"{v or '(none)'}: {n}" for v, n in counts)
    lines.append(f"  summary: {summary}")
    return "\n".join(lines)


def render_history(service: str, runs: list[RunSummary]) -> str:
    """Text view of a service's runs, newest first."""
    if not runs:
        return f"{service}: no runs yet"
    lines = [f"{'started (UTC)':<20} {'kind':<9} {'version':<12} {'status':<11} "
             f"{'done/total':<10} {'by':<12} run"]
    for r in runs:
        link = ""
        if r.rollback_run_id:
            link = f"  -> rolled back by {r.rollback_run_id}"
        elif r.parent_run_id:
            link = f"  <- after {r.parent_run_id}"
        lines.append(f"{r.started_at:%Y-%m-%d %H:%M:%S}  {r.kind:<9} {r.version:<12} "
                     f"{r.status.value:<11} {f'{r.completed}/{r.total}':<10} "
                     f"{r.created_by[:12]:<12} {r.run_id}{link}")
    return "\n".join(lines)


def check_line(check: VersionCheck) -> str:
    """One instance of a refresh."""
    if not check.reachable:
        return f"  {check.instance_id:<24} unreachable: {check.error}"
    text = f"  {check.instance_id:<24} recorded {check.recorded_version or '(none)':<12} " \
           f"on disk {check.observed_version or '(none)':<12}"
    if check.drift:
        text += "  adopted" if check.adopted else "  DRIFT"
    return text


def render_checks(service: str, checks: list[VersionCheck]) -> str:
    """Text view of a refresh."""
    drift = sum(1 for c in checks if c.drift and not c.adopted)
    down = sum(1 for c in checks if not c.reachable)
    lines = [f"{service}: probed {len(checks)} instance(s), {drift} drifted, {down} unreachable"]
    lines += [check_line(c) for c in checks]
    return "\n".join(lines)


def render_instances(page: ServiceInstances) -> str:
    """Text view of a page of instances."""
    lines = [f"{page.service}: showing {len(page.instances)} of {page.total} "
             f"(offset {page.offset}, limit {page.limit})"]
    for i in page.instances:
        meta = ",".join(f"{k}={v}" for k, v in sorted(i.metadata.items()))
        lines.append(f"  {i.instance_id:<24} {i.host}:{i.port:<6} {i.version or '(none)':<14} "
                     f"{meta}")
    return "\n".join(lines)


def follow(
    fetch: Callable[[], DeployStatus],
    out: TextIO,
    interval: float = 0.2,
    sleep: Sleep = time.sleep,
) -> DeployStatus:
    """Print each instance's transitions until the run finishes; returns the final status."""
    seen: dict[str, tuple[str, int, str]] = {}
    started_batches: set[int] = set()
    while True:
        status = fetch()
        batches = max((i.batch for i in status.instances), default=0)
        for inst in status.instances:
            key = (inst.status.value, inst.attempts, inst.phase)
            if seen.get(inst.instance_id) == key:
                continue
            if inst.status.value == "pending" and inst.instance_id not in seen:
                seen[inst.instance_id] = key
                continue
            # An instance may finish between two polls: announce its batch on first sight.
            if inst.batch not in started_batches:
                started_batches.add(inst.batch)
                members = [i.instance_id for i in status.instances if i.batch == inst.batch]
                out.write(f"batch {inst.batch}/{batches}: {', '.join(members)}\n")
            seen[inst.instance_id] = key
            out.write(instance_line(inst, batches) + "\n")
        out.flush()
        if status.status.is_terminal:
            out.write(summary_line(status) + "\n")
            if status.error_message and status.status.value != "completed":
                out.write(f"  error: {status.error_message}\n")
            out.flush()
            return status
        sleep(interval)
