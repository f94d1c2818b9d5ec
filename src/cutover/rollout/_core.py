"""The decision rules on arrays: one code path for the controller and the simulator.

:func:`cutover.rollout.decide.decide_stage` calls these with arrays of one
element; :mod:`cutover.rollout.simulator` with one element per simulated run.
Nothing here reads a file or a clock.

A gate test compares the arms through each arm's own confidence sequence:
the candidate is *shown worse* than the margin allows when the most
favourable values inside the two sequences still differ by more than the
margin (``low(c) - high(b) > m``, or ``low(c) > (1 + m) high(b)`` for a
relative margin), and *shown non-inferior* when the least favourable values
differ by less (``high(c) - low(b) < m``). Each end is a one-sided bound, and
a test's level is split between the arms, ``gamma_c + gamma_b = test_level``
(:func:`arm_levels`), so each of the two decisions errs with probability at
most ``test_level`` (union bound), and the stage's tests together at most
``alpha`` (Bonferroni).
"""

from __future__ import annotations

import math
from typing import Final, NamedTuple

import numpy as np
from numpy.typing import NDArray

from cutover.rollout.plan import Gate, Plan, Stage
from cutover.rollout.sequential import (
    Interval,
    beta_concentration,
    mean_cs,
    mixture_rho,
    quantile_ranks,
    rate_cs,
)

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]
IntArray = NDArray[np.int64]

#: The candidate arm's mixtures are tuned for at least this many observations.
N_STAR_MIN: Final = 1000.0

HOLD: Final = 0
PROMOTE: Final = 1
ROLLBACK: Final = 2
OUTCOMES: Final = ("hold", "promote", "rollback")

# why a stage ended (or did not)
WAITING: Final = 0
BREACH: Final = 1  # a critical hard limit crossed by the observed value
BEYOND_MARGIN: Final = 2  # a gate shown worse than allowed
OVER_LIMIT: Final = 3  # a gate shown over its hard limit
SRM: Final = 4
TIMEOUT: Final = 5
NON_INFERIOR: Final = 6  # every gate shown within its margin
CAUSES: Final = (
    "waiting",
    "critical_breach",
    "beyond_margin",
    "over_hard_limit",
    "sample_ratio_mismatch",
    "timeout",
    "non_inferior",
)


class TestDesign(NamedTuple):
    """One gate on one scope (all traffic or a slice) in one stage, with its tuning."""

    gate: Gate
    scope: str
    gamma_baseline: float
    """Level of each one-sided end of the baseline's confidence sequence."""
    gamma_candidate: float
    """The candidate's; the two add up to the test's level."""
    kappa_baseline: float
    kappa_candidate: float
    rho_baseline: float
    rho_candidate: float


class StageDesign(NamedTuple):
    """Everything fixed before a stage's data are seen."""

    number: int
    """The stage's position in the plan (0-based)."""
    stage: Stage
    tests: tuple[TestDesign, ...]
    test_level: float


def arm_levels(level: float, weight: float) -> tuple[float, float]:
    """Split a test's level between the arms: ``(gamma_baseline, gamma_candidate)``.

    A decision compares one end of each arm's sequence, so it errs with
    probability at most ``gamma_b + gamma_c``. The sum of the two ends' widths,
    each about ``sqrt(log(1/gamma) / n)``, is smallest when
    ``gamma_b / gamma_c = sqrt(n_c / n_b) = sqrt(w / (100 - w))``: at a 1%
    canary the candidate gets 91% of the level (its data are few, its end
    decides), at 50% each arm gets half. It depends only on the stage's
    weight, so it is fixed before the data are seen.
    """
    w = min(max(weight, 1e-3), 99.999)
    gamma_c = level / (1.0 + math.sqrt(w / (100.0 - w)))
    return level - gamma_c, gamma_c


