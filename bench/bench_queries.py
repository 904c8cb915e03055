"""Query latency at scale: ``bench_queries.py [--deployment 10000] [--service 100000]``.

Fills a real SQLite store (bulk inserts on the tables of ``orchestrator.store.schema``, and
``Store.create_run`` for the deployment) with a finished deployment of ``--deployment``
instances (service ``web``) and a service ``big`` of ``--service`` instances, builds the
service with ``new_deploy_service`` and an executor that refuses to run anything, and times
through it:

- ``get_deployment_status(id)`` of the deployment (and the same plus ``to_dict`` and
  ``json.dumps``, what ``floy status --json`` adds);
- one ``get_service_instances`` page of ``big`` (limit 100, random offsets);
- ``get_service_instance_versions("big")``.

Prints median and p99 (nearest rank). Goals: status of a 10,000-instance deployment
<= 50 ms median; an instances page <= 10 ms median.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import logging
import pstats
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from _measure import REPO, banner, median, percentile

sys.path.insert(0, str(REPO))

from _store_fill import DEPLOY_ID, insert_instances, record_deployment

from orchestrator.models import InstanceQueryParams
from orchestrator.service import FloyDeployService, new_deploy_service
from orchestrator.settings import load_settings
from orchestrator.store import Store

GOALS_MS = {"status": 50.0, "page": 10.0}


class RefusingExecutor:
    """An executor that never runs anything: the benchmark only reads."""

    def submit(self, run_id: str) -> None:
        raise AssertionError(f"bench_queries must not start runs (asked for {run_id})")


def timed(fn: Callable[[], object], reps: int) -> list[float]:
    """Milliseconds of ``reps`` calls (after one untimed warm-up call)."""
    fn()
    out = []
    for _ in range(reps):
        began = time.perf_counter()
        fn()
        out.append((time.perf_counter() - began) * 1000.0)
    return out


def profile_status(svc: FloyDeployService, calls: int = 5) -> str:
    """Top functions of ``get_deployment_status`` by own time (when its goal is missed)."""
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(calls):
        svc.get_deployment_status(DEPLOY_ID)
    prof.disable()
    text = io.StringIO()
    pstats.Stats(prof, stream=text).strip_dirs().sort_stats("tottime").print_stats(10)
    table = text.getvalue().splitlines()
    head = next((n for n, ln in enumerate(table) if "ncalls" in ln), 0)
    return "\n".join([f"  profile of {calls} get_deployment_status calls (top by own time):"]
                     + ["  " + ln for ln in table[head:] if ln.strip()])


def explain_page(store: Store, service: str, offset: int) -> str:
    """SQLite's plan and raw timings of the two statements of an instances page (the SQL
    ``Store.query_instances`` issues, written out), when the page goal is missed."""
    queries = {
        "page": f"SELECT * FROM instances WHERE service = '{service}' "
                f"ORDER BY instance_id LIMIT 100 OFFSET {offset}",
        "count": f"SELECT count(*) FROM instances WHERE service = '{service}'",
    }
    lines = ["  why the page is slow (raw sqlite3, same statements):"]
    with store.engine.connect() as conn:
        raw = conn.connection.driver_connection
        assert raw is not None
        for label, sql in queries.items():
            plan = "; ".join(row[3] for row in raw.execute(f"EXPLAIN QUERY PLAN {sql}"))
            began = time.perf_counter()
            raw.execute(sql).fetchall()
            took = (time.perf_counter() - began) * 1000.0
            lines.append(f"    {label:<5} {took:7.1f} ms  plan: {plan}")
    return "\n".join(lines)


def build(tmp: Path, deployment: int, service: int) -> tuple[FloyDeployService, Store]:
    """The store, filled, and the service over it."""
    settings = load_settings(home=tmp / "home", environ={})
    store = Store.open(settings.db_url)
    began = time.perf_counter()
    insert_instances(store, "web", deployment)
    insert_instances(store, "big", service)
    record_deployment(store, deployment)
    print(f"  filled the store in {time.perf_counter() - began:.1f} s: {deployment:,} + "
          f"{service:,} instances, one deployment of {deployment:,}")
    svc = new_deploy_service(logging.getLogger("bench"), RefusingExecutor(), store, settings)
    return svc, store


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--deployment", type=int, default=10_000, help="deployment instances")
    parser.add_argument("--service", type=int, default=100_000, help="service instances")
    parser.add_argument("--reps", type=int, default=50, help="status and versions calls")
    parser.add_argument("--pages", type=int, default=200, help="instances page calls")
    parser.add_argument("--quick", action="store_true",
                        help="1,000 / 10,000 instances, 10 calls, 50 pages")
    args = parser.parse_args()
    if args.quick:
        args.deployment, args.service, args.reps, args.pages = 1_000, 10_000, 10, 50
    banner(f"queries: deployment of {args.deployment:,}, service of {args.service:,} instances")
    tmp = Path(tempfile.mkdtemp(prefix="floy-bench-queries-"))
    try:
        svc, store = build(tmp, args.deployment, args.service)
        rng = random.Random(5)
        last = max(0, args.service - 100)
        results = {
            "status": timed(lambda: svc.get_deployment_status(DEPLOY_ID), args.reps),
            "status --json": timed(lambda: json.dumps(
                svc.get_deployment_status(DEPLOY_ID).to_dict()), args.reps),
            "page": timed(lambda: svc.get_service_instances(InstanceQueryParams(
                "big", limit=100, offset=rng.randint(0, last))), args.pages),
            "versions": timed(lambda: svc.get_service_instance_versions("big"),
                              max(3, args.reps // 5)),
        }
        if median(results["status"]) > GOALS_MS["status"]:
            print(profile_status(svc))
        if median(results["page"]) > GOALS_MS["page"]:
            print(explain_page(store, "big", last // 2))
        store.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    labels = {"status": f"get_deployment_status ({args.deployment:,})",
              "status --json": "  + to_dict + json.dumps",
              "page": "get_service_instances (100, random offset)",
              "versions": f"get_service_instance_versions ({args.service:,})"}
    verdicts = {}
    for key, values in results.items():
        med = median(values)
        goal = GOALS_MS.get(key)
        verdict = "" if goal is None else ("goal met" if med <= goal else "goal MISSED")
        if goal is not None:
            verdicts[key] = f"{med:.1f} ms (goal <= {goal:.0f}: {verdict.split()[-1]})"
        print(f"  {labels[key]:<46} median {med:8.1f} ms  p99 {percentile(values, 99):8.1f} ms"
              f"  n={len(values)}  {verdict}".rstrip())
    print(f"summary: status of {args.deployment:,} {verdicts['status']}, page "
          f"{verdicts['page']}, versions of {args.service:,} "
          f"{median(results['versions']):.0f} ms median")
    return 0


if __name__ == "__main__":
    sys.exit(main())
