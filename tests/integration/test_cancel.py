"""Cancel and crash recovery, with real workers, real ansible-playbook and real apps."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from orchestrator.engine.executors import InlineExecutor
from orchestrator.errors import ConflictError, NotFoundError
from orchestrator.models import DeployParams, DeployStatus, Status
from tests.helpers.floyenv import FloyEnv
from tests.helpers.wait import wait_until

pytestmark = pytest.mark.integration


def start(env: FloyEnv, package: str, ids: list[str], run_id: str, **extra: object) -> None:
    url, sha = env.packages[package]
    env.service.execute_deployment(DeployParams(
        service="hello", version=package.split("-")[0], instances=tuple(ids), package_url=url,
        deploy_id=run_id, package_sha256=sha, **extra))  # type: ignore[arg-type]


def test_cancel_mid_batch_stops_everything_and_tells_the_truth(
        floy_async_env: FloyEnv) -> None:
    env = floy_async_env
    ids = env.register(3)
    start(env, "1.0.0", ids, "base", batch_size="3")
    assert env.wait("base").status is Status.COMPLETED
    start(env, "9.0.0-hang", ids, "c-1", timeout=120, retry_count=0, batch_size="1")
    env.wait_in_flight("c-1")
    time.sleep(1.5)  # the restart command of hello-1 is hanging now
    assert env.leftovers("c-1"), "the run is really running"
    began = time.monotonic()
    result = env.service.cancel_deployment("c-1")
    took = time.monotonic() - began
    assert result.status is Status.CANCELLED and result.cancelled_at is not None
    assert took < 20, f"cancel took {took:.1f} s"
    status = env.service.get_deployment_status("c-1")
    assert status.status is Status.CANCELLED
    first, *rest = status.instances
    assert first.status is Status.CANCELLED and "while in progress" in first.error_message
    assert first.current_version == "1.0.0" and "runs 1.0.0" in first.error_message
    for inst in rest:
        assert inst.status is Status.CANCELLED
        assert inst.error_message.startswith("not started")
        assert inst.started_at is None
    for instance_id in ids:  # on disk: every instance on a complete release, the old one
        assert env.current(instance_id) == "1.0.0"
        releases = env.root / "hello" / instance_id / "releases"
        assert not [p for p in releases.iterdir() if p.name.startswith(".")], "no temp dirs"
        assert env.answers(instance_id) == "1.0.0"
    assert env.leftovers("c-1") == []
    versions = env.service.get_service_instance_versions("hello")
    assert versions.version_summary == {"1.0.0": 3}
    # The app restarted while the cancel switched back must still obey SIGTERM (an ignored
    # signal would be inherited from the cancelled module).
    pid = (env.root / "hello" / ids[0] / "shared" / "hello.pid").read_text().strip()
    sig_ign = next(line for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                   if line.startswith("SigIgn:"))
    assert not int(sig_ign.split()[1], 16) & (1 << (signal.SIGTERM - 1)), sig_ign
    # and the instances take the next deployment at once
    start(env, "2.0.0", ids, "c-2", batch_size="3")
    assert env.wait("c-2").status is Status.COMPLETED


def test_cancel_errors(floy_env: FloyEnv) -> None:
    ids = floy_env.register(1)
    floy_env.deploy("1.0.0", ids, "done-1")
    with pytest.raises(ConflictError, match="already finished"):
        floy_env.service.cancel_deployment("done-1")
    with pytest.raises(NotFoundError):
        floy_env.service.cancel_deployment("nope-1")


def test_cancel_of_a_run_no_worker_took_yet(floy_env: FloyEnv) -> None:
    ids = floy_env.register(2)

    class Held(InlineExecutor):  # never starts the worker: the run stays unclaimed
        def submit(self, run_id: str) -> None:
            pass

    floy_env = floy_env.rebuilt(executor=Held(floy_env.settings, floy_env.store))
    start(floy_env, "1.0.0", ids, "held-1")
    result = floy_env.service.cancel_deployment("held-1")
    assert result.status is Status.CANCELLED
    status = floy_env.service.get_deployment_status("held-1")
    assert [i.status for i in status.instances] == [Status.CANCELLED] * 2
    assert floy_env.store.leases.lock_holders(ids) == {}, "locks released"
    assert floy_env.current(ids[0]) is None


def kill_worker_mid_release(env: FloyEnv, ids: list[str], run_id: str) -> None:
    """Start a hanging release on ``ids`` and SIGKILL its worker while it is in flight."""
    start(env, "1.0.0", ids, "base", batch_size="2")
    assert env.wait("base").status is Status.COMPLETED
    start(env, "9.0.0-hang", ids, run_id, timeout=120, retry_count=0)
    env.wait_in_flight(run_id)
    time.sleep(1.0)
    run = env.store.runs.get(run_id)
    assert run is not None and run.worker_pid
    os.kill(run.worker_pid, signal.SIGKILL)
    assert env.leftovers(run_id), "ansible-playbook outlives its worker"


def assert_reaped(env: FloyEnv, ids: list[str], status: DeployStatus) -> None:
    """The guarantees of a reaped run: orphans stopped, in-flight probed, closed failed."""
    assert status.status is Status.FAILED
    assert "worker lost" in status.error_message and "orphaned" in status.error_message
    first, second = status.instances
    assert first.status is Status.FAILED and "worker lost" in first.error_message
    assert first.current_version == env.current(ids[0]) == "1.0.0"
    assert second.status is Status.CANCELLED and second.error_message.startswith("not started")
    assert env.leftovers(status.deploy_id) == []


def test_a_read_reports_a_lost_worker_and_the_next_deploy_reaps_it(
        floy_async_env: FloyEnv) -> None:
    env = floy_async_env
    ids = env.register(2)
    kill_worker_mid_release(env, ids, "k-1")
    # Once the lease (3 s here) has expired, a status read says so, and acts not at all.
    status = wait_until(
        lambda: (s := env.service.get_deployment_status("k-1")).error_message.startswith(
            "worker lost") and s, 30, "the status to report the lost worker")
    assert status.status is Status.IN_PROGRESS and "closing" in status.error_message
    env.service.history("hello")
    assert env.leftovers("k-1"), "reads never stop processes"
    assert env.store.leases.lock_holders(ids) == dict.fromkeys(ids, "k-1")
    # A deployment to the same instances reaps the run holding them, then starts.
    start(env, "2.0.0", ids, "after-1", batch_size="2")
    assert_reaped(env, ids, env.service.get_deployment_status("k-1"))
    assert env.wait("after-1").status is Status.COMPLETED


def test_a_worker_paused_past_its_lease_leaves_the_reaped_run_as_closed(
        floy_async_env: FloyEnv) -> None:
    """The CI soak's store_integrity failure (seed 1747323746, PostgreSQL, step 4): a
    database restart outlasted a live worker's lease, the reaper took the run over, stopped
    its ansible-playbook and closed it, and the worker, back, closed it a second time. Here
    the worker is paused (SIGSTOP) past its 3 s lease: once resumed it finds its writes
    refused and leaves the reaper's record as it was."""
    env = floy_async_env
    ids = env.register(2)
    start(env, "1.0.0", ids, "base", batch_size="2")
    assert env.wait("base").status is Status.COMPLETED
    start(env, "9.0.0-hang", ids, "slow-1", timeout=120, retry_count=0)
    env.wait_in_flight("slow-1")
    pid = env.service.worker_pid("slow-1")
    assert pid
    os.kill(pid, signal.SIGSTOP)
    try:
        wait_until(lambda: "slow-1" in env.service.reap_stale_runs(), 30,
                   "the reaper to take the paused worker's run over")
        closed = env.store.runs.with_members("slow-1")
        assert closed is not None and closed[0].finished_at is not None
        assert "worker lost" in closed[0].error_message
    finally:
        os.kill(pid, signal.SIGCONT)
    wait_until(lambda: not Path(f"/proc/{pid}").exists()
               or Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z",
               60, "the resumed worker to exit")
    assert env.store.runs.with_members("slow-1") == closed, "the reaper's record stands"
    log = (env.settings.home / "logs" / "slow-1.log").read_text()
    assert "leaves the run to the process that took it over" in log, log[-2000:]
    assert env.leftovers("slow-1") == []


