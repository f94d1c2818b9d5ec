"""``openai:MODEL[@BASE_URL]``: any OpenAI-compatible ``POST /v1/embeddings``.

A call to :meth:`OpenAIEmbeddingModel.embed` splits the texts into requests
of ``request_size`` inputs, sends up to ``concurrency`` of them at once (and
at most ``max_rps`` per second), and retries each on 429, 5xx, timeouts,
resets and malformed bodies with exponential backoff, honouring
``Retry-After`` (a 429 pauses every request of the model). A request that
fails for good raises its :class:`~cutover.errors.ProviderError`; nothing is
half-returned.

The requests run on an event loop in a background thread owned by the model,
so ``embed`` is a plain blocking call that threads may share. The key comes
from ``OPENAI_API_KEY`` (or ``ModelOptions.api_key_env``); it is required
only for api.openai.com. The vectors are L2-normalised on arrival.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import threading
import weakref
from collections.abc import Sequence
from concurrent.futures import Future
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import numpy as np
import orjson

from cutover.calls import RateLimiter, RetryPolicy
from cutover.embeddings.models import ModelOptions, Vectors, l2_normalise
from cutover.errors import (
    MissingKeyError,
    ProviderError,
    RateLimitedError,
)
from cutover.providers._http import (
    error_for_payload,
    error_for_status,
    loads_json,
    malformed,
    transport_errors,
)

OFFICIAL_BASE_URL = "https://api.openai.com/v1"
PROBE_TEXT = "dimension probe"


class _LoopThread:
    """An event loop running in a daemon thread until :meth:`stop`."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="cutover-embeddings-http", daemon=True
        )
        self._thread.start()

    def submit(self, coro: Any) -> Future[Any]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def stop(self, session: aiohttp.ClientSession | None) -> None:
        if not self.loop.is_running():
            return
        if session is not None and not session.closed:
            with contextlib.suppress(Exception):  # closing is best effort
                self.submit(session.close()).result(timeout=5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout=5)
        if not self.loop.is_running():
            self.loop.close()


def _shutdown(holder: dict[str, Any]) -> None:
    loop_thread: _LoopThread | None = holder.get("thread")
    if loop_thread is not None:
        loop_thread.stop(holder.get("session"))
    holder.clear()


