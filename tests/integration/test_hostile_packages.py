"""Hostile packages and servers, through real deployments: each one fails the instance
with a clear reason, writes nothing outside its release, and leaves it on its old release.

The archive cases are those of ``tests/unit/archive_cases.py`` (member by member there);
here they go through floy, ansible-runner, the playbook and the module for real.
"""

from __future__ import annotations

import dataclasses
import gzip
import io
import json
import os
import subprocess
import tarfile
import time
from pathlib import Path

import pytest
import yaml

from orchestrator.models import Status
from sample.pkgserver import PackageServer
from tests.helpers.floyenv import FloyEnv
from tests.integration.test_faults import assert_clean, on_v1
from tests.unit import archive_cases

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


def set_group_vars(env: FloyEnv, **values: object) -> None:
    """Operator settings in the inventory's group_vars/all.yml (how an operator sets caps)."""
    path = env.settings.inventory_dir / "group_vars" / "all.yml"
    data = yaml.safe_load(path.read_text())
    data.update(values)
    path.write_text(yaml.safe_dump(data))


def with_allowed_hosts(env: FloyEnv, *hosts: str) -> FloyEnv:
    """The installation with ``allowed_package_hosts`` set (a new service)."""
    return env.rebuilt(dataclasses.replace(env.settings, allowed_package_hosts=frozenset(hosts)))


def serve(package_server: PackageServer, name: str, data: bytes) -> str:
    (package_server.directory / name).write_bytes(data)
    return package_server.url(name)


def deploy_url(env: FloyEnv, ids: list[str], run_id: str, url: str, **extra: object):
    return env.deploy("2.0.0", ids, run_id, url=url, package_sha256="", **extra)


def victim(tmp_path: Path) -> Path:
    outside = tmp_path / "outside"
    outside.mkdir()
    path = outside / "victim.txt"
    path.write_bytes(archive_cases.VICTIM_TEXT)
    return path


def assert_untouched(path: Path) -> None:
    assert path.read_bytes() == archive_cases.VICTIM_TEXT, "overwritten outside the release"
    assert [p.name for p in path.parent.iterdir()] == [path.name], "created outside"


@pytest.mark.parametrize("case", [
    "long_paths", "symlink_chain_hardlink", "symlink_then_escape", "write_through_symlink",
    "hardlink_outside", "char_device", "zip_symlink_then_escape", "zip_write_through_symlink",
])
def test_hostile_archive_is_refused(floy_env: FloyEnv, package_server: PackageServer,
                                    tmp_path: Path, case: str) -> None:
    ids = on_v1(floy_env, 1)
    target = victim(tmp_path)
    # Aimed as an attacker who knows the layout would aim: from where floy unpacks.
    dest = floy_env.root / "hello" / ids[0] / "releases" / ".floy-unpack-abcdefgh"
    # Zip cases too, served under a .tar.gz name: the module goes by the content.
    package = archive_cases.build(case, tmp_path / f"{case}.pkg", target, dest)
    url = serve(package_server, f"hostile-{case}-{os.getpid()}.tar.gz", package.read_bytes())
    status = deploy_url(floy_env, ids, f"h-{case.replace('_', '-')}", url, retry_count=2)
    inst = status.instances[0]
    assert status.status is Status.FAILED and inst.status is Status.FAILED
    assert "bad archive" in inst.error_message, inst.error_message
    refusal = (archive_cases.ZIP_CASES.get(case) or archive_cases.CASES[case]).refusal
    assert refusal and refusal in inst.error_message, inst.error_message
    assert inst.attempts == 1, "a bad archive is not retried"
    assert_untouched(target)
    assert_clean(floy_env, ids[0])


def test_bomb_refused_by_the_default_cap(floy_env: FloyEnv, package_server: PackageServer
                                         ) -> None:
    """A 5 GiB member in a package of a few bytes: refused from its header."""
    ids = on_v1(floy_env, 1)
    info = tarfile.TarInfo("huge.bin")
    info.size = 5 << 30
    data = gzip.compress(info.tobuf(format=tarfile.GNU_FORMAT) + b"\0" * 65536)
    url = serve(package_server, f"bomb-{os.getpid()}.tar.gz", data)
    inst = deploy_url(floy_env, ids, "h-bomb", url).instances[0]
    assert inst.status is Status.FAILED
    assert "max_unpacked_bytes" in inst.error_message, inst.error_message
    assert_clean(floy_env, ids[0])


def _many_entries(count: int) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w:gz", compresslevel=1) as tar:
        for n in range(count):
            tar.addfile(tarfile.TarInfo(f"d{n % 100}/f{n}"))
    return raw.getvalue()


def test_entry_cap_is_operator_settable(floy_env: FloyEnv, package_server: PackageServer
                                        ) -> None:
    ids = on_v1(floy_env, 1)
    set_group_vars(floy_env, floy_max_archive_entries=50)
    url = serve(package_server, f"entries-{os.getpid()}.tar.gz", _many_entries(60))
    inst = deploy_url(floy_env, ids, "h-entries", url).instances[0]
    assert inst.status is Status.FAILED
    assert "more than 50 entries" in inst.error_message, inst.error_message
    assert_clean(floy_env, ids[0])


def test_the_deadline_holds_during_extraction(floy_env: FloyEnv, package_server: PackageServer
                                              ) -> None:
    """200,000 entries with the cap raised: the per-attempt deadline stops the unpack."""
    ids = on_v1(floy_env, 1)
    set_group_vars(floy_env, floy_max_archive_entries=1_000_000)
    url = serve(package_server, f"slow-unpack-{os.getpid()}.tar.gz", _many_entries(200_000))
    started = time.monotonic()
    inst = deploy_url(floy_env, ids, "h-slow-unpack", url, timeout=2, retry_count=0).instances[0]
    assert inst.status is Status.FAILED
    assert "timed out after 2 s (unpacking)" in inst.error_message, inst.error_message
    assert time.monotonic() - started < 30
    assert_clean(floy_env, ids[0])


