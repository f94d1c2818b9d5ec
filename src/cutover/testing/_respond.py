"""What the local wire servers answer: a dialect-neutral request and reply.

Both servers reduce the request they received to a :class:`WireRequest`, ask
a responder for a :class:`Reply`, and encode it in their own wire format. The
:func:`default_responder` is deterministic: the same request always gets the
same answer, so tests can assert on it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

Dialect = Literal["openai", "anthropic"]


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """A tool offered to the model: its name, description and JSON schema."""

    name: str
    description: str = ""
    parameters: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class WireRequest:
    """One request as the responder sees it, whatever the dialect."""

    dialect: Dialect
    model: str
    body: Mapping[str, Any]
    """The decoded request body, exactly as received."""
    system: str = ""
    last_user_text: str = ""
    tool_result: str | None = None
    """The text of the tool result when the last message carries one."""
    tools: tuple[ToolSpec, ...] = ()
    tool_choice: str = "auto"
    """``auto``, ``none``, ``required`` (any tool) or ``tool`` (``forced_tool``)."""
    forced_tool: str | None = None
    json_schema: Mapping[str, Any] | None = None
    """Set when a JSON answer is asked for (``{}`` when no schema is given)."""
    max_tokens: int | None = None
    stop: tuple[str, ...] = ()
    prompt_chars: int = 0
    stream: bool = False


@dataclass(frozen=True, slots=True)
class ReplyToolCall:
    """A tool call to emit; ``arguments`` is an object or its JSON text."""

    name: str
    arguments: Mapping[str, Any] | str = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Reply:
    """What to answer. ``finish_reason`` uses the OpenAI vocabulary; None derives it."""

    text: str = ""
    tool_calls: tuple[ReplyToolCall, ...] = ()
    finish_reason: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None


Responder = Callable[[WireRequest], Reply | str | Awaitable[Reply | str]]
"""A custom responder: sync or async, returning a Reply or plain text."""


@dataclass(frozen=True, slots=True)
class FinalReply:
    """A reply with stop sequences and max_tokens applied and usage counted."""

    text: str
    tool_calls: tuple[tuple[str, str], ...]
    """``(name, arguments JSON text)`` pairs."""
    finish_reason: str
    stop_sequence: str | None
    input_tokens: int
    output_tokens: int


def estimate_tokens(chars: int) -> int:
    """Tokens from characters (four per token, at least one)."""
    return max(1, math.ceil(chars / 4))


def default_responder(request: WireRequest) -> Reply:
    """A deterministic answer to ``request``.

    - after a tool result: a sentence quoting it;
    - when tools are offered, tool_choice is not ``none`` and the last user
      message names a tool (or a tool is forced): a call to it with arguments
      made from its schema;
    - when JSON is asked for: an object following the schema;
    - otherwise: ``Reply to: <last user message>``.
    """
    if request.tool_result is not None:
        return Reply(text=f"Based on the tool result: {request.tool_result[:200]}")
    if request.tools and request.tool_choice != "none":
        tool = _pick_tool(request)
        if tool is not None:
            arguments = example_value(tool.parameters, request.last_user_text)
            return Reply(tool_calls=(ReplyToolCall(tool.name, arguments),))
    if request.json_schema is not None:
        value = example_value(request.json_schema, request.last_user_text)
        if not isinstance(value, dict) or not value:
            value = {"answer": _summary(request.last_user_text)}
        return Reply(text=orjson.dumps(value).decode())
    return Reply(text=f"Reply to: {_summary(request.last_user_text)}")


def _summary(text: str) -> str:
    text = " ".join(text.split())
    return text[:300] if text else "(empty message)"


def _pick_tool(request: WireRequest) -> ToolSpec | None:
    if request.tool_choice == "tool":
        return next((t for t in request.tools if t.name == request.forced_tool), None)
    lowered = request.last_user_text.lower()
    for tool in request.tools:
        if tool.name.lower() in lowered:
            return tool
    if request.tool_choice == "required":
        return request.tools[0]
    return None


_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")


def example_value(schema: Mapping[str, Any], text: str = "", depth: int = 0) -> Any:
    """A deterministic value that fits a (simple) JSON schema."""
    if not isinstance(schema, Mapping) or depth > 4:
        return None
    if schema.get("enum"):
        return schema["enum"][0]
    if "const" in schema:
        return schema["const"]
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind is None and "properties" in schema:
        kind = "object"
    words = _WORD.findall(text)
    if kind == "object":
        props = schema.get("properties")
        if not isinstance(props, Mapping):
            return {}
        return {
            str(name): example_value(sub, text, depth + 1)
            for name, sub in props.items()
            if isinstance(sub, Mapping)
        }
    if kind == "array":
        items = schema.get("items")
        return [example_value(items, text, depth + 1)] if isinstance(items, Mapping) else []
    if kind == "integer":
        return len(words)
    if kind == "number":
        return float(len(words))
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return words[-1] if words else "example"


def finalize(reply: Reply, request: WireRequest) -> FinalReply:
    """Apply stop sequences and max_tokens; count tokens; derive finish_reason."""
    text = reply.text
    finish = reply.finish_reason
    stop_sequence = None
    for stop in request.stop:
        at = text.find(stop) if stop else -1
        if at >= 0:
            text = text[:at]
            stop_sequence = stop
            finish = finish or "stop"
    calls = tuple(
        (
            call.name,
            call.arguments
            if isinstance(call.arguments, str)
            else orjson.dumps(dict(call.arguments)).decode(),
        )
        for call in reply.tool_calls
    )
    if request.max_tokens is not None and estimate_tokens(len(text)) > request.max_tokens:
        text = text[: max(0, request.max_tokens) * 4]
        finish = "length"
    if finish is None:
        finish = "tool_calls" if calls else "stop"
    out_chars = len(text) + sum(len(name) + len(args) for name, args in calls)
    return FinalReply(
        text=text,
        tool_calls=calls,
        finish_reason=finish,
        stop_sequence=stop_sequence,
        input_tokens=(
            reply.input_tokens
            if reply.input_tokens is not None
            else estimate_tokens(request.prompt_chars)
        ),
        output_tokens=(
            reply.output_tokens if reply.output_tokens is not None else estimate_tokens(out_chars)
        ),
    )


def text_pieces(text: str, size: int) -> list[str]:
    """``text`` cut into stream deltas of about ``size`` characters, at spaces."""
    if not text:
        return []
    pieces: list[str] = []
    start = 0
    while start < len(text):
        end = min(len(text), start + size)
        if end < len(text):
            space = text.rfind(" ", start + 1, end + 1)
            if space > start:
                end = space
        pieces.append(text[start:end])
        start = end
    return pieces


def argument_pieces(arguments: str, parts: int = 3) -> list[str]:
    """Tool-call arguments cut into a few fragments, as servers stream them."""
    if not arguments:
        return [""]
    size = max(1, math.ceil(len(arguments) / parts))
    return [arguments[i : i + size] for i in range(0, len(arguments), size)]


__all__ = [
    "Dialect",
    "FinalReply",
    "Reply",
    "ReplyToolCall",
    "Responder",
    "ToolSpec",
    "WireRequest",
    "argument_pieces",
    "default_responder",
    "estimate_tokens",
    "example_value",
    "finalize",
    "text_pieces",
]
