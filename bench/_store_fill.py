"""Fill a store fast with recorded instances and a finished deployment (for read benchmarks).

Instances go in with one ``executemany`` per 10,000 rows on ``orchestrator.store.schema``'s table;
the deployment through ``Store.create_run``, as the service records it.
"""

from __future__ import annotations

import json
import sys
from datetime import timedelta

from _measure import REPO

sys.path.insert(0, str(REPO))

from orchestrator.domain.records import RunInstanceRecord, RunKind, RunRecord
from orchestrator.domain.request import RunRequest
from orchestrator.models import Status
from orchestrator.store import Store
from orchestrator.store import schema as t
from orchestrator.timefmt import format_time, utcnow

DEPLOY_ID = "deploy-web-2.0.0"


def insert_instances(store: Store, service: str, count: int) -> None:
    """``count`` instances of ``service`` in one transaction (executemany, 10,000 a chunk)."""
    now = utcnow()
    with store.write() as conn:
        for first in range(0, count, 10_000):
            rows = []
            for n in range(first, min(count, first + 10_000)):
                stamp = format_time(now - timedelta(seconds=n))
                rows.append({
                    "instance_id": f"{service}-{n + 1:06d}", "service": service,
                    "host": f"10.{n // 65536 % 256}.{n // 256 % 256}.{n % 256}",
                    "port": 8080, "version": "2.0.0" if n % 10 < 7 else "1.9.0",
                    "version_updated_at": stamp, "last_heartbeat": stamp,
                    "metadata_json": json.dumps({"rack": f"r{n % 40}", "zone": f"z{n % 3}"}),
                    "created_at": stamp,
                })
            conn.execute(t.instances.insert(), rows)


def record_deployment(store: Store, count: int, fail_every: int = 97) -> None:
    """A finished deployment of ``web`` 2.0.0 over ``count`` instances, batches of 10%,
    one instance in ``fail_every`` failed (0: none, and the run completed)."""
    now = utcnow()
    request = RunRequest(instances=tuple(f"web-{n + 1:06d}" for n in range(count)),
                         package_url="https://x/p", batch_size="10%", max_failures=10)
    run = RunRecord(DEPLOY_ID, RunKind.DEPLOY, "web", "2.0.0", Status.PENDING, request,
                    "bench", now, now)
    batch = max(1, count // 10)
    members = []
    for n in range(count):
        failed = bool(fail_every) and n % fail_every == 0
        members.append(RunInstanceRecord(
            DEPLOY_ID, f"web-{n + 1:06d}", n, n // batch + 1,
            Status.FAILED if failed else Status.COMPLETED, "2.0.0", phase="done",
            previous_version="1.9.0", current_version="1.9.0" if failed else "2.0.0",
            attempts=1, started_at=now, completed_at=now,
            error_message="health check failed: switched back to 1.9.0" if failed else ""))
    store.runs.create(run, members)
    outcome = Status.FAILED if fail_every else Status.COMPLETED
    store.runs.set_status(DEPLOY_ID, outcome, error_message="", finished=True)
