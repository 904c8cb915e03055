"""The store over a real SQLite file."""

from __future__ import annotations

import pickle
import sqlite3
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest

from orchestrator.errors import ConfigError, ConflictError, ExitCode, StoreDataError
from orchestrator.events import InstanceUpdate
from orchestrator.models import InstanceSpec, Status
from orchestrator.store import RunInstanceRecord, RunRecord, Store

NOW = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store.open(f"sqlite:///{tmp_path / 'data' / 'floy.db'}")
    s.add_instances([InstanceSpec(f"i-{n}", "svc", "127.0.0.1", 9000 + n, {}) for n in range(3)])
    return s


def _run(run_id: str, ids: list[str]) -> tuple[RunRecord, list[RunInstanceRecord]]:
    run = RunRecord(run_id, "deploy", "svc", "2.0", Status.PENDING, {"instances": ids}, "t",
                    NOW, NOW)
    members = [RunInstanceRecord(run_id, i, n, n + 1, Status.PENDING, "2.0")
               for n, i in enumerate(ids)]
    return run, members


def test_files_are_owner_only_and_wal(tmp_path: Path, store: Store) -> None:
    db = tmp_path / "data" / "floy.db"
    assert stat.S_IMODE(db.stat().st_mode) == 0o600
    assert stat.S_IMODE(db.parent.stat().st_mode) == 0o700
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_reopen_keeps_data_and_schema(tmp_path: Path, store: Store) -> None:
    again = Store.open(f"sqlite:///{tmp_path / 'data' / 'floy.db'}")
    assert again.counts()["instances"] == 3


def test_busy_instance_is_a_conflict_and_nothing_is_stored(store: Store) -> None:
    store.create_run(*_run("r1", ["i-0", "i-1"]))
    before = store.counts()
    with pytest.raises(ConflictError, match="i-1 is busy in run r1"):
        store.create_run(*_run("r2", ["i-2", "i-1"]))
    assert store.counts() == before
    store.set_run_status("r1", Status.COMPLETED, finished=True)
    store.create_run(*_run("r2", ["i-2", "i-1"]))


def test_duplicate_registration_conflicts_unless_replaced(store: Store) -> None:
    with pytest.raises(ConflictError):
        store.add_instances([InstanceSpec("i-0", "svc", "127.0.0.2", 1, {})])
    store.add_instances([InstanceSpec("i-0", "svc", "127.0.0.2", 1, {"a": "b"})], replace=True)
    assert store.get_instances(["i-0"])["i-0"].host == "127.0.0.2"
    with pytest.raises(ConflictError, match="belongs to service svc"):
        store.add_instances([InstanceSpec("i-0", "other", "h", 1, {})], replace=True)


def test_updates_move_versions_and_history(store: Store) -> None:
    store.create_run(*_run("r1", ["i-0"]))
    store.apply_updates("r1", [InstanceUpdate("i-0", status=Status.COMPLETED,
                                              current_version="2.0", completed_at=NOW,
                                              release={"version": "2.0", "package_url": "u",
                                                       "sha256": ""})])
    inst = store.get_instances(["i-0"])["i-0"]
    assert inst.version == "2.0" and inst.last_heartbeat is not None
    assert store.release_history("i-0")[0]["version"] == "2.0"
    _run_record, members = store.get_run_with_members("r1")  # type: ignore[misc]
    assert members[0].status is Status.COMPLETED and members[0].current_version == "2.0"


def test_lease_is_exclusive_until_it_expires(store: Store) -> None:
    store.create_run(*_run("r1", ["i-0"]))
    assert store.acquire_lease("r1", "a", 30, 1)
    assert not store.acquire_lease("r1", "b", 30, 2)
    assert store.renew_lease("r1", "a", 30)
    assert not store.renew_lease("r1", "b", 30)
    assert store.acquire_lease("r1", "a", -1, 1)  # expire it
    assert store.acquire_lease("r1", "b", 30, 2)


