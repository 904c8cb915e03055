# Copyright: (c) 2026, floy contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
# SPDX-License-Identifier: Apache-2.0
"""floy_layout: the instance directory both modules read and write by one definition."""

from __future__ import annotations

import os

import pytest
from ansible_collections.floy.release.plugins.module_utils.floy_layout import (
    NAME_RE,
    InstanceLayout,
    NotASymlink,
    complete_record,
    is_complete,
    link_target,
    make_directories,
    read_current,
    read_json,
    release_names,
    switch_current,
    write_json_atomic,
    write_record,
)


@pytest.fixture
def layout(tmp_path):
    """A fresh instance directory with floy's directories made."""
    layout = InstanceLayout(str(tmp_path / "web" / "web-1"))
    make_directories(layout)
    return layout


def install(layout, version):
    """A complete release: its record, then its directory."""
    write_record(layout, version, f"https://packages.example.invalid/{version}.tar.gz", "0" * 64)
    os.mkdir(layout.release_dir(version))


def test_paths_are_absolute_and_under_the_instance(tmp_path, monkeypatch):
    monkeypatch.chdir(str(tmp_path))
    layout = InstanceLayout("web/web-1")
    root = str(tmp_path / "web" / "web-1")
    assert layout.instance_dir == root
    assert layout.release_dir("1.0.0") == os.path.join(root, "releases", "1.0.0")
    assert layout.record_path("1.0.0") == os.path.join(root, ".floy", "releases", "1.0.0.json")
    assert layout.current_link == os.path.join(root, "current")
    assert all(path.startswith(root) for path in layout.directories())


def test_current_switches_atomically_and_names_only_real_releases(layout):
    assert read_current(layout) == (None, "")
    install(layout, "1.0.0")
    switch_current(layout, link_target("1.0.0"))
    assert read_current(layout) == ("releases/1.0.0", "1.0.0")
    assert os.readlink(layout.current_link) == "releases/1.0.0", "relative: the tree can move"
    switch_current(layout, link_target("2.0.0"))  # no such directory
    assert read_current(layout) == ("releases/2.0.0", "")
    switch_current(layout, None)
    assert not os.path.lexists(layout.current_link)


def test_a_real_current_directory_is_never_replaced(layout):
    os.mkdir(layout.current_link)
    with pytest.raises(NotASymlink):
        switch_current(layout, link_target("1.0.0"))
    assert os.path.isdir(layout.current_link) and not os.path.islink(layout.current_link)


def test_complete_needs_the_record_and_a_real_directory(layout):
    install(layout, "1.0.0")
    os.mkdir(layout.release_dir("2.0.0"))  # no record: an interrupted install
    write_record(layout, "3.0.0", "", "")  # a record without its directory
    os.symlink("1.0.0", layout.release_dir("4.0.0"))
    write_record(layout, "4.0.0", "", "")
    os.mkdir(layout.release_dir(".floy-tmp-1"))
    assert is_complete(layout, "1.0.0")
    assert complete_record(layout, "1.0.0")["sha256"] == "0" * 64
    assert not any(is_complete(layout, v) for v in ("2.0.0", "3.0.0", "4.0.0"))
    assert sorted(release_names(layout)) == ["1.0.0", "2.0.0", "4.0.0"], "no dot names"


def test_json_is_written_atomically_and_read_forgivingly(layout):
    path = layout.state_path
    write_json_atomic(path, {"version": "1.0.0"})
    assert read_json(path) == {"version": "1.0.0"}
    assert not [n for n in os.listdir(layout.meta_dir) if n.startswith(".floy-")]
    with open(path, "w") as handle:
        handle.write("{not json")
    assert read_json(path) is None
    assert read_json(path + ".missing") is None


@pytest.mark.parametrize("name", ["1.0.0", "web-1", "v2+build.7", "A_b"])
def test_names_floy_accepts(name):
    assert NAME_RE.match(name)


@pytest.mark.parametrize("name", ["", ".hidden", "-x", "a/b", "a b", "x" * 129, "é"])
def test_names_floy_refuses(name):
    assert not NAME_RE.match(name)
