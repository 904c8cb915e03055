"""The engine carries recorded runs: executors hand a run to a worker, which leases it,
bakes and executes it through :mod:`orchestrator.ansible`, folds its events into the store
and closes it; the reaper closes runs whose worker died.

This module holds only the :class:`Executor` protocol, so importing it for the type does
not import the worker (the implementations are in :mod:`orchestrator.engine.executors`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from orchestrator.domain.records import InstanceRecord, Observation


class Executor(Protocol):
    """Carries the work of runs already recorded in the store, and reads hosts."""

    def submit(self, run_id: str) -> None:
        """Start carrying ``run_id``; may return before the run ends."""

    def close_unclaimed(self, run_id: str) -> None:
        """Close a run that was cancelled while no worker held it (no-op otherwise)."""

    def resume(self, run_id: str) -> None:
        """Carry on a run the reaper handed back at a gate of a stepped deployment."""

    def probe(self, service: str, instances: Sequence[InstanceRecord],
              node: str = "") -> dict[str, Observation]:
        """Read what each instance really runs from its own disk (one observation each),
        through execution node ``node`` if given."""
