"""Human-readable rendering of runs and instances, and the live follow loop.

Plain lines rather than a redrawn screen, so the same output reads well in a terminal, a CI
log and a pipe. Every string that came from outside (instance error messages, versions read
from hosts, metadata, user names) goes through :func:`safe_text` before it is printed, so a
stored ``\\x1b]0;...\\x07`` shows as text instead of retitling the terminal; ``--json``
output is never passed through it (``json.dumps`` escapes on its own).
"""

from __future__ import annotations

import time
import unicodedata
from collections.abc import Callable
from typing import TYPE_CHECKING, TextIO

from orchestrator.models import DeployStatus, InstanceStatus, ServiceInstances, ServiceVersions
from orchestrator.models.canary import AnalysisPoint, CanaryStatus, Decision
from orchestrator.timefmt import utcnow

if TYPE_CHECKING:  # the store pulls in SQLAlchemy; the error boundary uses safe_text only
    from orchestrator.domain.records import ActionRecord, RunSummary, VersionCheck

Sleep = Callable[[float], None]

# What a terminal may act on instead of printing: C0 and C1 controls and DEL (Cc), format
# characters such as bidi overrides and zero-width spaces (Cf), line and paragraph
# separators (Zl, Zp) and lone surrogates (Cs, which would not even encode).
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})


def _escape(ch: str) -> str:
    code = ord(ch)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def safe_text(text: str, *, keep_newlines: bool = False) -> str:
    """``text`` with every character a terminal would act on written visibly (ESC as
    ``\\x1b``, U+202E as ``\\u202e``). Newlines are escaped too, so a value cannot fake a
    line of output, unless ``keep_newlines`` (for text whose lines are the renderer's own)."""
    if text.isprintable():
        return text
    return "".join(
        ch if (keep_newlines and ch == "\n") or unicodedata.category(ch) not in
        _UNSAFE_CATEGORIES else _escape(ch)
        for ch in text
    )


def _clock(status: InstanceStatus) -> str:
    if status.started_at is None:
        return ""
    end = status.completed_at or utcnow()
    return f"{(end - status.started_at).total_seconds():.1f}s"


def _error_lines(label: str, message: str) -> list[str]:
    """A run's error message, one printed line per line of it, each escaped."""
    lines = message.split("\n")
    pad = " " * len(label)
    return [f"{label if n == 0 else pad}{safe_text(line)}" for n, line in enumerate(lines)]


def instance_line(status: InstanceStatus, batches: int) -> str:
    """One line for one instance of a run."""
    versions = f"{safe_text(status.previous_version) or '-'} -> {safe_text(status.target_version)}"
    extra = []
    if status.attempts > 1:
        extra.append(f"attempt {status.attempts}")
    if status.phase and not status.status.is_terminal:
        extra.append(safe_text(status.phase))
    elapsed = _clock(status)
    if elapsed:
        extra.append(elapsed)
    text = (f"  [batch {status.batch}/{batches}] {safe_text(status.instance_id):<20} "
            f"{status.status.value:<11} {versions}")
    if extra:
        text += f"  ({', '.join(extra)})"
    if status.error_message and status.status.value != "completed":
        first = status.error_message.partition("\n")[0]
        text += f"\n      {safe_text(first)}"
    return text


def summary_line(status: DeployStatus) -> str:
    """Progress counters of a run."""
    p = status.progress
    return (f"{safe_text(status.kind)} {safe_text(status.deploy_id)}: {status.status.value} — "
            f"{p.completed}/{p.total} completed, {p.failed} failed, {p.cancelled} cancelled, "
            f"{p.pending} pending")


def render_status(status: DeployStatus) -> str:
    """Full text view of a run."""
    batches = max((i.batch for i in status.instances), default=0)
    lines = [
        f"{safe_text(status.kind)} {safe_text(status.deploy_id)}: {safe_text(status.service)} "
        f"{safe_text(status.version)}",
        f"  status {status.status.value}, batch size {safe_text(status.batch_size)}, "
        f"max failures {status.max_failures}, started {status.started_at:%Y-%m-%d %H:%M:%S}Z",
    ]
    if status.canary is not None:
        lines += canary_lines(status.canary)
    lines += [instance_line(i, batches) for i in status.instances]
    lines.append(summary_line(status))
    if status.error_message and status.status.value != "completed":
        lines += _error_lines("  error: ", status.error_message)
    return "\n".join(lines)


def _pause_text(canary: CanaryStatus) -> str:
    if canary.pause_until is None:
        return "until promoted"
    return f"until {canary.pause_until:%H:%M:%S}Z"


def canary_lines(canary: CanaryStatus) -> list[str]:
    """A stepped deployment: its steps, where it stands, the last decisions."""
    state = canary.state
    if state == "paused":
        state = f"paused after batch {canary.batch} {_pause_text(canary)}"
    elif state == "analysis":
        state = f"analysing after batch {canary.batch}"
    elif canary.batch:
        state = f"{state}, batch {canary.batch} of {len(canary.batches)}"
    lines = [f"  steps {safe_text(','.join(canary.steps))} (batches "
             f"{'+'.join(str(b) for b in canary.batches)}): {state}"]
    if canary.promoted_by:
        lines.append(f"  promoted by {safe_text(canary.promoted_by)}"
                     + (" (fully)" if canary.full else ""))
    lines += [decision_line(d) for d in canary.decisions[-5:]]
    return lines


