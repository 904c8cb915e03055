"""The store's contract, the same on both backends: every test runs on a SQLite file and on a
fresh database of a private PostgreSQL server (the ``postgres`` fixture of conftest.py).

What only one backend has stays with it: file permissions, WAL, migrations from floy 0.1 and
damaged files in tests/unit/test_store.py; writers racing and a deployment over the shared
store in tests/integration/test_store_pg.py.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from orchestrator.domain.canary import DecisionKind, DecisionRecord
from orchestrator.domain.events import InstanceUpdate
from orchestrator.domain.records import RunInstanceRecord, RunRecord
from orchestrator.domain.request import RunRequest
from orchestrator.errors import ConflictError
from orchestrator.models import InstanceSpec, Status
from orchestrator.store import StaleWriterError, Store
from orchestrator.timefmt import format_time, utcnow
from tests.helpers.store import table_counts

pytestmark = pytest.mark.integration

NOW = datetime(2026, 1, 1, tzinfo=UTC)
#: Where the fixed clock starts: years away from the real clock, so that a time the store
#: took from anywhere but its clock shows.
T0 = datetime(2031, 3, 4, 5, 6, 7, tzinfo=UTC)
IDS = ["i-0", "i-1", "i-2"]


class FixedClock:
    """A clock that stands still until the test moves it."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A URL of a database not created yet (SQLite) or empty (PostgreSQL)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'data' / 'floy.db'}"
    return str(request.getfixturevalue("postgres").new_database())


def _open(url: str, clock: FixedClock | None = None) -> Store:
    store = Store.open(url) if clock is None else Store.open(url, clock=clock)
    store.instances.add([InstanceSpec(i, "svc", "127.0.0.1", 9000 + n, {})
                         for n, i in enumerate(IDS)])
    return store


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    """The store on the real clock, with instances i-0, i-1, i-2 of service svc."""
    s = _open(db_url)
    yield s
    s.close()


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(T0)


@pytest.fixture
def clocked(db_url: str, clock: FixedClock) -> Iterator[Store]:
    """The store on ``clock``, with instances i-0, i-1, i-2 of service svc."""
    s = _open(db_url, clock)
    yield s
    s.close()


def _run(run_id: str, ids: list[str], at: datetime = NOW,
         request: RunRequest | None = None) -> tuple[RunRecord, list[RunInstanceRecord]]:
    run = RunRecord(run_id, "deploy", "svc", "2.0", Status.PENDING,
                    request or RunRequest(tuple(ids)), "t", at, at)
    members = [RunInstanceRecord(run_id, i, n, n + 1, Status.PENDING, "2.0")
               for n, i in enumerate(ids)]
    return run, members


def _got(store: Store, run_id: str) -> RunRecord:
    run = store.runs.get(run_id)
    assert run is not None, f"run {run_id} is recorded"
    return run


# -- opening ---------------------------------------------------------------------------------


def test_schema_migrates_and_reopens(db_url: str) -> None:
    Store.open(db_url).close()
    store = Store.open(db_url)  # second open: nothing left to migrate
    with store.read() as conn:
        assert conn.exec_driver_sql("SELECT version FROM floy_schema").scalar_one() == 6
    store.close()


def test_reopen_keeps_data_and_schema(db_url: str, store: Store) -> None:
    again = Store.open(db_url)
    try:
        assert table_counts(again)["instances"] == 3
    finally:
        again.close()


# -- the registry ----------------------------------------------------------------------------


def test_duplicate_registration_conflicts_unless_replaced(store: Store) -> None:
    with pytest.raises(ConflictError):
        store.instances.add([InstanceSpec("i-0", "svc", "127.0.0.2", 1, {})])
    store.instances.add([InstanceSpec("i-0", "svc", "127.0.0.2", 1, {"a": "b"})], replace=True)
    assert store.instances.get(["i-0"])["i-0"].host == "127.0.0.2"
    with pytest.raises(ConflictError, match="belongs to service svc"):
        store.instances.add([InstanceSpec("i-0", "other", "h", 1, {})], replace=True)


def test_paging_and_version_filter(store: Store) -> None:
    page, total = store.instances.page("svc", "", 2, 1)
    assert total == 3 and [p.instance_id for p in page] == ["i-1", "i-2"]
    assert store.instances.page("svc", "9.9", 10, 0) == ([], 0)


