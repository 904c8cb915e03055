# Copyright: (c) 2026, floy contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
# SPDX-License-Identifier: Apache-2.0
"""floy_install: moving an unpacked tree into releases/, undoing it, pruning old releases."""

from __future__ import annotations

import os

import pytest
from ansible_collections.floy.release.plugins.module_utils.floy_install import (
    install_release,
    prune_releases,
    undo_install,
)
from ansible_collections.floy.release.plugins.module_utils.floy_layout import (
    InstanceLayout,
    is_complete,
    make_directories,
    read_record,
    write_json_atomic,
    write_record,
)

URL = "https://packages.example.invalid/web-%s.tar.gz"


@pytest.fixture
def layout(tmp_path):
    """A fresh instance directory with floy's directories made."""
    layout = InstanceLayout(str(tmp_path / "web-1"))
    make_directories(layout)
    return layout


def unpacked(layout, content):
    """A temporary tree in releases/, as the unpack phase leaves it."""
    path = os.path.join(layout.releases_dir, f".floy-unpack-{content}")
    os.mkdir(path)
    with open(os.path.join(path, "VERSION"), "w") as handle:
        handle.write(content)
    return path


def read_version(layout, version):
    with open(os.path.join(layout.release_dir(version), "VERSION")) as handle:
        return handle.read()


def test_install_makes_a_complete_release_and_undo_removes_it(layout):
    tree = unpacked(layout, "1")
    temp_paths = [tree]
    undo = install_release(layout, "1.0.0", tree, "a" * 64, URL % "1.0.0", False, temp_paths)
    assert is_complete(layout, "1.0.0") and read_version(layout, "1.0.0") == "1"
    assert read_record(layout, "1.0.0")["sha256"] == "a" * 64
    assert temp_paths == [], "the tree moved: nothing left to clean up"
    undo_install(layout, "1.0.0", undo)
    assert not os.path.exists(layout.release_dir("1.0.0"))
    assert read_record(layout, "1.0.0") is None


def test_reinstalling_keeps_the_old_release_until_undone(layout):
    first = unpacked(layout, "old")
    install_release(layout, "1.0.0", first, "a" * 64, URL % "1.0.0", False, [first])
    second = unpacked(layout, "new")
    temp_paths = [second]
    undo = install_release(layout, "1.0.0", second, "b" * 64, URL % "1.0.0", False, temp_paths)
    assert read_version(layout, "1.0.0") == "new"
    assert undo["displaced"] and undo["displaced"] in temp_paths
    undo_install(layout, "1.0.0", undo)
    assert read_version(layout, "1.0.0") == "old"
    assert read_record(layout, "1.0.0")["sha256"] == "a" * 64


def add_release(layout, version, installed_at):
    os.mkdir(layout.release_dir(version))
    write_record(layout, version, URL % version, "")
    record = read_record(layout, version)
    record["installed_at"] = installed_at
    write_json_atomic(layout.record_path(version), record)


def test_prune_keeps_the_newest_and_the_named_releases(layout):
    for day, version in enumerate(["1.0.0", "2.0.0", "3.0.0", "4.0.0", "5.0.0"], start=1):
        add_release(layout, version, f"2026-01-0{day}T00:00:00Z")
    os.mkdir(layout.release_dir("6.0.0"))  # incomplete: no record
    removed = prune_releases(layout, {"5.0.0", "1.0.0"}, 3)
    assert sorted(removed) == ["2.0.0", "3.0.0", "6.0.0"]
    assert sorted(os.listdir(layout.releases_dir)) == ["1.0.0", "4.0.0", "5.0.0"]
    assert read_record(layout, "2.0.0") is None


def test_prune_keeps_what_it_is_told_to_keep_even_beyond_the_count(layout):
    add_release(layout, "1.0.0", "2026-01-01T00:00:00Z")
    add_release(layout, "2.0.0", "2026-01-02T00:00:00Z")
    assert prune_releases(layout, {"1.0.0", "2.0.0"}, 1) == []
