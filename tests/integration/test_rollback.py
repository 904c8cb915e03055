"""Rollbacks: fast path, package URL, history, batches, refusals, force, auto-rollback."""

from __future__ import annotations

import json
import shutil
import time

import pytest
import yaml

from orchestrator.errors import ConflictError, NotFoundError, ValidationError
from orchestrator.models import (
    BatchRollbackParams,
    DeployParams,
    InstanceRollbackParams,
    InstanceSpec,
    Status,
)
from sample.packages import free_port
from sample.pkgserver import PackageServer
from tests.helpers.floyenv import FloyEnv
from tests.helpers.store import table_counts

pytestmark = pytest.mark.integration


def on_two_versions(env: FloyEnv, count: int) -> list[str]:
    ids = env.register(count)
    assert env.deploy("1.0.0", ids, "r-v1", batch_size=str(count)).status is Status.COMPLETED
    assert env.deploy("2.0.0", ids, "r-v2", batch_size=str(count)).status is Status.COMPLETED
    return ids


def forget_on_host(env: FloyEnv, instance_id: str, version: str) -> None:
    """Remove a release and its record from the host, as pruning would."""
    base = env.root / "hello" / instance_id
    shutil.rmtree(base / "releases" / version)
    (base / ".floy" / "releases" / f"{version}.json").unlink()


def test_fast_path_switches_without_downloading(floy_env: FloyEnv,
                                                package_server: PackageServer) -> None:
    ids = on_two_versions(floy_env, 2)
    before = package_server.request_count("hello-1.0.0")
    result = floy_env.service.rollback_instance(InstanceRollbackParams(
        instance_id=ids[0], target_version="1.0.0", rollback_id="rb-fast"))
    assert result.rollback_id == "rb-fast" and result.instance_id == ids[0]
    status = floy_env.service.get_deployment_status("rb-fast")
    assert status.kind == "rollback" and status.status is Status.COMPLETED, status.error_message
    inst = status.instances[0]
    assert (inst.previous_version, inst.current_version) == ("2.0.0", "1.0.0")
    assert package_server.request_count("hello-1.0.0") == before, "no download happened"
    assert floy_env.current(ids[0]) == "1.0.0" and floy_env.answers(ids[0]) == "1.0.0"
    assert floy_env.current(ids[1]) == "2.0.0", "the other instance is untouched"
    summary = floy_env.service.get_service_instance_versions("hello").version_summary
    assert summary == {"1.0.0": 1, "2.0.0": 1}


def test_rollback_via_recorded_history(floy_env: FloyEnv,
                                       package_server: PackageServer) -> None:
    ids = on_two_versions(floy_env, 1)
    forget_on_host(floy_env, ids[0], "1.0.0")
    before = package_server.request_count("hello-1.0.0")
    floy_env.service.rollback_instance(InstanceRollbackParams(
        instance_id=ids[0], target_version="1.0.0", rollback_id="rb-hist"))
    status = floy_env.service.get_deployment_status("rb-hist")
    assert status.status is Status.COMPLETED, status.error_message
    assert package_server.request_count("hello-1.0.0") == before + 1, "fetched from history"
    assert floy_env.answers(ids[0]) == "1.0.0"


def test_rollback_via_package_url(floy_env: FloyEnv) -> None:
    ids = on_two_versions(floy_env, 1)
    url, _ = floy_env.packages["3.0.0"]
    with pytest.raises(ValidationError, match="never completed"):
        floy_env.service.rollback_instance(InstanceRollbackParams(
            instance_id=ids[0], target_version="3.0.0"))
    floy_env.service.rollback_instance(InstanceRollbackParams(
        instance_id=ids[0], target_version="3.0.0", package_url=url, rollback_id="rb-url"))
    status = floy_env.service.get_deployment_status("rb-url")
    assert status.status is Status.COMPLETED, status.error_message
    assert floy_env.answers(ids[0]) == "3.0.0"
    history = floy_env.store.history.releases(ids[0])
    assert history[0]["version"] == "3.0.0" and history[0]["package_url"] == url


def test_failed_release_is_never_a_rollback_target(floy_env: FloyEnv) -> None:
    ids = floy_env.register(1)
    floy_env.deploy("1.0.0", ids, "f-v1")
    failed = floy_env.deploy("9.0.0-crash", ids, "f-crash", version="9.0.0", retry_count=0)
    assert failed.status is Status.FAILED
    before = table_counts(floy_env.store)
    with pytest.raises(ValidationError) as err:
        floy_env.service.rollback_instance(InstanceRollbackParams(
            instance_id=ids[0], target_version="9.0.0"))
    assert err.value.field == "target_version" and "never completed" in str(err.value)
    assert table_counts(floy_env.store) == before, "nothing stored"
    with pytest.raises(NotFoundError):
        floy_env.service.rollback_instance(InstanceRollbackParams(
            instance_id="ghost-1", target_version="1.0.0"))