def test_lookups_by_id_and_by_service(store: Store) -> None:
    store.instances.add([InstanceSpec("o-1", "other", "10.0.0.1", 8080, {"zone": "a"})])
    assert store.instances.service_exists("svc") and store.instances.service_exists("other")
    assert not store.instances.service_exists("nope")
    assert [i.instance_id for i in store.instances.of_service("svc")] == IDS
    (other,) = store.instances.of_service("other")
    assert (other.service, other.host, other.port, other.metadata) == (
        "other", "10.0.0.1", 8080, {"zone": "a"})
    assert (other.version, other.last_heartbeat, other.observed_version) == ("", None, None)
    assert store.instances.get(["i-0", "ghost"]).keys() == {"i-0"}, "missing IDs are absent"
    assert store.instances.of_service("nope") == []


def test_observations_are_drift_unless_authoritative(store: Store) -> None:
    store.instances.record_observations({"i-0": "1.0"}, authoritative=True)
    adopted = store.instances.get(["i-0"])["i-0"]
    assert (adopted.version, adopted.observed_version, adopted.drift) == ("1.0", "1.0", False)
    assert adopted.last_heartbeat is not None and adopted.version_updated_at is not None
    store.instances.record_observations({"i-0": "1.1"}, authoritative=False)
    drifted = store.instances.get(["i-0"])["i-0"]
    assert (drifted.version, drifted.observed_version, drifted.drift) == ("1.0", "1.1", True)
    assert drifted.version_updated_at == adopted.version_updated_at, "the record is kept"
    store.instances.record_observations({"i-0": "1.1"}, authoritative=True)  # refresh --adopt
    settled = store.instances.get(["i-0"])["i-0"]
    assert (settled.version, settled.observed_version, settled.drift) == ("1.1", "1.1", False)
    untouched = store.instances.get(["i-1"])["i-1"]
    assert (untouched.version, untouched.observed_version, untouched.observed_at) == (
        "", None, None)


# -- runs and their instance locks -----------------------------------------------------------


def test_busy_instance_is_a_conflict_and_nothing_is_stored(store: Store) -> None:
    store.runs.create(*_run("r1", ["i-0", "i-1"]))
    before = table_counts(store)
    with pytest.raises(ConflictError, match="i-1 is busy in run r1"):
        store.runs.create(*_run("r2", ["i-2", "i-1"]))
    assert table_counts(store) == before
    store.runs.set_status("r1", Status.COMPLETED, finished=True)
    store.runs.create(*_run("r2", ["i-2", "i-1"]))


def test_busy_instances_conflict_and_leases_are_exclusive(store: Store) -> None:
    store.runs.create(*_run("r1", ["i-0", "i-1"]))
    before = table_counts(store)
    with pytest.raises(ConflictError, match="busy in run r1"):
        store.runs.create(*_run("r2", ["i-2", "i-1"]))
    assert table_counts(store) == before
    assert store.leases.acquire("r1", "a", 30, 1)
    assert not store.leases.acquire("r1", "b", 30, 2)
    store.runs.apply_updates("r1", [InstanceUpdate("i-0", status=Status.COMPLETED,
                                                   current_version="2.0", completed_at=NOW,
                                                   release={"version": "2.0"})])
    assert store.instances.get(["i-0"])["i-0"].version == "2.0"
    store.runs.set_status("r1", Status.FAILED, finished=True)
    assert store.leases.lock_holders(["i-0", "i-1"]) == {}
    summary = store.history.runs("svc", 10)[0]
    assert (summary.total, summary.completed, summary.status) == (2, 1, Status.FAILED)
    page, total = store.instances.page("svc", "", 2, 1)
    assert total == 3 and [p.instance_id for p in page] == ["i-1", "i-2"]


def test_a_run_id_is_taken_once(store: Store) -> None:
    store.runs.create(*_run("r1", ["i-0"]))
    before = table_counts(store)
    with pytest.raises(ConflictError, match="run r1 already exists"):
        store.runs.create(*_run("r1", ["i-1"]))
    assert table_counts(store) == before
    assert store.leases.lock_holders(IDS) == {"i-0": "r1"}


