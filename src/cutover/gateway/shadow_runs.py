"""Reading shadow runs back: the Pairs a route's shadow traffic recorded, as one run.

``cutover compare --from-shadow ROUTE --since 24h`` copies the route's daily
shadow runs in the window into one run and sends it through the same report
pipeline as every other source of Pairs.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import sqlalchemy as sa

from cutover.errors import InputError
from cutover.gateway.shadow import utc_day
from cutover.records import Pair
from cutover.store._schema import ObservationRow, RunInfo, run_info_from_row, runs
from cutover.suites._case import Case

if TYPE_CHECKING:
    from cutover.store import Store


def parse_since(text: str) -> timedelta:
    """``24h``, ``90m``, ``7d``, ``3600s`` -> a timedelta."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    text = text.strip().lower()
    if len(text) < 2 or text[-1] not in units:
        raise ValueError(f"'{text}' is not a duration like 24h, 90m, 7d")
    try:
        amount = float(text[:-1])
    except ValueError:
        raise ValueError(f"'{text}' is not a duration like 24h, 90m, 7d") from None
    if amount <= 0:
        raise ValueError(f"the duration '{text}' must be positive")
    return timedelta(seconds=amount * units[text[-1]])


def shadow_runs(engine: sa.Engine, alias: str, since: datetime) -> list[RunInfo]:
    """The route's daily shadow runs created since ``since`` (oldest first)."""
    query = (
        sa.select(runs)
        .where(
            runs.c.kind == "shadow",
            runs.c.fingerprint.startswith(f"shadow:{alias}:", autoescape=True),
            runs.c.created_at >= since - timedelta(days=1),
        )
        .order_by(runs.c.created_at, runs.c.id)
    )
    with engine.connect() as conn:
        found = [run_info_from_row(row) for row in conn.execute(query)]
    # A daily run created before ``since`` may still hold requests inside the window.
    cutoff = utc_day(since)
    return [r for r in found if str(r.meta.get("day", "")) >= cutoff]


def collect_shadow_run(store: Store, alias: str, since: timedelta) -> tuple[RunInfo, int, int]:
    """The route's shadow Pairs of the window copied into ONE new run (kind ``shadow``).

    Returns ``(run, source runs, pairs)``. The window is counted in whole UTC
    days: every daily run whose day is not before the day ``since`` ago is taken.
    The copy is what the report pipeline reads, like any other run.
    """
    start = datetime.now(UTC) - since
    sources = shadow_runs(store.engine, alias, start)
    if not sources:
        raise InputError(
            f"no shadow traffic for route '{alias}' since {start:%Y-%m-%d %H:%M} UTC "
            f"in '{store.safe_url}'",
            field="--from-shadow",
            hint="the gateway writes shadow Pairs to its 'store'; pass it with --db",
        )
    last = sources[-1]
    run = store.create_run(
        fingerprint=f"shadow-compare:{alias}:{uuid.uuid4().hex}",
        kind="shadow",
        old_target=last.old_target,
        new_target=last.new_target,
        old_label=last.old_label,
        new_label=last.new_label,
        suite_name=f"shadow:{alias}",
        meta={
            "route": alias,
            "since": start.isoformat(),
            "source_runs": [r.id for r in sources],
        },
    )
    for source in sources:
        store.build_pairs(source.id)
        batch: list[Pair] = []
        for pair in store.iter_pairs(source.id):
            batch.append(pair)
            if len(batch) >= 1000:
                _copy_pairs(store, run.id, source, batch)
                batch = []
        _copy_pairs(store, run.id, source, batch)
    pairs = store.build_pairs(run.id)
    store.set_run_status(run.id, "complete")
    return run, len(sources), pairs


def _copy_pairs(store: Store, run_id: str, source: RunInfo, batch: Sequence[Pair]) -> None:
    complete = [p for p in batch if p.old is not None and p.new is not None]
    if not complete:
        return
    store.add_cases(
        run_id,
        [p.case or Case(id=p.case_id, messages=p.input or [], tags=dict(p.tags)) for p in complete],
    )
    rows: list[ObservationRow] = []
    for p in complete:
        assert p.old is not None and p.new is not None
        rows.append(ObservationRow(p.case_id, "old", p.repeat, source.old_target, p.old))
        rows.append(ObservationRow(p.case_id, "new", p.repeat, source.new_target, p.new))
    store.write_observations(run_id, rows)


__all__ = ["collect_shadow_run", "parse_since", "shadow_runs"]
