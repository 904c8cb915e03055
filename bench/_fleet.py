"""A local fleet for the benchmarks, and the two ways of deploying to it.

:func:`start_fleet` builds what the integration tests use (``tests/integration/conftest``):
a PKI, the HTTPS package server on loopback serving ``hello`` 1.0.0 and 2.0.0, a floy home
with its operator inventory, and ``count`` registered local instances.

- :meth:`Fleet.floy_command`: floy itself, the service with the inline executor, in a child
  process (``bench/_inline_deploy.py``), so that the child's ``RUSAGE_CHILDREN`` covers the
  orchestrator *and* the ansible-playbook it runs (the CLI's worker is a detached grandchild
  nobody waits for, so its CPU could not be counted).
- :meth:`Fleet.bare_command`: plain ``ansible-playbook`` with exactly what floy hands to
  ansible-runner: the inventory and extra vars baked by ``orchestrator.ansible.plan`` and written by
  ``orchestrator.ansible.runner.materialise``, the same forks and environment.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from _measure import REPO, VENV_BIN

sys.path.insert(0, str(REPO))

from orchestrator.ansible import plan as planning
from orchestrator.ansible.runner import materialise
from orchestrator.domain.records import RunRecord
from orchestrator.domain.request import RunRequest
from orchestrator.models import Status
from orchestrator.settings import Settings
from orchestrator.timefmt import utcnow
from sample.packages import build_hello_package, sha256_file, stop_apps
from sample.pkgserver import PackageServer, make_pki
from tests.integration.conftest import SERVICE, FloyEnv, make_env


def version_of(step: int) -> str:
    """A new version for every deployment, so that every run downloads and switches."""
    return f"1.0.{step}"

INLINE_DEPLOY = Path(__file__).resolve().parent / "_inline_deploy.py"


@dataclass
class Fleet:
    """Local instances of ``hello``, a package server, and floy installed over them."""

    tmp: Path
    env: FloyEnv
    server: PackageServer
    packages: dict[str, tuple[str, str]]  # version -> (url, sha256)
    ids: list[str]
    bare_runs: int = field(default=0)

    @property
    def ca_bundle(self) -> str:
        return self.env.settings.ca_bundle

    def package(self, version: str) -> tuple[str, str]:
        """URL and sha256 of the ``hello`` package of ``version`` (built on first use)."""
        if version not in self.packages:
            path = build_hello_package(self.tmp / "pkgs", version)
            self.packages[version] = (self.server.url(path.name), sha256_file(path))
        return self.packages[version]

    def floy_command(self, version: str, deploy_id: str, batch_size: str,
                     forks: int) -> list[str]:
        """Command deploying ``version`` to every instance through floy (inline, in a child)."""
        url, sha = self.package(version)
        return [sys.executable, str(INLINE_DEPLOY), "--home", str(self.env.home),
                "--inventory-dir", str(self.env.settings.inventory_dir),
                "--ca-bundle", self.ca_bundle, "--forks", str(forks),
                "--service", SERVICE, "--version", version, "--url", url, "--sha256", sha,
                "--deploy-id", deploy_id, "--batch-size", batch_size]

    def bare_command(self, version: str, batch_size: str,
                     forks: int) -> tuple[list[str], dict[str, str]]:
        """``ansible-playbook`` over floy's baked inventory and extra vars, and its env."""
        plan, inventory_dir, vars_file = self.bare_plan(version, batch_size, forks)
        cmd = [str(VENV_BIN / "ansible-playbook"), "-i", str(inventory_dir),
               "-e", f"@{vars_file}", "--forks", str(plan.forks), str(plan.playbook)]
        return cmd, dict(plan.envvars)

    def bare_plan(self, version: str, batch_size: str,
                  forks: int) -> tuple[planning.RunPlan, Path, Path]:
        """floy's plan of a deployment of ``version`` (not recorded in the store), written
        into a fresh private data dir: (plan, inventory dir, extra vars file)."""
        self.bare_runs += 1
        label = f"bare-{self.bare_runs}"
        url, sha = self.package(version)
        settings = self.settings_with(forks)
        now = utcnow()
        run = RunRecord(
            run_id=label, kind="deploy", service=SERVICE, version=version,
            status=Status.PENDING, created_by="bench", created_at=now, updated_at=now,
            request=RunRequest(tuple(self.ids), url, sha, batch_size=batch_size),
        )
        instances = self.env.store.instances.get(self.ids)
        plan = planning.bake(settings, run, [instances[i] for i in self.ids],
                             planning.deploy_extravars(run, settings))
        inventory_dir, vars_file = materialise(plan)
        return plan, inventory_dir, vars_file

    def settings_with(self, forks: int) -> Settings:
        """floy's settings for this fleet with ``forks`` parallel hosts."""
        from dataclasses import replace

        return replace(self.env.settings, forks=forks)

    def on_version(self, version: str) -> int:
        """How many instances have ``current`` pointing at ``version`` on disk."""
        return sum(1 for i in self.ids if self.env.current(i) == version)

    def close(self) -> None:
        """Stop the apps and the package server; remove the files."""
        stop_apps(self.env.root)
        self.server.stop()
        self.env.store.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


@contextmanager
def start_fleet(prefix: str, count: int, db_url: str | None = None) -> Iterator[Fleet]:
    """A fleet of ``count`` registered (not yet deployed) instances, its store at
    ``db_url`` (default: SQLite in the fleet's home); stopped on exit."""
    tmp = Path(tempfile.mkdtemp(prefix=f"floy-bench-{prefix}-"))
    pki = make_pki(tmp / "pki")
    (tmp / "pkgs").mkdir()
    server = PackageServer.start(tmp / "pkgs", pki)
    (tmp / "env").mkdir()
    packages: dict[str, tuple[str, str]] = {}
    env = make_env(tmp / "env", pki, packages, inline=True, db_url=db_url)
    fleet = Fleet(tmp, env, server, packages, [])
    try:
        fleet.ids = env.register(count)
        yield fleet
    finally:
        fleet.close()