class OpenAIEmbeddingModel:
    """The ``openai:MODEL[@BASE_URL]`` model."""

    normalised = True

    def __init__(
        self, model: str, base_url: str | None, options: ModelOptions | None = None
    ) -> None:
        self._model = model
        self._base_url = base_url
        self._options = options or ModelOptions()
        base = (base_url or OFFICIAL_BASE_URL).rstrip("/")
        self.url = f"{base}/embeddings"
        key = os.environ.get(self._options.api_key_env)
        if not key and urlsplit(base).hostname == "api.openai.com":
            raise MissingKeyError(
                f"model '{self.spec}' needs an API key: environment variable "
                f"{self._options.api_key_env} is not set",
                field="api_key_env",
                hint=f"export {self._options.api_key_env}=...",
            )
        self._headers = {"Content-Type": "application/json"}
        if key:
            self._headers["Authorization"] = f"Bearer {key}"
        self._dimensions = self._options.dimensions
        self._policy = RetryPolicy(
            max_retries=max(0, self._options.max_retries),
            base_delay_s=max(0.0, self._options.backoff_s),
        )
        self._rng = random.Random()
        self._lock = threading.Lock()
        # Loop, session and limiter live in the holder so the finalizer can close them.
        self._holder: dict[str, Any] = {}
        self._finalizer = weakref.finalize(self, _shutdown, self._holder)
        self.requests_sent = 0

    # -- identity --------------------------------------------------------------

    @property
    def spec(self) -> str:
        return f"openai:{self._model}" + (f"@{self._base_url}" if self._base_url else "")

    @property
    def name(self) -> str:
        return self._model

    @property
    def version(self) -> str:
        return "api"

    @property
    def identity(self) -> str:
        size = f"/{self._options.dimensions}" if self._options.dimensions else ""
        return f"openai:{self._model}{size}"

    @property
    def dimensions(self) -> int:
        """The size of the vectors: the ``dimensions`` option, else one probe request."""
        if self._dimensions is None:
            self._dimensions = int(self.embed([PROBE_TEXT]).shape[1])
        return self._dimensions

    # -- embedding -------------------------------------------------------------

    def embed(self, texts: Sequence[str]) -> Vectors:
        if not texts:
            return np.zeros((0, self._dimensions or 0), dtype=np.float32)
        future = self._loop().submit(self._embed_all(list(texts)))
        vectors: Vectors = future.result()
        if self._dimensions is None:
            self._dimensions = int(vectors.shape[1])
        elif vectors.shape[1] != self._dimensions:
            raise malformed(
                self.spec,
                self.url,
                f"{vectors.shape[1]}-dimensional vectors (expected {self._dimensions})",
            )
        return vectors

    def close(self) -> None:
        self._finalizer()

    def _loop(self) -> _LoopThread:
        with self._lock:
            if not self._finalizer.alive:
                raise RuntimeError(f"model '{self.spec}' is closed")
            thread: _LoopThread | None = self._holder.get("thread")
            if thread is None:
                thread = _LoopThread()
                self._holder["thread"] = thread
            return thread

    def _session(self) -> tuple[aiohttp.ClientSession, RateLimiter]:
        # Called on the loop thread only.
        session: aiohttp.ClientSession | None = self._holder.get("session")
        if session is None or session.closed:
            opts = self._options
            connector = aiohttp.TCPConnector(limit=max(1, opts.concurrency), limit_per_host=0)
            session = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(total=opts.timeout_s, sock_connect=opts.timeout_s),
                raise_for_status=False,
            )
            self._holder["session"] = session
            self._holder["limiter"] = RateLimiter(
                concurrency=max(1, opts.concurrency),
                rpm=opts.max_rps * 60.0 if opts.max_rps else None,
            )
        limiter: RateLimiter = self._holder["limiter"]
        return session, limiter

    async def _embed_all(self, texts: list[str]) -> Vectors:
        size = max(1, self._options.request_size)
        chunks = [texts[i : i + size] for i in range(0, len(texts), size)]
        tasks = [asyncio.ensure_future(self._with_retries(chunk)) for chunk in chunks]
        try:
            parts = await asyncio.gather(*tasks)
        except BaseException:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        return l2_normalise(np.concatenate(parts, axis=0))

    async def _with_retries(self, texts: list[str]) -> Vectors:
        session, limiter = self._session()
        attempt = 0
        while True:
            await limiter.acquire(0)
            try:
                return await self._post(session, texts)
            except ProviderError as exc:
                attempt += 1
                if not exc.retryable or attempt > self._policy.max_retries:
                    if attempt > 1:
                        exc.args = (f"{exc} (after {attempt} attempts)",)
                    raise
                delay = self._policy.delay(attempt, exc, self._rng)
                if isinstance(exc, RateLimitedError):
                    limiter.pause(delay)
            finally:
                limiter.release(0, None)
            await asyncio.sleep(delay)

    async def _post(self, session: aiohttp.ClientSession, texts: list[str]) -> Vectors:
        body: dict[str, Any] = {
            "model": self._model,
            # An empty string is refused by the API; one space embeds as nothing.
            "input": [text if text.strip() else " " for text in texts],
            "encoding_format": "float",
        }
        if self._options.dimensions:
            body["dimensions"] = self._options.dimensions
        label, url = self.spec, self.url
        self.requests_sent += 1
        with transport_errors(label=label, url=url, timeout_s=self._options.timeout_s):
            async with session.post(url, data=orjson.dumps(body), headers=self._headers) as resp:
                raw = await resp.read()
                if resp.status >= 300:
                    raise error_for_status(resp.status, raw, resp.headers, label=label, url=url)
        return self._decode(loads_json(raw, label=label, url=url), len(texts), raw)

    def _decode(self, payload: Any, expected: int, raw: bytes) -> Vectors:
        label, url = self.spec, self.url
        if isinstance(payload, dict) and "error" in payload:
            raise error_for_payload(payload, label=label, url=url)
        data = payload.get("data") if isinstance(payload, dict) else None
        if not isinstance(data, list) or len(data) != expected:
            count = len(data) if isinstance(data, list) else "no"
            raise malformed(label, url, f"{count} embeddings for {expected} inputs", raw)
        rows: list[Any] = [None] * expected
        for position, item in enumerate(data):
            index = item.get("index", position) if isinstance(item, dict) else None
            vector = item.get("embedding") if isinstance(item, dict) else None
            if not isinstance(index, int) or not 0 <= index < expected or rows[index] is not None:
                raise malformed(label, url, "an embedding with a bad 'index'", raw)
            if not isinstance(vector, list) or not vector:
                raise malformed(label, url, "an embedding that is not a list of numbers", raw)
            rows[index] = vector
        try:
            matrix = np.asarray(rows, dtype=np.float32)
        except (TypeError, ValueError):
            raise malformed(
                label, url, "embeddings of different lengths or not numbers", raw
            ) from None
        if matrix.ndim != 2 or not np.isfinite(matrix).all():
            raise malformed(label, url, "embeddings that are not finite numbers", raw)
        return matrix


__all__ = ["OFFICIAL_BASE_URL", "OpenAIEmbeddingModel"]
