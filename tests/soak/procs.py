"""The processes of one floy installation, read from /proc and sorted by part.

Everything is matched by this installation's own paths (its home, its runs directory, its
instance root) or by run IDs unique to the soak, the way ``FloyEnv.leftovers`` does, so
tests running side by side never see, nor kill, each other's processes:

- ``worker``: ``python -m orchestrator.engine.worker RUN_ID`` whose stdout is ``<home>/logs/``;
- ``ansible_playbook``: argv holds ``<runs_dir>/RUN_ID/floy-vars.yml`` and its parent's
  does not; ``fork``: the same argv, child of that ansible-playbook (Ansible's workers);
- ``module``: ``AnsiballZ_floy_release.py`` run by the interpreter under one of those
  forks, or (once its fork is gone) tagged ``FLOY_RUN_ID=RUN_ID`` with a run ID of the
  soak's own prefix; ``module_shell``: the ``/bin/sh -c`` wrappers around it;
- ``restart_command``: environment ``FLOY_INSTANCE_DIR=<root>/...``, not the app itself;
- ``app``: ``app.py`` with ``FLOY_INSTANCE_DIR=<root>/...`` (the service, not part of a run).
"""

from __future__ import annotations

import contextlib
import os
import signal
from dataclasses import dataclass
from pathlib import Path

KILLABLE = ("worker", "ansible_playbook", "fork", "module", "restart_command", "app")


@dataclass(frozen=True)
class Proc:
    """One live process as read from /proc."""

    pid: int
    ppid: int
    started: int  # clock ticks since boot: (pid, started) names a process for good
    argv: tuple[bytes, ...]
    environ: tuple[bytes, ...]
    stdout: str

    def env(self, name: str) -> str | None:
        """Value of environment variable ``name``, or None."""
        prefix = f"{name}=".encode()
        for item in self.environ:
            if item.startswith(prefix):
                return item[len(prefix):].decode(errors="replace")
        return None

    @property
    def command(self) -> str:
        """The command line, shortened, for reports."""
        return b" ".join(self.argv).decode(errors="replace")[:160]


@dataclass(frozen=True)
class Part:
    """A process of the installation: what it is and whose it is."""

    kind: str
    owner: str  # run ID, or instance directory for restart commands and apps
    proc: Proc

    @property
    def key(self) -> tuple[int, int]:
        return (self.proc.pid, self.proc.started)


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError:
        return b""


def snapshot() -> dict[int, Proc]:
    """Every live, non-zombie process but this one."""
    me = os.getpid()
    found: dict[int, Proc] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        stat = _read(f"/proc/{entry}/stat").decode(errors="replace").rpartition(")")[2].split()
        if len(stat) < 20 or stat[0] == "Z":
            continue
        try:
            stdout = os.readlink(f"/proc/{entry}/fd/1")
        except OSError:
            stdout = ""
        found[int(entry)] = Proc(
            pid=int(entry), ppid=int(stat[1]), started=int(stat[19]),
            argv=tuple(_read(f"/proc/{entry}/cmdline").rstrip(b"\0").split(b"\0")),
            environ=tuple(_read(f"/proc/{entry}/environ").split(b"\0")), stdout=stdout)
    return found


def _vars_run(proc: Proc, runs_dir: str) -> str | None:
    """RUN_ID if the argv names ``<runs_dir>/RUN_ID/floy-vars.yml``."""
    head = f"{runs_dir}/".encode()
    for arg in proc.argv:
        at = arg.find(head)
        if at >= 0 and arg.endswith(b"/floy-vars.yml"):
            return arg[at + len(head):-len(b"/floy-vars.yml")].decode(errors="replace")
    return None


def installation_parts(home: Path, root: Path, run_prefix: str) -> list[Part]:
    """The installation's processes, sorted by pid (so a seeded choice is stable)."""
    procs = snapshot()
    runs_dir, logs, under_root = str(home / "runs"), f"{home / 'logs'}/", f"{root}/"
    marked = {pid: run for pid, p in procs.items() if (run := _vars_run(p, runs_dir))}
    parts: list[Part] = []
    for pid in sorted(procs):
        proc = procs[pid]
        argv = b" ".join(proc.argv)
        instance_dir = proc.env("FLOY_INSTANCE_DIR") or ""
        run_tag = proc.env("FLOY_RUN_ID") or ""
        if pid in marked:
            kind = "fork" if marked.get(proc.ppid) == marked[pid] else "ansible_playbook"
            parts.append(Part(kind, marked[pid], proc))
        elif b"orchestrator.engine.worker" in argv and proc.stdout.startswith(logs):
            parts.append(Part("worker", proc.argv[-1].decode(errors="replace"), proc))
        elif b"AnsiballZ_floy_release" in argv and (
                _descends(proc, marked, procs)
                or (run_prefix and run_tag.startswith(run_prefix))):
            shell = proc.argv[0] in (b"/bin/sh", b"sh")
            parts.append(Part("module_shell" if shell else "module", run_tag, proc))
        elif instance_dir.startswith(under_root):
            kind = "app" if b"app.py" in argv else "restart_command"
            parts.append(Part(kind, instance_dir, proc))
    return parts


def _descends(proc: Proc, marked: dict[int, str], procs: dict[int, Proc]) -> bool:
    """Whether ``proc`` runs under one of this installation's ansible processes."""
    seen = set()
    while proc.ppid in procs and proc.ppid not in seen:
        if proc.ppid in marked:
            return True
        seen.add(proc.ppid)
        proc = procs[proc.ppid]
    return False


def kill(part: Part) -> bool:
    """SIGKILL the process if it is still the one that was seen; True if sent."""
    now = snapshot().get(part.proc.pid)
    if now is None or now.started != part.proc.started:
        return False
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(part.proc.pid, signal.SIGKILL)
        return True
    return False
