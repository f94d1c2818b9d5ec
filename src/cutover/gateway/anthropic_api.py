"""The gateway's Anthropic side: ``POST /v1/messages`` and cross-dialect calls.

- An Anthropic client (``/v1/messages``) is routed by ``model`` like chat
  completions. On an ``anthropic:`` arm the body is passed through with
  ``model`` replaced and a stream relayed as it arrives; on an ``openai:`` arm
  the request, the answer and the stream are translated
  (:mod:`cutover.gateway.translate`).
- An OpenAI client (``/v1/chat/completions``) whose arm is ``anthropic:`` is
  served by :meth:`AnthropicEndpoints.chat_via_anthropic`.

Errors on ``/v1/messages`` are Anthropic-shaped
(``{"type": "error", "error": {"type", "message"}}``) so the ``anthropic``
SDK raises its usual exceptions; OpenAI clients keep OpenAI-shaped errors.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Protocol

import aiohttp
import orjson
from aiohttp import web

from cutover.gateway import _errors
from cutover.gateway.config import StickyKey
from cutover.gateway.log import Trace
from cutover.gateway.routing import assign, slice_label
from cutover.gateway.shadow_jobs import BODY_KEY
from cutover.gateway.translate import (
    ChatToMessagesStream,
    MessagesToChatStream,
    TranslationError,
    chat_completion_to_message,
    chat_request_to_messages,
    error_event,
    message_to_chat_completion,
    messages_request_to_chat,
)
from cutover.gateway.upstream import open_upstream
from cutover.providers._http import SSEDecoder, SSEEvent, excerpt
from cutover.providers.anthropic import API_VERSION, DEFAULT_KEY_ENV, OFFICIAL_BASE_URL
from cutover.targets import Target

if TYPE_CHECKING:
    from cutover.gateway.server import Gateway, Upstream

ARM_HEADER = "x-cutover-arm"
REQUEST_ID_HEADER = "x-cutover-request-id"

_ERROR_TYPES: Mapping[int, str] = MappingProxyType(
    {
        400: "invalid_request_error",
        401: "authentication_error",
        403: "permission_error",
        404: "not_found_error",
        413: "request_too_large",
        429: "rate_limit_error",
        500: "api_error",
        502: "api_error",
        504: "timeout_error",
        529: "overloaded_error",
    }
)
_FORWARDED_HEADERS = ("anthropic-beta",)


def anthropic_url_and_headers(target: Target, env: Mapping[str, str]) -> tuple[str, dict[str, str]]:
    """The Messages URL of an ``anthropic:`` target and the headers with its key."""
    base = (target.base_url or OFFICIAL_BASE_URL).rstrip("/").removesuffix("/v1")
    headers = {"Content-Type": "application/json", "anthropic-version": API_VERSION}
    key = env.get(target.api_key_env or DEFAULT_KEY_ENV)
    if key:
        headers["x-api-key"] = key
    headers.update(target.headers)
    return f"{base}/v1/messages", headers


# -- Anthropic-shaped errors --------------------------------------------------


def anthropic_error(
    status: int, message: str, headers: Mapping[str, str], *, error_type: str | None = None
) -> web.Response:
    """``{"type": "error", "error": {"type", "message"}}`` with ``status``."""
    kind = error_type or _ERROR_TYPES.get(
        status, "api_error" if status >= 500 else "invalid_request_error"
    )
    return web.Response(
        status=status,
        body=orjson.dumps({"type": "error", "error": {"type": kind, "message": message}}),
        content_type="application/json",
        headers=headers,
    )


def _upstream_message(body: bytes) -> str | None:
    """The message of an OpenAI- or Anthropic-shaped error body."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return str(error["message"])
    return None


def anthropic_upstream_error(
    status: int,
    body: bytes,
    upstream_headers: Mapping[str, str],
    *,
    label: str,
    headers: dict[str, str],
) -> web.Response:
    """An upstream's non-2xx, for an Anthropic client (the same status rules as OpenAI's)."""
    out_status, key_rejected, headers = _errors.relay_status(status, upstream_headers, headers)
    if key_rejected:
        return anthropic_error(out_status, _errors.key_rejected_message(label, status), headers)
    message = _upstream_message(body)
    if message is None:
        message = f"upstream {label} answered HTTP {status}: {excerpt(body)}"
    return anthropic_error(out_status, message, headers)


class _Dialect(Protocol):
    """How one client dialect words the gateway's own errors."""

    def error(self, status: int, message: str, headers: dict[str, str]) -> web.Response: ...

    def upstream_error(
        self, status: int, body: bytes, upstream_headers: Mapping[str, str], *, label: str,
        headers: dict[str, str],
    ) -> web.Response: ...  # fmt: skip

    def stream_error(self, message: str) -> bytes: ...


