"""``floy reap``: close the runs whose worker is gone (reads never do)."""

from __future__ import annotations

import click

from orchestrator.cli.app import EXIT_CODES_HELP, Context, emit_json, pass_ctx


@click.command(epilog=EXIT_CODES_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of the closed run IDs.")
@pass_ctx
def reap(c: Context, as_json: bool) -> None:
    """Close every run whose worker died (lease expired, or never claimed): stop its
    orphaned ansible-playbook on this machine, probe its instances, record what their disk
    says, and end it failed. Every worker does this at its start; run it from a timer when
    no deployment may come for a while."""
    closed = c.service.reap_stale_runs()
    if as_json:
        emit_json(closed)
    elif closed:
        for run_id in closed:
            click.echo(f"{run_id}: closed as failed (worker lost); details: floy status {run_id}")
    else:
        click.echo("no run has lost its worker")
