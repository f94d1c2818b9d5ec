"""The paired statistics, checked against scipy and published examples."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import math
import re
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy import stats as sps

from cutover.analysis import stats
from cutover.analysis.stats import (
    TestResult,
    adjust,
    benjamini_hochberg,
    holm,
    mcnemar_exact,
    paired_binary,
    paired_bootstrap,
    wilcoxon_signed_rank,
)

ROOT = Path(__file__).resolve().parent.parent


def _table(a: int, b: int, c: int, d: int) -> tuple[np.ndarray, np.ndarray]:
    """Pass/fail columns for a paired 2x2 table: a both pass, b pass->fail, c fail->pass."""
    old = np.array([1] * a + [1] * b + [0] * c + [0] * d, dtype=bool)
    new = np.array([1] * a + [0] * b + [1] * c + [0] * d, dtype=bool)
    return old, new


def _bootstrap_ci_scipy(
    statistic: Callable[..., Any], old: np.ndarray, new: np.ndarray, seed: int
) -> tuple[float, float]:
    res = sps.bootstrap(
        (old, new),
        statistic,
        paired=True,
        vectorized=True,
        n_resamples=2000,
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def _close_ci(ours: TestResult, ref: tuple[float, float], share: float = 0.1) -> None:
    """Both endpoints agree within ``share`` of the interval's width (Monte Carlo noise)."""
    assert ours.ci_low is not None and ours.ci_high is not None
    width = ref[1] - ref[0]
    assert abs(ours.ci_low - ref[0]) < share * width, (ours, ref)
    assert abs(ours.ci_high - ref[1]) < share * width, (ours, ref)


# --- the contract -------------------------------------------------------------


def test_test_result_fields_are_the_contract() -> None:
    names = [f.name for f in dataclasses.fields(TestResult)]
    assert names == ["test", "estimate", "ci_low", "ci_high", "p_value", "n", "detail"]
    result = TestResult("none", 0.0, None, None, None, 0, {})
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.n = 1  # type: ignore[misc]


# --- McNemar ------------------------------------------------------------------


@pytest.mark.parametrize("b", [*range(0, 26), 40, 86, 150, 1000])
def test_mcnemar_exact_equals_scipy_binomtest(b: int) -> None:
    for c in [*range(0, 26), 41, 150, 1100]:
        got = mcnemar_exact(b, c)
        if b + c == 0:
            assert got == 1.0
            continue
        want = sps.binomtest(min(b, c), b + c, 0.5).pvalue
        assert got == pytest.approx(want, rel=1e-9, abs=1e-300), (b, c)
        assert mcnemar_exact(c, b) == got


def test_mcnemar_exact_published_examples() -> None:
    # Cavo et al. (2012), complete response before and after consolidation
    # therapy, 161 patients: 59 yes/yes, 6 yes/no, 16 no/yes, 80 no/no. The
    # McNemar exact conditional test gives P = 0.052479 (Fagerland, Lydersen &
    # Laake, "Statistical Analysis of Contingency Tables", 2017, ch. 8; the
    # value is pinned in the tests of their R package `contingencytables`).
    assert mcnemar_exact(6, 16) == pytest.approx(0.052479, abs=5e-7)
    # Bentur et al. (2009), same book: 1 yes/no and 7 no/yes discordant pairs;
    # the exact conditional p-value is 2 * P(X <= 1 | 8, 1/2) = 2 * 9 / 256.
    assert mcnemar_exact(1, 7) == pytest.approx(2 * 9 / 256, rel=1e-12)
    assert mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(5, 5) == 1.0


def test_mcnemar_exact_rejects_bad_counts() -> None:
    with pytest.raises(ValueError):
        mcnemar_exact(-1, 3)
    with pytest.raises(TypeError):
        mcnemar_exact(1.5, 3)  # type: ignore[arg-type]


# --- paired binary -------------------------------------------------------------


