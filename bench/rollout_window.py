"""The rollout controller's read of a stage window: time and memory per look.

At each look the controller reads what the gateways logged for the route
since the stage began (:meth:`cutover.store.Store.gateway_window`). A route at
500 requests/s logs 1.8 million rows an hour, so this read is the look's cost.
``gateway_window`` aggregates in the database (counts and sums per arm and
slice, latency and time to first token in 0.5% log bins), so what reaches
Python does not grow with the window.

Figures, for each size in ``--rows`` (a fresh database each; PostgreSQL with
``--db postgresql://...``, a temporary SQLite file by default):

* reference  the rows themselves read into Python, as a per-row reader must
             (the same columns, each row touched once, the values kept in
             lists): what the controller did before the aggregation;
* window     ``gateway_window`` (what the controller does now, with one slice);

each with its wall time (best of ``--repeat``) and the peak of memory
allocated in Python during the call (``tracemalloc``), and the ratios.

Nothing here asserts; it prints the figures (``--json`` also writes them)::

    python bench/rollout_window.py
    python bench/rollout_window.py --rows 100000,400000 --db postgresql://postgres@127.0.0.1/test
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import tempfile
import time
import tracemalloc
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from cutover.store import GatewayRequestRow, Store, open_store
from cutover.store._schema import gateway_requests

ROUTE = "support-bot"


def fill(store: Store, n: int, since: datetime, seed: int = 1) -> None:
    """``n`` logged requests over the hour after ``since``: 5% on the candidate, 10% on
    the medical slice, 1% errors, 2% refusals, 20,000 sessions, and feedback on the 1/16
    whose id starts with ``a`` (negative on 1/16 of those)."""
    rng = random.Random(seed)
    step = 3600.0 / n
    batch: list[GatewayRequestRow] = []
    for i in range(n):
        ok = rng.random() > 0.01
        batch.append(
            GatewayRequestRow(
                request_id=uuid.UUID(int=rng.getrandbits(128)).hex,
                ts=since + timedelta(seconds=i * step),
                route=ROUTE,
                arm="candidate" if rng.random() < 0.05 else "baseline",
                target="openai:m",
                status=200 if ok else 503,
                latency_ms=rng.lognormvariate(6.7, 0.5),
                ttft_ms=rng.lognormvariate(5.0, 0.5) if ok else None,
                cost_usd=0.002 if ok else None,
                key_hash=f"k{rng.randrange(20_000)}",
                refused=(rng.random() < 0.02) if ok else None,
                checks={"json_valid": int(rng.random() < 0.01)} if ok else None,
                slice="medical" if rng.random() < 0.1 else None,
            )
        )
        if len(batch) == 5_000:
            store.write_gateway_requests(batch)
            batch = []
    store.write_gateway_requests(batch)
    with store._transaction("bench feedback", write=True) as conn:
        g = gateway_requests
        conn.execute(
            g.update()
            .where(sa.func.substr(g.c.request_id, 1, 1) == "a")
            .values(
                feedback_score=sa.case(
                    (sa.func.substr(g.c.request_id, 2, 1) == "0", -1.0), else_=1.0
                )
            )
        )
    if store.dialect == "postgresql":  # planner statistics, as autovacuum keeps them live
        with store._transaction("bench analyze", write=True) as conn:
            conn.exec_driver_sql("ANALYZE gateway_requests")


def read_rows(store: Store, since: datetime) -> int:
    """The reference: every row of the window into Python, values kept (the old way)."""
    g = gateway_requests
    query = sa.select(
        g.c.arm, g.c.slice, g.c.status, g.c.latency_ms, g.c.ttft_ms, g.c.cost_usd,
        g.c.feedback_score, g.c.key_hash, g.c.refused, g.c.error_class, g.c.checks,
    ).where(g.c.route == ROUTE, g.c.ts >= since)  # fmt: skip
    latency: list[float] = []
    ttft: list[float] = []
    cost: list[float] = []
    keys: set[str] = set()
    rows = 0
    with store._transaction("bench read", write=False) as conn:
        for _arm, _label, status, lat, first, usd, _score, key, _ref, _err, _checks in conn.execute(
            query
        ):
            rows += 1
            if status < 400:
                latency.append(float(lat))
                if first is not None:
                    ttft.append(float(first))
                if usd is not None:
                    cost.append(float(usd))
            if key is not None:
                keys.add(key)
    return rows


def measure(call: Callable[[], Any], repeat: int) -> tuple[float, float]:
    """Best wall time (s) and peak Python allocation (MB) of ``call``."""
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - started)
    tracemalloc.start()
    call()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return best, peak / 1e6


def fresh_database(admin_url: str | None, tmp: Path, n: int) -> str:
    if admin_url is None:
        return f"sqlite:///{tmp}/window-{n}.db"
    engine = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    name = f"cutover_bench_{uuid.uuid4().hex[:8]}"
    with engine.connect() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE {name}")
    engine.dispose()
    return sa.make_url(admin_url).set(database=name).render_as_string(hide_password=False)


def drop_database(admin_url: str | None, url: str) -> None:
    if admin_url is None:
        return
    engine = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {sa.make_url(url).database} WITH (FORCE)")
    engine.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", default="100000,400000", help="comma-separated window sizes")
    parser.add_argument("--db", help="an admin PostgreSQL URL (a database is made per size)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    print(
        f"python {platform.python_version()}, {os.cpu_count()} cpus, "
        f"load {os.getloadavg()[0]:.2f}; {'PostgreSQL' if args.db else 'SQLite'}",
        flush=True,
    )
    since = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in (int(v) for v in args.rows.split(",")):
            url = fresh_database(args.db, Path(tmp), n)
            try:
                with open_store(url) as store:
                    started = time.perf_counter()
                    fill(store, n, since)
                    print(
                        f"{n:,} rows written in {time.perf_counter() - started:.0f} s", flush=True
                    )
                    ref_s, ref_mb = measure(lambda: read_rows(store, since), args.repeat)
                    win_s, win_mb = measure(
                        lambda: store.gateway_window(ROUTE, since, slices=("medical",)),
                        args.repeat,
                    )
            finally:
                drop_database(args.db, url)
            row = {
                "rows": n,
                "reference_s": ref_s,
                "reference_mb": ref_mb,
                "window_s": win_s,
                "window_mb": win_mb,
            }
            results.append(row)
            print(
                f"{n:>9,} rows | reference {ref_s:6.2f} s {ref_mb:7.1f} MB | window "
                f"{win_s:6.2f} s {win_mb:6.2f} MB | time x{win_s / ref_s:.2f}, "
                f"memory x{win_mb / ref_mb:.4f}",
                flush=True,
            )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
