"""The collection floy.release: it builds, holds the one copy of each module, is what the
playbooks use (FQCN), and its variables table cannot drift from meta/argument_specs.yml."""

from __future__ import annotations

import json
import subprocess
import tarfile
from pathlib import Path

import yaml

from tests.ecosystem._paths import (
    COLLECTION,
    COLLECTIONS,
    PLAYBOOKS,
    REPO,
    ROLE,
    VENV_BIN,
    argument_specs,
    tool_env,
)

MODULES = ("floy_release", "floy_probe", "floy_pause", "floy_promote")


def test_galaxy_metadata() -> None:
    galaxy = yaml.safe_load((COLLECTION / "galaxy.yml").read_text())
    assert (galaxy["namespace"], galaxy["name"], galaxy["version"]) == ("floy", "release", "0.2.0")
    assert galaxy["license"] == ["Apache-2.0"] and galaxy["readme"] == "README.md"
    assert "Apache License" in (COLLECTION / "LICENSE").read_text()[:200]
    for key in ("repository", "documentation", "homepage", "issues"):
        assert galaxy[key].startswith("https://"), key
    runtime = yaml.safe_load((COLLECTION / "meta" / "runtime.yml").read_text())
    assert runtime["requires_ansible"].startswith(">=2.16")


def test_collection_builds_with_modules_roles_and_inventory(tmp_path: Path) -> None:
    proc = subprocess.run(
        [str(VENV_BIN / "ansible-galaxy"), "collection", "build", str(COLLECTION),
         "--output-path", str(tmp_path)],
        env=tool_env(), capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    tarball = tmp_path / "floy-release-0.2.0.tar.gz"
    with tarfile.open(tarball) as tar:
        names = set(tar.getnames())
        manifest = json.load(tar.extractfile("MANIFEST.json"))  # type: ignore[arg-type]
    for module in MODULES:
        assert f"plugins/modules/{module}.py" in names
    assert "plugins/inventory/floy.py" in names
    for path in ("tasks/main.yml", "tasks/probe.yml", "tasks/gate.yml", "tasks/promote.yml",
                 "meta/argument_specs.yml",
                 "defaults/main.yml", "README.md"):
        assert f"roles/floy/{path}" in names
    assert not [n for n in names if "__pycache__" in n or n.endswith(".tar.gz")]
    info = manifest["collection_info"]
    assert (info["namespace"], info["name"], info["version"]) == ("floy", "release", "0.2.0")


def test_requirements_install_offline_from_the_repository(tmp_path: Path) -> None:
    """What an AWX project update runs: collections/requirements.yml, no network."""
    env = tool_env()
    del env["ANSIBLE_COLLECTIONS_PATH"]
    proc = subprocess.run(
        [str(VENV_BIN / "ansible-galaxy"), "collection", "install", "-r",
         "collections/requirements.yml", "-p", str(tmp_path), "--offline", "--force"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    installed = tmp_path / "ansible_collections" / "floy" / "release"
    assert (installed / "plugins" / "modules" / "floy_release.py").is_file()
    assert json.loads((installed / "MANIFEST.json").read_text())["collection_info"]["version"]


def test_one_copy_of_each_module_and_no_role_library() -> None:
    for module in MODULES:
        copies = {
            p.resolve() for p in REPO.rglob(f"{module}.py")
            if not {".venv", ".git", "build"} & set(p.relative_to(REPO).parts)
        }
        # playbooks/collections is a symlink to collections/, not a copy.
        assert copies == {(COLLECTION / "plugins" / "modules" / f"{module}.py").resolve()}
    assert not list(REPO.glob("playbooks/roles")), "the role lives in the collection now"
    assert not (ROLE / "library").exists()
    assert (PLAYBOOKS / "collections").resolve() == COLLECTIONS.resolve()


def _tasks(path: Path) -> list[dict[str, object]]:
    found: list[dict[str, object]] = []

    def walk(items: object) -> None:
        if isinstance(items, list):
            for item in items:
                if isinstance(item, dict):
                    found.append(item)
                    for key in ("tasks", "block", "rescue", "always"):
                        walk(item.get(key))

    walk(yaml.safe_load(path.read_text()))
    return found


def test_playbooks_and_role_use_fqcns() -> None:
    roles = [t["ansible.builtin.import_role"] for p in PLAYBOOKS.glob("*.yml")
             for t in _tasks(p) if "ansible.builtin.import_role" in t]
    assert roles and {r["name"] for r in roles} == {"floy.release.floy"}  # type: ignore[index]
    actions = {k for p in (ROLE / "tasks").glob("*.yml") for t in _tasks(p) for k in t}
    assert {f"floy.release.{module}" for module in MODULES} <= actions
    assert not set(MODULES) & actions


def test_ansible_cfg_finds_the_collection_from_any_directory(tmp_path: Path) -> None:
    env = tool_env(ANSIBLE_CONFIG=str(PLAYBOOKS / "ansible.cfg"))
    del env["ANSIBLE_COLLECTIONS_PATH"]
    proc = subprocess.run(
        [str(VENV_BIN / "ansible-doc"), "--json", "-t", "module", "floy.release.floy_release"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert str(COLLECTION) in proc.stdout or "floy.release.floy_release" in proc.stdout


def test_vars_table_matches_argument_specs() -> None:
    proc = subprocess.run(
        [str(VENV_BIN / "python"), "scripts/gen_vars_table.py", "--check"],
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    readme = (ROLE / "README.md").read_text()
    for name in argument_specs()["main"]["options"]:
        assert readme.count(f"| `{name}` |") == 1, name


def test_role_defaults_match_argument_specs() -> None:
    """defaults/main.yml holds every option of every entry point with its default, and an
    option two entry points share has the same default in both."""
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    with_default: dict[str, object] = {}
    for entry_point in argument_specs().values():
        options = entry_point["options"]
        for name, option in options.items():
            if "default" in option:
                assert with_default.setdefault(name, option["default"]) == option["default"], name
        assert all(name.startswith("floy_") for name in options)
    assert defaults == with_default
