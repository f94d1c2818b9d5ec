"""The case view of ``report.html``: old | new side by side with a word-level diff.

Each case is one ``<article class="case">`` carrying ``data-id``,
``data-triage``, ``data-critical`` and ``data-slices`` (a JSON list of
``key=value`` tags) for the page's filter script. All report text is escaped;
the diff marks removed words with ``<del>`` (old side) and added words with
``<ins>`` (new side).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from html import escape
from types import MappingProxyType
from typing import Any, NamedTuple

from rapidfuzz.distance import Indel

from cutover.reports import _format as f

MAX_OTHER_CASES = 2000
"""Cases embedded besides every regression and novel case."""
OUTPUT_CHARS = 6000
"""Characters of each output embedded in the page."""
DIFF_TOKENS = 3000
"""Beyond this many words on a side the outputs are shown without a diff."""
_TOKEN = re.compile(r"\s+|[^\s]+")
_PRIORITY = ("regression", "novel")
_RANK = MappingProxyType({name: i for i, name in enumerate(f.TRIAGE_ORDER)})


def e(value: Any) -> str:
    """Escaped text for HTML content and quoted attributes."""
    return escape(f.printable(f.text(value)), quote=True)


def word_diff(old: str, new: str) -> tuple[str, str]:
    """Both texts as escaped HTML, words only in old in ``<del>``, only in new in ``<ins>``."""
    old, new = f.printable(old), f.printable(new)
    if old == new:
        return escape(old), escape(new)
    a, b = _TOKEN.findall(old), _TOKEN.findall(new)
    if len(a) > DIFF_TOKENS or len(b) > DIFF_TOKENS:
        return escape(old), escape(new)
    left: list[str] = []
    right: list[str] = []
    # rapidfuzz's Indel opcodes: linear-ish where difflib is quadratic on long texts.
    for opcode in Indel.opcodes(a, b):
        op, i1, i2 = opcode.tag, opcode.src_start, opcode.src_end
        j1, j2 = opcode.dest_start, opcode.dest_end
        old_part, new_part = escape("".join(a[i1:i2])), escape("".join(b[j1:j2]))
        if op == "equal":
            left.append(old_part)
            right.append(new_part)
            continue
        if old_part:
            left.append(f"<del>{old_part}</del>")
        if new_part:
            right.append(f"<ins>{new_part}</ins>")
    return "".join(left), "".join(right)


class EmbeddedCases(NamedTuple):
    html: str
    total: int
    embedded: int
    left_out: int


def select_cases(
    all_cases: Sequence[Mapping[str, Any]], max_other: int = MAX_OTHER_CASES
) -> tuple[list[Mapping[str, Any]], int]:
    """Every regression and novel case plus up to ``max_other`` others, in view order.

    View order: regressions, novel, improvements, neutral, untriaged; critical
    cases first within each. Returns the cases and how many were left out.
    """
    priority = [c for c in all_cases if c.get("triage") in _PRIORITY]
    others = [c for c in all_cases if c.get("triage") not in _PRIORITY]
    others.sort(key=lambda c: _RANK.get(f.text(c.get("triage")), len(_RANK)))
    kept = priority + others[: max(0, max_other)]
    kept.sort(key=lambda c: (_RANK.get(f.text(c.get("triage")), len(_RANK)), not c.get("critical")))
    return kept, len(all_cases) - len(kept)


def _meta(obs: Mapping[str, Any]) -> str:
    items = [
        ("latency", f.fmt_ms(obs.get("latency_ms")) + " ms"),
        ("ttft", f.fmt_ms(obs.get("ttft_ms")) + " ms"),
        (
            "tokens",
            f"{f.fmt_num(obs.get('input_tokens'))} in / {f.fmt_num(obs.get('output_tokens'))} out",
        ),
        ("cost", f.fmt_usd(obs.get("cost_usd"))),
        ("finish", f.text(obs.get("finish_reason")) or "–"),
    ]
    attempts = f.num(obs.get("attempts"))
    if attempts and attempts > 1:
        items.append(("attempts", f"{int(attempts)}"))
    if obs.get("cached"):
        items.append(("cached", "yes"))
    return " · ".join(f'<span class="k">{k}</span> {e(v)}' for k, v in items)


def _side(name: str, label: str, obs: Any, body_html: str, truncated: int) -> str:
    head = f'<div class="side {name}"><div class="side-head">{name}: {e(label)}</div>'
    if not isinstance(obs, Mapping):
        return head + '<p class="missing">no observation on this side</p></div>'
    out = [head, f'<pre class="output">{body_html}</pre>']
    if truncated:
        out.append(f'<p class="cut">… {truncated:,} more characters not embedded</p>')
    error = f.side_error(obs)
    if error:
        out.append(f'<p class="error">{e(error)}</p>')
    out.append(f'<p class="meta">{_meta(obs)}</p></div>')
    return "".join(out)


def _input(value: Any) -> str:
    messages = f.as_list(value)
    if not messages:
        return ""
    lines = []
    for msg in messages:
        m = f.as_map(msg)
        content = f.truncate(f.text(m.get("content")), OUTPUT_CHARS)
        lines.append(f'<div class="msg"><b>{e(m.get("role"))}</b> {e(content)}</div>')
    return f'<details class="input"><summary>input</summary>{"".join(lines)}</details>'


def _checks(case: Mapping[str, Any]) -> str:
    diffs = f.differing_checks(case)
    if not diffs:
        return ""
    rows = "".join(
        f"<tr><td>{e(d.name)}</td><td>{e(d.old)}</td><td>{e(d.new)}</td></tr>" for d in diffs
    )
    return (
        '<table class="checks-diff"><thead><tr><th>check</th><th>old</th><th>new</th></tr>'
        f"</thead><tbody>{rows}</tbody></table>"
    )


def _judge(case: Mapping[str, Any]) -> str:
    judge = case.get("judge")
    if not isinstance(judge, Mapping):
        return ""
    return (
        f'<p class="judge">judge: winner <b>{e(judge.get("winner"))}</b>'
        f" (score {e(f.fmt_num(judge.get('score')))}) {e(judge.get('reason'))}</p>"
    )


def render_case(case: Mapping[str, Any], index: int, labels: tuple[str, str]) -> str:
    """One case as an ``<article class="case">``."""
    triage = f.text(case.get("triage")) or "none"
    tags = f.tag_strings(case.get("tags"))
    critical = bool(case.get("critical"))
    old_full, new_full = f.side_text(case.get("old")), f.side_text(case.get("new"))
    old_text, new_text = old_full[:OUTPUT_CHARS], new_full[:OUTPUT_CHARS]
    if isinstance(case.get("old"), Mapping) and isinstance(case.get("new"), Mapping):
        old_html, new_html = word_diff(old_text, new_text)
    else:  # one side only: nothing to diff against
        old_html, new_html = e(old_text), e(new_text)
    head = [
        f'<span class="badge triage-{e(triage)}">{e(triage)}</span>',
        f'<code class="case-id">{e(case.get("id"))}</code>',
        *(f'<span class="tag">{e(t)}</span>' for t in tags),
    ]
    if critical:
        head.append('<span class="badge critical">critical</span>')
    similarity = f.num(case.get("similarity"))
    if similarity is not None:
        head.append(f'<span class="similarity">similarity {similarity:.2f}</span>')
    reasons = "".join(f"<li>{e(r)}</li>" for r in f.as_list(case.get("reasons")))
    parts = [
        f'<article class="case" id="case-{index}" data-id="{e(case.get("id"))}" '
        f'data-triage="{e(triage)}" data-critical="{"true" if critical else "false"}" '
        f'data-slices="{e(json.dumps(tags, ensure_ascii=False))}">',
        f'<header class="case-head">{" ".join(head)}</header>',
        f'<ul class="reasons">{reasons}</ul>' if reasons else "",
        _judge(case),
        _checks(case),
        '<div class="sides">',
        _side("old", labels[0], case.get("old"), old_html, len(old_full) - len(old_text)),
        _side("new", labels[1], case.get("new"), new_html, len(new_full) - len(new_text)),
        "</div>",
        _input(case.get("input")),
        "</article>",
    ]
    return "".join(parts)


def render_cases(report: Mapping[str, Any], max_other: int = MAX_OTHER_CASES) -> EmbeddedCases:
    """Every embedded case's HTML, with the counts the page states."""
    all_cases = f.cases(report)
    kept, left_out = select_cases(all_cases, max_other)
    labels = (f.target_label(report, "old"), f.target_label(report, "new"))
    body = "\n".join(render_case(c, i, labels) for i, c in enumerate(kept))
    return EmbeddedCases(body, len(all_cases), len(kept), left_out)


def filter_options(report: Mapping[str, Any]) -> str:
    """The ``<option>``s of ``#filter``: triage classes, critical, then each slice."""
    counts = f.triage_counts(report) or {}
    all_cases = f.cases(report)
    opts = [f'<option value="all">all cases ({len(all_cases):,})</option>']
    for name in (*f.TRIAGE_ORDER, *(k for k in counts if k not in f.TRIAGE_ORDER)):
        if name in counts:
            opts.append(f'<option value="triage:{e(name)}">{e(name)} ({counts[name]:,})</option>')
    if any(c.get("critical") for c in all_cases):
        opts.append('<option value="critical">critical</option>')
    names = {f.text(s.get("name")) for s in f.slices(report)} - {"all", "critical", ""}
    for case in all_cases:
        names.update(f.tag_strings(case.get("tags")))
    if names:
        opts.append('<optgroup label="slice">')
        opts += [f'<option value="slice:{e(n)}">{e(n)}</option>' for n in sorted(names)]
        opts.append("</optgroup>")
    return "".join(opts)


__all__ = [
    "EmbeddedCases",
    "filter_options",
    "render_case",
    "render_cases",
    "select_cases",
    "word_diff",
]