class _AnthropicDialect:
    def error(self, status: int, message: str, headers: dict[str, str]) -> web.Response:
        return anthropic_error(status, message, headers)

    def upstream_error(
        self, status: int, body: bytes, upstream_headers: Mapping[str, str], *, label: str,
        headers: dict[str, str],
    ) -> web.Response:  # fmt: skip
        return anthropic_upstream_error(
            status, body, upstream_headers, label=label, headers=headers
        )

    def stream_error(self, message: str) -> bytes:
        return error_event(message)


class _OpenAIDialect:
    def error(self, status: int, message: str, headers: dict[str, str]) -> web.Response:
        kind = {504: "timeout", 400: "invalid_request_error"}.get(status, "upstream_error")
        return _errors.error_response(status, message, error_type=kind, headers=headers)

    def upstream_error(
        self, status: int, body: bytes, upstream_headers: Mapping[str, str], *, label: str,
        headers: dict[str, str],
    ) -> web.Response:  # fmt: skip
        return _errors.upstream_error_response(
            status, body, upstream_headers, label=label, headers=headers
        )

    def stream_error(self, message: str) -> bytes:
        return _errors.stream_error_frame(message, error_type="upstream_error")


ANTHROPIC = _AnthropicDialect()
OPENAI = _OpenAIDialect()


class _StreamTranslator(Protocol):
    def feed(self, event: SSEEvent) -> list[bytes]: ...

    def close(self) -> list[bytes]: ...

    @property
    def complete(self) -> bool: ...


# -- the endpoints ------------------------------------------------------------


