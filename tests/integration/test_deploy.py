"""Real deployments: floy's service, real ansible-runner, the real role, real HTTPS and apps."""

from __future__ import annotations

import hashlib
import io
import itertools
import os
import stat
import uuid
import zipfile
from pathlib import Path

import pytest

from orchestrator.errors import ConflictError, ValidationError
from orchestrator.models import DeployParams, DeployStatus, Status
from sample.packages import restart_script
from sample.pkgserver import PackageServer
from tests.helpers.floyenv import FloyEnv
from tests.helpers.store import table_counts
from tests.helpers.wait import wait_until

pytestmark = pytest.mark.integration


def _ids(status_instances: object) -> dict[str, object]:
    return {i.instance_id: i for i in status_instances}  # type: ignore[attr-defined]


def test_full_deploy_in_batches_then_upgrade(floy_env: FloyEnv) -> None:
    ids = floy_env.register(3)
    first = floy_env.deploy("1.0.0", ids, "d-v1", batch_size="3")
    assert first.status is Status.COMPLETED, first.error_message
    second = floy_env.deploy("2.0.0", ids, "d-v2", batch_size="1")
    assert second.status is Status.COMPLETED, second.error_message
    assert second.progress.total == 3 and second.progress.completed == 3
    assert second.progress.failed == second.progress.pending == 0
    assert [i.batch for i in second.instances] == [1, 2, 3]
    for inst in second.instances:
        assert inst.status is Status.COMPLETED
        assert inst.previous_version == "1.0.0" and inst.current_version == "2.0.0"
        assert inst.started_at is not None and inst.completed_at is not None
        assert inst.completed_at >= inst.started_at
        assert floy_env.current(inst.instance_id) == "2.0.0"
        assert floy_env.answers(inst.instance_id) == "2.0.0"
    # batches are serial: each instance started after the previous one finished
    ordered = list(second.instances)
    for before, after in itertools.pairwise(ordered):
        assert after.started_at >= before.completed_at  # type: ignore[operator]
    versions = floy_env.service.get_service_instance_versions("hello")
    assert versions.version_summary == {"2.0.0": 3}
    history = floy_env.store.history.releases(ids[0])
    assert [h["version"] for h in history] == ["2.0.0", "1.0.0"]


def test_health_failure_switches_back_and_records_failure(floy_env: FloyEnv) -> None:
    ids = floy_env.register(2)
    assert floy_env.deploy("1.0.0", ids, "d-ok", batch_size="2").status is Status.COMPLETED
    status = floy_env.deploy("9.0.0-crash", ids[:1], "d-crash", version="9.0.0", retry_count=0)
    assert status.status is Status.FAILED
    inst = status.instances[0]
    assert inst.status is Status.FAILED
    assert "health" in inst.error_message and "1.0.0" in inst.error_message
    assert inst.current_version == "1.0.0"
    assert floy_env.current(ids[0]) == "1.0.0"
    assert floy_env.answers(ids[0]) == "1.0.0"
    assert floy_env.service.get_service_instance_versions("hello").version_summary == {
        "1.0.0": 2
    }


def test_an_unhealthy_release_is_not_retried_by_floy(floy_env: FloyEnv) -> None:
    """The default --retries 3 does not start a release that failed its health check again
    (it used to: four starts of 9.0.0, alternating with 1.0.0)."""
    ids = floy_env.register(1)
    assert floy_env.deploy("1.0.0", ids, "d-ok1").status is Status.COMPLETED
    status = floy_env.deploy("9.0.0-unhealthy", ids, "d-unhealthy", version="9.0.0",
                             retry_count=3)
    inst = status.instances[0]
    assert status.status is Status.FAILED and inst.status is Status.FAILED
    assert inst.error_message.startswith("health check failed: "), inst.error_message
    assert inst.error_message.endswith("; switched back to 1.0.0")
    assert inst.attempts == 1
    assert (inst.current_version, floy_env.current(ids[0])) == ("1.0.0", "1.0.0")
    assert floy_env.answers(ids[0]) == "1.0.0"
    log = (floy_env.root / "hello" / ids[0] / "shared" / "floy-restart.log").read_text()
    assert log.count("floy restart of 9.0.0 ") == 1
    assert log.count("floy restart of 1.0.0 ") == 2  # the first deploy, the switch back


