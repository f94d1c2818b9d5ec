"""Shadow traffic (dual-write): the same request sent to a third target, off the request path.

A finished request of a route with ``shadow`` becomes a
:class:`~cutover.gateway.shadow_jobs.ShadowJob` (built without parsing); it
is sampled with probability ``sample`` and handed to :meth:`Shadow.accept`,
which starts the shadow call:

- only while the route's shadow spending of the current UTC day is under
  ``budget_usd_per_day`` (the ``cost_usd`` of every shadow Observation is added
  up per route per day; once at or over the budget, requests are skipped and
  counted in :attr:`Shadow.skipped_budget`);
- only while fewer than ``max_pending`` shadow calls wait or run (else counted
  in :attr:`Shadow.skipped_busy`).

With a store given by URL the gateway runs this class in its store worker
process (:mod:`cutover.gateway.worker`), so shadow calls and their writes never
share the request path's CPU time; handed a store object (tests, embedding),
it runs in the gateway's own event loop.

The shadow call is an ``asyncio`` task (at most ``concurrency`` calls at once)
through :class:`~cutover.calls.TargetCaller` (retries, limits, pricing; it never
raises). The request is never awaited on it and never fails because of it.

Both Observations become a Pair of one run per route per UTC day (kind
``shadow``, suite ``shadow:<alias>``): a Case per request (id = the request id,
tags ``route`` and ``arm``), arm ``old`` = what the gateway relayed (the
primary, read from the answer or the relayed stream chunks by the providers'
own parsers), arm ``new`` = the shadow target. They are written in batches by
a background task through a bounded queue, like the request log: a full queue
drops (counted), a failed write is counted and retried; traffic never waits
for the database.

Shadowed: ``POST /v1/chat/completions`` and ``POST /v1/messages``, stream or
not, in either dialect; an Anthropic request is translated to OpenAI form
(:mod:`cutover.gateway.translate`) for the shadow call and the Case.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from cutover.calls import TargetCaller
from cutover.gateway._batching import FlushLoop
from cutover.gateway.config import GatewayConfig
from cutover.gateway.shadow_jobs import (
    ShadowFront,
    ShadowJob,
    ShadowRoute,
    job_request,
    primary_observation,
)
from cutover.records import ModelRequest, Observation
from cutover.store._schema import ObservationRow, RunInfo
from cutover.suites._case import Case
from cutover.targets import Target

SHADOW_CONCURRENCY = 32
MAX_PENDING = 1024
QUEUE_SIZE = 10_000
BATCH_SIZE = 500
FLUSH_INTERVAL_S = 0.5
PAIRS_EVERY_S = 30.0
_REQUEST_KEYS = ("model", "messages", "tools", "tool_choice", "response_format", "stream")
_DROPPED_PARAMS = ("stream_options", "user", "n")


class ShadowStore(Protocol):
    """What shadow writes need of a store (:class:`cutover.store.Store` has it)."""

    def upsert_target(self, target: Target) -> str: ...

    def create_run(
        self,
        *,
        fingerprint: str,
        kind: str,
        old_target: str,
        new_target: str,
        old_label: str,
        new_label: str,
        repeats: int = 1,
        suite_name: str | None = None,
        suite_path: str | None = None,
        suite_hash: str | None = None,
        meta: dict[str, Any] | None = None,
    ) -> RunInfo: ...

    def find_resumable_run(self, fingerprint: str) -> RunInfo | None: ...

    def run_cost(self, run_id: str, arm: str) -> float: ...

    def add_cases(self, run_id: str, cases_: Sequence[Case]) -> None: ...

    def write_observations(self, run_id: str, rows: Sequence[ObservationRow]) -> None: ...

    def build_pairs(self, run_id: str) -> int: ...


@dataclass(slots=True)
class ShadowRecord:
    """One shadowed request, waiting to be written."""

    alias: str
    day: str
    case: Case
    primary_target: Target
    primary: Observation
    shadow: Observation


@dataclass(slots=True)
class _Spend:
    day: str = ""
    usd: float = 0.0


@dataclass(slots=True)
class _RunSlot:
    run_id: str
    last_pairs: float = field(default=0.0)
    dirty: bool = False


def utc_day(now: datetime | None = None) -> str:
    return (now or datetime.now(UTC)).strftime("%Y-%m-%d")


def shadow_fingerprint(alias: str, day: str) -> str:
    return f"shadow:{alias}:{day}"


class Shadow(FlushLoop, ShadowFront):
    """The gateway's shadow caller and writer (one per :class:`~cutover.gateway.Gateway`)."""

    def __init__(
        self,
        config: GatewayConfig,
        store: Callable[[], ShadowStore] | None,
        *,
        rng: random.Random | None = None,
        callers: Mapping[str, TargetCaller] | None = None,
        concurrency: int = SHADOW_CONCURRENCY,
        max_pending: int = MAX_PENDING,
        queue_size: int = QUEUE_SIZE,
        batch_size: int = BATCH_SIZE,
        flush_interval_s: float = FLUSH_INTERVAL_S,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        ShadowFront.__init__(self, config, rng)
        self._store_fn = store
        self._store: ShadowStore | None = None
        self._open_lock = threading.Lock()
        self._given_callers = dict(callers or {})
        self._callers: dict[str, TargetCaller] = {}
        self._slots = asyncio.Semaphore(concurrency)
        self.max_pending = max_pending
        self.queue_size = queue_size
        self.batch_size = batch_size
        self.flush_interval_s = flush_interval_s
        self._clock = clock
        self._tasks: set[asyncio.Task[None]] = set()
        self._spend: dict[str, _Spend] = {}
        self._queue: deque[ShadowRecord] = deque()
        self._wake = asyncio.Event()
        self._flush_lock = asyncio.Lock()
        self._runs: dict[tuple[str, str], _RunSlot] = {}
        self._targets_done: set[str] = set()
        self._failures_in_a_row = 0
        # counters (read by tests and operators)
        self.scheduled = 0
        self.completed = 0
        self.shadow_errors = 0
        self.skipped_budget = 0
        self.skipped_busy = 0
        self.written = 0
        self.dropped = 0
        self.write_failures = 0

    @property
    def enabled(self) -> bool:
        """A route has a shadow and there is a store to keep the Pairs (else no calls)."""
        return bool(self.routes) and self._store_fn is not None

    async def run(self) -> None:
        """Write forever (see :class:`FlushLoop`), after loading today's spending."""
        await self.load_spend()
        await super().run()

    async def load_spend(self) -> None:
        """Today's shadow spending per route, from the store: a restarted gateway (or store
        worker) does not get a fresh daily budget. A store that cannot be read leaves 0."""
        if self._store_fn is None or not self.routes:
            return
        day = utc_day(self._clock())

        def spent() -> dict[str, float]:
            store = self.store()
            out: dict[str, float] = {}
            for alias in self.routes:
                info = store.find_resumable_run(shadow_fingerprint(alias, day))
                if info is not None:
                    out[alias] = store.run_cost(info.id, "new")
            return out

        try:
            found = await asyncio.to_thread(spent)
        except Exception:  # noqa: BLE001 - the budget starts at 0, as before; traffic goes on
            return
        for alias, usd in found.items():
            spend = self._spend.setdefault(alias, _Spend())
            if spend.day != day:
                spend.day, spend.usd = day, 0.0
            spend.usd = max(spend.usd, usd)

    def counters(self) -> dict[str, Any]:
        """Every counter, and each route's spending today (what ``/metrics`` shows)."""
        return {
            **self.front_counters(),
            "scheduled": self.scheduled,
            "completed": self.completed,
            "errors": self.shadow_errors,
            "skipped_budget": self.skipped_budget,
            "skipped_busy": self.skipped_busy,
            "written": self.written,
            "dropped": self.dropped,
            "write_failures": self.write_failures,
            "spent_usd": {alias: self.spent_today(alias) for alias in self.routes},
        }

    def spent_today(self, alias: str) -> float:
        spend = self._spend.get(alias)
        return spend.usd if spend is not None and spend.day == utc_day(self._clock()) else 0.0

    # -- the request path: decide and schedule, no I/O ---------------------------

    def accept(self, job: ShadowJob) -> bool:
        """Start the shadow call of a sampled job (budget and pending bound permitting)."""
        route = self.routes.get(job.alias)
        if route is None:
            return False
        budget = route.budget_usd_per_day
        if budget is not None and self.spent_today(route.alias) >= budget:
            self.skipped_budget += 1
            return False
        if len(self._tasks) >= self.max_pending:
            self.skipped_busy += 1
            return False
        task = asyncio.create_task(self._run_job(route, job))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        self.scheduled += 1
        return True

    async def _run_job(self, route: ShadowRoute, job: ShadowJob) -> None:
        """Read the job's request and primary answer, then make the shadow call."""
        primary_target = route.primary_target(job.arm)
        try:
            body = job_request(job, route)
        except Exception:  # noqa: BLE001 - nothing to shadow (the primary answered the error)
            self.skipped_unsupported += 1
            return
        primary = primary_observation(job, primary_target)
        await self._shadow(route, job.request_id, job.arm, primary_target, body, primary)

    # -- the shadow call (a task) ------------------------------------------------

    def _caller(self, target: Target) -> TargetCaller:
        key = target.key
        caller = self._callers.get(key) or self._given_callers.get(key)
        if caller is None:
            caller = TargetCaller(target)
        self._callers[key] = caller
        return caller

    async def _shadow(
        self,
        route: ShadowRoute,
        request_id: str,
        arm: str,
        primary_target: Target,
        body: Any,
        primary: Observation,
    ) -> None:
        try:
            model_request = chat_body_to_model_request(body, request_id)
            async with self._slots:
                observation = await self._caller(route.target).call(model_request)
        except Exception as exc:  # noqa: BLE001 - a shadow failure must never surface
            observation = Observation(
                target=route.target.label,
                error=f"{type(exc).__name__}: {exc}",
                error_class="unexpected_error",
                simulated=route.target.simulated,
            )
            model_request = None
        self.completed += 1
        if observation.error is not None:
            self.shadow_errors += 1
        day = utc_day(self._clock())
        spend = self._spend.setdefault(route.alias, _Spend())
        if spend.day != day:
            spend.day, spend.usd = day, 0.0
        spend.usd += observation.cost_usd or 0.0
        if model_request is None:
            return
        case = Case(
            id=request_id,
            messages=model_request.messages,
            tags={"route": route.alias, "arm": arm},
            tools=model_request.tools,
            tool_choice=model_request.tool_choice,
            response_format=model_request.response_format,
            params=model_request.params,
            source=f"gateway:{route.alias}",
        )
        self.submit(
            ShadowRecord(
                alias=route.alias,
                day=day,
                case=case,
                primary_target=primary_target,
                primary=primary,
                shadow=observation,
            )
        )

    async def wait_idle(self) -> None:
        """Wait for every scheduled shadow call (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    # -- the writer -----------------------------------------------------------------

    def submit(self, record: ShadowRecord) -> bool:
        if self._store_fn is None:
            self.dropped += 1
            return False
        if len(self._queue) >= self.queue_size:
            self.dropped += 1
            return False
        self._queue.append(record)
        if len(self._queue) >= self.batch_size:
            self._wake.set()
        return True

    def store(self) -> ShadowStore:
        if self._store_fn is None:
            raise RuntimeError("the gateway has no store")
        with self._open_lock:
            if self._store is None:
                self._store = self._store_fn()
            return self._store

    def _run_for(self, store: ShadowStore, record: ShadowRecord) -> _RunSlot:
        key = (record.alias, record.day)
        slot = self._runs.get(key)
        if slot is not None:
            return slot
        route = self.routes[record.alias]
        fingerprint = shadow_fingerprint(record.alias, record.day)
        info = store.find_resumable_run(fingerprint)
        if info is None:
            info = store.create_run(
                fingerprint=fingerprint,
                kind="shadow",
                old_target=route.baseline.key,
                new_target=route.target.key,
                old_label=route.baseline.label,
                new_label=route.target.label,
                suite_name=f"shadow:{record.alias}",
                meta={"route": record.alias, "day": record.day},
            )
        slot = _RunSlot(run_id=info.id)
        self._runs[key] = slot
        return slot

    def _write(self, batch: Sequence[ShadowRecord], *, final: bool) -> None:
        store = self.store()
        for route in self.routes.values():
            for target in (route.baseline, route.target):
                if target.key not in self._targets_done:
                    store.upsert_target(target)
                    self._targets_done.add(target.key)
        groups: dict[tuple[str, str], list[ShadowRecord]] = {}
        for record in batch:
            groups.setdefault((record.alias, record.day), []).append(record)
            if record.primary_target.key not in self._targets_done:
                store.upsert_target(record.primary_target)
                self._targets_done.add(record.primary_target.key)
        for records in groups.values():
            slot = self._run_for(store, records[0])
            store.add_cases(slot.run_id, [r.case for r in records])
            rows: list[ObservationRow] = []
            for r in records:
                rows.append(ObservationRow(r.case.id, "old", 0, r.primary_target.key, r.primary))
                rows.append(
                    ObservationRow(r.case.id, "new", 0, self.routes[r.alias].target.key, r.shadow)
                )
            store.write_observations(slot.run_id, rows)
            slot.dirty = True
        self._build_pairs(store, final=final)

    def _build_pairs(self, store: ShadowStore, *, final: bool) -> None:
        """Pairs are rebuilt at most every ``PAIRS_EVERY_S`` (and at the end)."""
        now = time.monotonic()
        for slot in self._runs.values():
            if slot.dirty and (final or now - slot.last_pairs >= PAIRS_EVERY_S):
                store.build_pairs(slot.run_id)
                slot.dirty, slot.last_pairs = False, now

    async def flush(self, *, final: bool = False) -> bool:
        """Write everything queued now; ``False`` if a write failed (records kept)."""
        async with self._flush_lock:
            while self._queue:
                n = min(self.batch_size, len(self._queue))
                batch = [self._queue.popleft() for _ in range(n)]
                try:
                    await asyncio.to_thread(self._write, batch, final=final)
                except Exception:  # noqa: BLE001 - any store failure: count, keep serving
                    self.write_failures += 1
                    self._failures_in_a_row += 1
                    room = max(self.queue_size - len(self._queue), 0)
                    keep = batch[:room]
                    self.dropped += len(batch) - len(keep)
                    self._queue.extendleft(reversed(keep))
                    return False
                self._failures_in_a_row = 0
                self.written += len(batch)
            if final:
                await self._final_pairs()
        return True

    async def _final_pairs(self) -> None:
        """Build the Pairs at shutdown; a failing store is counted, never raised."""
        try:
            await asyncio.to_thread(self._build_pairs, self.store(), final=True)
        except Exception:  # noqa: BLE001 - shutdown must finish whatever the database does
            self.write_failures += 1

    async def close(self, *, grace_s: float = 5.0) -> None:
        """Let running shadow calls finish (up to ``grace_s``), write the rest, close callers."""
        if self._tasks:
            _, pending = await asyncio.wait(list(self._tasks), timeout=grace_s)
            for task in pending:
                task.cancel()
        if self._store_fn is not None and self._queue:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.flush(final=True), grace_s)
        elif self._store_fn is not None and any(s.dirty for s in self._runs.values()):
            await self._final_pairs()
        for caller in self._callers.values():
            with contextlib.suppress(Exception):
                await caller.aclose()
        self._callers.clear()


# -- request and primary-answer conversion -------------------------------------------


def chat_body_to_model_request(body: Any, request_id: str) -> ModelRequest:
    """An OpenAI chat-completions body -> the :class:`ModelRequest` the shadow target gets."""
    if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
        raise ValueError("the request body has no messages")
    params = {k: v for k, v in body.items() if k not in _REQUEST_KEYS and k not in _DROPPED_PARAMS}
    tools = body.get("tools")
    response_format = body.get("response_format")
    return ModelRequest(
        messages=body["messages"],
        tools=tools if isinstance(tools, list) else None,
        tool_choice=body.get("tool_choice"),
        response_format=response_format if isinstance(response_format, dict) else None,
        params=params,
        case_id=request_id,
    )


__all__ = [
    "Shadow",
    "ShadowRecord",
    "ShadowRoute",
    "ShadowStore",
    "chat_body_to_model_request",
    "shadow_fingerprint",
    "utc_day",
]
