"""playbooks/deploy.yml run with plain ansible-playbook (no floy code) against local instances.

Each test builds an inventory of instances in group ``hello`` under a temporary
``floy_root`` (with the operator group_vars of inventories/local), runs the
playbook, and checks what a user would check: the files on disk, the app over
HTTP, the processes left behind and the per-instance results.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from sample.packages import free_port, stop_apps
from sample.pkgserver import PackageServer, Pki

REPO = Path(__file__).resolve().parents[2]
PLAYBOOK = REPO / "playbooks" / "deploy.yml"
OPERATOR_GROUP_VARS = REPO / "inventories" / "local" / "group_vars"
VENV_BIN = Path(sys.executable).parent

pytestmark = pytest.mark.integration

_RESULT_LINE = re.compile(r"^(ok|changed|fatal|failed): \[([^\]]+)\](?:: FAILED!)? => (\{.*\})$")
_RECAP_LINE = re.compile(r"^(\S+)\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)")


@dataclass
class PlaybookRun:
    """Outcome of one ansible-playbook run."""

    rc: int
    output: str
    releases: dict[str, dict[str, Any]] = field(default_factory=dict)
    recap: dict[str, dict[str, int]] = field(default_factory=dict)


@dataclass
class Fleet:
    """Local instances of the service ``hello`` under one floy_root."""

    root: Path
    workdir: Path
    ports: dict[str, int]
    ca_bundle: Path

    def instance_dir(self, instance: str) -> Path:
        return self.root / "hello" / instance

    def current(self, instance: str) -> str | None:
        link = self.instance_dir(instance) / "current"
        return os.readlink(link) if link.is_symlink() else None

    def state(self, instance: str) -> dict[str, Any]:
        return json.loads((self.instance_dir(instance) / ".floy" / "state.json").read_text())

    def health(self, instance: str) -> dict[str, Any]:
        url = f"http://127.0.0.1:{self.ports[instance]}/health"
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(url, timeout=5) as response:
            return json.loads(response.read())

    def starts(self, instance: str) -> dict[str, int]:
        """How many times the restart command ran, per version (shared/floy-restart.log)."""
        log = self.instance_dir(instance) / "shared" / "floy-restart.log"
        lines = log.read_text().splitlines() if log.exists() else []
        found = [re.match(r"^--- \S+ floy restart of (\S+) in ", line) for line in lines]
        return dict(Counter(m.group(1) for m in found if m))

    def leftovers(self, instance: str) -> list[str]:
        """Temporary files or directories floy_release left in the instance."""
        found = []
        for directory in ("", "releases", ".floy", ".floy/releases"):
            path = self.instance_dir(instance) / directory
            if path.is_dir():
                found += [
                    f"{directory}/{p.name}" for p in path.iterdir() if p.name.startswith(".floy-")
                ]
        return found

    def run(
        self,
        version: str,
        host_vars: dict[str, dict[str, Any]],
        operator_vars: dict[str, Any] | None = None,
        **extra: Any,
    ) -> PlaybookRun:
        """Run deploy.yml for ``version`` on the instances named in ``host_vars``.

        Package URL and sha256 go in host vars (extra vars would override them for
        every host); ``operator_vars`` are added to the operator's group_vars of the
        service; everything else is an extra var, as floy passes it.
        """
        inventory_dir = self.workdir / "inventory"
        (inventory_dir / "group_vars").mkdir(parents=True, exist_ok=True)
        for source in OPERATOR_GROUP_VARS.glob("*.yml"):
            (inventory_dir / "group_vars" / source.name).write_text(source.read_text())
        if operator_vars:
            with (inventory_dir / "group_vars" / "hello.yml").open("a") as fh:
                fh.write(yaml.safe_dump(operator_vars))
        hosts = {
            name: {"floy_instance_id": name, "floy_instance_port": self.ports[name], **values}
            for name, values in host_vars.items()
        }
        inventory = {"all": {"children": {"hello": {"hosts": hosts}}}}
        (inventory_dir / "hosts.yml").write_text(yaml.safe_dump(inventory))
        extra_vars = {
            "floy_service": "hello",
            "floy_version": version,
            "floy_root": str(self.root),
            "floy_ca_bundle": str(self.ca_bundle),
            "floy_retry_delay": 0,
            "floy_health_timeout": 5,
            "floy_timeout": 60,
            **extra,
        }
        vars_file = self.workdir / "vars.yml"
        vars_file.write_text(yaml.safe_dump(extra_vars))
        env = {
            **os.environ,
            "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            "ANSIBLE_CONFIG": str(REPO / "playbooks" / "ansible.cfg"),
            "ANSIBLE_CALLBACK_RESULT_FORMAT": "json",
            "ANSIBLE_CALLBACK_FORMAT_PRETTY": "false",
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_LOCAL_TEMP": str(self.workdir / "ansible-tmp"),
            "ANSIBLE_REMOTE_TEMP": str(self.workdir / "ansible-tmp"),
        }
        proc = subprocess.run(
            [
                str(VENV_BIN / "ansible-playbook"),
                "-i",
                str(inventory_dir / "hosts.yml"),
                str(PLAYBOOK),
                "-e",
                f"@{vars_file}",
                "-v",
            ],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        return _parse(proc.returncode, proc.stdout + proc.stderr)


def _parse(rc: int, output: str) -> PlaybookRun:
    run = PlaybookRun(rc=rc, output=output)
    in_release_task = False
    for line in output.splitlines():
        if line.startswith("TASK ["):
            in_release_task = line.startswith("TASK [floy.release.floy : Release ")
            continue
        if in_release_task and (match := _RESULT_LINE.match(line)):
            run.releases[match.group(2)] = json.loads(match.group(3))
        elif match := _RECAP_LINE.match(line):
            keys = ("ok", "changed", "unreachable", "failed")
            run.recap[match.group(1)] = {
                k: int(v) for k, v in zip(keys, match.groups()[1:], strict=True)
            }
    return run


@pytest.fixture
def fleet(tmp_path: Path, pki: Pki) -> Iterator[Fleet]:
    """Three instances h1..h3 of ``hello`` on free ports; their apps are killed afterwards."""
    root = tmp_path / "floy"
    fleet = Fleet(
        root=root,
        workdir=tmp_path,
        ports={name: free_port() for name in ("h1", "h2", "h3")},
        ca_bundle=pki.ca_bundle,
    )
    yield fleet
    stop_apps(root)


def _all(fleet: Fleet, package: tuple[str, str], names: tuple[str, ...] = ("h1", "h2", "h3")):
    url, sha = package
    return {name: {"floy_package_url": url, "floy_package_sha256": sha} for name in names}


def test_deploy_upgrade_and_rerun(fleet: Fleet, packages: dict[str, tuple[str, str]]) -> None:
    first = fleet.run("1.0.0", _all(fleet, packages["1.0.0"]), floy_deploy_id="d-1")
    assert first.rc == 0, first.output
    for name in ("h1", "h2", "h3"):
        assert fleet.current(name) == "releases/1.0.0"
        assert fleet.health(name) == {"status": "ok", "version": "1.0.0"}
        assert first.releases[name]["downloaded"] is True

    second = fleet.run("2.0.0", _all(fleet, packages["2.0.0"]), floy_deploy_id="d-2")
    assert second.rc == 0, second.output
    for name in ("h1", "h2", "h3"):
        assert fleet.current(name) == "releases/2.0.0"
        assert fleet.health(name)["version"] == "2.0.0"
        state = fleet.state(name)
        assert state["version"] == "2.0.0"
        assert state["previous_version"] == "1.0.0"
        assert state["deploy_id"] == "d-2"
        assert state["sha256"] == packages["2.0.0"][1]
        assert state["updated_at"].endswith("Z")
        record = json.loads((fleet.instance_dir(name) / ".floy/releases/2.0.0.json").read_text())
        assert record["sha256"] == packages["2.0.0"][1]
        result = second.releases[name]
        assert result["phase"] == "done"
        assert result["current_version"] == "2.0.0"
        assert result["previous_version"] == "1.0.0"
        assert fleet.leftovers(name) == []

    third = fleet.run("2.0.0", _all(fleet, packages["2.0.0"]), floy_deploy_id="d-3")
    assert third.rc == 0, third.output
    assert all(counts["changed"] == 0 for counts in third.recap.values()), third.output
    assert {r["downloaded"] for r in third.releases.values()} == {False}
    assert fleet.state("h1")["deploy_id"] == "d-2"


def test_bad_package_fails_only_that_instance(
    fleet: Fleet, packages: dict[str, tuple[str, str]], package_server: PackageServer
) -> None:
    assert fleet.run("1.0.0", _all(fleet, packages["1.0.0"])).rc == 0
    host_vars = _all(fleet, packages["2.0.0"])
    host_vars["h2"]["floy_package_url"] = package_server.url("hello-2.0.0-missing.tar.gz")
    host_vars["h3"]["floy_package_sha256"] = "0" * 64

    run = fleet.run("2.0.0", host_vars, floy_batch_size=3, floy_max_failures=3)

    assert run.rc != 0
    assert fleet.current("h1") == "releases/2.0.0"
    assert run.releases["h2"]["msg"] == (
        "download failed: HTTP 404 Not Found for "
        + package_server.url("hello-2.0.0-missing.tar.gz")
    )
    assert run.releases["h2"]["retryable"] is False
    assert run.releases["h3"]["msg"].startswith(f"sha256 mismatch: expected {'0' * 64}, got ")
    assert run.releases["h3"]["retryable"] is False
    for name in ("h2", "h3"):
        assert run.releases[name]["phase"] == "fetch"
        assert run.releases[name]["attempts"] == 1  # not retryable: no retry
        assert fleet.current(name) == "releases/1.0.0"
        assert fleet.health(name)["version"] == "1.0.0"
        assert fleet.state(name)["version"] == "1.0.0"
        assert not (fleet.instance_dir(name) / "releases" / "2.0.0").exists()
        assert fleet.leftovers(name) == []
        assert run.recap[name]["failed"] == 1  # the report play


def test_crash_switches_back(fleet: Fleet, packages: dict[str, tuple[str, str]]) -> None:
    assert fleet.run("1.0.0", _all(fleet, packages["1.0.0"], ("h1",))).rc == 0

    run = fleet.run(
        "9.0.0",
        _all(fleet, packages["9.0.0-crash"], ("h1",)),
        floy_health_timeout=2,
        floy_retry_count=0,
    )

    assert run.rc != 0
    result = run.releases["h1"]
    assert result["msg"].startswith("health check failed: ")
    assert result["msg"].endswith("; switched back to 1.0.0")
    assert result["retryable"] is False  # a release that does not come up is not retried
    assert result["phase"] == "switch_back"
    assert result["current_version"] == "1.0.0"
    assert fleet.current("h1") == "releases/1.0.0"
    assert fleet.health("h1")["version"] == "1.0.0"
    assert not (fleet.instance_dir("h1") / "releases" / "9.0.0").exists()
    assert not (fleet.instance_dir("h1") / ".floy" / "releases" / "9.0.0.json").exists()
    assert fleet.state("h1")["version"] == "1.0.0"


def test_hang_times_out_and_leaves_no_process(
    fleet: Fleet, packages: dict[str, tuple[str, str]]
) -> None:
    assert fleet.run("1.0.0", _all(fleet, packages["1.0.0"], ("h1",))).rc == 0

    run = fleet.run(
        "9.0.0", _all(fleet, packages["9.0.0-hang"], ("h1",)), floy_timeout=5, floy_retry_count=2
    )

    assert run.rc != 0
    result = run.releases["h1"]
    assert re.match(r"^timed out after 5 s( \(.*\))?$", result["msg"]), result["msg"]
    assert result["retryable"] is False
    assert result["attempts"] == 1  # a timeout is not retried
    pgrep = subprocess.run(["pgrep", "-f", "floy-hang-h1"], capture_output=True, text=True)
    assert pgrep.returncode == 1, pgrep.stdout
    assert fleet.current("h1") == "releases/1.0.0"
    assert fleet.health("h1")["version"] == "1.0.0"


def test_flaky_download_is_retried(
    fleet: Fleet,
    packages: dict[str, tuple[str, str]],
    package_server: PackageServer,
) -> None:
    key = f"k1-{fleet.workdir.name}"
    url = f"{package_server.base_url}/flaky/{key}/2/pkgs/hello-1.0.0.tar.gz"
    host_vars = {"h1": {"floy_package_url": url, "floy_package_sha256": packages["1.0.0"][1]}}

    run = fleet.run("1.0.0", host_vars, floy_retry_count=3)

    assert run.rc == 0, run.output
    assert run.releases["h1"]["attempts"] == 3
    assert package_server.request_count(f"/flaky/{key}/") == 3
    assert fleet.health("h1")["version"] == "1.0.0"
    assert fleet.starts("h1") == {"1.0.0": 1}, "a failed fetch restarts nothing"


def test_retry_count_is_the_number_of_retries(
    fleet: Fleet,
    packages: dict[str, tuple[str, str]],
    package_server: PackageServer,
) -> None:
    key = f"k2-{fleet.workdir.name}"
    url = f"{package_server.base_url}/flaky/{key}/5/pkgs/hello-1.0.0.tar.gz"

    run = fleet.run("1.0.0", {"h1": {"floy_package_url": url}}, floy_retry_count=1)

    assert run.rc != 0
    # retries: 1 gives 2 attempts (ansible-core 2.19 reports `attempts` as retries then).
    assert package_server.request_count(f"/flaky/{key}/") == 2
    assert run.releases["h1"]["msg"].startswith("download failed: HTTP 503 ")
    assert fleet.current("h1") is None
    assert fleet.leftovers("h1") == []


def test_failure_budget_stops_later_batches(
    fleet: Fleet, packages: dict[str, tuple[str, str]], package_server: PackageServer
) -> None:
    host_vars = _all(fleet, packages["1.0.0"])
    host_vars["h1"]["floy_package_url"] = package_server.url("nothing-here.tar.gz")

    run = fleet.run("1.0.0", host_vars, floy_batch_size=1, floy_max_failures=0)

    assert run.rc != 0
    assert run.releases["h1"]["msg"].startswith("download failed: HTTP 404")
    assert set(run.releases) == {"h1"}
    for name in ("h2", "h3"):
        assert not fleet.instance_dir(name).exists()


def _task_results(run: PlaybookRun, task: str) -> dict[str, dict[str, Any]]:
    """The results of the task named ``task`` (any play), by host."""
    found: dict[str, dict[str, Any]] = {}
    current = ""
    for line in run.output.splitlines():
        if line.startswith("TASK ["):
            current = line[len("TASK ["):].split("]", 1)[0]
        elif current == task and (match := _RESULT_LINE.match(line)):
            found[match.group(2)] = json.loads(match.group(3))
    return found


BUDGET_REPORT = "Report the instances not started because the failure budget was spent"


def test_the_output_names_the_instances_the_failure_budget_left_unstarted(
    fleet: Fleet, packages: dict[str, tuple[str, str]], package_server: PackageServer
) -> None:
    """What an AWX user reads in the job output: which instances were not started and why,
    not only skipped=1 in the recap."""
    host_vars = _all(fleet, packages["1.0.0"])
    for name in ("h1", "h2"):
        host_vars[name]["floy_package_url"] = package_server.url("nothing-here.tar.gz")

    run = fleet.run("1.0.0", host_vars, floy_batch_size=1, floy_max_failures=1)

    assert run.rc != 0
    assert set(run.releases) == {"h1", "h2"}, run.output  # within the budget, h2 started
    assert not fleet.instance_dir("h3").exists()
    (report,) = _task_results(run, BUDGET_REPORT).values()  # once, not per instance
    assert report["msg"] == (
        "failure budget exhausted: 2 instance(s) failed (h1, h2), more than "
        "floy_max_failures=1 allows; no further batch was started, so 1 instance(s) were not "
        "started: h3"), run.output
    # the failed instances still fail the job, each with its own reason
    assert run.recap["h1"]["failed"] == 1 and run.recap["h2"]["failed"] == 1
    assert run.recap["h3"]["failed"] == 0


def test_no_budget_report_when_every_batch_started(
    fleet: Fleet, packages: dict[str, tuple[str, str]], package_server: PackageServer
) -> None:
    host_vars = _all(fleet, packages["1.0.0"])
    host_vars["h3"]["floy_package_url"] = package_server.url("nothing-here.tar.gz")

    # the last batch fails past the budget: nothing was left unstarted
    run = fleet.run("1.0.0", host_vars, floy_batch_size=1, floy_max_failures=0)

    assert run.rc != 0 and set(run.releases) == {"h1", "h2", "h3"}
    assert _task_results(run, BUDGET_REPORT) == {}
    assert "failure budget exhausted" not in run.output


@pytest.mark.parametrize(("extra", "expected"), [
    ({"floy_batch_size": "abc"}, 'floy_batch_size must be a number of instances from 1 to '
                                 '1000000 (5) or a percentage from 1% to 100% (25%), got "abc"'),
    ({"floy_batch_size": "0"}, 'got "0"'),
    ({"floy_batch_size": "150%"}, 'got "150%"'),
    ({"floy_batch_size": "2.5"}, 'got "2.5"'),
    ({"floy_batch_size": ""}, 'got ""'),
    ({"floy_max_failures": -1}, 'floy_max_failures must be a whole number of at least 0, '
                                'got "-1"'),
])
def test_bad_batching_inputs_stop_before_the_first_batch(
    fleet: Fleet, packages: dict[str, tuple[str, str]], extra: dict[str, Any], expected: str
) -> None:
    """Ansible's serial crashes on text ("this is probably a bug") and takes 0, -1 or 150%
    silently: the survey's free-text batch size is checked first, with a clear message."""
    run = fleet.run("1.0.0", _all(fleet, packages["1.0.0"]), **extra)
    assert run.rc != 0
    assert expected in run.output, run.output
    assert "probably a bug" not in run.output
    assert run.releases == {} and not fleet.root.exists()


