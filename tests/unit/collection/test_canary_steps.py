"""The collection's canary_steps filter (deploy.yml's floy_steps, without floy) against the
catalogue floy's own parser is held to (tests/fixtures/steps/cases.yml): the same text cuts
the same batches with the same pauses, and what floy refuses the filter refuses, naming the
same item."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.unit.collection._collection import plugin

CASES: list[dict[str, Any]] = yaml.safe_load(
    (Path(__file__).parents[2] / "fixtures" / "steps" / "cases.yml").read_text())
canary_steps = plugin("filter.canary_steps")


def sizes(starts: list[int], total: int) -> list[int]:
    return [end - start for start, end in zip(starts, [*starts[1:], total], strict=True)]


@pytest.mark.parametrize("case", CASES, ids=[repr(c["steps"]) for c in CASES])
def test_the_filter_agrees_with_the_catalogue(case: dict[str, Any]) -> None:
    if "error" in case:
        message = canary_steps.canary_steps_error(case["steps"])
        assert message.startswith("floy_steps ") and case["error"] in message, message
        return
    assert canary_steps.canary_steps_error(case["steps"]) == ""
    for total, expected in case["batches"].items():
        plan = canary_steps.canary_steps(case["steps"], hosts=total)
        assert sizes(plan["starts"], total) == expected, total
    # the playbook's pauses: seconds, -1 until promoted (the catalogue's null)
    assert plan["pauses"] == {batch: -1 if seconds is None else seconds
                              for batch, seconds in case["pauses"].items()}
    # the serial list Ansible gets holds the batches of the canonical items, in order
    batches = [item for item in case["items"] if not item.startswith("pause")]
    assert [str(entry) for entry in plan["serial"]] == batches
