"""Canary steps and pauses without floy: playbooks/deploy.yml with floy_steps, run by plain
ansible-playbook (the venv's ansible-core, no ANSIBLE_CONFIG) over three hello instances on
loopback, held by its pauses and promoted or aborted through the markers on the promote
host (here the controller, the default), as an operator or AWX would
(docs/progressive-ansible.md)."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from sample.packages import free_port, stop_apps
from sample.pkgserver import PackageServer
from tests.ecosystem._paths import REPO, VENV_BIN
from tests.ecosystem._plain import fleet_inventory, health, play, start_play

pytestmark = pytest.mark.slow

VENV = VENV_BIN.parent
INSTANCES = ("c1", "c2", "c3")
#: A bound on every ansible-playbook run of these tests (seconds).
RUN_TIMEOUT = 120


@pytest.fixture
def root(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "floy"
    yield path
    stop_apps(path)


@dataclass(frozen=True)
class Fleet:
    """Three instances c1, c2, c3 of hello, nothing installed yet."""

    inventory: Path
    ports: dict[str, int]
    #: The extra vars of a deploy of hello 2.0.0 to them, but floy_steps.
    extra: dict[str, object]


@pytest.fixture
def fleet(tmp_path: Path, root: Path, packages: dict[str, tuple[str, str]],
          package_server: PackageServer) -> Fleet:
    ports = {name: free_port() for name in INSTANCES}
    url, sha = packages["2.0.0"]
    return Fleet(fleet_inventory(tmp_path, ports), ports, {
        "floy_service": "hello", "floy_version": "2.0.0", "floy_root": str(root),
        "floy_package_url": url, "floy_package_sha256": sha,
        "floy_ca_bundle": str(package_server.ca_bundle), "floy_retry_delay": 0,
        # what an AWX survey always sends along: ignored beside floy_steps
        "floy_batch_size": "1",
    })


def current(root: Path, instance: str) -> str | None:
    link = root / "hello" / instance / "current"
    return os.readlink(link) if link.is_symlink() else None


def markers(root: Path) -> Path:
    """The run's marker directory: floy_promote_dir's default, floy_canary_id's default."""
    return root / "hello" / ".promote" / "hello-2.0.0"


def wait_for_path(path: Path, proc: subprocess.Popen[bytes], log: Path,
                  limit: float = 60) -> None:
    """Until ``path`` exists; fails early if the run ends first."""
    deadline = time.monotonic() + limit
    while not path.exists():
        assert proc.poll() is None, log.read_text()
        assert time.monotonic() < deadline, f"no {path} after {limit} s:\n{log.read_text()}"
        time.sleep(0.2)


