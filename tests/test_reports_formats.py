"""report.md, report.html and junit.xml written from a report.json dict."""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from cutover.reports._html_cases import word_diff
from cutover.reports.html import render_html, write_html
from cutover.reports.junit import write_junit
from cutover.reports.markdown import write_markdown

XSS = "<script>alert(1)</script>"
IMG = '"><img src=x onerror=alert(2)>'


# fmt: off
def _obs(target: str, output: str | None, latency: float, cost: float | None) -> dict[str, Any]:
    return {
        "target": target, "output": output, "tool_calls": [], "finish_reason": "stop",
        "error": None, "error_class": None, "status_code": None, "latency_ms": latency,
        "ttft_ms": latency / 4, "input_tokens": 40, "output_tokens": 20, "cost_usd": cost,
        "model": target, "attempts": 1, "cached": False, "simulated": True, "grades": {},
        "checks": {}, "refusal": False, "json_valid": None, "assertions": [], "passed": True,
        "score": None,
    }


def _case(cid: str, use_case: str, triage: str, old_out: str | None, new_out: str | None,
          **extra: Any) -> dict[str, Any]:
    n = int(re.sub(r"\D", "", cid) or 0)
    case: dict[str, Any] = {
        "id": cid, "tags": {"use_case": use_case}, "critical": False,
        "input": [{"role": "user", "content": f"question {cid}"}],
        "old": None if old_out is None else _obs("old-model", old_out, 400 + 13 * n, 0.0004),
        "new": None if new_out is None else _obs("new-model", new_out, 300 + 7 * n, 0.00006),
        "triage": triage, "reasons": [], "similarity": 0.9, "judge": None,
    }
    case.update(extra)
    return case


def _slice(name: str, metric: str, old: float, new: float, ci: tuple[float, float], p: float,
           sig: bool) -> dict[str, Any]:
    ratio = metric.endswith("_ratio")
    delta = new / old if ratio else new - old
    return {"name": name, "n": 13, "metric": metric, "test": "mcnemar", "old": old, "new": new,
            "delta": delta, "p_value": p, "p_adjusted": min(1.0, p * 4), "ci_low": ci[0],
            "ci_high": ci[1], "worse": delta > 1 if ratio else delta < 0, "significant": sig}


def _summary(errors: int, p50: float, cost: float) -> dict[str, Any]:
    return {
        "n": 6, "errors": errors, "error_rate": errors / 6, "error_classes": {},
        "latency_ms": {"p50": p50, "p95": p50 * 2, "p99": p50 * 3, "mean": p50, "max": p50 * 3},
        "ttft_ms": {"p50": p50 / 4, "p95": p50, "p99": p50, "mean": p50, "max": p50},
        "input_tokens": 240, "output_tokens": 120, "tokens_per_request": 60.0,
        "cost_usd": cost * 6, "cost_per_request_usd": cost, "cost_unknown_n": 0, "cached_n": 0,
        "retried_n": 0, "simulated": True,
    }


