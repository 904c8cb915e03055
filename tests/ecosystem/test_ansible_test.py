"""ansible-test over the collection floy.release, as a certified collection is checked:
every sanity test, the collection's unit tests and its integration target, on the Python
running these tests.

ansible-test runs on a copy of the collection (ansible_collections/floy/release under
tmp_path): it writes tests/output/ and copies of the modules where it runs, which the other
tests walking the repository must not meet. The sanity tests that need packages run in
virtual environments ansible-test makes under ~/.ansible/test/venv, with pip bootstrapped
by scripts/ansible_test_pip.py (run here and by scripts/bootstrap.sh) and their pinned
packages from the package index, the first time only.

Certification refuses most sanity ignores: the ones tests/sanity/ignore-*.txt may hold are
ansible-lint's `sanity` rule's list, the one Red Hat Partner Engineering maintains
(https://docs.ansible.com/projects/lint/rules/sanity/).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from ansiblelint.rules.sanity import CheckSanityIgnoreFiles

from tests.ecosystem._paths import COLLECTION, REPO, VENV_BIN, tool_env

PYTHON = "{}.{}".format(*sys.version_info[:2])
INTEGRATION_TARGETS = ("floy_release",)
# pip's lines while ansible-test fills its sanity environments: noise in a failure report.
PIP_NOISE = re.compile(
    r"^(Looking in|WARNING: Location|Collecting|Processing|  Downloading|  Attempting|"
    r"    Found existing|    Uninstalling|      Successfully|Installing collected|"
    r"Successfully installed| +━)"
)


@pytest.fixture(scope="module")
def collection(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the collection at <tmp>/ansible_collections/floy/release, where ansible-test
    finds its namespace and name; pip's bootstrap script supplied for its environments."""
    subprocess.run([sys.executable, str(REPO / "scripts" / "ansible_test_pip.py")],
                   check=True, capture_output=True, timeout=60)
    copy = tmp_path_factory.mktemp("ansible-test") / "ansible_collections" / "floy" / "release"
    shutil.copytree(COLLECTION, copy, ignore=not_copied)
    return copy


def not_copied(directory: str, names: list[str]) -> set[str]:
    """What ansible-test and the build leave in the collection: not part of it."""
    skip = {name for name in names if name == "__pycache__" or name.endswith(".tar.gz")}
    if Path(directory) == COLLECTION / "tests" and "output" in names:
        skip.add("output")
    return skip


def ansible_test(collection: Path, *args: str, timeout: int) -> str:
    """Run ``ansible-test ARGS --python PYTHON --local`` in ``collection``; its output, or a
    failed test showing what matters of it (pip's noise left out)."""
    env = tool_env()
    env.pop("ANSIBLE_COLLECTIONS_PATH")  # ansible-test finds the copy from where it runs
    proc = subprocess.run(
        [str(VENV_BIN / "ansible-test"), *args, "--python", PYTHON, "--local", "--color", "no"],
        cwd=collection, env=env, capture_output=True, text=True, timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    output = proc.stdout + proc.stderr
    if proc.returncode != 0:
        shown = "\n".join(line for line in output.splitlines() if not PIP_NOISE.match(line))
        pytest.fail(f"ansible-test {args[0]} exited {proc.returncode}:\n{shown[-12000:]}",
                    pytrace=False)
    return output


def test_sanity_ignores_are_ones_certification_allows() -> None:
    allowed = set(CheckSanityIgnoreFiles.allowed_ignores)
    for path in sorted((COLLECTION / "tests" / "sanity").glob("ignore-*.txt")):
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            entry, _, why = line.partition(" # ")
            target, test = entry.split()
            where = f"{path.name}:{number}"
            assert test in allowed, f"{where}: certification refuses to ignore {test}"
            assert (COLLECTION / target).is_file(), f"{where}: no file {target}"
            assert why.strip(), f"{where}: say why (a comment after the entry)"


@pytest.mark.slow
def test_sanity(collection: Path) -> None:
    output = ansible_test(collection, "sanity", timeout=480)
    ran = re.findall(r'^Running sanity test "([\w-]+)"', output, re.MULTILINE)
    # The tests certification looks at most; a new ansible-test may add more.
    assert {"validate-modules", "pylint", "pep8", "import", "compile", "yamllint",
            "ansible-doc", "ignores"} <= set(ran), ran


@pytest.mark.slow
def test_units(collection: Path) -> None:
    output = ansible_test(collection, "units", timeout=300)
    passed = re.findall(r"=+ (\d+) passed", output)
    # one pytest run per kind of plugin tested (modules, module_utils, ...)
    assert len(passed) >= 2 and all(int(n) > 0 for n in passed), output[-4000:]


@pytest.mark.slow
def test_integration(collection: Path) -> None:
    output = ansible_test(collection, "integration", *INTEGRATION_TARGETS, timeout=300)
    assert re.search(r"testhost +: ok=\d+ .* failed=0 ", output), output[-4000:]
