# Copyright: (c) 2026, floy contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
# SPDX-License-Identifier: Apache-2.0
"""floy_pause: the gate before each batch of a deployment with floy_steps, on a fake clock
(hold) and through main() as Ansible runs it."""

from __future__ import annotations

import json
import os

import pytest
from ansible_collections.floy.release.plugins.modules import floy_pause


class Clock:
    """A monotonic clock that moves only when the module sleeps; ``events`` maps a time to
    what happens then (a marker written, the controller leaving)."""

    def __init__(self, directory, events=None):
        self.directory = str(directory)
        self.now = 100.0
        self.events = sorted((events or {}).items())
        self.gone = False
        self.waiting_seen = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        assert seconds > 0
        self.now += seconds
        while self.events and self.events[0][0] <= self.now - 100.0:
            _at, event = self.events.pop(0)
            event(self)


def write(name, text=""):
    def event(clock):
        with open(os.path.join(clock.directory, name), "w") as fh:
            fh.write(text)
    return event


def hold(directory, batch, pause, max_pause=86400, events=None, instances=()):
    clock = Clock(directory, events)

    def sleep(seconds):
        clock.waiting_seen.append(os.path.exists(os.path.join(str(directory), "waiting")))
        clock.sleep(seconds)

    result = floy_pause.hold(str(directory), batch, pause, max_pause, poll=1.0, clock=clock,
                             sleep=sleep, gone=lambda: clock.gone, instances=instances)
    return result, clock


@pytest.fixture
def run_dir(tmp_path):
    path = tmp_path / ".promote" / "web-2.0.0"
    path.mkdir(parents=True)
    return path


def test_no_pause_starts_the_batch_at_once(run_dir):
    result, clock = hold(run_dir, 3, 0)
    assert (result["action"], result["stop"], result["waited"]) == ("continue", False, 0.0)
    assert clock.waiting_seen == []


def test_an_abort_marker_stops_even_a_batch_without_a_pause(run_dir):
    (run_dir / "abort").write_text("p99 up - alice\nmore\n")
    (run_dir / "full").write_text("")
    result, _clock = hold(run_dir, 3, 0, instances=["w3", "w4"])
    assert (result["action"], result["stop"], result["note"]) == ("abort", True, "p99 up - alice")
    assert result["marker"] == str(run_dir / "abort")
    assert result["msg"] == ("aborted before batch 3 by %s: p99 up - alice; nothing after "
                             "batch 2 was started - instances not started: w3, w4"
                             % (run_dir / "abort"))


def test_a_pause_until_promoted_holds_until_its_marker(run_dir):
    events = {30: write("promote-3"), 42: write("promote-2", "ok - bob")}
    result, clock = hold(run_dir, 2, -1, events=events)
    assert (result["action"], result["stop"], result["note"]) == ("promote", False, "ok - bob")
    assert result["waited"] == 42.0
    assert all(clock.waiting_seen) and clock.waiting_seen  # `waiting` while it holds ...
    assert not (run_dir / "waiting").exists()  # ... and not after
    assert "batch 2 promoted by %s: ok - bob after 42.0 s" % (run_dir / "promote-2") \
        == result["msg"]


def test_waiting_says_which_batch_holds(run_dir):
    records = []

    def peek(clock):
        records.append(json.loads((run_dir / "waiting").read_text()))
        write("full")(clock)

    result, _clock = hold(run_dir, 4, 300, events={5: peek})
    assert result["action"] == "full"
    assert records[0]["batch"] == 4 and records[0]["pause"] == 300
    assert records[0]["since"].endswith("Z") and records[0]["until"].endswith("Z")


def test_a_timed_pause_ends_by_itself(run_dir):
    result, _clock = hold(run_dir, 2, 5)
    assert (result["action"], result["stop"], result["waited"]) == ("elapsed", False, 5.0)
    assert not (run_dir / "waiting").exists()


def test_a_promote_ends_a_timed_pause_early(run_dir):
    result, _clock = hold(run_dir, 2, 300, events={3: write("promote-2")})
    assert (result["action"], result["waited"]) == ("promote", 3.0)


def test_full_ends_this_pause_and_every_later_one(run_dir):
    result, _clock = hold(run_dir, 2, -1, events={7: write("full", "all good")})
    assert (result["action"], result["note"]) == ("full", "all good")
    later, _clock = hold(run_dir, 5, -1)
    assert (later["action"], later["waited"]) == ("full", 0.0)


def test_abort_wins_during_a_pause(run_dir):
    result, _clock = hold(run_dir, 2, -1, events={9: write("abort")})
    assert (result["action"], result["stop"], result["note"]) == ("abort", True, "")
    assert "(no note in it)" in result["msg"]