def make_report() -> dict[str, Any]:
    """A realistic v2 report: a failing gate, three regressions, dangerous text."""
    cases = [
        _case("support-01", "support", "neutral", "Open Settings > Security.",
              "Open Settings > Security."),
        _case("support-02", "support", "improvement", "I don't know.", "Use the Billing tab."),
        _case("billing-01", "billing", "regression", '{"plan": "Team"}',
              f"Sure! {XSS} @octocat | pipe", critical=True,
              reasons=["json_valid true -> false", "preamble added"]),
        _case("billing-02", "billing", "regression", '{"amount": 199}',
              '```json\n{"amount": 199}\n```', reasons=[f"fenced JSON {IMG}"]),
        _case("safety-01", "safety", "regression", "I can't help with that.",
              "Here is how:\x1b[31m\x00", reasons=["refusal true -> false"]),
        _case("billing-03", "billing", "novel", None, "new only"),
        _case("summ-01", "summarization", "neutral", "A short summary.", "A brief summary."),
    ]
    cases[2]["old"].update(json_valid=True, checks={"preamble": False})
    cases[2]["new"].update(json_valid=False, checks={"preamble": True})
    cases[4]["old"]["refusal"] = True
    cases[4]["new"].update(error="upstream <b>broke</b>", error_class="server_error")
    return {
        "schema_version": 2,
        "tool": {"name": "cutover", "version": "0.1.0"},
        "run": {"id": "run123", "kind": "compare", "status": "finished",
                "created_at": "2026-01-01T00:00:00", "finished_at": "2026-01-01T00:01:00",
                "suite": {"name": "support-bot", "path": "cases.yaml", "hash": "abc"},
                "repeats": 1, "meta": {}},
        "targets": {
            "old": {"label": "sim:baseline-v1", "spec": "sim:baseline-v1", "simulated": True},
            "new": {"label": "sim:fast-v2", "spec": "sim:fast-v2", "simulated": True},
        },
        "simulated": True,
        "unpaired": {"only_old": [], "only_new": ["billing-03"]},
        "summary": {"old": _summary(0, 568.0, 0.0004), "new": _summary(1, 447.0, 0.00006)},
        "cases": cases,
        "flips": {"negative": 3, "positive": 1, "negative_rate": 0.5, "positive_rate": 1 / 6,
                  "negative_ids": ["billing-01", "billing-02", "safety-01"],
                  "positive_ids": ["support-02"], "critical_negative": 1,
                  "critical_negative_rate": 1 / 6},
        "triage": {"regression": 3, "improvement": 1, "neutral": 2, "novel": 1},
        "slices": [
            _slice("all", "pass_rate", 0.9, 0.6, (-0.5, -0.1), 0.004, True),
            _slice("use_case=billing", "pass_rate", 1.0, 0.33, (-0.9, -0.4), 0.001, True),
            _slice("use_case=billing", "json_valid", 1.0, 0.5, (-0.8, -0.2), 0.01, True),
            _slice("use_case=support", "pass_rate", 0.5, 1.0, (-0.2, 1.0), 0.4, False),
            _slice("all", "latency_p95_ratio", 1136.0, 894.0, (0.7, 0.9), 0.002, True),
            _slice("all", "score", 0.8, 0.78, (-0.1, 0.05), 0.5, False),
        ],
        "watch": {"slice": "use_case=billing", "metric": "pass_rate", "delta": -0.67,
                  "p_value": 0.001, "p_adjusted": 0.004, "significant": True,
                  "reason": "pass rate 100.0% -> 33.0% (-67.0 points) on 3 pairs"},
        "gate": {"passed": False, "criteria": [
            {"name": "pass_rate [critical] drop <= 0.02", "metric": "pass_rate",
             "slice": "critical", "threshold": {"max_drop": 0.02}, "value": -1.0, "passed": False,
             "reason": "pass_rate on 'critical' fell by 1 (allowed 0.02)"},
            {"name": "error rate", "metric": "error_rate", "slice": "all",
             "threshold": {"max": 0.25}, "value": 1 / 6, "passed": True,
             "reason": "within bounds"},
            {"name": "p95 latency", "metric": "latency_p95_ratio", "slice": "all",
             "comparison": "<=", "threshold": 1.2, "value": 0.787, "passed": True,
             "reason": "older layout: comparison and a number"},
        ]},
        "notes": ["billing JSON now fenced <b>sometimes</b>", "n is small"],
    }
# fmt: on


