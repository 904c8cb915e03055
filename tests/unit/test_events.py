"""The event fold, replayed over recorded event files of real runs (see fixtures/events)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orchestrator.domain.events import FoldState, InstanceUpdate, RunnerEvent, fold_event
from orchestrator.models import Status
from orchestrator.store.rows import update_values

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "events"

C, F, P = Status.COMPLETED, Status.FAILED, Status.PENDING

# case -> (instances of the run, expected status / attempts / message keyword per instance)
CASES: dict[str, tuple[list[str], dict[str, tuple[Status, int, str]]]] = {
    "success_batches": (["hello-1", "hello-2", "hello-3"], {
        "hello-1": (C, 1, ""), "hello-2": (C, 1, ""), "hello-3": (C, 1, "")}),
    "health_failure": (["hello-1", "hello-2"], {
        "hello-1": (F, 1, "health check failed"), "hello-2": (F, 1, "switched back to 1.0.0")}),
    "unreachable": (["gone-1", "hello-1"], {
        "gone-1": (F, 1, "unreachable"), "hello-1": (C, 1, "")}),
    "retried": (["hello-2"], {"hello-2": (C, 3, "")}),
    # batch 1 fails, budget 0: later instances never start (the worker then cancels them)
    "budget_exhausted": (["hello-1", "hello-2", "hello-3", "hello-4"], {
        "hello-1": (F, 1, "health check failed"), "hello-2": (P, 0, ""),
        "hello-3": (P, 0, ""), "hello-4": (P, 0, "")}),
}


def replay(case: str, ids: list[str]) -> tuple[FoldState, list[InstanceUpdate]]:
    state = FoldState.start(ids, package_url="https://pkg/x.tar.gz")
    updates: list[InstanceUpdate] = []
    with (FIXTURES / f"{case}.jsonl").open(encoding="utf-8") as handle:
        for line in handle:
            state, new = fold_event(state, json.loads(line))
            updates.extend(new)
    return state, updates


@pytest.mark.parametrize("case", sorted(CASES))
def test_recorded_run_folds_to_expected_outcome(case: str) -> None:
    ids, expected = CASES[case]
    state, updates = replay(case, ids)
    assert state.finished, "playbook_on_stats was seen"
    for instance_id, (status, attempts, keyword) in expected.items():
        assert state.statuses[instance_id] is status, instance_id
        mine = [u for u in updates if u.instance_id == instance_id]
        if status is P:
            assert mine == []
            continue
        assert mine[0].status is Status.IN_PROGRESS and mine[0].started_at is not None
        final = mine[-1]
        assert final.status is status and final.completed_at is not None
        assert state.attempts[instance_id] == attempts
        if keyword:
            assert keyword in (final.error_message or "")
        if status is C:
            assert final.current_version and final.release is not None
            assert final.release["version"] == final.current_version
            assert final.completed_at >= mine[0].started_at  # type: ignore[operator]


def test_retry_events_report_each_failed_attempt() -> None:
    _, updates = replay("retried", ["hello-2"])
    retries = [u for u in updates if u.status is None]
    assert [u.attempts for u in retries] == [2, 3]
    assert all("503" in (u.error_message or "") for u in retries)


def test_terminal_instances_never_change_and_strangers_are_ignored() -> None:
    state = FoldState.start(["a"])
    fail: RunnerEvent = {"event": "runner_on_failed", "created": "2026-01-01T00:00:00",
                         "event_data": {"host": "a", "res": {"msg": "first"}}}
    state, ups = fold_event(state, fail)
    assert ups[0].error_message == "first"
    again: RunnerEvent = {"event": "runner_on_failed",
                          "event_data": {"host": "a", "res": {"msg": "second"}}}
    assert fold_event(state, again) == (state, [])
    stranger: RunnerEvent = {"event": "runner_on_failed",
                             "event_data": {"host": "localhost", "res": {}}}
    assert fold_event(state, stranger) == (state, [])


def test_ignored_errors_do_not_fail_an_instance() -> None:
    state = FoldState.start(["a"])
    event: RunnerEvent = {"event": "runner_on_failed",
                          "event_data": {"host": "a", "ignore_errors": True, "res": {}}}
    assert fold_event(state, event) == (state, [])


def test_event_order_across_serial_batches_is_by_counter() -> None:
    counters = [json.loads(line)["counter"]
                for line in (FIXTURES / "success_batches.jsonl").read_text().splitlines()]
    assert counters == sorted(counters) and len(set(counters)) == len(counters)


def test_unreachable_messages_keep_the_telling_ssh_lines() -> None:
    from orchestrator.domain.events import unreachable_message

    banner = (
        "Data could not be sent to remote host \"127.0.0.1\".\r\n"
        "@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\r\n"
        "@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\r\n"
        "@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\r\n"
        "IT IS POSSIBLE THAT SOMEONE IS DOING SOMETHING NASTY!\r\n"
        "Host key for [127.0.0.1]:2222 has changed and you have requested strict checking.\r\n"
        "Host key verification failed.\r\n"
    )
    text = unreachable_message(banner)
    assert text == ("Host key for [127.0.0.1]:2222 has changed and you have requested strict "
                    "checking. | Host key verification failed.")
    assert unreachable_message("ssh: connect to host 127.0.0.1 port 9: Connection refused") \
        == "ssh: connect to host 127.0.0.1 port 9: Connection refused"
    assert unreachable_message("") == "host unreachable"


def _release(kind: str, res: dict[str, object], host: str = "hello-1") -> RunnerEvent:
    return {"event": kind, "event_data": {"host": host, "res": res,
                                          "resolved_action": "floy.release.floy_release"}}


@pytest.mark.parametrize(("kind", "res"), [
    # the connection went away while the module ran (a partition mid-release)
    ("runner_on_unreachable", {"msg": "Failed to connect to the host via ssh: Timeout"}),
    # the module itself died (SIGKILL): no result of its own, so no phase
    ("runner_on_failed", {"msg": "Module result deserialization failed: No start of json"}),
])
def test_an_instance_lost_during_its_release_has_an_unknown_version(
        kind: str, res: dict[str, object]) -> None:
    """It may have switched before it was lost: floy must not claim either version."""
    state = FoldState.start(["hello-1"])
    state, _ = fold_event(state, _release("runner_on_start", {}))
    state, updates = fold_event(state, _release(kind, res))
    (update,) = updates
    assert update.status is F and update.version_unknown
    assert update.current_version is None, "the registry is left for the probe to settle"
    assert update_values(update)["current_version"] == ""
    assert "unknown until it is probed" in (update.error_message or "")
    assert state.unknown == {"hello-1"}


def test_an_instance_that_never_started_its_release_is_not_unknown() -> None:
    state = FoldState.start(["hello-1"])
    state, updates = fold_event(state, _release("runner_on_unreachable", {"msg": "refused"}))
    assert not updates[0].version_unknown and state.unknown == frozenset()


def test_a_failure_the_module_reported_keeps_its_version() -> None:
    state = FoldState.start(["hello-1"])
    state, _ = fold_event(state, _release("runner_on_start", {}))
    _, updates = fold_event(state, _release(
        "runner_on_failed", {"msg": "health check failed", "phase": "switch_back",
                             "current_version": "1.0.0"}))
    assert updates[0].current_version == "1.0.0" and not updates[0].version_unknown


def test_a_release_split_into_phases_completes_on_its_final_run_only() -> None:
    """Around hooks the role runs floy_release once per phase: only ``final`` completes."""
    def release(kind: str, **res: object) -> RunnerEvent:
        return {"event": kind, "created": "2026-01-01T00:00:00",
                "event_data": {"host": "a", "task_action": "floy.release.floy_release",
                               "res": dict(res)}}

    state = FoldState.start(["a"])
    state, ups = fold_event(state, release("runner_on_start"))
    assert ups[0].status is Status.IN_PROGRESS
    state, ups = fold_event(state, release("runner_on_ok", phase="done", final=False,
                                           version="2.0", current_version="1.0"))
    assert state.statuses["a"] is Status.IN_PROGRESS
    assert ups == [InstanceUpdate("a", phase="done")]
    state, ups = fold_event(state, release("runner_on_ok", phase="done", final=True,
                                           version="2.0", current_version="2.0",
                                           previous_version="1.0"))
    assert state.statuses["a"] is Status.COMPLETED
    assert (ups[0].current_version, ups[0].previous_version) == ("2.0", "1.0")
