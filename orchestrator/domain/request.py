"""What a run was asked to do, as a frozen typed value recorded with the run.

A :class:`RunRequest` replaces the untyped params dict: the worker, the bake, the status
and the automatic rollback read its fields, and its defaults are the spec's constants,
given once here. It is stored as JSON (``runs.params_json``); :meth:`RunRequest.from_json`
also reads what earlier floy versions wrote there (a deployment's record carried its
service, version and deploy ID too: those are the run's own columns and are ignored).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, ClassVar

from orchestrator.models import DEFAULT_BATCH_SIZE, DEFAULT_RETRY_COUNT, DEFAULT_TIMEOUT

_IGNORED = frozenset({"service", "version", "deploy_id"})


@dataclass(frozen=True)
class RunRequest:
    """The parameters of a deployment or rollback run (already validated)."""

    instances: tuple[str, ...]
    package_url: str = ""  # a rollback's may be empty: each instance has its own package
    package_sha256: str = ""
    timeout: int = DEFAULT_TIMEOUT
    retry_count: int = DEFAULT_RETRY_COUNT
    batch_size: str = DEFAULT_BATCH_SIZE
    max_failures: int = 0
    auto_rollback: bool = False  # a deployment that fails rolls its switched instances back
    force: bool = False  # a rollback that reinstalls even a current target
    automatic: bool = False  # a rollback started by auto_rollback
    node: str = ""  # the execution node that runs its playbook ("": the worker itself)
    # one per instance, when its instances are grouped by their execution_node label
    # (see orchestrator.domain.placement); empty: every instance plays where ``node`` says
    nodes: tuple[str, ...] = ()
    # a stepped deployment: its canary steps (normalised items) and analysis definition
    steps: tuple[str, ...] = ()
    analysis: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.nodes and len(self.nodes) != len(self.instances):
            raise ValueError(f"'nodes' has {len(self.nodes)} entries for "
                             f"{len(self.instances)} instances")

    def node_of(self, instance_id: str) -> str:
        """The execution node that plays ``instance_id``'s part ("": the worker itself);
        ``node`` for an instance the request does not list."""
        if self.node or instance_id not in self.instances:
            return self.node
        return self.nodes[self.instances.index(instance_id)] if self.nodes else ""

    def all_nodes(self) -> list[str]:
        """Every execution node this run's playbooks run on, in first-use order."""
        return list(dict.fromkeys(n for n in (self.node, *self.nodes) if n))

    def to_json(self) -> dict[str, Any]:
        """The stored JSON object."""
        data: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self)}
        data["instances"] = list(self.instances)
        data["nodes"] = list(self.nodes)
        data["steps"] = list(self.steps)
        data["analysis"] = None if self.analysis is None else dict(self.analysis)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RunRequest:
        """Read a stored request; a value of the wrong type is a ValueError naming it."""
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(data) - set(known) - _IGNORED)
        if unknown:
            raise ValueError(f"unknown key {unknown[0]!r}")
        if "instances" not in data:
            raise ValueError("no 'instances'")
        values: dict[str, Any] = {}
        for name, value in data.items():
            if name in _IGNORED:
                continue
            values[name] = _typed(name, value, cls._TYPES[name])
        values["instances"] = tuple(values["instances"])
        values["nodes"] = tuple(values.get("nodes", ()))
        values["steps"] = tuple(values.get("steps", ()))
        return cls(**values)

    _TYPES: ClassVar[dict[str, type]] = {
        "instances": list, "package_url": str, "package_sha256": str, "timeout": int,
        "retry_count": int, "batch_size": str, "max_failures": int, "auto_rollback": bool,
        "force": bool, "automatic": bool, "node": str, "nodes": list, "steps": list,
        "analysis": dict,
    }


def _typed(name: str, value: Any, kind: type) -> Any:
    if kind is dict and value is None:
        return None  # an optional object
    wrong = not isinstance(value, kind) or (kind is int and isinstance(value, bool))
    if isinstance(value, list):
        wrong = wrong or not all(isinstance(v, str) for v in value)
    if wrong:
        want = {list: "a list of strings", str: "a string", int: "an integer",
                bool: "true or false", dict: "an object or null"}[kind]
        raise ValueError(f"{name!r} is {value!r}, not {want}")
    return value
