"""Paired statistics for old-vs-new comparisons: pure numpy and scipy, no I/O.

Every function takes the two sides of the same Pairs (``old[i]`` and ``new[i]``
answered the same input) and returns a :class:`TestResult`. The methods, their
assumptions and their limits are set out in ``docs/statistics.md``; in short:

* Pass rates and check rates: :func:`paired_binary`. The p-value is the exact
  McNemar test on the discordant pairs (:func:`mcnemar_exact`); the confidence
  interval for the difference of the paired proportions is Newcombe's hybrid
  score interval, method 10 of Newcombe (1998), *Statist. Med.* 17:2635-2650.
* Scores: :func:`paired_bootstrap` with ``stat="mean_diff"``
  (:func:`wilcoxon_signed_rank` is there too).
* Latency, time to first token, tokens, cost: :func:`paired_bootstrap` with a
  ratio (``ratio_of_means`` or ``ratio_p50`` / ``ratio_p95`` / ``ratio_p99``).
* Many slice x metric rows: :func:`adjust` (Benjamini-Hochberg by default,
  Holm on request).

The bootstrap resamples *pairs* (so the correlation between the two sides is
kept), is vectorized, bounds its memory by working in blocks of resamples, and
is deterministic for a given ``seed``. How it stays fast:

* Ratios of quantiles: the classic multinomial bootstrap, drawn exactly but
  only where it matters. A resample's quantile depends on *which* pairs were
  drawn only for the few pairs whose value lies near the quantile; for all
  other pairs only *how many* fell below or above matters, which one
  multinomial draw gives. Pairs in a window around the quantile on either
  side (wide enough to hold the resample's quantile with overwhelming
  probability) are drawn one by one; a resample whose quantile falls outside
  the window (rare) is completed draw by draw from the same counts, so the
  result has exactly the distribution of plain index resampling.
* Means (``mean_diff``, ``ratio_of_means``): the same multinomial bootstrap.
  With at most 32 distinct pairs (scores on a small scale) the resample is
  drawn as multinomial counts of the distinct pairs: exact, O(distinct). Else,
  up to :data:`EXACT_MEAN_MAX_N` pairs, plain index resampling. Above that,
  stratified: the pairs are sorted by their influence on the statistic
  (new - old for the difference, new - R * old for the ratio R), the 32 most
  extreme at each end stay singletons, and the rest are cut into 32 equal
  strata. One multinomial draw says how often each stratum and the singleton
  block are drawn (exact); the singletons are then drawn one by one (exact),
  and a stratum drawn m times adds a normal vector with the exact conditional
  mean m * mean and covariance m * cov of its pairs. A resample costs
  O(strata + singletons), not O(n); the first two moments of the resampled
  sums are exact and only the higher moments *within* a stratum (a narrow
  band of influence values) are approximated.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import stats as _sps

__all__ = [
    "ADJUST_METHODS",
    "BOOTSTRAP_STATS",
    "EXACT_MEAN_MAX_N",
    "WILCOXON_ZERO_METHOD",
    "TestResult",
    "adjust",
    "benjamini_hochberg",
    "holm",
    "mcnemar_exact",
    "paired_binary",
    "paired_bootstrap",
    "wilcoxon_signed_rank",
]

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
#: One side's values: an array, or a sequence in which None marks a missing value.
Values = ArrayLike | Sequence[float | None]

BOOTSTRAP_STATS: Final = ("mean_diff", "ratio_of_means", "ratio_p50", "ratio_p95", "ratio_p99")
ADJUST_METHODS: Final = ("bh", "holm", "none")
#: Means over more pairs than this (and more than 32 distinct pairs) use strata.
EXACT_MEAN_MAX_N: Final = 500
#: Zero differences in the signed-rank test: ranked with the others, then dropped.
WILCOXON_ZERO_METHOD: Final = "pratt"

_QUANTILES: Final = {"ratio_p50": 0.50, "ratio_p95": 0.95, "ratio_p99": 0.99}
_DISTINCT_MAX: Final = 32  # up to this many distinct pairs: exact multinomial counts
_STRATA: Final = 32  # equal-count strata for the bootstrap of means
_SINGLETONS: Final = 32  # most extreme pairs on each side, kept exact
_WINDOW_Z: Final = 4.0  # half-width of the quantile window, in binomial SDs
_BLOCK_ELEMENTS: Final = 2_000_000  # elements per work array: bounds memory


@dataclass(frozen=True, slots=True)
class TestResult:
    """One paired comparison: the estimate, its interval and its p-value.

    ``test`` names the method (``"mcnemar-exact"``, ``"paired-bootstrap"``,
    ``"wilcoxon-signed-rank"``) or is ``"none"`` when there was too little data
    to test (then ``ci_low``, ``ci_high`` and ``p_value`` are ``None``).
    ``estimate`` is new minus old for differences and new / old for ratios.
    """

    __test__ = False  # a class named Test* is not a pytest test class

    test: str
    estimate: float
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    n: int
    detail: dict[str, float | int]


# --- pass rates: McNemar + Newcombe ---------------------------------------


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value from the discordant pair counts.

    ``b`` pairs went pass -> fail (old passed, new failed), ``c`` went
    fail -> pass. Under H0 each discordant pair is equally likely to go either
    way, so min(b, c) ~ Binomial(b + c, 1/2); the p-value is
    ``min(1, 2 * P(X <= min(b, c)))``, and 1.0 when there are no discordant
    pairs.
    """
    b, c = operator.index(b), operator.index(c)
    if b < 0 or c < 0:
        raise ValueError(f"discordant counts must be >= 0, got b={b}, c={c}")
    n = b + c
    if n == 0:
        return 1.0
    return min(1.0, 2.0 * float(_sps.binom.cdf(min(b, c), n, 0.5)))


