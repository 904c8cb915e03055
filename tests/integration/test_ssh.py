"""The SSH path, for real: a real sshd on 127.0.0.1, key authentication, strict host key
checking against a known_hosts the tests write, pipelining (playbooks/ansible.cfg).

The instances all live on this machine, so what happens on them (releases, the apps, the
module's processes) can be checked directly, but floy reaches them only through sshd.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from orchestrator.models import DeployParams, InstanceRollbackParams, Status
from sample.packages import stop_apps
from tests.helpers.floyenv import FloyEnv, make_env
from tests.helpers.wait import wait_until
from tests.integration.sshd import Sshd, cmdline, live_pids, running_sshd, sshd, tcp_clients

__all__ = ["sshd"]  # the session's sshd fixture, imported for pytest

pytestmark = pytest.mark.integration


@contextlib.contextmanager
def ssh_env(tmp_path: Path, pki: object, packages: dict[str, tuple[str, str]], server: Sshd,
            inline: bool = True, lease_seconds: float = 15.0) -> Iterator[FloyEnv]:
    """A floy installation whose operator inventory reaches every instance through
    ``server``: SSH, key authentication, strict host key checking, pipelining."""
    env = make_env(tmp_path, pki, packages, inline=inline, lease_seconds=lease_seconds)
    # SSH multiplexing sockets of this installation only (ControlPersist masters outlive a
    # run by 60 s): so that a test sees and closes its own masters, and so that an instance
    # with its own known_hosts cannot ride on another instance's authenticated master.
    # A short directory: a unix socket path is limited to 108 bytes.
    control_dir = Path(tempfile.mkdtemp(prefix="floy-cp-"))
    write_vars(env.settings.inventory_dir / "group_vars/all.yml", {
        **server.operator_vars(env.root, ssh_args(server.known_hosts)),
        "ansible_control_path_dir": str(control_dir),
    })
    try:
        yield env
    finally:
        server.kill_session_commands()  # what a failed test may have left behind sshd
        stop_apps(env.root)
        close_masters(control_dir)
        env.store.close()


def ssh_args(known_hosts: Path) -> str:
    return (f"-o UserKnownHostsFile={known_hosts} -o StrictHostKeyChecking=yes "
            "-o IdentitiesOnly=yes -o BatchMode=yes")


def write_vars(path: Path, values: dict[str, object]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(values))


def close_masters(control_dir: Path) -> None:
    """Ask every ControlPersist master under ``control_dir`` to exit, then remove it."""
    if not control_dir.is_dir():
        return
    for sock in control_dir.iterdir():
        subprocess.run(["ssh", "-o", f"ControlPath={sock}", "-O", "exit", "placeholder"],
                       capture_output=True, timeout=10, check=False)
    shutil.rmtree(control_dir, ignore_errors=True)


def start(env: FloyEnv, package: str, ids: list[str], run_id: str, **extra: object) -> None:
    url, sha = env.packages[package]
    env.service.execute_deployment(DeployParams(
        service="hello", version=package.split("-")[0], instances=tuple(ids), package_url=url,
        deploy_id=run_id, package_sha256=sha, **extra))  # type: ignore[arg-type]


def leftovers(env: FloyEnv, server: Sshd, run_id: str, instance_ids: list[str],
              masters: bool = True) -> list[str]:
    """Live processes of a run, over SSH: ansible-playbook and its forks (by the run's
    directory), ssh clients connected to the sshd (``masters=False`` leaves out idle
    ControlPersist masters), whatever sshd sessions run (the module: ``python3 && sleep 0``
    with pipelining, so no ``AnsiballZ`` in its command line), and the hanging restart
    command of any instance. Only this installation's: other runs may share the machine."""
    found = {}
    for pid, _, comm in live_pids():
        cmd = cmdline(pid)
        ours = any(f"floy-hang-{i}" in cmd for i in instance_ids) or (
            "AnsiballZ" in cmd or "floy_release" in cmd)
        if str(env.settings.runs_dir / run_id) in cmd or (ours and in_env(pid, env)):
            found[pid] = f"{pid} {comm}: {cmd[:200]}"
    for pid in tcp_clients(server.port):
        cmd = cmdline(pid)
        if masters or "[mux]" not in cmd:
            found[pid] = f"{pid} ssh client to port {server.port}: {cmd[:200]}"
    for line in server.session_processes():
        found[int(line.split()[0])] = f"{line} (run by an sshd session)"
    return [found[pid] for pid in sorted(found)]