def test_a_run_reads_back_as_recorded(store: Store) -> None:
    assert store.runs.get("r1") is None and store.runs.with_members("r1") is None
    request = RunRequest(("i-2", "i-0", "i-1"), package_url="https://p/x.tgz",
                         package_sha256="cd" * 32, timeout=30, retry_count=2,
                         batch_size="50%", max_failures=1, auto_rollback=True)
    run, members = _run("r1", ["i-2", "i-0", "i-1"], request=request)
    store.runs.create(run, members)
    assert store.runs.get("r1") == run
    loaded = store.runs.with_members("r1")
    assert loaded is not None
    assert loaded[0] == run
    assert loaded[1] == members, "in run order (position), not by instance ID"
    assert store.leases.lock_holders(IDS) == dict.fromkeys(IDS, "r1")


def test_members_keep_their_rollback_package(store: Store) -> None:
    run, members = _run("r1", ["i-0"])
    members = [RunInstanceRecord("r1", "i-0", 0, 1, Status.PENDING, "1.0",
                                 package_url="https://p/x.tgz", package_sha256="ab" * 32)]
    store.runs.create(run, members)
    _loaded, got = store.runs.with_members("r1")  # type: ignore[misc]
    assert (got[0].package_url, got[0].package_sha256) == ("https://p/x.tgz", "ab" * 32)


def test_take_over_hands_locks_to_the_new_run(store: Store) -> None:
    store.runs.create(*_run("d1", ["i-0", "i-1"]))
    follow, members = _run("d1-rollback", ["i-0"])
    store.runs.create(follow, members, take_over_from="d1")
    assert store.leases.lock_holders(["i-0", "i-1"]) == {"i-0": "d1-rollback", "i-1": "d1"}
    assert store.runs.get("d1").rollback_run_id == "d1-rollback"  # type: ignore[union-attr]
    store.runs.set_status("d1", Status.FAILED, finished=True)
    assert store.leases.lock_holders(["i-0", "i-1"]) == {"i-0": "d1-rollback"}


def test_updates_move_versions_and_history(store: Store) -> None:
    store.runs.create(*_run("r1", ["i-0"]))
    store.runs.apply_updates("r1", [InstanceUpdate("i-0", status=Status.COMPLETED,
                                                   current_version="2.0", completed_at=NOW,
                                                   release={"version": "2.0", "package_url": "u",
                                                            "sha256": ""})])
    inst = store.instances.get(["i-0"])["i-0"]
    assert inst.version == "2.0" and inst.last_heartbeat is not None
    assert store.history.releases("i-0")[0]["version"] == "2.0"
    _run_record, members = store.runs.with_members("r1")  # type: ignore[misc]
    assert members[0].status is Status.COMPLETED and members[0].current_version == "2.0"


def test_finish_members_closes_only_the_statuses_named(store: Store) -> None:
    store.runs.create(*_run("r1", IDS))
    store.runs.apply_updates("r1", [
        InstanceUpdate("i-0", status=Status.COMPLETED, current_version="2.0", completed_at=NOW),
        InstanceUpdate("i-1", status=Status.IN_PROGRESS, phase="restart", started_at=NOW),
    ])
    closed = store.runs.finish_members("r1", Status.CANCELLED, "cancelled by request",
                                       only=(Status.PENDING, Status.IN_PROGRESS))
    assert closed == 2
    _run_record, members = store.runs.with_members("r1")  # type: ignore[misc]
    done, running, waiting = members
    assert (done.status, done.error_message, done.completed_at) == (Status.COMPLETED, "", NOW)
    for member in (running, waiting):
        assert member.status is Status.CANCELLED, member
        assert member.error_message == "cancelled by request" and member.completed_at, member
    assert running.phase == "restart", "what else the row says is kept"
    assert store.runs.finish_members("r1", Status.FAILED, "again",
                                     only=(Status.PENDING, Status.IN_PROGRESS)) == 0


