# -*- coding: utf-8 -*-
# Copyright: (c) 2026, floy contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
# SPDX-License-Identifier: Apache-2.0
"""Inventory source: the instances registered in a floy store, grouped by service."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
name: floy
short_description: floy's instance registry as an inventory
description:
  - Reads the C(instances) table of a floy store (the database floy registers instances
    in) and adds every instance as a host named after its instance ID, in a group named
    after its service.
  - Host variables - C(ansible_host), C(floy_instance_id), C(floy_instance_host),
    C(floy_instance_port), C(floy_instance_version), C(floy_instance_metadata). Every string
    is marked unsafe, so Jinja in registered data (metadata above all) is never evaluated.
  - Connection variables other than C(ansible_host) never come from the registry; set them
    in group_vars next to the inventory source, as for floy itself.
  - Needs nothing but Python for SQLite stores (C(sqlite:///...) URLs, read-only). Other
    database URLs (PostgreSQL) need SQLAlchemy and the database driver on the controller.
  - The source file name must end with C(floy.yml) or C(floy.yaml).
  - Reads the tables directly, so it knows the store's schema versions it was written for
    (1 to 6) and refuses a store at any other version with an error naming it.
version_added: "0.1.0"
# Not on GitHub yet, so no handle: "!UNKNOWN" is validate-modules' form for that.
author: floy contributors (!UNKNOWN)
options:
  plugin:
    description: Marks the file as a source for this plugin.
    type: str
    required: true
    choices: [floy.release.floy]
  db_url:
    description:
      - URL of the floy store, as floy's C(FLOY_DB_URL) setting.
      - A relative SQLite path (C(sqlite:///.floy/floy.db)) is relative to the working
        directory, as for the floy command.
    type: str
    default: sqlite:///.floy/floy.db
    env:
      - name: FLOY_DB_URL
  services:
    description: Only instances of these services; empty means every service.
    type: list
    elements: str
    default: []
"""

EXAMPLES = r"""
# inventories/registry.floy.yml
plugin: floy.release.floy
db_url: sqlite:////var/lib/floy/floy.db
services:
  - web
  - hello
"""

import json
import os
import sqlite3

from ansible.errors import AnsibleParserError
from ansible.module_utils.common.text.converters import to_native
from ansible.plugins.inventory import BaseInventoryPlugin
from ansible.utils.unsafe_proxy import wrap_var

# What this plugin reads of floy's store, straight from its tables so that the controller
# needs no floy code: orchestrator/store/schema.py is the definition, and
# tests/unit/collection/test_inventory_schema.py fails when it changes and this does not.
#: Schema versions (floy_schema.version, the number of migrations applied) this plugin was
#: written for: the instances columns below exist, with these meanings, in each of them.
SCHEMA_VERSIONS = (1, 2, 3, 4, 5, 6)
#: The table holding the schema version, in its row with id 1.
VERSION_TABLE = "floy_schema"
VERSION_COLUMN = "version"
INSTANCES_TABLE = "instances"
INSTANCE_COLUMNS = ("instance_id", "service", "host", "port", "version", "metadata_json")

VERSION_QUERY = "SELECT %s FROM %s WHERE id = 1" % (VERSION_COLUMN, VERSION_TABLE)
INSTANCES_QUERY = "SELECT %s FROM %s ORDER BY service, instance_id" % (
    ", ".join(INSTANCE_COLUMNS),
    INSTANCES_TABLE,
)


def sqlite_path(url):
    """The file path of a SQLAlchemy-style SQLite URL, or None for other databases."""
    scheme, sep, rest = url.partition(":///")
    if not sep or scheme.split("+", 1)[0] != "sqlite":
        return None
    return rest.split("?", 1)[0]


