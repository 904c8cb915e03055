"""Run a plan on an execution node, through ansible-runner's own streaming protocol.

The contract is :func:`orchestrator.ansible.runner.execute`'s; only the place differs. As AWX
does with its execution nodes (DESIGN.md section 7), floy writes no remote protocol:

- **Transmit.** The plan is materialised into a private data dir that carries everything
  the playbook needs from the controller (the playbooks as ``project/``, floy's collection as
  ``collections/``, the inventory, the extra vars as ``env/extravars``, env and settings);
  ``ansible_runner.run(streamer="transmit")`` packs it into one stream (a temporary file).
- **Worker.** That stream is the stdin of ``ssh <node> ansible-runner worker``, which
  unpacks it into ``~/.floy-node/runs/<run_id>`` (``--delete``: removed again at exit),
  runs ansible-playbook and writes every event to its stdout as it happens.
- **Process.** A thread runs ``ansible_runner.run(streamer="process")`` over ssh's stdout;
  it queues each event, and this thread hands them to ``on_event`` in order and polls
  ``should_cancel`` between them, as runner's loop does locally: both callbacks stay on one
  thread, so an :class:`~orchestrator.engine.ingest.EventSink` needs no locking.

Paths valid only on the controller never travel: ``ANSIBLE_CONFIG`` and
``ANSIBLE_COLLECTIONS_PATH`` are made relative to the directory runner starts
ansible-playbook in, the project dir (ansible_runner/config/runner.py, ``prepare_env``), and
``PATH`` is the node's, led by the directory of its ansible-runner (as
:func:`~orchestrator.ansible.plan.runner_env` does here). The node needs ansible-core,
ansible-runner, a POSIX shell and GNU grep (any Linux distribution), nothing from floy.

**Cancel and no orphans.** Every process of the run on the node, the worker included,
carries ``FLOY_RUN_ID`` in its environment, as local ones do. A cancel opens a *second* ssh
session running :data:`STOP_SCRIPT`: it SIGTERMs the run's ansible-playbook (found by its
extra vars file in argv; it forwards the signal to its forks, and floy_release cleans up),
waits up to the grace period for every tagged process to exit, SIGKILLs the rest and
removes the run's directory. A second session rather than a wrapper in its own process
group, because since ansible-core 2.19 each fork runs in a session of its own (DESIGN.md
section 6), so no process group holds the run, and because it works whatever happened to
the first session: the ssh client killed, the connection lost, or the controller gone (a
reaper can call :func:`stop_on_node`). Signalling the worker instead would not do: runner
answers SIGTERM by SIGKILLing ansible-playbook's group at once. The same stop runs after
any run whose stream ended without runner's final status.

An unreachable node (ssh exits 255 before the worker said anything) ends ``error`` with
``unreachable: node <name>: <ssh's reason>`` and no events; connecting is bounded
(``ConnectTimeout``, ``BatchMode``), and a connection that goes silent is dropped by
``ServerAliveInterval``.
"""

from __future__ import annotations

import logging
import os
import posixpath
import queue
import re
import shlex
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import IO, Any

from orchestrator.ansible.plan import RunPlan
from orchestrator.ansible.runner import (
    CANCEL_GRACE_SECONDS,
    CANCEL_POLL_SECONDS,
    RunnerOutcome,
    materialise,
    stdout_tail,
)
from orchestrator.domain.events import RunnerEvent
from orchestrator.errors import ConfigError, ExecutionError
from orchestrator.settings import Settings

log = logging.getLogger(__name__)

#: Where the worker unpacks a run on the node, relative to the login directory.
NODE_RUNS_DIR = ".floy-node/runs"
CONNECT_TIMEOUT_SECONDS = 10
#: ssh drops a connection after this many seconds without an answer from the node, x3.
ALIVE_INTERVAL_SECONDS = 5
#: After the grace period, a cancelled run's stream gets this long before ssh is hung up.
HANGUP_MARGIN_SECONDS = 5.0
#: A run still streaming this long after a stop finished (the stop came before the run's
#: processes existed) is stopped again.
RESTOP_SECONDS = 1.0
#: How long the ssh client gets to exit once its stream has ended.
CLOSE_SECONDS = 10.0
#: runner's own end states; anything else means the stream broke off.
FINAL_STATUSES = frozenset({"successful", "failed", "canceled", "timeout"})
RUNNER_SETTINGS = MappingProxyType(
    {"pexpect_timeout": CANCEL_POLL_SECONDS, "suppress_ansible_output": True})
