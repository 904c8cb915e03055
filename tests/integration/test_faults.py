"""Faults: each leaves every instance on a complete release and the record true."""

from __future__ import annotations

import dataclasses
import io
import os
import subprocess
import tarfile
from pathlib import Path

import pytest
import yaml

from orchestrator.models import DeployParams, InstanceSpec, Status
from sample.packages import build_hello_package, free_port, sha256_file
from sample.pkgserver import PackageServer
from tests.helpers.floyenv import FloyEnv, reconfigured
from tests.helpers.store import table_counts

pytestmark = pytest.mark.integration


def on_v1(env: FloyEnv, count: int) -> list[str]:
    ids = env.register(count)
    assert env.deploy("1.0.0", ids, "v1", batch_size=str(count)).status is Status.COMPLETED
    return ids


def assert_clean(env: FloyEnv, instance_id: str, version: str = "1.0.0") -> None:
    """On the old complete release, serving it, with no temp files left."""
    assert env.current(instance_id) == version
    assert env.answers(instance_id) == version
    releases = env.root / "hello" / instance_id / "releases"
    assert not [p.name for p in releases.iterdir() if p.name.startswith(".")]
    record = env.store.instances.get([instance_id])[instance_id]
    assert record.version == version, "the record says what the disk says"


@pytest.mark.parametrize(("fault", "retries", "attempts", "needle"), [
    ("drop", 1, 2, "download failed"),        # connection closed mid-body: transient
    ("truncate", 1, 2, "download failed"),    # short body: transient
    ("slow/30", 0, 1, "timed out after 3 s"), # slower than the timeout: permanent
])
def test_package_server_faults(floy_env: FloyEnv, package_server: PackageServer, fault: str,
                               retries: int, attempts: int, needle: str) -> None:
    ids = on_v1(floy_env, 2)
    url = f"{package_server.base_url}/{fault}/pkgs/hello-2.0.0.tar.gz"
    status = floy_env.deploy("2.0.0", ids[:1], f"f-{fault.split('/')[0]}", url=url,
                             retry_count=retries, timeout=3)
    inst = status.instances[0]
    assert status.status is Status.FAILED and inst.status is Status.FAILED
    assert needle in inst.error_message, inst.error_message
    assert inst.attempts == attempts
    assert_clean(floy_env, ids[0])
    assert_clean(floy_env, ids[1])


def test_untrusted_certificate_is_refused(floy_env: FloyEnv) -> None:
    ids = on_v1(floy_env, 1)
    # the same server, but floy no longer trusts the demo CA
    floy_env = floy_env.rebuilt(dataclasses.replace(floy_env.settings, ca_bundle=""))
    status = floy_env.deploy("2.0.0", ids, "f-tls", retry_count=2)
    inst = status.instances[0]
    assert inst.status is Status.FAILED
    assert "certificate verification failed" in inst.error_message, inst.error_message
    assert inst.attempts == 1, "a TLS verification failure is not retried"
    assert_clean(floy_env, ids[0])


def _big_package(scratch: Path, directory: Path, version: str) -> Path:
    """A hello package with 3 MiB of incompressible data in it, written into ``directory``
    (built in ``scratch``: the session's own packages must stay byte for byte the same)."""
    small = build_hello_package(scratch, version)
    target = directory / f"hello-{version}-big.tar.gz"
    with tarfile.open(small) as src, tarfile.open(target, "w:gz") as dst:
        for member in src.getmembers():
            dst.addfile(member, src.extractfile(member) if member.isfile() else None)
        blob = os.urandom(3 * 1024 * 1024)
        info = tarfile.TarInfo("data/blob.bin")
        info.size = len(blob)
        dst.addfile(info, io.BytesIO(blob))
    return target


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")
def test_disk_full_fails_cleanly(floy_env: FloyEnv, package_dir: Path,
                                 package_server: PackageServer, tmp_path: Path) -> None:
    ids = floy_env.register(1)
    instance_dir = floy_env.root / "hello" / ids[0]
    instance_dir.mkdir(parents=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs",
                              str(instance_dir)], capture_output=True, text=True, check=False)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        assert floy_env.deploy("1.0.0", ids, "d-small").status is Status.COMPLETED
        big = _big_package(tmp_path, package_dir, "2.0.0")
        status = floy_env.deploy("2.0.0", ids, "d-big", url=package_server.url(big.name),
                                 package_sha256=sha256_file(big), retry_count=0)
        inst = status.instances[0]
        assert inst.status is Status.FAILED
        assert "no space left" in inst.error_message.lower(), inst.error_message
        assert_clean(floy_env, ids[0])
        assert not (instance_dir / "releases" / "2.0.0").exists(), "partial release removed"
    finally:
        from sample.packages import stop_apps

        stop_apps(floy_env.root)
        subprocess.run(["umount", "-l", str(instance_dir)], check=False)