@pytest.mark.parametrize("batch_size", ["2", "05", "34%", 2])
def test_any_count_or_percentage_is_a_batch_size(
    fleet: Fleet, packages: dict[str, tuple[str, str]], batch_size: str | int
) -> None:
    run = fleet.run("1.0.0", _all(fleet, packages["1.0.0"]), floy_batch_size=batch_size)
    assert run.rc == 0, run.output
    assert all(fleet.current(name) == "releases/1.0.0" for name in ("h1", "h2", "h3"))


# -- health failures of a new release are not retried; transient faults are, without a second
# download (floy issue 13: a broken release with --retries 3 was restarted 9 times).


def _counted_url(package_server: PackageServer, fleet: Fleet, tag: str, filename: str) -> str:
    """A URL of ``filename`` whose requests only this test makes (a flaky key, 0 failures)."""
    return f"{package_server.base_url}/flaky/{tag}-{fleet.workdir.name}/0/pkgs/{filename}"


def _downloads(package_server: PackageServer, url: str) -> int:
    """Requests so far of a URL made by :func:`_counted_url`."""
    return package_server.request_count(urllib.parse.urlsplit(url).path)


def test_an_unhealthy_release_is_started_once_whatever_the_retries(
    fleet: Fleet, packages: dict[str, tuple[str, str]], package_server: PackageServer
) -> None:
    assert fleet.run("1.0.0", _all(fleet, packages["1.0.0"], ("h1",))).rc == 0
    url = _counted_url(package_server, fleet, "unhealthy", "hello-9.0.0-unhealthy.tar.gz")
    sha = packages["9.0.0-unhealthy"][1]

    run = fleet.run("9.0.0", {"h1": {"floy_package_url": url, "floy_package_sha256": sha}},
                    floy_retry_count=3, floy_health_timeout=2)

    assert run.rc != 0
    result = run.releases["h1"]
    assert result["msg"].startswith("health check failed: "), result["msg"]
    assert "answered HTTP 500" in result["msg"]
    assert result["msg"].endswith("; switched back to 1.0.0")
    assert result["retryable"] is False
    assert result["attempts"] == 1, "retries 3, yet one attempt"
    assert result["health_attempts"] == 1
    assert fleet.starts("h1") == {"1.0.0": 2, "9.0.0": 1}, "9.0.0 once, then 1.0.0 once again"
    assert _downloads(package_server, url) == 1, "downloaded once"
    assert fleet.current("h1") == "releases/1.0.0"
    assert fleet.health("h1")["version"] == "1.0.0"
    assert fleet.state("h1")["version"] == "1.0.0"
    assert run.recap["h1"]["failed"] == 1
    assert "health check failed: " in run.output.split("PLAY [Report failed instances]")[1]


