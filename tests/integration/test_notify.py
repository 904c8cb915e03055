"""PostgreSQL LISTEN/NOTIFY (``orchestrator.store.notify``) against a real server: a run
queued or a cancel recorded reaches a listener when its transaction commits, not before;
a listener whose server restarted listens again by itself and reports the gap."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from orchestrator.domain.records import RunInstanceRecord, RunKind, RunRecord
from orchestrator.domain.request import RunRequest
from orchestrator.models import InstanceSpec, Status
from orchestrator.store import Store
from orchestrator.store import schema as t
from orchestrator.store.notify import Listener, notify
from orchestrator.timefmt import utcnow
from tests.helpers.wait import wait_until
from tests.integration.pg import Postgres

pytestmark = pytest.mark.integration


class Heard:
    def __init__(self) -> None:
        self.count = 0
        self.event = threading.Event()

    def __call__(self) -> None:
        self.count += 1
        self.event.set()


@pytest.fixture
def pg_store(postgres: Postgres) -> Iterator[Store]:
    store = Store.open(postgres.new_database(), io_timeout=3.0)
    yield store
    store.close()


@pytest.fixture
def listening(pg_store: Store) -> Iterator[tuple[Store, Listener, Heard]]:
    heard = Heard()
    listener = Listener.open(pg_store.db.engine, 3.0, heard)
    assert listener is not None
    assert listener.wait_listening(15), "the listener never listened"
    yield pg_store, listener, heard
    listener.close()


def record_run(store: Store, run_id: str) -> None:
    now = utcnow()
    store.instances.add([InstanceSpec("i-1", "svc", "127.0.0.1", 9001, {})])
    store.runs.create(
        RunRecord(run_id, RunKind.DEPLOY, "svc", "2.0", Status.PENDING,
                  RunRequest(("i-1",)), "t", now, now),
        [RunInstanceRecord(run_id, "i-1", 0, 1, Status.PENDING, "2.0")])


def test_a_queued_run_and_a_cancel_are_heard(listening: tuple[Store, Listener, Heard]) -> None:
    store, listener, heard = listening
    record_run(store, "n-1")
    assert heard.event.wait(5), "the queued run was not heard"
    assert not listener.cancel_heard("n-1")
    store.runs.request_cancel("n-1")
    wait_until(lambda: listener.cancel_heard("n-1"), 5, "the cancel to be heard")
    assert not listener.cancel_heard("n-1"), "a cancel is heard once"


def test_nothing_is_heard_of_a_transaction_that_does_not_commit(
        listening: tuple[Store, Listener, Heard]) -> None:
    store, listener, heard = listening
    with pytest.raises(RuntimeError), store.db.write() as conn:
        conn.execute(t.runs.update().where(t.runs.c.run_id == "none").values(error_message=""))
        notify(conn, "floy_cancel", "r-rolled-back")
        raise RuntimeError("roll back")
    with store.db.write() as conn:
        notify(conn, "floy_cancel", "r-committed")
    wait_until(lambda: listener.cancel_heard("r-committed"), 5, "the committed cancel")
    assert not listener.cancel_heard("r-rolled-back")
    assert heard.count == 0


def test_a_listener_listens_again_after_a_restart_and_reports_the_gap(
        listening: tuple[Store, Listener, Heard], postgres: Postgres) -> None:
    store, listener, heard = listening
    postgres.restart("fast", 2.0)  # "immediate" could lose the schema: synchronous_commit=off
    wait_until(lambda: heard.count >= 1, 30, "the listener to report the gap")
    assert listener.listening
    heard.event.clear()
    record_run(store, "n-2")
    assert heard.event.wait(10), "a queued run after the restart was not heard"
    store.runs.request_cancel("n-2")
    wait_until(lambda: listener.cancel_heard("n-2"), 10, "a cancel after the restart")


def test_sqlite_has_no_listener(tmp_path: object) -> None:
    store = Store.open(f"sqlite:///{tmp_path}/floy.db")
    try:
        assert Listener.open(store.db.engine, 3.0, lambda: None) is None
    finally:
        store.close()


