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
from datetime import datetime

from orchestrator.domain.placement import group_batch_numbers, grouped
from orchestrator.domain.records import RunInstanceRecord, RunKind, RunRecord
from orchestrator.domain.request import RunRequest
from orchestrator.domain.validation import validate_package_url
from orchestrator.errors import ValidationError
from orchestrator.models import Status


@dataclass(frozen=True)
class Target:
    """Where one instance's rollback package comes from."""

    instance_id: str
    package_url: str
    package_sha256: str
    current_version: str


def allowed(url: str, allowed_hosts: frozenset[str]) -> bool:
    """Whether a recorded URL passes today's package policy."""
    return not policy_reason(url, allowed_hosts)


def policy_reason(url: str, allowed_hosts: frozenset[str]) -> str:
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
    request: RunRequest,
    created_by: str,
    now: datetime,
    parent_run_id: str | None = None,
) -> tuple[RunRecord, list[RunInstanceRecord]]:
    """The records of a rollback run (instances ``pending``), recorded at ``now``."""
    run = RunRecord(
        run_id=run_id, kind=RunKind.ROLLBACK, service=service, version=version,
        status=Status.PENDING, request=request, created_by=created_by, created_at=now,
        updated_at=now, parent_run_id=parent_run_id,
    )
    groups = grouped([t.instance_id for t in targets], request.nodes)
    batches = group_batch_numbers(request.batch_size, [len(ids) for _, ids in groups])
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


def switched_back_plan(
    members: Sequence[RunInstanceRecord],
) -> tuple[str, list[RunInstanceRecord], list[str]] | None:
    """What an automatic rollback after a failed deployment takes back: (the version most
    switched instances came from, those instances, the switched ones left out because they
    came from another version); None when no instance had been switched.

    Instances whose release failed were already switched back by the module; only completed
    ones are rolled back, to the version they had.
    """
    switched = [m for m in members if m.status is Status.COMPLETED
                and m.previous_version not in ("", m.target_version)]
    if not switched:
        return None
    version, _ = Counter(m.previous_version for m in switched).most_common(1)[0]
    chosen = [m for m in switched if m.previous_version == version]
    skipped = [m.instance_id for m in switched if m.previous_version != version]
    return version, chosen, skipped
