"""The audit trail of a service: its deployments and rollbacks, newest first."""

from __future__ import annotations

from orchestrator.domain import validation
from orchestrator.domain.records import ActionRecord, RunSummary
from orchestrator.service.context import ServiceContext


class Audit:
    """Reads a service's history (a read: it never reaps)."""

    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx

    def history(self, service: str, limit: int = 50) -> list[RunSummary]:
        """Deployments and rollbacks of ``service``, newest first."""
        service = validation.validate_name("service", service)
        limit = validation.validate_limit(limit)
        return self.ctx.store.history.runs(service, limit)

    def actions(self, service: str, limit: int = 50) -> list[ActionRecord]:
        """Mutating calls on ``service`` (deploy, rollback, cancel, register, drift), newest
        first, each with who made it."""
        service = validation.validate_name("service", service)
        limit = validation.validate_limit(limit)
        return self.ctx.store.actions.of_service(service, limit)

    def runs(self, service: str = "", *, active: bool = False, limit: int = 50
             ) -> list[RunSummary]:
        """Newest runs of ``service`` (every service when ""), only unfinished ones when
        ``active``."""
        if service:
            service = validation.validate_name("service", service)
        limit = validation.validate_limit(limit)
        return self.ctx.store.history.recent(service or None, limit, active=active)

    def worker_pid(self, run_id: str) -> int | None:
        """The process ID of the worker carrying ``run_id`` (None when none holds it)."""
        run = self.ctx.store.runs.get(run_id)
        return None if run is None else run.worker_pid
