"""The inventory plugin floy.release.floy: floy's instance registry as an Ansible inventory.

Instances are registered in a real floy store (orchestrator.store); ansible-inventory reads
them through the plugin, which itself uses only sqlite3 (see test_plain_ansible.py for a
run with no floy installed). Registered strings are data: a lookup in metadata is never run.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from orchestrator.models import InstanceSpec
from orchestrator.store import Store
from tests.ecosystem._paths import VENV_BIN, tool_env

pytestmark = pytest.mark.integration


def _register(db: Path, marker: Path) -> str:
    url = f"sqlite:///{db}"
    store = Store.open(url)
    store.instances.add([
        InstanceSpec("hello-1", "hello", "127.0.0.1", 8081,
                     {"rack": "r1", "note": f"{{{{ lookup('pipe', 'touch {marker}') }}}}"}),
        InstanceSpec("hello-2", "hello", "127.0.0.2", 8082),
        InstanceSpec("web-1", "web", "10.0.0.5", 8080, {"dc": "east"}),
    ])
    return url


def _inventory(source: Path, cwd: Path, **env: str) -> dict[str, Any]:
    proc = subprocess.run(
        [str(VENV_BIN / "ansible-inventory"), "-i", str(source), "--list"],
        cwd=cwd, env=tool_env(**env), capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "[WARNING]" not in proc.stderr or "floy" not in proc.stderr, proc.stderr
    data: dict[str, Any] = json.loads(proc.stdout)
    return data


def _plain(value: Any) -> Any:
    """Values of ``--list`` with the unsafe markers taken off (and the markers counted)."""
    if isinstance(value, dict):
        if set(value) == {"__ansible_unsafe"}:
            return value["__ansible_unsafe"]
        return {k: _plain(v) for k, v in value.items()}
    return value


def test_lists_every_instance_grouped_by_service(tmp_path: Path) -> None:
    url = _register(tmp_path / "floy.db", tmp_path / "marker")
    source = tmp_path / "registry.floy.yml"
    source.write_text(f"plugin: floy.release.floy\ndb_url: {url}\n")

    data = _inventory(source, tmp_path)

    assert sorted(data["hello"]["hosts"]) == ["hello-1", "hello-2"]
    assert data["web"]["hosts"] == ["web-1"]
    hostvars = data["_meta"]["hostvars"]
    raw = hostvars["hello-1"]
    # Every string is marked unsafe in the output, nested metadata included.
    assert raw["ansible_host"] == {"__ansible_unsafe": "127.0.0.1"}
    assert raw["floy_instance_metadata"]["rack"] == {"__ansible_unsafe": "r1"}
    assert raw["floy_instance_port"] == 8081
    assert _plain(hostvars["web-1"]) == {
        "ansible_host": "10.0.0.5",
        "floy_instance_id": "web-1",
        "floy_instance_host": "10.0.0.5",
        "floy_instance_port": 8080,
        "floy_instance_version": "",
        "floy_instance_metadata": {"dc": "east"},
    }
    assert not any(k.startswith("ansible_") and k != "ansible_host"
                   for v in hostvars.values() for k in v)


def test_services_filter_and_db_url_from_environment(tmp_path: Path) -> None:
    url = _register(tmp_path / "floy.db", tmp_path / "marker")
    source = tmp_path / "web.floy.yaml"
    source.write_text("plugin: floy.release.floy\nservices: [web]\n")

    data = _inventory(source, tmp_path, FLOY_DB_URL=url)

    assert set(data["_meta"]["hostvars"]) == {"web-1"}
    assert "hello" not in data


def test_default_db_url_is_floys_default_home(tmp_path: Path) -> None:
    (tmp_path / ".floy").mkdir()
    _register(tmp_path / ".floy" / "floy.db", tmp_path / "marker")
    source = tmp_path / "x.floy.yml"
    source.write_text("plugin: floy.release.floy\n")
    env = tool_env()
    env.pop("FLOY_DB_URL", None)
    proc = subprocess.run(
        [str(VENV_BIN / "ansible-inventory"), "-i", str(source), "--list"],
        cwd=tmp_path, env=env,
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "hello-1" in json.loads(proc.stdout)["_meta"]["hostvars"]


def test_other_file_names_are_not_claimed(tmp_path: Path) -> None:
    url = _register(tmp_path / "floy.db", tmp_path / "marker")
    source = tmp_path / "hosts.yml"
    source.write_text(f"plugin: floy.release.floy\ndb_url: {url}\n")
    proc = subprocess.run(
        [str(VENV_BIN / "ansible-inventory"), "-i", str(source), "--list"],
        cwd=tmp_path, env=tool_env(), capture_output=True, text=True, timeout=120,
    )
    assert "hello-1" not in proc.stdout


def test_missing_store_is_a_clear_error(tmp_path: Path) -> None:
    source = tmp_path / "x.floy.yml"
    source.write_text(f"plugin: floy.release.floy\ndb_url: sqlite:///{tmp_path}/nope.db\n")
    proc = subprocess.run(
        [str(VENV_BIN / "ansible-inventory"), "-i", str(source), "--list"],
        cwd=tmp_path, env=tool_env(ANSIBLE_INVENTORY_UNPARSED_FAILED="true"),
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode != 0
    assert "floy store not found" in proc.stderr


def test_metadata_is_never_templated_by_a_playbook(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    url = _register(tmp_path / "floy.db", marker)
    source = tmp_path / "registry.floy.yml"
    source.write_text(f"plugin: floy.release.floy\ndb_url: {url}\n")
    playbook = tmp_path / "show.yml"
    playbook.write_text(
        "- name: Use the registry's host vars\n"
        "  hosts: hello-1\n"
        "  gather_facts: false\n"
        "  connection: local\n"
        "  tasks:\n"
        "    - name: Template the metadata\n"
        "      ansible.builtin.debug:\n"
        "        msg: \"note={{ floy_instance_metadata.note }} id={{ floy_instance_id }}\"\n"
    )
    proc = subprocess.run(
        [str(VENV_BIN / "ansible-playbook"), "-i", str(source), str(playbook)],
        cwd=tmp_path, env=tool_env(), capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "lookup('pipe', 'touch" in proc.stdout  # printed as data
    assert "id=hello-1" in proc.stdout
    assert not marker.exists()