def test_a_dripping_server_is_stopped_at_the_deadline(
        floy_env: FloyEnv, package_server: PackageServer) -> None:
    """Headers and body one byte every 0.3 s; with --timeout 3 the attempt ends at ~3 s
    (it used to run until Ansible's task timeout, 65 s)."""
    ids = on_v1(floy_env, 1)
    url = f"{package_server.base_url}/drip/0.3/pkgs/hello-2.0.0.tar.gz"
    started = time.monotonic()
    inst = deploy_url(floy_env, ids, "h-drip", url, timeout=3, retry_count=0).instances[0]
    elapsed = time.monotonic() - started
    assert inst.status is Status.FAILED
    assert "timed out after 3 s (downloading" in inst.error_message, inst.error_message
    assert elapsed < 20, elapsed
    assert_clean(floy_env, ids[0])


def test_redirect_outside_the_allowed_hosts_is_refused(
        floy_env: FloyEnv, package_server: PackageServer) -> None:
    ids = on_v1(floy_env, 1)
    floy_env = with_allowed_hosts(floy_env, "127.0.0.1")
    other = package_server.base_url.replace("127.0.0.1", "localhost")
    url = package_server.redirect_url(f"{other}/pkgs/hello-2.0.0.tar.gz?via=h-redirect")
    inst = deploy_url(floy_env, ids, "h-redirect", url, retry_count=2).instances[0]
    assert inst.status is Status.FAILED
    assert "not in the allowed package hosts" in inst.error_message, inst.error_message
    assert inst.attempts == 1
    assert_clean(floy_env, ids[0])


def test_credentials_stay_with_their_origin(floy_env: FloyEnv, package_server: PackageServer
                                            ) -> None:
    """floy_package_headers (an Authorization token) are not sent after a redirect to
    another host: the other host answers 401, and its request carried no token."""
    ids = on_v1(floy_env, 1)
    set_group_vars(floy_env, floy_package_headers={"Authorization": "Bearer t0ken"})
    package_server.require_token("t0ken")
    try:
        other = package_server.base_url.replace("127.0.0.1", "localhost")
        start = len(package_server.request_headers)
        url = package_server.redirect_url(f"{other}/auth/pkgs/hello-2.0.0.tar.gz")
        inst = deploy_url(floy_env, ids, "h-creds", url, retry_count=0).instances[0]
        assert inst.status is Status.FAILED
        assert "HTTP 401" in inst.error_message, inst.error_message
        sent = package_server.request_headers[start:]
        assert sent and all("Authorization" not in h for h in sent[1::2]), sent
        assert "t0ken" not in inst.error_message
    finally:
        package_server.require_token(None)
    assert_clean(floy_env, ids[0])


def test_module_applies_the_policy_to_a_url_recorded_on_the_host(
        floy_env: FloyEnv, packages: dict[str, tuple[str, str]], tmp_path: Path) -> None:
    """The module itself (as AWX or plain ansible-playbook runs it): a release record on
    the host names a URL whose host is no longer allowed; nothing is fetched."""
    ids = on_v1(floy_env, 1)
    instance_dir = floy_env.root / "hello" / ids[0]
    url, _ = packages["2.0.0"]
    (instance_dir / ".floy" / "releases" / "2.0.0.json").write_text(json.dumps(
        {"version": "2.0.0", "package_url": url, "sha256": "", "installed_at": ""}))
    args = {"instance_dir": str(instance_dir), "service": "hello", "instance_id": ids[0],
            "version": "2.0.0", "allowed_hosts": ["packages.example.com"]}
    env = {**os.environ, "ANSIBLE_COLLECTIONS_PATH": str(REPO / "collections"),
           "ANSIBLE_LOCALHOST_WARNING": "false"}
    proc = subprocess.run(
        ["ansible", "localhost", "-c", "local", "-m", "floy.release.floy_release",
         "-a", json.dumps(args)],
        capture_output=True, text=True, env=env, timeout=120, check=False)
    assert proc.returncode != 0, proc.stdout
    assert "is not in the allowed package hosts" in proc.stdout, proc.stdout
    assert "recorded on the host" in proc.stdout, proc.stdout
    assert floy_env.current(ids[0]) == "1.0.0"


@pytest.mark.parametrize("option", ["max_unpacked_bytes", "max_archive_entries"])
def test_module_refuses_a_cap_below_one(floy_env: FloyEnv, packages: dict[str, tuple[str, str]],
                                        option: str) -> None:
    """The new caps are input too: 0 is refused before anything is fetched or touched."""
    ids = on_v1(floy_env, 1)
    url, _ = packages["2.0.0"]
    args = {"instance_dir": str(floy_env.root / "hello" / ids[0]), "service": "hello",
            "instance_id": ids[0], "version": "2.0.0", "package_url": url, option: 0}
    env = {**os.environ, "ANSIBLE_COLLECTIONS_PATH": str(REPO / "collections"),
           "ANSIBLE_LOCALHOST_WARNING": "false"}
    proc = subprocess.run(
        ["ansible", "localhost", "-c", "local", "-m", "floy.release.floy_release",
         "-a", json.dumps(args)],
        capture_output=True, text=True, env=env, timeout=120, check=False)
    assert proc.returncode != 0, proc.stdout
    assert "invalid max_unpacked_bytes or max_archive_entries" in proc.stdout, proc.stdout
    assert '"downloaded": false' in proc.stdout, proc.stdout
    assert floy_env.current(ids[0]) == "1.0.0"
