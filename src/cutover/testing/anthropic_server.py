"""A local server speaking the Anthropic Messages wire format.

Serves ``POST /v1/messages`` (a ``message`` object, or with ``stream: true``
the event stream ``message_start``, ``content_block_start``, ``ping``,
``content_block_delta``, ``content_block_stop``, ``message_delta``,
``message_stop``) and ``GET /v1/models``. Like the real API it requires the
``anthropic-version`` header and ``max_tokens``. The official ``anthropic``
SDK can use it as its ``base_url``.

Run it for benchmarks and demos::

    python -m cutover.testing.anthropic_server --port 18081 --latency-ms 100
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any, ClassVar

import orjson
from aiohttp import web

from cutover.testing._cli import run_cli
from cutover.testing._faults import Fault
from cutover.testing._respond import (
    FinalReply,
    ToolSpec,
    WireRequest,
    argument_pieces,
    text_pieces,
)
from cutover.testing._server import WireServer, sse

DEFAULT_MODELS = ("claude-sonnet-4-5", "claude-haiku-4-5", "claude-opus-4-1")

_ERRORS: Mapping[int, tuple[str, str]] = MappingProxyType(
    {
        400: ("invalid_request_error", "The request is invalid."),
        401: ("authentication_error", "invalid x-api-key"),
        403: ("permission_error", "Your API key does not have permission to use this resource."),
        404: ("not_found_error", "The requested resource could not be found."),
        413: ("request_too_large", "Request exceeds the maximum allowed number of bytes."),
        429: ("rate_limit_error", "Number of request tokens has exceeded your rate limit."),
        500: ("api_error", "An unexpected error has occurred internal to Anthropic's systems."),
        529: ("overloaded_error", "Overloaded"),
    }
)

STOP_REASONS: Mapping[str, str] = MappingProxyType(
    {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use"}
)
"""OpenAI finish reasons (the Reply vocabulary) -> Anthropic stop reasons."""


class AnthropicServer(WireServer):
    """``POST /v1/messages`` and ``GET /v1/models`` on 127.0.0.1.

    ``base_url`` is ``http://127.0.0.1:PORT``. With ``api_key`` set, a request
    without a matching ``x-api-key`` (or ``Authorization: Bearer``) header
    gets a 401.
    """

    dialect: ClassVar[str] = "anthropic"

    def __init__(self, *, models: Sequence[str] = DEFAULT_MODELS, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.models = tuple(models)

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/messages", self.handle_generate)
        app.router.add_get("/v1/models", self._handle_models)

    async def _handle_models(self, request: web.Request) -> web.Response:
        if not self.authorized(request):
            return self.error_response(401)
        data = [
            {
                "type": "model",
                "id": name,
                "display_name": name,
                "created_at": "2025-01-01T00:00:00Z",
            }
            for name in self.models
        ]
        page = {
            "data": data,
            "has_more": False,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None,
        }
        return web.Response(body=orjson.dumps(page), content_type="application/json")

    def authorized(self, request: web.Request) -> bool:
        """``x-api-key``, or ``Authorization: Bearer`` (what newer SDKs send)."""
        if self.api_key is None:
            return True
        return request.headers.get("x-api-key") == self.api_key or (
            request.headers.get("Authorization") == f"Bearer {self.api_key}"
        )

    def validate(self, request: web.Request, body: dict[str, Any]) -> str | None:
        if not request.headers.get("anthropic-version"):
            return "anthropic-version: header is required"
        if not isinstance(body.get("model"), str) or not body["model"]:
            return "model: Field required"
        max_tokens = body.get("max_tokens")
        if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
            return "max_tokens: Field required (an integer >= 1)"
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return "messages: at least one message is required"
        for i, message in enumerate(messages):
            if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
                return f"messages.{i}.role: Input should be 'user' or 'assistant'"
        return None

    def error_response(
        self,
        status: int,
        message: str | None = None,
        error_type: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> web.Response:
        default_type, default_message = _ERRORS.get(status, ("api_error", "Internal server error"))
        request_id = f"req_{self.next_id()}"
        payload = {
            "type": "error",
            "error": {"type": error_type or default_type, "message": message or default_message},
            "request_id": request_id,
        }
        return web.Response(
            status=status,
            body=orjson.dumps(payload),
            content_type="application/json",
            headers={"request-id": request_id, **(headers or {})},
        )

    def parse(self, body: dict[str, Any]) -> WireRequest:
        return parse_request(body)

    def encode_message(self, wire: WireRequest, reply: FinalReply) -> dict[str, Any]:
        rid = self.next_id()
        content: list[dict[str, Any]] = []
        if reply.text or not reply.tool_calls:
            content.append({"type": "text", "text": reply.text})
        for i, (name, args) in enumerate(reply.tool_calls):
            content.append(
                {"type": "tool_use", "id": f"toolu_{rid}_{i}", "name": name, "input": _object(args)}
            )
        return {
            "id": f"msg_{rid}",
            "type": "message",
            "role": "assistant",
            "model": wire.model,
            "content": content,
            "stop_reason": _stop_reason(reply),
            "stop_sequence": reply.stop_sequence,
            "usage": {"input_tokens": reply.input_tokens, "output_tokens": reply.output_tokens},
        }

    def encode_frames(self, wire: WireRequest, reply: FinalReply) -> tuple[list[bytes], int]:
        rid = self.next_id()
        start = {
            "type": "message_start",
            "message": {
                "id": f"msg_{rid}",
                "type": "message",
                "role": "assistant",
                "model": wire.model,
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": {"input_tokens": reply.input_tokens, "output_tokens": 1},
            },
        }
        frames = [_event("message_start", start)]
        index = 0
        lead = 0
        if reply.text or not reply.tool_calls:
            frames.append(
                _event(
                    "content_block_start",
                    {
                        "type": "content_block_start",
                        "index": 0,
                        "content_block": {"type": "text", "text": ""},
                    },
                )
            )
            frames.append(_PING)
            lead = len(frames)
            for piece in text_pieces(reply.text, self.chunk_chars):
                delta = {"type": "text_delta", "text": piece}
                frames.append(_delta(0, delta))
            frames.append(_event("content_block_stop", {"type": "content_block_stop", "index": 0}))
            index = 1
        else:  # a tool call first: its block start is the first token
            frames.append(_PING)
            lead = len(frames)
        for i, (name, args) in enumerate(reply.tool_calls):
            block = {"type": "tool_use", "id": f"toolu_{rid}_{i}", "name": name, "input": {}}
            frames.append(
                _event(
                    "content_block_start",
                    {"type": "content_block_start", "index": index, "content_block": block},
                )
            )
            for piece in argument_pieces(orjson.dumps(_object(args)).decode()):
                frames.append(_delta(index, {"type": "input_json_delta", "partial_json": piece}))
            frames.append(
                _event("content_block_stop", {"type": "content_block_stop", "index": index})
            )
            index += 1
        frames.append(
            _event(
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {
                        "stop_reason": _stop_reason(reply),
                        "stop_sequence": reply.stop_sequence,
                    },
                    "usage": {"output_tokens": reply.output_tokens},
                },
            )
        )
        frames.append(_event("message_stop", {"type": "message_stop"}))
        return frames, lead

    def error_frame(self, fault: Fault) -> bytes:
        error = {
            "type": fault.error_type or "overloaded_error",
            "message": fault.message or "Overloaded",
        }
        return _event("error", {"type": "error", "error": error})

    def bad_frame(self) -> bytes:
        return b'event: content_block_delta\ndata: {"type": "content_block_delta", "index": 0, "delta": {"te\n\n'


def parse_request(body: Mapping[str, Any]) -> WireRequest:
    """Reduce a Messages API body to a :class:`WireRequest`."""
    messages = [m for m in body.get("messages") or () if isinstance(m, Mapping)]
    system = _text(body.get("system"))
    chars = len(system)
    last_user = ""
    for message in messages:
        text = _text(message.get("content"))
        chars += len(text)
        if message.get("role") == "user" and text:
            last_user = text
    tool_result = None
    last = messages[-1] if messages else {}
    if last.get("role") == "user" and isinstance(last.get("content"), list):
        results = [
            _text(block.get("content"))
            for block in last["content"]
            if isinstance(block, Mapping) and block.get("type") == "tool_result"
        ]
        if results:
            tool_result = "\n".join(results)
            chars += len(tool_result)
    tools = tuple(
        ToolSpec(
            name=str(tool.get("name", "")),
            description=str(tool.get("description") or ""),
            parameters=tool.get("input_schema") or {},
        )
        for tool in body.get("tools") or ()
        if isinstance(tool, Mapping)
    )
    choice, forced = _tool_choice(body.get("tool_choice"))
    max_tokens = body.get("max_tokens")
    stops = body.get("stop_sequences") or ()
    return WireRequest(
        dialect="anthropic",
        model=str(body.get("model", "")),
        body=body,
        system=system,
        last_user_text=last_user,
        tool_result=tool_result,
        tools=tools,
        tool_choice=choice,
        forced_tool=forced,
        max_tokens=max_tokens if isinstance(max_tokens, int) else None,
        stop=tuple(s for s in stops if isinstance(s, str)),
        prompt_chars=chars,
        stream=body.get("stream") is True,
    )


def _text(content: Any) -> str:
    """The text of a string or of the text blocks in a list of blocks."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            b["text"]
            for b in content
            if isinstance(b, Mapping) and b.get("type") == "text" and isinstance(b.get("text"), str)
        )
    return ""


