# Copyright: (c) 2026, floy contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
# SPDX-License-Identifier: Apache-2.0
"""The on-disk contract of a floy instance: one definition, read and written by both modules.

floy_release writes an instance directory by these rules and floy_probe reads it by the
same ones, so that the probe never reports a release floy_release would not reuse, nor
misses one it would. Under ``<floy_root>/<service>/<instance_id>``::

    releases/<version>/             an unpacked release
    releases/.floy-*                temps of a release in flight, or left by a killed one
    current -> releases/<version>   the release that serves (a relative symlink)
    shared/                         kept across releases (floy-restart.log)
    .floy/state.json                current and previous version, run, package
    .floy/.floy-state-before.json   hard link to state.json before a switch (switching back)
    .floy/releases/<version>.json   the record of a complete release
    .floy/lock                      flock: exclusive while a release runs, shared to read
    .floy/restart-running.json      process group of a restart command in flight

- **Names**: a version (like a service or instance ID) is a single path component matching
  :data:`NAME_RE`; names starting with ``.`` under ``releases/`` are never releases.
- **current**: ``current`` names a release when its target is ``releases/<name>`` (as
  :func:`switch_current` writes it) and that directory exists (:func:`read_current`).
- **complete**: a release is complete when both its record (a JSON object) and its
  directory (a real one, not a symlink) exist (:func:`complete_record`). The record is
  written first and the directory renamed in after it, so a release killed in between has
  only its record: not complete, and never a ``releases/<version>`` without its record.
- **temps**: a name starting with :data:`TMP_PREFIX` in the instance directory,
  ``releases/``, ``.floy/`` or ``.floy/releases/`` is left over from a killed run and is
  removed under the exclusive lock (:func:`clear_leftovers`).
- **lock**: a release holds ``.floy/lock`` exclusively for its whole run, a probe shares
  it; either waits up to :data:`LOCK_WAIT` seconds for a release still cleaning up.

Standard library only, Python 3.8 compatible: this runs on the target's interpreter.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import fcntl
import json
import os
import re
import shutil
import tempfile
import time

#: A service, instance ID or version: one path component, never ``.`` or ``..`` alone.
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$")
#: Prefix of every temporary name floy_release creates inside an instance.
TMP_PREFIX = ".floy-"
RELEASES = "releases"
RECORD_SUFFIX = ".json"
# floy never runs two releases on one instance at once, so a held lock is a release that was
# cancelled or killed and is still cleaning up (switching back, e.g. after a cancel over SSH,
# where the controller cannot wait for it): both modules wait this long for it.
LOCK_WAIT = 45.0


class NotASymlink(Exception):
    """``current`` is a real directory: floy will not replace it."""

    def __init__(self, path):
        self.msg = "%s is a directory, not a symlink" % path
        super().__init__(self.msg)


class InstanceLayout:
    """The paths of one instance directory (made absolute)."""

    def __init__(self, instance_dir):
        self.instance_dir = os.path.abspath(instance_dir)
        self.releases_dir = os.path.join(self.instance_dir, RELEASES)
        self.shared_dir = os.path.join(self.instance_dir, "shared")
        self.current_link = os.path.join(self.instance_dir, "current")
        self.meta_dir = os.path.join(self.instance_dir, ".floy")
        self.records_dir = os.path.join(self.meta_dir, "releases")
        self.state_path = os.path.join(self.meta_dir, "state.json")
        # The temp prefix: a copy left by a killed release is removed under the next lock.
        self.state_before_path = os.path.join(self.meta_dir, TMP_PREFIX + "state-before.json")
        self.lock_path = os.path.join(self.meta_dir, "lock")
        self.restart_record_path = os.path.join(self.meta_dir, "restart-running.json")
        self.restart_log_path = os.path.join(self.shared_dir, "floy-restart.log")

    def release_dir(self, version):
        """``releases/<version>``."""
        return os.path.join(self.releases_dir, version)

    def record_path(self, version):
        """``.floy/releases/<version>.json``, the record that the release is complete."""
        return os.path.join(self.records_dir, version + RECORD_SUFFIX)

    def directories(self):
        """The directories a release creates, parents first."""
        return (
            self.instance_dir,
            self.releases_dir,
            self.shared_dir,
            self.meta_dir,
            self.records_dir,
        )

    def temp_directories(self):
        """The directories floy_release creates temporary names in."""
        return (self.releases_dir, self.instance_dir, self.records_dir, self.meta_dir)


# -- current ---------------------------------------------------------------------------------


def link_target(version):
    """What ``current`` points at for ``version`` (relative, so the tree can move)."""
    return RELEASES + "/" + version


def release_named(target):
    """The release a ``current`` target names (``releases/<name>``), or ""."""
    parts = target.rstrip("/").split("/")
    if len(parts) == 2 and parts[0] == RELEASES and is_release_name(parts[1]):
        return parts[1]
    return ""


def is_release_name(name):
    """Whether an entry of ``releases/`` can be a release (temps and dot names are not).

    The name is not checked against NAME_RE: floy_probe reports names as found, for the
    controller to judge; floy_release trusts only names that match.
    """
    return bool(name) and not name.startswith(".")


def read_current(layout):
    """(raw target of ``current`` or None, the release it names or "" if none exists)."""
    try:
        target = os.readlink(layout.current_link)
    except OSError:
        return None, ""
    name = release_named(target)
    if name and os.path.isdir(layout.release_dir(name)):
        return target, name
    return target, ""


def switch_current(layout, target):
    """Point ``current`` at ``target`` atomically (a symlink renamed over it); None removes it."""
    if target is None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(layout.current_link)
        return
    if os.path.isdir(layout.current_link) and not os.path.islink(layout.current_link):
        raise NotASymlink(layout.current_link)
    tmp = os.path.join(layout.instance_dir, "%scurrent-%d" % (TMP_PREFIX, os.getpid()))
    remove_path(tmp)
    os.symlink(target, tmp)
    try:
        os.replace(tmp, layout.current_link)
    except OSError:
        remove_path(tmp)
        raise
    fsync_dir(layout.instance_dir)


# -- complete --------------------------------------------------------------------------------


def read_record(layout, version):
    """The record of ``version`` (a JSON object), or None if missing or unreadable."""
    return read_json(layout.record_path(version))


def complete_record(layout, version):
    """The record of ``version`` if that release is complete (record and directory), else None."""
    record = read_record(layout, version)
    path = layout.release_dir(version)
    if record and os.path.isdir(path) and not os.path.islink(path):
        return record
    return None


def is_complete(layout, version):
    """Whether ``releases/<version>`` is complete: its record and its directory exist."""
    return complete_record(layout, version) is not None


def release_names(layout):
    """Names under ``releases/`` that can be releases (complete or not), unsorted."""
    try:
        names = os.listdir(layout.releases_dir)
    except OSError:
        return []
    return [name for name in names if is_release_name(name)]


def write_record(layout, version, package_url, sha256):
    """Record that ``releases/<version>`` is complete (before its directory is renamed in)."""
    write_json_atomic(
        layout.record_path(version),
        {
            "version": version,
            "package_url": package_url,
            "sha256": sha256,
            "installed_at": utc_now(),
        },
    )


# -- state.json ------------------------------------------------------------------------------


def keep_state_before(layout):
    """Keep the current state.json under the temp name (a hard link: no new space)."""
    remove_path(layout.state_before_path)
    with contextlib.suppress(FileNotFoundError):
        os.link(layout.state_path, layout.state_before_path)


def restore_state_before(layout, written):
    """state.json as kept by :func:`keep_state_before` (a rename, which a full disk cannot
    refuse); with no copy kept, one ``written`` since is removed (there was none before)."""
    if os.path.exists(layout.state_before_path):
        os.replace(layout.state_before_path, layout.state_path)
    elif written:
        remove_path(layout.state_path)
    fsync_dir(layout.meta_dir)


# -- the instance lock -----------------------------------------------------------------------


def _flock_within(fd, operation, wait, poll):
    """Take ``flock(operation)``, retrying for ``wait`` seconds; whether it was taken."""
    until = time.monotonic() + wait
    while True:
        try:
            fcntl.flock(fd, operation | fcntl.LOCK_NB)
            return True
        except OSError:
            if time.monotonic() >= until:
                return False
            time.sleep(poll)


def lock_exclusive(layout, wait, poll=0.2):
    """Hold the instance lock exclusively (creating it), as a release does for its whole run.

    Returns the descriptor (the lock lasts while it is open), or None if another process
    still held the lock after ``wait`` seconds.
    """
    fd = os.open(layout.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    if _flock_within(fd, fcntl.LOCK_EX, wait, poll):
        return fd
    os.close(fd)
    return None


def lock_shared(layout, wait, poll=0.1):
    """Hold the instance lock shared (no release runs meanwhile), as the probe does.

    Returns the descriptor, or None if a release still held it after ``wait`` seconds.
    Raises FileNotFoundError if there is no lock file: no release ever ran here.
    """
    fd = os.open(layout.lock_path, os.O_RDONLY)
    if _flock_within(fd, fcntl.LOCK_SH, wait, poll):
        return fd
    os.close(fd)
    return None


def make_directories(layout):
    """Create the instance's directories (existing ones are kept)."""
    for path in layout.directories():
        os.makedirs(path, mode=0o755, exist_ok=True)


