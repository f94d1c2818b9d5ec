"""Shadow traffic: the same request sent to a third target after the primary answer.

The gateway runs on a free port with its baseline on one local OpenAI wire
server and the shadow target on another; the store is a SQLite file.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest
from typer.testing import CliRunner

from cutover.cli import app as cli_app
from cutover.gateway import Gateway, GatewayConfig
from cutover.gateway.shadow import chat_body_to_model_request, shadow_fingerprint
from cutover.gateway.shadow_runs import parse_since
from cutover.store import Store
from cutover.testing import Fault, OpenAIServer, serve_app
from cutover.testing._respond import Reply, ReplyToolCall, WireRequest

KEY = "sk-client-1"
ALIAS = "support-bot"
WEATHER: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


def config(primary: str, shadow: str, **shadow_opts: Any) -> GatewayConfig:
    entry: dict[str, Any] = {
        "baseline": f"openai:gpt-4o-mini@{primary}",
        "sticky": "none",
        "shadow": {
            "target": {"target": f"openai:gpt-4o@{shadow}", "max_retries": 0},
            **shadow_opts,
        },
    }
    return GatewayConfig.model_validate({"client_keys": [KEY], "routes": {ALIAS: entry}})


@asynccontextmanager
async def serving(cfg: GatewayConfig, db: str) -> AsyncIterator[tuple[str, Gateway]]:
    gw = Gateway(cfg, env={}, store=Store.open(db), rng=random.Random(7))
    async with serve_app(gw.app()) as root:
        yield root, gw


def client(root: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{root}/v1", api_key=KEY, max_retries=0, timeout=10)


async def ask(root: str, text: str) -> tuple[str, str | None]:
    """The answer's text and its ``x-cutover-request-id``."""
    raw = await client(root).chat.completions.with_raw_response.create(
        model=ALIAS, messages=[{"role": "user", "content": text}]
    )
    completion = raw.parse()
    return completion.choices[0].message.content or "", raw.headers.get("x-cutover-request-id")


async def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll ``condition`` (work in a background task or thread) until true."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached"
        await asyncio.sleep(0.01)


@pytest.fixture
def db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'gateway.db'}"


async def test_slow_shadow_does_not_delay_the_primary(db: str) -> None:
    release = asyncio.Event()
    answered: list[str] = []

    async def slow(wire: WireRequest) -> str:
        await release.wait()  # the shadow answers only when the test says so
        answered.append("shadow")
        return "shadow answer"

    async with (
        OpenAIServer() as primary,
        OpenAIServer(responder=slow, latency_s=1.0) as shadow,
        serving(config(primary.base_url, shadow.base_url), db) as (root, gw),
    ):
        text, request_id = await asyncio.wait_for(ask(root, "Where is my order?"), 5.0)
        # The client has its answer while the shadow server has not answered yet.
        assert text and request_id
        assert answered == []
        assert gw.shadow.scheduled == 1
        await wait_for(lambda: shadow.requests_total > 0)  # the shadow request does arrive
        assert shadow.requests_total == 1
        assert answered == []
        release.set()
        await gw.shadow.wait_idle()
        assert answered == ["shadow"]
        assert gw.shadow.completed == 1 and gw.shadow.shadow_errors == 0


async def test_shadow_failures_never_affect_the_primary(db: str) -> None:
    async with (
        OpenAIServer() as primary,
        OpenAIServer(faults=[Fault.status(500)] * 3) as shadow,
        serving(config(primary.base_url, shadow.base_url), db) as (root, gw),
    ):
        for i in range(3):
            text, _ = await ask(root, f"question {i}")
            assert text
        await gw.shadow.wait_idle()
        assert primary.requests_total == 3
        assert shadow.requests_total == 3
        assert gw.shadow.shadow_errors == 3
    with Store.open(db) as store:
        (run,) = [r for r in store.list_runs() if r.kind == "shadow"]
        pairs = list(store.iter_pairs(run.id))
    assert len(pairs) == 3
    assert all(p.old is not None and p.old.error is None for p in pairs)
    assert all(p.new is not None and p.new.error_class == "server_error" for p in pairs)


async def test_sample_zero_sends_no_shadow_calls(db: str) -> None:
    async with (
        OpenAIServer() as primary,
        OpenAIServer() as shadow,
        serving(config(primary.base_url, shadow.base_url, sample=0.0), db) as (root, gw),
    ):
        for i in range(5):
            await ask(root, f"question {i}")
        await gw.shadow.wait_idle()
        assert primary.requests_total == 5
        assert shadow.requests_total == 0
        assert gw.shadow.skipped_sample == 5 and gw.shadow.scheduled == 0


