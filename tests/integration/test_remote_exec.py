"""Execution nodes for real: a plan streamed by ansible-runner (transmit, worker, process)
over a real sshd on 127.0.0.1 into the project's own ``ansible-runner worker``, running the
real playbooks against local instances, its events folded by the real EventSink.

The node is this machine reached through sshd, so what happens there (the instances, the
run's processes, its directory under ``~/.floy-node/runs``) can be checked directly.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import pwd
import signal
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from orchestrator.ansible import plan as planning
from orchestrator.ansible import runner
from orchestrator.ansible.plan import RunPlan
from orchestrator.ansible.probe import probe_instances
from orchestrator.ansible.remote import NODE_RUNS_DIR, Node, execute_on_node
from orchestrator.domain.events import FoldState, RunnerEvent
from orchestrator.domain.placement import NODE_LABEL
from orchestrator.domain.records import RunInstanceRecord
from orchestrator.engine.executors import InlineExecutor
from orchestrator.engine.ingest import EventSink
from orchestrator.errors import ConfigError, ValidationError
from orchestrator.models import DeployParams, InstanceSpec, Status
from orchestrator.settings import REPO_ROOT
from sample.packages import free_port
from tests.helpers.floyenv import FloyEnv
from tests.helpers.wait import wait_until
from tests.integration.sshd import Sshd, cmdline, live_pids, sshd

__all__ = ["sshd"]  # the session's sshd fixture, imported for pytest

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

RUNNER = Path(sys.executable).parent / "ansible-runner"  # the project's own, on the node
HOME = Path(pwd.getpwuid(os.getuid()).pw_dir)  # where sshd logs the node's user in


@pytest.fixture
def node(sshd: Sshd) -> Node:
    """The session's sshd as an execution node running the project's ansible-runner."""
    return Node(name="node-1", destination=f"{sshd.user}@127.0.0.1",
                identity_file=sshd.client_key, known_hosts=sshd.known_hosts, port=sshd.port,
                runner_command=str(RUNNER))


class Held(InlineExecutor):
    """Records runs and never starts them: the test executes the plan itself."""

    def submit(self, run_id: str) -> None:
        pass


def unique(prefix: str) -> str:
    """A run ID no other test on this machine uses (the /proc walks below are global)."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def recorded_plan(env: FloyEnv, package: str, ids: list[str], run_id: str,
                  **extra: object) -> RunPlan:
    """Record a deployment and bake its plan as the worker does (orchestrator/engine/worker.py)."""
    url, sha = env.packages[package]
    held = env.rebuilt(executor=Held(env.settings, env.store))
    held.service.execute_deployment(DeployParams(
        service="hello", version=package.split("-")[0], instances=tuple(ids), package_url=url,
        deploy_id=run_id, package_sha256=sha, **extra))  # type: ignore[arg-type]
    loaded = env.store.runs.with_members(run_id)
    assert loaded is not None
    run, members = loaded
    instances = env.store.instances.get(m.instance_id for m in members)
    ordered = [instances[m.instance_id] for m in members]
    return planning.bake(env.settings, run, ordered, planning.deploy_extravars(run, env.settings))


def sink_for(env: FloyEnv, plan: RunPlan) -> EventSink:
    """The worker's event sink for a recorded run (no lease: owner None)."""
    run = env.store.runs.get(plan.run_id)
    assert run is not None
    return EventSink(env.store.runs, plan.run_id, None, FoldState.start(
        list(plan.instance_ids), package_url=run.request.package_url,
        sha256=run.request.package_sha256))


def members(env: FloyEnv, run_id: str) -> list[RunInstanceRecord]:
    loaded = env.store.runs.with_members(run_id)
    assert loaded is not None
    return list(loaded[1])


def tagged(run_id: str) -> list[str]:
    """Live processes whose environment carries FLOY_RUN_ID=<run_id>, on either side."""
    tag = f"FLOY_RUN_ID={run_id}".encode()
    found = []
    for pid, _, comm in live_pids():
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if tag in environ:
            found.append(f"{pid} {comm}: {cmdline(pid)[:160]}")
    return found