def test_paired_binary_cavo_example_matches_published_interval() -> None:
    old, new = _table(59, 6, 16, 80)
    result = paired_binary(old, new)
    assert result.test == "mcnemar-exact"
    assert result.n == 161
    assert result.detail["old_rate"] == pytest.approx(65 / 161)
    assert result.detail["new_rate"] == pytest.approx(75 / 161)
    assert (result.detail["b"], result.detail["c"]) == (6, 16)
    assert (result.detail["a"], result.detail["d"]) == (59, 80)
    assert result.estimate == pytest.approx(10 / 161)
    assert result.p_value == pytest.approx(0.052479, abs=5e-7)
    # Newcombe's square-and-add (hybrid score, method 10) interval for the
    # same table is -0.0621 (95% CI -0.1186 to -0.0046) for before - after
    # (Fagerland, Lydersen & Laake 2017, ch. 8; R package contingencytables,
    # Newcombe_square_and_add_CI_paired_2x2). Ours is after - before.
    assert result.ci_low == pytest.approx(0.0046, abs=5e-5)
    assert result.ci_high == pytest.approx(0.1186, abs=5e-5)


def test_paired_binary_constructed_example_and_symmetry() -> None:
    # 10 pairs: 5 pass on both, 1 pass->fail, 3 fail->pass, 1 fail on both.
    old = [True, True, True, True, True, True, False, False, False, False]
    new = [True, True, True, True, True, False, True, True, True, False]
    result = paired_binary(old, new)
    assert result.detail["old_rate"] == pytest.approx(0.6)
    assert result.detail["new_rate"] == pytest.approx(0.8)
    assert (result.detail["b"], result.detail["c"]) == (1, 3)
    assert result.estimate == pytest.approx(0.2)
    assert result.p_value == pytest.approx(sps.binomtest(1, 4, 0.5).pvalue)
    assert result.ci_low is not None and result.ci_high is not None
    assert -1 <= result.ci_low < result.estimate < result.ci_high <= 1
    swapped = paired_binary(new, old)
    assert swapped.estimate == pytest.approx(-result.estimate)
    assert swapped.ci_low == pytest.approx(-result.ci_high)
    assert swapped.ci_high == pytest.approx(-result.ci_low)
    assert swapped.p_value == result.p_value


def test_paired_binary_drops_missing_pairs_and_validates() -> None:
    result = paired_binary([1, 0, None, 1, float("nan")], [1, 1, 0, None, 1])
    assert result.n == 2 and result.detail["n_dropped"] == 3
    assert (result.detail["b"], result.detail["c"]) == (0, 1)
    empty = paired_binary([], [])
    assert empty.test == "none" and empty.p_value is None and empty.ci_low is None
    no_change = paired_binary([1, 1, 0], [1, 1, 0])
    assert no_change.p_value == 1.0 and no_change.estimate == 0.0
    with pytest.raises(ValueError, match="0/1"):
        paired_binary([0, 2], [1, 1])
    with pytest.raises(ValueError, match="same length"):
        paired_binary([0, 1], [1])
    with pytest.raises(ValueError, match="alpha"):
        paired_binary([0, 1], [1, 1], alpha=1.5)


@pytest.mark.parametrize(
    ("n", "cells"),
    [
        (150, (0.70, 0.05, 0.12, 0.13)),  # a moderate improvement
        (200, (0.80, 0.06, 0.04, 0.10)),  # a small regression, high pass rate
        (60, (0.50, 0.10, 0.15, 0.25)),  # a small suite
    ],
)
def test_paired_binary_interval_covers_the_true_difference(
    n: int, cells: tuple[float, float, float, float]
) -> None:
    rng = np.random.default_rng(20240611)
    truth = cells[2] - cells[1]
    reps = 500
    covered = 0
    for _ in range(reps):
        cell = rng.choice(4, size=n, p=cells)
        result = paired_binary((cell == 0) | (cell == 1), (cell == 0) | (cell == 2))
        assert result.ci_low is not None and result.ci_high is not None
        covered += result.ci_low <= truth <= result.ci_high
    assert 0.92 <= covered / reps <= 0.98


