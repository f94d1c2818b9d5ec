"""What the network providers share: the session, the SSE parser, error mapping.

Timeouts follow one rule. A non-streaming call must finish within
``target.timeout_s``. A streaming call must get its first byte, and then every
next chunk, within ``target.timeout_s`` (an idle timeout), and the whole stream
is capped at ``STREAM_TOTAL_FACTOR * target.timeout_s`` so that a server
trickling keep-alive pings cannot hold a call forever.

Every error raised here is a :class:`~cutover.errors.ProviderError` whose
message names the target label and the URL and quotes a short excerpt of what
the upstream said.
"""

from __future__ import annotations

import asyncio
import email.utils
import math
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Protocol, Self

import aiohttp
import orjson

from cutover.errors import (
    MalformedResponseError,
    ProviderAuthError,
    ProviderConnectionError,
    ProviderError,
    ProviderRequestError,
    ProviderServerError,
    ProviderTimeoutError,
    RateLimitedError,
)
from cutover.records import Observation
from cutover.targets import Target

DEFAULT_CONNECTION_LIMIT = 256
STREAM_TOTAL_FACTOR = 10.0
KEEPALIVE_S = 30.0
EXCERPT_CHARS = 200


def session_timeout(target: Target) -> aiohttp.ClientTimeout:
    """The whole call (connect, send, read everything) within ``timeout_s``."""
    return aiohttp.ClientTimeout(total=target.timeout_s, sock_connect=target.timeout_s)


def stream_timeout(target: Target) -> aiohttp.ClientTimeout:
    """First byte and every next chunk within ``timeout_s``; the stream capped."""
    return aiohttp.ClientTimeout(
        total=target.timeout_s * STREAM_TOTAL_FACTOR,
        sock_connect=target.timeout_s,
        sock_read=target.timeout_s,
    )


def create_session(target: Target) -> aiohttp.ClientSession:
    """A keep-alive session sized for ``target.concurrency`` (256 when unset).

    Call from a coroutine: aiohttp binds the session to the running loop.
    """
    connector = aiohttp.TCPConnector(
        limit=target.concurrency or DEFAULT_CONNECTION_LIMIT,
        limit_per_host=0,
        keepalive_timeout=KEEPALIVE_S,
        ttl_dns_cache=300,
    )
    return aiohttp.ClientSession(
        connector=connector,
        timeout=session_timeout(target),
        raise_for_status=False,
        auto_decompress=True,
    )


# -- Server-sent events -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SSEEvent:
    """One dispatched server-sent event: its ``event:`` name and joined ``data:``."""

    event: str
    data: str


