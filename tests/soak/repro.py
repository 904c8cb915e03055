"""Deterministic reproductions of what the chaos soak found by chance.

    .venv/bin/python -m tests.soak.repro [NAME ...]     (as root: two cases mount a tmpfs)

Each case builds a one-instance floy installation in a temp directory (its own HTTPS
package server, detached workers, a 3 s lease), drives one real deployment to the moment
the soak hit, injects the same fault there, and prints what floy recorded next to what the
disk says. The exit status is 1 if any case still shows its defect. Not collected by pytest.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from orchestrator.models import DeployParams, DeployStatus
from sample.packages import build_hello_package, package_name, sha256_file, stop_apps
from sample.pkgserver import PackageServer, make_pki
from tests.helpers.floyenv import FloyEnv, make_env
from tests.helpers.wait import wait_until
from tests.soak.faults import SmallDisk, SoakPostgres
from tests.soak.procs import Part, installation_parts, kill, snapshot

PACKAGES = {"1.0.0": ("1.0.0", "ok"), "2.0.0": ("2.0.0", "ok"),
            "9.0.0-hang": ("9.0.0", "hang"), "9.0.0-crash": ("9.0.0", "crash")}


@dataclass
class Lab:
    """One instance (or a few) under one floy installation."""

    env: FloyEnv
    instance: str
    instances: list[str]
    disk: SmallDisk | None = None

    @property
    def dir(self) -> Path:
        return self.env.root / "hello" / self.instance

    def deploy(self, package: str, run_id: str) -> None:
        url, sha = self.env.packages[package]
        self.env.service.execute_deployment(DeployParams(
            service="hello", version=package.split("-")[0], instances=(self.instance,),
            package_url=url, package_sha256=sha, deploy_id=run_id, retry_count=0,
            timeout=30))

    def parts(self, kind: str) -> list[Part]:
        return [p for p in installation_parts(self.env.home, self.env.root, "")
                if p.kind == kind]

    def until(self, what: str, test: Callable[[], object], timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while not test():
            if time.monotonic() > deadline:
                raise TimeoutError(f"never saw: {what}")
            time.sleep(0.01)

    def truth(self, status: DeployStatus) -> str:
        """What floy says next to what the disk says (of the first instance)."""
        member = status.instances[0]
        record = self.env.store.instances.get([self.instance])[self.instance].version
        state = json.loads((self.dir / ".floy" / "state.json").read_text())["version"]
        return (f"run {status.status.value}, instance {member.status.value}: "
                f"{member.error_message[:160]!r}\n    record {record!r}; current -> "
                f"{os.readlink(self.dir / 'current')!r}; state.json {state!r}; releases "
                f"{sorted(os.listdir(self.dir / 'releases'))}")

    def stop_playbook_until_released(self) -> None:
        """SIGSTOP ansible-playbook while the module runs: the module finishes the release
        and exits, its result stays unread in the fork."""
        os.kill(self.parts("ansible_playbook")[0].proc.pid, signal.SIGSTOP)
        self.until("the module done", lambda: not self.parts("module"))
        assert os.readlink(self.dir / "current") == "releases/2.0.0"

    def record_matches_disk(self) -> bool:
        record = self.env.store.instances.get([self.instance])[self.instance].version
        return f"releases/{record}" == os.readlink(self.dir / "current")


@contextmanager
def lab(small_disk: bool = False, db: SoakPostgres | None = None,
        lease_seconds: float = 3.0, count: int = 1) -> Iterator[Lab]:
    base = Path(tempfile.mkdtemp(prefix="floy-repro-"))
    pki = make_pki(base / "pki")
    for version, behaviour in PACKAGES.values():
        build_hello_package(base / "packages", version, behaviour)
    server = PackageServer.start(base / "packages", pki)
    packages = {}
    for key, (version, behaviour) in PACKAGES.items():
        name = package_name(version, behaviour)
        packages[key] = (server.url(name), sha256_file(base / "packages" / name))
    env = make_env(base, pki, packages, inline=False, lease_seconds=lease_seconds,
                   db_url=db.new_database() if db is not None else None)
    instances = env.register(count)
    here = Lab(env, instances[0], instances)
    try:
        if small_disk:
            here.disk = SmallDisk(here.dir)
            here.disk.mount()
        url, sha = packages["1.0.0"]
        env.service.execute_deployment(DeployParams(
            service="hello", version="1.0.0", instances=tuple(instances), package_url=url,
            package_sha256=sha, deploy_id="base", batch_size=str(count)))
        assert env.wait("base").status.value == "completed"
        yield here
    finally:
        for part in installation_parts(env.home, env.root, ""):
            kill(part)
        stop_apps(env.root)
        if here.disk is not None:
            here.disk.free()
            time.sleep(0.3)
            here.disk.unmount()
        env.store.close()
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


def module_killed_after_switch() -> tuple[bool, str]:
    """floy_release SIGKILLed after it switched `current` (soak seed 3, step 31)."""
    with lab() as here:
        here.deploy("2.0.0", "r")
        here.until("current -> 2.0.0",
                   lambda: os.readlink(here.dir / "current") == "releases/2.0.0")
        for part in here.parts("module"):
            kill(part)
        status = here.env.wait("r")
        return here.record_matches_disk(), here.truth(status)


def playbook_killed_after_release() -> tuple[bool, str]:
    """ansible-playbook dies after the module finished, before its result became an event
    (soak seed 6 step 19, seed 9 step 33): SIGSTOP it while the module runs, SIGKILL it
    once the module is done."""
    with lab() as here:
        here.deploy("2.0.0", "r")
        here.until("the module", lambda: here.parts("module"))
        here.stop_playbook_until_released()
        kill(here.parts("ansible_playbook")[0])
        status = here.env.wait("r")
        return here.record_matches_disk(), here.truth(status)


def settle_probe_killed() -> tuple[bool, str]:
    """The probe that settles an in-flight instance after a cancel fails (soak seed 7,
    steps 11-13): the release completed on the host, floy never heard, the cancel's probe
    is SIGKILLed; the record keeps the old version and nothing probes again."""
    with lab() as here:
        here.deploy("2.0.0", "r")
        here.until("the module", lambda: here.parts("module"))
        here.stop_playbook_until_released()
        marker = str(here.env.home / "runs" / "probe-").encode()

        def kill_probe() -> None:
            end = time.monotonic() + 60
            while time.monotonic() < end:
                for proc in snapshot().values():
                    if any(marker in arg for arg in proc.argv):
                        os.kill(proc.pid, signal.SIGKILL)
                        return
                time.sleep(0.02)

        threading.Thread(target=kill_probe, daemon=True).start()
        here.env.service.cancel_wait_seconds = 60
        here.env.service.cancel_deployment("r")
        time.sleep(5)  # later reads and workers: nothing settles it
        status = here.env.service.get_deployment_status("r")
        return here.record_matches_disk(), here.truth(status)


def module_killed_while_restart_hangs() -> tuple[bool, str]:
    """floy_release SIGKILLed while its restart command hangs: the restart command (its own
    session, untagged) outlives the run for good."""
    with lab() as here:
        here.deploy("9.0.0-hang", "r")
        here.until("the hanging restart command", lambda: here.parts("restart_command"))
        for part in here.parts("module"):
            kill(part)
        status = here.env.wait("r")
        time.sleep(10)
        left = [f"{p.proc.pid} {p.proc.command[:60]}" for p in here.parts("restart_command")]
        return not left, f"{here.truth(status)}\n    10 s after the run ended: {left}"


def full_disk_during_switch_back() -> tuple[bool, str]:
    """The disk fills once the new (crashing) release restarts (soak seed 10, step 32): the
    module switches back, but state.json keeps naming the release it undid."""
    with lab(small_disk=True) as here:
        log = here.dir / "shared" / "floy-restart.log"
        size = log.stat().st_size
        here.deploy("9.0.0-crash", "r")
        here.until("the restart of 9.0.0", lambda: log.stat().st_size > size)
        assert here.disk is not None
        here.disk.fill()
        status = here.env.wait("r")
        state = json.loads((here.dir / ".floy" / "state.json").read_text())["version"]
        return f"releases/{state}" == os.readlink(here.dir / "current"), here.truth(status)


def full_disk_after_healthy_switch() -> tuple[bool, str]:
    """The disk fills once the new, healthy release restarts: the instance is failed with an
    internal error, yet left on the new release (not switched back)."""
    with lab(small_disk=True) as here:
        log = here.dir / "shared" / "floy-restart.log"
        size = log.stat().st_size
        here.deploy("2.0.0", "r")
        here.until("the restart of 2.0.0", lambda: log.stat().st_size > size)
        assert here.disk is not None
        here.disk.fill()
        status = here.env.wait("r")
        member = status.instances[0]
        consistent = (member.status.value == "completed") == (
            os.readlink(here.dir / "current") == "releases/2.0.0")
        return consistent, here.truth(status)


def db_restart_loses_events() -> tuple[bool, str]:
    """PostgreSQL is down (for less than the lease) while an instance finishes (soak seed
    379286835, step 19): the worker's flush of its runner_on_ok fails and the update is
    dropped; the run goes on to the next batch once the database is back and ends failed
    with that instance never closed, its record missing the release."""
    db = SoakPostgres()
    db.start()
    try:
        with lab(db=db, lease_seconds=30.0, count=2) as here:  # the outage is within the lease
            first, second = here.instances
            url, sha = here.env.packages["2.0.0"]
            here.env.service.execute_deployment(DeployParams(
                service="hello", version="2.0.0", instances=(first, second),
                package_url=url.replace("/pkgs/", "/slow/2/pkgs/"), package_sha256=sha,
                deploy_id="r", retry_count=0, timeout=30, batch_size="1"))
            here.until(f"{first} in progress", lambda: here.env.store.runs.with_members(
                "r")[1][0].status.value == "in_progress")  # type: ignore[index]
            data, pg_ctl = str(db.data), str(db.bindir / "pg_ctl")
            db._run(pg_ctl, "-D", data, "-m", "fast", "-w", "stop")
            try:  # down until the second batch is downloading: the first one's result is in
                releases = here.env.root / "hello" / second / "releases"
                here.until(f"{second} downloading", lambda: releases.is_dir() and any(
                    n.startswith(".floy-pkg-") for n in os.listdir(releases)))
                time.sleep(0.5)
            finally:
                db._run(pg_ctl, "-D", data, "-o", db.options(), "-l",
                        str(db.base / "server.log"), "-w", "-t", "60", "start")
            here.env.store.engine.dispose()  # this process's pooled connections died too
            status = here.env.wait("r", timeout=90)
            log = (here.env.home / "logs" / "r.log").read_text()
            errors = sorted({line.split(": ", 1)[-1][:60] for line in log.splitlines()
                             if " ERROR " in line})
            member = status.instances[0]
            closed = member.status.value in ("completed", "failed", "cancelled")
            return closed and here.record_matches_disk(), (f"{here.truth(status)}\n    "
                                                            f"worker errors: {errors}")
    finally:
        db.stop()


def pending_instance_released_unseen() -> tuple[bool, str]:
    """The worker dies before it stored the start of a release that then completes on the
    host (soak seed 123234666, steps 1-3): the reaper closes the instance "not started" (it
    was still pending in the store) without probing it. SIGSTOP the worker as soon as its
    ansible-playbook runs, let the release finish, then SIGKILL the worker."""
    with lab() as here:
        here.deploy("2.0.0", "r")
        here.until("ansible-playbook", lambda: here.parts("ansible_playbook"))
        worker = here.parts("worker")[0]
        os.kill(worker.proc.pid, signal.SIGSTOP)
        here.until("the release done on the host", lambda: os.readlink(
            here.dir / "current") == "releases/2.0.0" and not here.parts("module"))
        kill(worker)
        # reads never act: the reaper (each worker's start, or `floy reap`) closes the run
        wait_until(here.env.service.reap_stale_runs, 60, "the reaper to close the run", 0.5)
        status = here.env.wait("r")
        return here.record_matches_disk(), here.truth(status)


def unknown_version_left_by_cancel() -> tuple[bool, str]:
    """An instance whose module died after the switch ("its version is unknown until it is
    probed") is probed only when the run ends normally: cancel the run while the next
    instance releases, and nothing probes the first one."""
    with lab(count=2) as here:
        first, second = here.instances
        url, sha = here.env.packages["2.0.0"]
        here.env.service.execute_deployment(DeployParams(
            service="hello", version="2.0.0", instances=(first, second), package_url=url.replace(
                "/pkgs/", "/slow/2/pkgs/"), package_sha256=sha, deploy_id="r", retry_count=0,
            timeout=30, batch_size="1", max_failures=1))
        here.until(f"{first} switched",
                   lambda: os.readlink(here.dir / "current") == "releases/2.0.0")
        for part in here.parts("module"):
            kill(part)
        releases = here.env.root / "hello" / second / "releases"
        here.until(f"{second} downloading", lambda: any(
            n.startswith(".floy-pkg-") for n in os.listdir(releases)))
        here.env.service.cancel_wait_seconds = 60
        here.env.service.cancel_deployment("r")
        status = here.env.service.get_deployment_status("r")
        return here.record_matches_disk(), here.truth(status)


def release_without_record() -> tuple[bool, str]:
    """floy_release killed after it renamed the unpacked tree to releases/<v> and before its
    record .floy/releases/<v>.json was in place (soak seed 123234666, step 3): a release
    directory without its record stays behind. inotify sees the record's temp file being
    created (the rename is done by then); SIGKILL follows at once."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    with lab() as here:
        records = here.dir / ".floy" / "releases"
        fd = libc.inotify_init()
        libc.inotify_add_watch(fd, str(records).encode(), 0x100)  # IN_CREATE
        here.deploy("2.0.0", "r")
        here.until("the module", lambda: here.parts("module"))
        module = here.parts("module")[0]
        os.read(fd, 4096)  # the only file created there: the temp of 2.0.0.json
        os.kill(module.proc.pid, signal.SIGKILL)
        os.close(fd)
        recorded = (records / "2.0.0.json").exists()
        status = here.env.wait("r")
        left = (here.dir / "releases" / "2.0.0").is_dir() and not (
            records / "2.0.0.json").exists()
        return not left, (f"{here.truth(status)}\n    killed with the record "
                          f"{'in place' if recorded else 'not yet in place'}; left: "
                          f"releases/2.0.0 {'without' if left else 'with'} its record")


CASES = {
    "module-killed-after-switch": module_killed_after_switch,
    "playbook-killed-after-release": playbook_killed_after_release,
    "settle-probe-killed": settle_probe_killed,
    "module-killed-while-restart-hangs": module_killed_while_restart_hangs,
    "full-disk-during-switch-back": full_disk_during_switch_back,
    "full-disk-after-healthy-switch": full_disk_after_healthy_switch,
    "db-restart-loses-events": db_restart_loses_events,
    "pending-instance-released-unseen": pending_instance_released_unseen,
    "unknown-version-left-by-cancel": unknown_version_left_by_cancel,
    "release-without-record": release_without_record,
}


def main(argv: list[str]) -> int:
    names = argv or list(CASES)
    shown = 0
    for name in names:
        ok, report = CASES[name]()
        shown += not ok
        print(f"{'ok    ' if ok else 'DEFECT'} {name}\n    {report}", flush=True)
    return 1 if shown else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