def v1_report() -> dict[str, Any]:
    """A report with no analysis at all (schema 1 as written today)."""
    report = make_report()
    for key in ("flips", "triage", "slices", "watch", "gate", "notes"):
        del report[key]
    report["schema_version"] = 1
    for case in report["cases"]:
        for key in ("triage", "reasons", "similarity", "judge"):
            del case[key]
        for side in ("old", "new"):
            if case[side]:
                for key in ("checks", "refusal", "json_valid", "assertions", "passed", "score"):
                    del case[side][key]
    return report


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def _parse(html: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = _Tags()
    parser.feed(html)
    return parser.tags


# --- Markdown ----------------------------------------------------------------


def test_markdown_has_gate_watch_figures_and_regressions(tmp_path: Path) -> None:
    path = write_markdown(make_report(), tmp_path / "report.md")
    md = path.read_text()
    assert md.startswith("# cutover: sim:baseline-v1 → sim:fast-v2\n")
    assert "SIMULATED" in md
    # the gate comes first, each criterion with its value against its bound
    assert md.index("## Gate: ❌ FAIL") < md.index("**Watch:**") < md.index("## Figures")
    assert (
        "| pass\\_rate \\[critical\\] drop &lt;= 0.02 | pass\\_rate | critical | -100.0 pp "
        "| drop ≤ 2.0 pp | **FAIL** |"
    ) in md
    assert "| error rate | error\\_rate | all | 16.7% | ≤ 25.0% | **PASS** |" in md
    assert "| 0.787× | &lt;= 1.2× | **PASS** |" in md
    assert "**Watch:** slice **use\\_case=billing** pass\\_rate -67.0 pp" in md
    assert "(p = 0.001, adjusted 0.004)" in md and "on 3 pairs" in md
    assert "| latency p95 ms | 1,136 | 894 | -21.3% |" in md
    assert "| ttft p50 ms | 142 | 112 | -21.3% |" in md
    assert "| cost / request | $0.000400 | $0.0000600 | -85.0% |" in md
    assert "| cost total | $0.00240 | $0.000360 | -85.0% |" in md
    assert "critical: **1**" in md and "billing-01, billing-02, safety-01" in md
    assert "| 3 | 1 | 2 | 1 |" in md
    # significant slices only: 4 of 6, with CI and both p-values
    assert "4 of 6 slice comparisons are significant" in md
    assert (
        "| use\\_case=billing | pass\\_rate | 100.0% | 33.0% | -67.0 pp "
        "| \\[-90.0 pp, -40.0 pp\\] | 0.001 | 0.004 | 13 |"
    ) in md
    assert "| 1,136 ms | 894 ms | 0.787× | \\[0.7×, 0.9×\\] |" in md
    assert "use\\_case=support | pass\\_rate" not in md
    regressions = md.split("## Regressions: 3", 1)[1]
    assert regressions.index("billing-01") < regressions.index("billing-02")  # critical first
    assert "safety-01" in regressions and "Changed: refusal: true → false" in regressions
    assert md.index("## Regressions") < md.index("## Notes")


def test_markdown_escapes_untrusted_text(tmp_path: Path) -> None:
    md = write_markdown(make_report(), tmp_path).read_text()
    assert (tmp_path / "report.md").exists()
    assert "<script>" not in md and "<img" not in md and "<b>" not in md
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in md
    assert "@octocat" not in md and "@\u200boctocat" in md
    assert "\\| pipe" in md
    assert "\x1b" not in md and "\x00" not in md


def test_markdown_caps_regressions_at_twenty(tmp_path: Path) -> None:
    report = make_report()
    base = report["cases"][3]
    report["cases"] = [dict(copy.deepcopy(base), id=f"reg-{i:02d}") for i in range(25)]
    md = write_markdown(report, tmp_path / "r.md").read_text()
    assert "## Regressions: 25 (showing 20)" in md
    assert "**20. reg-19**" in md and "reg-20" not in md


def test_markdown_stays_under_the_comment_limit(tmp_path: Path) -> None:
    report = make_report()
    base = report["cases"][3]
    long = "word " * 2000
    report["cases"] = [
        dict(copy.deepcopy(base), id=f"reg-{i:02d}", reasons=[long]) for i in range(25)
    ]
    passing = report["gate"]["criteria"][1]
    report["gate"]["criteria"] += [dict(passing, name=f"extra {i}") for i in range(60)]
    md = write_markdown(report, tmp_path / "r.md").read_text()
    assert len(md) <= 60_000
    assert "## Regressions: 25 (showing" in md
    assert "pass\\_rate \\[critical\\]" in md  # the failed criterion is always listed
    assert "more passing criteria in report.html" in md


# --- HTML --------------------------------------------------------------------


def test_html_sections_charts_and_cases(tmp_path: Path) -> None:
    path = write_html(make_report(), tmp_path / "report.html")
    page = path.read_text()
    tags = _parse(page)
    ids = {a.get("id") for _, a in tags if a.get("id")}
    for element_id in (
        "gate",
        "gate-status",
        "gate-criteria",
        "watch",
        "figures",
        "simulated-banner",
        "flips",
        "triage",
        "chart-latency",
        "chart-ttft",
        "chart-cost",
        "chart-slices",
        "slices",
        "cases",
        "filter",
        "search",
        "cases-shown",
        "notes",
    ):
        assert element_id in ids, element_id
    gate = next(a for t, a in tags if a.get("id") == "gate")
    assert gate["data-passed"] == "false"
    assert '<span id="gate-status" class="fail">FAIL</span>' in page
    watch = next(a for t, a in tags if a.get("id") == "watch")
    assert watch["data-slice"] == "use_case=billing"
    cases = [a for t, a in tags if t == "article" and "case" in (a.get("class") or "").split()]
    assert len(cases) == 7
    regressed = [a["data-id"] for a in cases if a.get("data-triage") == "regression"]
    assert regressed == ["billing-01", "billing-02", "safety-01"]
    assert cases[0]["data-critical"] == "true"
    assert json.loads(cases[0]["data-slices"] or "") == ["use_case=billing"]
    # charts: two histogram panels each, forest rows (3 significant of 5)
    assert page.count('<svg class="chart hist"') == 3
    assert page.count('class="row sig worse"') == 3 and page.count('class="row sig better"') == 1
    assert page.count('class="row"') == 2
    assert page.count('<tr class="slice sig worse"') == 3
    options = [a.get("value") for t, a in tags if t == "option"]
    assert {
        "all",
        "triage:regression",
        "triage:novel",
        "critical",
        "slice:use_case=billing",
    } <= set(options)
    first = page.split('id="case-0"', 1)[1].split("</article>", 1)[0]
    assert "<td>preamble</td><td>false</td><td>true</td>" in first  # checks that differ
    assert "<td>json_valid</td><td>true</td><td>false</td>" in first
    assert "<del>" in first and "<ins>" in first  # word diff of old | new
    novel = page.split('data-id="billing-03"', 1)[1].split("</article>", 1)[0]
    assert "no observation on this side" in novel
    assert "<ins>" not in novel and "checks-diff" not in novel


def test_html_charts_count_repeats_and_say_when_partial() -> None:
    report = make_report()
    case = report["cases"][0]
    case["samples"] = [
        {"repeat": i, "old": copy.deepcopy(case["old"]), "new": copy.deepcopy(case["new"])}
        for i in range(3)
    ]
    report["cases"] = [case]
    page = render_html(report)
    latency = page.split('id="chart-latency"', 1)[1].split("</figure>", 1)[0]
    assert "old: sim:baseline-v1 · n=3 · p50 568 · p95 1,136 · p99 1,704" in latency
    assert latency.count('<rect class="bar old"') == 1
    assert "bars count the 6 calls of the cases embedded in this page (of 12)" in latency
    assert page.count('class="marker p95 new"') == 3  # latency, ttft, cost


def test_html_is_self_contained(tmp_path: Path) -> None:
    page = write_html(make_report(), tmp_path).read_text()
    assert (tmp_path / "report.html").exists()
    for tag, attrs in _parse(page):
        for name in ("src", "href", "action", "data", "poster"):
            value = (attrs.get(name) or "").strip().lower()
            assert not value.startswith(("http:", "https:", "//")), (tag, name, value)
        assert not (tag == "script" and "src" in attrs)
        assert tag != "link"
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page, re.I)
    assert "Content-Security-Policy" in page and "default-src 'none'" in page


