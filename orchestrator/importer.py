"""Import instances from an existing Ansible inventory.

Parsing is left to ``ansible-inventory --list`` so every inventory format Ansible reads
(INI, YAML, scripts, plugins) works the same. Only the host name, its address, a port
variable and chosen metadata variables are kept; connection variables never become metadata.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from orchestrator.errors import ConfigError, ValidationError
from orchestrator.models import InstanceSpec
from orchestrator.validation import validate_instance_spec


def _ansible_inventory() -> str:
    sibling = Path(sys.executable).with_name("ansible-inventory")
    if sibling.exists():
        return str(sibling)
    found = shutil.which("ansible-inventory")
    if not found:
        raise ConfigError("ansible-inventory not found; install ansible-core")
    return found


def _group_hosts(listing: dict[str, Any], group: str) -> list[str]:
    """Hosts of a group and of its child groups, in inventory order, without repeats."""
    seen: list[str] = []
    pending = [group]
    visited: set[str] = set()
    while pending:
        name = pending.pop(0)
        if name in visited:
            continue
        visited.add(name)
        node = listing.get(name) or {}
        for host in node.get("hosts", []):
            if host not in seen:
                seen.append(host)
        pending.extend(node.get("children", []))
    return seen


def read_inventory_group(
    inventory: Path, service: str, group: str, port_var: str, meta_vars: Sequence[str]
) -> list[InstanceSpec]:
    """Instances for ``service`` from the hosts of ``group`` in ``inventory``."""
    if not inventory.exists():
        raise ValidationError("inventory", f"{inventory} does not exist")
    proc = subprocess.run(
        [_ansible_inventory(), "-i", str(inventory), "--list"],
        capture_output=True, text=True, timeout=120, check=False,
    )
    if proc.returncode != 0:
        raise ValidationError("inventory", f"ansible-inventory failed: {proc.stderr.strip()}")
    listing = json.loads(proc.stdout)
    hostvars: dict[str, dict[str, Any]] = listing.get("_meta", {}).get("hostvars", {})
    hosts = _group_hosts(listing, group)
    if not hosts:
        raise ValidationError("group", f"group {group!r} has no hosts in {inventory}")
    specs = []
    for name in hosts:
        hv = hostvars.get(name, {})
        if port_var not in hv:
            raise ValidationError(f"{name}.{port_var}",
                                  f"host {name} has no {port_var} variable (use --port-var)")
        try:
            port = int(hv[port_var])
        except (TypeError, ValueError):
            raise ValidationError(f"{name}.{port_var}", "must be an integer port") from None
        metadata = {key: str(hv[key]) for key in meta_vars if key in hv}
        spec = InstanceSpec(
            instance_id=name,
            service=service,
            host=str(hv.get("ansible_host", name)),
            port=port,
            metadata=metadata,
        )
        specs.append(validate_instance_spec(spec))
    return specs