class AnthropicEndpoints:
    """``/v1/messages`` and the OpenAI -> Anthropic calls, on one :class:`Gateway`."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    def client_key(self, request: web.Request) -> str | None:
        """``x-api-key`` (what the anthropic SDK sends) or ``Authorization: Bearer``."""
        key = request.headers.get("x-api-key", "").strip()
        if not key:
            scheme, _, token = request.headers.get("Authorization", "").partition(" ")
            key = token.strip() if scheme.lower() == "bearer" else ""
        return key if key in self.gateway.client_keys else None

    async def messages(self, request: web.Request, trace: Trace) -> web.StreamResponse:
        """``POST /v1/messages``."""
        headers = {REQUEST_ID_HEADER: trace.request_id, ARM_HEADER: "none"}
        client_key = self.client_key(request)
        if client_key is None:
            return anthropic_error(
                401,
                "invalid x-api-key: send 'x-api-key: <key>' (or 'Authorization: Bearer <key>') "
                "with a key from the gateway's client_keys.",
                headers,
            )
        body = await self._read_body(request, headers)
        if isinstance(body, web.Response):
            return body
        route = self.gateway.routes.get(body["model"])
        if route is None:
            trace.error_class = "not_found_error"
            return anthropic_error(
                404,
                f"model: The model '{body['model']}' does not exist on this gateway; "
                f"valid models (route aliases): {', '.join(sorted(self.gateway.routes))}",
                headers,
            )
        try:
            trace.slice = slice_label(request.headers)
        except ValueError as exc:
            trace.error_class = "invalid_request_error"
            return anthropic_error(400, str(exc), headers)
        key = _sticky_value(route.sticky, body, request, client_key)
        assignment = assign(
            route.alias,
            key,
            weight=self.gateway.route_state.weight(route.alias),
            has_candidate=route.candidate is not None,
            allow=route.allow,
            rng=self.gateway._rng,
        )
        headers[ARM_HEADER] = assignment.arm.value
        trace.route, trace.arm = route.alias, assignment.arm.value
        trace.key_hash, trace.messages = assignment.key_hash, body["messages"]
        gateway = self.gateway
        if gateway.shadow.enabled and gateway.shadow.wants(route.alias):
            trace.keep_all_chunks = True
        stream = body.get("stream") is True
        forwarded = {h: request.headers[h] for h in _FORWARDED_HEADERS if h in request.headers}

        async def dispatch(upstream: Upstream, headers: dict[str, str]) -> web.StreamResponse:
            if upstream.target.provider == "anthropic":
                payload = orjson.dumps({**body, "model": upstream.target.model})
                if stream:
                    return await self._stream(
                        request, upstream, payload, headers, ANTHROPIC, trace, forwarded
                    )
                return await self._json(
                    upstream, payload, headers, ANTHROPIC, None, trace, forwarded
                )
            try:
                translated = messages_request_to_chat(body, upstream.target.model)
            except TranslationError as exc:
                return anthropic_error(400, str(exc), headers)
            payload = orjson.dumps(translated)
            if stream:
                return await self._stream(
                    request,
                    upstream,
                    payload,
                    headers,
                    ANTHROPIC,
                    trace,
                    translator=lambda: ChatToMessagesStream(model=upstream.target.model),
                    whole=chat_completion_to_message,
                )
            return await self._json(
                upstream, payload, headers, ANTHROPIC, chat_completion_to_message, trace
            )

        return await gateway.serve_arm(route, assignment.arm, trace, headers, dispatch)

    async def chat_via_anthropic(
        self,
        request: web.Request,
        upstream: Upstream,
        body: dict[str, Any],
        headers: dict[str, str],
        trace: Trace,
    ) -> web.StreamResponse:
        """An OpenAI Chat Completions request served by an ``anthropic:`` arm."""
        try:
            translated = chat_request_to_messages(body, upstream.target.model)
        except TranslationError as exc:
            return _errors.bad_request(str(exc), "messages", headers)
        payload = orjson.dumps(translated)
        if body.get("stream") is True:
            options = body.get("stream_options")
            include_usage = isinstance(options, dict) and options.get("include_usage") is True
            return await self._stream(
                request,
                upstream,
                payload,
                headers,
                OPENAI,
                trace,
                translator=lambda: MessagesToChatStream(
                    model=upstream.target.model, include_usage=include_usage
                ),
                whole=message_to_chat_completion,
            )
        return await self._json(
            upstream, payload, headers, OPENAI, message_to_chat_completion, trace
        )

    # -- body -----------------------------------------------------------------------

    async def _read_body(
        self, request: web.Request, headers: dict[str, str]
    ) -> dict[str, Any] | web.Response:
        limit = self.gateway.max_body_bytes
        too_large = f"The request body is larger than the gateway's limit of {limit} bytes."
        length = request.content_length
        if length is not None and length > limit:
            return anthropic_error(413, too_large, headers)
        try:
            raw = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return anthropic_error(413, too_large, headers)
        request[BODY_KEY] = raw
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            return anthropic_error(
                400, f"We could not parse the JSON body of your request ({exc}).", headers
            )
        if not isinstance(body, dict):
            return anthropic_error(400, "The request body must be a JSON object.", headers)
        problem = _type_problem(body)
        if problem is not None:
            return anthropic_error(400, problem, headers)
        return body

    # -- upstream calls ---------------------------------------------------------------

    async def _json(
        self,
        upstream: Upstream,
        payload: bytes,
        headers: dict[str, str],
        dialect: _Dialect,
        convert: Callable[[Mapping[str, Any]], dict[str, Any]] | None,
        trace: Trace,
        extra: Mapping[str, str] | None = None,
    ) -> web.Response:
        send = {**upstream.headers, **extra} if extra else upstream.headers
        try:
            resp = await open_upstream(
                self.gateway.session, upstream, payload, send, trace, stream=False
            )
            try:
                data = await resp.read()
                if resp.status >= 300:
                    return dialect.upstream_error(
                        resp.status, data, resp.headers, label=upstream.label, headers=headers
                    )
                content_type = resp.content_type
            finally:
                resp.release()
        except TimeoutError:
            return dialect.error(504, _timeout_message(upstream), headers)
        except (aiohttp.ClientError, OSError) as exc:
            return dialect.error(502, _unreachable_message(upstream, exc), headers)
        return self._answer(upstream, data, content_type, headers, dialect, convert)

    def _answer(
        self,
        upstream: Upstream,
        data: bytes,
        content_type: str,
        headers: dict[str, str],
        dialect: _Dialect,
        convert: Callable[[Mapping[str, Any]], dict[str, Any]] | None,
    ) -> web.Response:
        if content_type != "application/json":
            return dialect.error(
                502,
                f"upstream {upstream.label} answered with content type '{content_type}', not JSON",
                headers,
            )
        if convert is not None:
            try:
                parsed = orjson.loads(data)
            except orjson.JSONDecodeError:
                parsed = None
            if not isinstance(parsed, dict):
                return dialect.error(
                    502, f"upstream {upstream.label} answered with unreadable JSON", headers
                )
            data = orjson.dumps(convert(parsed))
        return web.Response(body=data, content_type="application/json", headers=headers)

    async def _stream(
        self,
        request: web.Request,
        upstream: Upstream,
        payload: bytes,
        headers: dict[str, str],
        dialect: _Dialect,
        trace: Trace,
        extra: Mapping[str, str] | None = None,
        *,
        translator: Callable[[], _StreamTranslator] | None = None,
        whole: Callable[[Mapping[str, Any]], dict[str, Any]] | None = None,
    ) -> web.StreamResponse:
        send = {**upstream.headers, **extra} if extra else upstream.headers
        try:
            resp = await open_upstream(
                self.gateway.session, upstream, payload, send, trace, stream=True
            )
        except TimeoutError:
            return dialect.error(504, _timeout_message(upstream), headers)
        except (aiohttp.ClientError, OSError) as exc:
            return dialect.error(502, _unreachable_message(upstream, exc), headers)
        try:
            if resp.status >= 300 or resp.content_type != "text/event-stream":
                try:
                    data = await resp.read()
                except TimeoutError:
                    return dialect.error(504, _timeout_message(upstream), headers)
                except (aiohttp.ClientError, OSError) as exc:
                    return dialect.error(502, _unreachable_message(upstream, exc), headers)
                if resp.status >= 300:
                    return dialect.upstream_error(
                        resp.status, data, resp.headers, label=upstream.label, headers=headers
                    )
                # The upstream ignored ``stream``: pass its whole answer on.
                return self._answer(upstream, data, resp.content_type, headers, dialect, whole)
            out = web.StreamResponse(
                status=200,
                headers={
                    **headers,
                    "Content-Type": "text/event-stream",
                    "Cache-Control": "no-cache",
                },
            )
            await out.prepare(request)
            frames = (
                _relay(resp, upstream, dialect, trace)
                if translator is None
                else _translated(resp, upstream, dialect, translator(), trace)
            )
            try:
                async for frame in frames:
                    await out.write(frame)
                    trace.on_chunk(frame)
                await out.write_eof()
            except ConnectionError:
                trace.error_class = "client_disconnected"  # the client went away mid-stream
            return out
        finally:
            resp.release()


async def _relay(
    resp: aiohttp.ClientResponse, upstream: Upstream, dialect: _Dialect, trace: Trace
) -> AsyncIterator[bytes]:
    """The upstream's bytes as they arrive; an error frame if the stream breaks."""
    try:
        async for chunk in resp.content.iter_any():
            yield chunk
    except TimeoutError:
        trace.error_class = "timeout"
        yield dialect.stream_error(_stall_message(upstream))
    except aiohttp.ClientError as exc:
        trace.error_class = "upstream_stream_broken"
        yield dialect.stream_error(_cut_message(upstream, exc))