# --- multiple comparisons --------------------------------------------------------


def test_benjamini_hochberg_equals_scipy() -> None:
    rng = np.random.default_rng(1)
    for size in (1, 2, 3, 10, 57, 300):
        p = rng.random(size) ** 3
        p[: size // 4] = np.round(p[: size // 4], 2)  # some ties
        got = benjamini_hochberg(p.tolist())
        want = sps.false_discovery_control(p, method="bh")
        np.testing.assert_allclose(np.array(got, dtype=float), want, rtol=1e-12)


def test_holm_hand_computed_example() -> None:
    # sorted: 0.005*4=0.02, 0.01*3=0.03, 0.03*2=0.06, max(0.04*1, 0.06)=0.06
    got = holm([0.01, 0.04, 0.03, 0.005])
    assert got == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])


def test_holm_agrees_with_the_step_down_procedure() -> None:
    """adjusted p <= alpha exactly when Holm's step-down rejects at alpha."""
    rng = np.random.default_rng(2)
    for size in (1, 4, 20, 100):
        p = rng.random(size) ** 4
        adjusted = np.array(holm(p.tolist()), dtype=float)
        for alpha in (0.001, 0.01, 0.05, 0.1, 0.25):
            rejected = np.zeros(size, dtype=bool)
            for step, i in enumerate(np.argsort(p)):
                if p[i] > alpha / (size - step):
                    break
                rejected[i] = True
            np.testing.assert_array_equal(adjusted <= alpha, rejected)


def test_holm_equals_statsmodels_when_installed() -> None:
    multitest = pytest.importorskip("statsmodels.stats.multitest")
    rng = np.random.default_rng(3)
    p = rng.random(40) ** 3
    np.testing.assert_allclose(
        np.array(holm(p.tolist()), dtype=float),
        multitest.multipletests(p, method="holm")[1],
        rtol=1e-12,
    )
    np.testing.assert_allclose(
        np.array(benjamini_hochberg(p.tolist()), dtype=float),
        multitest.multipletests(p, method="fdr_bh")[1],
        rtol=1e-12,
    )


def test_adjust_keeps_missing_values_in_place() -> None:
    p = [0.01, None, 0.04, float("nan"), 0.03, 0.005]
    assert holm(p) == pytest.approx([0.03, None, 0.06, None, 0.06, 0.02])
    bh = benjamini_hochberg(p)
    assert bh[1] is None and bh[3] is None
    assert bh[0] == pytest.approx(0.02) and bh[5] == pytest.approx(0.02)
    assert adjust(p) == bh
    assert adjust(p, "holm") == holm(p)
    assert adjust(p, "none") == [0.01, None, 0.04, None, 0.03, 0.005]
    assert adjust([]) == [] and adjust([None, None]) == [None, None]
    with pytest.raises(ValueError, match="unknown adjustment"):
        adjust(p, "bonferroni")
    with pytest.raises(ValueError, match="outside"):
        adjust([0.5, 1.5])


def test_adjusted_p_values_are_monotone_in_the_raw_ones() -> None:
    rng = np.random.default_rng(4)
    p = rng.random(200) ** 2
    order = np.argsort(p)
    for method in ("bh", "holm"):
        adjusted = np.array(adjust(p.tolist(), method), dtype=float)
        assert (np.diff(adjusted[order]) >= 0).all()
        assert (adjusted >= p).all() and (adjusted <= 1).all()


# --- paired bootstrap --------------------------------------------------------------


def _mean_diff(o: np.ndarray, w: np.ndarray, axis: int = -1) -> Any:
    return np.mean(w - o, axis=axis)


