"""Figures per target: requests, errors, latency, time to first token, tokens, cost.

Percentiles use linear interpolation between order statistics (Hyndman and
Fan type 7, numpy's default and what most dashboards show). Latency and time
to first token are taken over successful calls only (a failed call's timing
says how fast it failed, not how fast the model answers); the error rate is
over all calls. Cost sums only calls whose cost is known; ``cost_unknown_n``
says how many were not priced (no usage reported, or no price for the model).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cutover.records import Observation

PERCENTILES = (50, 95, 99)


def percentiles(
    values: Sequence[float], points: Sequence[int] = PERCENTILES
) -> dict[str, float] | None:
    """``{"p50": ..., "p95": ..., "p99": ...}`` or ``None`` for no values."""
    if not values:
        return None
    arr = np.asarray(values, dtype=float)
    got = np.percentile(arr, points)
    out = {f"p{p}": round(float(v), 3) for p, v in zip(points, got, strict=True)}
    out["mean"] = round(float(arr.mean()), 3)
    out["max"] = round(float(arr.max()), 3)
    return out


@dataclass(slots=True)
class SummaryAccumulator:
    """Collects one target's Observations in one pass (floats only are kept)."""

    n: int = 0
    errors: int = 0
    error_classes: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    ttfts: list[float] = field(default_factory=list)
    input_tokens: int = 0
    output_tokens: int = 0
    token_n: int = 0
    cost: float = 0.0
    cost_n: int = 0
    cached: int = 0
    retried: int = 0
    simulated: bool = False

    def add(self, obs: Observation) -> None:
        self.n += 1
        self.cached += obs.cached
        self.retried += obs.attempts > 1
        self.simulated = self.simulated or obs.simulated
        if obs.cost_usd is not None:
            self.cost += obs.cost_usd
            self.cost_n += 1
        if obs.error is not None:
            self.errors += 1
            self.error_classes[obs.error_class or "error"] += 1
            return
        if obs.latency_ms is not None:
            self.latencies.append(obs.latency_ms)
        if obs.ttft_ms is not None:
            self.ttfts.append(obs.ttft_ms)
        if obs.input_tokens is not None and obs.output_tokens is not None:
            self.input_tokens += obs.input_tokens
            self.output_tokens += obs.output_tokens
            self.token_n += 1

    def result(self) -> TargetSummary:
        return TargetSummary(
            n=self.n,
            errors=self.errors,
            error_rate=round(self.errors / self.n, 6) if self.n else 0.0,
            error_classes=dict(sorted(self.error_classes.items())),
            latency_ms=percentiles(self.latencies),
            ttft_ms=percentiles(self.ttfts),
            input_tokens=self.input_tokens,
            output_tokens=self.output_tokens,
            tokens_per_request=(
                round((self.input_tokens + self.output_tokens) / self.token_n, 2)
                if self.token_n
                else None
            ),
            cost_usd=round(self.cost, 8) if self.cost_n else None,
            cost_per_request_usd=round(self.cost / self.cost_n, 10) if self.cost_n else None,
            cost_unknown_n=self.n - self.cost_n,
            cached_n=self.cached,
            retried_n=self.retried,
            simulated=self.simulated,
        )


@dataclass(frozen=True, slots=True)
class TargetSummary:
    """One target's figures, as written under ``summary.old`` / ``summary.new``."""

    n: int
    errors: int
    error_rate: float
    error_classes: dict[str, int]
    latency_ms: dict[str, float] | None
    ttft_ms: dict[str, float] | None
    input_tokens: int
    output_tokens: int
    tokens_per_request: float | None
    cost_usd: float | None
    cost_per_request_usd: float | None
    cost_unknown_n: int
    cached_n: int
    retried_n: int
    simulated: bool

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


def summarize(observations: Iterable[Observation]) -> TargetSummary:
    """Figures for one target's Observations."""
    acc = SummaryAccumulator()
    for obs in observations:
        acc.add(obs)
    return acc.result()


__all__ = ["PERCENTILES", "SummaryAccumulator", "TargetSummary", "percentiles", "summarize"]