def in_env(pid: int, env: FloyEnv) -> bool:
    """True if the process belongs to this installation: its environment names one of its
    directories (FLOY_SHARED_DIR of a restart command, the module's arguments do not)."""
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return False
    return str(env.root).encode() in environ or str(env.home).encode() in environ


def ps() -> str:
    """The whole process table, for a failure message."""
    out = subprocess.run(["ps", "-eo", "pid,ppid,sid,stat,etime,args", "--forest"],
                         capture_output=True, text=True, check=False).stdout
    return "\n".join(line for line in out.splitlines()
                     if "\\_ [" not in line and not line.rstrip().endswith("]"))


# -- 1. a full deployment ----------------------------------------------------------------


def test_full_deploy_over_ssh(tmp_path: Path, pki: object,
                              packages: dict[str, tuple[str, str]], sshd: Sshd) -> None:
    logins_before = sshd.publickey_logins()
    with ssh_env(tmp_path, pki, packages, sshd) as env:
        ids = env.register(3)
        began = time.monotonic()
        first = env.deploy("1.0.0", ids, "ssh-1", batch_size="2")
        assert first.status is Status.COMPLETED, first.to_dict()
        second = env.deploy("2.0.0", ids, "ssh-2", batch_size="2")
        took = time.monotonic() - began
        assert second.status is Status.COMPLETED, second.to_dict()
        for inst in second.instances:
            assert inst.status is Status.COMPLETED and inst.current_version == "2.0.0"
        for instance_id in ids:
            assert env.current(instance_id) == "2.0.0"
            assert env.answers(instance_id) == "2.0.0"
        assert took < 60, f"two deployments over SSH took {took:.1f} s"
    # Proof that SSH was really used: sshd accepted the client key (at least one login per
    # run; multiplexing may carry several hosts and tasks over one connection).
    assert sshd.publickey_logins() - logins_before >= 2, sshd.log_tail()


# -- 2. a rollback -----------------------------------------------------------------------


def test_rollback_over_ssh(tmp_path: Path, pki: object,
                           packages: dict[str, tuple[str, str]], sshd: Sshd) -> None:
    with ssh_env(tmp_path, pki, packages, sshd) as env:
        ids = env.register(1)
        assert env.deploy("1.0.0", ids, "rb-1").status is Status.COMPLETED
        assert env.deploy("2.0.0", ids, "rb-2").status is Status.COMPLETED
        assert env.answers(ids[0]) == "2.0.0"
        result = env.service.rollback_instance(InstanceRollbackParams(
            instance_id=ids[0], target_version="1.0.0", rollback_id="rb-ssh"))
        assert result.rollback_id == "rb-ssh"
        status = env.service.get_deployment_status("rb-ssh")
        assert status.kind == "rollback" and status.status is Status.COMPLETED, status.to_dict()
        inst = status.instances[0]
        assert (inst.previous_version, inst.current_version) == ("2.0.0", "1.0.0")
        assert env.current(ids[0]) == "1.0.0"
        assert env.answers(ids[0]) == "1.0.0"


# -- 3. a cancel -------------------------------------------------------------------------


def test_cancel_over_ssh_leaves_nothing_running(
        tmp_path: Path, pki: object, packages: dict[str, tuple[str, str]], sshd: Sshd) -> None:
    with ssh_env(tmp_path, pki, packages, sshd, inline=False, lease_seconds=3.0) as env:
        ids = env.register(2)
        start(env, "1.0.0", ids, "base", batch_size="2")
        assert env.wait("base").status is Status.COMPLETED
        start(env, "9.0.0-hang", ids, "c-1", timeout=120, retry_count=0, batch_size="1")
        env.wait_in_flight("c-1")

        def hanging() -> list[str] | None:  # the restart command of hello-1 hangs now
            running = leftovers(env, sshd, "c-1", ids)
            return running if any(f"floy-hang-{ids[0]}" in line for line in running) else None

        running = wait_until(hanging, 30, f"the hanging restart of {ids[0]}")
        assert any("sshd session" in line for line in running), running  # run by sshd
        began = time.monotonic()
        result = env.service.cancel_deployment("c-1")
        took = time.monotonic() - began
        assert result.status is Status.CANCELLED, result
        assert took < 20, f"cancel took {took:.1f} s"
        status = env.service.get_deployment_status("c-1")
        first, second = status.instances
        assert first.status is Status.CANCELLED, first
        # the probe waited for the remote release to finish switching back
        assert first.current_version == "1.0.0", first
        assert second.status is Status.CANCELLED and second.error_message.startswith(
            "not started")
        # Nothing of the run may survive, on the controller or behind sshd; idle
        # ControlPersist masters are checked below. Give remote cleanup a moment.
        left: list[str] = []

        def nothing_left() -> bool:
            left[:] = leftovers(env, sshd, "c-1", ids, masters=False)
            return not left

        try:
            wait_until(nothing_left, 5, "nothing of c-1 left running")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; left behind by a cancel over SSH:\n" + "\n".join(left)
                                 + "\n\n" + ps()) from None
        # What may stay: this installation's idle ControlPersist master (no session runs
        # through it any more, checked above); it exits by itself after 60 s.
        masters = [line for line in leftovers(env, sshd, "c-1", ids) if "[mux]" in line]
        assert len(masters) <= 1, masters
        assert env.current(ids[0]) == "1.0.0"
        assert env.answers(ids[0]) == "1.0.0"
        assert env.current(ids[1]) == "1.0.0"


