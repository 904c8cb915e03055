"""The spec's VersionManager, and version truth: what the hosts really run."""

from __future__ import annotations

from collections import Counter

from orchestrator.domain import validation
from orchestrator.domain.records import ServiceOverview, VersionCheck
from orchestrator.errors import NotFoundError
from orchestrator.models import (
    InstanceInfo,
    InstanceQueryParams,
    InstanceVersion,
    ServiceInstances,
    ServiceVersions,
)
from orchestrator.service.context import ServiceContext
from orchestrator.timefmt import parse_time


class Versions:
    """Which version every instance runs, and the instances themselves (spec section 3)."""

    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx

    def get_service_instance_versions(self, service: str) -> ServiceVersions:
        """The version every instance of ``service`` runs, as last recorded."""
        service = validation.validate_name("service", service)
        rows = self.ctx.store.views.service_versions(service)
        if not rows:
            raise NotFoundError("service", service)
        entries = tuple(
            InstanceVersion(r.instance_id, r.version,
                            None if r.last_updated is None else parse_time(r.last_updated))
            for r in rows
        )
        stamps = [e.last_updated for e in entries if e.last_updated is not None]
        return ServiceVersions(
            service=service,
            instances=entries,
            version_summary=dict(Counter(e.version for e in entries)),
            total_instances=len(entries),
            updated_at=max(stamps) if stamps else self.ctx.clock(),
        )

    def get_service_instances(self, params: InstanceQueryParams) -> ServiceInstances:
        """A page of a service's instances, optionally only those on one version."""
        params = validation.validate_instance_query(params)
        store = self.ctx.store
        if not store.instances.service_exists(params.service_name):
            raise NotFoundError("service", params.service_name)
        records, total = store.instances.page(
            params.service_name, params.version, params.limit, params.offset
        )
        return ServiceInstances(
            service=params.service_name,
            instances=tuple(
                InstanceInfo(
                    instance_id=r.instance_id,
                    host=r.host,
                    port=r.port,
                    version=r.version,
                    last_heartbeat=r.last_heartbeat,
                    metadata=dict(r.metadata),
                )
                for r in records
            ),
            total=total,
            limit=params.limit,
            offset=params.offset,
        )

    def services(self) -> list[ServiceOverview]:
        """Every service with its version distribution, drifting instances and newest
        heartbeat, in name order."""
        return [ServiceOverview(name, summary, tuple(drifting),
                                None if beat is None else parse_time(beat))
                for name, summary, drifting, beat in self.ctx.store.instances.services()]

    def refresh_versions(self, service: str, adopt: bool = False) -> list[VersionCheck]:
        """Probe every instance of ``service`` and compare its disk with the record.

        A disagreement is drift: reported and kept next to the record, not silently
        written over it, unless ``adopt`` (then the disk becomes the record). A version read
        from a host that fails validation is never stored nor adopted: it is reported as
        drift, as read, with the reason in ``error``.
        """
        service = validation.validate_inventory_name("service", service)
        self.ctx.settings.require_inventory()
        store = self.ctx.store
        records = store.instances.of_service(service)
        if not records:
            raise NotFoundError("service", service)
        seen = self.ctx.executor.probe(service, records)
        truths = {i: o.current_version for i, o in seen.items() if o.trusted}
        store.instances.record_observations(truths, authoritative=adopt)
        checks = []
        for r in records:
            obs = seen[r.instance_id]
            checks.append(VersionCheck(
                instance_id=r.instance_id,
                recorded_version=r.version,
                observed_version=obs.refused_version or obs.current_version,
                reachable=obs.reachable,
                error=obs.error,
                adopted=adopt and obs.trusted and obs.current_version != r.version,
            ))
        return checks
