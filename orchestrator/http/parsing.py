"""Reading a request: query parameters, a JSON body, a registration, each error naming
the field (the service validates the values themselves, as it does for the CLI)."""

from __future__ import annotations

import json
import re
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request

from orchestrator.domain.validation import validate_instance_spec
from orchestrator.errors import ValidationError
from orchestrator.models import InstanceSpec

MAX_BODY_BYTES = 4 * 1024 * 1024  # a 10,000-instance deployment is about 300 KB
_INTEGER = re.compile(r"-?[0-9]{1,12}")


def int_query(request: Request, name: str, default: int) -> int:
    """Query parameter ``name`` as a decimal integer (``default`` when absent; present but
    empty is refused); the range is the service's to check."""
    if name not in request.query_params:
        return default
    raw = request.query_params[name]
    if not _INTEGER.fullmatch(raw):
        raise ValidationError(name, f"must be an integer, not {raw[:40]!r}")
    return int(raw)


def bool_query(request: Request, name: str) -> bool:
    """Query parameter ``name`` as ``true`` or ``false`` (absent: false)."""
    raw = request.query_params.get(name, "false")
    if raw not in ("true", "false"):
        raise ValidationError(name, f"must be true or false, not {raw[:40]!r}")
    return raw == "true"


async def json_body(request: Request) -> dict[str, Any]:
    """The body parsed as a JSON object; 400 when it is not JSON or not an object, 413 when
    it is too large."""
    body = await request.body()
    if len(body) > MAX_BODY_BYTES:
        raise HTTPException(413, f"the body is over {MAX_BODY_BYTES} bytes")
    try:
        data = json.loads(body)
    except ValueError as exc:  # also a body that is not UTF-8
        raise HTTPException(400, f"the body is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise HTTPException(400, "the body must be a JSON object")
    return data


async def optional_body(request: Request, keys: frozenset[str]) -> dict[str, Any]:
    """An optional JSON object body with no key outside ``keys`` ({} when empty)."""
    if not await request.body():
        return {}
    return json_object(await json_body(request), "body", keys)


def json_object(data: Any, what: str, keys: frozenset[str]) -> dict[str, Any]:
    """``data`` as an object with no key outside ``keys``, else a ValidationError."""
    if not isinstance(data, dict):
        raise ValidationError(what, "must be a JSON object")
    unknown = sorted(set(data) - keys)
    if unknown:
        raise ValidationError(unknown[0], "unknown field")
    return data


def registration(data: Any) -> tuple[list[InstanceSpec], bool]:
    """The instances (and ``replace``) of a registration body, checked as the service
    checks them, each error naming ``instances[i].field``."""
    body = json_object(data, "body", frozenset({"instances", "replace"}))
    entries = body.get("instances")
    if not isinstance(entries, list) or not entries:
        raise ValidationError("instances", "must be a non-empty array of instances")
    replace = body.get("replace", False)
    if not isinstance(replace, bool):
        raise ValidationError("replace", "must be true or false")
    specs = []
    for index, entry in enumerate(entries):
        try:  # the same checks the service makes, named by their place in the array
            specs.append(validate_instance_spec(InstanceSpec.from_dict(entry)))
        except ValidationError as exc:
            inner = "" if exc.field == "InstanceSpec" else f".{exc.field}"
            raise ValidationError(f"instances[{index}]{inner}", exc.reason) from None
    return specs, replace
