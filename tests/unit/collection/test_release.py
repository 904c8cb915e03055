"""floy_release's phases in-process, on real instance directories: validation, the lock,
install and the record, the switch and the switch back, pruning, and a whole release from
the real HTTPS package server. What it leaves on disk is read back with floy_probe."""

from __future__ import annotations

import http.server
import os
import signal
import threading
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sample.pkgserver import PackageServer
from tests.unit.collection._collection import fake_module, plugin

layout_mod = plugin("module_utils.floy_layout")
cancel_mod = plugin("module_utils.floy_cancel")
floy_release = plugin("modules.floy_release")
floy_probe = plugin("modules.floy_probe")
ReleaseError = floy_release.ReleaseError


@pytest.fixture
def instance_dir(tmp_path: Path) -> str:
    return str(tmp_path / "hello" / "hello-1")


@pytest.fixture
def make(instance_dir: str) -> Iterator[Any]:
    """Build a Release of hello-1 (its lock is released when the test ends, as at exit)."""
    made: list[Any] = []

    def build(version: str, check_mode: bool = False, **params: Any) -> Any:
        values = {"instance_dir": instance_dir, "service": "hello", "instance_id": "hello-1",
                  "version": version, **params}
        release = floy_release.Release(fake_module(floy_release, check_mode, **values))
        made.append(release)
        return release

    yield build
    for release in made:
        if release.lock_fd is not None:
            os.close(release.lock_fd)


def run(release: Any) -> dict[str, Any]:
    """``Release.run`` as main() calls it, the lock released at the end like at exit."""
    try:
        result: dict[str, Any] = release.run()
        return result
    finally:
        release.cleanup_temp()
        if release.lock_fd is not None:
            os.close(release.lock_fd)
            release.lock_fd = None


def preinstall(instance_dir: str, *versions: str) -> Any:
    """Complete releases as floy_release leaves them (the record, then the directory)."""
    layout = layout_mod.InstanceLayout(instance_dir)
    layout_mod.make_directories(layout)
    for number, version in enumerate(versions):
        layout_mod.write_json_atomic(layout.record_path(version), {
            "version": version, "package_url": "", "sha256": "",
            "installed_at": f"2026-01-01T00:00:{number:02d}Z"})
        os.makedirs(layout.release_dir(version))
    return layout


# -- validate --------------------------------------------------------------------------------


@pytest.mark.parametrize(("params", "needle"), [
    ({"version": "../x"}, "invalid version '../x'"),
    ({"version": "1..2"}, "must not contain '..'"),
    ({"instance_id": ".hidden"}, "invalid instance_id"),
    ({"timeout": 0}, "invalid timeout 0"),
    ({"port": 70000}, "invalid port 70000"),
    ({"keep_releases": 0}, "invalid keep_releases 0"),
    ({"max_archive_entries": 0}, "must be positive"),
    ({"package_sha256": "abc"}, "expected 64 hex digits"),
    ({"health_path": "health"}, "must start with '/'"),
    ({"package_url": "http://pkgs.example/x.tar.gz"}, "https"),
])
def test_validate_refuses_bad_input(make: Any, params: dict[str, Any], needle: str) -> None:
    version = params.pop("version", "1.0.0")
    release = make(version, **params)
    with pytest.raises(ReleaseError) as caught:
        release.validate()
    assert needle.lower() in caught.value.msg.lower()
    assert caught.value.retryable is False


def test_validate_normalises_the_sha256(make: Any) -> None:
    release = make("1.0.0", package_sha256="  " + "AB" * 32 + " ")
    release.validate()
    assert release.p["package_sha256"] == "ab" * 32


# -- prepare: the lock and the leftovers ------------------------------------------------------


def test_prepare_creates_the_layout_and_clears_leftovers(make: Any, instance_dir: str) -> None:
    layout = preinstall(instance_dir, "1.0.0")
    for directory in layout.temp_directories():
        Path(directory, ".floy-left").write_text("x")
    release = make("1.0.0")
    release.prepare_dirs()
    assert all(os.path.isdir(d) for d in layout.directories())
    assert not [n for d in layout.temp_directories() for n in os.listdir(d)
                if n.startswith(".floy-")]
    assert layout_mod.is_complete(layout, "1.0.0")


