"""``floy versions``: which version every instance of a service runs."""

from __future__ import annotations

import click

from orchestrator.cli.app import EXIT_CODES_HELP, Context, emit_json, pass_ctx


@click.command(epilog=EXIT_CODES_HELP)
@click.argument("service")
@click.option("--refresh", "probe_first", is_flag=True,
              help="Probe the instances first (drift is reported on stderr, not adopted).")
@click.option("--json", "as_json", is_flag=True, help="Print the spec's ServiceVersions JSON.")
@pass_ctx
def versions(c: Context, service: str, probe_first: bool, as_json: bool) -> None:
    """Which version every instance of SERVICE runs."""
    from orchestrator.cli import display

    if probe_first:
        for chk in c.service.refresh_versions(service):
            if chk.drift or not chk.reachable:
                click.echo(display.check_line(chk).strip(), err=True)
    result = c.service.get_service_instance_versions(service)
    if as_json:
        emit_json(result.to_dict())
    else:
        click.echo(display.render_versions(result))
