"""The gateway's HTTP server: an OpenAI-compatible proxy that splits traffic by arm.

``POST /v1/chat/completions`` picks the route by the body's ``model`` (an
alias), the arm by the sticky key (:mod:`cutover.gateway.routing`), replaces
``model`` with the arm's upstream model and relays the request as is (unknown
fields kept). Streams are relayed chunk by chunk as they arrive. Every answer
to it carries ``x-cutover-arm`` (``none`` when the request was rejected
before a route was chosen) and ``x-cutover-request-id``.

One ``aiohttp.ClientSession`` serves every upstream call; it opens with the
app and closes with it. Upstream keys are read from the environment once, when
the :class:`Gateway` is built, and are never logged or returned.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, cast

import aiohttp
import orjson
from aiohttp import web
from sqlalchemy.engine import make_url

from cutover.errors import GatewayConfigError, StoreError
from cutover.gateway._errors import (
    bad_request,
    error_response,
    stream_error_frame,
    too_large,
    unauthorized,
    upstream_error_response,
)
from cutover.gateway.admin import AdminAPI
from cutover.gateway.anthropic_api import AnthropicEndpoints, anthropic_url_and_headers
from cutover.gateway.config import GatewayConfig, RouteConfig, StickyKey
from cutover.gateway.embeddings_api import EmbeddingsSearch
from cutover.gateway.feedback import handle_feedback
from cutover.gateway.log import (
    LogStore,
    RequestLog,
    StoreAccess,
    Telemetry,
    ThreadStoreAccess,
    Trace,
)
from cutover.gateway.metrics import GatewayMetrics, SharedMetrics
from cutover.gateway.route_state import RouteState
from cutover.gateway.routing import SLICE_HEADER, Arm, assign, slice_label
from cutover.gateway.shadow import Shadow, ShadowStore
from cutover.gateway.shadow_jobs import BODY_KEY
from cutover.gateway.upstream import open_upstream
from cutover.gateway.worker import RemoteShadow, StoreWorker, WorkerStoreAccess
from cutover.pricing import quote
from cutover.providers._http import session_timeout, stream_timeout
from cutover.store import Store
from cutover.targets import Target

MAX_BODY_BYTES = 4 * 1024 * 1024
UPSTREAM_CONNECTIONS = 1024
OFFICIAL_OPENAI_URL = "https://api.openai.com/v1"
DEFAULT_OPENAI_KEY_ENV = "OPENAI_API_KEY"
ARM_HEADER = "x-cutover-arm"
REQUEST_ID_HEADER = "x-cutover-request-id"
FALLBACK_HEADER = "x-cutover-fallback"
FALLBACK_STATUSES = frozenset({429, 500, 502, 503, 504, 529})

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Upstream:
    """Where one arm's requests go: the URL and the headers (with the key)."""

    target: Target
    url: str
    headers: Mapping[str, str]
    timeout: aiohttp.ClientTimeout
    stream_timeout: aiohttp.ClientTimeout
    retries: int = 1
    retry_max_wait_s: float = 1.0

    @property
    def label(self) -> str:
        return f"{self.target.provider}:{self.target.model}"


@dataclass(frozen=True, slots=True)
class Route:
    """A route ready to serve: its arms resolved to upstreams."""

    alias: str
    baseline: Upstream
    candidate: Upstream | None
    weight: float
    sticky: StickyKey
    allow: frozenset[str]
    fallback: bool = False

    def upstream(self, arm: Arm) -> Upstream:
        """The upstream serving ``arm``."""
        if arm is Arm.CANDIDATE and self.candidate is not None:
            return self.candidate
        return self.baseline


def upstream_for(target: Target, env: Mapping[str, str], *, field: str) -> Upstream:
    """The upstream of an ``openai:`` (OpenAI-compatible) or ``anthropic:`` target."""
    if target.provider == "anthropic":
        url, headers = anthropic_url_and_headers(target, env)
        return Upstream(
            target=target,
            url=url,
            headers=headers,
            timeout=session_timeout(target),
            stream_timeout=stream_timeout(target),
        )
    if target.provider != "openai":
        raise GatewayConfigError(
            f"provider '{target.provider}' is not served by the gateway",
            field=field,
            hint="baseline and candidate must be openai:model[@url] or anthropic:model[@url]",
        )
    base = (target.base_url or OFFICIAL_OPENAI_URL).rstrip("/")
    headers = {"Content-Type": "application/json"}
    key = env.get(target.api_key_env or DEFAULT_OPENAI_KEY_ENV)
    if key:
        headers["Authorization"] = f"Bearer {key}"
    headers.update(target.headers)
    return Upstream(
        target=target,
        url=f"{base}/chat/completions",
        headers=headers,
        timeout=session_timeout(target),
        stream_timeout=stream_timeout(target),
    )


