"""The store worker process: ``python -m cutover.gateway._worker_main`` (started by the gateway).

It reads framed messages on stdin (:mod:`cutover.gateway.worker`), runs the
store operations in a thread of its own, runs the shadow calls
(:class:`~cutover.gateway.shadow.Shadow`) on its event loop, reports its
counters every second, and exits when the gateway closes the pipe or sends
``close`` (after the shadow calls running have finished and everything queued
is written). The store is opened on first use, so a database that is down
when the gateway starts only fails the writes, which the gateway retries.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, cast

from cutover.gateway.config import GatewayConfig
from cutover.gateway.log import ThreadStoreAccess, rows_from_records
from cutover.gateway.shadow import Shadow, ShadowStore
from cutover.gateway.worker import STATUS_EVERY_S, encode, read_frame
from cutover.store import Store


class WorkerHost:
    """The worker's state: the store, the shadow, the pipe back to the gateway."""

    def __init__(self, url: str, config: GatewayConfig, out: asyncio.StreamWriter) -> None:
        self.access = ThreadStoreAccess(lambda: Store.open(url))
        self.out = out
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cutover-store")
        self.shadow = Shadow(config, lambda: cast(ShadowStore, self.access.store()))
        self._ops: dict[str, Callable[..., Any]] = {
            "log": lambda records: self.access.store().write_gateway_requests(
                rows_from_records(records)
            ),
            "feedback": lambda request_id, score: self.access.store().record_feedback(
                request_id, score
            ),
            "ping": lambda: "pong",
        }
        self._calls: set[asyncio.Task[None]] = set()

    def reply(self, message: tuple[Any, ...]) -> None:
        if not self.out.is_closing():
            self.out.write(encode(message))

    def status(self) -> None:
        self.reply(("status", self.shadow.counters()))

    async def _call(self, seq: int, op: str, args: tuple[Any, ...]) -> None:
        handler = self._ops.get(op)
        if handler is None:
            self.reply(("reply", seq, False, f"unknown store operation '{op}'"))
            return
        loop = asyncio.get_running_loop()
        try:
            result = await loop.run_in_executor(self._executor, lambda: handler(*args))
        except Exception as exc:  # noqa: BLE001 - every failure goes back to the gateway
            self.reply(("reply", seq, False, f"{type(exc).__name__}: {exc}"))
            return
        self.reply(("reply", seq, True, result))

    async def _report(self) -> None:
        while True:
            await asyncio.sleep(STATUS_EVERY_S)
            self.status()

    async def serve(self, reader: asyncio.StreamReader) -> None:
        background = [asyncio.create_task(self._report())]
        if self.shadow.enabled:
            background.append(asyncio.create_task(self.shadow.run()))
        try:
            while True:
                try:
                    message = await read_frame(reader)
                except EOFError:
                    break
                kind = message[0]
                if kind == "call":
                    task = asyncio.create_task(self._call(message[1], message[2], message[3]))
                    self._calls.add(task)
                    task.add_done_callback(self._calls.discard)
                elif kind == "send" and message[1] == "shadow":
                    self.shadow.accept(message[2][0])
                elif kind == "close":
                    break
        finally:
            for task in background:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            if self._calls:
                await asyncio.gather(*self._calls, return_exceptions=True)
            if self.shadow.enabled:
                await self.shadow.close()
            self.status()
            with contextlib.suppress(ConnectionError):
                await self.out.drain()
            await asyncio.get_running_loop().run_in_executor(self._executor, self.access.close)
            self._executor.shutdown(wait=True)


async def _pipes() -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """stdin as a reader; the real stdout as a writer (``print`` goes to stderr from now)."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 26)
    await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(0, "rb", buffering=0)
    )
    frames = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    transport, protocol = await loop.connect_write_pipe(
        asyncio.streams.FlowControlMixin, os.fdopen(frames, "wb", buffering=0)
    )
    writer = asyncio.StreamWriter(transport, protocol, None, loop)
    return reader, writer


async def main_async() -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the gateway closes us through the pipe
    reader, out = await _pipes()
    try:
        init = await read_frame(reader)
    except EOFError:
        return 0
    _, url, config = init
    if not isinstance(config, GatewayConfig):
        out.write(encode(("failed", f"expected the gateway's config, got {type(config).__name__}")))
        await out.drain()
        return 2
    host = WorkerHost(url, config, out)
    out.write(encode(("ready",)))
    await out.drain()
    await host.serve(reader)
    return 0


def main() -> None:
    sys.exit(asyncio.run(main_async()))


if __name__ == "__main__":
    main()
