"""The ansible-runner adapter: the only module that imports ansible_runner.

It materialises a :class:`~orchestrator.ansible.plan.RunPlan` into a fresh private data dir,
runs the playbook, streams every event to a callback and polls a cancel predicate. Callbacks are
wrapped so they never raise into runner (an exception there escapes ``run()`` and leaves
the child running: DESIGN.md section 6).
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.ansible.inventory import dump_yaml, write_atomic
from orchestrator.ansible.plan import RunPlan
from orchestrator.ansible.processes import run_processes, signal_all, wait_for_run_processes
from orchestrator.domain.events import RunnerEvent
from orchestrator.errors import ExecutionError

log = logging.getLogger(__name__)

CANCEL_POLL_SECONDS = 0.2
# After SIGTERM, ansible-playbook gets this long to stop its forks (which let the module
# clean up and switch back) before runner SIGKILLs its process group.
CANCEL_GRACE_SECONDS = 15.0


@dataclass(frozen=True)
class RunnerOutcome:
    """How ansible-playbook ended."""

    status: str  # successful | failed | canceled | timeout | error
    rc: int | None
    stdout_tail: str
    events: int
    seconds: float
    cancelled: bool = False


class _Canceller:
    """Cancel callback with a graceful first step (DESIGN.md section 6).

    runner's own cancel SIGKILLs ansible-playbook's process group, but since ansible-core
    2.19 every fork runs in its own session, so forks and the commands they run would
    survive. So: SIGTERM ansible-playbook (it forwards the signal to its forks, and the
    floy_release module cleans up on it), give it a grace period, and only then let runner
    SIGKILL; whatever is left of this run afterwards is killed by :meth:`sweep`.
    """

    def __init__(self, should_cancel: Callable[[], bool], marker: str, grace: float,
                 run_id: str) -> None:
        self.should_cancel = should_cancel
        self.marker = marker
        self.grace = grace
        self.run_id = run_id
        self.term_sent_at: float | None = None

    def __call__(self) -> bool:
        try:
            if self.term_sent_at is None:
                if not self.should_cancel():
                    return False
                me = os.getpid()
                top = [pid for pid, ppid in run_processes(self.marker) if ppid == me]
                signal_all(top, signal.SIGTERM)
                self.term_sent_at = time.monotonic()
                log.info("cancel: sent SIGTERM to ansible-playbook %s", top)
                return False
            return time.monotonic() - self.term_sent_at > self.grace
        except Exception:
            log.exception("cancel check failed")
            return False

    @property
    def cancelled(self) -> bool:
        return self.term_sent_at is not None

    def sweep(self) -> int:
        """Let the run's modules finish cleaning up (bounded), then SIGKILL whatever of this
        run is still alive; returns how many processes had to be killed."""
        killed = signal_all([pid for pid, _ in run_processes(self.marker)], signal.SIGKILL)
        if self.cancelled:
            left = max(1.0, self.grace - (time.monotonic() - (self.term_sent_at or 0.0)))
            killed += wait_for_run_processes(self.run_id, left)
        return killed


Execute = Callable[
    [RunPlan, Callable[[RunnerEvent], None], Callable[[], bool]], "RunnerOutcome"
]


def materialise(plan: RunPlan) -> tuple[Path, Path]:
    """Write the plan's inventory and extra vars into a fresh private data dir."""
    pdd = plan.private_data_dir
    if pdd.exists():
        # runner silently reuses env files left in a private data dir: never reuse one.
        raise ExecutionError(f"private data dir {pdd} already exists; refusing to reuse it")
    # Owner-only all the way down: artifacts record module arguments and the inventory
    # copy holds the operator's variables (credentials included).
    pdd.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(pdd.parent, 0o700)
    pdd.mkdir(mode=0o700)
    inventory_dir = pdd / "inventory"
    inventory_dir.mkdir(mode=0o700)
    (pdd / "project").mkdir(mode=0o700)
    for name in ("group_vars", "host_vars"):
        source = plan.operator_inventory_dir / name
        if source.is_dir():
            shutil.copytree(source, inventory_dir / name)
            for copied in (inventory_dir / name).rglob("*"):
                os.chmod(copied, 0o700 if copied.is_dir() else 0o600)
    write_atomic(inventory_dir / "hosts.yml", dump_yaml(dict(plan.inventory)))
    vars_file = pdd / "floy-vars.yml"
    write_atomic(vars_file, dump_yaml(dict(plan.extravars)))
    return inventory_dir, vars_file


def execute(
    plan: RunPlan,
    on_event: Callable[[RunnerEvent], None],
    should_cancel: Callable[[], bool],
) -> RunnerOutcome:
    """Run the plan to its end; ``on_event`` sees every event, in order."""
    import ansible_runner  # deferred: commands that only read the store never pay for it

    inventory_dir, vars_file = materialise(plan)
    counter = {"events": 0}

    def handle(event: dict[str, Any]) -> bool:
        counter["events"] += 1
        try:
            on_event(event)  # type: ignore[arg-type]
        except Exception:  # never raise into runner
            log.exception("event handler failed on %s", event.get("event"))
        return True

    canceller = _Canceller(should_cancel, str(vars_file), CANCEL_GRACE_SECONDS, plan.run_id)
    started = time.monotonic()
    try:
        result = ansible_runner.run(
            private_data_dir=str(plan.private_data_dir),
            playbook=str(plan.playbook),
            inventory=str(inventory_dir),
            cmdline=f"-e @{vars_file}",
            forks=plan.forks,
            envvars=dict(plan.envvars),
            event_handler=handle,
            cancel_callback=canceller,
            quiet=True,
            settings={"pexpect_timeout": CANCEL_POLL_SECONDS, "suppress_ansible_output": True},
        )
    except Exception as exc:
        canceller.sweep()
        raise ExecutionError(f"could not run ansible-playbook: {exc}") from exc
    leftovers = canceller.sweep()
    if leftovers:
        log.warning("killed %d leftover process(es) of run %s", leftovers, plan.run_id)
    return RunnerOutcome(
        status="canceled" if canceller.cancelled else str(result.status),
        rc=result.rc,
        stdout_tail=stdout_tail(plan.private_data_dir),
        events=counter["events"],
        seconds=time.monotonic() - started,
        cancelled=canceller.cancelled,
    )


def stdout_tail(pdd: Path, lines: int = 15) -> str:
    """Last lines of the run's stdout artifact, for an error message."""
    candidates = sorted(pdd.glob("artifacts/*/stdout"))
    if not candidates:
        return ""
    try:
        text = candidates[-1].read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    kept = [line for line in text.splitlines() if line.strip()]
    return "\n".join(kept[-lines:])
