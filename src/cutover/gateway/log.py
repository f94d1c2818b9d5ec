"""The request log: a bounded in-memory queue, flushed in batches to the store.

On the request path the gateway only fills a small :class:`Trace` and, when
the answer is done, :meth:`Telemetry.finish` updates the metrics and appends
one :class:`LogRecord` (a plain tuple) to a bounded queue: no I/O, no
waiting. A background task (:meth:`RequestLog.run`) writes the queue in
batches (every ``flush_interval_s`` or ``batch_size`` records) through a
:class:`StoreAccess`: the store worker process when the store is given by
URL (:mod:`cutover.gateway.worker`), else a thread.

- A full queue drops the new record and counts it
  (``cutover_gateway_log_dropped_total``); the request is never blocked.
- A failed write (database down, disk full, store not openable) is counted
  (``cutover_gateway_log_write_failures_total``); the batch goes back to the
  front of the queue and is retried with a growing pause, up to 5 s. The batch
  being written counts against ``queue_size``, so the records held in memory
  never exceed it and a failed batch always fits back.
- Prompts and outputs are kept only with ``log.prompts: true``; the
  ``log.redact`` patterns are applied before the record is queued.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple, Protocol

import orjson
from aiohttp import web

from cutover.gateway._batching import FlushLoop
from cutover.gateway.config import LogConfig
from cutover.gateway.metrics import NO_ROUTE, GatewayMetrics
from cutover.pricing import cost_usd, quote
from cutover.store._gateway import GatewayRequestRow
from cutover.targets import Target

REDACTED = "[REDACTED]"
POISON_AFTER = 3
"""Failed writes of the same batch after which it is written record by record."""
_TAIL_CHUNKS = 3


class LogStore(Protocol):
    """What the request log needs of a store (:class:`cutover.store.Store` has it)."""

    def write_gateway_requests(self, rows: Sequence[GatewayRequestRow]) -> None: ...

    def record_feedback(self, request_id: str, score: float) -> str | None: ...


class LogRecord(NamedTuple):
    """One request-log record as the request path makes it: a plain tuple.

    The fields of :class:`~cutover.store.GatewayRequestRow` with ``ts`` as
    seconds since the epoch: a tuple of strings and numbers pickles about 30
    times faster than a dataclass holding a ``datetime``, and every record
    crosses to the store worker process.
    """

    request_id: str
    ts: float
    route: str | None
    arm: str
    target: str | None
    status: int
    latency_ms: float
    ttft_ms: float | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost_usd: float | None = None
    error_class: str | None = None
    key_hash: str | None = None
    prompt: str | None = None
    output: str | None = None
    answer_text: str | None = None
    """The answer's text, for the checks run where the record is written (never stored
    itself: ``output`` is, only with ``log.prompts``)."""
    response_format: Any = None
    """The request's ``response_format`` (what the JSON checks judge the answer against)."""
    answer_stream: bytes | None = None
    """A streamed answer's raw SSE bytes, when its text is needed only for the checks: the
    text is assembled where the record is written, not on the request path."""
    slice: str | None = None
    """The client's slice label (``x-cutover-slice``), for per-slice rollout gates."""


def rows_from_records(records: Sequence[Sequence[Any]]) -> list[GatewayRequestRow]:
    """Records (or plain tuples in :class:`LogRecord` order) -> rows for the store.

    Runs the live checks on each answer's text here (in the store worker), not
    on the request path: ``refused`` is :func:`~cutover.checks.detect_refusal`'s
    full or partial refusal; ``checks`` holds every problem-flagging output
    check of the verdict pipeline that applied (``json_valid``, ``preamble``,
    ``fenced_json``...; see :func:`live_checks`).
    """
    from cutover.checks.refusal import detect_refusal

    rows = []
    for r in records:
        text = r[15] if len(r) > 15 else None
        if text is None and len(r) > 17 and r[17] is not None:
            text = _stream_summary([r[17]], want_text=True)[1]
        refused = None if text is None else detect_refusal(text).kind != "none"
        checks = None if text is None else live_checks(text, r[16] if len(r) > 16 else None)
        ts = datetime.fromtimestamp(r[1], UTC)
        prompt, output = _no_nul(r[13]), _no_nul(r[14])  # PostgreSQL text cannot hold NUL
        label = r[18] if len(r) > 18 else None
        rows.append(
            GatewayRequestRow(*(r[0], ts, *r[2:13], prompt, output, refused, checks, label))
        )
    return rows