def test_paging_and_version_filter(store: Store) -> None:
    page, total = store.query_instances("svc", "", 2, 1)
    assert total == 3 and [p.instance_id for p in page] == ["i-1", "i-2"]
    assert store.query_instances("svc", "9.9", 10, 0) == ([], 0)


def test_unwritable_directory_is_a_clear_config_error(tmp_path: Path) -> None:
    locked = tmp_path / "ro"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if Path(locked / "probe").parent.stat().st_uid == 0 and _is_root():
            pytest.skip("root ignores directory permissions")
        with pytest.raises(ConfigError, match="not writable"):
            Store.open(f"sqlite:///{locked / 'floy.db'}")
    finally:
        locked.chmod(0o700)


def _is_root() -> bool:
    import os

    return os.geteuid() == 0


# The tables floy 0.1 created (schema version 1), without run_instances and instances.
V1_OTHER_TABLES = (
    "CREATE TABLE runs (run_id VARCHAR(128) PRIMARY KEY, kind VARCHAR(16) NOT NULL,"
    " service VARCHAR(128) NOT NULL, version VARCHAR(128) NOT NULL, status VARCHAR(16)"
    " NOT NULL, params_json TEXT NOT NULL, created_by VARCHAR(256) DEFAULT '' NOT NULL,"
    " created_at VARCHAR(32) NOT NULL, updated_at VARCHAR(32) NOT NULL, finished_at"
    " VARCHAR(32), error_message TEXT DEFAULT '' NOT NULL, cancel_requested_at VARCHAR(32),"
    " lease_owner VARCHAR(128), lease_expires_at VARCHAR(32), worker_pid INTEGER,"
    " parent_run_id VARCHAR(128), rollback_run_id VARCHAR(128));"
    "CREATE TABLE instance_locks (instance_id VARCHAR(128) PRIMARY KEY, run_id VARCHAR(128)"
    " NOT NULL, locked_at VARCHAR(32) NOT NULL);"
    "CREATE TABLE releases (instance_id VARCHAR(128), version VARCHAR(128), package_url TEXT"
    " DEFAULT '' NOT NULL, sha256 VARCHAR(64) DEFAULT '' NOT NULL, run_id VARCHAR(128) NOT"
    " NULL, deployed_at VARCHAR(32) NOT NULL, PRIMARY KEY (instance_id, version));"
)


