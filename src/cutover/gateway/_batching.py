"""The background flush loop shared by the request log and the shadow writer."""

from __future__ import annotations

import asyncio
import contextlib
import logging

logger = logging.getLogger(__name__)

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
        """Flush forever (the app's background task); never dies of a failed write."""
        while True:
            if self._failures_in_a_row:  # back off; a full queue does not cut the pause short
                exponent = min(self._failures_in_a_row, 16)
                await asyncio.sleep(min(self.flush_interval_s * 2**exponent, MAX_RETRY_PAUSE_S))
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.flush_interval_s)
            self._wake.clear()
            try:
                await self.flush()
            except Exception:
                logger.exception("a background writer's flush failed unexpectedly")
                self._failures_in_a_row += 1