def test_a_second_release_waits_for_the_lock_then_gives_up(make: Any) -> None:
    first = make("1.0.0")
    first.prepare_dirs()
    second = make("1.0.0", timeout=1)
    started = time.monotonic()
    with pytest.raises(ReleaseError, match="another floy release is still running") as caught:
        second.prepare_dirs()
    assert caught.value.retryable is True
    assert 0.9 <= time.monotonic() - started < 10  # bounded by the deadline, not LOCK_WAIT


def test_check_mode_touches_nothing(make: Any, instance_dir: str) -> None:
    result = run(make("1.0.0", check_mode=True, package_url="https://pkgs.example/h.tar.gz"))
    assert result["changed"] is True and result["msg"] == "would release 1.0.0 (current: none)"
    assert not os.path.exists(instance_dir)


# -- install, switch, prune -------------------------------------------------------------------


def test_switching_to_an_installed_release_needs_no_package(make: Any,
                                                            instance_dir: str) -> None:
    layout = preinstall(instance_dir, "1.0.0", "2.0.0")
    layout_mod.switch_current(layout, "releases/1.0.0")
    result = run(make("2.0.0", deploy_id="d-2"))
    assert result["msg"] == "released 2.0.0 (was 1.0.0)"
    assert (result["current_version"], result["previous_version"]) == ("2.0.0", "1.0.0")
    assert result["downloaded"] is False and result["phase"] == "done"
    state = layout_mod.read_json(layout.state_path)
    assert (state["version"], state["previous_version"], state["deploy_id"]) == (
        "2.0.0", "1.0.0", "d-2")
    probed = floy_probe.probe(instance_dir)
    assert probed["current_version"] == "2.0.0" and probed["releases"] == ["1.0.0", "2.0.0"]
    assert probed["state"] == state


def test_the_current_healthy_version_is_left_alone(make: Any, instance_dir: str) -> None:
    layout = preinstall(instance_dir, "1.0.0")
    layout_mod.switch_current(layout, "releases/1.0.0")
    result = run(make("1.0.0"))
    assert result["changed"] is False
    assert result["msg"] == "1.0.0 is already current and healthy"


def test_a_version_not_installed_needs_a_url(make: Any, instance_dir: str) -> None:
    preinstall(instance_dir, "1.0.0")
    with pytest.raises(ReleaseError, match="not installed on this instance and no package_url"):
        run(make("3.0.0"))


def test_an_incomplete_release_is_not_reused(make: Any, instance_dir: str) -> None:
    layout = preinstall(instance_dir)
    os.makedirs(layout.release_dir("1.0.0"))  # no record: not complete
    with pytest.raises(ReleaseError, match="not installed on this instance"):
        run(make("1.0.0"))


def test_a_failed_restart_switches_back(make: Any, instance_dir: str) -> None:
    layout = preinstall(instance_dir, "1.0.0")
    layout_mod.switch_current(layout, "releases/1.0.0")
    layout_mod.write_json_atomic(layout.state_path, {"version": "1.0.0", "deploy_id": "d-1"})
    os.makedirs(layout.release_dir("2.0.0"))
    layout_mod.write_record(layout, "2.0.0", "", "")
    release = make("2.0.0", restart_command='test "$FLOY_VERSION" = 1.0.0')
    with pytest.raises(ReleaseError) as caught:
        run(release)
    # The release is at fault: switched back once, not worth running the module again.
    assert caught.value.retryable is False
    assert release.health_attempts == 1
    assert caught.value.msg.startswith("restart command failed with exit status 1 for 2.0.0")
    assert caught.value.msg.endswith("switched back to 1.0.0")
    assert os.readlink(layout.current_link) == "releases/1.0.0"
    assert layout_mod.read_json(layout.state_path) == {"version": "1.0.0", "deploy_id": "d-1"}
    assert not os.path.exists(layout.restart_record_path)
    log = Path(layout.restart_log_path).read_text()
    assert "floy restart of 2.0.0" in log and "floy restart of 1.0.0" in log


def _starts(layout: Any) -> dict[str, int]:
    """How many times the restart command ran for each version (floy-restart.log)."""
    log = Path(layout.restart_log_path).read_text()
    return {v: log.count(f"floy restart of {v} ") for v in ("1.0.0", "2.0.0")}


def _on_1_with_2_installed(instance_dir: str) -> Any:
    layout = preinstall(instance_dir, "1.0.0", "2.0.0")
    layout_mod.switch_current(layout, "releases/1.0.0")
    layout_mod.write_json_atomic(layout.state_path, {"version": "1.0.0", "deploy_id": "d-1"})
    return layout