@pytest.mark.parametrize("fault", ["404", "sha256"])
def test_bad_package_fails_only_that_instance(floy_env: FloyEnv, fault: str) -> None:
    ids = floy_env.register(2)
    assert floy_env.deploy("1.0.0", ids, "d-base", batch_size="2").status is Status.COMPLETED
    url, _sha = floy_env.packages["2.0.0"]
    extra: dict[str, object] = (
        {"url": url.replace("hello-2.0.0", "hello-missing")} if fault == "404"
        else {"package_sha256": "0" * 64}
    )
    status = floy_env.deploy("2.0.0", ids[:1], f"d-{fault}", retry_count=2, **extra)
    assert status.status is Status.FAILED
    inst = status.instances[0]
    assert inst.attempts == 1, "a permanent fault is not retried"
    assert ("404" in inst.error_message) if fault == "404" else ("sha256" in inst.error_message)
    assert floy_env.current(ids[0]) == "1.0.0"
    assert floy_env.current(ids[1]) == "1.0.0"
    releases = floy_env.root / "hello" / ids[0] / "releases"
    assert sorted(p.name for p in releases.iterdir()) == ["1.0.0"], "no temp files left"


def test_max_failures_stops_later_batches(floy_env: FloyEnv) -> None:
    ids = floy_env.register(4)
    assert floy_env.deploy("1.0.0", ids, "d-base", batch_size="4").status is Status.COMPLETED
    status = floy_env.deploy("9.0.0-crash", ids, "d-budget", version="9.0.0", retry_count=0,
                             batch_size="1", max_failures=1)
    assert status.status is Status.FAILED
    by_id = _ids(status.instances)
    assert [by_id[i].status for i in ids] == [  # type: ignore[attr-defined]
        Status.FAILED, Status.FAILED, Status.CANCELLED, Status.CANCELLED]
    assert "failure budget" in by_id[ids[3]].error_message  # type: ignore[attr-defined]
    assert status.progress.failed == 2 and status.progress.cancelled == 2
    assert floy_env.current(ids[2]) == "1.0.0" and floy_env.current(ids[3]) == "1.0.0"


def test_retries_are_counted(floy_env: FloyEnv, package_server: object) -> None:
    ids = floy_env.register(1)
    key = uuid.uuid4().hex[:8]
    url = f"{package_server.base_url}/flaky/{key}/2/pkgs/hello-2.0.0.tar.gz"  # type: ignore[attr-defined]
    status = floy_env.deploy("2.0.0", ids, "d-flaky", url=url, retry_count=3)
    assert status.status is Status.COMPLETED, status.error_message
    assert status.instances[0].attempts == 3


def test_too_few_retries_fail_with_attempts(floy_env: FloyEnv, package_server: object) -> None:
    ids = floy_env.register(1)
    key = uuid.uuid4().hex[:8]
    url = f"{package_server.base_url}/flaky/{key}/5/pkgs/hello-2.0.0.tar.gz"  # type: ignore[attr-defined]
    status = floy_env.deploy("2.0.0", ids, "d-flaky2", url=url, retry_count=1)
    assert status.status is Status.FAILED
    assert status.instances[0].attempts == 2
    assert "503" in status.instances[0].error_message


def test_timeout_stops_the_instance_and_leaves_no_process(floy_env: FloyEnv) -> None:
    ids = floy_env.register(1)
    status = floy_env.deploy("9.0.0-hang", ids, "d-hang", version="9.0.0", timeout=5,
                             retry_count=0)
    assert status.status is Status.FAILED
    assert status.instances[0].error_message.startswith("timed out after 5 s")
    assert floy_env.leftovers("d-hang") == [], "the hanging restart command is still running"


def test_same_deploy_id_is_idempotent_and_conflicts_on_change(floy_env: FloyEnv) -> None:
    ids = floy_env.register(1)
    first = floy_env.deploy("1.0.0", ids, "d-same")
    again = floy_env.deploy("1.0.0", ids, "d-same")
    assert again.started_at == first.started_at
    with pytest.raises(ConflictError):
        floy_env.deploy("2.0.0", ids, "d-same")


