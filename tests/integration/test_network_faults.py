"""Network faults between the floy controller and its instances, for real.

Every instance lives on its own simulated machine: a network namespace with a veth link to
the root namespace and a real sshd (tests/integration/netns.py). floy, Ansible and ssh stay
in the root namespace and reach each machine only over its link, with key authentication and
strict host key checking, as in test_ssh.py. The faults are made in the kernel: a silent
partition (a blackhole route for the controller inside the machine), a link that goes down,
a tbf rate limit, and a userspace proxy that delays every chunk on the SSH path. Packet loss
is not simulated: this kernel has no netem and there is no iptables/nft (netns.py).

The operator's SSH settings bound every wait on a dead network: ``ansible_ssh_timeout``
(ssh's ConnectTimeout) for a connection that never opens, ServerAliveInterval x
ServerAliveCountMax for one that goes silent. The bounds asserted below are built from them.
"""

from __future__ import annotations

import contextlib
import json
import tempfile
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest

from orchestrator.domain.records import VersionCheck
from orchestrator.models import DeployParams, DeployStatus, InstanceSpec, Status
from sample.packages import package_name, sha256_file, stop_apps
from sample.pkgserver import PackageServer
from tests.helpers.floyenv import SERVICE, FloyEnv, make_env
from tests.helpers.wait import wait_until
from tests.integration.netns import (
    SSH_PORT,
    DelayProxy,
    Fleet,
    Machine,
    fleet_of,
    netns_inode,
    tcp_clients_to,
)
from tests.integration.sshd import cmdline, live_pids
from tests.integration.test_ssh import close_masters, ps, ssh_args, write_vars

pytestmark = pytest.mark.integration

# The operator's SSH timeouts (group_vars), and what they imply.
CONNECT_TIMEOUT = 5  # ansible_ssh_timeout: ssh -o ConnectTimeout
ALIVE_INTERVAL = 2  # ServerAliveInterval: a keepalive after 2 s without a byte from the host
ALIVE_COUNT = 3  # ServerAliveCountMax: ssh gives up after 3 unanswered keepalives
# A silent link is given up after at most (count + 1) intervals: the first keepalive goes
# out up to one interval after the last byte seen.
DEAD_LINK = ALIVE_INTERVAL * (ALIVE_COUNT + 1)
# ansible-playbook start-up, the worker closing the run, the failure-budget and report plays:
# about 3 s per run here (2 cores shared with another pytest worker); 3x that.
OVERHEAD = 10
# An instance lost mid-release is probed once before the run closes (what does it run?):
# still cut off, that probe gives up after one ConnectTimeout, plus a probe run's start-up.
LOST_PROBE = CONNECT_TIMEOUT + 5
ATTEMPT_TIMEOUT = 30  # DeployParams.timeout of the runs below: the per-attempt deadline
APP_PORT = 8080  # every machine serves its app on its own 127.0.0.1:8080


# -- the installation ---------------------------------------------------------------------


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    """Machines made by the test, destroyed afterwards (namespaces, veths, sshd, processes)
    even when the test fails."""
    with fleet_of(tmp_path / "fleet") as machines:
        yield machines


@dataclass
class Net:
    """A floy installation whose instances live on simulated machines."""

    env: FloyEnv
    machines: list[Machine]  # machines[k] holds instance ids[k]
    ids: list[str]
    control_dir: Path  # this installation's ssh multiplexing sockets


