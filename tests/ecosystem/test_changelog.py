"""floy.release's changelog is kept by antsibull-changelog: the fragments lint clean, the
committed CHANGELOG.md is exactly what `antsibull-changelog generate` writes from
changelogs/changelog.yaml, and the release the collection README describes can be cut.

Every command runs in a copy of the collection under tmp_path: the tests never write to
the repository (generate and release rewrite CHANGELOG.md and changelogs/)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.ecosystem._paths import COLLECTION, REPO, VENV_BIN, tool_env


@pytest.fixture
def collection_copy(tmp_path: Path) -> Path:
    """The collection copied to tmp_path/ansible_collections/floy/release."""
    copy = tmp_path / "ansible_collections" / "floy" / "release"
    shutil.copytree(COLLECTION, copy, ignore=shutil.ignore_patterns("__pycache__", "*.tar.gz"))
    return copy


def _changelog(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(VENV_BIN / "antsibull-changelog"), *args],
        cwd=cwd, env=tool_env(), capture_output=True, text=True, timeout=300,
    )


def test_fragments_and_changelog_yaml_lint_clean(collection_copy: Path) -> None:
    lint = _changelog(collection_copy, "lint")
    assert (lint.returncode, lint.stdout + lint.stderr) == (0, "")
    changes = _changelog(collection_copy, "lint-changelog-yaml", "changelogs/changelog.yaml")
    assert (changes.returncode, changes.stdout + changes.stderr) == (0, "")
    assert list((collection_copy / "changelogs" / "fragments").glob("*.yml"))


def test_committed_changelog_is_what_generate_writes(collection_copy: Path) -> None:
    (collection_copy / "CHANGELOG.md").unlink()
    proc = _changelog(collection_copy, "generate")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    generated = (collection_copy / "CHANGELOG.md").read_text()
    assert (COLLECTION / "CHANGELOG.md").read_text() == generated, (
        "CHANGELOG.md is generated: run `antsibull-changelog generate` in the collection"
    )


def test_release_of_the_galaxy_version_takes_in_every_fragment(collection_copy: Path) -> None:
    """The release step of the collection README, rehearsed on the copy."""
    version = str(yaml.safe_load((collection_copy / "galaxy.yml").read_text())["version"])
    changelog = collection_copy / "changelogs" / "changelog.yaml"
    if version in yaml.safe_load(changelog.read_text())["releases"]:
        pytest.skip(f"galaxy.yml's version {version} is released already: nothing to cut")
    fragments = sorted((collection_copy / "changelogs" / "fragments").glob("*.yml"))
    entries = [entry for f in fragments for section in yaml.safe_load(f.read_text()).values()
               for entry in ([section] if isinstance(section, str) else section)]

    proc = _changelog(collection_copy, "release", "--version", version)
    assert proc.returncode == 0, proc.stdout + proc.stderr

    assert not list((collection_copy / "changelogs" / "fragments").glob("*.yml"))
    released = yaml.safe_load(changelog.read_text())["releases"][version]
    recorded = [entry for section in released["changes"].values()
                for entry in ([section] if isinstance(section, str) else section)]
    assert sorted(recorded) == sorted(entries)
    heading = "## v" + version.replace(".", "\\.")  # Markdown-escaped, as generate writes it
    assert heading in (collection_copy / "CHANGELOG.md").read_text()
    # What the release leaves to commit passes the repository's yamllint (test_lint.py).
    lint = subprocess.run(
        [str(VENV_BIN / "yamllint"), "--strict", "-c", str(REPO / ".yamllint"), str(changelog)],
        capture_output=True, text=True, timeout=60,
    )
    assert lint.returncode == 0, lint.stdout + lint.stderr
