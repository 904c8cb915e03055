"""Fixtures of the ecosystem tests."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from tests.ecosystem._awx import awx_collection


@pytest.fixture(scope="session")
def awx_collections(request: pytest.FixtureRequest) -> Path:
    """A collections directory holding awx.awx (tests/ecosystem/_awx.py), downloaded once:
    into pytest's cache, or the system's temporary directory under ``-p no:cacheprovider``."""
    cache = getattr(request.config, "cache", None)
    where = cache.mkdir("floy-awx") if cache is not None else \
        Path(tempfile.gettempdir()) / "floy-awx-cache"
    return awx_collection(where)
