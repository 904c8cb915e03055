"""Run IDs and callers: the one generator of run IDs, and who is asking."""

from __future__ import annotations

import getpass
import time
import uuid

from orchestrator.domain.validation import NAME_MAX_LENGTH


def generated_id(kind: str, subject: str, version: str) -> str:
    """A new run ID: ``<kind>-<subject>-<version>-<UTC stamp>-<random>`` (at most 128)."""
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    return f"{kind}-{subject}-{version}-{stamp}-{uuid.uuid4().hex[:6]}"[:NAME_MAX_LENGTH]


def caller() -> str:
    """The OS user of this process, recorded as who created a run."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
