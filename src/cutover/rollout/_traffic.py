"""Simulated traffic for many runs at once, one check interval at a time (numpy only).

Requests arrive as a Poisson process. Splitting a Poisson process by arm, by
slice, by outcome (error or answered) and by latency bin gives independent
Poisson counts, so one interval of every run is a handful of vectorised
draws instead of a Python loop over requests:

* answered requests per latency bin ~ Poisson(rate * dt * share * (1 - error) * P(bin)),
  errors ~ Poisson(rate * dt * share * error);
* refusals, invalid outputs ~ Binomial(answered, rate); feedback ~
  Binomial(requests, feedback_rate), negative ~ Binomial(feedback, rate);
* cost: per request Gamma(k = 1/cv^2, theta = mean cv^2), so the sum of n is
  exactly Gamma(n k, theta); the sum of squares is its conditional mean given
  the sum, ``sum^2 (k + 1) / (n k + 1)`` (the normalised costs are Dirichlet
  and independent of the sum), which keeps the plug-in variance realistic
  without drawing each request;
* judge scores: normal, so the sum and the sum of squares are exact (normal
  and chi-square).

Latency and time to first token are binned on one log-spaced grid spanning
every profile of the scenario; the quantile bounds of
:func:`cutover.rollout._core.histogram_quantile_bounds` use the bin edges, so
they are conservative by at most one bin (about 2.5% here).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray
from scipy.special import ndtr

from cutover.rollout.plan import Plan
from cutover.rollout.scenario import LatencyProfile, Resolved, Scenario

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

ARMS: Final = ("baseline", "candidate")
_BINS: Final = 256  # log-spaced latency bins between the two overflow bins
_SCALAR_FIELDS: Final = (
    "requests",
    "errors",
    "answered",
    "refusals",
    "feedback",
    "negative",
    "cost_sum",
    "cost_sq",
    "judge_n",
    "judge_sum",
    "judge_sq",
)


@dataclass(frozen=True, slots=True)
class Needs:
    """What the plan's gates look at; nothing else is simulated."""

    latency: bool
    ttft: bool
    cost: bool
    refusal: bool
    feedback: bool
    judge: bool
    invalid: tuple[str, ...]

    @classmethod
    def of(cls, plan: Plan) -> Needs:
        metrics = {g.metric for g in plan.gates}
        return cls(
            latency=any(m.startswith("latency") for m in metrics),
            ttft=any(m.startswith("ttft") for m in metrics),
            cost="cost_per_request_usd" in metrics,
            refusal="refusal_rate" in metrics,
            feedback="negative_feedback_rate" in metrics,
            judge="judge_score" in metrics,
            invalid=tuple(sorted({g.check for g in plan.gates if g.check})),
        )


@dataclass
class ArmStats:
    """Counts and sums for one arm on one slice, one entry per run."""

    requests: FloatArray
    errors: FloatArray
    answered: FloatArray
    refusals: FloatArray
    feedback: FloatArray
    negative: FloatArray
    cost_sum: FloatArray
    cost_sq: FloatArray
    judge_n: FloatArray
    judge_sum: FloatArray
    judge_sq: FloatArray
    invalid: dict[str, FloatArray] = field(default_factory=dict)
    latency: IntArray | None = None
    ttft: IntArray | None = None

    @classmethod
    def zeros(cls, runs: int, needs: Needs, bins: int) -> ArmStats:
        return _build(
            lambda _: np.zeros(runs),
            {check: np.zeros(runs) for check in needs.invalid},
            np.zeros((runs, bins), dtype=np.int64) if needs.latency else None,
            np.zeros((runs, bins), dtype=np.int64) if needs.ttft else None,
        )

    def add(self, idx: IntArray, other: ArmStats) -> None:
        for name in _SCALAR_FIELDS:
            getattr(self, name)[idx] += getattr(other, name)
        for check, values in other.invalid.items():
            self.invalid[check][idx] += values
        if self.latency is not None and other.latency is not None:
            self.latency[idx] += other.latency
        if self.ttft is not None and other.ttft is not None:
            self.ttft[idx] += other.ttft

    def reset(self, idx: IntArray) -> None:
        for name in _SCALAR_FIELDS:
            getattr(self, name)[idx] = 0.0
        for values in self.invalid.values():
            values[idx] = 0.0
        if self.latency is not None:
            self.latency[idx] = 0
        if self.ttft is not None:
            self.ttft[idx] = 0

    def take(self, idx: IntArray) -> ArmStats:
        return _build(
            lambda name: getattr(self, name)[idx],
            {c: v[idx] for c, v in self.invalid.items()},
            None if self.latency is None else self.latency[idx],
            None if self.ttft is None else self.ttft[idx],
        )

    @staticmethod
    def total(parts: list[ArmStats]) -> ArmStats:
        """Field-wise sum over slices."""
        first = parts[0]
        if len(parts) == 1:
            return first
        return _build(
            lambda name: _sum([getattr(p, name) for p in parts]),
            {c: _sum([p.invalid[c] for p in parts]) for c in first.invalid},
            None if first.latency is None else _sum([p.latency for p in parts]),
            None if first.ttft is None else _sum([p.ttft for p in parts]),
        )


