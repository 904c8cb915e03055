"""The ``floy`` command line: thin click commands over the service.

Each command parses options, builds a params value, calls one service method and renders
the result; ``--json`` prints exactly the spec's JSON object. Errors are turned into a
message and an exit code in one place (:func:`main`). Heavy imports (SQLAlchemy,
ansible-runner) happen only in commands that need them, so ``floy --help`` stays fast.
"""

from __future__ import annotations

import io
import json
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from orchestrator.errors import ExitCode, FloyError, ValidationError

if TYPE_CHECKING:
    from orchestrator.service import FloyDeployService
    from orchestrator.settings import Settings
    from orchestrator.store import Store

EXIT_CODES_HELP = """Exit codes: 0 success; 1 the run failed or was cancelled; 2 bad input;
3 not found; 4 conflict (busy instance, reused ID); 5 execution error; 6 configuration or
database error; 7 still stopping; 130 interrupted; 70 internal error."""

log = logging.getLogger("floy")


@dataclass
class Context:
    """What every command needs; the service is built on first use."""

    home: str | None
    db_url: str | None
    inventory_dir: str | None
    _settings: Settings | None = None
    _store: Store | None = None
    _service: FloyDeployService | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            from orchestrator.settings import load_settings

            self._settings = load_settings(self.home, self.db_url, self.inventory_dir)
        return self._settings

    @property
    def store(self) -> Store:
        if self._store is None:
            from orchestrator.store import Store

            self._store = Store.open(self.settings.db_url)
        return self._store

    @property
    def service(self) -> FloyDeployService:
        if self._service is None:
            from orchestrator.executor import ProcessExecutor
            from orchestrator.service import new_deploy_service

            self._service = new_deploy_service(
                log, ProcessExecutor(self.settings), self.store, self.settings
            )
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
                   "variables).")
