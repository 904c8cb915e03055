# Copyright: (c) 2026, floy contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
# SPDX-License-Identifier: Apache-2.0
"""floy_release: its arguments as AnsibleModule validates them, and check mode."""

from __future__ import annotations

import os

import pytest
from ansible_collections.floy.release.plugins.module_utils.floy_layout import (
    InstanceLayout,
    link_target,
    make_directories,
    switch_current,
    write_record,
)
from ansible_collections.floy.release.plugins.modules import floy_release

URL = "https://packages.example.invalid/web-%s.tar.gz"


@pytest.fixture(autouse=True)
def no_controller_watch(monkeypatch):
    """The module watches its stdout for a lost controller: not pytest's."""
    monkeypatch.setattr(floy_release, "watch_controller", lambda: None)


def args_for(instance_dir, **extra):
    """The arguments of a release of web 1.0.0 to ``instance_dir``, plus ``extra``."""
    args = dict(
        instance_dir=str(instance_dir), service="web", instance_id="web-1", version="1.0.0",
        package_url=URL % "1.0.0",
    )
    args.update(extra)
    return args


def test_required_arguments_are_checked_by_ansiblemodule(run_module):
    result = run_module(floy_release, dict(service="web"))
    assert result["failed"]
    assert "missing required arguments" in result["msg"]
    assert "instance_dir" in result["msg"] and "instance_id" in result["msg"]


def test_argument_types_are_checked_by_ansiblemodule(run_module, tmp_path):
    result = run_module(floy_release, args_for(tmp_path / "web-1", port="eighty"))
    assert result["failed"] and "port" in result["msg"]


@pytest.mark.parametrize(
    "extra, reason",
    [
        (dict(version="../1.0.0"), "invalid version"),
        (dict(version="1..0"), "invalid version"),
        (dict(service="web app"), "invalid service"),
        (dict(timeout=0), "invalid timeout"),
        (dict(port=70000), "invalid port"),
        (dict(keep_releases=0), "invalid keep_releases"),
        (dict(package_sha256="abc"), "invalid package_sha256"),
        (dict(health_path="health"), "invalid health_path"),
        (dict(package_url="http://packages.example.invalid/web.tar.gz"), "only https://"),
        (dict(package_url=URL % "1.0.0", allowed_hosts=["other.example.invalid"]),
         "not in the allowed"),
    ],
)
def test_bad_input_fails_before_the_host_is_touched(run_module, tmp_path, extra, reason):
    instance_dir = tmp_path / "web-1"
    result = run_module(floy_release, args_for(instance_dir, **extra))
    assert result["failed"] and reason in result["msg"], result["msg"]
    assert result["retryable"] is False and result["phase"] == "validate"
    assert not instance_dir.exists()


def test_check_mode_reports_a_release_and_changes_nothing(run_module, tmp_path):
    instance_dir = tmp_path / "web-1"
    result = run_module(floy_release, args_for(instance_dir, _ansible_check_mode=True))
    assert not result["failed"] and result["changed"]
    assert result["msg"] == "would release 1.0.0 (current: none)"
    assert result["downloaded"] is False
    assert not instance_dir.exists()


def test_check_mode_on_an_installed_version_needs_no_package(run_module, tmp_path):
    layout = InstanceLayout(str(tmp_path / "web-1"))
    make_directories(layout)
    for version in ("1.0.0", "2.0.0"):
        write_record(layout, version, URL % version, "")
        os.mkdir(layout.release_dir(version))
    switch_current(layout, link_target("2.0.0"))
    before = sorted(os.listdir(layout.instance_dir))
    result = run_module(floy_release, args_for(
        layout.instance_dir, package_url="", _ansible_check_mode=True))
    assert result["changed"] and result["msg"] == "would release 1.0.0 (current: 2.0.0)"
    assert result["current_version"] == "2.0.0"
    assert sorted(os.listdir(layout.instance_dir)) == before
    assert os.readlink(layout.current_link) == "releases/2.0.0"


def test_check_mode_on_the_current_healthy_version_changes_nothing(run_module, tmp_path):
    layout = InstanceLayout(str(tmp_path / "web-1"))
    make_directories(layout)
    write_record(layout, "1.0.0", URL % "1.0.0", "")
    os.mkdir(layout.release_dir("1.0.0"))
    switch_current(layout, link_target("1.0.0"))
    result = run_module(floy_release, args_for(
        layout.instance_dir, package_url="", port=0, _ansible_check_mode=True))
    assert not result["failed"] and not result["changed"]
    assert result["msg"] == "1.0.0 is already current and healthy"
