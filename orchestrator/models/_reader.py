"""Private JSON reader: typed access to one object, errors naming the value's path."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from orchestrator.errors import ValidationError
from orchestrator.models.common import DEFAULT_BATCH_SIZE, EXTENSION_KEYS, SPEC_KEYS, Status
from orchestrator.timefmt import parse_time


def _all_keys(name: str) -> frozenset[str]:
    return SPEC_KEYS[name] | EXTENSION_KEYS[name]


def _type_name(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (list, tuple)):
        return "array"
    if isinstance(value, Mapping):
        return "object"
    return type(value).__name__


class _Reader:
    """Typed access to one JSON object; every error names the value's path."""

    __slots__ = ("_data", "_prefix")

    def __init__(self, data: object, prefix: str, what: str = "") -> None:
        # prefix is "" for a top-level object; what then names it in errors.
        if not isinstance(data, Mapping):
            raise ValidationError(prefix or what, f"must be a JSON object, not {_type_name(data)}")
        self._data: Mapping[str, Any] = data
        self._prefix = prefix

    def path(self, key: str) -> str:
        return f"{self._prefix}.{key}" if self._prefix else key

    def has(self, key: str) -> bool:
        return key in self._data

    def raw(self, key: str) -> object:
        if key not in self._data:
            raise ValidationError(self.path(key), "required field is missing")
        return self._data[key]

    def _wrong(self, key: str, expected: str, value: object) -> ValidationError:
        return ValidationError(self.path(key), f"must be {expected}, not {_type_name(value)}")

    def get_str(self, key: str, default: str | None = None) -> str:
        if default is not None and key not in self._data:
            return default
        value = self.raw(key)
        if not isinstance(value, str):
            raise self._wrong(key, "a string", value)
        return value

    def get_int(self, key: str, default: int | None = None) -> int:
        if default is not None and key not in self._data:
            return default
        value = self.raw(key)
        if not isinstance(value, int) or isinstance(value, bool):
            raise self._wrong(key, "an integer", value)
        return value

    def get_bool(self, key: str, default: bool | None = None) -> bool:
        if default is not None and key not in self._data:
            return default
        value = self.raw(key)
        if not isinstance(value, bool):
            raise self._wrong(key, "a boolean", value)
        return value

    def get_time(self, key: str, nullable: bool = False, optional: bool = False) -> datetime | None:
        if optional and key not in self._data:
            return None
        value = self.raw(key)
        if value is None and nullable:
            return None
        if not isinstance(value, str):
            raise self._wrong(key, "an RFC 3339 timestamp string", value)
        try:
            return parse_time(value)
        except ValueError:
            raise ValidationError(self.path(key), "must be an RFC 3339 timestamp") from None

    def get_required_time(self, key: str) -> datetime:
        value = self.get_time(key)
        assert value is not None  # get_time returns None only when nullable/optional
        return value

    def get_status(self, key: str, default: Status | None = None) -> Status:
        if default is not None and key not in self._data:
            return default
        value = self.get_str(key)
        try:
            return Status(value)
        except ValueError:
            words = ", ".join(s.value for s in Status)
            raise ValidationError(self.path(key), f"must be one of {words}") from None

    def get_batch_size(self, key: str) -> str:
        if key not in self._data:
            return DEFAULT_BATCH_SIZE
        value = self._data[key]
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        if not isinstance(value, str):
            raise self._wrong(key, "an integer or a string", value)
        return value

    def get_steps(self, key: str) -> tuple[str, ...]:
        """Canary steps: a list of strings or integers, or one comma-separated string
        (absent or null: none). Their grammar is checked by the domain's validation."""
        value = self._data.get(key)
        if value is None:
            return ()
        if isinstance(value, str):
            return tuple(item.strip() for item in value.split(",")) if value.strip() else ()
        if not isinstance(value, (list, tuple)):
            raise self._wrong(key, "an array of steps or a comma-separated string", value)
        out = []
        for i, item in enumerate(value):
            if isinstance(item, int) and not isinstance(item, bool):
                item = str(item)
            if not isinstance(item, str):
                raise ValidationError(f"{self.path(key)}[{i}]",
                                      f"must be a string or an integer, not {_type_name(item)}")
            out.append(item)
        return tuple(out)

    def get_object(self, key: str) -> dict[str, Any] | None:
        """A JSON object kept as it is (absent or null: None)."""
        value = self._data.get(key)
        if value is None:
            return None
        if not isinstance(value, Mapping):
            raise self._wrong(key, "an object", value)
        return dict(value)

    def get_str_tuple(self, key: str) -> tuple[str, ...]:
        value = self.raw(key)
        if not isinstance(value, (list, tuple)):
            raise self._wrong(key, "an array of strings", value)
        for i, item in enumerate(value):
            if not isinstance(item, str):
                raise ValidationError(
                    f"{self.path(key)}[{i}]", f"must be a string, not {_type_name(item)}"
                )
        return tuple(value)

    def get_str_map(self, key: str, optional: bool = False) -> dict[str, str]:
        if optional and key not in self._data:
            return {}
        value = self.raw(key)
        if not isinstance(value, Mapping):
            raise self._wrong(key, "an object of strings", value)
        out: dict[str, str] = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise ValidationError(self.path(key), "keys must be strings")
            if not isinstance(v, str):
                raise ValidationError(
                    f"{self.path(key)}.{k}", f"must be a string, not {_type_name(v)}"
                )
            out[k] = v
        return out

    def get_int_map(self, key: str) -> dict[str, int]:
        value = self.raw(key)
        if not isinstance(value, Mapping):
            raise self._wrong(key, "an object of integers", value)
        out: dict[str, int] = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise ValidationError(self.path(key), "keys must be strings")
            if not isinstance(v, int) or isinstance(v, bool):
                raise ValidationError(
                    f"{self.path(key)}.{k}", f"must be an integer, not {_type_name(v)}"
                )
            out[k] = v
        return out

    def child(self, key: str) -> _Reader:
        return _Reader(self.raw(key), self.path(key))

    def children(self, key: str) -> list[_Reader]:
        value = self.raw(key)
        if not isinstance(value, (list, tuple)):
            raise self._wrong(key, "an array of objects", value)
        return [_Reader(item, f"{self.path(key)}[{i}]") for i, item in enumerate(value)]

    def reject_unknown(self, allowed: frozenset[str]) -> None:
        for key in self._data:
            if key not in allowed:
                raise ValidationError(self.path(str(key)), "unknown field")


def _as_tuple(obj: object, name: str) -> None:
    """Store a list given for a tuple field as a tuple (frozen-safe).

    Only lists are converted: a string stays a string, for validation to refuse.
    """
    value = getattr(obj, name)
    if isinstance(value, list):
        object.__setattr__(obj, name, tuple(value))


def _top(data: Mapping[str, Any], name: str, strict: bool) -> _Reader:
    reader = _Reader(data, "", name)
    if strict:
        reader.reject_unknown(_all_keys(name))
    return reader
