"""``floy history``: a service's deployments and rollbacks, or its audit trail."""

from __future__ import annotations

import click

from orchestrator.cli.app import EXIT_CODES_HELP, Context, emit_json, pass_ctx


@click.command(epilog=EXIT_CODES_HELP)
@click.argument("service")
@click.option("--limit", type=int, default=20, show_default=True)
@click.option("--actions", "show_actions", is_flag=True,
              help="Show the audit trail instead: every deploy, rollback, cancel, "
                   "registration and heartbeat drift, with who made it (an OS user, or "
                   "token:<name> over HTTP).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of runs (or actions).")
@pass_ctx
def history(c: Context, service: str, limit: int, show_actions: bool, as_json: bool) -> None:
    """Deployments and rollbacks of SERVICE: who, when, which version, outcome."""
    from orchestrator.cli import display

    if show_actions:
        actions = c.service.actions(service, limit)
        if as_json:
            emit_json([a.to_dict() for a in actions])
        else:
            click.echo(display.render_actions(service, actions))
        return
    runs = c.service.history(service, limit)
    if as_json:
        emit_json([r.to_dict() for r in runs])
    else:
        click.echo(display.render_history(service, runs))
