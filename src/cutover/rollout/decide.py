"""One look at one stage: per-arm windowed metrics in, promote / hold / roll back out.

This is what the rollout controller calls at every check interval. It is
pure: the controller reads the stage's window from the store (both arms over
the same window, from the stage's start), builds an :class:`ArmWindow` per
arm (and per slice a gate asks for), and records the :class:`StageDecision`
it gets back, which carries every gate's estimate and interval: the metrics
that drove the decision.

::

    from cutover.rollout import ArmWindow, Counts, Moments, StageWindow, decide_stage, load_plan

    plan = load_plan("plan.yaml")
    window = StageWindow(
        baseline=ArmWindow(requests=19_800, errors=190, units=1_980, latency_ms=base_latencies,
                           cost_usd=Moments.of(base_costs), refusals=Counts(380, 19_610),
                           negative_feedback=Counts(98, 1_960)),
        candidate=ArmWindow(requests=200, errors=9, units=20, ...),
        elapsed_s=600,
    )
    decision = decide_stage(plan, 0, window)
    decision.outcome        # "hold", "promote" or "rollback"
    decision.reasons        # ("error_rate: candidate 4.5% over its hard limit 5%...",)

A metric the window does not carry (``None``) gives its gate the status
``no_data``: it can neither roll back nor let the stage be promoted.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike

from cutover.rollout import _core
from cutover.rollout.plan import Gate, Plan, format_duration
from cutover.rollout.srm import SrmResult, srm_test

__all__ = [
    "ArmWindow",
    "Counts",
    "GateResult",
    "Histogram",
    "Moments",
    "StageDecision",
    "StageWindow",
    "decide_stage",
]

Outcome = Literal["promote", "hold", "rollback"]
GateStatus = Literal["pass", "inconclusive", "rollback", "over_limit", "breach", "no_data"]


@dataclass(frozen=True, slots=True)
class Counts:
    """A rate's numerator and denominator: ``hits`` of ``n``."""

    hits: int
    n: int

    def __post_init__(self) -> None:
        if not 0 <= self.hits <= self.n:
            raise ValueError(f"need 0 <= hits <= n, got {self.hits} of {self.n}")


@dataclass(frozen=True, slots=True)
class Moments:
    """A mean's sufficient statistics: count, sum and sum of squares."""

    n: int
    total: float
    total_sq: float

    @classmethod
    def of(cls, values: ArrayLike) -> Moments:
        v = np.asarray(values, dtype=np.float64)
        v = v[np.isfinite(v)]
        return cls(int(v.size), float(v.sum()), float(np.dot(v, v)))


@dataclass(frozen=True, slots=True)
class Histogram:
    """Binned observations (e.g. latency buckets): ``len(edges) == len(counts) + 1``.

    Quantile bounds from a histogram are the edges of the bins the order
    statistics fall in, so they are conservative by up to one bin.
    """

    edges: tuple[float, ...]
    counts: tuple[int, ...]

    def __post_init__(self) -> None:
        if len(self.edges) != len(self.counts) + 1:
            raise ValueError("a histogram needs one more edge than counts")
        if any(b <= a for a, b in zip(self.edges, self.edges[1:], strict=False)):
            raise ValueError("histogram edges must increase")


@dataclass(frozen=True)
class ArmWindow:
    """One arm's metrics over the stage's window (from the stage start to now).

    ``units`` is the number of distinct sessions (sticky keys) seen, for the
    sample-ratio check; leave it ``None`` when requests are assigned one by
    one. ``latency_ms``/``ttft_ms`` are the observations (any sequence) or a
    :class:`Histogram`. ``refusals`` and ``invalid_outputs`` count over
    answered requests; ``negative_feedback`` over requests that got feedback.
    """

    requests: int = 0
    errors: int = 0
    units: int | None = None
    latency_ms: Sequence[float] | np.ndarray | Histogram | None = None
    ttft_ms: Sequence[float] | np.ndarray | Histogram | None = None
    cost_usd: Moments | None = None
    refusals: Counts | None = None
    negative_feedback: Counts | None = None
    invalid_outputs: Mapping[str, Counts] = field(default_factory=dict)
    """Check name (e.g. ``json_valid``) -> outputs it flagged, of outputs judged."""
    judge_score: Moments | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.errors <= self.requests:
            raise ValueError(f"need 0 <= errors <= requests, got {self.errors} of {self.requests}")


