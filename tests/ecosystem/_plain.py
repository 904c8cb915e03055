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
    inventory = tmp_path / "inventory"
    (inventory / "group_vars").mkdir(parents=True)
    for source in (REPO / "inventories" / "local" / "group_vars").glob("*.yml"):
        (inventory / "group_vars" / source.name).write_text(source.read_text())
    hosts = {"all": {"children": {"hello": {"hosts": {"p1": {"floy_instance_port": port}}}}}}
    (inventory / "hosts.yml").write_text(yaml.safe_dump(hosts))
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


def play(venv: Path, workdir: Path, playbook: str, inventory: Path, extra: dict[str, object],
          cwd: Path) -> subprocess.CompletedProcess[str]:
    vars_file = workdir / f"vars-{playbook}"
    vars_file.write_text(yaml.safe_dump(extra))
    return subprocess.run(
        [str(venv / "bin" / "ansible-playbook"), "-i", str(inventory),
         str(PLAYBOOKS / playbook) if cwd != REPO else f"playbooks/{playbook}",
         "-e", f"@{vars_file}"],
        cwd=cwd, env=plain_env(venv, workdir), capture_output=True, text=True, timeout=300,
    )


def health(port: int) -> dict[str, str]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(f"http://127.0.0.1:{port}/health", timeout=5) as response:
        data: dict[str, str] = json.loads(response.read())
        return data
