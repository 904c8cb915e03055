"""Bake: everything handed to Ansible for one run, computed by pure functions.

A :class:`RunPlan` is a frozen value (inventory data, extra vars, playbook, forks, env);
:mod:`orchestrator.runner` materialises and executes it. Tests check the baking directly.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.inventory import Unsafe, render_inventory, unsafe_tree
from orchestrator.settings import Settings
from orchestrator.store import InstanceRecord, RunRecord

PLAYBOOKS = {"deploy": "deploy.yml", "rollback": "rollback.yml", "probe": "probe.yml"}


@dataclass(frozen=True)
class RunPlan:
    """A fully computed ansible-runner invocation."""

    run_id: str
    private_data_dir: Path
    playbook: Path
    inventory: Mapping[str, Any]
    operator_inventory_dir: Path
    extravars: Mapping[str, Any]
    forks: int
    envvars: Mapping[str, str]
    instance_ids: tuple[str, ...]


def batch_sizes(batch_size: str, total: int) -> list[int]:
    """Sizes of the serial batches Ansible will form (same rounding as ``serial``)."""
    if total <= 0:
        return []
    if batch_size.endswith("%"):
        size = max(1, math.floor(int(batch_size[:-1]) / 100.0 * total))
    else:
        size = max(1, int(batch_size))
    sizes = []
    remaining = total
    while remaining > 0:
        sizes.append(min(size, remaining))
        remaining -= size
    return sizes


def batch_numbers(batch_size: str, total: int) -> list[int]:
    """1-based batch number of each position in a run of ``total`` instances."""
    out: list[int] = []
    for number, size in enumerate(batch_sizes(batch_size, total), start=1):
        out.extend([number] * size)
    return out


def _serial(batch_size: str) -> int | Unsafe:
    return Unsafe(batch_size) if batch_size.endswith("%") else int(batch_size)


def deploy_extravars(run: RunRecord, settings: Settings) -> dict[str, Any]:
    """The documented ``floy_*`` extra vars of a deployment (user strings tagged unsafe)."""
    p = run.params
    values: dict[str, Any] = {
        "floy_hosts": Unsafe(run.service),
        "floy_service": Unsafe(run.service),
        "floy_version": Unsafe(run.version),
        "floy_package_url": Unsafe(p["package_url"]),
        "floy_package_sha256": Unsafe(p.get("package_sha256", "")),
        "floy_deploy_id": Unsafe(run.run_id),
        "floy_timeout": int(p.get("timeout", 300)),
        "floy_retry_count": int(p.get("retry_count", 3)),
        "floy_batch_size": _serial(str(p.get("batch_size", "1"))),
        "floy_max_failures": int(p.get("max_failures", 0)),
    }
    if settings.ca_bundle:
        values["floy_ca_bundle"] = Unsafe(settings.ca_bundle)
    return values


def ansible_bin_dir(settings: Settings) -> Path:
    """Directory of the ansible executables installed with floy's interpreter."""
    return Path(settings.python).parent


def runner_env(settings: Settings, path: str | None = None) -> dict[str, str]:
    """Environment for ansible-playbook. Never put secrets here: runner records it on disk.

    ``PATH`` starts with the interpreter's bin directory, so the ansible that floy was
    installed with is used even when its virtualenv is not activated.
    """
    search = os.pathsep.join(
        p for p in (str(ansible_bin_dir(settings)), path or os.environ.get("PATH", "")) if p
    )
    return {
        "PATH": search,
        "ANSIBLE_CONFIG": str(settings.playbook_dir / "ansible.cfg"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_RETRY_FILES_ENABLED": "0",
    }


def bake(
    settings: Settings,
    run: RunRecord,
    instances: Sequence[InstanceRecord],
    extravars: Mapping[str, Any],
) -> RunPlan:
    """Compute the plan for ``run`` over ``instances`` (in run order)."""
    return RunPlan(
        run_id=run.run_id,
        private_data_dir=settings.runs_dir / run.run_id,
        playbook=settings.playbook_dir / PLAYBOOKS[run.kind],
        inventory=render_inventory(run.service, instances),
        operator_inventory_dir=settings.inventory_dir,
        extravars=unsafe_tree(dict(extravars)),
        forks=max(1, min(settings.forks, len(instances))),
        envvars=runner_env(settings),
        instance_ids=tuple(i.instance_id for i in instances),
    )
