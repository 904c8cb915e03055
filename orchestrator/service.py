"""The DeployService: the spec's three interfaces, implemented over a store and an executor.

It validates, records runs (instances ``pending``) and their instance locks, hands runs to
the executor and answers queries from the store. It never imports click or ansible_runner.
"""

from __future__ import annotations

import getpass
import logging
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import asdict
from datetime import datetime
from typing import Protocol

from orchestrator import rollbacks, validation
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
from orchestrator.store import RunInstanceRecord, RunRecord, RunSummary, Store, VersionCheck
from orchestrator.timefmt import parse_time, utcnow

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
        self.cancel_wait_seconds = 30.0

    # -- DeployExecutor -----------------------------------------------------------------
    def execute_deployment(self, params: DeployParams) -> DeployResult:
        """Validate, record and start a deployment; returns at once (status pending)."""
        params = validation.validate_deploy_params(params, self.settings.allowed_package_hosts)
        self._recover()
        record = _params_record(params)
        existing = self._idempotent(params.deploy_id, "deploy", record)
        if existing is not None:
            return self._deploy_result(existing)
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
        recorded, created = self._record(run, members)
        if not created:
            return self._deploy_result(recorded)
        self.logger.info("deployment %s of %s %s to %d instance(s) recorded", run.run_id,
                         run.service, run.version, len(members))
        self.executor.submit(run.run_id)
        stored = self.store.get_run(run.run_id)
        return self._deploy_result(stored or run)

    def get_deployment_status(self, deploy_id: str) -> DeployStatus:
        """Status of a deployment or rollback run, with one entry per instance."""
        deploy_id = validation.validate_id("deploy_id", deploy_id)
        self._recover()
        loaded = self.store.run_status_rows(deploy_id)
        if loaded is None:
            raise NotFoundError("deployment", deploy_id)
        run, rows = loaded
        statuses = {s.value: s for s in Status}
        instances = tuple(
            InstanceStatus(r[0], r[1], r[2], _time(r[3]), _time(r[4]), r[5], statuses[r[6]],
                           r[7], r[8], r[9], r[10])
            for r in rows
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
        """Cancel a deployment or rollback run and wait (bounded) until it has stopped.

        No new batch starts; instances not started end ``cancelled``; instances in flight
        are stopped, probed and recorded with the version their disk really points at.
        The result's status is ``cancelled`` once the run has stopped; if it is still
        stopping when ``cancel_wait_seconds`` have passed, it is ``in_progress`` and
        ``cancelled_at`` is null (the cancel goes on; ask again with the status call).
        """
        deploy_id = validation.validate_id("deploy_id", deploy_id)
        self._recover()
        run = self.store.get_run(deploy_id)
        if run is None:
            raise NotFoundError("deployment", deploy_id)
        if run.finished_at is not None:
            raise ConflictError(
                f"run {deploy_id} already finished ({run.status.value}); nothing to cancel",
                key=deploy_id,
            )
        self.store.request_cancel(deploy_id)
        self.logger.info("cancel of %s requested", deploy_id)
        if run.lease_owner is None:
            self._cancel_unclaimed(deploy_id)
        deadline = time.monotonic() + self.cancel_wait_seconds
        while True:
            run = self.store.get_run(deploy_id)
            assert run is not None
            if run.finished_at is not None or time.monotonic() >= deadline:
                break
            time.sleep(0.05)
        stopped = run.finished_at is not None
        return CancelResult(
            deploy_id=deploy_id,
            status=run.status,
            cancelled_at=run.finished_at if stopped else None,
        )

    def _cancel_unclaimed(self, run_id: str) -> None:
        """A run no worker holds yet is cancelled here, under its lease, so none starts it."""
        from orchestrator.worker import Worker

        worker = Worker(self.settings, self.store)
        worker.run(run_id)  # takes the lease, sees the cancel request, closes the run

    # -- VersionManager -----------------------------------------------------------------
    def get_service_instance_versions(self, service: str) -> ServiceVersions:
        """The version every instance of ``service`` runs, as last recorded."""
        service = validation.validate_name("service", service)
        rows = self.store.service_version_rows(service)
        if not rows:
            raise NotFoundError("service", service)
        entries = tuple(InstanceVersion(r[0], r[1], _time(r[2])) for r in rows)
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

    # -- RollbackManager -----------------------------------------------------------------
    def rollback_instance(self, params: InstanceRollbackParams) -> RollbackResult:
        """Roll one instance back to a version it once ran (or to a given package)."""
        params = validation.validate_instance_rollback_params(
            params, self.settings.allowed_package_hosts
        )
        self._recover()
        record = self.store.get_instances([params.instance_id]).get(params.instance_id)
        if record is None:
            raise NotFoundError("instance", params.instance_id)
        rollback_id = params.rollback_id or _generated_id(
            "rollback", params.instance_id, params.target_version
        )
        request: dict[str, object] = {
            "instances": [params.instance_id],
            "package_url": params.package_url,
            "force": params.force,
            "timeout": params.timeout,
            "batch_size": "1",
            "max_failures": 0,
            "retry_count": 3,
        }
        run = self._start_rollback(rollback_id, record.service, params.target_version,
                                   [params.instance_id], request, "target_version")
        return RollbackResult(
            rollback_id=run.run_id,
            instance_id=params.instance_id,
            target_version=run.version,
            status=run.status,
            started_at=run.created_at,
        )

    def rollback_batch(self, params: BatchRollbackParams) -> BatchRollbackResult:
        """Roll several instances of a service back, in serial batches."""
        params = validation.validate_batch_rollback_params(
            params, self.settings.allowed_package_hosts
        )
        self._recover()
        self._check_members(params.service, params.instances)
        rollback_id = params.rollback_id or _generated_id(
            "rollback", params.service, params.target_version
        )
        request: dict[str, object] = {
            "instances": list(params.instances),
            "package_url": params.package_url,
            "force": params.force,
            "timeout": params.timeout,
            "batch_size": params.batch_size,
            "max_failures": params.max_failures,
            "retry_count": 3,
        }
        run = self._start_rollback(rollback_id, params.service, params.target_version,
                                   list(params.instances), request, "instances")
        return BatchRollbackResult(
            rollback_id=run.run_id,
            service=run.service,
            target_version=run.version,
            status=run.status,
            instances=tuple(run.params["instances"]),
            total_instances=len(run.params["instances"]),
            started_at=run.created_at,
        )

    def _start_rollback(
        self,
        rollback_id: str,
        service: str,
        version: str,
        instance_ids: list[str],
        request: dict[str, object],
        field: str,
    ) -> RunRecord:
        existing = self._idempotent(rollback_id, "rollback", request)
        if existing is not None:
            return existing
        targets = rollbacks.resolve_targets(self.store, instance_ids, version,
                                            str(request["package_url"]), field,
                                            self.settings.allowed_package_hosts)
        if request["force"]:
            self._free_instances(instance_ids)
        run, members = rollbacks.build_run(rollback_id, service, version, targets, request,
                                           _who())
        recorded, created = self._record(run, members)
        if not created:
            return recorded
        self.logger.info("rollback %s of %d instance(s) to %s recorded", rollback_id,
                         len(members), version)
        self.executor.submit(rollback_id)
        return self.store.get_run(rollback_id) or run

    def _idempotent(
        self, run_id: str, kind: str, params: Mapping[str, object]
    ) -> RunRecord | None:
        """The run already recorded under ``run_id`` for this very request (re-submission
        is idempotent), or None; a different request under the same ID is a conflict."""
        existing = self.store.get_run(run_id)
        if existing is None:
            return None
        if existing.kind == kind and existing.params == params:
            return existing
        label = "deploy_id" if kind == "deploy" else "rollback_id"
        raise ConflictError(
            f"{label} {run_id} is already used by a run with different parameters",
            key=run_id,
        )

    def _record(
        self, run: RunRecord, members: list[RunInstanceRecord]
    ) -> tuple[RunRecord, bool]:
        """Record a new run: (the run, True). If the same request recorded the same ID a
        moment earlier (a race the check above cannot see), (that run, False)."""
        try:
            self.store.create_run(run, members)
        except ConflictError:
            again = self.store.get_run(run.run_id)
            if again is not None and again.kind == run.kind and again.params == run.params:
                return again, False
            raise
        return run, True

    def _free_instances(self, instance_ids: list[str]) -> None:
        """For a forced rollback: cancel the runs holding these instances, and wait."""
        for run_id in sorted(set(self.store.busy_runs(instance_ids).values())):
            self.logger.warning("forced rollback: cancelling run %s", run_id)
            try:
                result = self.cancel_deployment(run_id)
            except ConflictError:
                continue  # it finished meanwhile
            if result.cancelled_at is None:
                raise ConflictError(
                    f"forced rollback: run {run_id} is still stopping; try again shortly",
                    key=run_id,
                )

    # -- version truth and history ------------------------------------------------------
    def refresh_versions(self, service: str, adopt: bool = False) -> list[VersionCheck]:
        """Probe every instance of ``service`` and compare its disk with the record.

        A disagreement is drift: reported and kept next to the record, not silently
        written over it, unless ``adopt`` (then the disk becomes the record). A version read
        from a host that fails validation is never stored nor adopted: it is reported as
        drift, as read, with the reason in ``error``.
        """
        from orchestrator.probe import probe_instances

        service = validation.validate_inventory_name("service", service)
        records = self.store.service_instances(service)
        if not records:
            raise NotFoundError("service", service)
        seen = probe_instances(self.settings, service, records)
        truths = {i: o.current_version for i, o in seen.items() if o.trusted}
        self.store.record_observations(truths, authoritative=adopt)
        checks = []
        for r in records:
            obs = seen[r.instance_id]
            checks.append(VersionCheck(
                instance_id=r.instance_id,
                recorded_version=r.version,
                observed_version=obs.refused_version or obs.current_version,
                reachable=obs.reachable,
                error=obs.error,
                adopted=adopt and obs.trusted and obs.current_version != r.version,
            ))
        return checks

    def history(self, service: str, limit: int = 50) -> list[RunSummary]:
        """Deployments and rollbacks of ``service``, newest first (the audit trail)."""
        service = validation.validate_name("service", service)
        limit = validation.validate_limit(limit)
        self._recover()
        return self.store.run_summaries(service, limit)

    def _recover(self) -> None:
        """Close runs whose worker died (DESIGN.md section 3); cheap when there are none."""
        from orchestrator.recovery import recover_stale_runs

        for run_id in recover_stale_runs(self.settings, self.store):
            self.logger.warning("run %s lost its worker and was closed as failed", run_id)

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


def _time(value: str | None) -> datetime | None:
    return None if value is None else parse_time(value)


def _generated_id(kind: str, subject: str, version: str) -> str:
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    return f"{kind}-{subject}-{version}-{stamp}-{uuid.uuid4().hex[:6]}"[:128]


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
