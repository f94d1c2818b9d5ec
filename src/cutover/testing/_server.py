"""The machinery both local wire servers share.

A :class:`WireServer` runs an ``aiohttp.web`` application on 127.0.0.1 (a free
port by default), counts and records requests, applies latency, consumes
scripted faults, asks a responder for the answer and hands it to the dialect
(a subclass) to encode as JSON or as a server-sent-event stream.
"""

from __future__ import annotations

import asyncio
import inspect
from abc import ABC, abstractmethod
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple, Self

import orjson
from aiohttp import web

from cutover.testing._faults import Fault, FaultQueue
from cutover.testing._respond import (
    FinalReply,
    Reply,
    Responder,
    WireRequest,
    default_responder,
    finalize,
)

MAX_BODY_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class ReceivedRequest:
    """One request the server received (header names in lower case)."""

    path: str
    model: str | None
    headers: Mapping[str, str]
    body: Any


class Admitted(NamedTuple):
    """A request that passed :meth:`WireServer.admit`: its body, model, fault and latency."""

    body: dict[str, Any]
    model: str | None
    fault: Fault | None
    latency: float


class WireServer(ABC):
    """Base of :class:`OpenAIServer` and :class:`AnthropicServer`.

    Use as an async context manager (or ``await start()`` / ``await close()``)::

        async with OpenAIServer(latency_s=0.05) as server:
            server.inject(Fault.status(429, retry_after=1))
            ... call server.base_url ...
            assert server.requests_total == 1
    """

    dialect: ClassVar[str] = ""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        latency_s: float = 0.0,
        model_latency_s: Mapping[str, float] | None = None,
        ttft_fraction: float = 0.5,
        responder: Responder | None = None,
        faults: Iterable[Fault] = (),
        api_key: str | None = None,
        record_limit: int = 1000,
        chunk_chars: int = 16,
        stream_bursts: int = 2,
        reuse_port: bool = False,
    ) -> None:
        if not 0.0 <= ttft_fraction <= 1.0:
            raise ValueError("ttft_fraction must be between 0 and 1")
        self.host = host
        self.latency_s = latency_s
        self.model_latency_s = dict(model_latency_s or {})
        self.ttft_fraction = ttft_fraction
        self.responder: Responder = responder or default_responder
        self.api_key = api_key
        self.chunk_chars = max(1, chunk_chars)
        self.stream_bursts = max(1, stream_bursts)
        self.faults = FaultQueue()
        self.faults.add(*faults)
        self.requests_total = 0
        self.requests_by_model: Counter[str] = Counter()
        self._received: deque[ReceivedRequest] = deque(maxlen=max(0, record_limit))
        self._record = record_limit > 0
        self._requested_port = port
        self._reuse_port = reuse_port
        self._port: int | None = None
        self._runner: web.AppRunner | None = None
        self._stopping: asyncio.Event | None = None
        self._ids = 0

    # -- lifecycle -------------------------------------------------------------

    async def start(self) -> Self:
        if self._runner is not None:
            return self
        app = web.Application(client_max_size=MAX_BODY_BYTES)
        self.add_routes(app)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await runner.setup()
        site = web.TCPSite(
            runner, self.host, self._requested_port, backlog=1024, reuse_port=self._reuse_port
        )
        await site.start()
        self._runner = runner
        self._stopping = asyncio.Event()
        address = runner.addresses[0]
        self._port = int(address[1])
        return self

    async def close(self) -> None:
        runner, self._runner = self._runner, None
        if self._stopping is not None:
            self._stopping.set()
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the server is not started")
        return self._port

    @property
    def root_url(self) -> str:
        """``http://127.0.0.1:PORT`` (no path)."""
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """The URL a client library takes as its base URL."""
        return self.root_url

    # -- state -----------------------------------------------------------------

    @property
    def received(self) -> list[ReceivedRequest]:
        """The recorded requests, oldest first (at most ``record_limit``)."""
        return list(self._received)

    @property
    def last_request(self) -> ReceivedRequest:
        if not self._received:
            raise LookupError("no request recorded")
        return self._received[-1]

    def inject(self, *faults: Fault, model: str | None = None, times: int = 1) -> None:
        """Queue faults for the next requests (to ``model``, or to any model)."""
        self.faults.add(*faults, model=model, times=times)

    def reset(self) -> None:
        """Forget counts, recorded requests and queued faults."""
        self.requests_total = 0
        self.requests_by_model.clear()
        self._received.clear()
        self.faults.clear()

    def latency_for(self, model: str | None) -> float:
        if model is not None and model in self.model_latency_s:
            return self.model_latency_s[model]
        return self.latency_s

    def next_id(self) -> str:
        self._ids += 1
        return f"{self._ids:012x}"

    # -- what a dialect provides -------------------------------------------------

    @abstractmethod
    def add_routes(self, app: web.Application) -> None:
        raise NotImplementedError

    @abstractmethod
    def authorized(self, request: web.Request) -> bool:
        raise NotImplementedError

    @abstractmethod
    def validate(self, request: web.Request, body: dict[str, Any]) -> str | None:
        """A 400 message when the request breaks the dialect's rules."""
        raise NotImplementedError

    @abstractmethod
    def parse(self, body: dict[str, Any]) -> WireRequest:
        raise NotImplementedError

    @abstractmethod
    def error_response(
        self,
        status: int,
        message: str | None = None,
        error_type: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> web.Response:
        raise NotImplementedError

    @abstractmethod
    def encode_message(self, wire: WireRequest, reply: FinalReply) -> dict[str, Any]:
        raise NotImplementedError

    @abstractmethod
    def encode_frames(self, wire: WireRequest, reply: FinalReply) -> tuple[list[bytes], int]:
        """The stream's frames, and how many lead frames (no token yet) come first.

        Lead frames are sent at once; the time-to-first-token pause follows.
        """
        raise NotImplementedError

    @abstractmethod
    def error_frame(self, fault: Fault) -> bytes:
        raise NotImplementedError

    @abstractmethod
    def bad_frame(self) -> bytes:
        raise NotImplementedError

    # -- the shared request flow -------------------------------------------------

    async def admit(
        self, request: web.Request, validate: Callable[[dict[str, Any]], str | None]
    ) -> Admitted | web.StreamResponse:
        """Read, count and record a request, then authorise and validate it and draw its fault.

        Returns the answer when the request ends here (401, 400, or a fault that
        answers before the body), else what the handler goes on with.
        """
        raw = await request.read()
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            body = None
        model = body.get("model") if isinstance(body, dict) else None
        model = model if isinstance(model, str) else None
        self.requests_total += 1
        self.requests_by_model[model or ""] += 1
        if self._record:
            headers = {k.lower(): v for k, v in request.headers.items()}
            self._received.append(ReceivedRequest(request.path, model, headers, body))
        if not self.authorized(request):
            return self.error_response(401)
        if not isinstance(body, dict):
            return self.error_response(400, "The request body is not a JSON object.")
        problem = validate(body)
        if problem is not None:
            return self.error_response(400, problem)
        fault = self.faults.next_for(model)
        latency = self.latency_for(model)
        if fault is not None:
            early = await self._early_fault(request, fault)
            if early is not None:
                return early
            if fault.kind == "delay":
                latency += fault.seconds
        return Admitted(body, model, fault, latency)

    async def handle_generate(self, request: web.Request) -> web.StreamResponse:
        admitted = await self.admit(request, lambda body: self.validate(request, body))
        if isinstance(admitted, web.StreamResponse):
            return admitted
        body, _, fault, latency = admitted
        wire = self.parse(body)
        final = finalize(await self._respond(wire), wire)
        if wire.stream:
            frames, lead = self.encode_frames(wire, final)
            return await self._send_stream(request, frames, lead, latency, fault)
        return await self._send_json(request, self.encode_message(wire, final), latency, fault)

    async def _respond(self, wire: WireRequest) -> Reply:
        answer = self.responder(wire)
        if inspect.isawaitable(answer):
            answer = await answer
        if isinstance(answer, str):
            return Reply(text=answer)
        if not isinstance(answer, Reply):
            raise TypeError(
                f"a responder must return a Reply or a str, not {type(answer).__name__}"
            )
        return answer

    async def _early_fault(self, request: web.Request, fault: Fault) -> web.StreamResponse | None:
        if fault.kind == "status":
            if fault.seconds:
                await asyncio.sleep(fault.seconds)
            headers: dict[str, str] = {}
            if fault.retry_after is not None:
                value = fault.retry_after
                headers["retry-after"] = value if isinstance(value, str) else f"{value:g}"
            if fault.retry_after_ms is not None:
                headers["retry-after-ms"] = f"{fault.retry_after_ms:g}"
            return self.error_response(fault.code, fault.message, fault.error_type, headers)
        if fault.kind == "garbage":
            return web.Response(status=200, body=fault.body, content_type=fault.content_type)
        if fault.kind == "hang":
            if self._stopping is not None:
                await self._stopping.wait()
            return self._drop(request)
        if fault.kind == "disconnect":
            return self._drop(request)
        return None

    @staticmethod
    def _drop(request: web.Request) -> web.StreamResponse:
        if request.transport is not None:
            request.transport.abort()
        return web.Response(status=503)

    async def _send_json(
        self, request: web.Request, payload: dict[str, Any], latency: float, fault: Fault | None
    ) -> web.StreamResponse:
        if latency > 0:
            await asyncio.sleep(latency)
        data = orjson.dumps(payload)
        kind = fault.kind if fault is not None else None
        if kind == "bad_json_stream_chunk":
            return web.Response(body=data[: len(data) // 2], content_type="application/json")
        if kind == "half_stream":
            resp = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
            resp.content_length = len(data)
            await resp.prepare(request)
            await resp.write(data[: len(data) // 2])
            if request.transport is not None:
                request.transport.close()
            return resp
        return web.Response(body=data, content_type="application/json")

    async def _send_stream(
        self,
        request: web.Request,
        frames: list[bytes],
        lead: int,
        latency: float,
        fault: Fault | None,
    ) -> web.StreamResponse:
        cut = False
        if fault is not None and fault.kind in (
            "half_stream",
            "bad_json_stream_chunk",
            "stream_error",
        ):
            at = max(0, min(fault.after_chunks, len(frames)))
            if fault.kind == "half_stream":
                frames, cut = frames[:at], not fault.clean_end
            elif fault.kind == "bad_json_stream_chunk":
                frames = [*frames[:at], self.bad_frame(), *frames[at:]]
            else:
                frames = [*frames[:at], self.error_frame(fault)]
        resp = web.StreamResponse(
            status=200,
            headers={
                "Content-Type": "text/event-stream; charset=utf-8",
                "Cache-Control": "no-cache",
            },
        )
        await resp.prepare(request)
        first_wait = latency * self.ttft_fraction
        writes = _schedule(frames, lead, first_wait, latency - first_wait, self.stream_bursts)
        try:
            for i, (pause, data) in enumerate(writes):
                if pause > 0:
                    await asyncio.sleep(pause)
                if i == len(writes) - 1 and not cut:
                    await resp.write_eof(data)  # the last frames and the end in one send
                else:
                    await resp.write(data)
            if cut:
                if request.transport is not None:
                    request.transport.close()
                return resp
            if not writes:
                await resp.write_eof()
        except ConnectionError:
            return resp  # the client went away mid-stream
        return resp


def _schedule(
    frames: Sequence[bytes], lead: int, first_wait: float, rest_s: float, bursts: int
) -> list[tuple[float, bytes]]:
    """``(pause before, bytes)`` writes: the lead frames at once, the time to
    first token, the first token frame, then the rest in up to ``bursts`` groups
    spread over the remaining latency."""
    if first_wait <= 0 and rest_s <= 0:
        return [(0.0, b"".join(frames))] if frames else []
    out: list[tuple[float, bytes]] = []
    if lead > 0 and frames[:lead]:
        out.append((0.0, b"".join(frames[:lead])))
    tail = frames[lead:]
    if not tail:
        return out
    out.append((first_wait, tail[0]))
    tail = tail[1:]
    if not tail:
        return out
    groups = min(max(1, bursts), len(tail))
    size = -(-len(tail) // groups)
    chunks = [tail[i : i + size] for i in range(0, len(tail), size)]
    out.extend((max(0.0, rest_s) / len(chunks), b"".join(chunk)) for chunk in chunks)
    return out


def sse(data: bytes, event: str | None = None) -> bytes:
    """One server-sent event frame."""
    if event is None:
        return b"data: " + data + b"\n\n"
    return b"event: " + event.encode() + b"\ndata: " + data + b"\n\n"


__all__ = ["ReceivedRequest", "WireServer", "sse"]
