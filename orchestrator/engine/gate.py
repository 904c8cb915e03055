"""The gate between two batches of a stepped deployment: its analysis, then its pause.

The worker holds the gate after batch k before it starts batch k+1 (see
:mod:`orchestrator.domain.canary` for what is recorded). The analysis takes its
measurements from this process (the controller), each recorded as it is taken; a failing
analysis fails the run. The pause then waits for a promotion (``floy promote``, the HTTP
API, the dashboard), for its time to pass, or for a full promotion; an abort or a cancel
stops it like any cancel. The lease is renewed all along (by the worker's keeper thread),
so a pause may outlast any lease; a worker that is stopped or cut off from the store hands
the run back at the gate, and the next worker resumes it from the recorded decisions.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from orchestrator.domain import canary, closing
from orchestrator.domain.analysis import Measurement
from orchestrator.domain.canary import FLOY, DecisionKind, DecisionRecord
from orchestrator.domain.records import RunRecord
from orchestrator.domain.steps import duration_text
from orchestrator.engine import analysis as analysing
from orchestrator.models import Status
from orchestrator.settings import Settings
from orchestrator.store import Store
from orchestrator.timefmt import format_time

log = logging.getLogger(__name__)

#: How often a paused worker reads the decisions for a promotion.
PROMOTE_CHECK_SECONDS = 0.5


@dataclass(frozen=True)
class GateEnd:
    """How holding a gate ended: ``passed``, ``stopped`` (a cancel or abort, the lease,
    the daemon stopping: the caller tells which) or ``failed`` (its analysis), with why."""

    outcome: str
    message: str = ""


class Gatekeeper:
    """Holds the gates of one run for the worker that owns it as ``owner``."""

    def __init__(self, settings: Settings, store: Store, run: RunRecord, owner: str,
                 stopped: Callable[[], bool],
                 measure: Callable[[], Measurement] | None = None) -> None:
        self.settings = settings
        self.store = store
        self.run = run
        self.owner = owner
        self.stopped = stopped
        self.analysis = canary.analysis_of(run)
        self.measure = measure or self._measure

    def _measure(self) -> Measurement:
        assert self.analysis is not None
        return analysing.measure(self.analysis, ca_bundle=self.settings.ca_bundle,
                                 clock=self.store.db.clock)

    def record(self, batch: int, kind: DecisionKind, message: str = "",
               data: dict[str, object] | None = None) -> None:
        """Record one of the worker's decisions, fenced by its lease."""
        self.store.decisions.record(
            DecisionRecord(self.run.run_id, batch, kind, FLOY, self.store.db.clock(), message,
                           dict(data or {})), owner=self.owner)

    def hold(self, batch: int) -> GateEnd:
        """Hold the gate after ``batch`` until it is passed, stopped or failed."""
        gate = canary.gate_state(self.store.decisions.of_run(self.run.run_id), batch)
        if gate.continued:
            return GateEnd("passed")
        if self.analysis is not None and gate.analysis != "passed":
            end = self._analyse(batch, gate)
            if end is not None:
                return end
        pause = canary.gate_pause(self.run, batch)
        if pause is False:
            if self.analysis is not None:
                self.record(batch, DecisionKind.CONTINUED, "analysis passed")
            return GateEnd("passed")
        end = self._pause(batch, pause, gate)
        if end.outcome == "passed":
            self.record(batch, DecisionKind.CONTINUED, end.message)
        return end

    def _analyse(self, batch: int, gate: canary.Gate) -> GateEnd | None:
        """Run the analysis after ``batch``; None when it passed."""
        assert self.analysis is not None
        if gate.analysis == "failed":
            return GateEnd("failed", f"analysis after batch {batch} failed")
        log.info("run %s: analysis after batch %d (%d measurement(s) every %d s)",
                 self.run.run_id, batch, self.analysis.count, self.analysis.interval)

        def record(m: Measurement) -> None:
            self.record(batch, DecisionKind.MEASURED,
                        "ok" if m.ok else m.error, m.to_dict())

        verdict = analysing.run_analysis(self.analysis, measure_once=self.measure,
                                         record=record, stopped=self.stopped,
                                         already=gate.measurements)
        if verdict is None:
            return GateEnd("stopped")
        kind = DecisionKind.ANALYSIS_PASSED if verdict.passed else DecisionKind.ANALYSIS_FAILED
        self.record(batch, kind, verdict.message)
        if not verdict.passed:
            return GateEnd("failed", f"{verdict.message} after batch {batch}")
        return None

    def _pause(self, batch: int, seconds: int | None, gate: canary.Gate) -> GateEnd:
        """Wait at the pause after ``batch`` (``seconds`` None: until promoted)."""
        decisions = self.store.decisions.of_run(self.run.run_id)
        full = canary.full_promotion(decisions)
        if full:
            return GateEnd("passed", f"pause skipped: promoted fully by {full}")
        until = gate.pause_until
        if gate.paused_since is None:
            now = self.store.db.clock()
            until = None if seconds is None else now + timedelta(seconds=seconds)
            self.record(batch, DecisionKind.PAUSED,
                        "until promoted" if until is None else
                        f"for {duration_text(seconds or 0)}, until {format_time(until)}",
                        {"until": None if until is None else format_time(until)})
            log.info("run %s paused after batch %d %s", self.run.run_id, batch,
                     "until promoted" if until is None else f"until {format_time(until)}")
        next_read = 0.0
        while True:
            if self.stopped():
                return GateEnd("stopped")
            if until is not None and self.store.db.clock() >= until:
                return GateEnd("passed", f"pause of {duration_text(seconds or 0)} elapsed"
                               if seconds else "pause elapsed")
            if time.monotonic() >= next_read:
                next_read = time.monotonic() + PROMOTE_CHECK_SECONDS
                state = canary.gate_state(self.store.decisions.of_run(self.run.run_id), batch)
                if state.promoted_by:
                    return GateEnd("passed", f"promoted by {state.promoted_by}")
            time.sleep(0.1)


def cancel_reason(store: Store, run: RunRecord) -> str:
    """Why a cancelled run stopped: ``aborted by <caller>``, or a cancel on request."""
    abort = canary.abort_of(store.decisions.of_run(run.run_id))
    return f"aborted by {abort.actor}" if abort is not None else "cancelled on request"


def rolls_back(store: Store, run: RunRecord, how: closing.Closing, status: Status) -> bool:
    """Whether a deployment ending ``status`` rolls back what it switched: a failure (its
    instances' verdict, or its analysis) with ``auto_rollback``, or an abort that asked for
    it."""
    if status is Status.FAILED:
        return run.request.auto_rollback and (how.status is None or how.rolls_back)
    if status is Status.CANCELLED:
        abort = canary.abort_of(store.decisions.of_run(run.run_id))
        return abort is not None and bool(abort.data.get("rollback"))
    return False
