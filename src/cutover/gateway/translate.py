"""Cross-dialect translation for the gateway: OpenAI Chat Completions <-> Anthropic Messages.

Pure: no I/O. Requests, whole responses and stream events, both ways:

- an OpenAI client on an ``anthropic:`` arm: :func:`chat_request_to_messages`
  (reusing :func:`cutover.providers.anthropic.messages_body`, the provider's
  own translation), :func:`message_to_chat_completion` and
  :class:`MessagesToChatStream`;
- an Anthropic client on an ``openai:`` arm: :func:`messages_request_to_chat`,
  :func:`chat_completion_to_message` and :class:`ChatToMessagesStream`.

A request that cannot be translated raises :class:`TranslationError` (the
gateway answers 400).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import orjson

from cutover.errors import ProviderRequestError
from cutover.providers._http import SSEEvent
from cutover.providers.anthropic import finish_reason, messages_body, token_counts

STOP_REASONS: Mapping[str, str] = MappingProxyType(
    {
        "stop": "end_turn",
        "length": "max_tokens",
        "tool_calls": "tool_use",
        "function_call": "tool_use",
        "content_filter": "refusal",
    }
)
"""OpenAI ``finish_reason`` -> Anthropic ``stop_reason``."""

DONE = b"data: [DONE]\n\n"


class TranslationError(ValueError):
    """The request cannot be expressed in the other dialect."""


def _data(payload: Any) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


def _event(name: str, payload: Any) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"


def _arguments(raw: Any) -> dict[str, Any]:
    """Tool-call arguments (a JSON string) as an object; ``{}`` when unreadable."""
    if isinstance(raw, dict):
        return raw
    if isinstance(raw, str) and raw.strip():
        try:
            value = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return {}
        return value if isinstance(value, dict) else {}
    return {}


# -- OpenAI client -> Anthropic upstream ---------------------------------------


def chat_request_to_messages(body: Mapping[str, Any], model: str) -> dict[str, Any]:
    """An OpenAI Chat Completions body -> a Messages body for ``model``."""
    try:
        out = messages_body(
            body,
            body["messages"],
            tools=body.get("tools"),
            tool_choice=body.get("tool_choice"),
            model=model,
            label=model,
        )
    except ProviderRequestError as exc:
        raise TranslationError(str(exc)) from None
    if body.get("stream") is True:
        out["stream"] = True
    return out


def _chat_usage(usage: Any) -> dict[str, int] | None:
    prompt, completion = token_counts(usage)
    if prompt is None and completion is None:
        return None
    prompt, completion = prompt or 0, completion or 0
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def message_to_chat_completion(data: Mapping[str, Any]) -> dict[str, Any]:
    """An Anthropic ``message`` -> an OpenAI ``chat.completion``."""
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for block in data.get("content") or ():
        if not isinstance(block, Mapping):
            continue
        if block.get("type") == "text" and isinstance(block.get("text"), str):
            texts.append(block["text"])
        elif block.get("type") == "tool_use":
            calls.append(
                {
                    "id": str(block.get("id") or f"toolu_{len(calls)}"),
                    "type": "function",
                    "function": {
                        "name": str(block.get("name") or ""),
                        "arguments": orjson.dumps(block.get("input") or {}).decode(),
                    },
                }
            )
    text = "".join(texts)
    message: dict[str, Any] = {
        "role": "assistant",
        "content": text if text or not calls else None,
        "refusal": None,
    }
    if calls:
        message["tool_calls"] = calls
    out: dict[str, Any] = {
        "id": str(data.get("id") or "msg"),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": str(data.get("model") or ""),
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": finish_reason(data.get("stop_reason")) or "stop",
            }
        ],
    }
    usage = _chat_usage(data.get("usage"))
    if usage is not None:
        out["usage"] = usage
    return out


class MessagesToChatStream:
    """Anthropic stream events -> OpenAI ``chat.completion.chunk`` frames.

    ``feed`` takes one event and returns the frames to send (maybe none);
    ``close`` returns what is still owed at the end (``data: [DONE]``).
    """

    __slots__ = (
        "_created",
        "_done",
        "_id",
        "_include_usage",
        "_input_tokens",
        "_model",
        "_output_tokens",
        "_tools",
    )

    def __init__(self, *, model: str, include_usage: bool = False) -> None:
        self._id = "chatcmpl-cutover"
        self._model = model
        self._created = int(time.time())
        self._include_usage = include_usage
        self._tools: dict[int, int] = {}  # Anthropic block index -> OpenAI tool_calls index
        self._input_tokens: int | None = None
        self._output_tokens: int | None = None
        self._done = False

    @property
    def complete(self) -> bool:
        """Whether the upstream's stream reached its end (``message_stop`` or an error)."""
        return self._done

    def _chunk(self, delta: Mapping[str, Any], finish: str | None = None) -> bytes:
        return _data(
            {
                "id": self._id,
                "object": "chat.completion.chunk",
                "created": self._created,
                "model": self._model,
                "choices": [
                    {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
                ],
            }
        )

    def feed(self, event: SSEEvent) -> list[bytes]:
        if self._done:
            return []
        try:
            payload = orjson.loads(event.data)
        except orjson.JSONDecodeError:
            return [error_chunk("the upstream sent an undecodable stream frame", "upstream_error")]
        if not isinstance(payload, dict):
            return []
        kind = payload.get("type") or event.event
        if kind == "error" or event.event == "error":
            error = payload.get("error")
            message = error.get("message") if isinstance(error, Mapping) else None
            self._done = True
            return [error_chunk(str(message or "upstream stream error"), "upstream_error")]
        if kind == "message_start":
            message = payload.get("message")
            if isinstance(message, Mapping):
                self._id = str(message.get("id") or self._id)
                self._model = str(message.get("model") or self._model)
                self._input_tokens, self._output_tokens = token_counts(message.get("usage"))
            return [self._chunk({"role": "assistant", "content": "", "refusal": None})]
        if kind == "content_block_start":
            block = payload.get("content_block")
            index = payload.get("index")
            if not isinstance(block, Mapping) or not isinstance(index, int):
                return []
            if block.get("type") == "tool_use":
                position = len(self._tools)
                self._tools[index] = position
                call = {
                    "index": position,
                    "id": str(block.get("id") or f"toolu_{position}"),
                    "type": "function",
                    "function": {"name": str(block.get("name") or ""), "arguments": ""},
                }
                return [self._chunk({"tool_calls": [call]})]
            text = block.get("text")
            if block.get("type") == "text" and isinstance(text, str) and text:
                return [self._chunk({"content": text})]
            return []
        if kind == "content_block_delta":
            return self._delta(payload)
        if kind == "message_delta":
            usage = payload.get("usage")
            if isinstance(usage, Mapping):
                in_tokens, out_tokens = token_counts(usage)
                self._output_tokens = out_tokens if out_tokens is not None else self._output_tokens
                if in_tokens:
                    self._input_tokens = in_tokens
            delta = payload.get("delta")
            stop = delta.get("stop_reason") if isinstance(delta, Mapping) else None
            if stop is not None:
                return [self._chunk({}, finish_reason(stop))]
            return []
        if kind == "message_stop":
            return self.close()
        return []  # ping, content_block_stop, unknown events

    def _delta(self, payload: Mapping[str, Any]) -> list[bytes]:
        delta = payload.get("delta")
        index = payload.get("index")
        if not isinstance(delta, Mapping):
            return []
        if delta.get("type") == "text_delta" and isinstance(delta.get("text"), str):
            return [self._chunk({"content": delta["text"]})] if delta["text"] else []
        if delta.get("type") == "input_json_delta" and isinstance(index, int):
            position = self._tools.get(index)
            partial = delta.get("partial_json")
            if position is None or not isinstance(partial, str) or not partial:
                return []
            call = {"index": position, "function": {"arguments": partial}}
            return [self._chunk({"tool_calls": [call]})]
        return []

    def close(self) -> list[bytes]:
        if self._done:
            return []
        self._done = True
        frames: list[bytes] = []
        if self._include_usage:
            prompt, completion = self._input_tokens or 0, self._output_tokens or 0
            frames.append(
                _data(
                    {
                        "id": self._id,
                        "object": "chat.completion.chunk",
                        "created": self._created,
                        "model": self._model,
                        "choices": [],
                        "usage": {
                            "prompt_tokens": prompt,
                            "completion_tokens": completion,
                            "total_tokens": prompt + completion,
                        },
                    }
                )
            )
        frames.append(DONE)
        return frames


def error_chunk(message: str, error_type: str) -> bytes:
    """An OpenAI-style SSE error frame."""
    return _data({"error": {"message": message, "type": error_type, "param": None, "code": None}})


# -- Anthropic client -> OpenAI upstream ---------------------------------------


def _system_text(system: Any) -> str:
    if isinstance(system, str):
        return system
    if isinstance(system, list):
        return "\n\n".join(
            b["text"] for b in system if isinstance(b, Mapping) and isinstance(b.get("text"), str)
        )
    return ""


def _image_part(block: Mapping[str, Any]) -> dict[str, Any]:
    source = block.get("source")
    if not isinstance(source, Mapping):
        raise TranslationError("an image block needs a 'source'")
    if source.get("type") == "base64":
        url = f"data:{source.get('media_type')};base64,{source.get('data')}"
    elif source.get("type") == "url":
        url = str(source.get("url"))
    else:
        raise TranslationError(f"image source type {source.get('type')!r} has no OpenAI form")
    return {"type": "image_url", "image_url": {"url": url}}


def _result_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            b["text"] for b in content if isinstance(b, Mapping) and isinstance(b.get("text"), str)
        )
    return "" if content is None else str(content)


