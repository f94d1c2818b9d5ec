"""The background flush loop shared by the request log and the shadow writer."""

from __future__ import annotations

import asyncio
import contextlib

MAX_RETRY_PAUSE_S = 5.0
"""The longest pause between writes while the store keeps failing."""


class FlushLoop:
    """``run()`` calls ``flush()`` every ``flush_interval_s`` or when woken.

    After failed writes (``_failures_in_a_row``) the pause doubles, up to
    :data:`MAX_RETRY_PAUSE_S`, so an outage is retried without hammering the
    database; traffic never waits on it.
    """

    flush_interval_s: float
    _failures_in_a_row: int
    _wake: asyncio.Event

    async def flush(self) -> bool:
        raise NotImplementedError

    async def run(self) -> None:
        """Flush forever (the app's background task)."""
        while True:
            pause = self.flush_interval_s
            if self._failures_in_a_row:
                pause = min(self.flush_interval_s * 2**self._failures_in_a_row, MAX_RETRY_PAUSE_S)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), pause)
            self._wake.clear()
            await self.flush()
