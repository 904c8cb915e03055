"""The collection floy.release imported from this checkout, as AnsiballZ would pack it.

The modules and module_utils run on the target's interpreter (stdlib only, Python 3.8+);
here they are imported in-process from ``collections/`` (put on ``sys.path`` the way
tests/unit/test_archive.py does), together with the store and inventory modules of
orchestrator, which are moving (``orchestrator.inventory`` to ``orchestrator.ansible``,
``orchestrator.schema`` to ``orchestrator.store``): both layouts are accepted.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import yaml

from tests.unit.archive_cases import COLLECTIONS

if str(COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(COLLECTIONS))

PACKAGE = "ansible_collections.floy.release.plugins"
PLUGINS = COLLECTIONS / "ansible_collections" / "floy" / "release" / "plugins"


def plugin(name: str) -> ModuleType:
    """A module of the collection, e.g. ``module_utils.floy_layout`` or ``modules.floy_probe``."""
    return importlib.import_module(f"{PACKAGE}.{name}")


def first_module(*names: str) -> ModuleType:
    """The first of ``names`` that imports (the new layout first, then the old one)."""
    for name in names[:-1]:
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    return importlib.import_module(names[-1])


def inventory_module() -> ModuleType:
    """orchestrator's inventory builder (host_vars, render_inventory, dump_yaml)."""
    return first_module("orchestrator.ansible.inventory", "orchestrator.inventory")


def schema_module() -> ModuleType:
    """orchestrator's SQLAlchemy schema and migrations."""
    return first_module("orchestrator.store.schema", "orchestrator.schema")


def module_defaults(module: ModuleType) -> dict[str, Any]:
    """The options of an Ansible module with their documented defaults (None if none)."""
    options = yaml.safe_load(module.DOCUMENTATION)["options"]
    return {name: spec.get("default") for name, spec in options.items()}


def fake_module(module: ModuleType, check_mode: bool = False, **params: Any) -> SimpleNamespace:
    """What the module's code reads of AnsibleModule: ``params`` and ``check_mode``."""
    values = module_defaults(module)
    values.update(params)
    return SimpleNamespace(params=values, check_mode=check_mode)


def source(path: Path) -> str:
    """The text of a collection file."""
    return path.read_text(encoding="utf-8")
