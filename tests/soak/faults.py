"""The fault injector: SIGKILL of a random part, a full disk, a database server restart.

Every choice comes from the soak's seeded ``random.Random``; what a fault hits depends on
timing too (real processes), so a seed replays the same sequence of choices, not the same
interleaving.
"""

from __future__ import annotations

import contextlib
import errno
import os
import random
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from tests.integration.pg import Postgres
from tests.soak.procs import KILLABLE, Part, installation_parts, kill

# How long a kill waits for its kind of target to exist (modules live a second or two).
TARGET_WAIT_SECONDS = 2.5
# How long an armed disk fill waits for a release on the small disk to reach its phase.
FILL_WAIT_SECONDS = 20.0
WEIGHTS = {"worker": 3.0, "ansible_playbook": 2.0, "fork": 2.0, "module": 3.0,
           "restart_command": 1.0, "app": 1.5, "disk_full": 1.0, "db_restart": 1.5}
FILL_NAME = "chaos-fill"


class SmallDisk:
    """A 1 MiB tmpfs mounted as one instance's directory, so that a fill makes the release
    itself meet ENOSPC on the host side (download, unpack, records, state.json)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.mounted = False
        self.filled = False

    def mount(self) -> None:
        """Mount the tmpfs (root only); raises if that is impossible here."""
        self.path.mkdir(parents=True, exist_ok=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0755", "tmpfs",
                        str(self.path)], check=True, capture_output=True, timeout=20)
        self.mounted = True

    def fill(self) -> int:
        """Write a file until the filesystem is full; returns the bytes written."""
        written = 0
        fd = os.open(self.path / FILL_NAME, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            for size in (65536, 4096, 1):
                chunk = b"\0" * size
                while True:
                    try:
                        written += os.write(fd, chunk)
                    except OSError as exc:
                        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
                            raise
                        break
        finally:
            os.close(fd)
        self.filled = True
        return written

    def free(self) -> None:
        """Remove the fill."""
        (self.path / FILL_NAME).unlink(missing_ok=True)
        self.filled = False

    def unmount(self) -> None:
        """Unmount, lazily if something still holds it (bounded)."""
        if not self.mounted:
            return
        done = subprocess.run(["umount", str(self.path)], capture_output=True, timeout=20,
                              check=False)
        if done.returncode != 0:
            subprocess.run(["umount", "-l", str(self.path)], capture_output=True, timeout=20,
                           check=False)
        self.mounted = False


#: The tests' private cluster, which can also be stopped and started again in place.
SoakPostgres = Postgres


class Faults:
    """Picks and injects faults; counts what was injected and what found no target."""

    def __init__(self, rng: random.Random, home: Path, root: Path, run_prefix: str,
                 log: Callable[[str], None], disk: SmallDisk | None = None,
                 db: SoakPostgres | None = None) -> None:
        self.rng = rng
        self.home = home
        self.root = root
        self.run_prefix = run_prefix
        self.log = log
        self.disk = disk
        self.db = db
        self.injected: Counter[str] = Counter()
        self.missed: Counter[str] = Counter()
        self.free_disk_at_step: int | None = None
        self._watcher: threading.Thread | None = None
        self._stop = threading.Event()
        self.db_outages: list[tuple[float, float]] = []  # (stopped, started again), monotonic

    def kinds(self) -> list[str]:
        """The fault kinds this installation supports."""
        kinds = list(KILLABLE)
        if self.disk is not None:
            kinds.append("disk_full")
        if self.db is not None:
            kinds.append("db_restart")
        return kinds

    def pick(self) -> str:
        """One fault kind, by weight."""
        kinds = self.kinds()
        return self.rng.choices(kinds, weights=[WEIGHTS[k] for k in kinds])[0]

    def inject(self, kind: str, step: int) -> None:
        """Inject one fault of ``kind`` (bounded: at most a few seconds)."""
        if kind == "disk_full":
            self._fill(step)
        elif kind == "db_restart":
            self._restart_db()
        else:
            self._kill(kind)

    def tick(self, step: int) -> None:
        """Once per step: free the disk when its time has come."""
        if self.disk is not None and self.free_disk_at_step is not None \
                and step >= self.free_disk_at_step:
            self.stop()
            self.free_disk_at_step = None
            self.log(f"fault disk_full: freed {self.disk.path}")

    def db_recently_down(self, within: float) -> bool:
        """Whether the database was down now or up again less than ``within`` s ago."""
        now = time.monotonic()
        return any(stopped <= now and now - started < within
                   for stopped, started in self.db_outages)

    def _kill(self, kind: str) -> None:
        time.sleep(self.rng.uniform(0.0, 1.0))  # hit a different phase each time
        deadline = time.monotonic() + TARGET_WAIT_SECONDS
        while True:
            parts = installation_parts(self.home, self.root, self.run_prefix)
            targets = [p for p in parts if p.kind == kind]
            if targets or time.monotonic() >= deadline:
                break
            time.sleep(0.1)
        if not targets:
            # none of that kind lives now: kill another part that does (by weight)
            self.missed[kind] += 1
            alive = sorted({p.kind for p in parts if p.kind in KILLABLE})
            if not alive:
                self.log(f"fault {kind}: no target, nor any other part to kill")
                return
            kind = self.rng.choices(alive, weights=[WEIGHTS[k] for k in alive])[0]
            targets = [p for p in parts if p.kind == kind]
            self.log(f"fault: no target for the kind chosen; {kind} instead")
        target: Part = self.rng.choice(targets)
        if kill(target):
            self.injected[kind] += 1
            self.log(f"fault {kind}: SIGKILL pid {target.proc.pid} of {target.owner} "
                     f"({target.proc.command})")
        else:
            self.missed[kind] += 1
            self.log(f"fault {kind}: pid {target.proc.pid} was gone")

    def _fill(self, step: int) -> None:
        """Fill the small disk now, or arm a watcher that fills it when a release on it is
        mid-download (a temp in releases/) or past its switch (its restart command runs):
        each phase meets ENOSPC differently. An armed fill not reached within
        FILL_WAIT_SECONDS fills anyway; the disk is freed a few steps later."""
        assert self.disk is not None
        if self.disk.filled or (self._watcher is not None and self._watcher.is_alive()):
            self.missed["disk_full"] += 1
            return
        moment = self.rng.choice(["now", "mid-download", "after the switch"])
        self.free_disk_at_step = step + self.rng.randint(3, 8)
        if moment == "now":
            self._fill_at(moment, time.monotonic(), 0)
            return
        self._stop.clear()
        self._watcher = threading.Thread(
            target=self._fill_at, args=(moment, time.monotonic() + FILL_WAIT_SECONDS,
                                        self._restart_log_size()),
            name="soak-disk", daemon=True)
        self._watcher.start()
        self.log(f"fault disk_full: armed, fills {self.disk.path} {moment}")

    def _fill_at(self, moment: str, deadline: float, log_size: int) -> None:
        assert self.disk is not None
        while not self._stop.is_set() and time.monotonic() < deadline \
                and not self._at(moment, log_size):
            time.sleep(0.02)
        if self._stop.is_set():
            self.missed["disk_full"] += 1  # freed before a release reached that phase
            return
        reached = moment if self._at(moment, log_size) else f"({moment} not reached: now)"
        written = self.disk.fill()
        self.injected["disk_full"] += 1
        self.log(f"fault disk_full: {self.disk.path} filled ({written} bytes) {reached}, "
                 f"until step {self.free_disk_at_step}")

    def stop(self) -> None:
        """Disarm a pending fill and free the disk (bounded)."""
        self._stop.set()
        if self._watcher is not None:
            self._watcher.join(timeout=5)
        if self.disk is not None and self.disk.filled:
            self.disk.free()

    def _at(self, moment: str, log_size: int) -> bool:
        """Whether a release on the small disk is in that phase (cheap: polled often)."""
        assert self.disk is not None
        if moment == "now":
            return True
        if moment == "mid-download":
            with contextlib.suppress(OSError):
                return any(n.startswith(".floy-pkg-")
                           for n in os.listdir(self.disk.path / "releases"))
            return False
        # floy_release appends a line to shared/floy-restart.log as it starts a restart
        return self._restart_log_size() > log_size

    def _restart_log_size(self) -> int:
        assert self.disk is not None
        try:
            return (self.disk.path / "shared" / "floy-restart.log").stat().st_size
        except OSError:
            return 0

    def _restart_db(self) -> None:
        assert self.db is not None
        mode = self.rng.choice(["fast", "immediate"])
        down = self.rng.uniform(0.5, 3.0)
        stopped = time.monotonic()
        self.log(f"fault db_restart: stopping PostgreSQL ({mode}) for {down:.1f} s")
        try:
            self.db.restart(mode, down)
        finally:
            self.db_outages.append((stopped, time.monotonic()))
        self.injected["db_restart"] += 1
        self.log("fault db_restart: PostgreSQL is up again")