async def _translated(
    resp: aiohttp.ClientResponse,
    upstream: Upstream,
    dialect: _Dialect,
    translator: _StreamTranslator,
    trace: Trace,
) -> AsyncIterator[bytes]:
    """The upstream's events translated as they arrive; an error frame if the stream breaks."""
    decoder = SSEDecoder()
    try:
        async for chunk in resp.content.iter_any():
            frames: list[bytes] = []
            for event in decoder.feed(chunk):
                frames.extend(translator.feed(event))
            if frames:
                yield b"".join(frames)
        last = decoder.flush()
        if last is not None:
            for frame in translator.feed(last):
                yield frame
    except TimeoutError:
        trace.error_class = "timeout"
        yield dialect.stream_error(_stall_message(upstream))
        return
    except aiohttp.ClientError as exc:
        trace.error_class = "upstream_stream_broken"
        yield dialect.stream_error(_cut_message(upstream, exc))
        return
    if translator.complete:
        for frame in translator.close():
            yield frame
    else:
        trace.error_class = "upstream_stream_broken"
        yield dialect.stream_error(f"the stream from upstream {upstream.label} ended early")


def _sticky_value(
    sticky: StickyKey, body: Mapping[str, Any], request: web.Request, client_key: str
) -> str | None:
    """The sticky key of an Anthropic request: ``user`` is ``metadata.user_id``."""
    if sticky.kind == "user":
        metadata = body.get("metadata")
        user = metadata.get("user_id") if isinstance(metadata, Mapping) else None
        return user if isinstance(user, str) and user else None
    if sticky.kind == "header" and sticky.header is not None:
        return request.headers.get(sticky.header) or None
    if sticky.kind == "api_key":
        return client_key
    return None


def _type_problem(body: Mapping[str, Any]) -> str | None:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        return "model: Field required (a non-empty string, a route alias)"
    max_tokens = body.get("max_tokens")
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        return "max_tokens: Field required (an integer >= 1)"
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "messages: at least one message is required"
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
            return f"messages.{i}.role: Input should be 'user' or 'assistant'"
        if "content" not in message:
            return f"messages.{i}.content: Field required"
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        return "stream: Input should be a valid boolean"
    metadata = body.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        return "metadata: Input should be an object"
    return None


def _timeout_message(upstream: Upstream) -> str:
    return f"upstream {upstream.label} did not answer within {upstream.target.timeout_s:g}s"


def _unreachable_message(upstream: Upstream, exc: BaseException) -> str:
    return f"cannot reach upstream {upstream.label} ({type(exc).__name__})"


def _stall_message(upstream: Upstream) -> str:
    return f"upstream {upstream.label} sent no next chunk within {upstream.target.timeout_s:g}s"


def _cut_message(upstream: Upstream, exc: BaseException) -> str:
    return f"the stream from upstream {upstream.label} was cut off ({type(exc).__name__})"


__all__ = [
    "AnthropicEndpoints",
    "anthropic_error",
    "anthropic_upstream_error",
    "anthropic_url_and_headers",
]
