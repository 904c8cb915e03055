"""``floy worker`` daemons (executor: queue): runs recorded by the service wait in the
queue; real daemon processes claim them, carry several at once, reap a dead daemon's runs,
and on SIGTERM hand back what they could not finish, which another daemon resumes."""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest

from orchestrator.engine.executors import QueueExecutor
from orchestrator.engine.reaper import UNCLAIMED_GRACE_SECONDS
from orchestrator.models import DeployParams, Status
from orchestrator.store import schema
from orchestrator.timefmt import format_time, utcnow
from sample.packages import free_port, stop_apps
from tests.helpers.floyenv import FloyEnv, make_env
from tests.helpers.wait import wait_until
from tests.integration.pg import Postgres

pytestmark = pytest.mark.integration

_NO_RUN = SimpleNamespace(lease_owner=None)

FLOY = str(Path(sys.executable).parent / "floy")
LEASE = 3.0


class Daemons:
    """Real ``floy worker`` processes over one installation; all killed at the end."""

    def __init__(self, env: FloyEnv, logs: Path) -> None:
        self.env = env
        self.logs = logs
        self.procs: list[subprocess.Popen[bytes]] = []
        s = env.settings
        self.environ = dict(os.environ, FLOY_HOME=str(s.home), FLOY_DB_URL=s.db_url,
                            FLOY_INVENTORY_DIR=str(s.inventory_dir), FLOY_CA_BUNDLE=s.ca_bundle,
                            FLOY_LEASE_SECONDS=str(s.lease_seconds), FLOY_EXECUTOR="queue")

    def start(self, *args: str, node: str = "") -> subprocess.Popen[bytes]:
        environ = dict(self.environ, **({"FLOY_NODE_NAME": node} if node else {}))
        with open(self.log(len(self.procs)), "wb") as out:
            proc = subprocess.Popen([FLOY, "worker", "--poll", "0.2", *args], env=environ,
                                    stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        self.procs.append(proc)
        return proc

    def log(self, n: int) -> Path:
        return self.logs / f"worker-{n}.log"

    def serving(self, count: int) -> None:
        """Wait until ``count`` daemons have registered and beat."""
        wait_until(lambda: len(self.env.service.store.workers.live(2 * LEASE)) >= count, 30,
                   f"{count} worker daemon(s) to register")

    def kill_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _queued(tmp_path: Path, pki: object, packages: dict[str, tuple[str, str]],
            db_url: str | None) -> Iterator[tuple[FloyEnv, Daemons]]:
    env = make_env(tmp_path, pki, packages, inline=False, lease_seconds=LEASE, db_url=db_url)
    settings = dataclasses.replace(env.settings, executor="queue")
    env = env.rebuilt(settings, QueueExecutor(settings, env.store))
    for service in ("blue", "green"):  # more services, configured like hello
        shutil.copy(settings.inventory_dir / "group_vars" / "hello.yml",
                    settings.inventory_dir / "group_vars" / f"{service}.yml")
    daemons = Daemons(env, tmp_path)
    yield env, daemons
    daemons.kill_all()
    stop_apps(env.root)
    env.store.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def queued(request: pytest.FixtureRequest, tmp_path: Path, pki: object,
           packages: dict[str, tuple[str, str]]) -> Iterator[tuple[FloyEnv, Daemons]]:
    """An installation with ``executor: queue`` and 3 s leases, on either backend."""
    db_url = (None if request.param == "sqlite"
              else str(request.getfixturevalue("postgres").new_database()))
    yield from _queued(tmp_path, pki, packages, db_url)


@pytest.fixture
def queued_pg(postgres: Postgres, tmp_path: Path, pki: object,
              packages: dict[str, tuple[str, str]]) -> Iterator[tuple[FloyEnv, Daemons]]:
    """The same on PostgreSQL only (a test that restarts the server)."""
    yield from _queued(tmp_path, pki, packages, postgres.new_database())


def deploy(env: FloyEnv, service: str, package: str, ids: list[str], run_id: str,
           **extra: object) -> None:
    url, sha = env.packages[package]
    env.service.execute_deployment(DeployParams(
        service=service, version=package.split("-")[0], instances=tuple(ids),
        package_url=url, package_sha256=sha, deploy_id=run_id, **extra))  # type: ignore[arg-type]


def test_a_queued_run_waits_for_a_daemon(queued: tuple[FloyEnv, Daemons]) -> None:
    env, daemons = queued
    ids = env.register(1)
    deploy(env, "hello", "1.0.0", ids, "q-1")
    time.sleep(1.0)  # what a per-run worker would have needed to claim it
    run = env.store.runs.get("q-1")
    assert run is not None and run.status is Status.PENDING and run.lease_owner is None
    daemons.start("--max-runs", "1")
    status = env.wait("q-1", timeout=90)
    assert status.status is Status.COMPLETED, status
    assert env.current(ids[0]) == "1.0.0"


def test_a_queued_run_is_reaped_only_once_no_daemon_lives(
        queued: tuple[FloyEnv, Daemons]) -> None:
    """Queued past the unclaimed grace: waiting for a slot while a daemon beats, orphaned
    (closed, nothing run) once none does."""
    env, _daemons = queued
    ids = env.register(1)
    deploy(env, "hello", "1.0.0", ids, "old-1")
    long_ago = format_time(utcnow() - timedelta(seconds=UNCLAIMED_GRACE_SECONDS + 5))
    with env.store.write() as conn:
        conn.execute(schema.runs.update().values(updated_at=long_ago))
    env.store.workers.register("busy:1:aa", "busy", 1, 1)
    assert env.service.reap_stale_runs() == [], "a live daemon will claim it"
    with env.store.write() as conn:
        conn.execute(schema.workers.update().values(heartbeat_at=long_ago))
    assert env.service.reap_stale_runs() == ["old-1"]
    status = env.service.get_deployment_status("old-1")
    assert status.status is Status.FAILED and "no worker claimed" in status.error_message
    assert status.instances[0].status is Status.CANCELLED
    assert env.current(ids[0]) is None


def test_two_daemons_carry_a_queue_of_deployments(queued: tuple[FloyEnv, Daemons]) -> None:
    """Six deployments of three services enqueued at once, two daemons of two runs each:
    every run completes with the right record, no run is carried twice."""
    env, daemons = queued
    fleets = {s: env.register(2, service=s) for s in ("hello", "blue", "green")}
    runs = {}
    for service, ids in fleets.items():
        for n, version in enumerate(("1.0.0", "2.0.0")):
            # one instance each: all six runs are in the queue at once
            run_id = f"{service}-{version}"
            deploy(env, service, version, [ids[n]], run_id)
            runs[run_id] = (service, ids[n], version)
    daemons.start("--max-runs", "2", node="machine-a")
    daemons.start("--max-runs", "2", node="machine-b")
    for run_id, (service, instance_id, version) in runs.items():
        status = env.wait(run_id, timeout=180)
        assert status.status is Status.COMPLETED, (run_id, status.error_message)
        assert [(i.instance_id, i.status, i.current_version) for i in status.instances] == [
            (instance_id, Status.COMPLETED, version)]
        assert env.current(instance_id, service) == version
    carried = {}
    for n in range(2):
        text = daemons.log(n).read_text()
        carried[n] = {r for r in runs if f"run {r}: completed" in text}
    assert carried[0] | carried[1] == set(runs), carried
    assert not carried[0] & carried[1], f"a run carried twice: {carried}"


def test_sigterm_hands_back_a_run_and_another_daemon_resumes_it(
        queued: tuple[FloyEnv, Daemons]) -> None:
    """A daemon stopped with no grace stops its run mid-batch, records what the disks
    say and gives the run back unfinished; the next daemon finishes it without releasing
    again what the first had completed."""
    env, daemons = queued
    ids = env.register(3)
    deploy(env, "hello", "2.0.0", ids, "hb-1")
    first = daemons.start("--max-runs", "1", "--grace", "0")
    env.wait_in_flight("hb-1", timeout=90)
    first.send_signal(signal.SIGTERM)
    assert first.wait(timeout=60) == 0, daemons.log(0).read_text()[-3000:]
    loaded = env.store.runs.with_members("hb-1")
    assert loaded is not None
    run, members = loaded
    assert (run.status, run.finished_at, run.lease_owner) == (Status.PENDING, None, None)
    assert run.error_message.startswith("handed back by worker"), run.error_message
    assert env.leftovers("hb-1") == [], "the daemon left no process of the run behind"
    assert env.store.leases.lock_holders(ids) == dict.fromkeys(ids, "hb-1"), "locks kept"
    done_before = {m.instance_id: m.started_at for m in members if m.status is Status.COMPLETED}
    assert all(m.status in (Status.PENDING, Status.COMPLETED) for m in members), members
    assert len(done_before) < len(ids), "stopped before the end"
    log = daemons.log(0).read_text()
    assert "handing back hb-1" in log and "stopped after carrying 1 run(s)" in log, log

    daemons.start("--max-runs", "1")
    status = env.wait("hb-1", timeout=120)
    assert status.status is Status.COMPLETED, status
    assert [env.current(i) for i in ids] == ["2.0.0"] * 3
    resumed = env.store.runs.with_members("hb-1")
    assert resumed is not None
    for m in resumed[1]:
        assert m.status is Status.COMPLETED and m.current_version == "2.0.0", m
        assert m.error_message == "", "a resumed instance starts afresh"
        if m.instance_id in done_before:
            assert m.started_at == done_before[m.instance_id], "not released a second time"
    assert f"hb-1 resumes with {len(ids) - len(done_before)} of 3" in daemons.log(1).read_text()


def test_a_killed_daemon_s_run_is_reaped_by_another_daemon(
        queued: tuple[FloyEnv, Daemons]) -> None:
    """SIGKILL of a daemon mid-run: a daemon started on the same machine reaps the run
    within the lease plus a reap interval: its orphaned ansible-playbook stopped, its
    instances probed."""
    env, daemons = queued
    ids = env.register(2)
    deploy(env, "hello", "1.0.0", ids, "base", batch_size="2")
    victim = daemons.start("--max-runs", "1", node="machine-a")
    assert env.wait("base", timeout=90).status is Status.COMPLETED
    deploy(env, "hello", "9.0.0-hang", ids, "k-1", timeout=120, retry_count=0)
    env.wait_in_flight("k-1", timeout=60)
    os.killpg(victim.pid, signal.SIGKILL)
    killed_at = time.monotonic()
    victim.wait()
    daemons.start("--max-runs", "1", node="machine-a")
    status = env.wait("k-1", timeout=60)
    took = time.monotonic() - killed_at
    assert status.status is Status.FAILED and "worker lost" in status.error_message, status
    # the lease (3 s) plus a reap interval (one lease) plus the probe of 2 instances
    assert took < 4 * LEASE + 15, f"closed {took:.1f} s after the kill"
    first, second = status.instances
    assert first.status is Status.FAILED and first.current_version == env.current(ids[0])
    assert second.status is Status.CANCELLED, second
    assert env.leftovers("k-1") == []


def test_a_daemon_cut_off_from_the_database_stops_hands_back_and_resumes(
        queued_pg: tuple[FloyEnv, Daemons], postgres: Postgres) -> None:
    """PostgreSQL down for 5 s (past the 3 s lease) mid-batch: the daemon's worker stops its
    playbook after 2 s without a renewal, before the lease can expire; when the server is
    back it hands the run back (the in-flight instance probed) and resumes it itself. No
    instance is left half-switched and the run completes."""
    env, daemons = queued_pg
    ids = env.register(6)  # enough batches that some are left when it stops
    deploy(env, "hello", "2.0.0", ids, "cut-1")
    daemons.start("--max-runs", "1")
    env.wait_in_flight("cut-1", timeout=90)
    postgres.restart("immediate", 5.0)
    status = env.wait("cut-1", timeout=120)
    assert status.status is Status.COMPLETED, status
    assert [(i.status, i.current_version) for i in status.instances] == [
        (Status.COMPLETED, "2.0.0")] * 6
    assert [env.current(i) for i in ids] == ["2.0.0"] * 6
    assert all(env.answers(i) == "2.0.0" for i in ids)
    log = daemons.log(0).read_text()
    assert "stopping before it can expire" in log, log[-3000:]
    assert "run cut-1 handed back" in log, log[-3000:]
    assert env.leftovers("cut-1") == []


def test_on_postgresql_a_daemon_claims_a_queued_run_as_it_is_queued(
        queued_pg: tuple[FloyEnv, Daemons]) -> None:
    """LISTEN/NOTIFY: a daemon that polls every 30 s and beats every 10 s (a 30 s lease)
    claims each of three runs queued 3 s apart within a second of its queueing."""
    env, daemons = queued_pg
    daemons.environ["FLOY_LEASE_SECONDS"] = "30"
    ids = env.register(3)
    daemons.start("--max-runs", "3", "--poll", "30")
    daemons.serving(1)
    wait_until(lambda: "listening for queued runs" in daemons.log(0).read_text(), 30,
               "the daemon to listen")
    for n, instance_id in enumerate(ids):
        time.sleep(3.0)
        began = time.monotonic()
        deploy(env, "hello", "1.0.0", [instance_id], f"nq-{n}")
        wait_until(lambda n=n: (env.store.runs.get(f"nq-{n}") or _NO_RUN).lease_owner, 10,
                   f"nq-{n} to be claimed")
        took = time.monotonic() - began
        assert took < 1.0, f"nq-{n} claimed {took:.2f} s after it was queued"
    for n in range(3):
        assert env.wait(f"nq-{n}", timeout=120).status is Status.COMPLETED


def test_a_daemon_whose_database_is_unreachable_at_start_is_a_config_error(
        tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    done = subprocess.run(
        [FLOY, "--home", str(tmp_path / "home"), "worker"], capture_output=True, text=True,
        timeout=60, env=dict(os.environ, FLOY_EXECUTOR="queue",
                             FLOY_DB_URL=f"postgresql+psycopg://floy:s3cret@127.0.0.1:{port}/x"))
    assert done.returncode == 6, (done.returncode, done.stderr)
    assert f"floy:***@127.0.0.1:{port}/x" in done.stderr, done.stderr
    assert "s3cret" not in done.stderr + done.stdout
    assert "Traceback" not in done.stderr
