"""Galaxy's own importer (galaxy-importer, what galaxy.ansible.com and Automation Hub run on
an upload) accepts the built collection with no error, and no warning but the one naming
its ansible-test ignore file (license entries only), and reads from it what a user browsing
Galaxy would look for: the docs of both modules and of the inventory plugin, and the role
with its description and README.

ansible-test is not run by the importer here (it needs a container or a network, and the
collection's sanity tests run elsewhere); ansible-doc and ansible-lint (offline, Galaxy's
production profile) are."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest
import yaml

from tests.ecosystem._paths import COLLECTION, ROLE, VENV_BIN, tool_env

# What a Galaxy server's importer would do, minus what needs a network or a container.
_IMPORTER_CFG = """\
[galaxy-importer]
run_ansible_test = False
ansible_test_local_image = False
run_ansible_doc = True
run_ansible_lint = True
offline_ansible_lint = True
check_changelog = True
log_level_main = INFO
ansible_local_tmp = {tmp}
"""


def _expected_ignore_file_warnings() -> list[str]:
    """The one warning tolerated: Galaxy names every ansible-test ignore file, and the
    collection keeps one kind of entry, the license check that certification lets an
    Apache-2.0 collection ignore (ansible-test wants a GPLv3 header in every plugin)."""
    warnings = []
    for ignore in sorted((COLLECTION / "tests" / "sanity").glob("ignore-*.txt")):
        entries = [line.split("#")[0].split() for line in ignore.read_text().splitlines()
                   if line.split("#")[0].strip()]
        assert {code for _, code in entries} <= {"validate-modules:missing-gplv3-license"}, \
            f"{ignore.name}: an ansible-test ignore Galaxy would flag: {entries}"
        lines = len(ignore.read_text().splitlines())  # Galaxy counts lines, comments too
        warnings.append(f"WARNING: Ignore files skip ansible-test sanity tests, found "
                        f"{ignore.name} with {lines} statement(s)")
    return warnings


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, Any]]:
    """The importer's log and its result (importer_result.json) for the built collection."""
    work = tmp_path_factory.mktemp("galaxy-importer")
    version = yaml.safe_load((COLLECTION / "galaxy.yml").read_text())["version"]
    build = subprocess.run(
        [str(VENV_BIN / "ansible-galaxy"), "collection", "build", str(COLLECTION),
         "--output-path", str(work)],
        env=tool_env(), capture_output=True, text=True, timeout=120,
    )
    assert build.returncode == 0, build.stdout + build.stderr
    tarball = work / f"floy-release-{version}.tar.gz"
    assert tarball.is_file(), build.stdout

    config = work / "galaxy-importer.cfg"
    config.write_text(_IMPORTER_CFG.format(tmp=work / "ansible-tmp"))
    # The importer finds ansible-doc and ansible-lint on PATH (tool_env puts the venv first),
    # and writes importer_result.json to its working directory.
    env = tool_env(GALAXY_IMPORTER_CONFIG=str(config))
    del env["ANSIBLE_COLLECTIONS_PATH"]  # it installs the tarball into a path of its own
    proc = subprocess.run(
        [str(VENV_BIN / "python"), "-m", "galaxy_importer.main", str(tarball)],
        cwd=work, env=env, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result: dict[str, Any] = json.loads((work / "importer_result.json").read_text())
    return proc.stdout, result


def test_importer_accepts_the_collection_without_warnings(
    imported: tuple[str, dict[str, Any]],
) -> None:
    log, result = imported
    lines = log.splitlines()
    # The importer logs a warning or an error as "WARNING: ..." / "ERROR: ...", each
    # ansible-lint finding as a warning line; INFO lines carry no prefix.
    flagged = [line for line in lines if line.startswith(("WARNING", "ERROR"))]
    assert flagged == _expected_ignore_file_warnings(), log
    for step in ("Getting doc strings via ansible-doc", "...ansible-lint run complete",
                 "Importer processing completed successfully"):
        assert step in lines, log
    galaxy = yaml.safe_load((COLLECTION / "galaxy.yml").read_text())
    metadata = result["metadata"]
    assert (metadata["namespace"], metadata["name"], metadata["version"]) == (
        "floy", "release", galaxy["version"])
    runtime = yaml.safe_load((COLLECTION / "meta" / "runtime.yml").read_text())
    assert result["requires_ansible"] == runtime["requires_ansible"]


def test_importer_reads_the_docs_of_modules_inventory_and_role(
    imported: tuple[str, dict[str, Any]],
) -> None:
    _, result = imported
    docs = {(c["content_type"], c["content_name"]): c for c in result["docs_blob"]["contents"]}
    for kind, name in (("module", "floy_release"), ("module", "floy_probe"),
                       ("inventory", "floy")):
        strings = docs[kind, name]["doc_strings"]
        assert strings, (kind, name)
        doc = strings["doc"]
        assert doc["short_description"] and doc["description"] and doc["options"], (kind, name)
        assert doc["collection"] == "floy.release", (kind, name)
        if kind == "module":
            assert strings["examples"] and strings["return"], name
    release_options = {o["name"] for o in docs["module", "floy_release"]["doc_strings"]["doc"]
                       ["options"]}
    assert {"instance_dir", "version", "package_url", "package_sha256"} <= release_options

    role = docs["role", "floy"]
    meta = yaml.safe_load((ROLE / "meta" / "main.yml").read_text())
    contents = {(c["content_type"], c["name"]): c for c in result["contents"]}
    assert contents["role", "floy"]["description"] == meta["galaxy_info"]["description"]
    assert role["readme_file"] == "README.md" and "floy_version" in role["readme_html"]
    assert "floy.release" in result["docs_blob"]["collection_readme"]["html"]