def design_stage(plan: Plan, index: int) -> StageDesign:
    """The tests of stage ``index``, the levels of their arms and the tuning of their mixtures.

    The candidate's mixtures are tuned to be tightest at ``n* = max(min_requests,
    1000)`` observations and the baseline's at the number it serves meanwhile,
    ``n* (100 - w) / w``.
    """
    stage = plan.stages[index]
    level = plan.test_level()
    weight = min(stage.weight, 99.999)
    gamma_b, gamma_c = arm_levels(level, weight)
    n_star_c = max(float(stage.min_requests), N_STAR_MIN)
    n_star_b = n_star_c * (100.0 - weight) / weight
    tests = tuple(
        TestDesign(
            gate=gate,
            scope=scope,
            gamma_baseline=gamma_b,
            gamma_candidate=gamma_c,
            kappa_baseline=beta_concentration(n_star_b, gamma_b),
            kappa_candidate=beta_concentration(n_star_c, gamma_c),
            rho_baseline=mixture_rho(n_star_b, gamma_b),
            rho_candidate=mixture_rho(n_star_c, gamma_c),
        )
        for gate in plan.gates
        for scope in gate.scopes
    )
    return StageDesign(index, stage, tests, level)


class RateData(NamedTuple):
    """A rate's numerators and denominators (one per run)."""

    hits: FloatArray
    n: FloatArray


class MeanData(NamedTuple):
    """A mean's counts, sums and sums of squares (one per run)."""

    n: FloatArray
    total: FloatArray
    total_sq: FloatArray


class HistData(NamedTuple):
    """Binned observations: a row of counts per run over shared ``edges``."""

    counts: NDArray[np.int64]
    edges: FloatArray


class SampleData(NamedTuple):
    """One run's raw observations."""

    values: FloatArray


ArmData = RateData | MeanData | HistData | SampleData


class ArmBounds(NamedTuple):
    """One arm's metric: observations, estimate and confidence sequence (arrays)."""

    n: FloatArray
    estimate: FloatArray
    low: FloatArray
    high: FloatArray


def rate_bounds(hits: FloatArray, n: FloatArray, gamma: float, kappa: float) -> ArmBounds:
    """One arm's rate with one-sided ends at level ``gamma`` each."""
    iv = rate_cs(hits, n, gamma, kappa, one_sided=True)
    return ArmBounds(np.asarray(n, dtype=np.float64), *iv)


def mean_bounds(
    n: FloatArray, total: FloatArray, total_sq: FloatArray, gamma: float, rho: float
) -> ArmBounds:
    """One arm's mean, two-sided at level ``gamma`` (so each end at most ``gamma``)."""
    iv = mean_cs(n, total, total_sq, gamma, rho)
    return ArmBounds(np.asarray(n, dtype=np.float64), *iv)


def histogram_quantile_bounds(
    counts: NDArray[np.int64], edges: FloatArray, p: float, gamma: float, kappa: float
) -> ArmBounds:
    """Quantile CS from binned observations (rows are runs); bin edges make it conservative.

    ``edges`` has one more entry than ``counts`` has columns; the first may be
    0 and the last ``inf``. The k-th order statistic lies in the first bin
    whose cumulative count reaches k: its lower edge bounds it from below and
    its upper edge from above.
    """
    cum = np.cumsum(counts, axis=1)
    n = cum[:, -1].astype(np.float64)
    k_low, k_high = quantile_ranks(n, p, gamma, kappa, one_sided=True)
    return _histogram_bounds(cum, n, edges, p, k_low, k_high)


def _histogram_bounds(
    cum: NDArray[np.int64],
    n: FloatArray,
    edges: FloatArray,
    p: float,
    k_low: IntArray,
    k_high: IntArray,
) -> ArmBounds:
    low = np.where(k_low >= 1, edges[:-1][_first_bin(cum, k_low)], 0.0)
    high = np.where(k_high <= n, edges[1:][_first_bin(cum, k_high)], np.inf)
    return ArmBounds(n, _histogram_quantile(cum, edges, p), low, high)


