"""A worker's lease on its run, kept fresh from a background thread."""

from __future__ import annotations

import logging
import os
import threading
import uuid
from dataclasses import dataclass, field

from orchestrator.store import Store

log = logging.getLogger(__name__)


def owner_name(node: str, role: str = "") -> str:
    """A lease owner name: ``node:pid:random[:role]`` (the reaper reads the node)."""
    name = f"{node}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    return f"{name}:{role}" if role else name


def owner_node(owner: str) -> str:
    """The machine an owner name says it runs on."""
    return owner.split(":", 1)[0]


@dataclass
class LeaseKeeper:
    """Renews ``owner``'s lease on ``run_id`` every third of its length until stopped;
    ``lost`` is set when another owner took it."""

    store: Store
    run_id: str
    owner: str
    seconds: float
    lost: threading.Event = field(default_factory=threading.Event)
    stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        """Start renewing in a daemon thread."""
        self._thread = threading.Thread(target=self.keep, name=f"lease-{self.run_id}",
                                        daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop renewing (the run's end releases the lease in the store)."""
        self.stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def keep(self) -> None:
        """The renewal loop; a failed renewal is retried at the next beat."""
        while not self.stop.wait(self.seconds / 3):
            try:
                if not self.store.leases.renew(self.run_id, self.owner, self.seconds):
                    log.error("lease on %s was taken by another worker", self.run_id)
                    self.lost.set()
                    return
            except Exception:
                log.exception("lease renewal failed for %s", self.run_id)
