"""The spec's DeployExecutor: start a deployment, read its status, cancel it."""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import datetime

from orchestrator.domain import canary, placement, steps, validation
from orchestrator.domain.records import RunInstanceRecord, RunKind, RunRecord, run_is_stale
from orchestrator.domain.request import RunRequest
from orchestrator.engine.reaper import UNCLAIMED_GRACE_SECONDS, lost_reason
from orchestrator.errors import ConflictError, NotFoundError
from orchestrator.models import (
    CancelResult,
    DeployParams,
    DeployResult,
    DeployStatus,
    InstanceStatus,
    Status,
)
from orchestrator.service.context import ServiceContext
from orchestrator.timefmt import parse_time

_STATUSES = {s.value: s for s in Status}
#: How a status read shows a run whose worker is gone; the next worker, or the next command
#: that needs its instances, closes it (DESIGN.md section 7: reads never act).
STALE_NOTE = ("closing: the next floy worker, or the next command that needs its "
              "instances, closes it and probes its instances")


def deploy_request(params: DeployParams, nodes: tuple[str, ...] = ()) -> RunRequest:
    """What a deployment was asked to do, as recorded with its run (``nodes``: each
    instance's execution node, when they are grouped by label)."""
    return RunRequest(
        instances=params.instances, nodes=nodes, package_url=params.package_url,
        package_sha256=params.package_sha256, timeout=params.timeout,
        retry_count=params.retry_count, batch_size=params.batch_size,
        max_failures=params.max_failures, auto_rollback=params.auto_rollback,
        node=params.node, steps=params.steps,
        analysis=None if params.analysis is None else dict(params.analysis),
    )


def deploy_result(run: RunRecord) -> DeployResult:
    """The spec's DeployResult of a recorded run."""
    return DeployResult(
        deploy_id=run.run_id,
        service=run.service,
        version=run.version,
        status=run.status,
        total_instances=len(run.request.instances),
        started_at=run.created_at,
    )


