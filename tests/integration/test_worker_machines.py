"""``floy worker`` daemons on three simulated machines sharing one PostgreSQL.

Each machine is a network namespace made by the test (tests/integration/netns.py), joined
to the controller by a veth pair. PostgreSQL runs on the controller side and listens on the
root ends of the veths, so a daemon's database traffic crosses its machine's link: cutting
the link cuts the daemon off from the database. Each daemon has its own floy home and its
``node_name``; the package server is relayed into every machine. The instances use the
local connection, so a release runs on the machine of the daemon that carries it (its
hello app too); their directories are on the shared filesystem, where the test reads them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from orchestrator.engine.executors import QueueExecutor
from orchestrator.models import DeployParams, Status
from sample.packages import stop_apps
from sample.pkgserver import PackageServer
from tests.helpers.floyenv import FloyEnv, make_env
from tests.helpers.wait import wait_until
from tests.integration.netns import IP, Machine, reap_stale, require_netns
from tests.integration.pg import Postgres

pytestmark = pytest.mark.integration

FLOY = str(Path(sys.executable).parent / "floy")
LEASE = 3.0
SERVICES = ("hello", "blue", "green", "red")


@dataclass
class Cluster:
    """Three machines, their daemons, one PostgreSQL, and the controller's floy."""

    env: FloyEnv
    machines: list[Machine]
    pg: Postgres
    database: str
    logs: Path
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, machine: Machine, *args: str) -> subprocess.Popen[bytes]:
        """``floy worker`` inside ``machine``, on its own home, reaching PostgreSQL across
        the machine's veth."""
        s = self.env.settings
        home = self.logs / f"home-{machine.netns}"
        environ = dict(os.environ, FLOY_HOME=str(home),
                       FLOY_DB_URL=f"postgresql+psycopg://floy@{machine.root_addr}:"
                                   f"{self.pg.port}/{self.database}",
                       FLOY_INVENTORY_DIR=str(s.inventory_dir), FLOY_CA_BUNDLE=s.ca_bundle,
                       FLOY_LEASE_SECONDS=str(LEASE), FLOY_EXECUTOR="queue",
                       FLOY_NODE_NAME=machine.netns)
        with open(self.log(machine), "ab") as out:
            proc = subprocess.Popen(
                [IP, "netns", "exec", machine.netns, FLOY, "worker", "--poll", "0.2", *args],
                env=environ, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        self.procs[machine.netns] = proc
        return proc

    def log(self, machine: Machine) -> Path:
        return self.logs / f"worker-{machine.netns}.log"

    def serving(self, count: int) -> None:
        wait_until(lambda: len(self.env.store.workers.live(2 * LEASE)) >= count, 60,
                   f"{count} daemon(s) to register")

    def carrier(self, run_id: str) -> Machine:
        """The machine whose daemon holds ``run_id``'s lease."""
        run = wait_until(lambda: (r := self.env.store.runs.get(run_id)) and r.lease_owner
                         and r, 60, f"a daemon to claim {run_id}")
        node = run.lease_owner.split(":", 1)[0]
        return next(m for m in self.machines if m.netns == node)

    def lose(self, machine: Machine) -> None:
        """The machine is lost: SIGKILL everything running in it."""
        for pid in machine.pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


@pytest.fixture
def cluster(tmp_path: Path, pki: object, packages: dict[str, tuple[str, str]],
            package_server: PackageServer) -> Iterator[Cluster]:
    require_netns()
    reap_stale(tmp_path)
    port = urllib.parse.urlsplit(package_server.base_url).port
    assert port is not None
    machines: list[Machine] = []
    pg: Postgres | None = None
    env: FloyEnv | None = None
    cluster = None
    try:
        for _ in range(3):
            machine = Machine.claim(tmp_path / "machines")
            machines.append(machine)
            machine.serve_port(port)
        pg = Postgres(listen=tuple(m.root_addr for m in machines),
                      trust="10.213.0.0/16").start()
        url = pg.new_database()
        env = make_env(tmp_path, pki, packages, inline=False, lease_seconds=LEASE, db_url=url)
        settings = dataclasses.replace(env.settings, executor="queue")
        env = env.rebuilt(settings, QueueExecutor(settings, env.store))
        for service in SERVICES[1:]:
            shutil.copy(settings.inventory_dir / "group_vars" / "hello.yml",
                        settings.inventory_dir / "group_vars" / f"{service}.yml")
        cluster = Cluster(env, machines, pg, url.rsplit("/", 1)[1], tmp_path)
        yield cluster
    finally:
        if cluster is not None:
            for proc in cluster.procs.values():
                if proc.poll() is None:
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        for machine in machines:
            if machine.partitioned:
                machine.heal()
        if env is not None:
            stop_apps(env.root)
            env.store.close()
        for machine in reversed(machines):
            machine.destroy()
        if pg is not None:
            pg.stop()


def deploy(env: FloyEnv, service: str, package: str, ids: list[str], run_id: str,
           **extra: object) -> None:
    url, sha = env.packages[package]
    env.service.execute_deployment(DeployParams(
        service=service, version=package.split("-")[0], instances=tuple(ids),
        package_url=url, package_sha256=sha, deploy_id=run_id, **extra))  # type: ignore[arg-type]


def test_three_machines_carry_twelve_deployments_of_four_services(cluster: Cluster) -> None:
    env = cluster.env
    for machine in cluster.machines:
        cluster.start(machine, "--max-runs", "2")
    cluster.serving(3)
    runs = {}
    for service in SERVICES:
        for n, instance_id in enumerate(env.register(3, service=service)):
            run_id = f"{service}-{n}"
            deploy(env, service, ("1.0.0", "2.0.0", "3.0.0")[n], [instance_id], run_id)
            runs[run_id] = (service, instance_id, ("1.0.0", "2.0.0", "3.0.0")[n])
    for run_id, (service, instance_id, version) in runs.items():
        status = env.wait(run_id, timeout=300)
        assert status.status is Status.COMPLETED, (run_id, status.error_message)
        assert [(i.instance_id, i.status, i.current_version) for i in status.instances] == [
            (instance_id, Status.COMPLETED, version)], run_id
        assert env.current(instance_id, service) == version
    carried = {m.netns: {r for r in runs if f"run {r}: completed" in cluster.log(m).read_text()}
               for m in cluster.machines}
    assert sorted(r for done in carried.values() for r in done) == sorted(runs), carried
    assert all(carried.values()), f"every machine carried runs: {carried}"


def test_a_lost_machine_s_run_is_closed_by_another_machine(cluster: Cluster) -> None:
    env = cluster.env
    ids = env.register(2)
    cluster.start(cluster.machines[0], "--max-runs", "1")
    deploy(env, "hello", "1.0.0", ids, "base", batch_size="2")
    assert env.wait("base", timeout=120).status is Status.COMPLETED
    for machine in cluster.machines[1:]:
        cluster.start(machine, "--max-runs", "1")
    cluster.serving(3)
    deploy(env, "hello", "9.0.0-hang", ids, "lost-1", timeout=120, retry_count=0)
    env.wait_in_flight("lost-1", timeout=60)
    victim = cluster.carrier("lost-1")
    cluster.lose(victim)
    lost_at = time.monotonic()
    status = env.wait("lost-1", timeout=60)
    took = time.monotonic() - lost_at
    assert status.status is Status.FAILED, status
    assert "worker lost" in status.error_message
    assert "ran on another machine" in status.error_message, status.error_message
    first, second = status.instances
    assert first.status is Status.FAILED and first.current_version == env.current(ids[0])
    assert "the instance runs" in first.error_message, "probed from the other machine"
    assert second.status is Status.CANCELLED, second
    # the lease, a reap interval (a third of a lease) and one probe
    assert took < LEASE + 5 + 3, f"closed {took:.1f} s after the machine was lost"
    print(f"lost machine's run closed {took:.1f} s after the loss (lease {LEASE} s)")


def test_a_cancel_from_a_fourth_process_reaches_the_machine_carrying_the_run(
        cluster: Cluster) -> None:
    env = cluster.env
    ids = env.register(2)
    for machine in cluster.machines:
        cluster.start(machine, "--max-runs", "1")
    deploy(env, "hello", "1.0.0", ids, "base", batch_size="2")
    assert env.wait("base", timeout=120).status is Status.COMPLETED
    deploy(env, "hello", "9.0.0-hang", ids, "c-1", timeout=120, retry_count=0)
    env.wait_in_flight("c-1", timeout=60)
    carrier = cluster.carrier("c-1")
    s = env.settings
    asked = time.monotonic()
    done = subprocess.run(
        [FLOY, "cancel", "c-1"], capture_output=True, text=True, timeout=120,
        env=dict(os.environ, FLOY_HOME=str(s.home), FLOY_DB_URL=s.db_url,
                 FLOY_INVENTORY_DIR=str(s.inventory_dir), FLOY_EXECUTOR="queue"))
    assert done.returncode in (0, 1), done.stderr
    status = env.wait("c-1", timeout=60)
    took = time.monotonic() - asked
    assert status.status is Status.CANCELLED, status
    assert [i.status for i in status.instances] == [Status.CANCELLED] * 2
    assert status.instances[0].current_version == env.current(ids[0]) == "1.0.0"
    assert env.leftovers("c-1") == [], f"nothing of the run left on {carrier.netns}"
    print(f"cancel from the controller honoured on {carrier.netns} in {took:.1f} s")


def test_a_machine_cut_off_from_the_database_for_20_s(cluster: Cluster) -> None:
    """The daemon's link down for 20 s mid-batch. It stops its playbook 2 s after its last
    renewal (before its 3 s lease can expire); another machine's daemon reaps the run once
    the lease has expired and probes its instances; when the link returns, the cut daemon's
    writes are refused and it leaves the run. The record ends as the disks are: no instance
    half-switched, none recorded on a version its disk does not run."""
    env = cluster.env
    ids = env.register(6)
    cut = cluster.machines[0]
    cluster.start(cut, "--max-runs", "1")
    deploy(env, "hello", "1.0.0", ids, "base", batch_size="6")
    assert env.wait("base", timeout=120).status is Status.COMPLETED
    deploy(env, "hello", "2.0.0", ids, "cut-1")
    env.wait_in_flight("cut-1", timeout=60)
    assert cluster.carrier("cut-1") is cut
    for machine in cluster.machines[1:]:
        cluster.start(machine, "--max-runs", "1")
    cut.partition("link")
    heal_at = time.monotonic() + 20.0
    try:
        status = env.wait("cut-1", timeout=60)
        assert status.status is Status.FAILED and "worker lost" in status.error_message
        time.sleep(max(0.0, heal_at - time.monotonic()))  # the rest of the 20 s outage
    finally:
        cut.heal()
    text = cluster.log(cut)
    wait_until(lambda: "leaves the run" in text.read_text(), 60,
               "the cut daemon to find its run taken over")
    final = env.service.get_deployment_status("cut-1")
    assert final.finished_at == status.finished_at, "the reaper's record stands"
    for instance in final.instances:
        on_disk = env.current(instance.instance_id)
        assert on_disk in ("1.0.0", "2.0.0"), instance
        if instance.status is Status.COMPLETED or "the instance runs" in instance.error_message:
            assert instance.current_version == on_disk, instance
        else:
            assert instance.status is Status.CANCELLED and on_disk == "1.0.0", instance
    assert env.leftovers("cut-1") == []
    assert "stopping before it can expire" in text.read_text()
