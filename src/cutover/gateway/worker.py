"""The gateway's store worker: a child process that owns every database write.

Why a process: the request log and the shadow writes go through SQLAlchemy,
which is Python-heavy. Run in a thread of the gateway, a batch write holds the
GIL for milliseconds at a time and the event loop serving requests waits for
it (the interpreter hands the GIL back only every switch interval, 5 ms), so
the writes showed up in the gateway's throughput and tail latency. In a
process of its own the writer runs on another core and the request path never
waits for it. Shadow calls run there too (:mod:`cutover.gateway._worker_main`),
so shadowing every request costs the primary only a message to the worker.

Messages are length-prefixed pickles on the child's stdin and stdout (the
child's own ``print`` output goes to stderr). The parent is trusted and the
pipe is private to the two processes; the store URL (which may hold a
password) travels on the pipe, never on the command line.

- :meth:`StoreWorker.call` runs one store operation and returns its result
  (request/response, matched by sequence number).
- :meth:`StoreWorker.send` queues a one-way message (a shadow job) without
  waiting; it refuses (``False``) when the pipe is backed up, so a slow worker
  costs shadow samples, never requests.
- The worker sends its counters every :data:`STATUS_EVERY_S`; the gateway
  reads them for ``/metrics``.
- If the worker dies, pending calls fail with :class:`~cutover.errors.StoreError`
  (the writers keep their rows and retry) and the next call starts a new one.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import pickle
import random
import sys
from collections.abc import Callable, Sequence
from typing import Any

from cutover.errors import StoreError
from cutover.gateway.config import GatewayConfig
from cutover.gateway.log import LogRecord
from cutover.gateway.shadow_jobs import ShadowFront, ShadowJob

STATUS_EVERY_S = 1.0
"""How often the worker reports its counters."""
SEND_BUFFER_LIMIT = 8 * 1024 * 1024
"""Bytes waiting in the pipe to the worker above which one-way messages are refused."""
START_TIMEOUT_S = 60.0
_HEADER = 4
_MAX_FRAME = 1 << 31

logger = logging.getLogger(__name__)


def encode(message: object) -> bytes:
    """One frame: 4-byte big-endian length, then the pickle."""
    payload = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return len(payload).to_bytes(_HEADER, "big") + payload


async def read_frame(reader: asyncio.StreamReader) -> Any:
    """The next message, or ``EOFError`` when the other side closed the pipe."""
    try:
        header = await reader.readexactly(_HEADER)
        size = int.from_bytes(header, "big")
        if size >= _MAX_FRAME:
            raise EOFError(f"frame of {size} bytes: the pipe is out of step")
        return pickle.loads(await reader.readexactly(size))
    except asyncio.IncompleteReadError as exc:
        raise EOFError("the pipe was closed") from exc


class StoreWorker:
    """The parent's handle on the store worker process."""

    def __init__(
        self,
        url: str,
        config: GatewayConfig,
        *,
        on_status: Callable[[dict[str, Any]], None] | None = None,
        python: str = sys.executable,
    ) -> None:
        self.url = url
        self.config = config
        self._on_status = on_status
        self._python = python
        self._proc: asyncio.subprocess.Process | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._seq = itertools.count(1)
        self._start_lock = asyncio.Lock()
        self._closing = False
        self.starts = 0
        self.status: dict[str, Any] = {}

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.returncode is None

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    async def start(self) -> None:
        """Start the worker (if it is not running) and wait until its store is open."""
        async with self._start_lock:
            if self.running or self._closing:
                return
            await self._spawn()

    async def _spawn(self) -> None:
        proc = await asyncio.create_subprocess_exec(
            self._python,
            "-m",
            "cutover.gateway._worker_main",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            start_new_session=True,  # a terminal's Ctrl-C is the gateway's to handle, not ours
        )
        self._proc = proc
        self.starts += 1
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(encode(("init", self.url, self.config)))
        try:
            ready = await asyncio.wait_for(read_frame(proc.stdout), START_TIMEOUT_S)
        except (EOFError, TimeoutError) as exc:
            await self._reap(proc)
            raise StoreError(f"the gateway's store worker did not start ({exc})") from exc
        if not (isinstance(ready, tuple) and ready[:1] == ("ready",)):
            await self._reap(proc)
            reason = ready[1] if isinstance(ready, tuple) and len(ready) > 1 else ready
            raise StoreError(f"the gateway's store worker could not open the store: {reason}")
        self._pending = {}
        self._reader_task = asyncio.create_task(self._read_replies(proc, self._pending))

    async def _read_replies(
        self, proc: asyncio.subprocess.Process, pending: dict[int, asyncio.Future[Any]]
    ) -> None:
        """Replies of this process to the calls made on it (a restart gets its own dict)."""
        assert proc.stdout is not None
        try:
            while True:
                message = await read_frame(proc.stdout)
                kind = message[0]
                if kind == "reply":
                    _, seq, ok, value = message
                    future = pending.pop(seq, None)
                    if future is not None and not future.done():
                        if ok:
                            future.set_result(value)
                        else:
                            future.set_exception(StoreError(str(value)))
                elif kind == "status":
                    self.status = message[1]
                    if self._on_status is not None:
                        self._on_status(message[1])
        except EOFError:
            pass
        except Exception:
            logger.exception("unreadable reply from the gateway's store worker; restarting it")
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
        finally:
            _fail(pending, "the gateway's store worker exited")
            if not self._closing:
                logger.warning("the gateway's store worker exited; it restarts on the next write")

    def _fail_pending(self, reason: str) -> None:
        _fail(self._pending, reason)

    async def call(self, op: str, *args: Any) -> Any:
        """Run ``op`` in the worker and return its result; :class:`StoreError` on failure."""
        if not self.running:
            await self.start()
        proc = self._proc
        if proc is None or proc.stdin is None or self._closing:
            raise StoreError("the gateway's store worker is not running")
        seq = next(self._seq)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[seq] = future
        try:
            proc.stdin.write(encode(("call", seq, op, args)))
            await proc.stdin.drain()
        except (ConnectionError, RuntimeError) as exc:
            self._pending.pop(seq, None)
            raise StoreError(f"the gateway's store worker is gone ({exc})") from exc
        return await future

    def send(self, op: str, *args: Any) -> bool:
        """Queue a one-way message without waiting; ``False`` if it cannot be taken now."""
        proc = self._proc
        if proc is None or proc.returncode is not None or proc.stdin is None or self._closing:
            return False
        transport = proc.stdin.transport
        if transport.is_closing() or transport.get_write_buffer_size() > SEND_BUFFER_LIMIT:
            return False
        proc.stdin.write(encode(("send", op, args)))
        return True

    async def aclose(self, grace_s: float = 10.0) -> None:
        """Ask the worker to finish (flush, let shadow calls end) and wait for it."""
        self._closing = True
        proc = self._proc
        if proc is None:
            return
        if proc.returncode is None and proc.stdin is not None:
            with contextlib.suppress(ConnectionError, RuntimeError):
                proc.stdin.write(encode(("close",)))
                await proc.stdin.drain()
                proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), grace_s)
        except TimeoutError:
            await self._reap(proc)
        if self._reader_task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader_task
        self._fail_pending("the gateway is shutting down")

    async def _reap(self, proc: asyncio.subprocess.Process) -> None:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()


