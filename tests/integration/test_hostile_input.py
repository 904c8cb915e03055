"""Hostile values from everywhere floy reads: inventories, the store, the hosts, the history.

Each case puts one hostile value where floy takes input in (an inventory host, a stored
error message, a directory name on an instance, a recorded package URL) and checks that it
is refused or shown harmlessly, with one error naming the field, and that nothing is stored
and nothing runs.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from orchestrator.ansible.importer import read_inventory_group
from orchestrator.domain.events import InstanceUpdate
from orchestrator.domain.records import RunInstanceRecord, RunRecord
from orchestrator.domain.request import RunRequest
from orchestrator.engine.autorollback import start_automatic
from orchestrator.engine.executors import ProcessExecutor
from orchestrator.errors import ConfigError, ValidationError
from orchestrator.models import BatchRollbackParams, InstanceRollbackParams, InstanceSpec, Status
from orchestrator.service import FloyDeployService, new_deploy_service
from orchestrator.settings import load_settings
from orchestrator.store import Store
from orchestrator.timefmt import utcnow
from sample.packages import free_port, stop_apps
from tests.helpers.floyenv import FloyEnv, reconfigured, write_inventory
from tests.helpers.store import table_counts

pytestmark = pytest.mark.integration
FLOY = str(Path(sys.executable).with_name("floy"))
TITLE = "\x1b]0;pwned\x07"  # set the window title
ERASE = "\x1b[2J"  # clear the screen
CLIPBOARD = "\x1b]52;c;cm0gLXJmIH4K\x07"  # OSC 52: write "rm -rf ~" to the clipboard
RAW = ("\x1b", "\x07", "\x9b")


@dataclass
class Home:
    """A floy home with an operator inventory, a store, a service and a CLI environment."""

    tmp: Path
    root: Path
    store: Store
    service: FloyDeployService
    env: dict[str, str]

    def floy(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run([FLOY, *args], env=self.env, capture_output=True, text=True,
                              timeout=timeout, check=False)

    def nothing_ran(self) -> bool:
        home = Path(self.env["FLOY_HOME"])
        return not (home / "runs").exists() and not (home / "logs").exists()


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Home]:
    root = tmp_path / "root"
    root.mkdir()
    inventory = write_inventory(tmp_path / "inventory", root)
    settings = load_settings(home=tmp_path / "home", inventory_dir=inventory, environ={})
    store = Store.open(settings.db_url)
    service = new_deploy_service(logging.getLogger("test"), ProcessExecutor(settings, store), store,
                                 settings)
    env = dict(os.environ, PATH="/usr/local/bin:/usr/bin:/bin",
               FLOY_HOME=str(tmp_path / "home"), FLOY_INVENTORY_DIR=str(inventory))
    env.pop("FLOY_ALLOWED_PACKAGE_HOSTS", None)
    yield Home(tmp_path, root, store, service, env)
    store.close()
    stop_apps(root)


# -- inventories: ansible_host and ports ---------------------------------------------------------
GOOD_HOST = {"ansible_host": "127.0.0.1", "http_port": 8001}

IMPORT_CASES = [
    ("zone-proxycommand", {"ansible_host": "::1%x -oProxyCommand=touch${IFS}pwned"},
     "web-2.ansible_host", "zone"),
    ("zone-zero-width", {"ansible_host": "::1%\u200b"}, "web-2.ansible_host", "U+200B"),
    ("zero-width-space", {"ansible_host": "web\u200b.example.com"}, "web-2.ansible_host",
     "U+200B"),
    ("bom", {"ansible_host": "\ufeff127.0.0.1"}, "web-2.ansible_host", "U+FEFF"),
    ("word-joiner", {"ansible_host": "127.0.0.1\u2060"}, "web-2.ansible_host", "U+2060"),
    ("host-not-a-string", {"ansible_host": True}, "web-2.ansible_host", "string"),
    ("port-bool", {"http_port": True}, "web-2.http_port", "not bool"),
    ("port-float", {"http_port": 8080.9}, "web-2.http_port", "not float"),
    ("port-string", {"http_port": "8080"}, "web-2.http_port", "not str"),
    ("port-zero", {"http_port": 0}, "web-2.http_port", "between 1 and 65535"),
    ("port-huge", {"http_port": 70000}, "web-2.http_port", "between 1 and 65535"),
    ("instance-reserved", {"name": "localhost"}, "instance_id", "reserved by Ansible"),
]


@pytest.mark.parametrize(("changes", "field", "needle"), [c[1:] for c in IMPORT_CASES],
                         ids=[c[0] for c in IMPORT_CASES])
def test_import_refuses_a_hostile_host(home: Home, changes: dict[str, Any], field: str,
                                       needle: str) -> None:
    """The second host is bad: one error naming it, and the first is not stored either."""
    second = {**GOOD_HOST, "http_port": 8002, **changes}
    name = str(second.pop("name", "web-2"))
    inventory = home.tmp / "hosts.yml"
    inventory.write_text(yaml.safe_dump(
        {"all": {"children": {"web": {"hosts": {"web-1": GOOD_HOST, name: second}}}}},
        allow_unicode=True))
    proc = home.floy("instances", "import", str(inventory), "--service", "web",
                     "--port-var", "http_port")
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert f"invalid {field}: " in proc.stderr and needle in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    assert table_counts(home.store)["instances"] == 0, "nothing stored"
    with pytest.raises(ValidationError) as err:
        read_inventory_group(inventory, "web", "web", "http_port", ())
    assert err.value.field == field


@pytest.mark.parametrize("host", ["::1%x -oProxyCommand=touch${IFS}pwned", "::1%\u200b",
                                  "web\u200b.example.com", "\ufeff127.0.0.1", "10.0.0.1\u2060"])
def test_instances_add_refuses_a_hostile_host(home: Home, host: str) -> None:
    proc = home.floy("instances", "add", "web-1", "--service", "web", "--host", host,
                     "--port", "8080")
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert proc.stderr.startswith("floy: invalid host: "), proc.stderr
    assert table_counts(home.store)["instances"] == 0


def test_import_of_a_hanging_inventory_script_times_out(home: Home) -> None:
    script = home.tmp / "slow-inventory.sh"
    script.write_text("#!/bin/sh\nsleep 60\necho '{}'\n")
    script.chmod(0o755)
    started = time.monotonic()
    proc = home.floy("instances", "import", str(script), "--service", "web", "--timeout", "2",
                     timeout=60)
    took = time.monotonic() - started
    assert proc.returncode == 6, (proc.stdout, proc.stderr)
    assert f"did not finish reading {script} within 2 s" in proc.stderr, proc.stderr
    assert "--timeout" in proc.stderr and "Traceback" not in proc.stderr
    assert took < 30, took
    time.sleep(0.2)
    left = [pid for pid in os.listdir("/proc") if pid.isdigit() and _cmdline_has(pid, script)]
    assert left == [], "the script was stopped with ansible-inventory"
    assert table_counts(home.store)["instances"] == 0


@pytest.mark.parametrize("value", ["0", "-1", "3601", "nan", "soon"])
def test_import_refuses_a_bad_timeout(home: Home, value: str) -> None:
    """The import's own --timeout: one error naming the option, exit 2, nothing run."""
    script = home.tmp / "never-run.sh"
    marker = home.tmp / "ran"
    script.write_text(f"#!/bin/sh\ntouch {marker}\necho '{{}}'\n")
    script.chmod(0o755)
    proc = home.floy("instances", "import", str(script), "--service", "web", "--timeout", value)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert "timeout" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert not marker.exists(), "the inventory was read"
    assert table_counts(home.store)["instances"] == 0