def test_batch_rollback_in_batches(floy_env: FloyEnv) -> None:
    ids = on_two_versions(floy_env, 3)
    result = floy_env.service.rollback_batch(BatchRollbackParams(
        service="hello", target_version="1.0.0", instances=tuple(ids), batch_size="2",
        rollback_id="rb-batch"))
    assert result.total_instances == 3 and result.instances == tuple(ids)
    status = floy_env.service.get_deployment_status("rb-batch")
    assert status.status is Status.COMPLETED, status.error_message
    assert [i.batch for i in status.instances] == [1, 1, 2]
    third = status.instances[2]
    assert third.started_at >= max(i.completed_at for i in status.instances[:2])  # type: ignore[operator, type-var]
    assert all(floy_env.answers(i) == "1.0.0" for i in ids)
    with pytest.raises(ValidationError) as err:
        floy_env.service.rollback_batch(BatchRollbackParams(
            service="hello", target_version="0.0.1", instances=tuple(ids)))
    assert err.value.field == "instances[0]"


def test_rollback_without_a_version_goes_to_the_previous_one(floy_env: FloyEnv) -> None:
    ids = on_two_versions(floy_env, 2)
    result = floy_env.service.rollback_instance(InstanceRollbackParams(
        instance_id=ids[0], rollback_id="rb-prev"))
    assert result.target_version == "1.0.0", "resolved before the run was recorded"
    status = floy_env.service.get_deployment_status("rb-prev")
    assert status.status is Status.COMPLETED, status.error_message
    assert (status.instances[0].previous_version, status.instances[0].current_version,
            status.instances[0].target_version) == ("2.0.0", "1.0.0", "1.0.0")
    assert floy_env.answers(ids[0]) == "1.0.0" and floy_env.answers(ids[1]) == "2.0.0"
    # The same request again under its ID is the same run, not a new resolution.
    same = floy_env.service.rollback_instance(InstanceRollbackParams(
        instance_id=ids[0], rollback_id="rb-prev"))
    assert (same.rollback_id, same.target_version) == ("rb-prev", "1.0.0")
    # A second rollback toggles back to the version the first one left.
    again = floy_env.service.rollback_instance(InstanceRollbackParams(instance_id=ids[0]))
    assert again.target_version == "2.0.0"
    assert floy_env.service.get_deployment_status(again.rollback_id).status is Status.COMPLETED
    assert floy_env.answers(ids[0]) == "2.0.0"
    # Both on 2.0.0, both from 1.0.0: a batch without a version takes them back to 1.0.0.
    batch = floy_env.service.rollback_batch(BatchRollbackParams(
        service="hello", target_version="", instances=tuple(ids), batch_size="2"))
    assert batch.target_version == "1.0.0"
    assert floy_env.service.get_deployment_status(batch.rollback_id).status is Status.COMPLETED
    assert all(floy_env.answers(i) == "1.0.0" for i in ids)


def test_rollback_without_a_version_refuses_an_unknown_previous(floy_env: FloyEnv) -> None:
    ids = floy_env.register(3)
    assert floy_env.deploy("1.0.0", ids[:2], "u-v1", batch_size="2").status is Status.COMPLETED
    assert floy_env.deploy("2.0.0", ids[:1], "u-v2").status is Status.COMPLETED
    assert floy_env.deploy("2.0.0", ids[:1], "u-v2-again").status is Status.COMPLETED
    assert floy_env.service.rollback_instance(InstanceRollbackParams(
        instance_id=ids[0])).target_version == "1.0.0", "a re-install is no previous version"
    before = table_counts(floy_env.store)
    for instance_id, why in ((ids[2], "no recorded version"),
                             (ids[1], "'1.0.0' is the first version floy released there")):
        with pytest.raises(ValidationError) as err:
            floy_env.service.rollback_instance(InstanceRollbackParams(instance_id=instance_id))
        assert err.value.field == "target_version"
        assert f"no previous version of {instance_id!r} is known" in err.value.reason
        assert why in err.value.reason
    for batch, words in (((ids[0], ids[1]), "no previous version of 'hello-2' is known"),
                         ((ids[0], ids[2]), "run different versions (1.0.0: hello-1; none: "
                                            "hello-3)")):
        with pytest.raises(ValidationError) as err:
            floy_env.service.rollback_batch(BatchRollbackParams(
                service="hello", target_version="", instances=batch))
        assert err.value.field == "target_version" and words in err.value.reason
    assert table_counts(floy_env.store) == before, "nothing stored"


