"""Operator settings: where floy keeps its state and which operator files it trusts.

Precedence, lowest first: built-in defaults, ``<home>/config.yml``, ``FLOY_*`` environment
variables, explicit arguments (the CLI's global options). Settings carry no secrets that
would end up in a run's artifacts: credentials stay in the operator's inventory files.

Every value is checked when it is read: a wrong type, a number out of range or a database
URL floy cannot use is a :class:`ConfigError` naming where the value came from
(``<home>/config.yml: forks``, ``FLOY_FORKS``, ``--db-url``) and what was expected, before
anything is stored or run. The operator inventory directory is checked (it exists, is
readable, holds ``group_vars/``) by whatever runs Ansible: :meth:`Settings.require_inventory`.

Relative paths given as an argument or a ``FLOY_*`` variable resolve against the working
directory; relative paths in ``config.yml`` (a file has no working directory) against the
home directory's parent.
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from orchestrator.errors import ConfigError

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PLAYBOOK_DIR = REPO_ROOT / "playbooks"
DEFAULT_INVENTORY_DIR = REPO_ROOT / "inventories" / "local"
CONFIG_KEYS = frozenset(
    {
        "db_url",
        "inventory_dir",
        "playbook_dir",
        "ca_bundle",
        "allowed_package_hosts",
        "forks",
        "lease_seconds",
        "executor",
        "node_name",
        "nodes",
    }
)
#: The keys of an execution node under ``nodes:`` (orchestrator/ansible/remote.py, Node).
NODE_KEYS = {"destination": str, "port": int, "identity_file": str, "known_hosts": str,
             "runner_command": str}
#: How ``execute_deployment`` hands a recorded run on: ``process`` starts a detached worker
#: process per run (the embedded default); ``queue`` only records it, for a ``floy worker``
#: daemon to claim.
EXECUTORS = ("process", "queue")
#: A dead worker's run is noticed when its lease expires: more than a day helps nobody.
MAX_LEASE_SECONDS = 86400.0
DB_URL_EXAMPLES = "sqlite:////var/lib/floy/floy.db or postgresql+psycopg://floy@db.example/floy"


@dataclass(frozen=True)
class Settings:
    """Everything a service, a worker or the CLI needs to know about this installation."""

    home: Path
    db_url: str
    inventory_dir: Path
    playbook_dir: Path = DEFAULT_PLAYBOOK_DIR
    ca_bundle: str = ""
    allowed_package_hosts: frozenset[str] = frozenset()
    forks: int = 20
    lease_seconds: float = 15.0
    executor: str = "process"
    #: This machine's name in lease owners and worker rows (the reaper stops a lost run's
    #: processes only on the machine that ran them); the host name by default.
    node_name: str = dataclasses.field(default_factory=socket.gethostname)
    #: Execution nodes by name: ``destination`` (``[user@]host``), ``port``,
    #: ``identity_file``, ``known_hosts``, ``runner_command`` (read in config.yml only).
    nodes: Mapping[str, Mapping[str, Any]] = dataclasses.field(default_factory=dict)
    python: str = sys.executable
    #: Where ``inventory_dir`` came from, as error messages name it (``--inventory-dir (or
    #: FLOY_INVENTORY_DIR)``, ``<home>/config.yml: inventory_dir``, ``the default
    #: inventory_dir``).
    inventory_source: str = "inventory_dir"

    def __post_init__(self) -> None:
        # Settings built directly (embedding, a worker's JSON) get the same range checks:
        # a NaN lease would leave every run pending for ever.
        _forks(self.forks, "Settings.forks")
        _lease_seconds(self.lease_seconds, "Settings.lease_seconds")
        _executor(self.executor, "Settings.executor")
        _node_name(self.node_name, "Settings.node_name")

    @property
    def db_io_timeout(self) -> float:
        """How long a call to the database server may go unanswered: a third of a lease
        (so a worker cut off from it stops its playbook before its lease can expire), at
        least 1 s and at most 10 s."""
        return min(10.0, max(1.0, self.lease_seconds / 3))

    def require_inventory(self) -> None:
        """Raise ConfigError unless ``inventory_dir`` is an inventory directory floy can use
        (see :func:`check_inventory_dir`): called before anything that runs Ansible is
        stored or started."""
        check_inventory_dir(self.inventory_dir, self.inventory_source)

    @property
    def runs_dir(self) -> Path:
        """Directory holding one private data dir per run."""
        return self.home / "runs"

    def to_json(self) -> str:
        """Serialise for handing to a worker process (over stdin, never argv or env)."""
        data = dataclasses.asdict(self)
        data["allowed_package_hosts"] = sorted(self.allowed_package_hosts)
        return json.dumps({k: str(v) if isinstance(v, Path) else v for k, v in data.items()})

    @classmethod
    def from_json(cls, text: str) -> Settings:
        """Inverse of :meth:`to_json`."""
        data = json.loads(text)
        return cls(
            home=Path(data["home"]),
            db_url=data["db_url"],
            inventory_dir=Path(data["inventory_dir"]),
            playbook_dir=Path(data["playbook_dir"]),
            ca_bundle=data["ca_bundle"],
            allowed_package_hosts=frozenset(data["allowed_package_hosts"]),
            forks=int(data["forks"]),
            lease_seconds=float(data["lease_seconds"]),
            executor=data.get("executor", "process"),
            node_name=data.get("node_name") or socket.gethostname(),
            nodes=data.get("nodes") or {},
            python=data["python"],
            inventory_source=data.get("inventory_source") or "inventory_dir",
        )


def load_settings(
    home: str | Path | None = None,
    db_url: str | None = None,
    inventory_dir: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
    *,
    need_inventory: bool = False,
) -> Settings:
    """Resolve settings from arguments, ``FLOY_*`` variables, ``config.yml`` and defaults.

    Raises ConfigError naming the file and key, the variable or the option of a bad value;
    with ``need_inventory`` (a command that runs Ansible) also when the inventory directory
    is missing, unreadable or has no ``group_vars/``.
    """
    env = os.environ if environ is None else environ
    home_path = Path(home or env.get("FLOY_HOME") or ".floy").expanduser().absolute()
    config_path = home_path / "config.yml"
    config = _read_config(config_path)

    def pick(arg: object, env_key: str, key: str) -> tuple[object, str] | None:
        """The value given for ``key`` and where it came from, or None when it is not set."""
        if arg not in (None, ""):
            # the CLI's option, which click also fills from the variable
            return arg, f"--{key.replace('_', '-')} (or {env_key})"
        if env.get(env_key):
            return env[env_key], env_key
        if key in config:
            return config[key], f"{config_path}: {key}"
        return None

    def path(arg: object, env_key: str, key: str, default: Path) -> tuple[Path, str]:
        """The directory given for ``key`` and where it came from. Relative paths from an
        argument or a variable resolve against the working directory, those in config.yml
        against the home's parent."""
        given = pick(arg, env_key, key)
        if given is None:
            return default, f"the default {key}"
        value, source = given
        base = home_path.parent if source.startswith(f"{config_path}:") else Path.cwd()
        if isinstance(value, Path):
            return _path(value, base), source
        return _path(_string(value, source, "a directory path"), base), source

    db = pick(db_url, "FLOY_DB_URL", "db_url")
    hosts = pick(None, "FLOY_ALLOWED_PACKAGE_HOSTS", "allowed_package_hosts")
    ca_bundle = pick(None, "FLOY_CA_BUNDLE", "ca_bundle")
    forks = pick(None, "FLOY_FORKS", "forks")
    lease = pick(None, "FLOY_LEASE_SECONDS", "lease_seconds")
    executor = pick(None, "FLOY_EXECUTOR", "executor")
    node = pick(None, "FLOY_NODE_NAME", "node_name")
    inventory, inventory_source = path(inventory_dir, "FLOY_INVENTORY_DIR", "inventory_dir",
                                       DEFAULT_INVENTORY_DIR)
    settings = Settings(
        home=home_path,
        db_url=(check_db_url(*db) if db is not None
                else f"sqlite:///{home_path / 'floy.db'}"),
        inventory_dir=inventory,
        inventory_source=inventory_source,
        playbook_dir=path(None, "FLOY_PLAYBOOK_DIR", "playbook_dir", DEFAULT_PLAYBOOK_DIR)[0],
        ca_bundle="" if ca_bundle is None else _string(*ca_bundle, "a path to a CA bundle file"),
        allowed_package_hosts=frozenset() if hosts is None else _hosts(*hosts),
        forks=20 if forks is None else _forks(*forks),
        lease_seconds=15.0 if lease is None else _lease_seconds(*lease),
        executor="process" if executor is None else _executor(*executor),
        node_name=socket.gethostname() if node is None else _node_name(*node),
        nodes={} if "nodes" not in config else _nodes(config["nodes"],
                                                      f"{config_path}: nodes", home_path),
    )
    if need_inventory:
        settings.require_inventory()
    return settings


