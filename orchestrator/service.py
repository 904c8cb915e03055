"""The DeployService: the spec's three interfaces, implemented over a store and an executor.

It validates, records runs (instances ``pending``) and their instance locks, hands runs to
the executor and answers queries from the store. It never imports click or ansible_runner.
"""

from __future__ import annotations

import getpass
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict
from datetime import datetime
from typing import Protocol

from orchestrator import validation
from orchestrator.errors import ConflictError, NotFoundError, ValidationError
from orchestrator.executor import Executor
from orchestrator.models import (
    BatchRollbackParams,
    BatchRollbackResult,
    CancelResult,
    DeployParams,
    DeployResult,
    DeployStatus,
    InstanceInfo,
    InstanceQueryParams,
    InstanceRollbackParams,
    InstanceStatus,
    InstanceVersion,
    Progress,
    RollbackResult,
    ServiceInstances,
    ServiceVersions,
    Status,
)
from orchestrator.plan import batch_numbers
from orchestrator.settings import Settings
from orchestrator.store import RunInstanceRecord, RunRecord, Store
from orchestrator.timefmt import utcnow

Clock = Callable[[], datetime]


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


def _params_record(params: DeployParams) -> dict[str, object]:
    data = asdict(params)
    data["instances"] = list(params.instances)
    return data


