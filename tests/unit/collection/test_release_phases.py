"""floy_release's ansistrano-style options in-process, on real instance directories: a
release split into phases (the role does that around hooks), shared paths and files, a
package file already on the host, and the rollback to the previous release."""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
from pathlib import Path
from typing import Any

import pytest

from tests.unit.collection._collection import plugin
from tests.unit.collection.test_release import instance_dir, make, preinstall, run

__all__ = ["instance_dir", "make"]  # fixtures shared with test_release

layout_mod = plugin("module_utils.floy_layout")
floy_release = plugin("modules.floy_release")
ReleaseError = floy_release.ReleaseError


def package(path: Path, version: str, extra: dict[str, str] | None = None) -> str:
    """A .tar.gz package of ``version`` at ``path``; its sha256."""
    files = {"VERSION": version, "config/app.yml": "packaged\n", "logs/keep": "x",
             **(extra or {})}
    with tarfile.open(path, "w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return hashlib.sha256(path.read_bytes()).hexdigest()


def releases(instance: str) -> list[str]:
    return sorted(n for n in os.listdir(Path(instance, "releases")) if not n.startswith("."))


# -- package_path ---------------------------------------------------------------------------


def test_a_package_file_on_the_host_is_checked_and_installed(
        make: Any, instance_dir: str, tmp_path: Path) -> None:
    sha = package(tmp_path / "pkg", "1.0.0")
    result = run(make("1.0.0", package_path=str(tmp_path / "pkg"), package_sha256=sha))
    assert (result["current_version"], result["sha256"], result["msg"]) == (
        "1.0.0", sha, "released 1.0.0")
    assert Path(instance_dir, "current", "VERSION").read_text() == "1.0.0"
    assert (tmp_path / "pkg").exists(), "the file given is the caller's: never removed"
    record = layout_mod.read_record(layout_mod.InstanceLayout(instance_dir), "1.0.0")
    assert (record["package_url"], record["sha256"]) == ("", sha)


def test_a_package_file_with_another_sha256_is_refused(
        make: Any, instance_dir: str, tmp_path: Path) -> None:
    package(tmp_path / "pkg", "1.0.0")
    with pytest.raises(ReleaseError, match="sha256 mismatch: expected 0000"):
        run(make("1.0.0", package_path=str(tmp_path / "pkg"), package_sha256="0" * 64))
    assert releases(instance_dir) == []


@pytest.mark.parametrize(("params", "needle"), [
    ({"package_url": "https://p.example/x.tar.gz", "package_path": "/tmp/x"},
     "give package_url or package_path, not both"),
    ({"phases": ["switch", "fetch"]}, "invalid phases switch, fetch"),
    ({"phases": ["fetch", "cleanup"]}, "cleanup follows a switch"),
    ({"version": "", "to_previous": False}, "version is required"),
    ({"shared_paths": ["../etc"]}, "invalid shared_paths entry '../etc'"),
    ({"shared_paths": ["/var/log"]}, "must be relative"),
    ({"shared_files": ["a/./b"]}, "invalid shared_files entry"),
    ({"shared_paths": ["logs"], "shared_files": ["logs/"]}, "logs is listed twice"),
])
def test_bad_new_options_are_refused_before_anything_runs(
        make: Any, instance_dir: str, params: dict[str, Any], needle: str) -> None:
    release = make(params.pop("version", "1.0.0"), **params)
    with pytest.raises(ReleaseError) as caught:
        run(release)
    assert needle in caught.value.msg
    assert not os.path.exists(instance_dir)


# -- phases ---------------------------------------------------------------------------------


def test_phases_run_apart_do_what_one_run_does(
        make: Any, instance_dir: str, tmp_path: Path) -> None:
    for number in range(1, 4):
        package(tmp_path / f"p{number}", f"{number}.0.0")
        run(make(f"{number}.0.0", package_path=str(tmp_path / f"p{number}"), keep_releases=1))
    assert releases(instance_dir) == ["2.0.0", "3.0.0"]

    package(tmp_path / "p4", "4.0.0")
    fetched = run(make("4.0.0", package_path=str(tmp_path / "p4"), phases=["fetch"],
                       final=False))
    assert (fetched["msg"], fetched["current_version"], fetched["final"]) == (
        "fetched 4.0.0", "3.0.0", False)
    assert os.readlink(Path(instance_dir, "current")) == "releases/3.0.0", "nothing switched"
    again = run(make("4.0.0", package_path=str(tmp_path / "p4"), phases=["fetch"]))
    assert again["msg"] == "4.0.0 is installed already" and again["changed"] is False

    switched = run(make("4.0.0", phases=["switch"], keep_releases=1, final=False))
    assert (switched["current_version"], switched["previous_version"]) == ("4.0.0", "3.0.0")
    assert releases(instance_dir) == ["2.0.0", "3.0.0", "4.0.0"], "no cleanup in switch"

    cleaned = run(make("4.0.0", phases=["cleanup"], keep_releases=1))
    assert cleaned["msg"] == "pruned 2.0.0" and cleaned["final"] is True
    assert releases(instance_dir) == ["3.0.0", "4.0.0"]

    reported = run(make("4.0.0", phases=[]))
    assert (reported["changed"], reported["current_version"]) == (False, "4.0.0")


def test_a_switch_without_its_fetch_changes_nothing(make: Any, instance_dir: str) -> None:
    layout = preinstall(instance_dir, "1.0.0")
    layout_mod.switch_current(layout, "releases/1.0.0")
    with pytest.raises(ReleaseError, match=r"release 2\.0\.0 is not complete on this instance: "
                                           r"run the fetch phase first"):
        run(make("2.0.0", phases=["switch", "cleanup"],
                 package_url="https://p.example/2.tar.gz"))
    assert os.readlink(layout.current_link) == "releases/1.0.0"


# -- shared paths and files -----------------------------------------------------------------


def test_shared_paths_and_files_are_linked_into_each_release(
        make: Any, instance_dir: str, tmp_path: Path) -> None:
    shared = {"shared_paths": ["logs", "var/uploads"], "shared_files": ["config/app.yml"]}
    package(tmp_path / "p1", "1.0.0")
    run(make("1.0.0", package_path=str(tmp_path / "p1"), **shared))
    current = Path(instance_dir, "current")
    assert os.readlink(current / "logs") == "../../shared/logs"
    assert os.readlink(current / "var" / "uploads") == "../../../shared/var/uploads"
    assert os.readlink(current / "config" / "app.yml") == "../../../shared/config/app.yml"
    assert Path(instance_dir, "shared", "var", "uploads").is_dir()
    assert not Path(instance_dir, "shared", "config", "app.yml").exists(), "files: not made"
    Path(instance_dir, "shared", "config", "app.yml").write_text("operator's\n")
    (current / "logs" / "app.log").write_text("day 1\n")

    package(tmp_path / "p2", "2.0.0")
    run(make("2.0.0", package_path=str(tmp_path / "p2"), **shared))
    assert (current / "config" / "app.yml").read_text() == "operator's\n"
    assert (current / "logs" / "app.log").read_text() == "day 1\n", "kept across releases"


def test_a_shared_path_through_a_packaged_symlink_is_refused(
        make: Any, instance_dir: str, tmp_path: Path) -> None:
    path = tmp_path / "pkg"
    with tarfile.open(path, "w:gz") as tar:
        link = tarfile.TarInfo("config")
        link.type, link.linkname = tarfile.SYMTYPE, "data"
        tar.addfile(link)
        folder = tarfile.TarInfo("data")
        folder.type = tarfile.DIRTYPE
        tar.addfile(folder)
    with pytest.raises(ReleaseError, match=r"release path .*config is not a directory"):
        run(make("1.0.0", package_path=str(path), shared_files=["config/app.yml"]))
    assert releases(instance_dir) == []


# -- to_previous ----------------------------------------------------------------------------


def test_to_previous_releases_the_version_before_the_current_one(
        make: Any, instance_dir: str, tmp_path: Path) -> None:
    for number in (1, 2):
        package(tmp_path / f"p{number}", f"{number}.0.0")
        run(make(f"{number}.0.0", package_path=str(tmp_path / f"p{number}")))
    result = run(make("", to_previous=True))
    assert (result["version"], result["current_version"], result["previous_version"]) == (
        "1.0.0", "1.0.0", "2.0.0")
    assert result["downloaded"] is False


def test_to_previous_with_no_previous_release_changes_nothing(
        make: Any, instance_dir: str, tmp_path: Path) -> None:
    package(tmp_path / "p1", "1.0.0")
    run(make("1.0.0", package_path=str(tmp_path / "p1")))
    with pytest.raises(ReleaseError, match=r"no previous release is recorded on this "
                                           r"instance \(current: 1.0.0\)"):
        run(make("", to_previous=True))
    assert os.readlink(Path(instance_dir, "current")) == "releases/1.0.0"


# -- state.json follows current -------------------------------------------------------------


def test_state_follows_a_current_that_a_killed_run_switched(
        make: Any, instance_dir: str) -> None:
    """A run killed between its switch and its state write leaves current on the new
    release and state.json behind: the next run writes state.json before anything else,
    so that its own failure (here the restart command; in the soak, a cancel) cannot leave
    the two apart."""
    layout = preinstall(instance_dir, "1.0.0")
    layout_mod.switch_current(layout, "releases/1.0.0")
    release = make("1.0.0", restart_command="exit 3", port=1, health_timeout=1, timeout=20)
    with pytest.raises(ReleaseError):
        run(release)
    state = layout_mod.read_json(layout.state_path)
    assert state is not None and state["version"] == "1.0.0"
