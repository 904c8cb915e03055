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
                      help="HTTPS package URL (default: the release on the host, or the URL "
                           "recorded when that version last completed there).")(fn)
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
    after_start(c, result.rollback_id, result.to_dict(), detach, as_json,
                 f"rolling {instance_id} back to {target_version}")


@rollback.command("batch", epilog=EXIT_CODES_HELP)
@click.argument("service")
@click.argument("target_version")
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
    """Roll instances of SERVICE back to TARGET_VERSION in serial batches."""
    from orchestrator.models import BatchRollbackParams

    ids = instance_ids(c, service, instances)
    result = c.service.rollback_batch(BatchRollbackParams(
        service=service, target_version=target_version, instances=ids,
        package_url=package_url, force=force, timeout=timeout, batch_size=batch_size,
        max_failures=max_failures, rollback_id=rollback_id))
    after_start(c, result.rollback_id, result.to_dict(), detach, as_json,
                 f"rolling {len(ids)} instance(s) of {service} back to {target_version} in "
                 f"batches of {batch_size}")