@dataclass(frozen=True)
class StageWindow:
    """Both arms over the same window, plus the slices the plan's gates name."""

    baseline: ArmWindow
    candidate: ArmWindow
    elapsed_s: float
    """Time since the stage started."""
    slices: Mapping[str, tuple[ArmWindow, ArmWindow]] = field(default_factory=dict)
    """Slice name -> (baseline, candidate) windows."""


@dataclass(frozen=True, slots=True)
class GateResult:
    """One gate on one scope at this look: what was measured and what it means."""

    gate: str
    metric: str
    scope: str
    status: GateStatus
    critical: bool
    baseline: float | None
    candidate: float | None
    estimate: float | None
    low: float | None
    high: float | None
    scale: Literal["difference", "ratio"]
    threshold: float
    n_baseline: int
    n_candidate: int
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "gate": self.gate,
            "metric": self.metric,
            "scope": self.scope,
            "status": self.status,
            "critical": self.critical,
            "baseline": self.baseline,
            "candidate": self.candidate,
            "estimate": self.estimate,
            "interval": [self.low, self.high],
            "scale": self.scale,
            "threshold": self.threshold,
            "n": {"baseline": self.n_baseline, "candidate": self.n_candidate},
            "reason": self.reason,
        }


@dataclass(frozen=True, slots=True)
class StageDecision:
    """The outcome of one look at a stage and everything that drove it."""

    stage: int
    weight: float
    outcome: Outcome
    cause: str
    """``waiting``, ``critical_breach``, ``beyond_margin``, ``over_hard_limit``,
    ``sample_ratio_mismatch``, ``timeout``, ``non_inferior`` or ``final_stage``."""
    alert: bool
    """A hold a person must look at (sample-ratio mismatch, or timeout)."""
    reasons: tuple[str, ...]
    gates: tuple[GateResult, ...]
    srm: SrmResult | None
    elapsed_s: float
    requests: tuple[int, int]
    """(baseline, candidate) requests in the window."""
    minimums_met: bool
    test_level: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "weight": self.weight,
            "outcome": self.outcome,
            "cause": self.cause,
            "alert": self.alert,
            "reasons": list(self.reasons),
            "elapsed_s": self.elapsed_s,
            "requests": {"baseline": self.requests[0], "candidate": self.requests[1]},
            "minimums_met": self.minimums_met,
            "test_level": self.test_level,
            "srm": self.srm.to_dict() if self.srm else None,
            "gates": [g.to_dict() for g in self.gates],
        }


def decide_stage(plan: Plan, stage_index: int, window: StageWindow) -> StageDecision:
    """Judge stage ``stage_index`` of ``plan`` on ``window``: promote, hold or roll back."""
    if not 0 <= stage_index < len(plan.stages):
        raise ValueError(f"the plan has {len(plan.stages)} stages, no index {stage_index}")
    stage = plan.stages[stage_index]
    requests = (window.baseline.requests, window.candidate.requests)
    if not stage.compared:
        return StageDecision(
            stage_index, stage.weight, "promote", "final_stage", False,
            ("final stage: the candidate serves all traffic",), (), None,
            window.elapsed_s, requests, True, 0.0,
        )  # fmt: skip
    design = _core.design_stage(plan, stage_index)
    pairs = [_scope_windows(window, test.scope) for test in design.tests]
    data = [
        None if pair is None else _arm_data(test.gate, *pair)
        for test, pair in zip(design.tests, pairs, strict=True)
    ]
    verdicts = _core.evaluate_tests(plan, design, data)
    results = [
        _result(
            test, verdict, "slice not in the window" if pair is None else "metric not in the window"
        )
        for test, pair, verdict in zip(design.tests, pairs, verdicts, strict=True)
    ]
    arrays = [v if v is not None else _no_data_arrays() for v in verdicts]
    srm = _srm(plan, stage.weight, window)
    minimums = (
        window.elapsed_s >= stage.min_duration
        and min(requests) >= stage.min_requests
        and min(requests) > 0
    )
    timed_out = stage.max_duration is not None and window.elapsed_s >= stage.max_duration
    outcome = _core.stage_outcome(
        plan,
        arrays,
        np.array([srm is not None and srm.mismatch]),
        np.array([minimums]),
        np.array([timed_out]),
    )
    code, cause = int(outcome.outcome[0]), _core.CAUSES[int(outcome.cause[0])]
    reasons = _reasons(cause, results, srm, stage.max_duration, minimums)
    return StageDecision(
        stage=stage_index,
        weight=stage.weight,
        outcome=_OUTCOME_NAMES[code],
        cause=cause,
        alert=bool(outcome.alert[0]),
        reasons=reasons,
        gates=tuple(results),
        srm=srm,
        elapsed_s=window.elapsed_s,
        requests=requests,
        minimums_met=minimums,
        test_level=design.test_level,
    )


