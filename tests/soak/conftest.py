"""Fixtures of the soak tier: its time budget and seed, and a restartable PostgreSQL."""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.soak.faults import SoakPostgres

DEFAULT_SECONDS = 180.0


@dataclass(frozen=True)
class Budget:
    """The whole tier's time budget (FLOY_SOAK_SECONDS), shared by the selected soaks."""

    started: float
    seconds: float
    seed: int
    names: tuple[str, ...]  # node IDs of the soak tests selected, in run order

    def deadline(self, node_id: str) -> float:
        """When this soak must be done (time.monotonic()): an equal share each, in order,
        so a soak that finishes early leaves its time to the next."""
        index = self.names.index(node_id) if node_id in self.names else len(self.names) - 1
        return self.started + self.seconds * (index + 1) / max(1, len(self.names))


@pytest.fixture(scope="module")
def soak_budget(request: pytest.FixtureRequest) -> Budget:
    seconds = float(os.environ.get("FLOY_SOAK_SECONDS") or DEFAULT_SECONDS)
    seed_text = os.environ.get("FLOY_SOAK_SEED", "")
    seed = int(seed_text) if seed_text else secrets.randbelow(2**31)
    names = tuple(item.nodeid for item in request.session.items
                  if getattr(item, "originalname", "") == "test_chaos_soak")
    return Budget(time.monotonic(), seconds, seed, names)


@pytest.fixture(scope="module")
def soak_postgres() -> Iterator[SoakPostgres]:
    """A private PostgreSQL cluster the soak may stop and start; removed at the end."""
    try:
        server = SoakPostgres()
        server.start()
    except RuntimeError as exc:
        if "not installed" in str(exc) and os.geteuid() != 0:
            pytest.skip(str(exc))
        raise
    try:
        yield server
    finally:
        pid_file = server.data / "postmaster.pid"
        pid = pid_file.read_text().split()[0] if pid_file.exists() else ""
        try:
            server.stop()
        except RuntimeError:  # pg_ctl failed (say, mid-restart): make sure it is gone
            if pid.isdigit():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(pid), signal.SIGKILL)
