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

The rate and quantile functions take ``one_sided``. Two-sided (the default), the interval
holds at level ``gamma`` as a whole. One-sided, each end is its own bound at
level ``gamma``, from the same mixture with its prior restricted to the
alternatives beyond that end (a mixture over alternatives above p0 only is a
nonnegative supermartingale under every rate at or below p0): P(ever low >
value) <= gamma and P(ever high < value) <= gamma. A decision that looks at one
end only (a rollback looks at the candidate's lower end, a promotion at its
upper end) then spends all of its level on that end; restricting the prior
to one side multiplies the e-value by about 2 where it matters, so a
one-sided end is about as tight as a two-sided interval at twice the level.

Every mixture is tuned to be tightest at a planned sample size ``n_star``
(:func:`mixture_rho`, :func:`beta_concentration`); the tuning is fixed before
the data are seen, which is what keeps the guarantee.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Final, Literal, NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import betainc, gammaln

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
#: Illinois steps per root and secant rounds of a one-sided end (:func:`_crossing`): a root
#: that stops early is still on its rejected side, so fewer steps only widen a little.
_CROSSING_STEPS: Final = 12
_SECANT_ROUNDS: Final = 1
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


Side = Literal["both", "above", "below"]


def rate_log_e(
    successes: ArrayLike,
    n: ArrayLike,
    p0: ArrayLike,
    kappa: float | ArrayLike,
    side: Side = "both",
) -> FloatArray:
    """Log of the Beta-mixture likelihood ratio of ``successes`` in ``n`` trials against p0.

    ``log B(a + S, b + n - S) - log B(a, b) - S log p0 - (n - S) log(1 - p0)``
    with ``a = kappa p0`` and ``b = kappa (1 - p0)``: a nonnegative martingale
    with mean one while the data are Bernoulli(p0), so
    P(ever >= log(1/gamma)) <= gamma (Ville). Zero when ``n`` is zero.

    ``side="above"`` mixes over the prior restricted to rates above p0 (and
    renormalised): ``+ log P(post > p0) - log P(prior > p0)`` with the Beta
    posterior ``Beta(a + S, b + n - S)``. Each likelihood ratio in that mixture
    has mean at most one under any rate at or below p0, so the mixture is a
    supermartingale for the whole one-sided null. ``"below"`` is the mirror.
    """
    s = np.asarray(successes, dtype=np.float64)
    t = np.asarray(n, dtype=np.float64)
    p = np.asarray(p0, dtype=np.float64)
    if np.any((p <= 0.0) | (p >= 1.0)):
        raise ValueError("p0 must lie in (0, 1)")
    with np.errstate(divide="ignore", invalid="ignore"):
        out = _log_e(s, t, np.asarray(kappa, dtype=np.float64), side)(p)
    return np.asarray(out, dtype=np.float64)


def _log_e(
    s: FloatArray, t: FloatArray, kappa: FloatArray, side: Side = "both"
) -> Callable[[FloatArray], FloatArray]:
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

    if side == "both":
        return at
    restriction = _restriction(s, t, kappa, side)
    return lambda p: np.asarray(at(p) + restriction(p), dtype=np.float64)


def _restriction(
    s: FloatArray, t: FloatArray, kappa: FloatArray, side: Side
) -> Callable[[FloatArray], FloatArray]:
    """The log-ratio of posterior to prior mass on one side of p0, as a function of p0."""

    def at(p: FloatArray) -> FloatArray:
        a, b = kappa * p, kappa * (1.0 - p)
        return _side_mass(a, b, s, t - s, p, side)

    return at


def _side_mass(
    a: FloatArray, b: FloatArray, s: FloatArray, f: FloatArray, p: FloatArray, side: Side
) -> FloatArray:
    if side == "above":  # P(Beta(x, y) > p) = I_{1-p}(y, x), accurate when the mass is above p
        post, prior = betainc(b + f, a + s, 1.0 - p), betainc(b, a, 1.0 - p)
    else:
        post, prior = betainc(a + s, b + f, p), betainc(a, b, p)
    return np.asarray(np.log(post) - np.log(prior), dtype=np.float64)


def _log_e_count(
    t: FloatArray, p: FloatArray, kappa: FloatArray
) -> Callable[[FloatArray], FloatArray]:
    """:func:`rate_log_e` (both sides) at a known p as a function of the (real-valued) count."""
    a, b = kappa * p, kappa * (1.0 - p)
    const = gammaln(kappa) - gammaln(kappa + t) - gammaln(a) - gammaln(b)
    log_p, log_q = np.log(p), np.log1p(-p)

    def at(s: FloatArray) -> FloatArray:
        f = t - s
        out = const + gammaln(a + s) + gammaln(b + f) - s * log_p - f * log_q
        return np.asarray(out, dtype=np.float64)

    return at