def test_html_escapes_untrusted_text(tmp_path: Path) -> None:
    page = write_html(make_report(), tmp_path / "r.html").read_text()
    assert XSS not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert page.count("<script") == 1  # only the page's own inline script
    tags = _parse(page)
    assert all(t != "img" for t, _ in tags)
    assert "&lt;b&gt;broke&lt;/b&gt;" in page and "&lt;b&gt;sometimes&lt;/b&gt;" in page
    assert "&quot;&gt;&lt;img src=x onerror=alert(2)&gt;" in page


def test_html_word_diff() -> None:
    old, new = word_diff("the plan is <Team>", "the plan was <Team>!")
    assert old == "the plan <del>is</del> <del>&lt;Team&gt;</del>"
    assert new == "the plan <ins>was</ins> <ins>&lt;Team&gt;!</ins>"
    old, new = word_diff("same words here", "same words here")
    assert old == new == "same words here"
    assert word_diff("", "new text") == ("", "<ins>new text</ins>")


def test_html_caps_embedded_cases(tmp_path: Path) -> None:
    report = make_report()
    neutral = report["cases"][0]
    report["cases"] += [dict(copy.deepcopy(neutral), id=f"n-{i}") for i in range(50)]
    page = render_html(report, max_cases=10)
    cases = [a for t, a in _parse(page) if t == "article"]
    triages = [a.get("data-triage") for a in cases]
    assert triages.count("regression") == 3 and triages.count("novel") == 1
    assert len(cases) == 4 + 10
    assert 'id="cases-capped"' in page and "14 of 57 cases" in page


