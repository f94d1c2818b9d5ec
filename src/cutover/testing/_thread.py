"""Running a local wire server on its own event loop in a background thread.

For synchronous tests and benchmarks (a build, a CLI subprocess) that need a
server on a real port::

    with serve_in_thread(EmbeddingsServer()) as server:
        ... use server.base_url from any thread or process ...
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TypeVar

from cutover.testing._server import WireServer

_S = TypeVar("_S", bound=WireServer)


@contextmanager
def serve_in_thread(server: _S, *, timeout_s: float = 10.0) -> Iterator[_S]:
    """Start ``server`` on a loop in a daemon thread; close it and stop the loop on exit.

    Counters and recorded requests may be read from the calling thread, and
    faults injected from it (the fault queues are deques, safe across threads).
    """
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="cutover-wire-server", daemon=True)
    thread.start()
    try:
        asyncio.run_coroutine_threadsafe(server.start(), loop).result(timeout_s)
        yield server
    finally:
        try:
            asyncio.run_coroutine_threadsafe(server.close(), loop).result(timeout_s)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout_s)
            loop.close()


__all__ = ["serve_in_thread"]