def build_route(alias: str, config: RouteConfig, env: Mapping[str, str]) -> Route:
    def resolved(target: Target, field: str) -> Upstream:
        return replace(
            upstream_for(target, env, field=field),
            retries=config.retries,
            retry_max_wait_s=config.retry_max_wait_s,
        )

    candidate = (
        resolved(config.candidate, f"routes.{alias}.candidate")
        if config.candidate is not None
        else None
    )
    return Route(
        alias=alias,
        baseline=resolved(config.baseline, f"routes.{alias}.baseline"),
        candidate=candidate,
        weight=config.weight if candidate is not None else 0.0,
        sticky=config.sticky_key,
        allow=frozenset(config.allow),
        fallback=config.fallback and candidate is not None,
    )


class Gateway:
    """The proxy. ``Gateway(config).app()`` is the ``aiohttp.web`` application."""

    def __init__(
        self,
        config: GatewayConfig,
        *,
        env: Mapping[str, str] | None = None,
        rng: random.Random | None = None,
        max_body_bytes: int = MAX_BODY_BYTES,
        store: LogStore | None = None,
        metrics_dir: Path | None = None,
    ) -> None:
        source: Mapping[str, str] = os.environ if env is None else env
        self.config = config
        self.routes = {alias: build_route(alias, rc, source) for alias, rc in config.routes.items()}
        self.client_keys = frozenset(config.client_keys)
        self.max_body_bytes = max_body_bytes
        self._rng = rng or random.Random()
        self.metrics = GatewayMetrics()
        self.shared_metrics = (
            SharedMetrics(self.metrics, metrics_dir) if metrics_dir is not None else None
        )
        self.worker: StoreWorker | None = None
        access: StoreAccess | None = None
        threaded: ThreadStoreAccess | None = None
        if store is not None:
            given = store
            access = threaded = ThreadStoreAccess(lambda: given)
        elif config.store is not None and _in_memory(config.store):
            url = config.store
            access = threaded = ThreadStoreAccess(lambda: Store.open(url))
        elif config.store is not None:
            self.worker = StoreWorker(config.store, config)
            access = WorkerStoreAccess(self.worker)
        self.telemetry = Telemetry(
            config.log, self.metrics, _request_log(config, self.metrics, access)
        )
        self.anthropic = AnthropicEndpoints(self)
        self.embeddings = EmbeddingsSearch(config.store)
        self.route_state = RouteState.for_config(config, store)
        self.shadow: Shadow | RemoteShadow
        if self.worker is not None:
            self.shadow = RemoteShadow(config, self.worker, rng=self._rng)
        else:
            opener = threaded.store if threaded is not None else None
            self.shadow = Shadow(
                config,
                (lambda: cast(ShadowStore, opener())) if opener is not None else None,
                rng=self._rng,
            )
        if self.shadow.enabled:
            self.metrics.shadow_counters = self.shadow.counters
        self._session: aiohttp.ClientSession | None = None
        self._aliases = ", ".join(sorted(self.routes))
        self._health_body = orjson.dumps({"status": "ok", "pid": os.getpid()})
        self._models_body = orjson.dumps(
            {
                "object": "list",
                "data": [
                    {"id": alias, "object": "model", "created": 0, "owned_by": "cutover"}
                    for alias in self.routes
                ],
            }
        )

    def app(self) -> web.Application:
        app = web.Application(client_max_size=self.max_body_bytes)
        app.router.add_post("/v1/chat/completions", self.chat_completions)
        app.router.add_post("/v1/messages", self.messages)
        app.router.add_get("/v1/models", self.models)
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/metrics", self.metrics_endpoint)
        app.router.add_post("/v1/feedback", self.feedback)
        app.router.add_post("/v1/embeddings/search", self.embeddings_search)
        AdminAPI(self).register(app)
        if self.shared_metrics is not None:  # first in, so the last to finish
            app.cleanup_ctx.append(self._shared_metrics_ctx)
        app.cleanup_ctx.append(self._session_ctx)
        app.cleanup_ctx.append(self._log_ctx)
        app.cleanup_ctx.append(self._route_state_ctx)
        app.cleanup_ctx.append(self._shadow_ctx)
        return app

    async def _shared_metrics_ctx(self, app: web.Application) -> AsyncIterator[None]:
        """With ``--workers N``: this worker's series written for the others' scrapes, and
        once more at the end (after the other contexts are done) so its counts stay."""
        shared = self.shared_metrics
        assert shared is not None
        task = asyncio.create_task(shared.run())
        try:
            yield
        finally:
            await _cancel(task)
            try:
                await shared.write()
            except OSError as exc:
                logger.warning("cannot share this worker's last metrics (%s)", exc)

    async def _shadow_ctx(self, app: web.Application) -> AsyncIterator[None]:
        """The shadow writer task; running shadow calls finished and written at the end."""
        shadow = self.shadow
        task = asyncio.create_task(shadow.run()) if shadow.enabled else None
        try:
            yield
        finally:
            if task is not None:
                await _cancel(task)
                await shadow.close()

    async def _session_ctx(self, app: web.Application) -> AsyncIterator[None]:
        connector = aiohttp.TCPConnector(
            limit=UPSTREAM_CONNECTIONS, limit_per_host=0, keepalive_timeout=30.0, ttl_dns_cache=300
        )
        self._session = aiohttp.ClientSession(connector=connector, raise_for_status=False)
        try:
            yield
        finally:
            session, self._session = self._session, None
            await session.close()

    async def _log_ctx(self, app: web.Application) -> AsyncIterator[None]:
        """The request log's writer task; a last flush and the store closed at the end."""
        log = self.telemetry.log
        targets = [r.baseline.target for r in self.routes.values()]
        targets += [r.candidate.target for r in self.routes.values() if r.candidate is not None]
        await asyncio.to_thread(lambda: [quote(t) for t in targets])  # load prices off the loop
        if self.worker is not None:
            try:
                await self.worker.start()
            except StoreError as exc:  # traffic goes on; the writes retry (and restart it)
                logger.warning("%s", exc)
        task = asyncio.create_task(log.run()) if log.enabled else None
        try:
            yield
        finally:
            if task is not None:
                await _cancel(task)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(log.flush(), 5.0)
                await log.close()
            await asyncio.to_thread(self.embeddings.close)

    async def _route_state_ctx(self, app: web.Application) -> AsyncIterator[None]:
        """The shared route weights: loaded before serving, kept in step until the end."""
        await self.route_state.start()
        try:
            yield
        finally:
            await self.route_state.stop()

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("the gateway app is not running")
        return self._session

    # -- small endpoints ---------------------------------------------------------

    async def healthz(self, request: web.Request) -> web.Response:
        return web.Response(body=self._health_body, content_type="application/json")

    async def models(self, request: web.Request) -> web.Response:
        if self._client_key(request) is None:
            return unauthorized({})
        return web.Response(body=self._models_body, content_type="application/json")

    async def metrics_endpoint(self, request: web.Request) -> web.Response:
        shared = self.shared_metrics
        body = self.metrics.render() if shared is None else await shared.render()
        return web.Response(body=body, headers={"Content-Type": self.metrics.content_type})

    async def embeddings_search(self, request: web.Request) -> web.Response:
        if self._client_key(request) is None:
            return unauthorized({})
        return await self.embeddings.handle(request, {})

    async def feedback(self, request: web.Request) -> web.Response:
        if self._client_key(request) is None:
            return unauthorized({})
        return await handle_feedback(request, self.telemetry)

    # -- chat completions ----------------------------------------------------------

    async def messages(self, request: web.Request) -> web.StreamResponse:
        """``POST /v1/messages`` (:class:`AnthropicEndpoints`), then its shadow call."""
        trace = self.telemetry.trace("req_" + os.urandom(12).hex())
        trace.dialect = "messages"
        response = await self.anthropic.messages(request, trace)
        self.telemetry.finish(trace, response)
        if self.shadow.enabled:
            self.shadow.after_response(trace, request, response)  # never awaited here
        return response

    async def chat_completions(self, request: web.Request) -> web.StreamResponse:
        trace = self.telemetry.trace("req_" + os.urandom(12).hex())
        response = await self._chat_completions(request, trace)
        self.telemetry.finish(trace, response)
        if self.shadow.enabled:
            self.shadow.after_response(trace, request, response)  # never awaited here
        return response

    async def _chat_completions(self, request: web.Request, trace: Trace) -> web.StreamResponse:
        headers = {REQUEST_ID_HEADER: trace.request_id, ARM_HEADER: "none"}
        client_key = self._client_key(request)
        if client_key is None:
            return unauthorized(headers)
        body = await self._read_body(request, headers)
        if isinstance(body, web.Response):
            return body
        route = self.routes.get(body["model"])
        if route is None:
            trace.error_class = "model_not_found"
            return error_response(
                404,
                f"The model '{body['model']}' does not exist on this gateway; "
                f"valid models (route aliases): {self._aliases}",
                error_type="invalid_request_error",
                code="model_not_found",
                param="model",
                headers=headers,
            )
        try:
            trace.slice = slice_label(request.headers)
        except ValueError as exc:
            trace.error_class = "invalid_slice"
            return error_response(
                400,
                str(exc),
                error_type="invalid_request_error",
                param=SLICE_HEADER,
                headers=headers,
            )
        if self.shadow.enabled and self.shadow.wants(route.alias):
            trace.keep_all_chunks = True  # only shadowed routes keep the whole relayed stream
        key = _sticky_value(route.sticky, body, request, client_key)
        assignment = assign(
            route.alias,
            key,
            weight=self.route_state.weight(route.alias),
            has_candidate=route.candidate is not None,
            allow=route.allow,
            rng=self._rng,
        )
        headers[ARM_HEADER] = assignment.arm.value
        trace.route, trace.arm = route.alias, assignment.arm.value
        trace.key_hash, trace.messages = assignment.key_hash, body["messages"]
        trace.response_format = body.get("response_format")

        async def dispatch(upstream: Upstream, headers: dict[str, str]) -> web.StreamResponse:
            if upstream.target.provider == "anthropic":
                return await self.anthropic.chat_via_anthropic(
                    request, upstream, body, headers, trace
                )
            body["model"] = upstream.target.model
            payload = orjson.dumps(body)
            if body.get("stream") is True:
                return await self._relay_stream(request, upstream, payload, headers, trace)
            return await self._relay(upstream, payload, headers, trace)

        return await self.serve_arm(route, assignment.arm, trace, headers, dispatch)

    async def serve_arm(
        self,
        route: Route,
        arm: Arm,
        trace: Trace,
        headers: dict[str, str],
        dispatch: Callable[[Upstream, dict[str, str]], Awaitable[web.StreamResponse]],
    ) -> web.StreamResponse:
        """Send the request to ``arm``'s upstream; on a candidate failure, maybe to the baseline.

        With the route's ``fallback`` on, a candidate answer that failed before
        anything reached the client (429, 5xx, timeout, unreachable: after the
        retries) is replaced by the baseline's answer. The request stays on the
        candidate arm in the log and the metrics, with the candidate's status
        and ``error_class`` ``fallback_<class>``, so fallbacks count against it.
        """
        upstream = route.upstream(arm)
        trace.target = upstream.target
        response = await dispatch(upstream, headers)
        if not (
            route.fallback
            and upstream is route.candidate
            and isinstance(response, web.Response)
            and response.status in FALLBACK_STATUSES
        ):
            return response
        trace.fallback_status = response.status
        trace.fallback_error = trace.error_class or _error_class(response)
        trace.error_class = None
        trace.target = route.baseline.target
        return await dispatch(route.baseline, {**headers, FALLBACK_HEADER: "baseline"})

    def _client_key(self, request: web.Request) -> str | None:
        auth = request.headers.get("Authorization", "")
        scheme, _, token = auth.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or token not in self.client_keys:
            return None
        return token

    async def _read_body(
        self, request: web.Request, headers: dict[str, str]
    ) -> dict[str, Any] | web.Response:
        """The request's JSON object, checked; or the 400/413 answer."""
        length = request.content_length
        if length is not None and length > self.max_body_bytes:
            return too_large(self.max_body_bytes, headers)
        try:
            raw = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return too_large(self.max_body_bytes, headers)
        request[BODY_KEY] = raw
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            return bad_request(
                f"We could not parse the JSON body of your request ({exc}).", None, headers
            )
        if not isinstance(body, dict):
            return bad_request("The request body must be a JSON object.", None, headers)
        problem = _type_problem(body)
        if problem is not None:
            return bad_request(problem[1], problem[0], headers)
        return body

    async def _relay(
        self, upstream: Upstream, payload: bytes, headers: dict[str, str], trace: Trace
    ) -> web.Response:
        try:
            resp = await open_upstream(
                self.session, upstream, payload, upstream.headers, trace, stream=False
            )
            try:
                data = await resp.read()
                status = resp.status
                content_type = resp.content_type
                if status >= 300:
                    return upstream_error_response(
                        status, data, resp.headers, label=upstream.label, headers=headers
                    )
            finally:
                resp.release()
        except TimeoutError:
            return _timeout(upstream, headers)
        except (aiohttp.ClientError, OSError) as exc:
            return _unreachable(upstream, exc, headers)
        if content_type != "application/json":
            return error_response(
                502,
                f"upstream {upstream.label} answered with content type '{content_type}', not JSON",
                error_type="upstream_error",
                headers=headers,
            )
        return web.Response(
            status=status, body=data, content_type="application/json", headers=headers
        )

    async def _relay_stream(
        self,
        request: web.Request,
        upstream: Upstream,
        payload: bytes,
        headers: dict[str, str],
        trace: Trace,
    ) -> web.StreamResponse:
        try:
            resp = await open_upstream(
                self.session, upstream, payload, upstream.headers, trace, stream=True
            )
        except TimeoutError:
            return _timeout(upstream, headers)
        except (aiohttp.ClientError, OSError) as exc:
            return _unreachable(upstream, exc, headers)
        try:
            if resp.status >= 300 or resp.content_type != "text/event-stream":
                try:
                    data = await resp.read()
                except TimeoutError:
                    return _timeout(upstream, headers)
                except (aiohttp.ClientError, OSError) as exc:
                    return _unreachable(upstream, exc, headers)
                if resp.status >= 300:
                    return upstream_error_response(
                        resp.status, data, resp.headers, label=upstream.label, headers=headers
                    )
                # The upstream ignored ``stream``: pass its whole answer on.
                return web.Response(
                    status=resp.status, body=data, content_type=resp.content_type, headers=headers
                )
            out = web.StreamResponse(
                status=200,
                headers={
                    **headers,
                    "Content-Type": "text/event-stream",
                    "Cache-Control": "no-cache",
                },
            )
            await out.prepare(request)
            try:
                async for chunk in _upstream_chunks(resp, upstream, trace):
                    await out.write(chunk)
                    trace.on_chunk(chunk)
                await out.write_eof()
            except ConnectionError:
                trace.error_class = "client_disconnected"  # the client went away mid-stream
            return out
        finally:
            resp.release()


