"""The inline stylesheet and script of ``report.html`` (no external resources)."""

from __future__ import annotations

CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
    "img-src data:; base-uri 'none'; form-action 'none'"
)
"""Content-Security-Policy of the page: nothing may be fetched from anywhere."""

CSS = """
:root{--old:#4e79a7;--new:#f28e2b;--bad:#c0392b;--good:#1e8449;--mute:#6b7280;--line:#d1d5db;
--bg:#fff;--fg:#111827;--soft:#f3f4f6}
*{box-sizing:border-box}
body{margin:0 auto;max-width:1200px;padding:16px 24px 48px;font:14px/1.45 system-ui,-apple-system,
"Segoe UI",Roboto,sans-serif;color:var(--fg);background:var(--bg)}
h1{font-size:22px;margin:8px 0 4px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid
var(--line);padding-bottom:4px}
.run{color:var(--mute);margin:0 0 8px}
nav a{margin-right:12px;color:var(--old)}
.banner{background:#fff4d6;border:1px solid #e0b64a;padding:8px 12px;border-radius:6px;
font-weight:600;margin:8px 0}
table{border-collapse:collapse;margin:6px 0}
th,td{border:1px solid var(--line);padding:4px 8px;text-align:left;vertical-align:top}
th{background:var(--soft)}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.pass{color:var(--good);font-weight:700}.fail{color:var(--bad);font-weight:700}
.na{color:var(--mute);font-weight:700}
#gate-status{padding:2px 10px;border-radius:4px;color:#fff}
#gate-status.pass{background:var(--good)}#gate-status.fail{background:var(--bad)}
#gate-status.na{background:var(--mute)}
tr.sig.worse td{background:#fdecea}tr.sig.better td{background:#e9f7ef}
.chart-note{color:var(--mute);font-size:12px;margin:2px 0}
#watch .box{border-left:4px solid var(--new);background:var(--soft);padding:8px 12px}
.counts span{display:inline-block;margin-right:16px}
figure{margin:12px 0}
figcaption{font-weight:600;margin-bottom:4px}
svg.chart{width:100%;max-width:720px;height:auto;font-size:11px;display:block}
svg.chart.forest{max-width:860px;margin-bottom:8px}
.bar.old{fill:var(--old);opacity:.85}.bar.new{fill:var(--new);opacity:.85}
.axis{stroke:#9ca3af}.zero{stroke:#9ca3af;stroke-dasharray:4 3}
.marker{stroke:#111827;stroke-width:1.2}.marker.p95{stroke-dasharray:5 3}
.marker.p99{stroke-dasharray:2 2}.marker-label{fill:#374151;font-size:10px}
.series-label{font-weight:600;font-size:12px}.series-label.old{fill:var(--old)}
.series-label.new{fill:var(--new)}
.tick,.axis-title,.row-note{fill:#4b5563}
.row .ci{stroke:#9ca3af;stroke-width:2}.row .point{fill:#9ca3af}
.row.sig .ci{stroke-width:3}.row.worse .ci{stroke:var(--bad)}.row.worse .point{fill:var(--bad)}
.row.better .ci{stroke:var(--good)}.row.better .point{fill:var(--good)}
.row.sig .row-label{font-weight:700}
.empty{color:var(--mute);font-style:italic}
#controls{position:sticky;top:0;background:var(--bg);padding:8px 0;border-bottom:1px solid
var(--line);z-index:2;display:flex;flex-wrap:wrap;gap:8px;align-items:center}
.filter-btn{border:1px solid var(--line);background:var(--soft);padding:4px 10px;border-radius:14px;
cursor:pointer}
.filter-btn.active{background:var(--fg);color:#fff}
#search{padding:4px 8px;min-width:240px}
.case{border:1px solid var(--line);border-radius:6px;margin:10px 0;padding:8px 10px;
content-visibility:auto;contain-intrinsic-size:auto 260px}
.case[hidden]{display:none}
.case[data-triage=regression]{border-left:5px solid var(--bad)}
.case[data-triage=improvement]{border-left:5px solid var(--good)}
.case[data-triage=novel]{border-left:5px solid #8e44ad}
.case-head{display:flex;flex-wrap:wrap;gap:8px;align-items:center}
.badge{padding:1px 8px;border-radius:10px;font-size:12px;background:var(--soft)}
.triage-regression{background:var(--bad);color:#fff}.triage-improvement{background:var(--good);
color:#fff}.triage-novel{background:#8e44ad;color:#fff}.critical{background:#111827;color:#fff}
.tag{font-size:12px;color:var(--mute);border:1px solid var(--line);padding:0 6px;border-radius:4px}
.similarity{font-size:12px;color:var(--mute)}
.reasons{margin:6px 0;padding-left:20px}
.checks-diff{font-size:12px}
.sides{display:grid;grid-template-columns:1fr 1fr;gap:10px}
.side-head{font-weight:600;font-size:12px}.side.old .side-head{color:var(--old)}
.side.new .side-head{color:var(--new)}
pre.output{white-space:pre-wrap;word-break:break-word;background:var(--soft);padding:8px;margin:4px 0;
border-radius:4px;max-height:420px;overflow:auto;font-size:12.5px}
del{background:#fbd5d5;text-decoration:line-through}ins{background:#c8f2d0;text-decoration:none}
.meta{font-size:12px;color:var(--mute);margin:2px 0}.meta .k{color:#374151}
.error{color:var(--bad);font-size:12px;margin:2px 0}
.cut,.missing{color:var(--mute);font-size:12px;font-style:italic}
details.input{margin-top:6px;font-size:12px}.msg{white-space:pre-wrap;margin:2px 0}
footer{margin-top:32px;color:var(--mute);font-size:12px}
"""

