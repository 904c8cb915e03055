"""The Go client (``clients/go``): its own tests, and the spec's example program against a
real ``floy serve``.

The Go toolchain runs offline (``GOPROXY=off``, the module has no dependency) with its
cache and ``GOPATH`` in a temporary directory. ``go`` comes from Debian's ``golang-go``,
which ``scripts/bootstrap.sh`` installs; without it these tests fail, saying so.

The example program (``clients/go/example/main.go``, section 6.2 of the interface spec)
keeps the spec's package URLs, ``https://packages.example.com/user-service/v1.2.3.tar.gz``
and ``.../v1.2.2.tar.gz``. The end-to-end test builds a copy of the module in which the
URL prefix ``https://packages.example.com/user-service/`` is replaced by the ``/pkgs/``
URL of a local HTTPS package server that serves hello packages under those file names,
then runs it with ``FLOY_URL``, ``FLOY_TOKEN`` and ``FLOY_CA_BUNDLE`` pointing at the test
server.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from orchestrator.settings import REPO_ROOT
from sample.packages import build_hello_package
from sample.pkgserver import PackageServer, Pki
from tests.helpers.httpserver import FloyServer

pytestmark = pytest.mark.integration

CLIENT_DIR = REPO_ROOT / "clients" / "go"
EXAMPLE = Path("example") / "main.go"
EXAMPLE_PREFIX = "https://packages.example.com/user-service/"
SERVICE = "user-service"
INSTANCES = ["instance-1", "instance-2"]
DEPLOYED, ROLLED_BACK = "v1.2.3", "v1.2.2"


def _go() -> str:
    go = shutil.which("go")
    if go is None:
        pytest.fail("the Go toolchain (`go`) is not installed: run scripts/bootstrap.sh "
                    "(as root it apt-installs Debian's golang-go), or install Go 1.19+",
                    pytrace=False)
    return go


@pytest.fixture(scope="module")
def go_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The environment of every ``go`` command here: offline, local toolchain only, its
    cache and GOPATH in a temporary directory (shared by this module's tests), no cgo."""
    _go()
    root = tmp_path_factory.mktemp("go")
    environ = {k: v for k, v in os.environ.items()
               if not k.startswith(("GO", "FLOY_")) and k != "CGO_ENABLED"}
    environ.update({
        "GOFLAGS": "-mod=mod", "GOPROXY": "off", "GOTOOLCHAIN": "local",
        "GOCACHE": str(root / "cache"), "GOPATH": str(root / "gopath"),
        "GOENV": "off", "GOWORK": "off", "CGO_ENABLED": "0",
    })
    return environ


def _run(args: list[str], cwd: Path, environ: dict[str, str], timeout: float = 300
         ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, env=environ, capture_output=True, text=True,
                          timeout=timeout, check=False)


