"""What every ``floy`` command shares: the context that builds the service on first use,
the root group, and following a run until it ends."""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import click

from orchestrator.errors import ExitCode, ValidationError

if TYPE_CHECKING:
    from orchestrator.service import FloyDeployService

EXIT_CODES_HELP = """Exit codes: 0 success; 1 the run failed or was cancelled; 2 bad input;
3 not found; 4 conflict (busy instance, reused ID); 5 execution error; 6 configuration or
database error; 7 still stopping; 130 interrupted; 70 internal error."""

log = logging.getLogger("floy")
#: The commands that run Ansible here (deploy, roll back, probe, carry or reap runs, or serve
#: those that do): their settings must name a usable inventory directory, checked before the
#: store is opened (the service checks again before it records a run).
INVENTORY_COMMANDS = frozenset({"deploy", "rollback", "refresh", "reap", "worker", "serve"})


@dataclass
class Context:
    """What every command needs; the service is built on first use."""

    home: str | None
    db_url: str | None
    inventory_dir: str | None
    #: The command runs Ansible here: check the inventory directory with the settings.
    needs_inventory: bool = False
    _service: FloyDeployService | None = None

    @property
    def service(self) -> FloyDeployService:
        if self._service is None:
            from orchestrator.service import open_service

            self._service = open_service(self.home, self.db_url, self.inventory_dir,
                                         logger=log, need_inventory=self.needs_inventory)
        return self._service


pass_ctx = click.make_pass_decorator(Context)


def emit_json(data: Any) -> None:
    """Print one JSON object."""
    click.echo(json.dumps(data, indent=2, sort_keys=False))


def run_exit_code(status_value: str) -> int:
    """Exit code for a run's status: failed and cancelled runs exit 1."""
    return int(ExitCode.RUN_FAILED) if status_value in ("failed", "cancelled") else 0


@click.group(epilog=EXIT_CODES_HELP)
@click.option("--home", envvar="FLOY_HOME", help="State directory (default ./.floy).")
@click.option("--db-url", envvar="FLOY_DB_URL",
              help="Database URL (default sqlite:///<home>/floy.db).")
@click.option("--inventory-dir", envvar="FLOY_INVENTORY_DIR",
              help="Operator inventory directory holding group_vars/ (connection and service "
                   "variables) and optionally host_vars/; a relative path is taken from the "
                   "working directory.")
@click.option("-v", "--verbose", is_flag=True, help="Log debug detail to stderr.")
@click.version_option(package_name="floy")
@click.pass_context
def cli(ctx: click.Context, home: str | None, db_url: str | None, inventory_dir: str | None,
        verbose: bool) -> None:
    """floy: rolling deploys and rollbacks of services, backed by Ansible."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    ctx.obj = Context(home, db_url, inventory_dir,
                      needs_inventory=ctx.invoked_subcommand in INVENTORY_COMMANDS)


def follow(c: Context, run_id: str, then_rollback: bool = False) -> None:
    from orchestrator.cli import display

    try:
        final = display.follow(lambda: c.service.get_deployment_status(run_id), sys.stdout)
        if then_rollback and final.rollback_id:
            click.echo(f"following the automatic rollback {final.rollback_id}")
            display.follow(lambda: c.service.get_deployment_status(final.rollback_id),
                           sys.stdout)
    except KeyboardInterrupt:
        worker = c.service.worker_pid(run_id)
        pid = f" (worker pid {worker})" if worker else ""
        click.echo(f"\nstopped following {run_id}; the run goes on in the background{pid}.\n"
                   f"  watch it:  floy status {run_id} --watch\n"
                   f"  stop it:   floy cancel {run_id}", err=True)
        sys.exit(int(ExitCode.INTERRUPTED))
    sys.exit(run_exit_code(final.status.value))


def after_start(c: Context, run_id: str, result: dict[str, Any], detach: bool,
                 as_json: bool, what: str) -> None:
    if as_json:
        emit_json(result)
        return
    if detach:
        click.echo(f"{what}: run {run_id}; follow with: floy status {run_id} --watch")
        return
    click.echo(f"{what} (run {run_id})")
    follow(c, run_id)


def instance_ids(c: Context, service: str, given: tuple[str, ...]) -> tuple[str, ...]:
    """The instances the -i options name; no -i at all means every instance of the service.

    A -i that names nothing (``-i ""``, ``-i ,``) is bad input, never "all": an empty
    variable in a script must not deploy to the whole service.
    """
    if given:
        ids = tuple(part.strip() for item in given for part in item.split(",") if part.strip())
        if not ids:
            raise ValidationError("instances", "-i names no instance; name at least one, or "
                                               "leave -i out to select every instance of "
                                               "the service")
        return ids
    ids = c.service.instance_ids(service)
    if not ids:
        raise ValidationError("instances", f"no instance given and none registered for "
                                           f"service {service!r}")
    return ids