def _user_messages(content: Any) -> list[dict[str, Any]]:
    """One Anthropic user turn -> tool messages (results first), then a user message."""
    if isinstance(content, str):
        return [{"role": "user", "content": content}]
    out: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for block in content if isinstance(content, list) else ():
        if not isinstance(block, Mapping):
            continue
        kind = block.get("type")
        if kind == "tool_result":
            text = _result_text(block.get("content"))
            if block.get("is_error") is True:
                text = f"Error: {text}"
            out.append(
                {"role": "tool", "tool_call_id": str(block.get("tool_use_id")), "content": text}
            )
        elif kind == "text":
            parts.append({"type": "text", "text": str(block.get("text", ""))})
        elif kind == "image":
            parts.append(_image_part(block))
        else:
            raise TranslationError(f"content block type {kind!r} has no OpenAI form")
    if parts:
        if all(p["type"] == "text" for p in parts):
            out.append({"role": "user", "content": "".join(p["text"] for p in parts)})
        else:
            out.append({"role": "user", "content": parts})
    return out


def _assistant_message(content: Any) -> dict[str, Any]:
    if isinstance(content, str):
        return {"role": "assistant", "content": content}
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for block in content if isinstance(content, list) else ():
        if not isinstance(block, Mapping):
            continue
        if block.get("type") == "text":
            texts.append(str(block.get("text", "")))
        elif block.get("type") == "tool_use":
            calls.append(
                {
                    "id": str(block.get("id")),
                    "type": "function",
                    "function": {
                        "name": str(block.get("name")),
                        "arguments": orjson.dumps(block.get("input") or {}).decode(),
                    },
                }
            )
        # thinking and redacted_thinking blocks have no OpenAI form: dropped
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) or None}
    if calls:
        message["tool_calls"] = calls
    return message