async def _upstream_chunks(
    resp: aiohttp.ClientResponse, upstream: Upstream, trace: Trace
) -> AsyncIterator[bytes]:
    """The upstream's bytes as they arrive; an SSE error frame if the stream breaks."""
    try:
        async for chunk in resp.content.iter_any():
            yield chunk
    except TimeoutError:
        trace.error_class = "timeout"
        yield stream_error_frame(
            f"upstream {upstream.label} sent no next chunk within {upstream.target.timeout_s:g}s",
            error_type="timeout",
        )
    except aiohttp.ClientError as exc:
        trace.error_class = "upstream_stream_broken"
        yield stream_error_frame(
            f"the stream from upstream {upstream.label} was cut off ({type(exc).__name__})",
            error_type="upstream_error",
        )


def _in_memory(url: str) -> bool:
    """An in-memory SQLite store: only this process can see it (no worker process)."""
    parsed = make_url(url)
    return parsed.get_backend_name() == "sqlite" and parsed.database in (None, "", ":memory:")


def _request_log(
    config: GatewayConfig, metrics: GatewayMetrics, access: StoreAccess | None
) -> RequestLog:
    return RequestLog(
        access,
        metrics,
        queue_size=config.log.queue_size,
        batch_size=config.log.batch_size,
        flush_interval_s=config.log.flush_interval_s,
    )


