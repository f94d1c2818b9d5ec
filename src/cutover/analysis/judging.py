"""Judging one Pair: checks and assertions on each side, then triage.

Each side of a Pair gets its check values (:mod:`cutover.checks`), its
assertion results (:mod:`cutover.assertions`), a verdict (``passed``) and a
``score``:

- ``passed``: all evaluable assertions passed; with no assertions, the grade
  ``passed`` recorded with the output (e.g. a human label); else unknown. A
  failed call fails whatever the assertions say.
- ``score``: the mean assertion score when any assertion has one, else the
  recorded grade ``score``, else the first numeric grade.

Triage of a Pair, with reasons:

- **regression**: the new side got worse on anything: passed -> failed, a new
  error, a bad check flip (valid JSON -> invalid, started refusing, fenced
  JSON, preamble, truncation, invalid tool calls...), a score drop beyond the
  margin, or a judge preferring the old output;
- **novel**: nothing got worse, but the new output's behaviour (the
  combination of its check values) never occurs among the old outputs;
- **improvement**: something got better and nothing worse;
- **neutral**: nothing measurable changed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from cutover.assertions import AssertionResult, evaluate_all
from cutover.checks import BAD_WHEN_FALSE, BAD_WHEN_TRUE, CheckContext, CheckValue, check_values
from cutover.records import Observation, Pair
from cutover.suites import Case

SIGNATURE_CHECKS = (*sorted(BAD_WHEN_TRUE | BAD_WHEN_FALSE), "refusal_kind", "language", "markdown")
"""The check values whose combination is an output's behaviour (for ``novel``)."""


@dataclass(slots=True)
class SideVerdict:
    """What the analysis concluded about one side of a Pair."""

    checks: dict[str, CheckValue]
    assertions: list[AssertionResult]
    passed: bool | None
    score: float | None
    error: bool

    def signature(self) -> tuple[CheckValue, ...]:
        return tuple(self.checks.get(name) for name in SIGNATURE_CHECKS)

    def to_dict(self) -> dict[str, Any]:
        return {
            "checks": self.checks,
            "refusal": self.checks.get("refusal"),
            "json_valid": self.checks.get("json_valid"),
            "assertions": [
                {"type": a.type, "passed": a.passed, "score": a.score, "reason": a.reason}
                for a in self.assertions
            ],
            "passed": self.passed,
            "score": self.score,
        }


@dataclass(slots=True)
class PairVerdict:
    """One Pair judged: both sides, triage and the reasons."""

    case_id: str
    repeat: int
    tags: dict[str, str]
    critical: bool
    old: SideVerdict | None
    new: SideVerdict | None
    triage: str = "neutral"
    reasons: list[str] = field(default_factory=list)
    worse: list[str] = field(default_factory=list)
    better: list[str] = field(default_factory=list)
    similarity: float | None = None
    judge: dict[str, Any] | None = None
    latency: tuple[float | None, float | None] = (None, None)
    cost: tuple[float | None, float | None] = (None, None)


def format_expectation(fmt: Any) -> tuple[dict[str, Any] | None, bool]:
    """From an OpenAI ``response_format``: the JSON schema asked for (if any), and whether
    JSON is asked for at all."""
    if not isinstance(fmt, dict) or fmt.get("type") not in ("json_object", "json_schema"):
        return None, False
    inner = fmt.get("json_schema") or {}
    if isinstance(inner, dict) and isinstance(inner.get("schema"), dict):
        return inner["schema"], True
    return None, True


def context_for(case: Case | None) -> CheckContext:
    """What the checks may know about a case."""
    if case is None:
        return CheckContext()
    schema, expects_json = format_expectation(case.response_format)
    for assertion in case.asserts:
        if assertion.type in ("is-json", "json-schema"):
            expects_json = True
        if assertion.type == "json-schema" and isinstance(assertion.value, dict):
            schema = assertion.value
    expected = case.expected
    if expected is not None and expected.lstrip()[:1] in ("{", "["):
        try:
            orjson.loads(expected)
            expects_json = True
        except orjson.JSONDecodeError:
            pass
    return CheckContext(
        tools=case.tools,
        response_format=case.response_format,
        json_schema=schema,
        expects_json=expects_json,
        expected=expected,
    )


def _score_from(results: list[AssertionResult], grades: dict[str, Any]) -> float | None:
    scores = [r.score for r in results if r.score is not None]
    if scores:
        return sum(scores) / len(scores)
    value = grades.get("score")
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    for value in grades.values():
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    return None


def judge_side(obs: Observation, case: Case | None, ctx: CheckContext) -> SideVerdict:
    """Checks, assertions, verdict and score of one Observation."""
    checks = check_values(obs, ctx)
    results = evaluate_all(case, obs) if case is not None and case.asserts else []
    return side_verdict(obs, checks, results)