def histogram_quantile(counts: NDArray[np.int64], edges: FloatArray, p: float) -> FloatArray:
    """The p-quantile of binned observations (rows are runs): the geometric middle of its bin."""
    return _histogram_quantile(np.cumsum(counts, axis=1), edges, p)


def _histogram_quantile(cum: NDArray[np.int64], edges: FloatArray, p: float) -> FloatArray:
    n = cum[:, -1].astype(np.float64)
    rank = np.maximum(np.ceil(p * n), 1.0).astype(np.int64)
    j = _first_bin(cum, rank)
    lo_e, hi_e = edges[:-1][j], edges[1:][j]
    with np.errstate(invalid="ignore", over="ignore"):
        mid = np.where(
            np.isfinite(hi_e), np.where(lo_e > 0, np.sqrt(lo_e * hi_e), 0.5 * hi_e), lo_e
        )
    return np.asarray(np.where(n > 0, mid, np.nan), dtype=np.float64)


def _first_bin(cum: NDArray[np.int64], k: IntArray) -> IntArray:
    return np.asarray(np.argmax(cum >= k[:, None], axis=1), dtype=np.int64)


def sample_quantile_bounds(values: FloatArray, p: float, gamma: float, kappa: float) -> ArmBounds:
    """Quantile CS from one arm's raw observations (exact for continuous data)."""
    v = np.sort(np.asarray(values, dtype=np.float64))
    v = v[np.isfinite(v)]
    n = float(v.size)
    k_low, k_high = (
        int(k[0]) for k in quantile_ranks(np.array([n]), p, gamma, kappa, one_sided=True)
    )
    low = float(v[k_low - 1]) if k_low >= 1 else 0.0
    high = float(v[k_high - 1]) if k_high <= n else np.inf
    estimate = float(np.quantile(v, p)) if n else np.nan
    return ArmBounds(*(np.array([x]) for x in (n, estimate, low, high)))


def evaluate_tests(
    plan: Plan,
    design: StageDesign,
    data: list[tuple[ArmData, ArmData] | None],
) -> list[GateArrays | None]:
    """Every test of a stage at one look; ``data[i]`` is test i's (baseline, candidate).

    The confidence sequences of all rate and binned-quantile tests are
    computed in one vectorised call each (their root searches share one loop),
    which is what makes looking every minute at a thousand simulated runs
    cheap. ``None`` data (a metric or slice the window lacks) gives ``None``.
    """
    bounds: dict[tuple[int, int], ArmBounds] = {}
    # (test, arm) -> data, gamma, kappa (rates) or quantile, gamma, kappa (histograms)
    rates: list[tuple[tuple[int, int], RateData, float, float]] = []
    hists: list[tuple[tuple[int, int], HistData, float, float, float]] = []
    for i, (test, pair) in enumerate(zip(design.tests, data, strict=True)):
        if pair is None:
            continue
        spec = test.gate.spec
        for j, arm in enumerate(pair):
            gamma = test.gamma_candidate if j else test.gamma_baseline
            kappa = test.kappa_candidate if j else test.kappa_baseline
            rho = test.rho_candidate if j else test.rho_baseline
            if isinstance(arm, RateData):
                rates.append(((i, j), arm, gamma, kappa))
            elif isinstance(arm, MeanData):
                bounds[(i, j)] = mean_bounds(arm.n, arm.total, arm.total_sq, gamma, rho)
            elif isinstance(arm, HistData):
                assert spec.quantile is not None
                hists.append(((i, j), arm, spec.quantile, gamma, kappa))
            else:
                assert spec.quantile is not None
                bounds[(i, j)] = sample_quantile_bounds(arm.values, spec.quantile, gamma, kappa)
    if rates:
        sizes = [np.size(r.n) for _, r, _, _ in rates]
        iv = rate_cs(
            np.concatenate([np.atleast_1d(r.hits) for _, r, _, _ in rates]),
            np.concatenate([np.atleast_1d(r.n) for _, r, _, _ in rates]),
            np.repeat([g for _, _, g, _ in rates], sizes),
            np.repeat([k for _, _, _, k in rates], sizes),
            one_sided=True,
        )
        for (key, r, _, _), part in zip(rates, _split(iv, sizes), strict=True):
            bounds[key] = ArmBounds(np.atleast_1d(np.asarray(r.n, dtype=np.float64)), *part)
    if hists:
        cums = [np.cumsum(h.counts, axis=1) for _, h, _, _, _ in hists]
        ns = [c[:, -1].astype(np.float64) for c in cums]
        sizes = [n.size for n in ns]
        k_low, k_high = quantile_ranks(
            np.concatenate(ns),
            np.repeat([q for _, _, q, _, _ in hists], sizes),
            np.repeat([g for _, _, _, g, _ in hists], sizes),
            np.repeat([k for _, _, _, _, k in hists], sizes),
            one_sided=True,
        )
        offsets = np.cumsum([0, *sizes])
        for h_i, ((key, h, q, _, _), cum, n) in enumerate(zip(hists, cums, ns, strict=True)):
            rows = slice(offsets[h_i], offsets[h_i + 1])
            bounds[key] = _histogram_bounds(cum, n, h.edges, q, k_low[rows], k_high[rows])
    out: list[GateArrays | None] = []
    for i, test in enumerate(design.tests):
        if data[i] is None:
            out.append(None)
        else:
            out.append(compare_arms(test.gate, bounds[(i, 0)], bounds[(i, 1)], plan))
    return out