@contextlib.contextmanager
def net_env(tmp_path: Path, pki: object, packages: dict[str, tuple[str, str]],
            package_server: PackageServer, fleet: Fleet, count: int, inline: bool = True,
            lease_seconds: float = 15.0) -> Iterator[Net]:
    """floy with ``count`` instances, one per new machine of ``fleet``, reached over SSH
    (the operator vars of test_ssh.py's ssh_env, plus the timeouts above)."""
    port = urllib.parse.urlsplit(package_server.base_url).port
    assert port is not None
    machines = fleet.add(count, serve_ports=(port,))
    env = make_env(tmp_path, pki, packages, inline=inline, lease_seconds=lease_seconds)
    # This installation's own multiplexing sockets (test_ssh.py says why; short: 108 bytes).
    control_dir = Path(tempfile.mkdtemp(prefix="floy-cp-"))
    assert machines[0].sshd is not None
    common = (f"{ssh_args(fleet.known_hosts)} -o ServerAliveInterval={ALIVE_INTERVAL} "
              f"-o ServerAliveCountMax={ALIVE_COUNT}")
    write_vars(env.settings.inventory_dir / "group_vars/all.yml", {
        **machines[0].sshd.operator_vars(env.root, common),
        "ansible_port": SSH_PORT,
        "ansible_ssh_private_key_file": str(fleet.client_key),
        "ansible_ssh_timeout": CONNECT_TIMEOUT,
        "ansible_control_path_dir": str(control_dir),
    })
    ids = []
    for n, machine in enumerate(machines, 1):
        instance_id = f"{SERVICE}-{n}"
        env.store.instances.add([InstanceSpec(instance_id, SERVICE, machine.addr, APP_PORT,
                                              {"zone": "netns"})])
        env.ports[instance_id] = APP_PORT
        ids.append(instance_id)
    try:
        yield Net(env, machines, ids, control_dir)
    finally:
        for machine in machines:
            if machine.partitioned:
                machine.heal()
        stop_apps(env.root)
        close_masters(control_dir)
        env.store.close()


def answers(machine: Machine) -> str | None:
    """The version the app on ``machine`` answers with, asked from inside the machine."""
    body = machine.http_get(APP_PORT)
    return None if body is None else str(json.loads(body)["version"])


def start(env: FloyEnv, version: str, url: str, sha: str, ids: list[str], run_id: str,
          **extra: object) -> None:
    env.service.execute_deployment(DeployParams(
        service=SERVICE, version=version, instances=tuple(ids), package_url=url,
        deploy_id=run_id, package_sha256=sha, **extra))  # type: ignore[arg-type]


def seconds(begin: datetime | None, end: datetime | None) -> float:
    assert begin is not None and end is not None
    return (end - begin).total_seconds()


def controller_leftovers(env: FloyEnv, run_id: str, machines: list[Machine],
                         cut: Machine | None = None) -> list[str]:
    """Live controller-side processes of a run: its worker, ansible-playbook and forks, and
    ssh clients. Idle ControlPersist masters to reachable machines may stay (they exit by
    themselves after 60 s); nothing at all may stay connected to the ``cut`` machine.
    Processes inside the machines are not the controller's: :meth:`Machine.session_commands`."""
    root_ns = netns_inode(Path("/proc/self/ns/net"))
    found: dict[int, str] = {}
    for line in env.leftovers(run_id):
        pid = int(line.split(":")[0])
        with contextlib.suppress(OSError):
            if netns_inode(Path(f"/proc/{pid}/ns/net")) == root_ns and "[mux]" not in line:
                found[pid] = line
    for pid, _, _ in live_pids():
        if f"orchestrator.engine.worker {run_id}" in cmdline(pid):
            found[pid] = f"{pid}: {cmdline(pid)[:160]} (the run's worker)"
    for machine in machines:
        for pid in tcp_clients_to(machine.addr, SSH_PORT):
            cmd = cmdline(pid)
            if machine is cut or "[mux]" not in cmd:
                found[pid] = f"{pid}: {cmd[:160]} (ssh client to {machine.addr})"
    return [found[pid] for pid in sorted(found)]


# -- 1. a machine partitioned before the run ----------------------------------------------


