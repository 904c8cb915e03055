"""Hooks and shared paths set in the operator's group_vars, through floy itself: the role
splits the release around the hooks, and floy's records still say the truth - an instance
completes on the last module run only, with its versions, and a failing hook fails that
instance with the hook's message, counted against the failure budget."""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from orchestrator.models import Status
from tests.helpers.floyenv import FloyEnv

HOOK = """\
- name: Log the {{ floy_hook }} hook
  ansible.builtin.lineinfile:
    path: "{{ floy_instance_dir }}/hooks.log"
    line: "{{ floy_hook }} {{ floy_version }}"
    create: true
    mode: "0644"

- name: Refuse to switch an instance flagged for it
  ansible.builtin.fail:
    msg: "before_switch hook refused {{ floy_instance_id }}"
  when: floy_hook == 'before_switch' and floy_instance_id in (hook_refuse | default([]))
"""


def _set_hooks(env: FloyEnv, tmp_path: Path, **extra: object) -> None:
    hook = tmp_path / "hook.yml"
    hook.write_text(HOOK)
    group_vars = env.settings.inventory_dir / "group_vars" / "hello.yml"
    data = yaml.safe_load(group_vars.read_text())
    data.update({f"floy_{name}_tasks_file": str(hook)
                 for name in ("before_fetch", "after_switch", "before_switch")})
    data.update({"floy_shared_paths": ["logs"], **extra})
    group_vars.write_text(yaml.safe_dump(data))


def test_hooks_split_the_release_and_floy_records_the_truth(
        floy_env: FloyEnv, tmp_path: Path) -> None:
    ids = floy_env.register(2)
    assert floy_env.deploy("1.0.0", ids, "d-1", batch_size="2").status is Status.COMPLETED
    _set_hooks(floy_env, tmp_path)
    status = floy_env.deploy("2.0.0", ids, "d-2", batch_size="1")
    assert status.status is Status.COMPLETED, status.error_message
    for inst in status.instances:
        assert inst.status is Status.COMPLETED
        assert (inst.current_version, inst.previous_version) == ("2.0.0", "1.0.0")
        assert inst.attempts == 1
        instance_dir = floy_env.root / "hello" / inst.instance_id
        assert (instance_dir / "hooks.log").read_text().splitlines() == [
            "before_fetch 2.0.0", "before_switch 2.0.0", "after_switch 2.0.0"]
        assert os.readlink(instance_dir / "current" / "logs") == "../../shared/logs"
        assert floy_env.answers(inst.instance_id) == "2.0.0"
    versions = floy_env.service.get_service_instance_versions("hello")
    assert versions.version_summary == {"2.0.0": 2}


def test_a_failing_hook_fails_its_instance_and_spends_the_budget(
        floy_env: FloyEnv, tmp_path: Path) -> None:
    ids = floy_env.register(3)
    assert floy_env.deploy("1.0.0", ids, "d-1", batch_size="3").status is Status.COMPLETED
    _set_hooks(floy_env, tmp_path, hook_refuse=[ids[0]])
    status = floy_env.deploy("2.0.0", ids, "d-2", batch_size="1", max_failures=0)
    assert status.status is Status.FAILED
    first, *rest = status.instances
    assert first.status is Status.FAILED
    assert f"before_switch hook refused {ids[0]}" in first.error_message
    assert floy_env.current(ids[0]) == "1.0.0", "refused before the switch: nothing changed"
    assert floy_env.answers(ids[0]) == "1.0.0"
    # the budget (0) is spent: the later batches never start
    assert [i.status for i in rest] == [Status.CANCELLED, Status.CANCELLED]
    assert [floy_env.current(i) for i in ids[1:]] == ["1.0.0", "1.0.0"]
