"""OpenAIProvider against the local OpenAI wire server on a real port.

Also the shared HTTP layer (SSE decoding, Retry-After, status mapping).
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
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
from cutover.providers import Provider, create_provider
from cutover.providers._http import (
    SSEDecoder,
    SSEEvent,
    create_session,
    error_for_status,
    parse_retry_after,
)
from cutover.providers.openai import OpenAIProvider
from cutover.records import ModelRequest
from cutover.targets import Target, parse_target
from cutover.testing import Fault, OpenAIServer

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
LONG = "Tell me a rather long story about three cats and a dog in Paris"


@pytest.fixture(autouse=True)
def _no_ambient_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)


@pytest.fixture
async def server() -> AsyncIterator[OpenAIServer]:
    async with OpenAIServer() as srv:
        yield srv


def target_for(srv: OpenAIServer, *, stream: bool = True, **extra: Any) -> Target:
    return parse_target(f"openai:gpt-4o-mini@{srv.base_url}", stream=stream, **extra)


async def call(target: Target, request: ModelRequest) -> Any:
    async with OpenAIProvider(target) as provider:
        return await provider.complete(request)


def ask(text: str, **kwargs: Any) -> ModelRequest:
    return ModelRequest(messages=[{"role": "user", "content": text}], **kwargs)


# -- answers --------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
async def test_text_answer_with_usage_and_model(server: OpenAIServer, stream: bool) -> None:
    target = target_for(server, stream=stream, name="old")
    obs = await call(target, ask(LONG))
    assert obs.ok
    assert obs.target == "old"
    assert obs.output == f"Reply to: {LONG}"
    assert obs.finish_reason == "stop"
    assert obs.model == "gpt-4o-mini"
    assert obs.input_tokens == -(-len(LONG) // 4)
    assert obs.output_tokens == -(-len(obs.output) // 4)
    assert obs.tool_calls == ()
    assert obs.cost_usd is None
    assert obs.latency_ms is not None and obs.latency_ms > 0
    body = server.last_request.body
    if stream:
        assert body["stream"] is True
        assert body["stream_options"] == {"include_usage": True}
        assert obs.ttft_ms is not None and 0 < obs.ttft_ms <= obs.latency_ms
    else:
        assert "stream" not in body
        assert obs.ttft_ms is None


async def test_stream_measures_ttft_and_latency() -> None:
    async with OpenAIServer(latency_s=0.3, ttft_fraction=0.5) as srv:
        obs = await call(target_for(srv), ask(LONG))
    assert obs.ok
    assert obs.ttft_ms is not None and obs.latency_ms is not None
    assert 140 <= obs.ttft_ms < 280  # half the latency comes before the first token
    assert obs.latency_ms >= 290
    assert obs.latency_ms - obs.ttft_ms >= 100  # the rest is spread over the stream


async def test_non_stream_latency_includes_server_delay() -> None:
    async with OpenAIServer(latency_s=0.15) as srv:
        obs = await call(target_for(srv, stream=False), ask("hi"))
    assert obs.latency_ms is not None and obs.latency_ms >= 145
    assert obs.ttft_ms is None


@pytest.mark.parametrize("stream", [False, True])
async def test_tool_call_assembled_from_fragments(server: OpenAIServer, stream: bool) -> None:
    request = ask("Please call get_weather for Paris", tools=[WEATHER], tool_choice="auto")
    obs = await call(target_for(server, stream=stream), request)
    assert obs.ok
    assert obs.output is None
    assert obs.finish_reason == "tool_calls"
    assert len(obs.tool_calls) == 1
    tc = obs.tool_calls[0]
    assert tc.name == "get_weather"
    assert json.loads(tc.arguments) == {"city": "Paris", "days": 5}
    assert tc.id.startswith("call_")
    body = server.last_request.body
    assert body["tools"] == [WEATHER]
    assert body["tool_choice"] == "auto"


async def test_tool_choice_none_is_sent_and_respected(server: OpenAIServer) -> None:
    request = ask("Please call get_weather for Paris", tools=[WEATHER], tool_choice="none")
    obs = await call(target_for(server), request)
    assert obs.tool_calls == ()
    assert obs.output == "Reply to: Please call get_weather for Paris"
    assert server.last_request.body["tool_choice"] == "none"


async def test_tool_result_round_trip(server: OpenAIServer) -> None:
    messages = [
        {"role": "user", "content": "Please call get_weather for Paris"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
    ]
    obs = await call(target_for(server), ModelRequest(messages=messages, tools=[WEATHER]))
    assert obs.output == "Based on the tool result: sunny"
    assert server.last_request.body["messages"] == messages


@pytest.mark.parametrize("stream", [False, True])
async def test_response_format_and_unknown_params_pass_through(
    server: OpenAIServer, stream: bool
) -> None:
    schema = {"type": "object", "properties": {"label": {"enum": ["spam", "ham"]}}}
    response_format = {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}
    params = {
        "temperature": 0.2,
        "max_tokens": 64,
        "seed": 7,
        "top_p": 0.9,
        "vendor_knob": {"depth": 3},
        "logit_bias": {"50256": -100},
    }
    obs = await call(
        target_for(server, stream=stream),
        ask("classify this", response_format=response_format, params=params),
    )
    body = server.last_request.body
    assert body["response_format"] == response_format
    for key, value in params.items():
        assert body[key] == value
    assert body["model"] == "gpt-4o-mini"
    assert json.loads(obs.output) == {"label": "spam"}


async def test_max_tokens_gives_length_finish(server: OpenAIServer) -> None:
    obs = await call(target_for(server), ask(LONG, params={"max_tokens": 3}))
    assert obs.finish_reason == "length"
    assert obs.output == f"Reply to: {LONG}"[:12]


async def test_key_from_named_env_var_and_extra_headers(
    server: OpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MY_GATEWAY_KEY", "sk-abc")
    target = target_for(server, api_key_env="MY_GATEWAY_KEY", headers={"X-Team": "search"})
    await call(target, ask("hi"))
    headers = server.last_request.headers
    assert headers["authorization"] == "Bearer sk-abc"
    assert headers["x-team"] == "search"
    assert server.last_request.path == "/v1/chat/completions"


async def test_custom_base_url_without_key_sends_no_authorization(server: OpenAIServer) -> None:
    await call(target_for(server), ask("hi"))
    assert "authorization" not in server.last_request.headers


def test_missing_key_for_official_base_url_is_an_input_error() -> None:
    with pytest.raises(MissingKeyError, match="OPENAI_API_KEY"):
        OpenAIProvider(parse_target("openai:gpt-4o-mini"))
    with pytest.raises(MissingKeyError, match="TEAM_KEY"):
        create_provider(parse_target("openai:gpt-4o-mini", api_key_env="TEAM_KEY"))


def test_official_base_url_with_key_is_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-x")
    provider = create_provider(parse_target("openai:gpt-4o-mini"))
    assert isinstance(provider, OpenAIProvider)
    assert isinstance(provider, Provider)
    assert provider.url == "https://api.openai.com/v1/chat/completions"


async def test_concurrent_calls_share_one_session(server: OpenAIServer) -> None:
    async with OpenAIProvider(target_for(server, concurrency=8)) as provider:
        results = await asyncio.gather(*(provider.complete(ask(f"q{i}")) for i in range(40)))
    assert [r.output for r in results] == [f"Reply to: q{i}" for i in range(40)]
    assert server.requests_total == 40


async def test_borrowed_session_is_left_open(server: OpenAIServer) -> None:
    target = target_for(server)
    async with create_session(target) as session:
        provider = OpenAIProvider(target, session=session)
        await provider.complete(ask("hi"))
        await provider.aclose()
        assert not session.closed
        assert isinstance(session.connector, aiohttp.TCPConnector)


async def test_session_sized_from_target_concurrency() -> None:
    t = Target(provider="openai", model="m", concurrency=7)
    async with create_session(t) as session:
        assert session.connector is not None and session.connector.limit == 7
    async with create_session(Target(provider="openai", model="m")) as session:
        assert session.connector is not None and session.connector.limit == 256


# -- faults ---------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
async def test_429_carries_retry_after(server: OpenAIServer, stream: bool) -> None:
    server.inject(Fault.status(429, retry_after=2))
    with pytest.raises(RateLimitedError) as err:
        await call(target_for(server, stream=stream), ask("hi"))
    assert err.value.retry_after_s == 2.0
    assert err.value.status_code == 429
    assert err.value.retryable
    assert server.base_url in err.value.message
    assert "Rate limit reached" in err.value.message  # excerpt of the upstream body


async def test_retry_after_ms_wins_and_queue_is_consumed(server: OpenAIServer) -> None:
    server.inject(Fault.status(429, retry_after=9, retry_after_ms=250))
    async with OpenAIProvider(target_for(server)) as provider:
        with pytest.raises(RateLimitedError) as err:
            await provider.complete(ask("hi"))
        assert err.value.retry_after_s == pytest.approx(0.25)
        obs = await provider.complete(ask("hi"))
    assert obs.output == "Reply to: hi"


@pytest.mark.parametrize(
    ("code", "cls"),
    [
        (500, ProviderServerError),
        (503, ProviderServerError),
        (529, ProviderServerError),
        (408, ProviderTimeoutError),
        (400, ProviderRequestError),
        (404, ProviderRequestError),
        (422, ProviderRequestError),
        (403, ProviderAuthError),
    ],
)
async def test_status_faults_map_to_error_classes(
    server: OpenAIServer, code: int, cls: type[ProviderError]
) -> None:
    server.inject(Fault.status(code, message=f"upstream said {code}"))
    with pytest.raises(cls) as err:
        await call(target_for(server), ask("hi"))
    assert type(err.value) is cls
    assert err.value.status_code == code
    assert f"upstream said {code}" in err.value.message
    assert f"HTTP {code}" in err.value.message


async def test_wrong_key_is_auth_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-wrong")
    async with OpenAIServer(api_key="sk-right") as srv:
        with pytest.raises(ProviderAuthError) as err:
            await call(target_for(srv), ask("hi"))
    assert err.value.status_code == 401
    assert not err.value.retryable
    assert "Incorrect API key" in err.value.message


@pytest.mark.parametrize("stream", [False, True])
async def test_garbage_body_is_malformed(server: OpenAIServer, stream: bool) -> None:
    server.inject(Fault.garbage())
    with pytest.raises(MalformedResponseError) as err:
        await call(target_for(server, stream=stream), ask("hi"))
    assert "502 Bad Gateway" in err.value.message
    assert server.base_url in err.value.message


@pytest.mark.parametrize("stream", [False, True])
async def test_wrong_shaped_json_is_malformed(server: OpenAIServer, stream: bool) -> None:
    server.inject(Fault.garbage(b'{"object": "list", "data": []}', "application/json"))
    with pytest.raises(MalformedResponseError, match="without choices"):
        await call(target_for(server, stream=stream), ask("hi"))


@pytest.mark.parametrize("stream", [False, True])
async def test_error_object_in_a_200_json_body(server: OpenAIServer, stream: bool) -> None:
    body = b'{"error": {"message": "slow down", "type": "requests", "code": "rate_limit_exceeded"}}'
    server.inject(Fault.garbage(body, "application/json"))
    with pytest.raises(RateLimitedError, match="slow down"):
        await call(target_for(server, stream=stream), ask("hi"))


async def test_half_stream_is_malformed_with_partial_output(server: OpenAIServer) -> None:
    server.inject(Fault.half_stream(after_chunks=3))
    with pytest.raises(MalformedResponseError) as err:
        await call(target_for(server), ask(LONG))
    partial = err.value.partial_output
    assert partial  # two content chunks arrived before the cut
    full = f"Reply to: {LONG}"
    assert full.startswith(partial) and partial != full
    assert "cut off" in err.value.message


async def test_stream_ending_without_end_marker_is_malformed(server: OpenAIServer) -> None:
    server.inject(Fault.half_stream(after_chunks=2, clean_end=True))
    with pytest.raises(MalformedResponseError) as err:
        await call(target_for(server), ask(LONG))
    assert err.value.partial_output
    assert "ended before its end marker" in err.value.message


async def test_half_body_without_stream_is_malformed(server: OpenAIServer) -> None:
    server.inject(Fault.half_stream())
    with pytest.raises(MalformedResponseError):
        await call(target_for(server, stream=False), ask(LONG))


async def test_bad_json_chunk_is_malformed_with_partial(server: OpenAIServer) -> None:
    server.inject(Fault.bad_json_stream_chunk(after_chunks=2))
    with pytest.raises(MalformedResponseError) as err:
        await call(target_for(server), ask(LONG))
    assert err.value.partial_output == f"Reply to: {LONG}"[: len(err.value.partial_output or "")]
    assert err.value.partial_output
    assert "undecodable stream frame" in err.value.message


async def test_truncated_json_without_stream_is_malformed(server: OpenAIServer) -> None:
    server.inject(Fault.bad_json_stream_chunk())
    with pytest.raises(MalformedResponseError, match="not JSON"):
        await call(target_for(server, stream=False), ask("hi"))


@pytest.mark.parametrize(
    ("error_type", "cls"),
    [
        (None, ProviderServerError),
        ("rate_limit_exceeded", RateLimitedError),
        ("invalid_request_error", ProviderRequestError),
    ],
)
async def test_error_object_inside_stream(
    server: OpenAIServer, error_type: str | None, cls: type[ProviderError]
) -> None:
    server.inject(Fault.stream_error(error_type, message="boom in stream", after_chunks=3))
    with pytest.raises(cls) as err:
        await call(target_for(server), ask(LONG))
    assert type(err.value) is cls
    assert "boom in stream" in err.value.message
    assert err.value.partial_output


@pytest.mark.parametrize("stream", [False, True])
async def test_hang_times_out_quickly(server: OpenAIServer, stream: bool) -> None:
    server.inject(Fault.hang())
    start = time.perf_counter()
    with pytest.raises(ProviderTimeoutError) as err:
        await call(target_for(server, stream=stream, timeout_s=0.3), ask("hi"))
    assert time.perf_counter() - start < 2.0
    assert "0.3s" in err.value.message
    assert server.base_url in err.value.message


async def test_slow_answer_within_timeout_succeeds(server: OpenAIServer) -> None:
    server.inject(Fault.delay(0.2))
    obs = await call(target_for(server, stream=False, timeout_s=2), ask("hi"))
    assert obs.latency_ms is not None and obs.latency_ms >= 195


async def test_unreachable_port_is_connection_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/v1"
    with pytest.raises(ProviderConnectionError) as err:
        await call(parse_target(f"openai:m@{url}"), ask("hi"))
    assert f"{url}/chat/completions" in err.value.message
    assert err.value.retryable


async def test_dropped_connection_is_connection_error(server: OpenAIServer) -> None:
    server.inject(Fault.disconnect())
    with pytest.raises(ProviderConnectionError):
        await call(target_for(server, stream=False), ask("hi"))


# -- the shared HTTP layer ----------------------------------------------------


def test_sse_decoder_handles_line_endings_comments_and_multiline_data() -> None:
    raw = (
        b"\xef\xbb\xbf: a comment\r\n"
        b'event: message_start\r\ndata: {"a":\r\ndata: 1}\r\n\r\n'
        b"data:no-space\rid: 7\rretry: 10\r\r"
        b"data: [DONE]\n\n"
    )
    expected = [
        SSEEvent("message_start", '{"a":\n1}'),
        SSEEvent("message", "no-space"),
        SSEEvent("message", "[DONE]"),
    ]
    whole = SSEDecoder().feed(raw)
    assert whole == expected
    # byte by byte (a \r\n split across reads must not make an extra blank line)
    decoder = SSEDecoder()
    events: list[SSEEvent] = []
    for i in range(len(raw)):
        events.extend(decoder.feed(raw[i : i + 1]))
    assert events == expected


def test_sse_decoder_flushes_an_unterminated_last_event() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: one\n\ndata: two") == [SSEEvent("message", "one")]
    assert decoder.flush() == SSEEvent("message", "two")
    assert decoder.flush() is None


def test_parse_retry_after_forms() -> None:
    now = time.time()
    date = email.utils.formatdate(now + 30, usegmt=True)
    assert parse_retry_after({"retry-after": "7"}) == 7.0
    assert parse_retry_after({"retry-after": "1.5"}) == 1.5
    assert parse_retry_after({"retry-after-ms": "120", "retry-after": "9"}) == 0.12
    assert parse_retry_after({"retry-after": date}, now=now) == pytest.approx(30, abs=1)
    assert parse_retry_after({"retry-after": "soon"}) is None
    assert parse_retry_after({"retry-after": "-3"}) is None
    assert parse_retry_after({}) is None


def test_error_for_status_quotes_the_body() -> None:
    body = json.dumps({"error": {"message": "quota exceeded", "type": "tokens"}})
    err = error_for_status(429, body, {"retry-after": "4"}, label="new", url="http://h/v1")
    assert isinstance(err, RateLimitedError)
    assert err.retry_after_s == 4.0
    assert err.message == "new: HTTP 429 from http://h/v1: tokens: quota exceeded"
    long_body = "x" * 5000
    err = error_for_status(502, long_body, {}, label="new", url="http://h")
    assert isinstance(err, ProviderServerError)
    assert len(err.message) < 300
