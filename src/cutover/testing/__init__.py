"""Local servers speaking the real OpenAI and Anthropic wire formats.

For tests, benchmarks and demos: no network, no keys, scripted faults::

    from cutover.testing import Fault, OpenAIServer

    async with OpenAIServer(latency_s=0.02) as server:
        server.inject(Fault.status(429, retry_after=1), Fault.half_stream())
        target = parse_target(f"openai:gpt-4o-mini@{server.base_url}")
        ...
        assert server.requests_by_model["gpt-4o-mini"] == 3

Each server also runs from the command line until killed::

    python -m cutover.testing.openai_server --port 18080 --latency-ms 100
    python -m cutover.testing.anthropic_server --port 18081 --latency-ms 100
    python -m cutover.testing.embeddings_server --port 18082

Synchronous code runs a server on a loop in a background thread with
:func:`serve_in_thread`. :mod:`cutover.testing.postgres` starts a throwaway
PostgreSQL with pgvector (the binaries bundled by ``pgserver``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cutover.testing._app import serve_app
from cutover.testing._faults import Fault, FaultKind, FaultQueue
from cutover.testing._respond import (
    Reply,
    ReplyToolCall,
    Responder,
    ToolSpec,
    WireRequest,
    default_responder,
    example_value,
)
from cutover.testing._server import ReceivedRequest, WireServer
from cutover.testing._thread import serve_in_thread

if TYPE_CHECKING:
    from cutover.testing.anthropic_server import AnthropicServer
    from cutover.testing.embeddings_server import EmbeddingsServer
    from cutover.testing.openai_server import OpenAIServer


def __getattr__(name: str) -> Any:
    # Imported on first use, so that ``python -m cutover.testing.openai_server``
    # does not find its own module already imported by this package.
    if name == "OpenAIServer":
        from cutover.testing.openai_server import OpenAIServer

        return OpenAIServer
    if name == "AnthropicServer":
        from cutover.testing.anthropic_server import AnthropicServer

        return AnthropicServer
    if name == "EmbeddingsServer":
        from cutover.testing.embeddings_server import EmbeddingsServer

        return EmbeddingsServer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "AnthropicServer",
    "EmbeddingsServer",
    "Fault",
    "FaultKind",
    "FaultQueue",
    "OpenAIServer",
    "ReceivedRequest",
    "Reply",
    "ReplyToolCall",
    "Responder",
    "ToolSpec",
    "WireRequest",
    "WireServer",
    "default_responder",
    "example_value",
    "serve_app",
    "serve_in_thread",
]
