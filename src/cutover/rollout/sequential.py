"""Always-valid confidence sequences for one arm's metric: pure numpy and scipy, no I/O.

A confidence sequence (CS) at level ``gamma`` is a sequence of intervals that
holds the true value at *every* time at once with probability at least
``1 - gamma``: P(exists t: value not in CS_t) <= gamma. Checking it after
every request, every minute or whenever the controller wakes up therefore
keeps its error rate; that is what lets a canary be watched continuously.
Every function here is vectorised: arguments may be arrays (one entry per
simulated run) and results broadcast. The methods, assumptions and references
are set out in ``docs/rollout.md``:

* Rates (:func:`rate_cs`), exact and non-asymptotic. For each null value p0,
  the likelihood ratio of the Bernoulli data mixed over a Beta(kappa p0,
  kappa (1 - p0)) prior centred on p0 is a nonnegative martingale with mean
  one under p0 (Robbins' conjugate mixture; the same Dirichlet/Beta mixture
  centred on the null that Lindon & Malek 2022 use for multinomial counts).
  By Ville's inequality it exceeds 1/gamma with probability at most gamma,
  ever; the CS is the set of p0 where it has not. :func:`rate_log_e` is
  ``log betabinom.pmf(S; n, a, b) - log binom.pmf(S; n, p0)``.
* Quantiles (:func:`quantile_ranks`), exact for continuous data (Howard &
  Ramdas 2022, Bernoulli 28(3)): the number of observations at or below the
  true p-quantile is Binomial(t, p) with p *known*, so the same mixture gives
  an acceptance band of counts valid at all t at once, and the band becomes
  a CS of order statistics.
* Means (:func:`mean_cs`), asymptotic: the normal-mixture boundary with a
  plug-in standard deviation, the "asymptotic confidence sequence" of
  Waudby-Smith, Arbour, Sinha, Kennedy & Ramdas (2024, Ann. Statist. 52(6)).
  Valid as the sample grows for data with finite variance (a little more than
  two moments); below :data:`MEAN_MIN_N` observations the interval is
  unbounded.

Every mixture is tuned to be tightest at a planned sample size ``n_star``
(:func:`mixture_rho`, :func:`beta_concentration`); the tuning is fixed before
the data are seen, which is what keeps the guarantee.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Final, NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import gammaln

__all__ = [
    "MEAN_MIN_N",
    "ROOT_STEPS",
    "Interval",
    "beta_concentration",
    "mean_cs",
    "mixture_rho",
    "quantile_ranks",
    "rate_cs",
    "rate_log_e",
]

FloatArray = NDArray[np.float64]

#: Fewer observations than this and the asymptotic mean CS is (-inf, inf).
MEAN_MIN_N: Final = 200
#: Illinois steps for the ends of a rate CS (searched on log p0 over a 50-nat
#: bracket) and of a count band: enough for about 1e-9 relative precision.
ROOT_STEPS: Final = 22
_LOG_SPAN: Final = 50.0  # bracket below p-hat for the lower end, in nats


class Interval(NamedTuple):
    """An estimate with its confidence sequence at one time (arrays broadcast)."""

    estimate: FloatArray
    low: FloatArray
    high: FloatArray


def mixture_rho(n_star: float, gamma: float) -> float:
    """The normal-mixture spread (in standard deviations) tightest at ``n_star`` samples.

    For the mixture martingale ``(1 + t rho^2)^(-1/2) exp(rho^2 S_t^2 / (2 (1 + t rho^2)))``
    of a standardised sum, the boundary at time ``n_star`` is smallest for
    ``rho^2 = (2 log(1/gamma) + log(1 + 2 log(1/gamma))) / n_star``
    (Waudby-Smith et al. 2024, Section 3).
    """
    _check_gamma(gamma)
    if n_star <= 0:
        raise ValueError(f"n_star must be > 0, got {n_star}")
    two_log = 2.0 * math.log(1.0 / gamma)
    return math.sqrt((two_log + math.log1p(two_log)) / n_star)


def beta_concentration(n_star: float, gamma: float) -> float:
    """Concentration kappa of the Beta prior whose spread matches :func:`mixture_rho`.

    A Beta(kappa p0, kappa (1 - p0)) prior has standard deviation
    ``sqrt(p0 (1 - p0) / (kappa + 1))``, i.e. ``rho`` Bernoulli standard
    deviations when ``kappa = 1 / rho^2 - 1``: the same spread at every p0.
    """
    rho = mixture_rho(n_star, gamma)
    return max(1.0 / (rho * rho) - 1.0, 1.0)


def rate_log_e(
    successes: ArrayLike, n: ArrayLike, p0: ArrayLike, kappa: float | ArrayLike
) -> FloatArray:
    """Log of the Beta-mixture likelihood ratio of ``successes`` in ``n`` trials against p0.

    ``log B(a + S, b + n - S) - log B(a, b) - S log p0 - (n - S) log(1 - p0)``
    with ``a = kappa p0`` and ``b = kappa (1 - p0)``: a nonnegative martingale
    with mean one while the data are Bernoulli(p0), so
    P(ever >= log(1/gamma)) <= gamma (Ville). Zero when ``n`` is zero.
    """
    s = np.asarray(successes, dtype=np.float64)
    t = np.asarray(n, dtype=np.float64)
    p = np.asarray(p0, dtype=np.float64)
    if np.any((p <= 0.0) | (p >= 1.0)):
        raise ValueError("p0 must lie in (0, 1)")
    with np.errstate(divide="ignore", invalid="ignore"):
        out = _log_e(s, t, np.asarray(kappa, dtype=np.float64))(p)
    return np.asarray(out, dtype=np.float64)


def _log_e(s: FloatArray, t: FloatArray, kappa: FloatArray) -> Callable[[FloatArray], FloatArray]:
    """:func:`rate_log_e` as a function of p0 (or of the count, see :func:`_log_e_count`)."""
    f = t - s
    const = gammaln(kappa) - gammaln(kappa + t)

    def at(p: FloatArray) -> FloatArray:
        q = 1.0 - p
        a, b = kappa * p, kappa * q
        out = const + gammaln(a + s) + gammaln(b + f) - gammaln(a) - gammaln(b)
        # 0 * log(0) terms: no successes at p0 = 0 (or no failures at p0 = 1) cost nothing
        out = out - np.where(s > 0, s * np.log(p), 0.0) - np.where(f > 0, f * np.log(q), 0.0)
        return np.asarray(out, dtype=np.float64)

    return at


def _log_e_count(
    t: FloatArray, p: FloatArray, kappa: FloatArray
) -> Callable[[FloatArray], FloatArray]:
    """:func:`rate_log_e` at a known p as a function of the (real-valued) count."""
    a, b = kappa * p, kappa * (1.0 - p)
    const = gammaln(kappa) - gammaln(kappa + t) - gammaln(a) - gammaln(b)
    log_p, log_q = np.log(p), np.log1p(-p)

    def at(s: FloatArray) -> FloatArray:
        f = t - s
        out = const + gammaln(a + s) + gammaln(b + f) - s * log_p - f * log_q
        return np.asarray(out, dtype=np.float64)

    return at


def _boundary(
    excess: Callable[[FloatArray], FloatArray], rejected: FloatArray, accepted: FloatArray
) -> FloatArray:
    """Where ``excess`` (the log-e-value minus the critical value) crosses zero.

    ``excess`` is above zero at ``rejected`` and at most zero at ``accepted``
    and monotone between them. Illinois (modified regula falsi) keeps the
    bracket and converges superlinearly; the rejected end is returned, so a
    bound is never inside the true acceptance region.
    """
    lo, hi = rejected.copy(), accepted.copy()
    f_lo, f_hi = excess(lo), excess(hi)
    side = np.zeros_like(lo)
    for _ in range(ROOT_STEPS):
        x = hi - f_hi * (hi - lo) / (f_hi - f_lo)
        x = np.where(np.isfinite(x) & (x != lo) & (x != hi), x, 0.5 * (lo + hi))
        fx = excess(x)
        rej = fx > 0
        lo, f_lo_next = np.where(rej, x, lo), np.where(rej, fx, f_lo)
        hi, f_hi_next = np.where(rej, hi, x), np.where(rej, f_hi, fx)
        # Illinois: an end kept twice in a row has its value halved
        f_lo = np.where(~rej & (side < 0), 0.5 * f_lo_next, f_lo_next)
        f_hi = np.where(rej & (side > 0), 0.5 * f_hi_next, f_hi_next)
        side = np.where(rej, 1.0, -1.0)
    return lo


def rate_cs(successes: ArrayLike, n: ArrayLike, gamma: float, kappa: float | ArrayLike) -> Interval:
    """Confidence sequence for a Bernoulli rate: the p0 the mixture has not rejected.

    The set ``{p0 : rate_log_e(S, n, p0) < log(1/gamma)}`` is an interval around
    the observed rate when ``S >= 2`` (and ``n - S >= 2``): the log-likelihood
    ratio falls towards the observed rate from both sides. With ``S <= 1`` the
    mixture never rejects rates near zero (its prior shrinks with p0), so the
    lower end is 0; likewise the upper end is 1 with at most one failure. With
    no data the interval is [0, 1] and the estimate NaN.
    """
    _check_gamma(gamma)
    s, t, k = np.broadcast_arrays(
        np.asarray(successes, dtype=np.float64),
        np.asarray(n, dtype=np.float64),
        np.asarray(kappa, dtype=np.float64),
    )
    if np.any(s < 0) or np.any(s > t):
        raise ValueError("successes must lie in [0, n]")
    crit = math.log(1.0 / gamma)
    has = t > 0
    safe_t = np.where(has, t, 1.0)
    phat = np.where(has, s / safe_t, np.nan)
    p_mid = np.where(has, s / safe_t, 0.5)
    low = np.zeros(p_mid.shape)
    high = np.ones(p_mid.shape)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        lower_side = has & (s >= 2)
        if np.any(lower_side):
            low = np.where(lower_side, _lower_end(s, t, p_mid, k, crit), low)
        upper_side = has & (t - s >= 2)
        if np.any(upper_side):
            # the same search on failures: the upper end for p is 1 - the lower end for 1 - p
            high = np.where(upper_side, 1.0 - _lower_end(t - s, t, 1.0 - p_mid, k, crit), high)
    return Interval(np.asarray(phat), np.asarray(low), np.asarray(high))


def _lower_end(
    s: FloatArray, t: FloatArray, phat: FloatArray, kappa: FloatArray, crit: float
) -> FloatArray:
    """The smallest p0 in (0, phat] not rejected, searched on log p0.

    The log-e-value is above ``crit`` at ``phat * exp(-50)`` (else the end is 0)
    and at most 0 at ``phat``; between them it falls (checked on a grid in the
    tests), so there is one crossing.
    """
    log_e = _log_e(s, t, kappa)
    top = np.log(np.clip(phat, 1e-300, 1.0 - 1e-12))
    bottom = top - _LOG_SPAN
    rejected_at_bottom = log_e(np.exp(bottom)) > crit
    end = _boundary(lambda x: log_e(np.exp(x)) - crit, bottom, top)
    return np.where(rejected_at_bottom, np.exp(end), 0.0)


def quantile_ranks(
    n: ArrayLike, p: float | ArrayLike, gamma: float, kappa: float | ArrayLike
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Order-statistic ranks (1-based) bracketing the p-quantile, valid at all n at once.

    Returns ``(k_low, k_high)``: with probability at least ``1 - gamma``, for
    every n, ``X_(k_low) <= q_p < X_(k_high)`` where ``X_(k)`` is the k-th
    smallest of the first n observations (continuous data). ``k_low == 0``
    means no lower bound yet (-inf) and ``k_high == n + 1`` no upper bound
    (+inf). The count ``#{X_i <= q_p}`` is Binomial(n, p); the band is the set
    of counts the Beta mixture at the known p has not rejected (its
    log-e-value is convex in the count, so the band is an interval).
    """
    _check_gamma(gamma)
    t, q, k = np.broadcast_arrays(
        np.atleast_1d(np.asarray(n, dtype=np.float64)),
        np.asarray(p, dtype=np.float64),
        np.asarray(kappa, dtype=np.float64),
    )
    if np.any((q <= 0.0) | (q >= 1.0)):
        raise ValueError(f"p must be in (0, 1), got {p!r}")
    crit = math.log(1.0 / gamma)
    centre = t * q
    log_e = _log_e_count(t, q, k)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        at_zero = log_e(np.zeros_like(t)) > crit
        at_all = log_e(t) > crit
        s_low = _boundary(lambda x: log_e(x) - crit, np.zeros_like(t), centre)
        s_high = _boundary(lambda x: log_e(x) - crit, t.copy(), centre)
    # accepted counts are the integers strictly between the two rejected ends
    k_low = np.where(at_zero, np.floor(s_low) + 1.0, 0.0)
    k_max = np.where(at_all, np.ceil(s_high) - 1.0, t)
    k_low = np.minimum(k_low, k_max)  # guards the rounding of a band narrower than one count
    return k_low.astype(np.int64), (k_max + 1.0).astype(np.int64)


