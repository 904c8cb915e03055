"""module_utils/floy_layout: the instance layout, what "current" and "complete" mean, the file
atomics and the instance lock, all on real directories in tmp_path."""

from __future__ import annotations

import ast
import json
import os
import re
import stat
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.unit.collection._collection import PLUGINS, plugin, source

layout_mod = plugin("module_utils.floy_layout")
InstanceLayout = layout_mod.InstanceLayout


@pytest.fixture
def inst(tmp_path: Path) -> Any:
    """An instance directory with the layout floy_release creates."""
    layout = InstanceLayout(str(tmp_path / "hello" / "hello-1"))
    layout_mod.make_directories(layout)
    return layout


def install(layout: Any, version: str, record: bool = True, directory: bool = True,
            installed_at: str | None = None) -> None:
    """A release as floy_release installs it: the record first, then the directory."""
    if record:
        layout_mod.write_record(layout, version, f"https://pkgs.example/{version}.tar.gz", "")
        if installed_at is not None:
            data = layout_mod.read_record(layout, version)
            layout_mod.write_json_atomic(layout.record_path(version),
                                         {**data, "installed_at": installed_at})
    if directory:
        os.makedirs(layout.release_dir(version))


# -- the layout ------------------------------------------------------------------------------


def test_paths_of_an_instance(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    layout = InstanceLayout("web/web-1/")
    base = str(tmp_path / "web" / "web-1")
    assert layout.instance_dir == base  # absolute and normalised: FLOY_INSTANCE_DIR is this
    relative = {name: os.path.relpath(value, base) for name, value in vars(layout).items()
                if name != "instance_dir"}
    assert relative == {
        "releases_dir": "releases",
        "shared_dir": "shared",
        "current_link": "current",
        "meta_dir": ".floy",
        "records_dir": ".floy/releases",
        "state_path": ".floy/state.json",
        "state_before_path": ".floy/.floy-state-before.json",
        "lock_path": ".floy/lock",
        "restart_record_path": ".floy/restart-running.json",
        "restart_log_path": "shared/floy-restart.log",
    }
    assert layout.release_dir("2.0.0") == base + "/releases/2.0.0"
    assert layout.record_path("2.0.0") == base + "/.floy/releases/2.0.0.json"
    assert layout_mod.link_target("2.0.0") == "releases/2.0.0"


def test_the_documented_layout_is_the_one_defined() -> None:
    """floy_release's DOCUMENTATION names the paths the layout defines."""
    docs = plugin("modules.floy_release").DOCUMENTATION
    for path in ("releases/<version>/", "current -> releases/<version>", "shared/",
                 ".floy/state.json", ".floy/releases/<version>.json",
                 ".floy/restart-running.json"):
        assert f"C({path})" in docs, path
    layout = InstanceLayout("/i")
    assert layout.record_path("<version>") == "/i/.floy/releases/<version>.json"
    assert layout.restart_record_path == "/i/.floy/restart-running.json"


def test_make_directories_keeps_what_exists(inst: Any) -> None:
    Path(inst.shared_dir, "keep").write_text("x")
    layout_mod.make_directories(inst)
    assert all(os.path.isdir(d) for d in inst.directories())
    assert Path(inst.shared_dir, "keep").read_text() == "x"


def test_clear_leftovers_removes_only_temp_names(inst: Any) -> None:
    temps = [Path(d, ".floy-x") for d in inst.temp_directories()]
    for path in temps:
        path.mkdir()
        (path / "f").write_text("x")
    Path(inst.releases_dir, ".floy-pkg-1.tar.gz").write_text("x")
    install(inst, "1.0.0")
    layout_mod.clear_leftovers(inst)
    assert not any(p.exists() for p in temps)
    assert os.listdir(inst.releases_dir) == ["1.0.0"]
    assert layout_mod.is_complete(inst, "1.0.0")


# -- current ---------------------------------------------------------------------------------


def test_switch_current_writes_a_relative_link_atomically(inst: Any) -> None:
    install(inst, "1.0.0")
    install(inst, "2.0.0")
    layout_mod.switch_current(inst, layout_mod.link_target("1.0.0"))
    assert layout_mod.read_current(inst) == ("releases/1.0.0", "1.0.0")
    layout_mod.switch_current(inst, layout_mod.link_target("2.0.0"))
    assert os.readlink(inst.current_link) == "releases/2.0.0"
    assert [n for n in os.listdir(inst.instance_dir) if n.startswith(".floy-")] == []
    layout_mod.switch_current(inst, None)
    assert layout_mod.read_current(inst) == (None, "")
    layout_mod.switch_current(inst, None)  # nothing to remove: fine


def test_switch_current_refuses_to_replace_a_directory(inst: Any) -> None:
    os.mkdir(inst.current_link)
    with pytest.raises(layout_mod.NotASymlink, match="is a directory, not a symlink"):
        layout_mod.switch_current(inst, "releases/1.0.0")
    assert os.path.isdir(inst.current_link) and not os.path.islink(inst.current_link)


@pytest.mark.parametrize(("target", "named"), [
    ("releases/1.0.0", "1.0.0"),
    ("releases/1.0.0/", "1.0.0"),        # a trailing slash is tolerated
    ("releases/2.0.0", ""),              # broken: the directory is missing
    ("releases/.floy-unpack-x", ""),     # a temp is never a release
    ("releases/..", ""),
    ("releases/1.0.0/bin", ""),          # not releases/<name>
    ("./releases/1.0.0", ""),
    ("shared", ""),
])
def test_what_current_names(inst: Any, target: str, named: str) -> None:
    install(inst, "1.0.0")
    os.makedirs(os.path.join(inst.releases_dir, ".floy-unpack-x"))
    os.makedirs(os.path.join(inst.releases_dir, "1.0.0", "bin"))
    os.symlink(target, inst.current_link)
    assert layout_mod.read_current(inst) == (target, named)


def test_an_absolute_current_names_no_release(inst: Any) -> None:
    install(inst, "1.0.0")
    os.symlink(inst.release_dir("1.0.0"), inst.current_link)
    assert layout_mod.read_current(inst) == (inst.release_dir("1.0.0"), "")


def test_current_names_are_reported_as_found(inst: Any) -> None:
    """The layout does not judge names: floy_probe reports them for the controller."""
    evil = "{{ lookup('pipe','id') }}"
    os.makedirs(inst.release_dir(evil))
    os.symlink(f"releases/{evil}", inst.current_link)
    assert layout_mod.read_current(inst)[1] == evil
    assert not layout_mod.NAME_RE.match(evil)


# -- complete --------------------------------------------------------------------------------


def test_complete_means_record_and_directory(inst: Any) -> None:
    install(inst, "1.0.0")
    install(inst, "2.0.0", directory=False)  # killed between the record and the rename
    install(inst, "3.0.0", record=False)     # a directory nobody recorded
    assert layout_mod.is_complete(inst, "1.0.0")
    assert not layout_mod.is_complete(inst, "2.0.0")
    assert not layout_mod.is_complete(inst, "3.0.0")
    assert not layout_mod.is_complete(inst, "4.0.0")
    record = layout_mod.complete_record(inst, "1.0.0")
    assert record["version"] == "1.0.0"
    assert record["package_url"] == "https://pkgs.example/1.0.0.tar.gz"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", record["installed_at"])


@pytest.mark.parametrize("content", ["{not json", "[]", "{}", '"1.0.0"'])
def test_an_unreadable_or_empty_record_is_not_complete(inst: Any, content: str) -> None:
    install(inst, "1.0.0", record=False)
    Path(inst.record_path("1.0.0")).write_text(content)
    assert layout_mod.complete_record(inst, "1.0.0") is None


def test_a_symlinked_release_directory_is_not_complete(inst: Any, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    install(inst, "1.0.0", directory=False)
    os.symlink(elsewhere, inst.release_dir("1.0.0"))
    assert not layout_mod.is_complete(inst, "1.0.0")


def test_release_names_leave_out_dot_names(inst: Any) -> None:
    for name in ("1.0.0", ".floy-unpack-x", ".hidden", "junk"):
        os.makedirs(os.path.join(inst.releases_dir, name))
    assert sorted(layout_mod.release_names(inst)) == ["1.0.0", "junk"]
    assert layout_mod.release_names(InstanceLayout(inst.instance_dir + "-missing")) == []


# -- state.json and its copy -----------------------------------------------------------------


def test_state_before_is_a_hard_link_restored_by_rename(inst: Any) -> None:
    layout_mod.write_json_atomic(inst.state_path, {"version": "1.0.0"})
    layout_mod.keep_state_before(inst)
    assert os.stat(inst.state_before_path).st_ino == os.stat(inst.state_path).st_ino
    layout_mod.write_json_atomic(inst.state_path, {"version": "2.0.0"})
    layout_mod.restore_state_before(inst, written=True)
    assert layout_mod.read_json(inst.state_path) == {"version": "1.0.0"}
    assert not os.path.exists(inst.state_before_path)


def test_restore_without_a_copy_removes_only_a_state_written_since(inst: Any) -> None:
    layout_mod.keep_state_before(inst)  # no state.json yet: nothing kept
    assert not os.path.exists(inst.state_before_path)
    layout_mod.write_json_atomic(inst.state_path, {"version": "2.0.0"})
    layout_mod.restore_state_before(inst, written=False)
    assert os.path.exists(inst.state_path)
    layout_mod.restore_state_before(inst, written=True)
    assert not os.path.exists(inst.state_path)


# -- file atomics ----------------------------------------------------------------------------


def test_write_json_atomic(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    layout_mod.write_json_atomic(str(path), {"b": 1, "a": "x"})
    assert path.read_text() == '{\n  "a": "x",\n  "b": 1\n}\n'
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    layout_mod.write_json_atomic(str(path), {"a": "y"})
    assert json.loads(path.read_text()) == {"a": "y"}
    assert os.listdir(tmp_path) == ["state.json"]


def test_a_failed_write_leaves_the_old_file_and_no_temp(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    layout_mod.write_json_atomic(str(path), {"a": 1})
    with pytest.raises(TypeError):
        layout_mod.write_json_atomic(str(path), {"a": object()})
    assert json.loads(path.read_text()) == {"a": 1}
    assert os.listdir(tmp_path) == ["state.json"]


@pytest.mark.parametrize(("content", "expected"), [
    (None, None), ("{oops", None), ("[1]", None), ('{"a": 1}', {"a": 1}),
])
def test_read_json(tmp_path: Path, content: str | None, expected: object) -> None:
    path = tmp_path / "f.json"
    if content is not None:
        path.write_text(content)
    assert layout_mod.read_json(str(path)) == expected


def test_remove_path(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "sub" / "f").write_text("x")
    link = tmp_path / "link"
    link.symlink_to(tree)
    single = tmp_path / "file"
    single.write_text("x")
    layout_mod.remove_path(str(link))  # the link, never what it points at
    assert not link.is_symlink() and (tree / "sub" / "f").exists()
    layout_mod.remove_path(str(tree))
    layout_mod.remove_path(str(single))
    layout_mod.remove_path(str(tmp_path / "missing"))
    layout_mod.remove_path("")
    assert os.listdir(tmp_path) == []


def test_exchange_paths_swaps_two_trees(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (a / "from-a").write_text("")
    (b / "from-b").write_text("")
    if not layout_mod.exchange_paths(str(a), str(b)):
        pytest.skip("renameat2(RENAME_EXCHANGE) is not supported here")
    assert os.listdir(a) == ["from-b"] and os.listdir(b) == ["from-a"]


def test_fsync_dir_ignores_a_missing_directory(tmp_path: Path) -> None:
    layout_mod.fsync_dir(str(tmp_path / "missing"))


# -- the lock --------------------------------------------------------------------------------


def test_the_exclusive_lock_excludes_releases_and_probes(inst: Any) -> None:
    with pytest.raises(FileNotFoundError):  # no release ever ran here
        layout_mod.lock_shared(inst, 0)
    held = layout_mod.lock_exclusive(inst, 0)
    assert held is not None
    try:
        # flock locks belong to the open file: a second open is another holder.
        assert layout_mod.lock_exclusive(inst, 0.3) is None
        assert layout_mod.lock_shared(inst, 0.3) is None
    finally:
        os.close(held)
    first, second = layout_mod.lock_shared(inst, 0), layout_mod.lock_shared(inst, 0)
    assert first is not None and second is not None  # probes share it
    assert layout_mod.lock_exclusive(inst, 0.2) is None
    os.close(first)
    os.close(second)
    again = layout_mod.lock_exclusive(inst, 0)
    assert again is not None
    os.close(again)


def test_one_lock_wait_for_both_modules() -> None:
    release, probe = plugin("modules.floy_release"), plugin("modules.floy_probe")
    assert release.LOCK_WAIT is layout_mod.LOCK_WAIT and probe.LOCK_WAIT is layout_mod.LOCK_WAIT
    assert f"Waits up to {int(layout_mod.LOCK_WAIT)} seconds" in probe.DOCUMENTATION


# -- one definition --------------------------------------------------------------------------

#: A string literal spelling a path of the layout; no module may (STYLE.md item 16).
LAYOUT_PATH = re.compile(
    r"(^|/)(releases|current|shared|\.floy|lock|state\.json)(/|$)"
    r"|\.json$|restart-running|floy-restart\.log|state-before|^\.floy-"
)
DOC_CONSTANTS = {"DOCUMENTATION", "EXAMPLES", "RETURN"}


def _code_strings(path: Path) -> list[str]:
    """String literals of a module outside its documentation constants and docstrings."""
    tree = ast.parse(source(path))
    docs = {id(node.value) for node in tree.body if isinstance(node, ast.Assign)
            and {getattr(t, "id", "") for t in node.targets} & DOC_CONSTANTS}
    docs |= {id(node.value) for node in ast.walk(tree) if isinstance(node, ast.Expr)}
    return [node.value for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str)
            and id(node) not in docs]


@pytest.mark.parametrize("module", ["floy_probe", "floy_release"])
def test_modules_spell_no_path_of_the_layout(module: str) -> None:
    returned = set(yaml.safe_load(plugin(f"modules.{module}").RETURN))  # result keys
    strings = [s for s in _code_strings(PLUGINS / "modules" / f"{module}.py")
               if s not in returned]
    assert not [s for s in strings if LAYOUT_PATH.search(s)]
