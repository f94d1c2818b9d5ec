"""The routes' live weights, shared by every gateway replica through the store.

The store's ``gateway_routes`` table is the source of truth: when a gateway
starts, each route of its config is written there only if it is absent, so a
weight changed through the admin API survives restarts and is not undone by a
replica started with an older config. Each replica keeps the weights in
memory; the request path reads :meth:`RouteState.weight` (a dict lookup) and
never the database.

How a change reaches the other replicas:

- PostgreSQL: the change's transaction sends ``NOTIFY cutover_routes, '<alias>'``;
  every replica LISTENs on a psycopg 3 async connection (a background task)
  and reloads that route's row at once. Every :data:`PG_POLL_S` seconds, and
  whenever the listening connection is (re)opened, all rows are reloaded as a
  safety net.
- SQLite (one host): all rows are reloaded every :data:`SQLITE_POLL_S` seconds.
- No store: the weights live in this process only (tests, one replica).

A database outage never stops traffic: the last weights known stay in force
and the tasks keep retrying, with one exception, the **failsafe**: a route
whose weight was set by a rollout controller (``updated_by`` ``rollout:...``)
falls back to weight 0 in this replica when the store has been unreachable
for ``failsafe_after_s``, or when the route's running rollout has not heard
from its controller (heartbeat) for that long. A canary nobody can watch is
not left running. It is undone by the next successful read that shows a live
controller, or by any change of the weight.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import replace

from sqlalchemy.engine import make_url

from cutover.gateway.config import GatewayConfig
from cutover.store import Store
from cutover.store._routes import ROUTES_CHANNEL, AuditRow, RouteRow
from cutover.store._schema import utcnow

PG_POLL_S = 5.0
SQLITE_POLL_S = 0.5
RETRY_S = 1.0
LISTEN_WAIT_S = 5.0
"""How long :meth:`RouteState.start` waits for the LISTEN connection."""
_AUDIT_IN_MEMORY = 1000

logger = logging.getLogger(__name__)


class RouteState:
    """Every route's current weight, kept in step with the store.

    ``seeds`` maps each alias to its config weight and candidate spec (or
    ``None``); ``opener`` opens the store (called off the event loop), or is
    ``None`` for in-process state only.
    """

    def __init__(
        self,
        seeds: Mapping[str, tuple[float, str | None]],
        opener: Callable[[], Store] | None,
        *,
        poll_s: float | None = None,
        close_store: bool = True,
        failsafe_after_s: float | None = None,
    ) -> None:
        now = utcnow()
        self._seeds = dict(seeds)
        self._rows: dict[str, RouteRow] = {
            alias: RouteRow(alias, weight, candidate, 1, now, "config")
            for alias, (weight, candidate) in seeds.items()
        }
        self._weights = {alias: row.weight for alias, row in self._rows.items()}
        self._opener = opener
        self._poll_s = poll_s
        self._close_store = close_store
        self._store: Store | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._audit: deque[AuditRow] = deque(maxlen=_AUDIT_IN_MEMORY)
        self._listening = asyncio.Event()
        self._failsafe_after_s = failsafe_after_s
        self._last_ok = time.monotonic()
        self._silent_controllers: set[str] = set()
        self._running_rollouts: set[str] = set()
        """Routes the last successful read showed with a running rollout."""
        self.failsafe: set[str] = set()
        """Routes held at weight 0 by the failsafe right now."""

    @classmethod
    def for_config(cls, config: GatewayConfig, store: object | None = None) -> RouteState:
        """The state of ``config``'s routes: in ``store`` if it is a :class:`Store`
        (left open at the end), else in the config's ``store`` URL, else in memory."""
        seeds = {
            alias: (
                rc.weight if rc.candidate is not None else 0.0,
                rc.candidate.spec if rc.candidate is not None else None,
            )
            for alias, rc in config.routes.items()
        }
        failsafe = config.failsafe_after_s
        if isinstance(store, Store):
            given = store
            return cls(seeds, lambda: given, close_store=False, failsafe_after_s=failsafe)
        if store is None and config.store is not None:
            url = config.store
            return cls(seeds, lambda: Store.open(url), failsafe_after_s=failsafe)
        return cls(seeds, None)

    # -- the hot path -------------------------------------------------------------

    def weight(self, alias: str) -> float:
        """The route's current candidate weight (0-100)."""
        return self._weights.get(alias, 0.0)

    def row(self, alias: str) -> RouteRow | None:
        return self._rows.get(alias)

    def rows(self) -> list[RouteRow]:
        return [self._rows[alias] for alias in sorted(self._rows)]

    @property
    def listening(self) -> bool:
        """Whether the PostgreSQL LISTEN connection is open."""
        return self._listening.is_set()

    @property
    def shared(self) -> bool:
        """Whether the state lives in a store (else in this process only)."""
        return self._opener is not None

    # -- lifecycle ------------------------------------------------------------------

    async def start(self) -> None:
        """Open the store, seed absent routes, load all, start the background tasks."""
        if self._opener is None:
            return
        with contextlib.suppress(Exception):
            await self._connect_store()
        self._tasks.append(asyncio.create_task(self._poll_loop()))
        if self._store is None or self._store.dialect == "postgresql":
            self._tasks.append(asyncio.create_task(self._listen_loop()))
            if self._store is not None:  # serve once changes are heard (or give up waiting)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._listening.wait(), LISTEN_WAIT_S)

    async def stop(self) -> None:
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        store, self._store = self._store, None
        if store is not None and self._close_store:
            await asyncio.to_thread(store.close)

    async def _connect_store(self) -> Store:
        if self._store is None:
            assert self._opener is not None
            opener = self._opener
            seeds = [(a, w, c) for a, (w, c) in self._seeds.items()]

            def open_and_seed() -> Store:
                store = opener()
                try:
                    store.seed_gateway_routes(seeds)
                except BaseException:
                    store.close()
                    raise
                return store

            try:
                self._store = await asyncio.to_thread(open_and_seed)
            except Exception as exc:
                logger.warning("route state: cannot open the store (%s); retrying", exc)
                raise
            await self.reload()
        return self._store

    # -- reading the store ----------------------------------------------------------

    def _apply(self, row: RouteRow) -> None:
        current = self._rows.get(row.alias)
        if current is None:
            return  # a route this replica's config does not serve
        if row.version < current.version:
            return  # an older read arriving late
        self._rows[row.alias] = row
        self._weights[row.alias] = 0.0 if row.alias in self.failsafe else row.weight

    async def reload(self, alias: str | None = None) -> None:
        """Read one route (or all) from the store into memory."""
        store = self._store
        if store is None:
            return
        if alias is None:
            rows = await asyncio.to_thread(store.gateway_routes)
            self._running_rollouts, self._silent_controllers = await asyncio.to_thread(
                self._rollouts, store, rows
            )
            self._last_ok = time.monotonic()
            for row in rows:
                self._apply(row)
            self.check_failsafe()
            return
        one = await asyncio.to_thread(store.gateway_route, alias)
        if one is None:
            self._last_ok = time.monotonic()
            return
        # the rollout that set this weight may have finished with it: read its status with
        # the row, or a store outage before the next full read would hold a finished
        # rollout's route at the baseline
        running, silent = await asyncio.to_thread(self._rollouts, store, [one])
        self._last_ok = time.monotonic()
        self._running_rollouts = (self._running_rollouts - {alias}) | running
        self._silent_controllers = (self._silent_controllers - {alias}) | silent
        self._apply(one)
        self.check_failsafe()

    def _rollouts(self, store: Store, rows: list[RouteRow]) -> tuple[set[str], set[str]]:
        """Routes with a running rollout whose weight it set, and those whose controller has
        not been heard (heartbeat) for the failsafe time."""
        limit = self._failsafe_after_s
        running: set[str] = set()
        silent: set[str] = set()
        if limit is None:
            return running, silent
        now = None
        for row in rows:
            if row.alias not in self._rows or not row.updated_by.startswith("rollout:"):
                continue
            rollout = store.latest_rollout(row.alias)
            if rollout is None or rollout.status != "running":
                continue
            running.add(row.alias)
            if now is None:
                now = store.database_now()  # the clock the heartbeat was written on
            heard = rollout.heartbeat_at or rollout.updated_at
            if (now - heard).total_seconds() > limit:
                silent.add(row.alias)
        return running, silent

    def check_failsafe(self) -> None:
        """Hold at 0 the routes a rollout set whose store or controller went quiet too long."""
        limit = self._failsafe_after_s
        if limit is None:
            return
        blind = time.monotonic() - self._last_ok > limit
        for alias, row in self._rows.items():
            held = (
                row.updated_by.startswith("rollout:")
                and alias in self._running_rollouts
                and (blind or alias in self._silent_controllers)
            )
            if held and alias not in self.failsafe:
                why = "the store is unreachable" if blind else "its rollout controller is silent"
                logger.warning(
                    "failsafe: route %s falls back to the baseline (%s for over %gs)",
                    alias,
                    why,
                    limit,
                )
                self.failsafe.add(alias)
            elif not held and alias in self.failsafe:
                logger.warning("failsafe: route %s is back to weight %g", alias, row.weight)
                self.failsafe.discard(alias)
            self._weights[alias] = 0.0 if held else row.weight

    async def _poll_loop(self) -> None:
        while True:
            store = self._store
            interval = self._poll_s
            if interval is None:
                interval = (
                    PG_POLL_S
                    if store is not None and store.dialect == "postgresql"
                    else SQLITE_POLL_S
                )
            interval = interval if store is not None else RETRY_S
            await self._sleep_watching(interval)
            try:
                if self._store is None:
                    await self._connect_store()
                else:
                    await self.reload()
            except Exception as exc:  # noqa: BLE001 - the store is down: keep the last weights
                logger.warning("route state: reload failed (%s)", exc)
            self.check_failsafe()

    async def _sleep_watching(self, seconds: float) -> None:
        """Sleep, checking the failsafe often enough that a store outage holds a rollout's
        route within a quarter of the failsafe time of its limit, however long the poll."""
        limit = self._failsafe_after_s
        tick = seconds if limit is None else min(seconds, limit / 4)
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            await asyncio.sleep(min(tick, left))
            self.check_failsafe()

    async def _listen_loop(self) -> None:
        import psycopg

        while True:
            store = self._store
            if store is None:
                await asyncio.sleep(RETRY_S)
                continue
            if store.dialect != "postgresql":
                return
            dsn = (
                make_url(store.url)
                .set(drivername="postgresql")
                .render_as_string(hide_password=False)
            )
            try:
                async with await psycopg.AsyncConnection.connect(
                    dsn, autocommit=True, connect_timeout=5
                ) as conn:
                    await conn.execute(f"LISTEN {ROUTES_CHANNEL}")
                    self._listening.set()
                    await self.reload()  # what changed while we were not listening
                    async for note in conn.notifies():
                        await self.reload(note.payload or None)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - never let the listener die
                logger.warning("route state: LISTEN connection lost (%s); reconnecting", exc)
            finally:
                self._listening.clear()
            await asyncio.sleep(RETRY_S)

    # -- changes --------------------------------------------------------------------

    async def set_weight(
        self, alias: str, weight: float, *, actor: str, action: str
    ) -> tuple[RouteRow, RouteRow] | None:
        """Change the route's weight everywhere; ``(before, after)``, ``None`` if unknown.

        Applied to this replica at once; the others hear it through the store.
        """
        if alias not in self._rows:
            return None
        if self._opener is None:
            before = self._rows[alias]
            after = replace(
                before,
                weight=float(weight),
                version=before.version + 1,
                updated_at=utcnow(),
                updated_by=actor,
            )
            self._audit.appendleft(
                AuditRow(
                    id=len(self._audit) + 1,
                    ts=after.updated_at,
                    actor=actor,
                    action=action,
                    alias=alias,
                    before=_state(before),
                    after=_state(after),
                )
            )
            self._apply(after)
            return before, after
        store = await self._connect_store()
        result = await asyncio.to_thread(
            store.set_gateway_route_weight, alias, weight, actor=actor, action=action
        )
        if result is not None:
            self._apply(result[1])
        return result

    async def audit(self, limit: int) -> list[AuditRow]:
        """The newest ``limit`` changes, newest first."""
        if self._opener is None:
            return list(self._audit)[:limit]
        store = await self._connect_store()
        return await asyncio.to_thread(store.gateway_audit, limit)


def _state(row: RouteRow) -> dict[str, object]:
    return {"weight": row.weight, "version": row.version, "candidate": row.candidate}


__all__ = ["PG_POLL_S", "SQLITE_POLL_S", "RouteState"]
