"""``floy deploy``: start a deployment and follow it."""

from __future__ import annotations

from typing import Any

import click

from orchestrator.cli.app import EXIT_CODES_HELP, Context, emit_json, follow, instance_ids, pass_ctx
from orchestrator.errors import ValidationError
from orchestrator.models import DEFAULT_BATCH_SIZE, DEFAULT_RETRY_COUNT, DEFAULT_TIMEOUT


@click.command(epilog=EXIT_CODES_HELP)
@click.argument("service")
@click.argument("version")
@click.option("--url", "package_url", required=True, help="HTTPS URL of the package (.tar.gz).")
@click.option("-i", "--instance", "instances", multiple=True,
              help="Instance ID (repeat, or comma-separated). Without -i: every instance of "
                   "SERVICE; a -i naming none is an error.")
@click.option("--sha256", "package_sha256", default="", help="Expected sha256 of the package.")
@click.option("--deploy-id", default="", help="Run ID (default: generated). Re-submitting the "
              "same ID with the same parameters returns the existing run.")
@click.option("--timeout", type=int, default=DEFAULT_TIMEOUT, show_default=True,
              help="Seconds allowed per instance attempt.")
@click.option("--retries", "retry_count", type=int, default=DEFAULT_RETRY_COUNT,
              show_default=True,
              help="Retries of an instance after a transient fetch or connection failure. "
              "A release that fails its restart or health check is switched back, not "
              "retried (operators: floy_health_retries in group_vars).")
@click.option("--batch-size", default=DEFAULT_BATCH_SIZE, show_default=True,
              help="Instances per serial batch: a count or a percentage (25%).")
@click.option("--max-failures", type=int, default=0, show_default=True,
              help="Failed instances tolerated; once exceeded, no further batch starts.")
@click.option("--auto-rollback", is_flag=True,
              help="If the deployment fails, roll the instances it switched back to their "
                   "previous version (a linked rollback run).")
@click.option("--node", default="",
              help="Run the playbook on this execution node (a name under `nodes:` in "
                   "config.yml) instead of on the worker.")
@click.option("--steps", default="",
              help="Canary steps instead of --batch-size: batch sizes and pauses, e.g. "
                   "'1,pause,10%,pause 5m,50%,100%' (a pause without a duration waits for "
                   "`floy promote`). See README 'Progressive delivery'.")
@click.option("--analysis", "analysis_file", type=click.Path(dir_okay=False),
              help="A YAML or JSON file defining the analysis run between batches (url, "
                   "query, min/max, count, interval, timeout, failure_limit).")
@click.option("--detach", is_flag=True, help="Return at once instead of following the run.")
@click.option("--json", "as_json", is_flag=True,
              help="Print the spec's DeployResult and return at once.")
@pass_ctx
def deploy(c: Context, service: str, version: str, package_url: str, instances: tuple[str, ...],
           package_sha256: str, deploy_id: str, timeout: int, retry_count: int, batch_size: str,
           max_failures: int, auto_rollback: bool, node: str, steps: str,
           analysis_file: str | None, detach: bool, as_json: bool) -> None:
    """Deploy VERSION of SERVICE from an HTTPS package, in serial batches."""
    from orchestrator.models import DeployParams
    from orchestrator.service.ids import generated_id

    ids = instance_ids(c, service, instances)
    params = DeployParams(
        service=service, version=version, instances=ids, package_url=package_url,
        deploy_id=deploy_id or generated_id("deploy", service, version),
        timeout=timeout, retry_count=retry_count, batch_size=batch_size,
        max_failures=max_failures, package_sha256=package_sha256, auto_rollback=auto_rollback,
        node=node, steps=tuple(steps.split(",")) if steps.strip() else (),
        analysis=read_analysis(analysis_file),
    )
    result = c.service.execute_deployment(params)
    if detach or as_json:
        if as_json:
            emit_json(result.to_dict())
        else:
            click.echo(f"deployment {result.deploy_id} started: {result.total_instances} "
                       f"instance(s); follow with: floy status {result.deploy_id} --watch")
        return
    shape = f"in steps {steps}" if steps.strip() else f"in batches of {batch_size}"
    click.echo(f"deploying {service} {version} to {len(ids)} instance(s) {shape} "
               f"(run {result.deploy_id})")
    follow(c, result.deploy_id, then_rollback=auto_rollback)


def read_analysis(path: str | None) -> dict[str, Any] | None:
    """The analysis definition in a YAML or JSON file (None without one); a file that
    cannot be read or holds no mapping is refused naming ``analysis``."""
    if path is None:
        return None
    import yaml

    try:
        with open(path, encoding="utf-8") as stream:
            data = yaml.safe_load(stream)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ValidationError("analysis", f"cannot read {path}: {exc}") from None
    if not isinstance(data, dict):
        raise ValidationError("analysis", f"{path} must hold a mapping (url, query, ...)")
    return data
