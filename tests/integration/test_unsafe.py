"""Defence in depth: with validation bypassed, Jinja in user data is still never evaluated."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from orchestrator.ansible import runner
from orchestrator.ansible.plan import bake, deploy_extravars
from orchestrator.domain.events import RunnerEvent
from orchestrator.domain.records import RunInstanceRecord, RunRecord
from orchestrator.domain.request import RunRequest
from orchestrator.engine.worker import Worker
from orchestrator.errors import ValidationError
from orchestrator.models import DeployParams, InstanceSpec, Status
from orchestrator.timefmt import utcnow
from sample.packages import build_hello_package, sha256_file
from sample.pkgserver import PackageServer
from tests.helpers.floyenv import FloyEnv

pytestmark = pytest.mark.integration


def payload(marker: Path) -> str:
    return "{{ lookup('ansible.builtin.pipe', 'touch " + str(marker) + "') }}"


def test_validation_refuses_jinja_in_metadata(floy_env: FloyEnv, tmp_path: Path) -> None:
    from orchestrator.domain.validation import validate_instance_spec

    with pytest.raises(ValidationError) as err:
        validate_instance_spec(InstanceSpec("x-1", "hello", "127.0.0.1", 80,
                                            {"owner": payload(tmp_path / "m")}))
    assert err.value.field == "metadata.owner"


def test_payload_in_metadata_and_version_is_data(floy_env: FloyEnv, tmp_path: Path) -> None:
    marker = tmp_path / "evaluated"
    # Straight into the store: validation is bypassed on purpose.
    floy_env.store.instances.add([InstanceSpec("hello-1", "hello", "127.0.0.1", 1,
                                               {"owner": payload(marker)})])
    now = utcnow()
    run = RunRecord("d-echo", "deploy", "hello", payload(marker), Status.PENDING,
                    RunRequest(("hello-1",), "https://127.0.0.1/" + payload(marker)), "t", now, now)
    instances = list(floy_env.store.instances.get(["hello-1"]).values())
    settings = dataclasses.replace(floy_env.settings,
                                   playbook_dir=Path(__file__).parent.parent / "fixtures")
    plan = bake(settings, run, instances, deploy_extravars(run, settings))
    plan = dataclasses.replace(plan, playbook=settings.playbook_dir / "playbooks/echo_vars.yml")
    messages: list[str] = []

    def on_event(event: RunnerEvent) -> None:
        if event.get("event") == "runner_on_ok":
            messages.append(str(event["event_data"]["res"].get("msg", "")))

    outcome = runner.execute(plan, on_event, lambda: False)
    assert outcome.status == "successful", outcome.stdout_tail
    assert not marker.exists(), "Jinja in user data was evaluated"
    assert messages and "lookup('ansible.builtin.pipe'" in messages[0], messages


def test_payload_version_through_the_real_deploy_playbook(floy_env: FloyEnv,
                                                          tmp_path: Path) -> None:
    marker = tmp_path / "evaluated-deploy"
    ids = floy_env.register(1)
    url, _ = floy_env.packages["1.0.0"]
    now = utcnow()
    run = RunRecord("d-evil", "deploy", "hello", payload(marker), Status.PENDING,
                    RunRequest(tuple(ids), url, retry_count=0), "t", now, now)
    floy_env.store.runs.create(run, [RunInstanceRecord("d-evil", ids[0], 0, 1, Status.PENDING,
                                                      payload(marker))])
    assert Worker(floy_env.settings, floy_env.store).run("d-evil") is Status.FAILED
    assert not marker.exists(), "Jinja in the version was evaluated"
    status = floy_env.service.get_deployment_status("d-evil")
    assert status.instances[0].status is Status.FAILED
    assert floy_env.current(ids[0]) is None, "nothing was released"


def test_a_version_plain_yaml_reads_as_a_number_is_deployed_as_written(
        floy_env: FloyEnv, package_server: PackageServer) -> None:
    """ansible-core 2.19 reads ``!unsafe '1.10'`` as the float 1.1: floy must hand Ansible
    "1.10", so the release, the record and the health check all say 1.10."""
    path = build_hello_package(package_server.directory, "1.10")
    ids = floy_env.register(1, prefix="1_000")  # an ID YAML would read as the int 1000
    floy_env.service.execute_deployment(DeployParams(
        service="hello", version="1.10", instances=tuple(ids),
        package_url=package_server.url(path.name), package_sha256=sha256_file(path),
        deploy_id="d-1.10", retry_count=0))
    status = floy_env.service.get_deployment_status("d-1.10")
    assert status.status is Status.COMPLETED, status.instances[0].error_message
    assert status.instances[0].current_version == "1.10"
    assert floy_env.current(ids[0]) == "1.10"
    assert (floy_env.root / "hello" / "1_000-1").is_dir()
    versions = floy_env.service.get_service_instance_versions("hello")
    assert versions.version_summary == {"1.10": 1}
