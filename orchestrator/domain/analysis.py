"""The analysis gate of a canary deployment: is the new version healthy enough to go on?

Between two batches floy asks a metrics endpoint (Prometheus, or anything answering JSON
over HTTPS) ``count`` times, ``interval`` seconds apart, and judges each answer: the number
a JMESPath ``query`` finds in it must lie within ``min``/``max``, or, without a query, the
endpoint must merely answer 2xx in time. More than ``failure_limit`` failed measurements
abort the deployment; ``count`` measurements within the limit let it continue.

The model is Argo Rollouts' AnalysisTemplate metric (``count``, ``interval``,
``failureLimit``, ``successCondition``; https://argo-rollouts.readthedocs.io/en/stable/
features/analysis/). floy differs on purpose:

- the condition is a JMESPath query (the language of Ansible's ``json_query``) plus numeric
  bounds, not an expr-lang expression: nothing user-written is ever evaluated as code;
- no ``inconclusive`` state and no ``consecutiveErrorLimit``: an error is a failed
  measurement, counted against ``failure_limit`` like a bad value;
- failing fast: the gate fails as soon as the failures exceed the limit, without taking
  the remaining measurements;
- the URL obeys the package URL rules (HTTPS, verified, the allowed hosts; DESIGN.md
  section 5), since it is fetched from the controller.

Everything here is pure: :func:`validate_analysis` checks a request, :func:`evaluate` judges
one answer, :func:`judge` a series of measurements. ``orchestrator.engine.analysis`` does
the fetching and the waiting.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import jmespath  # type: ignore[import-untyped]
import jmespath.functions  # type: ignore[import-untyped]

from orchestrator.domain.validation import (
    reject_control_characters,
    reject_template_syntax,
    validate_package_url,
)
from orchestrator.errors import ValidationError
from orchestrator.timefmt import format_time, parse_time

MAX_QUERY_LENGTH = 1024
#: Inclusive bounds of the integer fields.
LIMITS = {"count": (1, 100), "interval": (0, 3600), "timeout": (1, 60)}
FIELDS = ("url", "query", "min", "max", "count", "interval", "timeout", "failure_limit")
#: How many values a verdict lists before it summarises the rest.
_LISTED_VALUES = 10
# A number as text: what Prometheus writes ("0.012", "1e-05", "NaN", "+Inf").
_NUMERIC = re.compile(r"[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|inf(?:inity)?|nan)",
                      re.IGNORECASE)


@dataclass(frozen=True)
class Analysis:
    """One analysis gate: what to ask, what a good answer is, how often and how patiently."""

    url: str
    query: str = ""
    min: float | None = None
    max: float | None = None
    count: int = 3
    interval: int = 10
    timeout: int = 5
    failure_limit: int = 0

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of this analysis: every key, ``min``/``max`` null when unset."""
        return {name: getattr(self, name) for name in FIELDS}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Analysis:
        """The analysis :meth:`to_dict` wrote (missing keys take their defaults)."""
        return cls(
            url=str(data["url"]),
            query=str(data.get("query", "")),
            min=_optional_float(data.get("min")),
            max=_optional_float(data.get("max")),
            count=int(data.get("count", 3)),
            interval=int(data.get("interval", 10)),
            timeout=int(data.get("timeout", 5)),
            failure_limit=int(data.get("failure_limit", 0)),
        )


@dataclass(frozen=True)
class Measurement:
    """One answer of the endpoint, judged: ``value`` is what the query found (kept even when
    it broke a bound), ``error`` why the measurement failed (empty when ``ok``)."""

    at: datetime
    ok: bool
    value: float | None
    http_status: int | None
    seconds: float
    error: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of this measurement (``at`` in RFC 3339 with ``Z``)."""
        return {"at": format_time(self.at), "ok": self.ok, "value": self.value,
                "http_status": self.http_status, "seconds": self.seconds, "error": self.error}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Measurement:
        """The measurement :meth:`to_dict` wrote."""
        status = data.get("http_status")
        return cls(at=parse_time(data["at"]), ok=bool(data["ok"]),
                   value=_optional_float(data.get("value")),
                   http_status=None if status is None else int(status),
                   seconds=float(data["seconds"]), error=str(data.get("error", "")))


@dataclass(frozen=True)
class Verdict:
    """The gate's decision: go on (``passed``) or abort, and why."""

    passed: bool
    message: str