def hanging(env: FloyEnv, instance_id: str) -> list[int]:
    """PIDs of the hanging restart command (package 9.0.0-hang) of this installation's
    ``instance_id`` (other tests on this machine use the same instance IDs)."""
    tag = f"FLOY_INSTANCE_DIR={env.root / 'hello' / instance_id}".encode()
    found = []
    for pid, _, _ in live_pids():
        if f"floy-hang-{instance_id}" in cmdline(pid):
            with contextlib.suppress(OSError):
                if tag in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"):
                    found.append(pid)
    return found


def release_started(events: list[RunnerEvent]) -> bool:
    return any(e.get("event") == "runner_on_start"
               and str(e.get("event_data", {}).get("task_action", "")).endswith("floy_release")
               for e in events)


def never() -> bool:
    return False


def assert_nothing_left(env: FloyEnv, sshd: Sshd, run_id: str, ids: list[str]) -> None:
    """No process of the run anywhere, its node directory gone, every instance on a
    complete release."""
    assert tagged(run_id) == []
    assert not (HOME / NODE_RUNS_DIR / run_id).exists(), "the node's copy of the run is gone"
    assert sshd.session_processes() == []
    for instance_id in ids:
        assert hanging(env, instance_id) == []
        releases = env.root / "hello" / instance_id / "releases"
        assert not [p for p in releases.iterdir() if p.name.startswith(".")], "no temp dirs"


# -- 1. a deployment ---------------------------------------------------------------------


def test_a_deployment_on_the_node_records_what_a_local_one_does(
        floy_env: FloyEnv, node: Node, sshd: Sshd) -> None:
    env = floy_env
    here, there = env.register(2, prefix="local"), env.register(2, prefix="node")
    assert env.deploy("1.0.0", here + there, unique("base"), batch_size="4").status \
        is Status.COMPLETED
    logins = sshd.publickey_logins()
    local_plan = recorded_plan(env, "2.0.0", here, unique("local"), batch_size="1")
    local_sink = sink_for(env, local_plan)
    local = runner.execute(local_plan, local_sink, never)
    node_plan = recorded_plan(env, "2.0.0", there, unique("node"), batch_size="1")
    node_sink = sink_for(env, node_plan)
    node_events: list[RunnerEvent] = []

    def on_event(event: RunnerEvent) -> None:
        node_events.append(event)
        node_sink(event)

    began = time.monotonic()
    remote = execute_on_node(node, node_plan, on_event, never)
    took = time.monotonic() - began
    local_sink.flush()
    node_sink.flush()

    assert (remote.status, remote.rc, remote.cancelled) == ("successful", 0, False), remote
    assert sshd.publickey_logins() > logins, "the run went through sshd"
    assert took < 45, f"the run on the node took {took:.1f} s"
    # the same events as the local run, in an order the fold accepts (counters ascending)
    assert remote.events == len(node_events) == local.events
    counters = [e.get("counter", 0) for e in node_events]
    assert counters == sorted(counters)
    assert node_sink.state.finished and local_sink.state.finished
    assert list(node_sink.state.statuses.values()) == list(local_sink.state.statuses.values())

    def record(m: RunInstanceRecord) -> tuple[object, ...]:
        return (m.status, m.batch, m.phase, m.previous_version, m.current_version,
                m.attempts, m.error_message, m.started_at is not None,
                m.completed_at is not None)

    local_records = [record(m) for m in members(env, local_plan.run_id)]
    node_records = [record(m) for m in members(env, node_plan.run_id)]
    assert node_records == local_records
    assert [r[:5] for r in node_records] == [
        (Status.COMPLETED, 1, node_records[0][2], "1.0.0", "2.0.0"),
        (Status.COMPLETED, 2, node_records[1][2], "1.0.0", "2.0.0"),
    ]
    for instance_id in here + there:
        assert env.current(instance_id) == "2.0.0"
        assert env.answers(instance_id) == "2.0.0"
    assert env.service.get_service_instance_versions("hello").version_summary == {"2.0.0": 4}
    assert_nothing_left(env, sshd, node_plan.run_id, there)
    # the controller kept the artifacts the worker streamed back
    assert list(node_plan.private_data_dir.glob("artifacts/*/stdout"))
    assert_ran_from_the_node_copy(env, node_plan)


