"""The automatic rollback a failed deployment with ``auto_rollback`` starts.

What to take back is decided by :func:`orchestrator.domain.rollbacks.switched_back_plan`;
here the packages are looked up in the release history and the linked rollback run is
recorded, taking over the deployment's instance locks in the same transaction.
"""

from __future__ import annotations

from collections.abc import Sequence

from orchestrator.domain.records import RunInstanceRecord, RunRecord
from orchestrator.domain.request import RunRequest
from orchestrator.domain.rollbacks import Target, allowed, build_run, switched_back_plan
from orchestrator.store import Store


def start_automatic(
    store: Store,
    deploy: RunRecord,
    members: Sequence[RunInstanceRecord],
    *,
    allowed_hosts: frozenset[str],
    owner: str,
) -> tuple[str | None, str]:
    """After a failed deployment, record a rollback of the instances it switched.

    Returns the rollback run's ID (None when there is nothing to roll back) and a note for
    the deployment's error message. The deployment must still be held by ``owner``
    (StaleWriterError otherwise, and nothing recorded). A recorded URL that fails today's policy
    (``allowed_hosts``, HTTPS) is dropped: that instance can then only go back to a release
    it still has, and the note says so.
    """
    plan = switched_back_plan(members)
    if plan is None:
        return None, "automatic rollback: no instance had been switched"
    version, chosen, skipped = plan
    targets = []
    dropped = []
    for m in chosen:
        entry = store.history.completed_release(m.instance_id, version)
        url, sha = (entry["package_url"], entry["sha256"]) if entry else ("", "")
        if url and not allowed(url, allowed_hosts):
            dropped.append(m.instance_id)
            url, sha = "", ""
        targets.append(Target(m.instance_id, url, sha, m.current_version))
    request = RunRequest(
        instances=tuple(t.instance_id for t in targets),
        timeout=deploy.request.timeout,
        retry_count=deploy.request.retry_count,
        batch_size=deploy.request.batch_size,
        max_failures=len(targets),  # try every instance: each one is better back
        automatic=True,
        # where the deployment played them (the node holds their credentials and routes)
        node=deploy.request.node,
        nodes=(tuple(deploy.request.node_of(t.instance_id) for t in targets)
               if deploy.request.nodes else ()),
    )
    run_id = f"{deploy.run_id}-rollback"[:128]
    run, records = build_run(run_id, deploy.service, version, targets, request,
                             "floy (auto_rollback)", store.db.clock(),
                             parent_run_id=deploy.run_id)
    store.runs.create(run, records, take_over_from=deploy.run_id, owner=owner)
    note = f"automatic rollback {run_id} of {len(targets)} instance(s) to {version} started"
    if skipped:
        note += f" (not rolled back, their previous version differs: {', '.join(skipped)})"
    if dropped:
        note += (f" (recorded package URL no longer allowed, dropped: {', '.join(dropped)} "
                 f"can only reuse a {version} release still on the host)")
    return run_id, note
