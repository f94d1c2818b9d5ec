"""Calling one target politely: concurrency, rate limits, retries, pricing.

:class:`TargetCaller` wraps a provider for one target. Every call

1. waits for a concurrency slot and for the target's requests-per-minute and
   tokens-per-minute buckets (token buckets refilled continuously; tokens are
   estimated before the call and corrected from the reported usage after);
2. calls the provider; on a transient error (429, 5xx, timeout, reset,
   malformed body or broken stream) it waits and retries, honouring
   ``Retry-After`` (a 429 also pauses every other call to that target for the
   same time) and otherwise backing off exponentially with jitter;
3. prices the result and returns an :class:`~cutover.records.Observation`.

It never raises a provider error: when the retries are used up (or the error
is permanent) the Observation carries ``error`` and ``error_class`` and the
number of attempts, so error rates are measured rather than lost.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from cutover.errors import ProviderAuthError, ProviderConnectionError, ProviderError
from cutover.pricing import PriceQuote, cost_usd, quote
from cutover.providers.base import Provider, create_provider
from cutover.records import ModelRequest, Observation
from cutover.targets import Target

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How long to wait before retry number ``attempt`` (1-based)."""

    max_retries: int = 4
    base_delay_s: float = 0.5
    max_delay_s: float = 20.0
    max_retry_after_s: float = 120.0

    def delay(self, attempt: int, error: ProviderError, rng: random.Random) -> float:
        if error.retry_after_s is not None:
            return max(0.0, min(error.retry_after_s, self.max_retry_after_s))
        ceiling = min(self.max_delay_s, self.base_delay_s * 2 ** (attempt - 1))
        return rng.uniform(ceiling / 2, ceiling)


class TokenBucket:
    """A continuously refilled bucket that may go into debt.

    ``take(n)`` waits until the level is at least ``min(n, capacity)`` and
    then subtracts ``n``; a request larger than the bucket therefore still
    passes once the bucket is full, and the debt delays the next ones.
    """

    def __init__(self, per_minute: float, *, clock: Clock, sleep: Sleep) -> None:
        self.rate = per_minute / 60.0
        self.capacity = max(1.0, self.rate)
        self.level = self.capacity
        self._clock = clock
        self._sleep = sleep
        self._stamp = clock()
        self._lock = asyncio.Lock()

    def _refill(self) -> None:
        now = self._clock()
        self.level = min(self.capacity, self.level + (now - self._stamp) * self.rate)
        self._stamp = now

    async def take(self, n: float) -> None:
        async with self._lock:
            need = min(n, self.capacity)
            self._refill()
            while self.level < need:
                await self._sleep((need - self.level) / self.rate)
                self._refill()
            self.level -= n

    def give_back(self, n: float) -> None:
        """Correct an estimate: positive ``n`` returns tokens, negative takes more."""
        self._refill()
        self.level = min(self.capacity, self.level + n)


