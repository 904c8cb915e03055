"""floy's playbooks with nothing but ansible-core: a fresh venv (no floy, no SQLAlchemy)
runs deploy.yml, rollback.yml and probe.yml, and reads the registry through the inventory
plugin, exactly as an operator without floy (or AWX) would."""

from __future__ import annotations

import json
import os
import subprocess
import urllib.request
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path

import pytest
import yaml

from orchestrator.models import InstanceSpec
from orchestrator.store import Store
from sample.packages import free_port, stop_apps
from sample.pkgserver import PackageServer
from tests.ecosystem._paths import PLAYBOOKS, REPO, VENV_BIN

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


def _env(venv: Path, workdir: Path) -> dict[str, str]:
    """No floy venv on PATH, no ANSIBLE_CONFIG, no PYTHONPATH: plain ansible-core."""
    return {
        "PATH": f"{venv / 'bin'}{os.pathsep}/usr/bin{os.pathsep}/bin",
        "HOME": os.environ.get("HOME", str(workdir)),
        "LANG": "C.UTF-8",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_LOCAL_TEMP": str(workdir / "ansible-tmp"),
        "ANSIBLE_REMOTE_TEMP": str(workdir / "ansible-tmp"),
    }


def _play(venv: Path, workdir: Path, playbook: str, inventory: Path, extra: dict[str, object],
          cwd: Path) -> subprocess.CompletedProcess[str]:
    vars_file = workdir / f"vars-{playbook}"
    vars_file.write_text(yaml.safe_dump(extra))
    return subprocess.run(
        [str(venv / "bin" / "ansible-playbook"), "-i", str(inventory),
         str(PLAYBOOKS / playbook) if cwd != REPO else f"playbooks/{playbook}",
         "-e", f"@{vars_file}"],
        cwd=cwd, env=_env(venv, workdir), capture_output=True, text=True, timeout=300,
    )


def _health(port: int) -> dict[str, str]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(f"http://127.0.0.1:{port}/health", timeout=5) as response:
        data: dict[str, str] = json.loads(response.read())
        return data


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
    inventory = tmp_path / "inventory"
    (inventory / "group_vars").mkdir(parents=True)
    for source in (REPO / "inventories" / "local" / "group_vars").glob("*.yml"):
        (inventory / "group_vars" / source.name).write_text(source.read_text())
    hosts = {"all": {"children": {"hello": {"hosts": {"p1": {"floy_instance_port": port}}}}}}
    (inventory / "hosts.yml").write_text(yaml.safe_dump(hosts))
    common = {"floy_service": "hello", "floy_root": str(root),
              "floy_ca_bundle": str(package_server.ca_bundle), "floy_retry_delay": 0}
    instance = root / "hello" / "p1"

    for ver in ("1.0.0", "2.0.0"):
        url, sha = packages[ver]
        run = _play(plain_venv, tmp_path, "deploy.yml", inventory / "hosts.yml",
                    {**common, "floy_version": ver, "floy_package_url": url,
                     "floy_package_sha256": sha}, cwd=tmp_path)
        assert run.returncode == 0, run.stdout + run.stderr
        assert os.readlink(instance / "current") == f"releases/{ver}"
        assert _health(port) == {"status": "ok", "version": ver}

    back = _play(plain_venv, tmp_path, "rollback.yml", inventory / "hosts.yml",
                 {**common, "floy_version": "1.0.0"}, cwd=tmp_path)
    assert back.returncode == 0, back.stdout + back.stderr
    assert os.readlink(instance / "current") == "releases/1.0.0"
    assert _health(port)["version"] == "1.0.0"

    probe = _play(plain_venv, tmp_path, "probe.yml", inventory / "hosts.yml",
                  {"floy_service": "hello", "floy_root": str(root)}, cwd=REPO)
    assert probe.returncode == 0, probe.stdout + probe.stderr
    assert "p1" in probe.stdout and "failed=0" in probe.stdout


def test_inventory_plugin_without_floy(plain_venv: Path, tmp_path: Path) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'floy.db'}")
    store.instances.add([InstanceSpec("hello-1", "hello", "127.0.0.1", 8081, {"rack": "r1"})])
    source = tmp_path / "registry.floy.yml"
    source.write_text(f"plugin: floy.release.floy\ndb_url: sqlite:///{tmp_path / 'floy.db'}\n")
    env = {**_env(plain_venv, tmp_path), "ANSIBLE_CONFIG": str(PLAYBOOKS / "ansible.cfg")}
    proc = subprocess.run(
        [str(plain_venv / "bin" / "ansible-inventory"), "-i", str(source), "--list"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["hello"]["hosts"] == ["hello-1"]
    assert data["_meta"]["hostvars"]["hello-1"]["floy_instance_port"] == 8081
