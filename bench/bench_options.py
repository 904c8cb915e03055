"""Ansible connection and execution options over SSH: ``bench_options.py``.

A real sshd on 127.0.0.1 (``tests/integration/sshd.py``) and N local instances of ``hello``
reached only through it, set up as ``tests/integration/test_ssh.py`` does it
(``ansible_connection: ssh``, the sshd's port, key authentication, ``UserKnownHostsFile`` +
``StrictHostKeyChecking=yes``), except that every instance is reached at an address of its
own (``ansible_host`` 127.0.0.2, 127.0.0.3, ... in ``host_vars``; the sshd listens on each
and ``known_hosts`` pins its key for each), as the hosts of a real fleet are: sharing one
address, port and user, all instances would share one ControlPersist master, and mitogen
would carry them all over one connection and one remote interpreter.

Each run is a bare ``ansible-playbook`` of ``playbooks/deploy.yml`` over the inventory and
extra vars a floy run bakes (``_fleet.Fleet.bare_command``), all instances in one batch
(serial = N), and deploys a new version (1.0.1, 1.0.2, ...) so that every run downloads,
unpacks, switches, restarts and prunes. The variants, alternated (order rotated every
repetition), each changing one thing from floy's default (pipelining on from
``playbooks/ansible.cfg``, ControlPersist 60 s, forks = N, strategy linear):

- ``no-pipelining``: ``ANSIBLE_PIPELINING=0``;
- ``no-controlpersist``: ``ANSIBLE_SSH_ARGS='-C -o ControlMaster=no'`` (the default is
  ``-C -o ControlMaster=auto -o ControlPersist=60s``);
- ``forks-N/2``, ``forks-1``;
- ``free``: ``ANSIBLE_STRATEGY=free``;
- ``mitogen``: strategy ``mitogen_linear`` of the ``mitogen`` package, with the
  ``ansible-playbook`` of a scratch venv holding ansible-core + mitogen (``--mitogen-venv``;
  never installed into the project's venv). If it fails, its error is reported;
- ``local``: ``ansible_connection=local`` for reference (no SSH at all).

Every run is checked: every instance's ``current`` points at the new version and its app
answers it. Every run starts without a master connection (the previous run's masters are
closed), as a deployment minutes after the last one would.

CPU figures: **controller** = ``RUSAGE_CHILDREN`` of ansible-playbook's tree plus the CPU of
the ControlPersist masters (daemonised, nobody waits for them, so their CPU is read from
``/proc`` before they are closed); **remote** = the CPU of the sshd side (sessions, modules,
the restart commands), the ``cutime + cstime`` delta of the sshd listener once the run's
connections have ended. The hello apps themselves are in neither.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _fleet import Fleet, start_fleet, version_of
from _measure import REPO, Measured, banner, median, ratio, run_measured, venv_path_env

sys.path.insert(0, str(REPO))

from tests.integration.sshd import Sshd, cmdline, descendants, tcp_clients
from tests.integration.test_ssh import ssh_args, write_vars

CLK_TCK = os.sysconf("SC_CLK_TCK")
DEFAULT = "default"


@dataclass
class Variant:
    name: str
    forks: int
    env: dict[str, str] = field(default_factory=dict)
    extra_args: list[str] = field(default_factory=list)
    mitogen: bool = False


@dataclass
class Outcome:
    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    remote: list[float] = field(default_factory=list)
    error: str = ""
    notes: list[str] = field(default_factory=list)


def variants(n: int, mitogen_venv: Path | None) -> list[Variant]:
    half = max(1, n // 2)
    found = [
        Variant(DEFAULT, n),
        Variant("no-pipelining", n, {"ANSIBLE_PIPELINING": "0"}),
        Variant("no-controlpersist", n, {"ANSIBLE_SSH_ARGS": "-C -o ControlMaster=no"}),
        Variant(f"forks-{half}", half),
        Variant("forks-1", 1),
        Variant("free", n, {"ANSIBLE_STRATEGY": "free"}),
    ]
    if mitogen_venv is not None:
        found.append(Variant("mitogen", n, mitogen=True))
    found.append(Variant("local", n, extra_args=["-e", "ansible_connection=local"]))
    return found


def mitogen_env(venv: Path) -> dict[str, str]:
    """ansible-playbook of the scratch venv first on PATH, mitogen's strategy plugins."""
    site = next((venv / "lib").glob("python3*/site-packages"))
    return {"PATH": os.pathsep.join([str(venv / "bin"), os.environ.get("PATH", "")]),
            "ANSIBLE_STRATEGY_PLUGINS": str(site / "ansible_mitogen/plugins/strategy"),
            "ANSIBLE_STRATEGY": "mitogen_linear"}


