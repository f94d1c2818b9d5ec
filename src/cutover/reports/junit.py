"""``junit.xml``: the gate and the regressions as test results for CI.

Written from a ``report.json`` dict with :mod:`xml.etree` (so every value is
escaped) after removing the characters XML 1.0 cannot carry at all. Two
suites under one ``<testsuites>``:

* ``gates``: one testcase per gate criterion, with a ``<failure>`` when it did
  not pass (``<skipped>`` when it was not evaluated). When the gate failed but
  no criterion did, one testcase ``gate`` fails, so the file fails exactly
  when the gate does. Properties carry the run id, both targets and whether
  the run was simulated.
* ``regressions``: one testcase per regressed case only (passing cases are
  not listed, which keeps the file small for large suites); the reasons are
  the failure message, the body has the tags and both outputs, truncated.
  With ``regressions="skipped"`` they are written as ``<skipped>`` instead,
  for CI that should fail on the gate alone.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from cutover.reports import _format as f

OUTPUT_CHARS = 2000


def _clean(value: Any) -> str:
    """Text XML 1.0 can carry: control characters and lone surrogates become U+FFFD."""
    return f.printable(f.text(value))


def _suite(parent: ET.Element, name: str) -> ET.Element:
    return ET.SubElement(parent, "testsuite", {"name": name})


def _case(suite: ET.Element, name: str, classname: str) -> ET.Element:
    return ET.SubElement(
        suite, "testcase", {"name": _clean(name), "classname": classname, "time": "0"}
    )


def _outcome(case: ET.Element, tag: str, message: str, kind: str, body: str = "") -> None:
    element = ET.SubElement(case, tag, {"message": _clean(message)})
    if tag == "failure":
        element.set("type", kind)
    if body:
        element.text = _clean(body)


def _count(suite: ET.Element) -> None:
    cases = suite.findall("testcase")
    suite.set("tests", str(len(cases)))
    suite.set("failures", str(sum(c.find("failure") is not None for c in cases)))
    suite.set("errors", "0")
    suite.set("skipped", str(sum(c.find("skipped") is not None for c in cases)))
    suite.set("time", "0")


def _gates(root: ET.Element, report: Mapping[str, Any]) -> None:
    suite = _suite(root, "gates")
    props = ET.SubElement(suite, "properties")
    run = f.as_map(report.get("run"))
    gate = f.gate_of(report)
    for name, value in (
        ("run_id", run.get("id")),
        ("old", f.target_label(report, "old")),
        ("new", f.target_label(report, "new")),
        ("simulated", "true" if report.get("simulated") else "false"),
        ("gate", f.verdict(gate.get("passed")) if gate is not None else "N/A"),
    ):
        ET.SubElement(props, "property", {"name": name, "value": _clean(value)})
    if gate is None:
        _count(suite)
        return
    failed_any = False
    for crit in map(f.as_map, f.as_list(gate.get("criteria"))):
        name = (
            f.text(crit.get("name"))
            or f"{f.text(crit.get('metric'))} [{f.text(crit.get('slice') or 'all')}]"
        )
        case = _case(suite, name, "cutover.gates")
        summary = f.criterion_text(crit)
        reason = f.text(crit.get("reason"))
        message = f"{summary}: {reason}" if reason else summary
        if crit.get("passed") is False:
            failed_any = True
            _outcome(case, "failure", message, "gate", message)
        elif crit.get("passed") is not True:
            _outcome(case, "skipped", f"not evaluated: {message}", "gate")
    if gate.get("passed") is False and not failed_any:
        case = _case(suite, "gate", "cutover.gates")
        why = "; ".join(f.notes(report)) or "the gate did not pass"
        _outcome(case, "failure", why, "gate")
    _count(suite)


def _regression_body(report: Mapping[str, Any], case: Mapping[str, Any]) -> str:
    lines = [f"case: {f.text(case.get('id'))}"]
    tags = f.tag_strings(case.get("tags"))
    if tags:
        lines.append("tags: " + ", ".join(tags))
    if case.get("critical"):
        lines.append("critical: true")
    lines += [f"reason: {f.text(r)}" for r in f.as_list(case.get("reasons"))]
    lines += [f"changed: {d.name}: {d.old} -> {d.new}" for d in f.differing_checks(case)]
    for side in ("old", "new"):
        obs = case.get(side)
        label = f.target_label(report, side)
        if not isinstance(obs, Mapping):
            lines.append(f"--- {side} ({label}): no observation")
            continue
        lines.append(f"--- {side} ({label}):")
        lines.append(f.truncate(f.side_text(obs), OUTPUT_CHARS))
        if f.side_error(obs):
            lines.append(f"error: {f.side_error(obs)}")
    return "\n".join(lines)


def _regressions(
    root: ET.Element, report: Mapping[str, Any], as_: Literal["failure", "skipped"]
) -> None:
    suite = _suite(root, "regressions")
    for case in f.regressions(report):
        tags = f.tag_strings(case.get("tags"))
        classname = "cutover.regressions" + (f".{_clean(tags[0])}" if tags else "")
        element = _case(suite, f.text(case.get("id")), classname)
        reasons = "; ".join(f.text(r) for r in f.as_list(case.get("reasons")))
        message = ("critical: " if case.get("critical") else "") + (reasons or "regression")
        _outcome(element, as_, message, "regression", _regression_body(report, case))
    _count(suite)


def build_junit(
    report: Mapping[str, Any], *, regressions: Literal["failure", "skipped"] = "failure"
) -> ET.Element:
    """The ``<testsuites>`` element of a report (what :func:`write_junit` writes)."""
    old, new = f.target_label(report, "old"), f.target_label(report, "new")
    root = ET.Element("testsuites", {"name": _clean(f"cutover {old} -> {new}")})
    _gates(root, report)
    _regressions(root, report, regressions)
    for key in ("tests", "failures", "errors", "skipped"):
        root.set(key, str(sum(int(s.get(key, "0")) for s in root.findall("testsuite"))))
    root.set("time", "0")
    return root


def write_junit(
    report: Mapping[str, Any],
    path: str | Path,
    *,
    regressions: Literal["failure", "skipped"] = "failure",
) -> Path:
    """Write ``junit.xml`` for a report dict and return its path.

    ``path`` is the file, or a directory to write ``junit.xml`` into.
    ``regressions="skipped"`` lists regressed cases as skipped instead of failed.
    """
    if regressions not in ("failure", "skipped"):
        raise ValueError(f"regressions must be 'failure' or 'skipped', not {regressions!r}")
    out = Path(path)
    if out.is_dir():
        out = out / "junit.xml"
    out.parent.mkdir(parents=True, exist_ok=True)
    tree = ET.ElementTree(build_junit(report, regressions=regressions))
    ET.indent(tree)
    tree.write(out, encoding="utf-8", xml_declaration=True)
    return out


__all__ = ["build_junit", "write_junit"]
