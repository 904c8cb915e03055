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
session running :data:`~orchestrator.ansible.nodes.STOP_SCRIPT`: it SIGTERMs the run's
ansible-playbook (found by its extra vars file in argv; it forwards the signal to its forks,
and floy_release cleans up), waits up to the grace period for every tagged process to exit,
SIGKILLs the rest and removes the run's directory. A second session rather than a wrapper in
its own process group, because since ansible-core 2.19 each fork runs in a session of its
own (DESIGN.md section 6), so no process group holds the run, and because it works whatever
happened to the first session: the ssh client killed, the connection lost, or the controller
gone (a reaper can call :func:`stop_on_node`). Signalling the worker instead would not do:
runner answers SIGTERM by SIGKILLing ansible-playbook's group at once. The same stop runs
after any run whose stream ended without runner's final status.

An unreachable node (ssh exits 255 before the worker said anything) ends ``error`` with
``unreachable: node <name>: <ssh's reason>`` and no events; connecting is bounded
(``ConnectTimeout``, ``BatchMode``), and a connection that goes silent is dropped by
``ServerAliveInterval``.
"""

from __future__ import annotations

import logging
import os
import queue
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from types import MappingProxyType
from typing import IO, Any

from orchestrator.ansible.nodes import (
    CONNECT_TIMEOUT_SECONDS,
    NODE_RUNS_DIR,
    Node,
    configured_node,
    ssh_command,
    stop_command,
    worker_command,
)
from orchestrator.ansible.plan import RunPlan
from orchestrator.ansible.runner import (
    CANCEL_GRACE_SECONDS,
    CANCEL_POLL_SECONDS,
    RunnerOutcome,
    materialise,
    stdout_tail,
)
from orchestrator.domain.events import RunnerEvent
from orchestrator.errors import ExecutionError

log = logging.getLogger(__name__)

__all__ = ["NODE_RUNS_DIR", "UNREACHABLE_NODE", "Node", "configured_node", "execute_on_node",
           "stop_on_node"]

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
    config = pdd / "project" / "ansible.cfg"
    if config.is_symlink():  # floy's links to the repository root's: ship the file itself
        config.unlink()
        shutil.copyfile(playbooks / "ansible.cfg", config)
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
    """Cancel on the node: :data:`~orchestrator.ansible.nodes.STOP_SCRIPT` over a second ssh
    session, started when ``should_cancel`` says so, repeated while the run goes on, hung up
    after the grace."""

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
