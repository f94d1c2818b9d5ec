"""What the request path hands to the shadow: a :class:`ShadowJob`, and the sampling.

A job is the finished request in raw form: the client's body as received, the
answer the gateway gave (the whole body, or every relayed stream chunk), its
status and timings. Building one is cheap (no parsing); it is picklable, so
the shadow can run in the gateway process (:class:`~cutover.gateway.shadow.Shadow`)
or in the store worker process (:class:`~cutover.gateway.shadow_remote.RemoteShadow`).
The job is read (the request parsed, the primary answer turned into an
Observation by the providers' own parsers) only where the shadow call runs.

:class:`ShadowFront` is the part both share: which finished requests can be
shadowed, and the per-route sample.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from cutover.errors import ProviderError
from cutover.gateway.config import GatewayConfig
from cutover.gateway.log import Trace
from cutover.gateway.translate import messages_request_to_chat
from cutover.pricing import cost_usd, quote
from cutover.providers import anthropic as anthropic_provider
from cutover.providers import openai as openai_provider
from cutover.providers._http import observation_from_sse
from cutover.records import Observation
from cutover.targets import Target

BODY_KEY = web.RequestKey("cutover_body", bytes)
"""Where a handler keeps the request's raw body on the ``web.Request`` (for the shadow)."""
CHAT = "chat"
MESSAGES = "messages"
_PRIMARY_URL = "gateway"


@dataclass(frozen=True, slots=True)
class ShadowRoute:
    """One route's shadow settings, ready to use."""

    alias: str
    baseline: Target
    candidate: Target | None
    target: Target
    sample: float
    budget_usd_per_day: float | None

    def primary_target(self, arm: str) -> Target:
        """The target that answered on ``arm``."""
        if arm == "candidate" and self.candidate is not None:
            return self.candidate
        return self.baseline


def shadow_routes(config: GatewayConfig) -> dict[str, ShadowRoute]:
    """The routes of ``config`` that have a ``shadow``."""
    return {
        alias: ShadowRoute(
            alias=alias,
            baseline=rc.baseline,
            candidate=rc.candidate,
            target=rc.shadow.target,
            sample=rc.shadow.sample,
            budget_usd_per_day=rc.shadow.budget_usd_per_day,
        )
        for alias, rc in config.routes.items()
        if rc.shadow is not None
    }


@dataclass(frozen=True, slots=True)
class ShadowJob:
    """One finished request to shadow, in raw form."""

    alias: str
    request_id: str
    arm: str
    dialect: str
    """``chat`` (the client spoke OpenAI Chat Completions) or ``messages`` (Anthropic)."""
    body: bytes
    """The client's request body as received."""
    status: int
    answer: bytes | None
    """The whole answer (non-stream), in the client's dialect."""
    chunks: tuple[bytes, ...] | None
    """Every relayed stream chunk, in the client's dialect."""
    latency_ms: float
    ttft_ms: float | None


def job_for(trace: Trace, request: web.Request, response: web.StreamResponse) -> ShadowJob | None:
    """The job of a finished request, or ``None`` when it cannot be shadowed.

    Not shadowed: requests rejected before a route was chosen, and streams
    whose client left before the end (the primary's output is not whole).
    """
    body = request.get(BODY_KEY)
    if trace.route is None or trace.arm == "none" or not isinstance(body, bytes):
        return None
    if trace.fallback_status is not None:  # the baseline answered for the candidate
        return None
    answer = response.body if isinstance(response, web.Response) else None
    chunks: tuple[bytes, ...] | None = None
    if not isinstance(answer, bytes):
        answer = None
        if not trace.chunks or not trace.keep_all_chunks:
            return None
        if trace.error_class == "client_disconnected":
            return None
        chunks = tuple(trace.chunks)
    return ShadowJob(
        alias=trace.route,
        request_id=trace.request_id,
        arm=trace.arm,
        dialect=trace.dialect,
        body=body,
        status=response.status,
        answer=answer,
        chunks=chunks,
        latency_ms=(time.perf_counter() - trace.started) * 1000.0,
        ttft_ms=None if trace.ttft_s is None else trace.ttft_s * 1000.0,
    )


