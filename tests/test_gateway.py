"""The gateway over real sockets, driven by the official ``openai`` SDK.

Upstreams are the local OpenAI wire server (:mod:`cutover.testing`); the
gateway runs on a free port in the same event loop.
"""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from cutover.gateway import Gateway, GatewayConfig
from cutover.store import Store
from cutover.testing import Fault, OpenAIServer, serve_app

KEY = "sk-client-1"
BASE = "gpt-4o-mini"
CAND = "gpt-4.1-mini"
WEATHER: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


def config(upstream: str, **route: Any) -> GatewayConfig:
    entry: dict[str, Any] = {
        "baseline": f"openai:{BASE}@{upstream}",
        "candidate": f"openai:{CAND}@{upstream}",
        "weight": 0,
        "sticky": "user",
    }
    entry.update(route)
    return GatewayConfig.model_validate({"client_keys": [KEY], "routes": {"support-bot": entry}})


async def metrics_text(root: str) -> str:
    async with aiohttp.ClientSession() as http, http.get(f"{root}/metrics") as resp:
        return await resp.text()


@asynccontextmanager
async def gateway(cfg: GatewayConfig, **kwargs: Any) -> AsyncIterator[str]:
    """The gateway's root URL, serving on a free port."""
    async with serve_app(Gateway(cfg, env={}, **kwargs).app()) as root:
        yield root


def client(root: str, key: str = KEY) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{root}/v1", api_key=key, max_retries=0, timeout=10)


@pytest.fixture
async def upstream() -> AsyncIterator[OpenAIServer]:
    async with OpenAIServer() as server:
        yield server


def says(text: str) -> list[ChatCompletionMessageParam]:
    return [{"role": "user", "content": text}]


MSG = says("Where is my order?")


async def test_non_stream_pass_through_with_arm_headers(upstream: OpenAIServer) -> None:
    async with gateway(config(upstream.base_url)) as root:
        raw = await client(root).chat.completions.with_raw_response.create(
            model="support-bot", messages=MSG, user="alice"
        )
        completion = raw.parse()
    assert raw.headers["x-cutover-arm"] == "baseline"
    assert raw.headers["x-cutover-request-id"].startswith("req_")
    assert completion.model == BASE
    assert completion.choices[0].message.content == "Reply to: Where is my order?"
    sent = upstream.last_request
    assert sent.model == BASE and sent.body["user"] == "alice"
    assert "authorization" not in sent.headers  # no upstream key in the environment


async def test_upstream_key_from_key_env_is_sent_never_returned() -> None:
    async with OpenAIServer(api_key="sk-upstream-secret") as server:
        cfg = GatewayConfig.model_validate(
            {
                "client_keys": [KEY],
                "routes": {
                    "bot": {"baseline": {"target": f"openai:{BASE}@{server.base_url}", "key_env": "UP_KEY"}}
                },
            }
        )  # fmt: skip
        gw = Gateway(cfg, env={"UP_KEY": "sk-upstream-secret"})
        async with serve_app(gw.app()) as root:
            raw = await client(root).chat.completions.with_raw_response.create(
                model="bot", messages=MSG
            )
    assert raw.parse().model == BASE
    assert server.last_request.headers["authorization"] == "Bearer sk-upstream-secret"
    assert "sk-upstream-secret" not in raw.http_response.text + str(dict(raw.headers))


async def test_stream_relayed_chunk_by_chunk(upstream: OpenAIServer) -> None:
    async with gateway(config(upstream.base_url, weight=100)) as root:
        stream = await client(root).chat.completions.create(
            model="support-bot",
            messages=says("Tell me a fairly long story about shipping."),
            stream=True,
            stream_options={"include_usage": True},
            user="bob",
        )
        assert stream.response.headers["x-cutover-arm"] == "candidate"
        assert stream.response.headers["content-type"].startswith("text/event-stream")
        chunks = [chunk async for chunk in stream]
    pieces = [
        c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content
    ]
    assert len(pieces) > 1
    assert "".join(pieces) == "Reply to: Tell me a fairly long story about shipping."
    assert chunks[-1].usage is not None
    assert {c.model for c in chunks} == {CAND}
    assert upstream.last_request.body["stream_options"] == {"include_usage": True}


