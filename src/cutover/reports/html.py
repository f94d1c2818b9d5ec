"""``report.html``: one self-contained page with charts and a side-by-side case view.

Written from a ``report.json`` dict. No CDN and no fetch: the stylesheet and
the small filter script are inline, the charts are SVG drawn here, and a
Content-Security-Policy forbids loading anything. Model outputs are untrusted,
so every piece of report text is HTML-escaped. Stable element ids and classes
for tests and scripts are listed in ``docs/reports.md``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from cutover.reports import _format as f
from cutover.reports import _svg
from cutover.reports._html_assets import CSP, CSS, JS
from cutover.reports._html_cases import MAX_OTHER_CASES, e, filter_options, render_cases


def _verdict_span(passed: Any, element_id: str = "") -> str:
    status = f.verdict(passed)
    attr = f' id="{element_id}"' if element_id else ""
    return f'<span{attr} class="{status.lower().replace("/", "")}">{status}</span>'


def _gate(report: Mapping[str, Any]) -> str:
    gate = f.gate_of(report)
    if gate is None:
        return (
            '<section id="gate" data-passed="none"><h2>Gate: '
            '<span id="gate-status" class="na">N/A</span></h2>'
            '<p class="empty">This report carries no gate decision.</p></section>'
        )
    passed = gate.get("passed")
    flag = "true" if passed is True else "false" if passed is False else "none"
    rows = []
    for crit in map(f.as_map, f.as_list(gate.get("criteria"))):
        metric = f.text(crit.get("metric"))
        cflag = "true" if crit.get("passed") is True else "false"
        rows.append(
            f'<tr class="criterion" data-passed="{cflag}" data-name="{e(crit.get("name"))}">'
            f"<td>{e(crit.get('name'))}</td><td>{e(metric)}</td>"
            f"<td>{e(crit.get('slice') or 'all')}</td>"
            f'<td class="num">{e(f.fmt_gate_value(metric, crit.get("value")))}</td>'
            f"<td>{e(f.fmt_threshold(crit))}</td>"
            f"<td>{_verdict_span(crit.get('passed'))}</td><td>{e(crit.get('reason'))}</td></tr>"
        )
    table = (
        '<table id="gate-criteria"><thead><tr><th>criterion</th><th>metric</th><th>slice</th>'
        "<th>value</th><th>threshold</th><th>result</th><th>reason</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
        if rows
        else '<p class="empty">No criteria.</p>'
    )
    return (
        f'<section id="gate" data-passed="{flag}"><h2>Gate: '
        f"{_verdict_span(passed, 'gate-status')}</h2>{table}</section>"
    )


def _watch(report: Mapping[str, Any]) -> str:
    watch = report.get("watch")
    if not isinstance(watch, Mapping):
        return '<section id="watch" data-slice=""><h2>Watch</h2><p class="empty">Nothing to watch.</p></section>'
    metric = f.text(watch.get("metric"))
    return (
        f'<section id="watch" data-slice="{e(watch.get("slice"))}" data-metric="{e(metric)}">'
        f'<h2>Watch</h2><div class="box"><b class="watch-slice">{e(watch.get("slice"))}</b> '
        f"{e(metric)} {e(f.fmt_delta(metric, watch.get('delta')))} ({e(f.fmt_pvalues(watch))})"
        f'<div class="watch-reason">{e(watch.get("reason"))}</div></div></section>'
    )


def _figures(report: Mapping[str, Any]) -> str:
    rows = f.figure_rows(report)
    if not rows:
        return ""
    body = "".join(
        f'<tr><th>{e(r.label)}</th><td class="num">{e(r.old)}</td>'
        f'<td class="num">{e(r.new)}</td><td class="num">{e(r.change)}</td></tr>'
        for r in rows
    )
    unpaired = f.unpaired_line(report)
    return (
        '<section id="figures-section"><h2>Figures</h2><table id="figures"><thead><tr><th></th>'
        f"<th>old: {e(f.target_label(report, 'old'))}</th>"
        f"<th>new: {e(f.target_label(report, 'new'))}</th><th>change</th></tr></thead>"
        f"<tbody>{body}</tbody></table>"
        + (f'<p id="unpaired">{e(unpaired)}</p>' if unpaired else "")
        + "</section>"
    )


def _flips_and_triage(report: Mapping[str, Any]) -> str:
    parts = []
    flips = report.get("flips")
    if isinstance(flips, Mapping):
        crit = ""
        if flips.get("critical_negative") is not None:
            crit = (
                f"<span>critical negative: <b>{e(f.fmt_num(flips.get('critical_negative')))}</b>"
                f" ({e(f.fmt_pct(flips.get('critical_negative_rate')))})</span>"
            )
        parts.append(
            '<div id="flips" class="counts"><h3>Flips</h3>'
            f'<span>negative (pass → fail): <b class="fail">{e(f.fmt_num(flips.get("negative")))}</b>'
            f" ({e(f.fmt_pct(flips.get('negative_rate')))})</span>"
            f'<span>positive (fail → pass): <b class="pass">{e(f.fmt_num(flips.get("positive")))}</b>'
            f" ({e(f.fmt_pct(flips.get('positive_rate')))})</span>{crit}</div>"
        )
    counts = f.triage_counts(report)
    if counts is not None:
        spans = "".join(
            f'<span data-triage="{e(k)}">{e(k)}: <b>{v:,}</b></span>' for k, v in counts.items()
        )
        parts.append(f'<div id="triage" class="counts"><h3>Triage</h3>{spans}</div>')
    if not parts:
        return ""
    return f'<section id="outcomes"><h2>Outcomes</h2>{"".join(parts)}</section>'


def _values(observations: list[Mapping[str, Any]], key: str) -> list[float]:
    out = []
    for obs in observations:
        if key != "cost_usd" and obs.get("error") is not None:
            continue
        v = f.num(obs.get(key))
        if v is not None:
            out.append(v)
    return out


def _summary_marks(report: Mapping[str, Any], side: str, key: str) -> dict[int, float] | None:
    """p50/p95/p99 from the summary, which covers every call even when cases are capped."""
    figures = f.as_map(f.as_map(f.as_map(report.get("summary")).get(side)).get(key))
    marks = {p: f.num(figures.get(f"p{p}")) for p in (50, 95, 99)}
    found = {p: v for p, v in marks.items() if v is not None}
    return found if len(found) == 3 else None


_CHARTS: tuple[tuple[str, str, str, str, Callable[[float], str]], ...] = (
    ("chart-latency", "Latency per request (successful calls)", "latency_ms", "ms", f.fmt_ms),
    ("chart-ttft", "Time to first token (successful calls)", "ttft_ms", "ms", f.fmt_ms),
    ("chart-cost", "Cost per request", "cost_usd", "", f.fmt_usd),
)


def _charts(report: Mapping[str, Any]) -> str:
    labels = {s: f"{s}: {f.target_label(report, s)}" for s in ("old", "new")}
    summary = f.as_map(report.get("summary"))
    seen = {s: f.observations(report, s) for s in ("old", "new")}
    embedded = len(seen["old"]) + len(seen["new"])
    calls = sum(int(f.num(f.as_map(summary.get(s)).get("n")) or 0) for s in ("old", "new"))
    # Every call's values when the writer collected them (the cases may be capped).
    dists = f.as_map(report.get("distributions"))
    figures = []
    for element_id, title, key, unit, fmt in _CHARTS:
        full = f.as_map(dists.get(key))
        series = [
            _svg.Series(
                s,
                labels[s],
                [v for v in full[s] if isinstance(v, int | float)]
                if isinstance(full.get(s), list)
                else _values(seen[s], key),
                _summary_marks(report, s, key),
            )
            for s in ("old", "new")
        ]
        if key == "ttft_ms" and not any(s.values for s in series):
            continue
        axis = unit or "USD per request"
        svg = _svg.histogram(series, title=title, unit=unit, fmt=fmt, axis=axis)
        note = ""
        if embedded and calls > embedded and not full:
            note = (
                f'<p class="chart-note">The bars count the {embedded:,} calls of the cases '
                f"embedded in this page (of {calls:,}); the percentile lines and the figures "
                "table cover every call.</p>"
            )
        figures.append(
            f'<figure id="{element_id}" class="chart-figure"><figcaption>{e(title)}</figcaption>'
            f"{svg}{note}</figure>"
        )
    return f'<section id="charts"><h2>Distributions</h2>{"".join(figures)}</section>'


def _delta_format(metric: str) -> Callable[[float], str]:
    def fmt(value: float) -> str:
        return f.fmt_delta(metric, value)

    return fmt


_SLICE_HEAD = ("slice", "metric", "n", "test", "old", "new", "delta", "95% CI", "p", "p adj.")


def _slice_row(s: Mapping[str, Any]) -> str:
    metric = f.text(s.get("metric"))
    sig, worse = s.get("significant") is True, s.get("worse") is True
    cls = "slice" + ((" sig worse" if worse else " sig better") if sig else "")
    cells = [
        (e(s.get("name")), ""),
        (e(metric), ""),
        (e(f.fmt_num(s.get("n"))), "num"),
        (e(s.get("test")), ""),
        (e(f.fmt_side(metric, s.get("old"))), "num"),
        (e(f.fmt_side(metric, s.get("new"))), "num"),
        (e(f.fmt_delta(metric, s.get("delta"))), "num"),
        (e(f.fmt_ci(metric, s.get("ci_low"), s.get("ci_high"))), "num"),
        (e(f.fmt_p(s.get("p_value"))), "num"),
        (e(f.fmt_p(s.get("p_adjusted"))), "num"),
    ]
    tds = "".join(f'<td class="{c}">{v}</td>' if c else f"<td>{v}</td>" for v, c in cells)
    return (
        f'<tr class="{cls}" data-slice="{e(s.get("name"))}" data-metric="{e(metric)}" '
        f'data-significant="{"true" if sig else "false"}" '
        f'data-worse="{"true" if worse else "false"}">{tds}</tr>'
    )


def _forest_row(s: Mapping[str, Any]) -> _svg.ForestRow | None:
    metric = f.text(s.get("metric"))
    delta = f.num(s.get("delta"))
    if delta is None:
        return None
    p = s.get("p_adjusted") if s.get("p_adjusted") is not None else s.get("p_value")
    ci = f.fmt_ci(metric, s.get("ci_low"), s.get("ci_high"))
    return _svg.ForestRow(
        label=f.text(s.get("name")),
        delta=delta,
        low=f.num(s.get("ci_low")),
        high=f.num(s.get("ci_high")),
        significant=s.get("significant") is True,
        worse=s.get("worse") is True,
        note=f"{f.fmt_delta(metric, delta)} {ci} p adj. {f.fmt_p(p)}",
    )


def _slices(report: Mapping[str, Any]) -> str:
    rows = f.slices(report)
    if not rows:
        return ""
    by_metric: dict[str, list[_svg.ForestRow]] = {}
    for s in rows:
        forest_row = _forest_row(s)
        if forest_row is not None:
            by_metric.setdefault(f.text(s.get("metric")), []).append(forest_row)
    plots = "".join(
        _svg.forest(
            frows,
            title=f"{metric}: "
            + ("new ÷ old" if f.metric_kind(metric) == "ratio" else "new − old"),
            fmt=_delta_format(metric),
            reference=f.reference(metric),
        )
        for metric, frows in by_metric.items()
    )
    head = "".join(f"<th>{h}</th>" for h in _SLICE_HEAD)
    n_sig = len(f.significant_slices(report))
    return (
        '<section id="slices-section"><h2>Slices</h2>'
        f"<p>{n_sig:,} of {len(rows):,} slice comparisons are significant after the correction "
        "for multiple comparisons (highlighted: red worse, green better).</p>"
        '<figure id="chart-slices"><figcaption>Change per slice with its 95% confidence '
        f"interval, one panel per metric</figcaption>{plots}</figure>"
        f'<table id="slices"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(_slice_row(s) for s in rows)}</tbody></table></section>"
    )


def _cases(report: Mapping[str, Any], max_cases: int) -> str:
    embedded = render_cases(report, max_cases)
    counts = f.triage_counts(report) or {}
    buttons = ['<button type="button" class="filter-btn" data-filter="all">all</button>']
    buttons += [
        f'<button type="button" class="filter-btn" data-filter="triage:{e(k)}">{e(k)}</button>'
        for k in f.TRIAGE_ORDER
        if k in counts
    ]
    capped = ""
    if embedded.left_out:
        capped = (
            f'<p id="cases-capped" class="banner">This page embeds {embedded.embedded:,} of '
            f"{embedded.total:,} cases: every regression and novel case and up to "
            f"{max_cases:,} others. {embedded.left_out:,} cases are only in report.json.</p>"
        )
    return (
        '<section id="cases-section"><h2>Cases</h2>'
        f'<div id="controls"><div id="filter-buttons">{"".join(buttons)}</div>'
        f'<label>show <select id="filter">{filter_options(report)}</select></label>'
        '<input id="search" type="search" placeholder="search id, tag, output…" '
        'aria-label="search cases">'
        f'<span>showing <span id="cases-shown">{embedded.embedded:,}</span> of '
        f'<span id="cases-total">{embedded.embedded:,}</span></span></div>{capped}'
        f'<div id="cases">{embedded.html}</div></section>'
    )


def render_html(report: Mapping[str, Any], *, max_cases: int = MAX_OTHER_CASES) -> str:
    """The page's HTML (what :func:`write_html` writes)."""
    old, new = f.target_label(report, "old"), f.target_label(report, "new")
    banner = (
        f'<div id="simulated-banner" class="banner">{e(f.SIMULATED_TEXT)}</div>'
        if report.get("simulated")
        else ""
    )
    report_notes = f.notes(report)
    notes = (
        '<section id="notes"><h2>Notes</h2><ul>'
        + "".join(f"<li>{e(n)}</li>" for n in report_notes)
        + "</ul></section>"
        if report_notes
        else ""
    )
    tool = f.as_map(report.get("tool"))
    nav = "".join(
        f'<a href="#{t}">{label}</a>'
        for t, label in (
            ("gate", "gate"),
            ("figures-section", "figures"),
            ("charts", "distributions"),
            ("slices-section", "slices"),
            ("cases-section", "cases"),
        )
    )
    return "".join(
        [
            '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">',
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            '<meta name="referrer" content="no-referrer">',
            f"<title>cutover: {e(old)} → {e(new)}</title><style>{CSS}</style></head>",
            f'<body data-ready="false" data-simulated="{"true" if report.get("simulated") else "false"}">',
            f'<header id="top"><h1>cutover: <span id="old-label">{e(old)}</span> → '
            f'<span id="new-label">{e(new)}</span></h1>',
            f'<p class="run">{e(f.run_line(report))}</p><nav>{nav}</nav></header>',
            banner,
            _gate(report),
            _watch(report),
            _figures(report),
            _flips_and_triage(report),
            _charts(report),
            _slices(report),
            _cases(report, max_cases),
            notes,
            f"<footer>{e(tool.get('name') or 'cutover')} {e(tool.get('version'))}</footer>",
            f"<script>{JS}</script></body></html>\n",
        ]
    )


def write_html(
    report: Mapping[str, Any], path: str | Path, *, max_cases: int = MAX_OTHER_CASES
) -> Path:
    """Write the self-contained ``report.html`` for a report dict and return its path.

    ``path`` is the file, or a directory to write ``report.html`` into.
    ``max_cases`` caps the embedded cases besides every regression and novel
    case (the page says how many were left out).
    """
    out = Path(path)
    if out.is_dir():
        out = out / "report.html"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_html(report, max_cases=max_cases), encoding="utf-8", errors="replace")
    return out


__all__ = ["render_html", "write_html"]
