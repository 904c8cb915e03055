# Copyright: (c) 2026, floy contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
# SPDX-License-Identifier: Apache-2.0
"""floy_canary: the markers of a canary run, as floy_pause reads and floy_promote writes
them (and as an operator may write them by hand)."""

from __future__ import annotations

import os

import pytest
from ansible_collections.floy.release.plugins.module_utils.floy_canary import (
    NOTE_MAX,
    CanaryError,
    clear_markers,
    clear_waiting,
    look,
    marker_path,
    read_note,
    read_waiting,
    run_dir,
    write_marker,
    write_waiting,
)


def test_layout():
    assert run_dir("/opt/floy/web/.promote/", "web-2.0.0") == "/opt/floy/web/.promote/web-2.0.0"
    assert marker_path("/d", "promote", 2) == "/d/promote-2"
    assert marker_path("/d", "full") == "/d/full"
    assert marker_path("/d", "abort") == "/d/abort"
    with pytest.raises(CanaryError):
        marker_path("/d", "rollback")


@pytest.mark.parametrize("run_id", ["", ".hidden", "a/b", "..", "a..b", "x" * 129, "a b",
                                    "{{ x }}"])
def test_run_ids_are_one_safe_name(run_id):
    with pytest.raises(CanaryError, match="floy_canary_id"):
        run_dir("/opt/floy", run_id)


@pytest.mark.parametrize(("content", "note"), [
    (b"", ""),
    (b"\n", ""),
    (b"  ok by bob  \nsecond line\n", "ok by bob"),
    (b"\x1b[31mred\x1b[0m\r\n", "[31mred[0m"),
    (b"caf\xc3\xa9 \xff", "caf\u00e9 \ufffd"),
    (b"x" * 5000, "x" * NOTE_MAX),
])
def test_a_note_is_the_first_line_cleaned(tmp_path, content, note):
    (tmp_path / "abort").write_bytes(content)
    assert read_note(str(tmp_path / "abort")) == note


def test_no_marker_and_a_directory_are_not_markers(tmp_path):
    assert read_note(str(tmp_path / "abort")) is None
    (tmp_path / "abort").mkdir()
    assert read_note(str(tmp_path / "abort")) is None
    assert look(str(tmp_path), 2) is None
    assert clear_markers(str(tmp_path)) == []


def test_abort_wins_then_full_then_the_batch_promote(tmp_path):
    directory = str(tmp_path)
    write_marker(marker_path(directory, "promote", 2), "p")
    assert look(directory, 3) is None
    assert look(directory, 2)[0] == "promote"
    write_marker(marker_path(directory, "full"), "f")
    assert look(directory, 2)[0] == "full"
    write_marker(marker_path(directory, "abort"), "a")
    assert look(directory, 2) == ("abort", "a", os.path.join(directory, "abort"))


def test_write_marker_is_atomic_and_idempotent(tmp_path):
    path = str(tmp_path / "full")
    assert write_marker(path, "one  line\nnot two") is True
    assert (tmp_path / "full").read_text() == "one line not two\n"
    assert write_marker(path, "one line not two") is False
    assert sorted(os.listdir(tmp_path)) == ["full"]


def test_waiting_record(tmp_path):
    directory = str(tmp_path)
    assert read_waiting(directory) is None
    written = write_waiting(directory, 2, -1, None)
    assert read_waiting(directory) == written and written["batch"] == 2
    clear_waiting(directory)
    clear_waiting(directory)
    assert read_waiting(directory) is None
    (tmp_path / "waiting").write_text('{"batch": true}')
    assert read_waiting(directory) is None
    (tmp_path / "waiting").write_text("not json")
    assert read_waiting(directory) is None


def test_clear_markers_leaves_other_files(tmp_path):
    for name in ("promote-2", "promote-10", "full", "abort", "waiting", ".floy-x", "notes"):
        (tmp_path / name).write_text("")
    assert clear_markers(str(tmp_path)) == [".floy-x", "abort", "full", "promote-10",
                                            "promote-2", "waiting"]
    assert os.listdir(tmp_path) == ["notes"]
    assert clear_markers(str(tmp_path / "missing")) == []