class RateLimiter:
    """Concurrency slots, requests/minute and tokens/minute for one target."""

    def __init__(
        self,
        *,
        concurrency: int | None = None,
        rpm: float | None = None,
        tpm: float | None = None,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._slots = asyncio.Semaphore(concurrency) if concurrency else None
        self._requests = TokenBucket(rpm, clock=clock, sleep=sleep) if rpm else None
        self._tokens = TokenBucket(tpm, clock=clock, sleep=sleep) if tpm else None
        self._clock = clock
        self._sleep = sleep
        self._paused_until = 0.0

    def pause(self, seconds: float) -> None:
        """Hold every new call for ``seconds`` (after a 429 with Retry-After)."""
        self._paused_until = max(self._paused_until, self._clock() + seconds)

    async def acquire(self, estimated_tokens: int) -> None:
        if self._slots is not None:
            await self._slots.acquire()
        try:
            while (wait := self._paused_until - self._clock()) > 0:
                await self._sleep(wait)
            if self._requests is not None:
                await self._requests.take(1)
            if self._tokens is not None:
                await self._tokens.take(estimated_tokens)
        except BaseException:
            if self._slots is not None:
                self._slots.release()
            raise

    def release(self, estimated_tokens: int, actual_tokens: int | None) -> None:
        if self._slots is not None:
            self._slots.release()
        if self._tokens is not None and actual_tokens is not None:
            self._tokens.give_back(estimated_tokens - actual_tokens)


def estimate_tokens(request: ModelRequest) -> int:
    """Rough tokens of a request: prompt characters / 4 plus the output budget."""
    chars = 0
    for message in request.messages:
        content = message.get("content")
        if isinstance(content, str):
            chars += len(content)
        elif isinstance(content, list):
            chars += sum(
                len(str(part.get("text", ""))) for part in content if isinstance(part, dict)
            )
    budget = request.params.get("max_tokens") or request.params.get("max_completion_tokens") or 256
    return chars // 4 + int(budget)


class TargetCaller:
    """Calls one target with its limits and retry policy; prices every result."""

    def __init__(
        self,
        target: Target,
        provider: Provider | None = None,
        *,
        policy: RetryPolicy | None = None,
        limiter: RateLimiter | None = None,
        seed: int = 0,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.target = target
        self.provider = provider if provider is not None else create_provider(target)
        self.policy = policy or RetryPolicy(max_retries=target.max_retries)
        self.limiter = limiter or RateLimiter(
            concurrency=target.concurrency, rpm=target.rpm, tpm=target.tpm
        )
        self.price: PriceQuote | None = quote(target)
        self._rng = random.Random(seed)
        self._sleep = sleep
        self.successes = 0
        self.consecutive_connection_failures = 0
        self.auth_failures = 0

    async def call(self, request: ModelRequest) -> Observation:
        estimated = estimate_tokens(request)
        attempt = 0
        while True:
            attempt += 1
            await self.limiter.acquire(estimated)
            actual: int | None = None
            try:
                observation = await self.provider.complete(request)
                if observation.input_tokens is not None and observation.output_tokens is not None:
                    actual = observation.input_tokens + observation.output_tokens
            except ProviderError as exc:
                self._note_failure(exc)
                if exc.retryable and attempt <= self.policy.max_retries:
                    wait = self.policy.delay(attempt, exc, self._rng)
                    if exc.retry_after_s is not None:
                        self.limiter.pause(wait)
                    await self._sleep(wait)
                    continue
                return self._failed(exc, attempt)
            except Exception as exc:  # noqa: BLE001 - a provider bug must not sink the run
                # Recorded with its type so it shows in the report; never retried.
                return Observation(
                    target=self.target.label,
                    error=f"{type(exc).__name__}: {exc}",
                    error_class="unexpected_error",
                    attempts=attempt,
                    simulated=self.target.simulated,
                )
            finally:
                self.limiter.release(estimated, actual)
            self.successes += 1
            self.consecutive_connection_failures = 0
            observation.attempts = attempt
            if observation.cost_usd is None:
                observation.cost_usd = cost_usd(
                    self.price, observation.input_tokens, observation.output_tokens
                )
            return observation

    def _note_failure(self, exc: ProviderError) -> None:
        if isinstance(exc, ProviderConnectionError):
            self.consecutive_connection_failures += 1
        elif isinstance(exc, ProviderAuthError):
            self.auth_failures += 1

    def _failed(self, exc: ProviderError, attempts: int) -> Observation:
        return Observation(
            target=self.target.label,
            output=exc.partial_output,
            error=exc.message,
            error_class=exc.error_class,
            status_code=exc.status_code,
            attempts=attempts,
            simulated=self.target.simulated,
        )

    @property
    def unreachable(self) -> bool:
        """True when no call ever succeeded and the last several could not connect."""
        return self.successes == 0 and self.consecutive_connection_failures >= 3

    async def aclose(self) -> None:
        await self.provider.aclose()


__all__ = ["RateLimiter", "RetryPolicy", "TargetCaller", "TokenBucket", "estimate_tokens"]
