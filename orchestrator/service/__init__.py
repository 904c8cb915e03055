"""The DeployService: the spec's three interfaces over a store and an executor.

This package is the single composition root used by the CLI and the Python API (and later
HTTP): :func:`open_service` resolves settings and builds the store and executor;
:func:`new_deploy_service` takes them injected (the spec's ``NewDeployService``). One class
answers each interface (:mod:`.deployments`, :mod:`.versions`, :mod:`.rollbacks`), plus
registration (:mod:`.instances`) and history (:mod:`.history`); :class:`FloyDeployService`
is the thin facade over them. It never imports click or ansible_runner.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from orchestrator.ansible.importer import DEFAULT_TIMEOUT
from orchestrator.domain.records import (
    ActionRecord,
    HeartbeatRecord,
    RunSummary,
    ServiceOverview,
    VersionCheck,
    WorkerRecord,
)
from orchestrator.engine import Executor
from orchestrator.models import (
    BatchRollbackParams,
    BatchRollbackResult,
    CancelResult,
    DeployParams,
    DeployResult,
    DeployStatus,
    InstanceQueryParams,
    InstanceRollbackParams,
    InstanceSpec,
    Progress,
    RollbackResult,
    ServiceInstances,
    ServiceVersions,
)
from orchestrator.service.canary import Canaries
from orchestrator.service.context import Clock, ServiceContext
from orchestrator.service.deployments import Deployments
from orchestrator.service.history import Audit
from orchestrator.service.instances import Registry
from orchestrator.service.rollbacks import Rollbacks
from orchestrator.service.versions import Versions
from orchestrator.settings import Settings
from orchestrator.store import Store
from orchestrator.timefmt import utcnow

if TYPE_CHECKING:
    from orchestrator.engine.daemon import WorkerDaemon


class DeployExecutor(Protocol):
    """Start, watch and cancel deployments (spec section 2)."""

    def execute_deployment(self, params: DeployParams) -> DeployResult: ...
    def get_deployment_status(self, deploy_id: str) -> DeployStatus: ...
    def cancel_deployment(self, deploy_id: str) -> CancelResult: ...


class VersionManager(Protocol):
    """Which version every instance runs, and the instances themselves (spec section 3)."""

    def get_service_instance_versions(self, service: str) -> ServiceVersions: ...
    def get_service_instances(self, params: InstanceQueryParams) -> ServiceInstances: ...


class RollbackManager(Protocol):
    """Roll instances back (spec section 4)."""

    def rollback_instance(self, params: InstanceRollbackParams) -> RollbackResult: ...
    def rollback_batch(self, params: BatchRollbackParams) -> BatchRollbackResult: ...


class DeployService(DeployExecutor, VersionManager, RollbackManager, Protocol):
    """All three interfaces (spec section 5)."""


class FloyDeployService:
    """The implementation; build it with :func:`new_deploy_service` or :func:`open_service`."""

    def __init__(
        self,
        logger: logging.Logger,
        executor: Executor,
        database: Store,
        settings: Settings,
        clock: Clock = utcnow,
    ) -> None:
        self._compose(ServiceContext(logger, executor, database, settings, clock))

    def _compose(self, ctx: ServiceContext) -> None:
        self.ctx = ctx
        self.deployments = Deployments(ctx)
        self.versions = Versions(ctx)
        self.rollbacks = Rollbacks(ctx, self.deployments)
        self.canaries = Canaries(ctx, self.deployments)
        self.registry = Registry(ctx)
        self.audit = Audit(ctx)

    def acting_as(self, actor: str) -> FloyDeployService:
        """The same service (same store, executor and settings) recording ``actor`` as the
        caller of what it creates, instead of this process's OS user: the HTTP API makes
        one per request, naming the request's token."""
        other = FloyDeployService.__new__(FloyDeployService)
        other._compose(dataclasses.replace(self.ctx, actor=actor))
        other.cancel_wait_seconds = self.cancel_wait_seconds
        return other

    @property
    def store(self) -> Store:
        """The store the service reads and writes."""
        return self.ctx.store

    @property
    def settings(self) -> Settings:
        """The settings the service was built with."""
        return self.ctx.settings

    @property
    def cancel_wait_seconds(self) -> float:
        """How long ``cancel_deployment`` waits for the run to stop (30 s by default)."""
        return self.deployments.cancel_wait_seconds

    @cancel_wait_seconds.setter
    def cancel_wait_seconds(self, seconds: float) -> None:
        self.deployments.cancel_wait_seconds = seconds

    # -- DeployExecutor -----------------------------------------------------------------
    def execute_deployment(self, params: DeployParams) -> DeployResult:
        """Validate, record and start a deployment; returns at once (status pending)."""
        return self.deployments.execute_deployment(params)

    def get_deployment_status(self, deploy_id: str) -> DeployStatus:
        """Status of a deployment or rollback run, with one entry per instance."""
        return self.deployments.get_deployment_status(deploy_id)

    def cancel_deployment(self, deploy_id: str) -> CancelResult:
        """Cancel a run and wait (bounded) until it has stopped."""
        return self.deployments.cancel_deployment(deploy_id)

    def status_revision(self, deploy_id: str) -> tuple[object, ...]:
        """Changes whenever the run's status would read differently (a cheap read)."""
        return self.deployments.status_revision(deploy_id)

    def promote_deployment(self, deploy_id: str, full: bool = False) -> DeployStatus:
        """Let a paused stepped deployment go on (``full``: skip its remaining pauses)."""
        return self.canaries.promote(deploy_id, full)

    def abort_deployment(self, deploy_id: str, rollback: bool = False) -> DeployStatus:
        """Stop a deployment (recorded as an abort); ``rollback``: roll back what it
        switched."""
        return self.canaries.abort(deploy_id, rollback)

    # -- VersionManager -----------------------------------------------------------------
    def get_service_instance_versions(self, service: str) -> ServiceVersions:
        """The version every instance of ``service`` runs, as last recorded."""
        return self.versions.get_service_instance_versions(service)

    def get_service_instances(self, params: InstanceQueryParams) -> ServiceInstances:
        """A page of a service's instances, optionally only those on one version."""
        return self.versions.get_service_instances(params)

    # -- RollbackManager -----------------------------------------------------------------
    def rollback_instance(self, params: InstanceRollbackParams) -> RollbackResult:
        """Roll one instance back to a version it once ran (or to a given package); without a
        target version, to the one it ran before its current one."""
        return self.rollbacks.rollback_instance(params)

    def rollback_batch(self, params: BatchRollbackParams) -> BatchRollbackResult:
        """Roll several instances of a service back, in serial batches; without a target
        version, to the one version they all ran before their (one) current version."""
        return self.rollbacks.rollback_batch(params)

    # -- beyond the spec: version truth, history, registration ----------------------------
    def refresh_versions(self, service: str, adopt: bool = False) -> list[VersionCheck]:
        """Probe every instance of ``service`` and report drift from the record."""
        return self.versions.refresh_versions(service, adopt)

    def history(self, service: str, limit: int = 50) -> list[RunSummary]:
        """Deployments and rollbacks of ``service``, newest first (the audit trail)."""
        return self.audit.history(service, limit)

    def actions(self, service: str, limit: int = 50) -> list[ActionRecord]:
        """Who did what to ``service`` (deploy, rollback, cancel, register, drift), newest
        first."""
        return self.audit.actions(service, limit)

    def runs(self, service: str = "", *, active: bool = False, limit: int = 50
             ) -> list[RunSummary]:
        """Newest runs of ``service`` or of every service; ``active``: unfinished only."""
        return self.audit.runs(service, active=active, limit=limit)

    def services(self) -> list[ServiceOverview]:
        """Every service with its version distribution, drift and newest heartbeat."""
        return self.versions.services()

    def heartbeat(self, instance_id: str, version: str) -> HeartbeatRecord:
        """Record an instance's heartbeat and the version it says it runs (drift when it
        differs from the record, which it never overwrites)."""
        return self.registry.heartbeat(instance_id, version)

    def reap_stale_runs(self) -> list[str]:
        """Close every run whose worker is gone (what each worker does at its start);
        returns the IDs of the runs closed. Reads never do this."""
        self.settings.require_inventory()  # closing a run probes its instances
        return self.ctx.reaper.reap()

    def worker_daemon(self, *, max_runs: int, grace_seconds: float,
                      poll_seconds: float, listen: bool = True) -> WorkerDaemon:
        """A ``floy worker`` daemon over this service's store and settings (call its
        ``serve()``; its ``stop()`` is safe from a signal handler)."""
        from orchestrator.engine.daemon import WorkerDaemon

        self.settings.require_inventory()
        return WorkerDaemon(self.settings, self.store, max_runs=max_runs,
                            grace_seconds=grace_seconds, poll_seconds=poll_seconds,
                            listen=listen)

    def workers(self) -> list[WorkerRecord]:
        """The ``floy worker`` daemons, the most recent heartbeat first."""
        return self.store.workers.all()

    def worker_pid(self, run_id: str) -> int | None:
        """The process ID of the worker carrying ``run_id``, if any."""
        return self.audit.worker_pid(run_id)

    def register_instances(
        self, specs: Sequence[InstanceSpec], *, replace: bool = False
    ) -> list[InstanceSpec]:
        """Validate and register instances (all or none)."""
        return self.registry.register_instances(specs, replace=replace)

    def import_instances(
        self,
        inventory: Path,
        service: str,
        group: str = "",
        port_var: str = "floy_instance_port",
        meta_vars: Sequence[str] = (),
        *,
        replace: bool = False,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> list[InstanceSpec]:
        """Register the hosts of an Ansible inventory group as instances of ``service``."""
        return self.registry.import_instances(inventory, service, group, port_var, meta_vars,
                                              replace=replace, timeout=timeout)

    def instance_ids(self, service: str) -> tuple[str, ...]:
        """IDs of every registered instance of ``service``."""
        return self.registry.instance_ids(service)


def new_deploy_service(
    logger: logging.Logger,
    executor: Executor,
    database: Store,
    settings: Settings,
    clock: Clock = utcnow,
) -> FloyDeployService:
    """Build the DeployService from its injected collaborators (spec ``NewDeployService``)."""
    return FloyDeployService(logger, executor, database, settings, clock)


def open_service(
    home: str | None = None,
    db_url: str | None = None,
    inventory_dir: str | None = None,
    *,
    inline: bool = False,
    logger: logging.Logger | None = None,
    need_inventory: bool = False,
) -> FloyDeployService:
    """A ready service with the same settings resolution as the CLI.

    ``need_inventory=True`` checks the inventory directory before the store is opened (the
    CLI's deploy, rollback, refresh, reap, worker and serve); without it the service still
    checks it before recording or carrying anything that runs Ansible.

    ``inline=True`` carries runs in the calling thread (``execute_deployment`` returns when
    the run has ended); otherwise the settings' ``executor`` decides: ``process`` (the
    default) starts a detached worker process per run, ``queue`` leaves the run for a
    ``floy worker`` daemon.
    """
    from orchestrator.engine.executors import InlineExecutor, ProcessExecutor, QueueExecutor
    from orchestrator.settings import load_settings

    settings = load_settings(home, db_url, inventory_dir, need_inventory=need_inventory)
    store = Store.open(settings.db_url, io_timeout=settings.db_io_timeout)
    executor: Executor
    if inline:
        executor = InlineExecutor(settings, store)
    elif settings.executor == "queue":
        executor = QueueExecutor(settings, store)
    else:
        executor = ProcessExecutor(settings, store)
    return new_deploy_service(logger or logging.getLogger("floy"), executor, store, settings)


__all__ = [
    "DeployExecutor",
    "DeployService",
    "FloyDeployService",
    "Progress",
    "RollbackManager",
    "VersionManager",
    "new_deploy_service",
    "open_service",
]
