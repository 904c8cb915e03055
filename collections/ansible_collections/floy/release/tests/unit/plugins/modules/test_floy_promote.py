# Copyright: (c) 2026, floy contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
# SPDX-License-Identifier: Apache-2.0
"""floy_promote: the markers promote.yml writes, read back as floy_pause reads them."""

from __future__ import annotations

import pytest
from ansible_collections.floy.release.plugins.module_utils.floy_canary import look
from ansible_collections.floy.release.plugins.modules import floy_promote


@pytest.fixture
def run_dir(tmp_path):
    path = tmp_path / "web-2.0.0"
    path.mkdir()
    return path


def promote(run_module, tmp_path, **args):
    return run_module(floy_promote, {"dir": str(tmp_path), "run_id": "web-2.0.0", **args})


def test_promote_next_takes_the_batch_that_waits(run_module, tmp_path, run_dir):
    (run_dir / "waiting").write_text('{"batch": 3, "pause": -1, "since": "x", "until": null}')
    result = promote(run_module, tmp_path, note="error rate flat (by alice)")
    assert (result["failed"], result["changed"], result["batch"]) == (False, True, 3)
    assert result["marker"] == str(run_dir / "promote-3")
    assert (run_dir / "promote-3").read_text() == "error rate flat (by alice)\n"
    assert result["msg"] == ("wrote %s: batch 3 may start (the pause before batch 3 holds "
                             "now)" % (run_dir / "promote-3"))
    assert look(str(run_dir), 3) == ("promote", "error rate flat (by alice)",
                                     str(run_dir / "promote-3"))
    again = promote(run_module, tmp_path, note="error rate flat (by alice)")
    assert again["changed"] is False and again["msg"].startswith("kept ")


def test_a_batch_may_be_promoted_ahead_of_its_pause(run_module, tmp_path, run_dir):
    result = promote(run_module, tmp_path, batch="4")
    assert (result["failed"], result["batch"], result["waiting"]) == (False, 4, {})
    assert (run_dir / "promote-4").read_text() == "\n"


@pytest.mark.parametrize("action", ["full", "abort"])
def test_full_and_abort(run_module, tmp_path, run_dir, action):
    result = promote(run_module, tmp_path, action=action, note="  why \n  not  ", batch="x")
    assert (result["failed"], result["batch"]) == (False, 0)
    assert (run_dir / action).read_text() == "why not\n"
    assert look(str(run_dir), 2)[:2] == (action, "why not")


def test_check_mode_writes_nothing(run_module, tmp_path, run_dir):
    result = promote(run_module, tmp_path, action="abort", _ansible_check_mode=True)
    assert result["changed"] is True
    assert not (run_dir / "abort").exists()


@pytest.mark.parametrize(("args", "message"), [
    ({}, "no pause holds now, so floy_promote_batch=next names no batch"),
    ({"batch": "1"}, "floy_promote_batch must be next or the number of a batch from 2"),
    ({"batch": "two"}, "floy_promote_batch must be next or the number of a batch from 2"),
    ({"run_id": "web-3.0.0"}, "no canary run web-3.0.0 here"),
    ({"run_id": "../web"}, "floy_canary_id '../web' must match"),
])
def test_refusals(run_module, tmp_path, run_dir, args, message):
    result = promote(run_module, tmp_path, **args)
    assert result["failed"] is True
    assert message in result["msg"]
    assert sorted(p.name for p in run_dir.iterdir()) == []
