"""ansible.cfg where AWX and ansible-runner read it.

AWX runs a job as ``ansible-runner`` does with ``ansible-runner run <private data dir>
-p playbooks/deploy.yml``: the project (the repository's checkout) is ``<dir>/project``, and
ansible-playbook starts in it, so Ansible reads the project root's ``ansible.cfg`` and never
``playbooks/ansible.cfg`` (DESIGN.md section 6; measured here below, with the old layout).
These tests lay out a private data dir the way AWX does, from this repository's files, run
the real ``ansible-runner`` with no ANSIBLE_* variable in its environment, and read the
settings ansible-playbook ran with from a task's own output."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.ecosystem._paths import COLLECTIONS, PLAYBOOKS, REPO, VENV_BIN

pytestmark = pytest.mark.integration

#: Added to the copy of playbooks/ only: prints the configuration file and collections path
#: ansible-playbook runs with, and runs one module on a host reached through ``ssh``.
CHECK = """---
- name: Show the settings Ansible runs with
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Settings
      ansible.builtin.debug:
        msg: >-
          config={{ ansible_config_file }}
          collections={{ lookup('ansible.builtin.config', 'COLLECTIONS_PATHS') | join(':') }}

- name: Run a module over ssh
  hosts: over_ssh
  gather_facts: false
  tasks:
    - name: Ping
      ansible.builtin.ping:
"""
#: ssh, sftp and scp stand-ins: each logs its command line; ssh runs the remote command
#: here (with its stdin, where a pipelined module arrives), the file copiers refuse.
FAKE_SSH = """#!/bin/sh
for last; do :; done
printf '%s\\n' "ssh $last" >>"$FLOY_SSH_LOG"
exec /bin/sh -c "$last"
"""
FAKE_COPY = """#!/bin/sh
printf '%s\\n' "$(basename "$0") $*" >>"$FLOY_SSH_LOG"
exit 1
"""
_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", "*.tar.gz")


def _private_data_dir(base: Path, *, root_config: bool = True) -> Path:
    """``<base>/project`` laid out as AWX lays out a project checkout. Without
    ``root_config``: the layout before this test, a real file in playbooks/ only."""
    project = base / "project"
    shutil.copytree(PLAYBOOKS, project / "playbooks", symlinks=True, ignore=_IGNORE)
    shutil.copytree(COLLECTIONS, project / "collections", ignore=_IGNORE)
    if root_config:
        shutil.copyfile(REPO / "ansible.cfg", project / "ansible.cfg")
    else:
        (project / "playbooks" / "ansible.cfg").unlink()
        shutil.copyfile(REPO / "ansible.cfg", project / "playbooks" / "ansible.cfg")
    (project / "playbooks" / "floy_settings.yml").write_text(CHECK)
    tools = base / "tools"
    tools.mkdir()
    for name, text in (("ssh", FAKE_SSH), ("sftp", FAKE_COPY), ("scp", FAKE_COPY)):
        (tools / name).write_text(text)
        (tools / name).chmod(0o755)
    python = VENV_BIN / "python"
    (base / "inventory").mkdir()
    (base / "inventory" / "hosts").write_text(
        f"localhost ansible_connection=local ansible_python_interpreter={python}\n"
        f"[over_ssh]\nnode-1 ansible_host=127.0.0.1 ansible_connection=ssh "
        f"ansible_ssh_executable={tools / 'ssh'} ansible_sftp_executable={tools / 'sftp'} "
        f"ansible_scp_executable={tools / 'scp'} ansible_python_interpreter={python}\n"
        f"[hello]\nhello-1 ansible_connection=local floy_root={base / 'instances'} "
        f"floy_instance_id=hello-1 ansible_python_interpreter={python}\n")
    return base


def _runner(pdd: Path, playbook: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update(PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}", NO_COLOR="1",
               FLOY_SSH_LOG=str(pdd / "ssh.log"))
    return subprocess.run(
        [str(VENV_BIN / "ansible-runner"), "run", str(pdd), "-p", playbook, *args],
        cwd=pdd.parent, env=env, capture_output=True, text=True, timeout=180,
    )


def _settings(proc: subprocess.CompletedProcess[str]) -> dict[str, str]:
    match = re.search(r"config=(\S*)\s+collections=(\S*)\"", proc.stdout)
    assert match, proc.stdout + proc.stderr
    return dict(zip(("config", "collections"), match.groups(), strict=True))


def test_ansible_runner_from_the_project_root_reads_the_root_config(tmp_path: Path) -> None:
    pdd = _private_data_dir(tmp_path / "job")
    proc = _runner(pdd, "playbooks/floy_settings.yml")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    settings = _settings(proc)
    project = (pdd / "project").resolve()
    assert settings["config"] == str(project / "ansible.cfg")
    assert settings["collections"].split(":")[0] == str(project / "collections")
    # pipelining: the module went to the host in ssh's stdin, in the one command that runs
    # it; nothing was copied there first (no sftp, scp or dd, no AnsiballZ file)
    (line,) = (pdd / "ssh.log").read_text().splitlines()  # no home, no temp dir either
    assert line.startswith("ssh ") and f"{VENV_BIN / 'python'} &&" in line, line
    assert "AnsiballZ" not in line, line


def test_the_old_layout_was_not_read_there(tmp_path: Path) -> None:
    """What the root config fixes: with the settings in playbooks/ only, none applied, and
    the module was copied to the host as a file before it ran (no pipelining)."""
    pdd = _private_data_dir(tmp_path / "job", root_config=False)
    settings = _settings(_runner(pdd, "playbooks/floy_settings.yml"))
    assert settings["config"] in ("None", "")
    log = (pdd / "ssh.log").read_text()
    assert "AnsiballZ_ping.py" in log and len(log.splitlines()) > 3, log


def test_floys_playbook_runs_under_ansible_runner_from_the_project_root(tmp_path: Path) -> None:
    """A product playbook, as an AWX job template runs it: probe.yml finds the role through
    the root config's collections path and reports the (absent) instance."""
    pdd = _private_data_dir(tmp_path / "job")
    proc = _runner(pdd, "playbooks/probe.yml", "--cmdline", "-e floy_service=hello")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "hello-1" in proc.stdout and "failed=0" in proc.stdout, proc.stdout


def test_ansible_playbook_started_in_playbooks_reads_the_same_settings(tmp_path: Path) -> None:
    """The link playbooks/ansible.cfg -> ../ansible.cfg: one file, read from either place."""
    link = PLAYBOOKS / "ansible.cfg"
    assert link.is_symlink() and link.resolve() == (REPO / "ansible.cfg").resolve()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    for cwd in (REPO, PLAYBOOKS):
        proc = subprocess.run(
            [str(VENV_BIN / "ansible-config"), "dump", "--only-changed", "-t", "all"],
            cwd=cwd, env=env, capture_output=True, text=True, timeout=60,
        )
        assert proc.returncode == 0, proc.stderr
        assert f"CONFIG_FILE() = {cwd / 'ansible.cfg'}" in proc.stdout, proc.stdout
        assert re.search(r"^pipelining\(.*\) = True$", proc.stdout, re.M), proc.stdout
        paths = re.search(r"^COLLECTIONS_PATHS\(.*\) = \['([^']+)'", proc.stdout, re.M)
        assert paths and Path(paths.group(1)).resolve() == COLLECTIONS.resolve(), proc.stdout
