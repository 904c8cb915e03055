# Copyright: floy contributors
# Apache License 2.0 (see the repository's pyproject.toml)
"""Restart commands left running by a release that died.

floy_release runs the restart command in a session of its own and kills its process group
at the deadline. If the module itself is killed (SIGKILL, a crashed host Python), nobody
would: so while the command runs, its process group is recorded in
``.floy/restart-running.json``, and the next floy_release or floy_probe on the instance,
once it holds the instance lock (no release is running), stops what is left of that group.
Only processes carrying this instance's ``FLOY_INSTANCE_DIR`` are touched, so a reused
process ID can never make it kill a stranger.

Standard library only, Python 3.8 compatible: this runs on the target's interpreter.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time

RECORD = "restart-running.json"
GRACE = 3.0


def record_restart(meta_dir, pgid):
    """Note that the restart command with process group ``pgid`` is running."""
    path = os.path.join(meta_dir, RECORD)
    tmp = path + ".tmp"
    with open(tmp, "w") as handle:
        json.dump({"pgid": pgid}, handle)
    os.replace(tmp, path)


def clear_restart(meta_dir):
    """The restart command has ended (or its group was killed)."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(os.path.join(meta_dir, RECORD))


def _members(pgid, instance_dir):
    """PIDs in process group ``pgid`` that were started for ``instance_dir``."""
    marker = ("FLOY_INSTANCE_DIR=%s" % instance_dir).encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as handle:
                fields = handle.read().rpartition(")")[2].split()
            if len(fields) < 3 or fields[2] != str(pgid) or fields[0] == "Z":
                continue
            with open("/proc/%s/environ" % entry, "rb") as handle:
                if marker in handle.read().split(b"\0"):
                    found.append(int(entry))
        except (OSError, ValueError):
            continue
    return found


def stop_orphaned_restart(instance_dir, grace=GRACE):
    """Stop what is left of a restart command whose release died; how many processes."""
    meta_dir = os.path.join(instance_dir, ".floy")
    try:
        with open(os.path.join(meta_dir, RECORD)) as handle:
            pgid = int(json.load(handle)["pgid"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0
    left = _members(pgid, instance_dir)
    stopped = len(left)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in left:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)
        end = time.monotonic() + grace
        while left and time.monotonic() < end:
            time.sleep(0.05)
            left = _members(pgid, instance_dir)
        if not left:
            break
    clear_restart(meta_dir)
    return stopped
