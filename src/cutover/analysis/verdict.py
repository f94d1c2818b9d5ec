"""The verdict: paired statistics per slice, the slice to watch, the gate.

:class:`VerdictBuilder` takes judged Pairs one at a time (keeping only
numbers per pair), then :meth:`VerdictBuilder.finish` computes, for every
slice (``all``, ``critical``, each tag value ``name=value``):

- ``pass_rate`` and the rate of every boolean check (refusal, valid JSON,
  fenced JSON, preamble, truncation, tool-call validity...): paired rates
  with McNemar's exact test on the discordant pairs;
- ``score`` (assertion scores or recorded grades) and ``length_words``:
  paired bootstrap of the mean difference;
- ``latency_p95_ratio``, ``latency_p50_ratio`` and ``cost_ratio`` (slices
  ``all`` and ``critical``): paired bootstrap of the ratio new/old;

then adjusts every p-value for multiple comparisons (Benjamini-Hochberg by
default), names the slice to watch, and judges the gate criteria.
"""

from __future__ import annotations

import math
from array import array
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np

from cutover.analysis.gates import GateCriterion
from cutover.analysis.judging import PairVerdict
from cutover.analysis.stats import TestResult, adjust, paired_binary, paired_bootstrap
from cutover.checks import BAD_WHEN_FALSE, BAD_WHEN_TRUE

RATE_CHECKS = tuple(sorted(BAD_WHEN_TRUE | BAD_WHEN_FALSE))
_RATIO_SLICES = ("all", "critical")


@dataclass(frozen=True, slots=True)
class AnalysisOptions:
    alpha: float = 0.05
    correction: str = "bh"
    n_resamples: int = 2000
    seed: int = 0
    score_margin: float = 0.1


def _i8(value: bool | None) -> int:
    return -1 if value is None else int(value)


def _f(value: float | int | None) -> float:
    return math.nan if value is None else float(value)


@dataclass(slots=True)
class _Columns:
    """Per-pair numbers, appended as pairs stream by (flat memory per pair)."""

    ids: list[str] = field(default_factory=list)
    passed: tuple[array[int], array[int]] = field(default_factory=lambda: (array("b"), array("b")))
    score: tuple[array[float], array[float]] = field(
        default_factory=lambda: (array("d"), array("d"))
    )
    latency: tuple[array[float], array[float]] = field(
        default_factory=lambda: (array("d"), array("d"))
    )
    cost: tuple[array[float], array[float]] = field(
        default_factory=lambda: (array("d"), array("d"))
    )
    words: tuple[array[float], array[float]] = field(
        default_factory=lambda: (array("d"), array("d"))
    )
    error: tuple[array[int], array[int]] = field(default_factory=lambda: (array("b"), array("b")))
    checks: dict[str, tuple[array[int], array[int]]] = field(
        default_factory=lambda: {name: (array("b"), array("b")) for name in RATE_CHECKS}
    )
    slices: dict[str, array[int]] = field(default_factory=dict)