def test_health_retries_restart_the_new_release_in_place(
    fleet: Fleet, packages: dict[str, tuple[str, str]], package_server: PackageServer
) -> None:
    """floy_health_retries, an operator setting (group_vars): more starts of the new release,
    in place, then one switch back; still one download and one attempt of the task."""
    assert fleet.run("1.0.0", _all(fleet, packages["1.0.0"], ("h1",))).rc == 0
    url = _counted_url(package_server, fleet, "health-retries", "hello-9.0.0-unhealthy.tar.gz")
    sha = packages["9.0.0-unhealthy"][1]

    run = fleet.run("9.0.0", {"h1": {"floy_package_url": url, "floy_package_sha256": sha}},
                    operator_vars={"floy_health_retries": 2},
                    floy_retry_count=3, floy_health_timeout=1)

    assert run.rc != 0
    result = run.releases["h1"]
    assert result["msg"].startswith("health check failed: "), result["msg"]
    assert result["msg"].endswith(" (started 3 times); switched back to 1.0.0")
    assert (result["health_attempts"], result["attempts"], result["retryable"]) == (3, 1, False)
    assert fleet.starts("h1") == {"1.0.0": 2, "9.0.0": 3}, "never switched back in between"
    assert _downloads(package_server, url) == 1
    assert fleet.current("h1") == "releases/1.0.0"
    assert fleet.health("h1")["version"] == "1.0.0"


