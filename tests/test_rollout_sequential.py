"""Sequential gates: the confidence sequences against scipy, their error rates under
continuous monitoring (simulated), their power, the SRM check and one stage's decision."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from scipy import integrate, optimize, stats

from cutover.rollout import (
    ArmWindow,
    Counts,
    Histogram,
    Moments,
    StageWindow,
    _core,
    decide_stage,
    load_plan,
    srm_test,
)
from cutover.rollout.plan import Plan
from cutover.rollout.sequential import (
    beta_concentration,
    mean_cs,
    mixture_rho,
    quantile_ranks,
    rate_cs,
    rate_log_e,
)
from cutover.rollout.srm import srm_log_e

LOOK_EVERY = 50
HORIZON = 20_000


def _slack(rate: float, runs: int) -> float:
    """Three Monte Carlo standard errors of a rate estimated from ``runs`` runs."""
    return 3.0 * math.sqrt(rate * (1.0 - rate) / runs)


def _plan(tmp_path: Path, gates: str, **extra: object) -> Plan:
    lines = [
        "route: r",
        "candidate: sim:new",
        "owner: me",
        "stages: [{weight: 10, min_requests: 100, min_duration: 1m, max_duration: 1h}, {weight: 100}]",
        f"gates: {gates}",
        *(f"{k}: {v}" for k, v in extra.items()),
    ]
    path = tmp_path / "plan.yaml"
    path.write_text("\n".join(lines) + "\n")
    return load_plan(path)


# --- the mixture against scipy ------------------------------------------------


@pytest.mark.parametrize(("s", "n"), [(0, 10), (3, 10), (7, 200), (150, 5000), (999, 1000)])
@pytest.mark.parametrize("p0", [0.01, 0.2, 0.5, 0.97])
def test_rate_log_e_is_the_beta_binomial_over_binomial_ratio(s: int, n: int, p0: float) -> None:
    kappa = 75.0
    ours = float(rate_log_e(s, n, p0, kappa))
    ref = stats.betabinom.logpmf(s, n, kappa * p0, kappa * (1 - p0)) - stats.binom.logpmf(s, n, p0)
    assert ours == pytest.approx(ref, abs=1e-8)


def test_rate_log_e_is_the_mixture_integral() -> None:
    """The closed form equals the likelihood ratio integrated over the Beta prior (quad)."""
    s, n, p0, kappa = 12, 100, 0.07, 40.0
    a, b = kappa * p0, kappa * (1 - p0)

    def integrand(p: float) -> float:
        ratio = (p / p0) ** s * ((1 - p) / (1 - p0)) ** (n - s)
        return float(ratio * stats.beta.pdf(p, a, b))

    value, _ = integrate.quad(integrand, 0, 1, points=[p0, s / n], limit=200)
    assert float(rate_log_e(s, n, p0, kappa)) == pytest.approx(math.log(value), rel=1e-7)


def test_the_log_e_value_falls_towards_the_estimate() -> None:
    """The root search assumes one crossing on each side of the estimate (S >= 2)."""
    grid = np.concatenate([np.geomspace(1e-9, 0.1, 4000), np.linspace(0.1, 0.9, 4000)])
    for kappa in (2.0, 20.0, 76.0, 500.0, 5000.0):
        for n in (2, 5, 13, 50, 300, 3000, 10**5, 10**7):
            for s in sorted({2, 3, n // 10, n // 2, n - 2}):
                if not 2 <= s <= n - 2:
                    continue
                v = rate_log_e(s, n, grid, kappa)
                d = np.diff(v)
                d = d[np.abs(d) > 1e-9 * np.maximum(1.0, np.abs(v[1:]))]
                assert (np.diff(np.sign(d)) != 0).sum() <= 1, (kappa, n, s)


def test_rate_cs_ends_are_where_the_e_value_crosses() -> None:
    gamma, kappa = 0.01, beta_concentration(1000, 0.01)
    iv = rate_cs(np.array([30, 2, 998]), np.array([1000, 50, 1000]), gamma, kappa)
    crit = math.log(1 / gamma)
    for lo, hi, s, n in zip(iv.low, iv.high, (30, 2, 998), (1000, 50, 1000), strict=True):
        assert lo < s / n < hi
        assert float(rate_log_e(s, n, lo, kappa)) == pytest.approx(crit, abs=1e-6)
        if hi < 1:
            assert float(rate_log_e(s, n, hi, kappa)) == pytest.approx(crit, abs=1e-6)
        # just inside is accepted, just outside rejected
        assert float(rate_log_e(s, n, lo * (1 + 1e-6), kappa)) < crit
        assert float(rate_log_e(s, n, lo * (1 - 1e-6), kappa)) > crit


def test_rate_cs_with_little_data() -> None:
    iv = rate_cs(np.array([0, 1, 0, 5]), np.array([0, 10, 10, 5]), 0.05, 50.0)
    assert math.isnan(iv.estimate[0]) and (iv.low[0], iv.high[0]) == (0.0, 1.0)
    assert iv.low[1] == 0.0 and iv.low[2] == 0.0  # at most one success: nothing excluded below
    assert iv.high[3] == 1.0 and iv.low[3] > 0.0
    with pytest.raises(ValueError):
        rate_cs(5, 3, 0.05, 50.0)


@pytest.mark.parametrize("side", ["above", "below"])
@pytest.mark.parametrize(("s", "n", "p0"), [(12, 100, 0.07), (3, 40, 0.2), (60, 100, 0.4)])
def test_one_sided_log_e_is_the_restricted_mixture_integral(
    side: str, s: int, n: int, p0: float
) -> None:
    """The one-sided mixture is the likelihood ratio integrated over the prior restricted to
    one side of p0 and renormalised (quad)."""
    kappa = 40.0
    a, b = kappa * p0, kappa * (1 - p0)
    lo, hi = (p0, 1.0) if side == "above" else (0.0, p0)

    def integrand(p: float) -> float:
        ratio = (p / p0) ** s * ((1 - p) / (1 - p0)) ** (n - s)
        return float(ratio * stats.beta.pdf(p, a, b))

    value, _ = integrate.quad(integrand, lo, hi, points=[s / n] if lo < s / n < hi else None,
                              limit=200)  # fmt: skip
    mass = stats.beta.sf(p0, a, b) if side == "above" else stats.beta.cdf(p0, a, b)
    ours = float(rate_log_e(s, n, p0, kappa, side))  # type: ignore[arg-type]
    assert ours == pytest.approx(math.log(value / mass), rel=1e-6, abs=1e-9)


def test_one_sided_log_e_is_a_supermartingale_under_the_one_sided_null() -> None:
    """E[e_{n+1} | e_n] <= e_n for a true rate at or below p0 (exact sum over the next outcome);
    a rate above p0 makes it grow."""
    kappa, p0 = 50.0, 0.1
    for s, n in [(0, 0), (3, 20), (15, 100), (2, 100)]:
        now = math.exp(float(rate_log_e(s, n, p0, kappa, "above")))
        up = math.exp(float(rate_log_e(s + 1, n + 1, p0, kappa, "above")))
        same = math.exp(float(rate_log_e(s, n + 1, p0, kappa, "above")))
        for p in (0.02, 0.1):
            assert p * up + (1 - p) * same <= now * (1 + 1e-9)
        assert 0.3 * up + 0.7 * same > now


def test_the_one_sided_log_e_value_falls_towards_the_estimate() -> None:
    """The one-sided root searches assume one crossing below the estimate (S >= 2)."""
    for kappa in (2.0, 76.0, 5000.0):
        for n in (5, 50, 3000, 10**6):
            for s in sorted({2, 3, n // 10, n // 2, n - 2}):
                if not 2 <= s <= n - 2:
                    continue
                grid = np.geomspace(s / n * 1e-9, s / n, 3000)
                v = rate_log_e(s, n, grid, kappa, "above")
                d = np.diff(v)
                d = d[np.abs(d) > 1e-9 * np.maximum(1.0, np.abs(v[1:]))]
                assert (d <= 0).all(), (kappa, n, s)


def test_one_sided_rate_ends_are_where_their_e_values_cross() -> None:
    gamma, kappa = 0.01, beta_concentration(1000, 0.01)
    iv = rate_cs(np.array([30, 200]), np.array([1000, 1000]), gamma, kappa, one_sided=True)
    two = rate_cs(np.array([30, 200]), np.array([1000, 1000]), gamma, kappa)
    crit = math.log(1 / gamma)
    for lo, hi, s in zip(iv.low, iv.high, (30, 200), strict=True):
        # on the rejected side of the crossing, by at most a thousandth of a nat
        assert crit < float(rate_log_e(s, 1000, lo, kappa, "above")) < crit + 1e-3
        assert crit < float(rate_log_e(s, 1000, hi, kappa, "below")) < crit + 1e-3
    # each end spends the whole level on its side: tighter than the two-sided interval
    assert (iv.low > two.low).all() and (iv.high < two.high).all()


def test_arm_levels_split_the_level_by_the_weight() -> None:
    for weight in (1.0, 5.0, 25.0, 50.0, 99.0):
        gb, gc = _core.arm_levels(0.01, weight)
        assert gb + gc == pytest.approx(0.01)
        assert gb / gc == pytest.approx(math.sqrt(weight / (100 - weight)))
    assert _core.arm_levels(0.01, 50.0) == pytest.approx((0.005, 0.005))


def test_mixture_rho_minimises_the_boundary_at_n_star() -> None:
    """The published tuning (Waudby-Smith et al. 2024) against a numerical minimum."""
    gamma, n_star = 0.01, 2000.0

    def width(rho: float) -> float:
        r2 = rho * rho
        return math.sqrt(
            2 * (n_star * r2 + 1) / (n_star**2 * r2) * math.log(math.sqrt(n_star * r2 + 1) / gamma)
        )

    best = optimize.minimize_scalar(width, bounds=(1e-4, 1.0), method="bounded").x
    assert mixture_rho(n_star, gamma) == pytest.approx(best, rel=0.05)
    assert width(mixture_rho(n_star, gamma)) == pytest.approx(width(best), rel=1e-3)


def test_mean_cs_boundary_is_where_the_normal_mixture_reaches_one_over_gamma() -> None:
    """At the edge of the interval the Gaussian mixture martingale (integrated with quad) is 1/gamma."""
    n, gamma = 400, 0.05
    rho = mixture_rho(1000, gamma)
    iv = mean_cs(n, 0.0, float(n), gamma, rho)  # mean 0, sample variance n/(n-1)
    sd = math.sqrt(n / (n - 1))
    s = float(iv.high) * n / sd  # the standardised sum at the boundary

    def integrand(lam: float) -> float:
        return math.exp(lam * s - lam * lam * n / 2) * stats.norm.pdf(lam, 0, rho)

    value, _ = integrate.quad(integrand, -1, 1, points=[s / n], limit=200)
    assert value == pytest.approx(1 / gamma, rel=1e-6)


@pytest.mark.parametrize("gamma", [0.05, 0.01, 0.001])
def test_time_uniform_is_wider_than_fixed_n(gamma: float) -> None:
    """At any single n a confidence sequence is at least as wide as the fixed-n interval."""
    rho = mixture_rho(1000, gamma)
    z = stats.norm.ppf(1 - gamma / 2)
    for n in (30, 100, 1000, 10_000, 100_000):
        iv = mean_cs(n, 0.0, float(n - 1), gamma, rho)  # sd 1
        assert float(iv.high) >= z / math.sqrt(n)
    kappa = beta_concentration(1000, gamma)
    for n in (50, 100, 1000, 10_000):
        for p in (0.5, 0.95, 0.99):
            k_low, k_high = (int(k[0]) for k in quantile_ranks(n, p, gamma, kappa))
            assert k_low <= stats.binom.ppf(gamma / 2, n, p)
            assert k_high >= stats.binom.ppf(1 - gamma / 2, n, p) + 1


# --- error rates under continuous monitoring (simulated) ---------------------


def _rate_gate_false_rollbacks(
    plan: Plan, p_base: float, p_cand: float, runs: int, seed: int
) -> float:
    """Share of runs rolled back at some look (every 50 requests up to 20,000), 10% candidate."""
    rng = np.random.default_rng(seed)
    design = _core.design_stage(plan, 0)
    n = {"b": np.zeros(runs), "c": np.zeros(runs)}
    hits = {"b": np.zeros(runs), "c": np.zeros(runs)}
    ever = np.zeros(runs, dtype=bool)
    for _ in range(HORIZON // LOOK_EVERY):
        cand = rng.binomial(LOOK_EVERY, 0.10, runs)
        for arm, count, p in (("c", cand, p_cand), ("b", LOOK_EVERY - cand, p_base)):
            n[arm] += count
            hits[arm] += rng.binomial(count, p)
        data = (_core.RateData(hits["b"], n["b"]), _core.RateData(hits["c"], n["c"]))
        (verdict,) = _core.evaluate_tests(plan, design, [data])
        assert verdict is not None
        ever |= verdict.rollback
    return float(ever.mean())


def test_no_regression_is_not_rolled_back_under_continuous_monitoring(tmp_path: Path) -> None:
    """A/A, against the deterioration test (``rollback_when: worse``), whose null it sits on."""
    plan = _plan(tmp_path, "[{metric: error_rate, margin: 0.01}]", rollback_when="worse")
    runs = 2000
    rate = _rate_gate_false_rollbacks(plan, 0.02, 0.02, runs, seed=11)
    assert rate <= plan.alpha + _slack(plan.alpha, runs)


def test_a_candidate_at_the_margin_is_not_rolled_back(tmp_path: Path) -> None:
    """d = margin exactly: the worst case the guarantee covers (``beyond_margin``)."""
    plan = _plan(tmp_path, "[{metric: error_rate, margin: 0.01}]")
    runs = 2000
    rate = _rate_gate_false_rollbacks(plan, 0.02, 0.03, runs, seed=12)
    assert rate <= plan.alpha + _slack(plan.alpha, runs)


def test_a_clear_regression_is_rolled_back(tmp_path: Path) -> None:
    plan = _plan(tmp_path, "[{metric: error_rate, margin: 0.01}]")
    assert _rate_gate_false_rollbacks(plan, 0.02, 0.08, 300, seed=13) >= 0.99


def test_rate_cs_covers_at_every_look() -> None:
    runs, gamma, p = 2000, 0.05, 0.01
    kappa = beta_concentration(1000, gamma)
    rng = np.random.default_rng(21)
    hits = np.zeros(runs)
    missed = np.zeros(runs, dtype=bool)
    for look in range(1, HORIZON // LOOK_EVERY + 1):
        hits += rng.binomial(LOOK_EVERY, p, runs)
        iv = rate_cs(hits, np.full(runs, look * LOOK_EVERY), gamma, kappa)
        missed |= (p < iv.low) | (p > iv.high)
    assert missed.mean() <= gamma + _slack(gamma, runs)


@pytest.mark.parametrize("p", [0.01, 0.2, 0.95])
def test_each_one_sided_end_keeps_its_level_at_every_look(p: float) -> None:
    """Rate ends (the estimate of p) and quantile count bands (p known) of one binomial stream:
    each one-sided end on its own misses at most gamma of the time, looking every 50."""
    runs, gamma = 2000, 0.05
    kappa = beta_concentration(1000, gamma)
    rng = np.random.default_rng(int(p * 1000) + 3)
    hits = np.zeros(runs)
    missed = {name: np.zeros(runs, dtype=bool) for name in ("low", "high", "k_low", "k_high")}
    for look in range(1, HORIZON // LOOK_EVERY + 1):
        n = look * LOOK_EVERY
        hits += rng.binomial(LOOK_EVERY, p, runs)
        iv = rate_cs(hits, np.full(runs, n), gamma, kappa, one_sided=True)
        k_low, k_high = quantile_ranks(n, p, gamma, kappa, one_sided=True)
        missed["low"] |= iv.low > p
        missed["high"] |= iv.high < p
        missed["k_low"] |= hits < k_low[0]
        missed["k_high"] |= hits >= k_high[0]
    for name, m in missed.items():
        assert m.mean() <= gamma + _slack(gamma, runs), name


@pytest.mark.parametrize("p", [0.5, 0.95, 0.99])
def test_quantile_cs_covers_at_every_look(p: float) -> None:
    """X_(k_low) <= q_p < X_(k_high) fails exactly when the count below q_p leaves [k_low, k_high)."""
    runs, gamma = 2000, 0.05
    kappa = beta_concentration(1000, gamma)
    rng = np.random.default_rng(int(p * 100))
    below = np.zeros(runs)
    missed = np.zeros(runs, dtype=bool)
    for look in range(1, HORIZON // LOOK_EVERY + 1):
        below += rng.binomial(LOOK_EVERY, p, runs)
        k_low, k_high = quantile_ranks(look * LOOK_EVERY, p, gamma, kappa)
        missed |= (below < k_low[0]) | (below >= k_high[0])
    assert missed.mean() <= gamma + _slack(gamma, runs)


@pytest.mark.parametrize("draw", ["gamma", "lognormal"])
def test_mean_cs_covers_at_every_look(draw: str) -> None:
    """Skewed costs (gamma, cv 0.5; lognormal, sigma 1, cv 1.3): the asymptotic CS keeps its
    level from MEAN_MIN_N observations on (heavier tails do not: see docs/rollout.md)."""
    runs, gamma = 1000, 0.05
    rho = mixture_rho(1000, gamma)
    rng = np.random.default_rng(31)
    if draw == "gamma":
        values = rng.gamma(4.0, 0.0005, (runs, HORIZON))
        mu = 0.002
    else:
        values = rng.lognormal(0.0, 1.0, (runs, HORIZON))
        mu = math.exp(0.5)
    ends = np.arange(LOOK_EVERY, HORIZON + 1, LOOK_EVERY)
    s1 = np.cumsum(values, axis=1)[:, ends - 1]
    s2 = np.cumsum(values * values, axis=1)[:, ends - 1]
    missed = np.zeros(runs, dtype=bool)
    for j, n in enumerate(ends):  # below MEAN_MIN_N the interval is unbounded
        iv = mean_cs(n, s1[:, j], s2[:, j], gamma, rho)
        missed |= (mu < iv.low) | (mu > iv.high)
    assert missed.mean() <= gamma + _slack(gamma, runs)


def test_quantile_bounds_from_samples_and_histograms() -> None:
    rng = np.random.default_rng(5)
    values = rng.lognormal(math.log(800), 0.55, 4000)
    gamma, kappa = 0.01, beta_concentration(1000, 0.01)
    exact = _core.sample_quantile_bounds(values, 0.95, gamma, kappa)
    true_q = 800 * math.exp(0.55 * stats.norm.ppf(0.95))
    assert exact.low[0] <= true_q <= exact.high[0]
    edges = np.concatenate([[0.0], np.geomspace(50, 20000, 200), [np.inf]])
    counts, _ = np.histogram(values, bins=edges)
    binned = _core.histogram_quantile_bounds(counts[None, :], edges, 0.95, gamma, kappa)
    # bins only widen the interval, by at most one bin
    assert binned.low[0] <= exact.low[0] <= binned.low[0] * 1.031
    assert binned.high[0] >= exact.high[0] >= binned.high[0] / 1.031
    assert binned.estimate[0] == pytest.approx(np.quantile(values, 0.95), rel=0.02)


# --- sample-ratio mismatch ------------------------------------------------------


def test_srm_log_e_is_the_beta_binomial_ratio() -> None:
    from cutover.rollout.sequential import beta_concentration as conc
    from cutover.rollout.srm import SRM_N_STAR

    kappa = conc(SRM_N_STAR, 0.001)
    ref = stats.betabinom.logpmf(30, 1000, kappa * 0.05, kappa * 0.95) - stats.binom.logpmf(
        30, 1000, 0.05
    )
    assert float(srm_log_e(970, 30, 5, 0.001)) == pytest.approx(ref, abs=1e-8)


def test_srm_keeps_its_level_and_finds_a_broken_split() -> None:
    runs, alpha, weight = 2000, 0.05, 10.0
    rng = np.random.default_rng(41)
    for share, check in ((0.10, "level"), (0.07, "power")):
        cand = np.zeros(runs)
        total = 0
        flagged = np.zeros(runs, dtype=bool)
        for _ in range(500):  # a look every 10 new sessions, up to 5,000
            cand += rng.binomial(10, share, runs)
            total += 10
            flagged |= srm_log_e(total - cand, cand, weight, alpha) >= math.log(1 / alpha)
        if check == "level":
            assert flagged.mean() <= alpha + _slack(alpha, runs)
        else:
            assert flagged.mean() >= 0.95


def test_srm_result() -> None:
    ok = srm_test(9_900, 100, 1.0, 0.001)
    assert not ok.mismatch and ok.p_value > 0.1 and ok.observed_share == pytest.approx(0.01)
    bad = srm_test(9_950, 50, 1.0, 0.001, unit="requests")
    assert bad.mismatch and bad.p_value < 0.001 and bad.unit == "requests"
    assert srm_test(0, 0, 5.0, 0.001).observed_share is None
    with pytest.raises(ValueError):
        srm_test(10, 10, 100.0, 0.001)


# --- one stage's decision --------------------------------------------------------

GATES = (
    "[{metric: error_rate, margin: 0.01, hard_limit: 0.2, critical: true},"
    " {metric: latency_p95_ms, margin: 20%},"
    " {metric: cost_per_request_usd, margin: 10%},"
    " {metric: refusal_rate, margin: 0.02, slices: [medical]},"
    " {metric: judge_score, margin: 0.05}]"
)


def _arm(
    rng: np.random.Generator,
    n: int,
    *,
    err: float = 0.01,
    p95: float = 2000.0,
    cost: float = 0.002,
    refusal: float = 0.02,
    score: float = 0.8,
    units: int | None = None,
    histogram: bool = False,
) -> ArmWindow:
    sigma = math.log(p95 / 800) / stats.norm.ppf(0.95)
    latency = rng.lognormal(math.log(800), sigma, n)
    answered = n - (errors := int(rng.binomial(n, err)))
    judged = rng.normal(score, 0.1, max(n // 20, 1))
    data: Histogram | np.ndarray = latency
    if histogram:
        edges = np.concatenate([[0.0], np.geomspace(20, 50_000, 300), [np.inf]])
        data = Histogram(tuple(edges), tuple(int(c) for c in np.histogram(latency, edges)[0]))
    return ArmWindow(
        requests=n,
        errors=errors,
        units=units,
        latency_ms=data,
        cost_usd=Moments.of(rng.gamma(4.0, cost / 4, n)),
        refusals=Counts(int(rng.binomial(answered, refusal)), answered),
        judge_score=Moments.of(judged),
    )


def _window(
    rng: np.random.Generator, n_cand: int, elapsed: float = 1800, **cand: object
) -> StageWindow:
    base = _arm(rng, 9 * n_cand, units=900)
    candidate = _arm(rng, n_cand, units=100, **cand)  # type: ignore[arg-type]
    medical = (_arm(rng, 9 * n_cand // 10), _arm(rng, n_cand // 10, **cand))  # type: ignore[arg-type]
    return StageWindow(base, candidate, elapsed, slices={"medical": medical})


def test_a_clean_window_with_enough_data_promotes(tmp_path: Path) -> None:
    plan = _plan(tmp_path, GATES)
    decision = decide_stage(plan, 0, _window(np.random.default_rng(1), 40_000))
    assert decision.outcome == "promote", decision.reasons
    assert decision.cause == "non_inferior" and decision.minimums_met
    assert {g.status for g in decision.gates} == {"pass"}
    assert [(g.metric, g.scope) for g in decision.gates][-2:] == [
        ("refusal_rate", "medical"),
        ("judge_score", "all"),
    ]
    data = decision.to_dict()
    assert data["outcome"] == "promote" and len(data["gates"]) == 6
    gate = data["gates"][0]
    assert gate["interval"][0] < gate["estimate"] < gate["interval"][1] < gate["threshold"]


def test_too_little_data_holds(tmp_path: Path) -> None:
    plan = _plan(tmp_path, GATES)
    decision = decide_stage(plan, 0, _window(np.random.default_rng(2), 300, elapsed=600))
    assert (decision.outcome, decision.cause, decision.alert) == ("hold", "waiting", False)
    assert any("not yet conclusive" in r for r in decision.reasons)


@pytest.mark.parametrize(
    ("change", "metric", "status"),
    [
        ({"err": 0.05}, "error_rate", "rollback"),
        ({"p95": 3200.0}, "latency_p95_ms", "rollback"),
        ({"cost": 0.003}, "cost_per_request_usd", "rollback"),
        ({"score": 0.6}, "judge_score", "rollback"),
        ({"err": 0.5}, "error_rate", "breach"),
    ],
)
def test_regressions_roll_back(
    tmp_path: Path, change: dict[str, float], metric: str, status: str
) -> None:
    plan = _plan(tmp_path, GATES)
    decision = decide_stage(plan, 0, _window(np.random.default_rng(3), 20_000, **change))
    assert decision.outcome == "rollback", decision.reasons
    statuses = {(g.metric, g.scope): g.status for g in decision.gates}
    assert statuses[(metric, "all")] == status
    assert any(metric in r for r in decision.reasons)


def test_a_slice_regression_rolls_back_on_its_slice(tmp_path: Path) -> None:
    plan = _plan(tmp_path, GATES)
    rng = np.random.default_rng(4)
    window = _window(rng, 20_000)
    medical = (_arm(rng, 18_000, refusal=0.1), _arm(rng, 2_000, refusal=0.25))
    window = StageWindow(window.baseline, window.candidate, 1800, {"medical": medical})
    decision = decide_stage(plan, 0, window)
    assert decision.outcome == "rollback"
    statuses = {(g.metric, g.scope): g.status for g in decision.gates}
    assert statuses[("refusal_rate", "medical")] == "rollback"
    assert statuses[("refusal_rate", "all")] != "rollback"


def test_histograms_and_samples_agree(tmp_path: Path) -> None:
    plan = _plan(tmp_path, "[{metric: latency_p95_ms, margin: 20%}]")
    for p95, outcome in ((2000.0, "promote"), (3200.0, "rollback")):
        verdicts = []
        for histogram in (False, True):
            rng = np.random.default_rng(6)
            window = StageWindow(
                _arm(rng, 90_000, histogram=histogram),
                _arm(rng, 10_000, p95=p95, histogram=histogram),
                1800,
            )
            verdicts.append(decide_stage(plan, 0, window).outcome)
        assert verdicts == [outcome, outcome]


def test_sample_ratio_mismatch_holds_and_alerts(tmp_path: Path) -> None:
    plan = _plan(tmp_path, GATES)
    rng = np.random.default_rng(7)
    window = _window(rng, 40_000)
    base = ArmWindow(**{**window.baseline.__dict__, "units": 950})
    cand = ArmWindow(**{**window.candidate.__dict__, "units": 50})
    decision = decide_stage(plan, 0, StageWindow(base, cand, 1800, window.slices))
    assert (decision.outcome, decision.cause, decision.alert) == (
        "hold",
        "sample_ratio_mismatch",
        True,
    )
    assert decision.srm is not None and decision.srm.unit == "sessions"
    rollback_plan = _plan(tmp_path, GATES, on_srm="rollback")
    decision = decide_stage(rollback_plan, 0, StageWindow(base, cand, 1800, window.slices))
    assert decision.outcome == "rollback"


def test_timeout_holds_with_an_alert_or_rolls_back(tmp_path: Path) -> None:
    window = _window(np.random.default_rng(8), 300, elapsed=3600)
    held = decide_stage(_plan(tmp_path, GATES), 0, window)
    assert (held.outcome, held.cause, held.alert) == ("hold", "timeout", True)
    assert held.reasons[0].startswith("no decision after max_duration 1h")
    rolled = decide_stage(_plan(tmp_path, GATES, on_timeout="rollback"), 0, window)
    assert (rolled.outcome, rolled.cause) == ("rollback", "timeout")


def test_missing_data_never_promotes(tmp_path: Path) -> None:
    plan = _plan(tmp_path, GATES)
    window = _window(np.random.default_rng(9), 40_000)
    no_slice = StageWindow(window.baseline, window.candidate, 1800)
    decision = decide_stage(plan, 0, no_slice)
    assert decision.outcome == "hold"
    missing = [g for g in decision.gates if g.status == "no_data"]
    assert [(g.metric, g.scope) for g in missing] == [("refusal_rate", "medical")]


def test_the_final_stage_and_bad_indexes(tmp_path: Path) -> None:
    plan = _plan(tmp_path, GATES)
    window = _window(np.random.default_rng(10), 1000)
    assert decide_stage(plan, 1, window).outcome == "promote"
    with pytest.raises(ValueError):
        decide_stage(plan, 2, window)
