"""Store helpers for tests: proving that a refused request stored nothing."""

from __future__ import annotations

import sqlalchemy as sa

from orchestrator.store import Store
from orchestrator.store import schema as t


def table_counts(store: Store) -> dict[str, int]:
    """Row count of every table floy writes (a refused request must leave them unchanged)."""
    with store.read() as conn:
        return {
            table.name: int(
                conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
            )
            for table in (t.instances, t.runs, t.run_instances, t.instance_locks, t.releases,
                          t.actions)
        }