def decision_line(d: Decision) -> str:
    """One decision at a gate."""
    return (f"  {d.at:%H:%M:%S}Z gate {d.batch}: {safe_text(d.kind)} by "
            f"{safe_text(d.actor)}" + (f": {safe_text(d.message)}" if d.message else ""))


def point_line(p: AnalysisPoint) -> str:
    """One analysis measurement."""
    value = "" if p.value is None else f" value {p.value:g}"
    verdict = "ok" if p.ok else f"failed: {safe_text(p.error)}"
    return f"  {p.at:%H:%M:%S}Z analysis after batch {p.batch}:{value} {verdict}"


def render_versions(versions: ServiceVersions) -> str:
    """Text view of which version every instance runs."""
    lines = [f"{safe_text(versions.service)}: {versions.total_instances} instance(s)"]
    for entry in versions.instances:
        when = f"{entry.last_updated:%Y-%m-%d %H:%M:%S}Z" if entry.last_updated else "never"
        lines.append(f"  {safe_text(entry.instance_id):<24} "
                     f"{safe_text(entry.version) or '(none)':<16} {when}")
    counts = sorted(versions.version_summary.items())
    summary = ", ".join(f"{safe_text(v) or '(none)'}: {n}" for v, n in counts)
    lines.append(f"  summary: {summary}")
    return "\n".join(lines)


def render_history(service: str, runs: list[RunSummary]) -> str:
    """Text view of a service's runs, newest first."""
    if not runs:
        return f"{safe_text(service)}: no runs yet"
    lines = [f"{'started (UTC)':<20} {'kind':<9} {'version':<12} {'status':<11} "
             f"{'done/total':<10} {'by':<12} run"]
    for r in runs:
        link = ""
        if r.rollback_run_id:
            link = f"  -> rolled back by {safe_text(r.rollback_run_id)}"
        elif r.parent_run_id:
            link = f"  <- after {safe_text(r.parent_run_id)}"
        lines.append(f"{r.started_at:%Y-%m-%d %H:%M:%S}  {safe_text(r.kind):<9} "
                     f"{safe_text(r.version):<12} {r.status.value:<11} "
                     f"{f'{r.completed}/{r.total}':<10} {safe_text(r.created_by[:12]):<12} "
                     f"{safe_text(r.run_id)}{link}")
    return "\n".join(lines)


def render_actions(service: str, actions: list[ActionRecord]) -> str:
    """Text view of the audit trail of a service, newest first."""
    if not actions:
        return f"{safe_text(service)}: no actions recorded"
    lines = [f"{'at (UTC)':<20} {'action':<9} {'by':<24} {'subject':<28} detail"]
    for a in actions:
        lines.append(f"{a.at:%Y-%m-%d %H:%M:%S}  {safe_text(a.action):<9} "
                     f"{safe_text(a.actor[:24]):<24} {safe_text(a.subject):<28} "
                     f"{safe_text(a.detail)}")
    return "\n".join(lines)


def check_line(check: VersionCheck) -> str:
    """One instance of a refresh."""
    instance = safe_text(check.instance_id)
    if not check.reachable:
        return f"  {instance:<24} unreachable: {safe_text(check.error)}"
    text = (f"  {instance:<24} recorded {safe_text(check.recorded_version) or '(none)':<12} "
            f"on disk {safe_text(check.observed_version) or '(none)':<12}")
    if check.drift:
        text += "  adopted" if check.adopted else "  DRIFT"
    if check.error:
        text += f"\n      {safe_text(check.error)}"
    return text


def render_checks(service: str, checks: list[VersionCheck]) -> str:
    """Text view of a refresh."""
    drift = sum(1 for c in checks if c.drift and not c.adopted)
    down = sum(1 for c in checks if not c.reachable)
    lines = [f"{safe_text(service)}: probed {len(checks)} instance(s), {drift} drifted, "
             f"{down} unreachable"]
    lines += [check_line(c) for c in checks]
    return "\n".join(lines)


def render_instances(page: ServiceInstances) -> str:
    """Text view of a page of instances."""
    lines = [f"{safe_text(page.service)}: showing {len(page.instances)} of {page.total} "
             f"(offset {page.offset}, limit {page.limit})"]
    for i in page.instances:
        meta = ",".join(f"{k}={v}" for k, v in sorted(i.metadata.items()))
        lines.append(f"  {safe_text(i.instance_id):<24} {safe_text(i.host)}:{i.port:<6} "
                     f"{safe_text(i.version) or '(none)':<14} {safe_text(meta)}")
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
    told = {"decisions": 0, "points": 0}
    while True:
        status = fetch()
        if status.canary is not None:
            for d in status.canary.decisions[told["decisions"]:]:
                if d.kind == "paused":
                    out.write(decision_line(d) + f"; promote: floy promote "
                              f"{safe_text(status.deploy_id)}\n")
                elif d.kind != "batch":
                    out.write(decision_line(d) + "\n")
            for p in status.canary.measurements[told["points"]:]:
                out.write(point_line(p) + "\n")
            told.update(decisions=len(status.canary.decisions),
                        points=len(status.canary.measurements))
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
                out.write(f"batch {inst.batch}/{batches}: {safe_text(', '.join(members))}\n")
            seen[inst.instance_id] = key
            out.write(instance_line(inst, batches) + "\n")
        out.flush()
        if status.status.is_terminal:
            out.write(summary_line(status) + "\n")
            if status.error_message and status.status.value != "completed":
                out.write("\n".join(_error_lines("  error: ", status.error_message)) + "\n")
            out.flush()
            return status
        sleep(interval)