@pytest.mark.timeout(180)
@pytest.mark.parametrize(("kind", "batch_size", "max_failures"), [
    ("drop", "3", 1),  # one batch: the others complete beside it
    ("link", "1", 0),  # batches of one: the failure budget stops the run after it
], ids=["silent-partition-one-batch", "link-down-batches-of-one"])
def test_partitioned_instance_fails_unreachable_others_complete(
        tmp_path: Path, pki: object, packages: dict[str, tuple[str, str]],
        package_server: PackageServer, fleet: Fleet, kind: str, batch_size: str,
        max_failures: int) -> None:
    with net_env(tmp_path, pki, packages, package_server, fleet, 3) as net:
        env, machines, ids = net.env, net.machines, net.ids
        machines[1].partition(kind)
        began = time.monotonic()
        status = env.deploy("1.0.0", ids, "part-1", batch_size=batch_size,
                            max_failures=max_failures, timeout=ATTEMPT_TIMEOUT)
        took = time.monotonic() - began
        print(f"\n[{kind}] run with one partitioned instance: {took:.1f} s wall")
        # Nothing waits for the deadline: a connection that never opens is cut at
        # ConnectTimeout; the margin also allows for a silent link (not expected here).
        bound = ATTEMPT_TIMEOUT + CONNECT_TIMEOUT + DEAD_LINK + OVERHEAD
        assert took < bound, f"the run took {took:.1f} s (bound {bound} s)"
        assert status.status is Status.FAILED, status.to_dict()
        first, cut, third = status.instances
        assert first.status is Status.COMPLETED, first
        assert env.current(ids[0]) == "1.0.0" and answers(machines[0]) == "1.0.0"
        assert cut.status is Status.FAILED, cut
        reason = cut.error_message
        assert reason.startswith("unreachable: "), reason
        expected = "Connection timed out" if kind == "drop" else "No route to host"
        assert expected in reason, reason
        assert env.current(ids[1]) is None, "nothing reached the partitioned machine"
        # The partition cost one connection attempt, not the attempt deadline, and it was
        # not retried (a connection that failed is not a transient module failure).
        spent = seconds(cut.started_at, cut.completed_at)
        print(f"[{kind}] partitioned instance failed after {spent:.1f} s: {reason}")
        assert spent < CONNECT_TIMEOUT + 5, f"{spent:.1f} s on the partitioned instance"
        if max_failures == 0:  # batches of one: the budget stops everything after it
            assert third.status is Status.CANCELLED, third
            assert third.error_message.startswith("not started"), third.error_message
            assert "failure budget" in third.error_message, third.error_message
            assert third.started_at is None and env.current(ids[2]) is None
        else:
            assert third.status is Status.COMPLETED, third
            assert env.current(ids[2]) == "1.0.0" and answers(machines[2]) == "1.0.0"
        left = controller_leftovers(env, "part-1", machines, cut=machines[1])
        assert left == [], "left behind on the controller:\n" + "\n".join(left)


# -- 2. a partition in the middle of a release --------------------------------------------


@dataclass
class LostMidRelease:
    """What :func:`lose_machine_mid_release` saw."""

    ended: DeployStatus  # the run's final status
    took: float  # seconds from the partition to the end of the run
    cut_at: float  # monotonic time of the partition
    timeout: int  # the attempt deadline of the release
    on_machine: list[str]  # what still ran on the machine when the run ended


def lose_machine_mid_release(env: FloyEnv, machines: list[Machine], ids: list[str],
                             phase: str, packages: dict[str, tuple[str, str]],
                             package_server: PackageServer,
                             package_dir: Path) -> LostMidRelease:
    """1.0.0 everywhere; then a release to ``ids`` in batches of one (max_failures 0), and
    the first machine partitioned (silently) while its release runs: during a restart that
    hangs (``phase="restart"``) or a slow download (``"download"``). Returns when the run
    has ended; the machine stays partitioned."""
    url, sha = packages["1.0.0"]
    start(env, "1.0.0", url, sha, ids, "base", batch_size="2")
    assert env.wait("base").status is Status.COMPLETED
    target = machines[0]
    if phase == "restart":
        version, timeout = "9.0.0", 20
        url, sha = packages["9.0.0-hang"]

        def in_flight() -> bool:  # the restart command now hangs on the machine
            return any(f"floy-hang-{ids[0]}" in line for line in target.session_commands())
    else:
        version, timeout = "2.0.0", 60
        name = package_name("2.0.0")
        # ~1,850 bytes (headers and package) at one per 3 ms: a download of about 6 s.
        url = f"{package_server.base_url}/drip/0.003/pkgs/{name}"
        sha = sha256_file(package_dir / name)
        drips = package_server.request_count("/drip/")

        def in_flight() -> bool:  # the machine is downloading
            return package_server.request_count("/drip/") > drips

    start(env, version, url, sha, ids, "mid-1", batch_size="1", max_failures=0,
          timeout=timeout)
    wait_until(in_flight, 60, f"the {phase} of {ids[0]} in flight", interval=0.05)
    status = env.service.get_deployment_status("mid-1")
    assert status.instances[0].status is Status.IN_PROGRESS, status.to_dict()
    target.partition("drop")
    cut_at = time.monotonic()
    ended = env.wait("mid-1", timeout=DEAD_LINK + OVERHEAD + 60)
    took = time.monotonic() - cut_at
    return LostMidRelease(ended, took, cut_at, timeout, target.session_commands())


