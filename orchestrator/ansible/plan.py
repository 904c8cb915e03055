"""Bake: everything handed to Ansible for one run, computed by pure functions.

A :class:`RunPlan` is a frozen value (inventory data, extra vars, playbook, forks, env);
:mod:`orchestrator.ansible.runner` materialises and executes it. Tests check the baking directly.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.ansible.inventory import Unsafe, render_inventory, unsafe_tree
from orchestrator.domain.records import InstanceRecord, RunInstanceRecord, RunRecord
from orchestrator.settings import Settings

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


def _serial(batch_size: str) -> int | Unsafe:
    return Unsafe(batch_size) if batch_size.endswith("%") else int(batch_size)


def deploy_extravars(run: RunRecord, settings: Settings) -> dict[str, Any]:
    """The documented ``floy_*`` extra vars of a deployment (user strings tagged unsafe)."""
    p = run.request
    values: dict[str, Any] = {
        "floy_hosts": Unsafe(run.service),
        "floy_service": Unsafe(run.service),
        "floy_version": Unsafe(run.version),
        "floy_package_url": Unsafe(p.package_url),
        "floy_package_sha256": Unsafe(p.package_sha256),
        "floy_deploy_id": Unsafe(run.run_id),
        "floy_timeout": p.timeout,
        "floy_retry_count": p.retry_count,
        "floy_batch_size": _serial(p.batch_size),
        "floy_max_failures": p.max_failures,
    }
    if settings.ca_bundle:
        values["floy_ca_bundle"] = Unsafe(settings.ca_bundle)
    if settings.allowed_package_hosts:
        # Checked again on the instance: for redirect hops and URLs recorded on the host.
        values["floy_allowed_package_hosts"] = [
            Unsafe(h) for h in sorted(settings.allowed_package_hosts)
        ]
    return values


def ansible_bin_dir(settings: Settings) -> Path:
    """Directory of the ansible executables installed with floy's interpreter."""
    return Path(settings.python).parent


def collections_path(settings: Settings) -> str:
    """Where Ansible looks for collections: floy's own (the role and modules are the
    collection ``floy.release`` in ``collections/`` beside the playbooks) first.

    ``ansible.cfg`` (the repository root's, linked from ``playbooks/``) says the same; the
    environment variable is set as well because one already in the caller's environment
    would override the file.
    """
    own = str(settings.playbook_dir.parent / "collections")
    rest = os.environ.get(
        "ANSIBLE_COLLECTIONS_PATH", "~/.ansible/collections:/usr/share/ansible/collections"
    )
    return os.pathsep.join(p for p in (own, rest) if p)


def runner_env(settings: Settings, run_id: str, path: str | None = None) -> dict[str, str]:
    """Environment for ansible-playbook. Never put secrets here: runner records it on disk.

    ``PATH`` starts with the interpreter's bin directory, so the ansible that floy was
    installed with is used even when its virtualenv is not activated. ``FLOY_RUN_ID`` tags
    every process of the run on this machine (modules of local instances included), so a
    cancel can wait for them to finish cleaning up.
    """
    search = os.pathsep.join(
        p for p in (str(ansible_bin_dir(settings)), path or os.environ.get("PATH", "")) if p
    )
    return {
        "PATH": search,
        "FLOY_RUN_ID": run_id,
        "ANSIBLE_CONFIG": str(settings.playbook_dir / "ansible.cfg"),
        "ANSIBLE_COLLECTIONS_PATH": collections_path(settings),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_RETRY_FILES_ENABLED": "0",
    }


def rollback_extravars(run: RunRecord, settings: Settings) -> dict[str, Any]:
    """Extra vars of a rollback: as a deployment's, but the package comes per instance
    (host vars, since extra vars would override them) and ``floy_force`` may be set."""
    values = deploy_extravars(run, settings)
    del values["floy_package_url"], values["floy_package_sha256"]
    values["floy_force"] = run.request.force
    return values


def rollback_host_vars(members: Sequence[RunInstanceRecord]) -> dict[str, dict[str, Any]]:
    """Per-instance package URL and sha256 of a rollback run."""
    return {
        m.instance_id: {
            "floy_package_url": Unsafe(m.package_url),
            "floy_package_sha256": Unsafe(m.package_sha256),
        }
        for m in members
    }


def bake(
    settings: Settings,
    run: RunRecord,
    instances: Sequence[InstanceRecord],
    extravars: Mapping[str, Any],
    host_vars: Mapping[str, Mapping[str, Any]] | None = None,
) -> RunPlan:
    """Compute the plan for ``run`` over ``instances`` (in run order)."""
    return bake_playbook(settings, run.run_id, PLAYBOOKS[run.kind], run.service, instances,
                         extravars, host_vars)


def bake_probe(
    settings: Settings, label: str, service: str, instances: Sequence[InstanceRecord]
) -> RunPlan:
    """The plan of a probe of ``instances`` (read-only)."""
    extravars = {"floy_service": Unsafe(service), "floy_hosts": Unsafe(service)}
    return bake_playbook(settings, label, PLAYBOOKS["probe"], service, instances, extravars)


def bake_playbook(
    settings: Settings,
    label: str,
    playbook: str,
    service: str,
    instances: Sequence[InstanceRecord],
    extravars: Mapping[str, Any],
    host_vars: Mapping[str, Mapping[str, Any]] | None = None,
) -> RunPlan:
    """A plan running ``playbook`` over ``instances`` in a private data dir named ``label``."""
    return RunPlan(
        run_id=label,
        private_data_dir=settings.runs_dir / label,
        playbook=settings.playbook_dir / playbook,
        inventory=render_inventory(service, instances, host_vars),
        operator_inventory_dir=settings.inventory_dir,
        extravars=unsafe_tree(dict(extravars)),
        forks=max(1, min(settings.forks, len(instances))),
        envvars=runner_env(settings, label),
        instance_ids=tuple(i.instance_id for i in instances),
    )
