"""The side-by-side runner on the sim provider, against SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from cutover.errors import RunAbortedError
from cutover.reports import write_json_report
from cutover.runner import CompareOptions, run_compare
from cutover.store import Store
from cutover.suites import Case, Suite
from cutover.targets import parse_target


def make_suite(n: int, *, name: str = "s") -> Suite:
    cases = [
        Case(
            id=f"c{i:03d}",
            messages=[{"role": "user", "content": f"question number {i}"}],
            tags={"use_case": "billing" if i % 3 == 0 else "support"},
            expected=f"answer {i}",
            critical=i % 3 == 0,
        )
        for i in range(n)
    ]
    return Suite(name=name, cases=cases)


OLD = parse_target("sim:baseline-v1", params={"time_scale": 0})
NEW = parse_target("sim:fast-v2", params={"time_scale": 0})


async def test_records_every_observation_and_pairs(store_url: str, tmp_path: Path) -> None:
    store = Store.open(store_url)
    suite = make_suite(30)
    result = await run_compare(suite, OLD, NEW, store, CompareOptions(concurrency=8))
    assert result.run.status == "complete"
    assert result.progress.done == 60 and result.pairs == 30
    status = store.observation_status(result.run.id)
    assert len(status) == 60
    report = json.loads(write_json_report(store, result.run.id, tmp_path).read_text())
    assert report["summary"]["old"]["n"] == 30 and report["summary"]["new"]["n"] == 30
    assert set(report["summary"]["old"]["latency_ms"]) >= {"p50", "p95", "p99"}
    assert report["summary"]["new"]["cost_usd"] > 0
    assert report["simulated"] is True
    assert [c["id"] for c in report["cases"]] == [c.id for c in suite]
    first = report["cases"][0]
    assert first["tags"] == {"use_case": "billing"} and first["old"]["simulated"] is True
    assert report["targets"]["new"]["label"] == NEW.label
    store.close()


async def test_cache_serves_a_second_run_and_no_cache_calls_again(sqlite_url: str) -> None:
    store = Store.open(sqlite_url)
    suite = make_suite(10)
    first = await run_compare(suite, OLD, NEW, store, CompareOptions(resume=False))
    assert first.progress.called == 20
    again = await run_compare(suite, OLD, NEW, store, CompareOptions(resume=False))
    assert again.progress.called == 0 and again.progress.cached == 20
    assert again.run.id != first.run.id
    fresh = await run_compare(suite, OLD, NEW, store, CompareOptions(resume=False, use_cache=False))
    assert fresh.progress.called == 20 and fresh.progress.cached == 0
    # a cached observation keeps the original figures
    a = list(store.iter_observations(first.run.id, "new"))
    b = list(store.iter_observations(again.run.id, "new"))
    assert [o.output for o in a] == [o.output for o in b]
    assert all(o.cached for o in b) and not any(o.cached for o in a)


async def test_repeats_make_independent_samples(sqlite_url: str, tmp_path: Path) -> None:
    store = Store.open(sqlite_url)
    result = await run_compare(make_suite(4), OLD, NEW, store, CompareOptions(repeats=3))
    assert result.progress.done == 24 and result.pairs == 12
    report = json.loads(write_json_report(store, result.run.id, tmp_path).read_text())
    assert len(report["cases"]) == 4
    samples = report["cases"][0]["samples"]
    assert [s["repeat"] for s in samples] == [0, 1, 2]
    assert len({s["new"]["latency_ms"] for s in samples}) == 3  # repeats are not copies


async def test_cancelled_run_resumes_without_repeating(sqlite_url: str) -> None:
    store = Store.open(sqlite_url)
    slow_old = parse_target("sim:baseline-v1", params={"time_scale": 0.25})
    slow_new = parse_target("sim:fast-v2", params={"time_scale": 0.25})
    suite = make_suite(40)
    task = asyncio.create_task(
        run_compare(
            suite, slow_old, slow_new, store, CompareOptions(concurrency=4, use_cache=False)
        )
    )
    await asyncio.sleep(0.6)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    runs = store.list_runs()
    assert runs[0].status == "interrupted"
    recorded = len(store.observation_status(runs[0].id))
    assert 0 < recorded < 80
    resumed = await run_compare(
        suite, slow_old, slow_new, store, CompareOptions(concurrency=16, use_cache=False)
    )
    assert resumed.resumed and resumed.run.id == runs[0].id
    assert resumed.progress.called == 80 - recorded and resumed.progress.skipped == recorded
    assert len(store.observation_status(runs[0].id)) == 80
    assert resumed.run.status == "complete"


async def test_retry_errors_redoes_only_errors(sqlite_url: str, tmp_path: Path) -> None:
    profile = tmp_path / "flaky.yaml"
    profile.write_text("name: flaky\ntime_scale: 0\nerror_rate: 0.5\nseed: 4\n")
    flaky = parse_target(f"sim:{profile}", max_retries=0)
    store = Store.open(sqlite_url)
    suite = make_suite(20)
    first = await run_compare(suite, OLD, flaky, store, CompareOptions(use_cache=False))
    errors = first.progress.errors
    assert errors > 0
    store.set_run_status(first.run.id, "interrupted")  # pretend it was cut short
    again = await run_compare(
        suite, OLD, flaky, store, CompareOptions(use_cache=False, retry_errors=True)
    )
    assert again.run.id == first.run.id and again.progress.called == errors


async def test_unreachable_target_aborts_quickly_and_keeps_records(sqlite_url: str) -> None:
    store = Store.open(sqlite_url)
    dead = parse_target("openai:gpt-4o-mini@http://127.0.0.1:9/v1", max_retries=1, timeout_s=2)
    with pytest.raises(RunAbortedError, match=r"cannot reach target .*127\.0\.0\.1:9"):
        await run_compare(make_suite(200), OLD, dead, store, CompareOptions(concurrency=4))
    run = store.list_runs()[0]
    assert run.status == "interrupted"
    assert len(store.observation_status(run.id)) > 0  # old-side results were kept
