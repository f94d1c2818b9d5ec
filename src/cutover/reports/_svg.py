"""Inline SVG charts for ``report.html``: histograms with percentile markers, forest plots.

Pure string building, no chart library and no external resources. Every
piece of text is escaped. Styling is by class (``.bar.old``, ``.marker``,
``.row.sig``...) so the page's stylesheet decides the colours.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from html import escape

from cutover.reports._format import printable

WIDTH = 720


@dataclass(frozen=True, slots=True)
class Series:
    """One distribution to draw: ``name`` is the CSS class (``old``/``new``)."""

    name: str
    label: str
    values: Sequence[float]
    marks: Mapping[int, float] | None = None
    """p50/p95/p99 to mark (e.g. from the report's summary); computed from values when None."""


@dataclass(frozen=True, slots=True)
class ForestRow:
    """One slice x metric: the point estimate, its CI, and the text beside it."""

    label: str
    delta: float
    low: float | None
    high: float | None
    significant: bool
    worse: bool
    note: str


def quantile(values: Sequence[float], q: float) -> float:
    """Linear-interpolation quantile (Hyndman-Fan type 7, like numpy and the summary)."""
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values covering [lo, hi]."""
    span = hi - lo
    if span <= 0:
        return [lo]
    raw = span / count
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step) * step
    ticks = []
    t = first
    while t <= hi + step * 1e-9:
        ticks.append(round(t, 12) + 0.0)  # + 0.0 turns -0.0 into 0.0
        t += step
    return ticks


def _e(value: object) -> str:
    return escape(printable(str(value)), quote=True)


def _f(value: float) -> str:
    return f"{value:.1f}"


def histogram(
    series: Sequence[Series],
    *,
    title: str,
    unit: str,
    fmt: Callable[[float], str],
    axis: str = "",
    bins: int = 30,
) -> str:
    """Stacked histograms on one x scale, with p50/p95/p99 lines per series.

    ``unit`` follows values in tooltips (``ms``; empty when ``fmt`` shows it);
    ``axis`` titles the x axis (default: ``unit``). Above 1.5 times the 99.5th
    percentile the axis is cut and the last bin counts what lies beyond.
    """
    drawn = [s for s in series if s.values]
    if not drawn:
        return f'<p class="empty">No {_e(axis or unit)} values to draw.</p>'
    marks = [
        dict(s.marks) if s.marks else {p: quantile(s.values, p / 100) for p in (50, 95, 99)}
        for s in drawn
    ]
    every = [v for s in drawn for v in s.values]
    marked = [v for m in marks for v in m.values()]
    top, p995 = max(every), quantile(every, 0.995)
    hi = max(top if top <= 1.5 * p995 else p995 * 1.05, *marked)
    bottom = min(min(every), *marked)
    lo = 0.0
    if bottom < 0 or bottom > 0.3 * hi:
        lo = bottom - (hi - bottom) * 0.05
        lo = lo if bottom < 0 else max(0.0, lo)
    if hi <= lo:
        hi = lo + (abs(lo) or 1.0)
    overflow = sum(v > hi for v in every)
    step = (hi - lo) / bins
    counts = []
    for s in drawn:
        c = [0] * bins
        for v in s.values:
            c[min(bins - 1, max(0, int((v - lo) / step)))] += 1
        counts.append(c)
    peak = max(max(c) for c in counts) or 1
    left, right, panel, gap, head = 52.0, 16.0, 80.0, 12.0, 30.0
    plot_w = WIDTH - left - right
    height = head + len(drawn) * (panel + gap + head) - head + 44
    tip_unit = f" {unit}" if unit else ""

    def x(v: float) -> float:
        return left + (min(max(v, lo), hi) - lo) / (hi - lo) * plot_w

    parts = [
        f'<svg class="chart hist" viewBox="0 0 {WIDTH} {_f(height)}" role="img" '
        f'aria-label="{_e(title)}">',
        f"<title>{_e(title)}</title>",
    ]
    y0 = head
    for s, c, mark in zip(drawn, counts, marks, strict=True):
        label = f"{s.label} · n={len(s.values):,} · " + " · ".join(
            f"p{p} {fmt(v)}" for p, v in mark.items()
        )
        parts.append(
            f'<text class="series-label {_e(s.name)}" x="{_f(left)}" y="{_f(y0 - 8)}">'
            f"{_e(label)}</text>"
        )
        base = y0 + panel
        parts.append(
            f'<line class="axis" x1="{_f(left)}" y1="{_f(base)}" '
            f'x2="{_f(WIDTH - right)}" y2="{_f(base)}"/>'
        )
        for i, n in enumerate(c):
            if not n:
                continue
            h = n / peak * panel
            bx = x(lo + i * step)
            bw = max(1.0, plot_w / bins - 1)
            edge = "≥ " + fmt(lo + i * step) if i == bins - 1 and overflow else fmt(lo + i * step)
            tip = f"{s.name}: {edge} – {fmt(lo + (i + 1) * step)}{tip_unit}: {n:,}"
            parts.append(
                f'<rect class="bar {_e(s.name)}" x="{_f(bx)}" y="{_f(base - h)}" '
                f'width="{_f(bw)}" height="{_f(h)}"><title>{_e(tip)}</title></rect>'
            )
        for k, (p, v) in enumerate(mark.items()):
            mx = x(v)
            parts.append(
                f'<line class="marker p{p} {_e(s.name)}" x1="{_f(mx)}" y1="{_f(y0)}" '
                f'x2="{_f(mx)}" y2="{_f(base)}"><title>p{p} {_e(fmt(v))}{_e(tip_unit)}</title></line>'
            )
            parts.append(
                f'<text class="marker-label" x="{_f(mx + 3)}" y="{_f(y0 + 10 + 11 * k)}">'
                f"p{p}</text>"
            )
        parts.append(
            f'<text class="tick" x="{_f(left - 6)}" y="{_f(y0 + 8)}" '
            f'text-anchor="end">{peak:,}</text>'
        )
        y0 = base + gap + head
    axis_y = y0 - head - gap + 16
    for t in nice_ticks(lo, hi):
        parts.append(
            f'<text class="tick" x="{_f(x(t))}" y="{_f(axis_y)}" text-anchor="middle">'
            f"{_e(fmt(t))}</text>"
        )
    caption = (axis or unit) + (
        f" (last bin also counts {overflow:,} values above {fmt(hi)})" if overflow else ""
    )
    parts.append(
        f'<text class="axis-title" x="{_f(left + plot_w / 2)}" y="{_f(axis_y + 18)}" '
        f'text-anchor="middle">{_e(caption)}</text>'
    )
    parts.append("</svg>")
    return "".join(parts)


def forest(
    rows: Sequence[ForestRow],
    *,
    title: str,
    fmt: Callable[[float], str],
    reference: float = 0.0,
) -> str:
    """A forest plot: one row per slice, the point and its CI bar, a line at ``reference``.

    Rows are ``.row``; significant ones also ``.sig`` and ``.worse`` or ``.better``.
    """
    if not rows:
        return ""
    values = [reference]
    for r in rows:
        values += [r.delta] + [v for v in (r.low, r.high) if v is not None]
    lo, hi = min(values), max(values)
    pad = (hi - lo) * 0.06 or 0.05
    lo, hi = lo - pad, hi + pad
    width, label_w, note_w, row_h, head = 860.0, 170.0, 290.0, 22.0, 26.0
    plot_l, plot_r = label_w + 8, width - note_w - 8
    height = head + row_h * len(rows) + 34

    def x(v: float) -> float:
        return plot_l + (v - lo) / (hi - lo) * (plot_r - plot_l)

    parts = [
        f'<svg class="chart forest" viewBox="0 0 {width:.0f} {_f(height)}" role="img" '
        f'aria-label="{_e(title)}">',
        f"<title>{_e(title)}</title>",
        f'<text class="series-label" x="0" y="16">{_e(title)}</text>',
        f'<line class="zero" x1="{_f(x(reference))}" y1="{_f(head)}" x2="{_f(x(reference))}" '
        f'y2="{_f(head + row_h * len(rows))}"/>',
    ]
    for i, r in enumerate(rows):
        cy = head + row_h * i + row_h / 2
        cls = ("row sig worse" if r.worse else "row sig better") if r.significant else "row"
        short = r.label if len(r.label) <= 26 else r.label[:25] + "…"
        parts.append(f'<g class="{cls}" data-slice="{_e(r.label)}">')
        parts.append(f"<title>{_e(r.label)}: {_e(r.note)}</title>")
        parts.append(
            f'<text class="row-label" x="{_f(label_w)}" y="{_f(cy + 4)}" '
            f'text-anchor="end">{_e(short)}</text>'
        )
        if r.low is not None and r.high is not None:
            parts.append(
                f'<line class="ci" x1="{_f(x(r.low))}" y1="{_f(cy)}" '
                f'x2="{_f(x(r.high))}" y2="{_f(cy)}"/>'
            )
        parts.append(f'<circle class="point" cx="{_f(x(r.delta))}" cy="{_f(cy)}" r="4"/>')
        parts.append(
            f'<text class="row-note" x="{_f(plot_r + 8)}" y="{_f(cy + 4)}">{_e(r.note)}</text>'
        )
        parts.append("</g>")
    axis_y = head + row_h * len(rows) + 16
    for t in nice_ticks(lo, hi):
        parts.append(
            f'<text class="tick" x="{_f(x(t))}" y="{_f(axis_y)}" text-anchor="middle">'
            f"{_e(fmt(t))}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


__all__ = ["ForestRow", "Series", "forest", "histogram", "nice_ticks", "quantile"]
