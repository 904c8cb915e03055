"""`molecule test` for each scenario under molecule/ (delegated driver, local instances):
converge, idempotence (second converge changes nothing) and verify, offline; the
ansistrano scenario (hooks, shared paths, rollback to the previous release) also rolls back
in its side_effect."""

from __future__ import annotations

import subprocess

import pytest

from sample.packages import free_port
from tests.ecosystem._paths import REPO, VENV_BIN, tool_env

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("scenario", ["default", "rollback", "ansistrano"])
def test_molecule_scenario(scenario: str) -> None:
    env = tool_env(
        FLOY_MOLECULE_PORT_1=str(free_port()),
        FLOY_MOLECULE_PORT_2=str(free_port()),
        FLOY_MOLECULE_PORT_3=str(free_port()),
        PY_COLORS="0",
        ANSIBLE_FORCE_COLOR="0",
    )
    env.pop("FLOY_DB_URL", None)
    proc = subprocess.run(
        [str(VENV_BIN / "molecule"), "test", "-s", scenario],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=420,
        stdin=subprocess.DEVNULL,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-8000:]
    steps = ["converge", "idempotence", "verify"]
    if scenario == "ansistrano":
        steps.append("side_effect")  # the rollback with no version, and its checks
    for step in steps:
        assert f"{step}: Executed: Successful" in output, output[-8000:]