# -- 4. an unknown host key --------------------------------------------------------------


def test_unknown_host_key_fails_that_instance(
        tmp_path: Path, pki: object, packages: dict[str, tuple[str, str]], sshd: Sshd) -> None:
    with ssh_env(tmp_path, pki, packages, sshd) as env:
        good, bad = env.register(2)
        # The operator's known_hosts for ``bad`` pins another key for the same address.
        # Its own multiplexing directory too: instances that share an address, port and
        # user would otherwise share the master connection the good one authenticated.
        wrong = sshd.other_known_hosts("wrong")
        control_dir = Path(tempfile.mkdtemp(prefix="floy-cp-"))
        write_vars(env.settings.inventory_dir / f"host_vars/{bad}.yml", {
            "ansible_ssh_common_args": ssh_args(wrong),
            "ansible_control_path_dir": str(control_dir),
        })
        try:
            status = env.deploy("1.0.0", [good, bad], "hk-1", batch_size="2", max_failures=1)
        finally:
            close_masters(control_dir)
        by_id = {i.instance_id: i for i in status.instances}
        assert by_id[good].status is Status.COMPLETED, by_id[good]
        assert env.current(good) == "1.0.0" and env.answers(good) == "1.0.0"
        failed = by_id[bad]
        assert failed.status is Status.FAILED, failed
        message = failed.error_message
        assert "Host key verification failed" in message, message
        assert "unreachable" in message, message
        assert env.current(bad) is None, "nothing deployed on the host that was not trusted"
        assert env.answers(bad) is None


# -- 5. sshd stopped in the middle of a run ----------------------------------------------


def test_sshd_stopped_mid_run(tmp_path: Path, pki: object,
                              packages: dict[str, tuple[str, str]]) -> None:
    """The host goes down after the first instance: the next one is unreachable, the
    fleet-wide failure budget (max_failures 0) stops the run before the third."""
    with running_sshd(tmp_path / "sshd") as server, \
            ssh_env(tmp_path, pki, packages, server) as env:
        ids = env.register(3)
        stopped = threading.Event()
        done = threading.Event()

        def stop_after_first() -> None:
            while not done.is_set():
                with contextlib.suppress(Exception):
                    status = env.service.get_deployment_status("down-1")
                    if status.instances[0].status is Status.COMPLETED:
                        server.stop()
                        stopped.set()
                        return
                time.sleep(0.02)

        watcher = threading.Thread(target=stop_after_first, daemon=True)
        watcher.start()
        try:
            status = env.deploy("1.0.0", ids, "down-1", batch_size="1", max_failures=0,
                                retry_count=0)
        finally:
            done.set()
            watcher.join(10)
        assert stopped.is_set(), "sshd was never stopped"
        assert status.status is Status.FAILED, status.to_dict()
        first, second, third = status.instances
        assert first.status is Status.COMPLETED and env.answers(ids[0]) == "1.0.0"
        assert second.status is Status.FAILED, second
        assert "unreachable" in second.error_message, second.error_message
        assert third.status is Status.CANCELLED, third
        assert third.error_message.startswith("not started"), third.error_message
        assert "failure budget" in third.error_message, third.error_message
        assert third.started_at is None and env.current(ids[2]) is None
        # The host comes back: the same server, same port, same keys, reachable again.
        server.start()
        again = env.deploy("1.0.0", ids[1:], "down-2", batch_size="2")
        assert again.status is Status.COMPLETED, again.to_dict()
        assert [env.answers(i) for i in ids] == ["1.0.0"] * 3