class Deployments:
    """Start, watch and cancel deployments (spec section 2)."""

    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx
        self.cancel_wait_seconds = 30.0

    def execute_deployment(self, params: DeployParams) -> DeployResult:
        """Validate, record and start a deployment; returns at once (status pending)."""
        ctx = self.ctx
        params = validation.validate_deploy_params(params, ctx.settings.allowed_package_hosts,
                                                   frozenset(ctx.settings.nodes))
        params = canary.check_canary(params, ctx.settings.allowed_package_hosts)
        params, nodes, group_sizes = self._placed(params)
        request = deploy_request(params, nodes)
        existing = ctx.idempotent(params.deploy_id, RunKind.DEPLOY, params.service,
                                  params.version, request)
        if existing is not None:
            return deploy_result(existing)
        instances = ctx.members_of(params.service, params.instances)
        now = ctx.clock()
        run = RunRecord(
            run_id=params.deploy_id,
            kind=RunKind.DEPLOY,
            service=params.service,
            version=params.version,
            status=Status.PENDING,
            request=request,
            created_by=ctx.who(),
            created_at=now,
            updated_at=now,
        )
        if params.steps:
            batches = steps.batch_numbers(steps.parse_steps(list(params.steps)),
                                          len(params.instances))
        else:
            batches = placement.group_batch_numbers(params.batch_size, group_sizes)
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
        return deploy_result(ctx.record_and_submit(run, members))

    def _placed(self, params: DeployParams) -> tuple[DeployParams, tuple[str, ...], list[int]]:
        """A run not pinned to a node, whose instances carry ``execution_node`` labels,
        plays them group by group (:mod:`orchestrator.domain.placement`): the request with
        its instances in that order, each one's node, and the groups' sizes."""
        if params.node:
            return params, (), [len(params.instances)]
        known = self.ctx.store.instances.get(params.instances)
        labels = placement.labels_of(params.instances,
                                     {i: r.metadata for i, r in known.items()},
                                     frozenset(self.ctx.settings.nodes))
        groups = placement.grouped(params.instances, labels)
        if not labels:
            return params, (), [len(params.instances)]
        if params.steps:  # a canary keeps the order given: its first instances go first
            return params, labels, [len(params.instances)]
        ordered = tuple(i for _, ids in groups for i in ids)
        nodes = tuple(label for label, ids in groups for _ in ids)
        return replace(params, instances=ordered), nodes, [len(ids) for _, ids in groups]

    def get_deployment_status(self, deploy_id: str) -> DeployStatus:
        """Status of a deployment or rollback run, with one entry per instance.

        A read never acts: a run whose worker is gone is reported as such (its error
        message says it is closing) and left for the reaper.
        """
        deploy_id = validation.validate_id("deploy_id", deploy_id)
        loaded = self.ctx.store.views.run_status(deploy_id)
        if loaded is None:
            raise NotFoundError("deployment", deploy_id)
        run, rows = loaded
        instances = tuple(
            InstanceStatus(r.instance_id, r.current_version, r.target_version,
                           _time(r.started_at), _time(r.completed_at), r.error_message,
                           _STATUSES[r.status], r.attempts, r.phase, r.batch,
                           r.previous_version)
            for r in rows
        )
        error_message = run.error_message
        stepped = canary.canary_status(
            run, self.ctx.store.decisions.of_run(deploy_id) if run.request.steps else [],
            running=any(i.status is Status.IN_PROGRESS for i in instances))
        if run.is_stale(self.ctx.clock(), UNCLAIMED_GRACE_SECONDS):
            error_message = f"{lost_reason(run)}; {STALE_NOTE}"
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
            error_message=error_message,
            batch_size=run.request.batch_size,
            max_failures=run.request.max_failures,
            rollback_id=run.rollback_run_id or "",
            finished_at=run.finished_at,
            canary=stepped,
        )

    def status_revision(self, deploy_id: str) -> tuple[object, ...]:
        """A value that changes whenever :meth:`get_deployment_status` of the run would
        answer differently (one primary-key read): equal revisions, equal statuses. An
        interface may keep a rendered status while the revision holds."""
        deploy_id = validation.validate_id("deploy_id", deploy_id)
        stamp = self.ctx.store.views.run_stamp(deploy_id)
        if stamp is None:
            raise NotFoundError("deployment", deploy_id)
        stale = run_is_stale(_time(stamp.finished_at), stamp.lease_owner,
                             _time(stamp.lease_expires_at), parse_time(stamp.updated_at),
                             self.ctx.clock(), UNCLAIMED_GRACE_SECONDS)
        return (*stamp, stale)

    def cancel_deployment(self, deploy_id: str) -> CancelResult:
        """Cancel a deployment or rollback run and wait (bounded) until it has stopped.

        No new batch starts; instances not started end ``cancelled``; instances in flight
        are stopped, probed and recorded with the version their disk really points at.
        The result's status is ``cancelled`` once the run has stopped; if it is still
        stopping when ``cancel_wait_seconds`` have passed, it is ``in_progress`` and
        ``cancelled_at`` is null (the cancel goes on; ask again with the status call).
        A run whose worker is gone is reaped here: it ends ``failed`` (a conflict: it had
        already stopped).
        """
        ctx = self.ctx
        deploy_id = validation.validate_id("deploy_id", deploy_id)
        ctx.reaper.reap([deploy_id])  # a dead worker's run: closed failed, as the reaper does
        run = ctx.store.runs.get(deploy_id)
        if run is None:
            raise NotFoundError("deployment", deploy_id)
        if run.finished_at is not None:
            raise ConflictError(
                f"run {deploy_id} already finished ({run.status.value}); nothing to cancel",
                key=deploy_id,
            )
        ctx.store.runs.request_cancel(deploy_id, actor=ctx.who())
        ctx.logger.info("cancel of %s requested", deploy_id)
        run = self.wait_stopped(run)
        stopped = run.finished_at is not None
        return CancelResult(
            deploy_id=deploy_id,
            status=run.status,
            cancelled_at=run.finished_at if stopped else None,
        )

    def wait_stopped(self, run: RunRecord) -> RunRecord:
        """After a cancel request: close the run here if no worker holds it, then wait
        (at most ``cancel_wait_seconds``) for it to finish; the run as it then stands."""
        if run.lease_owner is None:
            self.ctx.executor.close_unclaimed(run.run_id)
        deadline = time.monotonic() + self.cancel_wait_seconds
        while True:
            now = self.ctx.store.runs.get(run.run_id)
            assert now is not None
            if now.finished_at is not None or time.monotonic() >= deadline:
                return now
            time.sleep(0.05)


def _time(value: str | None) -> datetime | None:
    return None if value is None else parse_time(value)
