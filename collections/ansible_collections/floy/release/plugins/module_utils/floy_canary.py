# Copyright: (c) 2026, floy contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
# SPDX-License-Identifier: Apache-2.0
"""The markers of a canary run (deploy.yml with floy_steps) on floy_promote_host: one
definition, read by floy_pause and written by floy_promote (or by hand).

Under ``<floy_promote_dir>/<floy_canary_id>/``::

    promote-<k>   batch k may start: the pause before it ends (k counts batches from 1)
    full          every remaining pause ends at once ("promote full")
    abort         the run stops before its next batch
    waiting       written by floy_pause while a pause holds: which batch, since and until when
    .floy-*       temps of an atomic write

A marker is there or not; its first line, when it has one, is a note (who, why) that the
run shows. ``abort`` wins over the others, and ``full`` over ``promote-<k>``. The run
clears the markers an earlier run of the same ID left when it starts (before batch 1).

Standard library only, Python 3.8 compatible: this runs on the promote host's interpreter.
"""

from __future__ import annotations

import contextlib
import os

from ansible_collections.floy.release.plugins.module_utils.floy_layout import (
    NAME_RE,
    TMP_PREFIX,
    fsync_dir,
    read_json,
    utc_now,
    write_json_atomic,
    write_text_atomic,
)

PROMOTE = "promote"
FULL = "full"
ABORT = "abort"
ACTIONS = (PROMOTE, FULL, ABORT)
WAITING = "waiting"
PROMOTE_PREFIX = "promote-"
#: The longest note shown from a marker's first line.
NOTE_MAX = 300
#: The longest indefinite pause floy_pause accepts, and a timed one: 7 days.
MAX_PAUSE = 7 * 24 * 3600


class CanaryError(ValueError):
    """Bad input naming the variable it came from."""


def check_run_id(run_id):
    """Refuse a run ID that is not one safe path component (floy's name rule)."""
    if not NAME_RE.match(run_id or "") or ".." in run_id:
        raise CanaryError(
            "floy_canary_id %r must match %s and not contain '..' (it names a directory "
            "under floy_promote_dir)" % (run_id, NAME_RE.pattern))


def run_dir(promote_dir, run_id):
    """The marker directory of one run: ``<promote_dir>/<run_id>``."""
    if not promote_dir or not os.path.isabs(promote_dir):
        raise CanaryError("floy_promote_dir must be an absolute path, got %r" % (promote_dir,))
    check_run_id(run_id)
    return os.path.join(os.path.normpath(promote_dir), run_id)


def marker_path(directory, action, batch=None):
    """Path of the marker of ``action`` (``promote`` needs the batch it lets start)."""
    if action == PROMOTE:
        return os.path.join(directory, "%s%d" % (PROMOTE_PREFIX, batch))
    if action in (FULL, ABORT):
        return os.path.join(directory, action)
    raise CanaryError("floy_promote_action must be one of %s, got %r"
                      % (", ".join(ACTIONS), action))


def read_note(path):
    """The first line of the marker at ``path`` ('' when it has none), or None when there
    is no marker. Undecodable bytes are replaced, control characters dropped."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(4 * NOTE_MAX)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None  # a marker is a file
    except OSError:
        return ""  # there, but unreadable: a marker without a note
    line = head.decode("utf-8", "replace").splitlines()[0] if head else ""
    line = "".join(ch for ch in line if ch.isprintable())
    return line.strip()[:NOTE_MAX]


def look(directory, batch):
    """What the markers say before ``batch`` starts: ``(action, note, path)`` of the marker
    that decides (abort, then full, then promote-<batch>), or None when none does."""
    for action in (ABORT, FULL, PROMOTE):
        path = marker_path(directory, action, batch)
        note = read_note(path)
        if note is not None:
            return action, note, path
    return None


def marker_text(note):
    """What a marker holding ``note`` contains: the note on one line."""
    return " ".join((note or "").split()) + "\n"


def marker_holds(path, note):
    """Whether the marker ``path`` exists and holds ``note`` already."""
    try:
        with open(path) as fh:
            return fh.read() == marker_text(note)
    except (OSError, ValueError):
        return False


def write_marker(path, note):
    """Write the marker ``path`` holding ``note`` atomically; False when it held it already."""
    if marker_holds(path, note):
        return False
    write_text_atomic(path, marker_text(note))
    return True


def clear_markers(directory):
    """Remove the markers and temps an earlier run with this ID left; the names removed."""
    removed = []
    with contextlib.suppress(FileNotFoundError):
        for name in sorted(os.listdir(directory)):
            if name in (FULL, ABORT, WAITING) or name.startswith((PROMOTE_PREFIX, TMP_PREFIX)):
                path = os.path.join(directory, name)
                if os.path.isdir(path) and not os.path.islink(path):
                    continue
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
                    removed.append(name)
    if removed:
        fsync_dir(directory)
    return removed


def write_waiting(directory, batch, pause, until):
    """Record that the pause before ``batch`` holds (``until``: RFC 3339 time or None)."""
    data = {"batch": batch, "pause": pause, "since": utc_now(), "until": until}
    write_json_atomic(os.path.join(directory, WAITING), data)
    return data


def read_waiting(directory):
    """The ``waiting`` record (a dict), or None when no pause holds."""
    data = read_json(os.path.join(directory, WAITING))
    if not data or not isinstance(data.get("batch"), int) or isinstance(data["batch"], bool):
        return None
    return data


def clear_waiting(directory):
    """Remove the ``waiting`` record."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(os.path.join(directory, WAITING))