def _tool_choice(choice: Any) -> tuple[str, str | None]:
    if not isinstance(choice, Mapping):
        return "auto", None
    kind = choice.get("type")
    if kind == "tool" and isinstance(choice.get("name"), str):
        return "tool", choice["name"]
    if kind == "any":
        return "required", None
    if kind == "none":
        return "none", None
    return "auto", None


def _object(arguments: str) -> dict[str, Any]:
    try:
        value = orjson.loads(arguments) if arguments else {}
    except orjson.JSONDecodeError:
        return {"value": arguments}
    return value if isinstance(value, dict) else {"value": value}


def _stop_reason(reply: FinalReply) -> str:
    if reply.stop_sequence is not None and reply.finish_reason == "stop":
        return "stop_sequence"
    return STOP_REASONS.get(reply.finish_reason, reply.finish_reason)


def _event(name: str, payload: Mapping[str, Any]) -> bytes:
    return sse(orjson.dumps(payload), name)


_PING = _event("ping", {"type": "ping"})


def _delta(index: int, delta: Mapping[str, Any]) -> bytes:
    return _event(
        "content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}
    )


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli(
        AnthropicServer, argv, prog="python -m cutover.testing.anthropic_server", default_port=18081
    )


__all__ = ["DEFAULT_MODELS", "STOP_REASONS", "AnthropicServer", "main", "parse_request"]


if __name__ == "__main__":
    raise SystemExit(main())