def _count_restriction(
    t: FloatArray, p: FloatArray, kappa: FloatArray, side: Side
) -> Callable[[FloatArray], FloatArray]:
    """:func:`_restriction` at a known p as a function of the count."""
    a, b = kappa * p, kappa * (1.0 - p)
    return lambda s: _side_mass(a, b, s, t - s, p, side)


def _finite(x: FloatArray) -> FloatArray:
    return np.asarray(np.where(np.isfinite(x), x, 0.0), dtype=np.float64)


def _minus(
    f: Callable[[FloatArray], FloatArray], target: FloatArray
) -> Callable[[FloatArray], FloatArray]:
    return lambda x: np.asarray(f(x) - target, dtype=np.float64)


def _crossing(
    base: Callable[[FloatArray], FloatArray],
    restriction: Callable[[FloatArray], FloatArray] | None,
    crit: FloatArray,
    rejected: FloatArray,
    accepted: FloatArray,
    needed: NDArray[np.bool_] | None = None,
) -> FloatArray:
    """Where ``base + restriction`` crosses ``crit``, on its rejected side.

    The one-sided restriction term varies slowly next to the steep two-sided
    log-e-value, and each of its evaluations costs two incomplete beta
    functions, so it is held at a value c while the two-sided root x(c) is
    found, and c is solved for ``r(x(c)) = c`` by a fixed-point step and a
    secant step. Then, wherever the full e-value does not yet reject x (``r(x) <=
    c``), c is lowered past the gap and the root found again, so a bound is
    never inside the acceptance region; an entry that still fails after six
    such steps gets ``rejected`` itself.
    ``needed`` marks the entries whose result is used (the rest are not checked).
    """
    if restriction is None:
        return _boundary(lambda x: base(x) - crit, rejected, accepted)
    check = np.ones(rejected.shape, dtype=bool) if needed is None else needed

    def solve(c: FloatArray) -> tuple[FloatArray, FloatArray]:
        """The two-sided root with the term held at ``c``, and the term's gap there."""
        x = _boundary(_minus(base, crit - c), rejected, accepted, steps=_CROSSING_STEPS)
        return x, _finite(restriction(x)) - c

    # secant on c for r(x(c)) = c, from the term at the estimate and one fixed-point step
    c0 = _finite(restriction(accepted))
    x, h0 = solve(c0)
    c1 = c0 + h0
    x, h1 = solve(c1)
    for _ in range(_SECANT_ROUNDS):
        step = h1 - h0
        c2 = np.where(np.abs(step) > 1e-12, c1 - h1 * (c1 - c0) / np.where(step == 0, 1, step), c1)
        c0, h0 = c1, h1
        c1 = c2
        x, h1 = solve(c1)
    # g(x) = base + r - crit is about r(x) - c: move c down until every needed entry rejects
    for k in range(6):
        if not np.any(check & ~(h1 > 0)):
            return x
        c1 = np.where(h1 > 0, c1, c1 - 1.5 * np.abs(h1) - 1e-6 * 10.0**k)
        x, h1 = solve(c1)
    return np.where(check & ~(h1 > 0), rejected, x)


