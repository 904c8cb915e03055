"""Bad settings through the floy command: a clear configuration error (exit 6) naming the file
and key, the variable or the option, and what was expected; never an internal error with a
traceback, and never a run recorded under settings that cannot carry it.

Most cases run the console entry point in-process (``orchestrator.cli.main``, the boundary
every error goes through); those that must show a whole ``floy`` process, its detached
worker included, run the installed command.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from orchestrator.cli import main
from orchestrator.models import InstanceSpec
from orchestrator.settings import CONFIG_KEYS
from orchestrator.store import Store
from tests.helpers.store import table_counts

pytestmark = pytest.mark.integration
FLOY = str(Path(sys.executable).with_name("floy"))


@pytest.fixture(autouse=True)
def _no_floy_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("FLOY_"):
            monkeypatch.delenv(name)


def floy(capsys: pytest.CaptureFixture[str], home: Path, *args: str) -> tuple[int, str, str]:
    """Run ``floy --home HOME ARGS`` through the console entry point: (exit code, out, err)."""
    code = 0
    try:
        main(["--home", str(home), *args])
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def run_floy(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the installed ``floy`` command in its own process."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOY_")}
    return subprocess.run([FLOY, "--home", str(home), *args], env=env, capture_output=True,
                          text=True, timeout=120, check=False)


def assert_config_error(code: int, out: str, err: str, *needles: str) -> None:
    """Exit 6, each needle in the message, nothing on stdout, no traceback."""
    assert code == 6, (code, out, err)
    for needle in needles:
        assert needle in err, err
    assert "Traceback" not in err and "internal error" not in err, err
    assert out == ""


def write_config(home: Path, text: str | bytes) -> Path:
    home.mkdir(exist_ok=True)
    path = home / "config.yml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


# -- 1. config.yml that is not UTF-8 -----------------------------------------------------------
def test_a_config_yml_that_is_not_utf8(tmp_path: Path) -> None:
    config = write_config(tmp_path / "home", b"ca_bundle: /etc/ssl/caf\xe9.pem\n")
    proc = run_floy(tmp_path / "home", "versions", "hello")
    assert_config_error(proc.returncode, proc.stdout, proc.stderr,
                        f"cannot read {config}: not UTF-8 text", "save it as UTF-8")


# -- 2. wrongly typed values -------------------------------------------------------------------
TYPE_CASES = [
    ("db_url: [sqlite://]", "db_url", "must be a string (a database URL), got a list"),
    ("db_url:", "db_url", "must be a string (a database URL), got null"),
    ("inventory_dir: [a, b]", "inventory_dir", "must be a string (a directory path)"),
    ("playbook_dir: {a: 1}", "playbook_dir", "must be a string (a directory path)"),
    ("ca_bundle: 5", "ca_bundle", "must be a string (a path to a CA bundle file), got 5"),
    ("allowed_package_hosts: 5", "allowed_package_hosts",
     "must be a list of host names (or one comma-separated string), got 5"),
    ("allowed_package_hosts: [pkg.example, {b: 1}]", "allowed_package_hosts[1]",
     "must be a string (a host name), got a mapping"),
    ("forks: many", "forks", "must be a whole number of at least 1, got 'many'"),
    ("forks: true", "forks", "must be a whole number of at least 1, got true"),
    ("forks: 2.5", "forks", "must be a whole number of at least 1, got 2.5"),
    ("lease_seconds: {a: 1}", "lease_seconds",
     "must be a number of seconds from 1 to 86400, got a mapping"),
    ("lease_seconds: .nan", "lease_seconds", "must be a number of seconds from 1 to 86400, "
     "got nan"),
    ("lease_seconds: .inf", "lease_seconds", "must be a number of seconds from 1 to 86400, "
     "got inf"),
    ("lease_seconds: yes", "lease_seconds", "must be a number of seconds from 1 to 86400, "
     "got true"),
]


@pytest.mark.parametrize(("text", "key", "expected"), TYPE_CASES,
                         ids=[case[0] for case in TYPE_CASES])
def test_a_wrongly_typed_config_value(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                      text: str, key: str, expected: str) -> None:
    config = write_config(tmp_path / "home", text + "\n")
    assert_config_error(*floy(capsys, tmp_path / "home", "versions", "hello"),
                        f"{config}: {key} {expected}")
    assert not (tmp_path / "home" / "floy.db").exists(), "refused before the store is opened"


def test_every_key_gets_a_type_check(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    for key in sorted(CONFIG_KEYS):
        config = write_config(tmp_path / key, yaml.safe_dump({key: [{"x": 1}]}))
        code, out, err = floy(capsys, tmp_path / key, "versions", "hello")
        assert_config_error(code, out, err, f"{config}: {key}", "must be")


@pytest.mark.parametrize(("variable", "value", "expected"), [
    ("FLOY_FORKS", "many", "FLOY_FORKS must be a whole number of at least 1, got 'many'"),
    ("FLOY_LEASE_SECONDS", "nan", "FLOY_LEASE_SECONDS must be a number of seconds from 1 to "
                                  "86400, got 'nan'"),
    ("FLOY_ALLOWED_PACKAGE_HOSTS", "", None),  # empty: not set, as before
])
def test_a_bad_environment_variable(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                    monkeypatch: pytest.MonkeyPatch, variable: str, value: str,
                                    expected: str | None) -> None:
    monkeypatch.setenv(variable, value)
    code, out, err = floy(capsys, tmp_path / "home", "versions", "hello")
    if expected is None:
        assert code == 3 and "service not found: hello" in err, (code, err)
    else:
        assert_config_error(code, out, err, expected)


# -- 3. database URLs that do not parse or name no usable driver -------------------------------
@pytest.mark.parametrize(("url", "expected"), [
    ("not a url", "db_url is not a database URL (expected e.g."),
    ("sqlite//x", "db_url is not a database URL"),
    ("mysql+nosuch://floy@db/floy", "db_url (mysql+nosuch://floy@db/floy) names an unknown "
                                    "database driver 'mysql+nosuch'"),
    ("oracle://floy:secret@db/floy", "db_url (oracle://floy:***@db/floy) needs a Python database "
                                     "driver that is not installed"),
])
def test_an_unusable_db_url_in_config(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                      url: str, expected: str) -> None:
    config = write_config(tmp_path / "home", yaml.safe_dump({"db_url": url}))
    code, out, err = floy(capsys, tmp_path / "home", "versions", "hello")
    assert_config_error(code, out, err, f"{config}: {expected}")
    assert "secret" not in err


@pytest.mark.parametrize("url", ["not a url", "sqlite//x", "mysql+nosuch://x"])
def test_an_unusable_db_url_option(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                   url: str) -> None:
    code, out, err = floy(capsys, tmp_path / "home", "--db-url", url, "status", "d-1")
    assert_config_error(code, out, err, "--db-url (or FLOY_DB_URL)", "database")


def test_an_unusable_db_url_as_json(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _out, err = floy(capsys, tmp_path / "home", "--db-url", "sqlite//x", "status", "d-1",
                           "--json")
    assert code == 6
    assert '"error": "config"' in err and "--db-url (or FLOY_DB_URL) is not a database URL" in err


# -- 4. a lease or forks that cannot carry a run: refused before any run is recorded ------------
@pytest.mark.parametrize("text", [
    "lease_seconds: .nan", "lease_seconds: .inf", "lease_seconds: 0", "lease_seconds: -1",
    "forks: 0", "forks: true", "forks: 2.5",
])
def test_deploy_with_an_unusable_lease_or_forks_records_no_run(tmp_path: Path,
                                                               text: str) -> None:
    home = tmp_path / "home"
    store = Store.open(f"sqlite:///{home / 'floy.db'}")
    store.instances.add([InstanceSpec("hello-1", "hello", "127.0.0.1", 8080, {})])
    store.close()
    config = write_config(home, text + "\n")
    proc = run_floy(home, "deploy", "hello", "1.0.0", "-i", "hello-1", "--url",
                    "https://127.0.0.1:9/hello-1.0.0.tar.gz", "--deploy-id", "d-1", "--json")
    assert_config_error(proc.returncode, proc.stdout, proc.stderr,
                        f"{config}: {text.split(':')[0]} must be")
    store = Store.open(f"sqlite:///{home / 'floy.db'}")
    try:
        assert table_counts(store)["runs"] == 0 and store.runs.get("d-1") is None
    finally:
        store.close()
    assert not (home / "logs").exists(), "no worker was started"


# -- 5. an inventory directory floy cannot use: refused before anything is stored or run ------
# (A mistyped directory used to be accepted: the run had no connection variables, so Ansible
# fell back to SSH and the role to /opt/floy.)
def registered_home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    store = Store.open(f"sqlite:///{home / 'floy.db'}")
    store.instances.add([InstanceSpec("hello-1", "hello", "127.0.0.1", 8080, {})])
    store.close()
    return home


def assert_nothing_stored_or_run(home: Path) -> None:
    store = Store.open(f"sqlite:///{home / 'floy.db'}")
    try:
        counts = table_counts(store)
        assert counts["runs"] == 0 and counts["run_instances"] == 0, counts
    finally:
        store.close()
    assert not (home / "runs").exists(), "no private data dir was made"
    assert not (home / "logs").exists(), "no worker was started"


DEPLOY = ("deploy", "hello", "1.0.0", "-i", "hello-1", "--url",
          "https://127.0.0.1:9/hello-1.0.0.tar.gz", "--deploy-id", "d-1")


@pytest.mark.parametrize(("make", "expected"), [
    (lambda p: None, "which does not exist"),
    (lambda p: p.mkdir(), "which has no group_vars/ directory"),
    (lambda p: p.write_text("[hello]\n"), "which is not a directory"),
])
def test_deploy_with_an_unusable_inventory_dir_records_no_run(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, make: Any, expected: str
) -> None:
    home = registered_home(tmp_path)
    inventory = tmp_path / "invntory"
    make(inventory)
    code, out, err = floy(capsys, home, "--inventory-dir", str(inventory), *DEPLOY)
    assert_config_error(code, out, err,
                        f"--inventory-dir (or FLOY_INVENTORY_DIR) names {inventory}, {expected}")
    assert_nothing_stored_or_run(home)


def test_a_mistyped_inventory_dir_in_the_environment_is_refused_by_every_ansible_command(
    tmp_path: Path
) -> None:
    home = registered_home(tmp_path)
    inventory = tmp_path / "inventory"
    (inventory / "host_vars").mkdir(parents=True)  # host_vars alone: no group_vars
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOY_")}
    env["FLOY_INVENTORY_DIR"] = str(inventory)
    expected = (f"--inventory-dir (or FLOY_INVENTORY_DIR) names {inventory}, which has no "
                "group_vars/ directory")
    for args in [DEPLOY, ("rollback", "instance", "hello-1", "0.9.0"),
                 ("rollback", "batch", "hello", "0.9.0", "--json"), ("refresh", "hello"),
                 ("reap",), ("worker", "--max-runs", "1"), ("serve", "--port", "0")]:
        proc = subprocess.run([FLOY, "--home", str(home), *args], env=env,
                              capture_output=True, text=True, timeout=120, check=False)
        if "--json" in args:
            assert proc.returncode == 6 and '"error": "config"' in proc.stderr, proc.stderr
            assert expected in proc.stderr.replace("\\/", "/"), proc.stderr
        else:
            assert_config_error(proc.returncode, proc.stdout, proc.stderr, expected)
    assert_nothing_stored_or_run(home)
    # commands that only read the store do not need the inventory
    proc = subprocess.run([FLOY, "--home", str(home), "versions", "hello", "--json"], env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0 and '"hello-1"' in proc.stdout, proc.stderr
    # ... but probing first does
    proc = subprocess.run([FLOY, "--home", str(home), "versions", "hello", "--refresh"],
                          env=env, capture_output=True, text=True, timeout=120, check=False)
    assert_config_error(proc.returncode, proc.stdout, proc.stderr, expected)


def test_a_relative_inventory_dir_option_resolves_against_the_working_directory(
    tmp_path: Path
) -> None:
    home = registered_home(tmp_path)
    # a usable inventory beside the home (where relative paths used to resolve) ...
    (tmp_path / "inventory" / "group_vars").mkdir(parents=True)
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOY_")}
    # ... is not what a relative --inventory-dir typed in another directory names
    proc = subprocess.run([FLOY, "--home", str(home), "--inventory-dir", "inventory", *DEPLOY],
                          env=env, cwd=cwd, capture_output=True, text=True, timeout=120,
                          check=False)
    assert_config_error(proc.returncode, proc.stdout, proc.stderr,
                        f"--inventory-dir (or FLOY_INVENTORY_DIR) names {cwd / 'inventory'}, "
                        "which does not exist")
    assert_nothing_stored_or_run(home)


def test_an_inventory_dir_in_config_yml_is_named_with_the_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = registered_home(tmp_path)
    config = write_config(home, "inventory_dir: inventorys\n")
    monkeypatch.chdir(tmp_path / "home")  # config.yml paths do not depend on the cwd
    code, out, err = floy(capsys, home, *DEPLOY)
    assert_config_error(code, out, err, f"{config}: inventory_dir names "
                                        f"{tmp_path / 'inventorys'}, which does not exist")
    assert_nothing_stored_or_run(home)


def test_the_python_api_refuses_to_record_a_run_without_a_usable_inventory(
    tmp_path: Path
) -> None:
    from orchestrator.errors import ConfigError
    from orchestrator.models import DeployParams, InstanceRollbackParams
    from orchestrator.service import open_service

    home = registered_home(tmp_path)
    missing = tmp_path / "nope"
    svc = open_service(str(home), inventory_dir=str(missing))  # reads need no inventory
    try:
        assert svc.get_service_instance_versions("hello").total_instances == 1
        with pytest.raises(ConfigError, match=f"names {missing}, which does not exist"):
            svc.execute_deployment(DeployParams(
                service="hello", version="1.0.0", instances=("hello-1",),
                package_url="https://127.0.0.1:9/hello-1.0.0.tar.gz", deploy_id="d-1"))
        with pytest.raises(ConfigError, match="which does not exist"):
            svc.rollback_instance(InstanceRollbackParams(
                instance_id="hello-1", target_version="0.9.0",
                package_url="https://127.0.0.1:9/hello-0.9.0.tar.gz"))
        with pytest.raises(ConfigError, match="which does not exist"):
            svc.refresh_versions("hello")
    finally:
        svc.store.close()
    assert_nothing_stored_or_run(home)
    with pytest.raises(ConfigError, match="which does not exist"):
        open_service(str(home), inventory_dir=str(missing), need_inventory=True)