def paired_binary(old: Values, new: Values, *, alpha: float = 0.05) -> TestResult:
    """Compare two paired pass/fail columns (pass rates, check rates).

    ``estimate`` is ``mean(new) - mean(old)``; the p-value is
    :func:`mcnemar_exact` on the discordant pairs; the interval is Newcombe's
    hybrid score interval for a difference of paired proportions (method 10).
    Values are booleans or 0/1; a pair with a missing side (``None``/NaN) is
    dropped. ``detail`` holds ``old_rate``, ``new_rate``, the four cells of the
    paired table (``a`` both pass, ``b`` pass -> fail, ``c`` fail -> pass,
    ``d`` both fail) and ``n_dropped``.
    """
    _check_alpha(alpha)
    o, w, dropped = _clean_pairs(old, new)
    if not (np.isin(o, (0.0, 1.0)).all() and np.isin(w, (0.0, 1.0)).all()):
        raise ValueError("paired_binary takes booleans or 0/1 values")
    n = int(o.size)
    if n == 0:
        return TestResult("none", math.nan, None, None, None, 0, {"n_dropped": dropped})
    ob, wb = o.astype(bool), w.astype(bool)
    a = int(np.count_nonzero(ob & wb))
    b = int(np.count_nonzero(ob & ~wb))
    c = int(np.count_nonzero(~ob & wb))
    d = n - a - b - c
    old_rate, new_rate = (a + b) / n, (a + c) / n
    low, high = _newcombe_paired(a, b, c, d, alpha)
    detail: dict[str, float | int] = {
        "old_rate": old_rate,
        "new_rate": new_rate,
        "a": a,
        "b": b,
        "c": c,
        "d": d,
        "n_dropped": dropped,
    }
    return TestResult("mcnemar-exact", (c - b) / n, low, high, mcnemar_exact(b, c), n, detail)


