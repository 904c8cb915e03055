"""A worker's lease on its run, kept fresh from a background thread.

A lease is only worth what its holder does when it cannot renew it. A worker cut off from
the database (a restart, a partition) cannot tell whether its lease still stands, and once
it has expired a reaper on another machine may take the run over and probe its instances.
So a keeper that has not renewed for :data:`CUT_OFF_FRACTION` of the lease raises
``cut_off``: the worker stops its playbook before the lease can have expired, and acts again
only once the store answers (it hands the run back and resumes it, or finds it taken over).
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from orchestrator.store import Store

log = logging.getLogger(__name__)

#: Without a renewal for this part of the lease, the holder stops acting on its run.
CUT_OFF_FRACTION = 2 / 3


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
    ``lost`` is set when another owner took it, ``cut_off`` when no renewal succeeded for
    :data:`CUT_OFF_FRACTION` of the lease (the store unreachable)."""

    store: Store
    run_id: str
    owner: str
    seconds: float
    clock: Callable[[], float] = time.monotonic
    lost: threading.Event = field(default_factory=threading.Event)
    cut_off: threading.Event = field(default_factory=threading.Event)
    stop: threading.Event = field(default_factory=threading.Event)
    renewed: float = field(init=False)  # when a renewal last succeeded (``clock``)
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

    def __post_init__(self) -> None:
        self.renewed = self.clock()  # the lease was just taken

    def is_cut_off(self) -> bool:
        """Whether no renewal succeeded for :data:`CUT_OFF_FRACTION` of the lease (also
        while a renewal hangs on an unanswering server); once true it stays true."""
        if not self.cut_off.is_set():
            silent = self.clock() - self.renewed
            if silent >= self.seconds * CUT_OFF_FRACTION:
                log.error("no renewal of the lease on %s for %.1f s (lease %.1f s): "
                          "stopping before it can expire", self.run_id, silent, self.seconds)
                self.cut_off.set()
        return self.cut_off.is_set()

    def keep(self) -> None:
        """The renewal loop; a failed renewal is retried at the next beat."""
        while not self.stop.wait(self.seconds / 3):
            try:
                held = self.store.leases.renew(self.run_id, self.owner, self.seconds)
            except Exception as exc:
                log.warning("lease renewal failed for %s (%.1f s since the last): %s",
                            self.run_id, self.clock() - self.renewed, exc)
                self.is_cut_off()
                continue
            if not held:
                if not self.stop.is_set():
                    log.error("lease on %s was taken by another process", self.run_id)
                self.lost.set()
                return
            self.renewed = self.clock()
