"""``floy rollback instance|batch``: roll instances back to an earlier version."""

from __future__ import annotations

from typing import Any

import click

from orchestrator.cli.app import EXIT_CODES_HELP, Context, after_start, instance_ids, pass_ctx
from orchestrator.models import DEFAULT_BATCH_SIZE, DEFAULT_TIMEOUT


@click.group()
def rollback() -> None:
    """Roll instances back to a version they ran before (a run you can watch and cancel)."""


def _rollback_options(fn: Any) -> Any:
    fn = click.option("--url", "package_url", default="",
                      help="HTTPS package URL of TARGET_VERSION (default: the release on the "
                           "host, or the URL recorded when that version last completed "
                           "there).")(fn)
    fn = click.option("--force", is_flag=True,
                      help="Cancel any run holding the instances first, and reinstall even "
                           "if the target is current.")(fn)
    fn = click.option("--timeout", type=int, default=DEFAULT_TIMEOUT, show_default=True,
                      help="Seconds allowed per instance.")(fn)
    fn = click.option("--rollback-id", default="", help="Run ID (default: generated).")(fn)
    fn = click.option("--detach", is_flag=True, help="Return at once.")(fn)
    fn = click.option("--json", "as_json", is_flag=True,
                      help="Print the spec's result JSON and return at once.")(fn)
    return fn


@rollback.command("instance", epilog=EXIT_CODES_HELP)
@click.argument("instance_id")
@click.argument("target_version", default="", required=False)
@_rollback_options
@pass_ctx
def rollback_instance(c: Context, instance_id: str, target_version: str, package_url: str,
                      force: bool, timeout: int, rollback_id: str, detach: bool,
                      as_json: bool) -> None:
    """Roll INSTANCE_ID back to TARGET_VERSION.

    Without TARGET_VERSION: to the version INSTANCE_ID ran before its current one, as
    floy's records know it (bad input, exit 2, when they do not).
    """
    from orchestrator.models import InstanceRollbackParams

    result = c.service.rollback_instance(InstanceRollbackParams(
        instance_id=instance_id, target_version=target_version, package_url=package_url,
        force=force, timeout=timeout, rollback_id=rollback_id))
    target = _shown(c, result.rollback_id, result.target_version, given=target_version,
                    as_json=as_json)
    after_start(c, result.rollback_id, result.to_dict(), detach, as_json,
                 f"rolling {instance_id} back to {target}")


def _shown(c: Context, run_id: str, resolved: str, given: str, as_json: bool) -> str:
    """The target version as the message shows it: one floy resolved (no version given)
    names the version it was before (the run's instances all came from that one)."""
    if given or as_json:
        return resolved
    members = c.service.get_deployment_status(run_id).instances
    before = members[0].previous_version if members else ""
    return f"{resolved}, the version before {before}" if before else resolved


@rollback.command("batch", epilog=EXIT_CODES_HELP)
@click.argument("service")
@click.argument("target_version", default="", required=False)
@click.option("-i", "--instance", "instances", multiple=True,
              help="Instance ID (repeat, or comma-separated). Without -i: every instance; "
                   "a -i naming none is an error.")
@click.option("--batch-size", default=DEFAULT_BATCH_SIZE, show_default=True)
@click.option("--max-failures", type=int, default=0, show_default=True)
@_rollback_options
@pass_ctx
def rollback_batch(c: Context, service: str, target_version: str, instances: tuple[str, ...],
                   batch_size: str, max_failures: int, package_url: str, force: bool,
                   timeout: int, rollback_id: str, detach: bool, as_json: bool) -> None:
    """Roll instances of SERVICE back to TARGET_VERSION in serial batches.

    Without TARGET_VERSION: to the one version the instances ran before their current
    one, when they all run the same version and all came from the same one; otherwise bad
    input (exit 2) naming the instances that disagree: give TARGET_VERSION, or roll them
    back one at a time.
    """
    from orchestrator.models import BatchRollbackParams

    ids = instance_ids(c, service, instances)
    result = c.service.rollback_batch(BatchRollbackParams(
        service=service, target_version=target_version, instances=ids,
        package_url=package_url, force=force, timeout=timeout, batch_size=batch_size,
        max_failures=max_failures, rollback_id=rollback_id))
    target = _shown(c, result.rollback_id, result.target_version, given=target_version,
                    as_json=as_json)
    after_start(c, result.rollback_id, result.to_dict(), detach, as_json,
                 f"rolling {len(ids)} instance(s) of {service} in batches of {batch_size} "
                 f"back to {target}")