@click.option("-v", "--verbose", is_flag=True, help="Log debug detail to stderr.")
@click.version_option(package_name="floy")
@click.pass_context
def cli(ctx: click.Context, home: str | None, db_url: str | None, inventory_dir: str | None,
        verbose: bool) -> None:
    """floy: rolling deploys and rollbacks of services, backed by Ansible."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    ctx.obj = Context(home, db_url, inventory_dir)


# -- deploy ---------------------------------------------------------------------------------
@cli.command(epilog=EXIT_CODES_HELP)
@click.argument("service")
@click.argument("version")
@click.option("--url", "package_url", required=True, help="HTTPS URL of the package (.tar.gz).")
@click.option("-i", "--instance", "instances", multiple=True,
              help="Instance ID (repeat, or comma-separated). Without -i: every instance of "
                   "SERVICE; a -i naming none is an error.")
@click.option("--sha256", "package_sha256", default="", help="Expected sha256 of the package.")
@click.option("--deploy-id", default="", help="Run ID (default: generated). Re-submitting the "
              "same ID with the same parameters returns the existing run.")
@click.option("--timeout", type=int, default=300, show_default=True,
              help="Seconds allowed per instance attempt.")
@click.option("--retries", "retry_count", type=int, default=3, show_default=True,
              help="Retries of a failed instance before it counts as failed.")
@click.option("--batch-size", default="1", show_default=True,
              help="Instances per serial batch: a count or a percentage (25%).")
@click.option("--max-failures", type=int, default=0, show_default=True,
              help="Failed instances tolerated; once exceeded, no further batch starts.")
@click.option("--auto-rollback", is_flag=True,
              help="If the deployment fails, roll the instances it switched back to their "
                   "previous version (a linked rollback run).")
@click.option("--detach", is_flag=True, help="Return at once instead of following the run.")
@click.option("--json", "as_json", is_flag=True,
              help="Print the spec's DeployResult and return at once.")
@pass_ctx
def deploy(c: Context, service: str, version: str, package_url: str, instances: tuple[str, ...],
           package_sha256: str, deploy_id: str, timeout: int, retry_count: int, batch_size: str,
           max_failures: int, auto_rollback: bool, detach: bool, as_json: bool) -> None:
    """Deploy VERSION of SERVICE from an HTTPS package, in serial batches."""
    from orchestrator.models import DeployParams

    ids = _instance_ids(c, service, instances)
    params = DeployParams(
        service=service, version=version, instances=ids, package_url=package_url,
        deploy_id=deploy_id or _generated_id("deploy", service, version),
        timeout=timeout, retry_count=retry_count, batch_size=batch_size,
        max_failures=max_failures, package_sha256=package_sha256, auto_rollback=auto_rollback,
    )
    result = c.service.execute_deployment(params)
    if detach or as_json:
        if as_json:
            emit_json(result.to_dict())
        else:
            click.echo(f"deployment {result.deploy_id} started: {result.total_instances} "
                       f"instance(s); follow with: floy status {result.deploy_id} --watch")
        return
    click.echo(f"deploying {service} {version} to {len(ids)} instance(s) in batches of "
               f"{batch_size} (run {result.deploy_id})")
    _follow(c, result.deploy_id, then_rollback=auto_rollback)


def _generated_id(kind: str, service: str, version: str) -> str:
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    return f"{kind}-{service}-{version}-{stamp}-{int(time.time() * 1000) % 1000:03d}"[:128]


def _follow(c: Context, run_id: str, then_rollback: bool = False) -> None:
    from orchestrator import display

    try:
        final = display.follow(lambda: c.service.get_deployment_status(run_id), sys.stdout)
        if then_rollback and final.rollback_id:
            click.echo(f"following the automatic rollback {final.rollback_id}")
            display.follow(lambda: c.service.get_deployment_status(final.rollback_id),
                           sys.stdout)
    except KeyboardInterrupt:
        run = c.store.get_run(run_id)
        pid = f" (worker pid {run.worker_pid})" if run and run.worker_pid else ""
        click.echo(f"\nstopped following {run_id}; the run goes on in the background{pid}.\n"
                   f"  watch it:  floy status {run_id} --watch\n"
                   f"  stop it:   floy cancel {run_id}", err=True)
        sys.exit(int(ExitCode.INTERRUPTED))
    sys.exit(run_exit_code(final.status.value))


# -- status ---------------------------------------------------------------------------------
@cli.command(epilog=EXIT_CODES_HELP)
@click.argument("deploy_id")
@click.option("--watch", is_flag=True, help="Follow the run until it ends.")
@click.option("--json", "as_json", is_flag=True, help="Print the spec's DeployStatus JSON.")
@pass_ctx
def status(c: Context, deploy_id: str, watch: bool, as_json: bool) -> None:
    """Show a deployment's or rollback's status (exit 1 if it failed or was cancelled)."""
    from orchestrator import display

    result = c.service.get_deployment_status(deploy_id)
    if watch and not result.status.is_terminal:
        if as_json:
            while not result.status.is_terminal:
                time.sleep(0.5)
                result = c.service.get_deployment_status(deploy_id)
        else:
            _follow(c, deploy_id)
    if as_json:
        emit_json(result.to_dict())
    else:
        click.echo(display.render_status(result))
    sys.exit(run_exit_code(result.status.value))


# -- cancel ---------------------------------------------------------------------------------
@cli.command(epilog=EXIT_CODES_HELP)
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


# -- rollback -------------------------------------------------------------------------------
@cli.group()
def rollback() -> None:
    """Roll instances back to a version they ran before (a run you can watch and cancel)."""


def _rollback_options(fn: Any) -> Any:
    fn = click.option("--url", "package_url", default="",
                      help="HTTPS package URL (default: the release on the host, or the URL "
                           "recorded when that version last completed there).")(fn)
    fn = click.option("--force", is_flag=True,
                      help="Cancel any run holding the instances first, and reinstall even "
                           "if the target is current.")(fn)
    fn = click.option("--timeout", type=int, default=300, show_default=True,
                      help="Seconds allowed per instance.")(fn)
    fn = click.option("--rollback-id", default="", help="Run ID (default: generated).")(fn)
    fn = click.option("--detach", is_flag=True, help="Return at once.")(fn)
    fn = click.option("--json", "as_json", is_flag=True,
                      help="Print the spec's result JSON and return at once.")(fn)
    return fn


@rollback.command("instance", epilog=EXIT_CODES_HELP)
@click.argument("instance_id")
@click.argument("target_version")
@_rollback_options
@pass_ctx
def rollback_instance(c: Context, instance_id: str, target_version: str, package_url: str,
                      force: bool, timeout: int, rollback_id: str, detach: bool,
                      as_json: bool) -> None:
    """Roll INSTANCE_ID back to TARGET_VERSION."""
    from orchestrator.models import InstanceRollbackParams

    result = c.service.rollback_instance(InstanceRollbackParams(
        instance_id=instance_id, target_version=target_version, package_url=package_url,
        force=force, timeout=timeout, rollback_id=rollback_id))
    _after_start(c, result.rollback_id, result.to_dict(), detach, as_json,
                 f"rolling {instance_id} back to {target_version}")


@rollback.command("batch", epilog=EXIT_CODES_HELP)
@click.argument("service")
@click.argument("target_version")
@click.option("-i", "--instance", "instances", multiple=True,
              help="Instance ID (repeat, or comma-separated). Without -i: every instance; "
                   "a -i naming none is an error.")
@click.option("--batch-size", default="1", show_default=True)
@click.option("--max-failures", type=int, default=0, show_default=True)
@_rollback_options
@pass_ctx
def rollback_batch(c: Context, service: str, target_version: str, instances: tuple[str, ...],
                   batch_size: str, max_failures: int, package_url: str, force: bool,
                   timeout: int, rollback_id: str, detach: bool, as_json: bool) -> None:
    """Roll instances of SERVICE back to TARGET_VERSION in serial batches."""
    from orchestrator.models import BatchRollbackParams

    ids = _instance_ids(c, service, instances)
    result = c.service.rollback_batch(BatchRollbackParams(
        service=service, target_version=target_version, instances=ids,
        package_url=package_url, force=force, timeout=timeout, batch_size=batch_size,
        max_failures=max_failures, rollback_id=rollback_id))
    _after_start(c, result.rollback_id, result.to_dict(), detach, as_json,
                 f"rolling {len(ids)} instance(s) of {service} back to {target_version} in "
                 f"batches of {batch_size}")


def _after_start(c: Context, run_id: str, result: dict[str, Any], detach: bool,
                 as_json: bool, what: str) -> None:
    if as_json:
        emit_json(result)
        return
    if detach:
        click.echo(f"{what}: run {run_id}; follow with: floy status {run_id} --watch")
        return
    click.echo(f"{what} (run {run_id})")
    _follow(c, run_id)


def _instance_ids(c: Context, service: str, given: tuple[str, ...]) -> tuple[str, ...]:
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
    ids = tuple(r.instance_id for r in c.store.service_instances(service))
    if not ids:
        raise ValidationError("instances", f"no instance given and none registered for "
                                           f"service {service!r}")
    return ids


# -- history --------------------------------------------------------------------------------
@cli.command(epilog=EXIT_CODES_HELP)
@click.argument("service")
@click.option("--limit", type=int, default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of runs.")
@pass_ctx
def history(c: Context, service: str, limit: int, as_json: bool) -> None:
    """Deployments and rollbacks of SERVICE: who, when, which version, outcome."""
    from orchestrator import display

    runs = c.service.history(service, limit)
    if as_json:
        emit_json([r.to_dict() for r in runs])
    else:
        click.echo(display.render_history(service, runs))


# -- refresh --------------------------------------------------------------------------------
@cli.command(epilog=EXIT_CODES_HELP)
@click.argument("service")
@click.option("--adopt", is_flag=True,
              help="Make what the hosts run the recorded version (instead of reporting drift).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of checks.")
@pass_ctx
def refresh(c: Context, service: str, adopt: bool, as_json: bool) -> None:
    """Probe every instance of SERVICE and report drift from the record (exit 1 on drift or
    unreachable instances)."""
    from orchestrator import display

    checks = c.service.refresh_versions(service, adopt=adopt)
    if as_json:
        emit_json([chk.to_dict() for chk in checks])
    else:
        click.echo(display.render_checks(service, checks))
    if any((chk.drift and not chk.adopted) or not chk.reachable for chk in checks):
        sys.exit(int(ExitCode.RUN_FAILED))


# -- versions -------------------------------------------------------------------------------
@cli.command(epilog=EXIT_CODES_HELP)
@click.argument("service")
@click.option("--refresh", "probe_first", is_flag=True,
              help="Probe the instances first (drift is reported on stderr, not adopted).")
@click.option("--json", "as_json", is_flag=True, help="Print the spec's ServiceVersions JSON.")
@pass_ctx
def versions(c: Context, service: str, probe_first: bool, as_json: bool) -> None:
    """Which version every instance of SERVICE runs."""
    from orchestrator import display

    if probe_first:
        for chk in c.service.refresh_versions(service):
            if chk.drift or not chk.reachable:
                click.echo(display.check_line(chk).strip(), err=True)
    result = c.service.get_service_instance_versions(service)
    if as_json:
        emit_json(result.to_dict())
    else:
        click.echo(display.render_versions(result))


# -- instances ------------------------------------------------------------------------------
@cli.group()
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
    from orchestrator.validation import validate_instance_spec

    metadata: dict[str, str] = {}
    for item in meta:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValidationError("metadata", f"expected KEY=VALUE, got {item!r}")
        metadata[key] = value
    spec = validate_instance_spec(InstanceSpec(instance_id, service, host, port, metadata))
    c.store.add_instances([spec], replace=replace)
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
    from orchestrator.display import safe_text
    from orchestrator.importer import read_inventory_group

    specs = read_inventory_group(Path(inventory), service, group or service, port_var, meta_var,
                                 timeout=timeout)
    c.store.add_instances(specs, replace=replace)
    click.echo(f"imported {len(specs)} instance(s) of {service} from {safe_text(inventory)}")


@instances.command("list", epilog=EXIT_CODES_HELP)
@click.argument("service")
@click.option("--version", "version_filter", default="", help="Only instances on this version.")
@click.option("--limit", type=int, default=100, show_default=True)
@click.option("--offset", type=int, default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the spec's ServiceInstances JSON.")
@pass_ctx
def instances_list(c: Context, service: str, version_filter: str, limit: int, offset: int,
                   as_json: bool) -> None:
    """List a service's instances (mirrors get_service_instances)."""
    from orchestrator import display
    from orchestrator.models import InstanceQueryParams

    page = c.service.get_service_instances(
        InstanceQueryParams(service_name=service, version=version_filter, limit=limit,
                            offset=offset)
    )
    if as_json:
        emit_json(page.to_dict())
    else:
        click.echo(display.render_instances(page))