def test_forced_rollback_over_a_busy_instance(floy_async_env: FloyEnv) -> None:
    env = floy_async_env
    ids = env.register(1)
    url1, sha1 = env.packages["1.0.0"]
    env.service.execute_deployment(DeployParams(
        service="hello", version="1.0.0", instances=tuple(ids), package_url=url1,
        deploy_id="b-v1", package_sha256=sha1))
    assert env.wait("b-v1").status is Status.COMPLETED
    url, sha = env.packages["9.0.0-hang"]
    env.service.execute_deployment(DeployParams(
        service="hello", version="9.0.0", instances=tuple(ids), package_url=url,
        deploy_id="b-hang", package_sha256=sha, timeout=120, retry_count=0))
    env.wait_in_flight("b-hang")
    with pytest.raises(ConflictError, match="busy in run b-hang"):
        env.service.rollback_instance(InstanceRollbackParams(
            instance_id=ids[0], target_version="1.0.0"))
    before = env.store.history.releases(ids[0])
    env.service.rollback_instance(InstanceRollbackParams(
        instance_id=ids[0], target_version="1.0.0", force=True, rollback_id="b-force"))
    assert env.service.get_deployment_status("b-hang").status is Status.CANCELLED
    status = env.wait("b-force")
    assert status.status is Status.COMPLETED, status.error_message
    assert env.answers(ids[0]) == "1.0.0"
    # force reinstalls even though 1.0.0 was current: a fresh release record on the host
    record = json.loads((env.root / "hello" / ids[0] / ".floy/releases/1.0.0.json").read_text())
    assert record["installed_at"] > before[0]["deployed_at"]


def test_auto_rollback_after_a_failed_deployment(floy_env: FloyEnv) -> None:
    ids = floy_env.register(2)
    assert floy_env.deploy("1.0.0", ids, "a-v1", batch_size="2").status is Status.COMPLETED
    # a third instance nothing answers for: its deploy fails (unreachable)
    gone = "hello-9"
    floy_env.store.instances.add([InstanceSpec(gone, "hello", "127.0.0.1", free_port(), {})])
    host_vars = floy_env.settings.inventory_dir / "host_vars"
    host_vars.mkdir(exist_ok=True)
    (host_vars / f"{gone}.yml").write_text(yaml.safe_dump(
        {"ansible_connection": "ssh", "ansible_port": 9, "ansible_host": "127.0.0.1"}))
    status = floy_env.deploy("2.0.0", [*ids, gone], "a-v2", batch_size="1", max_failures=1,
                             retry_count=0, auto_rollback=True)
    assert status.status is Status.FAILED
    assert [i.status for i in status.instances] == [Status.COMPLETED, Status.COMPLETED,
                                                    Status.FAILED]
    assert status.rollback_id == "a-v2-rollback"
    assert "automatic rollback a-v2-rollback of 2 instance(s) to 1.0.0" in status.error_message
    rollback = floy_env.service.get_deployment_status("a-v2-rollback")
    assert rollback.kind == "rollback" and rollback.status is Status.COMPLETED
    assert [i.instance_id for i in rollback.instances] == ids
    assert all(floy_env.answers(i) == "1.0.0" for i in ids)
    runs = floy_env.service.history("hello")
    assert [r.run_id for r in runs][:2] == ["a-v2-rollback", "a-v2"]
    assert runs[0].parent_run_id == "a-v2" and runs[1].rollback_run_id == "a-v2-rollback"


def test_drift_is_reported_not_overwritten(floy_env: FloyEnv) -> None:
    ids = on_two_versions(floy_env, 2)
    link = floy_env.root / "hello" / ids[0] / "current"
    tmp = link.with_name("current.tmp")
    tmp.symlink_to("releases/1.0.0")
    tmp.replace(link)  # someone switched it by hand
    checks = {c.instance_id: c for c in floy_env.service.refresh_versions("hello")}
    assert checks[ids[0]].drift and checks[ids[0]].observed_version == "1.0.0"
    assert not checks[ids[1]].drift
    record = floy_env.store.instances.get([ids[0]])[ids[0]]
    assert record.version == "2.0.0" and record.observed_version == "1.0.0" and record.drift
    time.sleep(0.01)
    adopted = {c.instance_id: c for c in floy_env.service.refresh_versions("hello", adopt=True)}
    assert adopted[ids[0]].adopted
    assert floy_env.store.instances.get([ids[0]])[ids[0]].version == "1.0.0"
    assert floy_env.service.get_service_instance_versions("hello").version_summary == {
        "1.0.0": 1, "2.0.0": 1}
