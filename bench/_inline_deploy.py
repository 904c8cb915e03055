"""One floy deployment carried inline in this process (a child of a benchmark).

``python bench/_inline_deploy.py --home H --inventory-dir D --ca-bundle C --forks N
--service S --version V --url U --sha256 X --deploy-id ID --batch-size B``

Deploys V to every registered instance of S through the service with the inline executor
(the worker, ansible-runner and the event fold all run here), then prints one JSON line:
the run's status and counts, this process's own CPU and its peak RSS (the orchestrator's
footprint; ansible-playbook is a child and is not included).
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from orchestrator.engine.executors import InlineExecutor
from orchestrator.models import DeployParams, Status
from orchestrator.service import new_deploy_service
from orchestrator.settings import load_settings
from orchestrator.store import Store


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    for name in ("home", "inventory-dir", "ca-bundle", "service", "version", "url", "sha256",
                 "deploy-id", "batch-size"):
        parser.add_argument(f"--{name}", required=True)
    parser.add_argument("--forks", type=int, required=True)
    args = parser.parse_args()
    settings = load_settings(home=args.home, inventory_dir=args.inventory_dir, environ={
        "FLOY_CA_BUNDLE": args.ca_bundle, "FLOY_FORKS": str(args.forks)})
    store = Store.open(settings.db_url)
    service = new_deploy_service(logging.getLogger("bench"), InlineExecutor(settings, store),
                                 store, settings)
    ids = tuple(r.instance_id for r in store.instances.of_service(args.service))
    service.execute_deployment(DeployParams(
        service=args.service, version=args.version, instances=ids, package_url=args.url,
        package_sha256=args.sha256, deploy_id=args.deploy_id, batch_size=args.batch_size))
    status = service.get_deployment_status(args.deploy_id)
    store.close()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({
        "status": status.status.value,
        "completed": status.progress.completed,
        "failed": status.progress.failed,
        "total": status.progress.total,
        "self_cpu": usage.ru_utime + usage.ru_stime,
        "maxrss_mib": usage.ru_maxrss / 1024.0,
        "error": status.error_message[:500],
    }))
    return 0 if status.status is Status.COMPLETED else 1


if __name__ == "__main__":
    sys.exit(main())
