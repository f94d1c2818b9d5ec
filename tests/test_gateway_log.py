"""The gateway's request log, feedback and /metrics, over real sockets.

Upstream: the local OpenAI wire server; client: the official ``openai`` SDK.
The log is read back from the store (SQLite and PostgreSQL through
``store_url``) after polling until the background writer has flushed it.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import anthropic
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from cutover.gateway import Gateway, GatewayConfig
from cutover.gateway.log import LogRecord, LogStore, RequestLog
from cutover.gateway.metrics import GatewayMetrics
from cutover.store import GatewayRequestRow, Store
from cutover.testing import OpenAIServer, serve_app

KEY = "sk-client-1"
BASE = "gpt-4o-mini"
CAND = "gpt-4.1-mini"
MSG: Any = [{"role": "user", "content": "Where is my order?"}]


def config(upstream: str, *, store: str | None = None, **log: Any) -> GatewayConfig:
    return GatewayConfig.model_validate(
        {
            "client_keys": [KEY],
            "store": store,
            "log": {"flush_interval_s": 0.02, **log},
            "routes": {
                "support-bot": {
                    "baseline": f"openai:{BASE}@{upstream}",
                    "candidate": f"openai:{CAND}@{upstream}",
                    "weight": 0,
                    "sticky": "user",
                    "allow": ["carol"],
                }
            },
        }
    )


@asynccontextmanager
async def gateway(
    cfg: GatewayConfig, store: LogStore | None = None
) -> AsyncIterator[tuple[str, Gateway]]:
    gw = Gateway(cfg, env={}, store=store)
    async with serve_app(gw.app()) as root:
        yield root, gw


def client(root: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{root}/v1", api_key=KEY, max_retries=0, timeout=10)


@pytest.fixture
async def upstream() -> AsyncIterator[OpenAIServer]:
    async with OpenAIServer() as server:
        yield server


async def ask(root: str, user: str, content: str = "Where is my order?") -> tuple[str, Any]:
    raw = await client(root).chat.completions.with_raw_response.create(
        model="support-bot", messages=[{"role": "user", "content": content}], user=user
    )
    return raw.headers["x-cutover-request-id"], raw.parse()


async def logged(store: Store, request_id: str, timeout: float = 10.0) -> dict[str, Any]:
    """Poll the store until ``request_id`` is flushed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = await asyncio.to_thread(store.get_gateway_request, request_id)
        if row is not None:
            return row
        await asyncio.sleep(0.02)
    raise AssertionError(f"{request_id} was not logged within {timeout}s")