# -- error boundary -------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> None:
    """Console entry point: the one place errors become messages and exit codes.

    Messages may quote stored or user-supplied text, so they are printed through
    :func:`~orchestrator.display.safe_text` (``--json`` errors are JSON-escaped instead).
    """
    from orchestrator.display import safe_text

    as_json = "--json" in (argv if argv is not None else sys.argv[1:])
    try:
        cli.main(args=argv, prog_name="floy", standalone_mode=False)
    except FloyError as exc:
        if as_json:
            click.echo(json.dumps(exc.to_dict()), err=True)
        else:
            click.echo(f"floy: {safe_text(str(exc))}", err=True)
        sys.exit(int(exc.exit_code))
    except click.exceptions.Abort:
        click.echo("floy: interrupted", err=True)
        sys.exit(int(ExitCode.INTERRUPTED))
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        shown = io.StringIO()
        exc.show(file=shown)  # usage and hint lines are click's own: keep their newlines
        click.echo(safe_text(shown.getvalue(), keep_newlines=True), err=True, nl=False)
        sys.exit(int(ExitCode.BAD_INPUT))
    except KeyboardInterrupt:
        click.echo("floy: interrupted", err=True)
        sys.exit(int(ExitCode.INTERRUPTED))
    except Exception:
        log.debug("internal error", exc_info=True)
        import traceback

        click.echo("floy: internal error (run with -v for the traceback):\n"
                   + safe_text(traceback.format_exc().splitlines()[-1]), err=True)
        sys.exit(int(ExitCode.INTERNAL))