def test_a_version_1_database_is_migrated(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    with sqlite3.connect(db) as conn:  # the tables as floy 0.1 created them
        conn.executescript(
            V1_OTHER_TABLES +
            "CREATE TABLE floy_schema (id INTEGER PRIMARY KEY, version INTEGER NOT NULL);"
            "INSERT INTO floy_schema VALUES (1, 1);"
            "CREATE TABLE instances (instance_id VARCHAR(128) PRIMARY KEY, service VARCHAR(128)"
            " NOT NULL, host VARCHAR(253) NOT NULL, port INTEGER NOT NULL, version VARCHAR(128)"
            " DEFAULT '' NOT NULL, version_updated_at VARCHAR(32), last_heartbeat VARCHAR(32),"
            " metadata_json TEXT DEFAULT '{}' NOT NULL, created_at VARCHAR(32) NOT NULL);"
            "INSERT INTO instances (instance_id, service, host, port, created_at) VALUES"
            " ('i-1', 'svc', 'h', 1, '2026-01-01T00:00:00.000000Z');"
            "CREATE TABLE run_instances (run_id VARCHAR(128), instance_id VARCHAR(128),"
            " position INTEGER NOT NULL, batch INTEGER NOT NULL, status VARCHAR(16) NOT NULL,"
            " phase VARCHAR(32) DEFAULT '' NOT NULL, previous_version VARCHAR(128) DEFAULT ''"
            " NOT NULL, current_version VARCHAR(128) DEFAULT '' NOT NULL, target_version"
            " VARCHAR(128) NOT NULL, attempts INTEGER DEFAULT '0' NOT NULL, started_at"
            " VARCHAR(32), completed_at VARCHAR(32), error_message TEXT DEFAULT '' NOT NULL,"
            " PRIMARY KEY (run_id, instance_id));"
        )
    store = Store.open(f"sqlite:///{db}")
    assert store.get_instances(["i-1"])["i-1"].observed_version is None
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT version FROM floy_schema").fetchone()[0] == 3
        cols = {r[1] for r in conn.execute("PRAGMA table_info(run_instances)")}
        assert {"package_url", "package_sha256"} <= cols


def test_members_keep_their_rollback_package(store: Store) -> None:
    run, members = _run("r1", ["i-0"])
    members = [RunInstanceRecord("r1", "i-0", 0, 1, Status.PENDING, "1.0",
                                 package_url="https://p/x.tgz", package_sha256="ab" * 32)]
    store.create_run(run, members)
    _loaded, got = store.get_run_with_members("r1")  # type: ignore[misc]
    assert (got[0].package_url, got[0].package_sha256) == ("https://p/x.tgz", "ab" * 32)


def test_take_over_hands_locks_to_the_new_run(store: Store) -> None:
    store.create_run(*_run("d1", ["i-0", "i-1"]))
    follow, members = _run("d1-rollback", ["i-0"])
    store.create_run(follow, members, take_over_from="d1")
    assert store.busy_runs(["i-0", "i-1"]) == {"i-0": "d1-rollback", "i-1": "d1"}
    assert store.get_run("d1").rollback_run_id == "d1-rollback"  # type: ignore[union-attr]
    store.set_run_status("d1", Status.FAILED, finished=True)
    assert store.busy_runs(["i-0", "i-1"]) == {"i-0": "d1-rollback"}


def test_stale_runs_are_found_by_expired_lease(store: Store) -> None:
    import dataclasses

    from orchestrator.timefmt import utcnow

    run, members = _run("r1", ["i-0"])
    store.create_run(dataclasses.replace(run, created_at=utcnow()), members)
    assert store.stale_runs(pending_grace=3600) == []
    assert [r.run_id for r in store.stale_runs(pending_grace=-1)] == ["r1"]  # never claimed
    store.acquire_lease("r1", "w", 30, 1)
    assert store.stale_runs(pending_grace=-1) == []
    store.acquire_lease("r1", "w", -5, 1)  # the worker stopped renewing
    assert [r.run_id for r in store.stale_runs(pending_grace=3600)] == ["r1"]


def test_a_version_1_database_lacking_a_table_is_refused_before_migrating(
    tmp_path: Path,
) -> None:
    db = tmp_path / "old.db"
    with sqlite3.connect(db) as conn:
        conn.executescript(V1_OTHER_TABLES + "CREATE TABLE floy_schema (id INTEGER PRIMARY KEY,"
                           " version INTEGER NOT NULL); INSERT INTO floy_schema VALUES (1, 1);")
    with pytest.raises(StoreDataError) as err:
        Store.open(f"sqlite:///{db}")
    assert (err.value.table, err.value.database) == ("instances", str(db))
    assert str(err.value) == (
        f"the database {db} is damaged: table instances: missing from a database at schema "
        "version 1, and so are run_instances; restore the database from a backup")
    with sqlite3.connect(db) as conn:  # nothing migrated, nothing created
        assert conn.execute("SELECT version FROM floy_schema").fetchone()[0] == 1


def test_an_unusable_url_is_a_config_error() -> None:
    for url, needle in (("not a url", "db_url is not a database URL"),
                        ("mysql+nosuch://x", r"unknown database driver 'mysql\+nosuch'")):
        with pytest.raises(ConfigError, match=needle):
            Store.open(url)


def test_a_newer_schema_is_a_config_error(tmp_path: Path, store: Store) -> None:
    db = tmp_path / "data" / "floy.db"
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE floy_schema SET version = 99")
    with pytest.raises(ConfigError) as err:
        Store.open(f"sqlite:///{db}")
    assert type(err.value) is ConfigError
    assert str(err.value) == "database schema version 99 is newer than this floy (3)"


@pytest.mark.parametrize("version", ["'three'", "2.5", "-2", "x'00'"])
def test_a_schema_version_that_is_not_a_number(tmp_path: Path, store: Store,
                                               version: str) -> None:
    db = tmp_path / "data" / "floy.db"
    with sqlite3.connect(db) as conn:
        conn.execute(f"UPDATE floy_schema SET version = {version}")
    with pytest.raises(StoreDataError) as err:
        Store.open(f"sqlite:///{db}")
    assert (err.value.table, err.value.column, err.value.key) == ("floy_schema", "version", "")
    assert str(err.value).endswith("is not a schema version number; restore the database "
                                   "from a backup")


def _corrupt(tmp_path: Path, statement: str) -> None:
    with sqlite3.connect(tmp_path / "data" / "floy.db") as conn:
        conn.execute(statement)


@pytest.mark.parametrize(("value", "problem"), [
    ("'{'", "not valid JSON (Expecting property name enclosed in double quotes: line 1 "
            "column 2 (char 1))"),
    ("'[]'", "holds a JSON array, not a JSON object"),
    ("'7'", "holds a number, not a JSON object"),
    ("'{\"a\": null}'", "the value of 'a' is not a string"),
])
def test_malformed_metadata_names_table_row_and_column(tmp_path: Path, store: Store,
                                                       value: str, problem: str) -> None:
    _corrupt(tmp_path, f"UPDATE instances SET metadata_json = {value} WHERE instance_id = 'i-1'")
    for read in (lambda: store.get_instances(["i-1"]), lambda: store.service_instances("svc"),
                 lambda: store.query_instances("svc", "", 10, 0)):
        with pytest.raises(StoreDataError) as err:
            read()
        assert str(err.value) == (
            f"the database is damaged: table instances, row 'i-1', column metadata_json: "
            f"{problem}; fix that row, or restore the database from a backup")
    assert store.get_instances(["i-0", "i-2"]).keys() == {"i-0", "i-2"}


def test_malformed_run_rows_name_their_table_and_key(tmp_path: Path, store: Store) -> None:
    store.create_run(*_run("r1", ["i-0"]))
    _corrupt(tmp_path, "UPDATE run_instances SET started_at = 'soon' WHERE run_id = 'r1'")
    with pytest.raises(StoreDataError) as err:
        store.get_run_with_members("r1")
    assert (err.value.table, err.value.key, err.value.column) == (
        "run_instances", "r1/i-0", "started_at")
    assert store.get_run("r1") is not None
    _corrupt(tmp_path, "UPDATE runs SET status = 'lost' WHERE run_id = 'r1'")
    for read in (lambda: store.get_run("r1"), lambda: store.run_summaries("svc", 10)):
        with pytest.raises(StoreDataError, match="table runs, row 'r1', column status: 'lost' "
                           "is not a status"):
            read()
    _corrupt(tmp_path, "UPDATE runs SET status = 'pending', updated_at = ''")
    with pytest.raises(StoreDataError, match="column updated_at: '' is not an RFC 3339 time"):
        store.get_run("r1")


def test_store_data_error_fields_and_json() -> None:
    err = StoreDataError("instances", "not valid JSON", key="i-1", column="metadata_json")
    assert isinstance(err, ConfigError) and err.exit_code is ExitCode.CONFIG
    assert err.to_dict() == {
        "error": "store_data",
        "message": str(err),
        "table": "instances",
        "key": "i-1",
        "column": "metadata_json",
    }
    located = StoreDataError("runs", "missing").located("/srv/floy.db")
    assert str(located) == ("the database /srv/floy.db is damaged: table runs: missing; "
                            "restore the database from a backup")
    assert located.to_dict() == {"error": "store_data", "message": str(located),
                                 "table": "runs"}
    for error in (err, located):  # errors cross process boundaries from workers
        copy = pickle.loads(pickle.dumps(error))
        assert type(copy) is StoreDataError and copy.to_dict() == error.to_dict()
