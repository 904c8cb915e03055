"""``floy worker`` daemons against the per-run worker process.

1. Time to first event: from ``execute_deployment`` returning to the first instance's
   ``runner_on_start`` (its ``started_at`` in the store, the event's own time), with the
   default executor (a fresh ``python -m orchestrator.engine.worker`` per run) and with
   ``executor: queue`` and a warm daemon; alternated, a new version every run.
2. Throughput: ``--runs`` one-instance deployments enqueued at once, carried by 1, 2 and 4
   daemons (``--max-runs 1`` each): runs completed per minute, from the first enqueue to
   the last run finished.
3. With ``--postgres`` (a private PostgreSQL server, as the tests start one): the time to
   first event again, for a daemon with its default poll (0.5 s) that LISTENs for queued
   runs against one started ``--no-listen``; and a cancel's latency for both: from
   ``cancel_deployment`` returning to the run recorded cancelled, a 3-instance run
   cancelled with its first instance in flight.

Usage: .venv/bin/python bench/bench_daemon.py [--quick] [--reps 5] [--runs 8] [--postgres]
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import signal
import subprocess
import time
from datetime import datetime

from _fleet import Fleet, start_fleet, version_of
from _measure import VENV_BIN, banner, median, ratio, venv_path_env

from orchestrator.engine.executors import ProcessExecutor, QueueExecutor
from orchestrator.models import DeployParams, Status
from orchestrator.service import FloyDeployService, new_deploy_service
from orchestrator.timefmt import utcnow

SERVICE = "hello"


def service_with(fleet: Fleet, executor: str) -> FloyDeployService:
    settings = dataclasses.replace(fleet.env.settings, executor=executor)
    kind = QueueExecutor if executor == "queue" else ProcessExecutor
    return new_deploy_service(logging.getLogger("bench"), kind(settings, fleet.env.store),
                              fleet.env.store, settings)


def start_daemon(fleet: Fleet, name: str, forks: int | None = None,
                 args: tuple[str, ...] = ("--poll", "0.1")) -> subprocess.Popen[bytes]:
    s = fleet.env.settings
    env = venv_path_env({"FLOY_HOME": str(s.home), "FLOY_DB_URL": s.db_url,
                         "FLOY_INVENTORY_DIR": str(s.inventory_dir),
                         "FLOY_CA_BUNDLE": s.ca_bundle, "FLOY_EXECUTOR": "queue",
                         "FLOY_LEASE_SECONDS": str(s.lease_seconds),
                         "FLOY_FORKS": str(forks or s.forks)})
    log = open(fleet.tmp / f"{name}.log", "wb")  # noqa: SIM115 - kept open for the child
    return subprocess.Popen([str(VENV_BIN / "floy"), "worker", "--max-runs", "1", *args],
                            env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        proc.send_signal(signal.SIGTERM)
    for proc in procs:
        proc.wait(timeout=120)


def wait_for(service: FloyDeployService, run_id: str, timeout: float = 300,
             poll: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if service.get_deployment_status(run_id).status in (Status.COMPLETED, Status.FAILED,
                                                            Status.CANCELLED):
            return
        time.sleep(poll)
    raise TimeoutError(run_id)


def deploy(fleet: Fleet, service: FloyDeployService, ids: list[str], version: str,
           run_id: str) -> datetime:
    url, sha = fleet.package(version)
    service.execute_deployment(DeployParams(service=SERVICE, version=version,
                                            instances=tuple(ids), package_url=url,
                                            package_sha256=sha, deploy_id=run_id))
    return utcnow()


def first_start(fleet: Fleet, run_id: str) -> datetime:
    loaded = fleet.env.store.runs.with_members(run_id)
    assert loaded is not None
    starts = [m.started_at for m in loaded[1] if m.started_at is not None]
    assert starts, f"{run_id}: no instance started"
    return min(starts)


def time_to_first_event(fleet: Fleet, reps: int) -> None:
    process, queue = service_with(fleet, "process"), service_with(fleet, "queue")
    daemon = start_daemon(fleet, "ttfe-daemon")
    step = 100
    got: dict[str, list[float]] = {"process": [], "daemon": []}
    try:
        for rep in range(reps):
            for label, service in (("process", process), ("daemon", queue)):
                step += 1
                run_id = f"ttfe-{label}-{rep}"
                returned = deploy(fleet, service, fleet.ids[:1], version_of(step), run_id)
                wait_for(service, run_id)
                got[label].append((first_start(fleet, run_id) - returned).total_seconds())
    finally:
        stop([daemon])
    p, d = median(got["process"]), median(got["daemon"])
    print(f"time to first runner_on_start (median of {reps}): per-run worker {p:.2f} s, "
          f"warm daemon {d:.2f} s, ratio daemon/process {ratio(d, p):.2f}")
    print(f"  per-run worker: {', '.join(f'{v:.2f}' for v in got['process'])}")
    print(f"  warm daemon:    {', '.join(f'{v:.2f}' for v in got['daemon'])}")


def listening_against_polling(fleet: Fleet, reps: int) -> None:
    """Time to first event and cancel latency: a daemon that LISTENs, one that only polls
    (both with the default --poll 0.5); alternated, one daemon alive at a time."""
    queue = service_with(fleet, "queue")
    first: dict[str, list[float]] = {"listen": [], "no-listen": []}
    cancel: dict[str, list[float]] = {"listen": [], "no-listen": []}
    step = 500
    for rep in range(reps):
        for label in (("listen", "no-listen") if rep % 2 == 0 else ("no-listen", "listen")):
            daemon = start_daemon(fleet, f"notify-{label}-{rep}", args=(f"--{label}",))
            try:
                time.sleep(2.0)  # registered, listening and idle
                step += 1
                run_id = f"nt-{label}-{rep}"
                returned = deploy(fleet, queue, fleet.ids[:1], version_of(step), run_id)
                wait_for(queue, run_id)
                first[label].append((first_start(fleet, run_id) - returned).total_seconds())
                step += 1
                run_id = f"nc-{label}-{rep}"
                url, sha = fleet.package(version_of(step))
                queue.execute_deployment(DeployParams(
                    service=SERVICE, version=version_of(step), instances=tuple(fleet.ids[:3]),
                    package_url=url, package_sha256=sha, deploy_id=run_id, batch_size="1"))
                _wait_in_flight(queue, run_id)
                asked = time.monotonic()
                queue.cancel_deployment(run_id)
                wait_for(queue, run_id, poll=0.02)
                cancel[label].append(time.monotonic() - asked)
                status = queue.get_deployment_status(run_id).status
                assert status is Status.CANCELLED, f"{run_id}: {status}"
            finally:
                stop([daemon])
    for what, got in (("time to first runner_on_start", first),
                      ("cancel to run recorded cancelled", cancel)):
        li, po = median(got["listen"]), median(got["no-listen"])
        print(f"{what} (median of {reps}, PostgreSQL): listening {li:.2f} s, polling "
              f"{po:.2f} s, ratio {ratio(li, po):.2f}")
        print(f"  listening: {', '.join(f'{v:.2f}' for v in got['listen'])}")
        print(f"  polling:   {', '.join(f'{v:.2f}' for v in got['no-listen'])}")


def _wait_in_flight(service: FloyDeployService, run_id: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = service.get_deployment_status(run_id)
        if any(i.status is Status.IN_PROGRESS for i in status.instances):
            return
        time.sleep(0.02)
    raise TimeoutError(f"{run_id}: no instance in flight")


def throughput(fleet: Fleet, runs: int, daemons: int, step0: int) -> float:
    queue = service_with(fleet, "queue")
    procs = [start_daemon(fleet, f"tp-{daemons}-{n}") for n in range(daemons)]
    try:
        time.sleep(2.0)  # warm: every daemon registered and idle
        started = time.monotonic()
        run_ids = []
        for n in range(runs):
            run_id = f"tp-{daemons}-{n}"
            deploy(fleet, queue, [fleet.ids[n]], version_of(step0 + n), run_id)
            run_ids.append(run_id)
        for run_id in run_ids:
            wait_for(queue, run_id)
        wall = time.monotonic() - started
    finally:
        stop(procs)
    failed = [r for r in run_ids if queue.get_deployment_status(r).status is not Status.COMPLETED]
    assert not failed, f"runs not completed: {failed}"
    return runs / wall * 60


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--runs", type=int, default=8)
    parser.add_argument("--quick", action="store_true", help="--reps 2 --runs 4")
    parser.add_argument("--postgres", action="store_true",
                        help="the store on a private PostgreSQL server; adds LISTEN vs poll")
    args = parser.parse_args()
    if args.quick:
        args.reps, args.runs = 2, 4
    banner("bench_daemon: floy worker daemons against the per-run worker")
    print(f"load average before: {os.getloadavg()[0]:.1f}")
    postgres = None
    if args.postgres:
        from tests.integration.pg import Postgres

        postgres = Postgres().start()
    try:
        run_all(args, postgres.new_database() if postgres else None)
    finally:
        if postgres is not None:
            postgres.stop()


def run_all(args: argparse.Namespace, db_url: str | None) -> None:
    with start_fleet("daemon", max(args.runs, 3), db_url) as fleet:
        installer = service_with(fleet, "process")
        deploy(fleet, installer, fleet.ids, version_of(1), "install")  # untimed first install
        wait_for(installer, "install")
        time_to_first_event(fleet, args.reps)
        if db_url is not None:
            listening_against_polling(fleet, args.reps)
        rates = {}
        for n, count in enumerate((1, 2, 4)):
            rates[count] = throughput(fleet, args.runs, count, 1000 * (n + 1))
            print(f"throughput, {count} daemon(s) of --max-runs 1, {args.runs} one-instance "
                  f"runs: {rates[count]:.1f} runs/min")
    print(f"summary: throughput 2/1 daemons x{ratio(rates[2], rates[1]):.2f}, "
          f"4/1 x{ratio(rates[4], rates[1]):.2f} (2 cores)")


if __name__ == "__main__":
    main()