_COPY_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache")

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")
_DESTINATION = re.compile(r"(?:[A-Za-z0-9._-]+@)?[A-Za-z0-9_:][A-Za-z0-9._:-]*")
_ENV_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

# Runs on the node as `sh -c STOP_SCRIPT floy-stop TAG MARKER GRACE DIR`. TAG and MARKER are
# EREs over NUL-separated /proc entries: every punctuation character is bracketed
# (_ere), so they never match their own text in this script's or grep's argv.
STOP_SCRIPT = r"""
set -u
tag=$1 marker=$2 grace=$3 dir=$4
found() {  # PIDs of live processes with an entry of /proc/PID/$1 matching $2
    for f in $(grep -lszE -- "$2" /proc/[0-9]*/"$1"); do f=${f#/proc/}; echo "${f%%/*}"; done
}
termed=" "
end=$(( $(date +%s) + grace ))
while :; do
    # SIGTERM ansible-playbook: the marked process whose parent is not marked (its forks
    # share its argv and get the signal from it). Once, and again for each newcomer.
    marked=" $(echo $(found cmdline "$marker")) "
    for p in $marked; do
        case $termed in *" $p "*) continue;; esac
        { read -r stat < "/proc/$p/stat"; } 2>/dev/null || continue
        set -- ${stat##*) }
        case $marked in *" $2 "*) continue;; esac
        kill -TERM "$p" 2>/dev/null && termed="$termed$p "
    done
    # until every tagged process (worker, modules cleaning up) is gone, or the grace is up
    [ -z "$(found environ "$tag")" ] && break
    [ "$(date +%s)" -ge "$end" ] && break
    sleep 0.2
done
left=$(found environ "$tag")
[ -n "$left" ] && kill -KILL $left 2>/dev/null
rm -rf -- "$dir"
echo "terminated $(echo $termed | wc -w) killed $(echo $left | wc -w)"
"""


@dataclass(frozen=True)
class Node:
    """An execution node: where ansible-runner runs the playbook, reached over ssh."""

    name: str
    destination: str  # user@host, as ssh takes it
    identity_file: Path
    known_hosts: Path  # the node's host key: checked strictly
    port: int = 22
    runner_command: str = "ansible-runner"
    env: Mapping[str, str] = field(default_factory=dict)  # for the worker on the node

    def __post_init__(self) -> None:
        for key in ("identity_file", "known_hosts"):
            value = getattr(self, key)
            if isinstance(value, str | Path):
                object.__setattr__(self, key, Path(value))
        for key, value, ok, expected in self._checks():
            if not ok:
                raise ConfigError(f"node {self.name!r}: {key}: expected {expected}, "
                                  f"got {value!r}")

    def _checks(self) -> list[tuple[str, object, bool, str]]:
        """(field, value, whether it is valid, what is expected) for every field."""
        def path_ok(value: object) -> bool:
            return isinstance(value, Path) and value.is_absolute()

        checks: list[tuple[str, object, bool, str]] = [
            ("name", self.name, isinstance(self.name, str) and bool(_NAME.fullmatch(self.name)),
             "letters, digits, '.', '_' and '-', starting with a letter or digit"),
            ("destination", self.destination, isinstance(self.destination, str)
             and bool(_DESTINATION.fullmatch(self.destination)), "[user@]host, no spaces"),
            ("port", self.port, type(self.port) is int and 0 < self.port < 65536,
             "a TCP port, 1-65535"),
            ("identity_file", self.identity_file, path_ok(self.identity_file),
             "an absolute path"),
            ("known_hosts", self.known_hosts, path_ok(self.known_hosts), "an absolute path"),
            ("runner_command", self.runner_command, _words(self.runner_command) is not None,
             "a command line"),
            ("env", self.env, isinstance(self.env, Mapping), "a mapping"),
        ]
        for key, value in (self.env.items() if isinstance(self.env, Mapping) else ()):
            checks.append((f"env.{key}", value, isinstance(key, str)
                           and bool(_ENV_KEY.fullmatch(key)) and key != "FLOY_RUN_ID"
                           and isinstance(value, str) and "\0" not in value
                           and "\n" not in value,
                           "a variable name other than FLOY_RUN_ID with a one-line value"))
        return checks

    def check_files(self) -> None:
        """ConfigError naming the field unless the key and known_hosts files exist."""
        for key in ("identity_file", "known_hosts"):
            if not getattr(self, key).is_file():
                raise ConfigError(f"node {self.name!r}: {key}: {getattr(self, key)} is not "
                                  "a file")


