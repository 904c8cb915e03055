"""module_utils/floy_process_groups with real process groups: killing a restart command's
whole group, and the record that lets the next run stop one a dead release left behind."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.unit.collection._collection import plugin

groups = plugin("module_utils.floy_process_groups")
Spawn = Callable[..., "subprocess.Popen[bytes]"]


@pytest.fixture
def spawn() -> Iterator[Spawn]:
    """Start ``sh -c`` in a session of its own (as floy_release runs a restart command)."""
    started: list[subprocess.Popen[bytes]] = []

    def start(script: str, **env: str) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(["/bin/sh", "-c", script], env={**os.environ, **env},
                                start_new_session=True)
        started.append(proc)
        time.sleep(0.2)  # let the children start
        return proc

    yield start
    for proc in started:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def test_kill_group_stops_the_background_children_too(spawn: Spawn) -> None:
    proc = spawn("sleep 60 & sleep 60 & wait")
    assert len(groups.group_members(proc.pid)) == 3
    groups.kill_group(proc, grace=1.0)
    assert not groups.group_alive(proc.pid)
    assert proc.returncode == -signal.SIGTERM


def test_kill_group_falls_back_to_sigkill(spawn: Spawn) -> None:
    proc = spawn("trap '' TERM; sleep 60 & wait; wait")
    started = time.monotonic()
    groups.kill_group(proc, grace=0.5)
    assert not groups.group_alive(proc.pid)
    assert time.monotonic() - started >= 0.5


def test_an_ended_group_is_not_alive(spawn: Spawn) -> None:
    proc = spawn("exit 0")
    proc.wait()
    assert not groups.group_alive(proc.pid)
    assert groups.group_members(proc.pid) == []
    groups.kill_group(proc)  # nothing left: returns at once


def test_the_record_of_a_restart_in_flight(tmp_path: Path) -> None:
    record = str(tmp_path / "restart-running.json")
    groups.record_restart(record, 4242)
    assert Path(record).read_text() == '{"pgid": 4242}'
    assert os.listdir(tmp_path) == ["restart-running.json"]
    groups.clear_restart(record)
    groups.clear_restart(record)  # already gone: fine
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("content", [None, "", "{", '{"pid": 1}', '{"pgid": "x"}', "[]"])
def test_no_usable_record_stops_nothing(tmp_path: Path, content: str | None) -> None:
    record = tmp_path / "restart-running.json"
    if content is not None:
        record.write_text(content)
    assert groups.stop_orphaned_restart(str(record), str(tmp_path)) == 0


def test_stop_orphaned_restart_only_touches_this_instance(spawn: Spawn, tmp_path: Path) -> None:
    mine, other = str(tmp_path / "hello-1"), str(tmp_path / "hello-2")
    # One group, two kinds of members: started for this instance, or not (a reused PID).
    proc = spawn(f"FLOY_INSTANCE_DIR={other} sleep 60 & exec sleep 60",
                 FLOY_INSTANCE_DIR=mine)
    record = str(tmp_path / "restart-running.json")
    groups.record_restart(record, proc.pid)
    assert groups.stop_orphaned_restart(record, mine, grace=1.0) == 1
    assert proc.wait(timeout=5) == -signal.SIGTERM
    assert len(groups.group_members(proc.pid)) == 1  # the stranger lives on
    assert not os.path.exists(record)
