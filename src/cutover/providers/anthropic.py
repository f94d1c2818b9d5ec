"""The Anthropic provider: ``POST {base_url}/v1/messages``.

Requests arrive in the OpenAI chat format and are translated here, at the
edge: system messages become the top-level ``system``; assistant
``tool_calls`` become ``tool_use`` blocks; ``tool`` messages become
``tool_result`` blocks in a user turn; OpenAI function tools become
``{name, description, input_schema}``; ``tool_choice`` and ``stop`` are
renamed; ``max_tokens`` (required by Anthropic) defaults to 1024. OpenAI-only
parameters Anthropic would reject (``seed``, ``n``, penalties, logprobs,
``response_format``...) are dropped; any other key is passed through.

Reported ``input_tokens`` include cache reads and cache writes, so they are
comparable with OpenAI's ``prompt_tokens``. ``stop_reason`` is mapped to the
OpenAI vocabulary (``stop``, ``length``, ``tool_calls``).
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import orjson

from cutover.errors import MissingKeyError, ProviderRequestError
from cutover.providers._http import (
    HttpProvider,
    SSEEvent,
    error_for_payload,
    malformed,
    ms_since,
)
from cutover.records import Message, ModelRequest, Observation, ToolCall
from cutover.targets import Target

OFFICIAL_BASE_URL = "https://api.anthropic.com"
DEFAULT_KEY_ENV = "ANTHROPIC_API_KEY"
API_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 1024

STOP_REASONS: Mapping[str, str] = MappingProxyType(
    {
        "end_turn": "stop",
        "stop_sequence": "stop",
        "pause_turn": "stop",
        "max_tokens": "length",
        "model_context_window_exceeded": "length",
        "tool_use": "tool_calls",
        "refusal": "content_filter",
    }
)
"""Anthropic ``stop_reason`` -> OpenAI ``finish_reason``."""

_OPENAI_ONLY_PARAMS = frozenset(
    {
        "frequency_penalty",
        "logit_bias",
        "logprobs",
        "max_completion_tokens",
        "max_tokens",
        "messages",
        "modalities",
        "model",
        "n",
        "parallel_tool_calls",
        "presence_penalty",
        "reasoning_effort",
        "response_format",
        "seed",
        "stop",
        "stream",
        "stream_options",
        "tool_choice",
        "tools",
        "top_logprobs",
        "user",
    }
)
_DATA_URL = re.compile(r"^data:(?P<media>[\w/+.-]+);base64,(?P<data>.*)$", re.DOTALL)


class AnthropicProvider(HttpProvider):
    """Calls one target through the Anthropic Messages wire format."""

    def __init__(self, target: Target, *, session: aiohttp.ClientSession | None = None) -> None:
        base = (target.base_url or OFFICIAL_BASE_URL).rstrip("/")
        base = base.removesuffix("/v1")
        key_env = target.api_key_env or DEFAULT_KEY_ENV
        key = os.environ.get(key_env)
        if not key and urlsplit(base).hostname == "api.anthropic.com":
            raise MissingKeyError(
                f"target '{target.label}' needs an API key: environment variable "
                f"{key_env} is not set",
                field="api_key_env",
                hint=f"export {key_env}=... or name another variable with api_key_env",
            )
        headers = {"Content-Type": "application/json", "anthropic-version": API_VERSION}
        if key:
            headers["x-api-key"] = key
        headers.update(target.headers)
        super().__init__(target, f"{base}/v1/messages", headers, session=session)

    def build_body(self, request: ModelRequest) -> dict[str, Any]:
        """The Messages API body for an OpenAI-format ``request``."""
        body = messages_body(
            request.params,
            request.messages,
            tools=request.tools,
            tool_choice=request.tool_choice,
            model=self.target.model,
            label=self.target.label,
        )
        if self.target.stream:
            body["stream"] = True
        return body

    async def complete(self, request: ModelRequest) -> Observation:
        body = self.build_body(request)
        start = time.perf_counter()
        if not self.target.stream:
            data, status = await self.post_json(body)
            return self._from_message(data, status, ms_since(start))
        assembler = _EventAssembler(self.target.label, self.url)
        data, status = await self.post_stream(body, assembler)
        latency = ms_since(start)
        if data is not None:
            return self._from_message(data, status, latency)
        first = assembler.first_token_at
        return assembler.observation(
            self.target.label,
            status=status,
            latency_ms=latency,
            ttft_ms=(first - start) * 1000.0 if first is not None else None,
        )

    def _from_message(self, data: Any, status: int, latency_ms: float) -> Observation:
        return observation_from_message(
            data, label=self.target.label, url=self.url, status=status, latency_ms=latency_ms
        )


def observation_from_message(
    data: Any, *, label: str, url: str, status: int, latency_ms: float
) -> Observation:
    """An Anthropic message body as an Observation; raises a ``ProviderError`` when it is not one."""
    if not isinstance(data, dict):
        raise malformed(label, url, "a response that is not a JSON object", orjson.dumps(data))
    if data.get("type") == "error" or (data.get("error") is not None and "content" not in data):
        raise error_for_payload(data, label=label, url=url)
    content = data.get("content")
    if not isinstance(content, list):
        raise malformed(label, url, "a message without content", orjson.dumps(data))
    texts: list[str] = []
    calls: list[ToolCall] = []
    for block in content:
        if not isinstance(block, dict):
            raise malformed(label, url, "an unreadable content block", orjson.dumps(data))
        kind = block.get("type")
        if kind == "text" and isinstance(block.get("text"), str):
            texts.append(block["text"])
        elif kind == "tool_use":
            if not isinstance(block.get("name"), str):
                raise malformed(label, url, "a tool_use block without a name", orjson.dumps(data))
            calls.append(
                ToolCall(
                    id=str(block.get("id") or f"toolu_{len(calls)}"),
                    name=block["name"],
                    arguments=orjson.dumps(block.get("input") or {}).decode(),
                )
            )
    text = "".join(texts)
    input_tokens, output_tokens = _usage(data.get("usage"))
    stop = data.get("stop_reason")
    return Observation(
        target=label,
        output=text if text or not calls else None,
        tool_calls=tuple(calls),
        finish_reason=finish_reason(stop),
        status_code=status,
        latency_ms=latency_ms,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        model=data.get("model") if isinstance(data.get("model"), str) else None,
    )


def finish_reason(stop_reason: Any) -> str | None:
    """The OpenAI ``finish_reason`` for an Anthropic ``stop_reason``."""
    if stop_reason is None:
        return None
    return STOP_REASONS.get(str(stop_reason), str(stop_reason))


def messages_body(
    params: Mapping[str, Any],
    messages: Sequence[Message],
    *,
    tools: Sequence[Mapping[str, Any]] | None,
    tool_choice: Any,
    model: str,
    label: str = "anthropic",
) -> dict[str, Any]:
    """A Messages API body (without ``stream``) for an OpenAI-format request.

    ``params`` are the request's other OpenAI fields: OpenAI-only ones are
    dropped or renamed, the rest passed through. The gateway uses it too.
    """
    body: dict[str, Any] = {k: v for k, v in params.items() if k not in _OPENAI_ONLY_PARAMS}
    body["model"] = model
    max_tokens = params.get("max_tokens", params.get("max_completion_tokens"))
    body["max_tokens"] = max_tokens if max_tokens is not None else DEFAULT_MAX_TOKENS
    system, translated = translate_messages(messages, label=label)
    if system:
        body["system"] = system
    body["messages"] = translated
    stop = params.get("stop")
    if stop is not None:
        body["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    if isinstance(params.get("user"), str) and "metadata" not in body:
        body["metadata"] = {"user_id": params["user"]}
    if tools:
        body["tools"] = [translate_tool(tool) for tool in tools]
    choice = translate_tool_choice(tool_choice, params.get("parallel_tool_calls"))
    if choice is not None and tools:
        body["tool_choice"] = choice
    return body


# -- Request translation ------------------------------------------------------


def translate_messages(
    messages: Sequence[Message], *, label: str = "anthropic"
) -> tuple[str, list[dict[str, Any]]]:
    """OpenAI chat messages -> (Anthropic ``system`` text, Anthropic messages).

    Consecutive turns of the same role are merged (Anthropic alternates user
    and assistant); the results of one round of tool calls share one user turn.
    """
    system: list[str] = []
    out: list[dict[str, Any]] = []
    for message in messages:
        role = message.get("role")
        if role in ("system", "developer"):
            text = _text_of(message.get("content"))
            if text:
                system.append(text)
            continue
        if role == "tool":
            blocks: list[dict[str, Any]] = [
                {
                    "type": "tool_result",
                    "tool_use_id": str(message.get("tool_call_id") or ""),
                    "content": _text_of(message.get("content")),
                }
            ]
            _append(out, "user", blocks)
        elif role == "assistant":
            blocks = _content_blocks(message.get("content"))
            for call in message.get("tool_calls") or ():
                blocks.append(_tool_use_block(call, label))
            if blocks:
                _append(out, "assistant", blocks)
        elif role == "user":
            _append(out, "user", _content_blocks(message.get("content")))
        else:
            raise ProviderRequestError(
                f"{label}: message role {role!r} cannot be sent to Anthropic "
                "(expected system, user, assistant or tool)"
            )
    return "\n\n".join(system), [_simplify(m) for m in out]


def _append(out: list[dict[str, Any]], role: str, blocks: list[dict[str, Any]]) -> None:
    if out and out[-1]["role"] == role:
        out[-1]["content"].extend(blocks)
    else:
        out.append({"role": role, "content": blocks})


def _simplify(message: dict[str, Any]) -> dict[str, Any]:
    """A single text block is sent as a plain string."""
    blocks = message["content"]
    if len(blocks) == 1 and blocks[0].get("type") == "text":
        return {"role": message["role"], "content": blocks[0]["text"]}
    return message


def _text_of(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            part["text"]
            for part in content
            if isinstance(part, Mapping) and isinstance(part.get("text"), str)
        )
    return str(content)


def _content_blocks(content: Any) -> list[dict[str, Any]]:
    if content is None or content == "":
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    blocks: list[dict[str, Any]] = []
    for part in content if isinstance(content, list) else [content]:
        if isinstance(part, str):
            blocks.append({"type": "text", "text": part})
        elif isinstance(part, Mapping) and part.get("type") == "text":
            blocks.append({"type": "text", "text": str(part.get("text", ""))})
        elif isinstance(part, Mapping) and part.get("type") == "image_url":
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, Mapping) else image
            blocks.append(_image_block(str(url)))
        elif isinstance(part, Mapping):
            blocks.append(dict(part))  # already an Anthropic block
    return blocks


def _image_block(url: str) -> dict[str, Any]:
    match = _DATA_URL.match(url)
    if match:
        source = {"type": "base64", "media_type": match["media"], "data": match["data"]}
        return {"type": "image", "source": source}
    return {"type": "image", "source": {"type": "url", "url": url}}


def _tool_use_block(call: Any, label: str) -> dict[str, Any]:
    function = call.get("function") if isinstance(call, Mapping) else None
    if not isinstance(function, Mapping) or not isinstance(function.get("name"), str):
        raise ProviderRequestError(f"{label}: an assistant tool call has no function name")
    arguments = function.get("arguments")
    if isinstance(arguments, str):
        try:
            arguments = orjson.loads(arguments) if arguments.strip() else {}
        except orjson.JSONDecodeError:
            raise ProviderRequestError(
                f"{label}: tool call {function['name']!r} has arguments that are not JSON: "
                f"{arguments[:80]!r}"
            ) from None
    if not isinstance(arguments, dict):
        raise ProviderRequestError(
            f"{label}: tool call {function['name']!r} arguments must be a JSON object"
        )
    return {
        "type": "tool_use",
        "id": str(call.get("id") or ""),
        "name": function["name"],
        "input": arguments,
    }


def translate_tool(tool: Mapping[str, Any]) -> dict[str, Any]:
    """An OpenAI function tool -> an Anthropic tool (Anthropic tools pass as they are)."""
    function = tool.get("function")
    if tool.get("type") == "function" and isinstance(function, Mapping):
        out: dict[str, Any] = {
            "name": function.get("name"),
            "input_schema": function.get("parameters") or {"type": "object", "properties": {}},
        }
        if function.get("description"):
            out["description"] = function["description"]
        return out
    return dict(tool)


def translate_tool_choice(choice: Any, parallel_tool_calls: Any = None) -> dict[str, Any] | None:
    """An OpenAI ``tool_choice`` -> an Anthropic one (``None`` when unset)."""
    out: dict[str, Any] | None
    if choice is None:
        out = {"type": "auto"} if parallel_tool_calls is False else None
    elif choice == "auto":
        out = {"type": "auto"}
    elif choice == "required":
        out = {"type": "any"}
    elif choice == "none":
        out = {"type": "none"}
    elif isinstance(choice, Mapping) and isinstance(choice.get("function"), Mapping):
        out = {"type": "tool", "name": choice["function"].get("name")}
    elif isinstance(choice, Mapping):
        out = dict(choice)
    else:
        out = {"type": "auto"}
    if out is not None and parallel_tool_calls is False and out["type"] != "none":
        out["disable_parallel_tool_use"] = True
    return out


# -- Responses ----------------------------------------------------------------


class _EventAssembler:
    """Builds one answer from Messages stream events."""

    __slots__ = (
        "_blocks",
        "_label",
        "_url",
        "first_token_at",
        "input_tokens",
        "model",
        "output_tokens",
        "stop_reason",
        "stopped",
    )

    def __init__(self, label: str, url: str) -> None:
        self._label = label
        self._url = url
        self._blocks: dict[int, _Block] = {}
        self.first_token_at: float | None = None
        self.input_tokens: int | None = None
        self.output_tokens: int | None = None
        self.model: str | None = None
        self.stop_reason: str | None = None
        self.stopped = False

    @property
    def complete(self) -> bool:
        return self.stopped or self.stop_reason is not None

    def partial_text(self) -> str:
        return "".join(
            "".join(self._blocks[i].parts)
            for i in sorted(self._blocks)
            if self._blocks[i].kind == "text"
        )

    def _bad(self, what: str, data: str) -> Exception:
        return malformed(self._label, self._url, what, data, partial=self.partial_text())

    def feed(self, event: SSEEvent) -> None:
        if self.stopped:
            return
        try:
            payload = orjson.loads(event.data)
        except orjson.JSONDecodeError:
            raise self._bad("an undecodable stream frame", event.data) from None
        if not isinstance(payload, dict):
            raise self._bad("a stream frame that is not an object", event.data)
        kind = payload.get("type") or event.event
        if kind == "error" or event.event == "error":
            raise error_for_payload(
                payload, label=self._label, url=self._url, partial_output=self.partial_text()
            )
        if kind == "message_start":
            message = payload.get("message")
            if isinstance(message, Mapping):
                if isinstance(message.get("model"), str):
                    self.model = message["model"]
                self.input_tokens, self.output_tokens = _usage(message.get("usage"))
        elif kind == "content_block_start":
            block = payload.get("content_block")
            index = payload.get("index")
            if not isinstance(block, Mapping) or not isinstance(index, int):
                raise self._bad("an unreadable content_block_start", event.data)
            self._blocks[index] = _Block(block)
            if block.get("type") == "tool_use":
                self._token()
        elif kind == "content_block_delta":
            self._delta(payload, event.data)
        elif kind == "message_delta":
            delta = payload.get("delta")
            if isinstance(delta, Mapping) and delta.get("stop_reason") is not None:
                self.stop_reason = str(delta["stop_reason"])
            usage = payload.get("usage")
            if isinstance(usage, Mapping):
                self._merge_usage(usage)
        elif kind == "message_stop":
            self.stopped = True
        # ping, content_block_stop and unknown events carry nothing we need.

    def _delta(self, payload: Mapping[str, Any], data: str) -> None:
        index = payload.get("index")
        delta = payload.get("delta")
        if not isinstance(index, int) or not isinstance(delta, Mapping):
            raise self._bad("an unreadable content_block_delta", data)
        block = self._blocks.get(index)
        if block is None:
            raise self._bad(f"a delta for content block {index} that never started", data)
        if delta.get("type") == "text_delta" and isinstance(delta.get("text"), str):
            block.parts.append(delta["text"])
            if delta["text"]:
                self._token()
        elif delta.get("type") == "input_json_delta" and isinstance(delta.get("partial_json"), str):
            block.parts.append(delta["partial_json"])

    def _merge_usage(self, usage: Mapping[str, Any]) -> None:
        in_tokens, out_tokens = _usage(usage)
        if out_tokens is not None:
            self.output_tokens = out_tokens
        if any(k in usage for k in ("input_tokens", "cache_read_input_tokens")) and in_tokens:
            self.input_tokens = in_tokens

    def _token(self) -> None:
        if self.first_token_at is None:
            self.first_token_at = time.perf_counter()

    def observation(
        self, label: str, *, status: int, latency_ms: float, ttft_ms: float | None
    ) -> Observation:
        calls = tuple(
            self._blocks[i].to_tool_call(i)
            for i in sorted(self._blocks)
            if self._blocks[i].kind == "tool_use"
        )
        text = self.partial_text()
        return Observation(
            target=label,
            output=text if text or not calls else None,
            tool_calls=calls,
            finish_reason=finish_reason(self.stop_reason),
            status_code=status,
            latency_ms=latency_ms,
            ttft_ms=ttft_ms,
            input_tokens=self.input_tokens,
            output_tokens=self.output_tokens,
            model=self.model,
        )


class _Block:
    """One content block being streamed: text pieces or tool-input JSON pieces."""

    __slots__ = ("id", "initial_input", "kind", "name", "parts")

    def __init__(self, start: Mapping[str, Any]) -> None:
        self.kind = str(start.get("type"))
        self.id = str(start.get("id") or "")
        self.name = str(start.get("name") or "")
        self.initial_input = start.get("input")
        text = start.get("text")
        self.parts: list[str] = [text] if isinstance(text, str) and text else []

    def to_tool_call(self, index: int) -> ToolCall:
        arguments = "".join(self.parts)
        if not arguments:
            arguments = orjson.dumps(self.initial_input or {}).decode()
        return ToolCall(id=self.id or f"toolu_{index}", name=self.name, arguments=arguments)


def _usage(usage: Any) -> tuple[int | None, int | None]:
    """(input tokens including cache reads and writes, output tokens)."""
    if not isinstance(usage, Mapping):
        return None, None
    counts = [
        usage.get(k)
        for k in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
    ]
    ints = [c for c in counts if isinstance(c, int)]
    output = usage.get("output_tokens")
    return (sum(ints) if ints else None, output if isinstance(output, int) else None)


def token_counts(usage: Any) -> tuple[int | None, int | None]:
    """(input tokens including cache reads and writes, output tokens) of an Anthropic usage."""
    return _usage(usage)


def stream_assembler(label: str, url: str) -> _EventAssembler:
    """A fresh assembler for one stream of this dialect (see ``observation_from_sse``)."""
    return _EventAssembler(label, url)


__all__ = [
    "API_VERSION",
    "DEFAULT_KEY_ENV",
    "DEFAULT_MAX_TOKENS",
    "OFFICIAL_BASE_URL",
    "STOP_REASONS",
    "AnthropicProvider",
    "finish_reason",
    "messages_body",
    "observation_from_message",
    "stream_assembler",
    "token_counts",
    "translate_messages",
    "translate_tool",
    "translate_tool_choice",
]