def _wilson(successes: int, n: int, z: float) -> tuple[float, float]:
    p = successes / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def _newcombe_paired(a: int, b: int, c: int, d: int, alpha: float) -> tuple[float, float]:
    """Newcombe (1998) method 10 for theta = p_new - p_old.

    Square-and-add of the two Wilson score intervals, corrected for the
    correlation of the paired proportions by phi, the continuity-corrected
    phi coefficient of the 2x2 table (zero when any margin is zero).
    """
    n = a + b + c + d
    z = float(_sps.norm.ppf(1 - alpha / 2))
    p_new, p_old = (a + c) / n, (a + b) / n
    l_new, u_new = _wilson(a + c, n, z)
    l_old, u_old = _wilson(a + b, n, z)
    margins = (a + b) * (c + d) * (a + c) * (b + d)
    phi = 0.0
    if margins > 0:
        cross = a * d - b * c
        if cross > n / 2:
            corrected = cross - n / 2
        elif cross >= 0:
            corrected = 0.0
        else:
            corrected = float(cross)
        phi = max(-1.0, min(1.0, corrected / math.sqrt(margins)))
    theta = p_new - p_old
    dl_new, du_new = p_new - l_new, u_new - p_new
    dl_old, du_old = p_old - l_old, u_old - p_old
    low = theta - math.sqrt(max(0.0, dl_new**2 - 2 * phi * dl_new * du_old + du_old**2))
    high = theta + math.sqrt(max(0.0, dl_old**2 - 2 * phi * dl_old * du_new + du_new**2))
    return max(-1.0, low), min(1.0, high)


# --- bootstrap --------------------------------------------------------------


def paired_bootstrap(
    old: Values,
    new: Values,
    *,
    stat: str = "mean_diff",
    n_resamples: int = 2000,
    alpha: float = 0.05,
    seed: int = 0,
) -> TestResult:
    """Bootstrap a paired statistic: percentile interval and two-sided p-value.

    ``stat`` is ``"mean_diff"`` (mean of new - old), ``"ratio_of_means"``
    (mean(new) / mean(old)) or ``"ratio_p50"``, ``"ratio_p95"``,
    ``"ratio_p99"`` (quantile(new) / quantile(old), linear interpolation as in
    numpy). Pairs are resampled together. The interval is the percentile
    interval of the bootstrap distribution T*; the p-value for H0 "no
    difference" (0 for the difference, 1 for ratios) is
    ``2 * min(P(T* <= null), P(T* >= null))`` clipped to ``[1/(B+1), 1]``:
    the smallest alpha at which the percentile interval excludes the null.

    A pair with a non-finite side (NaN, None, inf) is dropped. With fewer than
    two pairs, or a ratio whose denominator is 0, the result has ``test="none"``
    and no interval or p-value. ``detail`` holds ``old`` and ``new`` (the two
    sides' means or quantiles), ``n_resamples``, ``n_dropped`` and
    ``stratified`` (1 when the stratified approximation for means was used).
    """
    if stat not in BOOTSTRAP_STATS:
        raise ValueError(f"unknown stat {stat!r}; choose one of {', '.join(BOOTSTRAP_STATS)}")
    if operator.index(n_resamples) < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")
    _check_alpha(alpha)
    o, w, dropped = _clean_pairs(old, new)
    n = int(o.size)
    old_stat, new_stat, estimate = _point(o, w, stat)
    detail: dict[str, float | int] = {"n_resamples": n_resamples, "n_dropped": dropped}
    if n:
        detail |= {"old": old_stat, "new": new_stat}
    if n < 2 or not math.isfinite(estimate):
        return TestResult("none", estimate, None, None, None, n, detail)
    rng = np.random.default_rng(seed)
    stratified = False
    with np.errstate(divide="ignore", invalid="ignore"):
        if stat == "mean_diff":
            diff = w - o
            sums, totals, stratified = _mean_replicates(diff[:, None], diff, n_resamples, rng)
            replicates = sums[:, 0] / totals
        elif stat == "ratio_of_means":
            cols = np.column_stack([o, w])
            sums, _, stratified = _mean_replicates(cols, w - estimate * o, n_resamples, rng)
            replicates = sums[:, 1] / sums[:, 0]
        else:
            q_old, q_new = _quantile_replicates(o, w, _QUANTILES[stat], n_resamples, rng)
            replicates = q_new / q_old
    detail["stratified"] = int(stratified)
    null = 0.0 if stat == "mean_diff" else 1.0
    low, high, p = _percentile_summary(replicates, null, alpha)
    return TestResult("paired-bootstrap", estimate, low, high, p, n, detail)


