"""The store: runs, cases, observations, pairs and the response cache.

SQLite in WAL mode by default (``<CUTOVER_HOME>/cutover.db``), PostgreSQL
(``postgresql://user@host/db``) when several processes share it. The schema
is migrated to the newest revision on open (see ``migrations/``)::

    from cutover.store import open_store

    with open_store() as store:
        for run in store.list_runs():
            print(run.id, run.status, run.old_label, "->", run.new_label)
"""

from __future__ import annotations

from cutover.store._gateway import ArmStats, GatewayRequestRow
from cutover.store._schema import ARMS, RUN_KINDS, RUN_STATUSES, ObservationRow, RunInfo
from cutover.store._store import Store


def open_store(url: str | None = None) -> Store:
    """Open the store at ``url`` (default: from the settings); same as :meth:`Store.open`."""
    return Store.open(url)


__all__ = [
    "ARMS",
    "RUN_KINDS",
    "RUN_STATUSES",
    "ArmStats",
    "GatewayRequestRow",
    "ObservationRow",
    "RunInfo",
    "Store",
    "open_store",
]
