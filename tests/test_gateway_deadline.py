"""The target's ``timeout_s`` bounds an upstream call's retries too.

A slow upstream that keeps failing with a retryable status must not stretch
one call to ``retries + 1`` timeouts: retries are made only while time is
left, counted from the first attempt, and a retry's answer must start by
then. Real gateway on a real port, the local OpenAI wire server as the
upstream, the official SDK as the client.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import openai
import pytest
from aiohttp import web

from cutover.gateway import Gateway, GatewayConfig
from cutover.testing import Fault, OpenAIServer, serve_app

KEY = "sk-client-1"
MSG = [{"role": "user", "content": "hello"}]


def config(upstream: OpenAIServer, timeout_s: float, **route: object) -> GatewayConfig:
    target = {"target": f"openai:gpt-base@{upstream.base_url}", "timeout_s": timeout_s}
    return GatewayConfig.model_validate(
        {"client_keys": [KEY], "routes": {"bot": {"baseline": target, **route}}}
    )


@pytest.fixture
async def upstream() -> AsyncIterator[OpenAIServer]:
    async with OpenAIServer() as server:
        yield server


async def ask(cfg: GatewayConfig) -> tuple[int, str, float]:
    async with serve_app(Gateway(cfg, env={}).app()) as root:
        c = openai.AsyncOpenAI(base_url=f"{root}/v1", api_key=KEY, max_retries=0, timeout=30)
        started = time.monotonic()
        try:
            await c.chat.completions.create(model="bot", messages=MSG)  # type: ignore[arg-type]
        except openai.APIStatusError as exc:
            return exc.status_code, exc.message, time.monotonic() - started
        return 200, "", time.monotonic() - started


async def test_a_slow_failure_goes_back_as_it_is_when_no_equal_time_is_left(
    upstream: OpenAIServer,
) -> None:
    # Each attempt fails after 0.6 s; five retries allowed. Without the bound the call
    # would take six attempts, 3.6 s. After the first, 0.35 s are left: less than an
    # attempt took, so the upstream's own 503 goes back (not a made-up 504).
    upstream.inject(Fault.status(503, seconds=0.6), times=6)
    status, _, took = await ask(config(upstream, 1.0, retries=5, retry_max_wait_s=0.05))
    assert status == 503
    assert upstream.requests_total == 1
    assert took < 1.5  # not six attempts


async def test_a_retry_is_cut_at_the_timeout(upstream: OpenAIServer) -> None:
    # A failure after 0.8 s leaves 1.15 s for a retry, which hangs: cut when the 2 s are
    # up, not a whole timeout after the retry began (2.85 s).
    upstream.inject(Fault.status(503, seconds=0.8))
    upstream.inject(Fault.hang())
    status, message, took = await ask(config(upstream, 2.0, retries=5, retry_max_wait_s=0.05))
    assert status == 504 and "2s" in message
    assert upstream.requests_total == 2
    assert took < 2.45


async def test_a_retried_whole_answer_must_also_end_in_time() -> None:
    """The retry's headers come in time but its body trickles: the answer (not a stream)
    must end by the timeout too, not a whole timeout after the retry began."""
    calls = 0

    async def handler(request: web.Request) -> web.StreamResponse:
        nonlocal calls
        calls += 1
        if calls == 1:  # a slow failure, leaving time for one retry
            await asyncio.sleep(0.8)
            return web.json_response({"error": {"message": "busy"}}, status=503)
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        await resp.prepare(request)
        for _ in range(40):  # 4 s of body
            await resp.write(b" ")
            await asyncio.sleep(0.1)
        await resp.write(b"{}")
        return resp

    app = web.Application()
    app.router.add_post("/v1/chat/completions", handler)
    async with serve_app(app) as root:
        cfg = GatewayConfig.model_validate(
            {
                "client_keys": [KEY],
                "routes": {
                    "bot": {
                        "baseline": {"target": f"openai:m@{root}/v1", "timeout_s": 2.0},
                        "retries": 1,
                        "retry_max_wait_s": 0.05,
                    }
                },
            }
        )
        status, _, took = await ask(cfg)
    assert calls == 2
    assert status == 504
    assert took < 2.45  # not 0.85 s + a whole timeout (2.85 s)


async def test_no_retry_starts_when_its_pause_would_end_past_the_timeout(
    upstream: OpenAIServer,
) -> None:
    # The failure leaves 0.4 s; the upstream asks to wait 0.5 s first: the 503 itself
    # goes back to the client, with no second attempt.
    upstream.inject(Fault.status(503, seconds=0.6, retry_after=0.5), times=2)
    status, _, took = await ask(config(upstream, 1.0, retries=3, retry_max_wait_s=1.0))
    assert status == 503
    assert upstream.requests_total == 1
    assert took < 1.5


async def test_fast_failures_are_still_retried(upstream: OpenAIServer) -> None:
    upstream.inject(Fault.status(503), times=3)
    status, _, _ = await ask(config(upstream, 1.0, retries=3, retry_max_wait_s=0.05))
    assert status == 200
    assert upstream.requests_total == 4
