"""The shared store on a real PostgreSQL server (a private cluster on loopback)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from orchestrator.errors import ConflictError
from orchestrator.events import InstanceUpdate
from orchestrator.executor import InlineExecutor
from orchestrator.models import DeployParams, InstanceRollbackParams, InstanceSpec, Status
from orchestrator.service import new_deploy_service
from orchestrator.store import RunInstanceRecord, RunRecord, Store
from orchestrator.timefmt import utcnow
from sample.packages import stop_apps
from tests.integration.conftest import make_env
from tests.integration.pg import Postgres

pytestmark = pytest.mark.integration
NOW = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def postgres() -> Iterator[Postgres]:
    try:
        server = Postgres().start()
    except RuntimeError as exc:
        if "not installed" in str(exc) and not _root():
            pytest.skip(str(exc))
        raise
    yield server
    server.stop()


def _root() -> bool:
    import os

    return os.geteuid() == 0


@pytest.fixture
def pg_store(postgres: Postgres) -> Iterator[Store]:
    store = Store.open(postgres.new_database())
    store.add_instances([InstanceSpec(f"i-{n}", "svc", "127.0.0.1", 9000 + n, {})
                         for n in range(3)])
    yield store
    store.close()


def _run(run_id: str, ids: list[str]) -> tuple[RunRecord, list[RunInstanceRecord]]:
    now = utcnow()
    run = RunRecord(run_id, "deploy", "svc", "2.0", Status.PENDING, {"instances": ids}, "t",
                    now, now)
    return run, [RunInstanceRecord(run_id, i, n, 1, Status.PENDING, "2.0")
                 for n, i in enumerate(ids)]


def test_schema_migrates_and_reopens(postgres: Postgres) -> None:
    url = postgres.new_database()
    Store.open(url).close()
    store = Store.open(url)  # second open: nothing left to migrate
    with store.read() as conn:
        assert conn.exec_driver_sql("SELECT version FROM floy_schema").scalar_one() == 3
    store.close()


def test_busy_instances_conflict_and_leases_are_exclusive(pg_store: Store) -> None:
    pg_store.create_run(*_run("r1", ["i-0", "i-1"]))
    before = pg_store.counts()
    with pytest.raises(ConflictError, match="busy in run r1"):
        pg_store.create_run(*_run("r2", ["i-2", "i-1"]))
    assert pg_store.counts() == before
    assert pg_store.acquire_lease("r1", "a", 30, 1)
    assert not pg_store.acquire_lease("r1", "b", 30, 2)
    pg_store.apply_updates("r1", [InstanceUpdate("i-0", status=Status.COMPLETED,
                                                 current_version="2.0", completed_at=NOW,
                                                 release={"version": "2.0"})])
    assert pg_store.get_instances(["i-0"])["i-0"].version == "2.0"
    pg_store.set_run_status("r1", Status.FAILED, finished=True)
    assert pg_store.busy_runs(["i-0", "i-1"]) == {}
    summary = pg_store.run_summaries("svc", 10)[0]
    assert (summary.total, summary.completed, summary.status) == (2, 1, Status.FAILED)
    page, total = pg_store.query_instances("svc", "", 2, 1)
    assert total == 3 and [p.instance_id for p in page] == ["i-1", "i-2"]


def test_twenty_writers_race_for_one_instance(postgres: Postgres) -> None:
    url = postgres.new_database()
    Store.open(url).add_instances([InstanceSpec("i-0", "svc", "127.0.0.1", 1, {})])
    stores = [Store.open(url) for _ in range(20)]
    barrier = threading.Barrier(20)
    outcomes: list[str] = []

    def attempt(n: int) -> None:
        barrier.wait()
        try:
            stores[n].create_run(*_run(f"race-{n}", ["i-0"]))
            outcomes.append("won")
        except ConflictError:
            outcomes.append("conflict")

    threads = [threading.Thread(target=attempt, args=(n,)) for n in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(outcomes) == ["conflict"] * 19 + ["won"]
    assert stores[0].counts()["instance_locks"] == 1
    for store in stores:
        store.close()


def test_a_real_deployment_with_the_shared_store(
        postgres: Postgres, tmp_path: Path, pki: object,
        packages: dict[str, tuple[str, str]]) -> None:
    env = make_env(tmp_path, pki, packages, inline=True, db_url=postgres.new_database())
    try:
        ids = env.register(2)
        assert env.deploy("1.0.0", ids, "pg-1", batch_size="2").status is Status.COMPLETED
        status = env.deploy("2.0.0", ids, "pg-2", batch_size="1")
        assert status.status is Status.COMPLETED, status.error_message
        assert all(env.answers(i) == "2.0.0" for i in ids)
        env.service.rollback_instance(InstanceRollbackParams(
            instance_id=ids[0], target_version="1.0.0", rollback_id="pg-rb"))
        assert env.service.get_deployment_status("pg-rb").status is Status.COMPLETED
        versions = env.service.get_service_instance_versions("hello")
        assert versions.version_summary == {"1.0.0": 1, "2.0.0": 1}
        # a second orchestrator process elsewhere would see the same truth
        other = new_deploy_service(logging.getLogger("other"),
                                   InlineExecutor(env.settings, Store.open(env.settings.db_url)),
                                   Store.open(env.settings.db_url), env.settings)
        assert other.get_deployment_status("pg-2").progress.completed == 2
        with pytest.raises(ConflictError):
            other.execute_deployment(DeployParams(
                service="hello", version="3.0.0", instances=tuple(ids),
                package_url=packages["3.0.0"][0], deploy_id="pg-2"))
    finally:
        stop_apps(env.root)
        env.store.close()
