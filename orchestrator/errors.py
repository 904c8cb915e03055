"""The one error root of floy and the process exit codes it maps to.

Every error floy raises on purpose is a :class:`FloyError`. Each subclass carries
structured fields, renders its own message and says which :class:`ExitCode` the
CLI exits with; the CLI catches them in one place and prints ``to_dict()`` for
``--json``. Constructors never log: whoever handles the error decides that.
"""

from __future__ import annotations

from enum import IntEnum
from typing import ClassVar


class ExitCode(IntEnum):
    """Process exit codes of the ``floy`` CLI (all distinct)."""

    SUCCESS = 0
    #: A deployment or rollback ended ``failed`` or ``cancelled``.
    RUN_FAILED = 1
    #: The request itself is invalid (a :class:`ValidationError`).
    BAD_INPUT = 2
    #: A deployment, rollback, service or instance does not exist.
    NOT_FOUND = 3
    #: The request clashes with existing state (busy instance, reused ID).
    CONFLICT = 4
    #: A run could not be started or carried (ansible missing, worker failed).
    EXECUTION = 5
    #: Bad settings, or the database is unreachable, unwritable or damaged.
    CONFIG = 6
    #: The run is still going (e.g. a cancel that had not taken effect in time).
    STILL_RUNNING = 7
    #: An unexpected error (a bug); the traceback goes to the debug log.
    INTERNAL = 70
    #: Interrupted by the user (SIGINT), as shells report it.
    INTERRUPTED = 130


class FloyError(Exception):
    """Root of every error floy raises deliberately."""

    exit_code: ClassVar[ExitCode] = ExitCode.INTERNAL
    #: Short machine-readable code, the ``"error"`` key of :meth:`to_dict`.
    code: ClassVar[str] = "internal"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __reduce__(self) -> tuple[object, ...]:
        # Pickle by the constructor's own arguments, so errors survive a trip
        # through a worker process (the default would call cls(str(self))).
        return (type(self), self._init_args())

    def _init_args(self) -> tuple[str, ...]:
        return (self.message,)

    def to_dict(self) -> dict[str, str]:
        """Return the JSON object the CLI prints for this error with ``--json``."""
        return {"error": self.code, "message": str(self)}


class ValidationError(FloyError):
    """A user-supplied value is invalid; ``field`` names it (``instances[3]``)."""

    exit_code = ExitCode.BAD_INPUT
    code = "validation"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"invalid {field}: {message}")
        self.field = field
        self.reason = message

    def _init_args(self) -> tuple[str, ...]:
        return (self.field, self.reason)

    def to_dict(self) -> dict[str, str]:
        """Return the JSON error object, including the offending ``field``."""
        return {"error": self.code, "message": str(self), "field": self.field}


class NotFoundError(FloyError):
    """Something looked up by key does not exist (``kind`` is e.g. ``"deployment"``)."""

    exit_code = ExitCode.NOT_FOUND
    code = "not_found"

    def __init__(self, kind: str, key: str) -> None:
        super().__init__(f"{kind} not found: {key}")
        self.kind = kind
        self.key = key

    def _init_args(self) -> tuple[str, ...]:
        return (self.kind, self.key)

    def to_dict(self) -> dict[str, str]:
        """Return the JSON error object, including ``kind`` and ``key``."""
        return {"error": self.code, "message": str(self), "kind": self.kind, "key": self.key}


class ConflictError(FloyError):
    """The request clashes with existing state; ``key`` names what it clashed on."""

    exit_code = ExitCode.CONFLICT
    code = "conflict"

    def __init__(self, message: str, key: str = "") -> None:
        super().__init__(message)
        self.key = key

    def _init_args(self) -> tuple[str, ...]:
        return (self.message, self.key)

    def to_dict(self) -> dict[str, str]:
        """Return the JSON error object, with ``key`` when one was given."""
        out = {"error": self.code, "message": str(self)}
        if self.key:
            out["key"] = self.key
        return out


class ExecutionError(FloyError):
    """A run could not be started or carried on (runner missing, worker died)."""

    exit_code = ExitCode.EXECUTION
    code = "execution"


class ConfigError(FloyError):
    """Settings are wrong, or the database cannot be reached or written."""

    exit_code = ExitCode.CONFIG
    code = "config"


class StoreDataError(ConfigError):
    """The database holds what floy never writes: a missing table, a malformed row.

    ``table`` names the table, ``key`` the row (its primary key) and ``column`` the value
    when they are known; ``problem`` says what is wrong. The message tells the operator what
    to do: fix that row, or restore the database from a backup. ``database`` (a path, or a URL
    without its password) is filled in where the store knows it.
    """

    code = "store_data"

    def __init__(
        self, table: str, problem: str, key: str = "", column: str = "", database: str = ""
    ) -> None:
        where = f"table {table}"
        if key:
            where += f", row {key!r}"
        if column:
            where += f", column {column}"
        remedy = ("fix that row, or restore the database from a backup" if key
                  else "restore the database from a backup")
        damaged = f"the database {database}" if database else "the database"
        super().__init__(f"{damaged} is damaged: {where}: {problem}; {remedy}")
        self.table = table
        self.problem = problem
        self.key = key
        self.column = column
        self.database = database

    def _init_args(self) -> tuple[str, ...]:
        return (self.table, self.problem, self.key, self.column, self.database)

    def located(self, database: str) -> StoreDataError:
        """The same error, naming the database it was found in."""
        return StoreDataError(self.table, self.problem, self.key, self.column, database)

    def to_dict(self) -> dict[str, str]:
        """Return the JSON error object, with ``table`` and, when known, ``key`` and ``column``."""
        out = {"error": self.code, "message": str(self), "table": self.table}
        if self.key:
            out["key"] = self.key
        if self.column:
            out["column"] = self.column
        return out