def check_inventory_dir(path: Path, source: str) -> None:
    """Raise ConfigError naming ``path`` and ``source`` (where the setting came from) unless
    ``path`` is a readable directory holding a readable ``group_vars/`` (and, if present, a
    readable ``host_vars/``), every file in them readable.

    Without this, a mistyped directory left a run with no connection variables: Ansible
    fell back to SSH and the role to ``/opt/floy``.
    """
    named = f"{source} names {path}"
    if not path.exists():
        raise ConfigError(f"{named}, which does not exist")
    if not path.is_dir():
        raise ConfigError(f"{named}, which is not a directory")
    _readable_dir(path, named)
    if not (path / "group_vars").is_dir():
        raise ConfigError(
            f"{named}, which has no group_vars/ directory (floy takes the connection "
            f"variables, such as ansible_connection, and each service's settings from "
            f"group_vars/all.yml and group_vars/<service>.yml there)")
    for sub in ("group_vars", "host_vars"):
        top = path / sub
        if not top.exists():
            continue
        if not top.is_dir():
            raise ConfigError(f"{named}, whose {sub} is not a directory")

        def unreadable(exc: OSError) -> None:
            raise ConfigError(f"{named}, whose {exc.filename} is not readable by this user "
                              f"({exc.strerror or exc})")

        for directory, _dirs, files in os.walk(top, onerror=unreadable):
            _readable_dir(Path(directory), named)
            for name in files:
                if not os.access(Path(directory) / name, os.R_OK):
                    raise ConfigError(f"{named}, whose {Path(directory) / name} is not "
                                      f"readable by this user")


