"""Executors hand a recorded run to a worker. The service only sees the protocol.

- :class:`ProcessExecutor` (the default) starts a detached worker process that outlives the
  caller: ``execute_deployment`` returns at once and the run goes on if the CLI exits.
- :class:`InlineExecutor` carries the run in the calling thread (for embedding and tests).
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Protocol

from orchestrator.errors import ExecutionError
from orchestrator.settings import Settings
from orchestrator.store import Store
from orchestrator.worker import Worker


class Executor(Protocol):
    """Starts the work of a run that is already recorded in the store."""

    def submit(self, run_id: str) -> None:
        """Start carrying ``run_id``; may return before the run ends."""


class ProcessExecutor:
    """Runs each run in its own detached ``python -m orchestrator.worker`` process."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def log_path(self, run_id: str) -> Path:
        """Where the worker of ``run_id`` writes its log."""
        return self.settings.home / "logs" / f"{run_id}.log"

    def submit(self, run_id: str) -> None:
        """Start the worker; it takes the run's lease itself."""
        log_file = self.log_path(run_id)
        log_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            with open(log_file, "ab") as out:
                proc = subprocess.Popen(
                    [self.settings.python, "-m", "orchestrator.worker", run_id],
                    stdin=subprocess.PIPE,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # outlives the caller and its Ctrl-C
                    close_fds=True,
                    cwd=str(self.settings.playbook_dir.parent),
                )
        except OSError as exc:
            raise ExecutionError(f"could not start a worker: {exc}") from exc
        assert proc.stdin is not None
        proc.stdin.write(self.settings.to_json().encode())
        proc.stdin.close()


class InlineExecutor:
    """Carries each run synchronously in the caller's thread."""

    def __init__(self, settings: Settings, store: Store) -> None:
        self.worker = Worker(settings, store)

    def submit(self, run_id: str) -> None:
        """Carry the run to its end before returning."""
        self.worker.run(run_id)
