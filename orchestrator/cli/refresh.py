"""``floy refresh``: probe a service's instances and report drift."""

from __future__ import annotations

import sys

import click

from orchestrator.cli.app import EXIT_CODES_HELP, Context, emit_json, pass_ctx
from orchestrator.errors import ExitCode


@click.command(epilog=EXIT_CODES_HELP)
@click.argument("service")
@click.option("--adopt", is_flag=True,
              help="Make what the hosts run the recorded version (instead of reporting drift).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of checks.")
@pass_ctx
def refresh(c: Context, service: str, adopt: bool, as_json: bool) -> None:
    """Probe every instance of SERVICE and report drift from the record (exit 1 on drift or
    unreachable instances)."""
    from orchestrator.cli import display

    checks = c.service.refresh_versions(service, adopt=adopt)
    if as_json:
        emit_json([chk.to_dict() for chk in checks])
    else:
        click.echo(display.render_checks(service, checks))
    if any((chk.drift and not chk.adopted) or not chk.reachable for chk in checks):
        sys.exit(int(ExitCode.RUN_FAILED))
