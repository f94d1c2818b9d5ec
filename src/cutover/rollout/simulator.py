"""Replay a plan against simulated traffic, many runs at once, with no network.

::

    from cutover.rollout import load_plan, load_scenario, simulate

    result = simulate(load_plan("plan.yaml"), load_scenario("scenario.yaml"), runs=1000, seed=7)
    result["rolled_back"], result["detection_requests"]["p50"]

Every run starts at the plan's first stage and is looked at every
``check_interval`` of simulated time; all runs advance together and each
interval is drawn for all of them at once (:mod:`cutover.rollout._traffic`).
Sessions are sticky: a session's requests all go to one arm, and raising the
weight moves a random part of the baseline's sessions to the candidate, as
hashing the sticky key onto [0, 100) does in the gateway. So the candidate's
realised share of traffic is random around the weight.

Two policies decide at every look:

* ``sequential`` (ours): :func:`cutover.rollout._core.stage_outcome` on the
  stage's cumulative window, exactly what :func:`cutover.rollout.decide_stage`
  does for the controller.
* ``threshold``: a Flagger-style baseline. At every look each gate compares
  the two arms over the last interval only: a check fails when the candidate
  is worse than the baseline by more than ``scale`` times the margin, or past
  a hard limit. Failed checks add up over the rollout (Flagger's
  ``failedChecks``) and ``failures`` of them (Flagger's ``threshold``; 5 by
  default here) roll back. A stage is promoted at the first passing look once
  its minimum requests and duration are met. It has no notion of confidence,
  sample-ratio mismatch or timeout. A critical gate's hard limit rolls back at
  once under both policies.

A run ends rolled back, promoted (it reached weight 100, or passed the last
stage) or held (a hold with an alert: timeout or sample-ratio mismatch; or
still undecided at the scenario's ``duration``).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Literal

import numpy as np
from numpy.typing import NDArray

from cutover.errors import ScenarioError
from cutover.rollout import _core
from cutover.rollout._traffic import ARMS, ArmStats, Needs, Traffic
from cutover.rollout.plan import Gate, Plan
from cutover.rollout.scenario import Scenario
from cutover.rollout.srm import srm_log_e

__all__ = ["POLICIES", "ThresholdPolicy", "simulate"]

POLICIES: Final = ("sequential", "threshold")
Policy = Literal["sequential", "threshold"]

IntArray = NDArray[np.int64]
FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]

_HELD, _PROMOTED, _ROLLED_BACK = 0, 1, 2
_HORIZON: Final = "horizon"


@dataclass(frozen=True, slots=True)
class ThresholdPolicy:
    """The Flagger-style baseline's knobs."""

    scale: float = 1.0
    """A check fails when the candidate is worse by more than ``scale`` x the margin."""
    failures: int = 5
    """Failed checks (over the whole rollout) that roll back; Flagger's ``threshold``."""

    def __post_init__(self) -> None:
        if self.scale < 0 or self.failures < 1:
            raise ValueError("scale must be >= 0 and failures >= 1")


@dataclass
class _Runs:
    """Every run's state (arrays indexed by run)."""

    stage: IntArray
    stage_start: FloatArray
    done: BoolArray
    final: IntArray
    cause: list[str]
    end_time: FloatArray
    candidate_requests: FloatArray
    detection: FloatArray
    candidate_sessions: FloatArray
    seen: dict[str, FloatArray]
    failed: IntArray


