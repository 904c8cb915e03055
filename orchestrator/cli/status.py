"""``floy status``: a run's status, once or followed."""

from __future__ import annotations

import sys
import time

import click

from orchestrator.cli.app import (
    EXIT_CODES_HELP,
    Context,
    emit_json,
    follow,
    pass_ctx,
    run_exit_code,
)


@click.command(epilog=EXIT_CODES_HELP)
@click.argument("deploy_id")
@click.option("--watch", is_flag=True, help="Follow the run until it ends.")
@click.option("--json", "as_json", is_flag=True, help="Print the spec's DeployStatus JSON.")
@pass_ctx
def status(c: Context, deploy_id: str, watch: bool, as_json: bool) -> None:
    """Show a deployment's or rollback's status (exit 1 if it failed or was cancelled)."""
    from orchestrator.cli import display

    result = c.service.get_deployment_status(deploy_id)
    if watch and not result.status.is_terminal:
        if as_json:
            while not result.status.is_terminal:
                time.sleep(0.5)
                result = c.service.get_deployment_status(deploy_id)
        else:
            follow(c, deploy_id)
    if as_json:
        emit_json(result.to_dict())
    else:
        click.echo(display.render_status(result))
    sys.exit(run_exit_code(result.status.value))
