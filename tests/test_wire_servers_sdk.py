"""The local servers speak the real wire formats: the official SDKs accept them.

Sync clients run in a worker thread (the servers live on the test's loop).
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import anthropic
import openai
import pytest

from cutover.testing import AnthropicServer, Fault, OpenAIServer, Reply, WireRequest

WEATHER_OPENAI = {
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
WEATHER_ANTHROPIC = {
    "name": "get_weather",
    "description": "Weather for a city",
    "input_schema": WEATHER_OPENAI["function"]["parameters"],  # type: ignore[index]
}


@pytest.fixture
async def oai() -> AsyncIterator[OpenAIServer]:
    async with OpenAIServer(api_key="sk-test") as server:
        yield server


@pytest.fixture
async def ant() -> AsyncIterator[AnthropicServer]:
    async with AnthropicServer(api_key="ak-test") as server:
        yield server


# -- OpenAI ---------------------------------------------------------------------


async def test_openai_sync_client_non_stream_and_models(oai: OpenAIServer) -> None:
    def call() -> tuple[Any, list[str]]:
        with openai.OpenAI(base_url=oai.base_url, api_key="sk-test", max_retries=0) as client:
            completion = client.chat.completions.create(
                model="gpt-4o-mini",
                messages=[
                    {"role": "system", "content": "Be brief."},
                    {"role": "user", "content": "What is the capital of France?"},
                ],
            )
            models = [m.id for m in client.models.list()]
        return completion, models

    completion, models = await asyncio.to_thread(call)
    assert completion.object == "chat.completion"
    assert completion.model == "gpt-4o-mini"
    choice = completion.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content == "Reply to: What is the capital of France?"
    assert choice.finish_reason == "stop"
    # usage: ceil(chars / 4) of all message text, ceil(len(reply) / 4)
    assert completion.usage is not None
    assert completion.usage.prompt_tokens == -(-len("Be brief.What is the capital of France?") // 4)
    assert completion.usage.completion_tokens == -(-len(choice.message.content) // 4)
    assert completion.usage.total_tokens == (
        completion.usage.prompt_tokens + completion.usage.completion_tokens
    )
    assert "gpt-4o-mini" in models
    assert oai.requests_total == 1  # /v1/models is not counted as a generation
    assert oai.last_request.headers["authorization"] == "Bearer sk-test"


async def test_openai_sync_client_stream_with_usage(oai: OpenAIServer) -> None:
    def call() -> list[Any]:
        with openai.OpenAI(base_url=oai.base_url, api_key="sk-test", max_retries=0) as client:
            stream = client.chat.completions.create(
                model="gpt-4o-mini",
                messages=[{"role": "user", "content": "Tell me a rather long story about cats"}],
                stream=True,
                stream_options={"include_usage": True},
            )
            return list(stream)

    chunks = await asyncio.to_thread(call)
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Reply to: Tell me a rather long story about cats"
    content_chunks = [c for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(content_chunks) > 1  # really streamed in pieces
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "stop"
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == -(-len(text) // 4)
    assert all(c.usage is None for c in chunks[:-1])


async def test_openai_async_client_tool_call_stream_helper(oai: OpenAIServer) -> None:
    async with openai.AsyncOpenAI(
        base_url=oai.base_url, api_key="sk-test", max_retries=0
    ) as client:
        async with client.chat.completions.stream(
            model="gpt-4o",
            messages=[{"role": "user", "content": "Please call get_weather for Paris"}],
            tools=[WEATHER_OPENAI],  # type: ignore[list-item]
        ) as stream:
            final = await stream.get_final_completion()
        message = final.choices[0].message
        assert final.choices[0].finish_reason == "tool_calls"
        assert message.tool_calls is not None and len(message.tool_calls) == 1
        call = message.tool_calls[0]
        assert call.function.name == "get_weather"  # type: ignore[union-attr]
        assert json.loads(call.function.arguments) == {"city": "Paris", "days": 5}  # type: ignore[union-attr]
        assert call.id.startswith("call_")

        # Non-stream, the tool result sent back: the server answers from it.
        follow = await client.chat.completions.create(
            model="gpt-4o",
            messages=[
                {"role": "user", "content": "Please call get_weather for Paris"},
                message.model_dump(exclude_none=True),  # type: ignore[list-item]
                {"role": "tool", "tool_call_id": call.id, "content": "sunny, 21C"},
            ],
            tools=[WEATHER_OPENAI],  # type: ignore[list-item]
        )
        assert follow.choices[0].message.content == "Based on the tool result: sunny, 21C"
    assert oai.requests_by_model["gpt-4o"] == 2


async def test_openai_sdk_sees_faults_as_its_own_errors(oai: OpenAIServer) -> None:
    oai.inject(Fault.status(429, retry_after=3), Fault.status(503))
    async with openai.AsyncOpenAI(
        base_url=oai.base_url, api_key="sk-test", max_retries=0
    ) as client:
        messages: Any = [{"role": "user", "content": "hi"}]
        with pytest.raises(openai.RateLimitError) as rate:
            await client.chat.completions.create(model="gpt-4o-mini", messages=messages)
        assert rate.value.response.headers["retry-after"] == "3"
        assert "Rate limit" in rate.value.message
        with pytest.raises(openai.InternalServerError):
            await client.chat.completions.create(model="gpt-4o-mini", messages=messages)
        ok = await client.chat.completions.create(model="gpt-4o-mini", messages=messages)
        assert ok.choices[0].message.content == "Reply to: hi"
    async with openai.AsyncOpenAI(base_url=oai.base_url, api_key="wrong", max_retries=0) as bad:
        with pytest.raises(openai.AuthenticationError):
            await bad.chat.completions.create(model="gpt-4o-mini", messages=messages)


async def test_openai_response_format_json_schema_is_honoured(oai: OpenAIServer) -> None:
    schema = {
        "type": "object",
        "properties": {
            "sentiment": {"enum": ["positive", "negative"]},
            "score": {"type": "number"},
        },
    }
    async with openai.AsyncOpenAI(
        base_url=oai.base_url, api_key="sk-test", max_retries=0
    ) as client:
        completion = await client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "I love it"}],
            response_format={
                "type": "json_schema",
                "json_schema": {"name": "s", "schema": schema},
            },
        )
    assert json.loads(completion.choices[0].message.content or "") == {
        "sentiment": "positive",
        "score": 3.0,
    }


# -- Anthropic ------------------------------------------------------------------


async def test_anthropic_sync_client_non_stream(ant: AnthropicServer) -> None:
    def call() -> Any:
        with anthropic.Anthropic(base_url=ant.base_url, api_key="ak-test", max_retries=0) as c:
            return c.messages.create(
                model="claude-local-1",
                max_tokens=256,
                system="Be brief.",
                messages=[{"role": "user", "content": "What is the capital of France?"}],
            )

    message = await asyncio.to_thread(call)
    assert message.type == "message"
    assert message.role == "assistant"
    assert message.model == "claude-local-1"
    assert [b.type for b in message.content] == ["text"]
    assert message.content[0].text == "Reply to: What is the capital of France?"
    assert message.stop_reason == "end_turn"
    assert message.usage.input_tokens == -(-len("Be brief.What is the capital of France?") // 4)
    assert message.usage.output_tokens == -(-len(message.content[0].text) // 4)
    headers = ant.last_request.headers
    # SDK releases differ: older ones send x-api-key, newer ones a bearer token.
    assert headers.get("x-api-key") == "ak-test" or headers["authorization"] == "Bearer ak-test"
    assert headers["anthropic-version"]


async def test_anthropic_sync_client_stream_text(ant: AnthropicServer) -> None:
    def call() -> tuple[list[str], list[str], Any]:
        with (
            anthropic.Anthropic(base_url=ant.base_url, api_key="ak-test", max_retries=0) as c,
            c.messages.stream(
                model="claude-local-2",
                max_tokens=256,
                messages=[{"role": "user", "content": "Tell me a rather long story about cats"}],
            ) as stream,
        ):
            events = [event.type for event in stream]
            final = stream.get_final_message()
        with (
            anthropic.Anthropic(base_url=ant.base_url, api_key="ak-test", max_retries=0) as c,
            c.messages.stream(
                model="claude-local-2",
                max_tokens=256,
                messages=[{"role": "user", "content": "Tell me a rather long story about cats"}],
            ) as stream,
        ):
            pieces = list(stream.text_stream)
        return events, pieces, final

    events, pieces, final = await asyncio.to_thread(call)
    assert events[0] == "message_start"
    assert "content_block_start" in events
    assert events[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert len(pieces) > 1
    assert "".join(pieces) == "Reply to: Tell me a rather long story about cats"
    assert final.content[0].text == "".join(pieces)
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens == -(-len(final.content[0].text) // 4)
    assert final.usage.input_tokens > 0


async def test_anthropic_async_client_tool_use_both_ways(ant: AnthropicServer) -> None:
    async with anthropic.AsyncAnthropic(
        base_url=ant.base_url, api_key="ak-test", max_retries=0
    ) as client:
        async with client.messages.stream(
            model="claude-local-1",
            max_tokens=256,
            messages=[{"role": "user", "content": "Please call get_weather for Oslo"}],
            tools=[WEATHER_ANTHROPIC],  # type: ignore[list-item]
        ) as stream:
            final = await stream.get_final_message()
        assert final.stop_reason == "tool_use"
        block = final.content[0]
        assert block.type == "tool_use"
        assert block.name == "get_weather"
        assert block.input == {"city": "Oslo", "days": 5}

        forced = await client.messages.create(
            model="claude-local-1",
            max_tokens=256,
            messages=[{"role": "user", "content": "no tool named here"}],
            tools=[WEATHER_ANTHROPIC],  # type: ignore[list-item]
            tool_choice={"type": "tool", "name": "get_weather"},
        )
        assert forced.content[0].type == "tool_use"

        follow = await client.messages.create(
            model="claude-local-1",
            max_tokens=256,
            messages=[
                {"role": "user", "content": "Please call get_weather for Oslo"},
                {"role": "assistant", "content": [block.model_dump()]},  # type: ignore[list-item]
                {
                    "role": "user",
                    "content": [
                        {"type": "tool_result", "tool_use_id": block.id, "content": "snow, -3C"}
                    ],
                },
            ],
            tools=[WEATHER_ANTHROPIC],  # type: ignore[list-item]
        )
        assert follow.content[0].text == "Based on the tool result: snow, -3C"  # type: ignore[union-attr]


async def test_anthropic_sdk_sees_faults_as_its_own_errors(ant: AnthropicServer) -> None:
    ant.inject(
        Fault.status(429, retry_after=2),
        Fault.status(529),
        Fault.stream_error(after_chunks=5),
    )
    messages: Any = [{"role": "user", "content": "a message long enough to stream"}]
    async with anthropic.AsyncAnthropic(
        base_url=ant.base_url, api_key="ak-test", max_retries=0
    ) as client:
        with pytest.raises(anthropic.RateLimitError) as rate:
            await client.messages.create(model="m", max_tokens=10, messages=messages)
        assert rate.value.response.headers["retry-after"] == "2"
        with pytest.raises(anthropic.APIStatusError) as overloaded:
            await client.messages.create(model="m", max_tokens=10, messages=messages)
        assert overloaded.value.status_code == 529
        assert "overloaded_error" in str(overloaded.value.body)
        with pytest.raises(anthropic.APIStatusError) as in_stream:
            async with client.messages.stream(model="m", max_tokens=100, messages=messages) as s:
                async for _ in s:
                    pass
        assert "overloaded_error" in str(in_stream.value)
    async with anthropic.AsyncAnthropic(base_url=ant.base_url, api_key="bad", max_retries=0) as c:
        with pytest.raises(anthropic.AuthenticationError):
            await c.messages.create(model="m", max_tokens=10, messages=messages)


async def test_anthropic_server_enforces_version_header_and_max_tokens(
    ant: AnthropicServer,
) -> None:
    url = f"{ant.base_url}/v1/messages"
    body = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}
    async with aiohttp.ClientSession() as session:
        async with session.post(url, json=body, headers={"x-api-key": "ak-test"}) as resp:
            assert resp.status == 400
            data = await resp.json()
            assert data["type"] == "error"
            assert data["error"]["type"] == "invalid_request_error"
            assert "anthropic-version" in data["error"]["message"]
        headers = {"x-api-key": "ak-test", "anthropic-version": "2023-06-01"}
        no_max = {k: v for k, v in body.items() if k != "max_tokens"}
        async with session.post(url, json=no_max, headers=headers) as resp:
            assert resp.status == 400
            assert "max_tokens" in (await resp.json())["error"]["message"]
        async with session.post(url, json=body, headers=headers) as resp:
            assert resp.status == 200


async def test_custom_async_responder_and_per_model_faults() -> None:
    seen: list[WireRequest] = []

    async def responder(request: WireRequest) -> Reply:
        seen.append(request)
        return Reply(text=f"{request.model} says hi", input_tokens=11, output_tokens=7)

    async with OpenAIServer(responder=responder) as server:
        server.inject(Fault.status(500), model="gpt-new")
        async with openai.AsyncOpenAI(base_url=server.base_url, api_key="k", max_retries=0) as c:
            messages: Any = [{"role": "user", "content": "hello"}]
            old = await c.chat.completions.create(model="gpt-old", messages=messages)
            with pytest.raises(openai.InternalServerError):
                await c.chat.completions.create(model="gpt-new", messages=messages)
            new = await c.chat.completions.create(model="gpt-new", messages=messages)
        assert old.choices[0].message.content == "gpt-old says hi"
        assert new.choices[0].message.content == "gpt-new says hi"
        assert new.usage is not None and new.usage.prompt_tokens == 11
        assert server.requests_by_model == {"gpt-old": 1, "gpt-new": 2}
        assert [r.last_user_text for r in seen] == ["hello", "hello"]


async def test_max_tokens_and_stop_truncate_like_real_servers(ant: AnthropicServer) -> None:
    async with anthropic.AsyncAnthropic(
        base_url=ant.base_url, api_key="ak-test", max_retries=0
    ) as client:
        messages: Any = [{"role": "user", "content": "one two three four five six seven"}]
        short = await client.messages.create(model="m", max_tokens=2, messages=messages)
        assert short.stop_reason == "max_tokens"
        assert short.content[0].text == "Reply to"  # type: ignore[union-attr]
        stopped = await client.messages.create(
            model="m", max_tokens=100, messages=messages, stop_sequences=["four"]
        )
        assert stopped.stop_reason == "stop_sequence"
        assert stopped.stop_sequence == "four"
        assert stopped.content[0].text == "Reply to: one two three "  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("module", "path"),
    [
        ("cutover.testing.openai_server", "/models"),
        ("cutover.testing.anthropic_server", "/v1/models"),
    ],
)
async def test_cli_serves_until_terminated(module: str, path: str) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        module,
        "--port",
        "0",
        "--latency-ms",
        "5",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), timeout=15)
        base_url = line.decode().strip()
        assert base_url.startswith("http://127.0.0.1:")
        async with aiohttp.ClientSession() as session, session.get(base_url + path) as resp:
            assert resp.status == 200
            assert (await resp.json())["data"]
    finally:
        proc.terminate()
        _, stderr = await asyncio.wait_for(proc.communicate(), timeout=10)
    assert proc.returncode == 0, stderr.decode()
    assert b"Warning" not in stderr
