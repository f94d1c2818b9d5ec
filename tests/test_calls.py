"""Retries honour Retry-After; rate limits hold; results are priced; errors recorded."""

from __future__ import annotations

import random

import pytest

from cutover.calls import RateLimiter, RetryPolicy, TargetCaller, TokenBucket
from cutover.errors import (
    ProviderAuthError,
    ProviderConnectionError,
    ProviderServerError,
    RateLimitedError,
)
from cutover.records import ModelRequest, Observation
from cutover.targets import Price, parse_target


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class ScriptedProvider:
    """Raises the scripted errors in order, then answers."""

    def __init__(self, target_label: str, script: list[Exception]) -> None:
        self.target = parse_target("openai:gpt-4o-mini@http://127.0.0.1:9/v1")
        self.script = list(script)
        self.calls = 0
        self.label = target_label

    async def complete(self, request: ModelRequest) -> Observation:
        self.calls += 1
        if self.script:
            raise self.script.pop(0)
        return Observation(
            target=self.label, output="ok", input_tokens=1000, output_tokens=500, latency_ms=5.0
        )

    async def aclose(self) -> None:
        return None


REQ = ModelRequest(messages=[{"role": "user", "content": "hi"}])


async def test_retry_after_is_honoured_then_success_is_priced() -> None:
    clock = FakeClock()
    target = parse_target(
        "openai:gpt-4o-mini@http://127.0.0.1:9/v1", price=Price(input_per_mtok=1, output_per_mtok=2)
    )
    provider = ScriptedProvider(
        "t",
        [
            RateLimitedError("429", status_code=429, retry_after_s=7.0),
            ProviderServerError("500", status_code=500),
        ],
    )
    caller = TargetCaller(
        target, provider, sleep=clock.sleep, limiter=RateLimiter(clock=clock, sleep=clock.sleep)
    )
    obs = await caller.call(REQ)
    assert obs.ok and obs.attempts == 3 and provider.calls == 3
    assert clock.sleeps[0] == 7.0  # Retry-After, not the backoff
    assert 0 < clock.sleeps[-1] <= 1.0  # second retry: exponential backoff base 0.5..1.0
    assert obs.cost_usd == pytest.approx((1000 * 1 + 500 * 2) / 1e6)


async def test_retries_exhausted_records_error_with_attempts() -> None:
    clock = FakeClock()
    target = parse_target("openai:m@http://127.0.0.1:9/v1", max_retries=2)
    provider = ScriptedProvider("t", [ProviderServerError("boom", status_code=503)] * 5)
    caller = TargetCaller(target, provider, sleep=clock.sleep)
    obs = await caller.call(REQ)
    assert not obs.ok and obs.error_class == "server_error" and obs.status_code == 503
    assert obs.attempts == 3 and provider.calls == 3


async def test_permanent_error_is_not_retried_and_counts_auth() -> None:
    provider = ScriptedProvider("t", [ProviderAuthError("bad key", status_code=401)])
    caller = TargetCaller(parse_target("openai:m@http://127.0.0.1:9/v1"), provider)
    obs = await caller.call(REQ)
    assert obs.error_class == "auth_error" and obs.attempts == 1 and caller.auth_failures == 1


async def test_unreachable_after_consecutive_connection_failures() -> None:
    clock = FakeClock()
    provider = ScriptedProvider("t", [ProviderConnectionError("refused")] * 3)
    caller = TargetCaller(
        parse_target("openai:m@http://127.0.0.1:9/v1", max_retries=2), provider, sleep=clock.sleep
    )
    await caller.call(REQ)
    assert caller.unreachable


def test_backoff_grows_and_is_capped() -> None:
    policy = RetryPolicy(base_delay_s=1, max_delay_s=8)
    rng = random.Random(0)
    err = ProviderServerError("x")
    delays = [policy.delay(n, err, rng) for n in range(1, 8)]
    assert 0.5 <= delays[0] <= 1 and 4 <= delays[3] <= 8 and max(delays) <= 8
    assert (
        RetryPolicy(max_retry_after_s=30).delay(1, RateLimitedError("x", retry_after_s=600), rng)
        == 30
    )


async def test_rpm_bucket_spaces_requests() -> None:
    clock = FakeClock()
    bucket = TokenBucket(60, clock=clock, sleep=clock.sleep)  # one per second, burst 1
    for _ in range(5):
        await bucket.take(1)
    assert clock.now == pytest.approx(4.0)


async def test_tpm_bucket_lets_a_large_request_through_then_charges_debt() -> None:
    clock = FakeClock()
    limiter = RateLimiter(tpm=6000, clock=clock, sleep=clock.sleep)  # 100 tokens/s, capacity 100
    await limiter.acquire(1000)  # bigger than the bucket: passes when full, leaves a debt
    limiter.release(1000, 1000)
    assert clock.now == 0
    await limiter.acquire(50)
    assert clock.now == pytest.approx(9.5)  # (900 debt + 50) / 100 per second


async def test_pause_holds_new_calls() -> None:
    clock = FakeClock()
    limiter = RateLimiter(clock=clock, sleep=clock.sleep)
    limiter.pause(3)
    await limiter.acquire(1)
    assert clock.now == pytest.approx(3)


async def test_a_provider_bug_is_recorded_not_raised() -> None:
    provider = ScriptedProvider("t", [KeyError("choices")])
    caller = TargetCaller(parse_target("openai:m@http://127.0.0.1:9/v1"), provider)
    obs = await caller.call(REQ)
    assert obs.error_class == "unexpected_error" and "KeyError" in (obs.error or "")
    assert obs.attempts == 1 and provider.calls == 1


async def test_target_concurrency_caps_calls_in_flight() -> None:
    import asyncio

    class Slow:
        def __init__(self) -> None:
            self.target = parse_target("openai:m@http://127.0.0.1:9/v1")
            self.in_flight = 0
            self.peak = 0

        async def complete(self, request: ModelRequest) -> Observation:
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
            await asyncio.sleep(0.01)
            self.in_flight -= 1
            return Observation(target="t", output="ok")

        async def aclose(self) -> None:
            return None

    provider = Slow()
    caller = TargetCaller(parse_target("openai:m@http://127.0.0.1:9/v1", concurrency=3), provider)
    await asyncio.gather(*(caller.call(REQ) for _ in range(20)))
    assert provider.peak == 3
