"""Running floy's playbooks with a given ansible-core only (no floy, no ANSIBLE_CONFIG), as an
operator without floy does: shared by test_plain_ansible.py and test_oldest_ansible.py."""

from __future__ import annotations

import json
import os
import subprocess
import urllib.request
from pathlib import Path

import yaml

from tests.ecosystem._paths import PLAYBOOKS, REPO


def local_inventory(tmp_path: Path, port: int) -> Path:
    """The operator's local group_vars and one hello instance ``p1`` on ``port``: the
    inventory's hosts file."""
    return fleet_inventory(tmp_path, {"p1": port})


def fleet_inventory(tmp_path: Path, ports: dict[str, int],
                    host_vars: dict[str, dict[str, object]] | None = None) -> Path:
    """The operator's local group_vars and hello instances named and on the ports of
    ``ports``, in that order (with their ``host_vars``): the inventory's hosts file."""
    inventory = tmp_path / "inventory"
    (inventory / "group_vars").mkdir(parents=True)
    for source in (REPO / "inventories" / "local" / "group_vars").glob("*.yml"):
        (inventory / "group_vars" / source.name).write_text(source.read_text())
    hosts = {name: {"floy_instance_port": port, **(host_vars or {}).get(name, {})}
             for name, port in ports.items()}
    (inventory / "hosts.yml").write_text(
        yaml.safe_dump({"all": {"children": {"hello": {"hosts": hosts}}}}, sort_keys=False))
    return inventory / "hosts.yml"


def plain_env(venv: Path, workdir: Path) -> dict[str, str]:
    """No floy venv on PATH, no ANSIBLE_CONFIG, no PYTHONPATH: plain ansible-core."""
    return {
        "PATH": f"{venv / 'bin'}{os.pathsep}/usr/bin{os.pathsep}/bin",
        "HOME": os.environ.get("HOME", str(workdir)),
        "LANG": "C.UTF-8",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_LOCAL_TEMP": str(workdir / "ansible-tmp"),
        "ANSIBLE_REMOTE_TEMP": str(workdir / "ansible-tmp"),
    }


def _command(venv: Path, workdir: Path, playbook: str, inventory: Path,
             extra: dict[str, object], cwd: Path) -> list[str]:
    vars_file = workdir / f"vars-{playbook}"
    vars_file.write_text(yaml.safe_dump(extra))
    return [str(venv / "bin" / "ansible-playbook"), "-i", str(inventory),
            str(PLAYBOOKS / playbook) if cwd != REPO else f"playbooks/{playbook}",
            "-e", f"@{vars_file}"]


def play(venv: Path, workdir: Path, playbook: str, inventory: Path, extra: dict[str, object],
          cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        _command(venv, workdir, playbook, inventory, extra, cwd),
        cwd=cwd, env=plain_env(venv, workdir), capture_output=True, text=True, timeout=timeout,
    )


def start_play(venv: Path, workdir: Path, playbook: str, inventory: Path,
               extra: dict[str, object], cwd: Path, output: Path) -> subprocess.Popen[bytes]:
    """``play`` in the background, its stdout and stderr written to ``output`` (a file, not
    a pipe nobody reads while it runs)."""
    with output.open("wb") as sink:
        return subprocess.Popen(
            _command(venv, workdir, playbook, inventory, extra, cwd),
            cwd=cwd, env=plain_env(venv, workdir), stdout=sink, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )


def health(port: int) -> dict[str, str]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(f"http://127.0.0.1:{port}/health", timeout=5) as response:
        data: dict[str, str] = json.loads(response.read())
        return data
