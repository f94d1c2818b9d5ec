"""The OpenAI-compatible provider: ``POST {base_url}/chat/completions``.

Works with api.openai.com and with any server speaking the same dialect
(vLLM, llama.cpp, Ollama, LiteLLM, Azure-style gateways, our local test
server). Requests are already in the OpenAI chat format, so the body is the
request as given: ``model``, ``messages``, ``tools``, ``tool_choice``,
``response_format`` and every key of ``request.params`` (unknown keys too).
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import orjson

from cutover.errors import MissingKeyError
from cutover.providers._http import (
    HttpProvider,
    SSEEvent,
    error_for_payload,
    malformed,
    ms_since,
)
from cutover.records import ModelRequest, Observation, ToolCall
from cutover.targets import Target

OFFICIAL_BASE_URL = "https://api.openai.com/v1"
DEFAULT_KEY_ENV = "OPENAI_API_KEY"


class OpenAIProvider(HttpProvider):
    """Calls one target through the OpenAI chat-completions wire format."""

    def __init__(self, target: Target, *, session: aiohttp.ClientSession | None = None) -> None:
        base = (target.base_url or OFFICIAL_BASE_URL).rstrip("/")
        key_env = target.api_key_env or DEFAULT_KEY_ENV
        key = os.environ.get(key_env)
        if not key and urlsplit(base).hostname == "api.openai.com":
            raise MissingKeyError(
                f"target '{target.label}' needs an API key: environment variable "
                f"{key_env} is not set",
                field="api_key_env",
                hint=f"export {key_env}=... or name another variable with api_key_env",
            )
        headers = {"Content-Type": "application/json"}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        headers.update(target.headers)
        super().__init__(target, f"{base}/chat/completions", headers, session=session)

    def build_body(self, request: ModelRequest) -> dict[str, Any]:
        """The JSON body sent for ``request``."""
        body: dict[str, Any] = dict(request.params)
        body["model"] = self.target.model
        body["messages"] = request.messages
        if request.tools is not None:
            body["tools"] = request.tools
        if request.tool_choice is not None:
            body["tool_choice"] = request.tool_choice
        if request.response_format is not None:
            body["response_format"] = request.response_format
        if self.target.stream:
            body["stream"] = True
            options = body.get("stream_options")
            extra = dict(options) if isinstance(options, Mapping) else {}
            body["stream_options"] = {**extra, "include_usage": True}
        else:
            body.pop("stream", None)
            body.pop("stream_options", None)
        return body

    async def complete(self, request: ModelRequest) -> Observation:
        body = self.build_body(request)
        start = time.perf_counter()
        if not self.target.stream:
            data, status = await self.post_json(body)
            return self._from_completion(data, status, ms_since(start))
        assembler = _ChunkAssembler(self.target.label, self.url)
        data, status = await self.post_stream(body, assembler)
        latency = ms_since(start)
        if data is not None:
            return self._from_completion(data, status, latency)
        return assembler.observation(
            self.target.label,
            status=status,
            latency_ms=latency,
            ttft_ms=(
                (assembler.first_token_at - start) * 1000.0
                if assembler.first_token_at is not None
                else None
            ),
        )

    def _from_completion(self, data: Any, status: int, latency_ms: float) -> Observation:
        return observation_from_completion(
            data, label=self.target.label, url=self.url, status=status, latency_ms=latency_ms
        )


class _ChunkAssembler:
    """Builds one answer from ``chat.completion.chunk`` frames."""

    __slots__ = (
        "_calls",
        "_label",
        "_parts",
        "_refusal",
        "_url",
        "finish_reason",
        "first_token_at",
        "input_tokens",
        "model",
        "output_tokens",
        "saw_done",
    )

    def __init__(self, label: str, url: str) -> None:
        self._label = label
        self._url = url
        self._parts: list[str] = []
        self._refusal: list[str] = []
        self._calls: dict[int, _PartialCall] = {}
        self.finish_reason: str | None = None
        self.first_token_at: float | None = None
        self.input_tokens: int | None = None
        self.output_tokens: int | None = None
        self.model: str | None = None
        self.saw_done = False

    @property
    def complete(self) -> bool:
        return self.saw_done or self.finish_reason is not None

    def partial_text(self) -> str:
        return "".join(self._parts) or "".join(self._refusal)

    def feed(self, event: SSEEvent) -> None:
        if self.saw_done:
            return
        data = event.data
        if data.strip() == "[DONE]":
            self.saw_done = True
            return
        try:
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise malformed(
                self._label,
                self._url,
                "an undecodable stream frame",
                data,
                partial=self.partial_text(),
            ) from None
        if not isinstance(chunk, dict):
            raise malformed(
                self._label,
                self._url,
                "a stream frame that is not an object",
                data,
                partial=self.partial_text(),
            )
        if chunk.get("error") is not None or event.event == "error":
            raise error_for_payload(
                chunk, label=self._label, url=self._url, partial_output=self.partial_text()
            )
        if isinstance(chunk.get("model"), str):
            self.model = chunk["model"]
        if chunk.get("usage"):
            self.input_tokens, self.output_tokens = usage_tokens(chunk["usage"])
        choices = chunk.get("choices")
        if choices is None:
            choices = []
        if not isinstance(choices, list):
            raise malformed(
                self._label,
                self._url,
                "a stream frame with unreadable choices",
                data,
                partial=self.partial_text(),
            )
        for choice in choices:
            if not isinstance(choice, dict):
                raise malformed(
                    self._label,
                    self._url,
                    "a stream frame with unreadable choices",
                    data,
                    partial=self.partial_text(),
                )
            if choice.get("index", 0) == 0:
                self._choice(choice, data)

    def _choice(self, choice: dict[str, Any], data: str) -> None:
        delta = choice.get("delta") or {}
        if not isinstance(delta, dict):
            raise malformed(
                self._label,
                self._url,
                "a stream frame with an unreadable delta",
                data,
                partial=self.partial_text(),
            )
        got_token = False
        content = delta.get("content")
        if isinstance(content, str) and content:
            self._parts.append(content)
            got_token = True
        refusal = delta.get("refusal")
        if isinstance(refusal, str) and refusal:
            self._refusal.append(refusal)
            got_token = True
        for position, raw in enumerate(delta.get("tool_calls") or ()):
            if not isinstance(raw, dict):
                raise malformed(
                    self._label,
                    self._url,
                    "an unreadable tool-call delta",
                    data,
                    partial=self.partial_text(),
                )
            index = raw.get("index", position)
            call = self._calls.setdefault(
                index if isinstance(index, int) else position, _PartialCall()
            )
            call.add(raw)
            got_token = True
        if got_token and self.first_token_at is None:
            self.first_token_at = time.perf_counter()
        finish = choice.get("finish_reason")
        if finish is not None:
            self.finish_reason = str(finish)

    def observation(
        self, label: str, *, status: int, latency_ms: float, ttft_ms: float | None
    ) -> Observation:
        calls = tuple(self._calls[index].to_tool_call(index) for index in sorted(self._calls))
        text = self.partial_text()
        return Observation(
            target=label,
            output=text if text or not calls else None,
            tool_calls=calls,
            finish_reason=self.finish_reason,
            status_code=status,
            latency_ms=latency_ms,
            ttft_ms=ttft_ms,
            input_tokens=self.input_tokens,
            output_tokens=self.output_tokens,
            model=self.model,
        )


class _PartialCall:
    """A tool call whose name and arguments arrive in fragments."""

    __slots__ = ("args", "id", "name")

    def __init__(self) -> None:
        self.id = ""
        self.name = ""
        self.args: list[str] = []

    def add(self, raw: Mapping[str, Any]) -> None:
        if isinstance(raw.get("id"), str) and raw["id"]:
            self.id = raw["id"]
        function = raw.get("function") or {}
        if not isinstance(function, Mapping):
            return
        name = function.get("name")
        if isinstance(name, str) and name and name != self.name:
            # Servers send the name once; a few repeat it or split it.
            self.name = name if name.startswith(self.name) else self.name + name
        arguments = function.get("arguments")
        if isinstance(arguments, str):
            self.args.append(arguments)
        elif arguments is not None:
            self.args.append(orjson.dumps(arguments).decode())

    def to_tool_call(self, index: int) -> ToolCall:
        return ToolCall(id=self.id or f"call_{index}", name=self.name, arguments="".join(self.args))


def observation_from_completion(
    data: Any, *, label: str, url: str, status: int, latency_ms: float
) -> Observation:
    """A chat.completion body as an Observation; raises a ``ProviderError`` when it is not one."""
    if not isinstance(data, dict):
        raise malformed(label, url, "a response that is not a JSON object", orjson.dumps(data))
    if data.get("error") is not None and not data.get("choices"):
        raise error_for_payload(data, label=label, url=url)
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise malformed(label, url, "a response without choices", orjson.dumps(data))
    choice = choices[0]
    message = choice.get("message")
    if not isinstance(message, dict):
        raise malformed(label, url, "a choice without a message", orjson.dumps(data))
    text = _content_text(message.get("content"))
    if text is None:
        raise malformed(label, url, "a message with unreadable content", orjson.dumps(data))
    refusal = message.get("refusal")
    if not text and isinstance(refusal, str):
        text = refusal
    calls = []
    for position, raw in enumerate(message.get("tool_calls") or ()):
        call = _tool_call(raw, position)
        if call is None:
            raise malformed(label, url, "an unreadable tool call", orjson.dumps(data))
        calls.append(call)
    input_tokens, output_tokens = usage_tokens(data.get("usage"))
    finish = choice.get("finish_reason")
    return Observation(
        target=label,
        output=text if text or not calls else None,
        tool_calls=tuple(calls),
        finish_reason=str(finish) if finish is not None else None,
        status_code=status,
        latency_ms=latency_ms,
        ttft_ms=None,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        model=_str_or_none(data.get("model")),
    )


def _content_text(content: Any) -> str | None:
    """The text of a message's content (string, null, or a list of parts)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        pieces = []
        for part in content:
            if isinstance(part, Mapping) and isinstance(part.get("text"), str):
                pieces.append(part["text"])
            elif isinstance(part, str):
                pieces.append(part)
        return "".join(pieces)
    return None