_OUTCOME_NAMES: tuple[Outcome, Outcome, Outcome] = ("hold", "promote", "rollback")


def _scope_windows(window: StageWindow, scope: str) -> tuple[ArmWindow, ArmWindow] | None:
    if scope == "all":
        return window.baseline, window.candidate
    return window.slices.get(scope)


def _result(test: _core.TestDesign, g: _core.GateArrays | None, missing: str) -> GateResult:
    gate = test.gate
    scale: Literal["difference", "ratio"] = "ratio" if gate.margin.relative else "difference"
    if g is None:
        return GateResult(
            gate.label, gate.metric, test.scope, "no_data", gate.critical, None, None, None,
            None, None, scale, _threshold(gate), 0, 0, f"{gate.label} ({test.scope}): {missing}",
        )  # fmt: skip
    status: GateStatus
    if g.breach[0]:
        status = "breach"
    elif g.rollback[0]:
        status = "rollback"
    elif g.over_limit[0]:
        status = "over_limit"
    elif g.passed[0]:
        status = "pass"
    else:
        status = "inconclusive"
    b, c = g.baseline, g.candidate
    return GateResult(
        gate=gate.label,
        metric=gate.metric,
        scope=test.scope,
        status=status,
        critical=gate.critical,
        baseline=_num(b.estimate[0]),
        candidate=_num(c.estimate[0]),
        estimate=_num(g.estimate[0]),
        low=_num(g.low[0]),
        high=_num(g.high[0]),
        scale=scale,
        threshold=g.threshold,
        n_baseline=int(b.n[0]),
        n_candidate=int(c.n[0]),
        reason=_gate_reason(gate, test.scope, status, g, c),
    )


def _arm_data(gate: Gate, *arms: ArmWindow) -> tuple[_core.ArmData, _core.ArmData] | None:
    """The two arms' data for ``gate``, or None when a window does not carry the metric."""
    out: list[_core.ArmData] = []
    for arm in arms:
        data = _one_arm(gate, arm)
        if data is None:
            return None
        out.append(data)
    return out[0], out[1]


def _one_arm(gate: Gate, arm: ArmWindow) -> _core.ArmData | None:
    kind = gate.spec.kind
    if kind == "rate":
        counts = _rate_counts(gate, arm)
        if counts is None:
            return None
        return _core.RateData(np.array([float(counts.hits)]), np.array([float(counts.n)]))
    if kind == "mean":
        m = arm.cost_usd if gate.metric == "cost_per_request_usd" else arm.judge_score
        if m is None:
            return None
        return _core.MeanData(np.array([float(m.n)]), np.array([m.total]), np.array([m.total_sq]))
    values = arm.latency_ms if gate.metric.startswith("latency") else arm.ttft_ms
    if values is None:
        return None
    if isinstance(values, Histogram):
        return _core.HistData(
            np.array([values.counts], dtype=np.int64), np.array(values.edges, dtype=np.float64)
        )
    return _core.SampleData(np.asarray(values, dtype=np.float64))