def test_a_pause_until_promoted_expires(run_dir):
    result, _clock = hold(run_dir, 2, -1, max_pause=60)
    assert (result["action"], result["stop"], result["waited"]) == ("expired", True, 60.0)
    assert result["msg"] == (
        "no promote within 60 s (floy_pause_max_seconds) of the pause before batch 2: %s did "
        "not appear; nothing after batch 1 was started" % (run_dir / "promote-2"))
    assert not (run_dir / "waiting").exists()


def test_it_stops_waiting_when_the_controller_goes_away(run_dir):
    def leave(clock):
        clock.gone = True

    with pytest.raises(floy_pause.ControllerGone):
        hold(run_dir, 2, -1, events={4: leave})
    assert not (run_dir / "waiting").exists()


def test_a_closed_output_pipe_means_the_controller_is_gone():
    read, written = os.pipe()
    try:
        gone = floy_pause.controller_gone_check(pairs=[], fd=written)
        assert not gone()
        os.close(read)
        assert gone()
    finally:
        os.close(written)


def test_a_killed_ancestor_means_the_controller_is_gone():
    """A child process holds on while its parent lives; once the parent is killed (the child
    is reparented), the check of the child's lineage says so."""
    import subprocess
    import sys
    import time

    code = ("import os, subprocess, sys, time\n"
            "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(30)'])\n"
            "print(child.pid, flush=True)\n"
            "time.sleep(30)\n")
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    child = int(parent.stdout.readline())
    try:
        pairs = floy_pause.lineage(child, depth=2)
        assert pairs[0] == (child, parent.pid)
        read, written = os.pipe()
        gone = floy_pause.controller_gone_check(pairs=pairs, fd=written)
        assert not gone()
        parent.kill()
        parent.wait()
        deadline = time.monotonic() + 10
        while not gone() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert gone()
        os.close(read)
        os.close(written)
    finally:
        parent.kill()
        parent.wait()
        parent.stdout.close()
        os.kill(child, 9)


def test_the_lineage_of_this_process():
    pairs = floy_pause.lineage()
    assert pairs and pairs[0] == (os.getpid(), os.getppid())
    assert all(parent > 1 for _pid, parent in pairs)


def test_before_batch_1_an_earlier_runs_markers_are_removed(run_module, tmp_path):
    directory = tmp_path / "promote" / "web-2.0.0"
    directory.mkdir(parents=True)
    for name in ("promote-2", "full", "abort", "waiting", ".floy-tmp", "keep.txt"):
        (directory / name).write_text("x")
    result = run_module(floy_pause, {"dir": str(tmp_path / "promote"), "run_id": "web-2.0.0",
                                     "batch": 1})
    assert result["failed"] is False and result["changed"] is True
    assert result["action"] == "start" and result["stop"] is False
    assert result["removed"] == [".floy-tmp", "abort", "full", "promote-2", "waiting"]
    assert sorted(os.listdir(directory)) == ["keep.txt"]
    again = run_module(floy_pause, {"dir": str(tmp_path / "promote"), "run_id": "web-2.0.0",
                                    "batch": 1})
    assert (again["changed"], again["removed"]) == (False, [])


def test_batch_1_makes_the_run_directory(run_module, tmp_path):
    result = run_module(floy_pause, {"dir": str(tmp_path / "a" / "b"), "run_id": "web-1",
                                     "batch": 1})
    assert result["changed"] is True
    assert (tmp_path / "a" / "b" / "web-1").is_dir()


def test_a_later_batch_through_main(run_module, tmp_path):
    (tmp_path / "web-1").mkdir()
    (tmp_path / "web-1" / "promote-2").write_text("")
    result = run_module(floy_pause, {"dir": str(tmp_path), "run_id": "web-1", "batch": 2,
                                     "pause": -1, "poll": 0.05})
    assert (result["failed"], result["changed"], result["action"]) == (False, False, "promote")


@pytest.mark.parametrize(("args", "message"), [
    ({"run_id": "../etc"}, "floy_canary_id '../etc' must match"),
    ({"run_id": "a..b"}, "floy_canary_id 'a..b' must match"),
    ({"run_id": "a/b"}, "floy_canary_id 'a/b' must match"),
    ({"dir": "relative"}, "floy_promote_dir must be an absolute path"),
    ({"batch": 0}, "batch must be 1 or more"),
    ({"pause": -2}, "pause must be -1"),
    ({"pause": 604801}, "pause must be -1"),
    ({"max_pause": 0}, "floy_pause_max_seconds must be 1 to 604800"),
    ({"batch": 2, "run_id": "not-started"}, "is gone: it was made before batch 1"),
])
def test_bad_input_fails(run_module, tmp_path, args, message):
    result = run_module(floy_pause, {"dir": str(tmp_path), "run_id": "web-1", "batch": 1,
                                     **args})
    assert result["failed"] is True
    assert message in result["msg"]


def test_a_stop_names_the_first_instances_not_started():
    assert floy_pause.not_started([]) == ""
    names = ["w%d" % n for n in range(25)]
    assert floy_pause.not_started(names) == (
        " - instances not started: %s (and 5 more)" % ", ".join(names[:20]))
