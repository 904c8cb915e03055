"""Secrets and files: owner-only state, and credentials never copied where they do not belong.

The operator keeps a download credential (``floy_package_headers``) and an SSH key path in
group_vars. After real deployments with an authenticated package URL, every file floy wrote
(the database and its WAL, run artifacts, worker logs) is scanned for the token and for the
key's content.
"""

from __future__ import annotations

import ssl
import stat
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from orchestrator.models import DeployParams, Status
from orchestrator.store import Store
from sample.packages import package_name, stop_apps
from sample.pkgserver import PackageServer, Pki
from tests.helpers.floyenv import FloyEnv, make_env
from tests.helpers.store import table_counts

pytestmark = pytest.mark.integration
SECRET = "floy-test-token-6f1c9a2e8b7d4c30"
KEY_MARKER = "FLOY-TEST-PRIVATE-KEY-MATERIAL-3d9e1b7a"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def auth_server(package_dir: Path, pki: Pki) -> Iterator[PackageServer]:
    server = PackageServer.start(package_dir, pki, token=SECRET)
    yield server
    server.stop()


def test_home_and_database_are_owner_only(tmp_path: Path, pki: Any,
                                          packages: dict[str, tuple[str, str]]) -> None:
    env = make_env(tmp_path, pki, packages, inline=True)
    try:
        ids = env.register(1)
        assert env.deploy("1.0.0", ids, "perm-1").status is Status.COMPLETED
        assert mode(env.home) == 0o700
        assert mode(env.home / "floy.db") == 0o600
    finally:
        stop_apps(env.root)
        env.store.close()


def test_wal_and_shm_are_owner_only(tmp_path: Path) -> None:
    """The WAL holds recent rows; it must be as private as the database."""
    home = tmp_path / "fresh"
    store = Store.open(f"sqlite:///{home / 'floy.db'}")
    try:
        table_counts(store)  # a connection stays open: the WAL and SHM exist
        for name in ("floy.db", "floy.db-wal", "floy.db-shm"):
            path = home / name
            assert path.exists(), name
            assert mode(path) == 0o600, f"{name} is {oct(mode(path))}"
        assert mode(home) == 0o700
    finally:
        store.close()


def test_the_auth_path_of_the_package_server(auth_server: PackageServer, pki: Pki,
                                             package_server: PackageServer) -> None:
    context = ssl.create_default_context(cafile=str(pki.ca_bundle))
    name = package_name("1.0.0")

    def get(server: PackageServer, token: str | None) -> int:
        request = urllib.request.Request(server.auth_url(name))
        if token is not None:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, context=context, timeout=10) as resp:
                resp.read()
                return int(resp.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)

    assert get(auth_server, SECRET) == 200
    assert get(auth_server, None) == 401
    assert get(auth_server, "wrong") == 401
    assert get(package_server, SECRET) == 404, "no token configured: the path is closed"


def configure_credentials(env: FloyEnv, tmp_path: Path) -> tuple[Path, Path]:
    """Token in group_vars/hello.yml, a fake private key path in group_vars/all.yml."""
    key = tmp_path / "keys" / "id_test"
    key.parent.mkdir(parents=True, mode=0o700)
    key.write_text(f"-----BEGIN OPENSSH PRIVATE KEY-----\n{KEY_MARKER}\n"
                   "-----END OPENSSH PRIVATE KEY-----\n")
    key.chmod(0o600)
    group_vars = env.settings.inventory_dir / "group_vars"
    hello = group_vars / "hello.yml"
    data = yaml.safe_load(hello.read_text())
    data["floy_package_headers"] = {"Authorization": f"Bearer {SECRET}"}
    hello.write_text(yaml.safe_dump(data))
    hello.chmod(0o600)
    everyone = group_vars / "all.yml"
    data = yaml.safe_load(everyone.read_text())
    data["ansible_ssh_private_key_file"] = str(key)  # ignored by the local connection
    everyone.write_text(yaml.safe_dump(data))
    return hello, key


