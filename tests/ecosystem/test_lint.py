"""ansible-lint (production profile, offline) and yamllint over floy's Ansible content:
playbooks/, the collection floy.release, molecule/, awx/configure.yml (configured in
.ansible-lint, .yamllint)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.ecosystem._paths import COLLECTIONS, REPO, VENV_BIN, tool_env


def test_ansible_lint_production_profile(awx_collections: Path) -> None:
    # awx/configure.yml uses awx.awx: fetched once from PyPI (tests/ecosystem/_awx.py)
    env = tool_env(ANSIBLE_COLLECTIONS_PATH=f"{COLLECTIONS}{os.pathsep}{awx_collections}")
    proc = subprocess.run(
        [str(VENV_BIN / "ansible-lint"), "--offline", "--profile", "production", "--nocolor"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert "Profile 'production' was required, and it passed" in output, output
    assert "0 failure(s), 0 warning(s)" in output, output


def test_yamllint() -> None:
    proc = subprocess.run(
        [str(VENV_BIN / "yamllint"), "--strict", "."],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
