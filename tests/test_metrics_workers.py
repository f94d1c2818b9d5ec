"""``/metrics`` with ``--workers N``: any worker answers for the whole host.

The merge is checked against one process that saw everything; the sharing
through the supervisor's directory against a real ``cutover gateway
--workers 2`` (a subprocess on a real port, the official OpenAI SDK as the
client), including a worker killed mid-way whose counts must stay.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import aiohttp
import openai
from prometheus_client.parser import text_string_to_metric_families
from tests.test_gateway_workers import pids_seen, start_workers

from cutover.gateway.metrics import (
    SHARE_INTERVAL_S,
    STALE_AFTER_S,
    GatewayMetrics,
    SharedMetrics,
)
from cutover.gateway.metrics import merge_expositions as merge
from cutover.testing import OpenAIServer

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def samples(text: str | bytes) -> Samples:
    raw = text.decode() if isinstance(text, bytes) else text
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(raw)
        for s in family.samples
    }


def without_created(found: Samples) -> Samples:
    return {k: v for k, v in found.items() if not k[0].endswith("_created")}


def traffic(metrics: GatewayMetrics, requests: list[tuple[str, str, int, float]]) -> None:
    for route, arm, status, latency in requests:
        metrics.observe_request(
            route, arm, status, latency, latency / 2 if status == 200 else None,
            None if status == 200 else "upstream_error", 10, 5 if status == 200 else None,
            retries=int(status >= 500),
        )  # fmt: skip
        metrics.feedback.labels(arm, "positive" if status == 200 else "negative").inc()
    metrics.log_written.inc(len(requests))


REQUESTS = [
    ("bot", "baseline", 200, 0.02),
    ("bot", "candidate", 200, 0.3),
    ("bot", "candidate", 502, 1.5),
    ("faq", "baseline", 200, 0.004),
    ("bot", "baseline", 429, 0.07),
]


def test_merged_workers_equal_one_process_that_saw_everything() -> None:
    one, two, three, everything = (GatewayMetrics() for _ in range(4))
    traffic(one, REQUESTS[:2])
    traffic(two, REQUESTS[2:4])
    traffic(three, REQUESTS[4:])  # a route/arm/status the others never saw
    traffic(everything, REQUESTS)
    merged = merge(m.render().decode() for m in (one, two, three))
    assert without_created(samples(merged)) == without_created(samples(everything.render()))
    key = ("cutover_gateway_requests_total", frozenset({("route", "bot"), ("arm", "candidate"),
                                                       ("status", "502")}))  # fmt: skip
    assert samples(merged)[key] == 1.0
    buckets = [
        v
        for (name, labels), v in samples(merged).items()
        if name == "cutover_gateway_request_latency_seconds_bucket"
        and ("route", "bot") in labels
        and ("arm", "candidate") in labels
    ]
    assert sorted(buckets)[-1] == 2.0  # the +Inf bucket of both workers' candidate answers


def test_a_counters_start_is_the_earliest_not_the_sum() -> None:
    early, late = GatewayMetrics(), GatewayMetrics()
    early.log_dropped.inc(2)
    late.log_dropped.inc(3)
    starts = [
        samples(m.render())[("cutover_gateway_log_dropped_created", frozenset())]
        for m in (early, late)
    ]
    merged = samples(merge([late.render().decode(), early.render().decode()]))
    assert merged[("cutover_gateway_log_dropped_total", frozenset())] == 5.0
    assert merged[("cutover_gateway_log_dropped_created", frozenset())] == min(starts)


async def test_each_worker_adds_the_others_files_but_never_its_own(tmp_path: Path) -> None:
    mine, other = GatewayMetrics(), GatewayMetrics()
    traffic(mine, REQUESTS[:1])
    traffic(other, REQUESTS[1:3])
    shared = SharedMetrics(mine, tmp_path)
    await shared.write()  # an old copy of this worker's own series: must not count twice
    traffic(mine, REQUESTS[3:])  # live since its last write
    (tmp_path / "999999.prom").write_bytes(other.render())
    (tmp_path / "999998.tmp").write_text("half a file being written")  # not a finished file
    host = samples(await shared.render())
    total = sum(v for (name, _), v in host.items() if name == "cutover_gateway_requests_total")
    assert total == len(REQUESTS)
    (tmp_path / "999999.prom").unlink()
    alone = samples(await shared.render())
    assert sum(v for (n, _), v in alone.items() if n == "cutover_gateway_requests_total") == 3


async def test_a_dead_workers_counters_stay_but_not_its_gauges(tmp_path: Path) -> None:
    """A file not written for STALE_AFTER_S is a dead worker's: its shadow counters still
    add up, its spending of the day (a gauge) no longer does; a damaged file is skipped."""
    mine, dead = GatewayMetrics(), GatewayMetrics()
    mine.shadow_counters = lambda: {"scheduled": 2, "spent_usd": {"bot": 0.5}}
    dead.shadow_counters = lambda: {"scheduled": 3, "spent_usd": {"bot": 4.0}}
    old = tmp_path / "999999-00000000.prom"
    old.write_bytes(dead.render())
    (tmp_path / "999998-00000000.prom").write_text("cutover_gateway_requests_total{ 1\n")
    shared = SharedMetrics(mine, tmp_path)
    spent = ("cutover_gateway_shadow_spent_usd", frozenset({("route", "bot")}))
    scheduled = ("cutover_gateway_shadow_scheduled_total", frozenset())
    live = samples(await shared.render())
    assert (live[spent], live[scheduled]) == (4.5, 5.0)  # the other worker is alive
    long_ago = time.time() - STALE_AFTER_S - 1
    os.utime(old, (long_ago, long_ago))
    later = samples(await shared.render())
    assert (later[spent], later[scheduled]) == (0.5, 5.0)


async def _host_requests(root: str) -> float:
    async with aiohttp.ClientSession() as http, http.get(f"{root}/metrics") as resp:
        assert resp.status == 200
        found = samples(await resp.text())
    return sum(v for (n, _), v in found.items() if n == "cutover_gateway_requests_total")


async def _settled(root: str, expected: float, timeout: float = 15.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    last = None
    while asyncio.get_running_loop().time() < deadline:
        last = await _host_requests(root)
        if last == expected:
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"host total {last}, expected {expected}")


def _metrics_dir(pid: int) -> Path:
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    return Path(argv[argv.index(b"--metrics-dir") + 1].decode())


async def test_any_worker_answers_for_the_host_and_a_dead_workers_counts_stay(
    tmp_path: Path,
) -> None:
    async with OpenAIServer() as up:
        proc, root = await start_workers(tmp_path, up)
        try:
            pids = await pids_seen(root)
            assert len(pids) == 2
            shared_dir = _metrics_dir(min(pids))
            assert shared_dir.is_dir()
            seen = [0.0]
            for i in range(40):  # a new client (connection) each time: both workers serve
                async with openai.AsyncOpenAI(base_url=f"{root}/v1", api_key="sk-client-1") as c:
                    await c.chat.completions.create(
                        model="bot", messages=[{"role": "user", "content": f"q{i}"}]
                    )
                seen.append(await _host_requests(root))
            # whichever worker answers, a scrape never shows less than the one before
            assert seen == sorted(seen) and 0 < seen[-1] <= 40
            await _settled(root, 40)
            # Scrapes on fresh connections reach both workers; each answers for the host.
            assert [await _host_requests(root) for _ in range(20)] == [40.0] * 20
            await asyncio.sleep(2 * SHARE_INTERVAL_S)  # both have written their share
            os.kill(min(pids), signal.SIGKILL)
            for _ in range(50):  # the supervisor replaces it
                later = await pids_seen(root, 20)
                if len(later) == 2 and min(pids) not in later:
                    break
                await asyncio.sleep(0.2)
            assert [await _host_requests(root) for _ in range(20)] == [40.0] * 20
        finally:
            proc.send_signal(signal.SIGTERM)
            code = await asyncio.wait_for(proc.wait(), 30)
        assert code == 0
        assert not shared_dir.exists()  # the supervisor's directory goes with it
