"""floy's playbooks with nothing but ansible-core: a fresh venv (no floy, no SQLAlchemy)
runs deploy.yml, rollback.yml and probe.yml, and reads the registry through the inventory
plugin, exactly as an operator without floy (or AWX) would."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path

import pytest

from orchestrator.models import InstanceSpec
from orchestrator.store import Store
from sample.packages import free_port, stop_apps
from sample.pkgserver import PackageServer
from tests.ecosystem._paths import PLAYBOOKS, REPO, VENV_BIN
from tests.ecosystem._plain import health, local_inventory, plain_env, play

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def plain_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv with only ansible-core (the version floy uses), from wheels fetched once."""
    base = tmp_path_factory.mktemp("plain")
    wheels, venv = base / "wheels", base / "venv"
    core = f"ansible-core=={version('ansible-core')}"
    subprocess.run([str(VENV_BIN / "pip"), "download", "-q", "--only-binary=:all:", core,
                    "-d", str(wheels)], check=True, timeout=300)
    subprocess.run([str(VENV_BIN / "python"), "-m", "venv", str(venv)], check=True, timeout=120)
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "--no-index", "--find-links",
                    str(wheels), core], check=True, timeout=300)
    return venv


@pytest.fixture
def root(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "floy"
    yield path
    stop_apps(path)


def test_venv_has_no_floy(plain_venv: Path, tmp_path: Path) -> None:
    for module in ("orchestrator", "sqlalchemy", "ansible_runner"):
        proc = subprocess.run([str(plain_venv / "bin" / "python"), "-c", f"import {module}"],
                              cwd=tmp_path, capture_output=True, text=True, timeout=60)
        assert proc.returncode != 0, module


def test_deploy_rollback_probe_with_plain_ansible_playbook(
    plain_venv: Path, tmp_path: Path, root: Path,
    packages: dict[str, tuple[str, str]], package_server: PackageServer,
) -> None:
    port = free_port()
    inventory = local_inventory(tmp_path, port)
    common = {"floy_service": "hello", "floy_root": str(root),
              "floy_ca_bundle": str(package_server.ca_bundle), "floy_retry_delay": 0}
    instance = root / "hello" / "p1"

    for ver in ("1.0.0", "2.0.0"):
        url, sha = packages[ver]
        run = play(plain_venv, tmp_path, "deploy.yml", inventory,
                    {**common, "floy_version": ver, "floy_package_url": url,
                     "floy_package_sha256": sha}, cwd=tmp_path)
        assert run.returncode == 0, run.stdout + run.stderr
        assert os.readlink(instance / "current") == f"releases/{ver}"
        assert health(port) == {"status": "ok", "version": ver}

    back = play(plain_venv, tmp_path, "rollback.yml", inventory,
                 {**common, "floy_version": "1.0.0"}, cwd=tmp_path)
    assert back.returncode == 0, back.stdout + back.stderr
    assert os.readlink(instance / "current") == "releases/1.0.0"
    assert health(port)["version"] == "1.0.0"

    probe = play(plain_venv, tmp_path, "probe.yml", inventory,
                  {"floy_service": "hello", "floy_root": str(root)}, cwd=REPO)
    assert probe.returncode == 0, probe.stdout + probe.stderr
    assert "p1" in probe.stdout and "failed=0" in probe.stdout


def test_inventory_plugin_without_floy(plain_venv: Path, tmp_path: Path) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'floy.db'}")
    store.instances.add([InstanceSpec("hello-1", "hello", "127.0.0.1", 8081, {"rack": "r1"})])
    source = tmp_path / "registry.floy.yml"
    source.write_text(f"plugin: floy.release.floy\ndb_url: sqlite:///{tmp_path / 'floy.db'}\n")
    env = {**plain_env(plain_venv, tmp_path), "ANSIBLE_CONFIG": str(PLAYBOOKS / "ansible.cfg")}
    proc = subprocess.run(
        [str(plain_venv / "bin" / "ansible-inventory"), "-i", str(source), "--list"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["hello"]["hosts"] == ["hello-1"]
    assert data["_meta"]["hostvars"]["hello-1"]["floy_instance_port"] == 8081
