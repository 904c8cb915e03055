"""A private PostgreSQL server for the tests: its own cluster in a temp dir, on loopback.

Debian's PostgreSQL binaries (installed by scripts/bootstrap.sh when running as root) run
as the ``postgres`` user, since initdb refuses root. One server per test session; each test
gets a fresh database.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from sample.packages import free_port


def _bindir() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return found[-1].parent if found else None


class Postgres:
    """initdb + pg_ctl start/stop of a throwaway cluster."""

    def __init__(self, listen: tuple[str, ...] = (), trust: str = "") -> None:
        """``listen``: addresses to listen on besides 127.0.0.1 (the root ends of simulated
        machines' veth pairs); ``trust``: a CIDR whose clients may connect (their far ends)."""
        self.listen = ("127.0.0.1", *listen)
        self.trust = trust
        bindir = _bindir()
        if bindir is None:
            raise RuntimeError("PostgreSQL is not installed (run scripts/bootstrap.sh as root)")
        self.bindir = bindir
        # its own directory right under /tmp: the postgres user cannot enter root's 0700
        # temp directories
        self.base = Path(tempfile.mkdtemp(prefix="floy-pg-"))
        self.data = self.base / "data"
        self.port = free_port()
        self.user = "postgres" if os.geteuid() == 0 else None

    def _run(self, *argv: str) -> subprocess.CompletedProcess[str]:
        cmd = [str(a) for a in argv]
        if self.user:
            cmd = ["runuser", "-u", self.user, "--", *cmd]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed: {proc.stderr.strip()}")
        return proc

    def start(self) -> Postgres:
        """Create the cluster and start the server (trust auth, loopback only, no fsync)."""
        if self.user:
            shutil.chown(self.base, self.user, self.user)
        self._run(self.bindir / "initdb", "-D", self.data, "-A", "trust", "-U", "floy",
                  "--no-sync", "-E", "UTF8")
        if self.trust:
            with (self.data / "pg_hba.conf").open("a") as hba:
                hba.write(f"host all all {self.trust} trust\n")
        self._run(self.bindir / "pg_ctl", "-D", self.data, "-o", self.options(), "-l",
                  self.base / "server.log", "-w", "-t", "60", "start")
        return self

    def options(self) -> str:
        """The server options it runs with."""
        return (f"-p {self.port} -k {self.base} -c listen_addresses={','.join(self.listen)} "
                "-c fsync=off -c synchronous_commit=off -c max_connections=200")

    def restart(self, mode: str, down_seconds: float) -> None:
        """Stop the server (``fast``: clean; ``immediate``: a crash), wait, start it again
        in place (same port, same data)."""
        pg_ctl, data = str(self.bindir / "pg_ctl"), str(self.data)
        try:
            self._run(pg_ctl, "-D", data, "-m", mode, "-w", "-t", "60", "stop")
        finally:
            time.sleep(down_seconds)
            self._run(pg_ctl, "-D", data, "-o", self.options(), "-l",
                      str(self.base / "server.log"), "-w", "-t", "60", "start")

    def stop(self) -> None:
        """Stop the server (fast shutdown) and remove the cluster."""
        try:
            self._run(self.bindir / "pg_ctl", "-D", self.data, "-m", "fast", "-w", "stop")
        finally:
            shutil.rmtree(self.base, ignore_errors=True)

    def new_database(self) -> str:
        """Create a fresh database; returns its SQLAlchemy URL."""
        import psycopg

        name = f"floy_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=floy dbname=postgres",
                             autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql+psycopg://floy@127.0.0.1:{self.port}/{name}"