def assert_ran_from_the_node_copy(env: FloyEnv, plan: RunPlan) -> None:
    """ansible-playbook ran from the node's copy of the run, with no controller path (this
    machine is both, so a controller path would work here and fail on a real node)."""
    command = json.loads(next(plan.private_data_dir.glob("artifacts/*/command")).read_text())
    copy = str(HOME / NODE_RUNS_DIR / plan.run_id)
    assert command["cwd"] == f"{copy}/project"
    assert f"@{copy}/env/extravars" in command["command"]
    assert f"{copy}/inventory" in command["command"]
    env_vars = command["env"]
    assert env_vars["ANSIBLE_CONFIG"] == "ansible.cfg"
    # the settings themselves travelled, not playbooks/'s link to the repository root's file
    config = plan.private_data_dir / "project" / "ansible.cfg"
    assert config.is_file() and not config.is_symlink()
    assert "pipelining = True" in config.read_text()
    assert env_vars["ANSIBLE_COLLECTIONS_PATH"].startswith("../collections:")
    assert env_vars["FLOY_RUN_ID"] == plan.run_id
    # (the node's ansible-runner is this repository's .venv: its paths are the node's own)
    controller = [str(p) for p in (env.settings.home, env.settings.inventory_dir,
                                   env.settings.playbook_dir, REPO_ROOT / "collections")]
    travelled = {k: v for k, v in env_vars.items() if any(c in v for c in controller)}
    assert travelled == {}, "controller paths reached the node"


# -- 2. a cancel -------------------------------------------------------------------------


def canceller(env: FloyEnv, run_id: str, ids: list[str], events: list[RunnerEvent]
              ) -> tuple[Callable[[], bool], dict[str, object]]:
    """should_cancel: True once the release of ``ids[0]`` runs its hanging restart; notes
    when, and which processes carried the run's tag then."""
    when: dict[str, object] = {}

    def should_cancel() -> bool:
        if "at" not in when and release_started(events) and hanging(env, ids[0]):
            when["at"] = time.monotonic()
            when["tagged"] = tagged(run_id)
        return "at" in when

    return should_cancel, when


def stops(caplog: pytest.LogCaptureFixture) -> list[tuple[int, int]]:
    """What each stop session reported (STOP_SCRIPT's last line), in order: how many
    processes it SIGTERMed (ansible-playbook, and forks it left behind), how many it
    had to SIGKILL."""
    found = []
    for r in caplog.records:
        words = r.getMessage().rpartition(": ")[2].split()
        if r.name == "orchestrator.ansible.remote" and words[:1] == ["terminated"]:
            found.append((int(words[1]), int(words[3])))
    return found


