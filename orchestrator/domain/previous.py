"""The version an instance ran before its current one: a rollback without a target version.

``floy rollback instance web-3`` with no version takes web-3 back to the version it ran
before its current one, as ansistrano's and Capistrano's ``rollback`` do. floy answers from its
own records, never from a guess: the instance's recorded version and its completed releases
(its rows of deploy and rollback runs, newest first), each saying which version ``current``
pointed at before and after. On the host, the previous release is the one pruning always
keeps, so such a rollback normally only switches back.

The answer is known only when the records agree (issue 13):

- the instance has a recorded version and no drift (a probe or heartbeat that saw another
  version means the record is not what runs);
- its newest completed release left it on that version (a version set by ``floy refresh
  --adopt`` has no "before" floy knows);
- that release, or an older one that also left it there, came from another version:
  re-installing the current version (before == after) says nothing and is skipped; a first
  release (nothing before it) ends the search.

Rolling back twice toggles: after going from 1.5.0 back to 1.4.0, the version before the
current one is 1.5.0 again (ansistrano's rollback deletes the release it leaves; floy keeps it).

A batch rollback is one run with one target version, so without a version it takes the
instances back only when they all run the same version and all came from the same one;
anything else is refused, naming the disagreement, rather than guessed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from orchestrator.domain.records import InstanceRecord
from orchestrator.errors import ValidationError

#: The field a caller fills in when floy cannot tell the previous version.
FIELD = "target_version"
#: Completed releases read per instance: re-installs of the same version beyond these many
#: leave the previous version unknown (a refusal, never a guess).
CHANGES_READ = 50
_SHOWN = 5  # instance IDs shown per group in a refusal


@dataclass(frozen=True)
class VersionChange:
    """One completed release on an instance (its row of a deploy or rollback run): the
    version ``current`` pointed at before it and after it."""

    run_id: str
    previous_version: str
    current_version: str


@dataclass(frozen=True)
class Previous:
    """What floy's records say an instance ran before ``current``: ``version``, or "" and
    ``why`` it is not known."""

    instance_id: str
    current: str
    version: str = ""
    why: str = ""

    def refusal(self) -> ValidationError:
        """The error of a rollback that needs this unknown previous version."""
        return ValidationError(
            FIELD,
            f"no previous version of {self.instance_id!r} is known ({self.why}); "
            "give the version to roll back to",
        )


def previous_version(record: InstanceRecord, changes: Sequence[VersionChange]) -> Previous:
    """The version ``record``'s instance ran before its current one, from its completed
    releases newest first (see the module's rules)."""
    current = record.version
    known = Previous(record.instance_id, current)
    if not current:
        return _unknown(known, "it has no recorded version: nothing was released there")
    if record.drift:
        return _unknown(known, f"it was seen running {record.observed_version!r} while "
                               f"floy's record says {current!r}; settle that with floy "
                               "refresh first")
    if not changes:
        return _unknown(known, f"no release of {current!r} completed there through floy")
    for change in changes:
        if change.current_version != current:
            return _unknown(known, f"its recorded version {current!r} was not set by a floy "
                                   f"release (the last one left {change.current_version!r})")
        if not change.previous_version:
            return _unknown(known, f"{current!r} is the first version floy released there")
        if change.previous_version != current:
            return Previous(record.instance_id, current, change.previous_version)
    return _unknown(known, f"the releases floy recorded there only re-installed {current!r}")


def _unknown(known: Previous, why: str) -> Previous:
    return Previous(known.instance_id, known.current, "", why)


def resolve_instance(previous: Previous) -> str:
    """The target of a single-instance rollback without a version; refuses an unknown one."""
    if not previous.version:
        raise previous.refusal()
    return previous.version


def resolve_batch(previous: Sequence[Previous]) -> Previous:
    """The one target of a batch rollback without a version: every instance's previous
    version must be known, and they must all run one version and come from one version.
    Returns the first instance's answer (its ``current`` and ``version`` are everyone's)."""
    currents = _grouped(previous, lambda p: p.current or "none")
    if len(currents) > 1:
        raise ValidationError(
            FIELD,
            f"the instances run different versions ({_show(currents)}), so no one version "
            "came before them all; give the version to roll back to, or roll them back "
            "one at a time",
        )
    for answer in previous:
        if not answer.version:
            raise answer.refusal()
    befores = _grouped(previous, lambda p: p.version)
    if len(befores) > 1:
        raise ValidationError(
            FIELD,
            f"the instances came to {previous[0].current!r} from different versions "
            f"({_show(befores)}); give the version to roll back to, or roll them back "
            "one at a time",
        )
    return previous[0]


def _grouped(previous: Sequence[Previous], key: Callable[[Previous], str]
             ) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for answer in previous:
        groups.setdefault(key(answer), []).append(answer.instance_id)
    return groups


def _show(groups: dict[str, list[str]]) -> str:
    parts = []
    for version, ids in groups.items():
        shown = ", ".join(ids[:_SHOWN]) + (f" and {len(ids) - _SHOWN} more"
                                          if len(ids) > _SHOWN else "")
        parts.append(f"{version}: {shown}")
    return "; ".join(parts)
