"""Where a run's instances play: on the worker, on one pinned execution node, or grouped by
each instance's ``execution_node`` label.

An instance registered with the metadata label ``execution_node: <node>`` has its part of
every run that is not pinned (``DeployParams.node``) played on that configured node;
unlabelled instances play on the worker. A run whose instances fall in several groups plays
them group after group, in the order of each group's first instance, one ansible-playbook
per group; the serial batches keep the run's first batch size inside every group, batch
numbers go on across groups, and the failure budget is the run's: a group starts only while
it is not spent (the same rules as a resumed run).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from orchestrator.domain.batching import batch_sizes
from orchestrator.errors import ValidationError

#: The instance metadata key that names the execution node an instance plays on.
NODE_LABEL = "execution_node"


def labels_of(instance_ids: Sequence[str], metadata: Mapping[str, Mapping[str, str]],
              nodes: frozenset[str]) -> tuple[str, ...]:
    """Each instance's ``execution_node`` label ("" when unlabelled), checked against the
    configured ``nodes``: a label naming no configured node is a ValidationError naming the
    instance. Empty when no instance is labelled."""
    labels = []
    for index, instance_id in enumerate(instance_ids):
        label = metadata.get(instance_id, {}).get(NODE_LABEL, "")
        if label and label not in nodes:
            known = ", ".join(sorted(nodes)) or "none is configured"
            raise ValidationError(
                f"instances[{index}]",
                f"instance {instance_id!r} has {NODE_LABEL} {label!r}, which is not a "
                f"configured execution node (configured: {known})")
        labels.append(label)
    return tuple(labels) if any(labels) else ()


def grouped(instance_ids: Sequence[str], labels: Sequence[str]) -> list[tuple[str, list[str]]]:
    """The instances by node label, each group in the order given, the groups in the order
    of their first instance."""
    if not labels:
        return [("", list(instance_ids))] if instance_ids else []
    groups: dict[str, list[str]] = {}
    for instance_id, label in zip(instance_ids, labels, strict=True):
        groups.setdefault(label, []).append(instance_id)
    return list(groups.items())


def group_batch_numbers(batch_size: str, group_sizes: Sequence[int]) -> list[int]:
    """1-based batch numbers of a run played group after group: the run's first batch
    size inside every group, numbers going on across groups."""
    size = (batch_sizes(batch_size, sum(group_sizes)) or [1])[0]
    out: list[int] = []
    for count in group_sizes:
        first = (out[-1] + 1) if out else 1
        out.extend(first + n // size for n in range(count))
    return out
