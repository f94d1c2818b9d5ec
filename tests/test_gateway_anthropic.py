"""The gateway's Anthropic side over real sockets, driven by the official SDKs.

``POST /v1/messages`` pass-through to an ``anthropic:`` arm (the local
Anthropic wire server), and cross-dialect both ways: an ``anthropic`` client
on an ``openai:`` arm and an ``openai`` client on an ``anthropic:`` arm.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import anthropic
import openai
import pytest

from cutover.gateway import Gateway, GatewayConfig
from cutover.testing import AnthropicServer, Fault, OpenAIServer, serve_app

KEY = "sk-client-1"
CLAUDE = "claude-haiku-4-5"
CLAUDE_2 = "claude-sonnet-4-5"
GPT = "gpt-4o-mini"
WEATHER_TOOL: Any = {
    "name": "get_weather",
    "description": "Weather for a city.",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}
WEATHER_FUNCTION: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city.",
        "parameters": WEATHER_TOOL["input_schema"],
    },
}


def config(baseline: str, candidate: str | None = None, **route: Any) -> GatewayConfig:
    entry: dict[str, Any] = {"baseline": baseline, "sticky": "user", **route}
    if candidate is not None:
        entry["candidate"] = candidate
    return GatewayConfig.model_validate({"client_keys": [KEY], "routes": {"support-bot": entry}})


@asynccontextmanager
async def gateway(cfg: GatewayConfig, **kwargs: Any) -> AsyncIterator[str]:
    async with serve_app(Gateway(cfg, env={}, **kwargs).app()) as root:
        yield root


def body_of(exc: anthropic.APIStatusError) -> Any:
    return exc.body


def claude_client(root: str, key: str = KEY) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=root, api_key=key, max_retries=0, timeout=10)


def openai_client(root: str, key: str = KEY) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{root}/v1", api_key=key, max_retries=0, timeout=10)


@pytest.fixture
async def claude_up() -> AsyncIterator[AnthropicServer]:
    async with AnthropicServer() as server:
        yield server


@pytest.fixture
async def openai_up() -> AsyncIterator[OpenAIServer]:
    async with OpenAIServer() as server:
        yield server


def to_claude(server: AnthropicServer, model: str = CLAUDE) -> str:
    return f"anthropic:{model}@{server.base_url}"


def to_openai(server: OpenAIServer, model: str = GPT) -> str:
    return f"openai:{model}@{server.base_url}"


ASK: Any = [{"role": "user", "content": "Where is my order?"}]


# -- Anthropic client -> anthropic arm (pass-through) ---------------------------


async def test_messages_non_stream_pass_through(claude_up: AnthropicServer) -> None:
    cfg = config(to_claude(claude_up), to_claude(claude_up, CLAUDE_2), allow=["qa"])
    async with gateway(cfg) as root:
        raw = await claude_client(root).messages.with_raw_response.create(
            model="support-bot",
            max_tokens=100,
            system="Be brief.",
            messages=ASK,
            metadata={"user_id": "alice"},
            extra_body={"top_k": 5},
        )
        message = await raw.parse()
        pinned = await claude_client(root).messages.with_raw_response.create(
            model="support-bot", max_tokens=100, messages=ASK, metadata={"user_id": "qa"}
        )
    assert raw.headers["x-cutover-arm"] == "baseline"
    assert raw.headers["x-cutover-request-id"].startswith("req_")
    assert message.model == CLAUDE
    assert message.content[0].type == "text"
    assert message.content[0].text == "Reply to: Where is my order?"
    assert message.stop_reason == "end_turn"
    assert pinned.headers["x-cutover-arm"] == "candidate"
    assert (await pinned.parse()).model == CLAUDE_2
    sent = claude_up.received[0]
    assert sent.body["model"] == CLAUDE and sent.body["top_k"] == 5
    assert sent.body["system"] == "Be brief."
    assert sent.headers["anthropic-version"]
    assert "x-api-key" not in sent.headers  # no upstream key in the environment


async def test_messages_stream_pass_through(claude_up: AnthropicServer) -> None:
    async with (
        gateway(config(to_claude(claude_up))) as root,
        claude_client(root).messages.stream(
            model="support-bot",
            max_tokens=200,
            messages=[{"role": "user", "content": "Tell me a fairly long story about shipping."}],
        ) as stream,
    ):
        pieces = [text async for text in stream.text_stream]
        final = await stream.get_final_message()
    assert len(pieces) > 1
    assert "".join(pieces) == "Reply to: Tell me a fairly long story about shipping."
    assert final.model == CLAUDE and final.stop_reason == "end_turn"
    assert final.usage.output_tokens > 0
    assert claude_up.last_request.body["stream"] is True


async def test_messages_tools_pass_through(claude_up: AnthropicServer) -> None:
    async with gateway(config(to_claude(claude_up))) as root:
        c = claude_client(root)
        message = await c.messages.create(
            model="support-bot",
            max_tokens=100,
            tools=[WEATHER_TOOL],
            messages=[{"role": "user", "content": "get_weather for Paris please"}],
        )
        async with c.messages.stream(
            model="support-bot",
            max_tokens=100,
            tools=[WEATHER_TOOL],
            messages=[{"role": "user", "content": "get_weather for Paris please"}],
        ) as stream:
            streamed = await stream.get_final_message()
    for answer in (message, streamed):
        assert answer.stop_reason == "tool_use"
        call = next(b for b in answer.content if b.type == "tool_use")
        assert call.name == "get_weather" and isinstance(call.input, dict)
        assert "city" in call.input


# -- Anthropic client -> openai arm (translated) ----------------------------------


async def test_anthropic_client_on_openai_arm_non_stream(openai_up: OpenAIServer) -> None:
    async with gateway(config(to_openai(openai_up))) as root:
        raw = await claude_client(root).messages.with_raw_response.create(
            model="support-bot",
            max_tokens=64,
            system="Be brief.",
            messages=ASK,
            stop_sequences=["END"],
            metadata={"user_id": "alice"},
        )
        message = await raw.parse()
    assert raw.headers["x-cutover-arm"] == "baseline"
    assert message.type == "message" and message.role == "assistant"
    assert message.model == GPT
    assert message.content[0].type == "text"
    assert message.content[0].text == "Reply to: Where is my order?"
    assert message.stop_reason == "end_turn"
    assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0
    sent = openai_up.last_request.body
    assert sent["model"] == GPT
    assert sent["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Where is my order?"},
    ]
    assert sent["max_tokens"] == 64 and sent["stop"] == ["END"] and sent["user"] == "alice"


async def test_anthropic_client_on_openai_arm_stream(openai_up: OpenAIServer) -> None:
    async with (
        gateway(config(to_openai(openai_up))) as root,
        claude_client(root).messages.stream(
            model="support-bot",
            max_tokens=200,
            messages=[{"role": "user", "content": "Tell me a fairly long story about shipping."}],
        ) as stream,
    ):
        pieces = [text async for text in stream.text_stream]
        final = await stream.get_final_message()
    assert len(pieces) > 1
    assert "".join(pieces) == "Reply to: Tell me a fairly long story about shipping."
    assert final.model == GPT and final.stop_reason == "end_turn"
    assert final.usage.output_tokens > 0
    assert openai_up.last_request.body["stream_options"] == {"include_usage": True}


async def test_anthropic_client_on_openai_arm_tools_round_trip(openai_up: OpenAIServer) -> None:
    ask: Any = [{"role": "user", "content": "get_weather for Paris please"}]
    async with gateway(config(to_openai(openai_up))) as root:
        c = claude_client(root)
        message = await c.messages.create(
            model="support-bot",
            max_tokens=100,
            tools=[WEATHER_TOOL],
            tool_choice={"type": "any", "disable_parallel_tool_use": True},
            messages=ask,
        )
        async with c.messages.stream(
            model="support-bot", max_tokens=100, tools=[WEATHER_TOOL], messages=ask
        ) as stream:
            events = [event.type async for event in stream]
            streamed = await stream.get_final_message()
        call = next(b for b in message.content if b.type == "tool_use")
        # The tool result goes back; the upstream answers quoting it.
        history: Any = [
            *ask,
            {"role": "assistant", "content": [call.model_dump(exclude_none=True)]},
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": call.id, "content": "18C, sunny"}
                ],
            },
        ]
        follow_up = await c.messages.create(
            model="support-bot", max_tokens=100, tools=[WEATHER_TOOL], messages=history
        )
    for answer in (message, streamed):
        assert answer.stop_reason == "tool_use"
        tool_use = next(b for b in answer.content if b.type == "tool_use")
        assert tool_use.name == "get_weather" and "city" in tool_use.input
    assert "input_json" in events and "content_block_start" in events
    sent_first = openai_up.received[0].body
    assert sent_first["tools"] == [WEATHER_FUNCTION]
    assert sent_first["tool_choice"] == "required" and sent_first["parallel_tool_calls"] is False
    sent = openai_up.last_request.body["messages"]
    assert sent[1]["tool_calls"][0]["id"] == call.id
    assert json.loads(sent[1]["tool_calls"][0]["function"]["arguments"]) == call.input
    assert sent[2] == {"role": "tool", "tool_call_id": call.id, "content": "18C, sunny"}
    assert follow_up.content[0].type == "text"
    assert "18C, sunny" in follow_up.content[0].text


# -- OpenAI client -> anthropic arm (translated) ------------------------------------


async def test_openai_client_on_anthropic_arm_non_stream(claude_up: AnthropicServer) -> None:
    async with gateway(config(to_claude(claude_up))) as root:
        raw = await openai_client(root).chat.completions.with_raw_response.create(
            model="support-bot",
            messages=[
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Where is my order?"},
            ],
            stop="END",
            user="alice",
        )
        completion = raw.parse()
    assert raw.headers["x-cutover-arm"] == "baseline"
    assert completion.object == "chat.completion" and completion.model == CLAUDE
    assert completion.choices[0].message.content == "Reply to: Where is my order?"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and completion.usage.total_tokens > 0
    sent = claude_up.last_request.body
    assert sent["model"] == CLAUDE and sent["system"] == "Be brief."
    assert sent["max_tokens"] == 1024  # Anthropic requires it; OpenAI does not
    assert sent["stop_sequences"] == ["END"]
    assert sent["metadata"] == {"user_id": "alice"}


async def test_openai_client_on_anthropic_arm_stream(claude_up: AnthropicServer) -> None:
    async with gateway(config(to_claude(claude_up))) as root:
        stream = await openai_client(root).chat.completions.create(
            model="support-bot",
            messages=[{"role": "user", "content": "Tell me a fairly long story about shipping."}],
            stream=True,
            stream_options={"include_usage": True},
        )
        assert stream.response.headers["x-cutover-arm"] == "baseline"
        chunks = [chunk async for chunk in stream]
    pieces = [
        c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content
    ]
    assert len(pieces) > 1
    assert "".join(pieces) == "Reply to: Tell me a fairly long story about shipping."
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "stop"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    assert {c.model for c in chunks} == {CLAUDE}


async def test_openai_client_on_anthropic_arm_tools(claude_up: AnthropicServer) -> None:
    ask: Any = [{"role": "user", "content": "get_weather for Paris please"}]
    async with gateway(config(to_claude(claude_up))) as root:
        c = openai_client(root)
        completion = await c.chat.completions.create(
            model="support-bot", messages=ask, tools=[WEATHER_FUNCTION], tool_choice="required"
        )
        stream = await c.chat.completions.create(
            model="support-bot", messages=ask, tools=[WEATHER_FUNCTION], stream=True
        )
        chunks = [chunk async for chunk in stream]
        call = completion.choices[0].message.tool_calls[0]  # type: ignore[index]
        follow_up = await c.chat.completions.create(
            model="support-bot",
            tools=[WEATHER_FUNCTION],
            messages=[
                *ask,
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [call.model_dump()],  # type: ignore[list-item]
                },
                {"role": "tool", "tool_call_id": call.id, "content": "18C, sunny"},
            ],
        )
    assert completion.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "get_weather"  # type: ignore[union-attr]
    assert "city" in json.loads(call.function.arguments)  # type: ignore[union-attr]
    sent_first = claude_up.received[0].body
    assert sent_first["tools"] == [WEATHER_TOOL] and sent_first["tool_choice"] == {"type": "any"}
    # Streamed tool call: its id and name first, then the arguments in pieces.
    deltas = [tc for c in chunks if c.choices for tc in c.choices[0].delta.tool_calls or ()]
    assert deltas[0].id and deltas[0].function and deltas[0].function.name == "get_weather"
    arguments = "".join(d.function.arguments or "" for d in deltas if d.function)
    assert "city" in json.loads(arguments)
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"
    sent = claude_up.last_request.body["messages"]
    assert sent[1]["content"][0]["type"] == "tool_use" and sent[1]["content"][0]["id"] == call.id
    assert sent[2]["content"][0] == {
        "type": "tool_result",
        "tool_use_id": call.id,
        "content": "18C, sunny",
    }
    assert "18C, sunny" in (follow_up.choices[0].message.content or "")


# -- errors ---------------------------------------------------------------------------


async def test_anthropic_errors_shaped_for_the_sdk(claude_up: AnthropicServer) -> None:
    async with gateway(config(to_claude(claude_up))) as root:
        with pytest.raises(anthropic.AuthenticationError) as bad_key:
            await claude_client(root, key="nope").messages.create(
                model="support-bot", max_tokens=10, messages=ASK
            )
        with pytest.raises(anthropic.NotFoundError) as unknown:
            await claude_client(root).messages.create(
                model="support-box", max_tokens=10, messages=ASK
            )
        async with aiohttp.ClientSession() as http:
            bad_json = await http.post(
                f"{root}/v1/messages", data=b"{nope", headers={"x-api-key": KEY}
            )
            no_max = await http.post(
                f"{root}/v1/messages",
                json={"model": "support-bot", "messages": ASK},
                headers={"Authorization": f"Bearer {KEY}", "anthropic-version": "2023-06-01"},
            )
            bad_json_body, no_max_body = await bad_json.json(), await no_max.json()
    assert bad_key.value.status_code == 401
    assert bad_key.value.body == {
        "type": "error",
        "error": {
            "type": "authentication_error",
            "message": body_of(bad_key.value)["error"]["message"],
        },
    }
    assert bad_key.value.response.headers["x-cutover-arm"] == "none"
    assert unknown.value.status_code == 404
    assert "support-bot" in unknown.value.message
    assert body_of(unknown.value)["error"]["type"] == "not_found_error"
    assert bad_json.status == 400 and bad_json_body["type"] == "error"
    assert bad_json_body["error"]["type"] == "invalid_request_error"
    assert no_max.status == 400 and "max_tokens" in no_max_body["error"]["message"]


async def test_oversized_messages_body_is_413(claude_up: AnthropicServer) -> None:
    async with gateway(config(to_claude(claude_up)), max_body_bytes=1000) as root:
        with pytest.raises(anthropic.APIStatusError) as err:
            await claude_client(root).messages.create(
                model="support-bot",
                max_tokens=10,
                messages=[{"role": "user", "content": "x" * 5000}],
            )
    assert err.value.status_code == 413
    assert body_of(err.value)["error"]["type"] == "request_too_large"


async def test_upstream_faults_mapped_for_anthropic_clients(
    claude_up: AnthropicServer, openai_up: OpenAIServer
) -> None:
    cfg = config(to_claude(claude_up), to_openai(openai_up), allow=["qa"], retries=0)
    async with gateway(cfg) as root:
        c = claude_client(root)
        claude_up.inject(Fault.status(429, retry_after=3))
        with pytest.raises(anthropic.RateLimitError) as limited:
            await c.messages.create(model="support-bot", max_tokens=10, messages=ASK)
        openai_up.inject(Fault.status(500))  # an OpenAI error, reworded for Anthropic
        with pytest.raises(anthropic.InternalServerError) as failed:
            await c.messages.create(
                model="support-bot", max_tokens=10, messages=ASK, metadata={"user_id": "qa"}
            )
        claude_up.inject(Fault.status(401))  # the gateway's provider key is wrong
        with pytest.raises(anthropic.APIStatusError) as auth:
            await c.messages.create(model="support-bot", max_tokens=10, messages=ASK)
        claude_up.inject(Fault.half_stream(after_chunks=2))
        with pytest.raises(anthropic.APIError):
            async with c.messages.stream(
                model="support-bot", max_tokens=100, messages=ASK
            ) as stream:
                async for _ in stream.text_stream:
                    pass
        openai_up.inject(Fault.half_stream(after_chunks=2))
        with pytest.raises(anthropic.APIError):
            async with c.messages.stream(
                model="support-bot", max_tokens=100, messages=ASK, metadata={"user_id": "qa"}
            ) as stream:
                async for _ in stream.text_stream:
                    pass
    assert limited.value.response.headers["retry-after"] == "3"
    assert body_of(limited.value)["type"] == "error"
    assert failed.value.status_code == 500
    assert body_of(failed.value)["type"] == "error"
    assert failed.value.response.headers["x-cutover-arm"] == "candidate"
    assert auth.value.status_code == 502


async def test_unreachable_and_timeout_for_anthropic_clients() -> None:
    cfg = config("anthropic:claude-haiku-4-5@http://127.0.0.1:9")
    async with gateway(cfg) as root:
        with pytest.raises(anthropic.APIStatusError) as down:
            await claude_client(root).messages.create(
                model="support-bot", max_tokens=10, messages=ASK
            )
    assert down.value.status_code == 502
    async with AnthropicServer() as slow:
        slow.inject(Fault.hang())
        target = {"target": to_claude(slow), "timeout_s": 0.3}
        async with gateway(config(target)) as root:  # type: ignore[arg-type]
            with pytest.raises(anthropic.APIStatusError) as late:
                await claude_client(root).messages.create(
                    model="support-bot", max_tokens=10, messages=ASK
                )
    assert late.value.status_code == 504
    assert body_of(late.value)["error"]["type"] == "timeout_error"


async def test_openai_client_gets_openai_errors_from_anthropic_arm(
    claude_up: AnthropicServer,
) -> None:
    async with gateway(config(to_claude(claude_up), retries=0)) as root:
        claude_up.inject(Fault.status(429))
        with pytest.raises(openai.RateLimitError):
            await openai_client(root).chat.completions.create(model="support-bot", messages=ASK)
        with pytest.raises(openai.BadRequestError) as bad:
            await openai_client(root).chat.completions.create(
                model="support-bot",
                messages=[{"role": "function", "name": "f", "content": "x"}],
            )
    assert "function" in bad.value.message


async def test_messages_fall_back_across_dialects_and_retry(claude_up: AnthropicServer) -> None:
    async with OpenAIServer() as gpt_up:
        cfg = config(
            f"anthropic:{CLAUDE}@{claude_up.base_url}",
            f"openai:{GPT}@{gpt_up.base_url}",
            weight=100,
            retries=1,
            retry_max_wait_s=0.2,
            fallback=True,
        )
        async with gateway(cfg) as root:
            c = claude_client(root)
            gpt_up.inject(Fault.status(503), times=2)  # the retry fails too: fall back
            raw = await c.messages.with_raw_response.create(
                model="support-bot", max_tokens=32, messages=[{"role": "user", "content": "hi"}]
            )
            message = await raw.parse()
            assert message.model == CLAUDE and message.content
            assert raw.headers["x-cutover-arm"] == "candidate"
            assert raw.headers["x-cutover-fallback"] == "baseline"
            assert (gpt_up.requests_total, claude_up.requests_total) == (2, 1)
            gpt_up.inject(Fault.status(503))  # one failure: the retry answers, no fallback
            async with c.messages.stream(
                model="support-bot", max_tokens=32, messages=[{"role": "user", "content": "hi"}]
            ) as stream:
                assert await stream.get_final_text()
            assert (gpt_up.requests_total, claude_up.requests_total) == (4, 1)