def _readable_dir(directory: Path, named: str) -> None:
    """A directory this process can list and enter, else ConfigError."""
    try:
        if not os.access(directory, os.R_OK | os.X_OK):
            raise PermissionError(13, "Permission denied")
        with os.scandir(directory):
            pass
    except OSError as exc:
        what = "which" if named.endswith(f" {directory}") else f"whose {directory}"
        raise ConfigError(f"{named}, {what} is not readable by this user "
                          f"({exc.strerror or exc})") from None


def check_db_url(value: object, source: str = "db_url") -> str:
    """Return ``value`` if it is a database URL whose driver is installed.

    Raises ConfigError naming ``source`` otherwise. A URL that does not parse is not echoed:
    it may hold a password.
    """
    text = _string(value, source, "a database URL")
    # Imported here: settings are read by every command, SQLAlchemy only by those needing it.
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        url = make_url(text)
    except (ArgumentError, ValueError):
        raise ConfigError(
            f"{source} is not a database URL (expected e.g. {DB_URL_EXAMPLES})"
        ) from None
    shown = url.render_as_string(hide_password=True)
    try:
        url.get_dialect().import_dbapi()
    except ArgumentError:  # NoSuchModuleError: SQLAlchemy has no such dialect or driver
        raise ConfigError(
            f"{source} ({shown}) names an unknown database driver {url.drivername!r} "
            f"(expected e.g. {DB_URL_EXAMPLES})"
        ) from None
    except ImportError as exc:
        raise ConfigError(
            f"{source} ({shown}) needs a Python database driver that is not installed: {exc}"
        ) from None
    return text


