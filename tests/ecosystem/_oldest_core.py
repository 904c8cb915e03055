"""The oldest ansible-core the collection claims, for running its role with that version.

meta/runtime.yml's ``requires_ansible`` and the role's ``min_ansible_version`` name the
oldest ansible-core floy.release works with. The tests hold the claim to account by running
a real deploy with exactly that release, from a venv with nothing but it, made once with pip
into pytest's cache directory (``.pytest_cache/d/floy-ansible-core/ansible-core-<v>``) and
reused by later sessions, as tests/ecosystem/_awx.py keeps awx.awx.
"""

from __future__ import annotations

import fcntl
import shutil
import subprocess
from pathlib import Path

import yaml
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from tests.ecosystem._paths import COLLECTION, ROLE, VENV_BIN

_COMPLETE = ".floy-complete"


def requires_ansible_floor() -> Version:
    """The lower bound of meta/runtime.yml's ``requires_ansible`` (its ``>=`` clause)."""
    runtime = yaml.safe_load((COLLECTION / "meta" / "runtime.yml").read_text())
    floors = [Version(s.version) for s in SpecifierSet(runtime["requires_ansible"])
              if s.operator == ">="]
    assert len(floors) == 1, f"requires_ansible needs one >= clause: {runtime}"
    return floors[0]


def role_min_ansible_version() -> Version:
    """``galaxy_info.min_ansible_version`` of the role floy."""
    meta = yaml.safe_load((ROLE / "meta" / "main.yml").read_text())
    return Version(str(meta["galaxy_info"]["min_ansible_version"]))


def core_venv(cache: Path, version: Version) -> Path:
    """A venv holding only ``ansible-core==version`` (and its dependencies), made once under
    ``cache``; a second pytest-xdist worker waits on a lock instead of building it again.

    Built in place (a venv is not relocatable, so no build-then-rename) and marked complete
    last; a venv whose base Python is gone is rebuilt."""
    venv = cache / f"ansible-core-{version}"
    complete = venv / _COMPLETE
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / f"ansible-core-{version}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if complete.is_file() and (venv / "bin" / "python").exists():
            return venv
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([str(VENV_BIN / "python"), "-m", "venv", str(venv)],
                       check=True, timeout=120)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check",
                        f"ansible-core=={version}"], check=True, timeout=600)
        complete.write_text(f"{version}\n")
    return venv
