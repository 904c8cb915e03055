"""Measuring for the benchmarks: wall time and CPU of child processes, order statistics.

CPU of a child process tree comes from ``getrusage(RUSAGE_CHILDREN)`` deltas around a
``subprocess.run``: it covers every descendant that was waited for (ansible-playbook, its
forks and the modules they run for local instances), not the detached ``hello`` apps.
"""

from __future__ import annotations

import math
import os
import resource
import statistics
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = REPO / ".venv" / "bin"


def venv_path_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment with the venv's ``bin`` first on PATH (for ansible-*)."""
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(VENV_BIN), env.get("PATH", "")])
    env.update(extra or {})
    return env


def children_cpu() -> float:
    """CPU seconds (user + system) of every child this process has waited for so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def self_cpu() -> float:
    """CPU seconds (user + system) of this process so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def peak_rss_mib() -> float:
    """Peak resident set size of this process, MiB (``ru_maxrss`` is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def current_rss_mib() -> float:
    """Resident set size of this process right now, MiB (VmRSS)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


@dataclass(frozen=True)
class Measured:
    """One child process run: exit code, wall seconds, CPU seconds of its whole tree."""

    rc: int
    wall: float
    cpu: float
    stdout: str


def run_measured(cmd: Sequence[str], env: Mapping[str, str] | None = None,
                 stdin: str | None = None, cwd: Path = REPO) -> Measured:
    """Run ``cmd`` to its end; stdout is captured, stderr passes through."""
    cpu0 = children_cpu()
    began = time.perf_counter()
    proc = subprocess.run(list(cmd), env=dict(env) if env is not None else None, cwd=cwd,
                          input=stdin, stdout=subprocess.PIPE, text=True, check=False)
    wall = time.perf_counter() - began
    return Measured(proc.returncode, wall, children_cpu() - cpu0, proc.stdout)


def median(values: Sequence[float]) -> float:
    """Median (NaN for no values)."""
    return statistics.median(values) if values else float("nan")


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (``pct`` in 0-100); with few values this is the maximum."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100.0 * len(ordered)))
    return ordered[rank - 1]


def ratio(a: float, b: float) -> float:
    """a / b, NaN when b is zero."""
    return a / b if b else float("nan")


def machine() -> str:
    """'N cores, CPU model' of this machine, for the figures' context."""
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores, {model}"


def banner(title: str) -> None:
    """First lines of every benchmark's output."""
    print(f"{title}  [{machine()}; {time.strftime('%Y-%m-%d %H:%M')}]")
