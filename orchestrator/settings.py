"""Operator settings: where floy keeps its state and which operator files it trusts.

Precedence, lowest first: built-in defaults, ``<home>/config.yml``, ``FLOY_*`` environment
variables, explicit arguments (the CLI's global options). Settings carry no secrets that
would end up in a run's artifacts: credentials stay in the operator's inventory files.
"""

from __future__ import annotations

import dataclasses
import json
import os
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
    }
)


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
    python: str = sys.executable

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
            python=data["python"],
        )


def load_settings(
    home: str | Path | None = None,
    db_url: str | None = None,
    inventory_dir: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Resolve settings from arguments, ``FLOY_*`` variables, ``config.yml`` and defaults."""
    env = os.environ if environ is None else environ
    home_path = Path(home or env.get("FLOY_HOME") or ".floy").expanduser().absolute()
    config = _read_config(home_path / "config.yml")

    def pick(arg: object, env_key: str, key: str, default: Any) -> Any:
        if arg not in (None, ""):
            return arg
        if env.get(env_key):
            return env[env_key]
        return config.get(key, default)

    hosts = pick(None, "FLOY_ALLOWED_PACKAGE_HOSTS", "allowed_package_hosts", [])
    if isinstance(hosts, str):
        hosts = [h for h in hosts.split(",") if h.strip()]
    try:
        forks = int(pick(None, "FLOY_FORKS", "forks", 20))
        lease = float(pick(None, "FLOY_LEASE_SECONDS", "lease_seconds", 15.0))
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"forks and lease_seconds must be numbers: {exc}") from None
    if forks < 1 or lease < 1:
        raise ConfigError("forks and lease_seconds must be at least 1")
    return Settings(
        home=home_path,
        db_url=str(pick(db_url, "FLOY_DB_URL", "db_url", f"sqlite:///{home_path / 'floy.db'}")),
        inventory_dir=_path(pick(inventory_dir, "FLOY_INVENTORY_DIR", "inventory_dir",
                                 DEFAULT_INVENTORY_DIR), home_path),
        playbook_dir=_path(pick(None, "FLOY_PLAYBOOK_DIR", "playbook_dir", DEFAULT_PLAYBOOK_DIR),
                           home_path),
        ca_bundle=str(pick(None, "FLOY_CA_BUNDLE", "ca_bundle", "")),
        allowed_package_hosts=frozenset(str(h).strip().lower() for h in hosts),
        forks=forks,
        lease_seconds=lease,
    )


def _path(value: object, home: Path) -> Path:
    """Relative paths in config.yml are relative to the home directory's parent (the project)."""
    path = Path(str(value)).expanduser()
    return path if path.is_absolute() else (home.parent / path).absolute()


def _read_config(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping")
    unknown = sorted(set(data) - CONFIG_KEYS)
    if unknown:
        raise ConfigError(f"{path}: unknown setting(s) {', '.join(unknown)}")
    return data
