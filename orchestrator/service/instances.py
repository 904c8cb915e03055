"""Instance registration: one at a time, or a group of an Ansible inventory."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from orchestrator.ansible.importer import DEFAULT_TIMEOUT, read_inventory_group
from orchestrator.domain.validation import validate_instance_spec
from orchestrator.models import InstanceSpec
from orchestrator.service.context import ServiceContext


class Registry:
    """Registers instances and lists their IDs."""

    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx

    def register_instances(
        self, specs: Sequence[InstanceSpec], *, replace: bool = False
    ) -> list[InstanceSpec]:
        """Validate and register ``specs`` in one transaction (all or none); an ID already
        registered is a conflict unless ``replace``. Returns the specs as stored."""
        checked = [validate_instance_spec(s) for s in specs]
        self.ctx.store.instances.add(checked, replace=replace)
        return checked

    def import_instances(
        self,
        inventory: Path,
        service: str,
        group: str = "",
        port_var: str = "floy_instance_port",
        meta_vars: Sequence[str] = (),
        *,
        replace: bool = False,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> list[InstanceSpec]:
        """Register the hosts of ``group`` (default: ``service``) of an Ansible inventory,
        read through ``ansible-inventory``; the first bad host refuses them all."""
        specs = read_inventory_group(inventory, service, group or service, port_var,
                                     meta_vars, timeout=timeout)
        self.ctx.store.instances.add(specs, replace=replace)
        return specs

    def instance_ids(self, service: str) -> tuple[str, ...]:
        """IDs of every registered instance of ``service``, in ID order (none for a name
        no service has)."""
        return tuple(r.instance_id for r in self.ctx.store.instances.of_service(service))