def validate_analysis(
    value: object, allowed_hosts: frozenset[str] = frozenset()
) -> Analysis | None:
    """Check an ``analysis`` request object; None (no gate) for ``None`` or ``{}``.

    Raises :class:`ValidationError` naming the field (``analysis.url``, ``analysis.max``...)
    for the first problem found: an unknown key, a URL the package URL rules refuse, a query
    that is not JMESPath (or holds template syntax), bounds without a query or a query
    without bounds, ``min`` above ``max``, an integer out of its range.
    """
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ValidationError("analysis", f"must be an object, not {type(value).__name__}")
    if not value:
        return None
    for key in value:
        if key not in FIELDS:
            raise ValidationError(f"analysis.{key}" if isinstance(key, str) else "analysis",
                                  f"unknown key {key!r} (known: {', '.join(FIELDS)})")
    if "url" not in value:
        raise ValidationError("analysis.url", "is required")
    url = validate_package_url("analysis.url", value["url"], allowed_hosts)
    query = _query(value.get("query", ""))
    low = _bound("analysis.min", value.get("min"), query)
    high = _bound("analysis.max", value.get("max"), query)
    if query and low is None and high is None:
        raise ValidationError("analysis.query", "a query needs a bound: give min, max or both")
    if low is not None and high is not None and low > high:
        raise ValidationError("analysis.max", f"max {_num(high)} is below min {_num(low)}")
    count = _int("analysis.count", value.get("count", 3), *LIMITS["count"])
    return Analysis(
        url=url, query=query, min=low, max=high, count=count,
        interval=_int("analysis.interval", value.get("interval", 10), *LIMITS["interval"]),
        timeout=_int("analysis.timeout", value.get("timeout", 5), *LIMITS["timeout"]),
        failure_limit=_int("analysis.failure_limit", value.get("failure_limit", 0),
                           0, count - 1),
    )


def _query(value: object) -> str:
    field = "analysis.query"
    if not isinstance(value, str):
        raise ValidationError(field, f"must be a string, not {type(value).__name__}")
    if len(value) > MAX_QUERY_LENGTH:
        raise ValidationError(field, f"too long ({len(value)} characters, "
                                     f"at most {MAX_QUERY_LENGTH})")
    reject_control_characters(field, value)
    reject_template_syntax(field, value)
    if not value:
        return value
    try:
        parsed = jmespath.compile(value).parsed
    except jmespath.exceptions.JMESPathError as exc:
        raise ValidationError(field, f"not a JMESPath expression: {_one_line(exc)}") from None
    except RecursionError:
        raise ValidationError(field, "not a JMESPath expression: nested too deeply") from None
    _check_functions(parsed)
    return value


def _check_functions(parsed: dict[str, Any]) -> None:
    """Refuse unknown functions and wrong argument counts, which jmespath only finds when
    it evaluates them: a typo would fail every measurement and abort the deployment."""
    known = jmespath.functions.Functions.FUNCTION_TABLE
    stack = [parsed]
    while stack:
        node = stack.pop()
        stack.extend(node.get("children", ()))
        if node.get("type") != "function_expression":
            continue
        name, given = node.get("value"), len(node.get("children", ()))
        if name not in known:
            raise ValidationError("analysis.query", f"unknown JMESPath function {name}()")
        signature = known[name]["signature"]
        variadic = bool(signature) and signature[-1].get("variadic", False)
        if given < len(signature) or (given > len(signature) and not variadic):
            wanted = f"{len(signature)}{' or more' if variadic else ''} argument"
            plural = "" if wanted == "1 argument" else "s"
            raise ValidationError("analysis.query",
                                  f"{name}() takes {wanted}{plural}, not {given}")


def _one_line(exc: Exception) -> str:
    """jmespath's message without its prefix and the expression and caret it appends."""
    text = str(exc).split("\n", 1)[0].rstrip(":").removesuffix(", for expression")
    for prefix in ("Invalid jmespath expression: ", "Bad jmespath expression: "):
        text = text.removeprefix(prefix)
    position = getattr(exc, "lex_position", None)
    return f"{text} (column {position})" if "column" not in text and position else text


def _bound(field: str, value: object, query: str) -> float | None:
    if value is None:
        return None
    if not query:
        raise ValidationError(field, "needs a query: without one, any 2xx answer passes")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValidationError(field, f"must be a number, not {type(value).__name__}")
    number = _finite(value)
    if number is None:
        raise ValidationError(field, f"must be a finite number, got {value!r}")
    return number