def live_checks(text: str, response_format: Any) -> dict[str, int]:
    """The output checks that flag a problem, on one answer: name -> 1 (flagged) or 0.

    Only checks that applied (a value, not ``None``) are listed, so each is a
    rate over the answers it could judge; ``refusal`` has its own column.
    """
    from cutover.analysis.judging import format_expectation
    from cutover.checks import BAD_WHEN_FALSE, BAD_WHEN_TRUE, CheckContext, check_values
    from cutover.records import Observation

    schema, expects_json = format_expectation(response_format)
    ctx = CheckContext(
        response_format=response_format if isinstance(response_format, dict) else None,
        json_schema=schema,
        expects_json=expects_json,
    )
    out: dict[str, int] = {}
    for name, value in check_values(Observation(target="", output=text), ctx).items():
        if name in BAD_WHEN_TRUE and name != "refusal" and isinstance(value, bool):
            out[name] = int(value)
        elif name in BAD_WHEN_FALSE and isinstance(value, bool):
            out[name] = int(not value)
    return out


def _no_nul(text: str | None) -> str | None:
    return text.replace("\x00", "") if text and "\x00" in text else text


class StoreAccess(Protocol):
    """How the gateway reaches its store without blocking the event loop.

    :class:`ThreadStoreAccess` runs the store's methods in a thread of this
    process; :class:`~cutover.gateway.worker.WorkerStoreAccess` in the store
    worker process.
    """

    async def write_requests(self, records: Sequence[LogRecord]) -> None: ...

    async def record_feedback(self, request_id: str, score: float) -> str | None: ...

    async def aclose(self) -> None: ...


class ThreadStoreAccess:
    """The store opened on first use and called in a worker thread of this process."""

    def __init__(self, opener: Callable[[], LogStore]) -> None:
        self._opener = opener
        self._store: LogStore | None = None
        self._lock = threading.Lock()

    def store(self) -> LogStore:
        """The store, opened on first use (call from a worker thread: it may block)."""
        with self._lock:
            if self._store is None:
                self._store = self._opener()
            return self._store

    async def write_requests(self, records: Sequence[LogRecord]) -> None:
        await asyncio.to_thread(
            lambda: self.store().write_gateway_requests(rows_from_records(records))
        )

    async def record_feedback(self, request_id: str, score: float) -> str | None:
        return await asyncio.to_thread(lambda: self.store().record_feedback(request_id, score))

    def close(self) -> None:
        """Close the store if it was opened here (blocking)."""
        with self._lock:
            store, self._store = self._store, None
        close = getattr(store, "close", None)
        if callable(close):
            close()

    async def aclose(self) -> None:
        await asyncio.to_thread(self.close)


@dataclass(slots=True)
class Trace:
    """What the request path learns about one request, filled as it goes."""

    request_id: str
    started: float = field(default_factory=time.perf_counter)
    ts: float = field(default_factory=time.time)
    """Arrival, seconds since the epoch."""
    route: str | None = None
    arm: str = "none"
    target: Target | None = None
    key_hash: str | None = None
    messages: Any = None
    stream: bool = False
    dialect: str = "chat"
    response_format: Any = None
    """The request's ``response_format`` (chat completions), for the live output checks."""
    """What the client spoke: ``chat`` (OpenAI Chat Completions) or ``messages`` (Anthropic)."""
    ttft_s: float | None = None
    error_class: str | None = None
    slice: str | None = None
    """The client's slice label (``x-cutover-slice``)."""
    chunks: list[bytes] | None = None
    """Every streamed chunk (only when prompts are logged), else the last few."""
    keep_all_chunks: bool = False
    retries: int = 0
    """Upstream attempts repeated (:mod:`cutover.gateway.upstream`)."""
    fallback_status: int | None = None
    """The candidate's failed status when the baseline answered instead (``fallback``)."""
    fallback_error: str | None = None

    def on_chunk(self, chunk: bytes) -> None:
        """A streamed chunk was relayed to the client."""
        if self.ttft_s is None:
            self.ttft_s = time.perf_counter() - self.started
        if self.chunks is None:
            self.chunks = []
        self.chunks.append(chunk)
        if not self.keep_all_chunks and len(self.chunks) > _TAIL_CHUNKS:
            del self.chunks[0]