def _cmdline_has(pid: str, path: Path) -> bool:
    try:
        return str(path).encode() in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


@pytest.mark.parametrize("output", ["not json at all", "[1, 2]", ""])
def test_import_refuses_output_that_is_no_json_object(home: Home, output: str) -> None:
    fake = home.tmp / "fake-ansible-inventory"
    fake.write_text(f"#!/bin/sh\nprintf '%s' '{output}'\n")
    fake.chmod(0o755)
    inventory = home.tmp / "hosts.ini"
    inventory.write_text("[web]\nweb-1 http_port=8001\n")
    with pytest.raises(ConfigError) as err:
        read_inventory_group(inventory, "web", "web", "http_port", (), program=str(fake))
    assert str(inventory) in str(err.value) and "ansible-inventory printed" in str(err.value)


# -- stored strings shown on a terminal -------------------------------------------------------
def test_status_shows_stored_escapes_as_text_and_json_keeps_them(home: Home) -> None:
    instance_error = f"health check failed{TITLE}{ERASE}{CLIPBOARD}\x9b2J\u202eok"
    run_error = f"1 of 1 instances failed{TITLE}\nansible said{ERASE}"
    bad_version = f"1.0{ERASE}"
    home.store.instances.add([InstanceSpec("hello-1", "hello", "127.0.0.1", free_port(),
                                           {"note": "zero\u200bwidth"})])
    now = utcnow()
    run = RunRecord("esc-1", "deploy", "hello", "2.0.0", Status.PENDING,
                    RunRequest(("hello-1",)), f"eve{TITLE}", now, now)
    home.store.runs.create(run, [RunInstanceRecord("esc-1", "hello-1", 0, 1, Status.PENDING,
                                                  "2.0.0")])
    # what older releases, a bypassed check or a hostile host could have left in the store
    home.store.runs.apply_updates("esc-1", [InstanceUpdate(
        "hello-1", status=Status.FAILED, error_message=instance_error, completed_at=now,
        current_version=bad_version)])
    home.store.runs.set_status("esc-1", Status.FAILED, error_message=run_error, finished=True)

    text = home.floy("status", "esc-1")
    assert text.returncode == 1, text.stderr
    assert "health check failed\\x1b]0;pwned\\x07\\x1b[2J\\x1b]52;" in text.stdout
    assert "error: 1 of 1 instances failed\\x1b]0;pwned\\x07\n" in text.stdout
    for args in (("history", "hello"), ("versions", "hello"), ("instances", "list", "hello")):
        other = home.floy(*args)
        assert other.returncode == 0, other.stderr
        assert "\\x1b" in other.stdout or "\\u200b" in other.stdout, other.stdout
        assert not any(ch in other.stdout for ch in RAW), (args, other.stdout)
    for out in (text.stdout, text.stderr):
        assert not any(ch in out for ch in (*RAW, "\u202e")), repr(out)

    as_json = home.floy("status", "esc-1", "--json")
    data = json.loads(as_json.stdout)
    assert data["instances"][0]["error_message"] == instance_error, "JSON is exact"
    assert data["instances"][0]["current_version"] == bad_version
    assert data["error_message"] == run_error