class FloyDeployService:
    """The implementation; build it with :func:`new_deploy_service`."""

    def __init__(
        self,
        logger: logging.Logger,
        executor: Executor,
        database: Store,
        settings: Settings,
        clock: Clock = utcnow,
    ) -> None:
        self.logger = logger
        self.executor = executor
        self.store = database
        self.settings = settings
        self.clock = clock

    # -- DeployExecutor -----------------------------------------------------------------
    def execute_deployment(self, params: DeployParams) -> DeployResult:
        """Validate, record and start a deployment; returns at once (status pending)."""
        params = validation.validate_deploy_params(params, self.settings.allowed_package_hosts)
        record = _params_record(params)
        existing = self.store.get_run(params.deploy_id)
        if existing is not None:
            if existing.kind == "deploy" and existing.params == record:
                return self._deploy_result(existing)
            raise ConflictError(
                f"deploy_id {params.deploy_id} is already used by a run with different "
                "parameters",
                key=params.deploy_id,
            )
        self._check_members(params.service, params.instances)
        now = self.clock()
        run = RunRecord(
            run_id=params.deploy_id,
            kind="deploy",
            service=params.service,
            version=params.version,
            status=Status.PENDING,
            params=record,
            created_by=_who(),
            created_at=now,
            updated_at=now,
        )
        instances = self.store.get_instances(params.instances)
        batches = batch_numbers(params.batch_size, len(params.instances))
        members = [
            RunInstanceRecord(
                run_id=run.run_id,
                instance_id=instance_id,
                position=position,
                batch=batches[position],
                status=Status.PENDING,
                target_version=params.version,
                previous_version=instances[instance_id].version,
                current_version=instances[instance_id].version,
            )
            for position, instance_id in enumerate(params.instances)
        ]
        self.store.create_run(run, members)
        self.logger.info("deployment %s of %s %s to %d instance(s) recorded", run.run_id,
                         run.service, run.version, len(members))
        self.executor.submit(run.run_id)
        stored = self.store.get_run(run.run_id)
        return self._deploy_result(stored or run)

    def get_deployment_status(self, deploy_id: str) -> DeployStatus:
        """Status of a deployment or rollback run, with one entry per instance."""
        deploy_id = validation.validate_id("deploy_id", deploy_id)
        loaded = self.store.get_run_with_members(deploy_id)
        if loaded is None:
            raise NotFoundError("deployment", deploy_id)
        run, members = loaded
        instances = tuple(
            InstanceStatus(
                instance_id=m.instance_id,
                current_version=m.current_version,
                target_version=m.target_version,
                started_at=m.started_at,
                completed_at=m.completed_at,
                error_message=m.error_message,
                status=m.status,
                attempts=m.attempts,
                phase=m.phase,
                batch=m.batch,
                previous_version=m.previous_version,
            )
            for m in members
        )
        return DeployStatus(
            deploy_id=run.run_id,
            service=run.service,
            version=run.version,
            status=run.status,
            progress=DeployStatus.progress_from(instances),
            instances=instances,
            started_at=run.created_at,
            updated_at=run.updated_at,
            kind=run.kind,
            error_message=run.error_message,
            batch_size=str(run.params.get("batch_size", "1")),
            max_failures=int(run.params.get("max_failures", 0)),
            rollback_id=run.rollback_run_id or "",
            finished_at=run.finished_at,
        )

    def cancel_deployment(self, deploy_id: str) -> CancelResult:
        """Cancel a run (implemented with the cancel/rollback work, issue 3)."""
        raise NotImplementedError("cancel_deployment arrives with the cancel/rollback work")

    # -- VersionManager -----------------------------------------------------------------
    def get_service_instance_versions(self, service: str) -> ServiceVersions:
        """The version every instance of ``service`` runs, as last recorded."""
        service = validation.validate_name("service", service)
        records = self.store.service_instances(service)
        if not records:
            raise NotFoundError("service", service)
        entries = tuple(
            InstanceVersion(
                instance_id=r.instance_id,
                version=r.version,
                last_updated=r.version_updated_at or r.last_heartbeat,
            )
            for r in records
        )
        stamps = [e.last_updated for e in entries if e.last_updated is not None]
        return ServiceVersions(
            service=service,
            instances=entries,
            version_summary=dict(Counter(e.version for e in entries)),
            total_instances=len(entries),
            updated_at=max(stamps) if stamps else self.clock(),
        )

    def get_service_instances(self, params: InstanceQueryParams) -> ServiceInstances:
        """A page of a service's instances, optionally only those on one version."""
        params = validation.validate_instance_query(params)
        if not self.store.service_exists(params.service_name):
            raise NotFoundError("service", params.service_name)
        records, total = self.store.query_instances(
            params.service_name, params.version, params.limit, params.offset
        )
        return ServiceInstances(
            service=params.service_name,
            instances=tuple(
                InstanceInfo(
                    instance_id=r.instance_id,
                    host=r.host,
                    port=r.port,
                    version=r.version,
                    last_heartbeat=r.last_heartbeat,
                    metadata=dict(r.metadata),
                )
                for r in records
            ),
            total=total,
            limit=params.limit,
            offset=params.offset,
        )

    # -- RollbackManager ----------------------------------------------------------------
    def rollback_instance(self, params: InstanceRollbackParams) -> RollbackResult:
        """Roll one instance back (issue 3)."""
        raise NotImplementedError("rollback arrives with the cancel/rollback work")

    def rollback_batch(self, params: BatchRollbackParams) -> BatchRollbackResult:
        """Roll several instances back (issue 3)."""
        raise NotImplementedError("rollback arrives with the cancel/rollback work")

    # -- helpers ------------------------------------------------------------------------
    def _check_members(self, service: str, instance_ids: tuple[str, ...]) -> None:
        known = self.store.get_instances(instance_ids)
        for index, instance_id in enumerate(instance_ids):
            record = known.get(instance_id)
            if record is None:
                raise ValidationError(f"instances[{index}]",
                                      f"unknown instance {instance_id!r}; register it first")
            if record.service != service:
                raise ValidationError(
                    f"instances[{index}]",
                    f"instance {instance_id!r} belongs to service {record.service!r}, "
                    f"not {service!r}",
                )

    @staticmethod
    def _deploy_result(run: RunRecord) -> DeployResult:
        return DeployResult(
            deploy_id=run.run_id,
            service=run.service,
            version=run.version,
            status=run.status,
            total_instances=len(run.params.get("instances", [])),
            started_at=run.created_at,
        )


def _who() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


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
) -> FloyDeployService:
    """A ready service with the same settings resolution as the CLI.

    ``inline=True`` carries runs in the calling thread (``execute_deployment`` returns when
    the run has ended); the default starts a detached worker process per run.
    """
    from orchestrator.executor import InlineExecutor, ProcessExecutor
    from orchestrator.settings import load_settings

    settings = load_settings(home, db_url, inventory_dir)
    store = Store.open(settings.db_url)
    executor: Executor = (
        InlineExecutor(settings, store) if inline else ProcessExecutor(settings)
    )
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
