"""One large deployment: ``bench_scale.py [--instances 500] [--batch-size 10%]``.

Registers ``--instances`` local instances, installs 1.0.0 on all of them first (untimed, in
batches of ``--batch-size``), then deploys 1.0.1 through floy: the service with the inline
executor in a child process (worker, ansible-runner, fold, store), ``--forks`` parallel hosts
(floy's default 20). Reports total wall time, controller CPU of the whole process tree
(``RUSAGE_CHILDREN``), the peak RSS of the orchestrator process (the worker's own
``ru_maxrss``) and of the largest single process of the tree. All apps are
stopped at the end.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _fleet import Fleet, start_fleet, version_of
from _measure import Measured, banner, run_measured, venv_path_env

from orchestrator.ansible.plan import batch_sizes


def deploy(fleet: Fleet, version: str, run_id: str, batch: str,
           forks: int) -> tuple[Measured, dict[str, object]]:
    """Deploy ``version`` everywhere through floy; returns the measure and the child's report."""
    m = run_measured(fleet.floy_command(version, run_id, batch, forks), venv_path_env())
    lines = m.stdout.strip().splitlines()
    report = json.loads(lines[-1]) if lines else {}
    n = len(fleet.ids)
    if m.rc != 0 or report.get("completed") != n or fleet.on_version(version) != n:
        raise RuntimeError(f"{run_id}: rc={m.rc} {report}")
    return m, report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--instances", type=int, default=500)
    parser.add_argument("--batch-size", default="10%")
    parser.add_argument("--forks", type=int, default=20, help="floy's forks setting")
    parser.add_argument("--quick", action="store_true", help="20 instances")
    args = parser.parse_args()
    n = 20 if args.quick else args.instances
    batches = batch_sizes(args.batch_size, n)
    banner(f"scale: one deployment to {n} local instances, batch size {args.batch_size} "
           f"({len(batches)} batches of {batches[0]}), forks {args.forks}")
    with start_fleet("scale", n) as fleet:
        first, _ = deploy(fleet, version_of(0), "scale-install", args.batch_size, args.forks)
        print(f"  first install (untimed): {first.wall:.1f} s")
        m, report = deploy(fleet, version_of(1), "scale-upgrade", args.batch_size, args.forks)
    tree_peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0
    worker_peak = float(report["maxrss_mib"])  # type: ignore[arg-type]
    worker_cpu = float(report["self_cpu"])  # type: ignore[arg-type]
    print(f"  wall {m.wall:.1f} s ({m.wall / len(batches):.2f} s per batch, "
          f"{m.wall / n * 1000:.0f} ms per instance)")
    print(f"  controller CPU {m.cpu:.1f} s ({m.cpu / n:.3f} s per instance), of which the "
          f"orchestrator process {worker_cpu:.1f} s")
    print(f"  peak RSS: orchestrator {worker_peak:.0f} MiB, largest single process of the tree "
          f"{tree_peak:.0f} MiB")
    print(f"summary: {n} instances in {len(batches)} batches: wall {m.wall:.1f} s, cpu "
          f"{m.cpu:.1f} s ({m.cpu / n:.3f} s/instance), orchestrator peak RSS "
          f"{worker_peak:.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
