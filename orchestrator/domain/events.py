"""Fold ansible-runner events into per-instance transitions: a pure function, no I/O.

The fold knows only what an event says. It is fed every event of a run, in order, and
returns the new fold state with the updates to persist. Tests replay recorded event files
of real runs (``tests/fixtures/events/*.jsonl``) through it.

Rules (DESIGN.md section 6):
- the release task is the task whose action is the ``floy_release`` module; its start marks
  the instance in progress, its ``runner_retry`` events count attempts, its ``runner_on_ok``
  completes the instance with the version the module reports (a release the role split
  into phases around hooks completes on its ``final`` run only);
- any ``runner_on_failed`` (not ``ignore_errors``) or ``runner_on_unreachable`` fails the
  instance with the module's message; the first failure's message is kept;
- events for hosts that are not instances of the run (``localhost``) are ignored, and an
  instance already finished never changes again;
- what a host reports is input (DESIGN.md section 5): a ``current_version`` or
  ``previous_version`` that fails :func:`~orchestrator.domain.validation.validate_name` is never
  recorded. A release reported complete with such a version fails, with the reason: floy
  cannot tell what the instance runs until it is probed (``floy refresh``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, TypedDict

from orchestrator.domain.validation import validate_name
from orchestrator.errors import ValidationError
from orchestrator.models import Status

RELEASE_ACTION = "floy_release"


class EventData(TypedDict, total=False):
    """The part of ``event_data`` the fold reads."""

    host: str
    task: str
    task_action: str
    resolved_action: str
    res: dict[str, Any]
    ignore_errors: bool | None


class RunnerEvent(TypedDict, total=False):
    """An ansible-runner event as handed to ``event_handler`` (only the keys we read)."""

    event: str
    counter: int
    runner_ident: str
    created: str
    event_data: EventData


@dataclass(frozen=True)
class InstanceUpdate:
    """Changes to one instance's record; None means "leave as is"."""

    instance_id: str
    status: Status | None = None
    phase: str | None = None
    attempts: int | None = None
    current_version: str | None = None
    previous_version: str | None = None
    error_message: str | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    release: dict[str, str] | None = None  # version/package_url/sha256 of a completed release
    #: The host was lost while its release ran: the run row's current_version becomes ""
    #: (unknown) until a probe says; the registry's record is left for the probe to settle.
    version_unknown: bool = False


@dataclass(frozen=True)
class FoldState:
    """What the fold remembers between events: each instance's status and attempts."""

    statuses: Mapping[str, Status]
    attempts: Mapping[str, int] = field(default_factory=dict)
    finished: bool = False  # playbook_on_stats seen
    #: Instances lost (unreachable) during their release task: what they run is unknown.
    unknown: frozenset[str] = frozenset()
    package_url: str = ""
    package_sha256: str = ""

    @classmethod
    def start(
        cls, instance_ids: list[str] | tuple[str, ...], package_url: str = "", sha256: str = ""
    ) -> FoldState:
        """Initial state: every instance pending."""
        return cls(
            statuses=dict.fromkeys(instance_ids, Status.PENDING),
            package_url=package_url,
            package_sha256=sha256,
        )

    def counts(self) -> dict[Status, int]:
        """How many instances are in each status."""
        out = dict.fromkeys(Status, 0)
        for status in self.statuses.values():
            out[status] += 1
        return out


def event_time(event: RunnerEvent) -> datetime:
    """When the event was created (runner writes naive UTC ISO times)."""
    raw = event.get("created")
    if not raw:
        return datetime.now(UTC)
    value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _is_release_task(data: EventData) -> bool:
    action = data.get("resolved_action") or data.get("task_action") or ""
    return action == RELEASE_ACTION or action.endswith("." + RELEASE_ACTION)


_SSH_TELLING = re.compile(
    r"host key|permission denied|connection refused|connection timed out|no route to host|"
    r"could not resolve|connection closed|port \d+: ",
    re.IGNORECASE,
)


#: Appended to an instance's error when what it runs is not known until a probe says.
UNKNOWN_NOTE = "its version is unknown until it is probed"


def with_unknown_note(message: str) -> str:
    """``message`` marked: what the instance runs is unknown until a probe says."""
    return f"{message}; {UNKNOWN_NOTE}"


def has_unknown_note(message: str) -> bool:
    """Whether ``message`` carries the mark of :func:`with_unknown_note`."""
    return message.endswith(UNKNOWN_NOTE)


def without_unknown_note(message: str) -> str:
    """``message`` without that mark (a probe has settled it)."""
    return message.removesuffix(f"; {UNKNOWN_NOTE}")
# OpenSSH's own words when no session was ever set up: the module cannot have run.
_NEVER_CONNECTED = (
    "ssh: connect to host",
    "Could not resolve hostname",
    "Host key verification failed",
    "Permission denied",
)


def never_connected(message: str) -> bool:
    """Whether an unreachable message says the connection was never made (so nothing ran
    on the host), rather than lost during the task."""
    return any(words in message for words in _NEVER_CONNECTED)


def unreachable_message(text: str) -> str:
    """The telling lines of an ssh failure, without its multi-line warning banners."""
    lines = [line.strip() for line in text.replace("\r", "\n").splitlines()]
    lines = [line for line in lines if line and not line.startswith("@")]
    telling = list(dict.fromkeys(line for line in lines if _SSH_TELLING.search(line)))
    picked = telling[-3:] if telling else lines[-1:]
    return " | ".join(picked)[:500] or "host unreachable"


