"""A local server speaking the OpenAI chat-completions wire format.

Serves ``POST /v1/chat/completions`` (JSON, or ``chat.completion.chunk``
frames ending in ``data: [DONE]`` when ``stream`` is true, with a final usage
chunk when ``stream_options.include_usage`` is set) and ``GET /v1/models``.
The official ``openai`` SDK can use it as its ``base_url``.

Run it for benchmarks and demos::

    python -m cutover.testing.openai_server --port 18080 --latency-ms 100
"""

from __future__ import annotations

import time
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

DEFAULT_MODELS = ("gpt-4o-mini", "gpt-4o", "gpt-4.1-mini")
FINGERPRINT = "fp_cutover"
_DONE = b"data: [DONE]\n\n"

_ERRORS: Mapping[int, tuple[str, str | None, str]] = MappingProxyType(
    {
        400: ("invalid_request_error", None, "The request is invalid."),
        401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided."),
        403: ("permission_error", None, "You are not allowed to use this model."),
        404: ("invalid_request_error", "model_not_found", "The model does not exist."),
        408: ("timeout", None, "Request timed out."),
        409: ("server_error", None, "Conflict: retry the request."),
        422: ("invalid_request_error", None, "Unprocessable request."),
        429: ("requests", "rate_limit_exceeded", "Rate limit reached for requests."),
    }
)


class OpenAIServer(WireServer):
    """``POST /v1/chat/completions`` and ``GET /v1/models`` on 127.0.0.1.

    ``base_url`` is ``http://127.0.0.1:PORT/v1``. With ``api_key`` set, a
    request without ``Authorization: Bearer <api_key>`` gets a 401.
    """

    dialect: ClassVar[str] = "openai"

    def __init__(self, *, models: Sequence[str] = DEFAULT_MODELS, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.models = tuple(models)

    @property
    def base_url(self) -> str:
        return f"{self.root_url}/v1"

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/chat/completions", self.handle_generate)
        app.router.add_get("/v1/models", self._handle_models)

    async def _handle_models(self, request: web.Request) -> web.Response:
        if not self.authorized(request):
            return self.error_response(401)
        data = [
            {"id": name, "object": "model", "created": 1_700_000_000, "owned_by": "cutover"}
            for name in self.models
        ]
        return web.Response(
            body=orjson.dumps({"object": "list", "data": data}), content_type="application/json"
        )

    def authorized(self, request: web.Request) -> bool:
        if self.api_key is None:
            return True
        return request.headers.get("Authorization") == f"Bearer {self.api_key}"

    def validate(self, request: web.Request, body: dict[str, Any]) -> str | None:
        if not isinstance(body.get("model"), str) or not body["model"]:
            return "you must provide a model parameter"
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return "'messages' must be a non-empty array"
        if any(not isinstance(m, dict) or "role" not in m for m in messages):
            return "each message needs a 'role'"
        return None

    def error_response(
        self,
        status: int,
        message: str | None = None,
        error_type: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> web.Response:
        default_type, code, default_message = _ERRORS.get(
            status, ("server_error", None, "The server had an error processing your request.")
        )
        error = {
            "message": message or default_message,
            "type": error_type or default_type,
            "param": None,
            "code": code,
        }
        return web.Response(
            status=status,
            body=orjson.dumps({"error": error}),
            content_type="application/json",
            headers={"x-request-id": f"req_{self.next_id()}", **(headers or {})},
        )

    def parse(self, body: dict[str, Any]) -> WireRequest:
        return parse_request(body)

    def encode_message(self, wire: WireRequest, reply: FinalReply) -> dict[str, Any]:
        rid = self.next_id()
        message: dict[str, Any] = {
            "role": "assistant",
            "content": reply.text if reply.text or not reply.tool_calls else None,
            "refusal": None,
        }
        if reply.tool_calls:
            message["tool_calls"] = [
                {
                    "id": f"call_{rid}_{i}",
                    "type": "function",
                    "function": {"name": name, "arguments": args},
                }
                for i, (name, args) in enumerate(reply.tool_calls)
            ]
        return {
            "id": f"chatcmpl-{rid}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": wire.model,
            "system_fingerprint": FINGERPRINT,
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "logprobs": None,
                    "finish_reason": reply.finish_reason,
                }
            ],
            "usage": _usage(reply),
        }

    def encode_frames(self, wire: WireRequest, reply: FinalReply) -> tuple[list[bytes], int]:
        rid = self.next_id()
        include_usage = _include_usage(wire.body)
        head = {
            "id": f"chatcmpl-{rid}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": wire.model,
            "system_fingerprint": FINGERPRINT,
        }

        def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
            frame: dict[str, Any] = {
                **head,
                "choices": [
                    {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
                ],
            }
            if include_usage:
                frame["usage"] = None
            return sse(orjson.dumps(frame))

        frames = [chunk({"role": "assistant", "content": "", "refusal": None})]
        frames.extend(
            chunk({"content": piece}) for piece in text_pieces(reply.text, self.chunk_chars)
        )
        for i, (name, args) in enumerate(reply.tool_calls):
            frames.append(
                chunk(
                    {
                        "tool_calls": [
                            {
                                "index": i,
                                "id": f"call_{rid}_{i}",
                                "type": "function",
                                "function": {"name": name, "arguments": ""},
                            }
                        ]
                    }
                )
            )
            frames.extend(
                chunk({"tool_calls": [{"index": i, "function": {"arguments": piece}}]})
                for piece in argument_pieces(args)
            )
        frames.append(chunk({}, reply.finish_reason))
        if include_usage:
            frames.append(sse(orjson.dumps({**head, "choices": [], "usage": _usage(reply)})))
        frames.append(_DONE)
        return frames, 1

    def error_frame(self, fault: Fault) -> bytes:
        error = {
            "message": fault.message or "The server had an error while processing your request.",
            "type": fault.error_type or "server_error",
            "param": None,
            "code": None,
        }
        return sse(orjson.dumps({"error": error}))

    def bad_frame(self) -> bytes:
        return b'data: {"id": "chatcmpl-broken", "choices": [{"delta": {"content": "x\n\n'


def parse_request(body: Mapping[str, Any]) -> WireRequest:
    """Reduce a chat-completions body to a :class:`WireRequest`."""
    messages = [m for m in body.get("messages") or () if isinstance(m, Mapping)]
    system: list[str] = []
    last_user = ""
    chars = 0
    for message in messages:
        text = _text(message.get("content"))
        chars += len(text)
        role = message.get("role")
        if role in ("system", "developer"):
            system.append(text)
        elif role == "user":
            last_user = text
    last = messages[-1] if messages else {}
    tool_result = _text(last.get("content")) if last.get("role") == "tool" else None
    tools = tuple(_tool_spec(t) for t in body.get("tools") or () if isinstance(t, Mapping))
    choice, forced = _tool_choice(body.get("tool_choice"))
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    stop = body.get("stop")
    return WireRequest(
        dialect="openai",
        model=str(body.get("model", "")),
        body=body,
        system="\n\n".join(system),
        last_user_text=last_user,
        tool_result=tool_result,
        tools=tools,
        tool_choice=choice,
        forced_tool=forced,
        json_schema=_json_schema(body.get("response_format")),
        max_tokens=max_tokens if isinstance(max_tokens, int) else None,
        stop=(stop,)
        if isinstance(stop, str)
        else tuple(s for s in stop or () if isinstance(s, str)),
        prompt_chars=chars,
        stream=body.get("stream") is True,
    )


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            p["text"] for p in content if isinstance(p, Mapping) and isinstance(p.get("text"), str)
        )
    return ""


