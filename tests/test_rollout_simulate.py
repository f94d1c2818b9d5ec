"""The rollout simulator: scenarios load, results are deterministic and shaped as documented,
both policies behave, and it agrees with decide_stage; plus the ``cutover rollout`` commands."""

from __future__ import annotations

import json
import time
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from cutover.errors import ScenarioError
from cutover.rollout import (
    ArmWindow,
    Counts,
    Histogram,
    Moments,
    StageWindow,
    ThresholdPolicy,
    _core,
    decide_stage,
    load_plan,
    load_scenario,
    simulate,
)
from cutover.rollout._traffic import ArmStats, Needs, Traffic

EXAMPLE_SCENARIO = """\
# scenario.yaml (simulated time; no network)
rate_per_s: 50
sessions: 2000
baseline:  {error_rate: 0.01, latency_ms: {median: 800, p95: 2000}, cost_usd: 0.002, negative_feedback_rate: 0.05, refusal_rate: 0.02}
candidate: {error_rate: 0.03, latency_ms: {median: 700, p95: 1800}, cost_usd: 0.0012, negative_feedback_rate: 0.05, refusal_rate: 0.02}
slices:
  medical: {share: 0.1, candidate: {refusal_rate: 0.2}}
"""
PACKAGED = ("no_regression", "error_rate", "latency_p95", "refusals_slice", "at_margin")


def _data(name: str) -> Path:
    return Path(str(resources.files("cutover.scenarios").joinpath(f"rollout/{name}")))


def _small(name: str, tmp_path: Path, **changes: str) -> Path:
    """A packaged scenario at 200 rps and 3 hours, to keep tests quick."""
    text = _data(f"{name}.yaml").read_text()
    text = text.replace("rate_per_s: 500", "rate_per_s: 200").replace(
        "duration: 12h", "duration: 3h"
    )
    for key, value in changes.items():
        text += f"{key}: {value}\n"
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    return path


def test_the_example_scenario_loads_exactly(tmp_path: Path) -> None:
    path = tmp_path / "scenario.yaml"
    path.write_text(EXAMPLE_SCENARIO)
    scenario = load_scenario(path)
    assert (scenario.rate_per_s, scenario.sessions) == (50, 2000)
    assert (scenario.feedback_rate, scenario.duration) == (0.1, 86400)
    assert scenario.slice_shares() == pytest.approx({"medical": 0.1, "": 0.9})
    base = scenario.resolve("baseline", "medical", 0)
    cand = scenario.resolve("candidate", "medical", 0)
    rest = scenario.resolve("candidate", "", 0)
    assert (base.error_rate, base.refusal_rate, base.cost_usd) == (0.01, 0.02, 0.002)
    assert (cand.error_rate, cand.refusal_rate, cand.cost_usd) == (0.03, 0.2, 0.0012)
    assert rest.refusal_rate == 0.02 and rest.negative_feedback_rate == 0.05
    assert cand.latency_ms is not None and cand.latency_ms.median == 700
    # lognormal fitted to the median and the 95th percentile
    assert np.exp(cand.latency_ms.mu + 1.6448536 * cand.latency_ms.sigma) == pytest.approx(1800)
    assert _data("example_scenario.yaml").read_text() == EXAMPLE_SCENARIO