async def test_tools_response_format_and_unknown_fields_pass_through(
    upstream: OpenAIServer,
) -> None:
    async with gateway(config(upstream.base_url)) as root:
        c = client(root)
        tool_answer = await c.chat.completions.create(
            model="support-bot",
            messages=says("Use get_weather for Paris"),
            tools=[WEATHER],
        )
        calls = tool_answer.choices[0].message.tool_calls
        assert calls and calls[0].function.name == "get_weather"  # type: ignore[union-attr]
        assert tool_answer.choices[0].finish_reason == "tool_calls"

        streamed = [
            chunk
            async for chunk in await c.chat.completions.create(
                model="support-bot",
                messages=says("Use get_weather for Oslo"),
                tools=[WEATHER],
                stream=True,
            )
        ]
        names = [
            tc.function.name
            for ch in streamed
            if ch.choices
            for tc in ch.choices[0].delta.tool_calls or ()
            if tc.function and tc.function.name
        ]
        assert names == ["get_weather"]

        schema: Any = {
            "type": "json_schema",
            "json_schema": {
                "name": "answer",
                "schema": {
                    "type": "object",
                    "properties": {"status": {"type": "string"}},
                    "required": ["status"],
                },
            },
        }
        structured = await c.chat.completions.create(
            model="support-bot",
            messages=MSG,
            response_format=schema,
            extra_body={"cutover_unknown_field": {"kept": [1, 2]}, "top_k": 5},
        )
    assert structured.choices[0].message.content is not None
    assert structured.choices[0].message.content.startswith("{")
    sent = upstream.last_request.body
    assert sent["response_format"] == schema
    assert sent["cutover_unknown_field"] == {"kept": [1, 2]} and sent["top_k"] == 5
    assert sent["model"] == BASE


async def test_sticky_per_user_and_split_hits_both_arms(upstream: OpenAIServer) -> None:
    async with gateway(config(upstream.base_url, weight=50)) as root:
        c = client(root)
        for user in ("alice", "bob", "carol"):
            seen = set()
            for _ in range(20):
                raw = await c.chat.completions.with_raw_response.create(
                    model="support-bot", messages=MSG, user=user
                )
                seen.add((raw.headers["x-cutover-arm"], raw.parse().model))
            assert len(seen) == 1, (user, seen)
            arm, model = seen.pop()
            assert model == (CAND if arm == "candidate" else BASE)
        models = set()
        for i in range(40):
            answer = await c.chat.completions.create(
                model="support-bot", messages=MSG, user=f"user-{i}"
            )
            models.add(answer.model)
    assert models == {BASE, CAND}


async def test_header_and_api_key_sticky_and_no_key_is_per_request(upstream: OpenAIServer) -> None:
    async with gateway(config(upstream.base_url, weight=50, sticky="header:x-session-id")) as root:
        c = client(root)
        arms = set()
        for _ in range(10):
            raw = await c.chat.completions.with_raw_response.create(
                model="support-bot", messages=MSG, extra_headers={"x-session-id": "s-42"}
            )
            arms.add(raw.headers["x-cutover-arm"])
        assert len(arms) == 1
    async with gateway(
        config(upstream.base_url, weight=50, sticky="none"), rng=random.Random(1)
    ) as root:
        c = client(root)
        arms = set()
        for _ in range(30):
            raw = await c.chat.completions.with_raw_response.create(
                model="support-bot", messages=MSG, user="same-user"
            )
            arms.add(raw.headers["x-cutover-arm"])
        assert arms == {"baseline", "candidate"}  # sticky: none ignores the user


async def test_allow_list_pinned_to_the_candidate(upstream: OpenAIServer) -> None:
    async with gateway(config(upstream.base_url, weight=0, allow=["qa-team"])) as root:
        c = client(root)
        pinned = await c.chat.completions.create(model="support-bot", messages=MSG, user="qa-team")
        other = await c.chat.completions.create(model="support-bot", messages=MSG, user="customer")
    assert pinned.model == CAND and other.model == BASE


