"""AnthropicProvider against the local Anthropic wire server on a real port."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from cutover.errors import (
    MalformedResponseError,
    MissingKeyError,
    ProviderAuthError,
    ProviderConnectionError,
    ProviderError,
    ProviderRequestError,
    ProviderServerError,
    ProviderTimeoutError,
    RateLimitedError,
)
from cutover.providers import create_provider
from cutover.providers.anthropic import (
    AnthropicProvider,
    translate_messages,
    translate_tool_choice,
)
from cutover.records import ModelRequest
from cutover.targets import Target, parse_target
from cutover.testing import AnthropicServer, Fault

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
            "required": ["city"],
        },
    },
}
LONG = "Tell me a rather long story about three cats and a dog in Oslo"


@pytest.fixture(autouse=True)
def _no_ambient_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)


@pytest.fixture
async def server() -> AsyncIterator[AnthropicServer]:
    async with AnthropicServer() as srv:
        yield srv


def target_for(srv: AnthropicServer, *, stream: bool = True, **extra: Any) -> Target:
    return parse_target(f"anthropic:claude-local@{srv.base_url}", stream=stream, **extra)


async def call(target: Target, request: ModelRequest) -> Any:
    async with AnthropicProvider(target) as provider:
        return await provider.complete(request)


def ask(text: str, **kwargs: Any) -> ModelRequest:
    return ModelRequest(messages=[{"role": "user", "content": text}], **kwargs)


# -- answers --------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
async def test_text_answer_system_and_headers(
    server: AnthropicServer, stream: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "ak-1")
    request = ModelRequest(
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": LONG},
        ]
    )
    obs = await call(target_for(server, stream=stream, name="new"), request)
    assert obs.ok
    assert obs.target == "new"
    assert obs.output == f"Reply to: {LONG}"
    assert obs.finish_reason == "stop"  # end_turn mapped to the OpenAI vocabulary
    assert obs.model == "claude-local"
    assert obs.input_tokens == -(-len("Be brief." + LONG) // 4)
    assert obs.output_tokens == -(-len(obs.output) // 4)
    received = server.last_request
    assert received.path == "/v1/messages"
    assert received.headers["x-api-key"] == "ak-1"
    assert received.headers["anthropic-version"] == "2023-06-01"
    body = received.body
    assert body["system"] == "Be brief."
    assert body["messages"] == [{"role": "user", "content": LONG}]
    assert body["max_tokens"] == 1024
    assert body.get("stream") is (True if stream else None)
    if stream:
        assert obs.ttft_ms is not None and 0 < obs.ttft_ms <= obs.latency_ms
    else:
        assert obs.ttft_ms is None


async def test_stream_measures_ttft() -> None:
    async with AnthropicServer(latency_s=0.3, ttft_fraction=0.5) as srv:
        obs = await call(target_for(srv), ask(LONG))
    assert obs.ttft_ms is not None and obs.latency_ms is not None
    assert 140 <= obs.ttft_ms < 280
    assert obs.latency_ms >= 290


@pytest.mark.parametrize("base_suffix", ["", "/", "/v1", "/v1/"])
async def test_base_url_with_or_without_v1(server: AnthropicServer, base_suffix: str) -> None:
    target = parse_target(f"anthropic:claude-local@{server.base_url}{base_suffix}")
    obs = await call(target, ask("hi"))
    assert obs.output == "Reply to: hi"
    assert server.last_request.path == "/v1/messages"


async def test_params_translated_and_openai_only_ones_dropped(server: AnthropicServer) -> None:
    params = {
        "temperature": 0.1,
        "top_p": 0.8,
        "top_k": 40,
        "max_completion_tokens": 77,
        "stop": "END",
        "seed": 3,
        "frequency_penalty": 0.5,
        "user": "u-42",
        "metadata_extra": {"x": 1},
    }
    schema = {"type": "json_object"}
    await call(target_for(server), ask("hi", params=params, response_format=schema))
    body = server.last_request.body
    assert body["temperature"] == 0.1
    assert body["top_p"] == 0.8
    assert body["top_k"] == 40
    assert body["max_tokens"] == 77
    assert body["stop_sequences"] == ["END"]
    assert body["metadata"] == {"user_id": "u-42"}
    assert body["metadata_extra"] == {"x": 1}  # unknown keys pass through
    for dropped in ("seed", "frequency_penalty", "max_completion_tokens", "stop", "user"):
        assert dropped not in body
    assert "response_format" not in body


async def test_max_tokens_maps_to_length_and_stop_to_stop(server: AnthropicServer) -> None:
    obs = await call(target_for(server), ask(LONG, params={"max_tokens": 2}))
    assert obs.finish_reason == "length"
    assert obs.output == "Reply to"
    obs = await call(target_for(server, stream=False), ask(LONG, params={"stop": ["cats", "dog"]}))
    assert obs.finish_reason == "stop"
    assert obs.output == "Reply to: Tell me a rather long story about three "


@pytest.mark.parametrize("stream", [False, True])
async def test_tool_use_comes_back_as_tool_calls(server: AnthropicServer, stream: bool) -> None:
    request = ask("Please call get_weather for Oslo", tools=[WEATHER], tool_choice="auto")
    obs = await call(target_for(server, stream=stream), request)
    assert obs.finish_reason == "tool_calls"
    assert obs.output is None
    assert len(obs.tool_calls) == 1
    tc = obs.tool_calls[0]
    assert tc.name == "get_weather"
    assert json.loads(tc.arguments) == {"city": "Oslo", "days": 5}
    assert tc.id.startswith("toolu_")
    body = server.last_request.body
    assert body["tools"] == [
        {
            "name": "get_weather",
            "description": "Weather for a city",
            "input_schema": WEATHER["function"]["parameters"],  # type: ignore[index]
        }
    ]
    assert body["tool_choice"] == {"type": "auto"}


async def test_forced_tool_choice_is_translated(server: AnthropicServer) -> None:
    choice = {"type": "function", "function": {"name": "get_weather"}}
    obs = await call(
        target_for(server), ask("nothing named here", tools=[WEATHER], tool_choice=choice)
    )
    assert server.last_request.body["tool_choice"] == {"type": "tool", "name": "get_weather"}
    assert [tc.name for tc in obs.tool_calls] == ["get_weather"]
    obs = await call(
        target_for(server), ask("get_weather please", tools=[WEATHER], tool_choice="none")
    )
    assert server.last_request.body["tool_choice"] == {"type": "none"}
    assert obs.tool_calls == ()


async def test_tool_history_translated_to_tool_use_and_tool_result(
    server: AnthropicServer,
) -> None:
    messages = [
        {"role": "system", "content": "You are a weather bot."},
        {"role": "user", "content": "Weather in Oslo and Rome?"},
        {
            "role": "assistant",
            "content": "Let me check.",
            "tool_calls": [
                {
                    "id": "call_a",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
                },
                {
                    "id": "call_b",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Rome"}'},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "call_a", "content": "snow"},
        {"role": "tool", "tool_call_id": "call_b", "content": "sun"},
    ]
    obs = await call(target_for(server), ModelRequest(messages=messages, tools=[WEATHER]))
    body = server.last_request.body
    assert body["system"] == "You are a weather bot."
    assert body["messages"] == [
        {"role": "user", "content": "Weather in Oslo and Rome?"},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Let me check."},
                {
                    "type": "tool_use",
                    "id": "call_a",
                    "name": "get_weather",
                    "input": {"city": "Oslo"},
                },
                {
                    "type": "tool_use",
                    "id": "call_b",
                    "name": "get_weather",
                    "input": {"city": "Rome"},
                },
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "call_a", "content": "snow"},
                {"type": "tool_result", "tool_use_id": "call_b", "content": "sun"},
            ],
        },
    ]
    # the server read the tool results back out of the translated request
    assert obs.output == "Based on the tool result: snow\nsun"


def test_translate_helpers() -> None:
    system, messages = translate_messages(
        [
            {"role": "developer", "content": [{"type": "text", "text": "A"}]},
            {"role": "system", "content": "B"},
            {"role": "user", "content": "one"},
            {"role": "user", "content": "two"},
            {
                "role": "user",
                "content": [
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
                ],
            },
        ]
    )
    assert system == "A\n\nB"
    assert messages == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "one"},
                {"type": "text", "text": "two"},
                {
                    "type": "image",
                    "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"},
                },
            ],
        }
    ]
    assert translate_tool_choice("required") == {"type": "any"}
    assert translate_tool_choice("auto", parallel_tool_calls=False) == {
        "type": "auto",
        "disable_parallel_tool_use": True,
    }
    assert translate_tool_choice(None) is None
    with pytest.raises(ProviderRequestError, match="not JSON"):
        translate_messages(
            [
                {
                    "role": "assistant",
                    "tool_calls": [{"id": "x", "function": {"name": "f", "arguments": "{oops"}}],
                }
            ]
        )


def test_missing_key_for_official_base_url() -> None:
    with pytest.raises(MissingKeyError, match="ANTHROPIC_API_KEY"):
        AnthropicProvider(parse_target("anthropic:claude-sonnet-4-5"))
    with pytest.raises(MissingKeyError, match="CLAUDE_KEY"):
        create_provider(parse_target("anthropic:claude-x", api_key_env="CLAUDE_KEY"))


def test_official_base_url_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "ak")
    provider = AnthropicProvider(parse_target("anthropic:claude-x"))
    assert provider.url == "https://api.anthropic.com/v1/messages"


async def test_no_key_on_custom_base_url_sends_no_key_header(server: AnthropicServer) -> None:
    await call(target_for(server), ask("hi"))
    assert "x-api-key" not in server.last_request.headers


# -- faults ---------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
async def test_429_carries_retry_after(server: AnthropicServer, stream: bool) -> None:
    server.inject(Fault.status(429, retry_after=3))
    with pytest.raises(RateLimitedError) as err:
        await call(target_for(server, stream=stream), ask("hi"))
    assert err.value.retry_after_s == 3.0
    assert "rate_limit_error" in err.value.message


@pytest.mark.parametrize(
    ("code", "cls"),
    [
        (529, ProviderServerError),
        (500, ProviderServerError),
        (400, ProviderRequestError),
        (404, ProviderRequestError),
        (403, ProviderAuthError),
    ],
)
async def test_status_faults(server: AnthropicServer, code: int, cls: type[ProviderError]) -> None:
    server.inject(Fault.status(code))
    with pytest.raises(cls) as err:
        await call(target_for(server), ask("hi"))
    assert type(err.value) is cls
    assert err.value.status_code == code
    if code == 529:
        assert "overloaded_error: Overloaded" in err.value.message


async def test_wrong_key_is_auth_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "wrong")
    async with AnthropicServer(api_key="right") as srv:
        with pytest.raises(ProviderAuthError, match="authentication_error"):
            await call(target_for(srv), ask("hi"))


@pytest.mark.parametrize("stream", [False, True])
async def test_garbage_is_malformed(server: AnthropicServer, stream: bool) -> None:
    server.inject(Fault.garbage(b"upstream exploded"))
    with pytest.raises(MalformedResponseError, match="upstream exploded"):
        await call(target_for(server, stream=stream), ask("hi"))


@pytest.mark.parametrize("stream", [False, True])
async def test_wrong_shaped_json_is_malformed(server: AnthropicServer, stream: bool) -> None:
    server.inject(Fault.garbage(b'{"id": "msg_1", "type": "message"}', "application/json"))
    with pytest.raises(MalformedResponseError, match="without content"):
        await call(target_for(server, stream=stream), ask("hi"))


async def test_error_body_with_200_maps_by_error_type(server: AnthropicServer) -> None:
    body = b'{"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}'
    server.inject(Fault.garbage(body, "application/json"))
    with pytest.raises(ProviderServerError, match="overloaded_error"):
        await call(target_for(server, stream=False), ask("hi"))


async def test_half_stream_keeps_partial_output(server: AnthropicServer) -> None:
    server.inject(Fault.half_stream(after_chunks=5))  # start, block start, ping, 2 deltas
    with pytest.raises(MalformedResponseError) as err:
        await call(target_for(server), ask(LONG))
    partial = err.value.partial_output
    full = f"Reply to: {LONG}"
    assert partial and full.startswith(partial) and partial != full


async def test_stream_without_message_stop_is_malformed(server: AnthropicServer) -> None:
    server.inject(Fault.half_stream(after_chunks=4, clean_end=True))
    with pytest.raises(MalformedResponseError, match="end marker") as err:
        await call(target_for(server), ask(LONG))
    assert err.value.partial_output


async def test_bad_json_frame_is_malformed(server: AnthropicServer) -> None:
    server.inject(Fault.bad_json_stream_chunk(after_chunks=4))
    with pytest.raises(MalformedResponseError, match="undecodable") as err:
        await call(target_for(server), ask(LONG))
    assert err.value.partial_output


@pytest.mark.parametrize(
    ("error_type", "cls"),
    [
        (None, ProviderServerError),  # overloaded_error
        ("rate_limit_error", RateLimitedError),
        ("api_error", ProviderServerError),
    ],
)
async def test_error_event_in_stream(
    server: AnthropicServer, error_type: str | None, cls: type[ProviderError]
) -> None:
    server.inject(Fault.stream_error(error_type, after_chunks=5))
    with pytest.raises(cls) as err:
        await call(target_for(server), ask(LONG))
    assert type(err.value) is cls
    assert err.value.partial_output


@pytest.mark.parametrize("stream", [False, True])
async def test_hang_times_out(server: AnthropicServer, stream: bool) -> None:
    server.inject(Fault.hang())
    start = time.perf_counter()
    with pytest.raises(ProviderTimeoutError):
        await call(target_for(server, stream=stream, timeout_s=0.25), ask("hi"))
    assert time.perf_counter() - start < 2.0


async def test_unreachable_port() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(ProviderConnectionError) as err:
        await call(parse_target(f"anthropic:claude-x@http://127.0.0.1:{port}"), ask("hi"))
    assert f"http://127.0.0.1:{port}/v1/messages" in err.value.message


async def test_per_model_faults_only_hit_that_model(server: AnthropicServer) -> None:
    server.inject(Fault.status(529), model="claude-new")
    old = parse_target(f"anthropic:claude-old@{server.base_url}")
    new = parse_target(f"anthropic:claude-new@{server.base_url}")
    assert (await call(old, ask("hi"))).ok
    with pytest.raises(ProviderServerError):
        await call(new, ask("hi"))
    assert (await call(new, ask("hi"))).ok
    assert server.requests_by_model == {"claude-old": 1, "claude-new": 2}
    assert server.requests_total == 3
