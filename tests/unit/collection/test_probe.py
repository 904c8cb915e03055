"""floy_probe's verdicts on instance directories written the way floy_release writes them
(through module_utils/floy_layout), and its agreement with floy_release's own reading."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.unit.collection._collection import fake_module, plugin

layout_mod = plugin("module_utils.floy_layout")
groups = plugin("module_utils.floy_process_groups")
floy_probe = plugin("modules.floy_probe")
floy_release = plugin("modules.floy_release")


class Instance:
    """An instance directory built with the layout's own functions."""

    def __init__(self, path: Path) -> None:
        self.layout = layout_mod.InstanceLayout(str(path))
        layout_mod.make_directories(self.layout)

    def install(self, version: str, installed_at: str = "2026-01-01T00:00:00Z",
                record: bool = True, directory: bool = True) -> None:
        """As floy_release.install: the record, then the directory renamed in."""
        if record:
            layout_mod.write_json_atomic(self.layout.record_path(version), {
                "version": version, "package_url": "", "sha256": "",
                "installed_at": installed_at})
        if directory:
            unpacked = os.path.join(self.layout.releases_dir, ".floy-unpack-" + version)
            os.makedirs(os.path.join(unpacked, "bin"))
            os.rename(unpacked, self.layout.release_dir(version))

    def switch(self, version: str) -> None:
        layout_mod.switch_current(self.layout, layout_mod.link_target(version))
        layout_mod.write_json_atomic(self.layout.state_path,
                                     {"version": version, "previous_version": ""})

    def probe(self) -> dict[str, object]:
        result: dict[str, object] = floy_probe.probe(self.layout.instance_dir)
        return result

    def release_reading(self) -> tuple[str, list[str]]:
        """What floy_release itself concludes: current version, complete releases."""
        release = floy_release.Release(fake_module(
            floy_release, instance_dir=self.layout.instance_dir, service="hello",
            instance_id="hello-1", version="9.9.9"))
        names = layout_mod.release_names(self.layout)
        return release.read_current()[1], sorted(
            n for n in names if layout_mod.is_complete(self.layout, n))


@pytest.fixture
def inst(tmp_path: Path) -> Instance:
    return Instance(tmp_path / "hello" / "hello-1")


def test_missing_instance(tmp_path: Path) -> None:
    assert floy_probe.probe(str(tmp_path / "nope")) == {
        "exists": False, "current_version": "", "state": {}, "releases": [],
        "incomplete": [], "waited": 0.0, "busy": False}


def test_current_and_complete_releases_oldest_first(inst: Instance) -> None:
    inst.install("2.0.0", "2026-02-01T00:00:00Z")
    inst.install("1.0.0", "2026-01-01T00:00:00Z")
    inst.install("1.5.0", "2026-01-15T00:00:00Z")
    inst.switch("2.0.0")
    result = inst.probe()
    assert result["exists"] is True and result["busy"] is False
    assert result["current_version"] == "2.0.0"
    assert result["releases"] == ["1.0.0", "1.5.0", "2.0.0"]
    assert result["incomplete"] == []
    assert result["state"] == {"version": "2.0.0", "previous_version": ""}


def test_incomplete_releases(inst: Instance) -> None:
    inst.install("1.0.0")
    inst.install("2.0.0", record=False)      # a directory with no record
    inst.install("3.0.0", directory=False)   # killed after the record, before the rename
    Path(inst.layout.record_path("4.0.0")).write_text("{broken")
    inst.install("4.0.0", record=False)      # its record is unreadable
    os.makedirs(os.path.join(inst.layout.releases_dir, ".floy-unpack-5.0.0"))  # a temp
    result = inst.probe()
    assert result["releases"] == ["1.0.0"]
    assert result["incomplete"] == ["2.0.0", "4.0.0"]  # 3.0.0 has no directory at all
    assert result["current_version"] == ""
    assert inst.release_reading() == ("", ["1.0.0"])


def test_a_symlinked_release_is_not_complete(inst: Instance, tmp_path: Path) -> None:
    (tmp_path / "elsewhere").mkdir()
    inst.install("1.0.0", directory=False)
    os.symlink(tmp_path / "elsewhere", inst.layout.release_dir("1.0.0"))
    result = inst.probe()
    assert result["releases"] == [] and result["incomplete"] == ["1.0.0"]


def test_broken_current_symlink(inst: Instance) -> None:
    inst.install("1.0.0")
    os.symlink("releases/2.0.0", inst.layout.current_link)
    result = inst.probe()
    assert result["current_version"] == ""
    assert result["releases"] == ["1.0.0"]
    assert inst.release_reading() == ("", ["1.0.0"])


