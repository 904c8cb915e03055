"""How errors answer over HTTP: one JSON shape, a stable ``error`` code, a status per family.

A :class:`~orchestrator.errors.FloyError` carries its own ``to_dict()`` (with ``field`` for
a validation error); a refused authentication, an unknown path or method, and a bug each
get the same shape. A bug's traceback goes to the server log, never to the caller.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from orchestrator.errors import (
    ConfigError,
    ConflictError,
    ExecutionError,
    FloyError,
    NotFoundError,
    ValidationError,
)
from orchestrator.http.auth import AuthRefused

log = logging.getLogger("floy.http")

#: HTTP status of each error family (the most specific class first).
ERROR_STATUS: tuple[tuple[type[FloyError], int], ...] = (
    (ValidationError, 422),
    (NotFoundError, 404),
    (ConflictError, 409),
    (ConfigError, 503),
    (ExecutionError, 503),
)
_HTTP_CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed",
               413: "too_large", 415: "unsupported_media_type"}


def error_response(status: int, body: dict[str, Any], headers: dict[str, str] | None = None
                   ) -> JSONResponse:
    """The one shape of every error answer."""
    return JSONResponse(body, status_code=status, headers=headers)


def _floy_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, FloyError)
    status = next((code for cls, code in ERROR_STATUS if isinstance(exc, cls)), 500)
    return error_response(status, exc.to_dict())


def _refused(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, AuthRefused)
    headers = {"WWW-Authenticate": 'Bearer realm="floy"'} if exc.status == 401 else {}
    if exc.retry_after:
        headers["Retry-After"] = str(exc.retry_after)
    return error_response(exc.status, {"error": exc.code, "message": exc.message}, headers)


def _http_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    return error_response(exc.status_code, {"error": code, "message": str(exc.detail)},
                          dict(exc.headers or {}))


def _internal(request: Request, exc: Exception) -> Response:
    log.error("internal error in %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(500, {"error": "internal",
                                "message": "internal error; the server log has the traceback"})


#: The exception handlers of the application, most specific first.
HANDLERS: dict[Any, Callable[[Request, Exception], Response]] = {
    FloyError: _floy_error,
    AuthRefused: _refused,
    HTTPException: _http_error,
    Exception: _internal,
}
