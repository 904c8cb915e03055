"""``floy cancel``: stop a run and wait (bounded) until it has stopped."""

from __future__ import annotations

import sys

import click

from orchestrator.cli.app import EXIT_CODES_HELP, Context, emit_json, pass_ctx
from orchestrator.errors import ExitCode


@click.command(epilog=EXIT_CODES_HELP)
@click.argument("deploy_id")
@click.option("--wait", type=float, default=30.0, show_default=True,
              help="Seconds to wait for the run to stop.")
@click.option("--json", "as_json", is_flag=True, help="Print the spec's CancelResult JSON.")
@pass_ctx
def cancel(c: Context, deploy_id: str, wait: float, as_json: bool) -> None:
    """Cancel a deployment or rollback: no new batch starts, instances in flight are stopped
    and probed. Exits 7 if the run is still stopping when --wait runs out."""
    c.service.cancel_wait_seconds = max(0.0, wait)
    result = c.service.cancel_deployment(deploy_id)
    if as_json:
        emit_json(result.to_dict())
    elif result.cancelled_at is not None:
        click.echo(f"{deploy_id}: {result.status.value} at {result.cancelled_at:%H:%M:%S}Z; "
                   f"details: floy status {deploy_id}")
    else:
        click.echo(f"{deploy_id}: cancel requested, still stopping; "
                   f"watch: floy status {deploy_id} --watch", err=True)
    if result.cancelled_at is None:
        sys.exit(int(ExitCode.STILL_RUNNING))
    if result.status.value != "cancelled":
        sys.exit(int(ExitCode.CONFLICT))  # it finished on its own before the cancel landed
