"""A floy installation in a temporary directory: settings, store, service, instances.

Built by :func:`make_env` (the integration fixtures ``floy_env`` and ``floy_async_env``
wrap it); the service's collaborators are injected at construction.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import sys
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from orchestrator.engine import Executor
from orchestrator.engine.executors import InlineExecutor, ProcessExecutor
from orchestrator.models import DeployParams, DeployStatus, InstanceSpec, Status
from orchestrator.service import FloyDeployService, new_deploy_service
from orchestrator.settings import REPO_ROOT, Settings, load_settings
from orchestrator.store import Store
from sample.packages import free_port
from tests.helpers.wait import wait_until

SERVICE = "hello"


@dataclass
class FloyEnv:
    """One floy installation: settings, store, service and the instances it registered."""

    home: Path
    root: Path
    settings: Settings
    store: Store
    service: FloyDeployService
    packages: dict[str, tuple[str, str]]
    inline: bool = True
    ports: dict[str, int] = field(default_factory=dict)

    def register(self, count: int, service: str = SERVICE, prefix: str = "") -> list[str]:
        """Register ``count`` local instances with free ports; returns their IDs."""
        ids = []
        for n in range(1, count + 1):
            instance_id = f"{prefix or service}-{n}"
            port = free_port()
            self.service.register_instances(
                [InstanceSpec(instance_id, service, "127.0.0.1", port, {"zone": "test"})]
            )
            self.ports[instance_id] = port
            ids.append(instance_id)
        return ids

    def deploy(self, package: str, instances: Sequence[str], deploy_id: str,
               version: str | None = None, **extra: object) -> DeployStatus:
        """Deploy a package by its fixture name and return the final status (inline)."""
        url, sha = self.packages[package]
        options = {"package_sha256": sha, **extra}
        params = DeployParams(
            service=SERVICE, version=version or package.split("-")[0],
            instances=tuple(instances), package_url=str(options.pop("url", url)),
            deploy_id=deploy_id, **options,  # type: ignore[arg-type]
        )
        self.service.execute_deployment(params)
        return self.service.get_deployment_status(deploy_id)

    def ended(self, run_id: str) -> DeployStatus | None:
        """The run's status once it has ended, else None."""
        status = self.service.get_deployment_status(run_id)
        return status if status.status.is_terminal and status.finished_at is not None else None

    def wait(self, run_id: str, timeout: float = 120.0) -> DeployStatus:
        """Wait until the run has ended (for detached workers)."""
        return wait_until(lambda: self.ended(run_id), timeout, f"{run_id} to end")

    def in_flight(self, run_id: str) -> DeployStatus | None:
        """The run's status if some instance of it is in progress, else None."""
        status = self.service.get_deployment_status(run_id)
        return status if any(i.status is Status.IN_PROGRESS for i in status.instances) else None

    def wait_in_flight(self, run_id: str, timeout: float = 60.0) -> DeployStatus:
        """Wait until some instance of the run is in progress."""
        return wait_until(lambda: self.in_flight(run_id), timeout,
                          f"an instance of {run_id} in progress")

    def rebuilt(self, settings: Settings | None = None,
                executor: Executor | None = None) -> FloyEnv:
        """This installation with other settings or another executor: a new service over
        the same store (collaborators are injected at construction, never swapped)."""
        settings = settings or self.settings
        if executor is None:
            executor = (InlineExecutor(settings, self.store) if self.inline
                        else ProcessExecutor(settings, self.store))
        service = new_deploy_service(logging.getLogger("test"), executor, self.store, settings)
        return dataclasses.replace(self, settings=settings, service=service)

    def leftovers(self, run_id: str | None = None) -> list[str]:
        """Live processes of this installation's releases (not its apps): ansible-playbook
        and forks of ``run_id``, modules, restart commands. Matched by this installation's
        own paths, so tests running side by side never see each other's processes."""
        needles = [f"FLOY_INSTANCE_DIR={self.root}".encode()]
        if run_id:
            needles.append(f"FLOY_RUN_ID={run_id}".encode())
        found = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) == os.getpid():
                continue
            try:
                proc = Path("/proc") / entry
                cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ")
                environ = (proc / "environ").read_bytes().split(b"\0")
                state = (proc / "stat").read_text().rpartition(")")[2].split()[0]
            except (OSError, IndexError):
                continue
            if state == "Z" or b"app.py" in cmd:
                continue
            mine = any(e.startswith(n) for e in environ for n in needles)
            if mine or (run_id and str(self.settings.runs_dir / run_id).encode() in cmd):
                found.append(f"{entry}: {cmd.decode(errors='replace')[:160]}")
        return found

    def current(self, instance_id: str, service: str = SERVICE) -> str | None:
        """The release ``current`` points at on disk, or None."""
        link = self.root / service / instance_id / "current"
        if not link.is_symlink():
            return None
        return Path(os.readlink(link)).name

    def answers(self, instance_id: str) -> str | None:
        """The version the instance's app answers with over HTTP, or None."""
        try:
            url = f"http://127.0.0.1:{self.ports[instance_id]}/health"
            with urllib.request.urlopen(url, timeout=3) as resp:
                return str(json.loads(resp.read())["version"])
        except OSError:
            return None


def write_inventory(directory: Path, root: Path) -> Path:
    """Operator inventory for local instances under ``root`` (short waits for tests)."""
    group_vars = directory / "group_vars"
    group_vars.mkdir(parents=True)
    (group_vars / "all.yml").write_text(yaml.safe_dump({
        "ansible_connection": "local",
        "ansible_python_interpreter": sys.executable,
        "floy_root": str(root),
        "floy_retry_delay": 0,
    }))
    hello = yaml.safe_load((REPO_ROOT / "inventories/local/group_vars/hello.yml").read_text())
    hello["floy_health_timeout"] = 5
    (group_vars / "hello.yml").write_text(yaml.safe_dump(hello))
    return directory


def make_env(tmp_path: Path, pki: object, packages: dict[str, tuple[str, str]],
             inline: bool, lease_seconds: float = 15.0, db_url: str | None = None) -> FloyEnv:
    home = tmp_path / "home"
    root = tmp_path / "root"
    root.mkdir()
    inventory = write_inventory(tmp_path / "inventory", root)
    settings = load_settings(home=home, inventory_dir=inventory, db_url=db_url, environ={
        "FLOY_CA_BUNDLE": str(pki.ca_bundle),  # type: ignore[attr-defined]
        "FLOY_LEASE_SECONDS": str(lease_seconds),
    })
    store = Store.open(settings.db_url)
    executor = InlineExecutor(settings, store) if inline else ProcessExecutor(settings, store)
    service = new_deploy_service(logging.getLogger("test"), executor, store, settings)
    return FloyEnv(home, root, settings, store, service, packages, inline)


def reconfigured(service: FloyDeployService, **changes: object) -> FloyDeployService:
    """A new service over the same store and the same kind of executor, with ``changes``
    to its settings (collaborators are injected at construction, never swapped)."""
    settings = dataclasses.replace(service.settings, **changes)  # type: ignore[arg-type]
    executor = type(service.ctx.executor)(settings, service.store)  # type: ignore[call-arg]
    return new_deploy_service(logging.getLogger("test"), executor, service.store, settings)