@pytest.fixture
def serves_1() -> Iterator[int]:
    """A port whose app answers ``{"version": "1.0.0"}`` whatever runs: 2.0.0 never comes up."""
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b'{"status": "ok", "version": "1.0.0"}'
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            """Quiet."""

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_a_failed_health_check_switches_back_once_and_is_not_retryable(
    make: Any, instance_dir: str, serves_1: int
) -> None:
    layout = _on_1_with_2_installed(instance_dir)
    release = make("2.0.0", restart_command="true", port=serves_1, health_timeout=1,
                   health_expect='"version": "2.0.0"', health_retry_delay=0)
    with pytest.raises(ReleaseError) as caught:
        run(release)
    assert caught.value.msg.startswith("health check failed: http://127.0.0.1:")
    assert caught.value.msg.endswith("; switched back to 1.0.0")
    assert "started" not in caught.value.msg
    assert caught.value.retryable is False
    assert release.health_attempts == 1
    assert _starts(layout) == {"2.0.0": 1, "1.0.0": 1}
    assert os.readlink(layout.current_link) == "releases/1.0.0"
    assert layout_mod.read_json(layout.state_path) == {"version": "1.0.0", "deploy_id": "d-1"}


# A restart command that fails for 2.0.0 until its ``ok_from``-th start (counted in shared/).
_FLAKY_START = (
    'n=$(cat "$FLOY_SHARED_DIR/starts" 2>/dev/null || echo 0); n=$((n + 1)); '
    'echo "$n" > "$FLOY_SHARED_DIR/starts"; '
    'test "$FLOY_VERSION" = 1.0.0 || test "$n" -ge {ok_from}'
)


def test_health_retries_restart_the_new_release_in_place(make: Any, instance_dir: str) -> None:
    layout = _on_1_with_2_installed(instance_dir)
    release = make("2.0.0", restart_command=_FLAKY_START.format(ok_from=3),
                   health_retries=3, health_retry_delay=0)
    result = run(release)
    assert result["msg"] == "released 2.0.0 (was 1.0.0)"
    assert result["health_attempts"] == 3 and result["downloaded"] is False
    assert _starts(layout) == {"2.0.0": 3, "1.0.0": 0}, "never switched back in between"
    assert os.readlink(layout.current_link) == "releases/2.0.0"


def test_health_retries_used_up_switch_back_once(make: Any, instance_dir: str) -> None:
    layout = _on_1_with_2_installed(instance_dir)
    release = make("2.0.0", restart_command=_FLAKY_START.format(ok_from=99),
                   health_retries=1, health_retry_delay=0)
    with pytest.raises(ReleaseError) as caught:
        run(release)
    assert caught.value.msg.startswith("restart command failed with exit status 1 for 2.0.0")
    assert caught.value.msg.endswith(" (started 2 times); switched back to 1.0.0")
    assert caught.value.retryable is False
    assert _starts(layout) == {"2.0.0": 2, "1.0.0": 1}
    assert os.readlink(layout.current_link) == "releases/1.0.0"


@pytest.mark.parametrize(("params", "needle"), [
    ({"health_retries": -1}, "invalid health_retries -1"),
    ({"health_retry_delay": -1}, "health_retry_delay -1"),
])
def test_validate_refuses_negative_health_retries(make: Any, params: dict[str, Any],
                                                  needle: str) -> None:
    with pytest.raises(ReleaseError, match=needle):
        make("1.0.0", **params).validate()