async def test_models_and_healthz(upstream: OpenAIServer) -> None:
    async with gateway(config(upstream.base_url)) as root:
        page = await client(root).models.list()
        assert [m.id for m in page.data] == ["support-bot"]
        with pytest.raises(openai.AuthenticationError):
            await client(root, "wrong").models.list()
        async with aiohttp.ClientSession() as s, s.get(f"{root}/healthz") as resp:
            assert resp.status == 200 and (await resp.json()) == {
                "status": "ok",
                "pid": os.getpid(),
            }


async def test_bad_key_and_unknown_alias_are_openai_errors(upstream: OpenAIServer) -> None:
    async with gateway(config(upstream.base_url)) as root:
        with pytest.raises(openai.AuthenticationError) as auth:
            await client(root, "sk-wrong").chat.completions.create(
                model="support-bot", messages=MSG
            )
        assert auth.value.code == "invalid_api_key"
        assert auth.value.response.headers["x-cutover-arm"] == "none"
        with pytest.raises(openai.NotFoundError) as missing:
            await client(root).chat.completions.create(model="gpt-4o", messages=MSG)
        assert "support-bot" in missing.value.message
        assert missing.value.code == "model_not_found"
    assert upstream.requests_total == 0


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (b"{not json", None),
        (b"[1, 2]", None),
        (b'{"model": 7, "messages": []}', "model"),
        (b'{"model": "support-bot", "messages": "hi"}', "messages"),
        (b'{"model": "support-bot", "messages": [{"role": "user", "content": "x"}], "stream": "yes"}', "stream"),
        (b'{"model": "support-bot", "messages": [{"role": "user", "content": "x"}], "user": 5}', "user"),
    ],
)  # fmt: skip
async def test_malformed_bodies_are_400_with_openai_error(
    upstream: OpenAIServer, body: bytes, param: str | None
) -> None:
    async with (
        gateway(config(upstream.base_url)) as root,
        aiohttp.ClientSession() as s,
        s.post(
            f"{root}/v1/chat/completions",
            data=body,
            headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"},
        ) as resp,
    ):
        assert resp.status == 400
        data = await resp.json()
        assert resp.headers["x-cutover-request-id"].startswith("req_")
    assert data["error"]["type"] == "invalid_request_error"
    assert data["error"]["param"] == param
    assert isinstance(data["error"]["message"], str)


async def test_oversized_body_is_413(upstream: OpenAIServer) -> None:
    async with gateway(config(upstream.base_url), max_body_bytes=10_000) as root:
        with pytest.raises(openai.APIStatusError) as info:
            await client(root).chat.completions.create(
                model="support-bot", messages=says("x" * 20_000)
            )
    assert info.value.status_code == 413
    assert info.value.code == "request_too_large"


async def test_upstream_faults_are_mapped(upstream: OpenAIServer) -> None:
    async with gateway(config(upstream.base_url, weight=100, retries=0)) as root:
        c = client(root)
        upstream.inject(Fault.status(500))
        with pytest.raises(openai.InternalServerError) as server_error:
            await c.chat.completions.create(model="support-bot", messages=MSG, user="u")
        assert server_error.value.response.headers["x-cutover-arm"] == "candidate"

        upstream.inject(Fault.status(429, retry_after=3))
        with pytest.raises(openai.RateLimitError) as limited:
            await c.chat.completions.create(model="support-bot", messages=MSG, user="u")
        assert limited.value.response.headers["retry-after"] == "3"

        upstream.inject(Fault.status(503))
        with pytest.raises(openai.InternalServerError):
            await c.chat.completions.create(model="support-bot", messages=MSG, stream=True)

        upstream.inject(Fault.status(401))  # the gateway's provider key is wrong
        with pytest.raises(openai.APIStatusError) as bad_key:
            await c.chat.completions.create(model="support-bot", messages=MSG)
        assert bad_key.value.status_code == 502

        upstream.inject(Fault.garbage())
        with pytest.raises(openai.APIStatusError) as garbage:
            await c.chat.completions.create(model="support-bot", messages=MSG)
        assert garbage.value.status_code == 502

        upstream.inject(Fault.half_stream(after_chunks=2))
        stream = await c.chat.completions.create(model="support-bot", messages=MSG, stream=True)
        with pytest.raises(openai.APIError, match="cut off"):
            async for _ in stream:
                pass


