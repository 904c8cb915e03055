"""Store faults: a worker killed mid-write never corrupts the database, and an unusable
data directory or database file is a clear configuration error (exit 6), never a traceback;
so is a damaged database (a bad schema version, a missing table, a malformed row), which is
named down to the table and row with what to do about it.

As root, directory permissions do not apply, so unwritable places are made with a regular
file where a directory should be and with read-only tmpfs mounts.
"""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.domain.records import RunInstanceRecord, RunRecord
from orchestrator.domain.request import RunRequest
from orchestrator.errors import ConfigError, StoreDataError
from orchestrator.models import InstanceSpec, Status
from orchestrator.store import Store, schema
from orchestrator.timefmt import utcnow
from tests.helpers.store import table_counts

pytestmark = pytest.mark.integration
FLOY = str(Path(sys.executable).with_name("floy"))
REPO = Path(__file__).resolve().parents[2]
KILLS = 5

WRITER = textwrap.dedent("""
    import sys
    from orchestrator.domain.events import InstanceUpdate
    from orchestrator.models import Status
    from orchestrator.store import Store
    from orchestrator.timefmt import utcnow

    store = Store.open(sys.argv[1])
    ids = [f"w-{n}" for n in range(8)]
    i = 0
    while True:
        i += 1
        now = utcnow()
        store.runs.apply_updates("w-run", [
            InstanceUpdate(instance_id, status=Status.IN_PROGRESS, phase=f"step {i}",
                           attempts=i, current_version=f"{i}.0.{n}",
                           error_message="x" * (i % 512), started_at=now,
                           release={"version": f"{i % 50}.0.0",
                                    "package_url": f"https://127.0.0.1/p-{i}.tgz",
                                    "sha256": ""})
            for n, instance_id in enumerate(ids)
        ])
        if i == 1:
            print("writing", flush=True)
""")


def seed(url: str) -> None:
    store = Store.open(url)
    ids = [f"w-{n}" for n in range(8)]
    store.instances.add([InstanceSpec(i, "w", "127.0.0.1", 8000 + n, {})
                         for n, i in enumerate(ids)])
    now = utcnow()
    run = RunRecord("w-run", "deploy", "w", "1.0.0", Status.IN_PROGRESS,
                    RunRequest(tuple(ids)), "test", now, now)
    store.runs.create(run, [RunInstanceRecord("w-run", i, n, 1, Status.PENDING, "1.0.0")
                           for n, i in enumerate(ids)])
    store.close()


def attempts(url: str) -> int:
    store = Store.open(url)
    try:
        loaded = store.runs.with_members("w-run")
        assert loaded is not None
        run, members = loaded
        assert run.status is Status.IN_PROGRESS
        assert len(members) == 8
        values = {m.attempts for m in members}
        assert len(values) == 1, f"one transaction updates all eight: {values}"
        assert table_counts(store)["instances"] == 8
        return values.pop()
    finally:
        store.close()


@pytest.mark.slow
def test_a_killed_writer_never_corrupts_the_database(tmp_path: Path) -> None:
    db = tmp_path / "home" / "floy.db"
    url = f"sqlite:///{db}"
    seed(url)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    progress = [attempts(url)]
    for _ in range(KILLS):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, url], env=env, cwd=REPO,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert proc.stdout is not None and proc.stderr is not None
        assert proc.stdout.readline().strip() == "writing", proc.stderr.read()
        time.sleep(1.0)  # let it write on: the kill then lands mid-transaction, at no set point
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        assert proc.returncode == -signal.SIGKILL
        # a plain sqlite3 connection, as an operator would check it
        conn = sqlite3.connect(db)
        try:
            assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
            assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
        finally:
            conn.close()
        progress.append(attempts(url))
    assert all(n > 10 for n in progress[1:]), f"each writer committed many times: {progress}"


