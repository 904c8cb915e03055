"""The filter release_steps: hooks and floy_release phases in order, one module run when no
hook is set, only the last run final, only the first choosing the version."""

from __future__ import annotations

import pytest

from tests.unit.collection._collection import plugin

release_steps = plugin("filter.release_steps").release_steps
ALL = {name: f"/hooks/{name}.yml" for name in plugin("filter.release_steps").HOOKS}


def runs(steps: list[dict[str, object]]) -> list[object]:
    return [step.get("phases", step.get("hook")) for step in steps]


def test_no_hook_is_one_run_of_every_phase() -> None:
    assert release_steps({}) == [
        {"phases": ["fetch", "switch", "cleanup"], "final": True, "first": True}]
    assert release_steps(dict.fromkeys(ALL, "")) == release_steps({})


def test_one_hook_splits_the_release_once() -> None:
    steps = release_steps({"after_switch": "/h.yml"})
    assert steps == [
        {"phases": ["fetch", "switch"], "final": False, "first": True},
        {"hook": "after_switch", "file": "/h.yml"},
        {"phases": ["cleanup"], "final": True, "first": False},
    ]


def test_a_trailing_hook_is_followed_by_a_final_report() -> None:
    steps = release_steps({"after_cleanup": "/h.yml"})
    assert runs(steps) == [["fetch", "switch", "cleanup"], "after_cleanup", []]
    assert [s.get("final") for s in steps] == [False, None, True]


def test_every_hook_of_a_deployment_in_order_and_no_rollback_hook() -> None:
    assert runs(release_steps(ALL)) == [
        "before_fetch", ["fetch"], "after_fetch", "before_switch", ["switch"],
        "after_switch", "before_cleanup", ["cleanup"], "after_cleanup", []]


def test_a_rollback_runs_its_hooks_first_and_last() -> None:
    steps = release_steps(ALL, "rollback")
    assert runs(steps)[0] == "before_rollback" and runs(steps)[-2:] == ["after_rollback", []]
    assert sum(1 for s in steps if s.get("first")) == 1
    assert sum(1 for s in steps if s.get("final")) == 1 and steps[-1]["final"] is True


def test_unknown_hooks_are_refused() -> None:
    with pytest.raises(ValueError, match=r"unknown hook\(s\) after_symlink"):
        release_steps({"after_symlink": "/h.yml"})
