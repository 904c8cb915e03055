"""EventSink: batched writes of folded updates, and none lost when the store fails."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from orchestrator.domain.events import FoldState, InstanceUpdate, RunnerEvent
from orchestrator.engine.ingest import EventSink
from orchestrator.models import Status


class FlakyRuns:
    """A runs-repository seam whose writes fail the first ``failures`` times (a database restart);
    it refuses every other call."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.written: list[InstanceUpdate] = []

    def apply_updates(self, run_id: str, updates: Sequence[InstanceUpdate],
                      owner: str | None = None) -> None:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("server closed the connection unexpectedly")
        self.written.extend(updates)


def start(host: str) -> RunnerEvent:
    return {"event": "runner_on_start", "event_data": {
        "host": host, "resolved_action": "floy.release.floy_release"}}


def sink_over(store: FlakyRuns) -> EventSink:
    clock = iter(range(1000))
    return EventSink(store, "r1", "w", FoldState.start(["a", "b"]),  # type: ignore[arg-type]
                     interval=0.0, clock=lambda: float(next(clock)))


def test_a_failed_write_keeps_the_batch_for_the_next_flush() -> None:
    store = FlakyRuns(failures=1)
    sink = sink_over(store)
    with pytest.raises(ConnectionError):
        sink(start("a"))
    assert store.written == [] and len(sink.pending) == 1
    sink(start("b"))
    assert [u.instance_id for u in store.written] == ["a", "b"]
    assert all(u.status is Status.IN_PROGRESS for u in store.written)
    assert sink.pending == []


def test_flush_within_retries_until_the_store_is_back() -> None:
    store = FlakyRuns(failures=0)
    sink = sink_over(store)
    sink.pending.append(InstanceUpdate("a", status=Status.COMPLETED))
    store.failures = 3
    naps: list[float] = []
    sink.flush_within(30.0, sleep=naps.append)
    assert [u.instance_id for u in store.written] == ["a"] and len(naps) == 3


def test_flush_within_gives_up_after_its_time() -> None:
    store = FlakyRuns(failures=10_000)
    sink = sink_over(store)
    sink.pending.append(InstanceUpdate("a", status=Status.COMPLETED))
    with pytest.raises(ConnectionError):
        sink.flush_within(5.0, sleep=lambda _: None)
    assert len(sink.pending) == 1, "still pending: recovery probes the instance"
