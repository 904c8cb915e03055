"""The store over a real SQLite file: what only SQLite has (owner-only files, WAL, an
unwritable directory, migrations from floy 0.1, damaged files and rows). The contract both
backends keep (registry, runs, locks, leases, history, views, the injected clock) runs on
SQLite and PostgreSQL in tests/integration/test_store_contract.py."""

from __future__ import annotations

import pickle
import sqlite3
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest

from orchestrator.domain.records import RunInstanceRecord, RunRecord
from orchestrator.domain.request import RunRequest
from orchestrator.errors import ConfigError, ExitCode, StoreDataError
from orchestrator.models import InstanceSpec, Status
from orchestrator.store import Store

NOW = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store.open(f"sqlite:///{tmp_path / 'data' / 'floy.db'}")
    s.instances.add([InstanceSpec(f"i-{n}", "svc", "127.0.0.1", 9000 + n, {}) for n in range(3)])
    return s


def _run(run_id: str, ids: list[str]) -> tuple[RunRecord, list[RunInstanceRecord]]:
    run = RunRecord(run_id, "deploy", "svc", "2.0", Status.PENDING, RunRequest(tuple(ids)), "t",
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
    assert store.instances.get(["i-1"])["i-1"].observed_version is None
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT version FROM floy_schema").fetchone()[0] == 6
        cols = {r[1] for r in conn.execute("PRAGMA table_info(run_instances)")}
        assert {"package_url", "package_sha256"} <= cols
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
        assert {"workers", "ix_runs_queue"} <= tables, "version 4: the daemons and the queue"


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
    assert str(err.value) == "database schema version 99 is newer than this floy (6)"


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
    for read in (lambda: store.instances.get(["i-1"]), lambda: store.instances.of_service("svc"),
                 lambda: store.instances.page("svc", "", 10, 0)):
        with pytest.raises(StoreDataError) as err:
            read()
        assert str(err.value) == (
            f"the database is damaged: table instances, row 'i-1', column metadata_json: "
            f"{problem}; fix that row, or restore the database from a backup")
    assert store.instances.get(["i-0", "i-2"]).keys() == {"i-0", "i-2"}


def test_malformed_run_rows_name_their_table_and_key(tmp_path: Path, store: Store) -> None:
    store.runs.create(*_run("r1", ["i-0"]))
    _corrupt(tmp_path, "UPDATE run_instances SET started_at = 'soon' WHERE run_id = 'r1'")
    with pytest.raises(StoreDataError) as err:
        store.runs.with_members("r1")
    assert (err.value.table, err.value.key, err.value.column) == (
        "run_instances", "r1/i-0", "started_at")
    assert store.runs.get("r1") is not None
    _corrupt(tmp_path, "UPDATE runs SET status = 'lost' WHERE run_id = 'r1'")
    for read in (lambda: store.runs.get("r1"), lambda: store.history.runs("svc", 10)):
        with pytest.raises(StoreDataError, match="table runs, row 'r1', column status: 'lost' "
                           "is not a status"):
            read()
    _corrupt(tmp_path, "UPDATE runs SET status = 'pending', updated_at = ''")
    with pytest.raises(StoreDataError, match="column updated_at: '' is not an RFC 3339 time"):
        store.runs.get("r1")


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