def test_a_cancel_on_the_node_stops_the_release_and_leaves_nothing(
        floy_env: FloyEnv, node: Node, sshd: Sshd, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="orchestrator.ansible.remote")
    env = floy_env
    ids = env.register(2)
    assert env.deploy("1.0.0", ids, unique("base"), batch_size="2").status is Status.COMPLETED
    plan = recorded_plan(env, "9.0.0-hang", ids, unique("cancel"), timeout=120,
                         retry_count=0, batch_size="1")
    sink = sink_for(env, plan)
    events: list[RunnerEvent] = []

    def on_event(event: RunnerEvent) -> None:
        events.append(event)
        sink(event)

    should_cancel, when = canceller(env, plan.run_id, ids, events)
    began = time.monotonic()
    outcome = execute_on_node(node, plan, on_event, should_cancel)
    ended = time.monotonic()
    sink.flush()

    assert "at" in when, f"the release never hung: {outcome}"
    running = when["tagged"]
    assert isinstance(running, list) and any("ansible-playbook" in p for p in running) and any(
        "worker" in p for p in running), f"the run's processes carry FLOY_RUN_ID: {running}"
    took = ended - float(when["at"])  # type: ignore[arg-type]
    assert outcome.cancelled and outcome.status == "canceled", outcome
    assert took < 25, f"the cancel took {took:.1f} s"
    assert ended - began < 60
    # a second session SIGTERMed ansible-playbook, and the module cleaned up in time
    first, *_ = stops(caplog)
    assert first[0] >= 1 and first[1] == 0, stops(caplog)
    assert_nothing_left(env, sshd, plan.run_id, ids)
    # the first instance was switched back by the module; the second never started
    assert sink.state.statuses[ids[0]] is Status.IN_PROGRESS
    assert sink.state.statuses[ids[1]] is Status.PENDING
    for instance_id in ids:
        assert env.current(instance_id) == "1.0.0"
    assert wait_until(lambda: env.answers(ids[0]) == "1.0.0", 10, "the old release to answer")


def test_a_killed_ssh_client_still_leaves_nothing_on_the_node(
        floy_env: FloyEnv, node: Node, sshd: Sshd, caplog: pytest.LogCaptureFixture) -> None:
    """The remote side is stopped by a second session when the first one is gone."""
    caplog.set_level(logging.INFO, logger="orchestrator.ansible.remote")
    env = floy_env
    ids = env.register(1)
    assert env.deploy("1.0.0", ids, unique("base")).status is Status.COMPLETED
    plan = recorded_plan(env, "9.0.0-hang", ids, unique("cut"), timeout=120, retry_count=0)
    events: list[RunnerEvent] = []
    hang, when = canceller(env, plan.run_id, ids, events)
    killed: list[int] = []

    def cut_the_link() -> bool:  # never asks for a cancel: kills this run's ssh client
        if hang() and not killed:
            me = os.getpid()
            clients = [pid for pid, ppid, comm in live_pids()
                       if ppid == me and comm == "ssh" and plan.run_id in cmdline(pid)]
            for pid in clients:
                os.kill(pid, signal.SIGKILL)
            killed.extend(clients)
        return False

    outcome = execute_on_node(node, plan, events.append, cut_the_link)
    took = time.monotonic() - float(when["at"])  # type: ignore[arg-type]
    assert len(killed) == 1, killed
    assert outcome.status == "error" and not outcome.cancelled, outcome
    assert outcome.stdout_tail.startswith("node node-1: "), outcome.stdout_tail
    assert took < 30, f"stopping the run took {took:.1f} s"
    # the run outlived its ssh client on the node until the stop session came
    (terminated, killed_there), = stops(caplog)
    assert terminated >= 1 and killed_there == 0, stops(caplog)
    assert_nothing_left(env, sshd, plan.run_id, ids)
    assert env.current(ids[0]) == "1.0.0"


# -- 3. an unreachable node --------------------------------------------------------------


@pytest.mark.parametrize("fault", ["nothing listens", "another host key"])
def test_an_unreachable_node_fails_fast_and_says_why(
        floy_env: FloyEnv, node: Node, sshd: Sshd, fault: str) -> None:
    env = floy_env
    ids = env.register(1)
    if fault == "nothing listens":
        node = Node(node.name, node.destination, node.identity_file, node.known_hosts,
                    port=free_port(), runner_command=node.runner_command)
        reason = f"port {node.port}: Connection refused"
    else:
        node = Node(node.name, node.destination, node.identity_file,
                    sshd.other_known_hosts("stranger"), port=node.port,
                    runner_command=node.runner_command)
        reason = "Host key verification failed."
    plan = recorded_plan(env, "1.0.0", ids, unique("unreachable"))
    events: list[RunnerEvent] = []
    began = time.monotonic()
    outcome = execute_on_node(node, plan, events.append, never)
    took = time.monotonic() - began
    assert took < 10, f"giving up on the node took {took:.1f} s"
    assert outcome.status == "error" and outcome.rc is None, outcome
    assert outcome.stdout_tail.startswith("unreachable: node node-1: "), outcome.stdout_tail
    assert reason in outcome.stdout_tail, outcome.stdout_tail
    assert events == [] and outcome.events == 0, "no events were made up"
    assert env.current(ids[0]) is None
    assert tagged(plan.run_id) == []


