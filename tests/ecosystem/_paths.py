"""Paths and environments shared by the ecosystem tests (collection, AWX, lint, molecule)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
COLLECTIONS = REPO / "collections"
COLLECTION = COLLECTIONS / "ansible_collections" / "floy" / "release"
ROLE = COLLECTION / "roles" / "floy"
PLAYBOOKS = REPO / "playbooks"


def argument_specs() -> dict[str, Any]:
    """The role's meta/argument_specs.yml, parsed."""
    data: dict[str, Any] = yaml.safe_load((ROLE / "meta" / "argument_specs.yml").read_text())
    return data["argument_specs"]


def tool_env(**extra: str) -> dict[str, str]:
    """Environment for Ansible tools of floy's venv, finding the in-repo collection."""
    return {
        **os.environ,
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "ANSIBLE_COLLECTIONS_PATH": str(COLLECTIONS),
        "ANSIBLE_NOCOLOR": "1",
        "NO_COLOR": "1",
        **extra,
    }