class SSEDecoder:
    """Incremental SSE decoder: feed bytes, get events.

    Lines may end in ``\\r\\n``, ``\\n`` or ``\\r``; ``:`` lines are comments;
    several ``data:`` lines join with ``\\n``; ``id:`` and ``retry:`` are
    ignored. A leading byte-order mark is dropped.
    """

    __slots__ = ("_buffer", "_data", "_event", "_pending_cr", "_started")

    def __init__(self) -> None:
        self._buffer = b""
        self._data: list[str] = []
        self._event = ""
        self._pending_cr = False
        self._started = False

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        if not chunk:
            return []
        if self._pending_cr and chunk.startswith(b"\n"):
            chunk = chunk[1:]
        self._pending_cr = False
        buffer = self._buffer + chunk
        if not self._started and buffer:
            if len(buffer) < 3 and b"\xef\xbb\xbf".startswith(buffer):
                self._buffer = buffer
                return []
            self._started = True
            if buffer.startswith(b"\xef\xbb\xbf"):
                buffer = buffer[3:]
        events: list[SSEEvent] = []
        if b"\r" not in buffer:
            # Fast path for the usual "\n"-only streams: one split, no per-line searches.
            *lines, self._buffer = buffer.split(b"\n")
            for raw in lines:
                event = self._line(raw)
                if event is not None:
                    events.append(event)
            return events
        start = 0
        length = len(buffer)
        while start < length:
            nl = buffer.find(b"\n", start)
            cr = buffer.find(b"\r", start, nl if nl >= 0 else length)
            if cr >= 0:
                end, nxt = cr, cr + 1
                if nxt < length and buffer[nxt : nxt + 1] == b"\n":
                    nxt += 1
                elif nxt == length:
                    self._pending_cr = True
            elif nl >= 0:
                end, nxt = nl, nl + 1
            else:
                break
            event = self._line(buffer[start:end])
            if event is not None:
                events.append(event)
            start = nxt
        self._buffer = buffer[start:]
        return events

    def flush(self) -> SSEEvent | None:
        """At end of stream: the last event if it lacked its blank line."""
        if self._buffer:
            tail, self._buffer = self._buffer, b""
            event = self._line(tail)
            if event is not None:
                return event
        return self._dispatch()

    def _line(self, raw: bytes) -> SSEEvent | None:
        if not raw:
            return self._dispatch()
        if raw.startswith(b"data: "):  # the common line, without the generic parse
            self._data.append(raw[6:].decode("utf-8", errors="replace"))
            return None
        line = raw.decode("utf-8", errors="replace")
        if line.startswith(":"):
            return None
        name, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        return None

    def _dispatch(self) -> SSEEvent | None:
        if not self._data:
            self._event = ""
            return None
        event = SSEEvent(event=self._event or "message", data="\n".join(self._data))
        self._data = []
        self._event = ""
        return event


async def iter_sse(
    response: aiohttp.ClientResponse, head: bytearray | None = None
) -> AsyncIterator[SSEEvent]:
    """The events of a ``text/event-stream`` response body, as they arrive.

    The first bytes of the body are copied into ``head`` (for error messages).
    Transport errors (a cut connection, a read timeout) propagate as aiohttp
    or asyncio exceptions; map them with :func:`transport_error`.
    """
    decoder = SSEDecoder()
    async for chunk in response.content.iter_any():
        if head is not None and len(head) < EXCERPT_CHARS:
            head += chunk[:EXCERPT_CHARS]
        for event in decoder.feed(chunk):
            yield event
    last = decoder.flush()
    if last is not None:
        yield last


# -- Error mapping ------------------------------------------------------------


