"""The request log: a bounded in-memory queue, flushed in batches to the store.

On the request path the gateway only fills a small :class:`Trace` and, when
the answer is done, :meth:`Telemetry.finish` updates the metrics and appends
one :class:`~cutover.store.GatewayRequestRow` to a bounded queue: no I/O, no
waiting. A background task (:meth:`RequestLog.run`) writes the queue in
batches (every ``flush_interval_s`` or ``batch_size`` records) through
``asyncio.to_thread(store.write_gateway_requests)``.

- A full queue drops the new record and counts it
  (``cutover_gateway_log_dropped_total``); the request is never blocked.
- A failed write (database down, disk full, store not openable) is counted
  (``cutover_gateway_log_write_failures_total``); the batch goes back to the
  front of the queue (as much of it as fits in the bound, the rest counted as
  dropped) and is retried with a growing pause, up to 5 s.
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
from typing import Any, Protocol

import orjson
from aiohttp import web

from cutover.gateway._batching import FlushLoop
from cutover.gateway.config import LogConfig
from cutover.gateway.metrics import NO_ROUTE, GatewayMetrics
from cutover.pricing import cost_usd, quote
from cutover.store._gateway import GatewayRequestRow
from cutover.targets import Target

REDACTED = "[REDACTED]"
_TAIL_CHUNKS = 3


class LogStore(Protocol):
    """What the request log needs of a store (:class:`cutover.store.Store` has it)."""

    def write_gateway_requests(self, rows: Sequence[GatewayRequestRow]) -> None: ...

    def record_feedback(self, request_id: str, score: float) -> str | None: ...


@dataclass(slots=True)
class Trace:
    """What the request path learns about one request, filled as it goes."""

    request_id: str
    started: float = field(default_factory=time.perf_counter)
    ts: datetime = field(default_factory=lambda: datetime.now(UTC))
    route: str | None = None
    arm: str = "none"
    target: Target | None = None
    key_hash: str | None = None
    messages: Any = None
    stream: bool = False
    ttft_s: float | None = None
    error_class: str | None = None
    chunks: list[bytes] | None = None
    """Every streamed chunk (only when prompts are logged), else the last few."""
    keep_all_chunks: bool = False

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
        opener: Callable[[], LogStore] | None,
        metrics: GatewayMetrics,
        *,
        queue_size: int = 10_000,
        batch_size: int = 500,
        flush_interval_s: float = 0.2,
    ) -> None:
        self._opener = opener
        self._store: LogStore | None = None
        self._open_lock = threading.Lock()
        self.metrics = metrics
        self.queue_size = queue_size
        self.batch_size = batch_size
        self.flush_interval_s = flush_interval_s
        self._queue: deque[GatewayRequestRow] = deque()
        self._pending: set[str] = set()
        self._wake = asyncio.Event()
        self._flush_lock = asyncio.Lock()
        self._failures_in_a_row = 0
        self.dropped = 0
        self.write_failures = 0
        self.written = 0

    @property
    def enabled(self) -> bool:
        return self._opener is not None

    def __len__(self) -> int:
        return len(self._queue)

    def is_pending(self, request_id: str) -> bool:
        """``request_id`` is queued (or being written) but not in the store yet."""
        return request_id in self._pending

    def submit(self, row: GatewayRequestRow) -> bool:
        """Queue ``row`` without waiting; ``False`` (and a drop counted) when full."""
        if self._opener is None:
            return False
        if len(self._queue) >= self.queue_size:
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

    def store(self) -> LogStore:
        """The store, opened on first use (call from a worker thread: it may block)."""
        if self._opener is None:
            raise RuntimeError("the gateway has no store")
        with self._open_lock:
            if self._store is None:
                self._store = self._opener()
            return self._store

    def _write(self, rows: Sequence[GatewayRequestRow]) -> None:
        self.store().write_gateway_requests(rows)

    async def flush(self) -> bool:
        """Write everything queued now; ``False`` if a write failed (rows kept)."""
        async with self._flush_lock:
            while self._queue:
                n = min(self.batch_size, len(self._queue))
                batch = [self._queue.popleft() for _ in range(n)]
                try:
                    await asyncio.to_thread(self._write, batch)
                except Exception:  # noqa: BLE001 - any store failure: count, keep serving
                    self.write_failures += 1
                    self.metrics.log_write_failures.inc()
                    self._failures_in_a_row += 1
                    room = self.queue_size - len(self._queue)
                    keep = batch[: max(room, 0)]
                    lost = batch[len(keep) :]
                    for row in lost:
                        self._pending.discard(row.request_id)
                    if lost:
                        self._drop(len(lost))
                    self._queue.extendleft(reversed(keep))
                    return False
                self._failures_in_a_row = 0
                self.written += len(batch)
                self.metrics.log_written.inc(len(batch))
                for row in batch:
                    self._pending.discard(row.request_id)
        return True

    def close_store(self) -> None:
        """Close the store if this log opened it (blocking)."""
        with self._open_lock:
            store, self._store = self._store, None
        close = getattr(store, "close", None)
        if callable(close):
            close()


class Telemetry:
    """Metrics plus request log: what the gateway records when a request is done."""

    def __init__(self, config: LogConfig, metrics: GatewayMetrics, log: RequestLog) -> None:
        self.config = config
        self.metrics = metrics
        self.log = log
        self._redact = [re.compile(p) for p in config.redact]

    def trace(self, request_id: str) -> Trace:
        return Trace(request_id=request_id, keep_all_chunks=self.config.prompts)

    def redact(self, text: str) -> str:
        for pattern in self._redact:
            text = pattern.sub(REDACTED, text)
        return text

    def finish(self, trace: Trace, response: web.StreamResponse) -> None:
        """Count the answered request and queue its log record (no I/O)."""
        latency = time.perf_counter() - trace.started
        status = response.status
        usage: dict[str, Any] | None = None
        output: str | None = None
        body = response.body if isinstance(response, web.Response) else None
        if isinstance(body, bytes) and body:
            parsed = _loads(body)
            if status >= 400 and trace.error_class is None:
                trace.error_class = _error_type(parsed) or f"http_{status}"
            elif status < 300 and isinstance(parsed, dict):
                usage = _usage(parsed)
                if self.config.prompts:
                    output = _message_text(parsed)
        elif trace.chunks:
            usage, text = _stream_summary(trace.chunks, want_text=self.config.prompts)
            if self.config.prompts:
                output = text
        if status >= 400 and trace.error_class is None:
            trace.error_class = f"http_{status}"
        route = trace.route or NO_ROUTE
        m = self.metrics
        m.requests.labels(route, trace.arm, str(status)).inc()
        m.latency.labels(route, trace.arm).observe(latency)
        if trace.ttft_s is not None:
            m.ttft.labels(route, trace.arm).observe(trace.ttft_s)
        if trace.error_class is not None:
            m.errors.labels(route, trace.arm, trace.error_class).inc()
        input_tokens = output_tokens = None
        if usage is not None:
            input_tokens = _int(usage.get("prompt_tokens", usage.get("input_tokens")))
            output_tokens = _int(usage.get("completion_tokens", usage.get("output_tokens")))
            if input_tokens:
                m.tokens.labels(route, trace.arm, "input").inc(input_tokens)
            if output_tokens:
                m.tokens.labels(route, trace.arm, "output").inc(output_tokens)
        if not self.log.enabled:
            return
        prompt = None
        if self.config.prompts and trace.messages is not None:
            prompt = self.redact(orjson.dumps(trace.messages).decode())
        if output is not None:
            output = self.redact(output)
        target = trace.target
        self.log.submit(
            GatewayRequestRow(
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
    return "\n".join(parts) if parts else None


def _stream_summary(
    chunks: list[bytes], *, want_text: bool
) -> tuple[dict[str, Any] | None, str | None]:
    """Usage (from the ``include_usage`` chunk) and, if asked, the streamed text."""
    data = b"".join(chunks)
    usage: dict[str, Any] | None = None
    parts: list[str] = []
    for line in data.split(b"\n"):
        if not line.startswith(b"data: {"):
            continue
        if not want_text and b'"usage"' not in line:
            continue
        event = _loads(line[6:])
        if not isinstance(event, dict):
            continue
        found = _usage(event)
        if found is not None:
            usage = found
        if want_text:
            for choice in event.get("choices") or ():
                delta = choice.get("delta") if isinstance(choice, dict) else None
                if isinstance(delta, dict) and isinstance(delta.get("content"), str):
                    parts.append(delta["content"])
    return usage, ("".join(parts) if want_text else None)


__all__ = ["REDACTED", "LogStore", "RequestLog", "Telemetry", "Trace"]
