"""``floy instances add|import|list``: register and list instances."""

from __future__ import annotations

from pathlib import Path

import click

from orchestrator.cli.app import EXIT_CODES_HELP, Context, emit_json, pass_ctx
from orchestrator.errors import ValidationError
from orchestrator.models import DEFAULT_LIMIT, DEFAULT_OFFSET


@click.group()
def instances() -> None:
    """Register and list instances."""


@instances.command("add", epilog=EXIT_CODES_HELP)
@click.argument("instance_id")
@click.option("--service", required=True)
@click.option("--host", required=True, help="Address Ansible connects to (ansible_host).")
@click.option("--port", type=int, required=True, help="The instance's service port.")
@click.option("--meta", multiple=True, help="Metadata KEY=VALUE (repeatable).")
@click.option("--replace", is_flag=True, help="Update an instance that is already registered.")
@pass_ctx
def instances_add(c: Context, instance_id: str, service: str, host: str, port: int,
                  meta: tuple[str, ...], replace: bool) -> None:
    """Register one instance of a service."""
    from orchestrator.models import InstanceSpec

    metadata: dict[str, str] = {}
    for item in meta:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValidationError("metadata", f"expected KEY=VALUE, got {item!r}")
        metadata[key] = value
    [spec] = c.service.register_instances(
        [InstanceSpec(instance_id, service, host, port, metadata)], replace=replace)
    click.echo(f"registered {spec.instance_id} ({spec.service} at {spec.host}:{spec.port})")


@instances.command("import", epilog=EXIT_CODES_HELP)
@click.argument("inventory")
@click.option("--service", required=True, help="Service the imported instances belong to.")
@click.option("--group", default="", help="Inventory group to import (default: SERVICE).")
@click.option("--port-var", default="floy_instance_port", show_default=True,
              help="Host variable holding the service port.")
@click.option("--meta-var", multiple=True, help="Host variable to keep as metadata (repeat).")
@click.option("--replace", is_flag=True, help="Update instances that are already registered.")
@click.option("--timeout", type=float, default=30.0,
              show_default=True,
              help="Seconds allowed for ansible-inventory to read the inventory (scripts and "
                   "plugins included), above 0 and at most 3600.")
@pass_ctx
def instances_import(c: Context, inventory: str, service: str, group: str, port_var: str,
                     meta_var: tuple[str, ...], replace: bool, timeout: float) -> None:
    """Import the hosts of an Ansible inventory group as instances (via ansible-inventory)."""
    from orchestrator.cli.display import safe_text

    specs = c.service.import_instances(Path(inventory), service, group, port_var, meta_var,
                                       replace=replace, timeout=timeout)
    click.echo(f"imported {len(specs)} instance(s) of {service} from {safe_text(inventory)}")


@instances.command("list", epilog=EXIT_CODES_HELP)
@click.argument("service")
@click.option("--version", "version_filter", default="", help="Only instances on this version.")
@click.option("--limit", type=int, default=DEFAULT_LIMIT, show_default=True)
@click.option("--offset", type=int, default=DEFAULT_OFFSET, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the spec's ServiceInstances JSON.")
@pass_ctx
def instances_list(c: Context, service: str, version_filter: str, limit: int, offset: int,
                   as_json: bool) -> None:
    """List a service's instances (mirrors get_service_instances)."""
    from orchestrator.cli import display
    from orchestrator.models import InstanceQueryParams

    page = c.service.get_service_instances(
        InstanceQueryParams(service_name=service, version=version_filter, limit=limit,
                            offset=offset)
    )
    if as_json:
        emit_json(page.to_dict())
    else:
        click.echo(display.render_instances(page))
