"""How long a cancel takes to stop a run: ``python bench/bench_cancel.py [repetitions]``.

Each repetition deploys to one local instance with the detached worker, waits until the
instance is in flight (its restart command hanging, or its download crawling), then times
``cancel_deployment``: from the request to the run recorded ``cancelled`` with every
process of the run gone and the instance probed. Prints each figure and the medians.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from orchestrator.models import DeployParams, Status
from sample.packages import build_hello_package, sha256_file, stop_apps
from sample.pkgserver import PackageServer, make_pki
from tests.integration.conftest import make_env


def main() -> int:
    reps = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    tmp = Path(tempfile.mkdtemp(prefix="floy-bench-cancel-"))
    pki = make_pki(tmp / "pki")
    (tmp / "pkgs").mkdir()
    ok = build_hello_package(tmp / "pkgs", "1.0.0")
    hang = build_hello_package(tmp / "pkgs", "9.0.0", "hang")
    server = PackageServer.start(tmp / "pkgs", pki)
    packages = {"1.0.0": (server.url(ok.name), sha256_file(ok)),
                "9.0.0-hang": (server.url(hang.name), sha256_file(hang))}
    (tmp / "env").mkdir()
    env = make_env(tmp / "env", pki, packages, inline=False)
    ids = env.register(1)
    results: dict[str, list[float]] = {"restart hanging": [], "download crawling": []}
    try:
        env.service.execute_deployment(DeployParams(
            service="hello", version="1.0.0", instances=tuple(ids),
            package_url=packages["1.0.0"][0], deploy_id="base"))
        assert env.wait("base").status is Status.COMPLETED
        for n in range(reps):
            for case, url in (("restart hanging", packages["9.0.0-hang"][0]),
                              ("download crawling",
                               packages["1.0.0"][0].replace("/pkgs/", "/slow/60/pkgs/"))):
                run_id = f"bench-{case.split()[0]}-{n}"
                version = "9.0.0" if "hang" in url else "1.0.1"
                env.service.execute_deployment(DeployParams(
                    service="hello", version=version, instances=tuple(ids), package_url=url,
                    deploy_id=run_id, timeout=300, retry_count=0))
                env.wait_in_flight(run_id)
                time.sleep(1.0)
                began = time.monotonic()
                result = env.service.cancel_deployment(run_id)
                took = time.monotonic() - began
                assert result.status is Status.CANCELLED, result
                results[case].append(took)
                print(f"  {case:<18} repetition {n + 1}: {took:.2f} s")
    finally:
        server.stop()
        stop_apps(env.root)
    print("cancel: request -> run stopped, processes gone, instance probed")
    for case, values in results.items():
        print(f"  {case:<18} median {statistics.median(values):.2f} s "
              f"(min {min(values):.2f}, max {max(values):.2f}, n={len(values)})")
    every = [v for values in results.values() for v in values]
    print(f"summary: cancel median {statistics.median(every):.2f} s over {len(every)} runs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
