"""The /proc walker: find the processes of a run on this machine, and stop them.

A run's ansible-playbook and its forks share its argv (the run's vars file is in it); every
process of the run, modules of local instances included, carries ``FLOY_RUN_ID`` in its
environment. Zombies are left out (PID 1 here does not reap them).
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator

from orchestrator.settings import Settings


def _live_processes() -> Iterator[tuple[int, int]]:
    """(pid, ppid) of every live process but this one; zombies are left out."""
    me = os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="utf-8") as handle:
                fields = handle.read().rpartition(")")[2].split()
        except OSError:
            continue
        if len(fields) > 1 and fields[0] != "Z":
            yield int(entry), int(fields[1])


def _read_nul_list(pid: int, name: str) -> list[bytes]:
    try:
        with open(f"/proc/{pid}/{name}", "rb") as handle:
            return handle.read().split(b"\0")
    except OSError:
        return []


def run_processes(marker: str) -> list[tuple[int, int]]:
    """(pid, ppid) of every process whose argv holds ``marker`` (this run's vars file).

    Ansible's forks are forks of ansible-playbook, so they share its argv: this finds
    ansible-playbook and every fork of this run, and nothing else.
    """
    needle = marker.encode()
    return [
        (pid, ppid)
        for pid, ppid in _live_processes()
        if any(needle in arg for arg in _read_nul_list(pid, "cmdline"))
    ]


def tagged_processes(run_id: str) -> list[int]:
    """Live processes whose environment carries ``FLOY_RUN_ID=<run_id>``: the run's
    ansible-playbook, forks, and the modules they run for local instances."""
    tag = f"FLOY_RUN_ID={run_id}".encode()
    return [pid for pid, _ in _live_processes() if tag in _read_nul_list(pid, "environ")]


def wait_for_run_processes(run_id: str, grace: float) -> int:
    """Wait up to ``grace`` for the run's processes to exit, then SIGKILL the rest.
    Returns how many had to be killed."""
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not tagged_processes(run_id):
            return 0
        time.sleep(0.05)
    return signal_all(tagged_processes(run_id), signal.SIGKILL)


def signal_all(pids: list[int], sig: signal.Signals) -> int:
    sent = 0
    for pid in pids:
        try:
            os.kill(pid, sig)
            sent += 1
        except (ProcessLookupError, PermissionError):
            pass
    return sent


# After SIGTERM, a run's orphaned ansible-playbook gets this long to stop (the module of an
# instance in flight cleans up and switches back) before it is SIGKILLed.
STOP_GRACE_SECONDS = 10.0


def run_marker(settings: Settings, run_id: str) -> str:
    """The path in the argv of every ansible-playbook process of ``run_id``: its vars file
    in the run's private data dir."""
    return str(settings.runs_dir / run_id / "floy-vars.yml")


def stop_run(settings: Settings, run_id: str, grace: float = STOP_GRACE_SECONDS) -> int:
    """Stop ansible-playbook and its forks of ``run_id`` on this machine; returns how many
    processes were found. SIGTERM first (the module cleans up), SIGKILL after ``grace``,
    then wait for the run's modules that are still switching back."""
    marker = run_marker(settings, run_id)
    found = run_processes(marker)
    if not found:
        return 0
    pids = {pid for pid, _ in found}
    signal_all([pid for pid, ppid in found if ppid not in pids], signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and run_processes(marker):
        time.sleep(0.1)
    signal_all([pid for pid, _ in run_processes(marker)], signal.SIGKILL)
    wait_for_run_processes(run_id, grace)
    return len(found)
