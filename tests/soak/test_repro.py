"""The soak's findings as deterministic regression tests: each case drives one real
deployment to the moment the soak hit and injects the same fault there (tests/soak/repro.py,
also runnable as a script). Each failed before its fix (see the issue 9 note)."""

from __future__ import annotations

import os

import pytest

from tests.soak.repro import CASES

pytestmark = [pytest.mark.integration, pytest.mark.soak]


@pytest.mark.timeout(300)
@pytest.mark.parametrize("name", sorted(CASES))
def test_soak_finding_stays_fixed(name: str) -> None:
    if os.geteuid() != 0 and "disk" in name:
        pytest.skip("mounting a small tmpfs needs root")
    ok, report = CASES[name]()
    assert ok, report