def test_a_node_without_ansible_runner_says_so(floy_env: FloyEnv, node: Node) -> None:
    ids = floy_env.register(1)
    node = Node(node.name, node.destination, node.identity_file, node.known_hosts,
                port=node.port, runner_command="/nonexistent/ansible-runner")
    plan = recorded_plan(floy_env, "1.0.0", ids, unique("norunner"))
    began = time.monotonic()
    outcome = execute_on_node(node, plan, never_event, never)
    assert time.monotonic() - began < 15
    assert outcome.status == "error" and not outcome.cancelled, outcome
    assert outcome.stdout_tail.startswith("node node-1: "), outcome.stdout_tail
    assert "ssh exited 127" in outcome.stdout_tail, outcome.stdout_tail
    assert "/nonexistent/ansible-runner" in outcome.stdout_tail, outcome.stdout_tail
    assert floy_env.current(ids[0]) is None


# -- 4. node definitions -----------------------------------------------------------------


@pytest.mark.parametrize(("change", "field"), [
    ({"name": ""}, "name"),
    ({"destination": "-oProxyCommand=x"}, "destination"),
    ({"port": 0}, "port"),
    ({"identity_file": Path("key")}, "identity_file"),
    ({"runner_command": "'unclosed"}, "runner_command"),
    ({"env": {"FLOY_RUN_ID": "x"}}, "env.FLOY_RUN_ID"),
])
def test_a_bad_node_definition_names_the_field(change: dict[str, object], field: str) -> None:
    values: dict[str, object] = {"name": "n1", "destination": "floy@127.0.0.1",
                                 "identity_file": Path("/k"), "known_hosts": Path("/kh")}
    with pytest.raises(ConfigError, match=rf": {field}: expected"):
        Node(**{**values, **change})  # type: ignore[arg-type]


def test_missing_key_files_are_named(node: Node, floy_env: FloyEnv) -> None:
    missing = Node(node.name, node.destination, Path("/nonexistent/key"), node.known_hosts,
                   port=node.port)
    plan = recorded_plan(floy_env, "1.0.0", floy_env.register(1), unique("nokey"))
    with pytest.raises(ConfigError, match="identity_file: /nonexistent/key is not a file"):
        execute_on_node(missing, plan, never_event, never)
    assert not plan.private_data_dir.exists()


def never_event(event: RunnerEvent) -> None:
    raise AssertionError(f"no event expected: {event}")


# -- 6. through the service: a run pinned to a configured node -------------------------------


def with_nodes(env: FloyEnv, **nodes: Node) -> FloyEnv:
    """``env`` with ``nodes:`` configured (as config.yml would), runs carried inline."""
    settings = dataclasses.replace(env.settings, nodes={
        name: {"destination": n.destination, "port": n.port,
               "identity_file": str(n.identity_file), "known_hosts": str(n.known_hosts),
               "runner_command": n.runner_command}
        for name, n in nodes.items()})
    return env.rebuilt(settings, InlineExecutor(settings, env.store))


def test_a_deployment_pinned_to_a_node_runs_there(floy_env: FloyEnv, node: Node,
                                                  sshd: Sshd) -> None:
    env = with_nodes(floy_env, **{"node-1": node})
    ids = env.register(2)
    run_id = unique("pin")
    url, sha = env.packages["2.0.0"]
    before = sshd.publickey_logins()
    env.service.execute_deployment(DeployParams(
        service="hello", version="2.0.0", instances=tuple(ids), package_url=url,
        package_sha256=sha, deploy_id=run_id, node="node-1"))
    status = env.service.get_deployment_status(run_id)
    assert status.status is Status.COMPLETED, status.error_message
    assert [env.current(i) for i in ids] == ["2.0.0", "2.0.0"]
    assert sshd.publickey_logins() > before, "the playbook ran through the node"
    run = env.store.runs.get(run_id)
    assert run is not None and run.request.node == "node-1"


