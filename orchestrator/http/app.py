"""The HTTP API: the spec's seven methods and floy's extensions over the one service.

Each endpoint authenticates (:mod:`.auth`), parses the path, query and JSON body into the
same params values the CLI builds, calls one method of
:class:`~orchestrator.service.FloyDeployService` in a worker thread (the service blocks on
its database), and renders the result's ``to_dict()``. No behaviour lives here: a refused
request reaches the service's validation exactly as a CLI call does, so nothing is stored
or run for it. Errors become JSON with a stable ``error`` code (:mod:`.errors`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar

import yaml
from sse_starlette.sse import EventSourceResponse
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from orchestrator.errors import NotFoundError, ValidationError
from orchestrator.http.auth import Authenticator
from orchestrator.http.errors import HANDLERS
from orchestrator.http.parsing import (
    bool_query,
    int_query,
    json_body,
    json_object,
    optional_body,
    registration,
)
from orchestrator.http.statuscache import StatusCache
from orchestrator.models import (
    BatchRollbackParams,
    DeployParams,
    InstanceQueryParams,
    InstanceRollbackParams,
)
from orchestrator.service import FloyDeployService
from orchestrator.service.tokens import Role

log = logging.getLogger("floy.http")
HERE = Path(__file__).parent
STATIC = HERE / "static"
OPENAPI = HERE / "openapi.yaml"
T = TypeVar("T")


@lru_cache(maxsize=1)
def openapi_document() -> dict[str, Any]:
    """The OpenAPI document shipped with the package (``openapi.yaml``)."""
    loaded = yaml.safe_load(OPENAPI.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


class Api:
    """The endpoints, over one service and one authenticator."""

    def __init__(self, service: FloyDeployService, auth: Authenticator,
                 poll_seconds: float = 0.25, keepalive_seconds: float = 15.0) -> None:
        self.service = service
        self.auth = auth
        self.poll_seconds = poll_seconds
        self.keepalive_seconds = keepalive_seconds
        self.statuses = StatusCache()

    def _as_caller(self, request: Request, needs: Role, instance: str = ""
                   ) -> FloyDeployService:
        client = request.client.host if request.client else "unknown"
        token = self.auth.check(request.headers.get("authorization"), client, needs,
                                f"{request.method} {request.url.path}", instance)
        return self.service.acting_as(f"token:{token.name}")

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await run_in_threadpool(fn, *args)

    # -- DeployExecutor ------------------------------------------------------------------
    async def deploy(self, request: Request) -> Response:
        svc = self._as_caller(request, Role.DEPLOYER)
        params = DeployParams.from_dict(await json_body(request))
        result = await self._run(svc.execute_deployment, params)
        return JSONResponse(result.to_dict(), status_code=202)

    async def status(self, request: Request) -> Response:
        svc = self._as_caller(request, Role.READ)
        body, _ = await self.statuses.body(svc, request.path_params["deploy_id"], self._run)
        return Response(body, media_type="application/json")

    async def cancel(self, request: Request) -> Response:
        svc = self._as_caller(request, Role.DEPLOYER)
        result = await self._run(svc.cancel_deployment, request.path_params["deploy_id"])
        return JSONResponse(result.to_dict(),
                            status_code=200 if result.cancelled_at is not None else 202)

    async def promote(self, request: Request) -> Response:
        svc = self._as_caller(request, Role.DEPLOYER)
        data = await optional_body(request, frozenset({"full"}))
        full = data.get("full", False)
        if not isinstance(full, bool):
            raise ValidationError("full", "must be true or false")
        result = await self._run(svc.promote_deployment, request.path_params["deploy_id"],
                                 full)
        return JSONResponse(result.to_dict())

    async def abort(self, request: Request) -> Response:
        svc = self._as_caller(request, Role.DEPLOYER)
        data = await optional_body(request, frozenset({"rollback"}))
        rollback = data.get("rollback", False)
        if not isinstance(rollback, bool):
            raise ValidationError("rollback", "must be true or false")
        result = await self._run(svc.abort_deployment, request.path_params["deploy_id"],
                                 rollback)
        return JSONResponse(result.to_dict(),
                            status_code=200 if result.status.is_terminal else 202)

    async def events(self, request: Request) -> Response:
        svc = self._as_caller(request, Role.READ)
        run_id = request.path_params["deploy_id"]
        first = await self.statuses.body(svc, run_id, self._run)  # 404 before streaming
        return EventSourceResponse(self._stream(svc, run_id, first),
                                   ping=self.keepalive_seconds,
                                   headers={"Cache-Control": "no-store"})

    async def _stream(self, svc: FloyDeployService, run_id: str, first: tuple[bytes, bool]
                      ) -> AsyncIterator[dict[str, str]]:
        """The run's status at once and on every change, then ``end`` once it has ended.
        The run's revision is read every ``poll_seconds`` (a read never acts)."""
        body, ended = first
        last = b""
        while True:
            if ended:
                yield {"event": "end", "data": body.decode()}
                return
            if body != last:
                yield {"event": "status", "data": body.decode()}
                last = body
            await asyncio.sleep(self.poll_seconds)
            body, ended = await self.statuses.body(svc, run_id, self._run)

    async def runs(self, request: Request) -> Response:
        svc = self._as_caller(request, Role.READ)
        service = request.query_params.get("service", "")
        active = bool_query(request, "active")
        limit = int_query(request, "limit", 50)
        found = await self._run(lambda: svc.runs(service, active=active, limit=limit))
        return JSONResponse({"runs": [r.to_dict() for r in found]})

    # -- VersionManager ------------------------------------------------------------------
    async def versions(self, request: Request) -> Response:
        svc = self._as_caller(request, Role.READ)
        result = await self._run(svc.get_service_instance_versions,
                                 request.path_params["service"])
        return JSONResponse(result.to_dict())

    async def instances(self, request: Request) -> Response:
        svc = self._as_caller(request, Role.READ)
        params = InstanceQueryParams(
            service_name=request.path_params["service"],
            version=request.query_params.get("version", ""),
            limit=int_query(request, "limit", 100),
            offset=int_query(request, "offset", 0),
        )
        result = await self._run(svc.get_service_instances, params)
        return JSONResponse(result.to_dict())

    async def services(self, request: Request) -> Response:
        svc = self._as_caller(request, Role.READ)
        found = await self._run(svc.services)
        return JSONResponse({"services": [s.to_dict() for s in found]})

    async def history(self, request: Request) -> Response:
        svc = self._as_caller(request, Role.READ)
        service = request.path_params["service"]
        limit = int_query(request, "limit", 50)

        def read() -> dict[str, Any]:
            runs = svc.runs(service, limit=limit)
            actions = svc.actions(service, limit)
            if not runs and not actions and not svc.instance_ids(service):
                raise NotFoundError("service", service)
            return {"service": service, "runs": [r.to_dict() for r in runs],
                    "actions": [a.to_dict() for a in actions]}

        return JSONResponse(await self._run(read))

    # -- RollbackManager -----------------------------------------------------------------
    async def rollback_instance(self, request: Request) -> Response:
        svc = self._as_caller(request, Role.DEPLOYER)
        params = InstanceRollbackParams.from_dict(await json_body(request))
        result = await self._run(svc.rollback_instance, params)
        return JSONResponse(result.to_dict(), status_code=202)

    async def rollback_batch(self, request: Request) -> Response:
        svc = self._as_caller(request, Role.DEPLOYER)
        params = BatchRollbackParams.from_dict(await json_body(request))
        result = await self._run(svc.rollback_batch, params)
        return JSONResponse(result.to_dict(), status_code=202)

    # -- instances: registration and heartbeats ------------------------------------------
    async def register(self, request: Request) -> Response:
        svc = self._as_caller(request, Role.DEPLOYER)
        specs, replace = registration(await json_body(request))
        stored = await self._run(lambda: svc.register_instances(specs, replace=replace))
        return JSONResponse({"instances": [s.to_dict() for s in stored]}, status_code=201)

    async def heartbeat(self, request: Request) -> Response:
        instance_id = request.path_params["instance_id"]
        svc = self._as_caller(request, Role.HEARTBEAT, instance=instance_id)
        body = json_object(await json_body(request), "body", frozenset({"version"}))
        version = body.get("version")
        if not isinstance(version, str):
            raise ValidationError("version", "required, a string")
        result = await self._run(svc.heartbeat, instance_id, version)
        return JSONResponse(result.to_dict())

    # -- open to all -----------------------------------------------------------------------
    async def openapi(self, _request: Request) -> Response:
        if not OPENAPI.exists():
            raise NotFoundError("document", "openapi.json")
        return JSONResponse(await self._run(openapi_document))

    async def healthz(self, _request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def dashboard(self, _request: Request) -> Response:
        page = STATIC / "index.html"
        if not page.exists():
            raise NotFoundError("page", "/")
        return FileResponse(page, headers={"Cache-Control": "no-store"})


def create_app(service: FloyDeployService, auth: Authenticator,
               poll_seconds: float = 0.25) -> Starlette:
    """The ASGI application of ``floy serve``."""
    api = Api(service, auth, poll_seconds)
    routes = [
        Route("/v1/deployments", api.deploy, methods=["POST"]),
        Route("/v1/deployments", api.runs, methods=["GET"]),
        Route("/v1/deployments/{deploy_id}", api.status, methods=["GET"]),
        Route("/v1/deployments/{deploy_id}/cancel", api.cancel, methods=["POST"]),
        Route("/v1/deployments/{deploy_id}/events", api.events, methods=["GET"]),
        Route("/v1/deployments/{deploy_id}/promote", api.promote, methods=["POST"]),
        Route("/v1/deployments/{deploy_id}/abort", api.abort, methods=["POST"]),
        Route("/v1/services", api.services, methods=["GET"]),
        Route("/v1/services/{service}/versions", api.versions, methods=["GET"]),
        Route("/v1/services/{service}/instances", api.instances, methods=["GET"]),
        Route("/v1/services/{service}/history", api.history, methods=["GET"]),
        Route("/v1/rollbacks/instance", api.rollback_instance, methods=["POST"]),
        Route("/v1/rollbacks/batch", api.rollback_batch, methods=["POST"]),
        Route("/v1/instances", api.register, methods=["POST"]),
        Route("/v1/instances/{instance_id}/heartbeat", api.heartbeat, methods=["POST"]),
        Route("/openapi.json", api.openapi, methods=["GET"]),
        Route("/healthz", api.healthz, methods=["GET"]),
        Route("/", api.dashboard, methods=["GET"]),
        Mount("/static", app=StaticFiles(directory=STATIC, check_dir=False), name="static"),
    ]
    return Starlette(routes=routes, exception_handlers=HANDLERS)