def _int(field: str, value: object, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(field, f"must be an integer, not {type(value).__name__}")
    if not low <= value <= high:
        raise ValidationError(field, f"must be between {low} and {high}, got {value}")
    return value


def evaluate(
    analysis: Analysis, *, at: datetime, http_status: int | None, body: bytes, seconds: float,
    error: str = "",
) -> Measurement:
    """Judge one answer of the endpoint (or the transport ``error`` that prevented one).

    ``seconds`` is how long the request took; ``body`` is read only for a query. Every
    message is one printable line, whatever the endpoint sent.
    """

    def failed(why: str, value: float | None = None) -> Measurement:
        return Measurement(at, False, value, http_status, seconds, why)

    if error:
        return failed(_short(error, 200))
    if http_status is None:
        return failed("no answer")
    if not 200 <= http_status <= 299:
        return failed(f"HTTP {http_status}")
    if seconds > analysis.timeout:
        return failed(f"answered in {seconds:.2f} s, over the {analysis.timeout} s timeout")
    if not analysis.query:
        return Measurement(at, True, None, http_status, seconds)
    try:
        document = json.loads(body)
    except (ValueError, RecursionError) as exc:
        return failed(f"body is not JSON: {_short(str(exc))}")
    try:
        found = jmespath.search(analysis.query, document)
    except (jmespath.exceptions.JMESPathError, RecursionError) as exc:
        return failed(f"query {analysis.query} failed: {_short(str(exc))}")
    if found is None:
        return failed(f"query {analysis.query} found nothing")
    value = _number(found)
    if value is None:
        kind = "a finite number" if _looks_numeric(found) else "a number"
        return failed(f"query {analysis.query} is {_short(repr(found))}, not {kind}")
    if analysis.min is not None and value < analysis.min:
        return failed(f"value {_num(value)} is below min {_num(analysis.min)}", value)
    if analysis.max is not None and value > analysis.max:
        return failed(f"value {_num(value)} is above max {_num(analysis.max)}", value)
    return Measurement(at, True, value, http_status, seconds)


def judge(analysis: Analysis, measurements: Sequence[Measurement]) -> Verdict | None:
    """Decide the gate from the measurements so far (the first ``count`` of them).

    Fails as soon as more than ``failure_limit`` failed; passes once ``count`` are taken
    within the limit; None while undecided.
    """
    taken = list(measurements[: analysis.count])
    failures = [m for m in taken if not m.ok]
    if len(failures) > analysis.failure_limit:
        return Verdict(False, f"analysis failed: {len(failures)} of {len(taken)} measurements "
                              f"failed (failure_limit {analysis.failure_limit}); "
                              f"last: {failures[-1].error}")
    if len(taken) < analysis.count:
        return None
    good = [m for m in taken if m.ok]
    if analysis.query:
        shown = _listed([_num(m.value) for m in good if m.value is not None])
        detail = f"values {shown}"
    else:
        detail = f"answered 2xx in {_listed([f'{m.seconds:.2f}' for m in good])} s"
    message = f"analysis passed: {len(good)} of {len(taken)} measurements ok ({detail})"
    if failures:
        message += f"; failed: {'; '.join(m.error for m in failures)}"
    return Verdict(True, message)


def _listed(items: list[str]) -> str:
    if len(items) <= _LISTED_VALUES:
        return ", ".join(items)
    return f"{', '.join(items[:_LISTED_VALUES])}, ... ({len(items) - _LISTED_VALUES} more)"


def _looks_numeric(found: object) -> bool:
    """A JSON number or a numeric string ("0.012", "NaN", "+Inf"), finite or not."""
    if isinstance(found, str):
        return _NUMERIC.fullmatch(found.strip()) is not None
    return isinstance(found, (int, float)) and not isinstance(found, bool)


def _number(found: object) -> float | None:
    """A finite float from a JSON number or a numeric string, else None."""
    if isinstance(found, bool):
        return None
    if isinstance(found, (int, float)):
        return _finite(found)
    if isinstance(found, str) and _looks_numeric(found):
        return _finite(float(found.strip()))
    return None


def _finite(value: float) -> float | None:
    try:
        number = float(value)
    except OverflowError:  # an int beyond float range
        return None
    return number if math.isfinite(number) else None


def _optional_float(value: object) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"not a number: {value!r}")
    return float(value)


def _num(value: float | None) -> str:
    """A number as a person writes it: ``5`` rather than ``5.0``, else Python's shortest."""
    if value is None:
        return "none"
    number = float(value)
    if number.is_integer() and abs(number) < 1e15:
        return str(int(number))
    return repr(number)


def _short(text: str, limit: int = 120) -> str:
    """Text from the endpoint, on one line and cut to ``limit`` characters."""
    flat = " ".join("".join(ch if ch.isprintable() else " " for ch in text).split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."