def _point(o: FloatArray, w: FloatArray, stat: str) -> tuple[float, float, float]:
    """(old side, new side, estimate) on the observed pairs; NaN when empty."""
    if o.size == 0:
        return math.nan, math.nan, math.nan
    if stat in _QUANTILES:
        q = _QUANTILES[stat]
        old_v, new_v = float(np.quantile(o, q)), float(np.quantile(w, q))
    else:
        old_v, new_v = float(o.mean()), float(w.mean())
    if stat == "mean_diff":
        return old_v, new_v, float((w - o).mean())
    ratio = new_v / old_v if old_v != 0 else (math.nan if new_v == 0 else math.inf)
    return old_v, new_v, ratio


def _percentile_summary(
    replicates: FloatArray, null: float, alpha: float
) -> tuple[float | None, float | None, float | None]:
    """Percentile interval and two-sided p-value from the bootstrap replicates."""
    t = np.sort(replicates[~np.isnan(replicates)])
    size = int(t.size)
    if size == 0:
        return None, None, None
    low = _sorted_quantile(t, alpha / 2)
    high = _sorted_quantile(t, 1 - alpha / 2)
    below = int(np.searchsorted(t, null, side="right"))  # T* <= null
    above = size - int(np.searchsorted(t, null, side="left"))  # T* >= null
    p = min(1.0, max(2.0 * min(below, above) / size, 1.0 / (size + 1)))
    return low, high, p


def _sorted_quantile(t: FloatArray, q: float) -> float:
    """Linear-interpolation quantile of sorted values that may hold +-inf."""
    h = (t.size - 1) * q
    k = math.floor(h)
    frac = h - k
    lo = float(t[k])
    hi = float(t[min(k + 1, t.size - 1)])
    if frac == 0 or lo == hi or math.isinf(lo):
        return lo
    if math.isinf(hi):
        return hi
    return lo + frac * (hi - lo)


