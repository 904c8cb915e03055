"""floy's orchestration overhead against bare ``ansible-playbook``: ``bench_overhead.py``.

For each fleet size N (``--sizes``, default 20 and 50) the same playbook
(``playbooks/deploy.yml``), inventory, extra vars and package go to N local instances by

- **floy**: the service with the inline executor in a child process (worker, ansible-runner,
  event fold, store writes), ``execute_deployment`` to the end;
- **bare**: ``ansible-playbook -i <inventory> -e @<vars> --forks N deploy.yml`` with the
  inventory and vars baked by ``orchestrator.ansible.plan`` exactly as floy hands them to runner;
- **daemon** (``--daemon``): ``execute_deployment`` with ``executor: queue`` to a warm
  ``floy worker`` (started once per fleet, ``--poll 0.1``), timed from the call to the run
  recorded finished (wall only: the daemon's CPU is not collected until it exits).

All instances are one batch (serial = N) and forks = N, so what differs is the orchestration.
The two variants alternate (and swap order every repetition), and every run deploys a new
version (1.0.1, 1.0.2, ...), so each one really downloads, unpacks, switches, restarts and
prunes old releases; an untimed first deployment installs 1.0.0 everywhere. Reports
median wall time and median CPU of the whole process tree, and the ratio floy / bare.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _fleet import Fleet, start_fleet, version_of
from _measure import Measured, banner, median, ratio, run_measured, venv_path_env
from bench_daemon import service_with, start_daemon, stop, wait_for

from orchestrator.models import DeployParams, Status


def deploy(fleet: Fleet, variant: str, version: str, run_id: str,
           n: int) -> tuple[Measured, float]:
    """One deployment of ``version`` to the whole fleet; asserts every instance switched.
    Returns the measure and the CPU of the orchestrator process itself (floy only)."""
    own = 0.0
    if variant == "daemon":
        queue = service_with(fleet, "queue")
        url, sha = fleet.package(version)
        began = time.monotonic()
        queue.execute_deployment(DeployParams(
            service="hello", version=version, instances=tuple(fleet.ids), package_url=url,
            package_sha256=sha, deploy_id=run_id, batch_size=str(n)))
        wait_for(queue, run_id, poll=0.2)  # as `floy deploy` follows a run
        result = Measured(0, time.monotonic() - began, float("nan"), "")
        if queue.get_deployment_status(run_id).status is not Status.COMPLETED:
            raise RuntimeError(f"daemon run {run_id} did not complete")
    elif variant == "floy":
        result = run_measured(fleet.floy_command(version, run_id, str(n), n), venv_path_env())
        detail = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
        report = json.loads(detail or "{}")
        if result.rc != 0 or report.get("completed") != n:
            raise RuntimeError(f"floy run {run_id} did not complete: rc={result.rc} {detail}")
        own = float(report["self_cpu"])
    else:
        cmd, envvars = fleet.bare_command(version, str(n), n)
        result = run_measured(cmd, venv_path_env(envvars))
        if result.rc != 0:
            raise RuntimeError(f"ansible-playbook failed (rc={result.rc}):\n"
                               + "\n".join(result.stdout.splitlines()[-20:]))
    on = fleet.on_version(version)
    if on != n:
        raise RuntimeError(f"{variant}: {on} of {n} instances on {version} after {run_id}")
    return result, own


def measure_size(n: int, reps: int,
                 with_daemon: bool = False) -> tuple[dict[str, list[Measured]], list[float]]:
    """Alternate floy and bare (and the daemon) ``reps`` times each over a fleet of ``n``
    instances; also returns the orchestrator process's own CPU of each floy run."""
    results: dict[str, list[Measured]] = {"floy": [], "bare": [], "daemon": []}
    own: list[float] = []
    with start_fleet(f"overhead-{n}", n) as fleet:
        deploy(fleet, "floy", version_of(0), f"warmup-{n}", n)  # first install, untimed
        daemon = start_daemon(fleet, f"overhead-{n}", forks=n) if with_daemon else None
        step = 1
        variants = ("floy", "bare", "daemon") if with_daemon else ("floy", "bare")
        for rep in range(reps):
            order = variants if rep % 2 == 0 else tuple(reversed(variants))
            for variant in order:
                version = version_of(step)
                step += 1
                m, self_cpu = deploy(fleet, variant, version, f"bench-{n}-{rep}-{variant}", n)
                results[variant].append(m)
                if variant == "floy":
                    own.append(self_cpu)
                print(f"  N={n:<4} rep {rep + 1} {variant:<6} {version}: "
                      f"wall {m.wall:6.2f} s  cpu {m.cpu:6.2f} s"
                      + (f" (orchestrator process {self_cpu:.2f} s)" if variant == "floy" else ""))
        if daemon is not None:
            stop([daemon])
    return results, own


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="20,50", help="fleet sizes, comma-separated")
    parser.add_argument("--reps", type=int, default=3, help="repetitions per variant")
    parser.add_argument("--quick", action="store_true", help="3 instances, 2 repetitions")
    parser.add_argument("--daemon", action="store_true",
                        help="also through a warm floy worker daemon (executor: queue)")
    args = parser.parse_args()
    sizes = [3] if args.quick else [int(s) for s in args.sizes.split(",") if s.strip()]
    reps = 2 if args.quick else args.reps
    banner("overhead: floy (service + worker + runner + store) vs bare ansible-playbook")
    rows = []
    daemon_rows = []
    for n in sizes:
        res, own = measure_size(n, reps, args.daemon)
        if args.daemon:
            dw = median([m.wall for m in res["daemon"]])
            daemon_rows.append((n, dw, median([m.wall for m in res["bare"]])))
        fw, bw = median([m.wall for m in res["floy"]]), median([m.wall for m in res["bare"]])
        fc, bc = median([m.cpu for m in res["floy"]]), median([m.cpu for m in res["bare"]])
        rows.append((n, fw, bw, fc, bc, median(own)))
    print(f"{'N':>5} {'floy wall':>10} {'bare wall':>10} {'ratio':>6} "
          f"{'floy cpu':>9} {'bare cpu':>9} {'ratio':>6} {'orch. cpu':>9}  "
          f"(medians of {reps}, seconds)")
    for n, fw, bw, fc, bc, oc in rows:
        print(f"{n:>5} {fw:>10.2f} {bw:>10.2f} {ratio(fw, bw):>6.2f} "
              f"{fc:>9.2f} {bc:>9.2f} {ratio(fc, bc):>6.2f} {oc:>9.2f}")
    parts = [f"N={n} wall x{ratio(fw, bw):.2f} ({fw - bw:+.2f} s) cpu x{ratio(fc, bc):.2f} "
             f"({fc - bc:+.2f} s)" for n, fw, bw, fc, bc, _ in rows]
    for n, dw, bw in daemon_rows:
        print(f"{n:>5} warm daemon wall {dw:.2f} s, bare {bw:.2f} s: ratio {ratio(dw, bw):.3f}")
    if daemon_rows:
        parts += [f"daemon N={n} wall x{ratio(dw, bw):.3f} ({dw - bw:+.2f} s)"
                  for n, dw, bw in daemon_rows]
    print("summary: floy/bare " + "; ".join(parts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