def _words(command: object) -> list[str] | None:
    try:
        words = shlex.split(command) if isinstance(command, str) and "\n" not in command else []
    except ValueError:
        return None
    return words or None


def node_dir(run_id: str) -> str:
    """The run's private data dir on the node, relative to the login directory."""
    return posixpath.join(NODE_RUNS_DIR, run_id)


def ssh_command(node: Node, remote: str) -> list[str]:
    """ssh running ``remote`` on the node: keys only, the node's known_hosts only, bounded."""
    options = {
        "BatchMode": "yes",
        "StrictHostKeyChecking": "yes",
        "UserKnownHostsFile": str(node.known_hosts),
        "GlobalKnownHostsFile": "/dev/null",
        "IdentitiesOnly": "yes",
        "ConnectTimeout": str(CONNECT_TIMEOUT_SECONDS),
        "ServerAliveInterval": str(ALIVE_INTERVAL_SECONDS),
        "ServerAliveCountMax": "3",
        "ControlMaster": "no",
        "ControlPath": "none",
        "LogLevel": "ERROR",
    }
    argv = ["ssh", "-T", "-p", str(node.port), "-i", str(node.identity_file)]
    for key, value in options.items():
        argv += ["-o", f"{key}={value}"]
    return [*argv, "--", node.destination, remote]


def worker_command(node: Node, run_id: str) -> str:
    """The node's shell line starting ``ansible-runner worker`` for ``run_id``, tagged."""
    words = _words(node.runner_command) or ["ansible-runner"]
    assignments = []
    if posixpath.isabs(words[0]):  # its ansible-playbook is beside it, as in a virtualenv
        assignments.append(f'PATH={shlex.quote(posixpath.dirname(words[0]))}:"$PATH"')
    assignments += [f"{key}={shlex.quote(value)}" for key, value in node.env.items()]
    assignments.append(f"FLOY_RUN_ID={shlex.quote(run_id)}")
    worker = [*words, "worker", "--private-data-dir", node_dir(run_id), "--delete"]
    return " ".join(["exec", "env", *assignments, shlex.join(worker)])


def _ere(text: str) -> str:
    """An ERE matching ``text`` literally, punctuation bracketed (see STOP_SCRIPT)."""
    if not re.fullmatch(r"[A-Za-z0-9._+/=@:-]+", text):
        raise ExecutionError(f"cannot match {text!r} on the node")
    return "".join(c if c.isalnum() else f"[{c}]" for c in text)


def stop_command(run_id: str, grace: float) -> str:
    """The node's shell line stopping every process of ``run_id`` (STOP_SCRIPT)."""
    tag = f"^{_ere('FLOY_RUN_ID=' + run_id)}$"
    marker = f"{_ere('/' + node_dir(run_id) + '/env/extravars')}$"
    seconds = str(max(1, round(grace)))
    return shlex.join(["sh", "-c", STOP_SCRIPT, "floy-stop", tag, marker, seconds,
                       node_dir(run_id)])


