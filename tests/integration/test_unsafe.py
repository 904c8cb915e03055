"""Defence in depth: with validation bypassed, Jinja in user data is still never evaluated."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from orchestrator import runner
from orchestrator.errors import ValidationError
from orchestrator.events import RunnerEvent
from orchestrator.models import InstanceSpec, Status
from orchestrator.plan import bake, deploy_extravars
from orchestrator.store import RunInstanceRecord, RunRecord
from orchestrator.timefmt import utcnow
from orchestrator.worker import Worker
from tests.integration.conftest import FloyEnv

pytestmark = pytest.mark.integration


def payload(marker: Path) -> str:
    return "{{ lookup('ansible.builtin.pipe', 'touch " + str(marker) + "') }}"


def test_validation_refuses_jinja_in_metadata(floy_env: FloyEnv, tmp_path: Path) -> None:
    from orchestrator.validation import validate_instance_spec

    with pytest.raises(ValidationError) as err:
        validate_instance_spec(InstanceSpec("x-1", "hello", "127.0.0.1", 80,
                                            {"owner": payload(tmp_path / "m")}))
    assert err.value.field == "metadata.owner"


def test_payload_in_metadata_and_version_is_data(floy_env: FloyEnv, tmp_path: Path) -> None:
    marker = tmp_path / "evaluated"
    # Straight into the store: validation is bypassed on purpose.
    floy_env.store.add_instances([InstanceSpec("hello-1", "hello", "127.0.0.1", 1,
                                               {"owner": payload(marker)})])
    now = utcnow()
    run = RunRecord("d-echo", "deploy", "hello", payload(marker), Status.PENDING,
                    {"package_url": "https://127.0.0.1/" + payload(marker)}, "t", now, now)
    instances = list(floy_env.store.get_instances(["hello-1"]).values())
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
                    {"package_url": url, "instances": ids, "retry_count": 0}, "t", now, now)
    floy_env.store.create_run(run, [RunInstanceRecord("d-evil", ids[0], 0, 1, Status.PENDING,
                                                      payload(marker))])
    assert Worker(floy_env.settings, floy_env.store).run("d-evil") is Status.FAILED
    assert not marker.exists(), "Jinja in the version was evaluated"
    status = floy_env.service.get_deployment_status("d-evil")
    assert status.instances[0].status is Status.FAILED
    assert floy_env.current(ids[0]) is None, "nothing was released"
