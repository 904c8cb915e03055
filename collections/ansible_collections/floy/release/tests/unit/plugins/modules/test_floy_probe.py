# Copyright: (c) 2026, floy contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
# SPDX-License-Identifier: Apache-2.0
"""floy_probe: what it reports of an instance directory, in normal and check mode."""

from __future__ import annotations

import os

import pytest
from ansible_collections.floy.release.plugins.module_utils.floy_layout import (
    InstanceLayout,
    link_target,
    make_directories,
    switch_current,
    write_json_atomic,
    write_record,
)
from ansible_collections.floy.release.plugins.modules import floy_probe


def test_instance_dir_is_required(run_module):
    result = run_module(floy_probe, {})
    assert result["failed"] and "instance_dir" in result["msg"]


def test_unknown_options_are_refused(run_module, tmp_path):
    result = run_module(floy_probe, dict(instance_dir=str(tmp_path), version="1.0.0"))
    assert result["failed"] and "Unsupported parameters" in result["msg"]


def test_a_missing_instance_directory(run_module, tmp_path):
    result = run_module(floy_probe, dict(instance_dir=str(tmp_path / "nothing")))
    assert not result["failed"] and not result["changed"]
    assert (result["exists"], result["current_version"], result["releases"]) == (False, "", [])


@pytest.mark.parametrize("check_mode", [False, True])
def test_an_instance_with_releases(run_module, tmp_path, check_mode):
    layout = InstanceLayout(str(tmp_path / "web-1"))
    make_directories(layout)
    for version in ("1.0.0", "2.0.0"):
        write_record(layout, version, "", "")
        os.mkdir(layout.release_dir(version))
    os.mkdir(layout.release_dir("3.0.0"))  # no record: incomplete
    switch_current(layout, link_target("2.0.0"))
    write_json_atomic(layout.state_path, {"version": "2.0.0", "previous_version": "1.0.0"})
    result = run_module(floy_probe, dict(instance_dir=layout.instance_dir,
                                         _ansible_check_mode=check_mode))
    assert not result["changed"] and result["exists"]
    assert result["current_version"] == "2.0.0"
    assert sorted(result["releases"]) == ["1.0.0", "2.0.0"]
    assert result["incomplete"] == ["3.0.0"]
    assert result["state"]["previous_version"] == "1.0.0"
    assert result["busy"] is False