def _tool(tool: Any) -> dict[str, Any]:
    if not isinstance(tool, Mapping) or not isinstance(tool.get("name"), str):
        raise TranslationError("each tool needs a 'name'")
    if "input_schema" not in tool:
        raise TranslationError(
            f"tool {tool['name']!r} (type {tool.get('type')!r}) is an Anthropic server tool "
            "with no OpenAI form"
        )
    function: dict[str, Any] = {"name": tool["name"], "parameters": tool["input_schema"]}
    if tool.get("description"):
        function["description"] = tool["description"]
    return {"type": "function", "function": function}


def _tool_choice(choice: Mapping[str, Any]) -> Any:
    kind = choice.get("type")
    if kind == "any":
        return "required"
    if kind == "tool":
        return {"type": "function", "function": {"name": choice.get("name")}}
    if kind == "none":
        return "none"
    return "auto"


def messages_request_to_chat(body: Mapping[str, Any], model: str) -> dict[str, Any]:
    """An Anthropic Messages body -> an OpenAI Chat Completions body for ``model``.

    Anthropic-only fields (``top_k``, ``thinking``, ``service_tier``...) are dropped.
    """
    messages: list[dict[str, Any]] = []
    system = _system_text(body.get("system"))
    if system:
        messages.append({"role": "system", "content": system})
    for message in body.get("messages") or ():
        role = message.get("role") if isinstance(message, Mapping) else None
        if role == "user":
            messages.extend(_user_messages(message.get("content")))
        elif role == "assistant":
            messages.append(_assistant_message(message.get("content")))
        else:
            raise TranslationError(f"message role {role!r}: expected 'user' or 'assistant'")
    out: dict[str, Any] = {"model": model, "messages": messages}
    if body.get("max_tokens") is not None:
        out["max_tokens"] = body["max_tokens"]
    for name in ("temperature", "top_p"):
        if body.get(name) is not None:
            out[name] = body[name]
    stops = body.get("stop_sequences")
    if stops:
        out["stop"] = list(stops)
    metadata = body.get("metadata")
    if isinstance(metadata, Mapping) and isinstance(metadata.get("user_id"), str):
        out["user"] = metadata["user_id"]
    tools = body.get("tools")
    if tools:
        out["tools"] = [_tool(t) for t in tools]
    choice = body.get("tool_choice")
    if isinstance(choice, Mapping) and tools:
        out["tool_choice"] = _tool_choice(choice)
        if choice.get("disable_parallel_tool_use") is True:
            out["parallel_tool_calls"] = False
    if body.get("stream") is True:
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}
    return out