def finish(proc: subprocess.Popen[bytes], log: Path) -> tuple[int, str]:
    """The background run's exit code and output, once it ends (killed after the bound)."""
    try:
        rc = proc.wait(timeout=RUN_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        pytest.fail(f"deploy.yml still ran after {RUN_TIMEOUT} s:\n{log.read_text()}")
    return rc, log.read_text()


def started_batches(output: str) -> int:
    return output.count("PLAY [Deploy a release, batch by batch]")


def test_a_pause_holds_until_promote_yml_promotes_it(
        fleet: Fleet, root: Path, tmp_path: Path) -> None:
    inventory, extra = fleet.inventory, fleet.extra
    log = tmp_path / "deploy.log"
    proc = start_play(VENV, tmp_path, "deploy.yml", inventory,
                      {**extra, "floy_steps": "1,pause,100%"}, cwd=tmp_path, output=log)
    try:
        wait_for_path(markers(root) / "waiting", proc, log)
        # batch 1 is released; the rest wait for the promote
        assert current(root, "c1") == "releases/2.0.0"
        assert [current(root, name) for name in ("c2", "c3")] == [None, None]
        time.sleep(1.5)
        assert proc.poll() is None and current(root, "c2") is None

        promote = play(VENV, tmp_path, "promote.yml", inventory,
                       {"floy_service": "hello", "floy_version": "2.0.0", "floy_root": str(root),
                        "floy_promote_note": "error rate flat", "floy_promote_by": "tester"},
                       cwd=REPO, timeout=RUN_TIMEOUT)
        assert promote.returncode == 0, promote.stdout + promote.stderr
        assert "promote-2: batch 2 may start" in promote.stdout, promote.stdout
        assert (markers(root) / "promote-2").read_text() == "error rate flat (by tester)\n"

        rc, output = finish(proc, log)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert rc == 0, output
    assert started_batches(output) == 2, output  # floy_steps' batches, not floy_batch_size's
    assert [current(root, name) for name in INSTANCES] == ["releases/2.0.0"] * 3
    assert not (markers(root) / "waiting").exists()


def test_a_timed_pause_ends_by_itself(fleet: Fleet, root: Path, tmp_path: Path) -> None:
    inventory, extra = fleet.inventory, fleet.extra
    began = time.monotonic()
    run = play(VENV, tmp_path, "deploy.yml", inventory,
               {**extra, "floy_steps": ["1", "pause 2s", "100%"]}, cwd=tmp_path,
               timeout=RUN_TIMEOUT)
    assert run.returncode == 0, run.stdout + run.stderr
    assert time.monotonic() - began >= 2
    assert started_batches(run.stdout) == 2, run.stdout
    assert [current(root, name) for name in INSTANCES] == ["releases/2.0.0"] * 3
    assert [health(fleet.ports[name])["version"] for name in INSTANCES] == ["2.0.0"] * 3


def test_an_abort_marker_stops_the_run_before_batch_2(
        fleet: Fleet, root: Path, tmp_path: Path) -> None:
    inventory, extra = fleet.inventory, fleet.extra
    log = tmp_path / "deploy.log"
    proc = start_play(VENV, tmp_path, "deploy.yml", inventory,
                      {**extra, "floy_steps": "1,pause,100%"}, cwd=tmp_path, output=log)
    try:
        wait_for_path(markers(root) / "waiting", proc, log)
        # by hand, as the documentation says an operator may
        (markers(root) / "abort").write_text("p99 latency up 40% - alice\n")
        rc, output = finish(proc, log)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert rc != 0, output
    assert "aborted before batch 2 by " in output, output
    assert "p99 latency up 40% - alice" in output, output
    assert "not started: c2, c3" in output, output
    assert current(root, "c1") == "releases/2.0.0"
    # the rest untouched: never even given a directory
    assert not (root / "hello" / "c2").exists() and not (root / "hello" / "c3").exists()
    assert not (markers(root) / "waiting").exists()


def test_a_full_promote_ends_every_pause(fleet: Fleet, root: Path, tmp_path: Path) -> None:
    log = tmp_path / "deploy.log"
    proc = start_play(VENV, tmp_path, "deploy.yml", fleet.inventory,
                      {**fleet.extra, "floy_steps": "1,pause,1,pause,100%"}, cwd=tmp_path,
                      output=log)
    try:
        wait_for_path(markers(root) / "waiting", proc, log)
        (markers(root) / "full").write_text("all good - bob\n")  # by hand
        rc, output = finish(proc, log)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert rc == 0, output
    assert started_batches(output) == 3, output  # held once, not before batch 3
    assert [current(root, name) for name in INSTANCES] == ["releases/2.0.0"] * 3


def test_the_failure_budget_holds_across_the_steps(
        packages: dict[str, tuple[str, str]], package_server: PackageServer, root: Path,
        tmp_path: Path) -> None:
    """c1 fails its restart: with floy_max_failures 0 no later batch starts, and the pause
    after batch 1 does not hold (nothing would come after it)."""
    ports = {name: free_port() for name in INSTANCES}
    inventory = fleet_inventory(tmp_path, ports, {"c1": {"floy_restart_command": "exit 3"}})
    url, sha = packages["2.0.0"]
    run = play(VENV, tmp_path, "deploy.yml", inventory,
               {"floy_service": "hello", "floy_version": "2.0.0", "floy_root": str(root),
                "floy_package_url": url, "floy_package_sha256": sha,
                "floy_ca_bundle": str(package_server.ca_bundle), "floy_retry_delay": 0,
                "floy_steps": "1,pause,100%", "floy_max_failures": 0},
               cwd=tmp_path, timeout=RUN_TIMEOUT)
    assert run.returncode != 0, run.stdout
    assert "failure budget exhausted: 1 instance(s) failed (c1)" in run.stdout, run.stdout
    assert "not started: c2, c3" in run.stdout, run.stdout
    assert not (root / "hello" / "c2").exists() and not (root / "hello" / "c3").exists()
    assert not (markers(root) / "waiting").exists()
    assert "aborted" not in run.stdout and "no promote within" not in run.stdout


@pytest.mark.parametrize(("steps", "says"), [
    ("pause,1", "floy_steps item 1 'pause': the first item must be a batch"),
    ("0", "floy_steps item 1 '0' is out of range"),
    ("1,pause 5x", "floy_steps item 2 'pause 5x': the duration is"),
])
def test_bad_steps_are_refused_before_any_host(
        fleet: Fleet, root: Path, tmp_path: Path, steps: str, says: str) -> None:
    inventory, extra = fleet.inventory, fleet.extra
    run = play(VENV, tmp_path, "deploy.yml", inventory, {**extra, "floy_steps": steps},
               cwd=tmp_path, timeout=RUN_TIMEOUT)
    assert run.returncode != 0, run.stdout
    assert says in run.stdout, run.stdout
    assert "Check the batching inputs" in run.stdout
    assert started_batches(run.stdout) == 0, run.stdout
    assert not root.exists()  # no instance, no marker directory