def excerpt(body: bytes | str, limit: int = EXCERPT_CHARS) -> str:
    """A short one-line quote of an upstream body; JSON errors reduced to their message."""
    text = body.decode("utf-8", errors="replace") if isinstance(body, bytes) else body
    try:
        data = orjson.loads(text) if len(text) < 65536 else None
    except orjson.JSONDecodeError:
        data = None
    text = text[: limit * 4]
    if isinstance(data, dict):
        kind, message = error_fields(data)
        if message:
            text = f"{kind}: {message}" if kind else message
    text = " ".join(text.split())
    if not text:
        return "(empty body)"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def error_fields(data: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """``(type, message)`` of an OpenAI or Anthropic error object, if it is one."""
    err = data.get("error")
    if isinstance(err, str):
        return None, err
    if not isinstance(err, Mapping):
        return None, None
    kind = err.get("type") or err.get("code")
    message = err.get("message")
    return (
        str(kind) if kind is not None else None,
        str(message) if message is not None else None,
    )


def parse_retry_after(headers: Mapping[str, str], *, now: float | None = None) -> float | None:
    """Seconds to wait from ``retry-after-ms``, else ``retry-after`` (seconds or HTTP-date)."""
    raw_ms = headers.get("retry-after-ms")
    if raw_ms:
        try:
            ms = float(raw_ms)
        except ValueError:
            ms = math.nan
        if math.isfinite(ms) and ms >= 0:
            return ms / 1000.0
    raw = headers.get("retry-after")
    if not raw:
        return None
    raw = raw.strip()
    try:
        seconds = float(raw)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(raw)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:
            return None
        current = time.time() if now is None else now
        return max(0.0, when.timestamp() - current)
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def error_for_status(
    status: int,
    body: bytes | str,
    headers: Mapping[str, str],
    *,
    label: str,
    url: str,
) -> ProviderError:
    """The ProviderError for a non-2xx answer."""
    message = f"{label}: HTTP {status} from {url}: {excerpt(body)}"
    retry_after = parse_retry_after(headers)
    cls: type[ProviderError]
    if status in (401, 403):
        cls = ProviderAuthError
    elif status == 429:
        cls = RateLimitedError
    elif status == 408:
        cls = ProviderTimeoutError
    elif status == 409 or status >= 500:
        cls = ProviderServerError
    else:
        cls = ProviderRequestError
    return cls(message, status_code=status, retry_after_s=retry_after)


_ERROR_TYPES: Mapping[str, type[ProviderError]] = MappingProxyType(
    {
        "authentication_error": ProviderAuthError,
        "permission_error": ProviderAuthError,
        "invalid_api_key": ProviderAuthError,
        "invalid_request_error": ProviderRequestError,
        "not_found_error": ProviderRequestError,
        "request_too_large": ProviderRequestError,
        "context_length_exceeded": ProviderRequestError,
        "rate_limit_error": RateLimitedError,
        "rate_limit_exceeded": RateLimitedError,
        "requests": RateLimitedError,
        "tokens": RateLimitedError,
        "timeout_error": ProviderTimeoutError,
        "timeout": ProviderTimeoutError,
        "overloaded_error": ProviderServerError,
        "api_error": ProviderServerError,
        "server_error": ProviderServerError,
    }
)


def error_for_payload(
    data: Mapping[str, Any],
    *,
    label: str,
    url: str,
    partial_output: str | None = None,
) -> ProviderError:
    """The ProviderError for an ``error`` object sent inside a 200 answer or a stream."""
    err = data.get("error")
    candidates: list[str] = []
    status: int | None = None
    if isinstance(err, Mapping):
        for key in ("type", "code"):
            value = err.get(key)
            if isinstance(value, str):
                candidates.append(value)
        code = err.get("status") or err.get("code")
        if isinstance(code, int) or (isinstance(code, str) and code.isdigit()):
            status = int(code)
    cls: type[ProviderError] = ProviderServerError
    matched = next((c for c in candidates if c in _ERROR_TYPES), None)
    if matched is not None:
        cls = _ERROR_TYPES[matched]
    elif status is not None:
        cls = type(error_for_status(status, b"", {}, label=label, url=url))
    text = excerpt(orjson.dumps(dict(data)))
    return cls(
        f"{label}: error from {url}: {text}",
        status_code=status,
        partial_output=partial_output,
    )


def malformed(
    label: str, url: str, what: str, body: bytes | str | None = None, *, partial: str | None = None
) -> MalformedResponseError:
    """A MalformedResponseError naming the target, the URL and what was wrong."""
    quote = f": {excerpt(body)}" if body is not None else ""
    return MalformedResponseError(f"{label}: {what} from {url}{quote}", partial_output=partial)


def transport_error(
    exc: BaseException,
    *,
    label: str,
    url: str,
    timeout_s: float,
    partial: str | None = None,
    in_stream: bool = False,
) -> ProviderError:
    """Map an aiohttp/asyncio exception to a ProviderError.

    ``in_stream`` is true once a 200 answer has started: a cut connection is
    then a malformed (half) response rather than a connection failure.
    """
    if isinstance(exc, ProviderError):
        return exc
    if isinstance(exc, TimeoutError):
        where = "waiting for the next chunk" if in_stream else "waiting for an answer"
        return ProviderTimeoutError(
            f"{label}: no answer from {url} within {timeout_s:g}s ({where})",
            partial_output=partial,
        )
    if isinstance(exc, aiohttp.ContentTypeError):
        return malformed(label, url, f"unexpected content type ({exc.message})", partial=partial)
    if isinstance(exc, aiohttp.ClientConnectorError):
        os_error = getattr(exc, "os_error", None)
        reason = getattr(os_error, "strerror", None) or _describe(exc)
        return ProviderConnectionError(
            f"{label}: cannot connect to {url}: {reason}", partial_output=partial
        )
    if in_stream and isinstance(
        exc,
        aiohttp.ClientPayloadError
        | aiohttp.ServerDisconnectedError
        | aiohttp.ClientOSError
        | ConnectionError,
    ):
        return MalformedResponseError(
            f"{label}: the response from {url} was cut off mid-way ({_describe(exc)})",
            partial_output=partial,
        )
    if isinstance(exc, aiohttp.ClientPayloadError):
        return MalformedResponseError(
            f"{label}: incomplete response body from {url} ({_describe(exc)})",
            partial_output=partial,
        )
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return ProviderConnectionError(
            f"{label}: {url} closed the connection without answering",
            partial_output=partial,
        )
    if isinstance(exc, aiohttp.ClientConnectionError | ConnectionError | OSError):
        return ProviderConnectionError(
            f"{label}: connection to {url} failed: {_describe(exc)}", partial_output=partial
        )
    if isinstance(exc, aiohttp.InvalidURL):
        return ProviderRequestError(f"{label}: invalid URL {url}")
    if isinstance(exc, aiohttp.ClientResponseError):
        return error_for_status(exc.status, exc.message, exc.headers or {}, label=label, url=url)
    return ProviderConnectionError(
        f"{label}: request to {url} failed: {_describe(exc)}", partial_output=partial
    )


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


_TRANSPORT_ERRORS = (aiohttp.ClientError, asyncio.TimeoutError, OSError)


@contextmanager
def transport_errors(*, label: str, url: str, timeout_s: float) -> Iterator[None]:
    """Re-raise transport exceptions inside the block as ProviderErrors."""
    try:
        yield
    except _TRANSPORT_ERRORS as exc:
        raise transport_error(exc, label=label, url=url, timeout_s=timeout_s) from exc


def loads_json(raw: bytes, *, label: str, url: str) -> Any:
    """Decode a 200 JSON body or raise MalformedResponseError quoting it."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise malformed(label, url, "a response that is not JSON", raw) from None


class StreamAssembler(Protocol):
    """Builds one answer from stream events; raises ProviderError on a bad event."""

    @property
    def complete(self) -> bool:
        """The stream's end marker (or final reason) has arrived."""
        ...

    def feed(self, event: SSEEvent) -> None: ...

    def partial_text(self) -> str:
        """The text received so far (for ``partial_output``)."""
        ...


class HttpProvider:
    """The transport half of a network provider: session, POST, stream, errors.

    The session is created lazily inside the running loop, or borrowed (and
    then never closed here) when one is passed in.
    """

    def __init__(
        self,
        target: Target,
        url: str,
        headers: Mapping[str, str],
        *,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self.target = target
        self.url = url
        self._headers = dict(headers)
        self._session = session
        self._owns_session = session is None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the session this provider created (a borrowed one is left open)."""
        session, self._session = self._session, None
        if session is not None and self._owns_session and not session.closed:
            await session.close()

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = create_session(self.target)
            self._owns_session = True
        return self._session

    def _encode(self, body: Mapping[str, Any]) -> bytes:
        try:
            return orjson.dumps(body)
        except TypeError as exc:
            raise ProviderRequestError(
                f"{self.target.label}: the request body cannot be encoded as JSON: {exc}"
            ) from None

    async def post_json(self, body: Mapping[str, Any]) -> tuple[Any, int]:
        """POST ``body``; the decoded JSON of a 2xx answer and its status."""
        label, url = self.target.label, self.url
        data = self._encode(body)
        with transport_errors(label=label, url=url, timeout_s=self.target.timeout_s):
            async with self._client().post(url, data=data, headers=self._headers) as resp:
                raw = await resp.read()
                if resp.status >= 300:
                    raise error_for_status(resp.status, raw, resp.headers, label=label, url=url)
                return loads_json(raw, label=label, url=url), resp.status

    async def post_stream(
        self, body: Mapping[str, Any], assembler: StreamAssembler
    ) -> tuple[Any, int]:
        """POST ``body`` and feed the SSE answer to ``assembler``.

        Returns ``(None, status)`` after a complete stream, or the decoded JSON
        body when the server answered with plain JSON instead of a stream.
        """
        label, url, timeout_s = self.target.label, self.url, self.target.timeout_s
        data = self._encode(body)
        in_stream = False
        status = 0
        head = bytearray()
        try:
            async with self._client().post(
                url, data=data, headers=self._headers, timeout=stream_timeout(self.target)
            ) as resp:
                status = resp.status
                if status >= 300:
                    raw = await resp.read()
                    raise error_for_status(status, raw, resp.headers, label=label, url=url)
                if resp.content_type == "application/json":
                    return loads_json(await resp.read(), label=label, url=url), status
                in_stream = True
                async for event in iter_sse(resp, head):
                    assembler.feed(event)
        except _TRANSPORT_ERRORS as exc:
            if not assembler.complete:
                raise transport_error(
                    exc,
                    label=label,
                    url=url,
                    timeout_s=timeout_s,
                    partial=assembler.partial_text() if in_stream else None,
                    in_stream=in_stream,
                ) from exc
        if not assembler.complete:
            partial = assembler.partial_text()
            raise malformed(
                label,
                url,
                "a stream that ended before its end marker",
                None if partial else bytes(head),
                partial=partial,
            )
        return None, status


class _ObservingAssembler(StreamAssembler, Protocol):
    def observation(
        self, label: str, *, status: int, latency_ms: float, ttft_ms: float | None
    ) -> Observation: ...


def observation_from_sse(
    raw: bytes,
    assembler: _ObservingAssembler,
    *,
    label: str,
    url: str,
    status: int,
    latency_ms: float,
    ttft_ms: float | None,
) -> Observation:
    """A whole recorded SSE answer (e.g. a stream the gateway relayed), read as an Observation.

    An error event or a stream that ended before its end marker gives an
    Observation with ``error`` set and what text arrived as ``output``.
    """
    decoder = SSEDecoder()
    try:
        for event in decoder.feed(raw):
            assembler.feed(event)
        last = decoder.flush()
        if last is not None:
            assembler.feed(last)
        if not assembler.complete:
            partial = assembler.partial_text()
            raise malformed(
                label, url, "a stream that ended before its end marker", None, partial=partial
            )
    except ProviderError as exc:
        return Observation(
            target=label,
            error=exc.message,
            error_class=exc.error_class,
            status_code=status,
            latency_ms=latency_ms,
            ttft_ms=ttft_ms,
            output=exc.partial_output or None,
        )
    return assembler.observation(label, status=status, latency_ms=latency_ms, ttft_ms=ttft_ms)


def ms_since(start: float) -> float:
    """Milliseconds elapsed since ``start`` (a ``time.perf_counter()`` value)."""
    return (time.perf_counter() - start) * 1000.0


__all__ = [
    "DEFAULT_CONNECTION_LIMIT",
    "STREAM_TOTAL_FACTOR",
    "HttpProvider",
    "SSEDecoder",
    "SSEEvent",
    "StreamAssembler",
    "create_session",
    "error_fields",
    "error_for_payload",
    "error_for_status",
    "excerpt",
    "iter_sse",
    "loads_json",
    "malformed",
    "ms_since",
    "parse_retry_after",
    "session_timeout",
    "stream_timeout",
    "transport_error",
    "transport_errors",
]