def stop_reason(finish: Any) -> str | None:
    """The Anthropic ``stop_reason`` for an OpenAI ``finish_reason``."""
    if finish is None:
        return None
    return STOP_REASONS.get(str(finish), "end_turn")


def _message_usage(usage: Any) -> dict[str, int]:
    if not isinstance(usage, Mapping):
        return {"input_tokens": 0, "output_tokens": 0}
    prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
    return {
        "input_tokens": prompt if isinstance(prompt, int) else 0,
        "output_tokens": completion if isinstance(completion, int) else 0,
    }


def _message_id(raw: Any) -> str:
    text = str(raw or "cutover")
    return text if text.startswith("msg_") else f"msg_{text}"


def chat_completion_to_message(data: Mapping[str, Any]) -> dict[str, Any]:
    """An OpenAI ``chat.completion`` -> an Anthropic ``message``."""
    choices = data.get("choices")
    choice = choices[0] if isinstance(choices, list) and choices else {}
    message = choice.get("message") if isinstance(choice, Mapping) else None
    message = message if isinstance(message, Mapping) else {}
    content: list[dict[str, Any]] = []
    text = message.get("content")
    if isinstance(text, str) and text:
        content.append({"type": "text", "text": text})
    for i, call in enumerate(message.get("tool_calls") or ()):
        function = call.get("function") if isinstance(call, Mapping) else None
        if not isinstance(function, Mapping):
            continue
        content.append(
            {
                "type": "tool_use",
                "id": str(call.get("id") or f"toolu_{i}"),
                "name": str(function.get("name") or ""),
                "input": _arguments(function.get("arguments")),
            }
        )
    finish = choice.get("finish_reason") if isinstance(choice, Mapping) else None
    return {
        "id": _message_id(data.get("id")),
        "type": "message",
        "role": "assistant",
        "model": str(data.get("model") or ""),
        "content": content,
        "stop_reason": stop_reason(finish) or "end_turn",
        "stop_sequence": None,
        "usage": _message_usage(data.get("usage")),
    }