def _ratio_of_means(o: np.ndarray, w: np.ndarray, axis: int = -1) -> Any:
    return np.mean(w, axis=axis) / np.mean(o, axis=axis)


@pytest.mark.parametrize("n", [40, 300, 3000])  # index resampling, and strata above 500
def test_bootstrap_mean_diff_matches_scipy(n: int) -> None:
    rng = np.random.default_rng(n)
    old = rng.normal(0.6, 0.2, n)
    new = old + rng.normal(0.03, 0.15, n)
    ours = paired_bootstrap(old, new, stat="mean_diff", seed=11)
    assert ours.test == "paired-bootstrap" and ours.n == n
    assert ours.estimate == pytest.approx(float(np.mean(new - old)))
    assert ours.detail["stratified"] == int(n > stats.EXACT_MEAN_MAX_N)
    _close_ci(ours, _bootstrap_ci_scipy(_mean_diff, old, new, seed=12))


@pytest.mark.parametrize("n", [60, 3000])
def test_bootstrap_ratio_of_means_matches_scipy(n: int) -> None:
    rng = np.random.default_rng(n + 1)
    old = rng.lognormal(6.0, 0.8, n)  # heavy-ish right tail, like latency or cost
    new = old * rng.lognormal(-0.1, 0.4, n)
    ours = paired_bootstrap(old, new, stat="ratio_of_means", seed=5)
    assert ours.estimate == pytest.approx(float(new.mean() / old.mean()))
    _close_ci(ours, _bootstrap_ci_scipy(_ratio_of_means, old, new, seed=6))


@pytest.mark.parametrize(("stat", "q"), [("ratio_p50", 0.5), ("ratio_p95", 0.95)])
def test_bootstrap_quantile_ratio_matches_scipy(stat: str, q: float) -> None:
    rng = np.random.default_rng(7)
    old = rng.lognormal(6.0, 0.5, 800)
    new = old * rng.lognormal(0.05, 0.3, 800)

    def ratio(o: np.ndarray, w: np.ndarray, axis: int = -1) -> Any:
        return np.quantile(w, q, axis=axis) / np.quantile(o, q, axis=axis)

    ours = paired_bootstrap(old, new, stat=stat, seed=8)
    assert ours.estimate == pytest.approx(np.quantile(new, q) / np.quantile(old, q))
    _close_ci(ours, _bootstrap_ci_scipy(ratio, old, new, seed=9), share=0.15)


def test_bootstrap_is_deterministic_with_a_seed() -> None:
    rng = np.random.default_rng(0)
    old = rng.lognormal(5, 0.5, 4000)
    new = old * rng.lognormal(0, 0.2, 4000)
    for stat in stats.BOOTSTRAP_STATS:
        first = paired_bootstrap(old, new, stat=stat, seed=42)
        assert paired_bootstrap(old, new, stat=stat, seed=42) == first
        other = paired_bootstrap(old, new, stat=stat, seed=43)
        assert (other.ci_low, other.ci_high) != (first.ci_low, first.ci_high)


def test_bootstrap_ratios_are_sane() -> None:
    rng = np.random.default_rng(10)
    old = rng.lognormal(6.0, 0.5, 5000)
    # Exactly 1.2x: every resample's ratio is 1.2 too.
    for stat in ("ratio_of_means", "ratio_p50", "ratio_p95", "ratio_p99"):
        exact = paired_bootstrap(old, 1.2 * old, stat=stat)
        assert exact.estimate == pytest.approx(1.2)
        assert exact.ci_low == pytest.approx(1.2) and exact.ci_high == pytest.approx(1.2)
        assert exact.p_value == pytest.approx(1 / 2001)
    # 1.2x with multiplicative noise: near 1.2, with an interval around it.
    new = 1.2 * old * rng.lognormal(0.0, 0.2, old.size)
    for stat in ("ratio_of_means", "ratio_p50", "ratio_p95", "ratio_p99"):
        result = paired_bootstrap(old, new, stat=stat)
        assert result.ci_low is not None and result.ci_high is not None
        assert result.ci_low < result.estimate < result.ci_high, stat
        assert result.ci_low > 1.1 and result.ci_high < 1.4, (stat, result)
        assert result.p_value is not None and result.p_value < 0.001