async def test_upstream_unreachable_is_502() -> None:
    async with OpenAIServer() as server:
        dead = server.base_url
    async with gateway(config(dead)) as root:
        c = client(root)
        with pytest.raises(openai.APIStatusError) as info:
            await c.chat.completions.create(model="support-bot", messages=MSG)
        assert info.value.status_code == 502
        assert info.value.response.headers["x-cutover-arm"] == "baseline"
        with pytest.raises(openai.APIStatusError) as streamed:
            await c.chat.completions.create(model="support-bot", messages=MSG, stream=True)
        assert streamed.value.status_code == 502


async def test_upstream_timeout_is_504(upstream: OpenAIServer) -> None:
    cfg = GatewayConfig.model_validate(
        {
            "client_keys": [KEY],
            "routes": {"bot": {"baseline": {"target": f"openai:{BASE}@{upstream.base_url}", "timeout_s": 0.3}}},
        }
    )  # fmt: skip
    async with gateway(cfg) as root:
        upstream.inject(Fault.hang())
        with pytest.raises(openai.APIStatusError) as info:
            await client(root).chat.completions.create(model="bot", messages=MSG)
    assert info.value.status_code == 504
    assert "0.3s" in info.value.message


async def test_stream_first_token_is_not_held_back() -> None:
    # Upstream: first token after 0.1 s, the rest of the stream in one burst 0.9 s later.
    async with (
        OpenAIServer(latency_s=1.0, ttft_fraction=0.1, stream_bursts=1) as server,
        gateway(config(server.base_url)) as root,
    ):
        c = client(root)  # built before the clock starts: only the stream is timed
        loop = asyncio.get_running_loop()
        start = loop.time()
        stream = await c.chat.completions.create(model="support-bot", messages=MSG, stream=True)
        first: float | None = None
        async for chunk in stream:
            if first is None and chunk.choices and chunk.choices[0].delta.content:
                first = loop.time() - start
        total = loop.time() - start
    assert total >= 0.9
    # Relayed as it came, the first token is ahead of the rest by most of the 0.9 s; held
    # back (buffered with the rest, or until the next upstream read) it is not ahead at all.
    # Measured against the rest, so the connections' set-up (slow on a loaded machine)
    # does not count.
    assert first is not None and total - first >= 0.5


async def test_client_leaving_mid_stream_does_not_hurt_the_gateway() -> None:
    async with (
        OpenAIServer(latency_s=0.6, ttft_fraction=0.1) as server,
        gateway(config(server.base_url)) as root,
    ):
        async with aiohttp.ClientSession() as s:
            resp = await s.post(
                f"{root}/v1/chat/completions",
                json={"model": "support-bot", "messages": MSG, "stream": True},
                headers={"Authorization": f"Bearer {KEY}"},
            )
            assert resp.status == 200
            await resp.content.readany()  # the first bytes, then hang up
            resp.close()
        answer = await client(root).chat.completions.create(model="support-bot", messages=MSG)
    assert answer.choices[0].message.content == "Reply to: Where is my order?"


async def test_safe_failures_are_retried_before_anything_is_sent(upstream: OpenAIServer) -> None:
    async with gateway(config(upstream.base_url, retries=2, retry_max_wait_s=0.5)) as root:
        c = client(root)
        for fault in (
            Fault.status(429, retry_after=0.01),
            Fault.status(503),
            Fault.status(500),
            Fault.disconnect(),
        ):
            upstream.reset()
            upstream.inject(fault)
            answer = await c.chat.completions.create(model="support-bot", messages=MSG, user="u")
            assert answer.choices[0].message.content, fault
            assert upstream.requests_total == 2, fault  # one failed attempt, one retry
        upstream.reset()
        upstream.inject(Fault.status(503), times=2)  # a stream's opening is retried too
        stream = await c.chat.completions.create(model="support-bot", messages=MSG, stream=True)
        assert "".join([ch.choices[0].delta.content or "" async for ch in stream if ch.choices])
        assert upstream.requests_total == 3
        upstream.reset()
        upstream.inject(Fault.status(429, retry_after=30))  # too long to wait: passed on
        with pytest.raises(openai.RateLimitError):
            await c.chat.completions.create(model="support-bot", messages=MSG)
        assert upstream.requests_total == 1
        upstream.reset()
        upstream.inject(Fault.status(400))  # the request's own fault: never retried
        with pytest.raises(openai.APIStatusError):
            await c.chat.completions.create(model="support-bot", messages=MSG)
        assert upstream.requests_total == 1
        upstream.reset()
        upstream.inject(Fault.half_stream(after_chunks=2))  # started streams are not retried
        stream = await c.chat.completions.create(model="support-bot", messages=MSG, stream=True)
        with pytest.raises(openai.APIError, match="cut off"):
            async for _ in stream:
                pass
        assert upstream.requests_total == 1
        metrics = await metrics_text(root)
    assert 'cutover_gateway_upstream_retries_total{arm="baseline",route="support-bot"} 6.0' in (
        metrics
    )


