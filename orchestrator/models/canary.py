"""The ``canary`` extension of a DeployStatus: a stepped deployment's steps, where it stands
(running a batch, analysing, paused), who decided what, and the analysis measurements."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from orchestrator.models._reader import _as_tuple, _Reader, _top
from orchestrator.timefmt import format_optional, format_time

#: What a stepped run is doing: playing a batch, analysing after one, paused after one,
#: or finished (its run is terminal).
CANARY_STATES = ("running", "analysis", "paused", "finished")


@dataclass(frozen=True, slots=True)
class AnalysisPoint:
    """One analysis measurement taken after ``batch``."""

    batch: int
    at: datetime
    ok: bool
    value: float | None
    http_status: int | None
    seconds: float
    error: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The JSON object."""
        return {"batch": self.batch, "at": format_time(self.at), "ok": self.ok,
                "value": self.value, "http_status": self.http_status,
                "seconds": self.seconds, "error": self.error}

    @classmethod
    def _read(cls, r: _Reader) -> AnalysisPoint:
        value = r.raw("value")
        status = r.raw("http_status")
        seconds = r.raw("seconds")
        return cls(batch=r.get_int("batch"), at=r.get_required_time("at"), ok=r.get_bool("ok"),
                   value=None if value is None else float(value),  # type: ignore[arg-type]
                   http_status=None if status is None else r.get_int("http_status"),
                   seconds=float(seconds),  # type: ignore[arg-type]
                   error=r.get_str("error", ""))


@dataclass(frozen=True, slots=True)
class Decision:
    """One decision about a stepped run: ``kind`` (paused, promoted, continued, aborted,
    analysis_passed, analysis_failed, ...) made at the gate after ``batch`` by ``actor``
    (an OS user, ``token:<name>``, or ``floy``)."""

    at: datetime
    batch: int
    kind: str
    actor: str
    message: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The JSON object."""
        return {"at": format_time(self.at), "batch": self.batch, "kind": self.kind,
                "actor": self.actor, "message": self.message}

    @classmethod
    def _read(cls, r: _Reader) -> Decision:
        return cls(at=r.get_required_time("at"), batch=r.get_int("batch"),
                   kind=r.get_str("kind"), actor=r.get_str("actor"),
                   message=r.get_str("message", ""))


@dataclass(frozen=True, slots=True)
class CanaryStatus:
    """Where a stepped deployment stands.

    ``batches`` are the sizes its steps cut; ``batch`` the last batch started (0: none
    yet); ``state`` one of :data:`CANARY_STATES`. While paused, ``paused_since`` is set and
    ``pause_until`` is when a timed pause ends (None: until promoted). ``promoted_by`` names
    the last caller who promoted it, ``full`` whether a full promotion skips the remaining
    pauses. ``analysis`` is its analysis definition (None: none).
    """

    steps: tuple[str, ...]
    batches: tuple[int, ...]
    batch: int
    state: str
    paused_since: datetime | None = None
    pause_until: datetime | None = None
    promoted_by: str = ""
    full: bool = False
    analysis: dict[str, Any] | None = None
    measurements: tuple[AnalysisPoint, ...] = ()
    decisions: tuple[Decision, ...] = field(default=())

    def __post_init__(self) -> None:
        for name in ("steps", "batches", "measurements", "decisions"):
            _as_tuple(self, name)

    def to_dict(self) -> dict[str, Any]:
        """The JSON object (``canary`` of a DeployStatus)."""
        return {
            "steps": list(self.steps),
            "batches": list(self.batches),
            "batch": self.batch,
            "state": self.state,
            "paused_since": format_optional(self.paused_since),
            "pause_until": format_optional(self.pause_until),
            "promoted_by": self.promoted_by,
            "full": self.full,
            "analysis": None if self.analysis is None else dict(self.analysis),
            "measurements": [m.to_dict() for m in self.measurements],
            "decisions": [d.to_dict() for d in self.decisions],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CanaryStatus:
        """Build from JSON; unknown keys are ignored."""
        return cls._read(_Reader(data, "canary"))

    @classmethod
    def _read(cls, r: _Reader) -> CanaryStatus:
        analysis = r.raw("analysis") if r.has("analysis") else None
        batches = r.raw("batches")
        return cls(
            steps=r.get_str_tuple("steps"),
            batches=tuple(int(b) for b in batches),  # type: ignore[attr-defined]
            batch=r.get_int("batch"),
            state=r.get_str("state"),
            paused_since=r.get_time("paused_since", nullable=True, optional=True),
            pause_until=r.get_time("pause_until", nullable=True, optional=True),
            promoted_by=r.get_str("promoted_by", ""),
            full=r.get_bool("full", False),
            analysis=dict(analysis) if isinstance(analysis, Mapping) else None,
            measurements=tuple(AnalysisPoint._read(c) for c in r.children("measurements")),
            decisions=tuple(Decision._read(c) for c in r.children("decisions")),
        )


def read_canary(data: Mapping[str, Any]) -> CanaryStatus | None:
    """The ``canary`` of a DeployStatus JSON object (None when absent or null)."""
    r = _top(data, "DeployStatus", strict=False)
    if not r.has("canary") or r.raw("canary") is None:
        return None
    return CanaryStatus._read(r.child("canary"))