async def test_budget_cap_stops_shadow_calls(db: str) -> None:
    async with OpenAIServer() as primary, OpenAIServer() as shadow:
        cfg = config(primary.base_url, shadow.base_url, budget_usd_per_day=1e-9)
        async with serving(cfg, db) as (root, gw):
            await ask(root, "first")
            await gw.shadow.wait_idle()
            assert shadow.requests_total == 1
            assert gw.shadow.spent_today(ALIAS) > 1e-9  # gpt-4o is priced: over the tiny budget
            for i in range(4):
                await ask(root, f"more {i}")
            await gw.shadow.wait_idle()
            assert primary.requests_total == 5
            assert shadow.requests_total == 1
            assert gw.shadow.skipped_budget == 4


async def test_a_restarted_gateway_keeps_todays_spending(db: str) -> None:
    """The daily budget is not fresh after a restart: today's spending is read from the store."""
    async with OpenAIServer() as primary, OpenAIServer() as shadow:
        cfg = config(primary.base_url, shadow.base_url, budget_usd_per_day=1e-9)
        async with serving(cfg, db) as (root, gw):
            await ask(root, "first")
            await gw.shadow.wait_idle()
            spent = gw.shadow.spent_today(ALIAS)
            assert spent > 1e-9
        async with serving(cfg, db) as (root, gw):  # the same store, a new process state
            await wait_for(lambda: gw.shadow.spent_today(ALIAS) > 0)  # read in a thread
            assert gw.shadow.spent_today(ALIAS) == pytest.approx(spent)
            await ask(root, "after the restart")
            await gw.shadow.wait_idle()
            assert shadow.requests_total == 1 and gw.shadow.skipped_budget == 1


async def test_pairs_land_with_the_same_request_id_and_compare_reads_them(
    db: str, tmp_path: Path
) -> None:
    ids: list[str] = []
    async with (
        OpenAIServer() as primary,
        OpenAIServer() as shadow,
        serving(config(primary.base_url, shadow.base_url), db) as (root, gw),
    ):
        for i in range(4):
            _, request_id = await ask(root, f"Where is order {i}?")
            assert request_id is not None
            ids.append(request_id)
        await gw.shadow.wait_idle()
    with Store.open(db) as store:
        runs = [r for r in store.list_runs() if r.kind == "shadow"]
        assert len(runs) == 1
        run = runs[0]
        assert run.suite_name == f"shadow:{ALIAS}"
        assert run.fingerprint.startswith(shadow_fingerprint(ALIAS, ""))
        pairs = list(store.iter_pairs(run.id))
    assert sorted(p.case_id for p in pairs) == sorted(ids)
    for pair in pairs:
        assert pair.old is not None and pair.new is not None
        assert pair.old.model == "gpt-4o-mini" and "gpt-4o@" in pair.new.target
        assert pair.old.output and pair.new.output
        assert pair.old.input_tokens and pair.new.cost_usd
        assert pair.tags == {"route": ALIAS, "arm": "baseline"}
        assert pair.input and pair.input[0]["content"].startswith("Where is order")

    out = tmp_path / "report"
    result = CliRunner().invoke(
        cli_app,
        ["compare", "--from-shadow", ALIAS, "--since", "24h", "--db", db, "--out", str(out)],
    )
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    assert report["summary"]["old"] and report["summary"]["new"]
    assert sorted(c["id"] for c in report["cases"]) == sorted(ids)


