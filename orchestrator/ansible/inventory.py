"""Instance records to an Ansible inventory, as data, dumped as YAML.

Every string that came from a user (IDs, versions, hosts, URLs, metadata) is wrapped in
:class:`Unsafe` and written with the ``!unsafe`` tag, so Ansible never evaluates Jinja in
it even if validation were bypassed (DESIGN.md section 5: both, not one). Connection
variables never come from here except ``ansible_host``, taken from the operator's registry.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from orchestrator.domain.records import InstanceRecord


class Unsafe(str):
    """A string Ansible must treat as data, never as a template."""

    __slots__ = ()


class _Dumper(yaml.SafeDumper):
    """SafeDumper that writes :class:`Unsafe` strings with the ``!unsafe`` tag."""


_RESOLVER = yaml.resolver.Resolver()


def _represent_unsafe(dumper: yaml.SafeDumper, value: Unsafe) -> yaml.ScalarNode:
    text = str(value)
    # ansible-core 2.19 resolves a value under ``!unsafe`` as if it were unquoted: quoted
    # or not, ``!unsafe '1.10'`` reads as the float 1.1, ``''`` as null, ``'yes'`` as
    # true (a version "1.10" would be deployed as "1.1"). A string that plain YAML would
    # not read as a string (a number, bool, null, date) cannot hold a template delimiter,
    # so it is written quoted, untagged: it reads back as this very string and is data.
    plain = _RESOLVER.resolve(yaml.ScalarNode, text, (True, False))  # type: ignore[no-untyped-call]
    if plain != "tag:yaml.org,2002:str":
        return dumper.represent_scalar("tag:yaml.org,2002:str", text, style="'")
    return dumper.represent_scalar("!unsafe", text, style="'")


_Dumper.add_representer(Unsafe, _represent_unsafe)


def unsafe_tree(value: Any) -> Any:
    """Wrap every string (mapping values and list items) of a JSON-like tree in Unsafe."""
    if isinstance(value, Unsafe):
        return value
    if isinstance(value, str):
        return Unsafe(value)
    if isinstance(value, Mapping):
        return {str(k): unsafe_tree(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [unsafe_tree(v) for v in value]
    return value


def host_vars(instance: InstanceRecord) -> dict[str, Any]:
    """Host variables of one instance (all user strings tagged unsafe)."""
    return {
        "ansible_host": Unsafe(instance.host),
        "floy_instance_id": Unsafe(instance.instance_id),
        "floy_instance_host": Unsafe(instance.host),
        "floy_instance_port": int(instance.port),
        "floy_instance_version": Unsafe(instance.version),
        "floy_instance_metadata": unsafe_tree(dict(instance.metadata)),
    }


def render_inventory(
    service: str,
    instances: Sequence[InstanceRecord],
    extra: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """Inventory data: one group named after the service, hosts in the given order.

    ``extra`` adds per-instance variables (already tagged), e.g. a rollback's package.
    """
    extra = extra or {}
    hosts = {
        i.instance_id: {**host_vars(i), **unsafe_tree(dict(extra.get(i.instance_id, {})))}
        for i in instances
    }
    return {"all": {"children": {service: {"hosts": hosts}}}}


def dump_yaml(data: Any) -> str:
    """YAML text of ``data``; Unsafe strings carry ``!unsafe``."""
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, default_flow_style=False)


def write_atomic(path: Path, text: str, mode: int = 0o600) -> None:
    """Write a file atomically (temp file in the same directory, then os.replace)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