class ChatToMessagesStream:
    """OpenAI ``chat.completion.chunk`` frames -> Anthropic stream events.

    Text becomes a ``text`` block, each tool call a ``tool_use`` block whose
    arguments arrive as ``input_json_delta``. ``message_delta`` (with the stop
    reason and usage) and ``message_stop`` are sent at ``[DONE]`` or at
    :meth:`close`, after OpenAI's trailing usage chunk.
    """

    __slots__ = (
        "_block",
        "_block_kind",
        "_done",
        "_input_tokens",
        "_model",
        "_next_index",
        "_output_tokens",
        "_started",
        "_stop",
        "_tool_blocks",
    )

    def __init__(self, *, model: str) -> None:
        self._model = model
        self._started = False
        self._block: int | None = None  # index of the open content block
        self._block_kind = ""
        self._next_index = 0
        self._tool_blocks: dict[int, int] = {}  # OpenAI tool_calls index -> block index
        self._stop: str | None = None
        self._input_tokens = 0
        self._output_tokens = 0
        self._done = False

    @property
    def complete(self) -> bool:
        """Whether the upstream's stream reached its end (a finish reason, ``[DONE]``)."""
        return self._done or self._stop is not None

    def _start(self, chunk: Mapping[str, Any]) -> list[bytes]:
        if self._started:
            return []
        self._started = True
        self._model = str(chunk.get("model") or self._model)
        message: dict[str, Any] = {
            "id": _message_id(chunk.get("id")),
            "type": "message",
            "role": "assistant",
            "model": self._model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0},
        }
        return [_event("message_start", {"type": "message_start", "message": message})]

    def _close_block(self) -> list[bytes]:
        if self._block is None:
            return []
        index, self._block = self._block, None
        return [_event("content_block_stop", {"type": "content_block_stop", "index": index})]

    def _open_block(self, kind: str, block: Mapping[str, Any]) -> list[bytes]:
        frames = self._close_block()
        self._block, self._block_kind = self._next_index, kind
        self._next_index += 1
        frames.append(
            _event(
                "content_block_start",
                {"type": "content_block_start", "index": self._block, "content_block": block},
            )
        )
        return frames

    def feed(self, event: SSEEvent) -> list[bytes]:
        if self._done:
            return []
        if event.data.strip() == "[DONE]":
            return self.close()
        try:
            chunk = orjson.loads(event.data)
        except orjson.JSONDecodeError:
            self._done = True
            return [error_event("the upstream sent an undecodable stream frame")]
        if not isinstance(chunk, dict):
            return []
        if isinstance(chunk.get("error"), Mapping):
            self._done = True
            return [error_event(str(chunk["error"].get("message") or "upstream stream error"))]
        frames = self._start(chunk)
        usage = chunk.get("usage")
        if isinstance(usage, Mapping):
            counts = _message_usage(usage)
            self._input_tokens = counts["input_tokens"]
            self._output_tokens = counts["output_tokens"]
        for choice in chunk.get("choices") or ():
            if not isinstance(choice, Mapping) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta")
            if isinstance(delta, Mapping):
                frames.extend(self._delta(delta))
            if choice.get("finish_reason") is not None:
                self._stop = stop_reason(choice["finish_reason"])
        return frames

    def _delta(self, delta: Mapping[str, Any]) -> list[bytes]:
        frames: list[bytes] = []
        text = delta.get("content")
        if isinstance(text, str) and text:
            if self._block is None or self._block_kind != "text":
                frames.extend(self._open_block("text", {"type": "text", "text": ""}))
            frames.append(
                _event(
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": self._block,
                        "delta": {"type": "text_delta", "text": text},
                    },
                )
            )
        for call in delta.get("tool_calls") or ():
            if not isinstance(call, Mapping):
                continue
            position = call.get("index", 0)
            function = call.get("function")
            function = function if isinstance(function, Mapping) else {}
            if position not in self._tool_blocks:
                block = {
                    "type": "tool_use",
                    "id": str(call.get("id") or f"toolu_{position}"),
                    "name": str(function.get("name") or ""),
                    "input": {},
                }
                frames.extend(self._open_block("tool_use", block))
                assert self._block is not None
                self._tool_blocks[position] = self._block
            arguments = function.get("arguments")
            if isinstance(arguments, str) and arguments:
                frames.append(
                    _event(
                        "content_block_delta",
                        {
                            "type": "content_block_delta",
                            "index": self._tool_blocks[position],
                            "delta": {"type": "input_json_delta", "partial_json": arguments},
                        },
                    )
                )
        return frames

    def close(self) -> list[bytes]:
        """The closing events (once): open block stopped, message_delta, message_stop."""
        if self._done:
            return []
        self._done = True
        frames = self._start({})
        frames.extend(self._close_block())
        frames.append(
            _event(
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": self._stop or "end_turn", "stop_sequence": None},
                    "usage": {
                        "input_tokens": self._input_tokens,
                        "output_tokens": self._output_tokens,
                    },
                },
            )
        )
        frames.append(_event("message_stop", {"type": "message_stop"}))
        return frames


def error_event(message: str, error_type: str = "api_error") -> bytes:
    """An Anthropic ``error`` stream event."""
    return _event("error", {"type": "error", "error": {"type": error_type, "message": message}})


__all__ = [
    "DONE",
    "STOP_REASONS",
    "ChatToMessagesStream",
    "MessagesToChatStream",
    "TranslationError",
    "chat_completion_to_message",
    "chat_request_to_messages",
    "error_chunk",
    "error_event",
    "message_to_chat_completion",
    "messages_request_to_chat",
    "stop_reason",
]
