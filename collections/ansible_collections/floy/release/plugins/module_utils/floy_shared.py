# Copyright: floy contributors
# Apache License 2.0 (see the repository's pyproject.toml)
"""Shared paths and files: what stays across releases, linked into each one from ``shared/``.

As ansistrano's ``ansistrano_shared_paths`` and ``ansistrano_shared_files``: for each path
``p``, ``releases/<version>/p`` becomes a relative symlink to ``shared/p``, whatever the
package had there (that copy is removed). A shared path is a directory (created in
``shared/`` when missing); a shared file is a file, whose directory in ``shared/`` is created
but which is not (the operator puts it there, as with ansistrano).

A path is relative, without ``.`` or ``..`` components, and links are made through the
release's own directories only: a package whose ``config`` is a symlink cannot make
``config/app.yml`` land outside the release.

Standard library only, Python 3.8 compatible: this runs on the target's interpreter.
"""

from __future__ import annotations

import os
import stat

from ansible_collections.floy.release.plugins.module_utils.floy_layout import remove_path


class SharedPathError(Exception):
    """A shared path that cannot be linked; ``msg`` says which and why."""

    def __init__(self, msg):
        self.msg = msg
        super().__init__(msg)


def shared_parts(path, option):
    """The components of a shared path, checked: relative, no ``.``, ``..`` or empty part."""
    if not isinstance(path, str) or not path.strip("/"):
        raise SharedPathError("invalid %s entry %r: must be a relative path" % (option, path))
    if path.startswith("/"):
        raise SharedPathError("invalid %s entry %r: must be relative to the release" % (
            option, path))
    parts = path.rstrip("/").split("/")
    if any(part in ("", ".", "..") for part in parts) or "\0" in path:
        raise SharedPathError(
            "invalid %s entry %r: no empty, '.' or '..' components" % (option, path)
        )
    return parts


def check_shared(shared_paths, shared_files):
    """Check both lists up front (before anything is fetched); return them as parts."""
    entries = [(shared_parts(p, "shared_paths"), True) for p in shared_paths]
    entries += [(shared_parts(p, "shared_files"), False) for p in shared_files]
    seen = {}
    for parts, _is_dir in entries:
        key = "/".join(parts)
        if key in seen:
            raise SharedPathError("%s is listed twice in shared_paths/shared_files" % key)
        seen[key] = True
    return entries


def _real_dir(path, what):
    """Create ``path`` as a directory if missing; refuse a symlink or a non-directory."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        os.mkdir(path, 0o755)
        return
    if not stat.S_ISDIR(st.st_mode):
        raise SharedPathError("%s %s is not a directory" % (what, path))


def _dirs_along(root, parts, what):
    """Make (or check) each directory of ``parts`` under ``root``; return the last one."""
    here = root
    for part in parts:
        here = os.path.join(here, part)
        _real_dir(here, what)
    return here


def link_shared(release_dir, shared_dir, entries):
    """Link each checked entry of :func:`check_shared` into ``release_dir``; return the
    number of links made or replaced (0 when all were in place already)."""
    made = 0
    for parts, is_dir in entries:
        shared_target = os.path.join(shared_dir, *parts)
        if is_dir:
            _dirs_along(shared_dir, parts, "shared path")
        else:
            _dirs_along(shared_dir, parts[:-1], "shared path")
        parent = _dirs_along(release_dir, parts[:-1], "release path")
        link = os.path.join(parent, parts[-1])
        wanted = os.path.relpath(shared_target, parent)
        if os.path.islink(link) and os.readlink(link) == wanted:
            continue
        if os.path.lexists(link):
            remove_path(link)
        os.symlink(wanted, link)
        made += 1
    return made
