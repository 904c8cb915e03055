"""The layers stay layered: import-linter's contracts (pyproject.toml) hold, and the
engine's Executor protocol can be imported without the worker behind it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_the_import_contracts_hold() -> None:
    lint = Path(sys.executable).parent / "lint-imports"
    done = subprocess.run([str(lint), "--no-cache"], cwd=REPO, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


def test_importing_the_executor_protocol_imports_no_implementation() -> None:
    code = ("import sys, orchestrator.engine as e; e.Executor; "
            "print(sorted(m for m in sys.modules if m.startswith('orchestrator.')))")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                          text=True, timeout=60, check=True)
    loaded = done.stdout
    assert "orchestrator.engine.worker" not in loaded
    assert "orchestrator.engine.executors" not in loaded
    assert "orchestrator.ansible" not in loaded


def test_the_command_line_starts_without_the_heavy_layers() -> None:
    """``floy --help`` stays fast: importing the CLI loads neither the service nor
    SQLAlchemy nor ansible-runner (each command imports what it needs)."""
    code = ("import sys, orchestrator.cli; print(sorted(m for m in sys.modules if m in "
            "('sqlalchemy', 'ansible_runner', 'yaml') or m.startswith(('orchestrator.service', "
            "'orchestrator.store', 'orchestrator.engine', 'orchestrator.ansible'))))")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                          text=True, timeout=60, check=True)
    assert done.stdout.strip() == "[]", done.stdout