def test_an_unreachable_node_fails_the_run_s_instances_and_says_why(
        floy_env: FloyEnv, node: Node) -> None:
    dead = dataclasses.replace(node, port=free_port())
    env = with_nodes(floy_env, **{"node-1": dead})
    ids = env.register(3)
    run_id = unique("dead")
    url, sha = env.packages["2.0.0"]
    env.service.execute_deployment(DeployParams(
        service="hello", version="2.0.0", instances=tuple(ids), package_url=url,
        package_sha256=sha, deploy_id=run_id, node="node-1", max_failures=1))
    status = env.service.get_deployment_status(run_id)
    assert status.status is Status.FAILED
    for instance in status.instances:
        assert instance.status is Status.FAILED, instance
        assert instance.error_message.startswith("unreachable: node node-1: "), instance
    assert status.error_message.startswith("3 of 3 instances failed"), status.error_message
    assert [env.current(i) for i in ids] == [None] * 3


def test_a_node_that_is_not_configured_is_refused_naming_the_field(
        floy_env: FloyEnv) -> None:
    ids = floy_env.register(1)
    url, sha = floy_env.packages["2.0.0"]
    with pytest.raises(ValidationError) as err:
        floy_env.service.execute_deployment(DeployParams(
            service="hello", version="2.0.0", instances=tuple(ids), package_url=url,
            package_sha256=sha, deploy_id="no-node", node="elsewhere"))
    assert err.value.field == "node" and "not a configured execution node" in str(err.value)
    assert floy_env.store.runs.get("no-node") is None, "nothing stored"


def test_a_lost_worker_s_run_is_stopped_on_its_node_by_the_reaper(
        floy_async_env: FloyEnv, node: Node, sshd: Sshd) -> None:
    """The detached worker of a run pinned to the node is SIGKILLed mid-release: its
    playbook goes on on the node (nothing there knows); the reaper stops it there through
    the node's own ssh session, then probes."""
    settings = dataclasses.replace(floy_async_env.settings, nodes={"node-1": {
        "destination": node.destination, "port": node.port,
        "identity_file": str(node.identity_file), "known_hosts": str(node.known_hosts),
        "runner_command": node.runner_command}})
    env = floy_async_env.rebuilt(settings)
    ids = env.register(1)
    run_id = unique("lost")
    url, sha = env.packages["9.0.0-hang"]
    env.service.execute_deployment(DeployParams(
        service="hello", version="9.0.0", instances=tuple(ids), package_url=url,
        package_sha256=sha, deploy_id=run_id, node="node-1", timeout=120, retry_count=0))
    wait_until(lambda: hanging(env, ids[0]), 60, "the release to hang on the node")
    pid = env.service.worker_pid(run_id)
    assert pid
    os.kill(pid, signal.SIGKILL)
    time.sleep(1.0)  # long enough for a dying session to take the release with it
    assert hanging(env, ids[0]), "the release goes on on the node without its worker"
    assert wait_until(lambda: run_id in env.service.reap_stale_runs(), 30,
                      "the lease to expire and the run to be reaped")
    status = env.service.get_deployment_status(run_id)
    assert status.status is Status.FAILED, status
    assert "its playbook on node node-1 was stopped" in status.error_message, status
    wait_until(lambda: not tagged(run_id), 30, "nothing of the run left")
    assert hanging(env, ids[0]) == []
    assert not (HOME / NODE_RUNS_DIR / run_id).exists()


# -- 7. instances grouped by their execution_node label --------------------------------------


