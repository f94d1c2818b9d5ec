"""Shadow traffic (dual-write): the same request sent to a third target, off the request path.

After the primary answer of a route with ``shadow`` is done, :meth:`Shadow.after_response`
decides (without I/O, without waiting) whether to shadow it:

- with probability ``sample``;
- only while the route's shadow spending of the current UTC day is under
  ``budget_usd_per_day`` (the ``cost_usd`` of every shadow Observation is added
  up per route per day; once at or over the budget, requests are skipped and
  counted in :attr:`Shadow.skipped_budget`);
- only while fewer than ``max_pending`` shadow calls wait or run (else counted
  in :attr:`Shadow.skipped_busy`).

The shadow call is an ``asyncio`` task (at most ``concurrency`` calls at once)
through :class:`~cutover.calls.TargetCaller` (retries, limits, pricing; it never
raises). The request is never awaited on it and never fails because of it.

Both Observations become a Pair of one run per route per UTC day (kind
``shadow``, suite ``shadow:<alias>``): a Case per request (id = the request id,
tags ``route`` and ``arm``), arm ``old`` = what the gateway relayed (the
primary), arm ``new`` = the shadow target. They are written in batches by a
background task through a bounded queue, like the request log: a full queue
drops (counted), a failed write is counted and retried; traffic never waits
for the database.

Shadowed today: ``POST /v1/chat/completions``, stream or not. For a stream the
primary's text, tool calls, usage and time to first token are assembled from
the chunks already relayed (kept whole on the trace when any route has a
shadow). ``POST /v1/messages`` (non-stream) is shadowed too: the Anthropic
request is translated to OpenAI form (:mod:`cutover.gateway.translate`) for the
shadow call and the Case; Anthropic streams are not shadowed yet.
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
from typing import TYPE_CHECKING, Any, Protocol

import orjson
from aiohttp import web

from cutover.calls import TargetCaller
from cutover.errors import ProviderError
from cutover.gateway._batching import FlushLoop
from cutover.gateway.config import GatewayConfig
from cutover.gateway.log import Trace
from cutover.gateway.translate import messages_request_to_chat
from cutover.pricing import cost_usd, quote
from cutover.providers.anthropic import observation_from_message
from cutover.providers.openai import observation_from_completion, usage_tokens
from cutover.records import ModelRequest, Observation, ToolCall
from cutover.store._schema import ObservationRow, RunInfo
from cutover.suites._case import Case
from cutover.targets import Target

if TYPE_CHECKING:
    pass

SHADOW_CONCURRENCY = 32
MAX_PENDING = 1024
QUEUE_SIZE = 10_000
BATCH_SIZE = 500
FLUSH_INTERVAL_S = 0.5
PAIRS_EVERY_S = 30.0
ARM_HEADER = "x-cutover-arm"
REQUEST_ID_HEADER = "x-cutover-request-id"
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

    def add_cases(self, run_id: str, cases_: Sequence[Case]) -> None: ...

    def write_observations(self, run_id: str, rows: Sequence[ObservationRow]) -> None: ...

    def build_pairs(self, run_id: str) -> int: ...


@dataclass(frozen=True, slots=True)
class ShadowRoute:
    """One route's shadow settings, ready to use."""

    alias: str
    baseline: Target
    candidate: Target | None
    target: Target
    sample: float
    budget_usd_per_day: float | None


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


