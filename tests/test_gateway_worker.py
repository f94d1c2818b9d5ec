"""The store worker process: the gateway configured with a store URL, as in production.

The request log, feedback and the shadow run in a child process
(``cutover.gateway._worker_main``); these tests drive the gateway over a real
socket with the official SDKs and read what the worker wrote from the SQLite
file, kill the worker mid-traffic, and check the shadow counters in /metrics.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import anthropic
import openai
import pytest

from cutover.gateway import Gateway, GatewayConfig
from cutover.store import Store
from cutover.testing import AnthropicServer, OpenAIServer, serve_app

KEY = "sk-client-1"
ALIAS = "support-bot"


def config(db: str, primary: str, shadow: str | None = None, **route: Any) -> GatewayConfig:
    entry: dict[str, Any] = {"baseline": f"openai:gpt-4o-mini@{primary}", "sticky": "none"}
    if shadow is not None:
        entry["shadow"] = {"target": {"target": shadow, "max_retries": 0}}
    entry.update(route)
    return GatewayConfig.model_validate(
        {
            "client_keys": [KEY],
            "store": db,
            "log": {"flush_interval_s": 0.05},
            "routes": {ALIAS: entry},
        }
    )


@asynccontextmanager
async def serving(cfg: GatewayConfig) -> AsyncIterator[tuple[str, Gateway]]:
    gw = Gateway(cfg, env={})
    async with serve_app(gw.app()) as root:
        yield root, gw


async def logged(db: str, request_ids: set[str], timeout: float = 20.0) -> set[str]:
    """Poll the store until every id is logged; the ids found."""
    found: set[str] = set()
    deadline = asyncio.get_running_loop().time() + timeout
    with Store.open(db) as store:
        while asyncio.get_running_loop().time() < deadline:
            found = {
                rid
                for rid in request_ids
                if await asyncio.to_thread(store.get_gateway_request, rid) is not None
            }
            if found == request_ids:
                break
            await asyncio.sleep(0.05)
    return found


async def shadow_completed(gw: Gateway, n: int, timeout: float = 30.0) -> int:
    """Poll the worker's shadow counters (sent every second) until ``n`` calls completed."""
    deadline = asyncio.get_running_loop().time() + timeout
    while (done := gw.shadow.counters().get("completed", 0)) < n:
        if asyncio.get_running_loop().time() >= deadline:
            break
        await asyncio.sleep(0.05)
    return int(done)


@pytest.fixture
def db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'gateway.db'}"


async def test_worker_writes_the_request_log_and_feedback(db: str) -> None:
    async with OpenAIServer() as up, serving(config(db, up.base_url)) as (root, gw):
        assert gw.worker is not None and gw.worker.running
        assert gw.worker.pid != os.getpid()
        client = openai.AsyncOpenAI(base_url=f"{root}/v1", api_key=KEY, max_retries=0)
        ids: set[str] = set()
        for i in range(20):
            raw = await client.chat.completions.with_raw_response.create(
                model=ALIAS, messages=[{"role": "user", "content": f"q{i}"}]
            )
            ids.add(raw.headers["x-cutover-request-id"])
        assert await logged(db, ids) == ids
        one = sorted(ids)[0]
        answer = await client.post(
            "/feedback", body={"request_id": one, "thumbs": "down"}, cast_to=object
        )
        assert answer == {"request_id": one, "score": -1.0, "status": "accepted"}
    with Store.open(db) as store:
        row = store.get_gateway_request(one)
    assert row is not None and row["feedback_score"] == -1.0 and row["arm"] == "baseline"
    assert row["input_tokens"] and row["output_tokens"] and row["route"] == ALIAS


async def test_killed_worker_restarts_and_no_record_is_lost(db: str) -> None:
    async with OpenAIServer() as up, serving(config(db, up.base_url)) as (root, gw):
        assert gw.worker is not None
        client = openai.AsyncOpenAI(base_url=f"{root}/v1", api_key=KEY, max_retries=0)
        ids: set[str] = set()
        first_pid = gw.worker.pid
        assert first_pid is not None
        for i in range(60):
            if i == 20:
                os.kill(first_pid, signal.SIGKILL)  # mid-traffic
            raw = await client.chat.completions.with_raw_response.create(
                model=ALIAS, messages=[{"role": "user", "content": f"q{i}"}]
            )
            assert raw.http_response.status_code == 200  # traffic never notices
            ids.add(raw.headers["x-cutover-request-id"])
            await asyncio.sleep(0.005)
        assert await logged(db, ids) == ids  # the records queued while it was down too
        assert gw.worker.starts >= 2 and gw.worker.pid != first_pid


