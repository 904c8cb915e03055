"""One way to wait in tests: until a condition holds, or fail saying what was awaited."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(
    condition: Callable[[], T | bool | None],
    timeout: float,
    what: str = "the condition",
    interval: float = 0.1,
) -> T:
    """Call ``condition`` every ``interval`` seconds until it returns a truthy value, and
    return that value; after ``timeout`` seconds, fail with ``what`` in the message (and
    the last value seen)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value  # type: ignore[return-value]
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what} "
                                 f"(last: {value!r})")
        time.sleep(interval)