def test_current_need_not_be_complete(inst: Instance) -> None:
    """Both modules read ``current`` by its target, complete or not (a release killed after
    the rename but before the switch back leaves such a state only under the lock)."""
    inst.install("1.0.0", record=False)
    os.symlink("releases/1.0.0", inst.layout.current_link)
    result = inst.probe()
    assert result["current_version"] == "1.0.0" and result["incomplete"] == ["1.0.0"]
    assert inst.release_reading() == ("1.0.0", [])


@pytest.mark.parametrize("target", ["/elsewhere/releases/1.0.0", "releases/1.0.0/bin",
                                    "../hello-2/releases/1.0.0"])
def test_a_link_floy_release_never_writes_names_no_release(inst: Instance, target: str) -> None:
    inst.install("1.0.0")
    os.symlink(target, inst.layout.current_link)
    assert inst.probe()["current_version"] == ""
    assert inst.release_reading()[0] == ""


def test_a_hostile_name_is_reported_as_found(inst: Instance) -> None:
    """The probe reports what is on disk; the controller validates it (and refuses it, see
    orchestrator's probe fold); floy_release only ever trusts names matching NAME_RE."""
    evil = "{{ lookup('pipe','id') }}"
    inst.install(evil)
    os.symlink(f"releases/{evil}", inst.layout.current_link)
    result = inst.probe()
    assert result["current_version"] == evil and result["releases"] == [evil]
    assert inst.release_reading() == ("", [evil])


def test_probe_agrees_with_release_on_every_entry(inst: Instance) -> None:
    inst.install("1.0.0", "2026-01-01T00:00:00Z")
    inst.install("2.0.0", "2026-01-02T00:00:00Z")
    inst.install("3.0.0", record=False)
    inst.install("4.0.0", directory=False)
    inst.switch("2.0.0")
    result = inst.probe()
    current, complete = inst.release_reading()
    assert result["current_version"] == current == "2.0.0"
    assert result["releases"] == complete == ["1.0.0", "2.0.0"]
    for name in layout_mod.release_names(inst.layout):
        assert (name in result["releases"]) is layout_mod.is_complete(inst.layout, name)


def test_waits_for_a_release_holding_the_lock(inst: Instance) -> None:
    held = layout_mod.lock_exclusive(inst.layout, 0)
    try:
        started = time.monotonic()
        assert floy_probe.wait_for_release(inst.layout, limit=0.3) is None
        assert time.monotonic() - started >= 0.3
    finally:
        os.close(held)
    waited = floy_probe.wait_for_release(inst.layout, limit=0.3)
    assert waited is not None and waited < 0.3


def test_a_busy_instance_is_reported(inst: Instance, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(floy_probe, "wait_for_release", lambda layout: None)
    result = inst.probe()
    assert result["busy"] is True and result["waited"] == layout_mod.LOCK_WAIT


def _orphan(instance_dir: str) -> subprocess.Popen[bytes]:
    """A restart command's group left running by a release that died."""
    env = dict(os.environ, FLOY_INSTANCE_DIR=instance_dir)
    return subprocess.Popen(["/bin/sh", "-c", "sleep 60 & exec sleep 60"], env=env,
                            start_new_session=True)


def test_probe_stops_an_orphaned_restart_of_this_instance(inst: Instance) -> None:
    os.close(layout_mod.lock_exclusive(inst.layout, 0))  # a release ran here once
    proc = _orphan(inst.layout.instance_dir)
    try:
        time.sleep(0.2)
        groups.record_restart(inst.layout.restart_record_path, proc.pid)
        inst.probe()
        assert proc.wait(timeout=10) == -signal.SIGTERM
        assert not groups.group_alive(proc.pid)
        assert not os.path.exists(inst.layout.restart_record_path)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def test_probe_never_stops_a_stranger(inst: Instance, tmp_path: Path) -> None:
    os.close(layout_mod.lock_exclusive(inst.layout, 0))
    proc = _orphan(str(tmp_path / "another" / "instance"))
    try:
        time.sleep(0.2)
        groups.record_restart(inst.layout.restart_record_path, proc.pid)
        inst.probe()
        assert proc.poll() is None and groups.group_alive(proc.pid)
        assert not os.path.exists(inst.layout.restart_record_path)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def test_the_module_runs_through_ansible(inst: Instance) -> None:
    """AnsiballZ packs the module_utils the probe imports (one module execution)."""
    from tests.ecosystem._paths import VENV_BIN, tool_env

    inst.install("1.0.0")
    inst.switch("1.0.0")
    proc = subprocess.run(
        [str(VENV_BIN / "ansible"), "localhost", "-c", "local", "-o",
         "-e", f"ansible_python_interpreter={sys.executable}",
         "-m", "floy.release.floy_probe", "-a", f"instance_dir={inst.layout.instance_dir}"],
        env=tool_env(ANSIBLE_LOCALHOST_WARNING="0", ANSIBLE_INVENTORY_UNPARSED_WARNING="0"),
        capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(proc.stdout.split("=>", 1)[1])
    assert result["current_version"] == "1.0.0" and result["releases"] == ["1.0.0"]