def wait_release_ended_on(machine: Machine, lost: LostMidRelease, phase: str) -> float:
    """Wait until nothing runs in sshd sessions on ``machine``: the release stops by itself,
    at the latest at its deadline plus the 30 s the module may spend restarting the previous
    release. Returns seconds since the partition."""
    wait_until(lambda: not machine.session_commands(), lost.timeout + 30,
               "the release on the partitioned machine to end", interval=0.05)
    ended = time.monotonic()
    print(f"[{phase}] the release on the machine ended by itself "
          f"{ended - lost.cut_at:.1f} s after the partition")
    return ended - lost.cut_at


@pytest.mark.timeout(240)
@pytest.mark.parametrize("phase", ["restart", "download"])
def test_partition_mid_release(tmp_path: Path, pki: object,
                               packages: dict[str, tuple[str, str]],
                               package_server: PackageServer, package_dir: Path, fleet: Fleet,
                               phase: str) -> None:
    """The controller loses the machine while its release runs there: during a restart
    that hangs (the module's own deadline then switches back on the machine), or during a
    slow download (the release then completes on the machine, unseen by floy). The run ends
    within the keepalive bound, the instance is failed "unreachable", nothing of the run
    stays on the controller, the release on the machine ends by itself while the partition
    lasts, and once the link heals a probe reports what the disk holds."""
    with net_env(tmp_path, pki, packages, package_server, fleet, 2, inline=False,
                 lease_seconds=3.0) as net:
        env, machines, ids = net.env, net.machines, net.ids
        lost = lose_machine_mid_release(env, machines, ids, phase, packages, package_server,
                                        package_dir)
        target, (gone, other) = machines[0], lost.ended.instances
        bound = DEAD_LINK + LOST_PROBE + OVERHEAD
        print(f"\n[{phase}] run ended {lost.took:.1f} s after the partition "
              f"(bound {bound} s): {gone.to_dict()}")
        print(f"[{phase}] still running on the machine then: {lost.on_machine}")
        # The controller noticed the silent link through keepalives, well before the
        # attempt's deadline and Ansible's task timeout (deadline + 60 s).
        assert lost.took < bound, lost.ended.to_dict()
        # What it runs is not claimed: the probe could not reach it either.
        assert gone.current_version == "", gone
        assert "its version is unknown" in gone.error_message, gone.error_message
        assert lost.ended.status is Status.FAILED, lost.ended.to_dict()
        assert gone.status is Status.FAILED, gone
        assert gone.error_message.startswith("unreachable: "), gone.error_message
        assert target.addr in gone.error_message, gone.error_message
        assert other.status is Status.CANCELLED, other
        assert "failure budget" in other.error_message, other.error_message
        # Nothing of the run survives on the controller: no worker, no ansible-playbook,
        # no fork, no ssh client (not even an idle master) connected to the lost machine.
        left: list[str] = []

        def nothing_left() -> bool:
            left[:] = controller_leftovers(env, "mid-1", machines, cut=target)
            return not left

        try:
            wait_until(nothing_left, 5, "nothing of mid-1 left on the controller")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; left behind on the controller:\n" + "\n".join(left)
                                 + "\n\n" + ps()) from None
        # Still cut off, the release on the machine ends by itself: the hanging restart is
        # killed at the deadline and the old release restarted; the slow download finishes
        # and the new release goes live.
        wait_release_ended_on(target, lost, phase)
        on_disk = env.current(ids[0])
        assert on_disk == ("1.0.0" if phase == "restart" else "2.0.0"), on_disk
        assert answers(target) == on_disk
        target.heal()
        checks = {c.instance_id: c for c in env.service.refresh_versions(SERVICE)}
        check: VersionCheck = checks[ids[0]]
        print(f"[{phase}] probe after healing: {check.to_dict()}")
        assert check.reachable, check
        assert check.observed_version == on_disk, check
        assert check.recorded_version == on_disk or check.drift, check
        assert checks[ids[1]].observed_version == checks[ids[1]].recorded_version == "1.0.0"


