"""Integration fixtures: a floy installation (:mod:`tests.helpers.floyenv`) over the
session's real package server, and a private PostgreSQL server (:mod:`tests.integration.pg`)
for the shared-store tests."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from sample.packages import stop_apps
from tests.helpers.floyenv import SERVICE, FloyEnv, make_env, write_inventory
from tests.helpers.httpserver import FloyServer, start_server
from tests.integration.pg import Postgres

__all__ = ["SERVICE", "FloyEnv", "FloyServer", "make_env", "write_inventory"]


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    """One private PostgreSQL cluster per test session (per xdist worker), started on first
    use; each test takes a fresh database with ``postgres.new_database()``. Skipped where
    PostgreSQL is not installed and cannot be (not root: scripts/bootstrap.sh installs it
    as root)."""
    try:
        server = Postgres().start()
    except RuntimeError as exc:
        if "not installed" in str(exc) and os.geteuid() != 0:
            pytest.skip(str(exc))
        raise
    yield server
    server.stop()


@pytest.fixture
def floy_env(tmp_path: Path, pki: object, packages: dict[str, tuple[str, str]]
             ) -> Iterator[FloyEnv]:
    """floy with the inline executor: execute_deployment returns when the run has ended."""
    env = make_env(tmp_path, pki, packages, inline=True)
    yield env
    stop_apps(env.root)
    env.store.close()


@pytest.fixture
def floy_async_env(tmp_path: Path, pki: object, packages: dict[str, tuple[str, str]]
                   ) -> Iterator[FloyEnv]:
    """floy with detached worker processes, as the CLI uses it (short leases)."""
    env = make_env(tmp_path, pki, packages, inline=False, lease_seconds=3.0)
    yield env
    stop_apps(env.root)
    env.store.close()


@pytest.fixture
def floy_server(floy_async_env: FloyEnv, pki: object) -> Iterator[FloyServer]:
    """A real ``floy serve`` (TLS, a read and a deployer token) over an installation with
    detached workers; no instance is registered yet."""
    server = start_server(floy_async_env, pki)
    yield server
    server.stop()
