"""Serial batches: how a run's instances split into the batches Ansible's ``serial`` forms."""

from __future__ import annotations

import math


def batch_sizes(batch_size: str, total: int) -> list[int]:
    """Sizes of the serial batches Ansible will form (same rounding as ``serial``)."""
    if total <= 0:
        return []
    if batch_size.endswith("%"):
        size = max(1, math.floor(int(batch_size[:-1]) / 100.0 * total))
    else:
        size = max(1, int(batch_size))
    sizes = []
    remaining = total
    while remaining > 0:
        sizes.append(min(size, remaining))
        remaining -= size
    return sizes


def batch_numbers(batch_size: str, total: int) -> list[int]:
    """1-based batch number of each position in a run of ``total`` instances."""
    out: list[int] = []
    for number, size in enumerate(batch_sizes(batch_size, total), start=1):
        out.extend([number] * size)
    return out