def clear_leftovers(layout):
    """Remove every temp name a killed run left (call under the exclusive lock)."""
    for directory in layout.temp_directories():
        for name in os.listdir(directory):
            if name.startswith(TMP_PREFIX):
                remove_path(os.path.join(directory, name))


# -- file atomics ----------------------------------------------------------------------------


def utc_now():
    """RFC 3339 UTC timestamp with a Z suffix (the times in records and state.json)."""
    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    return now.strftime("%Y-%m-%dT%H:%M:%SZ")


def write_text_atomic(path, text):
    """Write ``text`` to ``path`` (mode 0644) through a temp file, fsync and rename: a
    reader sees the old file or the whole new one."""
    directory = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX, dir=directory)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(directory)


def write_json_atomic(path, data):
    """Write JSON to ``path`` through a temp file, fsync and rename."""
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def fsync_dir(directory):
    """Make a rename in ``directory`` durable."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def read_json(path):
    """Parsed JSON object at ``path``, or None if missing, unreadable or not an object."""
    try:
        with open(path) as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def remove_path(path):
    """Remove a file, symlink or directory tree; ignore a missing path."""
    if not path:
        return
    if os.path.islink(path) or os.path.isfile(path):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
    elif os.path.isdir(path):
        shutil.rmtree(path, ignore_errors=True)


def exchange_paths(a, b):
    """Atomically swap two paths (Linux renameat2 RENAME_EXCHANGE); False if unsupported."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError, ImportError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    rc = renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange)
    if rc != 0:
        err = ctypes.get_errno()
        if err in (errno.EINVAL, errno.ENOSYS, errno.EPERM):
            return False
        raise OSError(err, os.strerror(err), a)
    return True
