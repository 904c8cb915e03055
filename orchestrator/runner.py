"""The ansible-runner adapter: the only module that imports ansible_runner.

It materialises a :class:`~orchestrator.plan.RunPlan` into a fresh private data dir, runs the
playbook, streams every event to a callback and polls a cancel predicate. Callbacks are
wrapped so they never raise into runner (an exception there escapes ``run()`` and leaves
the child running: DESIGN.md section 6).
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.errors import ExecutionError
from orchestrator.events import RunnerEvent
from orchestrator.inventory import dump_yaml, write_atomic
from orchestrator.plan import RunPlan

log = logging.getLogger(__name__)

CANCEL_POLL_SECONDS = 0.2


@dataclass(frozen=True)
class RunnerOutcome:
    """How ansible-playbook ended."""

    status: str  # successful | failed | canceled | timeout | error
    rc: int | None
    stdout_tail: str
    events: int
    seconds: float


def materialise(plan: RunPlan) -> tuple[Path, Path]:
    """Write the plan's inventory and extra vars into a fresh private data dir."""
    pdd = plan.private_data_dir
    if pdd.exists():
        # runner silently reuses env files left in a private data dir: never reuse one.
        raise ExecutionError(f"private data dir {pdd} already exists; refusing to reuse it")
    inventory_dir = pdd / "inventory"
    inventory_dir.mkdir(parents=True, mode=0o700)
    (pdd / "project").mkdir(mode=0o700)
    for name in ("group_vars", "host_vars"):
        source = plan.operator_inventory_dir / name
        if source.is_dir():
            shutil.copytree(source, inventory_dir / name)
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

    def cancel() -> bool:
        try:
            return bool(should_cancel())
        except Exception:
            log.exception("cancel check failed")
            return False

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
            cancel_callback=cancel,
            quiet=True,
            settings={"pexpect_timeout": CANCEL_POLL_SECONDS, "suppress_ansible_output": True},
        )
    except Exception as exc:
        raise ExecutionError(f"could not run ansible-playbook: {exc}") from exc
    return RunnerOutcome(
        status=str(result.status),
        rc=result.rc,
        stdout_tail=_tail(plan.private_data_dir),
        events=counter["events"],
        seconds=time.monotonic() - started,
    )


def _tail(pdd: Path, lines: int = 15) -> str:
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
