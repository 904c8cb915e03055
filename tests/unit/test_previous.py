"""The version before the current one (orchestrator/domain/previous.py), from records: what a
rollback without a target version goes back to, and when it refuses."""

from __future__ import annotations

import pytest

from orchestrator.domain.previous import (
    Previous,
    VersionChange,
    previous_version,
    resolve_batch,
    resolve_instance,
)
from orchestrator.domain.records import InstanceRecord
from orchestrator.errors import ExitCode, ValidationError


def record(version: str, instance_id: str = "web-3", observed: str | None = None
           ) -> InstanceRecord:
    return InstanceRecord(instance_id, "web", "10.0.0.3", 8080, version, None, None,
                          observed_version=version if observed is None else observed)


def changes(*pairs: tuple[str, str]) -> list[VersionChange]:
    """Completed releases newest first, as (before, after)."""
    return [VersionChange(f"r{n}", before, after) for n, (before, after) in enumerate(pairs)]


KNOWN = [
    ("deployed twice", "1.5.0", changes(("1.4.0", "1.5.0"), ("", "1.4.0")), "1.4.0"),
    ("a re-install of the current version is skipped", "1.5.0",
     changes(("1.5.0", "1.5.0"), ("1.5.0", "1.5.0"), ("1.4.0", "1.5.0")), "1.4.0"),
    ("after a rollback: toggles back", "1.4.0",
     changes(("1.5.0", "1.4.0"), ("1.4.0", "1.5.0"), ("", "1.4.0")), "1.5.0"),
    ("what the host reported it came from", "2.0", changes(("1.7", "2.0")), "1.7"),
]

UNKNOWN = [
    ("never deployed", "", [], "no recorded version"),
    ("no release through floy", "1.5.0", [], "no release of '1.5.0' completed"),
    ("deployed once", "1.5.0", changes(("", "1.5.0")), "'1.5.0' is the first version"),
    ("previous equals current", "1.5.0", changes(("1.5.0", "1.5.0")),
     "only re-installed '1.5.0'"),
    ("re-installs, then a first release", "1.5.0", changes(("1.5.0", "1.5.0"), ("", "1.5.0")),
     "first version"),
    ("version set by an adopting probe", "2.0", changes(("1.0", "3.0"), ("", "1.0")),
     "not set by a floy release (the last one left '3.0')"),
    ("an older release of the same version is not the chain", "2.0",
     changes(("2.0", "3.0"), ("1.0", "2.0")), "the last one left '3.0'"),
]


@pytest.mark.parametrize(("current", "history", "expected"),
                         [c[1:] for c in KNOWN], ids=[c[0] for c in KNOWN])
def test_known_previous_version(current: str, history: list[VersionChange],
                                expected: str) -> None:
    answer = previous_version(record(current), history)
    assert (answer.version, answer.current, answer.why) == (expected, current, "")
    assert resolve_instance(answer) == expected


@pytest.mark.parametrize(("current", "history", "why"),
                         [c[1:] for c in UNKNOWN], ids=[c[0] for c in UNKNOWN])
def test_unknown_previous_version_is_refused(current: str, history: list[VersionChange],
                                             why: str) -> None:
    answer = previous_version(record(current), history)
    assert answer.version == "" and why in answer.why
    with pytest.raises(ValidationError) as exc:
        resolve_instance(answer)
    assert exc.value.field == "target_version"
    assert exc.value.exit_code is ExitCode.BAD_INPUT
    assert str(exc.value) == (f"invalid target_version: no previous version of 'web-3' is "
                              f"known ({answer.why}); give the version to roll back to")


def test_drift_leaves_the_previous_version_unknown() -> None:
    answer = previous_version(record("1.5.0", observed="1.6.0"),
                              changes(("1.4.0", "1.5.0")))
    assert answer.version == "" and "seen running '1.6.0'" in answer.why
    assert "floy refresh" in answer.why


def _batch(*rows: tuple[str, str, str]) -> list[Previous]:
    """(instance, current, previous) -> each instance's answer."""
    return [previous_version(record(current, instance_id),
                             changes((before, current)) if before else [])
            for instance_id, current, before in rows]


def test_batch_of_one_version_from_one_version() -> None:
    answer = resolve_batch(_batch(("web-1", "2.0", "1.0"), ("web-2", "2.0", "1.0")))
    assert (answer.version, answer.current) == ("1.0", "2.0")


@pytest.mark.parametrize(("rows", "words"), [
    ([("web-1", "2.0", "1.0"), ("web-2", "1.0", "0.9")],
     ["run different versions (2.0: web-1; 1.0: web-2)", "one at a time"]),
    ([("web-1", "2.0", "1.0"), ("web-2", "2.0", "1.1"), ("web-3", "2.0", "1.0")],
     ["came to '2.0' from different versions (1.0: web-1, web-3; 1.1: web-2)"]),
    ([("web-1", "2.0", "1.0"), ("web-2", "2.0", "")],
     ["no previous version of 'web-2' is known (no release of '2.0'"]),
    ([(f"web-{n}", "2.0" if n < 7 else "3.0", "1.0") for n in range(1, 9)],
     ["2.0: web-1, web-2, web-3, web-4, web-5 and 1 more; 3.0: web-7, web-8"]),
], ids=["different current versions", "different previous versions", "one unknown",
        "long lists are cut"])
def test_batch_refuses_what_does_not_agree(rows: list[tuple[str, str, str]],
                                           words: list[str]) -> None:
    with pytest.raises(ValidationError) as exc:
        resolve_batch(_batch(*rows))
    assert exc.value.field == "target_version"
    for word in words:
        assert word in exc.value.reason