def test_a_new_worker_reaps_a_lost_run(floy_async_env: FloyEnv) -> None:
    env = floy_async_env
    ids = env.register(2)
    other = env.register(1, prefix="other")
    kill_worker_mid_release(env, ids, "k-2")
    wait_until(lambda: env.store.leases.stale(60.0, ["k-2"]), 30, "the lease to expire")
    # a worker started for another run reaps every stale run at its start
    start(env, "1.0.0", other, "o-1")
    assert_reaped(env, ids, env.wait("k-2", timeout=60))
    assert env.wait("o-1").status is Status.COMPLETED
    assert env.store.leases.lock_holders(ids) == {}, "locks released"


def test_cancel_from_another_process(floy_async_env: FloyEnv) -> None:
    import sys

    env = floy_async_env
    ids = env.register(1)
    url, _ = env.packages["2.0.0"]
    slow = url.replace("/pkgs/", "/slow/30/pkgs/")
    env.service.execute_deployment(DeployParams(
        service="hello", version="2.0.0", instances=tuple(ids), package_url=slow,
        deploy_id="x-1", timeout=120, retry_count=0))
    env.wait_in_flight("x-1")
    floy = str(Path(sys.executable).with_name("floy"))
    proc = subprocess.run([floy, "--home", str(env.home), "--inventory-dir",
                           str(env.settings.inventory_dir), "cancel", "x-1", "--json"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    assert '"status": "cancelled"' in proc.stdout
    assert env.current(ids[0]) is None, "a download cut short leaves nothing switched"
    assert env.leftovers("x-1") == []