def node_envvars(plan: RunPlan) -> dict[str, str]:
    """``plan.envvars`` made valid on the node (see the module docstring)."""
    env = {key: value for key, value in plan.envvars.items() if key != "PATH"}
    env["ANSIBLE_CONFIG"] = "ansible.cfg"
    env["ANSIBLE_COLLECTIONS_PATH"] = os.pathsep.join(
        ["../collections", "~/.ansible/collections", "/usr/share/ansible/collections"])
    return env


def materialise_for_node(plan: RunPlan) -> Path:
    """:func:`~orchestrator.ansible.runner.materialise`, plus what the node lacks: the
    playbooks as ``project/`` (its ``collections`` symlink still points at ``../collections``)
    and floy's collection from beside the playbooks (``plan.collections_path``); the extra
    vars become ``env/extravars``, which the worker passes as ``-e @<its path>``."""
    inventory_dir, vars_file = materialise(plan)
    pdd = plan.private_data_dir
    playbooks = plan.playbook.parent
    shutil.copytree(playbooks, pdd / "project", symlinks=True, dirs_exist_ok=True,
                    ignore=_COPY_IGNORE)
    collections = playbooks.parent / "collections"
    if collections.is_dir():
        shutil.copytree(collections, pdd / "collections", ignore=_COPY_IGNORE)
    (pdd / "env").mkdir(mode=0o700)
    os.replace(vars_file, pdd / "env" / "extravars")
    return inventory_dir


def _never() -> bool:
    return False


class _Link:
    """The ssh session running the worker, and the thread running runner's Processor over
    its output. Only :meth:`next` hands out what the thread read, on the caller's thread."""

    def __init__(self, proc: subprocess.Popen[bytes], stderr: IO[bytes], pdd: Path,
                 ident: str) -> None:
        self.proc = proc
        self.stderr = stderr
        self.items: queue.Queue[tuple[str, Any]] = queue.Queue()
        self.statuses: list[dict[str, Any]] = []
        self.failure = ""
        self.ended = False
        self.ssh_error = ""
        self.thread = threading.Thread(target=self._pump, args=(pdd, ident), daemon=True,
                                       name=f"floy-process-{ident[:8]}")
        self.thread.start()

    @classmethod
    def open(cls, node: Node, plan: RunPlan, inventory_dir: Path, ident: str) -> _Link:
        import ansible_runner  # deferred, as in runner.py

        pdd = plan.private_data_dir
        stderr = tempfile.TemporaryFile(dir=pdd.parent)  # noqa: SIM115 (closed by close())
        with tempfile.TemporaryFile(dir=pdd.parent) as job:  # the runs dir is owner-only
            try:
                ansible_runner.run(
                    streamer="transmit", _output=job, private_data_dir=str(pdd),
                    playbook=str(pdd / "project" / plan.playbook.name),
                    inventory=str(inventory_dir), forks=plan.forks, ident=ident,
                    envvars=node_envvars(plan), settings=dict(RUNNER_SETTINGS), quiet=True,
                    cancel_callback=_never,  # without one, runner takes SIGINT/SIGTERM over
                )
                job.seek(0)
                proc = subprocess.Popen(
                    ssh_command(node, worker_command(node, plan.run_id)),
                    stdin=job, stdout=subprocess.PIPE, stderr=stderr,
                    start_new_session=True,  # the caller's Ctrl-C is for the caller to handle
                    env={**os.environ, "FLOY_RUN_ID": plan.run_id},  # a process of the run
                )
            except Exception as exc:
                stderr.close()
                raise ExecutionError(f"could not start the run on node {node.name}: "
                                     f"{exc}") from exc
        return cls(proc, stderr, pdd, ident)

    def _pump(self, pdd: Path, ident: str) -> None:
        import ansible_runner

        def on_event(event: dict[str, Any]) -> bool:
            self.items.put(("event", event))
            return True  # runner keeps it under artifacts/<ident>/job_events

        def on_status(data: dict[str, Any], runner_config: object) -> None:
            self.items.put(("status", data))

        try:
            ansible_runner.run(streamer="process", _input=self.proc.stdout,
                               private_data_dir=str(pdd), ident=ident, quiet=True,
                               event_handler=on_event, status_handler=on_status,
                               cancel_callback=_never)
        except Exception as exc:  # a stream cut off inside the artifacts, say
            self.items.put(("failure", f"reading the worker's stream failed: {exc}"))
        finally:
            self.items.put(("end", None))

    def next(self, timeout: float) -> RunnerEvent | None:
        """The next event, or None when there was none within ``timeout`` (or it was a
        status); :attr:`ended` once the stream has ended."""
        try:
            kind, item = self.items.get(timeout=timeout)
        except queue.Empty:
            return None
        if kind == "event":
            return item  # type: ignore[no-any-return]
        if kind == "status":
            self.statuses.append(item)
        elif kind == "failure":
            self.failure = item
        else:
            self.ended = True
        return None

    def hangup(self) -> None:
        if self.proc.poll() is None:
            log.warning("hanging up on the worker (pid %d)", self.proc.pid)
            self.proc.kill()

    def close(self) -> None:
        """Wait (bounded) for ssh and the thread; keep what ssh said on stderr."""
        try:
            self.proc.wait(timeout=CLOSE_SECONDS)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.thread.join(timeout=CLOSE_SECONDS)
        self.stderr.seek(0)
        self.ssh_error = self.stderr.read().decode(errors="replace").strip()
        self.stderr.close()

    @property
    def final(self) -> str | None:
        """runner's end state as the worker reported it, if the stream got that far."""
        ends = [s.get("status") for s in self.statuses if s.get("status") in FINAL_STATUSES]
        return str(ends[-1]) if ends else None

    @property
    def unreachable(self) -> bool:
        """ssh never got the worker to say anything: it could not connect or log in."""
        heard = any(s.get("status") != "error" for s in self.statuses)
        return self.proc.returncode == 255 and not heard

    def explanation(self) -> str:
        said = [str(s["job_explanation"]) for s in self.statuses if s.get("job_explanation")]
        lines = [self.failure or (said[-1] if said else "")]
        lines.append(f"ssh exited {self.proc.returncode}")
        lines += self.ssh_error.splitlines()[-5:]
        return "; ".join(line for line in lines if line)