def _blocks(n_resamples: int, per_resample: int) -> list[int]:
    """Sizes of the blocks of resamples that keep one work array bounded."""
    size = max(1, min(n_resamples, _BLOCK_ELEMENTS // max(1, per_resample)))
    full, rest = divmod(n_resamples, size)
    return [size] * full + ([rest] if rest else [])


def _mean_replicates(
    cols: FloatArray, key: FloatArray, n_resamples: int, rng: np.random.Generator
) -> tuple[FloatArray, FloatArray, bool]:
    """Resampled column sums (B, k), total weights (B,), and whether stratified.

    ``key`` is each pair's influence on the statistic (it orders the strata).
    """
    n = cols.shape[0]
    distinct = _few_distinct_rows(cols)
    if distinct is not None:
        # Few distinct pairs (scores on a small scale): the multinomial counts
        # of the distinct pairs are the classic bootstrap, exactly, in O(K).
        rows, freq = distinct
        sums = np.empty((n_resamples, cols.shape[1]))
        start = 0
        for size in _blocks(n_resamples, rows.shape[0]):
            counts = rng.multinomial(n, freq / n, size=size).astype(np.float64)
            sums[start : start + size] = counts @ rows
            start += size
        return sums, np.full(n_resamples, float(n)), False
    if n <= EXACT_MEAN_MAX_N:
        sums = np.empty((n_resamples, cols.shape[1]))
        start = 0
        for size in _blocks(n_resamples, n):
            idx = rng.integers(0, n, size=(size, n))
            sums[start : start + size] = cols[idx].sum(axis=1)
            start += size
        return sums, np.full(n_resamples, float(n)), False
    return _stratified(cols, key, n_resamples, rng), np.full(n_resamples, float(n)), True


def _few_distinct_rows(cols: FloatArray) -> tuple[FloatArray, FloatArray] | None:
    """The distinct rows and their counts, when there are at most ``_DISTINCT_MAX``."""
    marginal = [np.unique(cols[:, j]).size for j in range(cols.shape[1])]
    if math.prod(marginal) > _DISTINCT_MAX:
        return None
    rows, freq = np.unique(cols, axis=0, return_counts=True)
    return rows, freq.astype(np.float64)


def _stratified(
    cols: FloatArray, key: FloatArray, n_resamples: int, rng: np.random.Generator
) -> FloatArray:
    """Resampled column sums from strata of pairs (see the module docstring)."""
    n, k = cols.shape
    centre = cols.mean(axis=0)
    ordered = (cols - centre)[np.argsort(key, kind="stable")]
    # Equal strata in the middle; the extremes (and the remainder) stay exact.
    per = (n - 2 * _SINGLETONS) // _STRATA
    edge = (n - per * _STRATA) // 2
    single = np.concatenate([ordered[:edge], ordered[edge + per * _STRATA :]])
    middle = ordered[edge : edge + per * _STRATA].reshape(_STRATA, per, k)
    means = middle.mean(axis=1)
    dev = middle - means[:, None, :]
    cov = np.einsum("gpi,gpj->gij", dev, dev).reshape(_STRATA, k * k) / per
    pvals = np.array([per] * _STRATA + [single.shape[0]], dtype=np.float64) / n
    sums = np.empty((n_resamples, k))
    start = 0
    for size in _blocks(n_resamples, 4 * single.shape[0]):
        counts = rng.multinomial(n, pvals, size=size)
        strata = counts[:, :_STRATA].astype(np.float64)
        # Given the counts, the within-stratum parts add up to one normal
        # vector with covariance sum_g counts_g * cov_g.
        chol = _cholesky_psd((strata @ cov).reshape(size, k, k))
        spread = np.einsum("bij,bj->bi", chol, rng.standard_normal((size, k)))
        m = counts[:, _STRATA]
        draws = rng.integers(0, single.shape[0], size=(size, max(1, int(m.max()))))
        unused = np.arange(draws.shape[1])[None, :] >= m[:, None]
        picked = np.column_stack(
            [np.where(unused, 0.0, np.take(single[:, j], draws)).sum(axis=1) for j in range(k)]
        )
        sums[start : start + size] = strata @ means + spread + picked
        start += size
    result: FloatArray = sums + n * centre
    return result


def _cholesky_psd(cov: FloatArray) -> FloatArray:
    """Lower Cholesky factors of a stack of 1x1 or 2x2 PSD matrices (no failures)."""
    out = np.zeros_like(cov)
    s00 = np.maximum(cov[:, 0, 0], 0.0)
    out[:, 0, 0] = np.sqrt(s00)
    if cov.shape[1] == 2:
        safe = np.where(s00 > 0, out[:, 0, 0], 1.0)
        l10 = np.where(s00 > 0, cov[:, 1, 0] / safe, 0.0)
        out[:, 1, 0] = l10
        out[:, 1, 1] = np.sqrt(np.maximum(cov[:, 1, 1] - l10 * l10, 0.0))
    return out


@dataclass(frozen=True, slots=True)
class _Side:
    """One side's quantile window: the pairs ranked ``lo <= rank < lo + width``.

    ``code`` is per pair: ``rank - lo`` inside the window, -1 below it and
    ``width`` above it, so sorting codes sorts the pairs by this side's value.
    """

    values: FloatArray  # this side's sorted values inside the window
    code: IntArray

    @property
    def width(self) -> int:
        return int(self.values.size)

    @classmethod
    def build(cls, x: FloatArray, k: int, k1: int, z: float) -> _Side:
        n = x.size
        order = np.argsort(x, kind="stable")
        rank = np.empty(n, dtype=np.int64)
        rank[order] = np.arange(n)
        p = (k + 1) / n
        margin = math.ceil(z * math.sqrt(n * p * (1 - p))) + 2
        lo, hi = max(0, k - margin), min(n, k1 + 1 + margin)
        code = np.clip(rank - lo, -1, hi - lo)
        return cls(x[order[lo:hi]], code)


def _quantile_replicates(
    old: FloatArray,
    new: FloatArray,
    q: float,
    n_resamples: int,
    rng: np.random.Generator,
    *,
    window_z: float = _WINDOW_Z,
) -> tuple[FloatArray, FloatArray]:
    """Quantiles of old and new over the same multinomial resamples of pairs.

    One multinomial draw says how many pairs a resample takes from each of
    four aggregate cells (below or above the window on the old side x on the
    new side) and from the tracked pairs (inside the window on at least one
    side); the tracked pairs are then drawn one by one. On each side the
    resample's k-th smallest value is the (k - below)-th smallest tracked draw,
    where ``below`` counts the aggregate draws below the window.
    """
    n = old.size
    h = (n - 1) * q
    k = math.floor(h)
    frac = h - k
    k1 = min(k + 1, n - 1)
    sides = (_Side.build(old, k, k1, window_z), _Side.build(new, k, k1, window_z))
    inside = [(side.code >= 0) & (side.code < side.width) for side in sides]
    tracked = np.flatnonzero(inside[0] | inside[1])
    rest = np.flatnonzero(~(inside[0] | inside[1]))
    high = [(side.code[rest] > 0).astype(np.int64) for side in sides]
    cell_of_rest = high[0] * 2 + high[1]
    cells = [rest[cell_of_rest == c] for c in range(4)]  # low-low, low-high, high-low, high-high
    pvals = np.array([c.size for c in cells] + [tracked.size], dtype=np.float64) / n
    below_cells = ([0, 1], [0, 2])  # the cells below the window on the old / new side
    small = max(side.width for side in sides) < np.iinfo(np.int16).max - 1
    dtype = np.int16 if small else np.int64
    codes = [side.code[tracked].astype(dtype) for side in sides]
    per_resample = tracked.size + 8 * math.isqrt(tracked.size) + 16
    out = (np.empty(n_resamples), np.empty(n_resamples))
    start = 0
    for size in _blocks(n_resamples, per_resample):
        counts = rng.multinomial(n, pvals, size=size)
        m = counts[:, 4]
        draws = rng.integers(0, tracked.size, size=(size, max(1, int(m.max()))))
        unused = np.arange(draws.shape[1])[None, :] >= m[:, None]
        ok = np.ones(size, dtype=bool)
        for j, side in enumerate(sides):
            drawn = np.take(codes[j], draws)
            drawn[unused] = side.width  # sorts after everything drawn
            drawn.sort(axis=1, kind="stable")
            low = counts[:, below_cells[j]].sum(axis=1)
            at = np.column_stack([k - low, k1 - low])
            inside_row = (at[:, 0] >= 0) & (at[:, 1] < drawn.shape[1])
            at = np.clip(at, 0, drawn.shape[1] - 1)
            pos = np.take_along_axis(drawn, at, axis=1).astype(np.int64)
            ok &= inside_row & (pos[:, 0] >= 0) & (pos[:, 1] < side.width)
            v = side.values[np.clip(pos, 0, side.width - 1)]
            out[j][start : start + size] = v[:, 0] + frac * (v[:, 1] - v[:, 0])
        for r in np.flatnonzero(~ok).tolist():
            # A quantile fell outside its window: complete this resample draw
            # by draw from its cell counts (uniform within each cell).
            picks = [
                c[rng.integers(0, c.size, counts[r, i])] for i, c in enumerate(cells) if c.size
            ]
            idx = np.concatenate([*picks, tracked[draws[r, : m[r]]]])
            out[0][start + r] = np.quantile(old[idx], q)
            out[1][start + r] = np.quantile(new[idx], q)
        start += size
    return out


# --- signed rank ------------------------------------------------------------


def wilcoxon_signed_rank(old: Values, new: Values) -> TestResult:
    """Wilcoxon signed-rank test on the paired differences new - old.

    A thin wrapper over :func:`scipy.stats.wilcoxon` with
    ``zero_method="pratt"`` (zero differences take part in the ranking, then
    their ranks are dropped) and scipy's default ``method="auto"``. The
    estimate is the median of the differences; there is no interval. A pair
    with a non-finite side is dropped; with no pairs the result has
    ``test="none"``; when every difference is zero the p-value is 1.0.
    """
    o, w, dropped = _clean_pairs(old, new)
    diff = w - o
    n = int(diff.size)
    if n == 0:
        return TestResult("none", math.nan, None, None, None, 0, {"n_dropped": dropped})
    n_zero = int(np.count_nonzero(diff == 0))
    detail: dict[str, float | int] = {
        "statistic": 0.0,
        "n_nonzero": n - n_zero,
        "n_zero": n_zero,
        "n_dropped": dropped,
    }
    estimate = float(np.median(diff))
    if n_zero == n:
        return TestResult("wilcoxon-signed-rank", estimate, None, None, 1.0, n, detail)
    res = _sps.wilcoxon(diff, zero_method=WILCOXON_ZERO_METHOD)
    detail["statistic"] = float(res.statistic)
    return TestResult("wilcoxon-signed-rank", estimate, None, None, float(res.pvalue), n, detail)


# --- multiple comparisons ---------------------------------------------------


def holm(p_values: Sequence[float | None]) -> list[float | None]:
    """Holm (1979) step-down adjusted p-values; ``None`` (and NaN) stay ``None``."""
    where, p = _present(p_values)
    m = p.size
    order = np.argsort(p, kind="stable")
    stepped = np.maximum.accumulate(p[order] * (m - np.arange(m)))
    return _restore(len(p_values), where, order, np.minimum(stepped, 1.0))


def benjamini_hochberg(p_values: Sequence[float | None]) -> list[float | None]:
    """Benjamini-Hochberg (1995) adjusted p-values (monotone); ``None`` stays ``None``."""
    where, p = _present(p_values)
    m = p.size
    order = np.argsort(p, kind="stable")
    scaled = p[order] * m / np.arange(1, m + 1)
    stepped = np.minimum.accumulate(scaled[::-1])[::-1]
    return _restore(len(p_values), where, order, np.minimum(stepped, 1.0))


def adjust(p_values: Sequence[float | None], method: str = "bh") -> list[float | None]:
    """Adjust p-values for multiple comparisons: ``"bh"``, ``"holm"`` or ``"none"``."""
    if method == "bh":
        return benjamini_hochberg(p_values)
    if method == "holm":
        return holm(p_values)
    if method == "none":
        where, p = _present(p_values)
        return _restore(len(p_values), where, np.arange(p.size), p)
    raise ValueError(f"unknown adjustment {method!r}; choose one of {', '.join(ADJUST_METHODS)}")


def _present(p_values: Sequence[float | None]) -> tuple[IntArray, FloatArray]:
    """Positions and values of the p-values that are there (not None, not NaN)."""
    where: list[int] = []
    values: list[float] = []
    for i, p in enumerate(p_values):
        if p is None or math.isnan(p):
            continue
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"p-value {p!r} at position {i} is outside [0, 1]")
        where.append(i)
        values.append(float(p))
    return np.array(where, dtype=np.int64), np.array(values, dtype=np.float64)


def _restore(
    size: int, where: IntArray, order: IntArray, adjusted_sorted: FloatArray
) -> list[float | None]:
    out: list[float | None] = [None] * size
    for pos, value in zip(where[order].tolist(), adjusted_sorted.tolist(), strict=True):
        out[pos] = value
    return out


# --- shared -----------------------------------------------------------------


def _clean_pairs(old: Values, new: Values) -> tuple[FloatArray, FloatArray, int]:
    """Both sides as float arrays, pairs with a non-finite side dropped."""
    o = np.asarray(old, dtype=np.float64)
    w = np.asarray(new, dtype=np.float64)
    if o.ndim != 1 or w.ndim != 1 or o.shape != w.shape:
        raise ValueError(
            f"old and new must be 1-D and of the same length, got shapes {o.shape} and {w.shape}"
        )
    keep = np.isfinite(o) & np.isfinite(w)
    dropped = int(o.size - np.count_nonzero(keep))
    if dropped:
        o, w = o[keep], w[keep]
    return o, w, dropped


def _check_alpha(alpha: float) -> None:
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