def test_cancel_requests_are_recorded_once(store: Store) -> None:
    store.runs.create(*_run("r1", ["i-0"]))
    store.runs.create(*_run("r2", ["i-1"]))
    assert not store.runs.cancel_requested("r1")
    first = store.runs.request_cancel("r1")
    assert first.tzinfo is not None
    assert store.runs.cancel_requested("r1") and not store.runs.cancel_requested("r2")
    assert store.runs.request_cancel("r1") == first, "asked again: the first request stands"
    assert _got(store, "r1").cancel_requested_at == first
    assert _got(store, "r1").status is Status.PENDING, "a request, not the cancel itself"
    assert not store.runs.cancel_requested("nope")


def test_decisions_are_appended_fenced_and_read_back(store: Store) -> None:
    store.runs.create(*_run("r1", ["i-0", "i-1"],
                            request=RunRequest(("i-0", "i-1"), steps=("1", "pause", "1"))))
    store.runs.create(*_run("r2", ["i-2"]))
    assert store.leases.acquire("r1", "a", 30, 1)
    now = store.db.clock()
    store.decisions.record(DecisionRecord("r1", 1, DecisionKind.BATCH, "floy", now), owner="a")
    store.decisions.record(DecisionRecord("r1", 1, DecisionKind.PAUSED, "floy", now,
                                          "until promoted", {"until": None}), owner="a")
    with pytest.raises(StaleWriterError):  # a worker whose lease was taken writes nothing
        store.decisions.record(DecisionRecord("r1", 1, DecisionKind.CONTINUED, "floy", now),
                               owner="b")
    before = _got(store, "r1").updated_at
    store.decisions.promote(DecisionRecord("r1", 1, DecisionKind.PROMOTED, "token:alice",
                                           store.db.clock(), "promoted", {"full": True}),
                            "svc")
    got = store.decisions.of_run("r1")
    assert [(d.kind, d.actor) for d in got] == [
        (DecisionKind.BATCH, "floy"), (DecisionKind.PAUSED, "floy"),
        (DecisionKind.PROMOTED, "token:alice")]
    assert got[1].data == {"until": None} and got[2].data == {"full": True}
    assert _got(store, "r1").updated_at >= before  # a status cache sees the change
    assert store.decisions.of_run("r2") == []
    store.decisions.abort(DecisionRecord("r1", 1, DecisionKind.ABORTED, "bob",
                                         store.db.clock(), "aborted", {"rollback": True}),
                          "svc")
    assert store.runs.cancel_requested("r1") and not store.runs.cancel_requested("r2")
    assert [(a.action, a.actor) for a in store.actions.of_service("svc", 10)][:2] == [
        ("abort", "bob"), ("promote", "token:alice")]
    store.runs.set_status("r1", Status.CANCELLED, finished=True, owner="a")
    with pytest.raises(StaleWriterError):  # nothing is decided about a finished run
        store.decisions.promote(DecisionRecord("r1", 1, DecisionKind.PROMOTED, "x",
                                               store.db.clock()), "svc")


# -- leases ----------------------------------------------------------------------------------


def test_lease_is_exclusive_until_it_expires(store: Store) -> None:
    store.runs.create(*_run("r1", ["i-0"]))
    assert store.leases.acquire("r1", "a", 30, 1)
    assert not store.leases.acquire("r1", "b", 30, 2)
    assert store.leases.renew("r1", "a", 30)
    assert not store.leases.renew("r1", "b", 30)
    assert store.leases.acquire("r1", "a", -1, 1)  # expire it
    assert store.leases.acquire("r1", "b", 30, 2)


def test_release_hands_the_lease_back_unfinished(store: Store) -> None:
    store.runs.create(*_run("r1", ["i-0"]))
    assert store.leases.acquire("r1", "a", 30, 11)
    assert not store.leases.release("r1", "b"), "only the holder hands a lease back"
    held = _got(store, "r1")
    assert (held.lease_owner, held.worker_pid) == ("a", 11)
    assert not store.leases.acquire("r1", "b", 30, 12)
    assert store.leases.release("r1", "a")
    released = _got(store, "r1")
    assert (released.lease_owner, released.lease_expires_at, released.worker_pid) == (
        None, None, None)
    assert (released.status, released.finished_at) == (Status.PENDING, None), "unfinished"
    assert store.leases.lock_holders(["i-0"]) == {"i-0": "r1"}, "the run keeps its instances"
    assert not store.leases.release("r1", "a"), "nothing left to hand back"
    assert not store.leases.renew("r1", "a", 30), "a no longer holds it"
    assert store.leases.acquire("r1", "b", 30, 12), "claimable at once: no expiry to wait for"
    assert _got(store, "r1").lease_owner == "b"
    store.runs.set_status("r1", Status.COMPLETED, finished=True)
    assert not store.leases.release("r1", "b"), "a finished run holds no lease"


