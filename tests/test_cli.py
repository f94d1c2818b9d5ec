"""The CLI's usage, bad-input handling and exit codes (in-process, no network)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cutover.cli import app
from cutover.store import Store

runner = CliRunner()


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


SUITE = """\
name: tiny
cases:
  - id: a
    messages: [{role: user, content: "hello"}]
    tags: {use_case: support}
    expected: "hi there"
  - id: b
    prompt: "Extract {{what}}"
    vars: {what: "the total"}
    tags: [billing, "tenant:acme"]
"""


def compare_sim(suite: Path, out: Path, *extra: str, old: str = "sim:echo") -> tuple[int, str]:
    """`cutover compare` of ``old`` against sim:echo."""
    return invoke(
        "compare", "--suite", str(suite), "--old", old, "--new", "sim:echo", "--out", str(out), *extra
    )  # fmt: skip


def invoke(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output + (result.stderr if result.stderr_bytes else "")


def test_compare_sim_writes_report_and_prints_path(tmp_path: Path) -> None:
    suite = write(tmp_path / "s.yaml", SUITE)
    code, out = invoke(
        "compare", "--suite", str(suite), "--old", "sim:echo", "--new", "sim:fast-v2",
        "--out", str(tmp_path / "o"), "-q",
    )  # fmt: skip
    assert code == 0, out
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    assert report["summary"]["old"]["n"] == 2 and report["simulated"] is True
    assert [c["tags"] for c in report["cases"]] == [
        {"use_case": "support"},
        {"billing": "true", "tenant": "acme"},
    ]
    assert report["cases"][1]["input"] == [{"role": "user", "content": "Extract the total"}]
    assert "report.json" in out
    # the default store is under CUTOVER_HOME (set per test by conftest)
    with Store.open() as store:
        assert store.list_runs()[0].suite_name == "tiny"


def test_recorded_outputs_pair_by_id_and_report_unpaired(tmp_path: Path) -> None:
    old = write(
        tmp_path / "old.jsonl",
        '{"id": "1", "input": "q1", "output": "a1", "latency_ms": 120, "usage": {"input_tokens": 5, "output_tokens": 3}}\n'
        '{"id": "2", "input": "q2", "output": "a2", "latency_ms": 80, "tags": {"slice": "x"}}\n'
        '{"id": "3", "input": "q3", "output": null, "error": "timeout"}\n',
    )
    new = write(
        tmp_path / "new.jsonl",
        '{"id": "1", "input": "q1", "output": "b1", "latency_ms": 60}\n'
        '{"id": "2", "input": "q2", "output": "b2", "latency_ms": 70}\n'
        '{"id": "4", "input": "q4", "output": "b4", "latency_ms": 50}\n',
    )
    code, out = invoke(
        "compare",
        "--old-outputs",
        str(old),
        "--new-outputs",
        str(new),
        "--out",
        str(tmp_path / "o"),
    )
    assert code == 0, out
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    assert report["unpaired"] == {"only_old": ["3"], "only_new": ["4"]}
    assert report["summary"]["old"]["n"] == 3 and report["summary"]["old"][
        "error_rate"
    ] == pytest.approx(1 / 3)
    assert (
        report["summary"]["old"]["latency_ms"]["p50"] == 100.0
    )  # recorded latencies, not measured
    assert report["cases"][1]["tags"] == {"slice": "x"}
    assert "only in" in out


@pytest.mark.parametrize(
    ("suite_text", "needles"),
    [
        ("cases:\n  - id: a\n    mesages: []\n", ["s.yaml:3", "mesages"]),
        (
            "cases:\n  - id: a\n    messages: [{role: user, content: hi}]\n    assert: [{type: equalz}]\n",
            ["s.yaml:4", "equalz", "equals"],
        ),
        ("cases: [\n", ["s.yaml", "YAML"]),
    ],
)
def test_malformed_suite_exits_2_naming_file_line_field(
    tmp_path: Path, suite_text: str, needles: list[str]
) -> None:
    suite = write(tmp_path / "s.yaml", suite_text)
    code, out = compare_sim(suite, tmp_path)
    assert code == 2
    for needle in needles:
        assert needle in out


def test_bad_targets_and_usage_exit_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    suite = write(tmp_path / "s.yaml", SUITE)
    base = ["compare", "--suite", str(suite), "--out", str(tmp_path / "o")]
    code, out = invoke(*base, "--old", "cohere:command", "--new", "sim:echo")
    assert code == 2 and "unknown provider 'cohere'" in out and "anthropic" in out
    code, out = invoke(*base, "--old", "sim:nope", "--new", "sim:echo")
    assert code == 2 and "fast-v2" in out
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    code, out = invoke(*base, "--old", "openai:gpt-4o-mini", "--new", "sim:echo")
    assert code == 2 and "OPENAI_API_KEY" in out
    with Store.open() as store:
        assert store.list_runs() == []  # nothing recorded for a run that could not start
    code, out = invoke("compare", "--out", str(tmp_path))
    assert code == 2 and "--suite" in out
    code, out = invoke(*base)
    assert code == 2 and "--old is required" in out


def test_unreachable_target_exits_3_and_says_how_to_resume(tmp_path: Path) -> None:
    suite = write(tmp_path / "s.yaml", SUITE)
    targets = write(
        tmp_path / "t.yaml",
        "targets:\n  dead: {target: 'openai:m@http://127.0.0.1:9/v1', max_retries: 0}\n",
    )
    code, out = invoke(
        "compare", "--suite", str(suite), "--targets", str(targets), "--old", "sim:echo",
        "--new", "dead", "--out", str(tmp_path / "o"), "-q", "-c", "1",
    )  # fmt: skip
    # only two cases: the target fails each, but three failures are needed to abort
    assert code == 0, out
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    assert report["summary"]["new"]["error_classes"] == {"connection_error": 2}
    many = write(
        tmp_path / "m.jsonl", "".join(f'{{"id": "c{i}", "input": "q{i}"}}\n' for i in range(10))
    )
    code, out = invoke(
        "compare", "--suite", str(many), "--targets", str(targets), "--old", "sim:echo",
        "--new", "dead", "--out", str(tmp_path / "o2"), "-q", "-c", "1",
    )  # fmt: skip
    assert code == 3
    assert (
        "cannot reach target" in out
        and "127.0.0.1:9" in out
        and "run the same command again" in out
    )


def test_runs_list_report_and_suite_check(tmp_path: Path) -> None:
    suite = write(tmp_path / "s.yaml", SUITE)
    code, _ = compare_sim(suite, tmp_path / "o", "-q")
    assert code == 0
    code, out = invoke("runs", "list")
    assert code == 0 and "tiny" in out and "complete" in out
    with Store.open() as store:
        run_id = store.list_runs()[0].id
    code, out = invoke("report", run_id[:8], "--out", str(tmp_path / "again"))
    assert code == 0 and (tmp_path / "again" / "report.json").exists()
    code, out = invoke("report", "ffffffffff", "--out", str(tmp_path / "x"))
    assert code == 2 and "no run" in out
    code, out = invoke("suite", "check", str(suite))
    assert code == 0 and "2 cases" in out and "tenant=acme" in out


def test_replay_target_serves_recorded_outputs_with_their_figures(tmp_path: Path) -> None:
    suite = write(tmp_path / "s.yaml", SUITE)
    recorded = write(
        tmp_path / "old.jsonl",
        '{"id": "a", "output": "recorded a", "latency_ms": 321, "usage": {"prompt_tokens": 7, "completion_tokens": 2}}\n'
        # no id: matched by the hash of the rendered input
        '{"input": [{"role": "user", "content": "Extract the total"}], "output": "recorded b", "latency_ms": 99}\n',
    )
    code, out = compare_sim(suite, tmp_path / "o", "-q", old=f"replay:{recorded}")
    assert code == 0, out
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    old = {c["id"]: c["old"] for c in report["cases"]}
    assert old["a"]["output"] == "recorded a" and old["a"]["latency_ms"] == 321
    assert old["a"]["input_tokens"] == 7 and old["a"]["output_tokens"] == 2
    assert old["b"]["output"] == "recorded b"
    partial = write(tmp_path / "partial.jsonl", '{"id": "a", "output": "only a"}\n')
    code, out = compare_sim(suite, tmp_path / "p", "-q", old=f"replay:{partial}")
    assert code == 0, out
    report = json.loads((tmp_path / "p" / "report.json").read_text())
    missing = report["cases"][1]["old"]
    assert (
        missing["error_class"] == "request_error"
        and "no recorded output for case 'b'" in missing["error"]
    )
