"""CLI latency: ``bench_cli.py [--runs 20] [--instances 100]``.

Times whole ``floy`` processes (the venv's console script, as a user runs it):
``floy --help`` and ``floy status ID --json`` on a store holding a finished deployment of
``--instances`` instances; median and p99 wall time over ``--runs`` runs each. Then runs
each command once under ``python -X importtime`` and reports whether the heavy modules
(ansible_runner, ansible, sqlalchemy, yaml) were imported, and the slowest top-level
imports. Goals: ``--help`` <= 200 ms, ``status --json`` <= 400 ms.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _measure import REPO, VENV_BIN, banner, median, percentile, venv_path_env

sys.path.insert(0, str(REPO))

from _store_fill import DEPLOY_ID, insert_instances, record_deployment

from orchestrator.store import Store

FLOY = VENV_BIN / "floy"
HEAVY = ("ansible_runner", "ansible", "sqlalchemy", "yaml")
GOALS_MS = {"--help": 200.0, "status --json": 400.0}
IMPORT_LINE = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)")


def time_command(args: list[str], env: dict[str, str], runs: int) -> list[float]:
    """Wall milliseconds of ``runs`` runs of ``floy ARGS`` (after one untimed warm-up)."""
    out = []
    for n in range(runs + 1):
        began = time.perf_counter()
        proc = subprocess.run([str(FLOY), *args], env=env, capture_output=True, check=False)
        took = (time.perf_counter() - began) * 1000.0
        if proc.returncode != 0:
            raise RuntimeError(f"floy {' '.join(args)} exited {proc.returncode}: "
                               f"{proc.stderr.decode()[-500:]}")
        if n:
            out.append(took)
    return out


def imports_of(args: list[str], env: dict[str, str]
               ) -> tuple[set[str], int, list[tuple[str, int]]]:
    """Packages ``floy ARGS`` imports, the total import time and the five slowest packages
    other than floy's own (µs, cumulative: with everything each one imports)."""
    proc = subprocess.run([str(VENV_BIN / "python"), "-X", "importtime", str(FLOY), *args],
                          env=env, capture_output=True, text=True, check=False)
    packages: set[str] = set()
    cost: dict[str, int] = {}
    total = 0
    for line in proc.stderr.splitlines():
        match = IMPORT_LINE.match(line)
        if not match:
            continue
        name = match.group(4).split(".")[0]
        cumulative = int(match.group(2))
        packages.add(name)
        cost[name] = max(cost.get(name, 0), cumulative)  # its outermost import
        if len(match.group(3)) <= 1:  # a top-level import (not nested under another)
            total += cumulative
    others = {k: v for k, v in cost.items() if k not in ("orchestrator", "site", "encodings")}
    return packages, total, sorted(others.items(), key=lambda kv: -kv[1])[:5]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--instances", type=int, default=100,
                        help="instances of the deployment whose status is asked")
    parser.add_argument("--quick", action="store_true", help="5 runs each")
    args = parser.parse_args()
    runs = 5 if args.quick else args.runs
    banner(f"cli: whole floy processes, {runs} runs each")
    tmp = Path(tempfile.mkdtemp(prefix="floy-bench-cli-"))
    try:
        home = tmp / "home"
        store = Store.open(f"sqlite:///{home / 'floy.db'}")
        insert_instances(store, "web", args.instances)
        record_deployment(store, args.instances, fail_every=0)
        store.close()
        env = venv_path_env({"FLOY_HOME": str(home)})
        commands = {"--help": ["--help"], "status --json": ["status", DEPLOY_ID, "--json"]}
        verdicts = []
        for label, argv in commands.items():
            values = time_command(argv, env, runs)
            med = median(values)
            goal = GOALS_MS[label]
            met = "met" if med <= goal else "MISSED"
            verdicts.append(f"{label} {med:.0f} ms (goal <= {goal:.0f}: {met})")
            print(f"  floy {label:<14} median {med:7.1f} ms  p99 {percentile(values, 99):7.1f} ms"
                  f"  min {min(values):7.1f} ms  n={len(values)}  goal {met}")
            packages, total, slowest = imports_of(argv, env)
            heavy = ", ".join(f"{m} {'yes' if m in packages else 'no'}" for m in HEAVY)
            print(f"    imported: {heavy}; imports take {total / 1000:.0f} ms, slowest: "
                  + ", ".join(f"{name} {us / 1000:.0f} ms" for name, us in slowest))
        began = time.perf_counter()
        for _ in range(runs):
            subprocess.run([str(VENV_BIN / "python"), "-c", "pass"], check=False)
        bare = (time.perf_counter() - began) * 1000.0 / runs
        print(f"  (a bare 'python -c pass' takes {bare:.0f} ms here)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"summary: {'; '.join(verdicts)}; python startup {bare:.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