async def test_worker_shadows_both_dialects_streamed_and_not(db: str) -> None:
    async with (
        OpenAIServer() as up,
        AnthropicServer() as shadow_up,
        serving(config(db, up.base_url, f"anthropic:claude-haiku-4-5@{shadow_up.base_url}")) as (
            root,
            gw,
        ),
    ):
        oa = openai.AsyncOpenAI(base_url=f"{root}/v1", api_key=KEY, max_retries=0)
        an = anthropic.AsyncAnthropic(base_url=root, api_key=KEY, max_retries=0)
        await oa.chat.completions.create(model=ALIAS, messages=[{"role": "user", "content": "a"}])
        stream = await oa.chat.completions.create(
            model=ALIAS,
            messages=[{"role": "user", "content": "b"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        streamed = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
        await an.messages.create(
            model=ALIAS, max_tokens=64, messages=[{"role": "user", "content": "c"}]
        )
        async with an.messages.stream(
            model=ALIAS, max_tokens=64, messages=[{"role": "user", "content": "d"}]
        ) as s:
            anthropic_streamed = await s.get_final_text()
        assert streamed and anthropic_streamed
        assert await shadow_completed(gw, 4) == 4
    # closing the gateway closed the worker, which wrote the pairs
    with Store.open(db) as store:
        (run,) = [r for r in store.list_runs() if r.kind == "shadow"]
        pairs = list(store.iter_pairs(run.id))
    assert len(pairs) == 4
    by_text = {p.case.messages[-1]["content"]: p for p in pairs if p.case is not None}
    assert set(by_text) == {"a", "b", "c", "d"}
    for pair in pairs:
        assert pair.old is not None and pair.old.error is None and pair.old.output
        assert pair.new is not None and pair.new.error is None and pair.new.output
        assert pair.old.input_tokens and pair.old.output_tokens
    assert by_text["b"].old is not None and by_text["b"].old.output == streamed
    assert by_text["d"].old is not None and by_text["d"].old.output == anthropic_streamed


async def test_metrics_show_the_workers_shadow_counters(db: str) -> None:
    async with (
        OpenAIServer() as up,
        OpenAIServer() as shadow_up,
        serving(config(db, up.base_url, f"openai:gpt-4o@{shadow_up.base_url}")) as (root, gw),
    ):
        oa = openai.AsyncOpenAI(base_url=f"{root}/v1", api_key=KEY, max_retries=0)
        for i in range(3):
            await oa.chat.completions.create(
                model=ALIAS, messages=[{"role": "user", "content": f"m{i}"}]
            )
        # counters reach the gateway with the worker's next status
        assert await shadow_completed(gw, 3) == 3
        async with aiohttp.ClientSession() as http, http.get(f"{root}/metrics") as resp:
            text = await resp.text()
    assert "cutover_gateway_shadow_completed_total 3.0" in text
    assert "cutover_gateway_shadow_errors_total 0.0" in text
    assert 'cutover_gateway_shadow_spent_usd{route="support-bot"}' in text
    assert (
        'cutover_gateway_requests_total{arm="baseline",route="support-bot",status="200"} 3.0'
        in (text)
    )


def test_log_records_keep_the_store_rows_field_order() -> None:
    from dataclasses import fields
    from datetime import UTC, datetime

    from cutover.gateway.log import LogRecord, rows_from_records
    from cutover.store import GatewayRequestRow

    stored = tuple(f.name for f in fields(GatewayRequestRow))
    assert LogRecord._fields[:15] == stored[:15]
    assert stored[15:] == ("refused", "checks", "slice") and LogRecord._fields[18] == "slice"
    record = LogRecord("req_1", 1_700_000_000.5, "r", "candidate", "openai:m", 429, 3.0, None, 1, 2)
    (row,) = rows_from_records([tuple(record)])
    assert row.ts == datetime.fromtimestamp(1_700_000_000.5, UTC) and row.ts.tzinfo is UTC
    assert (row.arm, row.status, row.input_tokens, row.output_tokens) == ("candidate", 429, 1, 2)
    assert row.refused is None  # no answer text: not checked
    assert row.slice is None
    (labelled,) = rows_from_records([tuple(record._replace(slice="medical"))])
    assert labelled.slice == "medical" and labelled.status == 429
    refusing = record._replace(status=200, answer_text="I'm sorry, but I can't help with that.")
    answering = record._replace(status=200, answer_text="Paris is the capital of France.")
    rows = rows_from_records([tuple(refusing), tuple(answering)])
    assert [r.refused for r in rows] == [True, False]
    assert all(r.output is None for r in rows)  # the text is checked, not stored
    json_format = {"type": "json_object"}
    good = record._replace(status=200, answer_text='{"a": 1}', response_format=json_format)
    prose = record._replace(
        status=200, answer_text='Sure! Here it is: {"a": 1}', response_format=json_format
    )
    plain = record._replace(status=200, answer_text="Just words.")
    checked = rows_from_records([tuple(good), tuple(prose), tuple(plain)])
    assert checked[0].checks is not None and checked[0].checks["json_valid"] == 0
    assert checked[1].checks is not None and checked[1].checks["json_valid"] == 1
    assert checked[2].checks is not None and "json_valid" not in checked[2].checks  # not asked
    sse = (
        b'data: {"choices":[{"index":0,"delta":{"content":"I\'m sorry, but I can\'t"}}]}\n\n'
        b'data: {"choices":[{"index":0,"delta":{"content":" help with that."}}]}\n\n'
        b"data: [DONE]\n\n"
    )
    (streamed,) = rows_from_records([tuple(record._replace(status=200, answer_stream=sse))])
    assert streamed.refused is True and streamed.output is None  # read in the worker