def simulate(
    plan: Plan,
    scenario: Scenario,
    *,
    runs: int = 1000,
    seed: int = 0,
    policy: Policy = "sequential",
    threshold: ThresholdPolicy | None = None,
    progress: Callable[[float], None] | None = None,
) -> dict[str, Any]:
    """Simulate ``runs`` rollouts of ``plan`` on ``scenario``; the summary as plain data.

    Deterministic for a given ``seed`` (and ``runs``). ``progress`` is called
    with the share of simulated time done.
    """
    if runs < 1:
        raise ValueError("runs must be >= 1")
    if policy not in POLICIES:
        raise ValueError(f"unknown policy '{policy}'; valid: {', '.join(POLICIES)}")
    knobs = threshold or ThresholdPolicy()
    needs = Needs.of(plan)
    dt = plan.check_interval
    traffic = Traffic(scenario, needs, dt)
    missing = traffic.missing()
    if missing:
        raise ScenarioError(
            f"the plan's gates need {', '.join(missing)}, which the scenario does not set",
            field="baseline." + missing[0],
        )
    rng = np.random.default_rng(seed)
    designs = {i: _core.design_stage(plan, i) for i, s in enumerate(plan.stages) if s.compared}
    state = _Runs(
        stage=np.zeros(runs, dtype=np.int64),
        stage_start=np.zeros(runs),
        done=np.zeros(runs, dtype=bool),
        final=np.full(runs, _HELD, dtype=np.int64),
        cause=[_HORIZON] * runs,
        end_time=np.full(runs, scenario.duration),
        candidate_requests=np.zeros(runs),
        detection=np.full(runs, np.nan),
        candidate_sessions=rng.binomial(scenario.sessions, plan.stages[0].weight / 100.0, runs)
        .astype(np.float64),
        seen={arm: np.zeros(runs) for arm in ARMS},
        failed=np.zeros(runs, dtype=np.int64),
    )  # fmt: skip
    acc = {
        (arm, name): ArmStats.zeros(runs, needs, traffic.bins)
        for arm in ARMS
        for name in traffic.slices
    }
    gate_counts: Counter[str] = Counter()
    p_seen = -math.expm1(-scenario.rate_per_s * dt / scenario.sessions)
    t0 = 0.0
    while t0 < scenario.duration and not state.done.all():
        idx = np.flatnonzero(~state.done)
        share = state.candidate_sessions[idx] / scenario.sessions
        draws = traffic.draw(rng, t0, share)
        for key, stats in draws.items():
            acc[key].add(idx, stats)
        state.candidate_requests[idx] += sum(
            draws[("candidate", s)].requests for s in traffic.slices
        )
        for arm in ARMS:
            on_arm = (
                state.candidate_sessions[idx]
                if arm == "candidate"
                else scenario.sessions - state.candidate_sessions[idx]
            )
            unseen = np.maximum(on_arm - state.seen[arm][idx], 0).astype(np.int64)
            state.seen[arm][idx] += rng.binomial(unseen, p_seen)
        t1 = t0 + dt
        stages = state.stage[idx].copy()  # a run promoted now is judged again next interval
        for k in np.unique(stages):
            at = np.flatnonzero(stages == k)
            sub = idx[at]
            window = {key: d.take(at) for key, d in draws.items()}
            view = _View(acc, traffic, sub)
            if policy == "sequential":
                outcome, why, responsible = _sequential(plan, designs[int(k)], view, state, sub, t1)
            else:
                outcome, why, responsible = _threshold(
                    plan, designs[int(k)], view, _View.of(window, traffic), state, sub, t1, knobs
                )
            _apply(plan, scenario, state, acc, rng, sub, outcome, why, t1)
            for label, mask in responsible.items():
                gate_counts[label] += int(np.count_nonzero(mask & (outcome == _core.ROLLBACK)))
        t0 = t1
        if progress is not None:
            progress(min(t0 / scenario.duration, 1.0))
    return _summary(plan, scenario, state, policy, knobs, gate_counts, runs, seed)


class _View:
    """The per-arm statistics of some runs on each scope, summed over slices for ``all``."""

    def __init__(
        self, acc: dict[tuple[str, str], ArmStats], traffic: Traffic, sub: IntArray | None
    ) -> None:
        self._acc = acc
        self._traffic = traffic
        self._sub = sub
        self._cache: dict[tuple[str, str], ArmStats | None] = {}

    @classmethod
    def of(cls, window: dict[tuple[str, str], ArmStats], traffic: Traffic) -> _View:
        return cls(window, traffic, None)

    @property
    def edges(self) -> FloatArray:
        """The latency bin edges shared by every histogram."""
        return self._traffic.edges

    def get(self, arm: str, scope: str) -> ArmStats | None:
        key = (arm, scope)
        if key not in self._cache:
            names = self._traffic.slices if scope == "all" else (scope,)
            parts = [self._part(arm, n) for n in names if (arm, n) in self._acc]
            self._cache[key] = ArmStats.total(parts) if parts else None
        return self._cache[key]

    def _part(self, arm: str, name: str) -> ArmStats:
        stats = self._acc[(arm, name)]
        return stats if self._sub is None else stats.take(self._sub)


