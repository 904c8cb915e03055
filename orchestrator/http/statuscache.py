"""Rendered statuses, kept while their run does not change.

A 1,000-instance status costs about 20 ms of CPU to read, build and encode, and the GIL
lets one process do that about 50 times a second; dashboards, CI jobs and the event
streams all poll the same few running deployments. So the encoded body is kept per run
and answered again while the run's revision (:meth:`FloyDeployService.status_revision`,
one primary-key read) holds. After a change one request renders it again; the others for
the same run meanwhile get the rendering before it (never older than the render under
way), or wait for the first one. The cache holds rendered output only: what a status says
is still decided by the service.
"""

from __future__ import annotations

import asyncio
import json
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from orchestrator.service import FloyDeployService

T = TypeVar("T")
Run = Callable[..., Awaitable[Any]]


def encode(content: object) -> bytes:
    """JSON as Starlette's JSONResponse writes it."""
    return json.dumps(content, ensure_ascii=False, allow_nan=False, indent=None,
                      separators=(",", ":")).encode("utf-8")


class StatusCache:
    """Encoded DeployStatus bodies of the most recently read ``size`` runs."""

    def __init__(self, size: int = 256) -> None:
        self.size = size
        self._bodies: OrderedDict[str, tuple[tuple[object, ...], bytes, bool]] = OrderedDict()
        self._locks: dict[str, asyncio.Lock] = {}

    async def body(self, svc: FloyDeployService, run_id: str, run: Run
                   ) -> tuple[bytes, bool]:
        """The run's encoded status and whether it has ended; ``run`` runs a blocking call
        off the event loop. Errors (a bad ID, an unknown run) are the service's."""
        revision = await run(svc.status_revision, run_id)
        hit = self._fresh(run_id, revision)
        if hit is not None:
            return hit
        lock = self._locks.setdefault(run_id, asyncio.Lock())
        previous = self._bodies.get(run_id)
        if lock.locked() and previous is not None:
            # Another request is rendering this run's newer status: answer the rendering
            # before it (at most one render, a few tens of milliseconds, old) rather than
            # queue behind it; the writes this misses arrived within that render.
            return previous[1], previous[2]
        async with lock:
            hit = self._fresh(run_id, revision)
            if hit is not None:
                return hit

            def render() -> tuple[bytes, bool]:
                status = svc.get_deployment_status(run_id)
                ended = status.status.is_terminal and status.finished_at is not None
                return encode(status.to_dict()), ended

            # Kept under the revision read before the render: a write that lands during it
            # moves the revision, so the next request renders again.
            body, ended = await run(render)
            self._bodies[run_id] = (revision, body, ended)
            self._bodies.move_to_end(run_id)
            while len(self._bodies) > self.size:
                old, _ = self._bodies.popitem(last=False)
                self._locks.pop(old, None)
        return body, ended

    def _fresh(self, run_id: str, revision: tuple[object, ...]) -> tuple[bytes, bool] | None:
        entry = self._bodies.get(run_id)
        if entry is None or entry[0] != revision:
            return None
        self._bodies.move_to_end(run_id)
        return entry[1], entry[2]
