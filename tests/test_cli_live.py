"""`cutover compare` end to end: a real CLI process against real local servers.

The servers speak the OpenAI and Anthropic wire formats (streaming included)
on real ports; the CLI runs as a separate process, as a user would run it.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

import yaml

from cutover.store import Store
from cutover.testing import AnthropicServer, Fault, OpenAIServer

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_invoice",
            "description": "Look up an invoice",
            "parameters": {
                "type": "object",
                "properties": {"invoice_id": {"type": "string"}},
                "required": ["invoice_id"],
            },
        },
    }
]


def write_suite(path: Path, n: int, *, with_tool: bool = True) -> Path:
    cases: list[dict[str, object]] = [
        {
            "id": f"q{i:03d}",
            "messages": [{"role": "user", "content": f"Question {i}: how do I reset a password?"}],
            "tags": {"use_case": "support" if i % 2 else "billing"},
        }
        for i in range(n)
    ]
    if with_tool:
        cases.append(
            {
                "id": "tool-1",
                "messages": [{"role": "user", "content": "Please call get_invoice for INV-7"}],
                "tools": TOOLS,
                "tags": {"use_case": "tools"},
            }
        )
    path.write_text(yaml.safe_dump({"name": "live", "cases": cases}))
    return path


async def cutover(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "cutover",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
    )
    out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_compare_live_openai_vs_anthropic_streaming(tmp_path: Path) -> None:
    suite = write_suite(tmp_path / "suite.yaml", 5)
    db = f"sqlite:///{tmp_path / 'c.db'}"
    async with OpenAIServer(latency_s=0.02) as oai, AnthropicServer(latency_s=0.02) as ant:
        code, out, err = await cutover(
            "compare", "--suite", str(suite),
            "--old", f"openai:gpt-4o-mini@{oai.base_url}",
            "--new", f"anthropic:claude-sonnet-4-5@{ant.base_url}",
            "--out", str(tmp_path / "out"), "--db", db, "--concurrency", "4",
        )  # fmt: skip
        assert code == 0, err
        assert oai.requests_total == 6 and ant.requests_total == 6
        assert all(r.body.get("stream") is True for r in oai.received)
        assert all(r.body.get("stream") is True for r in ant.received)
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert f"report: {tmp_path / 'out' / 'report.json'}" in out
    for arm in ("old", "new"):
        s = report["summary"][arm]
        assert s["n"] == 6 and s["error_rate"] == 0
        assert s["latency_ms"]["p50"] >= 20  # the server's fixed latency
        assert s["ttft_ms"] is not None  # measured from the stream
        assert s["cost_usd"] > 0  # priced from genai-prices
    tool_case = next(c for c in report["cases"] if c["id"] == "tool-1")
    for arm in ("old", "new"):
        assert tool_case[arm]["tool_calls"][0]["name"] == "get_invoice"
        assert tool_case[arm]["finish_reason"] == "tool_calls"
    assert report["simulated"] is False


async def test_upstream_faults_are_retried_or_recorded(tmp_path: Path) -> None:
    suite = write_suite(tmp_path / "suite.yaml", 8, with_tool=False)
    targets = tmp_path / "targets.yaml"
    db = f"sqlite:///{tmp_path / 'c.db'}"
    async with OpenAIServer() as server:
        targets.write_text(
            "targets:\n"
            f"  patient: {{target: 'openai:model-a@{server.base_url}', max_retries: 4}}\n"
            f"  impatient: {{target: 'openai:model-b@{server.base_url}', max_retries: 0}}\n"
        )
        server.inject(
            Fault.status(429, retry_after=0.05), Fault.status(503), Fault.garbage(), Fault.half_stream(),
            model="model-a",
        )  # fmt: skip
        server.inject(Fault.status(500), Fault.half_stream(), model="model-b")
        code, _, err = await cutover(
            "compare", "--suite", str(suite), "--targets", str(targets), "--old", "patient",
            "--new", "impatient", "--out", str(tmp_path / "out"), "--db", db, "--concurrency", "1",
        )  # fmt: skip
        assert code == 0, err
        assert server.requests_by_model["model-a"] == 8 + 4  # four faults, each retried once
        assert server.requests_by_model["model-b"] == 8  # no retries
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    old, new = report["summary"]["old"], report["summary"]["new"]
    assert old["errors"] == 0 and old["retried_n"] >= 1
    assert new["errors"] == 2 and new["error_classes"] == {
        "malformed_response": 1,
        "server_error": 1,
    }
    broken = [c["new"] for c in report["cases"] if c["new"]["error_class"] == "malformed_response"]
    assert broken[0]["output"]  # the half stream's text is kept


async def test_kill_halfway_then_resume_repeats_no_finished_call(tmp_path: Path) -> None:
    suite = write_suite(tmp_path / "suite.yaml", 40, with_tool=False)
    db_path = tmp_path / "c.db"
    db = f"sqlite:///{db_path}"
    async with OpenAIServer(latency_s=0.15) as server:
        args = [
            "compare", "--suite", str(suite),
            "--old", f"openai:model-a@{server.base_url}", "--new", f"openai:model-b@{server.base_url}",
            "--out", str(tmp_path / "out"), "--db", db, "--concurrency", "4", "--no-cache",
        ]  # fmt: skip
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "cutover", *args,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        # Timed, not counted in polls: the CLI's start (Python, imports, the store) takes
        # seconds on a loaded machine, and the kill must come after 20 recorded calls.
        recorded = 0
        deadline = asyncio.get_running_loop().time() + 60
        while recorded < 20 and asyncio.get_running_loop().time() < deadline:
            assert proc.returncode is None, "the run ended before it was killed"
            await asyncio.sleep(0.05)
            if db_path.exists():
                with Store.open(db) as store:
                    runs = store.list_runs()
                    recorded = len(store.observation_status(runs[0].id)) if runs else 0
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
        with Store.open(db) as store:
            run = store.list_runs()[0]
            assert run.status == "running"  # killed: nothing got to say otherwise
            finished = len(store.observation_status(run.id))
        assert 20 <= finished < 80
        server.reset()
        code, out, err = await cutover(*args)
        assert code == 0, err
        assert "resumed" in out
        assert server.requests_total == 80 - finished  # only what was missing
    with Store.open(db) as store:
        assert store.list_runs()[0].id == run.id
        assert len(store.observation_status(run.id)) == 80
        assert store.get_run(run.id).status == "complete"  # type: ignore[union-attr]


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


async def test_ctrl_c_marks_interrupted_and_exits_130(tmp_path: Path) -> None:
    suite = write_suite(tmp_path / "suite.yaml", 80, with_tool=False)
    db_path = tmp_path / "c.db"
    async with OpenAIServer(latency_s=0.3) as server:  # ~6 s of work: Ctrl-C lands mid-run
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "cutover", "compare", "--suite", str(suite),
            "--old", f"openai:a@{server.base_url}", "--new", f"openai:b@{server.base_url}",
            "--out", str(tmp_path / "out"), "--db", f"sqlite:///{db_path}", "--concurrency", "4",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            # As from a terminal: a runner that started us in the background (SIGINT
            # ignored, which children inherit) must not make Ctrl-C a no-op here.
            preexec_fn=_default_sigint,
        )  # fmt: skip
        while server.requests_total < 12:
            await asyncio.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _, err = await proc.communicate()
    assert proc.returncode == 130, err.decode()
    assert "run the same command again" in err.decode()
    with Store.open(f"sqlite:///{db_path}") as store:
        run = store.list_runs()[0]
        assert run.status == "interrupted"
        assert len(store.observation_status(run.id)) >= 8


def _judge_answer(request: object, tag: str) -> str:
    import re

    text = getattr(request, "last_user_text", "")
    match = re.search(rf"<{tag}>\n(.*?)\n</{tag}>", text, re.S)
    return match.group(1) if match else ""


async def test_judge_prefers_new_then_fails_and_run_still_reports(tmp_path: Path) -> None:
    old = tmp_path / "old.jsonl"
    new = tmp_path / "new.jsonl"
    old.write_text(
        "".join(
            f'{{"id": "c{i}", "input": "q{i}", "output": "I do not know the answer to that question"}}\n'
            for i in range(6)
        )
    )
    new.write_text(
        "".join(
            f'{{"id": "c{i}", "input": "q{i}", "output": "You will get a refund to your card soon"}}\n'
            for i in range(6)
        )
    )

    def fair(request: object) -> str:
        letter = "A" if "refund" in _judge_answer(request, "answer_A") else "B"
        return f'{{"winner": "{letter}", "reason": "{letter} offers the refund"}}'

    async with OpenAIServer(responder=fair) as judge:
        code, _, err = await cutover(
            "compare", "--old-outputs", str(old), "--new-outputs", str(new),
            "--out", str(tmp_path / "o"), "--db", f"sqlite:///{tmp_path / 'c.db'}",
            "--judge", f"openai:judge@{judge.base_url}", "--judge-sample", "4",
        )  # fmt: skip
        assert code == 0, err
        assert judge.requests_total == 8  # 4 pairs x both orders
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    judged = [c for c in report["cases"] if c["judge"]]
    assert len(judged) == 4
    assert all(c["judge"]["winner"] == "new" and c["judge"]["consistent"] for c in judged)
    assert all(c["triage"] == "improvement" for c in judged)
    assert "judge compared 4 pairs" in " ".join(report["notes"])
    async with OpenAIServer() as broken:
        broken.inject(*[Fault.status(500)] * 40)
        code, _, err = await cutover(
            "compare", "--old-outputs", str(old), "--new-outputs", str(new),
            "--out", str(tmp_path / "b"), "--db", f"sqlite:///{tmp_path / 'c.db'}",
            "--judge", f"openai:judge@{broken.base_url}", "--judge-sample", "2",
        )  # fmt: skip
    assert code == 0, err  # a failing judge is reported, never a traceback
    report = json.loads((tmp_path / "b" / "report.json").read_text())
    assert "judge call(s) failed" in " ".join(report["notes"])
    assert all(c["judge"] is None or c["judge"]["winner"] is None for c in report["cases"])


async def test_llm_rubric_assertions_are_scored_by_the_judge(tmp_path: Path) -> None:
    suite = tmp_path / "suite.yaml"
    suite.write_text(
        yaml.safe_dump(
            {
                "cases": [
                    {
                        "id": f"r{i}",
                        "input": f"Can I get my money back for order {i}?",
                        "expected": "Yes, you will get a refund within 5 days."
                        if i % 2
                        else "Please contact the shop.",
                        "assert": [{"type": "llm-rubric", "value": "offers a refund"}],
                    }
                    for i in range(4)
                ]
            }
        )
    )

    def rubric(request: object) -> str:
        score = 0.9 if "refund" in _judge_answer(request, "answer") else 0.1
        return f'{{"score": {score}, "reason": "refund offered: {score > 0.5}"}}'

    async with OpenAIServer(responder=rubric) as judge:
        code, _, err = await cutover(
            "compare", "--suite", str(suite), "--old", "sim:echo", "--new", "sim:echo",
            "--out", str(tmp_path / "o"), "--db", f"sqlite:///{tmp_path / 'c.db'}",
            "--judge", f"openai:judge@{judge.base_url}", "--judge-sample", "0",
        )  # fmt: skip
        assert code == 0, err
        assert judge.requests_total == 8  # 4 cases x 2 sides, no pairwise (sample 0)
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    by_id = {c["id"]: c for c in report["cases"]}
    for i in range(4):
        side = by_id[f"r{i}"]["new"]
        assert side["assertions"][0]["type"] == "llm-rubric"
        assert side["passed"] is bool(i % 2)
        assert side["assertions"][0]["score"] == (0.9 if i % 2 else 0.1)