def _data(gate: Gate, stats: ArmStats, edges: FloatArray) -> _core.ArmData:
    kind = gate.spec.kind
    if kind == "rate":
        return _core.RateData(*_rate_fields(gate, stats))
    if kind == "mean":
        if gate.metric == "cost_per_request_usd":
            return _core.MeanData(stats.requests, stats.cost_sum, stats.cost_sq)
        return _core.MeanData(stats.judge_n, stats.judge_sum, stats.judge_sq)
    hist = stats.latency if gate.metric.startswith("latency") else stats.ttft
    assert hist is not None
    return _core.HistData(hist, edges)


def _rate_fields(gate: Gate, stats: ArmStats) -> tuple[FloatArray, FloatArray]:
    if gate.metric == "error_rate":
        return stats.errors, stats.requests
    if gate.metric == "refusal_rate":
        return stats.refusals, stats.answered
    if gate.metric == "negative_feedback_rate":
        return stats.negative, stats.feedback
    assert gate.check is not None
    return stats.invalid[gate.check], stats.answered


def _point(gate: Gate, stats: ArmStats, edges: FloatArray) -> tuple[FloatArray, FloatArray]:
    """The observed value and its number of observations (no interval)."""
    kind = gate.spec.kind
    with np.errstate(divide="ignore", invalid="ignore"):
        if kind == "rate":
            hits, n = _rate_fields(gate, stats)
            return hits / n, n
        if kind == "mean":
            if gate.metric == "cost_per_request_usd":
                return stats.cost_sum / stats.requests, stats.requests
            return stats.judge_sum / stats.judge_n, stats.judge_n
    hist = stats.latency if gate.metric.startswith("latency") else stats.ttft
    assert hist is not None and gate.spec.quantile is not None
    n = hist.sum(axis=1).astype(np.float64)
    return _core.histogram_quantile(hist, edges, gate.spec.quantile), n


def _stage_counts(
    view: _View, state: _Runs, sub: IntArray, design: _core.StageDesign, t1: float
) -> tuple[BoolArray, BoolArray]:
    """(minimums met, timed out) for the runs ``sub`` in stage ``design``."""
    stage = design.stage
    b, c = view.get("baseline", "all"), view.get("candidate", "all")
    assert b is not None and c is not None
    least = np.minimum(b.requests, c.requests)
    elapsed = t1 - state.stage_start[sub]
    minimums = (elapsed >= stage.min_duration - 1e-9) & (least >= stage.min_requests) & (least > 0)
    if stage.max_duration is None:
        return minimums, np.zeros(sub.size, dtype=bool)
    return minimums, elapsed >= stage.max_duration - 1e-9


def _sequential(
    plan: Plan,
    design: _core.StageDesign,
    view: _View,
    state: _Runs,
    sub: IntArray,
    t1: float,
) -> tuple[IntArray, list[str], dict[str, BoolArray]]:
    edges = view.edges
    data: list[tuple[_core.ArmData, _core.ArmData] | None] = []
    for test in design.tests:
        b, c = view.get("baseline", test.scope), view.get("candidate", test.scope)
        # a slice the scenario does not have: no data, so the stage never passes
        data.append(
            None
            if b is None or c is None
            else (_data(test.gate, b, edges), _data(test.gate, c, edges))
        )
    verdicts = _core.evaluate_tests(plan, design, data)
    gates = [g for g in verdicts if g is not None]
    responsible = {
        _label(test): g.breach | g.rollback | g.over_limit
        for test, g in zip(design.tests, verdicts, strict=True)
        if g is not None
    }
    missing = len(gates) < len(design.tests)
    weight = design.stage.weight
    srm = srm_log_e(
        state.seen["baseline"][sub], state.seen["candidate"][sub], weight, plan.srm_alpha
    )
    mismatch = srm >= math.log(1.0 / plan.srm_alpha)
    minimums, timed_out = _stage_counts(view, state, sub, design, t1)
    if missing:
        minimums = np.zeros_like(minimums)
    result = _core.stage_outcome(plan, gates, mismatch, minimums, timed_out)
    causes = [_core.CAUSES[int(c)] for c in result.cause]
    outcome = result.outcome.copy()
    # a hold with an alert (timeout, mismatch) ends the run: a person takes over
    ended_held = (outcome == _core.HOLD) & result.alert
    outcome[ended_held] = -1
    return outcome, causes, responsible


