"""The floy command as a user runs it: real processes, JSON output and exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.domain.records import RunInstanceRecord, RunKind, RunRecord
from orchestrator.domain.request import RunRequest
from orchestrator.models import SPEC_KEYS, Status
from orchestrator.store import Store
from orchestrator.timefmt import utcnow
from sample.packages import free_port, stop_apps
from tests.helpers.floyenv import write_inventory
from tests.helpers.wait import wait_until

pytestmark = pytest.mark.integration
FLOY = str(Path(sys.executable).with_name("floy"))


class Cli:
    def __init__(self, tmp: Path, ca_bundle: Path) -> None:
        self.root = tmp / "root"
        self.root.mkdir()
        # PATH without the virtualenv: floy must find its own ansible, as for a user who
        # runs .venv/bin/floy without activating anything.
        self.env = dict(os.environ, PATH="/usr/local/bin:/usr/bin:/bin",
                        FLOY_HOME=str(tmp / "home"),
                        FLOY_INVENTORY_DIR=str(write_inventory(tmp / "inventory", self.root)),
                        FLOY_CA_BUNDLE=str(ca_bundle))

    def __call__(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([FLOY, *args], env=self.env, capture_output=True, text=True,
                              timeout=300, check=False)

    def json(self, *args: str) -> dict[str, object]:
        proc = self(*args, "--json")
        assert proc.returncode in (0, 1), proc.stderr
        return json.loads(proc.stdout)  # type: ignore[no-any-return]


@pytest.fixture
def cli(tmp_path: Path, pki: object) -> Iterator[Cli]:
    c = Cli(tmp_path, pki.ca_bundle)  # type: ignore[attr-defined]
    yield c
    stop_apps(c.root)


def _add(cli: Cli, count: int) -> list[str]:
    ids = []
    for n in range(1, count + 1):
        proc = cli("instances", "add", f"hello-{n}", "--service", "hello", "--host",
                   "127.0.0.1", "--port", str(free_port()), "--meta", f"rack=r{n}")
        assert proc.returncode == 0, proc.stderr
        ids.append(f"hello-{n}")
    return ids


def _keys(obj: dict[str, object], name: str) -> None:
    assert SPEC_KEYS[name] <= set(obj), SPEC_KEYS[name] - set(obj)


def test_instances_and_versions_commands(cli: Cli) -> None:
    _add(cli, 3)
    page = cli.json("instances", "list", "hello", "--limit", "2", "--offset", "1")
    _keys(page, "ServiceInstances")
    assert page["total"] == 3 and page["limit"] == 2 and page["offset"] == 1
    items = page["instances"]
    assert [i["instance_id"] for i in items] == ["hello-2", "hello-3"]  # type: ignore[index]
    assert set(items[0]) == SPEC_KEYS["ServiceInstances.instances[]"]  # type: ignore[index]
    assert items[0]["metadata"] == {"rack": "r2"}  # type: ignore[index]
    versions = cli.json("versions", "hello")
    assert set(versions) == SPEC_KEYS["ServiceVersions"]
    assert versions["total_instances"] == 3 and versions["version_summary"] == {"": 3}


@pytest.mark.parametrize(("args", "code", "needle"), [
    (("status", "no-such-run"), 3, "deployment not found: no-such-run"),
    (("versions", "ghost"), 3, "service not found: ghost"),
    (("status", "bad/id"), 2, "invalid deploy_id"),
    (("instances", "add", "x-1", "--service", "hello", "--host", "bad host", "--port", "80"),
     2, "invalid host"),
    (("instances", "add", "x-1", "--service", "hello", "--host", "h", "--port", "0"),
     2, "invalid port"),
    (("instances", "add", "x-1", "--service", "hello", "--host", "h", "--port", "80",
      "--meta", "ansible_user=root"), 2, "metadata.ansible_user"),
    (("deploy", "hello", "1.0", "-i", "hello-1", "--url", "http://127.0.0.1/p.tgz"),
     2, "invalid package_url"),
    (("deploy", "hello", "../1.0", "-i", "hello-1", "--url", "https://127.0.0.1/p.tgz"),
     2, "invalid version"),
    (("deploy", "hello", "1.0", "-i", "nope-1", "--url", "https://127.0.0.1/p.tgz"),
     2, "unknown instance"),
    (("deploy", "hello", "1.0", "-i", "hello-1", "--url", "https://127.0.0.1/p.tgz",
      "--timeout", "0"), 2, "invalid timeout"),
    (("deploy", "hello", "1.0", "-i", "hello-1", "--url", "https://127.0.0.1/p.tgz",
      "--batch-size", "0%"), 2, "invalid batch_size"),
    (("instances", "list", "hello", "--limit", "0"), 2, "invalid limit"),
    (("nonsense",), 2, "No such command"),
])
def test_errors_have_distinct_exit_codes(cli: Cli, args: tuple[str, ...], code: int,
                                         needle: str) -> None:
    _add(cli, 1)
    proc = cli(*args)
    assert proc.returncode == code, (proc.stdout, proc.stderr)
    assert needle in proc.stderr
    assert proc.stdout == ""
    runs = Path(cli.env["FLOY_HOME"]) / "runs"
    assert not runs.exists(), "nothing ran"


def test_json_errors_are_json(cli: Cli) -> None:
    proc = cli("status", "missing-1", "--json")
    assert proc.returncode == 3
    assert json.loads(proc.stderr) == {"error": "not_found", "message":
                                       "deployment not found: missing-1",
                                       "kind": "deployment", "key": "missing-1"}


def test_duplicate_registration_is_a_conflict(cli: Cli) -> None:
    _add(cli, 1)
    proc = cli("instances", "add", "hello-1", "--service", "hello", "--host", "127.0.0.1",
               "--port", "81")
    assert proc.returncode == 4 and "already registered" in proc.stderr


def test_deploy_follow_detach_and_status(cli: Cli, packages: dict[str, tuple[str, str]]) -> None:
    ids = _add(cli, 2)
    url, sha = packages["1.0.0"]
    proc = cli("deploy", "hello", "1.0.0", "--url", url, "--sha256", sha, "--deploy-id", "c-1")
    assert proc.returncode == 0, proc.stderr
    assert "batch 1/2: hello-1" in proc.stdout and "batch 2/2: hello-2" in proc.stdout
    assert "2/2 completed" in proc.stdout
    status = cli.json("status", "c-1")
    assert set(status) >= SPEC_KEYS["DeployStatus"]
    assert set(status["progress"]) >= SPEC_KEYS["DeployStatus.progress"]  # type: ignore[arg-type]
    for inst in status["instances"]:  # type: ignore[union-attr]
        assert set(inst) >= SPEC_KEYS["DeployStatus.instances[]"]
        assert inst["completed_at"].endswith("Z")
    url2, sha2 = packages["2.0.0"]
    started = cli.json("deploy", "hello", "2.0.0", "--url", url2, "--sha256", sha2,
                       "--deploy-id", "c-2", "--batch-size", "100%", "-i", ",".join(ids))
    assert set(started) == SPEC_KEYS["DeployResult"]
    assert started["status"] in ("pending", "in_progress")
    final = cli.json("status", "c-2", "--watch")
    assert final["status"] == "completed"
    assert cli.json("versions", "hello")["version_summary"] == {"2.0.0": 2}


def test_failed_deploy_exits_one(cli: Cli, packages: dict[str, tuple[str, str]]) -> None:
    _add(cli, 1)
    url, _ = packages["1.0.0"]
    proc = cli("deploy", "hello", "1.0.0", "--url", url, "--sha256", "1" * 64, "--retries", "0",
               "--deploy-id", "c-bad")
    assert proc.returncode == 1
    assert "sha256 mismatch" in proc.stdout
    assert cli("status", "c-bad").returncode == 1


def test_import_from_an_ini_inventory(cli: Cli, tmp_path: Path) -> None:
    inventory = tmp_path / "hosts.ini"
    inventory.write_text("[web]\nweb-1 ansible_host=127.0.0.1 http_port=8001 dc=east\n"
                         "web-2 ansible_host=127.0.0.2 http_port=8002 dc=west\n")
    proc = cli("instances", "import", str(inventory), "--service", "web", "--port-var",
               "http_port", "--meta-var", "dc")
    assert proc.returncode == 0, proc.stderr
    page = cli.json("instances", "list", "web")
    got = {i["instance_id"]: (i["host"], i["port"], i["metadata"])
           for i in page["instances"]}  # type: ignore[union-attr]
    assert got == {"web-1": ("127.0.0.1", 8001, {"dc": "east"}),
                   "web-2": ("127.0.0.2", 8002, {"dc": "west"})}


def test_ctrl_c_while_following_detaches_and_the_run_finishes(
        cli: Cli, packages: dict[str, tuple[str, str]]) -> None:
    import signal

    _add(cli, 1)
    url, _ = packages["9.0.0-hang"]
    proc = subprocess.Popen([FLOY, "deploy", "hello", "9.0.0", "--url", url, "--timeout", "4",
                             "--retries", "0", "--deploy-id", "c-int"],
                            env=cli.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)

    def in_progress() -> bool:  # the run is recorded (exit 0) and a worker carries it
        status = cli("status", "c-int", "--json")
        return status.returncode == 0 and json.loads(status.stdout)["status"] == "in_progress"

    wait_until(in_progress, 30, "c-int in progress", interval=0.2)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, (out, err)
    assert "stopped following c-int" in err and "floy status c-int --watch" in err
    final = cli.json("status", "c-int", "--watch")
    assert final["status"] == "failed", "the worker carried the run to its end"
    assert final["instances"][0]["error_message"].startswith("timed out after 4 s")  # type: ignore[index]


def test_rollback_without_a_version(cli: Cli, packages: dict[str, tuple[str, str]]) -> None:
    ids = _add(cli, 3)
    unknown = cli("rollback", "instance", ids[2])
    assert unknown.returncode == 2, unknown.stderr
    assert unknown.stderr == (
        "floy: invalid target_version: no previous version of 'hello-3' is known (it has no "
        "recorded version: nothing was released there); give the version to roll back to\n")
    as_json = cli("rollback", "instance", ids[2], "--json")
    assert as_json.returncode == 2 and json.loads(as_json.stderr)["field"] == "target_version"
    for version in ("1.0.0", "2.0.0"):
        url, sha = packages[version]
        assert cli("deploy", "hello", version, "--url", url, "--sha256", sha, "-i",
                   f"{ids[0]},{ids[1]}", "--batch-size", "2").returncode == 0
    rolled = cli("rollback", "instance", ids[0], "--rollback-id", "rb-prev")
    assert rolled.returncode == 0, rolled.stderr
    assert rolled.stdout.startswith(
        "rolling hello-1 back to 1.0.0, the version before 2.0.0 (run rb-prev)\n")
    assert cli.json("status", "rb-prev")["version"] == "1.0.0"
    mixed = cli("rollback", "batch", "hello", "-i", f"{ids[0]},{ids[1]}")
    assert mixed.returncode == 2
    assert ("run different versions (1.0.0: hello-1; 2.0.0: hello-2)" in mixed.stderr
            and "give the version to roll back to" in mixed.stderr)
    batch = cli("rollback", "batch", "hello", "-i", ids[1], "--detach")
    assert batch.returncode == 0, batch.stderr
    assert batch.stdout.startswith("rolling 1 instance(s) of hello in batches of 1 back to "
                                   "1.0.0, the version before 2.0.0: run rollback-hello-1.0.0-")
    run_id = batch.stdout.split(": run ")[1].split(";")[0]
    assert cli.json("status", run_id, "--watch")["status"] == "completed"


def test_rollback_cancel_history_refresh_commands(
        cli: Cli, packages: dict[str, tuple[str, str]]) -> None:
    ids = _add(cli, 2)
    for version, run_id in (("1.0.0", "h-1"), ("2.0.0", "h-2")):
        url, sha = packages[version]
        assert cli("deploy", "hello", version, "--url", url, "--sha256", sha, "--batch-size",
                   "2", "--deploy-id", run_id).returncode == 0
    one = cli.json("rollback", "instance", ids[0], "1.0.0", "--rollback-id", "rb-1")
    assert set(one) == SPEC_KEYS["RollbackResult"] and one["rollback_id"] == "rb-1"
    assert cli.json("status", "rb-1", "--watch")["status"] == "completed"
    batch = cli.json("rollback", "batch", "hello", "1.0.0", "--rollback-id", "rb-2")
    assert set(batch) == SPEC_KEYS["BatchRollbackResult"]
    assert batch["instances"] == ids and batch["total_instances"] == 2
    assert cli.json("status", "rb-2", "--watch")["status"] == "completed"
    refused = cli("rollback", "instance", ids[0], "7.7.7")
    assert refused.returncode == 2 and "never completed" in refused.stderr
    gone = cli("rollback", "instance", "ghost-1", "1.0.0")
    assert gone.returncode == 3
    finished = cli("cancel", "h-1")
    assert finished.returncode == 4 and "already finished" in finished.stderr
    assert cli("cancel", "nope-9").returncode == 3
    runs = json.loads(cli("history", "hello", "--json").stdout)
    assert [r["run_id"] for r in runs] == ["rb-2", "rb-1", "h-2", "h-1"]
    assert {r["kind"] for r in runs} == {"deploy", "rollback"}
    assert all(r["created_by"] and r["status"] == "completed" for r in runs)
    text = cli("history", "hello").stdout
    assert "rollback" in text and "h-2" in text
    clean = cli("refresh", "hello", "--json")
    assert clean.returncode == 0, clean.stdout
    assert all(not c["drift"] and c["observed_version"] == "1.0.0"
               for c in json.loads(clean.stdout))
    link = cli.root / "hello" / ids[1] / "current"
    tmp = link.with_name("current.new")
    tmp.symlink_to("releases/2.0.0")
    tmp.replace(link)
    drift = cli("refresh", "hello")
    assert drift.returncode == 1 and "DRIFT" in drift.stdout
    versions = cli("versions", "hello", "--refresh")
    assert versions.returncode == 0 and ids[1] in versions.stderr


def test_cancel_command_while_running(cli: Cli, packages: dict[str, tuple[str, str]]) -> None:
    _add(cli, 1)
    url, _ = packages["9.0.0-hang"]
    assert cli("deploy", "hello", "9.0.0", "--url", url, "--timeout", "120", "--retries", "0",
               "--deploy-id", "cc-1", "--detach").returncode == 0

    def in_progress() -> bool:
        instance = cli.json("status", "cc-1")["instances"][0]  # type: ignore[index]
        return bool(instance["status"] == "in_progress")

    wait_until(in_progress, 60, "the instance of cc-1 in progress", interval=0.2)
    result = cli.json("cancel", "cc-1")
    assert set(result) == SPEC_KEYS["CancelResult"]
    assert result["status"] == "cancelled" and str(result["cancelled_at"]).endswith("Z")
    assert cli("status", "cc-1").returncode == 1, "a cancelled run exits 1"


def test_status_reports_a_lost_worker_and_reap_closes_its_run(cli: Cli) -> None:
    ids = _add(cli, 2)
    store = Store.open(f"sqlite:///{cli.env['FLOY_HOME']}/floy.db")
    try:
        now = utcnow()
        store.runs.create(
            RunRecord("lost-1", RunKind.DEPLOY, "hello", "2.0.0", Status.PENDING,
                      RunRequest(tuple(ids)), "t", now, now),
            [RunInstanceRecord("lost-1", i, n, 1, Status.PENDING, "2.0.0")
             for n, i in enumerate(ids)])
        # its worker, on another machine, stopped renewing the lease long ago
        assert store.leases.acquire("lost-1", "elsewhere:1:dead", -100.0, 1)
    finally:
        store.close()
    first = cli.json("status", "lost-1")
    assert first["status"] == "pending" and "worker lost" in str(first["error_message"])
    assert "closing" in str(first["error_message"])
    assert cli.json("status", "lost-1")["status"] == "pending", "a read never closes it"
    reaped = cli("reap", "--json")
    assert reaped.returncode == 0, reaped.stderr
    assert json.loads(reaped.stdout) == ["lost-1"]
    closed = cli.json("status", "lost-1")
    assert closed["status"] == "failed"
    assert "another machine" in str(closed["error_message"])
    assert [i["status"] for i in closed["instances"]] == ["cancelled", "cancelled"]  # type: ignore[index, union-attr]
    again = cli("reap")
    assert again.returncode == 0 and "no run has lost its worker" in again.stdout
