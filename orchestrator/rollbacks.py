"""Rollback runs: which package each instance goes back to, and the run records.

A rollback is a run of kind ``rollback`` over ``playbooks/rollback.yml`` (the same path as a
deployment). Its target must be a release that once completed on the instance, unless a
package URL is given: the release history (``releases`` table) records only completed
releases, so a failed or half-built one can never be chosen. On the host, a complete
``releases/<target>`` is reused without a download (the fast path); otherwise the package
comes from the request's URL or the URL recorded in the history.

The package policy of today (HTTPS, ``allowed_package_hosts``) applies to every URL floy
hands to a host, whatever its source: a URL recorded in the history is checked again when
it is chosen, as if it had been given on the command line.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from orchestrator.errors import ValidationError
from orchestrator.models import Status
from orchestrator.plan import batch_numbers
from orchestrator.store import RunInstanceRecord, RunRecord, Store
from orchestrator.timefmt import utcnow
from orchestrator.validation import validate_package_url


@dataclass(frozen=True)
class Target:
    """Where one instance's rollback package comes from."""

    instance_id: str
    package_url: str
    package_sha256: str
    current_version: str


def resolve_targets(
    store: Store,
    instance_ids: Sequence[str],
    version: str,
    package_url: str,
    field: str,
    allowed_hosts: frozenset[str],
) -> list[Target]:
    """Per-instance package of a rollback to ``version``; refuses never-completed versions.

    ``package_url`` (already validated) wins; otherwise the URL recorded when the version
    completed there, which must pass the current policy (``allowed_hosts``, HTTPS).
    Raises ValidationError naming ``field`` (e.g. ``instances[2]``) before anything runs.
    """
    known = store.get_instances(instance_ids)
    targets = []
    for index, instance_id in enumerate(instance_ids):
        record = known[instance_id]
        entry = store.completed_release(instance_id, version)
        name = field if len(instance_ids) == 1 else f"{field}[{index}]"
        if package_url:
            sha = entry["sha256"] if entry and entry["package_url"] == package_url else ""
            targets.append(Target(instance_id, package_url, sha, record.version))
        elif entry is not None:
            recorded = entry["package_url"]
            if recorded and not _allowed(recorded, allowed_hosts):
                raise ValidationError(
                    name,
                    f"the package URL recorded when {version!r} completed on {instance_id!r} "
                    f"is no longer allowed ({_policy_reason(recorded, allowed_hosts)}); "
                    "give package_url to install it from an allowed host",
                )
            targets.append(Target(instance_id, recorded, entry["sha256"], record.version))
        else:
            raise ValidationError(
                name,
                f"version {version!r} never completed on instance {instance_id!r} "
                "(failed and half-built releases are never rollback targets); "
                "give package_url to install it anyway",
            )
    return targets


def _allowed(url: str, allowed_hosts: frozenset[str]) -> bool:
    """Whether a recorded URL passes today's package policy."""
    return not _policy_reason(url, allowed_hosts)


def _policy_reason(url: str, allowed_hosts: frozenset[str]) -> str:
    """Why a recorded URL fails today's package policy ("" when it passes)."""
    try:
        validate_package_url("package_url", url, allowed_hosts)
    except ValidationError as exc:
        return exc.reason
    return ""


def build_run(
    run_id: str,
    service: str,
    version: str,
    targets: Sequence[Target],
    params: dict[str, Any],
    created_by: str,
    parent_run_id: str | None = None,
) -> tuple[RunRecord, list[RunInstanceRecord]]:
    """The records of a rollback run (instances ``pending``)."""
    now = utcnow()
    run = RunRecord(
        run_id=run_id, kind="rollback", service=service, version=version,
        status=Status.PENDING, params=params, created_by=created_by, created_at=now,
        updated_at=now, parent_run_id=parent_run_id,
    )
    batches = batch_numbers(str(params.get("batch_size", "1")), len(targets))
    members = [
        RunInstanceRecord(
            run_id=run_id, instance_id=t.instance_id, position=n, batch=batches[n],
            status=Status.PENDING, target_version=version, previous_version=t.current_version,
            current_version=t.current_version, package_url=t.package_url,
            package_sha256=t.package_sha256,
        )
        for n, t in enumerate(targets)
    ]
    return run, members


def start_automatic(
    store: Store,
    deploy: RunRecord,
    members: Sequence[RunInstanceRecord],
    *,
    allowed_hosts: frozenset[str],
) -> tuple[str | None, str]:
    """After a failed deployment, record a rollback of the instances it switched.

    Returns the rollback run's ID (None when there is nothing to roll back) and a note for
    the deployment's error message. Instances whose release failed were already switched
    back by the module; only completed ones are rolled back, to the version they had.
    A recorded URL that fails today's policy (``allowed_hosts``, HTTPS) is dropped: that
    instance can then only go back to a release it still has, and the note says so.
    """
    switched = [m for m in members if m.status is Status.COMPLETED
                and m.previous_version not in ("", m.target_version)]
    if not switched:
        return None, "automatic rollback: no instance had been switched"
    version, _ = Counter(m.previous_version for m in switched).most_common(1)[0]
    chosen = [m for m in switched if m.previous_version == version]
    skipped = [m.instance_id for m in switched if m.previous_version != version]
    targets = []
    dropped = []
    for m in chosen:
        entry = store.completed_release(m.instance_id, version)
        url, sha = (entry["package_url"], entry["sha256"]) if entry else ("", "")
        if url and not _allowed(url, allowed_hosts):
            dropped.append(m.instance_id)
            url, sha = "", ""
        targets.append(Target(m.instance_id, url, sha, m.current_version))
    params = {
        "instances": [t.instance_id for t in targets],
        "package_url": "",
        "force": False,
        "timeout": deploy.params.get("timeout", 300),
        "retry_count": deploy.params.get("retry_count", 3),
        "batch_size": deploy.params.get("batch_size", "1"),
        "max_failures": len(targets),  # try every instance: each one is better back
        "automatic": True,
    }
    run_id = f"{deploy.run_id}-rollback"[:128]
    run, records = build_run(run_id, deploy.service, version, targets, params,
                             "floy (auto_rollback)", parent_run_id=deploy.run_id)
    store.create_run(run, records, take_over_from=deploy.run_id)
    note = f"automatic rollback {run_id} of {len(targets)} instance(s) to {version} started"
    if skipped:
        note += f" (not rolled back, their previous version differs: {', '.join(skipped)})"
    if dropped:
        note += (f" (recorded package URL no longer allowed, dropped: {', '.join(dropped)} "
                 f"can only reuse a {version} release still on the host)")
    return run_id, note