def _build(
    scalar: Callable[[str], FloatArray],
    invalid: dict[str, FloatArray],
    latency: IntArray | None,
    ttft: IntArray | None,
) -> ArmStats:
    return ArmStats(
        requests=scalar("requests"),
        errors=scalar("errors"),
        answered=scalar("answered"),
        refusals=scalar("refusals"),
        feedback=scalar("feedback"),
        negative=scalar("negative"),
        cost_sum=scalar("cost_sum"),
        cost_sq=scalar("cost_sq"),
        judge_n=scalar("judge_n"),
        judge_sum=scalar("judge_sum"),
        judge_sq=scalar("judge_sq"),
        invalid=invalid,
        latency=latency,
        ttft=ttft,
    )


def _sum(arrays: Sequence[NDArray[Any] | None]) -> Any:
    total = np.array(arrays[0], copy=True)
    for a in arrays[1:]:
        total += a
    return total


@dataclass(frozen=True, slots=True)
class _Cell:
    """One arm on one slice in one period: the rates and latency bin probabilities."""

    profile: Resolved
    latency_p: FloatArray | None
    ttft_p: FloatArray | None


class Traffic:
    """Draws one interval of traffic for the runs still going."""

    def __init__(self, scenario: Scenario, needs: Needs, dt: float) -> None:
        self.scenario = scenario
        self.needs = needs
        self.dt = dt
        self.shares = scenario.slice_shares()
        self.slices = tuple(self.shares)
        self.epochs = scenario.epochs()
        profiles = [
            scenario.resolve(arm, name, start)
            for start in self.epochs
            for arm in ARMS
            for name in self.slices
        ]
        self.edges = _latency_edges(
            [p.latency_ms for p in profiles if p.latency_ms]
            + [p.ttft_ms for p in profiles if p.ttft_ms]
        )
        self.bins = self.edges.size - 1
        self._cells: dict[tuple[int, str, str], _Cell] = {}
        for e, start in enumerate(self.epochs):
            for arm in ARMS:
                for name in self.slices:
                    p = scenario.resolve(arm, name, start)
                    self._cells[(e, arm, name)] = _Cell(
                        p,
                        _bin_probabilities(p.latency_ms, self.edges) if p.latency_ms else None,
                        _bin_probabilities(p.ttft_ms, self.edges) if p.ttft_ms else None,
                    )

    def missing(self) -> list[str]:
        """Scenario keys the plan's gates need but no profile sets."""
        cells = self._cells.values()
        wanted = {
            "latency_ms": self.needs.latency and any(c.latency_p is None for c in cells),
            "ttft_ms": self.needs.ttft and any(c.ttft_p is None for c in cells),
            "cost_usd": self.needs.cost and any(c.profile.cost_usd is None for c in cells),
            "judge_score": self.needs.judge and any(c.profile.judge_score is None for c in cells),
        }
        return [key for key, absent in wanted.items() if absent]

    def draw(
        self, rng: np.random.Generator, t0: float, candidate_share: FloatArray
    ) -> dict[tuple[str, str], ArmStats]:
        """One interval from ``t0`` for runs sending ``candidate_share`` of requests to the candidate."""
        epoch = int(np.searchsorted(self.epochs, t0, side="right")) - 1
        out: dict[tuple[str, str], ArmStats] = {}
        for arm in ARMS:
            share = candidate_share if arm == "candidate" else 1.0 - candidate_share
            for name in self.slices:
                cell = self._cells[(epoch, arm, name)]
                lam = self.scenario.rate_per_s * self.dt * self.shares[name] * share
                out[(arm, name)] = self._draw_cell(rng, cell, lam)
        return out

    def _draw_cell(self, rng: np.random.Generator, cell: _Cell, lam: FloatArray) -> ArmStats:
        p = cell.profile
        needs = self.needs
        n = lam.size
        ok = lam * (1.0 - p.error_rate)
        latency = ttft = None
        if needs.latency:
            assert cell.latency_p is not None
            latency = rng.poisson(ok[:, None] * cell.latency_p[None, :])
            answered = latency.sum(axis=1).astype(np.float64)
        else:
            answered = rng.poisson(ok).astype(np.float64)
        if needs.ttft:
            assert cell.ttft_p is not None
            ttft = rng.multinomial(answered.astype(np.int64), cell.ttft_p)
        errors = rng.poisson(lam * p.error_rate).astype(np.float64)
        requests = answered + errors
        zeros = np.zeros(n)
        refusals = (
            rng.binomial(answered.astype(np.int64), p.refusal_rate) if needs.refusal else zeros
        )
        feedback = negative = zeros
        if needs.feedback:
            fb = rng.binomial(requests.astype(np.int64), self.scenario.feedback_rate)
            feedback = fb.astype(np.float64)
            negative = rng.binomial(fb, p.negative_feedback_rate).astype(np.float64)
        cost_sum = cost_sq = zeros
        if needs.cost:
            assert p.cost_usd is not None
            k = 1.0 / (p.cost_cv * p.cost_cv)
            theta = p.cost_usd / k
            cost_sum = rng.gamma(requests * k, theta) if p.cost_usd > 0 else zeros
            cost_sq = cost_sum * cost_sum * (k + 1.0) / (requests * k + 1.0)
        judge_n = judge_sum = judge_sq = zeros
        if needs.judge:
            assert p.judge_score is not None
            m = rng.binomial(answered.astype(np.int64), self.scenario.judge_sample_rate)
            judge_n = m.astype(np.float64)
            sd = p.judge_score.sd
            judge_sum = rng.normal(judge_n * p.judge_score.mean, np.sqrt(judge_n) * sd)
            spread = sd * sd * rng.gamma(np.maximum(judge_n - 1.0, 0.0) / 2.0, 2.0)
            judge_sq = spread + np.where(judge_n > 0, judge_sum**2 / np.maximum(judge_n, 1.0), 0.0)
        invalid = {
            check: rng.binomial(answered.astype(np.int64), p.invalid_output_rate).astype(np.float64)
            for check in needs.invalid
        }
        return ArmStats(
            requests=requests,
            errors=errors,
            answered=answered,
            refusals=np.asarray(refusals, dtype=np.float64),
            feedback=feedback,
            negative=negative,
            cost_sum=cost_sum,
            cost_sq=cost_sq,
            judge_n=judge_n,
            judge_sum=judge_sum,
            judge_sq=judge_sq,
            invalid=invalid,
            latency=latency,
            ttft=ttft,
        )


def _latency_edges(profiles: list[LatencyProfile]) -> FloatArray:
    """Bin edges: 0, a log-spaced grid covering every profile, inf."""
    if not profiles:
        return np.array([0.0, np.inf])
    lo = min(math.exp(p.mu - 5.0 * p.sigma) for p in profiles)
    hi = max(math.exp(p.mu + 6.0 * p.sigma) for p in profiles)
    grid = np.geomspace(lo, hi, _BINS + 1)
    return np.concatenate([[0.0], grid, [np.inf]])


def _bin_probabilities(profile: LatencyProfile, edges: FloatArray) -> FloatArray:
    with np.errstate(divide="ignore"):
        z = (np.log(edges) - profile.mu) / profile.sigma
    cdf = ndtr(z)
    return np.diff(cdf)


__all__ = ["ARMS", "ArmStats", "Needs", "Traffic"]
