"""The spec's RollbackManager: roll one instance, or a batch, back to a version.

A rollback is a run of kind ``rollback`` over ``playbooks/rollback.yml`` (the same path as a
deployment). Its target must be a release that once completed on the instance, unless a
package URL is given (see :mod:`orchestrator.domain.rollbacks`). Without a target version it
goes back to the version the instances ran before their current one, resolved from the
records before anything is stored (:mod:`orchestrator.domain.previous`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from orchestrator.domain import previous, validation
from orchestrator.domain.records import InstanceRecord, RunKind, RunRecord
from orchestrator.domain.request import RunRequest
from orchestrator.domain.rollbacks import Target, build_run, policy_reason
from orchestrator.errors import ConflictError, NotFoundError, ValidationError
from orchestrator.models import (
    BatchRollbackParams,
    BatchRollbackResult,
    InstanceRollbackParams,
    RollbackResult,
)
from orchestrator.service.context import ServiceContext
from orchestrator.service.deployments import Deployments
from orchestrator.service.ids import generated_id
from orchestrator.store import Store


def resolve_targets(
    store: Store,
    instance_ids: Sequence[str],
    version: str,
    package_url: str,
    field: str,
    allowed_hosts: frozenset[str],
) -> list[Target]:
    """Per-instance package of a rollback to ``version``; refuses never-completed versions.

    ``package_url`` (already validated) wins; otherwise the URL recorded when the version
    completed there, which must pass the current policy (``allowed_hosts``, HTTPS).
    Raises ValidationError naming ``field`` (e.g. ``instances[2]``) before anything runs.
    """
    known = store.instances.get(instance_ids)
    targets = []
    for index, instance_id in enumerate(instance_ids):
        record = known[instance_id]
        entry = store.history.completed_release(instance_id, version)
        name = field if len(instance_ids) == 1 else f"{field}[{index}]"
        if package_url:
            sha = entry["sha256"] if entry and entry["package_url"] == package_url else ""
            targets.append(Target(instance_id, package_url, sha, record.version))
        elif entry is not None:
            recorded = entry["package_url"]
            problem = policy_reason(recorded, allowed_hosts) if recorded else ""
            if problem:
                raise ValidationError(
                    name,
                    f"the package URL recorded when {version!r} completed on {instance_id!r} "
                    f"is no longer allowed ({problem}); "
                    "give package_url to install it from an allowed host",
                )
            targets.append(Target(instance_id, recorded, entry["sha256"], record.version))
        else:
            raise ValidationError(
                name,
                f"version {version!r} never completed on instance {instance_id!r} "
                "(failed and half-built releases are never rollback targets); "
                "give package_url to install it anyway",
            )
    return targets


class Rollbacks:
    """Roll instances back (spec section 4)."""

    def __init__(self, ctx: ServiceContext, deployments: Deployments) -> None:
        self.ctx = ctx
        self.deployments = deployments  # a forced rollback cancels the runs in its way

    def rollback_instance(self, params: InstanceRollbackParams) -> RollbackResult:
        """Roll one instance back to a version it once ran (or to a given package); without a
        target version, to the one it ran before its current one."""
        ctx = self.ctx
        params = validation.validate_instance_rollback_params(
            params, ctx.settings.allowed_package_hosts
        )
        record = ctx.store.instances.get([params.instance_id]).get(params.instance_id)
        if record is None:
            raise NotFoundError("instance", params.instance_id)
        if not params.target_version:
            version = self._resubmitted_version(params.rollback_id) or previous.resolve_instance(
                self._previous([record])[0])
            params = replace(params, target_version=version)
        rollback_id = params.rollback_id or generated_id(
            "rollback", params.instance_id, params.target_version
        )
        request = RunRequest(instances=(params.instance_id,), package_url=params.package_url,
                             force=params.force, timeout=params.timeout)
        run = self._start(rollback_id, record.service, params.target_version,
                          request, "target_version")
        return RollbackResult(
            rollback_id=run.run_id,
            instance_id=params.instance_id,
            target_version=run.version,
            status=run.status,
            started_at=run.created_at,
        )

    def rollback_batch(self, params: BatchRollbackParams) -> BatchRollbackResult:
        """Roll several instances of a service back, in serial batches; without a target
        version, to the one version they all ran before their (one) current version."""
        ctx = self.ctx
        params = validation.validate_batch_rollback_params(
            params, ctx.settings.allowed_package_hosts
        )
        members = ctx.members_of(params.service, params.instances)
        if not params.target_version:
            version = self._resubmitted_version(params.rollback_id) or previous.resolve_batch(
                self._previous([members[i] for i in params.instances])).version
            params = replace(params, target_version=version)
        rollback_id = params.rollback_id or generated_id(
            "rollback", params.service, params.target_version
        )
        request = RunRequest(instances=params.instances, package_url=params.package_url,
                             force=params.force, timeout=params.timeout,
                             batch_size=params.batch_size, max_failures=params.max_failures)
        run = self._start(rollback_id, params.service, params.target_version,
                          request, "instances")
        return BatchRollbackResult(
            rollback_id=run.run_id,
            service=run.service,
            target_version=run.version,
            status=run.status,
            instances=run.request.instances,
            total_instances=len(run.request.instances),
            started_at=run.created_at,
        )

    def _previous(self, records: Sequence[InstanceRecord]) -> list[previous.Previous]:
        """What each instance ran before its current version, as floy's records know it."""
        changes = self.ctx.store.history.version_changes([r.instance_id for r in records])
        return [previous.previous_version(r, changes[r.instance_id]) for r in records]

    def _resubmitted_version(self, rollback_id: str) -> str:
        """The version of the run already recorded under ``rollback_id`` (""): a request
        without a version, sent again, means the version resolved the first time (the
        idempotency check then compares the rest of the request)."""
        existing = self.ctx.store.runs.get(rollback_id) if rollback_id else None
        return existing.version if existing is not None else ""

    def _start(
        self,
        rollback_id: str,
        service: str,
        version: str,
        request: RunRequest,
        field: str,
    ) -> RunRecord:
        ctx = self.ctx
        existing = ctx.idempotent(rollback_id, RunKind.ROLLBACK, service, version, request)
        if existing is not None:
            return existing
        targets = resolve_targets(ctx.store, request.instances, version, request.package_url,
                                  field, ctx.settings.allowed_package_hosts)
        if request.force:
            self._free_instances(request.instances)
        run, members = build_run(rollback_id, service, version, targets, request, self.ctx.who(),
                                 ctx.clock())
        return ctx.record_and_submit(run, members)

    def _free_instances(self, instance_ids: Sequence[str]) -> None:
        """For a forced rollback: cancel the runs holding these instances, and wait."""
        for run_id in sorted(set(self.ctx.store.leases.lock_holders(instance_ids).values())):
            self.ctx.logger.warning("forced rollback: cancelling run %s", run_id)
            try:
                result = self.deployments.cancel_deployment(run_id)
            except ConflictError:
                continue  # it finished meanwhile
            if result.cancelled_at is None:
                raise ConflictError(
                    f"forced rollback: run {run_id} is still stopping; try again shortly",
                    key=run_id,
                )