def test_a_cancel_keeps_the_release_it_unpacked_for_the_retry(
    make: Any, instance_dir: str, packages: dict[str, tuple[str, str]],
    package_server: PackageServer,
) -> None:
    """A cancel (or a lost controller over SSH: the same SIGTERM) switches back but keeps the
    complete release it downloaded: the retry after an unreachable host reuses it."""
    ca = str(package_server.ca_bundle)
    url1, sha1 = packages["1.0.0"]
    run(make("1.0.0", package_url=url1, package_sha256=sha1, ca_bundle=ca, restart_command="true"))
    url2, sha2 = packages["2.0.0"]
    # The restart command of 2.0.0 cancels the release: SIGTERM to its parent, this process.
    cancel_2 = 'if [ "$FLOY_VERSION" = 2.0.0 ]; then kill -TERM "$PPID"; sleep 5; fi'
    previous = signal.signal(signal.SIGTERM, cancel_mod.on_sigterm)
    try:
        with pytest.raises(ReleaseError) as caught:
            run(make("2.0.0", package_url=url2, package_sha256=sha2, ca_bundle=ca,
                     restart_command=cancel_2))
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert caught.value.msg == "cancelled while restart; switched back to 1.0.0"
    layout = layout_mod.InstanceLayout(instance_dir)
    assert os.readlink(layout.current_link) == "releases/1.0.0"
    assert layout_mod.complete_record(layout, "2.0.0")["sha256"] == sha2

    before = package_server.request_count(urllib.parse.urlsplit(url2).path)
    again = run(make("2.0.0", package_url=url2, package_sha256=sha2, ca_bundle=ca,
                     restart_command="true"))
    assert again["msg"] == "released 2.0.0 (was 1.0.0)" and again["downloaded"] is False
    assert package_server.request_count(urllib.parse.urlsplit(url2).path) == before


def test_a_failed_start_of_a_fresh_release_removes_it(
    make: Any, instance_dir: str, packages: dict[str, tuple[str, str]],
    package_server: PackageServer,
) -> None:
    """Unlike a cancel, a release that did not come up is removed: a fixed package published
    under the same version is downloaded next time, not the broken one reused."""
    ca = str(package_server.ca_bundle)
    url1, sha1 = packages["1.0.0"]
    run(make("1.0.0", package_url=url1, package_sha256=sha1, ca_bundle=ca, restart_command="true"))
    url2, sha2 = packages["2.0.0"]
    with pytest.raises(ReleaseError, match=r"switched back to 1\.0\.0"):
        run(make("2.0.0", package_url=url2, package_sha256=sha2, ca_bundle=ca,
                 restart_command='test "$FLOY_VERSION" = 1.0.0'))
    layout = layout_mod.InstanceLayout(instance_dir)
    assert not os.path.exists(layout.release_dir("2.0.0"))
    assert layout_mod.read_record(layout, "2.0.0") is None


def test_prune_keeps_current_previous_and_the_newest_complete(make: Any,
                                                               instance_dir: str) -> None:
    layout = preinstall(instance_dir, "1.0.0", "2.0.0", "3.0.0", "4.0.0", "5.0.0")
    os.makedirs(layout.release_dir("6.0.0"))  # incomplete: always pruned
    release = make("5.0.0", keep_releases=3)
    release.prepare_dirs()
    assert sorted(release.prune({"5.0.0", "1.0.0"})) == ["2.0.0", "3.0.0", "6.0.0"]
    assert sorted(layout_mod.release_names(layout)) == ["1.0.0", "4.0.0", "5.0.0"]
    assert sorted(os.listdir(layout.records_dir)) == ["1.0.0.json", "4.0.0.json", "5.0.0.json"]


# -- a whole release over HTTPS ---------------------------------------------------------------


def test_release_then_roll_back_from_the_package_server(
    make: Any, instance_dir: str, packages: dict[str, tuple[str, str]],
    package_server: PackageServer,
) -> None:
    ca = str(package_server.ca_bundle)
    for version, was in (("1.0.0", None), ("2.0.0", "1.0.0")):
        url, sha = packages[version]
        result = run(make(version, package_url=url, package_sha256=sha, ca_bundle=ca))
        assert result["downloaded"] is True and result["sha256"] == sha
        assert result["msg"] == f"released {version}" + (f" (was {was})" if was else "")
    layout = layout_mod.InstanceLayout(instance_dir)
    record = layout_mod.complete_record(layout, "2.0.0")
    assert (record["package_url"], record["sha256"]) == packages["2.0.0"]
    assert os.path.isfile(os.path.join(layout.release_dir("2.0.0"), "bin", "restart"))

    back = run(make("1.0.0", ca_bundle=ca))  # installed: no URL, no download
    assert back["downloaded"] is False and back["msg"] == "released 1.0.0 (was 2.0.0)"
    probed = floy_probe.probe(instance_dir)
    assert probed["current_version"] == "1.0.0"
    assert probed["releases"] == ["1.0.0", "2.0.0"] and probed["incomplete"] == []
    assert probed["state"]["previous_version"] == "2.0.0"
    leftovers = [n for d in layout.temp_directories() for n in os.listdir(d)
                 if n.startswith(".floy-")]
    assert leftovers == []