def test_unknown_and_foreign_instances_are_bad_input(floy_env: FloyEnv) -> None:
    floy_env.register(1)
    floy_env.register(1, service="other")
    before = table_counts(floy_env.store)
    url, _sha = floy_env.packages["1.0.0"]
    for instances, field in ((("hello-1", "nope-1"), "instances[1]"),
                             (("other-1",), "instances[0]")):
        with pytest.raises(ValidationError) as err:
            floy_env.service.execute_deployment(DeployParams(
                service="hello", version="1.0.0", instances=instances, package_url=url,
                deploy_id="d-bad"))
        assert err.value.field == field
    assert table_counts(floy_env.store) == before
    assert not (floy_env.settings.runs_dir).exists(), "nothing was run"


def test_async_worker_reports_live_progress(floy_async_env: FloyEnv) -> None:
    env = floy_async_env
    ids = env.register(2)
    url, sha = env.packages["1.0.0"]
    result = env.service.execute_deployment(DeployParams(
        service="hello", version="1.0.0", instances=tuple(ids), package_url=url,
        deploy_id="d-async", package_sha256=sha))
    assert result.status in (Status.PENDING, Status.IN_PROGRESS)
    seen = set()

    def ended() -> DeployStatus | None:  # every status read on the way adds up
        status = env.service.get_deployment_status("d-async")
        seen.add(status.status)
        p = status.progress
        assert p.completed + p.failed + p.cancelled + p.pending == p.total
        return status if status.status.is_terminal else None

    status = wait_until(ended, 120, "d-async to end")
    assert status.status is Status.COMPLETED, status.error_message
    assert Status.IN_PROGRESS in seen
    run = env.store.runs.get("d-async")
    assert run is not None and run.worker_pid and run.lease_owner is None
    assert Path(env.settings.home / "logs" / "d-async.log").exists()


def _hello_zip(version: str) -> bytes:
    """The hello package as a zip made on unix (``zip -r``): the modes, the executable
    ``bin/restart`` among them, are in each member's ``external_attr``."""
    app = (Path(__file__).resolve().parents[2] / "sample" / "hello_app.py").read_bytes()
    raw = io.BytesIO()
    with zipfile.ZipFile(raw, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data, mode in (
            ("bin/", b"", stat.S_IFDIR | 0o755),
            ("app.py", app, stat.S_IFREG | 0o644),
            ("VERSION", f"{version}\n".encode(), stat.S_IFREG | 0o644),
            ("bin/restart", restart_script(version).encode(), stat.S_IFREG | 0o755),
        ):
            info = zipfile.ZipInfo(name, date_time=(2026, 1, 2, 3, 4, 5))
            info.create_system, info.external_attr = 3, mode << 16
            zf.writestr(info, data)
    return raw.getvalue()


def test_a_zip_package_deploys(floy_env: FloyEnv, package_server: PackageServer) -> None:
    """An upgrade from the tar.gz 1.0.0 to 2.0.0 shipped as a zip (as ansistrano users
    ship), over HTTPS with its sha256: the format is told by the content, the restart
    script keeps its executable mode, and the app answers with the new version."""
    ids = floy_env.register(1)
    assert floy_env.deploy("1.0.0", ids, "d-zip-v1").status is Status.COMPLETED
    data = _hello_zip("2.0.0")
    name = f"hello-2.0.0-{uuid.uuid4().hex[:8]}.zip"
    (package_server.directory / name).write_bytes(data)
    status = floy_env.deploy("2.0.0", ids, "d-zip-v2", url=package_server.url(name),
                             package_sha256=hashlib.sha256(data).hexdigest())
    assert status.status is Status.COMPLETED, status.instances[0].error_message
    assert floy_env.current(ids[0]) == "2.0.0"
    assert floy_env.answers(ids[0]) == "2.0.0"
    release = floy_env.root / "hello" / ids[0] / "releases" / "2.0.0"
    assert os.access(release / "bin" / "restart", os.X_OK)
    assert (release / "VERSION").read_text() == "2.0.0\n"