def test_error_messages_show_escapes_as_text(home: Home) -> None:
    proc = home.floy("instances", "import", f"/nonexistent/{TITLE}{ERASE}.ini", "--service",
                     "web")
    assert proc.returncode == 2
    assert "/nonexistent/\\x1b]0;pwned\\x07\\x1b[2J.ini does not exist" in proc.stderr
    assert not any(ch in proc.stderr for ch in RAW), repr(proc.stderr)
    unknown = home.floy(f"nonsense{TITLE}")
    assert unknown.returncode == 2 and "No such command" in unknown.stderr
    assert not any(ch in unknown.stderr for ch in RAW), repr(unknown.stderr)


# -- what a probe reads back from a host ---------------------------------------------------------
@pytest.mark.parametrize("evil", ["{{ lookup('pipe','id') }}", f"1.0{TITLE}"])
def test_refresh_never_adopts_a_hostile_release_name(floy_env: FloyEnv, evil: str) -> None:
    """A restart command made ``releases/<evil>`` and pointed ``current`` at it."""
    env = floy_env
    ids = env.register(2)
    for instance_id, version in zip(ids, (evil, "2.0.0"), strict=True):
        base = env.root / "hello" / instance_id
        (base / "releases" / version).mkdir(parents=True)
        (base / "current").symlink_to(f"releases/{version}")
    checks = {c.instance_id: c for c in env.service.refresh_versions("hello", adopt=True)}
    hostile, fine = checks[ids[0]], checks[ids[1]]
    assert hostile.drift and not hostile.adopted and hostile.observed_version == evil
    assert hostile.error.startswith("invalid current_version: "), hostile.error
    assert fine.adopted and fine.observed_version == "2.0.0"
    records = env.store.instances.get(ids)
    assert records[ids[0]].version == "" and records[ids[0]].observed_version is None
    assert records[ids[1]].version == "2.0.0"

    cli_env = dict(os.environ, PATH="/usr/local/bin:/usr/bin:/bin", FLOY_HOME=str(env.home),
                   FLOY_INVENTORY_DIR=str(env.settings.inventory_dir))
    refresh = subprocess.run([FLOY, "refresh", "hello", "--adopt"], env=cli_env,
                             capture_output=True, text=True, timeout=120, check=False)
    assert refresh.returncode == 1, "drift that was not adopted"
    assert "DRIFT" in refresh.stdout and "invalid current_version" in refresh.stdout
    assert not any(ch in refresh.stdout for ch in RAW), repr(refresh.stdout)
    versions = subprocess.run([FLOY, "versions", "hello", "--json"], env=cli_env,
                              capture_output=True, text=True, timeout=60, check=False)
    assert json.loads(versions.stdout)["version_summary"] == {"": 1, "2.0.0": 1}


