# Copyright: (c) 2026, floy contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
# SPDX-License-Identifier: Apache-2.0
"""Process groups of restart commands: stopping them, and the record of one in flight.

floy_release runs the restart command in a session of its own and kills its process group
(:func:`kill_group`) at the deadline, on a cancel and after a failure. If the module itself
is killed (SIGKILL, a crashed host Python), nobody would: so while the command runs, its
process group is recorded (:func:`record_restart`, in ``.floy/restart-running.json``, see
floy_layout), and the next floy_release or floy_probe on the instance, once it holds the
instance lock (no release is running), stops what is left of that group
(:func:`stop_orphaned_restart`). Only processes carrying the instance's
``FLOY_INSTANCE_DIR`` are touched there, so a reused process ID can never make it kill a
stranger.

Standard library only, Python 3.8 compatible: this runs on the target's interpreter.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time

#: Seconds a group gets to end after SIGTERM (then SIGKILL, and as long again).
GRACE = 3.0


def group_members(pgid):
    """PIDs of the live (non-zombie) processes in process group ``pgid``, read from /proc."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as handle:
                fields = handle.read().rpartition(")")[2].split()
        except OSError:
            continue
        # fields: state ppid pgrp ...
        if len(fields) > 2 and fields[2] == str(pgid) and fields[0] != "Z":
            found.append(int(entry))
    return found


def group_alive(pgid):
    """Whether any non-zombie process is left in process group ``pgid``."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return bool(group_members(pgid))


def kill_group(proc, grace=GRACE):
    """SIGTERM, then SIGKILL, the process group led by ``proc`` (a Popen) and reap it."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        end = time.monotonic() + grace
        while time.monotonic() < end:
            proc.poll()
            if not group_alive(proc.pid):
                break
            time.sleep(0.05)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=1)


# -- the record of a restart command in flight -----------------------------------------------


def record_restart(record_path, pgid):
    """Note that the restart command with process group ``pgid`` is running."""
    tmp = record_path + ".tmp"
    with open(tmp, "w") as handle:
        json.dump({"pgid": pgid}, handle)
    os.replace(tmp, record_path)


def clear_restart(record_path):
    """The restart command has ended (or its group was killed)."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(record_path)


def instance_members(pgid, instance_dir):
    """PIDs in process group ``pgid`` that were started for ``instance_dir``."""
    marker = ("FLOY_INSTANCE_DIR=%s" % instance_dir).encode()
    found = []
    for pid in group_members(pgid):
        try:
            with open("/proc/%d/environ" % pid, "rb") as handle:
                if marker in handle.read().split(b"\0"):
                    found.append(pid)
        except OSError:
            continue
    return found


def stop_orphaned_restart(record_path, instance_dir, grace=GRACE):
    """Stop what is left of a restart command whose release died; how many processes."""
    try:
        with open(record_path) as handle:
            pgid = int(json.load(handle)["pgid"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0
    left = instance_members(pgid, instance_dir)
    stopped = len(left)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in left:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)
        end = time.monotonic() + grace
        while left and time.monotonic() < end:
            time.sleep(0.05)
            left = instance_members(pgid, instance_dir)
        if not left:
            break
    clear_restart(record_path)
    return stopped