def side_verdict(
    obs: Observation, checks: dict[str, CheckValue], results: list[AssertionResult]
) -> SideVerdict:
    """The verdict and score of a side from its check values and assertion results."""
    known = [r.passed for r in results if r.passed is not None]
    passed: bool | None
    if obs.error is not None:
        passed = False
    elif known:
        passed = all(known)
    elif isinstance(obs.grades.get("passed"), bool):
        passed = bool(obs.grades["passed"])
    else:
        passed = None
    return SideVerdict(
        checks, results, passed, _score_from(results, obs.grades), obs.error is not None
    )


def flips(old: SideVerdict, new: SideVerdict, score_margin: float) -> tuple[list[str], list[str]]:
    """What got worse and what got better from the old side to the new one."""
    worse: list[str] = []
    better: list[str] = []
    if not old.error and new.error:
        worse.append("the new call failed")
    elif old.error and not new.error:
        better.append("the old call failed, the new one answered")
    if old.passed is True and new.passed is False and not new.error:
        failed = [a.type for a in new.assertions if a.passed is False]
        worse.append("passed -> failed" + (f" ({', '.join(failed)})" if failed else ""))
    elif old.passed is False and new.passed is True:
        better.append("failed -> passed")
    for name in sorted(BAD_WHEN_TRUE):
        a, b = old.checks.get(name), new.checks.get(name)
        if a is False and b is True:
            worse.append(f"{name}: no -> yes")
        elif a is True and b is False:
            better.append(f"{name}: yes -> no")
    for name in sorted(BAD_WHEN_FALSE):
        a, b = old.checks.get(name), new.checks.get(name)
        if a is True and b is False:
            worse.append(f"{name}: yes -> no")
        elif a is False and b is True:
            better.append(f"{name}: no -> yes")
    if old.score is not None and new.score is not None:
        delta = new.score - old.score
        if delta <= -score_margin:
            worse.append(f"score {old.score:.3g} -> {new.score:.3g}")
        elif delta >= score_margin:
            better.append(f"score {old.score:.3g} -> {new.score:.3g}")
    return worse, better


def similarity(old: Observation, new: Observation) -> float | None:
    """Lexical similarity of the two outputs in [0, 1] (rapidfuzz normalized Indel)."""
    if old.output is None or new.output is None:
        return None
    from rapidfuzz.distance import Indel

    return round(float(Indel.normalized_similarity(old.output, new.output)), 4)


def _ok_latency(obs: Observation | None) -> float | None:
    return obs.latency_ms if obs is not None and obs.error is None else None


def judge_pair(pair: Pair, *, score_margin: float = 0.1) -> PairVerdict:
    """Both sides judged and the pair's flips listed (triage is settled later)."""
    case = pair.case
    ctx = context_for(case)
    old = judge_side(pair.old, case, ctx) if pair.old is not None else None
    new = judge_side(pair.new, case, ctx) if pair.new is not None else None
    verdict = PairVerdict(pair.case_id, pair.repeat, dict(pair.tags), pair.critical, old, new)
    verdict.latency = (_ok_latency(pair.old), _ok_latency(pair.new))
    verdict.cost = (
        pair.old.cost_usd if pair.old is not None else None,
        pair.new.cost_usd if pair.new is not None else None,
    )
    if old is not None and new is not None and pair.old is not None and pair.new is not None:
        verdict.worse, verdict.better = flips(old, new, score_margin)
        verdict.similarity = similarity(pair.old, pair.new)
    return verdict


def settle_triage(verdict: PairVerdict, old_signatures: set[tuple[CheckValue, ...]]) -> None:
    """Regression > novel > improvement > neutral, with the reasons."""
    if verdict.old is None or verdict.new is None:
        verdict.triage = "neutral"
        verdict.reasons = ["unpaired: only one side was recorded"]
        return
    judge = verdict.judge or {}
    if judge.get("winner") == "old":
        verdict.worse.append(
            f"the judge prefers the old output ({judge.get('reason', '')})".strip()
        )
    elif judge.get("winner") == "new":
        verdict.better.append("the judge prefers the new output")
    if verdict.worse:
        verdict.triage = "regression"
        verdict.reasons = verdict.worse + [f"(also better: {b})" for b in verdict.better]
    elif not verdict.new.error and verdict.new.signature() not in old_signatures:
        verdict.triage = "novel"
        shown = ", ".join(
            f"{n}={v}" for n, v in zip(SIGNATURE_CHECKS, verdict.new.signature(), strict=True) if v
        )
        verdict.reasons = [
            f"behaviour never seen in old outputs: {shown or 'none'}",
            *verdict.better,
        ]
    elif verdict.better:
        verdict.triage = "improvement"
        verdict.reasons = list(verdict.better)
    else:
        verdict.triage = "neutral"
        verdict.reasons = []


__all__ = [
    "SIGNATURE_CHECKS",
    "PairVerdict",
    "SideVerdict",
    "context_for",
    "flips",
    "judge_pair",
    "judge_side",
    "settle_triage",
    "side_verdict",
    "similarity",
]