def _check(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, (
        f"{' '.join(result.args)} exited {result.returncode}\n"
        f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}")
    return result.stdout


def test_go_vet_gofmt_and_unit_tests(go_env: dict[str, str]) -> None:
    go = _go()
    _check(_run([go, "vet", "./..."], CLIENT_DIR, go_env))
    goroot = _check(_run([go, "env", "GOROOT"], CLIENT_DIR, go_env)).strip()
    unformatted = _check(_run([str(Path(goroot) / "bin" / "gofmt"), "-l", "."], CLIENT_DIR,
                              go_env))
    assert unformatted == "", f"gofmt would change: {unformatted}"
    out = _check(_run([go, "test", "-count=1", "./..."], CLIENT_DIR, go_env))
    assert "ok  \tfloy.example/client/floy" in out, out


def _serve_packages(tmp_path: Path, pki: Pki) -> PackageServer:
    """hello packages of both versions under the spec's file names, over HTTPS."""
    served = tmp_path / "served"
    served.mkdir()
    for version in (DEPLOYED, ROLLED_BACK):
        built = build_hello_package(tmp_path / "build", version)
        built.rename(served / f"{version}.tar.gz")
    return PackageServer.start(served, pki)


def _build_example(tmp_path: Path, packages: PackageServer, go_env: dict[str, str]) -> Path:
    """A copy of the module whose example fetches from ``packages``, built."""
    module = tmp_path / "module"
    shutil.copytree(CLIENT_DIR, module)
    source = module / EXAMPLE
    text = source.read_text(encoding="utf-8")
    quoted = f'"{EXAMPLE_PREFIX}'  # the two PackageURL literals
    assert text.count(quoted) == 2, "the example's package URLs changed"
    source.write_text(text.replace(quoted, f'"{packages.url("")}'), encoding="utf-8")
    binary = tmp_path / "floy-example"
    _check(_run([_go(), "build", "-o", str(binary), "./example"], module, go_env))
    return binary


def _register(server: FloyServer) -> None:
    """instance-1 and instance-2 of user-service, local, restarted and checked like
    hello (the operator's group_vars for the service: the same settings)."""
    group_vars = server.env.settings.inventory_dir / "group_vars"
    (group_vars / f"{SERVICE}.yml").write_text((group_vars / "hello.yml").read_text())
    assert server.env.register(2, service=SERVICE, prefix="instance") == INSTANCES


def test_spec_example_program_against_floy_serve(
    floy_server: FloyServer, pki: Pki, go_env: dict[str, str], tmp_path: Path
) -> None:
    _register(floy_server)
    packages = _serve_packages(tmp_path, pki)
    try:
        binary = _build_example(tmp_path, packages, go_env)
        environ = {k: v for k, v in os.environ.items() if not k.startswith("FLOY_")}
        environ.update({"FLOY_URL": floy_server.url,
                        "FLOY_TOKEN": floy_server.tokens["deployer"],
                        "FLOY_CA_BUNDLE": str(floy_server.ca_file)})
        result = _run([str(binary)], tmp_path, environ)
        assert packages.request_count(f"/pkgs/{DEPLOYED}.tar.gz") >= 1
        assert packages.request_count(f"/pkgs/{ROLLED_BACK}.tar.gz") >= 1
    finally:
        packages.stop()
    assert result.returncode == 0, (
        f"the example exited {result.returncode}\nstdout:\n{result.stdout}\n"
        f"stderr:\n{result.stderr}\nserver log (end):\n{floy_server.log_text()[-4000:]}")

    lines = result.stdout.splitlines()
    assert lines[0] == "发布启动成功: deploy-12345", result.stdout
    # WaitForRuns: the deployment had ended before the versions were asked for.
    assert lines[1] == f"服务实例版本: map[{DEPLOYED}:2]", result.stdout
    assert lines[2].startswith("回滚启动成功: "), result.stdout
    rollback_id = lines[2].removeprefix("回滚启动成功: ")
    assert rollback_id and len(lines) == 3, result.stdout

    with floy_server.client("read") as c:
        deploy = c.get("/v1/deployments/deploy-12345").json()
        assert (deploy["status"], deploy["version"]) == ("completed", DEPLOYED), deploy
        rollback = c.get(f"/v1/deployments/{rollback_id}").json()
        assert (rollback["status"], rollback["kind"]) == ("completed", "rollback"), rollback
        assert rollback["finished_at"] is not None
        versions = c.get(f"/v1/services/{SERVICE}/versions").json()
    assert versions["version_summary"] == {ROLLED_BACK: 2}, versions
    assert {i["instance_id"]: i["version"] for i in versions["instances"]} == {
        i: ROLLED_BACK for i in INSTANCES}

    env = floy_server.env
    stored = env.service.get_service_instance_versions(SERVICE)
    assert {i.instance_id: i.version for i in stored.instances} == {
        i: ROLLED_BACK for i in INSTANCES}
    for instance in INSTANCES:
        assert env.current(instance, service=SERVICE) == ROLLED_BACK
        assert env.answers(instance) == ROLLED_BACK
