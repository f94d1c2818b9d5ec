"""The rollout plan file: the example loads exactly; every error names file, line and field."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pytest

from cutover.errors import InputError, PlanError
from cutover.rollout import Margin, Plan, load_plan
from cutover.rollout.plan import format_duration, parse_duration

EXAMPLE = """\
route: support-bot
candidate: openai:gpt-4.1-mini@http://127.0.0.1:18080/v1
stages:
  - {weight: 1, min_requests: 200, min_duration: 5m, max_duration: 2h}
  - {weight: 5, min_requests: 500, min_duration: 10m}
  - {weight: 25, min_requests: 1000, min_duration: 30m}
  - {weight: 50, min_requests: 2000, min_duration: 1h}
  - {weight: 100}
gates:
  - {metric: error_rate, margin: 0.01, hard_limit: 0.05, critical: true}
  - {metric: latency_p95_ms, margin: 20%, hard_limit: 5000}
  - {metric: negative_feedback_rate, margin: 0.02}
  - {metric: refusal_rate, margin: 0.01}
  - {metric: cost_per_request_usd, margin: 10%}
owner: oncall@example.com
notify: [http://127.0.0.1:9000/hook]
"""


def _write(tmp_path: Path, text: str, name: str = "plan.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_the_example_plan_loads_exactly(tmp_path: Path) -> None:
    plan = load_plan(_write(tmp_path, EXAMPLE))
    assert plan.route == "support-bot"
    assert plan.candidate_target.model == "gpt-4.1-mini"
    assert plan.candidate_target.base_url == "http://127.0.0.1:18080/v1"
    assert [s.weight for s in plan.stages] == [1, 5, 25, 50, 100]
    assert [s.min_requests for s in plan.stages] == [200, 500, 1000, 2000, 0]
    assert [s.min_duration for s in plan.stages] == [300, 600, 1800, 3600, 0]
    assert [s.max_duration for s in plan.stages] == [7200, None, None, None, None]
    assert [s.compared for s in plan.stages] == [True, True, True, True, False]
    gates = {g.metric: g for g in plan.gates}
    assert gates["error_rate"].margin == Margin(0.01, relative=False)
    assert gates["error_rate"].hard_limit == 0.05 and gates["error_rate"].critical
    assert gates["latency_p95_ms"].margin == Margin(0.2, relative=True)
    assert gates["latency_p95_ms"].hard_limit == 5000 and not gates["latency_p95_ms"].critical
    assert gates["cost_per_request_usd"].margin == Margin(0.1, relative=True)
    assert gates["negative_feedback_rate"].margin == Margin(0.02, relative=False)
    assert plan.owner == "oncall@example.com"
    assert plan.notify == ("http://127.0.0.1:9000/hook",)
    # the defaults the controller will use
    assert (plan.alpha, plan.on_timeout, plan.rollback_when) == (0.05, "hold", "beyond_margin")
    assert (plan.srm_alpha, plan.on_srm, plan.check_interval) == (0.001, "hold", 60.0)
    assert plan.tests_per_stage == 5 and plan.test_level() == pytest.approx(0.01)


def test_the_packaged_example_is_the_issue_text() -> None:
    packaged = resources.files("cutover.scenarios").joinpath("rollout/example_plan.yaml")
    assert packaged.read_text(encoding="utf-8") == EXAMPLE


def test_as_dict_round_trips_and_writes_as_in_the_file(tmp_path: Path) -> None:
    plan = load_plan(_write(tmp_path, EXAMPLE))
    data = plan.as_dict()
    assert data["stages"][0]["min_duration"] == "5m"
    assert data["stages"][0]["max_duration"] == "2h"
    assert data["gates"][1]["margin"] == "20%"
    assert data["gates"][0]["margin"] == 0.01
    assert Plan.model_validate(data) == plan


def test_slices_count_as_tests(tmp_path: Path) -> None:
    text = EXAMPLE.replace(
        "{metric: refusal_rate, margin: 0.01}",
        "{metric: refusal_rate, margin: 0.01, slices: [medical, legal]}",
    )
    plan = load_plan(_write(tmp_path, text))
    refusal = next(g for g in plan.gates if g.metric == "refusal_rate")
    assert refusal.scopes == ("all", "medical", "legal")
    assert plan.tests_per_stage == 7
    assert plan.test_level() == pytest.approx(0.05 / 7)


def test_every_optional_key(tmp_path: Path) -> None:
    text = (
        EXAMPLE.replace("{weight: 100}\n", "{weight: 100}\n")
        + "alpha: 0.02\nrollback_when: worse\non_timeout: rollback\nsrm_alpha: 0.0001\n"
        + "on_srm: rollback\ncheck_interval: 30s\nhard_limit_min_requests: 50\n"
    ).replace(
        "{metric: refusal_rate, margin: 0.01}",
        "{metric: invalid_output_rate, check: json_valid, margin: 0.01, name: json}\n"
        "  - {metric: judge_score, margin: 0.05, hard_limit: 0.6}\n"
        "  - {metric: ttft_p99_ms, margin: 25%}",
    )
    plan = load_plan(_write(tmp_path, text))
    assert (plan.alpha, plan.rollback_when, plan.on_timeout) == (0.02, "worse", "rollback")
    assert (plan.srm_alpha, plan.on_srm, plan.check_interval) == (0.0001, "rollback", 30.0)
    assert plan.hard_limit_min_requests == 50
    labels = [g.label for g in plan.gates]
    assert "json" in labels and "judge_score" in labels and "ttft_p99_ms" in labels
    judge = next(g for g in plan.gates if g.metric == "judge_score")
    assert not judge.spec.higher_is_worse


def test_a_plan_may_stop_below_100(tmp_path: Path) -> None:
    plan = load_plan(_write(tmp_path, EXAMPLE.replace("  - {weight: 100}\n", "")))
    assert plan.stages[-1].weight == 50


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("5m", 300), ("2h", 7200), ("1h30m", 5400), ("1d", 86400), ("1.5h", 5400),
     ("2m30s", 150), (90, 90), (0, 0), ("1h 30m", 5400)],
)  # fmt: skip
def test_durations(text: str | int, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["2x", "", "m", "-5m", "5 minutes", "h1", True, None, -3])
def test_bad_durations(text: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


@pytest.mark.parametrize("seconds", [1, 59, 60, 300, 3600, 5400, 86400 + 3661])
def test_durations_print_back(seconds: int) -> None:
    assert parse_duration(format_duration(seconds)) == seconds


# (replace this, with that) -> the error's line, field and a part of its message
BAD = [
    ("max_duration: 2h", "max_duration: 2x", 4, "stages.0.max_duration", "invalid duration '2x'"),
    ("max_duration: 2h", "max_duration: 1m", 4, "stages.0.max_duration", "shorter than"),
    ("weight: 25,", "weight: 4,", 6, "stages.2.weight", "weights must increase"),
    ("weight: 25,", "weight: 0,", 6, "stages.2.weight", "greater than 0"),
    ("  - {weight: 100}\n", "  - {weight: 100}\n  - {weight: 100}\n", 8, "stages.4.weight",
     "only the last stage"),
    ("{weight: 100}", "{weight: 100, min_requests: 5}", 8, "stages.4.min_requests",
     "no baseline traffic"),
    ("min_requests: 500", "min_requests: -1", 5, "stages.1.min_requests", "greater than or equal"),
    ("metric: refusal_rate", "metric: refusals", 13, "gates.3.metric", "unknown metric 'refusals'"),
    ("margin: 20%", "margin: 20 percent", 11, "gates.1.margin", "invalid margin"),
    ("margin: 0.02}", "margin: -0.02}", 12, "gates.2.margin", "above 0"),
    ("margin: 0.01, hard", "margin: 1.5, hard", 10, "gates.0.margin", "below 1"),
    ("hard_limit: 0.05", "hard_limit: 5", 10, "gates.0.hard_limit", "fraction in [0, 1]"),
    ("{metric: refusal_rate, margin: 0.01}", "{metric: refusal_rate, margin: 0.01, critical: true}",
     13, "gates.3.critical", "needs a hard_limit"),
    ("{metric: refusal_rate, margin: 0.01}", "{metric: invalid_output_rate, margin: 0.01}", 13,
     "gates.3.check", "needs 'check:'"),
    ("{metric: refusal_rate, margin: 0.01}",
     "{metric: invalid_output_rate, check: jsonish, margin: 0.01}", 13, "gates.3.check",
     "unknown check 'jsonish'"),
    ("{metric: refusal_rate, margin: 0.01}", "{metric: refusal_rate, check: json_valid, margin: 0.01}",
     13, "gates.3.check", "only applies"),
    ("{metric: refusal_rate, margin: 0.01}", "{metric: error_rate, margin: 0.02}", 13,
     "gates.3.metric", "a second gate on error_rate"),
    ("{metric: refusal_rate, margin: 0.01}", "{metric: refusal_rate, margin: 0.01, slices: [all]}",
     13, "gates.3.slices", "always evaluated"),
    ("{metric: refusal_rate, margin: 0.01}", "{metric: refusal_rate, margin: 0.01, slice: x}", 13,
     "gates.3.slice", "unknown key 'slice'"),
    ("openai:gpt", "nope:gpt", 2, "candidate", "unknown provider 'nope'"),
    ("http://127.0.0.1:9000/hook", "ftp://host/hook", 16, "notify", "not an http(s) URL"),
    ("owner: oncall@example.com", "ownr: oncall@example.com", 15, "ownr", "unknown key 'ownr'"),
    ("route: support-bot\n", "", 1, "route", "missing required key 'route'"),
    ("owner: oncall@example.com", "owner: oncall@example.com\nalpha: 0.7", 16, "alpha", "less than 0.5"),
    ("owner: oncall@example.com", "owner: oncall@example.com\non_timeout: wait", 16, "on_timeout",
     "'hold' or 'rollback'"),
]  # fmt: skip


@pytest.mark.parametrize(("old", "new", "line", "field", "message"), BAD)
def test_bad_plans_name_file_line_and_field(
    tmp_path: Path, old: str, new: str, line: int, field: str, message: str
) -> None:
    assert old in EXAMPLE
    path = _write(tmp_path, EXAMPLE.replace(old, new, 1))
    with pytest.raises(PlanError) as info:
        load_plan(path)
    error = info.value
    assert isinstance(error, InputError)
    assert (error.path, error.line, error.field) == (str(path), line, field), str(error)
    assert message in error.message, str(error)
    assert str(error).startswith(f"{path}:{line}: field '{field}': ")


def test_not_a_mapping_not_yaml_not_a_file(tmp_path: Path) -> None:
    with pytest.raises(PlanError, match="expected a mapping") as info:
        load_plan(_write(tmp_path, "- 1\n- 2\n"))
    assert info.value.line == 1
    with pytest.raises(PlanError, match="not valid YAML") as info:
        load_plan(_write(tmp_path, EXAMPLE.replace("stages:", "stages: [")))
    assert info.value.line == 4
    with pytest.raises(PlanError, match="cannot read file"):
        load_plan(tmp_path / "missing.yaml")


def test_nothing_to_compare(tmp_path: Path) -> None:
    head, tail = EXAMPLE.split("stages:\n", 1)
    text = head + "stages:\n  - {weight: 100}\n" + tail[tail.index("gates:") :]
    with pytest.raises(PlanError, match="nothing would be compared") as info:
        load_plan(_write(tmp_path, text))
    assert (info.value.field, info.value.line) == ("stages", 3)


def test_alpha_per_rollout_splits_alpha_over_the_compared_stages(tmp_path: Path) -> None:
    plan = load_plan(_write(tmp_path, EXAMPLE + "alpha_per: rollout\n"))
    # four stages below weight 100, five gate tests each
    assert plan.test_level() == pytest.approx(0.05 / 4 / 5)
    with pytest.raises(PlanError, match="alpha_per"):
        load_plan(_write(tmp_path, EXAMPLE + "alpha_per: ever\n"))


def test_a_judge_block_is_validated_with_its_field(tmp_path: Path) -> None:
    def with_judge(judge: str) -> str:
        gate = f"  - metric: judge_score\n    margin: 0.05\n    judge: {judge}\n"
        return EXAMPLE.replace("owner:", gate + "owner:")

    plan = load_plan(
        _write(tmp_path, with_judge("{target: 'openai:gpt-4.1', rubric: ok, max_per_look: 10}"))
    )
    gate = plan.judge_gate
    assert gate is not None and gate.judge is not None
    assert (gate.judge.max_per_look, gate.judge.sample, gate.judge.concurrency) == (10, 1.0, 4)
    for judge, field, message in [
        ("{target: 'gpt-4.1', rubric: ok}", "gates.5.judge.target", "invalid target"),
        ("{target: 'sim:echo', rubric: ok, max_per_look: 0}", "gates.5.judge.max_per_look", ">= 1"),
        ("{target: 'sim:echo', rubric: ''}", "gates.5.judge.rubric", "at least 1 character"),
        ("{target: 'sim:echo', rubric: ok, sample: 0}", "gates.5.judge.sample", "> 0"),
        ("{target: 'sim:echo'}", "gates.5.judge.rubric", "missing required key"),
    ]:
        with pytest.raises(PlanError) as caught:
            load_plan(_write(tmp_path, with_judge(judge)))
        assert caught.value.field == field, judge
        assert message in caught.value.message.replace("greater than or equal to", ">=").replace(
            "greater than", ">"
        ), caught.value.message
    on_cost = EXAMPLE.replace(
        "{metric: cost_per_request_usd, margin: 10%}",
        "{metric: cost_per_request_usd, margin: 10%, judge: {target: 'sim:echo', rubric: x}}",
    )
    with pytest.raises(PlanError, match="only applies to metric judge_score"):
        load_plan(_write(tmp_path, on_cost))