@pytest.mark.parametrize("behaviour", ["crash", "unhealthy"])
def test_new_release_that_never_gets_healthy_is_switched_back(floy_env: FloyEnv,
                                                              behaviour: str) -> None:
    ids = on_v1(floy_env, 1)
    status = floy_env.deploy(f"9.0.0-{behaviour}", ids, f"f-{behaviour}", version="9.0.0",
                             retry_count=0)
    inst = status.instances[0]
    assert inst.status is Status.FAILED and "switched back to 1.0.0" in inst.error_message
    assert_clean(floy_env, ids[0])
    assert not (floy_env.root / "hello" / ids[0] / "releases" / "9.0.0").exists()


def test_unreachable_instance_fails_alone_and_counts(floy_env: FloyEnv) -> None:
    ids = on_v1(floy_env, 3)
    gone = "hello-9"
    floy_env.store.instances.add([InstanceSpec(gone, "hello", "127.0.0.1", free_port(), {})])
    host_vars = floy_env.settings.inventory_dir / "host_vars"
    host_vars.mkdir(exist_ok=True)
    (host_vars / f"{gone}.yml").write_text(yaml.safe_dump(  # nothing listens on port 9
        {"ansible_connection": "ssh", "ansible_port": 9, "ansible_host": "127.0.0.1"}))
    status = floy_env.deploy("2.0.0", [ids[0], gone, ids[1], ids[2]], "f-unreach",
                             batch_size="1", max_failures=0, retry_count=0)
    by_id = {i.instance_id: i for i in status.instances}
    assert by_id[ids[0]].status is Status.COMPLETED
    assert by_id[gone].status is Status.FAILED
    assert by_id[gone].error_message.startswith("unreachable")
    for later in ids[1:]:  # the failure budget (0) stops the later batches
        assert by_id[later].status is Status.CANCELLED
        assert "failure budget" in by_id[later].error_message
        assert_clean(floy_env, later)
    assert floy_env.answers(ids[0]) == "2.0.0"


def test_package_url_host_allow_list(floy_env: FloyEnv) -> None:
    from orchestrator.errors import ValidationError

    ids = floy_env.register(1)
    floy_env.service = reconfigured(floy_env.service,
                                    allowed_package_hosts=frozenset({"packages.internal"}))
    url, _ = floy_env.packages["1.0.0"]
    before = table_counts(floy_env.store)
    with pytest.raises(ValidationError) as err:
        floy_env.service.execute_deployment(DeployParams(
            service="hello", version="1.0.0", instances=tuple(ids), package_url=url,
            deploy_id="f-allow"))
    assert err.value.field == "package_url"
    assert table_counts(floy_env.store) == before


def test_a_failed_restart_leaves_nothing_of_its_group(floy_env: FloyEnv,
                                                       package_server: PackageServer,
                                                       tmp_path: Path) -> None:
    """A restart command that starts something in the background and then fails (or is
    killed, as the chaos soak does): what it started goes with it, the old release
    serves. (Found by the soak: a hanging child outlived its killed restart command.)"""
    ids = on_v1(floy_env, 1)
    script = b"#!/bin/sh\n(sleep 3600 &)\necho starting >&2\nexit 3\n"
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w:gz") as tar:
        info = tarfile.TarInfo("bin/restart")
        info.size, info.mode = len(script), 0o755
        tar.addfile(info, io.BytesIO(script))
    name = f"hello-2.0.0-bgfail-{os.getpid()}.tar.gz"
    (package_server.directory / name).write_bytes(raw.getvalue())
    status = floy_env.deploy("2.0.0", ids, "f-bgfail", url=package_server.url(name),
                             package_sha256="", retry_count=0)
    inst = status.instances[0]
    assert inst.status is Status.FAILED
    assert "exit status 3" in inst.error_message, inst.error_message
    assert floy_env.leftovers() == [], "the restart command's background child survived"
    assert_clean(floy_env, ids[0])