def test_bootstrap_ratio_intervals_cover_the_truth() -> None:
    # new = 1.2 exp(mu + s Z + t U) with old = exp(mu + s Z): the true quantile
    # ratio is 1.2 exp(z_q (sqrt(s^2 + t^2) - s)), the true ratio of means
    # 1.2 exp(t^2 / 2).
    s, t = 0.5, 0.2
    truths = {"ratio_of_means": 1.2 * math.exp(t * t / 2)}
    for stat, q in (("ratio_p50", 0.5), ("ratio_p95", 0.95), ("ratio_p99", 0.99)):
        truths[stat] = 1.2 * math.exp(sps.norm.ppf(q) * (math.hypot(s, t) - s))
    rng = np.random.default_rng(21)
    reps = 100
    covered = dict.fromkeys(truths, 0)
    for i in range(reps):
        old = rng.lognormal(6.0, s, 2000)
        new = 1.2 * old * rng.lognormal(0.0, t, old.size)
        for stat, truth in truths.items():
            result = paired_bootstrap(old, new, stat=stat, n_resamples=500, seed=i)
            assert result.ci_low is not None and result.ci_high is not None
            covered[stat] += result.ci_low <= truth <= result.ci_high
    for stat, hits in covered.items():
        assert 0.88 <= hits / reps <= 1.0, (stat, hits)


def test_bootstrap_p_value_small_with_a_shift_and_large_without() -> None:
    rng = np.random.default_rng(12)
    old = rng.normal(0.7, 0.15, 400)
    noise = rng.normal(0.0, 0.1, 400)
    shifted = paired_bootstrap(old, old + 0.05 + noise, stat="mean_diff")
    assert shifted.p_value is not None and shifted.p_value < 0.001
    assert shifted.ci_low is not None and shifted.ci_low > 0
    same = paired_bootstrap(old, old + noise - noise.mean(), stat="mean_diff")
    assert same.p_value is not None and same.p_value > 0.5
    latency = rng.lognormal(6.0, 0.5, 2000)
    slower = paired_bootstrap(latency, latency * rng.lognormal(0.1, 0.2, 2000), stat="ratio_p95")
    assert slower.p_value is not None and slower.p_value < 0.001
    steady = paired_bootstrap(latency, rng.permutation(latency), stat="ratio_p50")
    assert steady.p_value is not None and steady.p_value > 0.5


def test_bootstrap_p_value_follows_the_interval() -> None:
    """p < alpha exactly when the percentile interval at 1 - alpha excludes the null."""
    rng = np.random.default_rng(13)
    for shift in (0.0, 0.01, 0.02, 0.03, 0.05):
        old = rng.normal(0.5, 0.1, 300)
        new = old + shift + rng.normal(0, 0.1, 300)
        result = paired_bootstrap(old, new, alpha=0.05)
        assert result.p_value is not None and result.ci_low is not None
        assert result.ci_high is not None
        excluded = result.ci_low > 0 or result.ci_high < 0
        if abs(result.p_value - 0.05) > 0.005:  # away from Monte Carlo ties
            assert (result.p_value < 0.05) == excluded, (shift, result)


def test_bootstrap_mean_diff_covers_the_truth() -> None:
    rng = np.random.default_rng(14)
    covered = 0
    reps = 200
    for i in range(reps):
        old = rng.beta(4, 2, 150)
        new = old + rng.gamma(2.0, 0.05, 150) - 0.08  # skewed change, true mean 0.02
        result = paired_bootstrap(old, new, n_resamples=1000, seed=i)
        assert result.ci_low is not None and result.ci_high is not None
        covered += result.ci_low <= 0.02 <= result.ci_high
    assert 0.9 <= covered / reps <= 0.98


