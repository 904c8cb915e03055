"""Instance registration: one at a time, or a group of an Ansible inventory."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from orchestrator.ansible.importer import DEFAULT_TIMEOUT, read_inventory_group
from orchestrator.domain import validation
from orchestrator.domain.records import HeartbeatRecord
from orchestrator.domain.validation import validate_instance_spec
from orchestrator.errors import NotFoundError, ValidationError
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
        first: dict[str, int] = {}
        for index, spec in enumerate(checked):
            if first.setdefault(spec.instance_id, index) != index:
                raise ValidationError(f"instances[{index}]",
                                      f"instance {spec.instance_id!r} is already given as "
                                      f"instances[{first[spec.instance_id]}]")
        self.ctx.store.instances.add(checked, replace=replace)
        self._audit_registered(checked, "register")
        return checked

    def _audit_registered(self, specs: Sequence[InstanceSpec], action: str) -> None:
        for service in sorted({s.service for s in specs}):
            ids = [s.instance_id for s in specs if s.service == service]
            shown = ", ".join(ids[:10]) + (f" and {len(ids) - 10} more" if len(ids) > 10 else "")
            self.ctx.audit(action, service, ids[0] if len(ids) == 1 else "", shown)

    def heartbeat(self, instance_id: str, version: str) -> HeartbeatRecord:
        """An instance reports the version it runs: ``last_heartbeat`` becomes now; a
        version other than the recorded one is drift, kept next to the record (as ``floy
        refresh`` keeps what a probe read) and recorded in the audit trail when it starts."""
        instance_id = validation.validate_name("instance_id", instance_id)
        version = validation.validate_name("version", version)
        before = self.ctx.store.instances.get([instance_id]).get(instance_id)
        record = self.ctx.store.instances.heartbeat(instance_id, version)
        if before is None or record is None:
            raise NotFoundError("instance", instance_id)
        if record.drift and before.observed_version != version:
            self.ctx.audit("drift", record.service, instance_id,
                           f"heartbeat reports {version}, the record says "
                           f"{record.version or '(none)'}")
        assert record.last_heartbeat is not None
        return HeartbeatRecord(instance_id=instance_id, service=record.service,
                               version=version, recorded_version=record.version,
                               last_heartbeat=record.last_heartbeat, drift=record.drift)

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
        self._audit_registered(specs, "import")
        return specs

    def instance_ids(self, service: str) -> tuple[str, ...]:
        """IDs of every registered instance of ``service``, in ID order (none for a name
        no service has)."""
        return tuple(r.instance_id for r in self.ctx.store.instances.of_service(service))