def check_schema_version(version, where):
    """Refuse a store whose schema version this plugin was not written for."""
    if isinstance(version, bool) or version not in SCHEMA_VERSIONS:
        raise AnsibleParserError(
            "floy store %s is at schema version %r, which the floy.release inventory plugin "
            "does not know (it reads versions %s): use the collection that comes with the "
            "floy that wrote the store"
            % (where, version, ", ".join(str(v) for v in SCHEMA_VERSIONS))
        )


def read_sqlite(path):
    """Rows of the instances table of the SQLite store at ``path``, read-only."""
    if not os.path.isfile(path):
        raise AnsibleParserError("floy store not found: %s" % path)
    uri = "file:%s?mode=ro" % os.path.abspath(path).replace("?", "%3f").replace("#", "%23")
    conn = sqlite3.connect(uri, uri=True, timeout=10)
    try:
        try:
            row = conn.execute(VERSION_QUERY).fetchone()
        except sqlite3.OperationalError as exc:
            raise AnsibleParserError(
                "%s is not a floy store (no schema version: %s)" % (path, to_native(exc))
            )
        check_schema_version(row[0] if row else None, path)
        cursor = conn.execute(INSTANCES_QUERY)
        return [dict(zip(INSTANCE_COLUMNS, row)) for row in cursor.fetchall()]
    finally:
        conn.close()


def read_sqlalchemy(url):
    """Rows of the instances table of any database SQLAlchemy can open."""
    try:
        import sqlalchemy as sa
    except ImportError:
        raise AnsibleParserError(
            "the floy inventory needs SQLAlchemy for database URLs other than sqlite:///"
        )
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            check_schema_version(conn.execute(sa.text(VERSION_QUERY)).scalar(), redact(url))
            result = conn.execute(sa.text(INSTANCES_QUERY))
            return [dict(zip(INSTANCE_COLUMNS, row)) for row in result]
    finally:
        engine.dispose()


def redact(url):
    """``url`` without the password, for messages."""
    scheme, sep, rest = url.partition("://")
    credentials, at, location = rest.rpartition("@")
    if not sep or not at or ":" not in credentials:
        return url
    return "%s://%s:***@%s" % (scheme, credentials.split(":", 1)[0], location)


def host_vars(row):
    """Host variables of one instance row, every string marked unsafe."""
    try:
        metadata = json.loads(row["metadata_json"] or "{}")
    except ValueError:
        metadata = {}
    if not isinstance(metadata, dict):
        metadata = {}
    return {
        "ansible_host": wrap_var(row["host"]),
        "floy_instance_id": wrap_var(row["instance_id"]),
        "floy_instance_host": wrap_var(row["host"]),
        "floy_instance_port": int(row["port"]),
        "floy_instance_version": wrap_var(row["version"] or ""),
        "floy_instance_metadata": wrap_var(metadata),
    }


class InventoryModule(BaseInventoryPlugin):
    """Hosts from floy's instance registry."""

    NAME = "floy.release.floy"

    def verify_file(self, path):
        """Accept only files named *floy.yml or *floy.yaml."""
        return super(InventoryModule, self).verify_file(path) and path.endswith(
            ("floy.yml", "floy.yaml")
        )

    def parse(self, inventory, loader, path, cache=True):
        super(InventoryModule, self).parse(inventory, loader, path, cache)
        self._read_config_data(path)
        url = self.get_option("db_url")
        services = set(self.get_option("services") or [])
        try:
            path_ = sqlite_path(url)
            rows = read_sqlite(path_) if path_ is not None else read_sqlalchemy(url)
        except AnsibleParserError:
            raise
        except Exception as exc:
            raise AnsibleParserError(
                "cannot read floy's instances from %s: %s" % (redact(url), to_native(exc))
            )
        for row in rows:
            service = row["service"]
            if services and service not in services:
                continue
            group = self.inventory.add_group(service)
            host = self.inventory.add_host(row["instance_id"], group=group)
            for key, value in host_vars(row).items():
                self.inventory.set_variable(host, key, value)