def _tool_call(raw: Any, position: int) -> ToolCall | None:
    if not isinstance(raw, Mapping):
        return None
    function = raw.get("function")
    if not isinstance(function, Mapping) or not isinstance(function.get("name"), str):
        return None
    arguments = function.get("arguments")
    if arguments is None:
        arguments = ""
    elif not isinstance(arguments, str):
        arguments = orjson.dumps(arguments).decode()
    call_id = raw.get("id")
    return ToolCall(
        id=call_id if isinstance(call_id, str) and call_id else f"call_{position}",
        name=function["name"],
        arguments=arguments,
    )


def usage_tokens(usage: Any) -> tuple[int | None, int | None]:
    if not isinstance(usage, Mapping):
        return None, None
    prompt = usage.get("prompt_tokens", usage.get("input_tokens"))
    completion = usage.get("completion_tokens", usage.get("output_tokens"))
    return (
        prompt if isinstance(prompt, int) else None,
        completion if isinstance(completion, int) else None,
    )


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def stream_assembler(label: str, url: str) -> _ChunkAssembler:
    """A fresh assembler for one stream of this dialect (see ``observation_from_sse``)."""
    return _ChunkAssembler(label, url)


__all__ = [
    "DEFAULT_KEY_ENV",
    "OFFICIAL_BASE_URL",
    "OpenAIProvider",
    "observation_from_completion",
    "stream_assembler",
    "usage_tokens",
]
