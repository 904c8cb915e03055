"""The oldest ansible-core floy.release claims (meta/runtime.yml's requires_ansible, the
role's min_ansible_version) is one claim, and it is true: a venv with exactly that
ansible-core and nothing else deploys (in one module run, and in phases around hooks),
rolls back and probes with the role, as test_plain_ansible.py does with the ansible-core
floy itself runs."""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from sample.packages import free_port, stop_apps
from sample.pkgserver import PackageServer
from tests.ecosystem._oldest_core import core_venv, requires_ansible_floor, role_min_ansible_version
from tests.ecosystem._paths import COLLECTION, REPO
from tests.ecosystem._plain import health, local_inventory, play


def test_role_and_collection_claim_the_same_oldest_ansible_core() -> None:
    floor = requires_ansible_floor()
    assert role_min_ansible_version() == floor
    readme = (COLLECTION / "README.md").read_text()
    assert f"Requires ansible-core {floor.major}.{floor.minor} or later" in readme


@pytest.fixture(scope="module")
def oldest_venv(request: pytest.FixtureRequest) -> Path:
    """A venv with the oldest claimed ansible-core: in pytest's cache, made once
    (the system's temporary directory under ``-p no:cacheprovider``)."""
    cache = getattr(request.config, "cache", None)
    where = cache.mkdir("floy-ansible-core") if cache is not None else \
        Path(tempfile.gettempdir()) / "floy-ansible-core-cache"
    return core_venv(where, requires_ansible_floor())


def _succeeded(run: subprocess.CompletedProcess[str]) -> None:
    """Exit 0 and no warning: an old ansible-core warns first about what it does not know."""
    output = run.stdout + run.stderr
    assert run.returncode == 0, output
    assert "WARNING]" not in output, output


@pytest.fixture
def root(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "floy"
    yield path
    stop_apps(path)


@pytest.mark.slow
def test_deploy_rollback_probe_with_the_oldest_claimed_ansible_core(
    oldest_venv: Path, tmp_path: Path, root: Path,
    packages: dict[str, tuple[str, str]], package_server: PackageServer,
) -> None:
    version = subprocess.run(
        [str(oldest_venv / "bin" / "ansible-playbook"), "--version"],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout.splitlines()[0]
    assert f"[core {requires_ansible_floor()}]" in version, version

    port = free_port()
    inventory = local_inventory(tmp_path, port)
    common = {"floy_service": "hello", "floy_root": str(root),
              "floy_ca_bundle": str(package_server.ca_bundle), "floy_retry_delay": 0}
    instance = root / "hello" / "p1"

    for ver in ("1.0.0", "2.0.0"):
        url, sha = packages[ver]
        run = play(oldest_venv, tmp_path, "deploy.yml", inventory,
                    {**common, "floy_version": ver, "floy_package_url": url,
                     "floy_package_sha256": sha}, cwd=tmp_path)
        _succeeded(run)
        assert "failed=0" in run.stdout and "changed=1" in run.stdout, run.stdout
        assert os.readlink(instance / "current") == f"releases/{ver}"
        assert health(port) == {"status": "ok", "version": ver}

    # The role's other path: hooks split the release into phases run around them.
    hook = tmp_path / "hook.yml"
    hook.write_text(yaml.safe_dump([{
        "name": "Record the hook", "ansible.builtin.lineinfile": {
            "path": str(tmp_path / "hooks.log"), "line": "{{ floy_hook }} {{ floy_version }}",
            "create": True, "mode": "0644"}}]))
    url, sha = packages["3.0.0"]
    hooked = play(oldest_venv, tmp_path, "deploy.yml", inventory,
                   {**common, "floy_version": "3.0.0", "floy_package_url": url,
                    "floy_package_sha256": sha, "floy_before_switch_tasks_file": str(hook),
                    "floy_after_switch_tasks_file": str(hook)}, cwd=tmp_path)
    _succeeded(hooked)
    assert os.readlink(instance / "current") == "releases/3.0.0"
    assert health(port) == {"status": "ok", "version": "3.0.0"}
    assert (tmp_path / "hooks.log").read_text().splitlines() == [
        "before_switch 3.0.0", "after_switch 3.0.0"]

    back = play(oldest_venv, tmp_path, "rollback.yml", inventory,
                 {**common, "floy_version": "1.0.0"}, cwd=tmp_path)
    _succeeded(back)
    assert os.readlink(instance / "current") == "releases/1.0.0"
    assert health(port)["version"] == "1.0.0"

    probe = play(oldest_venv, tmp_path, "probe.yml", inventory,
                  {"floy_service": "hello", "floy_root": str(root)}, cwd=REPO)
    _succeeded(probe)
    assert "p1" in probe.stdout and "failed=0" in probe.stdout