# -- recorded package URLs and today's policy ----------------------------------------------------
OLD_MIRROR = "https://old-mirror.example/pkgs/hello-1.0.0.tar.gz"
ALLOWED_URL = "https://127.0.0.1:8443/pkgs/hello-1.0.0.tar.gz"


def _history(home: Home, urls: dict[str, str], version: str = "1.0.0") -> None:
    """Instances that completed ``version`` from these URLs, then moved on to 2.0.0."""
    home.store.instances.add([InstanceSpec(i, "hello", "127.0.0.1", free_port(), {})
                              for i in urls])
    now = utcnow()
    run = RunRecord(f"old-{version}", "deploy", "hello", version, Status.PENDING,
                    RunRequest(tuple(urls)), "test", now, now)
    home.store.runs.create(run, [RunInstanceRecord(run.run_id, i, n, 1, Status.PENDING, version)
                                for n, i in enumerate(urls)])
    home.store.runs.apply_updates(run.run_id, [InstanceUpdate(
        i, status=Status.COMPLETED, current_version="2.0.0", completed_at=now,
        release={"version": version, "package_url": url, "sha256": ""})
        for i, url in urls.items()])
    home.store.runs.set_status(run.run_id, Status.COMPLETED, finished=True)


def _allow(home: Home, host: str) -> None:
    home.service = reconfigured(home.service, allowed_package_hosts=frozenset({host}))
    home.env["FLOY_ALLOWED_PACKAGE_HOSTS"] = host


def test_rollback_refuses_a_recorded_url_the_policy_no_longer_allows(home: Home) -> None:
    _history(home, {"hello-1": ALLOWED_URL, "hello-2": OLD_MIRROR})
    _allow(home, "127.0.0.1")
    before = table_counts(home.store)
    with pytest.raises(ValidationError) as err:
        home.service.rollback_batch(BatchRollbackParams(
            service="hello", target_version="1.0.0", instances=("hello-1", "hello-2")))
    assert err.value.field == "instances[1]"
    assert "old-mirror.example" in err.value.reason and "no longer allowed" in err.value.reason
    assert "give package_url" in err.value.reason
    with pytest.raises(ValidationError) as single:
        home.service.rollback_instance(InstanceRollbackParams("hello-2", "1.0.0"))
    assert "no longer allowed" in single.value.reason
    proc = home.floy("rollback", "batch", "hello", "1.0.0", "--detach")
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert "invalid instances[1]: " in proc.stderr and "no longer allowed" in proc.stderr
    assert table_counts(home.store) == before and home.nothing_ran()


def test_rollback_refuses_a_recorded_url_that_is_not_https(home: Home) -> None:
    _history(home, {"hello-1": "http://127.0.0.1/pkgs/hello-1.0.0.tar.gz"})
    with pytest.raises(ValidationError) as err:
        home.service.rollback_instance(InstanceRollbackParams("hello-1", "1.0.0"))
    assert "https://" in err.value.reason and "no longer allowed" in err.value.reason
    assert home.nothing_ran()


def test_auto_rollback_drops_a_recorded_url_the_policy_no_longer_allows(home: Home) -> None:
    _history(home, {"hello-1": ALLOWED_URL, "hello-2": OLD_MIRROR})
    now = utcnow()
    deploy = RunRecord("d-2", "deploy", "hello", "2.0.0", Status.IN_PROGRESS,
                       RunRequest(("hello-1", "hello-2"), auto_rollback=True), "test",
                       now, now)
    members = [RunInstanceRecord("d-2", i, n, 1, Status.COMPLETED, "2.0.0",
                                 previous_version="1.0.0", current_version="2.0.0")
               for n, i in enumerate(("hello-1", "hello-2"))]
    home.store.runs.create(deploy, members)
    assert home.store.leases.acquire("d-2", "w", 30, 1)
    run_id, note = start_automatic(home.store, deploy, members,
                                   allowed_hosts=frozenset({"127.0.0.1"}), owner="w")
    assert run_id is not None
    assert "no longer allowed" in note and "hello-2" in note, note
    loaded = home.store.runs.with_members(run_id)
    assert loaded is not None
    urls = {m.instance_id: m.package_url for m in loaded[1]}
    assert urls == {"hello-1": ALLOWED_URL, "hello-2": ""}