def _tool_spec(tool: Mapping[str, Any]) -> ToolSpec:
    function = tool.get("function")
    if not isinstance(function, Mapping):
        function = tool
    return ToolSpec(
        name=str(function.get("name", "")),
        description=str(function.get("description") or ""),
        parameters=function.get("parameters") or {},
    )


def _tool_choice(choice: Any) -> tuple[str, str | None]:
    if isinstance(choice, Mapping):
        function = choice.get("function")
        if isinstance(function, Mapping) and isinstance(function.get("name"), str):
            return "tool", function["name"]
        return "auto", None
    if choice in ("none", "required"):
        return str(choice), None
    return "auto", None


def _json_schema(response_format: Any) -> Mapping[str, Any] | None:
    if not isinstance(response_format, Mapping):
        return None
    kind = response_format.get("type")
    if kind == "json_object":
        return {}
    if kind == "json_schema":
        spec = response_format.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, Mapping) else None
        return schema if isinstance(schema, Mapping) else {}
    return None


def _include_usage(body: Mapping[str, Any]) -> bool:
    options = body.get("stream_options")
    return isinstance(options, Mapping) and options.get("include_usage") is True


def _usage(reply: FinalReply) -> dict[str, int]:
    return {
        "prompt_tokens": reply.input_tokens,
        "completion_tokens": reply.output_tokens,
        "total_tokens": reply.input_tokens + reply.output_tokens,
    }


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli(
        OpenAIServer, argv, prog="python -m cutover.testing.openai_server", default_port=18080
    )


__all__ = ["DEFAULT_MODELS", "OpenAIServer", "main", "parse_request"]


if __name__ == "__main__":
    raise SystemExit(main())
