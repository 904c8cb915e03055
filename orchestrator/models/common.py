"""Status words, defaults and the spec's key tables, shared by all value types."""

from __future__ import annotations

from enum import StrEnum

DEFAULT_TIMEOUT = 300
DEFAULT_RETRY_COUNT = 3
DEFAULT_LIMIT = 100
DEFAULT_OFFSET = 0
DEFAULT_BATCH_SIZE = "1"

KIND_DEPLOY = "deploy"
KIND_ROLLBACK = "rollback"


class Status(StrEnum):
    """Status word of a run (deployment or rollback) and of one instance in it."""

    PENDING = "pending"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        """True for ``completed``, ``failed`` and ``cancelled``: nothing more will happen."""
        return self in (Status.COMPLETED, Status.FAILED, Status.CANCELLED)


#: JSON tags of each spec struct, transcribed from interface-spec.md.
SPEC_KEYS: dict[str, frozenset[str]] = {
    "DeployParams": frozenset(
        {"service", "version", "instances", "package_url", "deploy_id", "timeout", "retry_count"}
    ),
    "DeployResult": frozenset(
        {"deploy_id", "service", "version", "status", "total_instances", "started_at"}
    ),
    "DeployStatus": frozenset(
        {
            "deploy_id",
            "service",
            "version",
            "status",
            "progress",
            "instances",
            "started_at",
            "updated_at",
        }
    ),
    "DeployStatus.progress": frozenset({"total", "completed", "failed", "pending"}),
    "DeployStatus.instances[]": frozenset(
        {
            "instance_id",
            "current_version",
            "target_version",
            "started_at",
            "completed_at",
            "error_message",
        }
    ),
    "CancelResult": frozenset({"deploy_id", "status", "cancelled_at"}),
    "ServiceVersions": frozenset(
        {"service", "instances", "version_summary", "total_instances", "updated_at"}
    ),
    "ServiceVersions.instances[]": frozenset({"instance_id", "version", "last_updated"}),
    "InstanceQueryParams": frozenset({"service_name", "version", "limit", "offset"}),
    "ServiceInstances": frozenset({"service", "instances", "total", "limit", "offset"}),
    "ServiceInstances.instances[]": frozenset(
        {"instance_id", "host", "port", "version", "last_heartbeat", "metadata"}
    ),
    "InstanceRollbackParams": frozenset(
        {"instance_id", "target_version", "package_url", "force", "timeout"}
    ),
    "RollbackResult": frozenset(
        {"rollback_id", "instance_id", "target_version", "status", "started_at"}
    ),
    "BatchRollbackParams": frozenset(
        {"service", "target_version", "package_url", "instances", "force", "timeout"}
    ),
    "BatchRollbackResult": frozenset(
        {
            "rollback_id",
            "service",
            "target_version",
            "status",
            "instances",
            "total_instances",
            "started_at",
        }
    ),
}

#: Keys floy adds beyond the spec, per spec struct; all optional on input.
EXTENSION_KEYS: dict[str, frozenset[str]] = {
    **{name: frozenset() for name in SPEC_KEYS},
    "DeployParams": frozenset({"batch_size", "max_failures", "package_sha256", "auto_rollback",
                               "node", "steps", "analysis"}),
    "DeployStatus": frozenset(
        {"kind", "error_message", "batch_size", "max_failures", "rollback_id", "finished_at",
         "canary"}
    ),
    "DeployStatus.progress": frozenset({"in_progress", "cancelled"}),
    "DeployStatus.instances[]": frozenset(
        {"status", "attempts", "phase", "batch", "previous_version"}
    ),
    "InstanceRollbackParams": frozenset({"rollback_id"}),
    "BatchRollbackParams": frozenset({"batch_size", "max_failures", "rollback_id"}),
}

_INSTANCE_SPEC_KEYS = frozenset({"instance_id", "service", "host", "port", "metadata"})
