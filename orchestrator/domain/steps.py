"""Canary steps: a deployment's batches of given sizes with pauses between them.

A strategy is written ``1,pause,10%,pause 5m,50%,100%`` (or as a list of those items):

- a batch is ``N`` instances (1..1,000,000) or ``N%`` of the run's instances (1..100);
- a pause is ``pause`` (indefinite: until promoted) or ``pause D``, D a duration of
  seconds (``90``) or ``<int><unit>`` parts with units ``h``, ``m``, ``s`` in that order
  (``90s``, ``5m``, ``1h30m``), 1 s to 7 days.

The batches are Ansible's ``serial`` list, so floy, AWX and ``ansible-playbook`` cut the
same batches from the same text: each entry is the size of one batch (a percentage of all
the run's instances, floored, at least one), and after the last entry its size repeats
until every instance is done. This differs from Argo Rollouts' ``setWeight`` steps, which
are cumulative traffic weights. A pause written after batch k holds before batch k+1; a
pause whose next batch never comes (the instances ran out first) does not happen.

The collection's ``canary_steps`` filter parses the same grammar for runs without floy;
``tests/unit/test_steps.py`` checks that both agree on every case of a shared catalogue.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from orchestrator.errors import ValidationError

MAX_STEPS = 100
MAX_PAUSE_SECONDS = 7 * 86_400
MAX_BATCH = 1_000_000
_BATCH = re.compile(r"([0-9]{1,7})(%?)")
_PAUSE = re.compile(r"pause(?:\s+(\S.*))?")
_SECONDS = re.compile(r"[0-9]{1,9}")
_DURATION = re.compile(r"(?:([0-9]{1,6})h)?(?:([0-9]{1,8})m)?(?:([0-9]{1,9})s)?")


@dataclass(frozen=True)
class Step:
    """One item of a strategy: a batch of ``size`` ("5" or "10%") or a pause of
    ``seconds`` (None: until promoted)."""

    kind: str  # "batch" | "pause"
    size: str = ""
    seconds: int | None = None

    @property
    def is_pause(self) -> bool:
        """Whether this step is a pause."""
        return self.kind == "pause"

    def text(self) -> str:
        """The canonical item: ``5``, ``10%``, ``pause``, ``pause 1m30s``."""
        if not self.is_pause:
            return self.size
        return "pause" if self.seconds is None else f"pause {duration_text(self.seconds)}"


def duration_text(seconds: int) -> str:
    """``90`` -> ``1m30s``, ``3600`` -> ``1h``: the shortest h/m/s spelling."""
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{n}{unit}" for n, unit in ((hours, "h"), (minutes, "m"), (secs, "s")) if n]
    return "".join(parts) or "0s"


def _item_error(field: str, number: int, item: object, why: str) -> ValidationError:
    return ValidationError(field, f"item {number} ({item!r}): {why}")


def _parse_duration(text: str) -> int | None:
    """Seconds of a duration, or None when it is not one."""
    if _SECONDS.fullmatch(text):  # ASCII digits only: str.isdigit() takes '５' and '²'
        return int(text)
    m = _DURATION.fullmatch(text)
    if m is None or not any(m.groups()):
        return None
    hours, minutes, secs = (int(g) if g else 0 for g in m.groups())
    return hours * 3600 + minutes * 60 + secs


def _parse_item(field: str, number: int, item: object) -> Step:
    if isinstance(item, int) and not isinstance(item, bool):
        item = str(item)
    if not isinstance(item, str):
        raise _item_error(field, number, item, "must be a batch size ('5', '10%') or a pause "
                                               "('pause', 'pause 5m')")
    text = item.strip()
    batch = _BATCH.fullmatch(text)
    if batch is not None:
        size, percent = int(batch[1]), batch[2]
        if percent and not 1 <= size <= 100:
            raise _item_error(field, number, item, "a percentage must be from 1% to 100%")
        if not percent and not 1 <= size <= MAX_BATCH:
            raise _item_error(field, number, item, f"a batch must be from 1 to {MAX_BATCH} "
                                                   "instances")
        return Step("batch", size=f"{size}{percent}")
    pause = _PAUSE.fullmatch(text)
    if pause is None:
        raise _item_error(field, number, item, "must be a batch size ('5', '10%') or a pause "
                                               "('pause', 'pause 5m')")
    if pause[1] is None:
        return Step("pause")
    seconds = _parse_duration(pause[1].strip())
    if seconds is None:
        raise _item_error(field, number, item, "a pause lasts a number of seconds or a "
                                               "duration like 90s, 5m, 1h30m")
    if not 1 <= seconds <= MAX_PAUSE_SECONDS:
        raise _item_error(field, number, item, f"a pause lasts from 1 s to 7 days "
                                               f"({MAX_PAUSE_SECONDS} s), got {seconds} s")
    return Step("pause", seconds=seconds)


def parse_steps(value: object, field: str = "steps") -> tuple[Step, ...]:
    """Parse a strategy (comma-separated text, or a list of items; empty: none) or raise one
    :class:`ValidationError` naming ``field`` and the item (1-based)."""
    if isinstance(value, str):
        items: Sequence[object] = [] if not value.strip() else value.split(",")
    elif isinstance(value, (list, tuple)):
        items = value
    else:
        raise ValidationError(field, "must be text like '1,pause,10%,pause 5m,100%' or a "
                                     "list of those items")
    if len(items) > MAX_STEPS:
        raise ValidationError(field, f"at most {MAX_STEPS} items, got {len(items)}")
    steps = tuple(_parse_item(field, n, item) for n, item in enumerate(items, start=1))
    for number, step in enumerate(steps, start=1):
        if step.is_pause and number == 1:
            raise _item_error(field, number, items[0], "a strategy starts with a batch (a "
                                                       "pause before it gates nothing)")
        if step.is_pause and steps[number - 2].is_pause:
            raise _item_error(field, number, items[number - 1], "a pause follows a pause: "
                                                                 "write one pause")
    if steps and steps[-1].is_pause:
        raise _item_error(field, len(steps), items[-1], "a strategy ends with a batch (a "
                                                        "pause after the last gates nothing)")
    return steps


def normalize_steps(value: object, field: str = "steps") -> tuple[str, ...]:
    """The canonical items of a strategy (validated as :func:`parse_steps`)."""
    return tuple(step.text() for step in parse_steps(value, field))


def batch_sizes(steps: Sequence[Step], total: int) -> list[int]:
    """The sizes of the batches ``steps`` cut from ``total`` instances (Ansible's ``serial``
    list: the last entry repeats; a percentage is floored, at least one)."""
    entries = [s.size for s in steps if not s.is_pause]
    sizes: list[int] = []
    remaining = total
    while remaining > 0 and entries:
        entry = entries[min(len(sizes), len(entries) - 1)]
        if entry.endswith("%"):
            size = max(1, math.floor(int(entry[:-1]) / 100.0 * total))
        else:
            size = int(entry)
        sizes.append(min(size, remaining))
        remaining -= size
    return sizes


def pause_after(steps: Sequence[Step], batch: int) -> Step | None:
    """The pause written right after the ``batch``-th batch (1-based), if any; a batch cut
    by the repetition of the last entry has none."""
    seen = 0
    for number, step in enumerate(steps):
        if step.is_pause:
            continue
        seen += 1
        if seen == batch:
            following = steps[number + 1] if number + 1 < len(steps) else None
            return following if following is not None and following.is_pause else None
    return None


def batch_numbers(steps: Sequence[Step], total: int) -> list[int]:
    """The 1-based batch number of each of ``total`` instances, in order."""
    out: list[int] = []
    for number, size in enumerate(batch_sizes(steps, total), start=1):
        out.extend([number] * size)
    return out
