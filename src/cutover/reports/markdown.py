"""``report.md``: the comparison as a pull-request comment.

Written from a ``report.json`` dict. Order: title (old -> new), the SIMULATED
banner, the gate verdict with each criterion, the slice to watch, the
figures table, flips, triage counts, the significant slices, up to 20
regressions side by side, notes. Model outputs are untrusted: every piece of
report text is escaped so that it cannot open Markdown or HTML constructs, and
``@`` is followed by a zero-width space so an output cannot mention people.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

from cutover.reports import _format as f

MAX_REGRESSIONS = 20
MAX_SLICE_ROWS = 50
MAX_CRITERIA = 40
OUTPUT_CHARS = 300
MAX_CHARS = 60_000
"""GitHub refuses comments over 65,536 characters: regressions are dropped to fit."""
_SPECIAL = re.compile(r"([\\`*_\[\]<>|~&])")


def md(value: Any) -> str:
    """Report text made inert inline: Markdown and HTML escaped, one line."""
    s = f.printable(f.text(value))
    s = _SPECIAL.sub(lambda m: _ENTITIES.get(m.group(1), "\\" + m.group(1)), s)
    s = s.replace("@", "@\u200b")
    return re.sub(r"\r\n|\r|\n", "<br>", s)


_ENTITIES = MappingProxyType({"<": "&lt;", ">": "&gt;", "&": "&amp;"})


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _gate(report: Mapping[str, Any]) -> list[str]:
    gate = f.gate_of(report)
    if gate is None:
        return ["## Gate: not evaluated", "", "This report carries no gate decision."]
    status = f.verdict(gate.get("passed"))
    mark = {"PASS": "✅", "FAIL": "❌"}.get(status, "➖")
    out = [f"## Gate: {mark} {status}", ""]
    criteria = [f.as_map(c) for c in f.as_list(gate.get("criteria"))]
    # every failed criterion, then passing ones up to MAX_CRITERIA rows in all
    failed = [c for c in criteria if c.get("passed") is not True]
    room = max(0, MAX_CRITERIA - len(failed))
    passing = [c for c in criteria if c.get("passed") is True]
    shown = failed + passing[:room]
    keep = {id(c) for c in shown}
    rows = [_criterion_row(c) for c in criteria if id(c) in keep]
    if not rows:
        return [*out, "No criteria."]
    out += _table(["criterion", "metric", "slice", "value", "threshold", "result", "reason"], rows)
    if len(passing) > room:
        out += ["", f"… {len(passing) - room:,} more passing criteria in report.html."]
    return out


def _criterion_row(crit: Mapping[str, Any]) -> list[str]:
    metric = f.text(crit.get("metric"))
    return [
        md(crit.get("name")),
        md(metric),
        md(crit.get("slice") or "all"),
        md(f.fmt_gate_value(metric, crit.get("value"))),
        md(f.fmt_threshold(crit)),
        f"**{f.verdict(crit.get('passed'))}**",
        md(crit.get("reason")),
    ]


def _watch(report: Mapping[str, Any]) -> list[str]:
    watch = report.get("watch")
    if not isinstance(watch, Mapping):
        return []
    metric = f.text(watch.get("metric"))
    line = (
        f"**Watch:** slice **{md(watch.get('slice'))}** {md(metric)} "
        f"{md(f.fmt_delta(metric, watch.get('delta')))} ({md(f.fmt_pvalues(watch))})"
    )
    if watch.get("reason"):
        line += f": {md(watch.get('reason'))}"
    return ["", line]


def _figures(report: Mapping[str, Any]) -> list[str]:
    rows = f.figure_rows(report)
    if not rows:
        return []
    header = ["", f"old: {md(f.target_label(report, 'old'))}"]
    header += [f"new: {md(f.target_label(report, 'new'))}", "change"]
    out = ["", "## Figures", ""]
    out += _table(header, [[r.label, md(r.old), md(r.new), md(r.change)] for r in rows])
    unpaired = f.unpaired_line(report)
    return out + (["", md(unpaired)] if unpaired else [])


def _ids(values: Any, limit: int = 20) -> str:
    ids = [f.text(v) for v in f.as_list(values)]
    shown = ", ".join(md(i) for i in ids[:limit])
    return shown + (f" … (+{len(ids) - limit:,})" if len(ids) > limit else "")


def _flips(report: Mapping[str, Any]) -> list[str]:
    flips = report.get("flips")
    if not isinstance(flips, Mapping):
        return []
    out = ["", "## Flips", ""]
    neg = f"- negative (pass → fail): **{f.fmt_num(flips.get('negative'))}**"
    neg += f" ({f.fmt_pct(flips.get('negative_rate'))})"
    if flips.get("critical_negative") is not None:
        neg += f", critical: **{f.fmt_num(flips.get('critical_negative'))}**"
        neg += f" ({f.fmt_pct(flips.get('critical_negative_rate'))})"
    if f.as_list(flips.get("negative_ids")):
        neg += f": {_ids(flips.get('negative_ids'))}"
    pos = f"- positive (fail → pass): **{f.fmt_num(flips.get('positive'))}**"
    pos += f" ({f.fmt_pct(flips.get('positive_rate'))})"
    if f.as_list(flips.get("positive_ids")):
        pos += f": {_ids(flips.get('positive_ids'))}"
    return [*out, neg, pos]


def _triage(report: Mapping[str, Any]) -> list[str]:
    counts = f.triage_counts(report)
    if counts is None:
        return []
    return [
        "",
        "## Triage",
        "",
        *_table([md(k) for k in counts], [[str(v) for v in counts.values()]]),
    ]


def _slices(report: Mapping[str, Any]) -> list[str]:
    all_slices = f.slices(report)
    if not all_slices:
        return []
    sig = f.significant_slices(report)
    out = ["", "## Significant slices", ""]
    if not sig:
        return [*out, f"No significant difference in {len(all_slices):,} slice comparisons."]
    rows = []
    for s in sig[:MAX_SLICE_ROWS]:
        metric = f.text(s.get("metric"))
        rows.append(
            [
                md(s.get("name")),
                md(metric),
                md(f.fmt_side(metric, s.get("old"))),
                md(f.fmt_side(metric, s.get("new"))),
                md(f.fmt_delta(metric, s.get("delta"))),
                md(f.fmt_ci(metric, s.get("ci_low"), s.get("ci_high"))),
                md(f.fmt_p(s.get("p_value"))),
                md(f.fmt_p(s.get("p_adjusted"))),
                md(f"{f.fmt_num(s.get('n'))}"),
            ]
        )
    header = ["slice", "metric", "old", "new", "delta", "95% CI", "p", "p adjusted", "n"]
    out += _table(header, rows)
    if len(sig) > MAX_SLICE_ROWS:
        out += ["", f"… {len(sig) - MAX_SLICE_ROWS:,} more significant slices in report.html."]
    return [*out, "", f"{len(sig):,} of {len(all_slices):,} slice comparisons are significant."]


def _cell(obs: Any) -> str:
    if not isinstance(obs, Mapping):
        return "*(no observation)*"
    body = f.side_text(obs)
    error = f.side_error(obs)
    shown = md(f.truncate(body, OUTPUT_CHARS)) if body else ""
    if error:
        shown += ("<br>" if shown else "") + "**error:** " + md(f.truncate(error, 200))
    return shown or "*(empty)*"


def _regressions(report: Mapping[str, Any], limit: int = MAX_REGRESSIONS) -> list[str]:
    found = f.regressions(report)
    if not found:
        return [] if f.triage_counts(report) is None else ["", "No regressions."]
    shown = found[:limit]
    title = f"Regressions: {len(found):,}" + (
        f" (showing {len(shown)})" if len(found) > len(shown) else ""
    )
    if not shown:
        return ["", f"## {title}", "", "Too many to show here: see report.html."]
    old_label, new_label = md(f.target_label(report, "old")), md(f.target_label(report, "new"))
    out = ["", f"## {title}", "", "<details open><summary>side by side</summary>", ""]
    for i, case in enumerate(shown, 1):
        head = f"**{i}. {md(case.get('id'))}**"
        tags = f.tag_strings(case.get("tags"))
        if tags:
            head += " · " + ", ".join(md(t) for t in tags)
        if case.get("critical"):
            head += " · **critical**"
        out += [head, ""]
        reasons = [md(r) for r in f.as_list(case.get("reasons"))]
        if reasons:
            out += ["Reasons: " + "; ".join(reasons), ""]
        diffs = f.differing_checks(case)
        if diffs:
            changes = ", ".join(f"{md(d.name)}: {md(d.old)} → {md(d.new)}" for d in diffs[:8])
            out += ["Changed: " + changes, ""]
        rows = [[_cell(case.get("old")), _cell(case.get("new"))]]
        out += [*_table([f"old: {old_label}", f"new: {new_label}"], rows), ""]
    return [*out, "</details>"]


def render_markdown(report: Mapping[str, Any]) -> str:
    """The Markdown text of a report (what :func:`write_markdown` writes).

    Kept under :data:`MAX_CHARS` by showing fewer regressions when needed.
    """
    for limit in (MAX_REGRESSIONS, 10, 5, 0):
        text = _render(report, limit)
        if len(text) <= MAX_CHARS:
            break
    return text


def _render(report: Mapping[str, Any], limit: int) -> str:
    old, new = f.target_label(report, "old"), f.target_label(report, "new")
    out = [f"# cutover: {md(old)} → {md(new)}", "", md(f.run_line(report))]
    if report.get("simulated"):
        out += ["", f"> ⚠️ **{md(f.SIMULATED_TEXT)}**"]
    out += ["", *_gate(report), *_watch(report), *_figures(report), *_flips(report)]
    out += [*_triage(report), *_slices(report), *_regressions(report, limit)]
    report_notes = f.notes(report)
    if report_notes:
        out += ["", "## Notes", "", *(f"- {md(f.truncate(n, 1000))}" for n in report_notes[:50])]
        if len(report_notes) > 50:
            out.append(f"- … {len(report_notes) - 50:,} more notes in report.json")
    tool = f.as_map(report.get("tool"))
    version = f.text(tool.get("version"))
    out += ["", f"<sub>{md(f.text(tool.get('name') or 'cutover'))} {md(version)}</sub>", ""]
    return "\n".join(out)


def write_markdown(report: Mapping[str, Any], path: str | Path) -> Path:
    """Write ``report.md`` for a report dict and return its path.

    ``path`` is the file, or a directory to write ``report.md`` into.
    """
    out = Path(path)
    if out.is_dir():
        out = out / "report.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_markdown(report), encoding="utf-8", errors="replace")
    return out


__all__ = ["render_markdown", "write_markdown"]
