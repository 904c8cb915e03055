"""The canary step grammar from the shared catalogue (tests/fixtures/steps/cases.yml), and
the gate fold of stepped runs from recorded decisions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from orchestrator.domain import canary, steps
from orchestrator.domain.canary import DecisionKind, DecisionRecord
from orchestrator.errors import ValidationError

CASES: list[dict[str, Any]] = yaml.safe_load(
    (Path(__file__).parents[1] / "fixtures" / "steps" / "cases.yml").read_text())
T0 = datetime(2026, 12, 6, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize("case", CASES, ids=[repr(c["steps"]) for c in CASES])
def test_floy_parses_the_catalogue(case: dict[str, Any]) -> None:
    if "error" in case:
        with pytest.raises(ValidationError) as err:
            steps.parse_steps(case["steps"])
        assert err.value.field == "steps"
        assert case["error"] in str(err.value)
        return
    parsed = steps.parse_steps(case["steps"])
    assert [s.text() for s in parsed] == case["items"]
    for total, sizes in case["batches"].items():
        assert steps.batch_sizes(parsed, total) == sizes, total
        assert steps.batch_numbers(parsed, total) == [
            n for n, size in enumerate(sizes, start=1) for _ in range(size)]
    pauses = {b: p.seconds for b in range(1, 30) if (p := steps.pause_after(parsed, b))}
    assert pauses == case["pauses"]


def test_a_canonical_strategy_parses_to_itself() -> None:
    for case in (c for c in CASES if "items" in c):
        assert steps.normalize_steps(case["items"]) == tuple(case["items"])


def _d(batch: int, kind: DecisionKind, seconds: int = 0, actor: str = "floy",
       **data: Any) -> DecisionRecord:
    return DecisionRecord("r", batch, kind, actor, T0 + timedelta(seconds=seconds), "", data)


def test_the_gate_fold_keeps_a_pause_and_sees_promotions() -> None:
    until = "2026-12-06T12:05:00.000000Z"
    decisions = [_d(1, DecisionKind.BATCH), _d(1, DecisionKind.PAUSED, 1, until=until)]
    gate = canary.gate_state(decisions, 1)
    assert gate.paused_since == T0 + timedelta(seconds=1)
    assert gate.pause_until == T0 + timedelta(minutes=5)
    assert not gate.promoted_by and not gate.continued
    # a second worker resuming the gate records no new pause: the first one is kept
    decisions.append(_d(1, DecisionKind.PROMOTED, 2, actor="alice", full=False))
    assert canary.gate_state(decisions, 1).promoted_by == "alice"
    assert canary.gate_state(decisions, 2).promoted_by == ""  # only that gate
    decisions.append(_d(1, DecisionKind.PROMOTED, 3, actor="bob", full=True))
    assert canary.gate_state(decisions, 3).promoted_by == "bob"  # and every later one
    assert canary.full_promotion(decisions) == "bob"
    assert canary.last_batch(decisions) == 1


def test_a_gate_is_waiting_only_between_batches() -> None:
    from orchestrator.domain.records import RunInstanceRecord, RunKind, RunRecord
    from orchestrator.domain.request import RunRequest
    from orchestrator.models import Status

    run = RunRecord("r", RunKind.DEPLOY, "s", "2", Status.IN_PROGRESS,
                    RunRequest(("a", "b"), steps=("1", "pause", "1")), "me", T0, T0)
    done = RunInstanceRecord("r", "a", 0, 1, Status.COMPLETED, "2")
    pending = RunInstanceRecord("r", "b", 1, 2, Status.PENDING, "2")
    paused = [_d(1, DecisionKind.BATCH), _d(1, DecisionKind.PAUSED, 1, until=None)]
    assert canary.waiting_at_gate(run, [done, pending], paused)
    assert not canary.waiting_at_gate(run, [done, pending], paused[:1])  # still playing
    flying = RunInstanceRecord("r", "b", 1, 2, Status.IN_PROGRESS, "2")
    assert not canary.waiting_at_gate(run, [done, flying], paused)
    left = [*paused, _d(1, DecisionKind.CONTINUED, 2)]
    assert not canary.waiting_at_gate(run, [done, pending], left)  # it may be starting 2
    status = canary.canary_status(run, paused, running=False)
    assert status is not None and status.state == "paused" and status.pause_until is None
    assert status.batches == (1, 1)