def test_bootstrap_drops_missing_pairs_and_handles_tiny_samples() -> None:
    result = paired_bootstrap([1.0, np.nan, 3.0, 4.0, 5.0], [2.0, 1.0, None, 5.0, 7.0])
    assert result.n == 3 and result.detail["n_dropped"] == 2
    assert result.estimate == pytest.approx(np.mean([1.0, 1.0, 2.0]))
    one = paired_bootstrap([1.0], [2.0])
    assert one.test == "none" and one.n == 1 and one.ci_low is None and one.p_value is None
    assert one.estimate == 1.0
    none = paired_bootstrap([], [], stat="ratio_p95")
    assert none.test == "none" and none.n == 0 and math.isnan(none.estimate)
    zero = paired_bootstrap([0.0, 0.0, 0.0], [1.0, 2.0, 3.0], stat="ratio_of_means")
    assert zero.test == "none" and zero.estimate == math.inf
    flat = paired_bootstrap([3.0] * 10, [3.0] * 10)
    assert (flat.estimate, flat.ci_low, flat.ci_high, flat.p_value) == (0.0, 0.0, 0.0, 1.0)
    with pytest.raises(ValueError, match="unknown stat"):
        paired_bootstrap([1.0, 2.0], [1.0, 2.0], stat="median_diff")
    with pytest.raises(ValueError, match="n_resamples"):
        paired_bootstrap([1.0, 2.0], [1.0, 2.0], n_resamples=0)


def _same_distribution(a: np.ndarray, b: np.ndarray, size: int) -> None:
    """Two samples of bootstrap replicates agree: Kolmogorov-Smirnov distance below
    the two-sample critical value at the 0.1% level (the draws are seeded)."""
    critical = 1.95 * math.sqrt(2 / size)
    assert sps.ks_2samp(a, b).statistic < critical


