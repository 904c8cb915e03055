"""What floy's one-module role saves on the controller: ``bench_role_cost.py``.

Deploys to the same N local instances (``--instances``, default 10, one batch: serial = N,
forks = N), alternately, with

- **floy**: ``playbooks/deploy.yml`` and floy's role (the ``floy_release`` module does the
  whole release in one module execution);
- **floy+hooks**: the same with all six deploy hooks set (``bench/hooks/noop.yml``, a task
  that runs nothing on the host): the role then runs ``floy_release`` once per phase, plus a
  last report, around the hooks - the cost of hooks themselves;
- **straightforward**: ``bench/straightforward.yml`` and ``bench/roles/straightforward``, the
  ansistrano-style role most people write (file, get_url, unarchive, file, link + mv,
  command restart, uri health check with retries, find + file cleanup);

both over the inventory and extra vars floy bakes, through ansible-runner (for its events).
Every run deploys a new version. Reports per host: tasks started (``runner_on_start``) and
module executions (ok/failed results and loop items, controller-only actions such as
``set_fact``/``meta`` excluded; skipped tasks execute nothing; the health check's retries
are extra executions), controller CPU seconds per instance (``RUSAGE_CHILDREN`` around the
run: ansible-playbook and everything it waited for) and wall time per batch.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _fleet import Fleet, start_fleet, version_of
from _measure import banner, children_cpu, median, ratio, venv_path_env

HERE = Path(__file__).resolve().parent

PLAYBOOKS = {
    "floy": HERE.parent / "playbooks" / "deploy.yml",
    "floy+hooks": HERE.parent / "playbooks" / "deploy.yml",
    "straightforward": HERE / "straightforward.yml",
}
VARIANTS = tuple(PLAYBOOKS)
HOOKS = ("before_fetch", "after_fetch", "before_switch", "after_switch", "before_cleanup",
         "after_cleanup")
# Actions that run on the controller only: no module is shipped to the host.
CONTROLLER_ONLY = {"set_fact", "meta", "fail", "debug", "assert", "include_tasks",
                   "import_tasks", "include_role", "import_role", "include_vars", "pause",
                   "validate_argument_spec"}


@dataclass(frozen=True)
class RoleRun:
    """One deployment with one role."""

    wall: float
    cpu: float
    tasks_per_host: float
    modules_per_host: float
    status: str


def _action(data: dict[str, Any]) -> str:
    action = str(data.get("resolved_action") or data.get("task_action") or "")
    return action.rsplit(".", 1)[-1]


def module_executions(kind: str, data: dict[str, Any]) -> int:
    """Module executions on the host an event reports: a result or a retry of a task, or
    one item of a loop (the loop's final result repeats its items, so it is not counted)."""
    if _action(data) in CONTROLLER_ONLY:
        return 0
    if kind in ("runner_item_on_ok", "runner_item_on_failed"):
        return 1
    if kind in ("runner_on_ok", "runner_on_failed", "runner_retry"):
        return 0 if "results" in (data.get("res") or {}) else 1
    return 0


def run_role(fleet: Fleet, variant: str, version: str, n: int) -> RoleRun:
    """Deploy ``version`` to the fleet with one of the two playbooks, counting per host."""
    import ansible_runner

    plan, inventory_dir, vars_file = fleet.bare_plan(version, str(n), n)
    cmdline = f"-e @{vars_file}"
    if variant == "floy+hooks":
        hooks_file = plan.private_data_dir / "hooks.json"
        noop = str(HERE / "hooks" / "noop.yml")
        hooks_file.write_text(json.dumps({f"floy_{h}_tasks_file": noop for h in HOOKS}))
        cmdline += f" -e @{hooks_file}"
    started: Counter[str] = Counter()
    modules: Counter[str] = Counter()

    def on_event(event: dict[str, Any]) -> bool:
        kind = event.get("event", "")
        data = event.get("event_data") or {}
        host = data.get("host")
        if not host or host not in plan.instance_ids:
            return True
        if kind == "runner_on_start":
            started[host] += 1
        modules[host] += module_executions(kind, data)
        return True

    cpu0 = children_cpu()
    began = time.perf_counter()
    result = ansible_runner.run(
        private_data_dir=str(plan.private_data_dir), playbook=str(PLAYBOOKS[variant]),
        inventory=str(inventory_dir), cmdline=cmdline, forks=plan.forks,
        envvars=venv_path_env(plan.envvars), event_handler=on_event,
        cancel_callback=lambda: False, quiet=True,
    )
    wall = time.perf_counter() - began
    cpu = children_cpu() - cpu0
    on = fleet.on_version(version)
    if result.status != "successful" or on != n:
        raise RuntimeError(f"{variant} {version}: {result.status} (rc={result.rc}), "
                           f"{on} of {n} instances switched; see {plan.private_data_dir}")
    return RoleRun(wall, cpu, sum(started.values()) / n, sum(modules.values()) / n,
                   str(result.status))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--instances", type=int, default=10, help="instances (one batch)")
    parser.add_argument("--reps", type=int, default=3, help="repetitions per role")
    parser.add_argument("--quick", action="store_true", help="3 instances, 2 repetitions")
    args = parser.parse_args()
    n = 3 if args.quick else args.instances
    reps = 2 if args.quick else args.reps
    banner(f"role cost: floy's role (without and with hooks) vs a straightforward role, "
           f"{n} instances, one batch")
    runs: dict[str, list[RoleRun]] = {variant: [] for variant in VARIANTS}
    with start_fleet("role-cost", n) as fleet:
        step = 0
        for variant in VARIANTS:  # first install of each, untimed
            run_role(fleet, variant, version_of(step), n)
            step += 1
        for rep in range(reps):
            order = VARIANTS if rep % 2 == 0 else VARIANTS[::-1]
            for variant in order:
                version = version_of(step)
                step += 1
                r = run_role(fleet, variant, version, n)
                runs[variant].append(r)
                print(f"  rep {rep + 1} {variant:<15} {version}: wall {r.wall:6.2f} s  "
                      f"cpu {r.cpu:6.2f} s  tasks/host {r.tasks_per_host:4.1f}  "
                      f"modules/host {r.modules_per_host:4.1f}")
    print(f"{'role':<16} {'modules/host':>12} {'tasks/host':>10} {'cpu s/instance':>14} "
          f"{'wall s/batch':>12}  (medians of {reps})")
    figures = {}
    for variant, values in runs.items():
        mods = median([r.modules_per_host for r in values])
        tasks = median([r.tasks_per_host for r in values])
        cpu = median([r.cpu for r in values]) / n
        wall = median([r.wall for r in values])
        figures[variant] = (mods, cpu, wall)
        print(f"{variant:<16} {mods:>12.1f} {tasks:>10.1f} {cpu:>14.3f} {wall:>12.2f}")
    (fm, fc, fw), (sm, sc, sw) = figures["floy"], figures["straightforward"]
    hm, hc, hw = figures["floy+hooks"]
    print(f"summary: N={n} floy/straightforward modules/host {fm:.1f}/{sm:.1f}, "
          f"cpu/instance {fc:.3f}/{sc:.3f} s (x{ratio(fc, sc):.2f}), "
          f"wall/batch {fw:.2f}/{sw:.2f} s (x{ratio(fw, sw):.2f}); "
          f"with six hooks modules/host {hm:.1f}, cpu/instance {hc:.3f} s "
          f"(x{ratio(hc, fc):.2f} of none), wall/batch {hw:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