def test_health_retries_bring_up_a_slow_starter(
    fleet: Fleet, packages: dict[str, tuple[str, str]]
) -> None:
    """A restart command that fails on its first start comes up on the second, in place."""
    assert fleet.run("1.0.0", _all(fleet, packages["1.0.0"], ("h1",))).rc == 0
    first_fails = (
        'if [ ! -e "$FLOY_SHARED_DIR/started-once" ]; then '
        'touch "$FLOY_SHARED_DIR/started-once"; exit 1; fi; exec bin/restart'
    )

    run = fleet.run("2.0.0", _all(fleet, packages["2.0.0"], ("h1",)),
                    operator_vars={"floy_health_retries": 1}, floy_restart_command=first_fails)

    assert run.rc == 0, run.output
    result = run.releases["h1"]
    assert result["msg"] == "released 2.0.0 (was 1.0.0)"
    assert (result["health_attempts"], result["downloaded"]) == (2, True)
    assert fleet.starts("h1") == {"1.0.0": 1, "2.0.0": 2}
    assert fleet.health("h1")["version"] == "2.0.0"


def test_a_retry_after_the_download_does_not_download_again(
    fleet: Fleet, packages: dict[str, tuple[str, str]], package_server: PackageServer
) -> None:
    """The module dies after it installed and switched (its restart command SIGKILLs it, as
    an OOM kill or a lost host would): the task retries, and the retry reuses the complete
    releases/2.0.0 instead of fetching it again."""
    assert fleet.run("1.0.0", _all(fleet, packages["1.0.0"], ("h1",))).rc == 0
    url = _counted_url(package_server, fleet, "killed", "hello-2.0.0.tar.gz")
    kill_once = (
        'if [ ! -e "$FLOY_SHARED_DIR/killed-once" ]; then '
        'touch "$FLOY_SHARED_DIR/killed-once"; kill -KILL "$PPID"; exit 1; fi; exec bin/restart'
    )

    run = fleet.run(
        "2.0.0",
        {"h1": {"floy_package_url": url, "floy_package_sha256": packages["2.0.0"][1]}},
        floy_retry_count=3, floy_restart_command=kill_once,
    )

    assert run.rc == 0, run.output
    result = run.releases["h1"]
    assert result["attempts"] == 2
    assert result["downloaded"] is False, "the retry reused releases/2.0.0"
    assert result["current_version"] == "2.0.0"
    assert _downloads(package_server, url) == 1, "downloaded once"
    assert fleet.starts("h1") == {"1.0.0": 1, "2.0.0": 2}
    assert fleet.health("h1")["version"] == "2.0.0"
    state = fleet.state("h1")
    assert (state["version"], state["previous_version"]) == ("2.0.0", "1.0.0")
    assert fleet.leftovers("h1") == []
