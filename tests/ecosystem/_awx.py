"""The awx.awx collection, for checking floy's AWX content offline (awx/configure.yml).

awx.awx is not on PyPI by itself: it ships inside the ``ansible`` package (54 MB, every
community collection). Installing that into floy's venv would put all of them on Ansible's
collection path, so the tests instead ``pip download`` the one pinned wheel, once, into
pytest's cache directory (``.pytest_cache/d/floy-awx``) and keep only
``ansible_collections/awx/awx/`` from it. Nothing else is downloaded; Galaxy is never asked.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import zipfile
from pathlib import Path

from tests.ecosystem._paths import VENV_BIN

#: The ``ansible`` release whose awx.awx the tests use, and that collection's version
#: (awx.awx 24.6.1 is also the release of awxkit the test extras pin).
ANSIBLE_RELEASE = "12.3.0"
AWX_COLLECTION_VERSION = "24.6.1"
_MEMBER_PREFIX = "ansible_collections/awx/awx/"


def awx_collection(cache: Path) -> Path:
    """A collections directory (``<it>/ansible_collections/awx/awx``) holding awx.awx,
    fetched from PyPI the first time; safe against a concurrent fetch (pytest-xdist)."""
    final = cache / f"ansible-{ANSIBLE_RELEASE}"
    manifest = final / _MEMBER_PREFIX / "MANIFEST.json"
    if manifest.is_file():
        return final
    cache.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="fetch-", dir=cache))
    try:
        subprocess.run(
            [str(VENV_BIN / "pip"), "download", "-q", "--no-deps", "--only-binary=:all:",
             f"ansible=={ANSIBLE_RELEASE}", "-d", str(work / "wheel")],
            check=True, timeout=600,
        )
        (wheel,) = (work / "wheel").glob("ansible-*.whl")
        with zipfile.ZipFile(wheel) as archive:
            members = [n for n in archive.namelist() if n.startswith(_MEMBER_PREFIX)]
            archive.extractall(work / "tree", members=members)
        version = json.loads((work / "tree" / _MEMBER_PREFIX / "MANIFEST.json").read_text())
        assert version["collection_info"]["version"] == AWX_COLLECTION_VERSION, version
        try:
            os.rename(work / "tree", final)
        except OSError:  # another worker got there first
            if not manifest.is_file():
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return final