def test_stratified_means_match_plain_index_resampling(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(15)
    n = 3000
    old = rng.lognormal(0.0, 1.5, n)  # heavy tail: the hard case for strata
    new = old * rng.lognormal(0.05, 0.5, n)
    cols = np.column_stack([old, new])
    key = new - (new.mean() / old.mean()) * old
    sums, _, stratified = stats._mean_replicates(cols, key, 8000, np.random.default_rng(1))
    assert stratified
    monkeypatch.setattr(stats, "EXACT_MEAN_MAX_N", 10**9)
    plain, _, stratified = stats._mean_replicates(cols, key, 8000, np.random.default_rng(2))
    assert not stratified
    _same_distribution(sums[:, 1] / sums[:, 0], plain[:, 1] / plain[:, 0], 8000)


def test_few_distinct_scores_use_exact_multinomial_counts() -> None:
    rng = np.random.default_rng(16)
    old = rng.integers(0, 5, 50_000) / 4
    new = np.clip(old + rng.choice([-0.25, 0.0, 0.0, 0.25], 50_000), 0, 1)
    result = paired_bootstrap(old, new)
    assert result.detail["stratified"] == 0
    ref = _bootstrap_ci_scipy(_mean_diff, old[:5000], new[:5000], seed=1)
    small = paired_bootstrap(old[:5000], new[:5000], seed=3)
    _close_ci(small, ref)


@pytest.mark.parametrize("q", [0.5, 0.95, 0.99])
@pytest.mark.parametrize("window_z", [stats._WINDOW_Z, 0.0])  # 0: nearly every resample falls back
def test_quantile_sampler_matches_plain_index_resampling(q: float, window_z: float) -> None:
    rng = np.random.default_rng(17)
    n = 1500
    old = np.round(rng.lognormal(6.0, 0.5, n), -1)  # ties, as with millisecond timings
    new = np.round(old * rng.lognormal(0.0, 0.3, n), -1)
    q_old, q_new = stats._quantile_replicates(
        old, new, q, 6000, np.random.default_rng(1), window_z=window_z
    )
    idx = np.random.default_rng(2).integers(0, n, size=(6000, n))
    plain_old = np.quantile(old[idx], q, axis=1)
    plain_new = np.quantile(new[idx], q, axis=1)
    _same_distribution(q_old, plain_old, 6000)
    _same_distribution(q_new, plain_new, 6000)
    _same_distribution(q_new / q_old, plain_new / plain_old, 6000)


def test_quantile_sampler_on_tiny_samples() -> None:
    old = np.array([1.0, 2.0, 3.0])
    new = np.array([2.0, 2.0, 5.0])
    q_old, q_new = stats._quantile_replicates(old, new, 0.5, 4000, np.random.default_rng(0))
    # A resample of three pairs has one of the original values as its median.
    assert set(np.unique(q_old)) <= {1.0, 2.0, 3.0}
    assert set(np.unique(q_new)) <= {2.0, 5.0}
    # P(median of 3 draws from {1,2,3} is 2) = 13/27.
    assert np.mean(q_old == 2.0) == pytest.approx(13 / 27, abs=0.03)


def test_a_100k_pair_bootstrap_runs_within_bounded_memory() -> None:
    rng = np.random.default_rng(18)
    n = 100_000
    old = rng.lognormal(6.0, 0.6, n)
    new = old * rng.lognormal(-0.05, 0.3, n)
    tracemalloc.start()
    try:
        results = {s: paired_bootstrap(old, new, stat=s) for s in stats.BOOTSTRAP_STATS}
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 200 * 2**20
    for stat, result in results.items():
        assert result.n == n and result.p_value is not None, stat
        assert result.ci_low is not None and result.ci_high is not None
        assert result.ci_low <= result.estimate <= result.ci_high, stat


# --- Wilcoxon -------------------------------------------------------------------


def test_wilcoxon_matches_scipy() -> None:
    rng = np.random.default_rng(19)
    for n in (8, 30, 200, 5000):
        old = rng.integers(0, 11, n) / 10  # a 0-1 judge score on 11 levels: ties and zeros
        new = np.clip(old + rng.choice([-0.1, 0.0, 0.0, 0.1, 0.2], n), 0, 1)
        ours = wilcoxon_signed_rank(old, new)
        ref = sps.wilcoxon(new, old, zero_method="pratt")
        assert ours.test == "wilcoxon-signed-rank" and ours.n == n
        assert ours.p_value == pytest.approx(ref.pvalue, rel=1e-12)
        assert ours.detail["statistic"] == pytest.approx(ref.statistic)
        assert ours.estimate == pytest.approx(np.median(new - old))
        assert ours.detail["n_zero"] + ours.detail["n_nonzero"] == n
    old = rng.normal(size=25)
    new = old + rng.normal(0.3, 1, 25)
    assert wilcoxon_signed_rank(old, new).p_value == pytest.approx(
        sps.wilcoxon(new, old, zero_method="pratt").pvalue
    )


def test_wilcoxon_edge_cases() -> None:
    same = wilcoxon_signed_rank([1.0, 2.0, 3.0], [1.0, 2.0, 3.0])
    assert same.p_value == 1.0 and same.estimate == 0.0
    empty = wilcoxon_signed_rank([np.nan], [1.0])
    assert empty.test == "none" and empty.n == 0 and empty.detail["n_dropped"] == 1


# --- the worked example in the docs is real output --------------------------------


def test_docs_worked_example_is_current() -> None:
    text = (ROOT / "docs" / "statistics.md").read_text()
    match = re.search(r"```python\n(.*?)```\n+Output:\n+```text\n(.*?)```", text, re.S)
    assert match, "docs/statistics.md lost its worked example"
    code, expected = match.groups()
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "docs/statistics.md", "exec"), {})
    assert out.getvalue() == expected
