"""Starting a detached worker process for one run (the process executor's way, and the
reaper's when it resumes a run handed back at a gate)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from orchestrator.errors import ExecutionError
from orchestrator.settings import Settings


def worker_log_path(settings: Settings, run_id: str) -> Path:
    """Where the worker of ``run_id`` writes its log."""
    return settings.home / "logs" / f"{run_id}.log"


def start_worker_process(settings: Settings, run_id: str) -> None:
    """Start ``python -m orchestrator.engine.worker RUN_ID`` in a session of its own (it
    outlives the caller and its Ctrl-C); it takes the run's lease itself. The settings go
    on its stdin, so a database password never shows in ``ps``."""
    log_file = worker_log_path(settings, run_id)
    log_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        with open(log_file, "ab") as out:
            proc = subprocess.Popen(
                [settings.python, "-m", "orchestrator.engine.worker", run_id],
                stdin=subprocess.PIPE,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                close_fds=True,
                cwd=str(settings.playbook_dir.parent),
            )
    except OSError as exc:
        raise ExecutionError(f"could not start a worker: {exc}") from exc
    assert proc.stdin is not None
    proc.stdin.write(settings.to_json().encode())
    proc.stdin.close()