async def metrics(root: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    async with aiohttp.ClientSession() as s, s.get(f"{root}/metrics") as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain")
        text = await resp.text()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def post_feedback(root: str, body: Any, key: str | None = KEY) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with (
        aiohttp.ClientSession() as s,
        s.post(f"{root}/v1/feedback", json=body, headers=headers) as resp,
    ):
        return resp.status, await resp.json()


# -- the log ------------------------------------------------------------------


async def test_requests_are_logged_with_arm_route_latency_and_tokens(
    upstream: OpenAIServer, store_url: str
) -> None:
    with Store.open(store_url) as store:
        async with gateway(config(upstream.base_url, store=store_url)) as (root, _):
            base_id, completion = await ask(root, "alice")
            stream = await client(root).chat.completions.create(
                model="support-bot",
                messages=MSG,
                user="carol",
                stream=True,
                stream_options={"include_usage": True},
            )
            cand_id = stream.response.headers["x-cutover-request-id"]
            chunks = [c async for c in stream]
            base = await logged(store, base_id)
            cand = await logged(store, cand_id)
    assert base["route"] == "support-bot" and base["arm"] == "baseline"
    assert base["target"] == f"openai:{BASE}" and base["status"] == 200
    assert base["latency_ms"] > 0 and base["ttft_ms"] is None
    assert base["input_tokens"] == completion.usage.prompt_tokens
    assert base["output_tokens"] == completion.usage.completion_tokens
    assert base["cost_usd"] is not None and base["cost_usd"] > 0
    assert base["key_hash"] and "alice" not in base["key_hash"]
    assert base["error_class"] is None
    assert base["prompt"] is None and base["output"] is None  # off by default
    assert base["ts"].tzinfo is not None
    usage = chunks[-1].usage
    assert usage is not None
    assert cand["arm"] == "candidate" and cand["target"] == f"openai:{CAND}"
    assert cand["ttft_ms"] is not None and 0 < cand["ttft_ms"] <= cand["latency_ms"]
    assert (cand["input_tokens"], cand["output_tokens"]) == (
        usage.prompt_tokens,
        usage.completion_tokens,
    )
    assert cand["prompt"] is None and cand["output"] is None


async def test_rejected_requests_are_logged_too(upstream: OpenAIServer, sqlite_url: str) -> None:
    with Store.open(sqlite_url) as store:
        async with gateway(config(upstream.base_url, store=sqlite_url)) as (root, _):
            with pytest.raises(openai.NotFoundError) as info:
                await client(root).chat.completions.create(model="nope", messages=MSG)
            request_id = info.value.response.headers["x-cutover-request-id"]
            row = await logged(store, request_id)
    assert row["status"] == 404 and row["arm"] == "none" and row["route"] is None
    assert row["error_class"] == "model_not_found"


async def test_prompts_redacted_when_enabled(upstream: OpenAIServer, sqlite_url: str) -> None:
    cfg = config(
        upstream.base_url,
        store=sqlite_url,
        prompts=True,
        redact=[r"\b\d{4}-\d{4}-\d{4}-\d{4}\b", r"secret-\w+"],
    )
    text = "My card is 4242-4242-4242-4242 and my token secret-abc123"
    with Store.open(sqlite_url) as store:
        async with gateway(cfg) as (root, _):
            request_id, _ = await ask(root, "alice", text)
            stream = await client(root).chat.completions.create(
                model="support-bot", messages=[{"role": "user", "content": text}], stream=True
            )
            stream_id = stream.response.headers["x-cutover-request-id"]
            _ = [c async for c in stream]
            row = await logged(store, request_id)
            streamed = await logged(store, stream_id)
    for r in (row, streamed):
        assert "4242" not in r["prompt"] and "secret-abc123" not in r["prompt"]
        assert r["prompt"].count("[REDACTED]") == 2
        assert '"role":"user"' in r["prompt"]
        assert r["output"] == "Reply to: My card is [REDACTED] and my token [REDACTED]"


async def test_slice_label_is_logged_from_either_sdk_and_a_bad_one_is_refused(
    upstream: OpenAIServer, sqlite_url: str
) -> None:
    with Store.open(sqlite_url) as store:
        async with gateway(config(upstream.base_url, store=sqlite_url)) as (root, _):
            raw = await client(root).chat.completions.with_raw_response.create(
                model="support-bot",
                messages=MSG,
                user="alice",
                extra_headers={"x-cutover-slice": "medical"},
            )
            claude = anthropic.AsyncAnthropic(base_url=root, api_key=KEY, max_retries=0)
            message = await claude.messages.with_raw_response.create(
                model="support-bot",
                max_tokens=50,
                messages=MSG,
                extra_headers={"x-cutover-slice": "billing:eu"},
            )
            plain_id, _ = await ask(root, "bob")
            with pytest.raises(openai.BadRequestError) as bad:
                await client(root).chat.completions.create(
                    model="support-bot",
                    messages=MSG,
                    extra_headers={"x-cutover-slice": "no spaces please"},
                )
            with pytest.raises(anthropic.BadRequestError) as bad_claude:
                await claude.messages.create(
                    model="support-bot",
                    max_tokens=50,
                    messages=MSG,
                    extra_headers={"x-cutover-slice": "x" * 65},
                )
            rows = [
                await logged(store, rid)
                for rid in (
                    raw.headers["x-cutover-request-id"],
                    message.headers["x-cutover-request-id"],
                    plain_id,
                    bad.value.response.headers["x-cutover-request-id"],
                )
            ]
    assert [r["slice"] for r in rows] == ["medical", "billing:eu", None, None]
    assert rows[3]["status"] == 400 and rows[3]["error_class"] == "invalid_slice"
    error = bad.value.body
    assert isinstance(error, dict) and error["param"] == "x-cutover-slice"
    assert "x-cutover-slice" in error["message"] and "1-64 characters" in error["message"]
    assert "x-cutover-slice" in bad_claude.value.message
    assert len(upstream.received) == 3  # the refused ones never reached the model


# -- feedback -------------------------------------------------------------------


async def test_feedback_is_stored_and_counted_per_arm(
    upstream: OpenAIServer, store_url: str
) -> None:
    since = datetime.now(UTC) - timedelta(minutes=1)
    with Store.open(store_url) as store:
        async with gateway(config(upstream.base_url, store=store_url)) as (root, _):
            base_id, _ = await ask(root, "alice")
            cand_id, _ = await ask(root, "carol")
            cand2_id, _ = await ask(root, "carol")
            # Sent at once: the records may still be queued; they are flushed first.
            assert await post_feedback(root, {"request_id": cand_id, "thumbs": "down"}) == (
                202,
                {"request_id": cand_id, "score": -1.0, "status": "accepted"},
            )
            assert (await post_feedback(root, {"request_id": base_id, "score": 0.8}))[0] == 202
            assert (await post_feedback(root, {"request_id": cand2_id, "thumbs": "up"}))[0] == 202
            status, body = await post_feedback(root, {"request_id": "req_unknown", "score": 1})
            assert status == 404
            assert body["error"]["code"] == "request_not_found"
            assert body["error"]["param"] == "request_id"
            for bad in (
                {"request_id": base_id},
                {"request_id": base_id, "score": 1, "thumbs": "up"},
                {"request_id": base_id, "thumbs": "sideways"},
                {"request_id": base_id, "score": "high"},
                {"request_id": base_id, "score": True},
                {"score": 1},
                ["not", "an", "object"],
            ):
                status, body = await post_feedback(root, bad)
                assert status == 400, bad
                assert body["error"]["type"] == "invalid_request_error"
            assert (await post_feedback(root, {"request_id": base_id, "score": 1}, key=None))[
                0
            ] == 401
            samples = await metrics(root)
        stats = store.gateway_arm_stats("support-bot", since)
        row = store.get_gateway_request(base_id)
    assert row is not None and row["feedback_score"] == 0.8 and row["feedback_at"] is not None
    assert stats["baseline"].requests == 1 and stats["baseline"].feedback == 1
    assert stats["baseline"].negative_feedback_rate == 0.0
    assert stats["candidate"].requests == 2 and stats["candidate"].feedback == 2
    assert stats["candidate"].negative_feedback == 1
    assert stats["candidate"].negative_feedback_rate == 0.5
    assert stats["candidate"].error_rate == 0.0
    name = "cutover_gateway_feedback_total"
    assert value(samples, name, arm="candidate", value="negative") == 1
    assert value(samples, name, arm="candidate", value="positive") == 1
    assert value(samples, name, arm="baseline", value="positive") == 1
    assert value(samples, name, arm="baseline", value="negative") == 0


async def test_feedback_without_a_store_is_503(upstream: OpenAIServer) -> None:
    async with gateway(config(upstream.base_url)) as (root, _):
        request_id, _ = await ask(root, "alice")
        status, body = await post_feedback(root, {"request_id": request_id, "thumbs": "up"})
    assert status == 503 and body["error"]["type"] == "service_unavailable"


# -- metrics --------------------------------------------------------------------


async def test_metrics_count_requests_latency_tokens_and_errors(upstream: OpenAIServer) -> None:
    async with gateway(config(upstream.base_url)) as (root, _):
        completions = [(await ask(root, f"user-{i}"))[1] for i in range(3)]
        _, cand = await ask(root, "carol")
        with pytest.raises(openai.NotFoundError):
            await client(root).chat.completions.create(model="nope", messages=MSG)
        stream = await client(root).chat.completions.create(
            model="support-bot", messages=MSG, user="carol", stream=True
        )
        _ = [c async for c in stream]
        samples = await metrics(root)
    req = "cutover_gateway_requests_total"
    assert value(samples, req, route="support-bot", arm="baseline", status="200") == 3
    assert value(samples, req, route="support-bot", arm="candidate", status="200") == 2
    assert value(samples, req, route="-", arm="none", status="404") == 1
    err = "cutover_gateway_errors_total"
    assert value(samples, err, route="-", arm="none", error_class="model_not_found") == 1
    lat = "cutover_gateway_request_latency_seconds_count"
    assert value(samples, lat, route="support-bot", arm="baseline") == 3
    assert value(samples, lat, route="support-bot", arm="candidate") == 2
    assert (
        value(samples, "cutover_gateway_ttft_seconds_count", route="support-bot", arm="candidate")
        == 1
    )
    tok = "cutover_gateway_tokens_total"
    assert value(samples, tok, route="support-bot", arm="baseline", kind="input") == sum(
        c.usage.prompt_tokens for c in completions
    )
    assert value(samples, tok, route="support-bot", arm="candidate", kind="output") == (
        cand.usage.completion_tokens
    )
    assert value(samples, "cutover_gateway_log_dropped_total") == 0
    assert value(samples, "cutover_gateway_log_write_failures_total") == 0


async def test_each_gateway_has_its_own_registry(upstream: OpenAIServer) -> None:
    async with (
        gateway(config(upstream.base_url)) as (one, _),
        gateway(config(upstream.base_url)) as (two, _),
    ):
        await ask(one, "alice")
        first, second = await metrics(one), await metrics(two)
    req = "cutover_gateway_requests_total"
    assert value(first, req, route="support-bot", arm="baseline", status="200") == 1
    assert value(second, req, route="support-bot", arm="baseline", status="200") == 0


# -- overflow and outages -------------------------------------------------------


class FakeStore:
    """A store whose writes can stall or fail on demand."""

    def __init__(self, *, fail_times: int = 0, stall: bool = False) -> None:
        self.rows: list[GatewayRequestRow] = []
        self.fail_times = fail_times
        self.calls = 0
        self.release = threading.Event()
        if not stall:
            self.release.set()

    def write_gateway_requests(self, rows: Sequence[GatewayRequestRow]) -> None:
        self.calls += 1
        self.release.wait(10)
        if self.fail_times:
            self.fail_times -= 1
            raise OSError("database is down")
        self.rows.extend(rows)

    def record_feedback(self, request_id: str, score: float) -> str | None:
        raise OSError("database is down")


async def wait_for(condition: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.01)


async def test_overflow_drops_and_counts_never_blocks(upstream: OpenAIServer) -> None:
    store = FakeStore(stall=True)
    cfg = config(upstream.base_url, store="sqlite:///unused.db", queue_size=2, batch_size=1)
    async with gateway(cfg, store=store) as (root, gw):
        results = [await ask(root, f"user-{i}") for i in range(10)]
        samples = await metrics(root)
        log = gw.telemetry.log
        dropped = log.dropped
        assert all(c.choices[0].message.content for _, c in results)
        # The batch in flight counts against the bound: 2 records held, 8 dropped.
        assert dropped == 8
        assert len(log) == 2
        assert value(samples, "cutover_gateway_log_dropped_total") == dropped
        store.release.set()
        await wait_for(lambda: len(store.rows) + dropped == 10)
    assert len(store.rows) == 10 - dropped
    assert {r.request_id for r in store.rows} <= {rid for rid, _ in results}


async def test_a_failing_store_never_fails_requests_and_is_retried(
    upstream: OpenAIServer,
) -> None:
    store = FakeStore(fail_times=2)
    cfg = config(upstream.base_url, store="sqlite:///unused.db")
    async with gateway(cfg, store=store) as (root, gw):
        ids = [(await ask(root, f"user-{i}"))[0] for i in range(5)]
        # The rows land in the store (a thread) before the writer counts them on the loop.
        log = gw.telemetry.log
        await wait_for(lambda: len(store.rows) == 5 and log.written == 5)
        samples = await metrics(root)
        status, body = await post_feedback(root, {"request_id": ids[0], "thumbs": "up"})
    assert [r.request_id for r in store.rows] == ids
    assert value(samples, "cutover_gateway_log_write_failures_total") == 2
    assert value(samples, "cutover_gateway_log_written_total") == 5
    assert value(samples, "cutover_gateway_log_dropped_total") == 0
    assert gw.telemetry.log.write_failures == 2
    assert status == 503 and body["error"]["type"] == "service_unavailable"


async def test_an_unopenable_store_never_fails_requests(
    upstream: OpenAIServer, tmp_path: Any
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    cfg = config(upstream.base_url, store=f"sqlite:///{blocker}/sub/gateway.db", queue_size=3)
    async with gateway(cfg) as (root, gw):
        results = [await ask(root, f"user-{i}") for i in range(6)]
        log = gw.telemetry.log
        await wait_for(lambda: log.write_failures >= 1 and log.dropped >= 3)
        samples = await metrics(root)
        held = len(log)
    assert len(results) == 6
    assert value(samples, "cutover_gateway_log_write_failures_total") >= 1
    # Still bounded while the store is down, even with a batch being retried:
    # 3 held (queued or in flight), exactly the other 3 dropped.
    assert held == 3
    assert value(samples, "cutover_gateway_log_dropped_total") == 3


# -- the store ------------------------------------------------------------------


def test_store_writes_batches_idempotently_and_reports_arm_stats(store_url: str) -> None:
    now = datetime.now(UTC)

    def row(i: int, arm: str, status: int = 200) -> GatewayRequestRow:
        return GatewayRequestRow(
            request_id=f"req_{i}",
            ts=now,
            route="bot",
            arm=arm,
            target="openai:m",
            status=status,
            latency_ms=1.5,
            error_class=None if status < 400 else "upstream_error",
        )

    rows = [row(1, "baseline"), row(2, "candidate"), row(3, "candidate", 502)]
    with Store.open(store_url) as store:
        store.write_gateway_requests(rows)
        store.write_gateway_requests(rows[:2])  # a retried batch: no duplicates
        store.write_gateway_requests([])
        assert store.record_feedback("req_2", -0.5) == "candidate"
        assert store.record_feedback("req_missing", 1.0) is None
        with pytest.raises(ValueError, match="finite"):
            store.record_feedback("req_1", float("nan"))
        stats = store.gateway_arm_stats("bot", now - timedelta(seconds=1))
        assert store.gateway_arm_stats("bot", now + timedelta(seconds=1)) == {}
        assert store.gateway_arm_stats("other", now - timedelta(seconds=1)) == {}
    assert stats["baseline"].requests == 1 and stats["baseline"].error_rate == 0
    cand = stats["candidate"]
    assert (cand.requests, cand.errors, cand.feedback, cand.negative_feedback) == (2, 1, 1, 1)
    assert cand.error_rate == 0.5 and cand.negative_feedback_rate == 1.0


async def test_writer_survives_a_long_outage_and_isolates_a_poison_record() -> None:
    """Thousands of failed writes never kill the writer; a record the store always refuses
    is dropped (counted) after a few attempts instead of blocking the queue."""

    class Access:
        def __init__(self) -> None:
            self.down = True
            self.rows: list[str] = []

        async def write_requests(self, records: Sequence[LogRecord]) -> None:
            if self.down or any(r.request_id == "poison" for r in records):
                raise RuntimeError("refused")
            self.rows.extend(r.request_id for r in records)

        async def record_feedback(self, request_id: str, score: float) -> str | None:
            return None

        async def aclose(self) -> None:
            return None

    access = Access()
    log = RequestLog(access, GatewayMetrics(), flush_interval_s=0.001, batch_size=10)
    log._failures_in_a_row = 5000  # as after a long outage: the pause must not overflow
    for i in range(5):
        log.submit(LogRecord(f"r{i}", 0.0, "bot", "baseline", None, 200, 1.0))
    task = asyncio.create_task(log.run())
    await asyncio.sleep(0.05)
    assert not task.done() and log.written == 0  # still trying, alive
    access.down = False
    log.submit(LogRecord("poison", 0.0, "bot", "baseline", None, 200, 1.0))
    for _ in range(400):
        if log.written == 5:
            break
        await asyncio.sleep(0.05)
    task.cancel()
    assert sorted(access.rows) == [f"r{i}" for i in range(5)]
    assert log.dropped == 1 and len(log) == 0


async def test_a_write_cancelled_at_shutdown_puts_its_batch_back() -> None:
    """The writer task is cancelled while a batch is being written: the batch goes back to
    the front of the queue (still pending, nothing dropped) for the last flush to write."""

    class Stalled:
        def __init__(self) -> None:
            self.release = asyncio.Event()
            self.rows: list[str] = []

        async def write_requests(self, records: Sequence[LogRecord]) -> None:
            await self.release.wait()
            self.rows.extend(r.request_id for r in records)

        async def record_feedback(self, request_id: str, score: float) -> str | None:
            return None

        async def aclose(self) -> None:
            return None

    access = Stalled()
    log = RequestLog(access, GatewayMetrics(), queue_size=8, batch_size=100)
    for i in range(6):
        log.submit(LogRecord(f"r{i}", 0.0, "bot", "baseline", None, 200, 1.0))
    flushing = asyncio.create_task(log.flush())
    await asyncio.sleep(0.05)
    assert log._in_flight == 4  # a batch is half the bound at most
    assert log.submit(LogRecord("r6", 0.0, "bot", "baseline", None, 200, 1.0))
    flushing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await flushing
    assert len(log) == 7 and log.dropped == 0
    assert all(log.is_pending(f"r{i}") for i in range(7))
    access.release.set()
    assert await log.flush()
    assert access.rows == [f"r{i}" for i in range(7)]  # in order, none lost
