"""The verdict pipeline end to end: triage, slices, watch, gates, reports, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cutover.analysis.gates import parse_gates
from cutover.cli import app
from cutover.errors import InputError
from cutover.reports.build import build_reports
from cutover.runner import compare_recorded
from cutover.store import Store

runner = CliRunner()


def _line(i: int, output: str, *, passed: bool | None = None, tags: dict[str, str] | None = None,
          **extra: object) -> str:  # fmt: skip
    data: dict[str, object] = {"id": f"c{i:03d}", "input": f"question {i}", "output": output}
    if tags is not None:
        data["tags"] = tags
    if passed is not None:
        data["grades"] = {"passed": passed}
    data.update(extra)
    return json.dumps(data)


def write_migration(tmp_path: Path) -> tuple[Path, Path]:
    """60 cases: billing (20) regresses on the new side, support (40) does not."""
    old, new = [], []
    for i in range(60):
        tag = {"use_case": "billing" if i < 20 else "support"}
        old.append(_line(i, f"answer {i}", passed=True, tags=tag, latency_ms=100 + i))
        regressed = i < 14  # 14 of 20 billing cases fail on new
        new.append(_line(i, f"answer {i}", passed=not regressed, tags=tag, latency_ms=90 + i))
    a, b = tmp_path / "old.jsonl", tmp_path / "new.jsonl"
    a.write_text("\n".join(old) + "\n")
    b.write_text("\n".join(new) + "\n")
    return a, b


def test_regressed_slice_is_significant_named_and_gated(tmp_path: Path) -> None:
    a, b = write_migration(tmp_path)
    with Store.open(f"sqlite:///{tmp_path / 's.db'}") as store:
        run = compare_recorded(a, b, store).run
        gates = parse_gates([{"metric": "pass_rate", "slice": "each", "max_drop": 0.05}])
        outcome = build_reports(store, run.id, tmp_path / "out", gates=gates)
    report = json.loads(outcome.paths["json"].read_text())
    rows = {(r["name"], r["metric"]): r for r in report["slices"]}
    billing = rows[("use_case=billing", "pass_rate")]
    assert billing["old"] == 1.0 and billing["new"] == pytest.approx(6 / 20)
    assert billing["test"] == "mcnemar-exact" and billing["p_value"] == pytest.approx(2 * 0.5**14)
    assert billing["significant"] and billing["ci_high"] < 0
    assert not rows[("use_case=support", "pass_rate")]["significant"]
    assert (
        report["watch"]["slice"] == "use_case=billing" and "pass rate" in report["watch"]["reason"]
    )
    assert report["flips"]["negative"] == 14 and report["flips"]["positive"] == 0
    assert report["gate"]["passed"] is False
    failed = [c for c in report["gate"]["criteria"] if not c["passed"]]
    assert [c["slice"] for c in failed] == ["use_case=billing"]
    assert report["triage"]["regression"] == 14
    case = report["cases"][0]
    assert case["triage"] == "regression" and case["reasons"][0].startswith("passed -> failed")
    assert case["old"]["passed"] is True and case["new"]["passed"] is False
    assert "refusal" in case["new"] and "json_valid" in case["new"]
    for name in ("report.md", "report.html", "junit.xml"):
        assert (tmp_path / "out" / name).exists()


def test_triage_regression_novel_improvement_neutral(tmp_path: Path) -> None:
    old = [
        _line(0, "Here is how to reset it: open settings.", tags={"k": "a"}),
        _line(1, '{"plan": "Pro"}', tags={"k": "a"}),
        _line(2, "I'm sorry, but I can't help with that.", tags={"k": "a"}),
        _line(3, "The answer is four.", tags={"k": "a"}),
    ]
    new = [
        _line(0, "I'm sorry, but I can't help with that request.", tags={"k": "a"}),
        _line(1, '```json\n{"plan": "Pro"}\n```', tags={"k": "a"}),
        _line(2, "Sure: open settings and choose reset.", tags={"k": "a"}),
        _line(3, "The answer is four.", tags={"k": "a"}),
    ]
    a, b = tmp_path / "o.jsonl", tmp_path / "n.jsonl"
    a.write_text("\n".join(old) + "\n")
    b.write_text("\n".join(new) + "\n")
    with Store.open(f"sqlite:///{tmp_path / 's.db'}") as store:
        run = compare_recorded(a, b, store).run
        outcome = build_reports(store, run.id, tmp_path / "out")
    cases = {c["id"]: c for c in json.loads(outcome.paths["json"].read_text())["cases"]}
    assert (
        cases["c000"]["triage"] == "regression" and "refusal: no -> yes" in cases["c000"]["reasons"]
    )
    assert cases["c001"]["triage"] == "regression"
    assert any("fenced_json" in r for r in cases["c001"]["reasons"])
    assert (
        cases["c002"]["triage"] == "improvement"
        and "refusal: yes -> no" in cases["c002"]["reasons"]
    )
    assert cases["c003"]["triage"] == "neutral" and cases["c003"]["similarity"] == 1.0
    assert outcome.gate_passed  # no gates: nothing to fail


def test_novel_behaviour_never_seen_in_old_outputs(tmp_path: Path) -> None:
    old = [_line(i, f"Plain answer number {i}.") for i in range(5)]
    new = [_line(i, f"Plain answer number {i}.") for i in range(4)]
    new.append(_line(4, "# Answer\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n- one\n- two\n- three"))
    a, b = tmp_path / "o.jsonl", tmp_path / "n.jsonl"
    a.write_text("\n".join(old) + "\n")
    b.write_text("\n".join(new) + "\n")
    with Store.open(f"sqlite:///{tmp_path / 's.db'}") as store:
        run = compare_recorded(a, b, store).run
        outcome = build_reports(store, run.id, tmp_path / "out")
    report = json.loads(outcome.paths["json"].read_text())
    novel = [c for c in report["cases"] if c["triage"] in ("novel", "regression")]
    assert [c["id"] for c in novel] == ["c004"]
    assert any("never seen" in r or "markdown" in r for r in novel[0]["reasons"])
    notes = " ".join(report["notes"])
    assert "no tags" in notes  # untagged cases are reported, not a crash


def test_bad_input_is_reported_not_raised(tmp_path: Path) -> None:
    old = [_line(0, "a"), _line(1, ""), _line(2, "c")]
    new = [_line(0, "a"), _line(1, ""), _line(3, "d")]
    a, b = tmp_path / "o.jsonl", tmp_path / "n.jsonl"
    a.write_text("\n".join(old) + "\n")
    b.write_text("\n".join(new) + "\n")
    with Store.open(f"sqlite:///{tmp_path / 's.db'}") as store:
        run = compare_recorded(a, b, store).run
        outcome = build_reports(store, run.id, tmp_path / "out")
    report = json.loads(outcome.paths["json"].read_text())
    assert report["unpaired"] == {"only_old": ["c002"], "only_new": ["c003"]}
    notes = " ".join(report["notes"])
    assert "one side only" in notes and "empty" in notes


def test_gate_errors_name_the_field() -> None:
    with pytest.raises(InputError) as info:
        parse_gates([{"metric": "pass_rate", "max_drop": 0.02}, {"metric": "vibes", "max": 1}])
    assert info.value.field == "gates[1].metric" and "pass_rate" in str(info.value)
    with pytest.raises(InputError, match="needs a bound"):
        parse_gates([{"metric": "pass_rate"}])


def test_cli_exit_codes_follow_the_gate(tmp_path: Path) -> None:
    a, b = write_migration(tmp_path)
    failing = tmp_path / "fail.yaml"
    failing.write_text("- {metric: pass_rate, slice: use_case=billing, max_drop: 0.02}\n")
    passing = tmp_path / "pass.yaml"
    passing.write_text("- {metric: pass_rate, slice: use_case=support, max_drop: 0.02}\n")
    base = ["compare", "--old-outputs", str(a), "--new-outputs", str(b)]
    result = runner.invoke(app, [*base, "--out", str(tmp_path / "f"), "--gates", str(failing)])
    assert result.exit_code == 1, result.output
    assert "FAIL" in result.output and "use_case=billing" in result.output
    result = runner.invoke(app, [*base, "--out", str(tmp_path / "p"), "--gates", str(passing)])
    assert result.exit_code == 0, result.output
    bad = tmp_path / "bad.yaml"
    bad.write_text("- {metric: pass_rate}\n")
    result = runner.invoke(app, [*base, "--out", str(tmp_path / "b"), "--gates", str(bad)])
    assert result.exit_code == 2 and "gates[0]" in result.output


def test_demo_names_the_regressed_slice_and_fails_its_gate(tmp_path: Path) -> None:
    result = runner.invoke(app, ["demo", "--out", str(tmp_path / "demo")])
    assert result.exit_code == 1, result.output
    report = json.loads((tmp_path / "demo" / "report.json").read_text())
    assert report["watch"]["slice"] == "use_case=billing"
    assert report["watch"]["significant"] is True
    billing = next(
        r
        for r in report["slices"]
        if r["name"] == "use_case=billing" and r["metric"] == "pass_rate"
    )
    assert billing["p_adjusted"] < 0.05 and billing["delta"] < 0
    assert report["gate"]["passed"] is False
    assert "watch:" in result.output and "use_case=billing" in result.output
