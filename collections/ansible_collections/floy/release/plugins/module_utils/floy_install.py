# Copyright: (c) 2026, floy contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
# SPDX-License-Identifier: Apache-2.0
"""Moving an unpacked release into ``releases/<version>`` (and undoing that), and pruning
old releases: the writes of floy_release that follow the on-disk contract of floy_layout.

- :func:`install_release` writes the record first, then renames the directory in: killed
  in between, a record without its directory is simply not complete, and no
  ``releases/<version>`` is ever without one. A release it replaces is kept aside until the
  new one is healthy; reinstalling the live version swaps both trees in one syscall, so
  ``current`` never dangles. It returns the undo information :func:`undo_install` needs.
- :func:`prune_releases` removes old releases beyond the number to keep, newest complete
  ones kept first.

Standard library only, Python 3.8 compatible: this runs on the target's interpreter.
"""

from __future__ import annotations

import contextlib
import os

from ansible_collections.floy.release.plugins.module_utils.floy_layout import (
    NAME_RE,
    TMP_PREFIX,
    complete_record,
    exchange_paths,
    fsync_dir,
    is_complete,
    read_record,
    release_names,
    remove_path,
    write_json_atomic,
    write_record,
)


def install_release(layout, version, unpacked, sha, url, is_current, temp_paths):
    """Move ``unpacked`` to releases/<version>, record it; return undo information.

    ``is_current``: ``current`` names ``version``. ``temp_paths`` is the caller's list of
    paths to remove when the run ends, kept up to date as the trees move.
    """
    release_dir = layout.release_dir(version)
    record_path = layout.record_path(version)
    undo = {
        "created": True,
        "displaced": None,
        "old_record": read_record(layout, version),
        "exchanged": False,
    }
    if os.path.lexists(release_dir):
        # Reinstalling the live version: swap both trees in one syscall so
        # `current` never dangles, and keep the old tree until success.
        if (
            is_current
            and is_complete(layout, version)
            and exchange_paths(unpacked, release_dir)
        ):
            undo["displaced"] = unpacked
            undo["exchanged"] = True
            try:
                write_record(layout, version, url, sha)
            except OSError:
                undo_install(layout, version, undo)
                raise
            return undo
        displaced = os.path.join(
            layout.releases_dir,
            "%sold-%s-%d" % (TMP_PREFIX, version, os.getpid()),
        )
        os.rename(release_dir, displaced)
        if undo["old_record"]:
            # A complete release (force or a different sha256): keep it until success.
            undo["displaced"] = displaced
        else:
            remove_path(displaced)
    # The record first, then the directory: killed in between, a record without its
    # directory is simply not complete, and no releases/<version> is ever without one.
    try:
        write_record(layout, version, url, sha)
        os.rename(unpacked, release_dir)
    except OSError:
        if undo["displaced"]:
            os.rename(undo["displaced"], release_dir)
        _restore_record(record_path, undo)
        raise
    temp_paths.remove(unpacked)
    if undo["displaced"]:
        temp_paths.append(undo["displaced"])
    fsync_dir(layout.releases_dir)
    return undo


def undo_install(layout, version, undo):
    """Remove the release an install_release created; put back what it displaced."""
    if undo is None or not undo["created"]:
        return
    release_dir = layout.release_dir(version)
    record_path = layout.record_path(version)
    if undo["exchanged"]:
        with contextlib.suppress(OSError):
            exchange_paths(undo["displaced"], release_dir)
    else:
        remove_path(release_dir)
        if undo["displaced"]:
            with contextlib.suppress(OSError):
                os.rename(undo["displaced"], release_dir)
    _restore_record(record_path, undo)


def _restore_record(record_path, undo):
    """Put back the record a displaced release had, or remove the new one."""
    if undo["old_record"] and undo["displaced"]:
        with contextlib.suppress(OSError):
            write_json_atomic(record_path, undo["old_record"])
    else:
        remove_path(record_path)


def prune_releases(layout, keep_versions, keep_releases):
    """Remove old releases beyond ``keep_releases`` (``keep_versions`` always stay, and
    count); return the versions removed. Incomplete releases always go."""
    entries = []
    for name in release_names(layout):
        path = layout.release_dir(name)
        if not NAME_RE.match(name) or os.path.islink(path):
            continue
        if not os.path.isdir(path) or name in keep_versions:
            continue
        record = complete_record(layout, name)
        entries.append(((record or {}).get("installed_at", ""), name, record is not None))
    entries.sort(reverse=True)
    budget = max(0, keep_releases - len(keep_versions))
    removed = []
    for _installed_at, name, complete in entries:
        if complete and budget > 0:
            budget -= 1
            continue
        remove_path(layout.release_dir(name))
        remove_path(layout.record_path(name))
        removed.append(name)
    return removed