def _sticky_value(
    sticky: StickyKey, body: Mapping[str, Any], request: web.Request, client_key: str
) -> str | None:
    if sticky.kind == "user":
        user = body.get("user")
        return user if isinstance(user, str) and user else None
    if sticky.kind == "header" and sticky.header is not None:
        return request.headers.get(sticky.header) or None
    if sticky.kind == "api_key":
        return client_key
    return None


def _type_problem(body: Mapping[str, Any]) -> tuple[str, str] | None:
    """``(param, message)`` for the first field of the wrong type."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        return "model", "'model' must be a non-empty string (a route alias)."
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "messages", "'messages' must be a non-empty array."
    if any(not isinstance(m, dict) for m in messages):
        return "messages", "each item of 'messages' must be an object."
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        return "stream", "'stream' must be a boolean."
    user = body.get("user")
    if user is not None and not isinstance(user, str):
        return "user", "'user' must be a string."
    return None


def _error_class(response: web.Response) -> str:
    """The ``type`` of an error answer in either dialect, else ``http_<status>``."""
    try:
        parsed = orjson.loads(response.body) if isinstance(response.body, bytes) else None
    except orjson.JSONDecodeError:
        parsed = None
    error = parsed.get("error") if isinstance(parsed, dict) else None
    kind = error.get("type") if isinstance(error, dict) else None
    return kind if isinstance(kind, str) and kind else f"http_{response.status}"


def _timeout(upstream: Upstream, headers: Mapping[str, str]) -> web.Response:
    return error_response(
        504,
        f"upstream {upstream.label} did not answer within {upstream.target.timeout_s:g}s",
        error_type="timeout",
        headers=headers,
    )


def _unreachable(
    upstream: Upstream, exc: BaseException, headers: Mapping[str, str]
) -> web.Response:
    return error_response(
        502,
        f"cannot reach upstream {upstream.label} ({type(exc).__name__})",
        error_type="upstream_connection_error",
        headers=headers,
    )


def run_gateway(
    config: GatewayConfig,
    *,
    host: str | None = None,
    port: int | None = None,
    reuse_port: bool = False,
    metrics_dir: Path | None = None,
) -> None:
    """Serve until interrupted (the ``cutover gateway`` command; one worker)."""
    gateway = Gateway(config, metrics_dir=metrics_dir)
    app = gateway.app()
    app.on_startup.append(_freeze_gc)
    web.run_app(
        app,
        loop=_new_loop(),
        host=host or config.listen.host,
        port=config.listen.port if port is None else port,
        reuse_port=reuse_port or None,
        access_log=None,
        print=None,
    )


def _new_loop() -> asyncio.AbstractEventLoop:
    """uvloop's event loop where it is installed (Linux, macOS), else asyncio's.

    The gateway is a proxy: most of its time goes to socket reads and writes and
    to the loop's own bookkeeping, which uvloop does in C. Measured in
    ``bench/gateway`` (see docs/gateway.md).
    """
    try:
        import uvloop
    except ImportError:  # pragma: no cover - the dependency is there except on Windows
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


async def _freeze_gc(app: web.Application) -> None:
    """Keep the cyclic GC off the objects that live as long as the server.

    After start-up the process holds about 100,000 tracked objects (modules,
    config, SQLAlchemy and pydantic internals). A full collection walks all of
    them (about 50 ms here), and the request log's queued records, which live
    a few hundred milliseconds, push the collector into one every few seconds
    under load: a 50 ms stall of every request in flight. ``gc.freeze()`` moves
    what exists now to a generation the collector never walks.
    """
    gc.collect()
    gc.freeze()


async def _cancel(task: asyncio.Task[None]) -> None:
    """Stop a background writer task and wait until it has stopped."""
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


__all__ = ["Gateway", "Route", "Upstream", "build_route", "run_gateway", "upstream_for"]