class VerdictBuilder:
    """Collects judged Pairs, then computes slices, flips, watch and gate."""

    def __init__(self, options: AnalysisOptions | None = None) -> None:
        self.options = options or AnalysisOptions()
        self.cols = _Columns()
        self.triage: Counter[str] = Counter()
        self.unpaired = 0
        self.untagged = 0
        self.flips: dict[str, list[str]] = {"negative": [], "positive": [], "critical_negative": []}

    def add(self, verdict: PairVerdict) -> None:
        """Count one judged Pair (after its triage is settled)."""
        latency, cost = verdict.latency, verdict.cost
        self.triage[verdict.triage] += 1
        old, new = verdict.old, verdict.new
        if old is None or new is None:
            self.unpaired += 1
            return
        c = self.cols
        i = len(c.ids)
        c.ids.append(verdict.case_id)
        for side, sv in enumerate((old, new)):
            c.passed[side].append(_i8(sv.passed))
            c.score[side].append(_f(sv.score))
            c.latency[side].append(_f(latency[side]))
            c.cost[side].append(_f(cost[side]))
            words = sv.checks.get("length_words")
            c.words[side].append(_f(words if isinstance(words, int | float) else None))
            c.error[side].append(int(sv.error))
            for name, cols in c.checks.items():
                value = sv.checks.get(name)
                cols[side].append(_i8(value if isinstance(value, bool) else None))
        names = ["all", *(f"{k}={v}" for k, v in sorted(verdict.tags.items()))]
        if verdict.critical:
            names.append("critical")
        if not verdict.tags:
            self.untagged += 1
        for name in names:
            c.slices.setdefault(name, array("l")).append(i)
        if old.passed is True and new.passed is False:
            self.flips["negative"].append(verdict.case_id)
            if verdict.critical:
                self.flips["critical_negative"].append(verdict.case_id)
        elif old.passed is False and new.passed is True:
            self.flips["positive"].append(verdict.case_id)

    # -- results ---------------------------------------------------------------

    def _np(
        self, pair: tuple[array[Any], array[Any]], idx: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        return np.frombuffer(pair[0], dtype=_dtype(pair[0]))[idx], np.frombuffer(
            pair[1], dtype=_dtype(pair[1])
        )[idx]

    def slice_rows(self) -> list[dict[str, Any]]:
        opts = self.options
        rows: list[dict[str, Any]] = []
        ordered = sorted(self.cols.slices, key=lambda s: (s != "all", s != "critical", s))
        for name in ordered:
            idx = np.frombuffer(self.cols.slices[name], dtype=np.int64)
            o, n = self._np(self.cols.passed, idx)
            known = (o >= 0) & (n >= 0)
            if known.any():
                rows.append(
                    _binary_row(name, "pass_rate", o[known] == 1, n[known] == 1, opts, bad=-1)
                )
            for check in RATE_CHECKS:
                o, n = self._np(self.cols.checks[check], idx)
                known = (o >= 0) & (n >= 0)
                if known.any() and ((o[known] == 1).any() or (n[known] == 1).any()):
                    bad = 1 if check in BAD_WHEN_TRUE else -1
                    rows.append(
                        _binary_row(name, check, o[known] == 1, n[known] == 1, opts, bad=bad)
                    )
            for metric, cols, stat, bad in (
                ("score", self.cols.score, "mean_diff", -1),
                ("length_words", self.cols.words, "mean_diff", 0),
            ):
                o, n = self._np(cols, idx)
                both = np.isfinite(o) & np.isfinite(n)
                if both.sum() >= 2:
                    rows.append(_bootstrap_row(name, metric, o[both], n[both], stat, opts, bad=bad))
            if name in _RATIO_SLICES:
                for metric, cols, stat in (
                    ("latency_p50_ratio", self.cols.latency, "ratio_p50"),
                    ("latency_p95_ratio", self.cols.latency, "ratio_p95"),
                    ("cost_ratio", self.cols.cost, "ratio_of_means"),
                ):
                    o, n = self._np(cols, idx)
                    both = np.isfinite(o) & np.isfinite(n)
                    if both.sum() >= 2 and o[both].sum() > 0:
                        rows.append(
                            _bootstrap_row(name, metric, o[both], n[both], stat, opts, bad=1)
                        )
        adjusted = adjust([r["p_value"] for r in rows], method=opts.correction)
        for row, p_adj in zip(rows, adjusted, strict=True):
            row["p_adjusted"] = p_adj
            row["significant"] = p_adj is not None and p_adj < opts.alpha
        return rows

    def flips_summary(self) -> dict[str, Any]:
        o, n = (np.frombuffer(a, dtype=np.int8) for a in self.cols.passed)
        known = int(((o >= 0) & (n >= 0)).sum())
        crit_idx = np.frombuffer(self.cols.slices.get("critical", array("l")), dtype=np.int64)
        crit_known = int(((o[crit_idx] >= 0) & (n[crit_idx] >= 0)).sum()) if len(crit_idx) else 0
        neg, pos, crit = (
            self.flips["negative"],
            self.flips["positive"],
            self.flips["critical_negative"],
        )
        return {
            "negative": len(neg),
            "positive": len(pos),
            "negative_rate": round(len(neg) / known, 6) if known else None,
            "positive_rate": round(len(pos) / known, 6) if known else None,
            "negative_ids": neg[:1000],
            "positive_ids": pos[:1000],
            "critical_negative": len(crit),
            "critical_negative_rate": round(len(crit) / crit_known, 6) if crit_known else None,
            "known_pairs": known,
        }

    def finish(self, gates: Sequence[GateCriterion]) -> dict[str, Any]:
        """Everything the report needs besides the cases."""
        rows = self.slice_rows()
        return {
            "flips": self.flips_summary(),
            "triage": {
                k: self.triage.get(k, 0) for k in ("regression", "novel", "improvement", "neutral")
            },
            "slices": rows,
            "watch": pick_watch(rows, self.flips_summary()),
            "gate": self.judge_gates(gates, rows),
        }

    # -- gates -----------------------------------------------------------------

    def judge_gates(
        self, gates: Sequence[GateCriterion], rows: list[dict[str, Any]]
    ) -> dict[str, Any]:
        criteria: list[dict[str, Any]] = []
        by_key = {(r["name"], r["metric"]): r for r in rows}
        tag_slices = sorted(s for s in self.cols.slices if "=" in s)
        for gate in gates:
            slices = tag_slices if gate.slice == "each" else [gate.slice]
            for slice_name in slices:
                criteria.append(self._criterion(gate, slice_name, by_key))
        return {"passed": all(c["passed"] for c in criteria), "criteria": criteria}

    def _criterion(
        self, gate: GateCriterion, slice_name: str, by_key: dict[tuple[str, str], dict[str, Any]]
    ) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": gate.label if gate.slice != "each" else f"{gate.label} -> {slice_name}",
            "metric": gate.metric,
            "slice": slice_name,
            "threshold": gate.bounds(),
        }
        value, row = self._gate_value(gate.metric, slice_name, by_key)
        out["value"] = value
        if value is None:
            out.update(passed=True, reason=f"no data for {gate.metric} in slice '{slice_name}'")
            return out
        breach = gate.breached(value)
        significant = bool(row and row.get("significant"))
        if breach and gate.significant_only and not significant:
            out.update(passed=True, reason=f"{breach}, but not significant")
        elif breach:
            p = (
                f" (p={row['p_value']:.3g}, adjusted {row['p_adjusted']:.3g})"
                if row and row.get("p_value") is not None
                else ""
            )
            out.update(passed=False, reason=f"{gate.metric} on '{slice_name}' {breach}{p}")
        else:
            out.update(
                passed=True, reason=f"{gate.metric} on '{slice_name}' = {value:.4g}: within bounds"
            )
        return out

    def _gate_value(
        self, metric: str, slice_name: str, by_key: dict[tuple[str, str], dict[str, Any]]
    ) -> tuple[float | None, dict[str, Any] | None]:
        stored = self.cols.slices.get(slice_name)
        if stored is None or len(stored) == 0:
            return None, None
        idx = np.frombuffer(stored, dtype=np.int64)
        if metric in ("pass_rate", "score") or metric.startswith("check:"):
            key = metric.removeprefix("check:")
            row = by_key.get((slice_name, key))
            if row is None:
                return (0.0 if metric.startswith("check:") else None), None
            return float(row["delta"]), row
        if metric == "negative_flip_rate":
            o, n = self._np(self.cols.passed, idx)
            known = (o >= 0) & (n >= 0)
            return (float(((o == 1) & (n == 0)).sum() / known.sum()) if known.any() else None), None
        if metric == "new_refusals":
            o, n = self._np(self.cols.checks["refusal"], idx)
            return float(((o == 0) & (n == 1)).sum()), by_key.get((slice_name, "refusal"))
        if metric == "error_rate":
            _, n = self._np(self.cols.error, idx)
            return float(n.mean()), None
        if metric == "cost_per_request":
            _, n = self._np(self.cols.cost, idx)
            return (float(np.nanmean(n)) if np.isfinite(n).any() else None), None
        cols = self.cols.cost if metric == "cost_ratio" else self.cols.latency
        o, n = self._np(cols, idx)
        both = np.isfinite(o) & np.isfinite(n)
        if not both.any():
            return None, None
        if metric == "cost_ratio":
            denominator = float(o[both].mean())
            value = float(n[both].mean()) / denominator if denominator > 0 else None
        else:
            q = {"latency_p50_ratio": 50, "latency_p95_ratio": 95, "latency_p99_ratio": 99}[metric]
            denominator = float(np.percentile(o[both], q))
            value = float(np.percentile(n[both], q)) / denominator if denominator > 0 else None
        return value, by_key.get((slice_name, metric))