def mean_cs(
    n: ArrayLike, total: ArrayLike, total_sq: ArrayLike, gamma: float, rho: float
) -> Interval:
    """Asymptotic confidence sequence for a mean from its count, sum and sum of squares.

    ``mean +- sd * sqrt(2 (n rho^2 + 1) / (n^2 rho^2) * log(sqrt(n rho^2 + 1) / gamma))``
    with the sample standard deviation ``sd`` (Waudby-Smith et al. 2024,
    Theorem 2.2). Unbounded below :data:`MEAN_MIN_N` observations.
    """
    _check_gamma(gamma)
    t = np.asarray(n, dtype=np.float64)
    s1 = np.asarray(total, dtype=np.float64)
    s2 = np.asarray(total_sq, dtype=np.float64)
    has = t > 0
    safe_t = np.where(has, t, 1.0)
    mean = np.where(has, s1 / safe_t, np.nan)
    var = np.where(t > 1, (s2 - s1 * s1 / safe_t) / np.maximum(t - 1.0, 1.0), np.inf)
    sd = np.sqrt(np.maximum(var, 0.0))
    r2 = rho * rho
    with np.errstate(divide="ignore", invalid="ignore"):
        half = sd * np.sqrt(
            2.0
            * (safe_t * r2 + 1.0)
            / (safe_t * safe_t * r2)
            * np.log(np.sqrt(safe_t * r2 + 1.0) / gamma)
        )
    enough = t >= MEAN_MIN_N
    low = np.where(enough, mean - half, -np.inf)
    high = np.where(enough, mean + half, np.inf)
    return Interval(np.asarray(mean), np.asarray(low), np.asarray(high))


def _check_gamma(gamma: float) -> None:
    if not 0.0 < gamma < 1.0:
        raise ValueError(f"the level must be in (0, 1), got {gamma}")
