"""The module_utils run on the target's interpreter: standard library only, Python 3.8+.

tests/unit/test_archive.py parses every module and module_util as Python 3.8
(``ast.parse(feature_version=(3, 8))``) and runs the unpacker's cases under the other
interpreters here; this runs the layout's rules and the process-group record under them too,
with ``-S`` (no site-packages: a third-party import would fail), catching stdlib APIs newer
than the oldest target Python (``str.removeprefix``, ``functools.cache``...) that parsing
cannot see.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.unit.archive_cases import COLLECTIONS

SMOKE = r"""
import os, sys, tempfile
sys.path.insert(0, sys.argv[1])
from ansible_collections.floy.release.plugins.module_utils import (
    floy_archive, floy_cancel, floy_download, floy_errors, floy_health as H,
    floy_install as I, floy_layout as L, floy_process_groups as G, floy_restart as R)
base = tempfile.mkdtemp()
layout = L.InstanceLayout(os.path.join(base, "hello", "hello-1"))
L.make_directories(layout)
fd = L.lock_exclusive(layout, 1.0)
assert fd is not None and L.lock_shared(layout, 0.1) is None
L.write_record(layout, "1.0.0", "https://pkgs.example/1.tar.gz", "")
os.mkdir(layout.release_dir("1.0.0"))
os.mkdir(layout.release_dir("2.0.0"))
L.switch_current(layout, L.link_target("1.0.0"))
L.write_json_atomic(layout.state_path, {"version": "1.0.0"})
L.keep_state_before(layout)
L.restore_state_before(layout, True)
assert L.read_current(layout) == ("releases/1.0.0", "1.0.0")
assert L.is_complete(layout, "1.0.0") and not L.is_complete(layout, "2.0.0")
assert sorted(L.release_names(layout)) == ["1.0.0", "2.0.0"]
assert I.prune_releases(layout, ["1.0.0"], 1) == ["2.0.0"]
assert H.health_url("::1", 8080, "/health") == "http://[::1]:8080/health"
assert issubclass(floy_cancel.Cancelled, floy_errors.ReleaseError)
assert R.log_tail(os.path.join(base, "no-such.log")) == ""
G.record_restart(layout.restart_record_path, os.getpid())
assert G.group_alive(os.getpgid(0))
assert G.stop_orphaned_restart(layout.restart_record_path, "/nowhere") == 0
L.clear_leftovers(layout)
os.close(fd)
L.remove_path(base)
print("%d.%d" % sys.version_info[:2])
"""


#: The oldest Python the collection supports on targets (module DOCUMENTATION, README).
OLDEST_TARGET_PYTHON = (3, 8)


def _target_pythons() -> list[str]:
    """Supported interpreters on this machine other than the one running the tests (pyenv
    installs are found directly: their shims fail when the version is not selected)."""
    own = str(Path(sys.executable).resolve())
    candidates = ["/usr/bin/python3", *(f"python3.{minor}" for minor in range(8, 15))]
    candidates += sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.*/bin/python3")))
    found: dict[str, str] = {}
    for candidate in candidates:
        path = shutil.which(candidate)
        if not path:
            continue
        proc = subprocess.run(
            [path, "-c", f"import sys; print(sys.version_info >= {OLDEST_TARGET_PYTHON}, "
             "sys.executable)"],
            capture_output=True, text=True, timeout=30, check=False)
        supported, _, executable = proc.stdout.strip().partition(" ")
        real = str(Path(executable).resolve()) if proc.returncode == 0 else ""
        if supported == "True" and real and real != own:
            found.setdefault(real, path)
    return sorted(found.values())


def test_module_utils_run_on_every_target_python() -> None:
    pythons = _target_pythons()
    if not pythons:
        pytest.skip("no other Python interpreter on this machine")
    seen = []
    for python in pythons:
        proc = subprocess.run([python, "-S", "-c", SMOKE, str(COLLECTIONS)],
                              capture_output=True, text=True, timeout=60, check=False)
        assert proc.returncode == 0, f"{python}: {proc.stderr}"
        seen.append(tuple(int(n) for n in proc.stdout.split(".")))
    assert seen