class Shadow(FlushLoop):
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
        self.routes = {
            alias: ShadowRoute(
                alias=alias,
                baseline=rc.baseline,
                candidate=rc.candidate,
                target=rc.shadow.target,
                sample=rc.shadow.sample,
                budget_usd_per_day=rc.shadow.budget_usd_per_day,
            )
            for alias, rc in config.routes.items()
            if rc.shadow is not None
        }
        self._store_fn = store
        self._store: ShadowStore | None = None
        self._open_lock = threading.Lock()
        self._rng = rng or random.Random()
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
        self.skipped_sample = 0
        self.skipped_budget = 0
        self.skipped_busy = 0
        self.skipped_unsupported = 0
        self.written = 0
        self.dropped = 0
        self.write_failures = 0

    @property
    def enabled(self) -> bool:
        """A route has a shadow and there is a store to keep the Pairs (else no calls)."""
        return bool(self.routes) and self._store_fn is not None

    def spent_today(self, alias: str) -> float:
        spend = self._spend.get(alias)
        return spend.usd if spend is not None and spend.day == utc_day(self._clock()) else 0.0

    # -- the request path: decide and schedule, no I/O ---------------------------

    def after_response(
        self, trace: Trace, request: web.Request, response: web.StreamResponse
    ) -> bool:
        """Schedule the shadow call of a finished request; ``True`` if scheduled."""
        route = self.routes.get(trace.route) if trace.route is not None else None
        if route is None or trace.target is None:
            return False
        body = response.body if isinstance(response, web.Response) else None
        chunks = None if isinstance(response, web.Response) else trace.chunks
        if not isinstance(body, bytes) and (
            not chunks or not trace.keep_all_chunks or trace.error_class == "client_disconnected"
        ):  # nothing relayed, or the client left mid-stream (the output is not whole)
            self.skipped_unsupported += 1
            return False
        if not self._admit(route):
            return False
        latency_ms = (time.perf_counter() - trace.started) * 1000.0
        if isinstance(body, bytes):
            primary = _primary_observation(
                trace.target, response.status, body, latency_ms, trace.error_class
            )
        else:
            assert chunks is not None
            ttft_ms = None if trace.ttft_s is None else trace.ttft_s * 1000.0
            primary = _primary_from_stream(
                trace.target, chunks, latency_ms, ttft_ms, trace.error_class
            )
        task = asyncio.create_task(
            self._shadow(route, trace.request_id, trace.arm, trace.target, request, primary)
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        self.scheduled += 1
        return True

    def _admit(self, route: ShadowRoute) -> bool:
        """Sample, daily budget, pending bound; each refusal counted."""
        if route.sample < 1.0 and self._rng.random() >= route.sample:
            self.skipped_sample += 1
            return False
        budget = route.budget_usd_per_day
        if budget is not None and self.spent_today(route.alias) >= budget:
            self.skipped_budget += 1
            return False
        if len(self._tasks) >= self.max_pending:
            self.skipped_busy += 1
            return False
        return True

    def after_messages(
        self, request: web.Request, response: web.StreamResponse, started: float
    ) -> bool:
        """Schedule the shadow call of a finished ``/v1/messages`` request (non-stream)."""
        arm = response.headers.get(ARM_HEADER)
        request_id = response.headers.get(REQUEST_ID_HEADER)
        if arm in (None, "none") or request_id is None:
            return False
        body = response.body if isinstance(response, web.Response) else None
        if not isinstance(body, bytes):  # an Anthropic stream: not shadowed yet
            self.skipped_unsupported += 1
            return False
        if len(self._tasks) >= self.max_pending:
            self.skipped_busy += 1
            return False
        latency_ms = (time.perf_counter() - started) * 1000.0
        task = asyncio.create_task(
            self._shadow_messages(request, request_id, str(arm), response.status, body, latency_ms)
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return True

    async def _shadow_messages(
        self,
        request: web.Request,
        request_id: str,
        arm: str,
        status: int,
        answer: bytes,
        latency_ms: float,
    ) -> None:
        """Translate the Messages request to OpenAI form, then as for chat completions."""
        try:
            body = orjson.loads(await request.read())
            alias = body.get("model") if isinstance(body, dict) else None
            route = self.routes.get(alias) if isinstance(alias, str) else None
            if route is None or not self._admit(route):
                return
            chat = messages_request_to_chat(body, route.target.model)
        except Exception:  # noqa: BLE001 - nothing to shadow (the primary answered the error)
            self.skipped_unsupported += 1
            return
        primary_target = route.baseline
        if arm == "candidate" and route.candidate is not None:
            primary_target = route.candidate
        primary = _primary_from_message(primary_target, status, answer, latency_ms)
        self.scheduled += 1
        await self._shadow(route, request_id, arm, primary_target, chat, primary)

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
        request: web.Request | dict[str, Any],
        primary: Observation,
    ) -> None:
        try:
            if isinstance(request, dict):
                body: Any = request
            else:  # already read by the handler: the cached bytes
                body = orjson.loads(await request.read())
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


def _primary_observation(
    target: Target, status: int, body: bytes, latency_ms: float, error_class: str | None
) -> Observation:
    """What the gateway relayed, as an Observation (non-stream chat completions)."""
    label = target.label
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        data = None
    if status >= 300 or not isinstance(data, dict):
        message = None
        if isinstance(data, dict) and isinstance(data.get("error"), dict):
            message = data["error"].get("message")
        return Observation(
            target=label,
            error=str(message or f"HTTP {status}"),
            error_class=error_class or f"http_{status}",
            status_code=status,
            latency_ms=latency_ms,
            simulated=target.simulated,
        )
    return _parsed_primary(target, status, latency_ms, observation_from_completion, data)


def _primary_from_message(
    target: Target, status: int, body: bytes, latency_ms: float
) -> Observation:
    """What the gateway answered on ``/v1/messages`` (an Anthropic message), as an Observation."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        data = None
    if status >= 300 or not isinstance(data, dict) or data.get("type") == "error":
        error = data.get("error") if isinstance(data, dict) else None
        error = error if isinstance(error, dict) else {}
        return Observation(
            target=target.label,
            error=str(error.get("message") or f"HTTP {status}"),
            error_class=str(error.get("type") or f"http_{status}"),
            status_code=status,
            latency_ms=latency_ms,
            simulated=target.simulated,
        )
    return _parsed_primary(target, status, latency_ms, observation_from_message, data)


def _parsed_primary(
    target: Target,
    status: int,
    latency_ms: float,
    parse: Callable[..., Observation],
    data: dict[str, Any],
) -> Observation:
    """The body read by the provider's own parser (one reading of each wire format),
    priced, with the whole answer as its first token (the gateway relayed it in one piece)."""
    try:
        obs = parse(data, label=target.label, url="gateway", status=status, latency_ms=latency_ms)
    except ProviderError as exc:
        return Observation(
            target=target.label,
            error=exc.message,
            error_class=exc.error_class,
            status_code=status,
            latency_ms=latency_ms,
            simulated=target.simulated,
        )
    obs.ttft_ms = latency_ms
    obs.cost_usd = cost_usd(quote(target), obs.input_tokens, obs.output_tokens)
    obs.simulated = target.simulated
    return obs


def _primary_from_stream(
    target: Target,
    chunks: Sequence[bytes],
    latency_ms: float,
    ttft_ms: float | None,
    error_class: str | None,
) -> Observation:
    """What the gateway relayed as a stream: text and tool calls from the chunk deltas."""
    text: list[str] = []
    calls: dict[int, dict[str, str]] = {}
    finish: str | None = None
    usage: Any = None
    model: str | None = None
    error: str | None = None
    for line in b"".join(chunks).split(b"\n"):
        if not line.startswith(b"data: {"):
            continue
        try:
            event = orjson.loads(line[6:])
        except orjson.JSONDecodeError:
            continue
        if not isinstance(event, dict):
            continue
        if isinstance(event.get("error"), dict):
            error = str(event["error"].get("message") or "the stream broke")
            error_class = error_class or str(event["error"].get("type") or "upstream_error")
            continue
        if isinstance(event.get("model"), str):
            model = event["model"]
        if isinstance(event.get("usage"), dict):
            usage = event["usage"]
        for choice in event.get("choices") or ():
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            if choice.get("finish_reason") is not None:
                finish = str(choice["finish_reason"])
            delta = choice.get("delta")
            if not isinstance(delta, dict):
                continue
            if isinstance(delta.get("content"), str):
                text.append(delta["content"])
            for raw in delta.get("tool_calls") or ():
                if not isinstance(raw, dict):
                    continue
                index = raw.get("index", len(calls))
                call = calls.setdefault(
                    index if isinstance(index, int) else len(calls),
                    {"id": "", "name": "", "arguments": ""},
                )
                if isinstance(raw.get("id"), str):
                    call["id"] = raw["id"]
                function = raw.get("function")
                if isinstance(function, dict):
                    if isinstance(function.get("name"), str):
                        call["name"] += function["name"]
                    if isinstance(function.get("arguments"), str):
                        call["arguments"] += function["arguments"]
    tool_calls = tuple(
        ToolCall(id=c["id"] or f"call_{i}", name=c["name"], arguments=c["arguments"])
        for i, c in sorted(calls.items())
    )
    output = "".join(text)
    input_tokens, output_tokens = usage_tokens(usage)
    if error is None and error_class is not None:
        error = f"the stream ended with {error_class}"
    return Observation(
        target=target.label,
        output=output if output or not tool_calls else None,
        tool_calls=tool_calls,
        finish_reason=finish,
        error=error,
        error_class=error_class if error is not None else None,
        status_code=200,
        latency_ms=latency_ms,
        ttft_ms=ttft_ms,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cost_usd=cost_usd(quote(target), input_tokens, output_tokens),
        model=model,
        simulated=target.simulated,
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
