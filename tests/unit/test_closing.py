"""The close-a-run policy, from recorded cases: ``tests/fixtures/closing/<case>.json``
holds the run's record as it ended, what a probe read on each probed instance, and the
expected outcome (which instances are probed, how each instance and the run end). The
record is changed exactly as the store changes it (``CloseAll`` rules first, then the
probe's updates through the store's own row mapping)."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from orchestrator.domain import closing
from orchestrator.domain.records import Observation, RunInstanceRecord, RunKind, RunRecord
from orchestrator.domain.request import RunRequest
from orchestrator.models import Status
from orchestrator.store.rows import update_values

CASES = sorted((Path(__file__).parents[1] / "fixtures" / "closing").glob("*.json"))
NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def _run(case: dict[str, Any]) -> RunRecord:
    data = case["run"]
    return RunRecord("r-1", RunKind(data.get("kind", "deploy")), "hello", "2.0.0",
                     Status(data["status"]), RunRequest.from_json(data["request"]), "t",
                     NOW, NOW)


def _members(case: dict[str, Any]) -> list[RunInstanceRecord]:
    return [RunInstanceRecord("r-1", m["instance_id"], n, 1, Status(m["status"]), "2.0.0",
                              current_version=m["current_version"],
                              error_message=m["error_message"])
            for n, m in enumerate(case["members"])]


def _closing(case: dict[str, Any], run: RunRecord,
             members: list[RunInstanceRecord]) -> closing.Closing:
    ending, reason = case["ending"], case.get("reason", "")
    if ending == "playbook":
        return closing.after_playbook(run, members, closing.PlaybookEnd(**case["playbook"]))
    if ending == "cancel":
        return closing.after_cancel(members, reason)
    if ending == "before_start":
        return closing.before_start()
    if ending == "crash":
        return closing.after_crash(reason)
    if ending == "handed_back":
        return closing.handed_back(members, reason)
    assert ending == "worker_lost", ending
    return closing.after_worker_lost(run, members, reason)


def _applied(members: list[RunInstanceRecord], how: closing.Closing,
             seen: dict[str, Observation]) -> list[RunInstanceRecord]:
    """The members after the store carried out ``how`` (as engine/settle.py does)."""
    out = []
    for m in members:
        for rule in how.close:
            if m.status in rule.only:
                m = dataclasses.replace(m, status=rule.status, error_message=rule.message)
        out.append(m)
    by_id = {m.instance_id: m for m in out}
    for update in closing.settle(how.probe, seen, NOW):
        values = update_values(update)
        values["status"] = Status(values["status"])
        values.pop("completed_at", None)
        values.pop("started_at", None)
        by_id[update.instance_id] = dataclasses.replace(by_id[update.instance_id], **values)
    return [by_id[m.instance_id] for m in out]


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_a_recorded_ending_closes_as_expected(path: Path) -> None:
    case = json.loads(path.read_text())
    run, members = _run(case), _members(case)
    how = _closing(case, run, members)
    expect = case["expect"]
    assert sorted(how.probe) == sorted(expect["probed"]), "which instances are probed"
    seen = {i: Observation(i, **o) for i, o in case.get("observations", {}).items()}
    final = _applied(members, how, seen)
    got = {m.instance_id: {"status": m.status.value, "error_message": m.error_message,
                           "current_version": m.current_version} for m in final}
    assert got == expect["instances"]
    status, message = how.status, how.message
    if status is None:
        status, message = closing.verdict(final, how.playbook)
    assert (status.value, message) == (expect["status"], expect["message"])


def test_every_ending_has_a_recorded_case() -> None:
    endings = {json.loads(p.read_text())["ending"] for p in CASES}
    assert endings == {"playbook", "cancel", "before_start", "crash", "worker_lost",
                       "handed_back"}


def test_a_settled_instance_ends_now_unless_its_end_is_kept() -> None:
    seen = {"a": Observation("a", True, "1.0.0"), "b": Observation("b", True, "1.0.0")}
    rules = {"a": closing.Settle(Status.CANCELLED, "x"),
             "b": closing.Settle(Status.FAILED, "y", finish=False)}
    a, b = closing.settle(rules, seen, NOW)
    assert a.completed_at == NOW and b.completed_at is None