def _threshold(
    plan: Plan,
    design: _core.StageDesign,
    view: _View,
    window: _View,
    state: _Runs,
    sub: IntArray,
    t1: float,
    knobs: ThresholdPolicy,
) -> tuple[IntArray, list[str], dict[str, BoolArray]]:
    edges = view.edges
    failing = np.zeros(sub.size, dtype=bool)
    breach = np.zeros(sub.size, dtype=bool)
    responsible: dict[str, BoolArray] = {}
    for test in design.tests:
        gate = test.gate
        wb, wc = window.get("baseline", test.scope), window.get("candidate", test.scope)
        cb, cc = view.get("baseline", test.scope), view.get("candidate", test.scope)
        if wb is None or wc is None or cb is None or cc is None:
            continue
        (vb, nb), (vc, nc) = _point(gate, wb, edges), _point(gate, wc, edges)
        fails = _threshold_fails(gate, vb, vc, knobs.scale) & (nb > 0) & (nc > 0)
        if gate.hard_limit is not None:
            past = vc > gate.hard_limit if gate.spec.higher_is_worse else vc < gate.hard_limit
            fails |= past & (nc > 0)
        total_c, total_n = _point(gate, cc, edges)
        crossed = np.zeros(sub.size, dtype=bool)
        if gate.critical and gate.hard_limit is not None:
            over = (
                total_c > gate.hard_limit
                if gate.spec.higher_is_worse
                else total_c < gate.hard_limit
            )
            crossed = over & (total_n >= plan.hard_limit_min_requests)
        failing |= fails
        breach |= crossed
        responsible[_label(test)] = fails | crossed
    state.failed[sub] += failing.astype(np.int64)
    minimums, _ = _stage_counts(view, state, sub, design, t1)
    outcome = np.full(sub.size, _core.HOLD, dtype=np.int64)
    causes = ["waiting"] * sub.size
    promote = minimums & ~failing
    rollback = breach | (state.failed[sub] >= knobs.failures)
    outcome[promote] = _core.PROMOTE
    outcome[rollback] = _core.ROLLBACK
    for i in np.flatnonzero(promote):
        causes[i] = "checks_passed"
    for i in np.flatnonzero(rollback):
        causes[i] = "critical_breach" if breach[i] else "failed_checks"
    # only gates failing when the rollback came are responsible for it
    return outcome, causes, responsible


def _threshold_fails(gate: Gate, base: FloatArray, cand: FloatArray, scale: float) -> BoolArray:
    m = gate.margin.value * scale
    with np.errstate(invalid="ignore"):
        if gate.margin.relative:
            if gate.spec.higher_is_worse:
                return np.asarray(cand > base * (1.0 + m))
            return np.asarray(cand < base * (1.0 - m))
        if gate.spec.higher_is_worse:
            return np.asarray(cand - base > m)
        return np.asarray(base - cand > m)


def _label(test: _core.TestDesign) -> str:
    return test.gate.label if test.scope == "all" else f"{test.gate.label}@{test.scope}"


