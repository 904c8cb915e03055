"""What every part of the service shares: its collaborators, and recording a new run."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from orchestrator.domain.records import InstanceRecord, RunInstanceRecord, RunKind, RunRecord
from orchestrator.domain.request import RunRequest
from orchestrator.engine import Executor
from orchestrator.engine.reaper import Reaper
from orchestrator.errors import ConflictError, ValidationError
from orchestrator.service.ids import caller
from orchestrator.settings import Settings
from orchestrator.store import Store

Clock = Callable[[], datetime]


@dataclass
class ServiceContext:
    """The injected collaborators (the spec's ``NewDeployService(logger, executor, db)``,
    plus settings and a clock)."""

    logger: logging.Logger
    executor: Executor
    store: Store
    settings: Settings
    clock: Clock
    #: Who is asking, as recorded in runs and the audit trail: "" for the OS user of this
    #: process (the CLI, the Python API), ``token:<name>`` for an HTTP caller.
    actor: str = ""

    def who(self) -> str:
        """The caller recorded with what this context creates."""
        return self.actor or caller()

    def audit(self, action: str, service: str = "", subject: str = "", detail: str = "") -> None:
        """Record a mutating call in the audit trail, by :meth:`who`."""
        self.store.actions.record(self.who(), action, service, subject, detail)

    @property
    def reaper(self) -> Reaper:
        """A reaper probing through the executor, and resuming through it the runs it
        hands back at a gate."""
        return Reaper(self.settings, self.store, self.executor.probe,
                      resume=self.executor.resume)

    def members_of(self, service: str, instance_ids: Sequence[str]) -> dict[str, InstanceRecord]:
        """The records of ``instance_ids``, each registered and of ``service``; else a
        ValidationError naming ``instances[i]``."""
        known = self.store.instances.get(instance_ids)
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
        return known

    def idempotent(
        self, run_id: str, kind: RunKind, service: str, version: str, request: RunRequest
    ) -> RunRecord | None:
        """The run already recorded under ``run_id`` for this very request (re-submission
        is idempotent), or None; a different request under the same ID is a conflict."""
        existing = self.store.runs.get(run_id)
        if existing is None:
            return None
        if _same_request(existing, kind, service, version, request):
            return existing
        label = "deploy_id" if kind == RunKind.DEPLOY else "rollback_id"
        raise ConflictError(
            f"{label} {run_id} is already used by a run with different parameters",
            key=run_id,
        )

    def record_and_submit(
        self, run: RunRecord, members: list[RunInstanceRecord]
    ) -> RunRecord:
        """Reap the dead runs holding these instances, record the new run with its locks,
        and hand it to the executor. If the same request recorded the same ID a moment
        earlier (a race the idempotency check cannot see), that run is returned instead.
        Nothing is recorded when the inventory directory is unusable (ConfigError)."""
        self.settings.require_inventory()
        self.reaper.reap_holding(m.instance_id for m in members)
        try:
            self.store.runs.create(run, members)
        except ConflictError:
            again = self.store.runs.get(run.run_id)
            if again is not None and _same_request(again, run.kind, run.service, run.version,
                                                   run.request):
                return again
            raise
        self.logger.info("%s %s of %s %s to %d instance(s) recorded", run.kind, run.run_id,
                         run.service, run.version, len(members))
        self.executor.submit(run.run_id)
        return self.store.runs.get(run.run_id) or run


def _same_request(
    run: RunRecord, kind: str, service: str, version: str, request: RunRequest
) -> bool:
    return (run.kind, run.service, run.version, run.request) == (kind, service, version, request)
