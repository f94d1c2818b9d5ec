"""The reports of an index comparison: ``report.json`` and a self-contained ``report.html``.

:func:`build_report` turns a :class:`~cutover.embeddings.compare.RankingComparison`
into the ``report.json`` dict; :func:`render_html` draws the page from that
dict, so a saved report can be drawn again. The page loads nothing (the
stylesheet is inline, the chart is SVG drawn here, and the same
Content-Security-Policy as the run report forbids any fetch), and every piece
of text in it is escaped: query texts, document ids and titles come from
users' data. Layout of ``report.json``::

    {
      "schema_version": 1, "kind": "embeddings-compare", "tool": {...}, "created_at": "...",
      "indexes": {"old": {"name": ...}, "new": {"name": ...}}, "inputs": {...},
      "k", "depth", "rbo_p", "n_queries", "n_judged",
      "overlap_at_k", "rbo", "rbo_min", "rbo_max", "identical_top_k", "overlap_histogram",
      "ndcg_at_10": {"old", "new", "delta", "ci_low", "ci_high", "p_value", "n"} | null,
      "recall_at_k": {...} | null, "judged_at_10": {"old", "new"} | null,
      "where_the_rest_went": {"dropped": {...}, "entered": {...}},
      "most_changed": [qid], "biggest_ndcg_drops": [qid], "bootstrap": {...},
      "method": {...}, "notes": [...], "titles": {doc_id: title},
      "queries": [{"id", "text", "overlap", "rbo", "ndcg_old", "ndcg_new", "recall_old",
                   "recall_new", "old_top", "new_top", "old_in_new", "new_in_old", ...}]
    }
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import orjson

from cutover import __version__
from cutover.embeddings._compare_rankings import RankingComparison
from cutover.reports import _format as f
from cutover.reports._html_assets import CSP, CSS
from cutover.reports._html_cases import e
from cutover.reports._svg import nice_ticks

__all__ = [
    "REPORT_KIND",
    "REPORT_SCHEMA_VERSION",
    "build_report",
    "documents_shown",
    "queries_shown",
    "render_html",
    "write_report",
]

REPORT_SCHEMA_VERSION: Final = 1
REPORT_KIND: Final = "embeddings-compare"
_OPTS: Final = orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS

_CSS_EXTRA: Final = """
.headline td.num{min-width:90px}
.ranked{margin:0;padding-left:0;list-style:none;font-size:12.5px}
.ranked li{padding:2px 4px;border-bottom:1px solid var(--soft)}
.ranked li.moved{background:#fdecea}.side.new .ranked li.moved{background:#e9f7ef}
.ranked .rank{display:inline-block;min-width:2.2em;color:var(--mute)}
.ranked .doc-title{color:var(--mute)}
.ranked .other{float:right;color:var(--mute);font-size:11px}
.grade{font-size:11px;padding:0 5px;border-radius:8px;background:var(--soft);margin-left:4px}
.grade.rel{background:var(--good);color:#fff}
.query-text{font-weight:600}
.bar.overlap{fill:var(--old);opacity:.85}
"""


def queries_shown(report: Mapping[str, Any]) -> list[str]:
    """Ids of the queries the page shows side by side: most changed, then biggest drops."""
    ids = [*f.as_list(report.get("most_changed")), *f.as_list(report.get("biggest_ndcg_drops"))]
    return list(dict.fromkeys(f.text(i) for i in ids))


def documents_shown(report: Mapping[str, Any]) -> set[str]:
    """Every document id in the top lists the page shows (the ones worth a title)."""
    shown = set(queries_shown(report))
    docs: set[str] = set()
    for q in f.as_list(report.get("queries")):
        query = f.as_map(q)
        if f.text(query.get("id")) in shown:
            docs.update(f.text(d) for d in f.as_list(query.get("old_top")))
            docs.update(f.text(d) for d in f.as_list(query.get("new_top")))
    return docs


def build_report(
    comparison: RankingComparison,
    *,
    indexes: Mapping[str, Mapping[str, Any]] | None = None,
    inputs: Mapping[str, Any] | None = None,
    titles: Mapping[str, str] | None = None,
    notes: Sequence[str] = (),
) -> dict[str, Any]:
    """The ``report.json`` dict of a comparison.

    ``indexes`` describes the two sides (``{"old": {"name": ...}, "new": ...}``,
    written as given); ``inputs`` names the files compared; ``titles`` maps
    document ids to titles and is kept only for the documents the page shows;
    ``notes`` are added to the comparison's own.
    """
    body = comparison.to_json()
    report: dict[str, Any] = {
        "schema_version": REPORT_SCHEMA_VERSION,
        "kind": REPORT_KIND,
        "tool": {"name": "cutover", "version": __version__},
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "indexes": {side: dict((indexes or {}).get(side) or {}) for side in ("old", "new")},
        "inputs": dict(inputs or {}),
        **body,
    }
    report["notes"] = [*body["notes"], *notes]
    shown = documents_shown(report)
    report["titles"] = {doc: title for doc, title in (titles or {}).items() if doc in shown}
    queries = report.pop("queries")
    report["queries"] = queries  # last, so the headline figures open the file
    return report


def write_report(report: Mapping[str, Any], out_dir: str | Path) -> dict[str, Path]:
    """Write ``out_dir/report.json`` and ``out_dir/report.html``; return their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "report.json", "html": out / "report.html"}
    tmp = paths["json"].with_suffix(".json.tmp")
    tmp.write_bytes(orjson.dumps(report, option=_OPTS) + b"\n")
    tmp.replace(paths["json"])
    paths["html"].write_text(render_html(report), encoding="utf-8", errors="replace")
    return paths


# --- the page -----------------------------------------------------------------


def _index_label(report: Mapping[str, Any], side: str) -> str:
    index = f.as_map(f.as_map(report.get("indexes")).get(side))
    name = f.text(index.get("name")) or side
    resolved = f.text(index.get("index"))
    if resolved and resolved != name:
        name = f"{name} = {resolved}"
    model = f.text(index.get("model"))
    return f"{name} ({model})" if model else name


def _num(value: Any, digits: int = 3) -> str:
    v = f.num(value)
    return "–" if v is None else f"{v:.{digits}f}"


def _signed(value: Any) -> str:
    v = f.num(value)
    return "–" if v is None else f"{v:+.3f}"


def _ci(low: Any, high: Any) -> str:
    if f.num(low) is None or f.num(high) is None:
        return "–"
    return f"[{_signed(low)}, {_signed(high)}]"


def _metric_row(label: str, element_id: str, metric: Any) -> str:
    m = f.as_map(metric)
    if not m:
        return (
            f'<tr id="{element_id}"><th>{e(label)}</th>'
            '<td colspan="5" class="empty">no relevance judgments</td></tr>'
        )
    return (
        f'<tr id="{element_id}"><th>{e(label)}</th>'
        f'<td class="num">{e(_num(m.get("old")))}</td><td class="num">{e(_num(m.get("new")))}</td>'
        f'<td class="num">{e(_signed(m.get("delta")))}</td>'
        f'<td class="num">{e(_ci(m.get("ci_low"), m.get("ci_high")))}</td>'
        f'<td class="num">{e(f.fmt_p(m.get("p_value")))} (n={e(f.fmt_num(m.get("n")))})</td></tr>'
    )


def _headline(report: Mapping[str, Any]) -> str:
    k = f.text(report.get("k"))
    n = int(f.num(report.get("n_queries")) or 0)
    same = int(f.num(report.get("identical_top_k")) or 0)
    judged = f.as_map(report.get("judged_at_10"))
    judged_line = ""
    if judged:
        judged_line = (
            f'<p id="judged">Judged share of the top 10: old {e(f.fmt_pct(judged.get("old")))}, '
            f"new {e(f.fmt_pct(judged.get('new')))} (unjudged documents count as not relevant; "
            "a much lower share on the new side means its nDCG is underestimated).</p>"
        )
    return (
        '<section id="headline"><h2>Headline</h2><table class="headline"><tbody>'
        f'<tr id="overlap"><th>top-{e(k)} overlap (mean)</th>'
        f'<td class="num" data-value="{e(report.get("overlap_at_k"))}">'
        f"{e(_num(report.get('overlap_at_k')))}</td></tr>"
        f'<tr id="rbo"><th>RBO, p = {e(report.get("rbo_p"))} (mean)</th>'
        f'<td class="num" data-value="{e(report.get("rbo"))}">{e(_num(report.get("rbo")))}</td>'
        f"<td>bounds {e(_num(report.get('rbo_min')))} – {e(_num(report.get('rbo_max')))}</td></tr>"
        f'<tr id="identical"><th>queries with the same top {e(k)}</th>'
        f'<td class="num">{same:,} of {n:,}</td></tr></tbody></table>'
        '<table class="headline" id="quality"><thead><tr><th></th><th>old</th><th>new</th>'
        "<th>change</th><th>95% CI</th><th>p</th></tr></thead><tbody>"
        + _metric_row("nDCG@10", "ndcg", report.get("ndcg_at_10"))
        + _metric_row(f"recall@{k}", "recall", report.get("recall_at_k"))
        + f"</tbody></table>{judged_line}</section>"
    )


def _overlap_chart(report: Mapping[str, Any]) -> str:
    """Bars: how many queries share 0, 1, ..., k of their top k."""
    rows = [f.as_map(r) for r in f.as_list(report.get("overlap_histogram"))]
    counts = [int(f.num(r.get("queries")) or 0) for r in rows]
    if not rows or not any(counts):
        return '<p class="empty">No queries.</p>'
    k = len(rows) - 1
    width, height, left, right, top, bottom = 720.0, 220.0, 48.0, 16.0, 16.0, 40.0
    plot_w, plot_h = width - left - right, height - top - bottom
    peak = max(counts)
    slot = plot_w / len(rows)
    parts = [
        f'<svg class="chart hist" viewBox="0 0 {width:.0f} {height:.0f}" role="img" '
        'aria-label="queries by top-k overlap"><title>queries by top-k overlap</title>',
        f'<line class="axis" x1="{left:.1f}" y1="{top + plot_h:.1f}" '
        f'x2="{width - right:.1f}" y2="{top + plot_h:.1f}"/>',
    ]
    for tick in (t for t in nice_ticks(0, peak, 4) if t == int(t)):
        y = top + plot_h - tick / peak * plot_h
        parts.append(
            f'<text class="tick" x="{left - 6:.1f}" y="{y + 4:.1f}" text-anchor="end">'
            f"{tick:g}</text>"
        )
    for j, (row, n) in enumerate(zip(rows, counts, strict=True)):
        x = left + j * slot
        h = n / peak * plot_h
        share = f.num(row.get("overlap"))
        tip = f"{j} of {k} shared (overlap {share:.2f}): {n:,} queries" if share is not None else ""
        parts.append(
            f'<rect class="bar overlap" data-shared="{j}" data-queries="{n}" x="{x + 2:.1f}" '
            f'y="{top + plot_h - h:.1f}" width="{max(1.0, slot - 4):.1f}" height="{h:.1f}">'
            f"<title>{e(tip)}</title></rect>"
            f'<text class="tick" x="{x + slot / 2:.1f}" y="{top + plot_h + 14:.1f}" '
            f'text-anchor="middle">{j}</text>'
        )
    parts.append(
        f'<text class="axis-title" x="{left + plot_w / 2:.1f}" y="{height - 8:.1f}" '
        f'text-anchor="middle">documents shared in the top {k} (of {k})</text></svg>'
    )
    return "".join(parts)


def _movement_table(element_id: str, caption: str, movement: Any) -> str:
    m = f.as_map(movement)
    buckets = [f.as_map(b) for b in f.as_list(m.get("buckets"))]
    judged = m.get("relevant") is not None
    head = "<th>rank in the other index</th><th>documents</th>"
    if judged:
        head += "<th>relevant</th><th>judged not relevant</th><th>unjudged</th>"
    rows = []
    for b in buckets:
        cells = f'<td class="num">{e(f.fmt_num(b.get("documents")))}</td>'
        if judged:
            cells += "".join(
                f'<td class="num">{e(f.fmt_num(b.get(key)))}</td>'
                for key in ("relevant", "nonrelevant", "unjudged")
            )
        rows.append(
            f'<tr data-label="{e(b.get("label"))}"><td>{e(b.get("label"))}</td>{cells}</tr>'
        )
    total = f'<td class="num">{e(f.fmt_num(m.get("documents")))}</td>'
    if judged:
        total += "".join(
            f'<td class="num">{e(f.fmt_num(m.get(key)))}</td>'
            for key in ("relevant", "nonrelevant", "unjudged")
        )
    return (
        f'<table id="{element_id}"><caption>{e(caption)}</caption><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody><tfoot><tr><th>total</th>{total}</tr></tfoot></table>"
    )


def _where(report: Mapping[str, Any]) -> str:
    where = f.as_map(report.get("where_the_rest_went"))
    k = f.text(report.get("k"))
    note = ""
    if f.as_map(where.get("dropped")).get("relevant") is not None:
        note = (
            '<p class="chart-note">Relevance counts cover the queries that have judgments '
            "(so they add up to the judged queries' documents, not to every document).</p>"
        )
    return (
        '<section id="where-the-rest-went"><h2>Where the rest went</h2>'
        + _movement_table(
            "dropped",
            f"Old top-{k} documents that left the new top {k}: their rank in the new index",
            where.get("dropped"),
        )
        + _movement_table(
            "entered",
            f"New top-{k} documents that were not in the old top {k}: their rank in the old index",
            where.get("entered"),
        )
        + note
        + "</section>"
    )


def _ranked_list(
    side: str,
    label: str,
    docs: Sequence[Any],
    other_ranks: Sequence[Any],
    grades: Sequence[Any],
    titles: Mapping[str, Any],
    k: int,
) -> str:
    items = []
    arrow = "→ new" if side == "old" else "← old"
    for i, doc in enumerate(docs):
        doc_id = f.text(doc)
        rank = f.num(other_ranks[i]) if i < len(other_ranks) else None
        moved = rank is None or rank > k
        where = f"{arrow} #{int(rank)}" if rank is not None else f"{arrow}: not retrieved"
        grade = f.num(grades[i]) if i < len(grades) else None
        badge = ""
        if grades:
            shown = "unjudged" if grade is None else f"rel {int(grade)}"
            cls = "grade rel" if grade is not None and grade > 0 else "grade"
            badge = f'<span class="{cls}">{e(shown)}</span>'
        title = f.text(titles.get(doc_id))
        title_html = f' <span class="doc-title">{e(title)}</span>' if title else ""
        items.append(
            f'<li class="{"moved" if moved else "kept"}" data-doc="{e(doc_id)}">'
            f'<span class="rank">{i + 1}.</span><code>{e(doc_id)}</code>{title_html}{badge}'
            f'<span class="other">{e(where)}</span></li>'
        )
    return (
        f'<div class="side {side}"><div class="side-head">{side}: {e(label)}</div>'
        f'<ol class="ranked">{"".join(items)}</ol></div>'
    )


def _query_article(query: Mapping[str, Any], report: Mapping[str, Any], index: int) -> str:
    k = int(f.num(report.get("k")) or 10)
    titles = f.as_map(report.get("titles"))
    figures = [
        f"overlap {_num(query.get('overlap'), 2)}",
        f"RBO {_num(query.get('rbo'))}",
    ]
    if query.get("ndcg_old") is not None:
        figures.append(
            f"nDCG@10 {_num(query.get('ndcg_old'))} → {_num(query.get('ndcg_new'))} "
            f"({_signed(query.get('ndcg_delta'))})"
        )
    if query.get("recall_old") is not None:
        figures.append(
            f"recall@{k} {_num(query.get('recall_old'))} → {_num(query.get('recall_new'))}"
        )
    sides = [
        _ranked_list(
            side,
            _index_label(report, side),
            f.as_list(query.get(f"{side}_top")),
            f.as_list(query.get("old_in_new" if side == "old" else "new_in_old")),
            f.as_list(query.get(f"{side}_grades")),
            titles,
            k,
        )
        for side in ("old", "new")
    ]
    return (
        f'<article class="case query" id="query-{index}" data-id="{e(query.get("id"))}" '
        f'data-overlap="{e(query.get("overlap"))}">'
        f'<header class="case-head"><code class="case-id">{e(query.get("id"))}</code> '
        f'<span class="query-text">{e(query.get("text"))}</span></header>'
        f'<p class="meta">{e(" · ".join(figures))}</p>'
        f'<div class="sides">{"".join(sides)}</div></article>'
    )


def _changed(report: Mapping[str, Any]) -> str:
    by_id = {f.text(f.as_map(q).get("id")): f.as_map(q) for q in f.as_list(report.get("queries"))}
    parts = []
    for element_id, title, key, empty in (
        ("most-changed", "Most changed queries (lowest overlap first)", "most_changed",
         "Every query has the same top k in both indexes."),
        ("ndcg-drops", "Biggest nDCG@10 drops", "biggest_ndcg_drops",
         "No judged query lost nDCG@10."),
    ):  # fmt: skip
        ids = [f.text(i) for i in f.as_list(report.get(key))]
        if key == "biggest_ndcg_drops" and report.get("ndcg_at_10") is None:
            continue
        articles = "".join(
            _query_article(by_id[qid], report, i) for i, qid in enumerate(ids) if qid in by_id
        )
        parts.append(
            f'<section id="{element_id}"><h2>{e(title)}</h2>'
            + (articles or f'<p class="empty">{e(empty)}</p>')
            + "</section>"
        )
    return "".join(parts)


def _notes(report: Mapping[str, Any]) -> str:
    items = "".join(f"<li>{e(n)}</li>" for n in f.notes(report))
    method = f.as_map(report.get("method"))
    rows = "".join(f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in method.items())
    notes = f'<section id="notes"><h2>Notes</h2><ul>{items}</ul></section>' if items else ""
    return f'{notes}<section id="method"><h2>Method</h2><table>{rows}</table></section>'


def _run_line(report: Mapping[str, Any]) -> str:
    parts = [
        f"{int(f.num(report.get('n_queries')) or 0):,} queries",
        f"{int(f.num(report.get('n_judged')) or 0):,} judged",
        f"k = {f.text(report.get('k'))}",
        f"depth {f.text(report.get('depth'))}",
    ]
    inputs = f.as_map(report.get("inputs"))
    parts += [f"{key} {f.text(v)}" for key, v in inputs.items() if v is not None]
    if report.get("created_at"):
        parts.append(f.text(report.get("created_at")))
    return " · ".join(parts)


def render_html(report: Mapping[str, Any]) -> str:
    """The page's HTML (what :func:`write_report` writes as ``report.html``)."""
    old, new = _index_label(report, "old"), _index_label(report, "new")
    tool = f.as_map(report.get("tool"))
    nav = "".join(
        f'<a href="#{t}">{label}</a>'
        for t, label in (
            ("headline", "headline"),
            ("chart-overlap", "overlap"),
            ("where-the-rest-went", "where the rest went"),
            ("most-changed", "most changed"),
        )
    )
    k = f.text(report.get("k"))
    return "".join(
        [
            '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">',
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            '<meta name="referrer" content="no-referrer">',
            f"<title>cutover embeddings: {e(old)} → {e(new)}</title>",
            f"<style>{CSS}{_CSS_EXTRA}</style></head><body>",
            f'<header id="top"><h1>cutover embeddings: <span id="old-label">{e(old)}</span> → '
            f'<span id="new-label">{e(new)}</span></h1>',
            f'<p class="run">{e(_run_line(report))}</p><nav>{nav}</nav></header>',
            _headline(report),
            f'<section id="overlap-section"><h2>Overlap per query</h2>'
            f'<figure id="chart-overlap"><figcaption>Queries by the number of top-{e(k)} '
            f"documents both indexes return</figcaption>{_overlap_chart(report)}</figure></section>",
            _where(report),
            _changed(report),
            _notes(report),
            f"<footer>{e(tool.get('name') or 'cutover')} {e(tool.get('version'))}</footer>",
            "</body></html>\n",
        ]
    )
