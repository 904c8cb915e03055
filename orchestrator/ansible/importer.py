"""Import instances from an existing Ansible inventory.

Parsing is left to ``ansible-inventory --list`` so every inventory format Ansible reads
(INI, YAML, scripts, plugins) works the same. Only the host name, its address, a port
variable and chosen metadata variables are kept; connection variables never become metadata.
An inventory script is operator code that may hang or print garbage: ansible-inventory gets
a bounded time, is stopped with everything it started, and its output must be a JSON object.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from orchestrator.domain.validation import validate_instance_spec, validate_port
from orchestrator.errors import ConfigError, ValidationError
from orchestrator.models import InstanceSpec

#: Seconds ansible-inventory may take by default (``floy instances import --timeout``).
DEFAULT_TIMEOUT = 30.0
MAX_TIMEOUT = 3600.0


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


def _list_inventory(program: str, inventory: Path, timeout: float) -> dict[str, Any]:
    """``ansible-inventory --list`` of ``inventory``, within ``timeout`` seconds."""
    # Its own session, so that a timeout stops the inventory script it runs as well.
    proc = subprocess.Popen(
        [program, "-i", str(inventory), "--list"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, start_new_session=True,
    )
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _stop(proc)
        raise ConfigError(
            f"ansible-inventory did not finish reading {inventory} within {timeout:g} s "
            "(an inventory script or plugin that hangs?); fix it or give a longer --timeout"
        ) from None
    if proc.returncode != 0:
        said = " | ".join(line.strip() for line in stderr.splitlines() if line.strip())
        raise ValidationError("inventory", f"ansible-inventory failed: {said[-2000:]}")
    try:
        listing = json.loads(stdout)
    except ValueError as exc:
        raise ConfigError(
            f"ansible-inventory printed no valid JSON for {inventory} ({exc}); "
            "check the inventory and what it prints on stdout"
        ) from None
    if not isinstance(listing, dict):
        raise ConfigError(f"ansible-inventory printed JSON that is not an object for "
                          f"{inventory}")
    return listing


def _stop(proc: subprocess.Popen[str]) -> None:
    """Kill ansible-inventory's whole process group and reap it."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()


def _port(name: str, port_var: str, hostvars: dict[str, Any]) -> int:
    """The service port of one host: an integer 1-65535 by type, never a bool, float or str."""
    field = f"{name}.{port_var}"
    if port_var not in hostvars:
        raise ValidationError(field, f"host {name} has no {port_var} variable (use --port-var)")
    value = hostvars[port_var]
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(
            field, f"must be an integer port from 1 to 65535, not {type(value).__name__} "
                   f"{value!r}")
    return validate_port(field, value)


def read_inventory_group(
    inventory: Path,
    service: str,
    group: str,
    port_var: str,
    meta_vars: Sequence[str],
    *,
    timeout: float = DEFAULT_TIMEOUT,
    program: str | None = None,
) -> list[InstanceSpec]:
    """Instances for ``service`` from the hosts of ``group`` in ``inventory``.

    ``program`` is the ansible-inventory executable (default: next to Python, or on PATH).
    Every host is checked like ``floy instances add`` (its ``ansible_host`` as the host);
    the first bad one is a ValidationError naming ``<host>.<variable>``, and nothing is
    returned. A slow inventory (more than ``timeout`` seconds) or unreadable output is a
    ConfigError naming the inventory.
    """
    # Checked here, not only by the CLI's option type: NaN passes every range comparison.
    if (isinstance(timeout, bool) or not isinstance(timeout, int | float)
            or not 0 < timeout <= MAX_TIMEOUT):
        raise ValidationError("timeout", f"must be a number of seconds above 0 and at most "
                                         f"{MAX_TIMEOUT:g}, got {timeout!r}")
    if not inventory.exists():
        raise ValidationError("inventory", f"{inventory} does not exist")
    listing = _list_inventory(program or _ansible_inventory(), inventory, timeout)
    meta = listing.get("_meta")
    hostvars: dict[str, dict[str, Any]] = (meta.get("hostvars") if isinstance(meta, dict)
                                           else None) or {}
    hosts = _group_hosts(listing, group)
    if not hosts:
        raise ValidationError("group", f"group {group!r} has no hosts in {inventory}")
    specs = []
    for name in hosts:
        hv = hostvars.get(name, {})
        port = _port(name, port_var, hv)
        address = hv.get("ansible_host", name)
        if not isinstance(address, str):
            raise ValidationError(f"{name}.ansible_host",
                                  f"must be a string, not {type(address).__name__}")
        metadata = {key: str(hv[key]) for key in meta_vars if key in hv}
        spec = InstanceSpec(
            instance_id=name,
            service=service,
            host=address,
            port=port,
            metadata=metadata,
        )
        try:
            specs.append(validate_instance_spec(spec))
        except ValidationError as exc:
            if exc.field == "host":
                raise ValidationError(f"{name}.ansible_host", exc.reason) from None
            raise
    return specs