def files_under(path: Path) -> list[Path]:
    return sorted(p for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def holding(paths: list[Path], needle: str) -> list[Path]:
    data = needle.encode()
    return [p for p in paths if data in p.read_bytes()]


def test_credentials_never_leak_into_floy_state(tmp_path: Path, pki: Pki,
                                                 packages: dict[str, tuple[str, str]],
                                                 auth_server: PackageServer) -> None:
    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
    inline = make_env(tmp_path / "a", pki, packages, inline=True)
    detached = make_env(tmp_path / "b", pki, packages, inline=False, lease_seconds=3)
    try:
        url = auth_server.auth_url(package_name("1.0.0"))
        _, sha = packages["1.0.0"]
        operator_files = []
        for env, run_id in ((inline, "auth-inline"), (detached, "auth-detached")):
            operator_files.append(configure_credentials(env, tmp_path / run_id)[0])
            ids = env.register(2)
            env.service.execute_deployment(DeployParams(
                service="hello", version="1.0.0", instances=tuple(ids), package_url=url,
                deploy_id=run_id, package_sha256=sha, batch_size="2", retry_count=0))
            status = env.wait(run_id)
            assert status.status is Status.COMPLETED, [i.error_message for i in status.instances]
            assert env.answers(ids[0]) == "1.0.0"
        assert auth_server.request_count("/auth/pkgs/") == 4
        assert all(h.get("Authorization") == f"Bearer {SECRET}"
                   for h in auth_server.request_headers), "the token was really sent"

        for env, run_id in ((inline, "auth-inline"), (detached, "auth-detached")):
            # the store stays open, so its WAL is scanned as it is
            written = files_under(env.home)
            assert env.home / "floy.db" in written
            assert any(p.name == "job_events" or p.parent.name == "job_events"
                       for p in written), "runner artifacts were written"
            if env is detached:
                assert (env.home / "logs" / f"{run_id}.log") in written
                assert mode(env.home / "logs") == 0o700
            # the module's arguments are in job_events, with the header value masked
            masked = holding(written, "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER")
            assert masked and all(p.parent.name == "job_events" for p in masked), masked
            copies = env.settings.runs_dir / run_id / "inventory" / "group_vars"
            leaks = [p for p in holding(written, SECRET) if copies not in p.parents]
            assert leaks == [], f"token found in {[str(p) for p in leaks]}"
            assert holding(written, KEY_MARKER) == [], "private key content copied"
            # floy's own copy of the operator's group_vars: how ansible reads operator vars
            copy = copies / "hello.yml"
            assert holding([copy], SECRET) == [copy], "the scan sees the copy"
            protected = mode(copy) & 0o077 == 0 or mode(copy.parent.parent) & 0o077 == 0
            assert protected, f"{copy} {oct(mode(copy))} in {oct(mode(copy.parent.parent))}"
            assert mode(env.home) == 0o700
        for original in operator_files:
            assert SECRET in original.read_text(), "the operator's file keeps the credential"
    finally:
        for env in (inline, detached):
            stop_apps(env.root)
            env.store.close()


def test_a_download_without_the_credential_fails_permanently(
        tmp_path: Path, pki: Pki, packages: dict[str, tuple[str, str]],
        auth_server: PackageServer) -> None:
    env = make_env(tmp_path, pki, packages, inline=True)
    try:
        ids = env.register(1)
        url = auth_server.auth_url(package_name("1.0.0"))
        status = env.deploy("1.0.0", ids, "noauth-1", url=url, retry_count=3)
        assert status.status is Status.FAILED
        inst = status.instances[0]
        assert "401" in inst.error_message, inst.error_message
        assert inst.attempts <= 1, "an HTTP 4xx is permanent: no retry"
        assert env.current(ids[0]) is None
    finally:
        stop_apps(env.root)
        env.store.close()