class _Stopper:
    """Cancel on the node: :data:`STOP_SCRIPT` over a second ssh session, started when
    ``should_cancel`` says so, repeated while the run goes on, hung up after the grace."""

    def __init__(self, node: Node, run_id: str, should_cancel: Callable[[], bool],
                 grace: float) -> None:
        self.node = node
        self.run_id = run_id
        self.should_cancel = should_cancel
        self.grace = grace
        self.requested_at: float | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self.last_ended = 0.0

    @property
    def cancelled(self) -> bool:
        return self.requested_at is not None

    def poll(self, link: _Link) -> None:
        """Called between events and every poll interval; never raises."""
        try:
            if self.requested_at is None:
                if self.should_cancel():
                    self.requested_at = time.monotonic()
                    log.info("cancel: stopping run %s on node %s", self.run_id, self.node.name)
                    self._start(self.grace)
                return
            now = time.monotonic()
            if self.proc is not None and self.proc.poll() is not None:
                self._wait()
            if self.proc is None and now - self.last_ended > RESTOP_SECONDS:
                self._start(self._left())
            if now - self.requested_at > self.grace + HANGUP_MARGIN_SECONDS:
                link.hangup()
        except Exception:
            log.exception("cancel check failed")

    def sweep(self) -> None:
        """After the stream ended: one last stop, so that nothing of the run is left."""
        if self.proc is not None:
            self._wait()
        self._start(self._left())
        self._wait()

    def _left(self) -> float:
        if self.requested_at is None:
            return self.grace
        return max(1.0, self.grace - (time.monotonic() - self.requested_at))

    def _start(self, grace: float) -> None:
        command = ssh_command(self.node, stop_command(self.run_id, grace))
        self.proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, start_new_session=True)

    def _wait(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        try:
            said, _ = proc.communicate(timeout=self.grace + CONNECT_TIMEOUT_SECONDS + 10)
        except subprocess.TimeoutExpired:
            proc.kill()
            said, _ = proc.communicate()
        self.last_ended = time.monotonic()
        text = said.decode(errors="replace").strip()
        if proc.returncode == 0:
            log.info("node %s, run %s: %s", self.node.name, self.run_id, text)
        else:
            log.warning("could not stop run %s on node %s (exit %s): %s", self.run_id,
                        self.node.name, proc.returncode, text)


def execute_on_node(
    node: Node,
    plan: RunPlan,
    on_event: Callable[[RunnerEvent], None],
    should_cancel: Callable[[], bool],
) -> RunnerOutcome:
    """Run the plan on ``node`` to its end; ``on_event`` sees every event, in order.
    ``functools.partial(execute_on_node, node)`` is a :data:`runner.Execute`."""
    node.check_files()
    inventory_dir = materialise_for_node(plan)
    ident = uuid.uuid4().hex
    started = time.monotonic()
    link = _Link.open(node, plan, inventory_dir, ident)
    stopper = _Stopper(node, plan.run_id, should_cancel, CANCEL_GRACE_SECONDS)
    events = 0
    try:
        while not link.ended:
            event = link.next(CANCEL_POLL_SECONDS)
            if event is not None:
                events += 1
                try:
                    on_event(event)
                except Exception:  # never raise into the stream's reader
                    log.exception("event handler failed on %s", event.get("event"))
            stopper.poll(link)
    finally:
        if not link.ended:  # only on the way out of an exception
            link.hangup()
        link.close()
    if link.unreachable:
        reason = (link.ssh_error.splitlines() or ["ssh exited 255"])[-1]
        return RunnerOutcome(status="error", rc=None,
                             stdout_tail=f"{UNREACHABLE_NODE}{node.name}: {reason}",
                             events=events, seconds=time.monotonic() - started)
    if stopper.cancelled or link.final is None:
        stopper.sweep()
    status = "canceled" if stopper.cancelled else (link.final or "error")
    tail = stdout_tail(plan.private_data_dir)
    if link.final is None:
        tail = "\n".join(t for t in (f"node {node.name}: {link.explanation()}", tail) if t)
    return RunnerOutcome(
        status=status,
        rc=_read_rc(plan.private_data_dir / "artifacts" / ident / "rc"),
        stdout_tail=tail,
        events=events,
        seconds=time.monotonic() - started,
        cancelled=stopper.cancelled,
    )


def stop_on_node(node: Node, run_id: str, grace: float = CANCEL_GRACE_SECONDS) -> None:
    """Stop every process of ``run_id`` on ``node`` (SIGTERM, ``grace``, SIGKILL) and remove
    its directory there: for a reaper whose worker, and so whose stream, is gone."""
    stopper = _Stopper(node, run_id, _never, grace)
    stopper.sweep()


def _read_rc(path: Path) -> int | None:
    """ansible-playbook's exit status as the worker recorded it (the Processor keeps none)."""
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


#: The start of a node-unreachable outcome's ``stdout_tail`` (and of its instances' errors).
UNREACHABLE_NODE = "unreachable: node "


def configured_node(settings: Settings, name: str) -> Node:
    """The execution node ``name`` of the settings' ``nodes:``; ConfigError naming the node
    and the key if it is not configured or its definition is wrong."""
    entry = settings.nodes.get(name)
    if entry is None:
        known = ", ".join(sorted(settings.nodes)) or "none"
        raise ConfigError(f"execution node {name!r} is not configured under nodes: in "
                          f"config.yml (configured: {known})")
    return Node(
        name=name,
        destination=entry["destination"],
        identity_file=Path(entry["identity_file"]),
        known_hosts=Path(entry["known_hosts"]),
        port=entry.get("port", 22),
        runner_command=entry.get("runner_command", "ansible-runner"),
    )
