"""Scripted faults for the local wire servers.

A fault is consumed by one request: the servers pop the next fault queued for
the request's model, else the next fault queued for any model, else answer
normally::

    server.inject(Fault.status(429, retry_after=1))
    server.inject(Fault.half_stream(after_chunks=3), model="gpt-new", times=2)
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Literal

FaultKind = Literal[
    "status",
    "garbage",
    "half_stream",
    "hang",
    "bad_json_stream_chunk",
    "stream_error",
    "delay",
    "disconnect",
]

GARBAGE_BODY = b"<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"


@dataclass(frozen=True, slots=True)
class Fault:
    """What goes wrong with one request. Build with the class methods."""

    kind: FaultKind
    code: int = 200
    retry_after: float | str | None = None
    retry_after_ms: float | None = None
    message: str | None = None
    error_type: str | None = None
    body: bytes | None = None
    after_chunks: int = 2
    seconds: float = 0.0
    clean_end: bool = False
    content_type: str = "text/html"

    @classmethod
    def status(
        cls,
        code: int,
        *,
        retry_after: float | str | None = None,
        retry_after_ms: float | None = None,
        message: str | None = None,
        error_type: str | None = None,
        seconds: float = 0.0,
    ) -> Fault:
        """Answer ``code`` with the dialect's error body (and Retry-After headers),
        ``seconds`` after the request came (a slow failure).

        ``retry_after`` is sent as the ``retry-after`` header: a number of
        seconds, or a string sent as is (an HTTP-date, say).
        """
        return cls(
            "status",
            code=code,
            retry_after=retry_after,
            retry_after_ms=retry_after_ms,
            message=message,
            error_type=error_type,
            seconds=seconds,
        )

    @classmethod
    def garbage(cls, body: bytes = GARBAGE_BODY, content_type: str = "text/html") -> Fault:
        """Answer 200 with a body that is not the wire format (HTML by default)."""
        return cls("garbage", body=body, content_type=content_type)

    @classmethod
    def half_stream(cls, after_chunks: int = 2, *, clean_end: bool = False) -> Fault:
        """Send ``after_chunks`` stream frames, then drop the connection.

        With ``clean_end`` the body is ended properly instead (a stream that
        simply stops before its end marker). For a non-streaming request:
        half of the JSON body, then drop.
        """
        return cls("half_stream", after_chunks=after_chunks, clean_end=clean_end)

    @classmethod
    def hang(cls) -> Fault:
        """Never answer (until the server closes)."""
        return cls("hang")

    @classmethod
    def bad_json_stream_chunk(cls, after_chunks: int = 1) -> Fault:
        """Send one undecodable ``data:`` frame after ``after_chunks`` good ones.

        For a non-streaming request: a 200 with truncated JSON.
        """
        return cls("bad_json_stream_chunk", after_chunks=after_chunks)

    @classmethod
    def stream_error(
        cls,
        error_type: str | None = None,
        *,
        message: str = "The server is overloaded.",
        after_chunks: int = 1,
    ) -> Fault:
        """An ``error`` object inside a 200 stream after ``after_chunks`` frames.

        ``error_type`` defaults to the dialect's overload type
        (``server_error`` / ``overloaded_error``).
        """
        return cls(
            "stream_error", error_type=error_type, message=message, after_chunks=after_chunks
        )

    @classmethod
    def delay(cls, seconds: float) -> Fault:
        """Answer normally, ``seconds`` later than usual."""
        return cls("delay", seconds=seconds)

    @classmethod
    def disconnect(cls) -> Fault:
        """Close the connection without sending anything."""
        return cls("disconnect")


class FaultQueue:
    """Faults waiting for requests: per model first, then for any model."""

    __slots__ = ("_any", "_by_model")

    def __init__(self) -> None:
        self._any: deque[Fault] = deque()
        self._by_model: dict[str, deque[Fault]] = {}

    def add(self, *faults: Fault, model: str | None = None, times: int = 1) -> None:
        """Queue ``faults`` (in order, the whole sequence ``times`` times)."""
        queue = self._any if model is None else self._by_model.setdefault(model, deque())
        for _ in range(times):
            queue.extend(faults)

    def next_for(self, model: str | None) -> Fault | None:
        """The fault for the next request to ``model``, or None."""
        if model is not None:
            queue = self._by_model.get(model)
            if queue:
                return queue.popleft()
        if self._any:
            return self._any.popleft()
        return None

    def clear(self) -> None:
        self._any.clear()
        self._by_model.clear()

    def __len__(self) -> int:
        return len(self._any) + sum(len(q) for q in self._by_model.values())


__all__ = ["GARBAGE_BODY", "Fault", "FaultKind", "FaultQueue"]