_DTYPES: Mapping[str, Any] = MappingProxyType({"b": np.int8, "d": np.float64, "l": np.int64})


def _dtype(a: array[Any]) -> Any:
    return _DTYPES[a.typecode]


def _row(name: str, metric: str, result: TestResult, old: float, new: float, delta: float,
         bad: int) -> dict[str, Any]:  # fmt: skip
    worse = (bad < 0 and delta < 0) or (
        bad > 0 and delta > (1.0 if metric.endswith("ratio") else 0.0)
    )
    return {
        "name": name,
        "n": result.n,
        "metric": metric,
        "test": result.test,
        "old": _round(old),
        "new": _round(new),
        "delta": _round(delta),
        "p_value": result.p_value,
        "ci_low": _round(result.ci_low),
        "ci_high": _round(result.ci_high),
        "worse": bool(worse) if bad else False,
        "detail": result.detail,
    }


def _round(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else round(float(value), 6)


def _binary_row(name: str, metric: str, old: np.ndarray, new: np.ndarray, opts: AnalysisOptions,
                *, bad: int) -> dict[str, Any]:  # fmt: skip
    result = paired_binary(old, new, alpha=opts.alpha)
    return _row(name, metric, result, float(old.mean()), float(new.mean()), result.estimate, bad)


def _bootstrap_row(name: str, metric: str, old: np.ndarray, new: np.ndarray, stat: str,
                   opts: AnalysisOptions, *, bad: int) -> dict[str, Any]:  # fmt: skip
    result = paired_bootstrap(
        old, new, stat=stat, n_resamples=opts.n_resamples, alpha=opts.alpha, seed=opts.seed
    )
    if stat.startswith("ratio_p"):
        q = int(stat.removeprefix("ratio_p"))
        o_val, n_val = float(np.percentile(old, q)), float(np.percentile(new, q))
    else:
        o_val, n_val = float(old.mean()), float(new.mean())
    return _row(name, metric, result, o_val, n_val, result.estimate, bad)


_METRIC_WORDS = MappingProxyType(
    {
        "pass_rate": "pass rate",
        "score": "score",
        "refusal": "refusal rate",
        "json_valid": "valid-JSON rate",
        "latency_p95_ratio": "p95 latency ratio",
        "cost_ratio": "cost ratio",
    }
)


def pick_watch(rows: Iterable[dict[str, Any]], flips: dict[str, Any]) -> dict[str, Any] | None:
    """The slice to watch: the most significant change for the worse on a tag slice.

    Candidates are rows that moved in the bad direction, preferring tag slices
    (``name=value``) and ``critical`` over ``all``; ranked by adjusted p-value,
    then by the size of the change. None when nothing got worse.
    """
    candidates = [r for r in rows if r.get("worse") and r.get("p_value") is not None]
    if not candidates:
        return None

    def rank(r: dict[str, Any]) -> tuple[bool, bool, float, bool, float]:
        # A tag slice names the problem better than "critical" when the evidence is equal.
        return (
            not r["significant"],
            r["name"] == "all",
            r["p_adjusted"],
            r["name"] == "critical",
            -abs(r["delta"] or 0.0),
        )

    best = min(candidates, key=rank)
    words = _METRIC_WORDS.get(best["metric"], best["metric"].replace("_", " ") + " rate")
    if best["metric"].endswith("ratio"):
        change = f"{words} {best['delta']:.3g}x (old {best['old']:.4g}, new {best['new']:.4g})"
    elif best["metric"] in ("score", "length_words"):
        change = f"{words} {best['old']:.4g} -> {best['new']:.4g} ({best['delta']:+.4g})"
    else:
        change = (
            f"{words} {best['old']:.1%} -> {best['new']:.1%} ({best['delta'] * 100:+.1f} points)"
        )
    signif = "significant" if best["significant"] else "not significant"
    reason = (
        f"{change} on {best['n']} pairs; {best['test']} p={best['p_value']:.3g}, "
        f"adjusted {best['p_adjusted']:.3g} ({signif})"
    )
    if best["metric"] == "pass_rate" and flips.get("negative"):
        reason += f"; {flips['negative']} negative flips overall"
    return {
        "slice": best["name"],
        "metric": best["metric"],
        "reason": reason,
        "delta": best["delta"],
        "p_value": best["p_value"],
        "p_adjusted": best["p_adjusted"],
        "significant": best["significant"],
    }


__all__ = ["RATE_CHECKS", "AnalysisOptions", "VerdictBuilder", "pick_watch"]
