"""The inventory plugin reads floy's tables directly (no floy code on the controller), so it
declares what it reads: the schema versions it was written for and the tables and columns.
Those declarations are checked against orchestrator's schema module, so that a schema change
(a new migration, a renamed or retyped column) fails here until the plugin is updated; and a
store at a version the plugin does not know is refused with a clear error."""

from __future__ import annotations

import re
import sqlite3
import subprocess
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import sqlalchemy as sa
from ansible.errors import AnsibleParserError

from tests.ecosystem._paths import VENV_BIN, tool_env
from tests.unit.collection._collection import plugin, schema_module
from tests.unit.collection._registry import open_store

floy_inventory = plugin("inventory.floy")
schema = schema_module()

#: What the plugin does with each column it reads, hence the Python type it needs.
NEEDED_TYPES = {"instance_id": str, "service": str, "host": str, "port": int,
                "version": str, "metadata_json": str}


def schema_problems(declared: Any, defined: Any) -> list[str]:
    """How the plugin's declarations disagree with the schema ``defined`` (none: agree)."""
    problems = []
    current = len(defined.MIGRATIONS)  # the version a store of this floy is at
    if tuple(declared.SCHEMA_VERSIONS) != tuple(range(1, current + 1)):
        problems.append(f"the plugin knows schema versions {declared.SCHEMA_VERSIONS}, "
                        f"floy's schema is at version {current}: review the plugin's "
                        f"queries against the new migrations, then add the version")
    version_table = defined.schema_version  # its row with id 1 holds the version
    if (version_table.name != declared.VERSION_TABLE
            or {"id", declared.VERSION_COLUMN} - set(version_table.c.keys())):
        problems.append(f"the schema version is not in {declared.VERSION_TABLE}."
                        f"{declared.VERSION_COLUMN} (id 1)")
    instances = defined.metadata.tables.get(declared.INSTANCES_TABLE)
    if instances is None:
        return [*problems, f"no table {declared.INSTANCES_TABLE!r}"]
    for name in declared.INSTANCE_COLUMNS:
        if name not in instances.c:
            problems.append(f"no column {declared.INSTANCES_TABLE}.{name}")
            continue
        column = instances.c[name]
        if column.type.python_type is not NEEDED_TYPES.get(name):
            problems.append(f"{declared.INSTANCES_TABLE}.{name} is {column.type}")
        if column.nullable and name != "version":  # the plugin reads NULL version as ""
            problems.append(f"{declared.INSTANCES_TABLE}.{name} may be NULL")
    return problems


def test_the_plugin_declares_what_floys_schema_defines() -> None:
    assert schema_problems(floy_inventory, schema) == []


def test_the_queries_read_only_what_is_declared() -> None:
    columns = ", ".join(floy_inventory.INSTANCE_COLUMNS)
    instances, version = floy_inventory.INSTANCES_QUERY, floy_inventory.VERSION_QUERY
    assert instances == f"SELECT {columns} FROM instances ORDER BY service, instance_id"
    assert version == "SELECT version FROM floy_schema WHERE id = 1"
    versions = floy_inventory.SCHEMA_VERSIONS
    assert f"({versions[0]} to {versions[-1]})" in floy_inventory.DOCUMENTATION


def _schema_with(metadata: sa.MetaData | None = None, extra_migration: bool = False) -> object:
    """orchestrator's schema module with other tables or one more migration."""
    migrations = (*schema.MIGRATIONS, lambda conn: None) if extra_migration else schema.MIGRATIONS
    return SimpleNamespace(MIGRATIONS=migrations, schema_version=schema.schema_version,
                           metadata=metadata if metadata is not None else schema.metadata)


def _instances_with(change: dict[str, sa.Column]) -> sa.MetaData:
    """The instances table with some columns replaced (by name)."""
    metadata = sa.MetaData()
    sa.Table("instances", metadata, *[
        change.get(c.name, sa.Column(c.name, c.type, nullable=c.nullable))
        for c in schema.instances.c])
    return metadata


def test_a_schema_change_without_the_plugin_fails_the_check() -> None:
    """The check is not vacuous: each kind of drift is caught."""
    assert "floy's schema is at version" in schema_problems(
        floy_inventory, _schema_with(extra_migration=True))[0]
    renamed = _instances_with({"metadata_json": sa.Column("meta", sa.Text, nullable=False)})
    assert "no column instances.metadata_json" in schema_problems(
        floy_inventory, _schema_with(renamed))
    retyped = _instances_with({"port": sa.Column("port", sa.String(8), nullable=False)})
    assert "instances.port is VARCHAR(8)" in schema_problems(
        floy_inventory, _schema_with(retyped))
    nullable = _instances_with({"host": sa.Column("host", sa.String(253), nullable=True)})
    assert "instances.host may be NULL" in schema_problems(
        floy_inventory, _schema_with(nullable))
    reads_more = SimpleNamespace(**{**vars(floy_inventory),
                                    "INSTANCE_COLUMNS": ("instance_id", "hostname")})
    assert schema_problems(reads_more, schema) == ["no column instances.hostname"]


# -- stores at other versions ---------------------------------------------------------------


def _store_at(path: Path, version: object) -> Path:
    open_store(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE floy_schema SET version = ? WHERE id = 1", (version,))
    return path


@pytest.mark.parametrize("version", [len(schema.MIGRATIONS) + 1, 0, "abc"])
def test_an_unknown_schema_version_is_refused(tmp_path: Path, version: object) -> None:
    db = _store_at(tmp_path / "floy.db", version)
    message = f"at schema version {version!r}, which the floy.release inventory plugin does not"
    with pytest.raises(AnsibleParserError, match=re.escape(message)):
        floy_inventory.read_sqlite(str(db))


def test_every_known_version_is_read(tmp_path: Path) -> None:
    for version in floy_inventory.SCHEMA_VERSIONS:
        db = _store_at(tmp_path / f"v{version}.db", version)
        assert floy_inventory.read_sqlite(str(db)) == []


def test_a_database_that_is_not_a_floy_store(tmp_path: Path) -> None:
    db = tmp_path / "other.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE instances (instance_id TEXT)")
    with pytest.raises(AnsibleParserError, match="is not a floy store"):
        floy_inventory.read_sqlite(str(db))


def test_ansible_inventory_reports_the_version(tmp_path: Path) -> None:
    db = _store_at(tmp_path / "floy.db", 99)
    source = tmp_path / "x.floy.yml"
    source.write_text(f"plugin: floy.release.floy\ndb_url: sqlite:///{db}\n")
    proc = subprocess.run(
        [str(VENV_BIN / "ansible-inventory"), "-i", str(source), "--list"],
        cwd=tmp_path, env=tool_env(ANSIBLE_INVENTORY_UNPARSED_FAILED="true"),
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert proc.returncode != 0
    assert "at schema version 99" in " ".join(proc.stderr.split()), proc.stderr