# -- unusable data directory or database ----------------------------------------------------
def run_floy(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOY_")}
    return subprocess.run([FLOY, "--home", str(home), *args], env=env, capture_output=True,
                          text=True, timeout=60, check=False)


def assert_config_error(home: Path, *needles: str | Path) -> None:
    """Store.open and the CLI both refuse with a ConfigError naming each of ``needles``."""
    with pytest.raises(ConfigError) as err:
        Store.open(f"sqlite:///{home / 'floy.db'}")
    for needle in needles:
        assert str(needle) in str(err.value), str(err.value)
    for args in (("versions", "hello"), ("status", "d-1"), ("instances", "add", "a-1",
                                                            "--service", "a", "--host", "h",
                                                            "--port", "80")):
        assert_floy_refuses(home, args, *needles)


def assert_floy_refuses(home: Path, args: tuple[str, ...], *needles: str | Path) -> None:
    """``floy ARGS`` exits 6 naming each of ``needles``, with no traceback."""
    proc = run_floy(home, *args)
    assert proc.returncode == 6, (args, proc.returncode, proc.stderr)
    for needle in needles:
        assert str(needle) in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr
    assert proc.stdout == ""


def test_a_home_under_a_regular_file(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory\n")
    assert_config_error(blocker / "sub", blocker / "sub")
    assert blocker.read_text() == "not a directory\n"


@pytest.fixture
def ro_mount(tmp_path: Path) -> Iterator[Path]:
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("needs root and mount(8)")
    target = tmp_path / "ro"
    target.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(target)], check=True)
    try:
        yield target
    finally:
        subprocess.run(["umount", str(target)], check=False)


def remount_ro(target: Path) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(target)], check=True)


def test_a_home_that_cannot_be_created_on_a_read_only_mount(ro_mount: Path) -> None:
    remount_ro(ro_mount)
    assert_config_error(ro_mount / "home", ro_mount / "home")


def test_an_existing_read_only_home(ro_mount: Path) -> None:
    remount_ro(ro_mount)
    assert_config_error(ro_mount, ro_mount)


def test_a_database_on_a_mount_that_became_read_only(ro_mount: Path) -> None:
    home = ro_mount / "home"
    seed(f"sqlite:///{home / 'floy.db'}")
    remount_ro(ro_mount)
    assert_config_error(home, home)


@pytest.mark.parametrize("content", [
    pytest.param(os.urandom(4096), id="random-bytes"),
    pytest.param(b"SQLite format 3\x00" + b"\xff" * 4080, id="bad-header"),
    pytest.param(b"db_url: nonsense\n" * 10, id="text"),
])
def test_a_database_file_that_is_not_sqlite(tmp_path: Path, content: bytes) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    db = home / "floy.db"
    db.write_bytes(content)
    assert_config_error(home, db)
    assert db.read_bytes() == content, "floy never writes over a file it cannot read"


def test_a_database_path_that_is_a_directory(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / "floy.db").mkdir(parents=True)
    assert_config_error(home, home / "floy.db")


# -- a damaged database: detected when it is opened ---------------------------------------------
def damage(db: Path, *statements: str) -> None:
    """Change a database behind floy's back, as a hand edit or a bad restore would."""
    conn = sqlite3.connect(db)
    try:
        conn.executescript(";".join(statements))
    finally:
        conn.close()


@pytest.mark.parametrize("version", ["'abc'", "'3 beta'", "2.5", "-1"])
def test_a_schema_version_that_is_not_a_number(tmp_path: Path, version: str) -> None:
    home = tmp_path / "home"
    seed(f"sqlite:///{home / 'floy.db'}")
    damage(home / "floy.db", f"UPDATE floy_schema SET version = {version}")
    assert_config_error(home, f"the database {home / 'floy.db'} is damaged: table floy_schema, "
                        "column version: ", "is not a schema version number; restore the "
                        "database from a backup")


@pytest.mark.parametrize("table", ["runs", "instances", "run_instances", "instance_locks",
                                   "releases"])