def test_a_run_taken_over_refuses_its_old_holder_and_a_finished_run_refuses_all(
        store: Store) -> None:
    """The fence between a worker whose lease lapsed in a database outage and the reaper
    that took its run over: the old holder's writes are refused, whole, once the lease
    changed hands; after the run finished no write changes it."""
    store.runs.create(*_run("r1", ["i-0", "i-1"]))
    assert store.leases.acquire("r1", "slow", -1, 1)  # its renewals failed: expired
    assert store.leases.acquire("r1", "reaper", 30, 2)
    before = store.runs.with_members("r1")
    done = InstanceUpdate("i-0", status=Status.COMPLETED, current_version="2.0",
                          completed_at=NOW, release={"package_url": "", "sha256": ""})
    refused = [
        lambda: store.runs.set_status("r1", Status.IN_PROGRESS, owner="slow"),
        lambda: store.runs.apply_updates("r1", [done], owner="slow"),
        lambda: store.runs.finish_members("r1", Status.FAILED, "x", (Status.PENDING,),
                                          owner="slow"),
        lambda: store.runs.set_status("r1", Status.COMPLETED, finished=True, owner="slow"),
        lambda: store.runs.create(*_run("r1-rollback", ["i-0"]), take_over_from="r1",
                                  owner="slow"),
    ]
    for write in refused:
        with pytest.raises(StaleWriterError, match="r1: its lease is held by reaper, not slow"):
            write()
    assert store.runs.with_members("r1") == before, "nothing of a refused write went in"
    assert store.runs.get("r1-rollback") is None
    assert store.instances.get(["i-0"])["i-0"].version != "2.0", "nor into the registry"
    assert store.history.completed_release("i-0", "2.0") is None

    assert store.runs.finish_members("r1", Status.FAILED, "lost", (Status.PENDING,),
                                     owner="reaper") == 2
    store.runs.set_status("r1", Status.FAILED, finished=True, owner="reaper")
    finished = store.runs.with_members("r1")
    for write in [
        *refused[1:3],
        lambda: store.runs.set_status("r1", Status.COMPLETED, finished=True),
        lambda: store.runs.apply_updates("r1", [done]),
    ]:
        with pytest.raises(StaleWriterError, match="r1: it finished already"):
            write()
    assert store.runs.with_members("r1") == finished, "a finished run never changes"


def test_claims_take_queued_runs_oldest_first_and_never_twice(store: Store) -> None:
    store.instances.add([InstanceSpec(f"x-{n}", "svc", "127.0.0.1", 9100 + n, {})
                         for n in range(5)])
    for n in range(5):
        store.runs.create(*_run(f"q{n}", [f"x-{n}"], at=NOW + timedelta(seconds=10 - n)))
    assert store.leases.acquire("q0", "per-run", 30, 1), "a run taken by its ID is not queued"
    store.runs.set_status("q1", Status.FAILED, finished=True)
    assert store.leases.claim("a", 30, 11, limit=2) == ["q4", "q3"], "oldest first"
    assert store.leases.claim("b", 30, 12, limit=5) == ["q2"]
    assert store.leases.claim("b", 30, 12, limit=5) == []
    assert store.leases.claim("b", 30, 12, limit=0) == []
    assert (_got(store, "q4").lease_owner, _got(store, "q4").worker_pid) == ("a", 11)
    assert store.leases.renew("q4", "a", 30) and not store.leases.renew("q4", "b", 30)
    assert store.leases.release("q4", "a")
    assert store.leases.claim("b", 30, 12, limit=5) == ["q4"], "handed back: queued again"


