"""Settings resolution: precedence, and every bad value refused naming where it came from."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import yaml

from orchestrator.errors import ConfigError
from orchestrator.settings import (
    CONFIG_KEYS,
    DEFAULT_INVENTORY_DIR,
    DEFAULT_PLAYBOOK_DIR,
    Settings,
    check_db_url,
    load_settings,
)


def _home(tmp_path: Path, config: dict[str, Any] | None = None) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    if config is not None:
        (home / "config.yml").write_text(yaml.safe_dump(config))
    return home


def _refused(home: Path, environ: dict[str, str] | None = None, **args: Any) -> str:
    with pytest.raises(ConfigError) as err:
        load_settings(home=home, environ=environ or {}, **args)
    return str(err.value)


def test_defaults(tmp_path: Path) -> None:
    home = _home(tmp_path)
    s = load_settings(home=home, environ={})
    assert s.db_url == f"sqlite:///{home / 'floy.db'}"
    assert (s.inventory_dir, s.playbook_dir) == (DEFAULT_INVENTORY_DIR, DEFAULT_PLAYBOOK_DIR)
    assert (s.ca_bundle, s.allowed_package_hosts, s.forks, s.lease_seconds) == (
        "", frozenset(), 20, 15.0)


def test_precedence_and_accepted_forms(tmp_path: Path) -> None:
    home = _home(tmp_path, {
        "db_url": "sqlite:////tmp/from-config.db",
        "inventory_dir": "inv",
        "playbook_dir": "/abs/playbooks",
        "ca_bundle": "/etc/ca.pem",
        "allowed_package_hosts": ["Pkg.Example ", "b.example"],
        "forks": 5,
        "lease_seconds": 30,
    })
    s = load_settings(home=home, environ={})
    assert s.db_url == "sqlite:////tmp/from-config.db"
    assert s.inventory_dir == tmp_path / "inv"  # relative to the home's parent
    assert s.playbook_dir == Path("/abs/playbooks")
    assert s.allowed_package_hosts == frozenset({"pkg.example", "b.example"})
    assert (s.ca_bundle, s.forks, s.lease_seconds) == ("/etc/ca.pem", 5, 30.0)
    env = {"FLOY_DB_URL": "sqlite:////tmp/from-env.db", "FLOY_FORKS": "7",
           "FLOY_LEASE_SECONDS": "2.5", "FLOY_ALLOWED_PACKAGE_HOSTS": "x.example, ,y.example"}
    s = load_settings(home=home, environ=env)
    assert (s.db_url, s.forks, s.lease_seconds) == ("sqlite:////tmp/from-env.db", 7, 2.5)
    assert s.allowed_package_hosts == frozenset({"x.example", "y.example"})
    s = load_settings(home=home, db_url="sqlite:////tmp/arg.db", inventory_dir=tmp_path / "i",
                      environ=env)
    assert (s.db_url, s.inventory_dir) == ("sqlite:////tmp/arg.db", tmp_path / "i")


def test_numbers_as_text_in_config_still_work(tmp_path: Path) -> None:
    # as before: a quoted number in config.yml reads like the same text in FLOY_FORKS
    home = _home(tmp_path, {"forks": "4", "lease_seconds": "20"})
    s = load_settings(home=home, environ={})
    assert (s.forks, s.lease_seconds) == (4, 20.0)


@pytest.mark.parametrize(("key", "value", "expected"), [
    ("db_url", ["sqlite://"], "must be a string (a database URL), got a list"),
    ("db_url", 5, "must be a string (a database URL), got 5"),
    ("db_url", None, "must be a string (a database URL), got null"),
    ("inventory_dir", ["a"], "must be a string (a directory path), got a list"),
    ("inventory_dir", {"a": 1}, "must be a string (a directory path), got a mapping"),
    ("playbook_dir", 3, "must be a string (a directory path), got 3"),
    ("ca_bundle", 5, "must be a string (a path to a CA bundle file), got 5"),
    ("ca_bundle", True, "must be a string (a path to a CA bundle file), got true"),
    ("allowed_package_hosts", 5, "must be a list of host names (or one comma-separated "
                                 "string), got 5"),
    ("allowed_package_hosts", {"a": "b"}, "must be a list of host names"),
    ("forks", "many", "must be a whole number of at least 1, got 'many'"),
    ("forks", True, "must be a whole number of at least 1, got true"),
    ("forks", 2.5, "must be a whole number of at least 1, got 2.5"),
    ("forks", 0, "must be a whole number of at least 1, got 0"),
    ("forks", -3, "must be a whole number of at least 1, got -3"),
    ("forks", [1], "must be a whole number of at least 1, got a list"),
    ("lease_seconds", {"a": 1}, "must be a number of seconds from 1 to 86400, got a mapping"),
    ("lease_seconds", math.nan, "must be a number of seconds from 1 to 86400, got nan"),
    ("lease_seconds", math.inf, "got inf"),
    ("lease_seconds", -math.inf, "got -inf"),
    ("lease_seconds", 0, "got 0"),
    ("lease_seconds", -5, "got -5"),
    ("lease_seconds", 0.5, "got 0.5"),
    ("lease_seconds", 10**400, "from 1 to 86400"),
    ("lease_seconds", False, "got false"),
    ("lease_seconds", "soon", "got 'soon'"),
])
def test_a_wrongly_typed_config_value_names_file_and_key(
    tmp_path: Path, key: str, value: object, expected: str
) -> None:
    home = _home(tmp_path, {key: value})
    message = _refused(home)
    assert message.startswith(f"{home / 'config.yml'}: {key} "), message
    assert expected in message


def test_every_config_key_is_type_checked(tmp_path: Path) -> None:
    for key in sorted(CONFIG_KEYS):
        home = tmp_path / key
        home.mkdir()
        (home / "config.yml").write_text(yaml.safe_dump({key: [{"x": 1}]}))
        assert f"config.yml: {key}" in _refused(home), key


def test_a_list_of_hosts_holding_a_mapping_names_the_item(tmp_path: Path) -> None:
    home = _home(tmp_path, {"allowed_package_hosts": ["a.example", {"b": 1}]})
    assert _refused(home) == (f"{home / 'config.yml'}: allowed_package_hosts[1] must be a "
                              "string (a host name), got a mapping")


@pytest.mark.parametrize(("variable", "value", "expected"), [
    ("FLOY_FORKS", "many", "FLOY_FORKS must be a whole number of at least 1, got 'many'"),
    ("FLOY_FORKS", "0", "FLOY_FORKS must be a whole number of at least 1, got '0'"),
    ("FLOY_FORKS", "2.5", "FLOY_FORKS must be a whole number of at least 1, got '2.5'"),
    ("FLOY_LEASE_SECONDS", "nan", "FLOY_LEASE_SECONDS must be a number of seconds from 1 to "
                                  "86400, got 'nan'"),
    ("FLOY_LEASE_SECONDS", "inf", "FLOY_LEASE_SECONDS must be a number of seconds"),
    ("FLOY_LEASE_SECONDS", "-1", "FLOY_LEASE_SECONDS must be a number of seconds"),
    ("FLOY_DB_URL", "not a url", "FLOY_DB_URL is not a database URL"),
])
def test_a_bad_environment_variable_is_named(tmp_path: Path, variable: str, value: str,
                                             expected: str) -> None:
    assert _refused(_home(tmp_path), {variable: value}).startswith(expected)


@pytest.mark.parametrize(("url", "expected"), [
    ("not a url", "db_url is not a database URL (expected e.g. sqlite:///"),
    ("sqlite//x", "db_url is not a database URL"),
    ("", "db_url is not a database URL"),
    ("postgresql://h:port/db", "db_url is not a database URL"),
    ("mysql+nosuch://u:secret@x", "db_url (mysql+nosuch://u:***@x) names an unknown database "
                                  "driver 'mysql+nosuch'"),
    ("http://example.com/db", "db_url (http://example.com/db) names an unknown database "
                               "driver 'http'"),
    ("oracle://u:secret@h/db", "db_url (oracle://u:***@h/db) needs a Python database driver "
                               "that is not installed: No module named"),
])
def test_an_unusable_database_url(url: str, expected: str) -> None:
    with pytest.raises(ConfigError) as err:
        check_db_url(url)
    assert str(err.value).startswith(expected), str(err.value)
    assert "secret" not in str(err.value)


def test_usable_database_urls() -> None:
    for url in ("sqlite:///x.db", "sqlite://", "postgresql+psycopg://u:p@h/db"):
        assert check_db_url(url) == url


def test_an_unparsable_url_with_a_password_is_not_echoed(tmp_path: Path) -> None:
    home = _home(tmp_path, {"db_url": "postgresql//floy:hunter2@db/floy"})
    message = _refused(home)
    assert message.startswith(f"{home / 'config.yml'}: db_url is not a database URL")
    assert "hunter2" not in message


def test_the_db_url_option_is_named(tmp_path: Path) -> None:
    assert _refused(_home(tmp_path), db_url="sqlite//x").startswith(
        "--db-url (or FLOY_DB_URL) is not a database URL")


def test_a_config_that_is_not_utf8(tmp_path: Path) -> None:
    home = _home(tmp_path)
    (home / "config.yml").write_bytes(b"ca_bundle: /etc/caf\xe9.pem\n")
    assert _refused(home) == (f"cannot read {home / 'config.yml'}: not UTF-8 text (byte 19 is "
                              "0xe9); save it as UTF-8")


def test_unknown_keys_of_any_yaml_type(tmp_path: Path) -> None:
    home = _home(tmp_path)
    (home / "config.yml").write_text("1: a\nnull: b\nforkz: 3\n")
    assert _refused(home) == f"{home / 'config.yml'}: unknown setting(s) 1, None, forkz"


@pytest.mark.parametrize(("field", "value"), [
    ("forks", 0), ("lease_seconds", math.nan), ("lease_seconds", math.inf),
    ("lease_seconds", 0.0),
])
def test_settings_built_directly_are_checked_too(tmp_path: Path, field: str,
                                                 value: object) -> None:
    with pytest.raises(ConfigError, match=f"Settings.{field} must be"):
        Settings(home=tmp_path, db_url="sqlite://", inventory_dir=tmp_path,
                 **{field: value})  # type: ignore[arg-type]


def test_json_round_trip(tmp_path: Path) -> None:
    s = load_settings(home=_home(tmp_path), environ={"FLOY_ALLOWED_PACKAGE_HOSTS": "a,b",
                                                     "FLOY_LEASE_SECONDS": "3"})
    assert Settings.from_json(s.to_json()) == s


NODE = {"destination": "floy@10.0.0.5", "identity_file": "keys/id", "known_hosts": "/k/hosts"}


@pytest.mark.parametrize(("nodes", "expected"), [
    ({"n1": "floy@10.0.0.5"}, "nodes.n1 must be a mapping of destination"),
    ({"n1": {**NODE, "user": "x"}}, "nodes.n1: unknown key 'user'"),
    ({"n1": {k: v for k, v in NODE.items() if k != "known_hosts"}},
     "nodes.n1: known_hosts is missing"),
    ({"n1": {**NODE, "port": "22"}}, "nodes.n1.port must be a number, got '22'"),
    ({"n1": {**NODE, "port": True}}, "nodes.n1.port must be a number, got true"),
    ({"n1": {**NODE, "destination": 5}}, "nodes.n1.destination must be a string, got 5"),
])
def test_a_bad_execution_node_names_the_node_and_key(tmp_path: Path, nodes: object,
                                                      expected: str) -> None:
    home = _home(tmp_path, {"nodes": nodes})
    message = _refused(home)
    assert message.startswith(f"{home / 'config.yml'}: nodes"), message
    assert expected in message, message


def test_execution_nodes_resolve_their_paths_and_reach_a_worker(tmp_path: Path) -> None:
    home = _home(tmp_path, {"nodes": {"n1": {**NODE, "port": 2222}}})
    settings = load_settings(home=home, environ={})
    assert settings.nodes == {"n1": {**NODE, "port": 2222,
                                     "identity_file": str(tmp_path / "keys/id"),
                                     "known_hosts": "/k/hosts"}}
    assert Settings.from_json(settings.to_json()).nodes == settings.nodes


# -- the operator inventory directory: where a relative one resolves, and what is refused ------
def _inventory(path: Path) -> Path:
    (path / "group_vars").mkdir(parents=True)
    (path / "group_vars" / "all.yml").write_text("ansible_connection: local\n")
    return path


def test_a_relative_inventory_dir_resolves_against_cwd_from_options_and_variables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = _home(tmp_path, {"inventory_dir": "inv"})
    elsewhere = tmp_path / "work" / "here"
    elsewhere.mkdir(parents=True)
    monkeypatch.chdir(elsewhere)
    # config.yml has no working directory: relative to the home's parent, as before
    s = load_settings(home=home, environ={})
    assert (s.inventory_dir, s.inventory_source) == (tmp_path / "inv",
                                                     f"{home / 'config.yml'}: inventory_dir")
    # a variable or an option was typed somewhere: relative to the working directory
    s = load_settings(home=home, environ={"FLOY_INVENTORY_DIR": "inv"})
    assert (s.inventory_dir, s.inventory_source) == (elsewhere / "inv", "FLOY_INVENTORY_DIR")
    for given in ("../inv", Path("../inv")):
        s = load_settings(home=home, inventory_dir=given, environ={})
        assert s.inventory_dir == (elsewhere / "../inv").absolute()
        assert s.inventory_source == "--inventory-dir (or FLOY_INVENTORY_DIR)"
    # the same rule for the playbook directory's variable
    s = load_settings(home=home, environ={"FLOY_PLAYBOOK_DIR": "pb"})
    assert s.playbook_dir == elsewhere / "pb"
    # ~ and absolute paths are taken as they are
    s = load_settings(home=home, inventory_dir="/abs/inv", environ={})
    assert s.inventory_dir == Path("/abs/inv")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert load_settings(home=home, inventory_dir="~/inv", environ={}).inventory_dir == (
        tmp_path / "inv")


def test_the_default_inventory_dir_is_usable_and_named_as_the_default(tmp_path: Path) -> None:
    s = load_settings(home=_home(tmp_path), environ={}, need_inventory=True)
    assert (s.inventory_dir, s.inventory_source) == (DEFAULT_INVENTORY_DIR,
                                                     "the default inventory_dir")


def test_an_inventory_dir_is_checked_only_when_needed(tmp_path: Path) -> None:
    home = _home(tmp_path)
    missing = tmp_path / "invntory"
    s = load_settings(home=home, inventory_dir=missing, environ={})  # status, versions, ...
    assert s.inventory_dir == missing
    with pytest.raises(ConfigError) as err:
        s.require_inventory()
    assert str(err.value) == (f"--inventory-dir (or FLOY_INVENTORY_DIR) names {missing}, "
                              "which does not exist")
    assert Settings.from_json(s.to_json()).inventory_source == s.inventory_source


@pytest.mark.parametrize(("make", "expected"), [
    (lambda p: None, "which does not exist"),
    (lambda p: p.write_text("not a dir\n"), "which is not a directory"),
    (lambda p: p.mkdir(), "which has no group_vars/ directory"),
    (lambda p: (p / "host_vars").mkdir(parents=True), "which has no group_vars/ directory"),
    (lambda p: (p.mkdir(), (p / "group_vars").write_text("x\n")),
     "which has no group_vars/ directory"),
    (lambda p: (_inventory(p), (p / "host_vars").write_text("x\n")),
     "whose host_vars is not a directory"),
])
def test_an_unusable_inventory_dir_names_the_path_and_where_it_came_from(
    tmp_path: Path, make: Any, expected: str
) -> None:
    inventory = tmp_path / "inventory"
    make(inventory)
    home = _home(tmp_path, {"inventory_dir": "inventory"})
    message = _refused(home, need_inventory=True)
    assert message.startswith(f"{home / 'config.yml'}: inventory_dir names {inventory}, "), message
    assert expected in message, message
    message = _refused(home, {"FLOY_INVENTORY_DIR": str(inventory)}, need_inventory=True)
    assert message.startswith(f"FLOY_INVENTORY_DIR names {inventory}, {expected}"), message


@pytest.mark.parametrize("unreadable", ["", "group_vars", "group_vars/all.yml",
                                        "host_vars/web-1.yml"])
def test_an_unreadable_inventory_dir_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                unreadable: str) -> None:
    # as root nothing is unreadable, so os.access answers for a user who may not read it
    import os

    inventory = _inventory(tmp_path / "inventory")
    (inventory / "host_vars").mkdir()
    (inventory / "host_vars" / "web-1.yml").write_text("ansible_port: 2222\n")
    denied = inventory / unreadable if unreadable else inventory
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode, **kw: (
        Path(path) != denied and real_access(path, mode, **kw)))
    message = _refused(_home(tmp_path), inventory_dir=inventory, need_inventory=True)
    assert message.startswith(f"--inventory-dir (or FLOY_INVENTORY_DIR) names {inventory}, "
                              ), message
    assert f"{denied} is not readable by this user" in message or (
        not unreadable and "which is not readable by this user" in message), message


def test_a_usable_inventory_dir_passes(tmp_path: Path) -> None:
    inventory = _inventory(tmp_path / "inventory")
    (inventory / "host_vars").mkdir()
    (inventory / "host_vars" / "web-1.yml").write_text("ansible_port: 2222\n")
    s = load_settings(home=_home(tmp_path), inventory_dir=inventory, environ={},
                      need_inventory=True)
    assert s.inventory_dir == inventory
