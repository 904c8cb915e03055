"""Execution nodes: their definitions (``nodes:`` in config.yml), checked field by field,
and the ssh command lines floy runs on them: the ``ansible-runner worker`` of a run and the
stop of a run's processes (:data:`STOP_SCRIPT`). :mod:`orchestrator.ansible.remote` streams
runs through them."""

from __future__ import annotations

import posixpath
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from orchestrator.errors import ConfigError, ExecutionError
from orchestrator.settings import Settings

#: Where the worker unpacks a run on the node, relative to the login directory.
NODE_RUNS_DIR = ".floy-node/runs"
CONNECT_TIMEOUT_SECONDS = 10
#: ssh drops a connection after this many seconds without an answer from the node, x3.
ALIVE_INTERVAL_SECONDS = 5

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