def _rate_counts(gate: Gate, arm: ArmWindow) -> Counts | None:
    if gate.metric == "error_rate":
        return Counts(arm.errors, arm.requests)
    if gate.metric == "refusal_rate":
        return arm.refusals
    if gate.metric == "negative_feedback_rate":
        return arm.negative_feedback
    assert gate.check is not None
    return arm.invalid_outputs.get(gate.check)


def _no_data_arrays() -> _core.GateArrays:
    nan = np.array([np.nan])
    false = np.array([False])
    empty = _core.ArmBounds(np.array([0.0]), nan, nan, nan)
    return _core.GateArrays(
        nan, nan, nan, math.nan, math.nan, false, false, false, false, empty, empty
    )


def _threshold(gate: Gate) -> float:
    m = gate.margin.value
    if gate.margin.relative:
        return 1.0 + m if gate.spec.higher_is_worse else 1.0 - m
    return m if gate.spec.higher_is_worse else -m


def _num(x: float) -> float | None:
    value = float(x)
    return value if math.isfinite(value) else None


def _fmt(gate: Gate, value: float) -> str:
    if not math.isfinite(value):
        return "inf" if value > 0 else "-inf"
    if gate.spec.kind == "rate":
        return f"{value:.2%}"
    return f"{value:.4g}"


def _gate_reason(
    gate: Gate, scope: str, status: GateStatus, g: _core.GateArrays, c: _core.ArmBounds
) -> str:
    where = gate.label if scope == "all" else f"{gate.label} on {scope}"
    if gate.margin.relative:
        shown = f"candidate/baseline {g.estimate[0]:.3g} in [{g.low[0]:.3g}, {g.high[0]:.3g}]"
        allowed = f"{g.threshold:.3g}"
    else:
        shown = (
            f"candidate-baseline {_fmt(gate, g.estimate[0])} in "
            f"[{_fmt(gate, g.low[0])}, {_fmt(gate, g.high[0])}]"
        )
        allowed = _fmt(gate, g.threshold)
    if status == "breach":
        return (
            f"{where}: critical: candidate {_fmt(gate, c.estimate[0])} crossed the hard limit "
            f"{_fmt(gate, float(gate.hard_limit or 0))}"
        )
    if status == "over_limit":
        return (
            f"{where}: candidate shown beyond the hard limit "
            f"{_fmt(gate, float(gate.hard_limit or 0))}: [{_fmt(gate, c.low[0])}, "
            f"{_fmt(gate, c.high[0])}]"
        )
    if status == "rollback":
        return f"{where}: shown worse than allowed ({allowed}): {shown}"
    if status == "pass":
        return f"{where}: shown within the margin ({allowed}): {shown}"
    return f"{where}: not yet conclusive against {allowed}: {shown}"


def _srm(plan: Plan, weight: float, window: StageWindow) -> SrmResult | None:
    b, c = window.baseline, window.candidate
    if b.units is not None and c.units is not None:
        return srm_test(b.units, c.units, weight, plan.srm_alpha, unit="sessions")
    if b.requests + c.requests == 0:
        return None
    return srm_test(b.requests, c.requests, weight, plan.srm_alpha, unit="requests")


def _reasons(
    cause: str,
    results: list[GateResult],
    srm: SrmResult | None,
    max_duration: float | None,
    minimums: bool,
) -> tuple[str, ...]:
    by_status = {
        "critical_breach": ("breach",),
        "beyond_margin": ("rollback",),
        "over_hard_limit": ("over_limit",),
    }
    if cause in by_status:
        return tuple(r.reason for r in results if r.status in by_status[cause])
    if cause == "sample_ratio_mismatch" and srm is not None:
        return (
            f"sample ratio mismatch: candidate share of {srm.unit} "
            f"{srm.observed_share:.3%} vs expected {srm.expected_share:.3%} "
            f"(p = {srm.p_value:.2g}); the arms cannot be compared",
        )
    if cause == "non_inferior":
        return ("every gate shown within its margin",)
    waiting = [r.reason for r in results if r.status in ("inconclusive", "no_data")]
    if cause == "timeout":
        assert max_duration is not None
        return (f"no decision after max_duration {format_duration(max_duration)}", *waiting)
    if not minimums:
        return ("minimum requests or duration not reached yet", *waiting)
    return tuple(waiting)
