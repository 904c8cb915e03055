"""A real floy store with registered instances, through the store's public API.

The store's API is moving from methods of ``Store`` (``add_instances``,
``service_instances``, ``record_observations``) to its ``instances`` repository
(``add``, ``of_service``, ``record_observations``): both are accepted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from orchestrator.models import InstanceSpec
from orchestrator.store import Store


def open_store(path: Path) -> Store:
    """A new SQLite store at ``path`` (created and migrated)."""
    return Store.open(f"sqlite:///{path}")


def _registry(store: Store) -> Any:
    return getattr(store, "instances", None) or store


def register(store: Store, specs: Sequence[InstanceSpec],
             versions: Mapping[str, str] | None = None) -> None:
    """Register ``specs``; ``versions`` records a version as if a probe had read it."""
    registry = _registry(store)
    add = getattr(registry, "add", None) or store.add_instances  # type: ignore[attr-defined]
    add(list(specs))
    if versions:
        registry.record_observations(dict(versions), authoritative=True)


def of_service(store: Store, service: str) -> list[Any]:
    """The instance records of ``service``, in ID order."""
    registry = _registry(store)
    read = getattr(registry, "of_service", None) or store.service_instances  # type: ignore[attr-defined]
    return list(read(service))
