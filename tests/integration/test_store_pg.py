"""The shared store on a real PostgreSQL server (a private cluster on loopback): what only a
server database has, writers racing from separate connections and a real deployment seen by a
second orchestrator. The contract both backends keep is tests/integration/test_store_contract.py;
the ``postgres`` fixture is in tests/integration/conftest.py."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import pytest

from orchestrator.domain.records import RunInstanceRecord, RunRecord
from orchestrator.domain.request import RunRequest
from orchestrator.engine.executors import InlineExecutor
from orchestrator.errors import ConflictError
from orchestrator.models import DeployParams, InstanceRollbackParams, InstanceSpec, Status
from orchestrator.service import new_deploy_service
from orchestrator.store import Store
from orchestrator.timefmt import utcnow
from sample.packages import stop_apps
from tests.helpers.floyenv import make_env
from tests.helpers.store import table_counts
from tests.integration.pg import Postgres

pytestmark = pytest.mark.integration


def _run(run_id: str, ids: list[str]) -> tuple[RunRecord, list[RunInstanceRecord]]:
    now = utcnow()
    run = RunRecord(run_id, "deploy", "svc", "2.0", Status.PENDING, RunRequest(tuple(ids)), "t",
                    now, now)
    return run, [RunInstanceRecord(run_id, i, n, 1, Status.PENDING, "2.0")
                 for n, i in enumerate(ids)]


def test_twenty_writers_race_for_one_instance(postgres: Postgres) -> None:
    url = postgres.new_database()
    Store.open(url).instances.add([InstanceSpec("i-0", "svc", "127.0.0.1", 1, {})])
    stores = [Store.open(url) for _ in range(20)]
    barrier = threading.Barrier(20)
    outcomes: list[str] = []

    def attempt(n: int) -> None:
        barrier.wait()
        try:
            stores[n].runs.create(*_run(f"race-{n}", ["i-0"]))
            outcomes.append("won")
        except ConflictError:
            outcomes.append("conflict")

    threads = [threading.Thread(target=attempt, args=(n,)) for n in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(outcomes) == ["conflict"] * 19 + ["won"]
    assert table_counts(stores[0])["instance_locks"] == 1
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