def test_changes_apply_from_their_time(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(
        EXAMPLE_SCENARIO
        + "changes:\n  - {at: 30m, candidate: {error_rate: 0.05}}\n"
        + "  - {at: 1h, slice: medical, baseline: {refusal_rate: 0.04}}\n"
    )
    scenario = load_scenario(path)
    assert scenario.epochs() == (0.0, 1800.0, 3600.0)
    assert scenario.resolve("candidate", "", 1799).error_rate == 0.03
    assert scenario.resolve("candidate", "medical", 1800).error_rate == 0.05
    assert scenario.resolve("baseline", "medical", 3600).refusal_rate == 0.04
    assert scenario.resolve("baseline", "", 3600).refusal_rate == 0.02


@pytest.mark.parametrize(
    ("old", "new", "line", "field"),
    [
        ("p95: 1800", "p95: 600", 5, "candidate.latency_ms.p95"),
        ("refusal_rate: 0.2", "refusal_rate: 2", 7, "slices.medical.candidate.refusal_rate"),
        ("share: 0.1", "share: 1.5", 7, "slices.medical.share"),
        ("sessions:", "sesions:", 3, "sesions"),
        ("rate_per_s: 50", "rate_per_s: 0", 2, "rate_per_s"),
    ],
)
def test_bad_scenarios_name_file_line_and_field(
    tmp_path: Path, old: str, new: str, line: int, field: str
) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(EXAMPLE_SCENARIO.replace(old, new))
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    assert (info.value.path, info.value.line, info.value.field) == (str(path), line, field)


def test_every_packaged_scenario_loads() -> None:
    plan = load_plan(_data("plan.yaml"))
    assert next(g for g in plan.gates if g.metric == "refusal_rate").slices == ("medical",)
    for name in PACKAGED:
        assert load_scenario(_data(f"{name}.yaml")).rate_per_s == 500


def test_result_shape_and_determinism(tmp_path: Path) -> None:
    plan = load_plan(_data("example_plan.yaml"))
    scenario = load_scenario(_data("example_scenario.yaml"))
    first = simulate(plan, scenario, runs=50, seed=3)
    assert simulate(plan, scenario, runs=50, seed=3) == first
    assert simulate(plan, scenario, runs=50, seed=4) != first
    assert first["runs"] == 50
    assert first["promoted"] + first["rolled_back"] + first["held"] == 50
    assert set(first["detection_requests"]) >= {"p50", "p90"}
    assert first["policy"] == "sequential" and first["seed"] == 3
    json.dumps(first)  # plain data
    # the example's candidate errs 3x as often and refuses 10x on medical: rolled back
    assert first["rolled_back"] >= 25
    assert first["detection_requests"]["p50"] <= first["detection_requests"]["p90"]
    assert set(first["causes"]) == {"rolled_back", "held"}


def test_fast_path(tmp_path: Path) -> None:
    plan = load_plan(_data("plan.yaml"))
    scenario = load_scenario(_data("no_regression.yaml"))
    started = time.perf_counter()
    result = simulate(plan, scenario, runs=50, seed=1)
    elapsed = time.perf_counter() - started
    assert result["rolled_back"] == 0
    assert elapsed < 10, f"50 runs took {elapsed:.1f} s"


@pytest.mark.parametrize(
    ("name", "gate"),
    [
        ("error_rate", "error_rate"),
        ("latency_p95", "latency_p95_ms"),
        ("refusals_slice", "refusal_rate@medical"),
    ],
)
def test_regressions_are_rolled_back_by_the_right_gate(
    tmp_path: Path, name: str, gate: str
) -> None:
    plan = load_plan(_data("plan.yaml"))
    result = simulate(plan, load_scenario(_small(name, tmp_path)), runs=50, seed=2)
    assert result["rolled_back"] >= 48
    assert result["rollback_gates"][gate] >= 45


def test_a_change_over_time_is_caught_after_it_happens(tmp_path: Path) -> None:
    path = _small("no_regression", tmp_path)
    path.write_text(path.read_text() + "changes:\n  - {at: 20m, candidate: {error_rate: 0.06}}\n")
    plan = load_plan(_data("plan.yaml"))
    result = simulate(plan, load_scenario(path), runs=50, seed=5)
    assert result["rolled_back"] >= 45
    assert result["detection_minutes"]["p50"] > 20


def test_the_threshold_policy_counts_failed_checks(tmp_path: Path) -> None:
    plan = load_plan(_data("plan.yaml"))
    scenario = load_scenario(_small("no_regression", tmp_path))
    # scale 0: every look where the candidate is any worse fails; 5 failures roll back
    strict = simulate(
        plan, scenario, runs=50, seed=6, policy="threshold", threshold=ThresholdPolicy(0.0, 5)
    )
    assert strict["rolled_back"] == 50 and strict["threshold"] == {"scale": 0.0, "failures": 5}
    assert strict["causes"]["rolled_back"] == {"failed_checks": 50}
    assert strict["detection_minutes"]["p90"] <= 10
    # very lenient: it promotes blind, after each stage's minimum requests and duration
    lenient = simulate(
        plan, scenario, runs=50, seed=6, policy="threshold", threshold=ThresholdPolicy(50.0, 5)
    )
    assert lenient["promoted"] == 50


def test_a_plan_needing_a_metric_the_scenario_lacks(tmp_path: Path) -> None:
    text = (
        _data("plan.yaml")
        .read_text()
        .replace(
            "  - {metric: cost_per_request_usd, margin: 10%}",
            "  - {metric: judge_score, margin: 0.05}",
        )
    )
    path = tmp_path / "plan.yaml"
    path.write_text(text)
    with pytest.raises(ScenarioError, match="judge_score"):
        simulate(load_plan(path), load_scenario(_data("no_regression.yaml")), runs=2)


def test_the_simulator_decides_as_decide_stage_does(tmp_path: Path) -> None:
    """One interval of simulated traffic, judged both ways: the same outcome for every run."""
    plan = load_plan(_data("plan.yaml"))
    scenario = load_scenario(_small("error_rate", tmp_path))
    traffic = Traffic(scenario, Needs.of(plan), 1200.0)  # 20 minutes in one draw
    rng = np.random.default_rng(9)
    runs = 40
    draws = traffic.draw(rng, 0.0, np.full(runs, 0.01))
    design = _core.design_stage(plan, 0)
    edges = traffic.edges

    def window(stats: ArmStats, r: int) -> ArmWindow:
        assert stats.latency is not None
        return ArmWindow(
            requests=int(stats.requests[r]),
            errors=int(stats.errors[r]),
            latency_ms=Histogram(tuple(edges), tuple(int(c) for c in stats.latency[r])),
            cost_usd=Moments(int(stats.requests[r]), stats.cost_sum[r], stats.cost_sq[r]),
            refusals=Counts(int(stats.refusals[r]), int(stats.answered[r])),
            negative_feedback=Counts(int(stats.negative[r]), int(stats.feedback[r])),
        )

    totals = {
        arm: ArmStats.total([draws[(arm, s)] for s in traffic.slices])
        for arm in ("baseline", "candidate")
    }
    data = []
    for test in design.tests:
        if test.scope == "all":
            pair = (totals["baseline"], totals["candidate"])
        else:
            pair = (draws[("baseline", test.scope)], draws[("candidate", test.scope)])
        from cutover.rollout.simulator import _data as sim_data

        data.append((sim_data(test.gate, pair[0], edges), sim_data(test.gate, pair[1], edges)))
    verdicts = _core.evaluate_tests(plan, design, data)
    for r in range(runs):
        medical = (
            window(draws[("baseline", "medical")], r),
            window(draws[("candidate", "medical")], r),
        )
        decision = decide_stage(
            plan,
            0,
            StageWindow(
                window(totals["baseline"], r),
                window(totals["candidate"], r),
                1200.0,
                {"medical": medical},
            ),
        )
        for result, verdict in zip(decision.gates, verdicts, strict=True):
            assert verdict is not None
            assert (result.status == "rollback") == bool(verdict.rollback[r])
            assert (result.status == "pass") == bool(verdict.passed[r] and not verdict.rollback[r])
            assert result.low == pytest.approx(float(verdict.low[r]), rel=1e-9)


# --- the CLI -------------------------------------------------------------------


def _app() -> typer.Typer:
    from cutover.cli.rollout import rollout_app

    app = typer.Typer()
    app.add_typer(rollout_app, name="rollout")
    return app


def test_cli_simulate_writes_result_json(tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    result = CliRunner().invoke(
        _app(),
        [
            "rollout", "simulate", "--plan", str(_data("example_plan.yaml")),
            "--scenario", str(_data("example_scenario.yaml")), "--runs", "20", "--seed", "7",
            "--out", str(out),
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert {"runs", "promoted", "rolled_back", "held", "detection_requests"} <= set(data)
    assert data["runs"] == 20 and {"p50", "p90"} <= set(data["detection_requests"])
    assert "rolled back" in result.output
    threshold = CliRunner().invoke(
        _app(),
        [
            "rollout", "simulate", "--plan", str(_data("example_plan.yaml")),
            "--scenario", str(_data("example_scenario.yaml")), "--runs", "5",
            "--policy", "threshold", "--threshold-scale", "2", "--threshold-failures", "3",
        ],
    )  # fmt: skip
    assert threshold.exit_code == 0, threshold.output
    bad = CliRunner().invoke(
        _app(),
        ["rollout", "simulate", "--plan", str(_data("example_plan.yaml")),
         "--scenario", str(_data("example_scenario.yaml")), "--policy", "magic"],
    )  # fmt: skip
    assert bad.exit_code == 2


def test_cli_check_plan(tmp_path: Path) -> None:
    ok = CliRunner().invoke(_app(), ["rollout", "check-plan", str(_data("example_plan.yaml"))])
    assert ok.exit_code == 0, ok.output
    assert (
        "support-bot" in ok.output and "latency_p95_ms" in ok.output and "2h then hold" in ok.output
    )
    as_json = CliRunner().invoke(
        _app(), ["rollout", "check-plan", "--json", str(_data("example_plan.yaml"))]
    )
    data = json.loads(as_json.output)
    assert data["stages"][0]["max_duration"] == "2h" and data["tests_per_stage"] == 5
    bad = tmp_path / "plan.yaml"
    bad.write_text(_data("example_plan.yaml").read_text().replace("margin: 20%", "margin: lots"))
    failed = CliRunner().invoke(_app(), ["rollout", "check-plan", str(bad)])
    assert failed.exit_code == 2
    assert f"{bad}:11: field 'gates.1.margin'" in failed.output.replace("\n", "")