def _message(res: Mapping[str, Any], default: str) -> str:
    msg = res.get("msg") or res.get("reason") or res.get("stderr") or default
    text = str(msg).strip()
    return text[:2000] if text else default


def fold_event(state: FoldState, event: RunnerEvent) -> tuple[FoldState, list[InstanceUpdate]]:
    """Apply one runner event; returns the new state and the updates it implies."""
    kind = event.get("event", "")
    if kind == "playbook_on_stats":
        return replace(state, finished=True), []
    data: EventData = event.get("event_data") or {}
    host = data.get("host")
    if not host or host not in state.statuses:
        return state, []
    current = state.statuses[host]
    if current.is_terminal:
        return state, []
    res: Mapping[str, Any] = data.get("res") or {}
    at = event_time(event)
    release_task = _is_release_task(data)
    update: InstanceUpdate | None = None

    if kind == "runner_on_start" and release_task and current is Status.PENDING:
        # error_message: a resumed run's instance starts afresh ("handed back …" cleared)
        update = InstanceUpdate(
            host, status=Status.IN_PROGRESS, started_at=at, phase="release", attempts=1,
            error_message="",
        )
    elif kind == "runner_retry" and release_task:
        attempts = _int(res.get("attempts"), state.attempts.get(host, 1)) + 1
        update = InstanceUpdate(
            host,
            attempts=attempts,
            phase=str(res.get("phase") or "retry"),
            error_message=f"attempt {attempts - 1} failed: {_message(res, 'failed')}",
        )
    elif kind == "runner_on_ok" and release_task and res.get("final") is False:
        # A release split into phases around hooks: only its final run completes it.
        update = InstanceUpdate(host, phase=str(res.get("phase") or "release"))
    elif kind == "runner_on_ok" and release_task:
        key = "current_version" if res.get("current_version") else "version"
        version, refused = _reported_version(res, key)
        previous, refused_previous = _reported_version(res, "previous_version")
        if refused:
            update = InstanceUpdate(
                host,
                status=Status.FAILED,
                phase="verify",
                attempts=_attempts(state, host, res),
                previous_version=previous,
                error_message=f"{refused}; probe it with floy refresh",
                completed_at=at,
            )
        else:
            update = InstanceUpdate(
                host,
                status=Status.COMPLETED,
                phase="done",
                attempts=_attempts(state, host, res),
                current_version=version or "",
                previous_version=previous,
                error_message=refused_previous,
                completed_at=at,
                release={
                    "version": version or "",
                    "package_url": str(res.get("package_url") or state.package_url),
                    "sha256": str(res.get("sha256") or state.package_sha256),
                },
            )
    elif kind == "runner_on_unreachable":
        reason = f"unreachable: {unreachable_message(_message(res, 'host unreachable'))}"
        # Lost during the release task, the module may have gone on (or be going on) on
        # the host: floy cannot say which release it runs until it is probed.
        lost = release_task and current is Status.IN_PROGRESS and not never_connected(reason)
        update = InstanceUpdate(
            host,
            status=Status.FAILED,
            phase="connect",
            error_message=with_unknown_note(reason) if lost else reason,
            completed_at=at,
            version_unknown=lost,
        )
    elif kind == "runner_on_failed" and not data.get("ignore_errors"):
        reported, refused = _reported_version(res, "current_version") if release_task else (
            None, "")
        message = _message(res, "task failed")
        # The module always reports its phase; a release task failing without one is the
        # module itself dying (killed, crashed): it may have switched before it died.
        died = release_task and "phase" not in res
        if died:
            message = with_unknown_note(message)
        update = InstanceUpdate(
            host,
            status=Status.FAILED,
            phase=str(res.get("phase") or data.get("task") or "failed"),
            attempts=_attempts(state, host, res) if release_task else None,
            current_version=None if died else reported,
            error_message=f"{message}; {refused}" if refused else message,
            completed_at=at,
            version_unknown=died,
        )

    if update is None:
        return state, []
    statuses = dict(state.statuses)
    tries = dict(state.attempts)
    if update.status is not None:
        statuses[host] = update.status
    if update.attempts is not None:
        tries[host] = update.attempts
    unknown = state.unknown | {host} if update.version_unknown else state.unknown
    return replace(state, statuses=statuses, attempts=tries, unknown=unknown), [update]


def _attempts(state: FoldState, host: str, res: Mapping[str, Any]) -> int:
    """Attempts so far: ansible-core 2.19 under-reports ``attempts`` on the final failure
    after exhausted retries, so the count of ``runner_retry`` events wins when larger."""
    return max(_int(res.get("attempts"), 0), state.attempts.get(host, 1))


def _int(value: object, default: int) -> int:
    """An integer a host reported, or ``default`` when it is not one (the fold never raises)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return default
    try:
        return int(value)
    except (ValueError, OverflowError):
        return default


def _reported_version(res: Mapping[str, Any], key: str) -> tuple[str | None, str]:
    """A version the module reported under ``key``: ``(version, "")``, ``(None, "")`` when it
    reported none, or ``(None, why)`` when it fails the checks on names (never recorded)."""
    value = res.get(key)
    if value in (None, ""):
        return None, ""
    try:
        return validate_name(key, value), ""
    except ValidationError as exc:
        return None, f"{exc} (reported by the host; not recorded)"
