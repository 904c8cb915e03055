"""Session fixtures shared by floy's tests: a test PKI, sample packages, an HTTPS server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sample.packages import build_hello_package, free_port, package_name, sha256_file
from sample.pkgserver import PackageServer, Pki, make_pki

__all__ = ["free_port"]

OK_VERSIONS = ("1.0.0", "2.0.0", "3.0.0")
BROKEN_VERSION = "9.0.0"
BROKEN_BEHAVIOURS = ("crash", "unhealthy", "hang")


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """Root CA -> intermediate -> leaf for 127.0.0.1/localhost; clients trust the root only."""
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="session")
def package_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Directory with hello 1.0.0, 2.0.0, 3.0.0 and 9.0.0 in the crash/unhealthy/hang flavours."""
    directory = tmp_path_factory.mktemp("packages")
    for version in OK_VERSIONS:
        build_hello_package(directory, version)
    for behaviour in BROKEN_BEHAVIOURS:
        build_hello_package(directory, BROKEN_VERSION, behaviour)
    return directory


@pytest.fixture(scope="session")
def package_server(package_dir: Path, pki: Pki) -> Iterator[PackageServer]:
    """A running HTTPS PackageServer over ``package_dir``."""
    server = PackageServer.start(package_dir, pki)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def packages(package_server: PackageServer, package_dir: Path) -> dict[str, tuple[str, str]]:
    """Name -> (url, sha256): "1.0.0", "2.0.0", "3.0.0", "9.0.0-crash", ..."""
    result: dict[str, tuple[str, str]] = {}
    for version in OK_VERSIONS:
        name = package_name(version)
        result[version] = (package_server.url(name), sha256_file(package_dir / name))
    for behaviour in BROKEN_BEHAVIOURS:
        name = package_name(BROKEN_VERSION, behaviour)
        result[f"{BROKEN_VERSION}-{behaviour}"] = (
            package_server.url(name),
            sha256_file(package_dir / name),
        )
    return result