def register_labelled(env: FloyEnv, labels: list[str]) -> list[str]:
    """Register one instance per label (``""``: unlabelled); returns their IDs."""
    ids = []
    for n, label in enumerate(labels, start=1):
        instance_id = unique(f"lbl{n}")
        port = free_port()
        env.service.register_instances([InstanceSpec(
            instance_id, "hello", "127.0.0.1", port,
            {"zone": "test", **({NODE_LABEL: label} if label else {})})])
        env.ports[instance_id] = port
        ids.append(instance_id)
    return ids


def test_labelled_instances_play_on_their_node_group_by_group(
        floy_env: FloyEnv, node: Node, sshd: Sshd, caplog: pytest.LogCaptureFixture) -> None:
    """Two instances labelled for the node and one unlabelled, interleaved: the node's group
    plays first (its first instance came first), on the node, then the worker's own; the
    batches keep the run's size and their numbers go on across the groups."""
    env = with_nodes(floy_env, **{"node-1": node})
    ids = register_labelled(env, ["node-1", "", "node-1"])
    run_id = unique("grp")
    url, sha = env.packages["2.0.0"]
    before = sshd.publickey_logins()
    with caplog.at_level(logging.INFO, logger="orchestrator.engine.worker"):
        env.service.execute_deployment(DeployParams(
            service="hello", version="2.0.0", instances=tuple(ids), package_url=url,
            package_sha256=sha, deploy_id=run_id, batch_size="1"))
    status = env.service.get_deployment_status(run_id)
    assert status.status is Status.COMPLETED, status.error_message
    assert [(i.instance_id, i.batch, i.status) for i in status.instances] == [
        (ids[0], 1, Status.COMPLETED), (ids[2], 2, Status.COMPLETED),
        (ids[1], 3, Status.COMPLETED)]
    assert [env.current(i) for i in ids] == ["2.0.0"] * 3
    assert sshd.publickey_logins() > before, "the labelled group ran through the node"
    groups = [r.getMessage() for r in caplog.records if ": group " in r.getMessage()]
    assert groups == [f"run {run_id}: group 1 of 2, 2 instance(s) on node node-1",
                      f"run {run_id}: group 2 of 2, 1 instance(s) on this worker"], groups
    run = env.store.runs.get(run_id)
    assert run is not None and run.request.nodes == ("node-1", "node-1", "")


def test_the_failure_budget_spans_the_groups(floy_env: FloyEnv, node: Node) -> None:
    """max_failures 1: the node's group spends it with its one instance, so the worker's
    group starts with none left: its first failure stops it, its second instance is never
    started (a budget per group would have run it)."""
    env = with_nodes(floy_env, **{"node-1": node})
    ids = register_labelled(env, ["node-1", "", ""])
    run_id = unique("grpfail")
    url, sha = env.packages["9.0.0-crash"]
    env.service.execute_deployment(DeployParams(
        service="hello", version="9.0.0", instances=tuple(ids), package_url=url,
        package_sha256=sha, deploy_id=run_id, batch_size="1", retry_count=0,
        max_failures=1))
    status = env.service.get_deployment_status(run_id)
    assert status.status is Status.FAILED
    first, second, third = status.instances
    assert (first.status, second.status) == (Status.FAILED, Status.FAILED), status
    assert third.status is Status.CANCELLED, third
    assert "failure budget exhausted" in third.error_message, third
    assert env.current(ids[2]) is None, "never started"


def test_a_label_naming_no_configured_node_is_refused_naming_the_instance(
        floy_env: FloyEnv, node: Node) -> None:
    env = with_nodes(floy_env, **{"node-1": node})
    ids = register_labelled(env, ["", "node-9"])
    url, sha = env.packages["2.0.0"]
    with pytest.raises(ValidationError) as err:
        env.service.execute_deployment(DeployParams(
            service="hello", version="2.0.0", instances=tuple(ids), package_url=url,
            package_sha256=sha, deploy_id="bad-label"))
    assert err.value.field == "instances[1]", err.value
    assert "'node-9', which is not a configured execution node (configured: node-1)" in str(
        err.value)
    assert env.store.runs.get("bad-label") is None, "nothing stored"


