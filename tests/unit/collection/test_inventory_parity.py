"""The inventory plugin floy.release.floy and orchestrator's own inventory give the same hosts
the same variables: instances registered in a real SQLite store, read by the plugin (its
own sqlite3 reader, and ansible-inventory over it) and by orchestrator (the store's records
through ``host_vars`` / ``render_inventory``)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from orchestrator.models import InstanceSpec
from tests.ecosystem._paths import VENV_BIN, tool_env
from tests.unit.collection._collection import inventory_module, plugin
from tests.unit.collection._registry import of_service, open_store, register

floy_inventory = plugin("inventory.floy")
orchestrator_inventory = inventory_module()

FLEET = [
    InstanceSpec("hello-1", "hello", "127.0.0.1", 8081,
                 {"rack": "r1", "note": "{{ lookup('pipe', 'id') }}"}),
    InstanceSpec("hello-2", "hello", "127.0.0.2", 8082),
    InstanceSpec("hello-3", "hello", "127.0.0.3", 1, {"owner": "zoë", "dotted.key": "a b"}),
    InstanceSpec("web-1", "web", "10.0.0.5", 65535, {"dc": "east"}),
    InstanceSpec("web-2", "web", "web-2.internal.example", 443, {"tier": "front"}),
]
VERSIONS = {"hello-1": "2.0.0", "hello-3": "1.0.0+build.7", "web-1": "3.1.4-rc.1",
            "web-2": "0.9.0"}
SERVICES = ("hello", "web")


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "floy.db"
    store = open_store(path)
    try:
        register(store, FLEET, VERSIONS)
    finally:
        store.close()
    return path


def _orchestrator_host_vars(db: Path) -> dict[str, dict[str, Any]]:
    store = open_store(db)
    try:
        return {record.instance_id: orchestrator_inventory.host_vars(record)
                for service in SERVICES for record in of_service(store, service)}
    finally:
        store.close()


def test_the_same_host_vars_for_the_same_records(db: Path) -> None:
    rows = floy_inventory.read_sqlite(str(db))
    from_plugin = {row["instance_id"]: floy_inventory.host_vars(row) for row in rows}
    from_orchestrator = _orchestrator_host_vars(db)
    assert set(from_plugin) == {spec.instance_id for spec in FLEET}
    assert from_plugin == from_orchestrator
    for instance_id, variables in from_plugin.items():  # same types, not only equal values
        mine = from_orchestrator[instance_id]
        assert {k: type(v).__mro__[-2] for k, v in variables.items()} == {
            k: type(v).__mro__[-2] for k, v in mine.items()}, instance_id
    assert from_plugin["hello-2"]["floy_instance_version"] == ""
    assert from_plugin["hello-3"]["floy_instance_metadata"] == {"owner": "zoë",
                                                                "dotted.key": "a b"}


def _inventory(source: Path) -> dict[str, Any]:
    proc = subprocess.run(
        [str(VENV_BIN / "ansible-inventory"), "-i", str(source), "--list"],
        cwd=source.parent, env=tool_env(ANSIBLE_INVENTORY_UNPARSED_FAILED="true"),
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    data: dict[str, Any] = json.loads(proc.stdout)
    return data


def _orchestrator_inventory_file(db: Path, path: Path, services: tuple[str, ...]) -> Path:
    """The inventory floy writes for a run (render_inventory, dump_yaml), one per service,
    merged into one file."""
    store = open_store(db)
    try:
        children: dict[str, Any] = {}
        for service in services:
            data = orchestrator_inventory.render_inventory(service, of_service(store, service))
            children.update(data["all"]["children"])
    finally:
        store.close()
    path.write_text(orchestrator_inventory.dump_yaml({"all": {"children": children}}))
    return path


def _compare_through_ansible(db: Path, tmp_path: Path,
                             services: tuple[str, ...] = SERVICES) -> None:
    source = tmp_path / "registry.floy.yml"
    source.write_text(f"plugin: floy.release.floy\ndb_url: sqlite:///{db}\n")
    from_plugin = _inventory(source)
    from_orchestrator = _inventory(
        _orchestrator_inventory_file(db, tmp_path / "hosts.yml", services))
    for group in services:
        assert from_plugin[group] == from_orchestrator[group], group
    assert (_data_marks(from_plugin["_meta"]["hostvars"])
            == _data_marks(from_orchestrator["_meta"]["hostvars"]))


_RESOLVER = yaml.resolver.Resolver()


def _data_marks(value: Any) -> Any:
    """``value`` with the unsafe mark dropped from strings that plain YAML reads as another
    type ('1.10', '', 'yes'): they cannot hold a template, and floy's writer leaves them
    unmarked because ansible-core 2.19 would read them under ``!unsafe`` as that type."""
    if isinstance(value, dict):
        if set(value) == {"__ansible_unsafe"}:
            text = value["__ansible_unsafe"]
            plain = _RESOLVER.resolve(yaml.ScalarNode, text, (True, False))
            return value if plain == "tag:yaml.org,2002:str" else text
        return {k: _data_marks(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_data_marks(v) for v in value]
    return value


def test_ansible_reads_the_same_inventory_from_both(tmp_path: Path) -> None:
    """As a playbook sees them: groups, values and their unsafe marks (every instance has a
    version here, and no value YAML would read as another type: see the next test)."""
    db = tmp_path / "floy.db"
    store = open_store(db)
    try:
        register(store, FLEET, {spec.instance_id: VERSIONS.get(spec.instance_id, "1.2.3")
                                for spec in FLEET})
    finally:
        store.close()
    _compare_through_ansible(db, tmp_path)


def test_ansible_reads_the_same_inventory_for_every_string(tmp_path: Path) -> None:
    db = tmp_path / "floy.db"
    store = open_store(db)
    try:
        register(store, [
            InstanceSpec("hello-1", "hello", "127.0.0.1", 8081, {"primary": "yes"}),
            InstanceSpec("1_000", "hello", "127.0.0.2", 8082),  # never released: version ""
        ], {"hello-1": "1.10"})
    finally:
        store.close()
    _compare_through_ansible(db, tmp_path, ("hello",))
