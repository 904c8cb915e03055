"""Where a run's instances play (orchestrator.domain.placement) and how a run records it."""

from __future__ import annotations

import pytest

from orchestrator.domain.batching import batch_numbers
from orchestrator.domain.placement import NODE_LABEL, group_batch_numbers, grouped, labels_of
from orchestrator.domain.request import RunRequest
from orchestrator.errors import ValidationError

NODES = frozenset({"dc1", "dc2"})


def test_no_label_means_no_placement() -> None:
    assert labels_of(["a", "b"], {"a": {"zone": "x"}, "b": {}}, NODES) == ()
    assert grouped(["a", "b"], ()) == [("", ["a", "b"])]
    assert grouped([], ()) == []


def test_labels_group_in_the_order_of_each_group_s_first_instance() -> None:
    meta = {"a": {NODE_LABEL: "dc2"}, "b": {}, "c": {NODE_LABEL: "dc1"}, "d": {NODE_LABEL: "dc2"}}
    labels = labels_of(["a", "b", "c", "d"], meta, NODES)
    assert labels == ("dc2", "", "dc1", "dc2")
    assert grouped(["a", "b", "c", "d"], labels) == [
        ("dc2", ["a", "d"]), ("", ["b"]), ("dc1", ["c"])]


def test_a_label_naming_no_configured_node_names_the_instance() -> None:
    with pytest.raises(ValidationError) as err:
        labels_of(["a", "b"], {"b": {NODE_LABEL: "dc9"}}, NODES)
    assert err.value.field == "instances[1]"
    assert "'b' has execution_node 'dc9'" in str(err.value)
    assert "(configured: dc1, dc2)" in str(err.value)
    with pytest.raises(ValidationError, match="none is configured"):
        labels_of(["a"], {"a": {NODE_LABEL: "dc1"}}, frozenset())


@pytest.mark.parametrize(("batch_size", "sizes", "expected"), [
    ("1", [2, 1], [1, 2, 3]),
    ("2", [3, 2], [1, 1, 2, 3, 3]),
    ("50%", [3, 1], [1, 1, 2, 3]),  # 50% of the run's 4: batches of 2 in every group
    ("10", [2, 2], [1, 1, 2, 2]),
])
def test_batches_keep_the_run_s_first_size_in_every_group(
        batch_size: str, sizes: list[int], expected: list[int]) -> None:
    assert group_batch_numbers(batch_size, sizes) == expected


@pytest.mark.parametrize("batch_size", ["1", "3", "25%", "100%"])
def test_one_group_batches_as_before(batch_size: str) -> None:
    assert group_batch_numbers(batch_size, [7]) == batch_numbers(batch_size, 7)


def test_a_request_records_its_instances_nodes() -> None:
    request = RunRequest(("a", "b", "c"), nodes=("dc1", "", "dc1"))
    again = RunRequest.from_json(request.to_json())
    assert again == request
    assert [again.node_of(i) for i in ("a", "b", "c")] == ["dc1", "", "dc1"]
    assert again.all_nodes() == ["dc1"]
    assert again.node_of("zz") == "", "an instance it does not list plays where node says"
    pinned = RunRequest(("a",), node="dc2")
    assert pinned.node_of("a") == "dc2" and pinned.all_nodes() == ["dc2"]
    assert pinned.node_of("zz") == "dc2"
    old = {"instances": ["a"], "package_url": "", "node": ""}  # written before nodes existed
    assert RunRequest.from_json(old).nodes == ()


def test_a_request_whose_nodes_do_not_match_its_instances_is_refused() -> None:
    with pytest.raises(ValueError, match="'nodes' has 1 entries for 2 instances"):
        RunRequest.from_json({"instances": ["a", "b"], "nodes": ["dc1"]})
    with pytest.raises(ValueError, match="'nodes'"):
        RunRequest.from_json({"instances": ["a"], "nodes": "dc1"})