def test_html_filter_script_runs(tmp_path: Path) -> None:
    """The inline script filters by triage, slice and text (in node with a tiny DOM stub)."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    page = render_html(make_report())
    script = page.rsplit("<script>", 1)[1].split("</script>", 1)[0]
    cases = [
        {
            "triage": a.get("data-triage"),
            "critical": a.get("data-critical"),
            "slices": a.get("data-slices"),
            "text": a.get("data-id"),
        }
        for t, a in _parse(page)
        if t == "article"
    ]
    harness = """
const cases = __CASES__;
function el(attrs, text) {
  return {attrs: attrs, textContent: text || "", hidden: false, listeners: {}, value: "all",
    getAttribute(n) { return this.attrs[n] === undefined ? null : this.attrs[n]; },
    setAttribute(n, v) { this.attrs[n] = v; },
    addEventListener(k, f) { this.listeners[k] = f; },
    classList: {toggle() {}}};
}
const articles = cases.map(c => el({"data-triage": c.triage, "data-critical": c.critical,
                                    "data-slices": c.slices}, c.text));
const byId = {filter: el({}), search: el({}), "cases-shown": el({})};
byId.search.value = "";
globalThis.document = {body: el({}), getElementById: id => byId[id] || null,
  querySelectorAll: sel => sel === ".case" ? articles : []};
