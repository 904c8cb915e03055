"""The audit trail of a service: its deployments and rollbacks, newest first."""

from __future__ import annotations

from orchestrator.domain import validation
from orchestrator.domain.records import RunSummary
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

    def worker_pid(self, run_id: str) -> int | None:
        """The process ID of the worker carrying ``run_id`` (None when none holds it)."""
        run = self.ctx.store.runs.get(run_id)
        return None if run is None else run.worker_pid
