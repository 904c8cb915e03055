"""A stepped deployment's gates, from its recorded decisions: pure.

Between two batches of a stepped run stands a *gate*: its analysis (when the run has one),
then the pause its steps write there (unless a full promotion skips it). Everything that
happens at a gate is an append-only :class:`DecisionRecord` in the store: the worker's
(``batch`` started, ``measured``, ``analysis_passed``/``_failed``, ``paused``,
``continued``) and the callers' (``promoted``, ``aborted``), each with who made it.

The decisions are the whole state: a worker that claims a run handed back at a gate folds
them (:func:`gate_state`) and goes on where the last one stopped (the analysis taken so far
counts, a timed pause keeps its end, a promotion made meanwhile is seen); a status read
folds the same records into the ``canary`` of a DeployStatus (:func:`canary_status`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

from orchestrator.domain.analysis import Analysis, Measurement, validate_analysis
from orchestrator.domain.placement import grouped
from orchestrator.domain.records import RunInstanceRecord, RunRecord
from orchestrator.domain.steps import batch_sizes, normalize_steps, parse_steps, pause_after
from orchestrator.errors import ValidationError
from orchestrator.models import DEFAULT_BATCH_SIZE, DeployParams, Status
from orchestrator.models.canary import AnalysisPoint, CanaryStatus, Decision
from orchestrator.timefmt import parse_time

#: Who the worker's own decisions are recorded as.
FLOY = "floy"


class DecisionKind(StrEnum):
    """What a decision records."""

    BATCH = "batch"  # the worker started a batch
    MEASURED = "measured"  # one analysis measurement (data: the measurement)
    ANALYSIS_PASSED = "analysis_passed"
    ANALYSIS_FAILED = "analysis_failed"
    PAUSED = "paused"  # data: {"until": time or null}
    PROMOTED = "promoted"  # a caller promoted; data: {"full": bool}
    CONTINUED = "continued"  # the worker left the gate (message: why)
    ABORTED = "aborted"  # a caller aborted; data: {"rollback": bool}


@dataclass(frozen=True)
class DecisionRecord:
    """One recorded decision about run ``run_id`` at the gate after ``batch`` (or, for
    ``batch`` decisions, the batch started)."""

    run_id: str
    batch: int
    kind: DecisionKind
    actor: str
    at: datetime
    message: str = ""
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Gate:
    """Where the gate after ``batch`` stands."""

    batch: int
    measurements: tuple[Measurement, ...] = ()
    analysis: str = ""  # "" undecided, else "passed" or "failed"
    paused_since: datetime | None = None
    pause_until: datetime | None = None
    promoted_by: str = ""  # who promoted this gate ("" nobody yet)
    continued: bool = False


def gate_state(decisions: Sequence[DecisionRecord], batch: int) -> Gate:
    """Fold the decisions about the gate after ``batch`` (a full promotion made anywhere
    counts as a promotion of every later gate)."""
    gate = Gate(batch)
    for d in decisions:
        if d.kind is DecisionKind.PROMOTED and d.data.get("full") and d.batch <= batch:
            gate = replace(gate, promoted_by=gate.promoted_by or d.actor)
        if d.batch != batch:
            continue
        if d.kind is DecisionKind.MEASURED:
            gate = replace(gate, measurements=(*gate.measurements, Measurement.from_dict(d.data)))
        elif d.kind is DecisionKind.ANALYSIS_PASSED:
            gate = replace(gate, analysis="passed")
        elif d.kind is DecisionKind.ANALYSIS_FAILED:
            gate = replace(gate, analysis="failed")
        elif d.kind is DecisionKind.PAUSED and gate.paused_since is None:
            until = d.data.get("until")
            gate = replace(gate, paused_since=d.at,
                           pause_until=parse_time(until) if until else None)
        elif d.kind is DecisionKind.PROMOTED:
            gate = replace(gate, promoted_by=d.actor)
        elif d.kind is DecisionKind.CONTINUED:
            gate = replace(gate, continued=True)
    return gate


def full_promotion(decisions: Sequence[DecisionRecord]) -> str:
    """Who promoted the run fully (skipping its remaining pauses); "" when nobody did."""
    return next((d.actor for d in decisions
                 if d.kind is DecisionKind.PROMOTED and d.data.get("full")), "")


def abort_of(decisions: Sequence[DecisionRecord]) -> DecisionRecord | None:
    """The first abort recorded for the run, if any."""
    return next((d for d in decisions if d.kind is DecisionKind.ABORTED), None)


def last_batch(decisions: Sequence[DecisionRecord]) -> int:
    """The last batch the worker started (0: none yet)."""
    return max((d.batch for d in decisions if d.kind is DecisionKind.BATCH), default=0)


def check_canary(params: DeployParams, allowed_hosts: frozenset[str]) -> DeployParams:
    """Check a deployment's ``steps`` and ``analysis`` (one error naming the field) and
    return the params normalised. Steps replace ``batch_size`` (both given: refused); an
    analysis without steps gates every batch of ``batch_size``."""
    steps = normalize_steps(params.steps, "steps")
    if steps and params.batch_size != DEFAULT_BATCH_SIZE:
        raise ValidationError("steps", "give steps or batch_size, not both (the steps' "
                                       "batches replace batch_size)")
    analysis = validate_analysis(params.analysis, allowed_hosts)
    if analysis is not None and not steps:
        steps = (params.batch_size,)
    return replace(params, steps=steps,
                   analysis=None if analysis is None else analysis.to_dict())


def analysis_of(run: RunRecord) -> Analysis | None:
    """The analysis definition a run was recorded with (already validated)."""
    data = run.request.analysis
    return None if data is None else Analysis.from_dict(data)


def planned_batches(run: RunRecord) -> list[int]:
    """The batch sizes of a stepped run."""
    return batch_sizes(parse_steps(list(run.request.steps)), len(run.request.instances))


def gate_pause(run: RunRecord, batch: int) -> int | bool | None:
    """The pause at the gate after ``batch``: seconds, None for indefinite, False for no
    pause."""
    step = pause_after(parse_steps(list(run.request.steps)), batch)
    return False if step is None else step.seconds


def canary_status(run: RunRecord, decisions: Sequence[DecisionRecord],
                  running: bool) -> CanaryStatus | None:
    """The ``canary`` of a stepped run's DeployStatus (None for a run without steps);
    ``running``: an instance of it is in flight."""
    if not run.request.steps:
        return None
    batch = last_batch(decisions)
    gate = gate_state(decisions, batch)
    batches = planned_batches(run)
    finished = run.status.is_terminal
    if finished:
        state = "finished"
    elif gate.paused_since is not None and not gate.continued and not running:
        state = "paused"
    elif (0 < batch < len(batches) and not running and not gate.continued
          and run.request.analysis is not None and not gate.analysis):
        state = "analysis"  # a gate stands after every batch but the last
    else:
        state = "running"
    promoters = [d.actor for d in decisions if d.kind is DecisionKind.PROMOTED]
    points = tuple(
        AnalysisPoint(d.batch, m.at, m.ok, m.value, m.http_status, m.seconds, m.error)
        for d in decisions if d.kind is DecisionKind.MEASURED
        for m in (Measurement.from_dict(d.data),))
    return CanaryStatus(
        steps=run.request.steps,
        batches=tuple(batches),
        batch=batch,
        state=state,
        paused_since=gate.paused_since if state == "paused" else None,
        pause_until=gate.pause_until if state == "paused" else None,
        promoted_by=promoters[-1] if promoters else "",
        full=bool(full_promotion(decisions)),
        analysis=None if run.request.analysis is None else dict(run.request.analysis),
        measurements=points,
        decisions=tuple(Decision(d.at, d.batch, str(d.kind), d.actor, d.message)
                        for d in decisions if d.kind is not DecisionKind.MEASURED),
    )


def stepped_plays(run: RunRecord, members: Sequence[RunInstanceRecord]
                  ) -> list[tuple[int, str, list[str]]]:
    """What a stepped run still has to play: ``(batch, node, instance IDs)``, one
    ansible-playbook each, batch after batch in the request's order (a batch whose instances
    are labelled for several execution nodes plays once per node)."""
    status = {m.instance_id: m.status for m in members}
    ids = list(run.request.instances)
    plays: list[tuple[int, str, list[str]]] = []
    start = 0
    for number, size in enumerate(planned_batches(run), start=1):
        pending = [i for i in ids[start:start + size] if status.get(i) is Status.PENDING]
        start += size
        labels = [run.request.node_of(i) for i in pending] if run.request.nodes else []
        plays.extend((number, node, group) for node, group in grouped(pending, labels))
    return plays


def waiting_at_gate(run: RunRecord, members: Sequence[RunInstanceRecord],
                    decisions: Sequence[DecisionRecord]) -> bool:
    """Whether a stepped run in progress stands at a gate it has not left (analysing or
    paused after its last batch) with no instance in flight: then no playbook of it runs,
    and resuming it later loses nothing."""
    if not run.request.steps or run.status is not Status.IN_PROGRESS:
        return False
    if any(m.status is Status.IN_PROGRESS for m in members):
        return False
    batch = last_batch(decisions)
    if batch == 0:
        return False
    gate = gate_state(decisions, batch)
    waiting = gate.paused_since is not None or bool(gate.measurements)
    return waiting and not gate.continued and gate.analysis != "failed"