def test_a_pinned_run_ignores_the_labels(floy_env: FloyEnv, node: Node) -> None:
    env = with_nodes(floy_env, **{"node-1": node})
    ids = register_labelled(env, ["node-9", ""])  # node-9 is not configured: not looked at
    url, sha = env.packages["2.0.0"]
    run_id = unique("pinlbl")
    env.service.execute_deployment(DeployParams(
        service="hello", version="2.0.0", instances=tuple(ids), package_url=url,
        package_sha256=sha, deploy_id=run_id, node="node-1"))
    status = env.service.get_deployment_status(run_id)
    assert status.status is Status.COMPLETED, status.error_message
    run = env.store.runs.get(run_id)
    assert run is not None and run.request.nodes == () and run.request.node == "node-1"


def test_an_automatic_rollback_plays_where_its_deployment_did(
        floy_env: FloyEnv, node: Node) -> None:
    """Two instances on the node switch, a third on the worker is unreachable: the
    automatic rollback of the two is recorded for the node and plays there."""
    env = with_nodes(floy_env, **{"node-1": node})
    ids = register_labelled(env, ["node-1", "node-1"])
    url, sha = env.packages["1.0.0"]
    first = unique("grpok")
    env.service.execute_deployment(DeployParams(
        service="hello", version="1.0.0", instances=tuple(ids), package_url=url,
        package_sha256=sha, deploy_id=first, batch_size="2"))
    assert env.service.get_deployment_status(first).status is Status.COMPLETED
    gone = unique("gone")
    env.store.instances.add([InstanceSpec(gone, "hello", "127.0.0.1", free_port(), {})])
    host_vars = env.settings.inventory_dir / "host_vars"
    host_vars.mkdir(exist_ok=True)
    (host_vars / f"{gone}.yml").write_text(json.dumps(
        {"ansible_connection": "ssh", "ansible_port": 9, "ansible_host": "127.0.0.1"}))
    url, sha = env.packages["2.0.0"]
    run_id = unique("grpauto")
    env.service.execute_deployment(DeployParams(
        service="hello", version="2.0.0", instances=(*ids, gone), package_url=url,
        package_sha256=sha, deploy_id=run_id, batch_size="1", retry_count=0,
        max_failures=1, auto_rollback=True))
    status = env.service.get_deployment_status(run_id)
    assert status.status is Status.FAILED and status.rollback_id, status
    rollback = env.service.get_deployment_status(status.rollback_id)
    assert rollback.status is Status.COMPLETED, rollback.error_message
    run = env.store.runs.get(status.rollback_id)
    assert run is not None and run.request.nodes == ("node-1", "node-1"), run.request
    assert [env.current(i) for i in ids] == ["1.0.0", "1.0.0"]


def test_a_probe_reads_the_instances_through_the_node_their_run_played_on(
        floy_env: FloyEnv, node: Node, sshd: Sshd) -> None:
    """The closing and the reaper probe an instance from where its run played it: through
    the node (a new ssh session to it); an unreachable node reads nothing, and says so."""
    env = with_nodes(floy_env, **{"node-1": node})
    ids = register_labelled(env, ["node-1"])
    url, sha = env.packages["2.0.0"]
    env.service.execute_deployment(DeployParams(
        service="hello", version="2.0.0", instances=tuple(ids), package_url=url,
        package_sha256=sha, deploy_id=unique("prb")))
    record = env.store.instances.get(ids)[ids[0]]
    before = sshd.publickey_logins()
    seen = probe_instances(env.settings, "hello", [record], node="node-1")
    assert seen[ids[0]].reachable and seen[ids[0]].current_version == "2.0.0", seen
    assert sshd.publickey_logins() > before, "the probe ran through the node"
    dead = dataclasses.replace(env.settings, nodes={"node-1": {
        **env.settings.nodes["node-1"], "port": free_port()}})
    seen = probe_instances(dead, "hello", [record], node="node-1")
    assert not seen[ids[0]].reachable and seen[ids[0]].current_version == "", seen
