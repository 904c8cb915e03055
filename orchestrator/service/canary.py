"""Promote and abort: the callers' decisions at the gates of a stepped deployment.

``promote`` lets a paused deployment go on to its next batch (``full``: and skips every
pause still to come); ``abort`` stops a deployment like a cancel and, with ``rollback``,
rolls back the instances it switched. Both are recorded with the caller (the run's
decisions and the audit trail) before anything acts on them.
"""

from __future__ import annotations

from orchestrator.domain import canary, validation
from orchestrator.domain.canary import DecisionKind, DecisionRecord
from orchestrator.domain.records import RunKind, RunRecord
from orchestrator.errors import ConflictError, NotFoundError
from orchestrator.models import DeployStatus
from orchestrator.service.context import ServiceContext
from orchestrator.service.deployments import Deployments


class Canaries:
    """Promote and abort deployments."""

    def __init__(self, ctx: ServiceContext, deployments: Deployments) -> None:
        self.ctx = ctx
        self.deployments = deployments

    def _unfinished(self, deploy_id: str, verb: str) -> RunRecord:
        run = self.ctx.store.runs.get(deploy_id)
        if run is None:
            raise NotFoundError("deployment", deploy_id)
        if run.kind != RunKind.DEPLOY:
            raise ConflictError(f"run {deploy_id} is a rollback: only a deployment can be "
                                f"{verb}d", key=deploy_id)
        if run.finished_at is not None:
            raise ConflictError(f"run {deploy_id} already finished ({run.status.value}); "
                                f"nothing to {verb}", key=deploy_id)
        return run

    def promote(self, deploy_id: str, full: bool = False) -> DeployStatus:
        """Let a paused deployment go on (``full``: skip its remaining pauses too, paused
        or not); returns its status. A deployment that is not paused is a conflict (unless
        ``full``), as is one without steps or one already finished."""
        ctx = self.ctx
        deploy_id = validation.validate_id("deploy_id", deploy_id)
        run = self._unfinished(deploy_id, "promote")
        if not run.request.steps:
            raise ConflictError(f"deployment {deploy_id} has no steps: there is nothing to "
                                "promote", key=deploy_id)
        decisions = ctx.store.decisions.of_run(deploy_id)
        batch = canary.last_batch(decisions)
        gate = canary.gate_state(decisions, batch)
        paused = gate.paused_since is not None and not gate.continued and not gate.promoted_by
        if not full and not paused:
            where = (f"batch {batch} or its gate is in progress" if batch
                     else "it has not started its first batch")
            raise ConflictError(f"deployment {deploy_id} is not paused ({where}); promote "
                                "it when it pauses, or give full=true (--full) to skip "
                                "every pause to come", key=deploy_id)
        message = ("promoted fully: the remaining pauses are skipped" if full
                   else f"promoted after batch {batch}")
        ctx.store.decisions.promote(
            DecisionRecord(deploy_id, batch, DecisionKind.PROMOTED, ctx.who(), ctx.clock(),
                           message, {"full": full}), run.service)
        ctx.logger.info("%s: %s by %s", deploy_id, message, ctx.who())
        # a paused run whose worker died is resumed at its gate, and sees the promotion
        ctx.reaper.reap([deploy_id])
        return self.deployments.get_deployment_status(deploy_id)

    def abort(self, deploy_id: str, rollback: bool = False) -> DeployStatus:
        """Stop a deployment as a cancel does, recorded as an abort by the caller; with
        ``rollback`` the instances it switched are rolled back to the version they ran
        (its rollback's ID is the status' ``rollback_id``). Waits, bounded as a cancel does,
        for it to stop; returns its status."""
        ctx = self.ctx
        deploy_id = validation.validate_id("deploy_id", deploy_id)
        ctx.reaper.reap([deploy_id])  # a paused run whose worker died is resumed to stop
        run = self._unfinished(deploy_id, "abort")
        batch = canary.last_batch(ctx.store.decisions.of_run(deploy_id))
        message = "aborted, rolling back what it switched" if rollback else "aborted"
        ctx.store.decisions.abort(
            DecisionRecord(deploy_id, batch, DecisionKind.ABORTED, ctx.who(), ctx.clock(),
                           message, {"rollback": rollback}), run.service)
        ctx.logger.info("%s: %s by %s", deploy_id, message, ctx.who())
        self.deployments.wait_stopped(run)
        return self.deployments.get_deployment_status(deploy_id)