async def test_streams_are_shadowed_with_the_relayed_text_and_tool_calls(db: str) -> None:
    def primary_reply(wire: WireRequest) -> Reply:
        if "weather" in str(wire):
            return Reply(tool_calls=(ReplyToolCall("get_weather", {"city": "Paris"}),))
        return Reply(text="a fairly long streamed answer, in several chunks of text")

    async with (
        OpenAIServer(responder=primary_reply, chunk_chars=8) as primary,
        OpenAIServer() as shadow,
        serving(config(primary.base_url, shadow.base_url), db) as (root, gw),
    ):
        pieces: list[str] = []
        stream = await client(root).chat.completions.create(
            model=ALIAS,
            messages=[{"role": "user", "content": "tell me"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                pieces.append(chunk.choices[0].delta.content)
        tool_stream = await client(root).chat.completions.create(
            model=ALIAS,
            messages=[{"role": "user", "content": "the weather?"}],
            tools=[WEATHER],
            stream=True,
        )
        async for _ in tool_stream:
            pass
        await gw.shadow.wait_idle()
        assert shadow.requests_total == 2
    with Store.open(db) as store:
        (run,) = [r for r in store.list_runs() if r.kind == "shadow"]
        pairs = {p.input[0]["content"]: p for p in store.iter_pairs(run.id) if p.input}
    text_pair, tool_pair = pairs["tell me"], pairs["the weather?"]
    assert text_pair.old is not None and text_pair.new is not None
    assert text_pair.old.output == "".join(pieces)
    assert text_pair.old.ttft_ms is not None and text_pair.old.output_tokens
    assert text_pair.new.output
    assert tool_pair.old is not None and tool_pair.case is not None
    assert [(c.name, json.loads(c.arguments)) for c in tool_pair.old.tool_calls] == [
        ("get_weather", {"city": "Paris"})
    ]
    assert tool_pair.case.tools == [WEATHER]


async def test_anthropic_messages_are_shadowed_in_openai_form(db: str) -> None:
    async with (
        OpenAIServer() as primary,
        OpenAIServer() as shadow,
        serving(config(primary.base_url, shadow.base_url), db) as (root, gw),
    ):
        claude = anthropic.AsyncAnthropic(base_url=root, api_key=KEY, max_retries=0, timeout=10)
        raw = await claude.messages.with_raw_response.create(
            model=ALIAS,
            max_tokens=64,
            system="Be brief.",
            messages=[{"role": "user", "content": "Where is my parcel?"}],
        )
        message = await raw.parse()
        request_id = raw.headers.get("x-cutover-request-id")
        await gw.shadow.wait_idle()
        assert shadow.requests_total == 1
        sent = shadow.received[-1].body
        assert sent is not None and sent["messages"][0] == {
            "role": "system",
            "content": "Be brief.",
        }
    with Store.open(db) as store:
        (run,) = [r for r in store.list_runs() if r.kind == "shadow"]
        (pair,) = list(store.iter_pairs(run.id))
    assert pair.case_id == request_id
    assert pair.old is not None and pair.new is not None
    first = message.content[0]
    assert first.type == "text" and pair.old.output == first.text
    assert pair.old.input_tokens == message.usage.input_tokens
    assert pair.new.output and pair.new.error is None
    assert pair.input is not None and pair.input[-1]["content"] == "Where is my parcel?"


class BrokenStore:
    """A store whose every write fails (the database is down)."""

    def close(self) -> None:
        pass

    def __getattr__(self, name: str) -> Any:
        def fail(*args: Any, **kwargs: Any) -> Any:
            raise ConnectionError("database down")

        return fail


async def test_a_database_outage_never_affects_traffic() -> None:
    async with OpenAIServer() as primary, OpenAIServer() as shadow:
        cfg = config(primary.base_url, shadow.base_url)
        gw = Gateway(cfg, env={}, store=BrokenStore(), rng=random.Random(7))
        gw.shadow.flush_interval_s = 0.01
        async with serve_app(gw.app()) as root:
            for i in range(3):
                text, _ = await ask(root, f"question {i}")
                assert text
            await gw.shadow.wait_idle()
            assert shadow.requests_total == 3
            assert not await gw.shadow.flush()
            assert gw.shadow.write_failures >= 1 and gw.shadow.written == 0
            text, _ = await ask(root, "still served")
            assert text


async def test_without_a_store_no_shadow_calls_are_made() -> None:
    async with OpenAIServer() as primary, OpenAIServer() as shadow:
        gw = Gateway(config(primary.base_url, shadow.base_url), env={})
        assert not gw.shadow.enabled
        async with serve_app(gw.app()) as root:
            await ask(root, "hello")
            assert primary.requests_total == 1 and shadow.requests_total == 0


def test_compare_from_shadow_usage_errors(db: str, tmp_path: Path) -> None:
    runner = CliRunner()
    both = runner.invoke(
        cli_app,
        ["compare", "--from-shadow", ALIAS, "--suite", "x.yaml", "--out", str(tmp_path)],
    )
    assert both.exit_code == 2
    empty = runner.invoke(
        cli_app, ["compare", "--from-shadow", ALIAS, "--db", db, "--out", str(tmp_path)]
    )
    assert empty.exit_code == 2
    assert "no shadow traffic" in empty.output


def test_request_conversion_and_since() -> None:
    body = {
        "model": ALIAS,
        "messages": [{"role": "user", "content": "hi"}],
        "stream": False,
        "temperature": 0.2,
        "user": "u1",
        "response_format": {"type": "json_object"},
    }
    request = chat_body_to_model_request(body, "req_1")
    assert request.messages == body["messages"]
    assert request.params == {"temperature": 0.2}
    assert request.response_format == {"type": "json_object"}
    assert parse_since("24h").total_seconds() == 86400
    with pytest.raises(ValueError):
        parse_since("yesterday")