def _describe(value: object) -> str:
    """A value as the operator wrote it in YAML or in a variable."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    return repr(value)


def _string(value: object, source: str, expected: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{source} must be a string ({expected}), got {_describe(value)}")
    return value


def _hosts(value: object, source: str) -> frozenset[str]:
    """A list of host names, or (from a variable) one comma-separated string."""
    if isinstance(value, str):
        value = [h for h in value.split(",") if h.strip()]
    if not isinstance(value, list):
        raise ConfigError(f"{source} must be a list of host names (or one comma-separated "
                          f"string), got {_describe(value)}")
    hosts = [_string(host, f"{source}[{n}]", "a host name") for n, host in enumerate(value)]
    return frozenset(h.strip().lower() for h in hosts)


def _forks(value: object, source: str) -> int:
    """A whole number of at least 1 (an int, or its decimal text from a variable)."""
    number: object = value
    if isinstance(value, str):
        try:
            number = int(value)
        except ValueError:
            number = None
    if isinstance(number, bool) or not isinstance(number, int) or number < 1:
        raise ConfigError(f"{source} must be a whole number of at least 1, "
                          f"got {_describe(value)}")
    return number


def _lease_seconds(value: object, source: str) -> float:
    """A finite number of seconds from 1 to MAX_LEASE_SECONDS (or its text from a variable)."""
    number: object = value
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            number = None
    # Written as "not inside the range" on purpose: NaN fails every comparison, so `nan < 1`
    # is False and a NaN lease passed the old `< 1` check; `1 <= nan` is False too.
    if (isinstance(number, bool) or not isinstance(number, int | float)
            or not 1 <= number <= MAX_LEASE_SECONDS):
        raise ConfigError(f"{source} must be a number of seconds from 1 to "
                          f"{MAX_LEASE_SECONDS:g}, got {_describe(value)}")
    return float(number)


def _executor(value: object, source: str) -> str:
    if value not in EXECUTORS:
        raise ConfigError(f"{source} must be one of {', '.join(EXECUTORS)}, "
                          f"got {_describe(value)}")
    return str(value)


def _node_name(value: object, source: str) -> str:
    """A machine name: letters, digits, dots, dashes and underscores (it is the first part
    of a lease owner ``node:pid:random``, so no colon)."""
    text = _string(value, source, "a machine name")
    if not 1 <= len(text) <= 64 or not all(c.isalnum() or c in "._-" for c in text):
        raise ConfigError(f"{source} must be 1-64 letters, digits, dots, dashes or "
                          f"underscores, got {_describe(value)}")
    return text


def _nodes(value: object, source: str, home: Path) -> dict[str, dict[str, Any]]:
    """``nodes:``: a mapping of node names to their ssh target (paths relative to the
    home's parent, as every path in config.yml); the rest is checked where a node is used
    (:class:`orchestrator.ansible.remote.Node`), naming the node and the key."""
    if not isinstance(value, dict):
        raise ConfigError(f"{source} must be a mapping of node names to their settings, "
                          f"got {_describe(value)}")
    nodes: dict[str, dict[str, Any]] = {}
    for name, entry in value.items():
        where = f"{source}.{name}"
        if not isinstance(name, str) or not isinstance(entry, dict):
            raise ConfigError(f"{where} must be a mapping of {', '.join(NODE_KEYS)}, got "
                              f"{_describe(entry)}")
        unknown = sorted(str(k) for k in entry if k not in NODE_KEYS)
        if unknown:
            raise ConfigError(f"{where}: unknown key {unknown[0]!r} (known: "
                              f"{', '.join(NODE_KEYS)})")
        for key in ("destination", "identity_file", "known_hosts"):
            if key not in entry:
                raise ConfigError(f"{where}: {key} is missing")
        for key, kind in NODE_KEYS.items():
            if key in entry and (not isinstance(entry[key], kind)
                                 or isinstance(entry[key], bool)):
                expected = "a number" if kind is int else "a string"
                raise ConfigError(f"{where}.{key} must be {expected}, "
                                  f"got {_describe(entry[key])}")
        node = dict(entry)
        for key in ("identity_file", "known_hosts"):
            node[key] = str(_path(node[key], home.parent))
        nodes[name] = node
    return nodes


def _path(value: str | Path, base: Path) -> Path:
    """``value`` with ``~`` expanded, relative to ``base`` unless absolute."""
    path = Path(value).expanduser()
    return path if path.is_absolute() else (base / path).absolute()


def _read_config(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except UnicodeDecodeError as exc:
        raise ConfigError(f"cannot read {path}: not UTF-8 text (byte {exc.start} is "
                          f"0x{exc.object[exc.start]:02x}); save it as UTF-8") from None
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping")
    # YAML keys may be numbers or null: compare and sort them as text
    unknown = sorted(str(k) for k in data if k not in CONFIG_KEYS)
    if unknown:
        raise ConfigError(f"{path}: unknown setting(s) {', '.join(unknown)}")
    return data
