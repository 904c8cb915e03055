"""``floy promote`` and ``floy abort``: the operator's decisions at a canary's gates."""

from __future__ import annotations

import sys

import click

from orchestrator.cli.app import EXIT_CODES_HELP, Context, emit_json, pass_ctx
from orchestrator.errors import ExitCode


@click.command(epilog=EXIT_CODES_HELP)
@click.argument("deploy_id")
@click.option("--full", is_flag=True,
              help="Also skip every pause still to come (analysis gates still run).")
@click.option("--json", "as_json", is_flag=True, help="Print the DeployStatus JSON.")
@pass_ctx
def promote(c: Context, deploy_id: str, full: bool, as_json: bool) -> None:
    """Let a paused deployment go on to its next batch. Exits 4 if it is not paused
    (unless --full) or has finished."""
    from orchestrator.cli.display import canary_lines, safe_text

    status = c.service.promote_deployment(deploy_id, full=full)
    if as_json:
        emit_json(status.to_dict())
        return
    what = "promoted fully (the remaining pauses are skipped)" if full else "promoted"
    click.echo(f"{safe_text(deploy_id)}: {what}; follow with: floy status {deploy_id} --watch")
    if status.canary is not None:
        click.echo("\n".join(canary_lines(status.canary)))


@click.command(epilog=EXIT_CODES_HELP)
@click.argument("deploy_id")
@click.option("--rollback", is_flag=True,
              help="Roll the instances it switched back to the version they ran before.")
@click.option("--wait", type=float, default=30.0, show_default=True,
              help="Seconds to wait for the deployment to stop.")
@click.option("--json", "as_json", is_flag=True, help="Print the DeployStatus JSON.")
@pass_ctx
def abort(c: Context, deploy_id: str, rollback: bool, wait: float, as_json: bool) -> None:
    """Stop a deployment (recorded as an abort, with who made it): no new batch starts,
    instances in flight are stopped and probed. Exits 7 if it is still stopping when
    --wait runs out."""
    from orchestrator.cli.display import safe_text

    c.service.cancel_wait_seconds = max(0.0, wait)
    status = c.service.abort_deployment(deploy_id, rollback=rollback)
    if as_json:
        emit_json(status.to_dict())
    elif status.status.is_terminal:
        click.echo(f"{safe_text(deploy_id)}: {status.status.value}"
                   + (f"; rolling back: floy status {status.rollback_id} --watch"
                      if status.rollback_id else "")
                   + f"; details: floy status {deploy_id}")
    else:
        click.echo(f"{safe_text(deploy_id)}: abort requested, still stopping; watch: "
                   f"floy status {deploy_id} --watch", err=True)
    if not status.status.is_terminal:
        sys.exit(int(ExitCode.STILL_RUNNING))