def _boundary(
    excess: Callable[[FloatArray], FloatArray],
    rejected: FloatArray,
    accepted: FloatArray,
    steps: int = ROOT_STEPS,
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
    for _ in range(steps):
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


def rate_cs(
    successes: ArrayLike,
    n: ArrayLike,
    gamma: float | ArrayLike,
    kappa: float | ArrayLike,
    *,
    one_sided: bool = False,
) -> Interval:
    """Confidence sequence for a Bernoulli rate: the p0 the mixture has not rejected.

    The set ``{p0 : rate_log_e(S, n, p0) < log(1/gamma)}`` is an interval around
    the observed rate when ``S >= 2`` (and ``n - S >= 2``): the log-likelihood
    ratio falls towards the observed rate from both sides. With ``S <= 1`` the
    mixture never rejects rates near zero (its prior shrinks with p0), so the
    lower end is 0; likewise the upper end is 1 with at most one failure. With
    no data the interval is [0, 1] and the estimate NaN. ``one_sided``: the
    lower end from the mixture over rates above p0 and the upper end from the
    one over rates below, each a bound at level ``gamma`` (``gamma`` may be an
    array, one level per entry).
    """
    _check_gamma(gamma)
    s, t, k, g = np.broadcast_arrays(
        np.asarray(successes, dtype=np.float64),
        np.asarray(n, dtype=np.float64),
        np.asarray(kappa, dtype=np.float64),
        np.asarray(gamma, dtype=np.float64),
    )
    if np.any(s < 0) or np.any(s > t):
        raise ValueError("successes must lie in [0, n]")
    crit = np.log(1.0 / g)
    side: Side = "above" if one_sided else "both"
    has = t > 0
    safe_t = np.where(has, t, 1.0)
    phat = np.where(has, s / safe_t, np.nan)
    p_mid = np.where(has, s / safe_t, 0.5)
    low = np.zeros(p_mid.shape)
    high = np.ones(p_mid.shape)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        lower_side = has & (s >= 2)
        if np.any(lower_side):
            low = np.where(lower_side, _lower_end(s, t, p_mid, k, crit, side), low)
        upper_side = has & (t - s >= 2)
        if np.any(upper_side):
            # the same search on failures: the upper end for p is 1 - the lower end for 1 - p
            high = np.where(
                upper_side, 1.0 - _lower_end(t - s, t, 1.0 - p_mid, k, crit, side), high
            )
    return Interval(np.asarray(phat), np.asarray(low), np.asarray(high))


def _lower_end(
    s: FloatArray,
    t: FloatArray,
    phat: FloatArray,
    kappa: FloatArray,
    crit: FloatArray,
    side: Side = "both",
) -> FloatArray:
    """The smallest p0 in (0, phat] not rejected, searched on log p0.

    The log-e-value is above ``crit`` at ``phat * exp(-50)`` (else the end is 0)
    and at most ``crit`` at ``phat``; between them it falls (checked on a grid
    in the tests), so there is one crossing. ``side`` is ``both`` or ``above``
    (the mixture over rates above p0: a lower bound on its own).
    """
    two_sided = _log_e(s, t, kappa)
    restriction = None if side == "both" else _restriction(s, t, kappa, side)
    top = np.log(np.clip(phat, 1e-300, 1.0 - 1e-12))
    bottom = top - _LOG_SPAN
    at_bottom = two_sided(np.exp(bottom))
    if restriction is not None:
        at_bottom = at_bottom + restriction(np.exp(bottom))
    rejected_at_bottom = at_bottom > crit
    end = _crossing(
        lambda x: two_sided(np.exp(x)),
        None if restriction is None else (lambda x: restriction(np.exp(x))),
        crit,
        bottom,
        top,
        rejected_at_bottom,
    )
    return np.where(rejected_at_bottom, np.exp(end), 0.0)


def quantile_ranks(
    n: ArrayLike,
    p: float | ArrayLike,
    gamma: float | ArrayLike,
    kappa: float | ArrayLike,
    *,
    one_sided: bool = False,
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Order-statistic ranks (1-based) bracketing the p-quantile, valid at all n at once.

    Returns ``(k_low, k_high)``: with probability at least ``1 - gamma``, for
    every n, ``X_(k_low) <= q_p < X_(k_high)`` where ``X_(k)`` is the k-th
    smallest of the first n observations (continuous data). ``k_low == 0``
    means no lower bound yet (-inf) and ``k_high == n + 1`` no upper bound
    (+inf). The count ``#{X_i <= q_p}`` is Binomial(n, p); the band is the set
    of counts the Beta mixture at the known p has not rejected (its
    log-e-value is convex in the count, so the band is an interval).
    ``one_sided``: ``k_low`` from the mixture over rates below p (a count too
    small) and ``k_high`` from the one above, each holding at level ``gamma``.
    """
    _check_gamma(gamma)
    t, q, k, g = np.broadcast_arrays(
        np.atleast_1d(np.asarray(n, dtype=np.float64)),
        np.asarray(p, dtype=np.float64),
        np.asarray(kappa, dtype=np.float64),
        np.asarray(gamma, dtype=np.float64),
    )
    if np.any((q <= 0.0) | (q >= 1.0)):
        raise ValueError(f"p must be in (0, 1), got {p!r}")
    crit = np.log(1.0 / g)
    centre = t * q
    log_e = _log_e_count(t, q, k)
    below = _count_restriction(t, q, k, "below") if one_sided else None
    above = _count_restriction(t, q, k, "above") if one_sided else None
    zero = np.zeros_like(t)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        at_zero = log_e(zero) + (0.0 if below is None else below(zero)) > crit
        at_all = log_e(t) + (0.0 if above is None else above(t)) > crit
        s_low = _crossing(log_e, below, crit, zero, centre, at_zero)
        s_high = _crossing(log_e, above, crit, t.copy(), centre, at_all)
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
    Theorem 2.2). Unbounded below :data:`MEAN_MIN_N` observations. There is no
    one-sided form: with skewed data (lognormal costs) the asymptotic upper end
    alone misses far more often than its level, while the two-sided interval
    holds (see ``docs/rollout.md``).
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


def _check_gamma(gamma: float | ArrayLike) -> None:
    g = np.asarray(gamma, dtype=np.float64)
    if not np.all((g > 0.0) & (g < 1.0)):
        raise ValueError(f"the level must be in (0, 1), got {gamma!r}")
