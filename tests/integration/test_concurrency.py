"""Concurrency and load: racing submissions, parallel runs, many readers during a run.

Racing callers each open their own Store on the same database file (as separate floy
processes would); an executor that starts nothing keeps the races about the store alone.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml

from orchestrator.engine.executors import InlineExecutor
from orchestrator.errors import ConflictError
from orchestrator.models import DeployParams, DeployResult, InstanceQueryParams, Status
from orchestrator.service import FloyDeployService, new_deploy_service
from orchestrator.store import Store
from tests.helpers.floyenv import FloyEnv
from tests.helpers.store import table_counts
from tests.helpers.wait import wait_until

pytestmark = pytest.mark.integration
FLOY = str(Path(sys.executable).with_name("floy"))
RACERS = 20


class Held(InlineExecutor):
    """An executor that never starts a worker: the run stays recorded and unclaimed."""

    def submit(self, run_id: str) -> None:
        pass


def own_service(env: FloyEnv, executor: Any = None) -> FloyDeployService:
    """A service over its own Store on the same database file (like another process)."""
    store = Store.open(env.settings.db_url)
    return new_deploy_service(logging.getLogger("race"),
                              executor or Held(env.settings, store), store, env.settings)


def race(count: int, prepare: Callable[[int], Any], attempt: Callable[[Any, int], Any]
         ) -> list[tuple[str, Any]]:
    """Run ``attempt`` in ``count`` threads released at the same instant.

    Returns ("ok", result) or ("error", exception) per thread, in thread order.
    """
    barrier = threading.Barrier(count)
    prepared = [prepare(i) for i in range(count)]

    def one(i: int) -> tuple[str, Any]:
        barrier.wait(timeout=30)
        try:
            return ("ok", attempt(prepared[i], i))
        except Exception as exc:  # every outcome is inspected by the caller
            return ("error", exc)

    try:
        with ThreadPoolExecutor(max_workers=count) as pool:
            return list(pool.map(one, range(count)))
    finally:
        for item in prepared:
            if isinstance(item, FloyDeployService):
                item.store.close()


def params(env: FloyEnv, ids: list[str], deploy_id: str, package: str = "1.0.0",
           service: str = "hello", **extra: Any) -> DeployParams:
    url, sha = env.packages[package]
    return DeployParams(service=service, version=package.split("-")[0], instances=tuple(ids),
                        package_url=url, deploy_id=deploy_id, package_sha256=sha, **extra)


def test_overlapping_runs_on_one_instance_exactly_one_wins(floy_env: FloyEnv) -> None:
    env = floy_env
    ids = env.register(2)
    outcomes = race(RACERS, lambda i: own_service(env),
                    lambda svc, i: svc.execute_deployment(params(env, ids, f"race-{i}")))
    winners = [r for kind, r in outcomes if kind == "ok"]
    errors = [e for kind, e in outcomes if kind == "error"]
    assert len(winners) == 1, outcomes
    assert all(isinstance(e, ConflictError) for e in errors), errors
    assert len(errors) == RACERS - 1
    assert all("busy in run" in str(e) or "conflicts with a run" in str(e) for e in errors)
    counts = table_counts(env.store)
    assert counts["runs"] == 1 and counts["run_instances"] == 2
    assert counts["instance_locks"] == 2
    assert set(env.store.leases.lock_holders(ids).values()) == {winners[0].deploy_id}


def test_identical_resubmission_in_a_race_returns_the_one_run(floy_env: FloyEnv) -> None:
    env = floy_env
    ids = env.register(1)
    same = params(env, ids, "same-1")
    outcomes = race(10, lambda i: own_service(env), lambda svc, i: svc.execute_deployment(same))
    errors = [e for kind, e in outcomes if kind == "error"]
    assert errors == [], errors
    results: list[DeployResult] = [r for _, r in outcomes]
    assert len({(r.deploy_id, r.started_at, r.total_instances) for r in results}) == 1
    assert table_counts(env.store)["runs"] == 1


def test_different_payload_under_a_raced_id_is_a_conflict(floy_env: FloyEnv) -> None:
    env = floy_env
    ids = env.register(1)
    outcomes = race(
        10, lambda i: own_service(env),
        lambda svc, i: svc.execute_deployment(params(env, ids, "same-2", timeout=100 + i)))
    assert sum(1 for kind, _ in outcomes if kind == "ok") == 1, outcomes
    assert all(isinstance(e, ConflictError) for kind, e in outcomes if kind == "error")
    assert table_counts(env.store)["runs"] == 1


@pytest.mark.slow
def test_twenty_cli_processes_race_for_one_instance(floy_async_env: FloyEnv) -> None:
    """The winner's restart command hangs, so its run holds the instance until cancelled:
    every other process, however late it starts, must meet a busy instance."""
    env = floy_async_env
    ids = env.register(1)
    url, sha = env.packages["9.0.0-hang"]
    base = dict(os.environ, FLOY_HOME=str(env.home),
                FLOY_INVENTORY_DIR=str(env.settings.inventory_dir),
                FLOY_CA_BUNDLE=env.settings.ca_bundle, FLOY_LEASE_SECONDS="3")
    procs = [subprocess.Popen([FLOY, "deploy", "hello", "9.0.0", "-i", ids[0], "--url", url,
                               "--sha256", sha, "--deploy-id", f"cli-race-{i}", "--detach",
                               "--timeout", "120", "--retries", "0"],
                              env=base, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
             for i in range(RACERS)]
    results = [(p.wait(timeout=120), *p.communicate()) for p in procs]
    codes = sorted(code for code, _, _ in results)
    winners = [f"cli-race-{i}" for i, (code, _, _) in enumerate(results) if code == 0]
    try:
        assert codes == [0] + [4] * (RACERS - 1), results
        assert all("busy in run" in err or "conflicts with a run" in err
                   for code, _, err in results if code == 4)
        assert not any("Traceback" in err or "locked" in err for _, _, err in results)
        assert table_counts(env.store)["runs"] == 1
    finally:
        for run_id in winners:
            result = env.service.cancel_deployment(run_id)
            assert result.status is Status.CANCELLED
    assert env.current(ids[0]) is None, "the hanging release was switched back"
    assert env.store.leases.lock_holders(ids) == {}


def test_runs_of_different_services_at_once(floy_async_env: FloyEnv) -> None:
    env = floy_async_env
    group_vars = env.settings.inventory_dir / "group_vars"
    hello_vars = yaml.safe_load((group_vars / "hello.yml").read_text())
    (group_vars / "hola.yml").write_text(yaml.safe_dump(hello_vars))
    hello = env.register(2)
    hola = env.register(2, service="hola")
    began = time.monotonic()
    slow = params(env, hello, "multi-hello", batch_size="1")
    # each hello download waits 1 s at the server, so the two runs surely overlap
    slow = dataclasses.replace(slow, package_url=slow.package_url.replace("/pkgs/",
                                                                          "/slow/1/pkgs/"))
    env.service.execute_deployment(slow)
    env.service.execute_deployment(params(env, hola, "multi-hola", package="2.0.0",
                                          service="hola", batch_size="1"))
    first = env.wait("multi-hello")
    second = env.wait("multi-hola")
    took = time.monotonic() - began
    assert first.status is Status.COMPLETED, [i.error_message for i in first.instances]
    assert second.status is Status.COMPLETED, [i.error_message for i in second.instances]
    # they overlapped: the second started before the first finished
    assert first.finished_at is not None and second.instances[0].started_at is not None
    assert second.instances[0].started_at < first.finished_at, "the runs overlapped"
    for instance_id in hello:
        assert env.current(instance_id) == "1.0.0" and env.answers(instance_id) == "1.0.0"
    for instance_id in hola:
        assert env.current(instance_id, service="hola") == "2.0.0"
        assert env.answers(instance_id) == "2.0.0"
    assert env.service.get_service_instance_versions("hello").version_summary == {"1.0.0": 2}
    assert env.service.get_service_instance_versions("hola").version_summary == {"2.0.0": 2}
    assert took < 120


RANK = {Status.PENDING: 0, Status.IN_PROGRESS: 1, Status.COMPLETED: 2, Status.FAILED: 2,
        Status.CANCELLED: 2}


@pytest.mark.slow
def test_fifty_readers_during_a_deployment(floy_async_env: FloyEnv) -> None:
    env = floy_async_env
    ids = env.register(6)
    run_id = "busy-1"
    env.service.execute_deployment(params(env, ids, run_id, batch_size="2"))
    stop = threading.Event()
    errors: list[str] = []
    reads = [0] * 50

    def reader(n: int) -> None:
        svc = own_service(env)
        last_done = -1
        last_rank = dict.fromkeys(ids, 0)

        def read_once() -> bool:
            """One consistent read; True once the run has ended (or the test stops us)."""
            nonlocal last_done
            if stop.is_set():
                return True
            status = svc.get_deployment_status(run_id)
            p = status.progress
            if p.total != 6 or p.completed + p.failed + p.cancelled + p.pending != p.total:
                errors.append(f"reader {n}: inconsistent progress {p}")
            done = p.completed + p.failed + p.cancelled
            if done < last_done:
                errors.append(f"reader {n}: finished count went back {last_done}->{done}")
            last_done = done
            for inst in status.instances:
                rank = RANK[inst.status]
                if rank < last_rank[inst.instance_id]:
                    errors.append(f"reader {n}: {inst.instance_id} went back to "
                                  f"{inst.status.value}")
                last_rank[inst.instance_id] = rank
            if status.status.is_terminal and p.pending:
                errors.append(f"reader {n}: run {status.status.value} with pending {p}")
            page = svc.get_service_instances(InstanceQueryParams(service_name="hello",
                                                                 limit=10))
            if page.total != 6 or len(page.instances) != 6:
                errors.append(f"reader {n}: instances page {page.total}")
            reads[n] += 1
            return status.status.is_terminal and status.finished_at is not None

        try:
            wait_until(read_once, 60, f"reader {n} to see {run_id} end", interval=0.01)
        except Exception as exc:  # "database is locked" or anything else is a failure
            errors.append(f"reader {n}: {type(exc).__name__}: {exc}")
        finally:
            svc.store.close()

    threads = [threading.Thread(target=reader, args=(n,)) for n in range(50)]
    for thread in threads:
        thread.start()
    final = env.wait(run_id, timeout=90)
    stop.set()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == [], errors[:10]
    assert final.status is Status.COMPLETED, [i.error_message for i in final.instances]
    assert all(count > 0 for count in reads), reads
    assert sum(reads) > 100, f"only {sum(reads)} reads"
