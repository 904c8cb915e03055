"""The contract's value types: the interface spec's structs, 1:1 in snake_case.

Each type is a frozen, slotted dataclass with ``to_dict()``, whose keys are
exactly the spec's JSON tags plus the documented extension keys, and a
``from_dict()`` classmethod that round-trips it. ``from_dict`` checks JSON
types only (a bool is not an int, arrays are lists or tuples, metadata is a
``dict[str, str]``) and raises :class:`~orchestrator.errors.ValidationError`
naming the offending field by its path (``progress.total``,
``instances[2].instance_id``). Semantic checks (names, URLs, ranges) live in
:mod:`orchestrator.domain.validation`.

Conventions:

- Lists are stored as tuples (a list passed to a constructor is converted).
- ``dict`` fields (``metadata``, ``version_summary``) are plain dicts; the
  dataclass is frozen but the dict is not, and a value holding one cannot be
  hashed. ``to_dict`` copies them.
- Times are timezone-aware UTC ``datetime`` objects, written with
  :func:`~orchestrator.timefmt.format_time`; ``None`` is written as ``null``.
- ``from_dict`` of a *params* type (input) rejects unknown keys; ``from_dict``
  of a *result* type ignores them, so an older client reads a newer server.
- Extension keys (not in the spec) are optional in ``from_dict``.
"""

from __future__ import annotations

from orchestrator.models.common import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_LIMIT,
    DEFAULT_OFFSET,
    DEFAULT_RETRY_COUNT,
    DEFAULT_TIMEOUT,
    EXTENSION_KEYS,
    KIND_DEPLOY,
    KIND_ROLLBACK,
    SPEC_KEYS,
    Status,
)
from orchestrator.models.deploy import (
    CancelResult,
    DeployParams,
    DeployResult,
)
from orchestrator.models.rollback import (
    BatchRollbackParams,
    BatchRollbackResult,
    InstanceRollbackParams,
    RollbackResult,
)
from orchestrator.models.status import (
    DeployStatus,
    InstanceStatus,
    Progress,
)
from orchestrator.models.versions import (
    InstanceInfo,
    InstanceQueryParams,
    InstanceSpec,
    InstanceVersion,
    ServiceInstances,
    ServiceVersions,
)

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_LIMIT",
    "DEFAULT_OFFSET",
    "DEFAULT_RETRY_COUNT",
    "DEFAULT_TIMEOUT",
    "EXTENSION_KEYS",
    "KIND_DEPLOY",
    "KIND_ROLLBACK",
    "SPEC_KEYS",
    "BatchRollbackParams",
    "BatchRollbackResult",
    "CancelResult",
    "DeployParams",
    "DeployResult",
    "DeployStatus",
    "InstanceInfo",
    "InstanceQueryParams",
    "InstanceRollbackParams",
    "InstanceSpec",
    "InstanceStatus",
    "InstanceVersion",
    "Progress",
    "RollbackResult",
    "ServiceInstances",
    "ServiceVersions",
    "Status",
]