JS = """
(function () {
  "use strict";
  var select = document.getElementById("filter");
  var search = document.getElementById("search");
  var shown = document.getElementById("cases-shown");
  var buttons = Array.prototype.slice.call(document.querySelectorAll(".filter-btn"));
  var cases = Array.prototype.slice.call(document.querySelectorAll(".case"));
  var slices = cases.map(function (c) {
    try { return JSON.parse(c.getAttribute("data-slices") || "[]"); } catch (err) { return []; }
  });
  var texts = null;
  function inSlice(i, name) {
    var tags = slices[i];
    if (tags.indexOf(name) >= 0) { return true; }
    var parts = name.split(",");
    if (parts.length < 2) { return false; }
    return parts.every(function (p) { return tags.indexOf(p.trim()) >= 0; });
  }
  function matches(i, value) {
    var c = cases[i];
    if (value === "all") { return true; }
    if (value === "critical") { return c.getAttribute("data-critical") === "true"; }
    if (value.indexOf("triage:") === 0) { return c.getAttribute("data-triage") === value.slice(7); }
    if (value.indexOf("slice:") === 0) { return inSlice(i, value.slice(6)); }
    return true;
  }
  function apply() {
    var value = select ? select.value : "all";
    var query = search ? search.value.trim().toLowerCase() : "";
    if (query && texts === null) {
      texts = cases.map(function (c) { return c.textContent.toLowerCase(); });
    }
    var n = 0;
    cases.forEach(function (c, i) {
      var ok = matches(i, value) && (!query || texts[i].indexOf(query) >= 0);
      c.hidden = !ok;
      if (ok) { n += 1; }
    });
    if (shown) { shown.textContent = String(n); }
    buttons.forEach(function (b) {
      b.classList.toggle("active", b.getAttribute("data-filter") === value);
    });
  }
  buttons.forEach(function (b) {
    b.addEventListener("click", function () {
      if (select) { select.value = b.getAttribute("data-filter"); }
      apply();
    });
  });
  if (select) { select.addEventListener("change", apply); }
  if (search) { search.addEventListener("input", apply); }
  apply();
  document.body.setAttribute("data-ready", "true");
})();
"""
