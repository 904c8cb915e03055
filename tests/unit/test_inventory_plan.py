"""Baking: inventory rendering and run plans, checked as data."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from orchestrator.ansible.inventory import (
    Unsafe,
    dump_yaml,
    render_inventory,
    unsafe_tree,
    write_atomic,
)
from orchestrator.ansible.plan import bake, deploy_extravars
from orchestrator.domain.batching import batch_numbers, batch_sizes
from orchestrator.domain.records import InstanceRecord, RunRecord
from orchestrator.domain.request import RunRequest
from orchestrator.models import Status
from orchestrator.settings import load_settings

PAYLOAD = "{{ lookup('pipe', 'touch /tmp/pwned') }}"


class _UnsafeLoader(yaml.SafeLoader):
    """Loads ``!unsafe`` scalars as Unsafe so tests can see the tag survived."""


_UnsafeLoader.add_constructor(
    "!unsafe", lambda loader, node: Unsafe(loader.construct_scalar(node))  # type: ignore[arg-type]
)


def _instance(instance_id: str, metadata: dict[str, str] | None = None) -> InstanceRecord:
    return InstanceRecord(instance_id, "hello", "127.0.0.1", 8080, "1.0.0", None, None,
                          metadata or {})


def _strings(node: object) -> list[object]:
    if isinstance(node, dict):
        return [s for v in node.values() for s in _strings(v)]
    if isinstance(node, list):
        return [s for v in node for s in _strings(v)]
    return [node] if isinstance(node, str) else []


def test_every_user_string_in_the_inventory_is_tagged_unsafe() -> None:
    data = render_inventory("hello", [_instance("a-1", {"owner": PAYLOAD}), _instance("a-2")])
    text = dump_yaml(data)
    loaded = yaml.load(text, Loader=_UnsafeLoader)
    strings = _strings(loaded)
    assert strings, "the inventory has strings"
    assert all(isinstance(s, Unsafe) for s in strings), [s for s in strings
                                                         if not isinstance(s, Unsafe)]
    hosts = loaded["all"]["children"]["hello"]["hosts"]
    assert list(hosts) == ["a-1", "a-2"], "inventory keeps run order"
    assert hosts["a-1"]["floy_instance_metadata"]["owner"] == PAYLOAD
    assert hosts["a-1"]["floy_instance_port"] == 8080


def test_no_connection_variables_besides_ansible_host() -> None:
    data = render_inventory("hello", [_instance("a-1", {"ansible_user": "root"})])
    hostvars = data["all"]["children"]["hello"]["hosts"]["a-1"]
    assert [k for k in hostvars if k.startswith("ansible_")] == ["ansible_host"]


def test_unsafe_tree_keeps_numbers_and_wraps_nested_strings() -> None:
    tree = unsafe_tree({"a": ["x", 1, {"b": "y"}], "c": True})
    assert isinstance(tree["a"][0], Unsafe) and tree["a"][1] == 1
    assert isinstance(tree["a"][2]["b"], Unsafe) and tree["c"] is True


@pytest.mark.parametrize(("size", "total", "expected"), [
    ("1", 3, [1, 1, 1]),
    ("2", 5, [2, 2, 1]),
    ("10", 3, [3]),
    ("50%", 5, [2, 2, 1]),
    ("10%", 5, [1, 1, 1, 1, 1]),
    ("100%", 4, [4]),
])
def test_batch_sizes_follow_ansible_serial(size: str, total: int, expected: list[int]) -> None:
    assert batch_sizes(size, total) == expected
    numbers = batch_numbers(size, total)
    assert len(numbers) == total and numbers[0] == 1 and numbers[-1] == len(expected)


def test_bake_deploy_plan(tmp_path: Path) -> None:
    settings = load_settings(home=tmp_path / "home", environ={"FLOY_CA_BUNDLE": "/ca.pem"})
    now = datetime(2026, 1, 1, tzinfo=UTC)
    run = RunRecord("d-1", "deploy", "hello", "2.0.0", Status.PENDING, RunRequest(
        ("a-1",), "https://127.0.0.1/pkgs/x.tar.gz", timeout=30, retry_count=1,
        batch_size="25%", max_failures=2), "me", now, now)
    extravars = deploy_extravars(run, settings)
    plan = bake(settings, run, [_instance("a-1")], extravars)
    assert plan.playbook == settings.playbook_dir / "deploy.yml"
    assert plan.private_data_dir == settings.runs_dir / "d-1"
    assert plan.forks == 1
    ev = plan.extravars
    assert ev["floy_hosts"] == "hello" and isinstance(ev["floy_version"], Unsafe)
    assert ev["floy_batch_size"] == "25%" and ev["floy_max_failures"] == 2
    assert ev["floy_timeout"] == 30 and ev["floy_ca_bundle"] == "/ca.pem"
    assert not any(k.startswith("ANSIBLE_") and "PASS" in k for k in plan.envvars)
    assert plan.envvars["PATH"].split(":")[0] == str(Path(settings.python).parent)
    assert plan.envvars["FLOY_RUN_ID"] == "d-1"
    collections = settings.playbook_dir.parent / "collections"
    assert plan.envvars["ANSIBLE_COLLECTIONS_PATH"].split(":")[0] == str(collections)
    module = collections / "ansible_collections/floy/release/plugins/modules/floy_release.py"
    assert module.is_file()


def test_operator_group_vars_and_host_vars_reach_the_rendered_inventory(tmp_path: Path) -> None:
    """The inventory floy renders for a run is read by Ansible with the operator's
    group_vars/ and host_vars/ beside it: a host's own file wins over its groups'."""
    import json
    import subprocess
    import sys

    from orchestrator.ansible.runner import materialise

    operator = tmp_path / "inventory"
    (operator / "group_vars").mkdir(parents=True)
    (operator / "host_vars").mkdir()
    (operator / "group_vars" / "all.yml").write_text(
        "ansible_connection: local\nfloy_root: /srv/all\nlevel: all\n")
    (operator / "group_vars" / "hello.yml").write_text("level: service\n")
    (operator / "host_vars" / "a-2.yml").write_text(
        "ansible_connection: ssh\nansible_port: 2222\nlevel: host\n")
    settings = load_settings(home=tmp_path / "home", inventory_dir=operator, environ={},
                             need_inventory=True)
    now = datetime(2026, 1, 1, tzinfo=UTC)
    run = RunRecord("d-1", "deploy", "hello", "2.0.0", Status.PENDING, RunRequest(
        ("a-1", "a-2"), "https://127.0.0.1/pkgs/x.tar.gz"), "me", now, now)
    plan = bake(settings, run, [_instance("a-1"), _instance("a-2")],
                deploy_extravars(run, settings))
    inventory, _vars = materialise(plan)
    proc = subprocess.run(
        [str(Path(sys.executable).with_name("ansible-inventory")), "-i", str(inventory),
         "--list"], capture_output=True, text=True, check=True, timeout=60,
        env={"PATH": "/usr/bin:/bin", "ANSIBLE_INVENTORY_UNPARSED_FAILED": "true"})
    hostvars = json.loads(proc.stdout)["_meta"]["hostvars"]
    assert hostvars["a-1"]["level"] == "service" and hostvars["a-1"]["floy_root"] == "/srv/all"
    assert hostvars["a-1"]["ansible_connection"] == "local"
    assert hostvars["a-2"]["level"] == "host" and hostvars["a-2"]["ansible_port"] == 2222
    assert hostvars["a-2"]["ansible_connection"] == "ssh"
    # floy's own, from hosts.yml (tagged !unsafe)
    assert hostvars["a-2"]["ansible_host"] == {"__ansible_unsafe": "127.0.0.1"}


def test_write_atomic_is_owner_only(tmp_path: Path) -> None:
    target = tmp_path / "d" / "f.yml"
    write_atomic(target, "a: 1\n")
    assert target.read_text() == "a: 1\n"
    assert target.stat().st_mode & 0o077 == 0
    assert [p.name for p in target.parent.iterdir()] == ["f.yml"]


def test_fast_time_parsing_agrees_with_the_strict_parser() -> None:
    from datetime import UTC, timedelta

    from orchestrator.timefmt import format_time, parse_time

    moment = datetime(2026, 11, 24, 0, 41, 40, 123456, tzinfo=UTC)
    for delta in (timedelta(0), timedelta(microseconds=1), timedelta(days=400)):
        text = format_time(moment + delta)
        parsed = parse_time(text)
        assert parsed == moment + delta and parsed.utcoffset() == timedelta(0)
        strict = parse_time(text.replace("Z", "+00:00"))  # takes the regex path
        assert strict == parsed
    with pytest.raises(ValueError):
        parse_time("2026-13-24T00:41:40.123456Z")