class RequestLog(FlushLoop):
    """The bounded queue and its writer."""

    def __init__(
        self,
        access: StoreAccess | None,
        metrics: GatewayMetrics,
        *,
        queue_size: int = 10_000,
        batch_size: int = 500,
        flush_interval_s: float = 0.2,
    ) -> None:
        self.access = access
        self.metrics = metrics
        self.queue_size = queue_size
        self.batch_size = batch_size
        self.flush_interval_s = flush_interval_s
        self._queue: deque[LogRecord] = deque()
        self._pending: set[str] = set()
        self._wake = asyncio.Event()
        self._flush_lock = asyncio.Lock()
        self._failures_in_a_row = 0
        self._in_flight = 0  # records taken from the queue by a write not finished yet
        self.dropped = 0
        self.write_failures = 0
        self.written = 0

    @property
    def enabled(self) -> bool:
        return self.access is not None

    def __len__(self) -> int:
        """Records held in memory: queued plus the batch being written."""
        return len(self._queue) + self._in_flight

    def is_pending(self, request_id: str) -> bool:
        """``request_id`` is queued (or being written) but not in the store yet."""
        return request_id in self._pending

    def submit(self, row: LogRecord) -> bool:
        """Queue ``row`` without waiting; ``False`` (and a drop counted) when full."""
        if self.access is None:
            return False
        if len(self) >= self.queue_size:
            self._drop(1)
            return False
        self._queue.append(row)
        self._pending.add(row.request_id)
        if len(self._queue) >= self.batch_size:
            self._wake.set()
        return True

    def _drop(self, n: int) -> None:
        self.dropped += n
        self.metrics.log_dropped.inc(n)

    async def flush(self) -> bool:
        """Write everything queued now; ``False`` if a write failed (rows kept)."""
        async with self._flush_lock:
            while self._queue:
                # At most half the bound at once, so a small queue_size still leaves room
                # for the records that come in while a batch is written.
                n = min(self.batch_size, max(self.queue_size // 2, 1), len(self._queue))
                batch = [self._queue.popleft() for _ in range(n)]
                # The batch still counts against the bound while it is written, so the
                # records held never exceed queue_size and a failed batch always fits back.
                self._in_flight = n
                written = False
                try:
                    written = await self._write(batch)
                finally:  # failed, or cancelled at shutdown: back to the front, for the last flush
                    self._in_flight = 0
                    if not written:
                        self._queue.extendleft(reversed(batch))
                if not written:
                    return False
        return True

    async def _write(self, batch: list[LogRecord]) -> bool:
        """Write ``batch`` (or, after repeated failures, what of it the store accepts)."""
        assert self.access is not None
        try:
            await self.access.write_requests(batch)
        except Exception:  # noqa: BLE001 - any store failure: count, keep serving
            self.write_failures += 1
            self.metrics.log_write_failures.inc()
            self._failures_in_a_row += 1
            if self._failures_in_a_row >= POISON_AFTER and await self._isolate(batch):
                self._failures_in_a_row = 0
                return True
            return False
        self._failures_in_a_row = 0
        self.written += len(batch)
        self.metrics.log_written.inc(len(batch))
        for row in batch:
            self._pending.discard(row.request_id)
        return True

    async def _isolate(self, batch: list[LogRecord]) -> bool:
        """After repeated failures: write the batch record by record, dropping (and counting)
        the records the store refuses. ``False`` if none could be written (the store is down)."""
        assert self.access is not None
        written = refused = 0
        for record in batch:
            try:
                await self.access.write_requests([record])
                written += 1
            except Exception:  # noqa: BLE001 - this record is the poison (or the store is down)
                refused += 1
                if written == 0 and refused >= 3:
                    return False  # nothing goes through: an outage, not a bad record
        if written == 0:
            return False
        for record in batch:
            self._pending.discard(record.request_id)
        self.written += written
        self.metrics.log_written.inc(written)
        if refused:
            self._drop(refused)
        return True

    async def close(self) -> None:
        """Release the store (the log's owner calls this once, at the end)."""
        if self.access is not None:
            await self.access.aclose()


class Telemetry:
    """Metrics plus request log: what the gateway records when a request is done."""

    def __init__(self, config: LogConfig, metrics: GatewayMetrics, log: RequestLog) -> None:
        self.config = config
        self.metrics = metrics
        self.log = log
        self._redact = [re.compile(p) for p in config.redact]
        self._want_text = config.prompts or config.live_checks

    def trace(self, request_id: str) -> Trace:
        return Trace(request_id=request_id, keep_all_chunks=self._want_text)

    def redact(self, text: str) -> str:
        for pattern in self._redact:
            text = pattern.sub(REDACTED, text)
        return text

    def finish(self, trace: Trace, response: web.StreamResponse) -> None:
        """Count the answered request and queue its log record (no I/O)."""
        latency = time.perf_counter() - trace.started
        status = response.status
        usage: dict[str, Any] | None = None
        raw_stream: bytes | None = None
        output: str | None = None
        body = response.body if isinstance(response, web.Response) else None
        if isinstance(body, bytes) and body:
            parsed = _loads(body)
            if status >= 400 and trace.error_class is None:
                trace.error_class = _error_type(parsed) or f"http_{status}"
            elif status < 300 and isinstance(parsed, dict):
                usage = _usage(parsed)
                if self._want_text:
                    output = _message_text(parsed) or ""
        elif trace.chunks:
            # The text only when the log keeps it; for the checks alone the raw stream goes
            # to the store worker, which reads it there (one pass fewer on the event loop).
            usage, output = _stream_summary(trace.chunks, want_text=self.config.prompts)
            if output is None and self.config.live_checks and status < 300:
                raw_stream = b"".join(trace.chunks)
        if status >= 400 and trace.error_class is None:
            trace.error_class = f"http_{status}"
        if trace.fallback_status is not None:  # counted as the candidate's failure
            status = trace.fallback_status
            trace.error_class = f"fallback_{trace.fallback_error or f'http_{status}'}"
        route = trace.route or NO_ROUTE
        input_tokens = output_tokens = None
        if usage is not None:
            input_tokens = _int(usage.get("prompt_tokens", usage.get("input_tokens")))
            output_tokens = _int(usage.get("completion_tokens", usage.get("output_tokens")))
        self.metrics.observe_request(
            route,
            trace.arm,
            status,
            latency,
            trace.ttft_s,
            trace.error_class,
            input_tokens,
            output_tokens,
            retries=trace.retries,
            fallback=trace.fallback_status is not None,
        )
        if not self.log.enabled:
            return
        prompt = None
        answer_text = output if self.config.live_checks and status < 300 else None
        stream = raw_stream if answer_text is None and status < 300 else None
        if self.config.prompts and trace.messages is not None:
            prompt = self.redact(orjson.dumps(trace.messages).decode())
        if output is not None:
            output = self.redact(output) if self.config.prompts else None
        target = trace.target
        self.log.submit(
            LogRecord(
                request_id=trace.request_id,
                ts=trace.ts,
                route=trace.route,
                arm=trace.arm,
                target=None if target is None else f"{target.provider}:{target.model}",
                status=status,
                latency_ms=latency * 1000.0,
                ttft_ms=None if trace.ttft_s is None else trace.ttft_s * 1000.0,
                input_tokens=input_tokens,
                output_tokens=output_tokens,
                cost_usd=(
                    None if target is None else cost_usd(quote(target), input_tokens, output_tokens)
                ),
                error_class=trace.error_class,
                key_hash=trace.key_hash,
                prompt=prompt,
                output=output,
                answer_text=answer_text,
                response_format=trace.response_format,
                answer_stream=stream,
                slice=trace.slice,
            )
        )


def _loads(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _error_type(parsed: Any) -> str | None:
    if isinstance(parsed, dict):
        error = parsed.get("error")
        if isinstance(error, dict) and isinstance(error.get("type"), str):
            return str(error["type"])
    return None


def _usage(parsed: dict[str, Any]) -> dict[str, Any] | None:
    usage = parsed.get("usage")
    return usage if isinstance(usage, dict) else None


def _message_text(parsed: dict[str, Any]) -> str | None:
    parts: list[str] = []
    for choice in parsed.get("choices") or ():
        message = choice.get("message") if isinstance(choice, dict) else None
        if not isinstance(message, dict):
            continue
        if isinstance(message.get("content"), str):
            parts.append(message["content"])
        if message.get("tool_calls"):
            parts.append(orjson.dumps(message["tool_calls"]).decode())
    for block in parsed.get("content") or ():  # an Anthropic message
        if isinstance(block, dict) and block.get("type") == "text":
            parts.append(str(block.get("text", "")))
        elif isinstance(block, dict) and block.get("type") == "tool_use":
            parts.append(orjson.dumps(block).decode())
    return "\n".join(parts) if parts else None


def _stream_summary(
    chunks: list[bytes], *, want_text: bool
) -> tuple[dict[str, Any] | None, str | None]:
    """Usage and, if asked, the streamed text, from either dialect's events.

    OpenAI sends usage in one chunk (``include_usage``); Anthropic sends the
    input tokens in ``message_start`` and the output tokens in ``message_delta``,
    so the usage objects found are merged.
    """
    data = b"".join(chunks)
    usage: dict[str, Any] | None = None
    parts: list[str] = []
    for line in data.split(b"\n"):
        if not line.startswith(b"data: {"):
            continue
        if not want_text and b'"usage"' not in line and b'_tokens"' not in line:
            continue
        event = _loads(line[6:])
        if not isinstance(event, dict):
            continue
        found = _usage(event)
        if found is None and isinstance(event.get("message"), dict):
            found = _usage(event["message"])  # Anthropic message_start
        if found is not None:
            usage = found if usage is None else {**usage, **found}
        if want_text:
            for choice in event.get("choices") or ():
                delta = choice.get("delta") if isinstance(choice, dict) else None
                if isinstance(delta, dict) and isinstance(delta.get("content"), str):
                    parts.append(delta["content"])
            delta = event.get("delta")  # Anthropic content_block_delta
            if isinstance(delta, dict) and isinstance(delta.get("text"), str):
                parts.append(delta["text"])
    return usage, ("".join(parts) if want_text else None)


__all__ = [
    "REDACTED",
    "LogRecord",
    "LogStore",
    "RequestLog",
    "StoreAccess",
    "Telemetry",
    "ThreadStoreAccess",
    "Trace",
    "rows_from_records",
]