def _apply(
    plan: Plan,
    scenario: Scenario,
    state: _Runs,
    acc: dict[tuple[str, str], ArmStats],
    rng: np.random.Generator,
    sub: IntArray,
    outcome: IntArray,
    causes: list[str],
    t1: float,
) -> None:
    """End, promote or keep each run of ``sub`` according to ``outcome`` (-1: end held)."""
    for mask, final in ((outcome == _core.ROLLBACK, _ROLLED_BACK), (outcome == -1, _HELD)):
        ended = sub[mask]
        state.done[ended] = True
        state.final[ended] = final
        state.end_time[ended] = t1
        for run, i in zip(ended, np.flatnonzero(mask), strict=True):
            state.cause[run] = causes[i]
        if final == _ROLLED_BACK:
            state.detection[ended] = state.candidate_requests[ended]
    moving = sub[outcome == _core.PROMOTE]
    if moving.size == 0:
        return
    old = np.array([plan.stages[s].weight for s in state.stage[moving]])
    state.stage[moving] += 1
    finished = np.array(
        [s >= len(plan.stages) or not plan.stages[s].compared for s in state.stage[moving]]
    )
    done = moving[finished]
    state.done[done] = True
    state.final[done] = _PROMOTED
    state.end_time[done] = t1
    for run in done:
        state.cause[run] = "promoted"
    going = moving[~finished]
    if going.size == 0:
        return
    new = np.array([plan.stages[s].weight for s in state.stage[going]])
    old = old[~finished]
    rest = scenario.sessions - state.candidate_sessions[going]
    extra = rng.binomial(rest.astype(np.int64), np.clip((new - old) / (100.0 - old), 0.0, 1.0))
    state.candidate_sessions[going] += extra
    state.stage_start[going] = t1
    for arm in ARMS:
        state.seen[arm][going] = 0.0
    for stats in acc.values():
        stats.reset(going)


def _percentiles(values: FloatArray) -> dict[str, float | None]:
    if values.size == 0:
        return {"p50": None, "p90": None, "mean": None}
    p50, p90 = np.percentile(values, [50, 90])
    return {"p50": float(p50), "p90": float(p90), "mean": float(values.mean())}


def _summary(
    plan: Plan,
    scenario: Scenario,
    state: _Runs,
    policy: str,
    knobs: ThresholdPolicy,
    gate_counts: Counter[str],
    runs: int,
    seed: int,
) -> dict[str, Any]:
    rolled = state.final == _ROLLED_BACK
    detection = state.detection[rolled]
    minutes = state.end_time[rolled] / 60.0
    by_final: dict[str, Counter[str]] = {"rolled_back": Counter(), "held": Counter()}
    for run in range(runs):
        if state.final[run] == _ROLLED_BACK:
            by_final["rolled_back"][state.cause[run]] += 1
        elif state.final[run] == _HELD:
            by_final["held"][state.cause[run]] += 1
    weights = [
        100.0 if state.final[r] == _PROMOTED else plan.stages[int(state.stage[r])].weight
        for r in range(runs)
    ]
    result: dict[str, Any] = {
        "policy": policy,
        "runs": runs,
        "seed": seed,
        "promoted": int(np.count_nonzero(state.final == _PROMOTED)),
        "rolled_back": int(np.count_nonzero(rolled)),
        "held": int(np.count_nonzero(state.final == _HELD)),
        "detection_requests": _percentiles(detection),
        "detection_minutes": _percentiles(minutes),
        "causes": {k: dict(sorted(v.items())) for k, v in by_final.items()},
        "rollback_gates": dict(sorted(gate_counts.items())),
        "final_weight": {f"{w:g}": n for w, n in sorted(Counter(weights).items())},
        "plan": {
            "route": plan.route,
            "alpha": plan.alpha,
            "rollback_when": plan.rollback_when,
            "check_interval_s": plan.check_interval,
            "weights": [s.weight for s in plan.stages],
        },
        "scenario": {
            "rate_per_s": scenario.rate_per_s,
            "sessions": scenario.sessions,
            "duration_s": scenario.duration,
        },
    }
    if policy == "threshold":
        result["threshold"] = {"scale": knobs.scale, "failures": knobs.failures}
    return result