def _fail(pending: dict[int, asyncio.Future[Any]], reason: str) -> None:
    futures = list(pending.values())
    pending.clear()
    for future in futures:
        if not future.done():
            future.set_exception(StoreError(reason))


class WorkerStoreAccess:
    """The request log's and feedback's way to the store: through the worker."""

    def __init__(self, worker: StoreWorker) -> None:
        self.worker = worker

    async def write_requests(self, records: Sequence[LogRecord]) -> None:
        await self.worker.call("log", [tuple(r) for r in records])

    async def record_feedback(self, request_id: str, score: float) -> str | None:
        arm = await self.worker.call("feedback", request_id, score)
        return None if arm is None else str(arm)

    async def aclose(self) -> None:
        await self.worker.aclose()


class RemoteShadow(ShadowFront):
    """The gateway's side of a shadow that runs in the store worker.

    Sampling happens here (unsampled requests cost nothing more); budget and
    pending bound are the worker's, which reports each route's spending so
    that requests on a route over budget are not even sent.
    """

    def __init__(
        self, config: GatewayConfig, worker: StoreWorker, *, rng: random.Random | None = None
    ) -> None:
        super().__init__(config, rng)
        self.worker = worker
        self.skipped_busy = 0
        self.skipped_budget = 0

    @property
    def enabled(self) -> bool:
        return bool(self.routes)

    def accept(self, job: ShadowJob) -> bool:
        route = self.routes[job.alias]
        budget = route.budget_usd_per_day
        spent = (self.worker.status.get("spent_usd") or {}).get(job.alias, 0.0)
        if budget is not None and spent >= budget:
            self.skipped_budget += 1
            return False
        if not self.worker.send("shadow", job):
            self.skipped_busy += 1
            return False
        return True

    def counters(self) -> dict[str, Any]:
        """The worker's counters with this side's skips added."""
        merged: dict[str, Any] = dict(self.worker.status)
        for key, value in self.front_counters().items():
            merged[key] = merged.get(key, 0) + value
        merged["skipped_busy"] = merged.get("skipped_busy", 0) + self.skipped_busy
        merged["skipped_budget"] = merged.get("skipped_budget", 0) + self.skipped_budget
        return merged

    async def run(self) -> None:
        """Nothing to do here: the worker writes (kept so both shadows look alike)."""
        await asyncio.Event().wait()

    async def close(self) -> None:
        """The worker finishes the shadow calls when it is closed."""


__all__ = [
    "STATUS_EVERY_S",
    "RemoteShadow",
    "StoreWorker",
    "WorkerStoreAccess",
    "encode",
    "read_frame",
]