def proc_cpu(pid: int, children: bool = False) -> float:
    """CPU seconds of ``pid`` from /proc (its waited-for children's with ``children``)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    utime, stime, cutime, cstime = (int(f) for f in fields[11:15])
    return ((cutime + cstime) if children else (utime + stime)) / CLK_TCK


def close_masters(server: FleetSshd, control_dirs: list[Path]) -> float:
    """Close every ControlPersist master of the fleet; returns their CPU seconds."""
    cpu = sum(proc_cpu(pid) for pid in tcp_clients(server.port))
    for directory in control_dirs:
        for sock in directory.iterdir():
            subprocess.run(["ssh", "-o", f"ControlPath={sock}", "-O", "exit", "x"],
                           capture_output=True, timeout=10, check=False)
    return cpu


def wait_sessions_gone(server: FleetSshd, timeout: float = 10.0) -> None:
    """Wait until the sshd listener has no connection processes left (so their CPU has
    been collected into the listener's ``cutime``)."""
    assert server.proc is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(comm.startswith("sshd") for _, comm in descendants(server.proc.pid)):
            return
        time.sleep(0.05)


class FleetSshd(Sshd):
    """:class:`Sshd` listening on several loopback addresses, all pinned in known_hosts."""

    def __init__(self, workdir: Path, hosts: list[str]) -> None:
        self.hosts = hosts
        super().__init__(workdir)
        self.known_hosts.write_text("".join(f"[{host}]:{self.port} {self.host_public_key}\n"
                                            for host in ["127.0.0.1", *hosts]))

    def _config_text(self) -> str:
        listen = "".join(f"\nListenAddress {host}" for host in self.hosts)
        return super()._config_text().replace("ListenAddress 127.0.0.1",
                                              "ListenAddress 127.0.0.1" + listen)

    def session_tag(self) -> bytes:
        """Sessions on any of the addresses end their ``SSH_CONNECTION`` with the port."""
        return f" {self.port}".encode()


class SessionSampler:
    """Samples mitogen's remote interpreters (``python(mitogen:...)`` run by sshd sessions)
    during a run: their thread count, and whether they catch SIGTERM. A plain mitogen
    interpreter does not; floy_release installs a SIGTERM handler and starts a watchdog
    thread on its stdout, which mitogen runs inside its long-lived interpreter."""

    def __init__(self, server: FleetSshd) -> None:
        self.server = server
        self.stop = threading.Event()
        self.threads: dict[int, int] = {}  # pid -> max threads seen
        self.sigterm_caught: set[int] = set()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        while not self.stop.is_set():
            for pid in self.server.session_commands():
                if "(mitogen:" not in cmdline(pid):
                    continue
                with contextlib.suppress(OSError, ValueError, KeyError):
                    status = Path(f"/proc/{pid}/status").read_text()
                    values = dict(line.split(":", 1) for line in status.splitlines())
                    self.threads[pid] = max(self.threads.get(pid, 0), int(values["Threads"]))
                    if int(values["SigCgt"], 16) & (1 << 14):  # SIGTERM (15) caught
                        self.sigterm_caught.add(pid)
            time.sleep(0.05)

    def report(self) -> str:
        return (f"mitogen interpreters {len(self.threads)}, max threads "
                f"{max(self.threads.values(), default=0)}, catching SIGTERM "
                f"{len(self.sigterm_caught)}")

    def __enter__(self) -> SessionSampler:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(5)


@contextlib.contextmanager
def ssh_fleet(n: int) -> Iterator[tuple[Fleet, FleetSshd, list[Path]]]:
    """A fleet of ``n`` instances reached through a real sshd, as in test_ssh.py."""
    with start_fleet(f"options-{n}", n) as fleet:
        hosts = [f"127.0.0.{k + 2}" for k in range(n)]
        server = FleetSshd(fleet.tmp / "sshd", hosts)
        server.start()
        control_dirs = [Path(tempfile.mkdtemp(prefix="floy-cp-")) for _ in fleet.ids]
        inventory = fleet.env.settings.inventory_dir
        write_vars(inventory / "group_vars/all.yml",
                   server.operator_vars(fleet.env.root, ssh_args(server.known_hosts)))
        for instance_id, host, directory in zip(fleet.ids, hosts, control_dirs, strict=True):
            write_vars(inventory / f"host_vars/{instance_id}.yml",
                       {"ansible_host": host,
                        "ansible_control_path_dir": str(directory)})
        try:
            yield fleet, server, control_dirs
        finally:
            close_masters(server, control_dirs)
            server.kill_session_commands()
            server.stop()
            for directory in control_dirs:
                subprocess.run(["rm", "-rf", str(directory)], check=False)


def deploy(fleet: Fleet, server: FleetSshd, control_dirs: list[Path], variant: Variant,
           version: str, mitogen_venv: Path | None) -> tuple[Measured, float, str]:
    """One deployment of ``version`` by ``variant``: (measure, remote CPU, notes);
    raises RuntimeError with the output's tail when it failed."""
    n = len(fleet.ids)
    cmd, envvars = fleet.bare_command(version, str(n), variant.forks)
    cmd = cmd[:-1] + variant.extra_args + cmd[-1:]
    envvars.update(variant.env)
    if variant.mitogen:
        assert mitogen_venv is not None
        envvars.update(mitogen_env(mitogen_venv))
        cmd[0] = str(mitogen_venv / "bin" / "ansible-playbook")
    assert server.proc is not None
    remote0 = proc_cpu(server.proc.pid, children=True)
    sampler = SessionSampler(server)
    with sampler if variant.mitogen else contextlib.nullcontext():
        result = run_measured(cmd, venv_path_env(envvars))
    masters = close_masters(server, control_dirs)
    wait_sessions_gone(server)
    remote = proc_cpu(server.proc.pid, children=True) - remote0
    measured = Measured(result.rc, result.wall, result.cpu + masters, result.stdout)
    tail = "\n".join(result.stdout.splitlines()[-25:])
    if result.rc != 0:
        raise RuntimeError(f"ansible-playbook failed (rc={result.rc}):\n{tail}")
    switched = fleet.on_version(version)
    answering = sum(1 for i in fleet.ids if fleet.env.answers(i) == version)
    if switched != n or answering != n:
        raise RuntimeError(f"{switched}/{n} switched to {version}, {answering}/{n} answer it:"
                           f"\n{tail}")
    notes = ""
    if variant.mitogen:
        notes = sampler.report()
    return measured, remote, notes


def measure(n: int, reps: int, mitogen_venv: Path | None) -> dict[str, Outcome]:
    todo = variants(n, mitogen_venv)
    results = {v.name: Outcome() for v in todo}
    with ssh_fleet(n) as (fleet, server, control_dirs):
        first, remote, _ = deploy(fleet, server, control_dirs, todo[0], version_of(0), None)
        print(f"  first install (untimed) 1.0.0 over SSH: wall {first.wall:.2f} s")
        step = 1
        for rep in range(reps):
            shift = rep % len(todo)
            order = todo[shift:] + todo[:shift]
            if rep % 2:
                order.reverse()
            for variant in order:
                outcome = results[variant.name]
                if outcome.error:
                    continue
                version = version_of(step)
                step += 1
                try:
                    m, remote, notes = deploy(fleet, server, control_dirs, variant, version,
                                              mitogen_venv)
                except RuntimeError as exc:
                    outcome.error = str(exc)
                    print(f"  N={n} rep {rep + 1} {variant.name:<18} {version}: FAILED\n"
                          + "\n".join("      " + line for line in str(exc).splitlines()))
                    continue
                outcome.wall.append(m.wall)
                outcome.cpu.append(m.cpu)
                outcome.remote.append(remote)
                if notes:
                    outcome.notes.append(notes)
                print(f"  N={n} rep {rep + 1} {variant.name:<18} {version}: wall {m.wall:6.2f} s"
                      f"  controller cpu {m.cpu:6.2f} s  remote cpu {remote:6.2f} s"
                      + (f"  [{notes}]" if notes else ""))
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--instances", type=int, default=8, help="fleet size N (one batch)")
    parser.add_argument("--reps", type=int, default=3, help="repetitions per variant")
    parser.add_argument("--mitogen-venv", default="/tmp/mitovenv",
                        help="a venv with ansible-core and mitogen ('' to skip mitogen)")
    parser.add_argument("--quick", action="store_true", help="4 instances, 2 repetitions")
    args = parser.parse_args()
    n, reps = (4, 2) if args.quick else (args.instances, args.reps)
    venv = Path(args.mitogen_venv) if args.mitogen_venv else None
    if venv is not None and not (venv / "bin" / "ansible-playbook").is_file():
        print(f"mitogen: not measured, {venv}/bin/ansible-playbook is missing (create it: "
              f"python3 -m venv {venv} && {venv}/bin/pip install ansible-core==<as .venv> "
              "ansible-runner mitogen)")
        venv = None
    banner(f"options: pipelining, ControlPersist, forks, strategy, mitogen over SSH, N={n}")
    if venv is not None:
        version = subprocess.run([str(venv / "bin" / "python"), "-c",
                                  "import ansible, importlib.metadata as m; print("
                                  "ansible.__version__, m.version('mitogen'))"],
                                 capture_output=True, text=True, check=False).stdout.split()
        print(f"  mitogen venv {venv}: ansible-core {' / mitogen '.join(version)}")
    results = measure(n, reps, venv)
    base = results[DEFAULT]
    bw, bc, br = median(base.wall), median(base.cpu), median(base.remote)
    print(f"{'variant':<18} {'wall':>7} {'ratio':>6} {'ctl cpu':>8} {'ratio':>6} "
          f"{'remote cpu':>10} {'ratio':>6}  (medians of {reps}, seconds; ratio to '{DEFAULT}')")
    helps, hurts, same = [], [], []
    for name, o in results.items():
        if o.error:
            first = o.error.splitlines()
            reason = next((line for line in first if "ERROR" in line or "FAILED" in line
                           or "fatal" in line), first[0])
            print(f"{name:<18} FAILED: {reason.strip()[:300]}")
            hurts.append(f"{name} fails")
            continue
        w, c, r = median(o.wall), median(o.cpu), median(o.remote)
        print(f"{name:<18} {w:>7.2f} {ratio(w, bw):>6.2f} {c:>8.2f} {ratio(c, bc):>6.2f} "
              f"{r:>10.2f} {ratio(r, br):>6.2f}")
        if name in (DEFAULT, "local"):
            continue
        rw, rc, rr = ratio(w, bw), ratio(c, bc), ratio(r, br)
        figures = f"{name} (wall x{rw:.2f}, cpu x{rc:.2f}, remote x{rr:.2f})"
        if max(rw, rc, rr) > 1.1:
            hurts.append(figures)
        elif min(rw, rc, rr) < 0.9:
            helps.append(figures)
        else:
            same.append(figures)
    for name, o in results.items():
        for note in sorted(set(o.notes)):
            print(f"  {name}: {note}")
    print(f"summary: N={n} over SSH, vs floy's default (pipelining, ControlPersist, forks=N, "
          f"linear: wall {bw:.2f} s, cpu {bc:.2f} s, remote {br:.2f} s): "
          f"helps (>10% less of one, none >10% more): "
          f"{', '.join(helps) or 'none'}; worse (>10% more of one): "
          f"{', '.join(hurts) or 'none'}; within 10%: {', '.join(same) or 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