class WrongVersionClaim(AssertionError):
    """floy states a version the machine does not run."""


@pytest.mark.timeout(240)
def test_lost_mid_release_status_does_not_claim_the_old_version(
        tmp_path: Path, pki: object, packages: dict[str, tuple[str, str]],
        package_server: PackageServer, package_dir: Path, fleet: Fleet) -> None:
    """floy cannot know what a machine it lost mid-release runs; it must not state it."""
    with net_env(tmp_path, pki, packages, package_server, fleet, 2, inline=False,
                 lease_seconds=3.0) as net:
        env, machines, ids = net.env, net.machines, net.ids
        lost = lose_machine_mid_release(env, machines, ids, "download", packages,
                                        package_server, package_dir)
        wait_release_ended_on(machines[0], lost, "download")
        on_disk = env.current(ids[0])
        assert on_disk == "2.0.0" and answers(machines[0]) == "2.0.0"
        claimed = env.service.get_deployment_status("mid-1").instances[0]
        print(f"\n[download] floy says, while the machine runs {on_disk}: "
              f"{claimed.to_dict()}")
        if claimed.current_version not in ("", on_disk):
            raise WrongVersionClaim(
                f"floy states {ids[0]} runs {claimed.current_version!r} (phase "
                f"{claimed.phase!r}) while its disk and its app say {on_disk}")


# -- 3. latency on every link -------------------------------------------------------------


@pytest.mark.timeout(240)
@pytest.mark.parametrize("shaping", ["delay-100ms", "tbf-512kbit"])
def test_deploy_completes_under_latency(tmp_path: Path, pki: object,
                                        packages: dict[str, tuple[str, str]],
                                        package_server: PackageServer, fleet: Fleet,
                                        shaping: str,
                                        record_property: Callable[[str, object], None]
                                        ) -> None:
    """A deploy to three machines, batches of one, with and without latency on every link."""
    proxies: list[DelayProxy] = []
    with net_env(tmp_path, pki, packages, package_server, fleet, 3) as net:
        env, machines, ids = net.env, net.machines, net.ids
        try:
            assert env.deploy("1.0.0", ids, "lat-0", batch_size="3").status is (
                Status.COMPLETED)

            def timed(package: str, run_id: str) -> float:
                close_masters(net.control_dir)  # every timed run opens its connections
                began = time.monotonic()
                status = env.deploy(package, ids, run_id, batch_size="1")
                took = time.monotonic() - began
                assert status.status is Status.COMPLETED, status.to_dict()
                assert [answers(m) for m in machines] == [package] * 3
                return took

            plain = timed("2.0.0", "lat-1")
            if shaping.startswith("delay"):
                for machine, instance_id in zip(machines, ids, strict=True):
                    proxy = DelayProxy((machine.addr, SSH_PORT), delay=0.1)
                    proxies.append(proxy)
                    fleet.pin(machine.known_hosts_line("127.0.0.1", proxy.port))
                    # The operator reaches this host through the proxy: host_vars win over
                    # the registry's ansible_host.
                    write_vars(env.settings.inventory_dir / f"host_vars/{instance_id}.yml",
                               {"ansible_host": "127.0.0.1", "ansible_port": proxy.port})
            else:
                for machine in machines:
                    machine.shape("512kbit")
            slow = timed("3.0.0", "lat-2")
            print(f"\n[{shaping}] deploy to 3 instances, batches of 1: {plain:.1f} s without "
                  f"latency, {slow:.1f} s with")
            record_property("wall_plain_s", round(plain, 2))
            record_property("wall_latency_s", round(slow, 2))
            # The latency was really on the path: every machine's SSH went through its
            # proxy, or the rate limit held packets back on every link. Not a comparison of
            # wall times: on this shared 2-core machine they vary with the load by more
            # than the latency adds.
            if proxies:
                assert all(p.bytes > 0 for p in proxies), [p.bytes for p in proxies]
            else:
                stats = [m.shaping_stats() for m in machines]
                assert all(s["bytes"] > 0 and s["overlimits"] > 0 for s in stats), stats
        finally:
            for proxy in proxies:
                proxy.close()