def test_concurrent_claimers_share_the_queue_without_overlap(store: Store) -> None:
    """Four claimers in threads race for 40 queued runs (on PostgreSQL: SKIP LOCKED)."""
    import threading

    store.instances.add([InstanceSpec(f"x-{n}", "svc", "127.0.0.1", 9100 + n, {})
                         for n in range(40)])
    for n in range(40):
        store.runs.create(*_run(f"c{n:02}", [f"x-{n}"], at=NOW + timedelta(seconds=n)))
    got: dict[str, list[str]] = {}

    def claimer(name: str) -> None:
        mine: list[str] = []
        while batch := store.leases.claim(name, 30, 1, limit=3):
            mine.extend(batch)
        got[name] = mine

    threads = [threading.Thread(target=claimer, args=(f"w{n}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    claimed = [r for mine in got.values() for r in mine]
    assert sorted(claimed) == [f"c{n:02}" for n in range(40)], "each run claimed exactly once"
    for name, mine in got.items():
        assert all(_got(store, r).lease_owner == name for r in mine)


def test_worker_daemons_register_beat_and_stop(clocked: Store, clock: FixedClock) -> None:
    from orchestrator.domain.records import WorkerState

    clocked.workers.register("m1:10:aa", "m1", 10, 4)
    clocked.workers.register("m2:20:bb", "m2", 20, 2)
    assert [w.name for w in clocked.workers.live(30)] == ["m1:10:aa", "m2:20:bb"]
    clock.advance(20)
    clocked.workers.beat("m2:20:bb", 2, WorkerState.DRAINING)
    clock.advance(20)
    live = clocked.workers.live(30)
    assert [(w.name, w.running, w.state) for w in live] == [
        ("m2:20:bb", 2, WorkerState.DRAINING)], "m1 stopped beating 40 s ago"
    clocked.workers.beat("m2:20:bb", 0, WorkerState.STOPPED)
    assert clocked.workers.live(30) == []
    rows = clocked.workers.all()
    assert [w.name for w in rows] == ["m2:20:bb", "m1:10:aa"], "the latest beat first"
    assert rows[0].stopped_at == clock.now and rows[1].heartbeat_at == T0
    clocked.workers.register("m1:10:aa", "m1", 10, 8)  # restarted under the same name
    again = clocked.workers.all()[0]
    assert (again.name, again.max_runs, again.state, again.started_at) == (
        "m1:10:aa", 8, WorkerState.RUNNING, clock.now)


def test_stale_runs_are_found_by_expired_lease(store: Store) -> None:
    run, members = _run("r1", ["i-0"])
    store.runs.create(dataclasses.replace(run, created_at=utcnow(), updated_at=utcnow()), members)
    assert store.leases.stale(pending_grace=3600) == []
    assert [r.run_id for r in store.leases.stale(pending_grace=-1)] == ["r1"]  # never claimed
    store.leases.acquire("r1", "w", 30, 1)
    assert store.leases.stale(pending_grace=-1) == []
    store.leases.acquire("r1", "w", -5, 1)  # the worker stopped renewing
    assert [r.run_id for r in store.leases.stale(pending_grace=3600)] == ["r1"]


# -- the injected clock ------------------------------------------------------------------------


def test_lease_expiry_follows_the_clock(clocked: Store, clock: FixedClock) -> None:
    clocked.runs.create(*_run("r1", ["i-0"], at=T0))
    assert clocked.leases.acquire("r1", "a", 30, 1)
    assert _got(clocked, "r1").lease_expires_at == T0 + timedelta(seconds=30)
    clock.advance(29)
    assert not clocked.leases.acquire("r1", "b", 30, 2), "29 s into a 30 s lease"
    assert clocked.leases.renew("r1", "a", 30)
    assert _got(clocked, "r1").lease_expires_at == T0 + timedelta(seconds=59)
    clock.advance(29)
    assert not clocked.leases.acquire("r1", "b", 30, 2), "renewed: 1 s left"
    clock.advance(2)
    assert clocked.leases.acquire("r1", "b", 30, 2), "expired 1 s ago"
    taken = _got(clocked, "r1")
    assert (taken.lease_owner, taken.worker_pid) == ("b", 2)
    assert taken.lease_expires_at == T0 + timedelta(seconds=90)
    assert not clocked.leases.renew("r1", "a", 30), "a lost it"


def test_stale_runs_follow_the_clock(clocked: Store, clock: FixedClock) -> None:
    clocked.runs.create(*_run("r1", ["i-0"], at=T0))
    clocked.runs.create(*_run("r2", ["i-1"], at=T0))
    assert clocked.leases.acquire("r2", "w2", 3600, 2)  # carried all along
    clock.advance(59)
    assert clocked.leases.stale(pending_grace=60) == []
    clock.advance(2)
    assert [r.run_id for r in clocked.leases.stale(pending_grace=60)] == ["r1"], (
        "not claimed within the grace")
    assert [r.run_id for r in clocked.leases.stale(60, run_ids=["r1", "r2"])] == ["r1"]
    assert clocked.leases.stale(pending_grace=60, run_ids=["r2"]) == []
    assert clocked.leases.acquire("r1", "w", 30, 7)  # claimed at T0+61: expires at T0+91
    assert clocked.leases.stale(pending_grace=60) == []
    clock.advance(29)
    assert clocked.leases.stale(pending_grace=60) == []
    clock.advance(2)
    (stale,) = clocked.leases.stale(pending_grace=60)
    assert stale.run_id == "r1", "its worker stopped renewing"
    assert stale.is_stale(clock(), 60), "the sweep and the record's own test agree"
    assert not _got(clocked, "r2").is_stale(clock(), 60)
    clocked.runs.set_status("r1", Status.FAILED, finished=True)
    assert clocked.leases.stale(pending_grace=60) == [], "a finished run is never stale"


def test_every_time_the_store_writes_comes_from_its_clock(clocked: Store,
                                                           clock: FixedClock) -> None:
    clocked.runs.create(*_run("r1", ["i-0", "i-1"], at=T0))
    at = clock.advance(10)
    clocked.runs.apply_updates("r1", [InstanceUpdate(
        "i-0", status=Status.COMPLETED, current_version="2.0", completed_at=at,
        release={"version": "2.0", "package_url": "u", "sha256": ""})])
    inst = clocked.instances.get(["i-0"])["i-0"]
    assert (inst.version_updated_at, inst.last_heartbeat, inst.observed_at) == (at, at, at)
    assert clocked.history.releases("i-0")[0]["deployed_at"] == format_time(at)
    assert _got(clocked, "r1").updated_at == at
    asked = clock.advance(10)
    assert clocked.runs.request_cancel("r1") == asked
    clock.advance(5)
    assert clocked.runs.request_cancel("r1") == asked
    closed_at = clock.advance(5)
    assert clocked.runs.finish_members("r1", Status.CANCELLED, "cancelled",
                                       only=(Status.PENDING,)) == 1
    _run_record, members = clocked.runs.with_members("r1")  # type: ignore[misc]
    assert members[1].completed_at == closed_at
    finished_at = clock.advance(5)
    clocked.runs.set_status("r1", Status.CANCELLED, finished=True)
    run = _got(clocked, "r1")
    assert (run.updated_at, run.finished_at, run.cancel_requested_at) == (
        finished_at, finished_at, asked)
    seen = clock.advance(60)
    clocked.instances.record_observations({"i-1": "1.0"}, authoritative=False)
    probed = clocked.instances.get(["i-1"])["i-1"]
    assert (probed.observed_at, probed.last_heartbeat) == (seen, seen)
    versions = {v.instance_id: v for v in clocked.views.service_versions("svc")}
    assert versions["i-0"].last_updated == format_time(T0 + timedelta(seconds=10))
    assert versions["i-1"].last_updated == format_time(seen), "no version yet: the heartbeat"


# -- history and views -----------------------------------------------------------------------


def test_history_of_releases_and_runs(store: Store) -> None:
    release = {"version": "2.0", "package_url": "https://p/2.tgz", "sha256": "ef" * 32}
    store.runs.create(*_run("r1", ["i-0", "i-1"], at=NOW))
    store.runs.apply_updates("r1", [
        InstanceUpdate("i-0", status=Status.COMPLETED, current_version="2.0", completed_at=NOW,
                       release=release),
        InstanceUpdate("i-1", status=Status.FAILED, error_message="unhealthy"),
    ])
    store.runs.set_status("r1", Status.FAILED, error_message="1 failed", finished=True)
    entry = store.history.completed_release("i-0", "2.0")
    assert entry is not None
    assert {k: entry[k] for k in ("version", "package_url", "sha256", "run_id")} == {
        **release, "run_id": "r1"}
    assert store.history.completed_release("i-0", "9.9") is None
    assert store.history.releases("i-1") == [], "a failed release is no history"
    # the same version completed again: one entry, the newer one
    store.runs.create(*_run("r2", ["i-0"], at=NOW + timedelta(minutes=1)))
    store.runs.apply_updates("r2", [InstanceUpdate("i-0", status=Status.COMPLETED,
                                                   current_version="2.0", release=release)])
    assert [(e["version"], e["run_id"]) for e in store.history.releases("i-0")] == [
        ("2.0", "r2")]
    first, second = store.history.runs("svc", 10)
    assert (first.run_id, second.run_id) == ("r2", "r1"), "newest first"
    assert (second.total, second.completed, second.failed, second.cancelled) == (2, 1, 1, 0)
    assert (second.status, second.error_message, second.started_at) == (
        Status.FAILED, "1 failed", NOW)
    assert second.finished_at is not None and first.finished_at is None
    assert [s.run_id for s in store.history.runs("svc", 1)] == ["r2"]
    assert store.history.runs("other", 10) == []


def test_version_changes_are_completed_releases_newest_first(store: Store) -> None:
    def release(run_id: str, at: datetime, ids: list[str], before: str, after: str,
                status: Status = Status.COMPLETED) -> None:
        store.runs.create(*_run(run_id, ids, at=at))
        store.runs.apply_updates(run_id, [
            InstanceUpdate(i, status=status, previous_version=before, current_version=after,
                           completed_at=at) for i in ids])
        store.runs.set_status(run_id, status, finished=True)

    release("v1", NOW, ["i-0", "i-1"], "", "1.0")
    release("v2", NOW + timedelta(minutes=2), ["i-0"], "1.0", "2.0")
    release("v3", NOW + timedelta(minutes=1), ["i-1"], "1.0", "1.5")
    release("v4", NOW + timedelta(minutes=3), ["i-0"], "2.0", "3.0", Status.FAILED)
    release("v5", NOW + timedelta(minutes=4), ["i-0"], "2.0", "2.0")
    got = store.history.version_changes(["i-0", "i-1", "i-2"])
    assert [(c.run_id, c.previous_version, c.current_version) for c in got["i-0"]] == [
        ("v5", "2.0", "2.0"), ("v2", "1.0", "2.0"), ("v1", "", "1.0")], "no failed release"
    assert [c.run_id for c in got["i-1"]] == ["v3", "v1"]
    assert got["i-2"] == []
    assert [c.run_id for c in store.history.version_changes(["i-0"], 2)["i-0"]] == ["v5", "v2"]


def test_views_of_a_run_and_of_a_service(store: Store) -> None:
    assert store.views.run_status("r1") is None
    assert [tuple(v) for v in store.views.service_versions("svc")] == [
        (i, "", None) for i in IDS]
    store.runs.create(*_run("r1", ["i-1", "i-0"]))
    store.runs.apply_updates("r1", [InstanceUpdate(
        "i-1", status=Status.COMPLETED, phase="done", attempts=1, previous_version="1.0",
        current_version="2.0", started_at=NOW, completed_at=NOW + timedelta(seconds=5))])
    loaded = store.views.run_status("r1")
    assert loaded is not None
    run, rows = loaded
    assert run == _got(store, "r1")
    assert [r.instance_id for r in rows] == ["i-1", "i-0"], "in run order"
    done, waiting = rows
    assert (done.status, done.phase, done.attempts, done.batch) == ("completed", "done", 1, 1)
    assert (done.previous_version, done.current_version, done.target_version) == (
        "1.0", "2.0", "2.0")
    assert (done.started_at, done.completed_at) == (
        format_time(NOW), format_time(NOW + timedelta(seconds=5)))
    assert (waiting.status, waiting.started_at, waiting.batch) == ("pending", None, 2)
    versions = store.views.service_versions("svc")
    assert [(v.instance_id, v.version) for v in versions] == [
        ("i-0", ""), ("i-1", "2.0"), ("i-2", "")]
    assert versions[1].last_updated == format_time(
        store.instances.get(["i-1"])["i-1"].version_updated_at)  # type: ignore[arg-type]
    assert store.views.service_versions("nope") == []