def test_a_migrated_database_with_a_missing_table(tmp_path: Path, table: str) -> None:
    home = tmp_path / "home"
    seed(f"sqlite:///{home / 'floy.db'}")
    damage(home / "floy.db", "PRAGMA foreign_keys = OFF", f"DROP TABLE {table}")
    assert_config_error(home, f"the database {home / 'floy.db'} is damaged: table {table}: "
                        f"missing from a database at schema version {len(schema.MIGRATIONS)}; "
                        "restore the database from a backup")
    with sqlite3.connect(home / "floy.db") as conn:  # never recreated empty behind the operator
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert table not in names


# -- a damaged database: a malformed row, detected when it is read ------------------------------
@pytest.mark.parametrize(("value", "problem"), [
    ("'not json'", "not valid JSON (Expecting value: line 1 column 1 (char 0))"),
    ("'[1, 2]'", "holds a JSON array, not a JSON object"),
    ("'\"text\"'", "holds a JSON string, not a JSON object"),
    ("'{\"rack\": 3}'", "the value of 'rack' is not a string"),
])
def test_an_instance_row_with_malformed_metadata(tmp_path: Path, value: str,
                                                 problem: str) -> None:
    home = tmp_path / "home"
    seed(f"sqlite:///{home / 'floy.db'}")
    damage(home / "floy.db", f"UPDATE instances SET metadata_json = {value} WHERE instance_id "
           "= 'w-3'")
    message = ("the database is damaged: table instances, row 'w-3', column metadata_json: "
               f"{problem}; fix that row, or restore the database from a backup")
    assert_floy_refuses(home, ("instances", "list", "w"), message)
    # a deploy reads the instance before recording anything: refused, and no run is stored
    assert_floy_refuses(home, ("deploy", "w", "2.0.0", "-i", "w-3", "--url",
                               "https://127.0.0.1:9/w.tar.gz", "--deploy-id", "d-2", "--json"),
                        '"error": "store_data"', '"table": "instances"', '"key": "w-3"')
    store = Store.open(f"sqlite:///{home / 'floy.db'}")
    try:
        assert store.runs.get("d-2") is None
        with pytest.raises(StoreDataError) as err:
            store.instances.get(["w-3"])
        assert (err.value.table, err.value.key, err.value.column) == (
            "instances", "w-3", "metadata_json")
        assert store.instances.get(["w-2"])["w-2"].metadata == {}, "other rows still read"
    finally:
        store.close()


@pytest.mark.parametrize(("column", "value", "problem"), [
    ("params_json", "'{'", "not valid JSON (Expecting property name enclosed in double "
                             "quotes: line 1 column 2 (char 1))"),
    ("params_json", "'null'", "holds null, not a JSON object"),
    ("params_json", """'{"instances": ["w-1"], "timeout": "soon"}'""",
     "not a run request: 'timeout' is 'soon', not an integer"),
    ("params_json", """'{"instances": ["w-1"], "batch_size": 2}'""",
     "not a run request: 'batch_size' is 2, not a string"),
    ("params_json", """'{"timeout": 5}'""", "not a run request: no 'instances'"),
    ("params_json", """'{"instances": ["w-1"], "colour": 1}'""",
     "not a run request: unknown key 'colour'"),
    ("kind", "'migrate'", "'migrate' is not a run kind (deploy, rollback)"),
    ("status", "'running'", "'running' is not a status (pending, in_progress, completed, "
                            "failed, cancelled)"),
    ("created_at", "'yesterday'", "'yesterday' is not an RFC 3339 time"),
])
def test_a_run_row_with_a_malformed_value(tmp_path: Path, column: str, value: str,
                                          problem: str) -> None:
    home = tmp_path / "home"
    seed(f"sqlite:///{home / 'floy.db'}")
    damage(home / "floy.db", f"UPDATE runs SET {column} = {value} WHERE run_id = 'w-run'")
    assert_floy_refuses(home, ("status", "w-run"),
                        f"table runs, row 'w-run', column {column}: {problem}; fix that row")
    if column not in ("params_json", "kind"):  # the history reads neither as typed
        assert_floy_refuses(home, ("history", "w"), f"table runs, row 'w-run', column {column}")