def _split(iv: Interval, sizes: list[int]) -> list[tuple[FloatArray, FloatArray, FloatArray]]:
    cuts = np.cumsum(sizes)[:-1]
    parts = [np.split(np.atleast_1d(x), cuts) for x in iv]
    return [(e, lo, hi) for e, lo, hi in zip(*parts, strict=True)]


class GateArrays(NamedTuple):
    """One gate test's comparison (arrays): the estimate, its interval and the verdicts."""

    estimate: FloatArray
    """Candidate minus baseline (absolute margin) or candidate over baseline (relative)."""
    low: FloatArray
    high: FloatArray
    threshold: float
    """What the interval is held against: ``m``/``-m`` or ``1 + m``/``1 - m``."""
    rollback_at: float
    """Where a rollback starts: the threshold, or no difference under ``rollback_when: worse``."""
    rollback: BoolArray
    """Shown worse than allowed."""
    over_limit: BoolArray
    """Shown beyond the hard limit."""
    breach: BoolArray
    """A critical gate whose observed candidate value crossed the hard limit."""
    passed: BoolArray
    """Shown within the margin (non-inferior)."""
    baseline: ArmBounds
    candidate: ArmBounds


def compare_arms(gate: Gate, baseline: ArmBounds, candidate: ArmBounds, plan: Plan) -> GateArrays:
    """Hold the two arms' sequences against the gate's margin and hard limit."""
    b, c = baseline, candidate
    m = gate.margin.value
    worse_up = gate.spec.higher_is_worse
    with np.errstate(divide="ignore", invalid="ignore"):
        if gate.margin.relative:
            estimate = c.estimate / b.estimate
            low = np.where(b.high > 0, c.low / b.high, np.where(c.low > 0, np.inf, np.nan))
            high = np.where(b.low > 0, c.high / b.low, np.inf)
            threshold = 1.0 + m if worse_up else 1.0 - m
            neutral = 1.0
        else:
            estimate = c.estimate - b.estimate
            low = c.low - b.high
            high = c.high - b.low
            threshold = m if worse_up else -m
            neutral = 0.0
        rollback_at = threshold if plan.rollback_when == "beyond_margin" else neutral
        if worse_up:
            rollback = low > rollback_at
            passed = high < threshold
        else:
            rollback = high < rollback_at
            passed = low > threshold
        limit = gate.hard_limit
        none = np.zeros(np.shape(c.n), dtype=bool)
        if limit is None:
            over_limit, breach = none, none
        else:
            over_limit = c.low > limit if worse_up else c.high < limit
            observed = c.estimate > limit if worse_up else c.estimate < limit
            breach = observed & (c.n >= plan.hard_limit_min_requests) if gate.critical else none
    return GateArrays(
        estimate=np.asarray(estimate, dtype=np.float64),
        low=np.asarray(low, dtype=np.float64),
        high=np.asarray(high, dtype=np.float64),
        threshold=threshold,
        rollback_at=rollback_at,
        rollback=np.asarray(rollback, dtype=bool),
        over_limit=np.asarray(over_limit, dtype=bool),
        breach=np.asarray(breach, dtype=bool),
        passed=np.asarray(passed, dtype=bool),
        baseline=b,
        candidate=c,
    )


