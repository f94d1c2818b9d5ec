"""Opening an upstream call, with the retries that are safe for a gateway.

:func:`open_upstream` POSTs and returns the response with its body not yet
read (the caller relays it, as a whole or as a stream). A retry happens only
before anything has been sent to the client and only when the call can be
repeated without harm:

- the upstream could not be reached or dropped the connection before answering
  (connection refused, reset, server disconnected);
- it answered 429, 500, 502, 503, 504 or 529 (Anthropic's overloaded): after its ``Retry-After`` when that is
  at most the route's ``retry_max_wait_s`` (a longer wait is not taken: the
  answer goes back to the client, which can decide), else after a short
  exponential backoff (50 ms, 100 ms, ... capped at ``retry_max_wait_s``).

A timeout is not retried: the time the client waits for is already spent. A
stream that breaks after it started is never retried (the client has part of
it); the gateway ends it with an error event instead.

The target's ``timeout_s`` bounds the retries too, counted from the first
attempt, so a slow upstream that keeps failing cannot stretch one call to
``retries + 1`` timeouts. A retry is made only if, after its pause, there is
at least as much time left as the failed attempt took (else the failed answer
goes back as it is: a real 503 with its Retry-After beats a made-up 504). A
retry's answer must start by then (else ``TimeoutError``, a 504), and a
whole answer (not a stream) must also end by then.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import TYPE_CHECKING

import aiohttp

from cutover.providers._http import parse_retry_after

if TYPE_CHECKING:
    from cutover.gateway.log import Trace
    from cutover.gateway.server import Upstream

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504, 529})
FIRST_BACKOFF_S = 0.05


async def open_upstream(
    session: aiohttp.ClientSession,
    upstream: Upstream,
    payload: bytes,
    headers: Mapping[str, str],
    trace: Trace,
    *,
    stream: bool,
) -> aiohttp.ClientResponse:
    """The upstream's response (any status, body unread); the caller releases it. A
    ``stream`` is bounded per chunk (``upstream.stream_timeout``), a whole answer as a
    whole (``upstream.timeout``).

    Raises what ``session.post`` raises (``TimeoutError``, ``aiohttp.ClientError``,
    ``OSError``) when the last attempt fails that way.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + upstream.target.timeout_s
    attempt = 0
    this = upstream.stream_timeout if stream else upstream.timeout
    while True:
        wait: float | None
        started = loop.time()
        try:
            if attempt == 0:
                resp = await session.post(upstream.url, data=payload, headers=headers, timeout=this)
            else:
                async with asyncio.timeout_at(deadline):
                    resp = await session.post(
                        upstream.url, data=payload, headers=headers, timeout=this
                    )
        except (aiohttp.ClientConnectionError, OSError) as exc:
            if isinstance(exc, TimeoutError) or attempt >= upstream.retries:
                raise
            wait = _backoff(attempt, upstream.retry_max_wait_s)
            if not _time_for_another(loop.time(), started, wait, deadline):
                raise
        else:
            if resp.status not in RETRY_STATUSES or attempt >= upstream.retries:
                return resp
            wait = parse_retry_after(resp.headers)
            if wait is None:
                wait = _backoff(attempt, upstream.retry_max_wait_s)
            elif wait > upstream.retry_max_wait_s:
                return resp
            if not _time_for_another(loop.time(), started, wait, deadline):
                return resp
            resp.release()
        attempt += 1
        if not stream:  # a whole answer ends in time too
            this = aiohttp.ClientTimeout(
                total=max(deadline - loop.time() - wait, 0.001),
                sock_connect=upstream.timeout.sock_connect,
            )
        trace.retries += 1
        await asyncio.sleep(wait)


def _time_for_another(now: float, started: float, wait: float, deadline: float) -> bool:
    """After the pause, at least as much time left as the failed attempt took."""
    return deadline - (now + wait) >= now - started


def _backoff(attempt: int, cap: float) -> float:
    return float(min(FIRST_BACKOFF_S * 2**attempt, cap))


__all__ = ["RETRY_STATUSES", "open_upstream"]
