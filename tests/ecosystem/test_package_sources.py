"""The package sources ansistrano users have besides an HTTPS URL, through deploy.yml with
ansible-playbook: a git ref (a bare repository the package server serves on loopback over
HTTPS, git's "dumb" protocol, verified with the run's CA) and a zip file on the controller
(copied to the instance). Each deploys, restarts and passes the health check."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import tarfile
import urllib.request
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from sample.packages import free_port, stop_apps
from sample.pkgserver import PackageServer
from tests.ecosystem._paths import PLAYBOOKS, REPO, VENV_BIN, tool_env

pytestmark = pytest.mark.slow

GIT = ["git", "-c", "user.name=floy tests", "-c", "user.email=tests@floy.invalid",
       "-c", "init.defaultBranch=main", "-c", "advice.detachedHead=false"]


@pytest.fixture
def root(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "floy"
    yield path
    stop_apps(path)


def _git(*args: str, cwd: Path) -> None:
    subprocess.run([*GIT, *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def _unpack(package: Path, into: Path) -> None:
    with tarfile.open(package) as tar:
        tar.extractall(into, filter="tar")


def _deploy(tmp_path: Path, port: int,
            extra: dict[str, object]) -> subprocess.CompletedProcess[str]:
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(yaml.safe_dump({"all": {"children": {"hello": {"hosts": {"s1": {
        "ansible_connection": "local", "floy_instance_port": port,
        "ansible_python_interpreter": str(VENV_BIN / "python")}}}}}}))
    vars_file = tmp_path / "vars.yml"
    vars_file.write_text(yaml.safe_dump({
        "floy_service": "hello", "floy_restart_command": "bin/restart",
        "floy_health_expect": '"version": "{{ floy_version }}"', **extra}))
    return subprocess.run(
        [str(VENV_BIN / "ansible-playbook"), "-i", str(inventory),
         str(PLAYBOOKS / "deploy.yml"), "-e", f"@{vars_file}"],
        cwd=REPO, env=tool_env(), capture_output=True, text=True, timeout=300,
    )


def _health(port: int) -> dict[str, str]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(f"http://127.0.0.1:{port}/health", timeout=5) as response:
        data: dict[str, str] = json.loads(response.read())
        return data


def test_a_git_ref_served_over_https_is_released(
    tmp_path: Path, root: Path, package_dir: Path, package_server: PackageServer,
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    _git("init", "-q", cwd=work)
    for version in ("1.0.0", "2.0.0"):
        _unpack(package_dir / f"hello-{version}.tar.gz", work)
        # The packages' files have the same sizes and mtimes: git's stat cache would see
        # no change, so the index is built afresh.
        (work / ".git" / "index").unlink(missing_ok=True)
        _git("add", "-A", cwd=work)
        _git("commit", "-q", "-m", f"hello {version}", cwd=work)
        _git("tag", f"v{version}", cwd=work)
    name = f"hello-{uuid.uuid4().hex[:8]}.git"
    bare = package_dir / "git" / name
    bare.parent.mkdir(exist_ok=True)
    _git("clone", "-q", "--bare", str(work), str(bare), cwd=tmp_path)
    _git("update-server-info", cwd=bare)
    port = free_port()
    common = {"floy_root": str(root), "floy_git_repo": f"{package_server.base_url}/git/{name}",
              "floy_ca_bundle": str(package_server.ca_bundle)}
    instance = root / "hello" / "s1"

    for version in ("1.0.0", "2.0.0"):
        run = _deploy(tmp_path, port, {**common, "floy_version": version,
                                       "floy_git_version": f"v{version}"})
        assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
        assert os.readlink(instance / "current") == f"releases/{version}"
        assert _health(port) == {"status": "ok", "version": version}
    assert not (instance / "current" / ".git").exists(), "an archive of the ref, not a clone"
    assert (instance / "repo" / ".git").is_dir() and (instance / "repo.tar.gz").is_file()
    assert any(f"/git/{name}/info/refs" in path for path in package_server.requests)


def test_a_zip_on_the_controller_is_copied_and_released(
    tmp_path: Path, root: Path, package_dir: Path,
) -> None:
    tree = tmp_path / "tree"
    _unpack(package_dir / "hello-3.0.0.tar.gz", tree)
    package = tmp_path / "hello-3.0.0.zip"
    with zipfile.ZipFile(package, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(tree.rglob("*")):
            if path.is_file():
                info = zipfile.ZipInfo(str(path.relative_to(tree)))
                info.create_system = 3  # unix, so that the modes below count
                info.external_attr = (stat.S_IFREG | (path.stat().st_mode & 0o777)) << 16
                archive.writestr(info, path.read_bytes())
    port = free_port()
    run = _deploy(tmp_path, port, {"floy_root": str(root), "floy_version": "3.0.0",
                                   "floy_package_file": str(package)})
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    instance = root / "hello" / "s1"
    assert os.readlink(instance / "current") == "releases/3.0.0"
    assert _health(port) == {"status": "ok", "version": "3.0.0"}
    assert (instance / "incoming" / "hello-3.0.0.zip").read_bytes() == package.read_bytes()


def test_a_url_with_a_file_source_is_refused_before_anything_is_copied(
    tmp_path: Path, root: Path, package_dir: Path, package_server: PackageServer,
) -> None:
    """floy's CLI always names a URL: group_vars with a file source must not win silently
    (the host would run the file while floy's record names the URL)."""
    run = _deploy(tmp_path, free_port(), {
        "floy_root": str(root), "floy_version": "3.0.0",
        "floy_package_url": package_server.url("hello-3.0.0.tar.gz"),
        "floy_ca_bundle": str(package_server.ca_bundle),
        "floy_package_file": str(package_dir / "hello-3.0.0.tar.gz")})
    assert run.returncode != 0
    assert "give package_url or package_path, not both (the role floy: floy_package_url," in (
        run.stdout), run.stdout[-4000:]
    instance = root / "hello" / "s1"
    assert not (instance / "incoming").exists() and not (instance / "current").exists()
