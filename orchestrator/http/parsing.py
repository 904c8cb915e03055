"""Reading a request: query parameters, a JSON body, a registration, each error naming
the field (the service validates the values themselves, as it does for the CLI)."""

from __future__ import annotations

import json
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request

from orchestrator.domain.validation import validate_instance_spec
from orchestrator.errors import ValidationError
from orchestrator.models import InstanceSpec

MAX_BODY_BYTES = 4 * 1024 * 1024  # a 10,000-instance deployment is about 300 KB


def int_query(request: Request, name: str, default: int) -> int:
    """Query parameter ``name`` as an integer (``default`` when absent); the range is the
    service's to check."""
    raw = request.query_params.get(name, "")
    if raw == "":
        return default
    if not raw.isascii() or not raw.lstrip("-").isdigit() or len(raw) > 12:
        raise ValidationError(name, f"must be an integer, not {raw!r}")
    return int(raw)


def bool_query(request: Request, name: str) -> bool:
    """Query parameter ``name`` as true/false (absent: false)."""
    raw = request.query_params.get(name, "").lower()
    if raw in ("", "false", "0"):
        return False
    if raw in ("true", "1"):
        return True
    raise ValidationError(name, f"must be true or false, not {raw!r}")


async def json_body(request: Request) -> Any:
    """The body parsed as JSON; 400 when it is not JSON, 413 when it is too large."""
    body = await request.body()
    if len(body) > MAX_BODY_BYTES:
        raise HTTPException(413, f"the body is over {MAX_BODY_BYTES} bytes")
    try:
        return json.loads(body)
    except ValueError as exc:  # also a body that is not UTF-8
        raise HTTPException(400, f"the body is not JSON: {exc}") from None


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
