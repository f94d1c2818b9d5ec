"""Reading a ``report.json`` dict tolerantly and formatting its figures.

Shared by the Markdown, HTML and JUnit writers. Every accessor accepts a
report from any schema version: a key that is missing or of the wrong type
reads as empty (``{}``, ``[]``, ``None``), so an older or partial report
renders what it has and never raises.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any, NamedTuple

TRIAGE_ORDER = ("regression", "novel", "improvement", "neutral")
"""Triage classes in the order the reports list them."""


def as_map(value: Any) -> Mapping[str, Any]:
    """``value`` if it is a mapping, else an empty one."""
    return value if isinstance(value, Mapping) else {}


def as_list(value: Any) -> list[Any]:
    """``value`` as a list if it is a list or tuple, else an empty list."""
    return list(value) if isinstance(value, list | tuple) else []


def num(value: Any) -> float | None:
    """A finite number as float, else ``None`` (booleans are not numbers here)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    out = float(value)
    return out if math.isfinite(out) else None


_UNPRINTABLE = re.compile("[^\t\n\r\x20-\x7e\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def printable(value: str) -> str:
    """``value`` with control characters and lone surrogates replaced by U+FFFD.

    What is left is valid in XML 1.0 and HTML, and shows nothing unexpected in
    a terminal or a PR comment.
    """
    return _UNPRINTABLE.sub("\ufffd", value)


def text(value: Any) -> str:
    """Any JSON value as display text (``""`` for ``None``)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=str)


def truncate(value: str, limit: int) -> str:
    """``value`` cut to ``limit`` characters, saying how much was cut."""
    if len(value) <= limit:
        return value
    return f"{value[:limit]}… [{len(value) - limit:,} more chars]"


# --- number formats --------------------------------------------------------


def fmt_num(value: Any, digits: int = 3) -> str:
    v = num(value)
    if v is None:
        return "–"
    if v == 0:
        return "0"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    return f"{v:.{digits}g}"


def fmt_ms(value: Any) -> str:
    v = num(value)
    if v is None:
        return "–"
    return f"{v:,.0f}" if abs(v) >= 10 else f"{v:.1f}"


def fmt_usd(value: Any) -> str:
    v = num(value)
    if v is None:
        return "–"
    if v == 0:
        return "$0"
    if abs(v) >= 1:
        return f"${v:,.2f}"
    decimals = min(10, max(2, -math.floor(math.log10(abs(v))) + 2))
    return f"${v:.{decimals}f}"


def fmt_pct(value: Any) -> str:
    v = num(value)
    return "–" if v is None else f"{v * 100:.2f}%"


def fmt_p(value: Any) -> str:
    v = num(value)
    if v is None:
        return "–"
    return "<0.001" if v < 0.001 else f"{v:.3f}"


def fmt_pvalues(row: Mapping[str, Any]) -> str:
    """``p = 0.003, adjusted 0.012`` from a row's ``p_value`` and ``p_adjusted``."""
    out = f"p = {fmt_p(row.get('p_value'))}"
    if row.get("p_adjusted") is not None:
        out += f", adjusted {fmt_p(row.get('p_adjusted'))}"
    return out


def metric_kind(metric: str) -> str:
    """How a metric's numbers read: ``rate``, ``ratio``, ``mean``, ``usd`` or ``count``.

    Boolean checks and pass rate are rates in [0, 1] (levels in %, changes in
    percentage points); ``*_ratio`` metrics are new over old (``1.23×``, no
    change is 1); ``score`` and ``length_words`` are means (change = new - old).
    """
    name = metric.removeprefix("check:")
    if name.endswith("_ratio"):
        return "ratio"
    if name in ("score", "length_words"):
        return "mean"
    if name == "cost_per_request":
        return "usd"
    if name == "new_refusals":
        return "count"
    return "rate"


def reference(metric: str) -> float:
    """The value of "no change" for a metric's delta: 1 for a ratio, else 0."""
    return 1.0 if metric_kind(metric) == "ratio" else 0.0


def fmt_level(metric: str, value: Any) -> str:
    """A level of a metric: ``41.2%`` for a rate, ``1.23×`` for a ratio, else a number."""
    v = num(value)
    if v is None:
        return text(value) if isinstance(value, str) else "–"
    kind = metric_kind(metric)
    if kind == "rate":
        return f"{v * 100:.1f}%"
    if kind == "ratio":
        return f"{v:.3g}×"
    if kind == "usd":
        return fmt_usd(v)
    return fmt_num(v, 4)


def fmt_delta(metric: str, value: Any, *, signed: bool = True) -> str:
    """A change: ``-18.0 pp`` for a rate, ``1.23×`` for a ratio, else a signed number."""
    v = num(value)
    if v is None:
        return "–"
    kind = metric_kind(metric)
    if kind == "ratio":
        return f"{v:.3g}×"
    if kind == "rate":
        if round(v * 100, 1) == 0:
            return "0 pp"
        return f"{v * 100:+.1f} pp" if signed else f"{v * 100:.1f} pp"
    shown = fmt_usd(abs(v)) if kind == "usd" else fmt_num(abs(v), 4)
    if not signed or v == 0:
        return shown
    return ("+" if v > 0 else "-") + shown


def fmt_side(metric: str, value: Any) -> str:
    """A slice row's ``old``/``new``: the ratio metrics carry raw ms or dollars there."""
    if metric_kind(metric) == "ratio":
        return fmt_usd(value) if metric.startswith("cost") else f"{fmt_ms(value)} ms"
    return fmt_level(metric, value)


_DELTA_GATES = ("pass_rate", "score")


def _is_delta_gate(metric: str) -> bool:
    return metric in _DELTA_GATES or metric.startswith("check:")


def fmt_gate_value(metric: str, value: Any) -> str:
    """A gate criterion's ``value``: a change for pass_rate/score/checks, else a level."""
    return fmt_delta(metric, value) if _is_delta_gate(metric) else fmt_level(metric, value)


_BOUNDS = MappingProxyType({"max": "≤", "min": "≥", "max_drop": "drop ≤", "max_increase": "rise ≤"})


def fmt_threshold(crit: Mapping[str, Any]) -> str:
    """A criterion's bounds: ``drop ≤ 2.0 pp``, ``≤ 1.2×``; or ``comparison threshold``."""
    metric = text(crit.get("metric"))
    threshold = crit.get("threshold")
    if isinstance(threshold, Mapping):
        parts = []
        for key, bound in threshold.items():
            if key in ("max_drop", "max_increase"):
                shown = fmt_delta(metric, bound, signed=False)
            else:
                shown = fmt_gate_value(metric, bound)
            parts.append(f"{_BOUNDS.get(key, key)} {shown}")
        return " and ".join(parts) or "–"
    comparison = text(crit.get("comparison"))
    shown = fmt_gate_value(metric, threshold) if threshold is not None else "–"
    return f"{comparison} {shown}".strip()


def fmt_ci(metric: str, low: Any, high: Any) -> str:
    if num(low) is None or num(high) is None:
        return "–"
    return f"[{fmt_delta(metric, low)}, {fmt_delta(metric, high)}]"


def fmt_change(old: Any, new: Any) -> str:
    """Relative change from old to new (``-21.3%``), or ``–``."""
    a, b = num(old), num(new)
    if a is None or b is None or a == 0:
        return "–"
    return f"{(b - a) / a * 100:+.1f}%"


# --- report parts ----------------------------------------------------------


def target_label(report: Mapping[str, Any], side: str) -> str:
    target = as_map(as_map(report.get("targets")).get(side))
    return text(target.get("label") or target.get("spec") or side)


def gate_of(report: Mapping[str, Any]) -> Mapping[str, Any] | None:
    gate = report.get("gate")
    return gate if isinstance(gate, Mapping) else None


def verdict(passed: Any) -> str:
    """``PASS`` / ``FAIL`` / ``N/A`` for a gate or criterion's ``passed``."""
    if passed is True:
        return "PASS"
    if passed is False:
        return "FAIL"
    return "N/A"


def criterion_text(crit: Mapping[str, Any]) -> str:
    """``pass_rate on use_case=billing: -18.0 pp (drop ≤ 2.0 pp)`` for a gate criterion."""
    metric = text(crit.get("metric"))
    where = f" on {text(crit.get('slice'))}" if crit.get("slice") else ""
    value = fmt_gate_value(metric, crit.get("value"))
    return f"{metric}{where}: {value} (bound: {fmt_threshold(crit)})"


def tag_strings(tags: Any) -> list[str]:
    """A case's tags as slice names: ``["use_case=billing", ...]``."""
    out = []
    for key, value in as_map(tags).items():
        shown = ("true" if value else "false") if isinstance(value, bool) else text(value)
        out.append(f"{key}={shown}")
    return out


def cases(report: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [c for c in as_list(report.get("cases")) if isinstance(c, Mapping)]


def triage_counts(report: Mapping[str, Any]) -> dict[str, int] | None:
    """The triage counts, from ``triage`` or else counted over the cases' own triage."""
    given = as_map(report.get("triage"))
    if given:
        return {k: int(num(v) or 0) for k, v in given.items()}
    counted: dict[str, int] = {}
    for case in cases(report):
        label = case.get("triage")
        if isinstance(label, str):
            counted[label] = counted.get(label, 0) + 1
    return {k: counted.get(k, 0) for k in (*TRIAGE_ORDER, *counted)} if counted else None


def regressions(report: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """Regressed cases, critical ones first, otherwise in report order."""
    found = [c for c in cases(report) if c.get("triage") == "regression"]
    return sorted(found, key=lambda c: not c.get("critical"))


def side_text(obs: Any) -> str:
    """What one side answered: its output, then its tool calls, one per line."""
    side = as_map(obs)
    parts = [text(side.get("output"))] if side.get("output") is not None else []
    for call in as_list(side.get("tool_calls")):
        c = as_map(call)
        parts.append(f"→ {text(c.get('name'))}({text(c.get('arguments'))})")
    return "\n".join(parts)


def side_error(obs: Any) -> str:
    side = as_map(obs)
    if side.get("error") is None:
        return ""
    cls = text(side.get("error_class"))
    return f"{cls}: {text(side.get('error'))}" if cls else text(side.get("error"))


class CheckDiff(NamedTuple):
    name: str
    old: str
    new: str


def differing_checks(case: Mapping[str, Any]) -> list[CheckDiff]:
    """Checks, verdicts and assertions whose value differs between old and new.

    Empty when a side is missing (nothing to compare with).
    """
    if not isinstance(case.get("old"), Mapping) or not isinstance(case.get("new"), Mapping):
        return []
    old, new = as_map(case.get("old")), as_map(case.get("new"))
    out: list[CheckDiff] = []

    def add(name: str, a: Any, b: Any) -> None:
        if a != b:
            out.append(CheckDiff(name, text(a) or "–", text(b) or "–"))

    old_checks, new_checks = as_map(old.get("checks")), as_map(new.get("checks"))
    for name in dict.fromkeys([*old_checks, *new_checks]):
        add(name, old_checks.get(name), new_checks.get(name))
    for key in ("refusal", "json_valid", "passed", "score"):
        if key not in old_checks and key not in new_checks and (key in old or key in new):
            add(key, old.get(key), new.get(key))
    old_asserts, new_asserts = as_list(old.get("assertions")), as_list(new.get("assertions"))
    for i in range(max(len(old_asserts), len(new_asserts))):
        a = as_map(old_asserts[i]) if i < len(old_asserts) else {}
        b = as_map(new_asserts[i]) if i < len(new_asserts) else {}
        kind = text(a.get("type") or b.get("type") or "assertion")
        add(f"assert[{i}] {kind}", a.get("passed"), b.get("passed"))
    # verdicts and boolean checks first: they are what flips; counts and labels after
    return sorted(out, key=lambda d: d.old not in _FLAGS or d.new not in _FLAGS)


_FLAGS = frozenset({"true", "false", "–"})


class FigureRow(NamedTuple):
    label: str
    old: str
    new: str
    change: str


def figure_rows(report: Mapping[str, Any]) -> list[FigureRow]:
    """The old vs new figures table: requests, errors, latency, ttft, tokens, cost."""
    summary = as_map(report.get("summary"))
    old, new = as_map(summary.get("old")), as_map(summary.get("new"))
    if not old and not new:
        return []
    rows = [FigureRow("requests", fmt_num(old.get("n")), fmt_num(new.get("n")), "")]

    def errors(s: Mapping[str, Any]) -> str:
        return f"{fmt_num(s.get('errors'))} ({fmt_pct(s.get('error_rate'))})"

    old_rate, new_rate = num(old.get("error_rate")), num(new.get("error_rate"))
    rate_change = (
        f"{(new_rate - old_rate) * 100:+.2f} pp"
        if old_rate is not None and new_rate is not None
        else "–"
    )
    rows.append(FigureRow("errors (rate)", errors(old), errors(new), rate_change))
    for key, name in (("latency_ms", "latency"), ("ttft_ms", "ttft")):
        points = ("p50", "p95", "p99") if key == "latency_ms" else ("p50",)
        for point in points:
            a, b = as_map(old.get(key)).get(point), as_map(new.get(key)).get(point)
            rows.append(FigureRow(f"{name} {point} ms", fmt_ms(a), fmt_ms(b), fmt_change(a, b)))
    a, b = old.get("tokens_per_request"), new.get("tokens_per_request")
    rows.append(FigureRow("tokens / request", fmt_num(a, 4), fmt_num(b, 4), fmt_change(a, b)))
    a, b = old.get("cost_per_request_usd"), new.get("cost_per_request_usd")
    rows.append(FigureRow("cost / request", fmt_usd(a), fmt_usd(b), fmt_change(a, b)))

    def total(s: Mapping[str, Any]) -> str:
        unknown = int(num(s.get("cost_unknown_n")) or 0)
        return fmt_usd(s.get("cost_usd")) + (f" ({unknown:,} unpriced)" if unknown else "")

    a, b = old.get("cost_usd"), new.get("cost_usd")
    rows.append(FigureRow("cost total", total(old), total(new), fmt_change(a, b)))
    return rows


def run_line(report: Mapping[str, Any]) -> str:
    """One line naming the run: id, suite, case count, repeats, time."""
    run = as_map(report.get("run"))
    parts = []
    if run.get("id"):
        parts.append(f"run {text(run.get('id'))}")
    suite = as_map(run.get("suite"))
    if suite.get("name") or suite.get("path"):
        parts.append(f"suite {text(suite.get('name') or suite.get('path'))}")
    parts.append(f"{len(cases(report)):,} cases")
    repeats = num(run.get("repeats"))
    if repeats and repeats > 1:
        parts.append(f"{int(repeats)} repeats")
    if run.get("finished_at") or run.get("created_at"):
        parts.append(text(run.get("finished_at") or run.get("created_at")))
    return " · ".join(parts)


def unpaired_line(report: Mapping[str, Any]) -> str:
    unpaired = as_map(report.get("unpaired"))
    only_old, only_new = as_list(unpaired.get("only_old")), as_list(unpaired.get("only_new"))
    if not only_old and not only_new:
        return ""
    return f"unpaired cases: {len(only_old):,} only in old, {len(only_new):,} only in new"


def significant_slices(report: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [s for s in slices(report) if s.get("significant") is True]


def slices(report: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [s for s in as_list(report.get("slices")) if isinstance(s, Mapping)]


def notes(report: Mapping[str, Any]) -> list[str]:
    return [text(n) for n in as_list(report.get("notes"))]


def observations(report: Mapping[str, Any], side: str) -> list[Mapping[str, Any]]:
    """Every Observation of one side, counting each repeat (``samples``) once."""
    out: list[Mapping[str, Any]] = []
    for case in cases(report):
        samples: Sequence[Any] = as_list(case.get("samples"))
        sources = [as_map(s).get(side) for s in samples] if samples else [case.get(side)]
        out.extend(obs for obs in sources if isinstance(obs, Mapping))
    return out


SIMULATED_TEXT = "SIMULATED: outputs come from the built-in sim provider, not a real model."
