"""Per-target figures: percentiles (type 7), error rate, tokens, cost."""

from __future__ import annotations

import numpy as np
import pytest

from cutover.analysis import percentiles, summarize
from cutover.records import Observation


def test_percentiles_match_hand_computed_type7() -> None:
    values = [100.0, 200.0, 300.0, 400.0, 1000.0]
    got = percentiles(values)
    assert got is not None
    # type 7: h = (n-1)p; p95 -> h=3.8 -> 400 + 0.8*(1000-400) = 880
    assert (
        got["p50"] == 300.0
        and got["p95"] == pytest.approx(880.0)
        and got["p99"] == pytest.approx(976.0)
    )
    assert percentiles([]) is None


def test_summary_counts_errors_cost_and_unknown_cost() -> None:
    obs = [
        Observation(
            target="t",
            output="a",
            latency_ms=10,
            ttft_ms=2,
            input_tokens=10,
            output_tokens=5,
            cost_usd=0.001,
        ),
        Observation(
            target="t", output="b", latency_ms=30, input_tokens=20, output_tokens=5, cost_usd=0.003
        ),
        Observation(target="t", output="c", latency_ms=20, input_tokens=None, output_tokens=None),
        Observation(target="t", error="429", error_class="rate_limited", latency_ms=1, attempts=5),
    ]
    s = summarize(obs)
    assert s.n == 4 and s.errors == 1 and s.error_rate == 0.25
    assert s.error_classes == {"rate_limited": 1}
    assert s.latency_ms is not None and s.latency_ms["p50"] == 20.0  # errors excluded from latency
    assert s.ttft_ms is not None and s.ttft_ms["p50"] == 2.0
    assert s.cost_usd == pytest.approx(0.004) and s.cost_per_request_usd == pytest.approx(0.002)
    assert s.cost_unknown_n == 2 and s.retried_n == 1
    assert s.tokens_per_request == 20.0


def test_large_sample_matches_numpy() -> None:
    rng = np.random.default_rng(1)
    lat = rng.lognormal(6, 0.5, 5000)
    s = summarize(Observation(target="t", output="x", latency_ms=float(v)) for v in lat)
    assert s.latency_ms is not None
    assert s.latency_ms["p99"] == pytest.approx(np.percentile(lat, 99), abs=1e-3)