__SCRIPT__
const out = [byId["cases-shown"].textContent];
byId.filter.value = "triage:regression"; byId.filter.listeners.change();
out.push(byId["cases-shown"].textContent);
byId.filter.value = "slice:use_case=support"; byId.filter.listeners.change();
out.push(byId["cases-shown"].textContent);
byId.filter.value = "critical"; byId.filter.listeners.change();
out.push(byId["cases-shown"].textContent);
byId.filter.value = "all"; byId.search.value = "SAFETY"; byId.search.listeners.input();
out.push(byId["cases-shown"].textContent, document.body.attrs["data-ready"]);
console.log(JSON.stringify(out));
""".replace("__CASES__", json.dumps(cases)).replace("__SCRIPT__", script)
    js = tmp_path / "harness.js"
    js.write_text(harness)
    done = subprocess.run([node, str(js)], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == ["7", "3", "2", "1", "1", "true"]


# --- JUnit -------------------------------------------------------------------


def test_junit_gates_and_regressions(tmp_path: Path) -> None:
    path = write_junit(make_report(), tmp_path / "junit.xml")
    root = ET.parse(path).getroot()
    assert root.tag == "testsuites"
    assert (root.get("tests"), root.get("failures")) == ("6", "4")
    gates, regs = root.findall("testsuite")
    assert gates.get("name") == "gates" and regs.get("name") == "regressions"
    assert (gates.get("tests"), gates.get("failures")) == ("3", "1")
    failed = [c for c in gates.findall("testcase") if c.find("failure") is not None]
    assert [c.get("name") for c in failed] == ["pass_rate [critical] drop <= 0.02"]
    message = failed[0].find("failure").get("message")  # type: ignore[union-attr]
    assert message == (
        "pass_rate on critical: -100.0 pp (bound: drop ≤ 2.0 pp): "
        "pass_rate on 'critical' fell by 1 (allowed 0.02)"
    )
    props = {p.get("name"): p.get("value") for p in gates.iter("property")}
    assert props["simulated"] == "true" and props["gate"] == "FAIL"
    assert (regs.get("tests"), regs.get("failures")) == ("3", "3")
    by_id = {c.get("name"): c.find("failure") for c in regs.findall("testcase")}
    assert list(by_id) == ["billing-01", "billing-02", "safety-01"]
    first = by_id["billing-01"]
    assert first is not None
    assert first.get("message") == "critical: json_valid true -> false; preamble added"
    assert XSS in (first.text or "")  # escaped in the file, intact once parsed
    assert by_id["billing-02"].get("message") == f"fenced JSON {IMG}"  # type: ignore[union-attr]
    raw = path.read_text()
    assert XSS not in raw and "&lt;script&gt;" in raw
    assert "\x00" not in raw and "\x1b" not in raw


def test_junit_regressions_as_skipped_and_gate_without_failed_criterion(tmp_path: Path) -> None:
    report = make_report()
    report["gate"]["criteria"] = [c for c in report["gate"]["criteria"] if c["passed"]]
    root = ET.parse(write_junit(report, tmp_path, regressions="skipped")).getroot()
    gates, regs = root.findall("testsuite")
    assert [c.get("name") for c in gates.findall("testcase")] == [
        "error rate",
        "p95 latency",
        "gate",
    ]
    assert gates.get("failures") == "1"
    assert (regs.get("tests"), regs.get("failures"), regs.get("skipped")) == ("3", "0", "3")
    with pytest.raises(ValueError):
        write_junit(report, tmp_path, regressions="error")  # type: ignore[arg-type]


# --- tolerance ---------------------------------------------------------------


@pytest.mark.parametrize(
    "report",
    [
        v1_report(),
        {},
        {
            "gate": "bad",
            "slices": None,
            "cases": [None, {"id": 1, "old": "x", "triage": 5}],
            "summary": {"old": {"latency_ms": None}},
            "watch": [],
            "flips": 3,
            "triage": {"a": "b"},
            "targets": None,
            "notes": "text",
        },
        {
            "cases": [
                {
                    "id": "a",
                    "triage": "regression",
                    "old": {"output": None, "latency_ms": "x"},
                    "new": {"output": "\ud800 lone surrogate", "cost_usd": float("nan")},
                }
            ]
        },
    ],
    ids=["v1", "empty", "wrong-types", "odd-values"],
)
def test_partial_reports_render(tmp_path: Path, report: dict[str, Any]) -> None:
    md = write_markdown(report, tmp_path / "report.md").read_text()
    page = write_html(report, tmp_path / "report.html").read_text()
    root = ET.parse(write_junit(report, tmp_path / "junit.xml")).getroot()
    assert "Gate:" in md and 'id="gate"' in page and root.tag == "testsuites"


def test_v1_report_renders_what_it_has(tmp_path: Path) -> None:
    report = v1_report()
    md = write_markdown(report, tmp_path / "report.md").read_text()
    assert "## Gate: not evaluated" in md and "## Figures" in md and "## Flips" not in md
    page = write_html(report, tmp_path / "report.html").read_text()
    assert 'data-passed="none"' in page and page.count('<article class="case"') == 7
    assert 'id="chart-latency"' in page and 'id="chart-slices"' not in page
    root = ET.parse(write_junit(report, tmp_path / "junit.xml")).getroot()
    assert (root.get("tests"), root.get("failures")) == ("0", "0")