async def test_failing_candidate_falls_back_to_the_baseline_and_counts_against_it(
    tmp_path: Path,
) -> None:
    db = f"sqlite:///{tmp_path / 'fb.db'}"
    store = Store.open(db)
    async with (
        OpenAIServer() as base_up,
        OpenAIServer() as cand_up,
    ):
        cfg = GatewayConfig.model_validate(
            {
                "client_keys": [KEY],
                "routes": {
                    "support-bot": {
                        "baseline": f"openai:{BASE}@{base_up.base_url}",
                        "candidate": f"openai:{CAND}@{cand_up.base_url}",
                        "weight": 100,
                        "retries": 0,
                        "fallback": True,
                    }
                },
            }
        )
        async with gateway(cfg, store=store) as root:
            c = client(root)
            cand_up.inject(Fault.status(503))
            raw = await c.chat.completions.with_raw_response.create(
                model="support-bot", messages=MSG, user="u"
            )
            answer = raw.parse()
            assert answer.model == BASE  # the baseline answered
            assert raw.headers["x-cutover-arm"] == "candidate"
            assert raw.headers["x-cutover-fallback"] == "baseline"
            fell_back = raw.headers["x-cutover-request-id"]
            cand_up.inject(Fault.disconnect())  # a stream whose candidate is unreachable
            stream = await c.chat.completions.create(
                model="support-bot", messages=MSG, user="u", stream=True
            )
            assert "".join([ch.choices[0].delta.content or "" async for ch in stream if ch.choices])
            ok = await c.chat.completions.with_raw_response.create(
                model="support-bot", messages=MSG, user="u"
            )
            assert ok.parse().model == CAND and "x-cutover-fallback" not in ok.headers
            cand_up.inject(Fault.status(400))  # a client error is the client's: no fallback
            with pytest.raises(openai.BadRequestError):
                await c.chat.completions.create(model="support-bot", messages=MSG, user="u")
            metrics = await metrics_text(root)
        assert (base_up.requests_total, cand_up.requests_total) == (2, 4)
        assert 'cutover_gateway_fallbacks_total{arm="candidate",route="support-bot"} 2.0' in (
            metrics
        )
        # the fallback answer's tokens are the baseline model's: billed under the baseline
        assert answer.usage is not None and ok.parse().usage is not None
        assert (
            'cutover_gateway_tokens_total{arm="baseline",kind="input",route="support-bot"} '
            f"{float(answer.usage.prompt_tokens)}" in metrics
        )
        assert (
            'cutover_gateway_tokens_total{arm="candidate",kind="input",route="support-bot"} '
            f"{float(ok.parse().usage.prompt_tokens)}" in metrics  # type: ignore[union-attr]
        )
        assert (
            'cutover_gateway_requests_total{arm="candidate",route="support-bot",status="503"} 1.0'
            in metrics
        )
    with Store.open(db) as check:
        row = check.get_gateway_request(fell_back)
        stats = check.gateway_arm_stats("support-bot", datetime(2000, 1, 1, tzinfo=UTC))
    assert row is not None
    assert (row["arm"], row["status"], row["error_class"]) == (
        "candidate",
        503,
        "fallback_server_error",
    )
    assert row["target"] == f"openai:{BASE}"  # who answered
    assert stats["candidate"].requests == 4 and stats["candidate"].errors == 3