class ShadowFront:
    """The request-path side of a shadow: build the job, sample it, hand it on."""

    routes: dict[str, ShadowRoute]
    skipped_sample: int
    skipped_unsupported: int

    def __init__(self, config: GatewayConfig, rng: random.Random | None) -> None:
        self.routes = shadow_routes(config)
        self._rng = rng or random.Random()
        self.skipped_sample = 0
        self.skipped_unsupported = 0

    def wants(self, alias: str | None) -> bool:
        """Requests on ``alias`` are shadowed (so keep the whole relayed stream)."""
        return alias in self.routes

    def after_response(
        self, trace: Trace, request: web.Request, response: web.StreamResponse
    ) -> bool:
        """Offer a finished request to the shadow (no I/O, never waits); ``True`` if taken."""
        route = self.routes.get(trace.route) if trace.route is not None else None
        if route is None:
            return False
        job = job_for(trace, request, response)
        if job is None:
            self.skipped_unsupported += 1
            return False
        if route.sample < 1.0 and self._rng.random() >= route.sample:
            self.skipped_sample += 1
            return False
        return self.accept(job)

    def accept(self, job: ShadowJob) -> bool:
        """Take a sampled job; ``False`` (and counted) when it cannot be taken now."""
        raise NotImplementedError

    def front_counters(self) -> dict[str, int]:
        return {
            "skipped_sample": self.skipped_sample,
            "skipped_unsupported": self.skipped_unsupported,
        }


# -- reading a job -------------------------------------------------------------------


def job_request(job: ShadowJob, route: ShadowRoute) -> dict[str, Any]:
    """The job's request as an OpenAI chat-completions body (what the shadow target gets)."""
    body = orjson.loads(job.body)
    if job.dialect == MESSAGES:
        body = messages_request_to_chat(body, route.target.model)
    if not isinstance(body, dict):
        raise ValueError("the request body is not a JSON object")
    return body


def primary_observation(job: ShadowJob, target: Target) -> Observation:
    """What the gateway answered, read by the providers' own parsers and priced."""
    if job.chunks is not None:
        dialect = openai_provider if job.dialect == CHAT else anthropic_provider
        obs = observation_from_sse(
            b"".join(job.chunks),
            dialect.stream_assembler(target.label, _PRIMARY_URL),
            label=target.label,
            url=_PRIMARY_URL,
            status=job.status,
            latency_ms=job.latency_ms,
            ttft_ms=job.ttft_ms,
        )
    else:
        obs = _whole_answer(job, target)
    if obs.error is None:
        obs.cost_usd = cost_usd(quote(target), obs.input_tokens, obs.output_tokens)
    obs.simulated = target.simulated
    return obs


def _whole_answer(job: ShadowJob, target: Target) -> Observation:
    label = target.label
    try:
        data = orjson.loads(job.answer or b"")
    except orjson.JSONDecodeError:
        data = None
    failed = job.status >= 300 or not isinstance(data, dict)
    if isinstance(data, dict) and data.get("type") == "error":
        failed = True
    if failed:
        error = data.get("error") if isinstance(data, dict) else None
        error = error if isinstance(error, dict) else {}
        return Observation(
            target=label,
            error=str(error.get("message") or f"HTTP {job.status}"),
            error_class=str(error.get("type") or f"http_{job.status}"),
            status_code=job.status,
            latency_ms=job.latency_ms,
        )
    assert isinstance(data, dict)
    parse: Callable[..., Observation] = (
        openai_provider.observation_from_completion
        if job.dialect == CHAT
        else anthropic_provider.observation_from_message
    )
    try:
        obs = parse(
            data, label=label, url=_PRIMARY_URL, status=job.status, latency_ms=job.latency_ms
        )
    except ProviderError as exc:
        return Observation(
            target=label,
            error=exc.message,
            error_class=exc.error_class,
            status_code=job.status,
            latency_ms=job.latency_ms,
        )
    obs.ttft_ms = job.latency_ms  # relayed in one piece: the first token came with the rest
    return obs


__all__ = [
    "BODY_KEY",
    "CHAT",
    "MESSAGES",
    "ShadowFront",
    "ShadowJob",
    "ShadowRoute",
    "job_for",
    "job_request",
    "primary_observation",
    "shadow_routes",
]
