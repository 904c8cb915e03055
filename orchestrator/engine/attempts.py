"""A run's attempts: what a run played again (resumed after a hand-back, or its next group
of instances) keeps of its shape, and where an earlier attempt's files go."""

from __future__ import annotations

import dataclasses

from orchestrator.domain.batching import batch_sizes
from orchestrator.domain.events import InstanceUpdate
from orchestrator.domain.records import RunInstanceRecord, RunRecord
from orchestrator.models import Status
from orchestrator.settings import Settings


def resumed_vars(run: RunRecord, members: list[RunInstanceRecord]) -> dict[str, int]:
    """What a resumed run's playbook needs to keep the run's shape: the batch size the run
    started with (a percentage of the remaining instances would differ) and what is left of
    the failure budget."""
    failed = sum(1 for m in members if m.status is Status.FAILED)
    return {
        "floy_batch_size": batch_sizes(run.request.batch_size, len(members))[0],
        "floy_max_failures": max(0, run.request.max_failures - failed),
    }


def stepped_vars(run: RunRecord, members: list[RunInstanceRecord], size: int
                 ) -> dict[str, int]:
    """What one batch of a stepped run plays with: the batch in one serial batch, and what
    is left of the run's failure budget."""
    failed = sum(1 for m in members if m.status is Status.FAILED)
    return {"floy_batch_size": max(1, size),
            "floy_max_failures": max(0, run.request.max_failures - failed)}


def set_aside(settings: Settings, run_id: str) -> bool:
    """Move an earlier attempt's private data dir aside (runner must never reuse one, and
    the run ID stays the marker of this attempt's processes); True if there was one."""
    pdd = settings.runs_dir / run_id
    if not pdd.exists():
        return False
    n = 1
    while (aside := settings.runs_dir / f"{run_id}.attempt-{n}").exists():
        n += 1
    pdd.rename(aside)
    return True


def with_member_package(
    update: InstanceUpdate, members: dict[str, RunInstanceRecord]
) -> InstanceUpdate:
    """A rollback's release record names the package of its own instance."""
    member = members.get(update.instance_id)
    if update.release is None or member is None:
        return update
    release = dict(update.release)
    release["package_url"] = member.package_url or release.get("package_url", "")
    release["sha256"] = member.package_sha256 or release.get("sha256", "")
    return dataclasses.replace(update, release=release)