class StageArrays(NamedTuple):
    """The stage's outcome per run (``HOLD``/``PROMOTE``/``ROLLBACK``) and its cause."""

    outcome: IntArray
    cause: IntArray
    alert: BoolArray
    """A hold that needs a person: a sample-ratio mismatch or a timeout."""


def stage_outcome(
    plan: Plan,
    gates: list[GateArrays],
    srm_mismatch: BoolArray,
    minimums_met: BoolArray,
    timed_out: BoolArray,
) -> StageArrays:
    """Combine the gate verdicts of one look into the stage's outcome.

    In order: a critical breach rolls back at once; a gate shown worse than
    allowed (or over its hard limit) rolls back; a sample-ratio mismatch holds
    (or rolls back, per ``on_srm``) and never promotes; once the minimums are
    met and every gate is shown within its margin the stage is promoted; at
    ``max_duration`` the plan's ``on_timeout`` applies; otherwise hold.
    """
    shape = np.shape(srm_mismatch)
    breach = np.zeros(shape, dtype=bool)
    beyond = np.zeros(shape, dtype=bool)
    over = np.zeros(shape, dtype=bool)
    all_passed = np.ones(shape, dtype=bool)
    for g in gates:
        breach |= g.breach
        beyond |= g.rollback
        over |= g.over_limit
        all_passed &= g.passed
    outcome = np.full(shape, HOLD, dtype=np.int64)
    cause = np.full(shape, WAITING, dtype=np.int64)
    alert = np.zeros(shape, dtype=bool)
    undecided = np.ones(shape, dtype=bool)

    def settle(mask: BoolArray, result: int, why: int, *, alarm: bool = False) -> None:
        nonlocal undecided
        hit = mask & undecided
        outcome[hit] = result
        cause[hit] = why
        if alarm:
            alert[hit] = True
        undecided = undecided & ~hit

    settle(breach, ROLLBACK, BREACH)
    settle(beyond, ROLLBACK, BEYOND_MARGIN)
    settle(over, ROLLBACK, OVER_LIMIT)
    settle(srm_mismatch, ROLLBACK if plan.on_srm == "rollback" else HOLD, SRM, alarm=True)
    settle(minimums_met & all_passed, PROMOTE, NON_INFERIOR)
    settle(timed_out, ROLLBACK if plan.on_timeout == "rollback" else HOLD, TIMEOUT, alarm=True)
    return StageArrays(outcome, cause, alert)


__all__ = [
    "BEYOND_MARGIN",
    "BREACH",
    "CAUSES",
    "HOLD",
    "NON_INFERIOR",
    "OUTCOMES",
    "OVER_LIMIT",
    "PROMOTE",
    "ROLLBACK",
    "SRM",
    "TIMEOUT",
    "WAITING",
    "ArmBounds",
    "ArmData",
    "GateArrays",
    "HistData",
    "Interval",
    "MeanData",
    "RateData",
    "SampleData",
    "StageArrays",
    "StageDesign",
    "TestDesign",
    "arm_levels",
    "compare_arms",
    "design_stage",
    "evaluate_tests",
    "histogram_quantile",
    "histogram_quantile_bounds",
    "mean_bounds",
    "rate_bounds",
    "sample_quantile_bounds",
    "stage_outcome",
]
